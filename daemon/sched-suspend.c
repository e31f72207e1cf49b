/*
 * Suspending running jobs (`pause ID` on a running job, `resume ID`), and
 * the cpu slots that come with it.
 *
 * A suspended command's whole process group is stopped by its runner (the
 * pool thread or the worker that started it, exec.c: SIGSTOP, and SIGCONT
 * to continue), which also holds its timeout while it is stopped. The job
 * keeps its run, its worker or thread, and its places in its queue and its
 * array (gate.h), but a job that counts as cpu gives its cpu slots back:
 * another cpu job may start, and the pool may start a worker beyond
 * max_workers for it (ppool_set_extra: as many as commands in workers hold
 * no slot, suspended or counting as io). On `resume` it takes its slots
 * again, at once if they are free, else it stays suspended (wait_reason
 * "slots") until they are: suspended jobs asked to resume come before
 * queued cpu jobs, in the order they asked. While it is stopped the
 * sampler does not reclassify it (sampler.c), and the time it was
 * suspended is not part of what its run teaches the router (resources.c).
 * Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "jobtype.h"
#include "log.h"
#include "ppool.h"
#include "sched-private.h"
#include "stats.h"
#include "xmalloc.h"

/* The runner stops or continues j's process group. */
static void
signal_run(struct sched *s, struct job *j, bool suspend)
{
	if (j->pool == POOL_PROCESS)
		ppool_suspend(s->ppool, j->run, suspend);
	else
		run_suspend(j->run, suspend);
}

static void
set_unslotted(struct sched *s, int delta)
{
	s->unslotted += delta;
	if (s->ppool != NULL)
		ppool_set_extra(s->ppool, s->unslotted);
}

void
slots_release(struct sched *s, struct job *j)
{
	/* A command in a worker without a slot (suspended, or counting as io) had an extra worker. */
	if (j->pool == POOL_PROCESS && j->slots_held == 0)
		set_unslotted(s, -1);
	s->cpu_used -= (size_t)j->slots_held;
	j->slots_held = 0;
}

void
slots_set(struct sched *s, struct job *j, size_t n)
{
	if (j->pool == POOL_PROCESS && (j->slots_held == 0) != (n == 0))
		set_unslotted(s, n == 0 ? 1 : -1);
	s->cpu_used = s->cpu_used - (size_t)j->slots_held + n;
	j->slots_held = (int)n;
}

/* The cpu slots j holds when it runs: its --slots if it counts as cpu, none as io. */
static size_t
slots_wanted(const struct sched *s, const struct job *j)
{
	return j->counts_as == CLASS_CPU && j->pool != POOL_HANDLER ? sched_slots_of(s, j) : 0;
}

int
sched_suspend(struct sched *s, struct job *j, char **why)
{
	if (j->state != JOB_RUNNING || j->run == NULL) {
		xasprintf(why, "job %llu is %s: only a running job can be suspended",
			  (unsigned long long)j->id, job_state_name(j->state));
		return -1;
	}
	/*
	 * A module type's job runs inside taskd or its worker, a handler's in
	 * the handler's process: there is no process of its own to stop.
	 */
	if (j->spec.type != BUILTIN_EXEC) {
		xasprintf(why, "job %llu is of type %s: only a command can be suspended",
			  (unsigned long long)j->id, jobtype_name(j->spec.type, j->spec.handler));
		return -1;
	}
	if (j->cancel_requested) {
		xasprintf(why, "job %llu is being cancelled", (unsigned long long)j->id);
		return -1;
	}
	signal_run(s, j, true);
	j->suspended_at = now_unix();
	job_set_state(s->jobs, j, JOB_SUSPENDED);
	slots_set(s, j, 0);
	STATS_INC(jobs_suspended);
	log_debug("job %llu suspended", (unsigned long long)j->id);
	sched_dispatch(s);
	return 0;
}

/* j continues now (it holds what it needs). */
static void
resume_now(struct sched *s, struct job *j)
{
	signal_run(s, j, false);
	j->suspended_for += now_unix() - j->suspended_at;
	j->suspended_at = 0;
	j->resume_wanted = false;
	job_set_state(s->jobs, j, JOB_RUNNING);
	log_debug("job %llu resumed", (unsigned long long)j->id);
}

static void
resuming_push(struct sched *s, uint64_t id)
{
	if (s->nresuming == s->capresuming) {
		s->capresuming = s->capresuming ? s->capresuming * 2 : 16;
		s->resuming = xreallocarray(s->resuming, s->capresuming, sizeof *s->resuming);
	}
	s->resuming[s->nresuming++] = id;
}

static void
resuming_shift(struct sched *s)
{
	memmove(s->resuming, s->resuming + 1, (s->nresuming - 1) * sizeof *s->resuming);
	s->nresuming--;
}

bool
resume_waiting(struct sched *s)
{
	struct job *j;
	size_t need;

	while (s->nresuming > 0) {
		j = jobs_find(s->jobs, s->resuming[0]);
		if (j == NULL || j->state != JOB_SUSPENDED || !j->resume_wanted) {
			resuming_shift(s);
			continue;
		}
		need = slots_wanted(s, j);
		if (sched_cpu_used(s) + need > sched_cpu_slots(s))
			return true;
		resuming_shift(s);
		slots_set(s, j, need);
		resume_now(s, j);
	}
	return false;
}

void
resume_forget(struct sched *s, struct job *j)
{
	(void)s;
	/* Its entry in the list is skipped when it comes up. */
	j->resume_wanted = false;
}

bool
sched_resume(struct sched *s, struct job *j)
{
	if (j->state != JOB_SUSPENDED)
		return j->state == JOB_RUNNING;
	/* Without slots to take again (on a thread, or counting as io) it goes on at once. */
	if (slots_wanted(s, j) == 0) {
		resume_now(s, j);
		return true;
	}
	if (!j->resume_wanted) {
		j->resume_wanted = true;
		resuming_push(s, j->id);
	}
	sched_dispatch(s);
	return j->state == JOB_RUNNING;
}

void
sched_resume_all(struct sched *s)
{
	struct job *j;

	for (j = jobs_first(s->jobs); j != NULL; j = TAILQ_NEXT(j, all))
		if (j->state == JOB_SUSPENDED)
			sched_resume(s, j);
}
