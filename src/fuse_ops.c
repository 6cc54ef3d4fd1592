/*
 * fuse_ops.c - the FUSE low-level operations: decode a request, call the
 * node table, the overlay or an open handle, send exactly one reply.
 *
 * Helpers return 0 or a negative errno; each handler chooses the reply, and
 * the sign flips once, at fuse_reply_err(req, -rc).  Every lookup count a
 * reply sends was counted by node_link(); a count taken for a reply that
 * then fails is given back with node_forget().  What a request does beyond
 * that lives in the daemon's other files: open files and their commits in
 * file.c (the copy itself in handle.c), images/.by-token and the
 * user.dsfs.* attributes in by_token.c, what a node's stat says in attrs.c,
 * what a directory lists in dirsource.c (shared by dirlist.c), and every
 * invalidation of the kernel's caches in notify.c: a change made through a
 * tree other than the merged one that shows the same entry (a layer's own
 * tree, devices/) is followed, before the reply, by an invalidation of the
 * merged node.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "dirlist.h"
#include "handle.h"
#include "log.h"
#include "pagecache.h"
#include "validate.h"

static struct dsfs_ctx *ctx_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

/* Reply to a lookup, mkdir or create with the node for parent/name. */
static int make_entry(struct dsfs_ctx *ctx, struct node *parent,
		      const char *name, const struct found *f,
		      struct fuse_entry_param *e)
{
	struct node *n;
	int rc = pagecache_link(ctx, parent, name, f, &n);

	if (rc)
		return rc;
	memset(e, 0, sizeof(*e));
	e->ino = n->ino;
	entry_stat(ctx, n, f, &e->attr);
	e->entry_timeout = timeout_of(ctx, n);
	e->attr_timeout = attr_timeout_of(ctx, n);
	return 0;
}

static void now(struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
}

static void dsfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct dsfs_ctx *ctx = userdata;

	/* O_TRUNC arrives with open(), so a truncating writer works on its
	 * own empty copy instead of emptying the stored value at once. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	/* The kernel must not drop an inode's pages when it learns of a new
	 * mtime: pagecache.c drops them itself where they may hold another
	 * version, and keeps those an image's commit pushed before its
	 * attributes changed. */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	/* The kernel works out which set-id bits a chown or a truncation
	 * clears and sends them as a mode change (setattr.c, setid.c). */
	conn->want &= ~(unsigned)FUSE_CAP_HANDLE_KILLPRIV;
	/* flock() is served by flock.c, by entry (and across the hosts of
	 * a shared runtime), since an entry's inode changes (pagecache.c). */
	if (!ctx->flocks)
		conn->want &= ~(unsigned)FUSE_CAP_FLOCK_LOCKS;
	conn->want &= ~(unsigned)FUSE_CAP_POSIX_LOCKS;
	/* The kernel's own protocol version, not the one libfuse speaks:
	 * notify_prune() is written to the device by dsfs itself. */
	__atomic_store_n(&ctx->can_prune,
			 conn->proto_major == 7 ? conn->proto_minor >= 45 :
						  conn->proto_major > 7,
			 __ATOMIC_RELAXED);
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

static void dsfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	uint64_t since = elsewhere_now(ctx);
	struct fuse_entry_param e;
	struct node *dir, *n;
	struct found f;
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
			e.attr_timeout = attr_timeout_of(ctx, n);
			e.entry_timeout = FIXED_TIMEOUT;
			rc = 0;
		}
		goto out;
	}
	if (is_by_token_name(dir, name) || dir->special == NODE_BY_TOKEN_DIR) {
		rc = lookup_by_token(ctx, dir, name, &e);
		goto out;
	}
	rc = lookup_child(ctx, dir, name, &f);
	if (rc == 0)
		rc = make_entry(ctx, dir, name, &f, &e);
	if (rc == 0 && e.attr_timeout > 0 && elsewhere_now(ctx) != since)
		e.entry_timeout = e.attr_timeout = 0; /* fresh_timeout() */
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

static void dsfs_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct handle *h = fi ? (struct handle *)(uintptr_t)fi->fh : NULL;
	uint64_t since = elsewhere_now(ctx);
	struct node *n = node_get(&ctx->nodes, ino);
	struct stat st;
	bool own;
	int rc;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = pagecache_stat(ctx, n, h, &st);
	if (rc == -ESTALE) {
		/* fstat of an open file whose name is gone */
		struct dsfs_attr gone;

		rc = node_gone(&ctx->nodes, n, &gone);
		if (rc == 0) {
			attr_stat(n->ino, &gone, &st);
			st.st_nlink = 0;
		}
	}
	/* An open writer sees the size of its own copy.  (The kernel sends
	 * a handle with the getattr of an open regular file only.) */
	own = rc == 0 && h && !is_fixed(n) && !n->is_dir &&
	      file_own_size(h, &st.st_size);
	if (rc == 0 && !own)
		node_attrs_sent(&ctx->nodes, n);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		fuse_reply_attr(req, &st, fresh_timeout(ctx, n, since));
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

