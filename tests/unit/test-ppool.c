/*
 * Process pool: the sizing plan as a pure function for each mode, and a
 * live pool of real workers (the taskd binary named by $TASKD, run with
 * --worker): built-in and command jobs, kill -9 of a busy worker, cancel of
 * a command and of a built-in, recycling, and no worker left after free.
 * Without $TASKD the live tests are skipped.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>

#include "builtin.h"
#include "exec.h"
#include "ppool.h"
#include "xmalloc.h"

/* --- plan ------------------------------------------------------------- */

static struct ppool_config
config(enum ppool_mode mode, int min, int max, int min_spare, int max_spare)
{
	struct ppool_config c = {
	    .mode = mode,
	    .min_workers = min,
	    .max_workers = max,
	    .min_spare = min_spare,
	    .max_spare = max_spare,
	    .idle_timeout = 10,
	};
	return c;
}

/* alive = idle + starting + busy */
static int
plan(const struct ppool_config *c, int idle, int starting, int busy, size_t pending, int expired)
{
	struct ppool_state st = {
	    .alive = idle + starting + busy,
	    .idle = idle,
	    .starting = starting,
	    .busy = busy,
	    .pending = pending,
	    .idle_expired = expired,
	};
	return ppool_plan(c, &st);
}

static void
test_plan_static(void **state)
{
	struct ppool_config c = config(PPOOL_STATIC, 0, 4, 0, 0);

	assert_int_equal(plan(&c, 0, 0, 0, 0, 0), 4);
	assert_int_equal(plan(&c, 1, 1, 0, 0, 0), 2);
	assert_int_equal(plan(&c, 2, 0, 2, 100, 0), 0); /* full: pending changes nothing */
	assert_int_equal(plan(&c, 4, 0, 0, 0, 4), 0);   /* static never retires for idleness */
	/* Shrunk by a reload: surplus idle ones go, busy ones stay. */
	c.max_workers = 2;
	assert_int_equal(plan(&c, 3, 0, 1, 0, 0), -2);
	assert_int_equal(plan(&c, 0, 0, 4, 0, 0), 0);
	assert_int_equal(plan(&c, 1, 0, 3, 0, 0), -1);
}

static void
test_plan_dynamic(void **state)
{
	struct ppool_config c = config(PPOOL_DYNAMIC, 2, 8, 1, 3);

	assert_int_equal(plan(&c, 0, 0, 0, 0, 0), 2);  /* min_workers */
	assert_int_equal(plan(&c, 2, 0, 0, 0, 0), 0);  /* steady */
	assert_int_equal(plan(&c, 0, 0, 2, 0, 0), 1);  /* min_spare */
	assert_int_equal(plan(&c, 0, 1, 2, 0, 0), 0);  /* a spare is starting */
	assert_int_equal(plan(&c, 1, 0, 2, 4, 0), 4);  /* pending beyond idle: grow */
	assert_int_equal(plan(&c, 1, 0, 6, 10, 0), 1); /* never above max */
	assert_int_equal(plan(&c, 0, 0, 8, 10, 0), 0);
	assert_int_equal(plan(&c, 5, 0, 0, 0, 0), -2); /* above max_spare */
	assert_int_equal(plan(&c, 5, 0, 2, 0, 0), -2);
	assert_int_equal(plan(&c, 3, 0, 0, 0, 0), 0); /* at max_spare */
	assert_int_equal(plan(&c, 5, 0, 0, 2, 0), 0); /* pending will use them */
	/* Never below min_workers even above max_spare. */
	c = config(PPOOL_DYNAMIC, 4, 8, 0, 1);
	assert_int_equal(plan(&c, 4, 0, 0, 0, 0), 0);
	assert_int_equal(plan(&c, 5, 0, 0, 0, 0), -1);
}

static void
test_plan_ondemand(void **state)
{
	struct ppool_config c = config(PPOOL_ONDEMAND, 0, 4, 0, 0);

	assert_int_equal(plan(&c, 0, 0, 0, 0, 0), 0); /* nothing kept */
	assert_int_equal(plan(&c, 0, 0, 0, 2, 0), 2); /* one per pending job */
	assert_int_equal(plan(&c, 0, 1, 0, 2, 0), 1);
	assert_int_equal(plan(&c, 1, 0, 1, 10, 0), 2); /* up to max */
	assert_int_equal(plan(&c, 0, 0, 4, 10, 0), 0);
	assert_int_equal(plan(&c, 3, 0, 0, 0, 0), 0);  /* idle, not expired */
	assert_int_equal(plan(&c, 3, 0, 0, 0, 2), -2); /* expired idle retire */
	assert_int_equal(plan(&c, 3, 0, 0, 2, 2), -1); /* but pending jobs take some */
	assert_int_equal(plan(&c, 2, 0, 0, 2, 2), 0);
}

