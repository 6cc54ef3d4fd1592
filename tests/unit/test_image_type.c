/*
 * test_image_type.c - unit tests for the image validator
 * (validate_image.c): the signatures, image_type(), and a large image fed
 * in odd writes.
 *
 * Every vector is run three ways (vectors.h) and must get the same verdict
 * each way, refused at the byte it names.  DSFS_TEST_SEED=N in the
 * environment replays a given random run.
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
 * Images.
 */

#define PNG "\x89PNG\r\n\x1a\n"
/* A BMP file header (14 bytes) and the first bytes of a DIB header. */
#define BMP_FH "BM\x46\0\0\0\0\0\0\0\x36\0\0\0"
#define BMP(dib) BMP_FH dib "\x02\0\0\0\x02\0\0\0\x01\0\x18\0"

static const struct vec image_vecs[] = {
	OK("", "empty"),
	OK(PNG, "image/png"),
	OK(PNG "\0\0\0\x0dIHDR", "image/png"),
	OK("\xff\xd8\xff", "image/jpeg"),
	OK("\xff\xd8\xff\xe0\0\x10JFIF\0", "image/jpeg"),
	OK("GIF87a", "image/gif"),
	OK("GIF89a\x01\0\x01\0", "image/gif"),
	OK(BMP("\x28\0\0\0"), "image/bmp"),
	OK(BMP("\x0c\0\0\0"), "image/bmp"),
	OK(BMP("\x34\0\0\0"), "image/bmp"),
	OK(BMP("\x38\0\0\0"), "image/bmp"),
	OK(BMP("\x40\0\0\0"), "image/bmp"),
	OK(BMP("\x6c\0\0\0"), "image/bmp"),
	OK(BMP("\x7c\0\0\0") "\0\0\0\0\0\0", "image/bmp"),
	OK("RIFF\x24\0\0\0WEBP", "image/webp"),
	OK("RIFF\xff\xff\xff\xffWEBPVP8 ", "image/webp"),
	/* text is refused at its first byte */
	BAD("{}", 0),
	BAD("hello", 0),
	BAD("\"a\"", 0),
	BAD("\x00", 0),
	/* a signature broken at its first wrong byte */
	BAD("\x89PNX", 3),
	BAD("\x89PNG\r\n\x1a\x0b", 7),
	BAD("\xff\xd8\xfe", 2),
	BAD("\xff\xd9", 1),
	BAD("GIF88a", 4),
	BAD("GIF89b", 5),
	BAD("BX", 1),
	BAD(BMP("\x29\0\0\0"), 14),
	BAD(BMP("\x28\x01\0\0"), 15),
	BAD(BMP("\x28\0\0\x01"), 17),
	BAD("RIFX", 3),
	BAD("RIFF\0\0\0\0WEBX", 11),
	BAD("RIFF\0\0\0\0AVI ", 8),
	/* incomplete signatures fail at the end */
	INC("\x89"),
	INC("\x89PNG\r\n\x1a"),
	INC("\xff\xd8"),
	INC("GIF8"),
	INC("GIF89"),
	INC("B"),
	INC("BM"),
	INC(BMP_FH),
	INC(BMP_FH "\x28\0\0\0\x02\0\0\0\x02\0\0"),
	INC("RIFF"),
	INC("RIFF\0\0\0\0WEB"),
};

static void test_images(void)
{
	static const struct {
		const char *data;
		size_t len;
		const char *mime;
	} types[] = {
		{PNG, 8, "image/png"},
		{PNG, 7, NULL},
		{"\xff\xd8\xff", 3, "image/jpeg"},
		{"\xff\xd8", 2, NULL},
		{"GIF87a", 6, "image/gif"},
		{"GIF89a", 6, "image/gif"},
		{"GIF89a", 5, NULL},
		{BMP("\x28\0\0\0"), 26, "image/bmp"},
		{BMP("\x28\0\0\0"), 25, NULL},
		{BMP("\x29\0\0\0"), 26, NULL},
		{"RIFF\1\2\3\4WEBP", 12, "image/webp"},
		{"RIFF\1\2\3\4WEBP", 11, NULL},
		{"{}", 2, NULL},
		{"", 0, NULL},
	};
	const size_t big = 1 << 20;
	struct dsfs_validator *v;
	const char *type = NULL;
	uint8_t *img;
	size_t i, j;
	int rc;

	for (i = 0; i < ARRAY_SIZE(image_vecs); i++)
		check_vec(DSFS_CONTENT_IMAGE, &image_vecs[i]);

	for (i = 0; i < ARRAY_SIZE(types); i++) {
		const char *got = image_type(types[i].data, types[i].len);

		ok(got == types[i].mime || (got && types[i].mime &&
					    !strcmp(got, types[i].mime)),
		   "image_type('%s') is %s", esc(types[i].data, types[i].len),
		   types[i].mime ? types[i].mime : "NULL");
	}

	/* A large image of random bytes after the signature, in writes of
	 * odd sizes: the body is never looked at. */
	img = xmalloc(big);
	for (i = 0; i < big; i++)
		img[i] = (uint8_t)rnd();
	memcpy(img, PNG, 8);
	v = validator_new(DSFS_CONTENT_IMAGE);
	rc = 0;
	for (i = 0; i < big && rc == 0; i += j) {
		j = 1 + rnd_below(9000);
		if (j > big - i)
			j = big - i;
		rc = validator_feed(v, img + i, j);
	}
	if (rc == 0)
		rc = validator_finish(v, &type);
	ok(rc == 0 && !strcmp(type, "image/png"), "a 1 MiB PNG in odd writes");
	validator_free(v);
	free(img);
}

int main(void)
{
	plan_no_plan();
	rng_seed();

	test_images();
	return done_testing();
}
