/*
 * control_client.c - dsfsctl's side of the control protocol (control.h),
 * and the few helpers the daemon's side (control.c) shares with it: the
 * socket's address inside the store, peer credentials, sending and
 * receiving within a deadline, and errno names on the wire.
 *
 * It lives in the core library so that dsfsctl and the daemon speak
 * through the same code; it needs nothing but libc.
 */
#include "control.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "dsfs.h"

int64_t control_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait until sock is ready for events, or the deadline passes. */
static int wait_for(int sock, short events, int64_t deadline)
{
	struct pollfd p = {.fd = sock, .events = events};
	int64_t left;
	int n;

	for (;;) {
		left = deadline - control_now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, left > 1000 ? 1000 : (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR)
			return -errno;
	}
}

int control_socket_at(int dirfd, int sock, int listen_side)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int cwd, rc;

	static_assert(sizeof(STORE_SOCKET) <= sizeof(sa.sun_path),
		      "socket name fits sun_path");
	memcpy(sa.sun_path, STORE_SOCKET, sizeof(STORE_SOCKET));
	/* O_PATH: returning must work even where "." is not readable. */
	cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0)
		return -errno;
	if (fchdir(dirfd) != 0) {
		rc = -errno;
		goto out_cwd;
	}
	if (listen_side)
		rc = bind(sock, (struct sockaddr *)&sa, sizeof(sa));
	else
		rc = connect(sock, (struct sockaddr *)&sa, sizeof(sa));
	rc = rc ? -errno : 0;
	/* Failing to return would leave relative paths pointing elsewhere;
	 * with the directory still open that takes a kernel bug. */
	if (fchdir(cwd) != 0 && rc == 0)
		rc = -errno;
out_cwd:
	close(cwd);
	return rc;
}

int control_peer_ids(int sock, uid_t *uid, gid_t *gid)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0)
		return -errno;
	*uid = cred.uid;
	*gid = cred.gid;
	return 0;
}

int control_peer_uid(int sock, uid_t *uid)
{
	gid_t gid;

	return control_peer_ids(sock, uid, &gid);
}

/* Send out[0..len) (out not NULL) or receive in[0..len), all of it,
 * before the deadline.  A peer that closes before all is received is
 * -EPROTO. */
static int move_all(int sock, const char *out, char *in, size_t len,
		    int64_t deadline)
{
	ssize_t n;
	int rc;

	while (len > 0) {
		rc = wait_for(sock, out ? POLLOUT : POLLIN, deadline);
		if (rc)
			return rc;
		/* MSG_NOSIGNAL: a peer that went away must not kill us. */
		n = out ? send(sock, out, len, MSG_NOSIGNAL | MSG_DONTWAIT) :
			  recv(sock, in, len, MSG_DONTWAIT);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n < 0)
			return -errno;
		if (n == 0 && !out)
			return -EPROTO;
		if (out)
			out += n;
		else
			in += n;
		len -= (size_t)n;
	}
	return 0;
}

int control_send(int sock, const void *buf, size_t len, int64_t deadline)
{
	return move_all(sock, buf, NULL, len, deadline);
}

/* The length of the message at the start of buf[0..len) if it is complete:
 * through the first LF for a request, through the status line (the first
 * complete line that does not start with '+') for a reply; else 0. */
static size_t complete(const char *buf, size_t len, int one_line)
{
	const char *line = buf, *lf;

	while ((lf = memchr(line, '\n', len - (size_t)(line - buf)))) {
		if (one_line || line[0] != '+')
			return (size_t)(lf - buf) + 1;
		line = lf + 1;
	}
	return 0;
}

