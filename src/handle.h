/*
 * handle.h - open files: an open file's private copy and its validation.
 * (file.c opens handles and commits them through the overlay; nothing here
 * knows the stack or the node table.)
 *
 * Every open file works on its own copy of the value, taken when it is
 * opened: readers keep seeing the value they opened, and a writer's bytes
 * are invisible to everyone else until its close commits them in one
 * transaction.  Writes are validated as they arrive (validate.h), so a write
 * that can no longer become valid content fails at once and the handle
 * never commits.
 */
#ifndef DSFS_HANDLE_H
#define DSFS_HANDLE_H

#include "dsfs.h"
#include "reserve.h"
#include "validate.h"

struct node;

struct handle {
	pthread_mutex_t lock; /* taken before the stack's lock */
	struct node *node;    /* holds a reference (file.c drops it) */
	enum dsfs_content content;
	bool writable;
	bool dirty;	    /* written or truncated since the last commit */
	bool trunc_pending; /* opened with O_TRUNC, not yet committed */
	bool check_failed;  /* the last commit was refused, nothing since */
	int poisoned;	    /* 0, or the -errno a write was refused with: this
			     * handle never commits, and says so again */
	char *buf;	    /* the private copy; owned */
	size_t len;
	size_t cap;
	/* Where a large copy comes from as it grows, and goes at the free
	 * (below); NULL: malloc() and free() alone. */
	struct handle_spare *spare;
	struct dsfs_validator *val; /* owned; NULL once streaming gave up */
	size_t val_pos;		    /* bytes of buf fed to val */
	uint64_t budget;	    /* of the layer a commit would go to */

	/* A reader of an image streams it from its layer instead of copying
	 * it: src is held and the blob pinned (ovl_open_image) until the
	 * handle is released. */
	struct dsfs_layer *src;
	char token[DSFS_TOKEN_LEN + 1];

	/* What the entry was at open: fstat of an open file whose name was
	 * removed or replaced still answers. */
	struct dsfs_attr attr;
	char why[160]; /* why the last write or check was refused */
	/* A writer's last commit stored an image of this token ("" if
	 * not); dirty says whether buf has changed since. */
	char committed[DSFS_TOKEN_LEN + 1];
	/* Counted in its node's open readers (file.c). */
	bool cache_reader;
	/* A writer's last commit pushed its copy into the kernel's pages,
	 * which hold that version now (pagecache_push.c): the copy need not
	 * be kept for a first reader at the release. */
	bool pushed;
	/* Made by create, or opened with O_TRUNC: the kernel sized the file
	 * from nothing and then from this handle's writes alone. */
	bool from_empty;
	/* Made by create in layer created_in, which may hold the new name
	 * uncommitted until it is settled at the close (layer.h). */
	bool unsettled;
	int created_in;
	/* Opened for writing on a node that a rename had already replaced
	 * (the opener's path walk raced with it): where it commits, the name
	 * the path leads to now.  Owned; NULL otherwise. */
	struct loc *walked;
	/* A writer's hold on its layer's budget (reserve.h; file.c keeps
	 * it): inactive for readers. */
	struct reservation res;
	/* In the daemon's list of handles the kernel holds (file.c). */
	struct handle *prev, *next;
	/* An image writer's token in the making: the SHA-256 of
	 * buf[0..sha_pos), fed by handle_hash() after each write has been
	 * answered, while the writer makes its next one, so that the
	 * commit finds the token all but made.  Owned; NULL for other
	 * content, and once a write or a truncation changes bytes already
	 * hashed, or the commit has taken the token: the layer then hashes
	 * the whole copy at the commit, as it does without this. */
	struct dsfs_sha256 *sha;
	size_t sha_pos;
	/* The kernel's reference, until its release, and one for each write
	 * whose reply went before its hashing (file.c): the last one frees
	 * the handle. */
	int refs;
};

/* One large buffer that a freed copy leaves for the next copy to grow
 * into.  Memory the daemon has not touched yet costs a page fault per
 * 4 KiB page the first time it is written: 2 to 5 ms a MiB on the virtual
 * machine of tests/bench/README.md (runs 12 and 30), longer than the 16
 * WRITEs of a 1 MiB image themselves, against nothing for pages already
 * there.  So a copy growing past HANDLE_SPARE_MIN takes the spare if it
 * is big enough, and else HANDLE_HUGE bytes at once, aligned and marked
 * for a transparent huge page: one fault of about 0.1 ms where the
 * kernel has one free.  One buffer of HANDLE_SPARE_MIN to
 * HANDLE_SPARE_MAX bytes is kept at a time, so that the daemon holds at
 * most 2 MiB more than its copies. */
#define HANDLE_SPARE_MIN (128 * 1024)
#define HANDLE_HUGE (2048 * 1024)
#define HANDLE_SPARE_MAX HANDLE_HUGE
struct handle_spare {
	pthread_mutex_t lock;
	char *buf; /* owned; NULL when none is kept */
	size_t cap;
};
void handle_spare_init(struct handle_spare *s);
void handle_spare_destroy(struct handle_spare *s);
/* Keep buf (of cap bytes, owned by the caller until now) for a later
 * copy, or free it. */
void handle_spare_put(struct handle_spare *s, char *buf, size_t cap);

/* Make a handle over data[0..len), which it takes ownership of (also on
 * failure).  A writable handle opened with truncate starts empty, with the
 * truncation pending: it is committed by the first write's commit, or at
 * the last close if nothing was written.  Shells open, dup2() and close the
 * first descriptor before writing; committing the truncation at that first
 * close would lose the old value before the new one was even written. */
int handle_new(enum dsfs_content content, char *data, size_t len, bool writable,
	       bool truncate, uint64_t budget, struct handle **out);
void handle_free(struct handle *h);

/* A read-only handle streaming the image blob `token` from the held layer
 * src (whose hold passes to the handle). */
int handle_new_stream(struct dsfs_layer *src, const char *token,
		      struct handle **out);

ssize_t handle_read(struct handle *h, uint64_t off, void *buf, size_t size);

/* Apply a write; returns the bytes written or -EINVAL (content can no
 * longer be valid: *why says why), -ENOSPC, -EFBIG, -ENOMEM. */
ssize_t handle_write(struct handle *h, uint64_t off, const void *buf,
		     size_t size, const char **why);
int handle_truncate(struct handle *h, uint64_t size);

/* Whether bytes of the copy wait for handle_hash(); then hash them. */
bool handle_hash_due(const struct handle *h);
void handle_hash(struct handle *h);

/* Validate the whole copy for a commit: fills a->type, and for an image
 * a->token if the copy's hash was made as it was written (else
 * a->hash_token: the layer hashes it).  -EINVAL with *why on invalid
 * content, or the error an earlier write was refused with. */
int handle_check(struct handle *h, struct dsfs_attr *a, const char **why);

/* The copy was committed: later writes are checked again at the next
 * commit. */
void handle_committed(struct handle *h);

#endif