/* --- live ------------------------------------------------------------- */

static struct event_base *base;
static const char *taskd;
static struct run *finished[16];
static int nfinished;

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
done_cb(struct run *r, void *arg)
{
	assert_true(nfinished < 16);
	finished[nfinished++] = r;
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
}

/* Run the loop until *count reaches want (or idle workers do); false after secs. */
static bool
wait_idle(struct ppool *pp, int want, double secs)
{
	double deadline = now() + secs;

	while (ppool_idle(pp) < want) {
		if (now() > deadline)
			return false;
		event_base_loop(base, EVLOOP_ONCE);
	}
	return true;
}

static struct run *
wait_done(double secs)
{
	double deadline = now() + secs;

	while (nfinished == 0) {
		if (now() > deadline)
			return NULL;
		event_base_loop(base, EVLOOP_ONCE);
	}
	nfinished--;
	return finished[nfinished];
}

static int
setup(void **state)
{
	struct timeval tv = {0, 50000};
	struct event *tick;

	taskd = getenv("TASKD");
	base = event_base_new();
	/* Keeps EVLOOP_ONCE from blocking for long. */
	tick = event_new(base, -1, EV_PERSIST, tick_cb, NULL);
	event_add(tick, &tv);
	*state = tick;
	return 0;
}

static int
teardown(void **state)
{
	event_free(*state);
	event_base_free(base);
	return 0;
}

static struct ppool *
live_pool(int max, int max_jobs)
{
	struct ppool_config c = config(PPOOL_STATIC, 0, max, 0, 0);
	struct ppool_callbacks cb = {.done = done_cb};
	struct ppool *pp;

	if (taskd == NULL)
		skip();
	c.max_jobs_per_worker = max_jobs;
	nfinished = 0;
	pp = ppool_new(base, &c, taskd, NULL, &cb);
	assert_true(wait_idle(pp, max, 5));
	return pp;
}

static struct run *
job(uint64_t id, int type, const char *a0, const char *a1, const char *a2)
{
	struct run *r = run_new(false);
	char *argv[] = {(char *)a0, (char *)a1, (char *)a2, NULL};

	r->spec.job_id = id;
	r->spec.type = type;
	r->spec.argv = strv_dup(argv);
	r->spec.kill_grace = 0.5;
	return r;
}

static bool
pid_gone(pid_t pid)
{
	return kill(pid, 0) == -1 && errno == ESRCH;
}

/* Free the pool; every worker it had must be gone (reaped) after. */
static void
free_pool(struct ppool *pp)
{
	json_t *j = ppool_to_json(pp), *w;
	pid_t pids[16];
	size_t i, n = 0;

	json_array_foreach(json_object_get(j, "workers"), i, w) {
		if (n < 16)
			pids[n++] = (pid_t)json_integer_value(json_object_get(w, "pid"));
	}
	json_decref(j);
	ppool_free(pp);
	for (i = 0; i < n; i++)
		assert_true(pid_gone(pids[i]));
}

/* Titled in ps, and holding nothing but 0, 1, 2 and its socket. */
static void
check_worker_process(const json_t *w)
{
	int pid = (int)json_integer_value(json_object_get(w, "pid"));
	int index = (int)json_integer_value(json_object_get(w, "index"));
	char path[64], cmd[256] = "", want[64];
	struct dirent *d;
	FILE *f;
	DIR *dir;
	int n = 0;

	assert_string_equal(json_string_value(json_object_get(w, "state")), "idle");
	assert_true(json_is_null(json_object_get(w, "job")));
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_true(fread(cmd, 1, sizeof cmd - 1, f) > 0);
	fclose(f);
	snprintf(want, sizeof want, "taskd: worker %d idle", index);
	assert_string_equal(cmd, want);
	snprintf(path, sizeof path, "/proc/%d/fd", pid);
	dir = opendir(path);
	assert_non_null(dir);
	while ((d = readdir(dir)) != NULL)
		if (d->d_name[0] != '.')
			n++;
	closedir(dir);
	assert_int_equal(n, 4);
}