/* Make dir/name: a directory, or with fi a file and the handle of its open
 * (*h, NULL until made).  The reply's entry, its lookup counted, in *e. */
static int make_name(fuse_req_t req, struct node *dir, const char *name,
		     mode_t mode, struct fuse_file_info *fi,
		     struct fuse_entry_param *e, struct handle **h)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct dsfs_attr a;
	struct found f;
	struct loc l = {0};
	int rc;

	rc = new_name_loc(ctx, dir, name, &l);
	if (rc == 0 && fi && l.tree == TREE_DEVICES && dir->is_tree_root)
		rc = -EPERM; /* devices/ holds only device directories */
	if (rc == 0) {
		new_attr(req, mode, &a);
		/* The layer that makes it reads the directory's
		 * set-group-ID bit in the same change.  The fixed
		 * directories have none. */
		a.inherit_group = !is_fixed(dir);
		if (fi) {
			rc = file_create(ctx, &l, &a, fi->flags, &f, h);
		} else {
			snprintf(a.type, sizeof(a.type), "object");
			rc = ovl_mkdir(&ctx->stack, &l, &a, &f);
		}
	}
	if (rc == 0) {
		notify_alias(ctx, &l, true);
		rc = make_entry(ctx, dir, name, &f, e);
	}
	if (rc && rc != -EEXIST)
		log_fail(&l, l.key[0] ? NULL : name, fi ? "create" : "mkdir",
			 rc, NULL);
	return rc;
}

static void dsfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *dir = node_get(&ctx->nodes, parent);
	struct fuse_entry_param e;
	int rc;

	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = make_name(req, dir, name, mode, NULL, &e, NULL);
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
	int rc;

	if (!dir) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = make_name(req, dir, name, mode, fi, &e, &h);
	node_put(&ctx->nodes, dir);
	if (rc == -EEXIST && !(fi->flags & O_EXCL))
		/* Made since the kernel looked it up (by another host, or
		 * through the other name of a device's entry): open(2)
		 * without O_EXCL opens it.  ESTALE makes the kernel walk the
		 * path again, looking the name up afresh (LOOKUP_REVAL), and
		 * open what it finds with its own permission checks. */
		rc = -ESTALE;
	if (rc) {
		handle_free(h);
		fuse_reply_err(req, -rc);
		return;
	}
	file_created(ctx, h, e.ino);
	fi->fh = (uintptr_t)h;
	fi->direct_io = 1; /* as for every writer: see file_open() */
	if (fuse_reply_create(req, &e, fi) != 0) {
		node_forget(&ctx->nodes, e.ino, 1);
		file_drop(ctx, h);
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
	if (rc == 0)
		rc = dir_op ? ovl_rmdir(&ctx->stack, &l, &f) :
			      ovl_unlink(&ctx->stack, &l, &f);
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
		rc = scratch_rename(
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

static void dsfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *n = node_get(&ctx->nodes, ino);
	struct open_reply r;
	struct handle *h;
	struct seen seen;
	int rc;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	rc = setid_open(ctx, req, n, fi->flags, &seen);
	if (rc == 0)
		rc = file_open(ctx, n, fi->flags, &seen, &h, &r);
	if (rc) {
		node_put(&ctx->nodes, n);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)h;
	fi->direct_io = r.direct_io;
	fi->keep_cache = r.keep_cache;
	fi->noflush = r.noflush;
	if (fuse_reply_open(req, fi) != 0)
		file_drop(ctx, h);
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
	got = file_read(h, (uint64_t)off, buf, size);
	if (got < 0)
		fuse_reply_err(req, (int)-got);
	else
		fuse_reply_buf(req, buf, (size_t)got);
	free(buf);
}

static void dsfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	struct handle *h = (struct handle *)(uintptr_t)fi->fh;
	struct dsfs_ctx *ctx = ctx_of(req);
	bool hash_after = false;
	ssize_t rc;

	(void)ino;
	rc = setid_write(ctx, req, h);
	if (rc == 0)
		rc = file_write(ctx, h, (uint64_t)off, buf, size, &hash_after);
	if (rc < 0)
		fuse_reply_err(req, (int)-rc);
	else
		fuse_reply_write(req, (size_t)rc);
	/* The writer is on its way to its next write meanwhile. */
	if (hash_after)
		file_hash(ctx, h);
}

