/*
 * The scheduler (sched.h): its setting up and status, the queues of the
 * handlers' jobs, routing a job when it is queued (and again at the head of
 * its queue, reroute), why a queued job waits, and what is done to queued
 * jobs (priority, pause). Starting jobs in the pools is sched-dispatch.c,
 * runs that end and cancelling sched-finish.c, the gates before the class
 * queues sched-gate.c, suspending running jobs sched-suspend.c. Loop
 * thread only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "gate.h"
#include "hpool.h"
#include "jobtype.h"
#include "ppool.h"
#include "monitor.h"
#include "resources.h"
#include "router.h"
#include "sched.h"
#include "sched-private.h"
#include "xmalloc.h"

static void
stamp_in(struct sched *s, struct job *j, struct sched_fair *f)
{
	j->vt = s->cfg->queue.fair_share ? sched_fair_stamp(f, j->uid, j->spec.priority)
					 : sched_fair_fifo(f, j->spec.priority);
}

/* ---- handler queues ---- */

static struct hqueue *
hq_find(struct sched *s, const char *name, bool create)
{
	struct hqueue *h;
	size_t i;
	int q;

	for (i = 0; i < s->nhq; i++)
		if (strcmp(s->hq[i].name, name) == 0)
			return &s->hq[i];
	if (!create)
		return NULL;
	s->hq = xreallocarray(s->hq, s->nhq + 1, sizeof *s->hq);
	h = &s->hq[s->nhq++];
	memset(h, 0, sizeof *h);
	h->name = xstrdup(name);
	for (q = 0; q < NQUEUES; q++)
		h->q[q] = jobq_new();
	return h;
}

static void
hq_free(struct hqueue *h)
{
	int q;

	free(h->name);
	for (q = 0; q < NQUEUES; q++) {
		jobq_free(h->q[q]);
		sched_fair_free(&h->fair[q]);
	}
}

static int
qindex(const struct job *j)
{
	return j->routed == CLASS_CPU ? Q_CPU : Q_IO;
}

int
sched_class_queue(const struct job *j)
{
	return qindex(j);
}

/* The queue j is (or would be) in: its handler's, or its pool's. */
struct jobq *
sched_queue_of(struct sched *s, const struct job *j)
{
	struct hqueue *h;

	if (j->spec.type == JOBTYPE_HANDLER)
		return (h = hq_find(s, j->spec.handler, false)) != NULL ? h->q[qindex(j)] : NULL;
	return s->queue[qindex(j)];
}

static struct sched_fair *
fair_of(struct sched *s, const struct job *j)
{
	if (j->spec.type == JOBTYPE_HANDLER)
		return &hq_find(s, j->spec.handler, true)->fair[qindex(j)];
	return &s->fair[qindex(j)];
}

static size_t
hq_len(const struct sched *s, int q)
{
	size_t i, n = 0;

	for (i = 0; i < s->nhq; i++)
		n += jobq_len(s->hq[i].q[q]);
	return n;
}

/* ---- setting up ---- */

static void sched_reclassified_cb(struct job *j, enum job_class c, void *arg);
static void sched_ticked_cb(void *arg);
static void sched_json_cb(const struct job *j, json_t *o, void *arg);

static void
router_config(const struct config *cfg, struct router_config *rc)
{
	rc->default_class = cfg->router.default_class;
	rc->cpu_ratio = cfg->router.cpu_ratio;
	rc->min_samples = cfg->router.min_samples;
}

struct sched *
sched_new(struct event_base *base, struct jobs *js, struct tpool *tp, const struct config *cfg,
	  const char *jobs_dir)
{
	struct sched *s = xcalloc(1, sizeof *s);
	struct resources_callbacks rcb = { sched_reclassified_cb, sched_ticked_cb, s };
	struct router_config rc;
	int q;

	s->jobs = js;
	s->tpool = tp;
	s->cfg = cfg;
	s->jobs_dir = xstrdup(jobs_dir);
	s->root = geteuid() == 0;
	for (q = 0; q < NQUEUES; q++)
		s->queue[q] = jobq_new();
	router_config(cfg, &rc);
	s->router = router_new(&rc);
	s->res = resources_new(base, s->router, cfg, &rcb);
	sched_configure_queues(s);
	job_set_json_hook(sched_json_cb, s);
	return s;
}

