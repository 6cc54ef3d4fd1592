/*
 * layer_sqlite.h - what the files of the SQLite layer share, and no one
 * else includes.
 *
 * The layer is these files, one concern each:
 *
 *   layer_sqlite.c        the operations of layer.h, in terms of rows and
 *                         blobs; the pins
 *   layer_sqlite_list.c   list(): a directory's children in batches
 *   layer_sqlite_tx.c     the connection: statements, transactions (and
 *                         the creates carried to the next commit), rows
 *                         and blobs
 *   layer_sqlite_errno.c  SQLite's result codes as errnos
 *   layer_sqlite_store.c  the store file: its schema and statements,
 *                         checking, creating, opening and closing it, and
 *                         its disk-space reserve
 *   layer_sqlite_blobfile.c  large image blobs kept as files beside the
 *                         store file instead of in it
 *
 * Only the store, the connection and the blob files include SQLite's
 * header.  The connection is struct sq_db,
 * opaque outside layer_sqlite_tx.c: the operations reach SQLite only
 * through the functions below, whose arguments are plain C, and the
 * store file through the sq_db_*() calls, which return SQLite's result
 * codes for it to read.
 *
 * Locking: s->lock serialises every use of the connection and of its
 * prepared statements, and guards the pins and the reserve; the
 * connection is opened without SQLite's own mutex (NOMUTEX).  A mutex of
 * our own is needed anyway, because a transaction spans several
 * statements; SQLite's own (FULLMUTEX) would only be taken a second time
 * inside it.  Every
 * function below that takes a struct tx runs with s->lock held.
 */
#ifndef DSFS_LAYER_SQLITE_H
#define DSFS_LAYER_SQLITE_H

#include "htab.h"
#include "layer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

/* Every statement, prepared once at open; their SQL is sq_stmt_sql[] in
 * layer_sqlite_store.c, beside the schema.  The attribute columns come in
 * the same order in S_GET and S_LIST, from column 1: see row_attr(). */
enum stmt {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_META_LOAD,
	S_META_SET,
	S_GET,
	S_FETCH,
	S_LIST,
	S_LIST_KINDS,
	S_REAL_KID,
	S_KIDS_COST,
	S_DEL_KIDS,
	S_DEL,
	S_PUT,
	S_UPDATE,
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
	S_TOUCH,
	S_COUNT
};

extern const char *const sq_stmt_sql[S_COUNT];

struct sq_db; /* a connection and its statements: layer_sqlite_tx.c */

struct sq_layer {
	struct dsfs_layer base; /* first: (struct dsfs_layer *) is a cast */
	pthread_mutex_t lock;	/* serialises db, guards pins and reserve */
	struct sq_db *db;
	uint64_t budget;
	char *name;	    /* base.name points here */
	char *path;	    /* for log lines */
	bool image;	    /* opened immutable: nothing is ever deleted */
	struct htab pins;   /* struct pin by token: layer_sqlite.c */
	int reserve_fd;	    /* the space reserve, -1 if none: Disk space */
	uint64_t reserve;   /* its size when held */
	bool reserve_out;   /* given back, not yet taken again */
	time_t reserve_try; /* last attempt to take it again (monotonic s) */
	uint64_t psize;	    /* the database's page size */
	uint64_t wal_bytes; /* W, the WAL's limit: layer_sqlite_disk.c */
	/* The filesystem's free space when last measured, and what this
	 * layer's changes may have taken of it since (layer_sqlite_disk.c). */
	uint64_t seen_avail, seen_spent;
	struct timespec seen_at; /* CLOCK_MONOTONIC; 0: measure again */
	/* layer_sqlite_blobfile.c: new blobs of bf_min bytes or more go to
	 * files (0: none); bf_busy of them are being written; bf_todo
	 * counts what the next settle has to do. */
	uint64_t bf_min;
	unsigned bf_busy;
	unsigned bf_todo;
	/* The meta table's two counters as the last transaction left them,
	 * if meta_known: kept only under the exclusive lock, where no other
	 * connection can change them (layer_sqlite_tx.c). */
	bool exclusive;
	bool meta_known;
	int64_t meta_used, meta_seq;
	/* A write transaction that create() left open (carried), holding
	 * `carried` creates; the next change joins it and commits them
	 * (layer_sqlite_tx.c).  The counters' values committed under it. */
	bool carry;
	unsigned carried;
	int64_t carry_used0, carry_seq0;
	int64_t seq_floor; /* versions answered by carried creates undone */
};

