/*
 * archive_load.c - dsfsctl load --archive: a store from an archive
 * (archive.c), all of it or nothing.
 *
 * The whole archive is read and checked before anything changes: the
 * magic line, the end record's SHA-256 over everything before it (a
 * damaged or truncated archive is refused whole), every header, every key
 * and name, every value (JSON under kv/, the blob's SHA-256 against its
 * token under images/), and the record count.  Then:
 *   1. the factory records, if any, are written into STORE/factory.db.new,
 *      a new image (not yet in use);
 *   2. the runtime layer is made exactly the archive's runtime records:
 *      what it held is removed and the records written, in one
 *      layer_apply() (on any backend that has it);
 *   3. the new image is installed over STORE/factory.db.
 * A failure in 1 or 2 leaves the store as it was.  Steps 1 and 2 are
 * archive_read() and archive_apply(), so that a mounted daemon
 * (control_admin.c) runs only step 2 under the stack's lock and installs
 * the image its own way (a rename, then the new layer in the stack);
 * archive_load() runs all three on an unmounted store.
 */
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "validate.h"

struct blob {
	char tk[DSFS_TOKEN_LEN + 1];
	const char *data;
	size_t len;
};

struct archive {
	struct store *s;
	const char *label;
	const char *buf;
	size_t len, pos;
	struct blob *blobs;
	size_t nblobs, capblobs;
	struct layer_change *c[DSFS_NLAYERS]; /* runtime, factory */
	size_t n[DSFS_NLAYERS], cap[DSFS_NLAYERS];
	uint64_t entries;
	struct progress progress; /* records read, bytes of the archive */
	json_object **objs;	  /* the headers: keys point into them */
	size_t nobjs;
	char *factory_new; /* STORE/factory.db.new, once written */
	bool installed;	   /* ...and renamed over STORE/factory.db */
	struct store_error *e;
};

static int bad(struct archive *in, size_t off, const char *why)
{
	return store_fail(in->e, -EINVAL,
			  "%s: byte %zu: %s: archive refused, nothing changed",
			  in->label, off, why);
}

/* The next line (without its LF), or NULL at the end. */
static const char *next_line(struct archive *in, size_t *len)
{
	const char *s = in->buf + in->pos, *nl;

	if (in->pos >= in->len)
		return NULL;
	nl = memchr(s, '\n', in->len - in->pos);
	if (!nl)
		return NULL;
	*len = (size_t)(nl - s);
	in->pos += *len + 1;
	return s;
}

static int parse_time(const char *s, struct timespec *ts)
{
	char *end = NULL;
	long long sec, ns;

	if (!s)
		return -EINVAL;
	errno = 0;
	sec = strtoll(s, &end, 10);
	if (errno || end == s || *end != '.' || strlen(end + 1) != 9 ||
	    strspn(end + 1, "0123456789") != 9)
		return -EINVAL;
	ns = strtoll(end + 1, NULL, 10);
	ts->tv_sec = (time_t)sec;
	ts->tv_nsec = (long)ns;
	return 0;
}

static const char *jstr(json_object *o, const char *k)
{
	json_object *v;

	return json_object_object_get_ex(o, k, &v) &&
			       json_object_is_type(v, json_type_string) ?
		       json_object_get_string(v) :
		       NULL;
}

static int64_t jint(json_object *o, const char *k, bool *ok)
{
	json_object *v;

	if (!json_object_object_get_ex(o, k, &v) ||
	    !json_object_is_type(v, json_type_int)) {
		*ok = false;
		return 0;
	}
	return json_object_get_int64(v);
}

/* A key dsfs could have stored: kv/... or images/..., good names. */
static bool key_ok(const char *key)
{
	char *k = strdup(key), *p, *save = NULL;
	bool ok;

	if (!k)
		return false;
	ok = (strncmp(key, "kv/", 3) == 0 || strncmp(key, "images/", 7) == 0) &&
	     strlen(key) < DSFS_KEY_MAX;
	for (p = strtok_r(k, "/", &save); ok && p;
	     p = strtok_r(NULL, "/", &save))
		ok = name_check(p) == 0;
	ok = ok && !strstr(key, "//") && key[strlen(key) - 1] != '/';
	free(k);
	return ok;
}

static int add_change(struct archive *in, int layer,
		      const struct layer_change *c)
{
	if (in->n[layer] == in->cap[layer]) {
		size_t cap = in->cap[layer] ? in->cap[layer] * 2 : 64;
		void *p = realloc(in->c[layer], cap * sizeof(*in->c[layer]));

		if (!p)
			return store_fail(in->e, -ENOMEM, "out of memory");
		in->c[layer] = p;
		in->cap[layer] = cap;
	}
	in->c[layer][in->n[layer]++] = *c;
	return 0;
}

