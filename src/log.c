/*
 * log.c - where dsfs's log lines go: stderr in the foreground, syslog once
 * the daemon has detached.  The destination is chosen once at start-up and
 * kept in log_state, the only state this file has.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static struct {
	bool to_stderr;
	bool debug;
	const char *ident;
} log_state = {true, false, "dsfs"};

void log_init(const char *ident, bool to_stderr, bool debug)
{
	log_state.ident = ident;
	log_state.to_stderr = to_stderr;
	log_state.debug = debug;
	if (!to_stderr)
		openlog(ident, LOG_PID, LOG_DAEMON);
}

void log_msg(int priority, const char *fmt, ...)
{
	va_list ap;
	char line[1024];

	if (priority == LOG_DEBUG && !log_state.debug)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_state.to_stderr)
		fprintf(stderr, "%s: %s\n", log_state.ident, line);
	else
		syslog(priority, "%s", line);
}
