/*
 * One job run, self-contained: a struct run is built by the event loop from
 * a job, handed to a pool thread, executed there (exec_run for commands,
 * module_run for module types, the built-in ones too), and handed back with
 * its result filled in. It owns copies of everything it needs and never points into the job
 * table, so the thread and the loop share nothing but the struct itself,
 * which only one side touches at a time (plus the cancel eventfd).
 */
#ifndef TASKD_EXEC_H
#define TASKD_EXEC_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <spawn.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "tpool.h"

enum run_status {
	RUN_EXITED = 0,  /* exited by itself: res.exit_code */
	RUN_SIGNALED,    /* killed by a signal it did not get from us: res.signal */
	RUN_TIMEOUT,     /* killed because spec.timeout passed */
	RUN_CANCELLED,   /* killed because run_cancel() was called */
	RUN_FAILED,      /* could not be started: res.error, res.exit_code 126/127 */
	RUN_LOST,        /* the worker process running it died: res.error says how */
};

struct run_spec {
	uint64_t job_id;
	int type;           /* BUILTIN_EXEC for commands, else a module type's index (modules.h) */
	char **argv;        /* NULL-terminated; for module types, their arguments */
	char **env;         /* NULL-terminated "K=V"; NULL = inherit nothing but a default PATH */
	char *cwd;          /* NULL = "/" */
	char *in_path;      /* stdin: the job's stored input (output.h), NULL = /dev/null */
	char *out_path;     /* stdout file (created 0600, truncated); NULL = /dev/null */
	char *err_path;     /* stderr file; NULL = /dev/null */
	double timeout;     /* seconds, 0 = none */
	double kill_grace;  /* seconds between SIGTERM and SIGKILL */
	uint64_t max_output; /* bytes kept per stream, 0 = unlimited */
	uint64_t max_kept;   /* bytes kept over both streams, 0 = unlimited (quota.h) */
	bool quiet;          /* keep none of the output from the start (quota.h; run_stop_output) */
	int nice;           /* applied to a command with setpriority() after spawn; 0 = leave */
	bool as_user;       /* run the command as uid/gid (a root daemon, another user's job) */
	uid_t uid;
	gid_t gid;
	char *cgroup;       /* a command's own cgroup to create and run in, or NULL */
	struct cg_limits limits; /* written into it (a command with limits fails without it) */
	char *input;        /* handler and module jobs: the job's input as base64 text, or NULL */
	uint64_t max_result; /* module jobs: the longest result (limits.max_frame), 0 = no limit */
	char *track_path;   /* record the command's process here while it runs (leftover.h); NULL = don't */
};

struct run_result {
	enum run_status status;
	int exit_code;      /* -1 when it did not exit by itself */
	int signal;         /* terminating signal, 0 if none */
	double cpu_user;    /* seconds */
	double cpu_sys;
	long max_rss_kb;    /* -1 = unknown */
	double wall;        /* seconds, start to finish */
	double cmd_wall;    /* a command's own lifetime, spawn to exit (0 for built-ins, unknown) */
	double runq_wait;   /* seconds it was runnable but waiting for a CPU (schedstat), 0 unknown */
	double started_at;  /* unix time, fractional */
	double finished_at;
	uint64_t out_bytes; /* bytes the job wrote (kept + dropped) */
	uint64_t err_bytes;
	bool out_truncated;
	bool err_truncated;
	pid_t pid;          /* of the command, 0 for built-ins */
	long mem_peak_kb;   /* peak memory of its whole tree (cgroup memory.peak, or samples), -1 */
	bool in_cgroup;     /* it ran in its own cgroup (spec.cgroup) */
	char *result;       /* a module type's or handler's result (text), malloc'd, or NULL */
	bool result_json;   /* result is JSON text, not plain text */
	char *error;        /* human message when it failed to run, malloc'd, or NULL */
	char *cgroup_error; /* why it ran without the cgroup it was given, malloc'd, or NULL */
};

