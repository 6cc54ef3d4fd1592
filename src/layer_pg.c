/*
 * layer_pg.c - the runtime layer in a PostgreSQL database: the operations
 * of layer.h, in terms of rows of dsfs_entry and dsfs_blob
 * (layer_pg_rows.c).
 *
 * Each change is one write transaction (layer_pg_conn.c), which begins by
 * locking the usage row, dsfs_state: the budget is checked against the
 * usage every host has committed, and two hosts writing at once cannot
 * both fit under it.  The version counter is in the same row, so versions
 * strictly increase across hosts.  What an operation checks, counts and
 * writes follows layer.h in the same order as the SQLite layer does
 * (layer_sqlite.c), with the rules of layer.c; only the storage differs.
 *
 * Pins are rows of dsfs_pin (layer_pg_store.c), taken and dropped in write
 * transactions, so that a blob is never deleted while any host's reader
 * has it pinned.
 */
#include "layer_pg.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- entries ------------------------------------------------------- */

/* 1 if the directory at key holds anything but whiteouts, else 0. */
static int has_real_kid(struct pg_tx *t, const char *key)
{
	long n = 0;
	int rc = pg_run_on(t, P_REAL_KID, key, strlen(key), &n);

	return rc ? rc : n > 0;
}

/* Bytes given back when the entry a at key goes (layer.h, Budget), with
 * a directory's whiteouts; `keep` names a token that stays referenced. */
static int entry_cost(struct pg_tx *t, const char *key,
		      const struct layer_key *k, const struct dsfs_attr *a,
		      const char *keep, uint64_t *cost)
{
	uint64_t len;
	int64_t kids, refs;
	bool pin;
	int rc;

	*cost = (uint64_t)k->nlen;
	if (a->kind == DSFS_DIR) {
		rc = pg_int_on(t, P_KIDS_COST, key, strlen(key), &kids);
		*cost += rc ? 0 : (uint64_t)kids;
		return rc;
	}
	if (!pg_in_blob(a)) {
		*cost += a->kind == DSFS_FILE ? a->size : 0;
		return 0;
	}
	if (keep && strcmp(keep, a->token) == 0)
		return 0;
	rc = pg_blob_get(t, a->token, &refs, &len);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	rc = pg_pinned(t, a->token, &pin);
	if (rc == 0 && refs <= 1 && !pin)
		*cost += len;
	return rc;
}

/* What goes with the entry a at key: a directory's whiteouts or an
 * image's blob reference. */
static int drop_with(struct pg_tx *t, const char *key,
		     const struct dsfs_attr *a)
{
	if (a->kind == DSFS_DIR)
		return pg_run_on(t, P_DEL_KIDS, key, strlen(key), NULL);
	if (pg_in_blob(a))
		return pg_blob_put(t, a->token);
	return 0;
}

/* Delete the entry a at k (key) with what goes with it. */
static int drop_entry(struct pg_tx *t, const char *key,
		      const struct layer_key *k, const struct dsfs_attr *a)
{
	struct pg_params pp = {0};
	int rc = drop_with(t, key, a);

	if (rc)
		return rc;
	pg_param_key(&pp, k);
	return pg_send(t, P_DEL, &pp);
}

/* A name in the directory dir[0..len) changed (layer.h, Directory
 * times): its mtime and ctime are now, with a new version; nothing for a
 * tree root, or in apply(). */
static int touch_dir(struct pg_tx *t, const char *dir, size_t len)
{
	struct pg_params pp = {0};
	struct layer_key k;

	if (t->stated || layer_is_root(dir, len) ||
	    layer_split_key(dir, len, &k))
		return 0;
	pg_param_key(&pp, &k);
	pg_param_i64(&pp, layer_time_ns(layer_now()));
	pg_param_i64(&pp, ++t->seq);
	return pg_send(t, P_TOUCH, &pp);
}

static bool fits(const struct pg_tx *t, uint64_t add, uint64_t sub)
{
	return layer_fits(t->used < 0 ? 0 : (uint64_t)t->used, t->budget, add,
			  sub);
}

