/*
 * layer_pg_conn.c - the PostgreSQL layer's connections: the conninfo and
 * its password, the pool, timeouts, errors and reconnection, statement
 * parameters and results, and transactions.
 *
 * Outages.  Every bound is here, so that an operation that cannot reach
 * the server fails with -EIO within a known time (dsfs(8)): connecting
 * gives up after PG_CONNECT_TIMEOUT seconds, a statement or a row lock
 * after PG_STATEMENT_TIMEOUT_MS, a thread waiting for a free connection
 * after PG_POOL_WAIT_SEC; TCP keepalives and tcp_user_timeout bound a
 * silent network.  A connection that broke is closed at once and the next
 * operation makes a new one, so the mount recovers by itself when the
 * server is back.  An outage is logged once when it starts and once when
 * it ends; each operation it fails is logged with its key.
 *
 * The password.  A conninfo may carry one (a URI's user:password@, or
 * password=); it goes to libpq and nowhere else: log lines and
 * STORE/runtime.uri get layer_pg_shown(), and the daemon overwrites its
 * command line with layer_pg_hide_password().  libpq's password file
 * (~/.pgpass, PGPASSFILE) and PG* environment variables work as usual.
 */
#include "layer_pg.h"
#include "log.h"

#include <endian.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the conninfo -------------------------------------------------- */

bool layer_pg_is_conninfo(const char *runtime)
{
	return strncmp(runtime, "postgresql://", 13) == 0 ||
	       strncmp(runtime, "postgres://", 11) == 0 ||
	       strchr(runtime, '=') != NULL;
}

/* Write key='value', quoted as libpq reads it, to f. */
static void put_kv(FILE *f, bool first, const char *k, const char *v)
{
	fprintf(f, "%s%s='", first ? "" : " ", k);
	for (; *v; v++) {
		if (*v == '\'' || *v == '\\')
			fputc('\\', f);
		fputc(*v, f);
	}
	fputc('\'', f);
}

int layer_pg_load(char *why, size_t cap)
{
	return libpq_load(why, cap);
}

char *layer_pg_shown(const char *conninfo, char *why, size_t cap)
{
	PQconninfoOption *opts, *o;
	char *err = NULL, *buf = NULL;
	bool first = true;
	size_t len = 0;
	FILE *f;

	if (libpq_load(why, cap))
		return NULL;
	opts = libpq.PQconninfoParse(conninfo, &err);
	if (!opts) {
		/* libpq's message names the bad part, never a password. */
		snprintf(why, cap, "not a PostgreSQL connection string: %s",
			 err ? err : "out of memory");
		why[strcspn(why, "\n")] = '\0';
		libpq.PQfreemem(err);
		return NULL;
	}
	f = open_memstream(&buf, &len);
	if (f) {
		for (o = opts; o->keyword; o++) {
			if (!o->val || strcmp(o->keyword, "password") == 0)
				continue;
			put_kv(f, first, o->keyword, o->val);
			first = false;
		}
		if (fclose(f) != 0) {
			free(buf);
			buf = NULL;
		}
	}
	if (!buf)
		snprintf(why, cap, "out of memory");
	libpq.PQconninfoFree(opts);
	return buf;
}

/* Overwrite s[0..n) with '*'. */
static void mask(char *s, size_t n)
{
	memset(s, '*', n);
}

void layer_pg_hide_password(char *arg)
{
	char *p, *end, *at, *colon;

	/* A URI's user:password@host. */
	for (p = strstr(arg, "://"); p; p = strstr(p, "://")) {
		p += 3;
		end = p + strcspn(p, "/?,");
		at = memchr(p, '@', (size_t)(end - p));
		if (!at)
			continue;
		colon = memchr(p, ':', (size_t)(at - p));
		if (colon)
			mask(colon + 1, (size_t)(at - colon - 1));
	}
	/* password=... in a URI's query or a key=value conninfo. */
	for (p = strstr(arg, "password="); p; p = strstr(p, "password=")) {
		p += 9;
		if (*p == '\'') {
			for (end = p + 1; *end && *end != '\''; end++)
				if (*end == '\\' && end[1])
					end++;
			mask(p + 1, (size_t)(end - p - 1));
		} else {
			mask(p, strcspn(p, "& ,"));
		}
	}
}

/* ---- parameters and results ---------------------------------------- */

