/*
 * watch_event.c - what a watched change looks like (watch.h): the PATH
 * filter a watcher gives, and the JSON line each change becomes.
 *
 * It is in the core library because both ends need it: the daemon formats
 * the changes of its mount (watch.c), and dsfsctl those it hears from the
 * database itself when the store is not mounted here (watch_cli.c).  Both
 * then print the same lines.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"
#include "watch.h"

#define DEVICE_PREFIX "kv/__" /* devices/ID is kv/__ID (DESIGN.md) */

static const char *const layer_names[DSFS_NLAYERS] = {
	[L_EPHEMERAL] = "ephemeral",
	[L_RUNTIME] = "runtime",
	[L_FACTORY] = "factory",
};

const char *watch_op_name(enum layer_event_op op)
{
	static const char *const names[] = {
		[LAYER_EV_COMMIT] = "write",
		[LAYER_EV_MKDIR] = "mkdir",
		[LAYER_EV_REMOVE] = "remove",
		[LAYER_EV_WHITEOUT] = "whiteout",
		[LAYER_EV_SETATTR] = "setattr",
		[LAYER_EV_RENAME] = "rename",
		[LAYER_EV_CLEAR] = "reset",
		/* settle() made a name its create told of already */
		[LAYER_EV_SETTLE] = NULL,
	};

	return (unsigned)op < sizeof(names) / sizeof(names[0]) ? names[op] :
								 NULL;
}

/* The next component of *p (ending at '/' or the end) and its length;
 * *p moves past it and its '/'. */
static size_t next_component(const char **p, const char **comp)
{
	size_t n = strcspn(*p, "/");

	*comp = *p;
	*p += n;
	if (**p == '/')
		(*p)++;
	return n;
}

static bool is_word(const char *comp, size_t n, const char *word)
{
	return n == strlen(word) && memcmp(comp, word, n) == 0;
}

static int bad(const char **why, const char *reason)
{
	*why = reason;
	return -EINVAL;
}

/* Every component of rest is a name: not empty, ".", or "..". */
static int check_rest(const char *rest, const char **why)
{
	const char *p = rest, *comp;
	size_t n;

	while (*p) {
		n = next_component(&p, &comp);
		if (n == 0 || is_word(comp, n, ".") || is_word(comp, n, ".."))
			return bad(why, "empty, '.' and '..' components "
					"are not paths in the mount");
	}
	return 0;
}

int watch_filter_parse(const char *path, struct watch_filter *f,
		       const char **why)
{
	const char *p = path ? path : "", *comp;
	size_t n, len;
	int i, rc;

	memset(f, 0, sizeof(*f));
	f->layer = -1;
	*why = NULL;
	len = strlen(p);
	if (len >= sizeof(f->shown)) {
		*why = "path too long";
		return -ENAMETOOLONG;
	}
	memcpy(f->shown, p, len + 1);
	while (len > 0 && f->shown[len - 1] == '/')
		f->shown[--len] = '\0';
	p = f->shown;
	if (*p == '/')
		return bad(why, "a path in the mount has no leading '/'");
	if (!*p)
		return 0;
	rc = check_rest(p, why);
	if (rc)
		return rc;
	n = next_component(&p, &comp);
	for (i = 0; i < DSFS_NLAYERS; i++) {
		if (is_word(comp, n, layer_names[i])) {
			f->layer = i;
			if (!*p)
				return 0;
			n = next_component(&p, &comp);
			break;
		}
	}
	if (is_word(comp, n, "devices")) {
		n = next_component(&p, &comp);
		f->prefix_only = n == 0;
		snprintf(f->key, sizeof(f->key), "%s%.*s%s%s", DEVICE_PREFIX,
			 (int)n, comp, *p ? "/" : "", p);
	} else if (is_word(comp, n, "kv") || is_word(comp, n, "images")) {
		snprintf(f->key, sizeof(f->key), "%.*s%s%s", (int)n, comp,
			 *p ? "/" : "", p);
	} else {
		return bad(why, "not under kv/, images/ or devices/, nor a "
				"layer's own tree (runtime/kv/...)");
	}
	if (strlen(f->key) >= sizeof(f->key) - 1) {
		*why = "path too long";
		return -ENAMETOOLONG;
	}
	return 0;
}

