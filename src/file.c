/*
 * file.c - an open file's life against the stack and the node table: which
 * handle an open makes and how the kernel may cache it, the commits of its
 * copy, and its release.
 *
 * handle.c holds the private copy itself and knows nothing of where it came
 * from; here an open reads the value through the overlay into a handle (or
 * streams an image from the layer that holds it), and a commit checks the
 * copy and writes it back through the overlay, to the name the node has
 * then.  Which opens read through the kernel's page cache, and what a
 * writer's open does to the readers already there, is pagecache.c's.
 *
 * A writer holds a reservation (reserve.h) that grows with its copy, so a
 * write that could not be committed within the budget fails at once with
 * ENOSPC: a shell's builtin echo hears of a write error, never of a close
 * error.  Every refusal is logged with its path and reason and remembered
 * for user.dsfs.error (last_error.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "entry.h"
#include "handle.h"
#include "pagecache.h"

static enum dsfs_content content_of(struct dsfs_ctx *ctx, const struct loc *l)
{
	if (scratch_loc(&ctx->stack, l))
		return DSFS_CONTENT_SCRATCH;
	return l->tree == TREE_IMAGES ? DSFS_CONTENT_IMAGE : DSFS_CONTENT_JSON;
}

/* Start h's reservation for commits to l, whose entry was found as f:
 * they go where overlay.c's commit puts them (the layer of a layer's own
 * tree; in the merged view ephemeral if the entry is there, else
 * runtime), replacing the value if that layer has the entry, else adding
 * its name too. */
static void start_reservation(struct handle *h, const struct loc *l,
			      const struct found *f)
{
	const char *name = strrchr(l->key, '/');
	int t;

	if (l->view == VIEW_LAYER)
		t = l->layer;
	else
		t = f->layer == L_EPHEMERAL ? L_EPHEMERAL : L_RUNTIME;
	if (f->layer == t)
		reservation_start(&h->res, t, f->attr.size, 0);
	else
		reservation_start(&h->res, t, 0, name ? strlen(name + 1) : 0);
}

/* A refused write or commit of the entry at l: logged, and kept for
 * user.dsfs.error. */
static void refused(struct dsfs_ctx *ctx, const struct loc *l, const char *what,
		    int rc, const char *why)
{
	log_fail(l, NULL, what, rc, why);
	last_error_note(&ctx->errors, l->key, rc, why);
}

/* Commit h's copy to l through the overlay, with h's reservation replaced
 * by what the layer now counts. */
static int commit_copy(struct dsfs_ctx *ctx, struct handle *h,
		       const struct loc *l, const struct dsfs_attr *a,
		       struct found *f)
{
	int rc;

	reserve_commit_begin(&ctx->reserve);
	rc = ovl_commit(&ctx->stack, l, a, h->buf, h->len, f);
	reserve_commit_end(&ctx->reserve, &h->res, rc == 0, h->len);
	return rc;
}

/* Commit an open handle's copy if it changed; `last` at the final close,
 * when a pending O_TRUNC alone is committed too.  Called with h->lock
 * held. */
