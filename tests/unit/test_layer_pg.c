/*
 * test_layer_pg.c - the tests of the PostgreSQL layer alone: several
 * openings of one database (hosts) seeing each other's changes, one budget
 * for all of them, refused and prepared statements, the password kept out
 * of what is shown, and an outage under a pool of open connections.
 */
#include "pg_test.h"
#include "test_layer.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>

/* ---- PostgreSQL: several openings (hosts) of one database ------------ */

static struct dsfs_layer *open_pg_host(const char *what)
{
	struct dsfs_layer *l = NULL;
	char why[256];
	int rc;

	rc = layer_pg_open(pg_test_uri(), "runtime", BIG, LAYER_PG_SET_BUDGET,
			   &l, why, sizeof(why));
	is_int(rc, 0, nm("%s", what));
	if (rc)
		bail(why);
	return l;
}

void t_pg_hosts(void)
{
	static unsigned char img[5000];
	struct dsfs_layer *a, *b, *c;
	uint64_t v;

	fill(img, sizeof(img), 7);
	pg_test_reset();
	a = open_pg_host("host A opens an empty database");
	b = open_pg_host("host B opens it too");
	is_int(put(a, "kv/x", "1"), 0, nm("A commits"));
	is_str(get(b, "kv/x"), "1", nm("... B reads it"));
	v = version_of(a, "kv/x");
	is_int(put(b, "kv/x", "2"), 0, nm("B replaces it"));
	ok(version_of(a, "kv/x") > v, "%s", nm("... A sees a greater version"));
	is_int(used_of(a), used_of(b), nm("one usage for both"));

	is_int(put_img(a, "images/i", TOKEN_T, img, sizeof(img)), 0,
	       nm("A stores an image"));
	is_int(layer_pin_blob(a, TOKEN_T), 0, nm("A pins its blob"));
	is_int(layer_remove(b, "images/i"), 0, nm("B removes the entry"));
	ok(blob_is(a, TOKEN_T, img, sizeof(img)), "%s",
	   nm("... A still reads the blob it pinned"));
	is_int(layer_clear(b), 0, nm("B clears the layer"));
	ok(blob_is(b, TOKEN_T, img, sizeof(img)), "%s",
	   nm("... the blob A pinned survives B's clear"));
	is_int(used_of(b), sizeof(img), nm("... and is still counted"));
	is_int(layer_unpin_blob(b, TOKEN_T), -ENOENT,
	       nm("B cannot drop A's pin"));
	is_int(layer_unpin_blob(a, TOKEN_T), 0, nm("A unpins"));
	is_int(blob_size(b, TOKEN_T), -ENOENT, nm("... the blob is gone"));
	is_int(used_of(a), 0, nm("... and so are its bytes"));

	/* A daemon that died holding a pin: its owner row expires. */
	is_int(put_img(a, "images/j", TOKEN_U, img, 100), 0,
	       nm("A stores another image"));
	is_int(layer_pin_blob(a, TOKEN_U), 0, nm("... pins it"));
	is_int(layer_remove(a, "images/j"), 0, nm("... removes its entry"));
	layer_close(a);
	is_int(blob_size(b, TOKEN_U), 100,
	       nm("closing drops the pin but deletes nothing"));
	pg_test_sql("UPDATE dsfs_owner SET expires = now() - interval '1 s'");
	c = open_pg_host("host C opens");
	is_int(blob_size(c, TOKEN_U), -ENOENT,
	       nm("... and deletes the blob that only a dead pin kept"));
	is_int(used_of(c), 0, nm("... giving its bytes back"));
	layer_close(b);
	layer_close(c);
}

static uint64_t budget_of(struct dsfs_layer *l)
{
	uint64_t used, budget = 0;

	if (layer_usage(l, &used, &budget))
		return 0;
	return budget;
}

static struct dsfs_layer *open_pg_budget(uint64_t budget, unsigned flags,
					 const char *what)
{
	struct dsfs_layer *l = NULL;
	char why[256];

	is_int(layer_pg_open(pg_test_uri(), "runtime", budget, flags, &l, why,
			     sizeof(why)),
	       0, nm("%s", what));
	if (!l)
		bail(why);
	return l;
}

