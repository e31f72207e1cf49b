/*
 * Logging to stderr, one line per message, safe to call from any thread.
 * Levels follow syslog numbering so the journal prefix (<3>...) is direct.
 */
#ifndef TASKD_LOG_H
#define TASKD_LOG_H

#include <stdbool.h>

enum log_level {
	LOG_LEVEL_ERROR = 3,
	LOG_LEVEL_WARN = 4,
	LOG_LEVEL_INFO = 6,
	LOG_LEVEL_DEBUG = 7,
};

/* Parse "error" | "warn" | "info" | "debug"; -1 if unknown. */
int log_level_parse(const char *name);
const char *log_level_name(int level);

/* Set the threshold. Prefix lines with <N> when journal is true, else a timestamp. */
void log_init(int level, bool journal);
void log_setlevel(int level);
int log_getlevel(void);

void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* not fatal */
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));  /* appends strerror(errno) */
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));  /* + strerror */
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
