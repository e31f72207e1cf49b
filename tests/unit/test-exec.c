/*
 * Unit tests for daemon/exec.c and exec-spawn.c: spawning, output capture,
 * timeouts, cancel, lookup.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "builtin.h"
#include "clock.h"
#include "exec.h"
#include "xmalloc.h"
#include "unit.h"

static char tmpdir[PATH_MAX];
static atomic_int file_seq;

static void
sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test-exec.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unit_rmtree(tmpdir);
	return 0;
}

/* A run of argv (NULL-terminated) with fresh output files in tmpdir. */
static struct run *
mkrun(const char *arg0, ...)
{
	struct run *r = run_new(true);
	const char *argv[32];
	va_list ap;
	int n = 0, seq = atomic_fetch_add(&file_seq, 1);

	argv[n++] = arg0;
	va_start(ap, arg0);
	while (n < 31 && (argv[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	argv[n] = NULL;
	assert_int_not_equal(r->cancel_fd, -1);
	r->spec.type = BUILTIN_EXEC;
	r->spec.argv = strv_dup((char *const *)argv);
	r->spec.out_path = xprintf("%s/%d.out", tmpdir, seq);
	r->spec.err_path = xprintf("%s/%d.err", tmpdir, seq);
	r->spec.timeout = 15; /* safety net: no test job may hang the suite */
	r->spec.kill_grace = 1;
	return r;
}

static char *
slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	size_t n;

	assert_non_null(f);
	buf = xmalloc(1 << 20);
	n = fread(buf, 1, (1 << 20) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

static void
assert_file(const char *path, const char *want)
{
	char *got = slurp(path, NULL);

	assert_string_equal(got, want);
	free(got);
}

/* Cancel a run after a delay, from another thread. */
struct canceller {
	pthread_t thread;
	struct run *r;
	double delay;
	const char *wait_for_output; /* cancel once this file is non-empty */
};

static void *
cancel_main(void *arg)
{
	struct canceller *c = arg;
	struct stat st;
	double end = clock_now(CLOCK_MONOTONIC) + 10;

	while (c->wait_for_output != NULL && clock_now(CLOCK_MONOTONIC) < end &&
	       (stat(c->wait_for_output, &st) == -1 || st.st_size == 0))
		sleep_s(0.01);
	sleep_s(c->delay);
	run_cancel(c->r);
	return NULL;
}

static void
cancel_later(struct canceller *c, struct run *r, double delay, const char *wait_for_output)
{
	c->r = r;
	c->delay = delay;
	c->wait_for_output = wait_for_output;
	assert_int_equal(pthread_create(&c->thread, NULL, cancel_main, c), 0);
}

/* --- tests ------------------------------------------------------------ */

static void
test_true(void **state)
{
	struct run *r = mkrun("true", NULL);

	(void)state;
	run_execute(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_int_equal(r->res.signal, 0);
	assert_true(r->res.pid > 0);
	assert_null(r->res.error);
	assert_true(r->res.started_at > 1e9);
	assert_true(r->res.finished_at >= r->res.started_at);
	assert_true(r->res.wall >= 0 && r->res.wall < 5);
	assert_true(r->res.max_rss_kb > 0);
	assert_int_equal(r->res.out_bytes, 0);
	run_free(r);
}

static void
test_exit_code(void **state)
{
	struct run *r = mkrun("sh", "-c", "exit 3", NULL);

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 3);
	run_free(r);
}

static void
test_signaled(void **state)
{
	struct run *r = mkrun("sh", "-c", "kill -9 $$", NULL);

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_SIGNALED);
	assert_int_equal(r->res.signal, 9);
	assert_int_equal(r->res.exit_code, -1);
	run_free(r);
}

static void
test_output(void **state)
{
	struct run *r = mkrun("sh", "-c", "printf 'out\\nput'; printf 'err' >&2", NULL);

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_file(r->spec.out_path, "out\nput");
	assert_file(r->spec.err_path, "err");
	assert_int_equal(r->res.out_bytes, 7);
	assert_int_equal(r->res.err_bytes, 3);
	assert_false(r->res.out_truncated);
	assert_false(r->res.err_truncated);
	run_free(r);
}

static void
test_output_cap(void **state)
{
	struct run *r =
	    mkrun("sh", "-c", "head -c 100000 /dev/zero; head -c 10 /dev/zero >&2", NULL);
	struct stat st;

	(void)state;
	r->spec.max_output = 1000;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_int_equal(stat(r->spec.out_path, &st), 0);
	assert_int_equal(st.st_size, 1000);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(r->res.out_bytes, 100000);
	assert_true(r->res.out_truncated);
	assert_int_equal(stat(r->spec.err_path, &st), 0);
	assert_int_equal(st.st_size, 10);
	assert_int_equal(r->res.err_bytes, 10);
	assert_false(r->res.err_truncated);
	run_free(r);
}

/* max_kept bounds both streams together (what is left of a user's output quota). */
static void
test_output_kept_over_both_streams(void **state)
{
	struct run *r = mkrun("sh", "-c", "head -c 600 /dev/zero; head -c 600 /dev/zero >&2; "
			      "head -c 600 /dev/zero", NULL);
	struct stat so, se;

	(void)state;
	r->spec.max_output = 1000;
	r->spec.max_kept = 1000;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(stat(r->spec.out_path, &so), 0);
	assert_int_equal(stat(r->spec.err_path, &se), 0);
	/* (which stream gets the last bytes depends on when the pipes are read) */
	assert_int_equal(so.st_size + se.st_size, 1000);
	assert_int_equal(r->res.out_bytes, 1200);
	assert_int_equal(r->res.err_bytes, 600);
	assert_true(r->res.out_truncated);
	assert_true(r->res.err_truncated == (se.st_size < 600));
	run_free(r);
}

/* run_stop_output, before or while it runs: nothing more is kept, all is counted. */
static void
test_output_stopped(void **state)
{
	struct run *r = mkrun("sh", "-c", "echo hi; echo ho >&2", NULL);
	struct stat st;

	(void)state;
	run_stop_output(r);
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(stat(r->spec.out_path, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(r->res.out_bytes, 3);
	assert_true(r->res.out_truncated);
	assert_true(r->res.err_truncated);
	run_free(r);
}

static void
test_big_output_uncapped(void **state)
{
	struct run *r = mkrun("head", "-c", "3000000", "/dev/zero", NULL);
	struct stat st;

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(stat(r->spec.out_path, &st), 0);
	assert_int_equal(st.st_size, 3000000);
	assert_int_equal(r->res.out_bytes, 3000000);
	assert_false(r->res.out_truncated);
	run_free(r);
}

static void
test_null_paths(void **state)
{
	struct run *r = mkrun("sh", "-c", "echo hi; echo ho >&2", NULL);

	(void)state;
	free(r->spec.out_path);
	free(r->spec.err_path);
	r->spec.out_path = r->spec.err_path = NULL;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.out_bytes, 3);
	assert_int_equal(r->res.err_bytes, 3);
	run_free(r);
}

static void
test_stdin_devnull(void **state)
{
	struct run *r = mkrun("cat", NULL);

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_int_equal(r->res.out_bytes, 0);
	assert_true(r->res.wall < 5);
	run_free(r);
}

static void
test_timeout(void **state)
{
	struct run *r = mkrun("sleep", "10", NULL);

	(void)state;
	r->spec.timeout = 0.3;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_int_equal(r->res.signal, SIGTERM);
	assert_true(r->res.wall >= 0.29);
	assert_true(r->res.wall < 3);
	run_free(r);
}

static void
test_ignores_sigterm(void **state)
{
	struct run *r = mkrun("sh", "-c", "trap '' TERM; sleep 10", NULL);

	(void)state;
	r->spec.timeout = 0.2;
	r->spec.kill_grace = 0.3;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_int_equal(r->res.signal, SIGKILL);
	assert_true(r->res.wall >= 0.49);
	assert_true(r->res.wall < 4);
	run_free(r);
}

static void
test_kill_grace_zero(void **state)
{
	struct run *r = mkrun("sh", "-c", "trap '' TERM; sleep 10", NULL);

	(void)state;
	r->spec.timeout = 0.2;
	r->spec.kill_grace = 0;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_int_equal(r->res.signal, SIGKILL);
	assert_true(r->res.wall < 3);
	run_free(r);
}

/* SIGPIPE ignored by the daemon is back to default in the job. */
static void
test_sigpipe_default(void **state)
{
	struct run *r = mkrun("sh", "-c", "yes | head -n 1", NULL);

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_file(r->spec.out_path, "y\n");
	assert_file(r->spec.err_path, ""); /* no "Broken pipe" from yes */
	run_free(r);
}

/* The runner thread's blocked signals are not inherited by the job. */
static void
test_sigmask_reset(void **state)
{
	struct run *r = mkrun("sleep", "10", NULL);
	sigset_t all, old;

	(void)state;
	r->spec.timeout = 0.2;
	r->spec.kill_grace = 5;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	exec_run(r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_int_equal(r->res.signal, SIGTERM);
	assert_true(r->res.wall < 3);
	run_free(r);
}

/* A stopped job still dies of its SIGTERM (SIGCONT follows it). */
static void
test_stopped_job(void **state)
{
	struct run *r = mkrun("sh", "-c", "kill -STOP $$; sleep 10", NULL);

	(void)state;
	r->spec.timeout = 0.2;
	r->spec.kill_grace = 5;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_int_equal(r->res.signal, SIGTERM);
	assert_true(r->res.wall < 3);
	run_free(r);
}

static void
test_cancel(void **state)
{
	struct run *r = mkrun("sleep", "10", NULL);
	struct canceller c;

	(void)state;
	cancel_later(&c, r, 0.2, NULL);
	exec_run(r);
	pthread_join(c.thread, NULL);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_int_equal(r->res.signal, SIGTERM);
	assert_true(r->res.wall < 3);
	assert_true(run_cancelled(r));
	run_free(r);
}

static void
test_cancel_before_start(void **state)
{
	struct run *r = mkrun("sleep", "10", NULL);

	(void)state;
	assert_false(run_cancelled(r));
	run_cancel(r);
	run_cancel(r);
	assert_true(run_cancelled(r));
	exec_run(r);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_int_equal(r->res.pid, 0);
	assert_true(r->res.wall < 1);
	run_free(r);
}

/* The job printed the pid of its background grandchild; it must be gone. */
static bool
process_gone(pid_t pid)
{
	char path[64], buf[512], *p;
	FILE *f;
	size_t n;

	if (kill(pid, 0) == -1 && errno == ESRCH)
		return true;
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "re")) == NULL)
		return true;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	p = strrchr(buf, ')'); /* a zombie no one reaped yet counts as gone */
	return p != NULL && p[1] == ' ' && p[2] == 'Z';
}

static void
test_process_group(void **state)
{
	struct run *r = mkrun("sh", "-c", "sleep 30 & echo $!; sleep 30", NULL);
	struct canceller c;
	double end;
	char *out;
	pid_t gpid;

	(void)state;
	cancel_later(&c, r, 0.1, r->spec.out_path);
	exec_run(r);
	pthread_join(c.thread, NULL);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_true(r->res.wall < 8);
	out = slurp(r->spec.out_path, NULL);
	gpid = (pid_t)atoi(out);
	free(out);
	assert_true(gpid > 1);
	end = clock_now(CLOCK_MONOTONIC) + 5;
	while (!process_gone(gpid) && clock_now(CLOCK_MONOTONIC) < end)
		sleep_s(0.02);
	assert_true(process_gone(gpid));
	assert_true(process_gone(r->res.pid));
	run_free(r);
}

/*
 * A command runs in a session of its own (its pid is its session and group
 * id) and is recorded at track_path while it runs (leftover.h), no longer
 * once reaped.
 */
static void
test_session_and_record(void **state)
{
	/* It waits for its record (written just after the spawn), prints it, then its ids. */
	static const char script[] =
	    "i=0; while [ ! -s \"$1\" ] && [ $i -lt 250 ]; do sleep 0.02; i=$((i+1)); done; "
	    "cat \"$1\"; cut -d' ' -f1,5,6 /proc/$$/stat";
	char *path = xprintf("%s/job-7", tmpdir), *out, boot[64];
	struct run *r = mkrun("sh", "-c", script, "sh", path, NULL);
	double at, t0 = (double)time(NULL);
	unsigned long long start;
	int pid, pgrp, sid, rpid;

	(void)state;
	r->spec.track_path = path;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	out = slurp(r->spec.out_path, NULL);
	assert_int_equal(sscanf(out, "%d %llu %63s %lf %d %d %d", &rpid, &start, boot, &at, &pid,
				&pgrp, &sid), 7);
	free(out);
	assert_int_equal(rpid, r->res.pid);
	assert_int_equal(pid, r->res.pid);
	assert_int_equal(pgrp, pid);
	assert_int_equal(sid, pid);
	assert_true(start > 0);
	assert_int_equal(strlen(boot), 36);
	assert_true(at >= t0 - 1 && at <= (double)time(NULL) + 1);
	/* reaped: the record is gone */
	assert_int_equal(access(r->spec.track_path, F_OK), -1);
	run_free(r);
}

/* A background grandchild holding the pipes must not keep exec_run waiting. */
static void
test_grandchild_holds_pipe(void **state)
{
	struct run *r = mkrun("sh", "-c", "sleep 3 & echo done", NULL);

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_true(r->res.wall < 2);
	assert_file(r->spec.out_path, "done\n");
	run_free(r);
}

static void
test_not_found(void **state)
{
	struct run *r = mkrun("no-such-command-xyz", NULL);

	(void)state;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_FAILED);
	assert_int_equal(r->res.exit_code, 127);
	assert_string_equal(r->res.error, "command not found: no-such-command-xyz");
	assert_int_equal(r->res.pid, 0);
	run_free(r);
}

static void
test_not_executable(void **state)
{
	char *path = xprintf("%s/plain.txt", tmpdir), *want;
	struct run *r = mkrun(path, NULL);
	int fd;

	(void)state;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "echo hi\n", 8), 8);
	close(fd);
	exec_run(r);
	assert_int_equal(r->res.status, RUN_FAILED);
	assert_int_equal(r->res.exit_code, 126);
	want = xprintf("permission denied: %s", path);
	assert_string_equal(r->res.error, want);
	free(want);
	free(path);
	run_free(r);
}

