/*
 * sqlite_bench.c - SQLite alone, as a target of `make bench`: what one
 * transaction per operation costs, the commit dsfs does at every close.
 *
 *   sqlite_bench -w WORKLOAD -d DBFILE [-n N] [-t THREADS] [-r R] [-P PASSES]
 *
 * Same workloads, names and output as loadgen.c, on one table
 *
 *   kv(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, value BLOB)
 *
 * in WAL mode with synchronous=NORMAL and prepared statements.  Every
 * INSERT, UPDATE and DELETE is its own BEGIN IMMEDIATE ... COMMIT (as dsfs
 * commits a value); a SELECT runs on its own (an implicit read transaction).
 *
 *   create     INSERT of a ~60-byte JSON value keyed by name    (µs per row)
 *   overwrite  UPDATE of the value by name                      (µs per row)
 *   read       SELECT of the value by name, copied out          (µs per row)
 *              (a new process has a cold SQLite cache; -P 2 is warm)
 *   lstat      SELECT length(value) by name                     (µs per row)
 *   list       SELECT name of every row, R times                (µs per listing)
 *   unlink     DELETE by name                                   (µs per row)
 *   mixed      THREADS threads, each with its own connection, UPDATE then
 *              SELECT on its own slice (wall µs per operation)
 *   image      N blobs of 1 MiB: INSERT zeroblob + 16 incremental blob
 *              writes of 64 KiB + COMMIT, then 16 blob reads of 64 KiB
 *              (mean µs per blob, write and read), then DELETE (untimed)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define IMG_SIZE (1024 * 1024)
#define IMG_PIECE (64 * 1024)

static const char *dbpath;
static long nfiles = 10000;
static int nthreads = 2;
static long reps = 20;
static int passes = 1;

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static void fail(sqlite3 *db, const char *what)
{
	fprintf(stderr, "sqlite_bench: %s: %s: %s\n", dbpath, what,
		db ? sqlite3_errmsg(db) : "out of memory");
	exit(1);
}

static void exec(sqlite3 *db, const char *sql)
{
	if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK)
		fail(db, sql);
}

static sqlite3 *open_db(void)
{
	sqlite3 *db;

	if (sqlite3_open_v2(dbpath, &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
				    SQLITE_OPEN_NOMUTEX,
			    NULL) != SQLITE_OK)
		fail(db, "open");
	sqlite3_busy_timeout(db, 5000);
	exec(db, "PRAGMA journal_mode = WAL");
	exec(db, "PRAGMA synchronous = NORMAL");
	exec(db, "CREATE TABLE IF NOT EXISTS kv(id INTEGER PRIMARY KEY,"
		 " name TEXT NOT NULL UNIQUE, value BLOB)");
	return db;
}

static sqlite3_stmt *prep(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
			       NULL) != SQLITE_OK)
		fail(db, sql);
	return st;
}

/* One prepared set per connection. */
struct conn {
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *ins, *upd, *sel, *len, *del, *names;
};

static void conn_open(struct conn *c)
{
	c->db = open_db();
	c->begin = prep(c->db, "BEGIN IMMEDIATE");
	c->commit = prep(c->db, "COMMIT");
	c->ins = prep(c->db, "INSERT INTO kv(name, value) VALUES (?1, ?2)");
	c->upd = prep(c->db, "UPDATE kv SET value = ?2 WHERE name = ?1");
	c->sel = prep(c->db, "SELECT value FROM kv WHERE name = ?1");
	c->len = prep(c->db, "SELECT length(value) FROM kv WHERE name = ?1");
	c->del = prep(c->db, "DELETE FROM kv WHERE name = ?1");
	c->names = prep(c->db, "SELECT name FROM kv");
}

