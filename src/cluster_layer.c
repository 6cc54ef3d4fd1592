/*
 * cluster_layer.c - the runtime layer of a shared store, as the overlay
 * sees it: the real layer (PostgreSQL), plus a word to the other hosts
 * after every change that succeeded (cluster_publish()).
 *
 * The overlay, control.c's factory reset and the admin commands served by
 * the daemon all change the runtime layer through its ops, so observing
 * the layer (layer_observe()) is what makes every one of their commits
 * reach the other hosts, and neither the overlay nor the layer needs to
 * know of the others.  A change is published after it returned from the
 * layer, that is after its transaction committed: a host told of it
 * reads it.  A commit tells its new version; the other changes tell 0
 * (they return none, and asking would cost a round trip per change).  A
 * rename tells both of its keys, clear() everything.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cluster.h"
#include "layer.h"

static void publish(void *arg, struct dsfs_layer *inner,
		    const struct layer_event *ev)
{
	struct dsfs_cluster *c = arg;

	(void)inner;
	/* The other hosts cannot see that name yet: they are told when the
	 * store has it (a commit, or a settle). */
	if (ev->noted)
		return;
	if (ev->from)
		cluster_publish(c, ev->from, 0);
	cluster_publish(c, ev->key, ev->version);
}

static void close_cluster(void *arg)
{
	cluster_close(arg);
}

int cluster_layer_wrap(struct dsfs_cluster *c, struct dsfs_layer *inner,
		       struct dsfs_layer **out)
{
	struct layer_observer o = {.changed = publish, .arg = c};

	return layer_observe(inner, &o, out);
}

int cluster_layer_wrap_own(struct dsfs_cluster *c, struct dsfs_layer *inner,
			   struct dsfs_layer **out)
{
	struct layer_observer o = {
		.changed = publish, .done = close_cluster, .arg = c};

	return layer_observe(inner, &o, out);
}

struct dsfs_layer *cluster_layer_unwrap(struct dsfs_layer *l)
{
	return layer_unobserve(l);
}
