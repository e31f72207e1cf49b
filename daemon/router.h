/*
 * The cpu/io router (doc/routing.md): the whole routing policy. It decides
 * which pool runs a job of class auto from what jobs of the same kind
 * measured before, and it owns which measurements count and how. Pure
 * logic on the loop thread: no I/O, no clocks.
 *
 * The scheduler (sched.c) calls router_route() when it queues a job (and
 * again at the head of its queue) and router_learn_run() when a run comes
 * back (through resources.c, which adds what live sampling measured); the
 * sampler's reclassifications teach it through router_learn_live(). The
 * rest is for those, admission (router_peak_kb), status and the tests.
 *
 * Kinds: a job has up to KIND_MAX_KEYS kind keys, finest first (kindkey.h).
 * Per key the router keeps an EWMA of cpu / wall over the runs that taught
 * it (two runs in a row on the other side of cpu_ratio reset it to their
 * mean), the number of samples, and the learned peak memory of the kind.
 * Decision: the finest key with at least min_samples samples decides
 * (ratio >= cpu_ratio → cpu, below → io); if none has that many, the
 * coarsest key with any sample; if no key has one, default_class. Every
 * run teaches all of its keys. The table is bounded (least recently used
 * keys go first) and found by hash.
 */
#ifndef TASKD_ROUTER_H
#define TASKD_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "config.h"
#include "kindkey.h"

struct job_spec;
struct run_result;

#define ROUTER_ALPHA 0.3        /* EWMA weight of the newest sample */
#define ROUTER_CHANGE_RUNS 2    /* runs in a row on the other side that reset the EWMA */
#define ROUTER_MAX_KEYS 1024
#define ROUTER_MIN_WALL 0.001   /* seconds: shorter runs say nothing about the ratio */
#define ROUTER_KEY_MAX KIND_KEY_MAX

struct router_config {
	enum job_class default_class; /* CLASS_CPU or CLASS_IO (anything else: io) */
	double cpu_ratio;             /* 0..1 */
	int min_samples;              /* samples a key needs to decide, >= 1 */
};

/* Why a job went where it went. */
enum route_by {
	ROUTE_CLASS = 0,  /* --class cpu|io: the submitter decided */
	ROUTE_KEY,        /* class auto: a kind key decided */
	ROUTE_DEFAULT,    /* class auto: no key had a sample, router.default_class */
	ROUTE_NO_PPOOL,   /* no process pool: everything runs on threads */
	ROUTE_UNSURE,     /* a coarser key said cpu, the cpu slots were full: a thread, measured */
	ROUTE_UNKNOWN,    /* routed by a taskd that did not record how (an older record) */
};

/* The decision for one job, kept with it (`show`'s "route"). */
struct route {
	enum route_by by;
	enum job_class decided;         /* CLASS_CPU or CLASS_IO */
	int level;                      /* index of key in the job's keys, -1: none decided */
	char key[ROUTER_KEY_MAX + 1];   /* the key that decided, "" if none */
	uint64_t samples;               /* that key's samples at the decision */
	double ratio;                   /* its cpu ratio then */
};

struct router;

struct router *router_new(const struct router_config *cfg);
void router_free(struct router *rt);
/* Apply new settings (reload); learned samples are kept. */
void router_configure(struct router *rt, const struct router_config *cfg);

/*
 * Route a job with kind keys k (kind_keys() of its spec): its own class
 * unless auto (ROUTE_CLASS), else the decision for its kinds. One rule
 * needs the scheduler's state: a guess does not wait for a cpu slot. A job
 * whose own (finest) key has no sample, sent to cpu only by a coarser key
 * (python3 for a script never seen), runs on a thread while every cpu slot
 * is taken (cpu_full): ROUTE_UNSURE, where live sampling measures it and
 * counts it as cpu if it burns a core. Returns out->decided.
 */
enum job_class router_route(struct router *rt, const struct job_spec *spec,
			    const struct kind_keys *k, bool cpu_full, struct route *out);
/* CLASS_CPU or CLASS_IO for a job of class auto with keys k; *out says why. */
enum job_class router_decide(struct router *rt, const struct kind_keys *k, struct route *out);
/*
 * The learned peak memory of the kind in KiB: of the finest key that has
 * seen a finished run of its kind, -1 if none has. 0 means its runs ended
 * before a sample could see them.
 */
long router_peak_kb(struct router *rt, const struct kind_keys *k);

/*
 * What a finished run teaches, or false: runs that exited, were killed by
 * a signal or timed out, for at least ROUTER_MIN_WALL seconds; cancelled,
 * lost or unstartable runs say nothing about their kind. The sample is cpu
 * / (wall - the time it waited for a CPU): a CPU-bound job on a busy
 * machine is still CPU-bound, it just queued for the cores. A command's
 * wall is its own lifetime (cmd_wall: what taskd did before the spawn and
 * after the exit is not the command's, and on a busy machine it waits for
 * a CPU too); the wait is summed over its processes, and where the sum
 * leaves less room than the CPU they used (several waited at once) the
 * wall is taken as that CPU: nothing blocked.
 */
bool router_sample(const struct run_result *r, double *cpu, double *wall);
/*
 * Learn one cpu/wall sample of a finished run for every key of k (no-op
 * if it says nothing): the EWMA, or, for the second run in a row on the
 * other side of cpu_ratio, the mean of those runs (a change of behaviour
 * is followed by the third run, one odd run is not).
 */
void router_learn(struct router *rt, const struct kind_keys *k, double cpu, double wall);
/*
 * A run of a job of type type (enum builtin_type) with kind keys k came
 * back: learn its sample (router_sample) for every key, and a command's
 * peak memory (r->mem_peak_kb; a command that ended before it could be
 * sampled counts as 0) when it exited, was killed or timed out. True if it
 * gave a cpu sample, then in *cpu and *wall.
 */
bool router_learn_run(struct router *rt, const struct kind_keys *k, int type,
		      const struct run_result *r, double *cpu, double *wall);
/* The same at a running job's reclassification: the EWMA only (its end counts the run). */
void router_learn_live(struct router *rt, const struct kind_keys *k, double cpu, double wall);
/* Learn the peak memory (KiB, >= 0) of one finished run for every key of k. */
void router_learn_peak(struct router *rt, const struct kind_keys *k, long peak_kb);

size_t router_size(const struct router *rt);
/* [{"key","samples","cpu_ratio","class","peak_kb"}...], most recently used first. */
json_t *router_to_json(const struct router *rt);
/* {"by","key","level","samples","cpu_ratio","class","keys":[...]} of a decision. */
json_t *route_to_json(const struct route *r, const struct kind_keys *k);
const char *route_by_name(enum route_by by);
int route_by_parse(const char *name); /* -1 if unknown */
/* A decision in a job's durable record, and back (-1 if malformed). */
json_t *route_record(const struct route *r);
int route_from_record(const json_t *o, struct route *r);

#endif
