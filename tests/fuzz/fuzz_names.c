/*
 * fuzz_names.c - libFuzzer target for names and paths: utf8_valid() and
 * name_check() of names.c, and how keys such as "kv/a/b" are taken apart
 * by the layer code in libdsfs.a (layer.c's checks and layer_mem.c's
 * parent and base-name splitting, reached through the layer_*() wrappers).
 *
 * The daemon itself never parses a path: the kernel walks it and hands dsfs
 * one name at a time, which inode.c joins into a key under the node
 * table's lock (and maps devices/ID to kv/__ID).  That code is not
 * separable from the node table, so what is fuzzed here is what every key
 * goes through afterwards.
 *
 * Checks:
 *  - utf8_valid() agrees with a strict decoder written here the other way
 *    round (decode a code point, then refuse overlongs, surrogates and
 *    values over U+10FFFF: Python's "utf-8" codec follows the same rules);
 *  - name_check() gives the answer its comment in validate.h promises;
 *  - the JSON validator accepts the input as the content of a string (with
 *    '"', '\' and control characters escaped) exactly when utf8_valid()
 *    does: the two UTF-8 decoders of dsfs agree;
 *  - the input, read as lines "<op><path>", drives an ephemeral layer with
 *    a small budget; every path is split at '/' and each name must pass
 *    name_check() before its key reaches the layer, as in the daemon.  A
 *    change that succeeded is visible to lookup and read, every name a
 *    listing returns passes name_check(), and at the end the layer's usage
 *    equals a recount (name bytes plus value bytes) and stays within the
 *    budget.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dsfs.h"
#include "fuzz.h"
#include "validate.h"

/* Small enough for ENOSPC to happen with a few lines of input. */
#define BUDGET 600

/*
 * UTF-8, the other way round from names.c: decode first, judge after.
 */
