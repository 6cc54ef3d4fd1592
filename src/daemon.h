/*
 * daemon.h - the daemon's one context, and what its files (main.c, the
 * FUSE glue and the daemon's pieces it calls, control.c) say to each other.
 *
 * Everything the daemon changes while it runs hangs off struct dsfs_ctx:
 * there is no other mutable global state (log.c's destination aside, which
 * is set once at start-up).
 */
#ifndef DSFS_DAEMON_H
#define DSFS_DAEMON_H

#include <fuse_lowlevel.h>
#include <stdio.h>
#include <sys/stat.h>

#include "dirlist.h"
#include "handle.h"
#include "dsfs.h"
#include "inode.h"
#include "last_error.h"
#include "reserve.h"

struct handle;
struct flocks;
struct dsfs_cluster;
struct watch_hub;
struct watch_change;
struct watcher;

/* The bytes of the image a writer committed last, kept from its release
 * for the first page-cache reader of the same token (pagecache.c). */
struct recent_image {
	pthread_mutex_t lock;
	char token[DSFS_TOKEN_LEN + 1];
	char *buf; /* owned; NULL when none is kept */
	size_t len, cap;
};

/* The one push of a committing image writer's copy into the kernel's
 * pages (pagecache_push.c): a slot its thread serves.  Fields under lock. */
struct page_push {
	pthread_mutex_t lock;
	pthread_cond_t wake; /* a push is queued, or the thread is to stop */
	pthread_cond_t done; /* the push under way is done */
	pthread_t thread;
	bool running, stopping;
	bool stop_push; /* the commit is over (read without the lock) */
	int state;	/* PUSH_IDLE, PUSH_QUEUED, PUSH_BUSY, PUSH_DONE */
	uint64_t ino;
	const char *buf;
	size_t len;
	int rc; /* of the push done */
};

struct dsfs_ctx {
	/* Set up by main.c before the session starts; read-only after. */
	char *store;   /* absolute path of the store directory */
	char *runtime; /* -o runtime=: NULL for sqlite (store.h) */
	uint64_t budget[DSFS_NLAYERS];
	bool runtime_size_given; /* a shared runtime records it for all */
	unsigned busy_poll;	 /* -o busy_poll, µs (shared runtime) */
	double timeout;		 /* kernel cache timeout for the merged trees */
	double attr_timeout;	 /* the same for their attributes alone */
	uid_t owner_uid; /* owner of the store: of the fixed directories */
	gid_t owner_gid;
	struct timespec started;
	int lock_fd;	/* STORE/lock, flock()ed while mounted */
	int control_fd; /* listening socket STORE/control.sock, or -1 */

	struct dsfs_stack stack;
	struct node_table nodes;
	struct dirlists dirs;
	struct fuse_session *se;
	pthread_t control_thread;
	bool control_running;
	/* A shared runtime (remote.c): the other hosts, and flock() across
	 * them.  NULL otherwise; set before the session starts. */
	struct dsfs_cluster *cluster;
	/* The runtime layer under the cluster's wrapper, told what the
	 * other hosts change (layer_forget()): it outlives the wrapper. */
	struct dsfs_layer *shared;
	/* Directory handles open now (fuse_ops.c), so that those the kernel
	 * never releases (its connection ended first) are freed at exit. */
	pthread_mutex_t open_dirs_lock;
	struct dir_handle *open_dirs;
	/* The same for file handles (file.c). */
	pthread_mutex_t open_files_lock;
	struct handle *open_files;
	/* Bumped (atomically) before what another host changed is dropped
	 * from the kernel's caches: see fresh_timeout(). */
	uint64_t elsewhere_gen;
	struct flocks *flocks;
	/* Open writers' reservations (reserve.h), and why recent writes were
	 * refused (last_error.h): set up by main.c before the session. */
	struct reserve_table reserve;
	struct last_errors errors;
	/* dsfsctl watch (watch.c): set by watch_start() before the session
	 * and remote_start(), cleared by watch_stop(); NULL without it. */
	struct watch_hub *watch;
	/* At most one image's bytes, 1 MiB (pagecache.c). */
	struct recent_image recent;
	struct page_push push;
	/* The large buffer a freed copy left for the next (handle.h). */
	struct handle_spare spare;
	/* -o inode_cache (evict.c): the thread that keeps the node table
	 * within it, and its names being dropped. */
	pthread_t evict_thread;
	bool evict_running;
	struct node_name *evict_batch;
	uint64_t *evict_inos; /* the batch's inodes, for notify_prune() */
	/* The kernel takes FUSE_NOTIFY_PRUNE (protocol 7.45); cleared at
	 * its first refusal. */
	bool can_prune;
	/* The session's threads (fuse_loop.c); NULL with busy_poll=0 or -s,
	 * whose requests libfuse's loops serve. */
	struct fuse_loop *loop;
};

