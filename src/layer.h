/*
 * layer.h - the storage layer contract: what every layer stores, how each
 * operation behaves, and what layer.c already does for an implementation.
 *
 * A layer is one level of the dsfs stack (ephemeral, runtime, factory, and
 * later a PostgreSQL runtime).  Like SQLite's VFS, a layer is a struct whose
 * first member points at a const, versioned table of operations; each
 * implementation embeds struct dsfs_layer as the first member of its own
 * struct and fills in ops, name and readonly.  The overlay never calls
 * l->ops->x itself: it calls the layer_*() wrappers in layer.c.  A new
 * layer needs this header only; layer_mem.c is the smallest example.
 *
 * Keys.  Every entry is named by a key: a tree name followed by the path
 * inside that tree, separated by '/', e.g. "kv/app/counter" or
 * "images/splash".  A key is never empty, never starts or ends with '/'
 * and never holds "//"; its components are names dsfs has checked (no
 * NUL, no '/', not "." or "..").  Its parent is the key up to its last
 * '/' ("kv/app" for "kv/app/counter"); layer_split_key() cuts it.  Keys
 * are compared byte for byte.  devices/ID/x is stored as kv/__ID/x: the
 * layer never sees the word "devices".
 *
 * Tree roots.  "kv" and "images" are implicit directories that exist in
 * every layer and are never stored (layer_is_root()).  The wrappers answer
 * lookup() of a root (a directory, mode 0755, version 0, everything else
 * zero: layer_root_attr()) and refuse every change to one: commit
 * -EISDIR, mkdir -EEXIST, remove, whiteout and rename (from or to) -EBUSY,
 * setattr -EPERM.  An implementation still meets the roots as parents
 * (commit of "kv/x" needs the parent "kv", which always exists), in
 * list("kv") and in read("kv") (-EISDIR).  A key with no '/' that is not a
 * root has no parent: an implementation answers -EINVAL (commit, mkdir,
 * whiteout, rename's `to`) or -ENOENT (lookup, read, remove, setattr,
 * rename's `from`).
 *
 * Entries.  A key holds a file (a value), a directory, or a whiteout.  A
 * whiteout records that the key was removed through the merged view while
 * a lower layer still has it; only the overlay interprets it, and a layer
 * stores it like any entry (its name counts in the budget).  A directory
 * may be "opaque": lower layers' children of that directory are hidden (it
 * was removed and made again through the merged view).  Every entry but a
 * root has a parent entry in the same layer that is a directory, or a root:
 * the operations below keep that true.
 *
 * Attributes (struct dsfs_attr).  What a caller passes and what is stored
 * differ: a layer stores mode & 07777, uid, gid, the three times (with
 * nanoseconds), opaque (directories), type and token (files), and sets
 * kind, size and version itself; a whiteout stores only its kind and
 * version.  layer_file_attr(), layer_dir_attr() and layer_whiteout_attr()
 * build exactly that.  lookup() and list() report the attributes as
 * stored; type and token are NUL-terminated, "" when unset.
 *
 * Versions.  Every change sets the version of the entry it makes or
 * changes to a number greater than every version the layer has handed out
 * before, whichever process or host handed it out, and never reuses one,
 * not even after clear().  commit() also raises the counter to the
 * caller's a->version first (layer_version_floor()), so that an entry
 * copied up from a lower layer keeps increasing.  The overlay's caches
 * take an unchanged version for unchanged content.
 *
 * Values.  A file's value is stored and returned byte for byte, of any
 * length from 0 up.  If the attribute token is non-empty the value is an
 * image stored as a blob shared by every entry of the layer with the same
 * token (reference counted); read() returns the blob's bytes.  A token
 * names its bytes: committing a token the layer already holds keeps the
 * stored blob and ignores the data passed.
 *
 * Pins.  A reader streaming an image with read_blob() pins its token first
 * (pin_blob) and unpins it when done, so that the blob stays readable while
 * another writer replaces or removes the entries using it.  A blob is
 * deleted when no entry references it and it is not pinned.  Pin counts
 * belong to the opened layer (the process): a blob left unreferenced but
 * pinned by a process that died is deleted at the next read-write open of
 * the store.  A layer whose store several processes or hosts write at once
 * must make sure none of them deletes a blob another has pinned (the
 * SQLite store has one writing daemon at a time; a shared database would
 * keep pins, with an owner that can expire, in the database).
 *
 * Errors.  Every operation returns 0 (or a byte count) on success and a
 * negative errno on failure, never a foreign code: -ENOENT (no such key,
 * or a parent directory is missing or a whiteout), -EEXIST, -ENOTDIR (a
 * parent is a file), -EISDIR, -ENOTEMPTY, -EINVAL, -EBUSY, -ENOSPC (the
 * change would exceed the layer's budget, or the backing store is out of
 * space: nothing changed), -EROFS (read-only layer), -ENOMEM, -EIO (the
 * backing store failed; the implementation logs why, once, with the key).
 * A failed operation has changed nothing.  Each operation below lists the
 * errors its rules produce; -ENOMEM and -EIO may come from any of them.
 *
 * Budget.  A layer's usage is the sum over its entries (whiteouts and
 * directories included) of the length in bytes of the last component of
 * the key plus the value length (an image blob's length is counted once
 * per blob, not per entry).  A blob that no entry references any more but
 * that is pinned stays counted until it is deleted at its last unpin.  A
 * change that would make usage exceed the budget fails with -ENOSPC;
 * changes that do not grow usage always succeed, even over budget
 * (layer_fits() decides).  Replacing an entry counts what it frees: a
 * commit over a file of the same size grows nothing.
 *
 * Directory times.  An operation that makes, removes or renames a name
 * (create, a commit where no file was, mkdir, remove, whiteout, rename)
 * sets the mtime and ctime of the directory holding it (both directories
 * for a rename) to the time of the change, with a new version, in the
 * same transaction, as a local filesystem does; a directory that is a
 * tree root is not stored, so its times are the caller's to keep.  A
 * commit over a file, setattr, clear and apply() leave directories' times
 * alone (apply()'s change set states every attribute it wants).  Setting
 * them with a separate setattr() would cost a second transaction, and on
 * a database server a second wait for its log to reach the disk.
 *
 * Atomicity and durability.  Each mutating operation is one transaction:
 * it happens completely or not at all, and others see either all of it or
 * none of it.  When it returns on a persistent layer the change survives a
 * crash of the process; sync() makes every change that has returned
 * survive a power loss too.  Reads see every change that has returned.
 * On a layer whose backing store promises more (a database server that
 * makes each commit durable before it answers, layer_pg_open()), every
 * operation keeps that promise except create(), which need not: see there.
 *
 * Threads.  Every operation may be called from any thread, concurrently
 * with any other on the same layer except close(); an implementation
 * serialises access to its own state.  list() runs its callback without
 * holding anything of the layer, so the callback may call the layer.
 * close() is called once, when no other call is in flight.
 *
 * What the wrappers (layer.c) do, so that an implementation need not:
 * assert that l speaks DSFS_LAYER_OPS_VERSION, that keys are well formed
 * (as above), that pointers are not NULL where data is expected, that
 * mask and flags hold only DSFS_SET_* and DSFS_RENAME_* bits and that a
 * token is non-empty (and at most DSFS_TOKEN_LEN for stat_blob, pin_blob,
 * unpin_blob); refuse commit, mkdir, remove, whiteout, setattr, rename
 * and clear on a read-only layer with -EROFS; refuse changes to the tree
 * roots and answer their lookup (see Tree roots); answer take_file() with
 * -ENOENT where remove() would be refused, or the layer has no such
 * shortcut (takes_files), so that the caller falls back to remove();
 * compute the token of an a->hash_token image for a layer that does not
 * (hashes_images); ignore close(NULL).  An
 * implementation is still free to check again (the SQLite layer refuses
 * writes to an image itself, for a caller that reaches l->ops directly).
 *
 * What an implementation must do: store, for every op, exactly what its
 * comment below says, with the errors in the order given, as one
 * transaction; keep usage (Budget) and the version counter (Versions) in
 * that same transaction; count pins (Pins); and convert every failure of
 * its backing store to a negative errno once, where it happens.
 */
