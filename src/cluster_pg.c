/*
 * cluster_pg.c - the cluster of cluster.h on PostgreSQL: a host's locks
 * are session-level advisory locks, and its news of changes travel by
 * NOTIFY on one channel that every host LISTENs to.
 *
 * Locks.  Each key this host holds or waits for has a connection of its
 * own, taken from a small pool of idle ones (or opened) and given back at
 * unlock, so that one key's wait never stops another's unlock, and a
 * session never asks for a key it holds (PostgreSQL would grant it again:
 * the caller arbitrates the processes of this host).  A lock is first
 * tried (pg_try_advisory_lock*); a wait sends pg_advisory_lock* without
 * waiting for the answer, and the lock thread polls every waiting
 * connection and calls back when the answer comes.  A cancel is sent by
 * the lock thread too (PQcancel opens a connection of its own).  The
 * server releases every lock of a connection that closes, so a host that
 * dies, or is cut off, loses its locks at once; it learns of it at the
 * next unlock, which fails.
 *
 * News.  The listen thread owns one connection: it LISTENs on
 * CHANNEL, sends the queued news of this host with pg_notify(), and hands
 * every notification of another session to the events.  Its own
 * notifications come back from its own backend (be_pid) and are dropped.
 * When the connection is lost it reconnects, with a growing pause, and
 * then sends ev.reset: what was published meanwhile is unknown.
 *
 * A notification costs every host a wake-up and the server a transaction,
 * and a busy host publishes one or two per change.  So news is gathered:
 * news that finds the thread idle goes out at once, and news queued
 * within NEWS_GATHER_MS of the last notification waits for that time to
 * pass and goes with the rest in one payload: "VERSION LENGTH KEY\n" for
 * each key (LENGTH its bytes, as a key may hold any byte but NUL), and
 * LENGTH 0 for everything.
 *
 * Lock order: c->lock only; no libpq call is made with it held except
 * PQsocket and the queueing of a cancel.  libpq connections are used by
 * one thread at a time: a waiting lock's by the lock thread, a held
 * lock's and an idle one's by whoever took it out of the lists under
 * c->lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "libpq_dl.h"
#include "log.h"

#define CHANNEL "dsfs_changes"
#define NOTIFY_STMT "notify" /* prepared on the listening connection */
#define POOL_IDLE 4	     /* idle lock connections kept */
#define LOCK_CONNS_MAX 64    /* keys held or waited for at once */
#define NEWS_MAX 4096	     /* queued news; more collapse into "all" */
#define NEWS_GATHER_MS 2     /* the least time between two notifications */
#define PAYLOAD_MAX 7999     /* bytes of one (the server's limit) */
#define RETRY_FIRST_MS 50    /* pauses between reconnections */
#define RETRY_MAX_MS 2000
/* Asked of the server for the connections of this host, so that it drops
 * a silent host's sessions, and with them its locks, within 25 s. */
static const char server_keepalives[] =
	"-c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 "
	"-c tcp_keepalives_count=3";
/* A cancel that reaches the server before the backend has started the
 * call is lost: it is sent again after this long. */
#define CANCEL_AGAIN_MS 100

enum lk_state {
	LK_WAITING, /* pg_advisory_lock sent, answer awaited */
	LK_HELD,
	LK_ENDED /* the wait failed or was cancelled */
};

struct cluster_lock {
	struct pg_cluster *c;
	PGconn *conn; /* owned while held or waiting */
	PGcancel *cancel;
	uint64_t key;
	bool exclusive;
	enum lk_state state;
	bool cancel_asked;   /* cancel() called */
	int64_t cancel_sent; /* when, in ms (now_ms()), 0 for never */
	bool abandoned; /* unlock() called while waiting: the thread frees */
	cluster_lock_cb done;
	void *arg;
	struct cluster_lock *next; /* in c->waiting, while LK_WAITING */
	struct cluster_lock *all_prev, *all_next; /* in c->all */
};

struct news {
	struct news *next;
	uint64_t version;
	char key[]; /* "" for everything */
};

