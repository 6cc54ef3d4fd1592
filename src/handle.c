/*
 * handle.c - an open file's private copy and its streaming validation.
 *
 * The copy grows by doubling, so a value written in many small pieces
 * costs linear time and one buffer.  While writes arrive in order from the
 * start (the way every tool writes a file), each piece is fed to the
 * validator as it lands; a write elsewhere (a seek, a rewrite of earlier
 * bytes) makes the handle fall back to validating the whole copy when it is
 * committed.  Either way nothing is committed that is not valid content.
 * A copy that grows large takes the spare buffer a freed one left, if it
 * is big enough, or else 2 MiB that the kernel can map as one huge page,
 * instead of memory the daemon has never touched, page by page (why:
 * handle.h).
 */
#include "handle.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"

void handle_spare_init(struct handle_spare *s)
{
	pthread_mutex_init(&s->lock, NULL);
	s->buf = NULL;
	s->cap = 0;
}

void handle_spare_destroy(struct handle_spare *s)
{
	free(s->buf);
	s->buf = NULL;
	pthread_mutex_destroy(&s->lock);
}

void handle_spare_put(struct handle_spare *s, char *buf, size_t cap)
{
	if (buf && cap >= HANDLE_SPARE_MIN && cap <= HANDLE_SPARE_MAX) {
		pthread_mutex_lock(&s->lock);
		if (!s->buf || s->cap < cap) {
			char *old = s->buf;

			s->buf = buf;
			s->cap = cap;
			buf = old;
		}
		pthread_mutex_unlock(&s->lock);
	}
	free(buf);
}

/* The spare buffer, if it holds need bytes; NULL if not. */
static char *spare_take(struct handle_spare *s, size_t need, size_t *cap)
{
	char *buf = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->buf && s->cap >= need) {
		buf = s->buf;
		*cap = s->cap;
		s->buf = NULL;
		s->cap = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return buf;
}

static void free_copy(struct handle *h)
{
	if (h->spare)
		handle_spare_put(h->spare, h->buf, h->cap);
	else
		free(h->buf);
	h->buf = NULL;
	h->len = h->cap = 0;
}

int handle_new(enum dsfs_content content, char *data, size_t len, bool writable,
	       bool truncate, uint64_t budget, struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h) {
		free(data);
		return -ENOMEM;
	}
	pthread_mutex_init(&h->lock, NULL);
	h->content = content;
	h->writable = writable;
	h->budget = budget;
	h->buf = data;
	h->len = h->cap = len;
	if (writable) {
		if (truncate) {
			h->len = 0;
			h->trunc_pending = true;
		}
		h->val = validator_new(content);
		if (!h->val) {
			handle_free(h);
			return -ENOMEM;
		}
		/* An existing value is fed first, so appending to it is
		 * checked as the continuation it is. */
		if (h->len && validator_feed(h->val, h->buf, h->len) != 0) {
			validator_free(h->val);
			h->val = NULL;
		}
		h->val_pos = h->len;
		if (content == DSFS_CONTENT_IMAGE) {
			h->sha = malloc(sizeof(*h->sha));
			if (!h->sha) {
				handle_free(h);
				return -ENOMEM;
			}
			sha256_init(h->sha);
		}
	}
	h->refs = 1;
	*out = h;
	return 0;
}

int handle_new_stream(struct dsfs_layer *src, const char *token,
		      struct handle **out)
{
	struct handle *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	pthread_mutex_init(&h->lock, NULL);
	h->content = DSFS_CONTENT_IMAGE;
	h->src = src;
	snprintf(h->token, sizeof(h->token), "%s", token);
	h->refs = 1;
	*out = h;
	return 0;
}

void handle_free(struct handle *h)
{
	if (!h)
		return;
	validator_free(h->val);
	free(h->sha);
	free_copy(h);
	free(h->walked);
	pthread_mutex_destroy(&h->lock);
	free(h);
}

ssize_t handle_read(struct handle *h, uint64_t off, void *buf, size_t size)
{
	if (h->src)
		return layer_read_blob(h->src, h->token, off, buf, size);
	if (off >= h->len)
		return 0;
	if (size > h->len - off)
		size = h->len - off;
	memcpy(buf, h->buf + off, size);
	return (ssize_t)size;
}

/* The bytes hashed so far are no longer the copy's (or the token was
 * taken): the layer hashes the whole copy at the commit. */
static void sha_stop(struct handle *h)
{
	free(h->sha);
	h->sha = NULL;
	h->sha_pos = 0;
}

bool handle_hash_due(const struct handle *h)
{
	return h->sha && h->sha_pos < h->len;
}

void handle_hash(struct handle *h)
{
	if (!handle_hash_due(h))
		return;
	sha256_update(h->sha, h->buf + h->sha_pos, h->len - h->sha_pos);
	h->sha_pos = h->len;
}

/* HANDLE_HUGE bytes where the kernel can map them with one huge page
 * (handle.h): NULL if there is no memory.  Where it maps none (no
 * transparent huge pages, or none free), the pages come one by one as
 * before, and only those written are the daemon's. */
static char *huge_buffer(void)
{
	void *p;

	if (posix_memalign(&p, HANDLE_HUGE, HANDLE_HUGE) != 0)
		return NULL;
	(void)madvise(p, HANDLE_HUGE, MADV_HUGEPAGE);
	return p;
}

