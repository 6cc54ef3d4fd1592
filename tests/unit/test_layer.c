/*
 * test_layer.c - conformance tests for the layer implementations.
 *
 * One suite of tests, written against layer.h only, runs against every
 * implementation: the ephemeral layer (layer_mem.c), the runtime layer
 * (layer_sqlite.c, on stores in a private mkdtemp() directory) and the
 * runtime layer on PostgreSQL (layer_pg.c, on a server of the test's own
 * or $DSFS_TEST_PG_URI: pg_test.h).  Tests
 * that only make sense for a store file follow: persistence, factory
 * images, refusal of foreign and damaged files (which must be left byte
 * for byte as they were), the created file's mode, and kill safety.
 *
 * Output is TAP (tests/unit/tap.h); every check names the implementation.
 */
#include "faultvfs.h"
#include "layer.h"
#include "pg_test.h"
#include "tap.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BIG (64u << 20)
#define TOKEN_T \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TOKEN_U \
	"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

struct impl {
	const char *name;
	int (*open)(uint64_t budget, struct dsfs_layer **l);
};

static char tmpdir[256]; /* short, so that every path made fits */
static const char *impl_name = "";
static int store_seq;

/* A check's name, prefixed with the implementation under test.  The
 * buffer is reused by the next call, after is_int() has printed it. */
static const char *__attribute__((format(printf, 1, 2)))
nm(const char *fmt, ...)
{
	static char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "%s: ", impl_name);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	return buf;
}

static void bail(const char *what)
{
	printf("Bail out! %s\n", what);
	exit(1);
}

static int open_mem(uint64_t budget, struct dsfs_layer **l)
{
	return layer_mem_open(budget, l);
}

static void store_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", tmpdir, name);
}

static int open_sqlite(uint64_t budget, struct dsfs_layer **l)
{
	char path[PATH_MAX], name[32];
	const char *why = NULL;
	int rc;

	snprintf(name, sizeof(name), "store-%d.db", ++store_seq);
	store_path(path, sizeof(path), name);
	rc = layer_sqlite_open(path, "runtime", budget, true, l, &why);
	if (rc)
		diag("layer_sqlite_open %s: %d (%s)", path, rc, why);
	return rc;
}

/* The same with every image in a file beside the store (a threshold of
 * one byte): the whole suite runs on layer_sqlite_blobfile.c too. */
static int open_sqlite_files(uint64_t budget, struct dsfs_layer **l)
{
	int rc = open_sqlite(budget, l);

	if (rc == 0)
		rc = layer_sqlite_blob_files(*l, 1);
	if (rc)
		diag("layer_sqlite_blob_files: %d", rc);
	return rc;
}

/* A fresh layer on PostgreSQL: the database emptied, the schema made
 * again by the open. */
static int open_pg(uint64_t budget, struct dsfs_layer **l)
{
	char why[256];
	int rc;

	pg_test_reset();
	rc = layer_pg_open(pg_test_uri(), "runtime", budget,
			   LAYER_PG_SET_BUDGET, l, why, sizeof(why));
	if (rc)
		diag("layer_pg_open: %d (%s)", rc, why);
	return rc;
}

static const struct impl impls[] = {
	{"mem", open_mem},
	{"sqlite", open_sqlite},
	{"sqlite+files", open_sqlite_files},
	{"postgresql", open_pg},
};
static const struct impl *cur;

static struct dsfs_layer *fresh(uint64_t budget)
{
	struct dsfs_layer *l = NULL;

	if (cur->open(budget, &l) != 0 || !l)
		bail("cannot open a layer");
	return l;
}

/* ---- helpers ------------------------------------------------------- */

static struct dsfs_attr attr(uint32_t mode)
{
	struct dsfs_attr a;

	memset(&a, 0, sizeof(a));
	a.kind = DSFS_FILE;
	a.mode = mode;
	a.uid = 1000;
	a.gid = 100;
	a.atime = (struct timespec){1600000000, 1};
	a.mtime = (struct timespec){1600000001, 2};
	a.ctime = (struct timespec){1600000002, 3};
	strcpy(a.type, "string");
	return a;
}

static int put_len(struct dsfs_layer *l, const char *key, const void *data,
		   size_t len)
{
	struct dsfs_attr a = attr(0644);

	return layer_commit(l, key, &a, data, len, NULL);
}

static int put(struct dsfs_layer *l, const char *key, const char *s)
{
	return put_len(l, key, s, strlen(s));
}

static int put_img(struct dsfs_layer *l, const char *key, const char *token,
		   const void *data, size_t len)
{
	struct dsfs_attr a = attr(0644);

	strcpy(a.type, "image/png");
	strcpy(a.token, token);
	return layer_commit(l, key, &a, data, len, NULL);
}

static int mkd(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a = attr(0755);

	a.kind = DSFS_DIR;
	return layer_mkdir(l, key, &a);
}

/* The whole value of key as a string (static buffer), or "<errno N>". */
static const char *get(struct dsfs_layer *l, const char *key)
{
	static char buf[65536];
	ssize_t n;

	n = layer_read(l, key, 0, buf, sizeof(buf) - 1);
	if (n < 0)
		snprintf(buf, sizeof(buf), "<errno %zd>", -n);
	else
		buf[n] = '\0';
	return buf;
}

