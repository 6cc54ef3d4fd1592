/*
 * control.c - the daemon's side of the control protocol (control.h): the
 * listening socket STORE/control.sock and the one thread that serves it.
 *
 * While dsfs is mounted it holds STORE/lock, so dsfsctl cannot reset the
 * runtime database or replace the factory image itself: it asks here, and
 * the change goes through the stack (ovl_factory_reset, ovl_swap_factory)
 * under the stack's lock, so that FUSE readers see the store before or
 * after it, never half way.  Then the kernel's caches are dropped
 * (dsfs_invalidate_all), so the mount shows the change when the command
 * returns.
 *
 * main.c calls control_listen() before mounting, while the daemon has one
 * thread (binding changes the working directory), control_start() once the
 * layers are open, and control_stop() before it closes them.  The thread
 * serves one connection at a time; each has CONTROL_SERVER_TIMEOUT seconds
 * to send its request and to take its reply, so a stuck client cannot hold
 * the socket for long.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "daemon.h"
#include "entry.h"
#include "log.h"
#include "store.h"

/* What a command answers: "+" lines, then the OK text or ERR message,
 * then (get) a value. */
struct reply {
	char lines[CONTROL_REPLY_MAX / 2];
	size_t len;
	char status[CONTROL_REPLY_MAX / 4];
	char *data; /* owned; sent after an OK status line */
	size_t dlen;
	struct watcher *watcher; /* watch: streams after the OK (watch.c) */
};

/* A request as a command sees it: its arguments (the rest of the line),
 * who asks, and the connection, from which set reads its value. */
struct request {
	const char *args;
	int sock;
	uid_t uid;
	gid_t gid;
};

