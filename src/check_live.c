/*
 * check_live.c - dsfsctl check on a mounted store: check a consistent
 * snapshot without refusing the daemon's writers.
 *
 * The daemon holds STORE/lock and its runtime file exclusively, so it
 * copies its runtime layer itself ("admin PID" with "snapshot check.PID":
 * layer_sqlite_copy(), a few pages at a time while its writers go on) into
 * STORE/check.PID/, a directory laid out like a store; dsfsctl copies the
 * factory image there (layer_sqlite_snapshot: it is read-only, replaced
 * only by a rename).  That copy gets the same check as an unmounted store,
 * with the same report, and is removed when the check is done.
 *
 * A runtime layer that is no SQLite file (STORE/runtime.uri: memory or
 * PostgreSQL) has no file to copy: the daemon walks it ("admin PID" with
 * "check", control_check.c), prints the same lines, and answers the
 * number of problems on its OK line.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsfsctl.h"
#include "layer.h"

/* The links to the image files that the daemon's copy made in
 * name-blobs/ (layer_sqlite_blob_files() in layer.h). */
static void drop_blob_links(int dirfd, const char *name)
{
	char dir[64];
	struct dirent *d;
	DIR *dp;
	int fd;

	snprintf(dir, sizeof(dir), "%s-blobs", name);
	fd = openat(dirfd, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dp) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((d = readdir(dp)))
		if (d->d_name[0] != '.')
			unlinkat(fd, d->d_name, 0);
	closedir(dp);
	unlinkat(dirfd, dir, AT_REMOVEDIR);
}

static void drop_copy(int dirfd, const char *name)
{
	static const char *const suffix[] = {"", "-wal", "-shm", "-journal",
					     "-reserve"};
	char path[64];
	size_t i;

	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(path, sizeof(path), "%s%s", name, suffix[i]);
		unlinkat(dirfd, path, 0);
	}
	drop_blob_links(dirfd, name);
}

/* Copy STORE/name into the snapshot directory, if the store has it. */
static int snap(struct store *s, const char *dir, const char *name,
		struct store_error *e)
{
	char *src = store_file(s->path, name), *dst = store_file(dir, name);
	const char *why = NULL;
	struct stat st;
	int rc = 0;

	if (!src || !dst)
		rc = store_fail(e, -ENOMEM, "out of memory");
	else if (fstatat(s->dirfd, name, &st, 0) == 0)
		rc = layer_sqlite_snapshot(src, dst, &why);
	if (rc && why)
		store_fail(e, rc, "%s: snapshot for check: %s", src, why);
	free(src);
	free(dst);
	return rc;
}

/* The daemon's walk of a runtime layer that is no file. */
static int ask_walk(struct store *s, const char *runtime, unsigned *problems,
		    FILE *out, struct store_error *e)
{
	char *argv[] = {(char *)"check", NULL}, ok[64] = "", *end = NULL;
	unsigned long n;
	int rc;

	if (strcmp(runtime, "memory") == 0)
		fprintf(out, "runtime: kept in memory, walked by the daemon\n");
	else
		fprintf(out, "runtime: in PostgreSQL, %s\n", runtime);
	if (fflush(out) != 0)
		return store_fail(e, -errno, "stdout: %s", strerror(errno));
	rc = admin_ask_ok(s, 1, argv, ok, sizeof(ok), e);
	if (rc)
		return rc;
	errno = 0;
	n = strtoul(ok, &end, 10);
	if (errno || end == ok || *end || n > UINT_MAX)
		return store_fail(e, -EPROTO,
				  "%s: check: unexpected reply '%s'", s->path,
				  ok);
	*problems = (unsigned)n;
	return 0;
}

int check_mounted(struct store *s, unsigned *problems, FILE *out,
		  enum progress_mode progress, struct store_error *e)
{
	char name[32], *dir, *argv[] = {(char *)"snapshot", name, NULL};
	char *runtime = store_recorded_runtime(s->path);
	unsigned walked = 0;
	struct store t;
	int rc;

	snprintf(name, sizeof(name), "check.%ld", (long)getpid());
	dir = store_file(s->path, name);
	if (!dir) {
		free(runtime);
		return store_fail(e, -ENOMEM, "out of memory");
	}
	if (mkdirat(s->dirfd, name, 0700) != 0) {
		rc = store_fail(e, -errno, "%s: %s", dir, strerror(errno));
		free(runtime);
		free(dir);
		return rc;
	}
	rc = runtime ? ask_walk(s, runtime, &walked, out, e) :
		       admin_ask(s, 2, argv, e);
	if (rc == 0)
		rc = snap(s, dir, STORE_FACTORY, e);
	if (rc == 0)
		rc = store_open(&t, dir, false, false, e);
	if (rc == 0) {
		*problems =
			runtime ? walked :
				  check_file(&t, STORE_RUNTIME, out, progress);
		*problems += check_file(&t, STORE_FACTORY, out, progress);
		drop_copy(t.dirfd, STORE_RUNTIME);
		drop_copy(t.dirfd, STORE_FACTORY);
		store_close(&t);
	} else {
		int d = openat(s->dirfd, name, O_RDONLY | O_DIRECTORY);

		if (d >= 0) {
			drop_copy(d, STORE_RUNTIME);
			drop_copy(d, STORE_FACTORY);
			close(d);
		}
	}
	unlinkat(s->dirfd, name, AT_REMOVEDIR);
	free(runtime);
	free(dir);
	return rc;
}
