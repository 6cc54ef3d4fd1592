/*
 * watch.c - the daemon's side of dsfsctl watch (watch.h): the hub that
 * every committed change is offered to, and the watchers it feeds.
 *
 * Changes come from three places: the layer wrapper of watch_layer.c
 * (everything committed to the ephemeral and runtime layers, whether the
 * mount, a dsfsctl command served by control.c, or a factory reset made
 * it), control.c (a new factory image) and remote.c (another host's
 * notices).  With nobody watching, an offer costs one atomic load.
 *
 * Each watcher has a bounded queue of its own (WATCH_QUEUE events, and
 * WATCH_QUEUE_BYTES of their lines, keys being up to 4 KiB long).  A
 * change is formatted once, into a reference-counted event, and queued
 * for every watcher whose filter takes it, under the hub's lock, which
 * nothing holds across I/O: a writer never waits for a watcher.  A
 * watcher whose queue is full loses the event and counts it; the count
 * is sent as {"lost":N} where the events were lost.
 *
 * A thread per watcher sends its queue to its client.  The control thread
 * accepts the request, answers OK, and hands the connection over
 * (watch_begin()), so that it goes back at once to the other dsfsctl
 * commands; each watcher thread then blocks only on its own client, and
 * the watchers are few (WATCH_MAX) and long-lived, which a thread each
 * keeps simpler than one poll loop multiplexing them all.  A thread ends
 * when its client goes (or stops reading while the daemon stops); it is
 * joined by the next request or by watch_stop().
 *
 * Lock order: the stack's lock (held by the layer wrapper's callers),
 * then hub->lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "daemon.h"
#include "log.h"
#include "watch.h"

#define WATCH_QUEUE 4096	     /* events a watcher may fall behind by */
#define WATCH_QUEUE_BYTES (4u << 20) /* ...and bytes of their lines */
#define WATCH_MAX 16		     /* watchers at once */
#define WATCH_BATCH 64		     /* events taken out of a queue at a time */

/* One change, formatted once, shared by the queues that hold it. */
struct watch_event {
	unsigned refs; /* atomic */
	size_t len;
	char *line; /* owned, LF-terminated */
};

struct slot {
	struct watch_event *ev;
	uint64_t lost_before; /* events lost just before this one */
};

struct watcher {
	struct watcher *next; /* hub->list */
	struct watch_hub *hub;
	struct watch_filter filter;
	int sock; /* the client's connection, owned once begun; or -1 */
	int wake; /* eventfd: events queued, or the hub stops */
	pthread_t thread;
	bool started;
	bool gone; /* the thread has ended: join and free it */
	/* Under hub->lock: */
	struct slot q[WATCH_QUEUE];
	size_t head, count;
	size_t bytes;  /* of the queued events' lines */
	uint64_t lost; /* lost since the last queued event */
};

struct watch_hub {
	struct dsfs_ctx *ctx;
	pthread_mutex_t lock; /* guards what follows */
	unsigned active;      /* watchers not gone; read unlocked to skip */
	bool stopping;
	struct watcher *list;
};

static void event_put(struct watch_event *ev)
{
	if (__atomic_sub_fetch(&ev->refs, 1, __ATOMIC_ACQ_REL) == 0) {
		free(ev->line);
		free(ev);
	}
}

