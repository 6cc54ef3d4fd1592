/*
 * progress.h - one line of progress on a terminal for dsfsctl's long
 * work: mkfactory, load and check of a big store (progress.c).
 *
 * A command keeps one struct progress on its stack, starts it with the
 * mode the command line chose, reports how far it is as it goes, and ends
 * it; a NULL struct progress, or one whose mode showed nothing, costs one
 * branch per report.  Nothing is shown unless standard error is a
 * terminal (PROGRESS_AUTO) or --progress asked for it (PROGRESS_ON).
 */
#ifndef DSFS_PROGRESS_H
#define DSFS_PROGRESS_H

#include <stdint.h>
#include <stdio.h>

/* OFF is 0, so that a zeroed struct (the daemon's) never shows any. */
enum progress_mode {
	PROGRESS_OFF = 0,
	PROGRESS_AUTO, /* only when standard error is a terminal */
	PROGRESS_ON,   /* even when it is not (--progress) */
};

struct progress {
	FILE *out;     /* standard error, or NULL: nothing is shown */
	char what[96]; /* "load doc.json", "check runtime.db", ... */
	uint64_t total_entries, total_bytes; /* 0: not known */
	int64_t next_ms; /* no update before this (CLOCK_MONOTONIC) */
	size_t shown;	 /* characters of the line on the terminal */
};

/* Start showing the progress of what; totals 0 when unknown. */
void progress_begin(struct progress *p, enum progress_mode mode,
		    const char *what, uint64_t total_entries,
		    uint64_t total_bytes);
/* entries and bytes done so far; shown at most a few times a second. */
void progress_update(struct progress *p, uint64_t entries, uint64_t bytes);
/* Clear the line: the terminal is as it was before progress_begin(). */
void progress_end(struct progress *p);

/* 1536 -> "1.5K", as df -h: powers of 1024, one decimal below 10. */
void human_size(uint64_t n, char *buf, size_t size);

#endif
