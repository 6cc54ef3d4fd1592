/*
 * daemon.h - the daemon's one context, and what main.c, fuse_ops.c and
 * control.c say to each other.
 *
 * Everything the daemon changes while it runs hangs off struct dsfs_ctx:
 * there is no other mutable global state (log.c's destination aside, which
 * is set once at start-up).
 */
#ifndef DSFS_DAEMON_H
#define DSFS_DAEMON_H

#include <fuse_lowlevel.h>

#include "dirlist.h"
#include "dsfs.h"
#include "inode.h"

struct dsfs_ctx {
	/* Set up by main.c before the session starts; read-only after. */
	char *store; /* absolute path of the store directory */
	uint64_t budget[DSFS_NLAYERS];
	double timeout;	 /* kernel cache timeout for the merged trees */
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
};

/* fuse_ops.c */
extern const struct fuse_lowlevel_ops dsfs_ll_ops;
/* Tell the kernel to forget everything it cached below the fixed
 * directories (after a factory install or reset). */
void dsfs_invalidate_all(struct dsfs_ctx *ctx);

/* control.c: the daemon's side of dsfsctl's requests. */
int control_listen(struct dsfs_ctx *ctx);
int control_start(struct dsfs_ctx *ctx);
void control_stop(struct dsfs_ctx *ctx);

#endif
