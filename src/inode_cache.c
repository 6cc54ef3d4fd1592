/*
 * inode_cache.c - the page-cache identities of the node table's nodes:
 * which version a node's page-cache readers read, when a writer or
 * another version retires the node, and what a retired node answers.
 * pagecache.c has the argument these keep; inode.c the table itself.
 */
#include "inode.h"
#include "inode_table.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* Only KEEP, ATTRS and FRESH, which made n->x, are counted, and n->x
 * stays while they are.  The last one done leaves what the pages hold in
 * n itself (cached_version), and frees x unless something else is in it. */
void node_cache_done(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	n->x->cache_readers--;
	/* What the readers read is no longer needed while n has its name;
	 * once detached, it is what fstat answers. */
	if (n->x->cache_readers == 0 && n->parent) {
		free(n->x->gone);
		n->x->gone = NULL;
	}
	node_extra_trim(n);
	pthread_mutex_unlock(&t->lock);
}

/* Called by the FRESH, FILL or ATTRS reader before its reply, so before its
 * node_cache_done(): n->x is there. */
void node_cache_filled(struct node_table *t, struct node *n)
{
	pthread_mutex_lock(&t->lock);
	n->x->filling = false;
	node_extra_trim(n);
	pthread_mutex_unlock(&t->lock);
}