struct pg_cluster {
	struct dsfs_cluster base;
	char *conninfo; /* owned; holds the password if the URI does */
	struct cluster_events ev;
	pthread_mutex_t lock; /* guards everything below */
	bool stopping;
	/* locks */
	struct cluster_lock *all; /* every lock not yet unlocked */
	struct cluster_lock *waiting;
	PGconn *idle[POOL_IDLE];
	size_t nidle;
	unsigned nconns; /* lock connections open, idle ones included */
	int lock_wake;	 /* eventfd: the waiting list changed */
	pthread_t lock_thread;
	/* news */
	struct news *out, **out_tail;
	size_t nout;
	int news_wake;	   /* eventfd: news queued, or stopping */
	PGconn *listening; /* the first listening connection, until the
			    * listen thread takes it */
	pthread_t listen_thread;
};

static void wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0) {
		/* the counter is saturated: a wake is pending anyway */
	}
}

static void drain(int fd)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0) {
		/* nothing pending */
	}
}

static int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void quiet_notice(void *arg, const char *msg)
{
	(void)arg;
	(void)msg;
}

/* The first line of libpq's error: its messages end in a newline, and
 * never hold the password. */
static void log_pq(const char *what, PGconn *conn)
{
	const char *m = conn ? libpq.PQerrorMessage(conn) : "out of memory";
	int len = (int)strcspn(m, "\n");

	log_err("runtime database: %s: %.*s", what, len, m);
}

/* A new connection for `purpose` (its application_name), or NULL, logged.
 * The conninfo's own settings win over these defaults: connect within 5
 * s, and probe a silent TCP peer, both ways, so that a cut-off host is
 * noticed by this one and by the server (which then drops its locks). */
static PGconn *connect_db(struct pg_cluster *c, const char *purpose)
{
	/* keyword, value: the conninfo last, so that its settings win */
	static const char *const kw[] = {"connect_timeout",
					 "keepalives",
					 "keepalives_idle",
					 "keepalives_interval",
					 "keepalives_count",
					 "application_name",
					 "options",
					 "dbname",
					 NULL};
	const char *val[] = {
		"5",	     "1", "10", "5", "3", purpose, server_keepalives,
		c->conninfo, NULL};
	PGconn *conn = libpq.PQconnectdbParams(kw, val, 1);

	if (!conn || libpq.PQstatus(conn) != CONNECTION_OK) {
		log_pq(purpose, conn);
		libpq.PQfinish(conn);
		return NULL;
	}
	libpq.PQsetNoticeProcessor(conn, quiet_notice, NULL);
	return conn;
}

/* ---------------------------------------------------------------- locks */

/* c->all: every lock, so that close can end them.  With c->lock held. */
static void all_add(struct pg_cluster *c, struct cluster_lock *lk)
{
	lk->all_prev = NULL;
	lk->all_next = c->all;
	if (c->all)
		c->all->all_prev = lk;
	c->all = lk;
}

static void all_del(struct pg_cluster *c, struct cluster_lock *lk)
{
	if (lk->all_prev)
		lk->all_prev->all_next = lk->all_next;
	else
		c->all = lk->all_next;
	if (lk->all_next)
		lk->all_next->all_prev = lk->all_prev;
}

/* An idle lock connection, or a new one.  -ENOLCK if none can be had. */
static int take_conn(struct pg_cluster *c, PGconn **out)
{
	PGconn *conn = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->nidle > 0) {
		conn = c->idle[--c->nidle];
	} else if (c->nconns >= LOCK_CONNS_MAX) {
		pthread_mutex_unlock(&c->lock);
		log_err("runtime database: more than %d keys locked at once",
			LOCK_CONNS_MAX);
		return -ENOLCK;
	} else {
		c->nconns++;
	}
	pthread_mutex_unlock(&c->lock);
	if (!conn) {
		conn = connect_db(c, "dsfs lock");
		if (!conn) {
			pthread_mutex_lock(&c->lock);
			c->nconns--;
			pthread_mutex_unlock(&c->lock);
			return -ENOLCK;
		}
	}
	*out = conn;
	return 0;
}

