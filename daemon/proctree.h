/*
 * A job's process tree from /proc: how taskd measures a command where it
 * has no cgroup for it. One snapshot of every process per sampling tick
 * (proc_snap_take), then per job the tree of its leader: its descendants
 * by parent pid, and the members of its process group that were
 * re-parented (a background child whose shell exited). A process that
 * called setsid and was re-parented is out of sight: that is what cgroups
 * are for. Every read tolerates a process exiting under it and any
 * content: an entry that cannot be read or parsed is skipped.
 */
#ifndef TASKD_PROCTREE_H
#define TASKD_PROCTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* One process as /proc/PID/stat shows it. */
struct proc_info {
	pid_t pid;
	char state;               /* R, S, D, Z, T, ... */
	pid_t ppid;
	pid_t pgrp;
	pid_t session;
	unsigned long long start; /* field 22: clock ticks after boot */
	double cpu;               /* utime + stime + cutime + cstime, seconds (reaped children too) */
	long rss_kb;
};

struct proc_snap {
	struct proc_info *e;
	size_t n;
	size_t cap;
	size_t *by_ppid; /* indexes into e, sorted by ppid */
	size_t *by_pgid; /* sorted by pgid */
	unsigned *mark;  /* per entry: the query that visited it */
	unsigned gen;
	char *root;      /* "/proc", or a stand-in for tests */
};

/* What a tree uses now. */
struct proc_usage {
	double cpu;     /* seconds, summed over the tree */
	long rss_kb;    /* resident memory, summed */
	int nprocs;
};

/* Read every process under root ("/proc"); 0, or -1 if root cannot be read. */
int proc_snap_take(struct proc_snap *s, const char *root);
void proc_snap_free(struct proc_snap *s);
/*
 * The tree of leader (leader included); -1 if the leader is not in the
 * snapshot. Its first max members' pids go to pids (may be NULL), *npids
 * says how many.
 */
int proc_tree_usage(struct proc_snap *s, pid_t leader, struct proc_usage *u, pid_t *pids,
		    size_t max, size_t *npids);
/* Resident memory of one process (statm) in KiB, -1 if gone. */
long proc_rss_kb(const char *root, pid_t pid);
/* Seconds pid waited on a run queue (schedstat), -1 if gone. */
double proc_wait(const char *root, pid_t pid);

/* The text of a /proc/PID/stat file (unit-tested): 0, or -1 if it does not parse. */
int proc_info_parse(const char *text, struct proc_info *pi);
/* 0, or -1 if the process does not exist (or its stat cannot be read). */
int proc_info_read(pid_t pid, struct proc_info *pi);

#endif
