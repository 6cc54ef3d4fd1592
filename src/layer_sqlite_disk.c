/*
 * layer_sqlite_disk.c - the disk under a read-write store: how big its
 * write-ahead log and its space reserve may be, the reserve itself, and
 * whether a change still fits on the filesystem.
 *
 * Everything here is sized from the filesystem the store is on (statvfs),
 * so that the same rules hold on a 1 MiB flash partition and on a large
 * disk.  With F the filesystem's size and P the database's page size:
 *
 *   W, the WAL's limit   F / 32, at least 16 pages, at most 1 MiB.  The
 *                        WAL is checkpointed once it holds W of pages
 *                        (wal_autocheckpoint), and cut back to 2 W when it
 *                        starts over (journal_size_limit), so the space it
 *                        took is used again instead of given back and
 *                        asked for anew.
 *   R, the reserve       2 W + 16 pages, at most the size the caller asks
 *                        for (2 MiB, STORE_RESERVE_BYTES).
 *
 * A change that adds n bytes of values is refused with ENOSPC unless the
 * filesystem has room for both what the database file will grow by (n,
 * plus what the WAL already holds beyond the file's end, plus 8 pages,
 * less the database's free pages) and what the WAL file must grow by to
 * hold W + n.  What a store reports as its budget (statfs, dsfsctl usage)
 * is what is used plus the largest n that rule allows, when that is less
 * than the budget set by the mount.
 *
 * SQLite needs disk space to delete: a removal appends its pages to the
 * WAL, and the checkpoint that lets the WAL start over copies into the
 * database the pages that earlier commits added, which grows it.  On a
 * disk filled by the store's own values neither can happen, and nothing
 * could be removed to make room.  So the daemon holds the reserve, a file
 * beside the store (path + "-reserve") whose blocks are allocated
 * (layer_sqlite_reserve()).  A change other than a commit or a mkdir that
 * fails for want of space gives the reserve back to the filesystem and is
 * tried once more: it then has room for its WAL pages and for the
 * checkpoint, which W keeps well under R.
 *
 * While the reserve is out (or could not be taken at all), a commit must
 * fit in the pages the database file already has free (what removals gave
 * back), so that the database does not grow into the room the reserve
 * left, checkpoints never need new space, and the WAL reuses the blocks
 * it has: removing stays possible.  Every successful change tries, at
 * most once a second, to take the reserve again, which succeeds once the
 * filesystem has room for it.
 *
 * Measuring costs a statvfs, two stats and two PRAGMAs, and a file's create
 * and close ask several times.  While the filesystem has plenty of room
 * (DISK_PLENTY beyond what is asked, less all that this layer's changes
 * may have taken since: each counts its values twice, for the WAL and the
 * database file, and its headroom pages), an answer is given from the
 * last measurement for up to DISK_SEEN_NS; near full, every question
 * measures.  Another program filling the filesystem can race a fresh
 * measurement as well as a kept one: SQLite's own disk-full error, handled
 * above, is what decides in the end, and it forgets the measurement.
 */
#include "layer_sqlite.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define WAL_MIN_PAGES 16
#define WAL_MAX_BYTES (1u << 20)
#define RESERVE_EXTRA_PAGES 16
#define HEADROOM_PAGES 8 /* b-tree and index pages a change may add */
#define RESERVE_RETRY_SEC 1
#define DISK_PLENTY (64ULL << 20)
#define DISK_SEEN_NS 250000000LL

/* Size of the filesystem holding path, and what is free on it for an
 * unprivileged writer; 0 or a negative errno. */
static int fs_space(const char *path, uint64_t *size, uint64_t *avail)
{
	struct statvfs sv;

	*size = *avail = 0;
	if (statvfs(path, &sv) < 0)
		return -errno;
	*size = (uint64_t)sv.f_blocks * sv.f_frsize;
	*avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	return 0;
}

/* Bytes allocated to path + suffix, 0 if it does not exist. */
static uint64_t side_blocks(const char *path, const char *suffix)
{
	char name[PATH_MAX];
	struct stat st;

	if (snprintf(name, sizeof(name), "%s%s", path, suffix) >=
		    (int)sizeof(name) ||
	    stat(name, &st) < 0)
		return 0;
	return (uint64_t)st.st_blocks * 512;
}

