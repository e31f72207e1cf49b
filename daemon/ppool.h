/*
 * The prefork process pool for cpu-class jobs (doc/design.md "The process
 * pool"), PHP-FPM style.
 *
 * Workers are `taskd --worker FD` processes started with posix_spawn (never
 * fork() of the threaded daemon), each talking to the loop over its own
 * SOCK_SEQPACKET socketpair (messages: daemon/worker.h). One job at a time
 * per worker. The pool lives on the loop thread: it watches each worker's
 * socket and pidfd with libevent, hands a struct run to an idle worker,
 * and calls the done callback with the run's result filled in (RUN_LOST
 * when the worker died under it). Workers die with the daemon
 * (PR_SET_PDEATHSIG + EOF on the socket); each is recorded in live_dir
 * while it lives, in case one outlives a crash (leftover.h).
 */
#ifndef TASKD_PPOOL_H
#define TASKD_PPOOL_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"

struct event_base;
struct run;
struct ppool;

struct ppool_config {
	enum ppool_mode mode;
	int min_workers;
	int max_workers;        /* resolved: never 0 (0 in the config = number of CPUs) */
	int min_spare;
	int max_spare;
	int max_jobs_per_worker; /* 0 = never recycle for that */
	uint64_t max_worker_rss; /* bytes, 0 = no limit */
	double idle_timeout;     /* seconds (ondemand, and dynamic above min_spare) */
};

struct ppool_callbacks {
	/* A run finished (or was lost); r->res is filled in. The pool forgets r. */
	void (*done)(struct run *r, void *arg);
	/* A worker became idle: the scheduler may have work for it. */
	void (*ready)(void *arg);
	void *arg;
};

/*
 * self: path of the taskd binary to spawn in worker mode (e.g. /proc/self/exe
 * resolved). live_dir: where each worker is recorded while it lives
 * (leftover.h), or NULL.
 */
struct ppool *ppool_new(struct event_base *base, const struct ppool_config *cfg, const char *self,
			const char *live_dir, const struct ppool_callbacks *cb);
/* Idle workers that can take a job right now. */
int ppool_idle(const struct ppool *pp);
/* Give r to an idle worker (sets r->worker_pid); -1 if none is idle. */
int ppool_submit(struct ppool *pp, struct run *r);
/* The scheduler has this many cpu jobs waiting: start workers if the mode allows. */
void ppool_demand(struct ppool *pp, size_t pending);
/* max_workers as configured (resolved): the scheduler's cpu slots. */
int ppool_max_workers(const struct ppool *pp);
/*
 * Workers allowed above max_workers: as many as running jobs hold a worker
 * without holding a cpu slot (suspended ones, and ones reclassified to io),
 * so the slot they freed can be used.
 */
void ppool_set_extra(struct ppool *pp, int n);
/*
 * Stop (suspend) or continue the command of r's worker: its process group
 * (the worker signals it, exec.c), and its timeout here stops or runs again.
 */
void ppool_suspend(struct ppool *pp, struct run *r, bool suspend);
/* Cancel r: a command gets SIGTERM/SIGKILL through its worker; a built-in's worker is killed. */
void ppool_cancel(struct ppool *pp, struct run *r);
/* Keep no more of r's output (SIGUSR2 queued with its job id; run_stop_output in the worker). */
void ppool_stop_output(struct ppool *pp, struct run *r);
/* New sizes/mode live: surplus idle workers exit now, busy ones after their job. */
void ppool_configure(struct ppool *pp, const struct ppool_config *cfg);
/* {"mode","min","max","workers":[{"pid","state","job","jobs_done","rss_kb","started_at"}],...} */
json_t *ppool_to_json(const struct ppool *pp);
/* Ask every worker to exit (busy ones finish or are cancelled by the caller first). */
void ppool_stop(struct ppool *pp);
/* Stop, wait for (and reap) every worker, free. */
void ppool_free(struct ppool *pp);

/*
 * Sizing, as a pure function of the pool's state (unit-tested): how many
 * workers to start (> 0) or idle ones to retire (< 0) now.
 */
struct ppool_state {
	int alive;     /* starting + idle + busy (not exiting) */
	int idle;
	int starting;
	int busy;
	size_t pending; /* cpu jobs waiting in the scheduler */
	int idle_expired; /* idle workers idle for longer than idle_timeout */
};
int ppool_plan(const struct ppool_config *cfg, const struct ppool_state *st);
/* The pool's current counts (for status lines). */
void ppool_get_state(const struct ppool *pp, struct ppool_state *st);

#endif
