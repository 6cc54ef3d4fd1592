/*
 * test_layer.c - conformance tests for the layer implementations: the
 * implementations, the helpers the tests are written with, and main().
 *
 * One suite of tests, written against layer.h only, runs against every
 * implementation: the ephemeral layer (layer_mem.c), the runtime layer
 * (layer_sqlite.c, on stores in a private mkdtemp() directory: as an
 * unmounted dsfsctl opens one, and as the daemon does, under the
 * exclusive lock with its images in files beside it) and the runtime
 * layer on PostgreSQL (layer_pg.c, on a server of the test's own or
 * $DSFS_TEST_PG_URI: pg_test.h).  Tests that only make sense for a store
 * file or for PostgreSQL follow.  test_layer.h says which file holds
 * which tests.
 *
 * Output is TAP (tests/unit/tap.h); every check names the implementation.
 */
#include "pg_test.h"
#include "test_layer.h"

#include <ftw.h>
#include <stdarg.h>
#include <sys/stat.h>

TAP_STATE_DEFINITION

struct layer_suite tl = {.impl_name = ""};

struct impl {
	const char *name;
	int (*open)(uint64_t budget, struct dsfs_layer **l);
};

/* A check's name, prefixed with the implementation under test.  The
 * buffer is reused by the next call, after is_int() has printed it. */
const char *nm(const char *fmt, ...)
{
	static char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "%s: ", tl.impl_name);
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);
	return buf;
}

void bail(const char *what)
{
	printf("Bail out! %s\n", what);
	exit(1);
}

static int open_mem(uint64_t budget, struct dsfs_layer **l)
{
	return layer_mem_open(budget, l);
}

void store_path(char *buf, size_t cap, const char *name)
{
	snprintf(buf, cap, "%s/%s", tl.tmpdir, name);
}

static int open_sqlite(uint64_t budget, struct dsfs_layer **l)
{
	char path[PATH_MAX], name[32];
	const char *why = NULL;
	int rc;

	snprintf(name, sizeof(name), "store-%d.db", ++tl.store_seq);
	store_path(path, sizeof(path), name);
	rc = layer_sqlite_open(path, "runtime", budget, true, l, &why);
	if (rc)
		diag("layer_sqlite_open %s: %d (%s)", path, rc, why);
	return rc;
}

/* The same as the daemon opens its store: under the exclusive lock, where
 * the layer keeps the usage and version counters itself, and with every
 * image in a file beside the store (a threshold of one byte), so that the
 * whole suite runs on layer_sqlite_blobfile.c too. */
static int open_sqlite_files(uint64_t budget, struct dsfs_layer **l)
{
	int rc = open_sqlite(budget, l);

	if (rc == 0)
		rc = layer_sqlite_exclusive(*l);
	if (rc == 0)
		rc = layer_sqlite_blob_files(*l, 1);
	if (rc)
		diag("layer_sqlite_exclusive, layer_sqlite_blob_files: %d", rc);
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

/* The same, its threads polling the connection while they wait
 * (layer_pg_wait.c). */
static int open_pg_polled(uint64_t budget, struct dsfs_layer **l)
{
	int rc = open_pg(budget, l);

	if (rc == 0)
		rc = layer_pg_busy_poll(*l, 2000);
	return rc;
}

static const struct impl impls[] = {
	{"mem", open_mem},
	{"sqlite", open_sqlite},
	{"sqlite+files", open_sqlite_files},
	{"postgresql", open_pg},
	{"postgresql+busy_poll", open_pg_polled},
};

struct dsfs_layer *fresh(uint64_t budget)
{
	struct dsfs_layer *l = NULL;

	if (tl.cur->open(budget, &l) != 0 || !l)
		bail("cannot open a layer");
	return l;
}

/* ---- helpers ------------------------------------------------------- */

struct dsfs_attr attr(uint32_t mode)
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

int put_len(struct dsfs_layer *l, const char *key, const void *data, size_t len)
{
	struct dsfs_attr a = attr(0644);

	return layer_commit(l, key, &a, data, len, NULL);
}

int put(struct dsfs_layer *l, const char *key, const char *s)
{
	return put_len(l, key, s, strlen(s));
}

int put_img(struct dsfs_layer *l, const char *key, const char *token,
	    const void *data, size_t len)
{
	struct dsfs_attr a = attr(0644);

	strcpy(a.type, "image/png");
	strcpy(a.token, token);
	return layer_commit(l, key, &a, data, len, NULL);
}

int mkd(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a = attr(0755);

	a.kind = DSFS_DIR;
	return layer_mkdir(l, key, &a);
}

/* The whole value of key as a string (static buffer), or "<errno N>". */
const char *get(struct dsfs_layer *l, const char *key)
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

int kind_of(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a;
	int rc = layer_lookup(l, key, &a);

	return rc ? rc : (int)a.kind;
}

uint64_t version_of(struct dsfs_layer *l, const char *key)
{
	struct dsfs_attr a;

	return layer_lookup(l, key, &a) ? 0 : a.version;
}

uint64_t used_of(struct dsfs_layer *l)
{
	uint64_t used = UINT64_MAX, budget;

	if (layer_usage(l, &used, &budget))
		return UINT64_MAX;
	return used;
}

int collect_cb(void *ctx, const char *name, const struct dsfs_attr *a)
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
const char *ls(struct dsfs_layer *l, const char *dir)
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

void fill(unsigned char *p, size_t n, unsigned seed)
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

bool same_time(struct timespec a, struct timespec b)
{
	return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

/* The whole blob reads back as data[0..len). */
bool blob_is(struct dsfs_layer *l, const char *token, const unsigned char *data,
	     size_t len)
{
	static unsigned char buf[65536];
	ssize_t n = layer_read_blob(l, token, 0, buf, sizeof(buf));

	return n >= 0 && (size_t)n == len && memcmp(buf, data, len) == 0;
}

uint64_t blob_size(struct dsfs_layer *l, const char *token)
{
	uint64_t size = UINT64_MAX;
	int rc = layer_stat_blob(l, token, &size);

	return rc ? (uint64_t)(int64_t)rc : size;
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
	snprintf(tl.tmpdir, sizeof(tl.tmpdir), "%s/test_layer.XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(tl.tmpdir))
		bail("mkdtemp");
	for (i = 0; i < sizeof(impls) / sizeof(impls[0]); i++) {
		tl.cur = &impls[i];
		tl.impl_name = tl.cur->name;
		for (j = 0; j < sizeof(suite) / sizeof(suite[0]); j++)
			suite[j]();
	}
	tl.impl_name = "sqlite";
	t_persist();
	t_image();
	t_refusals();
	t_mode();
	t_kill();
	t_carry();
	t_pin_crash();
	t_entry_kind();
	tl.impl_name = "sqlite+files";
	t_pin_crash_files();
	t_named_files();
	tl.impl_name = "sqlite";
	t_disk_full();
	tl.impl_name = "postgresql";
	t_pg_hosts();
	t_pg_budget();
	t_pg_usage_seen();
	t_pg_refused_statement();
	t_pg_fast_forms();
	t_pg_defer();
	t_pg_refusals();
	t_pg_hide();
	t_pg_outage();
	t_pg_remember();
	t_pg_remember_changes();
	nftw(tl.tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
