/*
 * pagecache.h - which opens read through the kernel's page cache, and the
 * inode identities that make that safe (pagecache.c has the argument).
 */
#ifndef DSFS_PAGECACHE_H
#define DSFS_PAGECACHE_H

#include "daemon.h"

struct handle;

/* Values up to this size are pushed into the page cache at their first
 * open (store_pages()), or an image's by its commit (pagecache_push.c);
 * larger ones are read by the kernel as it needs. */
#define PAGECACHE_STORE_MAX (1024 * 1024)

/* How the kernel may cache what the reader h of node n (at l, found as f)
 * reads: fills r's direct_io or keep_cache, counts h as a page-cache
 * reader (h->cache_reader) when it is one. */
void pagecache_reader_open(struct dsfs_ctx *ctx, struct node *n,
			   const struct loc *l, const struct found *f,
			   struct handle *h, struct open_reply *r);
/* The writer h is released: if its copy is the image its last commit
 * stored, the copy is kept (one image at a time) for the first
 * page-cache reader of that token, which then pushes it into the
 * kernel's pages without reading it back from its layer. */
void pagecache_writer_done(struct dsfs_ctx *ctx, struct handle *h);
/* pagecache_push.c: an image writer h is about to commit its copy.  The
 * push thread copies it into the kernel's pages of h's node meanwhile,
 * at idle priority, so that it takes the time the commit waits for the
 * disk.  The ticket returned (0: nothing will be pushed) goes to
 * pagecache_push_end() once the commit returned, with what it stored (f)
 * or NULL if it failed: a push not begun yet is called off, one under way
 * stops at the end of its piece and is waited for that long (h's copy is
 * not to change under it), and a push done whole for a commit that stored
 * the copy lets the version's readers keep those pages and sets
 * h->pushed (the copy is then not kept at the release).  Commits into
 * memory push nothing.  Called with h->lock held. */
uint32_t pagecache_push_begin(struct dsfs_ctx *ctx, struct handle *h);
void pagecache_push_end(struct dsfs_ctx *ctx, struct handle *h, uint32_t ticket,
			const struct found *f);
/* The push thread, started once the session exists, stopped before it
 * goes.  Without it nothing is pushed. */
int pagecache_push_start(struct dsfs_ctx *ctx);
void pagecache_push_stop(struct dsfs_ctx *ctx);
/* Count a writer of n: 0, or -ESTALE when page-cache readers have n open
 * (n is retired and the kernel told to walk the path again). */
int pagecache_writer_open(struct dsfs_ctx *ctx, struct node *n);
/* n is about to change without an open of it (a truncation by path, a
 * change below the kernel): if page-cache readers have it open, retire it
 * and tell the kernel its name is gone; true if so. */
bool pagecache_retire(struct dsfs_ctx *ctx, struct node *n);
/* The child `name` of dir, for a lookup or a READDIRPLUS entry of what was
 * found as f, into *np: node_link(), but a node whose page-cache readers
 * read another version than f is retired first, and one retired by
 * another thread meanwhile is not used, so the name gets a node of its
 * own.  No notice is sent (the kernel holds the directory's lock).
 * -ENOMEM, or -ESTALE if every node made was retired at once. */
int pagecache_link(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		   const struct found *f, struct node **np);
/* What GETATTR answers for n, with h the handle it came with (or NULL):
 * a page-cache reader's handle gets the version it reads.  -ESTALE when n
 * was retired: the caller answers what it was (node_gone()). */
int pagecache_stat(struct dsfs_ctx *ctx, struct node *n, struct handle *h,
		   struct stat *st);

#endif
