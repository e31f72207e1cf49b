/*
 * Private to the three files of the process pool: ppool.c (the workers:
 * spawning, killing, retiring, deaths; stopping and freeing the pool),
 * ppool-run.c (running jobs: submitting, the workers' messages, suspend,
 * cancel, stopping output) and ppool-size.c (sizing: the plan, keeping to
 * it, the state counts and the status JSON; creating and reconfiguring the
 * pool). Loop thread only.
 */
#ifndef TASKD_PPOOL_PRIVATE_H
#define TASKD_PPOOL_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <sys/types.h>

#include <event2/util.h>

#include "clock.h"
#include "ppool.h"

#define PPOOL_FAILED_START 1.0 /* dying sooner than this after spawn is a failed start */

enum wstate { W_STARTING, W_IDLE, W_BUSY, W_EXITING };

struct pworker {
	struct ppool *pp;
	TAILQ_ENTRY(pworker) entry;
	int index;
	pid_t pid;
	int fd;    /* our end of the socketpair, -1 once closed */
	int pidfd; /* -1: no pidfd_open (e.g. under valgrind), poll with waitid */
	struct event *ev_read;
	struct event *ev_dead;   /* pidfd readable, or a polling timer */
	struct event *ev_cancel; /* safety timer after a cancel */
	struct event *ev_timeout; /* the job's timeout, enforced from here if the worker does not */
	enum wstate state;
	struct run *run; /* while busy */
	bool cancel;     /* cancel of run requested */
	bool timed_out;  /* killed by ev_timeout: the run ends as a timeout */
	pid_t job_pid;   /* from "started", 0 if unknown */
	struct event *ev_job;  /* the command's pidfd: when it exits, by our clock */
	double job_exited;     /* CLOCK_MONOTONIC, 0 until seen */
	bool killed;     /* we sent SIGKILL */
	char *why;       /* why we killed it, or NULL */
	uint64_t jobs_done;
	long rss_kb;
	double started_at; /* unix time */
	double spawned;    /* CLOCK_MONOTONIC */
	double idle_since; /* CLOCK_MONOTONIC */
	double job_start;  /* CLOCK_MONOTONIC */
	double job_started_at;
	double timeout_at;   /* CLOCK_MONOTONIC when ev_timeout fires, 0 if it is not set */
	double timeout_left; /* while its job is suspended: what was left of ev_timeout, -1 none */
};
TAILQ_HEAD(pworkers, pworker);

struct ppool {
	struct event_base *base;
	struct ppool_config cfg;
	struct ppool_callbacks cb;
	char *self;
	char *live_dir;  /* workers are recorded there while they live (leftover.h), or NULL */
	struct pworkers workers;
	struct event *ev_tick;    /* 1 s maintenance */
	struct event *ev_backoff; /* next spawn after a failed start */
	size_t pending;
	int extra;         /* workers allowed above max_workers (ppool_set_extra) */
	int failures;      /* consecutive failed starts */
	double backoff;    /* current delay, seconds */
	double next_spawn; /* CLOCK_MONOTONIC; no spawn before */
	bool stopping;
};

static inline int
imin(int a, int b)
{
	return a < b ? a : b;
}

static inline int
imax(int a, int b)
{
	return a > b ? a : b;
}

/* ppool.c: start one worker (-1 if it could not be); retire an idle or starting one. */
int spawn_worker(struct ppool *pp);
void worker_retire(struct pworker *w);
/* ppool.c: close our end of w's socket (its death still comes through the pidfd). */
void close_socket(struct pworker *w);
/* ppool.c: stop watching the command's exit (its run is over). */
void unwatch_job(struct pworker *w);
/* ppool.c: kill a worker we no longer trust (why: logged once); its death comes via the pidfd. */
void worker_kill(struct pworker *w, const char *why);
/* ppool.c: send msg (taken) to w; -1 if it cannot be sent. */
int worker_msg(struct pworker *w, json_t *msg);
/* ppool.c: the daemon's own wall time for w's run, if its command exited sooner than res says. */
void own_wall(const struct pworker *w, struct run_result *res);
/* ppool.c: hand a finished run to the done callback. */
void deliver(struct ppool *pp, struct run *r);
/* ppool.c: tell the ready callback when a worker is idle. */
void notify_ready(struct ppool *pp);
/* ppool-run.c: a worker's socket is readable: its message, checked against its state. */
void ppool_read_cb(evutil_socket_t fd, short what, void *arg);
/* ppool-size.c: run the plan (start or retire workers); the idle worker idle longest/shortest. */
void maintain(struct ppool *pp);
struct pworker *pick_idle(const struct ppool *pp, bool longest);

#endif
