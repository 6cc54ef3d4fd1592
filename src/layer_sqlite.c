/*
 * layer_sqlite.c - the runtime layer (read-write) and the factory image
 * (read-only), each one SQLite file.
 *
 * One row of `entry` per stored key, named by (parent, name): parent is
 * the key of the directory holding it ("kv", "kv/app"), so a lookup is one
 * seek of the UNIQUE(parent, name) index, a listing one range of it, and a
 * directory rename two range updates of it.  Image values live once per
 * token in `blob` with a reference count; `meta` holds the usage in bytes
 * ('used') and the version counter ('seq'), updated in the transaction of
 * every change, so opening a store never scans it.  The value is the last
 * column of `entry`, so reading a row's attributes never touches the
 * overflow pages of a large value, and reads go through SQLite's blob I/O,
 * which reads only the range asked for.
 *
 *   entry(id INTEGER PRIMARY KEY, parent TEXT, name TEXT, kind, opaque,
 *         mode, uid, gid, atime, mtime, ctime (ns since the epoch),
 *         version, size, type, token, value BLOB, UNIQUE(parent, name))
 *   blob(token TEXT PRIMARY KEY, refs, data BLOB)
 *     with the partial index blob_unref of the rows whose refs are 0
 *   meta(k TEXT PRIMARY KEY, v)
 *
 * Pins (layer.h) are counted in a small hash table in memory, s->pins: a
 * blob whose refs drop to 0 while it is pinned stays, and is deleted by
 * its last unpin.  One left behind by a process that died pinning it is
 * deleted at the next read-write open, which finds it (and only it)
 * through blob_unref.
 *
 * A store is marked as ours by application_id 0x64736673 ("dsfs") and
 * user_version 1.  An existing file is validated before it is opened for
 * writing: first its 100-byte header with plain read(2), then its schema
 * on a read-only connection, so that a foreign or damaged file is refused
 * with a reason and never written.
 *
 * Every change is one BEGIN IMMEDIATE transaction.  The runtime store runs
 * in WAL mode with synchronous=NORMAL: a commit survives a crash of the
 * process, and sync() adds power-loss durability.  Closing a read-write
 * store checkpoints it back to a single file (journal_mode=DELETE), which
 * is how the admin tool produces a factory image.
 *
 * Locking: the connection is opened SQLITE_OPEN_NOMUTEX and s->lock
 * serialises every use of it and of its prepared statements.  A mutex of
 * our own is needed anyway, because a transaction spans several statements;
 * SQLite's own (FULLMUTEX) would only be taken a second time inside it.
 */
#include "htab.h"
#include "layer.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
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
#define BUSY_TIMEOUT_MS 5000
/* The WAL is checkpointed once it holds this many pages (SQLite's default
 * is 1000, 4 MiB), and cut back to this size when it starts over: see
 * "Disk space" below. */
#define WAL_CKPT_PAGES "256"
#define WAL_LIMIT_BYTES "1048576"

/* The blobs no entry references: pinned ones, or ones left by a crash.
 * Partial, so it holds only those rows and costs nothing otherwise. */
#define BLOB_UNREF_INDEX "blob_unref ON blob(refs) WHERE refs = 0"

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

/* Every statement, prepared once at open.  The attribute columns come in
 * the same order in S_GET and S_LIST, from column 1: see row_attr(). */
enum stmt {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_META_GET,
	S_META_SET,
	S_GET,
	S_LIST,
	S_REAL_KID,
	S_KIDS_COST,
	S_DEL_KIDS,
	S_DEL,
	S_PUT,
	S_SETATTR,
	S_MOVE,
	S_MOVE_KIDS,
	S_MOVE_DESC,
	S_BLOB_GET,
	S_BLOB_ADD,
	S_BLOB_REF,
	S_BLOB_GC,
	S_BLOB_MARK,
	S_BLOB_UNMARK,
	S_BLOB_BYTES,
	S_CLEAR_ENTRIES,
	S_CLEAR_BLOBS,
	S_COUNT
};

#define ATTR_COLS                                                            \
	"kind, opaque, mode, uid, gid, atime, mtime, ctime, version, size, " \
	"type, token"

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_BEGIN_READ] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_META_GET] = "SELECT v FROM meta WHERE k = ?1",
	[S_META_SET] = "UPDATE meta SET v = ?2 WHERE k = ?1",
	[S_GET] = "SELECT id, " ATTR_COLS
		  " FROM entry WHERE parent = ?1 AND name = ?2",
	[S_LIST] = "SELECT name, " ATTR_COLS " FROM entry WHERE parent = ?1",
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
		  " ?11, ?12, ?13, ?14, ?15) ON CONFLICT(parent, name) DO"
		  " UPDATE SET kind = excluded.kind, opaque = excluded.opaque,"
		  " mode = excluded.mode, uid = excluded.uid,"
		  " gid = excluded.gid, atime = excluded.atime,"
		  " mtime = excluded.mtime, ctime = excluded.ctime,"
		  " version = excluded.version, size = excluded.size,"
		  " type = excluded.type, token = excluded.token,"
		  " value = excluded.value",
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
};

/* One pinned token in s->pins. */
struct pin {
	struct htab_node h; /* keyed by token */
	unsigned long count;
	char token[DSFS_TOKEN_LEN + 1];
};

struct sq_layer {
	struct dsfs_layer base; /* first: (struct dsfs_layer *) is a cast */
	pthread_mutex_t lock;	/* serialises db and st[], guards pins */
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT];
	uint64_t budget;
	char *name;	    /* base.name points here */
	char *path;	    /* for log lines */
	bool image;	    /* opened immutable: nothing is ever deleted */
	struct htab pins;   /* struct pin by token */
	int reserve_fd;	    /* the space reserve, -1 if none: Disk space */
	uint64_t reserve;   /* its size when held */
	bool reserve_out;   /* given back, not yet taken again */
	time_t reserve_try; /* last attempt to take it again (monotonic s) */
};

/* One use of the connection, read or write: what the log line names, and
 * for a write the meta values loaded at BEGIN and stored before COMMIT. */
struct tx {
	struct sq_layer *s;
	const char *what;
	const char *key;
	int64_t used, seq;
	int64_t used0, seq0; /* as loaded, to skip writing unchanged meta */
	bool disk_full;	     /* a statement failed for want of disk space */
};

struct row {
	sqlite3_int64 id; /* 0 for a tree root, which is never stored */
	struct dsfs_attr a;
};

struct blobinfo {
	sqlite3_int64 rowid;
	int64_t refs;
	uint64_t len;
};

static inline struct sq_layer *to_sq(struct dsfs_layer *l)
{
	return (struct sq_layer *)l;
}

/* Reasons for refusing a store that carry a number live here: static as
 * far as the caller is concerned, valid until the next open on the thread. */
static __thread char why_buf[192];

static const char *__attribute__((format(printf, 1, 2)))
whyf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why_buf, sizeof(why_buf), fmt, ap);
	va_end(ap);
	return why_buf;
}

/* ---- errors -------------------------------------------------------- */

/*
 * The errno behind an I/O error, if it says the disk is full (ENOSPC or
 * EDQUOT), else 0.  SQLite 3.40 does not record sqlite3_system_errno() for
 * a failure at COMMIT, so look in every place the errno may be: that
 * record, errno as it was right after the failing call (`saved`), and the
 * last errno the unix VFS kept for the database file and for its journal
 * or WAL.  The VFS's record can be older than this failure; taking an old
 * ENOSPC for a new I/O error is the lesser evil.
 */
static int disk_full_errno(sqlite3 *db, int saved)
{
	int cand[4] = {saved, 0, 0, 0};
	sqlite3_file *j = NULL;
	size_t i;

	if (db) {
		cand[1] = sqlite3_system_errno(db);
		sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO,
				     &cand[2]);
		if (sqlite3_file_control(db, "main",
					 SQLITE_FCNTL_JOURNAL_POINTER,
					 &j) == SQLITE_OK &&
		    j && j->pMethods && j->pMethods->xFileControl)
			j->pMethods->xFileControl(j, SQLITE_FCNTL_LAST_ERRNO,
						  &cand[3]);
	}
	for (i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] == ENOSPC || cand[i] == EDQUOT)
			return cand[i];
	return 0;
}

