#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cgroup.h"
#include "clock.h"
#include "psi.h"
#include "spawncg.h"
#include "xmalloc.h"

extern char **environ;

static void
test_parse_cpu_stat(void **state)
{
	struct cg_usage u;

	(void)state;
	assert_int_equal(cg_parse_cpu_stat("usage_usec 1500000\nuser_usec 1000000\n"
					   "system_usec 500000\nnice_usec 0\n",
					   &u),
			 0);
	assert_true(fabs(u.cpu - 1.5) < 1e-9);
	assert_true(fabs(u.cpu_user - 1.0) < 1e-9);
	assert_true(fabs(u.cpu_sys - 0.5) < 1e-9);
	assert_int_equal(cg_parse_cpu_stat("", &u), -1);
	assert_int_equal(cg_parse_cpu_stat("user_usec 5\n", &u), -1);
	assert_int_equal(cg_parse_cpu_stat("usage_usec x\ngarbage\n\n", &u), -1);
}

static void
test_parse_controllers(void **state)
{
	char buf[64];

	(void)state;
	assert_int_equal(cg_parse_controllers("cpuset cpu io memory hugetlb pids rdma misc\n"),
			 CG_MEMORY | CG_CPU | CG_PIDS);
	assert_int_equal(cg_parse_controllers(""), 0);
	assert_int_equal(cg_parse_controllers("cpuset io memoryx\n"), 0);
	assert_string_equal(cg_controller_names(CG_MEMORY | CG_PIDS, buf, sizeof buf),
			    "memory, pids");
	assert_string_equal(cg_controller_names(0, buf, sizeof buf), "");
	cg_cpu_max(1.5, buf, sizeof buf);
	assert_string_equal(buf, "150000 100000");
	cg_cpu_max(0.01, buf, sizeof buf);
	assert_string_equal(buf, "1000 100000");
	cg_cpu_max(0, buf, sizeof buf);
	assert_string_equal(buf, "max 100000");
}

static void
test_psi(void **state)
{
	struct psi p;

	(void)state;
	assert_int_equal(psi_parse("some avg10=12.50 avg60=3.00 avg300=0.25 total=2500000\n"
				   "full avg10=1.00 avg60=0.00 avg300=0.00 total=10\n",
				   &p),
			 0);
	assert_true(p.some.valid && p.full.valid);
	assert_true(fabs(p.some.avg10 - 12.5) < 1e-9);
	assert_true(fabs(p.some.total - 2.5) < 1e-9);
	assert_true(fabs(p.full.avg10 - 1.0) < 1e-9);
	/* cpu.pressure of old kernels has no full line */
	assert_int_equal(psi_parse("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", &p), 0);
	assert_false(p.full.valid);
	assert_int_equal(psi_parse("", &p), -1);
	assert_int_equal(psi_parse("some avg10=-1 avg60=0 avg300=0 total=0\n", &p), -1);
	assert_int_equal(psi_parse("some avg10=nan avg60=0 avg300=0 total=0\n", &p), -1);
	assert_int_equal(psi_parse("some garbage\nfull avg10=1 avg60=1 avg300=1 total=1", &p), -1);
	assert_int_equal(psi_parse("some avg10=500 avg60=0 avg300=0 total=1\n", &p), 0);
	assert_true(p.some.avg10 <= 100);
	assert_int_equal(psi_read("/nonexistent/pressure", &p), -1);
}

static char *
tmpdir(void)
{
	char *d = xstrdup("/tmp/taskd-test-cgroup-XXXXXX");

	assert_non_null(mkdtemp(d));
	return d;
}

static void
rm_rf(const char *path)
{
	char *cmd = xprintf("rm -rf '%s'", path);

	assert_int_equal(system(cmd), 0);
	free(cmd);
}

