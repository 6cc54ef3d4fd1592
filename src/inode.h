/*
 * inode.h - the node table: the kernel's inode numbers and the names they
 * stand for.
 *
 * A node is one name in one tree of the mount ("kv/app/n" in the merged
 * view, "runtime/kv/app/n" in the runtime layer's view, ...).  The same
 * stored entry seen through two trees is two nodes, so the kernel never sees
 * a directory with two parents.  Nodes are found by inode number (every
 * request) and by (parent, name) (lookups return the inode the kernel already
 * knows).  A node lives while the kernel holds lookups on it or something
 * holds a reference: a child, an open handle, a request in flight.
 */
#ifndef DSFS_INODE_H
#define DSFS_INODE_H

#include "dsfs.h"
#include "ptab.h"

/* What few nodes need, and only while they need it: a file open, a
 * directory listed, a node replaced or waiting for writers.  Made on first
 * use, and freed once every field is back at zero (node_extra_trim()) or
 * with the node, so that the many nodes the kernel only remembers, read
 * ones included, stay small.  A new field must be added to extra_empty()
 * in inode.c, or an extra that holds it would be freed. */
struct node_extra {
	/* Open readers served through the page cache; they read the node's
	 * cached_version.  A reader of another version must bypass the page
	 * cache, which is shared by every open of the inode. */
	unsigned cache_readers;
	/* Open writers, and times set (futimens, utimensat) while one was
	 * open: the next commit keeps them instead of "now". */
	unsigned writers;
	/* Attributes were sent to the kernel while a writer was open: they
	 * may say what the entry was before its commit. */
	bool attrs_sent_writing;
	/* The first page-cache reader (FRESH, ATTRS) is telling the kernel
	 * to drop what it held, and has not replied yet: a reader that
	 * replied before it would read the pages up to the size the kernel
	 * still holds. */
	bool filling;
	bool times_set;
	/* A directory's count of subdirectories (its link count less 2),
	 * and the stack's change count when it was listed, if it was. */
	bool subdirs_kept;
	uint32_t subdirs;
	uint64_t subdirs_at;
	/* When a writer whose open found page-cache readers on the node the
	 * name had was sent here (node_writer_open()), in the caller's clock
	 * ticks, 0 for never: readers bypass the page cache for
	 * NODE_PENDING_TICKS after it, until that writer's open has come. */
	uint16_t pending_at;
	/* The last ticket node_pages_pushing() gave (it wraps, skipping 0). */
	uint32_t push_ticket;
	struct timespec atime, mtime;
	/* Owned: what it was when detached; while page-cache readers are
	 * open, the version they read (kept for a retirement). */
	struct dsfs_attr *gone;
	/* Replaced by a rename: where it was (was_parent holds a reference),
	 * so that a reader whose path walk raced with the rename opens what
	 * is there now. */
	struct node *was_parent;
	char *was_name; /* owned */
	/* A directory's shared listing while a handle reads it: dirlist.c's,
	 * guarded by its lock, not this table's.  snap_lent: node_snap_slot()
	 * gave dirlist.c its address, which it keeps and uses outside this
	 * table's lock, so the extra stays with the node from then on. */
	struct dir_snap *snap;
	bool snap_lent;
};

/* images/.by-token/ and the blobs in it, outside every layer. */
enum {
	NODE_PLAIN,
	NODE_BY_TOKEN_DIR,
	NODE_BY_TOKEN
};

/* cached_layer when no layer's version is to be trusted
 * (nodes_forget_cache()). */
#define NODE_NO_LAYER 3

/* The node the kernel holds an inode number for: 51 bytes and its name,
 * which is kept in the same allocation (of 56 bytes at least). */