void pg_param_i64(struct pg_params *p, int64_t v)
{
	uint64_t be = htobe64((uint64_t)v);

	memcpy(p->num[p->n], &be, 8);
	p->val[p->n] = p->num[p->n];
	p->len[p->n] = 8;
	p->fmt[p->n] = 1;
	p->n++;
}

void pg_param_bytes(struct pg_params *p, const void *v, size_t len)
{
	/* libpq wants a non-NULL pointer for a non-NULL value. */
	p->val[p->n] = len ? v : "";
	p->len[p->n] = (int)len;
	p->fmt[p->n] = 1;
	p->n++;
}

void pg_param_str(struct pg_params *p, const char *s)
{
	pg_param_bytes(p, s, strlen(s));
}

void pg_param_null(struct pg_params *p)
{
	p->val[p->n] = NULL;
	p->len[p->n] = 0;
	p->fmt[p->n] = 1;
	p->n++;
}

int64_t pg_get_i64(const PGresult *r, int row, int col)
{
	const unsigned char *v =
		(const unsigned char *)libpq.PQgetvalue(r, row, col);
	uint64_t x = 0;
	int i, n = libpq.PQgetlength(r, row, col);

	if (libpq.PQgetisnull(r, row, col) || n < 1 || n > 8)
		return 0;
	for (i = 0; i < n; i++)
		x = x << 8 | v[i];
	/* Sign-extend int2 and int4. */
	if (n < 8 && (v[0] & 0x80))
		x |= ~0ull << (8 * n);
	return (int64_t)x;
}

bool pg_get_bool(const PGresult *r, int row, int col)
{
	return libpq.PQgetlength(r, row, col) == 1 &&
	       libpq.PQgetvalue(r, row, col)[0];
}

/* ---- errors -------------------------------------------------------- */

/* The first line of libpq's message. */
static const char *pq_msg(PGconn *conn, const PGresult *r, char *buf,
			  size_t cap)
{
	const char *m = r ? libpq.PQresultErrorMessage(r) : "";

	if (!m || !*m)
		m = conn ? libpq.PQerrorMessage(conn) : "no connection";
	snprintf(buf, cap, "%.*s", (int)strcspn(m, "\n"), m);
	return buf;
}

int pg_fail_errno(struct pg_tx *t, const PGresult *r)
{
	const char *st = r ? libpq.PQresultErrorField(r, PG_DIAG_SQLSTATE) :
			     NULL;

	if (libpq.PQstatus(t->c->conn) == CONNECTION_BAD) {
		libpq.PQfinish(t->c->conn);
		t->c->conn = NULL;
		t->c->prepared = false;
		return -EIO;
	}
	if (!st)
		return -EIO;
	if (strcmp(st, "53100") == 0) /* disk_full */
		return -ENOSPC;
	if (strcmp(st, "53200") == 0) /* out_of_memory */
		return -ENOMEM;
	if (strcmp(st, "40001") == 0 || strcmp(st, "40P01") == 0)
		return -EAGAIN; /* serialization failure, deadlock: again */
	return -EIO;
}

/* ---- statements ---------------------------------------------------- */

int pg_result(struct pg_tx *t, PGresult *r, PGresult **res)
{
	ExecStatusType st = libpq.PQresultStatus(r);
	char msg[256];
	int rc;

	if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
		if (res)
			*res = r;
		else
			libpq.PQclear(r);
		return 0;
	}
	rc = pg_fail_errno(t, r);
	if (t->c->conn && rc != -EAGAIN)
		log_err("%s: %s%s%s: %s", t->p->shown, t->what,
			t->key ? " " : "", t->key ? t->key : "",
			pq_msg(t->c->conn, r, msg, sizeof(msg)));
	libpq.PQclear(r);
	return rc;
}

/* Send sql (one or several statements, as text) and keep the result of
 * the last in *res (to PQclear()). */
static int exec_text(struct pg_tx *t, const char *sql, PGresult **res)
{
	*res = NULL;
	if (!t->c->conn)
		return -EIO;
	return pg_result(t, libpq.PQexec(t->c->conn, sql), res);
}

static int exec_raw(struct pg_tx *t, const char *sql)
{
	PGresult *r;
	int rc = exec_text(t, sql, &r);

	libpq.PQclear(r);
	return rc;
}

