/*
 * notify.c - telling the kernel to drop what it cached: every
 * fuse_lowlevel_notify_* call of the daemon is here but evict.c's, and the
 * one notice libfuse does not have (notify_prune()).
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
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

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

/* FUSE_NOTIFY_PRUNE, which libfuse 3.14 and the kernel headers of
 * Debian 12 predate: written to the device as the kernel reads it (the
 * out header, then the count and the inode numbers). */
#define DSFS_NOTIFY_PRUNE 9

struct prune_head {
	uint32_t len;
	int32_t code; /* the out header's error field holds the code */
	uint64_t unique;
	uint32_t count;
	uint32_t padding;
	uint64_t spare;
};

int notify_prune(struct dsfs_ctx *ctx, const uint64_t *inos, size_t count)
{
	struct prune_head head;
	struct iovec iov[2];
	size_t len = sizeof(head) + count * sizeof(*inos);
	ssize_t n;

	if (count == 0)
		return 0;
	head.len = (uint32_t)len;
	head.code = DSFS_NOTIFY_PRUNE;
	head.unique = 0; /* a notice, not the reply to a request */
	head.count = (uint32_t)count;
	head.padding = 0;
	head.spare = 0;
	iov[0].iov_base = &head;
	iov[0].iov_len = sizeof(head);
	iov[1].iov_base = (void *)inos;
	iov[1].iov_len = count * sizeof(*inos);
	do
		n = writev(fuse_session_fd(ctx->se), iov, 2);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
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
