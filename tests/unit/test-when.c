/*
 * Unit tests for client/when.c: `submit --in DURATION` and `--at TIME`.
 * Runs with TZ=UTC and TZ=Asia/Kolkata (+05:30) to check local times.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <time.h>

#include "when.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

static void
test_durations(void **state)
{
	static const struct {
		const char *s;
		double want;
	} good[] = {
	    {"30", 30}, {"30s", 30}, {"10m", 600}, {"1.5h", 5400}, {"2d", 172800},
	    {"0.25s", 0.25}, {".5m", 30},
	};
	static const char *const bad[] = {
	    "", " 5", "0", "0s", "-5", "-1m", "5x", "m", "5mm", "5 m", "nan", "inf", "1e20d", "5S",
	    "0x10", "0x1p4s", "1e3", "+5", "5.", ".", "1.2.3", "infinity", "11000000000",
	};
	double v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(good); i++) {
		assert_int_equal(when_parse_duration(good[i].s, &v), 0);
		assert_true(fabs(v - good[i].want) < 1e-9);
	}
	for (i = 0; i < nitems(bad); i++) {
		v = -1;
		assert_int_equal(when_parse_duration(bad[i], &v), -1);
		assert_true(v == -1);
	}
}

static void
test_rfc3339(void **state)
{
	double v;

	(void)state;
	assert_int_equal(when_parse_time("2026-12-01T03:00:00Z", &v), 0);
	assert_true(v == 1796094000);
	assert_int_equal(when_parse_time("2026-12-01T03:00Z", &v), 0);
	assert_true(v == 1796094000);
	assert_int_equal(when_parse_time("2026-12-01T05:30:00+02:30", &v), 0);
	assert_true(v == 1796094000);
	assert_int_equal(when_parse_time("2026-11-30T22:00:00-05:00", &v), 0);
	assert_true(v == 1796094000);
	assert_int_equal(when_parse_time("2026-12-01t03:00:00.25z", &v), 0);
	assert_true(fabs(v - 1796094000.25) < 1e-6);
	assert_int_equal(when_parse_time("2024-02-29 00:00Z", &v), 0);
	assert_true(v == 1709164800);
}

static void
test_local(void **state)
{
	double v;

	(void)state;
	setenv("TZ", "UTC", 1);
	tzset();
	assert_int_equal(when_parse_time("2026-12-01T03:00", &v), 0);
	assert_true(v == 1796094000);
	setenv("TZ", "Asia/Kolkata", 1);
	tzset();
	assert_int_equal(when_parse_time("2026-12-01T08:30", &v), 0);
	assert_true(v == 1796094000);
	unsetenv("TZ");
	tzset();
}

/* Local times around daylight saving changes (Europe/Berlin: 2026-03-29 02:00 → 03:00, 2026-10-25 03:00 → 02:00). */
static void
test_local_dst(void **state)
{
	double v = -1;

	(void)state;
	setenv("TZ", "Europe/Berlin", 1);
	tzset();
	assert_int_equal(when_parse_time("2026-03-29T01:59", &v), 0);
	assert_true(v == 1774745940);
	assert_int_equal(when_parse_time("2026-03-29T03:00", &v), 0);
	assert_true(v == 1774746000);
	/* 02:30 does not exist that day: refused, not moved an hour */
	v = -1;
	assert_int_equal(when_parse_time("2026-03-29T02:30", &v), WHEN_NO_SUCH_LOCAL_TIME);
	assert_true(v == -1);
	assert_int_equal(when_parse_time("2026-03-29T02:00", &v), WHEN_NO_SUCH_LOCAL_TIME);
	/* with an offset it is a time like any other */
	assert_int_equal(when_parse_time("2026-03-29T02:30+01:00", &v), 0);
	assert_true(v == 1774747800);
	/* 02:30 happens twice in October: either is that wall-clock time */
	assert_int_equal(when_parse_time("2026-10-25T02:30", &v), 0);
	assert_true(v == 1792888200 || v == 1792891800);
	assert_int_equal(when_parse_time("2026-10-25T04:00", &v), 0);
	assert_true(v == 1792897200);
	unsetenv("TZ");
	tzset();
}

static void
test_bad_times(void **state)
{
	static const char *const bad[] = {
	    "", "tomorrow", "2026-12-01", "2026-12-01T", "2026-12-01T3:00", "2026-12-1T03:00",
	    "2026-13-01T00:00", "2026-00-01T00:00", "2026-02-29T00:00", "2026-04-31T00:00",
	    "2026-12-01T24:00", "2026-12-01T23:60", "2026-12-01T23:59:60", "2026-12-01T03:00:00.",
	    "2026-12-01T03:00+25:00", "2026-12-01T03:00+02", "2026-12-01T03:00 ", "1969-12-31T00:00Z",
	    "2026-12-01T03:00Zx", "2026/12/01T03:00",
	};
	double v = -1;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++) {
		assert_int_equal(when_parse_time(bad[i], &v), -1);
		assert_true(v == -1);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_local),
	    cmocka_unit_test(test_local_dst),
	    cmocka_unit_test(test_bad_times),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
