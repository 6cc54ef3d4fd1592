/*
 * layer_pg_store.c - the PostgreSQL layer's database: its schema and the
 * schema's version, the statements, opening and closing the layer, and
 * this opening's pins and their heartbeat.
 *
 * The schema (every table named dsfs_*, so the database may hold others):
 *
 *   dsfs_meta(k PRIMARY KEY, v)     'schema_version' = PG_SCHEMA_VERSION,
 *                                   'runtime_budget' = the budget in bytes
 *   dsfs_state(id = 1, used, seq)   usage in bytes, the version counter
 *   dsfs_entry(parent, name, kind, opaque, mode, uid, gid, atime, mtime,
 *              ctime (ns since the epoch), version, size, type, token,
 *              value, PRIMARY KEY(parent, name))
 *   dsfs_blob(token PRIMARY KEY, refs, len, data)
 *   dsfs_owner(owner PRIMARY KEY, expires)
 *   dsfs_pin(token, owner REFERENCES dsfs_owner ON DELETE CASCADE, count)
 *
 * Keys are split as in the SQLite store: parent is the key of the
 * directory holding the entry.  parent and name are bytea, since names are
 * bytes and need not be UTF-8; a subtree is a byte range of parent.
 * Values and blobs are stored uncompressed out of line (STORAGE EXTERNAL),
 * so that reading a slice of one fetches only that slice.
 *
 * The schema is made by the first daemon that opens an empty database,
 * under an advisory lock so that hosts mounting at once make it once.  A
 * database whose schema_version is newer than this daemon knows is
 * refused: a later dsfs may have changed what the rows mean.  An older
 * one would be migrated here; version 1 is the first.
 *
 * Pins are rows, since several hosts share the blobs: each opened layer
 * is an owner whose row a heartbeat thread renews every PG_OWNER_BEAT_SEC.
 * An owner not renewed for PG_OWNER_TTL_SEC (its daemon died, or lost the
 * database that long) is removed, with its pins, by the next open on any
 * host, which then deletes the blobs nothing references or pins any more.
 */
#include "layer_pg.h"
#include "layer_sql.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* pg_advisory_xact_lock() key of the schema check: "dsfs". */
#define SCHEMA_LOCK "1685284467"

static const char schema_sql[] =
	"CREATE TABLE dsfs_meta(k text PRIMARY KEY, v bigint NOT NULL);"
	"CREATE TABLE dsfs_state("
	" id int PRIMARY KEY CHECK (id = 1),"
	" used bigint NOT NULL,"
	" seq bigint NOT NULL);"
	"CREATE TABLE dsfs_entry("
	" parent bytea NOT NULL,"
	" name bytea NOT NULL,"
	" kind smallint NOT NULL,"
	" opaque boolean NOT NULL,"
	" mode bigint NOT NULL,"
	" uid bigint NOT NULL,"
	" gid bigint NOT NULL,"
	" atime bigint NOT NULL,"
	" mtime bigint NOT NULL,"
	" ctime bigint NOT NULL,"
	" version bigint NOT NULL,"
	" size bigint NOT NULL,"
	" type text NOT NULL,"
	" token text NOT NULL,"
	" value bytea,"
	" PRIMARY KEY (parent, name));"
	"ALTER TABLE dsfs_entry ALTER value SET STORAGE EXTERNAL;"
	"CREATE TABLE dsfs_blob("
	" token text PRIMARY KEY,"
	" refs bigint NOT NULL,"
	" len bigint NOT NULL,"
	" data bytea NOT NULL);"
	"ALTER TABLE dsfs_blob ALTER data SET STORAGE EXTERNAL;"
	"CREATE INDEX dsfs_blob_unref ON dsfs_blob(token) WHERE refs <= 0;"
	"CREATE TABLE dsfs_owner("
	" owner text PRIMARY KEY,"
	" expires timestamptz NOT NULL);"
	"CREATE TABLE dsfs_pin("
	" token text NOT NULL,"
	" owner text NOT NULL REFERENCES dsfs_owner ON DELETE CASCADE,"
	" count bigint NOT NULL,"
	" PRIMARY KEY (token, owner));"
	"INSERT INTO dsfs_state VALUES (1, 0, 0);";

#define ATTR_COLS LAYER_SQL_ATTR_COLS
#define AT_KEY " WHERE parent = $1::bytea AND name = $2::bytea"
#define NOT_PINNED(tok) \
	" NOT EXISTS (SELECT 1 FROM dsfs_pin p WHERE p.token = " tok ")"