int pg_exec(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
	    PGresult **res)
{
	static const struct pg_params none;
	PGresult *last = NULL, *r;
	int64_t began;
	char name[16];

	*res = NULL;
	if (!t->c->conn)
		return -EIO;
	if (t->piped)
		return pg_pipe_exec(t, stmt, pp, res);
	if (!pp)
		pp = &none;
	snprintf(name, sizeof(name), "s%d", (int)stmt);
	/* PQexecPrepared(), with the wait in between (layer_pg_wait.c).  As
	 * there, a failure's result is kept over what follows it. */
	if (!libpq.PQsendQueryPrepared(t->c->conn, name, pp->n, pp->val,
				       pp->len, pp->fmt, 1))
		return pg_result(t, NULL, res);
	began = pg_wait_begin(t, PG_WAIT_READ);
	while ((r = libpq.PQgetResult(t->c->conn)) != NULL) {
		if (last && libpq.PQresultStatus(last) == PGRES_FATAL_ERROR) {
			libpq.PQclear(r);
		} else {
			libpq.PQclear(last);
			last = r;
		}
		if (libpq.PQstatus(t->c->conn) == CONNECTION_BAD)
			break;
	}
	pg_wait_end(t, PG_WAIT_READ, began);
	return pg_result(t, last, res);
}

int pg_run(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
	   long *n)
{
	PGresult *r;
	int rc = pg_exec(t, stmt, pp, &r);

	if (rc)
		return rc;
	if (n)
		*n = libpq.PQresultStatus(r) == PGRES_TUPLES_OK ?
			     libpq.PQntuples(r) :
			     strtol(libpq.PQcmdTuples(r), NULL, 10);
	libpq.PQclear(r);
	return 0;
}

/* ---- the pool ------------------------------------------------------ */

int pg_connect(struct pg_layer *p, struct pg_conn *c, char *why, size_t cap)
{
	/* Ours first: what the user's conninfo (expanded from dbname) says
	 * overrides them. */
	static const char *const keys[] = {
		"connect_timeout",     "keepalives",	   "keepalives_idle",
		"keepalives_interval", "keepalives_count", "tcp_user_timeout",
		"application_name",    "dbname",	   NULL};
	const char *vals[] = {
		PG_CONNECT_TIMEOUT, "1", "5", "2", "2", "10000", "dsfs",
		p->conninfo,	    NULL};
	char set[256], msg[256];
	PGresult *r;
	PGconn *conn;
	bool was_down;
	int rc = -EIO;

	conn = libpq.PQconnectdbParams(keys, vals, 1);
	if (!conn) {
		snprintf(why, cap, "out of memory");
		return -ENOMEM;
	}
	if (libpq.PQstatus(conn) != CONNECTION_OK) {
		snprintf(why, cap, "cannot connect: %s",
			 pq_msg(conn, NULL, msg, sizeof(msg)));
		goto fail;
	}
	snprintf(set, sizeof(set),
		 "SET statement_timeout = %d; SET lock_timeout = %d;"
		 " SET idle_in_transaction_session_timeout = 60000;"
		 " SET synchronous_commit = on",
		 PG_STATEMENT_TIMEOUT_MS, PG_STATEMENT_TIMEOUT_MS);
	r = libpq.PQexec(conn, set);
	if (libpq.PQresultStatus(r) != PGRES_COMMAND_OK) {
		snprintf(why, cap, "cannot set timeouts: %s",
			 pq_msg(conn, r, msg, sizeof(msg)));
		libpq.PQclear(r);
		goto fail;
	}
	libpq.PQclear(r);
	c->conn = conn;
	c->prepared = false;
	pthread_mutex_lock(&p->lock);
	was_down = p->down;
	p->down = false;
	pthread_mutex_unlock(&p->lock);
	if (was_down)
		log_info("%s: connected again", p->shown);
	return 0;

fail:
	libpq.PQfinish(conn);
	pthread_mutex_lock(&p->lock);
	was_down = p->down;
	p->down = true;
	pthread_mutex_unlock(&p->lock);
	if (!was_down)
		log_err("%s: %s; operations on the runtime layer fail with "
			"EIO until it is back",
			p->shown, why);
	return rc;
}

static struct pg_conn *pool_free_slot(struct pg_layer *p)
{
	int i;

