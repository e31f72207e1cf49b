#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static atomic_int log_threshold = LOG_LEVEL_INFO;
static bool log_journal;

static const struct {
	const char *name;
	int level;
} log_levels[] = {
	{ "error", LOG_LEVEL_ERROR },
	{ "warn", LOG_LEVEL_WARN },
	{ "info", LOG_LEVEL_INFO },
	{ "debug", LOG_LEVEL_DEBUG },
};

int
log_level_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof log_levels / sizeof log_levels[0]; i++)
		if (strcmp(name, log_levels[i].name) == 0)
			return log_levels[i].level;
	return -1;
}

const char *
log_level_name(int level)
{
	size_t i;

	for (i = 0; i < sizeof log_levels / sizeof log_levels[0]; i++)
		if (log_levels[i].level == level)
			return log_levels[i].name;
	return "unknown";
}

void
log_init(int level, bool journal)
{
	log_threshold = level;
	log_journal = journal;
}

void
log_setlevel(int level)
{
	log_threshold = level;
}

int
log_getlevel(void)
{
	return log_threshold;
}

static void
vlog(int level, int errnum, const char *fmt, va_list ap)
{
	char msg[2048], stamp[64];
	struct timespec ts;
	struct tm tm;
	size_t n;

	if (level > log_threshold)
		return;
	vsnprintf(msg, sizeof msg, fmt, ap);
	if (errnum != 0) {
		n = strlen(msg);
		snprintf(msg + n, sizeof msg - n, ": %s", strerror(errnum));
	}
	/* One fprintf per line: stdio locks the stream, so threads do not interleave. */
	if (log_journal) {
		fprintf(stderr, "<%d>%s\n", level, msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld taskd[%s]: %s\n", stamp, ts.tv_nsec / 1000000,
		log_level_name(level), msg);
}

#define LOG_FN(fn, level, witherr)                                                                 \
	void fn(const char *fmt, ...)                                                              \
	{                                                                                          \
		int saved = errno;                                                                 \
		va_list ap;                                                                        \
		va_start(ap, fmt);                                                                 \
		vlog(level, witherr ? saved : 0, fmt, ap);                                         \
		va_end(ap);                                                                        \
		errno = saved;                                                                     \
	}

LOG_FN(log_errorx, LOG_LEVEL_ERROR, 0)
LOG_FN(log_warn, LOG_LEVEL_WARN, 1)
LOG_FN(log_warnx, LOG_LEVEL_WARN, 0)
LOG_FN(log_info, LOG_LEVEL_INFO, 0)
LOG_FN(log_debug, LOG_LEVEL_DEBUG, 0)

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, saved, fmt, ap);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_LEVEL_ERROR, 0, fmt, ap);
	va_end(ap);
	exit(1);
}
