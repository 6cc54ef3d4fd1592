/*
 * test_layer_space.c - the conformance tests of space and images: the
 * budget and usage() accounting, images deduplicated by token, the token
 * a layer hashes itself, clear(), blob pins, a read-only layer, many
 * entries, writers on several threads and sync().  Every implementation
 * runs them (test_layer.c).
 */
#include "test_layer.h"

#include <errno.h>
#include <ftw.h>
#include <pthread.h>

void t_budget(void)
{
	struct dsfs_layer *l = fresh(100);
	unsigned char v[200];
	char longname[100];
	uint64_t used, budget;

	fill(v, sizeof(v), 2);
	is_int(put_len(l, "kv/a", v, 50), 0, nm("commit 1+50 bytes"));
	layer_usage(l, &used, &budget);
	ok(used == 51 && budget == 100, "%s", nm("usage 51 of 100"));
	is_int(put_len(l, "kv/b", v, 60), -ENOSPC, nm("over budget: ENOSPC"));
	is_int(used_of(l), 51, nm("... usage unchanged"));
	is_int(kind_of(l, "kv/b"), -ENOENT, nm("... no entry made"));
	is_int(put_len(l, "kv/a", v + 1, 99), 0,
	       nm("replace up to exactly the budget"));
	is_int(used_of(l), 100, nm("usage 100 of 100"));
	is_int(put_len(l, "kv/a", v, 100), -ENOSPC,
	       nm("replace past the budget: ENOSPC"));
	ok(layer_read(l, "kv/a", 0, v + 100, 100) == 99 &&
		   memcmp(v + 100, v + 1, 99) == 0,
	   "%s", nm("... the old value is intact"));
	is_int(used_of(l), 100, nm("... usage unchanged"));
	is_int(mkd(l, "kv/d"), -ENOSPC, nm("mkdir over budget: ENOSPC"));
	is_int(layer_whiteout(l, "kv/w"), -ENOSPC,
	       nm("whiteout over budget: ENOSPC"));
	is_int(put_img(l, "images/i", TOKEN_T, v, 1), -ENOSPC,
	       nm("image over budget: ENOSPC"));
	is_int(layer_read_blob(l, TOKEN_T, 0, v, 1), -ENOENT,
	       nm("... no blob stored"));
	is_int(put_len(l, "kv/a", v, 10), 0, nm("shrinking always works"));
	is_int(used_of(l), 11, nm("usage 11"));
	memset(longname, 'n', sizeof(longname));
	memcpy(longname, "kv/", 3);
	longname[3 + 95] = '\0';
	is_int(layer_rename(l, "kv/a", longname, 0), -ENOSPC,
	       nm("rename to a name over budget: ENOSPC"));
	is_str(ls(l, "kv"), "a/f", nm("... nothing moved"));
	mkd(l, "kv/d");
	layer_whiteout(l, "kv/w");
	is_int(used_of(l), 13, nm("usage 13"));
	longname[3 + 88] = '\0';
	is_int(layer_rename(l, "kv/a", longname, DSFS_RENAME_WHITEOUT), -ENOSPC,
	       nm("rename whose whiteout goes over: ENOSPC"));
	is_int(kind_of(l, "kv/a"), DSFS_FILE, nm("... source untouched"));
	is_int(used_of(l), 13, nm("... usage unchanged"));
	is_int(layer_rename(l, "kv/a", longname, 0), 0,
	       nm("the same rename without whiteout fits"));
	is_int(used_of(l), 100, nm("usage counts the new name: 13-1+88"));
	layer_close(l);
}