static uint64_t next_version(struct pg_tx *t)
{
	return (uint64_t)++t->seq;
}

/* ---- reads --------------------------------------------------------- */

struct read_args {
	const char *token; /* read_blob: the blob; read: NULL */
	uint64_t off;
	void *buf;
	size_t len;
	ssize_t done;
};

/* Parameters of substr(): 1-based start and length, within int4.  An
 * offset past any bytea (1 GB) reads nothing either way. */
static void param_slice(struct pg_params *pp, uint64_t off, size_t len)
{
	pg_param_i64(pp, off >= INT_MAX - 1 ? INT_MAX - 1 : (int64_t)off + 1);
	pg_param_i64(pp, len > INT_MAX ? INT_MAX : (int64_t)len);
}

/* Copy the bytea in column c of r's first row into the caller's buffer. */
static void take_slice(struct read_args *ra, const PGresult *r, int c)
{
	size_t n = (size_t)libpq.PQgetlength(r, 0, c);

	if (n > ra->len)
		n = ra->len;
	memcpy(ra->buf, libpq.PQgetvalue(r, 0, c), n);
	ra->done = (ssize_t)n;
}

static int read_fn(struct pg_tx *t, void *arg)
{
	struct read_args *ra = arg;
	struct pg_params pp = {0};
	struct layer_key k;
	PGresult *r;
	int rc;

	ra->done = 0;
	if (ra->token) {
		pg_param_str(&pp, ra->token);
		param_slice(&pp, ra->off, ra->len);
		rc = pg_one_row(t, P_READ_BLOB, &pp, &r);
		if (rc == 0) {
			take_slice(ra, r, 0);
			libpq.PQclear(r);
		}
		return rc;
	}
	if (layer_split_key(t->key, strlen(t->key), &k))
		return layer_is_root(t->key, strlen(t->key)) ? -EISDIR :
							       -ENOENT;
	pg_param_key(&pp, &k);
	param_slice(&pp, ra->off, ra->len);
	rc = pg_exec(t, P_READ, &pp, &r);
	if (rc)
		return rc;
	if (libpq.PQntuples(r) != 1 || pg_get_i64(r, 0, 0) == DSFS_WHITEOUT)
		rc = -ENOENT;
	else if (pg_get_i64(r, 0, 0) == DSFS_DIR)
		rc = -EISDIR;
	else if (ra->off < (uint64_t)pg_get_i64(r, 0, 1))
		take_slice(ra, r, 2);
	libpq.PQclear(r);
	return rc;
}

static ssize_t pg_read(struct dsfs_layer *l, const char *key, uint64_t off,
		       void *buf, size_t len)
{
	struct read_args ra = {.off = off, .buf = buf, .len = len};
	struct dsfs_attr a;
	int rc;

	if (pg_defer_find(to_pg(l), key, &a))
		return 0; /* empty until its value is committed */
	rc = pg_tx_run(to_pg(l), PG_ONE, "read", key, read_fn, &ra);

	return rc ? rc : ra.done;
}

static ssize_t pg_read_blob(struct dsfs_layer *l, const char *token,
			    uint64_t off, void *buf, size_t len)
{
	struct read_args ra = {
		.token = token, .off = off, .buf = buf, .len = len};
	int rc = pg_tx_run(to_pg(l), PG_ONE, "read blob", token, read_fn, &ra);

	return rc ? rc : ra.done;
}

/* ---- changes ------------------------------------------------------- */

struct commit_args {
	const struct dsfs_attr *a;
	const void *data;
	size_t len;
	struct dsfs_attr *out;
	bool excl; /* create(): a file at key is -EEXIST */
};

