/*
 * test_layer_entries.c - the conformance tests of names and values: a
 * value's round trip and replacement, take_file() and fetch(), parents and
 * directories, the set-group-ID directory, whiteouts, removal, renames of
 * files and subtrees, listings and metadata.  Every implementation runs
 * them (test_layer.c).
 */
#include "test_layer.h"

#include <errno.h>

/* ---- the shared suite ---------------------------------------------- */

void t_roundtrip(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a = attr(0100640), out, got;
	unsigned char data[300], buf[400];

	fill(data, sizeof(data), 1);
	a.atime = (struct timespec){-5, 7}; /* before the epoch */
	a.ctime = (struct timespec){1700000000, 999999999};
	strcpy(a.type, "object");
	is_int(layer_commit(l, "kv/bin", &a, data, sizeof(data), &out), 0,
	       nm("commit a binary value"));
	is_int(layer_lookup(l, "kv/bin", &got), 0, nm("lookup finds it"));
	is_int(got.kind, DSFS_FILE, nm("it is a file"));
	is_int(got.size, sizeof(data), nm("size is the value length"));
	is_int(got.mode, 0640, nm("mode kept, permission bits only"));
	ok(got.uid == 1000 && got.gid == 100, "%s", nm("uid and gid kept"));
	ok(same_time(got.atime, a.atime) && same_time(got.mtime, a.mtime) &&
		   same_time(got.ctime, a.ctime),
	   "%s", nm("times kept to the nanosecond, pre-epoch included"));
	is_str(got.type, "object", nm("type kept"));
	is_str(got.token, "", nm("no token"));
	ok(got.version > 0 && got.version == out.version, "%s",
	   nm("commit's out attributes carry the version"));
	ok(out.size == got.size && out.mode == got.mode, "%s",
	   nm("out matches lookup"));
	memset(buf, 0xaa, sizeof(buf));
	is_int(layer_read(l, "kv/bin", 0, buf, sizeof(buf)), sizeof(data),
	       nm("read returns the whole value"));
	ok(memcmp(buf, data, sizeof(data)) == 0, "%s",
	   nm("bytes read back exactly, NULs included"));
	is_int(layer_read(l, "kv/bin", 100, buf, 50), 50,
	       nm("read in the middle"));
	ok(memcmp(buf, data + 100, 50) == 0, "%s", nm("middle bytes exact"));
	is_int(layer_read(l, "kv/bin", 290, buf, 50), 10,
	       nm("read across the end is short"));
	is_int(layer_read(l, "kv/bin", 300, buf, 50), 0, nm("read at end: 0"));
	is_int(layer_read(l, "kv/bin", 5000, buf, 50), 0,
	       nm("read past end: 0"));
	is_int(layer_commit(l, "kv/empty", &a, NULL, 0, NULL), 0,
	       nm("commit an empty value"));
	is_int(layer_lookup(l, "kv/empty", &got), 0, nm("empty value exists"));
	is_int(got.size, 0, nm("empty value has size 0"));
	is_int(layer_read(l, "kv/empty", 0, buf, 10), 0,
	       nm("empty value reads 0 bytes"));
	is_int(kind_of(l, "kv"), DSFS_DIR, nm("tree root kv is a directory"));
	is_int(kind_of(l, "images"), DSFS_DIR,
	       nm("tree root images is a directory"));
	is_int(kind_of(l, "kv/nope"), -ENOENT, nm("missing key: ENOENT"));
	is_int(layer_read(l, "kv/nope", 0, buf, 1), -ENOENT,
	       nm("reading a missing key: ENOENT"));
	is_int(put(l, "kv/é ünï", "\"utf8\""), 0, nm("UTF-8 name"));
	is_str(get(l, "kv/é ünï"), "\"utf8\"", nm("UTF-8 name reads back"));
	layer_close(l);
}

void t_replace(void)
{
	struct dsfs_layer *l = fresh(BIG);
	uint64_t v1, v2, v3;

	put(l, "kv/a", "1");
	v1 = version_of(l, "kv/a");
	is_int(put(l, "kv/a", "22"), 0, nm("replace a value"));
	v2 = version_of(l, "kv/a");
	ok(v2 > v1, "%s", nm("replace bumps the version"));
	is_str(get(l, "kv/a"), "22", nm("new value read back"));
	put(l, "kv/b", "3");
	v3 = version_of(l, "kv/b");
	ok(v3 > v2, "%s", nm("versions increase across the layer"));
	layer_close(l);
}

/* replace() (optional): either the commit of a new value over a file
 * that keeps the file's mode, owner and version line, or -ENOENT and
 * nothing changed; never anything else over a name that is no file. */