static void reply_line(struct reply *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void reply_line(struct reply *r, const char *fmt, ...)
{
	size_t room = sizeof(r->lines) - r->len;
	va_list ap;
	int n;

	n = snprintf(r->lines + r->len, room, "+ ");
	va_start(ap, fmt);
	n += vsnprintf(r->lines + r->len + n, room - (size_t)n, fmt, ap);
	va_end(ap);
	/* Only a whole line is kept; the replies are small and bounded. */
	if ((size_t)n + 1 < room) {
		r->lines[r->len + (size_t)n] = '\n';
		r->len += (size_t)n + 1;
	}
	r->lines[r->len] = '\0';
}

/* Set the OK text or ERR message and return rc. */
static int reply_status(struct reply *r, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int reply_status(struct reply *r, int rc, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->status, sizeof(r->status), fmt, ap);
	va_end(ap);
	return rc;
}

static int cmd_ping(struct dsfs_ctx *ctx, struct reply *r,
		    const struct request *q)
{
	(void)q;
	(void)ctx;
	return reply_status(r, 0, "%ld", (long)getpid());
}

static int cmd_usage(struct dsfs_ctx *ctx, struct reply *r,
		     const struct request *q)
{
	(void)q;
	static const char *const names[DSFS_NLAYERS] = {
		[L_EPHEMERAL] = "ephemeral",
		[L_RUNTIME] = "runtime",
		[L_FACTORY] = "factory",
	};
	uint64_t used, budget;
	int i, rc;

	for (i = 0; i < DSFS_NLAYERS; i++) {
		rc = ovl_usage(&ctx->stack, i, &used, &budget);
		if (rc)
			return reply_status(r, rc, "%s layer: %s", names[i],
					    strerror(-rc));
		reply_line(r, "%s %llu %llu", names[i],
			   (unsigned long long)used,
			   (unsigned long long)budget);
	}
	return 0;
}

static int cmd_factory_reset(struct dsfs_ctx *ctx, struct reply *r,
			     const struct request *q)
{
	(void)q;
	int rc;

	rc = ovl_factory_reset(&ctx->stack);
	/* Even a reset that failed half way (runtime emptied, ephemeral
	 * not) has changed what the kernel may have cached. */
	dsfs_invalidate_all(ctx);
	if (rc)
		return reply_status(r, rc, "factory reset failed: %s",
				    strerror(-rc));
	log_info("%s: factory reset", ctx->store);
	return 0;
}

/* The client has written and fsynced STORE/factory.db.new (store.c). */
static int cmd_install_factory(struct dsfs_ctx *ctx, struct reply *r,
			       const struct request *q)
{
	(void)q;
	struct store_error e = {.text = ""};
	struct dsfs_layer *fresh;
	int rc;

	rc = store_take_new_factory(ctx->store, ctx->budget[L_FACTORY], &fresh,
				    &e);
	if (rc)
		reply_status(r, rc, "%s", e.text);
	if (!fresh)
		return rc;
	ovl_swap_factory(&ctx->stack, fresh);
	dsfs_invalidate_all(ctx);
	watch_told(ctx, L_FACTORY, NULL, "install-factory", 0, NULL);
	log_info("%s: new factory image installed", ctx->store);
	return rc;
}

/* get PATH: the value, after "OK LENGTH". */
static int cmd_get(struct dsfs_ctx *ctx, struct reply *r,
		   const struct request *q)
{
	const char *why;
	struct entry e;
	int rc;

	rc = entry_resolve(&ctx->stack, q->args, &e, &why);
	if (rc == 0 && !e.exists)
		rc = -ENOENT;
	if (rc == 0)
		rc = entry_read(&ctx->stack, &e, &r->data, &r->dlen);
	if (rc)
		return reply_status(r, rc, "%s: %s", q->args,
				    why ? why : strerror(-rc));
	return reply_status(r, 0, "%zu", r->dlen);
}

/* Commit value[0..len) at e as q's sender, within the budget that open
 * writers leave (reserve.h), and drop what the kernel cached of it. */
static int set_value(struct dsfs_ctx *ctx, const struct request *q,
		     const struct entry *e, const char *value, size_t len,
		     char *why, size_t size)
{
	struct reservation res;
	int rc;

	rc = entry_may_write(e, q->uid, q->gid, ctx->owner_uid, ctx->owner_gid);
	if (rc)
		return rc;
	reservation_start(&res, e->layer, e->frees, e->names);
	rc = reserve_grow(&ctx->reserve, &ctx->stack, &res, len, why, size);
	if (rc)
		return rc;
	reserve_commit_begin(&ctx->reserve);
	rc = entry_commit(&ctx->stack, e, value, len, q->uid, q->gid, why,
			  size);
	reserve_commit_end(&ctx->reserve, &res, rc == 0, len);
	if (rc == 0)
		notify_changed_key(ctx, e->loc.key);
	return rc;
}

/* set LENGTH PATH, then the value. */
static int cmd_set(struct dsfs_ctx *ctx, struct reply *r,
		   const struct request *q)
{
	int64_t deadline = control_now_ms() + CONTROL_SERVER_TIMEOUT * 1000;
	char why[LAST_ERROR_LEN] = "", *value, *path;
	const char *reason = NULL;
	unsigned long long len;
	struct entry e;
	int rc;

	errno = 0;
	len = strtoull(q->args, &path, 10);
	if (path == q->args || *path != ' ' || errno)
		return reply_status(r, -EINVAL, "usage: set LENGTH PATH");
	path++;
	if (len > ctx->budget[L_RUNTIME] && len > ctx->budget[L_EPHEMERAL])
		return reply_status(r, -ENOSPC,
				    "%s: a value of %llu bytes is over every "
				    "layer's budget",
				    path, len);
	value = malloc(len ? len : 1);
	if (!value)
		return reply_status(r, -ENOMEM, "out of memory");
	rc = control_recv_all(q->sock, value, len, deadline);
	if (rc) {
		reply_status(r, rc, "value cut short: %s", strerror(-rc));
		goto out;
	}
	rc = entry_resolve(&ctx->stack, path, &e, &reason);
	if (rc == 0)
		rc = set_value(ctx, q, &e, value, len, why, sizeof(why));
	else if (reason)
		snprintf(why, sizeof(why), "%s", reason);
	if (rc) {
		if (rc != -EACCES && rc != -EROFS && e.loc.key[0])
			last_error_note(&ctx->errors, e.loc.key, rc,
					why[0] ? why : NULL);
		reply_status(r, rc, "%s: not stored: %s", path,
			     why[0] ? why : strerror(-rc));
		goto out;
	}
	last_error_forget(&ctx->errors, e.loc.key);
out:
	free(value);
	return rc;
}

static const struct command {
	const char *name;
	bool args; /* takes arguments after a space */
	int (*run)(struct dsfs_ctx *ctx, struct reply *r,
		   const struct request *q);
} commands[] = {
	{"ping", false, cmd_ping},
	{"usage", false, cmd_usage},
	{"factory-reset", false, cmd_factory_reset},
	{"install-factory", false, cmd_install_factory},
	{"get", true, cmd_get},
	{"set", true, cmd_set},
};

static int dispatch(struct dsfs_ctx *ctx, const char *request,
		    struct request *q, struct reply *r)
{
	char msg[CONTROL_REPLY_MAX / 4];
	size_t i, n;

	if (strncmp(request, "admin ", 6) == 0) /* control_admin.c */
		return reply_status(
			r, control_admin(ctx, request + 6, msg, sizeof(msg)),
			"%s", msg);
	if (strcmp(request, "watch") == 0 || strncmp(request, "watch ", 6) == 0)
		return reply_status(
			r,
			watch_request(ctx, request[5] ? request + 6 : "",
				      &r->watcher, msg, sizeof(msg)),
			"%s", msg);
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		n = strlen(commands[i].name);
		if (strncmp(request, commands[i].name, n) != 0)
			continue;
		if (request[n] == '\0' && !commands[i].args) {
			q->args = "";
			return commands[i].run(ctx, r, q);
		}
		if (request[n] == ' ' && commands[i].args) {
			q->args = request + n + 1;
			return commands[i].run(ctx, r, q);
		}
	}
	return reply_status(r, -ENOSYS, "unknown command '%s'", request);
}

