/*
 * ptab.h - a compact open-addressing hash table of pointers, for indexes of
 * many small items (the node table's two indexes): each item costs one
 * pointer-sized slot, with no chain link or bucket of its own.
 *
 * The table keeps nothing but the pointers: each item's hash comes from the
 * hash function the table was made with, and lookups take a hash and a
 * match function.  Linear probing; the table doubles when it would be more
 * than three quarters full and halves, lazily, below an eighth; a removal
 * shifts the items after it back into place, so there are no tombstones.
 * A table that cannot allocate to grow keeps working until it is full, so
 * adding fails (-ENOMEM) only when no slot is left.
 *
 * No locking: the owner of a table serialises its use.
 */
#ifndef DSFS_PTAB_H
#define DSFS_PTAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PTAB_MIN 16 /* slots; a power of two */

struct ptab {
	void **slot;  /* mask + 1 slots, NULL when empty */
	size_t mask;  /* slots - 1 */
	size_t count; /* items stored */
	uint64_t (*hash)(const void *item);
};

/* An empty table of at least `slots` slots (rounded up to a power of two,
 * at least PTAB_MIN) hashing its items with hash; 0 or -ENOMEM. */
int ptab_init(struct ptab *t, size_t slots, uint64_t (*hash)(const void *));

/* Free the slots; the items are the owner's. */
void ptab_free(struct ptab *t);

/* The first item with this hash for which match(item, key) is true, or
 * NULL. */
void *ptab_find(const struct ptab *t, uint64_t hash,
		bool (*match)(const void *item, const void *key),
		const void *key);

/* Add item, which must not be in t: 0, or -ENOMEM if t is full and cannot
 * grow.  The item's hash must not change while it is in t. */
int ptab_add(struct ptab *t, void *item);

/* Take item, which is in t, out of it.  Never fails. */
void ptab_del(struct ptab *t, const void *item);

/* Walk the items: *pos starts at 0; each call returns the next item and
 * advances *pos, or NULL after the last.  The table must not change during
 * the walk. */
void *ptab_next(const struct ptab *t, size_t *pos);

#endif