/* Integers go over the wire as int8 ($n::int8); substr() wants int4. */
const char *const pg_stmt_sql[P_COUNT] = {
	[P_USED] = "SELECT used, " PG_BUDGET_SQL
		   " FROM dsfs_state WHERE id = 1",
	[P_GET] = "SELECT " ATTR_COLS " FROM dsfs_entry" AT_KEY,
	/* A batch of list() (layer_pg_list.c): the names after $2 in
	 * byte order, one range of the primary key. */
	[P_LIST] = "SELECT name, " ATTR_COLS
		   " FROM dsfs_entry WHERE parent = $1::bytea"
		   " AND name > $2::bytea ORDER BY name"
		   " LIMIT " PG_STR(PG_LIST_BATCH),
	/* One statement, so that an image's blob cannot go between reading
	 * its entry and reading the blob. */
	[P_READ] = "SELECT e.kind, e.size, CASE WHEN e.token = ''"
		   " THEN substr(e.value, $3::int8::int4, $4::int8::int4)"
		   " ELSE (SELECT substr(b.data, $3::int8::int4,"
		   " $4::int8::int4) FROM dsfs_blob b WHERE b.token = e.token)"
		   " END FROM dsfs_entry e"
		   " WHERE e.parent = $1::bytea AND e.name = $2::bytea",
	[P_READ_BLOB] = "SELECT substr(data, $2::int8::int4, $3::int8::int4)"
			" FROM dsfs_blob WHERE token = $1::text",
	[P_REAL_KID] = "SELECT 1 FROM dsfs_entry WHERE parent = $1::bytea"
		       " AND kind <> 3 LIMIT 1",
	[P_KIDS_COST] = "SELECT coalesce(sum(length(name)), 0)::int8"
			" FROM dsfs_entry WHERE parent = $1::bytea",
	[P_DEL_KIDS] = "DELETE FROM dsfs_entry WHERE parent = $1::bytea",
	[P_DEL] = "DELETE FROM dsfs_entry" AT_KEY,
	[P_PUT] = "INSERT INTO dsfs_entry(parent, name, " ATTR_COLS
		  ", value) VALUES ($1::bytea, $2::bytea, $3::int8,"
		  " $4::int8 <> 0, $5::int8, $6::int8, $7::int8, $8::int8,"
		  " $9::int8, $10::int8, $11::int8, $12::int8, $13::text,"
		  " $14::text, $15::bytea)" LAYER_SQL_UPSERT,
	[P_SETATTR] = "UPDATE dsfs_entry SET mode = $3::int8, uid = $4::int8,"
		      " gid = $5::int8, atime = $6::int8, mtime = $7::int8,"
		      " ctime = $8::int8, version = $9::int8" AT_KEY,
	[P_MOVE] = "UPDATE dsfs_entry SET parent = $3::bytea,"
		   " name = $4::bytea, version = $5::int8" AT_KEY,
	[P_MOVE_KIDS] = "UPDATE dsfs_entry SET parent = $2::bytea"
			" WHERE parent = $1::bytea",
	/* Deeper descendants: parent in ['from/', 'from0'), the byte
	 * strings that start with "from/" ('0' follows '/'). */
	[P_MOVE_DESC] = "UPDATE dsfs_entry SET parent = $1::bytea ||"
			" substr(parent, $2::int8::int4)"
			" WHERE parent >= $3::bytea AND parent < $4::bytea",
	[P_BLOB_GET] = "SELECT refs, len FROM dsfs_blob WHERE token = $1::text",
	[P_BLOB_ADD] = "INSERT INTO dsfs_blob(token, refs, len, data)"
		       " VALUES ($1::text, 1, $2::int8, $3::bytea)",
	[P_BLOB_REF] = "UPDATE dsfs_blob SET refs = refs + $2::int8"
		       " WHERE token = $1::text",
	[P_BLOB_GC] =
		"DELETE FROM dsfs_blob WHERE token = $1::text"
		" AND refs <= 0 AND" NOT_PINNED("$1::text") " RETURNING len",
	[P_PINNED] = "SELECT 1 FROM dsfs_pin WHERE token = $1::text LIMIT 1",
	[P_PIN] = "INSERT INTO dsfs_pin(token, owner, count)"
		  " SELECT token, $2::text, 1 FROM dsfs_blob"
		  " WHERE token = $1::text ON CONFLICT (token, owner)"
		  " DO UPDATE SET count = dsfs_pin.count + 1",
	[P_UNPIN] = "UPDATE dsfs_pin SET count = count - 1"
		    " WHERE token = $1::text AND owner = $2::text"
		    " RETURNING count",
	[P_UNPIN_DEL] = "DELETE FROM dsfs_pin WHERE token = $1::text"
			" AND owner = $2::text AND count <= 0",
	[P_CLEAR_ENTRIES] = "DELETE FROM dsfs_entry",
	[P_CLEAR_BLOBS] = "DELETE FROM dsfs_blob b WHERE" NOT_PINNED("b.token"),
	[P_BLOB_ZERO] = "UPDATE dsfs_blob SET refs = 0",
	[P_BLOB_BYTES] = "SELECT coalesce(sum(len), 0)::int8 FROM dsfs_blob",
	[P_BEAT] =
		"INSERT INTO dsfs_owner(owner, expires) VALUES ($1::text,"
		" now() + make_interval(secs => $2::int8))"
		" ON CONFLICT (owner) DO UPDATE SET expires = excluded.expires",
	[P_OWNER_SWEEP] = "DELETE FROM dsfs_owner WHERE expires < now()",
	[P_OWNER_DROP] = "DELETE FROM dsfs_owner WHERE owner = $1::text",
	[P_BLOB_SWEEP] =
		"DELETE FROM dsfs_blob b WHERE refs <= 0 AND" NOT_PINNED(
			"b.token") " RETURNING len",
	/* remove(): the row goes, its attributes come back, in one trip. */
	[P_TAKE] = "DELETE FROM dsfs_entry" AT_KEY " RETURNING " ATTR_COLS,
	[P_TOUCH] = "UPDATE dsfs_entry SET mtime = $3::int8, ctime = $3::int8,"
		    " version = $4::int8" AT_KEY " AND kind = 2",
	/* A change's target and its parent, in one trip: the first column
	 * says which row is the target's ($3, $4 may repeat $1, $2). */
	[P_TARGET] = "SELECT true, " ATTR_COLS " FROM dsfs_entry" AT_KEY
		     " UNION ALL SELECT false, " ATTR_COLS " FROM dsfs_entry"
		     " WHERE parent = $3::bytea AND name = $4::bytea"
		     " AND NOT (parent = $1::bytea AND name = $2::bytea)",
	/* A write transaction (layer_pg_pipe.c): dsfs_state is locked first
	 * and written back with the commit. */
	[P_BEGIN] = "BEGIN",
	[P_LAZY_COMMIT] = "SET LOCAL synchronous_commit = off",
	[P_STATE_LOCK] = "SELECT used, seq, " PG_BUDGET_SQL
			 " FROM dsfs_state WHERE id = 1 FOR UPDATE",
	[P_STATE_SET] = "UPDATE dsfs_state SET used = $1::int8,"
			" seq = $2::int8 WHERE id = 1",
	[P_COMMIT] = "COMMIT",
	[P_ROLLBACK] = "ROLLBACK",
	/* layer_pg_fast.c: each changes nothing unless its case holds
	 * (under the lock of dsfs_state, taken before it), then makes the
	 * whole change and returns the new used and seq. */
	/* create(), and the commit that makes a deferred create with its
	 * value (layer_pg_defer.c): $1..$15 the row (P_PUT's; $11, the
	 * version, is the floor of the one made here), $16 the bytes
	 * added, $17 1 if the parent is a tree root, $18 and $19 the
	 * parent's key, $20 now (ns), $21 1 to take the parent's group if
	 * it has the set-group-ID bit (02000), $22 the budget if the store
	 * has none recorded.  Returns the mode, uid and gid stored too. */
	[P_FAST_CREATE] =
		"WITH st AS (SELECT used, seq, CASE WHEN b < 0 THEN $22::int8"
		" ELSE b END AS budget FROM (SELECT used, seq, " PG_BUDGET_SQL
		" AS b FROM dsfs_state WHERE id = 1) x),"
		" ok AS (SELECT greatest(seq, $11::int8) + 1 AS v FROM st"
		" WHERE NOT EXISTS (SELECT 1 FROM dsfs_entry" AT_KEY ")"
		" AND ($17::int8 <> 0 OR EXISTS (SELECT 1 FROM dsfs_entry"
		" WHERE parent = $18::bytea AND name = $19::bytea"
		" AND kind = 2))"
		" AND greatest(used, 0) <= budget"
		" AND $16::int8 <= budget - greatest(used, 0)),"
		" ins AS (INSERT INTO dsfs_entry(parent, name, " ATTR_COLS
		", value) SELECT $1::bytea, $2::bytea, $3::int8,"
		" $4::int8 <> 0, $5::int8, $6::int8, coalesce((SELECT gid"
		" FROM dsfs_entry WHERE $21::int8 <> 0 AND $17::int8 = 0"
		" AND parent = $18::bytea AND name = $19::bytea AND kind = 2"
		" AND mode & 1024 <> 0), $7::int8), $8::int8,"
		" $9::int8, $10::int8, ok.v, $12::int8, $13::text, $14::text,"
		" $15::bytea FROM ok RETURNING version, gid),"
		" s AS (UPDATE dsfs_state SET used = used + $16::int8,"
		" seq = (SELECT version FROM ins) + CASE WHEN $17::int8 <> 0"
		" THEN 0 ELSE 1 END WHERE id = 1"
		" AND EXISTS (SELECT 1 FROM ins) RETURNING used, seq),"
		" t AS (UPDATE dsfs_entry SET mtime = $20::int8,"
		" ctime = $20::int8, version = (SELECT seq FROM s)"
		" WHERE $17::int8 = 0 AND parent = $18::bytea"
		" AND name = $19::bytea AND kind = 2"
		" AND EXISTS (SELECT 1 FROM s))"
		" SELECT used, seq, ins.version, $5::int8, $6::int8, ins.gid"
		" FROM s, ins",
	/* remove() of a plain file with its value in its row: $1 and $2
	 * its key, $3 1 if the parent is a tree root, $4 and $5 the
	 * parent's key, $6 now (ns).  Returns the row's attributes too. */
	[P_FAST_REMOVE] =
		"WITH d AS (DELETE FROM dsfs_entry" AT_KEY
		" AND kind = 1 AND token = ''"
		" RETURNING length(name)::int8 + size AS cost, " ATTR_COLS "),"
		" s AS (UPDATE dsfs_state SET used = used - (SELECT cost FROM d),"
		" seq = seq + CASE WHEN $3::int8 <> 0 THEN 0 ELSE 1 END"
		" WHERE id = 1 AND EXISTS (SELECT 1 FROM d) RETURNING used, seq),"
		" t AS (UPDATE dsfs_entry SET mtime = $6::int8,"
		" ctime = $6::int8, version = (SELECT seq FROM s)"
		" WHERE $3::int8 = 0 AND parent = $4::bytea"
		" AND name = $5::bytea AND kind = 2"
		" AND EXISTS (SELECT 1 FROM s))"
		" SELECT used, seq, " ATTR_COLS " FROM s, d",
	/* commit(): $1..$15 the row (P_PUT's; $11, the version, is the
	 * floor of the one made here), $16 1 for replace(): the row keeps
	 * its mode, uid and gid, and its own version is the floor; $17 the
	 * budget if the store has none recorded.  The name stays, so
	 * the bytes it adds are the new size less the old, checked as
	 * layer_fits() does.  Returns the mode, uid and gid stored too. */
	[P_FAST_COMMIT] =
		"WITH st AS (SELECT used, seq, CASE WHEN b < 0 THEN $17::int8"
		" ELSE b END AS budget FROM (SELECT used, seq, " PG_BUDGET_SQL
		" AS b FROM dsfs_state WHERE id = 1) x),"
		" old AS (SELECT size, CASE WHEN $16::int8 <> 0 THEN mode"
		" ELSE $5::int8 END AS mode, CASE WHEN $16::int8 <> 0 THEN uid"
		" ELSE $6::int8 END AS uid, CASE WHEN $16::int8 <> 0 THEN gid"
		" ELSE $7::int8 END AS gid, CASE WHEN $16::int8 <> 0"
		" THEN version ELSE $11::int8 END AS floor FROM dsfs_entry" AT_KEY
		" AND kind = 1 AND token = ''),"
		" ok AS (SELECT greatest(seq, old.floor) + 1 AS v,"
		" old.size AS was FROM st, old WHERE $12::int8 <= old.size"
		" OR (greatest(used, 0) <= budget"
		" AND $12::int8 - old.size <= budget - greatest(used, 0))),"
		" up AS (UPDATE dsfs_entry SET kind = $3::int8,"
		" opaque = $4::int8 <> 0, mode = (SELECT mode FROM old),"
		" uid = (SELECT uid FROM old), gid = (SELECT gid FROM old),"
		" atime = $8::int8, mtime = $9::int8,"
		" ctime = $10::int8, version = (SELECT v FROM ok),"
		" size = $12::int8, type = $13::text, token = $14::text,"
		" value = $15::bytea" AT_KEY " AND kind = 1 AND token = ''"
		" AND EXISTS (SELECT 1 FROM ok)"
		" RETURNING version, mode, uid, gid),"
		" s AS (UPDATE dsfs_state SET used = used + $12::int8"
		" - (SELECT was FROM ok), seq = (SELECT version FROM up)"
		" WHERE id = 1 AND EXISTS (SELECT 1 FROM up) RETURNING used, seq)"
		" SELECT used, seq, up.version, up.mode, up.uid, up.gid"
		" FROM s, up",
	/* fetch(): P_GET's columns, then the value in the row. */
	[P_GET_VALUE] = "SELECT " ATTR_COLS ", value FROM dsfs_entry" AT_KEY,
	/* The directory at $1, $2 (its version) and at most $4 of the names
	 * in it ($3), read at one moment: no row if it is no directory, one
	 * whose name is NULL if it is empty (layer_pg_known.c). */
	[P_NAMES] = "SELECT d.version, c.name FROM (SELECT version"
		    " FROM dsfs_entry" AT_KEY " AND kind = 2) d"
		    " LEFT JOIN LATERAL (SELECT name FROM dsfs_entry"
		    " WHERE parent = $3::bytea LIMIT $4::int8) c ON true",
};

