/*
 * test_handle.c - an open file's private copy (handle.c) without a mount:
 * reads of the copy, O_TRUNC's pending truncation, writes validated as
 * they stream in and refused at the write that spoils the value, handles
 * poisoned by a refused write, the check made at commit, truncation, the
 * spare buffer a large copy grows into, and an image's token hashed as it
 * is written.
 *
 * handle.c is compiled into this program directly (it is part of the
 * daemon, not of libdsfs.a); the validator and SHA-256 come from libdsfs.a.
 * Streaming handles (images read from a layer) are left to the mount tests.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "handle.h"
#include "tap.h"

#define BIG_BUDGET (1u << 20)

/* A handle over a copy of value; the test fails at once without one. */
static struct handle *open_copy(enum dsfs_content content, const char *value,
				bool writable, bool truncate, uint64_t budget)
{
	size_t len = strlen(value);
	char *data = NULL;
	struct handle *h = NULL;
	int rc;

	if (len) {
		data = malloc(len);
		if (!data)
			abort();
		memcpy(data, value, len);
	}
	rc = handle_new(content, data, len, writable, truncate, budget, &h);
	if (rc || !h) {
		diag("handle_new: %d", rc);
		abort();
	}
	return h;
}

static ssize_t put(struct handle *h, uint64_t off, const char *s,
		   const char **why)
{
	return handle_write(h, off, s, strlen(s), why);
}

/* The whole copy as a string (the copies here hold no NUL but where a
 * test puts one). */
static const char *copy_of(struct handle *h)
{
	static char buf[256];
	ssize_t got = handle_read(h, 0, buf, sizeof(buf) - 1);

	buf[got < 0 ? 0 : got] = '\0';
	return buf;
}

static void test_reads(void)
{
	struct handle *h =
		open_copy(DSFS_CONTENT_JSON, "[1,2,3]", false, false, 0);
	char buf[8];

	is_str(copy_of(h), "[1,2,3]", "a reader reads the value it opened");
	is_int(handle_read(h, 5, buf, sizeof(buf)), 2,
	       "a read past the middle returns what is left");
	ok(memcmp(buf, "3]", 2) == 0, "and the right bytes");
	is_int(handle_read(h, 7, buf, sizeof(buf)), 0, "a read at the end: 0");
	is_int(handle_read(h, 100, buf, sizeof(buf)), 0,
	       "a read past the end: 0");
	handle_free(h);
}

static void test_private_copies(void)
{
	struct handle *a =
		open_copy(DSFS_CONTENT_JSON, "[1]", true, false, BIG_BUDGET);
	struct handle *b = open_copy(DSFS_CONTENT_JSON, "[1]", false, false, 0);
	const char *why;

	ok(!a->dirty && !a->trunc_pending, "a fresh writer is clean");
	is_int(put(a, 0, "[7]", &why), 3, "a writer rewrites its copy");
	ok(a->dirty, "and is dirty");
	is_str(copy_of(a), "[7]", "the writer reads its own bytes");
	is_str(copy_of(b), "[1]", "a reader of the same value does not");
	handle_free(a);
	handle_free(b);
}

static void test_trunc_pending(void)
{
	struct handle *h = open_copy(DSFS_CONTENT_JSON, "{\"a\":1}", true, true,
				     BIG_BUDGET);
	struct dsfs_attr a;
	const char *why;

	is_int(h->len, 0, "O_TRUNC: the copy starts empty");
	ok(h->trunc_pending, "O_TRUNC: the truncation is pending");
	ok(!h->dirty, "O_TRUNC: nothing written yet, so not dirty");
	is_str(copy_of(h), "", "O_TRUNC: a read of the copy sees nothing");
	memset(&a, 0, sizeof(a));
	is_int(handle_check(h, &a, &why), 0,
	       "O_TRUNC with nothing written checks as empty content");
	is_str(a.type, "empty", "its type is empty");
	handle_committed(h);
	ok(!h->trunc_pending && !h->dirty,
	   "once committed, the truncation is no longer pending");
	handle_free(h);

	h = open_copy(DSFS_CONTENT_JSON, "{\"a\":1}", true, true, BIG_BUDGET);
	is_int(put(h, 0, "42", &why), 2, "O_TRUNC then a write");
	ok(h->dirty && h->trunc_pending, "dirty, truncation still pending");
	is_int(handle_check(h, &a, &why), 0, "checks");
	is_str(a.type, "number", "as the number written");
	handle_committed(h);
	ok(!h->dirty && !h->trunc_pending,
	   "the write's commit commits the truncation too");
	handle_free(h);
}