/* fuse_ops.c */
struct dir_handle;
/* Free the directory handles still open when the session has ended. */
void fuse_ops_free_dirs(struct dsfs_ctx *ctx);
extern const struct fuse_lowlevel_ops dsfs_ll_ops;

/* setattr.c: the SETATTR request (truncate, chmod, chown, utimens). */
void dsfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi);

/* notify.c: the kernel's caches.  Called with no lock of ours held, so a
 * request the kernel waits for can be served. */
/* Drop the attributes and cached pages of inode ino. */
void notify_inode(struct dsfs_ctx *ctx, uint64_t ino);
/* Drop the attributes of inode ino only. */
void notify_attrs(struct dsfs_ctx *ctx, uint64_t ino);
/* Drop the kernel's unused entries for these inodes, in one message, so
 * that it forgets them: 0, or a negative errno if the kernel refused it
 * (-EINVAL from a kernel that does not know the message). */
int notify_prune(struct dsfs_ctx *ctx, const uint64_t *inos, size_t count);
/* Make the kernel drop the attributes of the merged node that key names
 * now, if it knows one. */
void notify_key(struct dsfs_ctx *ctx, const struct loc *l);
/* After a change to key through a tree other than the merged one, make the
 * kernel drop what it cached of the merged node for the same key; with
 * entry, also its name and its directory's listing (a name made or
 * removed). */
void notify_alias(struct dsfs_ctx *ctx, const struct loc *l, bool entry);
/* A value at key was changed without the mount (dsfsctl set): drop the
 * merged node's attributes, pages and name, and its directory's
 * listing. */
void notify_changed_key(struct dsfs_ctx *ctx, const char *key);
/* Tell the kernel to forget everything it cached below the fixed
 * directories (after a factory install or reset). */
void dsfs_invalidate_all(struct dsfs_ctx *ctx);
/* Another host changed key: drop what the kernel cached of its merged
 * node, its name, and its directory's listing. */
void notify_remote(struct dsfs_ctx *ctx, const char *key);

/* attrs.c: a node as the kernel and the log see it. */
const char *layer_name(int layer); /* "ephemeral", "runtime", "factory" */
/* The path of a loc as the user sees it, for log lines. */
const char *loc_path(const struct loc *l, char *buf, size_t size);
/* Log "PATH[/name]: what: why" (why NULL: the reason of rc). */
void log_fail(const struct loc *l, const char *name, const char *what, int rc,
	      const char *why);
/* How long the kernel may cache n's entry, and its attributes. */
double timeout_of(struct dsfs_ctx *ctx, const struct node *n);
double attr_timeout_of(struct dsfs_ctx *ctx, const struct node *n);
/* ctx->attr_timeout where names are asked again at every walk (the
 * default on a shared runtime): attrs.c says why. */
#define WALK_ATTR_TIMEOUT 0.01
/* How long for what never changes while mounted: the root's and the layer
 * directories' attributes, and the names in them (kv, runtime, ...). */
