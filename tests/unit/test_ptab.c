/*
 * test_ptab.c - unit tests of the open-addressing table of pointers
 * (src/ptab.c): lookups through runs of colliding hashes, runs that wrap
 * around the end of the table, removal from the middle of a run (the items
 * after it must still be found), growth and shrinking, and the walk.
 * Hashes are chosen by the test, so that collisions are certain.
 *
 * Output is TAP (tests/unit/tap.h).
 */
#include "ptab.h"
#include "tap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANY 5000

struct item {
	int key;
	uint64_t hash;
	int seen; /* times met by a walk */
};

static struct item items[MANY];

static uint64_t item_hash(const void *p)
{
	return ((const struct item *)p)->hash;
}

static bool key_match(const void *p, const void *key)
{
	return ((const struct item *)p)->key == *(const int *)key;
}

static struct item *find(const struct ptab *t, int i)
{
	return ptab_find(t, items[i].hash, key_match, &items[i].key);
}

static void make(int i, uint64_t hash)
{
	items[i].key = i;
	items[i].hash = hash;
	items[i].seen = 0;
}

/* Whether exactly the items i in [0, n) with in[i] set are found. */
static bool exactly(const struct ptab *t, const bool *in, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if ((find(t, i) == &items[i]) != in[i])
			return false;
	return true;
}

static void t_collisions(void)
{
	static bool in[64];
	struct ptab t;
	int i;

	is_int(ptab_init(&t, 0, item_hash), 0, "init");
	is_int((long long)t.mask + 1, PTAB_MIN, "PTAB_MIN slots at first");
	/* A run that starts in the last slot and wraps to the first ones,
	 * with items of two homes mixed in it. */
	for (i = 0; i < 8; i++) {
		make(i, i % 2 ? PTAB_MIN - 1 : PTAB_MIN - 2);
		in[i] = ptab_add(&t, &items[i]) == 0;
	}
	ok(exactly(&t, in, 8), "a wrapping run of two homes: all found");
	is_int((long long)t.mask + 1, PTAB_MIN, "without growing");
	/* Out of the middle of the run, then its first and last. */
	for (i = 3; i < 8; i += 4) {
		ptab_del(&t, &items[i]);
		in[i] = false;
	}
	ok(exactly(&t, in, 8), "after removals in the middle");
	ptab_del(&t, &items[0]);
	in[0] = false;
	ptab_del(&t, &items[6]);
	in[6] = false;
	ok(exactly(&t, in, 8), "after removing the first and the last");
	is_int((long long)t.count, 4, "four left");
	for (i = 0; i < 8; i++)
		if (in[i])
			ptab_del(&t, &items[i]);
	for (i = 0; i <= (int)t.mask; i++)
		if (t.slot[i])
			break;
	is_int(i, (long long)t.mask + 1, "emptied: every slot is free");
	ptab_free(&t);
}

/* Many items in clusters (37 homes), added and removed in turns against a
 * record of what is in. */
static void t_many(void)
{
	static bool in[MANY];
	struct ptab t;
	size_t grown;
	int i, round, failed = 0;

	ptab_init(&t, 0, item_hash);
	for (i = 0; i < MANY; i++) {
		make(i, (uint64_t)(i % 37) * 0x9E3779B97F4A7C15ull);
		in[i] = false;
	}
	for (i = 0; i < MANY; i++) {
		failed += ptab_add(&t, &items[i]) != 0;
		in[i] = true;
	}
	is_int(failed, 0, "5000 adds");
	is_int((long long)t.count, MANY, "all counted");
	ok((t.mask + 1) * 3 >= (size_t)MANY * 4,
	   "grown to keep a quarter free (%zu slots)", t.mask + 1);
	ok(exactly(&t, in, MANY), "every item found");
	grown = t.mask + 1;
	for (round = 0; round < 3; round++) {
		for (i = round; i < MANY; i += 3) {
			ptab_del(&t, &items[i]);
			in[i] = false;
		}
		if (!ok(exactly(&t, in, MANY),
			"after removing a third, round %d", round))
			break;
		for (i = round; i < MANY; i += 6) {
			failed += ptab_add(&t, &items[i]) != 0;
			in[i] = true;
		}
		ok(exactly(&t, in, MANY) && !failed,
		   "after adding half of them back, round %d", round);
	}
	for (i = 0; i < MANY; i++) {
		if (in[i] && i % 50) {
			ptab_del(&t, &items[i]);
			in[i] = false;
		}
	}
	ok(exactly(&t, in, MANY), "after removing all but a few");
	ok(t.mask + 1 < grown, "the table shrank (%zu -> %zu slots)", grown,
	   t.mask + 1);
	ptab_free(&t);
}

static void t_walk(void)
{
	struct ptab t;
	struct item *it;
	size_t pos = 0;
	int i, met = 0, twice = 0;

	ptab_init(&t, 100, item_hash);
	is_int((long long)t.mask + 1, 128, "asked 100 slots: 128");
	for (i = 0; i < 1000; i++) {
		make(i, (uint64_t)i * 7);
		ptab_add(&t, &items[i]);
	}
	while ((it = ptab_next(&t, &pos)) != NULL) {
		twice += it->seen++ > 0;
		met++;
	}
	is_int(met, 1000, "the walk meets every item");
	is_int(twice, 0, "each once");
	ptab_free(&t);
	ptab_init(&t, 0, item_hash);
	pos = 0;
	ok(ptab_next(&t, &pos) == NULL, "an empty table walks nothing");
	ptab_free(&t);
}

int main(void)
{
	plan_no_plan();
	t_collisions();
	t_many();
	t_walk();
	return done_testing();
}