#ifndef DSFS_LAYER_H
#define DSFS_LAYER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define DSFS_LAYER_OPS_VERSION 9

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
	/* Asked of create(), mkdir() and commit() (by a create over a
	 * file that the merged view hides), never stored: if the
	 * directory that will hold the entry, in this layer, has the
	 * set-group-ID bit, the entry takes that directory's group instead
	 * of gid, and a new directory the bit too, as open(2) and mkdir(2)
	 * do on Linux (layer_inherit_group()).  The layer reads that
	 * directory in the same change, so no caller has to look it up
	 * first: on a database server, that is a round trip saved. */
	bool inherit_group;
	/* Asked of create(), never stored: the caller's commit of a value
	 * at key replaces whatever key then holds (open(2) with O_TRUNC and
	 * without O_EXCL), so the store's other users need not see the name
	 * before that commit.  create() may then make the name with that
	 * commit (see there). */
	bool replaces;
	/* Asked of commit() and replace(), never stored: data is an image
	 * (len > 0) whose token is layer_image_token(data, len), to be
	 * computed rather than given; a->token is ignored, and out, which
	 * is not NULL, gets the token with the rest.  A layer that sets
	 * hashes_images (struct dsfs_layer) computes it in commit() after
	 * it has started writing the bytes, so that the hashing overlaps
	 * the disk's work; for any other layer, layer_commit() computes it
	 * before calling commit(), and layer_replace() answers -ENOENT (the
	 * shortcut is for small values). */
	bool hash_token;
};

