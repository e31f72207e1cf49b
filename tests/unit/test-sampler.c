#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "builtin.h"
#include "cgroup.h"
#include "exec.h"
#include "job.h"
#include "sampler.h"
#include "spawncg.h"
#include "xmalloc.h"

extern char **environ;

static void
test_reclass_step(void **state)
{
	struct reclass st = { 0 };
	enum job_class c = CLASS_IO;

	(void)state;
	/* Two hot periods are not three. */
	c = reclass_step(&st, c, 0.9, 0.5, 3);
	c = reclass_step(&st, c, 0.9, 0.5, 3);
	assert_int_equal(c, CLASS_IO);
	/* A cold one in between starts over. */
	c = reclass_step(&st, c, 0.1, 0.5, 3);
	c = reclass_step(&st, c, 0.9, 0.5, 3);
	c = reclass_step(&st, c, 0.9, 0.5, 3);
	assert_int_equal(c, CLASS_IO);
	c = reclass_step(&st, c, 0.5, 0.5, 3); /* at the threshold counts as hot */
	assert_int_equal(c, CLASS_CPU);
	/* And back: three periods below the threshold. */
	c = reclass_step(&st, c, 0.49, 0.5, 3);
	c = reclass_step(&st, c, 0.0, 0.5, 3);
	assert_int_equal(c, CLASS_CPU);
	c = reclass_step(&st, c, 0.0, 0.5, 3);
	assert_int_equal(c, CLASS_IO);
	/* Auto is not a class a running job counts as: treated as not cpu. */
	memset(&st, 0, sizeof st);
	assert_int_equal(reclass_step(&st, CLASS_AUTO, 1.0, 0.5, 1), CLASS_CPU);
	/* Off, and nonsense ratios. */
	memset(&st, 0, sizeof st);
	assert_int_equal(reclass_step(&st, CLASS_IO, 1.0, 0.5, 0), CLASS_IO);
	assert_int_equal(reclass_step(&st, CLASS_IO, 0.0 / 0.0, 0.5, 1), CLASS_IO);
	assert_int_equal(st.hot, 0);
}

/* A period's ratio over the time it could run; a starved period says nothing. */
static void
test_period(void **state)
{
	double wall, ratio;

	(void)state;
	/* Burning all along: 1. */
	assert_true(sampler_period(0.5, 0.5, 0, &wall, &ratio));
	assert_true(fabs(ratio - 1) < 1e-9);
	/* Half of it waiting for a core: still all CPU when it could run. */
	assert_true(sampler_period(0.5, 0.25, 0.25, &wall, &ratio));
	assert_true(fabs(wall - 0.25) < 1e-9 && fabs(ratio - 1) < 1e-9);
	/* Sleeping: 0. */
	assert_true(sampler_period(0.5, 0, 0, &wall, &ratio));
	assert_true(ratio == 0);
	/* Three processes that waited 0.3 s each and burnt 0.6 s: no room was lost. */
	assert_true(sampler_period(0.5, 0.6, 0.9, &wall, &ratio));
	assert_true(fabs(wall - 0.5) < 1e-9 && ratio > 1);
	/* Starved: it waited 95 % of the period; what it did in the rest is noise. */
	assert_false(sampler_period(0.5, 0.001, 0.475, &wall, &ratio));
	assert_false(sampler_period(0.5, 0.0, 0.5, &wall, &ratio));
	assert_false(sampler_period(0, 0.1, 0, &wall, &ratio));
	assert_false(sampler_period(0.5, 0.0 / 0.0, 0, &wall, &ratio));
}

struct seen {
	struct event_base *base;
	int reclassified;
	enum job_class to;
	double cpu, wall;
	int ticks;
};

static void
on_reclass(struct job *j, enum job_class c, double cpu, double wall, void *arg)
{
	struct seen *s = arg;

	s->reclassified++;
	s->to = c;
	s->cpu = cpu;
	s->wall = wall;
	j->counts_as = c;
	event_base_loopexit(s->base, NULL);
}

static void
on_tick(void *arg)
{
	((struct seen *)arg)->ticks++;
}

