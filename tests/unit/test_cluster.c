/*
 * test_cluster.c - the cluster on PostgreSQL (cluster.h), against a real
 * server: two clusters in one process stand for two hosts.  Locks
 * conflict between them and not within a mode that shares, a wait ends
 * when the holder lets go or when cancelled, a wait abandoned as its
 * holder lets go leaves the key free, a lock whose connection is
 * killed is released for the other host and its unlock says so, news
 * published by one reaches the other (and not itself), and a listening
 * connection killed by the server comes back and says "reset".
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "pg_test.h"
#include "tap.h"

/* What one host was told, and the end of its last wait. */
struct host {
	const char *name;
	struct dsfs_cluster *c;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	char key[64];
	uint64_t version;
	int changes, resets;
	int burst_seen; /* "kv/burst/I" told in order, I from 0 */
	bool burst_ok;
	int waits_ended, wait_rc;
};

static void changed(void *arg, const char *key, uint64_t version)
{
	struct host *h = arg;

	pthread_mutex_lock(&h->lock);
	snprintf(h->key, sizeof(h->key), "%s", key);
	h->version = version;
	if (strncmp(key, "kv/burst/", 9) == 0) {
		if (atoi(key + 9) != h->burst_seen || version != 7)
			h->burst_ok = false;
		h->burst_seen++;
	}
	h->changes++;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void reset(void *arg)
{
	struct host *h = arg;

	pthread_mutex_lock(&h->lock);
	h->resets++;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

static void wait_done(void *arg, struct cluster_lock *lk, int rc)
{
	struct host *h = arg;

	(void)lk;
	pthread_mutex_lock(&h->lock);
	h->waits_ended++;
	h->wait_rc = rc;
	pthread_cond_broadcast(&h->cond);
	pthread_mutex_unlock(&h->lock);
}

/* Wait up to 3 s for *counter to reach at least want. */
static bool wait_for(struct host *h, const int *counter, int want)
{
	struct timespec until;
	bool ok;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += 3;
	pthread_mutex_lock(&h->lock);
	while (*counter < want &&
	       pthread_cond_timedwait(&h->cond, &h->lock, &until) == 0)
		;
	ok = *counter >= want;
	pthread_mutex_unlock(&h->lock);
	return ok;
}

static void open_host(struct host *h, const char *name)
{
	struct cluster_events ev = {changed, reset, h};

	memset(h, 0, sizeof(*h));
	h->name = name;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->cond, NULL);
	if (cluster_pg_open(pg_test_uri(), &ev, &h->c) != 0) {
		printf("Bail out! cluster_pg_open failed\n");
		exit(1);
	}
}

static void close_host(struct host *h)
{
	cluster_close(h->c);
	pthread_cond_destroy(&h->cond);
	pthread_mutex_destroy(&h->lock);
}

static void test_conflicts(struct host *a, struct host *b)
{
	uint64_t k = cluster_key("kv/n");
	struct cluster_lock *la, *lb, *lb2;

	is_int(cluster_lock(a->c, k, true, false, NULL, NULL, &la), 0,
	       "A takes kv/n exclusive");
	is_int(cluster_lock(b->c, k, true, false, NULL, NULL, &lb),
	       -EWOULDBLOCK, "B cannot take it exclusive");
	is_int(cluster_lock(b->c, k, false, false, NULL, NULL, &lb),
	       -EWOULDBLOCK, "nor shared");
	is_int(cluster_lock(b->c, cluster_key("kv/m"), true, false, NULL, NULL,
			    &lb),
	       0, "another key is free");
	is_int(cluster_unlock(b->c, lb), 0, "B lets kv/m go");
	is_int(cluster_unlock(a->c, la), 0, "A lets kv/n go");
	is_int(cluster_lock(b->c, k, true, false, NULL, NULL, &lb), 0,
	       "then B takes it");
	is_int(cluster_unlock(b->c, lb), 0, "and lets it go");

	is_int(cluster_lock(a->c, k, false, false, NULL, NULL, &la), 0,
	       "A shared");
	is_int(cluster_lock(b->c, k, false, false, NULL, NULL, &lb), 0,
	       "B shared at once");
	is_int(cluster_lock(b->c, cluster_key("kv/n"), true, false, NULL, NULL,
			    &lb2),
	       -EWOULDBLOCK, "exclusive refused while A shares it");
	cluster_unlock(a->c, la);
	cluster_unlock(b->c, lb);
}

/* Take key k for h, trying for up to 10 s while another holds it: B's
 * lock thread has to see a grant and let it go, which under valgrind took
 * more than 1 s. */
static int take_within(struct host *h, uint64_t k, struct cluster_lock **l)
{
	int i, rc = -EWOULDBLOCK;

	for (i = 0; i < 1000 && rc == -EWOULDBLOCK; i++) {
		struct timespec ms10 = {0, 10000000};

		rc = cluster_lock(h->c, k, true, false, NULL, NULL, l);
		if (rc == -EWOULDBLOCK)
			nanosleep(&ms10, NULL);
	}
	return rc;
}

static void test_waits(struct host *a, struct host *b)
{
	uint64_t k = cluster_key("kv/w");
	struct cluster_lock *la, *lb;
	int ended, rc;

	is_int(cluster_lock(a->c, k, true, false, NULL, NULL, &la), 0,
	       "A holds kv/w");
	ended = b->waits_ended;
	is_int(cluster_lock(b->c, k, true, true, wait_done, b, &lb),
	       -EINPROGRESS, "B waits for it");
	ok(!wait_for(b, &b->waits_ended, ended + 1) || b->wait_rc != 0,
	   "B is not granted while A holds it");
	is_int(cluster_unlock(a->c, la), 0, "A lets go");
	ok(wait_for(b, &b->waits_ended, ended + 1) && b->wait_rc == 0,
	   "B's wait ends with the lock (rc %d)", b->wait_rc);
	is_int(cluster_lock(a->c, k, false, false, NULL, NULL, &la),
	       -EWOULDBLOCK, "A cannot take what B holds");
	is_int(cluster_unlock(b->c, lb), 0, "B lets go");

	/* A cancelled wait. */
	is_int(cluster_lock(a->c, k, true, false, NULL, NULL, &la), 0,
	       "A holds kv/w again");
	ended = b->waits_ended;
	is_int(cluster_lock(b->c, k, false, true, wait_done, b, &lb),
	       -EINPROGRESS, "B waits, shared");
	cluster_cancel(b->c, lb);
	ok(wait_for(b, &b->waits_ended, ended + 1) && b->wait_rc == -ECANCELED,
	   "the cancelled wait ends with ECANCELED (rc %d)", b->wait_rc);
	is_int(cluster_unlock(b->c, lb), 0, "the ended lock is freed");

	/* An abandoned wait: granted later, released by the cluster. */
	ended = b->waits_ended;
	is_int(cluster_lock(b->c, k, true, true, wait_done, b, &lb),
	       -EINPROGRESS, "B waits again");
	is_int(cluster_unlock(b->c, lb), 0, "and abandons the wait");
	is_int(cluster_unlock(a->c, la), 0, "A lets go");
	rc = take_within(a, k, &la);
	is_int(rc, 0, "an abandoned wait does not keep the key");
	if (rc == 0)
		cluster_unlock(a->c, la);
	ok(b->waits_ended == ended, "no callback for an abandoned wait");
}

/* A wait abandoned just as its holder lets go, many times, in both
 * orders: the cancel that the abandon sends may reach the server as the
 * lock is granted, failing the statement after the session took the
 * lock.  Whichever way each race ends, the key must come free. */
static void test_abandon_races(struct host *a, struct host *b)
{
	enum {
		ROUNDS = 20
	};
	uint64_t k = cluster_key("kv/race");
	struct cluster_lock *la, *lb;
	int round, rc = 0;

	for (round = 0; round < ROUNDS; round++) {
		rc = take_within(a, k, &la);
		if (rc != 0)
			break;
		rc = cluster_lock(b->c, k, true, true, wait_done, b, &lb);
		if (rc != -EINPROGRESS) {
			cluster_unlock(a->c, la);
			break;
		}
		if (round % 2) {
			cluster_unlock(b->c, lb);
			cluster_unlock(a->c, la);
		} else {
			cluster_unlock(a->c, la);
			cluster_unlock(b->c, lb);
		}
	}
	ok(round == ROUNDS,
	   "%d waits abandoned as the holder lets go keep no key (round %d: "
	   "rc %d)",
	   ROUNDS, round, rc);
	rc = take_within(a, k, &la);
	is_int(rc, 0, "... and the key is free after the last");
	if (rc == 0)
		cluster_unlock(a->c, la);
}

static void test_lost(struct host *a, struct host *b)
{
	uint64_t k = cluster_key("kv/lost");
	struct cluster_lock *la, *lb;
	char sql[256];
	int i, rc = -EWOULDBLOCK;

	is_int(cluster_lock(a->c, k, true, false, NULL, NULL, &la), 0,
	       "A holds kv/lost");
	/* The session holding the advisory lock on k dies. */
	snprintf(sql, sizeof(sql),
		 "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE "
		 "locktype = 'advisory' AND granted AND "
		 "(objid::int8 | (classid::int8 << 32)) = "
		 "%lld",
		 (long long)k);
	pg_test_sql(sql);
	for (i = 0; i < 300 && rc == -EWOULDBLOCK; i++) {
		struct timespec ms10 = {0, 10000000};

		rc = cluster_lock(b->c, k, true, false, NULL, NULL, &lb);
		if (rc == -EWOULDBLOCK)
			nanosleep(&ms10, NULL);
	}
	is_int(rc, 0, "B gets the key of A's lost connection");
	if (rc == 0)
		cluster_unlock(b->c, lb);
	is_int(cluster_unlock(a->c, la), -ENOLCK,
	       "A's unlock says the lock was lost");
	is_int(cluster_lock(a->c, k, true, false, NULL, NULL, &la), 0,
	       "A can lock again (a fresh connection)");
	cluster_unlock(a->c, la);
}

static void test_news(struct host *a, struct host *b)
{
	int changes = b->changes, mine = a->changes, resets = b->resets;

	is_int(cluster_publish(a->c, "kv/app/n", 42), 0, "A publishes");
	ok(wait_for(b, &b->changes, changes + 1), "B is told");
	is_str(b->key, "kv/app/n", "of the key");
	ok(b->version == 42, "and the version");
	is_int(cluster_publish(a->c, "kv/with space", 1), 0,
	       "a key with a space");
	ok(wait_for(b, &b->changes, changes + 2) &&
		   strcmp(b->key, "kv/with space") == 0,
	   "arrives whole (%s)", b->key);
	ok(a->changes == mine, "A is not told of its own change");
	is_int(cluster_publish(a->c, NULL, 0), 0, "A publishes a reset");
	ok(wait_for(b, &b->resets, resets + 1), "B is told to reset");
}

/* Many news at once go out gathered, several to a notification: each
 * still arrives whole and in order, whatever bytes its key holds. */
static void test_burst(struct host *a, struct host *b)
{
	enum {
		BURST = 2000
	};
	int changes = b->changes, resets = b->resets, i;
	char key[32], *huge;

	b->burst_seen = 0;
	b->burst_ok = true;
	for (i = 0; i < BURST; i++) {
		snprintf(key, sizeof(key), "kv/burst/%d", i);
		cluster_publish(a->c, key, 7);
	}
	ok(wait_for(b, &b->burst_seen, BURST) && b->burst_ok,
	   "%d news published at once arrive in order", BURST);
	is_int(cluster_publish(a->c, "kv/line\nbreak 12 x\n", 5), 0,
	       "a key with newlines and numbers");
	ok(wait_for(b, &b->changes, changes + BURST + 1) &&
		   strcmp(b->key, "kv/line\nbreak 12 x\n") == 0 &&
		   b->version == 5,
	   "arrives whole");
	huge = malloc(9001);
	memset(huge, 'k', 9000);
	huge[9000] = '\0';
	memcpy(huge, "kv/", 3);
	is_int(cluster_publish(a->c, huge, 6), 0,
	       "a key too long for a notification");
	free(huge);
	ok(wait_for(b, &b->resets, resets + 1),
	   "is told as everything (B resets)");
	usleep(100000);
	is_int(b->resets, resets + 1, "once");
}

static void test_listen_lost(struct host *a, struct host *b)
{
	int resets = b->resets, changes = b->changes;

	pg_test_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
		    "WHERE application_name = 'dsfs listen'");
	ok(wait_for(b, &b->resets, resets + 1),
	   "a listening connection killed comes back and resets");
	is_int(cluster_publish(a->c, "kv/after", 3), 0,
	       "A publishes after the outage");
	ok(wait_for(b, &b->changes, changes + 1) &&
		   strcmp(b->key, "kv/after") == 0,
	   "B hears it (%s)", b->key);
}

int main(void)
{
	struct host a, b;

	plan_no_plan();
	open_host(&a, "A");
	open_host(&b, "B");
	test_conflicts(&a, &b);
	test_waits(&a, &b);
	test_abandon_races(&a, &b);
	test_lost(&a, &b);
	test_news(&a, &b);
	test_burst(&a, &b);
	test_listen_lost(&a, &b);
	close_host(&a);
	close_host(&b);
	return done_testing();
}
