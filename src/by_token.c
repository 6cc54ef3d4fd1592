/*
 * by_token.c - images/.by-token/TOKEN, an image's bytes found by their
 * content token, and the read-only user.dsfs.* attributes that give an
 * entry's layer, type, version and token, and why its last write was
 * refused (error: kept by last_error.c, shown only to who could write it).
 *
 * .by-token lives in the merged images/ tree only, outside every layer:
 * TOKEN is the blob of that token in whichever layer holds one, read-only,
 * owned by the store's owner and as old as the mount, and not listed
 * (dirsource.c says why).  Everything here answers through the overlay
 * (ovl_find_blob, ovl_open_blob) and an open handle, never by reading a
 * layer itself.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "handle.h"
#include "validate.h"

#define XATTR_LAYER "user.dsfs.layer"
#define XATTR_TYPE "user.dsfs.type"
#define XATTR_VERSION "user.dsfs.version"
#define XATTR_TOKEN "user.dsfs.token"
#define XATTR_ERROR "user.dsfs.error"

bool is_by_token_name(const struct node *dir, const char *name)
{
	return dir->view == VIEW_MERGED && dir->tree == TREE_IMAGES &&
	       dir->is_tree_root && strcmp(name, BY_TOKEN) == 0;
}

static bool is_token(const char *name)
{
	size_t i;

	for (i = 0; i < DSFS_TOKEN_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return name[DSFS_TOKEN_LEN] == '\0';
}

int token_stat(struct dsfs_ctx *ctx, struct node *n, struct stat *st,
	       int *layer)
{
	uint64_t size;
	int where, rc;

	if (!n->name)
		return -ENOENT;
	rc = ovl_find_blob(&ctx->stack, n->name, &where, &size);
	if (rc)
		return rc;
	fixed_stat(ctx, n, st);
	st->st_mode = S_IFREG | 0444;
	st->st_nlink = 1;
	st->st_size = (off_t)size;
	st->st_blocks = (blkcnt_t)((size + 511) / 512);
	if (layer)
		*layer = where;
	return 0;
}

int lookup_by_token(struct dsfs_ctx *ctx, struct node *dir, const char *name,
		    struct fuse_entry_param *e)
{
	struct node *n;
	int rc;

	if (dir->special != NODE_BY_TOKEN_DIR) {
		n = node_link_special(&ctx->nodes, dir, name,
				      NODE_BY_TOKEN_DIR);
		if (!n)
			return -ENOMEM;
		memset(e, 0, sizeof(*e));
		e->ino = n->ino;
		fixed_stat(ctx, n, &e->attr);
		e->attr_timeout = e->entry_timeout = ctx->timeout;
		return 0;
	}
	if (!is_token(name))
		return -ENOENT;
	n = node_link_special(&ctx->nodes, dir, name, NODE_BY_TOKEN);
	if (!n)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	rc = token_stat(ctx, n, &e->attr, NULL);
	if (rc) {
		node_forget(&ctx->nodes, n->ino, 1);
		return rc;
	}
	/* A token's bytes never change; whether it exists may. */
	e->attr_timeout = e->entry_timeout = 0;
	return 0;
}

int open_token(struct dsfs_ctx *ctx, struct node *n, struct handle **h)
{
	struct dsfs_layer *held;
	uint64_t size;
	int rc;

	if (!n->name)
		return -ENOENT;
	rc = ovl_open_blob(&ctx->stack, n->name, &size, &held);
	if (rc)
		return rc;
	rc = handle_new_stream(held, n->name, h);
	if (rc)
		ovl_release_image(&ctx->stack, held, n->name);
	return rc;
}

/* The type of a token's blob, from its first bytes, read through a handle
 * of its own. */
static int token_type(struct dsfs_ctx *ctx, struct node *n, const char **type)
{
	unsigned char head[32];
	struct handle *h;
	ssize_t got;
	int rc;

	*type = NULL;
	rc = open_token(ctx, n, &h);
	if (rc)
		return rc;
	got = handle_read(h, 0, head, sizeof(head));
	ovl_release_image(&ctx->stack, h->src, h->token);
	handle_free(h);
	/* A blob that cannot be read has no type to tell: say so rather than
	 * call it empty (the layer has logged why). */
	if (got < 0)
		return (int)got;
	if (got > 0)
		*type = image_type(head, (size_t)got);
	return 0;
}

static int token_xattr(struct dsfs_ctx *ctx, struct node *n, const char *name,
		       char *buf, size_t size)
{
	const char *type;
	struct stat st;
	int layer, rc;

	rc = token_stat(ctx, n, &st, &layer);
	if (rc)
		return rc;
	if (strcmp(name, XATTR_LAYER) == 0) {
		snprintf(buf, size, "%s", layer_name(layer));
	} else if (strcmp(name, XATTR_TOKEN) == 0) {
		snprintf(buf, size, "%s", n->name);
	} else if (strcmp(name, XATTR_TYPE) == 0) {
		rc = token_type(ctx, n, &type);
		if (rc)
			return rc;
		snprintf(buf, size, "%s", type ? type : "empty");
	} else {
		return -ENODATA;
	}
	return 0;
}

