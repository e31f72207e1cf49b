/*
 * Unit tests for the pending-job heap of daemon/sched.c (jobq): order by
 * priority then submission sequence, removal from anywhere, qidx upkeep,
 * and a long random run against a plain reference. The dispatcher needs a
 * live thread pool and is covered by the e2e tests.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "sched.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#define RANDOM_OPS 10000
#define RANDOM_SEED 20240601u

static struct job *
mkjob(int priority, uint64_t seq)
{
	struct job *j = xcalloc(1, sizeof *j);

	j->spec.priority = priority;
	j->seq = seq;
	j->qidx = SIZE_MAX;
	return j;
}

static void
free_jobs(struct job **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
}

/* a runs before b. */
static int
job_before(const struct job *a, const struct job *b)
{
	if (a->spec.priority != b->spec.priority)
		return a->spec.priority < b->spec.priority;
	return a->seq < b->seq;
}

static int
job_cmp(const void *pa, const void *pb)
{
	const struct job *a = *(struct job *const *)pa, *b = *(struct job *const *)pb;

	if (job_before(a, b))
		return -1;
	return job_before(b, a) ? 1 : 0;
}

/* Every queued job knows its slot: qidx values are 0..len-1, each once. */
static void
assert_qidx(struct jobq *q, struct job **v, size_t n)
{
	size_t i, queued = 0, len = jobq_len(q);
	unsigned char *seen = xcalloc(len + 1, 1);

	for (i = 0; i < n; i++) {
		if (v[i]->qidx == SIZE_MAX)
			continue;
		assert_true(v[i]->qidx < len);
		assert_int_equal(seen[v[i]->qidx], 0);
		seen[v[i]->qidx] = 1;
		queued++;
	}
	assert_int_equal(queued, len);
	free(seen);
}

/* Pop everything: strictly in order, each popped job leaves qidx SIZE_MAX. */
static void
pop_all_sorted(struct jobq *q, size_t want)
{
	struct job *prev = NULL, *j;
	size_t n = 0;

	while ((j = jobq_pop(q)) != NULL) {
		assert_int_equal(j->qidx, SIZE_MAX);
		if (prev != NULL && !job_before(prev, j))
			fail_msg("popped (prio %d, seq %llu) after (prio %d, seq %llu)",
			         j->spec.priority, (unsigned long long)j->seq, prev->spec.priority,
			         (unsigned long long)prev->seq);
		prev = j;
		n++;
	}
	assert_int_equal(n, want);
	assert_int_equal(jobq_len(q), 0);
	assert_null(jobq_peek(q));
}

static void
test_empty(void **state)
{
	struct jobq *q = jobq_new();
	struct job *j = mkjob(0, 0);

	(void)state;
	assert_int_equal(jobq_len(q), 0);
	assert_null(jobq_peek(q));
	assert_null(jobq_pop(q));
	/* Removing a job that is not queued is harmless. */
	jobq_remove(q, j);
	assert_int_equal(j->qidx, SIZE_MAX);
	assert_int_equal(jobq_len(q), 0);
	jobq_push(q, j);
	assert_ptr_equal(jobq_pop(q), j);
	assert_null(jobq_peek(q));
	assert_null(jobq_pop(q));
	jobq_free(q);
	jobq_free(NULL);
	free(j);
}

static void
test_priority_then_fifo(void **state)
{
	/* (priority, seq) pushed in this order; seq is submission order. */
	static const struct {
		int prio;
		uint64_t seq;
	} in[] = {
	    {5, 0},  {0, 1}, {-3, 2}, {0, 3},   {19, 4}, {-20, 5},
	    {-3, 6}, {0, 7}, {5, 8},  {-20, 9}, {0, 10}, {19, 11},
	};
	static const uint64_t want[] = {5, 9, 2, 6, 1, 3, 7, 10, 0, 8, 4, 11};
	struct job *v[nitems(in)], *j;
	struct jobq *q = jobq_new();
	size_t i;

	(void)state;
	for (i = 0; i < nitems(in); i++) {
		v[i] = mkjob(in[i].prio, in[i].seq);
		jobq_push(q, v[i]);
		assert_int_equal(jobq_len(q), i + 1);
		assert_true(v[i]->qidx < jobq_len(q));
	}
	assert_qidx(q, v, nitems(v));
	assert_ptr_equal(jobq_peek(q), v[5]);
	for (i = 0; i < nitems(want); i++) {
		j = jobq_peek(q);
		assert_ptr_equal(jobq_pop(q), j);
		assert_int_equal(j->seq, want[i]);
		assert_int_equal(j->qidx, SIZE_MAX);
		assert_int_equal(jobq_len(q), nitems(want) - i - 1);
		assert_qidx(q, v, nitems(v));
	}
	assert_null(jobq_pop(q));
	free_jobs(v, nitems(v));
	jobq_free(q);
}

