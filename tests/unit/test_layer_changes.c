/*
 * test_layer_changes.c - the conformance tests of what a change touches
 * besides its entry, and of what sees changes: directory times kept by
 * every change, snapshots, change sets applied whole, and a listing while
 * its directory changes.  Every implementation runs them (test_layer.c).
 */
#include "test_layer.h"

#include <errno.h>

/* ---- directory times, create, change sets -------------------------- */

/* The directory's times, as a layer reports them. */
static struct dsfs_attr dir_attr(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a;

	if (layer_lookup(l, key, &a))
		memset(&a, 0, sizeof(a));
	return a;
}

/* Was dir stamped by a change just made: mtime and ctime equal, not
 * before `since`, and a version above `before`? */
static bool stamped(struct dsfs_layer *l, const char *dir,
		    struct timespec since, uint64_t before)
{
	struct dsfs_attr a = dir_attr(l, dir);

	return same_time(a.mtime, a.ctime) &&
	       (a.mtime.tv_sec > since.tv_sec ||
		(a.mtime.tv_sec == since.tv_sec &&
		 a.mtime.tv_nsec >= since.tv_nsec)) &&
	       a.version > before;
}

/* Put dir's times back to attr()'s, far in the past. */
static void unstamp(struct dsfs_layer *l, const char *dir)
{
	struct dsfs_attr a = attr(0755);

	layer_setattr(l, dir, &a, DSFS_SET_MTIME | DSFS_SET_CTIME);
}

void t_dirtimes(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr a = attr(0644), out, old;
	struct timespec t0;
	uint64_t v;

	clock_gettime(CLOCK_REALTIME, &t0);
	mkd(l, "kv/d");
	mkd(l, "kv/e");
	unstamp(l, "kv/d");
	is_int(layer_create(l, "kv/d/c", &a, &out), 0, nm("create"));
	ok(out.kind == DSFS_FILE && out.size == 0 && out.version > 0, "%s",
	   nm("... returns an empty file"));
	is_str(get(l, "kv/d/c"), "", nm("... which reads empty"));
	ok(stamped(l, "kv/d", t0, out.version), "%s",
	   nm("... and stamps its directory in the same change"));
	is_int(layer_create(l, "kv/d", &a, NULL), -EISDIR,
	       nm("create over a directory is EISDIR"));
	is_int(put(l, "kv/d/c", "1"), 0, nm("a value in the created file"));
	v = version_of(l, "kv/d/c");
	is_int(layer_create(l, "kv/d/c", &a, NULL), -EEXIST,
	       nm("create over a file is EEXIST"));
	ok(strcmp(get(l, "kv/d/c"), "1") == 0 && version_of(l, "kv/d/c") == v,
	   "%s", nm("... which keeps its value and version"));
	is_int(layer_whiteout(l, "kv/e/w"), 0, nm("a whiteout"));
	is_int(layer_create(l, "kv/e/w", &a, NULL), 0,
	       nm("create over a whiteout makes the file"));
	is_int(kind_of(l, "kv/e/w"), DSFS_FILE, nm("... a file"));
	is_int(layer_create(l, "kv/nope/c", &a, NULL), -ENOENT,
	       nm("create without its parent is ENOENT"));
	is_int(layer_create(l, "kv", &a, NULL), -EISDIR,
	       nm("create of a tree root is EISDIR"));

	unstamp(l, "kv/d");
	old = dir_attr(l, "kv/d");
	is_int(put(l, "kv/d/c", "1"), 0, nm("commit over a file"));
	ok(same_time(dir_attr(l, "kv/d").mtime, old.mtime) &&
		   version_of(l, "kv/d") == old.version,
	   "%s", nm("... leaves its directory alone"));
	is_int(put(l, "kv/d/n", "2"), 0, nm("commit of a new name"));
	ok(stamped(l, "kv/d", t0, version_of(l, "kv/d/n")), "%s",
	   nm("... stamps its directory"));

	unstamp(l, "kv/d");
	v = version_of(l, "kv/d");
	is_int(layer_remove(l, "kv/d/n"), 0, nm("remove"));
	ok(stamped(l, "kv/d", t0, v), "%s", nm("... stamps its directory"));
	unstamp(l, "kv/d");
	v = version_of(l, "kv/d");
	is_int(layer_whiteout(l, "kv/d/w"), 0, nm("whiteout"));
	ok(stamped(l, "kv/d", t0, v), "%s", nm("... stamps its directory"));
	unstamp(l, "kv/d");
	v = version_of(l, "kv/d");
	is_int(mkd(l, "kv/d/sub"), 0, nm("mkdir"));
	ok(stamped(l, "kv/d", t0, v), "%s", nm("... stamps its directory"));

	unstamp(l, "kv/d");
	unstamp(l, "kv/e");
	v = version_of(l, "kv/e");
	is_int(layer_rename(l, "kv/d/c", "kv/e/c", 0), 0,
	       nm("rename between directories"));
	ok(stamped(l, "kv/d", t0, v) && stamped(l, "kv/e", t0, v), "%s",
	   nm("... stamps both"));
	unstamp(l, "kv/e");
	v = version_of(l, "kv/e");
	is_int(layer_rename(l, "kv/e/c", "kv/e/c2", 0), 0,
	       nm("rename inside one directory"));
	ok(stamped(l, "kv/e", t0, v), "%s", nm("... stamps it"));

	unstamp(l, "kv/e");
	old = dir_attr(l, "kv/e");
	is_int(layer_setattr(l, "kv/e/c2", &a, DSFS_SET_MODE), 0,
	       nm("setattr of a child"));
	ok(same_time(dir_attr(l, "kv/e").mtime, old.mtime), "%s",
	   nm("... leaves its directory alone"));
	is_int(layer_rename(l, "kv/d/nope", "kv/e/x", 0), -ENOENT,
	       nm("a failed rename"));
	ok(same_time(dir_attr(l, "kv/e").mtime, old.mtime) &&
		   version_of(l, "kv/e") == old.version,
	   "%s", nm("... changes no directory"));
	ok(kind_of(l, "kv") == DSFS_DIR, "%s", nm("the roots are not stored"));
	layer_close(l);
}

