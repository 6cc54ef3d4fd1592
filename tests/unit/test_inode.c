/*
 * test_inode.c - unit tests for the node table (inode.c), without a FUSE
 * session: the fixed directories, linking and looking up names, the kernel's
 * lookup counts and forget, references, detach and rename, the keys a node
 * stands for, the page-cache and writer bookkeeping, the extra state freed
 * once it holds nothing, and tables larger than their first buckets.
 *
 * A node is freed when nothing holds it; the table's count and node_get()
 * by inode number say whether it still exists.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "inode.h"
#include "tap.h"

static struct node_table table;
static struct node_table *t = &table;

/* Nodes the table holds beyond the fixed ones. */
static long extra(void)
{
	return (long)t->count - FIXED_NODES;
}

/* Whether a node with this inode number exists (takes no reference). */
static bool exists(uint64_t ino)
{
	struct node *n = node_get(t, ino);

	node_put(t, n);
	return n != NULL;
}

/* A fixed directory of the root, by name (no lookup counted on it: fixed
 * nodes are permanent). */
static struct node *fixed_dir(struct node *dir, const char *name)
{
	return node_get_child(t, dir, name);
}

/* The key node n stands for, or a string that says why there is none. */
static const char *key_of(struct node *n)
{
	static struct loc l;
	static char why[32];
	int rc = node_loc(t, n, &l);

	if (rc) {
		snprintf(why, sizeof(why), "error %d", rc);
		return why;
	}
	return l.key;
}

static void test_fixed(struct node *root)
{
	static const char *const layers[] = {"ephemeral", "runtime", "factory"};
	static const char *const trees[] = {"kv", "images", "devices"};
	uint64_t seen[FIXED_NODES + 1] = {0};
	bool numbers_ok = true;
	struct node *dir, *n;
	struct loc l;
	size_t i, j;

	ok(root && root->ino == ROOT_INO && root->is_dir && root->permanent,
	   "the root is inode %d, a permanent directory", ROOT_INO);
	is_int(t->count, FIXED_NODES,
	       "the table starts with the fixed directories only");
	/* The merged trees and each layer's directory and trees. */
	for (i = 0; i < 3; i++) {
		n = fixed_dir(root, trees[i]);
		if (!n || n->ino < ROOT_INO || n->ino > FIXED_NODES ||
		    seen[n->ino]++)
			numbers_ok = false;
		ok(n && n->view == VIEW_MERGED && n->is_tree_root &&
			   n->permanent && n->tree == (enum dsfs_tree)(i + 1),
		   "%s/ is a merged tree root", trees[i]);
	}
	for (i = 0; i < 3; i++) {
		dir = fixed_dir(root, layers[i]);
		if (!dir || dir->ino > FIXED_NODES || seen[dir->ino]++)
			numbers_ok = false;
		ok(dir && dir->view == VIEW_ROOT && dir->layer == (int)i &&
			   dir->permanent,
		   "%s/ is fixed", layers[i]);
		for (j = 0; dir && j < 3; j++) {
			n = fixed_dir(dir, trees[j]);
			if (!n || n->ino > FIXED_NODES || seen[n->ino]++)
				numbers_ok = false;
			ok(n && n->view == VIEW_LAYER && n->layer == (int)i &&
				   n->is_tree_root &&
				   n->tree == (enum dsfs_tree)(j + 1),
			   "%s/%s/ is a tree root of layer %zu", layers[i],
			   trees[j], i);
		}
	}
	ok(numbers_ok, "the fixed directories are inodes %d..%d, each once",
	   ROOT_INO + 1, FIXED_NODES);

	n = fixed_dir(root, "kv");
	node_forget(t, n->ino, 1000);
	ok(exists(n->ino), "a fixed directory outlives any forget");
	is_int(node_loc(t, root, &l), 0, "the root has a loc");
	ok(l.view == VIEW_ROOT && l.key[0] == '\0', "... with no key");
	ok(fixed_dir(root, "nothing") == NULL,
	   "node_get_child of an unknown name is NULL");
	ok(node_get(t, FIXED_NODES + 1000) == NULL,
	   "node_get of an unknown inode is NULL");
}