void t_usage(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a = attr(0600);
	uint64_t e = 0;

	is_int(used_of(l), 0, nm("a new layer uses nothing"));
	put(l, "kv/abc", "12345");
	is_int(used_of(l), e += 8, nm("commit: name + value"));
	put(l, "kv/abc", "1");
	is_int(used_of(l), e -= 4, nm("replace: the value difference"));
	mkd(l, "kv/dir");
	is_int(used_of(l), e += 3, nm("mkdir: the name"));
	put(l, "kv/dir/f", "xx");
	is_int(used_of(l), e += 3, nm("commit in a dir: last name only"));
	layer_whiteout(l, "kv/dir/w");
	is_int(used_of(l), e += 1, nm("whiteout: the name"));
	layer_setattr(l, "kv/abc", &a, DSFS_SET_MODE);
	is_int(used_of(l), e, nm("setattr: nothing"));
	layer_rename(l, "kv/abc", "kv/ab", 0);
	is_int(used_of(l), e -= 1, nm("rename: the name difference"));
	layer_rename(l, "kv/ab", "kv/abcd", DSFS_RENAME_WHITEOUT);
	is_int(used_of(l), e += 4, nm("rename with whiteout: + the whiteout"));
	put(l, "kv/g", "zzz");
	is_int(used_of(l), e += 4, nm("another file"));
	layer_rename(l, "kv/g", "kv/abcd", 0);
	is_int(used_of(l), e -= 2, nm("rename over a file frees it"));
	is_str(get(l, "kv/abcd"), "zzz", nm("... with the right value"));
	layer_whiteout(l, "kv/abcd");
	is_int(used_of(l), e -= 3, nm("whiteout over a file frees its value"));
	layer_remove(l, "kv/dir/f");
	is_int(used_of(l), e -= 3, nm("remove a file"));
	layer_remove(l, "kv/dir");
	is_int(used_of(l), e -= 4, nm("remove a dir with its whiteout"));
	is_int(e, 6, nm("two whiteouts left: ab and abcd"));
	mkd(l, "kv/q");
	layer_whiteout(l, "kv/q/x");
	is_int(used_of(l), e += 2, nm("a dir with a whiteout"));
	layer_whiteout(l, "kv/q");
	is_int(used_of(l), e -= 1, nm("whiteout over that dir"));
	mkd(l, "kv/q");
	is_int(used_of(l), e, nm("mkdir over a whiteout: name counted once"));
	layer_whiteout(l, "kv/q/y");
	mkd(l, "kv/r");
	is_int(used_of(l), e += 2, nm("a whiteout and a dir"));
	layer_rename(l, "kv/r", "kv/q", 0);
	is_int(used_of(l), e -= 2, nm("rename over a dir of whiteouts"));
	mkd(l, "kv/u");
	layer_whiteout(l, "kv/u/é");
	put(l, "kv/ü", "1");
	is_int(used_of(l), e += 1 + 2 + 3, nm("names count in bytes"));
	layer_remove(l, "kv/u");
	is_int(used_of(l), e -= 3, nm("... also when a dir's whiteouts go"));
	layer_clear(l);
	is_int(used_of(l), 0, nm("clear: nothing used"));
	layer_close(l);
}

