/*
 * validate_json.c - is a value strict JSON (RFC 8259)?  The JSON side of
 * the validator (validate.c), for kv/ and devices/.
 *
 * JSON is checked by two parsers in step.
 *
 * The first is our own: a byte-at-a-time push-down recogniser of the
 * RFC 8259 grammar that keeps one bit per open container.  It exists
 * because json-c 0.16, even with JSON_TOKENER_STRICT, is not strict enough
 * and not split-proof (all measured): it accepts NaN, Infinity, -Infinity,
 * "1.", "1.e5" and "-01", raw control characters in strings, unpaired
 * \uD800 escapes (it substitutes U+FFFD) and, when a sequence arrives in
 * one call, overlong UTF-8 despite JSON_TOKENER_VALIDATE_UTF8; with that
 * flag it also rejects a valid multi-byte character split between two
 * calls; after returning a value it starts a new one on the next call, so
 * "{}" then "{}" passes; and it returns a top-level number or literal only
 * once the end is signalled.  Our recogniser alone decides where a prefix
 * stops being viable, which makes the reported offset exact.
 *
 * The second is json-c, fed a skeleton of the value: structural characters
 * as they are, every string as "", every number as 0, literals as they are,
 * no white space.  It checks the structure independently (a disagreement
 * fails the value, and would be a bug here) without ever seeing or copying
 * the content, and its tree is kept small: see tok_reprime().  Every object
 * it returns is dropped at once.  json-c appears in this file only.
 *
 * The two share this file because they are one mechanism: the recogniser
 * emits the skeleton as its state moves, and json-c is reprimed from that
 * state.  A validator's memory is bounded however long the value is:
 * json-c's tokener and the tree of at most SKELETON_WINDOW bytes of
 * skeleton, a few hundred kilobytes at worst.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json_object.h>
#include <json-c/json_tokener.h>

#include "validate_internal.h"

/* What the JSON grammar expects next, between tokens. */
enum json_expect {
	EX_VALUE,	   /* at the start, after ':', after ',' in [] */
	EX_VALUE_OR_CLOSE, /* after '[' */
	EX_KEY_OR_CLOSE,   /* after '{' */
	EX_KEY,		   /* after ',' in {} */
	EX_COLON,	   /* after a key */
	EX_COMMA_OR_CLOSE, /* after an element or member */
	EX_END,		   /* after the top-level value: white space */
};

/* The token being read, if any. */
enum json_lex {
	LX_NONE,
	LX_STRING,
	LX_NUMBER,
	LX_LITERAL,
};

/* Where we are inside a string. */
enum json_str {
	ST_CHARS,	  /* characters; '"' ends, '\' escapes */
	ST_ESCAPE,	  /* after '\' */
	ST_HEX,		  /* among the four digits of \uXXXX */
	ST_LOW_BACKSLASH, /* after a high surrogate: '\' must follow */
	ST_LOW_U,	  /* ... and then 'u' */
};

/* Where we are inside a number, whose grammar is
 * -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)? */
enum json_num {
	NU_MINUS, /* "-": a digit must follow */
	NU_ZERO,  /* a leading 0: no digit may follow */
	NU_INT,	  /* in the integer digits */
	NU_DOT,	  /* ".": a digit must follow */
	NU_FRAC,  /* in the fraction digits */
	NU_E,	  /* "e": a sign or a digit must follow */
	NU_ESIGN, /* "e+": a digit must follow */
	NU_EXP,	  /* in the exponent digits */
};

/* A number may end (the next byte is not part of it) only in these. */
static bool num_complete(int sub)
{
	return sub == NU_ZERO || sub == NU_INT || sub == NU_FRAC ||
	       sub == NU_EXP;
}

/* json-c's tree is dropped after about SKELETON_WINDOW bytes of skeleton
 * (see tok_reprime). */
#define SKELETON_WINDOW 1024

