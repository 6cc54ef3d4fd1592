/*
 * mkfactory.c - dsfsctl mkfactory: a factory image built from a directory
 * laid out like the mount (kv/, images/, devices/ID/ as kv/__ID/).
 *
 * A factory image is a store file (layer_sqlite.c) closed into a single
 * self-contained file.  It is built through the same layer operations and
 * the same content rules (validate.h) as writes through the mount, so that
 * an image holds nothing the mount would have refused; the source is read
 * in sorted order, so that an image and its first error do not depend on
 * readdir's order.  The result is checked as install-factory will check it
 * (image_check.c), then put in place by temp file -> fsync -> rename ->
 * fsync of the directory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dsfs.h"
#include "dsfsctl.h"
#include "layer.h"
#include "validate.h"

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

/* Remove path and the files SQLite keeps beside it: a stale journal left
 * by an earlier, crashed build must not be replayed into the new one. */
static int remove_db(const char *path, struct store_error *e)
{
	static const char *const sides[] = {"", "-wal", "-shm", "-journal"};
	char name[PATH_MAX];
	size_t i;

	for (i = 0; i < sizeof(sides) / sizeof(sides[0]); i++) {
		if (snprintf(name, sizeof(name), "%s%s", path, sides[i]) >=
		    (int)sizeof(name))
			return store_fail(e, -ENAMETOOLONG, "%s: path too long",
					  path);
		if (unlink(name) != 0 && errno != ENOENT)
			return store_fail(e, -errno, "%s: cannot remove: %s",
					  name, strerror(errno));
	}
	return 0;
}

struct build {
	struct dsfs_layer *l;
	uint64_t budget;
	struct store_error *e;
	char key[DSFS_KEY_MAX];		    /* the entry being added */
	char path[PATH_MAX + DSFS_KEY_MAX]; /* its source, for messages */
	struct progress progress;	    /* entries and bytes added */
	uint64_t entries, bytes;
};

/* Call each() on every name in the source directory dirfd, which b->path
 * names, in sorted order, until one fails. */
static int each_name(struct build *b, int dirfd, enum dsfs_content kind,
		     int (*each)(struct build *b, int dirfd, const char *name,
				 enum dsfs_content kind))
{
	size_t n, i;
	char **names;
	int rc;

	rc = read_names(dirfd, &names, &n);
	if (rc)
		return store_fail(b->e, rc, "%s: %s", b->path, strerror(-rc));
	for (i = 0; i < n && rc == 0; i++)
		/* An editor's scratch file is never part of an image. */
		if (kind != DSFS_CONTENT_JSON ||
		    !scratch_name(DSFS_SCRATCH_DEFAULT, names[i]))
			rc = each(b, dirfd, names[i], kind);
	free_names(names, n);
	return rc;
}

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
	if (key_push(b->path, sizeof(b->path), name, plen))
		return store_fail(b->e, -ENAMETOOLONG, "%s/...: path too long",
				  b->path);
	rc = name_check(name);
	if (rc == -ENAMETOOLONG)
		return store_fail(b->e, rc, "%s: name longer than 255 bytes",
				  b->path);
	if (rc)
		return store_fail(b->e, rc, "%s: name is not valid UTF-8",
				  b->path);
	if (name_check(keyname) != 0)
		return store_fail(b->e, -ENAMETOOLONG,
				  "%s: device ID longer than 253 bytes (it is "
				  "stored as kv/__ID)",
				  b->path);
	if (strcmp(b->key, "images") == 0 && strcmp(name, ".by-token") == 0)
		return store_fail(
			b->e, -EINVAL,
			"%s: reserved name (images/.by-token/ shows images "
			"by their token)",
			b->path);
	if (key_push(b->key, sizeof(b->key), keyname, klen))
		return store_fail(b->e, -ENAMETOOLONG,
				  "%s: key longer than %d bytes", b->path,
				  DSFS_KEY_MAX - 1);
	return 0;
}

static void leave(struct build *b, size_t klen, size_t plen)
{
	b->key[klen] = '\0';
	b->path[plen] = '\0';
}

static int build_fail(struct build *b, int rc)
{
	if (rc == -ENOSPC)
		return store_fail(
			b->e, rc,
			"%s: the image would exceed its budget of %llu "
			"bytes (mkfactory -s SIZE)",
			b->path, (unsigned long long)b->budget);
	if (rc == -EEXIST || rc == -EISDIR || rc == -ENOTDIR)
		return store_fail(b->e, -EEXIST,
				  "%s: same entry (%s) as another source file "
				  "(devices/ID/... is kv/__ID/...)",
				  b->path, b->key);
	return store_fail(b->e, rc, "%s: cannot store as %s: %s", b->path,
			  b->key, strerror(-rc));
}

