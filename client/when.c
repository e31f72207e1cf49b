/*
 * Times for `submit --in DURATION` and `--at TIME` (the daemon gets unix
 * seconds in "run_at"). Pure functions: the unit test links this file.
 *
 *   DURATION: a decimal number with a unit s, m, h or d ("90s", "10m",
 *             "1.5h"); a bare number is seconds. Must be > 0.
 *   TIME:     YYYY-MM-DDTHH:MM[:SS[.frac]] (a space may replace the T),
 *             local time unless followed by Z or +HH:MM / -HH:MM (RFC 3339).
 *             A local time skipped by a daylight saving change does not
 *             exist (WHEN_NO_SUCH_LOCAL_TIME); one that happens twice is
 *             either of the two.
 */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "when.h"

int
when_parse_duration(const char *s, double *secs)
{
	const char *p;
	char *end;
	double v, mult;
	size_t ndig = 0;

	if (s == NULL)
		return -1;
	/* Decimal only: digits with an optional fraction (strtod alone takes 0x10, 1e3, inf). */
	for (p = s; isdigit((unsigned char)*p); p++)
		ndig++;
	if (*p == '.') {
		if (!isdigit((unsigned char)p[1]))
			return -1;
		for (p++; isdigit((unsigned char)*p); p++)
			ndig++;
	}
	if (ndig == 0)
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (end != p || errno != 0 || !isfinite(v))
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		mult = 1;
		break;
	case 'm':
		mult = 60;
		break;
	case 'h':
		mult = 3600;
		break;
	case 'd':
		mult = 86400;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	v *= mult;
	if (!(v > 0) || v > 1e10)
		return -1;
	*secs = v;
	return 0;
}

/* n digits as a number, or -1. */
static int
digits(const char **p, int n)
{
	int v = 0, i;

	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return -1;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += n;
	return v;
}

static int
expect(const char **p, char c)
{
	if (**p != c)
		return -1;
	(*p)++;
	return 0;
}

static int
days_in_month(int y, int m)
{
	static const int days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return days[m - 1];
}

/* The offset part: Z, +HH:MM, -HH:MM (seconds east of UTC), or none. */
static int
parse_offset(const char *p, int *has, long *off)
{
	int sign, hh, mm;

	*has = 0;
	*off = 0;
	if (*p == '\0')
		return 0;
	*has = 1;
	if ((*p == 'Z' || *p == 'z') && p[1] == '\0')
		return 0;
	if (*p != '+' && *p != '-')
		return -1;
	sign = *p++ == '-' ? -1 : 1;
	if ((hh = digits(&p, 2)) < 0 || expect(&p, ':') == -1 || (mm = digits(&p, 2)) < 0 ||
	    *p != '\0' || hh > 23 || mm > 59)
		return -1;
	*off = sign * (hh * 3600L + mm * 60L);
	return 0;
}

int
when_parse_time(const char *s, double *when)
{
	const char *p = s;
	struct tm tm = { 0 };
	double frac = 0;
	int y, mo, d, h, mi, sec = 0, has_off;
	long off;
	time_t t;

	if (s == NULL || (y = digits(&p, 4)) < 0 || expect(&p, '-') == -1 ||
	    (mo = digits(&p, 2)) < 0 || expect(&p, '-') == -1 || (d = digits(&p, 2)) < 0 ||
	    (*p != 'T' && *p != 't' && *p != ' '))
		return -1;
	p++;
	if ((h = digits(&p, 2)) < 0 || expect(&p, ':') == -1 || (mi = digits(&p, 2)) < 0)
		return -1;
	if (*p == ':') {
		p++;
		if ((sec = digits(&p, 2)) < 0)
			return -1;
		if (*p == '.') {
			const char *f = ++p;
			double scale = 0.1;

			while (isdigit((unsigned char)*p)) {
				frac += (*p - '0') * scale;
				scale /= 10;
				p++;
			}
			if (p == f)
				return -1;
		}
	}
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
	    mi > 59 || sec > 59 || parse_offset(p, &has_off, &off) == -1)
		return -1;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if (has_off) {
		t = timegm(&tm);
		if (t == (time_t)-1)
			return -1;
		*when = (double)(t - off) + frac;
		return 0;
	}
	tm.tm_isdst = -1;
	t = mktime(&tm);
	if (t == (time_t)-1)
		return -1;
	/* mktime moves a time in a daylight saving gap (02:30 → 03:30): refuse it. */
	if (tm.tm_year != y - 1900 || tm.tm_mon != mo - 1 || tm.tm_mday != d ||
	    tm.tm_hour != h || tm.tm_min != mi || tm.tm_sec != sec)
		return WHEN_NO_SUCH_LOCAL_TIME;
	*when = (double)t + frac;
	return 0;
}
