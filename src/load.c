/*
 * load.c - dsfsctl load: a JSON document into the runtime layer, all of it
 * or nothing.
 *
 * The document is read whole and checked before anything changes: it is
 * parsed here (not by a generic JSON library) so that every member's value
 * keeps its bytes exactly, a duplicate key or a name that cannot be an
 * entry (empty, ".", "..", holding '/' or NUL, over 255 bytes, not UTF-8,
 * a scratch name) is refused naming its byte offset, and nesting is
 * bounded.  Each value is checked by the same strict validator as a write
 * through the mount.
 *
 * The mapping (man/dsfsctl.8): an object member is a directory, any other
 * member a file holding that value's JSON text; but an object whose name
 * is a file today stays a file and gets the object's text.  By default the
 * document is merged: names it does not mention stay.  With --replace the
 * subtree becomes exactly the document: other names are removed (and
 * whiteouts hide the factory's).  A member that is a value where a
 * directory is today is refused unless --replace.
 *
 * The changes are planned against the runtime layer over the factory
 * (the ephemeral layer, when mounted, is above and untouched) and made by
 * one layer_apply(): a change over the budget, or any failure, changes
 * nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "admin.h"
#include "validate.h"

#define LOAD_DEPTH_MAX 256 /* directories inside each other */

struct jmember;

struct jobj {
	struct jmember *m; /* sorted by name once parsed */
	size_t n, cap;
};

struct jmember {
	char *name;
	size_t off;	 /* of the name, for messages */
	const char *val; /* the value's bytes in the document */
	size_t vlen;
	bool object;
	struct jobj obj; /* object: its members */
};

struct parser {
	const char *doc, *label;
	size_t len, pos;
	const char *scratch;
	struct progress progress; /* members read, bytes of the document */
	uint64_t members;
	struct store_error *e;
};

static int bad(struct parser *p, size_t off, const char *what)
{
	return store_fail(p->e, -EINVAL, "%s: byte %zu: %s", p->label, off,
			  what);
}

static void skip_ws(struct parser *p)
{
	while (p->pos < p->len && strchr(" \t\r\n", p->doc[p->pos]) &&
	       p->doc[p->pos])
		p->pos++;
}

static void obj_free(struct jobj *o)
{
	size_t i;

	for (i = 0; i < o->n; i++) {
		free(o->m[i].name);
		obj_free(&o->m[i].obj);
	}
	free(o->m);
	memset(o, 0, sizeof(*o));
}

