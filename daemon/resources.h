/*
 * What running jobs use, and whether a queued one may start: the
 * scheduler's side of per-job cgroups (cgroup.h), live sampling and
 * reclassification (sampler.h), memory admission and the pressure brake
 * (admit.h), and what every run teaches the router (router.h). The
 * scheduler (sched.c, sched-dispatch.c) keeps the queues, slots and
 * dispatch; it asks here before a start, tells when a job starts and ends,
 * and hears back when a running job changes class or a round of samples is
 * done.
 *
 * Loop thread only.
 */
#ifndef TASKD_RESOURCES_H
#define TASKD_RESOURCES_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "job.h"

struct cgroups;
struct event_base;
struct resources;
struct router;

struct resources_callbacks {
	/* j, running, counts as c from now on (sched.c moves its slot). */
	void (*reclassified)(struct job *j, enum job_class c, void *arg);
	/* Samples are fresh: memory held and pressure may let jobs start. */
	void (*ticked)(void *arg);
	void *arg;
};

struct resources *resources_new(struct event_base *base, struct router *rt,
				const struct config *cfg, const struct resources_callbacks *cb);
void resources_free(struct resources *R);
/* After a reload changed *cfg: sampling, thresholds, the memory budget. */
void resources_configure(struct resources *R);
/*
 * Per-job cgroups from now on, taken over (closed by resources_free); or
 * none (cg NULL) and why, for the messages that refuse limits.
 */
void resources_set_cgroups(struct resources *R, struct cgroups *cg, const char *why);
struct cgroups *resources_cgroups(const struct resources *R);
/*
 * A command's limits: zeros take the config's defaults (jobs.default_*),
 * then -1 with *why (malloc'd) if taskd cannot apply them (no cgroups, or
 * not the controllers they need). Built-ins have none.
 */
int resources_limits(struct resources *R, int type, struct cg_limits *lim, char **why);
/* The config's default limits can be applied here; else -1 with *why. */
int resources_check_defaults(struct resources *R, const struct config *cfg, char **why);

/*
 * May j, at the head of its queue, start now as far as memory goes?
 * promised: memory a job waiting in the other queue was promised. Returns
 * WAIT_NONE, or WAIT_MEMORY with *promise what j asks to be kept for it.
 */
enum wait_reason resources_admit(struct resources *R, const struct job *j, uint64_t promised,
				 uint64_t *promise);
/* The pressure brake for a cpu-class start while cpu_running cpu jobs run. */
bool resources_brake(struct resources *R, size_t cpu_running);
/* j is starting with run r: its cgroup and limits go into r->spec; it is sampled. */
void resources_start(struct resources *R, struct job *j, struct run *r);
/* j's run ended (its result is in j->res): samples merged in, memory given back. */
void resources_end(struct resources *R, struct job *j);
/* Teach the router from j's run (after resources_end). */
void resources_learn(struct resources *R, const struct job *j);

/* For show: "route", "cgroup", "live" (while running), "mem_peak_kb" into o. */
void resources_job_json(const struct job *j, json_t *o);
/* For status: {"cgroups":...,"memory":...,"pressure":...,"sampling":...}. */
json_t *resources_status_json(struct resources *R);

#endif
