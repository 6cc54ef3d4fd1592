/*
 * test_htab.c - unit tests of the intrusive hash table (src/htab.c):
 * lookups by key bytes, growth and shrinking under many keys, deletion
 * from chains, keys that are prefixes of stored ones, the walk and the
 * drain.
 *
 * Output is TAP (tests/unit/tap.h).
 */
#include "hash.h"
#include "htab.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANY 5000

struct item {
	struct htab_node h;
	char key[16];
	int value;
	int seen; /* times met by a walk or a drain */
};

static struct item items[MANY];

static struct item *find(const struct htab *t, const char *key)
{
	struct htab_node *n = htab_find(t, key, strlen(key));

	return n ? (struct item *)n : NULL;
}

static void add(struct htab *t, int i)
{
	snprintf(items[i].key, sizeof(items[i].key), "k/%d", i);
	items[i].value = i;
	items[i].seen = 0;
	htab_add(t, &items[i].h, items[i].key, strlen(items[i].key));
}

/* Every item in [lo, hi) is found with its own value. */
static bool all_found(const struct htab *t, int lo, int hi)
{
	int i;

	for (i = lo; i < hi; i++) {
		struct item *it = find(t, items[i].key);

		if (!it || it->value != i)
			return false;
	}
	return true;
}

static bool none_found(const struct htab *t, int lo, int hi)
{
	char key[16];
	int i;

	for (i = lo; i < hi; i++) {
		snprintf(key, sizeof(key), "k/%d", i);
		if (find(t, key))
			return false;
	}
	return true;
}

static void t_basics(void)
{
	struct htab t;
	struct htab_node *n;

	is_int(htab_init(&t, 42), 0, "init");
	is_int((long long)t.nb, HTAB_MIN, "a new table has HTAB_MIN buckets");
	ok(!find(&t, "k/0"), "nothing in an empty table");
	ok(!htab_next(&t, NULL), "an empty table walks to nothing");
	add(&t, 0);
	add(&t, 1);
	is_int((long long)t.n, 2, "two nodes counted");
	ok(find(&t, "k/0") == &items[0], "k/0 found");
	ok(find(&t, "k/1") == &items[1], "k/1 found");
	ok(!find(&t, "k/2"), "k/2 not found");
	ok(!find(&t, "k/"), "a prefix of a key is not the key");
	/* Lookups take bytes, not strings: a prefix of a longer buffer. */
	n = htab_find(&t, "k/1/more", 3);
	ok(n == &items[1].h, "a key given by length within a longer string");
	htab_del(&t, &items[0].h);
	ok(!find(&t, "k/0"), "k/0 gone after delete");
	ok(find(&t, "k/1") == &items[1], "k/1 still there");
	is_int((long long)t.n, 1, "one node counted");
	htab_del(&t, &items[1].h);
	is_int((long long)t.n, 0, "none counted");
	htab_free(&t);
}

static void t_grow_shrink(void)
{
	struct htab t;
	size_t peak;
	int i;

	htab_init(&t, 7);
	for (i = 0; i < MANY; i++)
		add(&t, i);
	is_int((long long)t.n, MANY, "every node counted");
	ok(t.nb >= MANY && (t.nb & (t.nb - 1)) == 0,
	   "the table grew to a power of two >= its nodes (%zu)", t.nb);
	ok(all_found(&t, 0, MANY), "every key found after growth");
	peak = t.nb;
	/* Delete from the middle of chains and from both ends. */
	for (i = 0; i < MANY; i += 2)
		htab_del(&t, &items[i].h);
	for (i = 1; i < MANY; i += 2)
		if (find(&t, items[i].key) != &items[i])
			break;
	ok(i >= MANY, "odd keys found after the even ones went");
	for (i = 0; i < MANY; i += 2)
		if (find(&t, items[i].key))
			break;
	ok(i >= MANY, "even keys gone");
	for (i = 1; i < MANY - 10; i += 2)
		htab_del(&t, &items[i].h);
	is_int((long long)t.n, 5, "five nodes left");
	ok(t.nb < peak, "the table shrank (%zu < %zu buckets)", t.nb, peak);
	ok(t.nb >= HTAB_MIN, "never below HTAB_MIN buckets");
	ok(all_found(&t, MANY - 9, MANY - 8) && all_found(&t, MANY - 1, MANY),
	   "the last keys found after shrinking");
	htab_free(&t);
}

/* The same keys land in different buckets under different seeds, yet are
 * found under each: the seed reaches the hash. */
static void t_seed(void)
{
	struct htab a, b;
	int i, differ = 0;

	htab_init(&a, 1);
	htab_init(&b, 2);
	for (i = 0; i < 8; i++) {
		add(&a, i);
		if (items[i].h.hash !=
		    dsfs_hash(2, items[i].key, strlen(items[i].key)))
			differ++;
	}
	ok(differ > 0, "the seed changes the hash");
	ok(all_found(&a, 0, 8), "found under seed 1");
	ok(none_found(&b, 0, 8), "not in another table");
	htab_free(&a);
	htab_free(&b);
}

static void t_walk(void)
{
	struct htab t;
	struct htab_node *n;
	int i, count = 0, twice = 0, missed = 0;

	htab_init(&t, 3);
	for (i = 0; i < 300; i++)
		add(&t, i);
	for (n = htab_next(&t, NULL); n; n = htab_next(&t, n)) {
		struct item *it = (struct item *)n;

		if (it->seen++)
			twice++;
		count++;
	}
	for (i = 0; i < 300; i++)
		if (items[i].seen != 1)
			missed++;
	is_int(count, 300, "the walk visits every node");
	is_int(twice, 0, "no node twice");
	is_int(missed, 0, "none missed");
	htab_free(&t);
}

struct drain_ctx {
	struct htab *t;
	int calls;
};

/* Keep the multiples of 3 (added back), drop the rest. */
static void keep_thirds(struct htab_node *n, void *arg)
{
	struct drain_ctx *c = arg;
	struct item *it = (struct item *)n;

	c->calls++;
	it->seen++;
	if (it->value % 3 == 0)
		htab_add(c->t, n, it->key, strlen(it->key));
}

static void t_drain(void)
{
	struct htab t;
	struct drain_ctx c = {&t, 0};
	int i, kept = 0, twice = 0;

	htab_init(&t, 5);
	for (i = 0; i < 1000; i++)
		add(&t, i);
	htab_drain(&t, keep_thirds, &c);
	for (i = 0; i < 1000; i++) {
		if (items[i].seen > 1)
			twice++;
		if (find(&t, items[i].key) == &items[i])
			kept++;
	}
	is_int(c.calls, 1000, "drain calls fn once per node");
	is_int(twice, 0, "a node added back is not met again");
	is_int(kept, 334, "the nodes added back are found");
	is_int((long long)t.n, 334, "and counted");
	ok(none_found(&t, 1, 2) && none_found(&t, 2, 3),
	   "the dropped ones are not");
	c.calls = 0;
	htab_drain(&t, keep_thirds, &c);
	is_int(c.calls, 334, "a second drain meets only what was kept");
	c.calls = 0;
	for (i = 0; i < 1000; i += 3)
		htab_del(&t, &items[i].h);
	is_int((long long)t.n, 0, "emptied by deletes");
	htab_drain(&t, keep_thirds, &c);
	is_int(c.calls, 0, "draining an empty table calls nothing");
	is_int((long long)t.nb, HTAB_MIN, "and leaves HTAB_MIN buckets");
	htab_free(&t);
}

int main(void)
{
	plan_no_plan();
	t_basics();
	t_grow_shrink();
	t_seed();
	t_walk();
	t_drain();
	return done_testing();
}
