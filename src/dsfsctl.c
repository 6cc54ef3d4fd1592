/*
 * dsfsctl.c - the dsfs admin tool: the command line and nothing else.
 *
 * Each command is one function declared in dsfsctl.h; this file checks the
 * arguments, calls it, and turns its result into the exit status: 0 on
 * success, 1 on failure (after one line on stderr naming the file and the
 * reason), 2 on a usage error.  usage() is the man page's SYNOPSIS.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsfs.h"
#include "admin.h"
#include "dsfsctl.h"
#include "log.h"

static void usage(FILE *out)
{
	fputs("usage: dsfsctl mkfactory [-s SIZE] [--progress | --no-progress] "
	      "SRC IMAGE\n"
	      "       dsfsctl install-factory IMAGE STORE\n"
	      "       dsfsctl factory-reset [--prefix PATH] [--keep PATH]... "
	      "[--dry-run] STORE\n"
	      "       dsfsctl dump [--layer LAYER] STORE [PATH]\n"
	      "       dsfsctl load [--replace] [--progress | --no-progress] "
	      "STORE FILE [PATH]\n"
	      "       dsfsctl dump --archive STORE\n"
	      "       dsfsctl load --archive [--progress | --no-progress] "
	      "STORE FILE\n"
	      "       dsfsctl diff [--json] STORE\n"
	      "       dsfsctl usage [-h | --json] STORE\n"
	      "       dsfsctl check [--progress | --no-progress] STORE\n"
	      "       dsfsctl get STORE PATH\n"
	      "       dsfsctl set STORE PATH [VALUE | -]\n"
	      "       dsfsctl update STORE PATH -- COMMAND [ARG ...]\n"
	      "       dsfsctl watch STORE [PATH]\n"
	      "       dsfsctl -h | -V\n",
	      out);
}

/* What a command gets: its operands, and the options that apply to it. */
struct args {
	char **argv;
	int argc;
	uint64_t budget; /* mkfactory -s */
	enum progress_mode progress;
};

static int cmd_mkfactory(const struct args *a, struct store_error *e)
{
	return factory_build(a->argv[0], a->argv[1], a->budget, a->progress, e);
}

static int cmd_install(const struct args *a, struct store_error *e)
{
	return factory_install(a->argv[0], a->argv[1], e);
}

static int cmd_reset(const struct args *a, struct store_error *e)
{
	return store_factory_reset(a->argv[0], e);
}

static int cmd_usage(const struct args *a, struct store_error *e)
{
	return store_usage(a->argv[0], stdout, e);
}

static int cmd_check(const struct args *a, struct store_error *e)
{
	return store_check(a->argv[0], stdout, a->progress, e);
}

static int cmd_get(const struct args *a, struct store_error *e)
{
	return value_get(a->argv[0], a->argv[1], stdout, e);
}

/* mkfactory, load and check: take --progress and --no-progress out of
 * argv[1..*argc) (the last one given wins), wherever they are before a
 * "--". */
static enum progress_mode take_progress(int *argc, char **argv)
{
	enum progress_mode mode = PROGRESS_AUTO;
	int i, n = 1;

	if (strcmp(argv[0], "mkfactory") != 0 && strcmp(argv[0], "load") != 0 &&
	    strcmp(argv[0], "check") != 0)
		return mode;
	for (i = 1; i < *argc; i++) {
		if (strcmp(argv[i], "--") == 0) {
			while (i < *argc)
				argv[n++] = argv[i++];
			break;
		}
		if (strcmp(argv[i], "--progress") == 0)
			mode = PROGRESS_ON;
		else if (strcmp(argv[i], "--no-progress") == 0)
			mode = PROGRESS_OFF;
		else
			argv[n++] = argv[i];
	}
	argv[n] = NULL;
	*argc = n;
	return mode;
}

/* All of standard input, in a new buffer. */
static int read_stdin(char **data, size_t *len, struct store_error *e)
{
	size_t cap = CTL_CHUNK, got;
	char *buf = malloc(cap), *grown;

	*len = 0;
	while (buf && (got = fread(buf + *len, 1, cap - *len, stdin)) > 0) {
		*len += got;
		if (*len < cap)
			continue;
		grown = realloc(buf, cap * 2);
		if (!grown) {
			free(buf);
			buf = NULL;
			break;
		}
		buf = grown;
		cap *= 2;
	}
	if (!buf)
		return store_fail(e, -ENOMEM, "out of memory");
	if (ferror(stdin)) {
		free(buf);
		return store_fail(e, -EIO, "reading standard input: %s",
				  strerror(errno));
	}
	*data = buf;
	return 0;
}

