/*
 * fuzz.h - what the libFuzzer targets of tests/fuzz/ share: CHECK(), which
 * stops the run with the failed condition, where it is and why, so that
 * libFuzzer keeps the input as a reproducer.
 */
#ifndef DSFS_FUZZ_H
#define DSFS_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			fprintf(stderr, "%s:%d: %s: ", __FILE__, __LINE__, \
				#cond);                                    \
			fprintf(stderr, __VA_ARGS__);                      \
			fputc('\n', stderr);                               \
			abort();                                           \
		}                                                          \
	} while (0)

#endif