/* One change of a change set (layer_apply()). */
enum layer_change_op {
	LAYER_CH_COMMIT,   /* commit(key, attr, data, len) */
	LAYER_CH_MKDIR,	   /* mkdir(key, attr) */
	LAYER_CH_REMOVE,   /* remove(key) */
	LAYER_CH_WHITEOUT, /* whiteout(key) */
};
struct layer_change {
	enum layer_change_op op;
	const char *key;
	struct dsfs_attr attr;
	const void *data;
	size_t len;
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
	 * Whiteouts are returned (kind DSFS_WHITEOUT), not hidden.  Never
	 * called for a tree root. */
	int (*lookup)(struct dsfs_layer *l, const char *key,
		      struct dsfs_attr *a);

	/* Copy up to len bytes of key's value from offset off into buf.
	 * Returns the number of bytes copied (0 at or past the end).
	 * -ENOENT for no entry or a whiteout, -EISDIR for a directory (a tree
	 * root included).  An image file reads its blob. */
	ssize_t (*read)(struct dsfs_layer *l, const char *key, uint64_t off,
			void *buf, size_t len);

	/* Same, for the image blob with this token (-ENOENT if the layer holds
	 * no such blob, referenced or pinned). */
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
	 * the token already, that blob is kept: the token names its bytes).
	 * A replaced image drops its reference to its old blob.  Errors in
	 * this order: -EINVAL (no parent part), -ENOENT or -ENOTDIR (parent),
	 * -EISDIR, -ENOSPC (budget, counting what the replaced entry frees). */
	int (*commit)(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, const void *data, size_t len,
		      struct dsfs_attr *out);

	/* Create the directory key with a->mode, uid, gid, times, opaque, and
	 * a new version.  Replaces a whiteout (whose name is already counted);
	 * errors in this order: -EINVAL, -ENOENT or -ENOTDIR (parent, as for
	 * commit), -EEXIST if a file or directory is there, -ENOSPC. */
	int (*mkdir)(struct dsfs_layer *l, const char *key,
		     const struct dsfs_attr *a);

	/* Remove the file, whiteout or directory at key, giving back its
	 * bytes.  -ENOENT if there is none.  A directory must hold nothing but
	 * whiteouts (-ENOTEMPTY otherwise); its whiteouts go with it.  A
	 * removed image drops its blob reference.  Never refused for the
	 * budget. */
	int (*remove)(struct dsfs_layer *l, const char *key);

	/* Make key a whiteout with a new version, replacing a file, a
	 * whiteout, a directory that holds only whiteouts (they go), or
	 * nothing.  Errors in this order: -EINVAL, -ENOENT or -ENOTDIR
	 * (parent, as for commit), -ENOTEMPTY, -ENOSPC. */
	int (*whiteout)(struct dsfs_layer *l, const char *key);

	/* Change the attributes selected by mask (DSFS_SET_*) of a file or
	 * directory (layer_apply_setattr()); bumps the version, leaves the
	 * value, size, type and token alone.  -ENOENT for no entry or a
	 * whiteout.  Usage does not change. */
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
	 * keep theirs; with DSFS_RENAME_WHITEOUT the whiteout left at `from`
	 * gets one too.  Errors in this order: -ENOENT (`from` missing or a
	 * whiteout), -EINVAL, -ENOENT or -ENOTDIR (`to`'s parent, as for
	 * commit), then layer_rename_check()'s, then -ENOTEMPTY, -ENOSPC. */
	int (*rename)(struct dsfs_layer *l, const char *from, const char *to,
		      unsigned flags);

	/* Call cb for every child (files, directories and whiteouts) of the
	 * directory dir ("kv", "kv/app", "images"...), in no set order, with
	 * the child's last component and attributes.  -ENOENT if dir does not
	 * exist or is a whiteout, -ENOTDIR if it is a file
	 * (layer_dir_check()).  cb runs without the layer's lock, so it may
	 * call the layer.  The children may be read in batches, cb running on
	 * each before the next is read, so that a listing of a big directory
	 * needs no copy of all of it: then a child that is there for the
	 * whole call is reported exactly once, and one made or removed during
	 * it may or may not be, as for readdir(3).  (The SQLite and
	 * PostgreSQL layers read batches in name order, layer_sqlite_list.c
	 * and layer_pg_list.c; the others copy all the children out at
	 * once.) */
	int (*list)(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		    void *ctx);

	/* Bytes in use (Budget) and the budget the layer was opened with. */
	int (*usage)(struct dsfs_layer *l, uint64_t *used, uint64_t *budget);

	/* Make every change that has returned durable against power loss.
	 * 0 with nothing to do (a memory or read-only layer). */
	int (*sync)(struct dsfs_layer *l);

	/* Remove every entry and every blob that is not pinned (factory
	 * reset), in one transaction.  A pinned blob stays, referenced by
	 * nothing and still counted in usage, until its last unpin.  Versions
	 * keep increasing across it. */
	int (*clear)(struct dsfs_layer *l);

	/* Release everything the layer owns, including l itself.  Pins held
	 * are dropped without deleting anything (see Pins).  Cannot fail:
	 * trouble is logged. */
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

	/* Optional (NULL: layer_apply() answers -EOPNOTSUPP); the admin
	 * tool's load, reset and archive restore need it of a runtime. */

	/* Make the n changes c[0..n), in order, each with the rules and
	 * errors of its op above, as ONE transaction: all of them or, at
	 * the first that fails (its error is returned), none.  Budget and
	 * versions as if each had been made alone. */
	int (*apply)(struct dsfs_layer *l, const struct layer_change *c,
		     size_t n);

	/* Optional (NULL: nothing limits a layer but its budget).  0 if
	 * changes that add `bytes` of values, made as one commit, would
	 * fit on the storage under the layer, -ENOSPC if they would not.
	 * An estimate made before the commit (the daemon asks it as a value
	 * is written, so that the write that cannot be stored fails); the
	 * commit still finds out for sure.  usage()'s budget already says
	 * what small changes could add; this answers for one large one,
	 * which a store may need room for twice (a log, then its file). */
	int (*room)(struct dsfs_layer *l, uint64_t bytes);

	/* Version 3. */

	/* Make a new, empty file at key: commit(key, a, "", 0, out) with the
	 * rules and errors of commit() (directory times included), for a
	 * name being made by open(O_CREAT), whose value comes with a later
	 * commit() at its close, and -EEXIST if key holds a file (made
	 * meanwhile, by another host of a shared layer: the caller need not
	 * look the name up first; a whiteout is replaced, as by commit()).
	 * The other difference: where the backing
	 * store would make a commit durable before it answers (a database
	 * server's synchronous commit, a wait for its log to reach the
	 * disk), this one need not be, and a layer whose store is a file of
	 * this process may even leave it uncommitted: visible to every
	 * reader of this layer (the store's other users see it with the
	 * commit), and committed with the layer's next change, settle(),
	 * sync() or close(), whichever comes first.  A committed create
	 * survives a crash of the process, as every change does, and
	 * becomes durable against the store's own crash or a power loss with
	 * the next durable change of the layer (whose log record comes after
	 * it) or sync().  So a created file costs one commit, the one that
	 * stores its value, as on a local filesystem, where a new file
	 * survives a power loss only once it and its directory are synced.
	 * A layer with no such distinction does what commit() does.
	 *
	 * With a->replaces, a layer whose store is shared with other
	 * processes (a database server) may go further: note the name in
	 * this process only, answer out as the empty file that lookup(),
	 * fetch() and read() will show this process, and make the file on
	 * the store with the next commit() or replace() of key, in the same
	 * change as its value, replacing whatever another process made there
	 * meanwhile.  Every other change that involves the name (of it, of
	 * a directory above it, of a name below it), a list() of its
	 * directory, settle(), sync(), snapshot() and close() make it
	 * first, as an empty file; one the store refuses to make then (its
	 * directory gone, the budget) goes, as the create would have failed,
	 * and settle() answers that errno.  Other processes see the name when
	 * one of those commits; a name whose file is still open, with nothing
	 * of those since its create, is lost with this process.  create()
	 * answers 1 when it only noted the name so (0: it made the file). */
	int (*create)(struct dsfs_layer *l, const char *key,
		      const struct dsfs_attr *a, struct dsfs_attr *out);

	/* Optional (NULL: layer_snapshot() answers -EOPNOTSUPP). */

	/* A read-only layer (*out, closed with layer_close()) holding l's
	 * entries, blobs and usage as they are at this moment: changes made
	 * to l afterwards do not reach it, and l's writers do not wait for
	 * its readers.  For a check of a live layer: what it walks is one
	 * state of the layer, whatever is written meanwhile. */
	int (*snapshot)(struct dsfs_layer *l, struct dsfs_layer **out);

	/* Version 4.  Optional (NULL: layer_replace() answers -ENOENT). */

	/* A shortcut for a layer whose lookups cost a round trip (a
	 * database server): commit(key, a, data, len, out) over the file
	 * key holds, keeping that file's mode, owner and group, with a
	 * version above its own, as the overlay would have asked commit()
	 * to after looking the file up; out gets what was stored, kept
	 * attributes included.  -ENOENT, with nothing changed, when it did
	 * not: key holds no file, or a change the shortcut does not make
	 * (the layer's choice: an image, a budget overrun, ...); the caller
	 * then looks up and commits as usual, and that finds the errno. */
	int (*replace)(struct dsfs_layer *l, const char *key,
		       const struct dsfs_attr *a, const void *data, size_t len,
		       struct dsfs_attr *out);

	/* Optional (NULL: layer_fetch() is lookup() and no value). */

	/* lookup() and, when key holds a file whose value the layer keeps
	 * with its entry, that whole value, read in the same step: *data
	 * (malloc'd, the caller's) and *len; *data is NULL when there is
	 * none to give (then read() gets it).  For a layer whose every read
	 * is a round trip: an open is then one, and the value is the one
	 * of the attributes' version. */
	int (*fetch)(struct dsfs_layer *l, const char *key, struct dsfs_attr *a,
		     char **data, size_t *len);

	/* Version 5.  Optional (NULL: layer_list_kinds() calls list()). */

	/* list(), where cb needs only each child's kind: the other
	 * attributes may be left zero.  What a listing of the mount keeps
	 * (names and kinds); a layer that can find those with less than its
	 * whole rows does (the SQLite layer reads an index of names and
	 * kinds, a few dozen bytes a name, instead of every row). */
	int (*list_kinds)(struct dsfs_layer *l, const char *dir,
			  dsfs_list_cb cb, void *ctx);

	/* Version 6.  Optional (NULL: layer_take_file() answers -ENOENT). */

	/* A shortcut for a layer whose lookups cost a round trip: remove(key)
	 * when key holds a file, with *out set to the attributes the file
	 * had, as the overlay would have asked remove() after looking it
	 * up.  -ENOENT, with nothing changed, when it did not: key holds no
	 * file, or one the shortcut does not remove (the layer's choice: an
	 * image, ...); the caller then looks up and removes as usual, and
	 * that finds the errno.  A layer that has it sets takes_files. */
	int (*take_file)(struct dsfs_layer *l, const char *key,
			 struct dsfs_attr *out);

	/* Version 7; version 8 gives it the key and its answer 1.  Optional
	 * (NULL: layer_settle() has nothing to do). */

	/* Commit whatever create() of key has left uncommitted or unmade
	 * (see there; a layer may commit the other creates it holds with
	 * it), without waiting for the disk: after it, that create survives
	 * a crash of the process.  The daemon settles the name of a created
	 * file in its layer when that file is closed, so that a close that
	 * returned keeps the name even if nothing was written.  1 when it
	 * made key in the store just now (the store's other users can see
	 * it from now on: layer_observe() tells of it), else 0. */
	int (*settle)(struct dsfs_layer *l, const char *key);

	/* Version 9.  Optional (NULL: layer_forget() does nothing). */

	/* Another user of a shared store changed key (NULL: anything may
	 * have changed): a layer that answers from what it remembers of
	 * the store (layer_pg_remember()) forgets whatever that change may
	 * have made untrue, key's directory's names and times included.
	 * Its own changes it accounts for itself. */
	void (*forget)(struct dsfs_layer *l, const char *key);
};

