/*
 * fuse_ops.c - the FUSE low-level operations: decode a request, call the
 * node table, the overlay or an open handle, send exactly one reply.
 *
 * Helpers return 0 or a negative errno; each handler chooses the reply, and
 * the sign flips once, at fuse_reply_err(req, -rc).  Every lookup count a
 * reply sends was counted by node_link(); a count taken for a reply that
 * then fails is given back with node_forget().
 *
 * Caching.  The merged kv/ and images/ trees are cached by the kernel for
 * ctx->timeout seconds; every change made through another tree that shows
 * the same entry (a layer's own tree, devices/) is followed, before the
 * reply, by an invalidation of the merged node.  The other trees are not
 * cached (timeout 0), so nothing needs invalidating for them.  Negative
 * lookups are never cached, so a name that appears below the kernel shows at
 * once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "daemon.h"
#include "dirlist.h"
#include "handle.h"
#include "log.h"
#include "validate.h"

#define XATTR_LAYER "user.dsfs.layer"
#define XATTR_TYPE "user.dsfs.type"
#define XATTR_VERSION "user.dsfs.version"
#define XATTR_TOKEN "user.dsfs.token"

static const char *const layer_names[DSFS_NLAYERS] = {"ephemeral", "runtime",
						      "factory"};

static struct dsfs_ctx *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* The path of a loc as the user sees it, for log lines. */
static const char *loc_path(const struct loc *l, char *buf, size_t size)
{
	if (l->view == VIEW_LAYER)
		snprintf(buf, size, "%s/%s", layer_names[l->layer], l->key);
	else
		snprintf(buf, size, "%s", l->key);
	return buf;
}

static void log_fail(const struct loc *l, const char *name, const char *what,
		     int rc, const char *why)
{
	char path[DSFS_KEY_MAX + 16];

	loc_path(l, path, sizeof(path));
	log_err("%s%s%s: %s: %s", path, name ? "/" : "", name ? name : "", what,
		why ? why : strerror(-rc));
}

static double timeout_of(struct dsfs_ctx *ctx, const struct node *n)
{
	if (n->view == VIEW_ROOT || n->is_tree_root)
		return ctx->timeout;
	if (n->view == VIEW_MERGED && n->tree != TREE_DEVICES)
		return ctx->timeout;
	return 0.0;
}

static void fixed_stat(struct dsfs_ctx *ctx, const struct node *n,
		       struct stat *st)
{
	bool ro = n->view != VIEW_MERGED && n->layer == L_FACTORY &&
		  n->view != VIEW_ROOT;

	memset(st, 0, sizeof(*st));
	st->st_ino = n->ino;
	st->st_mode = S_IFDIR | (ro ? 0555 : 0755);
	if (n->ino == ROOT_INO ||
	    (n->view == VIEW_ROOT && n->layer == L_FACTORY))
		st->st_mode = S_IFDIR | 0755;
	if (n->special == NODE_BY_TOKEN_DIR)
		st->st_mode = S_IFDIR | 0555;
	st->st_nlink = 2;
	st->st_uid = ctx->owner_uid;
	st->st_gid = ctx->owner_gid;
	st->st_blksize = 4096;
	st->st_atim = st->st_mtim = st->st_ctim = ctx->started;
}