/* A plain directory stands in for a cgroup without controllers: paths and errors. */
static void
test_subtree_in_plain_dir(void **state)
{
	char *own = tmpdir(), *why = NULL, *job, *err = NULL;
	struct cg_limits none = { 0 }, mem = { 512u << 20, 0, 0 }, all = { 1u << 20, 1.5, 10 };
	struct cgroups *cg;
	struct stat st;
	json_t *j;

	(void)state;
	cg = cgroups_open_at(own, false, "/var/lib/taskd", &why);
	assert_non_null(cg);
	assert_null(why);
	assert_int_equal(strncmp(cgroups_dir(cg), own, strlen(own)), 0);
	assert_int_equal(stat(cgroups_dir(cg), &st), 0);
	assert_int_equal(cgroups_controllers(cg), 0);
	assert_int_equal(cgroups_missing(cg, &none), 0);
	assert_int_equal(cgroups_missing(cg, &mem), CG_MEMORY);
	assert_int_equal(cgroups_missing(cg, &all), CG_MEMORY | CG_CPU | CG_PIDS);
	j = cgroups_to_json(cg);
	assert_true(json_is_true(json_object_get(j, "enabled")));
	assert_int_equal(json_array_size(json_object_get(j, "controllers")), 0);
	json_decref(j);
	job = cgroups_job_path(cg, 42);
	assert_non_null(strstr(job, "/job-42"));
	assert_int_equal(cg_create(job, &none, &err), 0);
	assert_int_equal(stat(job, &st), 0);
	/* Again (a retry whose first cgroup is still there): removed and made anew. */
	assert_int_equal(cg_create(job, &none, &err), 0);
	assert_int_equal(cg_remove(job, 0.1), 0);
	assert_int_equal(cg_remove(job, 0.1), 0); /* gone already: fine */
	/* A limit that cannot be written: an error, and nothing is left behind. */
	assert_int_equal(cg_create(job, &mem, &err), -1);
	assert_non_null(strstr(err, "memory.max"));
	free(err);
	assert_int_equal(stat(job, &st), -1);
	/* The same state dir gives the same subtree (a restart finds its leftovers). */
	{
		struct cgroups *again = cgroups_open_at(own, false, "/var/lib/taskd", &why);

		assert_string_equal(cgroups_dir(again), cgroups_dir(cg));
		cgroups_close(again);
	}
	assert_int_equal(stat(cgroups_dir(cg), &st), -1);
	cgroups_close(cg);
	/* An unwritable place: a clear reason. */
	cg = cgroups_open_at("/proc/nonexistent", false, "/x", &why);
	assert_null(cg);
	assert_non_null(strstr(why, "cannot create"));
	free(why);
	free(job);
	rm_rf(own);
	free(own);
}