void t_replace_op(void)
{
	struct dsfs_layer *l = fresh(2000);
	struct dsfs_attr a = attr(0600), out, now;
	static unsigned char big[2100];
	char before[8];
	uint64_t v, used;
	int rc;

	a.uid = 7;
	a.gid = 8;
	is_int(layer_commit(l, "kv/f", &a, "1", 1, NULL), 0, nm("a file"));
	v = version_of(l, "kv/f");
	a = attr(0644); /* another mode and owner: not for replace() */
	rc = layer_replace(l, "kv/f", &a, "22", 2, &out);
	ok(rc == 0 || rc == -ENOENT, "%s", nm("replace: 0 or ENOENT (%d)", rc));
	if (rc == 0) {
		layer_lookup(l, "kv/f", &now);
		ok(now.mode == 0600 && now.uid == 7 && now.gid == 8 &&
			   out.mode == 0600 && out.uid == 7 && out.gid == 8,
		   "%s",
		   nm("... keeps the file's mode and owner, and says so"));
		ok(now.version > v && out.version == now.version &&
			   now.size == 2,
		   "%s", nm("... with a new version and the new value"));
		is_str(get(l, "kv/f"), "22", nm("... which reads back"));
	} else {
		is_str(get(l, "kv/f"), "1", nm("... which changed nothing"));
	}
	is_int(layer_replace(l, "kv/none", &a, "1", 1, NULL), -ENOENT,
	       nm("replace where nothing is: ENOENT"));
	is_int(kind_of(l, "kv/none"), -ENOENT, nm("... makes nothing"));
	mkd(l, "kv/d");
	is_int(layer_replace(l, "kv/d", &a, "1", 1, NULL), -ENOENT,
	       nm("replace over a directory: ENOENT"));
	is_int(kind_of(l, "kv/d"), DSFS_DIR, nm("... which stays"));
	layer_whiteout(l, "kv/w");
	is_int(layer_replace(l, "kv/w", &a, "1", 1, NULL), -ENOENT,
	       nm("replace over a whiteout: ENOENT"));
	is_int(kind_of(l, "kv/w"), DSFS_WHITEOUT, nm("... which stays"));
	used = used_of(l);
	if (snprintf(before, sizeof(before), "%s", get(l, "kv/f")) >=
	    (int)sizeof(before))
		bail("kv/f holds more than expected");
	is_int(layer_replace(l, "kv/f", &a, big, sizeof(big), NULL), -ENOENT,
	       nm("replace past the budget: ENOENT"));
	ok(used_of(l) == used && strcmp(get(l, "kv/f"), before) == 0, "%s",
	   nm("... changing nothing"));
	layer_close(l);
}

static void count_removes(void *arg, struct dsfs_layer *inner,
			  const struct layer_event *ev)
{
	(void)inner;
	if (ev->op == LAYER_EV_REMOVE && strcmp(ev->key, "kv/d/g") == 0)
		++*(int *)arg;
}

/* take_file() (optional, and what the PostgreSQL layer has): either the
 * remove of a file (an image too, where the layer takes files), with the
 * attributes it had, or -ENOENT and nothing changed; never anything else
 * over a name that is no file.  Through an observed layer it is told as
 * a remove. */
