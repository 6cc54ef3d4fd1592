/*
 * cluster.c - the wrappers through which the daemon calls a cluster
 * (cluster.h), and the key of an entry's lock.
 *
 * Like layer.c for layers: the one place that checks what every call
 * passes, so that an implementation need not.
 */
#include <assert.h>
#include <stddef.h>

#include "cluster.h"
#include "hash.h"

/* Every host must hash a key to the same lock: a fixed seed ("dsfslock"),
 * not a random one.  The advisory locks of other programs sharing the
 * database are 64-bit numbers too; a collision only makes two locks one. */
#define CLUSTER_KEY_SEED 0x647366736c6f636bull

uint64_t cluster_key(const char *key)
{
	return dsfs_hash_str(CLUSTER_KEY_SEED, key);
}

static void check(const struct dsfs_cluster *c)
{
	assert(c && c->ops && c->ops->version == DSFS_CLUSTER_OPS_VERSION);
	(void)c;
}

int cluster_lock(struct dsfs_cluster *c, uint64_t key, bool exclusive,
		 bool wait, cluster_lock_cb done, void *arg,
		 struct cluster_lock **out)
{
	check(c);
	assert(out && (!wait || done));
	return c->ops->lock(c, key, exclusive, wait, done, arg, out);
}

void cluster_cancel(struct dsfs_cluster *c, struct cluster_lock *lk)
{
	check(c);
	assert(lk);
	c->ops->cancel(c, lk);
}

int cluster_unlock(struct dsfs_cluster *c, struct cluster_lock *lk)
{
	check(c);
	assert(lk);
	return c->ops->unlock(c, lk);
}

int cluster_publish(struct dsfs_cluster *c, const char *key, uint64_t version)
{
	check(c);
	return c->ops->publish(c, key, version);
}

void cluster_close(struct dsfs_cluster *c)
{
	if (c) {
		check(c);
		c->ops->close(c);
	}
}