int pg_store_prepare_stmts(PGconn *conn, char *why, size_t cap)
{
	char name[16];
	PGresult *r;
	int i;

	for (i = 0; i < P_COUNT; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		r = libpq.PQprepare(conn, name, pg_stmt_sql[i], 0, NULL);
		if (libpq.PQresultStatus(r) != PGRES_COMMAND_OK) {
			snprintf(why, cap, "cannot prepare statement %d: %s", i,
				 libpq.PQresultErrorMessage(r));
			why[strcspn(why, "\n")] = '\0';
			libpq.PQclear(r);
			return -EIO;
		}
		libpq.PQclear(r);
	}
	return 0;
}

/* ---- the schema ---------------------------------------------------- */

/* Run sql on conn with no parameters; rows in *res if res is not NULL.
 * On failure, why says what failed. */
static int simple(PGconn *conn, const char *sql, PGresult **res, char *why,
		  size_t cap)
{
	PGresult *r = libpq.PQexec(conn, sql);
	ExecStatusType st = libpq.PQresultStatus(r);

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		snprintf(why, cap, "%s", libpq.PQresultErrorMessage(r));
		why[strcspn(why, "\n")] = '\0';
		libpq.PQclear(r);
		return -EIO;
	}
	if (res)
		*res = r;
	else
		libpq.PQclear(r);
	return 0;
}

