/*
 * layer.c - the one place the rest of dsfs calls a layer through.
 *
 * Each wrapper checks its arguments with assert(), refuses a mutating call
 * on a read-only layer with -EROFS before the implementation sees it, and
 * otherwise hands the call to l->ops.  Like SQLite's os.c, keeping these
 * checks here means no implementation has to repeat them and a future
 * fault-injection hook has exactly one home.
 */
#include "layer.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define ALL_SET_BITS                                                    \
	(DSFS_SET_MODE | DSFS_SET_UID | DSFS_SET_GID | DSFS_SET_ATIME | \
	 DSFS_SET_MTIME | DSFS_SET_CTIME)
#define ALL_RENAME_FLAGS (DSFS_RENAME_NOREPLACE | DSFS_RENAME_WHITEOUT)

/* A layer handed to a wrapper must speak the ops version this file was
 * compiled against. */
static bool layer_ok(const struct dsfs_layer *l)
{
	return l && l->ops && l->ops->version == DSFS_LAYER_OPS_VERSION;
}

/* Keys are built by namespace code from checked names, so a malformed one
 * is a bug in the caller: no empty components, no leading or trailing '/'. */
static bool key_ok(const char *key)
{
	size_t len;

	if (!key || !*key || key[0] == '/')
		return false;
	len = strlen(key);
	return key[len - 1] != '/' && !strstr(key, "//");
}

int layer_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a)
{
	assert(layer_ok(l) && key_ok(key) && a);
	return l->ops->lookup(l, key, a);
}

ssize_t layer_read(struct dsfs_layer *l, const char *key, uint64_t off,
		   void *buf, size_t len)
{
	assert(layer_ok(l) && key_ok(key) && (buf || !len));
	return l->ops->read(l, key, off, buf, len);
}

ssize_t layer_read_blob(struct dsfs_layer *l, const char *token, uint64_t off,
			void *buf, size_t len)
{
	assert(layer_ok(l) && token && *token && (buf || !len));
	return l->ops->read_blob(l, token, off, buf, len);
}

int layer_commit(struct dsfs_layer *l, const char *key,
		 const struct dsfs_attr *a, const void *data, size_t len,
		 struct dsfs_attr *out)
{
	assert(layer_ok(l) && key_ok(key) && a && (data || !len));
	if (l->readonly)
		return -EROFS;
	return l->ops->commit(l, key, a, data, len, out);
}

int layer_mkdir(struct dsfs_layer *l, const char *key,
		const struct dsfs_attr *a)
{
	assert(layer_ok(l) && key_ok(key) && a);
	if (l->readonly)
		return -EROFS;
	return l->ops->mkdir(l, key, a);
}

int layer_remove(struct dsfs_layer *l, const char *key)
{
	assert(layer_ok(l) && key_ok(key));
	if (l->readonly)
		return -EROFS;
	return l->ops->remove(l, key);
}

int layer_whiteout(struct dsfs_layer *l, const char *key)
{
	assert(layer_ok(l) && key_ok(key));
	if (l->readonly)
		return -EROFS;
	return l->ops->whiteout(l, key);
}

int layer_setattr(struct dsfs_layer *l, const char *key,
		  const struct dsfs_attr *a, unsigned mask)
{
	assert(layer_ok(l) && key_ok(key) && a && !(mask & ~ALL_SET_BITS));
	if (l->readonly)
		return -EROFS;
	return l->ops->setattr(l, key, a, mask);
}

int layer_rename(struct dsfs_layer *l, const char *from, const char *to,
		 unsigned flags)
{
	assert(layer_ok(l) && key_ok(from) && key_ok(to) &&
	       !(flags & ~ALL_RENAME_FLAGS));
	if (l->readonly)
		return -EROFS;
	return l->ops->rename(l, from, to, flags);
}

int layer_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
	       void *ctx)
{
	assert(layer_ok(l) && key_ok(dir) && cb);
	return l->ops->list(l, dir, cb, ctx);
}

int layer_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget)
{
	assert(layer_ok(l) && used && budget);
	return l->ops->usage(l, used, budget);
}

/* Not a mutation: on a read-only layer there is simply nothing to flush. */
int layer_sync(struct dsfs_layer *l)
{
	assert(layer_ok(l));
	return l->ops->sync(l);
}

int layer_clear(struct dsfs_layer *l)
{
	assert(layer_ok(l));
	if (l->readonly)
		return -EROFS;
	return l->ops->clear(l);
}

/* Tokens come from stored attributes, so one that could not have been
 * stored is a bug in the caller. */
static bool token_ok(const char *token)
{
	return token && *token && strlen(token) <= DSFS_TOKEN_LEN;
}

int layer_stat_blob(struct dsfs_layer *l, const char *token, uint64_t *size)
{
	assert(layer_ok(l) && token_ok(token) && size);
	return l->ops->stat_blob(l, token, size);
}

/* Pins are allowed on a read-only layer: they change no stored content,
 * and a reader of the factory image pins like any other. */
int layer_pin_blob(struct dsfs_layer *l, const char *token)
{
	assert(layer_ok(l) && token_ok(token));
	return l->ops->pin_blob(l, token);
}

int layer_unpin_blob(struct dsfs_layer *l, const char *token)
{
	assert(layer_ok(l) && token_ok(token));
	return l->ops->unpin_blob(l, token);
}

/* NULL is accepted, like free(), so that teardown paths stay simple. */
void layer_close(struct dsfs_layer *l)
{
	if (!l)
		return;
	assert(layer_ok(l));
	l->ops->close(l);
}
