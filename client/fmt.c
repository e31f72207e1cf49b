/*
 * Human formatting for taskctl: durations, sizes, times, signals,
 * command lines, and terminal-safe text. Functions taking a char * write
 * at most FMT_BUFSZ bytes there and return it.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taskctl.h"

/* Precise: "0.123s", "59.999s", then "1m02s", "1h02m03s", "2d03h04m". */
const char *
fmt_duration(char *buf, double secs)
{
	if (!isfinite(secs) || secs < 0)
		snprintf(buf, FMT_BUFSZ, "-");
	else if (secs < 60)
		snprintf(buf, FMT_BUFSZ, "%.3fs", secs);
	else
		fmt_age(buf, secs);
	return buf;
}

/* Coarse: "12s", "5m02s", "1h02m03s", "2d03h04m". */
const char *
fmt_age(char *buf, double secs)
{
	long long s;

	if (!isfinite(secs) || secs < 0) {
		snprintf(buf, FMT_BUFSZ, "-");
		return buf;
	}
	s = (long long)secs;
	if (s < 60)
		snprintf(buf, FMT_BUFSZ, "%llds", s);
	else if (s < 3600)
		snprintf(buf, FMT_BUFSZ, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, FMT_BUFSZ, "%lldh%02lldm%02llds", s / 3600, s / 60 % 60, s % 60);
	else
		snprintf(buf, FMT_BUFSZ, "%lldd%02lldh%02lldm", s / 86400, s / 3600 % 24,
		         s / 60 % 60);
	return buf;
}

/* "512B", "12.0K", "3.4M", "1.2G", "2.0T". */
const char *
fmt_size(char *buf, double bytes)
{
	static const char units[] = "KMGTP";
	size_t i = 0;

	if (!isfinite(bytes) || bytes < 0) {
		snprintf(buf, FMT_BUFSZ, "-");
		return buf;
	}
	if (bytes < 1024) {
		snprintf(buf, FMT_BUFSZ, "%.0fB", bytes);
		return buf;
	}
	bytes /= 1024;
	while (bytes >= 1023.95 && i < sizeof units - 2) {
		bytes /= 1024;
		i++;
	}
	snprintf(buf, FMT_BUFSZ, "%.1f%c", bytes, units[i]);
	return buf;
}

/*
 * A time on the wire: unix seconds (with fraction) per doc/protocol.md;
 * RFC 3339 strings are parsed too, should a daemon send them. NAN if none.
 */
double
fmt_unix_time(const json_t *t)
{
	struct tm tm = {0};
	const char *s, *p;
	double frac = 0;
	long off = 0;
	time_t base;

	if (json_is_number(t))
		return json_number_value(t);
	s = json_string_value(t);
	if (s == NULL || (p = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm)) == NULL)
		return NAN;
	if (*p == '.')
		frac = strtod(p, (char **)&p);
	if (*p == '+' || *p == '-') {
		off = (strtol(p + 1, NULL, 10) * 60 +
		       (strlen(p) >= 6 ? strtol(p + 4, NULL, 10) : 0)) *
		      60;
		if (*p == '-')
			off = -off;
	}
	base = timegm(&tm);
	return (double)base - (double)off + frac;
}

/* Local ISO 8601 with milliseconds: "2025-11-27T06:07:08.123+01:00". */
const char *
fmt_time(char *buf, const json_t *t)
{
	double v = fmt_unix_time(t);
	char date[32], zone[8];
	struct tm tm;
	time_t secs;
	int ms;

	if (isnan(v)) {
		snprintf(buf, FMT_BUFSZ, "%s", json_is_string(t) ? json_string_value(t) : "-");
		return buf;
	}
	secs = (time_t)floor(v);
	ms = (int)((v - floor(v)) * 1000);
	if (localtime_r(&secs, &tm) == NULL) {
		snprintf(buf, FMT_BUFSZ, "%.3f", v);
		return buf;
	}
	strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof zone, "%z", &tm);
	snprintf(buf, FMT_BUFSZ, "%s.%03d%.3s:%s", date, ms, zone, zone + 3);
	return buf;
}

/* "SIGKILL", or the number when the signal has no name. */
const char *
fmt_signal(char *buf, long long sig)
{
	const char *name = sig > 0 && sig < 128 ? sigabbrev_np((int)sig) : NULL;

	if (name != NULL)
		snprintf(buf, FMT_BUFSZ, "SIG%s", name);
	else
		snprintf(buf, FMT_BUFSZ, "%lld", sig);
	return buf;
}

static int
needs_quotes(const char *s)
{
	if (*s == '\0')
		return 1;
	for (; *s != '\0'; s++)
		if (strchr(" \t\n'\"\\$`!*?[]{}()<>|&;#~", *s) != NULL)
			return 1;
	return 0;
}

