/*
 * inode.c - the node table: inode numbers <-> names in the mount's trees.
 *
 * Two open-addressing tables (ptab.h) index the nodes: one by inode number,
 * one by (parent, name); a node holds no links of its own, and its name is
 * in the same allocation, so that a node the kernel merely remembers costs
 * 51 bytes and its name (56 at least), and two table slots.  What a file
 * read through the page cache leaves after its readers (the version the
 * pages hold) is in the node too.  What only some nodes need for a while
 * (open files, page-cache readers, listings, renames) is in a node_extra
 * made on first use and freed once it holds nothing (node_extra_trim()),
 * so that a file read costs no more than one looked up.  Inode numbers
 * count up from ROOT_INO and are never reused, so the generation is
 * always 0.  The fixed directories (the root, kv/, images/, devices/,
 * ephemeral/, runtime/, factory/ and their kv/, images/, devices/) are
 * made once and never freed.
 *
 * A node does not cache what is stored: the key of a node is rebuilt from
 * its chain of parents on each request, so a rename moves a whole subtree
 * by changing one node's parent and name.
 */
#include "hash.h"
#include "inode.h"
#include "inode_table.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_ino(uint64_t ino)
{
	return ino * 0x9E3779B97F4A7C15ull >> 17;
}

/* Seeded with the parent's address, which a local user choosing names
 * cannot know in advance. */
static uint64_t hash_name(const struct node *parent, const char *name)
{
	return dsfs_hash_str((uintptr_t)parent, name);
}

static uint64_t node_ino_hash(const void *item)
{
	return hash_ino(((const struct node *)item)->ino);
}

static uint64_t node_name_hash(const void *item)
{
	const struct node *n = item;

	return hash_name(n->parent, n->name);
}

static bool ino_match(const void *item, const void *key)
{
	return ((const struct node *)item)->ino == *(const uint64_t *)key;
}

struct child_key {
	const struct node *dir;
	const char *name;
};

static bool child_match(const void *item, const void *key)
{
	const struct node *n = item;
	const struct child_key *k = key;

	return n->parent == k->dir && strcmp(n->name, k->name) == 0;
}

/* Only named children are found by name. */
static void name_unhash(struct node_table *t, struct node *n)
{
	if (n->parent && n->name)
		ptab_del(&t->by_name, n);
}

static int name_hash(struct node_table *t, struct node *n)
{
	if (!n->parent || !n->name)
		return 0;
	return ptab_add(&t->by_name, n);
}

static_assert(DSFS_NLAYERS <= NODE_NO_LAYER,
	      "cached_layer holds every layer and NODE_NO_LAYER");

struct node_extra *node_extra_get(struct node *n)
{
	if (!n->x)
		n->x = calloc(1, sizeof(*n->x));
	return n->x;
}

/* Every field of x at its zero, as node_extra_get() made it (a new field
 * of node_extra goes here too).  snap_lent is tested before snap: once
 * lent, snap is written under dirlist.c's lock, not this table's. */
static bool extra_empty(const struct node_extra *x)
{
	return x->cache_readers == 0 && x->writers == 0 &&
	       !x->attrs_sent_writing && !x->filling && !x->times_set &&
	       !x->subdirs_kept && x->subdirs == 0 && x->subdirs_at == 0 &&
	       x->pending_at == 0 && x->atime.tv_sec == 0 &&
	       x->atime.tv_nsec == 0 && x->mtime.tv_sec == 0 &&
	       x->mtime.tv_nsec == 0 && !x->gone && !x->was_parent &&
	       !x->was_name && !x->snap_lent && !x->snap;
}

void node_extra_trim(struct node *n)
{
	if (n->x && extra_empty(n->x)) {
		free(n->x);
		n->x = NULL;
	}
}

static void free_name(struct node *n)
{
	if (n->name != n->name_buf)
		free(n->name);
	n->name = NULL;
}

static void free_node(struct node *n)
{
	if (n->x) {
		free(n->x->gone);
		if (n->x->was_name != n->name_buf)
			free(n->x->was_name);
		free(n->x);
	}
	free_name(n);
	free(n);
}