void t_take_file(void)
{
	struct dsfs_layer *l = fresh(BIG), *w;
	struct dsfs_attr a = attr(0600), out;
	struct layer_observer o = {.changed = count_removes};
	unsigned char img[1000];
	uint64_t v, dv, used;
	int rc, removes = 0;

	is_int(layer_take_file(l, "kv/none", &out), -ENOENT,
	       nm("take where nothing is: ENOENT"));
	is_int(layer_take_file(l, "kv", &out), -ENOENT,
	       nm("take a tree root: ENOENT, left to remove()"));
	mkd(l, "kv/d");
	used = used_of(l);
	a.uid = 7;
	a.gid = 8;
	is_int(layer_commit(l, "kv/d/f", &a, "12", 2, NULL), 0, nm("a file"));
	v = version_of(l, "kv/d/f");
	dv = version_of(l, "kv/d");
	rc = layer_take_file(l, "kv/d/f", &out);
	if (l->takes_files)
		is_int(rc, 0, nm("take a file: removed"));
	else
		is_int(rc, -ENOENT, nm("take without the shortcut: ENOENT"));
	if (rc == 0) {
		ok(out.kind == DSFS_FILE && out.mode == 0600 && out.uid == 7 &&
			   out.gid == 8 && out.size == 2 && out.version == v,
		   "%s", nm("... and says what the file was"));
		is_int(kind_of(l, "kv/d/f"), -ENOENT, nm("... which is gone"));
		ok(used_of(l) == used, "%s", nm("... with its bytes"));
		ok(version_of(l, "kv/d") > dv, "%s",
		   nm("... and its directory changed, as by remove()"));
	} else {
		is_str(get(l, "kv/d/f"), "12", nm("... which changed nothing"));
	}
	is_int(layer_take_file(l, "kv/d", &out), -ENOENT,
	       nm("take a directory: ENOENT"));
	is_int(kind_of(l, "kv/d"), DSFS_DIR, nm("... which stays"));
	layer_whiteout(l, "kv/w");
	is_int(layer_take_file(l, "kv/w", &out), -ENOENT,
	       nm("take a whiteout: ENOENT"));
	is_int(kind_of(l, "kv/w"), DSFS_WHITEOUT, nm("... which stays"));
	fill(img, sizeof(img), 5);
	used = used_of(l);
	is_int(put_img(l, "images/i", TOKEN_T, img, sizeof(img)), 0,
	       nm("an image"));
	rc = layer_take_file(l, "images/i", &out);
	ok(rc == 0 || (rc == -ENOENT && !l->takes_files), "%s",
	   nm("take an image: removed where the layer takes files (%d)", rc));
	if (rc == 0)
		ok(out.size == sizeof(img) && strcmp(out.token, TOKEN_T) == 0 &&
			   kind_of(l, "images/i") == -ENOENT &&
			   used_of(l) == used,
		   "%s", nm("... with its token, and its blob's bytes freed"));

	o.arg = &removes;
	if (layer_observe(l, &o, &w) != 0)
		bail("layer_observe");
	put(w, "kv/d/g", "1");
	rc = layer_take_file(w, "kv/d/g", &out);
	is_int(rc, l->takes_files ? 0 : -ENOENT,
	       nm("take through an observed layer: as the layer does"));
	is_int(removes, rc == 0 ? 1 : 0, nm("... told as a remove if made"));
	layer_close(layer_unobserve(w));
}

/* fetch() is lookup(), and the value with it when the layer gives it. */
void t_fetch(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a, b;
	char *data = (char *)"x", *big;
	size_t len = 1;

	put(l, "kv/f", "{\"n\":1}");
	mkd(l, "kv/d");
	layer_whiteout(l, "kv/w");
	is_int(layer_fetch(l, "kv/f", &a, &data, &len), 0, nm("fetch a file"));
	layer_lookup(l, "kv/f", &b);
	ok(a.kind == DSFS_FILE && a.version == b.version && a.size == b.size,
	   "%s", nm("... its attributes, as lookup() gives them"));
	ok(!data || (len == 7 && memcmp(data, "{\"n\":1}", 7) == 0), "%s",
	   nm("... and no value, or the whole value"));
	/* A layer with fetch() gives every value it keeps in its entries. */
	ok(!l->ops->fetch || data, "%s",
	   nm("... the whole value, if the layer fetches"));
	free(data);
	big = malloc(100001);
	if (!big)
		bail("malloc");
	memset(big, 'b', 100000);
	big[100000] = '\0';
	put(l, "kv/big", big);
	is_int(layer_fetch(l, "kv/big", &a, &data, &len), 0,
	       nm("fetch a value of 100,000 bytes"));
	ok(a.size == 100000 &&
		   (!data || (len == 100000 && memcmp(data, big, len) == 0)),
	   "%s", nm("... no value (read() gives it), or the whole value"));
	free(data);
	free(big);
	put(l, "kv/e", "");
	is_int(layer_fetch(l, "kv/e", &a, &data, &len), 0,
	       nm("fetch an empty file"));
	ok(a.size == 0 && (!data || len == 0), "%s", nm("... nothing to read"));
	free(data);
	is_int(put_img(l, "images/i", TOKEN_T, "\x89PNG\r\n\x1a\n", 8), 0,
	       nm("an image"));
	is_int(layer_fetch(l, "images/i", &a, &data, &len), 0,
	       nm("fetch the image"));
	ok(a.size == 8 && (!data || (len == 8 && data[1] == 'P')), "%s",
	   nm("... no value, or the whole image"));
	free(data);
	is_int(layer_fetch(l, "kv/d", &a, &data, &len), 0, nm("fetch a dir"));
	ok(a.kind == DSFS_DIR && !data, "%s", nm("... no value"));
	is_int(layer_fetch(l, "kv/w", &a, &data, &len), 0,
	       nm("fetch a whiteout"));
	ok(a.kind == DSFS_WHITEOUT && !data, "%s", nm("... no value"));
	is_int(layer_fetch(l, "kv/none", &a, &data, &len), -ENOENT,
	       nm("fetch a missing name: ENOENT"));
	ok(!data, "%s", nm("... no value"));
	layer_close(l);
}

