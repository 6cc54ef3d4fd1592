/*
 * hash.h - the one hash of names and keys that dsfs's in-memory tables,
 * change slots and readdir offsets use.
 *
 * FNV-1a over the bytes, started from a seed, then the 64-bit finaliser of
 * MurmurHash3, which makes every bit of the result depend on every input
 * byte: a table may take the low bits as its bucket, readdir the low 63 as
 * an offset.  A table whose keys a local user chooses (names) passes a seed
 * picked at random when it is made, so that names cannot be aimed at one
 * bucket in advance; where the keys are content hashes already, 0 does.
 */
#ifndef DSFS_HASH_H
#define DSFS_HASH_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

static inline uint64_t dsfs_hash(uint64_t seed, const void *p, size_t len)
{
	const unsigned char *b = p;
	uint64_t h = 0xcbf29ce484222325ull ^ seed;
	size_t i;

	for (i = 0; i < len; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ull;
	h ^= h >> 33;
	return h;
}

static inline uint64_t dsfs_hash_str(uint64_t seed, const char *s)
{
	return dsfs_hash(seed, s, strlen(s));
}

#endif
