/*
 * Unit tests for the job table, daemon/job.c and its parts (job-unique.c,
 * job-array.c, job-spec.c, job-json.c): ids, the id hash (also across
 * growth), per-state counts, waiters, pruning of old finished jobs, list
 * order, unique keys, arrays, the job object (doc/protocol.md "Job object")
 * and state names. Stored records: test-record.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "config.h"
#include "job.h"
#include "jsonutil.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#define MANY_JOBS 5000
#define MAX_PRUNED 16

/* A spec for `echo hi`, as proto_job_decode would build it. */
static void
mkspec(struct job_spec *spec)
{
	memset(spec, 0, sizeof *spec);
	spec->type = BUILTIN_EXEC;
	spec->argv = xcalloc(3, sizeof(char *));
	spec->argv[0] = xstrdup("echo");
	spec->argv[1] = xstrdup("hi");
	spec->cwd = xstrdup("/");
	spec->class = CLASS_AUTO;
}

/* A job whose submit is not stored yet (not announced). */
static struct job *
add_new(struct jobs *js)
{
	struct job_spec spec;
	struct job *j;

	mkspec(&spec);
	j = jobs_add(js, &spec, 1000, 100, 1700000000.5);
	assert_non_null(j);
	/* The job took the spec's contents. */
	assert_null(spec.argv);
	assert_null(spec.cwd);
	return j;
}

/* A job whose submit is stored (op-submit.c's submit_committed announced it). */
static struct job *
add(struct jobs *js)
{
	struct job *j = add_new(js);

	jobs_announce(js, j);
	return j;
}

static void
test_ids(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j;
	uint64_t i;

	(void)state;
	assert_int_equal(jobs_next_id(js), 1);
	assert_int_equal(jobs_total(js), 0);
	assert_null(jobs_first(js));
	assert_null(jobs_last(js));
	for (i = 1; i <= 3; i++) {
		j = add(js);
		assert_int_equal(j->id, i);
		assert_int_equal(j->state, JOB_QUEUED);
		assert_int_equal(j->uid, 1000);
		assert_int_equal(j->gid, 100);
		assert_int_equal(j->worker, -1);
		assert_int_equal(j->qidx, SIZE_MAX);
		assert_int_equal(j->res.exit_code, -1);
		assert_true(j->submitted_at == 1700000000.5);
		assert_string_equal(j->spec.argv[0], "echo");
		assert_int_equal(jobs_next_id(js), i + 1);
	}
	assert_int_equal(jobs_total(js), 3);
	jobs_free(js);
}

static void
test_find(void **state)
{
	struct jobs *js = jobs_new();
	struct job *a, *b;

	(void)state;
	assert_null(jobs_find(js, 1));
	a = add(js);
	b = add(js);
	assert_ptr_equal(jobs_find(js, 1), a);
	assert_ptr_equal(jobs_find(js, 2), b);
	assert_null(jobs_find(js, 0));
	assert_null(jobs_find(js, 3));
	assert_null(jobs_find(js, UINT64_MAX));
	jobs_free(js);
}

/* 5000 jobs force the hash (1024 buckets at first) to grow three times. */
static void
test_find_after_growth(void **state)
{
	struct jobs *js = jobs_new();
	struct job **v = xcalloc(MANY_JOBS + 1, sizeof *v);
	uint64_t i;

	(void)state;
	for (i = 1; i <= MANY_JOBS; i++) {
		v[i] = add(js);
		assert_int_equal(v[i]->id, i);
		/* Earlier jobs stay findable right after each growth. */
		if ((i & (i - 1)) == 0 || i == 1025 || i == 2049 || i == 4097)
			assert_ptr_equal(jobs_find(js, 1), v[1]);
	}
	assert_int_equal(jobs_total(js), MANY_JOBS);
	assert_int_equal(jobs_count(js, JOB_QUEUED), MANY_JOBS);
	for (i = 1; i <= MANY_JOBS; i++)
		assert_ptr_equal(jobs_find(js, i), v[i]);
	assert_null(jobs_find(js, 0));
	assert_null(jobs_find(js, MANY_JOBS + 1));
	assert_null(jobs_find(js, 1ULL << 40));
	assert_null(jobs_find(js, UINT64_MAX));
	free(v);
	jobs_free(js);
}

static void
assert_counts(struct jobs *js, const size_t want[JOB_NSTATES])
{
	size_t sum = 0;
	int st;

	for (st = 0; st < JOB_NSTATES; st++) {
		assert_int_equal(jobs_count(js, st), want[st]);
		sum += want[st];
	}
	assert_int_equal(jobs_total(js), sum);
	assert_int_equal(jobs_count(js, JOB_NSTATES), 0);
}

static void
test_counts(void **state)
{
	struct jobs *js = jobs_new();
	size_t want[JOB_NSTATES] = {0};
	struct job *j[4];
	int i;

	(void)state;
	assert_counts(js, want);
	for (i = 0; i < 4; i++)
		j[i] = add(js);
	want[JOB_QUEUED] = 4;
	assert_counts(js, want);

	job_set_state(js, j[0], JOB_RUNNING);
	job_set_state(js, j[1], JOB_RUNNING);
	want[JOB_QUEUED] = 2;
	want[JOB_RUNNING] = 2;
	assert_counts(js, want);

	job_set_state(js, j[0], JOB_DONE);
	job_set_state(js, j[1], JOB_FAILED);
	job_set_state(js, j[2], JOB_CANCELLED);
	want[JOB_QUEUED] = 1;
	want[JOB_RUNNING] = 0;
	want[JOB_DONE] = 1;
	want[JOB_FAILED] = 1;
	want[JOB_CANCELLED] = 1;
	assert_counts(js, want);

	/* Setting the same state again changes nothing. */
	job_set_state(js, j[3], JOB_QUEUED);
	assert_counts(js, want);
	assert_int_equal(j[3]->state, JOB_QUEUED);

	/* jobs_finish moves the count too. */
	jobs_finish(js, j[3], JOB_TIMEOUT, 100, NULL, NULL);
	want[JOB_QUEUED] = 0;
	want[JOB_TIMEOUT] = 1;
	assert_counts(js, want);
	assert_int_equal(j[3]->state, JOB_TIMEOUT);
	jobs_free(js);
}

