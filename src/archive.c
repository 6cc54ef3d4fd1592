/*
 * archive.c - dsfsctl dump --archive: everything a store holds, exactly,
 * in one versioned stream (the format is in man/dsfsctl.8, ARCHIVES).
 *
 *	dsfs-archive 1 LF
 *	record*			a JSON header line, then its payload, then LF
 *	{"t":"end","entries":N,"sha256":HEX} LF
 *
 * A record is a directory ("t":"d"), a file ("f"), an image blob ("b",
 * before the first file that uses it, once per layer) or a whiteout
 * ("w"), of the runtime or factory layer ("l"), with the key ("k"), mode,
 * owner, group and the three times; a file carries its value as payload
 * ("n" bytes) unless it is an image (its "tk" names the blob).  Parents
 * come before their children.  The end record counts the records and
 * holds the SHA-256 of every byte before it, so that archive_load.c can
 * refuse a damaged or truncated archive before it changes anything.
 * Scratch files and the ephemeral layer (memory) are not carried.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "validate.h"

struct arch_out {
	const struct admin_env *env;
	FILE *out;
	struct dsfs_sha256 sha;
	uint64_t entries;
	char **tokens; /* blobs written for the layer being walked */
	size_t ntokens, captokens;
	struct store_error *e;
};

static void emit(struct arch_out *a, const void *buf, size_t len)
{
	fwrite(buf, 1, len, a->out);
	sha256_update(&a->sha, buf, len);
}

static void emitf(struct arch_out *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void emitf(struct arch_out *a, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n > 0)
		emit(a, s, (size_t)n);
	free(s);
}

/* The key as a JSON string. */
static void emit_key(struct arch_out *a, const char *key)
{
	char *s = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&s, &len);

	if (!m)
		return;
	json_put_string(m, key);
	fclose(m);
	emit(a, s, len);
	free(s);
}

static void emit_head(struct arch_out *a, const char *t, int layer,
		      const char *key, const struct dsfs_attr *at)
{
	emitf(a, "{\"t\":\"%s\",\"l\":\"%s\",\"k\":", t, layer_label(layer));
	emit_key(a, key);
	if (at->kind != DSFS_WHITEOUT)
		emitf(a,
		      ",\"m\":%u,\"u\":%u,\"g\":%u,\"a\":\"%lld.%09ld\","
		      "\"mt\":\"%lld.%09ld\",\"c\":\"%lld.%09ld\"",
		      at->mode, at->uid, at->gid, (long long)at->atime.tv_sec,
		      at->atime.tv_nsec, (long long)at->mtime.tv_sec,
		      at->mtime.tv_nsec, (long long)at->ctime.tv_sec,
		      at->ctime.tv_nsec);
	if (at->kind == DSFS_DIR)
		emitf(a, ",\"o\":%s", at->opaque ? "true" : "false");
	a->entries++;
}

static bool token_written(struct arch_out *a, const char *token)
{
	size_t i;

	for (i = 0; i < a->ntokens; i++)
		if (strcmp(a->tokens[i], token) == 0)
			return true;
	return false;
}

/* The blob with this token, once per layer. */
static int put_blob(struct arch_out *a, struct dsfs_layer *l, const char *key,
		    const struct dsfs_attr *at)
{
	char *data = NULL;
	size_t len = 0;
	int rc;

	if (token_written(a, at->token))
		return 0;
	if (a->ntokens == a->captokens) {
		size_t cap = a->captokens ? a->captokens * 2 : 16;
		void *p = realloc(a->tokens, cap * sizeof(*a->tokens));

		if (!p)
			return -ENOMEM;
		a->tokens = p;
		a->captokens = cap;
	}
	a->tokens[a->ntokens] = strdup(at->token);
	if (!a->tokens[a->ntokens])
		return -ENOMEM;
	a->ntokens++;
	rc = tree_read(l, key, at, &data, &len);
	if (rc)
		return rc;
	emitf(a, "{\"t\":\"b\",\"tk\":\"%s\",\"n\":%zu}\n", at->token, len);
	emit(a, data, len);
	emit(a, "\n", 1);
	free(data);
	return 0;
}

static int put_file(struct arch_out *a, int layer, const char *key,
		    const struct dsfs_attr *at)
{
	struct dsfs_layer *l = a->env->layer[layer];
	char *data = NULL;
	size_t len = 0;
	int rc;

	if (at->token[0]) {
		rc = put_blob(a, l, key, at);
		if (rc)
			return rc;
		emit_head(a, "f", layer, key, at);
		emitf(a, ",\"y\":\"%s\",\"tk\":\"%s\"}\n", at->type, at->token);
		return 0;
	}
	rc = tree_read(l, key, at, &data, &len);
	if (rc)
		return rc;
	emit_head(a, "f", layer, key, at);
	emitf(a, ",\"y\":\"%s\",\"n\":%zu}\n", at->type, len);
	emit(a, data, len);
	emit(a, "\n", 1);
	free(data);
	return 0;
}

static int put_tree(struct arch_out *a, int layer, const char *dir)
{
	struct tree_dir d;
	size_t i;
	int rc;

	rc = tree_list(a->env, dir, layer, layer, layer, &d);
	for (i = 0; rc == 0 && i < d.n; i++) {
		const struct dsfs_attr *at = &d.items[i].attr;
		char *key = tree_join(dir, d.items[i].name);

		if (!key) {
			rc = -ENOMEM;
			break;
		}
		if (at->kind == DSFS_DIR) {
			emit_head(a, "d", layer, key, at);
			emit(a, "}\n", 2);
			rc = put_tree(a, layer, key);
		} else if (at->kind == DSFS_WHITEOUT) {
			emit_head(a, "w", layer, key, at);
			emit(a, "}\n", 2);
		} else {
			rc = put_file(a, layer, key, at);
		}
		if (rc)
			store_fail(a->e, rc, "%s: %s", key, strerror(-rc));
		free(key);
	}
	tree_dir_free(&d);
	return rc;
}

int archive_dump(const struct admin_env *env, FILE *out, struct store_error *e)
{
	static const int layers[] = {L_FACTORY, L_RUNTIME};
	struct arch_out a = {.env = env, .out = out, .e = e};
	char hex[65];
	size_t i, t;
	int rc = 0;

	sha256_init(&a.sha);
	emitf(&a, "%s\n", ARCHIVE_MAGIC);
	for (i = 0; rc == 0 && i < 2; i++) {
		if (!env->layer[layers[i]])
			continue;
		rc = put_tree(&a, layers[i], "kv");
		if (rc == 0)
			rc = put_tree(&a, layers[i], "images");
		for (t = 0; t < a.ntokens; t++)
			free(a.tokens[t]);
		a.ntokens = 0;
	}
	free(a.tokens);
	if (rc)
		return store_fail(e, rc, "archive: %s", strerror(-rc));
	sha256_hex(&a.sha, hex);
	fprintf(out, "{\"t\":\"end\",\"entries\":%llu,\"sha256\":\"%s\"}\n",
		(unsigned long long)a.entries, hex);
	return 0;
}
