/*
 * layer_sqlite_blobfile.c - large image blobs of the runtime store kept as
 * files beside the database instead of in it.
 *
 * Why: the store's pages are small (512 bytes, for what one small change
 * costs a flash device), so a 1 MiB image in the database is 2,048 WAL
 * frames of two write() calls each, then, as it is more than the WAL's
 * limit W (layer_sqlite_disk.c), a checkpoint that reads all of them back,
 * writes them into the database file and syncs both: about 12,000 system
 * calls and two syncs of 1 MiB on the close that commits it (30 ms on a
 * disk where writing and syncing 1 MiB as one file takes 1.3 ms).
 *
 * Layout.  The store file at PATH gets a directory PATH-blobs/ with the
 * blob files, named by their token, and PATH-blobs/pending/.  The blob's
 * row stays in the database with its token and reference count; its data
 * cell is empty (no image is empty, so an empty cell means "in a file").
 * A file is in pending/ from before the row that references it is durable
 * until after, and from before the row that references it is deleted
 * until that deletion is durable:
 *
 *   commit   pending/TOKEN written and fdatasync'd, the directory
 *            fsync'd (lock not held, before the transaction); then the
 *            transaction inserts the row.  The file is made under its
 *            token when that is known and free (write_file()), else as
 *            pending/new.N, renamed to pending/TOKEN once synced.
 *            When the commit leaves the token to the layer (layer.h,
 *            hash_token), the file's writeback is started before the
 *            bytes are hashed, and the disk writes them meanwhile: a
 *            1 MiB image is hashed in about 0.7 ms, which its sync no
 *            longer waits behind.  A token the store turns out to hold
 *            already keeps its file, and the new one is unlinked.
 *   delete   the transaction that deletes the row moves TOKEN to
 *            pending/TOKEN.
 *   settle   after the WAL is synced (so every committed row and
 *            deletion is durable), each pending/TOKEN whose row exists
 *            moves back to TOKEN, the others are unlinked.  The WAL is
 *            synced as it is, not checkpointed: a checkpoint would start
 *            it over, and the next commit would sync its new header.
 *
 * So a file whose row is durable is complete (synced before the row was
 * written), and no file that a durable row references is ever unlinked:
 * a row rolled back, or a deletion undone by a power loss, finds its file
 * in pending/, which readers look in too.  Whatever a crash leaves
 * unfinished is in pending/ and is settled at the next mount (after the
 * mount's checkpoint); that directory holds only what changed since the
 * last settle, so mounting still does no work that grows with the store.
 * Settling runs after a change that removed a file (so that its space
 * is free again at once, as a full disk needs), else every SETTLE_EVERY
 * files written, when no file is being written, and at close.
 *
 * Promises kept: a commit returns after its file is synced, so a close
 * that returned survives a crash of the daemon as before and, once
 * sync() has made the row durable, a power loss; an image's bytes count
 * in the budget once per token as before (the file's size); a commit
 * needs the same room on the disk as one into the database
 * (sq_disk_room_for()), and none is written while the space reserve is
 * out, so removing stays possible on a full disk.  A blob already in the
 * database stays there; a factory image, built without this, stays one
 * file.  The transaction of the first file also sets the store's
 * user_version to 2, which an older dsfs refuses rather than read those
 * images as empty.
 */
#include "layer_sqlite.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SETTLE_EVERY 16
#define PENDING "pending"

/* A token is 64 lower-case hex digits: nothing else in the directories is
 * a blob. */
static bool is_token(const char *name)
{
	return strlen(name) == DSFS_TOKEN_LEN &&
	       strspn(name, "0123456789abcdef") == DSFS_TOKEN_LEN;
}