/* Set by the implementation when it opens the layer (or by its opener,
 * through layer_set_readonly(), before anyone uses it); read through
 * layer_readonly(), never changed while the layer is in use. */
struct dsfs_layer {
	const struct dsfs_layer_ops *ops;
	const char *name; /* "ephemeral", "runtime", "factory" */
	bool readonly;
	bool hashes_images; /* commit() computes a->hash_token's token */
	bool takes_files;   /* take_file() removes files: worth a try */
};

/* layer.c: the wrappers the overlay calls, one per op, with the checks
 * listed at the top of this file.  layer_readonly() tells whether the
 * layer refuses changes. */
bool layer_readonly(const struct dsfs_layer *l);
/* Make a layer that nobody uses yet refuse every change from now on (an
 * empty memory layer standing in for a missing factory image). */
void layer_set_readonly(struct dsfs_layer *l);
int layer_lookup(struct dsfs_layer *l, const char *key, struct dsfs_attr *a);
ssize_t layer_read(struct dsfs_layer *l, const char *key, uint64_t off,
		   void *buf, size_t len);
ssize_t layer_read_blob(struct dsfs_layer *l, const char *token, uint64_t off,
			void *buf, size_t len);
int layer_commit(struct dsfs_layer *l, const char *key,
		 const struct dsfs_attr *a, const void *data, size_t len,
		 struct dsfs_attr *out);
