/*
 * inode_evict.c - the bound on the node table: which names the kernel is
 * asked to forget when the table holds more nodes than its bound.
 *
 * The kernel keeps an inode, and dsfs its node, for every name it has
 * looked up, until memory runs short on the machine: a walk of a million
 * values leaves a million nodes.  Past the bound (-o inode_cache), the
 * daemon's eviction thread (evict.c) takes names from here and drops the
 * kernel's entries for them; the kernel then forgets the inodes nobody
 * holds, and those FORGETs free the nodes.  The names are picked by a
 * clock: a node asked for since the hand last passed it (node->used) is
 * passed over once, so what is in use stays and what was used once goes
 * first.  Only plain files that nothing of ours holds are picked: no
 * handle, request in flight or page-cache reader, no writer on its way;
 * a directory may be a process's working directory, which must keep its
 * name.
 */
#include "inode.h"
#include "inode_table.h"

#include <errno.h>
#include <stdio.h>
#include <time.h>

/* Slots the hand passes under the lock at a time: other requests wait
 * for the table meanwhile. */
#define EVICT_SCAN 4096

/* Wait this long after a pass that found nothing to give back (every
 * node in use) before trying again. */
#define EVICT_IDLE_NS 200000000L

void node_used(struct node_table *t, struct node *n)
{
	n->used = true;
	if (n->evicted) {
		n->evicted = false;
		t->evicting--;
	}
}

static bool can_give_back(const struct node *n)
{
	const struct node_extra *x = n->x;

	if (n->permanent || n->is_dir || n->evicted || !n->parent || !n->name ||
	    n->special != NODE_PLAIN || n->nlookup == 0 || n->refs > 0)
		return false;
	return !x || (x->cache_readers == 0 && x->writers == 0 &&
		      !x->pending_at && !x->was_parent && !x->snap);
}

void nodes_set_bound(struct node_table *t, size_t bound)
{
	pthread_mutex_lock(&t->lock);
	t->bound = bound;
	pthread_mutex_unlock(&t->lock);
}

bool nodes_over_bound(struct node_table *t)
{
	bool over;

	pthread_mutex_lock(&t->lock);
	over = t->bound && t->count > t->bound;
	pthread_mutex_unlock(&t->lock);
	return over;
}

long nodes_wait_over(struct node_table *t, bool idle)
{
	struct timespec until;
	long over = -1;

	pthread_mutex_lock(&t->lock);
	if (idle && !t->stopping) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += EVICT_IDLE_NS;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		/* New nodes signal `over` meanwhile: each would start a pass
		 * that finds nothing again. */
		while (!t->stopping &&
		       pthread_cond_timedwait(&t->over, &t->lock, &until) !=
			       ETIMEDOUT)
			;
	}
	/* Nodes the kernel was asked to forget are not counted: their
	 * FORGET is on its way, and counting them would pick others. */
	while (!t->stopping && !(t->bound && t->count > t->bound + t->evicting))
		pthread_cond_wait(&t->over, &t->lock);
	if (!t->stopping)
		over = (long)(t->count - t->bound - t->evicting);
	pthread_mutex_unlock(&t->lock);
	return over;
}

void nodes_stop_evict(struct node_table *t)
{
	pthread_mutex_lock(&t->lock);
	t->stopping = true;
	pthread_cond_broadcast(&t->over);
	pthread_mutex_unlock(&t->lock);
}

size_t nodes_pick_unused(struct node_table *t, struct node_name *out,
			 size_t max, bool *none)
{
	size_t got = 0, scanned = 0, from, limit;
	struct node *n;

	*none = true;
	pthread_mutex_lock(&t->lock);
	if (t->stopping) {
		pthread_mutex_unlock(&t->lock);
		return 0;
	}
	/* The table may have shrunk since the last call. */
	if (t->hand > t->by_ino.mask)
		t->hand = 0;
	/* Once round at most: a node passed over is not picked in the same
	 * call. */
	limit = t->by_ino.mask + 1;
	if (limit > EVICT_SCAN)
		limit = EVICT_SCAN;
	while (got < max && scanned < limit) {
		from = t->hand;
		n = ptab_next(&t->by_ino, &t->hand);
		if (!n) {
			scanned += t->by_ino.mask + 1 - from;
			t->hand = 0;
			continue;
		}
		scanned += t->hand - from;
		if (!can_give_back(n))
			continue;
		if (n->used) {
			n->used = false;
			continue;
		}
		if ((size_t)snprintf(out[got].name, sizeof(out[got].name), "%s",
				     n->name) >= sizeof(out[got].name))
			continue;
		out[got].ino = n->ino;
		out[got].parent = n->parent->ino;
		got++;
		/* Not picked again until it is asked for: a name the kernel
		 * cannot forget (an inode held elsewhere) stays, uncounted. */
		n->evicted = true;
		t->evicting++;
	}
	/* Two rounds with nothing picked: every node is in use, or was
	 * asked for again since the round before. */
	t->fruitless = got ? 0 : t->fruitless + scanned;
	*none = t->fruitless >= 2 * (t->by_ino.mask + 1);
	pthread_mutex_unlock(&t->lock);
	return got;
}
