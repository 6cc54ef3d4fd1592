/*
 * test_overlay.c - overlay resolution, copy-up, whiteouts and merged
 * listings, against a stack of three in-memory layers.
 *
 * The factory layer is filled first and then marked read-only, as a real
 * factory image is.  Every check goes through the ovl_* calls the daemon
 * uses; the layers' own state is inspected through their views (VIEW_LAYER)
 * and, for whiteouts, directly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsfs.h"
#include "tap.h"

static struct dsfs_stack stack;

static struct loc merged(const char *key)
{
	struct loc l = {
		.view = VIEW_MERGED, .limit = L_FACTORY, .tree = TREE_KV};

	snprintf(l.key, sizeof(l.key), "%s", key);
	return l;
}

static struct loc in_layer(int layer, const char *key)
{
	struct loc l = {.view = VIEW_LAYER,
			.layer = layer,
			.limit = layer,
			.tree = TREE_KV};

	snprintf(l.key, sizeof(l.key), "%s", key);
	return l;
}

/* Addressable locs for one-off arguments: a small ring of them. */
static struct loc *at(struct loc l)
{
	static struct loc ring[8];
	static unsigned next;
	struct loc *p = &ring[next++ % 8];

	*p = l;
	return p;
}

static struct dsfs_attr file_attr(void)
{
	struct dsfs_attr a;

	memset(&a, 0, sizeof(a));
	a.kind = DSFS_FILE;
	a.mode = 0644;
	snprintf(a.type, sizeof(a.type), "number");
	return a;
}

static struct dsfs_attr dir_attr(void)
{
	struct dsfs_attr a = file_attr();

	a.kind = DSFS_DIR;
	a.mode = 0755;
	return a;
}

static int put(const struct loc *l, const char *value)
{
	struct dsfs_attr a = file_attr();
	struct found f;

	return ovl_commit(&stack, l, &a, value, strlen(value), &f);
}

/* The value the loc shows, or an errno name. */
static const char *get(const struct loc *l)
{
	static char out[256];
	struct found f;
	char *data;
	size_t len;
	int rc = ovl_read_all(&stack, l, &f, &data, &len);

	if (rc) {
		snprintf(out, sizeof(out), "%s",
			 rc == -ENOENT ? "ENOENT" :
			 rc == -EISDIR ? "EISDIR" :
					 "error");
		return out;
	}
	snprintf(out, sizeof(out), "%.*s", (int)len, data);
	free(data);
	return out;
}

