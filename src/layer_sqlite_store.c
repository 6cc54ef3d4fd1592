/*
 * layer_sqlite_store.c - the SQLite layer's store file: its schema and
 * statements, checking, creating, opening and closing it, and the
 * settings of its connection (the disk under it is layer_sqlite_disk.c).
 *
 * A store is one SQLite file:
 *
 *   entry(id INTEGER PRIMARY KEY, parent TEXT, name TEXT, kind, opaque,
 *         mode, uid, gid, atime, mtime, ctime (ns since the epoch),
 *         version, size, type, token, value BLOB, UNIQUE(parent, name))
 *     with the index entry_kind of (parent, name, kind)
 *   blob(token TEXT PRIMARY KEY, refs, data BLOB)
 *     with the partial index blob_unref of the rows whose refs are 0
 *   meta(k TEXT PRIMARY KEY, v)
 *
 * One row of `entry` per stored key, named by (parent, name): parent is
 * the key of the directory holding it ("kv", "kv/app"), so a lookup is one
 * seek of the UNIQUE(parent, name) index, a listing of the mount one
 * range of entry_kind (the names and kinds alone: it reads no row, about
 * 30 bytes a name instead of some 150 with 512-byte pages,
 * layer_sqlite_list.c), and a directory rename two range updates of the
 * rows.  Image values live once per token in `blob` with a reference
 * count; `meta` holds the usage in bytes
 * ('used') and the version counter ('seq'), updated in the transaction of
 * every change, so opening a store never scans it.  The value is the last
 * column of `entry` (see layer_sqlite_tx.c).
 *
 * A store is marked as ours by application_id 0x64736673 ("dsfs") and
 * user_version 1 (2 once an image is a file beside it:
 * layer_sqlite_blobfile.c).  An existing file is validated before it is opened for
 * writing: first its 100-byte header with plain read(2), then its schema
 * on a read-only connection, so that a foreign or damaged file is refused
 * with a reason and never written.
 *
 * The runtime store runs in WAL mode with synchronous=NORMAL: a commit
 * survives a crash of the process, and sync() adds power-loss durability.
 * Closing a read-write store checkpoints it back to a single file
 * (journal_mode=DELETE), which is how the admin tool produces a factory
 * image.  A blob left unreferenced by a process that died pinning it is
 * deleted at the next read-write open, which finds it (and only it)
 * through blob_unref.  A store made before an index was is given it at
 * its first read-write open (add_indexes()); a store opened read-only
 * without entry_kind lists from the rows, as the same SQL still can.
 */
#include "layer_sql.h"
#include "layer_sqlite.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STORE_APP_ID 0x64736673u /* "dsfs" */

#define STORE_VERSION 1
/* A store some of whose images are files beside it (the first such image
 * sets it: layer_sqlite_blobfile.c), so that an older dsfs, which would
 * read those images as empty, refuses it instead. */
#define STORE_VERSION_FILES 2

/* The page size of a new store unless layer_sqlite_create() is given
 * another: the unit of every write to the WAL, so what one small change
 * costs the disk (see "On a device" in README.md).  Older stores keep the
 * page size they were made with. */
#define STORE_PAGE_SIZE 512u

/* The blobs no entry references: pinned ones, or ones left by a crash.
 * Partial, so it holds only those rows and costs nothing otherwise. */
#define BLOB_UNREF_INDEX "blob_unref ON blob(refs) WHERE refs = 0"

/* A directory's names and kinds in name order without its rows.  Only a
 * new name, a removal and a change of kind write it (commit_fn() updates
 * a file in place, by row id, leaving it alone). */
#define ENTRY_KIND_INDEX "entry_kind ON entry(parent, name, kind)"

