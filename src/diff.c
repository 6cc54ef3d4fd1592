/*
 * diff.c - dsfsctl diff and the selective factory reset: what the runtime
 * and ephemeral layers change against the factory, and taking some of it
 * back.
 *
 * diff walks kv/ and images/ in the merged view and in the factory layer
 * side by side, by name, and prints one line per entry that differs:
 *	added PATH LAYER	in the merged view, not in the factory
 *	changed PATH LAYER	both, but another value, kind, mode or owner
 *	removed PATH LAYER	in the factory, hidden (a whiteout)
 * (a directory's PATH ends in '/'; an added or removed directory stands
 * for what is in it), or with --json one JSON object a line.
 *
 * A reset limited by --prefix and --keep removes from the runtime layer,
 * in one layer_apply(), every entry at or below the prefix that is not a
 * kept path, inside one, or a directory on the way to one; then the same
 * from the ephemeral layer (memory).  What the merged view shows there is
 * the factory's again.  --dry-run prints the diff lines the reset would
 * take back, and changes nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

struct filter {
	const char *prefix; /* a key; NULL: all */
	char **keep;	    /* keys */
	size_t nkeep;
};

static bool at_or_below(const char *key, const char *top)
{
	size_t n = strlen(top);

	return strncmp(key, top, n) == 0 && (key[n] == '\0' || key[n] == '/');
}

/* Is key one the reset takes back? */
static bool in_scope(const struct filter *f, const char *key)
{
	size_t i;

	if (f->prefix && !at_or_below(key, f->prefix))
		return false;
	for (i = 0; i < f->nkeep; i++)
		if (at_or_below(key, f->keep[i]))
			return false;
	return true;
}

/* Is key a directory on the way to a kept path? */
static bool holds_kept(const struct filter *f, const char *key)
{
	size_t i;

	for (i = 0; i < f->nkeep; i++)
		if (at_or_below(f->keep[i], key))
			return true;
	return false;
}

struct differ {
	const struct admin_env *env;
	const struct filter *f; /* NULL: every line */
	bool json;
	FILE *out;
	struct store_error *e;
};

static void line(struct differ *d, const char *op, const char *key,
		 const struct tree_item *it)
{
	const char *slash = it->attr.kind == DSFS_DIR ? "/" : "";
	const char *layer = layer_label(it->layer);

	if (d->f && !in_scope(d->f, key))
		return;
	if (!d->json) {
		fprintf(d->out, "%s %s%s %s\n", op, key, slash, layer);
		return;
	}
	fprintf(d->out, "{\"op\":\"%s\",\"path\":", op);
	json_put_string(d->out, key);
	fprintf(d->out, ",\"kind\":\"%s\",\"layer\":\"%s\"}\n",
		it->attr.kind == DSFS_DIR ? "directory" : "file", layer);
}

/* Do two files differ in value, mode or owner? */
static int file_differs(struct differ *d, const char *key,
			const struct tree_item *m, const struct tree_item *f,
			bool *differs)
{
	char *a = NULL, *b = NULL;
	size_t alen = 0, blen = 0;
	int rc;

	*differs = m->attr.mode != f->attr.mode || m->attr.uid != f->attr.uid ||
		   m->attr.gid != f->attr.gid ||
		   strcmp(m->attr.token, f->attr.token) != 0 ||
		   m->attr.size != f->attr.size;
	if (*differs || m->attr.token[0])
		return 0; /* an image's token names its bytes */
	rc = tree_read(d->env->layer[m->layer], key, &m->attr, &a, &alen);
	if (rc == 0)
		rc = tree_read(d->env->layer[f->layer], key, &f->attr, &b,
			       &blen);
	if (rc == 0)
		*differs = alen != blen || memcmp(a, b, alen) != 0;
	free(a);
	free(b);
	return rc ? store_fail(d->e, rc, "%s: %s", key, strerror(-rc)) : 0;
}

static int walk(struct differ *d, const char *key, int mlimit, bool mdir,
		bool fdir)
{
	struct tree_dir m = {0}, f = {0};
	size_t i = 0, j = 0;
	int rc = 0;

	if (mdir)
		rc = tree_list(d->env, key, 0, mlimit, -1, &m);
	if (rc == 0 && fdir && d->env->layer[L_FACTORY])
		rc = tree_list(d->env, key, L_FACTORY, L_FACTORY, -1, &f);
	if (rc)
		rc = store_fail(d->e, rc, "%s: %s", key, strerror(-rc));
	while (rc == 0 && (i < m.n || j < f.n)) {
		int c = i == m.n ? 1 :
			j == f.n ? -1 :
				   strcmp(m.items[i].name, f.items[j].name);
		struct tree_item *mi = c <= 0 ? &m.items[i] : NULL;
		struct tree_item *fi = c >= 0 ? &f.items[j] : NULL;
		char *child = tree_join(key, c <= 0 ? m.items[i].name :
						      f.items[j].name);
		bool differs = false;

		if (!child) {
			rc = store_fail(d->e, -ENOMEM, "out of memory");
			break;
		}
		if (!fi) {
			line(d, "added", child, mi);
		} else if (!mi) {
			struct tree_item w = *fi;

			w.layer = L_RUNTIME;
			line(d, "removed", child, &w);
		} else if (mi->attr.kind != fi->attr.kind) {
			line(d, "changed", child, mi);
		} else if (mi->attr.kind == DSFS_DIR) {
			if (mi->layer != L_FACTORY &&
			    (mi->attr.mode != fi->attr.mode ||
			     mi->attr.uid != fi->attr.uid ||
			     mi->attr.gid != fi->attr.gid))
				line(d, "changed", child, mi);
			rc = walk(d, child, mi->limit, true, true);
		} else if (mi->layer != L_FACTORY) {
			rc = file_differs(d, child, mi, fi, &differs);
			if (rc == 0 && differs)
				line(d, "changed", child, mi);
		}
		free(child);
		i += c <= 0;
		j += c >= 0;
	}
	tree_dir_free(&m);
	tree_dir_free(&f);
	return rc;
}