void t_parents(void)
{
	struct dsfs_layer *l = fresh(BIG);

	is_int(put(l, "kv/x/y", "1"), -ENOENT, nm("missing parent: ENOENT"));
	is_int(mkd(l, "kv/x/y"), -ENOENT, nm("mkdir, missing parent: ENOENT"));
	put(l, "kv/f", "1");
	is_int(put(l, "kv/f/y", "1"), -ENOTDIR, nm("file parent: ENOTDIR"));
	is_int(mkd(l, "kv/f/d"), -ENOTDIR, nm("mkdir, file parent: ENOTDIR"));
	is_int(layer_whiteout(l, "kv/f/w"), -ENOTDIR,
	       nm("whiteout, file parent: ENOTDIR"));
	is_int(layer_whiteout(l, "kv/x/w"), -ENOENT,
	       nm("whiteout, missing parent: ENOENT"));
	layer_whiteout(l, "kv/wd");
	is_int(put(l, "kv/wd/x", "1"), -ENOENT, nm("whiteout parent: ENOENT"));
	is_int(put(l, "images/i", "1"), 0, nm("the images root exists"));
	is_int(put(l, "other/x", "1"), -ENOENT, nm("no such tree: ENOENT"));
	is_int(layer_rename(l, "kv/f", "kv/nodir/f", 0), -ENOENT,
	       nm("rename, missing target parent: ENOENT"));
	put(l, "kv/g", "1");
	is_int(layer_rename(l, "kv/f", "kv/g/f", 0), -ENOTDIR,
	       nm("rename, file target parent: ENOTDIR"));
	is_int(kind_of(l, "kv/x/y"), -ENOENT, nm("nothing was created"));
	layer_close(l);
}

void t_mkdir(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a = attr(0750), got;
	char buf[4];

	a.kind = DSFS_DIR;
	is_int(layer_mkdir(l, "kv/d", &a), 0, nm("mkdir"));
	is_int(layer_lookup(l, "kv/d", &got), 0, nm("lookup the directory"));
	ok(got.kind == DSFS_DIR && !got.opaque && got.mode == 0750 &&
		   got.size == 0 && got.uid == 1000,
	   "%s", nm("directory attributes"));
	is_int(layer_mkdir(l, "kv/d", &a), -EEXIST, nm("mkdir again: EEXIST"));
	is_int(put(l, "kv/d", "1"), -EISDIR, nm("commit over dir: EISDIR"));
	put(l, "kv/f", "1");
	is_int(mkd(l, "kv/f"), -EEXIST, nm("mkdir over file: EEXIST"));
	is_int(layer_read(l, "kv/d", 0, buf, 4), -EISDIR,
	       nm("read a directory: EISDIR"));
	is_int(mkd(l, "kv"), -EEXIST, nm("mkdir a tree root: EEXIST"));
	is_int(put(l, "kv", "1"), -EISDIR, nm("commit a tree root: EISDIR"));
	is_int(mkd(l, "kv/d/e"), 0, nm("nested mkdir"));
	is_int(put(l, "kv/d/e/v", "1"), 0, nm("commit in nested dir"));
	layer_close(l);
}

/* inherit_group: a set-group-ID directory's group, and to a directory the
 * bit, read in the same change (the fast and the general form alike). */
