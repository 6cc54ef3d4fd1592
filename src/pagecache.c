/*
 * pagecache.c - reads from the kernel's page cache, and the inode identity
 * of each committed version that makes them safe.
 *
 * The kernel keeps one page cache and one size per inode.  A committed
 * version of a value never changes, so its readers may share pages; what
 * must never happen is a reader of one version reading another version's
 * pages, or a size that is not its version's.  Three rules:
 *
 * 1. A node never has open writers and open page-cache readers at once.
 *    A writer's O_TRUNC sets the inode's size to 0 and its writes grow it
 *    (FUSE does so for direct I/O too), before anything is committed.  So
 *    a reader that opens while writers are open reads with direct I/O
 *    from its handle; a writer whose open finds page-cache readers
 *    *retires* the node and gets ESTALE, and the kernel walks the path
 *    again (LOOKUP_REVAL): the name now leads to a new node, made at once
 *    and marked so that readers do not fill its pages while the writers
 *    sent there may still be on their way (the kernel retries only
 *    once).  This is what a rename of a new file over the name does on a
 *    local filesystem: files open on the old inode keep it.
 *
 * 2. All page-cache readers of a node read one version, the node's
 *    cached_version, whose attributes the node keeps while they are open.
 *    When another version reaches the node (a reader's open, a GETATTR, a
 *    LOOKUP or READDIRPLUS, a change below the kernel: another tree of the
 *    mount, dsfsctl set, another host of a shared runtime, a truncation by
 *    path), a node with page-cache readers is retired and the kernel told
 *    to drop the name (notify_inval_entry, except in a LOOKUP or
 *    READDIRPLUS, which are making the new name themselves).  Its readers
 *    keep their version: their pages are not dropped, a GETATTR that comes
 *    with one of their handles answers their version, and one without
 *    (fstat) answers it too, with no link, as for a file replaced by a
 *    rename.  The next open of the name finds the new node.  A GETATTR,
 *    LOOKUP or READDIRPLUS finds the version by the node's name, then
 *    checks the node (node_cache_seen()): if another thread retired it
 *    in between, the version found is the name's, not the node's: a
 *    GETATTR answers the node's readers' version, a LOOKUP names the
 *    name's next node.  Answered with the version found, the kernel
 *    would give their inode its size and end their reads there.
 *
 * 3. The first page-cache open of a version (FRESH) drops the node's
 *    attributes before the reply, and its pages if a reader of another
 *    version filled them (pages are filled only by page-cache readers and
 *    by an image's commit, Images below): the
 *    size the kernel reads up to is then asked again, with the reader's
 *    handle, and answered from it.  The attributes the kernel held may say
 *    another version: a LOOKUP or GETATTR answered while a rename over the
 *    name was half done, another host's commit whose notice has not come
 *    yet.  That open also fills the pages with its copy (store_pages()),
 *    and later opens of the same version keep both (keep_cache): a read
 *    is an OPEN and a RELEASE (and a GETATTR the first time), and as no
 *    READ reaches dsfs the kernel's attributes (atime included) stay
 *    valid for lstat.  Unless, while no page-cache reader was open, the
 *    kernel was sent another version's attributes (a LOOKUP or GETATTR
 *    that found a newer version than the one the next reader opens, a
 *    writer's truncation and writes): the first reader after that keeps
 *    the pages and drops the attributes (ATTRS), as FRESH does.  Until
 *    that first reader has told the kernel (node_cache_filled()), other
 *    readers of its version read with direct I/O: replying before it,
 *    they would read the pages up to the size the kernel still holds.
 *    And unless no page of the node was ever filled and the last
 *    attributes answered by its name (node_cache_seen()), with no writer
 *    open or on its way then or since, were that very version's (FILL):
 *    the first reader then stores the whole value in the pages and keeps
 *    the attributes, and its reads ask for none.  The kernel's size is
 *    the version's (an answer of another version found before it but
 *    replied after it is refused by the kernel: the attr_version of its
 *    request is older), and even where a race left it another's, with
 *    the whole value in the pages it only says where reads stop: a store
 *    past the size moves it, and a read past the value's end asks dsfs,
 *    whose answer from the reader's handle ends it.  A value that is not
 *    stored whole (over 1 MiB, an image not just written) has its
 *    attributes dropped, as FRESH does.
 *
 * So, with kernel caches on: a reader during a commit reads the version it
 * opened (its handle's copy, its version's pages and size); a reader whose
 * open comes after a close has returned reads the new version, because
 * that open reads the store (the OPEN always reaches dsfs: a reader's open
 * is the place where its version is chosen) and either finds its node's
 * pages of that version or drops them.  On another host the same holds
 * from the moment the commit is acknowledged: the open reads the shared
 * database, and a node whose readers read the older version is retired
 * (rule 2) or its pages dropped (rule 3).  Read through the page cache:
 * the merged kv/ and images/ trees and factory/, whose every change below
 * the kernel is told to it (notify.c), and the images/ trees of runtime/
 * and ephemeral/, which are not told of changes made through the merged
 * view but are cached by the kernel for no time at all: every path walk
 * to them is a LOOKUP and every stat a GETATTR, which see the stored
 * version (pagecache_link(), pagecache_stat()), and every open chooses
 * its version, so a change there retires a node with readers or drops
 * its pages at the first request that could have used them.  (kv/ of a
 * layer stays on direct I/O: its values are small, and read whole at the
 * open anyway.)
 *
 * Images.  A version of an image is named by its token, the SHA-256 of
 * its bytes, and its version changes with every commit, rename or
 * removal in its layer (layer.h, Versions), so a node's (version, layer)
 * never stands for two tokens.  Its first page-cache reader does not read
 * it whole at the open (a reader may want its first bytes only): the
 * kernel fills the pages by READs, which later readers of the version
 * keep.  Except just after it was written: the commit of an image of up
 * to 1 MiB to a runtime layer on disk or on a server pushes the writer's
 * copy into the node's pages while it makes it durable
 * (pagecache_push.c), and a commit that stored it says the pages are its
 * version's (node_pages_committed()), so that a read back after a write
 * is an open with no READ, and the pages were filled on time the commit
 * spent waiting for the disk or the server.  Pushed pages that no
 * commit vouched for (it failed, or another push came after) are no
 * version's, and their next first reader drops them (FRESH).  A push
 * that the commit called off leaves the writer's copy to be kept at its
 * release instead (one image at a time, pagecache_writer_done()), and
 * the first page-cache reader whose handle streams that very token
 * pushes it; the copy of a push the commit vouched for is not kept, and
 * its memory, already the daemon's, holds the next image written.
 * Either way the writer's commit drops the kernel's attributes, so that
 * the open after it fetches them afresh (by its permission check) and
 * keeps them: answered once the writer is released, that fetch lets the
 * open KEEP or FILL, with no GETATTR after it.
 *
 * The kernel itself drops no pages when it learns of a new mtime
 * (FUSE_CAP_AUTO_INVAL_DATA is off, fuse_ops.c): pages are dropped where
 * these rules say, and no other way, so that those an image's commit
 * pushed before its mtime changed are kept.
 */
