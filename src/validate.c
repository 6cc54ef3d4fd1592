/*
 * validate.c - is a value valid content?  Strict JSON (RFC 8259) for kv/
 * and devices/, a known image signature for images/.  This file is the
 * validator's API: the life of a validator, its verdict and its reason;
 * validate_json.c and validate_image.c judge the bytes of each kind.
 *
 * handle.c feeds a writer's bytes here as they arrive, so that a write(2)
 * whose data can no longer become valid content fails at once with EINVAL,
 * and calls validator_finish() at close.  The verdict never depends on how
 * the bytes were split into writes, and a validator's memory is bounded
 * however long the value is.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "validate_internal.h"

int validator_fail(struct dsfs_validator *v, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
	va_end(ap);
	v->failed = true;
	return -EINVAL;
}

struct dsfs_validator *validator_new(enum dsfs_content kind)
{
	struct dsfs_validator *v;

	v = calloc(1, sizeof(*v));
	if (!v)
		return NULL;
	v->kind = kind;
	strcpy(v->reason, "no error");
	if (kind == DSFS_CONTENT_JSON && validate_json_init(v))
		goto err_free;
	return v;

err_free:
	free(v);
	return NULL;
}

void validator_free(struct dsfs_validator *v)
{
	if (!v)
		return;
	if (v->kind == DSFS_CONTENT_JSON)
		validate_json_free(v);
	free(v);
}

int validator_feed(struct dsfs_validator *v, const void *buf, size_t len)
{
	if (v->failed)
		return -EINVAL;
	if (v->finished)
		return validator_fail(v, "data after the end of the value");
	if (len == 0)
		return 0;
	if (v->kind == DSFS_CONTENT_SCRATCH)
		return 0;
	if (v->kind == DSFS_CONTENT_JSON)
		return validate_json_feed(v, buf, len);
	return validate_image_feed(v, buf, len);
}

int validator_finish(struct dsfs_validator *v, const char **type)
{
	const char *t = NULL;
	int rc;

	if (v->failed)
		return -EINVAL;
	/* A second call gives the same answer. */
	if (!v->finished) {
		if (v->kind == DSFS_CONTENT_SCRATCH)
			rc = 0, t = "scratch";
		else if (v->kind == DSFS_CONTENT_JSON)
			rc = validate_json_finish(v, &t);
		else
			rc = validate_image_finish(v, &t);
		if (rc)
			return rc;
		v->finished = true;
		v->type = t;
	}
	*type = v->type;
	return 0;
}

const char *validator_reason(const struct dsfs_validator *v)
{
	return v->reason;
}

int validate_buffer(enum dsfs_content kind, const void *buf, size_t len,
		    const char **type, const char **reason)
{
	/* The reason outlives the validator; one per thread, like strerror's
	 * buffer, valid until this thread's next call. */
	static _Thread_local char why[REASON_MAX];
	struct dsfs_validator *v;
	const char *t = NULL;
	int rc;

	v = validator_new(kind);
	if (!v) {
		if (reason)
			*reason = "out of memory";
		return -ENOMEM;
	}
	rc = validator_feed(v, buf, len);
	if (rc == 0)
		rc = validator_finish(v, &t);
	if (rc == 0 && type)
		*type = t;
	if (rc && reason) {
		memcpy(why, v->reason, sizeof(why));
		*reason = why;
	}
	validator_free(v);
	return rc;
}