/* A snapshot keeps the state of its moment, whatever the layer does next,
 * and refuses changes; a layer without one says so. */
void t_snapshot(void)
{
	struct dsfs_layer *l = fresh(BIG), *s = NULL;
	unsigned char px[300];
	uint64_t used;

	fill(px, sizeof(px), 3);
	is_int(put(l, "kv/x", "1"), 0, nm("a value"));
	is_int(put_img(l, "images/i", TOKEN_T, px, sizeof(px)), 0,
	       nm("an image"));
	if (strncmp(tl.impl_name, "sqlite", 6) == 0) {
		/* A daemon copies its file instead (check_live.c). */
		is_int(layer_snapshot(l, &s), -EOPNOTSUPP,
		       nm("no snapshot of a SQLite layer: EOPNOTSUPP"));
		layer_close(l);
		return;
	}
	used = used_of(l);
	is_int(layer_snapshot(l, &s), 0, nm("a snapshot"));
	if (!s)
		bail("no snapshot");
	is_int(put(l, "kv/x", "22"), 0, nm("the value changes"));
	is_int(put(l, "kv/y", "3"), 0, nm("a name is made"));
	is_int(layer_remove(l, "images/i"), 0, nm("the image goes"));
	is_str(get(s, "kv/x"), "1", nm("... the snapshot reads the old value"));
	is_int(kind_of(s, "kv/y"), -ENOENT, nm("... not the new name"));
	ok(blob_is(s, TOKEN_T, px, sizeof(px)), "%s",
	   nm("... and the image's bytes"));
	is_int((int)used_of(s), (int)used, nm("... with the usage of then"));
	is_int(put(s, "kv/z", "4"), -EROFS, nm("... and refuses changes"));
	is_str(get(l, "kv/x"), "22", nm("the layer has moved on"));
	layer_close(s);
	is_str(get(l, "kv/x"), "22", nm("... and is whole after the close"));
	layer_close(l);
}

