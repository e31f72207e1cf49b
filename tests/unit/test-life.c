/*
 * Unit tests for daemon/life.c's pure parts: the timer heap (order by
 * due_at then id, removal from anywhere, tidx upkeep, a long random run
 * against a sorted reference) and the retry backoff. Dependencies,
 * timers and retries of real jobs are covered by tests/e2e/test_lifecycle.py.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "life.h"
#include "xmalloc.h"

#define RANDOM_OPS 20000
#define RANDOM_SEED 20261127u

static struct job *
mkjob(uint64_t id, double due)
{
	struct job *j = xcalloc(1, sizeof *j);

	j->id = id;
	j->due_at = due;
	j->tidx = SIZE_MAX;
	return j;
}

static struct job *
pop(struct life_heap *h)
{
	struct job *j = life_heap_peek(h);

	if (j != NULL)
		life_heap_remove(h, j);
	return j;
}

static void
test_empty(void **state)
{
	struct life_heap h = { 0 };
	struct job *j = mkjob(1, 5);

	(void)state;
	assert_null(life_heap_peek(&h));
	life_heap_remove(&h, j); /* not in it: no-op */
	assert_int_equal(j->tidx, SIZE_MAX);
	life_heap_free(&h);
	free(j);
}

static void
test_order(void **state)
{
	static const double due[] = { 5, 1, 3, 3, 9, 0.5, 2, 3 };
	struct job *v[8];
	struct life_heap h = { 0 };
	struct job *j, *prev = NULL;
	size_t i;

	(void)state;
	for (i = 0; i < 8; i++) {
		v[i] = mkjob(i + 1, due[i]);
		life_heap_push(&h, v[i]);
	}
	assert_int_equal(h.len, 8);
	while ((j = pop(&h)) != NULL) {
		assert_int_equal(j->tidx, SIZE_MAX);
		if (prev != NULL) {
			assert_true(prev->due_at <= j->due_at);
			/* equal times: by id */
			if (prev->due_at == j->due_at)
				assert_true(prev->id < j->id);
		}
		prev = j;
	}
	assert_int_equal(h.len, 0);
	life_heap_free(&h);
	for (i = 0; i < 8; i++)
		free(v[i]);
}

static void
test_remove_middle_and_reinsert(void **state)
{
	struct life_heap h = { 0 };
	struct job *v[32];
	size_t i;

	(void)state;
	for (i = 0; i < 32; i++) {
		v[i] = mkjob(i + 1, (double)((i * 7) % 32));
		life_heap_push(&h, v[i]);
	}
	for (i = 0; i < 32; i += 3) {
		life_heap_remove(&h, v[i]);
		assert_int_equal(v[i]->tidx, SIZE_MAX);
	}
	/* a removed job comes back with a new time: the earliest */
	v[3]->due_at = -1;
	life_heap_push(&h, v[3]);
	assert_ptr_equal(life_heap_peek(&h), v[3]);
	for (i = 0; i < h.len; i++)
		assert_int_equal(h.v[i]->tidx, i);
	life_heap_free(&h);
	for (i = 0; i < 32; i++)
		free(v[i]);
}

static int
cmp_due(const void *pa, const void *pb)
{
	const struct job *a = *(struct job *const *)pa, *b = *(struct job *const *)pb;

	if (a->due_at != b->due_at)
		return a->due_at < b->due_at ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Random pushes and removals; the heap always yields the reference's minimum. */
static void
test_random(void **state)
{
	struct life_heap h = { 0 };
	struct job **all = xcalloc(RANDOM_OPS, sizeof *all), **ref;
	size_t n = 0, live = 0, i, k;
	unsigned seed = RANDOM_SEED;

	(void)state;
	ref = xcalloc(RANDOM_OPS, sizeof *ref);
	for (i = 0; i < RANDOM_OPS; i++) {
		int op = rand_r(&seed) % 3;

		if (op < 2 || live == 0) {
			all[n] = mkjob(n + 1, (double)(rand_r(&seed) % 1000) / 10.0);
			life_heap_push(&h, all[n]);
			n++;
			live++;
		} else {
			k = (size_t)rand_r(&seed) % n;
			if (all[k]->tidx != SIZE_MAX) {
				life_heap_remove(&h, all[k]);
				live--;
			}
		}
		assert_int_equal(h.len, live);
	}
	for (i = 0, k = 0; i < n; i++)
		if (all[i]->tidx != SIZE_MAX)
			ref[k++] = all[i];
	assert_int_equal(k, live);
	qsort(ref, k, sizeof *ref, cmp_due);
	for (i = 0; i < k; i++)
		assert_ptr_equal(pop(&h), ref[i]);
	assert_null(pop(&h));
	life_heap_free(&h);
	for (i = 0; i < n; i++)
		free(all[i]);
	free(all);
	free(ref);
}

static void
test_retry_delay(void **state)
{
	(void)state;
	assert_true(life_retry_delay(1, 1) == 1);
	assert_true(life_retry_delay(1, 2) == 2);
	assert_true(life_retry_delay(1, 3) == 4);
	assert_true(life_retry_delay(0.25, 4) == 2);
	assert_true(life_retry_delay(0, 10) == 0);
	/* capped */
	assert_true(life_retry_delay(1, 13) == JOB_RETRY_DELAY_CAP);
	assert_true(life_retry_delay(1, 1000) == JOB_RETRY_DELAY_CAP);
	assert_true(life_retry_delay(JOB_RETRY_DELAY_CAP, 1) == JOB_RETRY_DELAY_CAP);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_order),
	    cmocka_unit_test(test_remove_middle_and_reinsert),
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_retry_delay),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
