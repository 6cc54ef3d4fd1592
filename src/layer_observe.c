/*
 * layer_observe.c - a layer that is another layer, plus a word to an
 * observer after every change that committed (layer.h: layer_observe()).
 *
 * The daemon needs to hear of every change made to a layer whoever makes
 * it: the overlay, the admin commands it serves, a factory reset.  All of
 * them go through the layer's ops, so wrapping the layer is the one place
 * that sees them all, and neither the overlay nor the layer needs to know.
 * Two observers use it: cluster_layer.c, which tells the other hosts of a
 * shared runtime, and the daemon's watch_layer.c, which feeds dsfsctl
 * watch.  An event is told after the layer returned success, that is
 * after its transaction committed (or, for a create the layer leaves
 * uncommitted until the file's close, once the name can be seen: layer.h,
 * create()).  Reads pass through untouched.
 */
#include <errno.h>
#include <stdlib.h>

#include "layer.h"

struct observed {
	struct dsfs_layer base;
	struct dsfs_layer *inner; /* owned */
	struct layer_observer o;
};

static const struct dsfs_layer_ops observed_ops;

static struct observed *obs(struct dsfs_layer *l)
{
	return (struct observed *)l;
}

/* Tell the observer of ev if the change committed (rc 0); returns rc. */
static int tell(struct dsfs_layer *l, int rc, const struct layer_event *ev)
{
	if (rc == 0)
		obs(l)->o.changed(obs(l)->o.arg, obs(l)->inner, ev);
	return rc;
}

static int told(struct dsfs_layer *l, int rc, enum layer_event_op op,
		const char *key)
{
	struct layer_event ev = {.op = op, .key = key};

	return tell(l, rc, &ev);
}

static int o_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a)
{
	return layer_lookup(obs(l)->inner, key, a);
}

static int o_fetch(struct dsfs_layer *l, const char *key, struct dsfs_attr *a,
		   char **data, size_t *len)
{
	return layer_fetch(obs(l)->inner, key, a, data, len);
}

static ssize_t o_read(struct dsfs_layer *l, const char *key, uint64_t off,
		      void *buf, size_t len)
{
	return layer_read(obs(l)->inner, key, off, buf, len);
}

static ssize_t o_read_blob(struct dsfs_layer *l, const char *token,
			   uint64_t off, void *buf, size_t len)
{
	return layer_read_blob(obs(l)->inner, token, off, buf, len);
}

/* A file's value committed: told with the version stored; rc 1, a
 * create() that only noted the name (layer.h), is told as noted. */
static int told_commit(struct dsfs_layer *l, int rc, const char *key,
		       const struct dsfs_attr *stored, struct dsfs_attr *out)
{
	struct layer_event ev = {
		.op = LAYER_EV_COMMIT, .key = key, .noted = rc == 1};

	if (rc < 0)
		return rc;
	if (out)
		*out = *stored;
	ev.version = stored->version;
	tell(l, 0, &ev);
	return rc;
}

static int o_commit(struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *a, const void *data, size_t len,
		    struct dsfs_attr *out)
{
	struct dsfs_attr stored;
	int rc = layer_commit(obs(l)->inner, key, a, data, len, &stored);

	return told_commit(l, rc, key, &stored, out);
}

static int o_create(struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *a, struct dsfs_attr *out)
{
	struct dsfs_attr stored;
	int rc = layer_create(obs(l)->inner, key, a, &stored);

	return told_commit(l, rc, key, &stored, out);
}

static int o_replace(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a, const void *data, size_t len,
		     struct dsfs_attr *out)
{
	struct dsfs_attr stored;
	int rc = layer_replace(obs(l)->inner, key, a, data, len, &stored);

	return told_commit(l, rc, key, &stored, out);
}

static int o_mkdir(struct dsfs_layer *l, const char *key,
		   const struct dsfs_attr *a)
{
	return told(l, layer_mkdir(obs(l)->inner, key, a), LAYER_EV_MKDIR, key);
}

static int o_remove(struct dsfs_layer *l, const char *key)
{
	return told(l, layer_remove(obs(l)->inner, key), LAYER_EV_REMOVE, key);
}

static int o_take_file(struct dsfs_layer *l, const char *key,
		       struct dsfs_attr *out)
{
	return told(l, layer_take_file(obs(l)->inner, key, out),
		    LAYER_EV_REMOVE, key);
}

static int o_whiteout(struct dsfs_layer *l, const char *key)
{
	return told(l, layer_whiteout(obs(l)->inner, key), LAYER_EV_WHITEOUT,
		    key);
}

static int o_setattr(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a, unsigned mask)
{
	struct layer_event ev = {
		.op = LAYER_EV_SETATTR, .key = key, .mask = mask};

	return tell(l, layer_setattr(obs(l)->inner, key, a, mask), &ev);
}