/* Inside the schema transaction: the version the database has, 0 if it
 * has no dsfs schema yet. */
static int schema_version(PGconn *conn, long *version, char *why, size_t cap)
{
	PGresult *r;
	int rc;

	rc = simple(conn, "SELECT to_regclass('dsfs_meta') IS NOT NULL", &r,
		    why, cap);
	if (rc)
		return rc;
	*version = strcmp(libpq.PQgetvalue(r, 0, 0), "t") == 0 ? -1 : 0;
	libpq.PQclear(r);
	if (*version == 0)
		return 0;
	rc = simple(conn, "SELECT v FROM dsfs_meta WHERE k = 'schema_version'",
		    &r, why, cap);
	if (rc)
		return rc;
	if (libpq.PQntuples(r) != 1) {
		snprintf(why, cap,
			 "the database has dsfs tables but no "
			 "schema_version: not a dsfs runtime");
		rc = -EINVAL;
	} else {
		*version = strtol(libpq.PQgetvalue(r, 0, 0), NULL, 10);
	}
	libpq.PQclear(r);
	return rc;
}

/* Make the schema on an empty database, or check the one there. */
static int schema_check(PGconn *conn, char *why, size_t cap)
{
	char sql[64];
	long version;
	int rc;

	rc = simple(conn, "BEGIN", NULL, why, cap);
	if (rc)
		return rc;
	rc = simple(conn, "SELECT pg_advisory_xact_lock(" SCHEMA_LOCK ")", NULL,
		    why, cap);
	if (rc == 0)
		rc = schema_version(conn, &version, why, cap);
	if (rc == 0 && version > PG_SCHEMA_VERSION) {
		snprintf(why, cap,
			 "the database's dsfs schema is version %ld, newer "
			 "than this dsfs knows (%d): refusing to use it "
			 "(upgrade dsfs)",
			 version, PG_SCHEMA_VERSION);
		rc = -EINVAL;
	}
	if (rc == 0 && version == 0) {
		rc = simple(conn, schema_sql, NULL, why, cap);
		snprintf(sql, sizeof(sql),
			 "INSERT INTO dsfs_meta VALUES "
			 "('schema_version', %d)",
			 PG_SCHEMA_VERSION);
		if (rc == 0)
			rc = simple(conn, sql, NULL, why, cap);
	}
	if (rc == 0)
		return simple(conn, "COMMIT", NULL, why, cap);
	libpq.PQclear(libpq.PQexec(conn, "ROLLBACK"));
	return rc;
}