void t_inherit_group(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a = attr(0644), d = attr(02775), out, got;

	d.kind = DSFS_DIR;
	d.gid = 555;
	is_int(layer_mkdir(l, "kv/g", &d), 0, nm("a set-group-ID directory"));
	d.mode = 0755;
	is_int(layer_mkdir(l, "kv/n", &d), 0, nm("and a plain one"));
	a.inherit_group = true;
	is_int(layer_create(l, "kv/g/f", &a, &out), 0,
	       nm("create in the set-group-ID directory"));
	ok(out.gid == 555 && out.mode == 0644 && !out.inherit_group, "%s",
	   nm("... returns its group, the mode as asked"));
	ok(layer_lookup(l, "kv/g/f", &got) == 0 && got.gid == 555 &&
		   got.mode == 0644 && !got.inherit_group,
	   "%s", nm("... and stores them"));
	is_int(layer_whiteout(l, "kv/g/w"), 0, nm("a whiteout there"));
	is_int(layer_create(l, "kv/g/w", &a, &out), 0,
	       nm("create over the whiteout"));
	ok(out.gid == 555 && layer_lookup(l, "kv/g/w", &got) == 0 &&
		   got.gid == 555,
	   "%s", nm("... takes the group too"));
	a.kind = DSFS_DIR;
	a.mode = 0750;
	is_int(layer_mkdir(l, "kv/g/d", &a), 0, nm("mkdir there"));
	ok(layer_lookup(l, "kv/g/d", &got) == 0 && got.gid == 555 &&
		   got.mode == 02750,
	   "%s", nm("... takes the group and the bit"));
	a.kind = DSFS_FILE;
	a.mode = 0644;
	is_int(layer_create(l, "kv/n/f", &a, &out), 0,
	       nm("create in the plain directory"));
	ok(out.gid == 100 && layer_lookup(l, "kv/n/f", &got) == 0 &&
		   got.gid == 100,
	   "%s", nm("... keeps the creator's group"));
	is_int(layer_create(l, "kv/top", &a, &out), 0,
	       nm("create in a tree root"));
	is_int((int)out.gid, 100, nm("... keeps the creator's group"));
	a.inherit_group = false;
	is_int(layer_create(l, "kv/g/x", &a, &out), 0, nm("create unasked"));
	ok(out.gid == 100 && layer_lookup(l, "kv/g/x", &got) == 0 &&
		   got.gid == 100,
	   "%s", nm("... keeps the creator's group"));
	a.inherit_group = true;
	is_int(layer_commit(l, "kv/g/x", &a, "1", 1, &out), 0,
	       nm("a commit asked, over that file (a new one over a hidden one)"));
	ok(out.gid == 555 && layer_lookup(l, "kv/g/x", &got) == 0 &&
		   got.gid == 555 && got.size == 1,
	   "%s", nm("... takes the group"));
	layer_close(l);
}

void t_whiteouts(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a = attr(0700), got;
	uint64_t v;
	char buf[4];

	is_int(layer_whiteout(l, "kv/w"), 0, nm("whiteout over nothing"));
	is_int(layer_lookup(l, "kv/w", &got), 0, nm("a whiteout is found"));
	is_int(got.kind, DSFS_WHITEOUT, nm("lookup returns DSFS_WHITEOUT"));
	ok(got.version > 0, "%s", nm("a whiteout has a version"));
	is_int(layer_read(l, "kv/w", 0, buf, 4), -ENOENT,
	       nm("reading a whiteout: ENOENT"));
	is_int(layer_setattr(l, "kv/w", &a, DSFS_SET_MODE), -ENOENT,
	       nm("setattr on a whiteout: ENOENT"));
	v = version_of(l, "kv/w");
	is_int(layer_whiteout(l, "kv/w"), 0, nm("whiteout over a whiteout"));
	ok(version_of(l, "kv/w") > v, "%s", nm("... bumps its version"));
	is_int(put(l, "kv/w", "1"), 0, nm("commit over a whiteout"));
	is_int(kind_of(l, "kv/w"), DSFS_FILE, nm("it is a file again"));
	is_int(layer_whiteout(l, "kv/w"), 0, nm("whiteout over a file"));
	is_int(kind_of(l, "kv/w"), DSFS_WHITEOUT, nm("the file is gone"));
	a.kind = DSFS_DIR;
	a.opaque = true;
	is_int(layer_mkdir(l, "kv/w", &a), 0, nm("mkdir over a whiteout"));
	is_int(layer_lookup(l, "kv/w", &got), 0, nm("lookup the new dir"));
	ok(got.kind == DSFS_DIR && got.opaque, "%s",
	   nm("the opaque flag is kept"));
	layer_whiteout(l, "kv/w/x");
	put(l, "kv/w/y", "1");
	is_int(layer_whiteout(l, "kv/w"), -ENOTEMPTY,
	       nm("whiteout over a dir with a real child: ENOTEMPTY"));
	layer_remove(l, "kv/w/y");
	is_int(layer_whiteout(l, "kv/w"), 0,
	       nm("whiteout over a dir of whiteouts"));
	is_int(kind_of(l, "kv/w/x"), -ENOENT, nm("its whiteouts went"));
	is_int(kind_of(l, "kv/w"), DSFS_WHITEOUT, nm("the dir is a whiteout"));
	is_int(layer_whiteout(l, "kv"), -EBUSY, nm("whiteout a root: EBUSY"));
	layer_close(l);
}