static void test_link_forget(struct node *kv)
{
	struct node *a, *again, *b;
	uint64_t ino;

	a = node_link(t, kv, "a", false, L_FACTORY);
	ok(a != NULL, "node_link makes kv/a");
	if (!a)
		return;
	ino = a->ino;
	ok(ino > FIXED_NODES, "its inode (%llu) is past the fixed ones",
	   (unsigned long long)ino);
	is_int(a->nlookup, 1, "one lookup counted");
	is_str(key_of(a), "kv/a", "its key is kv/a");
	ok(a->view == VIEW_MERGED && a->tree == TREE_KV && !a->is_dir,
	   "it inherits the view and tree, and is a file");

	again = node_link(t, kv, "a", false, L_FACTORY);
	ok(again == a, "linking the same name finds the same node");
	is_int(a->nlookup, 2, "two lookups counted");
	b = node_get_child(t, kv, "a");
	ok(b == a, "node_get_child finds it too");
	is_int(a->nlookup, 3, "and counts a third lookup");

	node_forget(t, ino, 2);
	ok(exists(ino), "forgetting 2 of 3 lookups keeps the node");
	is_int(a->nlookup, 1, "one lookup left");
	node_forget(t, ino, 1);
	ok(!exists(ino), "forgetting the last frees it");
	is_int(extra(), 0, "the table is back to the fixed directories");

	a = node_link(t, kv, "a", false, L_FACTORY);
	ok(a && a->ino > ino,
	   "a new node for the same name gets a new "
	   "inode number (%llu > %llu): never reused",
	   a ? (unsigned long long)a->ino : 0ULL, (unsigned long long)ino);
	/* The kernel may forget more than it was given (after a crash of
	 * its counting): the count stops at 0. */
	if (a) {
		ino = a->ino;
		node_forget(t, ino, 5);
		ok(!exists(ino), "forgetting more lookups than counted frees");
	}
}

static void test_refs(struct node *kv)
{
	struct node *d, *c, *got;
	uint64_t dino, cino;

	d = node_link(t, kv, "d", true, L_FACTORY);
	c = d ? node_link(t, d, "c", false, L_FACTORY) : NULL;
	if (!ok(d && c, "kv/d/c linked"))
		return;
	dino = d->ino;
	cino = c->ino;
	is_str(key_of(c), "kv/d/c", "its key is kv/d/c");
	node_forget(t, dino, 1);
	ok(exists(dino), "a forgotten directory lives on while a child does");
	node_forget(t, cino, 1);
	ok(!exists(cino) && !exists(dino), "forgetting the child frees both");
	is_int(extra(), 0, "nothing is left");

	c = node_link(t, kv, "held", false, L_FACTORY);
	if (!c)
		return;
	cino = c->ino;
	got = node_get(t, cino);
	ok(got == c, "node_get takes a reference by inode number");
	node_forget(t, cino, 1);
	ok(exists(cino), "a referenced node survives its forget");
	node_put(t, got);
	ok(!exists(cino), "and is freed by the last put");
}

static void test_keys(struct node *root)
{
	struct node *images = fixed_dir(root, "images");
	struct node *devices = fixed_dir(root, "devices");
	struct node *rt = fixed_dir(fixed_dir(root, "runtime"), "kv");
	struct node *x, *dev, *cfg, *r;
	struct loc l;

	x = node_link(t, images, "logo", false, L_FACTORY);
	dev = node_link(t, devices, "hub1", true, L_FACTORY);
	cfg = dev ? node_link(t, dev, "cfg", false, L_FACTORY) : NULL;
	r = node_link(t, rt, "k", false, L_RUNTIME);
	if (!ok(x && dev && cfg && r, "nodes linked in three trees"))
		return;
	is_str(key_of(x), "images/logo", "images/logo's key");
	is_str(key_of(dev), "kv/__hub1", "a device is stored as kv/__ID");
	is_str(key_of(cfg), "kv/__hub1/cfg", "... and its files under it");
	is_int(node_loc(t, r, &l), 0, "runtime/kv/k has a loc");
	ok(l.view == VIEW_LAYER && l.layer == L_RUNTIME && l.tree == TREE_KV &&
		   strcmp(l.key, "kv/k") == 0,
	   "... in the runtime layer alone, key kv/k");
	is_int(node_child_loc(t, dev, "new", &l), 0,
	       "node_child_loc of a name not linked");
	is_str(l.key, "kv/__hub1/new", "... gives its key");
	node_forget(t, x->ino, 1);
	node_forget(t, cfg->ino, 1);
	node_forget(t, dev->ino, 1);
	node_forget(t, r->ino, 1);
	is_int(extra(), 0, "all forgotten, all freed");
}

static void test_detach(struct node *kv)
{
	struct dsfs_attr gone, a;
	struct node *n, *fresh;
	uint64_t ino;
	struct loc l;

	n = node_link(t, kv, "doomed", false, L_FACTORY);
	if (!n)
		return;
	ino = n->ino;
	memset(&gone, 0, sizeof(gone));
	gone.kind = DSFS_FILE;
	gone.size = 42;
	node_get(t, ino); /* as an open handle would */
	node_detach(t, kv, "doomed", &gone);
	is_int(node_loc(t, n, &l), -ESTALE, "a detached node's loc is ESTALE");
	is_int(node_gone(t, n, &a), 0, "it keeps what it was");
	is_int(a.size, 42, "... its size");
	fresh = node_link(t, kv, "doomed", false, L_FACTORY);
	ok(fresh && fresh != n && fresh->ino != ino,
	   "a new lookup of the name makes a new node");
	if (fresh)
		node_forget(t, fresh->ino, 1);
	node_forget(t, ino, 1);
	ok(exists(ino), "the detached node lives while referenced");
	node_put(t, n);
	ok(!exists(ino), "and is freed with its last reference");
	is_int(extra(), 0, "nothing is left");
}