/* ---- owners and their pins ----------------------------------------- */

static int beat_fn(struct pg_tx *t, void *arg)
{
	struct pg_params pp = {0};

	(void)arg;
	pg_param_str(&pp, t->p->owner);
	pg_param_i64(&pp, PG_OWNER_TTL_SEC);
	return pg_run(t, P_BEAT, &pp, NULL);
}

/* Dead owners go with their pins, then the blobs nothing keeps. */
static int sweep_fn(struct pg_tx *t, void *arg)
{
	PGresult *r;
	int i, rc;

	(void)arg;
	rc = pg_run(t, P_OWNER_SWEEP, NULL, NULL);
	if (rc == 0)
		rc = pg_exec(t, P_BLOB_SWEEP, NULL, &r);
	if (rc)
		return rc;
	for (i = 0; i < libpq.PQntuples(r); i++)
		t->used -= pg_get_i64(r, i, 0);
	libpq.PQclear(r);
	return 0;
}

static int drop_fn(struct pg_tx *t, void *arg)
{
	struct pg_params pp = {0};

	(void)arg;
	pg_param_str(&pp, t->p->owner);
	return pg_run(t, P_OWNER_DROP, &pp, NULL);
}

/* In a write transaction: a blob being deleted (which locks the usage row
 * first) cannot be pinned halfway. */