static void attr_stat(uint64_t ino, const struct dsfs_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = (a->kind == DSFS_DIR ? S_IFDIR : S_IFREG) |
		      (a->mode & 07777);
	st->st_nlink = a->kind == DSFS_DIR ? 2 : 1;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((a->size + 511) / 512);
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static bool is_fixed(const struct node *n)
{
	return n->view == VIEW_ROOT || n->is_tree_root ||
	       n->special == NODE_BY_TOKEN_DIR;
}

#define BY_TOKEN ".by-token"

/* images/.by-token, in the merged images/ tree only. */
static bool is_by_token_name(const struct node *dir, const char *name)
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

/* A blob seen through images/.by-token/TOKEN: read-only, owned by the
 * store's owner, as old as the mount. */
static int token_stat(struct dsfs_ctx *ctx, struct node *n, struct stat *st,
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

/* Look up what node n stands for now.  A child of devices/ must be a
 * directory (kv/__ID/). */
static int node_found(struct dsfs_ctx *ctx, struct node *n, struct loc *l,
		      struct found *f)
{
	int rc = node_loc(&ctx->nodes, n, l);

	if (rc)
		return rc;
	rc = ovl_lookup(&ctx->stack, l, f);
	if (rc == 0 && n->tree == TREE_DEVICES && n->parent &&
	    n->parent->is_tree_root && f->attr.kind != DSFS_DIR)
		rc = -ENOENT;
	return rc;
}

static enum dsfs_content content_of(const struct loc *l)
{
	return l->tree == TREE_IMAGES ? DSFS_CONTENT_IMAGE : DSFS_CONTENT_JSON;
}

/* Make the kernel drop the attributes of the merged node that key names
 * now, if it knows one. */
static void notify_key(struct dsfs_ctx *ctx, const struct loc *l)
{
	uint64_t ino, parent;
	const char *name;

	if (node_find_merged(&ctx->nodes, l->key, &ino, &parent, &name) == 0 &&
	    ino)
		fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
}

/* After a change to key through a tree other than the merged one, make the
 * kernel drop what it cached of the merged node for the same key.  Called
 * with no lock of ours held, so a request this waits for can be served. */
static void notify_alias(struct dsfs_ctx *ctx, const struct loc *l, bool entry)
{
	uint64_t ino, parent;
	const char *name;

	if (l->view == VIEW_MERGED && l->tree != TREE_DEVICES)
		return;
	if (node_find_merged(&ctx->nodes, l->key, &ino, &parent, &name) != 0)
		return;
	if (ino)
		fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
	if (entry) {
		if (ino)
			fuse_lowlevel_notify_inval_entry(ctx->se, parent, name,
							 strlen(name));
		/* and the directory's cached listing, also when the name is
		 * new to the kernel */
		fuse_lowlevel_notify_inval_inode(ctx->se, parent, 0, 0);
	}
}

/* Reply to a lookup, mkdir or create with the node for parent/name. */
static int make_entry(struct dsfs_ctx *ctx, struct node *parent,
		      const char *name, const struct found *f,
		      struct fuse_entry_param *e)
{
	struct node *n;

	n = node_link(&ctx->nodes, parent, name, f->attr.kind == DSFS_DIR,
		      f->limit);
	if (!n)
		return -ENOMEM;
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	attr_stat(n->ino, &f->attr, &e->attr);
	e->attr_timeout = e->entry_timeout = timeout_of(ctx, n);
	return 0;
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void dsfs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	/* O_TRUNC arrives with open(), so a truncating writer works on its
	 * own empty copy instead of emptying the stored value at once. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* flock() is served by the kernel on this host. */
	conn->want &= ~(unsigned)FUSE_CAP_FLOCK_LOCKS;
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_LOCKS;
}

/* A name that can never be stored: log it with its directory, printable. */
static void log_bad_name(struct dsfs_ctx *ctx, struct node *dir,
			 const char *name, int rc)
{
	char shown[96], path[DSFS_KEY_MAX + 16];
	size_t i, pos = 0;
	struct loc l;

	for (i = 0; name[i] && pos + 5 < sizeof(shown); i++) {
		unsigned char c = (unsigned char)name[i];

		if (c >= 0x20 && c < 0x7f)
			shown[pos++] = (char)c;
		else
			pos += (size_t)snprintf(
				shown + pos, sizeof(shown) - pos, "\\x%02x", c);
	}
	shown[pos] = '\0';
	path[0] = '\0';
	if (node_loc(&ctx->nodes, dir, &l) == 0 && l.view != VIEW_ROOT)
		loc_path(&l, path, sizeof(path));
	log_err("%s/%s%s: %s", path, shown, name[i] ? "..." : "",
		rc == -ENAMETOOLONG ?
			"name longer than 255 bytes (ENAMETOOLONG)" :
			"name is not valid UTF-8 (EINVAL)");
}

static int lookup_by_token(struct dsfs_ctx *ctx, struct node *dir,
			   const char *name, struct fuse_entry_param *e)
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

static void dsfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct fuse_entry_param e;
	struct node *dir, *n;
	struct found f;
	struct loc l;
	int rc;

	dir = node_get(&ctx->nodes, parent);
	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = name_check(name);
	if (rc) {
		log_bad_name(ctx, dir, name, rc);
		goto out;
	}
	if (dir->view == VIEW_ROOT) {
		/* The root and the layer directories hold fixed names. */
		rc = -ENOENT;
		n = node_get_child(&ctx->nodes, dir, name);
		if (n) {
			memset(&e, 0, sizeof(e));
			e.ino = n->ino;
			fixed_stat(ctx, n, &e.attr);
			e.attr_timeout = e.entry_timeout = ctx->timeout;
			rc = 0;
		}
		goto out;
	}
	if (is_by_token_name(dir, name) || dir->special == NODE_BY_TOKEN_DIR) {
		rc = lookup_by_token(ctx, dir, name, &e);
		goto out;
	}
	rc = node_child_loc(&ctx->nodes, dir, name, &l);
	if (rc == 0)
		rc = ovl_lookup(&ctx->stack, &l, &f);
	if (rc == 0 && dir->tree == TREE_DEVICES && dir->is_tree_root &&
	    f.attr.kind != DSFS_DIR)
		rc = -ENOENT;
	if (rc == 0)
		rc = make_entry(ctx, dir, name, &f, &e);
out:
	node_put(&ctx->nodes, dir);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (fuse_reply_entry(req, &e) != 0)
		node_forget(&ctx->nodes, e.ino, 1);
}

static void dsfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	node_forget(&ctx_of(req)->nodes, ino, nlookup);
	fuse_reply_none(req);
}

static void dsfs_forget_multi(fuse_req_t req, size_t count,
			      struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		node_forget(&ctx_of(req)->nodes, forgets[i].ino,
			    forgets[i].nlookup);
	fuse_reply_none(req);
}

static int stat_node(struct dsfs_ctx *ctx, struct node *n, struct stat *st)
{
	struct found f;
	struct loc l;
	int rc;

	if (is_fixed(n)) {
		fixed_stat(ctx, n, st);
		return 0;
	}
	if (n->special == NODE_BY_TOKEN)
		return token_stat(ctx, n, st, NULL);
	rc = node_found(ctx, n, &l, &f);
	if (rc == 0)
		attr_stat(n->ino, &f.attr, st);
	return rc;
}

static void dsfs_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct node *n = node_get(&ctx->nodes, ino);
	struct stat st;
	int rc;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	bool own;

	rc = stat_node(ctx, n, &st);
	if (rc == -ESTALE) {
		/* fstat of an open file whose name is gone */
		struct dsfs_attr gone;

		rc = node_gone(&ctx->nodes, n, &gone);
		if (rc == 0) {
			attr_stat(n->ino, &gone, &st);
			st.st_nlink = 0;
		}
	}
	own = false;
	if (rc == 0 && h && !h->src && !is_fixed(n) && !n->is_dir) {
		/* An open writer sees the size of its own copy. */
		pthread_mutex_lock(&h->lock);
		if (h->writable && h->dirty) {
			st.st_size = (off_t)h->len;
			own = true;
		}
		pthread_mutex_unlock(&h->lock);
	}
	if (rc == 0 && !own)
		node_attrs_sent(&ctx->nodes, n);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout_of(ctx, n));
	node_put(&ctx->nodes, n);
}

/* Commit an open handle's copy if it changed; `last` at the final close,
 * when a pending O_TRUNC alone is committed too.  Called with h->lock
 * held. */
