/*
 * notify.c - telling the kernel to drop what it cached: every
 * fuse_lowlevel_notify_* call of the daemon is here.
 *
 * The merged kv/ and images/ trees are cached by the kernel for
 * ctx->timeout seconds; a change the kernel did not make through the same
 * inode (through a layer's own tree, through devices/, by a commit whose
 * sizes the kernel cannot know, by a factory install or reset) is followed
 * by one of these, before the reply, so that the next request of the kernel
 * asks dsfs again.  None of them is called with a lock of ours held: the
 * kernel may wait for a request in flight, which must be able to finish.
 *
 * On a shared runtime, another host's change comes as its key, from the
 * thread that listens to the other hosts (remote.c): notify_remote().
 */
#include <string.h>

#include "daemon.h"

void notify_inode(struct dsfs_ctx *ctx, uint64_t ino)
{
	fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
}

void notify_attrs(struct dsfs_ctx *ctx, uint64_t ino)
{
	/* A negative offset: the attributes only, not the page cache. */
	fuse_lowlevel_notify_inval_inode(ctx->se, ino, -1, 0);
}

static bool retire_ino(struct dsfs_ctx *ctx, uint64_t ino)
{
	struct node *n = node_get(&ctx->nodes, ino);
	bool retired = n && node_retire_cached(&ctx->nodes, n);

	node_put(&ctx->nodes, n);
	return retired;
}

/* What the kernel cached of the merged node for key: its attributes and
 * pages, and with entry its name and its directory's listing. */
static void inval_merged(struct dsfs_ctx *ctx, const char *key, bool entry)
{
	uint64_t ino, parent;
	const char *name;

	if (node_find_merged(&ctx->nodes, key, &ino, &parent, &name) != 0)
		return;
	/* Page-cache readers keep the inode of the version they read, with
	 * its pages; the name goes to a new node (pagecache.c). */
	if (ino && retire_ino(ctx, ino))
		entry = true;
	else if (ino)
		fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
	if (entry) {
		/* The name may be new (a negative entry cached), gone, or
		 * another entry now; and the directory's cached listing. */
		fuse_lowlevel_notify_inval_entry(ctx->se, parent, name,
						 strlen(name));
		fuse_lowlevel_notify_inval_inode(ctx->se, parent, 0, 0);
	}
}

void notify_key(struct dsfs_ctx *ctx, const struct loc *l)
{
	inval_merged(ctx, l->key, false);
}

void notify_alias(struct dsfs_ctx *ctx, const struct loc *l, bool entry)
{
	if (l->view == VIEW_MERGED && l->tree != TREE_DEVICES)
		return;
	inval_merged(ctx, l->key, entry);
}

/* Only the merged trees are cached for longer than a request (attrs.c's
 * timeout_of()): a change to key made outside every open of the mount
 * drops what the kernel holds of them. */
void notify_changed_key(struct dsfs_ctx *ctx, const char *key)
{
	inval_merged(ctx, key, true);
}

static void inval_one(void *arg, uint64_t ino, uint64_t parent,
		      const char *name)
{
	struct dsfs_ctx *ctx = arg;

	fuse_lowlevel_notify_inval_entry(ctx->se, parent, name, strlen(name));
	fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
}

void dsfs_invalidate_all(struct dsfs_ctx *ctx)
{
	uint64_t ino;

	nodes_forget_cache(&ctx->nodes);
	nodes_each(&ctx->nodes, inval_one, ctx);
	/* The fixed directories' listings (kv/, images/, ...) change too. */
	for (ino = ROOT_INO; ino <= FIXED_NODES; ino++)
		fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
}

void notify_remote(struct dsfs_ctx *ctx, const char *key)
{
	/* The merged trees are the only ones the kernel caches (attrs.c);
	 * devices/ID/x and runtime/kv/x are asked again every time. */
	inval_merged(ctx, key, true);
}
