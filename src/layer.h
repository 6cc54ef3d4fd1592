/*
 * layer.h - the storage layer interface.
 *
 * A layer is one level of the dsfs stack (ephemeral, runtime, factory, and
 * later a PostgreSQL runtime).  Like SQLite's VFS, a layer is a struct whose
 * first member points at a const, versioned table of operations; each
 * implementation embeds struct dsfs_layer as the first member of its own
 * struct.  The overlay never calls l->ops->x itself: it calls the layer_*()
 * wrappers in layer.c, which are the single place for read-only checks and
 * argument assertions.
 *
 * Keys.  Every entry is named by a key: a tree name followed by the path
 * inside that tree, separated by '/', e.g. "kv/app/counter" or
 * "images/splash".  The tree roots "kv" and "images" are implicit
 * directories that exist in every layer and are never stored; every other
 * directory is an explicit entry.  devices/ID/x is stored as kv/__ID/x: the
 * layer never sees the word "devices".  lookup() of a tree root reports a
 * directory (mode 0755, version 0) and list() lists it; a root cannot be
 * changed: commit -EISDIR, mkdir -EEXIST, remove, whiteout and rename
 * -EBUSY, setattr -EPERM.
 *
 * Entries.  A key holds a file (a value), a directory, or a whiteout.  A
 * whiteout records that the key was removed through the merged view while a
 * lower layer still has it; only the overlay interprets it.  A directory may
 * be "opaque": lower layers' children of that directory are hidden (it was
 * removed and made again through the merged view).
 *
 * Values.  A file's value is stored and returned byte for byte.  If the
 * attribute token is non-empty the value is an image stored as a blob shared
 * by every entry of the layer with the same token (reference counted); read()
 * returns the blob's bytes.
 *
 * Pins.  A reader streaming an image with read_blob() pins its token first
 * (pin_blob) and unpins it when done, so that the blob stays readable while
 * another writer replaces or removes the entries using it.  A blob is
 * deleted when no entry references it and it is not pinned.  Pin counts
 * live in memory only: a blob left unreferenced but pinned by a process
 * that died is deleted at the next read-write open of the store.
 *
 * Errors.  Every operation returns 0 (or a byte count) on success and a
 * negative errno on failure: -ENOENT (no such key, or a parent directory is
 * missing), -EEXIST, -ENOTDIR (a parent is a file), -EISDIR, -ENOTEMPTY,
 * -ENOSPC (the change would exceed the layer's budget: nothing changed),
 * -EROFS (read-only layer), -EIO (the backing store failed; logged).
 *
 * Budget.  A layer's usage is the sum over its entries of the name length
 * plus the value length (an image blob's length is counted once per blob,
 * not per entry).  A blob that no entry references any more but that is
 * pinned stays counted until it is deleted at its last unpin.  A change
 * that would make usage exceed the budget fails with -ENOSPC; changes that
 * shrink usage always succeed.
 *
 * Atomicity.  Each mutating operation is one transaction: it happens
 * completely or not at all, and when it returns on a persistent layer the
 * change survives a crash of the process (not yet a power loss: see sync).
 *
 * Threads.  Every operation may be called from any thread; an implementation
 * serialises access to its own state.
 */
#ifndef DSFS_LAYER_H
#define DSFS_LAYER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define DSFS_LAYER_OPS_VERSION 2

#define DSFS_TYPE_MAX 32  /* "object", "image/png", ... with NUL */
#define DSFS_TOKEN_LEN 64 /* hex SHA-256 */

enum dsfs_kind {
	DSFS_NONE = 0,
	DSFS_FILE = 1,
	DSFS_DIR = 2,
	DSFS_WHITEOUT = 3,
};

/* What a layer knows about one entry. */
struct dsfs_attr {
	enum dsfs_kind kind;
	bool opaque;   /* DSFS_DIR only: hide lower layers' children */
	uint32_t mode; /* permission bits only (07777); the kind gives S_IFMT */
	uint32_t uid;
	uint32_t gid;
	struct timespec atime;
	struct timespec mtime;
	struct timespec ctime;
	uint64_t version; /* set by the layer: strictly increases per layer */
	uint64_t size;	  /* length of the value in bytes (0 for dirs) */
	char type[DSFS_TYPE_MAX]; /* "object", ..., "image/png", "empty" */
	char token[DSFS_TOKEN_LEN + 1]; /* images: content token; else "" */
};

/* Bits for layer_setattr()'s mask. */
#define DSFS_SET_MODE (1u << 0)
#define DSFS_SET_UID (1u << 1)
#define DSFS_SET_GID (1u << 2)
#define DSFS_SET_ATIME (1u << 3)
#define DSFS_SET_MTIME (1u << 4)
#define DSFS_SET_CTIME (1u << 5)

/* Flags for layer_rename(). */
#define DSFS_RENAME_NOREPLACE (1u << 0) /* -EEXIST if `to` exists */
#define DSFS_RENAME_WHITEOUT (1u << 1)	/* leave a whiteout at `from` */

