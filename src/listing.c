/*
 * listing.c - merged directory listings: every layer's children gathered,
 * each name once, a whiteout hiding the names below it.
 *
 * A listing is held compact because a directory may hold a million names:
 * the names go into one growing block and each item is 8 bytes (where its
 * name starts, its kind, and where a lookup would find it), instead of a
 * copy of every name and attribute.  The attributes a layer reports are not
 * kept: what needs them looks the name up (READDIRPLUS, dirsource.c).
 */
#include "dsfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* listing_gather()'s state while the layers list into out. */
struct gather {
	struct listing *out;
	int layer;
	bool devices;
};

/* Room for need units of unit bytes at *p, which has room for *cap: 0 or
 * -ENOMEM. */
static int grow(void **p, size_t *cap, size_t need, size_t unit)
{
	size_t n = *cap ? *cap : 64;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	q = reallocarray(*p, n, unit);
	if (q) {
		*p = q;
		*cap = n;
	}
	return q ? 0 : -ENOMEM;
}

/* A new last item named name, its other fields left for the caller; NULL
 * with *err set when it cannot be had (-ENOMEM, or -EOVERFLOW when the
 * names come to 4 GiB: an item says where its name starts in 32 bits). */
static struct dirent_item *listing_push(struct listing *ls, const char *name,
					int *err)
{
	size_t len = strlen(name) + 1;
	struct dirent_item *it;
	void *items = ls->items, *names = ls->names;

	*err = ls->names_len + len > UINT32_MAX ? -EOVERFLOW : 0;
	if (!*err)
		*err = grow(&items, &ls->cap, ls->count + 1,
			    sizeof(*ls->items));
	ls->items = items;
	if (!*err)
		*err = grow(&names, &ls->names_cap, ls->names_len + len, 1);
	ls->names = names;
	if (*err)
		return NULL;
	it = &ls->items[ls->count++];
	memset(it, 0, sizeof(*it));
	it->name = (uint32_t)ls->names_len;
	memcpy(ls->names + ls->names_len, name, len);
	ls->names_len += len;
	return it;
}

const char *listing_name(const struct listing *ls, size_t i)
{
	return ls->names + ls->items[i].name;
}

void listing_add(struct listing *ls, const char *name, const struct found *f,
		 int *err)
{
	struct dirent_item *it;

	if (*err)
		return;
	it = listing_push(ls, name, err);
	if (!it)
		return;
	it->kind = (uint8_t)f->attr.kind;
	it->opaque = f->attr.opaque;
	it->layer = (uint8_t)f->layer;
	it->limit = (uint8_t)f->limit;
}

void listing_free(struct listing *ls)
{
	free(ls->items);
	free(ls->names);
	memset(ls, 0, sizeof(*ls));
}

static int gather_cb(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct gather *g = ctx;
	struct dirent_item *it;
	int err;

	if (g->devices) {
		/* devices/ shows the __ID directories of kv/ as ID. */
		if (strncmp(name, "__", 2) != 0 || name[2] == '\0' ||
		    (a->kind != DSFS_DIR && a->kind != DSFS_WHITEOUT))
			return 0;
		name += 2;
	}
	it = listing_push(g->out, name, &err);
	if (!it)
		return err;
	it->kind = (uint8_t)a->kind;
	it->opaque = a->opaque;
	it->layer = (uint8_t)g->layer;
	return 0;
}

/* By name, then layer: the first item of each name is the one a lookup
 * finds. */
static int layered_cmp(const void *x, const void *y, void *arg)
{
	const struct dirent_item *a = x, *b = y;
	const char *names = arg;
	int c = strcmp(names + a->name, names + b->name);

	return c ? c : a->layer - b->layer;
}

int listing_gather(struct dsfs_stack *s, const struct loc *l, bool devices,
		   struct listing *out)
{
	struct gather g = {.out = out, .devices = devices};
	int first = l->view == VIEW_LAYER ? l->layer : 0;
	int last = l->view == VIEW_LAYER ? l->layer : l->limit;
	struct dirent_item *items;
	size_t i, j, k, n;
	int rc = 0;

	for (g.layer = first; g.layer <= last && g.layer < DSFS_NLAYERS;
	     g.layer++) {
		rc = layer_list(s->layer[g.layer], l->key, gather_cb, &g);
		if (rc == -ENOENT || rc == -ENOTDIR)
			rc = 0;
		if (rc) {
			listing_free(out);
			return rc;
		}
	}
	items = out->items;
	n = out->count;
	if (n)
		qsort_r(items, n, sizeof(*items), layered_cmp, out->names);
	/* Compact in place: items[j] is written only after every item it
	 * held was read.  The names of the items dropped stay in the block
	 * until the listing is freed. */
	for (i = j = 0; i < n; i = k) {
		struct dirent_item *it = &items[i];
		const char *name = out->names + it->name;

		for (k = i + 1;
		     k < n && strcmp(out->names + items[k].name, name) == 0;
		     k++)
			; /* hidden by items[i] */
		if (it->kind == DSFS_WHITEOUT)
			continue;
		it->limit = (uint8_t)(l->view == VIEW_LAYER ? l->layer :
				      it->kind == DSFS_DIR && it->opaque ?
							      it->layer :
							      l->limit);
		items[j++] = *it;
	}
	out->count = j;
	return 0;
}
