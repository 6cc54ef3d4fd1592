/*
 * layer.c - the one set of layer rules: the wrappers the rest of dsfs calls
 * a layer through, and the rules every implementation shares.
 *
 * Each wrapper checks its arguments with assert(), refuses a mutating call
 * on a read-only layer with -EROFS and any change to a tree root before
 * the implementation sees it, answers a lookup of a tree root itself, and
 * otherwise hands the call to l->ops.  Like SQLite's os.c, keeping these
 * checks here means no implementation has to repeat them and a future
 * fault-injection hook has exactly one home.  What an implementation
 * still decides the same way as every other (keys, budget, attributes,
 * rename(2)'s rules) is below the wrappers, as layer_*() functions that
 * layer.h lists for implementations.
 */
#include "layer.h"
#include "validate.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

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

/* Every key the roots refuse is handed over here: an implementation never
 * sees a change to a tree root, nor a lookup of one. */
static bool is_root(const char *key)
{
	return layer_is_root(key, strlen(key));
}

/* What every layer refuses before the change reaches it: any change to a
 * read-only layer (-EROFS), and to a tree root (root_err, which depends on
 * the operation as rename(2), mkdir(2) and friends would answer). */
static int refuse(const struct dsfs_layer *l, const char *key, int root_err)
{
	if (l->readonly)
		return -EROFS;
	return is_root(key) ? root_err : 0;
}

bool layer_readonly(const struct dsfs_layer *l)
{
	assert(layer_ok(l));
	return l->readonly;
}

void layer_set_readonly(struct dsfs_layer *l)
{
	assert(layer_ok(l));
	l->readonly = true;
}

int layer_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a)
{
	assert(layer_ok(l) && key_ok(key) && a);
	if (is_root(key)) {
		layer_root_attr(a);
		return 0;
	}
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
	struct dsfs_attr hashed;
	int rc;

	assert(layer_ok(l) && key_ok(key) && a && (data || !len));
	assert(!a->hash_token || (len && out));
	rc = refuse(l, key, -EISDIR);
	if (rc)
		return rc;
	if (a->hash_token && !l->hashes_images) {
		hashed = *a;
		hashed.hash_token = false;
		layer_image_token(data, len, hashed.token);
		a = &hashed;
	}
	return l->ops->commit(l, key, a, data, len, out);
}

int layer_create(struct dsfs_layer *l, const char *key,
		 const struct dsfs_attr *a, struct dsfs_attr *out)
{
	int rc;

	assert(layer_ok(l) && key_ok(key) && a);
	rc = refuse(l, key, -EISDIR);
	return rc ? rc : l->ops->create(l, key, a, out);
}

int layer_mkdir(struct dsfs_layer *l, const char *key,
		const struct dsfs_attr *a)
{
	int rc;

	assert(layer_ok(l) && key_ok(key) && a);
	rc = refuse(l, key, -EEXIST);
	return rc ? rc : l->ops->mkdir(l, key, a);
}

int layer_remove(struct dsfs_layer *l, const char *key)
{
	int rc;

	assert(layer_ok(l) && key_ok(key));
	rc = refuse(l, key, -EBUSY);
	return rc ? rc : l->ops->remove(l, key);
}

int layer_whiteout(struct dsfs_layer *l, const char *key)
{
	int rc;

	assert(layer_ok(l) && key_ok(key));
	rc = refuse(l, key, -EBUSY);
	return rc ? rc : l->ops->whiteout(l, key);
}

int layer_setattr(struct dsfs_layer *l, const char *key,
		  const struct dsfs_attr *a, unsigned mask)
{
	int rc;

	assert(layer_ok(l) && key_ok(key) && a && !(mask & ~ALL_SET_BITS));
	rc = refuse(l, key, -EPERM); /* the roots' attributes are not stored */
	return rc ? rc : l->ops->setattr(l, key, a, mask);
}

int layer_rename(struct dsfs_layer *l, const char *from, const char *to,
		 unsigned flags)
{
	int rc;

	assert(layer_ok(l) && key_ok(from) && key_ok(to) &&
	       !(flags & ~ALL_RENAME_FLAGS));
	rc = refuse(l, from, -EBUSY);
	if (rc == 0)
		rc = refuse(l, to, -EBUSY);
	return rc ? rc : l->ops->rename(l, from, to, flags);
}

int layer_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
	       void *ctx)
{
	assert(layer_ok(l) && key_ok(dir) && cb);
	return l->ops->list(l, dir, cb, ctx);
}