/* One budget for the store, whatever each host was started with. */
void t_pg_budget(void)
{
	struct dsfs_layer *a, *b, *c;
	char big[3000];

	memset(big, '7', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	pg_test_reset();
	a = open_pg_budget(4000, 0, "a new store records the opener's budget");
	is_int(budget_of(a), 4000, nm("... and uses it"));
	b = open_pg_budget(BIG, 0, "a host without runtime_size opens");
	is_int(budget_of(b), 4000, nm("... and keeps the recorded budget"));
	is_int(put(a, "kv/a", big), 0, nm("A fills most of it"));
	is_int(put(b, "kv/b", big), -ENOSPC,
	       nm("... B is refused by the store's budget, not its own"));
	c = open_pg_budget(10000, LAYER_PG_SET_BUDGET,
			   "a host with runtime_size opens");
	/* usage() may answer from what A saw in the last 100 ms (dsfs(8));
	 * a commit checks the budget recorded now. */
	usleep(150 * 1000);
	is_int(budget_of(a), 10000, nm("... every host now uses its budget"));
	is_int(put(b, "kv/b", big), 0, nm("... B's value fits now"));
	is_int(put(a, "kv/c", big), 0, nm("... A's too"));
	is_int(put(c, "kv/d", big), -ENOSPC,
	       nm("... and the next is refused on every host"));
	layer_close(a);
	layer_close(b);
	layer_close(c);
}

/* usage() answers from what this host last saw, for 100 ms and far from
 * the budget only; the commit checks what every host committed. */
void t_pg_usage_seen(void)
{
	struct dsfs_layer *a, *b;
	char big[3001], mid[601], small[101];

	memset(big, '7', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memset(mid, '8', sizeof(mid) - 1);
	mid[sizeof(mid) - 1] = '\0';
	memset(small, '9', sizeof(small) - 1);
	small[sizeof(small) - 1] = '\0';
	pg_test_reset();
	/* Names and values count: "a" + "1" is 2 bytes. */
	a = open_pg_budget(3500, LAYER_PG_SET_BUDGET, "usage: host A opens");
	b = open_pg_budget(BIG, 0, "usage: host B opens");
	is_int(put(a, "kv/a", "1"), 0, nm("A commits a little"));
	is_int(used_of(a), 2, nm("... and knows the usage"));
	is_int(put(b, "kv/b", big), 0, nm("B fills most of the budget"));
	is_int(put(a, "kv/c", mid), -ENOSPC,
	       nm("... A's commit is refused by what B committed, whatever A "
		  "saw last"));
	usleep(150 * 1000);
	is_int(used_of(a), 3003, nm("... and 100 ms on, A's usage has it"));
	is_int(put(b, "kv/d", small), 0,
	       nm("B goes within an eighth of the budget"));
	usleep(150 * 1000);
	is_int(used_of(a), 3104, nm("... A sees it"));
	is_int(put(b, "kv/e", "1"), 0, nm("B commits once more"));
	is_int(used_of(a), 3106,
	       nm("... near the budget, A's usage asks the server at once"));
	layer_close(a);
	layer_close(b);
}

/* A write transaction sends statements without waiting for their
 * results: one the server refuses still fails the change as a whole, and
 * the connection serves the next one. */
void t_pg_refused_statement(void)
{
	static unsigned char img[300];
	struct dsfs_layer *l;
	uint64_t used;
	int i;

	pg_test_reset();
	l = open_pg_host("refusals: open");
	/* plpgsql does not stop at the first true term of an OR: one
	 * function per table. */
	pg_test_sql("CREATE OR REPLACE FUNCTION dsfs_test_no_entry()"
		    " RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
		    " IF NEW.name = 'no'::bytea"
		    " THEN RAISE EXCEPTION 'refused by the test'; END IF;"
		    " RETURN NEW; END $$");
	pg_test_sql("CREATE OR REPLACE FUNCTION dsfs_test_no_blob()"
		    " RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
		    " IF NEW.len = 77"
		    " THEN RAISE EXCEPTION 'refused by the test'; END IF;"
		    " RETURN NEW; END $$");
	pg_test_sql("CREATE TRIGGER t BEFORE INSERT OR UPDATE ON dsfs_entry"
		    " FOR EACH ROW EXECUTE FUNCTION dsfs_test_no_entry()");
	pg_test_sql("CREATE TRIGGER t BEFORE INSERT ON dsfs_blob"
		    " FOR EACH ROW EXECUTE FUNCTION dsfs_test_no_blob()");
	fill(img, sizeof(img), 3);
	is_int(mkd(l, "kv/d"), 0, nm("a directory"));
	is_int(put_img(l, "images/i", TOKEN_T, img, sizeof(img)), 0,
	       nm("an image"));
	used = used_of(l);
	for (i = 0; i < 6; i++)
		is_int(put(l, "kv/d/no", "1"), -EIO,
		       nm("a row the server refuses: EIO (%d)", i));
	is_int(kind_of(l, "kv/d/no"), -ENOENT, nm("... nothing is stored"));
	is_int(used_of(l), used, nm("... nor counted"));
	is_int(put(l, "kv/d/yes", "1"), 0, nm("... the next commit works"));
	is_int(put_img(l, "images/i", TOKEN_U, img, 77), -EIO,
	       nm("a blob the server refuses, replacing an image: EIO"));
	ok(blob_is(l, TOKEN_T, img, sizeof(img)), "%s",
	   nm("... the old image's blob is still there"));
	is_int(blob_size(l, TOKEN_U), -ENOENT, nm("... the new one is not"));
	is_int(layer_rename(l, "kv/d/yes", "kv/d/no", 0), -EIO,
	       nm("a rename onto a refused name: EIO"));
	is_str(get(l, "kv/d/yes"), "1", nm("... the source stays"));
	is_int(layer_remove(l, "kv/d/yes"), 0, nm("... and can be removed"));
	is_int(mkd(l, "kv/d"), -EEXIST, nm("an existing name: EEXIST"));
	is_int(put(l, "kv/nodir/x", "1"), -ENOENT,
	       nm("a missing parent: ENOENT"));
	is_int(put(l, "images/i/x", "1"), -ENOTDIR,
	       nm("a file as the parent: ENOTDIR"));
	layer_close(l);
}

/* create() and remove() have a one-round-trip form for their common case
 * (a new name in a directory; a plain file); every other case goes the
 * general way, with its errno, and both count and version the same. */
void t_pg_fast_forms(void)
{
	static unsigned char img[400], full[1990];
	struct dsfs_attr a = attr(0644), out;
	char *data = NULL;
	size_t len = 0;
	struct dsfs_layer *l, *b;
	uint64_t v, used;

	fill(img, sizeof(img), 5);
	pg_test_reset();
	l = open_pg_budget(2000, LAYER_PG_SET_BUDGET, "fast: open");
	is_int(mkd(l, "kv/d"), 0, nm("fast: a directory"));
	v = version_of(l, "kv/d");
	is_int(layer_create(l, "kv/d/n", &a, &out), 0, nm("create a new name"));
	ok(out.version > v && version_of(l, "kv/d") == out.version + 1, "%s",
	   nm("... its version, then its directory's, from the counter"));
	is_int(used_of(l), 1 + 1, nm("... counted: the names d and n"));
	is_int(layer_create(l, "kv/d/n", &a, NULL), -EEXIST,
	       nm("create over a file: EEXIST"));
	is_int(layer_whiteout(l, "kv/d/w"), 0, nm("a whiteout"));
	is_int(layer_create(l, "kv/d/w", &a, NULL), 0,
	       nm("create over a whiteout"));
	is_int(kind_of(l, "kv/d/w"), DSFS_FILE, nm("... is a file"));
	is_int(layer_create(l, "kv/none/x", &a, NULL), -ENOENT,
	       nm("create without its parent: ENOENT"));
	is_int(layer_create(l, "kv/d/n/x", &a, NULL), -ENOTDIR,
	       nm("create under a file: ENOTDIR"));
	is_int(layer_create(l, "kv/top", &a, NULL), 0,
	       nm("create in a tree root"));
	used = used_of(l);
	is_int(put_img(l, "images/i", TOKEN_T, img, sizeof(img)), 0,
	       nm("an image"));
	is_int(layer_remove(l, "images/i"), 0, nm("remove an image"));
	is_int(blob_size(l, TOKEN_T), -ENOENT, nm("... its blob goes"));
	is_int(used_of(l), used, nm("... and its bytes"));
	is_int(layer_remove(l, "kv/d"), -ENOTEMPTY,
	       nm("remove a directory that is not empty: ENOTEMPTY"));
	is_int(layer_remove(l, "kv/none"), -ENOENT,
	       nm("remove a missing name: ENOENT"));
	is_int(layer_whiteout(l, "kv/wo"), 0, nm("another whiteout"));
	is_int(layer_remove(l, "kv/wo"), 0, nm("remove a whiteout"));
	is_int(kind_of(l, "kv/wo"), -ENOENT, nm("... it is gone"));
	is_int(put(l, "kv/d/n", "12345"), 0, nm("a value"));
	is_int(layer_fetch(l, "kv/d/n", &out, &data, &len), 0, nm("fetch it"));
	ok(data && len == 5 && memcmp(data, "12345", 5) == 0 && out.size == 5,
	   "%s", nm("... with its value, from the same row"));
	free(data);
	v = version_of(l, "kv/d");
	is_int(layer_remove(l, "kv/d/n"), 0, nm("remove a plain file"));
	ok(version_of(l, "kv/d") > v, "%s",
	   nm("... stamps its directory with a new version"));
	is_int(layer_remove(l, "kv/d/w"), 0, nm("... and another"));
	is_int(layer_remove(l, "kv/d"), 0, nm("... then the empty directory"));
	is_int(layer_remove(l, "kv/top"), 0, nm("remove in a tree root"));
	b = open_pg_budget(BIG, 0, "fast: another host opens");
	is_int(used_of(b), 0, nm("... and finds everything given back"));
	is_int(put_len(l, "kv/full", full, sizeof(full)), 0,
	       nm("near the budget"));
	is_int(layer_create(l, "kv/f2345678901", &a, NULL), -ENOSPC,
	       nm("a create over the budget: ENOSPC"));
	is_int(kind_of(b, "kv/f2345678901"), -ENOENT, nm("... makes nothing"));
	usleep(150 * 1000); /* b's usage() may answer from what it saw */
	is_int(used_of(b), 1994, nm("... and counts nothing"));
	layer_close(b);
	layer_close(l);
}

/* The kernel's LOOKUP, missing the name, then its CREATE. */
static int looked_create(struct dsfs_layer *l, const char *key,
			 const struct dsfs_attr *a, struct dsfs_attr *out)
{
	struct dsfs_attr got;

	if (layer_lookup(l, key, &got) != -ENOENT)
		return -EEXIST;
	return layer_create(l, key, a, out);
}

/* A create that replaces (open(O_TRUNC) without O_EXCL) waits in its
 * host for its value, which makes it on the server (layer_pg_defer.c):
 * create() answers 1. */
void t_pg_defer(void)
{
	static const char too_big[200] = "1";
	struct dsfs_attr a = attr(0600), va = attr(0644), sg = attr(02775), out;
	struct dsfs_attr got;
	struct dsfs_layer *l, *b;
	char *data = NULL;
	size_t len = 1;

	pg_test_reset();
	a.replaces = true;
	l = open_pg_budget(100, LAYER_PG_SET_BUDGET, "defer: a budget of 100");
	is_int(looked_create(l, "kv/big", &a, NULL), 1, nm("... a create"));
	is_int(layer_replace(l, "kv/big", &va, too_big, sizeof(too_big), NULL),
	       -ENOSPC, nm("... a value over the budget: ENOSPC"));
	is_int(layer_settle(l, "kv/big"), 1,
	       nm("... the close's settle makes the empty file"));
	is_int(kind_of(l, "kv/big"), DSFS_FILE, nm("... which is there"));
	is_int(used_of(l), 3, nm("... counting its name only"));
	is_int(layer_remove(l, "kv/big"), 0, nm("... removed"));
	layer_close(l);
	l = open_pg_host("defer: host A opens");
	b = open_pg_host("defer: host B opens");
	is_int(mkd(l, "kv/d"), 0, nm("defer: a directory"));
	a.replaces = true;
	is_int(looked_create(l, "kv/d/n", &a, &out), 1,
	       nm("a lookup, then a create that replaces"));
	ok(layer_lookup(l, "kv/d/n", &got) == 0 && got.kind == DSFS_FILE &&
		   got.size == 0 && got.mode == 0600 &&
		   got.version == out.version,
	   "%s", nm("... A looks up the empty file it answered"));
	is_str(get(l, "kv/d/n"), "", nm("... and reads it, empty"));
	ok(layer_fetch(l, "kv/d/n", &got, &data, &len) == 0 && !data &&
		   got.kind == DSFS_FILE,
	   "%s", nm("... and fetches it, with no value to give"));
	is_int(kind_of(b, "kv/d/n"), -ENOENT, nm("... B does not see it yet"));
	is_int(layer_replace(l, "kv/d/n", &va, "42", 2, &got), 0,
	       nm("the commit of its value (a close)"));
	ok(got.version > out.version && got.mode == 0600 && got.size == 2, "%s",
	   nm("... stores it with the create's mode, a greater version"));
	is_str(get(b, "kv/d/n"), "42", nm("... B reads the file and value"));
	is_int(used_of(l), 1 + 1 + 2, nm("... counted once: d, n and 42"));

	is_int(looked_create(l, "kv/d/m", &a, &out), 1,
	       nm("A creates m, and waits"));
	is_int(put(b, "kv/d/m", "1"), 0, nm("... B makes m meanwhile"));
	is_str(get(l, "kv/d/m"), "", nm("... A still reads its own empty m"));
	is_int(layer_commit(l, "kv/d/m", &va, "2", 1, NULL), 0,
	       nm("... A's close replaces B's file"));
	is_str(get(b, "kv/d/m"), "2", nm("... B reads A's value"));

	is_int(looked_create(l, "kv/d/t", &a, NULL), 1, nm("a create (touch)"));
	is_int(layer_settle(l, "kv/d/t"), 1,
	       nm("... settled (its close): made now"));
	is_int(layer_settle(l, "kv/d/t"), 0,
	       nm("... settled again: nothing to make"));
	is_int(kind_of(b, "kv/d/t"), DSFS_FILE, nm("... B sees it, empty"));
	is_int(looked_create(l, "kv/d/u", &a, NULL), 1, nm("another"));
	is_str(ls(l, "kv/d"), "m/f n/f t/f u/f", nm("... A lists it"));
	is_int(kind_of(b, "kv/d/u"), DSFS_FILE,
	       nm("... made by that listing: B sees it"));
	is_int(looked_create(l, "kv/d/r", &a, NULL), 1, nm("another"));
	is_int(layer_rename(l, "kv/d/r", "kv/d/r2", 0), 0, nm("... renamed"));
	ok(kind_of(b, "kv/d/r") == -ENOENT &&
		   kind_of(b, "kv/d/r2") == DSFS_FILE,
	   "%s", nm("... B sees the rename"));
	is_int(mkd(l, "kv/e"), 0, nm("a directory"));
	is_int(looked_create(l, "kv/e/x", &a, NULL), 1,
	       nm("... a create in it"));
	is_int(layer_remove(l, "kv/e"), -ENOTEMPTY,
	       nm("... the directory is not empty"));
	is_int(looked_create(l, "kv/d/z", &a, NULL), 1, nm("a create"));
	is_int(layer_take_file(l, "kv/d/z", &got), 0, nm("... unlinked"));
	is_int(kind_of(b, "kv/d/z"), -ENOENT, nm("... gone for B too"));

	is_int(layer_create(l, "kv/d/y", &a, NULL), 0,
	       nm("a create not looked up first (0: made)"));
	is_int(kind_of(b, "kv/d/y"), DSFS_FILE, nm("... is made at once"));
	is_int(looked_create(l, "kv/none/x", &a, NULL), -ENOENT,
	       nm("a create in a directory this layer lacks: ENOENT at once"));
	is_int(mkd(l, "kv/f"), 0, nm("a directory"));
	is_int(kind_of(l, "kv/f/x"), -ENOENT, nm("... a name missed in it"));
	is_int(layer_remove(b, "kv/f"), 0, nm("... B removes the directory"));
	is_int(layer_create(l, "kv/f/x", &a, NULL), 1,
	       nm("... A's create waits"));
	is_int(layer_commit(l, "kv/f/x", &va, "1", 1, NULL), -ENOENT,
	       nm("... its commit finds the errno"));
	is_int(layer_settle(l, "kv/f/x"), -ENOENT,
	       nm("... and so does a settle"));
	is_int(kind_of(l, "kv/f/x"), -ENOENT,
	       nm("... after which the refused name is gone"));
	is_int(layer_settle(l, "kv/f/x"), 0,
	       nm("... and nothing is left to settle"));

	sg.kind = DSFS_DIR;
	sg.gid = 555;
	is_int(layer_mkdir(l, "kv/g", &sg), 0, nm("a set-group-ID directory"));
	a.inherit_group = true;
	ok(looked_create(l, "kv/g/f", &a, &out) == 1 && out.gid == 555 &&
		   !out.inherit_group,
	   "%s", nm("... a create there waits, with its group"));
	ok(layer_lookup(l, "kv/g/f", &got) == 0 && got.gid == 555, "%s",
	   nm("... which A's lookups show before the close"));
	is_int(kind_of(b, "kv/g/f"), -ENOENT, nm("... B does not see it yet"));
	ok(layer_replace(l, "kv/g/f", &va, "1", 1, NULL) == 0 &&
		   layer_lookup(b, "kv/g/f", &got) == 0 && got.gid == 555,
	   "%s", nm("... and the server gives it the same group"));
	ok(looked_create(l, "kv/d/p", &a, &out) == 1 && out.gid == 100, "%s",
	   nm("... a create in a plain directory keeps its own group"));
	a.inherit_group = false;

	is_int(looked_create(l, "kv/d/c", &a, NULL), 1, nm("a last create"));
	layer_close(l);
	is_int(kind_of(b, "kv/d/c"), DSFS_FILE, nm("... made by A's close"));
	l = open_pg_host("defer: host A again");
	a.replaces = false;
	is_int(looked_create(l, "kv/x", &a, NULL), 0,
	       nm("a create that does not replace (O_EXCL)"));
	is_int(kind_of(b, "kv/x"), DSFS_FILE, nm("... B sees it at once"));
	layer_close(l);
	layer_close(b);
}

void t_pg_refusals(void)
{
	struct dsfs_layer *l = NULL;
	struct timespec t0, t1;
	char why[256] = "";

	pg_test_reset();
	is_int(layer_mem_open(BIG, &l), 0, nm("a layer in memory"));
	is_int(layer_pg_busy_poll(l, 100), -EINVAL,
	       nm("... has no connection to poll: EINVAL"));
	layer_close(l);
	l = open_pg_host("a new database gets the schema");
	layer_close(l);
	pg_test_sql("UPDATE dsfs_meta SET v = 2 WHERE k = 'schema_version'");
	is_int(layer_pg_open(pg_test_uri(), "runtime", BIG, LAYER_PG_SET_BUDGET,
			     &l, why, sizeof(why)),
	       -EINVAL, nm("a newer schema is refused"));
	ok(strstr(why, "version 2, newer than this dsfs knows (1)") != NULL,
	   "%s", nm("... saying so: %s", why));
	pg_test_sql("DELETE FROM dsfs_meta");
	is_int(layer_pg_open(pg_test_uri(), "runtime", BIG, LAYER_PG_SET_BUDGET,
			     &l, why, sizeof(why)),
	       -EINVAL, nm("dsfs tables without a version are refused"));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	is_int(layer_pg_open("host=/nonexistent dbname=x password=Pw123",
			     "runtime", BIG, LAYER_PG_SET_BUDGET, &l, why,
			     sizeof(why)),
	       -EIO, nm("no server: EIO"));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(t1.tv_sec - t0.tv_sec < 5, "%s", nm("... at once"));
	ok(strstr(why, "Pw123") == NULL, "%s",
	   nm("... the reason holds no password: %s", why));
	is_int(layer_pg_open("not a conninfo", "runtime", BIG,
			     LAYER_PG_SET_BUDGET, &l, why, sizeof(why)),
	       -EINVAL, nm("a string libpq cannot read: EINVAL"));
}

/* The command line the daemon leaves for ps. */
void t_pg_hide(void)
{
	char uri[] = "-oruntime=postgresql://u:pw2@h:5/d?sslmode=require,x=1";
	char query[] = "runtime=postgresql:///d?host=/x&password=pw1&user=u";
	char words[] = "runtime=host=/x password='a b\\'c' user=u,ro";
	char plain[] = "runtime=postgresql://u@h/d";
	char *shown;

	layer_pg_hide_password(uri);
	is_str(uri, "-oruntime=postgresql://u:***@h:5/d?sslmode=require,x=1",
	       nm("a URI's password is blanked"));
	layer_pg_hide_password(query);
	is_str(query, "runtime=postgresql:///d?host=/x&password=***&user=u",
	       nm("... and one in its query"));
	layer_pg_hide_password(words);
	is_str(words, "runtime=host=/x password='******' user=u,ro",
	       nm("... and a quoted key=value one"));
	layer_pg_hide_password(plain);
	is_str(plain, "runtime=postgresql://u@h/d",
	       nm("... and nothing else is touched"));
	shown = layer_pg_shown("postgresql://u:pw2@h/d", uri, sizeof(uri));
	ok(shown && !strstr(shown, "pw2") && strstr(shown, "user='u'"), "%s",
	   nm("the shown conninfo has no password: %s", shown ? shown : ""));
	free(shown);
}

/* ---- PostgreSQL: what lookup() remembers (layer_pg_remember()) ------- */

static int64_t mtime_of(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a;

	return layer_lookup(l, key, &a) ? -1 : layer_time_ns(a.mtime);
}

/* Host A remembers, host B does not and tells A nothing, as a host whose
 * news have not arrived yet: what A answers from memory shows. */
void t_pg_remember(void)
{
	struct dsfs_attr a = attr(0644), out;
	struct dsfs_layer *l, *b;

	pg_test_reset();
	l = open_pg_host("remember: host A opens");
	b = open_pg_host("remember: host B opens");
	is_int(layer_pg_remember(l, 60000), 0, nm("A remembers for a minute"));
	is_int(mkd(l, "kv/d"), 0, nm("A makes a directory"));
	is_int(put(l, "kv/d/old", "1"), 0, nm("... and a file in it"));
	is_int(kind_of(l, "kv/d/x1"), -ENOENT, nm("A misses a name"));
	is_int(kind_of(l, "kv/d/x2"), -ENOENT,
	       nm("... and another: now it knows every name there"));
	is_int(put(b, "kv/d/x3", "3"), 0, nm("B makes a file there"));
	is_int(kind_of(l, "kv/d/x3"), -ENOENT,
	       nm("... which A, not told, answers from memory: not there"));
	ok(version_of(l, "kv/d") < version_of(b, "kv/d"), "%s",
	   nm("... with the directory's version it remembers"));
	is_int(kind_of(l, "kv/d/old"), DSFS_FILE,
	       nm("a name A knows is there is asked of the server"));
	layer_forget(l, "kv/d/x3");
	is_int(kind_of(l, "kv/d/x3"), DSFS_FILE, nm("told, A sees B's file"));
	is_int(version_of(l, "kv/d"), version_of(b, "kv/d"),
	       nm("... and the directory's version"));
	is_int(kind_of(l, "kv/d/x4"), -ENOENT,
	       nm("... and still knows the names that are not there"));

	a.replaces = true;
	is_int(looked_create(l, "kv/d/y", &a, &out), 1,
	       nm("A's create after a miss from memory waits for its value"));
	is_int(layer_commit(l, "kv/d/y", &a, "2", 1, NULL), 0,
	       nm("... which makes it"));
	is_int(version_of(l, "kv/d"), version_of(b, "kv/d"),
	       nm("... A's directory has the version the server gave it"));
	is_int(mtime_of(l, "kv/d"), mtime_of(b, "kv/d"),
	       nm("... and its times"));
	is_str(get(b, "kv/d/y"), "2", nm("... B reads the file"));
	is_int(kind_of(l, "kv/d/y"), DSFS_FILE, nm("... and A looks it up"));

	is_int(layer_rename(l, "kv/d/y", "kv/d/z", 0), 0, nm("A renames it"));
	is_int(kind_of(l, "kv/d/z"), DSFS_FILE,
	       nm("... and finds the new name"));
	is_int(kind_of(l, "kv/d/y"), -ENOENT, nm("... not the old one"));
	is_int(layer_remove(l, "kv/d/z"), 0, nm("A removes it"));
	is_int(kind_of(l, "kv/d/z"), -ENOENT, nm("... and misses it"));
	is_int(version_of(l, "kv/d"), version_of(b, "kv/d"),
	       nm("... the directory's version is the server's after each"));

	is_int(layer_remove(b, "kv/d/x3"), 0, nm("B removes its file"));
	is_int(layer_remove(b, "kv/d/old"), 0, nm("... and A's"));
	is_int(layer_remove(b, "kv/d"), 0, nm("... and the directory"));
	is_int(kind_of(l, "kv/d"), DSFS_DIR,
	       nm("A, not told, remembers the directory"));
	layer_forget(l, "kv/d");
	is_int(kind_of(l, "kv/d"), -ENOENT, nm("told, A misses it"));

	is_int(mkd(b, "kv/e"), 0, nm("B makes another directory"));
	is_int(kind_of(l, "kv/e"), DSFS_DIR, nm("... A looks it up"));
	is_int(put(b, "kv/e/f", "1"), 0, nm("B makes a file in it"));
	layer_forget(l, NULL);
	ok(version_of(l, "kv/e") == version_of(b, "kv/e"), "%s",
	   nm("told that anything changed, A forgets everything"));
	is_int(layer_pg_remember(l, 50), 0, nm("A remembers for 50 ms"));
	is_int(kind_of(l, "kv/e/g1"), -ENOENT, nm("... misses"));
	is_int(kind_of(l, "kv/e/g2"), -ENOENT, nm("... twice"));
	is_int(put(b, "kv/e/g3", "1"), 0, nm("... B makes a file"));
	usleep(100 * 1000);
	is_int(kind_of(l, "kv/e/g3"), DSFS_FILE,
	       nm("... A sees it once the 50 ms are over, untold"));
	layer_close(l);
	layer_close(b);
	is_int(layer_mem_open(BIG, &l), 0, nm("a memory layer"));
	is_int(layer_pg_remember(l, 1), -EINVAL, nm("... cannot: EINVAL"));
	layer_close(l);
}

/* Every change of this process keeps what it remembers true: host A
 * remembers and makes random changes in a few directories, and after
 * each one answers every lookup as host B, which asks the server. */
void t_pg_remember_changes(void)
{
	static const char *const dirs[] = {"kv/p", "kv/p/q", "kv/r"};
	struct dsfs_attr a = attr(0644), got;
	struct dsfs_layer *l, *b;
	unsigned seed = 12345, wrong = 0, step, i, j;
	char key[64], to[64], first[160] = "";

	pg_test_reset();
	l = open_pg_host("remember changes: host A opens");
	b = open_pg_host("remember changes: host B opens");
	layer_pg_remember(l, 60000);
	for (step = 0; step < 400; step++) {
		unsigned op = (seed = seed * 1103515245u + 12345u) >> 16;

		snprintf(key, sizeof(key), "%s/f%u", dirs[op % 3], op / 3 % 4);
		snprintf(to, sizeof(to), "%s/f%u", dirs[op / 12 % 3],
			 op / 36 % 4);
		a.replaces = true;
		switch (op / 144 % 8) {
		case 0:
			mkd(l, dirs[op % 3]);
			break;
		case 1:
			put(l, key, "1");
			break;
		case 2: /* a create and its close, as the daemon makes them */
			if (layer_lookup(l, key, &got) == -ENOENT &&
			    layer_create(l, key, &a, &got) >= 0)
				layer_commit(l, key, &a, "2", 1, NULL);
			break;
		case 3:
			layer_remove(l, key);
			break;
		case 4:
			layer_rename(l, key, to, 0);
			break;
		case 5:
			layer_remove(l, dirs[op % 3]);
			break;
		case 6:
			layer_whiteout(l, key);
			break;
		default:
			kind_of(l, to); /* a miss, to read the names */
			break;
		}
		for (i = 0; i < 3; i++) {
			for (j = 0; j <= 4; j++) {
				if (j == 4)
					snprintf(key, sizeof(key), "%s",
						 dirs[i]);
				else
					snprintf(key, sizeof(key), "%s/f%u",
						 dirs[i], j);
				if (kind_of(l, key) == kind_of(b, key) &&
				    version_of(l, key) == version_of(b, key))
					continue;
				if (!wrong++)
					snprintf(
						first, sizeof(first),
						"step %u (op %u): %s: A %d v%llu"
						", B %d v%llu",
						step, op / 144 % 8, key,
						kind_of(l, key),
						(unsigned long long)version_of(
							l, key),
						kind_of(b, key),
						(unsigned long long)version_of(
							b, key));
			}
		}
	}
	if (wrong)
		diag("%s", first);
	is_int(wrong, 0,
	       nm("400 random changes by A: A answers every lookup as B"));
	layer_close(l);
	layer_close(b);
}

static void *reader(void *p)
{
	struct dsfs_layer *l = p;
	struct dsfs_attr a;
	int i;

	for (i = 0; i < 200; i++)
		layer_lookup(l, "kv/a", &a);
	return NULL;
}

/* Have several threads at once use l, so that its pool holds several
 * connections. */
static void warm_pool(struct dsfs_layer *l)
{
	pthread_t th[6];
	int i;

	for (i = 0; i < 6; i++)
		if (pthread_create(&th[i], NULL, reader, l) != 0)
			bail("pthread_create");
	for (i = 0; i < 6; i++)
		pthread_join(th[i], NULL);
}

/* The server stops and starts again under an open layer. */
void t_pg_outage(void)
{
	static unsigned char img[300];
	struct dsfs_layer *l;
	struct timespec t0, t1;
	int rc;

	pg_test_reset();
	l = open_pg_host("open before the outage");
	/* The rest of the suite waits both ways (test_layer.c, impls[]);
	 * this outage finds a thread polling. */
	is_int(layer_pg_busy_poll(l, 2000), 0, nm("busy polling on"));
	is_int(put(l, "kv/a", "1"), 0, nm("commit"));
	fill(img, sizeof(img), 9);
	is_int(put_img(l, "images/t", TOKEN_T, img, sizeof(img)), 0,
	       nm("an image"));
	is_int(put_img(l, "images/u", TOKEN_U, img, 10), 0, nm("another"));
	is_int(layer_pin_blob(l, TOKEN_T) | layer_pin_blob(l, TOKEN_U), 0,
	       nm("both blobs pinned"));
	is_int(layer_remove(l, "images/t") | layer_remove(l, "images/u"), 0,
	       nm("... their entries removed"));
	if (pg_test_stop() != 0) {
		layer_close(l);
		ok(getenv("DSFS_TEST_PG_URI") != NULL, "%s",
		   nm("outage: only a server of the test's own is stopped"));
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	is_int(put(l, "kv/b", "2"), -EIO, nm("server down: commit is EIO"));
	is_str(get(l, "kv/a"), "<errno 5>", nm("... and so is a read"));
	is_int(layer_unpin_blob(l, TOKEN_T), -EIO, nm("... and an unpin"));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ok(t1.tv_sec - t0.tv_sec < 20, "%s", nm("... within 20 s"));
	rc = pg_test_start();
	is_int(rc, 0, nm("the server starts again"));
	if (rc)
		bail("cannot restart the server");
	is_int(put(l, "kv/b", "2"), 0, nm("... the same layer commits again"));
	is_str(get(l, "kv/a"), "1", nm("... and nothing acknowledged is lost"));
	is_int(blob_size(l, TOKEN_T), (int)sizeof(img),
	       nm("the blob of the failed unpin is still kept"));
	is_int(layer_unpin_blob(l, TOKEN_U), 0, nm("an unpin that works"));
	is_int(blob_size(l, TOKEN_T), -ENOENT,
	       nm("... drops the failed one's pin too: its blob is gone"));
	warm_pool(l);
	ok(pg_test_stop() == 0 && pg_test_start() == 0, "%s",
	   nm("a restart while every pooled connection is open"));
	is_int(put(l, "kv/c", "3"), 0,
	       nm("... the first commit after it succeeds"));
	is_str(get(l, "kv/b"), "2", nm("... and so does the first read"));
	layer_close(l);
}
