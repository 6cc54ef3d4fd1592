/*
 * tap.h - a tiny TAP producer for the C unit tests, read by automake's TAP
 * driver like the bats files are.
 *
 *	int main(void)
 *	{
 *		plan_no_plan();
 *		ok(x > 0, "x is positive (x=%d)", x);
 *		is_int(layer_get(l, "kv/a"), -ENOENT, "a is gone");
 *		is_str(buf, "42", "value read back");
 *		return done_testing();
 *	}
 *
 * Every check prints one "ok N - name" or "not ok N - name" line, a failure
 * followed by "# " lines saying where and what was got.  done_testing()
 * prints the plan "1..N" and exits, with status 1 if any check failed, so
 * that "return done_testing();" and a bare "done_testing();" both work.
 * Header-only: include it from exactly one .c file per test program, or
 * see TAP_SEVERAL_FILES below.
 */
#ifndef DSFS_TAP_H
#define DSFS_TAP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct tap_state {
	int run;    /* checks done so far */
	int failed; /* of which failed */
};

#ifndef TAP_SEVERAL_FILES
/* The one state of the test program; a function so that a program that
 * includes this header without using all of it draws no warning. */
static inline struct tap_state *tap_state(void)
{
	static struct tap_state state;

	return &state;
}
#else
/* A program of several files defines TAP_SEVERAL_FILES before including
 * this header in each of them, and writes TAP_STATE_DEFINITION once, in
 * the file with main(): every file then counts into that one state. */
struct tap_state *tap_state(void);
#define TAP_STATE_DEFINITION                   \
	struct tap_state *tap_state(void)      \
	{                                      \
		static struct tap_state state; \
                                               \
		return &state;                 \
	}
#endif

/* Announces that the plan is printed at the end, by done_testing().  TAP
 * output is line-buffered so that it interleaves correctly with stderr. */
static inline void plan_no_plan(void)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
}

/* A "# " comment: free text that the driver shows in the test's log. */
static inline void __attribute__((format(printf, 1, 2)))
diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	fputc('\n', stdout);
	fflush(stdout);
}

static inline bool __attribute__((format(printf, 4, 0)))
tap_vok(bool pass, const char *file, int line, const char *fmt, va_list ap)
{
	struct tap_state *t = tap_state();

	t->run++;
	if (!pass)
		t->failed++;
	printf("%sok %d - ", pass ? "" : "not ", t->run);
	vprintf(fmt, ap);
	fputc('\n', stdout);
	if (!pass)
		printf("#   Failed test at %s line %d.\n", file, line);
	fflush(stdout);
	return pass;
}

static inline bool __attribute__((format(printf, 4, 5)))
tap_ok(bool pass, const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	pass = tap_vok(pass, file, line, fmt, ap);
	va_end(ap);
	return pass;
}

static inline bool tap_is_int(long long got, long long expected,
			      const char *name, const char *file, int line)
{
	bool pass = got == expected;

	tap_ok(pass, file, line, "%s", name);
	if (!pass)
		diag("       got: %lld\n#   expected: %lld", got, expected);
	return pass;
}

static inline bool tap_is_str(const char *got, const char *expected,
			      const char *name, const char *file, int line)
{
	bool pass;

	if (got == NULL || expected == NULL)
		pass = got == expected;
	else
		pass = strcmp(got, expected) == 0;
	tap_ok(pass, file, line, "%s", name);
	if (!pass)
		diag("       got: %s%s%s\n#   expected: %s%s%s", got ? "'" : "",
		     got ? got : "NULL", got ? "'" : "", expected ? "'" : "",
		     expected ? expected : "NULL", expected ? "'" : "");
	return pass;
}

/* ok(cond, fmt, ...): passes if cond is true; returns cond as a bool. */
#define ok(cond, ...) tap_ok(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

/* is_int(got, expected, name): integer equality, both shown on failure. */
#define is_int(got, expected, name)                                           \
	tap_is_int((long long)(got), (long long)(expected), (name), __FILE__, \
		   __LINE__)

/* is_str(got, expected, name): string equality (NULL equals only NULL). */
#define is_str(got, expected, name) \
	tap_is_str((got), (expected), (name), __FILE__, __LINE__)

/* Prints the plan and exits: status 1 if any check failed, else 0. */
static inline int done_testing(void)
{
	struct tap_state *t = tap_state();

	if (t->run == 0)
		printf("1..0 # SKIP no checks were run\n");
	else
		printf("1..%d\n", t->run);
	if (t->failed)
		diag("failed %d of %d checks", t->failed, t->run);
	fflush(stdout);
	exit(t->failed ? 1 : 0);
}

#endif