/* Convert a SQLite result to a negative errno, once, here.  A full disk
 * must come out as ENOSPC whatever path SQLite took to notice it: the unix
 * VFS reports a failed write() as SQLITE_FULL, but a failed fsync(), shm
 * growth or truncate as SQLITE_IOERR_* with the errno kept aside.  `saved`
 * is errno right after the failing call. */
static int sq_errno(sqlite3 *db, int rc, int saved)
{
	int sys;

	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		sys = disk_full_errno(db, saved);
		return sys ? -sys : -EIO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_TOOBIG:
		return -EFBIG;
	default: /* CORRUPT, NOTADB, and whatever else: the store failed */
		return -EIO;
	}
}

/* Log a failed call on t's connection and convert its result.  Must be
 * called straight after the call, before anything else touches errno or
 * the connection, which would replace the message. */
static int tx_fail(struct tx *t, int rc)
{
	int saved = errno;
	struct sq_layer *s = t->s;
	int err = sq_errno(s->db, rc, saved);

	if (err == -ENOSPC || err == -EDQUOT)
		t->disk_full = true;
	log_err("%s: %s %s: %s (%s)", s->path, t->what, t->key ? t->key : "",
		sqlite3_errmsg(s->db), strerror(-err));
	return err;
}

/* ---- small helpers ------------------------------------------------- */

/* layer_split_key(), for keys whose lengths SQLite can bind (as int). */
static int split(const char *key, size_t len, struct layer_key *k)
{
	if (len > INT_MAX)
		return -EINVAL;
	return layer_split_key(key, len, k);
}

/* Times are stored as nanoseconds since the epoch, which holds ±292
 * years; anything further out is clamped rather than wrapped. */
