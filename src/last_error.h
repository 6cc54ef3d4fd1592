/*
 * last_error.h - why the last write to an entry was refused, kept for a
 * while so that the user who made it can read it back from the entry's
 * user.dsfs.error attribute without access to the daemon's log.
 *
 * A refusal a shell's builtin echo never hears of (content still
 * incomplete at close) is otherwise lost to a script; and a device user
 * often cannot read syslog.  The memory is bounded in time and space:
 * each reason is kept LAST_ERROR_TTL seconds, at most LAST_ERROR_MAX of
 * them (the oldest is forgotten first), each at most LAST_ERROR_LEN
 * bytes.  A later commit of the entry forgets its reason: the last write
 * was not refused then.
 */
#ifndef DSFS_LAST_ERROR_H
#define DSFS_LAST_ERROR_H

#include <pthread.h>
#include <stddef.h>
#include <time.h>

#define LAST_ERROR_TTL 600 /* seconds: dsfs.8 says so */
#define LAST_ERROR_MAX 256 /* reasons kept at once */
#define LAST_ERROR_LEN 512 /* bytes of one reason, NUL included */

struct last_error;

struct last_errors {
	pthread_mutex_t lock;	   /* taken last: nothing is called under it */
	struct last_error *newest; /* a list, newest first; owned */
	size_t count;
};

int last_errors_init(struct last_errors *e);
void last_errors_destroy(struct last_errors *e);

/* Remember that a write to key (a stored key, "kv/app/x") was refused
 * with rc, because why (NULL: strerror's text). */
void last_error_note(struct last_errors *e, const char *key, int rc,
		     const char *why);
/* Forget key's reason: it has been committed since. */
void last_error_forget(struct last_errors *e, const char *key);
/* key's reason, "ERRNAME: why", into buf; -ENODATA if there is none (or
 * it is older than LAST_ERROR_TTL). */
int last_error_get(struct last_errors *e, const char *key, char *buf,
		   size_t size);

#endif
