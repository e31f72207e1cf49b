#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"

/* One decision: budget, held, promised, running, need, probing → verdict. */
struct row {
	uint64_t budget, held, promised;
	size_t running;
	long need;
	bool probing;
	enum admit_verdict want;
	const char *why;
};

static const struct row rows[] = {
	{ 0, 900, 0, 5, 5000, true, ADMIT_OK, "no budget: everything starts" },
	{ 1000, 0, 0, 0, 400, false, ADMIT_OK, "nothing runs" },
	{ 1000, 600, 0, 2, 400, false, ADMIT_OK, "fits exactly" },
	{ 1000, 601, 0, 2, 400, false, ADMIT_MEMORY, "one KiB too many" },
	{ 1000, 0, 0, 0, 5000, false, ADMIT_OK, "larger than the budget, alone" },
	{ 1000, 10, 0, 1, 5000, false, ADMIT_MEMORY, "larger than the budget, not alone" },
	{ 1000, 200, 700, 1, 200, false, ADMIT_MEMORY, "room taken by a promise" },
	{ 1000, 200, 700, 1, 100, false, ADMIT_OK, "room left beside a promise" },
	{ 1000, 1200, 0, 2, 0, false, ADMIT_MEMORY, "over budget already (live RSS)" },
	{ 1000, 1200, 0, 2, 10, false, ADMIT_MEMORY, "over budget, small job" },
	{ 1000, 500, 0, 1, -1, false, ADMIT_OK, "unknown kind while there is room" },
	{ 1000, 1000, 0, 1, -1, false, ADMIT_MEMORY, "unknown kind, budget full" },
	{ 1000, 200, 800, 1, -1, false, ADMIT_MEMORY, "unknown kind, the rest promised" },
	{ 1000, 0, 0, 1, -1, true, ADMIT_PROBE, "its kind's first run is still measuring" },
	{ 1000, 0, 0, 0, -1, true, ADMIT_PROBE, "probe wins even when nothing else runs" },
	{ 1000, 0, 0, 1, 10, true, ADMIT_OK, "known peak: no probe wait" },
	{ UINT64_MAX, UINT64_MAX - 5, 0, 3, 10, false, ADMIT_MEMORY, "no overflow" },
	{ 1000, 900, 200, 1, 0, false, ADMIT_MEMORY, "held + promised above budget" },
};

static void
test_check(void **state)
{
	struct admit a;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		a = (struct admit){ rows[i].budget, rows[i].held, rows[i].promised,
				    rows[i].running };
		if (admit_check(&a, rows[i].need, rows[i].probing) != rows[i].want) {
			print_error("row %zu (%s): got %d\n", i, rows[i].why,
				    admit_check(&a, rows[i].need, rows[i].probing));
			fail();
		}
	}
}

static void
test_hold(void **state)
{
	(void)state;
	assert_int_equal(admit_hold(100, 50), 100);
	assert_int_equal(admit_hold(100, 150), 150);
	assert_int_equal(admit_hold(-1, 30), 30);
	assert_int_equal(admit_hold(-1, -1), 0);
}

/*
 * The bound the benchmark measures, simulated: jobs whose peaks add up to
 * 3x the budget all run, and what runs never holds more than budget + one
 * job's peak (only an unmeasured first run can overshoot).
 */
static void
test_simulated_queue(void **state)
{
	enum { N = 12 };
	const long peak = 250; /* KiB each: 12 x 250 = 3000 = 3 x the budget */
	struct admit a = { 1000, 0, 0, 0 };
	long learned = -1, left[N];
	size_t started = 0, done = 0, i, max_running = 0;
	bool probing = false;
	int guard = 0;

	(void)state;
	memset(left, 0, sizeof left);
	while (done < N && guard++ < 1000) {
		/* Start what may start, in order. */
		while (started < N && admit_check(&a, learned, probing) == ADMIT_OK) {
			if (learned < 0)
				probing = true;
			a.held_kb += admit_hold(learned, peak); /* sampled at its peak */
			a.running++;
			left[started++] = 3;
		}
		assert_true(a.held_kb <= a.budget_kb + (uint64_t)peak);
		if (a.running > max_running)
			max_running = a.running;
		/* One tick: every running job moves on; finished ones give back. */
		for (i = 0; i < started; i++) {
			if (left[i] > 0 && --left[i] == 0) {
				a.held_kb -= admit_hold(learned, peak);
				a.running--;
				done++;
				if (learned < 0) {
					learned = peak;
					probing = false;
				}
			}
		}
	}
	assert_int_equal(done, N);
	assert_int_equal(max_running, 4);
}

static void
test_budget(void **state)
{
	(void)state;
	assert_int_equal(admit_budget(0, 0, 1000000), 0);
	assert_int_equal(admit_budget(512u << 20, 0.5, 1000000), 512 * 1024);
	assert_int_equal(admit_budget(0, 0.5, 1000000), 500000);
	assert_int_equal(admit_budget(0, 2.0, 1000000), 1000000);
	assert_int_equal(admit_budget(0, 0.5, -1), 0);
	assert_int_equal(admit_budget(100, 0, 0), 1);
	assert_int_equal(admit_parse_meminfo("MemTotal:       24684096 kB\n"
					     "MemFree:        24263888 kB\n"
					     "MemAvailable:   24342364 kB\n"),
			 24342364);
	assert_int_equal(admit_parse_meminfo("MemTotal: 1 kB\n"), -1);
	assert_int_equal(admit_parse_meminfo("XMemAvailable: 5 kB\n"), -1);
	assert_int_equal(admit_parse_meminfo("MemAvailable: junk\n"), -1);
	assert_true(admit_mem_available("/proc/meminfo") > 0);
	assert_int_equal(admit_mem_available("/nonexistent"), -1);
}

static void
test_brake(void **state)
{
	(void)state;
	assert_false(admit_brake(99, 0, 99, 0, 3));      /* thresholds off */
	assert_true(admit_brake(50, 40, 0, 0, 1));
	assert_false(admit_brake(39.9, 40, 0, 0, 1));
	assert_true(admit_brake(0, 40, 30, 25, 1));
	assert_false(admit_brake(90, 40, 90, 25, 0));    /* nothing of ours runs: never stop */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_hold),
		cmocka_unit_test(test_simulated_queue),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_brake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
