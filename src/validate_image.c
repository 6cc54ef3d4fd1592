/*
 * validate_image.c - is a value an image?  The image side of the validator
 * (validate.c), for images/: a PNG, JPEG, GIF, BMP or WebP signature at the
 * start of the value, and image_type(), which names it.
 *
 * Images are recognised by their first bytes; only IMAGE_HEAD bytes are
 * kept, whatever the image's size, and a prefix is refused at the first
 * byte that no signature allows.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "validate_internal.h"

static const uint32_t bmp_dib_sizes[] = {12, 40, 52, 56, 64, 108, 124};

/* A BMP file header is 14 bytes; the DIB header that follows starts with its
 * own size, which names its version.  Checked on the bytes present. */
static bool bmp_header_ok(const uint8_t *b, size_t n)
{
	size_t i, j, k;

	if (n <= 14)
		return true;
	k = (n < 18 ? n : 18) - 14;
	for (i = 0; i < sizeof(bmp_dib_sizes) / sizeof(bmp_dib_sizes[0]); i++) {
		for (j = 0; j < k; j++)
			if (b[14 + j] != (uint8_t)(bmp_dib_sizes[i] >> 8 * j))
				break;
		if (j == k)
			return true;
	}
	return false;
}

static const struct image_sig {
	const char *mime;
	const char *magic;
	size_t magic_len;
	uint32_t any;	/* bit i set: magic[i] may be any byte */
	size_t min_len; /* bytes needed to be sure */
	bool (*header_ok)(const uint8_t *b, size_t n);
} image_sigs[] = {
	{"image/png", "\x89PNG\r\n\x1a\n", 8, 0, 8, NULL},
	{"image/jpeg", "\xff\xd8\xff", 3, 0, 3, NULL},
	{"image/gif", "GIF87a", 6, 0, 6, NULL},
	{"image/gif", "GIF89a", 6, 0, 6, NULL},
	/* 14-byte file header + the 12-byte OS/2 core header, the least */
	{"image/bmp", "BM", 2, 0, 26, bmp_header_ok},
	/* "RIFF", the 4-byte chunk size, "WEBP" */
	{"image/webp", "RIFF....WEBP", 12, 0xf0, 12, NULL},
};

#define N_IMAGE_SIGS (sizeof(image_sigs) / sizeof(image_sigs[0]))

static bool sig_prefix_ok(const struct image_sig *sig, const uint8_t *b,
			  size_t n)
{
	size_t i;

	for (i = 0; i < n && i < sig->magic_len; i++)
		if (!(sig->any & (1u << i)) && b[i] != (uint8_t)sig->magic[i])
			return false;
	return !sig->header_ok || sig->header_ok(b, n);
}

const char *image_type(const void *buf, size_t len)
{
	size_t i;

	for (i = 0; i < N_IMAGE_SIGS; i++)
		if (len >= image_sigs[i].min_len &&
		    sig_prefix_ok(&image_sigs[i], buf, len))
			return image_sigs[i].mime;
	return NULL;
}

static bool image_prefix_ok(const uint8_t *b, size_t n)
{
	size_t i;

	for (i = 0; i < N_IMAGE_SIGS; i++)
		if (sig_prefix_ok(&image_sigs[i], b, n))
			return true;
	return false;
}

int validate_image_feed(struct dsfs_validator *v, const uint8_t *p, size_t len)
{
	size_t i;

	/* Check the prefix after each new byte, so the offset is exact. */
	for (i = 0; i < len && v->head_len < IMAGE_HEAD; i++, v->off++) {
		v->head[v->head_len++] = p[i];
		if (!image_prefix_ok(v->head, v->head_len))
			return validator_fail(
				v,
				"not a PNG, JPEG, GIF, BMP or WebP "
				"image (byte %llu)",
				(unsigned long long)v->off);
	}
	v->off += len - i;
	return 0;
}

int validate_image_finish(struct dsfs_validator *v, const char **type)
{
	const char *mime;

	if (v->off == 0) {
		*type = "empty";
		return 0;
	}
	mime = image_type(v->head, v->head_len);
	if (!mime)
		return validator_fail(
			v, "image too short for its signature (%llu bytes)",
			(unsigned long long)v->off);
	*type = mime;
	return 0;
}
