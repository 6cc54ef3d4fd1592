/*
 * dsfsctl.h - the work behind dsfsctl's commands (dsfsctl.c only parses
 * the command line): building a factory image from a directory laid out
 * like the mount (mkfactory.c), checking an image entry by entry
 * (image_check.c), installing it into a store (install.c), the
 * store-level commands factory reset, usage and check (store_cmds.c), and
 * get, set and update of one value (value_cmds.c), and watch
 * (watch_cli.c).
 *
 * A command on a store works offline when it can take STORE/lock (no
 * daemon has the store; dsfsctl holds the lock until it is done), and
 * otherwise asks the mounted daemon over STORE/control.sock (control.h).
 * Only the store directory's owner or root may run them (store.h).
 *
 * Each function returns 0 or a negative errno; on failure e->text holds
 * one line naming the file or path and the reason, for dsfsctl to print.
 */
#ifndef DSFS_DSFSCTL_H
#define DSFS_DSFSCTL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "progress.h"
#include "store.h"

/* ---- the commands ---------------------------------------------------- */

/* Build the factory image IMAGE from the directory src (kv/, images/,
 * devices/) within budget bytes.  The whole source is refused at its first
 * bad entry and nothing is left at image; image is replaced atomically. */
int factory_build(const char *src, const char *image, uint64_t budget,
		  enum progress_mode progress, struct store_error *e);

/* Check every entry of image, then make it store's factory image
 * atomically: offline by rename, mounted through the daemon. */
int factory_install(const char *image, const char *store,
		    struct store_error *e);

/* Empty the runtime layer (and, mounted, the ephemeral one). */
int store_factory_reset(const char *store, struct store_error *e);

/* Print "LAYER USED BUDGET" for ephemeral, runtime and factory to out. */
int store_usage(const char *store, FILE *out, struct store_error *e);

/* Check runtime.db and factory.db (SQLite integrity, every value, the
 * usage figures) and print a report to out; -EINVAL if any problem was
 * found.  On a mounted store, a snapshot of them (check_live.c). */
int store_check(const char *store, FILE *out, enum progress_mode progress,
		struct store_error *e);

/* store_cmds.c: check the store file STORE/name (s need not be locked);
 * the number of problems, each reported on out. */
unsigned check_file(struct store *s, const char *name, FILE *out,
		    enum progress_mode progress);

/* check_live.c: check a consistent snapshot of the mounted store s. */
int check_mounted(struct store *s, unsigned *problems, FILE *out,
		  enum progress_mode progress, struct store_error *e);

/* usage_fmt.c: usage -h (df-like, human units) or --json; -EINVAL with
 * e->text empty for a usage error. */
int usage_main(int argc, char **argv, struct store_error *e);

/* admin_cli.c: dump, load, diff and factory-reset with options, argv[0]
 * the command; -EINVAL with e->text empty for a missing STORE. */
int admin_main(int argc, char **argv, enum progress_mode progress,
	       struct store_error *e);
/* Have the daemon that has s run argv (control_admin.c); its output goes
 * to stdout. */
int admin_ask(struct store *s, int argc, char **argv, struct store_error *e);
/* The same, the text of the daemon's OK line in ok[0..oksize). */
int admin_ask_ok(struct store *s, int argc, char **argv, char *ok,
		 size_t oksize, struct store_error *e);
/* value_cmds.c: one value by its path in the mount (entry.h), mounted
 * (through the daemon) or not (on the store's files, with the default
 * budgets).  get prints the value to out as stored; set stores
 * value[0..len) after validating it; update runs argv with the current
 * value on its standard input (empty if there is none) and stores what it
 * prints, holding the entry's flock (mounted: the one `flock` takes on
 * the file in the mount) or STORE/lock (unmounted) meanwhile, so that
 * updates and flock users do not lose each other's changes. */
int value_get(const char *store, const char *path, FILE *out,
	      struct store_error *e);
int value_set(const char *store, const char *path, const char *value,
	      size_t len, struct store_error *e);
int value_update(const char *store, const char *path, char **argv,
		 struct store_error *e);

/* watch_cli.c: print one JSON line per committed change under path (a
 * path in the mount, "" for all) until SIGINT, SIGTERM, standard output
 * closed or the daemon's unmount (0).  Through the daemon when mounted;
 * otherwise on a shared runtime's database, and -EOPNOTSUPP for a local
 * runtime, which nothing but dsfsctl can change. */
int watch_store(const char *store, const char *path, struct store_error *e);

/* ---- what the commands share ----------------------------------------- */

/* The unit in which values and images are read and copied. */
#define CTL_CHUNK (64 * 1024)

/* Append "/name" (or name, to an empty buf) to the string buf of size cap;
 * *was gets the length to cut back to.  -ENAMETOOLONG if it does not fit:
 * buf is unchanged then. */
int key_push(char *buf, size_t cap, const char *name, size_t *was);

/* Ask the daemon that has the store s (store_cmds.c); store_call() with
 * a value to send or to receive (control_call()). */
int store_ask(const struct store *s, const char *request, char *reply,
	      size_t size, struct store_error *e);
int store_call(const struct store *s, const char *request, const void *body,
	       size_t blen, char **data, size_t *dlen, char *reply, size_t size,
	       struct store_error *e);

/* image_check.c */

struct blobsize;

/*
 * One walk over a layer's kv/ and images/.  install-factory stops at the
 * first problem (report == NULL); check prints every problem to report and
 * goes on.  Usage is recounted the way layer.h defines it: names plus
 * values, an image blob once per token.
 */
struct walk {
	struct dsfs_layer *l;
	const char *label; /* the file, for messages */
	bool image;	   /* a factory image: whiteouts have no place */
	FILE *report;
	struct store_error *e;
	unsigned problems;
	uint64_t dirs, files, whiteouts, used;
	struct blobsize *blobs;
	size_t nblobs, capblobs;
	unsigned char *buf;	   /* CTL_CHUNK bytes */
	struct progress *progress; /* or NULL */
	char key[DSFS_KEY_MAX];
};

/* Walk the whole layer w->l; problems counted in w->problems. */
int check_layer(struct walk *w);

/* Walk the layer l and print each problem, then the summary line
 * "LABEL: N directories, N files, N whiteouts, N bytes used: ok" (or
 * PROBLEMS) to out; problems found before are added to the number
 * returned.  dsfsctl check on a store's files and the daemon's check of
 * its runtime layer (control_check.c) print the same. */
unsigned check_layer_report(struct dsfs_layer *l, const char *label, bool image,
			    FILE *out, unsigned problems,
			    enum progress_mode progress);

/* Open image as the daemon would and check all of it; stop at the first
 * problem. */
int check_image_file(const char *image, enum progress_mode progress,
		     struct store_error *e);

#endif
