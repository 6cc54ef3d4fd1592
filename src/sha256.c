/*
 * sha256.c - SHA-256 (FIPS 180-4), streamed, for the content token of an
 * image.
 *
 * An image's token is the lower-case hex SHA-256 of its bytes; layers use it
 * to share one blob between entries and to open images/.by-token/TOKEN.
 * The hash is computed as the writer's bytes arrive, so a value is never
 * read twice.  sha256_block() is a plain transcription of FIPS 180-4
 * sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2.  Hashing is most of the
 * daemon's work while an image is written, so on x86 CPUs with the SHA
 * extensions (SHA-NI) blocks go through those instructions instead, about
 * five times faster; the unit tests check both against the same vectors.
 */
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <cpuid.h>
#include <immintrin.h>
#define HAVE_SHA_NI 1
#endif

#include "validate.h"

/* FIPS 180-4 4.2.2: the first 32 bits of the fractional parts of the cube
 * roots of the first 64 primes. */
static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* FIPS 180-4 5.3.3: the first 32 bits of the fractional parts of the square
 * roots of the first 8 primes. */
static const uint32_t H0[8] = {
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
};

static inline uint32_t rotr(uint32_t x, unsigned int n)
{
	return (x >> n) | (x << (32 - n));
}

/* The six logical functions of FIPS 180-4 4.1.2. */
#define CH(x, y, z) (((x) & (y)) ^ (~(x) & (z)))
#define MAJ(x, y, z) (((x) & (y)) ^ ((x) & (z)) ^ ((y) & (z)))
#define BSIG0(x) (rotr(x, 2) ^ rotr(x, 13) ^ rotr(x, 22))
#define BSIG1(x) (rotr(x, 6) ^ rotr(x, 11) ^ rotr(x, 25))
#define SSIG0(x) (rotr(x, 7) ^ rotr(x, 18) ^ ((x) >> 3))
#define SSIG1(x) (rotr(x, 17) ^ rotr(x, 19) ^ ((x) >> 10))

/* One round of the compression function (FIPS 180-4 6.2.2) over a 64-byte
 * block, read big-endian. */
static void sha256_block(uint32_t h[8], const uint8_t *p)
{
	uint32_t w[64], a, b, c, d, e, f, g, hh, t1, t2;
	int t;

	for (t = 0; t < 16; t++)
		w[t] = (uint32_t)p[4 * t] << 24 | (uint32_t)p[4 * t + 1] << 16 |
		       (uint32_t)p[4 * t + 2] << 8 | (uint32_t)p[4 * t + 3];
	for (t = 16; t < 64; t++)
		w[t] = SSIG1(w[t - 2]) + w[t - 7] + SSIG0(w[t - 15]) +
		       w[t - 16];

	a = h[0];
	b = h[1];
	c = h[2];
	d = h[3];
	e = h[4];
	f = h[5];
	g = h[6];
	hh = h[7];
	for (t = 0; t < 64; t++) {
		t1 = hh + BSIG1(e) + CH(e, f, g) + K[t] + w[t];
		t2 = BSIG0(a) + MAJ(a, b, c);
		hh = g;
		g = f;
		f = e;
		e = d + t1;
		d = c;
		c = b;
		b = a;
		a = t1 + t2;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
	h[5] += f;
	h[6] += g;
	h[7] += hh;
}

#ifdef HAVE_SHA_NI
/* CPUID leaf 7 EBX bit 29: SHA; leaf 1 ECX bits 9 and 19: SSSE3, SSE4.1
 * (the byte shuffle and the blend below). */
static bool cpu_has_sha(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 9)) ||
	    !(c & (1u << 19)))
		return false;
	if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
		return false;
	return (b & (1u << 29)) != 0;
}

/*
 * The same compression over n blocks with the SHA extensions.  They keep
 * the state in two registers, one holding A, B, E, F and the other C, D,
 * G, H (highest lane first), and do two rounds per instruction: with
 * rounds t and t+1's W + K in the low half of k, sha256rnds2(CDGH, ABEF, k)
 * gives the new ABEF, and the old ABEF is the new CDGH.  sha256msg1 and
 * sha256msg2 compute four words of the message schedule at a time.
 */
