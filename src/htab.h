/*
 * htab.h - the intrusive chained hash table of the in-memory indexes: the
 * memory layer's entries and blobs, the SQLite layer's pinned tokens.
 *
 * A node is embedded in what it indexes, and its key (any bytes, not
 * necessarily NUL-terminated) is owned by that containing struct and must
 * stay put while the node is in a table.  Keys are hashed with
 * dsfs_hash() (hash.h) from the table's seed.  The table has a power of
 * two of buckets, at least HTAB_MIN; it doubles when it holds as many
 * nodes as buckets and halves, lazily, below an eighth of that.  A table
 * that cannot allocate to resize keeps working with longer chains, so
 * adding and deleting never fail: a caller can allocate everything a
 * change needs first and then apply it without a failure path.
 *
 * No locking: the owner of a table serialises its use.
 */
#ifndef DSFS_HTAB_H
#define DSFS_HTAB_H

#include <stddef.h>
#include <stdint.h>

#define HTAB_MIN 16 /* buckets; a power of two */

struct htab_node {
	struct htab_node *next; /* next in the same bucket */
	uint64_t hash;
	const char *key; /* owned by the containing struct */
	size_t keylen;
};

struct htab {
	struct htab_node **b; /* nb buckets */
	size_t nb;
	size_t n; /* nodes stored */
	uint64_t seed;
};

/* An empty table with HTAB_MIN buckets; 0 or -ENOMEM. */
int htab_init(struct htab *t, uint64_t seed);

/* Free the buckets; the nodes are the owner's (drain them first). */
void htab_free(struct htab *t);

/* The node whose key is the len bytes at key, or NULL. */
struct htab_node *htab_find(const struct htab *t, const char *key, size_t len);

/* Index n under the len bytes at key, which must not be in t already and
 * must stay valid while n is in t.  Never fails. */
void htab_add(struct htab *t, struct htab_node *n, const char *key, size_t len);

/* Take n, which is in t, out of it.  Never fails. */
void htab_del(struct htab *t, struct htab_node *n);

/* Walk every node: htab_next(t, NULL) is the first, htab_next(t, n) the
 * one after n, in no set order, NULL after the last.  The table must not
 * change during the walk. */
struct htab_node *htab_next(const struct htab *t, const struct htab_node *n);

/* Empty t and then call fn(n, ctx) once for every node it held, each
 * already out of the table: fn may free the node or htab_add() it back. */
void htab_drain(struct htab *t, void (*fn)(struct htab_node *n, void *ctx),
		void *ctx);

#endif
