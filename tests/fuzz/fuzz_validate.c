/*
 * fuzz_validate.c - libFuzzer target for the strict, streamed JSON
 * validator of validate.c and validate_json.c.  The input is one candidate
 * value.
 *
 * Beyond "no crash, no undefined behaviour, no leak" (the sanitizers), it
 * checks what validate.h and validate_json.c promise:
 *
 *  - the verdict and the type do not depend on how the bytes are split:
 *    validate_buffer(), one byte per feed and pieces of random length
 *    (drawn from a generator seeded by the input, so a crash replays) all
 *    agree, and a refusal happens in the feed that holds the same byte;
 *  - a refused validator stays refused, a finished one refuses more data
 *    and repeats its type;
 *  - json-c, which validate_json.c runs in step on a skeleton of the value,
 *    never disagrees with the recogniser (validate_json.c calls that a
 *    bug);
 *  - a value accepted with a type other than "empty" is one json-c parses
 *    too when given the real bytes, with the flags and depth validate_json.c
 *    uses, and the two agree on the type of the top-level value.  That is
 *    more than validate_json.c promises (its json-c sees only the skeleton)
 *    but what a reader of the store using json-c relies on; json-c is the
 *    laxer parser (validate_json.c lists where), so it should never refuse;
 *  - the type is the one the first byte that is not white space announces,
 *    and white space around an accepted value changes nothing.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json_object.h>
#include <json-c/json_tokener.h>

#include "fuzz.h"
#include "validate.h"

/* What one way of feeding the value ended with. */
struct verdict {
	int rc;
	const char *type; /* static, from validator_finish() */
	size_t fail_lo;	  /* a refusing feed held bytes [fail_lo, fail_hi) */
	size_t fail_hi;	  /* fail_lo == fail_hi: refused at finish, or not */
	char reason[160];
};

/* xorshift64*, seeded from the input so that every run of an input is
 * the same run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

static uint64_t seed_of(const uint8_t *d, size_t n)
{
	uint64_t h = 14695981039346656037ull; /* FNV-1a */
	size_t i;

	for (i = 0; i < n; i++)
		h = (h ^ d[i]) * 1099511628211ull;
	return h ? h : 1;
}

/* Feeds d in pieces of 1..maxchunk bytes (exactly maxchunk if seed is 0)
 * and finishes, checking the validator's promises about a refused or
 * finished validator on the way. */
static void run(const uint8_t *d, size_t n, uint64_t seed, size_t maxchunk,
		struct verdict *out)
{
	struct dsfs_validator *v = validator_new(DSFS_CONTENT_JSON);
	const char *type = NULL, *again = NULL;
	size_t pos = 0;
	int rc = 0;

	CHECK(v, "validator_new failed");
	memset(out, 0, sizeof(*out));
	while (pos < n) {
		size_t len = seed ? 1 + rnd(&seed) % maxchunk : maxchunk;

		if (len > n - pos)
			len = n - pos;
		rc = validator_feed(v, d + pos, len);
		CHECK(rc == 0 || rc == -EINVAL, "feed returned %d", rc);
		if (rc) {
			out->fail_lo = pos;
			out->fail_hi = pos + len;
			break;
		}
		pos += len;
	}
	if (rc == 0)
		rc = validator_finish(v, &type);
	CHECK(rc == 0 || rc == -EINVAL, "finish returned %d", rc);
	out->rc = rc;
	if (rc) {
		snprintf(out->reason, sizeof(out->reason), "%s",
			 validator_reason(v));
		/* Once refused, always refused. */
		CHECK(validator_feed(v, " ", 1) == -EINVAL,
		      "fed after refusal");
		CHECK(validator_finish(v, &again) == -EINVAL,
		      "finished after refusal");
	} else {
		out->type = type;
		CHECK(validator_finish(v, &again) == 0 && again == type,
		      "second finish changed the answer");
		CHECK(validator_feed(v, " ", 1) == -EINVAL,
		      "data accepted after finish");
	}
	validator_free(v);
}

static bool is_ws(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The type the first significant byte announces; "empty" if none. */
static const char *announced_type(const uint8_t *d, size_t n)
{
	size_t i = 0;

	while (i < n && is_ws(d[i]))
		i++;
	if (i == n)
		return "empty";
	switch (d[i]) {
	case '{':
		return "object";
	case '[':
		return "array";
	case '"':
		return "string";
	case 't':
	case 'f':
		return "boolean";
	case 'n':
		return "null";
	default:
		return "number";
	}
}

static const char *json_c_type(struct json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_null:
		return "null";
	case json_type_boolean:
		return "boolean";
	case json_type_double:
	case json_type_int:
		return "number";
	case json_type_object:
		return "object";
	case json_type_array:
		return "array";
	case json_type_string:
		return "string";
	}
	return "?";
}