static void dsfs_flush(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	int rc;

	rc = file_flush(ctx, (struct handle *)(uintptr_t)fi->fh);
	/* The kernel sized the file from the refused writes: make it ask
	 * again, so the old value reads back whole. */
	if (rc)
		notify_inode(ctx, ino);
	fuse_reply_err(req, -rc);
}

static void dsfs_release(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	(void)ino;
	if (fi->flock_release)
		flock_release(ctx_of(req), fi->lock_owner);
	file_release(ctx_of(req), (struct handle *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

static void dsfs_flock(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi, int op)
{
	flock_request(ctx_of(req), req, ino, fi->lock_owner, op);
}

static void dsfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		       struct fuse_file_info *fi)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	int rc;

	(void)ino;
	(void)datasync;
	rc = file_flush(ctx, (struct handle *)(uintptr_t)fi->fh);
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
	struct dir_handle *prev, *next; /* in ctx->open_dirs */
};

static void dir_link(struct dsfs_ctx *ctx, struct dir_handle *d)
{
	pthread_mutex_lock(&ctx->open_dirs_lock);
	d->next = ctx->open_dirs;
	if (d->next)
		d->next->prev = d;
	ctx->open_dirs = d;
	pthread_mutex_unlock(&ctx->open_dirs_lock);
}

static void dir_free(struct dsfs_ctx *ctx, struct dir_handle *d)
{
	pthread_mutex_lock(&ctx->open_dirs_lock);
	if (d->prev)
		d->prev->next = d->next;
	else
		ctx->open_dirs = d->next;
	if (d->next)
		d->next->prev = d->prev;
	pthread_mutex_unlock(&ctx->open_dirs_lock);
	dirlist_release(&ctx->dirs, &d->cur);
	pthread_mutex_destroy(&d->lock);
	free(d);
}

void fuse_ops_free_dirs(struct dsfs_ctx *ctx)
{
	while (ctx->open_dirs)
		dir_free(ctx, ctx->open_dirs);
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
	dir_link(ctx, d);
	if (fuse_reply_open(req, fi) != 0)
		dir_free(ctx, d);
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
	size_t count = 0, pos = 0, i = 0;
	off_t next;
	int rc = 0;

	if (!dir || !buf) {
		rc = dir ? -ENOMEM : -ESTALE;
		goto out;
	}
	pthread_mutex_lock(&d->lock);
	rc = dirlist_get(&ctx->dirs, dir, &d->cur, &src);
	if (rc == 0) {
		count = d->cur.snap->count;
		i = dirlist_index(d->cur.snap, off);
	}
	for (; rc == 0 && i < count + 2; i++) {
		struct fuse_entry_param e;
		struct node *n = NULL;
		const char *name;
		size_t need;

		memset(&e, 0, sizeof(e));
		if (i < 2) {
			name = i == 0 ? "." : "..";
			e.attr.st_mode = S_IFDIR;
		} else {
			name = dirlist_name(d->cur.snap, i);
			if (plus)
				rc = listing_entry(ctx, dir, name, &e, &n);
			if (rc)
				break;
			/* Its kind as listed, unless looked up just now. */
			if (!n)
				e.attr.st_mode = dirlist_kind(d->cur.snap, i) ==
								 DSFS_DIR ?
							 S_IFDIR :
							 S_IFREG;
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
	dir_free(ctx_of(req), d);
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

/* The value of the attribute `name`, or with name NULL the list of the
 * attributes the node has. */
static void serve_xattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct dsfs_ctx *ctx = ctx_of(req);
	struct node *n = node_get(&ctx->nodes, ino);
	const struct fuse_ctx *who = fuse_req_ctx(req);
	char buf[LAST_ERROR_LEN];
	size_t len = 0;
	int rc = 0;

	if (!n) {
		fuse_reply_err(req, ESTALE);
		return;
	}
	if (name) {
		rc = xattr_value(ctx, n, who, name, buf, sizeof(buf));
		len = rc ? 0 : strlen(buf);
	} else {
		len = xattr_list(ctx, n, who, buf, sizeof(buf));
	}
	node_put(&ctx->nodes, n);
	if (rc)
		fuse_reply_err(req, -rc);
	else
		reply_xattr_buf(req, buf, len, size);
}

static void dsfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size)
{
	serve_xattr(req, ino, name, size);
}

static void dsfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	serve_xattr(req, ino, NULL, size);
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
	.flock = dsfs_flock,
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