/* ---- waiters ---- */

struct wcall {
	int calls;
	struct job *job;
	enum job_state state;     /* the job's state when called */
	struct job_waiter *other; /* to unwait from the callback, or NULL */
};

static void
wait_cb(struct job *job, void *arg)
{
	struct wcall *c = arg;

	c->calls++;
	c->job = job;
	c->state = job->state;
	if (c->other != NULL)
		job_unwait(job, c->other);
}

static void
test_waiters(void **state)
{
	struct jobs *js = jobs_new();
	struct wcall c1 = {0}, c2 = {0}, c3 = {0};
	struct job_waiter w1 = {.cb = wait_cb, .arg = &c1};
	struct job_waiter w2 = {.cb = wait_cb, .arg = &c2};
	struct job_waiter w3 = {.cb = wait_cb, .arg = &c3};
	struct job *j, *other;

	(void)state;
	j = add(js);
	other = add(js);
	job_wait(j, &w1);
	job_wait(j, &w2);
	job_wait(j, &w3);
	job_unwait(j, &w3);

	/* State changes short of finishing fire nothing. */
	job_set_state(js, j, JOB_RUNNING);
	assert_int_equal(c1.calls, 0);
	/* Neither does finishing another job. */
	jobs_finish(js, other, JOB_DONE, 100, NULL, NULL);
	assert_int_equal(c1.calls, 0);
	assert_int_equal(c2.calls, 0);

	jobs_finish(js, j, JOB_FAILED, 100, NULL, NULL);
	assert_int_equal(c1.calls, 1);
	assert_ptr_equal(c1.job, j);
	assert_int_equal(c1.state, JOB_FAILED);
	assert_int_equal(c2.calls, 1);
	assert_ptr_equal(c2.job, j);
	assert_int_equal(c2.state, JOB_FAILED);
	assert_int_equal(c3.calls, 0);
	assert_true(TAILQ_EMPTY(&j->waiters));
	jobs_free(js);
}

/*
 * A job whose submit could not be stored is discarded, even if it was
 * cancelled (finished) meanwhile: it leaves the finished list (pruning
 * must not meet it), and those still waiting for it hear of it.
 */
static void
test_discard(void **state)
{
	struct jobs *js = jobs_new();
	struct wcall c1 = {0}, c2 = {0};
	struct job_waiter w1 = {.cb = wait_cb, .arg = &c1};
	struct job_waiter w2 = {.cb = wait_cb, .arg = &c2};
	struct job *a, *b, *c;

	(void)state;
	a = add(js);
	b = add(js);
	job_wait(b, &w1);
	job_wait(b, &w2);
	jobs_finish(js, a, JOB_CANCELLED, 100, NULL, NULL);
	jobs_discard(js, a);
	assert_null(jobs_find(js, 1));
	assert_int_equal(jobs_count(js, JOB_CANCELLED), 0);
	jobs_discard(js, b);
	assert_int_equal(c1.calls, 1);
	assert_int_equal(c1.state, JOB_QUEUED);
	assert_int_equal(c2.calls, 1);
	assert_int_equal(jobs_total(js), 0);
	assert_int_equal(jobs_pending(js), 0);
	/* pruning beyond keep 0 meets only the jobs still there */
	c = add(js);
	jobs_finish(js, c, JOB_DONE, 0, NULL, NULL);
	assert_int_equal(jobs_total(js), 0);
	jobs_free(js);
}

/* A waiter's callback may drop another waiter of the same job. */
static void
test_waiter_unwaits_other(void **state)
{
	struct jobs *js = jobs_new();
	struct wcall c1 = {0}, c2 = {0};
	struct job_waiter w1 = {.cb = wait_cb, .arg = &c1};
	struct job_waiter w2 = {.cb = wait_cb, .arg = &c2};
	struct job *j;

	(void)state;
	j = add(js);
	c1.other = &w2;
	job_wait(j, &w1);
	job_wait(j, &w2);
	jobs_finish(js, j, JOB_DONE, 100, NULL, NULL);
	assert_int_equal(c1.calls, 1);
	assert_int_equal(c2.calls, 0);
	jobs_free(js);
}

static int freeing_calls;

static void
free_waiter_cb(struct job *job, void *arg)
{
	(void)job;
	freeing_calls++;
	free(arg);
}

/* A waiter may free itself from its callback (sanitizers watch for reuse). */
static void
test_waiter_frees_itself(void **state)
{
	struct jobs *js = jobs_new();
	struct job_waiter *w;
	struct job *j;
	int i;

	(void)state;
	j = add(js);
	for (i = 0; i < 3; i++) {
		w = xcalloc(1, sizeof *w);
		w->cb = free_waiter_cb;
		w->arg = w;
		job_wait(j, w);
	}
	freeing_calls = 0;
	jobs_finish(js, j, JOB_DONE, 100, NULL, NULL);
	assert_int_equal(freeing_calls, 3);
	jobs_free(js);
}