/* A fake running job for the sampler: a command with a live pid. */
static struct job *
fake_job(pid_t pid, enum job_class counts_as, const char *cgroup)
{
	struct job *j = xcalloc(1, sizeof *j);

	j->spec.type = BUILTIN_EXEC;
	j->run = run_new(false);
	atomic_store(&j->run->live_pid, (int)pid);
	j->counts_as = counts_as;
	j->cgroup = cgroup != NULL ? xstrdup(cgroup) : NULL;
	return j;
}

static void
free_job(struct job *j)
{
	run_free(j->run);
	free(j->cgroup);
	free(j);
}

static pid_t
spawn(const char *script, const char *cgroup)
{
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	struct spawn_req q = { "/bin/sh", argv, environ, -1, 2, 2, -1, NULL, -1, true };
	pid_t pid;

	q.cgroup_procs = cgroup != NULL ? cg_procs_open(cgroup) : -1;
	assert_int_equal(spawn_into(&q, &pid), 0);
	if (q.cgroup_procs != -1)
		close(q.cgroup_procs);
	return pid;
}

static void
run_until(struct seen *s, double seconds)
{
	struct timeval tv = { (time_t)seconds, (suseconds_t)((seconds - (int)seconds) * 1e6) };

	event_base_loopexit(s->base, &tv);
	event_base_dispatch(s->base);
}

static void
reap(pid_t pid)
{
	int status;

	kill(-pid, SIGKILL);
	waitpid(pid, &status, 0);
}

/* A command counted as io that burns a core is reclassified, through /proc. */
static void
test_live_proc(void **state)
{
	struct seen s = { 0 };
	struct sampler_callbacks cb = { on_reclass, on_tick, &s };
	struct sampler_config cfg = { 0.05, 2, 0.5, false, "/proc" };
	struct sampler_result res;
	struct sampler *m;
	struct job *j, *gone;
	pid_t pid;

	(void)state;
	s.base = event_base_new();
	m = sampler_new(s.base, &cb);
	sampler_configure(m, &cfg);
	pid = spawn("while :; do :; done", NULL);
	j = fake_job(pid, CLASS_IO, NULL);
	gone = fake_job(999999999, CLASS_IO, NULL); /* its leader vanished: never sampled */
	sampler_watch(m, j);
	sampler_watch(m, gone);
	{
		json_t *o = sampler_job_json(j); /* not sampled yet */

		assert_int_equal(json_integer_value(json_object_get(o, "samples")), 0);
		assert_true(json_is_null(json_object_get(o, "source")));
		json_decref(o);
	}
	run_until(&s, 10);
	assert_int_equal(s.reclassified, 1);
	assert_int_equal(s.to, CLASS_CPU);
	assert_true(s.wall > 0 && s.cpu / s.wall >= 0.5);
	assert_true(sampler_rss_kb(j) > 0);
	{
		json_t *o = sampler_job_json(j);

		assert_string_equal(json_string_value(json_object_get(o, "source")), "proc");
		json_decref(o);
	}
	assert_int_equal(sampler_rss_kb(gone), -1);
	sampler_forget(m, gone, &res);
	assert_int_equal(res.samples, 0);
	assert_int_equal(res.peak_kb, -1);
	reap(pid);
	sampler_forget(m, j, &res);
	assert_true(res.reclassified);
	assert_true(res.samples >= 3);
	assert_true(res.peak_kb > 0);
	assert_null(j->mon);
	sampler_free(m);
	event_base_free(s.base);
	free_job(j);
	free_job(gone);
}