/* Close conn rather than keep it: the server then releases every lock
 * of its session, whatever its statements answered. */
static void drop_conn(struct pg_cluster *c, PGconn *conn)
{
	pthread_mutex_lock(&c->lock);
	c->nconns--;
	pthread_mutex_unlock(&c->lock);
	libpq.PQfinish(conn);
}

/* Give back a connection that holds no lock; a broken one is closed. */
static void give_conn(struct pg_cluster *c, PGconn *conn)
{
	bool keep;

	pthread_mutex_lock(&c->lock);
	keep = libpq.PQstatus(conn) == CONNECTION_OK &&
	       libpq.PQtransactionStatus(conn) == PQTRANS_IDLE &&
	       c->nidle < POOL_IDLE && !c->stopping;
	if (keep)
		c->idle[c->nidle++] = conn;
	else
		c->nconns--;
	pthread_mutex_unlock(&c->lock);
	if (!keep)
		libpq.PQfinish(conn);
}

/* Run one of the advisory lock functions on key: 1 (true), 0 (false), or
 * -ENOLCK when the connection failed. */
static int lock_call(PGconn *conn, const char *fn, uint64_t key)
{
	char sql[64], arg[24];
	const char *params[1] = {arg};
	PGresult *res;
	int rc;

	snprintf(sql, sizeof(sql), "SELECT %s($1::int8)", fn);
	snprintf(arg, sizeof(arg), "%" PRId64, (int64_t)key);
	res = libpq.PQexecParams(conn, sql, 1, NULL, params, NULL, NULL, 0);
	if (libpq.PQresultStatus(res) == PGRES_TUPLES_OK &&
	    libpq.PQntuples(res) == 1) {
		rc = libpq.PQgetvalue(res, 0, 0)[0] == 't';
	} else {
		log_pq(fn, conn);
		rc = -ENOLCK;
	}
	libpq.PQclear(res);
	return rc;
}

/* Try key on a connection of the pool, once more on a fresh connection if
 * a pooled one had died (the server restarted since). */
static int try_lock(struct pg_cluster *c, uint64_t key, bool exclusive,
		    PGconn **out)
{
	const char *fn = exclusive ? "pg_try_advisory_lock" :
				     "pg_try_advisory_lock_shared";
	int attempt, rc = -ENOLCK;

	for (attempt = 0; attempt < 2 && rc == -ENOLCK; attempt++) {
		rc = take_conn(c, out);
		if (rc)
			return rc;
		rc = lock_call(*out, fn, key);
		if (rc != 1)
			give_conn(c, *out);
	}
	return rc;
}

static int pg_lock(struct dsfs_cluster *base, uint64_t key, bool exclusive,
		   bool wait, cluster_lock_cb done, void *arg,
		   struct cluster_lock **out)
{
	struct pg_cluster *c = (struct pg_cluster *)base;
	char karg[24];
	const char *params[1] = {karg};
	struct cluster_lock *lk;
	PGconn *conn;
	int rc;

	lk = calloc(1, sizeof(*lk));
	if (!lk)
		return -ENOMEM;
	lk->c = c;
	lk->key = key;
	lk->exclusive = exclusive;
	lk->done = done;
	lk->arg = arg;
	rc = try_lock(c, key, exclusive, &conn);
	if (rc == 1) {
		lk->conn = conn;
		lk->state = LK_HELD;
		pthread_mutex_lock(&c->lock);
		all_add(c, lk);
		pthread_mutex_unlock(&c->lock);
		*out = lk;
		return 0;
	}
	if (rc == 0 && !wait) {
		free(lk);
		return -EWOULDBLOCK;
	}
	if (rc < 0) {
		free(lk);
		return rc;
	}
	/* Wait: a fresh connection from the pool, the blocking call sent,
	 * its answer polled by the lock thread. */
	rc = take_conn(c, &conn);
	if (rc) {
		free(lk);
		return rc;
	}
	snprintf(karg, sizeof(karg), "%" PRId64, (int64_t)key);
	lk->cancel = libpq.PQgetCancel(conn);
	if (!lk->cancel ||
	    !libpq.PQsendQueryParams(
		    conn,
		    exclusive ? "SELECT pg_advisory_lock($1::int8)" :
				"SELECT pg_advisory_lock_shared($1::int8)",
		    1, NULL, params, NULL, NULL, 0)) {
		log_pq("pg_advisory_lock", conn);
		libpq.PQfreeCancel(lk->cancel);
		give_conn(c, conn);
		free(lk);
		return -ENOLCK;
	}
	lk->conn = conn;
	lk->state = LK_WAITING;
	pthread_mutex_lock(&c->lock);
	all_add(c, lk);
	lk->next = c->waiting;
	c->waiting = lk;
	pthread_mutex_unlock(&c->lock);
	wake(c->lock_wake);
	*out = lk;
	return -EINPROGRESS;
}

