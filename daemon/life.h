/*
 * A job's life outside the run queue: dependencies (state waiting, until
 * the jobs of spec.deps ended), start times (state scheduled, until
 * due_at: --in/--at, or the backoff before a retry), retries of failed,
 * timed-out and lost runs, and jobs held by `pause ID` (state paused).
 *
 * Loop thread only. A dependency is watched with a job_waiter on it; its
 * callback only notes the outcome and defers the dependent's evaluation
 * to an event (finishing a job from inside another's finish would
 * re-enter jobs_finish). Scheduled jobs sit in a binary min-heap by
 * due_at with one libevent timer for the earliest: O(log n) per job.
 */
#ifndef TASKD_LIFE_H
#define TASKD_LIFE_H

#include <stdbool.h>
#include <stddef.h>

#include "job.h"

/* The timer heap (exposed for the unit tests): ordered by due_at, then id. */
struct life_heap {
	struct job **v;
	size_t len;
	size_t cap;
};
void life_heap_push(struct life_heap *h, struct job *j); /* j->due_at set */
struct job *life_heap_peek(const struct life_heap *h);
void life_heap_remove(struct life_heap *h, struct job *j); /* no-op if not in it */
void life_heap_free(struct life_heap *h);

struct event_base;
struct sched;
struct life;

struct life *life_new(struct event_base *base, struct jobs *js, struct sched *s);
void life_free(struct life *l);

/*
 * A job just added (jobs_add), not yet on disk: watch its dependencies and
 * give it its first state (waiting, scheduled or queued).
 */
void life_prepare(struct life *l, struct job *j);
/*
 * Its submit is on disk: a queued job goes to the scheduler, a waiting one
 * is evaluated (and queued if its dependencies are met), a scheduled one
 * timed. The caller calls sched_dispatch.
 */
void life_admit(struct life *l, struct job *j);
/*
 * A job a cluster's node took (cluster-pull.c), in the state the cluster knows
 * it in: watch its dependencies (waiting), else queue it; dispatches.
 * Its start time is the cluster's business (it comes when due).
 */
void life_adopt(struct life *l, struct job *j);
/* A job leaves life.c's care (its submit could not be stored, or it is cancelled). */
void life_forget(struct life *l, struct job *j);
/* After persist_recover: retry jobs lost by the restart, watch and time the rest. */
void life_recover(struct life *l);

/*
 * Hold a queued job (→ paused) / release a paused one (→ queued). Either may
 * come before the job is admitted (its submit is not yet stored): then
 * life_admit queues it, if it is queued by then.
 */
void life_hold(struct life *l, struct job *j);
void life_release(struct life *l, struct job *j);
/* Stop moving jobs on (shutdown, with or without drain): they stay as stored. */
void life_stop(struct life *l);

/* Delay before retry number `attempt` (1 = the first retry). */
double life_retry_delay(double base, int attempt);
/* May a run that ended in st be tried again (failed, timeout, lost, retries left)? */
bool life_retryable(const struct job *j, enum job_state st);
/*
 * Note the attempt that ended in st in j->attempts, clear its result and
 * start the next attempt; returns the delay before it (life_retry_delay).
 */
double life_next_attempt(struct job *j, enum job_state st);

#endif
