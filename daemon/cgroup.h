/*
 * Per-job cgroups (cgroup v2, doc/routing.md "Cgroups").
 *
 * The daemon's subtree: a directory taskd-HASH (HASH: of the state
 * directory, so a restarted daemon finds what its previous run left) in
 * the cgroup taskd runs in, when that cgroup is writable: delegated to
 * taskd (systemd Delegate=yes), or any cgroup when taskd is root. Each
 * command gets job-ID below it; the command is moved in between fork and
 * exec (spawncg.c), so everything it starts, setsid or not, is in it. What
 * works without any controller: cpu.stat, cgroup.procs, cgroup.kill and
 * the pressure files. Memory, cpu and pids limits need those controllers
 * enabled for the subtree; cgroups_open enables what the parent offers.
 *
 * Threads: cgroups_* run on the loop thread. The cg_* functions on one
 * job's cgroup are plain file operations, safe from any thread or process
 * (the runner creates, fills and removes a job's cgroup; the loop samples
 * and, for a lost worker, kills and removes it).
 */
#ifndef TASKD_CGROUP_H
#define TASKD_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#define CG_MEMORY 0x1u
#define CG_CPU 0x2u
#define CG_PIDS 0x4u

/* Per-job limits; 0 = none. */
struct cg_limits {
	uint64_t memory; /* memory.max, bytes */
	double cpus;     /* cpu.max: CPUs (1.5 = 150 ms per 100 ms) */
	uint64_t pids;   /* pids.max */
};

/* What a job's cgroup measured (cg_read_usage). -1: not available here. */
struct cg_usage {
	double cpu;        /* cpu.stat usage_usec, seconds: the whole tree, exited processes too */
	double cpu_user;
	double cpu_sys;
	double stall;      /* cpu.pressure "some" total, seconds: time a task waited for a CPU; -1 */
	long mem_current_kb; /* memory.current; -1 without the memory controller */
	long mem_peak_kb;    /* memory.peak; -1 without it (or before Linux 5.19) */
};

struct cgroups;

/*
 * Find the cgroup taskd runs in and set up its subtree for state_dir.
 * NULL with *why (malloc'd, one line for the log) when cgroups cannot be
 * used: no cgroup2 mount, a read-only one, or a cgroup not ours to write.
 */
struct cgroups *cgroups_open(const char *state_dir, char **why);
/* The same below an explicit cgroup directory (tests; own = where taskd runs). */
struct cgroups *cgroups_open_at(const char *own, bool own_is_root, const char *state_dir,
				char **why);
/* Remove the subtree (job cgroups still there are killed first). */
void cgroups_close(struct cgroups *cg);
const char *cgroups_dir(const struct cgroups *cg);
/* CG_* controllers job cgroups get. */
unsigned cgroups_controllers(const struct cgroups *cg);
/* The limits lim asks for that need a controller job cgroups lack (CG_* bits). */
unsigned cgroups_missing(const struct cgroups *cg, const struct cg_limits *lim);
/* "memory, pids" for a CG_* mask (static buffer of the caller, len >= 32). */
const char *cg_controller_names(unsigned mask, char *buf, size_t len);
/*
 * Job cgroups a previous run of this daemon left (it crashed or was
 * killed): whatever still runs in them is killed, then they are removed.
 * Returns how many still had processes.
 */
int cgroups_reap_stale(struct cgroups *cg);
/* The path of job id's cgroup (malloc'd). */
char *cgroups_job_path(const struct cgroups *cg, uint64_t id);
/* {"enabled":true,"path":...,"controllers":[...]} */
json_t *cgroups_to_json(const struct cgroups *cg);

/*
 * One job's cgroup. cg_create makes it and writes the limits; -1 with
 * *err (malloc'd) if it cannot (then nothing is left behind).
 */
int cg_create(const char *path, const struct cg_limits *lim, char **err);
/* cgroup.procs of path for writing (O_CLOEXEC), for spawn: -1 with errno. */
int cg_procs_open(const char *path);
/* sig to every process in it; returns how many were signalled, -1 if it is gone. */
int cg_signal(const char *path, int sig);
/*
 * Freeze (on) or thaw everything in it (cgroup.freeze, Linux 5.2): frozen
 * processes stop where they are and see no signal of it (no SIGSTOP and
 * SIGCONT for their parent or their handlers); SIGKILL still ends them.
 * 0, or -1 with errno (ENOENT: no freezer here).
 */
int cg_freeze(const char *path, bool on);
/* SIGKILL to everything in it (cgroup.kill, or one by one before Linux 5.14). */
int cg_kill(const char *path);
/* Something still runs in it (cgroup.events populated 1). */
bool cg_populated(const char *path);
/*
 * Remove it: kill what is left, wait up to wait seconds for it to be
 * empty, rmdir. 0, or -1 with errno (ENOENT counts as removed: 0).
 */
int cg_remove(const char *path, double wait);
/* Read its usage; -1 if it is gone. */
int cg_read_usage(const char *path, struct cg_usage *u);
/* Only cpu.stat and memory.peak (what a finished job's result keeps); -1 if it is gone. */
int cg_read_final(const char *path, struct cg_usage *u);
/* Up to max member pids (cgroup.procs); -1 if it is gone. */
int cg_procs(const char *path, pid_t *out, size_t max);

/* Parsers (unit-tested). */
int cg_parse_cpu_stat(const char *text, struct cg_usage *u);
/* "max 100000" or "QUOTA 100000" for cpus (0: "max"). */
void cg_cpu_max(double cpus, char *buf, size_t len);
/* CG_* mask of the names in a cgroup.controllers line. */
unsigned cg_parse_controllers(const char *text);

#endif