static int64_t ts_ns(struct timespec t)
{
	const int64_t lim = INT64_MAX / 1000000000 - 1;

	if (t.tv_sec > lim)
		return INT64_MAX;
	if (t.tv_sec < -lim)
		return INT64_MIN;
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static struct timespec ns_ts(int64_t ns)
{
	struct timespec t;

	t.tv_sec = (time_t)(ns / 1000000000);
	t.tv_nsec = (long)(ns % 1000000000);
	if (t.tv_nsec < 0) {
		t.tv_nsec += 1000000000;
		t.tv_sec--;
	}
	return t;
}

/* Would a change that adds `add` bytes and frees `sub` fit the budget? */
static bool fits(const struct tx *t, uint64_t add, uint64_t sub)
{
	uint64_t used = t->used < 0 ? 0 : (uint64_t)t->used;

	return layer_fits(used, t->s->budget, add, sub);
}

static void bind_str(sqlite3_stmt *st, int i, const char *s, int len)
{
	sqlite3_bind_text(st, i, s, len, SQLITE_STATIC);
}

/* Step st once: 1 with a row to read (the caller resets st), 0 when done
 * (st is reset), a negative errno on failure (st is reset, logged). */
static int step(struct tx *t, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		return 1;
	rc = rc == SQLITE_DONE ? 0 : tx_fail(t, rc);
	sqlite3_reset(st);
	return rc;
}

/* Run a statement whose rows, if any, are not wanted. */
static int run(struct tx *t, sqlite3_stmt *st)
{
	int rc = step(t, st);

	if (rc == 1) {
		sqlite3_reset(st);
		rc = 0;
	}
	return rc;
}

static int run_id(struct tx *t, enum stmt i)
{
	return run(t, t->s->st[i]);
}

/* Bind ?1 to a key (or part of one) and run. */
static int run_key(struct tx *t, enum stmt i, const char *key, int len)
{
	bind_str(t->s->st[i], 1, key, len);
	return run(t, t->s->st[i]);
}

/* ---- pins ---------------------------------------------------------- */

static struct pin *pin_find(struct sq_layer *s, const char *token)
{
	struct htab_node *h;

	if (!s->pins.n)
		return NULL;
	h = htab_find(&s->pins, token, strlen(token));
	return h ? (struct pin *)h : NULL;
}

static bool pinned(struct sq_layer *s, const char *token)
{
	return pin_find(s, token) != NULL;
}

static int pin_add(struct sq_layer *s, const char *token)
{
	struct pin *p = pin_find(s, token);

	if (p) {
		p->count++;
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	layer_copy_str(p->token, sizeof(p->token), token);
	p->count = 1;
	htab_add(&s->pins, &p->h, p->token, strlen(p->token));
	return 0;
}

/* Drop one pin of token; *last tells whether it was the last one.
 * -ENOENT if token is not pinned. */
static int pin_drop(struct sq_layer *s, const char *token, bool *last)
{
	struct pin *p = pin_find(s, token);

	if (!p)
		return -ENOENT;
	*last = --p->count == 0;
	if (*last) {
		htab_del(&s->pins, &p->h);
		free(p);
	}
	return 0;
}

static void pin_free(struct htab_node *h, void *arg)
{
	(void)arg;
	free(h);
}

static void pins_free(struct sq_layer *s)
{
	htab_drain(&s->pins, pin_free, NULL);
	htab_free(&s->pins);
}

/* ---- meta ---------------------------------------------------------- */

static int meta_get(struct tx *t, const char *k, int64_t *v)
{
	sqlite3_stmt *st = t->s->st[S_META_GET];
	int rc;

	bind_str(st, 1, k, -1);
	rc = step(t, st);
	if (rc == 1) {
		*v = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		return 0;
	}
	if (rc == 0) {
		log_err("%s: %s %s: no '%s' record in meta", t->s->path,
			t->what, t->key ? t->key : "", k);
		rc = -EIO;
	}
	return rc;
}

static int meta_set(struct tx *t, const char *k, int64_t v)
{
	sqlite3_stmt *st = t->s->st[S_META_SET];

	bind_str(st, 1, k, -1);
	sqlite3_bind_int64(st, 2, v);
	return run(t, st);
}

/* ---- disk space ---------------------------------------------------- */

/*
 * SQLite needs disk space to delete: a removal appends its pages to the
 * WAL, and the checkpoint that lets the WAL start over copies into the
 * database the pages that earlier commits added, which grows it.  On a
 * disk filled by the store's own values neither can happen, and nothing
 * could be removed to make room.  So the daemon holds a reserve, a file
 * beside the store (path + "-reserve") whose blocks are allocated
 * (layer_sqlite_reserve()).  A change other than a commit or a mkdir that
 * fails for want of space gives the reserve back to the filesystem and is
 * tried once more: it then has room for its WAL pages and for the
 * checkpoint, which the small WAL (WAL_CKPT_PAGES, WAL_LIMIT_BYTES) keeps
 * well under the reserve's size.
 *
 * While the reserve is out, a commit must fit in the pages the database
 * file already has free (what removals gave back), so that the database
 * does not grow into the room the reserve left; every successful change
 * tries, at most once a second, to take the reserve again, which succeeds
 * once the filesystem has room for it.
 */
#define RESERVE_RETRY_SEC 1
#define RESERVE_SLACK_PAGES 8 /* b-tree and index pages a commit may add */

/* Allocate the reserve file's blocks; 0 or a negative errno, and on
 * failure the file is emptied again. */
static int reserve_fill(int fd, uint64_t bytes)
{
	int err = posix_fallocate(fd, 0, (off_t)bytes);

	if (err) {
		if (ftruncate(fd, 0) < 0)
			err = errno;
		return -err;
	}
	return 0;
}

/* Give the reserve back so that `what` can be tried again; false if
 * there is none to give, or `what` adds values (commit, mkdir). */
static bool reserve_give(struct sq_layer *s, const char *what)
{
	struct timespec now;

	if (s->reserve_fd < 0 || s->reserve_out ||
	    strcmp(what, "commit") == 0 || strcmp(what, "mkdir") == 0)
		return false;
	if (ftruncate(s->reserve_fd, 0) < 0) {
		log_err("%s: cannot release the space reserve: %s", s->path,
			strerror(errno));
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	s->reserve_out = true;
	s->reserve_try = now.tv_sec;
	log_warn("%s: disk full: space reserve (%llu bytes) released for %s",
		 s->path, (unsigned long long)s->reserve, what);
	return true;
}

static void reserve_retake(struct sq_layer *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - s->reserve_try < RESERVE_RETRY_SEC)
		return;
	s->reserve_try = now.tv_sec;
	if (reserve_fill(s->reserve_fd, s->reserve) == 0) {
		s->reserve_out = false;
		log_info("%s: space reserve taken again", s->path);
	}
}

/* While the reserve is out: -ENOSPC unless `bytes` more fit in the free
 * pages of the database file. */
static int reserve_room(struct tx *t, uint64_t bytes)
{
	static const char sql[] = "SELECT freelist_count, page_size"
				  " FROM pragma_freelist_count,"
				  " pragma_page_size";
	sqlite3_stmt *st;
	uint64_t free_pages = 0, psize = 4096;
	int rc;

	if (!t->s->reserve_out)
		return 0;
	rc = sqlite3_prepare_v2(t->s->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return tx_fail(t, rc);
	rc = step(t, st);
	if (rc == 1) {
		free_pages = (uint64_t)sqlite3_column_int64(st, 0);
		psize = (uint64_t)sqlite3_column_int64(st, 1);
		rc = 0;
	}
	sqlite3_finalize(st);
	if (rc)
		return rc;
	if (free_pages < RESERVE_SLACK_PAGES ||
	    (free_pages - RESERVE_SLACK_PAGES) * psize < bytes)
		return -ENOSPC;
	return 0;
}

/* ---- transactions -------------------------------------------------- */

typedef int (*tx_fn)(struct tx *t, void *arg);

/* Undo whatever the transaction did.  SQLite rolls back by itself after
 * some errors (a full disk, an I/O error), hence the autocommit test. */
static void rollback(struct tx *t)
{
	if (!sqlite3_get_autocommit(t->s->db))
		run_id(t, S_ROLLBACK);
}

/* Run fn inside one write transaction, with t->used and t->seq loaded
 * from meta and written back before COMMIT.  Lock held by the caller. */
static int write_locked(struct tx *t, tx_fn fn, void *arg)
{
	int rc;

	rc = run_id(t, S_BEGIN);
	if (rc)
		return rc;
	rc = meta_get(t, "used", &t->used);
	if (rc == 0)
		rc = meta_get(t, "seq", &t->seq);
	if (rc)
		goto out_rollback;
	t->used0 = t->used;
	t->seq0 = t->seq;
	rc = fn(t, arg);
	if (rc)
		goto out_rollback;
	if (t->used != t->used0)
		rc = meta_set(t, "used", t->used);
	if (rc == 0 && t->seq != t->seq0)
		rc = meta_set(t, "seq", t->seq);
	if (rc == 0)
		rc = run_id(t, S_COMMIT);
	if (rc)
		goto out_rollback;
	return 0;

out_rollback:
	rollback(t);
	return rc;
}

static int write_tx(struct sq_layer *s, const char *what, const char *key,
		    tx_fn fn, void *arg)
{
	struct tx t = {.s = s, .what = what, .key = key};
	int rc;

	/* layer.c refuses first; this keeps an image safe from a direct
	 * l->ops call too, without a log line about it. */
	if (s->base.readonly)
		return -EROFS;
	pthread_mutex_lock(&s->lock);
	rc = write_locked(&t, fn, arg);
	if (rc && t.disk_full && reserve_give(s, what))
		rc = write_locked(&t, fn, arg);
	if (rc == 0 && s->reserve_out)
		reserve_retake(s);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* Run fn inside one read transaction, so that its several statements see
 * one snapshot even if another process writes the store. */
static int read_tx(struct sq_layer *s, const char *what, const char *key,
		   tx_fn fn, void *arg)
{
	struct tx t = {.s = s, .what = what, .key = key};
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = run_id(&t, S_BEGIN_READ);
	if (rc)
		goto out_unlock;
	rc = fn(&t, arg);
	if (rc < 0)
		goto out_rollback;
	rc = run_id(&t, S_COMMIT);
	if (rc)
		goto out_rollback;
	pthread_mutex_unlock(&s->lock);
	return 0;

out_rollback:
	rollback(&t);
out_unlock:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* ---- rows ---------------------------------------------------------- */

static void row_attr(sqlite3_stmt *st, int c, struct dsfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->kind = (enum dsfs_kind)sqlite3_column_int(st, c);
	a->opaque = sqlite3_column_int(st, c + 1) != 0;
	a->mode = (uint32_t)sqlite3_column_int64(st, c + 2) & 07777;
	a->uid = (uint32_t)sqlite3_column_int64(st, c + 3);
	a->gid = (uint32_t)sqlite3_column_int64(st, c + 4);
	a->atime = ns_ts(sqlite3_column_int64(st, c + 5));
	a->mtime = ns_ts(sqlite3_column_int64(st, c + 6));
	a->ctime = ns_ts(sqlite3_column_int64(st, c + 7));
	a->version = (uint64_t)sqlite3_column_int64(st, c + 8);
	a->size = (uint64_t)sqlite3_column_int64(st, c + 9);
	layer_copy_str(a->type, sizeof(a->type),
		       (const char *)sqlite3_column_text(st, c + 10));
	layer_copy_str(a->token, sizeof(a->token),
		       (const char *)sqlite3_column_text(st, c + 11));
}

static int get_row(struct tx *t, const struct layer_key *k, struct row *r)
{
	sqlite3_stmt *st = t->s->st[S_GET];
	int rc;

	bind_str(st, 1, k->parent, (int)k->plen);
	bind_str(st, 2, k->name, (int)k->nlen);
	rc = step(t, st);
	if (rc == 1) {
		r->id = sqlite3_column_int64(st, 0);
		row_attr(st, 1, &r->a);
		sqlite3_reset(st);
		return 0;
	}
	return rc == 0 ? -ENOENT : rc;
}

/* The entry at key (len bytes of it), tree roots included. */
static int get_key(struct tx *t, const char *key, size_t len, struct row *r)
{
	struct layer_key k;

	if (layer_is_root(key, len)) {
		r->id = 0;
		layer_root_attr(&r->a);
		return 0;
	}
	if (split(key, len, &k))
		return -ENOENT;
	return get_row(t, &k, r);
}

/* The directory that will hold k must exist: a tree root or a directory
 * entry; -ENOENT if it is missing or a whiteout, -ENOTDIR if a file. */
static int parent_ok(struct tx *t, const struct layer_key *k)
{
	struct row p;
	int rc;

	rc = get_key(t, k->parent, k->plen, &p);
	return rc ? rc : layer_dir_check(p.a.kind);
}

/* The key a change will put an entry at: its parts in *k, its parent
 * checked (parent_ok), and the entry there now in *r if *found. */
static int target(struct tx *t, const char *key, size_t len,
		  struct layer_key *k, struct row *r, bool *found)
{
	int rc;

	if (split(key, len, k))
		return -EINVAL;
	rc = parent_ok(t, k);
	if (rc)
		return rc;
	rc = get_row(t, k, r);
	*found = rc == 0;
	return rc == -ENOENT ? 0 : rc;
}

/* 1 if the directory at key holds anything but whiteouts, else 0. */
static int has_real_kid(struct tx *t, const char *key, int len)
{
	sqlite3_stmt *st = t->s->st[S_REAL_KID];
	int rc;

	bind_str(st, 1, key, len);
	rc = step(t, st);
	if (rc == 1)
		sqlite3_reset(st);
	return rc;
}

/* Insert or replace the row at k.  value NULL stores SQL NULL (images,
 * directories, whiteouts); a plain file's value is never NULL. */
static int put_row(struct tx *t, const struct layer_key *k,
		   const struct dsfs_attr *a, const void *value, size_t len,
		   bool is_file)
{
	sqlite3_stmt *st = t->s->st[S_PUT];

	bind_str(st, 1, k->parent, (int)k->plen);
	bind_str(st, 2, k->name, (int)k->nlen);
	sqlite3_bind_int(st, 3, (int)a->kind);
	sqlite3_bind_int(st, 4, a->opaque);
	sqlite3_bind_int64(st, 5, a->mode & 07777);
	sqlite3_bind_int64(st, 6, a->uid);
	sqlite3_bind_int64(st, 7, a->gid);
	sqlite3_bind_int64(st, 8, ts_ns(a->atime));
	sqlite3_bind_int64(st, 9, ts_ns(a->mtime));
	sqlite3_bind_int64(st, 10, ts_ns(a->ctime));
	sqlite3_bind_int64(st, 11, (sqlite3_int64)a->version);
	sqlite3_bind_int64(st, 12, (sqlite3_int64)a->size);
	bind_str(st, 13, a->type, -1);
	bind_str(st, 14, a->token, -1);
	if (!is_file)
		sqlite3_bind_null(st, 15);
	else if (!value || !len)
		sqlite3_bind_zeroblob(st, 15, 0);
	else
		sqlite3_bind_blob64(st, 15, value, len, SQLITE_STATIC);
	return run(t, st);
}

/* ---- blobs --------------------------------------------------------- */

static int blob_get(struct tx *t, const char *token, struct blobinfo *b)
{
	sqlite3_stmt *st = t->s->st[S_BLOB_GET];
	int rc;

	bind_str(st, 1, token, -1);
	rc = step(t, st);
	if (rc == 1) {
		b->rowid = sqlite3_column_int64(st, 0);
		b->refs = sqlite3_column_int64(st, 1);
		b->len = (uint64_t)sqlite3_column_int64(st, 2);
		sqlite3_reset(st);
		return 0;
	}
	return rc == 0 ? -ENOENT : rc;
}

static int blob_add(struct tx *t, const char *token, const void *data,
		    size_t len)
{
	sqlite3_stmt *st = t->s->st[S_BLOB_ADD];

	bind_str(st, 1, token, -1);
	if (!data || !len)
		sqlite3_bind_zeroblob(st, 2, 0);
	else
		sqlite3_bind_blob64(st, 2, data, len, SQLITE_STATIC);
	return run(t, st);
}

static int blob_ref(struct tx *t, const char *token, int delta)
{
	sqlite3_stmt *st = t->s->st[S_BLOB_REF];
	int rc;

	bind_str(st, 1, token, -1);
	sqlite3_bind_int(st, 2, delta);
	rc = run(t, st);
	/* A pinned blob waits for its last unpin. */
	if (rc == 0 && delta < 0 && !pinned(t->s, token))
		rc = run_key(t, S_BLOB_GC, token, -1);
	return rc;
}

static bool in_blob(const struct dsfs_attr *a)
{
	return a->kind == DSFS_FILE && a->token[0];
}

/* Bytes given back when the entry r at key goes, with the whiteouts it
 * holds if it is a directory.  `keep` names a token that stays referenced
 * (an image replaced by itself), whose blob is not given back; nor is a
 * pinned blob's, which its last unpin gives back. */
static int entry_cost(struct tx *t, const char *key, int len,
		      const struct row *r, const char *keep, uint64_t *cost)
{
	struct layer_key k;
	struct blobinfo b;
	sqlite3_stmt *st;
	int rc;

	if (split(key, (size_t)len, &k))
		return -EINVAL;
	*cost = (uint64_t)k.nlen;
	if (r->a.kind == DSFS_DIR) {
		st = t->s->st[S_KIDS_COST];
		bind_str(st, 1, key, len);
		rc = step(t, st);
		if (rc == 1) {
			*cost += (uint64_t)sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
			rc = 0;
		}
		return rc;
	}
	if (!in_blob(&r->a)) {
		*cost += r->a.kind == DSFS_FILE ? r->a.size : 0;
		return 0;
	}
	if (keep && strcmp(keep, r->a.token) == 0)
		return 0;
	rc = blob_get(t, r->a.token, &b);
	if (rc == 0 && b.refs <= 1 && !pinned(t->s, r->a.token))
		*cost += b.len;
	return rc == -ENOENT ? 0 : rc;
}

/* Delete the entry r at key with what it holds: a directory's whiteouts,
 * an image's blob reference. */
static int drop_entry(struct tx *t, const char *key, int len,
		      const struct row *r)
{
	int rc = 0;

	if (r->a.kind == DSFS_DIR)
		rc = run_key(t, S_DEL_KIDS, key, len);
	else if (in_blob(&r->a))
		rc = blob_ref(t, r->a.token, -1);
	if (rc)
		return rc;
	sqlite3_bind_int64(t->s->st[S_DEL], 1, r->id);
	return run_id(t, S_DEL);
}

/* ---- operations ---------------------------------------------------- */

static int sq_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a)
{
	struct sq_layer *s = to_sq(l);
	struct tx t = {.s = s, .what = "lookup", .key = key};
	struct row r;
	int rc;

	/* One statement: its own implicit transaction is enough. */
	pthread_mutex_lock(&s->lock);
	rc = get_key(&t, key, strlen(key), &r);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0)
		*a = r.a;
	return rc;
}

struct read_args {
	const char *key; /* an entry's key, or NULL to read a blob */
	const char *token;
	uint64_t off;
	void *buf;
	size_t len;
	ssize_t done;
};

/* Copy a range of one BLOB cell through SQLite's incremental I/O, which
 * reads only the pages the range covers. */
static int read_cell(struct tx *t, const char *table, const char *column,
		     sqlite3_int64 rowid, struct read_args *r)
{
	sqlite3_blob *b;
	uint64_t size;
	size_t n = r->len;
	int rc;

	rc = sqlite3_blob_open(t->s->db, "main", table, column, rowid, 0, &b);
	if (rc != SQLITE_OK) {
		rc = tx_fail(t, rc);
		sqlite3_blob_close(b);
		return rc;
	}
	size = (uint64_t)sqlite3_blob_bytes(b);
	r->done = 0;
	if (r->off < size) {
		if (n > size - r->off)
			n = (size_t)(size - r->off);
		if (n > INT_MAX)
			n = INT_MAX;
		rc = sqlite3_blob_read(b, r->buf, (int)n, (int)r->off);
		if (rc != SQLITE_OK)
			rc = tx_fail(t, rc);
		else
			r->done = (ssize_t)n;
	}
	sqlite3_blob_close(b);
	return rc;
}

static int read_fn(struct tx *t, void *arg)
{
	struct read_args *r = arg;
	struct blobinfo b;
	struct row e;
	int rc;

	r->done = 0;
	if (!r->key) {
		rc = blob_get(t, r->token, &b);
		return rc ? rc : read_cell(t, "blob", "data", b.rowid, r);
	}
	rc = get_key(t, r->key, strlen(r->key), &e);
	if (rc)
		return rc;
	if (e.a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	if (e.a.kind == DSFS_DIR)
		return -EISDIR;
	if (r->off >= e.a.size)
		return 0;
	if (!in_blob(&e.a))
		return read_cell(t, "entry", "value", e.id, r);
	rc = blob_get(t, e.a.token, &b);
	return rc ? rc : read_cell(t, "blob", "data", b.rowid, r);
}

static ssize_t sq_read(struct dsfs_layer *l, const char *key, uint64_t off,
		       void *buf, size_t len)
{
	struct read_args r = {.key = key, .off = off, .buf = buf, .len = len};
	int rc;

	rc = read_tx(to_sq(l), "read", key, read_fn, &r);
	return rc ? rc : r.done;
}

static ssize_t sq_read_blob(struct dsfs_layer *l, const char *token,
			    uint64_t off, void *buf, size_t len)
{
	struct read_args r = {
		.token = token, .off = off, .buf = buf, .len = len};
	int rc;

	rc = read_tx(to_sq(l), "read blob", token, read_fn, &r);
	return rc ? rc : r.done;
}

struct commit_args {
	const char *key;
	const struct dsfs_attr *a;
	const void *data;
	size_t len;
	struct dsfs_attr *out;
};

static int commit_fn(struct tx *t, void *arg)
{
	struct commit_args *c = arg;
	size_t klen = strlen(c->key);
	struct dsfs_attr na;
	struct blobinfo b;
	struct layer_key k;
	struct row old;
	bool found, have_blob = false, same_blob = false;
	uint64_t add, sub = 0;
	int rc;

	rc = target(t, c->key, klen, &k, &old, &found);
	if (rc)
		return rc;
	if (found && old.a.kind == DSFS_DIR)
		return -EISDIR;

	layer_file_attr(&na, c->a);
	add = (uint64_t)k.nlen;
	if (na.token[0]) {
		rc = blob_get(t, na.token, &b);
		if (rc && rc != -ENOENT)
			return rc;
		have_blob = rc == 0;
		same_blob = found && in_blob(&old.a) &&
			    strcmp(old.a.token, na.token) == 0;
	}
	if (!have_blob)
		add += c->len;
	if (found) {
		rc = entry_cost(t, c->key, (int)klen, &old,
				na.token[0] ? na.token : NULL, &sub);
		if (rc)
			return rc;
	}
	if (!fits(t, add, sub))
		return -ENOSPC;
	rc = add > sub ? reserve_room(t, add - sub) : 0;
	if (rc)
		return rc;

	/* An image replaced by itself keeps its one reference. */
	if (na.token[0] && !have_blob)
		rc = blob_add(t, na.token, c->data, c->len);
	else if (na.token[0] && !same_blob)
		rc = blob_ref(t, na.token, 1);
	if (rc == 0 && found && in_blob(&old.a) && !same_blob)
		rc = blob_ref(t, old.a.token, -1);
	if (rc)
		return rc;

	na.size = have_blob ? b.len : c->len;
	t->seq = (int64_t)layer_version_floor((uint64_t)t->seq, c->a);
	na.version = (uint64_t)++t->seq;
	rc = put_row(t, &k, &na, na.token[0] ? NULL : c->data, c->len,
		     !na.token[0]);
	if (rc)
		return rc;
	t->used = (int64_t)((uint64_t)t->used + add - sub);
	if (c->out)
		*c->out = na;
	return 0;
}

static int sq_commit(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a, const void *data, size_t len,
		     struct dsfs_attr *out)
{
	struct commit_args c = {key, a, data, len, out};

	return write_tx(to_sq(l), "commit", key, commit_fn, &c);
}

struct mkdir_args {
	const char *key;
	const struct dsfs_attr *a;
};

static int mkdir_fn(struct tx *t, void *arg)
{
	struct mkdir_args *m = arg;
	size_t klen = strlen(m->key);
	struct dsfs_attr na;
	struct layer_key k;
	struct row old;
	bool found;
	int rc;

	rc = target(t, m->key, klen, &k, &old, &found);
	if (rc)
		return rc;
	if (found && old.a.kind != DSFS_WHITEOUT)
		return -EEXIST;
	/* Over a whiteout the name is already counted. */
	if (!found && !fits(t, (uint64_t)k.nlen, 0))
		return -ENOSPC;

	layer_dir_attr(&na, m->a);
	na.version = (uint64_t)++t->seq;
	rc = put_row(t, &k, &na, NULL, 0, false);
	if (rc == 0 && !found)
		t->used += (int64_t)k.nlen;
	return rc;
}

static int sq_mkdir(struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *a)
{
	struct mkdir_args m = {key, a};

	return write_tx(to_sq(l), "mkdir", key, mkdir_fn, &m);
}

static int remove_fn(struct tx *t, void *arg)
{
	const char *key = arg;
	size_t klen = strlen(key);
	struct layer_key k;
	struct row r;
	uint64_t cost;
	int rc;

	if (split(key, klen, &k))
		return -ENOENT;
	rc = get_row(t, &k, &r);
	if (rc)
		return rc;
	if (r.a.kind == DSFS_DIR) {
		rc = has_real_kid(t, key, (int)klen);
		if (rc)
			return rc < 0 ? rc : -ENOTEMPTY;
	}
	rc = entry_cost(t, key, (int)klen, &r, NULL, &cost);
	if (rc == 0)
		rc = drop_entry(t, key, (int)klen, &r);
	if (rc == 0)
		t->used -= (int64_t)cost;
	return rc;
}

static int sq_remove(struct dsfs_layer *l, const char *key)
{
	return write_tx(to_sq(l), "remove", key, remove_fn, (void *)key);
}

/* A whiteout's attributes: nothing but the kind and a new version. */
static void whiteout_attr(struct tx *t, struct dsfs_attr *a)
{
	layer_whiteout_attr(a);
	a->version = (uint64_t)++t->seq;
}

static int whiteout_fn(struct tx *t, void *arg)
{
	const char *key = arg;
	size_t klen = strlen(key);
	struct dsfs_attr na;
	struct layer_key k;
	struct row r;
	uint64_t add, sub = 0;
	bool found;
	int rc;

	rc = target(t, key, klen, &k, &r, &found);
	if (rc)
		return rc;
	if (found && r.a.kind == DSFS_DIR) {
		rc = has_real_kid(t, key, (int)klen);
		if (rc)
			return rc < 0 ? rc : -ENOTEMPTY;
	}
	add = (uint64_t)k.nlen;
	if (found) {
		rc = entry_cost(t, key, (int)klen, &r, NULL, &sub);
		if (rc)
			return rc;
	}
	if (!fits(t, add, sub))
		return -ENOSPC;
	if (found && r.a.kind == DSFS_DIR)
		rc = run_key(t, S_DEL_KIDS, key, (int)klen);
	else if (found && in_blob(&r.a))
		rc = blob_ref(t, r.a.token, -1);
	if (rc)
		return rc;
	whiteout_attr(t, &na);
	rc = put_row(t, &k, &na, NULL, 0, false);
	if (rc == 0)
		t->used = (int64_t)((uint64_t)t->used + add - sub);
	return rc;
}

static int sq_whiteout(struct dsfs_layer *l, const char *key)
{
	return write_tx(to_sq(l), "whiteout", key, whiteout_fn, (void *)key);
}

struct setattr_args {
	const char *key;
	const struct dsfs_attr *a;
	unsigned mask;
};

static int setattr_fn(struct tx *t, void *arg)
{
	struct setattr_args *sa = arg;
	sqlite3_stmt *st = t->s->st[S_SETATTR];
	size_t klen = strlen(sa->key);
	struct row r;
	int rc;

	rc = get_key(t, sa->key, klen, &r);
	if (rc)
		return rc;
	if (r.a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	layer_apply_setattr(&r.a, sa->a, sa->mask);
	sqlite3_bind_int64(st, 1, r.id);
	sqlite3_bind_int64(st, 2, r.a.mode);
	sqlite3_bind_int64(st, 3, r.a.uid);
	sqlite3_bind_int64(st, 4, r.a.gid);
	sqlite3_bind_int64(st, 5, ts_ns(r.a.atime));
	sqlite3_bind_int64(st, 6, ts_ns(r.a.mtime));
	sqlite3_bind_int64(st, 7, ts_ns(r.a.ctime));
	sqlite3_bind_int64(st, 8, ++t->seq);
	return run(t, st);
}

static int sq_setattr(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, unsigned mask)
{
	struct setattr_args sa = {key, a, mask};

	return write_tx(to_sq(l), "setattr", key, setattr_fn, &sa);
}

struct rename_args {
	const char *from;
	const char *to;
	unsigned flags;
};

/* Re-parent every descendant of the directory `from`, now `to`: its
 * children by equality, deeper ones by the range of parents that start
 * with "from/". */
static int move_subtree(struct tx *t, const char *from, int flen,
			const char *to, int tlen)
{
	sqlite3_stmt *st = t->s->st[S_MOVE_KIDS];
	char *lo;
	int rc;

	bind_str(st, 1, from, flen);
	bind_str(st, 2, to, tlen);
	rc = run(t, st);
	if (rc)
		return rc;
	lo = malloc(2 * ((size_t)flen + 1));
	if (!lo)
		return -ENOMEM;
	memcpy(lo, from, (size_t)flen);
	lo[flen] = '/';
	memcpy(lo + flen + 1, from, (size_t)flen);
	lo[2 * flen + 1] = '0';
	st = t->s->st[S_MOVE_DESC];
	bind_str(st, 2, to, tlen);
	sqlite3_bind_int(st, 3, flen + 1);
	bind_str(st, 4, lo, flen + 1);
	bind_str(st, 5, lo + flen + 1, flen + 1);
	rc = run(t, st);
	free(lo);
	return rc;
}

static int rename_fn(struct tx *t, void *arg)
{
	struct rename_args *ra = arg;
	size_t flen = strlen(ra->from), tlen = strlen(ra->to);
	struct layer_key fk, tk;
	struct row src, dst;
	struct dsfs_attr wo;
	sqlite3_stmt *st = t->s->st[S_MOVE];
	uint64_t add, sub, cost = 0;
	bool found, same;
	int rc;

	if (split(ra->from, flen, &fk))
		return -ENOENT;
	rc = get_row(t, &fk, &src);
	if (rc)
		return rc;
	if (src.a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	rc = target(t, ra->to, tlen, &tk, &dst, &found);
	if (rc)
		return rc;
	rc = layer_rename_check(ra->from, ra->to, ra->flags, &src.a,
				found ? &dst.a : NULL, &same);
	if (rc || same)
		return rc;
	if (found && dst.a.kind == DSFS_DIR) {
		rc = has_real_kid(t, ra->to, (int)tlen);
		if (rc)
			return rc < 0 ? rc : -ENOTEMPTY;
	}

	add = (uint64_t)tk.nlen;
	if (ra->flags & DSFS_RENAME_WHITEOUT)
		add += (uint64_t)fk.nlen;
	if (found) {
		rc = entry_cost(t, ra->to, (int)tlen, &dst, NULL, &cost);
		if (rc)
			return rc;
	}
	sub = (uint64_t)fk.nlen + cost;
	if (!fits(t, add, sub))
		return -ENOSPC;

	if (found) {
		rc = drop_entry(t, ra->to, (int)tlen, &dst);
		if (rc)
			return rc;
	}
	sqlite3_bind_int64(st, 1, src.id);
	bind_str(st, 2, tk.parent, (int)tk.plen);
	bind_str(st, 3, tk.name, (int)tk.nlen);
	sqlite3_bind_int64(st, 4, ++t->seq);
	rc = run(t, st);
	if (rc == 0 && src.a.kind == DSFS_DIR)
		rc = move_subtree(t, ra->from, (int)flen, ra->to, (int)tlen);
	if (rc == 0 && (ra->flags & DSFS_RENAME_WHITEOUT)) {
		whiteout_attr(t, &wo);
		rc = put_row(t, &fk, &wo, NULL, 0, false);
	}
	if (rc == 0)
		t->used = (int64_t)((uint64_t)t->used + add - sub);
	return rc;
}

static int sq_rename(struct dsfs_layer *l, const char *from, const char *to,
		     unsigned flags)
{
	struct rename_args ra = {from, to, flags};

	return write_tx(to_sq(l), "rename", from, rename_fn, &ra);
}

struct list_item {
	char *name;
	struct dsfs_attr a;
};

struct list_args {
	const char *dir;
	struct list_item *items;
	size_t n, cap;
};

static void list_free(struct list_args *la)
{
	size_t i;

	for (i = 0; i < la->n; i++)
		free(la->items[i].name);
	free(la->items);
}

/* Room for one more item: -ENOMEM if there is none to be had. */
static int list_grow(struct list_args *la)
{
	struct list_item *it;
	size_t cap;

	if (la->n < la->cap)
		return 0;
	cap = la->cap ? 2 * la->cap : 16;
	it = realloc(la->items, cap * sizeof(*it));
	if (!it)
		return -ENOMEM;
	la->items = it;
	la->cap = cap;
	return 0;
}

static int list_fn(struct tx *t, void *arg)
{
	struct list_args *la = arg;
	sqlite3_stmt *st = t->s->st[S_LIST];
	size_t dlen = strlen(la->dir);
	struct list_item *it;
	struct row d;
	int rc;

	rc = get_key(t, la->dir, dlen, &d);
	if (rc == 0)
		rc = layer_dir_check(d.a.kind);
	if (rc)
		return rc;
	bind_str(st, 1, la->dir, (int)dlen);
	while ((rc = step(t, st)) == 1) {
		if (list_grow(la))
			goto out_nomem;
		it = &la->items[la->n];
		it->name = strdup((const char *)sqlite3_column_text(st, 0));
		if (!it->name)
			goto out_nomem;
		row_attr(st, 1, &it->a);
		la->n++;
	}
	return rc;

out_nomem:
	sqlite3_reset(st);
	return -ENOMEM;
}

/* The children are copied out first and the callback runs unlocked, so it
 * may call back into the layer. */
static int sq_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		   void *ctx)
{
	struct list_args la = {.dir = dir};
	size_t i;
	int rc;

	rc = read_tx(to_sq(l), "list", dir, list_fn, &la);
	for (i = 0; rc == 0 && i < la.n; i++)
		rc = cb(ctx, la.items[i].name, &la.items[i].a);
	list_free(&la);
	return rc;
}

static int sq_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget)
{
	struct sq_layer *s = to_sq(l);
	struct tx t = {.s = s, .what = "usage"};
	int64_t v = 0;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = meta_get(&t, "used", &v);
	pthread_mutex_unlock(&s->lock);
	*used = v < 0 ? 0 : (uint64_t)v;
	*budget = s->budget;
	return rc;
}

static int bump_fn(struct tx *t, void *arg)
{
	(void)arg;
	t->seq++;
	return 0;
}

/* PRAGMA synchronous acts when it is compiled, not when it runs: a
 * statement prepared once at open would set the level at open and do
 * nothing later, so it is compiled anew each time. */
static int set_synchronous(struct tx *t, const char *level)
{
	char sql[40];
	int rc;

	snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s", level);
	rc = sqlite3_exec(t->s->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : tx_fail(t, rc);
}

/*
 * Power-loss durability for everything committed so far.  Commits run with
 * synchronous=NORMAL, which appends to the WAL without fsync.  One small
 * commit with synchronous=FULL fsyncs the WAL, and an fsync covers every
 * frame already in the file, so every earlier commit becomes durable too
 * (whatever a checkpoint already moved to the database file was synced by
 * that checkpoint).  The alternative, wal_checkpoint(FULL), would also
 * copy the whole WAL into the database and wait for readers; the commit
 * costs one page and one fsync.  It must change a page, or SQLite writes
 * no frame and syncs nothing: it bumps the version counter, which only
 * has to increase.
 */
static int sq_sync(struct dsfs_layer *l)
{
	struct sq_layer *s = to_sq(l);
	struct tx t = {.s = s, .what = "sync"};
	int rc, rc2;

	if (s->base.readonly)
		return 0;
	pthread_mutex_lock(&s->lock);
	rc = set_synchronous(&t, "FULL");
	if (rc == 0)
		rc = write_locked(&t, bump_fn, NULL);
	rc2 = set_synchronous(&t, "NORMAL");
	pthread_mutex_unlock(&s->lock);
	return rc ? rc : rc2;
}

/* Every entry goes, and every blob but the pinned ones, which stay with
 * refs 0 and are all that usage counts afterwards.  Marking them costs one
 * seek per pinned token, and the rest is what a reset costs anyway. */
static int clear_fn(struct tx *t, void *arg)
{
	struct sq_layer *s = t->s;
	struct htab_node *p;
	sqlite3_stmt *st;
	int64_t bytes = 0;
	int rc;

	(void)arg;
	rc = run_id(t, S_CLEAR_ENTRIES);
	for (p = htab_next(&s->pins, NULL); rc == 0 && p;
	     p = htab_next(&s->pins, p))
		rc = run_key(t, S_BLOB_MARK, ((struct pin *)p)->token, -1);
	if (rc == 0)
		rc = run_id(t, S_CLEAR_BLOBS);
	if (rc == 0 && s->pins.n)
		rc = run_id(t, S_BLOB_UNMARK);
	if (rc == 0 && s->pins.n) {
		st = s->st[S_BLOB_BYTES];
		rc = step(t, st);
		if (rc == 1) {
			bytes = sqlite3_column_int64(st, 0);
			sqlite3_reset(st);
			rc = 0;
		}
	}
	/* seq stays: versions must keep increasing across a reset. */
	if (rc == 0)
		t->used = bytes;
	return rc;
}

static int sq_clear(struct dsfs_layer *l)
{
	return write_tx(to_sq(l), "clear", NULL, clear_fn, NULL);
}

/* Find token's blob and report its size, or pin it.  One statement: its
 * own implicit transaction is enough.  Only the count in memory changes,
 * so an image pins like a store. */
static int find_blob_locked(struct dsfs_layer *l, const char *token, bool pin,
			    uint64_t *size)
{
	struct sq_layer *s = to_sq(l);
	struct tx t = {
		.s = s, .what = pin ? "pin blob" : "stat blob", .key = token};
	struct blobinfo b;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = blob_get(&t, token, &b);
	if (rc == 0 && pin)
		rc = pin_add(s, token);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0 && !pin)
		*size = b.len;
	return rc;
}

static int sq_stat_blob(struct dsfs_layer *l, const char *token, uint64_t *size)
{
	return find_blob_locked(l, token, false, size);
}

static int sq_pin_blob(struct dsfs_layer *l, const char *token)
{
	return find_blob_locked(l, token, true, NULL);
}

/* Delete the blob `arg` if nothing references it (looked at again inside
 * the transaction) and give its bytes back. */
static int unpin_fn(struct tx *t, void *arg)
{
	const char *token = arg;
	struct blobinfo b;
	int rc;

	rc = blob_get(t, token, &b);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	if (b.refs > 0)
		return 0;
	rc = run_key(t, S_BLOB_GC, token, -1);
	if (rc == 0)
		t->used -= (int64_t)b.len;
	return rc;
}

/* The write transaction is only begun when the blob is found unreferenced
 * first: the usual last unpin, of an image still in place, writes nothing. */
static int sq_unpin_blob(struct dsfs_layer *l, const char *token)
{
	struct sq_layer *s = to_sq(l);
	struct tx t = {.s = s, .what = "unpin blob", .key = token};
	struct blobinfo b;
	bool last = false;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = pin_drop(s, token, &last);
	if (rc == 0 && last && !s->image) {
		rc = blob_get(&t, token, &b);
		if (rc == 0 && b.refs <= 0)
			rc = write_locked(&t, unpin_fn, (void *)token);
		else if (rc == -ENOENT)
			rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static void finalize_all(sqlite3_stmt **st)
{
	int i;

	for (i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(st[i]);
		st[i] = NULL;
	}
}

/* Run a statement that returns one row of one column, as text (copied into
 * buf) or as an integer.  Returns a SQLite result code. */
static int query1(sqlite3 *db, const char *sql, int64_t *v, char *buf,
		  size_t cap)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		if (v)
			*v = sqlite3_column_int64(st, 0);
		if (buf)
			layer_copy_str(buf, cap,
				       (const char *)sqlite3_column_text(st,
									 0));
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE) {
		rc = SQLITE_EMPTY;
	}
	sqlite3_finalize(st);
	return rc;
}

/*
 * Leave a read-write store as one self-contained file: checkpoint the WAL
 * into it and switch back to a rollback journal, so no -wal or -shm file
 * is left beside it.  This is what makes a file built by the admin tool a
 * factory image; for the runtime store it is harmless, since the next open
 * turns WAL on again.  It fails (and the store stays in WAL mode, which is
 * still correct) if another process has the store open.
 */
static void sq_close(struct dsfs_layer *l)
{
	struct sq_layer *s = to_sq(l);
	char mode[16] = "";
	int rc;

	finalize_all(s->st);
	if (!s->base.readonly) {
		rc = sqlite3_exec(s->db, "PRAGMA synchronous = FULL", NULL,
				  NULL, NULL);
		if (rc == SQLITE_OK)
			rc = query1(s->db, "PRAGMA journal_mode = DELETE", NULL,
				    mode, sizeof(mode));
		if (rc != SQLITE_OK)
			log_warn("%s: left in WAL mode at close: %s", s->path,
				 sqlite3_errmsg(s->db));
		else if (strcmp(mode, "delete") != 0)
			log_warn("%s: left in %s mode at close", s->path, mode);
	}
	rc = sqlite3_close(s->db);
	if (rc != SQLITE_OK)
		log_err("%s: close: %s", s->path, sqlite3_errstr(rc));
	if (s->reserve_fd >= 0)
		close(s->reserve_fd);
	pthread_mutex_destroy(&s->lock);
	pins_free(s);
	free(s->name);
	free(s->path);
	free(s);
}

static const struct dsfs_layer_ops sq_ops = {
	.version = DSFS_LAYER_OPS_VERSION,
	.lookup = sq_lookup,
	.read = sq_read,
	.read_blob = sq_read_blob,
	.commit = sq_commit,
	.mkdir = sq_mkdir,
	.remove = sq_remove,
	.whiteout = sq_whiteout,
	.setattr = sq_setattr,
	.rename = sq_rename,
	.list = sq_list,
	.usage = sq_usage,
	.sync = sq_sync,
	.clear = sq_clear,
	.close = sq_close,
	.stat_blob = sq_stat_blob,
	.pin_blob = sq_pin_blob,
	.unpin_blob = sq_unpin_blob,
};

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
		*why = whyf("cannot open: %s", strerror(errno));
		return rc;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		*why = "not a regular file";
		goto out_close;
	}
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0) {
		rc = -EIO;
		*why = whyf("cannot read: %s", strerror(errno));
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
		*why = whyf("not a dsfs store (application_id 0x%08x)", app);
		goto out_close;
	}
	ver = be32(h + 60);
	if (ver != STORE_VERSION) {
		*why = whyf("unsupported store version %u", ver);
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
		*why = whyf("damaged store (truncated: %lld of %llu bytes)",
			    (long long)st.st_size,
			    (unsigned long long)npages * psize);
		goto out_close;
	}
	rc = 0;
out_close:
	close(fd);
	return rc;
}

/* Prepare every statement: at open for use, and on the read-only check
 * connection as the test that the schema has every table and column the
 * layer uses. */
static int prepare_all(sqlite3 *db, sqlite3_stmt **st, unsigned flags)
{
	int i, rc;

	for (i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(db, stmt_sql[i], -1, flags, &st[i],
					NULL);
		if (rc != SQLITE_OK) {
			finalize_all(st);
			return rc;
		}
	}
	return SQLITE_OK;
}

/*
 * Check through SQLite that db is a dsfs store this code can use.  Returns
 * -EAGAIN when a read-only connection cannot look because the store needs
 * recovery first (a WAL or hot journal left by a crash): the header has
 * already vouched for it, and the read-write open checks again.
 */
static int check_db(sqlite3 *db, const char **why)
{
	sqlite3_stmt *st[S_COUNT] = {NULL};
	int64_t v = 0;
	int rc, err;

	rc = query1(db, "PRAGMA application_id", &v, NULL, 0);
	switch (rc & 0xff) {
	case SQLITE_OK:
		break;
	case SQLITE_NOTADB:
		*why = "not a SQLite database";
		return -EINVAL;
	case SQLITE_CORRUPT:
		*why = whyf("damaged store (%s)", sqlite3_errmsg(db));
		return -EINVAL;
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
		*why = "store needs recovery";
		return -EAGAIN;
	case SQLITE_BUSY:
		*why = "store is locked by another process";
		return -EBUSY;
	default:
		err = sq_errno(db, rc, errno);
		*why = whyf("cannot read store (%s)", sqlite3_errmsg(db));
		return err;
	}
	if ((uint32_t)v != STORE_APP_ID) {
		*why = whyf("not a dsfs store (application_id 0x%08x)",
			    (uint32_t)v);
		return -EINVAL;
	}
	rc = query1(db, "PRAGMA user_version", &v, NULL, 0);
	if (rc == SQLITE_OK && v != STORE_VERSION) {
		*why = whyf("unsupported store version %lld", (long long)v);
		return -EINVAL;
	}
	if (rc == SQLITE_OK)
		rc = query1(db,
			    "SELECT count(*) FROM sqlite_schema WHERE"
			    " type = 'table' AND name IN"
			    " ('entry', 'blob', 'meta')",
			    &v, NULL, 0);
	if (rc == SQLITE_OK && v != 3) {
		*why = "damaged store (tables missing)";
		return -EINVAL;
	}
	if (rc == SQLITE_OK) {
		rc = prepare_all(db, st, 0);
		if (rc != SQLITE_OK) {
			*why = whyf("damaged store (%s)", sqlite3_errmsg(db));
			return -EINVAL;
		}
		finalize_all(st);
		rc = query1(db,
			    "SELECT count(*) FROM meta WHERE"
			    " k IN ('used', 'seq')",
			    &v, NULL, 0);
	}
	if (rc == SQLITE_OK && v != 2) {
		*why = "damaged store (usage records missing)";
		return -EINVAL;
	}
	if (rc != SQLITE_OK) {
		err = sq_errno(db, rc, errno);
		*why = whyf("damaged store (%s)", sqlite3_errmsg(db));
		return (rc & 0xff) == SQLITE_CORRUPT ? -EINVAL : err;
	}
	return 0;
}

/* Settings every connection gets: extended codes so that sq_errno() sees
 * the I/O detail, a busy timeout for a store shared with the admin tool,
 * and no trust in anything the schema might carry (triggers, views). */
static void tune(sqlite3 *db)
{
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
}

/* Open path for SQLite; on failure *db is closed and NULL. */
static int open_db(const char *path, int flags, sqlite3 **db, const char **why)
{
	int rc;

	rc = sqlite3_open_v2(path, db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		int err = sq_errno(*db, rc, errno);

		*why = whyf("cannot open (%s)",
			    *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		rc = err;
		sqlite3_close(*db);
		*db = NULL;
		return rc;
	}
	tune(*db);
	return 0;
}

/* Make the layer around an open, checked connection; takes db. */
static int layer_new(sqlite3 *db, const char *path, const char *name,
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
	rc = prepare_all(db, s->st, SQLITE_PREPARE_PERSISTENT);
	if (rc != SQLITE_OK) {
		*why = whyf("damaged store (%s)", sqlite3_errmsg(db));
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
	*out = &s->base;
	return 0;

out_finalize:
	finalize_all(s->st);
out_free:
	free(s->name);
	free(s->path);
	free(s);
out_close:
	sqlite3_close(db);
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
static int create_store(const char *path, const char **why)
{
	char tmp[PATH_MAX];
	sqlite3 *db = NULL;
	int fd, rc;

	if (snprintf(tmp, sizeof(tmp), "%s.new-XXXXXX", path) >=
	    (int)sizeof(tmp)) {
		*why = "path too long";
		return -ENAMETOOLONG;
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		*why = whyf("cannot create: %s", strerror(errno));
		return rc;
	}
	rc = fchmod(fd, 0600) < 0 ? -errno : 0;
	close(fd);
	if (rc) {
		*why = whyf("cannot create: %s", strerror(-rc));
		goto out_unlink;
	}
	rc = open_db(tmp, SQLITE_OPEN_READWRITE, &db, why);
	if (rc)
		goto out_unlink;
	/* Default journal (DELETE) and synchronous=FULL: the COMMIT has
	 * synced the file by the time sqlite3_exec() returns. */
	rc = sqlite3_exec(db, schema_sql, NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = sq_errno(db, rc, errno);
		*why = whyf("cannot create: %s", sqlite3_errmsg(db));
		sqlite3_close(db);
		goto out_unlink;
	}
	rc = sqlite3_close(db);
	if (rc != SQLITE_OK) {
		*why = whyf("cannot create: %s", sqlite3_errstr(rc));
		rc = -EIO;
		goto out_unlink;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE) < 0) {
		/* Filesystems without RENAME_NOREPLACE: plain rename. */
		if (errno == EINVAL && rename(tmp, path) == 0)
			goto out_synced;
		rc = errno == EEXIST ? 0 : -errno;
		if (rc)
			*why = whyf("cannot create: %s", strerror(errno));
		goto out_unlink;
	}
out_synced:
	rc = fsync_parent(path);
	if (rc)
		*why = whyf("cannot sync directory: %s", strerror(-rc));
	return rc;

out_unlink:
	unlink(tmp);
	return rc;
}

/*
 * Delete the blobs that no entry references, which only a process that
 * died while it had them pinned leaves behind, and give their bytes back,
 * in one transaction.  The partial index blob_unref (made here if the
 * store predates it) finds exactly those rows, so the work grows with the
 * garbage, not with the store; with none, nothing is written.
 */
static int collect_garbage(sqlite3 *db, const char *path, const char **why)
{
	int64_t n = 0, bytes = 0;
	int rc;

	rc = sqlite3_exec(db,
			  "BEGIN IMMEDIATE;"
			  "CREATE INDEX IF NOT EXISTS " BLOB_UNREF_INDEX ";",
			  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = query1(db, "SELECT count(*) FROM blob WHERE refs = 0", &n,
			    NULL, 0);
	if (rc == SQLITE_OK && n)
		rc = query1(db,
			    "SELECT coalesce(sum(length(data)), 0) FROM blob"
			    " WHERE refs = 0",
			    &bytes, NULL, 0);
	if (rc == SQLITE_OK && n)
		rc = sqlite3_exec(db,
				  "UPDATE meta SET v = max(v - (SELECT"
				  " coalesce(sum(length(data)), 0) FROM blob"
				  " WHERE refs = 0), 0) WHERE k = 'used';"
				  "DELETE FROM blob WHERE refs = 0;",
				  NULL, NULL, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int err = sq_errno(db, rc, errno);

		*why = whyf("cannot collect unreferenced blobs (%s)",
			    sqlite3_errmsg(db));
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
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
	sqlite3 *db = NULL;
	char mode[16] = "";
	struct stat st;
	int rc;

	if (!why)
		why = &scratch;
	*why = "";
	if (stat(path, &st) < 0) {
		if (errno != ENOENT) {
			rc = -errno;
			*why = whyf("cannot stat: %s", strerror(errno));
			return rc;
		}
		if (!create) {
			*why = "no such store";
			return -ENOENT;
		}
		rc = create_store(path, why);
		if (rc)
			return rc;
	}

	/* Validate without the power to write. */
	rc = check_header(path, false, why);
	if (rc)
		return rc;
	rc = open_db(path, SQLITE_OPEN_READONLY, &db, why);
	if (rc)
		return rc;
	rc = check_db(db, why);
	sqlite3_close(db);
	db = NULL;
	if (rc && rc != -EAGAIN)
		return rc;

	/* Now for real.  No SQLITE_OPEN_CREATE: if the file vanished since,
	 * say so rather than make an empty one. */
	rc = open_db(path, SQLITE_OPEN_READWRITE, &db, why);
	if (rc)
		return rc;
	rc = check_db(db, why);
	if (rc == -EAGAIN)
		rc = -EIO;
	if (rc)
		goto out_close;
	rc = query1(db, "PRAGMA journal_mode = WAL", NULL, mode, sizeof(mode));
	if (rc == SQLITE_OK && strcmp(mode, "wal") != 0)
		log_warn("%s: WAL not available, using journal mode %s", path,
			 mode);
	if (rc == SQLITE_OK)
		rc = sqlite3_exec(
			db,
			"PRAGMA synchronous = NORMAL;"
			"PRAGMA cache_size = -2000;"
			"PRAGMA wal_autocheckpoint = " WAL_CKPT_PAGES ";"
			"PRAGMA journal_size_limit = " WAL_LIMIT_BYTES ";",
			NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		rc = sq_errno(db, rc, errno);
		*why = whyf("cannot set up store (%s)", sqlite3_errmsg(db));
		goto out_close;
	}
	rc = collect_garbage(db, path, why);
	if (rc)
		goto out_close;
	return layer_new(db, path, name, budget, false, out, why);

out_close:
	sqlite3_close(db);
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
	sqlite3 *db = NULL;
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
	rc = open_db(uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, &db, why);
	free(uri);
	if (rc)
		return rc;
	rc = check_db(db, why);
	if (rc == -EAGAIN)
		rc = -EIO;
	if (rc == 0 && sqlite3_exec(db, "PRAGMA cache_size = -2000", NULL, NULL,
				    NULL) != SQLITE_OK) {
		*why = whyf("cannot set up image (%s)", sqlite3_errmsg(db));
		rc = -EIO;
	}
	if (rc) {
		sqlite3_close(db);
		return rc;
	}
	return layer_new(db, path, name, budget, true, out, why);
}

int layer_sqlite_reserve(struct dsfs_layer *l, uint64_t bytes)
{
	struct sq_layer *s = to_sq(l);
	char path[PATH_MAX];
	int fd, rc;

	if (s->base.readonly || s->reserve_fd >= 0 || !bytes)
		return -EINVAL;
	if (snprintf(path, sizeof(path), "%s-reserve", s->path) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	rc = reserve_fill(fd, bytes);
	if (rc) {
		close(fd);
		return rc;
	}
	pthread_mutex_lock(&s->lock);
	s->reserve_fd = fd;
	s->reserve = bytes;
	s->reserve_out = false;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int layer_sqlite_exclusive(struct dsfs_layer *l)
{
	struct sq_layer *s = to_sq(l);
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sqlite3_exec(s->db, "PRAGMA locking_mode = EXCLUSIVE", NULL, NULL,
			  NULL);
	if (rc != SQLITE_OK)
		rc = sq_errno(s->db, rc, errno);
	pthread_mutex_unlock(&s->lock);
	return rc;
}
