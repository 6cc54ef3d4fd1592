/*
 * layer_sqlite_check.c - SQLite's own check of a store file (PRAGMA
 * integrity_check), for dsfsctl check.
 *
 * It sits beside the SQLite layer, and not in dsfsctl, so that SQLite is
 * called from the layer's files only; the daemon has no use for it.
 * layer_sqlite_snapshot() copies a store file as one read transaction
 * sees it; layer_sqlite_copy() copies the daemon's open runtime layer
 * (which holds its file exclusively) while its writers go on, so that
 * check can check a mounted store.
 */
#include <errno.h>
#include <sqlite3.h>
#include <string.h>

#include "layer_sqlite.h"

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

int layer_sqlite_snapshot(const char *src, const char *dst, const char **why)
{
	sqlite3 *from = NULL, *to = NULL;
	sqlite3_backup *b;
	int rc;

	*why = NULL;
	rc = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_open_v2(dst, &to,
				     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
				     NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(from, 5000);
		b = sqlite3_backup_init(to, "main", from, "main");
		if (!b) {
			rc = sqlite3_errcode(to);
		} else {
			/* One step: one read transaction, one snapshot. */
			rc = sqlite3_backup_step(b, -1);
			sqlite3_backup_finish(b);
			if (rc == SQLITE_DONE)
				rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		*why = sqlite3_errstr(rc);
	sqlite3_close(to);
	sqlite3_close(from);
	return rc == SQLITE_OK ? 0 : -EIO;
}

int layer_sqlite_copy(struct dsfs_layer *l, const char *dst, const char **why)
{
	*why = NULL;
	if (l->ops != &sq_ops) {
		*why = "the runtime backend is not SQLite";
		return -EOPNOTSUPP;
	}
	return sq_backup(to_sq(l), dst, why);
}