static int commit_handle(struct dsfs_ctx *ctx, struct handle *h, bool last)
{
	char buf[LAST_ERROR_LEN];
	struct dsfs_attr a;
	const char *why = NULL;
	bool told = h->poisoned != 0;
	uint32_t ticket;
	struct found f;
	struct loc l;
	int rc;

	if (!h->writable || !(h->dirty || (last && h->trunc_pending)))
		return 0;
	rc = node_loc(&ctx->nodes, h->node, &l);
	if (rc == -ESTALE && h->walked) {
		l = *h->walked;
		rc = 0;
	} else if (rc == -ESTALE) {
		/* Unlinked or replaced while open: its bytes have nowhere to
		 * go, as on any filesystem. */
		h->dirty = false;
		return 0;
	}
	if (rc)
		return rc;
	memset(&a, 0, sizeof(a));
	rc = handle_check(h, &a, &why);
	if (rc) {
		/* A write was refused already: that reason stays. */
		if (told) {
			log_fail(&l, NULL, "not stored", rc, why);
		} else {
			/* Content incomplete at close: where it ended. */
			if (why && h->content == DSFS_CONTENT_JSON) {
				snprintf(buf, sizeof(buf), "%s, after byte %zu",
					 why, h->len);
				why = buf;
			}
			refused(ctx, &l, "not stored", rc, why);
		}
		return rc;
	}
	a.mode = 0644;
	clock_gettime(CLOCK_REALTIME, &a.ctime);
	a.atime = a.mtime = a.ctime;
	/* Times set with futimens()/utimensat() while this was open for
	 * writing (cp -p, tar x) are what the committed value keeps. */
	node_take_times(&ctx->nodes, h->node, &a.atime, &a.mtime);
	ticket = pagecache_push_begin(ctx, h);
	rc = commit_copy(ctx, h, &l, &a, &f);
	pagecache_push_end(ctx, h, ticket, rc == 0 ? &f : NULL);
	if (rc) {
		refused(ctx, &l, "not stored", rc,
			rc == -ENOSPC && h->res.active ?
				entry_budget_reason(&ctx->stack, h->res.layer,
						    h->len, buf, sizeof(buf)) :
				NULL);
		return rc;
	}
	last_error_forget(&ctx->errors, l.key);
	handle_committed(h);
	snprintf(h->committed, sizeof(h->committed), "%s", f.attr.token);
	/* The kernel's size and times of this inode came from the writes
	 * and from attributes sent before the commit: refetch them, unless
	 * the kernel sized the file from this handle's writes alone (it
	 * marks size and times stale after a write itself).  The GETATTR
	 * this saves is one round trip of every `echo > f`.  Not for an
	 * image: the pages pushed for its readers are trusted with the
	 * attributes the kernel learns after this (pagecache.c, Images). */
	if (!h->from_empty || !node_sole_writer_view(&ctx->nodes, h->node) ||
	    h->content == DSFS_CONTENT_IMAGE)
		notify_attrs(ctx, h->node->ino);
	/* Written through an inode the name no longer has. */
	if (h->walked)
		notify_key(ctx, &l);
	notify_alias(ctx, &l, false);
	return 0;
}

/* h is the kernel's now: listed until its release, or the exit. */
static void file_link(struct dsfs_ctx *ctx, struct handle *h)
{
	pthread_mutex_lock(&ctx->open_files_lock);
	h->prev = NULL;
	h->next = ctx->open_files;
	if (h->next)
		h->next->prev = h;
	ctx->open_files = h;
	pthread_mutex_unlock(&ctx->open_files_lock);
}

void file_drop(struct dsfs_ctx *ctx, struct handle *h)
{
	pthread_mutex_lock(&ctx->open_files_lock);
	if (h->prev)
		h->prev->next = h->next;
	else if (ctx->open_files == h)
		ctx->open_files = h->next;
	if (h->next)
		h->next->prev = h->prev;
	pthread_mutex_unlock(&ctx->open_files_lock);
	if (h->cache_reader)
		node_cache_done(&ctx->nodes, h->node);
	if (h->writable)
		node_writers(&ctx->nodes, h->node, -1);
	node_put(&ctx->nodes, h->node);
	reserve_release(&ctx->reserve, &h->res);
	ovl_release_image(&ctx->stack, h->src, h->token);
	pagecache_writer_done(ctx, h);
	handle_free(h);
}

void file_drop_all(struct dsfs_ctx *ctx)
{
	while (ctx->open_files)
		file_drop(ctx, ctx->open_files);
}

/* Set the size of a closed file: read, resize, check, commit. */
static int truncate_closed(struct dsfs_ctx *ctx, struct node *n, off_t size)
{
	struct handle *h;
	struct found f;
	struct loc l;
	char *data = NULL;
	size_t len = 0;
	int rc;

	rc = node_loc(&ctx->nodes, n, &l);
	if (rc)
		return rc;
	if (size != 0) {
		rc = ovl_read_all(&ctx->stack, &l, &f, &data, &len);
		if (rc)
			return rc;
	}
	rc = handle_new(content_of(ctx, &l), data, len, true, size == 0,
			UINT64_MAX, &h);
	if (rc)
		return rc;
	h->spare = &ctx->spare;
	h->node = n;
	rc = 0;
	if (size != 0) {
		char why[LAST_ERROR_LEN];

		start_reservation(h, &l, &f);
		rc = reserve_grow(&ctx->reserve, &ctx->stack, &h->res,
				  (uint64_t)size, why, sizeof(why));
		if (rc)
			refused(ctx, &l, "truncate refused", rc, why);
	}
	if (rc == 0)
		rc = handle_truncate(h, (uint64_t)size);
	h->dirty = true;
	if (rc == 0)
		rc = commit_handle(ctx, h, true);
	reserve_release(&ctx->reserve, &h->res);
	handle_free(h);
	return rc;
}

