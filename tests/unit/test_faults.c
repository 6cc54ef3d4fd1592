/*
 * test_faults.c - the runtime layer under injected disk faults.
 *
 * A SQLite VFS over the default (unix) one (faultvfs.h) passes every call
 * through, except that it can be told to fail the Nth xWrite, xSync,
 * xTruncate or xRead with an I/O error (EIO), a full disk (SQLITE_FULL, or an fsync
 * failing with ENOSPC), or a short write (half the bytes reach the file,
 * then the disk is full, as the unix VFS reports a short write(2)).
 *
 * For every scenario (a small and a large replacing commit, a remove, a
 * sync, a commit that triggers a checkpoint) a dry run counts the calls of
 * each kind the operation makes; then, for each fault kind and each N in
 * that count (every point; a spread of points where there are hundreds),
 * a fresh copy of one store is opened, the fault is armed and the
 * operation run.  Then:
 *
 *   - the result is 0 or the fault's errno (-EIO, -ENOSPC): nothing else;
 *   - the layer, a second connection through the real VFS, and a copy of
 *     the files as a crash would leave them (database and WAL, no shm,
 *     opened through the real VFS) all hold a complete value: the new one
 *     if the call returned 0, the old one if it failed (a failed fsync of
 *     WAL frames already written may leave either: nobody can know whether
 *     they reached the disk), never a mix; PRAGMA integrity_check is "ok";
 *   - with the fault cleared, a new commit succeeds on the same layer, and
 *     the store reopened through the real VFS reads it back.
 *
 * One TAP line per scenario and fault kind; the first failure of each is
 * described.  The totals are printed as "# " lines (README figures).
 */
#include "faultvfs.h"
#include "layer.h"
#include "tap.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BIG (64u << 20)

/* ---- the faults ---------------------------------------------------- */

static const char *const op_name[FAULTVFS_OPS] = {"write", "sync", "truncate",
						  "read"};

struct fault {
	struct faultvfs_fault vfs;
	int want; /* the errno the layer must report */
	const char *name;
};

/* An I/O error is errno EIO; a full disk is SQLITE_FULL from a write (a
 * short one writes half the bytes first), errno ENOSPC from the others. */
static const struct fault faults[] = {
	{{FAULTVFS_WRITE, SQLITE_IOERR_WRITE, EIO, false, false},
	 -EIO,
	 "write EIO once"},
	{{FAULTVFS_WRITE, SQLITE_IOERR_WRITE, EIO, true, false},
	 -EIO,
	 "write EIO from N on"},
	{{FAULTVFS_WRITE, SQLITE_FULL, ENOSPC, true, false},
	 -ENOSPC,
	 "write SQLITE_FULL from N on"},
	{{FAULTVFS_WRITE, SQLITE_FULL, 0, true, true},
	 -ENOSPC,
	 "short write, then full"},
	{{FAULTVFS_SYNC, SQLITE_IOERR_FSYNC, EIO, false, false},
	 -EIO,
	 "fsync EIO"},
	{{FAULTVFS_SYNC, SQLITE_IOERR_FSYNC, ENOSPC, false, false},
	 -ENOSPC,
	 "fsync ENOSPC"},
	{{FAULTVFS_TRUNCATE, SQLITE_IOERR_TRUNCATE, EIO, false, false},
	 -EIO,
	 "truncate EIO"},
	{{FAULTVFS_TRUNCATE, SQLITE_IOERR_TRUNCATE, ENOSPC, false, false},
	 -ENOSPC,
	 "truncate ENOSPC"},
	{{FAULTVFS_READ, SQLITE_IOERR_READ, EIO, false, false},
	 -EIO,
	 "read EIO once"},
	{{FAULTVFS_READ, SQLITE_IOERR_READ, EIO, true, false},
	 -EIO,
	 "read EIO from N on"},
};

/* ---- helpers -------------------------------------------------------- */

static char tmpdir[256];

static void bail(const char *what)
{
	printf("Bail out! %s\n", what);
	exit(1);
}