#define FIXED_TIMEOUT 86400.0
/* elsewhere_now() at the start of a LOOKUP or GETATTR; fresh_timeout()
 * at its reply: attr_timeout_of(), or 0 if another host's change was dropped
 * from the kernel's caches meanwhile, since the reply may hold what it
 * replaced and would otherwise be cached after the drop. */
uint64_t elsewhere_now(struct dsfs_ctx *ctx);
double fresh_timeout(struct dsfs_ctx *ctx, const struct node *n,
		     uint64_t since);
/* The root, the layer directories, the trees' roots and .by-token. */
bool is_fixed(const struct node *n);
void fixed_stat(struct dsfs_ctx *ctx, struct node *n, struct stat *st);
void attr_stat(uint64_t ino, const struct dsfs_attr *a, struct stat *st);
/* attr_stat() of what node n was found to be, a directory's link count
 * counted (2 plus its subdirectories). */
void entry_stat(struct dsfs_ctx *ctx, struct node *n, const struct found *f,
		struct stat *st);
/* Look up what node n stands for now.  A child of devices/ must be a
 * directory (kv/__ID/). */
int node_found(struct dsfs_ctx *ctx, struct node *n, struct loc *l,
	       struct found *f);
int stat_node(struct dsfs_ctx *ctx, struct node *n, struct stat *st);

/* by_token.c: images/.by-token and the user.dsfs.* attributes. */
#define BY_TOKEN ".by-token"
/* images/.by-token, in the merged images/ tree only. */
bool is_by_token_name(const struct node *dir, const char *name);
/* A blob seen through images/.by-token/TOKEN: read-only, owned by the
 * store's owner, as old as the mount; *layer (may be NULL) is where the
 * blob is. */
int token_stat(struct dsfs_ctx *ctx, struct node *n, struct stat *st,
	       int *layer);
/* A lookup in images/ of .by-token, or in .by-token of a token: the entry
 * to reply with, its lookup counted. */
int lookup_by_token(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		    struct fuse_entry_param *e);
/* A read-only handle streaming the token's blob. */
int open_token(struct dsfs_ctx *ctx, struct node *n, struct handle **h);
/* The read-only user.dsfs.* attributes of a node, as the process who
 * sees them: fills buf with the value of `name`; -ENODATA if the node
 * has no such attribute (user.dsfs.error: none that who could write). */
int xattr_value(struct dsfs_ctx *ctx, struct node *n,
		const struct fuse_ctx *who, const char *name, char *buf,
		size_t size);
/* The names of the attributes n has for who, each ended by a NUL, into
 * list; returns their length. */
size_t xattr_list(struct dsfs_ctx *ctx, struct node *n,
		  const struct fuse_ctx *who, char *list, size_t size);

/* dirsource.c: what a directory lists (struct dirlist_source, with the
 * context as its arg). */
int load_listing(void *arg, struct node *n, struct listing *ls);
bool listing_changed(void *arg, struct node *n, uint64_t since);
/* What a lookup of the child name of dir finds: 0 with f, or an errno
 * (-ENOENT also for a non-directory directly under devices/). */
int lookup_child(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		 struct found *f);
/* READDIRPLUS: the entry of a listed name, looked up now, into e, with
 * one more lookup counted on *np.  A name gone since the listing, or
 * that cannot be read now, is sent without an entry (*np NULL, e->ino 0:
 * the kernel then only lists it, and a lookup reports what is wrong).
 * 0, or -ENOMEM. */
int listing_entry(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		  struct fuse_entry_param *e, struct node **np);

/* file.c: open files against the stack and the node table. */
/* What an open tells the kernel along with its handle. */
struct open_reply {
	bool direct_io;	 /* bypass the page cache */
	bool keep_cache; /* keep what the page cache holds */
	bool noflush;	 /* nothing to flush at close */
};
/* What one step of a request found at a node's name, for a later step of
 * the same request to use instead of looking again: a second lookup made
 * microseconds later could only add a change that the request may as well
 * have come before (and on a database it costs a round trip). */