static int hex4(const char *s, unsigned *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		char c = s[i];

		*v <<= 4;
		if (c >= '0' && c <= '9')
			*v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* A member name: a JSON string, decoded, that can name an entry. */
static int parse_name(struct parser *p, char **out)
{
	size_t start = p->pos, n = 0;
	char *s = malloc(p->len - p->pos + 4);
	unsigned cp, lo;
	int rc;

	if (!s)
		return store_fail(p->e, -ENOMEM, "out of memory");
	p->pos++; /* the opening quote */
	while (p->pos < p->len && p->doc[p->pos] != '"') {
		unsigned char c = (unsigned char)p->doc[p->pos];

		if (c < 0x20) {
			free(s);
			return bad(p, p->pos, "control character in a name");
		}
		if (c != '\\') {
			s[n++] = (char)c;
			p->pos++;
			continue;
		}
		if (p->pos + 1 >= p->len)
			break;
		c = (unsigned char)p->doc[p->pos + 1];
		p->pos += 2;
		if (strchr("\"\\/", c) && c) {
			s[n++] = (char)c;
		} else if (strchr("bfnrt", c) && c) {
			s[n++] = (char)(c == 'b' ? '\b' :
					c == 'f' ? '\f' :
					c == 'n' ? '\n' :
					c == 'r' ? '\r' :
						   '\t');
		} else if (c == 'u' && p->pos + 4 <= p->len &&
			   hex4(p->doc + p->pos, &cp) == 0) {
			p->pos += 4;
			if (cp >= 0xd800 && cp <= 0xdbff &&
			    p->pos + 6 <= p->len && p->doc[p->pos] == '\\' &&
			    p->doc[p->pos + 1] == 'u' &&
			    hex4(p->doc + p->pos + 2, &lo) == 0 &&
			    lo >= 0xdc00 && lo <= 0xdfff) {
				p->pos += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				     (lo - 0xdc00);
			} else if (cp >= 0xd800 && cp <= 0xdfff) {
				free(s);
				return bad(p, start,
					   "name holds a lone UTF-16 "
					   "surrogate: not valid UTF-8");
			}
			if (cp == 0) {
				free(s);
				return bad(p, start, "name holds a NUL");
			}
			n += put_utf8(s + n, cp);
		} else {
			free(s);
			return bad(p, p->pos - 2, "bad escape in a name");
		}
	}
	if (p->pos >= p->len) {
		free(s);
		return bad(p, start, "unterminated name");
	}
	p->pos++;
	s[n] = '\0';
	rc = name_check(s);
	if (rc == 0 && strlen(s) != n)
		rc = -EINVAL;
	if (rc) {
		const char *why =
			rc == -ENAMETOOLONG ? "name longer than 255 bytes" :
			n == 0		    ? "empty name" :
			strchr(s, '/')	    ? "name holds a '/'" :
			!utf8_valid(s, n)   ? "name is not valid UTF-8" :
					      "name cannot be an entry "
					      "('.' or '..')";
		free(s);
		return store_fail(p->e, rc, "%s: byte %zu: %s", p->label, start,
				  why);
	}
	if (scratch_name(p->scratch, s)) {
		rc = store_fail(p->e, -EINVAL,
				"%s: byte %zu: \"%s\" is an editor's scratch "
				"name, never stored",
				p->label, start, s);
		free(s);
		return rc;
	}
	*out = s;
	return 0;
}

/* The extent of a value that is not an object, then the validator's
 * verdict on it. */
static int scan_value(struct parser *p, struct jmember *m)
{
	size_t start = p->pos, depth = 0;
	bool in_str = false;
	const char *why = NULL;
	char msg[300];
	int rc;

	for (; p->pos < p->len; p->pos++) {
		char c = p->doc[p->pos];

		if (in_str) {
			if (c == '\\') {
				p->pos++;
			} else if (c == '"') {
				in_str = false;
				if (depth == 0) {
					p->pos++;
					break;
				}
			}
			continue;
		}
		if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			depth++;
		} else if (c == ']' || c == '}') {
			if (depth == 0)
				break;
			if (--depth == 0) {
				p->pos++;
				break;
			}
		} else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' ||
					  c == '\r' || c == '\n')) {
			break;
		}
	}
	if (p->pos > p->len)
		p->pos = p->len;
	m->val = p->doc + start;
	m->vlen = p->pos - start;
	rc = validate_buffer(DSFS_CONTENT_JSON, m->val, m->vlen, NULL, &why);
	if (rc == 0 && m->vlen == 0)
		rc = -EINVAL, why = "value missing";
	if (rc) {
		snprintf(msg, sizeof(msg), "value of \"%s\": %s", m->name,
			 why ? why : "not JSON");
		return bad(p, start, msg);
	}
	return 0;
}

static int member_cmp(const void *x, const void *y)
{
	const struct jmember *a = x, *b = y;

	return strcmp(a->name, b->name);
}

static int parse_object(struct parser *p, struct jobj *o, int depth);

static int parse_member_value(struct parser *p, struct jmember *m, int depth)
{
	size_t start;
	int rc;

	progress_update(&p->progress, ++p->members, p->pos);
	skip_ws(p);
	start = p->pos;
	if (p->pos < p->len && p->doc[p->pos] == '{') {
		m->object = true;
		rc = parse_object(p, &m->obj, depth + 1);
		m->val = p->doc + start;
		m->vlen = p->pos - start;
		return rc;
	}
	return scan_value(p, m);
}

