/*
 * Unit tests for daemon/persist.c, which keeps the job table and the store
 * in step, on a real store in a temporary directory and a real event loop:
 * a submit's waiter is answered after its commit, changes nobody waits for
 * are committed soon after anyway, pruned jobs leave the store, class
 * pauses are stored, a failed commit is reported and retried, and
 * recovery re-creates the table (running jobs lost, queued ones queued
 * again in id order, records of taskd 0.1.0 written back in the current
 * version, an unreadable row refused).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "builtin.h"
#include "clock.h"
#include "job.h"
#include "persist.h"
#include "record.h"
#include "store.h"
#include "xmalloc.h"
#include "unit.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* A row of tests/e2e/fixtures/records-v1.db (job 11, queued), as taskd 0.1.0 wrote it. */
static const char v1_queued[] =
	"{\"spec\":{\"type\":0,\"argv\":[\"true\"],\"env\":[\"A=1\"],\"cwd\":\"/\",\"name\":null,"
	"\"class\":2,\"priority\":3,\"timeout\":0.0,\"labels\":{\"k\":\"v\"}},\"uid\":0,\"gid\":0,"
	"\"routed\":0,\"pool\":0,\"worker\":-1,\"route_key\":\"\",\"submitted_at\":"
	"1796312793.2479222,\"started_at\":0.0,\"finished_at\":0.0,\"res\":{\"t\":\"done\","
	"\"job\":11,\"status\":0,\"exit_code\":-1,\"signal\":0,\"cpu_user\":0.0,\"cpu_sys\":0.0,"
	"\"max_rss_kb\":-1,\"wall\":0.0,\"runq_wait\":0.0,\"started_at\":0.0,\"finished_at\":0.0,"
	"\"out_bytes\":0,\"err_bytes\":0,\"out_truncated\":false,\"err_truncated\":false,\"pid\":0,"
	"\"result\":null,\"error\":null,\"rss_kb\":-1},\"life\":{\"deps\":[],\"run_at\":0.0,"
	"\"retries\":0,\"retry_delay\":1.0,\"attempt\":1,\"attempts\":null,\"due_at\":0.0}}";

struct fx {
	char dir[64];
	struct event_base *base;
	struct store *st;
	struct jobs *js;
	struct persist *p;
};

struct answer {
	int calls;
	bool ok;
	char *cause;
};

static void
committed_cb(bool ok, const char *cause, void *arg)
{
	struct answer *a = arg;

	a->calls++;
	a->ok = ok;
	free(a->cause);
	a->cause = cause != NULL ? xstrdup(cause) : NULL;
}

/* Run the loop until *flag is set (or seconds pass). */
static void
run_until(struct fx *f, const int *flag, double seconds)
{
	double deadline = clock_now(CLOCK_MONOTONIC) + seconds;

	while (*flag == 0 && clock_now(CLOCK_MONOTONIC) < deadline) {
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		if (*flag == 0)
			usleep(1000);
	}
}

static void
open_all(struct fx *f)
{
	char *cause = NULL;

	f->st = store_open(f->dir, &cause);
	if (f->st == NULL)
		fail_msg("store_open: %s", cause);
	f->base = event_base_new();
	f->js = jobs_new();
	f->p = persist_new(f->base, f->st, f->js);
	persist_configure(f->p, FSYNC_ALWAYS, 0);
}

static void
close_all(struct fx *f)
{
	persist_free(f->p);
	store_close(f->st);
	jobs_free(f->js);
	event_base_free(f->base);
	f->p = NULL;
	f->st = NULL;
	f->js = NULL;
	f->base = NULL;
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);

	snprintf(f->dir, sizeof f->dir, "/tmp/test-persist.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	open_all(f);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	if (f->p != NULL)
		close_all(f);
	unit_rmtree(f->dir);
	free(f);
	return 0;
}

static struct job *
add(struct fx *f, const char *argv0)
{
	struct job_spec spec;

	memset(&spec, 0, sizeof spec);
	spec.type = BUILTIN_EXEC;
	spec.argv = xcalloc(2, sizeof(char *));
	spec.argv[0] = xstrdup(argv0);
	spec.cwd = xstrdup("/");
	spec.class = CLASS_IO;
	return jobs_add(f->js, &spec, 1000, 1000, 1700000000.0);
}

/* A commit somebody waits for: run it, and check it succeeded. */
static void
commit(struct fx *f)
{
	struct answer a = { 0 };

	persist_after_commit(f->p, committed_cb, &a);
	run_until(f, &a.calls, 5);
	assert_int_equal(a.calls, 1);
	if (!a.ok)
		fail_msg("commit failed: %s", a.cause);
	free(a.cause);
}

