/*
 * fuse_loop.c - the session's threads (unless -o busy_poll=0): one of them
 * reads the FUSE device at a time, and the one that served the last
 * request polls the device for the next instead of sleeping.
 *
 * A request that finds the mount's threads asleep wakes one, and on a
 * virtual machine, whose idle CPU halts, waking takes tens of
 * microseconds; a create is six requests.  Yet a program that works
 * through files one after another sends its next request a few
 * microseconds after the answer to its last.  So the thread that answered
 * keeps reading the device, which does not block here, for busy_poll µs
 * (busy polling, as layer_pg_wait.c does for a server's answers), then
 * sleeps in poll().
 *
 * libfuse's loop cannot do that: each of its threads sleeps in a read of
 * the device, and the kernel wakes one for each request, however soon
 * another thread would have read it.  Here only the leader reads the
 * device; the others, followers, sleep on a condition variable.  The
 * leader that takes a request becomes its server, and nobody reads the
 * device until it is done, or until a follower is made leader:
 *   - by fuse_loop_waiting(), which a layer calls before it waits for a
 *     server (a PostgreSQL runtime), when a request is queued already;
 *   - by the main thread, which looks every LOOP_TICK_MS while a request
 *     is served, and makes a follower leader when requests being served
 *     have left the device unread for that long: a request that waits
 *     for anything else (the disk, a request the kernel holds back until
 *     another is answered) delays the others by about that much at most.
 * A server done with its request leads again if nobody does, and follows
 * otherwise.  So a program that sends one request at a time is served by
 * one thread that never sleeps while it works, and several programs get
 * more threads as their requests wait, up to max_threads.
 *
 * A turn of the polling loop that waited 100 µs for the CPU means the
 * CPUs are crowded, and polling would take time from the very program it
 * waits for: for the next 10 ms nobody polls.
 *
 * Lock order: l->lock only, never held across a read of the device or a
 * request.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"

#define LOOP_TICK_MS 1
#define YIELDED_NS (100 * 1000)
#define CROWDED_NS (10 * 1000 * 1000)

struct fuse_loop {
	struct fuse_session *se;
	int fd;	   /* the session's device, made non-blocking */
	int flags; /* its flags before */
	int stop;  /* eventfd, written once: the threads are to stop */
	int tick;  /* eventfd: the main thread is to look again */
	int64_t poll_ns;
	unsigned max_threads;
	pthread_mutex_t lock;
	pthread_cond_t follow; /* a follower is made leader, or stopping */
	bool leading;	       /* a thread leads, or one was made leader */
	bool token;	       /* a thread was made leader, not yet leading */
	bool stopping;
	unsigned threads, idle; /* started; following */
	unsigned serving;	/* requests being served */
	int64_t unread_since;	/* nobody leads since (ns), while serving */
	bool watcher_asleep;	/* the main thread waits for a request */
	int64_t crowded_until;	/* no polling until then (the leader's) */
	int error;		/* of the first failed wait, negative */
	bool spawn_failed;	/* a thread could not be started (logged) */
	pthread_t *tids;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void wake(int fd)
{
	uint64_t one = 1;

	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("fuse loop: eventfd: %s", strerror(errno));
}

static void drain(int fd)
{
	uint64_t n;

	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_err("fuse loop: eventfd: %s", strerror(errno));
}

static void *loop_thread(void *arg);

/* Make another thread leader: a follower, or a new thread.  l->lock held,
 * nobody leading. */