void
sched_set_live_dir(struct sched *s, const char *dir)
{
	free(s->live_dir);
	s->live_dir = dir != NULL ? xstrdup(dir) : NULL;
}

void
sched_set_ppool(struct sched *s, struct ppool *pp)
{
	s->ppool = pp;
}

void
sched_set_hpool(struct sched *s, struct hpool *hp, int cpu_slots)
{
	s->hpool = hp;
	s->cpu_slots = cpu_slots > 0 ? cpu_slots : 1;
}

void
sched_free(struct sched *s)
{
	int q;

	if (s == NULL)
		return;
	for (q = 0; q < NQUEUES; q++) {
		jobq_free(s->queue[q]);
		sched_fair_free(&s->fair[q]);
	}
	for (size_t i = 0; i < s->nhq; i++)
		hq_free(&s->hq[i]);
	free(s->hq);
	job_set_json_hook(NULL, NULL);
	resources_free(s->res);
	gates_free(s);
	free(s->resuming);
	router_free(s->router);
	free(s->jobs_dir);
	free(s->live_dir);
	free(s);
}

void
sched_configure(struct sched *s)
{
	struct router_config rc;

	router_config(s->cfg, &rc);
	router_configure(s->router, &rc);
	resources_configure(s->res);
	sched_configure_queues(s);
	sched_dispatch(s);
}

void
sched_set_idle_cb(struct sched *s, void (*cb)(void *), void *arg)
{
	s->idle_cb = cb;
	s->idle_arg = arg;
}

size_t
sched_pending(const struct sched *s)
{
	return jobq_len(s->queue[Q_CPU]) + jobq_len(s->queue[Q_IO]) + hq_len(s, Q_CPU) +
	       hq_len(s, Q_IO) + s->gated;
}

size_t
sched_pending_class(const struct sched *s, enum job_class c)
{
	int q = c == CLASS_CPU ? Q_CPU : Q_IO;

	return jobq_len(s->queue[q]) + hq_len(s, q);
}

size_t
sched_running(const struct sched *s)
{
	return s->running;
}

size_t
sched_running_class(const struct sched *s, enum job_class c)
{
	/* Handler jobs count with the class they were routed to. */
	size_t cpu = s->running_cpu + (size_t)hpool_cpu_busy(s->hpool);

	return c == CLASS_CPU ? cpu : s->running - cpu;
}

json_t *
sched_router_json(const struct sched *s)
{
	return router_to_json(s->router);
}

json_t *
sched_resources_json(const struct sched *s)
{
	return resources_status_json(s->res);
}

void
sched_set_cgroups(struct sched *s, struct cgroups *cg, const char *why)
{
	resources_set_cgroups(s->res, cg, why);
}

int
sched_job_limits(struct sched *s, struct job_spec *spec, char **why)
{
	return resources_limits(s->res, spec->type, &spec->limits, why);
}

int
sched_check_defaults(struct sched *s, const struct config *cfg, char **why)
{
	return resources_check_defaults(s->res, cfg, why);
}

struct cgroups *
sched_cgroups(const struct sched *s)
{
	return resources_cgroups(s->res);
}

size_t
sched_slots_of(const struct sched *s, const struct job *j)
{
	size_t want = j->spec.slots > 1 ? (size_t)j->spec.slots : 1, all = sched_cpu_slots(s);

	return want < all ? want : all;
}

/*
 * One CPU budget, the cpu slots: one per worker the process pool may have
 * (process_pool.max_workers, by default the number of CPUs). Commands that
 * count as cpu (in the process pool, or on a thread once reclassified:
 * their --slots, one by default; none while suspended) and cpu-routed
 * handler jobs (each alone in its worker) together never hold more.
 */
