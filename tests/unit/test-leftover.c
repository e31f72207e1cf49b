/*
 * Unit tests for daemon/leftover.c: /proc/PID/stat parsing, records, and the
 * kill of what they name, which must never touch a process that is not the
 * recorded one (another start time, another boot) nor the group of a
 * worker (it shares the daemon's group: here, this test's own).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "leftover.h"
#include "xmalloc.h"

extern char **environ;

static char tmpdir[PATH_MAX];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test-leftover.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	(void)state;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* sh -c script, in a session of its own (a job's command) or in ours (a worker). */
static pid_t
spawn_sh(const char *script, bool own_session)
{
	char *argv[] = {"sh", "-c", (char *)script, NULL};
	posix_spawnattr_t attr;
	pid_t pid;

	assert_int_equal(posix_spawnattr_init(&attr), 0);
	if (own_session)
		assert_int_equal(posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID), 0);
	assert_int_equal(posix_spawn(&pid, "/bin/sh", NULL, &attr, argv, environ), 0);
	posix_spawnattr_destroy(&attr);
	return pid;
}

/* Gone: no such process, or a zombie (it runs nothing). */
static bool
gone(pid_t pid)
{
	struct proc_info pi;

	return proc_info_read(pid, &pi) == -1 || pi.state == 'Z' || pi.state == 'X';
}

static bool
wait_gone(pid_t pid, double seconds)
{
	double end = clock_now(CLOCK_MONOTONIC) + seconds;

	while (!gone(pid) && clock_now(CLOCK_MONOTONIC) < end)
		usleep(10000);
	return gone(pid);
}

/* The pid of a process whose parent is ppid (polls; -1 if none appears). */
static pid_t
child_of(pid_t ppid)
{
	double end = clock_now(CLOCK_MONOTONIC) + 5;
	struct proc_info pi;
	struct dirent *de;
	pid_t found = -1;
	DIR *d;

	while (found == -1 && clock_now(CLOCK_MONOTONIC) < end) {
		assert_non_null(d = opendir("/proc"));
		while (found == -1 && (de = readdir(d)) != NULL)
			if (atoi(de->d_name) > 0 && proc_info_read(atoi(de->d_name), &pi) == 0 &&
			    pi.ppid == ppid)
				found = pi.pid;
		closedir(d);
		if (found == -1)
			usleep(20000);
	}
	return found;
}

/* Kill and reap a process we spawned, with its group if it leads one (a session of its own). */
static void
reap(pid_t pid)
{
	if (getpgid(pid) == pid)
		kill(-pid, SIGKILL);
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
		;
}

static char *
live_dir(void)
{
	char *dir = xprintf("%s/live", tmpdir);

	mkdir(dir, 0700);
	return dir;
}

static void
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "we");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
count_entries(const char *dir)
{
	char cmd[PATH_MAX + 32];
	FILE *p;
	int n = -1;

	snprintf(cmd, sizeof cmd, "ls -A '%s' | wc -l", dir);
	p = popen(cmd, "re");
	assert_non_null(p);
	assert_int_equal(fscanf(p, "%d", &n), 1);
	pclose(p);
	return n;
}

/* ---- tests ---- */

static void
test_record_and_forget(void **state)
{
	char *dir = live_dir(), *path = xprintf("%s/job-3", dir), buf[256], boot[64];
	pid_t pid = spawn_sh("exec sleep 30", true);
	unsigned long long start;
	struct proc_info pi;
	double at;
	int rpid;
	FILE *f;

	(void)state;
	assert_int_equal(leftover_record(path, pid, 1764235201.25), 0);
	f = fopen(path, "re");
	assert_non_null(f);
	assert_non_null(fgets(buf, sizeof buf, f));
	fclose(f);
	assert_int_equal(sscanf(buf, "%d %llu %63s %lf", &rpid, &start, boot, &at), 4);
	assert_int_equal(proc_info_read(pid, &pi), 0);
	assert_int_equal(rpid, pid);
	assert_true(start == pi.start);
	assert_int_equal(strlen(boot), 36);
	assert_true(at == 1764235201.25);
	leftover_forget(path);
	assert_int_equal(access(path, F_OK), -1);
	leftover_forget(path); /* again: not an error */
	leftover_forget(NULL);
	reap(pid);
	/* a process that is gone cannot be recorded */
	assert_int_equal(leftover_record(path, pid, 1), -1);
	assert_int_equal(access(path, F_OK), -1);
	free(path);
	free(dir);
}

static void
this_boot(char *buf, size_t len)
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	assert_non_null(f);
	assert_non_null(fgets(buf, (int)len, f));
	fclose(f);
	buf[strcspn(buf, "\n")] = '\0';
}

/* A record "PID START BOOT AT" of pid, its start time shifted by delta, boot NULL: this one. */
static void
write_record(const char *path, pid_t pid, long long delta, const char *boot)
{
	struct proc_info pi;
	char text[256], now[64];

	assert_int_equal(proc_info_read(pid, &pi), 0);
	this_boot(now, sizeof now);
	snprintf(text, sizeof text, "%d %llu %s 1764235201.5\n", (int)pid,
		 (unsigned long long)((long long)pi.start + delta), boot != NULL ? boot : now);
	write_file(path, text);
}

