/*
 * listing.c - merged directory listings: every layer's children gathered,
 * each name once, a whiteout hiding the names below it.
 *
 * A listing is held compact because a directory may hold a million names:
 * the names go into one growing block and each item is 8 bytes (where its
 * name starts, its kind, and the top 30 bits of its offset), instead of a
 * copy of every name and attribute.  The rest of an offset is the name's
 * hash again, computed where two neighbours' tops tie (one pair of
 * neighbours in a thousand, in a million names) and for the names a
 * readdir sends.  The attributes a layer reports are not kept: what needs
 * them looks the name up (READDIRPLUS, dirsource.c); nor is the layer a
 * name was found in: the layers are listed from the top, so of the items
 * of one name the first listed is the one a lookup finds.
 *
 * The items are sorted once, by offset (the hash of the name, dirlist.h),
 * then name, then the order listed in: a name that several layers list
 * comes out as a run whose first item is the one a lookup finds, and the
 * listing is in the order readdir serves it.  The sort is in place (an
 * introsort): glibc's qsort() would allocate a copy of the items, 8 MiB
 * for a million names.
 */
#include "dsfs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

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

/* A new last item named name, of kind; 0, or -ENOMEM, or -EOVERFLOW when
 * the names come to 4 GiB (an item says where its name starts in 32
 * bits). */
static int listing_push(struct listing *ls, const char *name, int kind)
{
	size_t len = strlen(name) + 1;
	uint64_t off = listing_off(name);
	struct dirent_item *it;
	void *items = ls->items, *names = ls->names;
	int err;

	err = ls->names_len + len > UINT32_MAX ? -EOVERFLOW : 0;
	if (!err)
		err = grow(&items, &ls->cap, ls->count + 1, sizeof(*ls->items));
	ls->items = items;
	if (!err)
		err = grow(&names, &ls->names_cap, ls->names_len + len, 1);
	ls->names = names;
	if (err)
		return err;
	it = &ls->items[ls->count++];
	it->key = (uint32_t)(off >> LISTING_KEY_SHIFT);
	it->kind = (uint32_t)kind & 3;
	it->name = (uint32_t)ls->names_len;
	memcpy(ls->names + ls->names_len, name, len);
	ls->names_len += len;
	return 0;
}

/* Unseeded: an offset must mean the same name in every listing of the
 * directory for as long as the mount lives, whichever listing a reader
 * resumes in. */
uint64_t listing_off(const char *name)
{
	uint64_t h = dsfs_hash_str(0, name);

	h &= 0x7fffffffffffffffull; /* off_t is signed */
	return h < LISTING_FIRST_OFF ? h + LISTING_FIRST_OFF : h;
}

const char *listing_name(const struct listing *ls, size_t i)
{
	return ls->names + ls->items[i].name;
}

uint64_t listing_item_off(const char *names, const struct dirent_item *it)
{
	return listing_off(names + it->name);
}

int listing_item_vs_off(const char *names, const struct dirent_item *it,
			uint64_t off)
{
	uint32_t key = (uint32_t)(off >> LISTING_KEY_SHIFT);
	uint64_t o;

	if (it->key != key)
		return it->key < key ? -1 : 1;
	o = listing_item_off(names, it);
	return o < off ? -1 : o > off;
}

void listing_add(struct listing *ls, const char *name, const struct found *f,
		 int *err)
{
	if (!*err)
		*err = listing_push(ls, name, f->attr.kind);
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

	if (g->devices) {
		/* devices/ shows the __ID directories of kv/ as ID. */
		if (strncmp(name, "__", 2) != 0 || name[2] == '\0' ||
		    (a->kind != DSFS_DIR && a->kind != DSFS_WHITEOUT))
			return 0;
		name += 2;
	}
	return listing_push(g->out, name, a->kind);
}

/* ---- the sort -------------------------------------------------------- */

/* By offset, then name, then the order listed in. */
static int item_cmp(const struct dirent_item *a, const struct dirent_item *b,
		    const char *names)
{
	uint64_t oa, ob;
	int c;

	if (a->key != b->key)
		return a->key < b->key ? -1 : 1;
	oa = listing_item_off(names, a);
	ob = listing_item_off(names, b);
	if (oa != ob)
		return oa < ob ? -1 : 1;
	c = strcmp(names + a->name, names + b->name);
	if (c)
		return c;
	/* The same name: the one listed first, from the upper layer. */
	return a->name < b->name ? -1 : a->name > b->name;
}

static void item_swap(struct dirent_item *a, struct dirent_item *b)
{
	struct dirent_item t = *a;

	*a = *b;
	*b = t;
}

static void insertion_sort(struct dirent_item *v, size_t n, const char *names)
{
	size_t i, j;

	for (i = 1; i < n; i++) {
		struct dirent_item x = v[i];

		for (j = i; j > 0 && item_cmp(&v[j - 1], &x, names) > 0; j--)
			v[j] = v[j - 1];
		v[j] = x;
	}
}