size_t
sched_cpu_slots(const struct sched *s)
{
	if (s->ppool != NULL)
		return (size_t)ppool_max_workers(s->ppool);
	return s->hpool != NULL ? (size_t)s->cpu_slots : 0;
}

size_t
sched_cpu_used(const struct sched *s)
{
	return s->cpu_used + (size_t)hpool_cpu_busy(s->hpool);
}

/* Every cpu slot taken: a guess of the router's runs on a thread (router_route). */
static bool
cpu_full(const struct sched *s)
{
	return s->ppool != NULL && sched_cpu_used(s) >= sched_cpu_slots(s);
}

/*
 * A class-auto command was decided when it was queued; the router may have
 * learned since (a job of its kind was reclassified while it ran, or
 * ended), and slots may have freed. At the head of its queue it is decided
 * again, and moves to the other queue when it belongs there now. True if
 * it moved. (A handler job keeps its queue: the handler packs its workers
 * by it.)
 */
bool
reroute(struct sched *s, struct job *j)
{
	struct kind_keys k;
	struct route r;
	int to;

	if (j->spec.class != CLASS_AUTO || s->ppool == NULL || j->spec.type == JOBTYPE_HANDLER)
		return false;
	kind_keys_unpack(j->kinds, &k);
	router_route(s->router, &j->spec, &k, cpu_full(s), &r);
	j->route = r;
	if (r.decided == j->routed)
		return false;
	jobq_remove(s->queue[qindex(j)], j);
	j->routed = r.decided;
	to = qindex(j);
	stamp_in(s, j, &s->fair[to]);
	jobq_push(s->queue[to], j);
	return true;
}

/* The sampler: running j counts as c from now on. Its slots move; the command does not. */
static void
sched_reclassified_cb(struct job *j, enum job_class c, void *arg)
{
	struct sched *s = arg;

	/* A suspended job holds no slots (its stopped periods do not reach here: sampler.c). */
	if (j->counts_as == c || j->state != JOB_RUNNING)
		return;
	j->counts_as = c;
	/* A handler job's slot is the handler pool's (hpool_cpu_busy). */
	if (j->pool != POOL_HANDLER)
		slots_set(s, j, c == CLASS_CPU ? sched_slots_of(s, j) : 0);
	sched_dispatch(s);
}

static void
sched_ticked_cb(void *arg)
{
	sched_dispatch(arg);
}

enum wait_reason
sched_wait_reason(const struct sched *s, const struct job *j)
{
	const struct job *head;
	enum wait_reason w;
	struct jobq *q;
	int qi;

	switch (j->state) {
	case JOB_WAITING:
		return WAIT_DEPENDENCY;
	case JOB_SCHEDULED:
		return WAIT_SCHEDULED;
	case JOB_PAUSED:
		return WAIT_PAUSED;
	case JOB_SUSPENDED:
		return j->resume_wanted ? WAIT_SLOTS : WAIT_NONE;
	case JOB_QUEUED:
		break;
	default:
		return WAIT_NONE;
	}
	if ((w = gate_wait_reason(j)) != WAIT_NONE)
		return w;
	qi = qindex(j);
	if (s->paused[qi])
		return WAIT_PAUSED;
	/* Ahead of it: another user's job of its priority that came later (fair share's turn). */
	q = sched_queue_of((struct sched *)s, j);
	head = q != NULL ? jobq_peek(q) : NULL;
	if (head != NULL && head != j && s->cfg->queue.fair_share && head->uid != j->uid &&
	    head->spec.priority == j->spec.priority && head->seq > j->seq)
		return WAIT_FAIR_SHARE;
	/* A handler job waits for its handler's workers or a cpu slot. */
	if (j->spec.type == JOBTYPE_HANDLER)
		return qi == Q_CPU && s->blocked[Q_CPU] == WAIT_PRESSURE ? WAIT_PRESSURE : WAIT_SLOTS;
	return s->blocked[qi] != WAIT_NONE ? s->blocked[qi] : WAIT_SLOTS;
}