static int commit_fn(struct pg_tx *t, void *arg)
{
	struct commit_args *c = arg;
	struct dsfs_attr na, old, parent;
	struct layer_key k;
	bool found, have_blob = false, same_blob = false;
	uint64_t add, sub = 0, blen = 0;
	int64_t refs;
	int rc;

	rc = pg_target(t, t->key, &k, &old, &found, &parent);
	if (rc)
		return rc;
	if (found && old.kind == DSFS_DIR)
		return -EISDIR;
	if (found && c->excl && old.kind != DSFS_WHITEOUT)
		return -EEXIST;
	layer_file_attr(&na, c->a);
	layer_inherit_group(&na, c->a, &parent);
	add = (uint64_t)k.nlen;
	if (na.token[0]) {
		rc = pg_blob_get(t, na.token, &refs, &blen);
		if (rc && rc != -ENOENT)
			return rc;
		have_blob = rc == 0;
		same_blob = found && pg_in_blob(&old) &&
			    strcmp(old.token, na.token) == 0;
	}
	if (!have_blob)
		add += c->len;
	if (found) {
		rc = entry_cost(t, t->key, &k, &old,
				na.token[0] ? na.token : NULL, &sub);
		if (rc)
			return rc;
	}
	if (!fits(t, add, sub))
		return -ENOSPC;

	rc = 0;
	if (na.token[0] && !have_blob) {
		struct pg_params pp = {0};

		pg_param_str(&pp, na.token);
		pg_param_i64(&pp, (int64_t)c->len);
		pg_param_bytes(&pp, c->data, c->len);
		rc = pg_send(t, P_BLOB_ADD, &pp);
	} else if (na.token[0] && !same_blob) {
		rc = pg_blob_ref(t, na.token, 1);
	}
	if (rc == 0 && found && pg_in_blob(&old) && !same_blob)
		rc = pg_blob_put(t, old.token);
	if (rc)
		return rc;
	na.size = have_blob ? blen : c->len;
	t->seq = (int64_t)layer_version_floor((uint64_t)t->seq, c->a);
	na.version = next_version(t);
	rc = pg_put_row(t, &k, &na, na.token[0] ? NULL : c->data, c->len);
	if (rc == 0 && (!found || old.kind == DSFS_WHITEOUT))
		rc = touch_dir(t, k.parent, k.plen); /* a new name */
	if (rc == 0 && c->out)
		*c->out = na;
	if (rc == 0)
		t->used = (int64_t)((uint64_t)t->used + add - sub);
	return rc;
}

int pg_commit_general(struct pg_layer *p, const char *key,
		      const struct dsfs_attr *a, const void *data, size_t len,
		      bool excl, bool lazy, struct dsfs_attr *out)
{
	struct commit_args c = {a, data, len, out, excl};

	return pg_tx_run(p, lazy ? PG_LAZY : PG_WRITE,
			 excl ? "create" : "commit", key, commit_fn, &c);
}

static int pg_commit(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a, const void *data, size_t len,
		     struct dsfs_attr *out)
{
	int rc = pg_defer_commit(to_pg(l), key, a, data, len, out);

	if (rc == 1)
		rc = pg_fast_commit(to_pg(l), key, a, data, len, false, out);
	if (rc != 1)
		return rc;
	return pg_commit_general(to_pg(l), key, a, data, len, false, false,
				 out);
}

static int pg_fetch_op(struct dsfs_layer *l, const char *key,
		       struct dsfs_attr *a, char **data, size_t *len)
{
	if (pg_defer_find(to_pg(l), key, a))
		return 0; /* no value: read() answers it, empty */
	return pg_fetch(to_pg(l), key, a, data, len);
}

/* Only the one-round-trip form (or a deferred create's): anything else is
 * left to commit(). */
static int pg_replace(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, const void *data, size_t len,
		      struct dsfs_attr *out)
{
	int rc = pg_defer_commit(to_pg(l), key, a, data, len, out);

	if (rc == 1)
		rc = pg_fast_commit(to_pg(l), key, a, data, len, true, out);
	return rc == 1 ? -ENOENT : rc;
}