static void
test_exec_format_error(void **state)
{
	char *path = xprintf("%s/garbage.bin", tmpdir);
	struct run *r = mkrun(path, NULL);
	int fd;

	(void)state;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\177ELF\2\1\1garbage", 15), 15);
	close(fd);
	exec_run(r);
	assert_int_equal(r->res.status, RUN_FAILED);
	assert_int_equal(r->res.exit_code, 126);
	assert_non_null(strstr(r->res.error, "cannot execute "));
	free(path);
	run_free(r);
}

static void
test_resolve(void **state)
{
	char *bin = xprintf("%s/bin", tmpdir), *prog = xprintf("%s/bin/prog", tmpdir);
	char *noexec = xprintf("%s/bin/noexec", tmpdir), *path, *error, *want;
	char *env_rel[] = {"PATH=bin:/usr/bin", NULL};
	char *env_nopath[] = {"HOME=/", NULL};

	(void)state;
	assert_int_equal(mkdir(bin, 0755), 0);
	assert_int_equal(close(open(prog, O_WRONLY | O_CREAT | O_CLOEXEC, 0755)), 0);
	assert_int_equal(close(open(noexec, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)), 0);

	/* relative PATH entry, relative to cwd */
	assert_int_equal(exec_resolve("prog", env_rel, tmpdir, &path, &error), 0);
	assert_null(error);
	assert_string_equal(path, prog);
	free(path);
	/* relative path with a slash, relative to cwd */
	assert_int_equal(exec_resolve("bin/prog", NULL, tmpdir, &path, &error), 0);
	assert_string_equal(path, prog);
	free(path);
	/* no PATH in env: the default one */
	assert_int_equal(exec_resolve("sh", env_nopath, "/", &path, &error), 0);
	assert_non_null(strstr(path, "/sh"));
	free(path);
	/* found in PATH but not executable */
	assert_int_equal(exec_resolve("noexec", env_rel, tmpdir, &path, &error), 126);
	assert_null(path);
	want = xprintf("permission denied: %s", noexec);
	assert_string_equal(error, want);
	free(want);
	free(error);
	/* a directory named explicitly */
	assert_int_equal(exec_resolve("bin/", NULL, tmpdir, &path, &error), 126);
	want = xprintf("is a directory: %s/bin/", tmpdir);
	assert_string_equal(error, want);
	free(want);
	free(error);
	/* directories are skipped in a PATH search */
	assert_int_equal(exec_resolve("bin", (char *[]){"PATH=.", NULL}, tmpdir, &path, &error),
	                 127);
	assert_string_equal(error, "command not found: bin");
	free(error);
	/* missing explicit path */
	assert_int_equal(exec_resolve("./nope", NULL, tmpdir, &path, &error), 127);
	assert_string_equal(error, "command not found: ./nope");
	free(error);
	assert_int_equal(exec_resolve("", NULL, tmpdir, &path, &error), 127);
	free(error);
	free(bin);
	free(prog);
	free(noexec);
}