/* PRAGMA takes no hex: 1685284467 is STORE_APP_ID. */
static const char schema_sql[] =
	"BEGIN;"
	"PRAGMA application_id = 1685284467;"
	"PRAGMA user_version = 1;"
	"CREATE TABLE entry("
	" id INTEGER PRIMARY KEY,"
	" parent TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" kind INTEGER NOT NULL,"
	" opaque INTEGER NOT NULL DEFAULT 0,"
	" mode INTEGER NOT NULL,"
	" uid INTEGER NOT NULL,"
	" gid INTEGER NOT NULL,"
	" atime INTEGER NOT NULL,"
	" mtime INTEGER NOT NULL,"
	" ctime INTEGER NOT NULL," /* ns since the epoch */
	" version INTEGER NOT NULL,"
	" size INTEGER NOT NULL,"
	" type TEXT NOT NULL DEFAULT '',"
	" token TEXT NOT NULL DEFAULT '',"
	" value BLOB," /* last: see the top of this file */
	" UNIQUE(parent, name));"
	"CREATE INDEX " ENTRY_KIND_INDEX ";"
	"CREATE TABLE blob("
	" token TEXT PRIMARY KEY,"
	" refs INTEGER NOT NULL,"
	" data BLOB NOT NULL);"
	"CREATE INDEX " BLOB_UNREF_INDEX ";"
	"CREATE TABLE meta("
	" k TEXT PRIMARY KEY,"
	" v INTEGER NOT NULL);"
	"INSERT INTO meta(k, v) VALUES ('used', 0), ('seq', 0);"
	"COMMIT;";

#define ATTR_COLS LAYER_SQL_ATTR_COLS

/* The SQL of every statement of enum stmt (layer_sqlite.h). */
const char *const sq_stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_BEGIN_READ] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT change",
	[S_RELEASE] = "RELEASE change",
	[S_ROLLBACK_TO] = "ROLLBACK TO change",
	[S_META_LOAD] = "SELECT (SELECT v FROM meta WHERE k = 'used'),"
			" (SELECT v FROM meta WHERE k = 'seq')",
	[S_META_SET] = "UPDATE meta SET v = ?2 WHERE k = ?1",
	[S_GET] = "SELECT id, " ATTR_COLS
		  " FROM entry WHERE parent = ?1 AND name = ?2",
	/* length() reads no overflow page: a value over ?3 bytes is not
	 * loaded here (NULL) but read by read() straight into its buffer,
	 * rather than copied twice. */
	[S_FETCH] = "SELECT id, " ATTR_COLS ","
		    " CASE WHEN length(value) <= ?3 THEN value END"
		    " FROM entry WHERE parent = ?1 AND name = ?2",
	[S_LIST] = "SELECT name, " ATTR_COLS " FROM entry"
		   " WHERE parent = ?1 AND name > ?2 ORDER BY name LIMIT ?3",
	[S_LIST_KINDS] = "SELECT name, kind FROM entry"
			 " WHERE parent = ?1 AND name > ?2 ORDER BY name"
			 " LIMIT ?3",
	[S_REAL_KID] = "SELECT 1 FROM entry WHERE parent = ?1 AND kind <> 3"
		       " LIMIT 1",
	/* length() of TEXT counts characters; the budget counts bytes. */
	[S_KIDS_COST] = "SELECT coalesce(sum(length(CAST(name AS BLOB))), 0)"
			" FROM entry WHERE parent = ?1",
	[S_DEL_KIDS] = "DELETE FROM entry WHERE parent = ?1",
	[S_DEL] = "DELETE FROM entry WHERE id = ?1",
	[S_PUT] = "INSERT INTO entry(parent, name, kind, opaque, mode, uid,"
		  " gid, atime, mtime, ctime, version, size, type, token,"
		  " value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10,"
		  " ?11, ?12, ?13, ?14, ?15)" LAYER_SQL_UPSERT,
	/* A file over a file: every column the commit sets but the key and
	 * the kind, so that no index is written. */
	[S_UPDATE] = "UPDATE entry SET opaque = ?2, mode = ?3, uid = ?4,"
		     " gid = ?5, atime = ?6, mtime = ?7, ctime = ?8,"
		     " version = ?9, size = ?10, type = ?11, token = ?12,"
		     " value = ?13 WHERE id = ?1",
	[S_SETATTR] = "UPDATE entry SET mode = ?2, uid = ?3, gid = ?4,"
		      " atime = ?5, mtime = ?6, ctime = ?7, version = ?8"
		      " WHERE id = ?1",
	[S_MOVE] = "UPDATE entry SET parent = ?2, name = ?3, version = ?4"
		   " WHERE id = ?1",
	[S_MOVE_KIDS] = "UPDATE entry SET parent = ?2 WHERE parent = ?1",
	/* Deeper descendants: parent in ['from/', 'from0'), which is exactly
	 * the strings that start with "from/" ('0' follows '/'), unlike LIKE,
	 * which would read '%' and '_' in names as wildcards.  substr() over
	 * the bytes keeps the tail exact whatever the text holds. */
	[S_MOVE_DESC] = "UPDATE entry SET parent = ?2 ||"
			" CAST(substr(CAST(parent AS BLOB), ?3) AS TEXT)"
			" WHERE parent >= ?4 AND parent < ?5",
	[S_BLOB_GET] = "SELECT rowid, refs, length(data) FROM blob"
		       " WHERE token = ?1",
	[S_BLOB_ADD] = "INSERT INTO blob(token, refs, data) VALUES (?1, 1, ?2)",
	[S_BLOB_REF] = "UPDATE blob SET refs = refs + ?2 WHERE token = ?1",
	[S_BLOB_GC] = "DELETE FROM blob WHERE token = ?1 AND refs <= 0",
	/* clear() marks the pinned blobs with refs -1 to spare them, then
	 * sets them to 0: nothing references them any more. */
	[S_BLOB_MARK] = "UPDATE blob SET refs = -1 WHERE token = ?1",
	[S_BLOB_UNMARK] = "UPDATE blob SET refs = 0 WHERE refs < 0",
	[S_BLOB_BYTES] = "SELECT coalesce(sum(length(data)), 0) FROM blob",
	[S_CLEAR_ENTRIES] = "DELETE FROM entry",
	[S_CLEAR_BLOBS] = "DELETE FROM blob WHERE refs >= 0",
	[S_TOUCH] = "UPDATE entry SET mtime = ?3, ctime = ?3, version = ?4"
		    " WHERE parent = ?1 AND name = ?2 AND kind = 2",
};