struct node {
	uint64_t ino;
	struct node *parent; /* holds a reference; NULL when detached */
	/* NULL for the root and detached nodes; else name_buf, or an owned
	 * copy once a rename gave the node a longer name. */
	char *name;
	struct node_extra *x; /* NULL unless needed; owned */
	/* The version the kernel's page cache of the inode holds (0: none),
	 * and its layer (cached_layer below).  Kept here, not in x: it
	 * outlives the readers that filled the pages, and every node that
	 * was read has it. */
	uint64_t cached_version;
	/* Lookups replied to the kernel, not yet forgotten; it stops at its
	 * maximum rather than wrap, which only keeps the node. */
	uint32_t nlookup;
	uint32_t refs;	      /* children, handles, requests in flight */
	unsigned view : 2;    /* enum dsfs_view */
	unsigned layer : 2;   /* VIEW_LAYER */
	unsigned tree : 2;    /* enum dsfs_tree */
	unsigned limit : 2;   /* a merged dir: the limit its children inherit */
	unsigned special : 2; /* NODE_PLAIN, ... */
	unsigned cached_layer : 2; /* L_EPHEMERAL.., or NODE_NO_LAYER */
	bool is_dir : 1;
	bool is_tree_root : 1; /* kv, images, devices of some view */
	bool permanent : 1;    /* the root and the fixed directories */
	/* Asked for since the clock of inode_evict.c last passed it. */
	bool used : 1;
	/* The kernel was asked to forget it, and has neither forgotten it
	 * nor asked for it since. */
	bool evicted : 1;
	/* node_extra could not be made for a writer: the writer count is
	 * unknown, so the kernel's view of the node is never trusted. */
	bool writers_lost : 1;
	/* Since the last page-cache open, the kernel may have been sent
	 * attributes of a version other than cached_version (a lookup or
	 * stat with no reader open, a writer's size): the next first reader
	 * of cached_version drops them, or the kernel would end its reads of
	 * the pages at another version's size. */
	bool attrs_other : 1;
	/* No page of the inode was ever filled, and cached_version is the
	 * version whose attributes the kernel was last answered by name,
	 * with no writer open (node_cache_seen()): its first reader fills
	 * the pages and keeps the attributes (NODE_CACHE_FILL). */
	bool attrs_only : 1;
	/* A writer's commit pushed its copy into the pages, and the commit
	 * has not vouched for them (node_pages_committed()): they may hold
	 * bytes that no version has, and the next first reader drops them. */
	bool pages_unknown : 1;
	char name_buf[]; /* the name it was made with */
};

/* All fields are guarded by lock, except the immutable ino, view, layer,
 * tree, is_tree_root and permanent. */
struct node_table {
	pthread_mutex_t lock;
	struct ptab by_ino;  /* every node */
	struct ptab by_name; /* the named children, by (parent, name) */
	size_t count;
	uint64_t next_ino;
	/* inode_evict.c: past `bound` nodes (0: no bound), names the kernel
	 * holds and nobody uses are given back; `over` wakes the thread that
	 * does it, `hand` is where its clock goes on. */
	size_t bound;
	size_t evicting;  /* nodes marked evicted */
	size_t fruitless; /* slots the hand passed since it last picked */
	size_t hand;
	bool stopping;
	pthread_cond_t over;
};

#define ROOT_INO 1
/* The root and the fixed directories are inodes ROOT_INO..FIXED_NODES. */
#define FIXED_NODES 16

int nodes_init(struct node_table *t);
void nodes_destroy(struct node_table *t);

/* Take a reference on the node with this inode number; NULL if unknown. */
struct node *node_get(struct node_table *t, uint64_t ino);
void node_put(struct node_table *t, struct node *n);

/* The child `name` of dir: the existing node or a new one, with one more
 * kernel lookup counted.  NULL when out of memory. */
struct node *node_link(struct node_table *t, struct node *dir, const char *name,
		       bool is_dir, int limit);
/* The special child of dir (.by-token and the tokens in it): found or
 * made, with one more kernel lookup counted. */
struct node *node_link_special(struct node_table *t, struct node *dir,
			       const char *name, int special);

/* How a reader that found a version of the entry in a layer may use the
 * kernel's page cache: NODE_CACHE_KEEP (keep what is cached), NODE_CACHE_FRESH
 * (drop it and fill it anew), NODE_CACHE_ATTRS (keep the pages, drop the
 * attributes), NODE_CACHE_FILL (no pages yet, and the kernel's attributes
 * are this version's: fill the pages, keep the attributes), or
 * NODE_CACHE_BYPASS (direct I/O).  KEEP, ATTRS, FRESH and FILL count the
 * reader until node_cache_done(). */