struct seen {
	bool valid;
	struct found f;
};
/* Open node n with these open(2) flags: the handle, holding the caller's
 * reference on n, and how the kernel may cache it.  seen is what this
 * OPEN request found at n's name already (setid_open()), or NULL.  On
 * failure the caller keeps its reference. */
int file_open(struct dsfs_ctx *ctx, struct node *n, int flags,
	      const struct seen *seen, struct handle **out,
	      struct open_reply *r);
/* Make the empty file at l, and the handle of an open of it with these
 * flags; file_created() binds it to its node once the entry is made. */
int file_create(struct dsfs_ctx *ctx, const struct loc *l,
		const struct dsfs_attr *a, int flags, struct found *f,
		struct handle **out);
void file_created(struct dsfs_ctx *ctx, struct handle *h, uint64_t ino);
ssize_t file_read(struct handle *h, uint64_t off, void *buf, size_t size);
/* A refused write is logged with its path and why.  *hash_after: an
 * image's bytes wait to be hashed; the caller answers the write, then
 * calls file_hash(), which may let go of h. */
ssize_t file_write(struct dsfs_ctx *ctx, struct handle *h, uint64_t off,
		   const void *buf, size_t size, bool *hash_after);
void file_hash(struct dsfs_ctx *ctx, struct handle *h);
/* An open writer sees the size of its own copy: true and *size if h was
 * written or truncated since its last commit. */
bool file_own_size(struct handle *h, off_t *size);
/* Set the size of n (at l), through its open writer h if there is one. */
int file_truncate(struct dsfs_ctx *ctx, struct node *n, const struct loc *l,
		  struct handle *h, off_t size);
/* Commit the copy if it changed since the last commit. */
int file_flush(struct dsfs_ctx *ctx, struct handle *h);
/* The last close: commit what is left, then file_drop(). */
void file_release(struct dsfs_ctx *ctx, struct handle *h);
/* Let go of an open file's handle and what it holds. */
void file_drop(struct dsfs_ctx *ctx, struct handle *h);
/* At exit: drop the handles the kernel never released (its connection
 * ended first), committing nothing. */
void file_drop_all(struct dsfs_ctx *ctx);

/* control_admin.c: "admin PID", dsfsctl's dump, load, diff and selective
 * factory-reset run on the daemon's layers; msg gets the error's text. */
int control_admin(struct dsfs_ctx *ctx, const char *arg, char *msg,
		  size_t size);
/* control_check.c: dsfsctl check of the runtime layer (memory,
 * PostgreSQL), reported to out as dsfsctl check prints it; *problems gets
 * the number found. */
struct store_error;
int control_check(struct dsfs_ctx *ctx, FILE *out, unsigned *problems,
		  struct store_error *e);
/* setid.c: the set-id bits where the kernel leaves them to dsfs.  Before
 * a write through h, or an open of n with these flags (O_TRUNC), by the
 * process of req: clear the bits a local filesystem clears for a writer
 * without CAP_FSETID (setid_open() tells in *seen what it found at n's
 * name).  What a set-group-ID directory passes on to a new entry, the
 * layer that makes it gives (dsfs_attr's inherit_group). */
int setid_write(struct dsfs_ctx *ctx, fuse_req_t req, struct handle *h);
int setid_open(struct dsfs_ctx *ctx, fuse_req_t req, struct node *n, int flags,
	       struct seen *seen);

/* flock.c: flock() on a shared runtime, across its hosts. */
int flocks_new(struct dsfs_cluster *c, struct flocks **out);
/* After the cluster closed. */
void flocks_free(struct flocks *fl);
/* Serve a FUSE flock request (op: LOCK_SH, LOCK_EX or LOCK_UN, with
 * LOCK_NB) of the lock owner on inode ino: answers req now, or later. */