__attribute__((target("sha,ssse3,sse4.1"))) static void
sha256_blocks_ni(uint32_t h[8], const uint8_t *p, size_t n)
{
	const __m128i bswap =
		_mm_set_epi64x(0x0c0d0e0f08090a0bLL, 0x0405060700010203LL);
	__m128i abcd = _mm_loadu_si128((const __m128i *)&h[0]);
	__m128i efgh = _mm_loadu_si128((const __m128i *)&h[4]);
	__m128i abef, cdgh, w[4], k, t;
	int g;

	/* lanes (low to high) A B C D and E F G H into F E B A, H G D C */
	abcd = _mm_shuffle_epi32(abcd, 0xb1); /* B A D C */
	efgh = _mm_shuffle_epi32(efgh, 0x1b); /* H G F E */
	abef = _mm_alignr_epi8(abcd, efgh, 8);
	cdgh = _mm_blend_epi16(efgh, abcd, 0xf0);

	for (; n > 0; n--, p += 64) {
		__m128i abef0 = abef, cdgh0 = cdgh;

		/* Unrolled, every w[] index is a constant and the schedule
		 * stays in registers: GCC 12 at -O2 left the loop rolled,
		 * with w[] in memory, and a MiB took 730-760 µs instead of
		 * 630-640 (tests/bench/README.md, W9). */
#pragma GCC unroll 16
		for (g = 0; g < 16; g++) {
			__m128i *wg = &w[g % 4];

			if (g < 4) {
				*wg = _mm_shuffle_epi8(
					_mm_loadu_si128(
						(const __m128i *)(p + 16 * g)),
					bswap);
			} else {
				/* W[t] = s1(W[t-2]) + W[t-7] + s0(W[t-15]) +
				 * W[t-16] for the four t of group g */
				t = _mm_sha256msg1_epu32(*wg, w[(g + 1) % 4]);
				t = _mm_add_epi32(
					t, _mm_alignr_epi8(w[(g + 3) % 4],
							   w[(g + 2) % 4], 4));
				*wg = _mm_sha256msg2_epu32(t, w[(g + 3) % 4]);
			}
			k = _mm_add_epi32(
				*wg,
				_mm_loadu_si128((const __m128i *)&K[4 * g]));
			cdgh = _mm_sha256rnds2_epu32(cdgh, abef, k);
			abef = _mm_sha256rnds2_epu32(
				abef, cdgh, _mm_shuffle_epi32(k, 0x0e));
		}
		abef = _mm_add_epi32(abef, abef0);
		cdgh = _mm_add_epi32(cdgh, cdgh0);
	}

	/* back to A B C D and E F G H */
	t = _mm_shuffle_epi32(abef, 0x1b);    /* A B E F */
	cdgh = _mm_shuffle_epi32(cdgh, 0xb1); /* G H C D */
	_mm_storeu_si128((__m128i *)&h[0], _mm_blend_epi16(t, cdgh, 0xf0));
	_mm_storeu_si128((__m128i *)&h[4], _mm_alignr_epi8(cdgh, t, 8));
}
#endif

static void sha256_blocks(struct dsfs_sha256 *s, const uint8_t *p, size_t n)
{
#ifdef HAVE_SHA_NI
	if (s->accel) {
		sha256_blocks_ni(s->h, p, n);
		return;
	}
#endif
	for (; n > 0; n--, p += 64)
		sha256_block(s->h, p);
}

void sha256_init(struct dsfs_sha256 *s)
{
	memcpy(s->h, H0, sizeof(s->h));
	s->total = 0;
	s->fill = 0;
#ifdef HAVE_SHA_NI
	s->accel = cpu_has_sha();
#else
	s->accel = false;
#endif
}

void sha256_update(struct dsfs_sha256 *s, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t n;

	s->total += len;
	/* Top up a partial block first, then hash whole blocks straight from
	 * the caller's buffer, and keep the tail for next time. */
	if (s->fill) {
		n = sizeof(s->block) - s->fill;
		if (n > len)
			n = len;
		memcpy(s->block + s->fill, p, n);
		s->fill += n;
		p += n;
		len -= n;
		if (s->fill < sizeof(s->block))
			return;
		sha256_blocks(s, s->block, 1);
		s->fill = 0;
	}
	n = len / sizeof(s->block);
	sha256_blocks(s, p, n);
	p += n * sizeof(s->block);
	len -= n * sizeof(s->block);
	if (len) {
		memcpy(s->block, p, len);
		s->fill = len;
	}
}

/* Pads the message (FIPS 180-4 5.1.1: a 1 bit, zeros, and the length in
 * bits as a 64-bit big-endian number, to a multiple of 512 bits) and writes
 * the digest.  s is finished afterwards: sha256_init() it before reuse. */
void sha256_hex(struct dsfs_sha256 *s, char out[65])
{
	static const char hex[] = "0123456789abcdef";
	uint64_t bits = s->total * 8;
	int i;

	s->block[s->fill++] = 0x80;
	if (s->fill > 56) {
		memset(s->block + s->fill, 0, sizeof(s->block) - s->fill);
		sha256_blocks(s, s->block, 1);
		s->fill = 0;
	}
	memset(s->block + s->fill, 0, 56 - s->fill);
	for (i = 0; i < 8; i++)
		s->block[56 + i] = (uint8_t)(bits >> (56 - 8 * i));
	sha256_blocks(s, s->block, 1);
	s->fill = 0;

	for (i = 0; i < 32; i++) {
		uint8_t byte = (uint8_t)(s->h[i / 4] >> (24 - 8 * (i % 4)));

		out[2 * i] = hex[byte >> 4];
		out[2 * i + 1] = hex[byte & 0xf];
	}
	out[64] = '\0';
}
