/*
 * store.c - a store directory, for the daemon and dsfsctl alike (store.h):
 * opening it and taking STORE/lock, opening the layers on its files (and
 * the runtime -o runtime= names, recorded in STORE/runtime.uri), and the
 * rename -> fsync steps that put a new factory image in place.
 *
 * The daemon and dsfsctl word their messages around what this returns, so
 * nothing here prints or logs.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cluster.h"
#include "layer.h"

int store_fail(struct store_error *e, int rc, const char *fmt, ...)
{
	va_list ap;

	if (e->text[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(e->text, sizeof(e->text), fmt, ap);
		va_end(ap);
	}
	return rc;
}

int store_make(const char *path, struct store_error *e)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		return store_fail(e, -errno, "%s: cannot create store: %s",
				  path, strerror(errno));
	return 0;
}

int store_open(struct store *s, const char *path, bool create, bool mine,
	       struct store_error *e)
{
	uid_t me = geteuid();
	int pathfd, rc;

	s->path = path;
	s->dirfd = s->lockfd = -1;
	memset(&s->st, 0, sizeof(s->st));
	if (create) {
		rc = store_make(path, e);
		if (rc)
			return rc;
	}
	/* O_PATH first: whose store it is matters more than whether we may
	 * read it. */
	pathfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pathfd < 0)
		return store_fail(e, -errno, "%s: %s", path, strerror(errno));
	if (fstat(pathfd, &s->st) != 0) {
		rc = store_fail(e, -errno, "%s: %s", path, strerror(errno));
		goto out_path;
	}
	if (mine && s->st.st_uid != me && me != 0) {
		rc = store_fail(
			e, -EPERM,
			"%s: store owned by uid %u, not by you (uid %u): "
			"only its owner or root may change it",
			path, (unsigned)s->st.st_uid, (unsigned)me);
		goto out_path;
	}
	/* Readable, for fsync(). */
	s->dirfd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		rc = store_fail(e, -errno, "%s: %s", path, strerror(errno));
	else
		rc = 0;
out_path:
	close(pathfd);
	return rc;
}

void store_close(struct store *s)
{
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->lockfd = s->dirfd = -1;
}

int store_give_to_owner(const struct store *s, int fd, const char *name,
			struct store_error *e)
{
	if (geteuid() != 0 || s->st.st_uid == 0)
		return 0;
	if (fchown(fd, s->st.st_uid, s->st.st_gid) != 0)
		return store_fail(e, -errno, "%s/%s: chown: %s", s->path, name,
				  strerror(errno));
	return 0;
}

int store_lock(struct store *s, struct store_error *e)
{
	int fd, rc;

	fd = openat(s->dirfd, STORE_LOCK,
		    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return store_fail(e, -errno, "%s/%s: %s", s->path, STORE_LOCK,
				  strerror(errno));
	rc = store_give_to_owner(s, fd, STORE_LOCK, e);
	if (rc)
		goto out_fd;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		if (rc != -EWOULDBLOCK)
			store_fail(e, rc, "%s/%s: flock: %s", s->path,
				   STORE_LOCK, strerror(-rc));
		goto out_fd;
	}
	s->lockfd = fd;
	return 0;

out_fd:
	close(fd);
	return rc;
}

char *store_file(const char *store, const char *name)
{
	char *path;

	if (asprintf(&path, "%s/%s", store, name) < 0)
		return NULL;
	return path;
}

/* The layer on the file STORE/name (store_open_layer(), without
 * STORE/runtime.uri). */
static int open_store_file(const char *store, const char *name, uint64_t budget,
			   bool create, const char *doing,
			   struct dsfs_layer **out, struct store_error *e)
{
	const char *why = NULL;
	char *path;
	int rc;

	path = store_file(store, name);
	if (!path)
		return store_fail(e, -ENOMEM, "out of memory");
	if (strcmp(name, STORE_RUNTIME) == 0)
		rc = layer_sqlite_open(path, "runtime", budget, create, out,
				       &why);
	else
		rc = layer_sqlite_open_image(path, "factory", budget, out,
					     &why);
	if (rc && (rc != -ENOENT || create))
		store_fail(e, rc, "%s: %s%s%s", path, doing ? doing : "",
			   doing ? ": " : "",
			   why && *why ? why : strerror(-rc));
	free(path);
	return rc;
}

static bool is_sqlite(const char *runtime)
{
	return !runtime || strcmp(runtime, "sqlite") == 0;
}