	/* A live connection first: a dead slot means connecting. */
	for (i = 0; i < PG_POOL; i++)
		if (!p->pool[i].busy && p->pool[i].conn)
			return &p->pool[i];
	for (i = 0; i < PG_POOL; i++)
		if (!p->pool[i].busy)
			return &p->pool[i];
	return NULL;
}

/* Give c back.  If its connection broke, the server probably restarted or
 * went away, and the idle ones are dead too: they are closed now, so that
 * the next operations connect afresh instead of each finding out. */
static void pool_put(struct pg_layer *p, struct pg_conn *c)
{
	int i;

	pthread_mutex_lock(&p->lock);
	for (i = 0; !c->conn && i < PG_POOL; i++) {
		if (p->pool[i].busy || !p->pool[i].conn)
			continue;
		libpq.PQfinish(p->pool[i].conn);
		p->pool[i].conn = NULL;
		p->pool[i].prepared = false;
	}
	c->busy = false;
	pthread_cond_signal(&p->freed);
	pthread_mutex_unlock(&p->lock);
}

/* An idle connection has nothing to read; if it has, the server most
 * likely said goodbye (a restart, an administrator's kill) and closed it.
 * Found out now, without a round trip, a change sent in one message with
 * its COMMIT (pg_tx_fast()) does not meet a dead connection. */
static bool idle_ok(PGconn *conn)
{
	struct pollfd pfd = {.fd = libpq.PQsocket(conn), .events = POLLIN};

	return pfd.fd >= 0 && poll(&pfd, 1, 0) == 0;
}

static int pool_get(struct pg_tx *t)
{
	struct pg_layer *p = t->p;
	struct timespec deadline;
	struct pg_conn *c;
	char why[320];
	int rc = 0;

	if (p->snap) {
		/* Its one transaction, or nothing: a new connection would
		 * see another state. */
		t->c = &p->pool[0];
		return t->c->conn ? 0 : -EIO;
	}
	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += PG_POOL_WAIT_SEC;
	pthread_mutex_lock(&p->lock);
	while (!(c = pool_free_slot(p)) && rc == 0)
		rc = pthread_cond_timedwait(&p->freed, &p->lock, &deadline);
	if (c)
		c->busy = true;
	pthread_mutex_unlock(&p->lock);
	if (!c) {
		log_err("%s: %s%s%s: no free connection after %d s", p->shown,
			t->what, t->key ? " " : "", t->key ? t->key : "",
			PG_POOL_WAIT_SEC);
		return -EIO;
	}
	t->c = c;
	if (c->conn && !idle_ok(c->conn)) {
		libpq.PQfinish(c->conn);
		c->conn = NULL;
		c->prepared = false;
	}
	if (!c->conn) {
		rc = pg_connect(p, c, why, sizeof(why));
		if (rc == 0 &&
		    pg_store_prepare_stmts(c->conn, why, sizeof(why)) != 0) {
			log_err("%s: %s", p->shown, why);
			libpq.PQfinish(c->conn);
			c->conn = NULL;
			rc = -EIO;
		}
		if (rc) {
			pool_put(p, c);
			return rc;
		}
		c->prepared = true;
	}
	return 0;
}

void pg_pool_close(struct pg_layer *p)
{
	int i;

	for (i = 0; i < PG_POOL; i++) {
		if (p->pool[i].conn)
			libpq.PQfinish(p->pool[i].conn);
		p->pool[i].conn = NULL;
	}
}

/* ---- transactions -------------------------------------------------- */

/* One attempt; *sent says whether a COMMIT reached the wire. */
static int tx_once(struct pg_tx *t, enum pg_mode mode,
		   int (*fn)(struct pg_tx *t, void *arg), void *arg, bool *sent)
{
	bool write = mode == PG_WRITE || mode == PG_LAZY;
	int rc = 0;

	*sent = false;
	if (t->p->snap) /* already in its transaction, which only reads */
		return write ? -EROFS : fn(t, arg);
	if (mode == PG_READ)
		rc = exec_raw(t, "BEGIN ISOLATION LEVEL REPEATABLE READ "
				 "READ ONLY");
	else if (write)
		rc = pg_pipe_begin(t, mode == PG_LAZY);
	if (rc == 0)
		rc = fn(t, arg);
	if (mode == PG_ONE)
		return rc;
	if (rc == 0 && write)
		rc = pg_pipe_commit(t, sent);
	else if (rc == 0)
		rc = exec_raw(t, "COMMIT");
	if (rc == 0)
		return 0;
	/* Whatever failed, COMMIT did not run: still in the (aborted)
	 * transaction. */
	if (write)
		pg_pipe_abort(t);
	else if (t->c->conn)
		exec_raw(t, "ROLLBACK");
	return rc;
}

