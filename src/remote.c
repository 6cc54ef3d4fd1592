/*
 * remote.c - a daemon among the hosts of a shared runtime: it opens the
 * cluster (cluster.h) on the runtime's database, makes every change of
 * the runtime layer reach the other hosts, serves flock() across them
 * (flock.c), and drops its caches when they change something.
 *
 * The other hosts' news come from the cluster's listen thread: a change
 * to a key is forgotten by the runtime layer (layer_forget(): what it
 * remembers on a mount with cache_timeout), marks the overlay's listings
 * of its directory out of date and drops what the kernel cached of the
 * entry (notify_remote()); a reset
 * (a factory reset elsewhere, or news missed while the connection was
 * lost) drops everything (dsfs_invalidate_all()).  With a SQLite or a
 * memory runtime none of this runs: ctx->cluster stays NULL.
 */
#include <errno.h>
#include <string.h>

#include "cluster.h"
#include "daemon.h"
#include "log.h"

static void changed_elsewhere(void *arg, const char *key, uint64_t version)
{
	struct dsfs_ctx *ctx = arg;

	/* The layer forgets first, so that what the kernel asks again
	 * once it is told is answered by the server. */
	layer_forget(ctx->shared, key);
	__atomic_add_fetch(&ctx->elsewhere_gen, 1, __ATOMIC_RELEASE);
	ovl_changed_elsewhere(&ctx->stack, key);
	notify_remote(ctx, key);
	watch_told(ctx, L_RUNTIME, key, "change", version, "remote");
}

static void reset_elsewhere(void *arg)
{
	struct dsfs_ctx *ctx = arg;

	layer_forget(ctx->shared, NULL);
	__atomic_add_fetch(&ctx->elsewhere_gen, 1, __ATOMIC_RELEASE);
	ovl_changed_elsewhere(&ctx->stack, NULL);
	dsfs_invalidate_all(ctx);
	watch_told(ctx, L_RUNTIME, NULL, "reset", 0, "remote");
}

int remote_start(struct dsfs_ctx *ctx, const char *conninfo)
{
	struct cluster_events ev = {changed_elsewhere, reset_elsewhere, ctx};
	struct dsfs_layer *wrapped;
	int rc;

	/* Before the listen thread can tell of anything. */
	ctx->shared = ctx->stack.layer[L_RUNTIME];
	rc = cluster_pg_open(conninfo, &ev, &ctx->cluster);
	if (rc)
		goto fail;
	rc = flocks_new(ctx->cluster, &ctx->flocks);
	if (rc)
		goto fail_cluster;
	rc = cluster_layer_wrap(ctx->cluster, ctx->stack.layer[L_RUNTIME],
				&wrapped);
	if (rc)
		goto fail_flocks;
	ctx->stack.layer[L_RUNTIME] = wrapped;
	return 0;

fail_flocks:
	flocks_free(ctx->flocks);
	ctx->flocks = NULL;
fail_cluster:
	cluster_close(ctx->cluster);
	ctx->cluster = NULL;
fail:
	log_err("%s: cannot join the other hosts of the runtime database: %s",
		ctx->store, strerror(-rc));
	return rc;
}

void remote_stop(struct dsfs_ctx *ctx)
{
	if (!ctx->cluster)
		return;
	ctx->stack.layer[L_RUNTIME] =
		cluster_layer_unwrap(ctx->stack.layer[L_RUNTIME]);
	cluster_close(ctx->cluster);
	flocks_free(ctx->flocks);
	ctx->cluster = NULL;
	ctx->flocks = NULL;
	ctx->shared = NULL;
}