int store_check_runtime(const char *runtime, struct store_error *e)
{
	char why[256];
	char *shown;
	int rc;

	if (is_sqlite(runtime) || strcmp(runtime, "memory") == 0)
		return 0;
	if (!layer_pg_is_conninfo(runtime))
		/* Not echoed: it may hold a password. */
		return store_fail(e, -EINVAL,
				  "runtime: not sqlite, memory, a "
				  "postgresql:// URI or a key=value conninfo");
	rc = layer_pg_load(why, sizeof(why));
	if (rc)
		return store_fail(e, rc, "runtime: %s", why);
	shown = layer_pg_shown(runtime, why, sizeof(why));
	if (!shown)
		return store_fail(e, -EINVAL, "runtime: %s", why);
	free(shown);
	return 0;
}

int store_open_runtime(const char *store, const char *runtime, uint64_t budget,
		       unsigned flags, const char *doing,
		       struct dsfs_layer **out, struct store_error *e)
{
	char why[320], bad[128], *shown;
	int rc;

	if (is_sqlite(runtime))
		return open_store_file(store, STORE_RUNTIME, budget, true,
				       doing, out, e);
	if (strcmp(runtime, "memory") == 0) {
		rc = layer_mem_open(budget, out);
		if (rc)
			return store_fail(e, rc, "runtime=memory: %s",
					  strerror(-rc));
		/* Before anyone uses it: it stands for the runtime layer. */
		(*out)->name = "runtime";
		return 0;
	}
	rc = layer_pg_open(runtime, "runtime", budget, flags, out, why,
			   sizeof(why));
	if (rc) {
		shown = layer_pg_shown(runtime, bad, sizeof(bad));
		store_fail(e, rc, "runtime %s: %s%s%s",
			   shown ? shown : "(unreadable conninfo)",
			   doing ? doing : "", doing ? ": " : "", why);
		free(shown);
	}
	return rc;
}

int store_record_runtime(const struct store *s, const char *runtime,
			 struct store_error *e)
{
	char why[256], *shown = NULL;
	const char *text = runtime;
	int fd, rc = 0;
	size_t len;

	if (is_sqlite(runtime)) {
		if (unlinkat(s->dirfd, STORE_RUNTIME_URI, 0) != 0 &&
		    errno != ENOENT)
			return store_fail(e, -errno, "%s/%s: %s", s->path,
					  STORE_RUNTIME_URI, strerror(errno));
		return 0;
	}
	if (strcmp(runtime, "memory") != 0) {
		shown = layer_pg_shown(runtime, why, sizeof(why));
		if (!shown)
			return store_fail(e, -EINVAL, "runtime: %s", why);
		text = shown;
	}
	/* Written in place: the daemon holds STORE/lock, and dsfsctl reads
	 * the file only when it can take the lock. */
	fd = openat(s->dirfd, STORE_RUNTIME_URI,
		    O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
		    0600);
	if (fd < 0) {
		rc = store_fail(e, -errno, "%s/%s: %s", s->path,
				STORE_RUNTIME_URI, strerror(errno));
		goto out;
	}
	len = strlen(text);
	if (write(fd, text, len) != (ssize_t)len || write(fd, "\n", 1) != 1 ||
	    fsync(fd) != 0)
		rc = store_fail(e, -EIO, "%s/%s: cannot write", s->path,
				STORE_RUNTIME_URI);
	if (rc == 0)
		rc = store_give_to_owner(s, fd, STORE_RUNTIME_URI, e);
	close(fd);
out:
	free(shown);
	return rc;
}

/* What STORE/runtime.uri records, allocated; NULL if there is no such
 * file (sqlite). */
char *store_recorded_runtime(const char *store)
{
	char *path = store_file(store, STORE_RUNTIME_URI);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	f = path ? fopen(path, "re") : NULL;
	free(path);
	if (!f)
		return NULL;
	n = getline(&line, &cap, f);
	fclose(f);
	if (n <= 0) {
		free(line);
		return NULL;
	}
	line[strcspn(line, "\n")] = '\0';
	return line;
}

/* dsfsctl only tells the other hosts; what they change is not its
 * concern (it reads the database afresh each time). */
static void ignore_change(void *arg, const char *key, uint64_t version)
{
	(void)arg, (void)key, (void)version;
}

static void ignore_reset(void *arg)
{
	(void)arg;
}

/* The runtime that STORE/runtime.uri records, opened for dsfsctl.  A
 * shared one is wrapped so that dsfsctl's changes (set, load, a reset)
 * reach the hosts that have it mounted, as the daemon's do. */
