/*
 * test_dirlist.c - unit tests for the shared directory listings of
 * dirlist.c, without a FUSE session: the directory is a node of a real node
 * table (inode.c), and its names come from a list the test edits, with a
 * change count, in place of the layer stack.
 *
 * What is checked is what dirlist.h promises: offsets 0..2 are ".", ".."
 * and the first name, every name's offset is above them and the same in
 * every listing; a reader that goes on from an offset gets the names after
 * it, in any later listing, so that a name that stays is read exactly once
 * across a change; handles of one directory share its listing until the
 * directory changes; and the last handle to let go frees the listing and
 * the directory's reference.  No hash value is assumed: the order is
 * whatever the offsets say.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dirlist.h"
#include "tap.h"

#define MAX_NAMES 4096

/* The directory's contents as the test has them, and its change count. */
static struct {
	char *names[MAX_NAMES];
	size_t count;
	uint64_t changes;
	int takes;     /* listings taken */
	int fail_take; /* nonzero: take() fails with it */
} dir_src;

static void src_set(const char *const *names, size_t n)
{
	size_t i;

	for (i = 0; i < dir_src.count; i++)
		free(dir_src.names[i]);
	for (i = 0; i < n; i++)
		dir_src.names[i] = strdup(names[i]);
	dir_src.count = n;
	dir_src.changes++;
}

static void src_add(const char *name)
{
	dir_src.names[dir_src.count++] = strdup(name);
	dir_src.changes++;
}

static void src_remove(const char *name)
{
	size_t i;

	for (i = 0; i < dir_src.count; i++) {
		if (!strcmp(dir_src.names[i], name)) {
			/* In order: a listing by position would skip or
			 * repeat the names after it. */
			free(dir_src.names[i]);
			memmove(dir_src.names + i, dir_src.names + i + 1,
				(--dir_src.count - i) * sizeof(char *));
			break;
		}
	}
	dir_src.changes++;
}

static int take(void *arg, struct node *dir, struct listing *ls)
{
	struct found f;
	size_t i;
	int err = 0;

	(void)arg;
	(void)dir;
	if (dir_src.fail_take)
		return dir_src.fail_take;
	dir_src.takes++;
	memset(&f, 0, sizeof(f));
	memset(ls, 0, sizeof(*ls));
	for (i = 0; i < dir_src.count; i++)
		listing_add(ls, dir_src.names[i], &f, &err);
	ls->changes = dir_src.changes;
	if (err)
		listing_free(ls);
	return err;
}

static bool changed(void *arg, struct node *dir, uint64_t since)
{
	(void)arg;
	(void)dir;
	return dir_src.changes != since;
}

static const struct dirlist_source source = {take, changed, NULL};

static struct node_table nodes;
static struct dirlists lists;

/* The offset of name in s, or -1. */
static off_t off_of(const struct dir_snap *s, const char *name)
{
	size_t i;

	for (i = 0; i < s->count; i++)
		if (!strcmp(dirlist_name(s, i + 2), name))
			return dirlist_off(s, i + 2);
	return -1;
}

static void test_offsets(struct node *d)
{
	static const char *const names[] = {"a",
					    "b",
					    "c",
					    "hello",
					    "world",
					    "x1",
					    "x2",
					    "x3",
					    "\xc3\xa9t\xc3\xa9",
					    "a-longer-name-than-the-others"};
	const size_t n = sizeof(names) / sizeof(names[0]);
	struct dir_cursor c = {0};
	const struct dir_snap *s;
	bool above = true, sorted = true, resumes = true, every = true;
	size_t i;

	src_set(names, n);
	is_int(dirlist_get(&lists, d, &c, &source), 0, "dirlist_get");
	s = c.snap;
	if (!ok(s != NULL, "binds the cursor to a listing"))
		return;
	is_int(s->count, n, "the listing holds every name");
	is_int(dirlist_off(s, 0), 1, "after \".\" a reader goes on from 1");
	is_int(dirlist_off(s, 1), 2, "after \"..\" from 2");
	is_int(dirlist_index(s, 0), 0, "offset 0 starts at \".\"");
	is_int(dirlist_index(s, 1), 1, "offset 1 starts at \"..\"");
	is_int(dirlist_index(s, 2), 2, "offset 2 starts at the first name");
	is_int(dirlist_index(s, -1), 0, "a negative offset starts over");
	for (i = 0; i < s->count; i++) {
		off_t off = dirlist_off(s, i + 2);

		if (off <= 2)
			above = false;
		if (i > 0 && off <= dirlist_off(s, i + 1))
			sorted = false;
		/* A reader that stopped after position i + 2 goes on at the
		 * next one. */
		if (dirlist_index(s, off) != i + 3)
			resumes = false;
		if (off_of(s, names[i]) < 0)
			every = false;
	}
	ok(above, "no name has offset 0, 1 or 2");
	ok(sorted, "names are listed in increasing offset order, no two "
		   "alike");
	ok(resumes, "going on from a name's offset gives the next name");
	ok(every, "each name is listed");
	is_int(dirlist_index(s, INT64_MAX), s->count + 2,
	       "going on from past the last offset is the end");
	dirlist_release(&lists, &c);
	ok(c.snap == NULL, "dirlist_release unbinds the cursor");
}