enum {
	NODE_CACHE_KEEP,
	NODE_CACHE_FRESH,
	NODE_CACHE_ATTRS,
	NODE_CACHE_FILL,
	NODE_CACHE_BYPASS,
	NODE_CACHE_RETIRED /* bypass, and n was retired (below) */
};
void node_cache_done(struct node_table *t, struct node *n);
/* The FRESH, FILL or ATTRS reader of n has told the kernel (node_extra's
 * filling): later readers of its version may keep what is cached. */
void node_cache_filled(struct node_table *t, struct node *n);

/* Page-cache identities (pagecache.c says why).  A node never has open
 * writers and open page-cache readers at once; when a version other than
 * the one its page-cache readers read reaches it, the node is retired: it
 * keeps the attributes of what they read (fstat answers them, with no
 * link), and the name leads to a new node at the next lookup.
 *
 * node_cache_reader_open(): how a reader that read a (in layer) may use
 * the page cache: KEEP if the pages and the kernel's attributes hold that
 * version, ATTRS if the pages do but the attributes of another may have
 * been sent since (a lookup, a stat, a writer), FILL if no page was
 * filled yet and the last attributes answered by name were that
 * version's with no writer open since, FRESH if no other page-cache
 * reader is open, else RETIRED; BYPASS for a reader of the
 * pages' version while their first reader has not called
 * node_cache_filled(); BYPASS while writers are open,
 * while the node waits for writers (pending_at), or once it no longer
 * has its name.  *dropped: the kernel's pages of n may hold another
 * version (FRESH over an earlier one): the caller drops them before the
 * reply. */
int node_cache_reader_open(struct node_table *t, struct node *n,
			   const struct dsfs_attr *a, int layer, uint16_t now,
			   bool *dropped);
/* Count a writer of n; -ESTALE if page-cache readers have n open: n is
 * retired, a node waiting for this writer is made for its name, and the
 * kernel must walk the path again. */
int node_writer_open(struct node_table *t, struct node *n, uint16_t now);
/* A counted writer of n is about to push its copy into n's pages, before
 * its commit: the pages hold no version until node_pages_committed()
 * with the ticket returned, called once that commit stored the copy as
 * (version, layer), says they hold that one, unless another push began
 * since (then it returns false).  0: n has no name or no counted writer,
 * and nothing is to be pushed. */
uint32_t node_pages_pushing(struct node_table *t, struct node *n);
bool node_pages_committed(struct node_table *t, struct node *n, uint32_t ticket,
			  uint64_t version, int layer);
/* The clock of pending_at: a tick is 1/16 s, and a node waits for the
 * writers sent to it for 2 s (a retried open comes within microseconds;
 * the margin is for a loaded machine).  Other writers that open and close
 * it meanwhile do not end the wait, as a count of opens would. */
#define NODE_TICKS_PER_SEC 16
#define NODE_PENDING_TICKS 32
/* A version (version, layer) of n's entry was found by n's name: whether n
 * stands for it.  NODE_SEEN_RETIRED: n had page-cache readers of another
 * version and is retired now; NODE_SEEN_DETACHED: n had lost its name
 * already (retired or replaced between the finding and this call), so
 * what was found is not n's either.  In both cases n's attributes must
 * not be answered from the version found: its readers' size would be
 * another's, and the kernel cuts page-cache reads at the size. */
enum {
	NODE_SEEN_SAME,
	NODE_SEEN_RETIRED,
	NODE_SEEN_DETACHED
};
int node_cache_seen(struct node_table *t, struct node *n, uint64_t version,
		    int layer);
/* n has page-cache readers: retire it (true), or nothing to do (false). */
bool node_retire_cached(struct node_table *t, struct node *n);
/* For a notice after a retirement: the name n had and its directory's
 * inode (name copied into buf); -ESTALE if it had none. */
int node_retired_name(struct node_table *t, struct node *n, uint64_t *parent,
		      char *buf, size_t size);

/* A layer was replaced or emptied: versions seen before say nothing about
 * what the page cache holds any more. */
void nodes_forget_cache(struct node_table *t);

/* The bound on the table (inode_evict.c): 0 for none. */
void nodes_set_bound(struct node_table *t, size_t bound);
/* More nodes than the bound: a listing gives names only, which make no
 * inode in the kernel. */
bool nodes_over_bound(struct node_table *t);
/* A name whose kernel entry is to be dropped. */
struct node_name {
	uint64_t ino;
	uint64_t parent;
	char name[256];
};
/* Wait until the table holds more nodes than its bound (first, after a
 * pass that gave nothing back, idle, 200 ms at most): how many more, or
 * -1 once nodes_stop_evict() was called. */