/* Within one priority the order is seq, whatever order they were pushed in. */
static void
test_fifo_any_push_order(void **state)
{
	struct job *v[200], *j;
	struct jobq *q = jobq_new();
	size_t i;

	(void)state;
	/* Pushed in reverse seq order, then interleaved. */
	for (i = 0; i < 100; i++) {
		v[i] = mkjob(3, 99 - i);
		jobq_push(q, v[i]);
	}
	for (i = 100; i < 200; i++) {
		v[i] = mkjob(3, (i % 2) ? 100 + (i - 100) / 2 : 199 - (i - 100) / 2);
		jobq_push(q, v[i]);
	}
	assert_int_equal(jobq_len(q), 200);
	for (i = 0; i < 200; i++) {
		j = jobq_pop(q);
		assert_non_null(j);
		assert_int_equal(j->seq, i);
	}
	free_jobs(v, nitems(v));
	jobq_free(q);
}

/* The job at heap slot idx (found through qidx, the heap being opaque). */
static struct job *
at_slot(struct job **v, size_t n, size_t idx)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (v[i]->qidx == idx)
			return v[i];
	fail_msg("no job at heap slot %zu", idx);
	return NULL;
}

/* 31 jobs with mixed priorities (a full 5-level heap). */
#define NREM 31

static struct jobq *
filled(struct job **v)
{
	struct jobq *q = jobq_new();
	size_t i;

	for (i = 0; i < NREM; i++) {
		v[i] = mkjob((int)((i * 7) % 5) - 2, i);
		jobq_push(q, v[i]);
	}
	return q;
}

static void
remove_and_check(struct jobq *q, struct job **v, struct job *victim, size_t left)
{
	jobq_remove(q, victim);
	assert_int_equal(victim->qidx, SIZE_MAX);
	assert_int_equal(jobq_len(q), left);
	assert_qidx(q, v, NREM);
	/* Removing it again changes nothing. */
	jobq_remove(q, victim);
	assert_int_equal(jobq_len(q), left);
}

static void
test_remove_head(void **state)
{
	struct job *v[NREM], *head;
	struct jobq *q = filled(v);

	(void)state;
	head = jobq_peek(q);
	assert_int_equal(head->qidx, 0);
	remove_and_check(q, v, head, NREM - 1);
	assert_ptr_not_equal(jobq_peek(q), head);
	pop_all_sorted(q, NREM - 1);
	free_jobs(v, NREM);
	jobq_free(q);
}

static void
test_remove_middle(void **state)
{
	struct job *v[NREM];
	struct jobq *q = filled(v);

	(void)state;
	/* An inner node, then a leaf whose replacement must move up or down. */
	remove_and_check(q, v, at_slot(v, NREM, 3), NREM - 1);
	remove_and_check(q, v, at_slot(v, NREM, NREM / 2), NREM - 2);
	remove_and_check(q, v, at_slot(v, NREM, 20), NREM - 3);
	remove_and_check(q, v, at_slot(v, NREM, 1), NREM - 4);
	pop_all_sorted(q, NREM - 4);
	free_jobs(v, NREM);
	jobq_free(q);
}

static void
test_remove_last(void **state)
{
	struct job *v[NREM], *sorted[NREM];
	struct jobq *q = filled(v);

	(void)state;
	/* The last heap slot... */
	remove_and_check(q, v, at_slot(v, NREM, NREM - 1), NREM - 1);
	/* ...and the job that would run last. */
	memcpy(sorted, v, sizeof sorted);
	qsort(sorted, NREM, sizeof sorted[0], job_cmp);
	if (sorted[NREM - 1]->qidx == SIZE_MAX)
		remove_and_check(q, v, sorted[NREM - 2], NREM - 2);
	else
		remove_and_check(q, v, sorted[NREM - 1], NREM - 2);
	pop_all_sorted(q, NREM - 2);
	free_jobs(v, NREM);
	jobq_free(q);
}

