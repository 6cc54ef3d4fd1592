/*
 * layer_pg_pipe.c - a write transaction of the PostgreSQL layer in libpq's
 * pipeline mode, so that it costs as few round trips to the server as its
 * decisions allow.
 *
 * A change reads before it decides (does the name exist, is the parent a
 * directory, does it fit the budget) and then writes.  Waiting for each
 * statement's answer made a create six round trips and an unlink four.
 * Here BEGIN and the lock of dsfs_state are sent without waiting and are
 * read with the first statement whose result the operation needs; the
 * writes whose results it does not need (pg_send()) are sent without
 * waiting too, and read with the state row and COMMIT at the end.  A
 * create or an unlink is then two round trips: the reads, and the writes
 * with the commit.
 *
 * What the server does is unchanged: the same statements in the same
 * order in one transaction, which rolls back as a whole.  A statement
 * that fails makes the server skip the rest up to the next sync point;
 * its error is the one reported, whichever later result was being read.
 */
#include "layer_pg.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>

/* What a pending result is, in t->pend[]. */
enum pend {
	PEND_DISCARD, /* pg_send(), BEGIN, ...: only a failure matters */
	PEND_STATE,   /* the locked dsfs_state row: t->used, seq, budget */
	PEND_WANT,    /* the caller's: handed back */
};

/* libpq refused to send: the connection broke, or memory ran out. */
static int send_failed(struct pg_tx *t)
{
	return pg_result(t, NULL, NULL);
}

static int queue(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
		 enum pend kind)
{
	static const struct pg_params none;
	char name[16];

	if (!t->c->conn)
		return -EIO;
	if (!pp)
		pp = &none;
	snprintf(name, sizeof(name), "s%d", (int)stmt);
	if (!libpq.PQsendQueryPrepared(t->c->conn, name, pp->n, pp->val,
				       pp->len, pp->fmt, 1))
		return send_failed(t);
	t->pend[t->npend++] = (unsigned char)kind;
	return 0;
}

static int take_state(struct pg_tx *t, PGresult *r)
{
	if (libpq.PQntuples(r) != 1) {
		libpq.PQclear(r);
		log_err("%s: %s: the dsfs_state row is missing", t->p->shown,
			t->what);
		return -EIO;
	}
	t->used = pg_get_i64(r, 0, 0);
	t->seq = pg_get_i64(r, 0, 1);
	t->budget = pg_budget(t->p, pg_get_i64(r, 0, 2));
	t->state_due = false;
	libpq.PQclear(r);
	return 0;
}

/* The next query's result, and the NULL that ends it. */
static PGresult *next_result(PGconn *conn)
{
	PGresult *r = libpq.PQgetResult(conn), *end;

	if (r && libpq.PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
		end = libpq.PQgetResult(conn);
		libpq.PQclear(
			end); /* NULL, unless the connection is confused */
	}
	return r;
}

/* Send everything queued (a sync point sent it already) and read every
 * pending result; the last, if wanted, goes to *res.  The first failure
 * is returned: the server skipped what came after it. */
static int read_pending(struct pg_tx *t, bool synced, PGresult **res)
{
	enum pg_wait kind = synced ? PG_WAIT_COMMIT : PG_WAIT_READ;
	int i, n = t->npend, rc = 0, one;
	PGresult *r, *kept;
	int64_t began;

	if (res)
		*res = NULL;
	t->npend = 0;
	if (!t->c->conn)
		return -EIO;
	if (!synced && (libpq.PQsendFlushRequest(t->c->conn) != 1 ||
			libpq.PQflush(t->c->conn) != 0))
		return send_failed(t);
	began = pg_wait_begin(t, kind);
	for (i = 0; i < n && t->c->conn; i++) {
		r = next_result(t->c->conn);
		if (r && libpq.PQresultStatus(r) == PGRES_PIPELINE_ABORTED) {
			libpq.PQclear(r); /* skipped after an earlier failure */
			rc = rc ? rc : -EIO;
			continue;
		}
		one = pg_result(t, r, &kept);
		if (one == 0 && t->pend[i] == PEND_STATE)
			one = take_state(t, kept);
		else if (one == 0 && t->pend[i] == PEND_WANT && res && !rc)
			*res = kept;
		else if (one == 0)
			libpq.PQclear(kept);
		if (one && !rc)
			rc = one;
	}
	pg_wait_end(t, kind, began);
	if (!t->c->conn)
		rc = -EIO;
	if (rc && res && *res) {
		libpq.PQclear(*res);
		*res = NULL;
	}
	return rc;
}

int pg_pipe_exec(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
		 PGresult **res)
{
	int rc;

	*res = NULL;
	if (t->npend == PG_MAX_PEND) {
		rc = read_pending(t, false, NULL);
		if (rc)
			return rc;
	}
	rc = queue(t, stmt, pp, PEND_WANT);
	return rc ? rc : read_pending(t, false, res);
}

