/*
 * ptab.c - the compact open-addressing table of pointers (ptab.h): linear
 * probing, growth and shrinking, and removal by shifting back.
 */
#include "ptab.h"

#include <errno.h>
#include <stdlib.h>

static size_t home(const struct ptab *t, const void *item)
{
	return (size_t)t->hash(item) & t->mask;
}

int ptab_init(struct ptab *t, size_t slots, uint64_t (*hash)(const void *))
{
	size_t n = PTAB_MIN;

	while (n < slots)
		n *= 2;
	*t = (struct ptab){.mask = n - 1, .hash = hash};
	t->slot = calloc(n, sizeof(*t->slot));
	return t->slot ? 0 : -ENOMEM;
}

void ptab_free(struct ptab *t)
{
	free(t->slot);
	t->slot = NULL;
	t->mask = 0;
	t->count = 0;
}

/* Move every item into n slots.  Failing to allocate is not an error: the
 * table keeps its slots. */
static void resize(struct ptab *t, size_t n)
{
	void **old = t->slot;
	size_t i, oldn = t->mask + 1;

	t->slot = calloc(n, sizeof(*t->slot));
	if (!t->slot) {
		t->slot = old;
		return;
	}
	t->mask = n - 1;
	for (i = 0; i < oldn; i++) {
		size_t j;

		if (!old[i])
			continue;
		for (j = home(t, old[i]); t->slot[j]; j = (j + 1) & t->mask)
			;
		t->slot[j] = old[i];
	}
	free(old);
}

void *ptab_find(const struct ptab *t, uint64_t hash,
		bool (*match)(const void *item, const void *key),
		const void *key)
{
	size_t i;

	for (i = (size_t)hash & t->mask; t->slot[i]; i = (i + 1) & t->mask)
		if (match(t->slot[i], key))
			return t->slot[i];
	return NULL;
}

int ptab_add(struct ptab *t, void *item)
{
	size_t i;

	/* Three quarters at most, so probes stay short. */
	if ((t->count + 1) * 4 > (t->mask + 1) * 3)
		resize(t, (t->mask + 1) * 2);
	/* One slot always stays empty: it ends every probe. */
	if (t->count + 1 > t->mask)
		return -ENOMEM;
	for (i = home(t, item); t->slot[i]; i = (i + 1) & t->mask)
		;
	t->slot[i] = item;
	t->count++;
	return 0;
}

void ptab_del(struct ptab *t, const void *item)
{
	size_t i = home(t, item), j;

	while (t->slot[i] != item)
		i = (i + 1) & t->mask;
	/* Shift back every item of the run after i that could live at i,
	 * that is whose home is not cyclically in (i, j]. */
	for (j = (i + 1) & t->mask; t->slot[j]; j = (j + 1) & t->mask) {
		size_t h = home(t, t->slot[j]);

		if (((j - h) & t->mask) >= ((j - i) & t->mask)) {
			t->slot[i] = t->slot[j];
			i = j;
		}
	}
	t->slot[i] = NULL;
	t->count--;
	/* Shrink lazily, well below the growth point, so that a table
	 * hovering at one size does not rehash back and forth. */
	if (t->mask + 1 > PTAB_MIN && t->count < (t->mask + 1) / 8)
		resize(t, (t->mask + 1) / 2);
}

void *ptab_next(const struct ptab *t, size_t *pos)
{
	for (; *pos <= t->mask; (*pos)++)
		if (t->slot[*pos])
			return t->slot[(*pos)++];
	return NULL;
}