/* A byte as a reader of the log would want to see it. */
static const char *show(uint8_t c, char buf[8])
{
	if (c > 0x20 && c < 0x7f)
		snprintf(buf, 8, "'%c'", c);
	else
		snprintf(buf, 8, "0x%02x", c);
	return buf;
}

static int unexpected(struct dsfs_validator *v, uint8_t c, const char *why)
{
	char b[8];

	return validator_fail(v, "unexpected %s%s at byte %llu", show(c, b),
			      why, (unsigned long long)v->off);
}

/*
 * The json-c side.
 *
 * The skeleton of a token is emitted before the recogniser's state moves
 * past the token.  So whenever json-c has taken every byte emitted so far,
 * the state (the open containers and what is expected next) describes
 * exactly what json-c has seen, which is what tok_reprime() relies on.
 */

static bool level_is_object(const struct json_scan *s, unsigned int i)
{
	return s->is_object[i / 8] & (1u << (i % 8));
}

static int tok_fail(struct dsfs_validator *v, const char *what)
{
	return validator_fail(v, "json-c disagrees (%s) near byte %llu", what,
			      (unsigned long long)v->off);
}

/* Gives n skeleton bytes to json-c, which must then want more or have
 * ended the value with the last of them. */
static int tok_parse(struct dsfs_validator *v, const char *buf, size_t n)
{
	struct json_object *obj;
	enum json_tokener_error err;

	/* After the value json-c would silently start a new one. */
	if (v->tok_done)
		return tok_fail(v, "data after the value");
	obj = json_tokener_parse_ex(v->tok, buf, (int)n);
	err = json_tokener_get_error(v->tok);
	/* Only the verdict is wanted: drop the tree at once. */
	json_object_put(obj);
	v->tok_fed += n;
	if (err == json_tokener_continue)
		return 0;
	if (err != json_tokener_success)
		return tok_fail(v, json_tokener_error_desc(err));
	if (json_tokener_get_parse_end(v->tok) != n)
		return tok_fail(v, "data after the value");
	v->tok_done = true;
	json_tokener_free(v->tok);
	v->tok = NULL;
	return 0;
}

/*
 * json-c keeps the tree of everything it parsed until the top-level value
 * ends: measured, some 800 bytes for each "{}", so that 13 MiB of
 * [{},{},...] took 3.5 GB and 17 s.  To bound it, once json-c has taken
 * SKELETON_WINDOW bytes the tree is dropped (json_tokener_reset) and json-c
 * is put back into the same grammatical state by a minimal skeleton of the
 * open containers: '[' or '{' for each, "": before a member's value, and
 * for the innermost one a tail that leaves json-c expecting what we expect.
 * That costs O(depth) bytes, and every token is still checked by json-c in
 * the state it would have been in.  (The same 13 MiB now take 0.3 MB and
 * 0.7 s, of which 0.1 s is ours.)
 */
static int tok_reprime(struct dsfs_validator *v)
{
	const struct json_scan *s = &v->js;
	bool object = level_is_object(s, s->depth - 1);
	char path[SKELETON_CHUNK];
	const char *tail;
	size_t n = 0, len;
	unsigned int i;
	int rc;

	json_tokener_reset(v->tok);
	for (i = 0; i < s->depth; i++) {
		if (n + 4 > sizeof(path)) {
			rc = tok_parse(v, path, n);
			if (rc)
				return rc;
			n = 0;
		}
		if (i > 0 && level_is_object(s, i - 1)) {
			/* path is bytes with a length, not a string. */
			/* NOLINTNEXTLINE(bugprone-not-null-terminated-result) */
			memcpy(path + n, "\"\":", 3);
			n += 3;
		}
		path[n++] = level_is_object(s, i) ? '{' : '[';
	}
	switch (s->expect) {
	case EX_VALUE: /* after ':', or after ',' in [] */
		tail = object ? "\"\":" : "0,";
		break;
	case EX_KEY: /* after ',' in {} */
		tail = "\"\":0,";
		break;
	case EX_COLON:
		tail = "\"\"";
		break;
	case EX_COMMA_OR_CLOSE:
		tail = object ? "\"\":0" : "0";
		break;
	default: /* right after '[' or '{' */
		tail = "";
		break;
	}
	len = strlen(tail);
	if (n + len > sizeof(path)) {
		rc = tok_parse(v, path, n);
		if (rc)
			return rc;
		n = 0;
	}
	memcpy(path + n, tail, len);
	rc = tok_parse(v, path, n + len);
	v->tok_fed = 0;
	return rc;
}