static const struct blob *find_blob(struct archive *in, const char *tk)
{
	size_t i;

	for (i = 0; i < in->nblobs; i++)
		if (strcmp(in->blobs[i].tk, tk) == 0)
			return &in->blobs[i];
	return NULL;
}

/* The payload of n bytes after a header, then its LF. */
static int payload(struct archive *in, size_t off, int64_t n, const char **data)
{
	if (n < 0 || (uint64_t)n > in->len - in->pos ||
	    in->len - in->pos - (size_t)n < 1 ||
	    in->buf[in->pos + (size_t)n] != '\n')
		return bad(in, off, "payload does not match its size");
	*data = in->buf + in->pos;
	in->pos += (size_t)n + 1;
	return 0;
}

static int blob_record(struct archive *in, size_t off, json_object *o)
{
	const char *tk = jstr(o, "tk"), *data = NULL;
	struct dsfs_sha256 sha;
	bool ok = true;
	int64_t n = jint(o, "n", &ok);
	char hex[65];
	int rc;

	if (!tk || strlen(tk) != DSFS_TOKEN_LEN || !ok)
		return bad(in, off, "bad blob record");
	rc = payload(in, off, n, &data);
	if (rc)
		return rc;
	sha256_init(&sha);
	sha256_update(&sha, data, (size_t)n);
	sha256_hex(&sha, hex);
	if (strcmp(hex, tk) != 0 || !image_type(data, (size_t)n))
		return bad(in, off, "image bytes do not match their token");
	if (find_blob(in, tk))
		return 0;
	if (in->nblobs == in->capblobs) {
		size_t cap = in->capblobs ? in->capblobs * 2 : 16;
		void *p = realloc(in->blobs, cap * sizeof(*in->blobs));

		if (!p)
			return store_fail(in->e, -ENOMEM, "out of memory");
		in->blobs = p;
		in->capblobs = cap;
	}
	snprintf(in->blobs[in->nblobs].tk, sizeof(in->blobs[0].tk), "%s", tk);
	in->blobs[in->nblobs].data = data;
	in->blobs[in->nblobs++].len = (size_t)n;
	return 0;
}

static int entry_record(struct archive *in, size_t off, json_object *o,
			const char *t)
{
	const char *key = jstr(o, "k"), *l = jstr(o, "l"), *y, *tk, *data = "";
	struct layer_change c = {0};
	bool ok = true;
	int layer, rc;
	int64_t n = 0;
	json_object *v;

	layer = l && strcmp(l, "runtime") == 0 ? L_RUNTIME :
		l && strcmp(l, "factory") == 0 ? L_FACTORY :
						 -1;
	if (layer < 0 || !key || !key_ok(key))
		return bad(in, off, "bad layer or key");
	c.key = key;
	if (strcmp(t, "w") == 0) {
		if (layer == L_FACTORY)
			return bad(in, off, "a whiteout in the factory layer");
		c.op = LAYER_CH_WHITEOUT;
		return add_change(in, layer, &c);
	}
	c.attr.mode = (uint32_t)jint(o, "m", &ok) & 07777;
	c.attr.uid = (uint32_t)jint(o, "u", &ok);
	c.attr.gid = (uint32_t)jint(o, "g", &ok);
	if (!ok || parse_time(jstr(o, "a"), &c.attr.atime) ||
	    parse_time(jstr(o, "mt"), &c.attr.mtime) ||
	    parse_time(jstr(o, "c"), &c.attr.ctime))
		return bad(in, off, "bad attributes");
	if (strcmp(t, "d") == 0) {
		c.op = LAYER_CH_MKDIR;
		c.attr.kind = DSFS_DIR;
		c.attr.opaque = json_object_object_get_ex(o, "o", &v) &&
				json_object_get_boolean(v);
		return add_change(in, layer, &c);
	}
	c.op = LAYER_CH_COMMIT;
	c.attr.kind = DSFS_FILE;
	y = jstr(o, "y");
	tk = jstr(o, "tk");
	if (!y || strlen(y) >= sizeof(c.attr.type))
		return bad(in, off, "bad type");
	snprintf(c.attr.type, sizeof(c.attr.type), "%s", y);
	if (tk) {
		const struct blob *b = find_blob(in, tk);

		if (!b || strncmp(key, "images/", 7) != 0)
			return bad(in, off, "image without its blob");
		snprintf(c.attr.token, sizeof(c.attr.token), "%s", tk);
		c.data = b->data;
		c.len = b->len;
		return add_change(in, layer, &c);
	}
	n = jint(o, "n", &ok);
	if (!ok)
		return bad(in, off, "bad size");
	rc = payload(in, off, n, &data);
	if (rc)
		return rc;
	if (strncmp(key, "kv/", 3) == 0 &&
	    validate_buffer(DSFS_CONTENT_JSON, data, (size_t)n, NULL, NULL))
		return bad(in, off, "value is not JSON");
	if (strncmp(key, "images/", 7) == 0 && n > 0)
		return bad(in, off, "image without its token");
	c.data = data;
	c.len = (size_t)n;
	return add_change(in, layer, &c);
}

