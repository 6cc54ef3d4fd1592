/*
 * image_check.c - checking a layer entry by entry, as dsfsctl's
 * install-factory (before it touches the store), mkfactory (on the image it
 * just built) and check (on a store's files) do.
 *
 * Every value is read back through the layer and checked as the mount
 * would check a write (validate.h), and against its recorded size, type
 * and token; whiteouts have no place in an image; and the usage the layer
 * records must be what its entries add up to.  install-factory trusts
 * neither the tool that built an image nor the file's history.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsfs.h"
#include "dsfsctl.h"
#include "layer.h"
#include "validate.h"

int key_push(char *buf, size_t cap, const char *name, size_t *was)
{
	size_t len = strlen(buf), n = strlen(name);
	size_t sep = len ? 1 : 0;

	*was = len;
	if (len + sep + n + 1 > cap)
		return -ENAMETOOLONG;
	if (sep)
		buf[len] = '/';
	memcpy(buf + len + sep, name, n + 1);
	return 0;
}

struct blobsize {
	char token[DSFS_TOKEN_LEN + 1];
	uint64_t size;
};

static int problem(struct walk *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int problem(struct walk *w, int rc, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->problems++;
	/* The report line must not run into the progress line. */
	progress_end(w->progress);
	if (w->report) {
		fprintf(w->report, "%s: %s: %s\n", w->label, w->key, msg);
		return 0;
	}
	return store_fail(w->e, rc, "%s: %s: %s", w->label, w->key, msg);
}

struct kid {
	char *name;
	struct dsfs_attr a;
};

struct kids {
	struct kid *v;
	size_t n, cap;
};

static int kids_add(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct kids *k = ctx;
	struct kid *nv;

	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 16;
		nv = realloc(k->v, k->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		k->v = nv;
	}
	k->v[k->n].name = strdup(name);
	if (!k->v[k->n].name)
		return -ENOMEM;
	k->v[k->n].a = *a;
	k->n++;
	return 0;
}

static void kids_free(struct kids *k)
{
	while (k->n > 0)
		free(k->v[--k->n].name);
	free(k->v);
}

static int cmp_kid(const void *a, const void *b)
{
	return strcmp(((const struct kid *)a)->name,
		      ((const struct kid *)b)->name);
}

static int note_blob(struct walk *w, const struct dsfs_attr *a)
{
	struct blobsize *nv;

	if (w->nblobs == w->capblobs) {
		w->capblobs = w->capblobs ? 2 * w->capblobs : 16;
		nv = realloc(w->blobs, w->capblobs * sizeof(*nv));
		if (!nv)
			return store_fail(w->e, -ENOMEM, "out of memory");
		w->blobs = nv;
	}
	memcpy(w->blobs[w->nblobs].token, a->token, sizeof(a->token));
	w->blobs[w->nblobs].size = a->size;
	w->nblobs++;
	return 0;
}

static int cmp_blob(const void *a, const void *b)
{
	return strcmp(((const struct blobsize *)a)->token,
		      ((const struct blobsize *)b)->token);
}

/* Read the value of the file at w->key through the layer and check it as
 * the mount would, and against its recorded size, type and token. */
static int check_value(struct walk *w, const struct dsfs_attr *a,
		       enum dsfs_content kind)
{
	struct dsfs_validator *v;
	struct dsfs_sha256 h;
	const char *type = NULL;
	char bad[256] = "", token[DSFS_TOKEN_LEN + 1] = "";
	uint64_t off = 0;
	ssize_t n;
	int rc = 0;

