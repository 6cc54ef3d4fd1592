/*
 * test_validate.c - unit tests for the content rules: validate.c (strict
 * streamed JSON, image signatures), sha256.c (image tokens) and names.c
 * (name checks).
 *
 * Every JSON and image vector is run three ways - all at once, one byte at
 * a time, and in random chunks - and must get the same verdict each way;
 * an invalid vector also names the offset of the first byte that feed()
 * must refuse (-1: only finish() may refuse), which checks both that
 * rejection is early and that no viable prefix is refused.  A randomized
 * differential test then compares validate.c with json_oracle.py, which
 * rests on Python's json module: python3 is required, not optional.
 *
 * DSFS_TEST_SEED=N in the environment replays a given random run; the seed
 * used is printed as a TAP comment.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "validate.h"
#include "tap.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/*
 * Helpers.
 */

static uint64_t rng_state;

/* xorshift64*: small, fast and replayable from the seed. */
static uint64_t rnd(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dULL;
}

static size_t rnd_below(size_t n)
{
	return n ? (size_t)(rnd() % n) : 0;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		perror("malloc");
		exit(2);
	}
	return p;
}

/* A vector shown in a test name: C-style escapes, cut when long.  Four
 * rotating buffers, so that one printf can show two. */
static const char *esc(const void *buf, size_t len)
{
	static char out[4][160];
	static int k;
	const uint8_t *p = buf;
	char *o = out[k++ % 4];
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		if (n > 120) {
			snprintf(o + n, 160 - n, "...(%zu bytes)", len);
			return o;
		}
		/* '#' could start a TAP directive */
		if (p[i] == '\\') {
			o[n++] = '\\';
			o[n++] = '\\';
		} else if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '#') {
			o[n++] = (char)p[i];
		} else {
			n += (size_t)snprintf(o + n, 160 - n, "\\x%02x", p[i]);
		}
	}
	o[n] = '\0';
	return o;
}

enum chunking {
	ALL_AT_ONCE,
	BYTE_AT_A_TIME,
	RANDOM_CHUNKS,
};

/* What a validator said about some content. */
struct outcome {
	int rc;		  /* 0 or the first error */
	bool by_feed;	  /* the error came from feed(), not finish() */
	long fail_at;	  /* first byte of the refused feed, or -1 */
	const char *type; /* when rc == 0 */
	char reason[160];
};

static void run(enum dsfs_content kind, const void *buf, size_t len,
		enum chunking how, struct outcome *o)
{
	const uint8_t *p = buf;
	struct dsfs_validator *v = validator_new(kind);
	size_t i = 0, n;

	memset(o, 0, sizeof(*o));
	o->fail_at = -1;
	if (!v) {
		o->rc = -ENOMEM;
		return;
	}
	while (i < len) {
		n = how == ALL_AT_ONCE	  ? len :
		    how == BYTE_AT_A_TIME ? 1 :
					    1 + rnd_below(17);
		if (n > len - i)
			n = len - i;
		o->rc = validator_feed(v, p + i, n);
		if (o->rc) {
			o->by_feed = true;
			o->fail_at = (long)i;
			break;
		}
		i += n;
	}
	if (!o->rc)
		o->rc = validator_finish(v, &o->type);
	snprintf(o->reason, sizeof(o->reason), "%s", validator_reason(v));
	validator_free(v);
}

/*
 * JSON vectors.
 */

struct vec {
	const char *data;
	size_t len;
	const char *type; /* valid: its type; NULL: invalid */
	long at;	  /* invalid: first byte feed() refuses, or -1 */
};

/* sizeof, not strlen: vectors may hold NUL bytes. */
#define OK(s, t)                        \
	{                               \
		s, sizeof(s) - 1, t, -1 \
	}
#define BAD(s, n)                         \
	{                                 \
		s, sizeof(s) - 1, NULL, n \
	}
#define INC(s)                             \
	{                                  \
		s, sizeof(s) - 1, NULL, -1 \
	}