/* Reasons for refusing a store that carry a number live here: static as
 * far as the caller is concerned, valid until the next open on the thread. */
static __thread char why_buf[192];

const char *sq_whyf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	return why_buf;
}

/* ---- opening ------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Size of the file at path + suffix, 0 if it does not exist. */
static off_t side_size(const char *path, const char *suffix)
{
	char name[PATH_MAX];
	struct stat st;

	if (snprintf(name, sizeof(name), "%s%s", path, suffix) >=
	    (int)sizeof(name))
		return 0;
	return stat(name, &st) == 0 ? st.st_size : 0;
}

/*
 * Check a store's 100-byte header with plain read(2), before SQLite sees
 * the file: a file that is not SQLite, a SQLite file that is not ours, and
 * a store cut short are refused here without any chance of being written.
 *
 * The page count in the header is only trusted when it is current (the
 * "version-valid-for" field equals the change counter) and no journal or
 * WAL is pending: a crash in the middle of a checkpoint can legitimately
 * leave the file shorter than its new header says until recovery.  An
 * image is opened immutable, which ignores journals, so a pending one
 * means the image was not closed cleanly and is refused.
 */
static int check_header(const char *path, bool image, const char **why)
{
	unsigned char h[100];
	uint32_t psize, npages, app, ver;
	bool pending;
	struct stat st;
	ssize_t n;
	int fd, rc = -EINVAL;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = errno == ENOENT || errno == EACCES ? -errno : -EIO;
		*why = sq_whyf("cannot open: %s", strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out_close;
	}
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		rc = -EIO;
		*why = sq_whyf("cannot read: %s", strerror(errno));
		goto out_close;
	}
	if (n == 0) {
		*why = "not a SQLite database (empty file)";
		goto out_close;
	}
	if ((size_t)n < sizeof(h) || memcmp(h, "SQLite format 3", 16) != 0) {
		*why = "not a SQLite database";
		goto out_close;
	}
	psize = (uint32_t)h[16] << 8 | h[17];
	if (psize == 1)
		psize = 65536;
	if (psize < 512 || psize > 65536 || (psize & (psize - 1))) {
		*why = "damaged store (bad page size in header)";
		goto out_close;
	}
	app = be32(h + 68);
	if (app != STORE_APP_ID) {
		*why = sq_whyf("not a dsfs store (application_id 0x%08x)", app);
		goto out_close;
	}
	ver = be32(h + 60);
	if (ver != STORE_VERSION && (ver != STORE_VERSION_FILES || image)) {
		*why = ver == STORE_VERSION_FILES ?
			       "a runtime store with image files, not an image" :
			       sq_whyf("unsupported store version %u", ver);
		goto out_close;
	}
	pending = side_size(path, "-wal") > 0 ||
		  side_size(path, "-journal") > 0;
	if (image && pending) {
		*why = "factory image was not closed cleanly (journal pending)";
		goto out_close;
	}
	npages = be32(h + 28);
	if (!pending && npages && be32(h + 92) == be32(h + 24) &&
	    (uint64_t)st.st_size < (uint64_t)npages * psize) {
		*why = sq_whyf("damaged store (truncated: %lld of %llu bytes)",
			       (long long)st.st_size,
			       (unsigned long long)npages * psize);
		goto out_close;
	}
	rc = 0;
