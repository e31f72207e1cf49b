/*
 * taskd's metrics: what the exposition (metrics.c) is filled with, for
 * GET /metrics (http.c) and the metrics op alike. Gauges are read from the
 * parts of the daemon when a scrape asks; the figures nothing else keeps
 * (starts and ends by class, run times and queue waits, router decisions,
 * store commit latency) are gathered here as they happen: from a job
 * observer (jobs_observe) and from a call where the event is. Loop thread
 * only; all of it is cheap enough to stay on whether or not anyone scrapes.
 */
#ifndef TASKD_MONITOR_H
#define TASKD_MONITOR_H

#include "config.h"
#include "metrics.h"

struct evbuffer;
struct jobs;
struct taskd;

/* Watch the job table (once, before jobs are restored, so jobs lost by a restart count). */
void monitor_watch(struct jobs *js);
void monitor_unwatch(struct jobs *js);

/* The router sent a class-auto job to c (sched_add). */
void monitor_routed(enum job_class c);
/* A store commit (begin to commit) / an fsync took this many seconds. */
void monitor_store_commit(double seconds);
void monitor_store_fsync(double seconds);

/* Every metric of the daemon, in format f. */
void monitor_render(struct taskd *td, struct evbuffer *out, enum metrics_format f);

#endif