void t_remove(void)
{
	struct dsfs_layer *l = fresh(BIG);

	put(l, "kv/f", "1");
	is_int(layer_remove(l, "kv/f"), 0, nm("remove a file"));
	is_int(kind_of(l, "kv/f"), -ENOENT, nm("the file is gone"));
	is_int(layer_remove(l, "kv/f"), -ENOENT, nm("remove again: ENOENT"));
	mkd(l, "kv/d");
	put(l, "kv/d/a", "1");
	is_int(layer_remove(l, "kv/d"), -ENOTEMPTY,
	       nm("remove a dir with a real child: ENOTEMPTY"));
	is_str(get(l, "kv/d/a"), "1", nm("the child is still there"));
	layer_remove(l, "kv/d/a");
	layer_whiteout(l, "kv/d/w1");
	layer_whiteout(l, "kv/d/w2");
	is_int(layer_remove(l, "kv/d"), 0,
	       nm("remove a dir holding only whiteouts"));
	is_int(kind_of(l, "kv/d/w1"), -ENOENT, nm("its whiteouts went"));
	mkd(l, "kv/d");
	is_str(ls(l, "kv/d"), "", nm("a new dir there is empty"));
	layer_whiteout(l, "kv/w");
	is_int(layer_remove(l, "kv/w"), 0, nm("remove a whiteout"));
	is_int(kind_of(l, "kv/w"), -ENOENT, nm("the whiteout is gone"));
	is_int(layer_remove(l, "kv"), -EBUSY, nm("remove a root: EBUSY"));
	layer_close(l);
}

void t_rename_files(void)
{
	struct dsfs_layer *l = fresh(BIG);
	uint64_t va, vb;

	put(l, "kv/a", "A");
	put(l, "kv/b", "B");
	va = version_of(l, "kv/a");
	vb = version_of(l, "kv/b");
	is_int(layer_rename(l, "kv/a", "kv/b", 0), 0,
	       nm("rename a file over a file"));
	is_int(kind_of(l, "kv/a"), -ENOENT, nm("the source is gone"));
	is_str(get(l, "kv/b"), "A", nm("the target has the source's value"));
	ok(version_of(l, "kv/b") > va && version_of(l, "kv/b") > vb, "%s",
	   nm("the moved entry has a new version"));
	is_int(layer_rename(l, "kv/b", "kv/b", 0), 0,
	       nm("rename onto itself: a no-op"));
	is_str(get(l, "kv/b"), "A", nm("... the value stays"));
	mkd(l, "kv/d");
	is_int(layer_rename(l, "kv/b", "kv/d/c", 0), 0,
	       nm("rename into a directory"));
	is_str(get(l, "kv/d/c"), "A", nm("moved value read back"));
	is_str(ls(l, "kv"), "d/d", nm("the old dir lists no source"));

	put(l, "kv/s", "S");
	is_int(layer_rename(l, "kv/s", "kv/t", DSFS_RENAME_WHITEOUT), 0,
	       nm("rename with DSFS_RENAME_WHITEOUT"));
	is_int(kind_of(l, "kv/s"), DSFS_WHITEOUT,
	       nm("a whiteout is left at the source"));
	is_str(get(l, "kv/t"), "S", nm("the target has the value"));

	put(l, "kv/n1", "1");
	put(l, "kv/n2", "2");
	is_int(layer_rename(l, "kv/n1", "kv/n2", DSFS_RENAME_NOREPLACE),
	       -EEXIST, nm("NOREPLACE over a file: EEXIST"));
	ok(strcmp(get(l, "kv/n1"), "1") == 0 &&
		   strcmp(get(l, "kv/n2"), "2") == 0,
	   "%s", nm("... nothing changed"));
	is_int(layer_rename(l, "kv/n1", "kv/s", DSFS_RENAME_NOREPLACE), 0,
	       nm("NOREPLACE over a whiteout is allowed"));
	is_str(get(l, "kv/s"), "1", nm("... and replaces it"));
	is_int(layer_rename(l, "kv/n2", "kv/new", DSFS_RENAME_NOREPLACE), 0,
	       nm("NOREPLACE to a new name"));
	layer_close(l);
}