static int kind_of(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a;
	int rc = layer_lookup(l, key, &a);

	return rc ? rc : (int)a.kind;
}

static uint64_t version_of(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a;

	return layer_lookup(l, key, &a) ? 0 : a.version;
}

static uint64_t used_of(struct dsfs_layer *l)
{
	uint64_t used = UINT64_MAX, budget;

	if (layer_usage(l, &used, &budget))
		return UINT64_MAX;
	return used;
}

struct names {
	char *v[64];
	int n;
	int calls;
	int stop_after;	      /* return 7 after this many calls, if > 0 */
	struct dsfs_layer *l; /* call back into the layer, if set */
};

static int collect_cb(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct names *ns = ctx;
	static const char kinds[] = "?fdw";
	struct dsfs_attr tmp;
	char buf[300];

	ns->calls++;
	/* A callback may use the layer: it must not be called locked. */
	if (ns->l)
		layer_lookup(ns->l, "kv", &tmp);
	snprintf(buf, sizeof(buf), "%s/%c", name, kinds[a->kind & 3]);
	if (ns->n < 64)
		ns->v[ns->n++] = strdup(buf);
	if (ns->stop_after && ns->calls >= ns->stop_after)
		return 7;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The children of dir as "name/kind ..." sorted, or "<errno N>", as
 * list() (kinds false) or list_kinds() reports them. */
static void ls_with(struct dsfs_layer *l, const char *dir, bool kinds,
		    char *buf, size_t size)
{
	struct names ns = {.n = 0};
	int i, rc;

	if (kinds)
		rc = layer_list_kinds(l, dir, collect_cb, &ns);
	else
		rc = layer_list(l, dir, collect_cb, &ns);
	buf[0] = '\0';
	qsort(ns.v, (size_t)ns.n, sizeof(ns.v[0]), cmp_str);
	for (i = 0; i < ns.n; i++) {
		if (i)
			strncat(buf, " ", size - strlen(buf) - 1);
		strncat(buf, ns.v[i], size - strlen(buf) - 2);
		free(ns.v[i]);
	}
	if (rc)
		snprintf(buf, size, "<errno %d>", -rc);
}

/* list()'s answer, which every listing test compares, and which
 * list_kinds() must give too, or the answer says how it differed. */
static const char *ls(struct dsfs_layer *l, const char *dir)
{
	static char buf[4096], kinds[4096];

	ls_with(l, dir, false, buf, sizeof(buf));
	ls_with(l, dir, true, kinds, sizeof(kinds));
	if (strcmp(buf, kinds) != 0) {
		diag("list() gave %s, list_kinds() %s", buf, kinds);
		return "<list_kinds() differs from list()>";
	}
	return buf;
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		p[i] = (unsigned char)(seed >> 16);
	}
	/* NUL bytes at the edges and in the middle must survive. */
	if (n) {
		p[0] = 0;
		p[n / 2] = 0;
		p[n - 1] = 0;
	}
}

static bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* ---- the shared suite ---------------------------------------------- */

static void t_roundtrip(void)
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

static void t_replace(void)
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
static void t_replace_op(void)
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
static void t_take_file(void)
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
static void t_fetch(void)
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

static void t_parents(void)
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

static void t_mkdir(void)
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
static void t_inherit_group(void)
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

static void t_whiteouts(void)
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

static void t_remove(void)
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

static void t_rename_files(void)
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

static void t_rename_errors(void)
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

static void t_rename_subtree(void)
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

static void t_list(void)
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

static void t_setattr(void)
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

static void t_budget(void)
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

static void t_usage(void)
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

static void t_images(void)
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
static void t_hash_token(void)
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
	nftw(tmpdir, count_new, 16, FTW_PHYS);
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

static void t_clear(void)
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

/* The whole blob reads back as data[0..len). */
static bool blob_is(struct dsfs_layer *l, const char *token,
		    const unsigned char *data, size_t len)
{
	static unsigned char buf[65536];
	ssize_t n = layer_read_blob(l, token, 0, buf, sizeof(buf));

	return n >= 0 && (size_t)n == len && memcmp(buf, data, len) == 0;
}

static uint64_t blob_size(struct dsfs_layer *l, const char *token)
{
	uint64_t size = UINT64_MAX;
	int rc = layer_stat_blob(l, token, &size);

	return rc ? (uint64_t)(int64_t)rc : size;
}

static void t_pins(void)
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

static void t_readonly(void)
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

static void t_many(void)
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

static void t_threads(void)
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

static void t_sync(void)
{
	struct dsfs_layer *l = fresh(BIG);

	put(l, "kv/a", "1");
	is_int(layer_sync(l), 0, nm("sync"));
	is_str(get(l, "kv/a"), "1", nm("... the value is still there"));
	layer_close(l);
}

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