int sq_disk_plan(struct sq_layer *s)
{
	uint64_t size = 0, avail = 0, wal;
	int64_t psize = 0;
	char sql[128];
	int rc;

	rc = sq_db_query1(s->db, "PRAGMA page_size", &psize, NULL, 0);
	if (rc != 0 || psize < 512)
		return rc != 0 ? sq_db_errno(s->db, rc, errno) : -EIO;
	s->psize = (uint64_t)psize;
	/* A filesystem that cannot say its size gets the large-disk rule. */
	if (fs_space(s->path, &size, &avail) != 0 || size == 0)
		size = UINT64_MAX;
	wal = size / 32 < WAL_MAX_BYTES ? size / 32 : WAL_MAX_BYTES;
	if (wal < WAL_MIN_PAGES * s->psize)
		wal = WAL_MIN_PAGES * s->psize;
	s->wal_bytes = wal / s->psize * s->psize;
	snprintf(sql, sizeof(sql),
		 "PRAGMA wal_autocheckpoint = %llu;"
		 "PRAGMA journal_size_limit = %llu;",
		 (unsigned long long)(s->wal_bytes / s->psize),
		 2 * (unsigned long long)s->wal_bytes);
	rc = sq_db_exec(s->db, sql);
	return rc != 0 ? sq_db_errno(s->db, rc, errno) : 0;
}

/* Bytes of WAL that n bytes of pages take (a 24-byte header a frame). */
static uint64_t wal_of(const struct sq_layer *s, uint64_t n)
{
	return (n + s->psize - 1) / s->psize * (s->psize + 24) + 32;
}

/* What the filesystem and the database have, in bytes. */
struct disk {
	uint64_t avail;	  /* free on the filesystem */
	uint64_t freed;	  /* the database's free pages */
	uint64_t pending; /* pages in the WAL beyond the database file's end */
	uint64_t wal;	  /* allocated to the WAL file */
};

/* Forget the last measurement: the next question measures. */
void sq_disk_forget(struct sq_layer *s)
{
	s->seen_at.tv_sec = s->seen_at.tv_nsec = 0;
}

/* Free space that the last measurement, less what was taken since, still
 * vouches for (0: measure). */
static uint64_t disk_seen(const struct sq_layer *s)
{
	struct timespec now;
	int64_t age;

	if (!s->seen_at.tv_sec && !s->seen_at.tv_nsec)
		return 0;
	clock_gettime(CLOCK_MONOTONIC, &now);
	age = (int64_t)(now.tv_sec - s->seen_at.tv_sec) * 1000000000LL +
	      (now.tv_nsec - s->seen_at.tv_nsec);
	if (age < 0 || age > DISK_SEEN_NS || s->seen_avail <= s->seen_spent)
		return 0;
	return s->seen_avail - s->seen_spent;
}

/* Would n more bytes fit by the last measurement alone?  If so, they are
 * counted as taken from it. */
static bool disk_plenty(struct sq_layer *s, uint64_t n)
{
	uint64_t take = 2 * wal_of(s, n) + HEADROOM_PAGES * s->psize;
	uint64_t seen = disk_seen(s);

	if (s->reserve_out || seen < DISK_PLENTY || seen - DISK_PLENTY < take)
		return false;
	s->seen_spent += take;
	return true;
}

/* 0 or a negative errno (nothing known: let SQLite find out). */
static int disk_get(struct sq_layer *s, struct disk *d)
{
	int64_t pages = 0, freed = 0;
	uint64_t size, file;

	memset(d, 0, sizeof(*d));
	sq_disk_forget(s);
	if (fs_space(s->path, &size, &d->avail) != 0)
		return -EIO;
	if (sq_db_query1(s->db, "PRAGMA page_count", &pages, NULL, 0) != 0 ||
	    sq_db_query1(s->db, "PRAGMA freelist_count", &freed, NULL, 0) != 0)
		return -EIO;
	file = side_blocks(s->path, "");
	d->freed = freed > 0 ? (uint64_t)freed * s->psize : 0;
	d->pending = (uint64_t)pages * s->psize > file ?
			     (uint64_t)pages * s->psize - file :
			     0;
	d->wal = side_blocks(s->path, "-wal");
	clock_gettime(CLOCK_MONOTONIC, &s->seen_at);
	s->seen_avail = d->avail;
	s->seen_spent = 0;
	return 0;
}

/*
 * Would n more bytes of values fit?  The database grows by what its free
 * pages cannot hold, plus what the WAL already holds beyond its end (the
 * next checkpoint's growth), plus HEADROOM_PAGES; the WAL must be able to
 * reach W + n, the most it holds before a checkpoint lets it start over.
 * While the reserve is out, the database must not grow at all.
 */
static bool disk_fits(const struct sq_layer *s, const struct disk *d,
		      uint64_t n)
{
	uint64_t db = d->pending + n + HEADROOM_PAGES * s->psize;
	uint64_t wal = wal_of(s, s->wal_bytes + n);

	db = db > d->freed ? db - d->freed : 0;
	wal = wal > d->wal ? wal - d->wal : 0;
	if (s->reserve_out && db)
		return false;
	return db <= d->avail && wal <= d->avail - db;
}

