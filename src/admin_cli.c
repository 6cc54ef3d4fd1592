/*
 * admin_cli.c - dsfsctl dump, load, diff and factory-reset with options:
 * find the STORE operand, then run the command on the store's files
 * (dsfsctl takes STORE/lock) or ask the daemon that has the store to run
 * it (control_admin.c), with the same code and so the same output.
 *
 * Offline the mount options are unknown: the default budgets and scratch
 * names, and no ephemeral layer (it exists only in a running daemon).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "watch.h"
#include "admin.h"
#include "control.h"
#include "dsfsctl.h"

/* Options that take a value, as admin_run() knows them. */
static bool takes_value(const char *arg)
{
	return strcmp(arg, "--layer") == 0 || strcmp(arg, "--prefix") == 0 ||
	       strcmp(arg, "--keep") == 0;
}

/* load --archive FILE: FILE, or NULL if this is not that. */
static const char *archive_file(int argc, char **argv)
{
	int i;

	if (strcmp(argv[0], "load") != 0)
		return NULL;
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--archive") == 0)
			return i + 1 < argc ? argv[i + 1] : NULL;
	return NULL;
}

static int load_archive(struct store *s, struct admin_env *env,
			const char *file, struct store_error *e)
{
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = admin_read_file(file, ARCHIVE_MAX, &buf, &len, e);
	if (rc == 0)
		rc = archive_load(s, env, file, buf, len, e);
	free(buf);
	return rc;
}

static int run_offline(struct store *s, int argc, char **argv,
		       enum progress_mode progress, struct store_error *e)
{
	bool load = strcmp(argv[0], "load") == 0;
	struct admin_env env = {.scratch = DSFS_SCRATCH_DEFAULT,
				.uid = s->st.st_uid,
				.gid = s->st.st_gid,
				.progress = progress};
	int rc;

	rc = store_open_layer(s->path, STORE_RUNTIME, DSFS_DEFAULT_RUNTIME_SIZE,
			      load, NULL, &env.layer[L_RUNTIME], e);
	if (rc == 0)
		rc = watch_offline_observe(s->path, &env.layer[L_RUNTIME]);
	if (rc && rc != -ENOENT)
		return rc;
	rc = store_open_layer(s->path, STORE_FACTORY, DSFS_DEFAULT_FACTORY_SIZE,
			      false, NULL, &env.layer[L_FACTORY], e);
	if ((rc == 0 || rc == -ENOENT) && load && archive_file(argc, argv))
		rc = load_archive(s, &env, archive_file(argc, argv), e);
	else if (rc == 0 || rc == -ENOENT)
		rc = admin_run(&env, argc, argv, stdout, e);
	if (env.layer[L_FACTORY])
		layer_close(env.layer[L_FACTORY]);
	if (env.layer[L_RUNTIME])
		layer_close(env.layer[L_RUNTIME]);
	if (fflush(stdout) != 0 && rc == 0)
		rc = store_fail(e, -errno, "stdout: %s", strerror(errno));
	return rc;
}