out_close:
	close(fd);
	return rc;
}

/*
 * Check through SQLite that db is a dsfs store this code can use.  Returns
 * -EAGAIN when a read-only connection cannot look because the store needs
 * recovery first (a WAL or hot journal left by a crash): the header has
 * already vouched for it, and the read-write open checks again.
 */
static int check_db(struct sq_db *db, const char **why)
{
	int64_t v = 0;
	int rc, err;

	rc = sq_db_query1(db, "PRAGMA application_id", &v, NULL, 0);
	switch (rc & 0xff) {
	case SQLITE_OK:
		break;
	case SQLITE_NOTADB:
		*why = "not a SQLite database";
		return -EINVAL;
	case SQLITE_CORRUPT:
		*why = sq_whyf("damaged store (%s)", sq_db_errmsg(db));
		return -EINVAL;
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
		*why = "store needs recovery";
		return -EAGAIN;
	case SQLITE_BUSY:
		*why = "store is locked by another process";
		return -EBUSY;
	default:
		err = sq_db_errno(db, rc, errno);
		*why = sq_whyf("cannot read store (%s)", sq_db_errmsg(db));
		return err;
	}
	if ((uint32_t)v != STORE_APP_ID) {
		*why = sq_whyf("not a dsfs store (application_id 0x%08x)",
			       (uint32_t)v);
		return -EINVAL;
	}
	rc = sq_db_query1(db, "PRAGMA user_version", &v, NULL, 0);
	if (rc == SQLITE_OK && v != STORE_VERSION && v != STORE_VERSION_FILES) {
		*why = sq_whyf("unsupported store version %lld", (long long)v);
		return -EINVAL;
	}
	if (rc == SQLITE_OK)
		rc = sq_db_query1(db,
				  "SELECT count(*) FROM sqlite_schema WHERE"
				  " type = 'table' AND name IN"
				  " ('entry', 'blob', 'meta')",
				  &v, NULL, 0);
	if (rc == SQLITE_OK && v != 3) {
		*why = "damaged store (tables missing)";
		return -EINVAL;
	}
	if (rc == SQLITE_OK) {
		rc = sq_db_prepare(db, false);
		if (rc != SQLITE_OK) {
			*why = sq_whyf("damaged store (%s)", sq_db_errmsg(db));
			return -EINVAL;
		}
		rc = sq_db_query1(db,
				  "SELECT count(*) FROM meta WHERE"
				  " k IN ('used', 'seq')",
				  &v, NULL, 0);
	}
	if (rc == SQLITE_OK && v != 2) {
		*why = "damaged store (usage records missing)";
		return -EINVAL;
	}
	if (rc != SQLITE_OK) {
		err = sq_db_errno(db, rc, errno);
		*why = sq_whyf("damaged store (%s)", sq_db_errmsg(db));
		return (rc & 0xff) == SQLITE_CORRUPT ? -EINVAL : err;
	}
	return 0;
}