/* Hands the skeleton gathered so far to json-c. */
static int skel_flush(struct dsfs_validator *v)
{
	size_t n = v->skel_len;
	int rc;

	if (n == 0)
		return 0;
	v->skel_len = 0;
	rc = tok_parse(v, v->skel, n);
	if (rc || v->tok_done)
		return rc;
	if (v->tok_fed >= SKELETON_WINDOW && v->js.depth > 0)
		return tok_reprime(v);
	return 0;
}

static int emit(struct dsfs_validator *v, const char *s, size_t n)
{
	int rc;

	if (v->skel_len + n > sizeof(v->skel)) {
		rc = skel_flush(v);
		if (rc)
			return rc;
	}
	memcpy(v->skel + v->skel_len, s, n);
	v->skel_len += n;
	return 0;
}

/* At the end, a top-level scalar is still pending in json-c (it cannot know
 * that "0" or "true" will not go on): white space tells it the value ended,
 * as a NUL would. */
static int tok_finish(struct dsfs_validator *v)
{
	int rc;

	rc = skel_flush(v);
	if (rc || v->tok_done)
		return rc;
	rc = emit(v, " ", 1);
	if (rc)
		return rc;
	rc = skel_flush(v);
	if (rc)
		return rc;
	if (!v->tok_done)
		return tok_fail(v, "incomplete");
	return 0;
}

/*
 * The recogniser.  Each function takes one byte at offset v->off and
 * returns 0 or, having set the reason, -EINVAL.
 */

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool top_is_object(const struct json_scan *s)
{
	return level_is_object(s, s->depth - 1);
}

static void after_value(struct json_scan *s)
{
	s->lex = LX_NONE;
	s->expect = s->depth ? EX_COMMA_OR_CLOSE : EX_END;
}

/* A scalar has ended: emit its skeleton, then move on. */
static int value_end(struct dsfs_validator *v, const char *skel, size_t n)
{
	int rc = emit(v, skel, n);

	after_value(&v->js);
	return rc;
}

static int open_container(struct dsfs_validator *v, bool object)
{
	struct json_scan *s = &v->js;
	unsigned int i = s->depth;
	int rc;

	if (i >= DSFS_JSON_MAX_DEPTH)
		return validator_fail(
			v, "nesting deeper than %d levels at byte %llu",
			DSFS_JSON_MAX_DEPTH, (unsigned long long)v->off);
	rc = emit(v, object ? "{" : "[", 1);
	if (object)
		s->is_object[i / 8] |= 1u << (i % 8);
	else
		s->is_object[i / 8] &= (uint8_t) ~(1u << (i % 8));
	s->depth++;
	s->expect = object ? EX_KEY_OR_CLOSE : EX_VALUE_OR_CLOSE;
	return rc;
}

static int close_container(struct dsfs_validator *v)
{
	struct json_scan *s = &v->js;
	int rc = emit(v, top_is_object(s) ? "}" : "]", 1);

	s->depth--;
	after_value(s);
	return rc;
}

static void begin(struct json_scan *s, enum json_lex lex, int sub,
		  const char *type)
{
	if (s->depth == 0)
		s->type = type;
	s->lex = lex;
	s->sub = (uint8_t)sub;
}