/* Each slot in turn, on a fresh heap: every position of the removal path. */
static void
test_remove_each_slot(void **state)
{
	struct job *v[NREM];
	struct jobq *q;
	size_t s;

	(void)state;
	for (s = 0; s < NREM; s++) {
		q = filled(v);
		remove_and_check(q, v, at_slot(v, NREM, s), NREM - 1);
		pop_all_sorted(q, NREM - 1);
		free_jobs(v, NREM);
		jobq_free(q);
	}
}

/* ---- random operations against a reference ---- */

struct ref {
	struct job **live; /* queued jobs, unordered */
	size_t n;
};

static size_t
ref_min(const struct ref *r)
{
	size_t i, m = 0;

	for (i = 1; i < r->n; i++)
		if (job_before(r->live[i], r->live[m]))
			m = i;
	return m;
}

static void
ref_drop(struct ref *r, size_t i)
{
	r->live[i] = r->live[--r->n];
}

static void
test_random(void **state)
{
	struct job **all = xcalloc(RANDOM_OPS, sizeof *all), *j;
	struct ref r = {.live = xcalloc(RANDOM_OPS, sizeof *r.live)};
	struct jobq *q = jobq_new();
	size_t nall = 0, i, k, m;
	uint64_t seq = 0;
	int op;

	(void)state;
	srand(RANDOM_SEED);
	for (i = 0; i < RANDOM_OPS; i++) {
		/* Slightly more pushes than removals: the heap grows to ~1000. */
		op = rand() % 16;
		if (r.n == 0 || op < 9) {
			/* A narrow priority range makes FIFO ties common. */
			j = mkjob(rand() % 7 - 3, seq++);
			all[nall++] = j;
			r.live[r.n++] = j;
			jobq_push(q, j);
			assert_true(j->qidx < jobq_len(q));
		} else if (op < 12) {
			k = (size_t)rand() % r.n;
			j = r.live[k];
			jobq_remove(q, j);
			assert_int_equal(j->qidx, SIZE_MAX);
			ref_drop(&r, k);
		} else {
			m = ref_min(&r);
			j = jobq_pop(q);
			assert_ptr_equal(j, r.live[m]);
			assert_int_equal(j->qidx, SIZE_MAX);
			ref_drop(&r, m);
		}
		assert_int_equal(jobq_len(q), r.n);
		if (r.n > 0)
			assert_ptr_equal(jobq_peek(q), r.live[ref_min(&r)]);
		else
			assert_null(jobq_peek(q));
		if (i % 1000 == 0)
			assert_qidx(q, all, nall);
	}
	assert_qidx(q, all, nall);

	/* Drain: the same order as the sorted reference. */
	qsort(r.live, r.n, sizeof r.live[0], job_cmp);
	for (k = 0; k < r.n; k++)
		assert_ptr_equal(jobq_pop(q), r.live[k]);
	assert_null(jobq_pop(q));
	for (k = 0; k < nall; k++)
		assert_int_equal(all[k]->qidx, SIZE_MAX);

	free_jobs(all, nall);
	free(all);
	free(r.live);
	jobq_free(q);
}

/* Growth past the initial capacity keeps everything. */
static void
test_many(void **state)
{
	enum { N = 1000 };
	struct job **v = xcalloc(N, sizeof *v);
	struct jobq *q = jobq_new();
	size_t i;

	(void)state;
	for (i = 0; i < N; i++) {
		v[i] = mkjob((int)(N - i) % 40 - 20, i);
		jobq_push(q, v[i]);
	}
	assert_int_equal(jobq_len(q), N);
	assert_qidx(q, v, N);
	pop_all_sorted(q, N);
	free_jobs(v, N);
	free(v);
	jobq_free(q);
}

/* Fair share: a flood of user A, then user B, alternate within a priority level. */
static struct job *
fair_job(struct sched_fair *f, struct jobq *q, uid_t uid, int priority, uint64_t seq)
{
	struct job *j = mkjob(priority, seq);

	j->uid = uid;
	j->vt = sched_fair_stamp(f, uid, priority);
	jobq_push(q, j);
	return j;
}