static void
test_cwd(void **state)
{
	struct run *r = mkrun("pwd", NULL);
	char real[PATH_MAX], *want;

	(void)state;
	assert_non_null(realpath(tmpdir, real));
	r->spec.cwd = xstrdup(real);
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	want = xprintf("%s\n", real);
	assert_file(r->spec.out_path, want);
	free(want);
	run_free(r);

	r = mkrun("pwd", NULL); /* NULL cwd = "/" */
	exec_run(r);
	assert_file(r->spec.out_path, "/\n");
	run_free(r);
}

static void
test_bad_cwd(void **state)
{
	struct run *r = mkrun("true", NULL);

	(void)state;
	r->spec.cwd = xstrdup("/nonexistent-taskd-dir");
	exec_run(r);
	assert_int_equal(r->res.status, RUN_FAILED);
	assert_int_equal(r->res.exit_code, 1);
	assert_string_equal(r->res.error, "cwd /nonexistent-taskd-dir: No such file or directory");
	assert_int_equal(r->res.pid, 0);
	run_free(r);
}

static void
test_env(void **state)
{
	char *dir = xprintf("%s/envbin", tmpdir), *prog = xprintf("%s/envbin/myprog", tmpdir);
	char *envv[3], *want;
	struct run *r = mkrun("myprog", NULL);
	FILE *f;

	(void)state;
	assert_int_equal(mkdir(dir, 0755), 0);
	f = fopen(prog, "we");
	assert_non_null(f);
	fputs("#!/bin/sh\necho \"$FOO:$PATH\"\n", f);
	fclose(f);
	assert_int_equal(chmod(prog, 0755), 0);
	envv[0] = xprintf("PATH=%s:/usr/bin:/bin", dir);
	envv[1] = "FOO=bar";
	envv[2] = NULL;
	r->spec.env = strv_dup(envv);
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	want = xprintf("bar:%s\n", envv[0] + 5);
	assert_file(r->spec.out_path, want);
	free(want);
	free(envv[0]);
	run_free(r);

	/* no env at all: a default PATH and nothing else */
	r = mkrun("sh", "-c", "env | grep -v '^PWD=\\|^SHLVL=\\|^_='", NULL);
	exec_run(r);
	assert_file(r->spec.out_path, "PATH=/usr/local/bin:/usr/bin:/bin\n");
	run_free(r);
	free(dir);
	free(prog);
}

