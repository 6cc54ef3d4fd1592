/*
 * layer_pg.h - what the files of the PostgreSQL layer share, and no one
 * else includes.
 *
 * The layer is these files, one concern each, like the SQLite layer:
 *
 *   layer_pg.c        the operations of layer.h, in terms of rows and
 *                     blobs
 *   layer_pg_list.c   list(): a directory's children, in batches
 *   layer_pg_fast.c   the common changes in one statement and one trip
 *   layer_pg_defer.c  creates made on the server with their value
 *   layer_pg_known.c  lookup(), and the directories it remembers
 *   layer_pg_rows.c   one entry's row, and the blobs' reference counts
 *   layer_pg_conn.c   the connections: the conninfo and its password, the
 *                     pool, timeouts, errors and reconnection, parameters
 *                     and results, transactions
 *   layer_pg_pipe.c   write transactions in libpq's pipeline mode
 *   layer_pg_store.c  the database: schema and its version, statements,
 *                     opening and closing, the pins and their heartbeat
 *
 * Only these include libpq's header (through libpq_dl.h, which loads
 * libpq at the first open).  Several daemons (hosts) share the database:
 * every write transaction starts by locking the one row of
 * dsfs_state (usage and version counter), so writers of all hosts are
 * serialised there and each sees what the previous one committed; readers
 * take no lock.  Inside a process, a pool of connections lets FUSE threads
 * run at once.
 */
#ifndef DSFS_LAYER_PG_H
#define DSFS_LAYER_PG_H

#include "htab.h"
#include "layer.h"
#include "libpq_dl.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* The schema this daemon writes and reads (dsfs_meta 'schema_version'). */
#define PG_SCHEMA_VERSION 1

/* Connections per opened layer: FUSE threads beyond this wait for one. */
#define PG_POOL 4

/* Bounds of an operation while the server cannot be reached or answer,
 * documented in dsfs(8): seconds to connect, to run one statement or wait
 * for a row lock, and to wait for a free connection. */
#define PG_CONNECT_TIMEOUT "3"
#define PG_STATEMENT_TIMEOUT_MS 5000
#define PG_POOL_WAIT_SEC 10

/* usage() answers from what this host's last write transaction or usage
 * read saw, for this long after it (dsfs(8), several hosts), if that left
 * an eighth of the budget free; else it asks the server. */
#define PG_USAGE_FRESH_MS 100

/* Creates that wait in this process for their value's commit at most
 * (layer_pg_defer.c); a create beyond them goes to the server at once. */
#define PG_DEFER_MAX 32
/* ... and only where lookup() found the directory of the name missing, at
 * most this long ago (the kernel's LOOKUP before its CREATE), among the
 * last PG_ROOM_KEYS names missed. */
#define PG_ROOM_MS 1000
#define PG_ROOM_KEYS 8

/* What lookup() may remember (layer_pg_known.c, layer_pg_remember()):
 * this many directories, and the names of one that holds at most
 * PG_KNOWN_NAMES, up to PG_KNOWN_ALL names in all. */
#define PG_KNOWN_DIRS 16
#define PG_KNOWN_NAMES 16384
#define PG_KNOWN_ALL 65536

/* A pin owner (an opened layer) that has not renewed its row for this
 * long is dead: its pins stop protecting blobs. */
#define PG_OWNER_TTL_SEC 120
#define PG_OWNER_BEAT_SEC 30

/* What a thread waits for from the server (layer_pg_wait.c): each kind
 * has its own mean wait, which bounds how long a wait polls. */
enum pg_wait {
	PG_WAIT_READ,	/* a statement's answer */
	PG_WAIT_COMMIT, /* a transaction's end: the server's log flush */
	PG_WAITS,
};

/* Children per batch of list() (layer_pg_list.c): a batch's result is
 * a few hundred KiB whatever the directory holds, and a directory of
 * 10,000 names costs three round trips. */
#define PG_LIST_BATCH 4096
#define PG_STR_(x) #x
#define PG_STR(x) PG_STR_(x)

/* Every prepared statement; their SQL is pg_stmt_sql[] in
 * layer_pg_store.c.  The attribute columns come in the same order in
 * P_GET and P_LIST (P_LIST's from column 1): see pg_row_attr(). */
