/*
 * watch.h - dsfsctl watch: one JSON line per committed change, as it
 * happens, whether it came through the mount, from dsfsctl, or from
 * another host of a shared runtime.
 *
 * The pieces:
 *	watch_event.c	(core library) what a change looks like on the wire,
 *			and the PATH filter; the daemon and dsfsctl share it
 *	watch.c		(daemon) the hub: every change is offered to it, and
 *			it hands a copy to each watcher whose filter matches
 *	watch_layer.c	(daemon) the layer wrapper that offers the hub every
 *			change committed to the ephemeral and runtime layers
 *	watch_cli.c	(dsfsctl) the command: through the daemon, or on an
 *			unmounted shared store, on the database's notices
 *
 * A line (one JSON object, LF-terminated):
 *	{"path":"kv/app/n","tree":"kv","layer":"runtime","op":"write",
 *	 "version":7,"time":"2026-12-04T14:30:00.123456Z","origin":"mount"}
 * path is where the entry shows in the mount's merged trees (kv/__ID/x is
 * reported as devices/ID/x, tree "devices"); null, with tree null, when
 * the change is not about one entry (a reset, a new factory image).  op
 * is write, mkdir, remove, whiteout, setattr, rename (with "from": the
 * old path), reset (a layer emptied), install-factory, or change (another
 * host's notice, which carries only the key and its version).  version
 * is the entry's new version, 0 when it has none (a removal).  origin is
 * mount, dsfsctl or remote.  A watcher that fell behind gets one line
 * {"lost":N} where N events were dropped for it.
 */
#ifndef DSFS_WATCH_H
#define DSFS_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "dsfs.h"

/* What a watcher asked for: a subtree of the merged view, perhaps of one
 * layer only (runtime/kv/app). */
struct watch_filter {
	int layer;		  /* L_* only, or -1 for any */
	char key[DSFS_KEY_MAX];	  /* "kv/app", "images": the subtree; "" all */
	bool prefix_only;	  /* "devices": any key starting with key */
	char shown[DSFS_KEY_MAX]; /* the PATH as given, for messages */
};

/* One committed change, as the hub or dsfsctl formats it. */
struct watch_change {
	const char *key;  /* layer key ("kv/__ID/x"), NULL: everything */
	const char *from; /* rename: the old key; else NULL */
	int layer;	  /* L_* */
	const char *op;
	uint64_t version;
	struct timespec time; /* CLOCK_REALTIME */
	const char *origin;
};

/* watch_offline.c: dsfsctl watch on an unmounted store with a local
 * runtime, told of changes by the dsfsctl commands that make them.
 *
 * watch_offline_listen() binds STORE/watchers/PID.sock (*path allocated),
 * watch_offline_unlisten() removes it (and PID.lost); watch_offline_parse() reads one
 * datagram (buf, len bytes) into m, whose strings point into buf.
 * watch_offline_observe() wraps *l, a layer dsfsctl opened on store, so
 * that its changes reach the watchers (if there are none, *l is left as
 * it is); watch_offline_tell() sends them c (a new factory image). */
#define WATCH_OFFLINE_DIR "watchers"
struct dsfs_layer;
struct watch_offline_msg {
	uint64_t lost; /* changes the sender could not send before this */
	struct watch_change c;
};
int watch_offline_listen(const char *store, int *fd, char **path);
void watch_offline_unlisten(int fd, char *path);
/* What senders could not tell the watcher at path by datagram since the
 * last call (they append it to a file beside the socket). */
uint64_t watch_offline_lost_late(const char *path);
int watch_offline_parse(char *buf, size_t len, struct watch_offline_msg *m);
int watch_offline_observe(const char *store, struct dsfs_layer **l);
void watch_offline_tell(const char *store, const struct watch_change *c);

/* watch_event.c */

/* Parse PATH (a path in the mount: "", "kv/app", "devices/ID",
 * "runtime/images", ...; NULL is "") into f.  -EINVAL with *why set (a
 * static string) if it names nothing a change could touch. */
int watch_filter_parse(const char *path, struct watch_filter *f,
		       const char **why);
/* Does f take a change to key (NULL: everything) in layer? */
bool watch_filter_match(const struct watch_filter *f, int layer,
			const char *key);
/* Is any component of key below its tree a scratch name (patterns as
 * scratch_name())?  Those never appear in a watch. */
bool watch_scratch_key(const char *patterns, const char *key);
/* The op a watch line gives for a layer event (struct watch_change's
 * op), or NULL for one that is no line of its own. */
const char *watch_op_name(enum layer_event_op op);
/* The line for c, LF-terminated, in a new buffer (*len bytes, plus a
 * NUL); NULL if out of memory. */
char *watch_format(const struct watch_change *c, size_t *len);
/* The line {"lost":n}, LF-terminated, into buf; returns its length. */
size_t watch_format_lost(char *buf, size_t size, uint64_t n);

#endif