/* ---- pruning ---- */

struct pruned {
	struct jobs *js;
	uint64_t ids[MAX_PRUNED];
	int n;
	int not_in_table; /* prune was called for a job no longer findable */
	int not_final;
};

static void
prune_cb(struct job *j, void *arg)
{
	struct pruned *p = arg;

	assert_true(p->n < MAX_PRUNED);
	p->ids[p->n++] = j->id;
	if (jobs_find(p->js, j->id) != j)
		p->not_in_table++;
	if (!job_state_final(j->state))
		p->not_final++;
}

static void
test_prune(void **state)
{
	/* Finish in an order unlike id order: pruning follows finishing order. */
	static const uint64_t order[] = {3, 1, 5, 2, 4};
	static const enum job_state finals[] = {JOB_DONE, JOB_FAILED, JOB_TIMEOUT, JOB_CANCELLED,
	                                        JOB_DONE};
	struct jobs *js = jobs_new();
	struct pruned p = {.js = js};
	size_t i;

	(void)state;
	for (i = 0; i < 6; i++)
		add(js);
	job_set_state(js, jobs_find(js, 6), JOB_RUNNING);
	for (i = 0; i < nitems(order); i++) {
		jobs_finish(js, jobs_find(js, order[i]), finals[i], 3, prune_cb, &p);
		/* Nothing goes until more than 3 are finished. */
		assert_int_equal(p.n, i < 3 ? 0 : (int)i - 2);
	}
	assert_int_equal(p.n, 2);
	assert_int_equal(p.ids[0], 3);
	assert_int_equal(p.ids[1], 1);
	assert_int_equal(p.not_in_table, 0);
	assert_int_equal(p.not_final, 0);

	assert_null(jobs_find(js, 3));
	assert_null(jobs_find(js, 1));
	assert_non_null(jobs_find(js, 2));
	assert_non_null(jobs_find(js, 4));
	assert_non_null(jobs_find(js, 5));
	assert_non_null(jobs_find(js, 6));
	assert_int_equal(jobs_total(js), 4);
	/* 3 (done) and 1 (failed) went; 5 timeout, 2 cancelled, 4 done stay. */
	assert_int_equal(jobs_count(js, JOB_DONE), 1);
	assert_int_equal(jobs_count(js, JOB_FAILED), 0);
	assert_int_equal(jobs_count(js, JOB_TIMEOUT), 1);
	assert_int_equal(jobs_count(js, JOB_CANCELLED), 1);
	assert_int_equal(jobs_count(js, JOB_RUNNING), 1);
	assert_int_equal(jobs_count(js, JOB_QUEUED), 0);
	/* Ids are never reused. */
	assert_int_equal(jobs_next_id(js), 7);
	assert_int_equal(add(js)->id, 7);

	/* One more finish drops the next oldest finished: 5. */
	jobs_finish(js, jobs_find(js, 6), JOB_DONE, 3, prune_cb, &p);
	assert_int_equal(p.n, 3);
	assert_int_equal(p.ids[2], 5);
	assert_null(jobs_find(js, 5));
	assert_int_equal(jobs_total(js), 4);
	jobs_free(js);
}

/* Without a prune callback, pruning still happens. */
static void
test_prune_no_cb(void **state)
{
	struct jobs *js = jobs_new();
	int i;

	(void)state;
	for (i = 0; i < 4; i++)
		add(js);
	for (i = 1; i <= 4; i++)
		jobs_finish(js, jobs_find(js, i), JOB_DONE, 2, NULL, NULL);
	assert_null(jobs_find(js, 1));
	assert_null(jobs_find(js, 2));
	assert_non_null(jobs_find(js, 3));
	assert_non_null(jobs_find(js, 4));
	assert_int_equal(jobs_total(js), 2);
	assert_int_equal(jobs_count(js, JOB_DONE), 2);
	jobs_free(js);
}

/* keep = 0: the job is handed to its waiters, then pruned at once. */
static void
test_keep_zero(void **state)
{
	struct jobs *js = jobs_new();
	struct pruned p = {.js = js};
	struct wcall c = {0};
	struct job_waiter w = {.cb = wait_cb, .arg = &c};
	struct job *j;

	(void)state;
	add(js);
	j = add(js);
	job_wait(j, &w);
	jobs_finish(js, j, JOB_DONE, 0, prune_cb, &p);
	assert_int_equal(c.calls, 1);
	assert_int_equal(c.state, JOB_DONE);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.ids[0], 2);
	assert_null(jobs_find(js, 2));
	assert_int_equal(jobs_total(js), 1);
	assert_int_equal(jobs_count(js, JOB_DONE), 0);
	/* A negative keep counts as 0. */
	jobs_finish(js, jobs_find(js, 1), JOB_DONE, -5, prune_cb, &p);
	assert_int_equal(p.n, 2);
	assert_int_equal(jobs_total(js), 0);
	assert_null(jobs_first(js));
	jobs_free(js);
}

/* A job that ends before its submit is stored is pruned only once announced. */
static void
test_prune_waits_for_announce(void **state)
{
	struct jobs *js = jobs_new();
	struct pruned p = {.js = js};
	struct job *a, *b;

	(void)state;
	a = add(js);
	b = add_new(js);
	jobs_finish(js, b, JOB_CANCELLED, 0, prune_cb, &p);
	assert_int_equal(p.n, 0);
	assert_ptr_equal(jobs_find(js, 2), b);
	/* The older, announced one goes; the unannounced one is kept. */
	jobs_finish(js, a, JOB_DONE, 0, prune_cb, &p);
	assert_int_equal(p.n, 1);
	assert_int_equal(p.ids[0], 1);
	assert_ptr_equal(jobs_find(js, 2), b);
	jobs_announce(js, b);
	jobs_prune(js, 0, prune_cb, &p);
	assert_int_equal(p.n, 2);
	assert_int_equal(p.ids[1], 2);
	assert_int_equal(jobs_total(js), 0);
	jobs_free(js);
}

