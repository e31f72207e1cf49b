/*
 * Handler workers (daemon/hpool.c): the sizing plan as a pure function.
 * The live behaviour (hello, jobs, crashes, hangs, recycling) is tested
 * end to end with real Python and C workers in tests/e2e/test_handlers.py.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "hpool.h"

static struct hplan
plan(int min, int max, int conc)
{
	struct hplan p;

	memset(&p, 0, sizeof p);
	p.min = min;
	p.max = max;
	p.concurrency = conc;
	return p;
}

static void
test_min_workers(void **state)
{
	struct hplan p = plan(2, 4, 1);

	assert_int_equal(hpool_plan(&p), 2);
	p.alive = p.starting = 2;
	assert_int_equal(hpool_plan(&p), 0);
	p.starting = 0;
	p.idle = 2;
	assert_int_equal(hpool_plan(&p), 0);
}

static void
test_cpu_jobs(void **state)
{
	struct hplan p = plan(1, 4, 8);

	/* Each cpu job takes a worker to itself, whatever the concurrency. */
	p.alive = p.idle = 1;
	p.pending_cpu = 3;
	assert_int_equal(hpool_plan(&p), 2);
	/* Starting workers count as coming capacity. */
	p.alive = 3;
	p.starting = 2;
	assert_int_equal(hpool_plan(&p), 0);
	/* Never above max. */
	p.pending_cpu = 100;
	assert_int_equal(hpool_plan(&p), 1);
	p.alive = 4;
	assert_int_equal(hpool_plan(&p), 0);
}

static void
test_io_jobs(void **state)
{
	struct hplan p = plan(1, 8, 10);

	/* io jobs pack: one idle worker of concurrency 10 takes 10. */
	p.alive = p.idle = 1;
	p.pending_io = 10;
	assert_int_equal(hpool_plan(&p), 0);
	p.pending_io = 11;
	assert_int_equal(hpool_plan(&p), 1);
	p.pending_io = 35;
	assert_int_equal(hpool_plan(&p), 3);
	/* Free slots in busy io workers count. */
	p.idle = 0;
	p.io_free = 5;
	p.pending_io = 5;
	assert_int_equal(hpool_plan(&p), 0);
	p.pending_io = 6;
	assert_int_equal(hpool_plan(&p), 1);
	/* cpu jobs take idle workers first: io jobs need new ones then. */
	p = plan(0, 8, 10);
	p.alive = p.idle = 1;
	p.pending_cpu = 1;
	p.pending_io = 1;
	assert_int_equal(hpool_plan(&p), 1);
}

static void
test_shrink(void **state)
{
	struct hplan p = plan(1, 4, 1);

	p.alive = p.idle = 3;
	p.idle_expired = 3;
	assert_int_equal(hpool_plan(&p), -2); /* min_workers stay */
	p.idle_expired = 1;
	assert_int_equal(hpool_plan(&p), -1);
	/* Nothing retires while jobs wait. */
	p.pending_io = 1;
	assert_int_equal(hpool_plan(&p), 0);
	/* Above max (a reload lowered it): idle ones go. */
	p = plan(0, 2, 1);
	p.alive = 4;
	p.idle = 1;
	assert_int_equal(hpool_plan(&p), -1);
	p.idle = 3;
	assert_int_equal(hpool_plan(&p), -2);
}

static void
test_zero_min(void **state)
{
	struct hplan p = plan(0, 4, 1);

	assert_int_equal(hpool_plan(&p), 0);
	p.pending_cpu = 1;
	assert_int_equal(hpool_plan(&p), 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_min_workers),
		cmocka_unit_test(test_cpu_jobs),
		cmocka_unit_test(test_io_jobs),
		cmocka_unit_test(test_shrink),
		cmocka_unit_test(test_zero_min),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
