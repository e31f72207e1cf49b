/*
 * Scheduling: the pending-job queue (a binary heap ordered by priority,
 * then submission order, so O(log n) push/pop/remove) and dispatch of jobs
 * to the thread pool as it has free slots. Runs on the loop thread; the
 * pool hands finished runs back through tpool's done callback, which is
 * where jobs reach their final state.
 */
#ifndef TASKD_SCHED_H
#define TASKD_SCHED_H

#include <stddef.h>

#include "config.h"
#include "job.h"
#include "tpool.h"

/* The heap. */
struct jobq;
struct jobq *jobq_new(void);
void jobq_free(struct jobq *q);
void jobq_push(struct jobq *q, struct job *j); /* j->seq must be set */
struct job *jobq_peek(const struct jobq *q);
struct job *jobq_pop(struct jobq *q);
void jobq_remove(struct jobq *q, struct job *j);
size_t jobq_len(const struct jobq *q);

struct sched;

/* cfg is read at each dispatch (reload changes it in place). */
struct sched *sched_new(struct jobs *js, struct tpool *tp, const struct config *cfg,
			const char *jobs_dir);
void sched_free(struct sched *s);

/* Queue a new job and start what can start. */
void sched_enqueue(struct sched *s, struct job *j);
/* Start queued jobs while the pool has room. */
void sched_dispatch(struct sched *s);
/*
 * Cancel: a queued job is finished as cancelled at once (returns 0 and j
 * may be gone); a running one is signalled (returns 1); a finished one: -1.
 */
int sched_cancel(struct sched *s, struct job *j, const char *why);
/* Cancel everything (shutdown without drain). */
void sched_cancel_all(struct sched *s, const char *why);
size_t sched_pending(const struct sched *s);
size_t sched_running(const struct sched *s);
/* Called after a job finished and nothing is running or queued. */
void sched_set_idle_cb(struct sched *s, void (*cb)(void *), void *arg);
/* Remove a finished job's output files (used when pruning). */
void sched_remove_output(struct sched *s, const struct job *j);

#endif
