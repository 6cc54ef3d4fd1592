/*
 * vectors.h - what the content tests share: a replayable random source,
 * and a validator run over a vector three ways - all at once, one byte at
 * a time, and in random chunks - each way required to get the same verdict.
 *
 * An invalid vector also names the offset of the first byte that feed()
 * must refuse (-1: only finish() may refuse), which checks both that
 * rejection is early and that no viable prefix is refused.
 *
 * DSFS_TEST_SEED=N in the environment replays a given random run; the seed
 * used is printed as a TAP comment by rng_seed().  Header-only, like tap.h
 * (included before it): include it from exactly one .c file per program.
 */
#ifndef DSFS_TEST_VECTORS_H
#define DSFS_TEST_VECTORS_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tap.h"
#include "validate.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* The state of rnd(); a function, like tap_state(), so that a program
 * that does not use it draws no warning. */
static inline uint64_t *rng_state(void)
{
	static uint64_t state;

	return &state;
}

/* Seeds rnd() from DSFS_TEST_SEED, or a fixed seed, and prints the seed
 * used as a TAP comment, so that a failing run can be replayed. */
static inline void rng_seed(void)
{
	const char *seed = getenv("DSFS_TEST_SEED");
	uint64_t *s = rng_state();

	*s = seed ? strtoull(seed, NULL, 0) : 0x5eed5eedULL;
	if (!*s)
		*s = 1;
	diag("DSFS_TEST_SEED=%llu", (unsigned long long)*s);
}

/* xorshift64*: small, fast and replayable from the seed. */
static inline uint64_t rnd(void)
{
	uint64_t *s = rng_state();

	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 0x2545f4914f6cdd1dULL;
}

static inline size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static inline void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		perror("malloc");
		exit(2);
	}
	return p;
}

/* A vector shown in a test name: C-style escapes, cut when long.  Four
 * rotating buffers, so that one printf can show two. */
static inline const char *esc(const void *buf, size_t len)
{
	static char out[4][160];
	static int k;
	const uint8_t *p = buf;
	char *o = out[k++ % 4];
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (n > 120) {
			snprintf(o + n, 160 - n, "...(%zu bytes)", len);
			return o;
		}
		/* '#' could start a TAP directive */
		if (p[i] == '\\') {
			o[n++] = '\\';
			o[n++] = '\\';
		} else if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '#') {
			o[n++] = (char)p[i];
		} else {
			n += (size_t)snprintf(o + n, 160 - n, "\\x%02x", p[i]);
		}
	}
	o[n] = '\0';
	return o;
}

enum chunking {
	ALL_AT_ONCE,
	BYTE_AT_A_TIME,
	RANDOM_CHUNKS,
};

/* What a validator said about some content. */
struct outcome {
	int rc;		  /* 0 or the first error */
	bool by_feed;	  /* the error came from feed(), not finish() */
	long fail_at;	  /* first byte of the refused feed, or -1 */
	const char *type; /* when rc == 0 */
	char reason[160];
};

static inline void run(enum dsfs_content kind, const void *buf, size_t len,
		       enum chunking how, struct outcome *o)
{
	const uint8_t *p = buf;
	struct dsfs_validator *v = validator_new(kind);
	size_t i = 0, n;

	memset(o, 0, sizeof(*o));
	o->fail_at = -1;
	if (!v) {
		o->rc = -ENOMEM;
		return;
	}
	while (i < len) {
		n = how == ALL_AT_ONCE	  ? len :
		    how == BYTE_AT_A_TIME ? 1 :
					    1 + rnd_below(17);
		if (n > len - i)
			n = len - i;
		o->rc = validator_feed(v, p + i, n);
		if (o->rc) {
			o->by_feed = true;
			o->fail_at = (long)i;
			break;
		}
		i += n;
	}
	if (!o->rc)
		o->rc = validator_finish(v, &o->type);
	snprintf(o->reason, sizeof(o->reason), "%s", validator_reason(v));
	validator_free(v);
}

/* A vector: some content and the verdict it must get. */
struct vec {
	const char *data;
	size_t len;
	const char *type; /* valid: its type; NULL: invalid */
	long at;	  /* invalid: first byte feed() refuses, or -1 */
};

/* sizeof, not strlen: vectors may hold NUL bytes. */
#define OK(s, t)                        \
	{                               \
		s, sizeof(s) - 1, t, -1 \
	}
#define BAD(s, n)                         \
	{                                 \
		s, sizeof(s) - 1, NULL, n \
	}
#define INC(s)                             \
	{                                  \
		s, sizeof(s) - 1, NULL, -1 \
	}

/* Runs one vector three ways and checks all three against it. */
static inline void check_vec(enum dsfs_content kind, const struct vec *t)
{
	struct outcome o[3];
	const char *type = NULL, *reason = NULL;
	char where[32];
	int rc, i, expect = t->type ? 0 : -EINVAL;
	bool pass = true;

	run(kind, t->data, t->len, ALL_AT_ONCE, &o[0]);
	run(kind, t->data, t->len, BYTE_AT_A_TIME, &o[1]);
	run(kind, t->data, t->len, RANDOM_CHUNKS, &o[2]);
	rc = validate_buffer(kind, t->data, t->len, &type, &reason);

	for (i = 0; i < 3; i++) {
		if (o[i].rc != expect)
			pass = false;
		if (t->type && (!o[i].type || strcmp(o[i].type, t->type)))
			pass = false;
		/* Early: feed() refuses (whichever chunking) exactly when a
		 * byte can be named. */
		if (!t->type && o[i].by_feed != (t->at >= 0))
			pass = false;
	}
	if (rc != expect || (t->type && (!type || strcmp(type, t->type))))
		pass = false;
	/* Exact: one byte at a time, the refused byte is the named one, and
	 * the reason says where it is. */
	if (!t->type) {
		snprintf(where, sizeof(where), "byte %ld", t->at);
		if (o[1].fail_at != t->at)
			pass = false;
		if (t->at >= 0 && !strstr(o[1].reason, where))
			pass = false;
		if (!reason || strcmp(reason, o[0].reason))
			pass = false;
	}
	ok(pass, "'%s' %s%s%s", esc(t->data, t->len),
	   t->type ? "is " : "is refused",
	   t->type    ? t->type :
	   t->at >= 0 ? " at " :
			" at the end",
	   t->type    ? "" :
	   t->at >= 0 ? where :
			"");
	if (!pass)
		for (i = 0; i < 3; i++)
			diag("  %s: rc %d %s at %ld, type %s, reason: %s",
			     i == 0 ? "at once" :
			     i == 1 ? "bytewise" :
				      "random",
			     o[i].rc, o[i].by_feed ? "by feed" : "by finish",
			     o[i].fail_at, o[i].type ? o[i].type : "-",
			     o[i].reason);
}

#endif