int pg_send(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp)
{
	int rc;

	if (!t->piped)
		return pg_run(t, stmt, pp, NULL);
	if (t->npend == PG_MAX_PEND) {
		rc = read_pending(t, false, NULL);
		if (rc)
			return rc;
	}
	return queue(t, stmt, pp, PEND_DISCARD);
}

int pg_tx_state(struct pg_tx *t)
{
	return t->state_due ? read_pending(t, false, NULL) : 0;
}

int pg_pipe_begin(struct pg_tx *t, bool lazy)
{
	int rc;

	if (!t->c->conn)
		return -EIO;
	if (libpq.PQenterPipelineMode(t->c->conn) != 1)
		return send_failed(t);
	t->piped = true;
	t->npend = 0;
	rc = queue(t, P_BEGIN, NULL, PEND_DISCARD);
	if (rc == 0 && lazy)
		rc = queue(t, P_LAZY_COMMIT, NULL, PEND_DISCARD);
	if (rc == 0)
		rc = queue(t, P_STATE_LOCK, NULL, PEND_STATE);
	t->state_due = rc == 0;
	return rc;
}

/* Send a sync point and read up to it (a wanted result to *res, if res),
 * then leave pipeline mode. */
static int sync_and_leave(struct pg_tx *t, PGresult **res)
{
	PGresult *r;
	int rc;

	if (!t->c->conn)
		return -EIO;
	if (libpq.PQpipelineSync(t->c->conn) != 1)
		return send_failed(t);
	rc = read_pending(t, true, res);
	if (!t->c->conn)
		return -EIO;
	r = next_result(t->c->conn);
	if (!r || libpq.PQresultStatus(r) != PGRES_PIPELINE_SYNC) {
		/* Not what the protocol promises: start afresh. */
		libpq.PQclear(r);
		libpq.PQfinish(t->c->conn);
		t->c->conn = NULL;
		t->c->prepared = false;
		return -EIO;
	}
	libpq.PQclear(r);
	t->piped = false;
	if (libpq.PQexitPipelineMode(t->c->conn) != 1)
		return send_failed(t);
	return rc;
}

/* sync_and_leave(), and rc if that went well; *res only on success. */
static int finish(struct pg_tx *t, int rc, PGresult **res)
{
	int one = sync_and_leave(t, res);

	rc = rc ? rc : one;
	if (rc && res) {
		libpq.PQclear(*res);
		*res = NULL;
	}
	return rc;
}

int pg_pipe_commit(struct pg_tx *t, bool *sent)
{
	struct pg_params pp = {0};
	int rc = pg_tx_state(t);

	*sent = false;
	if (rc)
		return rc;
	pg_param_i64(&pp, t->used);
	pg_param_i64(&pp, t->seq);
	rc = queue(t, P_STATE_SET, &pp, PEND_DISCARD);
	if (rc == 0)
		rc = queue(t, P_COMMIT, NULL, PEND_DISCARD);
	if (rc)
		return rc;
	*sent = true;
	rc = finish(t, 0, NULL);
	if (rc == 0)
		pg_note_usage(t->p, t->used, t->seq, t->budget);
	return rc;
}

int pg_pipe_fast(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
		 PGresult **res)
{
	int rc = queue(t, stmt, pp, PEND_WANT);

	*res = NULL;
	if (rc == 0)
		rc = queue(t, P_COMMIT, NULL, PEND_DISCARD);
	if (rc == 0)
		rc = finish(t, 0, res);
	if (rc == 0 && libpq.PQntuples(*res) == 1) {
		t->used = pg_get_i64(*res, 0, 0);
		t->seq = pg_get_i64(*res, 0, 1);
		pg_note_usage(t->p, t->used, t->seq, t->budget);
	}
	return rc;
}

void pg_pipe_abort(struct pg_tx *t)
{
	PGresult *r;

	if (!t->c->conn)
		return;
	if (t->piped) {
		/* A ROLLBACK the server skips (after a failure) is made
		 * again below, out of pipeline mode. */
		if (queue(t, P_ROLLBACK, NULL, PEND_DISCARD) == 0)
			finish(t, -EIO, NULL);
		if (t->c->conn && t->piped) {
			/* Stuck in pipeline mode: start afresh. */
			libpq.PQfinish(t->c->conn);
			t->c->conn = NULL;
			t->c->prepared = false;
		}
	}
	if (t->c->conn && !t->piped &&
	    libpq.PQtransactionStatus(t->c->conn) != PQTRANS_IDLE) {
		r = libpq.PQexec(t->c->conn, "ROLLBACK");
		if (libpq.PQresultStatus(r) != PGRES_COMMAND_OK)
			pg_fail_errno(t, r);
		libpq.PQclear(r);
	}
}
