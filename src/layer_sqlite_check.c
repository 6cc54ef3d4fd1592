/*
 * layer_sqlite_check.c - SQLite's own check of a store file (PRAGMA
 * integrity_check), for dsfsctl check.
 *
 * It sits beside the SQLite layer, and not in dsfsctl, so that SQLite is
 * called from the layer's files only; the daemon has no use for it.
 */
#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "layer.h"

int layer_sqlite_integrity(const char *path,
			   void (*report)(void *ctx, const char *what,
					  const char *detail),
			   void *ctx)
{
	sqlite3_stmt *st = NULL;
	sqlite3 *db = NULL;
	const char *row;
	int rc, ret = 0;

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
		report(ctx, "integrity", row ? row : "?");
		ret = -EINVAL;
	}
	if (rc != SQLITE_DONE) {
		report(ctx, "integrity check failed",
		       db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
		ret = -EIO;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ret;
}
