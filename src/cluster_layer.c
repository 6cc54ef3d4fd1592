/*
 * cluster_layer.c - the runtime layer of a shared store, as the overlay
 * sees it: the real layer (PostgreSQL), plus a word to the other hosts
 * after every change that succeeded (cluster_publish()).
 *
 * The overlay, control.c's factory reset and the admin commands served by
 * the daemon all change the runtime layer through its ops, so wrapping the
 * layer here is what makes every one of their commits reach the other
 * hosts, and neither the overlay nor the layer needs to know of the
 * others.  A change is published after it returned from the layer, that
 * is after its transaction committed: a host told of it reads it.  A
 * commit tells its new version; the other changes tell 0 (they return
 * none, and asking would cost a round trip per change).  clear() tells
 * everything.  Reads pass through untouched.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "cluster.h"
#include "layer.h"

struct published {
	struct dsfs_layer base;
	struct dsfs_layer *inner; /* owned */
	struct dsfs_cluster *c;	  /* outlives the layer, unless owned */
	bool owns_c;		  /* cluster_layer_wrap_own() */
};

static struct published *pub(struct dsfs_layer *l)
{
	return (struct published *)l;
}

static int told(struct dsfs_layer *l, int rc, const char *key, uint64_t v)
{
	if (rc == 0)
		cluster_publish(pub(l)->c, key, v);
	return rc;
}

static int p_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a)
{
	return layer_lookup(pub(l)->inner, key, a);
}

static ssize_t p_read(struct dsfs_layer *l, const char *key, uint64_t off,
		      void *buf, size_t len)
{
	return layer_read(pub(l)->inner, key, off, buf, len);
}

static ssize_t p_read_blob(struct dsfs_layer *l, const char *token,
			   uint64_t off, void *buf, size_t len)
{
	return layer_read_blob(pub(l)->inner, token, off, buf, len);
}

static int p_commit(struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *a, const void *data, size_t len,
		    struct dsfs_attr *out)
{
	struct dsfs_attr stored;
	int rc;

	rc = layer_commit(pub(l)->inner, key, a, data, len, &stored);
	if (rc == 0 && out)
		*out = stored;
	return told(l, rc, key, stored.version);
}

static int p_create(struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *a, struct dsfs_attr *out)
{
	struct dsfs_attr stored;
	int rc;

	rc = layer_create(pub(l)->inner, key, a, &stored);
	if (rc == 0 && out)
		*out = stored;
	return told(l, rc, key, stored.version);
}

static int p_mkdir(struct dsfs_layer *l, const char *key,
		   const struct dsfs_attr *a)
{
	return told(l, layer_mkdir(pub(l)->inner, key, a), key, 0);
}

static int p_remove(struct dsfs_layer *l, const char *key)
{
	return told(l, layer_remove(pub(l)->inner, key), key, 0);
}

static int p_whiteout(struct dsfs_layer *l, const char *key)
{
	return told(l, layer_whiteout(pub(l)->inner, key), key, 0);
}

static int p_setattr(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a, unsigned mask)
{
	return told(l, layer_setattr(pub(l)->inner, key, a, mask), key, 0);
}

static int p_rename(struct dsfs_layer *l, const char *from, const char *to,
		    unsigned flags)
{
	int rc = layer_rename(pub(l)->inner, from, to, flags);

	told(l, rc, from, 0);
	return told(l, rc, to, 0);
}

static int p_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		  void *ctx)
{
	return layer_list(pub(l)->inner, dir, cb, ctx);
}

static int p_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget)
{
	return layer_usage(pub(l)->inner, used, budget);
}

static int p_sync(struct dsfs_layer *l)
{
	return layer_sync(pub(l)->inner);
}

static int p_clear(struct dsfs_layer *l)
{
	return told(l, layer_clear(pub(l)->inner), NULL, 0);
}

static void p_close(struct dsfs_layer *l)
{
	struct dsfs_cluster *owned = pub(l)->owns_c ? pub(l)->c : NULL;

	layer_close(pub(l)->inner);
	free(l);
	if (owned)
		cluster_close(owned);
}

static int p_stat_blob(struct dsfs_layer *l, const char *token, uint64_t *size)
{
	return layer_stat_blob(pub(l)->inner, token, size);
}

static int p_pin_blob(struct dsfs_layer *l, const char *token)
{
	return layer_pin_blob(pub(l)->inner, token);
}

static int p_unpin_blob(struct dsfs_layer *l, const char *token)
{
	return layer_unpin_blob(pub(l)->inner, token);
}

/* A change set (the admin tool's load and reset): each of its keys is
 * told once it has committed. */
static int p_apply(struct dsfs_layer *l, const struct layer_change *c, size_t n)
{
	int rc = layer_apply(pub(l)->inner, c, n);
	size_t i;

	for (i = 0; rc == 0 && i < n; i++)
		told(l, rc, c[i].key, 0);
	return rc;
}

static const struct dsfs_layer_ops published_ops = {
	.version = DSFS_LAYER_OPS_VERSION,
	.lookup = p_lookup,
	.read = p_read,
	.read_blob = p_read_blob,
	.commit = p_commit,
	.mkdir = p_mkdir,
	.remove = p_remove,
	.whiteout = p_whiteout,
	.setattr = p_setattr,
	.rename = p_rename,
	.list = p_list,
	.usage = p_usage,
	.sync = p_sync,
	.clear = p_clear,
	.close = p_close,
	.stat_blob = p_stat_blob,
	.pin_blob = p_pin_blob,
	.unpin_blob = p_unpin_blob,
	.apply = p_apply,
	.create = p_create,
};

int cluster_layer_wrap(struct dsfs_cluster *c, struct dsfs_layer *inner,
		       struct dsfs_layer **out)
{
	struct published *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	p->base.ops = &published_ops;
	p->base.name = inner->name;
	p->base.readonly = layer_readonly(inner);
	p->inner = inner;
	p->c = c;
	*out = &p->base;
	return 0;
}

int cluster_layer_wrap_own(struct dsfs_cluster *c, struct dsfs_layer *inner,
			   struct dsfs_layer **out)
{
	int rc = cluster_layer_wrap(c, inner, out);

	if (rc == 0)
		pub(*out)->owns_c = true;
	return rc;
}

struct dsfs_layer *cluster_layer_unwrap(struct dsfs_layer *l)
{
	struct dsfs_layer *inner = pub(l)->inner;

	free(l);
	return inner;
}
