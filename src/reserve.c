/*
 * reserve.c - writers' reservations against their layer's budget (reserve.h
 * says why and what a reservation counts).
 *
 * One table per daemon, in its context.  Growing a reservation reads the
 * layer's usage through the overlay (the usage() op every layer has) under
 * the table's lock, so two writers racing for the last bytes are decided
 * one after the other: the second sees what the first holds.
 *
 * The disk under the store is the layer's to know: its usage() reports as
 * budget no more than small changes could still add there, and its room()
 * answers for one large commit (layer.h), which the writers' holds make.
 */
#include "reserve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"

int reserve_init(struct reserve_table *t)
{
	memset(t, 0, sizeof(*t));
	return pthread_mutex_init(&t->lock, NULL) != 0 ? -ENOMEM : 0;
}

void reserve_destroy(struct reserve_table *t)
{
	pthread_mutex_destroy(&t->lock);
}

void reservation_start(struct reservation *r, int layer, uint64_t frees,
		       uint64_t name)
{
	memset(r, 0, sizeof(*r));
	r->active = true;
	r->layer = layer;
	r->frees = frees;
	r->name = name;
}

int reserve_grow(struct reserve_table *t, struct dsfs_stack *s,
		 struct reservation *r, uint64_t len, char *why, size_t size)
{
	uint64_t need, extra, used, budget, others, total;
	int rc;

	if (!r->active)
		return 0;
	need = len + r->name > r->frees ? len + r->name - r->frees : 0;
	if (need <= r->held)
		return 0;
	extra = need - r->held;
	pthread_mutex_lock(&t->lock);
	rc = ovl_usage(s, r->layer, &used, &budget);
	if (rc) {
		snprintf(why, size, "cannot read the %s layer's usage: %s",
			 layer_name(r->layer), strerror(-rc));
		goto out;
	}
	others = t->held[r->layer] - r->held;
	if (!layer_fits(used, budget, t->held[r->layer] + extra, 0)) {
		snprintf(why, size,
			 "the %s layer's budget of %llu bytes is full: %llu "
			 "stored, %llu held by other open files, and this "
			 "value needs %llu more",
			 layer_name(r->layer), (unsigned long long)budget,
			 (unsigned long long)used, (unsigned long long)others,
			 (unsigned long long)need);
		rc = -ENOSPC;
		goto out;
	}
	total = t->held[r->layer] + extra;
	rc = ovl_room(s, r->layer, total);
	if (rc) {
		snprintf(why, size,
			 "the storage under the %s layer cannot take %llu more "
			 "bytes of values in one commit (%llu of them held by "
			 "other open files): %s",
			 layer_name(r->layer), (unsigned long long)total,
			 (unsigned long long)others, strerror(-rc));
		goto out;
	}
	t->held[r->layer] += extra;
	r->held = need;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void reserve_release(struct reserve_table *t, struct reservation *r)
{
	if (!r->active || !r->held)
		return;
	pthread_mutex_lock(&t->lock);
	t->held[r->layer] -= r->held;
	r->held = 0;
	pthread_mutex_unlock(&t->lock);
}

void reserve_commit_begin(struct reserve_table *t)
{
	pthread_mutex_lock(&t->lock);
}

void reserve_commit_end(struct reserve_table *t, struct reservation *r,
			bool committed, uint64_t len)
{
	if (r->active) {
		t->held[r->layer] -= r->held;
		r->held = 0;
		if (committed) {
			r->frees = len;
			r->name = 0;
		}
	}
	pthread_mutex_unlock(&t->lock);
}