static int open_recorded(const char *store, const char *runtime,
			 uint64_t budget, const char *doing,
			 struct dsfs_layer **out, struct store_error *e)
{
	static const struct cluster_events quiet = {ignore_change, ignore_reset,
						    NULL};
	struct dsfs_cluster *c;
	struct dsfs_layer *wrapped;
	int rc;

	if (strcmp(runtime, "memory") == 0)
		return -ENOENT; /* nothing outlives the mount */
	rc = store_open_runtime(store, runtime, budget, 0, doing, out, e);
	if (rc)
		return rc;
	rc = cluster_pg_open(runtime, &quiet, &c);
	if (rc == 0) {
		rc = cluster_layer_wrap_own(c, *out, &wrapped);
		if (rc == 0) {
			*out = wrapped;
			return 0;
		}
		cluster_close(c);
	}
	layer_close(*out);
	*out = NULL;
	return store_fail(e, rc,
			  "runtime: cannot reach the other hosts to tell "
			  "them of changes: %s",
			  strerror(-rc));
}

int store_open_layer(const char *store, const char *name, uint64_t budget,
		     bool create, const char *doing, struct dsfs_layer **out,
		     struct store_error *e)
{
	char *recorded;
	int rc;

	if (strcmp(name, STORE_RUNTIME) == 0 &&
	    (recorded = store_recorded_runtime(store))) {
		rc = open_recorded(store, recorded, budget, doing, out, e);
		free(recorded);
		return rc;
	}
	return open_store_file(store, name, budget, create, doing, out, e);
}

void store_drop_leftover(const struct store *s)
{
	unlinkat(s->dirfd, STORE_FACTORY_NEW, 0);
}

int store_install_new(int dirfd, bool *renamed)
{
	*renamed = false;
	if (renameat(dirfd, STORE_FACTORY_NEW, dirfd, STORE_FACTORY) != 0)
		return -errno;
	*renamed = true;
	if (fsync(dirfd) != 0)
		return -errno;
	return 0;
}

/*
 * The client has written and fsynced STORE/factory.db.new.  Open it first:
 * a file that is not an image is refused and removed, and factory.db stays.
 * The open layer reads its file through the descriptor it opened, so the
 * rename below does not disturb it; a crash anywhere leaves factory.db
 * either the old image or the new one.
 */
int store_take_new_factory(const char *store, uint64_t budget,
			   struct dsfs_layer **fresh, struct store_error *e)
{
	const char *why = NULL;
	bool renamed;
	char *path;
	int dirfd, rc;

	*fresh = NULL;
	dirfd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return store_fail(e, -errno, "%s: %s", store, strerror(errno));
	path = store_file(store, STORE_FACTORY_NEW);
	if (!path) {
		rc = store_fail(e, -ENOMEM, "out of memory");
		goto out_dir;
	}
	rc = layer_sqlite_open_image(path, "factory", budget, fresh, &why);
	free(path);
	if (rc)
		*fresh = NULL;
	if (rc == -ENOENT) {
		rc = store_fail(e, rc, "%s: no such file: nothing to install",
				STORE_FACTORY_NEW);
		goto out_dir;
	}
	if (rc) {
		rc = store_fail(e, rc, "%s: not a usable factory image: %s",
				STORE_FACTORY_NEW, why ? why : strerror(-rc));
		goto out_unlink;
	}
	rc = store_install_new(dirfd, &renamed);
	if (renamed) {
		/* From here on factory.db is the new image: use it, whatever
		 * the directory's fsync says. */
		if (rc)
			store_fail(e, rc,
				   "installed, but fsync of %s failed: %s "
				   "(may not survive a power loss)",
				   store, strerror(-rc));
		goto out_dir;
	}
	store_fail(e, rc, "rename %s to %s: %s", STORE_FACTORY_NEW,
		   STORE_FACTORY, strerror(-rc));
	layer_close(*fresh);
	*fresh = NULL;
out_unlink:
	unlinkat(dirfd, STORE_FACTORY_NEW, 0);
out_dir:
	close(dirfd);
	return rc;
}

int store_fsync_path(const char *path, int flags)
{
	int fd, rc = 0;

	fd = open(path, flags | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

int store_fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int rc;

	if (!copy)
		return -ENOMEM;
	rc = store_fsync_path(dirname(copy), O_DIRECTORY);
	free(copy);
	return rc;
}