static int diff_all(struct differ *d)
{
	int rc = walk(d, "kv", L_FACTORY, true, true);

	return rc ? rc : walk(d, "images", L_FACTORY, true, true);
}

int diff_run(const struct admin_env *env, bool json, FILE *out,
	     struct store_error *e)
{
	struct differ d = {.env = env, .json = json, .out = out, .e = e};

	return diff_all(&d);
}

/* ---- the selective reset --------------------------------------------- */

struct undo {
	struct dsfs_layer *l;
	const struct filter *f;
	struct layer_change *c;
	size_t n, cap;
	struct store_error *e;
};

static int undo_add(struct undo *u, const char *key)
{
	char *k = strdup(key);

	if (k && u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 64;
		void *q = realloc(u->c, cap * sizeof(*u->c));

		if (!q) {
			free(k);
			k = NULL;
		} else {
			u->c = q;
			u->cap = cap;
		}
	}
	if (!k)
		return store_fail(u->e, -ENOMEM, "out of memory");
	memset(&u->c[u->n], 0, sizeof(u->c[0]));
	u->c[u->n].op = LAYER_CH_REMOVE;
	u->c[u->n++].key = k;
	return 0;
}

/* Plan the removal of what the layer holds under dir, children first. */
static int undo_walk(struct undo *u, const char *dir)
{
	struct tree_dir d;
	struct admin_env one = {.layer = {u->l}};
	size_t i;
	int rc;

	rc = tree_list(&one, dir, 0, 0, 0, &d);
	for (i = 0; rc == 0 && i < d.n; i++) {
		char *child = tree_join(dir, d.items[i].name);

		if (!child) {
			rc = store_fail(u->e, -ENOMEM, "out of memory");
			break;
		}
		if (d.items[i].attr.kind == DSFS_DIR &&
		    (!u->f->prefix || at_or_below(child, u->f->prefix) ||
		     at_or_below(u->f->prefix, child)))
			rc = undo_walk(u, child);
		if (rc == 0 && in_scope(u->f, child) &&
		    !holds_kept(u->f, child))
			rc = undo_add(u, child);
		free(child);
	}
	tree_dir_free(&d);
	return rc;
}

static void undo_free(struct undo *u)
{
	size_t i;

	for (i = 0; i < u->n; i++)
		free((char *)u->c[i].key);
	free(u->c);
}

/* A --prefix or --keep operand as a key: "kv/..." unless it names the
 * images/ tree. */
static char *scope_key(const char *path)
{
	if (at_or_below(path, "kv") || at_or_below(path, "images"))
		return strdup(path);
	return path[0] ? tree_join("kv", path) : strdup("kv");
}

static int reset_layer(struct admin_env *env, int layer, const struct filter *f,
		       struct store_error *e)
{
	struct undo u = {.l = env->layer[layer], .f = f, .e = e};
	size_t i;
	int rc;

	if (!u.l)
		return 0;
	rc = undo_walk(&u, "kv");
	if (rc == 0)
		rc = undo_walk(&u, "images");
	if (rc == 0 && layer == L_RUNTIME) {
		rc = layer_apply(u.l, u.c, u.n);
		if (rc == 0)
			rc = layer_sync(u.l);
	} else {
		/* The ephemeral layer is memory: nothing to make durable
		 * and no crash to survive. */
		for (i = 0; rc == 0 && i < u.n; i++)
			rc = layer_remove(u.l, u.c[i].key);
	}
	if (rc)
		store_fail(e, rc,
			   "%s layer: factory reset: %s: nothing "
			   "changed there",
			   layer_label(layer), strerror(-rc));
	for (i = 0; rc == 0 && env->changed && i < u.n; i++)
		env->changed(env->arg, u.c[i].key);
	undo_free(&u);
	return rc;
}

int reset_run(struct admin_env *env, const char *prefix, char **keep,
	      size_t nkeep, bool dry_run, FILE *out, struct store_error *e)
{
	struct filter f = {.nkeep = nkeep};
	char *p = NULL, **k = calloc(nkeep + 1, sizeof(*k));
	size_t i;
	int rc = 0;

	if (!k)
		return store_fail(e, -ENOMEM, "out of memory");
	if (prefix && !(p = scope_key(prefix)))
		rc = -ENOMEM;
	for (i = 0; rc == 0 && i < nkeep; i++)
		if (!(k[i] = scope_key(keep[i])))
			rc = -ENOMEM;
	f.prefix = p;
	f.keep = k;
	if (rc) {
		rc = store_fail(e, rc, "out of memory");
	} else if (dry_run) {
		struct differ d = {.env = env, .f = &f, .out = out, .e = e};

		rc = diff_all(&d);
	} else {
		rc = reset_layer(env, L_RUNTIME, &f, e);
		if (rc == 0)
			rc = reset_layer(env, L_EPHEMERAL, &f, e);
	}
	for (i = 0; i < nkeep; i++)
		free(k[i]);
	free(k);
	free(p);
	return rc;
}