/* t, on a connection of the pool. */
static int tx_start(struct pg_tx *t, struct pg_layer *p, const char *what,
		    const char *key)
{
	int rc;

	memset(t, 0, sizeof(*t));
	t->p = p;
	t->what = what;
	t->key = key;
	rc = pool_get(t);
	if (rc)
		log_err("%s: %s%s%s: cannot reach the database", p->shown, what,
			key ? " " : "", key ? key : "");
	return rc;
}

int pg_tx_fast(struct pg_layer *p, bool lazy, const char *what, const char *key,
	       enum pg_stmt stmt, const struct pg_params *pp, PGresult **res)
{
	struct pg_tx t;
	bool broken;
	int rc;

	*res = NULL;
	if (p->snap)
		return 1; /* pg_tx_run() says EROFS */
	rc = tx_start(&t, p, what, key);
	if (rc)
		return rc;
	rc = pg_pipe_begin(&t, lazy);
	if (rc == 0)
		rc = pg_pipe_fast(&t, stmt, pp, res);
	if (rc)
		pg_pipe_abort(&t);
	broken = !t.c->conn;
	if (rc == 0 && lazy) {
		pthread_mutex_lock(&p->lock);
		p->unsynced = true;
		pthread_mutex_unlock(&p->lock);
	}
	pool_put(p, t.c);
	if (broken) {
		log_err("%s: %s %s: lost the connection while committing: the "
			"change may or may not have been made",
			p->shown, what, key);
		return -EIO;
	}
	if (rc == -EAGAIN)
		return 1; /* nothing was made: pg_tx_run() tries again */
	if (rc == 0 && libpq.PQntuples(*res) != 1) {
		libpq.PQclear(*res);
		*res = NULL;
		return 1;
	}
	return rc;
}

static int tx_run(struct pg_layer *p, enum pg_mode mode, const char *what,
		  const char *key, int (*fn)(struct pg_tx *t, void *arg),
		  void *arg)
{
	struct pg_tx t;
	char msg[256];
	bool sent, broken;
	int attempt, rc = -EIO;

	for (attempt = 0; attempt < 4; attempt++) {
		rc = tx_start(&t, p, what, key);
		if (rc)
			return rc;
		rc = tx_once(&t, mode, fn, arg, &sent);
		broken = !t.c->conn;
		if (rc == 0 && mode == PG_LAZY) {
			pthread_mutex_lock(&p->lock);
			p->unsynced = true;
			pthread_mutex_unlock(&p->lock);
		}
		if (broken)
			snprintf(msg, sizeof(msg), "lost the connection");
		pool_put(p, t.c);
		if (rc == -EAGAIN)
			continue;
		if (!broken || rc == 0)
			return rc;
		if (sent) {
			log_err("%s: %s%s%s: %s while committing: the change "
				"may or may not have been made",
				p->shown, what, key ? " " : "", key ? key : "",
				msg);
			return -EIO;
		}
		/* Nothing was committed: once more on a new connection. */
		if (attempt >= 1)
			break;
	}
	log_err("%s: %s%s%s: %s", p->shown, what, key ? " " : "",
		key ? key : "",
		rc == -EAGAIN ? "conflicting transactions, gave up" :
				"cannot reach the database");
	return rc == -EAGAIN ? -EIO : rc;
}

int pg_tx_run(struct pg_layer *p, enum pg_mode mode, const char *what,
	      const char *key, int (*fn)(struct pg_tx *t, void *arg), void *arg)
{
	int rc = tx_run(p, mode, what, key, fn, arg);

	/* What a change of key may have made untrue is not remembered any
	 * more (layer_pg_known.c); even a failed commit may have been made.
	 * A write without a key changes no entry, but clear(), which says
	 * so itself. */
	if (key && (mode == PG_WRITE || mode == PG_LAZY))
		pg_known_forget(p, key);
	return rc;
}