/* json-c on the real bytes, as validate_json.c configures it.  White space
 * after the value tells json-c that a top-level scalar has ended, as
 * validate_json.c does in tok_finish(). */
static void check_json_c(const uint8_t *d, size_t n, const char *type)
{
	struct json_tokener *tok;
	struct json_object *o;
	enum json_tokener_error err;

	tok = json_tokener_new_ex(DSFS_JSON_MAX_DEPTH + 1);
	CHECK(tok, "json_tokener_new_ex failed");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT |
					    JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, (const char *)d, (int)n);
	err = json_tokener_get_error(tok);
	if (err == json_tokener_continue) {
		o = json_tokener_parse_ex(tok, " ", 1);
		err = json_tokener_get_error(tok);
	}
	CHECK(err == json_tokener_success,
	      "accepted as %s, but json-c says: %s (%zu bytes)", type,
	      json_tokener_error_desc(err), n);
	CHECK(strcmp(json_c_type(o), type) == 0, "type %s, json-c says %s",
	      type, json_c_type(o));
	json_object_put(o);
	json_tokener_free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);

int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)
{
	struct verdict whole, bytes, pieces;
	const char *type = NULL, *reason = NULL;
	uint8_t *padded;
	int rc;

	rc = validate_buffer(DSFS_CONTENT_JSON, d, n, &type, &reason);
	CHECK(rc == 0 || rc == -EINVAL, "validate_buffer returned %d", rc);
	run(d, n, 0, n ? n : 1, &whole);
	run(d, n, 0, 1, &bytes);
	run(d, n, seed_of(d, n), 64, &pieces);

	CHECK(whole.rc == rc && bytes.rc == rc && pieces.rc == rc,
	      "verdicts differ: buffer %d, whole %d, bytes %d, pieces %d", rc,
	      whole.rc, bytes.rc, pieces.rc);
	CHECK(!strstr(bytes.reason, "json-c disagrees") &&
		      !strstr(pieces.reason, "json-c disagrees") &&
		      !strstr(whole.reason, "json-c disagrees"),
	      "%s / %s / %s", whole.reason, bytes.reason, pieces.reason);

	if (rc) {
		/* The byte refused one at a time is refused, at the same
		 * offset, whatever piece it arrives in. */
		CHECK(strcmp(bytes.reason, pieces.reason) == 0 &&
			      strcmp(bytes.reason, whole.reason) == 0 &&
			      strcmp(bytes.reason, reason) == 0,
		      "reasons differ: '%s' '%s' '%s' '%s'", reason,
		      whole.reason, bytes.reason, pieces.reason);
		if (bytes.fail_hi == bytes.fail_lo) {
			CHECK(pieces.fail_hi == pieces.fail_lo &&
				      whole.fail_hi == whole.fail_lo,
			      "refused at finish one byte at a time only");
		} else {
			CHECK(pieces.fail_lo <= bytes.fail_lo &&
				      bytes.fail_lo < pieces.fail_hi,
			      "refused byte %zu, piece [%zu, %zu)",
			      bytes.fail_lo, pieces.fail_lo, pieces.fail_hi);
		}
		return 0;
	}

	CHECK(whole.type == type && bytes.type == type && pieces.type == type,
	      "types differ: %s %s %s %s", type, whole.type, bytes.type,
	      pieces.type);
	CHECK(strcmp(type, announced_type(d, n)) == 0, "type %s, but %s", type,
	      announced_type(d, n));
	if (strcmp(type, "empty") != 0)
		check_json_c(d, n, type);

	/* White space around the value changes nothing. */
	padded = malloc(n + 4);
	CHECK(padded, "out of memory");
	memcpy(padded, " \n", 2);
	memcpy(padded + 2, d, n);
	memcpy(padded + 2 + n, "\t\r", 2);
	rc = validate_buffer(DSFS_CONTENT_JSON, padded, n + 4, &whole.type,
			     &reason);
	CHECK(rc == 0 && whole.type == type, "padded value refused: %s",
	      rc ? reason : whole.type);
	free(padded);
	return 0;
}