static int add_dir(struct build *b, const struct stat *st)
{
	struct dsfs_attr a;
	int rc;

	progress_update(&b->progress, ++b->entries, b->bytes);
	attr_from_stat(&a, st, DSFS_DIR);
	rc = layer_mkdir(b->l, b->key, &a);
	/* kv/__ID/ and devices/ID/ are one directory: their contents merge,
	 * the first one's attributes stay. */
	if (rc == -EEXIST && layer_lookup(b->l, b->key, &a) == 0 &&
	    a.kind == DSFS_DIR)
		return 0;
	return rc ? build_fail(b, rc) : 0;
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
		return store_fail(
			b->e, -ENOSPC,
			"%s: %lld bytes, more than the image's budget of "
			"%llu bytes (mkfactory -s SIZE)",
			b->path, (long long)st->st_size,
			(unsigned long long)b->budget);
	/* O_NONBLOCK: should it have become a FIFO since fstatat(), open
	 * must not wait for a writer; the fstat() below refuses it. */
	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return store_fail(b->e, -errno, "%s: %s", b->path,
				  strerror(errno));
	if (fstat(fd, &fst) != 0 || !S_ISREG(fst.st_mode) ||
	    fst.st_ino != st->st_ino || fst.st_dev != st->st_dev) {
		rc = store_fail(b->e, -EAGAIN, "%s: changed while being read",
				b->path);
		goto out_fd;
	}
	data = malloc(size ? size : 1);
	if (!data) {
		rc = store_fail(b->e, -ENOMEM, "%s: out of memory", b->path);
		goto out_fd;
	}
	while (got < size) {
		n = read(fd, data + got, size - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = store_fail(b->e, -errno, "%s: %s", b->path,
					strerror(errno));
			goto out_data;
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	if (got != size) {
		rc = store_fail(b->e, -EAGAIN, "%s: changed while being read",
				b->path);
		goto out_data;
	}
	rc = validate_buffer(kind, data, size, &type, &reason);
	if (rc) {
		rc = store_fail(b->e, rc, "%s: %s%s", b->path,
				kind == DSFS_CONTENT_JSON ? "invalid JSON: " :
							    "",
				reason ? reason : strerror(-rc));
		goto out_data;
	}
	/* commit() replaces what is there: a file met twice (kv/__ID/x and
	 * devices/ID/x) must be refused instead. */
	if (layer_lookup(b->l, b->key, &a) == 0) {
		rc = build_fail(b, -EEXIST);
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
		rc = build_fail(b, rc);
	b->bytes += size;
	progress_update(&b->progress, ++b->entries, b->bytes);
out_data:
	free(data);
out_fd:
	close(fd);
	return rc;
}

static int src_entry(struct build *b, int dirfd, const char *name,
		     enum dsfs_content kind);

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
	struct dsfs_attr a;
	struct stat st;
	int fd, rc;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		return store_fail(b->e, -errno, "%s: %s", b->path,
				  strerror(errno));
	if (S_ISREG(st.st_mode))
		return add_file(b, dirfd, name, &st, kind);
	if (!S_ISDIR(st.st_mode))
		return store_fail(
			b->e, -EPERM,
			"%s: %s (only directories and regular files are "
			"allowed)",
			b->path, kind_name(st.st_mode));
	rc = add_dir(b, &st);
	if (rc)
		return rc;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return store_fail(b->e, -errno, "%s: %s", b->path,
				  strerror(errno));
	rc = each_name(b, fd, kind, src_entry);
	close(fd);
	if (rc)
		return rc;
	/* Each name made in it set its times to now (layer.h, Directory
	 * times): the image keeps the source's. */
	attr_from_stat(&a, &st, DSFS_DIR);
	rc = layer_setattr(b->l, b->key, &a, DSFS_SET_MTIME | DSFS_SET_CTIME);
	return rc ? build_fail(b, rc) : 0;
}

/* A name in a directory of kv/ or images/. */
static int src_entry(struct build *b, int dirfd, const char *name,
		     enum dsfs_content kind)
{
	size_t klen, plen;
	int rc;

	rc = enter(b, name, name, &klen, &plen);
	if (rc == 0)
		rc = visit(b, dirfd, name, kind);
	leave(b, klen, plen);
	return rc;
}

/* devices/ID/... is stored as kv/__ID/...: devices/ holds directories. */
static int device_entry(struct build *b, int dirfd, const char *name,
			enum dsfs_content kind)
{
	char keyname[NAME_MAX + 3];
	size_t klen, plen;
	struct stat st;
	int rc;

	snprintf(keyname, sizeof(keyname), "__%s", name);
	rc = enter(b, keyname, name, &klen, &plen);
	if (rc == 0 && fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0)
		rc = store_fail(b->e, -errno, "%s: %s", b->path,
				strerror(errno));
	if (rc == 0 && !S_ISDIR(st.st_mode))
		rc = store_fail(b->e, -EPERM,
				"%s: not a directory (devices/ holds one "
				"directory per device: devices/ID/...)",
				b->path);
	if (rc == 0)
		rc = visit(b, dirfd, name, kind);
	leave(b, klen, plen);
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
		return store_fail(b->e, -errno, "%s: %s", b->path,
				  strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return store_fail(b->e, -ENOTDIR,
				  "%s: %s (kv, images and devices must be "
				  "directories)",
				  b->path,
				  S_ISREG(st.st_mode) ? "a regular file" :
							kind_name(st.st_mode));
	fd = openat(srcfd, t->name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return store_fail(b->e, -errno, "%s: %s", b->path,
				  strerror(errno));
	snprintf(b->key, sizeof(b->key), "%s", t->key);
	if (strcmp(t->name, "devices") == 0)
		rc = each_name(b, fd, t->kind, device_entry);
	else
		rc = each_name(b, fd, t->kind, src_entry);
	close(fd);
	return rc;
}

/* Anything unknown at the top of the source is refused before any work
 * is done. */
static int top_entry(struct build *b, int dirfd, const char *name,
		     enum dsfs_content kind)
{
	size_t t;

	(void)dirfd;
	(void)kind;
	for (t = 0; t < NTREES && strcmp(name, trees[t].name) != 0; t++)
		;
	if (t == NTREES)
		return store_fail(b->e, -EINVAL,
				  "%s/%s: not allowed at the top of a factory "
				  "source (only kv, images and devices)",
				  b->path, name);
	return 0;
}

/* The top of the source: kv/, images/ and devices/, in that order, so that
 * a clash between kv/__ID/x and devices/ID/x is reported at the latter. */
static int walk_top(struct build *b, int srcfd)
{
	size_t t, plen;
	int rc;

	rc = each_name(b, srcfd, DSFS_CONTENT_JSON, top_entry);
	for (t = 0; t < NTREES && rc == 0; t++) {
		key_push(b->path, sizeof(b->path), trees[t].name, &plen);
		rc = walk_tree(b, srcfd, &trees[t]);
		b->path[plen] = '\0';
	}
	return rc;
}

int factory_build(const char *src, const char *image, uint64_t budget,
		  enum progress_mode progress, struct store_error *e)
{
	struct build *b;
	const char *why = NULL;
	char *tmp;
	size_t len;
	int srcfd, rc;

	b = calloc(1, sizeof(*b));
	if (!b)
		return store_fail(e, -ENOMEM, "out of memory");
	b->budget = budget;
	b->e = e;
	len = strlen(src);
	while (len > 1 && src[len - 1] == '/')
		len--;
	if (len >= PATH_MAX) {
		rc = store_fail(e, -ENAMETOOLONG, "%s: path too long", src);
		goto out_b;
	}
	memcpy(b->path, src, len);
	srcfd = open(src, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (srcfd < 0) {
		rc = store_fail(e, -errno, "%s: %s", src, strerror(errno));
		goto out_b;
	}
	if (asprintf(&tmp, "%s.tmp", image) < 0) {
		rc = store_fail(e, -ENOMEM, "out of memory");
		goto out_src;
	}
	rc = remove_db(tmp, e);
	if (rc)
		goto out_tmp;
	rc = layer_sqlite_open(tmp, "factory", budget, true, &b->l, &why);
	if (rc) {
		rc = store_fail(e, rc, "%s: cannot create: %s", tmp,
				why && *why ? why : strerror(-rc));
		goto out_remove;
	}
	progress_begin(&b->progress, progress, "mkfactory", 0, 0);
	rc = walk_top(b, srcfd);
	progress_end(&b->progress);
	/* Closing turns the store into one self-contained file. */
	layer_close(b->l);
	if (rc)
		goto out_remove;
	/* Prove the result is an image, as install-factory will see it:
	 * this also catches a close that could not finish the file. */
	rc = check_image_file(tmp, progress, e);
	if (rc)
		goto out_remove;
	rc = store_fsync_path(tmp, 0);
	if (rc) {
		store_fail(e, rc, "%s: fsync: %s", tmp, strerror(-rc));
		goto out_remove;
	}
	if (rename(tmp, image) != 0) {
		rc = store_fail(e, -errno, "%s: cannot rename to %s: %s", tmp,
				image, strerror(errno));
		goto out_remove;
	}
	rc = store_fsync_dir_of(image);
	if (rc)
		store_fail(e, rc, "%s: fsync of its directory: %s", image,
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