long nodes_wait_over(struct node_table *t, bool idle);
void nodes_stop_evict(struct node_table *t);
/* Up to max names the kernel holds that nothing of dsfs uses and that
 * were not asked for since the clock last passed them, from at most one
 * round of the clock; a name picked is not picked again until it is
 * asked for.  *none: the hand went twice round without picking one
 * (every node is in use), or nodes_stop_evict() was called. */
size_t nodes_pick_unused(struct node_table *t, struct node_name *out,
			 size_t max, bool *none);

/* Where a directory keeps its shared listing (dirlist.c): made with the
 * node's extra state if it has none, and valid while the node lives; NULL
 * when out of memory. */
struct dir_snap **node_snap_slot(struct node_table *t, struct node *n);

/* Count open writers (delta +1 or -1). */
void node_writers(struct node_table *t, struct node *n, int delta);
/* Attributes of n are being sent to the kernel (node_link() notes this
 * itself). */
void node_attrs_sent(struct node_table *t, struct node *n);
/* Whether the kernel's idea of n's size and times can be trusted after a
 * commit by its one writer, which started from an empty value the kernel
 * knew of: false if another writer is open or attributes were sent to the
 * kernel while writers were. */
bool node_sole_writer_view(struct node_table *t, struct node *n);
/* Times set while writers are open (NULL: not set); kept for the next
 * commit, which takes them with node_take_times() (unchanged if none). */
void node_set_times(struct node_table *t, struct node *n,
		    const struct timespec *atime, const struct timespec *mtime);
void node_take_times(struct node_table *t, struct node *n,
		     struct timespec *atime, struct timespec *mtime);

/* A directory's count of subdirectories as last listed: true with the
 * count and the stack's change count of that listing, false if none was
 * kept.  attrs.c decides whether it is still good (ovl_changed_since). */
bool node_subdirs(struct node_table *t, struct node *n, uint32_t *count,
		  uint64_t *at);
void node_set_subdirs(struct node_table *t, struct node *n, uint32_t count,
		      uint64_t at);

/* The existing child `name` of dir, with one more kernel lookup counted;
 * NULL if the table has none (for the fixed directories). */
struct node *node_get_child(struct node_table *t, struct node *dir,
			    const char *name);
void node_forget(struct node_table *t, uint64_t ino, uint64_t nlookup);

/* Where an operation on n applies (loc for the node itself), and on the
 * child `name` of the directory dir. */
int node_loc(struct node_table *t, struct node *n, struct loc *l);
int node_child_loc(struct node_table *t, struct node *dir, const char *name,
		   struct loc *l);

/* The child of dir named name is gone (unlink, rmdir, replaced by rename):
 * later lookups make a new node.  gone (may be NULL) is what it was, kept
 * for fstat() of files still open on it. */
void node_detach(struct node_table *t, struct node *dir, const char *name,
		 const struct dsfs_attr *gone);
/* Rename: the node at (from, fname) is now (to, tname); a node replaced
 * at (to, tname) is detached with gone. */
int node_move(struct node_table *t, struct node *from, const char *fname,
	      struct node *to, const char *tname, const struct dsfs_attr *gone);
/* For a node replaced by a rename: the loc of the name it had. */
int node_former_loc(struct node_table *t, struct node *n, struct loc *l);
/* What a detached node was: 0, or -ESTALE if nothing was kept. */
int node_gone(struct node_table *t, struct node *n, struct dsfs_attr *a);

/* The merged-view node for a key and its directory, as far as the kernel
 * knows them (for cache invalidation): 0 with the directory's inode, the
 * node's (0 if the kernel does not know that name) and the last name in
 * *name (a pointer into key); -ENOENT if the directory is not known. */
int node_find_merged(struct node_table *t, const char *key, uint64_t *ino,
		     uint64_t *parent_ino, const char **name);

/* Every node except the root: calls fn(ctx, ino, parent_ino, name) with
 * the table unlocked, on a copy taken under the lock. */
int nodes_each(struct node_table *t,
	       void (*fn)(void *ctx, uint64_t ino, uint64_t parent,
			  const char *name),
	       void *ctx);

#endif
