/*
 * Handler workers: the processes that run the job types users write
 * themselves (config `handlers`, doc/handlers.md), kept warm by taskd.
 *
 * Each handler has its own set of worker processes, all running the
 * handler's command (as its user, in its cwd, with its env), talking the
 * handler protocol (hproto.h) on fd 3. A worker says hello with how many
 * jobs it takes at once (its concurrency); then it gets jobs and answers
 * each with a result. The pool starts workers when jobs wait (up to the
 * handler's max_workers), keeps min_workers warm, retires workers that
 * stayed idle past idle_timeout, recycles one after max_jobs_per_worker
 * jobs or when its RSS passes max_worker_rss, kills and replaces (with
 * backoff) one that crashes, hangs past a job's deadline or breaks the
 * protocol, and routes its stdout/stderr to the job it runs.
 *
 * Packing: a job routed cpu takes a worker to itself (one job in the
 * process, as a cpu-class command takes a prefork worker); jobs routed io
 * share a worker up to its concurrency. A worker runs cpu or io jobs,
 * never both at once. The scheduler owns the queues and the CPU budget
 * (cpu handler jobs and cpu-class commands together never run more than
 * the cores the process pool has): it asks hpool_room() before
 * hpool_submit(). Loop thread only.
 */
#ifndef TASKD_HPOOL_H
#define TASKD_HPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

struct event_base;
struct run;
struct hpool;
struct handler;

struct hpool_callbacks {
	/* A run ended (r->res filled in; RUN_LOST when its worker died). The pool forgets r. */
	void (*done)(struct run *r, void *arg);
	/* A worker has room for more jobs (said hello, finished one): dispatch. */
	void (*ready)(void *arg);
	/* A worker sent a progress message for r's job. */
	void (*progress)(struct run *r, const char *message, void *arg);
	void *arg;
};

/* What hpool needs of the rest of the configuration. */
struct hpool_limits {
	int cpu_max;          /* max_workers 0 of a cpu handler: the process pool's size */
	int io_max;           /* max_workers 0 of an io or auto handler: thread_pool.max_threads */
	double kill_grace;    /* cancel → SIGTERM → SIGKILL steps */
	uint64_t max_frame;   /* longest line a worker may send */
	uint64_t max_output;  /* bytes of a job's stdout/stderr kept, 0 = unlimited */
};

/* self: the taskd binary (workers start through `taskd --handler-exec`). */
struct hpool *hpool_new(struct event_base *base, const char *self,
			const struct hpool_callbacks *cb);
/*
 * Take a configuration (at start and at each reload): new handlers start
 * their min_workers; a changed command, env, cwd, user or concurrency
 * retires the old workers (each after its running jobs) and starts new
 * ones; a handler no longer listed takes no more jobs, and its workers go
 * once their jobs are done (queued jobs are the scheduler's business).
 */
void hpool_configure(struct hpool *hp, const struct handler_config *hs, size_t n,
		     const struct hpool_limits *lim);
/* A configured handler by name, NULL if none (or removed). */
struct handler *hpool_find(const struct hpool *hp, const char *name);
/* Can a job routed cls (CLASS_CPU or CLASS_IO) start on h right now? */
bool hpool_room(const struct handler *h, enum job_class cls);
/* Give r to a worker of h with room (r->worker_pid set); -1 if there is none. */
int hpool_submit(struct handler *h, struct run *r, enum job_class cls);
/* This many jobs of h wait, by class: start workers for them (within max_workers). */
void hpool_demand(struct handler *h, size_t cpu, size_t io);
/* Cancel r: a cancel message; SIGTERM, then SIGKILL, of its worker if it does not stop. */
void hpool_cancel(struct hpool *hp, struct run *r);
/* Jobs running alone in a worker as cpu jobs, over all handlers (the CPU budget). */
int hpool_cpu_busy(const struct hpool *hp);
/* [{"name","class","workers":[...],"counters":{...},"backoff","last_error",...}] */
json_t *hpool_to_json(const struct hpool *hp);
/* One handler's part of hpool_to_json. */
json_t *hpool_handler_json(const struct handler *h);
/* No new jobs; idle workers exit now, busy ones after their jobs. */
void hpool_stop(struct hpool *hp);
/* Stop, wait for (SIGKILL after kill_grace) and reap every worker, free. */
void hpool_free(struct hpool *hp);

/*
 * `taskd --handler-exec NAME DAEMONPID UID GID CWD NARGS ARGV...`, started
 * with the worker's environment: the child side of a worker's start. Takes
 * the user's groups and ids (UID "-": stays who it is), enters CWD, asks
 * for SIGKILL when taskd dies, and execs ARGV with that environment. A failure is one line on stderr (taskd
 * shows it as the handler's last error) and exit 126/127.
 */
int hpool_exec_main(int argc, char **argv);

/*
 * Sizing, as a pure function (unit-tested): how many workers to start
 * (> 0) or idle ones to retire (< 0).
 */
struct hplan {
	int alive;        /* starting + ready, not retiring */
	int starting;
	int idle;         /* ready with no job */
	int io_free;      /* free slots in workers running io jobs */
	int idle_expired; /* idle ones idle for longer than idle_timeout */
	size_t pending_cpu;
	size_t pending_io;
	int min, max;
	int concurrency;  /* slots a new worker will likely have */
};
int hpool_plan(const struct hplan *p);

#endif
