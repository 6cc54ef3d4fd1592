/*
 * layer_mem.c - the ephemeral layer: every entry in memory, lost at
 * unmount or crash.
 *
 * Every entry, the two tree roots included, is a struct mem_entry in one
 * hash table (htab.h) keyed by its full key ("kv/app/x"), so lookup, commit and
 * removal cost the length of the key, not the size of the store.  Each
 * directory also links its children in a list, so that listing costs
 * O(children) and renaming a directory re-keys only its subtree.  A
 * directory counts its children that are not whiteouts (nreal), which
 * answers "does it hold only whiteouts?" in O(1).
 *
 * Image values (a non-empty token) live in a second hash table of
 * reference-counted blobs, one per token, shared by every entry that names
 * it.  A blob also counts its pins (layer.h, Pins): it is freed when both
 * counts are zero, and counted in usage until then.  Budget accounting
 * follows layer.h: name bytes plus value bytes, a blob counted once.  Every
 * change is checked against the budget and has allocated all it needs
 * before it touches anything, so a failure leaves the layer as it was.
 * The rules every layer shares (tree roots, budget, attributes, rename's
 * checks) are layer.c's; this file only stores.
 *
 * One mutex protects the whole layer.  list() copies the children out and
 * calls the callback unlocked, so a callback may call back into the layer.
 */
#include "htab.h"
#include "layer.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct mem_blob {
	struct htab_node h; /* in m->blobs, keyed by token */
	char token[DSFS_TOKEN_LEN + 1];
	unsigned char *data; /* owned */
	size_t len;
	unsigned long refs; /* entries naming this token */
	unsigned long pins; /* pin_blob() calls not yet unpinned */
};

struct mem_entry {
	struct htab_node h;	       /* in m->entries, keyed by key */
	char *key;		       /* owned: the full key */
	const char *name;	       /* last component, inside key */
	struct mem_entry *parent;      /* NULL for a tree root */
	struct mem_entry *prev, *next; /* siblings in parent->kids */
	struct mem_entry *kids;	       /* DSFS_DIR: children, no order */
	size_t nreal;		       /* DSFS_DIR: kids not whiteouts */
	bool root;		       /* "kv" or "images": never removed */
	struct dsfs_attr a;
	unsigned char *value;  /* plain file: owned copy of the value */
	struct mem_blob *blob; /* image file: one reference */
};

struct mem_layer {
	struct dsfs_layer base; /* first: (struct dsfs_layer *) is a cast */
	pthread_mutex_t lock;	/* protects everything below */
	struct htab entries;	/* every entry, roots included */
	struct htab blobs;	/* image blobs by token */
	uint64_t used;
	uint64_t budget;
	uint64_t seq; /* last version handed out; never goes back */
};

static inline struct mem_layer *to_mem(struct dsfs_layer *l)
{
	return (struct mem_layer *)l;
}

/* ---- entries ------------------------------------------------------- */

static struct mem_entry *find_len(struct mem_layer *m, const char *key,
				  size_t len)
{
	struct htab_node *h = htab_find(&m->entries, key, len);

	return h ? (struct mem_entry *)h : NULL;
}

static struct mem_entry *find(struct mem_layer *m, const char *key)
{
	return find_len(m, key, strlen(key));
}

static struct mem_blob *find_blob(struct mem_layer *m, const char *token)
{
	struct htab_node *h = htab_find(&m->blobs, token, strlen(token));

	return h ? (struct mem_blob *)h : NULL;
}

/* The directory that holds key: a tree root or a directory entry.
 * -ENOENT if it is missing or a whiteout, -ENOTDIR if it is a file,
 * -EINVAL if key has no parent part or an empty last component. */
static int find_parent(struct mem_layer *m, const char *key,
		       struct mem_entry **out)
{
	struct layer_key k;
	struct mem_entry *p;
	int rc;