ssize_t control_recv(int sock, char *buf, size_t size, int one_line,
		     int64_t deadline)
{
	size_t len = 0, done;
	ssize_t n;
	int rc;

	assert(size > 1);
	buf[0] = '\0';
	for (;;) {
		done = complete(buf, len, one_line);
		if (done) {
			buf[done] = '\0';
			return (ssize_t)done;
		}
		if (len == size - 1)
			return -EMSGSIZE;
		rc = wait_for(sock, POLLIN, deadline);
		if (rc)
			return rc;
		/* Look first, then take no more than the message: a value
		 * that follows it stays in the socket for control_recv_all(). */
		n = recv(sock, buf + len, size - 1 - len,
			 MSG_PEEK | MSG_DONTWAIT);
		if (n > 0) {
			buf[len + (size_t)n] = '\0';
			done = complete(buf, len + (size_t)n, one_line);
			n = recv(sock, buf + len, done ? done - len : (size_t)n,
				 MSG_DONTWAIT);
		}
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPROTO;
		len += (size_t)n;
		buf[len] = '\0';
	}
}

int control_recv_all(int sock, void *buf, size_t len, int64_t deadline)
{
	return move_all(sock, NULL, buf, len, deadline);
}

const char *control_errname(int err)
{
	const char *name = err > 0 ? strerrorname_np(err) : NULL;

	return name ? name : "EIO";
}

int control_errnum(const char *name)
{
	const char *n;
	int e;

	/* Linux errnos are below 4096 (MAX_ERRNO). */
	for (e = 1; e < 4096; e++) {
		n = strerrorname_np(e);
		if (n && strcmp(n, name) == 0)
			return e;
	}
	return 0;
}

/* Put a one-line reason in reply and return rc: the failure paths of
 * control_request(). */
