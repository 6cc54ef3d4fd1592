/*
 * flock.c - flock(2) by entry: the processes of this host arbitrated
 * here, and on a shared runtime this host against the others through the
 * cluster's lock on the entry's key (cluster.h).  Locks follow the key, not
 * the inode: a name's inode changes with its committed versions while
 * page-cache readers hold the old one (pagecache.c), and a lock taken
 * through either must exclude the other.
 *
 * A lock is keyed by the entry's key as the layers name it (kv/x, also for
 * devices/ID/x and runtime/kv/x), hashed by cluster_key(), and owned by
 * what the kernel calls the lock owner: one open file description, as
 * flock(2) says.  The host holds the key on the cluster exactly while some
 * owner here holds it: in the mode of its holders (shared while they all
 * are, exclusive for one exclusive holder), taken when the first is
 * granted and released when the last lets go, so that the other hosts get
 * their turn between two processes of this one.  A request compatible with
 * the holders is granted here when the host's mode covers it; one that
 * needs the cluster while no one here holds the key asks it; the others
 * wait in the key's queue (LOCK_NB: EWOULDBLOCK).  Converting a lock
 * drops the old one first, as flock(2) does.
 *
 * A waiting request holds no FUSE thread: it is queued and answered later,
 * from whichever thread grants it (a release, or the cluster's lock thread
 * when the host gets the key), or fails it (the cluster could not be
 * asked: ENOLCK).  So the thread pool needs no sizing for waiters.  A
 * waiting process that gets a signal makes the kernel send an interrupt:
 * interrupted() answers EINTR and, if no one here waits for the key any
 * more, cancels the host's wait on the cluster.
 *
 * This file answers its requests itself (fuse_reply_err), because an
 * answer may come long after the handler returned.  Lock order: libfuse's
 * request lock (held around interrupted()), then fl->lock, then the
 * session's and the cluster's own.  fuse_req_interrupt_func() is never
 * called with fl->lock held, since it may call interrupted() at once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "cluster.h"
#include "daemon.h"
#include "log.h"

struct holder {
	struct holder *next;
	uint64_t owner;
	bool exclusive;
};

struct waiter {
	struct waiter *next;
	struct fkey *k;
	fuse_req_t req;
	uint64_t owner;
	bool exclusive;
	bool armed;	  /* its interrupt callback is set */
	bool interrupted; /* before it was armed */
	bool ended;	  /* answered before it was armed: rc */
	int rc;
};

/* One key a process of this host holds or waits for. */
struct fkey {
	struct fkey *next;
	struct flocks *fl;
	uint64_t hash; /* cluster_key(path) */
	char *path;    /* as first locked, for log lines */
	struct holder *holders;
	struct waiter *waiters; /* in order of arrival */
	struct cluster_lock *lk;
	enum {
		K_FREE,	     /* the host holds nothing on the cluster */
		K_ACQUIRING, /* it waits for the cluster: lk */
		K_HELD	     /* it holds lk, in mode lk_exclusive */
	} state;
	bool lk_exclusive;
	bool cancelling;
};

struct flocks {
	pthread_mutex_t lock; /* guards the keys and all they hold */
	struct dsfs_cluster *c;
	struct fkey *keys;
};

int flocks_new(struct dsfs_cluster *c, struct flocks **out)
{
	struct flocks *fl = calloc(1, sizeof(*fl));

	if (!fl)
		return -ENOMEM;
	pthread_mutex_init(&fl->lock, NULL);
	fl->c = c;
	*out = fl;
	return 0;
}

static void free_key(struct flocks *fl, struct fkey *k)
{
	struct fkey **p;

	for (p = &fl->keys; *p != k; p = &(*p)->next)
		;
	*p = k->next;
	free(k->path);
	free(k);
}

void flocks_free(struct flocks *fl)
{
	struct fkey *k;

	if (!fl)
		return;
	/* The cluster closed first and freed its locks; the requests still
	 * queued die with the session. */
	while ((k = fl->keys) != NULL) {
		struct holder *h;
		struct waiter *w;

		while ((h = k->holders) != NULL) {
			k->holders = h->next;
			free(h);
		}
		while ((w = k->waiters) != NULL) {
			k->waiters = w->next;
			free(w);
		}
		free_key(fl, k);
	}
	pthread_mutex_destroy(&fl->lock);
	free(fl);
}

