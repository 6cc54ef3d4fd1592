/*
 * layer_mem_tree.c - the ephemeral layer's storage: entries in a hash
 * table keyed by their full key, each directory linking its children, and
 * reference-counted image blobs (layer_mem.h says how they fit together).
 *
 * Everything here works on a struct mem_layer whose lock the caller holds
 * (layer_mem.c, the operations of layer.h, takes it) and never fails
 * halfway: what can run out of memory allocates before it changes
 * anything.  Besides the pieces the operations are made of, this file
 * copies a whole layer (mem_clone()), which apply() changes in place of
 * the original so that a change set that fails leaves nothing behind.
 */
#include "layer_mem.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct mem_entry *mem_find_len(struct mem_layer *m, const char *key, size_t len)
{
	struct htab_node *h = htab_find(&m->entries, key, len);

	return h ? (struct mem_entry *)h : NULL;
}

struct mem_entry *mem_find(struct mem_layer *m, const char *key)
{
	return mem_find_len(m, key, strlen(key));
}

struct mem_blob *mem_find_blob(struct mem_layer *m, const char *token)
{
	struct htab_node *h = htab_find(&m->blobs, token, strlen(token));

	return h ? (struct mem_blob *)h : NULL;
}

/* The directory that holds key: a tree root or a directory entry.
 * -ENOENT if it is missing or a whiteout, -ENOTDIR if it is a file,
 * -EINVAL if key has no parent part or an empty last component. */
int mem_find_parent(struct mem_layer *m, const char *key,
		    struct mem_entry **out)
{
	struct layer_key k;
	struct mem_entry *p;
	int rc;

	rc = layer_split_key(key, strlen(key), &k);
	if (rc)
		return rc;
	p = mem_find_len(m, k.parent, k.plen);
	rc = layer_dir_check(p ? p->a.kind : DSFS_NONE);
	if (rc == 0)
		*out = p;
	return rc;
}

const char *mem_base_name(const char *key)
{
	const char *slash = strrchr(key, '/');

	return slash ? slash + 1 : key;
}

void mem_link_child(struct mem_entry *dir, struct mem_entry *e)
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

void mem_unlink_child(struct mem_entry *e)
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
struct mem_entry *mem_entry_new(const char *key)
{
	struct mem_entry *e = calloc(1, sizeof(*e));

	if (!e)
		return NULL;
	e->key = strdup(key);
	if (!e->key) {
		free(e);
		return NULL;
	}
	e->name = mem_base_name(e->key);
	return e;
}

void mem_blob_free(struct mem_layer *m, struct mem_blob *b)
{
	htab_del(&m->blobs, &b->h);
	free(b->data);
	free(b);
}

/* Drop one reference.  A pinned blob outlives its last one: the last
 * unpin frees it and gives its bytes back. */
void mem_blob_put(struct mem_layer *m, struct mem_blob *b)
{
	if (--b->refs || b->pins)
		return;
	mem_blob_free(m, b);
}

/* Drop a file's value (its own copy or its blob reference). */
void mem_drop_value(struct mem_layer *m, struct mem_entry *e)
{
	free(e->value);
	e->value = NULL;
	if (e->blob)
		mem_blob_put(m, e->blob);
	e->blob = NULL;
}

/* Take e out of the table and its directory and free it.  Its kids must
 * already be gone. */
void mem_entry_destroy(struct mem_layer *m, struct mem_entry *e)
{
	htab_del(&m->entries, &e->h);
	mem_unlink_child(e);
	mem_drop_value(m, e);
	free(e->key);
	free(e);
}

/* Value bytes given back when e's value is dropped: an image's blob only
 * if e holds its last reference and nobody has it pinned. */
uint64_t mem_value_cost(const struct mem_entry *e)
{
	if (e->a.kind != DSFS_FILE)
		return 0;
	if (e->blob)
		return e->blob->refs == 1 && !e->blob->pins ? e->blob->len : 0;
	return e->a.size;
}

/* Bytes given back when e goes, with the whiteouts a directory holds. */
uint64_t mem_entry_cost(const struct mem_entry *e)
{
	const struct mem_entry *k;
	uint64_t n = strlen(e->name) + mem_value_cost(e);

	for (k = e->kids; k; k = k->next)
		n += strlen(k->name);
	return n;
}

/* Free the whiteouts of a directory that holds nothing else. */
void mem_drop_whiteouts(struct mem_layer *m, struct mem_entry *dir)
{
	struct mem_entry *k, *next;

	for (k = dir->kids; k; k = next) {
		next = k->next;
		mem_entry_destroy(m, k);
	}
}

/* Would a change that adds `add` bytes and frees `sub` fit the budget? */
bool mem_fits(const struct mem_layer *m, uint64_t add, uint64_t sub)
{
	return layer_fits(m->used, m->budget, add, sub);
}

/* Turn e into a whiteout of a new version; the caller dropped its value
 * and kids. */
void mem_set_whiteout(struct mem_layer *m, struct mem_entry *e)
{
	struct mem_entry *dir = e->parent;

	if (dir && e->a.kind != DSFS_WHITEOUT)
		dir->nreal--;
	layer_whiteout_attr(&e->a);
	e->a.version = ++m->seq;
}

/* Attach a new entry to the table and to dir; the kind must be set. */
void mem_attach(struct mem_layer *m, struct mem_entry *dir, struct mem_entry *e)
{
	htab_add(&m->entries, &e->h, e->key, strlen(e->key));
	mem_link_child(dir, e);
}