int node_gone(struct node_table *t, struct node *n, struct dsfs_attr *a)
{
	int rc = -ESTALE;

	pthread_mutex_lock(&t->lock);
	if (n->x && n->x->gone) {
		*a = *n->x->gone;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

/* Whether writers sent to n may still be on their way (ticks compared
 * by difference, so the clock may wrap). */
static bool pending(const struct node_extra *x, uint16_t now)
{
	return x->pending_at &&
	       (uint16_t)(now - x->pending_at) < NODE_PENDING_TICKS;
}

/* No writer is open on n or on its way to it: the kernel's attributes of
 * the inode change only by what dsfs answers. */
static bool quiet(const struct node *n)
{
	return !n->writers_lost &&
	       (!n->x || (n->x->writers == 0 && !n->x->pending_at));
}

int node_cache_reader_open(struct node_table *t, struct node *n,
			   const struct dsfs_attr *a, int layer, uint16_t now,
			   bool *dropped)
{
	struct node_extra *x;
	bool same, pageless;
	int how = NODE_CACHE_BYPASS;

	*dropped = false;
	pthread_mutex_lock(&t->lock);
	/* Nothing can be remembered of this reader without x: the page
	 * cache is left to the others. */
	x = node_extra_get(n);
	if (!x)
		goto out;
	if (x->pending_at && !pending(x, now))
		x->pending_at = 0; /* freed by the caller's node_put() */
	same = n->cached_version == a->version && n->cached_layer == layer;
	if (x->writers > 0 || n->writers_lost || pending(x, now) || !n->parent)
		goto out;
	if (x->cache_readers > 0) {
		if (same && x->filling) {
			/* Its first reader has not dropped the kernel's
			 * attributes yet: this one would reply first. */
			goto out;
		} else if (same) {
			x->cache_readers++;
			how = NODE_CACHE_KEEP;
		} else {
			/* Its readers keep the version they read. */
			node_retire_locked(t, n, NULL);
			how = NODE_CACHE_RETIRED;
		}
		goto out;
	}
	/* The first page-cache reader: what it reads is kept for a
	 * retirement (node_cache_done() frees it). */
	free(x->gone);
	x->gone = malloc(sizeof(*x->gone));
	if (!x->gone)
		goto out;
	*x->gone = *a;
	/* Pages are filled by page-cache readers, and by a writer's commit
	 * (pages_unknown until the commit vouches for them): those of
	 * another version can be there only if one read it or one was
	 * pushed. */
	pageless = (n->cached_version == 0 || n->attrs_only) &&
		   !n->pages_unknown;
	*dropped = (!same && !pageless) || n->pages_unknown;
	if (n->pages_unknown || !same || (pageless && n->attrs_other))
		how = NODE_CACHE_FRESH;
	else if (pageless)
		how = NODE_CACHE_FILL;
	else
		how = n->attrs_other ? NODE_CACHE_ATTRS : NODE_CACHE_KEEP;
	n->attrs_other = false;
	n->attrs_only = false;
	n->pages_unknown = false;
	x->filling = how != NODE_CACHE_KEEP;
	n->cached_version = a->version;
	n->cached_layer = (unsigned)layer;
	x->cache_readers = 1;
out:
	/* A bypass counts nothing: x, made or emptied (pending_at) here,
	 * may hold nothing. */
	node_extra_trim(n);
	pthread_mutex_unlock(&t->lock);
	return how;
}

int node_writer_open(struct node_table *t, struct node *n, uint16_t now)
{
	struct node_extra *x;
	struct node *next;
	int rc = 0;

	pthread_mutex_lock(&t->lock);
	x = node_extra_get(n);
	if (!x) {
		/* No page-cache reader either (they live in x). */
		n->writers_lost = true;
		goto out;
	}
	if (x->pending_at && !pending(x, now))
		x->pending_at = 0;
	if (x->cache_readers == 0) {
		/* Its truncation and writes set the kernel's size. */
		n->attrs_other = true;
		x->writers++;
		goto out;
	}
	if (n->parent)
		node_retire_locked(t, n, NULL);
	/* The node the kernel's new walk will find: readers that find it
	 * before this writer opens it do not fill its page cache, or the
	 * writer's second open would meet them too. */
	if (x->was_parent && x->was_name) {
		next = node_find_child(t, x->was_parent, x->was_name);
		/* Moved there by a rename and read already: retired too (the
		 * caller's notice drops the same name). */
		if (next && next->x && next->x->cache_readers > 0) {
			node_retire_locked(t, next, NULL);
			next = NULL;
		}
		if (!next)
			next = node_new(t, x->was_parent, x->was_name);
		if (next && node_extra_get(next))
			next->x->pending_at = now ? now : 1;
	}
	rc = -ESTALE;
out:
	pthread_mutex_unlock(&t->lock);
	return rc;
}

uint32_t node_pages_pushing(struct node_table *t, struct node *n)
{
	struct node_extra *x;
	uint32_t ticket = 0;

	pthread_mutex_lock(&t->lock);
	x = n->x;
	/* Counted writers keep x, and no page-cache reader is open. */
	if (x && x->writers > 0 && x->cache_readers == 0 && !n->writers_lost &&
	    n->parent) {
		n->pages_unknown = true;
		ticket = ++x->push_ticket;
		if (ticket == 0)
			ticket = ++x->push_ticket;
	}
	pthread_mutex_unlock(&t->lock);
	return ticket;
}

bool node_pages_committed(struct node_table *t, struct node *n, uint32_t ticket,
			  uint64_t version, int layer)
{
	struct node_extra *x;
	bool vouched = false;

	pthread_mutex_lock(&t->lock);
	x = n->x;
	if (x && ticket && x->push_ticket == ticket && n->pages_unknown &&
	    x->cache_readers == 0 && n->parent) {
		n->pages_unknown = false;
		n->cached_version = version;
		n->cached_layer = (unsigned)layer;
		n->attrs_only = false;
		/* The commit drops the kernel's attributes next (file.c):
		 * what it learns after that is this version's, or another
		 * one's through node_cache_seen(). */
		n->attrs_other = false;
		vouched = true;
	}
	pthread_mutex_unlock(&t->lock);
	return vouched;
}

int node_cache_seen(struct node_table *t, struct node *n, uint64_t version,
		    int layer)
{
	int seen = NODE_SEEN_SAME;

	pthread_mutex_lock(&t->lock);
	/* Detached since the caller found the version by its name (another
	 * thread retired it, a rename replaced it): the version is the
	 * name's, not n's, whose readers may read an older one. */
	if (!n->parent) {
		seen = NODE_SEEN_DETACHED;
	} else if (n->cached_version != version || n->cached_layer != layer) {
		if (n->x && n->x->cache_readers > 0) {
			node_retire_locked(t, n, NULL);
			seen = NODE_SEEN_RETIRED;
		} else if ((n->cached_version == 0 || n->attrs_only) &&
			   quiet(n)) {
			/* No pages to keep: the version answered now is what
			 * the kernel's attributes say.  An answer of another
			 * version found earlier and replied later is refused
			 * by the kernel (its attr_version is older). */
			n->cached_version = version;
			n->cached_layer = (unsigned)layer;
			n->attrs_only = true;
			n->attrs_other = false;
		} else {
			/* The caller answers this version's attributes; the
			 * pages keep cached_version's. */
			n->attrs_other = true;
		}
	} else if (n->attrs_only && quiet(n)) {
		/* Answered again after a writer that committed nothing
		 * changed the kernel's size: the kernel is told it anew. */
		n->attrs_other = false;
	}
	pthread_mutex_unlock(&t->lock);
	return seen;
}

bool node_retire_cached(struct node_table *t, struct node *n)
{
	bool retire;

	pthread_mutex_lock(&t->lock);
	retire = n->x && n->x->cache_readers > 0 && n->parent;
	if (retire)
		node_retire_locked(t, n, NULL);
	pthread_mutex_unlock(&t->lock);
	return retire;
}

int node_retired_name(struct node_table *t, struct node *n, uint64_t *parent,
		      char *buf, size_t size)
{
	struct node_extra *x;
	int rc = -ESTALE;

	pthread_mutex_lock(&t->lock);
	x = n->x;
	if (x && x->was_parent && x->was_name &&
	    (size_t)snprintf(buf, size, "%s", x->was_name) < size) {
		*parent = x->was_parent->ino;
		rc = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return rc;
}

void nodes_forget_cache(struct node_table *t)
{
	struct node *n;
	size_t pos = 0;

	pthread_mutex_lock(&t->lock);
	while ((n = ptab_next(&t->by_ino, &pos)) != NULL)
		n->cached_layer = NODE_NO_LAYER;
	pthread_mutex_unlock(&t->lock);
}