static int fail(char *reply, size_t size, int rc, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int fail(char *reply, size_t size, int rc, const char *fmt, ...)
{
	va_list ap;

	if (size) {
		va_start(ap, fmt);
		vsnprintf(reply, size, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Turn the reply text in msg (complete, see complete()) into control_
 * request()'s result. */
static int parse_reply(char *msg, char *reply, size_t size)
{
	char *line = msg, *lf, *sp;
	size_t used = 0, n;
	int err;

	for (; (lf = strchr(line, '\n')); line = lf + 1) {
		*lf = '\0';
		if (line[0] != '+')
			break;
		if (strncmp(line, "+ ", 2) != 0)
			return fail(reply, size, -EPROTO,
				    "malformed reply line '%s'", line);
		n = strlen(line + 2);
		if (used + n + 2 > size)
			return fail(reply, size, -EMSGSIZE, "reply too long");
		memcpy(reply + used, line + 2, n);
		reply[used + n] = '\n';
		used += n + 1;
	}
	if (!lf)
		return fail(reply, size, -EPROTO, "reply without status");
	if (strcmp(line, "OK") == 0 || strncmp(line, "OK ", 3) == 0) {
		/* clang-analyzer lets errno be negative, so that wait_for()
		 * could return a positive number and control_recv() count
		 * bytes it never read: msg is always read up to a '\n'. */
		/* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Branch) */
		line += line[2] ? 3 : 2;
		n = strlen(line);
		if (used + n + 1 > size)
			return fail(reply, size, -EMSGSIZE, "reply too long");
		memcpy(reply + used, line, n + 1);
		return 0;
	}
	if (strncmp(line, "ERR ", 4) != 0)
		return fail(reply, size, -EPROTO, "malformed status '%s'",
			    line);
	line += 4;
	sp = strchr(line, ' ');
	if (sp)
		*sp = '\0';
	err = control_errnum(line);
	if (!err)
		return fail(reply, size, -EPROTO, "unknown error name '%s'",
			    line);
	return fail(reply, size, -err, "%s", sp ? sp + 1 : strerror(err));
}

/* The value after an "OK LENGTH ..." status line, in a new buffer. */
static int recv_value(int sock, const char *status, char **data, size_t *dlen,
		      int64_t deadline, char *reply, size_t size)
{
	char text[64];
	unsigned long long n;
	char *end;
	int rc;

	snprintf(text, sizeof(text), "%s", status);
	errno = 0;
	n = strtoull(text, &end, 10);
	if (end == text || errno || n > CONTROL_VALUE_MAX)
		return fail(reply, size, -EPROTO, "bad value length '%s'",
			    text);
	*data = malloc(n ? n : 1);
	if (!*data)
		return fail(reply, size, -ENOMEM, "out of memory");
	rc = control_recv_all(sock, *data, n, deadline);
	if (rc) {
		free(*data);
		*data = NULL;
		return fail(reply, size, rc, "%s: value cut short: %s",
			    STORE_SOCKET, strerror(-rc));
	}
	*dlen = n;
	return 0;
}

int control_request(const char *store, const char *request, char *reply,
		    size_t size)
{
	return control_call(store, request, NULL, 0, NULL, NULL, reply, size,
			    NULL);
}

int control_connect(const char *store, int *out, char *reply, size_t size)
{
	struct timeval tv = {.tv_sec = CONTROL_TIMEOUT};
	struct stat st;
	uid_t peer = (uid_t)-1;
	int dirfd, sock, rc;

	*out = -1;
	dirfd = open(store, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return fail(reply, size, -errno, "%s", strerror(errno));
	if (fstat(dirfd, &st) != 0) {
		rc = fail(reply, size, -errno, "%s", strerror(errno));
		goto out_dir;
	}
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0) {
		rc = fail(reply, size, -errno, "socket: %s", strerror(errno));
		goto out_dir;
	}
	/* Bounds a connect() to a daemon whose backlog is full. */
	setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	rc = control_socket_at(dirfd, sock, 0);
	if (rc == -EAGAIN)
		rc = -ETIMEDOUT;
	if (rc) {
		rc = fail(reply, size, rc, "%s: %s%s", STORE_SOCKET,
			  strerror(-rc),
			  rc == -ENOENT || rc == -ECONNREFUSED ?
				  " (no daemon is serving this store)" :
				  "");
		goto out_sock;
	}
	rc = control_peer_uid(sock, &peer);
	if (rc) {
		rc = fail(reply, size, rc, "%s: SO_PEERCRED: %s", STORE_SOCKET,
			  strerror(-rc));
		goto out_sock;
	}
	if (peer != st.st_uid && peer != 0) {
		rc = fail(reply, size, -EPERM,
			  "%s: served by uid %u, neither the store's owner "
			  "(uid %u) nor root: not trusted",
			  STORE_SOCKET, (unsigned)peer, (unsigned)st.st_uid);
		goto out_sock;
	}
	*out = sock;
	close(dirfd);
	return 0;

out_sock:
	close(sock);
out_dir:
	close(dirfd);
	return rc;
}

int control_call(const char *store, const char *request, const void *body,
		 size_t blen, char **data, size_t *dlen, char *reply,
		 size_t size, bool *answered)
{
	char line[CONTROL_LINE_MAX], msg[CONTROL_REPLY_MAX];
	int64_t deadline = control_now_ms() + CONTROL_TIMEOUT * 1000;
	ssize_t n;
	int sock, rc;

	if (answered)
		*answered = false;
	n = snprintf(line, sizeof(line), "%s\n", request);
	if (n < 0 || (size_t)n >= sizeof(line) || strchr(request, '\n'))
		return fail(reply, size, -EINVAL, "bad request");
	rc = control_connect(store, &sock, reply, size);
	if (rc)
		return rc;
	rc = control_send(sock, line, (size_t)n, deadline);
	if (rc == 0 && blen)
		rc = control_send(sock, body, blen, deadline);
	/* A daemon that refused the request before reading the value has
	 * said why: read that rather than the broken pipe. */
	n = control_recv(sock, msg, sizeof(msg), 0, deadline);
	if (n < 0 && rc) {
		rc = fail(reply, size, rc, "%s: sending '%s': %s", STORE_SOCKET,
			  request, strerror(-rc));
		goto out_sock;
	}
	if (n < 0) {
		rc = fail(reply, size, (int)n, "%s: no reply to '%s': %s",
			  STORE_SOCKET, request, strerror((int)-n));
		goto out_sock;
	}
	if (answered)
		*answered = true;
	rc = parse_reply(msg, reply, size);
	if (rc == 0 && data)
		rc = recv_value(sock, reply, data, dlen, deadline, reply, size);
out_sock:
	close(sock);
	return rc;
}

int control_reply(char *msg, char *reply, size_t size)
{
	return parse_reply(msg, reply, size);
}