/* Make the layer around an open, checked connection; takes db. */
static int layer_new(struct sq_db *db, const char *path, const char *name,
		     uint64_t budget, bool readonly, struct dsfs_layer **out,
		     const char **why)
{
	struct sq_layer *s;
	int rc = -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s)
		goto out_close;
	s->name = strdup(name ? name : "");
	s->path = strdup(path);
	if (!s->name || !s->path)
		goto out_free;
	rc = sq_db_prepare(db, true);
	if (rc != SQLITE_OK) {
		*why = sq_whyf("damaged store (%s)", sq_db_errmsg(db));
		rc = -EINVAL;
		goto out_free;
	}
	rc = -pthread_mutex_init(&s->lock, NULL);
	if (rc)
		goto out_finalize;
	/* Unseeded: the table holds one token per image open for reading,
	 * and a token is a content hash that a writer cannot aim at a bucket
	 * without finding collisions of SHA-256. */
	rc = htab_init(&s->pins, 0);
	if (rc) {
		pthread_mutex_destroy(&s->lock);
		goto out_finalize;
	}
	s->db = db;
	s->budget = budget;
	s->reserve_fd = -1;
	s->image = readonly;
	s->base.ops = &sq_ops;
	s->base.name = s->name;
	s->base.readonly = readonly;
	s->base.hashes_images = true; /* layer_sqlite_blobfile.c */
	*out = &s->base;
	return 0;

out_finalize:
	sq_db_finalize(db);
out_free:
	free(s->name);
	free(s->path);
	free(s);
out_close:
	sq_db_close(db);
	if (rc == -ENOMEM)
		*why = "out of memory";
	return rc;
}

static int fsync_parent(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (!slash)
		strcpy(dir, ".");
	else if (slash == path)
		strcpy(dir, "/");
	else if ((size_t)(slash - path) < sizeof(dir))
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	else
		return -ENAMETOOLONG;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/*
 * Create a new, empty store at path: built complete under a temporary
 * name (mode 0600 whatever the umask) and renamed into place, so that a
 * crash never leaves a half-made store that the next open would refuse.
 * If another process created path meanwhile, its store wins.
 */
static int create_store(const char *path, unsigned page_size, const char **why)
{
	char tmp[PATH_MAX], sql[40];
	struct sq_db *db = NULL;
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.new-XXXXXX", path) >=
	    (int)sizeof(tmp)) {
		*why = "path too long";
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		*why = sq_whyf("cannot create: %s", strerror(errno));
		return rc;
	}
	rc = fchmod(fd, 0600) < 0 ? -errno : 0;
	close(fd);
	if (rc) {
		*why = sq_whyf("cannot create: %s", strerror(-rc));
		goto out_unlink;
	}
	rc = sq_db_open(tmp, SQLITE_OPEN_READWRITE, &db, why);
	if (rc)
		goto out_unlink;
	/* Default journal (DELETE) and synchronous=FULL: the COMMIT has
	 * synced the file by the time sqlite3_exec() returns.  The page size
	 * is set before the first table makes it final. */
	snprintf(sql, sizeof(sql), "PRAGMA page_size = %u", page_size);
	rc = sq_db_exec(db, sql);
	if (rc == SQLITE_OK)
		rc = sq_db_exec(db, schema_sql);
	if (rc != SQLITE_OK) {
		rc = sq_db_errno(db, rc, errno);
		*why = sq_whyf("cannot create: %s", sq_db_errmsg(db));
		sq_db_close(db);
		goto out_unlink;
	}
	rc = sq_db_close(db);
	if (rc != SQLITE_OK) {
		*why = sq_whyf("cannot create: %s", sqlite3_errstr(rc));
		rc = -EIO;
		goto out_unlink;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		/* Filesystems without RENAME_NOREPLACE: plain rename. */
		if (errno == EINVAL && rename(tmp, path) == 0)
			goto out_synced;
		rc = errno == EEXIST ? 0 : -errno;
		if (rc)
			*why = sq_whyf("cannot create: %s", strerror(errno));
		goto out_unlink;
	}
out_synced:
	rc = fsync_parent(path);
	if (rc)
		*why = sq_whyf("cannot sync directory: %s", strerror(-rc));
	return rc;

out_unlink:
	unlink(tmp);
	return rc;
}