static void test_move(struct node *kv)
{
	struct node *d, *c, *e, *x, *y, *n;
	struct dsfs_attr gone, a;
	uint64_t yino;
	struct loc l;

	d = node_link(t, kv, "d", true, L_FACTORY);
	c = d ? node_link(t, d, "c", false, L_FACTORY) : NULL;
	e = node_link(t, kv, "e", true, L_FACTORY);
	if (!ok(d && c && e, "kv/d/c and kv/e linked"))
		return;
	is_int(node_move(t, kv, "d", e, "d2", NULL), 0, "move kv/d to kv/e/d2");
	is_str(key_of(d), "kv/e/d2", "the directory's key follows");
	is_str(key_of(c), "kv/e/d2/c", "and so does its child's");
	n = node_get_child(t, e, "d2");
	ok(n == d, "the node is found under its new name");
	if (n)
		node_forget(t, n->ino, 1);
	ok(node_get_child(t, kv, "d") == NULL, "and not under its old one");

	x = node_link(t, kv, "x", false, L_FACTORY);
	y = node_link(t, kv, "y", false, L_FACTORY);
	if (!x || !y)
		return;
	yino = y->ino;
	node_get(t, yino); /* an open handle on the one replaced */
	memset(&gone, 0, sizeof(gone));
	gone.size = 7;
	is_int(node_move(t, kv, "x", kv, "y", &gone), 0,
	       "rename kv/x over kv/y");
	is_str(key_of(x), "kv/y", "x is now kv/y");
	is_int(node_loc(t, y, &l), -ESTALE, "the replaced node is detached");
	is_int(node_former_loc(t, y, &l), 0, "but remembers where it was");
	is_str(l.key, "kv/y", "... kv/y");
	is_int(node_gone(t, y, &a), 0, "and what it was");
	is_int(a.size, 7, "... its size");
	n = node_get_child(t, kv, "y");
	ok(n == x, "a lookup of kv/y finds the moved node");
	if (n)
		node_forget(t, n->ino, 1);
	node_forget(t, yino, 1);
	node_put(t, y);
	ok(!exists(yino), "the replaced node is freed with its reference");

	/* Renaming a name onto itself changes nothing. */
	is_int(node_move(t, kv, "y", kv, "y", NULL), 0, "rename onto itself");
	is_str(key_of(x), "kv/y", "... leaves the node where it was");

	node_forget(t, c->ino, 1);
	node_forget(t, d->ino, 1);
	node_forget(t, e->ino, 1);
	node_forget(t, x->ino, 1);
	is_int(extra(), 0, "all forgotten, all freed");
}

static void test_find_merged(struct node *kv)
{
	struct node *a, *b;
	uint64_t ino = 99, parent = 99;
	const char *name = NULL;

	a = node_link(t, kv, "a", true, L_FACTORY);
	b = a ? node_link(t, a, "b", false, L_FACTORY) : NULL;
	if (!a || !b)
		return;
	is_int(node_find_merged(t, "kv/a/b", &ino, &parent, &name), 0,
	       "node_find_merged(kv/a/b)");
	ok(ino == b->ino && parent == a->ino && name && !strcmp(name, "b"),
	   "... gives b, its directory a, and the name b");
	is_int(node_find_merged(t, "kv/a/zz", &ino, &parent, &name), 0,
	       "a name the kernel does not know");
	ok(ino == 0 && parent == a->ino, "... has inode 0 in a known dir");
	is_int(node_find_merged(t, "kv/q/zz", &ino, &parent, &name), -ENOENT,
	       "a directory the kernel does not know is ENOENT");
	node_forget(t, b->ino, 1);
	node_forget(t, a->ino, 1);
}

struct each_ctx {
	int calls;
	bool found_a, found_b;
	uint64_t a, b, kv;
};

static void each_fn(void *ctx, uint64_t ino, uint64_t parent, const char *name)
{
	struct each_ctx *e = ctx;

	e->calls++;
	if (ino == e->a && parent == e->kv && !strcmp(name, "a"))
		e->found_a = true;
	if (ino == e->b && parent == e->a && !strcmp(name, "b"))
		e->found_b = true;
}

static void test_each(struct node *kv)
{
	struct each_ctx e = {0};
	struct node *a, *b;

	a = node_link(t, kv, "a", true, L_FACTORY);
	b = a ? node_link(t, a, "b", false, L_FACTORY) : NULL;
	if (!a || !b)
		return;
	e.a = a->ino;
	e.b = b->ino;
	e.kv = kv->ino;
	is_int(nodes_each(t, each_fn, &e), 0, "nodes_each");
	ok(e.calls == 2 && e.found_a && e.found_b,
	   "visits the two linked nodes, not the fixed ones (%d calls)",
	   e.calls);
	node_forget(t, b->ino, 1);
	node_forget(t, a->ino, 1);
}

static uint16_t now = 100;

static int reader_open(struct node *n, uint64_t version, int layer,
		       bool *dropped)
{
	struct dsfs_attr a;

	memset(&a, 0, sizeof(a));
	a.version = version;
	a.size = version * 10;
	return node_cache_reader_open(t, n, &a, layer, now, dropped);
}