static struct fkey *find_key(struct flocks *fl, uint64_t hash)
{
	struct fkey *k;

	for (k = fl->keys; k; k = k->next)
		if (k->hash == hash)
			return k;
	return NULL;
}

static bool compatible(const struct fkey *k, bool exclusive)
{
	return !k->holders || (!exclusive && !k->holders->exclusive);
}

/* Granted here without asking the cluster: compatible with the holders
 * and covered by what the host holds. */
static bool grantable(const struct fkey *k, bool exclusive)
{
	return k->state == K_HELD && compatible(k, exclusive) &&
	       (k->lk_exclusive || !exclusive);
}

static int add_holder(struct fkey *k, uint64_t owner, bool exclusive)
{
	struct holder *h = malloc(sizeof(*h));

	if (!h)
		return -ENOMEM;
	h->owner = owner;
	h->exclusive = exclusive;
	h->next = k->holders;
	k->holders = h;
	return 0;
}

/* Answer w, now if it is armed, else through the thread arming it. */
static void end_waiter(struct waiter *w, int rc)
{
	if (w->armed) {
		fuse_reply_err(w->req, -rc);
		free(w);
	} else {
		w->ended = true;
		w->rc = rc;
	}
}

static void unqueue(struct fkey *k, struct waiter *w)
{
	struct waiter **p;

	for (p = &k->waiters; *p != w; p = &(*p)->next)
		;
	*p = w->next;
}

static void fail_waiters(struct fkey *k, int rc)
{
	struct waiter *w;

	log_err("%s: flock: %s", k->path,
		rc == -ENOLCK ? "the runtime database cannot be asked "
				"for the lock (ENOLCK)" :
				strerror(-rc));
	while ((w = k->waiters) != NULL) {
		k->waiters = w->next;
		end_waiter(w, rc);
	}
}

static void acquired(void *arg, struct cluster_lock *lk, int rc);

/* The host's hold on key k among the other hosts; on a single host (no
 * cluster) there are none, and the host always has it. */
static int host_lock(struct flocks *fl, struct fkey *k, bool wait)
{
	if (!fl->c) {
		k->lk = NULL;
		return 0;
	}
	return cluster_lock(fl->c, k->hash, k->lk_exclusive, wait,
			    wait ? acquired : NULL, wait ? k : NULL, &k->lk);
}

static int host_unlock(struct flocks *fl, struct fkey *k)
{
	return fl->c ? cluster_unlock(fl->c, k->lk) : 0;
}

/* Give the host's hold on k back to the cluster: 0, or the error of a
 * hold that had been lost with its connection (logged). */
static int give_back(struct flocks *fl, struct fkey *k)
{
	int rc = host_unlock(fl, k);

	k->lk = NULL;
	k->state = K_FREE;
	if (rc)
		log_err("%s: flock: the lock was lost with its database "
			"connection before it was released: another host may "
			"have held it meanwhile",
			k->path);
	return rc;
}

/* Grant what can be granted, give the key back to the cluster when no one
 * here holds it, ask for it when someone waits.  May free k.  Returns 0,
 * or -ENOLCK if the host's lock had been lost before this release. */
static int pump(struct flocks *fl, struct fkey *k)
{
	struct waiter *w, *next;
	int rc, ret = 0;

	for (;;) {
		if (k->state == K_ACQUIRING)
			return ret;
		/* No one here holds the key any more, and the next waiter
		 * wants the other mode: the host's hold changes mode through
		 * the cluster, or a shared holder here would keep the other
		 * hosts' shared requests out. */
		if (k->state == K_HELD && !k->holders && k->waiters &&
		    k->waiters->exclusive != k->lk_exclusive) {
			ret = give_back(fl, k) ? -ENOLCK : ret;
			continue;
		}
		if (k->state == K_HELD) {
			for (w = k->waiters; w; w = next) {
				next = w->next;
				if (!grantable(k, w->exclusive))
					continue;
				rc = add_holder(k, w->owner, w->exclusive);
				unqueue(k, w);
				end_waiter(w, rc);
			}
			if (k->holders)
				return ret;
			ret = give_back(fl, k) ? -ENOLCK : ret;
			continue;
		}
		if (!k->waiters) {
			if (!k->holders)
				free_key(fl, k);
			return ret;
		}
		k->lk_exclusive = k->waiters->exclusive;
		rc = host_lock(fl, k, true);
		if (rc == 0)
			k->state = K_HELD;
		else if (rc == -EINPROGRESS)
			k->state = K_ACQUIRING;
		else
			fail_waiters(k, rc);
	}
}