static int parse_object(struct parser *p, struct jobj *o, int depth)
{
	size_t i;
	int rc;

	if (depth > LOAD_DEPTH_MAX)
		return bad(p, p->pos, "objects nested too deep");
	p->pos++; /* '{' */
	skip_ws(p);
	if (p->pos < p->len && p->doc[p->pos] == '}') {
		p->pos++;
		return 0;
	}
	for (;;) {
		struct jmember *m;

		skip_ws(p);
		if (p->pos >= p->len || p->doc[p->pos] != '"')
			return bad(p, p->pos, "expected a member name");
		if (o->n == o->cap) {
			size_t cap = o->cap ? o->cap * 2 : 8;
			void *q = realloc(o->m, cap * sizeof(*o->m));

			if (!q)
				return store_fail(p->e, -ENOMEM,
						  "out of memory");
			o->m = q;
			o->cap = cap;
		}
		m = &o->m[o->n];
		memset(m, 0, sizeof(*m));
		m->off = p->pos;
		rc = parse_name(p, &m->name);
		if (rc)
			return rc;
		o->n++;
		skip_ws(p);
		if (p->pos >= p->len || p->doc[p->pos] != ':')
			return bad(p, p->pos, "expected ':'");
		p->pos++;
		rc = parse_member_value(p, m, depth);
		if (rc)
			return rc;
		skip_ws(p);
		if (p->pos < p->len && p->doc[p->pos] == ',') {
			p->pos++;
			continue;
		}
		if (p->pos < p->len && p->doc[p->pos] == '}') {
			p->pos++;
			break;
		}
		return bad(p, p->pos, "expected ',' or '}'");
	}
	qsort(o->m, o->n, sizeof(*o->m), member_cmp);
	for (i = 1; i < o->n; i++)
		if (strcmp(o->m[i - 1].name, o->m[i].name) == 0) {
			char msg[300];

			snprintf(msg, sizeof(msg),
				 "duplicate name \"%s\" (also at byte %zu)",
				 o->m[i].name,
				 o->m[i - 1].off < o->m[i].off ?
					 o->m[i - 1].off :
					 o->m[i].off);
			return bad(p,
				   o->m[i - 1].off > o->m[i].off ?
					   o->m[i - 1].off :
					   o->m[i].off,
				   msg);
		}
	return 0;
}

/* ---- the plan ------------------------------------------------------- */

struct plan {
	struct admin_env *env;
	struct layer_change *c;
	size_t n, cap;
	bool replace;
	struct timespec now;
	struct progress progress; /* members planned, bytes of their values */
	uint64_t members, bytes;
	struct store_error *e;
};

static int plan_add(struct plan *pl, enum layer_change_op op, char *key,
		    const struct dsfs_attr *a, const void *data, size_t len)
{
	struct layer_change *c;

	if (pl->n == pl->cap) {
		size_t cap = pl->cap ? pl->cap * 2 : 64;
		void *q = realloc(pl->c, cap * sizeof(*pl->c));

		if (!q) {
			free(key);
			return store_fail(pl->e, -ENOMEM, "out of memory");
		}
		pl->c = q;
		pl->cap = cap;
	}
	c = &pl->c[pl->n++];
	memset(c, 0, sizeof(*c));
	c->op = op;
	c->key = key; /* owned by the plan */
	if (a)
		c->attr = *a;
	c->data = data;
	c->len = len;
	return 0;
}

static void plan_free(struct plan *pl)
{
	size_t i;

	for (i = 0; i < pl->n; i++)
		free((char *)pl->c[i].key);
	free(pl->c);
}

static void new_attr(struct plan *pl, struct dsfs_attr *a, bool dir)
{
	memset(a, 0, sizeof(*a));
	a->kind = dir ? DSFS_DIR : DSFS_FILE;
	a->mode = dir ? 0755 : 0644;
	a->uid = pl->env->uid;
	a->gid = pl->env->gid;
	a->atime = a->mtime = a->ctime = pl->now;
}

