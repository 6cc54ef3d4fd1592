/*
 * layer_pg_known.c - lookup() of the PostgreSQL layer, and what it
 * remembers between round trips on a mount that lets the kernel cache
 * (dsfs -o cache_timeout=SECS on a shared runtime: layer_pg_remember()).
 *
 * A create asks the server twice before its commit: the kernel's walk
 * asks for the directory's attributes (the create before changed its
 * times, so the kernel dropped them) and looks the new name up.  On such
 * a mount both answers may be as old as the kernel's own cache, so the
 * layer remembers, for keep_ms, a directory's attributes and, once a
 * lookup missed a name in it, every name it holds (one statement, if it
 * holds at most PG_KNOWN_NAMES): a name not among them is not there, and
 * a create of it may wait for its value (layer_pg_defer.c) as after a
 * miss on the server.  A create is then one round trip: its commit.
 *
 * What is remembered stays true for this process.  A file it makes with
 * its value adds its name and sets its directory's times and version as
 * the statement that made it did (pg_known_made()); every other write
 * transaction forgets its key (pg_tx_run()).  The other hosts' changes
 * are forgotten as their news arrive (forget(), called by remote.c),
 * within the 100 ms dsfs(8) promises; news missed while the connection
 * was lost forget everything.  To forget a name is to drop what is
 * remembered at it or below it, to add it to its directory's names
 * (which then mean "there, or maybe": the server is asked) and to drop
 * its directory's attributes.  A server's answer to a read that began
 * before something was forgotten (gen) is not remembered: it may be older
 * than the change.  And where the server gives a directory a version
 * other than the one remembered with nothing told of it, its names go: a
 * change no one accounted for.
 */
#include "layer_pg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* One name of a remembered directory. */
struct pg_known_name {
	struct htab_node node; /* first: a node is its name's allocation */
	char name[];
};

/* What ask() found. */
enum known {
	KNOWN_DIR,  /* key is a directory: its attributes */
	KNOWN_NOT,  /* key is not there: its directory's attributes */
	KNOWN_LIST, /* its directory's names are worth reading first */
	KNOWN_NOTHING,
};

static int64_t keep_of(struct pg_layer *p)
{
	return __atomic_load_n(&p->known.keep_ms, __ATOMIC_RELAXED);
}

static uint64_t gen_of(struct pg_layer *p)
{
	return __atomic_load_n(&p->known.gen, __ATOMIC_ACQUIRE);
}

/* Called with the lock held, as are all that take a struct pg_known. */
static void bump(struct pg_known *k)
{
	__atomic_store_n(&k->gen, k->gen + 1, __ATOMIC_RELEASE);
}

static void free_name(struct htab_node *n, void *ctx)
{
	(void)ctx;
	free(n);
}

static void drop_names(struct pg_known *k, struct pg_known_dir *d)
{
	if (!d->listed)
		return;
	k->nnames -= d->names.n;
	htab_drain(&d->names, free_name, NULL);
	htab_free(&d->names);
	d->listed = false;
}

static void drop_dir(struct pg_known *k, struct pg_known_dir *d)
{
	drop_names(k, d);
	free(d->key);
	memset(d, 0, sizeof(*d));
}

static void drop_all(struct pg_known *k)
{
	int i;

	for (i = 0; i < PG_KNOWN_DIRS; i++)
		if (k->dirs[i].key)
			drop_dir(k, &k->dirs[i]);
}

int pg_known_init(struct pg_known *k)
{
	memset(k, 0, sizeof(*k));
	return pthread_mutex_init(&k->lock, NULL) ? -ENOMEM : 0;
}

void pg_known_free(struct pg_known *k)
{
	drop_all(k);
	pthread_mutex_destroy(&k->lock);
}

static struct pg_known_dir *find(struct pg_known *k, const char *key,
				 size_t len)
{
	int i;

	for (i = 0; i < PG_KNOWN_DIRS; i++) {
		struct pg_known_dir *d = &k->dirs[i];

		if (d->key && strncmp(d->key, key, len) == 0 &&
		    d->key[len] == '\0')
			return d;
	}
	return NULL;
}