/* The cluster's answer to the host's wait for k (from its lock thread).
 * k lives while it is K_ACQUIRING: only pump() frees a key, and not then. */
static void acquired(void *arg, struct cluster_lock *lk, int rc)
{
	struct fkey *k = arg;
	struct flocks *fl = k->fl;

	pthread_mutex_lock(&fl->lock);
	k->cancelling = false;
	if (rc == 0) {
		k->state = K_HELD;
	} else {
		cluster_unlock(fl->c, lk);
		k->lk = NULL;
		k->state = K_FREE;
		/* -ECANCELED: no one waited any more, or (a cancel that
		 * came late) the next waiter asks again. */
		if (rc != -ECANCELED)
			fail_waiters(k, rc);
	}
	pump(fl, k);
	pthread_mutex_unlock(&fl->lock);
}

/* Take w out of its queue after an interrupt: the host stops waiting on
 * the cluster if no one here waits any more. */
static void drop_waiter(struct flocks *fl, struct waiter *w)
{
	struct fkey *k = w->k;

	unqueue(k, w);
	if (k->state == K_ACQUIRING && !k->waiters && !k->cancelling) {
		k->cancelling = true;
		cluster_cancel(fl->c, k->lk);
	} else if (k->state != K_ACQUIRING) {
		pump(fl, k);
	}
}

/* libfuse's interrupt callback, with the request's lock held: req is
 * still valid, and answering it here is allowed (libfuse holds a
 * reference while this runs); data is the struct flocks. */
static void interrupted(fuse_req_t req, void *data)
{
	struct flocks *fl = data;
	struct waiter *w = NULL;
	struct fkey *k;

	pthread_mutex_lock(&fl->lock);
	for (k = fl->keys; k && !w; k = k->next)
		for (w = k->waiters; w && w->req != req; w = w->next)
			;
	if (w && !w->armed) {
		w->interrupted = true; /* the arming thread answers */
	} else if (w) {
		drop_waiter(fl, w);
		fuse_reply_err(req, EINTR);
		free(w);
	}
	pthread_mutex_unlock(&fl->lock);
}

/* Release what owner holds (all its keys: a file is one key, but the
 * owner outlives renames).  0, or -ENOLCK if a lock had been lost. */
static int drop_owner(struct flocks *fl, uint64_t owner)
{
	struct fkey *k, *next;
	int rc = 0;

	for (k = fl->keys; k; k = next) {
		struct holder **p, *h;

		next = k->next;
		for (p = &k->holders; (h = *p) != NULL;) {
			if (h->owner == owner) {
				*p = h->next;
				free(h);
			} else {
				p = &h->next;
			}
		}
		if (k->state == K_HELD && pump(fl, k) != 0)
			rc = -ENOLCK;
	}
	return rc;
}

/* A request that cannot be granted at once: LOCK_NB is refused, or the
 * host tries the cluster if nothing here holds or wants the key. */
static int try_now(struct flocks *fl, struct fkey *k, uint64_t owner,
		   bool exclusive)
{
	int rc;

	if (k->state != K_FREE || k->holders || k->waiters)
		return -EWOULDBLOCK;
	k->lk_exclusive = exclusive;
	rc = host_lock(fl, k, false);
	if (rc)
		return rc;
	k->state = K_HELD;
	rc = add_holder(k, owner, exclusive);
	if (rc)
		pump(fl, k); /* gives the key back */
	return rc;
}

/* Queue a blocking request; 0 if it was answered already, 1 if it is
 * left to wait (then *out is the armed-to-be waiter). */