static int plan_copy(struct plan *pl, const char *key, enum layer_change_op op,
		     const struct dsfs_attr *a, const void *data, size_t len)
{
	char *k = strdup(key);

	if (!k)
		return store_fail(pl->e, -ENOMEM, "out of memory");
	return plan_add(pl, op, k, a, data, len);
}

/* Remove key (a file or directory of the runtime layer) and what is in it
 * from that layer, children first. */
static int plan_rm_runtime(struct plan *pl, const char *key)
{
	struct tree_dir d;
	size_t i;
	int rc;

	rc = tree_list(pl->env, key, L_RUNTIME, L_RUNTIME, L_RUNTIME, &d);
	for (i = 0; rc == 0 && i < d.n; i++) {
		char *child = tree_join(key, d.items[i].name);

		if (!child) {
			rc = store_fail(pl->e, -ENOMEM, "out of memory");
			break;
		}
		if (d.items[i].attr.kind == DSFS_DIR)
			rc = plan_rm_runtime(pl, child);
		else if (d.items[i].attr.kind == DSFS_FILE)
			rc = plan_copy(pl, child, LAYER_CH_REMOVE, NULL, NULL,
				       0);
		free(child);
	}
	tree_dir_free(&d);
	if (rc)
		return store_fail(pl->e, rc, "%s: %s", key, strerror(-rc));
	return plan_copy(pl, key, LAYER_CH_REMOVE, NULL, NULL, 0);
}

/* Take key out of the runtime view: out of the runtime layer, and hidden
 * by a whiteout if the factory has it. */
static int plan_remove(struct plan *pl, const char *key)
{
	struct dsfs_layer *rt = pl->env->layer[L_RUNTIME];
	struct dsfs_layer *fa = pl->env->layer[L_FACTORY];
	struct dsfs_attr a;
	int rc = 0;

	if (layer_lookup(rt, key, &a) == 0 && a.kind != DSFS_WHITEOUT) {
		rc = plan_rm_runtime(pl, key);
		if (rc == 0 && fa && layer_lookup(fa, key, &a) == 0)
			pl->c[pl->n - 1].op = LAYER_CH_WHITEOUT;
		return rc;
	}
	if (fa && layer_lookup(fa, key, &a) == 0)
		rc = plan_copy(pl, key, LAYER_CH_WHITEOUT, NULL, NULL, 0);
	return rc;
}

/* A file key with the value m (cur: what is there now, or NULL). */
static int plan_file(struct plan *pl, const char *key, const struct jmember *m,
		     const struct tree_item *cur)
{
	const char *type = NULL;
	struct dsfs_attr a;
	char *data = NULL;
	size_t len = 0;
	bool same;
	int rc;

	rc = validate_buffer(DSFS_CONTENT_JSON, m->val, m->vlen, &type, NULL);
	if (rc)
		return store_fail(pl->e, rc, "%s: not JSON", key);
	if (cur && cur->attr.kind == DSFS_FILE) {
		rc = tree_read(pl->env->layer[cur->layer], key, &cur->attr,
			       &data, &len);
		if (rc)
			return store_fail(pl->e, rc, "%s: %s", key,
					  strerror(-rc));
		same = (len == m->vlen && len &&
			memcmp(data, m->val, len) == 0) ||
		       (strspn(data, " \t\r\n") == len && m->vlen == 4 &&
			memcmp(m->val, "null", 4) == 0);
		free(data);
		if (same)
			return 0;
		a = cur->attr;
		a.atime = a.mtime = a.ctime = pl->now;
	} else {
		new_attr(pl, &a, false);
	}
	a.kind = DSFS_FILE;
	a.token[0] = '\0';
	snprintf(a.type, sizeof(a.type), "%s", type);
	return plan_copy(pl, key, LAYER_CH_COMMIT, &a, m->val, m->vlen);
}

static int plan_dir(struct plan *pl, const char *key, const struct jobj *o,
		    int limit);

