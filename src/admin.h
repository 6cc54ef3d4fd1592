/*
 * admin.h - the admin tool's commands on the kv/ tree of a store: dump,
 * load, diff and the selective factory reset.
 *
 * They run the same code whether dsfsctl has the store to itself (layers
 * opened from the store's files, no ephemeral layer) or the mounted daemon
 * runs them for it (its own layers, under the stack's lock; control.h's
 * "admin" request): so the output is the same either way.  They see the
 * layers only through layer.h, so they work on every runtime backend;
 * load and reset change the runtime layer in one layer_apply() change set.
 *
 * admin_tree.c reads the merged view (or one layer) of kv/ the way the
 * overlay does; dump.c, load.c and diff.c are the commands; admin_run()
 * (admin_tree.c) parses a command's arguments and runs it.
 */
#ifndef DSFS_ADMIN_H
#define DSFS_ADMIN_H

#include <stdbool.h>
#include <stdio.h>
#include <sys/types.h>

#include "dsfs.h"
#include "progress.h"
#include "store.h"

/* The largest document load reads (a runtime layer holds 13 MiB by
 * default). */
#define ADMIN_DOC_MAX (64 * MiB)

/* Where a command runs: the layers (NULL: absent), the scratch names to
 * leave out, who owns new entries, and whom to tell of each changed key. */
struct admin_env {
	struct dsfs_layer *layer[DSFS_NLAYERS];
	const char *scratch;
	uid_t uid;
	gid_t gid;
	void (*changed)(void *arg, const char *key);
	void *arg;
	enum progress_mode progress; /* dsfsctl's own work; OFF in the daemon */
};

/* Run one admin command: argv[0] is "dump", "load", "diff" or
 * "factory-reset", the rest its options and operands as on dsfsctl's
 * command line, the STORE operand left out.  Output goes to out. */
int admin_run(struct admin_env *env, int argc, char **argv, FILE *out,
	      struct store_error *e);

/* Is name one of the commands admin_run() knows? */
bool admin_command(const char *name);

/* ---- admin_tree.c: the tree as the commands read it ---------------- */

/* One child of a directory: what the merged view (or the one layer) shows. */
struct tree_item {
	char *name;
	int layer; /* where it was found */
	int limit; /* for a directory: the lowest layer its children use */
	struct dsfs_attr attr;
};

struct tree_dir {
	struct tree_item *items; /* sorted by name (strcmp) */
	size_t n, cap;
};

/*
 * The children of the directory key (e.g. "kv", "kv/app"): the merged
 * view of layers from..limit (only < 0), or layer `only` alone.  The merged
 * view hides whiteouts; a single layer shows them (kind DSFS_WHITEOUT).
 * Scratch names are left out.  A directory absent everywhere is empty.
 */
int tree_list(const struct admin_env *env, const char *key, int from, int limit,
	      int only, struct tree_dir *out);
void tree_dir_free(struct tree_dir *d);

/* Look key up in the merged view of layers from..DSFS_NLAYERS-1 (only <
 * 0) or in layer only: -ENOENT if it is absent or a whiteout there. */
int tree_lookup(const struct admin_env *env, const char *key, int from,
		int only, struct tree_item *out);

/* The whole value of the file key in layer, allocated (NUL-terminated). */
int tree_read(struct dsfs_layer *l, const char *key, const struct dsfs_attr *a,
	      char **data, size_t *len);

/* "ephemeral", "runtime" or "factory". */
const char *layer_label(int layer);

/* "dir/name", allocated; NULL when out of memory. */
char *tree_join(const char *dir, const char *name);

/* Print s as a JSON string (quoted, escaped). */
void json_put_string(FILE *out, const char *s);

/* ---- the commands ---------------------------------------------------- */

/* admin_tree.c: the whole file (or "-": standard input), at most max
 * bytes, allocated and NUL-terminated. */
int admin_read_file(const char *file, size_t max, char **buf, size_t *len,
		    struct store_error *e);

/* archive.c: the store's runtime and factory layers, exactly, as an
 * archive (format: man/dsfsctl.8). */
#define ARCHIVE_MAGIC "dsfs-archive 1"
#define ARCHIVE_MAX (512 * MiB) /* the largest archive load reads */
int archive_dump(const struct admin_env *env, FILE *out, struct store_error *e);

/* archive_load.c: the unmounted store s (its layers in env) becomes what
 * the archive buf[0..len) holds, or stays as it was. */
int archive_load(struct store *s, struct admin_env *env, const char *label,
		 const char *buf, size_t len, struct store_error *e);

/* archive_load.c, the same in steps for a mounted store (the daemon):
 * archive_read() checks the whole archive (showing its progress) and
 * writes its factory records, if it has any, into STORE/factory.db.new
 * (archive_has_factory());
 * archive_apply() makes the runtime layer of env the archive's runtime
 * records in one layer_apply(); archive_free() removes the new image if
 * it is still there (not installed).  buf and s must outlive the
 * archive: it points into them. */
struct archive;
int archive_read(struct store *s, const char *label, const char *buf,
		 size_t len, enum progress_mode progress, struct archive **out,
		 struct store_error *e);
int archive_apply(struct archive *a, const struct admin_env *env);
bool archive_has_factory(const struct archive *a);
void archive_free(struct archive *a);

/* dump.c: the kv/ subtree at path ("" for all) as one JSON document. */
int dump_json(const struct admin_env *env, const char *path, int only,
	      FILE *out, struct store_error *e);

/* load.c: the JSON document doc[0..len) (named label in messages) into
 * the runtime layer at path ("" for kv/ itself), merged or replacing. */
int load_json(struct admin_env *env, const char *label, const char *doc,
	      size_t len, const char *path, bool replace, FILE *out,
	      struct store_error *e);

/* diff.c: what the runtime and ephemeral layers change against the
 * factory, one line each or JSON lines. */
int diff_run(const struct admin_env *env, bool json, FILE *out,
	     struct store_error *e);

/* diff.c: a factory reset limited to prefix (NULL: everything) sparing
 * the keep paths; with dry_run, only print what would go. */
int reset_run(struct admin_env *env, const char *prefix, char **keep,
	      size_t nkeep, bool dry_run, FILE *out, struct store_error *e);

#endif