enum pg_stmt {
	P_USED,
	P_GET,
	P_LIST,
	P_READ,
	P_READ_BLOB,
	P_REAL_KID,
	P_KIDS_COST,
	P_DEL_KIDS,
	P_DEL,
	P_PUT,
	P_SETATTR,
	P_MOVE,
	P_MOVE_KIDS,
	P_MOVE_DESC,
	P_BLOB_GET,
	P_BLOB_ADD,
	P_BLOB_REF,
	P_BLOB_GC,
	P_PINNED,
	P_PIN,
	P_UNPIN,
	P_UNPIN_DEL,
	P_CLEAR_ENTRIES,
	P_CLEAR_BLOBS,
	P_BLOB_ZERO,
	P_BLOB_BYTES,
	P_BEAT,
	P_OWNER_SWEEP,
	P_OWNER_DROP,
	P_BLOB_SWEEP,
	P_TOUCH,
	P_TAKE,
	P_TARGET,
	P_BEGIN,
	P_LAZY_COMMIT,
	P_STATE_LOCK,
	P_STATE_SET,
	P_COMMIT,
	P_ROLLBACK,
	P_FAST_CREATE,
	P_FAST_REMOVE,
	P_FAST_COMMIT,
	P_GET_VALUE,
	P_NAMES,
	P_COUNT
};

extern const char *const pg_stmt_sql[P_COUNT];

/* The store's budget, read in the transaction that checks it, so that a
 * mount that changes it changes it for every host at once; -1 if no
 * daemon recorded one yet. */
#define PG_BUDGET_SQL                                                    \
	"coalesce((SELECT v FROM dsfs_meta WHERE k = 'runtime_budget')," \
	" -1)"

/* One connection of the pool. */
struct pg_conn {
	PGconn *conn;  /* NULL until connected, and after it broke */
	bool prepared; /* every statement prepared on conn */
	bool busy;     /* taken by a thread */
};

/* A create not yet made on the server (layer_pg_defer.c). */
struct pg_deferred {
	char *key;
	struct dsfs_attr a; /* create()'s, with the version it answered */
	uint32_t gid;	    /* shown until made: a.gid, or a set-group-ID
			     * directory's (a.inherit_group) */
	bool making;	    /* a thread is making it on the server */
};

/* A directory lookup() remembers (layer_pg_known.c). */
struct pg_known_dir {
	char *key;	    /* NULL: a free slot */
	struct dsfs_attr a; /* as the server has it */
	int64_t at_ms;	    /* when the server said so (0: it may not) */
	bool missed;	    /* a lookup missed a name in it */
	bool told;	    /* a change of a name in it was told since */
	bool listed;	    /* names holds every name in it, and maybe more */
	int64_t tried_ms;   /* when its names were last read */
	struct htab names;  /* of struct pg_known_name */
};

struct pg_known {
	pthread_mutex_t lock;
	int64_t keep_ms; /* 0: nothing is remembered (atomic) */
	uint64_t gen;	 /* changes forgotten so far */
	size_t nnames;	 /* in every dirs[].names */
	struct pg_known_dir dirs[PG_KNOWN_DIRS];
};

struct pg_owed {
	struct pg_owed *next;
	char token[DSFS_TOKEN_LEN + 1];
};

struct pg_layer {
	struct dsfs_layer base; /* first: (struct dsfs_layer *) is a cast */
	char *conninfo;		/* as given: holds the password, if any */
	char *shown;		/* the conninfo without password, for logs */
	char owner[64];		/* this opening's pin owner name */
	uint64_t budget;	/* the store's, as recorded at open */
	bool set_budget;	/* record budget, whatever was recorded */
	/* A snapshot (pg_snapshot_open()): pool[0] holds one REPEATABLE
	 * READ, READ ONLY transaction that every op runs in. */
	bool snap;

	pthread_mutex_t lock; /* guards pool[] and down */
	pthread_cond_t freed; /* a connection was given back */
	struct pg_conn pool[PG_POOL];
	bool down; /* the last connection attempt failed (logged once) */
	/* A PG_LAZY transaction committed since the last sync(): its log
	 * record may not be on the server's disk yet. */
	bool unsynced;

	/* The usage and budget last seen, and when (CLOCK_MONOTONIC ms;
	 * 0: never), for usage() (guarded by lock). */
	int64_t seen_used;
	uint64_t seen_budget;
	int64_t seen_ms;