/* Read one request from the connection c, run it, send the reply. */
static void serve(struct dsfs_ctx *ctx, int c)
{
	int64_t deadline = control_now_ms() + CONTROL_SERVER_TIMEOUT * 1000;
	char request[CONTROL_LINE_MAX], *out, *p;
	struct reply r = {.len = 0};
	struct request q = {.sock = c};
	uid_t uid;
	ssize_t n;
	int rc;

	rc = control_peer_ids(c, &q.uid, &q.gid);
	uid = q.uid;
	if (rc) {
		log_err("%s/%s: SO_PEERCRED: %s", ctx->store, STORE_SOCKET,
			strerror(-rc));
		return;
	}
	n = control_recv(c, request, sizeof(request), 1, deadline);
	if (n < 0 && n != -EMSGSIZE) {
		log_err("%s/%s: no request from uid %u: %s", ctx->store,
			STORE_SOCKET, (unsigned)uid, strerror((int)-n));
		return;
	}
	if (n > 0)
		request[n - 1] = '\0';
	else
		snprintf(request, sizeof(request), "(line too long)");
	/* It goes into log lines: nothing that could fake one. */
	for (p = request; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (uid != ctx->owner_uid && uid != 0) {
		log_err("%s/%s: refused '%s' from uid %u: only the store's "
			"owner (uid %u) or root may ask",
			ctx->store, STORE_SOCKET, request, (unsigned)uid,
			(unsigned)ctx->owner_uid);
		rc = reply_status(&r, -EPERM,
				  "only the store's owner (uid %u) or root "
				  "may ask '%s'",
				  (unsigned)ctx->owner_uid, request);
		goto send;
	}
	if (n < 0)
		rc = reply_status(&r, -EINVAL, "request line too long");
	else
		rc = dispatch(ctx, request, &q, &r);
	if (rc)
		log_err("%s: control request '%s' from uid %u failed: %s",
			ctx->store, request, (unsigned)uid, r.status);
	else
		log_debug("%s: control request '%s' from uid %u: OK %s",
			  ctx->store, request, (unsigned)uid, r.status);
send:
	if (rc)
		n = asprintf(&out, "%sERR %s %s\n", r.lines,
			     control_errname(-rc),
			     r.status[0] ? r.status : strerror(-rc));
	else
		n = asprintf(&out, "%sOK%s%s\n", r.lines,
			     r.status[0] ? " " : "", r.status);
	if (n < 0) {
		log_err("%s: control reply: out of memory", ctx->store);
		return;
	}
	deadline = control_now_ms() + CONTROL_SERVER_TIMEOUT * 1000;
	rc = control_send(c, out, (size_t)n, deadline);
	if (rc == 0 && r.data && r.dlen)
		rc = control_send(c, r.data, r.dlen, deadline);
	if (rc)
		log_warn("%s: control reply to '%s' not delivered: %s",
			 ctx->store, request, strerror(-rc));
	if (r.watcher) /* the stream follows the OK, on its own thread */
		watch_begin(ctx, r.watcher, c, rc == 0);
	free(out);
	free(r.data);
}

static void *control_main(void *arg)
{
	struct dsfs_ctx *ctx = arg;
	struct pollfd p = {.fd = ctx->control_fd, .events = POLLIN};
	int c, n;

	/* control_stop() clears control_running and shuts the socket down,
	 * which wakes poll() at once; the timeout is only a second line of
	 * defence. */
	while (__atomic_load_n(&ctx->control_running, __ATOMIC_ACQUIRE)) {
		n = poll(&p, 1, 1000);
		if (n < 0 && errno != EINTR) {
			log_err("%s/%s: poll: %s; control requests are no "
				"longer served",
				ctx->store, STORE_SOCKET, strerror(errno));
			break;
		}
		if (n <= 0)
			continue;
		if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
			break;
		c = accept4(ctx->control_fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			/* EAGAIN: the client left before we took it; and
			 * out of descriptors: try again after a pause. */
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				poll(NULL, 0, 100);
			continue;
		}
		serve(ctx, c);
		close(c);
	}
	return NULL;
}

int control_listen(struct dsfs_ctx *ctx)
{
	mode_t umask_was;
	int dirfd, sock, rc;

	dirfd = open(ctx->store, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -errno;
		log_err("%s: %s", ctx->store, strerror(-rc));
		return rc;
	}
	/* Non-blocking, so that a client gone between poll() and accept()
	 * does not block the thread. */
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (sock < 0) {
		rc = -errno;
		log_err("%s/%s: socket: %s", ctx->store, STORE_SOCKET,
			strerror(-rc));
		goto out_dir;
	}
	/* We hold STORE/lock, so a socket left here belongs to a daemon
	 * that died: no live one can be using it. */
	if (unlinkat(dirfd, STORE_SOCKET, 0) != 0 && errno != ENOENT) {
		rc = -errno;
		log_err("%s/%s: cannot remove stale socket: %s", ctx->store,
			STORE_SOCKET, strerror(-rc));
		goto out_sock;
	}
	/* The socket is born 0600: no moment in which others could use it
	 * (the directory is 0700 too, but it need not be). */
	umask_was = umask(0177);
	rc = control_socket_at(dirfd, sock, 1);
	umask(umask_was);
	if (rc) {
		log_err("%s/%s: bind: %s", ctx->store, STORE_SOCKET,
			strerror(-rc));
		goto out_sock;
	}
	/* Connecting needs write permission on the socket: a root daemon on
	 * a user's store hands the socket to that user. */
	if (geteuid() != ctx->owner_uid &&
	    fchownat(dirfd, STORE_SOCKET, ctx->owner_uid, ctx->owner_gid,
		     AT_SYMLINK_NOFOLLOW) != 0) {
		rc = -errno;
		log_err("%s/%s: chown to the store's owner: %s", ctx->store,
			STORE_SOCKET, strerror(-rc));
		goto out_unlink;
	}
	if (listen(sock, 8) != 0) {
		rc = -errno;
		log_err("%s/%s: listen: %s", ctx->store, STORE_SOCKET,
			strerror(-rc));
		goto out_unlink;
	}
	ctx->control_fd = sock;
	close(dirfd);
	return 0;

out_unlink:
	unlinkat(dirfd, STORE_SOCKET, 0);
out_sock:
	close(sock);
out_dir:
	close(dirfd);
	return rc;
}

int control_start(struct dsfs_ctx *ctx)
{
	sigset_t all, was;
	int rc;

	if (ctx->control_fd < 0)
		return -EBADF;
	/* The thread takes no signals: FUSE's handlers must run on a thread
	 * that ends the session loop, not on one asleep in poll(). */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &was);
	__atomic_store_n(&ctx->control_running, true, __ATOMIC_RELEASE);
	rc = pthread_create(&ctx->control_thread, NULL, control_main, ctx);
	pthread_sigmask(SIG_SETMASK, &was, NULL);
	if (rc) {
		__atomic_store_n(&ctx->control_running, false,
				 __ATOMIC_RELEASE);
		return -rc;
	}
	return 0;
}

/* The listening socket itself stays open: main.c closes and unlinks it. */
void control_stop(struct dsfs_ctx *ctx)
{
	if (!__atomic_load_n(&ctx->control_running, __ATOMIC_ACQUIRE))
		return;
	__atomic_store_n(&ctx->control_running, false, __ATOMIC_RELEASE);
	shutdown(ctx->control_fd, SHUT_RDWR);
	pthread_join(ctx->control_thread, NULL);
}