static bool fresh(const struct pg_known_dir *d, int64_t now, int64_t keep)
{
	return d->at_ms && now - d->at_ms < keep;
}

/* Add name to d's names, unless it is there: they stay a superset of
 * the directory's, or go if memory runs out. */
static void add_name(struct pg_known *k, struct pg_known_dir *d,
		     const char *name)
{
	size_t len = strlen(name);
	struct pg_known_name *n;

	if (!d->listed || htab_find(&d->names, name, len))
		return;
	n = malloc(sizeof(*n) + len + 1);
	if (!n) {
		drop_names(k, d);
		return;
	}
	memcpy(n->name, name, len + 1);
	htab_add(&d->names, &n->node, n->name, len);
	/* The table owns n from here on (drop_names() frees it); the
	 * analyzer does not follow it into htab.c. */
	/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
	k->nnames++;
}

/* What is remembered of key: its attributes if it is a directory, or
 * that its directory does not hold it (with that directory's). */
static enum known ask(struct pg_layer *p, const char *key, struct dsfs_attr *a,
		      struct dsfs_attr *parent)
{
	struct pg_known *k = &p->known;
	const char *slash = strrchr(key, '/');
	int64_t keep = keep_of(p), now;
	enum known found = KNOWN_NOTHING;
	struct pg_known_dir *d;

	if (!keep)
		return KNOWN_NOTHING;
	now = pg_now_ms();
	pthread_mutex_lock(&k->lock);
	d = find(k, key, strlen(key));
	if (d && fresh(d, now, keep)) {
		*a = d->a;
		found = KNOWN_DIR;
	} else if (slash && (d = find(k, key, (size_t)(slash - key))) &&
		   fresh(d, now, keep)) {
		if (d->listed) {
			if (!htab_find(&d->names, slash + 1,
				       strlen(slash + 1))) {
				*parent = d->a;
				found = KNOWN_NOT;
			}
		} else if (d->missed &&
			   (!d->tried_ms || now - d->tried_ms >= keep)) {
			found = KNOWN_LIST;
		}
	}
	pthread_mutex_unlock(&k->lock);
	return found;
}

/* A slot for dir[0..len): a free one, or the one remembered longest,
 * emptied; NULL if memory ran out. */
static struct pg_known_dir *take_slot(struct pg_known *k, const char *dir,
				      size_t len)
{
	struct pg_known_dir *slot = &k->dirs[0];
	char *copy = strndup(dir, len);
	int i;

	if (!copy)
		return NULL;
	for (i = 0; i < PG_KNOWN_DIRS && slot->key; i++)
		if (!k->dirs[i].key || k->dirs[i].at_ms < slot->at_ms)
			slot = &k->dirs[i];
	if (slot->key)
		drop_dir(k, slot);
	slot->key = copy;
	return slot;
}

/* The server said, in a read that began at gen, that dir[0..len) is a
 * directory with attributes a; missed: a lookup of a name in it found
 * none. */
static void remember(struct pg_layer *p, uint64_t gen, const char *dir,
		     size_t len, const struct dsfs_attr *a, bool missed)
{
	struct pg_known *k = &p->known;
	struct pg_known_dir *d;

	pthread_mutex_lock(&k->lock);
	if (k->gen != gen)
		goto out;
	d = find(k, dir, len);
	if (d && d->a.version != a->version && !d->told)
		drop_names(k, d);
	if (!d)
		d = take_slot(k, dir, len);
	if (!d)
		goto out;
	d->a = *a;
	d->at_ms = pg_now_ms();
	d->told = false;
	d->missed = d->missed || missed;
out:
	pthread_mutex_unlock(&k->lock);
}

/* ---- a directory's names -------------------------------------------- */

struct names_args {
	const char *dir;
	PGresult *rows; /* the directory's version, and a name per row */
};

static int names_fn(struct pg_tx *t, void *arg)
{
	struct names_args *na = arg;
	struct pg_params pp = {0};
	struct layer_key k;

	libpq.PQclear(na->rows); /* from an attempt that lost its connection */
	na->rows = NULL;
	if (layer_split_key(na->dir, strlen(na->dir), &k))
		return -ENOENT;
	pg_param_key(&pp, &k);
	pg_param_bytes(&pp, na->dir, strlen(na->dir));
	pg_param_i64(&pp, PG_KNOWN_NAMES + 1);
	return pg_exec(t, P_NAMES, &pp, &na->rows);
}