/* The copy moved into p, of cap bytes, which h owns from now on. */
static void move_copy(struct handle *h, char *p, size_t cap)
{
	size_t len = h->len;

	if (len)
		memcpy(p, h->buf, len);
	free_copy(h);
	h->buf = p;
	h->len = len;
	h->cap = cap;
}

static int reserve(struct handle *h, uint64_t need)
{
	size_t cap = h->cap ? h->cap : 256, got;
	char *p;

	if (need > h->budget)
		return -ENOSPC; /* could never be committed */
	if (need <= h->cap)
		return 0;
	while (cap < need)
		cap *= 2;
	if (h->spare && cap >= HANDLE_SPARE_MIN) {
		if ((p = spare_take(h->spare, need, &got)) != NULL) {
			move_copy(h, p, got);
			return 0;
		}
		/* Not grown by doubling either: realloc() moves the pages
		 * written so far, and on the virtual machine of
		 * tests/bench/README.md pages moved were as slow to write
		 * again as new ones (run 30). */
		if (cap <= HANDLE_HUGE && (p = huge_buffer()) != NULL) {
			move_copy(h, p, HANDLE_HUGE);
			return 0;
		}
	}
	p = realloc(h->buf, cap);
	if (!p)
		return -ENOMEM;
	h->buf = p;
	h->cap = cap;
	return 0;
}

/* The validator's reason, copied: the validator may be freed before the
 * caller logs it. */
static const char *keep_reason(struct handle *h)
{
	snprintf(h->why, sizeof(h->why), "%s", validator_reason(h->val));
	return h->why;
}

ssize_t handle_write(struct handle *h, uint64_t off, const void *buf,
		     size_t size, const char **why)
{
	int rc;

	*why = NULL;
	if (h->poisoned) {
		*why = "an earlier write to this open file was refused";
		return h->poisoned;
	}
	if (off + size < off) {
		h->poisoned = -EFBIG;
		return -EFBIG;
	}
	/* A refused write of any kind leaves the stored value as it was:
	 * this handle will not commit a value missing those bytes, and
	 * later writes and the close report the same error. */
	rc = reserve(h, off + size);
	if (rc) {
		h->poisoned = rc;
		return rc;
	}
	if (h->val && off == h->val_pos && off == h->len) {
		if (validator_feed(h->val, buf, size) != 0) {
			*why = keep_reason(h);
			h->poisoned = -EINVAL;
			return -EINVAL;
		}
		h->val_pos += size;
	} else if (h->val) {
		/* Out of order: check everything at commit instead. */
		validator_free(h->val);
		h->val = NULL;
	}
	if (off < h->sha_pos)
		sha_stop(h);
	if (off > h->len)
		memset(h->buf + h->len, 0, off - h->len);
	memcpy(h->buf + off, buf, size);
	if (off + size > h->len)
		h->len = off + size;
	h->dirty = true;
	h->check_failed = false;
	return (ssize_t)size;
}

int handle_truncate(struct handle *h, uint64_t size)
{
	int rc;

	if (size == h->len)
		return 0;
	rc = reserve(h, size);
	if (rc)
		return rc;
	if (size > h->len)
		memset(h->buf + h->len, 0, size - h->len);
	if (size < h->sha_pos)
		sha_stop(h);
	/* Truncated to nothing: hashing starts over, as validation does
	 * below (without memory for it, the layer hashes at the commit). */
	if (size == 0 && h->content == DSFS_CONTENT_IMAGE && !h->sha) {
		h->sha = malloc(sizeof(*h->sha));
		if (h->sha)
			sha256_init(h->sha);
	}
	h->len = size;
	h->dirty = true;
	h->check_failed = false;
	h->poisoned = 0;
	validator_free(h->val);
	h->val = NULL;
	if (size == 0) {
		/* Truncated to nothing: streaming can start over. */
		h->val = validator_new(h->content);
		h->val_pos = 0;
	}
	return 0;
}

int handle_check(struct handle *h, struct dsfs_attr *a, const char **why)
{
	const char *type = NULL;
	int rc;

	*why = NULL;
	if (h->poisoned) {
		*why = "an earlier write to this open file was refused";
		return h->poisoned;
	}
	if (h->val && h->val_pos == h->len) {
		rc = validator_finish(h->val, &type);
		if (rc)
			*why = keep_reason(h);
		/* The stream has ended either way: a later commit of this
		 * handle checks the whole copy. */
		validator_free(h->val);
		h->val = NULL;
	} else {
		rc = validate_buffer(h->content, h->buf, h->len, &type, why);
	}
	if (rc) {
		if (!*why)
			*why = "invalid content";
		h->check_failed = true;
		return -EINVAL;
	}
	snprintf(a->type, sizeof(a->type), "%s", type);
	a->token[0] = '\0';
	a->hash_token = false;
	if (h->content != DSFS_CONTENT_IMAGE || h->len == 0)
		return 0;
	if (h->sha) {
		/* Hashed as it was written: what is left, and the token.
		 * Finishing ends the hash, so a later commit of this
		 * handle leaves it to the layer. */
		handle_hash(h);
		sha256_hex(h->sha, a->token);
		sha_stop(h);
	} else {
		/* The layer names the bytes (layer.h), hashing while it
		 * writes them. */
		a->hash_token = true;
	}
	return 0;
}

void handle_committed(struct handle *h)
{
	h->dirty = false;
	h->trunc_pending = false;
	/* validator_finish() ended the stream: later writes are checked
	 * whole at the next commit. */
	validator_free(h->val);
	h->val = NULL;
}
