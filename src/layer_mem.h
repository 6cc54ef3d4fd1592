/*
 * layer_mem.h - what the two files of the memory layer share, and no one
 * else includes: layer_mem.c (the operations of layer.h, under the lock)
 * and layer_mem_tree.c (the entries and blobs they are made of).
 *
 * Every entry, the two tree roots included, is a struct mem_entry in one
 * hash table (htab.h) keyed by its full key ("kv/app/x"), so lookup,
 * commit and removal cost the length of the key, not the size of the
 * store.  Each directory also links its children in a list, so that
 * listing costs O(children) and renaming a directory re-keys only its
 * subtree.  A directory counts its children that are not whiteouts
 * (nreal), which answers "does it hold only whiteouts?" in O(1).
 *
 * Image values (a non-empty token) live in a second hash table of
 * reference-counted blobs, one per token, shared by every entry that
 * names it.  A blob also counts its pins (layer.h, Pins): it is freed
 * when both counts are zero, and counted in usage until then.
 *
 * Every function of layer_mem_tree.c is called with m->lock held.
 */
#ifndef DSFS_LAYER_MEM_H
#define DSFS_LAYER_MEM_H

#include "htab.h"
#include "layer.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct mem_blob {
	struct htab_node h; /* in m->blobs, keyed by token */
	char token[DSFS_TOKEN_LEN + 1];
	unsigned char *data; /* owned */
	size_t len;
	unsigned long refs; /* entries naming this token */
	unsigned long pins; /* pin_blob() calls not yet unpinned */
};

struct mem_entry {
	struct htab_node h;	       /* in m->entries, keyed by key */
	char *key;		       /* owned: the full key */
	const char *name;	       /* last component, inside key */
	struct mem_entry *parent;      /* NULL for a tree root */
	struct mem_entry *prev, *next; /* siblings in parent->kids */
	struct mem_entry *kids;	       /* DSFS_DIR: children, no order */
	size_t nreal;		       /* DSFS_DIR: kids not whiteouts */
	bool root;		       /* "kv" or "images": never removed */
	struct dsfs_attr a;
	unsigned char *value;  /* plain file: owned copy of the value */
	struct mem_blob *blob; /* image file: one reference */
};

struct mem_layer {
	struct dsfs_layer base; /* first: (struct dsfs_layer *) is a cast */
	pthread_mutex_t lock;	/* protects everything below */
	struct htab entries;	/* every entry, roots included */
	struct htab blobs;	/* image blobs by token */
	uint64_t used;
	uint64_t budget;
	uint64_t seq; /* last version handed out; never goes back */
};

static inline struct mem_layer *to_mem(struct dsfs_layer *l)
{
	return (struct mem_layer *)l;
}

/* Entries. */
struct mem_entry *mem_find_len(struct mem_layer *m, const char *key,
			       size_t len);
struct mem_entry *mem_find(struct mem_layer *m, const char *key);
struct mem_blob *mem_find_blob(struct mem_layer *m, const char *token);
/* The directory that holds key: a tree root or a directory entry.
 * -ENOENT if it is missing or a whiteout, -ENOTDIR if it is a file,
 * -EINVAL if key has no parent part or an empty last component. */
int mem_find_parent(struct mem_layer *m, const char *key,
		    struct mem_entry **out);
const char *mem_base_name(const char *key);
void mem_link_child(struct mem_entry *dir, struct mem_entry *e);
void mem_unlink_child(struct mem_entry *e);
/* A new entry for key, not yet in the table nor in a directory. */
struct mem_entry *mem_entry_new(const char *key);
/* Attach a new entry to the table and to dir; the kind must be set. */
void mem_attach(struct mem_layer *m, struct mem_entry *dir,
		struct mem_entry *e);
/* Take e out of the table and its directory and free it; its kids must
 * already be gone. */
void mem_entry_destroy(struct mem_layer *m, struct mem_entry *e);
/* Drop a file's value (its own copy or its blob reference). */
void mem_drop_value(struct mem_layer *m, struct mem_entry *e);
/* Free the whiteouts of a directory that holds nothing else. */
void mem_drop_whiteouts(struct mem_layer *m, struct mem_entry *dir);
/* Turn e into a whiteout of a new version; the caller dropped its value
 * and kids. */
void mem_set_whiteout(struct mem_layer *m, struct mem_entry *e);
/* A name in dir changed: its mtime and ctime are now, with a new version
 * (nothing for a tree root, or NULL). */
void mem_touch_dir(struct mem_layer *m, struct mem_entry *dir,
		   struct timespec now);

/* Blobs. */
void mem_blob_free(struct mem_layer *m, struct mem_blob *b);
/* Drop one reference; a pinned blob outlives its last one. */
void mem_blob_put(struct mem_layer *m, struct mem_blob *b);

/* Budget: bytes given back when e's value goes, when e goes (with a
 * directory's whiteouts), and whether a change fits. */
uint64_t mem_value_cost(const struct mem_entry *e);
uint64_t mem_entry_cost(const struct mem_entry *e);
bool mem_fits(const struct mem_layer *m, uint64_t add, uint64_t sub);

/* Subtrees: a preorder walk of top's descendants (mem_next_in(top, top)
 * first), their keys once top is named `to` (NULL when out of memory),
 * and giving an entry its new key. */
struct mem_entry *mem_next_in(struct mem_entry *e, const struct mem_entry *top);
char **mem_subtree_keys(struct mem_entry *src, const char *to, size_t *count);
void mem_rekey(struct mem_layer *m, struct mem_entry *e, char *key);

/* Free every entry but the roots and every blob but the pinned ones, or
 * everything if closing (layer.h, clear). */
void mem_clear_locked(struct mem_layer *m, bool closing);

/* The whole layer: c becomes a copy of m's entries, blobs, usage and
 * version counter (0, or -ENOMEM with nothing left to free);
 * mem_swap_tree() makes c's the content of m and m's old content c's;
 * mem_free_tree() frees a copy's. */
int mem_clone(const struct mem_layer *m, struct mem_layer *c);
void mem_swap_tree(struct mem_layer *m, struct mem_layer *c);
void mem_free_tree(struct mem_layer *c);

#endif
