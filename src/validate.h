/*
 * validate.h - content rules for values: strict JSON for kv/ and devices/,
 * recognised image types for images/, and the content token of an image.
 *
 * Validation is streamed: a writer's bytes are fed as they arrive, so a
 * write(2) whose data can no longer become valid content fails at once, and
 * the end of the content is checked when the file is closed.
 *
 * validate.c is the validator's API, validate_json.c judges JSON (json-c
 * appears there only) and validate_image.c images; validate_internal.h is
 * what the three share.  sha256.c and names.c, below, are the other rules
 * on content and names.
 */
#ifndef DSFS_VALIDATE_H
#define DSFS_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dsfs_content {
	DSFS_CONTENT_JSON,    /* RFC 8259 strict, valid UTF-8, any top-level */
	DSFS_CONTENT_IMAGE,   /* PNG, JPEG, GIF, BMP, WebP by their signature */
	DSFS_CONTENT_SCRATCH, /* an editor's scratch file: any bytes */
};

/* Nesting deeper than this is refused (RFC 8259 section 9 allows a limit). */
#define DSFS_JSON_MAX_DEPTH 512

/* validate.c */

struct dsfs_validator;

/* A new validator for one value; NULL when out of memory.  The caller owns
 * it and frees it with validator_free(). */
struct dsfs_validator *validator_new(enum dsfs_content kind);
void validator_free(struct dsfs_validator *v);

/* Feed the next len bytes of the value.  Returns 0 while the bytes fed so
 * far can still begin valid content, -EINVAL as soon as they cannot (and
 * every later call returns -EINVAL too). */
int validator_feed(struct dsfs_validator *v, const void *buf, size_t len);

/* The value is complete.  Returns 0 if everything fed is valid content and
 * sets *type to a static string: for JSON "object", "array", "string",
 * "number", "boolean" or "null"; for images the MIME type ("image/png",
 * "image/jpeg", "image/gif", "image/bmp", "image/webp"); for an empty value
 * (nothing fed, or only white space for JSON) "empty".  -EINVAL otherwise. */
int validator_finish(struct dsfs_validator *v, const char **type);

/* Why the last feed or finish failed, for the log ("unexpected '}' at byte
 * 12", "incomplete JSON at end of file", "not a PNG, JPEG, GIF, BMP or WebP
 * image"...).  Static or owned by v; valid until the next call on v. */
const char *validator_reason(const struct dsfs_validator *v);

/* Validate a whole value at once; same results as new, feed, finish.
 * *reason (if not NULL) is set to a static string on failure (a per-thread
 * buffer, valid until the thread's next call). */
int validate_buffer(enum dsfs_content kind, const void *buf, size_t len,
		    const char **type, const char **reason);

/* validate_image.c: the MIME type of the image whose first len bytes are buf, or NULL. */
const char *image_type(const void *buf, size_t len);

/* sha256.c: the content token of an image, the lower-case hex SHA-256 of its
 * bytes (64 characters and a NUL). */
struct dsfs_sha256 {
	uint32_t h[8];
	uint64_t total;
	uint8_t block[64];
	size_t fill;
	bool accel; /* the CPU's SHA instructions (x86 SHA-NI) are used */
};
void sha256_init(struct dsfs_sha256 *s);
void sha256_update(struct dsfs_sha256 *s, const void *buf, size_t len);
/* Finishes s (sha256_init() it again before reuse) and writes the digest. */
void sha256_hex(struct dsfs_sha256 *s, char out[65]);

/* names.c: a name (one path component) is 1-255 bytes of valid UTF-8
 * without '/' or NUL, and not "." or "..".  Returns 0, -ENAMETOOLONG or
 * -EINVAL. */
int name_check(const char *name);
bool utf8_valid(const void *buf, size_t len);
/* The lead byte c of a multi-byte UTF-8 character: the number of
 * continuation bytes that follow (1-3), with [*lo, *hi] the range the first
 * of them must be in (the others are 80-BF); 0 if c never leads.  The
 * rules of utf8_valid(), for a decoder that takes a byte at a time. */
int utf8_lead(uint8_t c, uint8_t *lo, uint8_t *hi);

#endif