#include "pagecache.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "handle.h"

/* How many nodes a lookup links for a name before it gives up (ESTALE)
 * when each is retired before its reply (pagecache_link()). */
#define PAGECACHE_LINK_TRIES 8

/* The views whose every change below the kernel is told to this file
 * (notify.c): the merged kv/ and images/, and factory/ (an install drops
 * everything); and the layers' images/, which the kernel caches for no
 * time (see the top of this file). */
static bool cacheable(const struct node *n, const struct loc *l)
{
	if (n->special != NODE_PLAIN)
		return false;
	if (l->view == VIEW_MERGED)
		return l->tree != TREE_DEVICES;
	return l->view == VIEW_LAYER &&
	       (l->layer == L_FACTORY || l->tree == TREE_IMAGES);
}

/* The clock of the node table's pending_at. */
static uint16_t ticks(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint16_t)((uint64_t)ts.tv_sec * NODE_TICKS_PER_SEC +
			  (uint64_t)ts.tv_nsec /
				  (1000000000 / NODE_TICKS_PER_SEC));
}

/* n was retired: make the kernel drop its name, so that the next walk
 * looks it up again.  Called with no lock held. */
static void retired_notice(struct dsfs_ctx *ctx, struct node *n)
{
	char name[256];
	uint64_t parent;

	if (node_retired_name(&ctx->nodes, n, &parent, name, sizeof(name)) == 0)
		fuse_lowlevel_notify_inval_entry(ctx->se, parent, name,
						 strlen(name));
}

