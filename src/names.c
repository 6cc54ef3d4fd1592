/*
 * names.c - what a name (one path component) may be.
 *
 * Every name a user creates through the mount passes name_check() before it
 * reaches a layer, so layers, dumps and factory images only ever hold names
 * that are 1-255 bytes of valid UTF-8, without '/' and not "." or "..".
 * utf8_valid() is the strict decoder behind it (RFC 3629): it refuses
 * overlong forms, UTF-16 surrogates, code points above U+10FFFF and
 * truncated sequences, so that every stored name can be printed, compared
 * and put in a JSON dump unchanged.
 */
#include <errno.h>
#include <string.h>

#include "validate.h"

#define NAME_MAX_BYTES 255

int utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	/* The lead byte fixes the length, and for the edge leads the range
	 * of the second byte: that range is what excludes overlongs (E0,
	 * F0), surrogates (ED) and values above U+10FFFF (F4), per the table
	 * in RFC 3629 section 4. */
	if (c >= 0xc2 && c <= 0xdf)
		return 1;
	if (c >= 0xe0 && c <= 0xef) {
		if (c == 0xe0)
			*lo = 0xa0;
		else if (c == 0xed)
			*hi = 0x9f;
		return 2;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (c == 0xf0)
			*lo = 0x90;
		else if (c == 0xf4)
			*hi = 0x8f;
		return 3;
	}
	return 0; /* 80-C1 and F5-FF never lead */
}

bool utf8_valid(const void *buf, size_t len)
{
	const unsigned char *p = buf, *end = p + len;

	while (p < end) {
		unsigned char c = *p++;
		unsigned char lo, hi;
		int need;

		if (c < 0x80)
			continue;
		need = utf8_lead(c, &lo, &hi);
		if (need == 0)
			return false;
		if (end - p < need)
			return false;
		if (*p < lo || *p > hi)
			return false;
		for (p++, need--; need > 0; p++, need--)
			if (*p < 0x80 || *p > 0xbf)
				return false;
	}
	return true;
}

int name_check(const char *name)
{
	size_t len;

	if (!name)
		return -EINVAL;
	/* strnlen: never walk further than one byte past the limit. */
	len = strnlen(name, NAME_MAX_BYTES + 1);
	if (len == 0)
		return -EINVAL;
	if (len > NAME_MAX_BYTES)
		return -ENAMETOOLONG;
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	if (memchr(name, '/', len))
		return -EINVAL;
	if (!utf8_valid(name, len))
		return -EINVAL;
	return 0;
}
