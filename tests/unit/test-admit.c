#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"

/* One decision: budget, held, promised, running, need → verdict. */
struct row {
	uint64_t budget, held, promised;
	size_t running;
	long need;
	enum admit_verdict want;
	const char *why;
};

static const struct row rows[] = {
	{ 0, 900, 0, 5, 5000, ADMIT_OK, "no budget: everything starts" },
	{ 1000, 0, 0, 0, 400, ADMIT_OK, "nothing runs" },
	{ 1000, 600, 0, 2, 400, ADMIT_OK, "fits exactly" },
	{ 1000, 601, 0, 2, 400, ADMIT_MEMORY, "one KiB too many" },
	{ 1000, 0, 0, 0, 5000, ADMIT_OK, "larger than the budget, alone" },
	{ 1000, 10, 0, 1, 5000, ADMIT_MEMORY, "larger than the budget, not alone" },
	{ 1000, 200, 700, 1, 200, ADMIT_MEMORY, "room taken by a promise" },
	{ 1000, 200, 700, 1, 100, ADMIT_OK, "room left beside a promise" },
	{ 1000, 1200, 0, 2, 0, ADMIT_MEMORY, "over budget already (live RSS)" },
	{ 1000, 1200, 0, 2, 10, ADMIT_MEMORY, "over budget, small job" },
	{ 1000, 500, 0, 1, -1, ADMIT_OK, "unknown kind while there is room" },
	{ 1000, 1000, 0, 1, -1, ADMIT_MEMORY, "unknown kind, budget full" },
	{ 1000, 200, 800, 1, -1, ADMIT_MEMORY, "unknown kind, the rest promised" },
	{ 1000, 5000, 0, 0, -1, ADMIT_OK, "unknown kind, nothing of ours runs" },
	{ UINT64_MAX, UINT64_MAX - 5, 0, 3, 10, ADMIT_MEMORY, "no overflow" },
	{ 1000, 900, 200, 1, 0, ADMIT_MEMORY, "held + promised above budget" },
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
		if (admit_check(&a, rows[i].need) != rows[i].want) {
			print_error("row %zu (%s): got %d\n", i, rows[i].why,
				    admit_check(&a, rows[i].need));
			fail();
		}
	}
}

static void
test_need_and_hold(void **state)
{
	(void)state;
	assert_int_equal(admit_need(-1, -1), -1);
	assert_int_equal(admit_need(100, -1), 100);
	assert_int_equal(admit_need(-1, 40), 40);   /* nothing learned: what it uses now */
	assert_int_equal(admit_need(100, 300), 300); /* learned too low: a running one shows more */
	assert_int_equal(admit_need(100, 30), 100);
	assert_int_equal(admit_hold(100, 50), 100);
	assert_int_equal(admit_hold(100, 150), 150);
	assert_int_equal(admit_hold(-1, 30), 30);
	assert_int_equal(admit_hold(-1, -1), 0);
}

/*
 * The bound the benchmark measures, simulated tick by tick: N jobs whose
 * peaks add up to 3x the budget all run, and what runs never holds more
 * than the budget + one job's peak. learned: the peak the router knows
 * when the queue starts (a first run taught it); each started job is
 * sampled at its real peak from the next tick on.
 */
static size_t
simulate(long learned, long peak, uint64_t *most)
{
	enum { N = 12, SLOTS = 12 };
	struct admit a = { 1000, 0, 0, 0 };
	long left[N], held[N], sampled = -1;
	size_t started = 0, done = 0, i, max_running = 0;
	int guard = 0;
	long need;

	*most = 0;
	while (done < N && guard++ < 1000) {
		need = admit_need(learned, sampled);
		while (started < N && a.running < SLOTS && admit_check(&a, need) == ADMIT_OK) {
			held[started] = (long)admit_hold(need, -1);
			a.held_kb += (uint64_t)held[started];
			a.running++;
			left[started++] = 3;
		}
		if (a.running > max_running)
			max_running = a.running;
		/* A tick: samples (every running job at its peak), then some end. */
		for (i = 0; i < started; i++) {
			if (left[i] <= 0)
				continue;
			a.held_kb = a.held_kb - (uint64_t)held[i] + admit_hold(need, peak);
			held[i] = (long)admit_hold(need, peak);
			sampled = peak;
		}
		if (a.held_kb > *most)
			*most = a.held_kb;
		for (i = 0; i < started; i++) {
			if (left[i] > 0 && --left[i] == 0) {
				a.held_kb -= (uint64_t)held[i];
				a.running--;
				done++;
				learned = admit_need(learned, peak);
			}
		}
	}
	assert_int_equal(done, N);
	return max_running;
}

static void
test_simulated_queue(void **state)
{
	uint64_t most;

	(void)state;
	/* 12 x 250 = 3 x the budget of 1000. Learned: 4 at a time, within the budget. */
	assert_int_equal(simulate(250, 250, &most), 4);
	assert_true(most <= 1000);
	/*
	 * Learned too low (lean earlier runs): the first wave starts on the
	 * wrong peak (10 x 100) and is over by the factor of the error; once
	 * sampled, nothing more starts until enough of it has ended, and the
	 * kind's learned peak is right from its first end on.
	 */
	assert_int_equal(simulate(100, 250, &most), 10);
	assert_true(most <= 1000 * 250 / 100);
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
		cmocka_unit_test(test_need_and_hold),
		cmocka_unit_test(test_simulated_queue),
		cmocka_unit_test(test_budget),
		cmocka_unit_test(test_brake),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
