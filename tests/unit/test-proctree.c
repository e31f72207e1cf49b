#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proctree.h"
#include "xmalloc.h"

extern char **environ;

/* A stat line with the given fields (utime etc. in ticks, rss in pages). */
static char *
stat_line(int pid, const char *comm, int ppid, int pgid, unsigned utime, unsigned cutime,
	  unsigned rss)
{
	return xprintf("%d (%s) S %d %d %d 0 -1 4194560 100 0 0 0 %u 0 %u 0 20 -5 1 0 12345 "
		       "1000000 %u 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0\n",
		       pid, comm, ppid, pgid, pgid, utime, cutime, rss);
}

static void
test_parse(void **state)
{
	long ticks = sysconf(_SC_CLK_TCK), page_kb = sysconf(_SC_PAGESIZE) / 1024;
	struct proc_info e;
	char *l;

	(void)state;
	l = stat_line(100, "sh", 1, 100, (unsigned)(1.5 * ticks), (unsigned)(0.5 * ticks), 10);
	assert_int_equal(proc_info_parse(l, &e), 0);
	assert_int_equal(e.pid, 100);
	assert_int_equal(e.state, 'S');
	assert_int_equal(e.ppid, 1);
	assert_int_equal(e.pgrp, 100);
	assert_int_equal(e.session, 100);
	assert_true(e.start == 12345ULL);
	assert_true(fabs(e.cpu - 2.0) < 1e-9);
	assert_int_equal(e.rss_kb, 10 * page_kb);
	free(l);
	/* A hostile name: parentheses, spaces, a fake field list. */
	l = stat_line(7, ") S 1 1 1 (x) 9 9", 3, 3, 0, 0, 1);
	assert_int_equal(proc_info_parse(l, &e), 0);
	assert_int_equal(e.ppid, 3);
	free(l);
	assert_int_equal(proc_info_parse("4242 (a) b (c)) S 1 4200 4100 34816 4242 4194560 "
					 "100 0 0 0 5 3 0 0 20 0 1 0 987654 1234 56 1844",
					 &e), 0);
	assert_int_equal(e.session, 4100);
	assert_int_equal(e.pgrp, 4200);
	assert_true(e.start == 987654ULL);
	assert_int_equal(proc_info_parse("12 (x) Z 1 12 12", &e), -1);
	assert_int_equal(proc_info_parse("no parenthesis", &e), -1);
	assert_int_equal(proc_info_parse("", &e), -1);
	assert_int_equal(proc_info_parse("12 (x", &e), -1);
	assert_int_equal(proc_info_parse("12 (x) S 1 2 3", &e), -1); /* cut short */
	assert_int_equal(proc_info_parse("0 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0 1 1 1", &e),
			 -1);
	assert_int_equal(proc_info_parse("x (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0 1 1 1", &e),
			 -1);
	assert_int_equal(proc_info_parse("5 (x) S 1 1 1 0 -1 0 0 0 0 0 "
					 "99999999999999999999999 1 1 1 20 0 1 0 1 1 1",
					 &e),
			 -1);
	assert_int_equal(proc_info_parse("5 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 1 1 20 0 1 0 1 1 1", &e),
			 0);
	assert_int_equal(proc_info_read(getpid(), &e), 0);
	assert_int_equal(e.pid, getpid());
	assert_int_equal(e.ppid, getppid());
	assert_int_equal(e.pgrp, getpgrp());
	assert_int_equal(e.session, getsid(0));
	assert_true(e.start > 0);
}

static void
put(const char *root, const char *name, const char *file, const char *text)
{
	char *dir = xprintf("%s/%s", root, name), *path = xprintf("%s/%s", dir, file);
	FILE *f;

	mkdir(dir, 0755);
	if (text != NULL) {
		f = fopen(path, "w");
		assert_non_null(f);
		fputs(text, f);
		fclose(f);
	}
	free(dir);
	free(path);
}

static void
put_stat(const char *root, int pid, int ppid, int pgid, unsigned ticks, unsigned rss)
{
	char name[16], *l = stat_line(pid, "p", ppid, pgid, ticks, 0, rss);

	snprintf(name, sizeof name, "%d", pid);
	put(root, name, "stat", l);
	put(root, name, "schedstat", "1000 250000000 5\n");
	free(l);
}

