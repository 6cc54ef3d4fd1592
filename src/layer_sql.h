/*
 * layer_sql.h - the SQL that the SQLite layer (layer_sqlite_store.c) and
 * the PostgreSQL layer (layer_pg_store.c) share, because their tables of
 * entries have the same columns and both write an entry with the same
 * upsert.  The rest differs (placeholders, types, locking) and stays in
 * each layer.
 */
#ifndef DSFS_LAYER_SQL_H
#define DSFS_LAYER_SQL_H

/* The attribute columns, in the order both layers read them. */
#define LAYER_SQL_ATTR_COLS                                                  \
	"kind, opaque, mode, uid, gid, atime, mtime, ctime, version, size, " \
	"type, token"

/* What an INSERT of an entry does when its (parent, name) exists: every
 * column but the key takes the new row's value. */
#define LAYER_SQL_UPSERT                                                   \
	" ON CONFLICT (parent, name) DO UPDATE SET kind = excluded.kind,"  \
	" opaque = excluded.opaque, mode = excluded.mode,"                 \
	" uid = excluded.uid, gid = excluded.gid, atime = excluded.atime," \
	" mtime = excluded.mtime, ctime = excluded.ctime,"                 \
	" version = excluded.version, size = excluded.size,"               \
	" type = excluded.type, token = excluded.token,"                   \
	" value = excluded.value"

#endif