static void pg_cancel(struct dsfs_cluster *base, struct cluster_lock *lk)
{
	struct pg_cluster *c = (struct pg_cluster *)base;

	pthread_mutex_lock(&c->lock);
	if (lk->state == LK_WAITING)
		lk->cancel_asked = true;
	pthread_mutex_unlock(&c->lock);
	wake(c->lock_wake);
}

/* Release what lk holds and give its connection back: 0, or -ENOLCK if
 * the connection (and with it the lock) was lost.  A lock granted to a
 * wait that was asked to cancel is released by closing its connection:
 * the cancel may still be on its way, and would fail the unlock, or a
 * later statement of whoever took the connection next. */
static int release(struct pg_cluster *c, struct cluster_lock *lk)
{
	int rc = 0;

	if (lk->state == LK_HELD && !lk->cancel_sent) {
		rc = lock_call(lk->conn,
			       lk->exclusive ? "pg_advisory_unlock" :
					       "pg_advisory_unlock_shared",
			       lk->key);
		rc = rc == 1 ? 0 : -ENOLCK;
	}
	if (lk->conn && (lk->cancel_sent || rc != 0))
		drop_conn(c, lk->conn);
	else if (lk->conn)
		give_conn(c, lk->conn);
	lk->conn = NULL;
	libpq.PQfreeCancel(lk->cancel);
	lk->cancel = NULL;
	return rc;
}

static int pg_unlock(struct dsfs_cluster *base, struct cluster_lock *lk)
{
	struct pg_cluster *c = (struct pg_cluster *)base;

	pthread_mutex_lock(&c->lock);
	if (lk->state == LK_WAITING) {
		/* The lock thread owns the connection now: it frees lk when
		 * the wait ends, releasing the lock if it came. */
		lk->abandoned = lk->cancel_asked = true;
		pthread_mutex_unlock(&c->lock);
		wake(c->lock_wake);
		return 0;
	}
	all_del(c, lk);
	pthread_mutex_unlock(&c->lock);
	if (release(c, lk) != 0) {
		free(lk);
		return -ENOLCK;
	}
	free(lk);
	return 0;
}

/* The answer to a waiting lock's call has come, or its connection broke:
 * 0 held, -ECANCELED, -ENOLCK.  Called by the lock thread without
 * c->lock; lk is off the waiting list. */
static int wait_result(struct cluster_lock *lk)
{
	PGresult *res;
	int rc = -ENOLCK;

	while ((res = libpq.PQgetResult(lk->conn)) != NULL) {
		const char *state =
			libpq.PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (libpq.PQresultStatus(res) == PGRES_TUPLES_OK)
			rc = 0;
		else if (state && strcmp(state, "57014") == 0)
			rc = -ECANCELED; /* query_canceled */
		else
			log_pq("pg_advisory_lock", lk->conn);
		libpq.PQclear(res);
	}
	if (libpq.PQstatus(lk->conn) != CONNECTION_OK)
		rc = -ENOLCK;
	return rc;
}

/* The waiting locks whose answer is complete (or whose connection broke)
 * are taken off the list into *ready.  Called with c->lock held. */
