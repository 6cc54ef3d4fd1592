/*
 * dsfs.h - the types shared by the daemon's files, and their exports listed
 * under one heading per file.
 *
 * The daemon is a stack of three layers (index 0 is the upper one):
 *
 *     0 ephemeral   memory, lost at unmount        (layer_mem.c)
 *     1 runtime     STORE/runtime.db, persistent   (layer_sqlite*.c)
 *     2 factory     STORE/factory.db, read-only    (layer_sqlite*.c)
 *
 * overlay.c resolves names across the stack and performs copy-up and
 * whiteouts; it sees layers only through layer.h.  inode.c maps the kernel's
 * inode numbers to nodes (a name in one of the mount's trees); handle.c owns
 * an open file's private copy and file.c opens and commits it; fuse_ops.c
 * translates FUSE requests into calls to those and sends exactly one reply
 * per request (daemon.h lists the daemon-side files).
 */
#ifndef DSFS_H
#define DSFS_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "layer.h"

#define DSFS_NLAYERS 3
enum {
	L_EPHEMERAL = 0,
	L_RUNTIME = 1,
	L_FACTORY = 2
};

#define MiB (1024ull * 1024ull)
#define DSFS_DEFAULT_FACTORY_SIZE (13 * MiB)
#define DSFS_DEFAULT_RUNTIME_SIZE (13 * MiB)
#define DSFS_DEFAULT_EPHEMERAL_SIZE (128 * MiB)
/* Nodes of files the kernel may hold before the least used are given
 * back (-o inode_cache): about 100 bytes each. */
#define DSFS_DEFAULT_INODE_CACHE 16384
/* -o busy_poll: the longest the thread that answered a request polls
 * the FUSE device for the next (fuse_loop.c), and a thread polls a
 * PostgreSQL runtime's connection for an answer (layer_pg_wait.c), before
 * it sleeps, in µs.  A program's next request comes within a few µs of
 * the answer to its last; a server's answer takes longer than this on
 * most machines, so its polling is for those who ask for more. */
#define DSFS_DEFAULT_BUSY_POLL 50
#define DSFS_MAX_BUSY_POLL 100000u

/* Slots that record when directories last changed (struct dsfs_stack). */
#define DSFS_CHANGE_SLOTS 4096

/* Longest key ("kv/a/b/...") dsfs handles; deeper paths get ENAMETOOLONG. */
#define DSFS_KEY_MAX 4096

/* Names of the files in a store directory. */
#define STORE_RUNTIME "runtime.db"
#define STORE_FACTORY "factory.db"
#define STORE_FACTORY_NEW "factory.db.new"
#define STORE_LOCK "lock"
#define STORE_SOCKET "control.sock"
#define STORE_RESERVE_BYTES (2u << 20) /* runtime.db-reserve: layer.h */
/* Images from this size up are files in runtime.db-blobs/: layer.h. */
#define STORE_BLOB_FILE_MIN (64u << 10)

/*
 * The stack.  layer[] is plain data; lock guards it: readers of the stack
 * (lookups, reads, listings) hold it shared, changes hold it exclusive so
 * that a multi-step change (copy-up, then commit; whiteout, then remove) is
 * never seen half done, and a factory install swaps layer[L_FACTORY] under
 * it.  Lock order: a handle's lock, then stack.lock, then the node table's.
 */
struct dsfs_stack {
	pthread_rwlock_t lock;
	struct dsfs_layer *layer[DSFS_NLAYERS];
	/* Counts the changes (tried) to the stack, and remembers when the
	 * last one in each directory was made, in slots shared by the
	 * directories whose keys hash alike: a listing taken at an older count
	 * than its directory's slot (or all_changed_at) may be out of date.
	 * subdirs_changed_at[] does the same for the changes that may add or
	 * take away a subdirectory (a directory's link count counts them):
	 * most changes are to files, and must not make every directory's
	 * count be taken again. */
	uint64_t changes;
	uint64_t changed_at[DSFS_CHANGE_SLOTS];
	uint64_t subdirs_changed_at[DSFS_CHANGE_SLOTS];
	uint64_t all_changed_at;
	/* When a name in a tree root last changed (dirtimes.c): per layer
	 * and, at DSFS_NLAYERS, in the merged trees; kv, images, devices.
	 * Zero until then. */
	struct timespec tree_time[DSFS_NLAYERS + 1][3];

	/* Open image readers stream from a layer without the stack's lock,
	 * so they hold the layer: a factory layer swapped out while held is
	 * closed by its last release.  holds_lock guards holds[], and is
	 * taken after lock when both are. */
	pthread_mutex_t holds_lock;
	struct layer_hold {
		struct dsfs_layer *layer;
		unsigned count;
		bool retired; /* no longer in layer[]: close at count 0 */
	} * holds;
	size_t nholds;

	/* Scratch-name patterns, ':'-separated (scratch.c); NULL: none.
	 * Set before the stack is used, read-only after. */
	const char *scratch;
	struct scratch_moved *moved; /* scratch.c's own */
};

