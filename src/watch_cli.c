/*
 * watch_cli.c - dsfsctl watch STORE [PATH]: print one JSON line per
 * committed change (watch.h) until interrupted.
 *
 * On a mounted store the daemon sends the lines ("watch PATH" on the
 * control socket, watch.c) and this copies them to standard output as
 * they come.  On a store that is not mounted here:
 *   - with a shared runtime (STORE/runtime.uri names a database), the
 *     other hosts and dsfsctl on any host publish every change there
 *     (cluster.h), so this listens to those notices itself, through
 *     cluster_pg.c, and prints them as the daemon would ("change" lines,
 *     origin "remote"; "reset" when news may have been missed);
 *   - with a local runtime nothing but dsfsctl itself can change the
 *     store, so the dsfsctl commands that change it tell this one
 *     (watch_offline.c), with origin "dsfsctl".  If the store is mounted
 *     meanwhile, the daemon is asked from then on (checked every second).
 *
 * Ending: SIGINT or SIGTERM, standard output closed (EPIPE), or the end of
 * the daemon's stream (it unmounted) all end the command with status 0.
 * The signals are blocked except while waiting in ppoll(), so that one
 * arriving at any moment ends the wait; the handler has nothing to do.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster.h"
#include "control.h"
#include "dsfsctl.h"
#include "watch.h"

#define RELAY_BUF (128 * 1024) /* a read; a line from the database */

/* The listener of an unmounted shared store: its notices become lines,
 * sent as datagrams to the main thread, never waiting for it. */
struct listener {
	int fd; /* the sending end of a datagram socketpair */
	struct watch_filter filter;
	uint64_t lost; /* only the cluster's listen thread uses it */
};

static void on_signal(int sig)
{
	(void)sig; /* it has interrupted ppoll(): that is all it is for */
}

/* Wait for fd to be ready for events with SIGINT and SIGTERM let in:
 * 1 when ready, 0 when one of them came, -errno on failure. */
static int wait_fd(int fd, short events, const sigset_t *open)
{
	struct pollfd p = {.fd = fd, .events = events};

	if (ppoll(&p, 1, NULL, open) >= 0)
		return 1;
	return errno == EINTR ? 0 : -errno;
}

/* Write buf to standard output: 1 when written, 0 when a signal came or
 * the reader has gone (EPIPE), -errno on failure.  A pipe that polls
 * writable takes PIPE_BUF bytes without blocking, so writes are cut at
 * that size, and a signal is never kept waiting by a stalled reader. */
static int put(const char *buf, size_t len, const sigset_t *open)
{
	size_t chunk;
	ssize_t n;
	int rc;

	while (len > 0) {
		rc = wait_fd(STDOUT_FILENO, POLLOUT, open);
		if (rc <= 0)
			return rc;
		chunk = len < PIPE_BUF ? len : PIPE_BUF;
		n = write(STDOUT_FILENO, buf, chunk);
		if (n < 0 && errno == EPIPE)
			return 0;
		if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
		}
	}
	return 1;
}

/* Copy what comes on in to standard output until the end: 0, or -errno
 * with e set. */
static int relay(int in, const char *what, const sigset_t *open,
		 struct store_error *e)
{
	char *buf = malloc(RELAY_BUF);
	ssize_t n;
	int rc = 1;

	if (!buf)
		return store_fail(e, -ENOMEM, "out of memory");
	while (rc > 0) {
		rc = wait_fd(in, POLLIN, open);
		if (rc <= 0)
			break;
		n = read(in, buf, RELAY_BUF);
		if (n == 0)
			break; /* the daemon has stopped: the stream ends */
		if (n < 0) {
			if (errno != EAGAIN && errno != EINTR)
				rc = -errno;
			continue;
		}
		rc = put(buf, (size_t)n, open);
	}
	free(buf);
	if (rc < 0 && rc != -ECONNRESET)
		return store_fail(e, rc, "%s: %s", what, strerror(-rc));
	return 0;
}