static void
test_live_jobs(void **state)
{
	struct ppool *pp = live_pool(2, 0);
	char out[] = "/tmp/test-ppool-XXXXXX";
	struct run *r, *got;
	char buf[16] = "";
	FILE *f;
	json_t *j;
	int fd;

	j = ppool_to_json(pp);
	assert_string_equal(json_string_value(json_object_get(j, "mode")), "static");
	assert_int_equal(json_array_size(json_object_get(j, "workers")), 2);
	check_worker_process(json_array_get(json_object_get(j, "workers"), 0));
	json_decref(j);

	r = job(1, BUILTIN_SUMSQ, "1000", NULL, NULL);
	assert_int_equal(ppool_submit(pp, r), 0);
	assert_true(r->worker_pid > 0);
	got = wait_done(5);
	assert_ptr_equal(got, r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_string_equal(r->res.result, "332833500");
	run_free(r);

	fd = mkstemp(out);
	assert_true(fd >= 0);
	close(fd);
	r = job(2, BUILTIN_EXEC, "sh", "-c", "echo hi; exit 3");
	r->spec.out_path = xstrdup(out);
	assert_int_equal(ppool_submit(pp, r), 0);
	assert_ptr_equal(wait_done(5), r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 3);
	assert_true(r->res.pid > 0);
	f = fopen(out, "r");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof buf, f));
	fclose(f);
	unlink(out);
	assert_string_equal(buf, "hi\n");
	run_free(r);
	free_pool(pp);
}

static void
test_live_kill(void **state)
{
	struct ppool *pp = live_pool(2, 0);
	struct run *r;

	r = job(3, BUILTIN_SLEEP, "30", NULL, NULL);
	assert_int_equal(ppool_submit(pp, r), 0);
	assert_int_equal(ppool_idle(pp), 1);
	assert_int_equal(kill(r->worker_pid, SIGKILL), 0);
	assert_ptr_equal(wait_done(5), r);
	assert_int_equal(r->res.status, RUN_LOST);
	assert_non_null(r->res.error);
	assert_non_null(strstr(r->res.error, "killed by signal 9"));
	assert_true(pid_gone(r->worker_pid));
	run_free(r);
	assert_true(wait_idle(pp, 2, 5)); /* replaced */
	free_pool(pp);
}

static void
test_live_cancel(void **state)
{
	struct ppool *pp = live_pool(1, 0);
	struct run *r;
	double t0;

	/* A command: the worker stops it and answers. */
	r = job(4, BUILTIN_EXEC, "sleep", "30", NULL);
	assert_int_equal(ppool_submit(pp, r), 0);
	event_base_loop(base, EVLOOP_ONCE); /* let the worker start it */
	usleep(100000);
	t0 = now();
	ppool_cancel(pp, r);
	assert_ptr_equal(wait_done(5), r);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_true(now() - t0 < 3);
	assert_true(r->res.pid > 0);
	assert_true(pid_gone(r->res.pid));
	run_free(r);
	assert_true(wait_idle(pp, 1, 5));

	/* A built-in: its worker is killed and replaced. */
	r = job(5, BUILTIN_SPIN, "30", NULL, NULL);
	assert_int_equal(ppool_submit(pp, r), 0);
	ppool_cancel(pp, r);
	assert_ptr_equal(wait_done(5), r);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	run_free(r);
	assert_true(wait_idle(pp, 1, 5));
	free_pool(pp);
}

static void
test_live_recycle(void **state)
{
	struct ppool *pp = live_pool(1, 2);
	pid_t pids[3];
	struct run *r;
	int i;

	for (i = 0; i < 3; i++) {
		assert_true(wait_idle(pp, 1, 5));
		r = job((uint64_t)(10 + i), BUILTIN_NOOP, NULL, NULL, NULL);
		assert_int_equal(ppool_submit(pp, r), 0);
		assert_ptr_equal(wait_done(5), r);
		assert_int_equal(r->res.status, RUN_EXITED);
		pids[i] = r->worker_pid;
		run_free(r);
	}
	assert_int_equal(pids[0], pids[1]);
	assert_int_not_equal(pids[1], pids[2]);
	free_pool(pp);
	assert_true(pid_gone(pids[0]));
}

/* A worker binary that dies at once: failed starts back off exponentially. */
static void
test_live_backoff(void **state)
{
	struct ppool_config c = config(PPOOL_STATIC, 0, 2, 0, 0);
	struct ppool_callbacks cb = {.done = done_cb};
	struct ppool *pp = ppool_new(base, &c, "/bin/false", NULL, &cb);
	double end = now() + 1.0;
	json_t *j;
	int failures;

	while (now() < end)
		event_base_loop(base, EVLOOP_ONCE);
	j = ppool_to_json(pp);
	failures = (int)json_integer_value(json_object_get(j, "spawn_failures"));
	/* 0.1 + 0.2 + 0.4 s of backoff fit in a second, 0.8 more do not. */
	assert_in_range(failures, 3, 5);
	assert_true(json_real_value(json_object_get(j, "backoff")) > 0);
	assert_int_equal(ppool_idle(pp), 0);
	json_decref(j);
	ppool_free(pp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_static),   cmocka_unit_test(test_plan_dynamic),
	    cmocka_unit_test(test_plan_ondemand), cmocka_unit_test(test_live_jobs),
	    cmocka_unit_test(test_live_kill),     cmocka_unit_test(test_live_cancel),
	    cmocka_unit_test(test_live_recycle),  cmocka_unit_test(test_live_backoff),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