/* The names in rows, in a table of their own (*count of them); false if
 * memory ran out (nothing is left to free). */
static bool table_of(const PGresult *rows, struct htab *names, size_t *count)
{
	int i, n = libpq.PQntuples(rows);
	uint64_t seed;

	/* A weak seed is still a seed: ignore a getrandom() failure. */
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != sizeof(seed))
		seed = (uint64_t)(uintptr_t)names;
	if (htab_init(names, seed))
		return false;
	*count = 0;
	for (i = 0; i < n; i++) {
		size_t len = (size_t)libpq.PQgetlength(rows, i, 1);
		struct pg_known_name *nm;

		if (libpq.PQgetisnull(rows, i, 1))
			continue; /* an empty directory's one row */
		nm = malloc(sizeof(*nm) + len + 1);
		if (!nm) {
			htab_drain(names, free_name, NULL);
			htab_free(names);
			return false;
		}
		memcpy(nm->name, libpq.PQgetvalue(rows, i, 1), len);
		nm->name[len] = '\0';
		htab_add(names, &nm->node, nm->name, len);
		/* The table owns nm (as in add_name()). */
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc) */
		(*count)++;
	}
	return true;
}

/* Make room for count more names among PG_KNOWN_ALL: the names of the
 * directories remembered longest go first, but not d's. */
static bool room_for(struct pg_known *k, const struct pg_known_dir *d,
		     size_t count)
{
	while (k->nnames + count > PG_KNOWN_ALL) {
		struct pg_known_dir *oldest = NULL;
		int i;

		for (i = 0; i < PG_KNOWN_DIRS; i++) {
			struct pg_known_dir *o = &k->dirs[i];

			if (o != d && o->listed &&
			    (!oldest || o->at_ms < oldest->at_ms))
				oldest = o;
		}
		if (!oldest)
			return false;
		drop_names(k, oldest);
	}
	return true;
}

/* Read the names of key's directory and its version in one statement,
 * and remember them if that is the version remembered with its
 * attributes; then ask() again. */
static enum known list_dir(struct pg_layer *p, const char *key,
			   struct dsfs_attr *a, struct dsfs_attr *parent)
{
	struct pg_known *k = &p->known;
	const char *slash = strrchr(key, '/');
	struct names_args na = {0};
	struct pg_known_dir *d;
	bool kept = false;
	struct htab names;
	size_t count = 0;
	char *dir;
	uint64_t gen;
	int rc, n;

	dir = strndup(key, (size_t)(slash - key));
	if (!dir)
		return KNOWN_NOTHING;
	na.dir = dir;
	pthread_mutex_lock(&k->lock);
	d = find(k, dir, strlen(dir));
	if (d)
		d->tried_ms = pg_now_ms(); /* one reading per keep_ms */
	gen = k->gen;
	pthread_mutex_unlock(&k->lock);

	rc = pg_tx_run(p, PG_ONE, "list", dir, names_fn, &na);
	n = rc ? 0 : libpq.PQntuples(na.rows);
	/* No row: the directory is gone.  More than the bound: too big. */
	if (n > 0 && n <= PG_KNOWN_NAMES && table_of(na.rows, &names, &count)) {
		uint64_t version = (uint64_t)pg_get_i64(na.rows, 0, 0);

		pthread_mutex_lock(&k->lock);
		d = find(k, dir, strlen(dir));
		if (k->gen == gen && d && !d->listed &&
		    d->a.version == version && room_for(k, d, count)) {
			d->names = names;
			d->listed = true;
			k->nnames += count;
			kept = true;
		}
		pthread_mutex_unlock(&k->lock);
		if (!kept) {
			htab_drain(&names, free_name, NULL);
			htab_free(&names);
		}
	}
	libpq.PQclear(na.rows);
	free(dir);
	return ask(p, key, a, parent);
}

/* ---- lookup() ------------------------------------------------------- */

struct lookup_args {
	struct dsfs_attr *a;
	bool room; /* key is not there, and its parent is a directory */
	struct dsfs_attr parent;
};

