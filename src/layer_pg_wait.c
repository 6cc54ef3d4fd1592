/*
 * layer_pg_wait.c - how a thread of the PostgreSQL layer waits for the
 * server's answer: it polls its connection for a while before it sleeps.
 *
 * A thread that sleeps in poll() while the server works is woken when
 * the answer arrives, and waking takes tens of microseconds, more on a
 * virtual machine whose idle CPU has halted.  On a server of the same
 * machine or network that is a good part of each round trip, and a
 * create has three.  So while a wait is expected to be short, the thread
 * polls its connection without sleeping (busy polling, as Linux's
 * net.core.busy_poll does for sockets).
 *
 * What it costs is bounded by the waits it polls through.  One thread of
 * the layer polls at a time, the others sleep, so a busy host gives it
 * one CPU at most.  A wait polls for at most twice the recent mean wait
 * of its kind (a statement's answer, a commit's), and not at all when
 * that mean is above p->poll_max_us (-o busy_poll; 0 turns polling off):
 * a server far away answers too late for polling to pay.
 */
#include "layer_pg.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <time.h>

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A turn of the polling loop that took longer than this was another
 * process's turn on the CPU: the CPUs are crowded, and polling would take
 * time from whoever else needs them, the server perhaps.  The layer then
 * sleeps in every wait for PG_CROWDED_NS. */
#define PG_YIELDED_NS (100 * 1000)
#define PG_CROWDED_NS (10 * 1000 * 1000)

/* How long a wait of this kind may poll, in ns (0: not at all). */
static int64_t poll_limit(const struct pg_layer *p, enum pg_wait kind,
			  int64_t now)
{
	unsigned mean = __atomic_load_n(&p->wait_us[kind], __ATOMIC_RELAXED);
	unsigned max = __atomic_load_n(&p->poll_max_us, __ATOMIC_RELAXED);
	int64_t crowded = __atomic_load_n(&p->crowded_ns, __ATOMIC_RELAXED);

	if (max == 0 || mean > max ||
	    (crowded && now - crowded < PG_CROWDED_NS))
		return 0;
	return (int64_t)(2 * mean < max ? 2 * mean : max) * 1000;
}

int64_t pg_wait_begin(struct pg_tx *t, enum pg_wait kind)
{
	struct pg_layer *p = t->p;
	PGconn *conn = t->c->conn;
	int64_t began, limit, last, now;
	int idle = 0;

	if (p->on_wait)
		p->on_wait(p->on_wait_arg);
	/* Off (busy_poll=0, or a layer not told): no clock read, no mean
	 * kept. */
	if (!__atomic_load_n(&p->poll_max_us, __ATOMIC_RELAXED))
		return 0;
	began = last = now_ns();
	limit = poll_limit(p, kind, began);
	if (!conn || limit == 0 ||
	    !__atomic_compare_exchange_n(&p->polling, &idle, 1, false,
					 __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
		return began;
	/* PQconsumeInput() reads what has arrived without waiting (libpq's
	 * sockets do not block); it fails on a broken connection, which the
	 * caller's read of the result then reports.  sched_yield() gives the
	 * CPU to whatever else waits for it, the server's process perhaps;
	 * if that took long, the CPUs are crowded and polling stops. */
	while (libpq.PQisBusy(conn) && libpq.PQconsumeInput(conn)) {
		sched_yield();
		now = now_ns();
		if (now - last > PG_YIELDED_NS) {
			__atomic_store_n(&p->crowded_ns, now, __ATOMIC_RELAXED);
			break;
		}
		if (now - began >= limit)
			break;
		last = now;
	}
	__atomic_store_n(&p->polling, 0, __ATOMIC_RELEASE);
	return began;
}

void pg_wait_end(struct pg_tx *t, enum pg_wait kind, int64_t began)
{
	unsigned *mean = &t->p->wait_us[kind];
	int64_t us;
	unsigned m;

	if (began == 0)
		return; /* polling is off */
	us = (now_ns() - began) / 1000;
	m = __atomic_load_n(mean, __ATOMIC_RELAXED);
	if (us > INT_MAX / 2)
		us = INT_MAX / 2;
	/* A mean over the last eight waits or so.  Two threads may write it
	 * at once and one update be lost: that only blurs it. */
	m = (unsigned)((int64_t)m + (us - (int64_t)m) / 8);
	__atomic_store_n(mean, m, __ATOMIC_RELAXED);
}

int layer_pg_on_wait(struct dsfs_layer *l, void (*fn)(void *), void *arg)
{
	if (!l || l->ops != &pg_ops)
		return -EINVAL;
	to_pg(l)->on_wait_arg = arg;
	to_pg(l)->on_wait = fn;
	return 0;
}

int layer_pg_busy_poll(struct dsfs_layer *l, unsigned usec)
{
	if (!l || l->ops != &pg_ops)
		return -EINVAL;
	__atomic_store_n(&to_pg(l)->poll_max_us, usec, __ATOMIC_RELAXED);
	return 0;
}
