/*
 * install.c - dsfsctl install-factory: an image, checked entry by entry
 * (image_check.c) before the store is touched, made a store's factory
 * image.
 *
 * The image is copied to STORE/factory.db.new and fsynced; then, offline
 * (dsfsctl holds STORE/lock), renamed to STORE/factory.db and the
 * directory fsynced (store_install_new()); mounted, the daemon is asked to
 * do that step and to start using the image (store_take_new_factory()).
 * A crash leaves factory.db either the old image or the new one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "watch.h"
#include "control.h"
#include "dsfs.h"
#include "dsfsctl.h"

/*
 * Open STORE/factory.db.new and lock it (flock) against a concurrent
 * install.  The daemon renames the file it is given, so the lock may have
 * been taken on a file that is factory.db by now: then try again.
 */
static int open_new(struct store *s, int *out, struct store_error *e)
{
	struct stat a, b;
	int fd, tries, rc;

	for (tries = 0; tries < 10; tries++) {
		fd = openat(s->dirfd, STORE_FACTORY_NEW,
			    O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
		if (fd < 0)
			return store_fail(e, -errno, "%s/%s: %s", s->path,
					  STORE_FACTORY_NEW, strerror(errno));
		if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
			rc = -errno;
			close(fd);
			if (rc == -EWOULDBLOCK)
				return store_fail(
					e, -EBUSY,
					"%s: another install-factory is "
					"in progress",
					s->path);
			return store_fail(e, rc, "%s/%s: flock: %s", s->path,
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
	return store_fail(e, -EBUSY, "%s: %s keeps changing", s->path,
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
		   struct store_error *e)
{
	char *buf;
	ssize_t n, w;
	off_t off = 0;
	int rc = 0;

	buf = malloc(CTL_CHUNK);
	if (!buf)
		return store_fail(e, -ENOMEM, "out of memory");
	for (;;) {
		n = pread(from, buf, CTL_CHUNK, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = store_fail(e, -errno, "%s: %s", src,
					strerror(errno));
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
				rc = store_fail(e, -errno, "%s: %s", dst,
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
		     const struct stat *checked, int *out,
		     struct store_error *e)
{
	char path[PATH_MAX];
	struct stat now;
	int fd = -1, rc;

	snprintf(path, sizeof(path), "%s/%s", s->path, STORE_FACTORY_NEW);
	rc = open_new(s, &fd, e);
	if (rc)
		return rc;
	if (ftruncate(fd, 0) != 0) {
		rc = store_fail(e, -errno, "%s: %s", path, strerror(errno));
		goto out_drop;
	}
	rc = copy_fd(imgfd, fd, image, path, e);
	if (rc)
		goto out_drop;
	/* What was copied must be what was checked. */
	if (fstat(imgfd, &now) != 0 || !same_file(checked, &now)) {
		rc = store_fail(e, -EAGAIN, "%s: changed while being installed",
				image);
		goto out_drop;
	}
	rc = store_give_to_owner(s, fd, STORE_FACTORY_NEW, e);
	if (rc)
		goto out_drop;
	if (fsync(fd) != 0) {
		rc = store_fail(e, -errno, "%s: fsync: %s", path,
				strerror(errno));
		goto out_drop;
	}
	*out = fd;
	return 0;

out_drop:
	drop_new(s, fd);
	close(fd);
	return rc;
}

int factory_install(const char *image, const char *store, struct store_error *e)
{
	char reply[CONTROL_REPLY_MAX];
	struct stat checked;
	struct store s;
	bool mounted, renamed;
	int imgfd, newfd = -1, rc;

	imgfd = open(image, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (imgfd < 0)
		return store_fail(e, -errno, "%s: %s", image, strerror(errno));
	if (fstat(imgfd, &checked) != 0 || !S_ISREG(checked.st_mode)) {
		rc = store_fail(e, -EINVAL, "%s: not a regular file", image);
		goto out_img;
	}
	/* All of it, before the store is touched. */
	rc = check_image_file(image, PROGRESS_OFF, e);
	if (rc)
		goto out_img;
	rc = store_open(&s, store, true, true, e);
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
		rc = store_ask(&s, "install-factory", reply, sizeof(reply), e);
		if (rc == -EBUSY)
			drop_new(&s, newfd);
	} else {
		rc = store_install_new(s.dirfd, &renamed);
		if (rc && !renamed) {
			store_fail(e, rc, "%s/%s: cannot rename to %s: %s",
				   store, STORE_FACTORY_NEW, STORE_FACTORY,
				   strerror(-rc));
			drop_new(&s, newfd);
		} else if (rc) {
			store_fail(e, rc, "%s: fsync: %s", store,
				   strerror(-rc));
		} else {
			struct watch_change c = {.layer = L_FACTORY,
						 .op = "install-factory",
						 .origin = "dsfsctl"};

			clock_gettime(CLOCK_REALTIME, &c.time);
			watch_offline_tell(store, &c);
		}
	}
	close(newfd);
out_store:
	store_close(&s);
out_img:
	close(imgfd);
	return rc;
}