static const struct vec json_vecs[] = {
	/* every type at the top level, with and without white space */
	OK("{}", "object"),
	OK("[]", "array"),
	OK("\"\"", "string"),
	OK("0", "number"),
	OK("12", "number"),
	OK("12\n", "number"),
	OK(" 12 ", "number"),
	OK("true", "boolean"),
	OK("false", "boolean"),
	OK("null", "null"),
	OK("true\r\n", "boolean"),
	OK(" \t\r\n{} \t\r\n", "object"),
	OK("", "empty"),
	OK(" ", "empty"),
	OK("  \n\t\r  \n", "empty"),
	/* numbers */
	OK("-0", "number"),
	OK("-0.0e-0", "number"),
	OK("0.5", "number"),
	OK("1.5e+3", "number"),
	OK("1E5", "number"),
	OK("1e-0", "number"),
	OK("-12.34E-56", "number"),
	OK("1e400", "number"),
	OK("123456789012345678901234567890", "number"),
	OK("-123456789012345678901234567890.5e99999", "number"),
	OK("[0,-0,1,-1,0.0,10,1e1,1E+1,1e-1]", "array"),
	/* structures */
	OK("{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}", "object"),
	OK("[1,2.5,-3e2,\"x\",{},[],true,false,null]", "array"),
	OK("{\"a\":1,\"a\":2}", "object"),
	OK("{\"\":\"\"}", "object"),
	OK("[ 1 , 2 ]", "array"),
	OK("{ \"a\" : [ ] , \"b\" : { } }", "object"),
	OK("[[[]]]", "array"),
	OK("[{\"a\":[{\"b\":[0]}]}]", "array"),
	/* strings, escapes, surrogate pairs */
	OK("\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "string"),
	OK("\"\\u0000\"", "string"),
	OK("\"\\u00e9\\u00E9\\uFFFF\\u0041\"", "string"),
	OK("\"\\ud834\\udd1e\"", "string"),
	OK("\"\\uD800\\uDC00\\uDBFF\\uDFFF\"", "string"),
	OK("\"\\ud7ff\\ue000\"", "string"),
	OK("\"a/b\"", "string"),
	OK("\"\x7f\"", "string"),
	OK("\"'\"", "string"),
	OK("\"//\"", "string"),
	OK("\"/*x*/\"", "string"),
	/* UTF-8 edges */
	OK("\"\xc2\x80\"", "string"),
	OK("\"\xc3\xa9\"", "string"),
	OK("\"\xdf\xbf\"", "string"),
	OK("\"\xe0\xa0\x80\"", "string"),
	OK("\"\xed\x9f\xbf\"", "string"),
	OK("\"\xee\x80\x80\"", "string"),
	OK("\"\xef\xbf\xbf\"", "string"),
	OK("\"\xef\xbb\xbf\"", "string"),
	OK("\"\xf0\x90\x80\x80\"", "string"),
	OK("\"\xf0\x9f\x98\x80\"", "string"),
	OK("\"\xf4\x8f\xbf\xbf\"", "string"),
	OK("{\"\xc3\xa9t\xc3\xa9\":\"\xe2\x82\xac\"}", "object"),

	/* early rejection: the offset is that of the first impossible byte */
	BAD("{\"a\": }", 6),
	BAD("{\"volume\": }", 11),
	INC("{\"volume\": "),
	/* trailing commas */
	BAD("[1,]", 3),
	BAD("{\"a\":1,}", 7),
	BAD("[1,2,]", 5),
	/* single quotes */
	BAD("'a'", 0),
	BAD("{'a':1}", 1),
	BAD("[\"a\",'b']", 5),
	/* NaN and Infinity */
	BAD("NaN", 0),
	BAD("nan", 1),
	BAD("Infinity", 0),
	BAD("-Infinity", 1),
	BAD("[NaN]", 1),
	BAD("[1,-Infinity]", 4),
	/* numbers */
	BAD("01", 1),
	BAD("-01", 2),
	BAD("00", 1),
	BAD("[01]", 2),
	INC("1."),
	INC("-"),
	INC("1e"),
	INC("1e+"),
	INC("-0."),
	BAD("1.e5", 2),
	BAD("[1.]", 3),
	BAD("[-]", 2),
	BAD(".5", 0),
	BAD("+1", 0),
	BAD("1e+-1", 3),
	BAD("1ee", 2),
	BAD("1.5.3", 3),
	BAD("0x10", 1),
	BAD("1 2", 2),
	BAD("-a", 1),
	BAD("1e5.0", 3),
	BAD("12x", 2),
	BAD("0 1", 2),
	/* comments */
	BAD("/*x*/1", 0),
	BAD("//x\n1", 0),
	BAD("1//x", 1),
	BAD("[1/*x*/]", 2),
	BAD("{} // c", 3),
	/* control characters in strings */
	BAD("\"a\x01\"", 2),
	BAD("\"a\nb\"", 2),
	BAD("\"\t\"", 1),
	BAD("\"\x00\"", 1),
	BAD("\"\x1f\"", 1),
	BAD("{\"a\rb\":1}", 3),
	/* white space is space, tab, LF and CR only; no NUL, no BOM */
	BAD(" \x0c"
	    "1",
	    1),
	BAD("1\x0b", 1),
	BAD("\xc2\xa0"
	    "1",
	    0),
	BAD("\xef\xbb\xbf{}", 0),
	BAD("{}\x00", 2),
	BAD("\x00", 0),
	BAD("[1,\x00"
	    "2]",
	    3),
	/* invalid UTF-8, inside and outside strings */
	BAD("\"\xff\"", 1),
	BAD("\"\xfe\"", 1),
	BAD("\"\x80\"", 1),
	BAD("\"\xbf\"", 1),
	BAD("\"\xc0\xaf\"", 1),
	BAD("\"\xc1\xbf\"", 1),
	BAD("\"\xe0\x80\x80\"", 2),
	BAD("\"\xe0\x9f\xbf\"", 2),
	BAD("\"\xed\xa0\x80\"", 2),
	BAD("\"\xed\xbf\xbf\"", 2),
	BAD("\"\xf0\x8f\xbf\xbf\"", 2),
	BAD("\"\xf4\x90\x80\x80\"", 2),
	BAD("\"\xf5\x80\x80\x80\"", 1),
	BAD("\"\xf8\x88\x80\x80\x80\"", 1),
	BAD("\"\xc3\"", 2),
	BAD("\"\xe2\x82\"", 3),
	BAD("\"\xf0\x9f\x98\"", 4),
	BAD("\"\xc3\xc3\xa9\"", 2),
	BAD("\"\xe2\x82\xac\xac\"", 4),
	INC("\"\xc3"),
	INC("\"\xf0\x9f\x98"),
	BAD("\xc3\xa9", 0),
	BAD("[\xe2\x82\xac]", 1),
	BAD("1\xff", 1),
	/* escapes */
	BAD("\"\\x\"", 2),
	BAD("\"\\U0041\"", 2),
	BAD("\"\\'\"", 2),
	BAD("\"\\ \"", 2),
	BAD("\"\\\x00\"", 2),
	BAD("\"\\u00g0\"", 5),
	BAD("\"\\u12\"", 5),
	BAD("\"\\u\"", 3),
	INC("\"\\"),
	INC("\"\\u00"),
	/* surrogate escapes must pair up */
	BAD("\"\\ud800\"", 7),
	BAD("\"\\ud800x\"", 7),
	BAD("\"\\ud800\\n\"", 8),
	BAD("\"\\ud800\\u0041\"", 9),
	BAD("\"\\ud800\\ud800\"", 10),
	BAD("\"\\udbff\\ue000\"", 9),
	BAD("\"\\udc00\"", 4),
	BAD("\"\\uDFFF\"", 4),
	BAD("\"\\udc00\\ud800\"", 4),
	INC("\"\\ud800"),
	INC("\"\\ud800\\"),
	INC("\"\\ud800\\u"),
	INC("\"\\ud800\\udc0"),
	/* literals */
	INC("tru"),
	INC("nul"),
	INC("f"),
	BAD("True", 0),
	BAD("TRUE", 0),
	BAD("trUe", 2),
	BAD("nulll", 4),
	BAD("truefalse", 4),
	BAD("null1", 4),
	BAD("[true false]", 6),
	BAD("undefined", 0),
	/* structure */
	BAD("{}{}", 2),
	BAD("{} {}", 3),
	BAD("[]]", 2),
	BAD("]", 0),
	BAD("}", 0),
	BAD("{]", 1),
	BAD("[}", 1),
	BAD("{\"a\"}", 4),
	BAD("{\"a\":1 \"b\":2}", 7),
	BAD("{1:2}", 1),
	BAD("{a:1}", 1),
	BAD("{\"a\"::1}", 5),
	BAD("{\"a\":1:2}", 6),
	BAD("[,1]", 1),
	BAD("[1,,2]", 3),
	BAD(",", 0),
	BAD(":", 0),
	BAD("\"a\" \"b\"", 4),
	BAD("\"a\":1", 3),
	BAD("1,", 1),
	BAD("[1]x", 3),
	BAD("truex", 4),
	BAD("\"a\"x", 3),
	BAD("{\"a\":1}}", 7),
	BAD("[1]\n[2]", 4),
	BAD("{\"a\":[1}", 7),
	BAD("[{\"a\":1]", 7),
	INC("["),
	INC("{"),
	INC("{\"a\""),
	INC("{\"a\":"),
	INC("{\"a\":1"),
	INC("{\"a\":1,"),
	INC("[1,"),
	INC("\"abc"),
	INC("[[[]]"),
	INC(" [ "),
};

/* Runs one vector three ways and checks all three against it. */
static void check_vec(enum dsfs_content kind, const struct vec *t)
{
	struct outcome o[3];
	const char *type = NULL, *reason = NULL;
	char where[32];
	int rc, i, expect = t->type ? 0 : -EINVAL;
	bool pass = true;

	run(kind, t->data, t->len, ALL_AT_ONCE, &o[0]);
	run(kind, t->data, t->len, BYTE_AT_A_TIME, &o[1]);
	run(kind, t->data, t->len, RANDOM_CHUNKS, &o[2]);
	rc = validate_buffer(kind, t->data, t->len, &type, &reason);

	for (i = 0; i < 3; i++) {
		if (o[i].rc != expect)
			pass = false;
		if (t->type && (!o[i].type || strcmp(o[i].type, t->type)))
			pass = false;
		/* Early: feed() refuses (whichever chunking) exactly when a
		 * byte can be named. */
		if (!t->type && o[i].by_feed != (t->at >= 0))
			pass = false;
	}
	if (rc != expect || (t->type && (!type || strcmp(type, t->type))))
		pass = false;
	/* Exact: one byte at a time, the refused byte is the named one, and
	 * the reason says where it is. */
	if (!t->type) {
		snprintf(where, sizeof(where), "byte %ld", t->at);
		if (o[1].fail_at != t->at)
			pass = false;
		if (t->at >= 0 && !strstr(o[1].reason, where))
			pass = false;
		if (!reason || strcmp(reason, o[0].reason))
			pass = false;
	}
	ok(pass, "'%s' %s%s%s", esc(t->data, t->len),
	   t->type ? "is " : "is refused",
	   t->type    ? t->type :
	   t->at >= 0 ? " at " :
			" at the end",
	   t->type    ? "" :
	   t->at >= 0 ? where :
			"");
	if (!pass)
		for (i = 0; i < 3; i++)
			diag("  %s: rc %d %s at %ld, type %s, reason: %s",
			     i == 0 ? "at once" :
			     i == 1 ? "bytewise" :
				      "random",
			     o[i].rc, o[i].by_feed ? "by feed" : "by finish",
			     o[i].fail_at, o[i].type ? o[i].type : "-",
			     o[i].reason);
}

static void test_json_vectors(void)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(json_vecs); i++)
		check_vec(DSFS_CONTENT_JSON, &json_vecs[i]);
}

