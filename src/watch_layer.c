/*
 * watch_layer.c - the ephemeral and runtime layers as the daemon uses
 * them while it runs: observed (layer_observe()), so that every change
 * that committed is offered to the watch hub (watch.c).
 *
 * Like cluster_layer.c, it observes the layer rather than the overlay:
 * the overlay, dsfsctl's commands served by the daemon (set, load,
 * factory-reset) and anything to come change the layers through their
 * ops, so every committed change passes here, and nothing else needs to
 * know about watchers.  With nobody watching an event costs one branch
 * (watch_wanted()).  With watchers, the changes that return no version
 * (all but a commit) have theirs looked up, still under the caller's
 * stack lock, so that the line tells the version a reader will see.
 */
#include <errno.h>
#include <stdlib.h>

#include "daemon.h"
#include "watch.h"

/* What an observer of layer index (L_*) knows. */
struct watched {
	struct dsfs_ctx *ctx;
	int index;
};

static void offer(void *arg, struct dsfs_layer *inner,
		  const struct layer_event *ev)
{
	struct watched *w = arg;
	struct watch_change c = {.key = ev->key,
				 .from = ev->from,
				 .layer = w->index,
				 .op = watch_op_name(ev->op),
				 .version = ev->version};
	struct dsfs_attr a;
	bool found;

	if (!watch_wanted(w->ctx) || !c.op)
		return;
	found = ev->key && ev->op != LAYER_EV_REMOVE && !c.version &&
		layer_lookup(inner, ev->key, &a) == 0;
	if (found)
		c.version = a.version;
	/* A directory's times change whenever a name in it does
	 * (dirtimes.c), which is a line of its own already: its setattr is
	 * told only when it changes the mode or the owner. */
	if (found && ev->op == LAYER_EV_SETATTR && a.kind == DSFS_DIR &&
	    !(ev->mask & (DSFS_SET_MODE | DSFS_SET_UID | DSFS_SET_GID)))
		return;
	watch_offer(w->ctx, &c);
}

static void forget(void *arg)
{
	free(arg);
}

int watch_layer_wrap(struct dsfs_ctx *ctx, int index, struct dsfs_layer *inner,
		     struct dsfs_layer **out)
{
	struct watched *w = calloc(1, sizeof(*w));
	struct layer_observer o = {.changed = offer, .done = forget, .arg = w};
	int rc;

	if (!w)
		return -ENOMEM;
	w->ctx = ctx;
	w->index = index;
	rc = layer_observe(inner, &o, out);
	if (rc)
		free(w);
	return rc;
}

struct dsfs_layer *watch_layer_inner(struct dsfs_layer *l)
{
	struct dsfs_layer *inner = layer_observed(l, offer);

	return inner ? inner : l;
}

/* Before the hub goes: l is the layer under the wrapper from now on
 * (forget() frees what the observer knew). */
struct dsfs_layer *watch_layer_unwrap(struct dsfs_layer *l)
{
	return layer_observed(l, offer) ? layer_unobserve(l) : l;
}