	/* Unpins that could not reach the database: the heartbeat retries
	 * them, so that a pin never outlives its opening by more than the
	 * outage (guarded by lock). */
	struct pg_owed *owed;

	/* Creates that wait for their value (layer_pg_defer.c), guarded by
	 * lock; made is signalled when one is made or given back.  The
	 * count is also read without the lock, as a hint that none wait. */
	struct pg_deferred deferred[PG_DEFER_MAX];
	int ndeferred;
	pthread_cond_t made;
	/* The version counter last seen, and the last version a deferred
	 * create answered: the next one answers above both (guarded by
	 * lock). */
	int64_t seen_seq;
	uint64_t deferred_version;
	/* The last names lookup() missed in a directory of the layer, and
	 * when (CLOCK_MONOTONIC ms), guarded by lock: a create of one of
	 * them may wait (layer_pg_defer.c). */
	char *room[PG_ROOM_KEYS];
	int64_t room_ms[PG_ROOM_KEYS];
	struct dsfs_attr room_parent[PG_ROOM_KEYS]; /* the directory's */
	unsigned room_next;

	/* Busy polling (layer_pg_wait.c): its bound in µs (0: off),
	 * whether a thread polls now, and the recent mean wait of each kind
	 * in µs.  Atomics, read and written without the lock. */
	unsigned poll_max_us;
	int polling;
	unsigned wait_us[PG_WAITS];
	int64_t crowded_ns; /* when a poll last found the CPUs busy */
	/* layer_pg_on_wait(): set before the layer serves. */
	void (*on_wait)(void *arg);
	void *on_wait_arg;

	/* What lookup() remembers of the directories (layer_pg_known.c). */
	struct pg_known known;

	/* The heartbeat thread renews this owner's row (its pins). */
	pthread_t beat;
	bool beating;
	bool stopping;
	pthread_cond_t stop;
};

static inline struct pg_layer *to_pg(struct dsfs_layer *l)
{
	return (struct pg_layer *)l;
}

/* Parameters of one statement, all sent in binary. */
#define PG_MAX_PARAMS 24
struct pg_params {
	int n;
	const char *val[PG_MAX_PARAMS];
	int len[PG_MAX_PARAMS];
	int fmt[PG_MAX_PARAMS];
	char num[PG_MAX_PARAMS][8]; /* int8 values, network byte order */
};

void pg_param_i64(struct pg_params *p, int64_t v);
void pg_param_bytes(struct pg_params *p, const void *v, size_t len);
void pg_param_str(struct pg_params *p, const char *s);
void pg_param_null(struct pg_params *p);

/* Statements of a write transaction sent before their results are read;
 * one more reads them all first. */
#define PG_MAX_PEND 32

/* A transaction on one connection of the pool. */
struct pg_tx {
	struct pg_layer *p;
	struct pg_conn *c;
	const char *what; /* "commit", ... : for log lines */
	const char *key;  /* the key or token concerned, or NULL */
	int64_t used;	  /* dsfs_state, read and written by write tx */
	int64_t seq;
	bool stated;	 /* apply(): no directory times (layer.h) */
	uint64_t budget; /* the store's, read with dsfs_state */

	/* A write transaction runs in libpq's pipeline mode
	 * (layer_pg_pipe.c): statements whose results it does not need are
	 * sent with the next one whose result it needs, or with COMMIT. */
	bool piped;
	bool state_due; /* used, seq and budget are not read yet */
	int npend;	/* statements sent whose results are not read */
	unsigned char pend[PG_MAX_PEND]; /* what each is (layer_pg_pipe.c) */
};

/* layer_pg_conn.c */

/* Run stmt with params; *res is the result (rows or not) on success, to
 * PQclear().  A failure is logged with t's what and key, and converted to
 * a negative errno (-EIO mostly; the connection is marked broken if it
 * is). */
int pg_exec(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
	    PGresult **res);
/* The same, for a statement whose rows do not matter; *n (if not NULL)
 * is the number of rows it touched. */
int pg_run(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
	   long *n);
/* Keep r, a statement's result, in *res if it succeeded; else convert it
 * to a negative errno, log it with t's what and key (not a broken
 * connection's: the runner may retry) and free it. */
int pg_result(struct pg_tx *t, PGresult *r, PGresult **res);
/* A failed call of libpq on t's connection (r: its result, or NULL): the
 * negative errno; a connection that broke is closed. */