/* Change sets: all of them or none, each with its op's rules, and the
 * directories' times as stated (every implementation here has apply). */
void t_apply(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct dsfs_attr d = attr(0755), f = attr(0644), img = attr(0644);
	struct layer_change ok3[4], bad[2], gone[2];
	unsigned char px[100];
	uint64_t used;

	d.kind = DSFS_DIR;
	fill(px, sizeof(px), 7);
	strcpy(img.type, "image/png");
	strcpy(img.token, TOKEN_T);
	memset(ok3, 0, sizeof(ok3));
	ok3[0] = (struct layer_change){LAYER_CH_MKDIR, "kv/a", d, NULL, 0};
	ok3[1] = (struct layer_change){LAYER_CH_COMMIT, "kv/a/x", f, "11", 2};
	ok3[2] = (struct layer_change){LAYER_CH_WHITEOUT, "kv/w", f, NULL, 0};
	ok3[3] = (struct layer_change){LAYER_CH_COMMIT, "images/i", img, px,
				       sizeof(px)};
	is_int(layer_apply(l, ok3, 4), 0, nm("apply of four changes"));
	is_str(get(l, "kv/a/x"), "11", nm("... the file is there"));
	ok(kind_of(l, "kv/w") == DSFS_WHITEOUT, "%s",
	   nm("... and the whiteout"));
	ok(version_of(l, "kv/a/x") > version_of(l, "kv/a"), "%s",
	   nm("... with versions in order"));
	ok(same_time(dir_attr(l, "kv/a").mtime, d.mtime), "%s",
	   nm("... and the directory's times as stated"));
	used = used_of(l);
	is_int((int)used, (int)(1 + 1 + 2 + 1 + 1 + sizeof(px)),
	       nm("... usage counts every change"));

	/* The second change fails: the first is undone. */
	bad[0] = (struct layer_change){LAYER_CH_COMMIT, "kv/b", f, "2", 1};
	bad[1] = (struct layer_change){LAYER_CH_MKDIR, "kv/a", d, NULL, 0};
	is_int(layer_apply(l, bad, 2), -EEXIST,
	       nm("apply stops at the first failure"));
	is_int(kind_of(l, "kv/b"), -ENOENT, nm("... and makes none of them"));
	is_int((int)used_of(l), (int)used, nm("... usage as it was"));
	is_str(get(l, "kv/a/x"), "11", nm("... what was there stays"));

	/* A pinned blob outlives its entry in a change set as alone. */
	is_int(layer_pin_blob(l, TOKEN_T), 0, nm("pin an image's blob"));
	gone[0] =
		(struct layer_change){LAYER_CH_REMOVE, "images/i", f, NULL, 0};
	gone[1] = (struct layer_change){LAYER_CH_REMOVE, "kv/a", f, NULL, 0};
	is_int(layer_apply(l, gone, 2), -ENOTEMPTY,
	       nm("a failed removal of a full directory"));
	is_int(kind_of(l, "images/i"), DSFS_FILE,
	       nm("... leaves the image in place"));
	gone[1] = (struct layer_change){LAYER_CH_REMOVE, "kv/a/x", f, NULL, 0};
	is_int(layer_apply(l, gone, 2), 0, nm("removals"));
	is_int(kind_of(l, "images/i"), -ENOENT, nm("... the image went"));
	ok(blob_size(l, TOKEN_T) == sizeof(px), "%s",
	   nm("... its pinned blob stays readable"));
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("... until the unpin"));
	ok(!blob_is(l, TOKEN_T, px, sizeof(px)), "%s",
	   nm("... which deletes it"));
	is_int((int)used_of(l), 1 + 1, nm("... usage: kv/a and kv/w"));
	layer_close(l);

	l = fresh(8);
	ok3[1] = (struct layer_change){LAYER_CH_COMMIT, "kv/a/x", f,
				       "0123456789", 10};
	is_int(layer_apply(l, ok3, 2), -ENOSPC,
	       nm("apply over the budget is ENOSPC"));
	is_int(kind_of(l, "kv/a"), -ENOENT, nm("... and makes nothing"));
	layer_close(l);
}

