/*
 * layer_pg_defer.c - a new file made on the server together with its
 * value: one transaction for open(O_CREAT|O_TRUNC), write and close,
 * where a create and its commit were two.
 *
 * A create whose caller replaces whatever the name holds when it commits
 * (layer.h, a->replaces: open(2) with O_TRUNC and without O_EXCL) need not
 * reach the server before its value.  The other hosts see the name when
 * the close that stores it returns, which is what close-to-open promises
 * them, and a file another host makes at the name meanwhile is replaced
 * by that commit, as the open would have truncated it.  So create() only
 * notes the name here.  This process's lookups and reads answer an empty
 * file for it, and the commit of its value makes the file and the value
 * in one statement and one transaction (pg_defer_commit()).  A name made
 * on the server only at its close (settle()) is announced to the other
 * hosts then, as a change.
 *
 * Everything else that involves a waiting name makes it on the server
 * first ("settles" it), so that the server decides as if the create had
 * been made at once: a change of the name, of a directory above it or of
 * a name below it, a listing of its directory, settle() (a created file
 * closed with nothing written keeps its name), sync(), a snapshot and
 * close().  A create waits only where lookup() has just missed the name
 * in a directory of this layer (the kernel looks a name up before it
 * creates it, and the server answers for the directory in the same
 * statement): so a create whose directory this layer lacks is made at
 * once and fails as it always did, with ENOENT, on which the overlay
 * copies the directory up from a lower layer and creates again.  At most
 * PG_DEFER_MAX names wait; a create beyond them is made at once.  Each
 * operation that may settle reads a count first: with nothing waiting,
 * that is all it costs.
 */
#include "layer_pg.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int waiting(struct pg_layer *p)
{
	return __atomic_load_n(&p->ndeferred, __ATOMIC_ACQUIRE);
}

/* The slot of key, or -1.  Called with p->lock held. */
static int slot_of(struct pg_layer *p, const char *key)
{
	int i;

	for (i = 0; i < p->ndeferred; i++)
		if (strcmp(p->deferred[i].key, key) == 0)
			return i;
	return -1;
}

/* Whether a is b, a directory above b, or below it. */
static bool related(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la > lb)
		return strncmp(a, b, lb) == 0 && a[lb] == '/';
	if (la < lb)
		return strncmp(a, b, la) == 0 && b[la] == '/';
	return strcmp(a, b) == 0;
}

static void drop_slot(struct pg_layer *p, int i)
{
	free(p->deferred[i].key);
	p->deferred[i] = p->deferred[p->ndeferred - 1];
	__atomic_store_n(&p->ndeferred, p->ndeferred - 1, __ATOMIC_RELEASE);
}

void pg_defer_room(struct pg_layer *p, const char *key,
		   const struct dsfs_attr *parent)
{
	char *k = strdup(key);
	unsigned i;

	if (!k)
		return;
	pthread_mutex_lock(&p->lock);
	i = p->room_next++ % PG_ROOM_KEYS;
	free(p->room[i]);
	p->room[i] = k;
	p->room_ms[i] = pg_now_ms();
	if (parent)
		p->room_parent[i] = *parent;
	else
		memset(&p->room_parent[i], 0, sizeof(p->room_parent[i]));
	pthread_mutex_unlock(&p->lock);
}

/* Whether lookup() missed key in a directory of the layer just now, and
 * that directory's attributes (*parent); the note is used up.  Called with
 * p->lock held. */
static bool take_room(struct pg_layer *p, const char *key,
		      struct dsfs_attr *parent)
{
	int64_t now = pg_now_ms();
	unsigned i;

	for (i = 0; i < PG_ROOM_KEYS; i++) {
		if (!p->room[i] || strcmp(p->room[i], key) != 0)
			continue;
		free(p->room[i]);
		p->room[i] = NULL;
		*parent = p->room_parent[i];
		return now - p->room_ms[i] <= PG_ROOM_MS;
	}
	return false;
}

/* What a lookup answers for the waiting create d. */
static void shown(const struct pg_deferred *d, struct dsfs_attr *a)
{
	layer_file_attr(a, &d->a);
	a->size = 0;
	a->gid = d->gid;
	a->version = d->a.version;
}