static int o_rename(struct dsfs_layer *l, const char *from, const char *to,
		    unsigned flags)
{
	struct layer_event ev = {
		.op = LAYER_EV_RENAME, .key = to, .from = from};

	return tell(l, layer_rename(obs(l)->inner, from, to, flags), &ev);
}

static int o_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		  void *ctx)
{
	return layer_list(obs(l)->inner, dir, cb, ctx);
}

static int o_list_kinds(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
			void *ctx)
{
	return layer_list_kinds(obs(l)->inner, dir, cb, ctx);
}

static int o_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget)
{
	return layer_usage(obs(l)->inner, used, budget);
}

static int o_sync(struct dsfs_layer *l)
{
	return layer_sync(obs(l)->inner);
}

static int o_clear(struct dsfs_layer *l)
{
	return told(l, layer_clear(obs(l)->inner), LAYER_EV_CLEAR, NULL);
}

static void o_close(struct dsfs_layer *l)
{
	struct layer_observer o = obs(l)->o;

	layer_close(obs(l)->inner);
	free(l);
	if (o.done)
		o.done(o.arg);
}

static int o_stat_blob(struct dsfs_layer *l, const char *token, uint64_t *size)
{
	return layer_stat_blob(obs(l)->inner, token, size);
}

static int o_pin_blob(struct dsfs_layer *l, const char *token)
{
	return layer_pin_blob(obs(l)->inner, token);
}

static int o_unpin_blob(struct dsfs_layer *l, const char *token)
{
	return layer_unpin_blob(obs(l)->inner, token);
}

/* A change set: each change is told, in order, once all committed. */
static int o_apply(struct dsfs_layer *l, const struct layer_change *c, size_t n)
{
	static const enum layer_event_op ops[] = {
		[LAYER_CH_COMMIT] = LAYER_EV_COMMIT,
		[LAYER_CH_MKDIR] = LAYER_EV_MKDIR,
		[LAYER_CH_REMOVE] = LAYER_EV_REMOVE,
		[LAYER_CH_WHITEOUT] = LAYER_EV_WHITEOUT,
	};
	int rc = layer_apply(obs(l)->inner, c, n);
	size_t i;

	for (i = 0; rc == 0 && i < n; i++)
		told(l, rc, ops[c[i].op], c[i].key);
	return rc;
}

/* A snapshot is for reading: it needs no observer of its own. */
static int o_snapshot(struct dsfs_layer *l, struct dsfs_layer **out)
{
	return layer_snapshot(obs(l)->inner, out);
}

/* A name made in the store only now: the other users are told. */
static int o_settle(struct dsfs_layer *l, const char *key)
{
	int rc = layer_settle(obs(l)->inner, key);

	if (rc == 1)
		told(l, 0, LAYER_EV_SETTLE, key);
	return rc;
}

static void o_forget(struct dsfs_layer *l, const char *key)
{
	layer_forget(obs(l)->inner, key);
}

static int o_room(struct dsfs_layer *l, uint64_t bytes)
{
	return layer_room(obs(l)->inner, bytes);
}

static const struct dsfs_layer_ops observed_ops = {
	.version = DSFS_LAYER_OPS_VERSION,
	.lookup = o_lookup,
	.read = o_read,
	.read_blob = o_read_blob,
	.commit = o_commit,
	.mkdir = o_mkdir,
	.remove = o_remove,
	.whiteout = o_whiteout,
	.setattr = o_setattr,
	.rename = o_rename,
	.list = o_list,
	.usage = o_usage,
	.sync = o_sync,
	.clear = o_clear,
	.close = o_close,
	.stat_blob = o_stat_blob,
	.pin_blob = o_pin_blob,
	.unpin_blob = o_unpin_blob,
	.apply = o_apply,
	.create = o_create,
	.room = o_room,
	.snapshot = o_snapshot,
	.replace = o_replace,
	.fetch = o_fetch,
	.list_kinds = o_list_kinds,
	.take_file = o_take_file,
	.settle = o_settle,
	.forget = o_forget,
};

int layer_observe(struct dsfs_layer *inner, const struct layer_observer *o,
		  struct dsfs_layer **out)
{
	struct observed *w = calloc(1, sizeof(*w));

	if (!w)
		return -ENOMEM;
	w->base.ops = &observed_ops;
	w->base.name = inner->name;
	w->base.readonly = layer_readonly(inner);
	w->base.hashes_images = inner->hashes_images;
	w->base.takes_files = inner->takes_files;
	w->inner = inner;
	w->o = *o;
	*out = &w->base;
	return 0;
}

struct dsfs_layer *layer_observed(struct dsfs_layer *l,
				  layer_observer_fn changed)
{
	if (l && l->ops == &observed_ops && obs(l)->o.changed == changed)
		return obs(l)->inner;
	return NULL;
}

struct dsfs_layer *layer_unobserve(struct dsfs_layer *l)
{
	struct layer_observer o = obs(l)->o;
	struct dsfs_layer *inner = obs(l)->inner;

	free(l);
	if (o.done)
		o.done(o.arg);
	return inner;
}