static int pin_fn(struct pg_tx *t, void *arg)
{
	struct pg_params pp = {0};
	long n = 0;
	int rc;

	(void)arg;
	pg_param_str(&pp, t->key);
	pg_param_str(&pp, t->p->owner);
	rc = pg_run(t, P_PIN, &pp, &n);
	return rc ? rc : n ? 0 : -ENOENT;
}

int pg_pin_now(struct pg_layer *p, const char *token)
{
	return pg_tx_run(p, PG_WRITE, "pin blob", token, pin_fn, NULL);
}

/* Drop one of this opening's pins; at its last, delete the blob if no
 * entry references it and no one else pins it. */
static int unpin_fn(struct pg_tx *t, void *arg)
{
	struct pg_params pp = {0};
	uint64_t freed = 0;
	PGresult *r;
	int64_t left;
	int rc;

	(void)arg;
	pg_param_str(&pp, t->key);
	pg_param_str(&pp, t->p->owner);
	rc = pg_one_row(t, P_UNPIN, &pp, &r);
	if (rc)
		return rc;
	left = pg_get_i64(r, 0, 0);
	libpq.PQclear(r);
	if (left > 0)
		return 0;
	rc = pg_run(t, P_UNPIN_DEL, &pp, NULL);
	if (rc == 0)
		rc = pg_blob_gc(t, t->key, &freed);
	if (rc == 0)
		t->used -= (int64_t)freed;
	return rc;
}

int pg_unpin_now(struct pg_layer *p, const char *token)
{
	return pg_tx_run(p, PG_WRITE, "unpin blob", token, unpin_fn, NULL);
}

void pg_owe_unpin(struct pg_layer *p, const char *token)
{
	struct pg_owed *o = calloc(1, sizeof(*o));

	if (!o) {
		log_err("%s: unpin %s: out of memory: the pin stays until "
			"this mount ends",
			p->shown, token);
		return;
	}
	snprintf(o->token, sizeof(o->token), "%s", token);
	pthread_mutex_lock(&p->lock);
	o->next = p->owed;
	p->owed = o;
	pthread_mutex_unlock(&p->lock);
	log_warn("%s: unpin %s: retried when the database answers", p->shown,
		 token);
}