static void collect_ready(struct pg_cluster *c, struct cluster_lock **ready)
{
	struct cluster_lock **p = &c->waiting, *lk;

	while ((lk = *p) != NULL) {
		if (!libpq.PQconsumeInput(lk->conn) ||
		    !libpq.PQisBusy(lk->conn)) {
			*p = lk->next;
			lk->next = *ready;
			*ready = lk;
		} else {
			p = &lk->next;
		}
	}
}

static void finish_wait(struct pg_cluster *c, struct cluster_lock *lk)
{
	int rc = wait_result(lk);

	pthread_mutex_lock(&c->lock);
	lk->state = rc == 0 ? LK_HELD : LK_ENDED;
	pthread_mutex_unlock(&c->lock);
	if (rc != 0) {
		/* Not held, as far as the answer says.  But a cancel that
		 * arrives as the lock is granted fails the statement after
		 * the session took the lock, and a session-level advisory
		 * lock outlives its statement: kept in the pool, the
		 * connection would hold the key for good.  Closing it is the
		 * one sure release. */
		libpq.PQfreeCancel(lk->cancel);
		lk->cancel = NULL;
		drop_conn(c, lk->conn);
		lk->conn = NULL;
	}
	if (lk->abandoned) {
		pthread_mutex_lock(&c->lock);
		all_del(c, lk);
		pthread_mutex_unlock(&c->lock);
		release(c, lk);
		free(lk);
		return;
	}
	lk->done(lk->arg, lk, rc);
}

static void *lock_thread(void *arg)
{
	struct pg_cluster *c = arg;

	for (;;) {
		struct pollfd fds[LOCK_CONNS_MAX + 1];
		PGcancel *cancels[LOCK_CONNS_MAX];
		struct cluster_lock *lk, *ready = NULL;
		nfds_t n = 1;
		size_t i, ncancel = 0;
		int64_t now = now_ms();
		int timeout = -1;
		char err[256];

		fds[0].fd = c->lock_wake;
		fds[0].events = POLLIN;
		pthread_mutex_lock(&c->lock);
		if (c->stopping) {
			pthread_mutex_unlock(&c->lock);
			break;
		}
		for (lk = c->waiting; lk && n <= LOCK_CONNS_MAX;
		     lk = lk->next) {
			fds[n].fd = libpq.PQsocket(lk->conn);
			fds[n].events = POLLIN;
			n++;
			if (!lk->cancel_asked)
				continue;
			timeout = CANCEL_AGAIN_MS;
			if (now - lk->cancel_sent >= CANCEL_AGAIN_MS) {
				lk->cancel_sent = now;
				cancels[ncancel++] = lk->cancel;
			}
		}
		pthread_mutex_unlock(&c->lock);
		/* Only this thread frees a waiting lock (abandoned), so its
		 * PGcancel stays valid here. */
		for (i = 0; i < ncancel; i++)
			if (!libpq.PQcancel(cancels[i], err, sizeof(err)))
				log_err("runtime database: cancel of a lock "
					"wait: %s",
					err);
		if (poll(fds, n, timeout) < 0 && errno != EINTR)
			log_err("runtime database: poll: %s", strerror(errno));
		if (fds[0].revents)
			drain(c->lock_wake);
		pthread_mutex_lock(&c->lock);
		collect_ready(c, &ready);
		pthread_mutex_unlock(&c->lock);
		while ((lk = ready) != NULL) {
			ready = lk->next;
			finish_wait(c, lk);
		}
	}
	return NULL;
}

/* ----------------------------------------------------------------- news */

