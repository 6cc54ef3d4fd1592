/*
 * last_error.c - the reasons of refused writes, by entry, for
 * user.dsfs.error (last_error.h says what is kept and for how long).
 *
 * A short list, newest first: at most LAST_ERROR_MAX reasons, so a scan is
 * cheap, and a commit with nothing remembered (the usual case) does not
 * even take the lock's time to look.  Expired reasons are dropped as the
 * list is walked.
 */
#include "last_error.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"

struct last_error {
	struct last_error *next;
	time_t when; /* CLOCK_MONOTONIC seconds */
	char *key;   /* owned */
	char text[LAST_ERROR_LEN];
};

static time_t now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

int last_errors_init(struct last_errors *e)
{
	memset(e, 0, sizeof(*e));
	return pthread_mutex_init(&e->lock, NULL) ? -ENOMEM : 0;
}

static void drop(struct last_errors *e, struct last_error **link)
{
	struct last_error *gone = *link;

	*link = gone->next;
	free(gone->key);
	free(gone);
	__atomic_sub_fetch(&e->count, 1, __ATOMIC_RELAXED);
}

void last_errors_destroy(struct last_errors *e)
{
	while (e->newest)
		drop(e, &e->newest);
	pthread_mutex_destroy(&e->lock);
}

/* The link that points at key's reason, or at the list's end; expired
 * reasons met on the way (and, with trim, the oldest past the limit) are
 * dropped.  Called with e->lock held. */
static struct last_error **find(struct last_errors *e, const char *key,
				bool trim)
{
	struct last_error **link = &e->newest;
	time_t now = now_s();
	size_t seen = 0;

	while (*link) {
		if (now - (*link)->when > LAST_ERROR_TTL ||
		    (trim && seen >= LAST_ERROR_MAX - 1)) {
			drop(e, link);
			continue;
		}
		if (strcmp((*link)->key, key) == 0)
			return link;
		seen++;
		link = &(*link)->next;
	}
	return link;
}

void last_error_note(struct last_errors *e, const char *key, int rc,
		     const char *why)
{
	struct last_error **link, *le;

	pthread_mutex_lock(&e->lock);
	link = find(e, key, true);
	if (*link) {
		le = *link;
		*link = le->next; /* moved to the front below */
	} else {
		le = calloc(1, sizeof(*le));
		if (le)
			le->key = strdup(key);
		if (!le || !le->key) {
			/* Out of memory: the reason is still in the log. */
			free(le);
			goto out;
		}
		__atomic_add_fetch(&e->count, 1, __ATOMIC_RELAXED);
	}
	le->when = now_s();
	snprintf(le->text, sizeof(le->text), "%s: %s", control_errname(-rc),
		 why ? why : strerror(-rc));
	le->next = e->newest;
	e->newest = le;
out:
	pthread_mutex_unlock(&e->lock);
}

void last_error_forget(struct last_errors *e, const char *key)
{
	struct last_error **link;

	if (!__atomic_load_n(&e->count, __ATOMIC_RELAXED))
		return;
	pthread_mutex_lock(&e->lock);
	link = find(e, key, false);
	if (*link)
		drop(e, link);
	pthread_mutex_unlock(&e->lock);
}

int last_error_get(struct last_errors *e, const char *key, char *buf,
		   size_t size)
{
	struct last_error **link;
	int rc = -ENODATA;

	pthread_mutex_lock(&e->lock);
	link = find(e, key, false);
	if (*link) {
		snprintf(buf, size, "%s", (*link)->text);
		rc = 0;
	}
	pthread_mutex_unlock(&e->lock);
	return rc;
}
