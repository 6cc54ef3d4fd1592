/*
 * fill_store.c - put N entries straight into a dsfs runtime database, for
 * the 1,000,000-entry figures of `make bench` (creating them through the
 * mount would take most of the run).
 *
 *   fill_store RUNTIME_DB DIRKEY N
 *
 * RUNTIME_DB is STORE/runtime.db of a store that dsfs has created (and
 * that is not mounted); DIRKEY is a directory key such as "kv/big", which
 * is created if missing (its parent must exist).  It writes the rows that
 * dsfs itself would write for N files DIRKEY/f0000000 ... holding the same
 * ~60-byte JSON values as loadgen.c, and updates the usage ('used') and
 * version ('seq') counters, all in one transaction.  `dsfsctl check STORE`
 * verifies the result afterwards.
 *
 * This follows the schema of src/layer_sqlite_store.c (store version 1): if that
 * schema changes, change the INSERTs below with it.  The run script refuses
 * to report the 1M figures when dsfsctl check fails.
 */
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KIND_FILE 1
#define KIND_DIR 2

static sqlite3 *db;

static void fail(const char *what)
{
	fprintf(stderr, "fill_store: %s: %s\n", what, sqlite3_errmsg(db));
	exit(1);
}

static sqlite3_int64 meta(const char *k)
{
	sqlite3_stmt *st;
	sqlite3_int64 v;

	if (sqlite3_prepare_v2(db, "SELECT v FROM meta WHERE k = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		fail("meta");
	sqlite3_bind_text(st, 1, k, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW)
		fail("meta row");
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

int main(int argc, char **argv)
{
	const char *dirkey, *slash;
	sqlite3_stmt *ins, *st;
	sqlite3_int64 used, seq, now;
	struct timespec ts;
	char parent[4096], name[32], val[128];
	long n, i;
	int nl, vl;

	if (argc != 4 || (n = atol(argv[3])) <= 0) {
		fprintf(stderr, "usage: fill_store RUNTIME_DB DIRKEY N\n");
		return 2;
	}
	dirkey = argv[2];
	slash = strrchr(dirkey, '/');
	if (!slash || slash == dirkey || !slash[1] ||
	    (size_t)(slash - dirkey) >= sizeof(parent)) {
		fprintf(stderr, "fill_store: %s: not a key like kv/big\n",
			dirkey);
		return 2;
	}
	memcpy(parent, dirkey, (size_t)(slash - dirkey));
	parent[slash - dirkey] = '\0';

	if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK)
		fail(argv[1]);
	if (sqlite3_exec(db, "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
			 NULL, NULL, NULL) != SQLITE_OK)
		fail("begin");
	if (sqlite3_prepare_v2(db, "PRAGMA application_id", -1, &st, NULL) !=
		    SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW ||
	    sqlite3_column_int64(st, 0) != 0x64736673) {
		fprintf(stderr, "fill_store: %s: not a dsfs store\n", argv[1]);
		return 1;
	}
	sqlite3_finalize(st);

	used = meta("used");
	seq = meta("seq");
	clock_gettime(CLOCK_REALTIME, &ts);
	now = (sqlite3_int64)ts.tv_sec * 1000000000 + ts.tv_nsec;

	if (sqlite3_prepare_v2(
		    db,
		    "INSERT INTO entry(parent, name, kind, opaque, mode, uid,"
		    " gid, atime, mtime, ctime, version, size, type, token,"
		    " value) VALUES (?1, ?2, ?3, 0, ?4, 0, 0, ?5, ?5, ?5, ?6,"
		    " ?7, ?8, '', ?9)",
		    -1, &ins, NULL) != SQLITE_OK)
		fail("prepare");

	/* The directory, unless it is there already. */
	if (sqlite3_prepare_v2(db,
			       "SELECT kind FROM entry WHERE parent = ?1 AND"
			       " name = ?2",
			       -1, &st, NULL) != SQLITE_OK)
		fail("prepare");
	sqlite3_bind_text(st, 1, parent, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, slash + 1, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_ROW) {
		sqlite3_bind_text(ins, 1, parent, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, slash + 1, -1, SQLITE_STATIC);
		sqlite3_bind_int(ins, 3, KIND_DIR);
		sqlite3_bind_int(ins, 4, 0755);
		sqlite3_bind_int64(ins, 5, now);
		sqlite3_bind_int64(ins, 6, ++seq);
		sqlite3_bind_int(ins, 7, 0);
		sqlite3_bind_text(ins, 8, "", -1, SQLITE_STATIC);
		sqlite3_bind_null(ins, 9);
		if (sqlite3_step(ins) != SQLITE_DONE)
			fail("insert directory");
		sqlite3_reset(ins);
		used += (sqlite3_int64)strlen(slash + 1);
	}
	sqlite3_finalize(st);

	for (i = 0; i < n; i++) {
		nl = snprintf(name, sizeof(name), "f%07ld", i);
		vl = snprintf(val, sizeof(val),
			      "{\"id\": %ld, \"name\": \"sensor-%ld\", "
			      "\"value\": 0.5, \"ok\": true}\n",
			      i, i);
		sqlite3_bind_text(ins, 1, dirkey, -1, SQLITE_STATIC);
		sqlite3_bind_text(ins, 2, name, nl, SQLITE_STATIC);
		sqlite3_bind_int(ins, 3, KIND_FILE);
		sqlite3_bind_int(ins, 4, 0644);
		sqlite3_bind_int64(ins, 5, now);
		sqlite3_bind_int64(ins, 6, ++seq);
		sqlite3_bind_int(ins, 7, vl);
		sqlite3_bind_text(ins, 8, "object", -1, SQLITE_STATIC);
		sqlite3_bind_blob(ins, 9, val, vl, SQLITE_STATIC);
		if (sqlite3_step(ins) != SQLITE_DONE)
			fail("insert");
		sqlite3_reset(ins);
		used += nl + vl;
	}
	sqlite3_finalize(ins);

	if (sqlite3_prepare_v2(db, "UPDATE meta SET v = ?2 WHERE k = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		fail("prepare");
	sqlite3_bind_text(st, 1, "used", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, used);
	if (sqlite3_step(st) != SQLITE_DONE)
		fail("used");
	sqlite3_reset(st);
	sqlite3_bind_text(st, 1, "seq", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	if (sqlite3_step(st) != SQLITE_DONE)
		fail("seq");
	sqlite3_finalize(st);
	if (sqlite3_exec(db, "COMMIT; PRAGMA wal_checkpoint(TRUNCATE)", NULL,
			 NULL, NULL) != SQLITE_OK)
		fail("commit");
	sqlite3_close(db);
	printf("filled %ld entries under %s (used %lld bytes)\n", n, dirkey,
	       (long long)used);
	return 0;
}