static void *
sleeper_main(void *arg)
{
	exec_run(arg);
	return NULL;
}

/* No daemon fd (other jobs' pipes and files included) leaks into a job. */
static void
test_no_fd_leak(void **state)
{
	struct run *other = mkrun("sleep", "1", NULL);
	struct run *r = mkrun("ls", "/proc/self/fd", NULL);
	pthread_t t;
	char *out, *line, *save = NULL;
	int lines = 0;

	(void)state;
	assert_int_equal(pthread_create(&t, NULL, sleeper_main, other), 0);
	sleep_s(0.2); /* other's pipes and files are open now */
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	out = slurp(r->spec.out_path, NULL);
	for (line = strtok_r(out, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		lines++;
		assert_true(atoi(line) <= 3);
	}
	assert_true(lines >= 3 && lines <= 4);
	free(out);
	pthread_join(t, NULL);
	assert_int_equal(other->res.status, RUN_EXITED);
	run_free(other);
	run_free(r);
}

static void
test_cpu_time(void **state)
{
	struct run *r =
	    mkrun("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done", NULL);

	(void)state;
	r->spec.timeout = 60;
	exec_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_true(r->res.cpu_user > 0.05);
	assert_true(r->res.cpu_sys >= 0);
	assert_true(r->res.max_rss_kb > 0);
	assert_true(r->res.wall >= r->res.cpu_user * 0.5);
	run_free(r);
}

/* 20 jobs from 8 threads at once, each checked. */
#define PAR_JOBS 20
#define PAR_THREADS 8

static struct run *par_runs[PAR_JOBS];
static atomic_int par_next;

static void *
par_main(void *arg)
{
	int i;

	(void)arg;
	while ((i = atomic_fetch_add(&par_next, 1)) < PAR_JOBS)
		exec_run(par_runs[i]);
	return NULL;
}

static void
test_parallel(void **state)
{
	pthread_t t[PAR_THREADS];
	char num[16], *want;
	int i;

	(void)state;
	for (i = 0; i < PAR_JOBS; i++) {
		snprintf(num, sizeof num, "%d", i);
		par_runs[i] =
		    mkrun("sh", "-c", "echo job$0; echo err$0 >&2; exit $(($0 % 7))", num, NULL);
	}
	atomic_store(&par_next, 0);
	for (i = 0; i < PAR_THREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, par_main, NULL), 0);
	for (i = 0; i < PAR_THREADS; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < PAR_JOBS; i++) {
		struct run *r = par_runs[i];

		assert_int_equal(r->res.status, RUN_EXITED);
		assert_int_equal(r->res.exit_code, i % 7);
		want = xprintf("job%d\n", i);
		assert_file(r->spec.out_path, want);
		free(want);
		want = xprintf("err%d\n", i);
		assert_file(r->spec.err_path, want);
		free(want);
		run_free(r);
	}
}