int layer_create(struct dsfs_layer *l, const char *key,
		 const struct dsfs_attr *a, struct dsfs_attr *out);
int layer_settle(struct dsfs_layer *l, const char *key);
void layer_forget(struct dsfs_layer *l, const char *key);
int layer_snapshot(struct dsfs_layer *l, struct dsfs_layer **out);
int layer_replace(struct dsfs_layer *l, const char *key,
		  const struct dsfs_attr *a, const void *data, size_t len,
		  struct dsfs_attr *out);
int layer_fetch(struct dsfs_layer *l, const char *key, struct dsfs_attr *a,
		char **data, size_t *len);
int layer_mkdir(struct dsfs_layer *l, const char *key,
		const struct dsfs_attr *a);
int layer_remove(struct dsfs_layer *l, const char *key);
int layer_take_file(struct dsfs_layer *l, const char *key,
		    struct dsfs_attr *out);
int layer_whiteout(struct dsfs_layer *l, const char *key);
int layer_setattr(struct dsfs_layer *l, const char *key,
		  const struct dsfs_attr *a, unsigned mask);
int layer_rename(struct dsfs_layer *l, const char *from, const char *to,
		 unsigned flags);
int layer_list(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
	       void *ctx);
int layer_list_kinds(struct dsfs_layer *l, const char *dir, dsfs_list_cb cb,
		     void *ctx);