static int mkdir_fn(struct pg_tx *t, void *arg)
{
	const struct dsfs_attr *a = arg;
	struct dsfs_attr na, old, parent;
	struct layer_key k;
	bool found;
	int rc;

	rc = pg_target(t, t->key, &k, &old, &found, &parent);
	if (rc)
		return rc;
	if (found && old.kind != DSFS_WHITEOUT)
		return -EEXIST;
	/* Over a whiteout the name is counted already. */
	if (!found && !fits(t, (uint64_t)k.nlen, 0))
		return -ENOSPC;
	layer_dir_attr(&na, a);
	layer_inherit_group(&na, a, &parent);
	na.version = next_version(t);
	rc = pg_put_row(t, &k, &na, NULL, 0);
	if (rc == 0)
		rc = touch_dir(t, k.parent, k.plen);
	if (rc == 0 && !found)
		t->used += (int64_t)k.nlen;
	return rc;
}

static int pg_mkdir(struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *a)
{
	int rc = pg_defer_settle(to_pg(l), key);

	if (rc)
		return rc;
	return pg_tx_run(to_pg(l), PG_WRITE, "mkdir", key, mkdir_fn, (void *)a);
}

/* A directory may go only if it holds nothing but whiteouts. */
static int check_empty(struct pg_tx *t, const char *key,
		       const struct dsfs_attr *a)
{
	int rc;

	if (a->kind != DSFS_DIR)
		return 0;
	rc = has_real_kid(t, key);
	return rc < 0 ? rc : rc ? -ENOTEMPTY : 0;
}

/* arg NULL: remove().  Else take_file()'s: files only (else -ENOENT, the
 * transaction rolled back), and what the file was into *arg. */
static int remove_fn(struct pg_tx *t, void *arg)
{
	struct dsfs_attr *taken = arg;
	struct pg_params pp = {0};
	struct layer_key k;
	struct dsfs_attr a;
	uint64_t cost;
	PGresult *r;
	int rc;

	if (layer_split_key(t->key, strlen(t->key), &k))
		return -ENOENT;
	/* The row first, which a plain file needs nothing else for; a
	 * directory that is not empty rolls it all back. */
	pg_param_key(&pp, &k);
	rc = pg_one_row(t, P_TAKE, &pp, &r);
	if (rc)
		return rc;
	pg_row_attr(r, 0, 0, &a);
	libpq.PQclear(r);
	if (taken && a.kind != DSFS_FILE)
		return -ENOENT;
	rc = check_empty(t, t->key, &a);
	if (rc == 0)
		rc = entry_cost(t, t->key, &k, &a, NULL, &cost);
	if (rc == 0)
		rc = drop_with(t, t->key, &a);
	if (rc == 0)
		rc = touch_dir(t, k.parent, k.plen);
	if (rc == 0)
		t->used -= (int64_t)cost;
	if (rc == 0 && taken)
		*taken = a;
	return rc;
}

static int pg_remove(struct dsfs_layer *l, const char *key)
{
	int rc = pg_defer_settle(to_pg(l), key);

	if (rc == 0)
		rc = pg_fast_remove(to_pg(l), key, NULL);
	if (rc != 1)
		return rc;
	return pg_tx_run(to_pg(l), PG_WRITE, "remove", key, remove_fn, NULL);
}

/* The fast form, else (an image, or no plain file) the general one,
 * which removes a file of any value: an image's unlink is one round trip
 * less than a lookup and remove(). */
static int pg_take_file(struct dsfs_layer *l, const char *key,
			struct dsfs_attr *out)
{
	int rc = pg_defer_settle(to_pg(l), key);

	if (rc == 0)
		rc = pg_fast_remove(to_pg(l), key, out);
	if (rc != 1)
		return rc;
	return pg_tx_run(to_pg(l), PG_WRITE, "remove", key, remove_fn, out);
}

/* Write a whiteout at k, with a new version. */
static int put_whiteout(struct pg_tx *t, const struct layer_key *k)
{
	struct dsfs_attr wo;

	layer_whiteout_attr(&wo);
	wo.version = next_version(t);
	return pg_put_row(t, k, &wo, NULL, 0);
}

