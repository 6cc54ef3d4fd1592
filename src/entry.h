/*
 * entry.h - one value named by its path in the mount, read and committed
 * through the overlay without a mount: dsfsctl get, set and update, in the
 * daemon (control.c, on its live stack) and on an unmounted store
 * (value_cmds.c, on a stack of the store's files).
 *
 * A path is what follows the mount point: "kv/app/x", "images/logo",
 * "devices/ID/x" (the same entry as "kv/__ID/x"), or one layer's own
 * tree, "runtime/kv/x", "ephemeral/images/y" ("factory/..." reads, and
 * refuses changes with -EROFS).  No leading '/', no "." or "..", every
 * name valid (names.c).  A commit validates the value as a write through
 * the mount would, makes the missing directories on the way (like
 * mkdir -p, mode 0755), and keeps an existing entry's mode and owner; a
 * new one gets mode 0644 and the caller's uid and gid.
 */
#ifndef DSFS_ENTRY_H
#define DSFS_ENTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dsfs.h"

struct entry {
	struct loc loc;
	bool exists; /* found holds what the path shows now */
	struct found found;
	int layer;	      /* where a commit goes (-EROFS: none) */
	uint64_t frees;	      /* value bytes a commit replaces there */
	uint64_t names;	      /* name bytes a commit adds there (its own,
			     * and the directories it makes) */
	size_t missing;	      /* ancestors to make: the first is named after */
	size_t missing_at;    /* the '/' at key[missing_at] */
	struct dsfs_attr dir; /* the deepest existing ancestor directory */
	bool dir_is_root;     /* ...which is a tree root (dir unset) */
};

/* Resolve path on s into e.  -EINVAL (a malformed path: *why says how),
 * -ENAMETOOLONG, -ENOTDIR (an ancestor is a value), -EISDIR (the path
 * is a directory), or a layer's error. */
int entry_resolve(struct dsfs_stack *s, const char *path, struct entry *e,
		  const char **why);

/* The value of an existing entry, in a new buffer the caller frees. */
int entry_read(struct dsfs_stack *s, const struct entry *e, char **data,
	       size_t *len);

/* May uid (with primary group gid) change e?  The tree roots belong to
 * (owner_uid, owner_gid), mode 0755.  -EROFS under factory/, -EACCES as
 * default_permissions would answer an open for writing (or a create in
 * the directory). */
int entry_may_write(const struct entry *e, uid_t uid, gid_t gid,
		    uid_t owner_uid, gid_t owner_gid);

/* Validate data[0..len) and commit it as e's value, making missing
 * directories first.  -EINVAL with the validator's reason (byte offset,
 * detected bytes) in why[0..size), -ENOSPC with the budget, or the
 * overlay's error. */
int entry_commit(struct dsfs_stack *s, const struct entry *e, const void *data,
		 size_t len, uid_t uid, gid_t gid, char *why, size_t size);

/* Reasons worded alike wherever a value is refused: "WHY; it starts with
 * 89 50 4e 58" (an image's first bytes, at most 8), JSON's with a byte,
 * and an -ENOSPC from a layer's own check, with its budget in figures.
 * Each returns out. */
const char *entry_head_reason(const char *why, const void *head, size_t n,
			      char *out, size_t size);
/* A JSON reason that names no byte ("incomplete JSON at end of file")
 * gets the length at which the content ended. */
const char *entry_json_reason(const char *why, size_t len, char *out,
			      size_t size);
const char *entry_budget_reason(struct dsfs_stack *s, int layer, size_t len,
				char *out, size_t size);

#endif
