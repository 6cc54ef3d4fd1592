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

/* Room for `more` bytes in the block of names; 0, -ENOMEM or -EOVERFLOW
 * (an item says where its name starts in 32 bits). */
static int names_room(struct listing *ls, size_t more)
{
	size_t cap = ls->names_cap ? ls->names_cap : 1024;
	char *p;

	if (ls->names_len + more > UINT32_MAX)
		return -EOVERFLOW;
	if (ls->names_len + more <= ls->names_cap)
		return 0;
	while (cap < ls->names_len + more)
		cap *= 2;
	p = realloc(ls->names, cap);
	if (!p)
		return -ENOMEM;
	ls->names = p;
	ls->names_cap = cap;
	return 0;
}

/* A new last item named name, its other fields left for the caller; NULL
 * with *err set when it cannot be had. */
static struct dirent_item *listing_push(struct listing *ls, const char *name,
					int *err)
{
	size_t len = strlen(name) + 1;
	struct dirent_item *it;

	if (ls->count == ls->cap) {
		size_t cap = ls->cap ? ls->cap * 2 : 64;

		it = realloc(ls->items, cap * sizeof(*it));
		if (!it) {
			*err = -ENOMEM;
			return NULL;
		}
		ls->items = it;
		ls->cap = cap;
	}
	*err = names_room(ls, len);
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

struct gather {
	struct listing *out;
	int layer;
	bool devices;
};

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
