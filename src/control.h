/*
 * control.h - the control protocol between dsfsctl and a mounted dsfs.
 *
 * A mounted daemon owns its store (it holds STORE/lock with flock), so
 * dsfsctl cannot change the store's files behind its back; instead it asks
 * the daemon over a Unix stream socket, STORE/control.sock (STORE_SOCKET),
 * mode 0600 and owned by the store's owner, inside the store directory
 * (itself 0700).  The daemon side is control.c; the client side, and the
 * helpers both sides share, are control_client.c, in the core library.
 *
 * Wire protocol.  One request per connection; text, lines end in LF:
 *
 *	request = command LF			(at most CONTROL_LINE_MAX bytes)
 *	reply	= *( "+" SP text LF ) status LF
 *	status	= "OK" [ SP text ]
 *		/ "ERR" SP errname SP message	(errname: "EPERM", "EINVAL"...)
 *
 *	command		reply on success
 *	ping		OK <pid of the daemon>
 *	usage		+ <layer> <bytes used> <budget in bytes>  (one line per
 *			layer: ephemeral, runtime, factory), then OK
 *	factory-reset	OK	(runtime and ephemeral emptied, whiteouts too)
 *	install-factory	OK	(STORE/factory.db.new, written and fsynced by
 *				the client, is now STORE/factory.db and in use)
 *	admin PID	OK	(dump, load, diff or factory-reset with options,
 *				its arguments in STORE/admin.PID.req, its
 *				output left in STORE/admin.PID.out:
 *				control_admin.c; for "check", OK <number
 *				of problems>: control_check.c)
 *	get PATH	OK <length>, then <length> bytes: the value of the
 *			entry at PATH (a path in the mount, entry.h)
 *	set <length> PATH
 *			the request line is followed by <length> bytes, the
 *			value; OK once it is validated and committed (and
 *			the kernel's caches of PATH dropped), else ERR with
 *			the reason (EINVAL with the byte, ENOSPC with the
 *			budget, EACCES, EROFS ...)
 *	watch [PATH]	OK, then the connection stays open and the daemon
 *			sends one JSON line per committed change under PATH
 *			(a path in the mount; all of it without), until the
 *			client closes or the daemon stops (watch.h)
 *
 * A value is at most CONTROL_VALUE_MAX bytes.  PATH is the rest of the
 * line, so it may hold spaces (not a LF).
 * An unknown command gets "ERR ENOSYS ...".  The daemon serves one
 * connection at a time and waits at most CONTROL_SERVER_TIMEOUT seconds for
 * a request line; the client waits at most CONTROL_TIMEOUT seconds for the
 * whole exchange.
 *
 * Trust.  Each end checks the other with SO_PEERCRED: the daemon answers
 * only the store directory's owner or root (anyone else gets "ERR EPERM"
 * and a log line), and the client talks only to a daemon run by the
 * store's owner or root, so that a socket planted by someone else is not
 * believed.
 *
 * Long store paths.  A store path may be longer than sun_path (108 bytes),
 * so both ends bind or connect to the relative name "control.sock" from
 * inside the store directory (fchdir, then back).  The working directory is
 * per process: these calls must be made while the process is single
 * threaded (the daemon calls control_listen() before the FUSE threads
 * exist; dsfsctl has one thread).
 */
#ifndef DSFS_CONTROL_H
#define DSFS_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONTROL_LINE_MAX 4352 /* a request line: a path of DSFS_KEY_MAX */
#define CONTROL_VALUE_MAX (1ull << 30) /* bytes of one value, either way */
#define CONTROL_REPLY_MAX 4096	       /* a whole reply */
#define CONTROL_TIMEOUT 60	       /* seconds the client waits, in all */
#define CONTROL_SERVER_TIMEOUT 5       /* seconds the daemon waits for a line */

/*
 * Send request (one command, without the LF) to the daemon serving store
 * and wait for its reply.  Returns 0 and the reply's text in reply: the
 * "+" lines without their "+ " (each ending in LF) followed by the OK
 * line's text, if any.  On failure returns a negative errno and leaves a
 * one-line human-readable reason in reply:
 *	-ENOENT, -ECONNREFUSED	no daemon is listening on store
 *	-ETIMEDOUT		no complete reply within CONTROL_TIMEOUT
 *	-EPROTO			the reply did not follow the protocol
 *	-EPERM			the socket is served by neither the store's
 *				owner nor root; or the daemon refused us
 *	other			the errno carried by an ERR reply
 * Changes the working directory while connecting: single-threaded callers
 * only (see above).
 */
int control_request(const char *store, const char *request, char *reply,
		    size_t size);

/* The same, with a value: body[0..blen) is sent after the request line
 * (set), and if data is not NULL the value that follows an OK reply
 * (get) is returned in *data (a new buffer the caller frees) and *dlen,
 * the OK line's text still in reply.  *answered (if not NULL) tells
 * whether the daemon replied: an ERR ENOENT of get is not a missing
 * daemon. */
int control_call(const char *store, const char *request, const void *body,
		 size_t blen, char **data, size_t *dlen, char *reply,
		 size_t size, bool *answered);

/* Connect to the daemon serving store and check that it may be trusted
 * (see Trust): 0 and *sock, or a negative errno as control_request()'s
 * and a one-line reason in reply.  For a request whose reply does not
 * end the exchange (watch).  Single-threaded callers only. */
int control_connect(const char *store, int *sock, char *reply, size_t size);
/* A whole reply received with control_recv() (msg, changed) turned into
 * control_request()'s result: 0 and the OK text, or the errno of ERR with
 * its message, in reply. */
int control_reply(char *msg, char *reply, size_t size);

/* What both ends share (control_client.c). */

/* Milliseconds on CLOCK_MONOTONIC: deadlines are absolute in these. */
int64_t control_now_ms(void);

/* bind() (listen_side) or connect() sock to STORE_SOCKET in the directory
 * dirfd, from inside it.  Single-threaded callers only. */
int control_socket_at(int dirfd, int sock, int listen_side);

/* The uid (and gid) of the process at the other end of the Unix socket
 * sock. */
int control_peer_uid(int sock, uid_t *uid);
int control_peer_ids(int sock, uid_t *uid, gid_t *gid);

/* Send all of buf, or fail: -ETIMEDOUT once deadline (control_now_ms())
 * has passed, -EPIPE if the peer has gone.  Never raises SIGPIPE. */
int control_send(int sock, const void *buf, size_t len, int64_t deadline);

/* Receive one request (one_line) or one whole reply into buf, NUL
 * terminated, and nothing after it.  Returns its length, or -EMSGSIZE if it does not fit in
 * size - 1 bytes, -EPROTO if the peer closed before it was complete,
 * -ETIMEDOUT at the deadline. */
ssize_t control_recv(int sock, char *buf, size_t size, int one_line,
		     int64_t deadline);

/* Receive exactly len bytes (a value after a request or reply line):
 * -EPROTO if the peer closed first, -ETIMEDOUT at the deadline. */
int control_recv_all(int sock, void *buf, size_t len, int64_t deadline);

/* "EPERM" for EPERM ...; "EIO" for a code that has no name. */
const char *control_errname(int err);
/* The positive errno named name, or 0 if it names none. */
int control_errnum(const char *name);

#endif