static int whiteout_fn(struct pg_tx *t, void *arg)
{
	struct layer_key k;
	struct dsfs_attr a;
	uint64_t add, sub = 0;
	bool found;
	int rc;

	(void)arg;
	rc = pg_target(t, t->key, &k, &a, &found, NULL);
	if (rc == 0 && found)
		rc = check_empty(t, t->key, &a);
	if (rc == 0 && found)
		rc = entry_cost(t, t->key, &k, &a, NULL, &sub);
	if (rc)
		return rc;
	add = (uint64_t)k.nlen;
	if (!fits(t, add, sub))
		return -ENOSPC;
	if (found && a.kind == DSFS_DIR)
		rc = pg_run_on(t, P_DEL_KIDS, t->key, strlen(t->key), NULL);
	else if (found && pg_in_blob(&a))
		rc = pg_blob_put(t, a.token);
	if (rc == 0)
		rc = put_whiteout(t, &k);
	if (rc == 0)
		rc = touch_dir(t, k.parent, k.plen);
	if (rc == 0)
		t->used = (int64_t)((uint64_t)t->used + add - sub);
	return rc;
}

static int pg_whiteout(struct dsfs_layer *l, const char *key)
{
	int rc = pg_defer_settle(to_pg(l), key);

	if (rc)
		return rc;
	return pg_tx_run(to_pg(l), PG_WRITE, "whiteout", key, whiteout_fn,
			 NULL);
}

struct setattr_args {
	const struct dsfs_attr *a;
	unsigned mask;
};

