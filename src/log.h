/*
 * log.h - one line per failure, naming the path and the reason.
 *
 * With -f (foreground) lines go to stderr; otherwise to syslog (daemon
 * facility, ident "dsfs").  dsfsctl logs to stderr.
 */
#ifndef DSFS_LOG_H
#define DSFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

void log_init(const char *ident, bool to_stderr, bool debug);
void log_msg(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_err(...) log_msg(LOG_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif
