/*
 * test_layer.h - what the parts of the layer conformance test share: the
 * one mutable state of the program, the helpers every part writes its
 * checks with, and the tests main() runs.
 *
 * The program is test_layer.c (the implementations, the helpers, main())
 * and one file per group of tests: test_layer_entries.c (names, values,
 * renames, listings, metadata), test_layer_space.c (budgets, usage,
 * images and their pins, threads), test_layer_changes.c (directory times,
 * snapshots, change sets, a listing under churn), test_layer_store.c
 * (store files: persistence, refusals, crashes, a full disk) and
 * test_layer_pg.c (several hosts of one PostgreSQL database, outages).
 */
#ifndef DSFS_TEST_LAYER_H
#define DSFS_TEST_LAYER_H

#define TAP_SEVERAL_FILES
#include "layer.h"
#include "tap.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define BIG (64u << 20)
#define TOKEN_T \
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define TOKEN_U \
	"fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210"

struct impl;

/* The test program's state: which implementation runs, where its stores
 * go. */
struct layer_suite {
	char tmpdir[256];	/* short, so that every path made fits */
	const char *impl_name;	/* the prefix of every check's name */
	int store_seq;		/* numbers the store files made */
	const struct impl *cur; /* the implementation under test */
};
extern struct layer_suite tl;

/* A check's name, prefixed with the implementation under test.  The
 * buffer is reused by the next call, after is_int() has printed it. */
const char *nm(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Ends the program with a TAP "Bail out!" line. */
void bail(const char *what) __attribute__((noreturn));

/* TMPDIR/name of the test's private directory into buf. */
void store_path(char *buf, size_t cap, const char *name);

/* A new, empty layer of the implementation under test, or bail(). */
struct dsfs_layer *fresh(uint64_t budget);

/* A file's attributes with this mode and fixed owner and times. */
struct dsfs_attr attr(uint32_t mode);

/* layer_commit() of a file (0644) holding data, s, or an image. */
int put_len(struct dsfs_layer *l, const char *key, const void *data,
	    size_t len);
int put(struct dsfs_layer *l, const char *key, const char *s);
int put_img(struct dsfs_layer *l, const char *key, const char *token,
	    const void *data, size_t len);

/* layer_mkdir() of a directory (0755). */
int mkd(struct dsfs_layer *l, const char *key);

/* The whole value of key as a string (static buffer), or "<errno N>". */
const char *get(struct dsfs_layer *l, const char *key);

/* key's kind (DSFS_FILE, ...) or a negative errno; its version or 0; the
 * layer's bytes used or UINT64_MAX. */
int kind_of(struct dsfs_layer *l, const char *key);
uint64_t version_of(struct dsfs_layer *l, const char *key);
uint64_t used_of(struct dsfs_layer *l);

/* What collect_cb(), a list() callback, gathered: "name/kind" strings. */
struct names {
	char *v[64];
	int n;
	int calls;
	int stop_after;	      /* return 7 after this many calls, if > 0 */
	struct dsfs_layer *l; /* call back into the layer, if set */
};
int collect_cb(void *ctx, const char *name, const struct dsfs_attr *a);

/* The children of dir as "name/kind ..." sorted, or "<errno N>". */
const char *ls(struct dsfs_layer *l, const char *dir);

/* n pseudo-random bytes from seed, NUL bytes at the edges and middle. */
void fill(unsigned char *p, size_t n, unsigned seed);

bool same_time(struct timespec a, struct timespec b);

/* The whole blob reads back as data[0..len); the blob's size or a
 * negative errno (as a uint64_t). */
bool blob_is(struct dsfs_layer *l, const char *token, const unsigned char *data,
	     size_t len);
uint64_t blob_size(struct dsfs_layer *l, const char *token);

/* test_layer_entries.c: names, values, renames, listings and metadata */
void t_roundtrip(void);
void t_replace(void);
void t_replace_op(void);
void t_take_file(void);
void t_fetch(void);
void t_parents(void);
void t_mkdir(void);
void t_inherit_group(void);
void t_whiteouts(void);
void t_remove(void);
void t_rename_files(void);
void t_rename_errors(void);
void t_rename_subtree(void);
void t_list(void);
void t_setattr(void);

/* test_layer_space.c: budgets, usage, images and their pins, threads */
void t_budget(void);
void t_usage(void);
void t_images(void);
void t_hash_token(void);
void t_clear(void);
void t_pins(void);
void t_readonly(void);
void t_many(void);
void t_threads(void);
void t_sync(void);

/* test_layer_changes.c: directory times, snapshots, change sets, churn */
void t_dirtimes(void);
void t_snapshot(void);
void t_apply(void);
void t_list_churn(void);

/* test_layer_store.c: tests of a SQLite store file */
void t_refusals(void);
void t_persist(void);
void t_image(void);
void t_mode(void);
void t_disk_full(void);
void t_kill(void);
void t_carry(void);
void t_pin_crash_files(void);
void t_named_files(void);
void t_pin_crash(void);
void t_entry_kind(void);

/* test_layer_pg.c: several hosts of one PostgreSQL database, outages */
void t_pg_hosts(void);
void t_pg_budget(void);
void t_pg_usage_seen(void);
void t_pg_refused_statement(void);
void t_pg_fast_forms(void);
void t_pg_defer(void);
void t_pg_refusals(void);
void t_pg_hide(void);
void t_pg_outage(void);
void t_pg_remember(void);
void t_pg_remember_changes(void);

#endif