	rc = layer_split_key(key, strlen(key), &k);
	if (rc)
		return rc;
	p = find_len(m, k.parent, k.plen);
	rc = layer_dir_check(p ? p->a.kind : DSFS_NONE);
	if (rc == 0)
		*out = p;
	return rc;
}

static const char *base_name(const char *key)
{
	const char *slash = strrchr(key, '/');

	return slash ? slash + 1 : key;
}

static void link_child(struct mem_entry *dir, struct mem_entry *e)
{
	e->parent = dir;
	e->prev = NULL;
	e->next = dir->kids;
	if (dir->kids)
		dir->kids->prev = e;
	dir->kids = e;
	if (e->a.kind != DSFS_WHITEOUT)
		dir->nreal++;
}

static void unlink_child(struct mem_entry *e)
{
	struct mem_entry *dir = e->parent;

	if (e->prev)
		e->prev->next = e->next;
	else
		dir->kids = e->next;
	if (e->next)
		e->next->prev = e->prev;
	if (e->a.kind != DSFS_WHITEOUT)
		dir->nreal--;
	e->parent = e->prev = e->next = NULL;
}

/* A new entry for key, not yet in the table nor in a directory. */
static struct mem_entry *entry_new(const char *key)
{
	struct mem_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return NULL;
	}
	e->name = base_name(e->key);
	return e;
}

static void blob_free(struct mem_layer *m, struct mem_blob *b)
{
	htab_del(&m->blobs, &b->h);
	free(b->data);
	free(b);
}

/* Drop one reference.  A pinned blob outlives its last one: the last
 * unpin frees it and gives its bytes back. */
static void blob_put(struct mem_layer *m, struct mem_blob *b)
{
	if (--b->refs || b->pins)
		return;
	blob_free(m, b);
}

/* Drop a file's value (its own copy or its blob reference). */
static void entry_drop_value(struct mem_layer *m, struct mem_entry *e)
{
	free(e->value);
	e->value = NULL;
	if (e->blob)
		blob_put(m, e->blob);
	e->blob = NULL;
}

/* Take e out of the table and its directory and free it.  Its kids must
 * already be gone. */
static void entry_destroy(struct mem_layer *m, struct mem_entry *e)
{
	htab_del(&m->entries, &e->h);
	unlink_child(e);
	entry_drop_value(m, e);
	free(e->key);
	free(e);
}

/* Value bytes given back when e's value is dropped: an image's blob only
 * if e holds its last reference and nobody has it pinned. */
static uint64_t value_cost(const struct mem_entry *e)
{
	if (e->a.kind != DSFS_FILE)
		return 0;
	if (e->blob)
		return e->blob->refs == 1 && !e->blob->pins ? e->blob->len : 0;
	return e->a.size;
}

/* Bytes given back when e goes, with the whiteouts a directory holds. */
static uint64_t entry_cost(const struct mem_entry *e)
{
	const struct mem_entry *k;
	uint64_t n = strlen(e->name) + value_cost(e);

	for (k = e->kids; k; k = k->next)
		n += strlen(k->name);
	return n;
}

/* Free the whiteouts of a directory that holds nothing else. */
static void drop_whiteouts(struct mem_layer *m, struct mem_entry *dir)
{
	struct mem_entry *k, *next;

	for (k = dir->kids; k; k = next) {
		next = k->next;
		entry_destroy(m, k);
	}
}

/* Would a change that adds `add` bytes and frees `sub` fit the budget? */
static bool fits(const struct mem_layer *m, uint64_t add, uint64_t sub)
{
	return layer_fits(m->used, m->budget, add, sub);
}

/* Turn e into a whiteout of a new version; the caller dropped its value
 * and kids. */
static void set_whiteout(struct mem_layer *m, struct mem_entry *e)
{
	struct mem_entry *dir = e->parent;

	if (dir && e->a.kind != DSFS_WHITEOUT)
		dir->nreal--;
	layer_whiteout_attr(&e->a);
	e->a.version = ++m->seq;
}

