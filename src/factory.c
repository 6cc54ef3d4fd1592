/*
 * factory.c - the work behind dsfsctl: factory images and store commands.
 *
 * A factory image is a store file (layer_sqlite.c) closed into a single
 * self-contained file.  mkfactory builds one from a directory laid out like
 * the mount, going through the same layer operations and the same content
 * rules (validate.h) as writes through the mount, so that an image holds
 * nothing the mount would have refused.  install-factory checks an image
 * entry by entry before it touches the store: it trusts neither the tool
 * that built it nor the file's history.
 *
 * Store commands run offline when dsfsctl can take STORE/lock, the flock
 * the daemon holds while mounted, and otherwise ask the daemon (control.h).
 * Files are replaced by temp file -> fsync -> rename -> fsync of the
 * directory, so a crash leaves either the old file or the new one.
 *
 * SQLite appears here once, for PRAGMA integrity_check, which the layer
 * interface has no reason to offer the daemon.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "control.h"
#include "dsfs.h"
#include "factory.h"
#include "layer.h"
#include "validate.h"

#define CHUNK (64 * 1024)

/* Record the first failure's message (inner functions know the path best)
 * and return rc. */
static int fail(struct ctl_error *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int fail(struct ctl_error *e, int rc, const char *fmt, ...)
{
	va_list ap;

	if (e->text[0] == '\0') {
		va_start(ap, fmt);
		vsnprintf(e->text, sizeof(e->text), fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* Append "/name" (or name, to an empty buf) to the string buf of size cap;
 * *was gets the length to cut back to. */
static int push(char *buf, size_t cap, const char *name, size_t *was)
{
	size_t len = strlen(buf), n = strlen(name);
	size_t sep = len ? 1 : 0;

	*was = len;
	if (len + sep + n + 1 > cap)
		return -ENAMETOOLONG;
	if (sep)
		buf[len] = '/';
	memcpy(buf + len + sep, name, n + 1);
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **v, size_t n)
{
	while (n > 0)
		free(v[--n]);
	free(v);
}

/* The names in the directory dirfd but "." and "..", sorted, so that an
 * image and its first error do not depend on readdir's order.  On failure
 * *out is NULL and *count 0. */
static int read_names(int dirfd, char ***out, size_t *count)
{
	char **v = NULL, **nv;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	*out = NULL;
	*count = 0;
	/* A new open file description: readdir() must not share dirfd's. */
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		rc = -errno;
		close(fd);
		return rc;
	}
	for (errno = 0; (de = readdir(d)); errno = 0) {
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				goto out_nomem;
			v = nv;
		}
		v[n] = strdup(de->d_name);
		if (!v[n])
			goto out_nomem;
		n++;
	}
	if (errno) {
		rc = -errno;
		goto out_names;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*out = v;
	*count = n;
	return 0;

out_nomem:
	rc = -ENOMEM;
out_names:
	free_names(v, n);
	closedir(d);
	return rc;
}

static int fsync_path(const char *path, int flags)
{
	int fd, rc = 0;

	fd = open(path, flags | O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* fsync the directory that holds path. */
static int fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int rc;

	if (!copy)
		return -ENOMEM;
	rc = fsync_path(dirname(copy), O_DIRECTORY);
	free(copy);
	return rc;
}

/* Remove path and the files SQLite keeps beside it: a stale journal left
 * by an earlier, crashed build must not be replayed into the new one. */
static int remove_db(const char *path, struct ctl_error *e)
{
	static const char *const sides[] = {"", "-wal", "-shm", "-journal"};
	char name[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		if (snprintf(name, sizeof(name), "%s%s", path, sides[i]) >=
		    (int)sizeof(name))
			return fail(e, -ENAMETOOLONG, "%s: path too long",
				    path);
		if (unlink(name) != 0 && errno != ENOENT)
			return fail(e, -errno, "%s: cannot remove: %s", name,
				    strerror(errno));
	}
	return 0;
}

/* ---- building an image ---------------------------------------------- */

struct build {
	struct dsfs_layer *l;
	uint64_t budget;
	struct ctl_error *e;
	char key[DSFS_KEY_MAX];		    /* the entry being added */
	char path[PATH_MAX + DSFS_KEY_MAX]; /* its source, for messages */
};

static void attr_from_stat(struct dsfs_attr *a, const struct stat *st,
			   enum dsfs_kind kind)
{
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->mode = st->st_mode & 07777;
	a->uid = st->st_uid;
	a->gid = st->st_gid;
	a->atime = st->st_atim;
	a->mtime = st->st_mtim;
	/* Not the source's ctime, which no one can set: an image built twice
	 * from the same tree holds the same entries. */
	a->ctime = st->st_mtim;
}

/* Enter the child name of the current directory: it is stored as keyname
 * (which differs for devices/ID -> kv/__ID). */
static int enter(struct build *b, const char *keyname, const char *name,
		 size_t *klen, size_t *plen)
{
	int rc;

	/* leave() undoes whatever part of this was done. */
	*klen = strlen(b->key);
	if (push(b->path, sizeof(b->path), name, plen))
		return fail(b->e, -ENAMETOOLONG, "%s/...: path too long",
			    b->path);
	rc = name_check(name);
	if (rc == -ENAMETOOLONG)
		return fail(b->e, rc, "%s: name longer than 255 bytes",
			    b->path);
	if (rc)
		return fail(b->e, rc, "%s: name is not valid UTF-8", b->path);
	if (name_check(keyname) != 0)
		return fail(b->e, -ENAMETOOLONG,
			    "%s: device ID longer than 253 bytes (it is "
			    "stored as kv/__ID)",
			    b->path);
	if (strcmp(b->key, "images") == 0 && strcmp(name, ".by-token") == 0)
		return fail(b->e, -EINVAL,
			    "%s: reserved name (images/.by-token/ shows images "
			    "by their token)",
			    b->path);
	if (push(b->key, sizeof(b->key), keyname, klen))
		return fail(b->e, -ENAMETOOLONG, "%s: key longer than %d bytes",
			    b->path, DSFS_KEY_MAX - 1);
	return 0;
}

static void leave(struct build *b, size_t klen, size_t plen)
{
	b->key[klen] = '\0';
	b->path[plen] = '\0';
}

static int store_fail(struct build *b, int rc)
{
	if (rc == -ENOSPC)
		return fail(b->e, rc,
			    "%s: the image would exceed its budget of %llu "
			    "bytes (mkfactory -s SIZE)",
			    b->path, (unsigned long long)b->budget);
	if (rc == -EEXIST || rc == -EISDIR || rc == -ENOTDIR)
		return fail(b->e, -EEXIST,
			    "%s: same entry (%s) as another source file "
			    "(devices/ID/... is kv/__ID/...)",
			    b->path, b->key);
	return fail(b->e, rc, "%s: cannot store as %s: %s", b->path, b->key,
		    strerror(-rc));
}

static int add_dir(struct build *b, const struct stat *st)
{
	struct dsfs_attr a;
	int rc;

	attr_from_stat(&a, st, DSFS_DIR);
	rc = layer_mkdir(b->l, b->key, &a);
	/* kv/__ID/ and devices/ID/ are one directory: their contents merge,
	 * the first one's attributes stay. */
	if (rc == -EEXIST && layer_lookup(b->l, b->key, &a) == 0 &&
	    a.kind == DSFS_DIR)
		return 0;
	return rc ? store_fail(b, rc) : 0;
}

static int add_file(struct build *b, int dirfd, const char *name,
		    const struct stat *st, enum dsfs_content kind)
{
	const char *type = NULL, *reason = NULL;
	struct dsfs_sha256 h;
	struct dsfs_attr a;
	struct stat fst;
	size_t size = (size_t)st->st_size, got = 0;
	char *data;
	ssize_t n;
	int fd, rc;

	if ((uint64_t)st->st_size > b->budget)
		return fail(b->e, -ENOSPC,
			    "%s: %lld bytes, more than the image's budget of "
			    "%llu bytes (mkfactory -s SIZE)",
			    b->path, (long long)st->st_size,
			    (unsigned long long)b->budget);
	/* O_NONBLOCK: should it have become a FIFO since fstatat(), open
	 * must not wait for a writer; the fstat() below refuses it. */
	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return fail(b->e, -errno, "%s: %s", b->path, strerror(errno));
	if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) ||
	    fst.st_ino != st->st_ino || fst.st_dev != st->st_dev) {
		rc = fail(b->e, -EAGAIN, "%s: changed while being read",
			  b->path);
		goto out_fd;
	}
	data = malloc(size ? size : 1);
	if (!data) {
		rc = fail(b->e, -ENOMEM, "%s: out of memory", b->path);
		goto out_fd;
	}
	while (got < size) {
		n = read(fd, data + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail(b->e, -errno, "%s: %s", b->path,
				  strerror(errno));
			goto out_data;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != size) {
		rc = fail(b->e, -EAGAIN, "%s: changed while being read",
			  b->path);
		goto out_data;
	}
	rc = validate_buffer(kind, data, size, &type, &reason);
	if (rc) {
		rc = fail(b->e, rc, "%s: %s%s", b->path,
			  kind == DSFS_CONTENT_JSON ? "invalid JSON: " : "",
			  reason ? reason : strerror(-rc));
		goto out_data;
	}
	/* commit() replaces what is there: a file met twice (kv/__ID/x and
	 * devices/ID/x) must be refused instead. */
	if (layer_lookup(b->l, b->key, &a) == 0) {
		rc = store_fail(b, -EEXIST);
		goto out_data;
	}
	attr_from_stat(&a, st, DSFS_FILE);
	snprintf(a.type, sizeof(a.type), "%s", type);
	if (kind == DSFS_CONTENT_IMAGE && size > 0) {
		sha256_init(&h);
		sha256_update(&h, data, size);
		sha256_hex(&h, a.token);
	}
	rc = layer_commit(b->l, b->key, &a, data, size, NULL);
	if (rc)
		rc = store_fail(b, rc);
out_data:
	free(data);
out_fd:
	close(fd);
	return rc;
}

static int walk_src(struct build *b, int dirfd, enum dsfs_content kind);

static const char *kind_name(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFLNK:
		return "a symbolic link";
	case S_IFIFO:
		return "a FIFO";
	case S_IFSOCK:
		return "a socket";
	case S_IFCHR:
	case S_IFBLK:
		return "a device node";
	default:
		return "not a regular file or directory";
	}
}

/* The child name of dirfd, which b->key and b->path already name. */
static int visit(struct build *b, int dirfd, const char *name,
		 enum dsfs_content kind)
{
	struct stat st;
	int fd, rc;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return fail(b->e, -errno, "%s: %s", b->path, strerror(errno));
	if (S_ISREG(st.st_mode))
		return add_file(b, dirfd, name, &st, kind);
	if (!S_ISDIR(st.st_mode))
		return fail(b->e, -EPERM,
			    "%s: %s (only directories and regular files are "
			    "allowed)",
			    b->path, kind_name(st.st_mode));
	rc = add_dir(b, &st);
	if (rc)
		return rc;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(b->e, -errno, "%s: %s", b->path, strerror(errno));
	rc = walk_src(b, fd, kind);
	close(fd);
	return rc;
}

static int walk_src(struct build *b, int dirfd, enum dsfs_content kind)
{
	size_t n, i, klen, plen;
	char **names;
	int rc;

	rc = read_names(dirfd, &names, &n);
	if (rc)
		return fail(b->e, rc, "%s: %s", b->path, strerror(-rc));
	for (i = 0; i < n && rc == 0; i++) {
		rc = enter(b, names[i], names[i], &klen, &plen);
		if (rc == 0)
			rc = visit(b, dirfd, names[i], kind);
		leave(b, klen, plen);
	}
	free_names(names, n);
	return rc;
}

/* devices/ID/... is stored as kv/__ID/...: devices/ holds directories. */
static int walk_devices(struct build *b, int dirfd)
{
	char **names, keyname[NAME_MAX + 3];
	size_t n, i, klen, plen;
	struct stat st;
	int rc;

	rc = read_names(dirfd, &names, &n);
	if (rc)
		return fail(b->e, rc, "%s: %s", b->path, strerror(-rc));
	for (i = 0; i < n && rc == 0; i++) {
		snprintf(keyname, sizeof(keyname), "__%s", names[i]);
		rc = enter(b, keyname, names[i], &klen, &plen);
		if (rc == 0 &&
		    fstatat(dirfd, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
			rc = fail(b->e, -errno, "%s: %s", b->path,
				  strerror(errno));
		if (rc == 0 && !S_ISDIR(st.st_mode))
			rc = fail(b->e, -EPERM,
				  "%s: not a directory (devices/ holds one "
				  "directory per device: devices/ID/...)",
				  b->path);
		if (rc == 0)
			rc = visit(b, dirfd, names[i], DSFS_CONTENT_JSON);
		leave(b, klen, plen);
	}
	free_names(names, n);
	return rc;
}

/* What may be at the top of a source, and where each is stored. */
static const struct tree {
	const char *name;
	const char *key; /* the tree root: implicit in every layer */
	enum dsfs_content kind;
} trees[] = {
	{"kv", "kv", DSFS_CONTENT_JSON},
	{"images", "images", DSFS_CONTENT_IMAGE},
	{"devices", "kv", DSFS_CONTENT_JSON}, /* devices/ID is kv/__ID */
};

#define NTREES (sizeof(trees) / sizeof(trees[0]))

/* One tree of the source, which b->path names; each one is optional. */
static int walk_tree(struct build *b, int srcfd, const struct tree *t)
{
	struct stat st;
	int fd, rc;

	if (fstatat(srcfd, t->name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
		if (errno == ENOENT)
			return 0;
		return fail(b->e, -errno, "%s: %s", b->path, strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return fail(b->e, -ENOTDIR,
			    "%s: %s (kv, images and devices must be "
			    "directories)",
			    b->path,
			    S_ISREG(st.st_mode) ? "a regular file" :
						  kind_name(st.st_mode));
	fd = openat(srcfd, t->name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return fail(b->e, -errno, "%s: %s", b->path, strerror(errno));
	snprintf(b->key, sizeof(b->key), "%s", t->key);
	if (strcmp(t->name, "devices") == 0)
		rc = walk_devices(b, fd);
	else
		rc = walk_src(b, fd, t->kind);
	close(fd);
	return rc;
}

/* The top of the source: kv/, images/ and devices/, in that order, so that
 * a clash between kv/__ID/x and devices/ID/x is reported at the latter. */
static int walk_top(struct build *b, int srcfd)
{
	size_t n, i, t, plen;
	char **names;
	int rc;

	rc = read_names(srcfd, &names, &n);
	if (rc)
		return fail(b->e, rc, "%s: %s", b->path, strerror(-rc));
	/* Refuse anything unknown before any work is done. */
	for (i = 0; i < n && rc == 0; i++) {
		for (t = 0; t < NTREES && strcmp(names[i], trees[t].name) != 0;
		     t++)
			;
		if (t == NTREES)
			rc = fail(b->e, -EINVAL,
				  "%s/%s: not allowed at the top of a factory "
				  "source (only kv, images and devices)",
				  b->path, names[i]);
	}
	free_names(names, n);
	for (t = 0; t < NTREES && rc == 0; t++) {
		push(b->path, sizeof(b->path), trees[t].name, &plen);
		rc = walk_tree(b, srcfd, &trees[t]);
		b->path[plen] = '\0';
	}
	return rc;
}

static int check_image_file(const char *image, struct ctl_error *e);

int factory_build(const char *src, const char *image, uint64_t budget,
		  struct ctl_error *e)
{
	struct build *b;
	const char *why = NULL;
	char *tmp;
	size_t len;
	int srcfd, rc;

	b = calloc(1, sizeof(*b));
	if (!b)
		return fail(e, -ENOMEM, "out of memory");
	b->budget = budget;
	b->e = e;
	len = strlen(src);
	while (len > 1 && src[len - 1] == '/')
		len--;
	if (len >= PATH_MAX) {
		rc = fail(e, -ENAMETOOLONG, "%s: path too long", src);
		goto out_b;
	}
	memcpy(b->path, src, len);
	srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srcfd < 0) {
		rc = fail(e, -errno, "%s: %s", src, strerror(errno));
		goto out_b;
	}
	if (asprintf(&tmp, "%s.tmp", image) < 0) {
		rc = fail(e, -ENOMEM, "out of memory");
		goto out_src;
	}
	rc = remove_db(tmp, e);
	if (rc)
		goto out_tmp;
	rc = layer_sqlite_open(tmp, "factory", budget, true, &b->l, &why);
	if (rc) {
		rc = fail(e, rc, "%s: cannot create: %s", tmp,
			  why && *why ? why : strerror(-rc));
		goto out_remove;
	}
	rc = walk_top(b, srcfd);
	/* Closing turns the store into one self-contained file. */
	layer_close(b->l);
	if (rc)
		goto out_remove;
	/* Prove the result is an image, as install-factory will see it:
	 * this also catches a close that could not finish the file. */
	rc = check_image_file(tmp, e);
	if (rc)
		goto out_remove;
	rc = fsync_path(tmp, 0);
	if (rc) {
		fail(e, rc, "%s: fsync: %s", tmp, strerror(-rc));
		goto out_remove;
	}
	if (rename(tmp, image) != 0) {
		rc = fail(e, -errno, "%s: cannot rename to %s: %s", tmp, image,
			  strerror(errno));
		goto out_remove;
	}
	rc = fsync_dir_of(image);
	if (rc)
		fail(e, rc, "%s: fsync of its directory: %s", image,
		     strerror(-rc));
	goto out_tmp;

out_remove:
	remove_db(tmp, e);
out_tmp:
	free(tmp);
out_src:
	close(srcfd);
out_b:
	free(b);
	return rc;
}

/* ---- checking a layer, entry by entry -------------------------------- */

struct blobsize {
	char token[DSFS_TOKEN_LEN + 1];
	uint64_t size;
};

/*
 * One walk over a layer's kv/ and images/.  install-factory stops at the
 * first problem (report == NULL); check prints every problem to report and
 * goes on.  Usage is recounted the way layer.h defines it: names plus
 * values, an image blob once per token.
 */
struct walk {
	struct dsfs_layer *l;
	const char *label; /* the file, for messages */
	bool image;	   /* a factory image: whiteouts have no place */
	FILE *report;
	struct ctl_error *e;
	unsigned problems;
	uint64_t dirs, files, whiteouts, used;
	struct blobsize *blobs;
	size_t nblobs, capblobs;
	unsigned char *buf; /* CHUNK bytes */
	char key[DSFS_KEY_MAX];
};

static int problem(struct walk *w, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int problem(struct walk *w, int rc, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	w->problems++;
	if (w->report) {
		fprintf(w->report, "%s: %s: %s\n", w->label, w->key, msg);
		return 0;
	}
	return fail(w->e, rc, "%s: %s: %s", w->label, w->key, msg);
}

struct kid {
	char *name;
	struct dsfs_attr a;
};

struct kids {
	struct kid *v;
	size_t n, cap;
};

static int kids_add(void *ctx, const char *name, const struct dsfs_attr *a)
{
	struct kids *k = ctx;
	struct kid *nv;

	if (k->n == k->cap) {
		k->cap = k->cap ? 2 * k->cap : 16;
		nv = realloc(k->v, k->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		k->v = nv;
	}
	k->v[k->n].name = strdup(name);
	if (!k->v[k->n].name)
		return -ENOMEM;
	k->v[k->n].a = *a;
	k->n++;
	return 0;
}

static void kids_free(struct kids *k)
{
	while (k->n > 0)
		free(k->v[--k->n].name);
	free(k->v);
}

static int cmp_kid(const void *a, const void *b)
{
	return strcmp(((const struct kid *)a)->name,
		      ((const struct kid *)b)->name);
}

static int note_blob(struct walk *w, const struct dsfs_attr *a)
{
	struct blobsize *nv;

	if (w->nblobs == w->capblobs) {
		w->capblobs = w->capblobs ? 2 * w->capblobs : 16;
		nv = realloc(w->blobs, w->capblobs * sizeof(*nv));
		if (!nv)
			return fail(w->e, -ENOMEM, "out of memory");
		w->blobs = nv;
	}
	memcpy(w->blobs[w->nblobs].token, a->token, sizeof(a->token));
	w->blobs[w->nblobs].size = a->size;
	w->nblobs++;
	return 0;
}

static int cmp_blob(const void *a, const void *b)
{
	return strcmp(((const struct blobsize *)a)->token,
		      ((const struct blobsize *)b)->token);
}

/* Read the value of the file at w->key through the layer and check it as
 * the mount would, and against its recorded size, type and token. */
static int check_value(struct walk *w, const struct dsfs_attr *a,
		       enum dsfs_content kind)
{
	struct dsfs_validator *v;
	struct dsfs_sha256 h;
	const char *type = NULL;
	char bad[256] = "", token[DSFS_TOKEN_LEN + 1] = "";
	uint64_t off = 0;
	ssize_t n;
	int rc = 0;

	v = validator_new(kind);
	if (!v)
		return fail(w->e, -ENOMEM, "out of memory");
	sha256_init(&h);
	/* Never more than the recorded size and one chunk: a damaged size
	 * must not make this read forever. */
	while (off <= a->size) {
		n = layer_read(w->l, w->key, off, w->buf, CHUNK);
		if (n < 0) {
			rc = problem(w, (int)n, "cannot read: %s",
				     strerror((int)-n));
			rc = rc ? rc : (int)n;
			goto out_v;
		}
		if (n == 0)
			break;
		if (!bad[0] && validator_feed(v, w->buf, (size_t)n) != 0)
			snprintf(bad, sizeof(bad), "%s", validator_reason(v));
		sha256_update(&h, w->buf, (size_t)n);
		off += (uint64_t)n;
	}
	if (!bad[0] && validator_finish(v, &type) != 0)
		snprintf(bad, sizeof(bad), "%s", validator_reason(v));
	if (bad[0])
		rc = problem(w, -EINVAL, "%s%s",
			     kind == DSFS_CONTENT_JSON ? "invalid JSON: " : "",
			     bad);
	else if (off != a->size)
		rc = problem(w, -EINVAL,
			     "value has %llu bytes, its entry says %llu",
			     (unsigned long long)off,
			     (unsigned long long)a->size);
	else if (strcmp(type, a->type) != 0)
		rc = problem(w, -EINVAL,
			     "recorded type '%s', but the value is '%s'",
			     a->type, type);
	if (rc)
		goto out_v;
	if (kind == DSFS_CONTENT_IMAGE && off > 0)
		sha256_hex(&h, token);
	if (strcmp(token, a->token) != 0)
		rc = problem(w, -EINVAL,
			     "recorded token '%s', but the value's is '%s'",
			     a->token, token);
	else if (a->token[0])
		rc = note_blob(w, a);
	else
		w->used += a->size;
out_v:
	validator_free(v);
	return rc;
}

static int check_dir(struct walk *w, enum dsfs_content kind);

/* One child of the directory w->key. */
static int check_kid(struct walk *w, const struct kid *kid,
		     enum dsfs_content kind)
{
	size_t was;
	int rc;

	if (push(w->key, sizeof(w->key), kid->name, &was))
		return problem(w, -ENAMETOOLONG, "%s: key too long", kid->name);
	w->used += strlen(kid->name);
	if (name_check(kid->name) != 0) {
		rc = problem(w, -EINVAL, "name is not allowed");
		goto out;
	}
	switch (kid->a.kind) {
	case DSFS_DIR:
		w->dirs++;
		rc = check_dir(w, kind);
		break;
	case DSFS_FILE:
		w->files++;
		rc = check_value(w, &kid->a, kind);
		break;
	case DSFS_WHITEOUT:
		w->whiteouts++;
		rc = 0;
		if (w->image)
			rc = problem(w, -EINVAL, "whiteout in a factory image");
		break;
	default:
		rc = problem(w, -EINVAL, "unknown kind of entry %d",
			     (int)kid->a.kind);
	}
out:
	w->key[was] = '\0';
	return rc;
}

static int check_dir(struct walk *w, enum dsfs_content kind)
{
	struct kids k = {.n = 0};
	size_t i;
	int rc;

	rc = layer_list(w->l, w->key, kids_add, &k);
	if (rc) {
		rc = problem(w, rc, "cannot list: %s", strerror(-rc));
		goto out;
	}
	if (k.n)
		qsort(k.v, k.n, sizeof(*k.v), cmp_kid);
	for (i = 0; i < k.n && rc == 0; i++)
		rc = check_kid(w, &k.v[i], kind);
out:
	kids_free(&k);
	return rc;
}

/* Walk the whole layer l; problems counted in w->problems. */
static int check_layer(struct walk *w)
{
	uint64_t used, budget;
	size_t i;
	int rc;

	w->buf = malloc(CHUNK);
	if (!w->buf)
		return fail(w->e, -ENOMEM, "out of memory");
	snprintf(w->key, sizeof(w->key), "kv");
	rc = check_dir(w, DSFS_CONTENT_JSON);
	if (rc == 0) {
		snprintf(w->key, sizeof(w->key), "images");
		rc = check_dir(w, DSFS_CONTENT_IMAGE);
	}
	if (rc)
		goto out;
	if (w->nblobs)
		qsort(w->blobs, w->nblobs, sizeof(*w->blobs), cmp_blob);
	for (i = 0; i < w->nblobs; i++) {
		if (i > 0 &&
		    strcmp(w->blobs[i].token, w->blobs[i - 1].token) == 0)
			continue;
		w->used += w->blobs[i].size;
	}
	snprintf(w->key, sizeof(w->key), "usage");
	rc = layer_usage(w->l, &used, &budget);
	if (rc)
		rc = problem(w, rc, "%s", strerror(-rc));
	else if (used != w->used)
		rc = problem(w, -EINVAL,
			     "records %llu bytes used, but its entries add up "
			     "to %llu",
			     (unsigned long long)used,
			     (unsigned long long)w->used);
out:
	free(w->buf);
	free(w->blobs);
	w->buf = NULL;
	w->blobs = NULL;
	return rc;
}

/* Open image as the daemon would and check all of it; stop at the first
 * problem. */
static int check_image_file(const char *image, struct ctl_error *e)
{
	struct walk w = {.label = image, .image = true, .e = e};
	const char *why = NULL;
	int rc;

	rc = layer_sqlite_open_image(image, "factory",
				     DSFS_DEFAULT_FACTORY_SIZE, &w.l, &why);
	if (rc)
		return fail(e, rc, "%s: not a factory image: %s", image,
			    why && *why ? why : strerror(-rc));
	rc = check_layer(&w);
	layer_close(w.l);
	return rc;
}

/* ---- stores --------------------------------------------------------- */

struct store {
	const char *path;
	int dirfd;
	int lockfd;
	struct stat st;
};

static int store_open(struct store *s, const char *path, bool create,
		      struct ctl_error *e)
{
	uid_t me = geteuid();
	int pathfd, rc;

	s->path = path;
	s->dirfd = s->lockfd = -1;
	memset(&s->st, 0, sizeof(s->st));
	if (create && mkdir(path, 0700) != 0 && errno != EEXIST)
		return fail(e, -errno, "%s: cannot create store: %s", path,
			    strerror(errno));
	/* O_PATH first: whose store it is matters more than whether we may
	 * read it. */
	pathfd = open(path, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (pathfd < 0)
		return fail(e, -errno, "%s: %s", path, strerror(errno));
	if (fstat(pathfd, &s->st) != 0) {
		rc = fail(e, -errno, "%s: %s", path, strerror(errno));
		goto out_path;
	}
	if (s->st.st_uid != me && me != 0) {
		rc = fail(e, -EPERM,
			  "%s: store owned by uid %u, not by you (uid %u): "
			  "only its owner or root may change it",
			  path, (unsigned)s->st.st_uid, (unsigned)me);
		goto out_path;
	}
	/* Readable, for fsync(). */
	s->dirfd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (s->dirfd < 0)
		rc = fail(e, -errno, "%s: %s", path, strerror(errno));
	else
		rc = 0;
out_path:
	close(pathfd);
	return rc;
}

static void store_close(struct store *s)
{
	if (s->lockfd >= 0)
		close(s->lockfd);
	if (s->dirfd >= 0)
		close(s->dirfd);
	s->lockfd = s->dirfd = -1;
}

/* Files root makes in a user's store go to that user, or the daemon (run
 * by the user) could not open them. */
static int give_to_owner(struct store *s, int fd, const char *name,
			 struct ctl_error *e)
{
	if (geteuid() != 0 || s->st.st_uid == 0)
		return 0;
	if (fchown(fd, s->st.st_uid, s->st.st_gid) != 0)
		return fail(e, -errno, "%s/%s: chown: %s", s->path, name,
			    strerror(errno));
	return 0;
}

/* Take STORE/lock as the daemon does: 0 when this process now has the
 * store to itself (offline), -EWOULDBLOCK when a daemon (or another
 * dsfsctl) has it. */
static int store_lock(struct store *s, struct ctl_error *e)
{
	int fd, rc;

	fd = openat(s->dirfd, STORE_LOCK,
		    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return fail(e, -errno, "%s/%s: %s", s->path, STORE_LOCK,
			    strerror(errno));
	rc = give_to_owner(s, fd, STORE_LOCK, e);
	if (rc)
		goto out_fd;
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		rc = -errno;
		if (rc != -EWOULDBLOCK)
			fail(e, rc, "%s/%s: flock: %s", s->path, STORE_LOCK,
			     strerror(-rc));
		goto out_fd;
	}
	s->lockfd = fd;
	return 0;

out_fd:
	close(fd);
	return rc;
}

/* Ask the daemon that has the store. */
static int ask(struct store *s, const char *request, char *reply, size_t size,
	       struct ctl_error *e)
{
	int rc;

	rc = control_request(s->path, request, reply, size);
	if (rc == -ENOENT || rc == -ECONNREFUSED)
		return fail(e, -EBUSY,
			    "%s: store is in use but no daemon answers on %s "
			    "(another dsfsctl is working on it, or dsfs is "
			    "starting or stopping): try again",
			    s->path, STORE_SOCKET);
	if (rc)
		return fail(e, rc, "%s: %s", s->path, reply);
	return 0;
}

static char *store_file(struct store *s, const char *name, struct ctl_error *e)
{
	char *path;

	if (asprintf(&path, "%s/%s", s->path, name) < 0) {
		fail(e, -ENOMEM, "out of memory");
		return NULL;
	}
	return path;
}

/* ---- install-factory ------------------------------------------------- */

/*
 * Open STORE/factory.db.new and lock it (flock) against a concurrent
 * install.  The daemon renames the file it is given, so the lock may have
 * been taken on a file that is factory.db by now: then try again.
 */
static int open_new(struct store *s, int *out, struct ctl_error *e)
{
	struct stat a, b;
	int fd, tries, rc;

	for (tries = 0; tries < 10; tries++) {
		fd = openat(s->dirfd, STORE_FACTORY_NEW,
			    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return fail(e, -errno, "%s/%s: %s", s->path,
				    STORE_FACTORY_NEW, strerror(errno));
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			rc = -errno;
			close(fd);
			if (rc == -EWOULDBLOCK)
				return fail(e, -EBUSY,
					    "%s: another install-factory is "
					    "in progress",
					    s->path);
			return fail(e, rc, "%s/%s: flock: %s", s->path,
				    STORE_FACTORY_NEW, strerror(-rc));
		}
		if (fstat(fd, &a) == 0 &&
		    fstatat(s->dirfd, STORE_FACTORY_NEW, &b,
			    AT_SYMLINK_NOFOLLOW) == 0 &&
		    a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
			*out = fd;
			return 0;
		}
		close(fd);
	}
	return fail(e, -EBUSY, "%s: %s keeps changing", s->path,
		    STORE_FACTORY_NEW);
}

/* Remove STORE/factory.db.new if it is still the file fd (a daemon may
 * have taken it meanwhile). */
static void drop_new(struct store *s, int fd)
{
	struct stat a, b;

	if (fstat(fd, &a) == 0 &&
	    fstatat(s->dirfd, STORE_FACTORY_NEW, &b, AT_SYMLINK_NOFOLLOW) ==
		    0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		unlinkat(s->dirfd, STORE_FACTORY_NEW, 0);
}

static int copy_fd(int from, int to, const char *src, const char *dst,
		   struct ctl_error *e)
{
	char *buf;
	ssize_t n, w;
	off_t off = 0;
	int rc = 0;

	buf = malloc(CHUNK);
	if (!buf)
		return fail(e, -ENOMEM, "out of memory");
	for (;;) {
		n = pread(from, buf, CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = fail(e, -errno, "%s: %s", src, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		for (w = 0; w < n;) {
			ssize_t k =
				pwrite(to, buf + w, (size_t)(n - w), off + w);

			if (k < 0 && errno == EINTR)
				continue;
			if (k < 0) {
				rc = fail(e, -errno, "%s: %s", dst,
					  strerror(errno));
				goto out;
			}
			w += k;
		}
		off += n;
	}
out:
	free(buf);
	return rc;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	       a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Copy the image, open as imgfd and checked as it was then (checked), to
 * STORE/factory.db.new and sync it.  *out is the new file, open and
 * flocked; on failure nothing is left. */
static int write_new(struct store *s, int imgfd, const char *image,
		     const struct stat *checked, int *out, struct ctl_error *e)
{
	char path[PATH_MAX];
	struct stat now;
	int fd = -1, rc;

	snprintf(path, sizeof(path), "%s/%s", s->path, STORE_FACTORY_NEW);
	rc = open_new(s, &fd, e);
	if (rc)
		return rc;
	if (ftruncate(fd, 0) != 0) {
		rc = fail(e, -errno, "%s: %s", path, strerror(errno));
		goto out_drop;
	}
	rc = copy_fd(imgfd, fd, image, path, e);
	if (rc)
		goto out_drop;
	/* What was copied must be what was checked. */
	if (fstat(imgfd, &now) != 0 || !same_file(checked, &now)) {
		rc = fail(e, -EAGAIN, "%s: changed while being installed",
			  image);
		goto out_drop;
	}
	rc = give_to_owner(s, fd, STORE_FACTORY_NEW, e);
	if (rc)
		goto out_drop;
	if (fsync(fd) != 0) {
		rc = fail(e, -errno, "%s: fsync: %s", path, strerror(errno));
		goto out_drop;
	}
	*out = fd;
	return 0;

out_drop:
	drop_new(s, fd);
	close(fd);
	return rc;
}

int factory_install(const char *image, const char *store, struct ctl_error *e)
{
	char reply[CONTROL_REPLY_MAX];
	struct stat checked;
	struct store s;
	bool mounted;
	int imgfd, newfd = -1, rc;

	imgfd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (imgfd < 0)
		return fail(e, -errno, "%s: %s", image, strerror(errno));
	if (fstat(imgfd, &checked) != 0 || !S_ISREG(checked.st_mode)) {
		rc = fail(e, -EINVAL, "%s: not a regular file", image);
		goto out_img;
	}
	/* All of it, before the store is touched. */
	rc = check_image_file(image, e);
	if (rc)
		goto out_img;
	rc = store_open(&s, store, true, e);
	if (rc)
		goto out_img;
	/* Offline, the lock is held from here on: a daemon starting
	 * meanwhile would remove factory.db.new as a crash's leftover. */
	rc = store_lock(&s, e);
	mounted = rc == -EWOULDBLOCK;
	if (rc && !mounted)
		goto out_store;
	rc = write_new(&s, imgfd, image, &checked, &newfd, e);
	if (rc)
		goto out_store;
	if (mounted) {
		/* The daemon renames the file and starts using it; if it
		 * refuses the file, it removes it. */
		rc = ask(&s, "install-factory", reply, sizeof(reply), e);
		if (rc == -EBUSY)
			drop_new(&s, newfd);
	} else if (renameat(s.dirfd, STORE_FACTORY_NEW, s.dirfd,
			    STORE_FACTORY) != 0) {
		rc = fail(e, -errno, "%s/%s: cannot rename to %s: %s", store,
			  STORE_FACTORY_NEW, STORE_FACTORY, strerror(errno));
		drop_new(&s, newfd);
	} else if (fsync(s.dirfd) != 0) {
		rc = fail(e, -errno, "%s: fsync: %s", store, strerror(errno));
	}
	close(newfd);
out_store:
	store_close(&s);
out_img:
	close(imgfd);
	return rc;
}

/* ---- factory-reset, usage, check ------------------------------------- */

/* Open STORE/runtime.db offline; -ENOENT if it was never created. */
static int open_runtime(struct store *s, struct dsfs_layer **l,
			struct ctl_error *e)
{
	const char *why = NULL;
	char *path;
	int rc;

	path = store_file(s, STORE_RUNTIME, e);
	if (!path)
		return -ENOMEM;
	rc = layer_sqlite_open(path, "runtime", DSFS_DEFAULT_RUNTIME_SIZE,
			       false, l, &why);
	if (rc && rc != -ENOENT)
		fail(e, rc, "%s: %s", path, why && *why ? why : strerror(-rc));
	free(path);
	return rc;
}

static int open_factory(struct store *s, struct dsfs_layer **l,
			struct ctl_error *e)
{
	const char *why = NULL;
	char *path;
	int rc;

	path = store_file(s, STORE_FACTORY, e);
	if (!path)
		return -ENOMEM;
	rc = layer_sqlite_open_image(path, "factory", DSFS_DEFAULT_FACTORY_SIZE,
				     l, &why);
	if (rc && rc != -ENOENT)
		fail(e, rc, "%s: %s", path, why && *why ? why : strerror(-rc));
	free(path);
	return rc;
}

int store_factory_reset(const char *store, struct ctl_error *e)
{
	char reply[CONTROL_REPLY_MAX];
	struct dsfs_layer *l;
	struct store s;
	int rc;

	rc = store_open(&s, store, false, e);
	if (rc)
		return rc;
	rc = store_lock(&s, e);
	if (rc == -EWOULDBLOCK) {
		rc = ask(&s, "factory-reset", reply, sizeof(reply), e);
		goto out_store;
	}
	if (rc)
		goto out_store;
	rc = open_runtime(&s, &l, e);
	if (rc == -ENOENT) {
		rc = 0; /* never mounted: nothing to reset */
		goto out_store;
	}
	if (rc)
		goto out_store;
	rc = layer_clear(l);
	if (rc == 0)
		rc = layer_sync(l);
	if (rc)
		fail(e, rc, "%s/%s: factory reset: %s", store, STORE_RUNTIME,
		     strerror(-rc));
	layer_close(l);
out_store:
	store_close(&s);
	return rc;
}

static int print_usage_of(FILE *out, const char *name, struct dsfs_layer *l,
			  uint64_t budget, struct ctl_error *e)
{
	uint64_t used = 0;
	int rc;

	if (l) {
		rc = layer_usage(l, &used, &budget);
		if (rc)
			return fail(e, rc, "%s layer: %s", name, strerror(-rc));
	}
	fprintf(out, "%s %llu %llu\n", name, (unsigned long long)used,
		(unsigned long long)budget);
	return 0;
}

int store_usage(const char *store, FILE *out, struct ctl_error *e)
{
	char reply[CONTROL_REPLY_MAX];
	struct dsfs_layer *runtime = NULL, *factory = NULL;
	struct store s;
	int rc;

	rc = store_open(&s, store, false, e);
	if (rc)
		return rc;
	rc = store_lock(&s, e);
	if (rc == -EWOULDBLOCK) {
		rc = ask(&s, "usage", reply, sizeof(reply), e);
		if (rc == 0)
			fputs(reply, out);
		goto out_store;
	}
	if (rc)
		goto out_store;
	/* Offline the mount options are unknown: the default budgets. */
	rc = open_runtime(&s, &runtime, e);
	if (rc && rc != -ENOENT)
		goto out_store;
	rc = open_factory(&s, &factory, e);
	if (rc && rc != -ENOENT)
		goto out_runtime;
	rc = print_usage_of(out, "ephemeral", NULL, DSFS_DEFAULT_EPHEMERAL_SIZE,
			    e);
	if (rc == 0)
		rc = print_usage_of(out, "runtime", runtime,
				    DSFS_DEFAULT_RUNTIME_SIZE, e);
	if (rc == 0)
		rc = print_usage_of(out, "factory", factory,
				    DSFS_DEFAULT_FACTORY_SIZE, e);
	if (factory)
		layer_close(factory);
out_runtime:
	if (runtime)
		layer_close(runtime);
out_store:
	store_close(&s);
	return rc;
}

/* PRAGMA integrity_check on path, read-only; each complaint is reported. */
static unsigned integrity(const char *path, const char *label, FILE *out)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	unsigned problems = 0;
	const char *row;
	int rc;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st,
					NULL);
	while (rc == SQLITE_OK || rc == SQLITE_ROW) {
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			break;
		row = (const char *)sqlite3_column_text(st, 0);
		if (row && strcmp(row, "ok") == 0)
			continue;
		fprintf(out, "%s: integrity: %s\n", label, row ? row : "?");
		problems++;
	}
	if (rc != SQLITE_DONE) {
		fprintf(out, "%s: integrity check failed: %s\n", label,
			db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		problems++;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return problems;
}

/* Check one store file: SQLite's integrity, then every entry. */
static unsigned check_file(struct store *s, const char *name, FILE *out)
{
	struct ctl_error e = {.text = ""};
	struct walk w = {.label = name, .report = out, .e = &e};
	struct dsfs_layer *l = NULL;
	unsigned problems;
	struct stat st;
	char *path;
	int rc;

	if (fstatat(s->dirfd, name, &st, 0) != 0 && errno == ENOENT) {
		fprintf(out, "%s: absent%s\n", name,
			strcmp(name, STORE_RUNTIME) == 0 ?
				" (the store was never mounted)" :
				" (empty factory layer)");
		return 0;
	}
	path = store_file(s, name, &e);
	if (!path)
		return 1;
	problems = integrity(path, name, out);
	free(path);
	if (strcmp(name, STORE_RUNTIME) == 0) {
		rc = open_runtime(s, &l, &e);
	} else {
		w.image = true;
		rc = open_factory(s, &l, &e);
	}
	if (rc) {
		fprintf(out, "%s: cannot open: %s\n", name, e.text);
		return problems + 1;
	}
	w.l = l;
	rc = check_layer(&w);
	layer_close(l);
	problems += w.problems;
	if (rc && !w.problems) {
		fprintf(out, "%s: %s\n", name, e.text);
		problems++;
	}
	fprintf(out,
		"%s: %llu directories, %llu files, %llu whiteouts, %llu "
		"bytes used: %s\n",
		name, (unsigned long long)w.dirs, (unsigned long long)w.files,
		(unsigned long long)w.whiteouts, (unsigned long long)w.used,
		problems ? "PROBLEMS" : "ok");
	return problems;
}

int store_check(const char *store, FILE *out, struct ctl_error *e)
{
	unsigned problems;
	struct store s;
	int rc;

	rc = store_open(&s, store, false, e);
	if (rc)
		return rc;
	rc = store_lock(&s, e);
	if (rc == -EWOULDBLOCK)
		rc = fail(e, -EBUSY,
			  "%s: store is mounted or busy: unmount it to check "
			  "it",
			  store);
	if (rc)
		goto out_store;
	problems = check_file(&s, STORE_RUNTIME, out);
	problems += check_file(&s, STORE_FACTORY, out);
	if (problems)
		rc = fail(e, -EINVAL, "%s: %u problem%s found", store, problems,
			  problems == 1 ? "" : "s");
out_store:
	store_close(&s);
	return rc;
}
