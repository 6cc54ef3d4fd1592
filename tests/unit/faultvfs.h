/*
 * faultvfs.h - a SQLite VFS over the default (unix) one that passes every
 * call through, except the ones it is told to fail: the test programs'
 * stand-in for a disk that errs or fills up (test_faults.c, test_layer.c).
 *
 * A fault names a kind of call (xWrite, xSync, xTruncate, xRead), the
 * SQLite code the failing call returns and the errno it leaves, which is
 * also what xGetLastError reports afterwards: SQLite's unix VFS reports a
 * full disk as SQLITE_FULL from write(), but as SQLITE_IOERR_* with errno
 * ENOSPC from fsync(), fallocate() and WAL/shm growth, and the layer must
 * tell them apart by that errno.  Armed with a fault and a number N, the
 * shim counts the calls of each kind and fails the Nth of the fault's kind
 * (and, if sticky, every one after it).
 *
 * One shim per program: its state is global, as SQLite's VFS list is.
 */
#ifndef DSFS_TEST_FAULTVFS_H
#define DSFS_TEST_FAULTVFS_H

#include <stdbool.h>

enum faultvfs_op {
	FAULTVFS_WRITE,
	FAULTVFS_SYNC,
	FAULTVFS_TRUNCATE,
	FAULTVFS_READ,
	FAULTVFS_OPS
};

struct faultvfs_fault {
	enum faultvfs_op op;
	int rc;	     /* what the failing call returns to SQLite */
	int sys;     /* the errno it leaves (0: none) */
	bool sticky; /* every call of the kind from the Nth on fails */
	/* A failing xWrite first writes half its bytes, as a short write(2)
	 * does before the disk is full (the Nth call only). */
	bool short_write;
};

/* New connections use the fault VFS (faulty) or the real one: whichever
 * is made SQLite's default.  The first call registers the fault VFS. */
void faultvfs_use(bool faulty);
/* Unregisters the fault VFS; the real one is the default again. */
void faultvfs_remove(void);

/* Counts the calls of each kind from now on and fails the nth call of
 * f->op (from 1) as f says; f NULL only counts. */
void faultvfs_arm(const struct faultvfs_fault *f, long n);
void faultvfs_disarm(void);
/* Whether the armed fault fired; the calls of kind op since faultvfs_arm(). */
bool faultvfs_fired(void);
long faultvfs_calls(enum faultvfs_op op);

#endif
