/*
 * dirsource.c - what each directory of the mount lists, and whether its
 * listing may have changed: the source dirlist.c takes its shared listings
 * from (struct dirlist_source).
 *
 * The root and the layer directories list fixed names, and so do never
 * change; images/.by-token lists nothing; every other directory lists what
 * the overlay resolves in it, and has changed when the stack says a change
 * was made in it since the listing was taken.  Listings keep no
 * attributes (dirlist.h): READDIRPLUS looks each name up as a LOOKUP
 * would (listing_entry()).
 */
#include <errno.h>

#include "daemon.h"
#include "pagecache.h"

static int fixed_listing(struct dsfs_ctx *ctx, struct node *n,
			 struct listing *ls)
{
	static const char *const root[] = {"kv",	"images",  "devices",
					   "ephemeral", "runtime", "factory"};
	static const char *const trees[] = {"kv", "images", "devices"};
	struct found f = {.attr.kind = DSFS_DIR};
	size_t i;
	int rc = 0;

	(void)ctx;
	if (n->ino == ROOT_INO) {
		for (i = 0; i < sizeof(root) / sizeof(root[0]); i++)
			listing_add(ls, root[i], &f, &rc);
	} else {
		for (i = 0; i < sizeof(trees) / sizeof(trees[0]); i++)
			listing_add(ls, trees[i], &f, &rc);
	}
	return rc;
}

int load_listing(void *arg, struct node *n, struct listing *ls)
{
	struct dsfs_ctx *ctx = arg;
	struct found f;
	struct loc l;
	int rc;

	if (n->view == VIEW_ROOT)
		return fixed_listing(ctx, n, ls);
	/* Tokens are not listed: a listing would grow with the store, and
	 * a token is found from an image's user.dsfs.token. */
	if (n->special == NODE_BY_TOKEN_DIR)
		return 0;
	rc = node_loc(&ctx->nodes, n, &l);
	if (rc == -ESTALE)
		return 0; /* removed while open: it lists nothing */
	if (rc)
		return rc;
	if (!n->is_tree_root) {
		rc = ovl_lookup(&ctx->stack, &l, &f);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		if (f.attr.kind != DSFS_DIR)
			return -ENOTDIR;
		l.limit = f.limit;
	}
	return ovl_list(&ctx->stack, &l,
			n->tree == TREE_DEVICES && n->is_tree_root, ls);
}

/* The fixed directories and .by-token list the same names forever. */
bool listing_changed(void *arg, struct node *n, uint64_t since)
{
	struct dsfs_ctx *ctx = arg;
	struct loc l;

	if (n->view == VIEW_ROOT || n->special == NODE_BY_TOKEN_DIR)
		return false;
	if (node_loc(&ctx->nodes, n, &l) != 0)
		return true;
	return ovl_changed_since(&ctx->stack, l.key, since);
}

int lookup_child(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		 struct found *f)
{
	struct loc l;
	int rc = node_child_loc(&ctx->nodes, dir, name, &l);

	if (rc == 0)
		rc = ovl_lookup(&ctx->stack, &l, f);
	if (rc == 0 && dir->tree == TREE_DEVICES && dir->is_tree_root &&
	    f->attr.kind != DSFS_DIR)
		rc = -ENOENT;
	return rc;
}

int listing_entry(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		  struct fuse_entry_param *e, struct node **np)
{
	struct node *n;
	struct found f;
	int rc;

	*np = NULL;
	if (dir->view == VIEW_ROOT) {
		n = node_get_child(&ctx->nodes, dir, name);
		if (!n)
			return -ENOMEM;
		fixed_stat(ctx, n, &e->attr);
	} else {
		/* Past -o inode_cache, a listing makes no more inodes in the
		 * kernel: a name only, which is looked up when it is used.
		 * So too where the kernel caches nothing (a child's timeout
		 * is its directory's: timeout_of()): it would look
		 * the name up again at its first use anyway, and on a
		 * database each lookup here is a round trip. */
		if (nodes_over_bound(&ctx->nodes) || timeout_of(ctx, dir) <= 0)
			return 0;
		if (lookup_child(ctx, dir, name, &f) != 0)
			return 0;
		rc = pagecache_link(ctx, dir, name, &f, &n);
		/* Retired as fast as linked: listed as a name only, which
		 * the kernel looks up when it is used. */
		if (rc == -ESTALE)
			return 0;
		if (rc)
			return rc;
		entry_stat(ctx, n, &f, &e->attr);
	}
	e->ino = n->ino;
	e->attr_timeout = e->entry_timeout = timeout_of(ctx, n);
	if (dir->view == VIEW_ROOT)
		e->entry_timeout = FIXED_TIMEOUT;
	*np = n;
	return 0;
}