static int commit_handle(struct dsfs_ctx *ctx, struct handle *h, bool last)
{
	struct dsfs_attr a;
	const char *why = NULL;
	struct found f;
	struct loc l;
	int rc;

	if (!h->writable || !(h->dirty || (last && h->trunc_pending)))
		return 0;
	rc = node_loc(&ctx->nodes, h->node, &l);
	if (rc == -ESTALE && h->walked) {
		l = *h->walked;
		rc = 0;
	} else if (rc == -ESTALE) {
		/* Unlinked or replaced while open: its bytes have nowhere to
		 * go, as on any filesystem. */
		h->dirty = false;
		return 0;
	}
	if (rc)
		return rc;
	memset(&a, 0, sizeof(a));
	rc = handle_check(h, &a, &why);
	if (rc) {
		log_fail(&l, NULL, "not stored", rc, why);
		return rc;
	}
	a.mode = 0644;
	now(&a.ctime);
	a.atime = a.mtime = a.ctime;
	/* Times set with futimens()/utimensat() while this was open for
	 * writing (cp -p, tar x) are what the committed value keeps. */
	node_take_times(&ctx->nodes, h->node, &a.atime, &a.mtime);
	rc = ovl_commit(&ctx->stack, &l, &a, h->buf, h->len, &f);
	if (rc) {
		log_fail(&l, NULL, "not stored", rc, NULL);
		return rc;
	}
	handle_committed(h);
	/* The kernel's size and times of this inode came from the writes
	 * and from attributes sent before the commit: refetch them, unless
	 * the kernel sized the file from this handle's writes alone (it
	 * marks size and times stale after a write itself).  The GETATTR
	 * this saves is one round trip of every `echo > f`. */
	if (!h->from_empty || !node_sole_writer_view(&ctx->nodes, h->node))
		fuse_lowlevel_notify_inval_inode(ctx->se, h->node->ino, -1, 0);
	/* Written through an inode the name no longer has. */
	if (h->walked)
		notify_key(ctx, &l);
	notify_alias(ctx, &l, false);
	return 0;
}

/* Let go of an open file's handle and what it holds. */
static void drop_handle(struct dsfs_ctx *ctx, struct handle *h)
{
	if (h->cache_reader)
		node_cache_done(&ctx->nodes, h->node);
	if (h->writable)
		node_writers(&ctx->nodes, h->node, -1);
	node_put(&ctx->nodes, h->node);
	ovl_release_image(&ctx->stack, h->src, h->token);
	handle_free(h);
}

/* Set the size of a closed file: read, resize, check, commit. */
static int truncate_closed(struct dsfs_ctx *ctx, struct node *n, off_t size)
{
	struct handle *h;
	struct found f;
	struct loc l;
	char *data = NULL;
	size_t len = 0;
	int rc;

	rc = node_loc(&ctx->nodes, n, &l);
	if (rc)
		return rc;
	if (size != 0) {
		rc = ovl_read_all(&ctx->stack, &l, &f, &data, &len);
		if (rc)
			return rc;
	}
	rc = handle_new(content_of(&l), data, len, true, size == 0, UINT64_MAX,
			&h);
	if (rc)
		return rc;
	h->node = n;
	rc = handle_truncate(h, (uint64_t)size);
	h->dirty = true;
	if (rc == 0)
		rc = commit_handle(ctx, h, true);
	handle_free(h);
	return rc;
}

static void dsfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			 int to_set, struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	struct node *n = node_get(&ctx->nodes, ino);
	struct dsfs_attr a;
	unsigned mask = 0;
	struct found f;
	struct stat st;
	struct loc l;
	int rc = 0;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (n->special != NODE_PLAIN) {
		rc = -EROFS;
		goto out;
	}
	if (is_fixed(n)) {
		rc = -EPERM;
		goto out;
	}
	rc = node_loc(&ctx->nodes, n, &l);
	if (rc)
		goto out;
	if (to_set & FUSE_SET_ATTR_SIZE) {
		if (n->is_dir) {
			rc = -EISDIR;
		} else if (l.view == VIEW_LAYER && l.layer == L_FACTORY) {
			rc = -EROFS;
		} else if (h && h->writable) {
			pthread_mutex_lock(&h->lock);
			rc = handle_truncate(h, (uint64_t)attr->st_size);
			pthread_mutex_unlock(&h->lock);
		} else {
			rc = truncate_closed(ctx, n, attr->st_size);
		}
		if (rc) {
			log_fail(&l, NULL, "truncate", rc, NULL);
			goto out;
		}
	}
	memset(&a, 0, sizeof(a));
	if (to_set & FUSE_SET_ATTR_MODE) {
		a.mode = attr->st_mode & 07777;
		mask |= DSFS_SET_MODE;
	}
	if (to_set & FUSE_SET_ATTR_UID) {
		a.uid = attr->st_uid;
		mask |= DSFS_SET_UID;
	}
	if (to_set & FUSE_SET_ATTR_GID) {
		a.gid = attr->st_gid;
		mask |= DSFS_SET_GID;
	}
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		if (to_set & FUSE_SET_ATTR_ATIME_NOW)
			now(&a.atime);
		else
			a.atime = attr->st_atim;
		mask |= DSFS_SET_ATIME;
	}
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW)) {
		if (to_set & FUSE_SET_ATTR_MTIME_NOW)
			now(&a.mtime);
		else
			a.mtime = attr->st_mtim;
		mask |= DSFS_SET_MTIME;
	}
	if (mask & (DSFS_SET_ATIME | DSFS_SET_MTIME))
		node_set_times(&ctx->nodes, n,
			       (mask & DSFS_SET_ATIME) ? &a.atime : NULL,
			       (mask & DSFS_SET_MTIME) ? &a.mtime : NULL);
	if (mask) {
		now(&a.ctime);
		mask |= DSFS_SET_CTIME;
		rc = ovl_setattr(&ctx->stack, &l, &a, mask, &f);
		if (rc) {
			log_fail(&l, NULL, "setattr", rc, NULL);
			goto out;
		}
		notify_alias(ctx, &l, false);
	}
	rc = stat_node(ctx, n, &st);
	if (rc == 0 && h && h->writable) {
		pthread_mutex_lock(&h->lock);
		if (h->dirty)
			st.st_size = (off_t)h->len;
		pthread_mutex_unlock(&h->lock);
	}
	if (rc == 0)
		node_attrs_sent(&ctx->nodes, n);