void t_rename_errors(void)
{
	struct dsfs_layer *l = fresh(BIG);

	mkd(l, "kv/d");
	put(l, "kv/f", "1");
	is_int(layer_rename(l, "kv/f", "kv/d", 0), -EISDIR,
	       nm("file over dir: EISDIR"));
	is_int(layer_rename(l, "kv/d", "kv/f", 0), -ENOTDIR,
	       nm("dir over file: ENOTDIR"));
	mkd(l, "kv/e");
	put(l, "kv/e/x", "1");
	is_int(layer_rename(l, "kv/d", "kv/e", 0), -ENOTEMPTY,
	       nm("dir over a dir with a real child: ENOTEMPTY"));
	layer_remove(l, "kv/e/x");
	layer_whiteout(l, "kv/e/w");
	put(l, "kv/d/in", "IN");
	is_int(layer_rename(l, "kv/d", "kv/e", 0), 0,
	       nm("dir over a dir of whiteouts"));
	is_int(kind_of(l, "kv/e/w"), -ENOENT, nm("the whiteouts went"));
	is_str(get(l, "kv/e/in"), "IN", nm("the moved dir's child is there"));
	is_int(kind_of(l, "kv/d"), -ENOENT, nm("the source is gone"));
	mkd(l, "kv/e/sub");
	is_int(layer_rename(l, "kv/e", "kv/e/sub/x", 0), -EINVAL,
	       nm("dir into its own subtree: EINVAL"));
	is_int(layer_rename(l, "kv/nope", "kv/x", 0), -ENOENT,
	       nm("missing source: ENOENT"));
	layer_whiteout(l, "kv/w");
	is_int(layer_rename(l, "kv/w", "kv/x", 0), -ENOENT,
	       nm("whiteout source: ENOENT"));
	is_int(layer_rename(l, "kv", "kv/x", 0), -EBUSY,
	       nm("rename a root: EBUSY"));
	is_int(layer_rename(l, "kv/f", "images", 0), -EBUSY,
	       nm("rename onto a root: EBUSY"));
	layer_close(l);
}

void t_rename_subtree(void)
{
	struct dsfs_layer *l = fresh(BIG);
	uint64_t before;

	/* "kv/p%_" with siblings that LIKE 'kv/p%_/%' would match, and
	 * siblings sorting just inside and around the range bounds. */
	mkd(l, "kv/p%_");
	mkd(l, "kv/p%_/b");
	mkd(l, "kv/p%_/b/c");
	put(l, "kv/p%_/b/c/leaf", "L");
	layer_whiteout(l, "kv/p%_/b/c/gone");
	put(l, "kv/p%_/b/mid", "M");
	put(l, "kv/p%_/top", "T");
	mkd(l, "kv/pq");
	put(l, "kv/pq/s", "S1");
	mkd(l, "kv/p%_x");
	put(l, "kv/p%_x/s", "S2");
	mkd(l, "kv/p%_-");
	put(l, "kv/p%_-/s", "S3");
	mkd(l, "kv/p%_-/deep");
	put(l, "kv/p%_-/deep/s", "S4");
	mkd(l, "kv/p%_0");
	put(l, "kv/p%_0/s", "S5");
	mkd(l, "kv/p%_/b/c/p%_");
	put(l, "kv/p%_/b/c/p%_/z", "Z");
	before = used_of(l);

	is_int(layer_rename(l, "kv/p%_", "kv/z", 0), 0,
	       nm("rename a 3-level directory"));
	is_str(get(l, "kv/z/b/c/leaf"), "L", nm("level 3 moved"));
	is_str(get(l, "kv/z/b/mid"), "M", nm("level 2 moved"));
	is_str(get(l, "kv/z/top"), "T", nm("level 1 moved"));
	is_str(get(l, "kv/z/b/c/p%_/z"), "Z", nm("level 4, same name, moved"));
	is_int(kind_of(l, "kv/z/b/c/gone"), DSFS_WHITEOUT,
	       nm("a whiteout moved with its dir"));
	ok(kind_of(l, "kv/p%_") == -ENOENT &&
		   kind_of(l, "kv/p%_/b") == -ENOENT &&
		   kind_of(l, "kv/p%_/b/c/leaf") == -ENOENT,
	   "%s", nm("nothing is left under the old name"));
	is_str(get(l, "kv/pq/s"), "S1", nm("LIKE-lookalike sibling untouched"));
	is_str(get(l, "kv/p%_x/s"), "S2", nm("prefix sibling untouched"));
	is_str(get(l, "kv/p%_-/s"), "S3", nm("'-' sibling untouched"));
	is_str(get(l, "kv/p%_-/deep/s"), "S4",
	       nm("'-' sibling's subtree untouched"));
	is_str(get(l, "kv/p%_0/s"), "S5", nm("'0' sibling untouched"));
	is_str(ls(l, "kv/z"), "b/d top/f", nm("list the moved dir"));
	is_str(ls(l, "kv/z/b"), "c/d mid/f", nm("list level 2"));
	is_str(ls(l, "kv/z/b/c"), "gone/w leaf/f p%_/d", nm("list level 3"));
	is_str(ls(l, "kv"), "p%_-/d p%_0/d p%_x/d pq/d z/d",
	       nm("list the parent"));
	is_int(used_of(l), before - 2, nm("usage: only the name changed"));
	is_int(layer_rename(l, "kv/z", "kv/pq/z", 0), 0,
	       nm("move it into a sibling"));
	is_str(get(l, "kv/pq/z/b/c/leaf"), "L", nm("deep value moved again"));
	is_str(ls(l, "kv/pq"), "s/f z/d", nm("sibling lists it"));
	layer_close(l);
}

