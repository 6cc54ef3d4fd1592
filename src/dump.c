/*
 * dump.c - dsfsctl dump: the kv/ tree (or a subtree, or one layer's) as
 * one JSON document.
 *
 * The mapping is DESIGN.md's: a directory is an object whose members are
 * its children, sorted by name; a file is a member whose value is the
 * file's JSON text, as stored, without its surrounding white space; an
 * empty file is null.  Scratch names are left out; whiteouts have no place
 * in a plain document (an archive carries them).  Values are written
 * byte for byte, so a number keeps its spelling ("1.50" stays "1.50").
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"

#define DUMP_INDENT 2

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The value of the file key (found in layer) without its surrounding
 * white space, or null. */
static int put_value(const struct admin_env *env, const char *key,
		     const struct tree_item *it, FILE *out,
		     struct store_error *e)
{
	char *data = NULL, *p;
	size_t len = 0;
	int rc;

	rc = tree_read(env->layer[it->layer], key, &it->attr, &data, &len);
	if (rc)
		return store_fail(e, rc, "%s: %s", key, strerror(-rc));
	p = data;
	while (len && is_space(*p))
		p++, len--;
	while (len && is_space(p[len - 1]))
		len--;
	if (len)
		fwrite(p, 1, len, out);
	else
		fputs("null", out);
	free(data);
	return 0;
}

static int put_dir(const struct admin_env *env, const char *key, int limit,
		   int only, int depth, FILE *out, struct store_error *e)
{
	struct tree_dir d;
	size_t i, shown = 0;
	int rc;

	rc = tree_list(env, key, 0, limit, only, &d);
	if (rc)
		return store_fail(e, rc, "%s: %s", key, strerror(-rc));
	fputc('{', out);
	for (i = 0; i < d.n && rc == 0; i++) {
		struct tree_item *it = &d.items[i];
		char *child;

		if (it->attr.kind == DSFS_WHITEOUT)
			continue;
		child = tree_join(key, it->name);
		if (!child) {
			rc = store_fail(e, -ENOMEM, "%s: out of memory", key);
			break;
		}
		fprintf(out, "%s\n%*s", shown++ ? "," : "",
			(depth + 1) * DUMP_INDENT, "");
		json_put_string(out, it->name);
		fputs(": ", out);
		if (it->attr.kind == DSFS_DIR)
			rc = put_dir(env, child, it->limit, only, depth + 1,
				     out, e);
		else
			rc = put_value(env, child, it, out, e);
		free(child);
	}
	if (shown)
		fprintf(out, "\n%*s", depth * DUMP_INDENT, "");
	fputc('}', out);
	tree_dir_free(&d);
	return rc;
}

int dump_json(const struct admin_env *env, const char *path, int only,
	      FILE *out, struct store_error *e)
{
	struct tree_item it;
	char *key;
	int rc;

	key = path[0] ? tree_join("kv", path) : strdup("kv");
	if (!key)
		return store_fail(e, -ENOMEM, "out of memory");
	if (only >= 0 && !env->layer[only]) {
		/* An absent layer (offline: the ephemeral one) is empty. */
		rc = path[0] ? store_fail(e, -ENOENT, "%s: %s", key,
					  strerror(ENOENT)) :
			       0;
		if (rc == 0)
			fputs("{}\n", out);
		free(key);
		return rc;
	}
	rc = tree_lookup(env, key, 0, only, &it);
	if (rc == 0 && path[0] &&
	    scratch_name(env->scratch, strrchr(key, '/') + 1))
		rc = -ENOENT;
	if (rc)
		rc = store_fail(e, rc, "%s: %s", key, strerror(-rc));
	else if (it.attr.kind == DSFS_DIR)
		rc = put_dir(env, key, it.limit, only, 0, out, e);
	else
		rc = put_value(env, key, &it, out, e);
	if (rc == 0)
		fputc('\n', out);
	free(key);
	return rc;
}