/* Walk a subtree in preorder without a stack: the first descendant of top,
 * then mem_next_in(e, top) until NULL.  The walk only reads the links, so it
 * visits the same nodes in the same order while keys are being changed. */
struct mem_entry *mem_next_in(struct mem_entry *e, const struct mem_entry *top)
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
char **mem_subtree_keys(struct mem_entry *src, const char *to, size_t *count)
{
	size_t n = 0, i = 0, flen = strlen(src->key), tlen = strlen(to);
	struct mem_entry *d;
	char **keys;

	for (d = mem_next_in(src, src); d; d = mem_next_in(d, src))
		n++;
	keys = calloc(n ? n : 1, sizeof(*keys));
	if (!keys)
		return NULL;
	for (d = mem_next_in(src, src); d; d = mem_next_in(d, src), i++) {
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
void mem_rekey(struct mem_layer *m, struct mem_entry *e, char *key)
{
	htab_del(&m->entries, &e->h);
	free(e->key);
	e->key = key;
	e->name = mem_base_name(key);
	htab_add(&m->entries, &e->h, key, strlen(key));
}

/* What mem_clear_locked() keeps: the roots (emptied) and, unless closing, the
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
void mem_clear_locked(struct mem_layer *m, bool closing)
{
	struct clearing c = {m, closing, 0};

	htab_drain(&m->entries, clear_entry, &c);
	htab_drain(&m->blobs, clear_blob, &c);
	m->used = c.used;
}

/* A name in dir changed (layer.h, Directory times); a tree root's times
 * are not stored. */
void mem_touch_dir(struct mem_layer *m, struct mem_entry *dir,
		   struct timespec now)
{
	if (!dir || dir->root)
		return;
	dir->a.mtime = now;
	dir->a.ctime = now;
	dir->a.version = ++m->seq;
}

/* Add to c a copy of blob b, with its counts. */
static int blob_copy(struct mem_layer *c, const struct mem_blob *b)
{
	struct mem_blob *n = malloc(sizeof(*n));

	if (!n)
		return -ENOMEM;
	*n = *b;
	n->data = malloc(b->len ? b->len : 1);
	if (!n->data) {
		free(n);
		return -ENOMEM;
	}
	memcpy(n->data, b->data, b->len);
	htab_add(&c->blobs, &n->h, n->token, strlen(n->token));
	/* The table owns n from here on (mem_free_tree() frees it); the
	 * analyzer does not follow it into htab.c. */
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
	return 0;
}

/* A copy of entry e, its value or its reference to c's blob of the same
 * token, not yet linked to a directory. */
static struct mem_entry *entry_copy(struct mem_layer *c,
				    const struct mem_entry *e)
{
	struct mem_entry *n = mem_entry_new(e->key);

	if (!n)
		return NULL;
	n->root = e->root;
	n->a = e->a;
	if (e->blob)
		n->blob = mem_find_blob(c, e->blob->token);
	if (e->value) {
		n->value = malloc(e->a.size ? e->a.size : 1);
		if (!n->value) {
			free(n->key);
			free(n);
			return NULL;
		}
		memcpy(n->value, e->value, e->a.size);
	}
	return n;
}

/* Link every entry of c but the roots to its directory, which c holds:
 * the copies keep the tree of the original. */
static void link_all(struct mem_layer *c)
{
	struct htab_node *h;
	struct layer_key k;

	for (h = htab_next(&c->entries, NULL); h;
	     h = htab_next(&c->entries, h)) {
		struct mem_entry *e = (struct mem_entry *)h;

		if (e->root || layer_split_key(e->key, strlen(e->key), &k) != 0)
			continue;
		mem_link_child(mem_find_len(c, k.parent, k.plen), e);
	}
}

int mem_clone(const struct mem_layer *m, struct mem_layer *c)
{
	const struct htab_node *h;

	memset(c, 0, sizeof(*c));
	if (htab_init(&c->entries, m->entries.seed))
		return -ENOMEM;
	if (htab_init(&c->blobs, m->blobs.seed)) {
		htab_free(&c->entries);
		return -ENOMEM;
	}
	c->used = m->used;
	c->budget = m->budget;
	c->seq = m->seq;
	for (h = htab_next(&m->blobs, NULL); h; h = htab_next(&m->blobs, h))
		if (blob_copy(c, (const struct mem_blob *)h))
			goto out_free;
	for (h = htab_next(&m->entries, NULL); h;
	     h = htab_next(&m->entries, h)) {
		struct mem_entry *e =
			entry_copy(c, (const struct mem_entry *)h);

		if (!e)
			goto out_free;
		htab_add(&c->entries, &e->h, e->key, strlen(e->key));
	}
	link_all(c);
	return 0;

out_free:
	mem_free_tree(c);
	return -ENOMEM;
}

void mem_swap_tree(struct mem_layer *m, struct mem_layer *c)
{
	struct htab entries = m->entries, blobs = m->blobs;

	m->entries = c->entries;
	m->blobs = c->blobs;
	m->used = c->used;
	m->seq = c->seq;
	c->entries = entries;
	c->blobs = blobs;
}

void mem_free_tree(struct mem_layer *c)
{
	mem_clear_locked(c, true);
	htab_free(&c->entries);
	htab_free(&c->blobs);
}