int file_truncate(struct dsfs_ctx *ctx, struct node *n, const struct loc *l,
		  struct handle *h, off_t size)
{
	int rc;

	if (n->is_dir)
		return -EISDIR;
	if (l->view == VIEW_LAYER && l->layer == L_FACTORY)
		return -EROFS;
	/* Page-cache readers keep the inode with their version's size: the
	 * truncation goes to the name's next node (truncate(2) walks the
	 * path again after ESTALE). */
	if (!h && pagecache_retire(ctx, n))
		return -ESTALE;
	if (h && h->writable) {
		char why[LAST_ERROR_LEN];

		pthread_mutex_lock(&h->lock);
		rc = reserve_grow(&ctx->reserve, &ctx->stack, &h->res,
				  (uint64_t)size, why, sizeof(why));
		if (rc == 0)
			rc = handle_truncate(h, (uint64_t)size);
		pthread_mutex_unlock(&h->lock);
		if (rc == -ENOSPC)
			refused(ctx, l, "truncate refused", rc, why);
		return rc;
	}
	return truncate_closed(ctx, n, size);
}

/* A reader of an image streams it from the layer that has it. */
static int open_image(struct dsfs_ctx *ctx, const struct loc *l,
		      struct found *f, struct handle **h)
{
	struct dsfs_layer *held;
	int rc;

	rc = ovl_open_image(&ctx->stack, l, f, &held);
	if (rc)
		return rc;
	if (!held) /* an empty entry: nothing to stream */
		return handle_new(DSFS_CONTENT_IMAGE, NULL, 0, false, false, 0,
				  h);
	rc = handle_new_stream(held, f->attr.token, h);
	if (rc)
		ovl_release_image(&ctx->stack, held, f->attr.token);
	return rc;
}

/* How the kernel may cache what h reads or writes (pagecache.c): every
 * writer works with direct I/O on its own copy; a reader may read through
 * the page cache.  -ESTALE: the writer must walk the path again. */
static int cache_policy(struct dsfs_ctx *ctx, struct node *n,
			const struct loc *l, const struct found *f,
			struct handle *h, struct open_reply *r)
{
	if (h->writable) {
		r->direct_io = true;
		return pagecache_writer_open(ctx, n);
	}
	pagecache_reader_open(ctx, n, l, f, h, r);
	return 0;
}

/* The handle for an open of the stored entry n stands for. */
static int open_entry(struct dsfs_ctx *ctx, struct node *n, bool writable,
		      bool trunc, const struct seen *seen, struct handle **out,
		      struct open_reply *r)
{
	uint64_t used, budget = UINT64_MAX;
	struct handle *h = NULL;
	char *data = NULL;
	size_t len = 0;
	struct found f;
	struct loc l;
	bool walked, moved;
	int rc;

	rc = node_loc(&ctx->nodes, n, &l);
	/* An open whose path walk raced with a rename over this name opens
	 * what the name holds now, as a walk made after the rename would: a
	 * reader reads it, a writer's commits go to that name.  (The kernel
	 * retries an ESTALE open only once, and a storm of renames over a
	 * name can make that one fail too.) */
	walked = false;
	if (rc == -ESTALE) {
		rc = node_former_loc(&ctx->nodes, n, &l);
		walked = rc == 0 && writable;
	}
	if (rc)
		return rc;
	/* Renamed away by an editor that now writes it anew (vim: NAME ->
	 * NAME~, then open(NAME, O_CREAT) without O_TRUNC). */
	moved = writable && scratch_take_moved(&ctx->stack, &l);
	trunc = trunc || moved;
	if (writable && l.view == VIEW_LAYER && l.layer == L_FACTORY) {
		rc = -EROFS;
		log_fail(&l, NULL, "open for writing", rc, NULL);
		return rc;
	}
	if (!writable && l.tree == TREE_IMAGES) {
		rc = open_image(ctx, &l, &f, &h);
	} else {
		if (trunc && seen && seen->valid && !walked)
			f = seen->f;
		else if (trunc)
			rc = ovl_lookup(&ctx->stack, &l, &f);
		else
			rc = ovl_read_all(&ctx->stack, &l, &f, &data, &len);
		if (rc == 0 && f.attr.kind == DSFS_DIR) {
			free(data);
			rc = -EISDIR;
		}
		if (rc)
			return rc;
		if (writable)
			ovl_usage(&ctx->stack,
				  f.layer == L_FACTORY ? L_RUNTIME : f.layer,
				  &used, &budget);
		rc = handle_new(content_of(ctx, &l), data, len, writable, trunc,
				budget, &h);
		if (rc == 0 && writable)
			start_reservation(h, &l, &f);
	}
	if (rc)
		return rc;
	h->spare = &ctx->spare;
	h->attr = f.attr;
	h->from_empty = trunc && !moved; /* the kernel still has the old size */
	if (walked) {
		h->walked = malloc(sizeof(*h->walked));
		if (!h->walked) {
			handle_free(h);
			return -ENOMEM;
		}
		*h->walked = l;
	}
	rc = cache_policy(ctx, n, &l, &f, h, r);
	if (rc) {
		reserve_release(&ctx->reserve, &h->res);
		handle_free(h);
		return rc;
	}
	*out = h;
	return 0;
}