static int setattr_fn(struct pg_tx *t, void *arg)
{
	struct setattr_args *sa = arg;
	struct pg_params pp = {0};
	struct layer_key k;
	struct dsfs_attr a;
	int rc;

	if (layer_split_key(t->key, strlen(t->key), &k))
		return -ENOENT;
	rc = pg_get_row(t, &k, &a);
	if (rc)
		return rc;
	if (a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	layer_apply_setattr(&a, sa->a, sa->mask);
	pg_param_key(&pp, &k);
	pg_param_i64(&pp, a.mode);
	pg_param_i64(&pp, a.uid);
	pg_param_i64(&pp, a.gid);
	pg_param_i64(&pp, layer_time_ns(a.atime));
	pg_param_i64(&pp, layer_time_ns(a.mtime));
	pg_param_i64(&pp, layer_time_ns(a.ctime));
	pg_param_i64(&pp, (int64_t)next_version(t));
	return pg_send(t, P_SETATTR, &pp);
}

static int pg_setattr(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, unsigned mask)
{
	struct setattr_args sa = {a, mask};
	int rc = pg_defer_settle(to_pg(l), key);

	if (rc)
		return rc;
	return pg_tx_run(to_pg(l), PG_WRITE, "setattr", key, setattr_fn, &sa);
}

struct rename_args {
	const char *to;
	unsigned flags;
};

/* Move the descendants of the directory `from` under `to`: its children,
 * then the deeper ones (a byte range of parent). */
static int move_subtree(struct pg_tx *t, const char *from, const char *to)
{
	size_t flen = strlen(from), tlen = strlen(to);
	struct pg_params pp = {0};
	char *lo, *hi;
	int rc;

	pg_param_bytes(&pp, from, flen);
	pg_param_bytes(&pp, to, tlen);
	rc = pg_send(t, P_MOVE_KIDS, &pp);
	if (rc)
		return rc;
	lo = malloc(flen + 2);
	hi = malloc(flen + 2);
	if (!lo || !hi) {
		free(lo);
		free(hi);
		return -ENOMEM;
	}
	memcpy(lo, from, flen);
	memcpy(hi, from, flen);
	lo[flen] = '/';
	hi[flen] = '0';
	memset(&pp, 0, sizeof(pp));
	pg_param_bytes(&pp, to, tlen);
	pg_param_i64(&pp, (int64_t)flen + 1); /* substr() keeps "/..." */
	pg_param_bytes(&pp, lo, flen + 1);
	pg_param_bytes(&pp, hi, flen + 1);
	rc = pg_send(t, P_MOVE_DESC, &pp);
	free(lo);
	free(hi);
	return rc;
}

static int rename_fn(struct pg_tx *t, void *arg)
{
	struct rename_args *ra = arg;
	const char *from = t->key;
	struct layer_key fk, tk;
	struct dsfs_attr src, dst;
	struct pg_params pp = {0};
	uint64_t add, sub, cost = 0;
	bool found, same;
	int rc;

	if (layer_split_key(from, strlen(from), &fk))
		return -ENOENT;
	rc = pg_get_row(t, &fk, &src);
	if (rc)
		return rc;
	if (src.kind == DSFS_WHITEOUT)
		return -ENOENT;
	rc = pg_target(t, ra->to, &tk, &dst, &found, NULL);
	if (rc)
		return rc;
	rc = layer_rename_check(from, ra->to, ra->flags, &src,
				found ? &dst : NULL, &same);
	if (rc || same)
		return rc;
	if (found)
		rc = check_empty(t, ra->to, &dst);
	if (rc == 0 && found)
		rc = entry_cost(t, ra->to, &tk, &dst, NULL, &cost);
	if (rc)
		return rc;
	add = (uint64_t)tk.nlen;
	if (ra->flags & DSFS_RENAME_WHITEOUT)
		add += (uint64_t)fk.nlen;
	sub = (uint64_t)fk.nlen + cost;
	if (!fits(t, add, sub))
		return -ENOSPC;
	if (found) {
		rc = drop_entry(t, ra->to, &tk, &dst);
		if (rc)
			return rc;
	}
	pg_param_key(&pp, &fk);
	pg_param_key(&pp, &tk);
	pg_param_i64(&pp, (int64_t)next_version(t));
	rc = pg_send(t, P_MOVE, &pp);
	if (rc == 0 && src.kind == DSFS_DIR)
		rc = move_subtree(t, from, ra->to);
	if (rc == 0 && (ra->flags & DSFS_RENAME_WHITEOUT))
		rc = put_whiteout(t, &fk);
	if (rc == 0)
		rc = touch_dir(t, fk.parent, fk.plen);
	if (rc == 0 &&
	    (fk.plen != tk.plen || memcmp(fk.parent, tk.parent, fk.plen) != 0))
		rc = touch_dir(t, tk.parent, tk.plen);
	if (rc == 0)
		t->used = (int64_t)((uint64_t)t->used + add - sub);
	return rc;
}

static int pg_rename(struct dsfs_layer *l, const char *from, const char *to,
		     unsigned flags)
{
	struct rename_args ra = {to, flags};
	int rc = pg_defer_settle(to_pg(l), from);

	if (rc == 0)
		rc = pg_defer_settle(to_pg(l), to);
	if (rc)
		return rc;
	rc = pg_tx_run(to_pg(l), PG_WRITE, "rename", from, rename_fn, &ra);
	pg_known_forget(to_pg(l), to); /* from is pg_tx_run()'s */
	return rc;
}

/* ---- the whole layer ----------------------------------------------- */

static int usage_fn(struct pg_tx *t, void *arg)
{
	PGresult *r;
	int rc = pg_one_row(t, P_USED, NULL, &r);

	if (rc == 0) {
		t->used = pg_get_i64(r, 0, 0);
		t->budget = pg_budget(t->p, pg_get_i64(r, 0, 1));
		libpq.PQclear(r);
	}
	*(struct pg_tx *)arg = *t;
	return rc;
}

int64_t pg_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void pg_note_usage(struct pg_layer *p, int64_t used, int64_t seq,
		   uint64_t budget)
{
	pthread_mutex_lock(&p->lock);
	if (seq > p->seen_seq)
		p->seen_seq = seq;
	p->seen_used = used < 0 ? 0 : used;
	p->seen_budget = budget;
	p->seen_ms = pg_now_ms();
	pthread_mutex_unlock(&p->lock);
}

/* The usage seen last, if it is recent and far from the budget: a writer
 * asks usage() at every create and write, and the commit checks the
 * budget again in its own transaction anyway (layer.h, room()). */
static bool usage_seen(struct pg_layer *p, uint64_t *used, uint64_t *budget)
{
	bool fresh;

	pthread_mutex_lock(&p->lock);
	fresh = p->seen_ms && pg_now_ms() - p->seen_ms < PG_USAGE_FRESH_MS &&
		layer_fits((uint64_t)p->seen_used, p->seen_budget,
			   p->seen_budget / 8, 0);
	if (fresh) {
		*used = (uint64_t)p->seen_used;
		*budget = p->seen_budget;
	}
	pthread_mutex_unlock(&p->lock);
	return fresh;
}

static int pg_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget)
{
	struct pg_layer *p = to_pg(l);
	struct pg_tx seen = {.budget = p->budget};
	int rc;

	if (!p->snap && usage_seen(p, used, budget))
		return 0;
	rc = pg_tx_run(p, PG_ONE, "usage", NULL, usage_fn, &seen);
	*used = seen.used < 0 ? 0 : (uint64_t)seen.used;
	*budget = seen.budget;
	if (rc == 0 && !p->snap)
		pg_note_usage(p, seen.used, -1, seen.budget);
	return rc;
}

