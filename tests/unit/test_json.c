/*
 * test_json.c - unit tests for the JSON validator (validate.c,
 * validate_json.c): strict, streamed RFC 8259.
 *
 * Every vector is run three ways (vectors.h) and must get the same verdict
 * each way, refused at the byte it names.  Then come the depth limit, big
 * values, random valid documents split anywhere, the API's promises, and a
 * randomized differential test against json_oracle.py, which rests on
 * Python's json module: python3 is required, not optional.
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
#include "vectors.h"

/*
 * JSON vectors.
 */

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
	snprintf(dir, sizeof(dir), "%s/dsfs-test-json-XXXXXX",
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
	plan_no_plan();
	rng_seed();

	test_json_vectors();
	test_depth();
	test_big_values();
	test_random_valid();
	test_api();
	test_oracle();
	return done_testing();
}
