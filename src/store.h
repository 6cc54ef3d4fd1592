/*
 * store.h - a store directory, as the daemon (main.c, control.c) and
 * dsfsctl both handle it: making and opening the directory, taking
 * STORE/lock, opening the layers of its files (the names are in dsfs.h),
 * and putting a new factory image in place.
 *
 * One daemon or one offline dsfsctl has a store at a time: whoever holds
 * STORE/lock (flock).  Files are replaced by temp file -> fsync -> rename
 * -> fsync of the directory, so a crash leaves either the old file or the
 * new one; STORE/factory.db.new is the temp file of an install, and one
 * left behind by a crash is removed by the next daemon that takes the
 * lock.
 *
 * It lives in the core library (no libfuse), so that both programs go
 * through the same code.  Each function returns 0 or a negative errno; on
 * failure e->text holds one line naming the file and the reason.
 */
#ifndef DSFS_STORE_H
#define DSFS_STORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

#include "dsfs.h"

/* Why a store operation (or a dsfsctl command) failed: the first failure's
 * message, since the innermost function knows the path best. */
struct store_error {
	char text[1024];
};

/* Record the message (unless one is there already) and return rc. */
int store_fail(struct store_error *e, int rc, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* An open store directory.  store_open() fills it; store_close() closes
 * what it holds. */
struct store {
	const char *path; /* as given: messages name it */
	int dirfd;	  /* the directory, readable: for fsync() */
	int lockfd;	  /* STORE/lock once store_lock() took it, or -1 */
	struct stat st;	  /* the directory's: its owner owns the store */
};

/* Make the store directory path (0700) unless it is there. */
int store_make(const char *path, struct store_error *e);

/* Open the store directory path, making it first if create.  With mine,
 * refuse (-EPERM) a store that is neither the caller's nor is the caller
 * root: dsfsctl changes only its own stores. */
int store_open(struct store *s, const char *path, bool create, bool mine,
	       struct store_error *e);
void store_close(struct store *s);

/* Take STORE/lock: 0 when this process now has the store to itself
 * (s->lockfd holds it until store_close()), -EWOULDBLOCK, with e left
 * as it was, when a daemon or another dsfsctl has it. */
int store_lock(struct store *s, struct store_error *e);

/* Give the file fd, STORE/name, to the store's owner when root made it:
 * the daemon, run by that user, could not open it otherwise. */
int store_give_to_owner(const struct store *s, int fd, const char *name,
			struct store_error *e);

/* "STORE/name", allocated; NULL if out of memory. */
char *store_file(const char *store, const char *name);

/*
 * Open the layer on the store file STORE/name with budget: read-write for
 * STORE_RUNTIME (made first if create; or the runtime STORE/runtime.uri
 * records, for which -ENOENT means "memory": nothing kept), a read-only
 * factory image for any other name.  -ENOENT, with e left as it was, if the file is absent and
 * not to be made.  Otherwise a failure leaves "PATH: WHY" in e, or
 * "PATH: doing: WHY" when doing is given.
 */
int store_open_layer(const char *store, const char *name, uint64_t budget,
		     bool create, const char *doing, struct dsfs_layer **out,
		     struct store_error *e);

/*
 * The runtime layer's backend, as -o runtime= names it: "sqlite" (or
 * NULL: the default, STORE/runtime.db), "memory" (gone at unmount), or a
 * PostgreSQL conninfo (a postgresql:// URI or key=value words).
 *
 * store_check_runtime() refuses (-EINVAL, e set) a value that is none of
 * these.  store_open_runtime() opens it, the SQLite file as
 * store_open_layer() does; flags are layer_pg_open()'s (a shared runtime
 * keeps the budget the store records unless LAYER_PG_SET_BUDGET).  store_record_runtime() writes what the daemon
 * was given to STORE/runtime.uri, the password left out, so that dsfsctl
 * finds the same runtime when the store is not mounted (it removes the
 * file for sqlite); store_open_layer() of STORE_RUNTIME follows it.
 */
#define STORE_RUNTIME_URI "runtime.uri"
int store_check_runtime(const char *runtime, struct store_error *e);
int store_open_runtime(const char *store, const char *runtime, uint64_t budget,
		       unsigned flags, const char *doing,
		       struct dsfs_layer **out, struct store_error *e);
int store_record_runtime(const struct store *s, const char *runtime,
			 struct store_error *e);
/* What STORE/runtime.uri records, allocated; NULL without one (sqlite). */
char *store_recorded_runtime(const char *store);

/* Remove STORE/factory.db.new: an install that crashed before its rename
 * left it behind, and the old image is still whole.  Only for the holder
 * of STORE/lock. */
void store_drop_leftover(const struct store *s);

/* The last steps of an install, once STORE/factory.db.new is written and
 * fsynced: rename it to STORE/factory.db, then fsync the directory dirfd.
 * *renamed says whether factory.db is the new image now (the fsync may
 * still have failed). */
int store_install_new(int dirfd, bool *renamed);

/*
 * The daemon's half of an install: open STORE/factory.db.new as an image
 * with budget (a file that is not one is refused and removed, and
 * factory.db stays), then store_install_new().  *fresh is the new layer
 * whenever factory.db is the new image, even if the directory's fsync
 * failed and rc says so; NULL otherwise.
 */
int store_take_new_factory(const char *store, uint64_t budget,
			   struct dsfs_layer **fresh, struct store_error *e);

/* fsync the file or (flags O_DIRECTORY) directory at path. */
int store_fsync_path(const char *path, int flags);
/* fsync the directory that holds path. */
int store_fsync_dir_of(const char *path);

#endif
