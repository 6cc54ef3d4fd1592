/*
 * cluster.h - what the hosts sharing one runtime say to each other: locks
 * on keys, and the news that a key changed.
 *
 * When several hosts mount one shared runtime (runtime=postgresql://...),
 * each host's daemon opens one cluster.  A cluster is a struct whose first
 * member points at a const, versioned table of operations, like a layer
 * (layer.h); the daemon calls the cluster_*() wrappers in cluster.c, never
 * c->ops->x.  cluster_pg.c is the implementation on PostgreSQL (advisory
 * locks, LISTEN/NOTIFY); nothing else in dsfs knows how a cluster talks.
 *
 * Locks.  A lock is one host's hold on a 64-bit key (the hash of an
 * entry's key: cluster_key()), shared or exclusive, against every other
 * host.  It is not re-entrant and knows no processes: the caller (flock.c)
 * arbitrates its own processes and asks for a key at most once at a time.
 * A host that dies or loses its connection loses its locks at once: the
 * others can take them.
 *
 * Changes.  cluster_publish() tells the other hosts that a key (or, with
 * key NULL, everything: a factory reset) changed with this version; it
 * queues and never waits for the network.  Each host is told of the
 * changes made by the others, not of its own, through the events it gave
 * at open; after a lost connection, which may have missed news, it is
 * told to forget everything (reset).
 *
 * Threads.  Every operation may be called from any thread.  Events and
 * lock callbacks come from the cluster's own threads, with no lock of the
 * cluster held: they may call the cluster again (cancel, unlock).
 */
#ifndef DSFS_CLUSTER_H
#define DSFS_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>

#define DSFS_CLUSTER_OPS_VERSION 1

struct dsfs_cluster;
struct dsfs_layer;
struct cluster_lock; /* one key this host holds or waits for */

/* How a waited-for lock turned out, called once from the cluster's
 * thread: rc 0 (held now), -ECANCELED (cluster_cancel() stopped the
 * wait), -ENOLCK (the database could not be asked; not held).  The lock
 * stays allocated until cluster_unlock(), whatever rc says; a lock lost
 * later with its connection is told by cluster_unlock(). */
typedef void (*cluster_lock_cb)(void *arg, struct cluster_lock *lk, int rc);

/* What a host is told of the others; arg is passed back. */
struct cluster_events {
	/* key (a layer key, "kv/app/n") changed elsewhere, now at version
	 * (0 when the change has none: a removal, a rename, a directory). */
	void (*changed)(void *arg, const char *key, uint64_t version);
	/* Anything may have changed elsewhere: a factory reset, or news
	 * missed while the connection was lost. */
	void (*reset)(void *arg);
	void *arg;
};

struct dsfs_cluster_ops {
	int version; /* DSFS_CLUSTER_OPS_VERSION */

	/* Take key for this host, shared or exclusive.  Without wait: 0
	 * and *out held, or -EWOULDBLOCK if another host holds it in a
	 * mode that conflicts.  With wait: 0 and *out held now, or
	 * -EINPROGRESS and *out waiting, done(arg, *out, rc) telling how
	 * it ends.  -ENOLCK if the database cannot be reached, -ENOMEM. */
	int (*lock)(struct dsfs_cluster *c, uint64_t key, bool exclusive,
		    bool wait, cluster_lock_cb done, void *arg,
		    struct cluster_lock **out);

	/* Stop waiting for lk: done follows with -ECANCELED, or with 0 if
	 * the lock was granted first.  Nothing if lk is not waiting. */
	void (*cancel)(struct dsfs_cluster *c, struct cluster_lock *lk);

	/* Release lk (held, lost, or ended) and free it.  0, or -ENOLCK if
	 * it had been lost meanwhile (another host may have held the key).
	 * A waiting lk is abandoned: done is not called, and the lock, if
	 * it comes, is released. */
	int (*unlock)(struct dsfs_cluster *c, struct cluster_lock *lk);

	/* Tell the other hosts that key (NULL: everything) changed and is
	 * now at version.  Queued: 0, or -ENOMEM. */
	int (*publish)(struct dsfs_cluster *c, const char *key,
		       uint64_t version);

	/* Stop the threads, end every lock and wait (their connections
	 * close, so the database releases them), free every struct
	 * cluster_lock not yet unlocked, and c.  No callback runs after. */
	void (*close)(struct dsfs_cluster *c);
};

struct dsfs_cluster {
	const struct dsfs_cluster_ops *ops;
};

/* cluster.c: the wrappers, and the key of an entry's lock. */
uint64_t cluster_key(const char *key);
int cluster_lock(struct dsfs_cluster *c, uint64_t key, bool exclusive,
		 bool wait, cluster_lock_cb done, void *arg,
		 struct cluster_lock **out);
void cluster_cancel(struct dsfs_cluster *c, struct cluster_lock *lk);
int cluster_unlock(struct dsfs_cluster *c, struct cluster_lock *lk);
int cluster_publish(struct dsfs_cluster *c, const char *key, uint64_t version);
void cluster_close(struct dsfs_cluster *c);

/* Wrap the layer inner so that every change that succeeds through it is
 * published on c (the runtime layer of a shared store).  The wrapper owns
 * inner from then on: closing it closes inner.  0 or -ENOMEM (inner is
 * then still the caller's). */
int cluster_layer_wrap(struct dsfs_cluster *c, struct dsfs_layer *inner,
		       struct dsfs_layer **out);
/* The same for a process that opened c only to tell the other hosts of
 * this layer's changes (dsfsctl on a store not mounted here): closing the
 * wrapper closes c too. */
int cluster_layer_wrap_own(struct dsfs_cluster *c, struct dsfs_layer *inner,
			   struct dsfs_layer **out);
/* Free the wrapper l and return the layer it wrapped (before the cluster
 * closes: l publishes on it). */
struct dsfs_layer *cluster_layer_unwrap(struct dsfs_layer *l);

/* cluster_pg.c: a cluster on the PostgreSQL database that conninfo (a
 * libpq URI or key=value string) names.  Connects once to check, starts
 * the thread that listens for the other hosts' changes (and reconnects,
 * then sends ev->reset, when its connection is lost), and the thread that
 * waits for locks.  -ENOLCK (logged, without the password) if the
 * database cannot be reached, -ENOMEM. */
int cluster_pg_open(const char *conninfo, const struct cluster_events *ev,
		    struct dsfs_cluster **out);

#endif