static struct dsfs_attr attr(void)
{
	struct dsfs_attr a;

	memset(&a, 0, sizeof(a));
	a.kind = DSFS_FILE;
	a.mode = 0644;
	strcpy(a.type, "string");
	return a;
}

static int put_len(struct dsfs_layer *l, const char *key, const char *v,
		   size_t len)
{
	struct dsfs_attr a = attr();

	return layer_commit(l, key, &a, v, len, NULL);
}

/* A JSON string of exactly len bytes whose content depends on tag. */
static char *value(size_t len, char tag)
{
	char *v = malloc(len + 1);
	size_t i;

	if (!v)
		bail("malloc");
	v[0] = '"';
	for (i = 1; i + 1 < len; i++)
		v[i] = (char)(tag + (char)(i % 7));
	v[len - 1] = '"';
	v[len] = '\0';
	return v;
}

static bool same(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && memcmp(a, b, alen) == 0;
}

static int copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out, rc = 0;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errno == ENOENT ? 0 : -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		rc = -errno;
		close(in);
		return rc;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			rc = -EIO;
			break;
		}
	if (n < 0)
		rc = -errno;
	close(in);
	close(out);
	return rc;
}

static void remove_store(const char *path)
{
	static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
	char p[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", path, sfx[i]);
		unlink(p);
	}
}

/*
 * Through a plain SQLite connection on the real VFS: the value of kv/NAME
 * (malloc'd into *v, *len; NULL if absent) and whether PRAGMA
 * integrity_check says "ok".  Returns 0, or a message.
 */
