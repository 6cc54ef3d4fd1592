/*
 * admin_tree.c - the kv/ tree as the admin commands read it, and
 * admin_run(), which parses a command's arguments and runs it.
 *
 * The merged view is resolved the way overlay.c resolves it (the upper
 * layer that has a name decides; a whiteout hides the name; an opaque
 * directory hides the lower layers' children), but over any set of layers
 * through layer.h alone: dsfsctl has no stack offline, and the daemon's
 * admin request holds the stack's lock while it reads the layers here.
 * Listings are sorted by name, so a dump or a diff is the same text
 * whoever makes it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

const char *layer_label(int layer)
{
	static const char *const names[DSFS_NLAYERS] = {
		[L_EPHEMERAL] = "ephemeral",
		[L_RUNTIME] = "runtime",
		[L_FACTORY] = "factory",
	};

	return layer >= 0 && layer < DSFS_NLAYERS ? names[layer] : "?";
}

char *tree_join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *s = malloc(a + b + 2);

	if (s)
		snprintf(s, a + b + 2, "%s/%s", dir, name);
	return s;
}

void json_put_string(FILE *out, const char *s)
{
	const unsigned char *p;

	fputc('"', out);
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(out, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(out, "\\u%04x", *p);
		else
			fputc(*p, out);
	}
	fputc('"', out);
}

struct gather {
	struct tree_dir *d;
	int layer;
	int rc;
};

static int gather_cb(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct gather *g = ctx;
	struct tree_dir *d = g->d;
	struct tree_item *it;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		void *p = realloc(d->items, cap * sizeof(*d->items));

		if (!p)
			return g->rc = -ENOMEM;
		d->items = p;
		d->cap = cap;
	}
	it = &d->items[d->n];
	it->name = strdup(name);
	if (!it->name)
		return g->rc = -ENOMEM;
	it->layer = g->layer;
	it->attr = *a;
	d->n++;
	return 0;
}

/* By name, then upper layer first: the first of each name decides. */
static int item_cmp(const void *x, const void *y)
{
	const struct tree_item *a = x, *b = y;
	int c = strcmp(a->name, b->name);

	return c ? c : a->layer - b->layer;
}

void tree_dir_free(struct tree_dir *d)
{
	while (d->n)
		free(d->items[--d->n].name);
	free(d->items);
	d->items = NULL;
	d->cap = 0;
}

int tree_list(const struct admin_env *env, const char *key, int from, int limit,
	      int only, struct tree_dir *out)
{
	struct gather g = {.d = out};
	size_t i, j;
	int l, rc;

	memset(out, 0, sizeof(*out));
	for (l = only >= 0 ? only : from; l <= (only >= 0 ? only : limit);
	     l++) {
		if (!env->layer[l])
			continue;
		g.layer = l;
		rc = layer_list(env->layer[l], key, gather_cb, &g);
		if (g.rc)
			rc = g.rc;
		/* Absent from this layer, or a file here under a directory
		 * of an upper layer: nothing to add. */
		if (rc && rc != -ENOENT && rc != -ENOTDIR) {
			tree_dir_free(out);
			return rc;
		}
	}
	if (out->n) /* qsort(NULL, 0, ...) is undefined */
		qsort(out->items, out->n, sizeof(*out->items), item_cmp);
	/* A lower layer's entry of a name already seen is hidden; mark it
	 * (limit -1) while every name is still there to compare. */
	for (i = out->n; i-- > 1;)
		out->items[i].limit =
			strcmp(out->items[i - 1].name, out->items[i].name) ? 0 :
									     -1;
	if (out->n)
		out->items[0].limit = 0;
	for (i = j = 0; i < out->n; i++) {
		struct tree_item *it = &out->items[i];
		bool dup = it->limit < 0;

		if (dup || (only < 0 && it->attr.kind == DSFS_WHITEOUT) ||
		    scratch_name(env->scratch, it->name)) {
			free(it->name);
			continue;
		}
		it->limit = it->attr.kind == DSFS_DIR && it->attr.opaque &&
					    only < 0 ?
				    it->layer :
				    limit;
		out->items[j++] = *it;
	}
	out->n = j;
	return 0;
}