/* ---- list order ---- */

static void
assert_id_order(struct jobs *js, const uint64_t *want, size_t n)
{
	struct job *j;
	size_t i = 0;

	for (j = jobs_first(js); j != NULL; j = TAILQ_NEXT(j, all)) {
		assert_true(i < n);
		assert_int_equal(j->id, want[i]);
		i++;
	}
	assert_int_equal(i, n);
	if (n > 0)
		assert_int_equal(jobs_last(js)->id, want[n - 1]);
}

static void
test_list_order(void **state)
{
	static const uint64_t all[] = {1, 2, 3, 4, 5, 6, 7, 8};
	static const uint64_t after[] = {1, 3, 4, 6, 7, 8, 9, 10};
	struct jobs *js = jobs_new();
	int i;

	(void)state;
	for (i = 0; i < 8; i++)
		add(js);
	assert_id_order(js, all, nitems(all));
	/* Finish 5, 2, 7 with keep 2: 5 goes; then finishing 8 sends 2 too. */
	jobs_finish(js, jobs_find(js, 5), JOB_DONE, 2, NULL, NULL);
	jobs_finish(js, jobs_find(js, 2), JOB_DONE, 2, NULL, NULL);
	jobs_finish(js, jobs_find(js, 7), JOB_DONE, 2, NULL, NULL);
	assert_null(jobs_find(js, 5));
	jobs_finish(js, jobs_find(js, 8), JOB_DONE, 2, NULL, NULL);
	assert_null(jobs_find(js, 2));
	add(js);
	add(js);
	assert_id_order(js, after, nitems(after));
	jobs_free(js);
}

/* ---- the job object ---- */

static const char *const job_keys[] = {
    "id",         "state",       "type",    "class",      "routed", "pool",
    "worker",     "name",        "argv",    "priority",   "owner",  "exit_code",
    "signal",     "cpu_user",    "cpu_sys", "max_rss_kb", "wall",   "submitted_at",
    "started_at", "finished_at", "result",  "error",
};

/* Null while queued: nothing has run yet. */
static const char *const queued_nulls[] = {
    "routed",  "pool",       "worker", "name",       "exit_code",   "signal", "cpu_user",
    "cpu_sys", "max_rss_kb", "wall",   "started_at", "finished_at", "result", "error",
};

static void
assert_has_keys(json_t *o)
{
	size_t i;

	assert_true(json_is_object(o));
	for (i = 0; i < nitems(job_keys); i++)
		if (json_object_get(o, job_keys[i]) == NULL)
			fail_msg("job object lacks \"%s\"", job_keys[i]);
}

static void
test_json_queued(void **state)
{
	struct jobs *js = jobs_new();
	json_t *o, *v;
	struct job *j;
	size_t i;

	(void)state;
	add(js);
	j = add(js);
	j->spec.priority = -7;
	o = job_to_json(j);
	assert_has_keys(o);
	for (i = 0; i < nitems(queued_nulls); i++)
		if (!json_is_null(json_object_get(o, queued_nulls[i])))
			fail_msg("queued job: \"%s\" is not null", queued_nulls[i]);

	assert_true(json_is_integer(json_object_get(o, "id")));
	assert_int_equal(json_integer_value(json_object_get(o, "id")), 2);
	assert_string_equal(json_string_value(json_object_get(o, "state")), TASKD_STATE_QUEUED);
	assert_string_equal(json_string_value(json_object_get(o, "type")), "exec");
	assert_string_equal(json_string_value(json_object_get(o, "class")), TASKD_CLASS_AUTO);
	assert_int_equal(json_integer_value(json_object_get(o, "priority")), -7);
	v = json_object_get(o, "argv");
	assert_true(json_is_array(v));
	assert_int_equal(json_array_size(v), 2);
	assert_string_equal(json_string_value(json_array_get(v, 0)), "echo");
	assert_string_equal(json_string_value(json_array_get(v, 1)), "hi");
	v = json_object_get(o, "owner");
	assert_true(json_is_object(v));
	assert_int_equal(json_integer_value(json_object_get(v, "uid")), 1000);
	assert_int_equal(json_integer_value(json_object_get(v, "gid")), 100);
	v = json_object_get(o, "submitted_at");
	assert_true(json_is_real(v));
	assert_true(json_real_value(v) == 1700000000.5);
	json_decref(o);
	jobs_free(js);
}