static int value_start(struct dsfs_validator *v, uint8_t c)
{
	struct json_scan *s = &v->js;

	switch (c) {
	case '{':
	case '[':
		begin(s, LX_NONE, 0, c == '{' ? "object" : "array");
		return open_container(v, c == '{');
	case '"':
		begin(s, LX_STRING, ST_CHARS, "string");
		s->key = false;
		return 0;
	case '-':
		begin(s, LX_NUMBER, NU_MINUS, "number");
		return 0;
	case '0':
		begin(s, LX_NUMBER, NU_ZERO, "number");
		return 0;
	case 't':
	case 'f':
	case 'n':
		begin(s, LX_LITERAL, 0, c == 'n' ? "null" : "boolean");
		s->lit = c == 't' ? "true" : c == 'f' ? "false" : "null";
		s->lit_pos = 1;
		return 0;
	default:
		if (c < '1' || c > '9')
			return unexpected(v, c, "");
		begin(s, LX_NUMBER, NU_INT, "number");
		return 0;
	}
}

/* A byte between tokens. */
static int structure_byte(struct dsfs_validator *v, uint8_t c)
{
	struct json_scan *s = &v->js;
	int rc;

	if (is_ws(c))
		return 0;
	switch (s->expect) {
	case EX_VALUE_OR_CLOSE:
		if (c == ']')
			return close_container(v);
		return value_start(v, c);
	case EX_VALUE:
		return value_start(v, c);
	case EX_KEY_OR_CLOSE:
		if (c == '}')
			return close_container(v);
		/* fall through */
	case EX_KEY:
		if (c != '"')
			return unexpected(v, c, " where a key should be");
		s->lex = LX_STRING;
		s->sub = ST_CHARS;
		s->key = true;
		return 0;
	case EX_COLON:
		if (c != ':')
			return unexpected(v, c, " where ':' should be");
		rc = emit(v, ":", 1);
		s->expect = EX_VALUE;
		return rc;
	case EX_COMMA_OR_CLOSE:
		if (c == ',') {
			rc = emit(v, ",", 1);
			s->expect = top_is_object(s) ? EX_KEY : EX_VALUE;
			return rc;
		}
		if (c == (top_is_object(s) ? '}' : ']'))
			return close_container(v);
		return unexpected(v, c, "");
	case EX_END:
	default:
		return unexpected(v, c, " after the value");
	}
}