static void test_streaming_refusal(void)
{
	struct handle *h =
		open_copy(DSFS_CONTENT_JSON, "", true, false, BIG_BUDGET);
	struct dsfs_attr a;
	const char *why = NULL;

	is_int(put(h, 0, "{\"a\":", &why), 5, "a valid beginning is taken");
	ok(why == NULL, "with no reason");
	is_int(put(h, 5, "]", &why), -EINVAL,
	       "the write that can no longer be valid JSON is refused");
	ok(why && *why, "with a reason (%s)", why ? why : "none");
	is_int(h->poisoned, -EINVAL, "the handle is poisoned");
	is_int(h->len, 5, "the refused bytes are not in the copy");
	is_int(put(h, 5, "1}", &why), -EINVAL,
	       "a later write, even a good one, is refused the same way");
	is_str(why, "an earlier write to this open file was refused",
	       "saying why");
	is_int(handle_check(h, &a, &why), -EINVAL,
	       "a poisoned handle never commits");
	is_str(why, "an earlier write to this open file was refused",
	       "the check says why too");
	handle_free(h);

	/* An existing value is fed first: appending is checked as its
	 * continuation. */
	h = open_copy(DSFS_CONTENT_JSON, "[1,2]", true, false, BIG_BUDGET);
	is_int(put(h, 5, ",3]", &why), -EINVAL,
	       "appending to a complete value is refused at the write");
	is_str(copy_of(h), "[1,2]", "and leaves the copy as it was");
	handle_free(h);

	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	is_int(put(h, 0, "GIX", &why), -EINVAL,
	       "bytes that begin no known image are refused at once");
	handle_free(h);
}

static void test_poisoned_by_space(void)
{
	struct handle *h = open_copy(DSFS_CONTENT_JSON, "", true, false, 4);
	struct dsfs_attr a;
	const char *why;

	is_int(put(h, 0, "[", &why), 1, "a write within the budget");
	is_int(put(h, 1, "1,2,3]", &why), -ENOSPC,
	       "a write beyond the layer's budget: ENOSPC");
	is_str(copy_of(h), "[", "nothing of it is kept");
	is_int(put(h, 1, "]", &why), -ENOSPC,
	       "a later write that would fit is refused the same way");
	is_int(handle_check(h, &a, &why), -ENOSPC,
	       "and the commit reports the first refusal");
	is_int(handle_truncate(h, 0), 0, "a truncation clears the refusal");
	is_int(h->poisoned, 0, "not poisoned any more");
	is_int(put(h, 0, "1", &why), 1, "so a write is taken again");
	is_int(handle_check(h, &a, &why), 0, "and commits");
	is_str(a.type, "number", "as a number");
	handle_free(h);

	h = open_copy(DSFS_CONTENT_JSON, "", true, false, BIG_BUDGET);
	is_int(put(h, UINT64_MAX - 1, "12", &why), -EFBIG,
	       "a write whose end overflows: EFBIG");
	is_int(h->poisoned, -EFBIG, "poisons the handle");
	handle_free(h);
}