void t_list(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct names ns = {.stop_after = 1};
	int i;

	put(l, "kv/a", "1");
	mkd(l, "kv/b");
	put(l, "kv/b/x", "1");
	mkd(l, "kv/b/y");
	put(l, "kv/b/y/z", "1");
	layer_whiteout(l, "kv/c");
	is_str(ls(l, "kv"), "a/f b/d c/w",
	       nm("list: children, no grandchildren"));
	is_str(ls(l, "kv/b"), "x/f y/d", nm("list a subdirectory"));
	is_str(ls(l, "images"), "", nm("list an empty root"));
	is_str(ls(l, "kv/nope"), "<errno 2>", nm("list a missing dir: ENOENT"));
	is_str(ls(l, "kv/a"), "<errno 20>", nm("list a file: ENOTDIR"));
	is_str(ls(l, "kv/c"), "<errno 2>", nm("list a whiteout: ENOENT"));
	is_int(layer_list(l, "kv", collect_cb, &ns), 7,
	       nm("a callback's non-zero return is returned"));
	is_int(ns.calls, 1, nm("... and stops the listing"));
	for (i = 0; i < ns.n; i++)
		free(ns.v[i]);
	memset(&ns, 0, sizeof(ns));
	ns.l = l;
	is_int(layer_list(l, "kv", collect_cb, &ns), 0,
	       nm("a callback may call the layer"));
	for (i = 0; i < ns.n; i++)
		free(ns.v[i]);
	layer_close(l);
}

void t_setattr(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr b = attr(0644), n, got;
	uint64_t v, used;

	put(l, "kv/f", "val");
	used = used_of(l);
	memset(&n, 0, sizeof(n));
	n.mode = 0100600;
	n.uid = 7;
	n.gid = 8;
	n.atime = (struct timespec){11, 1};
	n.mtime = (struct timespec){12, 2};
	n.ctime = (struct timespec){13, 3};
	v = version_of(l, "kv/f");
	is_int(layer_setattr(l, "kv/f", &n, DSFS_SET_MODE), 0, nm("chmod"));
	layer_lookup(l, "kv/f", &got);
	ok(got.mode == 0600 && got.uid == b.uid && got.gid == b.gid &&
		   same_time(got.atime, b.atime) &&
		   same_time(got.mtime, b.mtime) &&
		   same_time(got.ctime, b.ctime),
	   "%s", nm("only the mode changed, to permission bits"));
	ok(got.version > v, "%s", nm("setattr bumps the version"));
	layer_setattr(l, "kv/f", &n, DSFS_SET_UID | DSFS_SET_GID);
	layer_lookup(l, "kv/f", &got);
	ok(got.uid == 7 && got.gid == 8 && got.mode == 0600 &&
		   same_time(got.mtime, b.mtime),
	   "%s", nm("uid and gid changed, the rest kept"));
	layer_setattr(l, "kv/f", &n, DSFS_SET_ATIME);
	layer_lookup(l, "kv/f", &got);
	ok(same_time(got.atime, n.atime) && same_time(got.mtime, b.mtime) &&
		   same_time(got.ctime, b.ctime),
	   "%s", nm("atime alone"));
	layer_setattr(l, "kv/f", &n, DSFS_SET_MTIME);
	layer_lookup(l, "kv/f", &got);
	ok(same_time(got.mtime, n.mtime) && same_time(got.ctime, b.ctime), "%s",
	   nm("mtime alone"));
	layer_setattr(l, "kv/f", &n, DSFS_SET_CTIME);
	layer_lookup(l, "kv/f", &got);
	ok(same_time(got.ctime, n.ctime), "%s", nm("ctime alone"));
	is_str(get(l, "kv/f"), "val", nm("the value is untouched"));
	is_str(got.type, "string", nm("the type is untouched"));
	is_int(used_of(l), used, nm("usage is untouched"));
	mkd(l, "kv/d");
	is_int(layer_setattr(l, "kv/d", &n, DSFS_SET_MODE), 0,
	       nm("chmod a directory"));
	layer_lookup(l, "kv/d", &got);
	is_int(got.mode, 0600, nm("directory mode changed"));
	is_int(layer_setattr(l, "kv/nope", &n, DSFS_SET_MODE), -ENOENT,
	       nm("setattr on a missing key: ENOENT"));
	layer_close(l);
}