/* Which part of the mount a name lives in. */
enum dsfs_view {
	VIEW_ROOT,   /* the mount root and the ephemeral/runtime/factory dirs */
	VIEW_MERGED, /* kv/, images/, devices/: resolved across the stack */
	VIEW_LAYER,  /* ephemeral/kv, runtime/images, ...: one layer alone */
};

enum dsfs_tree {
	TREE_NONE,
	TREE_KV,
	TREE_IMAGES,
	TREE_DEVICES, /* stored as kv/__ID/... */
};

/* Where an operation applies: resolved from a node by inode.c. */
struct loc {
	enum dsfs_view view;
	int layer; /* VIEW_LAYER: the layer index */
	int limit; /* VIEW_MERGED: consult layers 0..limit (opaque dirs) */
	enum dsfs_tree tree;
	char key[DSFS_KEY_MAX];
};

/* What a lookup found: the entry, and in which layer. */
struct found {
	int layer;
	int limit; /* for a directory: the limit its children inherit */
	struct dsfs_attr attr;
};

/* One name of a directory listing: its kind, where its name is, and
 * enough of its readdir offset (listing_off()) to sort and search by
 * without hashing the name again but on a tie.  Its name is in the
 * listing's block of names, so that a listing of a million names is a few
 * allocations of 8 bytes a name plus the names rather than a million
 * (listing.c). */
struct dirent_item {
	uint32_t key : 30; /* listing_off(name) >> LISTING_KEY_SHIFT */
	uint32_t kind : 2; /* enum dsfs_kind of what a lookup finds */
	uint32_t name;	   /* where its name starts in listing.names */
};

/* An item keeps the top 30 of its offset's 63 bits. */
#define LISTING_KEY_SHIFT 33

/* Offset 0 is the start of a listing, 1 and 2 follow "." and "..", and a
 * name's offset (listing_off()) is above those. */
#define LISTING_FIRST_OFF 3

struct listing {
	struct dirent_item *items;
	size_t count;
	size_t cap;
	char *names; /* every item's name, each ending in a NUL */
	size_t names_len;
	size_t names_cap;
	uint64_t changes; /* the stack's change count it was taken at */
};

/* size.c: "13M" -> 13631488 (K, M, G are powers of 1024); -EINVAL on
 * anything else. */
int parse_size(const char *s, uint64_t *out);

/* scratch.c: editors' scratch files (vim's .NAME.swp, NAME~, 4913...). */
#define DSFS_SCRATCH_DEFAULT ".*.sw?:.*.swpx:*~:4913:#*#:.#*"
/* Does name match one of the ':'-separated fnmatch(3) patterns? */
bool scratch_name(const char *patterns, const char *name);
/* Is l a scratch name under kv/ or devices/ (s->scratch)? */
bool scratch_loc(const struct dsfs_stack *s, const struct loc *l);
/* ovl_rename(), except between a scratch name and an entry in a merged
 * tree: scratch over entry commits (validated), entry to scratch copies. */
int scratch_rename(struct dsfs_stack *s, const struct loc *from,
		   const struct loc *to, unsigned flags);
/* Was l renamed to a scratch name since it was last written?  Then the
 * next open of it for writing starts empty (and this forgets it). */
bool scratch_take_moved(struct dsfs_stack *s, const struct loc *l);
/* ovl_stack_init() and ovl_stack_destroy() call these. */
int scratch_init(struct dsfs_stack *s);
void scratch_destroy(struct dsfs_stack *s);

/* overlay.c */
/* With s->lock held (shared at least): ovl_lookup() without the lock. */
int ovl_lookup_locked(struct dsfs_stack *s, const struct loc *l,
		      struct found *f);
/* Take s->lock exclusive for a change to key (NULL: to anything), and
 * note the change (ovl_note_change()). */
void ovl_lock_for_change(struct dsfs_stack *s, const char *key);
/* The same for a change known to leave every subdirectory where it is
 * (ovl_note_file_change()); one that finds otherwise on the way calls
 * ovl_note_change() before it lets go of the lock. */
void ovl_lock_for_file_change(struct dsfs_stack *s, const char *key);
int ovl_lookup(struct dsfs_stack *s, const struct loc *l, struct found *f);
ssize_t ovl_read(struct dsfs_stack *s, const struct found *f, const char *key,
		 uint64_t off, void *buf, size_t len);
int ovl_read_all(struct dsfs_stack *s, const struct loc *l, struct found *f,
		 char **data, size_t *len);
int ovl_create(struct dsfs_stack *s, const struct loc *l,
	       const struct dsfs_attr *a, struct found *f);
int ovl_mkdir(struct dsfs_stack *s, const struct loc *l,
	      const struct dsfs_attr *a, struct found *f);
int ovl_commit(struct dsfs_stack *s, const struct loc *l,
	       const struct dsfs_attr *a, const void *data, size_t len,
	       struct found *f);
/* Remove the file (unlink) or empty directory (rmdir) at l; *gone (if
 * not NULL) gets what was removed. */
int ovl_unlink(struct dsfs_stack *s, const struct loc *l, struct found *gone);
int ovl_rmdir(struct dsfs_stack *s, const struct loc *l, struct found *gone);
int ovl_rename(struct dsfs_stack *s, const struct loc *from,
	       const struct loc *to, unsigned flags);