int pg_fail_errno(struct pg_tx *t, const PGresult *r);
/* Column values of a binary result. */
int64_t pg_get_i64(const PGresult *r, int row, int col);
bool pg_get_bool(const PGresult *r, int row, int col);

/* The budget to check: the store's recorded one (dsfs_meta), or this
 * opening's if none is recorded (recorded < 0). */
static inline uint64_t pg_budget(const struct pg_layer *p, int64_t recorded)
{
	return recorded < 0 ? p->budget : (uint64_t)recorded;
}

/* How pg_tx_run() wraps fn: no transaction (fn runs one statement), a
 * read-only one on one snapshot (REPEATABLE READ), a write, or a write
 * whose commit does not wait for the server's log to reach its disk
 * (synchronous_commit off for that transaction alone: layer.h, create()).
 * The server writes its log in order, so the next synchronous commit of
 * any connection, or sync(), makes a lazy one durable too. */
enum pg_mode {
	PG_ONE,
	PG_READ,
	PG_WRITE,
	PG_LAZY,
};

/* Run fn on a pooled connection.  A write transaction locks dsfs_state
 * first (t->used, t->seq) and writes it back with the commit; fn's
 * non-zero return rolls everything back and is returned.  A connection
 * found broken before a commit was sent is made again and fn run once
 * more, so the first operation after a server restart succeeds. */
int pg_tx_run(struct pg_layer *p, enum pg_mode mode, const char *what,
	      const char *key, int (*fn)(struct pg_tx *t, void *arg),
	      void *arg);

/* A change in one round trip: BEGIN, the lock of dsfs_state, stmt and
 * COMMIT sent at once.  stmt changes nothing unless its change applies,
 * and then returns one row: the new usage and version counter first.
 * 1 if it did not apply (nothing was changed: the caller makes the change
 * with pg_tx_run(), which decides the errno), 0 if it did (*res holds its
 * row, to PQclear()), or a negative errno. */
int pg_tx_fast(struct pg_layer *p, bool lazy, const char *what, const char *key,
	       enum pg_stmt stmt, const struct pg_params *pp, PGresult **res);

/* Connect (or reconnect) pool slot c: 0 or -EIO, logged once per outage
 * through p->down.  Called with p->lock NOT held. */
int pg_connect(struct pg_layer *p, struct pg_conn *c, char *why, size_t cap);
void pg_pool_close(struct pg_layer *p);

/* layer_pg_wait.c: around the blocking read of the answer to what t just
 * sent.  pg_wait_begin() polls t's connection while that is likely to pay
 * and returns when the wait began (0 with polling off: nothing is
 * measured); pg_wait_end() adds the whole wait to the mean of its kind. */
int64_t pg_wait_begin(struct pg_tx *t, enum pg_wait kind);
void pg_wait_end(struct pg_tx *t, enum pg_wait kind, int64_t began);

/* layer_pg_known.c: lookup() and forget() of layer.h, and what lookup()
 * remembers.  pg_known_made(): this process made the file key, and the
 * server gave its directory the times at_ns and the version made
 * (a create with its value, layer_pg_fast.c).  pg_known_forget(): this
 * process or another changed key (NULL: anything); pg_tx_run() calls it
 * after every write transaction. */
int pg_known_init(struct pg_known *k);
void pg_known_free(struct pg_known *k);
int pg_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a);
void pg_forget(struct dsfs_layer *l, const char *key);
void pg_known_made(struct pg_layer *p, const char *key, int64_t at_ns,
		   uint64_t version);
void pg_known_forget(struct pg_layer *p, const char *key);

/* layer_pg_list.c: list() of layer.h. */
int pg_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb, void *ctx);

/* layer_pg.c: note what a transaction read or committed of dsfs_state,
 * for usage() and the versions of deferred creates (seq < 0: not
 * read). */
void pg_note_usage(struct pg_layer *p, int64_t used, int64_t seq,
		   uint64_t budget);
/* CLOCK_MONOTONIC, in ms. */
int64_t pg_now_ms(void);

/* layer_pg_pipe.c: a write transaction in pipeline mode.  Begin: BEGIN
 * and the lock of dsfs_state are sent, and read with the first statement
 * whose result fn needs.  Commit: the state row and COMMIT, sent with
 * whatever pg_send() left, read at once; *sent says whether COMMIT was on
 * the wire.  Abort: ROLLBACK, and the connection back out of pipeline
 * mode; nothing if the connection broke. */
