/*
 * attrs.c - a node as the kernel and the log see it: the struct stat the
 * kernel is given for it, how long the kernel may cache that, and the path
 * a log line names it by.
 *
 * The root, the layer directories and the fixed kv/, images/, devices/
 * directories (and images/.by-token) are not stored anywhere: they are owned
 * by the store's owner and as old as the mount.  Every other node stands
 * for a stored entry, looked up again at each stat.  The merged kv/ and
 * images/ trees are cached by the kernel for ctx->timeout seconds (notify.c
 * says when they change below it); the other trees are not cached (timeout
 * 0), so nothing needs invalidating for them.  Negative lookups are never
 * cached, so a name that appears below the kernel shows at once.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "log.h"

static const char *const layer_names[DSFS_NLAYERS] = {"ephemeral", "runtime",
						      "factory"};

const char *layer_name(int layer)
{
	return layer_names[layer];
}

const char *loc_path(const struct loc *l, char *buf, size_t size)
{
	if (l->view == VIEW_LAYER)
		snprintf(buf, size, "%s/%s", layer_names[l->layer], l->key);
	else
		snprintf(buf, size, "%s", l->key);
	return buf;
}

void log_fail(const struct loc *l, const char *name, const char *what, int rc,
	      const char *why)
{
	char path[DSFS_KEY_MAX + 16];

	loc_path(l, path, sizeof(path));
	log_err("%s%s%s: %s: %s", path, name ? "/" : "", name ? name : "", what,
		why ? why : strerror(-rc));
}

double timeout_of(struct dsfs_ctx *ctx, const struct node *n)
{
	if (n->view == VIEW_ROOT || n->is_tree_root)
		return ctx->timeout;
	if (n->view == VIEW_MERGED && n->tree != TREE_DEVICES)
		return ctx->timeout;
	return 0.0;
}

bool is_fixed(const struct node *n)
{
	return n->view == VIEW_ROOT || n->is_tree_root ||
	       n->special == NODE_BY_TOKEN_DIR;
}

void fixed_stat(struct dsfs_ctx *ctx, const struct node *n, struct stat *st)
{
	bool ro = n->view != VIEW_MERGED && n->layer == L_FACTORY &&
		  n->view != VIEW_ROOT;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = S_IFDIR | (ro ? 0555 : 0755);
	if (n->ino == ROOT_INO ||
	    (n->view == VIEW_ROOT && n->layer == L_FACTORY))
		st->st_mode = S_IFDIR | 0755;
	if (n->special == NODE_BY_TOKEN_DIR)
		st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = ctx->owner_uid;
	st->st_gid = ctx->owner_gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = ctx->started;
}

void attr_stat(uint64_t ino, const struct dsfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = (a->kind == DSFS_DIR ? S_IFDIR : S_IFREG) |
		      (a->mode & 07777);
	st->st_nlink = a->kind == DSFS_DIR ? 2 : 1;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

int node_found(struct dsfs_ctx *ctx, struct node *n, struct loc *l,
	       struct found *f)
{
	int rc = node_loc(&ctx->nodes, n, l);

	if (rc)
		return rc;
	rc = ovl_lookup(&ctx->stack, l, f);
	if (rc == 0 && n->tree == TREE_DEVICES && n->parent &&
	    n->parent->is_tree_root && f->attr.kind != DSFS_DIR)
		rc = -ENOENT;
	return rc;
}

int stat_node(struct dsfs_ctx *ctx, struct node *n, struct stat *st)
{
	struct found f;
	struct loc l;
	int rc;

	if (is_fixed(n)) {
		fixed_stat(ctx, n, st);
		return 0;
	}
	if (n->special == NODE_BY_TOKEN)
		return token_stat(ctx, n, st, NULL);
	rc = node_found(ctx, n, &l, &f);
	if (rc == 0)
		attr_stat(n->ino, &f.attr, st);
	return rc;
}