/* Send line (len bytes) to the main thread, or count it lost. */
static void pass(struct listener *li, const char *line, size_t len)
{
	char lost[64];
	size_t n;

	if (li->lost) {
		n = watch_format_lost(lost, sizeof(lost), li->lost);
		if (send(li->fd, lost, n, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			li->lost++;
			return;
		}
		li->lost = 0;
	}
	if (send(li->fd, line, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
		li->lost++;
}

static void heard(struct listener *li, const char *key, const char *op,
		  uint64_t version)
{
	struct watch_change c = {.key = key,
				 .layer = L_RUNTIME,
				 .op = op,
				 .version = version,
				 .origin = "remote"};
	size_t len;
	char *line;

	if (!watch_filter_match(&li->filter, L_RUNTIME, key) ||
	    watch_scratch_key(DSFS_SCRATCH_DEFAULT, key))
		return;
	clock_gettime(CLOCK_REALTIME, &c.time);
	line = watch_format(&c, &len);
	if (line)
		pass(li, line, len);
	else
		li->lost++;
	free(line);
}

static void heard_change(void *arg, const char *key, uint64_t version)
{
	heard(arg, key, "change", version);
}

static void heard_reset(void *arg)
{
	heard(arg, NULL, "reset", 0);
}

static int watch_daemon(const char *store, int sock, const char *path,
			const sigset_t *open, struct store_error *e);

/* A {"lost":N} line, if n. */
static int show_lost(uint64_t n, const sigset_t *open)
{
	char lost[64];

	return n ? put(lost, watch_format_lost(lost, sizeof(lost), n), open) :
		   1;
}

/* One datagram of a dsfsctl command: its line, after a {"lost":N} line
 * if the sender could not send some before it. */
static int show_offline(char *buf, size_t n, const struct watch_filter *f,
			const sigset_t *open)
{
	struct watch_offline_msg m;
	size_t len;
	char *line;
	int rc;

	if (watch_offline_parse(buf, n, &m) != 0)
		return 1; /* not from dsfsctl: ignored */
	rc = show_lost(m.lost, open);
	if (rc <= 0 || strcmp(m.c.op, "end") == 0 ||
	    !watch_filter_match(f, m.c.layer, m.c.key) ||
	    (m.c.key && watch_scratch_key(DSFS_SCRATCH_DEFAULT, m.c.key)))
		return rc;
	line = watch_format(&m.c, &len);
	if (!line)
		return -ENOMEM;
	rc = put(line, len, open);
	free(line);
	return rc;
}

/* The store is not mounted, its runtime is local: the lines come from the
 * dsfsctl commands that change it, until the store is mounted. */
static int watch_local(const char *store, const struct watch_filter *f,
		       const sigset_t *open, struct store_error *e)
{
	struct timespec second = {1, 0};
	char reply[CONTROL_REPLY_MAX];
	char *buf, *path;
	struct pollfd p;
	int fd, sock, rc;
	ssize_t n;

	rc = watch_offline_listen(store, &fd, &path);
	if (rc)
		return store_fail(e, rc, "%s/%s: cannot listen: %s", store,
				  WATCH_OFFLINE_DIR, strerror(-rc));
	buf = malloc(RELAY_BUF);
	rc = buf ? 1 : -ENOMEM;
	while (rc > 0) {
		p = (struct pollfd){.fd = fd, .events = POLLIN};
		rc = ppoll(&p, 1, &second, open);
		if (rc < 0) {
			rc = errno == EINTR ? 0 : -errno;
			break;
		}
		if (rc == 0) {
			rc = show_lost(watch_offline_lost_late(path), open);
			if (rc <= 0)
				break;
			if (control_connect(store, &sock, reply,
					    sizeof(reply)) != 0)
				continue;
			/* Mounted now: the daemon tells of the changes. */
			watch_offline_unlisten(fd, path);
			fd = -1;
			path = NULL;
			rc = watch_daemon(store, sock, f->shown, open, e);
			close(sock);
			free(buf);
			return rc;
		}
		n = recv(fd, buf, RELAY_BUF, 0);
		if (n < 0)
			rc = errno == EINTR || errno == EAGAIN ? 1 : -errno;
		else
			rc = show_offline(buf, (size_t)n, f, open);
	}
	free(buf);
	watch_offline_unlisten(fd, path);
	if (rc < 0)
		return store_fail(e, rc, "%s: watch: %s", store, strerror(-rc));
	return 0;
}

/* The store is not mounted here: listen to its database, if it has one. */
static int watch_database(const char *store, const struct watch_filter *f,
			  const sigset_t *open, struct store_error *e)
{
	struct listener li = {.fd = -1, .filter = *f};
	struct cluster_events ev = {heard_change, heard_reset, &li};
	char *runtime = store_recorded_runtime(store);
	struct dsfs_cluster *c;
	int fds[2], rc;

	if (!runtime || strcmp(runtime, "memory") == 0) {
		free(runtime);
		return watch_local(store, f, open, e);
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds) != 0) {
		rc = store_fail(e, -errno, "socketpair: %s", strerror(errno));
		goto out;
	}
	li.fd = fds[1];
	rc = cluster_pg_open(runtime, &ev, &c);
	if (rc) {
		store_fail(e, rc,
			   "%s: cannot listen to the runtime database's "
			   "changes: %s",
			   store, strerror(-rc));
		goto out_pair;
	}
	rc = relay(fds[0], "runtime database", open, e);
	cluster_close(c);
out_pair:
	close(fds[0]);
	close(fds[1]);
out:
	free(runtime);
	return rc;
}

/* The daemon serving store: ask it, then copy its stream. */
static int watch_daemon(const char *store, int sock, const char *path,
			const sigset_t *open, struct store_error *e)
{
	int64_t deadline = control_now_ms() + CONTROL_TIMEOUT * 1000;
	char line[CONTROL_LINE_MAX], msg[CONTROL_REPLY_MAX];
	char reply[CONTROL_REPLY_MAX];
	ssize_t n;
	int rc;

	n = snprintf(line, sizeof(line), "watch%s%s\n", *path ? " " : "", path);
	if (n < 0 || (size_t)n >= sizeof(line))
		return store_fail(e, -ENAMETOOLONG, "%s: path too long", path);
	rc = control_send(sock, line, (size_t)n, deadline);
	if (rc)
		return store_fail(e, rc, "%s: %s: sending the request: %s",
				  store, STORE_SOCKET, strerror(-rc));
	n = control_recv(sock, msg, sizeof(msg), 0, deadline);
	if (n < 0)
		return store_fail(e, (int)n, "%s: %s: no reply: %s", store,
				  STORE_SOCKET, strerror((int)-n));
	rc = control_reply(msg, reply, sizeof(reply));
	if (rc)
		return store_fail(e, rc, "%s: %s", store, reply);
	return relay(sock, STORE_SOCKET, open, e);
}

int watch_store(const char *store, const char *path, struct store_error *e)
{
	struct sigaction sa = {.sa_handler = on_signal}, ign = {0};
	char reply[CONTROL_REPLY_MAX];
	struct watch_filter f;
	sigset_t stop, open;
	const char *why;
	struct store s;
	int sock, rc;

	rc = watch_filter_parse(path, &f, &why);
	if (rc)
		return store_fail(e, rc, "%s: %s", path, why);
	rc = store_open(&s, store, false, true, e);
	store_close(&s);
	if (rc)
		return rc;
	/* SIGINT and SIGTERM only interrupt ppoll(); a closed standard
	 * output is EPIPE from write().  Blocked before the cluster's
	 * threads start, so that they are never the ones to take them. */
	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, &open);
	sigdelset(&open, SIGINT);
	sigdelset(&open, SIGTERM);
	rc = control_connect(store, &sock, reply, sizeof(reply));
	if (rc == 0) {
		rc = watch_daemon(store, sock, f.shown, &open, e);
		close(sock);
	} else if (rc == -ENOENT || rc == -ECONNREFUSED) {
		rc = watch_database(store, &f, &open, e);
	} else {
		rc = store_fail(e, rc, "%s: %s", store, reply);
	}
	return rc;
}
