/*
 * dirlist.h - directory listings shared by the open handles of a directory,
 * in an order whose offsets mean the same in every listing.
 *
 * The kernel's readdir cache is one per directory, filled by whichever open
 * handle reads the next offset first, and a reader that leaves the cache
 * asks dsfs to go on from the last offset it saw, whatever listing that
 * came from.  So an offset must say where to go on in any listing, before
 * or after a change: as in ext4's hashed directories, entries are listed in
 * the order of a 63-bit hash of their names, and an entry's offset is its
 * hash, so a listing goes on with the names that hash higher.  A name that
 * stays in the directory is read exactly once by every reader, and names
 * made or removed meanwhile may or may not show, as POSIX allows.  (Two
 * names with the same hash would hide one of them from a reader that
 * stopped between them: with 63 bits, about one chance in 10^7 for a
 * directory of a million names.)
 *
 * A listing is taken once and shared until a change in its directory; it
 * lives while a handle reads it, so the daemon's memory holds only the
 * listings in use.  It is the merged listing itself (listing.c), taken
 * over whole: 8 bytes and the name per entry, the names in one block,
 * sorted by offset as it was gathered, with nothing copied.  READDIRPLUS
 * looks each name up as it sends it, which also gives the kernel
 * attributes as of now rather than as listed.
 */
#ifndef DSFS_DIRLIST_H
#define DSFS_DIRLIST_H

#include "inode.h"

struct dir_snap {
	unsigned refs;	  /* cursors reading it */
	struct node *dir; /* holds a reference while it is the dir's */
	uint64_t changes; /* the stack's change count it was taken at */
	size_t count;
	struct dirent_item *items; /* a listing's (dsfs.h), sorted by off */
	char *names;		   /* every name, each ending in a NUL */
};

/* One open directory's place: the listing it reads. */
struct dir_cursor {
	struct dir_snap *snap;
};

struct dirlists {
	pthread_mutex_t lock; /* guards every dir_snap and node->snap */
	struct node_table *nodes;
};

/* Where listings come from, and how to tell one is out of date. */
struct dirlist_source {
	/* The listing of dir into ls, with the stack's change count then in
	 * ls->changes. */
	int (*take)(void *arg, struct node *dir, struct listing *ls);
	/* Whether dir may have changed since change count `since`. */
	bool (*changed)(void *arg, struct node *dir, uint64_t since);
	void *arg;
};

int dirlists_init(struct dirlists *dl, struct node_table *nodes);
void dirlists_destroy(struct dirlists *dl);

/* Bind c to a listing of dir that is up to date: the one it reads, the
 * directory's shared one, or a new one. */
int dirlist_get(struct dirlists *dl, struct node *dir, struct dir_cursor *c,
		const struct dirlist_source *src);
void dirlist_release(struct dirlists *dl, struct dir_cursor *c);

/*
 * Positions in a listing: 0 is ".", 1 is "..", 2 + i is ls.items[i].
 * dirlist_index() is where a readdir from offset off starts, and
 * dirlist_off() the offset to go on from after position i.
 */
size_t dirlist_index(const struct dir_snap *s, off_t off);
off_t dirlist_off(const struct dir_snap *s, size_t i);
/* The name at position i, 2 or more, and its kind (enum dsfs_kind). */
const char *dirlist_name(const struct dir_snap *s, size_t i);
int dirlist_kind(const struct dir_snap *s, size_t i);

#endif
