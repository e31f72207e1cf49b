/*
 * Suspending running jobs (`pause ID` on a running job, `resume ID`), and
 * the cpu slots that come with it.
 *
 * A suspended command's whole process group is stopped by its runner (the
 * pool thread or the worker that started it, exec.c: SIGSTOP, and SIGCONT
 * to continue), which also holds its timeout while it is stopped. The job
 * keeps its run, its worker or thread, and its places in its queue and its
 * array (gate.h), but a job in the process pool gives its cpu slots back:
 * another cpu job may start, and the pool may start a worker beyond
 * max_workers for it (ppool_set_extra: as many as suspended jobs hold). On
 * `resume` it takes its slots again, at once if they are free, else it
 * stays suspended (wait_reason "slots") until they are: suspended jobs
 * asked to resume come before queued cpu jobs, in the order they asked.
 * Loop thread only.
 */
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
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
	if (j->state == JOB_SUSPENDED && j->pool == POOL_PROCESS)
		set_unslotted(s, -1);
	s->cpu_used -= (size_t)j->slots_held;
	j->slots_held = 0;
}

int
sched_suspend(struct sched *s, struct job *j, char **why)
{
	if (j->state != JOB_RUNNING || j->run == NULL) {
		xasprintf(why, "job %llu is %s: only a running job can be suspended",
			  (unsigned long long)j->id, job_state_name(j->state));
		return -1;
	}
	/* A built-in runs inside taskd or its worker: there is no process of its own to stop. */
	if (j->spec.type != BUILTIN_EXEC) {
		xasprintf(why, "job %llu is a built-in (%s): only a command can be suspended",
			  (unsigned long long)j->id, builtin_name(j->spec.type));
		return -1;
	}
	if (j->cancel_requested) {
		xasprintf(why, "job %llu is being cancelled", (unsigned long long)j->id);
		return -1;
	}
	signal_run(s, j, true);
	j->suspended_at = now_unix();
	job_set_state(s->jobs, j, JOB_SUSPENDED);
	if (j->pool == POOL_PROCESS) {
		s->cpu_used -= (size_t)j->slots_held;
		j->slots_held = 0;
		set_unslotted(s, 1);
	}
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
		need = sched_slots_of(s, j);
		if (s->cpu_used + need > sched_cpu_slots(s))
			return true;
		resuming_shift(s);
		j->slots_held = (int)need;
		s->cpu_used += need;
		set_unslotted(s, -1);
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
	if (j->pool != POOL_PROCESS) {
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
