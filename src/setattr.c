/*
 * setattr.c - the SETATTR request: truncation, chmod, chown and utimens of
 * a stored entry, each of which also sets the entry's ctime.
 *
 * The kernel has already applied the permission rules (default_permissions:
 * who may chown, chmod or set times) and worked out which set-id bits a
 * chown or a truncation clears, and sends them as a mode change; what is
 * left here is to apply the change to the stack, through the open writer's
 * copy for a size change on an open file.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "handle.h"

static struct dsfs_ctx *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

/* A time setattr sets, if it sets it: the one given (flag `given`), or
 * now (flag `at_now`). */
static bool time_to_set(int to_set, int given, int at_now,
			const struct timespec *t, struct timespec *out)
{
	if (!(to_set & (given | at_now)))
		return false;
	if (to_set & at_now)
		now(out);
	else
		*out = *t;
	return true;
}

void dsfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		  struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct node *n = node_get(&ctx->nodes, ino);
	struct dsfs_attr a;
	unsigned mask = 0;
	struct found f;
	struct stat st;
	struct loc l;
	int rc = 0;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (n->special != NODE_PLAIN) {
		rc = -EROFS;
		goto out;
	}
	if (is_fixed(n)) {
		rc = -EPERM;
		goto out;
	}
	rc = node_loc(&ctx->nodes, n, &l);
	if (rc)
		goto out;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		rc = file_truncate(ctx, n, &l, h, attr->st_size);
		if (rc) {
			log_fail(&l, NULL, "truncate", rc, NULL);
			goto out;
		}
	}
	memset(&a, 0, sizeof(a));
	if (to_set & FUSE_SET_ATTR_MODE) {
		a.mode = attr->st_mode & 07777;
		mask |= DSFS_SET_MODE;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		a.uid = attr->st_uid;
		mask |= DSFS_SET_UID;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		a.gid = attr->st_gid;
		mask |= DSFS_SET_GID;
	}
	if (time_to_set(to_set, FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW,
			&attr->st_atim, &a.atime))
		mask |= DSFS_SET_ATIME;
	if (time_to_set(to_set, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW,
			&attr->st_mtim, &a.mtime))
		mask |= DSFS_SET_MTIME;
	if (mask & (DSFS_SET_ATIME | DSFS_SET_MTIME))
		node_set_times(&ctx->nodes, n,
			       (mask & DSFS_SET_ATIME) ? &a.atime : NULL,
			       (mask & DSFS_SET_MTIME) ? &a.mtime : NULL);
	/* chown(f, -1, -1) changes nothing but the ctime, and reaches us as
	 * a SETATTR that sets nothing.  A truncation alone has set it with
	 * the commit of the new value. */
	if (mask || !(to_set & FUSE_SET_ATTR_SIZE)) {
		now(&a.ctime);
		mask |= DSFS_SET_CTIME;
		rc = ovl_setattr(&ctx->stack, &l, &a, mask, &f);
		if (rc) {
			log_fail(&l, NULL, "setattr", rc, NULL);
			goto out;
		}
		notify_alias(ctx, &l, false);
	}
	rc = stat_node(ctx, n, &st);
	if (rc == 0 && h)
		file_own_size(h, &st.st_size);
	if (rc == 0)
		node_attrs_sent(&ctx->nodes, n);
out:
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, attr_timeout_of(ctx, n));
	node_put(&ctx->nodes, n);
}