/* Builds n copies of open, then mid, then n copies of close. */
static char *nest(int n, const char *open, const char *mid, const char *close,
		  size_t *len)
{
	size_t lo = strlen(open), lm = strlen(mid), lc = strlen(close);
	char *s = xmalloc(n * (lo + lc) + lm + 1), *p = s;
	int i;

	for (i = 0; i < n; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, mid, lm);
	p += lm;
	for (i = 0; i < n; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	*len = (size_t)(p - s);
	return s;
}

static void test_depth(void)
{
	const int max = DSFS_JSON_MAX_DEPTH;
	struct vec t;
	char *s;
	size_t len;

	s = nest(max, "[", "", "]", &len);
	t = (struct vec){s, len, "array", -1};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);

	s = nest(max, "[", "0", "]", &len);
	t = (struct vec){s, len, "array", -1};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);

	s = nest(max, "{\"a\":", "\"deep\"", "}", &len);
	t = (struct vec){s, len, "object", -1};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);

	s = nest(max / 2, "[{\"k\":", "null", "}]", &len);
	t = (struct vec){s, len, "array", -1};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);

	/* One level too many is refused at the bracket that opens it. */
	s = nest(max + 1, "[", "", "]", &len);
	t = (struct vec){s, len, NULL, max};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);

	s = nest(max + 1, "{\"a\":", "1", "}", &len);
	t = (struct vec){s, len, NULL, (long)max * 5};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);

	s = nest(100000, "[", "", "]", &len);
	t = (struct vec){s, len, NULL, max};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);

	/* ... and the reason says why. */
	s = nest(max + 1, "[", "", "]", &len);
	{
		const char *type, *reason = NULL;

		validate_buffer(DSFS_CONTENT_JSON, s, len, &type, &reason);
		ok(reason && strstr(reason, "deeper than 512"),
		   "too deep: reason '%s'", reason ? reason : "(none)");
	}
	free(s);

	/* Depth comes back down: siblings do not add up. */
	s = xmalloc(9 * (size_t)max + 5);
	len = 0;
	s[len++] = '[';
	for (int i = 0; i < 3 * max; i++, len += 3)
		memcpy(s + len, "[],", 3);
	memcpy(s + len, "[]]", 4);
	len += 3;
	t = (struct vec){s, len, "array", -1};
	check_vec(DSFS_CONTENT_JSON, &t);
	free(s);
}

