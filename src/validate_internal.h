/*
 * validate_internal.h - the inside of a validator, shared by the three files
 * that make one and by nothing else: validate.c (the API: the life of a
 * validator, its verdict and its reason), validate_json.c (strict JSON) and
 * validate_image.c (image signatures).
 *
 * One allocation holds the state of either kind of content, so that a
 * validator costs one calloc() whatever it checks; each kind's fields are
 * read and written by its own file only.
 */
#ifndef DSFS_VALIDATE_INTERNAL_H
#define DSFS_VALIDATE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "validate.h"

/* validate_json.c's recogniser: where it is in the grammar.  The enums
 * its fields hold are that file's. */
struct json_scan {
	uint8_t expect;	   /* enum json_expect */
	uint8_t lex;	   /* enum json_lex */
	uint8_t sub;	   /* enum json_str or enum json_num */
	bool key;	   /* the string being read is an object key */
	bool high;	   /* a \uD800-\uDBFF awaits its low half */
	uint8_t utf8_need; /* UTF-8 continuation bytes still due */
	uint8_t utf8_lo;   /* the range allowed for the next one */
	uint8_t utf8_hi;
	uint8_t hex_left;   /* hex digits still due in \uXXXX */
	uint16_t ucs;	    /* the \uXXXX digits so far */
	uint8_t lit_pos;    /* bytes of lit read so far */
	const char *lit;    /* the literal being read: "true"... */
	const char *type;   /* of the top-level value, once begun */
	unsigned int depth; /* containers open */
	uint8_t is_object[(DSFS_JSON_MAX_DEPTH + 7) / 8]; /* bit per level */
};

/* The skeleton is passed to json-c in chunks of at most this many bytes
 * (validate_json.c). */
#define SKELETON_CHUNK 256

/* Bytes of an image kept: enough for every signature in image_sigs
 * (validate_image.c). */
#define IMAGE_HEAD 32

#define REASON_MAX 128

struct dsfs_validator {
	enum dsfs_content kind;
	bool failed;   /* every later call fails too */
	bool finished; /* validator_finish() succeeded: type */
	const char *type;
	uint64_t off; /* offset of the next byte fed */
	char reason[REASON_MAX];

	/* DSFS_CONTENT_JSON */
	struct json_scan js;
	struct json_tokener *tok; /* NULL once it returned the value */
	bool tok_done;
	size_t tok_fed; /* bytes since the last reprime */
	size_t skel_len;
	char skel[SKELETON_CHUNK];

	/* DSFS_CONTENT_IMAGE */
	uint8_t head[IMAGE_HEAD];
	size_t head_len;
};

/* validate.c: v fails, for the reason fmt says: sets the reason, marks v
 * failed (so that every later call fails too) and returns -EINVAL. */
int validator_fail(struct dsfs_validator *v, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * validate_json.c: a JSON value, as validator_new(), validator_feed(),
 * validator_finish() and validator_free() describe them.  init returns 0
 * or -ENOMEM; feed and finish return 0 or, having set the reason, -EINVAL;
 * finish sets *type.
 */
int validate_json_init(struct dsfs_validator *v);
void validate_json_free(struct dsfs_validator *v);
int validate_json_feed(struct dsfs_validator *v, const uint8_t *p, size_t len);
int validate_json_finish(struct dsfs_validator *v, const char **type);

/* validate_image.c: an image, likewise (it needs no init or free). */
int validate_image_feed(struct dsfs_validator *v, const uint8_t *p, size_t len);
int validate_image_finish(struct dsfs_validator *v, const char **type);

#endif
