/*
 * reserve.c - writers' reservations against their layer's budget and the
 * disk under the store (reserve.h says why and what a reservation counts).
 *
 * One table per daemon, in its context.  Growing a reservation reads the
 * layer's usage through the overlay (the usage() op every layer has) under
 * the table's lock, so two writers racing for the last bytes are decided
 * one after the other: the second sees what the first holds.
 *
 * The disk: a commit to the runtime layer writes the value to SQLite's
 * write-ahead log and later copies it into the database file, so the file
 * system under the store needs about twice what is being written, plus a
 * few pages of slack.  Where the runtime layer lives on that file system
 * (disk_dir set), a write whose reservation would not leave that much free
 * (statvfs f_bavail) fails with -ENOSPC too.  It is an estimate made
 * early; the commit still finds out for sure.
 */
#include "reserve.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "daemon.h"

/* Pages SQLite writes besides the value itself: the b-tree's, the WAL's
 * headers, the usage record. */
#define DISK_SLACK (256u * 1024u)

int reserve_init(struct reserve_table *t, const char *disk_dir)
{
	memset(t, 0, sizeof(*t));
	if (disk_dir) {
		t->disk_dir = strdup(disk_dir);
		if (!t->disk_dir)
			return -ENOMEM;
	}
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t->disk_dir);
		t->disk_dir = NULL;
		return -ENOMEM;
	}
	return 0;
}

void reserve_destroy(struct reserve_table *t)
{
	pthread_mutex_destroy(&t->lock);
	free(t->disk_dir);
	t->disk_dir = NULL;
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

/* Is there room on the disk under the runtime layer for `bytes` more of
 * values in flight?  Called with t->lock held. */
static int disk_room(struct reserve_table *t, uint64_t bytes, char *why,
		     size_t size)
{
	struct statvfs sv;
	uint64_t avail, need;

	if (!t->disk_dir || statvfs(t->disk_dir, &sv) != 0)
		return 0; /* unknown: the commit will tell */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	need = 2 * bytes + DISK_SLACK;
	if (avail >= need)
		return 0;
	snprintf(why, size,
		 "the disk under %s has %llu bytes free; committing the "
		 "values being written (%llu bytes) needs about %llu",
		 t->disk_dir, (unsigned long long)avail,
		 (unsigned long long)bytes, (unsigned long long)need);
	return -ENOSPC;
}

int reserve_grow(struct reserve_table *t, struct dsfs_stack *s,
		 struct reservation *r, uint64_t len, char *why, size_t size)
{
	uint64_t need, extra, used, budget, others;
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
	if (r->layer == L_RUNTIME) {
		rc = disk_room(t, t->held[r->layer] + extra, why, size);
		if (rc)
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
