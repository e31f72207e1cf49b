/*
 * Spawning a command into a cgroup. posix_spawn cannot place the child in
 * a cgroup (glibc 2.36 has no such attribute), and moving it afterwards
 * races with its first fork: a grandchild started before the move would
 * stay outside. spawn_into does what exec-spawn.c asks of posix_spawn (stdin
 * from its input file or /dev/null, stdout/stderr and an optional fd 3, a session and
 * process group of its own, default signal dispositions, an empty mask, a
 * working directory) with vfork, and the child writes itself into the
 * cgroup's cgroup.procs before it execs. As with posix_spawn, the parent thread is
 * suspended until the exec; the child touches only its own stack frame's
 * variables and async-signal-safe calls.
 */
#ifndef TASKD_SPAWNCG_H
#define TASKD_SPAWNCG_H

#include <stdbool.h>
#include <sys/types.h>

struct spawn_req {
	const char *path;    /* to execve */
	char *const *argv;
	char *const *env;
	int in_fd;           /* becomes fd 0, or -1: /dev/null */
	int out_fd;          /* becomes fd 1 */
	int err_fd;          /* becomes fd 2 */
	int fd3;             /* becomes fd 3, or -1 */
	const char *cwd;     /* chdir before the exec, or NULL */
	int cgroup_procs;    /* an open cgroup.procs to join, or -1 */
	bool own_session;    /* setsid(): a session and process group of its own */
};

/* 0 and *pid, or an errno value (the child failed before or at its exec, and is reaped). */
int spawn_into(const struct spawn_req *q, pid_t *pid);

#endif