int ovl_setattr(struct dsfs_stack *s, const struct loc *l,
		const struct dsfs_attr *a, unsigned mask, struct found *f);
int ovl_list(struct dsfs_stack *s, const struct loc *l, bool devices,
	     struct listing *out);
int ovl_sync(struct dsfs_stack *s);
/* Whether a change may have been made in directory dirkey (a key as in
 * struct loc) since the stack's change count was since. */
bool ovl_changed_since(struct dsfs_stack *s, const char *dirkey,
		       uint64_t since);
/* The same, for the changes that may have added or taken away one of its
 * subdirectories, in any layer. */
bool ovl_subdirs_changed_since(struct dsfs_stack *s, const char *dirkey,
			       uint64_t since);
/* Another host changed key in the shared runtime layer (NULL: anything):
 * listings taken before are out of date. */
void ovl_changed_elsewhere(struct dsfs_stack *s, const char *key);
int ovl_usage(struct dsfs_stack *s, int layer, uint64_t *used,
	      uint64_t *budget);
/* layer_room() of one layer: would a commit adding bytes fit? */
int ovl_room(struct dsfs_stack *s, int layer, uint64_t bytes);
/* layer_settle() of key in one layer: what its create left uncommitted
 * or unmade is committed (layer.h); 0 or a negative errno. */
int ovl_settle(struct dsfs_stack *s, int layer, const char *key);
int ovl_open_image(struct dsfs_stack *s, const struct loc *l, struct found *f,
		   struct dsfs_layer **held);
int ovl_open_blob(struct dsfs_stack *s, const char *token, uint64_t *size,
		  struct dsfs_layer **held);
int ovl_find_blob(struct dsfs_stack *s, const char *token, int *layer,
		  uint64_t *size);
void ovl_release_image(struct dsfs_stack *s, struct dsfs_layer *held,
		       const char *token);
int ovl_stack_init(struct dsfs_stack *s);
void ovl_stack_destroy(struct dsfs_stack *s);
int ovl_factory_reset(struct dsfs_stack *s);
/* Hold the stack while the admin commands (admin.h) use its layers
 * directly: shared to read, exclusive (every listing out of date) to
 * change. */
void ovl_admin_lock(struct dsfs_stack *s, bool change);
void ovl_admin_unlock(struct dsfs_stack *s);
int ovl_swap_factory(struct dsfs_stack *s, struct dsfs_layer *fresh);
/* A change to key (NULL: to anything) is being made, with the lock held
 * exclusive: listings of its directory taken before it are out of date,
 * and so are the counts of its subdirectories. */
void ovl_note_change(struct dsfs_stack *s, const char *key);
/* The same for a change that leaves the directory's subdirectories as they
 * are, in every layer: a file's value, times or name, a directory's times. */
void ovl_note_file_change(struct dsfs_stack *s, const char *key);

/* dirtimes.c: the mtime and ctime of a directory whose names change.
 * ovl_touch_parent() sets those of the directory holding l->key to now
 * (ovl_touch_parents() those of both directories of a rename), with the
 * stack's lock held exclusive, after the change, in the writable layers
 * above the layer `changed` (which set its own: layer.h) and in the tree
 * roots' times.  ovl_tree_time() is when
 * a name in a tree root last changed, seen through view (and layer):
 * -ENOENT if none has since the mount. */
void ovl_touch_parent(struct dsfs_stack *s, const struct loc *l, int changed);
void ovl_touch_parents(struct dsfs_stack *s, const struct loc *from,
		       const struct loc *to, int changed);
int ovl_tree_time(struct dsfs_stack *s, enum dsfs_view view, int layer,
		  enum dsfs_tree tree, struct timespec *t);

/* listing.c: merged listings.  listing_gather() lists the directory at l
 * (with the stack's lock held): every layer l merges, each name once, a
 * whiteout hiding it; devices: kv/'s __ID directories as ID.  Items are
 * sorted by offset (listing_sorted()). */
int listing_gather(struct dsfs_stack *s, const struct loc *l, bool devices,
		   struct listing *out);
/* Add name with what a lookup finds (f) to ls, at the end, whatever its
 * offset; on failure *err is set (-ENOMEM, -EOVERFLOW) and later calls do
 * nothing. */
void listing_add(struct listing *ls, const char *name, const struct found *f,
		 int *err);
/* The readdir offset of name in every listing of its directory: a 63-bit
 * hash, the same for as long as the mount lives (dirlist.h). */
uint64_t listing_off(const char *name);
/* Whether ls's items are in offset order; listing_sort() puts them in it
 * (then by name and layer), in place. */
bool listing_sorted(const struct listing *ls);
void listing_sort(struct listing *ls);
const char *listing_name(const struct listing *ls, size_t i);
/* An item's offset, from the block of names it belongs to. */
uint64_t listing_item_off(const char *names, const struct dirent_item *it);
/* Whether the offset of it is below (<0), at (0) or above (>0) off. */
int listing_item_vs_off(const char *names, const struct dirent_item *it,
			uint64_t off);
void listing_free(struct listing *ls);

#endif