static void
test_run_new_free(void **state)
{
	struct run *r = run_new(true);

	(void)state;
	assert_int_equal(r->res.exit_code, -1);
	assert_int_equal(r->res.max_rss_kb, -1);
	assert_null(r->spec.argv);
	assert_true(fcntl(r->cancel_fd, F_GETFD) & FD_CLOEXEC);
	run_free(r);
	run_free(NULL);
	/* One a worker executes is cancelled by message: no eventfd, and run_cancel is harmless. */
	r = run_new(false);
	assert_int_equal(r->cancel_fd, -1);
	run_cancel(r);
	assert_true(run_cancelled(r));
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_run_new_free),
	    cmocka_unit_test(test_true),
	    cmocka_unit_test(test_exit_code),
	    cmocka_unit_test(test_signaled),
	    cmocka_unit_test(test_output),
	    cmocka_unit_test(test_output_cap),
	    cmocka_unit_test(test_output_kept_over_both_streams),
	    cmocka_unit_test(test_output_stopped),
	    cmocka_unit_test(test_big_output_uncapped),
	    cmocka_unit_test(test_null_paths),
	    cmocka_unit_test(test_stdin_devnull),
	    cmocka_unit_test(test_timeout),
	    cmocka_unit_test(test_ignores_sigterm),
	    cmocka_unit_test(test_kill_grace_zero),
	    cmocka_unit_test(test_sigpipe_default),
	    cmocka_unit_test(test_sigmask_reset),
	    cmocka_unit_test(test_stopped_job),
	    cmocka_unit_test(test_cancel),
	    cmocka_unit_test(test_cancel_before_start),
	    cmocka_unit_test(test_process_group),
	    cmocka_unit_test(test_session_and_record),
	    cmocka_unit_test(test_grandchild_holds_pipe),
	    cmocka_unit_test(test_not_found),
	    cmocka_unit_test(test_not_executable),
	    cmocka_unit_test(test_exec_format_error),
	    cmocka_unit_test(test_resolve),
	    cmocka_unit_test(test_cwd),
	    cmocka_unit_test(test_bad_cwd),
	    cmocka_unit_test(test_env),
	    cmocka_unit_test(test_no_fd_leak),
	    cmocka_unit_test(test_cpu_time),
	    cmocka_unit_test(test_parallel),
	};

	/*
	 * Like taskd at startup: whatever fds the test runner handed down
	 * (jobserver pipes, ...) are not ours to pass on to jobs.
	 */
	close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
	/* A runner may start us with SIGPIPE or SIGTERM ignored; jobs must not inherit it. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, setup, teardown);
}
