/*
 * inode.c - the node table: inode numbers <-> names in the mount's trees.
 *
 * Two chained hash tables share the nodes: one by inode number, one by
 * (parent, name).  Inode numbers count up from ROOT_INO and are never
 * reused, so the generation is always 0.  The fixed directories (the root,
 * kv/, images/, devices/, ephemeral/, runtime/, factory/ and their kv/,
 * images/, devices/) are made once and never freed.
 *
 * A node does not cache what is stored: the key of a node is rebuilt from
 * its chain of parents on each request, so a rename moves a whole subtree
 * by changing one node's parent and name.
 */
#include "hash.h"
#include "inode.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t hash_ino(uint64_t ino)
{
	return (size_t)(ino * 0x9E3779B97F4A7C15ull >> 17);
}

/* Seeded with the parent's address, which a local user choosing names
 * cannot know in advance. */
static size_t hash_name(const struct node *parent, const char *name)
{
	return (size_t)dsfs_hash_str((uintptr_t)parent, name);
}

static void name_unhash(struct node_table *t, struct node *n)
{
	struct node **pp;

	if (!n->parent || !n->name)
		return;
	pp = &t->by_name[hash_name(n->parent, n->name) & (t->nbuckets - 1)];
	for (; *pp; pp = &(*pp)->name_next) {
		if (*pp == n) {
			*pp = n->name_next;
			n->name_next = NULL;
			return;
		}
	}
}

static void name_hash(struct node_table *t, struct node *n)
{
	size_t b;

	if (!n->parent || !n->name)
		return; /* as in name_unhash(): only named children are found */
	b = hash_name(n->parent, n->name) & (t->nbuckets - 1);
	n->name_next = t->by_name[b];
	t->by_name[b] = n;
}

static void ino_hash(struct node_table *t, struct node *n)
{
	size_t b = hash_ino(n->ino) & (t->nbuckets - 1);

	n->ino_next = t->by_ino[b];
	t->by_ino[b] = n;
}

static void ino_unhash(struct node_table *t, struct node *n)
{
	struct node **pp = &t->by_ino[hash_ino(n->ino) & (t->nbuckets - 1)];

	for (; *pp; pp = &(*pp)->ino_next) {
		if (*pp == n) {
			*pp = n->ino_next;
			return;
		}
	}
}

/* Double both tables when they hold more nodes than buckets, so chains stay
 * short however many names the kernel keeps. */
static void maybe_grow(struct node_table *t)
{
	struct node **by_ino, **by_name, *n, *next;
	size_t i, old = t->nbuckets;

	if (t->count < old)
		return;
	by_ino = calloc(old * 2, sizeof(*by_ino));
	by_name = calloc(old * 2, sizeof(*by_name));
	if (!by_ino || !by_name) {
		free(by_ino);
		free(by_name);
		return; /* keep the old tables: slower, still correct */
	}
	for (i = 0; i < old; i++) {
		for (n = t->by_ino[i]; n; n = next) {
			next = n->ino_next;
			n->ino_next = by_ino[hash_ino(n->ino) & (old * 2 - 1)];
			by_ino[hash_ino(n->ino) & (old * 2 - 1)] = n;
		}
		for (n = t->by_name[i]; n; n = next) {
			size_t b = hash_name(n->parent, n->name) &
				   (old * 2 - 1);

			next = n->name_next;
			n->name_next = by_name[b];
			by_name[b] = n;
		}
	}
	free(t->by_ino);
	free(t->by_name);
	t->by_ino = by_ino;
	t->by_name = by_name;
	t->nbuckets = old * 2;
}

static struct node *node_new(struct node_table *t, struct node *parent,
			     const char *name)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	if (name) {
		n->name = strdup(name);
		if (!n->name) {
			free(n);
			return NULL;
		}
	}
	n->ino = t->next_ino++;
	n->parent = parent;
	if (parent) {
		parent->refs++;
		n->view = parent->view;
		n->layer = parent->layer;
		n->tree = parent->tree;
		n->limit = parent->limit;
		name_hash(t, n);
	}
	ino_hash(t, n);
	t->count++;
	maybe_grow(t);
	return n;
}