int pg_pipe_begin(struct pg_tx *t, bool lazy);
int pg_pipe_commit(struct pg_tx *t, bool *sent);
void pg_pipe_abort(struct pg_tx *t);
/* The statement of pg_tx_fast(), with COMMIT, read at once: *res its
 * rows (to PQclear()); one row (used, seq, ...) is a change made. */
int pg_pipe_fast(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
		 PGresult **res);
/* pg_exec() in pipeline mode: send stmt and read its result with those
 * of everything sent before it (the first failure among them is
 * returned). */
int pg_pipe_exec(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
		 PGresult **res);
/* Run stmt, whose result only matters if it fails: in a write
 * transaction it goes with the next statement whose result is read, which
 * reports its failure; otherwise it runs now. */
int pg_send(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp);
/* t->used, t->seq and t->budget, read from the server if they are not
 * yet: before a write transaction uses them. */
int pg_tx_state(struct pg_tx *t);

/* layer_pg_rows.c: one entry's row, and the blobs' reference counts, in
 * the caller's transaction. */
/* The attribute columns (ATTR_COLS) of row, from column c. */
void pg_row_attr(const PGresult *r, int row, int c, struct dsfs_attr *a);
/* k as the first two parameters, (parent, name). */
void pg_param_key(struct pg_params *pp, const struct layer_key *k);
/* Run stmt: its one row in *r (to PQclear()), or -ENOENT if it found
 * none. */
int pg_one_row(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
	       PGresult **r);
/* The row named by k: 0, or -ENOENT if there is none. */
int pg_get_row(struct pg_tx *t, const struct layer_key *k, struct dsfs_attr *a);
/* The row of key; a key without a parent part has none. */
int pg_get_key(struct pg_tx *t, const char *key, struct dsfs_attr *a);
/* Split key, read the row at key, if any (*found), and check that its
 * parent can hold it (a root or a directory).  A row found has its parent
 * (layer.h, Entries): replacing one costs no second read.  The parent's
 * row goes to *parent if not NULL (kind DSFS_NONE for a tree root). */
int pg_target(struct pg_tx *t, const char *key, struct layer_key *k,
	      struct dsfs_attr *a, bool *found, struct dsfs_attr *parent);
/* The 15 parameters of a row at k with a (P_PUT's): data is the value
 * of a plain file (NULL stores none). */
void pg_param_row(struct pg_params *pp, const struct layer_key *k,
		  const struct dsfs_attr *a, const void *data, size_t len);
/* Write the row at k with a; data is the value of a plain file (NULL
 * stores none). */
int pg_put_row(struct pg_tx *t, const struct layer_key *k,
	       const struct dsfs_attr *a, const void *data, size_t len);
/* Run a statement whose only parameter is the byte string s[0..len);
 * without n, as pg_send(). */
int pg_run_on(struct pg_tx *t, enum pg_stmt stmt, const char *s, size_t len,
	      long *n);
/* The int8 in the first column of stmt's one row (0 if no row). */
int pg_int_on(struct pg_tx *t, enum pg_stmt stmt, const char *s, size_t len,
	      int64_t *v);
/* Is a an image file, whose value is a blob? */
bool pg_in_blob(const struct dsfs_attr *a);
/* The references to token's blob and its length; -ENOENT if none. */
int pg_blob_get(struct pg_tx *t, const char *token, int64_t *refs,
		uint64_t *len);
/* Add delta to the references to token's blob. */
int pg_blob_ref(struct pg_tx *t, const char *token, int64_t delta);
/* Is token pinned by any opening, on any host? */
int pg_pinned(struct pg_tx *t, const char *token, bool *yes);
/* Delete token's blob if nothing references or pins it; *freed is the
 * bytes it held (0 if it stays). */
int pg_blob_gc(struct pg_tx *t, const char *token, uint64_t *freed);
/* Drop one reference to token's blob; one that nothing references or
 * pins any more is deleted (the caller counted its bytes). */
int pg_blob_put(struct pg_tx *t, const char *token);

/* layer_pg_store.c */

/* Prepare every statement on a new connection. */
int pg_store_prepare_stmts(PGconn *conn, char *why, size_t cap);
/* close(): stop the heartbeat, drop this opening's pins (deleting
 * nothing), close the connections and free p. */