/* set STORE PATH [VALUE | -]: VALUE's bytes exactly as given; standard
 * input without VALUE or with "-". */
static int cmd_set(const struct args *a, struct store_error *e)
{
	const char *value = a->argc == 3 ? a->argv[2] : "-";
	char *data = NULL;
	size_t len;
	int rc;

	if (strcmp(value, "-") != 0)
		return value_set(a->argv[0], a->argv[1], value, strlen(value),
				 e);
	rc = read_stdin(&data, &len, e);
	if (rc == 0)
		rc = value_set(a->argv[0], a->argv[1], data, len, e);
	free(data);
	return rc;
}

static int cmd_update(const struct args *a, struct store_error *e)
{
	return value_update(a->argv[0], a->argv[1], a->argv + 3, e);
}

/* watch STORE [PATH]: until interrupted (watch_cli.c). */
static int cmd_watch(const struct args *a, struct store_error *e)
{
	return watch_store(a->argv[0], a->argc == 2 ? a->argv[1] : "", e);
}

static const struct command {
	const char *name;
	const char *opts; /* getopt(3) string */
	int nargs;	  /* operands at least... */
	int maxargs;	  /* ...and at most (-1: any number) */
	int (*run)(const struct args *a, struct store_error *e);
} commands[] = {
	{"mkfactory", "+hs:", 2, 2, cmd_mkfactory},
	{"install-factory", "+h", 2, 2, cmd_install},
	{"factory-reset", "+h", 1, 1, cmd_reset},
	{"usage", "+h", 1, 1, cmd_usage},
	{"check", "+h", 1, 1, cmd_check},
	{"get", "+h", 2, 2, cmd_get},
	{"set", "+h", 2, 3, cmd_set},
	{"update", "+h", 4, -1, cmd_update},
	{"watch", "+h", 1, 2, cmd_watch},
};

static int admin_exit(int argc, char **argv, enum progress_mode progress)
{
	struct store_error e = {.text = ""};
	int i, rc;

	/* usage's own -h means human units. */
	for (i = 1; i < argc && strcmp(argv[0], "usage") != 0; i++)
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0) {
			usage(stdout);
			return 0;
		}
	rc = strcmp(argv[0], "usage") == 0 ?
		     usage_main(argc, argv, &e) :
		     admin_main(argc, argv, progress, &e);
	if (rc == -EINVAL && !e.text[0]) {
		usage(stderr);
		return 2;
	}
	if (rc) {
		fprintf(stderr, "dsfsctl: %s\n",
			e.text[0] ? e.text : strerror(-rc));
		return 1;
	}
	return 0;
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct store_error e = {.text = ""};
	const struct command *cmd = NULL;
	struct args a = {.budget = DSFS_DEFAULT_FACTORY_SIZE};
	const char *size = NULL;
	size_t i;
	int c, rc;

	log_init("dsfsctl", true, false);
	/* "+": options stop at the command; its own options follow it. */
	while ((c = getopt_long(argc, argv, "+hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("dsfsctl %s\n", PACKAGE_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	argc -= optind;
	argv += optind;
	a.progress = take_progress(&argc, argv);
	argc += optind;
	argv -= optind;
	/* dump, load, diff, factory-reset with options: admin_cli.c. */
	if ((admin_command(argv[optind]) &&
	     (strcmp(argv[optind], "factory-reset") != 0 ||
	      argc - optind > 2)) ||
	    (strcmp(argv[optind], "usage") == 0 && argc - optind > 2))
		return admin_exit(argc - optind, argv + optind, a.progress);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(argv[optind], commands[i].name) == 0)
			cmd = &commands[i];
	if (!cmd) {
		fprintf(stderr, "dsfsctl: unknown command '%s'\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	argc -= optind;
	argv += optind;
	optind = 0; /* glibc: start again, on the command's arguments */
	while ((c = getopt(argc, argv, cmd->opts)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 's':
			size = optarg;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (argc - optind < cmd->nargs ||
	    (cmd->maxargs >= 0 && argc - optind > cmd->maxargs) ||
	    (cmd->run == cmd_update && strcmp(argv[optind + 2], "--") != 0)) {
		usage(stderr);
		return 2;
	}
	if (size && (parse_size(size, &a.budget) != 0 || a.budget == 0)) {
		fprintf(stderr, "dsfsctl: -s %s: not a size (e.g. 13M)\n",
			size);
		return 2;
	}
	a.argv = argv + optind;
	a.argc = argc - optind;
	rc = cmd->run(&a, &e);
	if (rc) {
		fprintf(stderr, "dsfsctl: %s\n",
			e.text[0] ? e.text : strerror(-rc));
		return 1;
	}
	return 0;
}
