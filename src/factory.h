/*
 * factory.h - the work behind dsfsctl's commands (dsfsctl.c only parses
 * the command line): building a factory image from a directory laid out
 * like the mount, checking an image entry by entry, installing it into a
 * store, and the store-level commands (factory reset, usage, check).
 *
 * A command on a store works offline when it can take STORE/lock (no
 * daemon has the store; dsfsctl holds the lock until it is done), and
 * otherwise asks the mounted daemon over STORE/control.sock (control.h).
 * Only the store directory's owner or root may run them.
 *
 * Each function returns 0 or a negative errno; on failure e->text holds
 * one line naming the file or path and the reason, for dsfsctl to print.
 */
#ifndef DSFS_FACTORY_H
#define DSFS_FACTORY_H

#include <stdint.h>
#include <stdio.h>

struct ctl_error {
	char text[1024];
};

/* Build the factory image IMAGE from the directory src (kv/, images/,
 * devices/) within budget bytes.  The whole source is refused at its first
 * bad entry and nothing is left at image; image is replaced atomically. */
int factory_build(const char *src, const char *image, uint64_t budget,
		  struct ctl_error *e);

/* Check every entry of image, then make it store's factory image
 * atomically: offline by rename, mounted through the daemon. */
int factory_install(const char *image, const char *store, struct ctl_error *e);

/* Empty the runtime layer (and, mounted, the ephemeral one). */
int store_factory_reset(const char *store, struct ctl_error *e);

/* Print "LAYER USED BUDGET" for ephemeral, runtime and factory to out. */
int store_usage(const char *store, FILE *out, struct ctl_error *e);

/* Offline only: check runtime.db and factory.db (SQLite integrity, every
 * value, the usage figures) and print a report to out; -EINVAL if any
 * problem was found. */
int store_check(const char *store, FILE *out, struct ctl_error *e);

#endif
