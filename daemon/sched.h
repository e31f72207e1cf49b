/*
 * Scheduling: routing (class cpu → process pool, io → thread pool, auto →
 * the router's decision for the job's kind), one pending queue per class (a
 * binary heap ordered by priority, then submission order: O(log n)
 * push/pop/remove), and dispatch to each pool as it has room: a cpu job
 * runs only on an idle worker process (never more CPU work than workers),
 * an io job whenever the thread pool has a free thread. Jobs of a handler
 * (hpool.h) wait in that handler's own pair of queues (cpu, io) and start
 * when one of its workers has room; cpu-routed handler jobs and cpu-class
 * commands share one CPU budget (the process pool's size). Runs on the
 * loop thread; the pools hand finished runs back through callbacks, which
 * is where jobs reach their final state and the router learns. The heap and
 * the fair-share turns are in jobq.c.
 */
#ifndef TASKD_SCHED_H
#define TASKD_SCHED_H

#include <stdbool.h>
#include <stddef.h>

#include <taskd/protocol.h>

#include "config.h"
#include "job.h"
#include "tpool.h"

/*
 * Fair share (queue.fair_share): within a priority level, jobs take turns
 * by submitting user. Each job gets a turn number vt = max(the user's
 * last turn at that level, the level's clock) + 1, where the clock is the
 * turn of the last job started; the heap orders by priority, then vt,
 * then submission. A user who floods the queue gets turns 1..N, one who
 * comes later starts at the current clock: they alternate. O(users) per
 * add (few users), O(log n) per dispatch.
 */
#define SCHED_NPRIO (TASKD_PRIORITY_MAX - TASKD_PRIORITY_MIN + 1)
struct sched_fair {
	struct sched_fair_user {
		uid_t uid;
		uint64_t last[SCHED_NPRIO];
	} *users;
	size_t nusers;
	uint64_t clock[SCHED_NPRIO];
	uint64_t top[SCHED_NPRIO]; /* the highest turn given */
};
/* The turn of a new job of uid at this priority. */
uint64_t sched_fair_stamp(struct sched_fair *f, uid_t uid, int priority);
/*
 * The turn of a new job while fair share is off: the highest turn given at
 * this priority (0 if none), so that after a reload switched it off, new
 * jobs still queue behind the ones stamped before, in submission order.
 */
uint64_t sched_fair_fifo(const struct sched_fair *f, int priority);
/* j (with its vt) left the queue to run: the level's clock moves on. */
void sched_fair_started(struct sched_fair *f, const struct job *j);
void sched_fair_free(struct sched_fair *f);

/* The heap: by priority, then vt, then seq. */
struct jobq;
struct jobq *jobq_new(void);
void jobq_free(struct jobq *q);
void jobq_push(struct jobq *q, struct job *j); /* j->seq must be set */
struct job *jobq_peek(const struct jobq *q);
struct job *jobq_pop(struct jobq *q);
void jobq_remove(struct jobq *q, struct job *j);
size_t jobq_len(const struct jobq *q);
/* The job at position i of the heap (any order), NULL past its end: for scans. */
struct job *jobq_at(const struct jobq *q, size_t i);

struct sched;

struct event_base;
struct cgroups;

/* cfg is read at each dispatch (reload changes it in place). */
struct sched *sched_new(struct event_base *base, struct jobs *js, struct tpool *tp,
			const struct config *cfg, const char *jobs_dir);
void sched_free(struct sched *s);

/*
 * Where commands are recorded while they run (leftover.h: STATE_DIR/live),
 * so that a restart after a crash finds them; NULL (the default): nowhere.
 */
void sched_set_live_dir(struct sched *s, const char *dir);

struct ppool;
struct ppool_callbacks;
/* The process pool for cpu-class jobs (NULL: everything runs on threads). */
void sched_set_ppool(struct sched *s, struct ppool *pp);
/* The callbacks the process pool must be created with. */
void sched_ppool_callbacks(struct sched *s, struct ppool_callbacks *cb);
struct hpool;
struct hpool_callbacks;
/*
 * Handler workers (NULL: none), and the CPU budget they share with the
 * process pool: cpu-class jobs of both never run more than cpu_slots at once.
 */
void sched_set_hpool(struct sched *s, struct hpool *hp, int cpu_slots);
/* The callbacks the handler pool must be created with. */
void sched_hpool_callbacks(struct sched *s, struct hpool_callbacks *cb);
/* hpool_to_json with each handler's number of queued jobs ("queued"). */
json_t *sched_handlers_json(const struct sched *s);
/* After a reload changed *cfg: router settings, then dispatch. */
void sched_configure(struct sched *s);

/* The router's class for j (class auto: by its kind), set in j->routed; nothing queued. */
enum job_class sched_route(struct sched *s, struct job *j);
/* Route and queue without starting anything (several jobs: then sched_dispatch once). */
void sched_add(struct sched *s, struct job *j);
/* Drop finished jobs beyond jobs.keep_finished (with their output files). */
void sched_prune(struct sched *s);
/* Route (class auto → router), queue, and start what can start. */
void sched_enqueue(struct sched *s, struct job *j);
/* Start queued jobs while the pool has room. */
void sched_dispatch(struct sched *s);
/*
 * Cancel: a queued, waiting, scheduled or paused job is finished as
 * cancelled at once (returns 0 and j may be gone); a running one is
 * signalled (returns 1); a finished one: -1.
 */