static void
test_json_finished(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j;
	json_t *o;

	(void)state;
	j = add(js);
	j->spec.name = xstrdup("build");
	j->spec.class = CLASS_CPU;
	j->routed = CLASS_IO;
	j->pool = POOL_THREAD;
	j->worker = 2;
	j->started_at = 1700000001.0;
	j->finished_at = 1700000003.25;
	j->res.status = RUN_EXITED;
	j->res.exit_code = 0;
	j->res.cpu_user = 0.5;
	j->res.cpu_sys = 0.25;
	j->res.max_rss_kb = 1234;
	j->res.wall = 2.25;
	j->res.result = xstrdup("42");
	job_set_state(js, j, JOB_RUNNING);
	jobs_finish(js, j, JOB_DONE, 10, NULL, NULL);

	o = job_to_json(j);
	assert_has_keys(o);
	assert_string_equal(json_string_value(json_object_get(o, "state")), TASKD_STATE_DONE);
	assert_string_equal(json_string_value(json_object_get(o, "name")), "build");
	assert_string_equal(json_string_value(json_object_get(o, "class")), TASKD_CLASS_CPU);
	assert_string_equal(json_string_value(json_object_get(o, "routed")), TASKD_CLASS_IO);
	assert_string_equal(json_string_value(json_object_get(o, "pool")), "thread");
	assert_int_equal(json_integer_value(json_object_get(o, "worker")), 2);
	assert_true(json_is_integer(json_object_get(o, "exit_code")));
	assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 0);
	assert_true(json_is_null(json_object_get(o, "signal")));
	assert_true(json_real_value(json_object_get(o, "cpu_user")) == 0.5);
	assert_true(json_real_value(json_object_get(o, "cpu_sys")) == 0.25);
	assert_int_equal(json_integer_value(json_object_get(o, "max_rss_kb")), 1234);
	assert_true(json_real_value(json_object_get(o, "wall")) == 2.25);
	assert_true(json_real_value(json_object_get(o, "started_at")) == 1700000001.0);
	assert_true(json_real_value(json_object_get(o, "finished_at")) == 1700000003.25);
	assert_string_equal(json_string_value(json_object_get(o, "result")), "42");
	assert_true(json_is_null(json_object_get(o, "error")));
	json_decref(o);
	jobs_free(js);
}

/* Cancelled while queued: final, but it never ran. */
static void
test_json_cancelled_queued(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j;
	json_t *o;

	(void)state;
	j = add(js);
	j->res.error = xstrdup("cancelled by user");
	j->finished_at = 1700000002.0;
	jobs_finish(js, j, JOB_CANCELLED, 10, NULL, NULL);
	o = job_to_json(j);
	assert_has_keys(o);
	assert_string_equal(json_string_value(json_object_get(o, "state")), TASKD_STATE_CANCELLED);
	assert_true(json_is_null(json_object_get(o, "exit_code")));
	assert_true(json_is_null(json_object_get(o, "cpu_user")));
	assert_true(json_is_null(json_object_get(o, "wall")));
	assert_true(json_is_null(json_object_get(o, "started_at")));
	assert_true(json_is_real(json_object_get(o, "finished_at")));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "cancelled by user");
	json_decref(o);
	jobs_free(js);
}

/* ---- names ---- */

static void
test_queued_by_user(void **state)
{
	struct jobs *js = jobs_new();
	struct job_spec spec;
	struct job *a, *b, *c;

	(void)state;
	a = add(js);
	b = add(js);
	mkspec(&spec);
	c = jobs_add(js, &spec, 2000, 200, 1700000000.5);
	assert_int_equal(jobs_queued_by(js, 1000), 2);
	assert_int_equal(jobs_queued_by(js, 2000), 1);
	assert_int_equal(jobs_queued_by(js, 3000), 0);
	job_set_state(js, a, JOB_RUNNING);
	assert_int_equal(jobs_queued_by(js, 1000), 1);
	jobs_finish(js, b, JOB_CANCELLED, 10, NULL, NULL);
	assert_int_equal(jobs_queued_by(js, 1000), 0);
	/* Pruning a queued-then-finished job must not count it twice. */
	jobs_finish(js, c, JOB_CANCELLED, 0, NULL, NULL);
	assert_int_equal(jobs_queued_by(js, 2000), 0);
	jobs_free(js);
}

/*
 * Unique keys: held per user and key from submit while pending, running or
 * suspended; given up when the job ends, taken again by a job that goes
 * back (a retry).
 */
static void
test_unique_keys(void **state)
{
	struct jobs *js = jobs_new();
	struct job_spec spec;
	struct job *a, *b;
	uint64_t id;
	bool array, committed;

	(void)state;
	mkspec(&spec);
	spec.unique = xstrdup("k");
	a = jobs_add(js, &spec, 1000, 100, 1700000000.5);
	assert_int_equal(jobs_unique(js, 1000, "k", &id, &array, &committed), 0);
	assert_int_equal(id, a->id);
	assert_false(array);
	assert_false(committed); /* not announced yet: its submit is not stored */
	jobs_announce(js, a);
	assert_int_equal(jobs_unique(js, 1000, "k", &id, &array, &committed), 0);
	assert_true(committed);
	/* Another user's key, another key. */
	assert_int_equal(jobs_unique(js, 2000, "k", &id, &array, &committed), -1);
	assert_int_equal(jobs_unique(js, 1000, "K", &id, &array, &committed), -1);
	mkspec(&spec);
	spec.unique = xstrdup("k");
	b = jobs_add(js, &spec, 2000, 200, 1700000000.5);
	assert_int_equal(jobs_unique(js, 2000, "k", &id, &array, &committed), 0);
	assert_int_equal(id, b->id);
	/* Running and suspended hold it; the end gives it up. */
	job_set_state(js, a, JOB_RUNNING);
	job_set_state(js, a, JOB_SUSPENDED);
	assert_int_equal(jobs_unique(js, 1000, "k", &id, &array, &committed), 0);
	job_set_state(js, a, JOB_RUNNING);
	jobs_finish(js, a, JOB_FAILED, 10, NULL, NULL);
	assert_int_equal(jobs_unique(js, 1000, "k", &id, &array, &committed), -1);
	/* A retry takes the job back: the key too. */
	job_set_state(js, a, JOB_SCHEDULED);
	assert_int_equal(jobs_unique(js, 1000, "k", &id, &array, &committed), 0);
	assert_int_equal(id, a->id);
	jobs_finish(js, a, JOB_CANCELLED, 10, NULL, NULL);
	jobs_delete(js, a, NULL, NULL);
	assert_int_equal(jobs_unique(js, 1000, "k", &id, &array, &committed), -1);
	jobs_discard(js, b);
	assert_int_equal(jobs_unique(js, 2000, "k", &id, &array, &committed), -1);
	jobs_free(js);
}