int layer_sqlite_create(const char *path, unsigned page_size, const char **why)
{
	const char *scratch;
	struct stat st;

	if (!why)
		why = &scratch;
	*why = "";
	if (page_size < 512 || page_size > 65536 ||
	    (page_size & (page_size - 1))) {
		*why = "page size not a power of two from 512 to 65536";
		return -EINVAL;
	}
	if (lstat(path, &st) == 0) {
		*why = "exists (its page size was fixed when it was made)";
		return -EEXIST;
	}
	if (errno != ENOENT) {
		*why = sq_whyf("cannot stat: %s", strerror(errno));
		return -errno;
	}
	return create_store(path, page_size, why);
}

/* The indexes of a store made before them, built once, at its first
 * read-write open by a dsfs that has them: one pass over the table (a few
 * seconds for a million entries).  Nothing is written when they exist. */
static int add_indexes(struct sq_db *db, const char **why)
{
	int rc = sq_db_exec(db,
			    "BEGIN IMMEDIATE;"
			    "CREATE INDEX IF NOT EXISTS " ENTRY_KIND_INDEX ";"
			    "CREATE INDEX IF NOT EXISTS " BLOB_UNREF_INDEX ";"
			    "COMMIT;");

	if (rc != SQLITE_OK) {
		int err = sq_db_errno(db, rc, errno);

		*why = sq_whyf("cannot index store (%s)", sq_db_errmsg(db));
		if (sq_db_in_tx(db))
			sq_db_exec(db, "ROLLBACK");
		return err;
	}
	return 0;
}

/*
 * Delete the blobs that no entry references, which only a process that
 * died while it had them pinned leaves behind, and give their bytes back,
 * in one transaction.  The partial index blob_unref (add_indexes()) finds
 * exactly those rows, so the work grows with the garbage, not with the
 * store; with none, nothing is written.
 */
static int collect_garbage(struct sq_db *db, const char *path, const char **why)
{
	int64_t n = 0, bytes = 0;
	int rc;

	rc = sq_db_exec(db, "BEGIN IMMEDIATE");
	if (rc == SQLITE_OK)
		rc = sq_db_query1(db,
				  "SELECT count(*) FROM blob WHERE refs = 0",
				  &n, NULL, 0);
	if (rc == SQLITE_OK && n)
		rc = sq_db_query1(
			db,
			"SELECT coalesce(sum(length(data)), 0) FROM blob"
			" WHERE refs = 0",
			&bytes, NULL, 0);
	if (rc == SQLITE_OK && n) {
		int64_t files = 0; /* what blob files hold: empty cells */
		char sql[96];

		rc = sq_bf_collect(db, path, &files);
		bytes += files;
		snprintf(
			sql, sizeof(sql),
			"UPDATE meta SET v = max(v - %lld, 0) WHERE k = 'used'",
			(long long)files);
		if (rc == SQLITE_OK)
			rc = sq_db_exec(db, sql);
	}
	if (rc == SQLITE_OK && n)
		rc = sq_db_exec(db, "UPDATE meta SET v = max(v - (SELECT"
				    " coalesce(sum(length(data)), 0) FROM blob"
				    " WHERE refs = 0), 0) WHERE k = 'used';"
				    "DELETE FROM blob WHERE refs = 0;");
	if (rc == SQLITE_OK)
		rc = sq_db_exec(db, "COMMIT");
	if (rc != SQLITE_OK) {
		int err = sq_db_errno(db, rc, errno);

		*why = sq_whyf("cannot collect unreferenced blobs (%s)",
			       sq_db_errmsg(db));
		if (sq_db_in_tx(db))
			sq_db_exec(db, "ROLLBACK");
		return err;
	}
	if (n)
		log_info("%s: deleted %lld unreferenced blobs (%lld bytes)",
			 path, (long long)n, (long long)bytes);
	return 0;
}

