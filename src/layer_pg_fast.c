/*
 * layer_pg_fast.c - the commonest operations of the PostgreSQL layer in one
 * round trip to the server: the create of a new file (empty, or with its
 * value: layer_pg_defer.c), the commit of a value over a plain file (an
 * overwrite, or a created file's close), the remove of a plain file (with
 * its attributes: an unlink asks nothing first), and the fetch of a row
 * with its value (an open).
 *
 * The general form of a change reads, decides here, then writes: two
 * round trips (layer_pg_pipe.c).  These send BEGIN, the lock of
 * dsfs_state, one statement that makes the whole change only if its case
 * holds (the same checks, made by the server), and COMMIT, at once
 * (pg_tx_fast()).  When the case does not hold (a name that exists, a
 * missing parent, a full budget, a directory, an image), the statement
 * changes nothing, the empty transaction commits, and the general form
 * makes the change or finds its errno: those cases cost one round trip
 * more than before, the common ones one less.
 */
#include "layer_pg.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Split key and its parent: 1 (not for the fast form) if the parent has
 * no key of its own and is no tree root. */
static int split(const char *key, struct layer_key *k, struct layer_key *pk,
		 bool *root)
{
	if (layer_split_key(key, strlen(key), k))
		return 1;
	*root = layer_is_root(k->parent, k->plen);
	if (*root) {
		*pk = *k; /* unused by the statement */
		return 0;
	}
	return layer_split_key(k->parent, k->plen, pk) ? 1 : 0;
}

/* The file's row as a fast create or commit writes it: a's attributes,
 * len bytes, and a's version as the floor of the one the server makes. */
static void file_row(const struct dsfs_attr *a, size_t len,
		     struct dsfs_attr *na)
{
	layer_file_attr(na, a);
	na->size = len;
	na->version = a->version; /* the floor (layer_version_floor()) */
}

/* Run stmt, whose last parameter is the budget of a store that has none
 * recorded, and whose third column is the version it made (then the mode,
 * uid and gid stored, if it returns them): into na, and *out if not
 * NULL. */
static int write_file(struct pg_layer *p, bool lazy, const char *what,
		      const char *key, enum pg_stmt stmt, struct pg_params *pp,
		      struct dsfs_attr *na, struct dsfs_attr *out, int64_t *seq)
{
	PGresult *r;
	int rc;

	pg_param_i64(pp,
		     p->budget > INT64_MAX ? INT64_MAX : (int64_t)p->budget);
	rc = pg_tx_fast(p, lazy, what, key, stmt, pp, &r);
	if (rc)
		return rc;
	*seq = pg_get_i64(r, 0, 1);
	na->version = (uint64_t)pg_get_i64(r, 0, 2);
	if (libpq.PQnfields(r) > 5) { /* what the row holds */
		na->mode = (uint32_t)pg_get_i64(r, 0, 3);
		na->uid = (uint32_t)pg_get_i64(r, 0, 4);
		na->gid = (uint32_t)pg_get_i64(r, 0, 5);
	}
	libpq.PQclear(r);
	if (out)
		*out = *na;
	return 0;
}

int pg_fast_make(struct pg_layer *p, const char *key, const struct dsfs_attr *a,
		 const void *data, size_t len, bool lazy, struct dsfs_attr *out)
{
	int64_t now = layer_time_ns(layer_now()), seq;
	struct pg_params pp = {0};
	struct layer_key k, pk;
	struct dsfs_attr na;
	bool root;
	int rc;

	if (a->token[0] || split(key, &k, &pk, &root))
		return 1;
	file_row(a, len, &na);
	pg_param_row(&pp, &k, &na, data, len);
	pg_param_i64(&pp, (int64_t)(k.nlen + len));
	pg_param_i64(&pp, root);
	pg_param_key(&pp, &pk);
	pg_param_i64(&pp, now);
	pg_param_i64(&pp, a->inherit_group);
	rc = write_file(p, lazy, lazy ? "create" : "commit", key, P_FAST_CREATE,
			&pp, &na, out, &seq);
	/* The statement gave the directory these times and the version
	 * counter (a tree root has no row).  A failure may have changed
	 * anything; "not made" (1) changed nothing. */
	if (rc == 0 && !root)
		pg_known_made(p, key, now, (uint64_t)seq);
	else if (rc < 0)
		pg_known_forget(p, key);
	return rc;
}