static bool under(const char *key, const char *dir)
{
	size_t n = strlen(dir);

	return strncmp(key, dir, n) == 0 && (key[n] == '\0' || key[n] == '/');
}

bool watch_filter_match(const struct watch_filter *f, int layer,
			const char *key)
{
	if (f->layer >= 0 && layer != f->layer)
		return false;
	if (!key || !f->key[0])
		return true;
	if (f->prefix_only)
		return strncmp(key, f->key, strlen(f->key)) == 0;
	return under(key, f->key);
}

bool watch_scratch_key(const char *patterns, const char *key)
{
	char name[256];
	const char *p, *comp;
	size_t n;

	if (!patterns || !key || strncmp(key, "kv/", 3) != 0)
		return false; /* scratch names are kv/'s and devices/' only */
	p = key + 3;
	while (*p) {
		n = next_component(&p, &comp);
		if (n == 0 || n >= sizeof(name))
			continue;
		memcpy(name, comp, n);
		name[n] = '\0';
		if (scratch_name(patterns, name))
			return true;
	}
	return false;
}

/* s as a JSON string.  Names are valid UTF-8 (names.c); a key from
 * another host that is not gets U+FFFD for each byte above 0x7f, so that
 * the line stays JSON. */
static void put_string(FILE *m, const char *s)
{
	bool utf8 = utf8_valid(s, strlen(s));
	const unsigned char *c;

	fputc('"', m);
	for (c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(m, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(m, "\\u%04x", *c);
		else if (*c > 0x7f && !utf8)
			fputs("\\ufffd", m);
		else
			fputc(*c, m);
	}
	fputc('"', m);
}

/* The path of key in the mount's merged trees, and its tree. */
static void put_path(FILE *m, const char *name, const char *key)
{
	const char *id = key + strlen(DEVICE_PREFIX);
	char *path = NULL;

	fprintf(m, "\"%s\":", name);
	if (strncmp(key, DEVICE_PREFIX, strlen(DEVICE_PREFIX)) == 0 && *id &&
	    *id != '/' && asprintf(&path, "devices/%s", id) >= 0) {
		put_string(m, path);
		free(path);
		return;
	}
	put_string(m, key);
}

static const char *tree_of(const char *key)
{
	const char *id = key + strlen(DEVICE_PREFIX);

	if (strncmp(key, DEVICE_PREFIX, strlen(DEVICE_PREFIX)) == 0 && *id &&
	    *id != '/')
		return "devices";
	return strncmp(key, "images", 6) == 0 ? "images" : "kv";
}

char *watch_format(const struct watch_change *c, size_t *len)
{
	char when[32], *buf = NULL;
	struct tm tm;
	FILE *m;

	m = open_memstream(&buf, len);
	if (!m)
		return NULL;
	fputc('{', m);
	if (c->key) {
		put_path(m, "path", c->key);
		fprintf(m, ",\"tree\":\"%s\"", tree_of(c->key));
	} else {
		fputs("\"path\":null,\"tree\":null", m);
	}
	gmtime_r(&c->time.tv_sec, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(m,
		",\"layer\":\"%s\",\"op\":\"%s\",\"version\":%" PRIu64
		",\"time\":\"%s.%06ldZ\",\"origin\":\"%s\"",
		c->layer >= 0 && c->layer < DSFS_NLAYERS ?
			layer_names[c->layer] :
			"runtime",
		c->op, c->version, when, c->time.tv_nsec / 1000, c->origin);
	if (c->from) {
		fputc(',', m);
		put_path(m, "from", c->from);
	}
	fputs("}\n", m);
	if (fclose(m) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

size_t watch_format_lost(char *buf, size_t size, uint64_t n)
{
	int len = snprintf(buf, size, "{\"lost\":%" PRIu64 "}\n", n);

	return len < 0 ? 0 : (size_t)len < size ? (size_t)len : size - 1;
}