/* A long string of every kind of character, split by the feeds anywhere,
 * also in the middle of multi-byte characters. */
static void test_big_values(void)
{
	static const char piece[] = "plain text \xc3\xa9\xe2\x82\xac"
				    "\xf0\x9f\x98\x80 \\n\\\"\\u00e9"
				    "\\ud83d\\ude00/\\\\";
	const size_t n = 1 << 20;
	char *s = xmalloc(n + sizeof(piece) + 2);
	size_t len = 0, chunks[] = {1, 3, 7, 4093, 65536};
	const char *type = NULL, *reason = NULL;
	struct dsfs_validator *v;
	size_t i, j, k;
	int rc;

	s[len++] = '"';
	while (len < n) {
		memcpy(s + len, piece, sizeof(piece) - 1);
		len += sizeof(piece) - 1;
	}
	s[len++] = '"';

	for (k = 0; k < ARRAY_SIZE(chunks); k++) {
		v = validator_new(DSFS_CONTENT_JSON);
		rc = 0;
		for (i = 0; i < len && rc == 0; i += j) {
			j = len - i < chunks[k] ? len - i : chunks[k];
			rc = validator_feed(v, s + i, j);
		}
		if (rc == 0)
			rc = validator_finish(v, &type);
		ok(rc == 0 && strcmp(type, "string") == 0,
		   "a %zu-byte string in %zu-byte writes", len, chunks[k]);
		validator_free(v);
	}

	/* One bad byte near the end is found, at its offset. */
	s[len - 100] = '\x01';
	{
		struct vec t = {s, len, NULL, (long)len - 100};

		check_vec(DSFS_CONTENT_JSON, &t);
	}

	/* A long number, a long array, a long object. */
	memset(s, '7', len);
	rc = validate_buffer(DSFS_CONTENT_JSON, s, len, &type, &reason);
	ok(rc == 0 && strcmp(type, "number") == 0, "a %zu-digit number", len);
	s[0] = '[';
	for (i = 1; i + 2 < len; i += 2)
		s[i] = '1', s[i + 1] = ',';
	s[i] = '0';
	s[i + 1] = ']';
	rc = validate_buffer(DSFS_CONTENT_JSON, s, i + 2, &type, &reason);
	ok(rc == 0 && strcmp(type, "array") == 0, "an array of %zu numbers",
	   i / 2);
	len = 0;
	s[len++] = '{';
	for (i = 0; len < n; i++)
		len += (size_t)sprintf(s + len, "\"k%zu\":{\"x\":[true]},", i);
	s[len - 1] = '}';
	rc = validate_buffer(DSFS_CONTENT_JSON, s, len, &type, &reason);
	ok(rc == 0 && strcmp(type, "object") == 0, "an object of %zu members",
	   i);
	free(s);
}

/*
 * Random valid documents, large and deep: they cross every internal
 * boundary (json-c's window, feed chunks in the middle of tokens) in every
 * state of the grammar, and must always be accepted.
 */

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = 2 * (b->len + n);
		b->p = realloc(b->p, b->cap);
		if (!b->p) {
			perror("realloc");
			exit(2);
		}
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
}

