/*
 * test_layer_store.c - the tests that only make sense for a SQLite store
 * file: persistence across openings, factory images, refusal of foreign
 * and damaged files (left byte for byte as they were), the created file's
 * mode, a full disk, kill safety, creates carried to the next commit,
 * image files beside the store and their crash recovery, and the index
 * that listings use.
 */
#include "faultvfs.h"
#include "test_layer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

void t_refusals(void)
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

	is_int(layer_sqlite_open(tl.tmpdir, "runtime", BIG, true, &l, &why),
	       -EINVAL, nm("a directory is refused"));
	store_path(path, sizeof(path), "missing.db");
	is_int(layer_sqlite_open(path, "runtime", BIG, false, &l, &why),
	       -ENOENT, nm("missing store without create: ENOENT"));
	ok(!exists(path, ""), "%s", nm("... and not created"));
	is_int(layer_sqlite_open_image(path, "factory", BIG, &l, &why), -ENOENT,
	       nm("missing image: ENOENT"));
}

void t_persist(void)
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

void t_image(void)
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

void t_mode(void)
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
void t_disk_full(void)
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
void t_kill(void)
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

/* What the child of t_carry() does under the exclusive lock, as the daemon
 * does; the number of the first step that went wrong, else 0. */
static int carry_steps(const char *path)
{
	/* More than the 64-byte budget holds. */
	static const char too_big[] = "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,"
				      "16,17,18,19,20,21,22,23,24,25,26,27]";
	struct dsfs_attr a = attr(0644), out;
	struct dsfs_layer *l;
	const char *why;

	if (layer_sqlite_open(path, "runtime", 64, true, &l, &why) ||
	    layer_sqlite_exclusive(l))
		return 1;
	/* Settled: by settle(), by the next change, and by a change that
	 * failed and left the carried creates as they were. */
	if (layer_create(l, "kv/settled", &a, &out) ||
	    layer_settle(l, "kv/settled"))
		return 2;
	if (layer_create(l, "kv/joined", &a, &out) || put(l, "kv/value", "1"))
		return 3;
	if (layer_create(l, "kv/kept", &a, &out) ||
	    put(l, "kv/too-big", too_big) != -ENOSPC ||
	    layer_lookup(l, "kv/kept", &out) || layer_settle(l, "kv/kept"))
		return 4;
	/* Carried: seen by this layer's reads, committed by nothing yet. */
	if (layer_create(l, "kv/carried", &a, &out) ||
	    layer_lookup(l, "kv/carried", &out) || out.kind != DSFS_FILE)
		return 5;
	return 0;
}

/* A create under the exclusive lock is carried to the next commit (one
 * transaction per new file): the child creates and dies without closing,
 * and the parent finds what was settled, and not what was only carried. */
void t_carry(void)
{
	char path[PATH_MAX];
	struct dsfs_layer *l;
	struct dsfs_attr a;
	const char *why;
	int status;
	pid_t pid;

	store_path(path, sizeof(path), "carry.db");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		bail("fork");
	if (pid == 0)
		_exit(carry_steps(path));
	waitpid(pid, &status, 0);
	is_int(WIFEXITED(status) ? WEXITSTATUS(status) : -1, 0,
	       nm("the child's creates, commits and settles answered"));
	is_int(layer_sqlite_open(path, "runtime", 64, false, &l, &why), 0,
	       nm("reopen after the child died"));
	is_int(layer_lookup(l, "kv/settled", &a), 0,
	       nm("a create settled is stored"));
	is_int(layer_lookup(l, "kv/joined", &a), 0,
	       nm("a create committed by the next change is stored"));
	is_str(get(l, "kv/value"), "1", nm("... as is that change"));
	is_int(layer_lookup(l, "kv/kept", &a), 0,
	       nm("a refused change keeps the carried create"));
	is_int(layer_lookup(l, "kv/too-big", &a), -ENOENT,
	       nm("... and stores nothing of its own"));
	is_int(layer_lookup(l, "kv/carried", &a), -ENOENT,
	       nm("a create never committed is not stored"));
	layer_close(l);
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
void t_pin_crash_files(void)
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
void t_named_files(void)
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

void t_pin_crash(void)
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
void t_entry_kind(void)
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