static int found_layer(const struct loc *l)
{
	struct found f;
	int rc = ovl_lookup(&stack, l, &f);

	return rc ? rc : f.layer;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names ovl_list() gives at l, sorted (a listing is in offset order),
 * separated by spaces. */
static const char *names(const struct loc *l, bool devices)
{
	static char out[512];
	struct listing ls = {0};
	const char *v[64];
	size_t i, n, pos = 0;
	int rc = ovl_list(&stack, l, devices, &ls);

	out[0] = '\0';
	if (rc)
		return "error";
	n = ls.count < 64 ? ls.count : 64;
	for (i = 0; i < n; i++)
		v[i] = listing_name(&ls, i);
	qsort(v, n, sizeof(v[0]), cmp_name);
	for (i = 0; i < n; i++)
		pos += (size_t)snprintf(out + pos, sizeof(out) - pos, "%s%s",
					i ? " " : "", v[i]);
	listing_free(&ls);
	return out;
}

static bool is_whiteout(int layer, const char *key)
{
	struct dsfs_attr a;

	return layer_lookup(stack.layer[layer], key, &a) == 0 &&
	       a.kind == DSFS_WHITEOUT;
}

static void setup(void)
{
	struct dsfs_attr d = dir_attr();
	struct dsfs_layer *f;
	int i;

	pthread_rwlock_init(&stack.lock, NULL);
	for (i = 0; i < DSFS_NLAYERS; i++)
		if (layer_mem_open(1 << 20, &stack.layer[i]) != 0) {
			printf("Bail out! layer_mem_open failed\n");
			exit(1);
		}
	f = stack.layer[L_FACTORY];
	layer_commit(f, "kv/a",
		     &(struct dsfs_attr){.kind = DSFS_FILE, .mode = 0644}, "1",
		     1, NULL);
	layer_commit(f, "kv/b",
		     &(struct dsfs_attr){.kind = DSFS_FILE, .mode = 0600},
		     "\"b\"", 3, NULL);
	layer_mkdir(f, "kv/d", &d);
	layer_commit(f, "kv/d/x",
		     &(struct dsfs_attr){.kind = DSFS_FILE, .mode = 0644}, "2",
		     1, NULL);
	layer_mkdir(f, "kv/__hub", &d);
	f->readonly = true;
}

static void teardown(void)
{
	int i;

	for (i = 0; i < DSFS_NLAYERS; i++)
		layer_close(stack.layer[i]);
	pthread_rwlock_destroy(&stack.lock);
}

/* The mtime of key in one layer, 0 if it has none. */
static time_t mtime_in(int layer, const char *key)
{
	struct dsfs_attr a;

	return layer_lookup(stack.layer[layer], key, &a) == 0 ? a.mtime.tv_sec :
								0;
}

/* Set key's times in one layer back to the epoch. */
static void age(int layer, const char *key)
{
	struct dsfs_attr old = {0};

	layer_setattr(stack.layer[layer], key, &old,
		      DSFS_SET_MTIME | DSFS_SET_CTIME);
}

/* A made, removed or renamed name sets its directory's mtime and ctime in
 * the layer changed and in the writable ones above it (dirtimes.c). */
static void dir_times(void)
{
	struct dsfs_attr da = dir_attr();
	struct timespec t;
	struct found f;

	is_int(ovl_tree_time(&stack, VIEW_MERGED, 0, TREE_IMAGES, &t), -ENOENT,
	       "images/ has not changed since the start");
	is_int(ovl_mkdir(&stack, at(merged("kv/t")), &da, &f), 0, "mkdir kv/t");
	is_int(ovl_tree_time(&stack, VIEW_MERGED, 0, TREE_KV, &t), 0,
	       "kv/ has changed");
	ok(t.tv_sec > 0, "at a time");
	is_int(ovl_mkdir(&stack, at(in_layer(L_EPHEMERAL, "kv/t")), &da, &f), 0,
	       "mkdir ephemeral/kv/t too");
	age(L_RUNTIME, "kv/t");
	age(L_EPHEMERAL, "kv/t");
	is_int(put(at(merged("kv/t/n")), "1"), 0, "a new name in kv/t");
	ok(mtime_in(L_RUNTIME, "kv/t") > 0, "sets runtime's kv/t mtime");
	ok(mtime_in(L_EPHEMERAL, "kv/t") > 0, "and ephemeral's, shown above");
	age(L_RUNTIME, "kv/t");
	age(L_EPHEMERAL, "kv/t");
	is_int(put(at(merged("kv/t/n")), "2"), 0, "a new value, same name");
	is_int((int)mtime_in(L_RUNTIME, "kv/t"), 0, "leaves the times alone");
	is_int(ovl_unlink(&stack, at(in_layer(L_RUNTIME, "kv/t/n")), NULL), 0,
	       "rm runtime/kv/t/n");
	ok(mtime_in(L_RUNTIME, "kv/t") > 0, "sets runtime's kv/t mtime");
	ok(mtime_in(L_EPHEMERAL, "kv/t") > 0, "and ephemeral's above it");
	age(L_RUNTIME, "kv/t");
	age(L_EPHEMERAL, "kv/t");
	is_int(put(at(in_layer(L_EPHEMERAL, "kv/t/e")), "3"), 0,
	       "a new name in ephemeral/kv/t");
	ok(mtime_in(L_EPHEMERAL, "kv/t") > 0, "sets ephemeral's kv/t mtime");
	is_int((int)mtime_in(L_RUNTIME, "kv/t"), 0, "not runtime's, below");
	age(L_EPHEMERAL, "kv/t");
	is_int(ovl_rename(&stack, at(merged("kv/t/e")), at(merged("kv/t2e")),
			  0),
	       0, "mv kv/t/e kv/t2e");
	ok(mtime_in(L_EPHEMERAL, "kv/t") > 0, "sets the source's mtime");
}

int main(void)
{
	struct loc a = merged("kv/a"), b = merged("kv/b"), c = merged("kv/c");
	struct loc d = merged("kv/d"), dx = merged("kv/d/x");
	struct loc e = merged("kv/e"), n = merged("kv/n");
	struct dsfs_attr da = dir_attr(), set;
	struct found f, gone;

	plan_no_plan();
	setup();

	/* Resolution. */
	is_int(found_layer(&a), L_FACTORY, "a factory entry shows in kv/");
	is_str(get(&a), "1", "its value");
	is_str(names(&(struct loc){.view = VIEW_MERGED,
				   .limit = L_FACTORY,
				   .key = "kv"},
		     false),
	       "__hub a b d", "kv/ lists the factory's names");

	/* Copy-up: a write through kv/ goes to runtime, factory keeps its
	 * default. */
	is_int(put(&a, "10"), 0, "writing a factory entry through kv/");
	is_int(found_layer(&a), L_RUNTIME, "it is now found in runtime");
	is_str(get(&a), "10", "with the new value");
	is_str(get(&(struct loc){.view = VIEW_LAYER,
				 .layer = L_FACTORY,
				 .limit = L_FACTORY,
				 .key = "kv/a"}),
	       "1", "the factory layer still has the default");
	is_int(put(&dx, "20"), 0, "writing below a factory directory");
	is_int(found_layer(&(struct loc){.view = VIEW_LAYER,
					 .layer = L_RUNTIME,
					 .limit = L_RUNTIME,
					 .key = "kv/d"}),
	       L_RUNTIME, "copied its parent directory up into runtime");

	/* Revert: removing the runtime value shows the default again. */
	is_int(ovl_unlink(&stack,
			  &(struct loc){.view = VIEW_LAYER,
					.layer = L_RUNTIME,
					.limit = L_RUNTIME,
					.key = "kv/a"},
			  NULL),
	       0, "rm runtime/kv/a");
	is_str(get(&a), "1", "kv/a shows the factory default again");

	/* Whiteouts. */
	is_int(ovl_unlink(&stack, &a, &gone), 0, "rm kv/a");
	ok(gone.layer == L_FACTORY && gone.attr.kind == DSFS_FILE &&
		   gone.attr.size == 1,
	   "it tells what went: the factory's file");
	is_str(get(&a), "ENOENT", "kv/a is gone");
	ok(is_whiteout(L_RUNTIME, "kv/a"), "a whiteout is kept in runtime");
	is_str(get(at(in_layer(L_RUNTIME, "kv/a"))), "ENOENT",
	       "runtime/kv hides the whiteout");
	is_str(get(at(in_layer(L_FACTORY, "kv/a"))), "1",
	       "factory/kv/a is still there");
	is_str(names(&(struct loc){.view = VIEW_MERGED,
				   .limit = L_FACTORY,
				   .key = "kv"},
		     false),
	       "__hub b d", "kv/ no longer lists a");
	is_int(put(&a, "11"), 0, "writing kv/a again");
	is_str(get(&a), "11", "replaces the whiteout");
	is_int(ovl_unlink(&stack, at(in_layer(L_RUNTIME, "kv/a")), NULL), 0,
	       "rm runtime/kv/a again");

	/* New entries go to runtime; ephemeral entries stay ephemeral. */
	is_int(put(&n, "5"), 0, "a new entry through kv/");
	is_int(found_layer(&n), L_RUNTIME, "is stored in runtime");
	is_int(put(at(in_layer(L_EPHEMERAL, "kv/e")), "7"), 0,
	       "writing ephemeral/kv/e");
	is_int(found_layer(&e), L_EPHEMERAL, "kv/e is found in ephemeral");
	is_int(put(&e, "8"), 0, "writing kv/e");
	is_int(found_layer(&e), L_EPHEMERAL, "stays in ephemeral");
	is_int(put(at(in_layer(L_EPHEMERAL, "kv/n")), "6"), 0,
	       "ephemeral/kv/n over runtime's n");
	is_str(get(&n), "6", "ephemeral is read first");
	is_str(names(&(struct loc){.view = VIEW_MERGED,
				   .limit = L_FACTORY,
				   .key = "kv"},
		     false),
	       "__hub a b d e n", "listing is a union without duplicates");
	is_int(ovl_unlink(&stack, &n, NULL), 0, "rm kv/n");
	is_str(get(&n), "ENOENT", "removed from every writable layer");
	ok(!is_whiteout(L_RUNTIME, "kv/n"),
	   "no whiteout when the factory has no such entry");

	/* Directories: remove a factory directory, make it again. */
	is_int(ovl_rmdir(&stack, &d, NULL), -ENOTEMPTY,
	       "rmdir of a non-empty dir");
	is_int(ovl_unlink(&stack, &dx, NULL), 0, "rm kv/d/x");
	is_str(names(&(struct loc){.view = VIEW_MERGED,
				   .limit = L_FACTORY,
				   .key = "kv/d"},
		     false),
	       "", "kv/d is empty");
	is_int(ovl_rmdir(&stack, &d, NULL), 0, "rmdir kv/d");
	is_int(found_layer(&d), -ENOENT, "kv/d is gone");
	is_int(ovl_mkdir(&stack, &d, &da, &f), 0, "mkdir kv/d again");
	ok(f.attr.opaque, "the new directory is opaque");
	dx.limit = f.limit;
	is_int(found_layer(&dx), -ENOENT,
	       "the factory's kv/d/x stays hidden below it");
	is_int(ovl_mkdir(&stack, &d, &da, &f), -EEXIST, "mkdir twice");

	/* Rename. */
	is_int(ovl_rename(&stack, &b, &c, 0), 0, "mv kv/b kv/c (factory)");
	is_str(get(&c), "\"b\"", "kv/c has b's value");
	is_int(found_layer(&c), L_RUNTIME, "in runtime");
	is_str(get(&b), "ENOENT", "kv/b is gone");
	ok(is_whiteout(L_RUNTIME, "kv/b"), "behind a whiteout");
	is_int(ovl_rename(&stack, &c, &e, DSFS_RENAME_NOREPLACE), -EEXIST,
	       "RENAME_NOREPLACE over an existing entry");
	is_int(ovl_rename(&stack, &c, &e, 0), 0, "mv kv/c over kv/e");
	is_str(get(&e), "\"b\"", "the ephemeral kv/e is replaced");
	is_int(found_layer(&e), L_RUNTIME, "kv/e is now runtime's");
	is_int(ovl_rename(&stack, at(merged("kv/__hub")), at(merged("kv/__x")),
			  0),
	       -EXDEV, "a factory directory is not renamed in place");
	is_int(ovl_rename(&stack, &e, at(in_layer(L_RUNTIME, "kv/z")), 0),
	       -EXDEV, "rename between a merged tree and a layer");

	/* Read-only factory. */
	is_int(put(at(in_layer(L_FACTORY, "kv/q")), "1"), -EROFS,
	       "factory/kv is read-only");
	is_int(ovl_unlink(&stack, at(in_layer(L_FACTORY, "kv/__hub")), NULL),
	       -EISDIR, "unlink of a directory");
	is_int(ovl_rmdir(&stack, at(in_layer(L_FACTORY, "kv/__hub")), NULL),
	       -EROFS, "rmdir under factory/");

	/* setattr copies a factory entry up. */
	memset(&set, 0, sizeof(set));
	set.mode = 0640;
	is_int(ovl_mkdir(&stack, at(in_layer(L_RUNTIME, "kv/__dev2")), &da, &f),
	       0, "mkdir runtime/kv/__dev2");
	is_str(names(&(struct loc){.view = VIEW_MERGED,
				   .limit = L_FACTORY,
				   .key = "kv"},
		     true),
	       "dev2 hub", "devices/ lists the __ namespaces");
	is_int(ovl_setattr(&stack, at(merged("kv/__hub")), &set, DSFS_SET_MODE,
			   &f),
	       0, "chmod of a factory directory");
	is_int(f.layer, L_RUNTIME, "copied it up");
	is_int((int)f.attr.mode, 0640, "with the new mode");

	/* Directory times. */
	dir_times();

	/* Factory reset. */
	is_int(ovl_factory_reset(&stack), 0, "factory reset");
	is_str(names(&(struct loc){.view = VIEW_MERGED,
				   .limit = L_FACTORY,
				   .key = "kv"},
		     false),
	       "__hub a b d", "the merged view equals the factory again");
	is_str(get(&a), "1", "kv/a is the default");

	teardown();
	return done_testing();
}
