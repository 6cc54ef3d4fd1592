/*
 * layer_sqlite_walbuf.c - the store's SQLite files, with each transaction's
 * writes to the WAL gathered into one system call.
 *
 * SQLite appends a frame to the WAL as two writes, its 24-byte header and
 * then its page, so a change that touches five pages costs ten pwrite()
 * calls; on the store's 512-byte pages each call costs more than the bytes
 * it carries.  This VFS is SQLite's default one, except for a WAL file:
 * writes that continue one another are kept in a buffer, and written with
 * one pwrite() when the frame that commits a transaction is complete (its
 * header says so: a commit frame records the database's size), when the
 * buffer is full, and before anything else reaches the file (a read, a
 * sync, a truncation, its size asked, its close).
 *
 * So the WAL file holds, when SQLite's commit returns, exactly what it
 * holds without this VFS, and an error in that write (a full disk, EIO) is
 * the commit's own error, which rolls it back, as before.  Nothing SQLite
 * reads back differs from what it wrote.  Frames written before their
 * commit frame are not in the file until it comes; SQLite's recovery
 * ignores such frames anyway.
 *
 * SQLite finds a VFS by name in a registry of its own, so this one is
 * registered once per process (sq_vfs_name()), its state set once and
 * never changed.  The files themselves are those of whichever VFS is the
 * default when one is opened (the unit tests make a fault-injecting one
 * the default for a while).
 */
#include "layer_sqlite.h"
#include "log.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WALBUF_VFS "dsfs-walbuf"
#define WALBUF_CAP (64 * 1024)
#define FRAME_HEADER 24 /* bytes; 4 to 7 hold the database size */

struct walbuf_file {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, after this struct */
	char *buf;	    /* WALBUF_CAP bytes, or NULL when none held */
	size_t len;
	sqlite3_int64 off; /* where buf[0] goes in the file */
	bool commit_frame; /* the last write was a commit frame's header */
};

/* The default VFS, and this VFS, filled in once by sq_vfs_name(). */
static struct {
	pthread_once_t once;
	sqlite3_vfs vfs;
	int rc;
} walbuf = {PTHREAD_ONCE_INIT};

static size_t real_offset(void)
{
	return (sizeof(struct walbuf_file) + 15) & ~(size_t)15;
}

static struct walbuf_file *wf(sqlite3_file *f)
{
	return (struct walbuf_file *)f;
}

static int flush(struct walbuf_file *f)
{
	size_t len = f->len;

	if (!len)
		return SQLITE_OK;
	f->len = 0;
	return f->real->pMethods->xWrite(f->real, f->buf, (int)len, f->off);
}

static int wb_close(sqlite3_file *file)
{
	struct walbuf_file *f = wf(file);
	int rc = flush(f), rc2 = f->real->pMethods->xClose(f->real);

	free(f->buf);
	f->buf = NULL;
	return rc != SQLITE_OK ? rc : rc2;
}

static int wb_read(sqlite3_file *file, void *p, int amt, sqlite3_int64 off)
{
	struct walbuf_file *f = wf(file);
	int rc = SQLITE_OK;

	if (f->len && off < f->off + (sqlite3_int64)f->len &&
	    off + amt > f->off)
		rc = flush(f);
	return rc != SQLITE_OK ? rc :
				 f->real->pMethods->xRead(f->real, p, amt, off);
}

/* Is this write the header of a frame that commits a transaction? */
static bool commit_header(const void *p, int amt)
{
	const unsigned char *h = p;

	return amt == FRAME_HEADER && (h[4] | h[5] | h[6] | h[7]) != 0;
}