int pg_defer_note(struct pg_layer *p, const char *key,
		  const struct dsfs_attr *a, struct dsfs_attr *out)
{
	struct dsfs_attr parent, made;
	struct pg_deferred *d;
	uint64_t v;
	char *k;
	int i;

	k = strdup(key);
	if (!k)
		return 1;
	pthread_mutex_lock(&p->lock);
	i = slot_of(p, key);
	/* Without a directory seen to hold it, the create is made at once:
	 * its errors (the overlay makes a missing parent on ENOENT) are the
	 * open's. */
	if (i < 0 &&
	    (p->ndeferred == PG_DEFER_MAX || !take_room(p, key, &parent))) {
		pthread_mutex_unlock(&p->lock);
		free(k);
		return 1;
	}
	if (i >= 0) {
		/* Noted already (the kernel let its entry go and a lookup
		 * found ours): the same empty file. */
		free(k);
		d = &p->deferred[i];
	} else {
		v = p->seen_seq > 0 ? (uint64_t)p->seen_seq : 0;
		v = layer_version_floor(v, a);
		if (v < p->deferred_version)
			v = p->deferred_version;
		p->deferred_version = ++v;
		d = &p->deferred[p->ndeferred];
		d->key = k;
		d->a = *a;
		d->a.version = v;
		/* The server decides the group when it makes the file, from
		 * the directory as it is then; until then, the group it will
		 * most likely give. */
		made = *a;
		layer_inherit_group(&made, a, &parent);
		d->gid = made.gid;
		d->making = false;
		__atomic_store_n(&p->ndeferred, p->ndeferred + 1,
				 __ATOMIC_RELEASE);
	}
	if (out)
		shown(d, out);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

bool pg_defer_find(struct pg_layer *p, const char *key, struct dsfs_attr *a)
{
	int i;

	if (!waiting(p))
		return false;
	pthread_mutex_lock(&p->lock);
	i = slot_of(p, key);
	if (i >= 0)
		shown(&p->deferred[i], a);
	pthread_mutex_unlock(&p->lock);
	return i >= 0;
}

/* True, and *a, if key waits: the caller makes it and says how that went
 * with done(); a key that another thread is making is waited for. */
static bool take(struct pg_layer *p, const char *key, struct dsfs_attr *a)
{
	int i;

	if (!waiting(p))
		return false;
	pthread_mutex_lock(&p->lock);
	while ((i = slot_of(p, key)) >= 0 && p->deferred[i].making)
		pthread_cond_wait(&p->made, &p->lock);
	if (i >= 0) {
		p->deferred[i].making = true;
		*a = p->deferred[i].a;
	}
	pthread_mutex_unlock(&p->lock);
	return i >= 0;
}

static void done(struct pg_layer *p, const char *key, bool made)
{
	int i;

	pthread_mutex_lock(&p->lock);
	i = slot_of(p, key);
	if (i >= 0 && made)
		drop_slot(p, i);
	else if (i >= 0)
		p->deferred[i].making = false;
	pthread_cond_broadcast(&p->made);
	pthread_mutex_unlock(&p->lock);
}

/* The first waiting key related to key (NULL: any), or -1; *busy if one
 * is being made by another thread.  Called with p->lock held. */
static int next_related(struct pg_layer *p, const char *key, bool *busy)
{
	int i;

	*busy = false;
	for (i = 0; i < p->ndeferred; i++) {
		if (key && !related(p->deferred[i].key, key))
			continue;
		if (!p->deferred[i].making)
			return i;
		*busy = true;
	}
	return -1;
}

/* A waiting key made on the server as create() would have made it: an
 * empty file, replacing what another host made there meanwhile, without
 * waiting for the server's disk. */
static int make_empty(struct pg_layer *p, const char *key,
		      const struct dsfs_attr *a)
{
	struct dsfs_attr out;
	int rc = pg_fast_make(p, key, a, "", 0, true, &out);

	if (rc != 1)
		return rc;
	return pg_commit_general(p, key, a, "", 0, false, true, &out);
}

int pg_defer_commit(struct pg_layer *p, const char *key,
		    const struct dsfs_attr *a, const void *data, size_t len,
		    struct dsfs_attr *out)
{
	struct dsfs_attr d, na = *a;
	int rc;

	if (!take(p, key, &d))
		return 1;
	/* Who made it and how, from the create; the value and its times
	 * from the commit, with a version above the one answered. */
	na.mode = d.mode;
	na.uid = d.uid;
	na.gid = d.gid;
	na.inherit_group = d.inherit_group;
	na.version = layer_version_floor(d.version, a);
	rc = pg_fast_make(p, key, &na, data, len, false, out);
	if (rc == 1)
		rc = pg_commit_general(p, key, &na, data, len, false, false,
				       out);
	done(p, key, rc == 0);
	return rc;
}

/* An error after which the database may still make the name: it could
 * not be reached or answer.  Any other (the directory gone, a directory
 * at the name, the budget) is the create's own refusal, the one the open
 * would have had: the name goes. */
static bool transient(int rc)
{
	return rc == -EIO || rc == -ENOMEM || rc == -EAGAIN || rc == -EINTR;
}

/* pg_defer_settle(), and with report the errors of the names the server
 * refused too; *made counts the names made. */
static int settle(struct pg_layer *p, const char *key, bool report, int *made)
{
	struct dsfs_attr a;
	int i, rc, first = 0;
	bool busy;
	char *k;

	*made = 0;
	if (!waiting(p))
		return 0;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		i = next_related(p, key, &busy);
		if (i < 0 && !busy)
			break;
		if (i < 0) {
			/* Another thread is making one: the caller's change
			 * comes after it. */
			pthread_cond_wait(&p->made, &p->lock);
			continue;
		}
		p->deferred[i].making = true;
		a = p->deferred[i].a;
		k = p->deferred[i].key; /* stays while making */
		pthread_mutex_unlock(&p->lock);
		rc = make_empty(p, k, &a);
		pthread_mutex_lock(&p->lock);
		i = slot_of(p, k);
		if (rc && !transient(rc))
			log_err("%s: %s: created, but the database refused to "
				"make it: %s",
				p->shown, k, strerror(-rc));
		if (rc == 0)
			(*made)++;
		if (rc == 0 || !transient(rc))
			drop_slot(p, i);
		else
			p->deferred[i].making = false;
		pthread_cond_broadcast(&p->made);
		if (rc && (report || transient(rc)) && !first)
			first = rc;
		if (rc && transient(rc))
			break;
	}
	pthread_mutex_unlock(&p->lock);
	return first;
}

int pg_defer_settle(struct pg_layer *p, const char *key)
{
	int made;

	return settle(p, key, false, &made);
}

int pg_defer_settle_one(struct pg_layer *p, const char *key)
{
	int made, rc = settle(p, key, true, &made);

	return rc ? rc : made > 0;
}

void pg_defer_forget(struct pg_layer *p)
{
	pthread_mutex_lock(&p->lock);
	while (p->ndeferred > 0) {
		log_err("%s: %s: created, but not stored: the database could "
			"not be reached before the close of the store",
			p->shown, p->deferred[0].key);
		drop_slot(p, 0);
	}
	pthread_mutex_unlock(&p->lock);
}