/* A node made to wait for a writer is kept while it waits, and freed once
 * a rename over its name or an unlink has taken its place. */
static void test_pending_freed(struct node *kv)
{
	struct node *r = node_link(t, kv, "h", false, L_FACTORY), *m, *s;
	long before = extra();
	bool dropped;

	if (!r)
		return;
	reader_open(r, 1, L_RUNTIME, &dropped);
	is_int(node_writer_open(t, r, now), -ESTALE, "a writer meets a reader");
	is_int(extra(), before + 1, "the waiting node is made");
	s = node_link(t, kv, "src", false, L_FACTORY);
	if (!s)
		return;
	node_forget(t, s->ino, 1);
	s = node_link(t, kv, "src", false, L_FACTORY);
	if (!s)
		return;
	node_move(t, kv, "src", kv, "h", NULL);
	is_int(extra(), before + 1,
	       "renamed over, the waiting node is freed (the renamed one is left)");
	m = node_link(t, kv, "h", false, L_FACTORY);
	ok(m == s, "the name is the renamed node's");
	is_int(reader_open(m, 2, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "which waits for the writer in its place");
	now += NODE_PENDING_TICKS;
	is_int(reader_open(m, 2, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "until the wait is over");
	node_cache_done(t, m);
	node_forget(t, m->ino, 2);
	node_cache_done(t, r);
	node_forget(t, r->ino, 1);
	is_int(extra(), before - 1, "nothing else is left");
}

/* Page-cache readers and writers of a name (pagecache.c's rules). */
static void test_cache_identity(struct node *kv)
{
	struct node *n = node_link(t, kv, "g", false, L_FACTORY), *m, *p;
	struct dsfs_attr gone = {0};
	uint64_t parent = 0;
	char name[16];
	bool dropped = true;

	if (!n)
		return;
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "a first reader of version 5 fills the page cache");
	ok(!dropped, "a node never read holds no pages to drop");
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "a second reader bypasses it until the first told the kernel");
	node_cache_filled(t, n);
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_KEEP,
	       "then a second reader of it keeps it");
	is_int(reader_open(n, 6, L_RUNTIME, &dropped), NODE_CACHE_RETIRED,
	       "a reader of version 6 retires the node read as 5");
	ok(node_gone(t, n, &gone) == 0 && gone.size == 50,
	   "the retired node answers what its readers read (size %llu)",
	   (unsigned long long)gone.size);
	ok(node_retired_name(t, n, &parent, name, sizeof(name)) == 0 &&
		   parent == kv->ino && strcmp(name, "g") == 0,
	   "and names the name it had");
	m = node_link(t, kv, "g", false, L_FACTORY);
	ok(m && m != n, "the name gets a new node");
	node_cache_done(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);
	if (!m)
		return;
	is_int(node_writer_open(t, m, now), 0,
	       "a writer opens a node no one reads");
	is_int(reader_open(m, 6, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "a reader bypasses the page cache while a writer is open");
	node_writers(t, m, -1);
	is_int(reader_open(m, 7, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "after the writer, readers use it");
	is_int(node_writer_open(t, m, now), -ESTALE,
	       "a writer meeting page-cache readers walks again");
	p = node_link(t, kv, "g", false, L_FACTORY);
	ok(p && p != m, "to a node of its own");
	node_cache_done(t, m);
	node_forget(t, m->ino, 1);
	if (!p)
		return;
	is_int(reader_open(p, 7, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "readers do not fill it before that writer opens it");
	is_int(node_writer_open(t, p, now), 0, "the writer opens it");
	node_writers(t, p, -1);
	is_int(reader_open(p, 8, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "other writers' opens and closes do not end the wait");
	now += NODE_PENDING_TICKS;
	is_int(reader_open(p, 8, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "after the wait, readers fill it");
	is_int(node_cache_seen(t, p, 8, L_RUNTIME), NODE_SEEN_SAME,
	       "the version they read seen again changes nothing");
	is_int(node_cache_seen(t, p, 9, L_RUNTIME), NODE_SEEN_RETIRED,
	       "another version seen retires it");
	/* A second GETATTR that found version 9 by the name before the
	 * first retired the node must not answer 9 for it either. */
	is_int(node_cache_seen(t, p, 9, L_RUNTIME), NODE_SEEN_DETACHED,
	       "seen again once retired: not the node's version");
	is_int(node_cache_seen(t, p, 8, L_RUNTIME), NODE_SEEN_DETACHED,
	       "not even its readers' own (answered from what it kept)");
	node_cache_done(t, p);
	node_forget(t, p->ino, 1);
	p = node_link(t, kv, "g", false, L_FACTORY);
	if (!p)
		return;
	is_int(reader_open(p, 9, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "version 9 on the name's next node");
	node_cache_done(t, p);
	ok(!node_retire_cached(t, p),
	   "no page-cache reader: nothing to retire");
	is_int(reader_open(p, 10, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "version 10 after 9 refills it");
	ok(dropped, "dropping the pages of version 9");
	node_cache_done(t, p);
	is_int(reader_open(p, 10, L_RUNTIME, &dropped), NODE_CACHE_KEEP,
	       "the next reader of 10 keeps the pages and the attributes");
	node_cache_done(t, p);
	/* A stat that found 11 with no reader open answered 11's size; a
	 * reader that had found 10 opens after it. */
	is_int(node_cache_seen(t, p, 11, L_RUNTIME), NODE_SEEN_SAME,
	       "version 11 seen with no reader open: the node stands for it");
	is_int(reader_open(p, 10, L_RUNTIME, &dropped), NODE_CACHE_ATTRS,
	       "a reader of 10 then keeps the pages, not 11's attributes");
	is_int(reader_open(p, 10, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "and one that comes before it dropped them bypasses them");
	node_cache_filled(t, p);
	node_cache_done(t, p);
	is_int(reader_open(p, 10, L_RUNTIME, &dropped), NODE_CACHE_KEEP,
	       "the reader after it keeps both");
	node_cache_done(t, p);
	is_int(node_writer_open(t, p, now), 0, "a writer opens it");
	node_writers(t, p, -1);
	is_int(reader_open(p, 10, L_RUNTIME, &dropped), NODE_CACHE_ATTRS,
	       "a writer that committed nothing leaves its size: dropped");
	node_cache_done(t, p);
	nodes_forget_cache(t);
	is_int(reader_open(p, 10, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "after nodes_forget_cache, nothing cached is trusted");
	ok(node_retire_cached(t, p), "a node with page-cache readers retires");
	node_cache_done(t, p);
	node_forget(t, p->ino, 1);
	test_pending_freed(kv);
}

/* A node no page-cache reader has filled: the version whose attributes a
 * lookup or stat answered with no writer open is what the kernel holds,
 * and its first reader fills the pages without dropping them (FILL). */
static void test_cache_fill(struct node *kv)
{
	struct node *n = node_link(t, kv, "f", false, L_FACTORY);
	bool dropped = true;

	if (!n)
		return;
	is_int(node_cache_seen(t, n, 3, L_RUNTIME), NODE_SEEN_SAME,
	       "fill: version 3 seen on a node never read");
	is_int(reader_open(n, 3, L_RUNTIME, &dropped), NODE_CACHE_FILL,
	       "its first reader fills the pages and keeps the attributes");
	ok(!dropped, "with no pages to drop");
	is_int(reader_open(n, 3, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "a second reader bypasses them until the first told the kernel");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	is_int(reader_open(n, 3, L_RUNTIME, &dropped), NODE_CACHE_KEEP,
	       "then readers of 3 keep both");
	node_cache_done(t, n);
	is_int(node_cache_seen(t, n, 4, L_RUNTIME), NODE_SEEN_SAME,
	       "version 4 seen once pages of 3 are cached");
	is_int(reader_open(n, 4, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "does not fill over them: they are dropped");
	ok(dropped, "pages and attributes");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);

	n = node_link(t, kv, "f2", false, L_FACTORY);
	if (!n)
		return;
	node_cache_seen(t, n, 5, L_RUNTIME);
	is_int(node_cache_seen(t, n, 6, L_RUNTIME), NODE_SEEN_SAME,
	       "version 6 seen after 5, no page filled");
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "a reader of 5 drops the attributes of 6");
	ok(!dropped, "and has no pages to drop");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);

	n = node_link(t, kv, "f3", false, L_FACTORY);
	if (!n)
		return;
	node_cache_seen(t, n, 7, L_RUNTIME);
	is_int(node_writer_open(t, n, now), 0, "a writer opens it");
	node_writers(t, n, -1);
	is_int(reader_open(n, 7, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "the writer's size since 7 was seen is dropped");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);

	n = node_link(t, kv, "f4", false, L_FACTORY);
	if (!n)
		return;
	is_int(node_writer_open(t, n, now), 0, "a writer opens a new node");
	node_cache_seen(t, n, 8, L_RUNTIME);
	is_int(reader_open(n, 8, L_RUNTIME, &dropped), NODE_CACHE_BYPASS,
	       "its readers bypass the page cache");
	node_writers(t, n, -1);
	is_int(reader_open(n, 8, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "8, seen while the writer was open, is not trusted after it");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);

	n = node_link(t, kv, "f5", false, L_FACTORY);
	if (!n)
		return;
	node_cache_seen(t, n, 9, L_RUNTIME);
	is_int(node_writer_open(t, n, now), 0,
	       "a writer opens a node seen as 9");
	node_writers(t, n, -1);
	node_cache_seen(t, n, 9, L_RUNTIME);
	is_int(reader_open(n, 9, L_RUNTIME, &dropped), NODE_CACHE_FILL,
	       "9 answered again after the writer: filled, attributes kept");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);

	n = node_link(t, kv, "f6", false, L_FACTORY);
	if (!n)
		return;
	node_cache_seen(t, n, 10, L_RUNTIME);
	nodes_forget_cache(t);
	is_int(reader_open(n, 10, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "after nodes_forget_cache, a version seen is not trusted");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);
}

/* A node whose page-cache readers, writers and waits are over keeps no
 * extra state (node_extra_trim()): what its pages hold is in the node, and
 * its page-cache decisions are those it made when the extra stayed. */
/* Two writers of n push, one after the other; then the second push's
 * commit stores version `second`, and the first push's `first` (0: that
 * commit failed).  Whether the two tickets differ; *vouched counts the
 * commits that vouched for the pages. */
static bool two_pushes(struct node *n, uint64_t first, uint64_t second,
		       int *vouched)
{
	uint32_t a, b;

	*vouched = 0;
	node_writer_open(t, n, now);
	node_writer_open(t, n, now);
	a = node_pages_pushing(t, n);
	b = node_pages_pushing(t, n);
	if (second)
		*vouched += node_pages_committed(t, n, b, second, L_RUNTIME);
	if (first)
		*vouched += node_pages_committed(t, n, a, first, L_RUNTIME);
	node_writers(t, n, -1);
	node_writers(t, n, -1);
	return a != b;
}

/* A writer's commit pushes its copy into the pages (node_pages_pushing()):
 * the commit that stored it vouches for them; a failed commit, a later
 * push, or no commit at all leaves them to be dropped. */
static void test_cache_push(struct node *kv)
{
	struct node *n = node_link(t, kv, "p", false, L_FACTORY);
	bool dropped = false;
	uint32_t first;
	int vouched;

	if (!n)
		return;
	is_int(node_cache_seen(t, n, 3, L_RUNTIME), NODE_SEEN_SAME,
	       "push: version 3 seen");
	is_int(reader_open(n, 3, L_RUNTIME, &dropped), NODE_CACHE_FILL,
	       "push: 3 read into the pages");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	is_int(node_pages_pushing(t, n), 0, "no ticket without a writer");

	/* A push whose commit failed: the version stays 3, the pages do not. */
	is_int(node_writer_open(t, n, now), 0, "a writer opens it");
	first = node_pages_pushing(t, n);
	ok(first != 0, "its commit pushes");
	node_writers(t, n, -1);
	is_int(reader_open(n, 3, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "the commit failed: a reader of 3 fills the pages anew");
	ok(dropped, "and drops what was pushed");
	node_cache_filled(t, n);
	node_cache_done(t, n);

	/* A push the commit vouched for. */
	node_writer_open(t, n, now);
	first = node_pages_pushing(t, n);
	ok(node_pages_committed(t, n, first, 4, L_RUNTIME),
	   "the commit that stored it vouches for the pages");
	node_writers(t, n, -1);
	is_int(node_cache_seen(t, n, 4, L_RUNTIME), NODE_SEEN_SAME,
	       "the commit's version 4 is seen");
	is_int(reader_open(n, 4, L_RUNTIME, &dropped), NODE_CACHE_KEEP,
	       "its first reader keeps the pushed pages and the attributes");
	ok(!dropped, "nothing dropped");
	node_cache_done(t, n);
	is_int(reader_open(n, 3, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "a reader of another version does not");
	ok(dropped, "it drops them");
	node_cache_filled(t, n);
	node_cache_done(t, n);

	/* Two writers' pushes: only the last one's commit vouches. */
	ok(two_pushes(n, 5, 0, &vouched), "each push has its ticket");
	is_int(vouched, 0, "no commit vouched");
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "the earlier push's commit does not vouch for the later push");
	ok(dropped, "whose bytes are dropped");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	two_pushes(n, 7, 6, &vouched);
	is_int(vouched, 1, "the last push's commit vouched, the other not");
	is_int(reader_open(n, 7, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "a commit made after the last push's does not vouch either");
	ok(dropped, "the pages are 6's, dropped for 7");
	node_cache_filled(t, n);
	node_cache_done(t, n);

	/* Retired by a reader's open (rule 1): the writer's node has no
	 * name, and nothing is pushed into it. */
	is_int(reader_open(n, 7, L_RUNTIME, &dropped), NODE_CACHE_KEEP,
	       "a reader holds 7");
	is_int(node_writer_open(t, n, now), -ESTALE,
	       "a writer meets it and walks again");
	is_int(node_pages_pushing(t, n), 0, "nothing is pushed into it");
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);
	/* The node made for the name, waiting for that writer, which never
	 * comes: freed once the wait is over. */
	now += NODE_PENDING_TICKS;
	n = node_link(t, kv, "p", false, L_FACTORY);
	if (!n)
		return;
	reader_open(n, 7, L_RUNTIME, &dropped);
	node_cache_filled(t, n);
	node_cache_done(t, n);
	node_forget(t, n->ino, 1);
}

static void test_extra_trim(struct node *kv)
{
	enum {
		N = 1000
	};
	static uint64_t inos[N];
	struct timespec at = {100, 1}, mt = {200, 2};
	struct node *n = node_link(t, kv, "t", false, L_FACTORY), *p, *d;
	size_t i, kept = 0;
	bool dropped = true;
	char name[32];

	if (!n)
		return;
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "trim: a first reader fills the page cache");
	ok(n->x != NULL, "its node has extra state while it reads");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	ok(n->x == NULL, "and none once it is done");
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_KEEP,
	       "the next reader of 5 still keeps pages and attributes");
	node_cache_done(t, n);
	is_int(node_cache_seen(t, n, 6, L_RUNTIME), NODE_SEEN_SAME,
	       "version 6 seen with no reader open");
	ok(n->x == NULL, "makes no extra state");
	is_int(reader_open(n, 5, L_RUNTIME, &dropped), NODE_CACHE_ATTRS,
	       "a reader of 5 after it drops the attributes");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	is_int(reader_open(n, 6, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "a reader of 6 refills the pages");
	ok(dropped, "dropping those of 5");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	is_int(node_writer_open(t, n, now), 0, "a writer opens it");
	node_set_times(t, n, &at, &mt);
	node_writers(t, n, -1);
	ok(n->x == NULL, "closed, even after setting times, it leaves none");
	is_int(reader_open(n, 6, L_RUNTIME, &dropped), NODE_CACHE_ATTRS,
	       "the writer's size is dropped by the next reader");
	node_cache_filled(t, n);
	node_cache_done(t, n);
	nodes_forget_cache(t);
	is_int(reader_open(n, 6, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "after nodes_forget_cache, a trimmed node trusts nothing");
	is_int(reader_open(n, 7, L_RUNTIME, &dropped), NODE_CACHE_RETIRED,
	       "a reader of 7 meeting a reader of 6 retires the node");
	node_cache_done(t, n);
	ok(n->x != NULL, "which keeps what it was");
	p = node_link(t, kv, "t", false, L_FACTORY);
	node_forget(t, n->ino, 1);
	if (!p)
		return;
	is_int(reader_open(p, 7, L_RUNTIME, &dropped), NODE_CACHE_FRESH,
	       "the name's next node is read");
	is_int(node_writer_open(t, p, now), -ESTALE, "a writer meets it");
	node_cache_done(t, p);
	node_forget(t, p->ino, 1);
	p = node_link(t, kv, "t", false, L_FACTORY);
	if (!p)
		return;
	ok(p->x != NULL && p->x->pending_at, "the next node waits for it");
	node_detach(t, kv, "t", NULL);
	ok(p->x == NULL, "unlinked, it waits no more and keeps nothing");
	node_forget(t, p->ino, 1);

	d = node_link(t, kv, "td", true, L_FACTORY);
	if (!d)
		return;
	ok(node_snap_slot(t, d) != NULL, "a directory's listing slot is lent");
	node_detach(t, kv, "td", NULL);
	ok(d->x != NULL, "and stays with the node (dirlist.c holds it)");
	node_forget(t, d->ino, 1);

	d = node_link(t, kv, "many", true, L_FACTORY);
	if (!d)
		return;
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "r%zu", i);
		n = node_link(t, d, name, false, L_FACTORY);
		inos[i] = n ? n->ino : 0;
		if (!n)
			continue;
		if (reader_open(n, 1, L_RUNTIME, &dropped) ==
		    NODE_CACHE_FRESH) {
			node_cache_filled(t, n);
			node_cache_done(t, n);
		}
		kept += n->x != NULL;
	}
	is_int(kept, 0, "files read and closed keep no extra state");
	for (i = 0; i < N; i++)
		node_forget(t, inos[i], 1);
	node_forget(t, d->ino, 1);
}

static void test_cache_writers(struct node *kv)
{
	struct timespec at = {100, 1}, mt = {200, 2}, ga = {0, 0}, gm = {0, 0};
	struct node *n = node_link(t, kv, "f", false, L_FACTORY);

	if (!n)
		return;
	node_writers(t, n, 1);
	ok(node_sole_writer_view(t, n), "one writer: its view holds");
	node_attrs_sent(t, n);
	ok(!node_sole_writer_view(t, n),
	   "attributes sent while it writes spoil it");
	node_writers(t, n, -1);
	node_writers(t, n, 1);
	ok(node_sole_writer_view(t, n), "a new writer starts clean");
	node_writers(t, n, 1);
	ok(!node_sole_writer_view(t, n), "two writers: no sole view");
	node_set_times(t, n, &at, &mt);
	node_take_times(t, n, &ga, &gm);
	ok(ga.tv_sec == 100 && gm.tv_sec == 200 && gm.tv_nsec == 2,
	   "times set while writers are open are kept for the commit");
	node_writers(t, n, -1);
	node_writers(t, n, -1);
	ga.tv_sec = gm.tv_sec = 0;
	node_set_times(t, n, &at, &mt);
	node_take_times(t, n, &ga, &gm);
	ok(ga.tv_sec == 0 && gm.tv_sec == 0,
	   "without writers, times are not kept");
	node_forget(t, n->ino, 1);
}

/* More nodes than the table's first buckets: every one still found by
 * inode number and by name after the tables grew. */
static void test_growth(struct node *kv)
{
	enum {
		N = 5000
	};
	static uint64_t inos[N];
	struct node *d = node_link(t, kv, "big", true, L_FACTORY);
	size_t buckets = t->by_ino.mask + 1, i, by_ino = 0, by_name = 0;
	char name[32];
	struct node *n;

	if (!d)
		return;
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%zu", i);
		n = node_link(t, d, name, false, L_FACTORY);
		inos[i] = n ? n->ino : 0;
	}
	ok(t->by_ino.mask + 1 > buckets && t->by_name.mask + 1 > buckets,
	   "the tables grew (%zu -> %zu slots)", buckets, t->by_ino.mask + 1);
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "n%zu", i);
		by_ino += inos[i] && exists(inos[i]);
		n = node_get_child(t, d, name);
		by_name += n && n->ino == inos[i];
	}
	is_int(by_ino, N, "every node is found by inode number");
	is_int(by_name, N, "and by (parent, name)");
	for (i = 0; i < N; i++)
		node_forget(t, inos[i], 2);
	node_forget(t, d->ino, 1);
	is_int(extra(), 0, "all forgotten, all freed");
}

/* The bound on the table (inode_evict.c): which names are given back. */
static void test_evict(struct node *kv)
{
	enum {
		N = 10
	};
	long before = extra();
	struct node *d = node_link(t, kv, "ev", true, L_FACTORY), *held, *n;
	struct node_name names[N + 2];
	bool picked_held = false, picked_dir = false, none;
	uint64_t inos[N], sub;
	size_t got, i;
	char name[256];

	if (!d)
		return;
	for (i = 0; i < N; i++) {
		snprintf(name, sizeof(name), "f%zu", i);
		n = node_link(t, d, name, false, L_FACTORY);
		inos[i] = n ? n->ino : 0;
	}
	n = node_link(t, d, "sub", true, L_FACTORY);
	sub = n ? n->ino : 0;
	held = node_get(t, inos[3]); /* a request in flight on f3 */
	ok(!nodes_over_bound(t), "no bound: never over");
	nodes_set_bound(t, (size_t)t->count - 4);
	ok(nodes_over_bound(t), "over a bound of 4 fewer nodes");
	is_int(nodes_wait_over(t, false), 4, "4 over: no wait");
	got = nodes_pick_unused(t, names, N + 2, &none);
	is_int(got, 0, "the first round passes over the nodes just looked up");
	ok(!none, "which it could give back");
	got = nodes_pick_unused(t, names, 3, &none);
	is_int(got, 3, "the next gives back as many as asked");
	got += nodes_pick_unused(t, names + got, N + 2 - got, &none);
	for (i = 0; i < got; i++) {
		picked_held |= strcmp(names[i].name, "f3") == 0;
		picked_dir |= strcmp(names[i].name, "sub") == 0;
	}
	is_int(got, N - 1, "every file but the one in use");
	ok(!picked_held && !picked_dir,
	   "neither the file in use nor a directory");
	ok(names[0].parent == d->ino, "named by their directory's inode");
	is_int(t->evicting, N - 1, "each counted as on its way out");
	is_int(nodes_pick_unused(t, names, N + 2, &none), 0,
	       "and not picked again before it is asked for");
	ok(!none, "one round without: not yet none");
	is_int(nodes_pick_unused(t, names, N + 2, &none), 0, "nor in the next");
	ok(none, "two rounds without: nothing can be given back");
	node_put(t, held);
	snprintf(name, sizeof(name), "%s", names[0].name);
	n = node_link(t, d, name, false, L_FACTORY);
	is_int(t->evicting, N - 2, "one asked for again: it stays, counted");
	node_forget(t, n ? n->ino : 0, 2);
	is_int(t->evicting, N - 2, "forgotten then: freed");
	is_int(extra(), before + N + 1, "and gone from the table");
	nodes_set_bound(t, 0);
	for (i = 0; i < N; i++)
		if (exists(inos[i]))
			node_forget(t, inos[i], 1);
	is_int(t->evicting, 0, "the others forgotten: nothing on its way out");
	node_forget(t, sub, 1);
	node_forget(t, d->ino, 1);
	is_int(extra(), before, "all forgotten, all freed");
	nodes_stop_evict(t);
	is_int(nodes_wait_over(t, true), -1, "once stopped, no wait");
	is_int(nodes_pick_unused(t, names, N + 2, &none), 0,
	       "and nothing picked");
}

int main(void)
{
	struct node *root, *kv;

	plan_no_plan();
	if (nodes_init(t)) {
		printf("Bail out! nodes_init\n");
		return 1;
	}
	root = node_get(t, ROOT_INO);
	test_fixed(root);
	kv = fixed_dir(root, "kv");
	test_link_forget(kv);
	test_refs(kv);
	test_keys(root);
	test_detach(kv);
	test_move(kv);
	test_find_merged(kv);
	test_each(kv);
	test_cache_identity(kv);
	test_cache_fill(kv);
	test_cache_push(kv);
	test_cache_writers(kv);
	test_extra_trim(kv);
	test_growth(kv);
	test_evict(kv);
	node_put(t, root);
	nodes_destroy(t);
	return done_testing();
}