void pg_store_close(struct pg_layer *p);
/* Pin token for this opening, or drop one of its pins now (at the last
 * pin and reference, the blob goes); -EIO if the database cannot be
 * reached.  pg_retry_unpins() (at each heartbeat and after an unpin that
 * reached the database) tries again those that failed so, which
 * pg_owe_unpin() noted. */
int pg_pin_now(struct pg_layer *p, const char *token);
int pg_unpin_now(struct pg_layer *p, const char *token);
void pg_owe_unpin(struct pg_layer *p, const char *token);
void pg_retry_unpins(struct pg_layer *p);
/* A read-only layer of p's rows as they are now (layer.h, snapshot):
 * a connection of its own in one REPEATABLE READ transaction. */
int pg_snapshot_open(struct pg_layer *p, struct dsfs_layer **out);

/* layer_pg_fast.c: the commonest changes in one round trip
 * (pg_tx_fast()); 1 if the change is not of the kind they make. */
/* create() of a new plain file where no row is, in a directory, with
 * data as its value (a create's is empty); lazy: without waiting for the
 * server's disk (layer.h, create()). */
int pg_fast_make(struct pg_layer *p, const char *key, const struct dsfs_attr *a,
		 const void *data, size_t len, bool lazy,
		 struct dsfs_attr *out);
/* remove() of a plain file whose value is in its row; its attributes
 * to *out if out is not NULL. */
int pg_fast_remove(struct pg_layer *p, const char *key, struct dsfs_attr *out);
/* fetch(): the row at key and the value in it, in one statement. */
int pg_fetch(struct pg_layer *p, const char *key, struct dsfs_attr *a,
	     char **data, size_t *len);
/* commit() of a value kept in its row over a plain file whose value is in
 * its row (an overwrite, or the close of a created file); with keep, the
 * file keeps its mode and owner (replace()). */
int pg_fast_commit(struct pg_layer *p, const char *key,
		   const struct dsfs_attr *a, const void *data, size_t len,
		   bool keep, struct dsfs_attr *out);

/* layer_pg_defer.c: creates made on the server with their value.
 *
 * pg_defer_room()    lookup() missed key in parent, a directory of the
 *                    layer (NULL or kind DSFS_NONE: a tree root)
 * pg_defer_note()    note a create of key (a, as create() got it): 0
 *                    and *out as a lookup will answer it, or 1 (make it
 *                    at once) unless lookup() missed key in a directory
 *                    just now and fewer than PG_DEFER_MAX names wait
 * pg_defer_find()    true, and *a, if key waits
 * pg_defer_commit()  commit() or replace() of a waiting key: the file
 *                    and its value in one change; 1 if key does not wait
 * pg_defer_settle()  make every waiting key that key is, is under or is
 *                    above (NULL: all).  A key the server cannot be
 *                    asked to make (EIO) keeps waiting, and that error is
 *                    returned; one it refuses (ENOENT, ENOSPC, ...) goes,
 *                    logged
 * pg_defer_settle_one()  the same for settle(): the refusal is returned
 *                    too, else 1 if a name was made, 0 if none waited
 * pg_defer_forget()  drop what still waits, logging each name (close)
 */
void pg_defer_room(struct pg_layer *p, const char *key,
		   const struct dsfs_attr *parent);
int pg_defer_note(struct pg_layer *p, const char *key,
		  const struct dsfs_attr *a, struct dsfs_attr *out);
bool pg_defer_find(struct pg_layer *p, const char *key, struct dsfs_attr *a);
int pg_defer_commit(struct pg_layer *p, const char *key,
		    const struct dsfs_attr *a, const void *data, size_t len,
		    struct dsfs_attr *out);
int pg_defer_settle(struct pg_layer *p, const char *key);
int pg_defer_settle_one(struct pg_layer *p, const char *key);
void pg_defer_forget(struct pg_layer *p);

/* layer_pg.c: commit() in its general form, the one a fast form falls
 * back to: excl, a file at key is -EEXIST (create()); lazy, without
 * waiting for the server's disk. */
int pg_commit_general(struct pg_layer *p, const char *key,
		      const struct dsfs_attr *a, const void *data, size_t len,
		      bool excl, bool lazy, struct dsfs_attr *out);

extern const struct dsfs_layer_ops pg_ops;

#endif
