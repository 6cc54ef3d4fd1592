/*
 * layer_sqlite_list.c - the SQLite layer's list(): a directory's children
 * read in batches, so that listing a directory of a million names never
 * needs a copy of all of them.
 *
 * Each batch is one read transaction over the next LIST_BATCH names of
 * the directory in byte order (one range of the UNIQUE(parent, name)
 * index, layer_sqlite_tx.c), copied out; the callback then runs on the
 * batch with the layer unlocked, so it may call the layer, and the next
 * batch starts after the last name seen.  As a name is unique in its
 * directory and the batches go up in name order, a child that is there
 * for the whole listing is reported exactly once, whatever changes are
 * made between batches; a child made or removed meanwhile may or may not
 * be (layer.h, list()).  The memory held is one batch: about 64 KiB.
 *
 * list_kinds() reads the same batches from the entry_kind index of
 * (parent, name, kind) alone, never the rows (layer_sqlite_store.c): a
 * listing of the mount then reads a few dozen bytes a name.
 */
#include "layer_sqlite.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Small enough that a batch is a few tens of KiB, big enough that the
 * transaction around it costs little per name. */
#define LIST_BATCH 256

/* One batch of children: their attributes, and their names one after the
 * other in one block. */
struct list_batch {
	const char *dir;
	size_t dlen;
	bool checked;	       /* dir was found to be a directory */
	bool kinds;	       /* names and kinds only: list_kinds() */
	const char *after;     /* list the names above this one */
	size_t n;	       /* children in this batch */
	size_t at[LIST_BATCH]; /* where each name starts in names */
	struct dsfs_attr a[LIST_BATCH];
	char *names;
	size_t len, cap;
};

/* Copy one child into the batch. */
static int batch_add(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct list_batch *b = ctx;
	size_t len = strlen(name) + 1;

	if (b->len + len > b->cap) {
		/* Twice what is needed: a few reallocations per listing. */
		char *p = realloc(b->names, 2 * (b->len + len));

		if (!p)
			return -ENOMEM;
		b->names = p;
		b->cap = 2 * (b->len + len);
	}
	memcpy(b->names + b->len, name, len);
	b->at[b->n] = b->len;
	b->a[b->n++] = *a;
	b->len += len;
	return 0;
}

/* The next batch, inside a read transaction; the first one checks that
 * dir is a directory.  A later one finds nothing if dir was removed
 * meanwhile, and the listing ends there. */
static int batch_fn(struct tx *t, void *arg)
{
	struct list_batch *b = arg;
	struct row d;
	int rc;

	if (!b->checked) {
		rc = sq_get_key(t, b->dir, b->dlen, &d);
		if (rc == 0)
			rc = layer_dir_check(d.a.kind);
		if (rc)
			return rc;
		b->checked = true;
	}
	return sq_list_rows(t, b->dir, b->dlen, b->after, LIST_BATCH, b->kinds,
			    batch_add, b);
}

static int list_batches(struct dsfs_layer *l, const char *dir, bool kinds,
			dsfs_list_cb cb, void *ctx)
{
	struct list_batch *b = calloc(1, sizeof(*b));
	char *after = NULL;
	size_t i;
	int rc;

	if (!b)
		return -ENOMEM;
	b->kinds = kinds;
	b->dir = dir;
	b->dlen = strlen(dir);
	b->after = ""; /* every name sorts above it: none is empty */
	for (;;) {
		b->n = b->len = 0;
		rc = sq_read_tx(to_sq(l), "list", dir, batch_fn, b);
		for (i = 0; rc == 0 && i < b->n; i++)
			rc = cb(ctx, b->names + b->at[i], &b->a[i]);
		if (rc || b->n < LIST_BATCH)
			break;
		/* The next batch starts after this one's last name, which
		 * the batch's block is about to be reused for. */
		free(after);
		after = strdup(b->names + b->at[b->n - 1]);
		if (!after) {
			rc = -ENOMEM;
			break;
		}
		b->after = after;
	}
	free(after);
	free(b->names);
	free(b);
	return rc;
}

int sq_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb, void *ctx)
{
	return list_batches(l, dir, false, cb, ctx);
}

int sq_list_kinds(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		  void *ctx)
{
	return list_batches(l, dir, true, cb, ctx);
}