/* Append s, single-quoted when the shell would need it. */
static void
put_word(FILE *fp, const char *s)
{
	if (!needs_quotes(s)) {
		fputs(s, fp);
		return;
	}
	fputc('\'', fp);
	for (; *s != '\0'; s++) {
		if (*s == '\'')
			fputs("'\\''", fp);
		else
			fputc(*s, fp);
	}
	fputc('\'', fp);
}

/* The words of an argv array joined, shell-quoted; malloc'd. */
char *
fmt_argv(const json_t *argv)
{
	char *buf = NULL;
	size_t len = 0, i;
	json_t *w;
	FILE *fp;

	fp = open_memstream(&buf, &len);
	if (fp == NULL)
		return strdup("");
	for (i = 0; i < json_array_size(argv); i++) {
		w = json_array_get(argv, i);
		if (i > 0)
			fputc(' ', fp);
		put_word(fp, json_is_string(w) ? json_string_value(w) : "?");
	}
	fclose(fp);
	return buf;
}

/*
 * Make text from the daemon safe for a terminal, in place: every control
 * character becomes '?' — C0 (tab and newline included: a name must not
 * forge a line), DEL, and C1 (U+0080..U+009F; U+009B is CSI to some
 * terminals). Job names, labels and argv are anyone's strings (another
 * user's, for root), so every line taskctl prints for a human goes through
 * here: table cells, fmt_line, taskctl_warnx. --json output and the job's
 * own output (logs) are written as they are. Returns s.
 */
char *
fmt_safe(char *s)
{
	unsigned char *p = (unsigned char *)s, *o = p;

	for (; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f) {
			*o++ = '?';
		} else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			*o++ = '?';
			p++;
		} else {
			*o++ = *p;
		}
	}
	*o = '\0';
	return s;
}

/* One line of human output: s made safe (fmt_safe, in place), then a newline. */
void
fmt_put_line(FILE *fp, char *s)
{
	fputs(fmt_safe(s), fp);
	fputc('\n', fp);
}

/* Start a line built piece by piece: fprintf to lb->fp, then fmt_line_end. */
void
fmt_line_begin(struct fmt_linebuf *lb)
{
	lb->buf = NULL;
	lb->len = 0;
	if ((lb->fp = open_memstream(&lb->buf, &lb->len)) == NULL)
		taskctl_lost(ENOMEM);
}

/* Print the line built since fmt_line_begin to out (fmt_put_line) and free it. */
void
fmt_line_end(struct fmt_linebuf *lb, FILE *out)
{
	if (fclose(lb->fp) == EOF)
		taskctl_lost(ENOMEM);
	fmt_put_line(out, lb->buf);
	free(lb->buf);
}

/* printf one line of human output (the newline is added), made safe as a whole. */
void
fmt_line(FILE *fp, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = fmt_valloc(fmt, ap);
	va_end(ap);
	if (s == NULL)
		taskctl_lost(ENOMEM);
	fmt_put_line(fp, s);
	free(s);
}

/* vprintf into a malloc'd string; NULL when out of memory. */
char *
fmt_valloc(const char *fmt, va_list ap)
{
	char *s;

	return vasprintf(&s, fmt, ap) == -1 ? NULL : s;
}

/* printf into a malloc'd string; NULL when out of memory. */
char *
fmt_alloc(const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = fmt_valloc(fmt, ap);
	va_end(ap);
	return s;
}

/* A scalar as text ("-" for null, compact JSON for the rest); malloc'd. */
char *
fmt_scalar(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING:
		return strdup(json_string_value(v));
	case JSON_INTEGER:
		return fmt_alloc("%" JSON_INTEGER_FORMAT, json_integer_value(v));
	case JSON_REAL:
		return fmt_alloc("%g", json_real_value(v));
	case JSON_TRUE:
		return strdup("true");
	case JSON_FALSE:
		return strdup("false");
	case JSON_NULL:
		return strdup("-");
	default:
		return json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	}
}

/* Display width of UTF-8 text (one column per code point). */
size_t
fmt_width(const char *s)
{
	size_t n = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

/* Cut s to at most max columns, ending in "..." when cut, on a character boundary. */
void
fmt_truncate(char *s, size_t max)
{
	size_t cols = 0;
	char *p, *cut = NULL;

	if (fmt_width(s) <= max || max < 4)
		return;
	for (p = s; *p != '\0'; p++) {
		if (((unsigned char)*p & 0xc0) == 0x80)
			continue;
		if (cols == max - 3) {
			cut = p;
			break;
		}
		cols++;
	}
	if (cut != NULL)
		strcpy(cut, "...");
}

/* The length of an object's longest key, to align "key: value" lines. */
size_t
fmt_key_width(const json_t *obj)
{
	size_t width = 0;
	void *it;

	for (it = json_object_iter((json_t *)obj); it != NULL;
	     it = json_object_iter_next((json_t *)obj, it))
		if (strlen(json_object_iter_key(it)) > width)
			width = strlen(json_object_iter_key(it));
	return width;
}