int layer_usage(struct dsfs_layer *l, uint64_t *used, uint64_t *budget);
int layer_sync(struct dsfs_layer *l);
int layer_clear(struct dsfs_layer *l);
void layer_close(struct dsfs_layer *l);
int layer_stat_blob(struct dsfs_layer *l, const char *token, uint64_t *size);
int layer_pin_blob(struct dsfs_layer *l, const char *token);
int layer_unpin_blob(struct dsfs_layer *l, const char *token);
int layer_apply(struct dsfs_layer *l, const struct layer_change *c, size_t n);
int layer_room(struct dsfs_layer *l, uint64_t bytes);

/*
 * layer.c: the rules every implementation shares, so that each decides
 * them the same way.  None takes a lock or allocates.
 *
 * layer_is_root()        is key[0..len) a tree root?
 * layer_tree_root(i)     the i-th tree root's name, NULL past the last
 * layer_root_attr()      the attributes a root reports
 * layer_split_key()      parent and last component of key[0..len);
 *                        -EINVAL if it has no parent part or ends in '/'
 * layer_dir_check()      0 if an entry of this kind can hold children
 *                        (a parent, a listed directory), -ENOENT for
 *                        DSFS_NONE (no entry) or a whiteout, -ENOTDIR
 * layer_fits()           may usage go from used by +add -sub under
 *                        budget?  Always when add <= sub.
 * layer_copy_str()       bounded, NUL-terminated copy; NULL src is ""
 * layer_file_attr()      what commit() stores of a (kind DSFS_FILE)
 * layer_dir_attr()       what mkdir() stores of a (kind DSFS_DIR)
 * layer_whiteout_attr()  a whiteout's attributes (kind only)
 * layer_image_token()    an image's token: the lower-case hex SHA-256
 *                        of its bytes (DSFS_TOKEN_LEN digits and a NUL)
 * layer_inherit_group()  what a->inherit_group asks of dst, the entry
 *                        create() or mkdir() stores, given parent, the
 *                        directory that will hold it (NULL: a tree root)
 * layer_apply_setattr()  the fields of a that mask selects, into dst
 * layer_version_floor()  the counter raised to the caller's a->version
 * layer_time_ns()        a time as nanoseconds since the epoch, as the
 * layer_ns_time()        SQL layers store it (clamped at +-292 years),
 *                        and back
 * layer_now()            the time of a change, for directory times
 * layer_rename_check()   rename(2)'s rules between the entry src at
 *                        `from` and dst at `to` (NULL or a whiteout: no
 *                        entry): *same and 0 (-EEXIST with NOREPLACE)
 *                        when from and to are one key; -EINVAL if `to`
 *                        is inside the directory `from`; then, if dst
 *                        is an entry, -EEXIST (NOREPLACE), -EISDIR (file
 *                        onto directory), -ENOTDIR (directory onto
 *                        non-directory).  Whether a directory at `to`
 *                        is empty is the implementation's to check.
 */
struct layer_key {
	const char *parent; /* inside the key, not NUL-terminated */
	size_t plen;
	const char *name; /* the last component, inside the key */
	size_t nlen;
};