/* Free n if nothing holds it any more, then its parent likewise. */
static void maybe_free(struct node_table *t, struct node *n)
{
	/* A node waiting for writers (pending_at) stays: a FORGET of the
	 * revalidating LOOKUP may come before the writer's own LOOKUP. */
	while (n && !n->permanent && n->nlookup == 0 && n->refs == 0 &&
	       !n->pending_at) {
		struct node *parent = n->parent ? n->parent : n->was_parent;

		name_unhash(t, n);
		ino_unhash(t, n);
		t->count--;
		free(n->gone);
		free(n->was_name);
		free(n->name);
		free(n);
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
	t->nbuckets = 1024;
	t->next_ino = ROOT_INO;
	t->by_ino = calloc(t->nbuckets, sizeof(*t->by_ino));
	t->by_name = calloc(t->nbuckets, sizeof(*t->by_name));
	if (!t->by_ino || !t->by_name) {
		rc = -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&t->lock, NULL);
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
	pthread_mutex_destroy(&t->lock);
fail:
	free(t->by_ino);
	free(t->by_name);
	return rc;
}

void nodes_destroy(struct node_table *t)
{
	struct node *n, *next;
	size_t i;

	for (i = 0; i < t->nbuckets; i++) {
		for (n = t->by_ino[i]; n; n = next) {
			next = n->ino_next;
			free(n->gone);
			free(n->was_name);
			free(n->name);
			free(n);
		}
	}
	free(t->by_ino);
	free(t->by_name);
	t->by_ino = t->by_name = NULL;
	pthread_mutex_destroy(&t->lock);
}

static struct node *find_ino(struct node_table *t, uint64_t ino)
{
	struct node *n = t->by_ino[hash_ino(ino) & (t->nbuckets - 1)];

	while (n && n->ino != ino)
		n = n->ino_next;
	return n;
}

static struct node *find_child(struct node_table *t, struct node *dir,
			       const char *name)
{
	struct node *n = t->by_name[hash_name(dir, name) & (t->nbuckets - 1)];

	while (n && !(n->parent == dir && strcmp(n->name, name) == 0))
		n = n->name_next;
	return n;
}

struct node *node_get(struct node_table *t, uint64_t ino)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n)
		n->refs++;
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

/* The child `name` of dir, found or made, with one more kernel lookup
 * counted; called with the lock held. */
static struct node *link_locked(struct node_table *t, struct node *dir,
				const char *name)
{
	struct node *n = find_child(t, dir, name);

	if (!n)
		n = node_new(t, dir, name);
	if (n)
		n->nlookup++;
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
		n->limit = limit;
		if (n->writers > 0)
			n->attrs_sent_writing = true;
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
		n->special = special;
		n->is_dir = special == NODE_BY_TOKEN_DIR;
	}
	pthread_mutex_unlock(&t->lock);
	return n;
}

void node_cache_done(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	n->cache_readers--;
	/* What the readers read is no longer needed while n has its name;
	 * once detached, it is what fstat answers. */
	if (n->cache_readers == 0 && n->parent) {
		free(n->gone);
		n->gone = NULL;
	}
	pthread_mutex_unlock(&t->lock);
}

void node_writers(struct node_table *t, struct node *n, int delta)
{
	pthread_mutex_lock(&t->lock);
	n->writers = (unsigned)((int)n->writers + delta);
	if (n->writers == 0) {
		n->times_set = false;
		n->attrs_sent_writing = false;
	}
	pthread_mutex_unlock(&t->lock);
}

void node_attrs_sent(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	if (n->writers > 0)
		n->attrs_sent_writing = true;
	pthread_mutex_unlock(&t->lock);
}

bool node_sole_writer_view(struct node_table *t, struct node *n)
{
	bool ok;

	pthread_mutex_lock(&t->lock);
	ok = n->writers == 1 && !n->attrs_sent_writing;
	pthread_mutex_unlock(&t->lock);
	return ok;
}

void node_set_times(struct node_table *t, struct node *n,
		    const struct timespec *atime, const struct timespec *mtime)
{
	pthread_mutex_lock(&t->lock);
	if (n->writers > 0) {
		if (!n->times_set) {
			/* Only one of the two given: the other stays "now". */
			clock_gettime(CLOCK_REALTIME, &n->atime);
			n->mtime = n->atime;
		}
		if (atime)
			n->atime = *atime;
		if (mtime)
			n->mtime = *mtime;
		n->times_set = true;
	}
	pthread_mutex_unlock(&t->lock);
}

void node_take_times(struct node_table *t, struct node *n,
		     struct timespec *atime, struct timespec *mtime)
{
	pthread_mutex_lock(&t->lock);
	if (n->times_set) {
		*atime = n->atime;
		*mtime = n->mtime;
	}
	pthread_mutex_unlock(&t->lock);
}

struct node *node_get_child(struct node_table *t, struct node *dir,
			    const char *name)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_child(t, dir, name);
	if (n)
		n->nlookup++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

