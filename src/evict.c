/*
 * evict.c - the thread that keeps the node table within -o inode_cache:
 * while the table holds more nodes than that, it takes names nobody uses
 * (inode_evict.c) and drops the kernel's entries for them: by inode, a
 * batch in one message, where the kernel takes FUSE_NOTIFY_PRUNE (Linux
 * 6.18), else by name, one message each.  The kernel then forgets the
 * inodes, and the FORGETs that follow free the nodes.
 *
 * A thread of its own, because dropping an entry takes the kernel's lock
 * on its directory, which a request being served may hold (a LOOKUP in
 * it): from a request's thread that could wait for itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"

/* Names dropped per pass of the clock. */
#define EVICT_BATCH 256

/* One message for the whole batch where the kernel takes it: the FORGETs
 * that follow then come together too.  Else a message per name. */
static void drop(struct dsfs_ctx *ctx, const struct node_name *batch,
		 size_t got)
{
	size_t i;
	int rc;

	if (got && __atomic_load_n(&ctx->can_prune, __ATOMIC_RELAXED)) {
		for (i = 0; i < got; i++)
			ctx->evict_inos[i] = batch[i].ino;
		rc = notify_prune(ctx, ctx->evict_inos, got);
		if (rc == 0)
			return;
		/* EINVAL is a kernel that does not know the message; any
		 * other error is the connection's (ENODEV once the mount is
		 * gone), which the names below meet too. */
		if (rc == -EINVAL) {
			log_err("the kernel refused to prune %zu entries (%s): "
				"entries are dropped one by one from now on",
				got, strerror(-rc));
			__atomic_store_n(&ctx->can_prune, false,
					 __ATOMIC_RELAXED);
		}
	}
	for (i = 0; i < got; i++)
		fuse_lowlevel_notify_inval_entry(ctx->se, batch[i].parent,
						 batch[i].name,
						 strlen(batch[i].name));
}

static void *evict_main(void *arg)
{
	struct dsfs_ctx *ctx = arg;
	struct node_name *batch = ctx->evict_batch;
	size_t got, want, bound = ctx->nodes.bound;
	bool idle = false, none;
	long over;

	while ((over = nodes_wait_over(&ctx->nodes, idle)) >= 0) {
		/* Down to seven eighths of the bound, so that the next pass
		 * does not come at the next lookup. */
		want = (size_t)over + bound / 8;
		idle = false;
		while (want > 0) {
			got = nodes_pick_unused(
				&ctx->nodes, batch,
				want < EVICT_BATCH ? want : EVICT_BATCH, &none);
			drop(ctx, batch, got);
			want -= got;
			if (got == 0 && none) {
				idle = true;
				break;
			}
		}
	}
	return NULL;
}

int evict_start(struct dsfs_ctx *ctx, size_t bound)
{
	int rc;

	if (bound == 0)
		return 0;
	ctx->evict_batch = malloc(EVICT_BATCH * sizeof(*ctx->evict_batch));
	ctx->evict_inos = malloc(EVICT_BATCH * sizeof(*ctx->evict_inos));
	if (!ctx->evict_batch || !ctx->evict_inos) {
		free(ctx->evict_batch);
		free(ctx->evict_inos);
		ctx->evict_batch = NULL;
		ctx->evict_inos = NULL;
		return -ENOMEM;
	}
	nodes_set_bound(&ctx->nodes, bound);
	rc = pthread_create(&ctx->evict_thread, NULL, evict_main, ctx);
	if (rc) {
		nodes_set_bound(&ctx->nodes, 0);
		free(ctx->evict_batch);
		free(ctx->evict_inos);
		ctx->evict_batch = NULL;
		ctx->evict_inos = NULL;
		return -rc;
	}
	ctx->evict_running = true;
	return 0;
}

void evict_stop(struct dsfs_ctx *ctx)
{
	if (!ctx->evict_running)
		return;
	nodes_stop_evict(&ctx->nodes);
	pthread_join(ctx->evict_thread, NULL);
	ctx->evict_running = false;
	free(ctx->evict_batch);
	free(ctx->evict_inos);
	ctx->evict_batch = NULL;
	ctx->evict_inos = NULL;
}