static void put_str(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void put_ws(struct buf *b)
{
	static const char ws[] = " \t\n\r";

	while (rnd_below(4) == 0)
		put(b, &ws[rnd_below(4)], 1);
}

static void gen_string(struct buf *b)
{
	static const char *const pieces[] = {
		"a",
		"plain words",
		"\\n",
		"\\\"",
		"\\\\",
		"\\/",
		"\\b",
		"\\u00e9",
		"\\u20AC",
		"\\uD83D\\uDE00",
		"\\u0000",
		"'",
		"\xc3\xa9",
		"\xe2\x82\xac",
		"\xf0\x9f\x98\x80",
		"\x7f",
		"#",
	};
	size_t n = rnd_below(6);

	put(b, "\"", 1);
	while (n--)
		put_str(b, pieces[rnd_below(ARRAY_SIZE(pieces))]);
	put(b, "\"", 1);
}

static void gen_digits(struct buf *b, bool nonzero_first)
{
	size_t n = 1 + rnd_below(5);
	char d;

	while (n--) {
		d = (char)('0' + rnd_below(10));
		if (nonzero_first && d == '0')
			d = '1';
		nonzero_first = false;
		put(b, &d, 1);
	}
}

static void gen_number(struct buf *b)
{
	if (rnd_below(2))
		put(b, "-", 1);
	if (rnd_below(4) == 0)
		put(b, "0", 1);
	else
		gen_digits(b, true);
	if (rnd_below(3) == 0) {
		put(b, ".", 1);
		gen_digits(b, false);
	}
	if (rnd_below(3) == 0) {
		put_str(b, rnd_below(2) ? "e" : "E");
		if (rnd_below(2))
			put_str(b, rnd_below(2) ? "+" : "-");
		gen_digits(b, false);
	}
}

/* A value; containers while depth < deep (then rarely), and no larger than
 * about target bytes in all. */
static void gen_value(struct buf *b, int depth, int deep, size_t target)
{
	static const char *const literals[] = {"true", "false", "null"};
	int kind = depth < deep ? 5 + (int)rnd_below(2) : (int)rnd_below(7);
	size_t n, i;

	if (depth >= DSFS_JSON_MAX_DEPTH || b->len > target)
		kind = (int)rnd_below(3);
	switch (kind) {
	case 0:
		gen_string(b);
		break;
	case 1:
		gen_number(b);
		break;
	case 2:
		put_str(b, literals[rnd_below(3)]);
		break;
	case 3:
	case 5:
		put(b, "[", 1);
		put_ws(b);
		n = depth < deep ? 1 + rnd_below(2) : rnd_below(8);
		for (i = 0; i < n; i++) {
			if (i) {
				put(b, ",", 1);
				put_ws(b);
			}
			gen_value(b, depth + 1, deep, target);
			put_ws(b);
		}
		put(b, "]", 1);
		break;
	default:
		put(b, "{", 1);
		put_ws(b);
		n = depth < deep ? 1 + rnd_below(2) : rnd_below(8);
		for (i = 0; i < n; i++) {
			if (i) {
				put(b, ",", 1);
				put_ws(b);
			}
			gen_string(b);
			put_ws(b);
			put(b, ":", 1);
			put_ws(b);
			gen_value(b, depth + 1, deep, target);
			put_ws(b);
		}
		put(b, "}", 1);
		break;
	}
}

static void test_random_valid(void)
{
	static const int deeps[] = {0, 3, 20, 200, DSFS_JSON_MAX_DEPTH};
	struct buf b = {0};
	struct outcome o[3];
	size_t i, k, fails;

	for (i = 0; i < 2 * ARRAY_SIZE(deeps); i++) {
		b.len = 0;
		put_ws(&b);
		/* a wide top level keeps growing until it is big enough */
		put(&b, "[", 1);
		for (k = 0; k == 0 || b.len < 200000; k++) {
			if (k)
				put(&b, ",", 1);
			gen_value(&b, 1, deeps[i % ARRAY_SIZE(deeps)],
				  b.len + 20000);
		}
		put(&b, "]", 1);
		put_ws(&b);
		run(DSFS_CONTENT_JSON, b.p, b.len, ALL_AT_ONCE, &o[0]);
		run(DSFS_CONTENT_JSON, b.p, b.len, BYTE_AT_A_TIME, &o[1]);
		run(DSFS_CONTENT_JSON, b.p, b.len, RANDOM_CHUNKS, &o[2]);
		for (k = 0, fails = 0; k < 3; k++)
			fails += o[k].rc != 0 || strcmp(o[k].type, "array");
		ok(fails == 0,
		   "a random valid %zu-byte document, nesting "
		   "to %d, is accepted however it is split",
		   b.len, deeps[i % ARRAY_SIZE(deeps)]);
		for (k = 0; k < 3 && fails; k++)
			diag("  %zu: rc %d at %ld: %s", k, o[k].rc,
			     o[k].fail_at, o[k].reason);
	}
	free(b.p);
}

/* The API's promises beyond the verdict. */
static void test_api(void)
{
	struct dsfs_validator *v;
	const char *type = NULL, *reason = NULL;
	int rc;

	validator_free(NULL);
	ok(1, "validator_free(NULL) is harmless");

	v = validator_new(DSFS_CONTENT_JSON);
	ok(v != NULL, "validator_new");
	is_int(validator_feed(v, "", 0), 0, "a 0-byte feed is fine");
	is_int(validator_feed(v, "{\"a\": ", 6), 0,
	       "'{\"a\": ' is fine so far");
	is_int(validator_feed(v, "}", 1), -EINVAL, "then '}' is refused");
	ok(strstr(validator_reason(v), "'}'") &&
		   strstr(validator_reason(v), "byte 6"),
	   "and the reason names it: %s", validator_reason(v));
	is_int(validator_feed(v, "1}", 2), -EINVAL,
	       "every later feed is refused");
	is_int(validator_finish(v, &type), -EINVAL, "and so is finish");
	validator_free(v);

	v = validator_new(DSFS_CONTENT_JSON);
	is_int(validator_feed(v, "{\"volume\": ", 11), 0,
	       "'{\"volume\": ' is fine so far");
	is_int(validator_finish(v, &type), -EINVAL, "but not at the end");
	ok(strstr(validator_reason(v), "end"), "reason: %s",
	   validator_reason(v));
	validator_free(v);

	v = validator_new(DSFS_CONTENT_JSON);
	validator_feed(v, "[1]", 3);
	rc = validator_finish(v, &type);
	ok(rc == 0 && strcmp(type, "array") == 0, "finish: array");
	type = NULL;
	rc = validator_finish(v, &type);
	ok(rc == 0 && type && strcmp(type, "array") == 0,
	   "a second finish says the same");
	is_int(validator_feed(v, " ", 1), -EINVAL, "feed after finish");
	validator_free(v);

	rc = validate_buffer(DSFS_CONTENT_JSON, "[1,]", 4, &type, &reason);
	is_int(rc, -EINVAL, "validate_buffer refuses [1,]");
	ok(reason && strstr(reason, "byte 3"),
	   "its reason outlives the validator: %s", reason ? reason : "-");
	rc = validate_buffer(DSFS_CONTENT_JSON, "7", 1, NULL, NULL);
	is_int(rc, 0, "validate_buffer takes NULL type and reason");
}

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

/*
 * SHA-256 (FIPS 180-2 appendix B and a few padding edges).
 */

/* With portable, the CPU's SHA instructions are not used even if it has
 * them, so that both ways are checked. */
static void sha256_way(const void *buf, size_t len, size_t chunk, bool portable,
		       char out[65])
{
	struct dsfs_sha256 s;
	const uint8_t *p = buf;
	size_t i, n;

	sha256_init(&s);
	if (portable)
		s.accel = false;
	for (i = 0; i < len; i += n) {
		n = chunk && chunk < len - i ? chunk : len - i;
		sha256_update(&s, p + i, n);
	}
	sha256_hex(&s, out);
}

/* The CPU's way and the portable one agree on every length around the
 * block edges and on a big buffer, in pieces of every alignment. */
static void test_sha256_ways(void)
{
	struct dsfs_sha256 probe;
	size_t len, bad = 0, big = 300000;
	uint8_t *buf = xmalloc(big);
	char a[65], b[65];
	uint32_t x = 12345;

	for (len = 0; len < big; len++) {
		x = x * 1103515245 + 12345;
		buf[len] = (uint8_t)(x >> 16);
	}
	for (len = 0; len <= 300; len++) {
		sha256_way(buf, len, 0, false, a);
		sha256_way(buf, len, 0, true, b);
		bad += strcmp(a, b) != 0;
	}
	sha256_way(buf, big, 0, false, a);
	sha256_way(buf, big, 0, true, b);
	bad += strcmp(a, b) != 0;
	sha256_way(buf, big, 7, false, a);
	bad += strcmp(a, b) != 0;
	sha256_init(&probe);
	ok(bad == 0,
	   "sha256: the CPU's instructions (%s here) and the "
	   "portable code agree on 303 inputs",
	   probe.accel ? "used" : "not available");
	free(buf);
}

static void test_sha256(void)
{
	static const struct {
		const char *msg;
		size_t repeat;
		const char *hex;
	} vecs[] = {
		{"", 1,
		 "e3b0c44298fc1c149afbf4c8996fb924"
		 "27ae41e4649b934ca495991b7852b855"},
		{"abc", 1,
		 "ba7816bf8f01cfea414140de5dae2223"
		 "b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", 1,
		 "248d6a61d20638b8e5c026930c3e6039"
		 "a33ce45964ff2167f6ecedd419db06c1"},
		{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmn"
		 "hijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		 1,
		 "cf5b16a778af8380036ce59e7b049237"
		 "0b249b11e8f07a51afac45037afee9d1"},
		{"a", 1000000,
		 "cdc76e5c9914fb9281a1c7e284d73e67"
		 "f1809a48a497200e046d39ccc7112cd0"},
		{"a", 55,
		 "9f4390f8d30c2dd92ec9f095b65e2b9a"
		 "e9b0a925a5258e241c9f1e910f734318"},
		{"a", 56,
		 "b35439a4ac6f0948b6d6f9e3c6af0f5f"
		 "590ce20f1bde7090ef7970686ec6738a"},
		{"a", 63,
		 "7d3e74a05d7db15bce4ad9ec0658ea98"
		 "e3f06eeecf16b4c6fff2da457ddc2f34"},
		{"a", 64,
		 "ffe054fe7ae0cb6dc65c3af9b61d5209"
		 "f439851db43d0ba5997337df154668eb"},
		{"a", 119,
		 "31eba51c313a5c08226adf18d4a359cf"
		 "dfd8d2e816b13f4af952f7ea6584dcfb"},
	};
	static const size_t chunks[] = {0, 1, 3, 63, 64, 65, 1000};
	char hex[65];
	size_t i, k, len;
	char *msg;

	for (i = 0; i < ARRAY_SIZE(vecs); i++) {
		len = strlen(vecs[i].msg) * vecs[i].repeat;
		msg = xmalloc(len + 1);
		if (vecs[i].repeat > 1)
			memset(msg, vecs[i].msg[0], len);
		else
			memcpy(msg, vecs[i].msg, len);
		for (k = 0; k < 2 * ARRAY_SIZE(chunks); k++) {
			sha256_way(msg, len, chunks[k / 2], k % 2, hex);
			if (strcmp(hex, vecs[i].hex))
				break;
		}
		ok(k == 2 * ARRAY_SIZE(chunks),
		   "sha256 of %zu bytes of '%.10s'", len, vecs[i].msg);
		if (k < 2 * ARRAY_SIZE(chunks))
			diag("  chunk %zu%s: got %s", chunks[k / 2],
			     k % 2 ? " (portable)" : "", hex);
		free(msg);
	}
	test_sha256_ways();
}

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

/*
 * The differential test against json_oracle.py.
 */

#define N_RANDOM 2000

static const char *const seeds[] = {
	"{\"volume\": 11, \"muted\": false, \"name\": \"living room\"}",
	"[1, -2.5, 3e10, -0, 0.001E-3, 12345678901234567890]",
	"{\"a\": {\"b\": {\"c\": [null, true, false, {}]}}, \"d\": []}",
	"\"esc \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\ud83d\\ude00\"",
	"\"utf-8: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbf\"",
	"  [ \"x\" ,\t{ \"k\" : [ 1 , 2 ] } ]\r\n",
	"42",
	"-0.5e-7\n",
	"true",
	"null",
	"{\"\xc3\xa9t\xc3\xa9\":{\"\":[[[\"\"]]]},\"n\":[0,1e1,2E+2]}",
	"[{\"id\":1,\"tags\":[\"a\",\"b\"]},{\"id\":2,\"tags\":[]}]",
	"",
	" ",
};

static const char *const snippets[] = {
	"\\u",
	"\\ud800",
	"\\udc00",
	"\\uDBFF\\uDFFF",
	"\\u00",
	"\\x",
	"\xed\xa0\x80",
	"\xf4\x90\x80\x80",
	"\xc0\xaf",
	"\xe2\x82",
	"\xc3",
	"\xef\xbb\xbf",
	"\xc2\xa0",
	"NaN",
	"Infinity",
	"-Infinity",
	"01",
	"1.",
	".5",
	"1e",
	"1e+",
	"-",
	",]",
	",}",
	"//",
	"/*x*/",
	"'a'",
	"true",
	"false",
	"null",
	"\"\"",
	"[",
	"]",
	"{",
	"}",
	"\"k\":",
	":",
	",",
	" ",
	"\t",
	"\n",
	"\r",
	"\f",
	"\v",
	"0",
	"-0",
	"1.5e3",
	"\"",
	"\\",
	"\\\"",
	"[]",
	"{}",
	"tru",
	"nul",
};

/* Any byte at all, or one of those JSON is made of (more often). */
static uint8_t random_byte(void)
{
	static const char alphabet[] = "{}[]:,\" \\-+.0123456789eEtrufalsn"
				       "\t\n\r\x01\x7f\x80\xbf\xc3\xa9\xff/'";

	if (rnd_below(4) == 0)
		return (uint8_t)rnd();
	return (uint8_t)alphabet[rnd_below(sizeof(alphabet) - 1)];
}

/* A random mutation (1-3 edits) of a seed: insert, delete or replace a
 * byte, insert a snippet, truncate, or repeat a slice. */
static size_t mutate(const char *seed, size_t slen, char *out, size_t cap)
{
	size_t len = slen, edits = 1 + rnd_below(3), e, pos, n;
	const char *snip;

	memcpy(out, seed, slen);
	for (e = 0; e < edits; e++) {
		pos = rnd_below(len + 1);
		switch (rnd_below(6)) {
		case 0: /* insert a byte */
			if (len + 1 > cap)
				break;
			memmove(out + pos + 1, out + pos, len - pos);
			out[pos] = (char)random_byte();
			len++;
			break;
		case 1: /* delete a byte */
			if (pos < len) {
				memmove(out + pos, out + pos + 1,
					len - pos - 1);
				len--;
			}
			break;
		case 2: /* replace a byte */
			if (pos < len)
				out[pos] = (char)random_byte();
			break;
		case 3: /* insert a snippet */
			snip = snippets[rnd_below(ARRAY_SIZE(snippets))];
			n = strlen(snip);
			if (len + n > cap)
				break;
			memmove(out + pos + n, out + pos, len - pos);
			memcpy(out + pos, snip, n);
			len += n;
			break;
		case 4: /* truncate */
			if (rnd_below(3) == 0)
				len = pos;
			break;
		case 5: /* repeat a slice: shifting the tail right by n
			 * leaves a copy of its first n bytes behind */
			n = rnd_below(len - pos + 1);
			if (n > 16)
				n = 16;
			if (len + n > cap)
				break;
			memmove(out + pos + n, out + pos, len - pos);
			len += n;
			break;
		}
	}
	return len;
}

/* Where json_oracle.py is: $JSON_ORACLE, or beside this file, found from
 * automake's $srcdir, from the top of the tree, or from the source path. */
static const char *find_oracle(char *buf, size_t size)
{
	const char *env = getenv("JSON_ORACLE");
	const char *srcdir = getenv("srcdir");
	char here[512], *slash;
	int i;

	if (env)
		return env;
	snprintf(here, sizeof(here), "%s", __FILE__);
	slash = strrchr(here, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(here, ".");
	for (i = 0; i < 4; i++) {
		if (i == 0 && srcdir)
			snprintf(buf, size, "%s/json_oracle.py", srcdir);
		else if (i == 1 && srcdir)
			snprintf(buf, size, "%s/tests/unit/json_oracle.py",
				 srcdir);
		else if (i == 2)
			snprintf(buf, size, "tests/unit/json_oracle.py");
		else if (i == 3)
			snprintf(buf, size, "%s/json_oracle.py", here);
		else
			continue;
		if (access(buf, R_OK) == 0)
			return buf;
	}
	return NULL;
}

/* One verdict, as json_oracle.py writes it. */
static void verdict(const struct outcome *o, char *buf, size_t size)
{
	if (o->rc == 0)
		snprintf(buf, size, "valid %s", o->type);
	else
		snprintf(buf, size, "invalid");
}

static void test_oracle(void)
{
	static char *docs[N_RANDOM];
	static size_t lens[N_RANDOM];
	const char *tmp = getenv("TMPDIR"), *oracle, *seed;
	char dir[512], path[600], list[600], oracle_buf[600], cmd[1400];
	char theirs[64], ours[3][64];
	size_t room = 4096, i, slen, deep_len;
	size_t n_valid = 0, n_lines = 0, mismatches = 0;
	struct outcome o[3];
	FILE *f, *lf, *p;
	char *deep;
	int k, status;

	oracle = find_oracle(oracle_buf, sizeof(oracle_buf));
	if (!ok(oracle != NULL, "json_oracle.py found"))
		return;
	snprintf(dir, sizeof(dir), "%s/dsfs-test-validate-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!ok(mkdtemp(dir) != NULL, "temporary directory %s", dir))
		return;

	/* A seed at the depth limit, so that mutations cross it. */
	deep = nest(DSFS_JSON_MAX_DEPTH, "[", "0", "]", &deep_len);

	snprintf(list, sizeof(list), "%s/list", dir);
	lf = fopen(list, "w");
	if (!lf) {
		ok(0, "creating %s", list);
		exit(2);
	}
	for (i = 0; i < N_RANDOM; i++) {
		if (i % 50 == 49) {
			seed = deep;
			slen = deep_len;
		} else {
			seed = seeds[i % ARRAY_SIZE(seeds)];
			slen = strlen(seed);
		}
		docs[i] = xmalloc(slen + room);
		/* The seeds themselves first, then mutations of them. */
		if (i < ARRAY_SIZE(seeds)) {
			memcpy(docs[i], seed, slen);
			lens[i] = slen;
		} else {
			lens[i] = mutate(seed, slen, docs[i], slen + room);
		}
		snprintf(path, sizeof(path), "%s/%zu.json", dir, i);
		f = fopen(path, "wb");
		if (!f || fwrite(docs[i], 1, lens[i], f) != lens[i] ||
		    fclose(f)) {
			ok(0, "writing %s", path);
			exit(2);
		}
		fprintf(lf, "%s\n", path);
	}
	fclose(lf);
	free(deep);

	/* One python3 for all documents: starting it is the slow part. */
	snprintf(cmd, sizeof(cmd), "python3 '%s' --list '%s'", oracle, list);
	p = popen(cmd, "r");
	ok(p != NULL, "running %s", cmd);
	for (i = 0; p && fgets(theirs, sizeof(theirs), p); i++) {
		theirs[strcspn(theirs, "\n")] = '\0';
		if (i >= N_RANDOM)
			continue;
		n_lines++;
		run(DSFS_CONTENT_JSON, docs[i], lens[i], ALL_AT_ONCE, &o[0]);
		run(DSFS_CONTENT_JSON, docs[i], lens[i], BYTE_AT_A_TIME, &o[1]);
		run(DSFS_CONTENT_JSON, docs[i], lens[i], RANDOM_CHUNKS, &o[2]);
		for (k = 0; k < 3; k++)
			verdict(&o[k], ours[k], sizeof(ours[k]));
		n_valid += o[0].rc == 0;
		if (!strcmp(ours[0], theirs) && !strcmp(ours[1], theirs) &&
		    !strcmp(ours[2], theirs))
			continue;
		if (mismatches++ < 20)
			diag("%zu.json '%s': oracle says %s, we say %s "
			     "(bytewise: %s, random: %s; %s)",
			     i, esc(docs[i], lens[i]), theirs, ours[0], ours[1],
			     ours[2], o[0].reason);
	}
	status = p ? pclose(p) : -1;
	ok(status == 0, "python3 json_oracle.py ran (exit status %d)",
	   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	is_int(n_lines, N_RANDOM, "the oracle judged every document");
	ok(mismatches == 0,
	   "validate.c agrees with the oracle on %zu "
	   "random documents (%zu valid, %zu differ)",
	   n_lines, n_valid, mismatches);
	ok(n_valid > N_RANDOM / 10 && n_valid < N_RANDOM - N_RANDOM / 10,
	   "both verdicts are well represented (%zu valid)", n_valid);

	for (i = 0; i < N_RANDOM; i++) {
		snprintf(path, sizeof(path), "%s/%zu.json", dir, i);
		unlink(path);
		free(docs[i]);
	}
	unlink(list);
	ok(rmdir(dir) == 0, "temporary directory removed");
}

int main(void)
{
	const char *seed = getenv("DSFS_TEST_SEED");

	plan_no_plan();
	rng_state = seed ? strtoull(seed, NULL, 0) : 0x5eed5eedULL;
	if (!rng_state)
		rng_state = 1;
	diag("DSFS_TEST_SEED=%llu", (unsigned long long)rng_state);

	test_json_vectors();
	test_depth();
	test_big_values();
	test_random_valid();
	test_api();
	test_images();
	test_sha256();
	test_utf8();
	test_names();
	test_oracle();
	return done_testing();
}
