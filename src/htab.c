/*
 * htab.c - the intrusive chained hash table (htab.h): buckets, growth and
 * shrinking, lookups by key bytes through dsfs_hash().
 */
#include "htab.h"

#include "hash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int htab_init(struct htab *t, uint64_t seed)
{
	t->b = calloc(HTAB_MIN, sizeof(*t->b));
	if (!t->b)
		return -ENOMEM;
	t->nb = HTAB_MIN;
	t->n = 0;
	t->seed = seed;
	return 0;
}

void htab_free(struct htab *t)
{
	free(t->b);
	t->b = NULL;
	t->nb = t->n = 0;
}

/* Rehash into nb buckets.  Failing to allocate is not an error: the table
 * keeps working with longer chains, so an insert never fails. */
static void resize(struct htab *t, size_t nb)
{
	struct htab_node **b, *n, *next;
	size_t i;

	b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (i = 0; i < t->nb; i++) {
		for (n = t->b[i]; n; n = next) {
			next = n->next;
			n->next = b[n->hash & (nb - 1)];
			b[n->hash & (nb - 1)] = n;
		}
	}
	free(t->b);
	t->b = b;
	t->nb = nb;
}

struct htab_node *htab_find(const struct htab *t, const char *key, size_t len)
{
	uint64_t hash = dsfs_hash(t->seed, key, len);
	struct htab_node *n;

	for (n = t->b[hash & (t->nb - 1)]; n; n = n->next)
		if (n->hash == hash && n->keylen == len &&
		    memcmp(n->key, key, len) == 0)
			return n;
	return NULL;
}

void htab_add(struct htab *t, struct htab_node *n, const char *key, size_t len)
{
	struct htab_node **b;

	n->key = key;
	n->keylen = len;
	n->hash = dsfs_hash(t->seed, key, len);
	if (t->n >= t->nb)
		resize(t, t->nb * 2);
	b = &t->b[n->hash & (t->nb - 1)];
	n->next = *b;
	*b = n;
	t->n++;
}

void htab_del(struct htab *t, struct htab_node *n)
{
	struct htab_node **p = &t->b[n->hash & (t->nb - 1)];

	while (*p != n)
		p = &(*p)->next;
	*p = n->next;
	t->n--;
	/* Shrink lazily, well below the growth point, so that a workload
	 * hovering at one size does not rehash back and forth. */
	if (t->nb > HTAB_MIN && t->n < t->nb / 8)
		resize(t, t->nb / 2);
}

struct htab_node *htab_next(const struct htab *t, const struct htab_node *n)
{
	size_t i = 0;

	if (n) {
		if (n->next)
			return n->next;
		i = (n->hash & (t->nb - 1)) + 1;
	}
	for (; i < t->nb; i++)
		if (t->b[i])
			return t->b[i];
	return NULL;
}

/* The nodes are chained into one list first, so that the table is empty
 * (and back to its smallest size) before fn sees any of them and fn may
 * add nodes back without meeting them again. */
void htab_drain(struct htab *t, void (*fn)(struct htab_node *n, void *ctx),
		void *ctx)
{
	struct htab_node *all = NULL, *n, *next;
	size_t i;

	for (i = 0; i < t->nb; i++) {
		for (n = t->b[i]; n; n = next) {
			next = n->next;
			n->next = all;
			all = n;
		}
		t->b[i] = NULL;
	}
	t->n = 0;
	if (t->nb > HTAB_MIN)
		resize(t, HTAB_MIN);
	for (n = all; n; n = next) {
		next = n->next;
		fn(n, ctx);
	}
}
