/*
 * progress.c - one line of progress on a terminal (progress.h).
 *
 * The line is written to standard error and rewritten in place with \r:
 * "load doc.json: 1200 of 5000 entries, 1.2M of 4.8M" (a total only where
 * it is known).  On a terminal the first update waits PROGRESS_DELAY_MS,
 * so that work that ends sooner shows nothing (--progress shows it at
 * once), and later ones come at most every
 * PROGRESS_EVERY_MS: a terminal over a slow serial line must not make the
 * work slower.  progress_end() overwrites the line with spaces, so that
 * what the command prints next starts on a clean line.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define PROGRESS_DELAY_MS 200
#define PROGRESS_EVERY_MS 250

void human_size(uint64_t n, char *buf, size_t size)
{
	static const char units[] = "BKMGTPE";
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(units) - 1) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, size, "%llu", (unsigned long long)n);
	else if (v < 10)
		snprintf(buf, size, "%.1f%c", v, units[u]);
	else
		snprintf(buf, size, "%.0f%c", v, units[u]);
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* DSFSCTL_PROGRESS_DELAY (ms) replaces the first update's delay. */
static int64_t first_delay_ms(void)
{
	const char *v = getenv("DSFSCTL_PROGRESS_DELAY");
	char *end;
	long ms;

	if (!v || !*v)
		return PROGRESS_DELAY_MS;
	ms = strtol(v, &end, 10);
	return *end || ms < 0 ? PROGRESS_DELAY_MS : ms;
}

void progress_begin(struct progress *p, enum progress_mode mode,
		    const char *what, uint64_t total_entries,
		    uint64_t total_bytes)
{
	memset(p, 0, sizeof(*p));
	if (mode == PROGRESS_ON ||
	    (mode == PROGRESS_AUTO && isatty(STDERR_FILENO)))
		p->out = stderr;
	snprintf(p->what, sizeof(p->what), "%s", what);
	p->total_entries = total_entries;
	p->total_bytes = total_bytes;
	/* Asked for (--progress), it is shown from the start. */
	p->next_ms = now_ms() + (mode == PROGRESS_ON ? 0 : first_delay_ms());
}

void progress_update(struct progress *p, uint64_t entries, uint64_t bytes)
{
	char line[256], done[16], total[16] = "";
	int64_t now;
	size_t n;

	if (!p || !p->out)
		return;
	now = now_ms();
	if (now < p->next_ms)
		return;
	p->next_ms = now + PROGRESS_EVERY_MS;
	human_size(bytes, done, sizeof(done));
	if (p->total_bytes)
		human_size(p->total_bytes, total, sizeof(total));
	if (p->total_entries)
		snprintf(line, sizeof(line), "%s: %llu of %llu entries, %s%s%s",
			 p->what, (unsigned long long)entries,
			 (unsigned long long)p->total_entries, done,
			 *total ? " of " : "", total);
	else
		snprintf(line, sizeof(line), "%s: %llu entries, %s%s%s",
			 p->what, (unsigned long long)entries, done,
			 *total ? " of " : "", total);
	n = strlen(line);
	/* Spaces over what a longer line left. */
	fprintf(p->out, "\r%s%*s", line, p->shown > n ? (int)(p->shown - n) : 0,
		"");
	fflush(p->out);
	if (n > p->shown)
		p->shown = n;
}

void progress_end(struct progress *p)
{
	if (!p || !p->out || !p->shown)
		return;
	fprintf(p->out, "\r%*s\r", (int)p->shown, "");
	fflush(p->out);
	p->shown = 0;
}
