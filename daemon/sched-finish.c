/*
 * The end of a job's run or of its wait: a run that comes back from a pool
 * (its result moved into the job, its slots given back, what it teaches the
 * router learned, then a retry, the cluster or finishing it), the pools'
 * callbacks, cancelling queued and running jobs, and pruning finished jobs
 * with their output. Loop thread only.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "hpool.h"
#include "log.h"
#include "output.h"
#include "ppool.h"
#include "quota.h"
#include "resources.h"
#include "sched.h"
#include "sched-private.h"
#include "stats.h"
#include "xmalloc.h"

void
sched_remove_output(struct sched *s, const struct job *j)
{
	if (job_has_output(j))
		output_remove(s->jobs_dir, j->id);
	/* Its input: its own, or its array's with the array's last job (removed after this). */
	if (j->spec.input_bytes > 0 && (j->array == NULL || j->array->present == 1))
		output_remove_input(s->jobs_dir, job_input_owner(j));
}

static void
prune_cb(struct job *j, void *arg)
{
	sched_remove_output(arg, j);
	STATS_INC(jobs_pruned);
}

static void
finish(struct sched *s, struct job *j, enum job_state st)
{
	/* Its environment is kept: `restart` runs the job again with it. */
	j->finished_at = j->res.finished_at > 0 ? j->res.finished_at : now_unix();
	STATS_INC(jobs_finished);
	log_debug("job %llu %s", (unsigned long long)j->id, job_state_name(st));
	/* j may be freed by pruning inside jobs_finish. */
	jobs_finish(s->jobs, j, st, s->cfg->jobs.keep_finished, prune_cb, s);
}

static enum job_state
final_state(const struct run_result *r)
{
	switch (r->status) {
	case RUN_EXITED:
		return r->exit_code == 0 ? JOB_DONE : JOB_FAILED;
	case RUN_TIMEOUT:
		return JOB_TIMEOUT;
	case RUN_CANCELLED:
		return JOB_CANCELLED;
	case RUN_LOST:
		return JOB_LOST;
	case RUN_SIGNALED:
	case RUN_FAILED:
	default:
		return JOB_FAILED;
	}
}

/*
 * Nothing runs, and nothing queued can start: the class and handler queues
 * are empty, and the jobs still at gates wait for queues the configuration
 * no longer has, or paused ones (sched-gate.c: an open gate has nobody
 * waiting).
 */
static void
check_idle(struct sched *s)
{
	if (s->running == 0 && sched_pending(s) == s->gated && s->idle_cb != NULL)
		s->idle_cb(s->idle_arg);
}

/* j no longer runs: its slots (and a worker it held beyond the cpu slots) are free. */
static void
release(struct sched *s, struct job *j)
{
	s->running--;
	if (j->pool == POOL_PROCESS)
		s->running_cpu--;
	slots_release(s, j);
}

/* A run came back from either pool: move its result into the job and finish it. */
void
run_finished(struct sched *s, struct run *r, int worker)
{
	struct job *j = r->owner;
	enum job_state st;

	run_result_move(&j->res, &r->res);
	if (j->res.started_at > 0)
		j->started_at = j->res.started_at;
	j->worker = worker;
	j->run = NULL;
	free(j->progress);
	j->progress = NULL;
	run_free(r);
	/* Ended while suspended (killed from outside): its time suspended counts, it resumes no more. */
	if (j->state == JOB_SUSPENDED) {
		j->suspended_for += now_unix() - j->suspended_at;
		j->suspended_at = 0;
		resume_forget(s, j);
	}
	release(s, j);
	gate_leave(s, j);
	resources_end(s->res, j);
	quota_run_ended(s->cfg, s->jobs, s->jobs_dir, j);
	resources_learn(s->res, j);
	st = final_state(&j->res);
	/* The cluster, or a retry, takes the job back; else it is over. */
	if ((s->cluster_cb == NULL || !s->cluster_cb(j, st, s->cluster_arg)) &&
	    (s->retry_cb == NULL || !s->retry_cb(j, st, s->retry_arg)))
		finish(s, j, st);
	sched_dispatch(s);
	check_idle(s);
}

static void
sched_ppool_done_cb(struct run *r, void *arg)
{
	run_finished(arg, r, (int)r->worker_pid);
}

static void
sched_ppool_ready_cb(void *arg)
{
	sched_dispatch(arg);
}

