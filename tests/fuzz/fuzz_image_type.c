/*
 * fuzz_image_type.c - libFuzzer target for image type detection:
 * image_type() and the image side of the validator (validate_image.c).
 * The input is the beginning of a candidate image.
 *
 * The signatures are written out again here, from the formats rather than
 * from validate_image.c's table, as an independent oracle:
 *
 *   PNG   89 50 4E 47 0D 0A 1A 0A
 *   JPEG  FF D8 FF
 *   GIF   "GIF87a" or "GIF89a"
 *   BMP   "BM", a 14-byte file header, then a DIB header whose first four
 *         bytes (little-endian) are its size: 12, 40, 52, 56, 64, 108 or
 *         124; 26 bytes are needed (the smallest DIB header is 12)
 *   WebP  "RIFF", any four bytes (the chunk size), "WEBP"
 *
 * It checks that image_type() names the type the oracle names for the
 * input and for each of its first prefixes; that a validator fed one byte
 * at a time refuses exactly the first byte after which no format can
 * match any more, and accepts at finish exactly what image_type() names;
 * and that validate_buffer() and a validator fed random pieces agree.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "validate.h"

/* Every signature is decided within this many bytes. */
#define DECIDED 26

static const uint8_t png[] = {0x89, 'P', 'N', 'G', 0x0d, 0x0a, 0x1a, 0x0a};
static const uint8_t jpeg[] = {0xff, 0xd8, 0xff};
static const uint32_t dib_sizes[] = {12, 40, 52, 56, 64, 108, 124};

static size_t min_sz(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* b[0..n) matches the first n bytes of sig (n may exceed its length). */
static bool starts(const uint8_t *b, size_t n, const void *sig, size_t len)
{
	return memcmp(b, sig, min_sz(n, len)) == 0;
}

static bool gif_prefix(const uint8_t *b, size_t n)
{
	return starts(b, n, "GIF8", 4) &&
	       (n < 5 || b[4] == '7' || b[4] == '9') && (n < 6 || b[5] == 'a');
}

static bool webp_prefix(const uint8_t *b, size_t n)
{
	return starts(b, n, "RIFF", 4) &&
	       (n <= 8 || memcmp(b + 8, "WEBP", min_sz(n - 8, 4)) == 0);
}

static bool bmp_prefix(const uint8_t *b, size_t n)
{
	size_t i, j;

	if (!starts(b, n, "BM", 2))
		return false;
	if (n <= 14)
		return true;
	for (i = 0; i < sizeof(dib_sizes) / sizeof(dib_sizes[0]); i++) {
		uint8_t le[4] = {(uint8_t)dib_sizes[i],
				 (uint8_t)(dib_sizes[i] >> 8),
				 (uint8_t)(dib_sizes[i] >> 16),
				 (uint8_t)(dib_sizes[i] >> 24)};

		for (j = 14; j < n && j < 18; j++)
			if (b[j] != le[j - 14])
				break;
		if (j == n || j == 18)
			return true;
	}
	return false;
}

/* Can b[0..n) still be the beginning of a known image? */
static bool viable(const uint8_t *b, size_t n)
{
	return starts(b, n, png, sizeof(png)) ||
	       starts(b, n, jpeg, sizeof(jpeg)) || gif_prefix(b, n) ||
	       bmp_prefix(b, n) || webp_prefix(b, n);
}

/* The type of the image that begins with b[0..n), or NULL. */
static const char *oracle(const uint8_t *b, size_t n)
{
	if (n >= sizeof(png) && starts(b, n, png, sizeof(png)))
		return "image/png";
	if (n >= sizeof(jpeg) && starts(b, n, jpeg, sizeof(jpeg)))
		return "image/jpeg";
	if (n >= 6 && gif_prefix(b, n))
		return "image/gif";
	if (n >= 26 && bmp_prefix(b, n))
		return "image/bmp";
	if (n >= 12 && webp_prefix(b, n))
		return "image/webp";
	return NULL;
}

static bool same(const char *a, const char *b)
{
	return a == b || (a && b && strcmp(a, b) == 0);
}

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* Feeds d in pieces (one byte each if seed is 0) and finishes.  Returns
 * the verdict; *refused is the offset of the first byte of the refusing
 * piece, or n if no feed refused. */
static int feed_all(const uint8_t *d, size_t n, uint64_t seed, size_t *refused,
		    size_t *refused_end, const char **type)
{
	struct dsfs_validator *v = validator_new(DSFS_CONTENT_IMAGE);
	size_t pos = 0;
	int rc = 0;

	CHECK(v, "validator_new failed");
	*refused = *refused_end = n;
	while (pos < n) {
		size_t len = seed ? 1 + rnd(&seed) % 16 : 1;

		len = min_sz(len, n - pos);
		rc = validator_feed(v, d + pos, len);
		CHECK(rc == 0 || rc == -EINVAL, "feed returned %d", rc);
		if (rc) {
			*refused = pos;
			*refused_end = pos + len;
			break;
		}
		pos += len;
	}
	if (rc == 0)
		rc = validator_finish(v, type);
	CHECK(rc == 0 || rc == -EINVAL, "finish returned %d", rc);
	validator_free(v);
	return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	const char *want, *type = NULL, *type2 = NULL;
	size_t k, first_bad = n, refused, end, refused2, end2;
	uint64_t seed = 0x9e3779b97f4a7c15ull;
	int rc, rc2;

	for (k = 0; k < n && k < 8; k++)
		seed = seed * 31 + d[k] + 1;
	for (k = 0; k <= min_sz(n, DECIDED + 8); k++) {
		want = oracle(d, k);
		CHECK(same(image_type(d, k), want), "%zu bytes: %s, oracle %s",
		      k, image_type(d, k), want);
		if (first_bad == n && k > 0 && !viable(d, k))
			first_bad = k - 1;
	}
	want = oracle(d, n);
	CHECK(same(image_type(d, n), want), "%zu bytes: %s, oracle %s", n,
	      image_type(d, n), want);

	rc = feed_all(d, n, 0, &refused, &end, &type);
	CHECK(refused == first_bad, "refused at byte %zu, oracle %zu", refused,
	      first_bad);
	if (n == 0)
		CHECK(rc == 0 && strcmp(type, "empty") == 0, "empty refused");
	else if (want)
		CHECK(rc == 0 && strcmp(type, want) == 0, "%s refused", want);
	else
		CHECK(rc == -EINVAL, "accepted as %s", type);

	rc2 = feed_all(d, n, seed, &refused2, &end2, &type2);
	CHECK(rc2 == rc && (rc || type2 == type), "pieces: %d, bytes: %d", rc2,
	      rc);
	CHECK(refused == n ? refused2 == n :
			     refused2 <= refused && refused < end2,
	      "byte %zu refused in the piece [%zu, %zu)", refused, refused2,
	      end2);
	rc2 = validate_buffer(DSFS_CONTENT_IMAGE, d, n, &type2, NULL);
	CHECK(rc2 == rc && (rc || type2 == type), "buffer: %d, bytes: %d", rc2,
	      rc);
	return 0;
}
