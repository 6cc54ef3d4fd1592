/*
 * test_sha256.c - unit tests for sha256.c, the content token of an image:
 * the FIPS 180-2 vectors and padding edges, fed in pieces of every size,
 * both with the CPU's SHA instructions and with the portable code.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate.h"
#include "tap.h"
#include "vectors.h"

/*
 * SHA-256 (FIPS 180-2 appendix B and a few padding edges).
 */

/* With portable, the CPU's SHA instructions are not used even if it has
 * them, so that both ways are checked. */
static void sha256_way(const void *buf, size_t len, size_t chunk, bool portable,
		       char out[65])
{
	struct dsfs_sha256 s;
	const uint8_t *p = buf;
	size_t i, n;

	sha256_init(&s);
	if (portable)
		s.accel = false;
	for (i = 0; i < len; i += n) {
		n = chunk && chunk < len - i ? chunk : len - i;
		sha256_update(&s, p + i, n);
	}
	sha256_hex(&s, out);
}

/* The CPU's way and the portable one agree on every length around the
 * block edges and on a big buffer, in pieces of every alignment. */
static void test_sha256_ways(void)
{
	struct dsfs_sha256 probe;
	size_t len, bad = 0, big = 300000;
	uint8_t *buf = xmalloc(big);
	char a[65], b[65];
	uint32_t x = 12345;

	for (len = 0; len < big; len++) {
		x = x * 1103515245 + 12345;
		buf[len] = (uint8_t)(x >> 16);
	}
	for (len = 0; len <= 300; len++) {
		sha256_way(buf, len, 0, false, a);
		sha256_way(buf, len, 0, true, b);
		bad += strcmp(a, b) != 0;
	}
	sha256_way(buf, big, 0, false, a);
	sha256_way(buf, big, 0, true, b);
	bad += strcmp(a, b) != 0;
	sha256_way(buf, big, 7, false, a);
	bad += strcmp(a, b) != 0;
	sha256_init(&probe);
	ok(bad == 0,
	   "sha256: the CPU's instructions (%s here) and the "
	   "portable code agree on 303 inputs",
	   probe.accel ? "used" : "not available");
	free(buf);
}

static void test_sha256(void)
{
	static const struct {
		const char *msg;
		size_t repeat;
		const char *hex;
	} vecs[] = {
		{"", 1,
		 "e3b0c44298fc1c149afbf4c8996fb924"
		 "27ae41e4649b934ca495991b7852b855"},
		{"abc", 1,
		 "ba7816bf8f01cfea414140de5dae2223"
		 "b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
		 "248d6a61d20638b8e5c026930c3e6039"
		 "a33ce45964ff2167f6ecedd419db06c1"},
		{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		 "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		 1,
		 "cf5b16a778af8380036ce59e7b049237"
		 "0b249b11e8f07a51afac45037afee9d1"},
		{"a", 1000000,
		 "cdc76e5c9914fb9281a1c7e284d73e67"
		 "f1809a48a497200e046d39ccc7112cd0"},
		{"a", 55,
		 "9f4390f8d30c2dd92ec9f095b65e2b9a"
		 "e9b0a925a5258e241c9f1e910f734318"},
		{"a", 56,
		 "b35439a4ac6f0948b6d6f9e3c6af0f5f"
		 "590ce20f1bde7090ef7970686ec6738a"},
		{"a", 63,
		 "7d3e74a05d7db15bce4ad9ec0658ea98"
		 "e3f06eeecf16b4c6fff2da457ddc2f34"},
		{"a", 64,
		 "ffe054fe7ae0cb6dc65c3af9b61d5209"
		 "f439851db43d0ba5997337df154668eb"},
		{"a", 119,
		 "31eba51c313a5c08226adf18d4a359cf"
		 "dfd8d2e816b13f4af952f7ea6584dcfb"},
	};
	static const size_t chunks[] = {0, 1, 3, 63, 64, 65, 1000};
	char hex[65];
	size_t i, k, len;
	char *msg;

	for (i = 0; i < ARRAY_SIZE(vecs); i++) {
		len = strlen(vecs[i].msg) * vecs[i].repeat;
		msg = xmalloc(len + 1);
		if (vecs[i].repeat > 1)
			memset(msg, vecs[i].msg[0], len);
		else
			memcpy(msg, vecs[i].msg, len);
		for (k = 0; k < 2 * ARRAY_SIZE(chunks); k++) {
			sha256_way(msg, len, chunks[k / 2], k % 2, hex);
			if (strcmp(hex, vecs[i].hex))
				break;
		}
		ok(k == 2 * ARRAY_SIZE(chunks),
		   "sha256 of %zu bytes of '%.10s'", len, vecs[i].msg);
		if (k < 2 * ARRAY_SIZE(chunks))
			diag("  chunk %zu%s: got %s", chunks[k / 2],
			     k % 2 ? " (portable)" : "", hex);
		free(msg);
	}
	test_sha256_ways();
}

int main(void)
{
	plan_no_plan();

	test_sha256();
	return done_testing();
}