static void lead_elsewhere(struct fuse_loop *l)
{
	sigset_t ending, old;
	int rc;

	if (l->stopping)
		return;
	l->leading = true;
	l->token = true;
	if (l->idle > 0) {
		pthread_cond_signal(&l->follow);
		return;
	}
	if (l->threads >= l->max_threads) {
		/* All serve: the first done leads. */
		l->leading = l->token = false;
		return;
	}
	/* The signals that end the session are the main thread's. */
	sigemptyset(&ending);
	sigaddset(&ending, SIGTERM);
	sigaddset(&ending, SIGINT);
	sigaddset(&ending, SIGHUP);
	sigaddset(&ending, SIGQUIT);
	pthread_sigmask(SIG_BLOCK, &ending, &old);
	rc = pthread_create(&l->tids[l->threads], NULL, loop_thread, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc == 0) {
		l->threads++;
		return;
	}
	l->leading = l->token = false;
	/* Tried again at the main thread's next look: said once. */
	if (!l->spawn_failed)
		log_err("fuse loop: cannot start a thread (%u serve): %s; "
			"requests wait for those",
			l->threads, strerror(rc));
	l->spawn_failed = true;
}

/* The leader's wait for a request, into buf: polling first if it served
 * one just now (polled).  Returns fuse_session_receive_buf()'s result, 0
 * when stopping. */
static int next_request(struct fuse_loop *l, struct fuse_buf *buf, bool polled)
{
	int64_t began = now_ns(), last = began;

	for (;;) {
		struct pollfd p[2] = {{.fd = l->fd, .events = POLLIN},
				      {.fd = l->stop, .events = POLLIN}};
		int res = fuse_session_receive_buf(l->se, buf);
		int64_t now;

		if (res != -EAGAIN && res != -EINTR)
			return res;
		if (fuse_session_exited(l->se))
			return 0;
		if (polled) {
			/* Whatever else waits for this CPU goes first; if
			 * that took long, the CPUs are crowded. */
			sched_yield();
			now = now_ns();
			if (now - last > YIELDED_NS) {
				l->crowded_until = now + CROWDED_NS;
				polled = false;
			} else if (now - began >= l->poll_ns) {
				polled = false;
			}
			last = now;
			if (polled)
				continue;
		}
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents)
			return 0; /* stopping */
	}
}

static void *loop_thread(void *arg)
{
	struct fuse_loop *l = arg;
	struct fuse_buf buf;
	bool polled = false; /* served a request just now */
	int res;

	memset(&buf, 0, sizeof(buf));
	pthread_mutex_lock(&l->lock);
	while (!l->stopping) {
		if (l->token) {
			l->token = false; /* made leader (or took the role) */
		} else if (!l->leading) {
			l->leading = true;
		} else {
			/* Someone leads: follow, until made leader. */
			polled = false;
			l->idle++;
			while (!l->token && !l->stopping)
				pthread_cond_wait(&l->follow, &l->lock);
			l->idle--;
			continue;
		}
		pthread_mutex_unlock(&l->lock);
		res = next_request(l, &buf,
				   polled && now_ns() >= l->crowded_until);
		pthread_mutex_lock(&l->lock);
		l->leading = false;
		if (res <= 0) {
			if (res < 0 && !l->error)
				l->error = res;
			l->stopping = true;
			pthread_cond_broadcast(&l->follow);
			wake(l->stop);
			break;
		}
		l->serving++;
		l->unread_since = now_ns();
		if (l->watcher_asleep) {
			l->watcher_asleep = false;
			wake(l->tick);
		}
		pthread_mutex_unlock(&l->lock);
		fuse_session_process_buf(l->se, &buf);
		polled = true;
		pthread_mutex_lock(&l->lock);
		l->serving--;
	}
	pthread_mutex_unlock(&l->lock);
	free(buf.mem);
	return NULL;
}

void fuse_loop_waiting(void *arg)
{
	struct fuse_loop *l = arg;
	struct pollfd p = {.fd = __atomic_load_n(&l->fd, __ATOMIC_RELAXED),
			   .events = POLLIN};

	/* Nothing queued (the common case): no lock taken.  Before and after
	 * the session runs, fd is -1, which poll() skips. */
	if (poll(&p, 1, 0) <= 0)
		return;
	pthread_mutex_lock(&l->lock);
	if (!l->leading)
		lead_elsewhere(l);
	pthread_mutex_unlock(&l->lock);
}