static void
test_spawn_plain(void **state)
{
	char *argv[] = { "sh", "-c", "pwd; echo err >&2; exit 7", NULL };
	char *bad[] = { "nope", NULL };
	char *cat[] = { "sh", "-c", "cat", NULL };
	char buf[256];
	int out[2], in[2], status, i;
	pid_t pid;
	ssize_t n;
	struct spawn_req q = { "/bin/sh", argv, environ, -1, -1, -1, -1, "/tmp", -1, true };

	(void)state;
	assert_int_equal(pipe(out), 0);
	q.out_fd = out[1];
	q.err_fd = out[1];
	assert_int_equal(spawn_into(&q, &pid), 0);
	close(out[1]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 7);
	n = read(out[0], buf, sizeof buf - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "/tmp\nerr\n");
	close(out[0]);
	/* Its stdin: in_fd (a command's input file) when given, else /dev/null. */
	q.argv = cat;
	for (i = 0; i < 2; i++) {
		assert_int_equal(pipe(in), 0);
		assert_int_equal(pipe(out), 0);
		assert_int_equal(write(in[1], "input\n", 6), 6);
		close(in[1]);
		q.in_fd = i == 0 ? in[0] : -1;
		q.out_fd = out[1];
		q.err_fd = 2;
		assert_int_equal(spawn_into(&q, &pid), 0);
		close(out[1]);
		close(in[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		n = read(out[0], buf, sizeof buf - 1);
		assert_true(n >= 0);
		buf[n] = '\0';
		assert_string_equal(buf, i == 0 ? "input\n" : "");
		close(out[0]);
	}
	q.in_fd = -1;
	/* A command that cannot be executed: its errno, the child reaped. */
	q.path = "/nonexistent/nope";
	q.argv = bad;
	q.out_fd = q.err_fd = 2;
	assert_int_equal(spawn_into(&q, &pid), ENOENT);
	q.path = "/bin/sh";
	q.cwd = "/nonexistent";
	assert_int_equal(spawn_into(&q, &pid), ENOENT);
	assert_int_equal(waitpid(-1, &status, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

/* The real thing where taskd may use cgroups here (root, a writable cgroup2). */
/* cgroup.events says frozen is on (or off) within 5 s. */
static bool
wait_frozen(const char *path, bool on)
{
	char file[PATH_MAX], line[64];
	double t0 = clock_now(CLOCK_MONOTONIC);
	bool is;
	FILE *f;

	snprintf(file, sizeof file, "%s/cgroup.events", path);
	do {
		is = false;
		if ((f = fopen(file, "r")) != NULL) {
			while (fgets(line, sizeof line, f) != NULL)
				if (strcmp(line, "frozen 1\n") == 0)
					is = true;
			fclose(f);
		}
		if (is == on)
			return true;
		usleep(1000);
	} while (clock_now(CLOCK_MONOTONIC) - t0 < 5);
	return false;
}

/* The state letter of pid in /proc (R, S, D, T...), '?' if unknown. */
static char
proc_state(pid_t pid)
{
	char file[64], buf[512], *p;
	FILE *f;
	size_t n;

	snprintf(file, sizeof file, "/proc/%d/stat", (int)pid);
	if ((f = fopen(file, "r")) == NULL)
		return '?';
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')');
	return p != NULL && p[1] == ' ' ? p[2] : '?';
}

static void
test_real_cgroup(void **state)
{
	char *argv[] = { "sh", "-c",
			 "sleep 30 & setsid sleep 30 & i=0; while [ $i -lt 20000 ]; do "
			 "i=$((i+1)); done; echo ready; wait",
			 NULL };
	char *sd = tmpdir(), *why = NULL, *job, *err = NULL, buf[16];
	struct cg_limits none = { 0 };
	struct cg_usage u;
	struct cgroups *cg;
	pid_t pid, members[16];
	int out[2], status, fd, n;
	double t0;
	struct spawn_req q = { "/bin/sh", argv, environ, -1, -1, 2, -1, NULL, -1, true };

	(void)state;
	cg = cgroups_open(sd, &why);
	if (cg == NULL) {
		fprintf(stderr, "no cgroups here (%s): skipped\n", why);
		free(why);
		rm_rf(sd);
		free(sd);
		skip();
	}
	job = cgroups_job_path(cg, 7);
	assert_int_equal(cg_create(job, &none, &err), 0);
	fd = cg_procs_open(job);
	assert_true(fd >= 0);
	assert_int_equal(pipe(out), 0);
	q.out_fd = out[1];
	q.cgroup_procs = fd;
	assert_int_equal(spawn_into(&q, &pid), 0);
	close(fd);
	close(out[1]);
	assert_int_equal(read(out[0], buf, sizeof buf), 6); /* "ready\n": both sleeps started */
	close(out[0]);
	/* The shell and both sleeps, the setsid one too. */
	n = cg_procs(job, members, 16);
	assert_int_equal(n, 3);
	assert_true(cg_populated(job));
	assert_int_equal(cg_read_usage(job, &u), 0);
	assert_true(u.cpu > 0.001);
	assert_true(u.cpu >= u.cpu_user);
	assert_int_equal(cg_signal(job, 0), 3);
	/* Frozen, all of it, and not stopped by a signal; thawed, and frozen again. */
	assert_int_equal(cg_freeze(job, true), 0);
	assert_true(wait_frozen(job, true));
	assert_true(proc_state(pid) != 'T');
	assert_int_equal(cg_freeze(job, false), 0);
	assert_true(wait_frozen(job, false));
	assert_int_equal(cg_freeze(job, true), 0);
	assert_true(wait_frozen(job, true));
	/* Everything goes at once, grandchildren included, frozen or not. */
	assert_int_equal(cg_kill(job), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	t0 = clock_now(CLOCK_MONOTONIC);
	while (cg_populated(job) && clock_now(CLOCK_MONOTONIC) - t0 < 5)
		usleep(1000);
	assert_false(cg_populated(job));
	/* The CPU of exited processes is still counted until the cgroup goes. */
	assert_int_equal(cg_read_usage(job, &u), 0);
	assert_true(u.cpu > 0.001);
	assert_int_equal(cg_remove(job, 1.0), 0);
	assert_int_equal(cg_read_usage(job, &u), -1);
	assert_int_equal(cg_procs(job, members, 16), -1);
	/* A leftover from a previous run (a crash): killed and removed at start. */
	assert_int_equal(cg_create(job, &none, &err), 0);
	fd = cg_procs_open(job);
	argv[2] = "sleep 30";
	q.cgroup_procs = fd;
	q.out_fd = 2;
	assert_int_equal(spawn_into(&q, &pid), 0);
	close(fd);
	assert_int_equal(cgroups_reap_stale(cg), 1);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(access(job, F_OK), -1);
	cgroups_close(cg);
	free(job);
	rm_rf(sd);
	free(sd);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_cpu_stat),
		cmocka_unit_test(test_parse_controllers),
		cmocka_unit_test(test_psi),
		cmocka_unit_test(test_subtree_in_plain_dir),
		cmocka_unit_test(test_spawn_plain),
		cmocka_unit_test(test_real_cgroup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