int layer_sqlite_open(const char *path, const char *name, uint64_t budget,
		      bool create, struct dsfs_layer **out, const char **why)
{
	const char *scratch;
	struct sq_db *db = NULL;
	char mode[16] = "";
	struct stat st;
	int rc;

	if (!why)
		why = &scratch;
	*why = "";
	if (stat(path, &st) < 0) {
		if (errno != ENOENT) {
			rc = -errno;
			*why = sq_whyf("cannot stat: %s", strerror(errno));
			return rc;
		}
		if (!create) {
			*why = "no such store";
			return -ENOENT;
		}
		rc = create_store(path, STORE_PAGE_SIZE, why);
		if (rc)
			return rc;
	}

	/* Validate without the power to write. */
	rc = check_header(path, false, why);
	if (rc)
		return rc;
	rc = sq_db_open(path, SQLITE_OPEN_READONLY, &db, why);
	if (rc)
		return rc;
	rc = check_db(db, why);
	sq_db_close(db);
	db = NULL;
	if (rc && rc != -EAGAIN)
		return rc;

	/* Now for real.  No SQLITE_OPEN_CREATE: if the file vanished since,
	 * say so rather than make an empty one. */
	rc = sq_db_open(path, SQLITE_OPEN_READWRITE, &db, why);
	if (rc)
		return rc;
	rc = check_db(db, why);
	if (rc == -EAGAIN)
		rc = -EIO;
	if (rc)
		goto out_close;
	rc = sq_db_query1(db, "PRAGMA journal_mode = WAL", NULL, mode,
			  sizeof(mode));
	if (rc == SQLITE_OK && strcmp(mode, "wal") != 0)
		log_warn("%s: WAL not available, using journal mode %s", path,
			 mode);
	/* 1 MiB of page cache rather than SQLite's 2: a listing of a big
	 * directory fills whatever the cache holds with pages it will not
	 * read again, which is then the daemon's memory for good, and a
	 * miss costs a read from the kernel's page cache, not the disk. */
	if (rc == SQLITE_OK)
		rc = sq_db_exec(db, "PRAGMA synchronous = NORMAL;"
				    "PRAGMA cache_size = -1024;");
	if (rc != SQLITE_OK) {
		rc = sq_db_errno(db, rc, errno);
		*why = sq_whyf("cannot set up store (%s)", sq_db_errmsg(db));
		goto out_close;
	}
	rc = add_indexes(db, why);
	if (rc == 0)
		rc = collect_garbage(db, path, why);
	if (rc)
		goto out_close;
	rc = layer_new(db, path, name, budget, false, out, why);
	if (rc)
		return rc;
	/* The WAL's limits, from the filesystem (layer_sqlite_disk.c). */
	rc = sq_disk_plan(to_sq(*out));
	if (rc) {
		*why = sq_whyf("cannot size the WAL (%s)", strerror(-rc));
		sq_close(*out);
		*out = NULL;
	}
	return rc;

out_close:
	sq_db_close(db);
	return rc;
}

/* "file:" URI for path: every byte outside the unreserved set and '/' is
 * %-escaped, so '?', '#' and '%' in a path cannot be read as URI syntax. */
static char *file_uri(const char *path, const char *query)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(path);
	char *uri, *p;

	uri = malloc(5 + 3 * n + strlen(query) + 1);
	if (!uri)
		return NULL;
	p = uri + sprintf(uri, "file:");
	/* "file://x" would make x the authority: Linux reads "//" as "/". */
	while (path[0] == '/' && path[1] == '/')
		path++;
	for (; *path; path++) {
		unsigned char c = (unsigned char)*path;

		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || strchr("-._~/", c)) {
			*p++ = (char)c;
		} else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	memcpy(p, query, strlen(query) + 1);
	return uri;
}

int layer_sqlite_open_image(const char *path, const char *name, uint64_t budget,
			    struct dsfs_layer **out, const char **why)
{
	const char *scratch;
	struct sq_db *db = NULL;
	char *uri;
	int rc;