void t_images(void)
{
	struct dsfs_layer *l = fresh(BIG);
	unsigned char img[1000], buf[1100], small[10];
	struct dsfs_attr got;

	fill(img, sizeof(img), 3);
	fill(small, sizeof(small), 4);
	is_int(put_img(l, "images/x", TOKEN_T, img, sizeof(img)), 0,
	       nm("commit an image"));
	is_int(used_of(l), 1 + 1000, nm("usage: name + blob"));
	is_int(layer_lookup(l, "images/x", &got), 0, nm("lookup the image"));
	ok(strcmp(got.token, TOKEN_T) == 0 && got.size == 1000 &&
		   strcmp(got.type, "image/png") == 0,
	   "%s", nm("token, size and type kept"));
	is_int(put_img(l, "images/y", TOKEN_T, img, sizeof(img)), 0,
	       nm("the same image under another name"));
	is_int(used_of(l), 1 + 1 + 1000, nm("usage counts the blob once"));
	ok(layer_read(l, "images/y", 0, buf, sizeof(buf)) == 1000 &&
		   memcmp(buf, img, 1000) == 0,
	   "%s", nm("read the image through its entry"));
	ok(layer_read_blob(l, TOKEN_T, 0, buf, sizeof(buf)) == 1000 &&
		   memcmp(buf, img, 1000) == 0,
	   "%s", nm("read the blob by token"));
	ok(layer_read_blob(l, TOKEN_T, 500, buf, 100) == 100 &&
		   memcmp(buf, img + 500, 100) == 0,
	   "%s", nm("read part of the blob"));
	is_int(layer_remove(l, "images/x"), 0, nm("remove one of the two"));
	is_int(used_of(l), 1 + 1000, nm("the blob is still counted"));
	ok(layer_read(l, "images/y", 0, buf, sizeof(buf)) == 1000 &&
		   memcmp(buf, img, 1000) == 0,
	   "%s", nm("the other still reads"));
	is_int(layer_read_blob(l, TOKEN_T, 0, buf, 10), 10,
	       nm("the blob is still there"));
	is_int(put_img(l, "images/y", TOKEN_T, img, sizeof(img)), 0,
	       nm("replace an image by itself"));
	is_int(used_of(l), 1 + 1000, nm("... usage unchanged"));
	is_int(layer_read_blob(l, TOKEN_T, 0, buf, 10), 10,
	       nm("... its blob kept"));
	is_int(put_img(l, "images/y", TOKEN_U, small, sizeof(small)), 0,
	       nm("replace by another image"));
	is_int(used_of(l), 1 + 10, nm("... the old blob is freed"));
	is_int(layer_read_blob(l, TOKEN_T, 0, buf, 10), -ENOENT,
	       nm("... and gone"));
	is_int(put(l, "images/y", "x"), 0, nm("replace by a plain value"));
	is_int(used_of(l), 2, nm("... blob freed"));
	is_int(layer_read_blob(l, TOKEN_U, 0, buf, 10), -ENOENT,
	       nm("... and gone"));
	put_img(l, "images/a", TOKEN_T, img, sizeof(img));
	put_img(l, "images/b", TOKEN_T, img, sizeof(img));
	is_int(used_of(l), 2 + 1 + 1 + 1000, nm("two entries, one blob"));
	is_int(layer_rename(l, "images/a", "images/b", 0), 0,
	       nm("rename an image over its twin"));
	is_int(used_of(l), 2 + 1 + 1000, nm("... one name less"));
	ok(layer_read(l, "images/b", 0, buf, sizeof(buf)) == 1000 &&
		   memcmp(buf, img, 1000) == 0,
	   "%s", nm("... the survivor reads"));
	is_int(layer_whiteout(l, "images/b"), 0, nm("whiteout the last one"));
	is_int(used_of(l), 2 + 1, nm("... frees the blob"));
	is_int(layer_read_blob(l, TOKEN_T, 0, buf, 10), -ENOENT,
	       nm("... which is gone"));
	layer_remove(l, "images/b");
	layer_remove(l, "images/y");
	is_int(used_of(l), 0, nm("nothing left"));
	layer_close(l);
}

/* Unfinished blob files ("new." names in a store's pending/) anywhere under
 * the test's directory. */
static int new_files;
static int count_new(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (strncmp(path + ftw->base, "new.", 4) == 0)
		new_files++;
	return 0;
}

/* A commit that leaves the token to the layer (hash_token): the bytes'
 * SHA-256, given back and stored, whatever a->token said; the same bytes
 * again share the blob (in a file store, the second file is dropped);
 * replace() leaves such a commit to commit(). */
void t_hash_token(void)
{
	struct dsfs_layer *l = fresh(BIG);
	size_t len = 100000;
	unsigned char *img = malloc(len), *buf = malloc(len + 1);
	char want[DSFS_TOKEN_LEN + 1];
	struct dsfs_attr a = attr(0644), out, got;

	if (!img || !buf)
		bail("malloc");
	fill(img, len, 21);
	layer_image_token(img, len, want);
	strcpy(a.type, "image/png");
	strcpy(a.token, TOKEN_U); /* not these bytes': ignored */
	a.hash_token = true;
	is_int(layer_replace(l, "images/h", &a, img, len, &out), -ENOENT,
	       nm("hash_token: replace() leaves it to commit()"));
	is_int(layer_commit(l, "images/h", &a, img, len, &out), 0,
	       nm("hash_token: commit"));
	is_str(out.token, want, nm("hash_token: the token is the SHA-256"));
	ok(!out.hash_token && out.size == len, "%s",
	   nm("hash_token: not stored, size set"));
	is_int(layer_lookup(l, "images/h", &got), 0, nm("hash_token: lookup"));
	is_str(got.token, want, nm("hash_token: the token stored"));
	ok(layer_read(l, "images/h", 0, buf, len + 1) == (ssize_t)len &&
		   memcmp(buf, img, len) == 0,
	   "%s", nm("hash_token: the bytes read back"));
	is_int(layer_read_blob(l, TOKEN_U, 0, buf, 10), -ENOENT,
	       nm("hash_token: nothing stored under the token given"));
	is_int(layer_commit(l, "images/i", &a, img, len, &out), 0,
	       nm("hash_token: the same bytes again"));
	is_str(out.token, want, nm("hash_token: ... the same token"));
	is_int(used_of(l), 2 + len, nm("hash_token: one blob"));
	new_files = 0;
	nftw(tl.tmpdir, count_new, 16, FTW_PHYS);
	is_int(new_files, 0, nm("hash_token: no unfinished file left"));
	layer_remove(l, "images/h");
	layer_remove(l, "images/i");
	is_int(layer_read_blob(l, want, 0, buf, 10), -ENOENT,
	       nm("hash_token: the blob goes with its last entry"));
	is_int(used_of(l), 0, nm("hash_token: nothing used"));
	layer_close(l);
	free(img);
	free(buf);
}

