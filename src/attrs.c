/*
 * attrs.c - a node as the kernel and the log see it: the struct stat the
 * kernel is given for it, how long the kernel may cache that, and the path
 * a log line names it by.
 *
 * The root, the layer directories and the fixed kv/, images/, devices/
 * directories (and images/.by-token) are not stored anywhere: they are owned
 * by the store's owner and as old as the mount.  Every other node stands
 * for a stored entry, looked up again at each stat.  The root, the layer
 * directories and the merged kv/ and images/ trees are cached by the kernel
 * for ctx->timeout seconds, their attributes for ctx->attr_timeout (which
 * differs on a shared runtime only: attr_timeout_of()), and notify.c says
 * when they change below it; the other trees, their roots included, are
 * not cached (timeout 0), so nothing needs invalidating for them.
 * Negative lookups are never cached, so a name that appears below the
 * kernel shows at once.
 *
 * A directory's link count is what a local filesystem keeps: 2 plus its
 * subdirectories, those of every layer a merged view shows counted once
 * (dir_nlink()).
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

/* The trees whose every change below the kernel is told to it (notify.c):
 * the merged kv/ and images/, their roots included. */
static bool told_tree(const struct node *n)
{
	return n->view == VIEW_MERGED && n->tree != TREE_DEVICES;
}

double timeout_of(struct dsfs_ctx *ctx, const struct node *n)
{
	/* The root and the layer directories hold fixed names, and their
	 * modes, link counts and times are those of the mount: nothing
	 * changes them, on any runtime, so a path walk need not ask for
	 * them.  (A factory install drops everything the kernel holds.) */
	if (n->view == VIEW_ROOT)
		return FIXED_TIMEOUT;
	/* A tree's root is cached like the rest of its tree: its link count
	 * and times change with what is made and removed in it. */
	if (told_tree(n))
		return ctx->timeout;
	return 0.0;
}

uint64_t elsewhere_now(struct dsfs_ctx *ctx)
{
	return __atomic_load_n(&ctx->elsewhere_gen, __ATOMIC_ACQUIRE);
}

/* Where the kernel keeps no name (a shared runtime's default), every walk
 * asks for each name again, so that an open after another host's commit
 * finds what it committed (close-to-open across hosts).  Expired
 * attributes are asked for again too, by every permission check of the
 * same walk: a create of kv/d/f fetched d's and then f's by the lookup
 * and the create, and would ask for d's twice more and f's once, each a
 * round trip to the database.  So the attributes a reply carries are kept
 * for WALK_ATTR_TIMEOUT: the rest of a system call, far within the
 * 100 ms in which another host's change must show.  Its change drops them
 * at once anyway (notify_remote()), and the next walk's lookup replaces
 * them; only fstat() of an open file and a permission check may use them
 * unasked, for those 10 ms. */
double attr_timeout_of(struct dsfs_ctx *ctx, const struct node *n)
{
	return told_tree(n) ? ctx->attr_timeout : timeout_of(ctx, n);
}

double fresh_timeout(struct dsfs_ctx *ctx, const struct node *n, uint64_t since)
{
	return elsewhere_now(ctx) == since ? attr_timeout_of(ctx, n) : 0.0;
}

bool is_fixed(const struct node *n)
{
	return n->view == VIEW_ROOT || n->is_tree_root ||
	       n->special == NODE_BY_TOKEN_DIR;
}

/* How many subdirectories the directory n, at l, lists now: those of every
 * layer l merges, each name once (a whiteout hides one), as readdir shows
 * them.  Kept in the node until the stack says a subdirectory may have come
 * or gone: a file's create or unlink must not cost a listing. */
static int count_subdirs(struct dsfs_ctx *ctx, struct node *n,
			 const struct loc *l, uint32_t *count)
{
	struct listing ls = {0};
	uint64_t at;
	size_t i;
	int rc;

	if (node_subdirs(&ctx->nodes, n, count, &at) &&
	    !ovl_subdirs_changed_since(&ctx->stack, l->key, at))
		return 0;
	rc = ovl_list(&ctx->stack, l,
		      n->tree == TREE_DEVICES && n->is_tree_root, &ls);
	if (rc)
		return rc;
	*count = 0;
	for (i = 0; i < ls.count; i++)
		if (ls.items[i].kind == DSFS_DIR)
			(*count)++;
	node_set_subdirs(&ctx->nodes, n, *count, ls.changes);
	listing_free(&ls);
	return 0;
}

/* A directory's link count as on a local filesystem, which find(1) uses to
 * stop looking for subdirectories: 2 (its name and ".") plus one ".." per
 * subdirectory.  If they cannot be counted, 1: what find and friends read
 * as "unknown, look at every entry". */
static nlink_t dir_nlink(struct dsfs_ctx *ctx, struct node *n,
			 const struct loc *l)
{
	uint32_t count;
	int rc = count_subdirs(ctx, n, l, &count);

	if (rc == 0)
		return 2 + (nlink_t)count;
	if (rc != -ENOENT)
		log_fail(l, NULL, "counting subdirectories", rc, NULL);
	return 1;
}

/* The fixed directories' link counts: the root holds the three trees and
 * the three layer directories, each layer directory the three trees. */
static nlink_t fixed_nlink(struct dsfs_ctx *ctx, struct node *n)
{
	struct loc l;

	if (n->ino == ROOT_INO)
		return 2 + 6;
	if (n->view == VIEW_ROOT)
		return 2 + 3;
	if (n->special == NODE_BY_TOKEN_DIR)
		return 2;
	if (node_loc(&ctx->nodes, n, &l) != 0)
		return 1;
	return dir_nlink(ctx, n, &l);
}

void fixed_stat(struct dsfs_ctx *ctx, struct node *n, struct stat *st)
{
	struct timespec changed;
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
	st->st_nlink = fixed_nlink(ctx, n);
	st->st_uid = ctx->owner_uid;
	st->st_gid = ctx->owner_gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = ctx->started;
	/* A tree root's names changed since the mount (dirtimes.c). */
	if (n->is_tree_root && ovl_tree_time(&ctx->stack, n->view, n->layer,
					     n->tree, &changed) == 0)
		st->st_mtim = st->st_ctim = changed;
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

void entry_stat(struct dsfs_ctx *ctx, struct node *n, const struct found *f,
		struct stat *st)
{
	struct loc l;

	attr_stat(n->ino, &f->attr, st);
	if (f->attr.kind != DSFS_DIR)
		return;
	if (node_loc(&ctx->nodes, n, &l) != 0) {
		st->st_nlink = 1;
		return;
	}
	l.limit = f->limit; /* what its children are looked up to */
	st->st_nlink = dir_nlink(ctx, n, &l);
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
		entry_stat(ctx, n, &f, st);
	return rc;
}