	if (!why)
		why = &scratch;
	*why = "";
	rc = check_header(path, true, why);
	if (rc)
		return rc;
	/* immutable=1: SQLite takes no locks and never writes, not even a
	 * -shm file, which also lets the image live on a read-only mount. */
	uri = file_uri(path, "?immutable=1");
	if (!uri) {
		*why = "out of memory";
		return -ENOMEM;
	}
	rc = sq_db_open(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, &db, why);
	free(uri);
	if (rc)
		return rc;
	rc = check_db(db, why);
	if (rc == -EAGAIN)
		rc = -EIO;
	if (rc == 0 &&
	    sq_db_exec(db, "PRAGMA cache_size = -2000") != SQLITE_OK) {
		*why = sq_whyf("cannot set up image (%s)", sq_db_errmsg(db));
		rc = -EIO;
	}
	if (rc) {
		sq_db_close(db);
		return rc;
	}
	return layer_new(db, path, name, budget, true, out, why);
}

int layer_sqlite_exclusive(struct dsfs_layer *l)
{
	struct sq_layer *s = to_sq(l);
	int rc;

	char mode[16] = "";
	int rc2;

	pthread_mutex_lock(&s->lock);
	rc = sq_db_exec(s->db, "PRAGMA locking_mode = EXCLUSIVE");
	if (rc != SQLITE_OK) {
		rc = sq_db_errno(s->db, rc, errno);
		goto out_unlock;
	}
	s->exclusive = true;
	/* Leaving WAL mode and entering it again under the exclusive lock
	 * moves the WAL's index from the mapped file -shm, whose page the
	 * kernel writes back to the disk after every burst of commits, to
	 * the heap.  It checkpoints what a crash left in the WAL (at most
	 * 2 W); if it cannot, the store stays as it was, which is correct. */
	rc2 = sq_db_query1(s->db, "PRAGMA journal_mode = DELETE", NULL, mode,
			   sizeof(mode));
	if (rc2 == SQLITE_OK)
		rc2 = sq_db_query1(s->db, "PRAGMA journal_mode = WAL", NULL,
				   mode, sizeof(mode));
	if (rc2 != SQLITE_OK || strcmp(mode, "wal") != 0)
		log_warn("%s: WAL index left in the -shm file: %s", s->path,
			 rc2 != SQLITE_OK ? sq_db_errmsg(s->db) : mode);
out_unlock:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- closing ------------------------------------------------------- */

/* A pin (layer_sqlite.c) begins with its node. */
static void pin_free(struct htab_node *h, void *arg)
{
	(void)arg;
	free(h);
}

/*
 * Leave a read-write store as one self-contained file: checkpoint the WAL
 * into it and switch back to a rollback journal, so no -wal or -shm file
 * is left beside it.  This is what makes a file built by the admin tool a
 * factory image; for the runtime store it is harmless, since the next open
 * turns WAL on again.  It fails (and the store stays in WAL mode, which is
 * still correct) if another process has the store open.
 */
void sq_close(struct dsfs_layer *l)
{
	struct sq_layer *s = to_sq(l);
	char mode[16] = "";
	int rc;

	/* Nobody uses the layer any more: no lock to take.  A failure is
	 * logged, naming what was lost. */
	sq_settle(s);
	if (s->bf_min) /* everything pending is settled: none is writing */
		sq_bf_settle(s, true);
	sq_db_finalize(s->db);
	if (!s->base.readonly) {
		rc = sq_db_exec(s->db, "PRAGMA synchronous = FULL");
		if (rc == SQLITE_OK)
			rc = sq_db_query1(s->db, "PRAGMA journal_mode = DELETE",
					  NULL, mode, sizeof(mode));
		if (rc != SQLITE_OK)
			log_warn("%s: left in WAL mode at close: %s", s->path,
				 sq_db_errmsg(s->db));
		else if (strcmp(mode, "delete") != 0)
			log_warn("%s: left in %s mode at close", s->path, mode);
	}
	rc = sq_db_close(s->db);
	if (rc != SQLITE_OK)
		log_err("%s: close: %s", s->path, sqlite3_errstr(rc));
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	pthread_mutex_destroy(&s->lock);
	htab_drain(&s->pins, pin_free, NULL);
	htab_free(&s->pins);
	free(s->name);
	free(s->path);
	free(s);
}