bool layer_is_root(const char *key, size_t len);
const char *layer_tree_root(size_t i);
void layer_root_attr(struct dsfs_attr *a);
int layer_split_key(const char *key, size_t len, struct layer_key *k);
int layer_dir_check(enum dsfs_kind kind);
bool layer_fits(uint64_t used, uint64_t budget, uint64_t add, uint64_t sub);
void layer_copy_str(char *dst, size_t cap, const char *src);
void layer_file_attr(struct dsfs_attr *dst, const struct dsfs_attr *a);
void layer_dir_attr(struct dsfs_attr *dst, const struct dsfs_attr *a);
void layer_whiteout_attr(struct dsfs_attr *dst);
void layer_image_token(const void *data, size_t len,
		       char token[DSFS_TOKEN_LEN + 1]);
void layer_inherit_group(struct dsfs_attr *dst, const struct dsfs_attr *a,
			 const struct dsfs_attr *parent);
void layer_apply_setattr(struct dsfs_attr *dst, const struct dsfs_attr *a,
			 unsigned mask);
uint64_t layer_version_floor(uint64_t seq, const struct dsfs_attr *a);
int64_t layer_time_ns(struct timespec t);
struct timespec layer_ns_time(int64_t ns);
struct timespec layer_now(void);
int layer_rename_check(const char *from, const char *to, unsigned flags,
		       const struct dsfs_attr *src, const struct dsfs_attr *dst,
		       bool *same);

/* layer_mem.c: the ephemeral layer, in memory, lost at unmount. */
int layer_mem_open(uint64_t budget, struct dsfs_layer **out);

/* layer_sqlite.c, layer_sqlite_tx.c, layer_sqlite_store.c: a store file.
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

/* Create an empty store at path whose pages are page_size bytes (a power
 * of two from 512 to 65536; layer_sqlite_open() makes them 512): the
 * unit of every write, fixed for the life of the store.  -EEXIST if
 * there is a file at path already, -EINVAL for another size; *why as for
 * layer_sqlite_open(). */
int layer_sqlite_create(const char *path, unsigned page_size, const char **why);

/* Hold `bytes` of disk space in the file path + "-reserve" beside the
 * read-write store l, given back when the disk is too full for a change
 * that frees space (a removal) and taken again when there is room (see
 * "Disk space" in layer_sqlite_store.c).  -ENOSPC (or another negative errno)
 * if it cannot be allocated now: the layer then runs without one. */
int layer_sqlite_reserve(struct dsfs_layer *l, uint64_t bytes);

/* Keep the database file's lock from the next transaction on, for as long
 * as l is open (SQLite's locking_mode EXCLUSIVE): no other program can
 * read or write the file meanwhile, and each transaction saves the dozen
 * or so fcntl() calls of taking and dropping SQLite's locks.  For the
 * daemon's own store, which nothing else opens while it is mounted. */
int layer_sqlite_exclusive(struct dsfs_layer *l);

/* Store every new image blob of at least min_bytes of the read-write
 * store l as a file in the directory path + "-blobs" beside it, made if
 * missing, instead of in the database (layer_sqlite_blobfile.c); first
 * finish what a crash left in its pending/ directory.  For the daemon's
 * runtime store: a factory image must stay one file.  0 or a negative
 * errno (the layer then keeps every blob in the database). */
int layer_sqlite_blob_files(struct dsfs_layer *l, uint64_t min_bytes);

/* layer_sqlite_check.c: PRAGMA integrity_check on the store file at path,
 * opened read-only.  Each complaint is passed to report as ("integrity",
 * SQLite's text), and a check that could not run as ("integrity check
 * failed", the reason).  0 if the file is sound; -EINVAL if SQLite
 * complained; -EIO if the check could not run. */
int layer_sqlite_integrity(const char *path,
			   void (*report)(void *ctx, const char *what,
					  const char *detail),
			   void *ctx);

/* Copy the store file src, as one read transaction sees it while others
 * write it, to the new file dst; -EIO and *why (static) on failure. */
int layer_sqlite_snapshot(const char *src, const char *dst, const char **why);
/* The same, of the SQLite layer l that this process has open (a daemon
 * holds its store file exclusively); -EOPNOTSUPP for another layer. */
