/*
 * Handler workers (daemon/hpool.c): the sizing plan as a pure function,
 * and the worker state machine with real processes (the taskd binary named
 * by $TASKD starts them; the C echo worker next to it, linked with
 * libtaskd-worker.so, and small shell
 * workers that misbehave): hello then jobs, garbage before hello, a deaf
 * worker past a job's timeout, a crash under a job. Without $TASKD the live
 * tests are skipped. tests/e2e/test_handlers.py covers the rest end to end.
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

#include <event2/event.h>
#include <jansson.h>
#include <libgen.h>
#include <signal.h>
#include <unistd.h>

#include "clock.h"
#include "exec.h"
#include "hpool.h"
#include "xmalloc.h"

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

/* --- live ------------------------------------------------------------ */

struct live {
	struct event_base *base;
	struct hpool *hp;
	struct run *done[8];
	int ndone;
};

static void
done_cb(struct run *r, void *arg)
{
	struct live *l = arg;

	assert_true(l->ndone < 8);
	l->done[l->ndone++] = r;
}

static const char *
taskd_path(void)
{
	const char *t = getenv("TASKD");

	return t != NULL && access(t, X_OK) == 0 ? t : NULL;
}

static void
live_start(struct live *l, char **command, double start_timeout)
{
	struct hpool_callbacks cb = {.done = done_cb, .arg = l};
	struct hpool_limits lim = {.cpu_max = 2, .io_max = 4, .kill_grace = 0.1,
				   .max_frame = 1 << 20, .max_output = 0};
	struct handler_config h;

	memset(l, 0, sizeof *l);
	memset(&h, 0, sizeof h);
	h.name = "t";
	h.command = command;
	h.class = CLASS_IO;
	h.min_workers = 1;
	h.max_workers = 1;
	h.concurrency = 1;
	h.idle_timeout = 30;
	h.start_timeout = start_timeout;
	h.uid = geteuid();
	h.gid = getegid();
	h.cwd = "/";
	l->base = event_base_new();
	l->hp = hpool_new(l->base, taskd_path(), &cb);
	hpool_configure(l->hp, &h, 1, &lim);
}

static void
live_stop(struct live *l)
{
	int i;

	hpool_free(l->hp);
	for (i = 0; i < l->ndone; i++)
		run_free(l->done[i]);
	event_base_free(l->base);
}

/* Run the loop until cond(l) or 10 s. */
static int
spin_until(struct live *l, int (*cond)(struct live *))
{
	double deadline = clock_now(CLOCK_MONOTONIC) + 10;
	struct timeval tick = {0, 10000};

	while (!cond(l)) {
		if (clock_now(CLOCK_MONOTONIC) > deadline)
			return 0;
		event_base_loopexit(l->base, &tick);
		event_base_dispatch(l->base);
	}
	return 1;
}

static json_t *
handler_json(struct live *l)
{
	json_t *a = hpool_to_json(l->hp), *h = json_incref(json_array_get(a, 0));

	json_decref(a);
	return h;
}

static int
ready(struct live *l)
{
	return hpool_room(hpool_find(l->hp, "t"), CLASS_IO);
}

static int
one_done(struct live *l)
{
	return l->ndone >= 1;
}

static int
has_error(struct live *l)
{
	json_t *h = handler_json(l);
	int yes = json_is_string(json_object_get(h, "last_error"));

	json_decref(h);
	return yes;
}

static struct run *
job(uint64_t id, const char *arg, double timeout)
{
	struct run *r = run_new(false);

	r->spec.job_id = id;
	r->spec.argv = xcalloc(2, sizeof(char *));
	r->spec.argv[0] = xstrdup(arg);
	r->spec.timeout = timeout;
	return r;
}