/* A probe name and the top bits of its offset, which is what a
 * listing's items keep of it. */
struct probe {
	uint32_t key;
	uint32_t i;
};

static int probe_cmp(const void *a, const void *b)
{
	const struct probe *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->i < y->i ? -1 : x->i > y->i;
}

/* Names whose offsets share their top 30 bits (found among 2^18 names:
 * about 32 such pairs) must still sort, resume and be found by their whole
 * offsets, which the listing computes again from the names. */
static void test_tied_keys(struct node *d)
{
	enum {
		PROBES = 1 << 18,
		WANT = 6
	};
	struct probe *p = calloc(PROBES, sizeof(*p));
	char buf[WANT + 3][16];
	const char *names[WANT + 3];
	struct dir_cursor c = {0};
	const struct dir_snap *s;
	bool sorted = true, resumes = true, every = true, tied = false;
	size_t i, n = 0;

	if (!ok(p != NULL, "room for the probes"))
		return;
	for (i = 0; i < PROBES; i++) {
		snprintf(buf[0], sizeof(buf[0]), "t%zu", i);
		p[i] = (struct probe){(uint32_t)(listing_off(buf[0]) >>
						 LISTING_KEY_SHIFT),
				      (uint32_t)i};
	}
	qsort(p, PROBES, sizeof(*p), probe_cmp);
	for (i = 1; i < PROBES && n < WANT; i++) {
		if (p[i].key != p[i - 1].key)
			continue;
		snprintf(buf[n], sizeof(buf[n]), "t%u", p[i - 1].i);
		snprintf(buf[n + 1], sizeof(buf[n + 1]), "t%u", p[i].i);
		n += 2;
	}
	free(p);
	if (!ok(n >= 2, "found names whose offsets tie in their top bits"))
		return;
	/* Others around them. */
	snprintf(buf[n++], sizeof(buf[0]), "a");
	snprintf(buf[n++], sizeof(buf[0]), "hello");
	for (i = 0; i < n; i++)
		names[i] = buf[i];
	src_set(names, n);
	if (dirlist_get(&lists, d, &c, &source) || !c.snap) {
		ok(false, "dirlist_get of the tied names");
		return;
	}
	s = c.snap;
	is_int(s->count, n, "the listing holds every tied name");
	for (i = 0; i < s->count; i++) {
		off_t off = dirlist_off(s, i + 2);

		if (i > 0 && off <= dirlist_off(s, i + 1))
			sorted = false;
		if (i > 0 && (uint64_t)off >> LISTING_KEY_SHIFT ==
				     (uint64_t)dirlist_off(s, i + 1) >>
					     LISTING_KEY_SHIFT)
			tied = true;
		if (dirlist_index(s, off) != i + 3 ||
		    dirlist_index(s, off - 1) != i + 2)
			resumes = false;
		if (off_of(s, names[i]) != (off_t)listing_off(names[i]))
			every = false;
	}
	ok(tied, "two neighbours tie in the bits an item keeps");
	ok(sorted, "tied names are in increasing offset order");
	ok(resumes, "going on from, or from just before, a tied name's "
		    "offset gives the right next name");
	ok(every, "each tied name is listed with its whole offset");
	dirlist_release(&lists, &c);
}

/* A reader that reads part of the listing, then goes on from its last
 * offset after the directory changed, reads every name that stayed exactly
 * once and no name twice. */