/* The bytes of the image kept from its writer (pagecache_writer_done()),
 * taken over if they are those of h's token (a token names its bytes):
 * NULL if not.  Other images are not read whole at the open: a reader
 * may want only their first bytes. */
static char *take_recent(struct dsfs_ctx *ctx, struct handle *h, size_t *cap)
{
	struct recent_image *r = &ctx->recent;
	char *buf = NULL;

	pthread_mutex_lock(&r->lock);
	if (r->buf && r->len == h->attr.size &&
	    strcmp(r->token, h->token) == 0) {
		buf = r->buf;
		*cap = r->cap;
		r->buf = NULL;
	}
	pthread_mutex_unlock(&r->lock);
	return buf;
}

/* Fill the kernel's pages of n with the copy h just read (or the image
 * its writer left, take_recent()), so that not even the first read of a
 * version sends a READ (which would also mark the inode's atime stale,
 * and make the next lstat ask dsfs).  Only the first page-cache reader
 * of a version does this, while no writer can open n
 * (node_writer_open() sees the reader).  Returns whether the pages are
 * there, to keep at the open. */
static bool store_pages(struct dsfs_ctx *ctx, struct node *n, struct handle *h)
{
	size_t len = h->src ? (size_t)h->attr.size : h->len;
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(len);
	char *image = NULL;
	size_t cap = 0;
	bool stored;

	if (len == 0 || len > PAGECACHE_STORE_MAX)
		return false;
	if (h->src)
		image = take_recent(ctx, h, &cap);
	buf.buf[0].mem = h->src ? image : h->buf;
	if (!buf.buf[0].mem)
		return false;
	stored = fuse_lowlevel_notify_store(ctx->se, n->ino, 0, &buf, 0) == 0;
	/* Its pages are the next large copy's (handle.h). */
	handle_spare_put(&ctx->spare, image, cap);
	return stored;
}

void pagecache_reader_open(struct dsfs_ctx *ctx, struct node *n,
			   const struct loc *l, const struct found *f,
			   struct handle *h, struct open_reply *r)
{
	bool dropped = false;

	if (!cacheable(n, l)) {
		r->direct_io = true;
		return;
	}
	switch (node_cache_reader_open(&ctx->nodes, n, &f->attr, f->layer,
				       ticks(), &dropped)) {
	case NODE_CACHE_KEEP:
		r->keep_cache = true;
		h->cache_reader = true;
		break;
	case NODE_CACHE_ATTRS:
		/* The size the kernel reads the pages up to is asked again,
		 * with this reader's handle. */
		h->cache_reader = true;
		notify_attrs(ctx, n->ino);
		node_cache_filled(&ctx->nodes, n);
		r->keep_cache = true;
		break;
	case NODE_CACHE_FRESH:
		h->cache_reader = true;
		if (dropped)
			notify_inode(ctx, n->ino);
		else
			notify_attrs(ctx, n->ino);
		r->keep_cache = store_pages(ctx, n, h);
		node_cache_filled(&ctx->nodes, n);
		break;
	case NODE_CACHE_FILL:
		/* The lookup or stat that found this version told the
		 * kernel its attributes, and no page is cached: only the
		 * pages are to be filled.  Unless they cannot all be: then
		 * the kernel's size decides where its reads stop, and is
		 * asked again, with this handle (rule 3). */
		h->cache_reader = true;
		r->keep_cache = store_pages(ctx, n, h);
		if (!r->keep_cache)
			notify_attrs(ctx, n->ino);
		node_cache_filled(&ctx->nodes, n);
		break;
	case NODE_CACHE_RETIRED:
		retired_notice(ctx, n);
		r->direct_io = true;
		break;
	default:
		r->direct_io = true;
		break;
	}
}