/* Make key a directory of the runtime layer unless it is one. */
static int plan_mkdir(struct plan *pl, const char *key,
		      const struct tree_item *cur, int *limit)
{
	struct dsfs_attr a, rta;
	bool there = layer_lookup(pl->env->layer[L_RUNTIME], key, &rta) == 0;

	if (there && rta.kind == DSFS_DIR)
		return 0;
	if (cur && cur->attr.kind == DSFS_DIR) {
		a = cur->attr; /* the factory's, copied up */
		a.opaque = false;
	} else {
		new_attr(pl, &a, true);
		/* Made again where the factory's was removed: it stays
		 * hidden. */
		a.opaque = there && rta.kind == DSFS_WHITEOUT;
		if (a.opaque)
			*limit = L_RUNTIME;
	}
	return plan_copy(pl, key, LAYER_CH_MKDIR, &a, NULL, 0);
}

static int plan_member(struct plan *pl, const char *key,
		       const struct jmember *m, const struct tree_item *cur,
		       int limit)
{
	int rc;

	pl->bytes += m->object ? 0 : m->vlen;
	progress_update(&pl->progress, ++pl->members, pl->bytes);
	if (m->object && cur && cur->attr.kind == DSFS_FILE)
		return plan_file(pl, key, m, cur); /* a file stays a file */
	if (m->object) {
		if (cur)
			limit = cur->limit;
		rc = plan_mkdir(pl, key, cur, &limit);
		return rc ? rc : plan_dir(pl, key, &m->obj, limit);
	}
	if (cur && cur->attr.kind == DSFS_DIR) {
		if (!pl->replace)
			return store_fail(pl->e, -EISDIR,
					  "%s is a directory and the document "
					  "gives it a value: nothing loaded "
					  "(--replace replaces it)",
					  key);
		rc = plan_remove(pl, key);
		return rc ? rc : plan_file(pl, key, m, NULL);
	}
	return plan_file(pl, key, m, cur);
}

static int plan_dir(struct plan *pl, const char *key, const struct jobj *o,
		    int limit)
{
	struct tree_dir d;
	size_t i, j = 0;
	int rc;

	rc = tree_list(pl->env, key, L_RUNTIME, limit, -1, &d);
	if (rc)
		return store_fail(pl->e, rc, "%s: %s", key, strerror(-rc));
	/* Both lists are sorted by name: walk them side by side. */
	for (i = 0; rc == 0 && (i < o->n || j < d.n);) {
		int c = i == o->n ? 1 :
			j == d.n  ? -1 :
				    strcmp(o->m[i].name, d.items[j].name);
		const char *name = c <= 0 ? o->m[i].name : d.items[j].name;
		char *child = tree_join(key, name);

		if (!child) {
			rc = store_fail(pl->e, -ENOMEM, "out of memory");
			break;
		}
		if (c <= 0)
			rc = plan_member(pl, child, &o->m[i],
					 c == 0 ? &d.items[j] : NULL, limit);
		else if (pl->replace)
			rc = plan_remove(pl, child);
		free(child);
		i += c <= 0;
		j += c >= 0;
	}
	tree_dir_free(&d);
	return rc;
}

/* Make the parents of key (under kv/) directories of the runtime layer. */
static int plan_parents(struct plan *pl, const char *key, int *limit)
{
	char *k = strdup(key), *p = k ? strchr(k, '/') : NULL;
	struct tree_item cur;
	int rc = 0;

	if (!k)
		return store_fail(pl->e, -ENOMEM, "out of memory");
	while (rc == 0 && p && (p = strchr(p + 1, '/'))) {
		*p = '\0';
		rc = tree_lookup(pl->env, k, L_RUNTIME, -1, &cur);
		if (rc == 0 && cur.attr.kind != DSFS_DIR)
			rc = store_fail(pl->e, -ENOTDIR, "%s: not a directory",
					k);
		else if (rc == 0 || rc == -ENOENT)
			rc = plan_mkdir(pl, k, rc == 0 ? &cur : NULL, limit);
		*p = '/';
	}
	free(k);
	return rc;
}

