/*
 * control_admin.c - the daemon's side of dsfsctl's dump, load, diff and
 * selective factory-reset on a mounted store (control.h: "admin PID").
 *
 * The request line has room for a command name only, and a dump or a
 * document can be megabytes, so they travel as files in the store
 * directory (0700, the owner's), like a new factory image does:
 *	STORE/admin.PID.req	the arguments, each ended by a NUL, written
 *				by dsfsctl (process PID) before it asks
 *	STORE/admin.PID.out	what the command prints, written here
 * and a document to load is copied by dsfsctl into STORE/admin.PID.in.
 * dsfsctl removes all three when it is done.
 *
 * The command runs admin_run() on the daemon's own layers, holding the
 * stack's lock (shared to read, exclusive to change) so that it sees one
 * consistent tree and FUSE never sees a change half made; then the
 * kernel's caches are dropped for exactly the keys that changed.  load
 * --archive (load_archive() below) holds the lock only while the runtime
 * layer changes, and replaces the factory image as install-factory does.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "admin.h"
#include "control.h"
#include "daemon.h"
#include "log.h"

#define ADMIN_REQ_MAX (64 * 1024)
#define ADMIN_ARGS_MAX 256
#define ADMIN_NOTIFY_MAX 4096 /* more changed keys: drop every cache */

struct changed_keys {
	char **keys;
	size_t n, cap;
	bool overflow;
};

static void note_key(void *arg, const char *key)
{
	struct changed_keys *ck = arg;

	if (ck->overflow)
		return;
	if (ck->n == ck->cap) {
		size_t cap = ck->cap ? ck->cap * 2 : 64;
		void *p = cap <= ADMIN_NOTIFY_MAX ?
				  realloc(ck->keys, cap * sizeof(*ck->keys)) :
				  NULL;

		if (!p) {
			ck->overflow = true;
			return;
		}
		ck->keys = p;
		ck->cap = cap;
	}
	ck->keys[ck->n] = strdup(key);
	if (!ck->keys[ck->n])
		ck->overflow = true;
	else
		ck->n++;
}

/* With no lock held: the kernel may ask us while it drops them. */
static void drop_caches(struct dsfs_ctx *ctx, struct changed_keys *ck)
{
	struct loc l;
	size_t i;

	if (ck->overflow)
		dsfs_invalidate_all(ctx);
	for (i = 0; i < ck->n; i++) {
		if (!ck->overflow) {
			memset(&l, 0, sizeof(l));
			l.view = VIEW_LAYER;
			l.layer = L_RUNTIME;
			l.tree = strncmp(ck->keys[i], "images", 6) == 0 ?
					 TREE_IMAGES :
					 TREE_KV;
			snprintf(l.key, sizeof(l.key), "%s", ck->keys[i]);
			notify_alias(ctx, &l, true);
		}
		free(ck->keys[i]);
	}
	free(ck->keys);
}

