/*
 * layer_sqlite_tx.c - the SQLite layer's connection: SQLite's errors, its
 * prepared statements, transactions, and the rows and blobs they read and
 * write.
 *
 * Every SQLite call the layer makes on an open store is here, so that the
 * operations (layer_sqlite.c) speak of rows and blobs and the store file
 * (layer_sqlite_store.c) of result codes, and a SQLite result is
 * converted to an errno in one place.  One row of `entry` per stored key,
 * named by (parent, name), holds its attributes and, last, its value, so
 * reading a row's attributes never touches the overflow pages of a large
 * value, and reads go through SQLite's blob I/O, which reads only the
 * range asked for.  Every change is one BEGIN IMMEDIATE transaction that
 * loads the usage and the version counter (from `meta`, or under the
 * exclusive lock from the layer's copy of them) and stores them back
 * before COMMIT, or a savepoint in the transaction a create left open
 * (carried: see "transactions"); reads of several statements share one
 * BEGIN.
 */
#include "layer_sqlite.h"
#include "log.h"

#include <errno.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUSY_TIMEOUT_MS 5000

struct sq_db {
	sqlite3 *db;
	sqlite3_stmt *st[S_COUNT]; /* prepared while the layer is open */
};

static sqlite3_stmt *stmt(struct tx *t, enum stmt i)
{
	return t->s->db->st[i];
}

/* ---- errors -------------------------------------------------------- */

/* Log a failed call on t's connection and convert its result.  Must be
 * called straight after the call, before anything else touches errno or
 * the connection, which would replace the message. */
static int tx_fail(struct tx *t, int rc)
{
	int saved = errno;
	struct sq_layer *s = t->s;
	int err = sq_sqlite_errno(s->db->db, rc, saved);

	if (err == -ENOSPC || err == -EDQUOT) {
		t->disk_full = true;
		sq_disk_forget(s);
	}
	log_err("%s: %s %s: %s (%s)", s->path, t->what, t->key ? t->key : "",
		sqlite3_errmsg(s->db->db), strerror(-err));
	return err;
}

int sq_db_errno(struct sq_db *d, int rc, int saved)
{
	return sq_sqlite_errno(d->db, rc, saved);
}

const char *sq_db_errmsg(const struct sq_db *d)
{
	return sqlite3_errmsg(d->db);
}

/* ---- the connection ------------------------------------------------ */

/* Settings every connection gets: extended codes so that
 * sq_sqlite_errno() sees the I/O detail, a busy timeout for a store shared
 * with the admin tool, and no trust in anything the schema might carry
 * (triggers, views). */
static void tune(sqlite3 *db)
{
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
}

/* Open path for SQLite; on failure *out is NULL. */
int sq_db_open(const char *path, int flags, struct sq_db **out,
	       const char **why)
{
	struct sq_db *d;
	sqlite3 *db = NULL;
	int rc;

	*out = NULL;
	d = calloc(1, sizeof(*d));
	if (!d) {
		*why = "out of memory";
		return -ENOMEM;
	}
	rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX,
			     sq_vfs_name());
	if (rc != SQLITE_OK) {
		int err = sq_sqlite_errno(db, rc, errno);

		*why = sq_whyf("cannot open (%s)",
			       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		sqlite3_close(db);
		free(d);
		return err;
	}
	tune(db);
	d->db = db;
	*out = d;
	return 0;
}

static void finalize_all(sqlite3_stmt **st)
{
	int i;

	for (i = 0; i < S_COUNT; i++) {
		sqlite3_finalize(st[i]);
		st[i] = NULL;
	}
}

/* Prepare every statement: to keep, at open for use, or not, on a check
 * connection as the test that the schema has every table and column the
 * layer uses. */