/*
 * An array: one job per index sharing its spec, counts by state, its key
 * held by the array while any of its jobs is pending, its description
 * counted once for its owner, and gone with its last job.
 */
static void
test_array(void **state)
{
	struct jobs *js = jobs_new();
	struct job_array *a;
	struct job_spec spec;
	struct job *j[5];
	json_t *o, *states;
	uint64_t id, jb, out, k, spec_bytes, base;
	bool array, committed;

	(void)state;
	add(js);
	jobs_user_bytes(js, 1000, &base, &out);
	mkspec(&spec);
	spec.unique = xstrdup("nightly");
	spec_bytes = job_spec_bytes(&spec);
	a = jobs_array_new(js, &spec, 1000, 100, 1700000000.5, 5, 10, 3, 2);
	assert_int_equal(a->id, 2);
	for (k = 0; k < 5; k++) {
		j[k] = jobs_add_member(js, a, k);
		jobs_announce(js, j[k]);
	}
	a->stored = true;
	assert_int_equal(jobs_next_id(js), 7);
	assert_ptr_equal(jobs_array_find(js, 2), a);
	assert_null(jobs_array_find(js, 3));
	assert_int_equal(j[4]->id, 6);
	assert_int_equal(j[4]->array_index, 22); /* 10 + 4 * 3 */
	assert_ptr_equal(j[4]->spec.argv, a->spec.argv); /* shared */
	assert_int_equal(job_input_owner(j[4]), 2);
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(jb, base + spec_bytes);
	assert_int_equal(jobs_unique(js, 1000, "nightly", &id, &array, &committed), 0);
	assert_int_equal(id, 2);
	assert_true(array);
	assert_true(committed);

	job_set_state(js, j[0], JOB_RUNNING);
	jobs_finish(js, j[0], JOB_DONE, 100, NULL, NULL);
	jobs_finish(js, j[1], JOB_CANCELLED, 100, NULL, NULL);
	o = job_array_to_json(a);
	states = json_object_get(o, "states");
	assert_int_equal(json_integer_value(json_object_get(states, "queued")), 3);
	assert_int_equal(json_integer_value(json_object_get(states, "done")), 1);
	assert_int_equal(json_integer_value(json_object_get(states, "cancelled")), 1);
	assert_int_equal(json_integer_value(json_object_get(o, "count")), 5);
	assert_int_equal(json_integer_value(json_object_get(o, "end")), 22);
	assert_int_equal(json_integer_value(json_object_get(o, "max")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "removed")), 0);
	assert_string_equal(json_string_value(json_object_get(o, "unique")), "nightly");
	json_decref(o);

	/* The key stays while any job is pending; removed jobs count as removed. */
	jobs_delete(js, j[0], NULL, NULL);
	for (k = 2; k < 5; k++)
		jobs_finish(js, j[k], JOB_CANCELLED, 100, NULL, NULL);
	assert_int_equal(jobs_unique(js, 1000, "nightly", &id, &array, &committed), -1);
	o = job_array_to_json(a);
	assert_int_equal(json_integer_value(json_object_get(o, "removed")), 1);
	json_decref(o);
	for (k = 1; k < 4; k++)
		jobs_delete(js, j[k], NULL, NULL);
	assert_ptr_equal(jobs_array_find(js, 2), a);
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(jb, base + spec_bytes);
	/* The last job takes the array and its bytes with it. */
	jobs_delete(js, j[4], NULL, NULL);
	assert_null(jobs_array_find(js, 2));
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(jb, base);
	jobs_free(js);
}

/* What each user's jobs store (quota.h decides on it): counted from add to removal. */
static void
test_user_bytes(void **state)
{
	struct jobs *js = jobs_new();
	struct job_spec spec;
	struct job *a, *b, *c;
	uint64_t jb, out, echo;
	json_t *lab;

	(void)state;
	mkspec(&spec);
	/* "echo", "hi", "/" with their NULs */
	echo = job_spec_bytes(&spec);
	assert_int_equal(echo, 5 + 3 + 2);
	spec.env = xcalloc(3, sizeof(char *));
	spec.env[0] = xstrdup("PATH=/bin");
	spec.env[1] = xstrdup("BIG=0123456789");
	spec.name = xstrdup("nm");
	lab = json_pack("{s:s}", "k", "vv");
	assert_int_equal(labels_from_json(lab, "labels", &spec.labels, NULL), 0);
	json_decref(lab);
	spec.ndeps = 2;
	spec.deps = xcalloc(2, sizeof *spec.deps);
	assert_int_equal(job_spec_bytes(&spec), echo + 10 + 15 + 3 + 5 + 2 * sizeof *spec.deps);
	a = jobs_add(js, &spec, 1000, 100, 1700000000.5);
	b = add(js);
	mkspec(&spec);
	c = jobs_add(js, &spec, 2000, 200, 1700000000.5);
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(jb, a->job_bytes + b->job_bytes);
	assert_int_equal(jb, echo + 10 + 15 + 3 + 5 + 2 * sizeof *spec.deps + echo);
	assert_int_equal(out, 0);
	jobs_user_bytes(js, 2000, &jb, &out);
	assert_int_equal(jb, echo);
	jobs_user_bytes(js, 3000, &jb, &out);
	assert_int_equal(jb + out, 0);
	/* Output as measured, replaced by each new measure. */
	jobs_set_output_bytes(js, a, 700);
	jobs_set_output_bytes(js, b, 50);
	jobs_set_output_bytes(js, a, 1000);
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(out, 1050);
	/* Over: its description stays, environment and all (restart runs it again with it). */
	job_set_state(js, a, JOB_RUNNING);
	assert_ptr_equal(jobs_first_running(js), a);
	assert_null(TAILQ_NEXT(a, running));
	jobs_finish(js, a, JOB_DONE, 10, NULL, NULL);
	assert_null(jobs_first_running(js));
	assert_non_null(a->spec.env);
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(jb, echo + 10 + 15 + 3 + 5 + 2 * sizeof *spec.deps + echo);
	/* Removed (clean or pruning): its description and its output are given back. */
	jobs_delete(js, a, NULL, NULL);
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(jb, echo);
	assert_int_equal(out, 50);
	jobs_finish(js, b, JOB_CANCELLED, 0, NULL, NULL);
	jobs_user_bytes(js, 1000, &jb, &out);
	assert_int_equal(jb + out, 0);
	/* A discarded submit too. */
	jobs_discard(js, c);
	jobs_user_bytes(js, 2000, &jb, &out);
	assert_int_equal(jb, 0);
	jobs_free(js);
}

