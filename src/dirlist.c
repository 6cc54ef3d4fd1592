/*
 * dirlist.c - directory listings shared by the open handles of a directory
 * (see dirlist.h for the order and what an offset means).
 *
 * A directory node points at its current listing (node->snap) while some
 * cursor reads it; the listing holds a reference on the node for as long,
 * and the last cursor to let go frees it.  Listings are taken outside the
 * lock (a listing of a big directory takes a while) and installed under
 * it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dirlist.h"

static void snap_free(struct dir_snap *s)
{
	free(s->items);
	free(s->names);
	free(s);
}

/* s, new, takes the listing ls, in offset order, whole: its items and
 * names are the snapshot's, with nothing copied. */
static void adopt(struct dir_snap *s, struct listing *ls)
{
	if (!listing_sorted(ls))
		listing_sort(ls);
	*s = (struct dir_snap){.count = ls->count,
			       .changes = ls->changes,
			       .items = ls->items,
			       .names = ls->names};
	ls->items = NULL;
	ls->names = NULL;
}

int dirlists_init(struct dirlists *dl, struct node_table *nodes)
{
	dl->nodes = nodes;
	return -pthread_mutex_init(&dl->lock, NULL);
}

void dirlists_destroy(struct dirlists *dl)
{
	pthread_mutex_destroy(&dl->lock);
}

/* Called with dl->lock held; returns the node reference to drop, if any,
 * once the lock is released. */
static struct node *unbind_locked(struct dir_cursor *c)
{
	struct dir_snap *s = c->snap;
	struct node *dir = NULL;

	c->snap = NULL;
	if (!s || --s->refs > 0)
		return NULL;
	if (s->dir) {
		s->dir->x->snap = NULL;
		dir = s->dir;
	}
	snap_free(s);
	return dir;
}

static void bind_locked(struct dir_cursor *c, struct dir_snap *s,
			struct node **drop)
{
	if (c->snap == s)
		return;
	*drop = unbind_locked(c);
	s->refs++;
	c->snap = s;
}

/* Make s the directory's current listing.  The node reference that
 * dir->snap holds passes from the listing s replaces, which lives on for
 * its cursors and is then freed. */
static void make_current_locked(struct dirlists *dl, struct node *dir,
				struct dir_snap **slot, struct dir_snap *s)
{
	if (*slot)
		(*slot)->dir = NULL;
	else
		node_get(dl->nodes, dir->ino);
	*slot = s;
	s->dir = dir;
}

static int take(struct node *dir, const struct dirlist_source *src,
		struct dir_snap **out)
{
	struct dir_snap *s = calloc(1, sizeof(*s));
	struct listing ls = {0};
	int rc;

	if (!s)
		return -ENOMEM;
	rc = src->take(src->arg, dir, &ls);
	if (rc == 0)
		adopt(s, &ls);
	listing_free(&ls);
	if (rc) {
		snap_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

int dirlist_get(struct dirlists *dl, struct node *dir, struct dir_cursor *c,
		const struct dirlist_source *src)
{
	struct dir_snap **slot = node_snap_slot(dl->nodes, dir), *s;
	struct node *drop = NULL;
	uint64_t since;
	int rc;

	if (!slot)
		return -ENOMEM;
	/* The cursor's listing, or else the directory's, if still good.
	 * The check is made unlocked, on a listing the cursor holds. */
	pthread_mutex_lock(&dl->lock);
	if (!c->snap || c->snap != *slot) {
		if (*slot)
			bind_locked(c, *slot, &drop);
	}
	s = c->snap;
	since = s ? s->changes : 0;
	pthread_mutex_unlock(&dl->lock);
	node_put(dl->nodes, drop);
	drop = NULL;
	if (s && !src->changed(src->arg, dir, since))
		return 0;

	rc = take(dir, src, &s);
	if (rc)
		return rc;
	pthread_mutex_lock(&dl->lock);
	if (*slot && (*slot)->changes >= s->changes) {
		/* Another handle took one as new meanwhile. */
		snap_free(s);
		s = *slot;
	} else {
		make_current_locked(dl, dir, slot, s);
	}
	bind_locked(c, s, &drop);
	pthread_mutex_unlock(&dl->lock);
	node_put(dl->nodes, drop);
	return 0;
}

void dirlist_release(struct dirlists *dl, struct dir_cursor *c)
{
	struct node *drop;

	pthread_mutex_lock(&dl->lock);
	drop = unbind_locked(c);
	pthread_mutex_unlock(&dl->lock);
	node_put(dl->nodes, drop);
}

size_t dirlist_index(const struct dir_snap *s, off_t off)
{
	size_t lo = 0, hi = s->count;

	if (off < LISTING_FIRST_OFF)
		return off < 0 ? 0 : (size_t)off;
	/* The first item whose offset is above off. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (listing_item_vs_off(s->names, &s->items[mid],
					(uint64_t)off) <= 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 2 + lo;
}

off_t dirlist_off(const struct dir_snap *s, size_t i)
{
	return i < 2 ? (off_t)(i + 1) :
		       (off_t)listing_item_off(s->names, &s->items[i - 2]);
}

const char *dirlist_name(const struct dir_snap *s, size_t i)
{
	return s->names + s->items[i - 2].name;
}

int dirlist_kind(const struct dir_snap *s, size_t i)
{
	return s->items[i - 2].kind;
}