void t_clear(void)
{
	struct dsfs_layer *l = fresh(BIG);
	unsigned char img[100];
	uint64_t v;
	char buf[4];

	fill(img, sizeof(img), 5);
	put(l, "kv/a", "1");
	mkd(l, "kv/d");
	put(l, "kv/d/x", "1");
	layer_whiteout(l, "kv/w");
	put_img(l, "images/i", TOKEN_T, img, sizeof(img));
	v = version_of(l, "images/i");
	is_int(layer_clear(l), 0, nm("clear"));
	is_int(used_of(l), 0, nm("... nothing used"));
	ok(kind_of(l, "kv/a") == -ENOENT && kind_of(l, "kv/d/x") == -ENOENT &&
		   kind_of(l, "kv/w") == -ENOENT,
	   "%s", nm("... entries and whiteouts gone"));
	is_str(ls(l, "kv"), "", nm("... kv lists empty"));
	is_str(ls(l, "images"), "", nm("... images lists empty"));
	is_int(layer_read_blob(l, TOKEN_T, 0, buf, 1), -ENOENT,
	       nm("... blobs gone"));
	is_int(put(l, "kv/a", "2"), 0, nm("commit after clear"));
	ok(version_of(l, "kv/a") > v, "%s",
	   nm("versions keep increasing across a clear"));
	is_int(mkd(l, "kv/d"), 0, nm("mkdir after clear"));
	layer_close(l);
}