static void test_check_at_commit(void)
{
	struct handle *h =
		open_copy(DSFS_CONTENT_JSON, "", true, false, BIG_BUDGET);
	char token[DSFS_TOKEN_LEN + 1];
	struct dsfs_attr a;
	const char *why;

	/* Out of order: not streamed, checked whole at commit. */
	is_int(put(h, 5, "1}", &why), 2, "a write past the end is taken");
	is_int(put(h, 0, "{\"a\":", &why), 5, "the gap filled afterwards");
	is_str(copy_of(h), "{\"a\":1}", "the copy is what was written");
	memset(&a, 0, sizeof(a));
	is_int(handle_check(h, &a, &why), 0, "the whole copy checks");
	is_str(a.type, "object", "as an object");
	is_str(a.token, "", "JSON has no token");
	handle_free(h);

	h = open_copy(DSFS_CONTENT_JSON, "", true, false, BIG_BUDGET);
	is_int(put(h, 3, "]", &why), 1, "out of order, invalid: taken");
	is_int(put(h, 0, "[1,", &why), 3, "the rest: taken");
	is_int(handle_check(h, &a, &why), -EINVAL,
	       "refused when the copy is checked");
	ok(why && *why, "with a reason (%s)", why ? why : "none");
	ok(h->check_failed, "the handle remembers its check failed");
	is_int(put(h, 2, "]", &why), 1, "a write after the failed check");
	ok(!h->check_failed, "clears that");
	is_int(handle_check(h, &a, &why), -EINVAL, "\"[1]]\" is still refused");
	handle_free(h);

	/* A stream that ends too early is refused by the check, not by a
	 * write; after a check the stream has ended, so a later write is
	 * checked with the whole copy. */
	h = open_copy(DSFS_CONTENT_JSON, "", true, false, BIG_BUDGET);
	is_int(put(h, 0, "{\"a\":1", &why), 6, "an incomplete object");
	is_int(handle_check(h, &a, &why), -EINVAL, "is refused at the check");
	is_int(put(h, 6, "}", &why), 1, "completing it is taken");
	is_int(handle_check(h, &a, &why), 0, "and then checks");
	is_str(a.type, "object", "as an object");
	ok(!a.hash_token, "a value that is not an image has no token");
	handle_committed(h);
	ok(!h->dirty, "committed: clean");
	is_int(put(h, 7, "x", &why), 1,
	       "after a commit a write is no longer streamed");
	is_int(handle_check(h, &a, &why), -EINVAL,
	       "but the next commit checks it");
	handle_free(h);

	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	is_int(handle_write(h, 0, "GIF89a\x01\x02", 8, &why), 8,
	       "an image streamed in");
	memset(&a, 0, sizeof(a));
	is_int(handle_check(h, &a, &why), 0, "checks");
	is_str(a.type, "image/gif", "as a GIF");
	ok(!a.hash_token && strlen(a.token) == 64,
	   "its token was hashed as it streamed in (test_image_token)");
	layer_image_token(h->buf, h->len, token);
	is_str(token,
	       "992020ef0fc5f160498411bd135f39cc52dbdbd305f90ca3e141ee3b190abc00",
	       "the SHA-256 of its bytes");
	handle_free(h);
}

static void test_truncate(void)
{
	struct handle *h =
		open_copy(DSFS_CONTENT_JSON, "[1,2]", true, false, 8);
	struct dsfs_attr a;
	const char *why;
	char buf[8];

	is_int(handle_truncate(h, 5), 0, "a truncation to the same size");
	ok(!h->dirty, "changes nothing");
	is_int(handle_truncate(h, 7), 0, "growing");
	is_int(h->len, 7, "to the size asked");
	is_int(handle_read(h, 0, buf, sizeof(buf)), 7, "reads back whole");
	ok(memcmp(buf, "[1,2]\0\0", 7) == 0, "with zeros added");
	ok(h->dirty, "and is dirty");
	is_int(handle_truncate(h, 9), -ENOSPC,
	       "growing past the budget: ENOSPC");
	is_int(h->poisoned, 0, "without poisoning the handle");
	is_int(h->len, 7, "or changing the copy");
	is_int(handle_truncate(h, 3), 0, "shrinking");
	is_str(copy_of(h), "[1,", "keeps the beginning");
	is_int(put(h, 3, "]", &why), 1,
	       "after a truncation a write is not streamed");
	is_int(handle_check(h, &a, &why), -EINVAL,
	       "\"[1,]\" is refused at the check");
	is_int(handle_truncate(h, 0), 0, "truncating to nothing");
	is_int(put(h, 0, "]", &why), -EINVAL,
	       "starts streaming again: a bad first byte is refused at once");
	handle_free(h);
}

/* A large copy takes the spare buffer instead of growing into new memory,
 * keeps its bytes, and leaves its buffer as the spare when freed. */