	v = validator_new(kind);
	if (!v)
		return store_fail(w->e, -ENOMEM, "out of memory");
	sha256_init(&h);
	/* Never more than the recorded size and one chunk: a damaged size
	 * must not make this read forever. */
	while (off <= a->size) {
		n = layer_read(w->l, w->key, off, w->buf, CTL_CHUNK);
		if (n < 0) {
			rc = problem(w, (int)n, "cannot read: %s",
				     strerror((int)-n));
			rc = rc ? rc : (int)n;
			goto out_v;
		}
		if (n == 0)
			break;
		if (!bad[0] && validator_feed(v, w->buf, (size_t)n) != 0)
			snprintf(bad, sizeof(bad), "%s", validator_reason(v));
		sha256_update(&h, w->buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (!bad[0] && validator_finish(v, &type) != 0)
		snprintf(bad, sizeof(bad), "%s", validator_reason(v));
	if (bad[0])
		rc = problem(w, -EINVAL, "%s%s",
			     kind == DSFS_CONTENT_JSON ? "invalid JSON: " : "",
			     bad);
	else if (off != a->size)
		rc = problem(w, -EINVAL,
			     "value has %llu bytes, its entry says %llu",
			     (unsigned long long)off,
			     (unsigned long long)a->size);
	else if (strcmp(type, a->type) != 0)
		rc = problem(w, -EINVAL,
			     "recorded type '%s', but the value is '%s'",
			     a->type, type);
	if (rc)
		goto out_v;
	if (kind == DSFS_CONTENT_IMAGE && off > 0)
		sha256_hex(&h, token);
	if (strcmp(token, a->token) != 0)
		rc = problem(w, -EINVAL,
			     "recorded token '%s', but the value's is '%s'",
			     a->token, token);
	else if (a->token[0])
		rc = note_blob(w, a);
	else
		w->used += a->size;
out_v:
	validator_free(v);
	return rc;
}

static int check_dir(struct walk *w, enum dsfs_content kind);

/* One child of the directory w->key. */
static int check_kid(struct walk *w, const struct kid *kid,
		     enum dsfs_content kind)
{
	size_t was;
	int rc;

	if (key_push(w->key, sizeof(w->key), kid->name, &was))
		return problem(w, -ENAMETOOLONG, "%s: key too long", kid->name);
	w->used += strlen(kid->name);
	if (name_check(kid->name) != 0) {
		rc = problem(w, -EINVAL, "name is not allowed");
		goto out;
	}
	progress_update(w->progress, w->dirs + w->files + w->whiteouts,
			w->used);
	switch (kid->a.kind) {
	case DSFS_DIR:
		w->dirs++;
		rc = check_dir(w, kind);
		break;
	case DSFS_FILE:
		w->files++;
		rc = check_value(w, &kid->a, kind);
		break;
	case DSFS_WHITEOUT:
		w->whiteouts++;
		rc = 0;
		if (w->image)
			rc = problem(w, -EINVAL, "whiteout in a factory image");
		break;
	default:
		rc = problem(w, -EINVAL, "unknown kind of entry %d",
			     (int)kid->a.kind);
	}
out:
	w->key[was] = '\0';
	return rc;
}

static int check_dir(struct walk *w, enum dsfs_content kind)
{
	struct kids k = {.n = 0};
	size_t i;
	int rc;

	rc = layer_list(w->l, w->key, kids_add, &k);
	if (rc) {
		rc = problem(w, rc, "cannot list: %s", strerror(-rc));
		goto out;
	}
	if (k.n)
		qsort(k.v, k.n, sizeof(*k.v), cmp_kid);
	for (i = 0; i < k.n && rc == 0; i++)
		rc = check_kid(w, &k.v[i], kind);
out:
	kids_free(&k);
	return rc;
}

int check_layer(struct walk *w)
{
	uint64_t used, budget;
	size_t i;
	int rc;

	w->buf = malloc(CTL_CHUNK);
	if (!w->buf)
		return store_fail(w->e, -ENOMEM, "out of memory");
	snprintf(w->key, sizeof(w->key), "kv");
	rc = check_dir(w, DSFS_CONTENT_JSON);
	if (rc == 0) {
		snprintf(w->key, sizeof(w->key), "images");
		rc = check_dir(w, DSFS_CONTENT_IMAGE);
	}
	if (rc)
		goto out;
	if (w->nblobs)
		qsort(w->blobs, w->nblobs, sizeof(*w->blobs), cmp_blob);
	for (i = 0; i < w->nblobs; i++) {
		if (i > 0 &&
		    strcmp(w->blobs[i].token, w->blobs[i - 1].token) == 0)
			continue;
		w->used += w->blobs[i].size;
	}
	snprintf(w->key, sizeof(w->key), "usage");
	rc = layer_usage(w->l, &used, &budget);
	if (rc)
		rc = problem(w, rc, "%s", strerror(-rc));
	else if (used != w->used)
		rc = problem(w, -EINVAL,
			     "records %llu bytes used, but its entries add up "
			     "to %llu",
			     (unsigned long long)used,
			     (unsigned long long)w->used);
out:
	free(w->buf);
	free(w->blobs);
	w->buf = NULL;
	w->blobs = NULL;
	return rc;
}

unsigned check_layer_report(struct dsfs_layer *l, const char *label, bool image,
			    FILE *out, unsigned problems,
			    enum progress_mode progress)
{
	struct store_error e = {.text = ""};
	struct walk w = {
		.l = l, .label = label, .image = image, .report = out, .e = &e};
	struct progress pr;
	char what[80];
	uint64_t used = 0, budget;
	int rc;

	snprintf(what, sizeof(what), "check %s", label);
	if (layer_usage(l, &used, &budget) != 0)
		used = 0;
	progress_begin(&pr, progress, what, 0, used);
	w.progress = &pr;
	rc = check_layer(&w);
	progress_end(&pr);
	problems += w.problems;
	if (rc && !w.problems) {
		fprintf(out, "%s: %s\n", label, e.text);
		problems++;
	}
	fprintf(out,
		"%s: %llu directories, %llu files, %llu whiteouts, %llu "
		"bytes used: %s\n",
		label, (unsigned long long)w.dirs, (unsigned long long)w.files,
		(unsigned long long)w.whiteouts, (unsigned long long)w.used,
		problems ? "PROBLEMS" : "ok");
	return problems;
}

int check_image_file(const char *image, enum progress_mode progress,
		     struct store_error *e)
{
	struct walk w = {.label = image, .image = true, .e = e};
	const char *why = NULL;
	struct progress pr;
	char what[80];
	int rc;

	rc = layer_sqlite_open_image(image, "factory",
				     DSFS_DEFAULT_FACTORY_SIZE, &w.l, &why);
	if (rc)
		return store_fail(e, rc, "%s: not a factory image: %s", image,
				  why && *why ? why : strerror(-rc));
	snprintf(what, sizeof(what), "check %s", image);
	progress_begin(&pr, progress, what, 0, 0);
	w.progress = &pr;
	rc = check_layer(&w);
	progress_end(&pr);
	layer_close(w.l);
	return rc;
}