/* Check the whole archive and turn it into change sets. */
static int parse(struct archive *in, json_object ***objs, size_t *nobjs)
{
	size_t len, off, end_at, cap = 0;
	const char *line, *t, *hex;
	struct dsfs_sha256 sha;
	char sum[65];
	json_object *o;
	bool ok = true;
	int rc = 0;

	line = next_line(in, &len);
	if (!line || len != strlen(ARCHIVE_MAGIC) ||
	    memcmp(line, ARCHIVE_MAGIC, len) != 0)
		return bad(in, 0, "not a dsfs archive (version 1)");
	/* The end record is the last line. */
	if (in->len < 2 || in->buf[in->len - 1] != '\n')
		return bad(in, in->len, "truncated (no end record)");
	for (end_at = in->len - 1; end_at > 0 && in->buf[end_at - 1] != '\n';)
		end_at--;
	o = json_tokener_parse(in->buf + end_at);
	t = o ? jstr(o, "t") : NULL;
	hex = o ? jstr(o, "sha256") : NULL;
	if (!t || strcmp(t, "end") != 0 || !hex) {
		json_object_put(o);
		return bad(in, end_at, "truncated (no end record)");
	}
	sha256_init(&sha);
	sha256_update(&sha, in->buf, end_at);
	sha256_hex(&sha, sum);
	in->entries = (uint64_t)jint(o, "entries", &ok);
	rc = strcmp(sum, hex) != 0 || !ok ?
		     bad(in, end_at,
			 "checksum mismatch: damaged or truncated") :
		     0;
	json_object_put(o);
	while (rc == 0 && in->pos < end_at) {
		progress_update(&in->progress, *nobjs, in->pos);
		off = in->pos;
		line = next_line(in, &len);
		if (!line || in->pos > end_at)
			return bad(in, off, "truncated record");
		o = json_tokener_parse(line); /* stops at its LF */
		t = o ? jstr(o, "t") : NULL;
		if (!t) {
			json_object_put(o);
			return bad(in, off, "bad record header");
		}
		/* Keys point into the headers: keep them until applied. */
		if (*nobjs == cap) {
			void *p;

			cap = cap ? cap * 2 : 256;
			p = realloc(*objs, cap * sizeof(**objs));
			if (!p) {
				json_object_put(o);
				return store_fail(in->e, -ENOMEM,
						  "out of memory");
			}
			*objs = p;
		}
		(*objs)[(*nobjs)++] = o;
		if (strcmp(t, "b") == 0)
			rc = blob_record(in, off, o);
		else if (strlen(t) == 1 && strchr("dfw", t[0]))
			rc = entry_record(in, off, o, t);
		else
			rc = bad(in, off, "unknown record type");
	}
	if (rc == 0 && in->entries != in->n[L_RUNTIME] + in->n[L_FACTORY])
		rc = bad(in, end_at, "record count does not match");
	return rc;
}

/* The slot of in->c[] that holds the removals of what the runtime layer
 * held (the ephemeral layer is never loaded). */
#define CLEAR L_EPHEMERAL

/* Remove everything the runtime layer holds under dir, children first:
 * the first changes of the set. */
static int clear_plan(struct archive *in, const struct admin_env *env,
		      const char *dir)
{
	struct layer_change c = {.op = LAYER_CH_REMOVE};
	struct tree_dir d;
	size_t i;
	int rc;

	rc = tree_list(env, dir, L_RUNTIME, L_RUNTIME, L_RUNTIME, &d);
	for (i = 0; rc == 0 && i < d.n; i++) {
		char *k = tree_join(dir, d.items[i].name);

		if (!k) {
			rc = -ENOMEM;
			break;
		}
		if (d.items[i].attr.kind == DSFS_DIR)
			rc = clear_plan(in, env, k);
		c.key = k;
		if (rc == 0)
			rc = add_change(in, CLEAR, &c);
		if (rc)
			free(k);
	}
	tree_dir_free(&d);
	return rc;
}

