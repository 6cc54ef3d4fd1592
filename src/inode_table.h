/*
 * inode_table.h - what the files of the node table share below inode.h:
 * inode.c keeps the table, inode_cache.c the page-cache identities of its
 * nodes.  Every function here is called with the table's lock held.
 */
#ifndef DSFS_INODE_TABLE_H
#define DSFS_INODE_TABLE_H

#include "inode.h"

/* The node's extra state, made if it has none; NULL when out of memory. */
struct node_extra *node_extra_get(struct node *n);
/* Free n's extra state if it holds nothing any more.  Called where a
 * count or mark of it drops, at the end of the operation: a caller must
 * not use an extra it took before the call (n->x) after it. */
void node_extra_trim(struct node *n);
/* A new node `name` in parent (NULL for none); NULL when out of memory. */
struct node *node_new(struct node_table *t, struct node *parent,
		      const char *name);
/* The named child of dir, or NULL. */
struct node *node_find_child(struct node_table *t, struct node *dir,
			     const char *name);
/* n no longer stands for its name, which a lookup gives a new node; n
 * remembers where it was (its reference on its parent moves to
 * was_parent), for an open whose path walk raced with this, and keeps
 * gone (if not NULL and it keeps nothing yet) for fstat.  n is attached
 * and has its extra state. */
void node_retire_locked(struct node_table *t, struct node *n,
			const struct dsfs_attr *gone);
/* n was asked for (inode_evict.c's clock passes it over once). */
void node_used(struct node_table *t, struct node *n);

#endif