static inline struct sq_layer *to_sq(struct dsfs_layer *l)
{
	return (struct sq_layer *)l;
}

/* One use of the connection, read or write: what the log line names, and
 * for a write the meta values loaded at BEGIN and stored before COMMIT. */
struct tx {
	struct sq_layer *s;
	const char *what;
	const char *key;
	int64_t used, seq;
	int64_t used0, seq0; /* as loaded, to skip writing unchanged meta */
	bool disk_full;	     /* a statement failed for want of disk space */
	bool stated;	     /* apply(): no directory times (layer.h) */
};

typedef int (*tx_fn)(struct tx *t, void *arg);

struct row {
	int64_t id; /* 0 for a tree root, which is never stored */
	struct dsfs_attr a;
};

struct blobinfo {
	int64_t rowid;
	int64_t refs;
	uint64_t len;
	bool file; /* the bytes are in a file: layer_sqlite_blobfile.c */
};

/* layer_sqlite.c */
extern const struct dsfs_layer_ops sq_ops;

/* Copy the open store s to the new file dst, as one state of the store,
 * while writers go on (layer_sqlite_tx.c); -EIO and *why on failure. */
int sq_backup(struct sq_layer *s, const char *dst, const char **why);

/* layer_sqlite_store.c */
void sq_close(struct dsfs_layer *l);
const char *__attribute__((format(printf, 1, 2))) sq_whyf(const char *fmt, ...);

/* layer_sqlite_disk.c: the disk under a read-write store.  sq_disk_room()
 * is -ENOSPC unless `bytes` more of values fit on it in one change;
 * sq_disk_fits() says how many do in small changes (UINT64_MAX for an
 * image).  Lock held. */
int sq_disk_plan(struct sq_layer *s);
int sq_disk_room(struct tx *t, uint64_t bytes);
int sq_disk_room_for(struct sq_layer *s, uint64_t bytes); /* room() */
/* SQLite said the disk is full: measure at the next question. */
void sq_disk_forget(struct sq_layer *s);
uint64_t sq_disk_fits(struct sq_layer *s);
bool sq_reserve_give(struct sq_layer *s, const char *what);
void sq_reserve_retake(struct sq_layer *s);

/* layer_sqlite_tx.c: the connection, for the store file.  flags are
 * SQLite's open flags; the int results are SQLite result codes unless
 * said otherwise. */
int sq_db_open(const char *path, int flags, struct sq_db **out,
	       const char **why); /* 0 or a negative errno */
int sq_db_prepare(struct sq_db *d, bool keep);
void sq_db_finalize(struct sq_db *d);
int sq_db_close(struct sq_db *d);
int sq_db_exec(struct sq_db *d, const char *sql);
int sq_db_query1(struct sq_db *d, const char *sql, int64_t *v, char *buf,
		 size_t cap);
const char *sq_db_errmsg(const struct sq_db *d);
int sq_db_errno(struct sq_db *d, int rc, int saved); /* negative errno */
/* layer_sqlite_errno.c: SQLite's result rc, errno `saved` right after the
 * failing call, as a negative errno. */
struct sqlite3;
int sq_sqlite_errno(struct sqlite3 *db, int rc, int saved);
bool sq_db_in_tx(struct sq_db *d);

/* layer_sqlite_tx.c: statements and transactions (0 or a negative errno,
 * failures logged). */
int sq_run(struct tx *t, enum stmt i);
int sq_run_key(struct tx *t, enum stmt i, const char *key, size_t len);
int sq_int_key(struct tx *t, enum stmt i, const char *key, size_t len,
	       int64_t *v);
int sq_meta_load(struct tx *t);
/* A name in the directory dir[0..len) changed: its mtime and ctime are
 * now, with a new version, unless it is a tree root or t->stated. */
int sq_touch_dir(struct tx *t, const char *dir, size_t len);
int sq_write_locked(struct tx *t, tx_fn fn, void *arg);
int sq_write_tx(struct sq_layer *s, const char *what, const char *key, tx_fn fn,
		void *arg);
/* sq_write_tx(), but the transaction may be left open for the next change
 * to commit (carried): for create() only. */
int sq_carry_tx(struct sq_layer *s, const char *what, const char *key, tx_fn fn,
		void *arg);
/* Commit the carried transaction, if there is one. */
int sq_settle(struct sq_layer *s);
int sq_read_tx(struct sq_layer *s, const char *what, const char *key, tx_fn fn,
	       void *arg);