/* Writes nothing but the state row, which is enough for a commit record
 * that waits for the server's disk. */
static int flush_fn(struct pg_tx *t, void *arg)
{
	(void)t;
	(void)arg;
	return 0;
}

/* Every commit is durable when it returns (synchronous_commit is on for
 * every connection), except a create's (PG_LAZY).  If one was made since
 * the last sync(), a synchronous commit after it makes it durable: the
 * server's log is written in order. */
static int pg_sync(struct dsfs_layer *l)
{
	struct pg_layer *p = to_pg(l);
	bool lazy;
	int rc = pg_defer_settle(p, NULL);

	if (rc)
		return rc;
	pthread_mutex_lock(&p->lock);
	lazy = p->unsynced;
	p->unsynced = false;
	pthread_mutex_unlock(&p->lock);
	if (!lazy)
		return 0;
	rc = pg_tx_run(p, PG_WRITE, "sync", NULL, flush_fn, NULL);
	if (rc) {
		pthread_mutex_lock(&p->lock);
		p->unsynced = true; /* the next sync() tries again */
		pthread_mutex_unlock(&p->lock);
	}
	return rc;
}

/* A create need not wait for the server's disk (layer.h, create()): the
 * commit of its value at close, or a sync(), will. */
static int pg_create(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a, struct dsfs_attr *out)
{
	int rc;

	if (a->replaces && pg_defer_note(to_pg(l), key, a, out) == 0)
		return 1; /* waits for its value, or settle() */
	rc = pg_fast_make(to_pg(l), key, a, "", 0, true, out);
	if (rc != 1)
		return rc;
	return pg_commit_general(to_pg(l), key, a, "", 0, true, true, out);
}

/* Make on the server what create() of key left waiting for its value:
 * the daemon settles the name at the close of its file. */
static int pg_settle(struct dsfs_layer *l, const char *key)
{
	return pg_defer_settle_one(to_pg(l), key);
}

/* Every entry goes, and every blob nobody pins; the pinned ones stay,
 * unreferenced, and are all that usage counts afterwards. */
static int clear_fn(struct pg_tx *t, void *arg)
{
	int64_t bytes = 0;
	int rc;

	(void)arg;
	rc = pg_run(t, P_CLEAR_ENTRIES, NULL, NULL);
	if (rc == 0)
		rc = pg_run(t, P_CLEAR_BLOBS, NULL, NULL);
	if (rc == 0)
		rc = pg_run(t, P_BLOB_ZERO, NULL, NULL);
	if (rc == 0)
		rc = pg_int_on(t, P_BLOB_BYTES, NULL, 0, &bytes);
	/* seq stays: versions keep increasing across a reset. */
	if (rc == 0)
		t->used = bytes;
	return rc;
}