/* A listing while its directory changes: every CHURN_EVERY callbacks one
 * makes a name that sorts before every name that stays and one after, and
 * removes the two it made the time before last.  A layer may list in
 * batches (layer.h), the changes falling between them: CHURN_KEEP names
 * span several batches of every layer (256 for SQLite, 4096 for
 * PostgreSQL).  Then names are removed until the directory holds exactly
 * CHURN_WHOLE, a whole number of batches of both, and listed again. */
#define CHURN_KEEP 4400
#define CHURN_WHOLE 4096
#define CHURN_EVERY 16
struct churn {
	struct dsfs_layer *l;
	int calls, twice, foreign, failed;
	unsigned char seen[CHURN_KEEP];
};

static int churn_cb(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct churn *c = ctx;
	char key[64];
	int i, j;

	(void)a;
	c->calls++;
	if (name[0] == 'k' && (i = atoi(name + 1)) >= 0 && i < CHURN_KEEP) {
		if (c->seen[i]++)
			c->twice++;
	} else if (name[0] != 'a' && name[0] != 'z') {
		c->foreign++;
	}
	if (c->calls % CHURN_EVERY)
		return 0;
	j = c->calls / CHURN_EVERY;
	snprintf(key, sizeof(key), "kv/c/a%05d", j);
	c->failed += put(c->l, key, "1") != 0;
	snprintf(key, sizeof(key), "kv/c/z%05d", j);
	c->failed += put(c->l, key, "1") != 0;
	if (j > 2) {
		snprintf(key, sizeof(key), "kv/c/a%05d", j - 2);
		c->failed += layer_remove(c->l, key) != 0;
		snprintf(key, sizeof(key), "kv/c/z%05d", j - 2);
		c->failed += layer_remove(c->l, key) != 0;
	}
	return 0;
}

static int count_cb(void *ctx, const char *name, const struct dsfs_attr *a)
{
	(void)name;
	(void)a;
	++*(int *)ctx;
	return 0;
}

void t_list_churn(void)
{
	struct dsfs_layer *l = fresh(BIG);
	struct churn *c = calloc(1, sizeof(*c));
	char key[64];
	int i, bad = 0, missing = 0, n = 0;

	if (!c)
		bail("calloc");
	c->l = l;
	mkd(l, "kv/c");
	for (i = 0; i < CHURN_KEEP; i++) {
		snprintf(key, sizeof(key), "kv/c/k%04d", i);
		bad += put(l, key, "1") != 0;
	}
	is_int(bad, 0, nm("churn: %d names made", CHURN_KEEP));
	is_int(layer_list(l, "kv/c", churn_cb, c), 0,
	       nm("churn: list while names come and go"));
	is_int(c->failed, 0, nm("churn: the callback's changes succeed"));
	for (i = 0; i < CHURN_KEEP; i++)
		missing += !c->seen[i];
	is_int(missing, 0, nm("churn: every name there throughout is listed"));
	is_int(c->twice, 0, nm("churn: ... once"));
	is_int(c->foreign, 0, nm("churn: nothing that never was is listed"));
	/* Four churned names are left: a and z, the last two times. */
	for (i = CHURN_WHOLE - 4; i < CHURN_KEEP; i++) {
		snprintf(key, sizeof(key), "kv/c/k%04d", i);
		bad += layer_remove(l, key) != 0;
	}
	is_int(bad, 0, nm("churn: names removed down to %d", CHURN_WHOLE));
	is_int(layer_list(l, "kv/c", count_cb, &n), 0,
	       nm("churn: list again, still"));
	is_int(n, CHURN_WHOLE,
	       nm("churn: %d names, whole batches, listed", CHURN_WHOLE));
	free(c);
	layer_close(l);
}