static void sift_down(struct dirent_item *v, size_t i, size_t n,
		      const char *names)
{
	size_t c;

	while ((c = 2 * i + 1) < n) {
		if (c + 1 < n && item_cmp(&v[c], &v[c + 1], names) < 0)
			c++;
		if (item_cmp(&v[i], &v[c], names) >= 0)
			return;
		item_swap(&v[i], &v[c]);
		i = c;
	}
}

/* What the quicksort falls back to when its partitions keep coming out
 * lopsided (names chosen to collide), so that a sort is never quadratic. */
static void heap_sort(struct dirent_item *v, size_t n, const char *names)
{
	size_t i;

	for (i = n / 2; i-- > 0;)
		sift_down(v, i, n, names);
	for (i = n; i-- > 1;) {
		item_swap(&v[0], &v[i]);
		sift_down(v, 0, i, names);
	}
}

/* Hoare's partition around the median of the first, middle and last
 * items: [0, returned] and (returned, n) are both non-empty, the first
 * holding nothing above the pivot and the second nothing below it. */
static size_t partition(struct dirent_item *v, size_t n, const char *names)
{
	size_t mid = n / 2, i = 0, j = n - 1;
	struct dirent_item pivot;

	if (item_cmp(&v[mid], &v[0], names) < 0)
		item_swap(&v[mid], &v[0]);
	if (item_cmp(&v[n - 1], &v[0], names) < 0)
		item_swap(&v[n - 1], &v[0]);
	if (item_cmp(&v[n - 1], &v[mid], names) < 0)
		item_swap(&v[n - 1], &v[mid]);
	pivot = v[mid];
	for (;;) {
		while (item_cmp(&v[i], &pivot, names) < 0)
			i++;
		while (item_cmp(&v[j], &pivot, names) > 0)
			j--;
		if (i >= j)
			return j;
		item_swap(&v[i], &v[j]);
		i++;
		j--;
	}
}

static void intro_sort(struct dirent_item *v, size_t n, unsigned depth,
		       const char *names)
{
	while (n > 16) {
		size_t p;

		if (depth-- == 0) {
			heap_sort(v, n, names);
			return;
		}
		p = partition(v, n, names) + 1;
		/* Recurse into the smaller part: the stack stays shallow. */
		if (p < n - p) {
			intro_sort(v, p, depth, names);
			v += p;
			n -= p;
		} else {
			intro_sort(v + p, n - p, depth, names);
			n = p;
		}
	}
	insertion_sort(v, n, names);
}

bool listing_sorted(const struct listing *ls)
{
	size_t i;

	for (i = 1; i < ls->count; i++)
		if (ls->items[i - 1].key > ls->items[i].key ||
		    (ls->items[i - 1].key == ls->items[i].key &&
		     listing_item_off(ls->names, &ls->items[i - 1]) >
			     listing_item_off(ls->names, &ls->items[i])))
			return false;
	return true;
}

void listing_sort(struct listing *ls)
{
	unsigned depth = 0;
	size_t n;

	for (n = ls->count; n > 1; n /= 2)
		depth += 2;
	intro_sort(ls->items, ls->count, depth, ls->names);
}

/* Give back what the blocks grew beyond their contents.  A large block is
 * a mapping of its own (main.c's mmap threshold), so this is an mremap()
 * that copies nothing; a failure only leaves the block as it was. */
static void trim(struct listing *ls)
{
	void *p;

	if (ls->count < ls->cap && ls->count > 0) {
		p = realloc(ls->items, ls->count * sizeof(*ls->items));
		if (p) {
			ls->items = p;
			ls->cap = ls->count;
		}
	}
	if (ls->names_len < ls->names_cap && ls->names_len > 0) {
		p = realloc(ls->names, ls->names_len);
		if (p) {
			ls->names = p;
			ls->names_cap = ls->names_len;
		}
	}
}

/* ---- gathering ------------------------------------------------------- */

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
		rc = layer_list_kinds(s->layer[g.layer], l->key, gather_cb, &g);
		if (rc == -ENOENT || rc == -ENOTDIR)
			rc = 0;
		if (rc) {
			listing_free(out);
			return rc;
		}
	}
	listing_sort(out);
	items = out->items;
	n = out->count;
	/* Compact in place: items[j] is written only after every item it
	 * held was read.  The names of the items dropped stay in the block
	 * until the listing is freed.  The items of one name are together:
	 * they have the same offset, and sort by name among those. */
	for (i = j = 0; i < n; i = k) {
		struct dirent_item *it = &items[i];
		const char *name = out->names + it->name;

		for (k = i + 1; k < n && items[k].key == it->key &&
				strcmp(out->names + items[k].name, name) == 0;
		     k++)
			; /* hidden by items[i] */
		if (it->kind == DSFS_WHITEOUT)
			continue;
		items[j++] = *it;
	}
	out->count = j;
	trim(out);
	return 0;
}