/* jobs_seek: the first job at or after an id (a page's cursor), also when that one is gone. */
static void
test_seek(void **state)
{
	struct jobs *js = jobs_new();
	struct job *v[10];
	size_t i;

	(void)state;
	assert_null(jobs_seek(js, 1));
	for (i = 0; i < 10; i++)
		v[i] = add(js);
	assert_ptr_equal(jobs_seek(js, 0), v[0]);
	assert_ptr_equal(jobs_seek(js, v[4]->id), v[4]);
	for (i = 3; i < 7; i++)
		jobs_finish(js, v[i], JOB_DONE, 100, NULL, NULL);
	for (i = 3; i < 7; i++)
		jobs_delete(js, v[i], NULL, NULL);
	assert_ptr_equal(jobs_seek(js, v[2]->id + 1), v[7]);
	assert_ptr_equal(jobs_seek(js, v[2]->id + 3), v[7]);
	assert_null(jobs_seek(js, v[9]->id + 1));
	jobs_free(js);
}

/* string_text_size agrees with jansson; string_cut keeps UTF-8 whole. */
static void
test_text_sizes(void **state)
{
	static const char *const strs[] = {"", "plain", "quote\" back\\slash", "\b\f\n\r\t",
					   "\x01\x1f\x7f", "\xc3\xa9\xe2\x82\xac", "/slash/"};
	json_t *s;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(strs); i++) {
		s = json_string(strs[i]);
		assert_int_equal(string_text_size(strs[i]), json_text_size(s));
		json_decref(s);
	}
	s = string_cut("abcdefghij", 20);
	assert_string_equal(json_string_value(s), "abcdefghij");
	json_decref(s);
	s = string_cut("abcdefghij", 8);
	assert_string_equal(json_string_value(s), "abcde...");
	json_decref(s);
	/* "ab" then a 3-byte euro sign: cut before it, not inside */
	s = string_cut("ab\xe2\x82\xac\xe2\x82\xacxyz", 8);
	assert_non_null(s);
	assert_string_equal(json_string_value(s), "ab\xe2\x82\xac...");
	json_decref(s);
}

/* A job object made to fit: the oldest attempts first, then long strings and lists. */
static void
test_fit(void **state)
{
	struct jobs *js = jobs_new();
	struct job *j = add(js);
	json_t *o, *a;
	size_t full, i;
	char err[2000];

	(void)state;
	memset(err, 'e', sizeof err - 1);
	err[sizeof err - 1] = '\0';
	j->attempts = json_array();
	for (i = 1; i <= 50; i++)
		json_array_append_new(j->attempts, json_pack("{s:I,s:s,s:s}", "attempt",
							     (json_int_t)i, "state", "failed",
							     "error", err));
	j->attempt = 51;
	o = job_to_json(j);
	full = json_text_size(o);
	/* errors shown cut to JOB_ERROR_SHOWN */
	a = json_object_get(o, "attempts");
	assert_true(json_string_length(json_object_get(json_array_get(a, 0), "error")) <=
		    JOB_ERROR_SHOWN);
	assert_null(json_object_get(o, "attempts_omitted"));
	json_decref(o);
	/* Fits: unchanged. */
	o = job_to_json_fit(j, full);
	assert_int_equal(json_text_size(o), full);
	assert_null(json_object_get(o, "cut"));
	json_decref(o);
	/* The oldest attempts go first. */
	o = job_to_json_fit(j, 16384);
	assert_true(json_text_size(o) <= 16384);
	a = json_object_get(o, "attempts");
	assert_true(json_array_size(a) > 0 && json_array_size(a) < 50);
	assert_int_equal(json_integer_value(json_object_get(o, "attempts_omitted")) +
			 (json_int_t)json_array_size(a), 50);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(a, 0), "attempt")),
			 51 - (json_int_t)json_array_size(a));
	assert_null(json_object_get(o, "cut"));
	json_decref(o);
	/* Then the description. */
	free(j->spec.argv[1]);
	j->spec.argv[1] = xcalloc(1, 9000);
	memset(j->spec.argv[1], 'a', 8999);
	o = job_to_json_fit(j, 4096);
	assert_true(json_text_size(o) <= 4096);
	assert_true(json_is_true(json_object_get(o, "cut")));
	assert_int_equal(json_integer_value(json_object_get(o, "attempts_omitted")), 50);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "argv"), 0)),
			    "echo");
	json_decref(o);
	jobs_free(js);
}