static void conn_close(struct conn *c)
{
	sqlite3_stmt *all[] = {c->begin, c->commit, c->ins, c->upd,
			       c->sel,   c->len,    c->del, c->names};
	size_t i;

	for (i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		sqlite3_finalize(all[i]);
	sqlite3_close(c->db);
}

static void run(struct conn *c, sqlite3_stmt *st, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		fail(c->db, what);
	sqlite3_reset(st);
}

static int name_of(long i, char *buf, size_t cap)
{
	return snprintf(buf, cap, "f%07ld", i);
}

static int json_of(long i, int gen, char *buf, size_t cap)
{
	return snprintf(buf, cap,
			"{\"id\": %ld, \"name\": \"sensor-%ld\", "
			"\"value\": %d.5, \"ok\": true}\n",
			i, i, gen);
}

/* INSERT or UPDATE (st) of row i in its own transaction. */
static void put(struct conn *c, sqlite3_stmt *st, long i, int gen)
{
	char name[32], val[128];
	int nl = name_of(i, name, sizeof(name));
	int vl = json_of(i, gen, val, sizeof(val));

	run(c, c->begin, "BEGIN");
	sqlite3_bind_text(st, 1, name, nl, SQLITE_STATIC);
	sqlite3_bind_blob(st, 2, val, vl, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		fail(c->db, "put");
	if (sqlite3_changes(c->db) != 1) {
		fprintf(stderr, "sqlite_bench: row %s missing\n", name);
		exit(1);
	}
	sqlite3_reset(st);
	run(c, c->commit, "COMMIT");
}

static void get(struct conn *c, sqlite3_stmt *st, long i, int copy)
{
	char name[32], buf[4096];
	int nl = name_of(i, name, sizeof(name));

	sqlite3_bind_text(st, 1, name, nl, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		fprintf(stderr, "sqlite_bench: row %s: %s\n", name,
			sqlite3_errmsg(c->db));
		exit(1);
	}
	if (copy) {
		int n = sqlite3_column_bytes(st, 0);
		const void *p = sqlite3_column_blob(st, 0);

		if (n > (int)sizeof(buf) || !p)
			fail(c->db, "value");
		memcpy(buf, p, (size_t)n);
		if (buf[0] != '{')
			fail(c->db, "unexpected value");
	} else {
		(void)sqlite3_column_int(st, 0);
	}
	sqlite3_reset(st);
}

static void del(struct conn *c, long i)
{
	char name[32];
	int nl = name_of(i, name, sizeof(name));

	run(c, c->begin, "BEGIN");
	sqlite3_bind_text(c->del, 1, name, nl, SQLITE_STATIC);
	run(c, c->del, "DELETE");
	run(c, c->commit, "COMMIT");
}

/* ---- mixed --------------------------------------------------------- */

struct slice {
	long from, to;
	double t0, t1; /* when this thread started and ended its work */
};

static pthread_barrier_t start_line;

static void *mixed_thread(void *arg)
{
	struct slice *s = arg;
	struct conn c;
	long i;

	conn_open(&c);
	pthread_barrier_wait(&start_line);
	s->t0 = now_us();
	for (i = s->from; i < s->to; i++)
		put(&c, c.upd, i, 7);
	for (i = s->from; i < s->to; i++)
		get(&c, c.sel, i, 1);
	s->t1 = now_us();
	conn_close(&c);
	return NULL;
}

static double run_mixed(void)
{
	pthread_t tid[64];
	struct slice sl[64];
	double t0, t1;
	int k;

	if (nthreads < 1 || nthreads > 64)
		nthreads = 2;
	pthread_barrier_init(&start_line, NULL, (unsigned)nthreads + 1);
	for (k = 0; k < nthreads; k++) {
		sl[k].from = nfiles * k / nthreads;
		sl[k].to = nfiles * (k + 1) / nthreads;
		pthread_create(&tid[k], NULL, mixed_thread, &sl[k]);
	}
	pthread_barrier_wait(&start_line);
	for (k = 0; k < nthreads; k++)
		pthread_join(tid[k], NULL);
	/* From the first thread's start to the last one's end: the threads
	 * may all be done before this one runs again (one CPU). */
	t0 = sl[0].t0;
	t1 = sl[0].t1;
	for (k = 1; k < nthreads; k++) {
		if (sl[k].t0 < t0)
			t0 = sl[k].t0;
		if (sl[k].t1 > t1)
			t1 = sl[k].t1;
	}
	return (t1 - t0) / (2.0 * (double)nfiles);
}

/* ---- image --------------------------------------------------------- */

static uint64_t rng;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void run_image(struct conn *c)
{
	static const unsigned char sig[8] = {0x89, 'P', 'N', 'G',
					     0x0d, 0x0a, 0x1a, 0x0a};
	unsigned char *img = malloc(IMG_SIZE), *back = malloc(IMG_SIZE);
	sqlite3_stmt *ins = prep(c->db, "INSERT INTO kv(name, value)"
					" VALUES (?1, zeroblob(?2))");
	double wsum = 0, rsum = 0, t0;
	sqlite3_blob *b;
	sqlite3_int64 row;
	char name[32];
	size_t off;
	long i;

	if (!img || !back)
		fail(NULL, "malloc");
	rng = ((uint64_t)getpid() << 32) ^ (uint64_t)now_us() ^
	      0x9e3779b97f4a7c15ULL;
	for (i = 0; i < nfiles; i++) {
		memcpy(img, sig, sizeof(sig));
		for (off = sizeof(sig); off + 8 <= IMG_SIZE; off += 8) {
			uint64_t r = xorshift();
			memcpy(img + off, &r, 8);
		}
		snprintf(name, sizeof(name), "img%04ld.png", i);

		t0 = now_us();
		run(c, c->begin, "BEGIN");
		sqlite3_bind_text(ins, 1, name, -1, SQLITE_STATIC);
		sqlite3_bind_int(ins, 2, IMG_SIZE);
		run(c, ins, "INSERT zeroblob");
		row = sqlite3_last_insert_rowid(c->db);
		if (sqlite3_blob_open(c->db, "main", "kv", "value", row, 1,
				      &b) != SQLITE_OK)
			fail(c->db, "blob_open");
		for (off = 0; off < IMG_SIZE; off += IMG_PIECE)
			if (sqlite3_blob_write(b, img + off, IMG_PIECE,
					       (int)off) != SQLITE_OK)
				fail(c->db, "blob_write");
		sqlite3_blob_close(b);
		run(c, c->commit, "COMMIT");
		wsum += now_us() - t0;

		t0 = now_us();
		if (sqlite3_blob_open(c->db, "main", "kv", "value", row, 0,
				      &b) != SQLITE_OK)
			fail(c->db, "blob_open");
		for (off = 0; off < IMG_SIZE; off += IMG_PIECE)
			if (sqlite3_blob_read(b, back + off, IMG_PIECE,
					      (int)off) != SQLITE_OK)
				fail(c->db, "blob_read");
		sqlite3_blob_close(b);
		rsum += now_us() - t0;

		if (memcmp(img, back, IMG_SIZE) != 0)
			fail(c->db, "blob differs");
		run(c, c->begin, "BEGIN");
		sqlite3_bind_text(c->del, 1, name, -1, SQLITE_STATIC);
		run(c, c->del, "DELETE");
		run(c, c->commit, "COMMIT");
	}
	sqlite3_finalize(ins);
	printf("image_write %.2f\nimage_read %.2f\n", wsum / nfiles,
	       rsum / nfiles);
	free(img);
	free(back);
}

int main(int argc, char **argv)
{
	const char *w = NULL;
	struct conn c;
	double t0, us = 0;
	long i, r, got;
	int ch, p;

	while ((ch = getopt(argc, argv, "w:d:n:t:r:P:")) != -1) {
		switch (ch) {
		case 'w': w = optarg; break;
		case 'd': dbpath = optarg; break;
		case 'n': nfiles = atol(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		case 'r': reps = atol(optarg); break;
		case 'P': passes = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (!w || !dbpath || nfiles <= 0)
		goto usage;
	if (passes < 1)
		passes = 1;
	if (reps < 1)
		reps = 20;
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (strcmp(w, "mixed") == 0) {
		printf("mixed %.2f\n", run_mixed());
		return 0;
	}
	conn_open(&c);
	if (strcmp(w, "image") == 0) {
		run_image(&c);
		conn_close(&c);
		return 0;
	}
	for (p = 0; p < passes; p++) {
		t0 = now_us();
		if (strcmp(w, "create") == 0) {
			for (i = 0; i < nfiles; i++)
				put(&c, c.ins, i, 0);
		} else if (strcmp(w, "overwrite") == 0) {
			for (i = 0; i < nfiles; i++)
				put(&c, c.upd, i, p + 1);
		} else if (strcmp(w, "read") == 0) {
			for (i = 0; i < nfiles; i++)
				get(&c, c.sel, i, 1);
		} else if (strcmp(w, "lstat") == 0) {
			for (i = 0; i < nfiles; i++)
				get(&c, c.len, i, 0);
		} else if (strcmp(w, "unlink") == 0) {
			for (i = 0; i < nfiles; i++)
				del(&c, i);
		} else if (strcmp(w, "list") == 0) {
			for (r = 0; r < reps; r++) {
				got = 0;
				while (sqlite3_step(c.names) == SQLITE_ROW) {
					(void)sqlite3_column_text(c.names, 0);
					got++;
				}
				sqlite3_reset(c.names);
				if (got < nfiles) {
					fprintf(stderr,
						"sqlite_bench: list: %ld rows,"
						" expected %ld\n",
						got, nfiles);
					return 1;
				}
			}
			us = (now_us() - t0) / (double)reps;
			continue;
		} else {
			goto usage;
		}
		us = (now_us() - t0) / (double)nfiles;
	}
	printf("%s %.2f\n", w, us);
	conn_close(&c);
	return 0;

usage:
	fprintf(stderr,
		"usage: sqlite_bench -w create|overwrite|read|lstat|list|"
		"unlink|mixed|image -d DBFILE\n"
		"                    [-n N] [-t THREADS] [-r R] [-P PASSES]\n");
	return 2;
}