static int enqueue(struct flocks *fl, struct fkey *k, fuse_req_t req,
		   uint64_t owner, bool exclusive, struct waiter **out)
{
	struct waiter *w = calloc(1, sizeof(*w)), **p;

	if (!w)
		return -ENOMEM;
	w->k = k;
	w->req = req;
	w->owner = owner;
	w->exclusive = exclusive;
	for (p = &k->waiters; *p; p = &(*p)->next)
		;
	*p = w;
	*out = w;
	pump(fl, k);
	return 1;
}

static struct fkey *get_key(struct flocks *fl, const char *path)
{
	uint64_t hash = cluster_key(path);
	struct fkey *k = find_key(fl, hash);

	if (k)
		return k;
	k = calloc(1, sizeof(*k));
	if (!k || !(k->path = strdup(path))) {
		free(k);
		return NULL;
	}
	k->fl = fl;
	k->hash = hash;
	k->next = fl->keys;
	fl->keys = k;
	return k;
}

/* Under fl->lock: grant, refuse, fail, or queue (1, *w set). */
static int request(struct flocks *fl, const char *path, fuse_req_t req,
		   uint64_t owner, int op, struct waiter **w)
{
	bool exclusive = (op & LOCK_EX) != 0;
	struct holder *h;
	struct fkey *k;
	int rc;

	if (op & LOCK_UN)
		return drop_owner(fl, owner);
	k = get_key(fl, path);
	if (!k)
		return -ENOMEM;
	for (h = k->holders; h && h->owner != owner; h = h->next)
		;
	if (h && h->exclusive == exclusive)
		return 0;
	if (h) {
		/* A conversion is an unlock and a new lock, as in flock(2):
		 * others may get the key in between. */
		drop_owner(fl, owner);
		k = get_key(fl, path);
		if (!k)
			return -ENOMEM;
	}
	if (grantable(k, exclusive))
		return add_holder(k, owner, exclusive);
	if (op & LOCK_NB)
		rc = try_now(fl, k, owner, exclusive);
	else
		rc = enqueue(fl, k, req, owner, exclusive, w);
	if (rc < 0 && k->state == K_FREE && !k->holders && !k->waiters)
		free_key(fl, k);
	return rc;
}

void flock_request(struct dsfs_ctx *ctx, fuse_req_t req, fuse_ino_t ino,
		   uint64_t owner, int op)
{
	struct flocks *fl = ctx->flocks;
	struct node *n = node_get(&ctx->nodes, ino);
	struct waiter *w = NULL;
	struct loc l;
	int rc;

	rc = !fl ? -ENOSYS : !n ? -ESTALE : node_loc(&ctx->nodes, n, &l);
	/* Open on an inode its name no longer has: the lock is the name's
	 * if it was replaced, the inode's own if it was removed. */
	if (rc == -ESTALE && n) {
		rc = 0;
		if (node_former_loc(&ctx->nodes, n, &l) != 0) {
			l.view = VIEW_MERGED;
			snprintf(l.key, sizeof(l.key), "#%llu",
				 (unsigned long long)n->ino);
		}
	}
	node_put(&ctx->nodes, n);
	if (rc == 0 && l.view == VIEW_ROOT)
		rc = -EINVAL; /* no key: the root, a layer directory */
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	pthread_mutex_lock(&fl->lock);
	rc = request(fl, l.key, req, owner, op, &w);
	pthread_mutex_unlock(&fl->lock);
	if (!w) { /* answered: rc is 0 or an error */
		fuse_reply_err(req, -rc);
		return;
	}
	/* Waiting: from here on an interrupt answers it. */
	fuse_req_interrupt_func(req, interrupted, fl);
	pthread_mutex_lock(&fl->lock);
	w->armed = true;
	if (w->ended) {
		rc = w->rc;
	} else if (w->interrupted || fuse_req_interrupted(req)) {
		drop_waiter(fl, w);
		rc = -EINTR;
	} else {
		w = NULL; /* answered later */
	}
	pthread_mutex_unlock(&fl->lock);
	if (w) {
		free(w);
		fuse_reply_err(req, -rc);
	}
}

void flock_release(struct dsfs_ctx *ctx, uint64_t owner)
{
	struct flocks *fl = ctx->flocks;

	if (!fl)
		return;
	pthread_mutex_lock(&fl->lock);
	drop_owner(fl, owner);
	pthread_mutex_unlock(&fl->lock);
}