int file_open(struct dsfs_ctx *ctx, struct node *n, int flags,
	      const struct seen *seen, struct handle **out,
	      struct open_reply *r)
{
	bool writable = (flags & O_ACCMODE) != O_RDONLY;
	bool trunc = writable && (flags & O_TRUNC);
	struct handle *h = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	if (is_fixed(n))
		return -EISDIR;
	if (n->special == NODE_BY_TOKEN) {
		rc = writable ? -EROFS : open_token(ctx, n, &h);
		if (rc)
			return rc;
		r->keep_cache = true; /* a token's bytes never change */
	} else {
		rc = open_entry(ctx, n, writable, trunc, seen, &h, r);
		if (rc)
			return rc;
	}
	h->node = n; /* the caller's reference passes to the handle */
	/* A reader has nothing to flush; tell the kernel not to ask. */
	r->noflush = !writable;
	file_link(ctx, h);
	*out = h;
	return 0;
}

int file_create(struct dsfs_ctx *ctx, const struct loc *l,
		const struct dsfs_attr *a, int flags, struct found *f,
		struct handle **out)
{
	uint64_t used, budget = UINT64_MAX;
	struct dsfs_attr na = *a;
	struct handle *h;
	int rc;

	/* What the close will commit replaces whatever is there: a layer
	 * shared with other hosts may make the name with that commit
	 * (layer.h, a->replaces). */
	na.replaces = (flags & O_TRUNC) && !(flags & O_EXCL) &&
		      (flags & O_ACCMODE) != O_RDONLY;
	rc = ovl_create(&ctx->stack, l, &na, f);
	if (rc)
		return rc;
	ovl_usage(&ctx->stack, f->layer, &used, &budget);
	rc = handle_new(content_of(ctx, l), NULL, 0,
			(flags & O_ACCMODE) != O_RDONLY, false, budget, &h);
	if (rc)
		return rc;
	h->spare = &ctx->spare;
	h->attr = f->attr;
	h->from_empty = true;
	h->unsettled = true;
	h->created_in = f->layer;
	/* The create stored the name: a commit replaces an empty value. */
	if (h->writable)
		reservation_start(&h->res, f->layer, 0, 0);
	*out = h;
	return 0;
}

void file_created(struct dsfs_ctx *ctx, struct handle *h, uint64_t ino)
{
	h->node = node_get(&ctx->nodes, ino);
	if (h->writable)
		node_writers(&ctx->nodes, h->node, 1);
	file_link(ctx, h);
}

ssize_t file_read(struct handle *h, uint64_t off, void *buf, size_t size)
{
	ssize_t got;

	pthread_mutex_lock(&h->lock);
	got = handle_read(h, off, buf, size);
	pthread_mutex_unlock(&h->lock);
	return got;
}

/* An image refused by its first bytes: the reason, with the bytes the
 * copy would have started with (those before off, then buf), into out. */
static const char *with_head(const struct handle *h, uint64_t off,
			     const void *buf, size_t size, const char *why,
			     char *out, size_t cap)
{
	unsigned char head[8];
	size_t n = 0, i;

	for (; n < sizeof(head) && n < h->len; n++)
		head[n] = (unsigned char)h->buf[n];
	for (i = 0; n < sizeof(head) && off == h->len && i < size; i++)
		head[n++] = ((const unsigned char *)buf)[i];
	return entry_head_reason(why, head, n, out, cap);
}