/* PATH-blobs, PATH-blobs/pending, or a file in either; -ENAMETOOLONG. */
static int bf_path(const char *store, bool pending, const char *name, char *buf,
		   size_t cap)
{
	int n = snprintf(buf, cap, "%s-blobs%s%s%s%s", store,
			 pending ? "/" PENDING : "", name ? "/" : "",
			 name ? name : "", "");

	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

static int make_dirs(const char *store)
{
	char dir[PATH_MAX];
	int rc;

	rc = bf_path(store, false, NULL, dir, sizeof(dir));
	if (rc == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	if (rc == 0)
		rc = bf_path(store, true, NULL, dir, sizeof(dir));
	if (rc == 0 && mkdir(dir, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	return rc;
}

enum where {
	ROW_NONE,
	ROW_FILE,
	ROW_DB,
	ROW_UNKNOWN
};

/* Where token's row keeps its bytes, if it has a row.  (A token is hex:
 * nothing to quote.) */
static enum where row_of(struct sq_db *db, const char *token)
{
	char sql[160];
	int64_t v = 0;
	int rc;

	snprintf(sql, sizeof(sql),
		 "SELECT length(data) FROM blob WHERE token = '%s'", token);
	rc = sq_db_query1(db, sql, &v, NULL, 0);
	if (rc == SQLITE_EMPTY)
		return ROW_NONE;
	return rc == SQLITE_OK ? (v == 0 ? ROW_FILE : ROW_DB) : ROW_UNKNOWN;
}

/* ---- writing --------------------------------------------------------- */

/* Does the store hold token's blob already?  1 yes, 0 no, or a negative
 * errno.  Lock held. */
static int blob_held(struct sq_layer *s, const char *token)
{
	struct tx t = {.s = s, .what = "commit", .key = token};
	struct blobinfo b;
	int rc = sq_blob_get(&t, token, &b);

	return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
}

/* Whether a new file of len bytes may be written for a blob: 0 yes, 1 no
 * (the database keeps it), or a negative errno.  A token the store holds
 * already keeps its blob; with the reserve out, a commit must fit in the
 * database's free pages (see layer_sqlite_disk.c), which the database
 * path checks.  token NULL: not known yet.  Lock held. */
static int may_write(struct sq_layer *s, const char *token, size_t len)
{
	int rc;

	if (s->reserve_out)
		return 1;
	rc = token ? blob_held(s, token) : 0;
	return rc ? rc : sq_disk_room_for(s, len);
}

/* blob_held(), asked again once the bytes were hashed.  Lock not held. */
static int held(struct sq_layer *s, const char *token)
{
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = blob_held(s, token);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* pending/TOKEN with data[0..len), synced, its name synced: 0.  With hash,
 * token is computed here, while the disk writes the file; 1 if the store
 * holds that token already (and no file was kept).
 *
 * A token known beforehand names the file at its creation (O_EXCL), so
 * that its sync also makes its name durable and the directory's sync
 * finds nothing left to write: one journal commit instead of two, and no
 * rename (70-215 µs of 1.3-1.6 ms on the disk of tests/bench/README.md,
 * run 30).  A crash may leave that file half written under its token,
 * but no row refers to it (the row is written after both syncs), and the
 * next settle removes it.  If the name exists (a file whose row's
 * deletion is not durable yet, or another writer of the same bytes), the
 * file is written under a name of its own and renamed over it once
 * synced, as with a token computed here: a complete file only ever
 * replaces one. */
static int write_file(struct sq_layer *s, char *token, bool hash,
		      const void *data, size_t len)
{
	char dir[PATH_MAX], tmp[48];
	const char *p = data, *why = "open", *name = hash ? "(new)" : token;
	const char *made = tmp;
	int dfd, fd = -1, rc = 0;
	ssize_t n;

	if (bf_path(s->path, true, NULL, dir, sizeof(dir)) != 0)
		return -ENAMETOOLONG;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0 && errno == ENOENT && make_dirs(s->path) == 0)
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		log_err("%s: cannot open %s: %s", s->path, dir, strerror(-rc));
		return rc;
	}
	/* One writer per thread at a time: the name is its own. */
	snprintf(tmp, sizeof(tmp), "new.%ld.%lu", (long)getpid(),
		 (unsigned long)pthread_self());
	if (!hash) {
		fd = openat(dfd, token, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			    0600);
		if (fd >= 0)
			made = token;
		else if (errno != EEXIST) {
			rc = -errno;
			made = token;
			goto out;
		}
	}
	if (fd < 0)
		fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			    0600);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = n < 0 ? -errno : -EIO;
			why = "write";
			break;
		}
		p += n;
		len -= (size_t)n;
	}
	if (rc == 0 && hash) {
		/* Only a start: fdatasync() below reports what failed. */
		(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
		layer_image_token(data, (size_t)(p - (const char *)data),
				  token);
		name = token;
		rc = held(s, token);
		why = "lookup";
	}
	if (rc == 0 && fdatasync(fd) < 0) {
		rc = -errno;
		why = "fdatasync";
	}
	/* Named by its token and not complete: emptied, not unlinked, as
	 * the name may be another writer's complete file by now. */
	if (rc && made == token)
		(void)ftruncate(fd, 0);
	if (close(fd) < 0 && rc == 0) {
		rc = -errno;
		why = "close";
	}
	if (rc == 0 && made == tmp && renameat(dfd, tmp, dfd, token) < 0) {
		rc = -errno;
		why = "rename";
	}
	if (rc == 0 && fsync(dfd) < 0) {
		rc = -errno;
		why = "fsync";
	}
	if (rc && made == tmp) /* after the rename there is no tmp:
				* pending/TOKEN stays, and the next settle
				* finds no row for it */
		unlinkat(dfd, tmp, 0);
out:
	if (rc < 0)
		log_err("%s: image %s: %s of %s/%s: %s", s->path, name, why,
			dir, made, strerror(-rc));
	close(dfd);
	return rc;
}

int sq_bf_prepare(struct sq_layer *s, char *token, bool hash, const void *data,
		  size_t len)
{
	bool big = s->bf_min && len >= s->bf_min;
	int rc = 1;

	if (big && (hash || is_token(token))) {
		pthread_mutex_lock(&s->lock);
		rc = may_write(s, hash ? NULL : token, len);
		if (rc == 0)
			s->bf_busy++;
		pthread_mutex_unlock(&s->lock);
	}
	if (rc == 0) {
		rc = write_file(s, token, hash, data, len);
		if (rc == 1) { /* held: nothing was left in pending/ */
			pthread_mutex_lock(&s->lock);
			s->bf_busy--;
			pthread_mutex_unlock(&s->lock);
			return 1;
		}
		return rc ? sq_bf_done(s, true, rc) : 0;
	}
	if (!hash)
		return rc;
	/* Not written first (small, no room, the reserve out): hashed, then
	 * asked again with the token, which, held, needs no room. */
	layer_image_token(data, len, token);
	return big ? sq_bf_prepare(s, token, false, data, len) : 1;
}

/* Lock not held.  The file is in pending/ whatever became of the commit:
 * the next settle keeps it or removes it. */
int sq_bf_done(struct sq_layer *s, bool began, int rc)
{
	if (!began)
		return rc;
	pthread_mutex_lock(&s->lock);
	s->bf_busy--;
	s->bf_todo++;
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int sq_bf_mark(struct tx *t)
{
	int64_t v = 0;
	int rc = sq_db_query1(t->s->db, "PRAGMA user_version", &v, NULL, 0);

	if (rc == SQLITE_OK && v == 1)
		rc = sq_db_exec(t->s->db, "PRAGMA user_version = 2");
	if (rc != SQLITE_OK) {
		log_err("%s: cannot mark the store as holding image files: %s",
			t->s->path, sq_db_errmsg(t->s->db));
		return -EIO;
	}
	return 0;
}

bool sq_bf_ready(struct sq_layer *s, const char *token)
{
	char name[PATH_MAX];
	struct stat st;

	return bf_path(s->path, true, token, name, sizeof(name)) == 0 &&
	       stat(name, &st) == 0;
}

/* ---- reading --------------------------------------------------------- */

/* token's file, in place or still in pending/ (the lock is held: no
 * settle moves it meanwhile): opened (the descriptor is returned) or, with
 * size, its size read (0 is returned). */
static int find_blob(struct sq_layer *s, const char *token, uint64_t *size)
{
	char name[PATH_MAX];
	struct stat st;
	int fd, i, err = ENOENT;

	for (i = 0; i < 2; i++) {
		if (bf_path(s->path, i == 1, token, name, sizeof(name)) != 0)
			return -ENAMETOOLONG;
		if (size && stat(name, &st) == 0) {
			*size = (uint64_t)st.st_size;
			return 0;
		}
		fd = size ? -1 : open(name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			err = errno;
	}
	/* A row whose file is gone: the store was damaged from outside. */
	log_err("%s: image %s: its file %s: %s", s->path, token, name,
		strerror(err));
	return -EIO;
}

static int open_blob(struct sq_layer *s, const char *token)
{
	return find_blob(s, token, NULL);
}

/* A stat, not an open, a read and a close: a file's size is asked each time
 * its blob's row is read (a pin, a read, a commit of its token). */
int sq_bf_size(struct sq_layer *s, const char *token, uint64_t *size)
{
	return find_blob(s, token, size);
}

int sq_bf_read(struct tx *t, const char *token, uint64_t off, void *buf,
	       size_t len, ssize_t *done)
{
	int fd = open_blob(t->s, token);
	ssize_t n = 0, got = 0;

	*done = 0;
	if (fd < 0)
		return fd;
	while ((size_t)got < len) {
		n = pread(fd, (char *)buf + got, len - (size_t)got,
			  (off_t)(off + (uint64_t)got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += n;
	}
	if (n < 0) {
		int err = errno;

		log_err("%s: image %s: read: %s", t->s->path, token,
			strerror(err));
		close(fd);
		return -EIO;
	}
	close(fd);
	*done = got;
	return 0;
}

/* ---- deleting and settling -------------------------------------------- */

/* Move TOKEN to pending/TOKEN; nothing if it is not there. */
static int to_pending(struct sq_layer *s, const char *token)
{
	char from[PATH_MAX], to[PATH_MAX];

	if (bf_path(s->path, false, token, from, sizeof(from)) != 0 ||
	    bf_path(s->path, true, token, to, sizeof(to)) != 0)
		return -ENAMETOOLONG;
	if (rename(from, to) == 0) {
		/* Settled right after this change: its bytes go back to the
		 * disk now, not SETTLE_EVERY images later. */
		s->bf_todo += SETTLE_EVERY;
		return 0;
	}
	if (errno == ENOENT) {
		struct stat st;

		/* Still pending since its commit: gone at the settle too. */
		if (stat(to, &st) == 0)
			s->bf_todo += SETTLE_EVERY;
		return 0;
	}
	log_err("%s: image %s: cannot move its file to %s: %s", s->path, token,
		to, strerror(errno));
	return -EIO;
}

/* After a statement that may have deleted token's row, in its
 * transaction. */
int sq_bf_drop(struct tx *t, const char *token)
{
	enum where r = is_token(token) ? row_of(t->s->db, token) : ROW_DB;

	if (r == ROW_UNKNOWN)
		return -EIO;
	return r == ROW_NONE ? to_pending(t->s, token) : 0;
}

/* After clear() deleted every blob row but the pinned ones: move the
 * files of the deleted ones, and count the pinned ones' in *bytes. */
int sq_bf_clear(struct tx *t, int64_t *bytes)
{
	char dir[PATH_MAX];
	struct dirent *d;
	uint64_t size = 0;
	DIR *dp;
	int rc = 0;

	if (bf_path(t->s->path, false, NULL, dir, sizeof(dir)) != 0)
		return -ENAMETOOLONG;
	dp = opendir(dir);
	if (!dp)
		return errno == ENOENT ? 0 : -EIO;
	while (rc == 0 && (d = readdir(dp))) {
		if (!is_token(d->d_name))
			continue;
		switch (row_of(t->s->db, d->d_name)) {
		case ROW_NONE:
			rc = to_pending(t->s, d->d_name);
			break;
		case ROW_FILE:
			if (sq_bf_size(t->s, d->d_name, &size) == 0)
				*bytes += (int64_t)size;
			break;
		case ROW_DB:
			break;
		case ROW_UNKNOWN:
			rc = -EIO;
			break;
		}
	}
	closedir(dp);
	return rc;
}

void sq_bf_settle(struct sq_layer *s, bool mount)
{
	char dir[PATH_MAX], to[PATH_MAX];
	unsigned kept = 0, gone = 0;
	struct dirent *d;
	int dfd, rc;
	DIR *dp;

	if (!mount && (s->bf_todo < SETTLE_EVERY || s->bf_busy))
		return;
	/* Every row and deletion committed so far becomes durable.  At
	 * mount the log is copied into the database too, as at every open;
	 * later a sync of the log is enough. */
	rc = mount ? sq_db_checkpoint(s->db) : sq_db_sync_log(s->db);
	if (rc != 0) {
		log_warn("%s: image files not settled: %s of the log: %s",
			 s->path, mount ? "checkpoint" : "sync",
			 mount ? sq_db_errmsg(s->db) : sqlite3_errstr(rc));
		return;
	}
	if (bf_path(s->path, true, NULL, dir, sizeof(dir)) != 0)
		return;
	dp = opendir(dir);
	if (!dp) {
		if (errno != ENOENT)
			log_warn("%s: cannot settle image files: %s: %s",
				 s->path, dir, strerror(errno));
		return;
	}
	dfd = dirfd(dp);
	while ((d = readdir(dp))) {
		enum where r = is_token(d->d_name) ? row_of(s->db, d->d_name) :
						     ROW_NONE;

		if (d->d_name[0] == '.' || r == ROW_UNKNOWN)
			continue;
		if (r == ROW_FILE &&
		    bf_path(s->path, false, d->d_name, to, sizeof(to)) == 0 &&
		    renameat(dfd, d->d_name, AT_FDCWD, to) == 0) {
			kept++;
			continue;
		}
		/* Not referenced, or a file that a crash left half written
		 * (at mount no writer is running). */
		if (r != ROW_FILE && (is_token(d->d_name) || mount) &&
		    unlinkat(dfd, d->d_name, 0) == 0)
			gone++;
	}
	closedir(dp);
	s->bf_todo = 0;
	if (mount && (kept || gone))
		log_info("%s: image files settled: %u kept, %u removed",
			 s->path, kept, gone);
}

int layer_sqlite_blob_files(struct dsfs_layer *l, uint64_t min_bytes)
{
	struct sq_layer *s = to_sq(l);
	int rc;

	if (s->base.readonly)
		return -EROFS;
	rc = make_dirs(s->path);
	if (rc) {
		log_err("%s: cannot make %s-blobs/%s: %s", s->path, s->path,
			PENDING, strerror(-rc));
		return rc;
	}
	pthread_mutex_lock(&s->lock);
	sq_bf_settle(s, true);
	s->bf_min = min_bytes;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* ---- at open, and for dsfsctl check ----------------------------------- */

struct collect {
	const char *path;
	int64_t bytes;
	int rc;
};

static int collect_one(void *ctx, const char *token)
{
	struct collect *c = ctx;
	char from[PATH_MAX], to[PATH_MAX];
	struct stat st;
	int i;

	if (!is_token(token))
		return 0;
	for (i = 0; i < 2; i++) {
		if (bf_path(c->path, i == 1, token, from, sizeof(from)) != 0)
			return 0;
		if (stat(from, &st) == 0)
			break;
	}
	if (i == 2)
		return 0;
	c->bytes += (int64_t)st.st_size;
	if (i == 0 && bf_path(c->path, true, token, to, sizeof(to)) == 0 &&
	    make_dirs(c->path) == 0 && rename(from, to) < 0) {
		c->rc = -errno;
		return 1;
	}
	return 0;
}

/* Inside collect_garbage()'s transaction: the files of the unreferenced
 * blob rows it deletes go to pending/, and their bytes to *bytes. */
int sq_bf_collect(struct sq_db *db, const char *path, int64_t *bytes)
{
	struct collect c = {.path = path};
	int rc;

	rc = sq_db_each(db,
			"SELECT token FROM blob WHERE refs = 0 AND"
			" length(data) = 0",
			collect_one, &c);
	*bytes = c.bytes;
	if (rc == 1)
		log_err("%s: cannot move an unreferenced image file: %s", path,
			strerror(-c.rc));
	return rc;
}

/* Hard links to every blob file in dst's blob directory, for a copy of
 * the database made by sq_backup(); the files never change. */
int sq_bf_copy(struct sq_layer *s, const char *dst)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct dirent *d;
	int i, rc = 0;
	DIR *dp;

	for (i = 0; rc == 0 && i < 2; i++) {
		if (bf_path(s->path, i == 1, NULL, from, sizeof(from)) != 0)
			return -ENAMETOOLONG;
		dp = opendir(from);
		if (!dp)
			continue;
		while (rc == 0 && (d = readdir(dp))) {
			if (!is_token(d->d_name))
				continue;
			rc = bf_path(dst, false, NULL, to, sizeof(to));
			if (rc == 0 && mkdir(to, 0700) < 0 && errno != EEXIST)
				rc = -errno;
			if (rc == 0 && (bf_path(s->path, i == 1, d->d_name,
						from, sizeof(from)) != 0 ||
					bf_path(dst, false, d->d_name, to,
						sizeof(to)) != 0))
				rc = -ENAMETOOLONG;
			if (rc == 0 && link(from, to) < 0 && errno != EEXIST)
				rc = -errno;
		}
		closedir(dp);
	}
	return rc;
}
