/*
 * The cpu/io router (doc/routing.md): the whole routing policy. It decides
 * which pool runs a job of class auto, from what jobs of the same kind
 * measured before, and it decides what a finished run teaches it. Pure
 * logic on the loop thread: no I/O, no clocks.
 *
 * The scheduler (sched.c) calls router_route() when it queues a job and
 * router_learn_run() when a run comes back; the rest is for those two,
 * status and the tests.
 *
 * Kind key: the job's name if given, else a built-in's type name, else the
 * basename of argv[0]. Per key it keeps an EWMA of cpu_time / wall_time over
 * finished runs; ratio >= cpu_ratio → cpu, below → io; a key never seen →
 * default_class. The table is bounded (least recently used keys go first).
 */
#ifndef TASKD_ROUTER_H
#define TASKD_ROUTER_H

#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "exec.h"
#include "job.h"

#define ROUTER_ALPHA 0.3        /* EWMA weight of the newest sample */
#define ROUTER_MAX_KEYS 1024
#define ROUTER_MIN_WALL 0.001   /* seconds: shorter runs say nothing about the ratio */
#define ROUTER_KEY_MAX 64       /* longer keys are cut */

struct router;

struct router *router_new(enum job_class default_class, double cpu_ratio);
void router_free(struct router *rt);
/* Apply new settings (reload); learned samples are kept. */
void router_configure(struct router *rt, enum job_class default_class, double cpu_ratio);

/*
 * Route a job: its kind key into key (size >= ROUTER_KEY_MAX + 1) and the
 * class it runs as: its own class unless auto, else the decision for its
 * kind (CLASS_CPU or CLASS_IO).
 */
enum job_class router_route(struct router *rt, const struct job_spec *spec, char *key,
			    size_t len);
/*
 * A run of a job of kind key came back: learn from it if its outcome says
 * how CPU-bound the kind is (it exited, was killed by a signal or timed
 * out; not a cancelled, failed-to-start or lost run). The sample is
 * cpu / (wall - time spent waiting for a CPU).
 */
void router_learn_run(struct router *rt, const char *key, const struct run_result *r);

/* The kind key of a job into buf (size >= ROUTER_KEY_MAX + 1). */
const char *router_key(const char *name, const char *type, char *const *argv, char *buf,
		       size_t len);
/* CLASS_CPU or CLASS_IO for a job of class auto with this key. */
enum job_class router_decide(struct router *rt, const char *key);
/* Learn one sample: cpu and wall seconds of a finished run of kind key. */
void router_learn(struct router *rt, const char *key, double cpu_seconds, double wall_seconds);
size_t router_size(const struct router *rt);
/* [{"key","samples","cpu_ratio","class"}...], most recently used first. */
json_t *router_to_json(const struct router *rt);

#endif
