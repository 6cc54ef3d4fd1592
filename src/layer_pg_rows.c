/*
 * layer_pg_rows.c - the rows of the PostgreSQL layer: reading and writing
 * one entry (dsfs_entry) and counting references to image blobs
 * (dsfs_blob, with dsfs_pin), each a prepared statement of
 * layer_pg_store.c run in the caller's transaction.  layer_pg.c builds
 * the operations of layer.h out of these.
 */
#include "layer_pg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- rows ---------------------------------------------------------- */

/* The attribute columns (ATTR_COLS) of row, from column c. */
void pg_row_attr(const PGresult *r, int row, int c, struct dsfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->kind = (enum dsfs_kind)pg_get_i64(r, row, c);
	a->opaque = pg_get_bool(r, row, c + 1);
	a->mode = (uint32_t)pg_get_i64(r, row, c + 2);
	a->uid = (uint32_t)pg_get_i64(r, row, c + 3);
	a->gid = (uint32_t)pg_get_i64(r, row, c + 4);
	a->atime = layer_ns_time(pg_get_i64(r, row, c + 5));
	a->mtime = layer_ns_time(pg_get_i64(r, row, c + 6));
	a->ctime = layer_ns_time(pg_get_i64(r, row, c + 7));
	a->version = (uint64_t)pg_get_i64(r, row, c + 8);
	a->size = (uint64_t)pg_get_i64(r, row, c + 9);
	snprintf(a->type, sizeof(a->type), "%.*s",
		 libpq.PQgetlength(r, row, c + 10),
		 libpq.PQgetvalue(r, row, c + 10));
	snprintf(a->token, sizeof(a->token), "%.*s",
		 libpq.PQgetlength(r, row, c + 11),
		 libpq.PQgetvalue(r, row, c + 11));
}

void pg_param_key(struct pg_params *pp, const struct layer_key *k)
{
	pg_param_bytes(pp, k->parent, k->plen);
	pg_param_bytes(pp, k->name, k->nlen);
}

/* Run stmt: its one row in *r (to PQclear()), or -ENOENT if it found
 * none. */
int pg_one_row(struct pg_tx *t, enum pg_stmt stmt, const struct pg_params *pp,
	       PGresult **r)
{
	int rc = pg_exec(t, stmt, pp, r);

	if (rc == 0 && libpq.PQntuples(*r) != 1) {
		libpq.PQclear(*r);
		*r = NULL;
		rc = -ENOENT;
	}
	return rc;
}

/* The row named by k: 0, or -ENOENT if there is none. */
int pg_get_row(struct pg_tx *t, const struct layer_key *k, struct dsfs_attr *a)
{
	struct pg_params pp = {0};
	PGresult *r;
	int rc;

	pg_param_key(&pp, k);
	rc = pg_one_row(t, P_GET, &pp, &r);
	if (rc == 0) {
		pg_row_attr(r, 0, 0, a);
		libpq.PQclear(r);
	}
	return rc;
}

/* The row of key; a key without a parent part has none. */
int pg_get_key(struct pg_tx *t, const char *key, struct dsfs_attr *a)
{
	struct layer_key k;

	if (layer_split_key(key, strlen(key), &k))
		return -ENOENT;
	return pg_get_row(t, &k, a);
}

/* Split key, read the row at key, if any (*found), and check that its
 * parent can hold it (a root or a directory).  Both rows are read in one
 * statement: the parent's costs nothing more when the target is found. */
int pg_target(struct pg_tx *t, const char *key, struct layer_key *k,
	      struct dsfs_attr *a, bool *found, struct dsfs_attr *parent)
{
	struct pg_params pp = {0};
	struct layer_key pk;
	struct dsfs_attr pa;
	bool root, orphan = false;
	PGresult *r;
	int i, rc;

	if (layer_split_key(key, strlen(key), k))
		return -EINVAL;
	root = layer_is_root(k->parent, k->plen);
	if (!root)
		orphan = layer_split_key(k->parent, k->plen, &pk) != 0;
	pg_param_key(&pp, k);
	pg_param_key(&pp, root || orphan ? k : &pk);
	rc = pg_exec(t, P_TARGET, &pp, &r);
	if (rc)
		return rc;
	*found = false;
	memset(&pa, 0, sizeof(pa)); /* DSFS_NONE */
	for (i = 0; i < libpq.PQntuples(r); i++) {
		if (pg_get_bool(r, i, 0)) {
			pg_row_attr(r, i, 1, a);
			*found = true;
		} else {
			pg_row_attr(r, i, 1, &pa);
		}
	}
	libpq.PQclear(r);
	if (parent)
		*parent = pa;
	if (*found || root)
		return 0;
	return orphan ? -ENOENT : layer_dir_check(pa.kind);
}