void t_pins(void)
{
	struct dsfs_layer *l = fresh(BIG);
	unsigned char img[1000], small[10];
	char buf[16];

	fill(img, sizeof(img), 21);
	fill(small, sizeof(small), 22);
	is_int(blob_size(l, TOKEN_T), -ENOENT, nm("stat_blob: no such blob"));
	is_int(layer_pin_blob(l, TOKEN_T), -ENOENT,
	       nm("pin_blob: no such blob"));
	is_int(layer_unpin_blob(l, TOKEN_T), -ENOENT,
	       nm("unpin_blob: not pinned"));
	put_img(l, "images/x", TOKEN_T, img, sizeof(img));
	is_int(blob_size(l, TOKEN_T), 1000, nm("stat_blob: its size"));
	is_int(put(l, "kv/x", "plain"), 0, nm("a plain value"));
	is_int(blob_size(l, "kv/x"), -ENOENT,
	       nm("stat_blob: a key is not a token"));
	layer_remove(l, "kv/x");

	/* The only entry removed. */
	is_int(layer_pin_blob(l, TOKEN_T), 0, nm("pin"));
	is_int(layer_remove(l, "images/x"), 0, nm("remove its only entry"));
	is_int(used_of(l), 1000, nm("... the pinned blob is still counted"));
	ok(blob_is(l, TOKEN_T, img, 1000), "%s", nm("... and still reads"));
	is_int(blob_size(l, TOKEN_T), 1000, nm("... and still stats"));
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("unpin"));
	is_int(used_of(l), 0, nm("... usage drops by its size"));
	is_int(layer_read_blob(l, TOKEN_T, 0, buf, 1), -ENOENT,
	       nm("... the blob is gone"));
	is_int(blob_size(l, TOKEN_T), -ENOENT, nm("... stat_blob: ENOENT"));
	is_int(layer_unpin_blob(l, TOKEN_T), -ENOENT,
	       nm("unpin once more: not pinned"));

	/* The only entry replaced by another image. */
	put_img(l, "images/x", TOKEN_T, img, sizeof(img));
	is_int(layer_pin_blob(l, TOKEN_T), 0, nm("pin again"));
	is_int(put_img(l, "images/x", TOKEN_U, small, sizeof(small)), 0,
	       nm("replace its entry by another image"));
	is_int(used_of(l), 1 + 10 + 1000, nm("... both blobs counted"));
	ok(blob_is(l, TOKEN_T, img, 1000), "%s",
	   nm("... the pinned one still reads"));
	ok(blob_is(l, TOKEN_U, small, 10), "%s", nm("... the new one reads"));
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("unpin"));
	is_int(used_of(l), 1 + 10, nm("... usage drops by exactly its size"));
	is_int(blob_size(l, TOKEN_T), -ENOENT, nm("... the old blob is gone"));
	ok(blob_is(l, TOKEN_U, small, 10), "%s", nm("... the new one stays"));

	/* A blob still referenced outlives its pins. */
	is_int(layer_pin_blob(l, TOKEN_U), 0, nm("pin a referenced blob"));
	is_int(layer_unpin_blob(l, TOKEN_U), 0, nm("unpin it"));
	ok(blob_is(l, TOKEN_U, small, 10), "%s",
	   nm("... still referenced: kept"));
	is_int(used_of(l), 1 + 10, nm("... usage unchanged"));

	/* A pinned, unreferenced blob taken back into use. */
	is_int(layer_pin_blob(l, TOKEN_U), 0, nm("pin"));
	layer_remove(l, "images/x");
	is_int(put_img(l, "images/y", TOKEN_U, small, sizeof(small)), 0,
	       nm("commit its token again"));
	is_int(used_of(l), 1 + 10, nm("... the blob is not counted twice"));
	is_int(layer_unpin_blob(l, TOKEN_U), 0, nm("unpin"));
	ok(blob_is(l, TOKEN_U, small, 10), "%s",
	   nm("... referenced again: kept"));
	is_int(used_of(l), 1 + 10, nm("... usage unchanged"));
	layer_remove(l, "images/y");
	is_int(used_of(l), 0, nm("... then removed: all freed"));

	/* Pins nest. */
	put_img(l, "images/z", TOKEN_T, img, sizeof(img));
	layer_pin_blob(l, TOKEN_T);
	is_int(layer_pin_blob(l, TOKEN_T), 0, nm("pin twice"));
	layer_remove(l, "images/z");
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("unpin once"));
	ok(blob_is(l, TOKEN_T, img, 1000), "%s", nm("... still readable"));
	is_int(used_of(l), 1000, nm("... still counted"));
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("unpin twice"));
	is_int(blob_size(l, TOKEN_T), -ENOENT, nm("... now it is gone"));
	is_int(used_of(l), 0, nm("... and not counted"));

	/* clear() spares pinned blobs only. */
	put_img(l, "images/a", TOKEN_T, img, sizeof(img));
	put_img(l, "images/b", TOKEN_T, img, sizeof(img));
	put_img(l, "images/c", TOKEN_U, small, sizeof(small));
	put(l, "kv/k", "v");
	layer_pin_blob(l, TOKEN_T);
	is_int(layer_clear(l), 0, nm("clear with a blob pinned"));
	is_int(used_of(l), 1000, nm("... only the pinned blob counted"));
	is_str(ls(l, "images"), "", nm("... every entry gone"));
	ok(blob_is(l, TOKEN_T, img, 1000), "%s",
	   nm("... the pinned blob reads"));
	is_int(blob_size(l, TOKEN_U), -ENOENT, nm("... the other one is gone"));
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("unpin"));
	is_int(used_of(l), 0, nm("... nothing counted"));
	is_int(blob_size(l, TOKEN_T), -ENOENT, nm("... the blob is gone"));

	/* Pins are allowed on a read-only layer. */
	put_img(l, "images/r", TOKEN_T, img, sizeof(img));
	l->readonly = true;
	is_int(layer_pin_blob(l, TOKEN_T), 0, nm("read-only: pin works"));
	is_int(blob_size(l, TOKEN_T), 1000, nm("read-only: stat_blob works"));
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("read-only: unpin works"));
	l->readonly = false;

	/* A pin still held at close is simply dropped. */
	layer_pin_blob(l, TOKEN_T);
	layer_remove(l, "images/r");
	layer_close(l);
}