/* A stand-in /proc: the tree is found by parent and by group; junk is skipped. */
static void
test_tree(void **state)
{
	char root[] = "/tmp/taskd-test-proc-XXXXXX", *cmd;
	long ticks = sysconf(_SC_CLK_TCK), page_kb = sysconf(_SC_PAGESIZE) / 1024;
	struct proc_snap s = { 0 };
	struct proc_usage u;
	pid_t pids[16];
	size_t np, k;
	double w;

	(void)state;
	assert_non_null(mkdtemp(root));
	put_stat(root, 100, 50, 100, (unsigned)ticks, 1);     /* the leader: 1 s */
	put_stat(root, 101, 100, 100, (unsigned)ticks, 2);    /* its child */
	put_stat(root, 102, 101, 102, (unsigned)ticks, 3);    /* a grandchild in its own group */
	put_stat(root, 200, 1, 100, (unsigned)ticks, 4);      /* re-parented, still in the group */
	put_stat(root, 300, 1, 300, (unsigned)ticks, 100);    /* someone else */
	put_stat(root, 301, 300, 300, (unsigned)ticks, 100);
	put(root, "400", "status", "no stat here"); /* exited mid-read */
	put(root, "500", "stat", "garbage");
	put(root, "600", "stat", "");
	put(root, "self", "stat", "1 (x) S 0 0");
	put(root, "abc", "stat", "junk");
	assert_int_equal(proc_snap_take(&s, root), 0);
	assert_int_equal(s.n, 6);
	assert_int_equal(proc_tree_usage(&s, 100, &u, pids, 16, &np), 0);
	assert_int_equal(u.nprocs, 4);
	assert_true(fabs(u.cpu - 4.0) < 1e-9);
	assert_int_equal(u.rss_kb, (1 + 2 + 3 + 4) * page_kb);
	assert_int_equal(np, 4);
	for (k = 0, w = 0; k < np; k++)
		w += proc_wait(root, pids[k]);
	assert_true(fabs(w - 1.0) < 1e-9); /* 0.25 s each (schedstat of the stand-ins) */
	assert_int_equal(proc_tree_usage(&s, 300, &u, NULL, 0, NULL), 0);
	assert_int_equal(u.nprocs, 2);
	assert_int_equal(proc_tree_usage(&s, 999, &u, pids, 16, &np), -1);
	assert_int_equal(u.nprocs, 0);
	assert_int_equal(np, 0);
	/* A snapshot again reuses the buffers; a gone root is an error, not a crash. */
	assert_int_equal(proc_snap_take(&s, root), 0);
	assert_int_equal(proc_tree_usage(&s, 101, &u, NULL, 0, NULL), 0);
	assert_int_equal(u.nprocs, 2);
	assert_int_equal(proc_rss_kb(root, 100), -1); /* no statm */
	cmd = xprintf("rm -rf '%s'", root);
	assert_int_equal(system(cmd), 0);
	free(cmd);
	assert_int_equal(proc_snap_take(&s, root), -1);
	proc_snap_free(&s);
	/* No process at all (a fresh snapshot of an empty directory). */
	assert_non_null(mkdtemp(strcpy(root, "/tmp/taskd-test-proc-XXXXXX")));
	memset(&s, 0, sizeof s);
	assert_int_equal(proc_snap_take(&s, root), 0);
	assert_int_equal(s.n, 0);
	assert_int_equal(proc_tree_usage(&s, 100, &u, pids, 16, &np), -1);
	proc_snap_free(&s);
	rmdir(root);
}

/* The real /proc, with processes exiting while it is read. */
static void
test_live(void **state)
{
	char *argv[] = { "sh", "-c", "sleep 5 & sleep 5 & echo x; wait", NULL };
	struct proc_snap s = { 0 };
	struct proc_usage u = { 0 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	int out[2], status, i;
	char c;
	pid_t pid;

	(void)state;
	assert_int_equal(pipe(out), 0);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
	posix_spawnattr_setpgroup(&at, 0);
	assert_int_equal(posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ), 0);
	close(out[1]);
	assert_int_equal(read(out[0], &c, 1), 1);
	for (i = 0; i < 200; i++) {
		assert_int_equal(proc_snap_take(&s, "/proc"), 0);
		assert_int_equal(proc_tree_usage(&s, pid, &u, NULL, 0, NULL), 0);
		if (u.nprocs == 3)
			break;
		usleep(10000);
	}
	assert_int_equal(u.nprocs, 3);
	assert_true(u.rss_kb > 0);
	assert_true(proc_rss_kb("/proc", pid) > 0);
	assert_true(proc_wait("/proc", pid) >= 0);
	kill(-pid, SIGKILL);
	/* Snapshots while they die: never a crash, never a negative count. */
	for (i = 0; i < 20; i++) {
		proc_snap_take(&s, "/proc");
		if (proc_tree_usage(&s, pid, &u, NULL, 0, NULL) == 0)
			assert_true(u.nprocs >= 1 && u.nprocs <= 3);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(proc_snap_take(&s, "/proc"), 0);
	assert_int_equal(proc_tree_usage(&s, pid, &u, NULL, 0, NULL), -1);
	assert_int_equal(proc_rss_kb("/proc", pid), -1);
	assert_true(proc_wait("/proc", pid) < 0);
	close(out[0]);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	proc_snap_free(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_tree),
		cmocka_unit_test(test_live),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