static void
test_fair_round_robin(void **state)
{
	struct sched_fair f = { 0 };
	struct jobq *q = jobq_new();
	struct job *a[6], *b[2], *j;
	uint64_t seq = 0;
	size_t i;

	(void)state;
	for (i = 0; i < 6; i++)
		a[i] = fair_job(&f, q, 1000, 0, seq++);
	for (i = 0; i < 2; i++)
		b[i] = fair_job(&f, q, 2000, 0, seq++);
	/* A1 B1 A2 B2 A3 A4 A5 A6 */
	struct job *want[] = { a[0], b[0], a[1], b[1], a[2], a[3], a[4], a[5] };
	for (i = 0; i < nitems(want); i++) {
		j = jobq_pop(q);
		assert_ptr_equal(j, want[i]);
		sched_fair_started(&f, j);
	}
	assert_null(jobq_pop(q));
	jobq_free(q);
	sched_fair_free(&f);
	free_jobs(a, 6);
	free_jobs(b, 2);
}

static void
test_fair_late_user_not_starved_nor_favoured(void **state)
{
	struct sched_fair f = { 0 };
	struct jobq *q = jobq_new();
	struct job *a[10], *b[3], *j;
	uint64_t seq = 0;
	size_t i;

	(void)state;
	for (i = 0; i < 10; i++)
		a[i] = fair_job(&f, q, 1, 0, seq++);
	/* Four of A's run before B arrives: B starts at the clock, not at turn 1. */
	for (i = 0; i < 4; i++)
		sched_fair_started(&f, jobq_pop(q));
	for (i = 0; i < 3; i++)
		b[i] = fair_job(&f, q, 2, 0, seq++);
	assert_int_equal(b[0]->vt, 5);
	struct job *want[] = { a[4], b[0], a[5], b[1], a[6], b[2], a[7], a[8], a[9] };
	for (i = 0; i < nitems(want); i++) {
		j = jobq_pop(q);
		assert_ptr_equal(j, want[i]);
		sched_fair_started(&f, j);
	}
	jobq_free(q);
	sched_fair_free(&f);
	free_jobs(a, 10);
	free_jobs(b, 3);
}

static void
test_fair_priority_first(void **state)
{
	struct sched_fair f = { 0 };
	struct jobq *q = jobq_new();
	struct job *lo[3], *hi[2];
	uint64_t seq = 0;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++)
		lo[i] = fair_job(&f, q, 1, 5, seq++);
	for (i = 0; i < 2; i++)
		hi[i] = fair_job(&f, q, 1, -5, seq++);
	/* a user's backlog at one level does not push back their turns at another */
	assert_int_equal(hi[0]->vt, 1);
	assert_ptr_equal(jobq_pop(q), hi[0]);
	assert_ptr_equal(jobq_pop(q), hi[1]);
	for (i = 0; i < 3; i++)
		assert_ptr_equal(jobq_pop(q), lo[i]);
	jobq_free(q);
	sched_fair_free(&f);
	free_jobs(lo, 3);
	free_jobs(hi, 2);
}

/* fair_share switched off (a reload): new jobs queue behind those stamped while it was on. */
static void
test_fair_off_after_on_is_fifo(void **state)
{
	struct sched_fair f = { 0 };
	struct jobq *q = jobq_new();
	struct job *a[3], *n[2];
	uint64_t seq = 0;
	size_t i;

	(void)state;
	for (i = 0; i < 3; i++)
		a[i] = fair_job(&f, q, 1, 0, seq++);
	sched_fair_started(&f, jobq_pop(q));
	for (i = 0; i < 2; i++) {
		n[i] = mkjob(0, seq++);
		n[i]->uid = 2;
		n[i]->vt = sched_fair_fifo(&f, 0);
		jobq_push(q, n[i]);
	}
	struct job *want[] = { a[1], a[2], n[0], n[1] };
	for (i = 0; i < nitems(want); i++)
		assert_ptr_equal(jobq_pop(q), want[i]);
	/* never stamped at a level: 0, as before */
	assert_int_equal(sched_fair_fifo(&f, 5), 0);
	jobq_free(q);
	sched_fair_free(&f);
	free_jobs(a, 3);
	free_jobs(n, 2);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty),
	    cmocka_unit_test(test_priority_then_fifo),
	    cmocka_unit_test(test_fifo_any_push_order),
	    cmocka_unit_test(test_remove_head),
	    cmocka_unit_test(test_remove_middle),
	    cmocka_unit_test(test_remove_last),
	    cmocka_unit_test(test_remove_each_slot),
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_many),
	    cmocka_unit_test(test_fair_round_robin),
	    cmocka_unit_test(test_fair_late_user_not_starved_nor_favoured),
	    cmocka_unit_test(test_fair_priority_first),
	    cmocka_unit_test(test_fair_off_after_on_is_fifo),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