/* Step 2: the runtime layer becomes the archive's runtime records. */
static int replace_runtime(struct archive *in, const struct admin_env *env)
{
	size_t n = in->n[L_RUNTIME], i;
	struct layer_change *c = NULL;
	int rc;

	rc = clear_plan(in, env, "kv");
	if (rc == 0)
		rc = clear_plan(in, env, "images");
	if (rc == 0)
		c = calloc(in->n[CLEAR] + n + 1, sizeof(*c));
	if (rc == 0 && !c)
		rc = -ENOMEM;
	if (c && in->n[CLEAR])
		memcpy(c, in->c[CLEAR], in->n[CLEAR] * sizeof(*c));
	if (c && n)
		memcpy(c + in->n[CLEAR], in->c[L_RUNTIME], n * sizeof(*c));
	n += in->n[CLEAR];
	if (rc == 0)
		rc = layer_apply(env->layer[L_RUNTIME], c, n);
	if (rc == 0)
		rc = layer_sync(env->layer[L_RUNTIME]);
	if (rc)
		store_fail(in->e, rc, "%s: runtime layer: %s: nothing changed",
			   in->label, strerror(-rc));
	for (i = 0; i < in->n[CLEAR]; i++)
		free((char *)in->c[CLEAR][i].key);
	free(c);
	return rc;
}

/* Step 1: write the factory records into STORE/factory.db.new. */
static int stage_factory(struct archive *in)
{
	struct dsfs_layer *img = NULL;
	const char *why = NULL;
	int rc;

	in->factory_new = store_file(in->s->path, STORE_FACTORY_NEW);
	if (!in->factory_new)
		return store_fail(in->e, -ENOMEM, "out of memory");
	unlinkat(in->s->dirfd, STORE_FACTORY_NEW, 0);
	rc = layer_sqlite_open(in->factory_new, "factory", ARCHIVE_MAX, true,
			       &img, &why);
	if (rc == 0)
		rc = layer_apply(img, in->c[L_FACTORY], in->n[L_FACTORY]);
	if (img)
		layer_close(img);
	if (rc == 0)
		rc = store_fsync_path(in->factory_new, 0);
	if (rc)
		store_fail(in->e, rc, "%s: %s", in->factory_new,
			   why ? why : strerror(-rc));
	return rc;
}

int archive_read(struct store *s, const char *label, const char *buf,
		 size_t len, enum progress_mode progress, struct archive **out,
		 struct store_error *e)
{
	struct archive *in;
	char what[80];
	int rc;

	*out = NULL;
	/* The errno is returned as a constant: the analyser does not see
	 * that store_fail() returns its argument. */
	if (len > ARCHIVE_MAX) {
		store_fail(e, -EFBIG, "%s: archive too large", label);
		return -EFBIG;
	}
	in = calloc(1, sizeof(*in));
	if (!in) {
		store_fail(e, -ENOMEM, "out of memory");
		return -ENOMEM;
	}
	*in = (struct archive){
		.s = s, .label = label, .buf = buf, .len = len, .e = e};
	snprintf(what, sizeof(what), "load --archive %s", label);
	progress_begin(&in->progress, progress, what, 0, len);
	rc = parse(in, &in->objs, &in->nobjs);
	progress_end(&in->progress);
	if (rc == 0 && in->n[L_FACTORY])
		rc = stage_factory(in);
	if (rc) {
		archive_free(in);
		return rc;
	}
	*out = in;
	return 0;
}

int archive_apply(struct archive *in, const struct admin_env *env)
{
	return replace_runtime(in, env);
}

bool archive_has_factory(const struct archive *in)
{
	return in->factory_new != NULL;
}

void archive_free(struct archive *in)
{
	size_t i;

	if (!in)
		return;
	if (in->factory_new && !in->installed)
		unlinkat(in->s->dirfd, STORE_FACTORY_NEW, 0);
	for (i = 0; i < in->nobjs; i++)
		json_object_put(in->objs[i]);
	free(in->objs);
	for (i = 0; i < DSFS_NLAYERS; i++)
		free(in->c[i]);
	free(in->blobs);
	free(in->factory_new);
	free(in);
}

int archive_load(struct store *s, struct admin_env *env, const char *label,
		 const char *buf, size_t len, struct store_error *e)
{
	struct archive *in;
	bool renamed;
	int rc;

	rc = archive_read(s, label, buf, len, env->progress, &in, e);
	if (rc)
		return rc;
	rc = archive_apply(in, env);
	if (rc == 0 && archive_has_factory(in)) {
		rc = store_install_new(s->dirfd, &renamed);
		in->installed = renamed;
		if (rc)
			store_fail(e, rc, "%s/%s: %s", s->path, STORE_FACTORY,
				   strerror(-rc));
	}
	archive_free(in);
	return rc;
}