out:
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, timeout_of(ctx, n));
	node_put(&ctx->nodes, n);
}

/* Common checks for making a name in dir: returns the loc of the new
 * name.  Nothing can be made at the root or in the layer directories. */
static int new_name_loc(struct dsfs_ctx *ctx, struct node *dir,
			const char *name, struct loc *l)
{
	int rc;

	if (dir->view == VIEW_ROOT)
		return -EPERM;
	if (dir->special != NODE_PLAIN)
		return -EROFS;
	rc = name_check(name);
	if (rc)
		return rc;
	if (dir->tree == TREE_IMAGES && dir->is_tree_root &&
	    strcmp(name, BY_TOKEN) == 0)
		return -EPERM; /* reserved for images/.by-token */
	rc = node_child_loc(&ctx->nodes, dir, name, l);
	if (rc)
		return rc;
	if (l->view == VIEW_LAYER && l->layer == L_FACTORY)
		return -EROFS;
	return 0;
}

static void new_attr(fuse_req_t req, mode_t mode, struct dsfs_attr *a)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);

	memset(a, 0, sizeof(*a));
	a->mode = mode & 07777;
	a->uid = fc->uid;
	a->gid = fc->gid;
	now(&a->ctime);
	a->atime = a->mtime = a->ctime;
	snprintf(a->type, sizeof(a->type), "empty");
}

static void dsfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *dir = node_get(&ctx->nodes, parent);
	struct fuse_entry_param e;
	struct dsfs_attr a;
	struct found f;
	struct loc l = {0};
	int rc;

	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = new_name_loc(ctx, dir, name, &l);
	if (rc == 0) {
		new_attr(req, mode, &a);
		snprintf(a.type, sizeof(a.type), "object");
		rc = ovl_mkdir(&ctx->stack, &l, &a, &f);
	}
	if (rc == 0) {
		notify_alias(ctx, &l, true);
		rc = make_entry(ctx, dir, name, &f, &e);
	}
	if (rc && rc != -EEXIST)
		log_fail(&l, l.key[0] ? NULL : name, "mkdir", rc, NULL);
	node_put(&ctx->nodes, dir);
	if (rc)
		fuse_reply_err(req, -rc);
	else if (fuse_reply_entry(req, &e) != 0)
		node_forget(&ctx->nodes, e.ino, 1);
}

static void dsfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *dir = node_get(&ctx->nodes, parent);
	struct fuse_entry_param e;
	struct handle *h = NULL;
	struct dsfs_attr a;
	uint64_t used, budget = UINT64_MAX;
	struct found f;
	struct loc l = {0};
	int rc;

	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = new_name_loc(ctx, dir, name, &l);
	if (rc == 0 && l.tree == TREE_DEVICES && dir->is_tree_root)
		rc = -EPERM; /* devices/ holds only device directories */
	if (rc == 0) {
		new_attr(req, mode, &a);
		rc = ovl_create(&ctx->stack, &l, &a, &f);
	}
	if (rc == 0) {
		ovl_usage(&ctx->stack, f.layer, &used, &budget);
		rc = handle_new(content_of(&l), NULL, 0,
				(fi->flags & O_ACCMODE) != O_RDONLY, false,
				budget, &h);
	}
	if (rc == 0) {
		notify_alias(ctx, &l, true);
		rc = make_entry(ctx, dir, name, &f, &e);
	}
	if (rc) {
		handle_free(h);
		if (rc != -EEXIST)
			log_fail(&l, l.key[0] ? NULL : name, "create", rc,
				 NULL);
		fuse_reply_err(req, -rc);
		node_put(&ctx->nodes, dir);
		return;
	}
	h->node = node_get(&ctx->nodes, e.ino);
	h->attr = f.attr;
	h->from_empty = true;
	if (h->writable)
		node_writers(&ctx->nodes, h->node, 1);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1; /* as for every writer: see dsfs_open() */
	node_put(&ctx->nodes, dir);
	if (fuse_reply_create(req, &e, fi) != 0) {
		node_forget(&ctx->nodes, e.ino, 1);
		drop_handle(ctx, h);
	}
}

/* Refuse to make parent/name, logging the path and why. */
static void refuse(fuse_req_t req, fuse_ino_t parent, const char *name,
		   const char *what, const char *why)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *dir = node_get(&ctx->nodes, parent);
	struct loc l = {0};

	if (dir && dir->view != VIEW_ROOT &&
	    node_child_loc(&ctx->nodes, dir, name, &l) == 0)
		log_fail(&l, NULL, what, -EPERM, why);
	else
		log_err("%s: %s: %s", name, what, why);
	node_put(&ctx->nodes, dir);
	fuse_reply_err(req, EPERM);
}

static void dsfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, dev_t rdev)
{
	(void)mode;
	(void)rdev;
	/* Regular files come through create(); nothing else is stored. */
	refuse(req, parent, name, "mknod",
	       "device nodes, FIFOs and sockets are not stored (EPERM)");
}

static void dsfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			 const char *name)
{
	(void)link;
	refuse(req, parent, name, "symlink",
	       "symbolic links are not stored (EPERM)");
}

static void dsfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		      const char *newname)
{
	(void)ino;
	refuse(req, newparent, newname, "link",
	       "hard links are not stored (EPERM)");
}