void pagecache_writer_done(struct dsfs_ctx *ctx, struct handle *h)
{
	struct recent_image *r = &ctx->recent;
	size_t old_cap;
	char *old;

	/* Pushed: the pages its first reader would need are there, and the
	 * copy is the next large one's instead (handle.h, the spare). */
	if (!h->writable || h->dirty || h->poisoned || h->check_failed ||
	    h->pushed || !h->committed[0] || !h->buf || h->len == 0 ||
	    h->len > PAGECACHE_STORE_MAX)
		return;
	pthread_mutex_lock(&r->lock);
	old = r->buf;
	old_cap = r->cap;
	r->buf = h->buf;
	r->len = h->len;
	r->cap = h->cap;
	snprintf(r->token, sizeof(r->token), "%s", h->committed);
	pthread_mutex_unlock(&r->lock);
	h->buf = NULL;
	h->len = h->cap = 0;
	handle_spare_put(&ctx->spare, old, old_cap);
}

int pagecache_writer_open(struct dsfs_ctx *ctx, struct node *n)
{
	int rc = node_writer_open(&ctx->nodes, n, ticks());

	if (rc == -ESTALE)
		retired_notice(ctx, n);
	return rc;
}

bool pagecache_retire(struct dsfs_ctx *ctx, struct node *n)
{
	if (!node_retire_cached(&ctx->nodes, n))
		return false;
	retired_notice(ctx, n);
	return true;
}

int pagecache_link(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		   const struct found *f, struct node **np)
{
	bool is_dir = f->attr.kind == DSFS_DIR;
	struct node *n;
	int tries;

	for (tries = 0; tries < PAGECACHE_LINK_TRIES; tries++) {
		n = node_link(&ctx->nodes, dir, name, is_dir, f->limit);
		if (!n)
			return -ENOMEM;
		if (is_dir || node_cache_seen(&ctx->nodes, n, f->attr.version,
					      f->layer) == NODE_SEEN_SAME) {
			*np = n;
			return 0;
		}
		/* Retired here or by another thread since node_link(): the
		 * lookup counted on it is given back, and the name's next
		 * node is the one the reply names, with f's attributes. */
		node_forget(&ctx->nodes, n->ino, 1);
	}
	/* Retired as fast as it is made (a storm of versions and readers):
	 * the kernel walks the path again. */
	return -ESTALE;
}

int pagecache_stat(struct dsfs_ctx *ctx, struct node *n, struct handle *h,
		   struct stat *st)
{
	struct found f;
	struct loc l;
	int rc;

	if (h && h->cache_reader) {
		/* The size the kernel reads this handle's pages up to. */
		attr_stat(n->ino, &h->attr, st);
		return 0;
	}
	if (is_fixed(n) || n->special != NODE_PLAIN)
		return stat_node(ctx, n, st);
	rc = node_found(ctx, n, &l, &f);
	if (rc == 0 && f.attr.kind != DSFS_DIR) {
		/* Retired after node_found() (by another thread) counts as
		 * retired: its readers' size is not f's. */
		switch (node_cache_seen(&ctx->nodes, n, f.attr.version,
					f.layer)) {
		case NODE_SEEN_RETIRED:
			retired_notice(ctx, n);
			return -ESTALE;
		case NODE_SEEN_DETACHED:
			return -ESTALE;
		default:
			break;
		}
	}
	if (rc == 0)
		entry_stat(ctx, n, &f, st);
	return rc;
}