static void
sched_json_cb(const struct job *j, json_t *o, void *arg)
{
	const char *w = wait_reason_name(sched_wait_reason(arg, j));

	json_object_set_new(o, "wait_reason", w != NULL ? json_string(w) : json_null());
	resources_job_json(j, o);
}

void
sched_enqueue(struct sched *s, struct job *j)
{
	sched_add(s, j);
	sched_dispatch(s);
}

enum job_class
sched_route(struct sched *s, struct job *j)
{
	struct kind_keys k;

	job_kind_keys(&j->spec, &k);
	free(j->kinds);
	j->kinds = kind_keys_pack(&k);
	j->routed = router_route(s->router, &j->spec, &k, cpu_full(s), &j->route);
	return j->routed;
}

void
sched_add(struct sched *s, struct job *j)
{
	sched_route(s, j);
	/* Without a process pool everything runs on threads (handlers have workers of their own). */
	if (s->ppool == NULL && j->spec.type != JOBTYPE_HANDLER && j->routed != CLASS_IO) {
		j->routed = CLASS_IO;
		j->route.by = ROUTE_NO_PPOOL;
	}
	if (j->spec.class == CLASS_AUTO)
		monitor_routed(j->routed);
	j->queued_at = now_unix();
	j->seq = s->seq++;
	stamp_in(s, j, fair_of(s, j));
	/* Through its array's MAX and its queue first, if it has them (sched-gate.c). */
	gate_attach(s, j);
	gate_enter(s, j);
}

void
sched_set_priority(struct sched *s, struct job *j, int priority)
{
	struct jobq *q = j->state == JOB_QUEUED ? gate_heap(s, j) : NULL;
	bool queued = q != NULL && j->qidx < jobq_len(q);

	/* Out and back in with a turn at its new level, keeping its seq: O(log n). */
	if (queued)
		jobq_remove(q, j);
	j->spec.priority = priority;
	if (queued) {
		stamp_in(s, j, fair_of(s, j));
		jobq_push(q, j);
		sched_dispatch(s);
	}
}

void
sched_pause(struct sched *s, enum job_class c, bool pause)
{
	if (c != CLASS_IO)
		s->paused[Q_CPU] = pause;
	if (c != CLASS_CPU)
		s->paused[Q_IO] = pause;
	if (!pause)
		sched_dispatch(s);
}

bool
sched_paused(const struct sched *s, enum job_class c)
{
	return s->paused[c == CLASS_CPU ? Q_CPU : Q_IO];
}

json_t *
sched_paused_json(const struct sched *s)
{
	return json_pack("{s:b,s:b}", "cpu", s->paused[Q_CPU], "io", s->paused[Q_IO]);
}

void
sched_set_life_cbs(struct sched *s, bool (*retry)(struct job *, enum job_state, void *),
		   void (*forget)(struct job *, void *), void *arg)
{
	s->retry_cb = retry;
	s->forget_cb = forget;
	s->retry_arg = arg;
}

void
sched_set_cluster_cb(struct sched *s, bool (*cb)(struct job *, enum job_state, void *), void *arg)
{
	s->cluster_cb = cb;
	s->cluster_arg = arg;
}

json_t *
sched_handlers_json(const struct sched *s)
{
	json_t *a = hpool_to_json(s->hpool), *h;
	const struct hqueue *q;
	const char *name;
	size_t i;

	json_array_foreach(a, i, h) {
		name = json_string_value(json_object_get(h, "name"));
		q = hq_find((struct sched *)s, name, false);
		json_object_set_new(h, "queued", json_integer(q != NULL ? (json_int_t)(jobq_len(
								 q->q[Q_CPU]) + jobq_len(q->q[Q_IO]))
							    : 0));
	}
	return a;
}