static void remove_name(fuse_req_t req, fuse_ino_t parent, const char *name,
			bool dir_op)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *dir = node_get(&ctx->nodes, parent);
	struct loc l = {0};
	struct found f;
	int rc;

	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = new_name_loc(ctx, dir, name, &l);
	if (rc == 0 && ovl_lookup(&ctx->stack, &l, &f) != 0)
		memset(&f, 0, sizeof(f));
	if (rc == 0)
		rc = dir_op ? ovl_rmdir(&ctx->stack, &l) :
			      ovl_unlink(&ctx->stack, &l);
	if (rc == 0) {
		/* kept for fstat() of what is still open on it, a removed
		 * directory too (the kernel asks before reading it) */
		node_detach(&ctx->nodes, dir, name,
			    f.attr.kind == DSFS_FILE ||
					    f.attr.kind == DSFS_DIR ?
				    &f.attr :
				    NULL);
		notify_alias(ctx, &l, true);
	} else if (rc != -ENOENT) {
		log_fail(&l, l.key[0] ? NULL : name,
			 dir_op ? "rmdir" : "unlink", rc, NULL);
	}
	node_put(&ctx->nodes, dir);
	fuse_reply_err(req, -rc);
}

static void dsfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, false);
}

static void dsfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, true);
}

static void dsfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned int flags)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *from = node_get(&ctx->nodes, parent);
	struct node *to = node_get(&ctx->nodes, newparent);
	struct loc lf = {0}, lt = {0};
	struct found replaced;
	int rc;

	if (!from || !to) {
		rc = -ESTALE;
		goto out;
	}
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		rc = -EINVAL; /* RENAME_EXCHANGE, RENAME_WHITEOUT */
		goto out;
	}
	rc = new_name_loc(ctx, from, name, &lf);
	if (rc == 0)
		rc = new_name_loc(ctx, to, newname, &lt);
	if (rc == 0 && lf.tree != lt.tree)
		rc = -EXDEV;
	if (rc == 0 && ovl_lookup(&ctx->stack, &lt, &replaced) != 0)
		memset(&replaced, 0, sizeof(replaced));
	if (rc == 0)
		rc = ovl_rename(
			&ctx->stack, &lf, &lt,
			(flags & RENAME_NOREPLACE) ? DSFS_RENAME_NOREPLACE : 0);
	if (rc == 0) {
		node_move(&ctx->nodes, from, name, to, newname,
			  replaced.attr.kind == DSFS_FILE ? &replaced.attr :
							    NULL);
		notify_alias(ctx, &lf, true);
		notify_alias(ctx, &lt, true);
	} else if (rc != -ENOENT) {
		log_fail(&lf, lf.key[0] ? NULL : name, "rename", rc,
			 rc == -EXDEV ? "across trees or layers (EXDEV)" :
					NULL);
	}
out:
	node_put(&ctx->nodes, from);
	node_put(&ctx->nodes, to);
	fuse_reply_err(req, -rc);
}

/* A reader of an image streams it from the layer that has it. */
static int open_image(struct dsfs_ctx *ctx, const struct loc *l,
		      struct found *f, struct handle **h)
{
	struct dsfs_layer *held;
	int rc;

	rc = ovl_open_image(&ctx->stack, l, f, &held);
	if (rc)
		return rc;
	if (!held) /* an empty entry: nothing to stream */
		return handle_new(DSFS_CONTENT_IMAGE, NULL, 0, false, false, 0,
				  h);
	rc = handle_new_stream(held, f->attr.token, h);
	if (rc)
		ovl_release_image(&ctx->stack, held, f->attr.token);
	return rc;
}

static int open_token(struct dsfs_ctx *ctx, struct node *n, struct handle **h)
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

static void dsfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *n = node_get(&ctx->nodes, ino);
	bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	bool trunc = writable && (fi->flags & O_TRUNC);
	bool walked;
	uint64_t used, budget = UINT64_MAX;
	struct handle *h = NULL;
	char *data = NULL;
	size_t len = 0;
	struct found f;
	struct loc l;
	int rc;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (is_fixed(n)) {
		rc = -EISDIR;
		goto out;
	}
	if (n->special == NODE_BY_TOKEN) {
		rc = writable ? -EROFS : open_token(ctx, n, &h);
		if (rc)
			goto out;
		fi->keep_cache = 1; /* a token's bytes never change */
		goto opened;
	}
	rc = node_loc(&ctx->nodes, n, &l);
	/* An open whose path walk raced with a rename over this name opens
	 * what the name holds now, as a walk made after the rename would: a
	 * reader reads it, a writer's commits go to that name.  (The kernel
	 * retries an ESTALE open only once, and a storm of renames over a
	 * name can make that one fail too.) */
	walked = false;
	if (rc == -ESTALE) {
		rc = node_former_loc(&ctx->nodes, n, &l);
		walked = rc == 0 && writable;
	}
	if (rc)
		goto out;
	if (writable && l.view == VIEW_LAYER && l.layer == L_FACTORY) {
		rc = -EROFS;
		log_fail(&l, NULL, "open for writing", rc, NULL);
		goto out;
	}
	if (!writable && l.tree == TREE_IMAGES) {
		rc = open_image(ctx, &l, &f, &h);
		if (rc)
			goto out;
		goto opened_found;
	}
	if (trunc)
		rc = ovl_lookup(&ctx->stack, &l, &f);
	else
		rc = ovl_read_all(&ctx->stack, &l, &f, &data, &len);
	if (rc)
		goto out;
	if (f.attr.kind == DSFS_DIR) {
		free(data);
		rc = -EISDIR;
		goto out;
	}
	if (writable)
		ovl_usage(&ctx->stack,
			  f.layer == L_FACTORY ? L_RUNTIME : f.layer, &used,
			  &budget);
	rc = handle_new(content_of(&l), data, len, writable, trunc, budget, &h);
	if (rc)
		goto out;