int sq_db_prepare(struct sq_db *d, bool keep)
{
	unsigned flags = keep ? SQLITE_PREPARE_PERSISTENT : 0;
	int i, rc;

	for (i = 0; i < S_COUNT; i++) {
		rc = sqlite3_prepare_v3(d->db, sq_stmt_sql[i], -1, flags,
					&d->st[i], NULL);
		if (rc != SQLITE_OK) {
			finalize_all(d->st);
			return rc;
		}
	}
	if (!keep)
		finalize_all(d->st);
	return SQLITE_OK;
}

void sq_db_finalize(struct sq_db *d)
{
	finalize_all(d->st);
}

/* Finalize the statements and close; d is freed whatever the result. */
int sq_db_close(struct sq_db *d)
{
	int rc;

	if (!d)
		return SQLITE_OK;
	finalize_all(d->st);
	rc = sqlite3_close(d->db);
	free(d);
	return rc;
}

int sq_db_exec(struct sq_db *d, const char *sql)
{
	return sqlite3_exec(d->db, sql, NULL, NULL, NULL);
}

bool sq_db_in_tx(struct sq_db *d)
{
	return !sqlite3_get_autocommit(d->db);
}

/* Run a statement that returns one row of one column, as text (copied into
 * buf) or as an integer.  Returns a SQLite result code. */
int sq_db_query1(struct sq_db *d, const char *sql, int64_t *v, char *buf,
		 size_t cap)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
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

/* ---- statements ---------------------------------------------------- */

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

int sq_run(struct tx *t, enum stmt i)
{
	return run(t, stmt(t, i));
}

/* Bind ?1 to a key (or part of one, or a token) and run. */
int sq_run_key(struct tx *t, enum stmt i, const char *key, size_t len)
{
	bind_str(stmt(t, i), 1, key, (int)len);
	return run(t, stmt(t, i));
}

/* Bind ?1 to key unless it is NULL, and read column 0 of the first row
 * as an integer: -ENOENT if there is no row. */
int sq_int_key(struct tx *t, enum stmt i, const char *key, size_t len,
	       int64_t *v)
{
	sqlite3_stmt *st = stmt(t, i);
	int rc;

	if (key)
		bind_str(st, 1, key, (int)len);
	rc = step(t, st);
	if (rc == 1) {
		*v = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		return 0;
	}
	return rc == 0 ? -ENOENT : rc;
}

/* ---- meta ---------------------------------------------------------- */

/* Load t->used and t->seq, the bytes used and the version counter.  Under
 * the exclusive lock (layer_sqlite_exclusive()) no other connection can
 * write the store, so the values the last transaction left are the
 * store's, and a change need not read them again: two statements fewer
 * per change, and none for usage(), which the daemon asks at every create
 * and write.  Without that lock they are read every time. */
int sq_meta_load(struct tx *t)
{
	struct sq_layer *s = t->s;
	sqlite3_stmt *st;
	int rc;

	if (s->meta_known) {
		t->used = s->meta_used;
		t->seq = s->meta_seq;
		return 0;
	}
	st = stmt(t, S_META_LOAD);
	rc = step(t, st);
	if (rc != 1)
		return rc < 0 ? rc : -EIO;
	if (sqlite3_column_type(st, 0) == SQLITE_NULL ||
	    sqlite3_column_type(st, 1) == SQLITE_NULL) {
		sqlite3_reset(st);
		log_err("%s: %s %s: no usage or version record in meta",
			s->path, t->what, t->key ? t->key : "");
		return -EIO;
	}
	t->used = sqlite3_column_int64(st, 0);
	t->seq = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if (t->seq < s->seq_floor)
		t->seq = s->seq_floor;
	s->meta_used = t->used;
	s->meta_seq = t->seq;
	s->meta_known = s->exclusive;
	return 0;
}

static int meta_set(struct tx *t, const char *k, int64_t v)
{
	sqlite3_stmt *st = stmt(t, S_META_SET);

	bind_str(st, 1, k, -1);
	sqlite3_bind_int64(st, 2, v);
	return run(t, st);
}

/* ---- transactions -------------------------------------------------- */