int layer_sqlite_copy(struct dsfs_layer *l, const char *dst, const char **why);
/* layer_pg.c, layer_pg_conn.c, layer_pg_store.c: the runtime layer in a
 * PostgreSQL database, which every daemon opening it with the same
 * conninfo shares (one per host).
 *
 * layer_pg_open() connects with conninfo (a libpq URI, postgresql://...,
 * or key=value words; libpq's environment variables and password file
 * apply), makes the schema in an empty database, refuses with -EINVAL a
 * schema newer than it knows or a database that is not a dsfs runtime,
 * -EIO if the server cannot be reached, and -ELIBACC if libpq.so.5
 * cannot be loaded (dsfs loads it at the first use of a database, not at
 * start: libpq_dl.h); why (cap bytes) then says why, without the
 * password.  Every change is one transaction with
 * synchronous_commit on; an operation that cannot reach the server fails
 * with -EIO within bounded time (layer_pg.h), and the next one reconnects.
 *
 * The runtime budget is the store's, recorded in the database and read in
 * every transaction that checks it, so that every host enforces the same
 * one.  With LAYER_PG_SET_BUDGET in flags, budget is recorded (a mount
 * with -o runtime_size); without it, the recorded budget holds and
 * budget is recorded only if none is (a new store).
 *
 * layer_pg_is_conninfo() tells whether -o runtime=VALUE names a database.
 * layer_pg_load() loads libpq: 0, or -ELIBACC with why.
 * layer_pg_shown() is conninfo without its password, as key='value'
 * words (allocated; NULL with why set if libpq cannot read conninfo or
 * cannot be loaded).
 * layer_pg_hide_password() overwrites in place, with '*', every password
 * in a command-line argument holding a conninfo. */
#define LAYER_PG_SET_BUDGET 1u
int layer_pg_open(const char *conninfo, const char *name, uint64_t budget,
		  unsigned flags, struct dsfs_layer **out, char *why,
		  size_t cap);
bool layer_pg_is_conninfo(const char *runtime);
/* While it waits for the server, a thread of layer l polls the
 * connection instead of sleeping, for at most usec µs (0: never), one
 * thread at a time (layer_pg_wait.c).  Off unless set.  -EINVAL if l is
 * not a layer_pg_open() one. */
int layer_pg_busy_poll(struct dsfs_layer *l, unsigned usec);
/* fn(arg) is called by a thread of layer l before it waits for the server
 * (the mount's loop lets another thread read the kernel's requests
 * meanwhile).  Set once, before l serves; -EINVAL as above. */
int layer_pg_on_wait(struct dsfs_layer *l, void (*fn)(void *), void *arg);
/* Layer l answers from memory what the server last said of a directory
 * (layer_pg_known.c): its attributes, for ms milliseconds (0: never, the
 * default), and, for one of at most 16384 names, that a name is not in
 * it, while the server gives it the version remembered.  Its own changes
 * keep that true; the other hosts' are forgotten as layer_forget() tells
 * of them, and until then answered as they were, as the kernel's cache
 * of a mount with cache_timeout answers them.  -EINVAL if l is not a
 * layer_pg_open() one. */
int layer_pg_remember(struct dsfs_layer *l, unsigned ms);
int layer_pg_load(char *why, size_t cap);
char *layer_pg_shown(const char *conninfo, char *why, size_t cap);
void layer_pg_hide_password(char *arg);

/* layer_observe.c: a layer that is inner (which it owns: closing it
 * closes inner), and after each change that committed through it calls
 * o->changed(o->arg, inner, ev), on the caller's thread and with the
 * caller's locks held; and o->done(o->arg), if set, once the wrapper
 * is gone (after inner closed, or at layer_unobserve()).  A change set
 * (apply) is told change by change, once all of it committed.
 * layer_observed() is the layer under l if l observes with
 * changed, else NULL; layer_unobserve() frees the wrapper l and returns
 * the layer it wrapped.  0 or -ENOMEM (inner is then still the
 * caller's). */
enum layer_event_op {
	LAYER_EV_COMMIT,
	LAYER_EV_MKDIR,
	LAYER_EV_REMOVE,
	LAYER_EV_WHITEOUT,
	LAYER_EV_SETATTR,
	LAYER_EV_RENAME,
	LAYER_EV_CLEAR,
	LAYER_EV_SETTLE, /* settle() made key in the store (create() told it) */
};
struct layer_event {
	enum layer_event_op op;
	const char *key;  /* NULL for clear */
	const char *from; /* rename: the old key */
	uint64_t version; /* commit: the stored version; else 0 */
	unsigned mask;	  /* setattr: DSFS_SET_* */
	/* A create that only this process sees yet (create() answered 1):
	 * the store's other users learn of it from the change that makes
	 * it (a commit, or LAYER_EV_SETTLE). */
	bool noted;
};
typedef void (*layer_observer_fn)(void *arg, struct dsfs_layer *inner,
				  const struct layer_event *ev);
struct layer_observer {
	layer_observer_fn changed;
	void (*done)(void *arg);
	void *arg;
};
int layer_observe(struct dsfs_layer *inner, const struct layer_observer *o,
		  struct dsfs_layer **out);
struct dsfs_layer *layer_observed(struct dsfs_layer *l,
				  layer_observer_fn changed);
struct dsfs_layer *layer_unobserve(struct dsfs_layer *l);

#endif