static void test_spare(void)
{
	struct handle_spare spare;
	struct handle *h = open_copy(DSFS_CONTENT_IMAGE, "", true, false,
				     HANDLE_SPARE_MAX);
	char *kept = malloc(HANDLE_SPARE_MAX), *small = malloc(4096);
	char piece[64 * 1024], back[8];
	const char *why;
	size_t off;
	bool same = true;

	if (!kept || !small)
		abort();
	handle_spare_init(&spare);
	handle_spare_put(&spare, small, 4096);
	ok(spare.buf == NULL, "a small buffer is not kept");
	handle_spare_put(&spare, kept, HANDLE_SPARE_MAX);
	ok(spare.buf == kept, "a buffer of HANDLE_SPARE_MAX bytes is kept");
	h->spare = &spare;
	/* The bytes are not an image: only the copy counts. */
	validator_free(h->val);
	h->val = NULL;
	for (off = 0; off < 4 * sizeof(piece); off += sizeof(piece)) {
		memset(piece, (int)(off / sizeof(piece)) + 'a', sizeof(piece));
		if (handle_write(h, off, piece, sizeof(piece), &why) !=
		    (ssize_t)sizeof(piece))
			same = false;
	}
	ok(same, "four writes of 64 KiB");
	ok(h->buf == kept && h->cap == HANDLE_SPARE_MAX,
	   "past HANDLE_SPARE_MIN the copy is the spare buffer");
	ok(spare.buf == NULL, "which is no longer spare");
	for (off = 0; off < 4 * sizeof(piece); off += sizeof(piece)) {
		char want[sizeof(back)];

		memset(want, (int)(off / sizeof(piece)) + 'a', sizeof(want));
		if (handle_read(h, off, back, sizeof(back)) != sizeof(back) ||
		    memcmp(back, want, sizeof(back)) != 0 ||
		    handle_read(h, off + sizeof(piece) - sizeof(back), back,
				sizeof(back)) != sizeof(back) ||
		    memcmp(back, want, sizeof(back)) != 0)
			same = false;
	}
	ok(same, "with every byte written before and after the move");
	handle_free(h);
	ok(spare.buf == kept, "freed, the copy is the spare again");
	handle_spare_destroy(&spare);
}

/* Byte off of what test_huge() writes. */
static char huge_byte(size_t off)
{
	return (char)('a' + (off / 4096 + off) % 26);
}

/* Without a spare, a copy growing past HANDLE_SPARE_MIN takes
 * HANDLE_HUGE bytes at once, aligned for one huge page; past that it
 * grows as before, every byte kept; freed too large, it is not kept. */
static void test_huge(void)
{
	struct handle_spare spare;
	struct handle *h =
		open_copy(DSFS_CONTENT_IMAGE, "", true, false, 4 * HANDLE_HUGE);
	char piece[64 * 1024], back[sizeof(piece)];
	const char *why;
	size_t off, i, end = HANDLE_HUGE + sizeof(piece);
	bool same = true;

	handle_spare_init(&spare);
	h->spare = &spare;
	validator_free(h->val);
	h->val = NULL;
	for (off = 0; off < end; off += sizeof(piece)) {
		for (i = 0; i < sizeof(piece); i++)
			piece[i] = huge_byte(off + i);
		if (handle_write(h, off, piece, sizeof(piece), &why) !=
		    (ssize_t)sizeof(piece))
			same = false;
		if (off + sizeof(piece) == 4 * sizeof(piece))
			ok(h->cap == HANDLE_HUGE &&
				   (uintptr_t)h->buf % HANDLE_HUGE == 0,
			   "at 256 KiB the copy is HANDLE_HUGE bytes, aligned");
		if (off + sizeof(piece) == HANDLE_HUGE)
			ok(h->cap == HANDLE_HUGE, "and fills them unmoved");
	}
	ok(same, "33 writes of 64 KiB");
	is_int((int)(h->cap / HANDLE_HUGE), 2, "past them it doubled");
	for (off = 0; off < end; off += sizeof(piece)) {
		if (handle_read(h, off, back, sizeof(back)) != sizeof(back))
			same = false;
		for (i = 0; same && i < sizeof(back); i++)
			same = back[i] == huge_byte(off + i);
	}
	ok(same, "every byte read back after both moves");
	handle_free(h);
	ok(spare.buf == NULL, "freed, 4 MiB is not kept");
	handle_spare_destroy(&spare);
}

/* An image's bytes: the PNG signature, then bytes that change with seed. */
#define IMG_LEN 3000
static void image_bytes(unsigned char *b, unsigned seed)
{
	static const unsigned char sig[8] = {0x89, 'P',	 'N',  'G',
					     '\r', '\n', 0x1a, '\n'};
	size_t i;

	memcpy(b, sig, sizeof(sig));
	for (i = sizeof(sig); i < IMG_LEN; i++)
		b[i] = (unsigned char)(i * 131 + seed * 7 + (i >> 5));
}

static const char *token_of(const void *b, size_t len)
{
	static char hex[65];
	struct dsfs_sha256 s;

	sha256_init(&s);
	sha256_update(&s, b, len);
	sha256_hex(&s, hex);
	return hex;
}

/* The token handle_check() gives, "hash" if it leaves the hash to the
 * layer, or "refused". */