static void wake(int fd)
{
	uint64_t one = 1;

	/* Non-blocking: a counter already this high has woken it. */
	if (write(fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return;
}

static bool hub_wanted(struct watch_hub *h)
{
	return h && __atomic_load_n(&h->active, __ATOMIC_ACQUIRE) != 0;
}

bool watch_wanted(struct dsfs_ctx *ctx)
{
	return hub_wanted(ctx->watch);
}

/* Queue ev for w (hub->lock held). */
static void push(struct watcher *w, struct watch_event *ev)
{
	struct slot *s;

	if (w->count == WATCH_QUEUE || w->bytes + ev->len > WATCH_QUEUE_BYTES) {
		w->lost++;
		return;
	}
	w->bytes += ev->len;
	s = &w->q[(w->head + w->count) % WATCH_QUEUE];
	s->ev = ev;
	s->lost_before = w->lost;
	w->lost = 0;
	__atomic_add_fetch(&ev->refs, 1, __ATOMIC_RELAXED);
	if (w->count++ == 0)
		wake(w->wake);
}

/* Made on the control thread: a command of dsfsctl. */
static const char *origin_here(struct dsfs_ctx *ctx)
{
	if (__atomic_load_n(&ctx->control_running, __ATOMIC_ACQUIRE) &&
	    pthread_equal(pthread_self(), ctx->control_thread))
		return "dsfsctl";
	return "mount";
}

/* A rename between a scratch name and an entry is, to a watcher, the
 * entry written (scratch -> entry) or removed (entry -> scratch). */
static bool hide_scratch(struct watch_hub *h, struct watch_change *c)
{
	const char *scratch = h->ctx->stack.scratch;
	bool to = watch_scratch_key(scratch, c->key);
	bool from = c->from && watch_scratch_key(scratch, c->from);

	if (to && (!c->from || from))
		return true;
	if (to) {
		c->key = c->from;
		c->op = "remove";
		c->version = 0;
		c->from = NULL;
	} else if (from) {
		c->op = "write";
		c->from = NULL;
	}
	return false;
}

void watch_offer(struct dsfs_ctx *ctx, const struct watch_change *change)
{
	struct watch_hub *h = ctx->watch;
	struct watch_change c = *change;
	struct watch_event *ev;
	struct watcher *w;

	if (!hub_wanted(h) || hide_scratch(h, &c))
		return;
	clock_gettime(CLOCK_REALTIME, &c.time);
	if (!c.origin)
		c.origin = origin_here(ctx);
	/* Out of memory: counted as lost by every watcher that wanted it. */
	ev = calloc(1, sizeof(*ev));
	if (ev) {
		ev->refs = 1;
		ev->line = watch_format(&c, &ev->len);
		if (!ev->line) {
			free(ev);
			ev = NULL;
		}
	}
	pthread_mutex_lock(&h->lock);
	for (w = h->list; w; w = w->next) {
		if (w->gone ||
		    (!watch_filter_match(&w->filter, c.layer, c.key) &&
		     !(c.from &&
		       watch_filter_match(&w->filter, c.layer, c.from))))
			continue;
		if (ev)
			push(w, ev);
		else
			w->lost++;
	}
	pthread_mutex_unlock(&h->lock);
	if (ev)
		event_put(ev);
}

void watch_told(struct dsfs_ctx *ctx, int layer, const char *key,
		const char *op, uint64_t version, const char *origin)
{
	struct watch_change c = {.key = key,
				 .layer = layer,
				 .op = op,
				 .version = version,
				 .origin = origin};

	watch_offer(ctx, &c);
}

/* Send all of buf, waiting for room while watching w->wake: -ECANCELED
 * once the hub stops, -errno when the client has gone. */
static int send_all(struct watcher *w, const char *buf, size_t len)
{
	struct pollfd p[2] = {{.fd = w->sock, .events = POLLOUT},
			      {.fd = w->wake, .events = POLLIN}};
	uint64_t count;
	ssize_t n;

	while (len > 0) {
		n = send(w->sock, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents & POLLIN) {
			if (read(w->wake, &count, sizeof(count)) < 0 &&
			    errno != EAGAIN)
				return -errno;
			if (__atomic_load_n(&w->hub->stopping,
					    __ATOMIC_ACQUIRE))
				return -ECANCELED;
		}
	}
	return 0;
}

static int send_lost(struct watcher *w, uint64_t n)
{
	char line[64];

	return send_all(w, line, watch_format_lost(line, sizeof(line), n));
}

/* Nothing to send: wait for events, the hub's stop, or the client's
 * end (-EPIPE; anything it sends is ignored). */
static int idle(struct watcher *w)
{
	struct pollfd p[2] = {{.fd = w->sock, .events = POLLIN | POLLRDHUP},
			      {.fd = w->wake, .events = POLLIN}};
	char junk[256];
	uint64_t count;
	ssize_t n;

	if (poll(p, 2, -1) < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents & POLLIN && read(w->wake, &count, sizeof(count)) < 0 &&
	    errno != EAGAIN)
		return -errno;
	if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL | POLLRDHUP))
		return -EPIPE;
	if (p[0].revents & POLLIN) {
		n = recv(w->sock, junk, sizeof(junk), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			return -EPIPE;
	}
	return 0;
}

/* Take up to max queued events; *tail gets the events lost after the
 * last of them when the queue is left empty. */
static size_t take(struct watcher *w, struct slot *out, size_t max,
		   uint64_t *tail, bool *stopping)
{
	struct watch_hub *h = w->hub;
	size_t n = 0;

	pthread_mutex_lock(&h->lock);
	while (n < max && w->count > 0) {
		out[n++] = w->q[w->head];
		w->head = (w->head + 1) % WATCH_QUEUE;
		w->count--;
		w->bytes -= out[n - 1].ev->len;
	}
	*tail = 0;
	if (w->count == 0) {
		*tail = w->lost;
		w->lost = 0;
	}
	*stopping = h->stopping;
	pthread_mutex_unlock(&h->lock);
	return n;
}

static void *watcher_main(void *arg)
{
	struct watcher *w = arg;
	struct slot batch[WATCH_BATCH];
	bool stopping = false;
	uint64_t tail;
	size_t n, i;
	int rc = 0;

	while (rc == 0) {
		n = take(w, batch, WATCH_BATCH, &tail, &stopping);
		if (stopping)
			rc = -ECANCELED;
		else if (n == 0 && tail == 0)
			rc = idle(w);
		for (i = 0; i < n; i++) {
			if (rc == 0 && batch[i].lost_before)
				rc = send_lost(w, batch[i].lost_before);
			if (rc == 0)
				rc = send_all(w, batch[i].ev->line,
					      batch[i].ev->len);
			event_put(batch[i].ev);
		}
		if (rc == 0 && tail)
			rc = send_lost(w, tail);
	}
	log_debug("%s: watch of '%s' ended: %s", w->hub->ctx->store,
		  w->filter.shown, strerror(-rc));
	pthread_mutex_lock(&w->hub->lock);
	w->gone = true;
	__atomic_sub_fetch(&w->hub->active, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&w->hub->lock);
	return NULL;
}

/* Free w, out of the list, its thread joined (if it ran). */
static void watcher_free(struct watcher *w)
{
	size_t i;

	if (w->started)
		pthread_join(w->thread, NULL);
	for (i = 0; i < w->count; i++)
		event_put(w->q[(w->head + i) % WATCH_QUEUE].ev);
	if (w->sock >= 0)
		close(w->sock);
	close(w->wake);
	free(w);
}

/* Take w out of the list (hub->lock held). */
static void unlink_watcher(struct watch_hub *h, struct watcher *w)
{
	struct watcher **p;

	for (p = &h->list; *p; p = &(*p)->next) {
		if (*p == w) {
			*p = w->next;
			return;
		}
	}
}

/* Join and free the watchers whose thread has ended. */
static void reap(struct watch_hub *h)
{
	struct watcher *w, *next, *dead = NULL;

	pthread_mutex_lock(&h->lock);
	for (w = h->list; w; w = next) {
		next = w->next;
		if (w->gone) {
			unlink_watcher(h, w);
			w->next = dead;
			dead = w;
		}
	}
	pthread_mutex_unlock(&h->lock);
	for (w = dead; w; w = next) {
		next = w->next;
		watcher_free(w);
	}
}

int watch_request(struct dsfs_ctx *ctx, const char *path, struct watcher **out,
		  char *msg, size_t size)
{
	struct watch_hub *h = ctx->watch;
	const char *why = NULL;
	struct watcher *w;
	int rc;

	*out = NULL;
	if (!h) {
		snprintf(msg, size, "watch: not available in this daemon");
		return -ENOSYS;
	}
	reap(h);
	w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(msg, size, "watch: out of memory");
		return -ENOMEM;
	}
	rc = watch_filter_parse(path, &w->filter, &why);
	if (rc) {
		snprintf(msg, size, "watch %s: %s", path, why);
		free(w);
		return rc;
	}
	w->hub = h;
	w->sock = -1;
	w->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->wake < 0) {
		rc = -errno;
		snprintf(msg, size, "watch: eventfd: %s", strerror(-rc));
		free(w);
		return rc;
	}
	pthread_mutex_lock(&h->lock);
	if (h->active >= WATCH_MAX) {
		pthread_mutex_unlock(&h->lock);
		snprintf(msg, size, "watch: %d watchers already", WATCH_MAX);
		close(w->wake);
		free(w);
		return -EBUSY;
	}
	/* Queued from now on, so that nothing committed after the OK is
	 * missed while the thread starts. */
	w->next = h->list;
	h->list = w;
	__atomic_add_fetch(&h->active, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&h->lock);
	*out = w;
	return 0;
}