struct node *node_new(struct node_table *t, struct node *parent,
		      const char *name)
{
	size_t len = name ? strlen(name) + 1 : 0;
	size_t size = offsetof(struct node, name_buf) + len;
	struct node *n;

	/* Never less than the struct: the compiler may read the bitfields
	 * before name_buf with a load that reaches into it. */
	n = calloc(1, size < sizeof(*n) ? sizeof(*n) : size);
	if (!n)
		return NULL;
	if (name) {
		memcpy(n->name_buf, name, len);
		n->name = n->name_buf;
	}
	n->ino = t->next_ino;
	n->parent = parent;
	if (parent) {
		n->view = parent->view;
		n->layer = parent->layer;
		n->tree = parent->tree;
		n->limit = parent->limit;
	}
	if (ptab_add(&t->by_ino, n) != 0) {
		free(n);
		return NULL;
	}
	if (name_hash(t, n) != 0) {
		ptab_del(&t->by_ino, n);
		free(n);
		return NULL;
	}
	if (parent)
		parent->refs++;
	t->next_ino++;
	t->count++;
	if (t->bound && t->count > t->bound + t->evicting)
		pthread_cond_signal(&t->over);
	return n;
}

/* Free n if nothing holds it any more, then its parent likewise. */
static void maybe_free(struct node_table *t, struct node *n)
{
	/* A node waiting for writers (pending_at) stays: a FORGET of the
	 * revalidating LOOKUP may come before the writer's own LOOKUP. */
	while (n && !n->permanent && n->nlookup == 0 && n->refs == 0 &&
	       !(n->x && n->x->pending_at)) {
		struct node *parent = n->parent ? n->parent :
				      n->x	? n->x->was_parent :
						  NULL;

		name_unhash(t, n);
		ptab_del(&t->by_ino, n);
		t->count--;
		if (n->evicted)
			t->evicting--;
		free_node(n);
		if (!parent)
			break;
		parent->refs--;
		n = parent;
	}
}

static struct node *fixed(struct node_table *t, struct node *parent,
			  const char *name, enum dsfs_view view, int layer,
			  enum dsfs_tree tree)
{
	struct node *n = node_new(t, parent, name);

	if (!n)
		return NULL;
	n->view = view;
	n->layer = layer;
	n->tree = tree;
	n->is_dir = true;
	n->is_tree_root = tree != TREE_NONE;
	n->permanent = true;
	n->limit = view == VIEW_LAYER ? layer : L_FACTORY;
	return n;
}

static int make_trees(struct node_table *t, struct node *dir,
		      enum dsfs_view view, int layer)
{
	if (!fixed(t, dir, "kv", view, layer, TREE_KV) ||
	    !fixed(t, dir, "images", view, layer, TREE_IMAGES) ||
	    !fixed(t, dir, "devices", view, layer, TREE_DEVICES))
		return -ENOMEM;
	return 0;
}

int nodes_init(struct node_table *t)
{
	static const char *const layer_dirs[DSFS_NLAYERS] = {
		"ephemeral", "runtime", "factory"};
	struct node *root, *dir;
	int i, rc;

	memset(t, 0, sizeof(*t));
	t->next_ino = ROOT_INO;
	rc = ptab_init(&t->by_ino, 1024, node_ino_hash);
	if (rc)
		return rc;
	rc = ptab_init(&t->by_name, 1024, node_name_hash);
	if (rc)
		goto fail;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->over, NULL);
	root = fixed(t, NULL, NULL, VIEW_ROOT, 0, TREE_NONE);
	if (!root) {
		rc = -ENOMEM;
		goto fail_lock;
	}
	rc = make_trees(t, root, VIEW_MERGED, 0);
	for (i = 0; rc == 0 && i < DSFS_NLAYERS; i++) {
		dir = fixed(t, root, layer_dirs[i], VIEW_ROOT, i, TREE_NONE);
		rc = dir ? make_trees(t, dir, VIEW_LAYER, i) : -ENOMEM;
	}
	if (rc)
		goto fail_nodes;
	return 0;

fail_nodes:
	nodes_destroy(t);
	return rc;
fail_lock:
	pthread_cond_destroy(&t->over);
	pthread_mutex_destroy(&t->lock);
	ptab_free(&t->by_name);
fail:
	ptab_free(&t->by_ino);
	return rc;
}

void nodes_destroy(struct node_table *t)
{
	struct node *n;
	size_t pos = 0;

	while ((n = ptab_next(&t->by_ino, &pos)) != NULL)
		free_node(n);
	ptab_free(&t->by_ino);
	ptab_free(&t->by_name);
	pthread_cond_destroy(&t->over);
	pthread_mutex_destroy(&t->lock);
}

static struct node *find_ino(struct node_table *t, uint64_t ino)
{
	return ptab_find(&t->by_ino, hash_ino(ino), ino_match, &ino);
}

struct node *node_find_child(struct node_table *t, struct node *dir,
			     const char *name)
{
	struct child_key k = {dir, name};

	return ptab_find(&t->by_name, hash_name(dir, name), child_match, &k);
}