static int pg_publish(struct dsfs_cluster *base, const char *key,
		      uint64_t version)
{
	struct pg_cluster *c = (struct pg_cluster *)base;
	size_t len = key ? strlen(key) : 0;
	struct news *m = malloc(sizeof(*m) + len + 1);
	bool first;

	if (!m)
		return -ENOMEM;
	m->next = NULL;
	m->version = version;
	memcpy(m->key, key ? key : "", len + 1);
	pthread_mutex_lock(&c->lock);
	first = c->nout == 0;
	if (c->nout >= NEWS_MAX) {
		/* Too much to tell one by one: tell that anything changed
		 * (an empty key), after what is queued. */
		m->key[0] = '\0';
		m->version = 0;
	}
	if (c->nout < NEWS_MAX + 1) {
		*c->out_tail = m;
		c->out_tail = &m->next;
		c->nout++;
		m = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	free(m);
	/* News behind other news needs no wake: the listen thread sleeps
	 * with nothing queued only, and sends what it finds queued. */
	if (first)
		wake(c->news_wake);
	return 0;
}

/* One item of a payload, at p (room for cap bytes): its length, 0 if it
 * does not fit.  key "" is everything. */
static size_t put_item(char *p, size_t cap, uint64_t version, const char *key)
{
	size_t len = strlen(key);
	char head[48];
	int n = snprintf(head, sizeof(head), "%" PRIu64 " %zu ", version, len);

	if (n < 0 || (size_t)n + len + 1 >= cap)
		return 0;
	memcpy(p, head, (size_t)n);
	memcpy(p + n, key, len);
	p[n + len] = '\n';
	p[n + len + 1] = '\0';
	return (size_t)n + len + 1;
}

/* The payload of the news at the head of the queue, into buf (of
 * PAYLOAD_MAX + 1 bytes): how many it holds, at least 1 (a key too long
 * for a payload of its own is told as everything), 0 if none is queued. */
static size_t gather(struct pg_cluster *c, char *buf)
{
	size_t n = 0, used = 0, one;
	struct news *m;

	pthread_mutex_lock(&c->lock);
	for (m = c->out; m; m = m->next, n++) {
		one = put_item(buf + used, PAYLOAD_MAX + 1 - used, m->version,
			       m->key);
		if (one == 0 && n == 0)
			one = put_item(buf, PAYLOAD_MAX + 1, 0, "");
		if (one == 0)
			break;
		used += one;
	}
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Send the queued news on conn: 0, or -EIO if the connection failed (what
 * was not sent stays queued, in order). */
static int send_news(struct pg_cluster *c, PGconn *conn)
{
	char buf[PAYLOAD_MAX + 1];
	size_t n;

	while ((n = gather(c, buf)) > 0) {
		const char *params[1] = {buf};
		PGresult *res = libpq.PQexecPrepared(conn, NOTIFY_STMT, 1,
						     params, NULL, NULL, 0);
		bool ok = libpq.PQresultStatus(res) == PGRES_TUPLES_OK;

		libpq.PQclear(res);
		if (!ok) {
			log_pq("notify", conn);
			return -EIO;
		}
		/* Only this thread takes from the head. */
		pthread_mutex_lock(&c->lock);
		while (n-- > 0) {
			struct news *m = c->out;

			c->out = m->next;
			c->nout--;
			free(m);
		}
		if (!c->out)
			c->out_tail = &c->out;
		pthread_mutex_unlock(&c->lock);
	}
	return 0;
}

/* Whether queued news is due: true once NEWS_GATHER_MS have passed since
 * the last notification (at last_ms); otherwise *timeout is how long to
 * wait for that (-1: nothing queued). */
static bool news_due(struct pg_cluster *c, int64_t last_ms, int *timeout)
{
	int64_t now = now_ms();
	bool queued;

	pthread_mutex_lock(&c->lock);
	queued = c->out != NULL;
	pthread_mutex_unlock(&c->lock);
	*timeout = -1;
	if (!queued)
		return false;
	if (now - last_ms >= NEWS_GATHER_MS)
		return true;
	*timeout = (int)(last_ms + NEWS_GATHER_MS - now);
	return false;
}

/* Tell the events of each item of a payload (libpq's copy, written on:
 * each key's newline becomes its end); a payload that does not parse (a
 * dsfs that speaks otherwise) is told as everything. */
static void tell(struct pg_cluster *c, char *p)
{
	while (*p) {
		char *end, *key;
		uint64_t version = strtoull(p, &end, 10);
		size_t len;

		if (*end != ' ')
			break;
		len = strtoull(end + 1, &key, 10);
		if (*key != ' ' || strnlen(key + 1, len + 1) != len + 1 ||
		    key[1 + len] != '\n')
			break;
		key++;
		if (len == 0) {
			c->ev.reset(c->ev.arg);
		} else {
			key[len] = '\0';
			c->ev.changed(c->ev.arg, key, version);
		}
		p = key + len + 1;
	}
	if (*p)
		c->ev.reset(c->ev.arg);
}

/* Hand the notifications libpq has read to the events. */
static void deliver(struct pg_cluster *c, PGconn *conn)
{
	int self = libpq.PQbackendPID(conn);
	PGnotify *n;

	while ((n = libpq.PQnotifies(conn)) != NULL) {
		if (n->be_pid != self)
			tell(c, n->extra);
		libpq.PQfreemem(n);
	}
}

/* A connection that listens, or NULL (logged). */
static PGconn *listen_conn(struct pg_cluster *c)
{
	PGconn *conn = connect_db(c, "dsfs listen");
	PGresult *res;

	if (!conn)
		return NULL;
	/* A notification's transaction has an XID, so its commit would wait
	 * for a WAL flush, and the commits of this host's changes behind it.
	 * It needs no durability: what it tells is durable already, and a
	 * listener that lost it drops every cache when it reconnects. */
	res = libpq.PQexec(conn,
			   "SET synchronous_commit = off; LISTEN " CHANNEL);
	if (libpq.PQresultStatus(res) == PGRES_COMMAND_OK) {
		libpq.PQclear(res);
		/* Parsed once: every change of this host sends it. */
		res = libpq.PQprepare(conn, NOTIFY_STMT,
				      "SELECT pg_notify('" CHANNEL "', $1)", 1,
				      NULL);
	}
	if (libpq.PQresultStatus(res) != PGRES_COMMAND_OK) {
		log_pq("LISTEN", conn);
		libpq.PQclear(res);
		libpq.PQfinish(conn);
		return NULL;
	}
	libpq.PQclear(res);
	return conn;
}

/* Wait up to ms for a wake; true if stopping. */
static bool pause_or_stop(struct pg_cluster *c, int ms)
{
	struct pollfd p = {.fd = c->news_wake, .events = POLLIN};
	bool stop;

	if (poll(&p, 1, ms) > 0)
		drain(c->news_wake);
	pthread_mutex_lock(&c->lock);
	stop = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return stop;
}

static void *listen_thread(void *arg)
{
	struct pg_cluster *c = arg;
	PGconn *conn = c->listening; /* set before the thread started */
	int retry = RETRY_FIRST_MS;
	int64_t last_ms = 0; /* of the last notification sent */

	for (;;) {
		struct pollfd p[2];
		int timeout;

		if (!conn) {
			if (pause_or_stop(c, retry))
				break;
			retry = retry * 2 > RETRY_MAX_MS ? RETRY_MAX_MS :
							   retry * 2;
			conn = listen_conn(c);
			if (!conn)
				continue;
			log_info("runtime database: listening again: "
				 "dropping every cache");
			c->ev.reset(c->ev.arg);
			retry = RETRY_FIRST_MS;
		}
		if (news_due(c, last_ms, &timeout)) {
			bool sent = send_news(c, conn) == 0;

			last_ms = now_ms();
			if (!sent) {
				libpq.PQfinish(conn);
				conn = NULL;
				continue;
			}
			news_due(c, last_ms, &timeout);
		}
		if (libpq.PQstatus(conn) != CONNECTION_OK) {
			libpq.PQfinish(conn);
			conn = NULL;
			continue;
		}
		deliver(c, conn);
		p[0].fd = c->news_wake;
		p[0].events = POLLIN;
		p[1].fd = libpq.PQsocket(conn);
		p[1].events = POLLIN;
		if (poll(p, 2, timeout) < 0 && errno != EINTR)
			log_err("runtime database: poll: %s", strerror(errno));
		if (p[0].revents)
			drain(c->news_wake);
		pthread_mutex_lock(&c->lock);
		if (c->stopping) {
			pthread_mutex_unlock(&c->lock);
			/* What was published before the close still goes out:
			 * dsfsctl publishes its change and closes at once, and
			 * the close may be what woke this thread. */
			(void)send_news(c, conn);
			break;
		}
		pthread_mutex_unlock(&c->lock);
		if (p[1].revents && (!libpq.PQconsumeInput(conn) ||
				     libpq.PQstatus(conn) != CONNECTION_OK)) {
			log_err("runtime database: the connection that "
				"listens for other hosts' changes was lost: "
				"reconnecting");
			libpq.PQfinish(conn);
			conn = NULL;
			continue;
		}
		deliver(c, conn);
	}
	libpq.PQfinish(conn);
	return NULL;
}

/* ---------------------------------------------------------------- setup */

static void pg_close(struct dsfs_cluster *base)
{
	struct pg_cluster *c = (struct pg_cluster *)base;
	struct cluster_lock *lk;
	struct news *m;

	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	pthread_mutex_unlock(&c->lock);
	wake(c->lock_wake);
	wake(c->news_wake);
	pthread_join(c->lock_thread, NULL);
	pthread_join(c->listen_thread, NULL);
	/* Closing their connections ends every wait and releases every
	 * lock on the server. */
	while ((lk = c->all) != NULL) {
		c->all = lk->all_next;
		libpq.PQfreeCancel(lk->cancel);
		libpq.PQfinish(lk->conn);
		free(lk);
	}
	while (c->nidle > 0)
		libpq.PQfinish(c->idle[--c->nidle]);
	while ((m = c->out) != NULL) {
		c->out = m->next;
		free(m);
	}
	close(c->lock_wake);
	close(c->news_wake);
	pthread_mutex_destroy(&c->lock);
	free(c->conninfo);
	free(c);
}

static const struct dsfs_cluster_ops pg_cluster_ops = {
	.version = DSFS_CLUSTER_OPS_VERSION,
	.lock = pg_lock,
	.cancel = pg_cancel,
	.unlock = pg_unlock,
	.publish = pg_publish,
	.close = pg_close,
};

int cluster_pg_open(const char *conninfo, const struct cluster_events *ev,
		    struct dsfs_cluster **out)
{
	struct pg_cluster *c;
	PGconn *conn;
	int rc = libpq_load(NULL, 0);

	if (rc)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->base.ops = &pg_cluster_ops;
	c->ev = *ev;
	c->out_tail = &c->out;
	c->lock_wake = c->news_wake = -1;
	pthread_mutex_init(&c->lock, NULL);
	c->conninfo = strdup(conninfo);
	c->lock_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->news_wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!c->conninfo || c->lock_wake < 0 || c->news_wake < 0)
		goto fail;
	conn = listen_conn(c);
	if (!conn) {
		free(c->conninfo);
		close(c->lock_wake);
		close(c->news_wake);
		pthread_mutex_destroy(&c->lock);
		free(c);
		return -ENOLCK;
	}
	/* The connection that checked the database listens from now on:
	 * the listen thread owns it. */
	c->listening = conn;
	if (pthread_create(&c->listen_thread, NULL, listen_thread, c) != 0) {
		libpq.PQfinish(conn);
		goto fail;
	}
	if (pthread_create(&c->lock_thread, NULL, lock_thread, c) != 0) {
		pthread_mutex_lock(&c->lock);
		c->stopping = true;
		pthread_mutex_unlock(&c->lock);
		wake(c->news_wake);
		pthread_join(c->listen_thread, NULL);
		goto fail;
	}
	*out = &c->base;
	return 0;

fail:
	if (c->lock_wake >= 0)
		close(c->lock_wake);
	if (c->news_wake >= 0)
		close(c->news_wake);
	pthread_mutex_destroy(&c->lock);
	free(c->conninfo);
	free(c);
	return -ENOMEM;
}