opened_found:
	h->attr = f.attr;
	h->from_empty = trunc;
	if (walked) {
		h->walked = malloc(sizeof(*h->walked));
		if (!h->walked) {
			handle_free(h);
			rc = -ENOMEM;
			goto out;
		}
		*h->walked = l;
	}
	if (writable || l.view != VIEW_LAYER || l.layer != L_FACTORY) {
		/* Every open works on its own copy, but the kernel keeps one
		 * page cache and one size per inode: a writer's O_TRUNC and
		 * writes would show through to readers of the same inode
		 * before the commit, and a reader of the old value would
		 * fill the cache that a reader of the new one reads.  So
		 * opens of what can change go straight to their handles. */
		fi->direct_io = 1;
		if (writable)
			node_writers(&ctx->nodes, n, 1);
	} else {
		/* factory/ never changes under an open (an install swaps the
		 * layer and invalidates): its values are read through the
		 * page cache, kept while unchanged since the last open. */
		switch (node_cache_open(&ctx->nodes, n, f.attr.version,
					f.layer)) {
		case NODE_CACHE_KEEP:
			fi->keep_cache = 1;
			h->cache_reader = true;
			break;
		case NODE_CACHE_FRESH:
			h->cache_reader = true;
			break;
		default:
			fi->direct_io = 1;
			break;
		}
	}
opened:
	h->node = n;
	n = NULL; /* the handle keeps the reference */
	fi->fh = (uintptr_t)h;
	/* A reader has nothing to flush; tell the kernel not to ask. */
	fi->noflush = !writable;
	if (fuse_reply_open(req, fi) != 0)
		drop_handle(ctx, h);
	return;
out:
	node_put(&ctx->nodes, n);
	fuse_reply_err(req, -rc);
}

static void dsfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	char *buf = malloc(size ? size : 1);
	ssize_t got;

	(void)ino;
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&h->lock);
	got = handle_read(h, (uint64_t)off, buf, size);
	pthread_mutex_unlock(&h->lock);
	if (got < 0)
		fuse_reply_err(req, (int)-got);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static void dsfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	const char *why = NULL;
	ssize_t rc;
	struct loc l;

	(void)ino;
	pthread_mutex_lock(&h->lock);
	rc = handle_write(h, (uint64_t)off, buf, size, &why);
	pthread_mutex_unlock(&h->lock);
	if (rc < 0) {
		if (node_loc(&ctx->nodes, h->node, &l) == 0)
			log_fail(&l, NULL, "write refused", (int)rc, why);
		fuse_reply_err(req, (int)-rc);
		return;
	}
	fuse_reply_write(req, (size_t)rc);
}

static void dsfs_flush(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc;

	pthread_mutex_lock(&h->lock);
	rc = commit_handle(ctx, h, false);
	pthread_mutex_unlock(&h->lock);
	/* The kernel sized the file from the refused writes: make it ask
	 * again, so the old value reads back whole. */
	if (rc)
		fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
	fuse_reply_err(req, -rc);
}

static void dsfs_release(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;

	(void)ino;
	pthread_mutex_lock(&h->lock);
	/* A truncation with nothing written, and writes after the last flush
	 * (through a memory map), are committed here.  A refusal already
	 * reported by flush is not repeated. */
	if (!h->poisoned && !h->check_failed)
		commit_handle(ctx, h, true);
	pthread_mutex_unlock(&h->lock);
	drop_handle(ctx, h);
	fuse_reply_err(req, 0);
}

static void dsfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		       struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	int rc;

	(void)ino;
	(void)datasync;
	pthread_mutex_lock(&h->lock);
	rc = commit_handle(ctx, h, false);
	pthread_mutex_unlock(&h->lock);
	if (rc == 0)
		rc = ovl_sync(&ctx->stack);
	fuse_reply_err(req, -rc);
}

/* An open directory: the listing it reads (dirlist.h), the directory's
 * current one at each readdir, entered by offset, so that a change between
 * two readdirs neither repeats nor skips a name that stayed.  With the
 * kernel's readdir cache the first readdir may never come. */
struct dir_handle {
	pthread_mutex_t lock;
	struct dir_cursor cur;
};

static int fixed_listing(struct dsfs_ctx *ctx, struct node *n,
			 struct listing *ls)
{
	static const char *const root[] = {"kv",	"images",  "devices",
					   "ephemeral", "runtime", "factory"};
	static const char *const trees[] = {"kv", "images", "devices"};
	struct found f = {.attr.kind = DSFS_DIR};
	size_t i;
	int rc = 0;

	(void)ctx;
	if (n->ino == ROOT_INO) {
		for (i = 0; i < sizeof(root) / sizeof(root[0]); i++)
			listing_add(ls, root[i], &f, &rc);
	} else {
		for (i = 0; i < sizeof(trees) / sizeof(trees[0]); i++)
			listing_add(ls, trees[i], &f, &rc);
	}
	return rc;
}

static int load_listing(void *arg, struct node *n, struct listing *ls)
{
	struct dsfs_ctx *ctx = arg;
	struct found f;
	struct loc l;
	int rc;

	if (n->view == VIEW_ROOT)
		return fixed_listing(ctx, n, ls);
	/* Tokens are not listed: a listing would grow with the store, and
	 * a token is found from an image's user.dsfs.token. */
	if (n->special == NODE_BY_TOKEN_DIR)
		return 0;
	rc = node_loc(&ctx->nodes, n, &l);
	if (rc == -ESTALE)
		return 0; /* removed while open: it lists nothing */
	if (rc)
		return rc;
	if (!n->is_tree_root) {
		rc = ovl_lookup(&ctx->stack, &l, &f);
		if (rc == -ENOENT)
			return 0;
		if (rc)
			return rc;
		if (f.attr.kind != DSFS_DIR)
			return -ENOTDIR;
		l.limit = f.limit;
	}
	return ovl_list(&ctx->stack, &l,
			n->tree == TREE_DEVICES && n->is_tree_root, ls);
}