/* Read STORE/admin.PID.req into buf and split it at its NULs. */
static int read_args(int fd, char *buf, size_t size, char **argv, int *argc)
{
	size_t len = 0, i;
	ssize_t n;

	while ((n = read(fd, buf + len, size - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		return -errno;
	if (len == 0 || len == size || buf[len - 1] != '\0')
		return -EINVAL;
	*argc = 0;
	for (i = 0; i < len; i += strlen(buf + i) + 1) {
		if (*argc == ADMIN_ARGS_MAX - 1)
			return -E2BIG;
		argv[(*argc)++] = buf + i;
	}
	argv[*argc] = NULL;
	return 0;
}

static bool changes(int argc, char **argv)
{
	int i;

	if (strcmp(argv[0], "load") == 0)
		return true;
	if (strcmp(argv[0], "factory-reset") != 0)
		return false;
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--dry-run") == 0)
			return false;
	return true;
}

/* "snapshot check.PID": dsfsctl check of a mounted store wants a copy of
 * the runtime layer in STORE/check.PID/ (check_live.c). */
static int snapshot(struct dsfs_ctx *ctx, const char *dir, char *msg,
		    size_t size)
{
	const char *why = NULL;
	char *path = NULL;
	int rc;

	if (strncmp(dir, "check.", 6) != 0 || !dir[6] ||
	    strspn(dir + 6, "0123456789") != strlen(dir + 6)) {
		snprintf(msg, size, "snapshot: bad directory '%s'", dir);
		return -EINVAL;
	}
	if (asprintf(&path, "%s/%s/%s", ctx->store, dir, STORE_RUNTIME) < 0)
		return -ENOMEM;
	/* The layer serialises itself; the stack's lock would stop the
	 * writers for the whole copy. */
	rc = layer_sqlite_copy(watch_layer_inner(ctx->stack.layer[L_RUNTIME]),
			       path, &why);
	if (rc)
		snprintf(msg, size, "%s: %s", path, why ? why : strerror(-rc));
	free(path);
	return rc;
}

/* "load --archive FILE": the archive is read and checked, and its factory
 * image written, with no lock held; the runtime layer changes under the
 * stack's lock, in one layer_apply(); then the new image is taken as
 * install-factory takes one.  Between the two, for an instant, readers
 * may see the new runtime layer over the old image: the same order a
 * crash would leave on an unmounted store.  Every cache is dropped: an
 * archive can change any key. */
static int load_archive(struct dsfs_ctx *ctx, struct admin_env *env,
			const char *file, struct store_error *e)
{
	struct dsfs_layer *fresh = NULL;
	struct archive *a = NULL;
	struct store s;
	char *buf = NULL;
	size_t len = 0;
	int rc;

	rc = store_open(&s, ctx->store, false, false, e);
	if (rc)
		return rc;
	rc = admin_read_file(file, ARCHIVE_MAX, &buf, &len, e);
	if (rc == 0)
		rc = archive_read(&s, file, buf, len, PROGRESS_OFF, &a, e);
	if (rc)
		goto out;
	ovl_admin_lock(&ctx->stack, true);
	env->layer[L_RUNTIME] = ctx->stack.layer[L_RUNTIME];
	rc = archive_apply(a, env);
	ovl_admin_unlock(&ctx->stack);
	if (rc == 0 && archive_has_factory(a)) {
		rc = store_take_new_factory(ctx->store, ctx->budget[L_FACTORY],
					    &fresh, e);
		if (fresh)
			ovl_swap_factory(&ctx->stack, fresh);
	}
	dsfs_invalidate_all(ctx);
	/* The runtime layer's changes were seen by its watch wrapper; a new
	 * image is told as install-factory tells it. */
	if (fresh)
		watch_told(ctx, L_FACTORY, NULL, "install-factory", 0, NULL);
out:
	archive_free(a);
	free(buf);
	store_close(&s);
	return rc;
}

int control_admin(struct dsfs_ctx *ctx, const char *arg, char *msg, size_t size)
{
	struct store_error e = {.text = ""};
	struct changed_keys ck = {0};
	struct admin_env env = {.scratch = ctx->stack.scratch,
				.uid = ctx->owner_uid,
				.gid = ctx->owner_gid,
				.changed = note_key,
				.arg = &ck};
	char name[64], *argv[ADMIN_ARGS_MAX], *buf = NULL;
	int dirfd = -1, fd = -1, argc = 0, i, rc;
	bool change = false, check;
	unsigned problems = 0;
	FILE *out = NULL;

	msg[0] = '\0';
	if (!*arg || strspn(arg, "0123456789") != strlen(arg) ||
	    strlen(arg) > 10) {
		snprintf(msg, size, "admin: bad request '%s'", arg);
		return -EINVAL;
	}
	dirfd = open(ctx->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	buf = malloc(ADMIN_REQ_MAX);
	if (dirfd < 0 || !buf) {
		rc = dirfd < 0 ? -errno : -ENOMEM;
		goto out;
	}
	snprintf(name, sizeof(name), "admin.%s.req", arg);
	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	rc = fd < 0 ? -errno : read_args(fd, buf, ADMIN_REQ_MAX, argv, &argc);
	if (fd >= 0)
		close(fd);
	if (rc == 0 && argc == 2 && strcmp(argv[0], "snapshot") == 0) {
		rc = snapshot(ctx, argv[1], msg, size);
		goto out;
	}
	check = rc == 0 && argc == 1 && strcmp(argv[0], "check") == 0;
	if (rc == 0 && !check && (argc < 1 || !admin_command(argv[0])))
		rc = -EINVAL;
	if (rc) {
		snprintf(msg, size, "%s/%s: %s", ctx->store, name,
			 strerror(-rc));
		goto out;
	}
	snprintf(name, sizeof(name), "admin.%s.out", arg);
	fd = openat(dirfd, name,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	out = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!out) {
		rc = -errno;
		if (fd >= 0)
			close(fd);
		snprintf(msg, size, "%s/%s: %s", ctx->store, name,
			 strerror(-rc));
		goto out;
	}
	change = !check && changes(argc, argv);
	if (check) {
		rc = control_check(ctx, out, &problems, &e);
		/* dsfsctl reads the number from the OK line. */
		if (rc == 0)
			snprintf(msg, size, "%u", problems);
	} else if (argc == 3 && strcmp(argv[0], "load") == 0 &&
		   strcmp(argv[1], "--archive") == 0) {
		rc = load_archive(ctx, &env, argv[2], &e);
		change = false; /* its caches are dropped already */
	} else {
		ovl_admin_lock(&ctx->stack, change);
		for (i = 0; i < DSFS_NLAYERS; i++)
			env.layer[i] = ctx->stack.layer[i];
		rc = admin_run(&env, argc, argv, out, &e);
		ovl_admin_unlock(&ctx->stack);
	}
	if (fclose(out) != 0 && rc == 0)
		rc = store_fail(&e, -errno, "%s/%s: %s", ctx->store, name,
				strerror(errno));
	if (change)
		drop_caches(ctx, &ck);
	if (rc)
		snprintf(msg, size, "%s", e.text);
	else if (!check && changes(argc, argv))
		log_info("%s: %s by dsfsctl", ctx->store, argv[0]);
out:
	if (dirfd >= 0)
		close(dirfd);
	free(buf);
	return rc;
}