int fuse_loop_new(struct fuse_session *se, unsigned usec, unsigned max_threads,
		  struct fuse_loop **out)
{
	struct fuse_loop *l = calloc(1, sizeof(*l));

	*out = NULL;
	if (!l)
		return -ENOMEM;
	l->tids = calloc(max_threads, sizeof(*l->tids));
	l->stop = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	l->tick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!l->tids || l->stop < 0 || l->tick < 0) {
		int rc = l->tids ? -errno : -ENOMEM;

		free(l->tids);
		if (l->stop >= 0)
			close(l->stop);
		if (l->tick >= 0)
			close(l->tick);
		free(l);
		return rc;
	}
	l->se = se;
	l->fd = -1;
	l->poll_ns = (int64_t)usec * 1000;
	l->max_threads = max_threads ? max_threads : 1;
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->follow, NULL);
	*out = l;
	return 0;
}

/* The main thread's part while the session runs: make another thread
 * leader when the requests being served have left the device unread for
 * LOOP_TICK_MS.  While none is served it looks once a second only (a
 * signal that ends the session may come just before its poll), and the
 * next request taken wakes it.  Returns when the session ends. */
static void watch(struct fuse_loop *l)
{
	struct pollfd p[2] = {{.fd = l->tick, .events = POLLIN},
			      {.fd = l->stop, .events = POLLIN}};

	for (;;) {
		int64_t now;
		int ms;

		pthread_mutex_lock(&l->lock);
		if (l->stopping || fuse_session_exited(l->se)) {
			pthread_mutex_unlock(&l->lock);
			return;
		}
		now = now_ns();
		if (!l->leading && l->serving > 0 &&
		    now - l->unread_since >= LOOP_TICK_MS * 1000000LL)
			lead_elsewhere(l);
		l->watcher_asleep = l->serving == 0;
		ms = l->watcher_asleep ? 1000 : LOOP_TICK_MS;
		pthread_mutex_unlock(&l->lock);
		if (poll(p, 2, ms) > 0 && p[0].revents)
			drain(l->tick);
	}
}

int fuse_loop_run(struct fuse_loop *l)
{
	int fd = fuse_session_fd(l->se), rc;
	unsigned i;

	l->flags = fcntl(fd, F_GETFL);
	if (l->flags < 0 || fcntl(fd, F_SETFL, l->flags | O_NONBLOCK) < 0)
		return -errno;
	__atomic_store_n(&l->fd, fd, __ATOMIC_RELAXED);
	log_info("busy_poll=%lld: one thread reads the kernel's requests at "
		 "a time, and polls for the next after each",
		 (long long)(l->poll_ns / 1000));
	pthread_mutex_lock(&l->lock);
	lead_elsewhere(l); /* the first thread */
	rc = l->threads ? 0 : -EAGAIN;
	pthread_mutex_unlock(&l->lock);
	if (rc == 0)
		watch(l);
	pthread_mutex_lock(&l->lock);
	l->stopping = true;
	pthread_cond_broadcast(&l->follow);
	pthread_mutex_unlock(&l->lock);
	wake(l->stop);
	for (i = 0; i < l->threads; i++)
		pthread_join(l->tids[i], NULL);
	fcntl(fd, F_SETFL, l->flags);
	/* The layers call fuse_loop_waiting() until they close, after the
	 * session: the device may be closed by then, its number reused. */
	__atomic_store_n(&l->fd, -1, __ATOMIC_RELAXED);
	fuse_session_reset(l->se);
	return rc ? rc : l->error;
}

void fuse_loop_free(struct fuse_loop *l)
{
	if (!l)
		return;
	pthread_cond_destroy(&l->follow);
	pthread_mutex_destroy(&l->lock);
	close(l->stop);
	close(l->tick);
	free(l->tids);
	free(l);
}