ssize_t file_write(struct dsfs_ctx *ctx, struct handle *h, uint64_t off,
		   const void *buf, size_t size, bool *hash_after)
{
	char reason[LAST_ERROR_LEN], headed[LAST_ERROR_LEN];
	const char *why = NULL;
	bool told;
	struct loc l;
	uint64_t end = off + size;
	ssize_t rc = 0;

	pthread_mutex_lock(&h->lock);
	told = h->poisoned != 0;
	/* Hold the budget the grown copy would need before taking its
	 * bytes: a write that could not be committed fails now. */
	if (h->writable && !told && end >= off) {
		rc = reserve_grow(&ctx->reserve, &ctx->stack, &h->res,
				  end > h->len ? end : h->len, reason,
				  sizeof(reason));
		if (rc) {
			h->poisoned = (int)rc;
			why = reason;
		}
	}
	if (rc == 0) {
		rc = handle_write(h, off, buf, size, &why);
		if (rc == -EINVAL && h->content == DSFS_CONTENT_IMAGE && why)
			why = with_head(h, off, buf, size, why, headed,
					sizeof(headed));
	}
	/* A refused handle never commits: what it held is free for the
	 * others at once. */
	if (h->poisoned)
		reserve_release(&ctx->reserve, &h->res);
	/* The bytes are hashed after the reply (file_hash()), while the
	 * writer makes its next write: the handle stays until then. */
	*hash_after = rc > 0 && handle_hash_due(h);
	if (*hash_after)
		h->refs++;
	pthread_mutex_unlock(&h->lock);
	if (rc < 0 && node_loc(&ctx->nodes, h->node, &l) == 0) {
		if (told)
			log_fail(&l, NULL, "write refused", (int)rc, why);
		else
			refused(ctx, &l, "write refused", (int)rc, why);
	}
	return rc;
}

bool file_own_size(struct handle *h, off_t *size)
{
	bool own = false;

	pthread_mutex_lock(&h->lock);
	if (h->writable && h->dirty) {
		*size = (off_t)h->len;
		own = true;
	}
	pthread_mutex_unlock(&h->lock);
	return own;
}

/* A close of a created file keeps its name whatever was written: the
 * layer commits what its create left (usually committed already, with
 * the value).  A name unlinked or renamed meanwhile was settled by that
 * change.  Called with h->lock held. */
static int settle_handle(struct dsfs_ctx *ctx, struct handle *h)
{
	struct loc l;
	int rc;

	if (!h->unsettled)
		return 0;
	rc = node_loc(&ctx->nodes, h->node, &l);
	if (rc == 0)
		rc = ovl_settle(&ctx->stack, h->created_in, l.key);
	else if (rc == -ESTALE)
		rc = 0;
	h->unsettled = rc != 0;
	return rc;
}

int file_flush(struct dsfs_ctx *ctx, struct handle *h)
{
	int rc, rc2;

	pthread_mutex_lock(&h->lock);
	rc = commit_handle(ctx, h, false);
	/* A refused value leaves the empty file its create made. */
	rc2 = settle_handle(ctx, h);
	pthread_mutex_unlock(&h->lock);
	return rc ? rc : rc2;
}

/* Drop one of h's references (h->lock held, and released here); the
 * last one lets go of the handle. */
static void unref_unlock(struct dsfs_ctx *ctx, struct handle *h)
{
	bool last = --h->refs == 0;

	pthread_mutex_unlock(&h->lock);
	if (last)
		file_drop(ctx, h);
}

void file_hash(struct dsfs_ctx *ctx, struct handle *h)
{
	pthread_mutex_lock(&h->lock);
	handle_hash(h);
	unref_unlock(ctx, h);
}

void file_release(struct dsfs_ctx *ctx, struct handle *h)
{
	pthread_mutex_lock(&h->lock);
	/* A truncation with nothing written, and writes after the last flush
	 * (through a memory map), are committed here.  A refusal already
	 * reported by flush is not repeated. */
	if (!h->poisoned && !h->check_failed)
		commit_handle(ctx, h, true);
	settle_handle(ctx, h);
	unref_unlock(ctx, h);
}