int sq_set_synchronous(struct tx *t, const char *level);

/* layer_sqlite_tx.c: rows and blobs. */
int sq_split(const char *key, size_t len, struct layer_key *k);
int sq_get_row(struct tx *t, const struct layer_key *k, struct row *r);
int sq_get_key(struct tx *t, const char *key, size_t len, struct row *r);
int sq_fetch_row(struct tx *t, const struct layer_key *k, struct row *r,
		 char **data, size_t *len);
int sq_target(struct tx *t, const char *key, size_t len, struct layer_key *k,
	      struct row *r, bool *found, struct row *parent);
int sq_put_row(struct tx *t, const struct layer_key *k,
	       const struct dsfs_attr *a, const void *value, size_t len,
	       bool is_file);
int sq_update_row(struct tx *t, int64_t id, const struct dsfs_attr *a,
		  const void *value, size_t len, bool is_file);
int sq_row_setattr(struct tx *t, const struct row *r, uint64_t version);
int sq_row_del(struct tx *t, int64_t id);
int sq_row_move(struct tx *t, int64_t id, const struct layer_key *to,
		uint64_t version);
int sq_move_subtree(struct tx *t, const char *from, size_t flen, const char *to,
		    size_t tlen);
int sq_list_rows(struct tx *t, const char *dir, size_t len, const char *after,
		 int limit, bool kinds,
		 int (*fn)(void *ctx, const char *name,
			   const struct dsfs_attr *a),
		 void *ctx);
/* layer_sqlite_list.c: the layer's list(). */
int sq_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb, void *ctx);
int sq_list_kinds(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		  void *ctx);
int sq_blob_get(struct tx *t, const char *token, struct blobinfo *b);
int sq_blob_add(struct tx *t, const char *token, const void *data, size_t len);
int sq_blob_ref(struct tx *t, const char *token, int delta);
int sq_read_cell(struct tx *t, bool blob, int64_t rowid, uint64_t off,
		 void *buf, size_t len, ssize_t *done);
/* Every row of sql's result, column 0 as text: fn's non-zero return
 * stops the walk and is returned; a SQLite result code otherwise. */
int sq_db_each(struct sq_db *d, const char *sql,
	       int (*fn)(void *ctx, const char *text), void *ctx);
/* Checkpoint the whole WAL into the database file (which syncs the WAL
 * first); a SQLite result code, SQLITE_BUSY if frames were left. */
int sq_db_checkpoint(struct sq_db *d);
/* Sync the log (the WAL) as it is, without copying it into the database
 * file: every commit made so far survives a power loss, and the log is
 * not started over, which would cost the next commit a sync of its new
 * header.  A SQLite result code. */
int sq_db_sync_log(struct sq_db *d);

/* layer_sqlite_walbuf.c: the name of the VFS the store's files are opened
 * with (each transaction's writes to the WAL in one system call), NULL
 * (SQLite's default) if it could not be registered. */
const char *sq_vfs_name(void);

/* layer_sqlite_blobfile.c: blobs kept as files (lock held unless said).
 * sq_bf_prepare() writes token's bytes durably, lock not held: 0 if a
 * file now holds them, 1 if the blob goes into the database instead, or
 * a negative errno; with hash, it computes token (layer.h, hash_token)
 * instead of reading it.  sq_bf_done(), lock not held, ends what it
 * began (if it began).
 * sq_bf_ready() says whether commit_fn may reference the file. */
int sq_bf_prepare(struct sq_layer *s, char *token, bool hash, const void *data,
		  size_t len);
int sq_bf_done(struct sq_layer *s, bool began, int rc); /* returns rc */
bool sq_bf_ready(struct sq_layer *s, const char *token);
int sq_bf_mark(struct tx *t); /* store version 2, in t's transaction */
int sq_bf_size(struct sq_layer *s, const char *token, uint64_t *size);
int sq_bf_read(struct tx *t, const char *token, uint64_t off, void *buf,
	       size_t len, ssize_t *done);
int sq_bf_drop(struct tx *t, const char *token);
int sq_bf_clear(struct tx *t, int64_t *bytes);
void sq_bf_settle(struct sq_layer *s, bool mount);
int sq_bf_collect(struct sq_db *db, const char *path, int64_t *bytes);
int sq_bf_copy(struct sq_layer *s, const char *dst);

#endif