void t_readonly(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a = attr(0600), got;
	uint64_t used;

	put(l, "kv/a", "1");
	mkd(l, "kv/d");
	used = used_of(l);
	l->readonly = true;
	is_int(put(l, "kv/a", "2"), -EROFS, nm("read-only: commit EROFS"));
	is_int(mkd(l, "kv/e"), -EROFS, nm("read-only: mkdir EROFS"));
	is_int(layer_remove(l, "kv/a"), -EROFS, nm("read-only: remove EROFS"));
	is_int(layer_whiteout(l, "kv/a"), -EROFS,
	       nm("read-only: whiteout EROFS"));
	is_int(layer_setattr(l, "kv/a", &a, DSFS_SET_MODE), -EROFS,
	       nm("read-only: setattr EROFS"));
	is_int(layer_rename(l, "kv/a", "kv/b", 0), -EROFS,
	       nm("read-only: rename EROFS"));
	is_int(layer_clear(l), -EROFS, nm("read-only: clear EROFS"));
	is_int(layer_lookup(l, "kv/a", &got), 0, nm("read-only: lookup works"));
	is_str(get(l, "kv/a"), "1", nm("read-only: read works"));
	is_str(ls(l, "kv"), "a/f d/d", nm("read-only: list works"));
	is_int(layer_sync(l), 0, nm("read-only: sync works"));
	l->readonly = false;
	is_int(used_of(l), used, nm("nothing changed"));
	layer_close(l);
}

void t_many(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct names ns = {.n = 0};
	char key[64], val[16];
	int i, bad = 0;

	mkd(l, "kv/m");
	for (i = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "kv/m/k%d", i);
		snprintf(val, sizeof(val), "%d", i);
		bad += put(l, key, val) != 0;
	}
	is_int(bad, 0, nm("2000 commits"));
	layer_list(l, "kv/m", collect_cb, &ns);
	is_int(ns.calls, 2000, nm("list sees all 2000"));
	for (i = 0; i < ns.n; i++)
		free(ns.v[i]);
	for (i = 0, bad = 0; i < 2000; i += 7) {
		snprintf(key, sizeof(key), "kv/m/k%d", i);
		snprintf(val, sizeof(val), "%d", i);
		bad += strcmp(get(l, key), val) != 0;
	}
	is_int(bad, 0, nm("values read back"));
	is_int(layer_rename(l, "kv/m", "kv/n", 0), 0,
	       nm("rename the 2000-entry dir"));
	is_str(get(l, "kv/n/k1999"), "1999", nm("... entries follow"));
	for (i = 0, bad = 0; i < 2000; i++) {
		snprintf(key, sizeof(key), "kv/n/k%d", i);
		bad += layer_remove(l, key) != 0;
	}
	is_int(bad, 0, nm("remove all 2000"));
	is_str(ls(l, "kv/n"), "", nm("the dir is empty"));
	is_int(used_of(l), 1, nm("only the dir's name is used"));
	layer_close(l);
}

struct thread_arg {
	struct dsfs_layer *l;
	int id;
	int bad;
};

static void *writer(void *p)
{
	struct thread_arg *t = p;
	char key[64], val[32], buf[32];
	ssize_t n;
	int i;

	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "kv/t/%d-%d", t->id, i);
		snprintf(val, sizeof(val), "%d", i * t->id);
		if (put(t->l, key, val) != 0) {
			t->bad++;
			continue;
		}
		n = layer_read(t->l, key, 0, buf, sizeof(buf) - 1);
		if (n < 0 || (size_t)n != strlen(val) ||
		    memcmp(buf, val, (size_t)n) != 0)
			t->bad++;
	}
	return NULL;
}

void t_threads(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct thread_arg ta[4];
	pthread_t th[4];
	struct names ns = {.n = 0};
	int i, bad = 0;

	mkd(l, "kv/t");
	for (i = 0; i < 4; i++) {
		ta[i] = (struct thread_arg){l, i + 1, 0};
		if (pthread_create(&th[i], NULL, writer, &ta[i]) != 0)
			bail("pthread_create");
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		bad += ta[i].bad;
	}
	is_int(bad, 0, nm("4 threads commit and read back"));
	layer_list(l, "kv/t", collect_cb, &ns);
	is_int(ns.calls, 400, nm("... all 400 entries listed"));
	for (i = 0; i < ns.n; i++)
		free(ns.v[i]);
	layer_close(l);
}

void t_sync(void)
{
	struct dsfs_layer *l = fresh(BIG);

	put(l, "kv/a", "1");
	is_int(layer_sync(l), 0, nm("sync"));
	is_str(get(l, "kv/a"), "1", nm("... the value is still there"));
	layer_close(l);
}