/* Called without p->lock.  Those that fail again wait for the next beat. */
void pg_retry_unpins(struct pg_layer *p)
{
	struct pg_owed *o, *next, *left = NULL;

	pthread_mutex_lock(&p->lock);
	if (!p->owed) {
		pthread_mutex_unlock(&p->lock);
		return;
	}
	o = p->owed;
	p->owed = NULL;
	pthread_mutex_unlock(&p->lock);
	for (; o; o = next) {
		next = o->next;
		if (pg_unpin_now(p, o->token) == -EIO) {
			o->next = left;
			left = o;
		} else {
			free(o);
		}
	}
	if (!left)
		return;
	pthread_mutex_lock(&p->lock);
	for (o = left; o->next; o = o->next)
		;
	o->next = p->owed;
	p->owed = left;
	pthread_mutex_unlock(&p->lock);
}

static void *beat_main(void *arg)
{
	struct pg_layer *p = arg;
	struct timespec when;

	pthread_mutex_lock(&p->lock);
	while (!p->stopping) {
		clock_gettime(CLOCK_MONOTONIC, &when);
		when.tv_sec += PG_OWNER_BEAT_SEC;
		pthread_cond_timedwait(&p->stop, &p->lock, &when);
		if (p->stopping)
			break;
		pthread_mutex_unlock(&p->lock);
		/* A failure is logged; the next beat tries again. */
		if (pg_tx_run(p, PG_ONE, "renew pins", NULL, beat_fn, NULL) ==
		    0)
			pg_retry_unpins(p);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* ---- opening and closing ------------------------------------------- */

static int init_sync(struct pg_layer *p)
{
	pthread_condattr_t ca;
	int rc;

	if (pthread_condattr_init(&ca))
		return -ENOMEM;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	rc = pthread_cond_init(&p->freed, &ca);
	if (rc == 0 && pthread_cond_init(&p->stop, &ca) != 0) {
		pthread_cond_destroy(&p->freed);
		rc = -1;
	}
	if (rc == 0 && pthread_cond_init(&p->made, &ca) != 0) {
		pthread_cond_destroy(&p->freed);
		pthread_cond_destroy(&p->stop);
		rc = -1;
	}
	pthread_condattr_destroy(&ca);
	if (rc)
		return -ENOMEM;
	if (pthread_mutex_init(&p->lock, NULL)) {
		pthread_cond_destroy(&p->freed);
		pthread_cond_destroy(&p->stop);
		pthread_cond_destroy(&p->made);
		return -ENOMEM;
	}
	if (pg_known_init(&p->known)) {
		pthread_mutex_destroy(&p->lock);
		pthread_cond_destroy(&p->freed);
		pthread_cond_destroy(&p->stop);
		pthread_cond_destroy(&p->made);
		return -ENOMEM;
	}
	return 0;
}

static void free_layer(struct pg_layer *p)
{
	struct pg_owed *o;
	unsigned i;

	for (i = 0; i < PG_ROOM_KEYS; i++)
		free(p->room[i]);

	/* Their pins go with the owner row at close (drop_fn). */
	while ((o = p->owed)) {
		p->owed = o->next;
		free(o);
	}
	pg_known_free(&p->known);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->freed);
	pthread_cond_destroy(&p->stop);
	pthread_cond_destroy(&p->made);
	free(p->conninfo);
	free(p->shown);
	free(p);
}

/* One runtime budget for every host: the store records it.  A mount that
 * names a size records it (and says so when that changes the budget);
 * one that does not keeps the recorded budget, or records its default
 * on a new store. */
static int record_budget(PGconn *conn, struct pg_layer *p, char *why,
			 size_t cap)
{
	char sql[192];
	PGresult *r;
	long long was = -1;
	int rc;

	rc = simple(conn, "SELECT v FROM dsfs_meta WHERE k = 'runtime_budget'",
		    &r, why, cap);
	if (rc)
		return rc;
	if (libpq.PQntuples(r) == 1)
		was = strtoll(libpq.PQgetvalue(r, 0, 0), NULL, 10);
	libpq.PQclear(r);
	if (was >= 0 && (!p->set_budget || (uint64_t)was == p->budget)) {
		p->budget = (uint64_t)was;
		return 0;
	}
	snprintf(sql, sizeof(sql),
		 "INSERT INTO dsfs_meta VALUES ('runtime_budget', %llu)"
		 " ON CONFLICT (k) DO UPDATE SET v = excluded.v",
		 (unsigned long long)p->budget);
	rc = simple(conn, sql, NULL, why, cap);
	if (rc == 0 && was >= 0)
		log_info("%s: the runtime budget of every host is now %llu "
			 "bytes (was %lld): runtime_size of this mount",
			 p->shown, (unsigned long long)p->budget, was);
	return rc;
}

/* The first connection: schema, statements, this owner, the sweep. */
static int first_connection(struct pg_layer *p, char *why, size_t cap)
{
	struct pg_conn *c = &p->pool[0];
	int rc;

	rc = pg_connect(p, c, why, cap);
	if (rc)
		return rc;
	rc = schema_check(c->conn, why, cap);
	if (rc == 0)
		rc = pg_store_prepare_stmts(c->conn, why, cap);
	if (rc)
		return rc;
	c->prepared = true;
	rc = record_budget(c->conn, p, why, cap);
	if (rc)
		return rc;
	rc = pg_tx_run(p, PG_ONE, "register pin owner", NULL, beat_fn, NULL);
	if (rc == 0)
		rc = pg_tx_run(p, PG_WRITE, "sweep dead pins", NULL, sweep_fn,
			       NULL);
	if (rc)
		snprintf(why, cap, "cannot register with the database: %s",
			 strerror(-rc));
	return rc;
}

int layer_pg_open(const char *conninfo, const char *name, uint64_t budget,
		  unsigned flags, struct dsfs_layer **out, char *why,
		  size_t cap)
{
	struct pg_layer *p;
	char host[32] = "";
	struct timespec now;
	int rc;

	*out = NULL;
	why[0] = '\0';
	rc = libpq_load(why, cap);
	if (rc)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (init_sync(p)) {
		free(p);
		return -ENOMEM;
	}
	p->base.ops = &pg_ops;
	p->base.name = name;
	p->base.takes_files = true;
	p->budget = budget;
	p->set_budget = flags & LAYER_PG_SET_BUDGET;
	p->conninfo = strdup(conninfo);
	p->shown = layer_pg_shown(conninfo, why, cap);
	if (!p->conninfo || !p->shown) {
		rc = p->conninfo ? -EINVAL : -ENOMEM;
		goto fail;
	}
	gethostname(host, sizeof(host) - 1);
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(p->owner, sizeof(p->owner), "%s:%ld:%lld.%09ld", host,
		 (long)getpid(), (long long)now.tv_sec, now.tv_nsec);
	rc = first_connection(p, why, cap);
	if (rc) {
		pg_pool_close(p);
		goto fail;
	}
	if (pthread_create(&p->beat, NULL, beat_main, p) == 0)
		p->beating = true;
	else
		log_warn("%s: no pin heartbeat: pins of this mount expire "
			 "after %d s",
			 p->shown, PG_OWNER_TTL_SEC);
	*out = &p->base;
	return 0;

fail:
	free_layer(p);
	return rc;
}

int pg_snapshot_open(struct pg_layer *p, struct dsfs_layer **out)
{
	struct pg_layer *s;
	struct pg_conn *c;
	char why[320];
	int rc = -ENOMEM;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (init_sync(s)) {
		free(s);
		return -ENOMEM;
	}
	s->base = p->base;
	s->base.readonly = true;
	s->budget = p->budget;
	memcpy(s->owner, p->owner, sizeof(s->owner));
	s->conninfo = strdup(p->conninfo);
	s->shown = strdup(p->shown);
	if (!s->conninfo || !s->shown)
		goto fail;
	c = &s->pool[0];
	rc = pg_connect(s, c, why, sizeof(why));
	if (rc == 0)
		rc = pg_store_prepare_stmts(c->conn, why, sizeof(why));
	/* The snapshot is taken by the transaction's first statement. */
	if (rc == 0)
		rc = simple(c->conn,
			    "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;"
			    "SELECT 1 FROM dsfs_state",
			    NULL, why, sizeof(why));
	if (rc) {
		log_err("%s: snapshot: %s", p->shown, why);
		pg_pool_close(s);
		goto fail;
	}
	c->prepared = true;
	s->snap = true;
	*out = &s->base;
	return 0;

fail:
	free_layer(s);
	return rc;
}

void pg_store_close(struct pg_layer *p)
{
	if (p->beating) {
		pthread_mutex_lock(&p->lock);
		p->stopping = true;
		pthread_cond_signal(&p->stop);
		pthread_mutex_unlock(&p->lock);
		pthread_join(p->beat, NULL);
	}
	/* Its pins go with it; what they kept is swept by the next open.
	 * A snapshot pins nothing: its transaction keeps what it reads. */
	if (!p->snap)
		pg_tx_run(p, PG_ONE, "drop pins", NULL, drop_fn, NULL);
	pg_pool_close(p);
	free_layer(p);
}