static int apply_plan(struct plan *pl, const char *label, FILE *out)
{
	struct dsfs_layer *rt = pl->env->layer[L_RUNTIME];
	uint64_t used = 0, budget = 0;
	size_t i;
	int rc;

	rc = layer_apply(rt, pl->c, pl->n);
	if (rc == -ENOSPC) {
		layer_usage(rt, &used, &budget);
		return store_fail(pl->e, rc,
				  "%s: the runtime layer's budget (%llu "
				  "bytes, %llu used) would be exceeded: "
				  "nothing changed",
				  label, (unsigned long long)budget,
				  (unsigned long long)used);
	}
	if (rc == -EOPNOTSUPP)
		return store_fail(pl->e, rc,
				  "%s: this runtime backend cannot make a "
				  "change set in one transaction",
				  label);
	if (rc)
		return store_fail(pl->e, rc, "%s: %s: nothing changed", label,
				  strerror(-rc));
	rc = layer_sync(rt);
	for (i = 0; pl->env->changed && i < pl->n; i++)
		pl->env->changed(pl->env->arg, pl->c[i].key);
	(void)out;
	return rc ? store_fail(pl->e, rc, "%s: sync: %s", label,
			       strerror(-rc)) :
		    0;
}

int load_json(struct admin_env *env, const char *label, const char *doc,
	      size_t len, const char *path, bool replace, FILE *out,
	      struct store_error *e)
{
	struct parser p = {.doc = doc,
			   .label = label,
			   .len = len,
			   .scratch = env->scratch,
			   .e = e};
	struct jmember top = {.name = (char *)"kv"};
	struct plan pl = {.env = env, .replace = replace, .e = e};
	struct tree_item cur;
	int limit = L_FACTORY, rc;
	char what[80];
	char *key;

	if (!env->layer[L_RUNTIME])
		return store_fail(e, -ENOENT, "no runtime layer");
	if (memchr(doc, '\0', len))
		return bad(&p,
			   (size_t)((const char *)memchr(doc, '\0', len) - doc),
			   "NUL byte in the document");
	snprintf(what, sizeof(what), "load %s: reading", label);
	progress_begin(&p.progress, env->progress, what, 0, len);
	skip_ws(&p);
	if (p.pos < len && doc[p.pos] == '{') {
		top.object = true;
		rc = parse_object(&p, &top.obj, 0);
	} else if (!path[0]) {
		rc = bad(&p, p.pos, "the document for kv/ must be an object");
	} else {
		rc = scan_value(&p, &top);
	}
	skip_ws(&p);
	progress_end(&p.progress);
	if (rc == 0 && p.pos < len)
		rc = bad(&p, p.pos, "data after the end of the document");
	if (rc)
		goto out;
	snprintf(what, sizeof(what), "load %s: planning", label);
	progress_begin(&pl.progress, env->progress, what, p.members, 0);
	clock_gettime(CLOCK_REALTIME, &pl.now);
	key = path[0] ? tree_join("kv", path) : strdup("kv");
	if (!key) {
		rc = store_fail(e, -ENOMEM, "out of memory");
		goto out;
	}
	if (!path[0]) {
		rc = plan_dir(&pl, key, &top.obj, limit);
	} else {
		rc = plan_parents(&pl, key, &limit);
		if (rc == 0) {
			rc = tree_lookup(env, key, L_RUNTIME, -1, &cur);
			if (rc == 0 || rc == -ENOENT)
				rc = plan_member(&pl, key, &top,
						 rc == 0 ? &cur : NULL, limit);
			else
				rc = store_fail(e, rc, "%s: %s", key,
						strerror(-rc));
		}
	}
	free(key);
	progress_end(&pl.progress);
	if (rc == 0)
		rc = apply_plan(&pl, label, out);
	plan_free(&pl);
out:
	obj_free(&top.obj);
	return rc;
}