/* Write len bytes of buf to STORE/name, the owner's. */
static int put_file(struct store *s, const char *name, int src, const char *buf,
		    size_t len, struct store_error *e)
{
	char chunk[CTL_CHUNK];
	ssize_t n = 0;
	int fd, rc;

	unlinkat(s->dirfd, name, 0);
	fd = openat(s->dirfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return store_fail(e, -errno, "%s/%s: %s", s->path, name,
				  strerror(errno));
	rc = store_give_to_owner(s, fd, name, e);
	if (rc == 0 && buf && write(fd, buf, len) != (ssize_t)len)
		rc = store_fail(e, -EIO, "%s/%s: write failed", s->path, name);
	while (rc == 0 && src >= 0 && (n = read(src, chunk, sizeof(chunk))) > 0)
		if (write(fd, chunk, (size_t)n) != n)
			rc = store_fail(e, -EIO, "%s/%s: write failed", s->path,
					name);
	if (rc == 0 && n < 0)
		rc = store_fail(e, -errno, "reading the document: %s",
				strerror(errno));
	if (close(fd) != 0 && rc == 0)
		rc = store_fail(e, -errno, "%s/%s: %s", s->path, name,
				strerror(errno));
	return rc;
}

int admin_ask(struct store *s, int argc, char **argv, struct store_error *e)
{
	return admin_ask_ok(s, argc, argv, NULL, 0, e);
}

int admin_ask_ok(struct store *s, int argc, char **argv, char *ok,
		 size_t oksize, struct store_error *e)
{
	char req[32], in[32], outname[32], reqline[48];
	char reply[CONTROL_REPLY_MAX], *buf = NULL, *doc = NULL, *abs;
	size_t len = 0, i;
	const char *label = NULL;
	long pid = (long)getpid();
	int rc, fd, src = -1, n;
	FILE *out;

	snprintf(req, sizeof(req), "admin.%ld.req", pid);
	snprintf(in, sizeof(in), "admin.%ld.in", pid);
	snprintf(outname, sizeof(outname), "admin.%ld.out", pid);
	/* load's FILE is read here: the daemon may not be able to. */
	if (strcmp(argv[0], "load") == 0) {
		for (i = 1; i < (size_t)argc && argv[i][0] == '-' &&
			    strcmp(argv[i], "-") != 0;
		     i++)
			;
		if (i < (size_t)argc) {
			src = strcmp(argv[i], "-") == 0 ?
				      0 :
				      open(argv[i], O_RDONLY | O_CLOEXEC);
			if (src < 0)
				return store_fail(e, -errno, "%s: %s", argv[i],
						  strerror(errno));
			rc = put_file(s, in, src, NULL, 0, e);
			if (src > 0)
				close(src);
			if (rc)
				goto out;
			/* The daemon's working directory is not ours. */
			abs = realpath(s->path, NULL);
			doc = abs ? store_file(abs, in) : NULL;
			free(abs);
			if (!doc) {
				rc = store_fail(e, -ENOMEM, "out of memory");
				goto out;
			}
			label = argv[i];
			argv[i] = doc;
		}
	}
	for (i = 0; i < (size_t)argc; i++)
		len += strlen(argv[i]) + 1;
	buf = malloc(len + 1);
	if (!buf) {
		rc = store_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	for (i = 0, len = 0; i < (size_t)argc; i++) {
		memcpy(buf + len, argv[i], strlen(argv[i]) + 1);
		len += strlen(argv[i]) + 1;
	}
	rc = put_file(s, req, -1, buf, len, e);
	if (rc)
		goto out;
	snprintf(reqline, sizeof(reqline), "admin %ld", pid);
	rc = control_request(s->path, reqline, reply, sizeof(reply));
	if ((rc == -ENOENT || rc == -ECONNREFUSED) &&
	    strstr(reply, "(no daemon is serving"))
		rc = store_ask(s, reqline, reply, sizeof(reply), e);
	else if (rc && doc && strncmp(reply, doc, strlen(doc)) == 0)
		/* Messages name the document as the user did. */
		rc = store_fail(e, rc, "%s%s", label, reply + strlen(doc));
	else if (rc)
		rc = store_fail(e, rc, "%s", reply);
	if (rc == 0 && ok)
		snprintf(ok, oksize, "%s", reply);
	/* What the command printed before it failed is shown too. */
	fd = openat(s->dirfd, outname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	out = fd >= 0 ? fdopen(fd, "r") : NULL;
	if (out) {
		char chunk[CTL_CHUNK];

		while ((n = (int)fread(chunk, 1, sizeof(chunk), out)) > 0)
			fwrite(chunk, 1, (size_t)n, stdout);
		fclose(out);
	} else if (fd >= 0) {
		close(fd);
	}
	if (fflush(stdout) != 0 && rc == 0)
		rc = store_fail(e, -errno, "stdout: %s", strerror(errno));
out:
	unlinkat(s->dirfd, req, 0);
	unlinkat(s->dirfd, in, 0);
	unlinkat(s->dirfd, outname, 0);
	free(buf);
	free(doc);
	return rc;
}

int admin_main(int argc, char **argv, enum progress_mode progress,
	       struct store_error *e)
{
	char **args = calloc((size_t)argc + 1, sizeof(*args));
	const char *store = NULL;
	int i, n = 0, rc;
	struct store s;
	bool load = strcmp(argv[0], "load") == 0;

	if (!args)
		return store_fail(e, -ENOMEM, "out of memory");
	/* The first operand is STORE; the rest go to the command. */
	for (i = 0; i < argc; i++) {
		if (i > 0 && !store && argv[i][0] != '-') {
			store = argv[i];
			continue;
		}
		args[n++] = argv[i];
		if (!store && takes_value(argv[i]) && i + 1 < argc)
			args[n++] = argv[++i];
	}
	if (!store) {
		free(args);
		return -EINVAL; /* a usage error */
	}
	rc = store_open(&s, store, load, true, e);
	if (rc == 0) {
		rc = store_lock(&s, e);
		if (rc == 0)
			rc = run_offline(&s, n, args, progress, e);
		else if (rc == -EWOULDBLOCK)
			rc = admin_ask(&s, n, args, e);
		store_close(&s);
	}
	free(args);
	return rc;
}