static int hex_value(uint8_t c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* One hex digit of \uXXXX.  A JSON string must decode to Unicode text that
 * UTF-8 can hold, so surrogate escapes must pair up: a high one
 * (D800-DBFF) followed at once by a low one (DC00-DFFF).  The check is made
 * on every digit, against the range of values the digits so far can still
 * lead to, so that "\uDC" fails at the 'C'. */
static int hex_byte(struct dsfs_validator *v, uint8_t c)
{
	struct json_scan *s = &v->js;
	int d = hex_value(c);
	unsigned int shift, lo, hi;

	if (d < 0)
		return unexpected(v, c, " in a \\u escape");
	s->ucs = (uint16_t)(s->ucs << 4 | d);
	s->hex_left--;
	shift = 4 * s->hex_left;
	lo = (unsigned int)s->ucs << shift;
	hi = lo | ((1u << shift) - 1);
	if (s->high && (hi < 0xdc00 || lo > 0xdfff))
		return validator_fail(
			v, "high surrogate without a low one at byte %llu",
			(unsigned long long)v->off);
	if (!s->high && lo >= 0xdc00 && hi <= 0xdfff)
		return validator_fail(
			v, "low surrogate without a high one at byte %llu",
			(unsigned long long)v->off);
	if (s->hex_left)
		return 0;
	if (s->high) {
		s->high = false;
		s->sub = ST_CHARS;
	} else if (s->ucs >= 0xd800 && s->ucs <= 0xdbff) {
		s->high = true;
		s->sub = ST_LOW_BACKSLASH;
	} else {
		s->sub = ST_CHARS;
	}
	return 0;
}

/* The first byte of a multi-byte UTF-8 character: by utf8_valid()'s rules
 * (utf8_lead() in names.c), the lead byte fixes the length and, for the
 * edge leads, the range of the second byte, which is what refuses
 * overlongs, surrogates and values over U+10FFFF as early as their second
 * byte. */
static int utf8_lead_byte(struct dsfs_validator *v, uint8_t c)
{
	struct json_scan *s = &v->js;
	int need = utf8_lead(c, &s->utf8_lo, &s->utf8_hi);

	if (need == 0)
		return validator_fail(v, "invalid UTF-8 at byte %llu",
				      (unsigned long long)v->off);
	s->utf8_need = (uint8_t)need;
	return 0;
}

static int string_byte(struct dsfs_validator *v, uint8_t c)
{
	struct json_scan *s = &v->js;
	char b[8];
	int rc;

	if (s->utf8_need) {
		if (c < s->utf8_lo || c > s->utf8_hi)
			return validator_fail(v, "invalid UTF-8 at byte %llu",
					      (unsigned long long)v->off);
		s->utf8_need--;
		s->utf8_lo = 0x80;
		s->utf8_hi = 0xbf;
		return 0;
	}
	switch (s->sub) {
	case ST_CHARS:
		if (c == '"') {
			if (!s->key)
				return value_end(v, "\"\"", 2);
			rc = emit(v, "\"\"", 2);
			s->lex = LX_NONE;
			s->expect = EX_COLON;
			return rc;
		}
		if (c == '\\')
			s->sub = ST_ESCAPE;
		else if (c < 0x20)
			return validator_fail(
				v,
				"control character %s in a string "
				"at byte %llu",
				show(c, b), (unsigned long long)v->off);
		else if (c >= 0x80)
			return utf8_lead_byte(v, c);
		return 0;
	case ST_ESCAPE:
		switch (c) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			s->sub = ST_CHARS;
			return 0;
		case 'u':
			s->sub = ST_HEX;
			s->hex_left = 4;
			s->ucs = 0;
			return 0;
		default:
			return unexpected(v, c, " after '\\'");
		}
	case ST_HEX:
		return hex_byte(v, c);
	case ST_LOW_BACKSLASH:
	case ST_LOW_U:
		if (c != (s->sub == ST_LOW_BACKSLASH ? '\\' : 'u'))
			return validator_fail(
				v,
				"high surrogate without a low one "
				"at byte %llu",
				(unsigned long long)v->off);
		if (s->sub == ST_LOW_BACKSLASH) {
			s->sub = ST_LOW_U;
		} else {
			s->sub = ST_HEX;
			s->hex_left = 4;
			s->ucs = 0;
		}
		return 0;
	}
	return 0;
}

/* Returns 1 if c is not part of the number (which must then be complete,
 * and c is to be read as the next token), 0 if it was taken. */
static int number_byte(struct dsfs_validator *v, uint8_t c)
{
	struct json_scan *s = &v->js;
	bool digit = c >= '0' && c <= '9';
	int rc;

	switch (s->sub) {
	case NU_MINUS:
		if (!digit)
			break;
		s->sub = c == '0' ? NU_ZERO : NU_INT;
		return 0;
	case NU_ZERO:
		if (digit)
			return validator_fail(
				v, "leading zero in a number at byte %llu",
				(unsigned long long)v->off);
		/* fall through */
	case NU_INT:
		if (digit)
			return 0;
		if (c == '.') {
			s->sub = NU_DOT;
			return 0;
		}
		if (c == 'e' || c == 'E') {
			s->sub = NU_E;
			return 0;
		}
		break;
	case NU_DOT:
	case NU_FRAC:
		if (digit) {
			s->sub = NU_FRAC;
			return 0;
		}
		if (s->sub == NU_FRAC && (c == 'e' || c == 'E')) {
			s->sub = NU_E;
			return 0;
		}
		break;
	case NU_E:
		if (c == '+' || c == '-') {
			s->sub = NU_ESIGN;
			return 0;
		}
		/* fall through */
	case NU_ESIGN:
	case NU_EXP:
		if (digit) {
			s->sub = NU_EXP;
			return 0;
		}
		break;
	}
	if (!num_complete(s->sub))
		return unexpected(v, c, " where a digit should be");
	rc = value_end(v, "0", 1);
	return rc ? rc : 1;
}