int sq_disk_room_for(struct sq_layer *s, uint64_t bytes)
{
	struct disk d;

	if (disk_plenty(s, bytes))
		return 0;
	if (disk_get(s, &d) != 0)
		return 0; /* SQLite finds out for sure */
	return disk_fits(s, &d, bytes) ? 0 : -ENOSPC;
}

int sq_disk_room(struct tx *t, uint64_t bytes)
{
	return sq_disk_room_for(t->s, bytes);
}

/* What values made of small changes could still add: the rule above for
 * one change the size of a page, all of whose room goes to the
 * database.  One large change fits about half of it, as it needs its
 * size in the WAL too. */
uint64_t sq_disk_fits(struct sq_layer *s)
{
	uint64_t wal, db, head, seen;
	struct disk d;

	if (s->base.readonly)
		return UINT64_MAX;
	/* Plenty: the most a measurement could add to it, less a WAL's worth
	 * for what the WAL holds beyond the database's end. */
	seen = disk_seen(s);
	if (!s->reserve_out && seen >= DISK_PLENTY)
		return seen - 2 * wal_of(s, s->wal_bytes + s->psize) -
		       HEADROOM_PAGES * s->psize;
	if (disk_get(s, &d) != 0)
		return UINT64_MAX;
	wal = wal_of(s, s->wal_bytes + s->psize);
	wal = wal > d.wal ? wal - d.wal : 0;
	/* A WAL that needs no more room leaves the free pages usable even
	 * on a filesystem with nothing left (disk_fits() agrees). */
	if (wal > d.avail)
		return 0;
	db = s->reserve_out ? d.freed : d.avail - wal + d.freed;
	head = d.pending + HEADROOM_PAGES * s->psize;
	return db > head ? db - head : 0;
}

/* ---- the reserve --------------------------------------------------- */

/* Allocate the reserve file's blocks; 0 or a negative errno, and on
 * failure the file is emptied again. */
static int reserve_fill(int fd, uint64_t bytes)
{
	int err = posix_fallocate(fd, 0, (off_t)bytes);

	if (err) {
		if (ftruncate(fd, 0) < 0)
			err = errno;
		return -err;
	}
	return 0;
}

/* Give the reserve back so that `what` can be tried again; false if
 * there is none to give, or `what` adds values (commit, mkdir). */
bool sq_reserve_give(struct sq_layer *s, const char *what)
{
	struct timespec now;

	if (s->reserve_fd < 0 || s->reserve_out ||
	    strcmp(what, "commit") == 0 || strcmp(what, "mkdir") == 0)
		return false;
	if (ftruncate(s->reserve_fd, 0) < 0) {
		log_err("%s: cannot release the space reserve: %s", s->path,
			strerror(errno));
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	sq_disk_forget(s);
	s->reserve_out = true;
	s->reserve_try = now.tv_sec;
	log_warn("%s: disk full: space reserve (%llu bytes) released for %s",
		 s->path, (unsigned long long)s->reserve, what);
	return true;
}

void sq_reserve_retake(struct sq_layer *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec - s->reserve_try < RESERVE_RETRY_SEC)
		return;
	s->reserve_try = now.tv_sec;
	if (reserve_fill(s->reserve_fd, s->reserve) == 0) {
		s->reserve_out = false;
		sq_disk_forget(s);
		log_info("%s: space reserve taken again", s->path);
	}
}

int layer_sqlite_reserve(struct dsfs_layer *l, uint64_t bytes)
{
	struct sq_layer *s = to_sq(l);
	struct timespec now;
	char path[PATH_MAX];
	uint64_t want;
	int fd, rc;

	if (s->base.readonly || s->reserve_fd >= 0 || !bytes)
		return -EINVAL;
	if (snprintf(path, sizeof(path), "%s-reserve", s->path) >=
	    (int)sizeof(path))
		return -ENAMETOOLONG;
	want = 2 * s->wal_bytes + RESERVE_EXTRA_PAGES * s->psize;
	if (want > bytes)
		want = bytes;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	rc = reserve_fill(fd, want);
	if (rc && rc != -ENOSPC) {
		close(fd);
		return rc;
	}
	/* A disk too full for the reserve now: the store runs as if it had
	 * been given back, and takes it once there is room. */
	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&s->lock);
	s->reserve_fd = fd;
	s->reserve = want;
	s->reserve_out = rc != 0;
	s->reserve_try = now.tv_sec;
	pthread_mutex_unlock(&s->lock);
	return rc;
}