int tree_lookup(const struct admin_env *env, const char *key, int from,
		int only, struct tree_item *out)
{
	int limit = DSFS_NLAYERS - 1, l, rc = -ENOENT;
	const char *p = strchr(key, '/');
	char *prefix;

	memset(out, 0, sizeof(*out));
	if (only >= 0) {
		rc = env->layer[only] ?
			     layer_lookup(env->layer[only], key, &out->attr) :
			     -ENOENT;
		if (rc == 0 && out->attr.kind == DSFS_WHITEOUT)
			rc = -ENOENT;
		out->layer = out->limit = only;
		return rc;
	}
	if (!p) {
		layer_root_attr(&out->attr);
		out->layer = from;
		out->limit = limit;
		return 0;
	}
	prefix = strdup(key);
	if (!prefix)
		return -ENOMEM;
	for (;;) {
		p = strchr(p + 1, '/');
		if (p)
			prefix[p - key] = '\0';
		rc = -ENOENT;
		for (l = from; l <= limit; l++) {
			if (!env->layer[l])
				continue;
			rc = layer_lookup(env->layer[l], prefix, &out->attr);
			if (rc != -ENOENT)
				break;
		}
		if (rc == 0 && out->attr.kind == DSFS_WHITEOUT)
			rc = -ENOENT;
		if (rc)
			break;
		out->layer = l;
		if (out->attr.kind == DSFS_DIR && out->attr.opaque)
			limit = l;
		out->limit = limit;
		if (!p)
			break;
		if (out->attr.kind != DSFS_DIR) {
			rc = -ENOTDIR;
			break;
		}
		prefix[p - key] = '/';
	}
	free(prefix);
	return rc;
}

int tree_read(struct dsfs_layer *l, const char *key, const struct dsfs_attr *a,
	      char **data, size_t *len)
{
	size_t size = (size_t)a->size, got = 0;
	char *buf = malloc(size + 1);
	ssize_t n;

	if (!buf)
		return -ENOMEM;
	while (got < size) {
		n = layer_read(l, key, got, buf + got, size - got);
		if (n < 0) {
			free(buf);
			return (int)n;
		}
		if (n == 0)
			break; /* shorter than its attributes said */
		got += (size_t)n;
	}
	buf[got] = '\0';
	*data = buf;
	*len = got;
	return 0;
}

/* ---- admin_run ------------------------------------------------------- */

static const char *const command_names[] = {"dump", "load", "diff",
					    "factory-reset"};

bool admin_command(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(command_names) / sizeof(command_names[0]); i++)
		if (strcmp(name, command_names[i]) == 0)
			return true;
	return false;
}

static int layer_index(const char *name)
{
	if (strcmp(name, "ephemeral") == 0)
		return L_EPHEMERAL;
	if (strcmp(name, "runtime") == 0)
		return L_RUNTIME;
	if (strcmp(name, "factory") == 0)
		return L_FACTORY;
	return -1;
}

int admin_read_file(const char *file, size_t max, char **doc, size_t *len,
		    struct store_error *e)
{
	FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
	size_t cap = 0, n = 0, got;
	char *buf = NULL, *p;

	if (!f)
		return store_fail(e, -errno, "%s: %s", file, strerror(errno));
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > max * 2) {
				free(buf);
				if (f != stdin)
					fclose(f);
				return store_fail(e, -EFBIG,
						  "%s: larger than %u MiB",
						  file, (unsigned)(max / MiB));
			}
			p = realloc(buf, cap + 1);
			if (!p) {
				free(buf);
				if (f != stdin)
					fclose(f);
				return store_fail(e, -ENOMEM, "%s: %s", file,
						  strerror(ENOMEM));
			}
			buf = p;
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	if (ferror(f) || n > max) {
		int err = n > max ? EFBIG : EIO;

		free(buf);
		if (f != stdin)
			fclose(f);
		return store_fail(e, -err, "%s: %s", file,
				  err == EFBIG ? "document too large" :
						 strerror(err));
	}
	if (f != stdin)
		fclose(f);
	buf[n] = '\0';
	*doc = buf;
	*len = n;
	return 0;
}

/* An operand PATH ("app/sub", "/app/", "" or ".") as a path under kv/. */
static int clean_path(const char *in, char *out, size_t size,
		      struct store_error *e)
{
	const char *p = in;
	size_t n = 0, len;

