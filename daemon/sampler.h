/*
 * Live measurement of running commands (doc/routing.md "Live sampling").
 *
 * Every router.sample_interval seconds, while commands run, each one's CPU use
 * and memory are read: from its cgroup (cpu.stat, memory.current or its
 * members' RSS), or where it has none (cgroups off, or its cgroup could
 * not be made) from its process tree in /proc (proctree.h); the time its
 * processes waited for a CPU from their schedstat. One period's ratio is
 * the CPU it used over the time it could have run (wall minus the wait
 * for a CPU, sampler_period).
 * reclass_step turns ratios into reclassification: a command that counts
 * as io but burns at least router.cpu_ratio of a core for `periods`
 * periods in a row counts as cpu from then on, and the reverse. The
 * scheduler is told through callbacks; nothing here moves a command.
 *
 * Loop thread only. Built-ins are not sampled (they run inside taskd or a
 * worker); they are measured when they end.
 */
#ifndef TASKD_SAMPLER_H
#define TASKD_SAMPLER_H

#include <stdbool.h>

#include <jansson.h>

#include "config.h"
#include "psi.h"

struct event_base;
struct job;
struct sampler;

/* Consecutive periods on one side of the threshold (reclass_step's state). */
struct reclass {
	int hot;
	int cold;
};

/*
 * One period's ratio for a command that counts as `now`: the class it
 * should count as after it (now, unless `periods` periods in a row say
 * otherwise; periods <= 0: never).
 */
enum job_class reclass_step(struct reclass *st, enum job_class now, double ratio,
			    double cpu_ratio, int periods);

/* A period it could run less than this share of says nothing (it waited for a CPU). */
#define SAMPLER_MIN_RUN_SHARE 0.25

/*
 * One period of dt seconds in which a command used dcpu seconds of CPU and
 * its processes waited dwait seconds for one: the time it could have run
 * into *wall and its ratio into *ratio. False if the period says nothing:
 * it could run less than SAMPLER_MIN_RUN_SHARE of it (starved by other
 * work, its ratio would be noise), or dt is not positive. Several
 * processes' waits add up: beyond what leaves room for the CPU they used,
 * none of them blocked (router_sample's rule).
 */
bool sampler_period(double dt, double dcpu, double dwait, double *wall, double *ratio);

struct sampler_config {
	double interval;     /* seconds between samples, 0 = no live sampling */
	int periods;         /* reclassify after this many periods in a row, 0 = never */
	double cpu_ratio;    /* router.cpu_ratio */
	bool memory_ctl;     /* job cgroups have the memory controller (memory.current) */
	const char *proc;    /* "/proc" (tests: a stand-in) */
};

struct sampler_callbacks {
	/* j now counts as class c; cpu/wall: what it used over the periods that decided it. */
	void (*reclassified)(struct job *j, enum job_class c, double cpu, double wall, void *arg);
	/* A round of samples is done (memory held and pressure are fresh). */
	void (*ticked)(void *arg);
	void *arg;
};

/* What a command's samples said, when it ends. */
struct sampler_result {
	long peak_kb;      /* largest sampled memory of its tree, -1 if never sampled */
	bool reclassified; /* counted as another class at some point */
	double tree_wait;  /* seconds its processes waited for a CPU, summed (as far as sampled) */
	int samples;
};

struct sampler *sampler_new(struct event_base *base, const struct sampler_callbacks *cb);
void sampler_free(struct sampler *m);
void sampler_configure(struct sampler *m, const struct sampler_config *cfg);
/* j started (a command: j->run set): sample it from now on. */
void sampler_watch(struct sampler *m, struct job *j);
/* j ended: stop, and say what its samples said (out may be NULL). */
void sampler_forget(struct sampler *m, struct job *j, struct sampler_result *out);
/* Its memory now (the last sample), -1 if not sampled yet. */
long sampler_rss_kb(const struct job *j);
/* System pressure at the last tick ("some" avg10, percent; 0 if unknown). */
double sampler_pressure_cpu(const struct sampler *m);
double sampler_pressure_memory(const struct sampler *m);
/* Read /proc/pressure now (when nothing runs there is no tick). */
void sampler_read_pressure(struct sampler *m);
/* {"source","samples","cpu_ratio","rss_kb","peak_kb","reclassified_at"} while it runs, or NULL. */
json_t *sampler_job_json(const struct job *j);

#endif