void pg_param_row(struct pg_params *pp, const struct layer_key *k,
		  const struct dsfs_attr *a, const void *data, size_t len)
{
	pg_param_key(pp, k);
	pg_param_i64(pp, a->kind);
	pg_param_i64(pp, a->opaque);
	pg_param_i64(pp, a->mode);
	pg_param_i64(pp, a->uid);
	pg_param_i64(pp, a->gid);
	pg_param_i64(pp, layer_time_ns(a->atime));
	pg_param_i64(pp, layer_time_ns(a->mtime));
	pg_param_i64(pp, layer_time_ns(a->ctime));
	pg_param_i64(pp, (int64_t)a->version);
	pg_param_i64(pp, (int64_t)a->size);
	pg_param_str(pp, a->type);
	pg_param_str(pp, a->token);
	if (data)
		pg_param_bytes(pp, data, len);
	else
		pg_param_null(pp);
}

/* Write the row at k with a; data is the value of a plain file (NULL
 * stores none). */
int pg_put_row(struct pg_tx *t, const struct layer_key *k,
	       const struct dsfs_attr *a, const void *data, size_t len)
{
	struct pg_params pp = {0};

	pg_param_row(&pp, k, a, data, len);
	return pg_send(t, P_PUT, &pp);
}

/* Run a statement whose only parameter is the byte string s[0..len);
 * without n, as pg_send(). */
int pg_run_on(struct pg_tx *t, enum pg_stmt stmt, const char *s, size_t len,
	      long *n)
{
	struct pg_params pp = {0};

	pg_param_bytes(&pp, s, len);
	return n ? pg_run(t, stmt, &pp, n) : pg_send(t, stmt, &pp);
}

/* The int8 in the first column of stmt's one row (0 if no row). */
int pg_int_on(struct pg_tx *t, enum pg_stmt stmt, const char *s, size_t len,
	      int64_t *v)
{
	struct pg_params pp = {0};
	PGresult *r;
	int rc;

	if (s)
		pg_param_bytes(&pp, s, len);
	rc = pg_exec(t, stmt, &pp, &r);
	if (rc)
		return rc;
	*v = libpq.PQntuples(r) ? pg_get_i64(r, 0, 0) : 0;
	libpq.PQclear(r);
	return 0;
}

/* ---- blobs --------------------------------------------------------- */

bool pg_in_blob(const struct dsfs_attr *a)
{
	return a->kind == DSFS_FILE && a->token[0];
}

int pg_blob_get(struct pg_tx *t, const char *token, int64_t *refs,
		uint64_t *len)
{
	struct pg_params pp = {0};
	PGresult *r;
	int rc;

	pg_param_str(&pp, token);
	rc = pg_one_row(t, P_BLOB_GET, &pp, &r);
	if (rc == 0) {
		*refs = pg_get_i64(r, 0, 0);
		*len = (uint64_t)pg_get_i64(r, 0, 1);
		libpq.PQclear(r);
	}
	return rc;
}

int pg_blob_ref(struct pg_tx *t, const char *token, int64_t delta)
{
	struct pg_params pp = {0};

	pg_param_str(&pp, token);
	pg_param_i64(&pp, delta);
	return pg_send(t, P_BLOB_REF, &pp);
}

/* Is token pinned by any opening, on any host? */
int pg_pinned(struct pg_tx *t, const char *token, bool *yes)
{
	long n = 0;
	int rc = pg_run_on(t, P_PINNED, token, strlen(token), &n);

	*yes = n > 0;
	return rc;
}

/* Delete token's blob if nothing references or pins it; *freed is the
 * bytes it held (0 if it stays). */
int pg_blob_gc(struct pg_tx *t, const char *token, uint64_t *freed)
{
	int64_t len = 0;
	int rc = pg_int_on(t, P_BLOB_GC, token, strlen(token), &len);

	*freed = (uint64_t)len;
	return rc;
}

/* Drop one reference to token's blob; one that nothing references or
 * pins any more is deleted (the caller counted its bytes). */
int pg_blob_put(struct pg_tx *t, const char *token)
{
	uint64_t freed;
	int rc = pg_blob_ref(t, token, -1);

	return rc ? rc : pg_blob_gc(t, token, &freed);
}