/* Called once per child by list(); a non-zero return stops the listing and
 * is returned by list(). */
typedef int (*dsfs_list_cb)(void *ctx, const char *name,
			    const struct dsfs_attr *a);

struct dsfs_layer;

struct dsfs_layer_ops {
	int version; /* DSFS_LAYER_OPS_VERSION */

	/* Fill *a for key.  -ENOENT if the key has no entry in this layer.
	 * Whiteouts are returned (kind DSFS_WHITEOUT), not hidden. */
	int (*lookup)(struct dsfs_layer *l, const char *key,
		      struct dsfs_attr *a);

	/* Copy up to len bytes of key's value from offset off into buf.
	 * Returns the number of bytes copied (0 at or past the end). */
	ssize_t (*read)(struct dsfs_layer *l, const char *key, uint64_t off,
			void *buf, size_t len);

	/* Same, for the image blob with this token (-ENOENT if the layer holds
	 * no such blob). */
	ssize_t (*read_blob)(struct dsfs_layer *l, const char *token,
			     uint64_t off, void *buf, size_t len);

	/* Create or replace the file at key with the whole value data[0..len).
	 * Uses a->mode, uid, gid, atime, mtime, ctime, type and token; sets
	 * the new version (greater than a->version, which the overlay uses so
	 * that an entry's version keeps increasing when it moves to another
	 * layer) and size itself and returns the stored attributes
	 * in *out if out is not NULL.  Replaces a whiteout or a file; -EISDIR
	 * if key is a directory; the parent must be a tree root or an
	 * existing directory (-ENOENT, -ENOTDIR).  If a->token is non-empty
	 * data is an image blob: stored once per token (if the layer holds
	 * the token already, that blob is kept: the token names its bytes). */
	int (*commit)(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, const void *data, size_t len,
		      struct dsfs_attr *out);

	/* Create the directory key with a->mode, uid, gid, times, opaque.
	 * Replaces a whiteout; -EEXIST if a file or directory is there. */
	int (*mkdir)(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a);

	/* Remove the file, whiteout or directory at key.  A directory must
	 * hold nothing but whiteouts (-ENOTEMPTY otherwise); its whiteouts go
	 * with it. */
	int (*remove)(struct dsfs_layer *l, const char *key);

	/* Make key a whiteout, replacing a file, a whiteout, a directory that
	 * holds only whiteouts (they go), or nothing.  The parent must exist
	 * as for commit. */
	int (*whiteout)(struct dsfs_layer *l, const char *key);

	/* Change the attributes selected by mask (DSFS_SET_*) of a file or
	 * directory; bumps the version.  -ENOENT for a whiteout. */
	int (*setattr)(struct dsfs_layer *l, const char *key,
		       const struct dsfs_attr *a, unsigned mask);

	/* Move the entry at `from` (with its whole subtree if a directory) to
	 * `to`, atomically replacing what is at `to`: a file or whiteout, or
	 * a directory holding only whiteouts when `from` is a directory
	 * (-ENOTEMPTY, -EISDIR, -ENOTDIR as rename(2)).  Flags DSFS_RENAME_*.
	 * -EINVAL if `to` is inside the directory `from`; -ENOENT if `from`
	 * is a whiteout; `from` onto itself changes nothing (-EEXIST with
	 * NOREPLACE).  A whiteout at `to` does not count as existing for
	 * NOREPLACE.  The moved entry gets a new version, its descendants
	 * keep theirs. */
	int (*rename)(struct dsfs_layer *l, const char *from, const char *to,
		      unsigned flags);

	/* Call cb for every child (files, directories and whiteouts) of the
	 * directory dir ("kv", "kv/app", "images"...), in no set order.
	 * -ENOENT if dir does not exist, -ENOTDIR if it is a file.  The
	 * children are copied out first and cb runs without the layer's lock,
	 * so it may call the layer. */
	int (*list)(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		    void *ctx);

	/* Bytes in use and the budget. */
	int (*usage)(struct dsfs_layer *l, uint64_t *used, uint64_t *budget);

	/* Make every change that has returned durable against power loss. */
	int (*sync)(struct dsfs_layer *l);

	/* Remove every entry and every blob that is not pinned (factory
	 * reset), in one transaction.  A pinned blob stays, referenced by
	 * nothing and still counted in usage, until its last unpin.  Versions
	 * keep increasing across it. */
	int (*clear)(struct dsfs_layer *l);

	/* Release everything the layer owns, including l itself.  Pins held
	 * are dropped without deleting anything (see Pins). */
	void (*close)(struct dsfs_layer *l);

	/* Version 2. */

	/* Set *size to the length of the blob with this token and return 0
	 * if the layer holds it (referenced or pinned); -ENOENT otherwise. */
	int (*stat_blob)(struct dsfs_layer *l, const char *token,
			 uint64_t *size);

