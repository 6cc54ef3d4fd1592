/*
 * faultvfs.c - the fault-injecting SQLite VFS of the unit tests (see
 * faultvfs.h): a copy of the default VFS whose files get a copy of their
 * method table with xWrite, xSync, xTruncate and xRead wrapped.
 */
#include "faultvfs.h"

#include <errno.h>
#include <sqlite3.h>
#include <stddef.h>
#include <string.h>

static sqlite3_vfs *real_vfs;
static sqlite3_vfs fault_vfs;

/* While armed, calls are counted per kind and the fault fires at the
 * fault_n'th call of kind fault->op.  fired says whether it did. */
static bool armed;
static const struct faultvfs_fault *fault;
static long fault_n;
static long calls[FAULTVFS_OPS];
static bool fired;
static int last_errno; /* what xGetLastError reports after a fault */

/* The unix VFS gives files different method tables (only the database is
 * locked, not its journals): each gets a copy with our methods, and the
 * copy remembers its original. */
struct fault_io {
	sqlite3_io_methods m; /* first: the copy SQLite calls */
	const sqlite3_io_methods *real;
};
static struct fault_io fault_io[8];

static const sqlite3_io_methods *real_io(sqlite3_file *f)
{
	return ((const struct fault_io *)f->pMethods)->real;
}

/* Whether this call of kind op fails; counts it. */
static bool hit(enum faultvfs_op op)
{
	if (!armed)
		return false;
	calls[op]++;
	if (!fault || fault->op != op)
		return false;
	if (calls[op] == fault_n || (fault->sticky && calls[op] > fault_n)) {
		fired = true;
		return true;
	}
	return false;
}

/* The armed fault's result, errno set as the failing syscall would. */
static int fail(void)
{
	last_errno = fault->sys;
	errno = fault->sys;
	return fault->rc;
}

static int f_write(sqlite3_file *f, const void *p, int n, sqlite3_int64 off)
{
	if (!hit(FAULTVFS_WRITE))
		return real_io(f)->xWrite(f, p, n, off);
	/* The first call that fails writes half; later ones none. */
	if (fault->short_write && calls[FAULTVFS_WRITE] == fault_n && n > 1)
		real_io(f)->xWrite(f, p, n / 2, off);
	return fail();
}

static int f_sync(sqlite3_file *f, int flags)
{
	if (!hit(FAULTVFS_SYNC))
		return real_io(f)->xSync(f, flags);
	return fail();
}

static int f_truncate(sqlite3_file *f, sqlite3_int64 size)
{
	if (!hit(FAULTVFS_TRUNCATE))
		return real_io(f)->xTruncate(f, size);
	return fail();
}

static int f_read(sqlite3_file *f, void *p, int n, sqlite3_int64 off)
{
	if (!hit(FAULTVFS_READ))
		return real_io(f)->xRead(f, p, n, off);
	return fail();
}

static int f_open(sqlite3_vfs *vfs, const char *name, sqlite3_file *f,
		  int flags, int *out)
{
	size_t i;
	int rc;

	(void)vfs;
	rc = real_vfs->xOpen(real_vfs, name, f, flags, out);
	if (rc != SQLITE_OK || !f->pMethods)
		return rc;
	for (i = 0; i < sizeof(fault_io) / sizeof(fault_io[0]); i++) {
		if (!fault_io[i].real) {
			fault_io[i].real = f->pMethods;
			fault_io[i].m = *f->pMethods;
			fault_io[i].m.xWrite = f_write;
			fault_io[i].m.xSync = f_sync;
			fault_io[i].m.xTruncate = f_truncate;
			fault_io[i].m.xRead = f_read;
		}
		if (fault_io[i].real == f->pMethods) {
			f->pMethods = &fault_io[i].m;
			break;
		}
	}
	return rc;
}

static int f_last_error(sqlite3_vfs *vfs, int n, char *buf)
{
	(void)vfs;
	if (armed && fired)
		return last_errno;
	return real_vfs->xGetLastError(real_vfs, n, buf);
}

void faultvfs_use(bool faulty)
{
	if (!real_vfs) {
		real_vfs = sqlite3_vfs_find(NULL);
		fault_vfs = *real_vfs;
		fault_vfs.zName = "dsfs-fault";
		fault_vfs.xOpen = f_open;
		fault_vfs.xGetLastError = f_last_error;
	}
	sqlite3_vfs_register(faulty ? &fault_vfs : real_vfs, 1);
}

void faultvfs_remove(void)
{
	if (!real_vfs)
		return;
	sqlite3_vfs_unregister(&fault_vfs);
	sqlite3_vfs_register(real_vfs, 1);
}

void faultvfs_arm(const struct faultvfs_fault *f, long n)
{
	memset(calls, 0, sizeof(calls));
	fault = f;
	fault_n = n;
	fired = false;
	armed = true;
}

void faultvfs_disarm(void)
{
	armed = false;
	fault = NULL;
}

bool faultvfs_fired(void)
{
	return fired;
}

long faultvfs_calls(enum faultvfs_op op)
{
	return calls[op];
}