/* The fixed directories and .by-token list the same names forever. */
static bool listing_changed(void *arg, struct node *n, uint64_t since)
{
	struct dsfs_ctx *ctx = arg;
	struct loc l;

	if (n->view == VIEW_ROOT || n->special == NODE_BY_TOKEN_DIR)
		return false;
	if (node_loc(&ctx->nodes, n, &l) != 0)
		return true;
	return ovl_changed_since(&ctx->stack, l.key, since);
}

static void dsfs_opendir(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *n = node_get(&ctx->nodes, ino);
	struct dir_handle *d;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		node_put(&ctx->nodes, n);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&d->lock, NULL);
	/* The kernel may cache the listings of the trees whose entries it
	 * caches: every change to them either comes through the kernel (which
	 * then drops the cached listing) or is followed by an invalidation of
	 * the directory (notify_alias(), dsfs_invalidate_all()), and handles
	 * agree on offsets (dirlist.h).  keep_cache: an opendir alone is no
	 * reason to drop it. */
	if (timeout_of(ctx, n) > 0 && n->view == VIEW_MERGED &&
	    n->special == NODE_PLAIN) {
		fi->cache_readdir = 1;
		fi->keep_cache = 1;
	}
	node_put(&ctx->nodes, n);
	fi->fh = (uintptr_t)d;
	if (fuse_reply_open(req, fi) != 0) {
		pthread_mutex_destroy(&d->lock);
		free(d);
	}
}

/* Serve a listing from offset off; with plus, every name is looked up
 * as it goes (READDIRPLUS), its lookup count taken only if it fits. */
static void serve_dir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi, bool plus)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;
	struct node *dir = node_get(&ctx->nodes, ino);
	struct dirlist_source src = {load_listing, listing_changed, ctx};
	char *buf = malloc(size);
	struct listing *ls = NULL;
	size_t pos = 0, i = 0;
	off_t next;
	int rc = 0;

	if (!dir || !buf) {
		rc = dir ? -ENOMEM : -ESTALE;
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	rc = dirlist_get(&ctx->dirs, dir, &d->cur, &src);
	if (rc == 0) {
		ls = &d->cur.snap->ls;
		i = dirlist_index(d->cur.snap, off);
	}
	for (; rc == 0 && i < ls->count + 2; i++) {
		struct fuse_entry_param e;
		struct node *n = NULL;
		const char *name;
		size_t need;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_mode = S_IFDIR;
		} else {
			const struct dirent_item *it = &ls->items[i - 2];

			name = it->name;
			e.attr.st_mode = it->found.attr.kind == DSFS_DIR ?
						 S_IFDIR :
						 S_IFREG;
			if (plus) {
				n = dir->view == VIEW_ROOT ?
					    node_get_child(&ctx->nodes, dir,
							   name) :
					    node_link(&ctx->nodes, dir, name,
						      it->found.attr.kind ==
							      DSFS_DIR,
						      it->found.limit);
				if (!n) {
					rc = -ENOMEM;
					break;
				}
				e.ino = n->ino;
				if (is_fixed(n))
					fixed_stat(ctx, n, &e.attr);
				else
					attr_stat(n->ino, &it->found.attr,
						  &e.attr);
				e.attr_timeout = e.entry_timeout =
					timeout_of(ctx, n);
			}
		}
		/* The kernel takes inode numbers from lookups; this one only
		 * needs to be non-zero for tools that skip zero. */
		if (!e.attr.st_ino)
			e.attr.st_ino = (ino_t)(i + 1);
		next = dirlist_off(d->cur.snap, i);
		if (plus)
			need = fuse_add_direntry_plus(
				req, buf + pos, size - pos, name, &e, next);
		else
			need = fuse_add_direntry(req, buf + pos, size - pos,
						 name, &e.attr, next);
		if (need > size - pos) {
			if (n)
				node_forget(&ctx->nodes, n->ino, 1);
			break;
		}
		pos += need;
	}
	pthread_mutex_unlock(&d->lock);
out:
	if (rc) {
		struct loc l;

		if (dir && node_loc(&ctx->nodes, dir, &l) == 0)
			log_fail(&l, NULL, "readdir", rc, NULL);
		else
			log_err("readdir of inode %lu: %s", (unsigned long)ino,
				strerror(-rc));
	}
	node_put(&ctx->nodes, dir);
	if (rc && pos == 0)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void dsfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	serve_dir(req, ino, size, off, fi, false);
}

static void dsfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			     off_t off, struct fuse_file_info *fi)
{
	serve_dir(req, ino, size, off, fi, true);
}

static void dsfs_releasedir(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct dir_handle *d = (struct dir_handle *)(uintptr_t)fi->fh;

	(void)ino;
	dirlist_release(&ctx_of(req)->dirs, &d->cur);
	pthread_mutex_destroy(&d->lock);
	free(d);
	fuse_reply_err(req, 0);
}

static void dsfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			  struct fuse_file_info *fi)
{
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -ovl_sync(&ctx_of(req)->stack));
}

static void dsfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *n = node_get(&ctx->nodes, ino);
	uint64_t used = 0, budget = 0;
	struct statvfs sv;
	int layer = L_RUNTIME, rc;

	if (n && n->ino != ROOT_INO && n->view != VIEW_MERGED)
		layer = n->layer;
	node_put(&ctx->nodes, n);
	rc = ovl_usage(&ctx->stack, layer, &used, &budget);
	if (rc) {
		fuse_reply_err(req, -rc);
		return;
	}
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = sv.f_frsize = 4096;
	sv.f_blocks = budget / 4096;
	sv.f_bfree = sv.f_bavail = used >= budget ? 0 : (budget - used) / 4096;
	/* Entries are limited by bytes, not by a count: every name costs
	 * its length, so report what fits if names were one byte. */
	sv.f_files = budget;
	sv.f_ffree = sv.f_favail = used >= budget ? 0 : budget - used;
	sv.f_namemax = 255;
	fuse_reply_statfs(req, &sv);
}