	/* Keep the blob with this token readable by read_blob() until the
	 * matching unpin_blob(), even if every entry using it is replaced or
	 * removed meanwhile, clear() included.  Pins nest: n pins need n
	 * unpins.  -ENOENT if the layer holds no such blob.  Allowed on a
	 * read-only layer: it changes no stored content. */
	int (*pin_blob)(struct dsfs_layer *l, const char *token);

	/* Drop one pin of token.  At the last one, a blob no entry references
	 * is deleted (in its own transaction on a store; never on a factory
	 * image) and its bytes leave usage.  -ENOENT if the token is not
	 * pinned.  If deleting fails the error is returned but the pin is
	 * dropped all the same; the next read-write open deletes the blob. */
	int (*unpin_blob)(struct dsfs_layer *l, const char *token);
};

struct dsfs_layer {
	const struct dsfs_layer_ops *ops;
	const char *name; /* "ephemeral", "runtime", "factory" */
	bool readonly;
};

/* layer.c: the wrappers the overlay calls (read-only checks live here). */
int layer_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a);
ssize_t layer_read(struct dsfs_layer *l, const char *key, uint64_t off,
		   void *buf, size_t len);
ssize_t layer_read_blob(struct dsfs_layer *l, const char *token, uint64_t off,
			void *buf, size_t len);
int layer_commit(struct dsfs_layer *l, const char *key,
		 const struct dsfs_attr *a, const void *data, size_t len,
		 struct dsfs_attr *out);
int layer_mkdir(struct dsfs_layer *l, const char *key,
		const struct dsfs_attr *a);
int layer_remove(struct dsfs_layer *l, const char *key);
int layer_whiteout(struct dsfs_layer *l, const char *key);
int layer_setattr(struct dsfs_layer *l, const char *key,
		  const struct dsfs_attr *a, unsigned mask);
int layer_rename(struct dsfs_layer *l, const char *from, const char *to,
		 unsigned flags);
int layer_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
	       void *ctx);
int layer_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget);
int layer_sync(struct dsfs_layer *l);
int layer_clear(struct dsfs_layer *l);
void layer_close(struct dsfs_layer *l);
int layer_stat_blob(struct dsfs_layer *l, const char *token, uint64_t *size);
int layer_pin_blob(struct dsfs_layer *l, const char *token);
int layer_unpin_blob(struct dsfs_layer *l, const char *token);

/* layer_mem.c: the ephemeral layer, in memory, lost at unmount. */
int layer_mem_open(uint64_t budget, struct dsfs_layer **out);

/* layer_sqlite.c: a store file.
 *
 * layer_sqlite_open() opens (creating it if `create` and it does not exist)
 * a read-write layer on the SQLite file at path: WAL journal,
 * synchronous=NORMAL, prepared statements.  A file that is not a dsfs store
 * (foreign or damaged SQLite file, or not SQLite at all) is refused with
 * -EINVAL, or -EIO if it cannot be read, and *why is set to a static
 * human-readable reason (or one in a thread-local buffer, valid until the
 * next open on the same thread); the file is left byte for byte untouched.
 * Opening does no work that grows with the number of entries: it deletes
 * the blobs left unreferenced by a process that died while they were
 * pinned (see Pins), through an index of them, in one transaction.
 *
 * layer_sqlite_open_image() opens a factory image read-only (immutable: the
 * file is never written; writes return -EROFS).
 */
int layer_sqlite_open(const char *path, const char *name, uint64_t budget,
		      bool create, struct dsfs_layer **out, const char **why);
int layer_sqlite_open_image(const char *path, const char *name, uint64_t budget,
			    struct dsfs_layer **out, const char **why);

/* Hold `bytes` of disk space in the file path + "-reserve" beside the
 * read-write store l, given back when the disk is too full for a change
 * that frees space (a removal) and taken again when there is room (see
 * "Disk space" in layer_sqlite.c).  -ENOSPC (or another negative errno)
 * if it cannot be allocated now: the layer then runs without one. */
int layer_sqlite_reserve(struct dsfs_layer *l, uint64_t bytes);

/* Keep the database file's lock from the next transaction on, for as long
 * as l is open (SQLite's locking_mode EXCLUSIVE): no other program can
 * read or write the file meanwhile, and each transaction saves the dozen
 * or so fcntl() calls of taking and dropping SQLite's locks.  For the
 * daemon's own store, which nothing else opens while it is mounted. */
int layer_sqlite_exclusive(struct dsfs_layer *l);

/* layer_sqlite_check.c: PRAGMA integrity_check on the store file at path,
 * opened read-only.  Each complaint is passed to report as ("integrity",
 * SQLite's text), and a check that could not run as ("integrity check
 * failed", the reason).  0 if the file is sound; -EINVAL if SQLite
 * complained; -EIO if the check could not run. */
int layer_sqlite_integrity(const char *path,
			   void (*report)(void *ctx, const char *what,
					  const char *detail),
			   void *ctx);

#endif