void flock_request(struct dsfs_ctx *ctx, fuse_req_t req, fuse_ino_t ino,
		   uint64_t owner, int op);
/* The last close of an open file that owner locked. */
void flock_release(struct dsfs_ctx *ctx, uint64_t owner);

/* evict.c: keep the node table within bound nodes (0: no bound), from
 * once the session is mounted until evict_stop(), before it is
 * destroyed. */
int evict_start(struct dsfs_ctx *ctx, size_t bound);
void evict_stop(struct dsfs_ctx *ctx);

/* fuse_loop.c: the session's threads, unless busy_poll=0 (libfuse's
 * loop then).  fuse_loop_new() before the layers open, so that they can be
 * given fuse_loop_waiting(); fuse_loop_run() runs the session until it
 * ends, on up to max_threads threads, the thread that served the last
 * request polling the device for usec µs: 0 or a negative errno;
 * fuse_loop_free() once the layers are closed. */
struct fuse_loop;
int fuse_loop_new(struct fuse_session *se, unsigned usec, unsigned max_threads,
		  struct fuse_loop **out);
int fuse_loop_run(struct fuse_loop *l);
void fuse_loop_free(struct fuse_loop *l);
/* For a layer, before its thread waits (for a server): if a request is
 * queued, another thread reads the device meanwhile.  arg is the loop. */
void fuse_loop_waiting(void *arg);

/* remote.c: the other hosts of a shared runtime.  remote_start() after
 * the layers are open and before the session runs: the cluster on the
 * database conninfo names, the runtime layer wrapped to tell them of
 * every change, flocks; remote_stop() once no request and no change can
 * come any more, before the layers close. */
int remote_start(struct dsfs_ctx *ctx, const char *conninfo);
void remote_stop(struct dsfs_ctx *ctx);

/* watch.c, watch_layer.c: dsfsctl watch (watch.h).  watch_start() after
 * the layers are open and before remote_start(): the ephemeral and runtime
 * layers wrapped to offer every committed change; watch_stop() after
 * remote_stop(): every stream ended, the layers unwrapped. */
int watch_start(struct dsfs_ctx *ctx);
void watch_stop(struct dsfs_ctx *ctx);
/* Is anyone watching?  One atomic load: the offer is skipped if not. */
bool watch_wanted(struct dsfs_ctx *ctx);
/* A change that committed (origin NULL: the mount's, or dsfsctl's when
 * made on the control thread); watch_told() builds it from its parts. */
void watch_offer(struct dsfs_ctx *ctx, const struct watch_change *c);
void watch_told(struct dsfs_ctx *ctx, int layer, const char *key,
		const char *op, uint64_t version, const char *origin);
/* "watch [PATH]" on the control socket: register a watcher (its events
 * are queued from now on), then, once the OK is sent or not (answered),
 * watch_begin() hands it a copy of the connection sock and starts its
 * thread, or drops it.  msg gets why a request was refused. */
int watch_request(struct dsfs_ctx *ctx, const char *path, struct watcher **out,
		  char *msg, size_t size);
void watch_begin(struct dsfs_ctx *ctx, struct watcher *w, int sock,
		 bool answered);
/* The wrapper of layer index (L_EPHEMERAL, L_RUNTIME) around inner, which
 * it owns; the layer under a wrapper (l itself if l is none); unwrap frees
 * the wrapper and returns that layer. */
int watch_layer_wrap(struct dsfs_ctx *ctx, int index, struct dsfs_layer *inner,
		     struct dsfs_layer **out);
struct dsfs_layer *watch_layer_inner(struct dsfs_layer *l);
struct dsfs_layer *watch_layer_unwrap(struct dsfs_layer *l);

/* control.c: the daemon's side of dsfsctl's requests. */
int control_listen(struct dsfs_ctx *ctx);
int control_start(struct dsfs_ctx *ctx);
void control_stop(struct dsfs_ctx *ctx);

#endif