struct row {
	uint64_t id;
	char state[16];
	char *record;
};

struct rows {
	struct row v[64];
	size_t n;
};

static int
row_cb(uint64_t id, const char *state, const char *record, void *arg)
{
	struct rows *r = arg;

	assert_true(r->n < nitems(r->v));
	r->v[r->n].id = id;
	snprintf(r->v[r->n].state, sizeof r->v[r->n].state, "%s", state);
	r->v[r->n].record = xstrdup(record);
	r->n++;
	return 0;
}

static void
load_rows(struct fx *f, struct rows *r)
{
	char *cause = NULL;

	memset(r, 0, sizeof *r);
	if (store_load(f->st, row_cb, r, &cause) != 0)
		fail_msg("store_load: %s", cause);
}

static void
free_rows(struct rows *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		free(r->v[i].record);
	r->n = 0;
}

/* The stored state of job id, "" if it has no row. */
static const char *
stored_state(struct fx *f, uint64_t id)
{
	static char out[16];
	struct rows r;
	size_t i;

	load_rows(f, &r);
	out[0] = '\0';
	for (i = 0; i < r.n; i++)
		if (r.v[i].id == id)
			snprintf(out, sizeof out, "%s", r.v[i].state);
	free_rows(&r);
	return out;
}

static void
test_submit_commit(void **state)
{
	struct fx *f = *state;
	struct job *a = add(f, "a"), *b = add(f, "b"), *back;
	struct rows r;
	char *cause = NULL;
	int version;
	uint64_t array;

	(void)state;
	commit(f);
	load_rows(f, &r);
	assert_int_equal(r.n, 2);
	assert_int_equal(r.v[0].id, a->id);
	assert_int_equal(r.v[1].id, b->id);
	assert_string_equal(r.v[0].state, "queued");
	/* Each row is the job's record, in the current version. */
	back = record_decode(r.v[1].id, r.v[1].state, r.v[1].record, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(version, RECORD_VERSION);
	assert_string_equal(back->spec.argv[0], "b");
	job_free(back);
	free_rows(&r);
	/* A commit with nothing to write still answers. */
	commit(f);
}

static void
test_changes_nobody_waits_for(void **state)
{
	struct fx *f = *state;
	struct job *j = add(f, "x");
	uint64_t id = j->id;
	double deadline;

	(void)state;
	commit(f);
	jobs_announce(f->js, j);
	j->started_at = 1700000001.0;
	job_set_state(f->js, j, JOB_RUNNING);
	/* Within a few milliseconds (persist.c's lazy delay), without a waiter. */
	deadline = clock_now(CLOCK_MONOTONIC) + 2;
	while (strcmp(stored_state(f, id), "running") != 0 &&
	       clock_now(CLOCK_MONOTONIC) < deadline) {
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	assert_string_equal(stored_state(f, id), "running");
	/* Finished and pruned at once (keep 0): its row goes. */
	jobs_finish(f->js, j, JOB_DONE, 0, NULL, NULL);
	assert_null(jobs_find(f->js, id));
	commit(f);
	assert_string_equal(stored_state(f, id), "");
	/* Its id is never handed out again, even though no row remembers it. */
	assert_true(store_next_id(f->st) > id);
}

static void
test_paused(void **state)
{
	struct fx *f = *state;
	char *cause = NULL;
	bool cpu, io;
	int64_t v;

	(void)state;
	assert_int_equal(persist_get_paused(f->p, &cpu, &io, &cause), 0);
	assert_false(cpu);
	assert_false(io);
	persist_set_paused(f->p, true, false);
	commit(f);
	assert_int_equal(store_meta_get(f->st, "paused_cpu", &v, &cause), 0);
	assert_int_equal(v, 1);
	assert_int_equal(persist_get_paused(f->p, &cpu, &io, &cause), 0);
	assert_true(cpu);
	assert_false(io);
	/* It survives a restart. */
	close_all(f);
	open_all(f);
	assert_int_equal(persist_get_paused(f->p, &cpu, &io, &cause), 0);
	assert_true(cpu);
	assert_false(io);
}

static void
test_failed_commit_is_retried(void **state)
{
	struct fx *f = *state;
	struct answer a = { 0 };
	struct job *j;
	char *cause = NULL, *big;
	double deadline;

	(void)state;
	commit(f);
	/* The database may not grow: a large job does not fit. */
	assert_int_equal(store_set_max_size(f->st, 4096, &cause), 0); /* its current size */
	j = add(f, "small");
	big = xcalloc(1, 256 << 10);
	memset(big, 'x', (256 << 10) - 1);
	free(j->spec.argv[0]);
	j->spec.argv[0] = big;
	persist_after_commit(f->p, committed_cb, &a);
	run_until(f, &a.calls, 5);
	assert_int_equal(a.calls, 1);
	assert_false(a.ok);
	assert_non_null(a.cause);
	assert_non_null(strstr(a.cause, "full"));
	assert_string_equal(stored_state(f, j->id), "");
	/* Room again: the change is still pending and goes in with the retry (1 s). */
	assert_int_equal(store_set_max_size(f->st, 0, &cause), 0);
	deadline = clock_now(CLOCK_MONOTONIC) + 5;
	while (strcmp(stored_state(f, j->id), "queued") != 0 &&
	       clock_now(CLOCK_MONOTONIC) < deadline) {
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(5000);
	}
	assert_string_equal(stored_state(f, j->id), "queued");
	free(a.cause);
}

struct requeued {
	uint64_t ids[8];
	size_t n;
};

static void
requeue_cb(struct job *j, void *arg)
{
	struct requeued *r = arg;

	assert_true(r->n < nitems(r->ids));
	r->ids[r->n++] = j->id;
}

static void
test_recover(void **state)
{
	struct fx *f = *state;
	struct requeued rq = { .n = 0 };
	struct job *q1, *run, *fin, *q2, *j;
	uint64_t q1id, runid, finid, q2id;
	char *cause = NULL, *rec;
	json_t *o;
	struct rows r;
	size_t i;

	(void)state;
	q1 = add(f, "q1");
	run = add(f, "run");
	fin = add(f, "fin");
	q2 = add(f, "q2");
	q1id = q1->id, runid = run->id, finid = fin->id, q2id = q2->id;
	commit(f);
	jobs_announce(f->js, run);
	jobs_announce(f->js, fin);
	run->started_at = 1700000001.0;
	job_set_state(f->js, run, JOB_RUNNING);
	jobs_finish(f->js, fin, JOB_DONE, 100, NULL, NULL);
	commit(f);
	close_all(f);
	/* A row taskd 0.1.0 wrote, beside them. */
	f->st = store_open(f->dir, &cause);
	assert_non_null(f->st);
	assert_int_equal(store_put(f->st, 11, "queued", v1_queued, &cause), 0);
	store_close(f->st);

	open_all(f);
	assert_int_equal(persist_recover(f->p, NULL, 0, requeue_cb, &rq, &cause), 0);
	assert_int_equal(jobs_total(f->js), 5);
	/* Queued ones again, in id order. */
	assert_int_equal(rq.n, 3);
	assert_int_equal(rq.ids[0], q1id);
	assert_int_equal(rq.ids[1], q2id);
	assert_int_equal(rq.ids[2], 11);
	j = jobs_find(f->js, runid);
	assert_int_equal(j->state, JOB_LOST);
	assert_string_equal(j->res.error, "taskd stopped while the job was running");
	assert_true(j->finished_at > 0);
	assert_int_equal(jobs_find(f->js, finid)->state, JOB_DONE);
	j = jobs_find(f->js, 11);
	assert_int_equal(j->spec.priority, 3);
	assert_true(jobs_next_id(f->js) >= 12);
	/* The first commit writes the lost job, and the old record in the current version. */
	commit(f);
	load_rows(f, &r);
	for (i = 0; i < r.n; i++) {
		o = json_loads(r.v[i].record, 0, NULL);
		assert_non_null(o);
		if (json_integer_value(json_object_get(o, "v")) != RECORD_VERSION)
			fail_msg("job %llu still stored as %s", (unsigned long long)r.v[i].id,
				 r.v[i].record);
		if (r.v[i].id == runid)
			assert_string_equal(r.v[i].state, "lost");
		json_decref(o);
	}
	assert_int_equal(r.n, 5);
	free_rows(&r);
	/* An unreadable row: recovery refuses, naming it (no job is dropped silently). */
	close_all(f);
	f->st = store_open(f->dir, &cause);
	rec = xstrdup("{\"v\":2}");
	assert_int_equal(store_put(f->st, 12, "queued", rec, &cause), 0);
	free(rec);
	store_close(f->st);
	open_all(f);
	assert_int_equal(persist_recover(f->p, NULL, 0, requeue_cb, &rq, &cause), -1);
	assert_non_null(strstr(cause, "job 12: unreadable record"));
	free(cause);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_submit_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_changes_nobody_waits_for, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_paused, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_failed_commit_is_retried, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_recover, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