	while (*p) {
		while (*p == '/')
			p++;
		len = strcspn(p, "/");
		if (len == 0)
			break;
		if (!(len == 1 && p[0] == '.')) {
			if (n + (n ? 1 : 0) + len + 1 > size)
				return store_fail(e, -ENAMETOOLONG,
						  "%s: path too long", in);
			if (n)
				out[n++] = '/';
			memmove(out + n, p, len);
			n += len;
		}
		p += len;
	}
	out[n] = '\0';
	return 0;
}

int admin_run(struct admin_env *env, int argc, char **argv, FILE *out,
	      struct store_error *e)
{
	static const struct option longopts[] = {
		{"layer", required_argument, NULL, 'l'},
		{"replace", no_argument, NULL, 'r'},
		{"json", no_argument, NULL, 'j'},
		{"prefix", required_argument, NULL, 'p'},
		{"keep", required_argument, NULL, 'k'},
		{"dry-run", no_argument, NULL, 'n'},
		{"archive", no_argument, NULL, 'a'},
		{NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0], *prefix = NULL;
	char path[DSFS_KEY_MAX], **keep = NULL, *doc = NULL;
	bool replace = false, json = false, dry = false, archive = false;
	size_t nkeep = 0, len = 0, i;
	int only = -1, c, rc;

	optind = 0; /* glibc: start again */
	opterr = 0;
	keep = calloc((size_t)argc, sizeof(*keep));
	if (!keep)
		return store_fail(e, -ENOMEM, "out of memory");
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		rc = -EINVAL;
		if (c == 'l' && strcmp(cmd, "dump") == 0 &&
		    (only = layer_index(optarg)) >= 0)
			rc = 0;
		else if (c == 'r' && strcmp(cmd, "load") == 0)
			rc = 0, replace = true;
		else if (c == 'a' && strcmp(cmd, "dump") == 0)
			rc = 0, archive = true;
		else if (c == 'j' && strcmp(cmd, "diff") == 0)
			rc = 0, json = true;
		else if (c == 'p' && strcmp(cmd, "factory-reset") == 0)
			rc = 0, prefix = optarg;
		else if (c == 'k' && strcmp(cmd, "factory-reset") == 0)
			rc = 0, keep[nkeep++] = optarg;
		else if (c == 'n' && strcmp(cmd, "factory-reset") == 0)
			rc = 0, dry = true;
		if (rc) {
			free(keep);
			return store_fail(e, -EINVAL, "%s: bad option '%s'",
					  cmd, argv[optind - 1]);
		}
	}
	argc -= optind;
	argv += optind;
	if (archive && argc == 0 && only < 0) {
		rc = archive_dump(env, out, e);
	} else if (archive) {
		rc = store_fail(e, -EINVAL,
				"dump --archive: no PATH or --layer");
	} else if (strcmp(cmd, "dump") == 0 && argc <= 1) {
		rc = clean_path(argc ? argv[0] : "", path, sizeof(path), e);
		if (rc == 0)
			rc = dump_json(env, path, only, out, e);
	} else if (strcmp(cmd, "load") == 0 && (argc == 1 || argc == 2)) {
		rc = clean_path(argc == 2 ? argv[1] : "", path, sizeof(path),
				e);
		if (rc == 0)
			rc = admin_read_file(argv[0], ADMIN_DOC_MAX, &doc, &len,
					     e);
		if (rc == 0)
			rc = load_json(env, argv[0], doc, len, path, replace,
				       out, e);
		free(doc);
	} else if (strcmp(cmd, "diff") == 0 && argc == 0) {
		rc = diff_run(env, json, out, e);
	} else if (strcmp(cmd, "factory-reset") == 0 && argc == 0) {
		for (i = 0, rc = 0; i < nkeep && rc == 0; i++)
			rc = clean_path(keep[i], keep[i], strlen(keep[i]) + 1,
					e);
		if (rc == 0 && prefix) {
			rc = clean_path(prefix, path, sizeof(path), e);
			prefix = path;
		}
		if (rc == 0)
			rc = reset_run(env, prefix, keep, nkeep, dry, out, e);
	} else {
		rc = store_fail(e, -EINVAL, "%s: wrong number of operands",
				cmd);
	}
	free(keep);
	return rc;
}
