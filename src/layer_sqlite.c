/*
 * layer_sqlite.c - the runtime layer (read-write) and the factory image
 * (read-only), each one SQLite file: the operations of layer.h.
 *
 * Each operation is one transaction over rows and blobs
 * (layer_sqlite_tx.c): it checks what layer.h asks against the rows it
 * reads, counts the bytes it adds and frees against the budget, and
 * writes; any failure rolls the whole change back.  The wrappers in
 * layer.c have already refused read-only layers and tree roots, and
 * layer.c's rules (layer_fits, layer_rename_check, ...) decide what every
 * layer decides the same way.  The store file itself (schema, opening,
 * closing, the reserve) is layer_sqlite_store.c.
 *
 * Pins (layer.h) are counted in a small hash table in memory, s->pins: a
 * blob whose refs drop to 0 while it is pinned stays, and is deleted by
 * its last unpin.  One left behind by a process that died pinning it is
 * deleted at the next read-write open (layer_sqlite_store.c).
 */
#include "layer_sqlite.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* One pinned token in s->pins.  The node comes first: layer_sqlite_store.c
 * frees a pin through its node. */
struct pin {
	struct htab_node h; /* keyed by token */
	unsigned long count;
	char token[DSFS_TOKEN_LEN + 1];
};

/* Would a change that adds `add` bytes and frees `sub` fit the budget? */
static bool fits(const struct tx *t, uint64_t add, uint64_t sub)
{
	uint64_t used = t->used < 0 ? 0 : (uint64_t)t->used;

	return layer_fits(used, t->s->budget, add, sub);
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

/* ---- rows and blobs ------------------------------------------------ */

/* 1 if the directory at key holds anything but whiteouts, else 0. */
static int has_real_kid(struct tx *t, const char *key, size_t len)
{
	int64_t one;
	int rc = sq_int_key(t, S_REAL_KID, key, len, &one);

	return rc == 0 ? 1 : rc == -ENOENT ? 0 : rc;
}

static bool in_blob(const struct dsfs_attr *a)
{
	return a->kind == DSFS_FILE && a->token[0];
}

/* Drop one reference to token's blob; one that no entry references and
 * no one has pinned is deleted.  A pinned blob waits for its last unpin. */
static int blob_put(struct tx *t, const char *token)
{
	int rc = sq_blob_ref(t, token, -1);

	if (rc == 0 && !pinned(t->s, token))
		rc = sq_run_key(t, S_BLOB_GC, token, strlen(token));
	return rc ? rc : sq_bf_drop(t, token);
}

/* Bytes given back when the entry r at key goes, with the whiteouts it
 * holds if it is a directory.  `keep` names a token that stays referenced
 * (an image replaced by itself), whose blob is not given back; nor is a
 * pinned blob's, which its last unpin gives back. */
static int entry_cost(struct tx *t, const char *key, size_t len,
		      const struct row *r, const char *keep, uint64_t *cost)
{
	struct layer_key k;
	struct blobinfo b;
	int64_t kids = 0;
	int rc;

	if (sq_split(key, len, &k))
		return -EINVAL;
	*cost = (uint64_t)k.nlen;
	if (r->a.kind == DSFS_DIR) {
		rc = sq_int_key(t, S_KIDS_COST, key, len, &kids);
		*cost += (uint64_t)kids;
		return rc == -ENOENT ? 0 : rc;
	}
	if (!in_blob(&r->a)) {
		*cost += r->a.kind == DSFS_FILE ? r->a.size : 0;
		return 0;
	}
	if (keep && strcmp(keep, r->a.token) == 0)
		return 0;
	rc = sq_blob_get(t, r->a.token, &b);
	if (rc == 0 && b.refs <= 1 && !pinned(t->s, r->a.token))
		*cost += b.len;
	return rc == -ENOENT ? 0 : rc;
}

/* Delete the entry r at key with what it holds: a directory's whiteouts,
 * an image's blob reference. */
static int drop_entry(struct tx *t, const char *key, size_t len,
		      const struct row *r)
{
	int rc = 0;

	if (r->a.kind == DSFS_DIR)
		rc = sq_run_key(t, S_DEL_KIDS, key, len);
	else if (in_blob(&r->a))
		rc = blob_put(t, r->a.token);
	if (rc)
		return rc;
	return sq_row_del(t, r->id);
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
	rc = sq_get_key(&t, key, strlen(key), &r);
	pthread_mutex_unlock(&s->lock);
	if (rc == 0)
		*a = r.a;
	return rc;
}

/* The lookup and an inline value in one statement, so that an open is
 * one read of the store, not a lookup and then a read transaction. */
static int sq_fetch(struct dsfs_layer *l, const char *key, struct dsfs_attr *a,
		    char **data, size_t *len)
{
	struct sq_layer *s = to_sq(l);
	struct tx t = {.s = s, .what = "read", .key = key};
	struct layer_key k;
	struct row r;
	int rc;

	if (sq_split(key, strlen(key), &k))
		return -ENOENT;
	pthread_mutex_lock(&s->lock);
	rc = sq_fetch_row(&t, &k, &r, data, len);
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

static int read_fn(struct tx *t, void *arg)
{
	struct read_args *r = arg;
	struct blobinfo b;
	struct row e;
	int rc;

	r->done = 0;
	if (!r->key) {
		rc = sq_blob_get(t, r->token, &b);
		return rc     ? rc :
		       b.file ? sq_bf_read(t, r->token, r->off, r->buf, r->len,
					   &r->done) :
				sq_read_cell(t, true, b.rowid, r->off, r->buf,
					     r->len, &r->done);
	}
	rc = sq_get_key(t, r->key, strlen(r->key), &e);
	if (rc)
		return rc;
	if (e.a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	if (e.a.kind == DSFS_DIR)
		return -EISDIR;
	if (r->off >= e.a.size)
		return 0;
	if (!in_blob(&e.a))
		return sq_read_cell(t, false, e.id, r->off, r->buf, r->len,
				    &r->done);
	rc = sq_blob_get(t, e.a.token, &b);
	return rc ? rc :
	       b.file ?
		    sq_bf_read(t, e.a.token, r->off, r->buf, r->len, &r->done) :
		    sq_read_cell(t, true, b.rowid, r->off, r->buf, r->len,
				 &r->done);
}

static ssize_t sq_read(struct dsfs_layer *l, const char *key, uint64_t off,
		       void *buf, size_t len)
{
	struct read_args r = {.key = key, .off = off, .buf = buf, .len = len};
	int rc;

	rc = sq_read_tx(to_sq(l), "read", key, read_fn, &r);
	return rc ? rc : r.done;
}

static ssize_t sq_read_blob(struct dsfs_layer *l, const char *token,
			    uint64_t off, void *buf, size_t len)
{
	struct read_args r = {
		.token = token, .off = off, .buf = buf, .len = len};
	int rc;

	rc = sq_read_tx(to_sq(l), "read blob", token, read_fn, &r);
	return rc ? rc : r.done;
}

struct commit_args {
	const char *key;
	const struct dsfs_attr *a;
	const void *data;
	size_t len;
	struct dsfs_attr *out;

	/* Set when a blob file holds data: layer_sqlite_blobfile.c. */
	bool file;
	bool excl; /* create(): a file at key is -EEXIST */
	/* replace(): only over a file, keeping its mode, owner and version
	 * line; 1 (nothing changed) where that is not what happens. */
	bool keep;
};

/* layer_inherit_group() for na, made of a at k, with the parent's row p
 * as sq_target() left it: read here only if it was not there and a asks. */
static int inherit_group(struct tx *t, const struct layer_key *k,
			 const struct dsfs_attr *a, struct dsfs_attr *na,
			 struct row *p)
{
	int rc = 0;

	if (!a->inherit_group)
		return 0;
	if (p->a.kind == DSFS_NONE)
		rc = sq_get_key(t, k->parent, k->plen, p);
	if (rc == 0)
		layer_inherit_group(na, a, &p->a);
	return rc;
}

static int commit_fn(struct tx *t, void *arg)
{
	struct commit_args *c = arg;
	const struct dsfs_attr *a = c->a;
	size_t klen = strlen(c->key);
	struct dsfs_attr na;
	struct blobinfo b;
	struct layer_key k;
	struct row old, parent;
	struct dsfs_attr kept;
	bool found, have_blob = false, same_blob = false;
	uint64_t add, sub = 0;
	int rc;

	rc = sq_target(t, c->key, klen, &k, &old, &found, &parent);
	if (rc)
		return rc;
	if (c->keep && (!found || old.a.kind != DSFS_FILE))
		return 1;
	if (c->keep) {
		kept = *c->a;
		kept.mode = old.a.mode;
		kept.uid = old.a.uid;
		kept.gid = old.a.gid;
		kept.version = old.a.version;
		kept.inherit_group = false;
		a = &kept;
	}
	if (found && old.a.kind == DSFS_DIR)
		return -EISDIR;
	if (found && c->excl && old.a.kind != DSFS_WHITEOUT)
		return -EEXIST;

	layer_file_attr(&na, a);
	rc = inherit_group(t, &k, a, &na, &parent);
	if (rc)
		return rc;
	add = (uint64_t)k.nlen;
	if (na.token[0]) {
		rc = sq_blob_get(t, na.token, &b);
		if (rc && rc != -ENOENT)
			return rc;
		have_blob = rc == 0;
		same_blob = found && in_blob(&old.a) &&
			    strcmp(old.a.token, na.token) == 0;
	}
	if (!have_blob)
		add += c->len;
	if (found) {
		rc = entry_cost(t, c->key, klen, &old,
				na.token[0] ? na.token : NULL, &sub);
		if (rc)
			return rc;
	}
	if (!fits(t, add, sub))
		return c->keep ? 1 : -ENOSPC;
	if (c->file && !have_blob && !sq_bf_ready(t->s, na.token))
		c->file = false; /* its file went: store the bytes here */
	if (c->file && !have_blob)
		add -= c->len; /* already on the disk, in the file */
	rc = add > sub ? sq_disk_room(t, add - sub) : 0;
	if (c->file && !have_blob)
		add += c->len;
	if (rc)
		return rc;

	/* An image replaced by itself keeps its one reference. */
	if (na.token[0] && !have_blob) {
		rc = c->file ? sq_bf_mark(t) : 0;
		if (rc == 0)
			rc = sq_blob_add(t, na.token, c->data,
					 c->file ? 0 : c->len);
	} else if (na.token[0] && !same_blob) {
		rc = sq_blob_ref(t, na.token, 1);
	}
	if (rc == 0 && found && in_blob(&old.a) && !same_blob)
		rc = blob_put(t, old.a.token);
	if (rc)
		return rc;

	na.size = have_blob ? b.len : c->len;
	t->seq = (int64_t)layer_version_floor((uint64_t)t->seq, a);
	na.version = (uint64_t)++t->seq;
	if (found && old.a.kind == na.kind)
		rc = sq_update_row(t, old.id, &na, na.token[0] ? NULL : c->data,
				   c->len, !na.token[0]);
	else
		rc = sq_put_row(t, &k, &na, na.token[0] ? NULL : c->data,
				c->len, !na.token[0]);
	if (rc == 0 && (!found || old.a.kind == DSFS_WHITEOUT))
		rc = sq_touch_dir(t, k.parent, k.plen); /* a new name */
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
	struct dsfs_attr na = *a;
	struct commit_args c = {key, &na, data, len, out, false, false, false};
	int rc = 1;

	na.hash_token = false;
	if (a->hash_token || a->token[0])
		rc = sq_bf_prepare(to_sq(l), na.token, a->hash_token, data,
				   len);
	if (rc < 0)
		return rc;
	c.file = rc == 0;
	rc = sq_write_tx(to_sq(l), "commit", key, commit_fn, &c);
	return sq_bf_done(to_sq(l), c.file, rc);
}

/* The overlay's lookup before a commit, saved where the file stays a
 * file of this layer: the close of every file written through the merged
 * tree.  Images go the long way, where their bytes may go to a file. */
static int sq_replace(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, const void *data, size_t len,
		      struct dsfs_attr *out)
{
	struct dsfs_attr na = *a;
	struct commit_args c = {key, &na, data, len, out, false, false, true};
	int rc;

	if (a->hash_token || a->token[0])
		return -ENOENT;
	rc = sq_write_tx(to_sq(l), "commit", key, commit_fn, &c);
	return rc == 1 ? -ENOENT : rc;
}

/* Takes the key and attributes of struct commit_args. */
static int mkdir_fn(struct tx *t, void *arg)
{
	struct commit_args *m = arg;
	struct row old, parent;
	struct layer_key k;
	bool found;
	struct dsfs_attr na;
	int rc;

	rc = sq_target(t, m->key, strlen(m->key), &k, &old, &found, &parent);
	if (rc)
		return rc;
	if (found && old.a.kind != DSFS_WHITEOUT)
		return -EEXIST;
	/* Over a whiteout the name is already counted. */
	if (!found && !fits(t, (uint64_t)k.nlen, 0))
		return -ENOSPC;

	layer_dir_attr(&na, m->a);
	rc = inherit_group(t, &k, m->a, &na, &parent);
	if (rc)
		return rc;
	na.version = (uint64_t)++t->seq;
	rc = sq_put_row(t, &k, &na, NULL, 0, false);
	if (rc == 0)
		rc = sq_touch_dir(t, k.parent, k.plen);
	if (rc == 0 && !found)
		t->used += (int64_t)k.nlen;
	return rc;
}

static int sq_mkdir(struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *a)
{
	struct commit_args m = {key, a, NULL, 0, NULL, false, false, false};

	return sq_write_tx(to_sq(l), "mkdir", key, mkdir_fn, &m);
}

static int remove_fn(struct tx *t, void *arg)
{
	const char *key = arg;
	size_t klen = strlen(key);
	struct layer_key k;
	struct row r;
	uint64_t cost;
	int rc;

	if (sq_split(key, klen, &k))
		return -ENOENT;
	rc = sq_get_row(t, &k, &r);
	if (rc)
		return rc;
	if (r.a.kind == DSFS_DIR) {
		rc = has_real_kid(t, key, klen);
		if (rc)
			return rc < 0 ? rc : -ENOTEMPTY;
	}
	rc = entry_cost(t, key, klen, &r, NULL, &cost);
	if (rc == 0)
		rc = drop_entry(t, key, klen, &r);
	if (rc == 0)
		rc = sq_touch_dir(t, k.parent, k.plen);
	if (rc == 0)
		t->used -= (int64_t)cost;
	return rc;
}

static int sq_remove(struct dsfs_layer *l, const char *key)
{
	return sq_write_tx(to_sq(l), "remove", key, remove_fn, (void *)key);
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

	rc = sq_target(t, key, klen, &k, &r, &found, NULL);
	if (rc)
		return rc;
	if (found && r.a.kind == DSFS_DIR) {
		rc = has_real_kid(t, key, klen);
		if (rc)
			return rc < 0 ? rc : -ENOTEMPTY;
	}
	add = (uint64_t)k.nlen;
	if (found) {
		rc = entry_cost(t, key, klen, &r, NULL, &sub);
		if (rc)
			return rc;
	}
	if (!fits(t, add, sub))
		return -ENOSPC;
	if (found && r.a.kind == DSFS_DIR)
		rc = sq_run_key(t, S_DEL_KIDS, key, klen);
	else if (found && in_blob(&r.a))
		rc = blob_put(t, r.a.token);
	if (rc)
		return rc;
	whiteout_attr(t, &na);
	rc = sq_put_row(t, &k, &na, NULL, 0, false);
	if (rc == 0)
		rc = sq_touch_dir(t, k.parent, k.plen);
	if (rc == 0)
		t->used = (int64_t)((uint64_t)t->used + add - sub);
	return rc;
}

static int sq_whiteout(struct dsfs_layer *l, const char *key)
{
	return sq_write_tx(to_sq(l), "whiteout", key, whiteout_fn, (void *)key);
}

struct setattr_args {
	const char *key;
	const struct dsfs_attr *a;
	unsigned mask;
};

static int setattr_fn(struct tx *t, void *arg)
{
	struct setattr_args *sa = arg;
	struct row r;
	int rc;

	rc = sq_get_key(t, sa->key, strlen(sa->key), &r);
	if (rc)
		return rc;
	if (r.a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	layer_apply_setattr(&r.a, sa->a, sa->mask);
	return sq_row_setattr(t, &r, (uint64_t)++t->seq);
}

static int sq_setattr(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, unsigned mask)
{
	struct setattr_args sa = {key, a, mask};

	return sq_write_tx(to_sq(l), "setattr", key, setattr_fn, &sa);
}

struct rename_args {
	const char *from;
	const char *to;
	unsigned flags;
};

static int rename_fn(struct tx *t, void *arg)
{
	struct rename_args *ra = arg;
	size_t flen = strlen(ra->from), tlen = strlen(ra->to);
	struct layer_key fk, tk;
	struct row src, dst;
	struct dsfs_attr wo;
	uint64_t add, sub, cost = 0;
	bool found, same;
	int rc;

	if (sq_split(ra->from, flen, &fk))
		return -ENOENT;
	rc = sq_get_row(t, &fk, &src);
	if (rc)
		return rc;
	if (src.a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	rc = sq_target(t, ra->to, tlen, &tk, &dst, &found, NULL);
	if (rc)
		return rc;
	rc = layer_rename_check(ra->from, ra->to, ra->flags, &src.a,
				found ? &dst.a : NULL, &same);
	if (rc || same)
		return rc;
	if (found && dst.a.kind == DSFS_DIR) {
		rc = has_real_kid(t, ra->to, tlen);
		if (rc)
			return rc < 0 ? rc : -ENOTEMPTY;
	}

	add = (uint64_t)tk.nlen;
	if (ra->flags & DSFS_RENAME_WHITEOUT)
		add += (uint64_t)fk.nlen;
	if (found) {
		rc = entry_cost(t, ra->to, tlen, &dst, NULL, &cost);
		if (rc)
			return rc;
	}
	sub = (uint64_t)fk.nlen + cost;
	if (!fits(t, add, sub))
		return -ENOSPC;

	if (found) {
		rc = drop_entry(t, ra->to, tlen, &dst);
		if (rc)
			return rc;
	}
	rc = sq_row_move(t, src.id, &tk, (uint64_t)++t->seq);
	if (rc == 0 && src.a.kind == DSFS_DIR)
		rc = sq_move_subtree(t, ra->from, flen, ra->to, tlen);
	if (rc == 0 && (ra->flags & DSFS_RENAME_WHITEOUT)) {
		whiteout_attr(t, &wo);
		rc = sq_put_row(t, &fk, &wo, NULL, 0, false);
	}
	if (rc == 0)
		rc = sq_touch_dir(t, fk.parent, fk.plen);
	if (rc == 0 &&
	    (fk.plen != tk.plen || memcmp(fk.parent, tk.parent, fk.plen) != 0))
		rc = sq_touch_dir(t, tk.parent, tk.plen);
	if (rc == 0)
		t->used = (int64_t)((uint64_t)t->used + add - sub);
	return rc;
}

static int sq_rename(struct dsfs_layer *l, const char *from, const char *to,
		     unsigned flags)
{
	struct rename_args ra = {from, to, flags};

	return sq_write_tx(to_sq(l), "rename", from, rename_fn, &ra);
}

static int sq_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget)
{
	struct sq_layer *s = to_sq(l);
	struct tx t = {.s = s, .what = "usage"};
	uint64_t room;
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sq_meta_load(&t);
	room = sq_disk_fits(s);
	pthread_mutex_unlock(&s->lock);
	*used = t.used < 0 ? 0 : (uint64_t)t.used;
	/* A disk smaller than the budget: what is used and what still fits
	 * on it (layer_sqlite_disk.c). */
	*budget = room < s->budget && *used + room < s->budget ? *used + room :
								 s->budget;
	return rc;
}

static int sq_room(struct dsfs_layer *l, uint64_t bytes)
{
	struct sq_layer *s = to_sq(l);
	int rc;

	pthread_mutex_lock(&s->lock);
	rc = sq_disk_room_for(s, bytes);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

static int bump_fn(struct tx *t, void *arg)
{
	(void)arg;
	t->seq++;
	return 0;
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
	rc = sq_settle(s); /* no PRAGMA synchronous inside a transaction */
	if (rc == 0)
		rc = sq_set_synchronous(&t, "FULL");
	if (rc == 0)
		rc = sq_write_locked(&t, bump_fn, NULL);
	rc2 = sq_set_synchronous(&t, "NORMAL");
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
	int64_t bytes = 0;
	int rc;

	(void)arg;
	rc = sq_run(t, S_CLEAR_ENTRIES);
	for (p = htab_next(&s->pins, NULL); rc == 0 && p;
	     p = htab_next(&s->pins, p))
		rc = sq_run_key(t, S_BLOB_MARK, ((struct pin *)p)->token,
				strlen(((struct pin *)p)->token));
	if (rc == 0)
		rc = sq_run(t, S_CLEAR_BLOBS);
	if (rc == 0 && s->pins.n)
		rc = sq_run(t, S_BLOB_UNMARK);
	if (rc == 0 && s->pins.n) {
		rc = sq_int_key(t, S_BLOB_BYTES, NULL, 0, &bytes);
		if (rc == -ENOENT)
			rc = 0;
	}
	if (rc == 0)
		rc = sq_bf_clear(t, &bytes);
	/* seq stays: versions must keep increasing across a reset. */
	if (rc == 0)
		t->used = bytes;
	return rc;
}

static int sq_clear(struct dsfs_layer *l)
{
	return sq_write_tx(to_sq(l), "clear", NULL, clear_fn, NULL);
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
	rc = sq_blob_get(&t, token, &b);
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

	rc = sq_blob_get(t, token, &b);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	if (b.refs > 0)
		return 0;
	rc = sq_run_key(t, S_BLOB_GC, token, strlen(token));
	if (rc == 0)
		rc = sq_bf_drop(t, token);
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
		rc = sq_blob_get(&t, token, &b);
		if (rc == 0 && b.refs <= 0)
			rc = sq_write_locked(&t, unpin_fn, (void *)token);
		else if (rc == -ENOENT)
			rc = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return rc;
}

struct apply_args {
	const struct layer_change *c;
	size_t n;
};

static int apply_fn(struct tx *t, void *arg)
{
	const struct apply_args *aa = arg;
	size_t i;
	int rc = 0;

	for (i = 0; i < aa->n && rc == 0; i++) {
		const struct layer_change *c = &aa->c[i];
		struct commit_args ca = {c->key, &c->attr, c->data, c->len,
					 NULL,	 false,	   false,   false};

		t->key = c->key;  /* for the messages */
		t->stated = true; /* the change states every attribute */
		if (c->op == LAYER_CH_COMMIT)
			rc = commit_fn(t, &ca);
		else if (c->op == LAYER_CH_MKDIR)
			rc = mkdir_fn(t, &ca);
		else if (c->op == LAYER_CH_REMOVE)
			rc = remove_fn(t, (void *)c->key);
		else
			rc = whiteout_fn(t, (void *)c->key);
	}
	return rc;
}

static int sq_apply(struct dsfs_layer *l, const struct layer_change *c,
		    size_t n)
{
	struct apply_args aa = {c, n};

	return sq_write_tx(to_sq(l), "apply", c[0].key, apply_fn, &aa);
}

/* With synchronous=NORMAL in WAL mode no commit waits for the disk (sync()
 * does): a create is the commit of an empty value where no file is, left
 * for the next change to commit (carried: layer_sqlite_tx.c). */
static int sq_create(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a, struct dsfs_attr *out)
{
	struct commit_args c = {key, a, "", 0, out, false, true, false};

	return sq_carry_tx(to_sq(l), "create", key, commit_fn, &c);
}

/* Every carried create is committed, key's with the others; its name was
 * visible to the store's users (this process) all along. */
static int sq_settle_op(struct dsfs_layer *l, const char *key)
{
	struct sq_layer *s = to_sq(l);
	int rc;

	(void)key;
	pthread_mutex_lock(&s->lock);
	rc = sq_settle(s);
	pthread_mutex_unlock(&s->lock);
	return rc;
}

const struct dsfs_layer_ops sq_ops = {
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
	.list_kinds = sq_list_kinds,
	.fetch = sq_fetch,
	.usage = sq_usage,
	.room = sq_room,
	.sync = sq_sync,
	.clear = sq_clear,
	.close = sq_close,
	.stat_blob = sq_stat_blob,
	.pin_blob = sq_pin_blob,
	.unpin_blob = sq_unpin_blob,
	.apply = sq_apply,
	.create = sq_create,
	.settle = sq_settle_op,
	.replace = sq_replace,
};