int layer_list_kinds(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		     void *ctx)
{
	assert(layer_ok(l) && key_ok(dir) && cb);
	if (!l->ops->list_kinds)
		return l->ops->list(l, dir, cb, ctx);
	return l->ops->list_kinds(l, dir, cb, ctx);
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

int layer_room(struct dsfs_layer *l, uint64_t bytes)
{
	assert(layer_ok(l));
	if (!l->ops->room || layer_readonly(l))
		return 0;
	return l->ops->room(l, bytes);
}

int layer_snapshot(struct dsfs_layer *l, struct dsfs_layer **out)
{
	assert(layer_ok(l) && out);
	*out = NULL;
	if (!l->ops->snapshot)
		return -EOPNOTSUPP;
	return l->ops->snapshot(l, out);
}

int layer_replace(struct dsfs_layer *l, const char *key,
		  const struct dsfs_attr *a, const void *data, size_t len,
		  struct dsfs_attr *out)
{
	assert(layer_ok(l) && key_ok(key) && a && (data || !len));
	assert(!a->hash_token || (len && out));
	if (!l->ops->replace || layer_readonly(l) ||
	    (a->hash_token && !l->hashes_images))
		return -ENOENT;
	return l->ops->replace(l, key, a, data, len, out);
}

int layer_take_file(struct dsfs_layer *l, const char *key,
		    struct dsfs_attr *out)
{
	assert(layer_ok(l) && key_ok(key) && out);
	/* What remove() would refuse is left to it: the caller falls back. */
	if (!l->ops->take_file || !l->takes_files || refuse(l, key, -EBUSY))
		return -ENOENT;
	return l->ops->take_file(l, key, out);
}

int layer_settle(struct dsfs_layer *l, const char *key)
{
	assert(layer_ok(l));
	assert(key_ok(key));
	return l->ops->settle ? l->ops->settle(l, key) : 0;
}

void layer_forget(struct dsfs_layer *l, const char *key)
{
	assert(layer_ok(l));
	/* The key comes from another host: one this daemon would not make
	 * may have changed anything. */
	if (l->ops->forget)
		l->ops->forget(l, key && key_ok(key) ? key : NULL);
}

int layer_fetch(struct dsfs_layer *l, const char *key, struct dsfs_attr *a,
		char **data, size_t *len)
{
	assert(layer_ok(l) && key_ok(key) && a && data && len);
	*data = NULL;
	*len = 0;
	if (!l->ops->fetch || is_root(key))
		return layer_lookup(l, key, a);
	return l->ops->fetch(l, key, a, data, len);
}

int layer_apply(struct dsfs_layer *l, const struct layer_change *c, size_t n)
{
	size_t i;
	int rc;

	assert(layer_ok(l) && (c || !n));
	if (!l->ops->apply)
		return -EOPNOTSUPP;
	for (i = 0; i < n; i++) {
		assert(key_ok(c[i].key) && (c[i].data || !c[i].len) &&
		       !c[i].attr.hash_token);
		rc = refuse(l, c[i].key,
			    c[i].op == LAYER_CH_COMMIT ? -EISDIR :
			    c[i].op == LAYER_CH_MKDIR  ? -EEXIST :
							 -EBUSY);
		if (rc)
			return rc;
	}
	return n ? l->ops->apply(l, c, n) : 0;
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

/* ---- rules for implementations ------------------------------------- */

static const char *const tree_roots[] = {"kv", "images"};

bool layer_is_root(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(tree_roots) / sizeof(tree_roots[0]); i++)
		if (strlen(tree_roots[i]) == len &&
		    memcmp(key, tree_roots[i], len) == 0)
			return true;
	return false;
}

const char *layer_tree_root(size_t i)
{
	return i < sizeof(tree_roots) / sizeof(tree_roots[0]) ? tree_roots[i] :
								NULL;
}

/* The attributes the tree roots report: they are never stored. */
void layer_root_attr(struct dsfs_attr *a)
{
	memset(a, 0, sizeof(*a));
	a->kind = DSFS_DIR;
	a->mode = 0755;
}

int layer_split_key(const char *key, size_t len, struct layer_key *k)
{
	size_t i = len;

	while (i > 0 && key[i - 1] != '/')
		i--;
	if (i <= 1 || i == len)
		return -EINVAL;
	k->parent = key;
	k->plen = i - 1;
	k->name = key + i;
	k->nlen = len - i;
	return 0;
}

int layer_dir_check(enum dsfs_kind kind)
{
	if (kind == DSFS_NONE || kind == DSFS_WHITEOUT)
		return -ENOENT;
	return kind == DSFS_DIR ? 0 : -ENOTDIR;
}

/* A change that does not grow usage always fits, even over budget. */
bool layer_fits(uint64_t used, uint64_t budget, uint64_t add, uint64_t sub)
{
	if (add <= sub)
		return true;
	return used <= budget && add - sub <= budget - used;
}

void layer_copy_str(char *dst, size_t cap, const char *src)
{
	size_t n = src ? strnlen(src, cap - 1) : 0;

	memcpy(dst, src ? src : "", n);
	dst[n] = '\0';
}

/* What commit() keeps of the caller's attributes; the kind, size and
 * version are the layer's to set. */
/* The attributes every stored kind takes from the caller: permission
 * bits, owner and times; everything else zero. */
static void keep_attr(struct dsfs_attr *dst, enum dsfs_kind kind,
		      const struct dsfs_attr *a)
{
	*dst = (struct dsfs_attr){.kind = kind,
				  .mode = a->mode & 07777,
				  .uid = a->uid,
				  .gid = a->gid,
				  .atime = a->atime,
				  .mtime = a->mtime,
				  .ctime = a->ctime};
}

void layer_file_attr(struct dsfs_attr *dst, const struct dsfs_attr *a)
{
	keep_attr(dst, DSFS_FILE, a);
	layer_copy_str(dst->type, sizeof(dst->type), a->type);
	layer_copy_str(dst->token, sizeof(dst->token), a->token);
}

void layer_dir_attr(struct dsfs_attr *dst, const struct dsfs_attr *a)
{
	keep_attr(dst, DSFS_DIR, a);
	dst->opaque = a->opaque;
}

void layer_image_token(const void *data, size_t len,
		       char token[DSFS_TOKEN_LEN + 1])
{
	struct dsfs_sha256 sha;

	sha256_init(&sha);
	sha256_update(&sha, data, len);
	sha256_hex(&sha, token);
}

void layer_inherit_group(struct dsfs_attr *dst, const struct dsfs_attr *a,
			 const struct dsfs_attr *parent)
{
	if (!a->inherit_group || !parent || parent->kind != DSFS_DIR ||
	    !(parent->mode & S_ISGID))
		return;
	dst->gid = parent->gid;
	if (dst->kind == DSFS_DIR)
		dst->mode |= S_ISGID;
}

/* A whiteout's attributes: nothing but the kind (and the version the
 * layer sets). */
void layer_whiteout_attr(struct dsfs_attr *dst)
{
	memset(dst, 0, sizeof(*dst));
	dst->kind = DSFS_WHITEOUT;
}

void layer_apply_setattr(struct dsfs_attr *dst, const struct dsfs_attr *a,
			 unsigned mask)
{
	if (mask & DSFS_SET_MODE)
		dst->mode = a->mode & 07777;
	if (mask & DSFS_SET_UID)
		dst->uid = a->uid;
	if (mask & DSFS_SET_GID)
		dst->gid = a->gid;
	if (mask & DSFS_SET_ATIME)
		dst->atime = a->atime;
	if (mask & DSFS_SET_MTIME)
		dst->mtime = a->mtime;
	if (mask & DSFS_SET_CTIME)
		dst->ctime = a->ctime;
}

/* The overlay passes the version an entry had in another layer as a
 * floor, so that the entry's version keeps increasing when it moves. */
uint64_t layer_version_floor(uint64_t seq, const struct dsfs_attr *a)
{
	return a->version > seq ? a->version : seq;
}

int layer_rename_check(const char *from, const char *to, unsigned flags,
		       const struct dsfs_attr *src, const struct dsfs_attr *dst,
		       bool *same)
{
	size_t flen = strlen(from);

	*same = strcmp(from, to) == 0;
	if (*same)
		return (flags & DSFS_RENAME_NOREPLACE) ? -EEXIST : 0;
	if (src->kind == DSFS_DIR && strncmp(to, from, flen) == 0 &&
	    to[flen] == '/')
		return -EINVAL;
	if (!dst || dst->kind == DSFS_WHITEOUT)
		return 0;
	if (flags & DSFS_RENAME_NOREPLACE)
		return -EEXIST;
	if (src->kind != DSFS_DIR && dst->kind == DSFS_DIR)
		return -EISDIR;
	if (src->kind == DSFS_DIR && dst->kind != DSFS_DIR)
		return -ENOTDIR;
	return 0;
}

/* Times are stored as nanoseconds since the epoch, which holds ±292
 * years; anything further out is clamped rather than wrapped. */
int64_t layer_time_ns(struct timespec t)
{
	const int64_t lim = INT64_MAX / 1000000000 - 1;

	if (t.tv_sec > lim)
		return INT64_MAX;
	if (t.tv_sec < -lim)
		return INT64_MIN;
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

struct timespec layer_ns_time(int64_t ns)
{
	struct timespec t;

	t.tv_sec = (time_t)(ns / 1000000000);
	t.tv_nsec = (long)(ns % 1000000000);
	if (t.tv_nsec < 0) {
		t.tv_nsec += 1000000000;
		t.tv_sec--;
	}
	return t;
}

/* The wall clock, as a local filesystem stamps a directory whose names
 * change (layer.h, Directory times). */
struct timespec layer_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_REALTIME, &t);
	return t;
}
