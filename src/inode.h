/*
 * inode.h - the node table: the kernel's inode numbers and the names they
 * stand for.
 *
 * A node is one name in one tree of the mount ("kv/app/n" in the merged
 * view, "runtime/kv/app/n" in the runtime layer's view, ...).  The same
 * stored entry seen through two trees is two nodes, so the kernel never sees
 * a directory with two parents.  Nodes are found by inode number (every
 * request) and by (parent, name) (lookups return the inode the kernel already
 * knows).  A node lives while the kernel holds lookups on it or something
 * holds a reference: a child, an open handle, a request in flight.
 */
#ifndef DSFS_INODE_H
#define DSFS_INODE_H

#include "dsfs.h"

struct node {
	uint64_t ino;
	uint64_t nlookup; /* lookups replied to the kernel, not yet forgotten */
	uint32_t refs;    /* children, handles, requests in flight */
	struct node *parent; /* holds a reference; NULL when detached */
	char *name;          /* owned; NULL for the root and detached nodes */
	enum dsfs_view view;
	int layer; /* VIEW_LAYER */
	enum dsfs_tree tree;
	bool is_dir;
	bool is_tree_root; /* kv, images, devices of some view */
	bool permanent;    /* the root and the fixed directories */
	/* images/.by-token/ and the blobs in it, outside every layer. */
	enum { NODE_PLAIN, NODE_BY_TOKEN_DIR, NODE_BY_TOKEN } special;
	int limit;         /* a merged dir: the limit its children inherit */
	struct node *ino_next;
	struct node *name_next;
};

/* All fields are guarded by lock, except the immutable ino, view, layer,
 * tree, is_tree_root and permanent. */
struct node_table {
	pthread_mutex_t lock;
	struct node **by_ino;
	struct node **by_name;
	size_t nbuckets; /* same for both tables; a power of two */
	size_t count;
	uint64_t next_ino;
};

#define ROOT_INO 1

int nodes_init(struct node_table *t);
void nodes_destroy(struct node_table *t);

/* Take a reference on the node with this inode number; NULL if unknown. */
struct node *node_get(struct node_table *t, uint64_t ino);
void node_put(struct node_table *t, struct node *n);

/* The child `name` of dir: the existing node or a new one, with one more
 * kernel lookup counted.  NULL when out of memory. */
struct node *node_link(struct node_table *t, struct node *dir,
		       const char *name, bool is_dir, int limit);
/* The special child of dir (.by-token and the tokens in it): found or
 * made, with one more kernel lookup counted. */
struct node *node_link_special(struct node_table *t, struct node *dir,
			       const char *name, int special);

/* The existing child `name` of dir, with one more kernel lookup counted;
 * NULL if the table has none (for the fixed directories). */
struct node *node_get_child(struct node_table *t, struct node *dir,
			    const char *name);
void node_forget(struct node_table *t, uint64_t ino, uint64_t nlookup);

/* Where an operation on n applies (loc for the node itself), and on the
 * child `name` of the directory dir. */
int node_loc(struct node_table *t, struct node *n, struct loc *l);
int node_child_loc(struct node_table *t, struct node *dir, const char *name,
		   struct loc *l);

/* The child of dir named name is gone (unlink, rmdir, replaced by rename):
 * later lookups make a new node. */
void node_detach(struct node_table *t, struct node *dir, const char *name);
/* Rename: the node at (from, fname) is now (to, tname). */
int node_move(struct node_table *t, struct node *from, const char *fname,
	      struct node *to, const char *tname);

/* The merged-view node for a key, if the kernel knows it (for cache
 * invalidation); returns its inode and its parent's, with the last name in
 * *name (a pointer into key).  0 if found, -ENOENT otherwise. */
int node_find_merged(struct node_table *t, const char *key, uint64_t *ino,
		     uint64_t *parent_ino, const char **name);

/* Every node except the root: calls fn(ctx, ino, parent_ino, name) with
 * the table unlocked, on a copy taken under the lock. */
int nodes_each(struct node_table *t,
	       void (*fn)(void *ctx, uint64_t ino, uint64_t parent,
			  const char *name),
	       void *ctx);

#endif