static int pg_clear(struct dsfs_layer *l)
{
	int rc = pg_defer_settle(to_pg(l), NULL);

	if (rc)
		return rc;
	rc = pg_tx_run(to_pg(l), PG_WRITE, "clear", NULL, clear_fn, NULL);
	pg_known_forget(to_pg(l), NULL);
	return rc;
}

static void pg_close(struct dsfs_layer *l)
{
	if (pg_defer_settle(to_pg(l), NULL))
		pg_defer_forget(to_pg(l));
	pg_store_close(to_pg(l));
}

static int stat_blob_fn(struct pg_tx *t, void *arg)
{
	int64_t refs;

	return pg_blob_get(t, t->key, &refs, arg);
}

static int pg_stat_blob(struct dsfs_layer *l, const char *token, uint64_t *size)
{
	return pg_tx_run(to_pg(l), PG_ONE, "stat blob", token, stat_blob_fn,
			 size);
}

static int pg_pin_blob(struct dsfs_layer *l, const char *token)
{
	return pg_pin_now(to_pg(l), token);
}

/* A pin is dropped all the same (layer.h): if the database cannot be
 * reached, later. */
static int pg_unpin_blob(struct dsfs_layer *l, const char *token)
{
	int rc = pg_unpin_now(to_pg(l), token);

	if (rc == -EIO)
		pg_owe_unpin(to_pg(l), token);
	else if (rc == 0)
		pg_retry_unpins(to_pg(l));
	return rc;
}

/* A change set: each change with its op's own rules, in one transaction
 * (the admin tool's load, reset and archive restore). */
struct apply_args {
	const struct layer_change *c;
	size_t n;
};

static int apply_fn(struct pg_tx *t, void *arg)
{
	const struct apply_args *aa = arg;
	size_t i;
	int rc = 0;

	t->stated = true; /* the changes state every attribute */
	for (i = 0; i < aa->n && rc == 0; i++) {
		const struct layer_change *c = &aa->c[i];
		struct commit_args ca = {&c->attr, c->data, c->len, NULL,
					 false};

		t->key = c->key;
		if (c->op == LAYER_CH_COMMIT)
			rc = commit_fn(t, &ca);
		else if (c->op == LAYER_CH_MKDIR)
			rc = mkdir_fn(t, (void *)&c->attr);
		else if (c->op == LAYER_CH_REMOVE)
			rc = remove_fn(t, NULL);
		else
			rc = whiteout_fn(t, NULL);
	}
	return rc;
}

static int pg_apply(struct dsfs_layer *l, const struct layer_change *c,
		    size_t n)
{
	struct apply_args aa = {c, n};
	int rc = pg_defer_settle(to_pg(l), NULL);

	if (rc)
		return rc;
	rc = pg_tx_run(to_pg(l), PG_WRITE, "apply", c[0].key, apply_fn, &aa);
	pg_known_forget(to_pg(l), NULL); /* every key of c */
	return rc;
}

static int pg_snapshot(struct dsfs_layer *l, struct dsfs_layer **out)
{
	int rc = pg_defer_settle(to_pg(l), NULL);

	return rc ? rc : pg_snapshot_open(to_pg(l), out);
}

const struct dsfs_layer_ops pg_ops = {
	.version = DSFS_LAYER_OPS_VERSION,
	.lookup = pg_lookup,
	.read = pg_read,
	.read_blob = pg_read_blob,
	.commit = pg_commit,
	.mkdir = pg_mkdir,
	.remove = pg_remove,
	.whiteout = pg_whiteout,
	.setattr = pg_setattr,
	.rename = pg_rename,
	.list = pg_list,
	.usage = pg_usage,
	.sync = pg_sync,
	.clear = pg_clear,
	.close = pg_close,
	.stat_blob = pg_stat_blob,
	.pin_blob = pg_pin_blob,
	.unpin_blob = pg_unpin_blob,
	.apply = pg_apply,
	.create = pg_create,
	.snapshot = pg_snapshot,
	.replace = pg_replace,
	.fetch = pg_fetch_op,
	.take_file = pg_take_file,
	.settle = pg_settle,
	.forget = pg_forget,
};