static const char *inspect(const char *path, const char *name, char **v,
			   size_t *len)
{
	static char msg[256];
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	const char *res = NULL;
	int rc;

	*v = NULL;
	*len = 0;
	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, "unix");
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
					NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
		snprintf(msg, sizeof(msg), "integrity_check: %s",
			 (const char *)sqlite3_column_text(st, 0));
		res = msg;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (rc == SQLITE_OK && !res)
		rc = sqlite3_prepare_v2(db,
					"SELECT value FROM entry WHERE"
					" parent = 'kv' AND name = ?1",
					-1, &st, NULL);
	if (rc == SQLITE_OK && !res) {
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*len = (size_t)sqlite3_column_bytes(st, 0);
			*v = malloc(*len + 1);
			if (*v)
				memcpy(*v, sqlite3_column_blob(st, 0), *len);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK && !res) {
		snprintf(msg, sizeof(msg), "sqlite: %s",
			 db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		res = msg;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return res;
}

/* ---- scenarios ------------------------------------------------------ */

enum kind {
	K_COMMIT,
	K_REMOVE,
	K_SYNC
};

struct scenario {
	const char *name;
	enum kind kind;
	size_t old_len, new_len; /* of kv/v */
	int stride_above;	 /* sweep every point up to this many */
};

/* The checkpoint scenario's value is larger than the WAL that triggers an
 * automatic checkpoint (wal_autocheckpoint pages). */
static const struct scenario scenarios[] = {
	{"commit, small value", K_COMMIT, 200, 300, 1000},
	{"commit, 40 KiB value", K_COMMIT, 20000, 40000, 1000},
	{"remove", K_REMOVE, 3000, 0, 1000},
	{"sync after a commit", K_SYNC, 200, 300, 1000},
	{"commit with checkpoint", K_COMMIT, 100, 1500000, 40},
};

struct tally {
	long runs, fired, failed_ok, absorbed, crash_copies;
};
static struct tally total;

/* The template store: kv/v = old, plus a few other entries; closed, so it
 * is one self-contained file. */
static void make_template(const char *path, const struct scenario *sc,
			  const char *old)
{
	struct dsfs_layer *l;
	const char *why = NULL;
	char key[32];
	int i;

	remove_store(path);
	if (layer_sqlite_open(path, "runtime", BIG, true, &l, &why))
		bail(why);
	for (i = 0; i < 20; i++) {
		snprintf(key, sizeof(key), "kv/other%d", i);
		if (put_len(l, key, "12345", 5))
			bail("template: commit");
	}
	if (put_len(l, "kv/v", old, sc->old_len))
		bail("template: commit");
	layer_close(l);
}

/* Run the scenario's operation on l; armed around the operation only. */
static int run_op(struct dsfs_layer *l, const struct scenario *sc,
		  const char *nv)
{
	switch (sc->kind) {
	case K_COMMIT:
		return put_len(l, "kv/v", nv, sc->new_len);
	case K_REMOVE:
		return layer_remove(l, "kv/v");
	case K_SYNC:
	default:
		return layer_sync(l);
	}
}

/*
 * One run: copy the template, open, (sync scenario: commit the new value
 * unsynced), arm (f, n) and run the operation, disarm, check.  Returns
 * NULL or what went wrong.  *counts gets the calls made when f is NULL.
 */
static const char *one(const struct scenario *sc, const char *tmpl,
		       const struct fault *f, long n, const char *old,
		       const char *nv, long *counts, int *rc_out)
{
	static char msg[512];
	char path[PATH_MAX], crash[PATH_MAX], a[PATH_MAX + 8], b[PATH_MAX + 8];
	struct dsfs_layer *l = NULL;
	const char *why = NULL, *res = NULL;
	size_t want_len = 0, got_len;
	const char *want = NULL;
	static char buf[2000000];
	char *got = NULL;
	bool either;
	ssize_t rn;
	int k, rc;

	snprintf(path, sizeof(path), "%s/run.db", tmpdir);
	snprintf(crash, sizeof(crash), "%s/crash.db", tmpdir);
	remove_store(path);
	remove_store(crash);
	if (copy_file(tmpl, path))
		bail("copy template");
	faultvfs_use(true);
	if (layer_sqlite_open(path, "runtime", BIG, false, &l, &why))
		bail(why);
	if (sc->kind == K_SYNC && put_len(l, "kv/v", nv, sc->new_len))
		bail("sync scenario: commit");

	faultvfs_arm(f ? &f->vfs : NULL, n);
	rc = run_op(l, sc, nv);
	for (k = 0; counts && k < FAULTVFS_OPS; k++)
		counts[k] = faultvfs_calls((enum faultvfs_op)k);
	faultvfs_disarm();
	*rc_out = rc;
	total.runs++;
	if (f && !faultvfs_fired()) {
		/* Past the last call of this kind: nothing to check. */
		goto out_close;
	}
	if (f)
		total.fired++;

	if (rc != 0 && (!f || rc != f->want)) {
		snprintf(msg, sizeof(msg), "returned %d (%s), want 0 or %d", rc,
			 strerror(-rc), f ? f->want : 0);
		res = msg;
		goto out_close;
	}
	if (rc == 0 && f)
		total.absorbed++;
	else if (f)
		total.failed_ok++;

	/* What the value must be now. */
	if (sc->kind == K_SYNC || rc == 0) {
		want = sc->kind == K_REMOVE ? NULL : nv;
		want_len = sc->kind == K_REMOVE ? 0 : sc->new_len;
	} else {
		want = old;
		want_len = sc->old_len;
	}

	/* 1. The layer itself. */
	rn = layer_read(l, "kv/v", 0, buf, sizeof(buf));
	if (want ? rn < 0 || !same(buf, (size_t)rn, want, want_len) :
		   rn != -ENOENT) {
		snprintf(msg, sizeof(msg),
			 "rc %d: the layer reads %zd bytes, want %s (%zu)", rc,
			 rn, want ? "the value" : "ENOENT", want_len);
		res = msg;
		goto out_close;
	}

	/* 2. A second connection on the live files, real VFS. */
	res = inspect(path, "v", &got, &got_len);
	if (!res &&
	    !(want ? got && same(got, got_len, want, want_len) : !got)) {
		snprintf(msg, sizeof(msg),
			 "rc %d: real VFS on the live store reads %zu bytes"
			 " (%s), want %zu",
			 rc, got_len, got ? "present" : "absent", want_len);
		res = msg;
	}
	free(got);
	got = NULL;
	if (res)
		goto out_close;

	/* 3. The files as a crash would leave them: db and WAL, no shm. */
	snprintf(a, sizeof(a), "%s-wal", path);
	snprintf(b, sizeof(b), "%s-wal", crash);
	if (copy_file(path, crash) || copy_file(a, b))
		bail("copy for the crash view");
	total.crash_copies++;
	res = inspect(crash, "v", &got, &got_len);
	/* A failed fsync of frames already written: old or new. */
	either = f && f->vfs.op == FAULTVFS_SYNC && rc != 0;
	if (!res) {
		bool is_old = got && same(got, got_len, old, sc->old_len);
		bool is_new =
			sc->kind == K_REMOVE ?
				!got :
				got && same(got, got_len, nv, sc->new_len);
		bool is_want =
			want ? got && same(got, got_len, want, want_len) : !got;

		if (!(is_want || (either && (is_old || is_new)))) {
			snprintf(msg, sizeof(msg),
				 "rc %d: after a crash the store holds %zu"
				 " bytes (%s), want %zu",
				 rc, got_len,
				 is_old ? "the old value" :
				 is_new ? "the new value" :
				 got	? "something else" :
					  "nothing",
				 want_len);
			res = msg;
		}
	}
	free(got);
	got = NULL;
	if (res)
		goto out_close;

	/* 4. The fault cleared, the same layer commits again. */
	rc = put_len(l, "kv/v", "\"after\"", 7);
	if (rc) {
		snprintf(msg, sizeof(msg),
			 "the commit after the fault returned %d (%s)", rc,
			 strerror(-rc));
		res = msg;
		goto out_close;
	}
	layer_close(l);
	l = NULL;

	/* 5. Reopened through the real VFS, by the layer's own checks. */
	faultvfs_use(false);
	rc = layer_sqlite_open(path, "runtime", BIG, false, &l, &why);
	if (rc) {
		snprintf(msg, sizeof(msg), "reopen: %d (%s)", rc, why);
		res = msg;
		goto out_close;
	}
	rn = layer_read(l, "kv/v", 0, buf, sizeof(buf));
	if (rn != 7 || memcmp(buf, "\"after\"", 7) != 0) {
		snprintf(msg, sizeof(msg), "reopened: kv/v reads %zd bytes",
			 rn);
		res = msg;
	}
	if (!res) {
		res = inspect(path, "other7", &got, &got_len);
		if (!res && !(got && same(got, got_len, "12345", 5)))
			res = "reopened: another entry is damaged";
		free(got);
	}

out_close:
	if (l)
		layer_close(l);
	faultvfs_use(false);
	return res;
}

static void sweep(const struct scenario *sc)
{
	char tmpl[PATH_MAX];
	long counts[FAULTVFS_OPS], n, step, pts;
	char *old = value(sc->old_len, 'a');
	char *nv = sc->new_len ? value(sc->new_len, 'k') : NULL;
	const char *res;
	size_t i;
	int rc;

	snprintf(tmpl, sizeof(tmpl), "%s/template.db", tmpdir);
	make_template(tmpl, sc, old);

	res = one(sc, tmpl, NULL, 0, old, nv, counts, &rc);
	ok(!res && rc == 0, "%s: without faults (%s)", sc->name,
	   res ? res : "ok");
	diag("%s: %ld writes, %ld syncs, %ld truncates, %ld reads", sc->name,
	     counts[FAULTVFS_WRITE], counts[FAULTVFS_SYNC],
	     counts[FAULTVFS_TRUNCATE], counts[FAULTVFS_READ]);
	/* A sync that syncs nothing is not a sync; a checkpoint syncs the
	 * WAL and then the database. */
	if (sc->kind == K_SYNC)
		ok(counts[FAULTVFS_SYNC] >= 1,
		   "%s: fsyncs the WAL (%ld fsyncs)", sc->name,
		   counts[FAULTVFS_SYNC]);
	if (sc->stride_above < 1000)
		ok(counts[FAULTVFS_SYNC] >= 2,
		   "%s: the checkpoint ran (%ld fsyncs)", sc->name,
		   counts[FAULTVFS_SYNC]);

	for (i = 0; i < sizeof(faults) / sizeof(faults[0]); i++) {
		const struct fault *f = &faults[i];
		const char *first = NULL;
		long bad_n = 0, errs = 0;

		step = counts[f->vfs.op] > sc->stride_above ?
			       counts[f->vfs.op] / sc->stride_above + 1 :
			       1;
		pts = 0;
		/* Every point (or a spread, always with the last few), and
		 * one past the end, which must fire nothing. */
		for (n = 1; n <= counts[f->vfs.op] + 1; n++) {
			if (step > 1 && n > 8 && n < counts[f->vfs.op] - 8 &&
			    n % step)
				continue;
			pts++;
			res = one(sc, tmpl, f, n, old, nv, NULL, &rc);
			if (rc)
				errs++;
			if (res && !first) {
				first = res;
				bad_n = n;
			}
			if (first)
				break;
		}
		ok(!first,
		   "%s: %s at each of %ld points (%ld failed as they"
		   " should, the rest were absorbed)%s%s",
		   sc->name, f->name, pts, errs, first ? ": " : "",
		   first ? first : "");
		if (first)
			diag("first failure at %s #%ld", op_name[f->vfs.op],
			     bad_n);
	}
	free(old);
	free(nv);
}

static int rm_cb(const char *path, const struct stat *st, int flag,
		 struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A commit's WAL frames reach the file in one write, and before the
 * commit returns (src/layer_sqlite_walbuf.c): the calls that reach the
 * VFS under it are counted, and the WAL's size is read from outside. */
static void wal_writes(void)
{
	char path[PATH_MAX], wal[PATH_MAX + 8], value[3000];
	struct dsfs_layer *l = NULL;
	const char *why = NULL;
	struct stat before, after;
	long writes;

	snprintf(path, sizeof(path), "%s/walbuf.db", tmpdir);
	snprintf(wal, sizeof(wal), "%s-wal", path);
	remove_store(path);
	memset(value, '7', sizeof(value));
	faultvfs_use(true);
	if (layer_sqlite_open(path, "runtime", BIG, true, &l, &why))
		bail(why);
	if (put_len(l, "kv/a", "1", 1) || stat(wal, &before))
		bail("walbuf: first commit");
	faultvfs_arm(NULL, 0);
	ok(put_len(l, "kv/b", value, sizeof(value)) == 0, "walbuf: commit");
	writes = faultvfs_calls(FAULTVFS_WRITE);
	faultvfs_disarm();
	if (stat(wal, &after))
		after.st_size = -1;
	ok(after.st_size >= before.st_size + (off_t)sizeof(value),
	   "walbuf: the frames are in the WAL when the commit returns (%lld -> %lld bytes)",
	   (long long)before.st_size, (long long)after.st_size);
	ok(writes == 1, "walbuf: in one write (%ld)", writes);
	layer_close(l);
	faultvfs_use(false);
}

int main(void)
{
	const char *base = getenv("TMPDIR");
	size_t i;

	plan_no_plan();
	/* Thousands of stores are opened and closed: memory is enough, and
	 * spares the disk (and the other tests) their fsyncs. */
	if ((!base || !*base) && access("/dev/shm", W_OK) == 0)
		base = "/dev/shm";
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_faults.XXXXXX",
		 base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir))
		bail("mkdtemp");
	wal_writes();
	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		sweep(&scenarios[i]);
	diag("faults injected: %ld runs, %ld faults fired, %ld reported as"
	     " the fault's errno, %ld absorbed by SQLite (call returned 0,"
	     " value durable), %ld crash copies checked",
	     total.runs, total.fired, total.failed_ok, total.absorbed,
	     total.crash_copies);
	faultvfs_remove();
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return done_testing();
}