bool node_subdirs(struct node_table *t, struct node *n, uint32_t *count,
		  uint64_t *at)
{
	bool kept;

	pthread_mutex_lock(&t->lock);
	kept = n->subdirs_kept;
	*count = n->subdirs;
	*at = n->subdirs_at;
	pthread_mutex_unlock(&t->lock);
	return kept;
}

void node_set_subdirs(struct node_table *t, struct node *n, uint32_t count,
		      uint64_t at)
{
	pthread_mutex_lock(&t->lock);
	/* A listing taken earlier than the one kept says less. */
	if (!n->subdirs_kept || at >= n->subdirs_at) {
		n->subdirs_kept = true;
		n->subdirs = count;
		n->subdirs_at = at;
	}
	pthread_mutex_unlock(&t->lock);
}

int node_gone(struct node_table *t, struct node *n, struct dsfs_attr *a)
{
	int rc = -ESTALE;

	pthread_mutex_lock(&t->lock);
	if (n->gone) {
		*a = *n->gone;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void node_forget(struct node_table *t, uint64_t ino, uint64_t nlookup)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_ino(t, ino);
	if (n) {
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
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
	if (n->was_parent) {
		rc = build_key(n->was_parent, n->was_name, l);
		if (rc == 0)
			l->limit = n->was_parent->limit;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Keep what n was, for fstat() of files still open on it. */
static void keep_gone(struct node *n, const struct dsfs_attr *gone)
{
	if (!gone || n->gone)
		return;
	n->gone = malloc(sizeof(*n->gone));
	if (n->gone)
		*n->gone = *gone;
}

/* n no longer stands for its name, which a lookup gives a new node; n
 * remembers where it was (its reference on its parent moves to
 * was_parent), for an open whose path walk raced with this.  Called with
 * the lock held, on an attached node. */
static void retire_locked(struct node_table *t, struct node *n,
			  const struct dsfs_attr *gone)
{
	keep_gone(n, gone);
	name_unhash(t, n);
	/* Writers sent to the name find its next node: n waits for none
	 * (and may be freed). */
	n->pending_at = 0;
	free(n->was_name);
	n->was_parent = n->parent;
	n->was_name = n->name;
	n->name = NULL;
	n->parent = NULL;
}

void node_detach(struct node_table *t, struct node *dir, const char *name,
		 const struct dsfs_attr *gone)
{
	struct node *n;

	pthread_mutex_lock(&t->lock);
	n = find_child(t, dir, name);
	if (n) {
		n->pending_at = 0;
		keep_gone(n, gone);
		name_unhash(t, n);
		free(n->name);
		n->name = NULL;
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
	struct node *n, *old;
	char *copy = strdup(tname);

	if (!copy)
		return -ENOMEM;
	pthread_mutex_lock(&t->lock);
	old = find_child(t, to, tname);
	n = find_child(t, from, fname);
	if (old && old != n) {
		/* Writers sent to the name by node_writer_open() will find
		 * the node moved there instead. */
		if (n && old->pending_at)
			n->pending_at = old->pending_at;
		retire_locked(t, old, gone);
		maybe_free(t, old);
	}
	if (n && n != old) {
		name_unhash(t, n);
		free(n->name);
		n->name = copy;
		copy = NULL;
		/* Freeing old above cannot have freed `to`: the caller holds
		 * a reference on it (node_get), which clang-analyzer cannot
		 * see from here. */
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		to->refs++;
		n->parent = to;
		name_hash(t, n);
		from->refs--;
		maybe_free(t, from);
	}
	pthread_mutex_unlock(&t->lock);
	free(copy);
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
	dir = find_child(t, find_ino(t, ROOT_INO),
			 strncmp(key, "images/", 7) == 0 ? "images" : "kv");
	for (p++; dir; p = slash + 1) {
		size_t len;

		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len >= sizeof(part))
			break;
		memcpy(part, p, len);
		part[len] = '\0';
		n = find_child(t, dir, part);
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

/* Whether writers sent to n may still be on their way (ticks compared
 * by difference, so the clock may wrap). */
static bool pending(const struct node *n, uint16_t now)
{
	return n->pending_at &&
	       (uint16_t)(now - n->pending_at) < NODE_PENDING_TICKS;
}

int node_cache_reader_open(struct node_table *t, struct node *n,
			   const struct dsfs_attr *a, int layer, uint16_t now,
			   bool *dropped)
{
	bool same;
	int how = NODE_CACHE_BYPASS;

	*dropped = false;
	pthread_mutex_lock(&t->lock);
	if (n->pending_at && !pending(n, now))
		n->pending_at = 0; /* freed by the caller's node_put() */
	same = n->cached_version == a->version && n->cached_layer == layer;
	if (n->writers > 0 || pending(n, now) || !n->parent)
		goto out;
	if (n->cache_readers > 0) {
		if (same) {
			n->cache_readers++;
			how = NODE_CACHE_KEEP;
		} else {
			/* Its readers keep the version they read. */
			retire_locked(t, n, NULL);
			how = NODE_CACHE_RETIRED;
		}
		goto out;
	}
	/* The first page-cache reader: what it reads is kept for a
	 * retirement (node_cache_done() frees it). */
	free(n->gone);
	n->gone = malloc(sizeof(*n->gone));
	if (!n->gone)
		goto out;
	*n->gone = *a;
	/* Pages are only ever filled by page-cache readers: those of
	 * another version can be there only if one read it. */
	*dropped = !same && n->cached_version != 0;
	how = same ? NODE_CACHE_KEEP : NODE_CACHE_FRESH;
	n->cached_version = a->version;
	n->cached_layer = layer;
	n->cache_readers = 1;
out:
	pthread_mutex_unlock(&t->lock);
	return how;
}

int node_writer_open(struct node_table *t, struct node *n, uint16_t now)
{
	struct node *next;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	if (n->pending_at && !pending(n, now))
		n->pending_at = 0;
	if (n->cache_readers == 0) {
		n->writers++;
		goto out;
	}
	if (n->parent)
		retire_locked(t, n, NULL);
	/* The node the kernel's new walk will find: readers that find it
	 * before this writer opens it do not fill its page cache, or the
	 * writer's second open would meet them too. */
	if (n->was_parent && n->was_name) {
		next = find_child(t, n->was_parent, n->was_name);
		/* Moved there by a rename and read already: retired too (the
		 * caller's notice drops the same name). */
		if (next && next->cache_readers > 0) {
			retire_locked(t, next, NULL);
			next = NULL;
		}
		if (!next)
			next = node_new(t, n->was_parent, n->was_name);
		if (next)
			next->pending_at = now ? now : 1;
	}
	rc = -ESTALE;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

bool node_cache_seen(struct node_table *t, struct node *n, uint64_t version,
		     int layer)
{
	bool retire;

	pthread_mutex_lock(&t->lock);
	retire = n->cache_readers > 0 && n->parent &&
		 (n->cached_version != version || n->cached_layer != layer);
	if (retire)
		retire_locked(t, n, NULL);
	pthread_mutex_unlock(&t->lock);
	return retire;
}

bool node_retire_cached(struct node_table *t, struct node *n)
{
	bool retire;

	pthread_mutex_lock(&t->lock);
	retire = n->cache_readers > 0 && n->parent;
	if (retire)
		retire_locked(t, n, NULL);
	pthread_mutex_unlock(&t->lock);
	return retire;
}

int node_retired_name(struct node_table *t, struct node *n, uint64_t *parent,
		      char *buf, size_t size)
{
	int rc = -ESTALE;

	pthread_mutex_lock(&t->lock);
	if (n->was_parent && n->was_name &&
	    (size_t)snprintf(buf, size, "%s", n->was_name) < size) {
		*parent = n->was_parent->ino;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void nodes_forget_cache(struct node_table *t)
{
	struct node *n;
	size_t i;

	pthread_mutex_lock(&t->lock);
	for (i = 0; i < t->nbuckets; i++)
		for (n = t->by_ino[i]; n; n = n->ino_next)
			n->cached_layer = -1;
	pthread_mutex_unlock(&t->lock);
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
	size_t i, count = 0;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	items = calloc(t->count + 1, sizeof(*items));
	if (!items) {
		pthread_mutex_unlock(&t->lock);
		return -ENOMEM;
	}
	for (i = 0; i < t->nbuckets; i++) {
		for (n = t->by_ino[i]; n; n = n->ino_next) {
			if (!n->parent || !n->name || n->permanent)
				continue;
			items[count].ino = n->ino;
			items[count].parent = n->parent->ino;
			items[count].name = strdup(n->name);
			if (!items[count].name) {
				rc = -ENOMEM;
				goto unlock;
			}
			count++;
		}
	}
unlock:
	pthread_mutex_unlock(&t->lock);
	for (i = 0; i < count; i++) {
		if (rc == 0)
			fn(ctx, items[i].ino, items[i].parent, items[i].name);
		free(items[i].name);
	}
	free(items);
	return rc;
}