static bool ref_utf8(const uint8_t *p, size_t n)
{
	size_t i = 0, len, k;
	uint32_t cp, min;

	while (i < n) {
		uint8_t c = p[i];

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
			min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
			min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false; /* a continuation byte, or F8-FF */
		}
		if (n - i < len)
			return false;
		for (k = 1; k < len; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* What name_check() must answer for the C string s, from its contract. */
static int ref_name_check(const char *s)
{
	size_t len = strlen(s);

	if (len == 0)
		return -EINVAL;
	if (len > 255)
		return -ENAMETOOLONG;
	if (!strcmp(s, ".") || !strcmp(s, "..") || strchr(s, '/'))
		return -EINVAL;
	return ref_utf8((const uint8_t *)s, len) ? 0 : -EINVAL;
}

/* The input as a JSON string: utf8_valid() decides its fate alone. */
static void check_json_string(const uint8_t *d, size_t n)
{
	char *s = malloc(2 + 6 * n + 1), *q = s;
	const char *type, *reason;
	size_t i;
	int rc;

	CHECK(s, "out of memory");
	*q++ = '"';
	for (i = 0; i < n; i++) {
		if (d[i] == '"' || d[i] == '\\') {
			*q++ = '\\';
			*q++ = (char)d[i];
		} else if (d[i] < 0x20) {
			q += sprintf(q, "\\u%04x", d[i]);
		} else {
			*q++ = (char)d[i];
		}
	}
	*q++ = '"';
	rc = validate_buffer(DSFS_CONTENT_JSON, s, (size_t)(q - s), &type,
			     &reason);
	CHECK((rc == 0) == utf8_valid(d, n), "validator %d (%s), utf8_valid %d",
	      rc, rc ? reason : type, utf8_valid(d, n));
	free(s);
}

/*
 * Paths through an ephemeral layer.
 */

/* "kv/..." or "images/..." from a path whose names all pass name_check();
 * a first name "kv" or "images" chooses the tree, else it is kv.  Returns
 * false for a path the daemon could never form. */
static bool path_to_key(const char *path, char *key, size_t cap)
{
	char name[256 + 1];
	const char *p = path, *slash;
	size_t len, pos, names = 0;

	if (!strncmp(p, "images/", 7) || !strncmp(p, "kv/", 3)) {
		len = (size_t)(strchr(p, '/') - p);
		memcpy(key, p, len);
		pos = len;
		p += len + 1;
	} else {
		memcpy(key, "kv", 2);
		pos = 2;
	}
	for (;; p = slash + 1) {
		slash = strchr(p, '/');
		len = slash ? (size_t)(slash - p) : strlen(p);
		if (len > 256)
			return false;
		memcpy(name, p, len);
		name[len] = '\0';
		CHECK(name_check(name) == ref_name_check(name), "'%s'", name);
		if (name_check(name) != 0)
			return false;
		if (pos + 1 + len + 1 > cap)
			return false;
		key[pos++] = '/';
		memcpy(key + pos, name, len + 1);
		pos += len;
		names++;
		if (!slash)
			break;
	}
	return names > 0;
}

static const char *parent_of(const char *key, char *buf)
{
	const char *slash = strrchr(key, '/');

	memcpy(buf, key, (size_t)(slash - key));
	buf[slash - key] = '\0';
	return buf;
}

struct recount {
	struct dsfs_layer *l;
	char key[DSFS_KEY_MAX + 256];
	uint64_t bytes;
	size_t entries;
	const char *find; /* a name to look for, or NULL */
	bool found;
};

static int recount_cb(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct recount *r = ctx;
	size_t was = strlen(r->key);
	int rc = 0;

	CHECK(name_check(name) == 0, "listed name '%s' in %s", name, r->key);
	if (r->find && !strcmp(name, r->find))
		r->found = true;
	r->bytes += strlen(name);
	r->entries++;
	if (a->kind == DSFS_FILE)
		r->bytes += a->size;
	if (a->kind == DSFS_DIR && !r->find) {
		snprintf(r->key + was, sizeof(r->key) - was, "/%s", name);
		rc = layer_list(r->l, r->key, recount_cb, r);
		CHECK(rc == 0, "list %s: %d", r->key, rc);
		r->key[was] = '\0';
	}
	return rc;
}

/* A successful change is what lookup, read (if value is not NULL) and the
 * parent's listing now show. */
static void check_visible(struct dsfs_layer *l, const char *key,
			  enum dsfs_kind kind, const void *value, size_t len)
{
	struct recount r = {.l = l};
	struct dsfs_attr a;
	char buf[256], parent[DSFS_KEY_MAX];
	int rc;

	rc = layer_lookup(l, key, &a);
	CHECK(rc == 0 && a.kind == kind, "%s: lookup %d, kind %d", key, rc,
	      (int)a.kind);
	if (kind == DSFS_FILE && value) {
		CHECK(a.size == len, "%s: size %llu, wrote %zu", key,
		      (unsigned long long)a.size, len);
		CHECK(layer_read(l, key, 0, buf, sizeof(buf)) == (ssize_t)len &&
			      memcmp(buf, value, len) == 0,
		      "%s: read back differs", key);
	}
	r.find = strrchr(key, '/') + 1;
	snprintf(r.key, sizeof(r.key), "%s", parent_of(key, parent));
	CHECK(layer_list(l, r.key, recount_cb, &r) == 0 && r.found,
	      "%s: not in the listing of its parent", key);
}

/* The errors layer.h allows for what run_layer() does: -EINVAL only for
 * a directory renamed into itself, -EBUSY and -EPERM only for the roots,
 * which path_to_key() never names. */
static bool allowed(int rc, int op)
{
	switch (rc) {
	case 0:
	case -ENOENT:
	case -ENOTDIR:
	case -EEXIST:
	case -EISDIR:
	case -ENOTEMPTY:
	case -ENOSPC:
		return true;
	case -EINVAL:
		return op == 4 || op == 5;
	default:
		return false;
	}
}

static void run_layer(const uint8_t *d, size_t n)
{
	static const struct dsfs_attr dir_attr = {.kind = DSFS_DIR,
						  .mode = 0755};
	struct dsfs_attr file_attr = {.kind = DSFS_FILE, .mode = 0644};
	char key[DSFS_KEY_MAX], prev[DSFS_KEY_MAX] = "kv/x";
	char *text = malloc(n + 1), *line, *next;
	struct recount r;
	struct dsfs_layer *l;
	struct dsfs_attr a;
	uint64_t used, budget;
	int rc;

	CHECK(text, "out of memory");
	memcpy(text, d, n);
	text[n] = '\0';
	strcpy(file_attr.type, "string");
	CHECK(layer_mem_open(BUDGET, &l) == 0, "layer_mem_open failed");
	/* Lines end at '\n' or at a NUL (the input is read as C strings,
	 * as names arrive in the daemon). */
	for (line = text; line < text + n; line = next + 1) {
		const char *path;
		size_t vlen;

		next = line + strcspn(line, "\n");
		*next = '\0';
		if (!*line)
			continue;
		path = line + 1;
		if (!path_to_key(path, key, sizeof(key)))
			continue;
		vlen = strlen(line) < 200 ? strlen(line) : 200;
		switch ((uint8_t)line[0] % 8) {
		case 0:
			rc = layer_mkdir(l, key, &dir_attr);
			if (rc == 0)
				check_visible(l, key, DSFS_DIR, NULL, 0);
			break;
		case 1:
			rc = layer_commit(l, key, &file_attr, line, vlen, &a);
			if (rc == 0)
				check_visible(l, key, DSFS_FILE, line, vlen);
			break;
		case 2:
			rc = layer_remove(l, key);
			if (rc == 0)
				CHECK(layer_lookup(l, key, &a) == -ENOENT,
				      "%s still there", key);
			break;
		case 3:
			rc = layer_whiteout(l, key);
			if (rc == 0)
				check_visible(l, key, DSFS_WHITEOUT, NULL, 0);
			break;
		case 4:
		case 5:
			/* Rename the key of the line before to this one. */
			rc = layer_rename(l, prev, key,
					  (uint8_t)line[0] % 8 == 5 ?
						  DSFS_RENAME_WHITEOUT :
						  0);
			if (rc != 0)
				break;
			CHECK(layer_lookup(l, key, &a) == 0,
			      "renamed %s to %s: %s is gone", prev, key, key);
			check_visible(l, key, a.kind, NULL, 0);
			if (strcmp(prev, key) != 0) {
				rc = layer_lookup(l, prev, &a);
				CHECK(rc == -ENOENT ||
					      (rc == 0 &&
					       a.kind == DSFS_WHITEOUT &&
					       (uint8_t)line[0] % 8 == 5),
				      "renamed %s to %s: %s is still there",
				      prev, key, prev);
				rc = 0;
			}
			break;
		case 6:
			memset(&r, 0, sizeof(r));
			r.l = l;
			snprintf(r.key, sizeof(r.key), "%s", key);
			rc = layer_list(l, key, recount_cb, &r);
			CHECK(rc == 0 || rc == -ENOENT || rc == -ENOTDIR,
			      "list %s: %d", key, rc);
			break;
		default:
			rc = layer_lookup(l, key, &a);
			CHECK(rc == 0 || rc == -ENOENT || rc == -ENOTDIR,
			      "lookup %s: %d", key, rc);
			break;
		}
		CHECK(allowed(rc, (uint8_t)line[0] % 8), "%s: %d", key, rc);
		strcpy(prev, key);
	}

	/* Usage is name bytes plus value bytes, within the budget. */
	memset(&r, 0, sizeof(r));
	r.l = l;
	strcpy(r.key, "kv");
	CHECK(layer_list(l, "kv", recount_cb, &r) == 0, "list kv");
	strcpy(r.key, "images");
	CHECK(layer_list(l, "images", recount_cb, &r) == 0, "list images");
	CHECK(layer_usage(l, &used, &budget) == 0, "usage");
	CHECK(used == r.bytes && used <= budget,
	      "usage %llu, recount %llu, budget %llu", (unsigned long long)used,
	      (unsigned long long)r.bytes, (unsigned long long)budget);
	layer_close(l);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	char *name;

	CHECK(utf8_valid(d, n) == ref_utf8(d, n), "utf8_valid %d on %zu bytes",
	      utf8_valid(d, n), n);

	/* The input as one name, up to its first NUL. */
	name = malloc(n + 1);
	CHECK(name, "out of memory");
	memcpy(name, d, n);
	name[n] = '\0';
	CHECK(name_check(name) == ref_name_check(name),
	      "name_check %d, want %d", name_check(name), ref_name_check(name));
	free(name);

	check_json_string(d, n);
	run_layer(d, n);
	return 0;
}