static int wb_write(sqlite3_file *file, const void *p, int amt,
		    sqlite3_int64 off)
{
	struct walbuf_file *f = wf(file);
	bool ends_commit = f->commit_frame;
	int rc;

	f->commit_frame = commit_header(p, amt);
	if (f->len && (off != f->off + (sqlite3_int64)f->len ||
		       f->len + (size_t)amt > WALBUF_CAP)) {
		rc = flush(f);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (!f->buf && (size_t)amt < WALBUF_CAP)
		f->buf = malloc(WALBUF_CAP);
	if (!f->buf || (size_t)amt >= WALBUF_CAP)
		return f->real->pMethods->xWrite(f->real, p, amt, off);
	if (!f->len)
		f->off = off;
	memcpy(f->buf + f->len, p, (size_t)amt);
	f->len += (size_t)amt;
	return ends_commit ? flush(f) : SQLITE_OK;
}

static int wb_truncate(sqlite3_file *file, sqlite3_int64 size)
{
	struct walbuf_file *f = wf(file);
	int rc = flush(f);

	return rc != SQLITE_OK ? rc :
				 f->real->pMethods->xTruncate(f->real, size);
}

static int wb_sync(sqlite3_file *file, int flags)
{
	struct walbuf_file *f = wf(file);
	int rc = flush(f);

	return rc != SQLITE_OK ? rc : f->real->pMethods->xSync(f->real, flags);
}

static int wb_file_size(sqlite3_file *file, sqlite3_int64 *size)
{
	struct walbuf_file *f = wf(file);
	int rc = flush(f);

	return rc != SQLITE_OK ? rc :
				 f->real->pMethods->xFileSize(f->real, size);
}

static int wb_lock(sqlite3_file *file, int level)
{
	return wf(file)->real->pMethods->xLock(wf(file)->real, level);
}

static int wb_unlock(sqlite3_file *file, int level)
{
	return wf(file)->real->pMethods->xUnlock(wf(file)->real, level);
}

static int wb_check_reserved(sqlite3_file *file, int *out)
{
	return wf(file)->real->pMethods->xCheckReservedLock(wf(file)->real,
							    out);
}

static int wb_file_control(sqlite3_file *file, int op, void *arg)
{
	struct walbuf_file *f = wf(file);
	int rc = flush(f);

	return rc != SQLITE_OK ?
		       rc :
		       f->real->pMethods->xFileControl(f->real, op, arg);
}

static int wb_sector_size(sqlite3_file *file)
{
	return wf(file)->real->pMethods->xSectorSize(wf(file)->real);
}

static int wb_device_characteristics(sqlite3_file *file)
{
	return wf(file)->real->pMethods->xDeviceCharacteristics(wf(file)->real);
}

/* Version 1 of sqlite3_io_methods: a WAL file is never mapped into memory
 * nor used for shared memory, which is what versions 2 and 3 add. */
static const sqlite3_io_methods walbuf_methods = {
	.iVersion = 1,
	.xClose = wb_close,
	.xRead = wb_read,
	.xWrite = wb_write,
	.xTruncate = wb_truncate,
	.xSync = wb_sync,
	.xFileSize = wb_file_size,
	.xLock = wb_lock,
	.xUnlock = wb_unlock,
	.xCheckReservedLock = wb_check_reserved,
	.xFileControl = wb_file_control,
	.xSectorSize = wb_sector_size,
	.xDeviceCharacteristics = wb_device_characteristics,
};

/* The default VFS now: the one whose files this VFS's files are. */
static sqlite3_vfs *real_vfs(sqlite3_vfs *vfs)
{
	sqlite3_vfs *real = sqlite3_vfs_find(NULL);

	return real && real != vfs ? real : vfs->pAppData;
}

/* Every file but a WAL is the default VFS's own, opened in place (this
 * VFS's files are at least as large). */
static int wb_open(sqlite3_vfs *vfs, sqlite3_filename name, sqlite3_file *file,
		   int flags, int *out_flags)
{
	sqlite3_vfs *real = real_vfs(vfs);
	struct walbuf_file *f = wf(file);
	int rc;

	if (real_offset() + (size_t)real->szOsFile > (size_t)vfs->szOsFile)
		return SQLITE_CANTOPEN;
	if (!(flags & SQLITE_OPEN_WAL))
		return real->xOpen(real, name, file, flags, out_flags);
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)((char *)file + real_offset());
	rc = real->xOpen(real, name, f->real, flags, out_flags);
	/* pMethods NULL: SQLite calls no xClose for a failed open. */
	f->base.pMethods = rc == SQLITE_OK ? &walbuf_methods : NULL;
	return rc;
}

static int wb_delete(sqlite3_vfs *vfs, const char *name, int sync_dir)
{
	sqlite3_vfs *real = real_vfs(vfs);

	return real->xDelete(real, name, sync_dir);
}

static int wb_access(sqlite3_vfs *vfs, const char *name, int flags, int *out)
{
	sqlite3_vfs *real = real_vfs(vfs);

	return real->xAccess(real, name, flags, out);
}

static int wb_full_pathname(sqlite3_vfs *vfs, const char *name, int n,
			    char *out)
{
	sqlite3_vfs *real = real_vfs(vfs);

	return real->xFullPathname(real, name, n, out);
}

static void setup(void)
{
	sqlite3_vfs *real = sqlite3_vfs_find(NULL);

	if (!real) {
		walbuf.rc = SQLITE_ERROR;
		log_warn("SQLite has no default VFS to gather WAL writes over:"
			 " stores are opened without it");
		return;
	}
	/* The default VFS's table, with the calls that open files ours. */
	walbuf.vfs = *real;
	walbuf.vfs.pNext = NULL;
	walbuf.vfs.zName = WALBUF_VFS;
	walbuf.vfs.pAppData = real;
	walbuf.vfs.szOsFile = (int)real_offset() + real->szOsFile;
	walbuf.vfs.xOpen = wb_open;
	walbuf.vfs.xDelete = wb_delete;
	walbuf.vfs.xAccess = wb_access;
	walbuf.vfs.xFullPathname = wb_full_pathname;
	walbuf.rc = sqlite3_vfs_register(&walbuf.vfs, 0);
	if (walbuf.rc != SQLITE_OK)
		log_warn("cannot register the SQLite VFS %s (%s): stores are"
			 " opened without it",
			 WALBUF_VFS, sqlite3_errstr(walbuf.rc));
}

const char *sq_vfs_name(void)
{
	pthread_once(&walbuf.once, setup);
	return walbuf.rc == SQLITE_OK ? WALBUF_VFS : NULL;
}