/* The row and its parent's in one statement: a name missed in a
 * directory of this layer may be made there without asking again
 * (layer_pg_defer.c). */
static int lookup_fn(struct pg_tx *t, void *arg)
{
	struct lookup_args *la = arg;
	struct layer_key k;
	bool found;
	int rc = pg_target(t, t->key, &k, la->a, &found, &la->parent);

	la->room = rc == 0 && !found;
	if (rc == 0)
		return found ? 0 : -ENOENT;
	/* A bad key, a parent that is no directory: nothing there. */
	return rc == -EINVAL || rc == -ENOTDIR ? -ENOENT : rc;
}

int pg_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a)
{
	struct pg_layer *p = to_pg(l);
	struct lookup_args la = {.a = a};
	const char *slash = strrchr(key, '/');
	enum known known;
	uint64_t gen;
	int rc;

	if (pg_defer_find(p, key, a))
		return 0;
	known = ask(p, key, a, &la.parent);
	if (known == KNOWN_LIST)
		known = list_dir(p, key, a, &la.parent);
	if (known == KNOWN_DIR)
		return 0;
	if (known == KNOWN_NOT) {
		pg_defer_room(p, key, &la.parent);
		return -ENOENT;
	}
	gen = gen_of(p);
	rc = pg_tx_run(p, PG_ONE, "lookup", key, lookup_fn, &la);
	if (la.room)
		pg_defer_room(p, key, &la.parent);
	if (!keep_of(p))
		return rc;
	if (rc == 0 && a->kind == DSFS_DIR)
		remember(p, gen, key, strlen(key), a, false);
	if (la.room && la.parent.kind == DSFS_DIR && slash)
		remember(p, gen, key, (size_t)(slash - key), &la.parent, true);
	return rc;
}

/* ---- what changed --------------------------------------------------- */

void pg_known_made(struct pg_layer *p, const char *key, int64_t at_ns,
		   uint64_t version)
{
	struct pg_known *k = &p->known;
	const char *slash = strrchr(key, '/');
	struct pg_known_dir *d;

	if (!keep_of(p) || !slash)
		return;
	pthread_mutex_lock(&k->lock);
	bump(k);
	d = find(k, key, (size_t)(slash - key));
	if (d) {
		d->a.mtime = d->a.ctime = layer_ns_time(at_ns);
		d->a.version = version;
		add_name(k, d, slash + 1);
	}
	pthread_mutex_unlock(&k->lock);
}

/* Whether a is key or below it. */
static bool at_or_below(const char *a, const char *key, size_t len)
{
	return strncmp(a, key, len) == 0 && (a[len] == '\0' || a[len] == '/');
}

void pg_known_forget(struct pg_layer *p, const char *key)
{
	struct pg_known *k = &p->known;
	struct pg_known_dir *d;
	const char *slash;
	size_t len;
	int i;

	if (!keep_of(p))
		return;
	pthread_mutex_lock(&k->lock);
	bump(k);
	if (!key) {
		drop_all(k);
		goto out;
	}
	len = strlen(key);
	for (i = 0; i < PG_KNOWN_DIRS; i++)
		if (k->dirs[i].key && at_or_below(k->dirs[i].key, key, len))
			drop_dir(k, &k->dirs[i]);
	slash = strrchr(key, '/');
	d = slash ? find(k, key, (size_t)(slash - key)) : NULL;
	if (d) {
		d->at_ms = 0; /* its times changed */
		d->told = true;
		add_name(k, d, slash + 1);
	}
out:
	pthread_mutex_unlock(&k->lock);
}

void pg_forget(struct dsfs_layer *l, const char *key)
{
	pg_known_forget(to_pg(l), key);
}

int layer_pg_remember(struct dsfs_layer *l, unsigned ms)
{
	struct pg_layer *p;

	if (!l || l->ops != &pg_ops)
		return -EINVAL;
	p = to_pg(l);
	pthread_mutex_lock(&p->known.lock);
	bump(&p->known);
	drop_all(&p->known);
	__atomic_store_n(&p->known.keep_ms, (int64_t)ms, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&p->known.lock);
	return 0;
}