void watch_begin(struct dsfs_ctx *ctx, struct watcher *w, int sock,
		 bool answered)
{
	struct watch_hub *h = ctx->watch;
	int rc = -ECONNABORTED;

	if (answered) {
		w->sock = fcntl(sock, F_DUPFD_CLOEXEC, 0);
		rc = w->sock < 0 ? -errno : 0;
	}
	/* The control thread blocks every signal: so does this one. */
	if (rc == 0)
		rc = -pthread_create(&w->thread, NULL, watcher_main, w);
	if (rc == 0) {
		w->started = true;
		return;
	}
	log_err("%s: watch of '%s' not started: %s", ctx->store,
		w->filter.shown, strerror(-rc));
	pthread_mutex_lock(&h->lock);
	unlink_watcher(h, w);
	__atomic_sub_fetch(&h->active, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&h->lock);
	watcher_free(w);
}

int watch_start(struct dsfs_ctx *ctx)
{
	static const int wrapped[] = {L_EPHEMERAL, L_RUNTIME};
	struct watch_hub *h = calloc(1, sizeof(*h));
	struct dsfs_layer *l;
	size_t i;
	int rc;

	if (!h)
		return -ENOMEM;
	h->ctx = ctx;
	pthread_mutex_init(&h->lock, NULL);
	for (i = 0; i < sizeof(wrapped) / sizeof(wrapped[0]); i++) {
		rc = watch_layer_wrap(ctx, wrapped[i],
				      ctx->stack.layer[wrapped[i]], &l);
		if (rc) {
			while (i-- > 0)
				ctx->stack.layer[wrapped[i]] =
					watch_layer_unwrap(
						ctx->stack.layer[wrapped[i]]);
			pthread_mutex_destroy(&h->lock);
			free(h);
			log_err("%s: watch: %s", ctx->store, strerror(-rc));
			return rc;
		}
		ctx->stack.layer[wrapped[i]] = l;
	}
	ctx->watch = h;
	return 0;
}

void watch_stop(struct dsfs_ctx *ctx)
{
	struct watch_hub *h = ctx->watch;
	struct watcher *w;
	int i;

	if (!h)
		return;
	pthread_mutex_lock(&h->lock);
	__atomic_store_n(&h->stopping, true, __ATOMIC_RELEASE);
	for (w = h->list; w; w = w->next)
		wake(w->wake);
	pthread_mutex_unlock(&h->lock);
	/* Every thread ends now: none waits on anything but its wake. */
	for (w = h->list; w; w = w->next)
		if (w->started)
			pthread_join(w->thread, NULL);
	while ((w = h->list)) {
		h->list = w->next;
		w->started = false; /* joined above */
		watcher_free(w);
	}
	for (i = 0; i < DSFS_NLAYERS; i++)
		ctx->stack.layer[i] = watch_layer_unwrap(ctx->stack.layer[i]);
	ctx->watch = NULL;
	pthread_mutex_destroy(&h->lock);
	free(h);
}
