/*
 * layer_sqlite_errno.c - a SQLite result code as the errno a user sees.
 *
 * Every failure of the store is converted here, once, so that a full disk
 * is ENOSPC whichever of SQLite's paths noticed it, and the operations
 * speak of errnos only.
 */
#include "layer_sqlite.h"

#include <errno.h>
#include <sqlite3.h>

/*
 * The errno behind an I/O error, if it says the disk is full (ENOSPC or
 * EDQUOT), else 0.  SQLite 3.40 does not record sqlite3_system_errno() for
 * a failure at COMMIT, so look in every place the errno may be: that
 * record, errno as it was right after the failing call (`saved`), and the
 * last errno the unix VFS kept for the database file and for its journal
 * or WAL.  The VFS's record can be older than this failure; taking an old
 * ENOSPC for a new I/O error is the lesser evil.
 */
static int disk_full_errno(sqlite3 *db, int saved)
{
	int cand[4] = {saved, 0, 0, 0};
	sqlite3_file *j = NULL;
	size_t i;

	if (db) {
		cand[1] = sqlite3_system_errno(db);
		sqlite3_file_control(db, "main", SQLITE_FCNTL_LAST_ERRNO,
				     &cand[2]);
		if (sqlite3_file_control(db, "main",
					 SQLITE_FCNTL_JOURNAL_POINTER,
					 &j) == SQLITE_OK &&
		    j && j->pMethods && j->pMethods->xFileControl)
			j->pMethods->xFileControl(j, SQLITE_FCNTL_LAST_ERRNO,
						  &cand[3]);
	}
	for (i = 0; i < sizeof(cand) / sizeof(cand[0]); i++)
		if (cand[i] == ENOSPC || cand[i] == EDQUOT)
			return cand[i];
	return 0;
}

/* Convert a SQLite result to a negative errno, once, here.  A full disk
 * must come out as ENOSPC whatever path SQLite took to notice it: the unix
 * VFS reports a failed write() as SQLITE_FULL, but a failed fsync(), shm
 * growth or truncate as SQLITE_IOERR_* with the errno kept aside.  `saved`
 * is errno right after the failing call. */
int sq_sqlite_errno(sqlite3 *db, int rc, int saved)
{
	int sys;

	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
		sys = disk_full_errno(db, saved);
		return sys ? -sys : -EIO;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_TOOBIG:
		return -EFBIG;
	default: /* CORRUPT, NOTADB, and whatever else: the store failed */
		return -EIO;
	}
}