static void
test_live_echo(void **state)
{
	char echo[4096], *cmd[2] = {echo, NULL}, *dir;
	struct live l;
	json_t *h;

	if (taskd_path() == NULL)
		skip();
	dir = xstrdup(taskd_path());
	snprintf(echo, sizeof echo, "%s/taskd-echo-shared", dirname(dir));
	free(dir);
	live_start(&l, cmd, 10);
	assert_true(spin_until(&l, ready));
	assert_int_equal(hpool_submit(hpool_find(l.hp, "t"), job(7, "hello", 0), CLASS_IO), 0);
	/* concurrency 1: no room for a second job now */
	assert_false(hpool_room(hpool_find(l.hp, "t"), CLASS_IO));
	assert_true(spin_until(&l, one_done));
	assert_int_equal(l.done[0]->res.status, RUN_EXITED);
	assert_int_equal(l.done[0]->res.exit_code, 0);
	assert_true(l.done[0]->res.result_json);
	assert_string_equal(l.done[0]->res.result, "\"hello\"");
	assert_true(l.done[0]->worker_pid > 0);
	h = handler_json(&l);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(h, "counters"), "done")),
			 1);
	json_decref(h);
	live_stop(&l);
}

static void
test_live_garbage_before_hello(void **state)
{
	char *cmd[] = {"/bin/sh", "-c", "echo nonsense >&3; exec sleep 30", NULL};
	struct live l;
	json_t *h;

	if (taskd_path() == NULL)
		skip();
	live_start(&l, cmd, 10);
	assert_true(spin_until(&l, has_error));
	h = handler_json(&l);
	assert_non_null(strstr(json_string_value(json_object_get(h, "last_error")),
			       "protocol error: not JSON"));
	assert_true(json_integer_value(json_object_get(h, "failures")) >= 1);
	assert_true(json_real_value(json_object_get(h, "backoff")) > 0 ||
		    json_integer_value(json_object_get(json_object_get(h, "counters"),
						       "start_failures")) >= 1);
	json_decref(h);
	live_stop(&l);
}

static void
test_live_deaf_worker_times_out(void **state)
{
	char *cmd[] = {"/bin/sh", "-c",
		       "printf '{\"t\":\"hello\",\"protocol\":1,\"concurrency\":1}\\n' >&3; "
		       "exec sleep 30", NULL};
	struct live l;
	double t0;

	if (taskd_path() == NULL)
		skip();
	live_start(&l, cmd, 10);
	assert_true(spin_until(&l, ready));
	t0 = clock_now(CLOCK_MONOTONIC);
	assert_int_equal(hpool_submit(hpool_find(l.hp, "t"), job(9, "x", 0.2), CLASS_IO), 0);
	assert_true(spin_until(&l, one_done));
	/* timeout 0.2 s, cancel, SIGTERM after 0.1 s (sleep dies of it) */
	assert_true(clock_now(CLOCK_MONOTONIC) - t0 < 5);
	assert_int_equal(l.done[0]->res.status, RUN_TIMEOUT);
	live_stop(&l);
}

static void
test_live_crash_under_a_job(void **state)
{
	char *cmd[] = {"/bin/sh", "-c",
		       "printf '{\"t\":\"hello\",\"protocol\":1,\"concurrency\":1}\\n' >&3; "
		       "read line <&3; exit 3", NULL};
	struct live l;

	if (taskd_path() == NULL)
		skip();
	live_start(&l, cmd, 10);
	assert_true(spin_until(&l, ready));
	assert_int_equal(hpool_submit(hpool_find(l.hp, "t"), job(11, "x", 0), CLASS_IO), 0);
	assert_true(spin_until(&l, one_done));
	assert_int_equal(l.done[0]->res.status, RUN_LOST);
	assert_non_null(strstr(l.done[0]->res.error, "exited with status 3"));
	live_stop(&l);
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
		cmocka_unit_test(test_live_echo),
		cmocka_unit_test(test_live_garbage_before_hello),
		cmocka_unit_test(test_live_deaf_worker_times_out),
		cmocka_unit_test(test_live_crash_under_a_job),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
