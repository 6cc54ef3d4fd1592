/*
 * reserve.h - the bytes that open files have written but not yet
 * committed, held against their layer's budget (which, for a layer on a
 * disk, is also what the disk can still take) as the writes arrive.
 *
 * A layer checks its budget when a value is committed, which is at close:
 * too late for a shell's builtin echo, whose close error is lost.  So each
 * writer holds a reservation: what committing its copy would add to the
 * layer's usage (the copy's length, plus the name if the layer does not
 * have the entry yet, minus the value it replaces there).  A write that
 * would make the layer's usage plus every reservation exceed the budget
 * fails with -ENOSPC at once, and what one writer holds another cannot
 * take.  A reservation is given back when its handle goes without
 * committing, and replaced by the real usage when it commits (both under
 * the table's lock, so that the bytes are never counted twice nor lost in
 * between).  The layer still checks at the commit, for what could not be
 * known earlier (a directory copied up with the value, a blob shared with
 * another entry).
 *
 * The bookkeeping is the daemon's, over the layers' usage() op: a layer
 * shared by several hosts gets it without a new op.
 */
#ifndef DSFS_RESERVE_H
#define DSFS_RESERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsfs.h"

/* One writer's reservation; all zero (inactive) for a reader. */
struct reservation {
	bool active;
	int layer;	/* where its commit goes */
	uint64_t frees; /* bytes of the value a commit replaces there */
	uint64_t name;	/* name bytes a commit adds (the layer lacks it) */
	uint64_t held;	/* bytes held of the layer's budget now */
};

struct reserve_table {
	/* Taken after a handle's lock and before the stack's. */
	pthread_mutex_t lock;
	uint64_t held[DSFS_NLAYERS]; /* sum of the reservations, per layer */
};

int reserve_init(struct reserve_table *t);
void reserve_destroy(struct reserve_table *t);

/* Start r for a commit to layer that replaces `frees` bytes of value and
 * adds `name` bytes of name. */
void reservation_start(struct reservation *r, int layer, uint64_t frees,
		       uint64_t name);

/* Make r hold what committing a value of len bytes would add.  -ENOSPC,
 * with why[0..size) saying which budget and by how much,
 * if that does not fit beside what is stored and what others hold;
 * r is unchanged then. */
int reserve_grow(struct reserve_table *t, struct dsfs_stack *s,
		 struct reservation *r, uint64_t len, char *why, size_t size);

/* Give back what r holds (a handle closed without committing). */
void reserve_release(struct reserve_table *t, struct reservation *r);

/* Bracket a commit of r's value: reserve_commit_begin() takes the table's
 * lock; reserve_commit_end() gives back what r held (the layer now counts
 * the value itself if committed) and, if committed, makes the len bytes
 * just stored the value a later commit of r replaces; then unlocks. */
void reserve_commit_begin(struct reserve_table *t);
void reserve_commit_end(struct reserve_table *t, struct reservation *r,
			bool committed, uint64_t len);

#endif
