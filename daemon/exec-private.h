/*
 * Private to exec.c (supervising a command to its end, reaping it) and
 * exec-spawn.c (preparing and spawning it): the state of one command.
 */
#ifndef TASKD_EXEC_PRIVATE_H
#define TASKD_EXEC_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "exec.h"

#define EXEC_BUFSZ 65536

/* One output stream: pipe from the child, file on disk, counters. */
struct stream {
	int rfd;          /* pipe read end (non-blocking), -1 at EOF */
	int wfd;          /* pipe write end, closed once the child has it */
	int file;         /* output file, -1 when closed */
	const char *path; /* for messages */
	uint64_t kept;    /* bytes written to the file */
	uint64_t *bytes;  /* -> res.out_bytes / res.err_bytes */
	bool *truncated;  /* -> res.out_truncated / res.err_truncated */
};

/* The state of one spawned command, on the runner's stack. */
struct child {
	struct run *r;
	char *path; /* resolved argv[0] */
	pid_t pid;
	int pidfd; /* -1: fall back to waitid(WNOWAIT) polling */
	struct stream out;
	struct stream err;
	char *buf;
	double deadline;     /* CLOCK_MONOTONIC timeout, 0 = none */
	double kill_at;      /* CLOCK_MONOTONIC SIGKILL time once stopping */
	bool stopping;       /* SIGTERM sent (timeout or cancel) */
	bool suspended;      /* stopped (run_suspend), not continued since */
	bool frozen;         /* stopped by freezing its cgroup, not by SIGSTOP */
	double suspended_since; /* CLOCK_MONOTONIC */
	int in;              /* its input file (spec.in_path), -1: /dev/null */
	int report;          /* --run-as: read end of the failure report pipe, -1 otherwise */
	const char *cgroup;  /* its cgroup once made (spec.cgroup), else NULL */
	int cg_procs;        /* that cgroup's cgroup.procs, for the spawn; -1 */
	bool tracked;        /* recorded at spec.track_path: removed once reaped */
	bool killed;         /* SIGKILL sent */
	enum run_status why; /* RUN_TIMEOUT or RUN_CANCELLED once stopping */
};

/* exec-spawn.c */
/* Record a start failure; takes ownership of msg. Returns -1. */
int run_fail(struct run *r, int code, char *msg);
void child_init(struct child *c, struct run *r);
/* Close *fd if open, and set it to -1. */
void fd_close(int *fd);
/* Its fds, its record for a restart (leftover.h), its buffers. */
void child_close(struct child *c);
/* Everything it needs before the spawn: 0, or -1 with r->res saying why. */
int child_prepare(struct child *c, const char *cwd);
/* Start it (as its submitter with --run-as): 0, or -1 with r->res saying why. */
int child_spawn(struct child *c, const char *cwd);

#endif