/* Could who write an entry with these attributes?  The reason of a
 * refused write may show what was being written: it is for the writers'
 * eyes (root, the owner, the group by the process's own gid, others by
 * the mode's bits), as default_permissions would judge an open for
 * writing. */
static bool may_write(const struct fuse_ctx *who, const struct dsfs_attr *a)
{
	if (who->uid == 0)
		return true;
	if (who->uid == a->uid)
		return a->mode & 0200;
	if (who->gid == a->gid)
		return a->mode & 0020;
	return a->mode & 0002;
}

/* The five user.dsfs.* attributes, the only ones dsfs has. */
static const char *const xattr_names[] = {
	XATTR_LAYER, XATTR_TYPE, XATTR_VERSION, XATTR_TOKEN, XATTR_ERROR};

static bool is_dsfs_xattr(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(xattr_names) / sizeof(xattr_names[0]); i++)
		if (strcmp(name, xattr_names[i]) == 0)
			return true;
	return false;
}

/* The entry n stands for, at *l. */
static int xattr_entry(struct dsfs_ctx *ctx, struct node *n, struct loc *l,
		       struct found *f)
{
	int rc = node_found(ctx, n, l, f);

	/* Retired or renamed over while the kernel's walk reached it: what
	 * the name holds now, as an open does (file.c), for the kernel
	 * retries an ESTALE only once and a storm of renames over the name
	 * can make that fail too. */
	if (rc == -ESTALE && node_former_loc(&ctx->nodes, n, l) == 0)
		rc = ovl_lookup(&ctx->stack, l, f);
	return rc;
}

static int entry_xattr(struct dsfs_ctx *ctx, const struct loc *l,
		       const struct found *f, const struct fuse_ctx *who,
		       const char *name, char *buf, size_t size)
{
	if (strcmp(name, XATTR_LAYER) == 0)
		snprintf(buf, size, "%s", layer_name(f->layer));
	else if (strcmp(name, XATTR_TYPE) == 0)
		snprintf(buf, size, "%s",
			 f->attr.kind == DSFS_DIR ? "object" : f->attr.type);
	else if (strcmp(name, XATTR_VERSION) == 0)
		snprintf(buf, size, "%llu",
			 (unsigned long long)f->attr.version);
	else if (strcmp(name, XATTR_TOKEN) == 0 && f->attr.token[0])
		snprintf(buf, size, "%s", f->attr.token);
	else if (strcmp(name, XATTR_ERROR) == 0 && may_write(who, &f->attr))
		return last_error_get(&ctx->errors, l->key, buf, size);
	else
		return -ENODATA;
	return 0;
}

int xattr_value(struct dsfs_ctx *ctx, struct node *n,
		const struct fuse_ctx *who, const char *name, char *buf,
		size_t size)
{
	struct found f;
	struct loc l;
	int rc;

	/* Any other name (the kernel asks for security.capability before
	 * every write that may have to drop it) has no value anywhere:
	 * answered without asking the store, which may be a server away. */
	if (is_fixed(n) || !is_dsfs_xattr(name))
		return -ENODATA;
	if (n->special == NODE_BY_TOKEN)
		return token_xattr(ctx, n, name, buf, size);
	rc = xattr_entry(ctx, n, &l, &f);
	return rc ? rc : entry_xattr(ctx, &l, &f, who, name, buf, size);
}

size_t xattr_list(struct dsfs_ctx *ctx, struct node *n,
		  const struct fuse_ctx *who, char *list, size_t size)
{
	char value[LAST_ERROR_LEN];
	size_t i, len = 0;
	struct found f = {0}; /* unused for a token: token_xattr() */
	struct loc l = {0};

	if (is_fixed(n))
		return 0;
	/* One lookup for all five. */
	if (n->special != NODE_BY_TOKEN && xattr_entry(ctx, n, &l, &f) != 0)
		return 0;
	for (i = 0; i < sizeof(xattr_names) / sizeof(xattr_names[0]); i++) {
		const char *name = xattr_names[i];
		int rc = n->special == NODE_BY_TOKEN ?
				 token_xattr(ctx, n, name, value,
					     sizeof(value)) :
				 entry_xattr(ctx, &l, &f, who, name, value,
					     sizeof(value));

		if (rc != 0)
			continue;
		if (len + strlen(name) + 1 > size)
			break;
		memcpy(list + len, name, strlen(name) + 1);
		len += strlen(name) + 1;
	}
	return len;
}