/*
 * A create is carried: under the exclusive lock (nobody but this
 * connection can read the store), create() leaves its write transaction
 * open instead of committing it, and the next change, whatever it is,
 * runs inside it as a savepoint and commits both.  Usually that change is
 * the created file's value, committed at its close, so a new file costs
 * one transaction instead of two; a close with nothing written settles
 * (commits) it alone.  Every read of the connection sees the carried rows,
 * as the mount must; what cannot run inside a transaction (sync, a
 * backup, the close) settles first, and the settling of image files
 * waits for a commit.  The counters of meta
 * are written with the commit: under the carry, s->meta_used and
 * s->meta_seq are ahead of the table, and carry_used0 and carry_seq0 say
 * what the table holds.
 */

/* Undo whatever the transaction did.  SQLite rolls back by itself after
 * some errors (a full disk, an I/O error), hence the autocommit test. */
static void undo(struct tx *t)
{
	if (!sqlite3_get_autocommit(t->s->db->db))
		sq_run(t, S_ROLLBACK);
}

/* undo() a write transaction, carried creates included. */
static void rollback(struct tx *t)
{
	struct sq_layer *s = t->s;

	undo(t);
	if (s->carry) {
		log_err("%s: %u created name%s not stored: the transaction "
			"that carried %s failed",
			s->path, s->carried, s->carried == 1 ? "" : "s",
			s->carried == 1 ? "it" : "them");
		/* Their versions were answered: none is given again. */
		s->seq_floor = s->meta_seq;
	}
	s->carry = false;
	s->carried = 0;
	/* Whatever the failure left, the next change reads the counters. */
	s->meta_known = false;
}

/* Undo the change that joined a carried transaction, keeping what the
 * carry holds; the whole transaction if SQLite rolled it back itself. */
static void rollback_change(struct tx *t)
{
	if (sqlite3_get_autocommit(t->s->db->db) ||
	    sq_run(t, S_ROLLBACK_TO) != 0 || sq_run(t, S_RELEASE) != 0)
		rollback(t);
}

/* Run fn (NULL: nothing but the commit) inside one write transaction,
 * with t->used and t->seq loaded from meta and written back before
 * COMMIT; with `carry`, leave it open (above).  Lock held by the caller. */
static int write_locked(struct tx *t, tx_fn fn, void *arg, bool carry)
{
	struct sq_layer *s = t->s;
	bool joined = s->carry;
	int rc;

	rc = sq_run(t, joined ? S_SAVEPOINT : S_BEGIN);
	if (rc)
		return rc;
	rc = sq_meta_load(t);
	if (rc)
		goto out_rollback;
	t->used0 = joined ? s->carry_used0 : t->used;
	t->seq0 = joined ? s->carry_seq0 : t->seq;
	rc = fn ? fn(t, arg) : 0;
	if (rc)
		goto out_rollback;
	if (carry && s->exclusive) {
		rc = joined ? sq_run(t, S_RELEASE) : 0;
		if (rc)
			goto out_rollback;
		s->carry = true;
		s->carried++;
		s->carry_used0 = t->used0;
		s->carry_seq0 = t->seq0;
		s->meta_used = t->used;
		s->meta_seq = t->seq;
		return 0;
	}
	if (t->used != t->used0)
		rc = meta_set(t, "used", t->used);
	if (rc == 0 && t->seq != t->seq0)
		rc = meta_set(t, "seq", t->seq);
	if (rc == 0)
		rc = sq_run(t, S_COMMIT);
	if (rc)
		goto out_rollback;
	s->carry = false;
	s->carried = 0;
	s->meta_used = t->used;
	s->meta_seq = t->seq;
	return 0;

out_rollback:
	if (joined)
		rollback_change(t);
	else
		rollback(t);
	return rc;
}

int sq_write_locked(struct tx *t, tx_fn fn, void *arg)
{
	return write_locked(t, fn, arg, false);
}