struct node *node_get(struct node_table *t, uint64_t ino)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n) {
		n->refs++;
		node_used(t, n);
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

void node_put(struct node_table *t, struct node *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&t->lock);
	n->refs--;
	maybe_free(t, n);
	pthread_mutex_unlock(&t->lock);
}

/* One more lookup replied to the kernel.  A count at its maximum stays
 * there: the node is then never freed, which is safe. */
static void count_lookup(struct node_table *t, struct node *n)
{
	if (n->nlookup < UINT32_MAX)
		n->nlookup++;
	node_used(t, n);
}

/* The child `name` of dir, found or made, with one more kernel lookup
 * counted; called with the lock held. */
static struct node *link_locked(struct node_table *t, struct node *dir,
				const char *name)
{
	struct node *n = node_find_child(t, dir, name);

	if (!n)
		n = node_new(t, dir, name);
	if (n)
		count_lookup(t, n);
	return n;
}

struct node *node_link(struct node_table *t, struct node *dir, const char *name,
		       bool is_dir, int limit)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = link_locked(t, dir, name);
	if (n) {
		n->is_dir = is_dir;
		n->limit = (unsigned)limit;
		if (n->x && n->x->writers > 0)
			n->x->attrs_sent_writing = true;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct node *node_link_special(struct node_table *t, struct node *dir,
			       const char *name, int special)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = link_locked(t, dir, name);
	if (n) {
		n->special = (unsigned)special;
		n->is_dir = special == NODE_BY_TOKEN_DIR;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct dir_snap **node_snap_slot(struct node_table *t, struct node *n)
{
	struct node_extra *x;

	pthread_mutex_lock(&t->lock);
	x = node_extra_get(n);
	if (x)
		x->snap_lent = true;
	pthread_mutex_unlock(&t->lock);
	return x ? &x->snap : NULL;
}

void node_writers(struct node_table *t, struct node *n, int delta)
{
	struct node_extra *x;

	pthread_mutex_lock(&t->lock);
	x = delta > 0 ? node_extra_get(n) : n->x;
	/* An opening that could not be counted (no memory for x), or the
	 * closing of one: never trust the kernel's view of n again. */
	if (!x || (delta < 0 && x->writers == 0)) {
		n->writers_lost = true;
	} else {
		x->writers = (unsigned)((int)x->writers + delta);
		if (x->writers == 0) {
			x->times_set = false;
			x->atime = x->mtime = (struct timespec){0};
			x->attrs_sent_writing = false;
			node_extra_trim(n);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

void node_attrs_sent(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	if (n->x && n->x->writers > 0)
		n->x->attrs_sent_writing = true;
	pthread_mutex_unlock(&t->lock);
}

bool node_sole_writer_view(struct node_table *t, struct node *n)
{
	bool ok;

	pthread_mutex_lock(&t->lock);
	ok = !n->writers_lost && n->x && n->x->writers == 1 &&
	     !n->x->attrs_sent_writing;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

/* Writers made n->x, so times set while they are open are kept. */
void node_set_times(struct node_table *t, struct node *n,
		    const struct timespec *atime, const struct timespec *mtime)
{
	struct node_extra *x;

	pthread_mutex_lock(&t->lock);
	x = n->x;
	if (x && x->writers > 0) {
		if (!x->times_set) {
			/* Only one of the two given: the other stays "now". */
			clock_gettime(CLOCK_REALTIME, &x->atime);
			x->mtime = x->atime;
		}
		if (atime)
			x->atime = *atime;
		if (mtime)
			x->mtime = *mtime;
		x->times_set = true;
	}
	pthread_mutex_unlock(&t->lock);
}

void node_take_times(struct node_table *t, struct node *n,
		     struct timespec *atime, struct timespec *mtime)
{
	pthread_mutex_lock(&t->lock);
	if (n->x && n->x->times_set) {
		*atime = n->x->atime;
		*mtime = n->x->mtime;
	}
	pthread_mutex_unlock(&t->lock);
}

struct node *node_get_child(struct node_table *t, struct node *dir,
			    const char *name)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = node_find_child(t, dir, name);
	if (n)
		count_lookup(t, n);
	pthread_mutex_unlock(&t->lock);
	return n;
}

bool node_subdirs(struct node_table *t, struct node *n, uint32_t *count,
		  uint64_t *at)
{
	bool kept = false;

	pthread_mutex_lock(&t->lock);
	if (n->x) {
		kept = n->x->subdirs_kept;
		*count = n->x->subdirs;
		*at = n->x->subdirs_at;
	}
	pthread_mutex_unlock(&t->lock);
	return kept;
}

/* A count that cannot be kept (no memory) is counted again next time. */
void node_set_subdirs(struct node_table *t, struct node *n, uint32_t count,
		      uint64_t at)
{
	struct node_extra *x;

	pthread_mutex_lock(&t->lock);
	x = node_extra_get(n);
	/* A listing taken earlier than the one kept says less. */
	if (x && (!x->subdirs_kept || at >= x->subdirs_at)) {
		x->subdirs_kept = true;
		x->subdirs = count;
		x->subdirs_at = at;
	}
	pthread_mutex_unlock(&t->lock);
}

void node_forget(struct node_table *t, uint64_t ino, uint64_t nlookup)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n && n->nlookup < UINT32_MAX) {
		n->nlookup = nlookup > n->nlookup ?
				     0 :
				     n->nlookup - (uint32_t)nlookup;
		maybe_free(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

/* Append the key of n (without its tree root) to *p, walking up; called
 * with the lock held.  Components are collected first because the walk
 * goes from the leaf up. */
static int build_key(struct node *n, const char *leaf, struct loc *l)
{
	const char *parts[DSFS_KEY_MAX / 2];
	struct node *root;
	size_t nparts = 0, pos;
	int i;

	if (leaf)
		parts[nparts++] = leaf;
	for (root = n; root && !root->is_tree_root; root = root->parent) {
		if (!root->parent || !root->name)
			/* Detached: unlinked or replaced.  ESTALE makes the
			 * kernel walk the path again (LOOKUP_REVAL) when it
			 * raced with the change. */
			return -ESTALE;
		if (nparts == DSFS_KEY_MAX / 2)
			return -ENAMETOOLONG;
		parts[nparts++] = root->name;
	}
	if (!root)
		return -ENOENT;
	l->view = root->view;
	l->layer = root->layer;
	l->tree = root->tree;
	pos = (size_t)snprintf(l->key, sizeof(l->key), "%s",
			       root->tree == TREE_IMAGES ? "images" : "kv");
	/* The key is as long as the path below the mount or shorter ("kv/"
	 * stands for "runtime/kv/", "kv/__ID" for "devices/ID"), so exactly
	 * the room DSFS_KEY_MAX leaves is used: a path of PATH_MAX - 1 bytes
	 * fits. */
	for (i = (int)nparts - 1; i >= 0; i--) {
		bool device = root->tree == TREE_DEVICES &&
			      i == (int)nparts - 1;
		size_t sep = device ? 3 : 1, len = strlen(parts[i]);

		if (pos + sep + len + 1 > sizeof(l->key))
			return -ENAMETOOLONG;
		memcpy(l->key + pos, device ? "/__" : "/", sep);
		pos += sep;
		memcpy(l->key + pos, parts[i], len + 1);
		pos += len;
	}
	return 0;
}

int node_loc(struct node_table *t, struct node *n, struct loc *l)
{
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (n->view == VIEW_ROOT) {
		l->view = VIEW_ROOT;
		l->layer = n->layer;
		l->tree = TREE_NONE;
		l->key[0] = '\0';
	} else {
		rc = build_key(n, NULL, l);
		if (rc == 0)
			l->limit = n->is_tree_root ? n->limit :
						     n->parent->limit;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int node_child_loc(struct node_table *t, struct node *dir, const char *name,
		   struct loc *l)
{
	int rc;

	pthread_mutex_lock(&t->lock);
	rc = build_key(dir, name, l);
	if (rc == 0)
		l->limit = dir->limit;
	pthread_mutex_unlock(&t->lock);
	return rc;
}

int node_former_loc(struct node_table *t, struct node *n, struct loc *l)
{
	int rc = -ESTALE;

	pthread_mutex_lock(&t->lock);
	if (n->x && n->x->was_parent) {
		rc = build_key(n->x->was_parent, n->x->was_name, l);
		if (rc == 0)
			l->limit = n->x->was_parent->limit;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Keep what n was, for fstat() of files still open on it; without the
 * memory, fstat() finds nothing kept (ESTALE). */
static void keep_gone(struct node *n, const struct dsfs_attr *gone)
{
	struct node_extra *x;

	if (!gone || (n->x && n->x->gone))
		return;
	x = node_extra_get(n);
	if (!x)
		return;
	x->gone = malloc(sizeof(*x->gone));
	if (x->gone)
		*x->gone = *gone;
}

void node_retire_locked(struct node_table *t, struct node *n,
			const struct dsfs_attr *gone)
{
	struct node_extra *x = n->x; /* the caller's contract: n has one */

	keep_gone(n, gone);
	name_unhash(t, n);
	/* Writers sent to the name find its next node: n waits for none
	 * (and may be freed). */
	x->pending_at = 0;
	if (x->was_name != n->name_buf)
		free(x->was_name);
	x->was_parent = n->parent;
	x->was_name = n->name;
	n->name = NULL;
	n->parent = NULL;
}

void node_detach(struct node_table *t, struct node *dir, const char *name,
		 const struct dsfs_attr *gone)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = node_find_child(t, dir, name);
	if (n) {
		if (n->x)
			n->x->pending_at = 0;
		keep_gone(n, gone);
		/* No longer waiting, and kept nothing: x may be empty. */
		node_extra_trim(n);
		name_unhash(t, n);
		free_name(n);
		n->parent = NULL;
		dir->refs--;
		maybe_free(t, dir);
		maybe_free(t, n);
	}
	pthread_mutex_unlock(&t->lock);
}

int node_move(struct node_table *t, struct node *from, const char *fname,
	      struct node *to, const char *tname, const struct dsfs_attr *gone)
{
	struct node_extra *spare = calloc(1, sizeof(*spare));
	char *copy = strdup(tname);
	struct node *n, *old;

	/* Everything a replaced node keeps is allocated first, so that the
	 * move cannot fail half done. */
	if (!copy || !spare) {
		free(copy);
		free(spare);
		return -ENOMEM;
	}
	pthread_mutex_lock(&t->lock);
	old = node_find_child(t, to, tname);
	n = node_find_child(t, from, fname);
	if (old && old != n) {
		if (!old->x) {
			old->x = spare;
			spare = NULL;
		}
		/* Writers sent to the name by node_writer_open() will find
		 * the node moved there instead. */
		if (n && old->x->pending_at && node_extra_get(n))
			n->x->pending_at = old->x->pending_at;
		node_retire_locked(t, old, gone);
		maybe_free(t, old);
	}
	if (n && n != old) {
		name_unhash(t, n);
		free_name(n);
		n->name = copy;
		copy = NULL;
		/* Freeing old above cannot have freed `to`: the caller holds
		 * a reference on it (node_get), which clang-analyzer cannot
		 * see from here. */
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		to->refs++;
		n->parent = to;
		/* It was just taken out: its slot is free, this cannot fail. */
		(void)name_hash(t, n);
		from->refs--;
		maybe_free(t, from);
	}
	pthread_mutex_unlock(&t->lock);
	free(copy);
	free(spare);
	return 0;
}

int node_find_merged(struct node_table *t, const char *key, uint64_t *ino,
		     uint64_t *parent_ino, const char **name)
{
	struct node *dir, *n = NULL;
	const char *p, *slash;
	char part[256];
	int rc = -ENOENT;

	pthread_mutex_lock(&t->lock);
	/* The merged tree roots are the root's first children. */
	p = strchr(key, '/');
	if (!p)
		goto out;
	dir = node_find_child(t, find_ino(t, ROOT_INO),
			      strncmp(key, "images/", 7) == 0 ? "images" :
								"kv");
	for (p++; dir; p = slash + 1) {
		size_t len;

		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len >= sizeof(part))
			break;
		memcpy(part, p, len);
		part[len] = '\0';
		n = node_find_child(t, dir, part);
		if (!slash) {
			*ino = n ? n->ino : 0;
			*parent_ino = dir->ino;
			*name = p;
			rc = 0;
			break;
		}
		dir = n;
	}
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

struct each_item {
	uint64_t ino;
	uint64_t parent;
	char *name;
};

int nodes_each(struct node_table *t,
	       void (*fn)(void *ctx, uint64_t ino, uint64_t parent,
			  const char *name),
	       void *ctx)
{
	struct each_item *items;
	struct node *n;
	size_t i, pos = 0, count = 0;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	items = calloc(t->count + 1, sizeof(*items));
	if (!items) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	while ((n = ptab_next(&t->by_ino, &pos)) != NULL) {
		if (!n->parent || !n->name || n->permanent)
			continue;
		items[count].ino = n->ino;
		items[count].parent = n->parent->ino;
		items[count].name = strdup(n->name);
		if (!items[count].name) {
			rc = -ENOMEM;
			break;
		}
		count++;
	}
	pthread_mutex_unlock(&t->lock);
	for (i = 0; i < count; i++) {
		if (rc == 0)
			fn(ctx, items[i].ino, items[i].parent, items[i].name);
		free(items[i].name);
	}
	free(items);
	return rc;
}