static void
sched_hpool_progress_cb(struct run *r, const char *message, void *arg)
{
	struct job *j = r->owner;

	free(j->progress);
	j->progress = xstrdup(message);
}

void
sched_ppool_callbacks(struct sched *s, struct ppool_callbacks *cb)
{
	cb->done = sched_ppool_done_cb;
	cb->ready = sched_ppool_ready_cb;
	cb->arg = s;
}

void
sched_hpool_callbacks(struct sched *s, struct hpool_callbacks *cb)
{
	cb->done = sched_ppool_done_cb;
	cb->ready = sched_ppool_ready_cb;
	cb->progress = sched_hpool_progress_cb;
	cb->arg = s;
}

void
sched_prune(struct sched *s)
{
	jobs_prune(s->jobs, s->cfg->jobs.keep_finished, prune_cb, s);
}

static void
unqueue(struct sched *s, struct job *j)
{
	gate_unqueue(s, j);
}

static void
cancel_running(struct sched *s, struct job *j)
{
	j->cancel_requested = true;
	if (j->run == NULL)
		return;
	if (j->pool == POOL_PROCESS)
		ppool_cancel(s->ppool, j->run);
	else if (j->pool == POOL_HANDLER)
		hpool_cancel(s->hpool, j->run);
	else
		run_cancel(j->run);
}

void
sched_stop_output(struct sched *s, struct job *j)
{
	if (j->run == NULL)
		return;
	if (j->pool == POOL_PROCESS)
		ppool_stop_output(s->ppool, j->run);
	else
		run_stop_output(j->run);
}

static void
cancel_queued(struct sched *s, struct job *j, const char *why)
{
	unqueue(s, j);
	sched_finish(s, j, JOB_CANCELLED, why);
}

void
sched_finish(struct sched *s, struct job *j, enum job_state st, const char *why)
{
	free(j->res.error);
	j->res.error = xstrdup(why);
	finish(s, j, st);
}

void
sched_unqueue(struct sched *s, struct job *j)
{
	unqueue(s, j);
	/* Its places at gates are free: others may have passed them. */
	sched_dispatch(s);
}

void
sched_check_idle(struct sched *s)
{
	check_idle(s);
}

int
sched_cancel(struct sched *s, struct job *j, const char *why)
{
	if (j->state == JOB_WAITING || j->state == JOB_SCHEDULED || j->state == JOB_PAUSED) {
		/* Not in a queue: life.c stops watching and timing it. */
		if (s->forget_cb != NULL)
			s->forget_cb(j, s->retry_arg);
		sched_finish(s, j, JOB_CANCELLED, why);
		check_idle(s);
		return 0;
	}
	if (j->state == JOB_QUEUED) {
		cancel_queued(s, j, why);
		/* Its places at gates are free: others may have passed them. */
		sched_dispatch(s);
		check_idle(s);
		return 0;
	}
	/* Suspended: the run continues it, then stops it (exec.c). */
	if (j->state == JOB_RUNNING || j->state == JOB_SUSPENDED) {
		cancel_running(s, j);
		return 1;
	}
	return -1;
}

void
sched_cancel_all(struct sched *s, const char *why)
{
	struct job *j;
	uint64_t *ids = NULL;
	size_t i, n = 0;
	int q;

	for (q = 0; q < NQUEUES; q++)
		while ((j = jobq_peek(s->queue[q])) != NULL)
			cancel_queued(s, j, why);
	for (i = 0; i < s->nhq; i++)
		for (q = 0; q < NQUEUES; q++)
			while ((j = jobq_peek(s->hq[i].q[q])) != NULL)
				cancel_queued(s, j, why);
	/* Those waiting at gates, by id: cancelling one may prune others. */
	if (s->gated > 0)
		ids = xcalloc(s->gated, sizeof *ids);
	for (j = jobs_first(s->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		if (j->state == JOB_QUEUED && j->qidx != SIZE_MAX && n < s->gated)
			ids[n++] = j->id;
		else if (j->state == JOB_RUNNING || j->state == JOB_SUSPENDED)
			cancel_running(s, j);
	}
	for (i = 0; i < n; i++)
		if ((j = jobs_find(s->jobs, ids[i])) != NULL && j->state == JOB_QUEUED)
			cancel_queued(s, j, why);
	free(ids);
	check_idle(s);
}
