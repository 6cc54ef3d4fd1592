/*
 * layer_pg_list.c - the PostgreSQL layer's list(): a directory's children
 * read in batches, so that a listing of a directory of any size holds one
 * batch of rows in memory, never a result with all of them.
 *
 * Each batch is one read transaction over the next PG_LIST_BATCH names of
 * the directory in byte order: one range of dsfs_entry's primary key
 * (parent, name), the rows ordered by it, starting after the last name
 * the previous batch saw.  The callback runs on a batch after its
 * transaction, with no connection held, so it may call the layer.  As a
 * name is unique in its directory and the batches go up in name order, a
 * child that is there for the whole listing is reported exactly once,
 * whatever any host changes between batches; one made or removed
 * meanwhile may or may not be (layer.h, list()), as in the SQLite layer
 * (layer_sqlite_list.c).
 */
#include "layer_pg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* One batch of a listing. */
struct list_batch {
	const char *dir;
	size_t dlen;
	bool checked;	   /* dir was found to be a directory */
	const char *after; /* list the names above this one */
	PGresult *rows;	   /* the batch, read after its transaction */
};

/* The next batch; the first one checks that dir is a directory.  A later
 * one finds nothing if dir was removed meanwhile, and the listing ends
 * there. */
static int batch_fn(struct pg_tx *t, void *arg)
{
	struct list_batch *b = arg;
	struct pg_params pp = {0};
	struct dsfs_attr d;
	int rc;

	libpq.PQclear(b->rows); /* from an attempt that lost its connection */
	b->rows = NULL;
	if (!b->checked && !layer_is_root(b->dir, b->dlen)) {
		rc = pg_get_key(t, b->dir, &d);
		if (rc == -ENOENT)
			d.kind = DSFS_NONE;
		else if (rc)
			return rc;
		rc = layer_dir_check(d.kind);
		if (rc)
			return rc;
	}
	pg_param_bytes(&pp, b->dir, b->dlen);
	pg_param_bytes(&pp, b->after, strlen(b->after));
	return pg_exec(t, P_LIST, &pp, &b->rows);
}

int pg_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb, void *ctx)
{
	struct list_batch b = {.dir = dir, .dlen = strlen(dir), .after = ""};
	char *name = NULL, *after = NULL;
	struct dsfs_attr a;
	int i, n, rc;

	/* Names that wait for their value are made first (layer_pg_defer.c). */
	rc = pg_defer_settle(to_pg(l), dir);
	if (rc)
		return rc;
	for (;;) {
		/* every name sorts above "": none is empty */
		rc = pg_tx_run(to_pg(l), PG_READ, "list", dir, batch_fn, &b);
		b.checked = true;
		n = rc ? 0 : libpq.PQntuples(b.rows);
		for (i = 0; rc == 0 && i < n; i++) {
			free(name);
			name = strndup(libpq.PQgetvalue(b.rows, i, 0),
				       (size_t)libpq.PQgetlength(b.rows, i, 0));
			if (!name) {
				rc = -ENOMEM;
				break;
			}
			pg_row_attr(b.rows, i, 1, &a);
			rc = cb(ctx, name, &a);
		}
		libpq.PQclear(b.rows);
		b.rows = NULL;
		if (rc || n < PG_LIST_BATCH)
			break;
		/* The last name of this batch is where the next one starts. */
		free(after);
		after = name;
		name = NULL;
		b.after = after;
	}
	free(name);
	free(after);
	return rc;
}
