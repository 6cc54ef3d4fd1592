/*
 * layer_mem.c - the ephemeral layer (and runtime=memory): every entry in
 * memory, lost at unmount or crash.  The operations of layer.h, each
 * under the layer's one mutex, made of the pieces of layer_mem_tree.c
 * (layer_mem.h says how entries and blobs are kept).
 *
 * Budget accounting follows layer.h: name bytes plus value bytes, a blob
 * counted once.  Every change is checked against the budget and has
 * allocated all it needs before it touches anything, so a failure leaves
 * the layer as it was.  The rules every layer shares (tree roots, budget,
 * attributes, rename's checks) are layer.c's; this file only stores.
 * list() copies the children out and calls the callback unlocked, so a
 * callback may call back into the layer.
 */
#include "layer_mem.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- operations ---------------------------------------------------- */

static int mem_lookup(struct dsfs_layer *l, const char *key,
		      struct dsfs_attr *a)
{
	struct mem_layer *m = to_mem(l);
	struct mem_entry *e;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	e = mem_find(m, key);
	if (e)
		*a = e->a;
	else
		rc = -ENOENT;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static ssize_t copy_out(const unsigned char *src, uint64_t size, uint64_t off,
			void *buf, size_t len)
{
	if (off >= size)
		return 0;
	if (len > size - off)
		len = (size_t)(size - off);
	if (len > SSIZE_MAX)
		len = SSIZE_MAX;
	memcpy(buf, src + off, len);
	return (ssize_t)len;
}

static ssize_t mem_read(struct dsfs_layer *l, const char *key, uint64_t off,
			void *buf, size_t len)
{
	struct mem_layer *m = to_mem(l);
	struct mem_entry *e;
	ssize_t rc;

	pthread_mutex_lock(&m->lock);
	e = mem_find(m, key);
	if (!e || e->a.kind == DSFS_WHITEOUT)
		rc = -ENOENT;
	else if (e->a.kind == DSFS_DIR)
		rc = -EISDIR;
	else if (e->blob)
		rc = copy_out(e->blob->data, e->blob->len, off, buf, len);
	else
		rc = copy_out(e->value, e->a.size, off, buf, len);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static ssize_t mem_read_blob(struct dsfs_layer *l, const char *token,
			     uint64_t off, void *buf, size_t len)
{
	struct mem_layer *m = to_mem(l);
	struct mem_blob *b;
	ssize_t rc;

	pthread_mutex_lock(&m->lock);
	b = mem_find_blob(m, token);
	rc = b ? copy_out(b->data, b->len, off, buf, len) : -ENOENT;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* The changes below take the time of the change for directory times
 * (layer.h), or NULL for none (apply()). */
static int commit_locked(struct mem_layer *m, const char *key,
			 const struct dsfs_attr *a, const void *data,
			 size_t len, struct dsfs_attr *out,
			 const struct timespec *now)
{
	struct mem_entry *e, *dir, *fresh = NULL;
	struct mem_blob *b = NULL, *nb = NULL;
	unsigned char *copy = NULL;
	uint64_t add, sub = 0;
	bool named;
	int rc;

	rc = mem_find_parent(m, key, &dir);
	if (rc)
		return rc;
	e = mem_find(m, key);
	if (e && e->a.kind == DSFS_DIR)
		return -EISDIR;

	add = strlen(mem_base_name(key));
	if (a->token[0]) {
		b = mem_find_blob(m, a->token);
		if (!b)
			add += len;
	} else {
		add += len;
	}
	if (e) {
		sub = strlen(e->name);
		/* Replacing an image by the same image frees no blob. */
		if (!(b && e->blob == b))
			sub += mem_value_cost(e);
	}
	if (!mem_fits(m, add, sub))
		return -ENOSPC;

	/* Allocate everything before changing anything. */
	rc = -ENOMEM;
	if (!e) {
		fresh = mem_entry_new(key);
		if (!fresh)
			goto out_free;
	}
	if (a->token[0] && !b) {
		nb = calloc(1, sizeof(*nb));
		if (!nb)
			goto out_free;
		nb->data = malloc(len ? len : 1);
		if (!nb->data)
			goto out_free;
		if (len)
			memcpy(nb->data, data, len);
		nb->len = len;
		layer_copy_str(nb->token, sizeof(nb->token), a->token);
	} else if (!a->token[0]) {
		copy = malloc(len ? len : 1);
		if (!copy)
			goto out_free;
		if (len)
			memcpy(copy, data, len);
	}

	/* Take the new reference before dropping the old one, so that an
	 * image replaced by itself keeps its blob. */
	if (nb) {
		htab_add(&m->blobs, &nb->h, nb->token, strlen(nb->token));
		b = nb;
	}
	if (b)
		b->refs++;
	named = fresh || e->a.kind == DSFS_WHITEOUT;
	if (fresh) {
		fresh->a.kind = DSFS_FILE;
		mem_attach(m, dir, fresh);
		e = fresh;
	} else {
		mem_drop_value(m, e);
		if (e->a.kind == DSFS_WHITEOUT)
			dir->nreal++;
	}
	e->value = copy;
	e->blob = b;
	layer_file_attr(&e->a, a);
	layer_inherit_group(&e->a, a, &dir->a);
	e->a.size = b ? b->len : len;
	m->seq = layer_version_floor(m->seq, a);
	e->a.version = ++m->seq;
	m->used = m->used + add - sub;
	if (out)
		*out = e->a;
	if (now && named)
		mem_touch_dir(m, dir, *now); /* a new name */
	return 0;

out_free:
	free(copy);
	if (nb)
		free(nb->data);
	free(nb);
	if (fresh)
		free(fresh->key);
	free(fresh);
	return rc;
}

static int mem_commit(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, const void *data, size_t len,
		      struct dsfs_attr *out)
{
	struct timespec now = layer_now();
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = commit_locked(m, key, a, data, len, out, &now);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mkdir_locked(struct mem_layer *m, const char *key,
			const struct dsfs_attr *a, const struct timespec *now)
{
	struct mem_entry *e, *dir;
	int rc;

	rc = mem_find_parent(m, key, &dir);
	if (rc)
		return rc;
	e = mem_find(m, key);
	if (e && e->a.kind != DSFS_WHITEOUT)
		return -EEXIST;
	if (!e) {
		if (!mem_fits(m, strlen(mem_base_name(key)), 0))
			return -ENOSPC;
		e = mem_entry_new(key);
		if (!e)
			return -ENOMEM;
		e->a.kind = DSFS_DIR;
		mem_attach(m, dir, e);
		m->used += strlen(e->name);
	} else {
		dir->nreal++;
	}
	layer_dir_attr(&e->a, a);
	layer_inherit_group(&e->a, a, &dir->a);
	e->a.version = ++m->seq;
	if (now)
		mem_touch_dir(m, dir, *now);
	return 0;
}

static int mem_mkdir(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a)
{
	struct timespec now = layer_now();
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = mkdir_locked(m, key, a, &now);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int remove_locked(struct mem_layer *m, const char *key,
			 const struct timespec *now)
{
	struct mem_entry *e, *dir;

	e = mem_find(m, key);
	if (!e)
		return -ENOENT;
	if (e->a.kind == DSFS_DIR && e->nreal)
		return -ENOTEMPTY;
	m->used -= mem_entry_cost(e);
	dir = e->parent;
	mem_drop_whiteouts(m, e);
	mem_entry_destroy(m, e);
	if (now)
		mem_touch_dir(m, dir, *now);
	return 0;
}

/* Run fn(m, key) under the lock. */
static int key_locked(struct dsfs_layer *l, const char *key,
		      int (*fn)(struct mem_layer *m, const char *key,
				const struct timespec *now))
{
	struct timespec now = layer_now();
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = fn(m, key, &now);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mem_remove(struct dsfs_layer *l, const char *key)
{
	return key_locked(l, key, remove_locked);
}

static int whiteout_locked(struct mem_layer *m, const char *key,
			   const struct timespec *now)
{
	struct mem_entry *e, *dir;
	uint64_t add = strlen(mem_base_name(key)), sub = 0;
	int rc;

	rc = mem_find_parent(m, key, &dir);
	if (rc)
		return rc;
	e = mem_find(m, key);
	if (e && e->a.kind == DSFS_DIR && e->nreal)
		return -ENOTEMPTY;
	if (e)
		sub = mem_entry_cost(e);
	if (!mem_fits(m, add, sub))
		return -ENOSPC;
	if (!e) {
		e = mem_entry_new(key);
		if (!e)
			return -ENOMEM;
		e->a.kind = DSFS_WHITEOUT;
		mem_attach(m, dir, e);
	} else {
		mem_drop_whiteouts(m, e);
		mem_drop_value(m, e);
	}
	mem_set_whiteout(m, e);
	m->used = m->used + add - sub;
	if (now)
		mem_touch_dir(m, dir, *now);
	return 0;
}

static int mem_whiteout(struct dsfs_layer *l, const char *key)
{
	return key_locked(l, key, whiteout_locked);
}

static int mem_setattr(struct dsfs_layer *l, const char *key,
		       const struct dsfs_attr *a, unsigned mask)
{
	struct mem_layer *m = to_mem(l);
	struct mem_entry *e;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	e = mem_find(m, key);
	if (!e || e->a.kind == DSFS_WHITEOUT) {
		rc = -ENOENT;
		goto out_unlock;
	}
	layer_apply_setattr(&e->a, a, mask);
	e->a.version = ++m->seq;
out_unlock:
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int rename_locked(struct mem_layer *m, const char *from, const char *to,
			 unsigned flags, const struct timespec *now)
{
	struct mem_entry *src, *dst, *tdir, *fdir, *wo = NULL, *d;
	char **keys = NULL, *newkey = NULL;
	size_t nkeys = 0, i;
	uint64_t add, sub;
	bool same;
	int rc;

	src = mem_find(m, from);
	if (!src || src->a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	rc = mem_find_parent(m, to, &tdir);
	if (rc)
		return rc;
	dst = mem_find(m, to);
	rc = layer_rename_check(from, to, flags, &src->a, dst ? &dst->a : NULL,
				&same);
	if (rc || same)
		return rc;
	if (dst && dst->a.kind == DSFS_DIR && dst->nreal)
		return -ENOTEMPTY;

	add = strlen(mem_base_name(to));
	sub = strlen(src->name) + (dst ? mem_entry_cost(dst) : 0);
	if (flags & DSFS_RENAME_WHITEOUT)
		add += strlen(src->name);
	if (!mem_fits(m, add, sub))
		return -ENOSPC;

	/* Allocate everything before changing anything. */
	rc = -ENOMEM;
	newkey = strdup(to);
	if (!newkey)
		goto out_free;
	if (src->a.kind == DSFS_DIR) {
		keys = mem_subtree_keys(src, to, &nkeys);
		if (!keys)
			goto out_free;
	}
	if (flags & DSFS_RENAME_WHITEOUT) {
		wo = mem_entry_new(from);
		if (!wo)
			goto out_free;
		wo->a.kind = DSFS_WHITEOUT;
	}

	if (dst) {
		mem_drop_whiteouts(m, dst);
		mem_entry_destroy(m, dst);
	}
	fdir = src->parent;
	mem_unlink_child(src);
	mem_rekey(m, src, newkey);
	mem_link_child(tdir, src);
	src->a.version = ++m->seq;
	/* The walk reads only links, which mem_rekey() leaves alone. */
	for (d = mem_next_in(src, src), i = 0; d && i < nkeys;
	     d = mem_next_in(d, src), i++)
		mem_rekey(m, d, keys[i]);
	free(keys);
	if (wo) {
		mem_attach(m, fdir, wo);
		mem_set_whiteout(m, wo);
	}
	m->used = m->used + add - sub;
	if (now) {
		mem_touch_dir(m, fdir, *now);
		if (tdir != fdir)
			mem_touch_dir(m, tdir, *now);
	}
	return 0;

out_free:
	if (keys) {
		for (i = 0; i < nkeys; i++)
			free(keys[i]);
		free(keys);
	}
	free(newkey);
	if (wo)
		free(wo->key);
	free(wo);
	return rc;
}

static int mem_rename(struct dsfs_layer *l, const char *from, const char *to,
		      unsigned flags)
{
	struct timespec now = layer_now();
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = rename_locked(m, from, to, flags, &now);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

struct child {
	const char *name; /* inside the listing's name pool */
	struct dsfs_attr a;
};

/* Copy dir's children out under the lock: name pool and attributes in one
 * allocation owned by the caller. */
static int snapshot_kids(struct mem_layer *m, const char *dir,
			 struct child **out, size_t *count)
{
	struct mem_entry *e, *k;
	struct child *c;
	size_t n = 0, names = 0;
	char *pool;

	e = mem_find(m, dir);
	if (!e || e->a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	if (e->a.kind != DSFS_DIR)
		return -ENOTDIR;
	for (k = e->kids; k; k = k->next) {
		n++;
		names += strlen(k->name) + 1;
	}
	c = malloc(n * sizeof(*c) + names + 1);
	if (!c)
		return -ENOMEM;
	pool = (char *)(c + n);
	n = 0;
	for (k = e->kids; k; k = k->next, n++) {
		size_t len = strlen(k->name) + 1;

		memcpy(pool, k->name, len);
		c[n].name = pool;
		c[n].a = k->a;
		pool += len;
	}
	*out = c;
	*count = n;
	return 0;
}

static int mem_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		    void *ctx)
{
	struct mem_layer *m = to_mem(l);
	struct child *c;
	size_t n, i;
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = snapshot_kids(m, dir, &c, &n);
	pthread_mutex_unlock(&m->lock);
	if (rc)
		return rc;
	for (i = 0; i < n && rc == 0; i++)
		rc = cb(ctx, c[i].name, &c[i].a);
	free(c);
	return rc;
}

static int mem_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget)
{
	struct mem_layer *m = to_mem(l);

	pthread_mutex_lock(&m->lock);
	*used = m->used;
	*budget = m->budget;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* Nothing here survives a power loss by design; there is nothing to do. */
static int mem_sync(struct dsfs_layer *l)
{
	(void)l;
	return 0;
}

static int mem_clear(struct dsfs_layer *l)
{
	struct mem_layer *m = to_mem(l);

	pthread_mutex_lock(&m->lock);
	mem_clear_locked(m, false);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

/* Find token's blob and report its size, or count a pin of it: the pin
 * count lives in the blob itself, as a blob is in m->blobs exactly while
 * it is referenced or pinned. */
static int find_blob_locked(struct dsfs_layer *l, const char *token, bool pin,
			    uint64_t *size)
{
	struct mem_layer *m = to_mem(l);
	struct mem_blob *b;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	b = mem_find_blob(m, token);
	if (!b)
		rc = -ENOENT;
	else if (pin)
		b->pins++;
	else
		*size = b->len;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mem_stat_blob(struct dsfs_layer *l, const char *token,
			 uint64_t *size)
{
	return find_blob_locked(l, token, false, size);
}

static int mem_pin_blob(struct dsfs_layer *l, const char *token)
{
	return find_blob_locked(l, token, true, NULL);
}

static int mem_unpin_blob(struct dsfs_layer *l, const char *token)
{
	struct mem_layer *m = to_mem(l);
	struct mem_blob *b;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	b = mem_find_blob(m, token);
	if (!b || !b->pins) {
		rc = -ENOENT;
	} else if (!--b->pins && !b->refs) {
		m->used -= b->len;
		mem_blob_free(m, b);
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static void mem_close(struct dsfs_layer *l)
{
	struct mem_layer *m = to_mem(l);

	mem_clear_locked(m, true);
	htab_free(&m->entries);
	htab_free(&m->blobs);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

static const struct dsfs_layer_ops mem_ops;

/* A copy of the whole layer, made under the lock: writers wait for the
 * copy (memory speed), never for what reads the snapshot. */
static int mem_snapshot(struct dsfs_layer *l, struct dsfs_layer **out)
{
	struct mem_layer *m = to_mem(l), *s;
	int rc;

	s = malloc(sizeof(*s));
	if (!s)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	rc = mem_clone(m, s);
	pthread_mutex_unlock(&m->lock);
	if (rc == 0 && pthread_mutex_init(&s->lock, NULL) != 0) {
		mem_free_tree(s);
		rc = -ENOMEM;
	}
	if (rc) {
		free(s);
		return rc;
	}
	s->base.ops = &mem_ops;
	s->base.name = l->name;
	s->base.readonly = true;
	*out = &s->base;
	return 0;
}

/* Nothing here is durable: a create is a commit of an empty value where
 * no file is. */
static int mem_create(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, struct dsfs_attr *out)
{
	struct timespec now = layer_now();
	struct mem_layer *m = to_mem(l);
	struct mem_entry *e;
	int rc;

	pthread_mutex_lock(&m->lock);
	e = mem_find(m, key);
	if (e && e->a.kind == DSFS_FILE)
		rc = -EEXIST;
	else
		rc = commit_locked(m, key, a, "", 0, out, &now);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

/* One change of a change set, with its op's rules and no directory
 * times (layer.h). */
static int apply_one(struct mem_layer *m, const struct layer_change *c)
{
	switch (c->op) {
	case LAYER_CH_COMMIT:
		return commit_locked(m, c->key, &c->attr, c->data, c->len, NULL,
				     NULL);
	case LAYER_CH_MKDIR:
		return mkdir_locked(m, c->key, &c->attr, NULL);
	case LAYER_CH_REMOVE:
		return remove_locked(m, c->key, NULL);
	case LAYER_CH_WHITEOUT:
		return whiteout_locked(m, c->key, NULL);
	}
	return -EINVAL;
}

/* All or nothing: the changes are made to a copy of the layer, which
 * becomes the layer if every one of them succeeded.  A copy costs the
 * layer's size, once per change set (an admin tool's load or reset, not
 * a path that runs per file), and keeps each op free of undo records. */
static int mem_apply(struct dsfs_layer *l, const struct layer_change *c,
		     size_t n)
{
	struct mem_layer *m = to_mem(l), copy;
	size_t i;
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = mem_clone(m, &copy);
	if (rc == 0) {
		for (i = 0; i < n && rc == 0; i++)
			rc = apply_one(&copy, &c[i]);
		if (rc == 0)
			mem_swap_tree(m, &copy);
		mem_free_tree(&copy); /* the copy, or the old content */
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static const struct dsfs_layer_ops mem_ops = {
	.version = DSFS_LAYER_OPS_VERSION,
	.lookup = mem_lookup,
	.read = mem_read,
	.read_blob = mem_read_blob,
	.commit = mem_commit,
	.mkdir = mem_mkdir,
	.remove = mem_remove,
	.whiteout = mem_whiteout,
	.setattr = mem_setattr,
	.rename = mem_rename,
	.list = mem_list,
	.usage = mem_usage,
	.sync = mem_sync,
	.clear = mem_clear,
	.close = mem_close,
	.stat_blob = mem_stat_blob,
	.pin_blob = mem_pin_blob,
	.unpin_blob = mem_unpin_blob,
	.apply = mem_apply,
	.create = mem_create,
	.snapshot = mem_snapshot,
};

int layer_mem_open(uint64_t budget, struct dsfs_layer **out)
{
	struct mem_layer *m;
	struct mem_entry *e;
	const char *root;
	uint64_t seed;
	size_t i;
	int rc = -ENOMEM;

	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	/* A weak seed is still a seed: ignore a getrandom() failure. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint64_t)(uintptr_t)m;
	if (htab_init(&m->entries, seed))
		goto out_free;
	if (htab_init(&m->blobs, seed))
		goto out_free_entries;
	for (i = 0; (root = layer_tree_root(i)); i++) {
		e = mem_entry_new(root);
		if (!e)
			goto out_free_roots;
		e->root = true;
		layer_root_attr(&e->a);
		htab_add(&m->entries, &e->h, e->key, strlen(e->key));
	}
	rc = pthread_mutex_init(&m->lock, NULL);
	if (rc) {
		rc = -rc;
		goto out_free_roots;
	}
	m->budget = budget;
	m->base.ops = &mem_ops;
	m->base.name = "ephemeral";
	m->base.readonly = false;
	*out = &m->base;
	return 0;

out_free_roots:
	mem_clear_locked(m, true);
	htab_free(&m->blobs);
out_free_entries:
	htab_free(&m->entries);
out_free:
	free(m);
	return rc;
}