/* Attach a new entry to the table and to dir; the kind must be set. */
static void entry_attach(struct mem_layer *m, struct mem_entry *dir,
			 struct mem_entry *e)
{
	htab_add(&m->entries, &e->h, e->key, strlen(e->key));
	link_child(dir, e);
}

/* ---- operations ---------------------------------------------------- */

static int mem_lookup(struct dsfs_layer *l, const char *key,
		      struct dsfs_attr *a)
{
	struct mem_layer *m = to_mem(l);
	struct mem_entry *e;
	int rc = 0;

	pthread_mutex_lock(&m->lock);
	e = find(m, key);
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
	e = find(m, key);
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
	b = find_blob(m, token);
	rc = b ? copy_out(b->data, b->len, off, buf, len) : -ENOENT;
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int commit_locked(struct mem_layer *m, const char *key,
			 const struct dsfs_attr *a, const void *data,
			 size_t len, struct dsfs_attr *out)
{
	struct mem_entry *e, *dir, *fresh = NULL;
	struct mem_blob *b = NULL, *nb = NULL;
	unsigned char *copy = NULL;
	uint64_t add, sub = 0;
	int rc;

	rc = find_parent(m, key, &dir);
	if (rc)
		return rc;
	e = find(m, key);
	if (e && e->a.kind == DSFS_DIR)
		return -EISDIR;

	add = strlen(base_name(key));
	if (a->token[0]) {
		b = find_blob(m, a->token);
		if (!b)
			add += len;
	} else {
		add += len;
	}
	if (e) {
		sub = strlen(e->name);
		/* Replacing an image by the same image frees no blob. */
		if (!(b && e->blob == b))
			sub += value_cost(e);
	}
	if (!fits(m, add, sub))
		return -ENOSPC;

	/* Allocate everything before changing anything. */
	rc = -ENOMEM;
	if (!e) {
		fresh = entry_new(key);
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
	if (fresh) {
		fresh->a.kind = DSFS_FILE;
		entry_attach(m, dir, fresh);
		e = fresh;
	} else {
		entry_drop_value(m, e);
		if (e->a.kind == DSFS_WHITEOUT)
			dir->nreal++;
	}
	e->value = copy;
	e->blob = b;
	layer_file_attr(&e->a, a);
	e->a.size = b ? b->len : len;
	m->seq = layer_version_floor(m->seq, a);
	e->a.version = ++m->seq;
	m->used = m->used + add - sub;
	if (out)
		*out = e->a;
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
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = commit_locked(m, key, a, data, len, out);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mkdir_locked(struct mem_layer *m, const char *key,
			const struct dsfs_attr *a)
{
	struct mem_entry *e, *dir;
	int rc;

	rc = find_parent(m, key, &dir);
	if (rc)
		return rc;
	e = find(m, key);
	if (e && e->a.kind != DSFS_WHITEOUT)
		return -EEXIST;
	if (!e) {
		if (!fits(m, strlen(base_name(key)), 0))
			return -ENOSPC;
		e = entry_new(key);
		if (!e)
			return -ENOMEM;
		e->a.kind = DSFS_DIR;
		entry_attach(m, dir, e);
		m->used += strlen(e->name);
	} else {
		dir->nreal++;
	}
	layer_dir_attr(&e->a, a);
	e->a.version = ++m->seq;
	return 0;
}

static int mem_mkdir(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a)
{
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = mkdir_locked(m, key, a);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int remove_locked(struct mem_layer *m, const char *key)
{
	struct mem_entry *e;

	e = find(m, key);
	if (!e)
		return -ENOENT;
	if (e->a.kind == DSFS_DIR && e->nreal)
		return -ENOTEMPTY;
	m->used -= entry_cost(e);
	drop_whiteouts(m, e);
	entry_destroy(m, e);
	return 0;
}

/* Run fn(m, key) under the lock. */
static int key_locked(struct dsfs_layer *l, const char *key,
		      int (*fn)(struct mem_layer *m, const char *key))
{
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = fn(m, key);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static int mem_remove(struct dsfs_layer *l, const char *key)
{
	return key_locked(l, key, remove_locked);
}

static int whiteout_locked(struct mem_layer *m, const char *key)
{
	struct mem_entry *e, *dir;
	uint64_t add = strlen(base_name(key)), sub = 0;
	int rc;

	rc = find_parent(m, key, &dir);
	if (rc)
		return rc;
	e = find(m, key);
	if (e && e->a.kind == DSFS_DIR && e->nreal)
		return -ENOTEMPTY;
	if (e)
		sub = entry_cost(e);
	if (!fits(m, add, sub))
		return -ENOSPC;
	if (!e) {
		e = entry_new(key);
		if (!e)
			return -ENOMEM;
		e->a.kind = DSFS_WHITEOUT;
		entry_attach(m, dir, e);
	} else {
		drop_whiteouts(m, e);
		entry_drop_value(m, e);
	}
	set_whiteout(m, e);
	m->used = m->used + add - sub;
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
	e = find(m, key);
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

/* Walk a subtree in preorder without a stack: the first descendant of top,
 * then next_in(e, top) until NULL.  The walk only reads the links, so it
 * visits the same nodes in the same order while keys are being changed. */
static struct mem_entry *next_in(struct mem_entry *e,
				 const struct mem_entry *top)
{
	if (e->kids)
		return e->kids;
	while (e != top) {
		if (e->next)
			return e->next;
		e = e->parent;
	}
	return NULL;
}

/* New keys for every descendant of src once src is named `to`, in walk
 * order; NULL (everything freed) when out of memory. */
static char **subtree_keys(struct mem_entry *src, const char *to, size_t *count)
{
	size_t n = 0, i = 0, flen = strlen(src->key), tlen = strlen(to);
	struct mem_entry *d;
	char **keys;

	for (d = next_in(src, src); d; d = next_in(d, src))
		n++;
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return NULL;
	for (d = next_in(src, src); d; d = next_in(d, src), i++) {
		size_t rest = strlen(d->key) - flen;

		keys[i] = malloc(tlen + rest + 1);
		if (!keys[i])
			goto out_free;
		memcpy(keys[i], to, tlen);
		memcpy(keys[i] + tlen, d->key + flen, rest + 1);
	}
	*count = n;
	return keys;

out_free:
	while (i--)
		free(keys[i]);
	free(keys);
	return NULL;
}

/* Give e its new key and re-index it. */
static void rekey(struct mem_layer *m, struct mem_entry *e, char *key)
{
	htab_del(&m->entries, &e->h);
	free(e->key);
	e->key = key;
	e->name = base_name(key);
	htab_add(&m->entries, &e->h, key, strlen(key));
}

static int rename_locked(struct mem_layer *m, const char *from, const char *to,
			 unsigned flags)
{
	struct mem_entry *src, *dst, *tdir, *fdir, *wo = NULL, *d;
	char **keys = NULL, *newkey = NULL;
	size_t nkeys = 0, i;
	uint64_t add, sub;
	bool same;
	int rc;

	src = find(m, from);
	if (!src || src->a.kind == DSFS_WHITEOUT)
		return -ENOENT;
	rc = find_parent(m, to, &tdir);
	if (rc)
		return rc;
	dst = find(m, to);
	rc = layer_rename_check(from, to, flags, &src->a, dst ? &dst->a : NULL,
				&same);
	if (rc || same)
		return rc;
	if (dst && dst->a.kind == DSFS_DIR && dst->nreal)
		return -ENOTEMPTY;

	add = strlen(base_name(to));
	sub = strlen(src->name) + (dst ? entry_cost(dst) : 0);
	if (flags & DSFS_RENAME_WHITEOUT)
		add += strlen(src->name);
	if (!fits(m, add, sub))
		return -ENOSPC;

	/* Allocate everything before changing anything. */
	rc = -ENOMEM;
	newkey = strdup(to);
	if (!newkey)
		goto out_free;
	if (src->a.kind == DSFS_DIR) {
		keys = subtree_keys(src, to, &nkeys);
		if (!keys)
			goto out_free;
	}
	if (flags & DSFS_RENAME_WHITEOUT) {
		wo = entry_new(from);
		if (!wo)
			goto out_free;
		wo->a.kind = DSFS_WHITEOUT;
	}

	if (dst) {
		drop_whiteouts(m, dst);
		entry_destroy(m, dst);
	}
	fdir = src->parent;
	unlink_child(src);
	rekey(m, src, newkey);
	link_child(tdir, src);
	src->a.version = ++m->seq;
	/* The walk reads only links, which rekey() leaves alone. */
	for (d = next_in(src, src), i = 0; d && i < nkeys;
	     d = next_in(d, src), i++)
		rekey(m, d, keys[i]);
	free(keys);
	if (wo) {
		entry_attach(m, fdir, wo);
		set_whiteout(m, wo);
	}
	m->used = m->used + add - sub;
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
	struct mem_layer *m = to_mem(l);
	int rc;

	pthread_mutex_lock(&m->lock);
	rc = rename_locked(m, from, to, flags);
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

	e = find(m, dir);
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

/* What clear_locked() keeps: the roots (emptied) and, unless closing, the
 * pinned blobs. */
struct clearing {
	struct mem_layer *m;
	bool closing;
	uint64_t used; /* bytes of the blobs kept */
};

static void clear_entry(struct htab_node *h, void *arg)
{
	struct clearing *c = arg;
	struct mem_entry *e = (struct mem_entry *)h;

	if (e->root && !c->closing) {
		e->kids = NULL;
		e->nreal = 0;
		htab_add(&c->m->entries, h, e->key, strlen(e->key));
		return;
	}
	free(e->value);
	free(e->key);
	free(e);
}

static void clear_blob(struct htab_node *h, void *arg)
{
	struct clearing *c = arg;
	struct mem_blob *b = (struct mem_blob *)h;

	if (b->pins && !c->closing) {
		b->refs = 0;
		htab_add(&c->m->blobs, h, b->token, strlen(b->token));
		c->used += b->len;
		return;
	}
	free(b->data);
	free(b);
}

/* Free every entry but the roots, and every blob but the pinned ones, or
 * everything if closing.  The pinned blobs stay, referenced by nothing and
 * still counted in usage, until their last unpin.  seq is kept: versions
 * must keep increasing across a factory reset, or a cache holding an old
 * version could take a new value for the one it has. */
static void clear_locked(struct mem_layer *m, bool closing)
{
	struct clearing c = {m, closing, 0};

	htab_drain(&m->entries, clear_entry, &c);
	htab_drain(&m->blobs, clear_blob, &c);
	m->used = c.used;
}

static int mem_clear(struct dsfs_layer *l)
{
	struct mem_layer *m = to_mem(l);

	pthread_mutex_lock(&m->lock);
	clear_locked(m, false);
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
	b = find_blob(m, token);
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
	b = find_blob(m, token);
	if (!b || !b->pins) {
		rc = -ENOENT;
	} else if (!--b->pins && !b->refs) {
		m->used -= b->len;
		blob_free(m, b);
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

static void mem_close(struct dsfs_layer *l)
{
	struct mem_layer *m = to_mem(l);

	clear_locked(m, true);
	htab_free(&m->entries);
	htab_free(&m->blobs);
	pthread_mutex_destroy(&m->lock);
	free(m);
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
		e = entry_new(root);
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
	clear_locked(m, true);
	htab_free(&m->blobs);
out_free_entries:
	htab_free(&m->entries);
out_free:
	free(m);
	return rc;
}