int sched_cancel(struct sched *s, struct job *j, const char *why);
/* Keep no more of a running job's output (quota.c: its owner's output quota is used up). */
void sched_stop_output(struct sched *s, struct job *j);
/* Cancel everything (shutdown without drain). */
void sched_cancel_all(struct sched *s, const char *why);
size_t sched_pending(const struct sched *s);
size_t sched_pending_class(const struct sched *s, enum job_class c);
/* The router table, for status. */
json_t *sched_router_json(const struct sched *s);
/* status's "resources": cgroups, memory budget and use, pressure, sampling (resources.h). */
json_t *sched_resources_json(const struct sched *s);
/* Commands get cgroups of their own below cg from now on (taken over), or none and why. */
void sched_set_cgroups(struct sched *s, struct cgroups *cg, const char *why);
/* A job's limits with the defaults; -1 and *why if they cannot be applied (resources.h). */
int sched_job_limits(struct sched *s, struct job_spec *spec, char **why);
/* The config's default limits can be applied; else -1 and *why. */
int sched_check_defaults(struct sched *s, const struct config *cfg, char **why);
struct cgroups *sched_cgroups(const struct sched *s);
/* Why a pending job is not running (WAIT_NONE for running and finished jobs). */
enum wait_reason sched_wait_reason(const struct sched *s, const struct job *j);
/* Running or suspended jobs. */
size_t sched_running(const struct sched *s);
/* Running as cpu (process pool, cpu-routed handler jobs) or io (thread pool, io-routed handler jobs). */
size_t sched_running_class(const struct sched *s, enum job_class c);
/* Called after a job finished and nothing is running or queued. */
void sched_set_idle_cb(struct sched *s, void (*cb)(void *), void *arg);
/*
 * Finish a job that is not running and not in a queue (waiting, scheduled,
 * paused) in final state st with error why; j may be gone afterwards.
 */
void sched_finish(struct sched *s, struct job *j, enum job_state st, const char *why);
/* Take a queued job out of its queue (it stays JOB_QUEUED: the caller moves it on). */
void sched_unqueue(struct sched *s, struct job *j);
/* New priority for a job; a queued one moves in its queue (O(log n)). */
void sched_set_priority(struct sched *s, struct job *j, int priority);
/*
 * Named queues (the configuration's `queues`, sched-gate.c). configure:
 * after a reload (and at start), make the queues the configuration's: new
 * ones, new slots; a removed queue keeps its queued jobs (wait_reason
 * "queue_removed") until it comes back. pause: stop / restart starting its
 * jobs (queued ones past it go back to wait at it; the caller dispatches);
 * -1 if known_only and the configuration has no such queue. unpause_queues: all of them (a
 * drain). json: [{"name","slots","running","queued","paused","removed"}].
 */
void sched_configure_queues(struct sched *s);
int sched_pause_queue(struct sched *s, const char *name, bool pause, bool known_only);
bool sched_queue_paused(const struct sched *s, const char *name);
void sched_unpause_queues(struct sched *s);
json_t *sched_queues_json(const struct sched *s);
/*
 * Suspend a running command (sched-suspend.c): its process group stops,
 * its timeout stops running, a process-pool job gives its cpu slots back.
 * -1 with *why (not running, a built-in, being cancelled). resume: true if
 * it runs again now, false if it waits for its cpu slots (it stays
 * suspended until they are free). resume_all: every suspended job (a
 * drain).
 */
int sched_suspend(struct sched *s, struct job *j, char **why);
bool sched_resume(struct sched *s, struct job *j);
void sched_resume_all(struct sched *s);
/* Why a pending job (or a suspended one asked to resume) does not run now. */
enum wait_reason sched_wait_reason(const struct sched *s, const struct job *j);
/* Stop / restart starting jobs of class c (CLASS_AUTO: both); running ones go on. */
void sched_pause(struct sched *s, enum job_class c, bool pause);
bool sched_paused(const struct sched *s, enum job_class c);
/* {"cpu":bool,"io":bool}: which classes are paused. */
json_t *sched_paused_json(const struct sched *s);
/*
 * life.c's hooks. retry: asked when a run ended in state st, before the
 * job is finished; true means it took the job over (a retry) and the job
 * is not finished. forget: a waiting, scheduled or paused job is being
 * cancelled: stop watching and timing it.
 */
void sched_set_life_cbs(struct sched *s, bool (*retry)(struct job *, enum job_state, void *),
			void (*forget)(struct job *, void *), void *arg);
/*
 * Cluster mode (cluster-hold.c): asked first when a run ended in state st; true
 * means the cluster took the job over (a retry through the cluster, or a
 * job handed back to it) and the job is not finished here.
 */
void sched_set_cluster_cb(struct sched *s, bool (*cb)(struct job *, enum job_state, void *),
			  void *arg);
/* Call the idle callback if nothing runs or is queued. */
void sched_check_idle(struct sched *s);
/* Remove a finished job's output files (used when pruning). */
void sched_remove_output(struct sched *s, const struct job *j);

#endif