static void
test_state_names(void **state)
{
	static const char *const wire[JOB_NSTATES] = {
	    [JOB_QUEUED] = TASKD_STATE_QUEUED,   [JOB_RUNNING] = TASKD_STATE_RUNNING,
	    [JOB_WAITING] = TASKD_STATE_WAITING, [JOB_SCHEDULED] = TASKD_STATE_SCHEDULED,
	    [JOB_PAUSED] = TASKD_STATE_PAUSED,   [JOB_SUSPENDED] = TASKD_STATE_SUSPENDED,
	    [JOB_DONE] = TASKD_STATE_DONE,       [JOB_FAILED] = TASKD_STATE_FAILED,
	    [JOB_TIMEOUT] = TASKD_STATE_TIMEOUT, [JOB_CANCELLED] = TASKD_STATE_CANCELLED,
	    [JOB_LOST] = TASKD_STATE_LOST,
	};
	static const char *const unknown[] = {"", "bogus", "Queued", "DONE", "done ", "unknown"};
	int st;
	size_t i;

	(void)state;
	for (st = 0; st < JOB_NSTATES; st++) {
		assert_string_equal(job_state_name(st), wire[st]);
		assert_int_equal(job_state_parse(job_state_name(st)), st);
		assert_int_equal(job_state_pending(st), st == JOB_QUEUED || st == JOB_WAITING ||
							st == JOB_SCHEDULED || st == JOB_PAUSED);
		assert_int_equal(job_state_final(st), st != JOB_RUNNING && st != JOB_SUSPENDED &&
							  !job_state_pending(st));
	}
	for (i = 0; i < nitems(unknown); i++)
		assert_int_equal(job_state_parse(unknown[i]), -1);
	assert_string_equal(job_state_name(JOB_NSTATES), "unknown");
	assert_null(job_pool_name(POOL_NONE));
	assert_string_equal(job_pool_name(POOL_THREAD), "thread");
	assert_string_equal(job_pool_name(POOL_PROCESS), "process");
}

/* Observers: announce (prev -1), every state change with the state left, unobserve. */
struct seen {
	uint64_t id[8];
	int prev[8];
	int state[8];
	int n;
};

static void
observed(struct job *j, int prev, void *arg)
{
	struct seen *sn = arg;

	assert_true(sn->n < 8);
	sn->id[sn->n] = j->id;
	sn->prev[sn->n] = prev;
	sn->state[sn->n] = j->state;
	sn->n++;
}

static void
test_observers(void **state)
{
	struct jobs *js = jobs_new();
	struct seen a = { 0 }, b = { 0 };
	struct job_observer oa = { .changed = observed, .arg = &a };
	struct job_observer ob = { .changed = observed, .arg = &b };
	struct job *j;

	(void)state;
	jobs_observe(js, &oa);
	jobs_observe(js, &ob);
	j = add_new(js);
	assert_int_equal(a.n, 0); /* not before it is announced */
	job_set_state(js, j, JOB_WAITING); /* life_prepare: not news either */
	job_set_state(js, j, JOB_QUEUED);
	assert_int_equal(a.n, 0);
	jobs_announce(js, j);
	job_set_state(js, j, JOB_RUNNING);
	jobs_unobserve(js, &ob);
	jobs_finish(js, j, JOB_DONE, 10, NULL, NULL);
	assert_int_equal(a.n, 3);
	assert_int_equal(a.prev[0], -1);
	assert_int_equal(a.state[0], JOB_QUEUED);
	assert_int_equal(a.prev[1], JOB_QUEUED);
	assert_int_equal(a.state[1], JOB_RUNNING);
	assert_int_equal(a.prev[2], JOB_RUNNING);
	assert_int_equal(a.state[2], JOB_DONE);
	assert_int_equal(a.id[2], j->id);
	assert_int_equal(b.n, 2);
	/* clean: jobs_delete drops a finished job (and only that one). */
	add(js);
	jobs_delete(js, j, NULL, NULL);
	assert_null(jobs_find(js, 1));
	assert_int_equal(jobs_total(js), 1);
	assert_int_equal(jobs_count(js, JOB_DONE), 0);
	jobs_free(js);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_observers),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_queued_by_user),
	    cmocka_unit_test(test_user_bytes),
	    cmocka_unit_test(test_unique_keys),
	    cmocka_unit_test(test_array),
	    cmocka_unit_test(test_seek),
	    cmocka_unit_test(test_text_sizes),
	    cmocka_unit_test(test_fit),
	    cmocka_unit_test(test_find),
	    cmocka_unit_test(test_find_after_growth),
	    cmocka_unit_test(test_counts),
	    cmocka_unit_test(test_waiters),
	    cmocka_unit_test(test_discard),
	    cmocka_unit_test(test_waiter_unwaits_other),
	    cmocka_unit_test(test_waiter_frees_itself),
	    cmocka_unit_test(test_prune),
	    cmocka_unit_test(test_prune_no_cb),
	    cmocka_unit_test(test_keep_zero),
	    cmocka_unit_test(test_prune_waits_for_announce),
	    cmocka_unit_test(test_list_order),
	    cmocka_unit_test(test_json_queued),
	    cmocka_unit_test(test_json_finished),
	    cmocka_unit_test(test_json_cancelled_queued),
	    cmocka_unit_test(test_state_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
