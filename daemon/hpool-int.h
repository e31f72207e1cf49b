/*
 * Internals of the handler worker pool, shared by its three files:
 * hpool.c (handlers, sizing, backoff, the API of hpool.h), hworker.c (one
 * worker: its protocol, its jobs, cancels and timeouts, its death) and
 * hchild.c (starting a worker process, its output, its CPU and memory).
 * Loop thread only.
 */
#ifndef TASKD_HPOOL_INT_H
#define TASKD_HPOOL_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include "clock.h"
#include "exec.h"
#include "hpool.h"
#include "hproto.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
	for ((var) = TAILQ_FIRST(head); (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);     \
	     (var) = (tvar))
#endif

#define HPOOL_PROTO_FD 3
#define HPOOL_BACKOFF_MIN 0.1 /* seconds */
#define HPOOL_BACKOFF_MAX 30.0
#define HPOOL_READ 65536      /* bytes read from a worker at a time */
#define HPOOL_LOG_LINE 1024   /* bytes of a worker's log line kept */
#define HPOOL_FREE_WAIT 5.0   /* seconds hpool_free waits before SIGKILL */
#define HPOOL_NOPIDFD_POLL 0.1

enum wstate { W_STARTING, W_READY, W_RETIRING };
enum stop { STOP_NONE, STOP_CANCEL, STOP_TIMEOUT };


/* A job in a worker. */
struct hjob {
	struct run *r;
	enum job_class cls;
	double start;       /* CLOCK_MONOTONIC */
	double deadline;    /* CLOCK_MONOTONIC, 0 = none */
	enum stop stop;
	double stop_at;     /* when the cancel was sent */
	int stage;          /* 0 cancel sent, 1 SIGTERM sent */
	double cpu_user, cpu_sys, share; /* this job's part of the worker's CPU and wall time */
	int fd[2];          /* its stdout/stderr files, -1 until written to */
	uint64_t bytes[2];
	uint64_t kept;      /* bytes written to its files, both streams (the run's max_kept) */
	bool truncated[2];
};

/* Text written by a worker when no single job owns it: to the log, by lines. */
struct logbuf {
	char buf[HPOOL_LOG_LINE];
	size_t len;
	bool cut; /* the current line was longer than buf */
};

struct hworker {
	struct handler *h;
	TAILQ_ENTRY(hworker) entry;
	pid_t pid;
	int gen;            /* the handler's configuration generation it runs */
	int fd;             /* our end of the socketpair, -1 once closed */
	int pidfd;
	int pipe[2];        /* its stdout and stderr, -1 at EOF */
	int statfd;         /* /proc/PID/stat, -1 if unreadable */
	struct event *ev_read, *ev_write, *ev_dead, *ev_timer, *ev_pipe[2];
	struct event *ev_flush;  /* made active to write what this loop iteration queued */
	struct hframer in;
	char *out;          /* bytes not written to the worker yet */
	size_t out_len, out_off, out_cap;
	enum wstate state;
	int concurrency;    /* from its hello */
	enum job_class mode; /* CLASS_CPU or CLASS_IO while it runs jobs, CLASS_AUTO when idle */
	struct hjob *jobs;  /* njobs of them, room for concurrency */
	int njobs;
	bool killed;
	bool quiet;         /* killed without blame (a reload replaced it before its hello) */
	char *why;          /* why we killed it */
	char *last_line;    /* the last line it wrote on stderr (a start that fails says why there) */
	struct logbuf log[2];
	uint64_t jobs_done;
	long rss_kb;
	double started_at;  /* unix time */
	double spawned;     /* CLOCK_MONOTONIC */
	double idle_since;
	double retire_at;   /* when its socket was closed to make it exit */
	int retire_stage;   /* 0: EOF sent, 1: SIGTERM sent */
	double cpu_mark[2]; /* worker's utime/stime at the last job start or end */
	double mark;        /* when */
};
TAILQ_HEAD(hworkers, hworker);

struct handler {
	struct hpool *hp;
	TAILQ_ENTRY(handler) entry;
	struct handler_config cfg;
	int gen;
	int max;            /* max_workers resolved */
	bool removed;
	struct hworkers workers;
	size_t pending_cpu, pending_io;
	int failures;
	double backoff;
	double next_spawn;  /* CLOCK_MONOTONIC; no start before */
	char *last_error;
	struct event *ev_backoff;
	struct {
		uint64_t done, failed, lost, timeout, cancelled;
		uint64_t started, start_failures, crashes, recycled;
	} n;
};
TAILQ_HEAD(handlers, handler);

struct hpool {
	struct event_base *base;
	struct hpool_callbacks cb;
	struct hpool_limits lim;
	char *self;
	struct handlers handlers;
	struct event *ev_tick;
	int cpu_busy;
	bool stopping;
	double clk_tck;
	long page_kb;
};

static inline double
hp_mono(void)
{
	return clock_now(CLOCK_MONOTONIC);
}

static inline void
hp_fd_close(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

/* hpool.c */
void hp_failure(struct handler *h, const char *what);
void hp_maintain(struct handler *h);
void hp_handler_gc(struct handler *h);
void hp_deliver(struct hpool *hp, struct run *r);
void hp_notify_ready(struct hpool *hp);

/* hworker.c */
void hw_watch(struct hworker *w);
void hw_arm(struct hworker *w);
void hw_send(struct hworker *w, char *line, size_t len);
void hw_close_socket(struct hworker *w);
void hw_kill(struct hworker *w, const char *why);
void hw_retire(struct hworker *w);
void hw_free(struct hworker *w);
void hw_start_job(struct hworker *w, struct run *r, enum job_class cls);
struct hjob *hw_job(struct hworker *w, uint64_t id);
struct run *hw_job_end(struct hworker *w, struct hjob *j, enum run_status st);
void hw_stop_job(struct hworker *w, struct hjob *j, enum stop why);
void hw_set_text(char **dst, char *text);
json_t *hw_json(const struct hworker *w);

/* hchild.c */
int hc_spawn(struct handler *h);
void hc_account(struct hworker *w);
void hc_drain(struct hworker *w, int stream);
void hc_log_flush(struct hworker *w, int stream);
void hc_pipe_cb(evutil_socket_t fd, short what, void *arg);

#endif