/* A command counted as cpu that only waits frees its slot: measured through its cgroup. */
static void
test_live_cgroup(void **state)
{
	char sd[] = "/tmp/taskd-test-sampler-XXXXXX", *why = NULL, *job, *err = NULL;
	struct seen s = { 0 };
	struct sampler_callbacks cb = { on_reclass, on_tick, &s };
	struct sampler_config cfg = { 0.05, 2, 0.5, false, "/proc" };
	struct cg_limits none = { 0 };
	struct sampler_result res;
	struct cgroups *cg;
	struct sampler *m;
	struct job *j;
	json_t *o;
	pid_t pid;

	(void)state;
	assert_non_null(mkdtemp(sd));
	cg = cgroups_open(sd, &why);
	if (cg == NULL) {
		fprintf(stderr, "no cgroups here (%s): skipped\n", why);
		free(why);
		rmdir(sd);
		skip();
	}
	job = cgroups_job_path(cg, 1);
	assert_int_equal(cg_create(job, &none, &err), 0);
	s.base = event_base_new();
	m = sampler_new(s.base, &cb);
	sampler_configure(m, &cfg);
	pid = spawn("sleep 30", job);
	j = fake_job(pid, CLASS_CPU, job);
	sampler_watch(m, j);
	run_until(&s, 10);
	assert_int_equal(s.reclassified, 1);
	assert_int_equal(s.to, CLASS_IO);
	o = sampler_job_json(j);
	assert_string_equal(json_string_value(json_object_get(o, "source")), "cgroup");
	assert_true(json_integer_value(json_object_get(o, "samples")) >= 3);
	json_decref(o);
	assert_true(sampler_rss_kb(j) > 0); /* the members' RSS without a memory controller */
	sampler_forget(m, j, &res);
	assert_true(res.reclassified);
	assert_int_equal(cg_remove(job, 2.0), 0);
	waitpid(pid, NULL, 0);
	/* Its cgroup gone and its leader too: the next tick finds nothing, quietly. */
	j->counts_as = CLASS_IO;
	sampler_watch(m, j);
	s.ticks = 0;
	run_until(&s, 0.3);
	assert_true(s.ticks >= 2);
	assert_int_equal(sampler_rss_kb(j), -1);
	sampler_forget(m, j, NULL);
	/* A cgroup with nobody in it (its command gone, or not in yet): sampled, nothing found. */
	free(job);
	job = cgroups_job_path(cg, 2);
	assert_int_equal(cg_create(job, &none, &err), 0);
	free(j->cgroup);
	j->cgroup = xstrdup(job);
	sampler_watch(m, j);
	s.ticks = 0;
	run_until(&s, 0.3);
	assert_true(s.ticks >= 2);
	o = sampler_job_json(j);
	assert_string_equal(json_string_value(json_object_get(o, "source")), "cgroup");
	json_decref(o);
	sampler_forget(m, j, NULL);
	assert_int_equal(cg_remove(job, 2.0), 0);
	/* No job: no tick (the timer is disarmed). */
	s.ticks = 0;
	run_until(&s, 0.2);
	assert_int_equal(s.ticks, 0);
	sampler_free(m);
	event_base_free(s.base);
	free_job(j);
	free(job);
	cgroups_close(cg);
	rmdir(sd);
}

/*
 * A suspended command (its group stopped: SIGSTOP) uses no CPU: that says
 * nothing of its kind, so the sampler does not reclassify it (it would
 * count as io, and its cpu slot would move) however long it stays
 * suspended. The same command seen as running is reclassified: that is
 * what the state spares it. (A sleeping command stands for the stopped one
 * here: it uses no CPU either, and it ends by itself should the test fail.)
 */
static void
test_suspended(void **state)
{
	struct seen s = { 0 };
	struct sampler_callbacks cb = { on_reclass, on_tick, &s };
	struct sampler_config cfg = { 0.05, 2, 0.5, false, "/proc" };
	struct sampler *m;
	struct job *j;
	pid_t pid;

	(void)state;
	s.base = event_base_new();
	m = sampler_new(s.base, &cb);
	sampler_configure(m, &cfg);
	pid = spawn("exec sleep 10", NULL);
	j = fake_job(pid, CLASS_CPU, NULL);
	j->state = JOB_SUSPENDED;
	sampler_watch(m, j);
	run_until(&s, 0.6);
	assert_true(s.ticks >= 4);
	assert_int_equal(s.reclassified, 0);
	assert_int_equal(j->counts_as, CLASS_CPU);
	j->state = JOB_RUNNING;
	run_until(&s, 10);
	assert_int_equal(s.reclassified, 1);
	assert_int_equal(s.to, CLASS_IO);
	sampler_forget(m, j, NULL);
	reap(pid);
	sampler_free(m);
	event_base_free(s.base);
	free_job(j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reclass_step),
		cmocka_unit_test(test_period),
		cmocka_unit_test(test_live_proc),
		cmocka_unit_test(test_live_cgroup),
		cmocka_unit_test(test_suspended),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