static void
test_reap(void **state)
{
	char *dir = live_dir(), *p;
	/* a job: a shell and its child, in their own session */
	pid_t job = spawn_sh("sleep 30 & wait", true), member;
	/* a worker: in our own group and session, which must survive */
	pid_t worker = spawn_sh("exec sleep 30", false);
	/* recorded, but another start time (the pid was handed out again) */
	pid_t recycled = spawn_sh("exec sleep 30", true);
	/* recorded before a reboot */
	pid_t rebooted = spawn_sh("exec sleep 30", true);
	struct leftover_job *jobs;
	size_t n, i;
	bool seen[5] = {false};

	(void)state;
	member = child_of(job);
	assert_true(member > 0);
	p = xprintf("%s/job-11", dir);
	write_record(p, job, 0, NULL);
	free(p);
	p = xprintf("%s/worker-%d", dir, (int)worker);
	write_record(p, worker, 0, NULL);
	free(p);
	p = xprintf("%s/job-12", dir);
	write_record(p, recycled, -1, NULL);
	free(p);
	p = xprintf("%s/job-13", dir);
	write_record(p, rebooted, 0, "00000000-0000-0000-0000-000000000000");
	free(p);
	p = xprintf("%s/job-14", dir);
	write_file(p, "garbage\n");
	free(p);
	p = xprintf("%s/stray", dir);
	write_file(p, "1 2 3 4\n");
	free(p);
	usleep(50000); /* some running time to measure */

	leftover_reap(dir, 5, &jobs, &n);

	assert_true(gone(job));
	assert_true(gone(member));
	assert_true(gone(worker));
	assert_false(gone(recycled));
	assert_false(gone(rebooted));
	assert_int_equal(kill(0, 0), 0); /* our own group is untouched: we are alive */
	assert_int_equal(count_entries(dir), 0);
	assert_int_equal(n, 4);
	for (i = 0; i < n; i++) {
		assert_true(jobs[i].id >= 11 && jobs[i].id <= 14);
		assert_false(seen[jobs[i].id - 11]);
		seen[jobs[i].id - 11] = true;
		assert_false(jobs[i].survived);
		if (jobs[i].id == 11) {
			assert_true(jobs[i].killed);
			assert_true(jobs[i].ran > 0.02 && jobs[i].ran < 60);
			assert_true(jobs[i].started_at == 1764235201.5);
		} else {
			assert_false(jobs[i].killed);
			assert_true(jobs[i].ran == 0);
		}
	}
	free(jobs);
	reap(job);
	reap(worker);
	reap(recycled);
	reap(rebooted);
	free(dir);
}

static void
test_reap_nothing(void **state)
{
	struct leftover_job *jobs;
	char *dir = xprintf("%s/none", tmpdir);
	size_t n;

	(void)state;
	leftover_reap(dir, 1, &jobs, &n); /* no directory */
	assert_int_equal(n, 0);
	assert_null(jobs);
	mkdir(dir, 0700);
	leftover_reap(dir, 1, &jobs, &n); /* an empty one */
	assert_int_equal(n, 0);
	assert_null(jobs);
	free(dir);
}

/* A job's leader that moved its child to another group: the session still finds it. */
static void
test_kill_session(void **state)
{
	char *dir = live_dir(), *path = xprintf("%s/job-21", dir);
	/* the child leaves the group (set -m: job control puts it in its own) */
	pid_t job = spawn_sh("set -m; sleep 30 & wait", true), member;
	struct proc_info pi;

	(void)state;
	member = child_of(job);
	assert_true(member > 0);
	assert_int_equal(proc_info_read(member, &pi), 0);
	assert_int_equal(pi.session, job);
	assert_int_equal(leftover_record(path, job, 1), 0);
	assert_int_equal(leftover_kill(path), 1);
	assert_true(wait_gone(job, 5));
	assert_true(wait_gone(member, 5));
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(leftover_kill(path), -1); /* no record (any more) */
	reap(job);
	free(path);
	free(dir);
}

static void
test_kill_not_ours(void **state)
{
	char *dir = live_dir(), *path = xprintf("%s/job-22", dir);
	pid_t pid = spawn_sh("exec sleep 30", true);

	(void)state;
	write_record(path, pid, 5, NULL);
	assert_int_equal(leftover_kill(path), 0);
	usleep(50000);
	assert_false(gone(pid));
	assert_int_equal(access(path, F_OK), -1);
	reap(pid);
	free(path);
	free(dir);
}

/* A stopped worker's command is killed through its parent (no record needed). */
static void
test_kill_children(void **state)
{
	pid_t parent = spawn_sh("setsid sh -c 'sleep 30 & wait' & wait", false), child, grandchild;

	(void)state;
	child = child_of(parent);
	assert_true(child > 0);
	grandchild = child_of(child);
	assert_true(grandchild > 0);
	kill(parent, SIGSTOP);
	leftover_kill_children(parent);
	assert_true(wait_gone(child, 5));
	assert_true(wait_gone(grandchild, 5));
	assert_false(gone(parent));
	assert_int_equal(kill(0, 0), 0);
	reap(parent);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_record_and_forget),
	    cmocka_unit_test(test_reap),
	    cmocka_unit_test(test_reap_nothing),
	    cmocka_unit_test(test_kill_session),
	    cmocka_unit_test(test_kill_not_ours),
	    cmocka_unit_test(test_kill_children),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