static void t_dirtimes(void)
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
static void t_snapshot(void)
{
	struct dsfs_layer *l = fresh(BIG), *s = NULL;
	unsigned char px[300];
	uint64_t used;

	fill(px, sizeof(px), 3);
	is_int(put(l, "kv/x", "1"), 0, nm("a value"));
	is_int(put_img(l, "images/i", TOKEN_T, px, sizeof(px)), 0,
	       nm("an image"));
	if (strncmp(impl_name, "sqlite", 6) == 0) {
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
static void t_apply(void)
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

/* ---- store files --------------------------------------------------- */

struct blob_file {
	unsigned char *data;
	size_t len;
};

static struct blob_file slurp(const char *path)
{
	struct blob_file b = {NULL, 0};
	struct stat st;
	int fd = open(path, O_RDONLY);

	if (fd < 0)
		return b;
	if (fstat(fd, &st) == 0) {
		b.data = malloc((size_t)st.st_size + 1);
		if (b.data &&
		    read(fd, b.data, (size_t)st.st_size) == st.st_size)
			b.len = (size_t)st.st_size;
	}
	close(fd);
	return b;
}

static bool unchanged(const char *path, const struct blob_file *before)
{
	struct blob_file now = slurp(path);
	bool same = now.data && now.len == before->len &&
		    memcmp(now.data, before->data, now.len) == 0;

	free(now.data);
	return same;
}

static bool exists(const char *path, const char *suffix)
{
	char name[PATH_MAX + 16];

	snprintf(name, sizeof(name), "%s%s", path, suffix);
	return access(name, F_OK) == 0;
}

static int write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (write(fd, data, len) != (ssize_t)len)
		rc = -EIO;
	close(fd);
	return rc;
}

/* A SQLite file made with plain SQL, for the refusal tests. */
static void make_sqlite(const char *path, const char *sql)
{
	sqlite3 *db;

	unlink(path);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		bail(sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* A small store with a bit of everything, closed. */
static void build_store(const char *path)
{
	struct dsfs_layer *l;
	unsigned char img[20000];
	const char *why;

	unlink(path);
	if (layer_sqlite_open(path, "factory", BIG, true, &l, &why))
		bail(why);
	fill(img, sizeof(img), 9);
	put(l, "kv/greeting", "\"hello\"");
	mkd(l, "kv/app");
	put(l, "kv/app/name", "\"demo\"");
	mkd(l, "kv/__hub1");
	put(l, "kv/__hub1/cfg", "{}");
	put_img(l, "images/logo", TOKEN_T, img, sizeof(img));
	layer_close(l);
}

static void refuse(const char *what, const char *path, int want,
		   const char *why_has)
{
	struct blob_file before = slurp(path);
	struct dsfs_layer *l = NULL;
	const char *why = NULL;
	int rc;

	rc = layer_sqlite_open(path, "runtime", BIG, true, &l, &why);
	is_int(rc, want, nm("%s: refused by open", what));
	ok(why && strstr(why, why_has), "%s",
	   nm("%s: reason \"%s\" says \"%s\"", what, why ? why : "(null)",
	      why_has));
	rc = layer_sqlite_open_image(path, "factory", BIG, &l, &why);
	is_int(rc, want, nm("%s: refused by open_image", what));
	ok(unchanged(path, &before), "%s", nm("%s: file untouched", what));
	ok(!exists(path, "-wal") && !exists(path, "-shm") &&
		   !exists(path, "-journal"),
	   "%s", nm("%s: no side files made", what));
	free(before.data);
}

static void t_refusals(void)
{
	char path[PATH_MAX];
	unsigned char junk[8192];
	struct blob_file whole;
	struct dsfs_layer *l;
	const char *why;

	store_path(path, sizeof(path), "junk.db");
	fill(junk, sizeof(junk), 11);
	write_file(path, junk, sizeof(junk));
	refuse("random bytes", path, -EINVAL, "not a SQLite database");

	store_path(path, sizeof(path), "empty.db");
	write_file(path, "", 0);
	refuse("empty file", path, -EINVAL, "not a SQLite database");

	store_path(path, sizeof(path), "foreign.db");
	make_sqlite(path, "CREATE TABLE t(x); INSERT INTO t VALUES (1);");
	refuse("foreign SQLite", path, -EINVAL, "not a dsfs store");

	store_path(path, sizeof(path), "foreign-wal.db");
	make_sqlite(path, "PRAGMA journal_mode = WAL; CREATE TABLE t(x);");
	refuse("foreign SQLite in WAL mode", path, -EINVAL, "not a dsfs store");

	store_path(path, sizeof(path), "future.db");
	make_sqlite(path, "PRAGMA application_id = 1685284467;"
			  "PRAGMA user_version = 7; CREATE TABLE t(x);");
	refuse("future version", path, -EINVAL, "unsupported store version 7");

	store_path(path, sizeof(path), "notables.db");
	make_sqlite(path, "PRAGMA application_id = 1685284467;"
			  "PRAGMA user_version = 1; CREATE TABLE t(x);");
	refuse("store without tables", path, -EINVAL, "damaged store");

	store_path(path, sizeof(path), "truncated.db");
	build_store(path);
	whole = slurp(path);
	ok(whole.len > 8192, "%s", nm("a multi-page store was built"));
	write_file(path, whole.data, whole.len / 2);
	refuse("truncated store", path, -EINVAL, "truncated");

	store_path(path, sizeof(path), "scribbled.db");
	memset(whole.data + 100, 0x5a, 3000); /* page 1 after the header */
	write_file(path, whole.data, whole.len);
	refuse("damaged schema page", path, -EINVAL, "damaged store");
	free(whole.data);

	is_int(layer_sqlite_open(tmpdir, "runtime", BIG, true, &l, &why),
	       -EINVAL, nm("a directory is refused"));
	store_path(path, sizeof(path), "missing.db");
	is_int(layer_sqlite_open(path, "runtime", BIG, false, &l, &why),
	       -ENOENT, nm("missing store without create: ENOENT"));
	ok(!exists(path, ""), "%s", nm("... and not created"));
	is_int(layer_sqlite_open_image(path, "factory", BIG, &l, &why), -ENOENT,
	       nm("missing image: ENOENT"));
}

static void t_persist(void)
{
	char path[PATH_MAX];
	struct dsfs_layer *l;
	unsigned char img[5000], buf[5100];
	const char *why = NULL;
	uint64_t used, v;
	int rc;

	store_path(path, sizeof(path), "persist.db");
	fill(img, sizeof(img), 12);
	rc = layer_sqlite_open(path, "runtime", BIG, true, &l, &why);
	is_int(rc, 0, nm("create a store"));
	if (rc)
		return;
	is_str(l->name, "runtime", nm("the layer has its name"));
	ok(!l->readonly, "%s", nm("a store opens read-write"));
	put(l, "kv/a", "A");
	mkd(l, "kv/d");
	put(l, "kv/d/x", "X");
	layer_whiteout(l, "kv/w");
	put_img(l, "images/i", TOKEN_T, img, sizeof(img));
	used = used_of(l);
	v = version_of(l, "images/i");
	layer_close(l);
	ok(!exists(path, "-wal") && !exists(path, "-shm"), "%s",
	   nm("close leaves one file"));

	rc = layer_sqlite_open(path, "runtime", BIG, false, &l, &why);
	is_int(rc, 0, nm("reopen the store"));
	if (rc)
		return;
	is_str(get(l, "kv/a"), "A", nm("a value persisted"));
	is_str(get(l, "kv/d/x"), "X", nm("a nested value persisted"));
	is_int(kind_of(l, "kv/w"), DSFS_WHITEOUT, nm("a whiteout persisted"));
	ok(layer_read(l, "images/i", 0, buf, sizeof(buf)) == 5000 &&
		   memcmp(buf, img, 5000) == 0,
	   "%s", nm("an image persisted"));
	is_int(used_of(l), used, nm("usage persisted"));
	put(l, "kv/b", "B");
	ok(version_of(l, "kv/b") > v, "%s",
	   nm("versions continue after reopen"));
	is_int(layer_sync(l), 0, nm("sync"));
	used = used_of(l);
	layer_close(l);

	/* Reopen with less budget than is used: only shrinking works. */
	rc = layer_sqlite_open(path, "runtime", used / 2, false, &l, &why);
	is_int(rc, 0, nm("reopen with a smaller budget"));
	if (rc)
		return;
	is_int(put(l, "kv/c", "1"), -ENOSPC, nm("over budget: growth refused"));
	is_int(layer_remove(l, "kv/b"), 0, nm("over budget: removal works"));
	is_int(put(l, "kv/a", ""), 0, nm("over budget: shrinking works"));
	layer_close(l);
}

static void t_image(void)
{
	char path[PATH_MAX];
	struct dsfs_layer *l;
	struct blob_file before;
	struct dsfs_attr a = attr(0644);
	unsigned char img[20000], buf[20100];
	const char *why = NULL;
	uint64_t used, budget;
	int rc;

	store_path(path, sizeof(path), "factory ?#%.db");
	build_store(path);
	ok(!exists(path, "-wal") && !exists(path, "-shm") &&
		   !exists(path, "-journal"),
	   "%s", nm("a built image is one file"));
	before = slurp(path);
	fill(img, sizeof(img), 9);
	rc = layer_sqlite_open_image(path, "factory", 1000, &l, &why);
	is_int(rc, 0, nm("open the image (a path with ' ?#%%')"));
	if (rc) {
		diag("why: %s", why);
		free(before.data);
		return;
	}
	ok(l->readonly, "%s", nm("an image is read-only"));
	is_str(l->name, "factory", nm("the image has its name"));
	is_str(get(l, "kv/greeting"), "\"hello\"", nm("image: read a value"));
	is_str(get(l, "kv/__hub1/cfg"), "{}", nm("image: read a device value"));
	is_str(ls(l, "kv"), "__hub1/d app/d greeting/f", nm("image: list"));
	ok(layer_read(l, "images/logo", 0, buf, sizeof(buf)) == 20000 &&
		   memcmp(buf, img, 20000) == 0,
	   "%s", nm("image: read an image"));
	ok(layer_read_blob(l, TOKEN_T, 19990, buf, 100) == 10 &&
		   memcmp(buf, img + 19990, 10) == 0,
	   "%s", nm("image: read a blob's tail"));
	layer_usage(l, &used, &budget);
	ok(used > 20000 && budget == 1000, "%s",
	   nm("image: usage and the given budget"));
	is_int(put(l, "kv/x", "1"), -EROFS, nm("image: commit EROFS"));
	is_int(l->ops->commit(l, "kv/x", &a, "1", 1, NULL), -EROFS,
	       nm("image: even past the wrapper, EROFS"));
	is_int(l->ops->remove(l, "kv/greeting"), -EROFS,
	       nm("image: remove past the wrapper, EROFS"));
	is_int(layer_sync(l), 0, nm("image: sync is a no-op"));
	is_int(blob_size(l, TOKEN_T), 20000, nm("image: stat_blob"));
	is_int(layer_pin_blob(l, TOKEN_T), 0, nm("image: pin"));
	is_int(layer_unpin_blob(l, TOKEN_T), 0, nm("image: unpin"));
	is_int(blob_size(l, TOKEN_T), 20000, nm("image: ... blob still there"));
	layer_close(l);
	ok(unchanged(path, &before), "%s", nm("image: file untouched"));
	ok(!exists(path, "-wal") && !exists(path, "-shm") &&
		   !exists(path, "-journal"),
	   "%s", nm("image: no side files"));
	free(before.data);

	/* An image whose builder died before close is refused. */
	rc = layer_sqlite_open(path, "factory", BIG, false, &l, &why);
	if (rc == 0) {
		put(l, "kv/late", "1");
		before = slurp(path);
		is_int(layer_sqlite_open_image(path, "factory", BIG,
					       &(struct dsfs_layer *){NULL},
					       &why),
		       -EINVAL, nm("image still being written: refused"));
		ok(why && strstr(why, "not closed"), "%s",
		   nm("... reason: %s", why ? why : "(null)"));
		free(before.data);
		layer_close(l);
	}
}

static void t_mode(void)
{
	char path[PATH_MAX], wal[PATH_MAX + 8];
	struct dsfs_layer *l;
	const char *why;
	struct stat st;
	mode_t old;
	int rc;

	store_path(path, sizeof(path), "mode.db");
	old = umask(0);
	rc = layer_sqlite_open(path, "runtime", BIG, true, &l, &why);
	umask(old);
	is_int(rc, 0, nm("create with umask 0"));
	if (rc)
		return;
	put(l, "kv/a", "1");
	snprintf(wal, sizeof(wal), "%s-wal", path);
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "%s",
	   nm("store created 0600 under umask 0"));
	ok(stat(wal, &st) == 0 && (st.st_mode & 07777) == 0600, "%s",
	   nm("its WAL is 0600 too"));
	layer_close(l);

	store_path(path, sizeof(path), "mode2.db");
	old = umask(0277);
	rc = layer_sqlite_open(path, "runtime", BIG, true, &l, &why);
	umask(old);
	is_int(rc, 0, nm("create with umask 0277"));
	if (rc)
		return;
	ok(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600, "%s",
	   nm("store created 0600 under umask 0277"));
	layer_close(l);
}

/*
 * A disk that fills up on demand (faultvfs.h): while a case is armed every
 * write fails with its SQLite code and the "system errno" SQLite reads
 * afterwards is its errno.  SQLite's unix VFS reports a full disk as
 * SQLITE_FULL from write(), but as SQLITE_IOERR_* with errno ENOSPC from
 * fallocate() and WAL/shm growth; the layer must say ENOSPC for both.
 */
static void t_disk_full(void)
{
	static const struct {
		int rc, sys, want;
		const char *what;
	} cases[] = {
		{SQLITE_FULL, 0, -ENOSPC, "SQLITE_FULL"},
		{SQLITE_IOERR_WRITE, ENOSPC, -ENOSPC,
		 "I/O error, errno ENOSPC"},
		{SQLITE_IOERR_WRITE, EDQUOT, -EDQUOT,
		 "I/O error, errno EDQUOT"},
		{SQLITE_IOERR_WRITE, EIO, -EIO, "I/O error, errno EIO"},
	};
	char path[PATH_MAX];
	struct dsfs_layer *l;
	const char *why;
	uint64_t used;
	size_t i;
	int rc;

	faultvfs_use(true);

	store_path(path, sizeof(path), "full.db");
	rc = layer_sqlite_open(path, "runtime", BIG, true, &l, &why);
	is_int(rc, 0, nm("open a store on the failing disk"));
	if (rc)
		goto out_unregister;
	put(l, "kv/a", "\"old\"");
	used = used_of(l);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct faultvfs_fault full = {FAULTVFS_WRITE, cases[i].rc,
					      cases[i].sys, true, false};

		faultvfs_arm(&full, 1);
		is_int(put(l, "kv/a", "\"new\""), cases[i].want,
		       nm("disk write fails (%s): replace", cases[i].what));
		is_int(put(l, "kv/b", "1"), cases[i].want,
		       nm("disk write fails (%s): create", cases[i].what));
		faultvfs_disarm();
		is_str(get(l, "kv/a"), "\"old\"",
		       nm("... the old value stays (%s)", cases[i].what));
		is_int(kind_of(l, "kv/b"), -ENOENT,
		       nm("... nothing created (%s)", cases[i].what));
		is_int(used_of(l), used,
		       nm("... usage unchanged (%s)", cases[i].what));
	}
	is_int(put(l, "kv/a", "\"new\""), 0, nm("the disk has room again"));
	is_str(get(l, "kv/a"), "\"new\"", nm("... and the write took"));
	layer_close(l);
	rc = layer_sqlite_open(path, "runtime", BIG, false, &l, &why);
	is_int(rc, 0, nm("the store reopens"));
	if (rc == 0) {
		is_str(get(l, "kv/a"), "\"new\"",
		       nm("... with the last value"));
		layer_close(l);
	}
out_unregister:
	faultvfs_remove();
}

/* The child commits and dies without closing; the parent must find the
 * value.  Once with _exit(), once with SIGKILL. */
static void t_kill(void)
{
	char path[PATH_MAX];
	struct dsfs_layer *l;
	const char *why;
	int i, status;
	pid_t pid;

	for (i = 0; i < 2; i++) {
		store_path(path, sizeof(path), i ? "kill9.db" : "exit.db");
		fflush(stdout);
		pid = fork();
		if (pid < 0)
			bail("fork");
		if (pid == 0) {
			if (layer_sqlite_open(path, "runtime", BIG, true, &l,
					      &why) ||
			    put(l, "kv/k", "42") != 0)
				_exit(1);
			if (i)
				raise(SIGKILL);
			_exit(0);
		}
		waitpid(pid, &status, 0);
		ok(i ? WIFSIGNALED(status) :
		       WIFEXITED(status) && WEXITSTATUS(status) == 0,
		   "%s",
		   nm("child committed and died (%s)",
		      i ? "SIGKILL" : "_exit"));
		ok(exists(path, "-wal"), "%s",
		   nm("the store was not closed (WAL left)"));
		is_int(layer_sqlite_open(path, "runtime", BIG, false, &l, &why),
		       0, nm("reopen after the child died"));
		is_str(get(l, "kv/k"), "42",
		       nm("the committed value is there"));
		layer_close(l);
	}
}

/* The query plan of sql on the store at path, one detail per line. */
static const char *query_plan(const char *path, const char *sql)
{
	static char plan[512];
	char q[256];
	sqlite3_stmt *st;
	sqlite3 *db;
	size_t n = 0;

	plan[0] = '\0';
	snprintf(q, sizeof(q), "EXPLAIN QUERY PLAN %s", sql);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
		    SQLITE_OK &&
	    sqlite3_prepare_v2(db, q, -1, &st, NULL) == SQLITE_OK) {
		while (sqlite3_step(st) == SQLITE_ROW && n < sizeof(plan) - 1)
			n += (size_t)snprintf(
				plan + n, sizeof(plan) - n, "%s\n",
				(const char *)sqlite3_column_text(st, 3));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return plan;
}

/* Drop index name from the store at path, as a store made before it
 * was would lack it. */
static void drop_index(const char *path, const char *name)
{
	char sql[64];
	sqlite3 *db;

	snprintf(sql, sizeof(sql), "DROP INDEX %s", name);
	if (sqlite3_open(path, &db) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		bail(sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* A process that dies holding a pin on a blob it unreferenced leaves the
 * blob with refs 0; the next read-write open deletes it and gives its
 * bytes back, through the index of such blobs, which it makes in a store
 * that lacks it. */
/* A file of path's blob directory: "" or "pending/" and a token. */
static bool blob_file(const char *path, const char *where, const char *token)
{
	char name[PATH_MAX + 100];
	struct stat st;

	snprintf(name, sizeof(name), "%s-blobs/%s%s", path, where, token);
	return stat(name, &st) == 0;
}

/* Open the store at path, with its images in files if files. */
static int open_at(const char *path, bool create, bool files,
		   struct dsfs_layer **l)
{
	const char *why = NULL;
	int rc = layer_sqlite_open(path, "runtime", BIG, create, l, &why);

	if (rc == 0 && files)
		rc = layer_sqlite_blob_files(*l, 1);
	if (rc)
		diag("open %s: %d (%s)", path, rc, why ? why : "");
	return rc;
}

/* A blob pinned by a process that died: its file goes with its row at the
 * next open (the row's collection moves it to pending/, the settle of
 * layer_sqlite_blob_files() deletes it). */
static void t_pin_crash_files(void)
{
	char path[PATH_MAX];
	unsigned char img[5000], small[10];
	struct dsfs_layer *l;
	uint64_t used;
	int status;
	pid_t pid;

	store_path(path, sizeof(path), "pincrash-files.db");
	fill(img, sizeof(img), 33);
	fill(small, sizeof(small), 34);
	if (open_at(path, true, true, &l))
		bail("open");
	put_img(l, "images/keep", TOKEN_U, small, sizeof(small));
	used = used_of(l);
	put_img(l, "images/x", TOKEN_T, img, sizeof(img));
	layer_close(l);
	ok(blob_file(path, "", TOKEN_T) && blob_file(path, "", TOKEN_U), "%s",
	   nm("each image is a file, in place after close"));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail("fork");
	if (pid == 0) {
		if (open_at(path, false, true, &l) ||
		    layer_pin_blob(l, TOKEN_T) != 0 ||
		    layer_remove(l, "images/x") != 0 ||
		    blob_size(l, TOKEN_T) != sizeof(img) ||
		    !blob_is(l, TOKEN_T, img, sizeof(img)))
			_exit(1);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	   nm("child pinned, removed the entry and died"));
	ok(blob_file(path, "", TOKEN_T), "%s",
	   nm("... the pinned image's file stayed"));
	is_int(open_at(path, false, false, &l), 0,
	       nm("reopen without image files"));
	ok(!blob_file(path, "", TOKEN_T) &&
		   blob_file(path, "pending/", TOKEN_T),
	   "%s", nm("... the collected blob's file waits in pending/"));
	is_int(used_of(l), used, nm("... and its bytes left usage"));
	ok(blob_is(l, TOKEN_U, small, sizeof(small)), "%s",
	   nm("... the referenced image reads from its file"));
	layer_close(l);
	is_int(open_at(path, false, true, &l), 0,
	       nm("reopen with image files"));
	ok(!blob_file(path, "pending/", TOKEN_T) &&
		   !blob_file(path, "", TOKEN_T),
	   "%s", nm("... the settle deleted it"));
	ok(blob_is(l, TOKEN_U, small, sizeof(small)), "%s",
	   nm("... the referenced image stays"));
	layer_close(l);
}

/* How many files path's pending/ holds, and how many of them are not
 * named by a token (a temporary name left behind). */
static int pending_count(const char *path, int *temporary)
{
	char name[PATH_MAX + 100];
	struct dirent *d;
	int n = 0;
	DIR *dp;

	*temporary = 0;
	snprintf(name, sizeof(name), "%s-blobs/pending", path);
	dp = opendir(name);
	if (!dp)
		return -1;
	while ((d = readdir(dp)))
		if (d->d_name[0] != '.') {
			n++;
			*temporary += strlen(d->d_name) != 64;
		}
	closedir(dp);
	return n;
}

/* A file whose token is known is made under its token; one already there
 * (a deleted row's, or a crash's) is replaced by a complete file written
 * under a name of its own; a half-written file under a token with no row
 * is removed at the next open. */
static void t_named_files(void)
{
	char path[PATH_MAX], junk[PATH_MAX + 100];
	unsigned char a[5000], b[6000];
	struct dsfs_layer *l;
	int temporary = -1;

	store_path(path, sizeof(path), "named.db");
	fill(a, sizeof(a), 41);
	fill(b, sizeof(b), 42);
	if (open_at(path, true, true, &l))
		bail("open");
	is_int(put_img(l, "images/a", TOKEN_T, a, sizeof(a)), 0,
	       nm("an image with its token"));
	is_int(pending_count(path, &temporary), 1,
	       nm("... one file in pending/"));
	ok(blob_file(path, "pending/", TOKEN_T) && temporary == 0, "%s",
	   nm("... made under its token"));
	snprintf(junk, sizeof(junk), "%s-blobs/pending/%s", path, TOKEN_U);
	if (write_file(junk, "junk", 4) != 0)
		bail("junk");
	is_int(put_img(l, "images/b", TOKEN_U, b, sizeof(b)), 0,
	       nm("an image whose token names a file already"));
	ok(blob_is(l, TOKEN_U, b, sizeof(b)), "%s",
	   nm("... reads back whole: the old file was replaced"));
	is_int(pending_count(path, &temporary), 2, nm("... two files"));
	is_int(temporary, 0, nm("... no temporary name left"));
	layer_close(l);
	ok(blob_file(path, "", TOKEN_T) && blob_file(path, "", TOKEN_U), "%s",
	   nm("both in place after close"));

	/* A crash while the file under its token was being written: no row
	 * refers to it. */
	if (open_at(path, false, true, &l))
		bail("reopen");
	is_int(layer_remove(l, "images/b"), 0, nm("one removed"));
	layer_close(l);
	if (write_file(junk, "half", 4) != 0)
		bail("half");
	if (open_at(path, false, true, &l))
		bail("reopen");
	is_int(pending_count(path, &temporary), 0,
	       nm("the half-written file is gone at the next open"));
	ok(!blob_file(path, "", TOKEN_U), "%s", nm("... and not in place"));
	ok(blob_is(l, TOKEN_T, a, sizeof(a)), "%s",
	   nm("... the other image stays"));
	layer_close(l);
}

static void t_pin_crash(void)
{
	char path[PATH_MAX];
	struct dsfs_layer *l;
	unsigned char img[5000], small[10];
	const char *why;
	uint64_t used;
	int status;
	pid_t pid;

	store_path(path, sizeof(path), "pincrash.db");
	fill(img, sizeof(img), 31);
	fill(small, sizeof(small), 32);
	if (layer_sqlite_open(path, "runtime", BIG, true, &l, &why))
		bail(why);
	put(l, "kv/a", "A");
	put_img(l, "images/keep", TOKEN_U, small, sizeof(small));
	used = used_of(l);
	put_img(l, "images/x", TOKEN_T, img, sizeof(img));
	layer_close(l);
	ok(strstr(query_plan(path, "SELECT count(*) FROM blob WHERE refs = 0"),
		  "blob_unref") != NULL,
	   "%s", nm("a new store finds unreferenced blobs by index"));

	drop_index(path, "blob_unref"); /* as if the store predated it */

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail("fork");
	if (pid == 0) {
		if (layer_sqlite_open(path, "runtime", BIG, false, &l, &why) ||
		    layer_pin_blob(l, TOKEN_T) != 0 ||
		    layer_remove(l, "images/x") != 0 ||
		    blob_size(l, TOKEN_T) != sizeof(img))
			_exit(1);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	ok(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s",
	   nm("child pinned, removed the entry and died"));
	ok(exists(path, "-wal"), "%s", nm("the store was not closed"));
	is_int(layer_sqlite_open(path, "runtime", BIG, false, &l, &why), 0,
	       nm("reopen"));
	is_int(blob_size(l, TOKEN_T), -ENOENT,
	       nm("... the blob left pinned is gone"));
	is_int(used_of(l), used, nm("... and its bytes left usage"));
	ok(blob_is(l, TOKEN_U, small, sizeof(small)), "%s",
	   nm("... a referenced blob stays"));
	is_str(get(l, "kv/a"), "A", nm("... entries stay"));
	layer_close(l);
	ok(strstr(query_plan(path, "SELECT count(*) FROM blob WHERE refs = 0"),
		  "blob_unref") != NULL,
	   "%s", nm("... the index was made on open"));

	/* A clean reopen has nothing to collect and changes nothing. */
	is_int(layer_sqlite_open(path, "runtime", BIG, false, &l, &why), 0,
	       nm("reopen again"));
	is_int(used_of(l), used, nm("... usage unchanged"));
	layer_close(l);
}

/* A listing of the mount reads the entry_kind index alone; a commit of a
 * file over a file leaves the index as it was; a store made without the
 * index lists the same read-only and gains it at its next read-write
 * open. */
static void t_entry_kind(void)
{
	static const char list_sql[] =
		"SELECT name, kind FROM entry WHERE parent = 'kv'"
		" AND name > '' ORDER BY name LIMIT 256";
	static const char want[] = "a/f b/w d/d";
	char path[PATH_MAX];
	struct dsfs_layer *l;
	const char *why;

	store_path(path, sizeof(path), "kinds.db");
	if (layer_sqlite_open(path, "runtime", BIG, true, &l, &why))
		bail(why);
	put(l, "kv/a", "1");
	put(l, "kv/b", "2");
	mkd(l, "kv/d");
	layer_whiteout(l, "kv/b");
	is_int(put(l, "kv/a", "{\"over\": 1}"), 0, nm("a file over a file"));
	is_str(get(l, "kv/a"), "{\"over\": 1}", nm("... reads back"));
	is_str(ls(l, "kv"), want, nm("list_kinds() as list()"));
	layer_close(l);
	ok(strstr(query_plan(path, list_sql), "COVERING INDEX entry_kind") !=
		   NULL,
	   "%s", nm("a listing reads the index of names and kinds alone"));

	drop_index(path, "entry_kind"); /* as if the store predated it */
	is_int(layer_sqlite_open_image(path, "factory", BIG, &l, &why), 0,
	       nm("open without the index, read-only"));
	is_str(ls(l, "kv"), want, nm("... lists the same from the rows"));
	layer_close(l);
	ok(strstr(query_plan(path, list_sql), "entry_kind") == NULL, "%s",
	   nm("... and made no index"));
	is_int(layer_sqlite_open(path, "runtime", BIG, false, &l, &why), 0,
	       nm("open read-write"));
	is_str(ls(l, "kv"), want, nm("... lists the same"));
	is_int(put(l, "kv/b", "3"), 0, nm("... a file over a whiteout"));
	is_str(ls(l, "kv"), "a/f b/f d/d", nm("... listed as a file"));
	layer_close(l);
	ok(strstr(query_plan(path, list_sql), "COVERING INDEX entry_kind") !=
		   NULL,
	   "%s", nm("... and made the index"));
}

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

static void t_pg_hosts(void)
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
static void t_pg_budget(void)
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
static void t_pg_usage_seen(void)
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
static void t_pg_refused_statement(void)
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
static void t_pg_fast_forms(void)
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

static void t_pg_refusals(void)
{
	struct dsfs_layer *l = NULL;
	struct timespec t0, t1;
	char why[256] = "";

	pg_test_reset();
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
static void t_pg_hide(void)
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
static void t_pg_outage(void)
{
	static unsigned char img[300];
	struct dsfs_layer *l;
	struct timespec t0, t1;
	int rc;

	pg_test_reset();
	l = open_pg_host("open before the outage");
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

static void t_list_churn(void)
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

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

int main(void)
{
	static void (*const suite[])(void) = {
		t_roundtrip,	t_replace,	 t_replace_op,	   t_fetch,
		t_parents,	t_mkdir,	 t_whiteouts,	   t_remove,
		t_rename_files, t_rename_errors, t_rename_subtree, t_list,
		t_setattr,	t_budget,	 t_usage,	   t_images,
		t_hash_token,	t_inherit_group, t_clear,	   t_readonly,
		t_many,		t_list_churn,	 t_threads,	   t_sync,
		t_pins,		t_dirtimes,	 t_apply,	   t_snapshot,
		t_take_file,
	};
	const char *base = getenv("TMPDIR");
	size_t i, j;

	plan_no_plan();
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_layer.XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		bail("mkdtemp");
	for (i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		cur = &impls[i];
		impl_name = cur->name;
		for (j = 0; j < sizeof(suite) / sizeof(suite[0]); j++)
			suite[j]();
	}
	impl_name = "sqlite";
	t_persist();
	t_image();
	t_refusals();
	t_mode();
	t_kill();
	t_pin_crash();
	t_entry_kind();
	impl_name = "sqlite+files";
	t_pin_crash_files();
	t_named_files();
	impl_name = "sqlite";
	t_disk_full();
	impl_name = "postgresql";
	t_pg_hosts();
	t_pg_budget();
	t_pg_usage_seen();
	t_pg_refused_statement();
	t_pg_fast_forms();
	t_pg_refusals();
	t_pg_hide();
	t_pg_outage();
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