static int write_tx(struct sq_layer *s, const char *what, const char *key,
		    tx_fn fn, void *arg, bool carry)
{
	struct tx t = {.s = s, .what = what, .key = key};
	int rc;

	/* layer.c refuses first; this keeps an image safe from a direct
	 * l->ops call too, without a log line about it. */
	if (s->base.readonly)
		return -EROFS;
	pthread_mutex_lock(&s->lock);
	rc = write_locked(&t, fn, arg, carry);
	if (rc && t.disk_full && sq_reserve_give(s, what))
		rc = write_locked(&t, fn, arg, carry);
	if (rc == 0 && s->reserve_out)
		sq_reserve_retake(s);
	if (rc == 0 && s->bf_todo && !s->carry)
		sq_bf_settle(s, false);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

int sq_write_tx(struct sq_layer *s, const char *what, const char *key, tx_fn fn,
		void *arg)
{
	return write_tx(s, what, key, fn, arg, false);
}

int sq_carry_tx(struct sq_layer *s, const char *what, const char *key, tx_fn fn,
		void *arg)
{
	return write_tx(s, what, key, fn, arg, true);
}

int sq_settle(struct sq_layer *s)
{
	struct tx t = {.s = s, .what = "commit of created names"};

	return s->carry ? write_locked(&t, NULL, NULL, false) : 0;
}

/* Run fn inside one read transaction, so that its several statements see
 * one snapshot even if another process writes the store; inside the
 * carried transaction if there is one, whose rows it must see. */
int sq_read_tx(struct sq_layer *s, const char *what, const char *key, tx_fn fn,
	       void *arg)
{
	struct tx t = {.s = s, .what = what, .key = key};
	int rc;

	pthread_mutex_lock(&s->lock);
	if (s->carry) {
		rc = fn(&t, arg);
		pthread_mutex_unlock(&s->lock);
		return rc < 0 ? rc : 0;
	}
	rc = sq_run(&t, S_BEGIN_READ);
	if (rc)
		goto out_unlock;
	rc = fn(&t, arg);
	if (rc < 0)
		goto out_rollback;
	rc = sq_run(&t, S_COMMIT);
	if (rc)
		goto out_rollback;
	pthread_mutex_unlock(&s->lock);
	return 0;

out_rollback:
	undo(&t);
out_unlock:
	pthread_mutex_unlock(&s->lock);
	return rc;
}

/* PRAGMA synchronous acts when it is compiled, not when it runs: a
 * statement prepared once at open would set the level at open and do
 * nothing later, so it is compiled anew each time. */
int sq_set_synchronous(struct tx *t, const char *level)
{
	char sql[40];
	int rc;

	snprintf(sql, sizeof(sql), "PRAGMA synchronous = %s", level);
	rc = sqlite3_exec(t->s->db->db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : tx_fail(t, rc);
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
	a->atime = layer_ns_time(sqlite3_column_int64(st, c + 5));
	a->mtime = layer_ns_time(sqlite3_column_int64(st, c + 6));
	a->ctime = layer_ns_time(sqlite3_column_int64(st, c + 7));
	a->version = (uint64_t)sqlite3_column_int64(st, c + 8);
	a->size = (uint64_t)sqlite3_column_int64(st, c + 9);
	layer_copy_str(a->type, sizeof(a->type),
		       (const char *)sqlite3_column_text(st, c + 10));
	layer_copy_str(a->token, sizeof(a->token),
		       (const char *)sqlite3_column_text(st, c + 11));
}

/* layer_split_key(), for keys whose lengths SQLite can bind (as int). */
int sq_split(const char *key, size_t len, struct layer_key *k)
{
	if (len > INT_MAX)
		return -EINVAL;
	return layer_split_key(key, len, k);
}

int sq_get_row(struct tx *t, const struct layer_key *k, struct row *r)
{
	sqlite3_stmt *st = stmt(t, S_GET);
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

/* The largest value sq_fetch_row() gives: a larger one is read by read()
 * into one buffer, where a SELECT would hold a copy of its own. */
#define FETCH_MAX (64 * 1024)

/* sq_get_row() and, for a file whose value is in its row and at most
 * FETCH_MAX bytes, that value in a new buffer (*data, the caller's; NULL
 * otherwise): one statement, so the value is the attributes' version's. */
int sq_fetch_row(struct tx *t, const struct layer_key *k, struct row *r,
		 char **data, size_t *len)
{
	sqlite3_stmt *st = stmt(t, S_FETCH);
	const void *v;
	size_t n;
	int rc;

	*data = NULL;
	*len = 0;
	bind_str(st, 1, k->parent, (int)k->plen);
	bind_str(st, 2, k->name, (int)k->nlen);
	sqlite3_bind_int(st, 3, FETCH_MAX);
	rc = step(t, st);
	if (rc != 1)
		return rc == 0 ? -ENOENT : rc;
	r->id = sqlite3_column_int64(st, 0);
	row_attr(st, 1, &r->a);
	rc = 0;
	if (r->a.kind == DSFS_FILE && !r->a.token[0] &&
	    sqlite3_column_type(st, 13) != SQLITE_NULL) {
		v = sqlite3_column_blob(st, 13);
		n = (size_t)sqlite3_column_bytes(st, 13);
		*data = malloc(n ? n : 1);
		if (!*data)
			rc = -ENOMEM;
		else if (n)
			memcpy(*data, v, n);
		*len = n;
	}
	sqlite3_reset(st);
	return rc;
}

/* The entry at key (len bytes of it), tree roots included. */
int sq_get_key(struct tx *t, const char *key, size_t len, struct row *r)
{
	struct layer_key k;

	if (layer_is_root(key, len)) {
		r->id = 0;
		layer_root_attr(&r->a);
		return 0;
	}
	if (sq_split(key, len, &k))
		return -ENOENT;
	return sq_get_row(t, &k, r);
}

/* The directory that will hold k must exist: a tree root or a directory
 * entry; -ENOENT if it is missing or a whiteout, -ENOTDIR if a file.  Its
 * row in *p. */
static int parent_ok(struct tx *t, const struct layer_key *k, struct row *p)
{
	int rc = sq_get_key(t, k->parent, k->plen, p);

	return rc ? rc : layer_dir_check(p->a.kind);
}

/* The key a change will put an entry at: its parts in *k, its parent
 * checked (parent_ok), and the entry there now in *r if *found.  The
 * parent's row, read for a new name, is in *parent if that is not NULL
 * (kind DSFS_NONE when the name was found and it was not read). */
int sq_target(struct tx *t, const char *key, size_t len, struct layer_key *k,
	      struct row *r, bool *found, struct row *parent)
{
	struct row p;
	int rc;

	if (!parent)
		parent = &p;
	parent->a.kind = DSFS_NONE;
	if (sq_split(key, len, k))
		return -EINVAL;
	/* A row found has its parent (layer.h, Entries). */
	rc = sq_get_row(t, k, r);
	*found = rc == 0;
	if (rc != -ENOENT)
		return rc;
	return parent_ok(t, k, parent);
}

/* A row's value column: SQL NULL unless is_file (images, directories,
 * whiteouts); a plain file's value is never NULL, an empty blob at least. */
static void bind_value(sqlite3_stmt *st, int col, const void *value, size_t len,
		       bool is_file)
{
	if (!is_file)
		sqlite3_bind_null(st, col);
	else if (!value || !len)
		sqlite3_bind_zeroblob(st, col, 0);
	else
		sqlite3_bind_blob64(st, col, value, len, SQLITE_STATIC);
}

/* A row's attributes after its kind, from opaque to token (11 columns),
 * from column col on: S_PUT and S_UPDATE set them in that order. */
static void bind_attrs(sqlite3_stmt *st, int col, const struct dsfs_attr *a)
{
	sqlite3_bind_int(st, col, a->opaque);
	sqlite3_bind_int64(st, col + 1, a->mode & 07777);
	sqlite3_bind_int64(st, col + 2, a->uid);
	sqlite3_bind_int64(st, col + 3, a->gid);
	sqlite3_bind_int64(st, col + 4, layer_time_ns(a->atime));
	sqlite3_bind_int64(st, col + 5, layer_time_ns(a->mtime));
	sqlite3_bind_int64(st, col + 6, layer_time_ns(a->ctime));
	sqlite3_bind_int64(st, col + 7, (sqlite3_int64)a->version);
	sqlite3_bind_int64(st, col + 8, (sqlite3_int64)a->size);
	bind_str(st, col + 9, a->type, -1);
	bind_str(st, col + 10, a->token, -1);
}

/* Insert or replace the row at k (see bind_value() for value). */
int sq_put_row(struct tx *t, const struct layer_key *k,
	       const struct dsfs_attr *a, const void *value, size_t len,
	       bool is_file)
{
	sqlite3_stmt *st = stmt(t, S_PUT);

	bind_str(st, 1, k->parent, (int)k->plen);
	bind_str(st, 2, k->name, (int)k->nlen);
	sqlite3_bind_int(st, 3, (int)a->kind);
	bind_attrs(st, 4, a);
	bind_value(st, 15, value, len, is_file);
	return run(t, st);
}

/* Store a over the file of row id, the kind and the key unchanged: an
 * UPDATE by row id writes the row alone, where the upsert of
 * sq_put_row() would rewrite the entry_kind index (kind is among the
 * columns it sets) and first fail to insert. */
int sq_update_row(struct tx *t, int64_t id, const struct dsfs_attr *a,
		  const void *value, size_t len, bool is_file)
{
	sqlite3_stmt *st = stmt(t, S_UPDATE);

	sqlite3_bind_int64(st, 1, id);
	bind_attrs(st, 2, a);
	bind_value(st, 13, value, len, is_file);
	return run(t, st);
}

/* Store r's mode, owner and times with a new version. */
int sq_row_setattr(struct tx *t, const struct row *r, uint64_t version)
{
	sqlite3_stmt *st = stmt(t, S_SETATTR);

	sqlite3_bind_int64(st, 1, r->id);
	sqlite3_bind_int64(st, 2, r->a.mode);
	sqlite3_bind_int64(st, 3, r->a.uid);
	sqlite3_bind_int64(st, 4, r->a.gid);
	sqlite3_bind_int64(st, 5, layer_time_ns(r->a.atime));
	sqlite3_bind_int64(st, 6, layer_time_ns(r->a.mtime));
	sqlite3_bind_int64(st, 7, layer_time_ns(r->a.ctime));
	sqlite3_bind_int64(st, 8, (sqlite3_int64)version);
	return run(t, st);
}

int sq_row_del(struct tx *t, int64_t id)
{
	sqlite3_bind_int64(stmt(t, S_DEL), 1, id);
	return sq_run(t, S_DEL);
}

int sq_touch_dir(struct tx *t, const char *dir, size_t len)
{
	sqlite3_stmt *st = stmt(t, S_TOUCH);
	struct layer_key k;

	if (t->stated || layer_is_root(dir, len) || sq_split(dir, len, &k))
		return 0;
	bind_str(st, 1, k.parent, (int)k.plen);
	bind_str(st, 2, k.name, (int)k.nlen);
	sqlite3_bind_int64(st, 3, layer_time_ns(layer_now()));
	sqlite3_bind_int64(st, 4, ++t->seq);
	return run(t, st);
}

/* Give the row id the key `to`, with a new version. */
int sq_row_move(struct tx *t, int64_t id, const struct layer_key *to,
		uint64_t version)
{
	sqlite3_stmt *st = stmt(t, S_MOVE);

	sqlite3_bind_int64(st, 1, id);
	bind_str(st, 2, to->parent, (int)to->plen);
	bind_str(st, 3, to->name, (int)to->nlen);
	sqlite3_bind_int64(st, 4, (sqlite3_int64)version);
	return run(t, st);
}

/* Re-parent every descendant of the directory `from`, now `to`: its
 * children by equality, deeper ones by the range of parents that start
 * with "from/". */
int sq_move_subtree(struct tx *t, const char *from, size_t fl, const char *to,
		    size_t tl)
{
	sqlite3_stmt *st = stmt(t, S_MOVE_KIDS);
	int flen = (int)fl, tlen = (int)tl;
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
	st = stmt(t, S_MOVE_DESC);
	bind_str(st, 2, to, tlen);
	sqlite3_bind_int(st, 3, flen + 1);
	bind_str(st, 4, lo, flen + 1);
	bind_str(st, 5, lo + flen + 1, flen + 1);
	rc = run(t, st);
	free(lo);
	return rc;
}

/* Call fn for at most limit rows whose parent is dir and whose name sorts
 * after `after` (byte order), in that order, inside the read transaction
 * of the caller: one range of the UNIQUE(parent, name) index, so that a
 * listing can go on from the last name it saw in a later transaction.  A
 * non-zero return of fn stops the walk and is returned. */
int sq_list_rows(struct tx *t, const char *dir, size_t len, const char *after,
		 int limit, bool kinds,
		 int (*fn)(void *ctx, const char *name,
			   const struct dsfs_attr *a),
		 void *ctx)
{
	sqlite3_stmt *st = stmt(t, kinds ? S_LIST_KINDS : S_LIST);
	struct dsfs_attr a;
	int rc;

	bind_str(st, 1, dir, (int)len);
	bind_str(st, 2, after, -1);
	sqlite3_bind_int(st, 3, limit);
	while ((rc = step(t, st)) == 1) {
		if (kinds) {
			memset(&a, 0, sizeof(a));
			a.kind = (enum dsfs_kind)sqlite3_column_int(st, 1);
		} else {
			row_attr(st, 1, &a);
		}
		rc = fn(ctx, (const char *)sqlite3_column_text(st, 0), &a);
		if (rc) {
			sqlite3_reset(st);
			return rc;
		}
	}
	return rc;
}

/* ---- blobs --------------------------------------------------------- */

int sq_blob_get(struct tx *t, const char *token, struct blobinfo *b)
{
	sqlite3_stmt *st = stmt(t, S_BLOB_GET);
	int rc;

	bind_str(st, 1, token, -1);
	rc = step(t, st);
	if (rc == 1) {
		b->rowid = sqlite3_column_int64(st, 0);
		b->refs = sqlite3_column_int64(st, 1);
		b->len = (uint64_t)sqlite3_column_int64(st, 2);
		sqlite3_reset(st);
		/* No image is empty: an empty cell says a file holds it. */
		b->file = b->len == 0;
		return b->file ? sq_bf_size(t->s, token, &b->len) : 0;
	}
	return rc == 0 ? -ENOENT : rc;
}

int sq_blob_add(struct tx *t, const char *token, const void *data, size_t len)
{
	sqlite3_stmt *st = stmt(t, S_BLOB_ADD);

	bind_str(st, 1, token, -1);
	if (!data || !len)
		sqlite3_bind_zeroblob(st, 2, 0);
	else
		sqlite3_bind_blob64(st, 2, data, len, SQLITE_STATIC);
	return run(t, st);
}

/* Add delta to the reference count of token's blob; deleting one that
 * drops to none is the caller's decision (pins: layer_sqlite.c). */
int sq_blob_ref(struct tx *t, const char *token, int delta)
{
	sqlite3_stmt *st = stmt(t, S_BLOB_REF);

	bind_str(st, 1, token, -1);
	sqlite3_bind_int(st, 2, delta);
	return run(t, st);
}

/* Copy a range of one BLOB cell through SQLite's incremental I/O, which
 * reads only the pages the range covers: from the blob table's data if
 * blob, else from the entry table's value. */
int sq_read_cell(struct tx *t, bool blob, int64_t rowid, uint64_t off,
		 void *buf, size_t len, ssize_t *done)
{
	const char *table = blob ? "blob" : "entry";
	const char *column = blob ? "data" : "value";
	sqlite3_blob *b;
	uint64_t size;
	size_t n = len;
	int rc;

	rc = sqlite3_blob_open(t->s->db->db, "main", table, column, rowid, 0,
			       &b);
	if (rc != SQLITE_OK) {
		rc = tx_fail(t, rc);
		sqlite3_blob_close(b);
		return rc;
	}
	size = (uint64_t)sqlite3_blob_bytes(b);
	*done = 0;
	if (off < size) {
		if (n > size - off)
			n = (size_t)(size - off);
		if (n > INT_MAX)
			n = INT_MAX;
		rc = sqlite3_blob_read(b, buf, (int)n, (int)off);
		if (rc != SQLITE_OK)
			rc = tx_fail(t, rc);
		else
			*done = (ssize_t)n;
	}
	sqlite3_blob_close(b);
	return rc;
}

int sq_db_each(struct sq_db *d, const char *sql,
	       int (*fn)(void *ctx, const char *text), void *ctx)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(d->db, sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return rc;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		rc = v ? fn(ctx, v) : 0;
		if (rc)
			break;
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

int sq_db_checkpoint(struct sq_db *d)
{
	int log = 0, done = 0;
	int rc = sqlite3_wal_checkpoint_v2(
		d->db, "main", SQLITE_CHECKPOINT_PASSIVE, &log, &done);

	if (rc == SQLITE_OK && done < log)
		rc = SQLITE_BUSY;
	return rc;
}

int sq_db_sync_log(struct sq_db *d)
{
	sqlite3_file *wal = NULL;
	int rc = sqlite3_file_control(d->db, "main",
				      SQLITE_FCNTL_JOURNAL_POINTER, &wal);

	if (rc == SQLITE_OK && (!wal || !wal->pMethods))
		return sq_db_checkpoint(d); /* no log open: nothing to lose */
	return rc == SQLITE_OK ? wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL) :
				 rc;
}

/* ---- a copy for dsfsctl check ---------------------------------------- */

int sq_backup(struct sq_layer *s, const char *dst, const char **why)
{
	sqlite3 *to = NULL;
	sqlite3_backup *b = NULL;
	int rc;

	rc = sqlite3_open_v2(dst, &to,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
	pthread_mutex_lock(&s->lock);
	if (rc == SQLITE_OK && sq_settle(s) != 0)
		rc = SQLITE_IOERR;
	if (rc == SQLITE_OK) {
		b = sqlite3_backup_init(to, "main", s->db->db, "main");
		rc = b ? SQLITE_OK : sqlite3_errcode(to);
	}
	/* A few pages at a time, letting writers in between: SQLite brings
	 * the copy up to date with what this connection writes meanwhile,
	 * so what it holds at the end is one state of the store. */
	while (rc == SQLITE_OK) {
		/* A copy is of committed states only. */
		rc = sq_settle(s) == 0 ? sqlite3_backup_step(b, 256) :
					 SQLITE_IOERR;
		if (rc == SQLITE_OK) {
			pthread_mutex_unlock(&s->lock);
			pthread_mutex_lock(&s->lock);
		}
	}
	if (b)
		sqlite3_backup_finish(b);
	/* Under the lock: the copy references exactly these files. */
	if (rc == SQLITE_DONE && sq_bf_copy(s, dst) != 0) {
		rc = SQLITE_IOERR;
		*why = "cannot link the image files into the copy";
	}
	pthread_mutex_unlock(&s->lock);
	if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	if (rc != SQLITE_OK && !*why)
		*why = sqlite3_errstr(rc);
	sqlite3_close(to);
	return rc == SQLITE_OK ? 0 : -EIO;
}