static const char *checked(struct handle *h)
{
	static char out[80];
	struct dsfs_attr a;
	const char *why;

	memset(&a, 0, sizeof(a));
	if (handle_check(h, &a, &why) != 0)
		return "refused";
	snprintf(out, sizeof(out), "%s", a.hash_token ? "hash" : a.token);
	return out;
}

static void test_image_token(void)
{
	unsigned char img[IMG_LEN], other[IMG_LEN];
	const char *why;
	struct handle *h;

	image_bytes(img, 1);
	image_bytes(other, 2);

	/* In order, hashed after some writes and not others. */
	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	ok(handle_hash_due(h) == false, "image: nothing to hash yet");
	handle_write(h, 0, img, 1000, &why);
	ok(handle_hash_due(h), "image: a write leaves bytes to hash");
	handle_hash(h);
	ok(!handle_hash_due(h), "image: ... and handle_hash() takes them");
	handle_write(h, 1000, img + 1000, 1000, &why);
	handle_write(h, 2000, img + 2000, 1000, &why);
	is_str(checked(h), token_of(img, IMG_LEN),
	       "image: written in order, the token is the bytes' SHA-256");
	handle_committed(h);
	/* The hash ended with that commit: the next one is the layer's. */
	handle_write(h, IMG_LEN, "x", 1, &why);
	is_str(checked(h), "hash",
	       "image: a later commit leaves it to the layer");
	handle_committed(h);
	/* Truncated to nothing after that, the handle hashes again. */
	handle_truncate(h, 0);
	handle_write(h, 0, other, IMG_LEN, &why);
	is_str(checked(h), token_of(other, IMG_LEN),
	       "image: truncated to nothing after a commit, hashed again");
	handle_free(h);

	/* A byte already hashed is rewritten: the layer hashes. */
	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	handle_write(h, 0, img, 2000, &why);
	handle_hash(h);
	handle_write(h, 100, "zz", 2, &why);
	handle_write(h, 2000, img + 2000, 1000, &why);
	ok(!handle_hash_due(h), "image: a rewrite of hashed bytes stops it");
	is_str(checked(h), "hash", "image: ... and the layer hashes");
	handle_free(h);

	/* Rewritten before it was hashed: the hash sees the last bytes. */
	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	handle_write(h, 0, other, 2000, &why);
	handle_write(h, 0, img, 2000, &why);
	handle_write(h, 2000, img + 2000, 1000, &why);
	is_str(checked(h), token_of(img, IMG_LEN),
	       "image: rewritten before hashing, the token is right");
	handle_free(h);

	/* Truncated to nothing, then written again: hashed anew. */
	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	handle_write(h, 0, other, IMG_LEN, &why);
	handle_hash(h);
	handle_truncate(h, 0);
	handle_write(h, 0, img, IMG_LEN, &why);
	is_str(checked(h), token_of(img, IMG_LEN),
	       "image: truncated to nothing, the new bytes' token");
	handle_free(h);

	/* Cut below what was hashed: the layer hashes. */
	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	handle_write(h, 0, img, IMG_LEN, &why);
	handle_hash(h);
	handle_truncate(h, 2000);
	is_str(checked(h), "hash", "image: cut below the hash, the layer's");
	handle_free(h);

	/* Opened on a value and appended to: the old bytes count. */
	h = open_copy(DSFS_CONTENT_IMAGE, "", true, false, BIG_BUDGET);
	handle_free(h);
	{
		char *data = malloc(2000);
		int rc;

		if (!data)
			abort();
		memcpy(data, img, 2000);
		rc = handle_new(DSFS_CONTENT_IMAGE, data, 2000, true, false,
				BIG_BUDGET, &h);
		is_int(rc, 0, "image: opened on a value");
	}
	handle_write(h, 2000, img + 2000, 1000, &why);
	handle_hash(h);
	is_str(checked(h), token_of(img, IMG_LEN),
	       "image: appended to, the whole value's token");
	handle_free(h);

	/* Only images are hashed. */
	h = open_copy(DSFS_CONTENT_JSON, "", true, false, BIG_BUDGET);
	put(h, 0, "[1]", &why);
	ok(!handle_hash_due(h), "json: nothing to hash");
	is_str(checked(h), "", "json: no token");
	handle_free(h);
}

int main(void)
{
	plan_no_plan();
	test_reads();
	test_private_copies();
	test_trunc_pending();
	test_streaming_refusal();
	test_poisoned_by_space();
	test_check_at_commit();
	test_truncate();
	test_spare();
	test_huge();
	test_image_token();
	return done_testing();
}