static int literal_byte(struct dsfs_validator *v, uint8_t c)
{
	struct json_scan *s = &v->js;

	if (c != (uint8_t)s->lit[s->lit_pos])
		return unexpected(v, c, " in a literal");
	s->lit_pos++;
	if (s->lit[s->lit_pos])
		return 0;
	return value_end(v, s->lit, s->lit_pos);
}

static int json_byte(struct dsfs_validator *v, uint8_t c)
{
	int rc;

	switch (v->js.lex) {
	case LX_STRING:
		return string_byte(v, c);
	case LX_LITERAL:
		return literal_byte(v, c);
	case LX_NUMBER:
		rc = number_byte(v, c);
		if (rc <= 0)
			return rc;
		break;
	}
	return structure_byte(v, c);
}

/* Printable ASCII other than '"' and '\' is most of most strings: skip it
 * without the per-byte dispatch. */
static size_t plain_run(const uint8_t *p, size_t len)
{
	size_t n = 0;

	while (n < len && p[n] >= 0x20 && p[n] < 0x80 && p[n] != '"' &&
	       p[n] != '\\')
		n++;
	return n;
}

int validate_json_feed(struct dsfs_validator *v, const uint8_t *p, size_t len)
{
	struct json_scan *s = &v->js;
	size_t i = 0, n;
	int rc;

	while (i < len) {
		if (s->lex == LX_STRING && s->sub == ST_CHARS &&
		    !s->utf8_need) {
			n = plain_run(p + i, len - i);
			i += n;
			v->off += n;
			if (i == len)
				break;
		}
		rc = json_byte(v, p[i]);
		if (rc)
			return rc;
		i++;
		v->off++;
	}
	return skel_flush(v);
}

int validate_json_finish(struct dsfs_validator *v, const char **type)
{
	struct json_scan *s = &v->js;
	int rc;

	/* Only the end of the data can end a top-level number. */
	if (s->lex == LX_NUMBER) {
		if (!num_complete(s->sub))
			return validator_fail(
				v, "incomplete number at end of file");
		rc = value_end(v, "0", 1);
		if (rc)
			return rc;
	}
	if (s->lex == LX_STRING)
		return validator_fail(v, "unterminated string at end of file");
	if (s->lex == LX_LITERAL)
		return validator_fail(v, "incomplete literal at end of file");
	if (s->expect == EX_VALUE && s->depth == 0) {
		*type = "empty"; /* nothing, or only white space */
		return 0;
	}
	if (s->expect != EX_END)
		return validator_fail(
			v, "incomplete JSON at end of file (%u open)",
			s->depth);
	rc = tok_finish(v);
	if (rc)
		return rc;
	*type = s->type;
	return 0;
}

int validate_json_init(struct dsfs_validator *v)
{
	/* json-c counts a scalar as a level of its own: with depth d it
	 * takes d nested empty arrays but only d - 1 around a number.  One
	 * more than ours keeps our limit the one that applies, with our
	 * reason. */
	v->tok = json_tokener_new_ex(DSFS_JSON_MAX_DEPTH + 1);
	if (!v->tok)
		return -ENOMEM;
	json_tokener_set_flags(v->tok, JSON_TOKENER_STRICT |
					       JSON_TOKENER_VALIDATE_UTF8);
	return 0;
}

void validate_json_free(struct dsfs_validator *v)
{
	if (v->tok)
		json_tokener_free(v->tok);
}