struct run {
	struct tpool_task task; /* must stay first: the pool hands it back */
	struct run_spec spec;
	struct run_result res;
	int cancel_fd;          /* eventfd; readable once run_cancel() (or run_suspend()) was called */
	_Atomic bool cancelled; /* set by run_cancel() before it writes cancel_fd */
	_Atomic bool suspend;   /* run_suspend(): the command is to be stopped (SIGSTOP) */
	_Atomic bool controlled; /* run_suspend() wrote cancel_fd: drain it before reuse */
	_Atomic bool quiet;     /* run_stop_output(): keep no more of the command's output */
	pid_t worker_pid;       /* process pool: the worker running it (set by ppool) */
	_Atomic int live_pid;   /* the command's pid once spawned, readable by the loop while it runs */
	/* Called by exec_run right after the command was spawned (res.pid set), or NULL. */
	void (*spawned)(struct run *r, void *arg);
	void *spawned_arg;
	void *owner;            /* for the loop side (the job), never used by the runner */
	/*
	 * A module job's last progress message (run_set_progress), read by
	 * the loop while it runs (run_progress); progress_cb, if set, is also
	 * called with it on the runner's side (a worker passes it on).
	 */
	pthread_mutex_t progress_lock;
	char *progress;
	void (*progress_cb)(struct run *r, const char *message, void *arg);
	void *progress_arg;
};

/*
 * A run with spec zeroed; the caller fills spec. One this process executes
 * (run_execute) is cancellable: it has a cancel eventfd (a fresh one, or a
 * drained one reused from a run freed earlier). One a process or handler
 * worker executes is cancelled by a message to the worker: cancel_fd -1, two
 * system calls less per job once more runs are alive than eventfds kept.
 */
struct run *run_new(bool cancellable);
void run_free(struct run *r);
/* Free a spec's strings and zero it (safe on a zeroed spec). */
void run_spec_free(struct run_spec *s);
/* Free a result's strings and set it to "nothing yet" (exit_code, sizes -1). */
void run_result_clear(struct run_result *res);
/* Move src into dst (dst cleared first); src keeps no strings. */
void run_result_move(struct run_result *dst, struct run_result *src);

/* From any thread: ask the run to stop (SIGTERM to the group, SIGKILL after kill_grace). */
void run_cancel(struct run *r);
bool run_cancelled(struct run *r); /* has run_cancel() been called? (no system call) */
/*
 * From any thread (async-signal-safe): stop (suspend) or continue the
 * command's process group; its timeout does not run while it is stopped.
 * The latest call wins. A cancel continues a stopped command first.
 */
void run_suspend(struct run *r, bool suspend);
/*
 * From any thread, or a signal handler: keep no more of the command's
 * output (what it writes from now on is counted and dropped, the stream is
 * marked truncated, as beyond max_output). Its owner's output quota is used up.
 */
void run_stop_output(struct run *r);

/* From the runner: the job's progress message now (copied). */
void run_set_progress(struct run *r, const char *message);
/* From the loop: a copy of the last progress message, or NULL. */
char *run_progress(struct run *r);

/* Execute r (dispatches to exec_run or module_run); fills r->res. Blocks. */
void run_execute(struct run *r);

/*
 * Run a command: posix_spawn in its own session (so its own process group
 * too, with the command's pid as its id; with spec.cgroup: spawncg.c, into
 * that cgroup, made here and removed at the end with everything left in it;
 * its CPU is then the whole tree's), recorded at spec.track_path until
 * reaped, stdin its input file (spec.in_path) or /dev/null,
 * stdout/stderr through pipes into the output files capped at max_output,
 * wait for its own pid (pidfd + wait4, never waitpid(-1)), enforce timeout
 * and cancel. argv[0] is looked up in PATH from spec.env.
 */
void exec_run(struct run *r);

/* Seconds a task spent waiting on a run queue, from a /proc/.../schedstat file; -1 if unknown. */
double run_schedstat_wait(const char *path);
/* The same for the calling thread, from a descriptor it keeps open (closed when the thread exits). */
double run_schedstat_self(void);

/*
 * `taskd --run-as UID GID CWD PATH NARGS ARGV... ENV...`: the child side of a
 * command run as its submitter. Started by exec_run (as root, with an empty
 * environment, so nothing of the user's reaches the privileged part), it
 * takes the user's groups and ids, enters CWD as that user and execs PATH
 * with the job's argv and environment. Failures go back on fd 3 as
 * "CODE message" (126/127 like the shell, 1 for cwd). Returns an exit code.
 */
int exec_runas_main(int argc, char **argv);

/*
 * Spawn attributes for a child of the daemon: empty signal mask, every
 * catchable signal back to its default, and (own_session) a session of its
 * own, which makes it the leader of a new process group too.
 */
int exec_spawn_attrs(posix_spawnattr_t *attr, bool own_session);

/* "No such file or directory" lookups as the shell does: 0, or 126/127 + message. */
int exec_resolve(const char *file, char *const *env, const char *cwd, char **path, char **error);

#endif
