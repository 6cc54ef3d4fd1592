/*
 * size.c - sizes on command lines: the budgets of dsfs -o runtime_size=
 * and of dsfsctl mkfactory -s.  "13M" is 13631488: K, M and G are powers of
 * 1024.  One parser, so that the daemon and the admin tool agree.
 */
#include <errno.h>
#include <stdlib.h>

#include "dsfs.h"

int parse_size(const char *s, uint64_t *out)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		mult = 1024;
		end++;
		break;
	case 'm':
	case 'M':
		mult = MiB;
		end++;
		break;
	case 'g':
	case 'G':
		mult = 1024 * MiB;
		end++;
		break;
	}
	if (*end != '\0' || v > UINT64_MAX / mult)
		return -EINVAL;
	*out = v * mult;
	return 0;
}