static int token_xattr(struct dsfs_ctx *ctx, struct node *n, const char *name,
		       char *buf, size_t size)
{
	unsigned char head[32];
	struct dsfs_layer *held;
	const char *type = NULL;
	struct stat st;
	uint64_t bytes;
	ssize_t got;
	int layer, rc;

	rc = token_stat(ctx, n, &st, &layer);
	if (rc)
		return rc;
	if (strcmp(name, XATTR_LAYER) == 0) {
		snprintf(buf, size, "%s", layer_names[layer]);
	} else if (strcmp(name, XATTR_TOKEN) == 0) {
		snprintf(buf, size, "%s", n->name);
	} else if (strcmp(name, XATTR_TYPE) == 0) {
		rc = ovl_open_blob(&ctx->stack, n->name, &bytes, &held);
		if (rc)
			return rc;
		got = layer_read_blob(held, n->name, 0, head, sizeof(head));
		ovl_release_image(&ctx->stack, held, n->name);
		if (got > 0)
			type = image_type(head, (size_t)got);
		snprintf(buf, size, "%s", type ? type : "empty");
	} else {
		return -ENODATA;
	}
	return 0;
}

/* The read-only user.dsfs.* attributes of a node: fills buf with the
 * value of `name`; -ENODATA if the node has no such attribute. */
static int xattr_value(struct dsfs_ctx *ctx, struct node *n, const char *name,
		       char *buf, size_t size)
{
	struct found f;
	struct loc l;
	int rc;

	if (is_fixed(n))
		return -ENODATA;
	if (n->special == NODE_BY_TOKEN)
		return token_xattr(ctx, n, name, buf, size);
	rc = node_found(ctx, n, &l, &f);
	if (rc)
		return rc;
	if (strcmp(name, XATTR_LAYER) == 0)
		snprintf(buf, size, "%s", layer_names[f.layer]);
	else if (strcmp(name, XATTR_TYPE) == 0)
		snprintf(buf, size, "%s",
			 f.attr.kind == DSFS_DIR ? "object" : f.attr.type);
	else if (strcmp(name, XATTR_VERSION) == 0)
		snprintf(buf, size, "%llu", (unsigned long long)f.attr.version);
	else if (strcmp(name, XATTR_TOKEN) == 0 && f.attr.token[0])
		snprintf(buf, size, "%s", f.attr.token);
	else
		return -ENODATA;
	return 0;
}

static void reply_xattr_buf(fuse_req_t req, const char *buf, size_t len,
			    size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, len);
	else if (len > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}

static void dsfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *n = node_get(&ctx->nodes, ino);
	char buf[128];
	int rc;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = xattr_value(ctx, n, name, buf, sizeof(buf));
	node_put(&ctx->nodes, n);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_xattr_buf(req, buf, strlen(buf), size);
}

static void dsfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char *const names[] = {XATTR_LAYER, XATTR_TYPE,
					    XATTR_VERSION, XATTR_TOKEN};
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *n = node_get(&ctx->nodes, ino);
	char list[128], value[128];
	size_t i, len = 0;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (xattr_value(ctx, n, names[i], value, sizeof(value)) != 0)
			continue;
		memcpy(list + len, names[i], strlen(names[i]) + 1);
		len += strlen(names[i]) + 1;
	}
	node_put(&ctx->nodes, n);
	reply_xattr_buf(req, list, len, size);
}

static void dsfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  const char *value, size_t size, int flags)
{
	(void)ino;
	(void)value;
	(void)size;
	(void)flags;
	(void)name;
	/* user.dsfs.* describe the entry and cannot be set, and no other
	 * attribute is stored.  ENOTSUP (not EPERM) lets cp -a, mv and
	 * rsync -X carry on quietly, as on any filesystem without xattrs. */
	fuse_reply_err(req, ENOTSUP);
}

static void dsfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, ENOTSUP);
}

const struct fuse_lowlevel_ops dsfs_ll_ops = {
	.init = dsfs_init,
	.lookup = dsfs_lookup,
	.forget = dsfs_forget,
	.forget_multi = dsfs_forget_multi,
	.getattr = dsfs_getattr,
	.setattr = dsfs_setattr,
	.mknod = dsfs_mknod,
	.mkdir = dsfs_mkdir,
	.unlink = dsfs_unlink,
	.rmdir = dsfs_rmdir,
	.symlink = dsfs_symlink,
	.link = dsfs_link,
	.rename = dsfs_rename,
	.create = dsfs_create,
	.open = dsfs_open,
	.read = dsfs_read,
	.write = dsfs_write,
	.flush = dsfs_flush,
	.release = dsfs_release,
	.fsync = dsfs_fsync,
	.opendir = dsfs_opendir,
	.readdir = dsfs_readdir,
	.readdirplus = dsfs_readdirplus,
	.releasedir = dsfs_releasedir,
	.fsyncdir = dsfs_fsyncdir,
	.statfs = dsfs_statfs,
	.setxattr = dsfs_setxattr,
	.getxattr = dsfs_getxattr,
	.listxattr = dsfs_listxattr,
	.removexattr = dsfs_removexattr,
};

static void inval_one(void *arg, uint64_t ino, uint64_t parent,
		      const char *name)
{
	struct dsfs_ctx *ctx = arg;

	fuse_lowlevel_notify_inval_entry(ctx->se, parent, name, strlen(name));
	fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
}

void dsfs_invalidate_all(struct dsfs_ctx *ctx)
{
	uint64_t ino;

	nodes_forget_cache(&ctx->nodes);
	nodes_each(&ctx->nodes, inval_one, ctx);
	/* The fixed directories' listings (kv/, images/, ...) change too. */
	for (ino = ROOT_INO; ino <= FIXED_NODES; ino++)
		fuse_lowlevel_notify_inval_inode(ctx->se, ino, 0, 0);
}