static void test_resume_after_change(struct node *d)
{
	enum {
		N = 300
	};
	static char name[N + 50][16];
	static int seen[N + 50];
	const char *names[N];
	struct dir_cursor c = {0};
	const struct dir_snap *s;
	off_t last, before;
	size_t i, k, first_part = N / 3;
	bool stable = true, once = true;
	int removed_unread = 0, removed_read = 0, takes;

	for (i = 0; i < N + 50; i++)
		snprintf(name[i], sizeof(name[i]), "entry%zu", i);
	for (i = 0; i < N; i++)
		names[i] = name[i];
	src_set(names, N);
	memset(seen, 0, sizeof(seen));
	if (dirlist_get(&lists, d, &c, &source) || !c.snap)
		return;
	s = c.snap;
	/* Read the first third, as readdir would, position by position. */
	for (k = 2; k < first_part + 2; k++)
		seen[atoi(dirlist_name(s, k) + 5)]++;
	last = dirlist_off(s, first_part + 1);
	before = off_of(s, "entry7");

	/* Meanwhile: new names, and some names gone, read or not. */
	for (i = N; i < N + 50; i++)
		src_add(name[i]);
	for (i = 0; i < N; i += 10) {
		off_t off = off_of(s, name[i]);

		if (off <= last)
			removed_read++;
		else
			removed_unread++;
		src_remove(name[i]);
	}

	takes = dir_src.takes;
	is_int(dirlist_get(&lists, d, &c, &source), 0,
	       "dirlist_get after the change");
	is_int(dir_src.takes - takes, 1, "takes a new listing");
	s = c.snap;
	ok(off_of(s, "entry7") == before,
	   "a name that stayed has the same offset in the new listing");
	for (i = 0; i < N + 50; i++) {
		off_t off = off_of(s, name[i]);
		bool gone = i < N && i % 10 == 0;

		if (!gone && off < 0)
			stable = false;
	}
	ok(stable, "every name that stayed or was added is listed");
	/* Go on from the last offset read. */
	for (k = dirlist_index(s, last); k < s->count + 2; k++)
		seen[atoi(dirlist_name(s, k) + 5)]++;
	for (i = 0; i < N; i++) {
		bool gone = i % 10 == 0;

		if (!gone && seen[i] != 1)
			once = false;
		if (seen[i] > 1)
			once = false;
	}
	ok(once,
	   "going on from its offset, a reader reads each name that stayed "
	   "exactly once (%d removed before it, %d after)",
	   removed_read, removed_unread);
	ok(removed_read > 0 && removed_unread > 0,
	   "(names were removed on both sides of the reader)");
	dirlist_release(&lists, &c);
}

static void test_sharing(struct node *d)
{
	static const char *const names[] = {"one", "two", "three"};
	struct dir_cursor c1 = {0}, c2 = {0};
	const struct dir_snap *first;
	uint32_t refs = d->refs;
	int takes;

	src_set(names, 3);
	takes = dir_src.takes;
	is_int(dirlist_get(&lists, d, &c1, &source), 0, "a first handle");
	is_int(dirlist_get(&lists, d, &c2, &source), 0, "a second handle");
	ok(c1.snap && c1.snap == c2.snap && d->x->snap == c1.snap,
	   "the two share the directory's listing");
	is_int(dir_src.takes - takes, 1, "which was taken once");
	is_int(c1.snap ? c1.snap->refs : 0, 2, "and counts both");
	is_int(d->refs, refs + 1, "the listing holds a reference on the dir");
	is_int(dirlist_get(&lists, d, &c1, &source), 0, "again, no change");
	is_int(dir_src.takes - takes, 1, "the listing is not taken again");

	src_add("four");
	first = c1.snap;
	is_int(dirlist_get(&lists, d, &c2, &source), 0, "after a change");
	ok(c2.snap != first && d->x->snap == c2.snap,
	   "the handle reads a new listing, now the directory's");
	ok(c1.snap == first && first->dir == NULL,
	   "the other keeps the old one, no longer the directory's");
	is_int(d->refs, refs + 1, "still one reference on the dir");
	is_int(dirlist_get(&lists, d, &c1, &source), 0, "the other asks again");
	ok(c1.snap == c2.snap, "and shares the new listing");
	is_int(dir_src.takes - takes, 2, "taken once more, not twice");

	dirlist_release(&lists, &c1);
	ok(d->x->snap != NULL, "the listing lives while a handle reads it");
	dirlist_release(&lists, &c2);
	ok(d->x->snap == NULL, "the last release frees it");
	is_int(d->refs, refs, "and gives back the reference on the dir");
}

static void test_take_fails(struct node *d)
{
	struct dir_cursor c = {0};

	dir_src.fail_take = -EIO;
	dir_src.changes++;
	is_int(dirlist_get(&lists, d, &c, &source), -EIO,
	       "a listing that cannot be taken fails dirlist_get");
	ok(c.snap == NULL && d->x->snap == NULL, "and binds nothing");
	dir_src.fail_take = 0;
	is_int(dirlist_get(&lists, d, &c, &source), 0, "then it works again");
	dirlist_release(&lists, &c);
}

int main(void)
{
	struct node *kv, *d;
	size_t i;

	plan_no_plan();
	if (nodes_init(&nodes) || dirlists_init(&lists, &nodes)) {
		printf("Bail out! init\n");
		return 1;
	}
	kv = node_get_child(&nodes, node_get(&nodes, ROOT_INO), "kv");
	d = node_link(&nodes, kv, "dir", true, L_FACTORY);
	if (!d) {
		printf("Bail out! node_link\n");
		return 1;
	}
	test_offsets(d);
	test_tied_keys(d);
	test_resume_after_change(d);
	test_sharing(d);
	test_take_fails(d);
	is_int(d->refs, 0, "no listing holds the directory any more");
	node_forget(&nodes, d->ino, 1);
	for (i = 0; i < dir_src.count; i++)
		free(dir_src.names[i]);
	dirlists_destroy(&lists);
	nodes_destroy(&nodes);
	return done_testing();
}
