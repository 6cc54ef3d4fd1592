/*
 * pagecache.h - which opens read through the kernel's page cache, and the
 * inode identities that make that safe (pagecache.c has the argument).
 */
#ifndef DSFS_PAGECACHE_H
#define DSFS_PAGECACHE_H

#include "daemon.h"

struct handle;

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