int pg_fast_commit(struct pg_layer *p, const char *key,
		   const struct dsfs_attr *a, const void *data, size_t len,
		   bool keep, struct dsfs_attr *out)
{
	struct pg_params pp = {0};
	struct layer_key k;
	struct dsfs_attr na;
	int64_t seq;

	/* A new file over a hidden one (inherit_group): the general way. */
	if (a->token[0] || a->inherit_group ||
	    layer_split_key(key, strlen(key), &k))
		return 1;
	file_row(a, len, &na);
	pg_param_row(&pp, &k, &na, data, len);
	pg_param_i64(&pp, keep); /* before the budget: write_file() */
	/* A file's value changes, not its directory: nothing to forget. */
	return write_file(p, false, "commit", key, P_FAST_COMMIT, &pp, &na, out,
			  &seq);
}

int pg_fast_remove(struct pg_layer *p, const char *key, struct dsfs_attr *out)
{
	struct pg_params pp = {0};
	struct layer_key k, pk;
	PGresult *r;
	bool root;
	int rc;

	if (split(key, &k, &pk, &root))
		return 1;
	pg_param_key(&pp, &k);
	pg_param_i64(&pp, root);
	pg_param_key(&pp, &pk);
	pg_param_i64(&pp, layer_time_ns(layer_now()));
	rc = pg_tx_fast(p, false, "remove", key, P_FAST_REMOVE, &pp, &r);
	if (rc != 1)
		pg_known_forget(p, key);
	if (rc == 0 && out)
		pg_row_attr(r, 0, 2, out); /* after used and seq */
	if (rc == 0)
		libpq.PQclear(r);
	return rc;
}

struct fetch_args {
	struct dsfs_attr *a;
	char **data;
	size_t *len;
};

static int fetch_fn(struct pg_tx *t, void *arg)
{
	enum {
		VALUE_COL = 12
	}; /* after P_GET's columns */
	struct fetch_args *f = arg;
	struct pg_params pp = {0};
	struct layer_key k;
	PGresult *r;
	size_t n;
	int rc;

	free(*f->data); /* a try before a reconnection */
	*f->data = NULL;
	if (layer_split_key(t->key, strlen(t->key), &k))
		return -ENOENT;
	pg_param_key(&pp, &k);
	rc = pg_one_row(t, P_GET_VALUE, &pp, &r);
	if (rc)
		return rc;
	pg_row_attr(r, 0, 0, f->a);
	n = (size_t)libpq.PQgetlength(r, 0, VALUE_COL);
	/* A value kept in the row, of the size the row says. */
	if (f->a->kind == DSFS_FILE && !libpq.PQgetisnull(r, 0, VALUE_COL) &&
	    n == f->a->size) {
		*f->data = malloc(n ? n : 1);
		if (*f->data) {
			memcpy(*f->data, libpq.PQgetvalue(r, 0, VALUE_COL), n);
			*f->len = n;
		} else {
			rc = -ENOMEM;
		}
	}
	libpq.PQclear(r);
	return rc;
}

int pg_fetch(struct pg_layer *p, const char *key, struct dsfs_attr *a,
	     char **data, size_t *len)
{
	struct fetch_args f = {a, data, len};
	int rc = pg_tx_run(p, PG_ONE, "lookup", key, fetch_fn, &f);

	if (rc) {
		free(*data);
		*data = NULL;
	}
	return rc;
}
