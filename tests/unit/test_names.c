/*
 * test_names.c - unit tests for names.c: utf8_valid() against an
 * independent decoder (and JSON strings against both), and name_check().
 *
 * DSFS_TEST_SEED=N in the environment replays a given random run; the seed
 * used is printed as a TAP comment.
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
 * Names and UTF-8.
 */

/* An independent decoder, written from the definition rather than the
 * table: decode the code point, then refuse it if it is too large, a
 * surrogate, or not in its shortest form. */
static bool ref_utf8(const uint8_t *p, size_t len)
{
	static const uint32_t least[] = {0, 0, 0x80, 0x800, 0x10000};
	size_t i = 0, k, n;
	uint32_t cp;

	while (i < len) {
		if (p[i] < 0x80) {
			i++;
			continue;
		} else if ((p[i] & 0xe0) == 0xc0) {
			n = 2;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			n = 3;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			n = 4;
			cp = p[i] & 0x07;
		} else {
			return false;
		}
		if (len - i < n)
			return false;
		for (k = 1; k < n; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if (cp < least[n] || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n;
	}
	return true;
}

/* A JSON string holding exactly these bytes is valid exactly when they are
 * valid UTF-8 (for bytes that need no escaping). */
static bool json_string_ok(const uint8_t *p, size_t n)
{
	char buf[8];

	buf[0] = '"';
	memcpy(buf + 1, p, n);
	buf[n + 1] = '"';
	return validate_buffer(DSFS_CONTENT_JSON, buf, n + 2, NULL, NULL) == 0;
}

static bool plain(uint8_t c)
{
	return c >= 0x20 && c != '"' && c != '\\';
}

static void test_utf8(void)
{
	uint8_t b[4];
	unsigned long bad = 0, checked = 0, json_bad = 0, json_checked = 0;
	uint32_t x;
	int i;

	/* Every sequence of up to 3 bytes, and many of 4. */
	for (x = 0; x < 0x100; x++) {
		b[0] = (uint8_t)x;
		bad += utf8_valid(b, 1) != ref_utf8(b, 1);
		checked++;
	}
	for (x = 0; x < 0x10000; x++) {
		b[0] = (uint8_t)(x >> 8);
		b[1] = (uint8_t)x;
		bad += utf8_valid(b, 2) != ref_utf8(b, 2);
		checked++;
		if (plain(b[0]) && plain(b[1])) {
			json_bad += json_string_ok(b, 2) != ref_utf8(b, 2);
			json_checked++;
		}
	}
	for (x = 0; x < 0x1000000; x++) {
		b[0] = (uint8_t)(x >> 16);
		b[1] = (uint8_t)(x >> 8);
		b[2] = (uint8_t)x;
		bad += utf8_valid(b, 3) != ref_utf8(b, 3);
		checked++;
	}
	for (i = 0; i < 2000000; i++) {
		x = (uint32_t)rnd();
		/* mostly leads and continuation bytes: the interesting part */
		b[0] = (uint8_t)(0xe0 | (x & 0x1f));
		b[1] = (uint8_t)(0x70 | ((x >> 5) & 0x5f));
		b[2] = (uint8_t)(0x70 | ((x >> 12) & 0x5f));
		b[3] = (uint8_t)(x >> 24);
		if (i % 4 == 0)
			b[3] = (uint8_t)(0x80 | (b[3] & 0x3f));
		bad += utf8_valid(b, 4) != ref_utf8(b, 4);
		checked++;
		if (i < 100000 && plain(b[0]) && plain(b[1]) && plain(b[2]) &&
		    plain(b[3])) {
			json_bad += json_string_ok(b, 4) != ref_utf8(b, 4);
			json_checked++;
		}
	}
	ok(bad == 0,
	   "utf8_valid agrees with a reference decoder on %lu "
	   "sequences (%lu differ)",
	   checked, bad);
	ok(json_bad == 0,
	   "JSON strings agree with it on %lu sequences "
	   "(%lu differ)",
	   json_checked, json_bad);

	ok(utf8_valid("", 0), "the empty string is valid UTF-8");
	ok(utf8_valid("a\0b", 3), "NUL is valid UTF-8");
	ok(!utf8_valid("\xc3", 1), "a truncated sequence is not");
	ok(!utf8_valid("\xe2\x82", 2), "a truncated sequence is not (3)");
	ok(!utf8_valid("\xc0\x80", 2), "an overlong NUL is not");
	ok(!utf8_valid("\xed\xa0\x80", 3), "a surrogate is not");
	ok(!utf8_valid("\xf4\x90\x80\x80", 4), "U+110000 is not");
	ok(utf8_valid("\xf4\x8f\xbf\xbf", 4), "U+10FFFF is");
}

static void test_names(void)
{
	char name[300];
	size_t i;

	memset(name, 'a', 255);
	name[255] = '\0';
	is_int(name_check(name), 0, "a 255-byte name is fine");
	name[255] = 'a';
	name[256] = '\0';
	is_int(name_check(name), -ENAMETOOLONG, "a 256-byte name is too long");
	memset(name, 'a', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	is_int(name_check(name), -ENAMETOOLONG, "and so is a 299-byte one");
	for (i = 0; i < 85; i++)
		memcpy(name + 3 * i, "\xe2\x82\xac", 3);
	name[255] = '\0';
	is_int(name_check(name), 0, "255 bytes of euro signs are fine");
	memcpy(name + 255, "\xc3\xa9", 3);
	is_int(name_check(name), -ENAMETOOLONG,
	       "257 bytes of valid UTF-8 are too long");

	is_int(name_check(""), -EINVAL, "\"\" is refused");
	is_int(name_check(NULL), -EINVAL, "NULL is refused");
	is_int(name_check("."), -EINVAL, "\".\" is refused");
	is_int(name_check(".."), -EINVAL, "\"..\" is refused");
	is_int(name_check("a/b"), -EINVAL, "\"a/b\" is refused");
	is_int(name_check("/"), -EINVAL, "\"/\" is refused");
	is_int(name_check("a/"), -EINVAL, "\"a/\" is refused");
	is_int(name_check("\xff"), -EINVAL, "invalid UTF-8 is refused");
	is_int(name_check("a\xc3"), -EINVAL, "truncated UTF-8 is refused");
	is_int(name_check("\xc0\xae"), -EINVAL, "an overlong '.' is refused");
	is_int(name_check("\xed\xa0\x80"), -EINVAL,
	       "an encoded surrogate is refused");
	is_int(name_check("a"), 0, "\"a\" is fine");
	is_int(name_check("..."), 0, "\"...\" is fine");
	is_int(name_check(".hidden"), 0, "\".hidden\" is fine");
	is_int(name_check("__dev1"), 0, "\"__dev1\" is fine");
	is_int(name_check("caf\xc3\xa9 \xf0\x9f\x98\x80"), 0,
	       "UTF-8 with spaces is fine");
	is_int(name_check("a\\b:c*?"), 0, "other ASCII is fine");
}

int main(void)
{
	plan_no_plan();
	rng_seed();

	test_utf8();
	test_names();
	return done_testing();
}
