/*
 * Starting queued jobs in the pools (sched_dispatch): a command on a pool
 * thread (io) or in a worker process (cpu), a handler's job in its
 * handler's workers; the run each is given; and how many workers the pools
 * should keep for what is queued (demand). Loop thread only.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "builtin.h"
#include "gate.h"
#include "hpool.h"
#include "jobtype.h"
#include "leftover.h"
#include "log.h"
#include "output.h"
#include "ppool.h"
#include "quota.h"
#include "resources.h"
#include "sched.h"
#include "sched-private.h"
#include "stats.h"
#include "xmalloc.h"

static void
run_done_cb(struct tpool_task *t, void *arg)
{
	run_finished(arg, (struct run *)t, t->thread);
}

static void
run_task_cb(struct tpool_task *t)
{
	run_execute((struct run *)t);
}

/* Its environment, and a job of an array's TASKD_ARRAY_ID and TASKD_ARRAY_INDEX. */
static char **
run_env(const struct job *j)
{
	size_t n = strv_len(j->spec.env);
	char **env;

	if (j->array == NULL)
		return strv_dup(j->spec.env);
	env = xcalloc(n + 3, sizeof *env);
	env[0] = xprintf("TASKD_ARRAY_ID=%llu", (unsigned long long)j->array->id);
	env[1] = xprintf("TASKD_ARRAY_INDEX=%lld", j->array_index);
	for (n = 0; j->spec.env != NULL && j->spec.env[n] != NULL; n++)
		env[n + 2] = xstrdup(j->spec.env[n]);
	return env;
}

static struct run *
make_run(struct sched *s, struct job *j, bool cancellable)
{
	struct run *r = run_new(cancellable);

	r->spec.job_id = j->id;
	r->spec.type = j->spec.type;
	r->spec.argv = strv_dup(j->spec.argv);
	r->spec.env = run_env(j);
	r->spec.cwd = j->spec.cwd != NULL ? xstrdup(j->spec.cwd) : NULL;
	/*
	 * Its input is in its input file (output.h): a command's stdin; a
	 * module job reads it where it runs (modrun.c), a handler's job is
	 * given it in its job message (start_handler).
	 */
	if (j->spec.input_bytes > 0)
		r->spec.in_path = output_path(s->jobs_dir, job_input_owner(j), OUTPUT_STDIN);
	if (jobtype_has_output(j->spec.type)) {
		r->spec.out_path = output_path(s->jobs_dir, j->id, OUTPUT_STDOUT);
		r->spec.err_path = output_path(s->jobs_dir, j->id, OUTPUT_STDERR);
		/* A module job starts no command: nothing of it to kill after a crash. */
		if (s->live_dir != NULL &&
		    (j->spec.type == BUILTIN_EXEC || j->spec.type == JOBTYPE_HANDLER))
			r->spec.track_path = leftover_job_path(s->live_dir, j->id);
	}
	r->spec.timeout = j->spec.timeout;
	r->spec.kill_grace = s->cfg->jobs.kill_grace;
	r->spec.max_output = s->cfg->jobs.max_output;
	r->spec.max_result = s->cfg->limits.max_frame;
	/* And in all no more than what is left of its owner's output quota. */
	r->spec.max_kept = quota_run_kept(s->cfg, s->jobs, j);
	/* In the spec: a worker process is told with the run, before it starts it. */
	r->spec.quiet = j->output_stopped;
	if (j->output_stopped)
		run_stop_output(r);
	/* A root daemon runs other users' commands as them (exec-spawn.c: --run-as). */
	r->spec.as_user = s->root && j->uid != 0;
	/*
	 * Priority as nice. Below 0 needs privilege, which a root daemon has:
	 * only root's own jobs get it (for others it still orders the queue).
	 */
	r->spec.nice = r->spec.as_user && j->spec.priority < 0 ? 0 : j->spec.priority;
	r->spec.uid = j->uid;
	r->spec.gid = j->gid;
	r->owner = j;
	return r;
}

static void
mark_started(struct sched *s, struct job *j, struct run *r, enum job_pool pool)
{
	j->run = r;
	j->pool = pool;
	j->started_at = now_unix();
	j->suspended_for = 0;
	job_set_state(s->jobs, j, JOB_RUNNING);
	gate_started(s, j);
	s->running++;
	if (pool == POOL_PROCESS)
		s->running_cpu++;
	/*
	 * A command in a worker holds its cpu slots (start_process); reclassification
	 * may move them later (sched_reclassified_cb). A handler job holds what it
	 * was routed to, counted by the handler pool.
	 */
	j->counts_as = pool == POOL_PROCESS   ? CLASS_CPU
		       : pool == POOL_HANDLER ? j->routed
					      : CLASS_IO;
	STATS_INC(jobs_started);
	log_debug("job %llu started in the %s pool", (unsigned long long)j->id,
		  job_pool_name(pool));
}

static void
start_thread(struct sched *s, struct job *j)
{
	struct run *r = make_run(s, j, true);

	r->task.run = run_task_cb;
	r->task.done = run_done_cb;
	r->task.arg = s;
	resources_start(s->res, j, r);
	mark_started(s, j, r, POOL_THREAD);
	tpool_submit(s->tpool, &r->task);
	if (j->cancel_requested)
		run_cancel(r);
}

static int
start_process(struct sched *s, struct job *j, size_t slots)
{
	struct run *r = make_run(s, j, false); /* ppool_cancel */

	resources_start(s->res, j, r);
	if (ppool_submit(s->ppool, r) == -1) {
		resources_end(s->res, j);
		free(j->cgroup);
		j->cgroup = NULL;
		run_free(r);
		return -1;
	}
	j->slots_held = (int)slots;
	s->cpu_used += slots;
	mark_started(s, j, r, POOL_PROCESS);
	j->worker = (int)r->worker_pid;
	return 0;
}

/*
 * 0 started, -1 not now (no room after all). 1: it cannot run, its input
 * is gone (read here: the handler gets it in its job message), and it is
 * taken out of its queue and failed.
 */
static int
start_handler(struct sched *s, struct job *j, struct handler *h, enum job_class cls)
{
	struct run *r = make_run(s, j, false); /* hpool_cancel */
	char *why = NULL;

	if (j->spec.input_bytes > 0 &&
	    (r->spec.input = output_read_input(s->jobs_dir, job_input_owner(j), &why)) == NULL) {
		run_free(r);
		gate_unqueue(s, j);
		sched_finish(s, j, JOB_FAILED, why);
		free(why);
		return 1;
	}
	if (hpool_submit(h, r, cls) == -1) {
		run_free(r);
		return -1;
	}
	mark_started(s, j, r, POOL_HANDLER);
	j->worker = (int)r->worker_pid;
	return 0;
}

/* Before b in a merged queue: by priority, then submission. */
static bool
earlier(const struct job *a, const struct job *b)
{
	if (a->spec.priority != b->spec.priority)
		return a->spec.priority < b->spec.priority;
	return a->seq < b->seq;
}

/* A handler gone in a reload (or never there, for a restored job): its queued jobs fail. */
static void
fail_removed(struct sched *s, size_t i)
{
	struct job *j;
	int q;

	for (q = 0; q < NQUEUES; q++)
		while ((j = jobq_peek(s->hq[i].q[q])) != NULL) {
			jobq_remove(s->hq[i].q[q], j);
			sched_finish(s, j, JOB_FAILED, "handler removed");
		}
}

static void
dispatch_handlers_io(struct sched *s)
{
	struct handler *h;
	struct job *j;
	size_t i;
	int rc;

	for (i = 0; i < s->nhq; i++) {
		if ((h = hpool_find(s->hpool, s->hq[i].name)) == NULL) {
			fail_removed(s, i);
			continue;
		}
		while (!s->paused[Q_IO] && (j = jobq_peek(s->hq[i].q[Q_IO])) != NULL &&
		       hpool_room(h, CLASS_IO)) {
			if ((rc = start_handler(s, j, h, CLASS_IO)) == -1)
				break;
			if (rc == 1)
				continue;
			jobq_remove(s->hq[i].q[Q_IO], j);
			sched_fair_started(&s->hq[i].fair[Q_IO], j);
		}
	}
}

/*
 * The next cpu job that can start: the process pool's (unless its head is
 * held: skip_ppool) or a handler's, in priority order.
 */
static struct job *
next_cpu(struct sched *s, bool skip_ppool, struct handler **hp, size_t *hi)
{
	struct job *best = NULL, *j;
	struct handler *h;
	size_t i;

	*hp = NULL;
	if (s->ppool != NULL && !skip_ppool && (j = jobq_peek(s->queue[Q_CPU])) != NULL &&
	    ppool_idle(s->ppool) > 0)
		best = j;
	for (i = 0; i < s->nhq; i++) {
		j = jobq_peek(s->hq[i].q[Q_CPU]);
		if (j == NULL || (best != NULL && !earlier(j, best)) ||
		    (h = hpool_find(s->hpool, s->hq[i].name)) == NULL || !hpool_room(h, CLASS_CPU))
			continue;
		best = j;
		*hp = h;
		*hi = i;
	}
	return best;
}

static size_t
imin_size(size_t a, size_t b)
{
	return a < b ? a : b;
}

static void
demand(struct sched *s)
{
	size_t used = sched_cpu_used(s), all = sched_cpu_slots(s);
	size_t free_slots = used < all ? all - used : 0;
	struct handler *h;
	size_t i;

	/* Workers for the queued jobs the free cpu slots can take; a paused queue asks for none. */
	if (s->ppool != NULL)
		ppool_demand(s->ppool, s->paused[Q_CPU] ? 0
				       : imin_size(jobq_len(s->queue[Q_CPU]), free_slots));
	/* No more workers for cpu jobs than could run at once (the CPU budget). */
	for (i = 0; i < s->nhq; i++)
		if ((h = hpool_find(s->hpool, s->hq[i].name)) != NULL)
			hpool_demand(h, s->paused[Q_CPU] ? 0 : imin_size(jobq_len(s->hq[i].q[Q_CPU]),
								       (size_t)s->cpu_slots),
				     s->paused[Q_IO] ? 0 : jobq_len(s->hq[i].q[Q_IO]));
}

/*
 * Start queued jobs while their pool has room. io: a free thread and
 * memory. cpu: a free cpu slot (cpu_used), no pressure brake, and for a
 * command memory and an idle worker, for a handler job room in its
 * handler's workers. A head that cannot start holds its queue (and may be
 * promised memory, which the other queue then leaves to it); blocked[]
 * remembers why. Returns true if a cpu-queue job moved to the io queue
 * (reroute).
 */
static bool
dispatch_once(struct sched *s)
{
	struct jobq *cpu = s->queue[Q_CPU], *io = s->queue[Q_IO];
	bool ppool_held = false;
	enum wait_reason why;
	struct handler *h;
	struct job *j;
	size_t hi = 0, need;
	int rc;

	s->blocked[Q_IO] = WAIT_NONE;
	s->promise[Q_IO] = 0;
	while (!s->paused[Q_IO] && (j = jobq_peek(io)) != NULL) {
		if (reroute(s, j))
			continue;
		why = tpool_capacity(s->tpool) > 0
			      ? resources_admit(s->res, j, s->promise[Q_CPU], &s->promise[Q_IO])
			      : WAIT_SLOTS;
		if (why != WAIT_NONE) {
			s->blocked[Q_IO] = why;
			break;
		}
		jobq_remove(io, j);
		sched_fair_started(&s->fair[Q_IO], j);
		start_thread(s, j);
	}
	dispatch_handlers_io(s);
	s->blocked[Q_CPU] = WAIT_NONE;
	s->promise[Q_CPU] = 0;
	/* Suspended jobs asked to resume come first, in order (sched-suspend.c). */
	if (resume_waiting(s)) {
		s->blocked[Q_CPU] = WAIT_SLOTS;
		return false;
	}
	while (!s->paused[Q_CPU]) {
		if (s->ppool != NULL && (j = jobq_peek(cpu)) != NULL && reroute(s, j))
			return true;
		if ((j = next_cpu(s, ppool_held, &h, &hi)) == NULL)
			break;
		/* It waits for all the slots it takes: no job behind it overtakes it. */
		need = h == NULL ? sched_slots_of(s, j) : 1;
		if (sched_cpu_used(s) + need > sched_cpu_slots(s))
			why = WAIT_SLOTS;
		else if (resources_brake(s->res, sched_cpu_used(s)))
			why = WAIT_PRESSURE;
		else if (h == NULL)
			why = resources_admit(s->res, j, s->promise[Q_IO], &s->promise[Q_CPU]);
		else
			why = WAIT_NONE;
		if (why == WAIT_MEMORY) {
			/* Only the process pool's head waits for memory; handlers may go on. */
			s->blocked[Q_CPU] = why;
			ppool_held = true;
			continue;
		}
		rc = 0;
		if (why == WAIT_NONE && (h == NULL ? start_process(s, j, need)
					 : (rc = start_handler(s, j, h, CLASS_CPU))) == -1)
			why = WAIT_SLOTS;
		if (why != WAIT_NONE) {
			s->blocked[Q_CPU] = why;
			break;
		}
		if (h == NULL) {
			jobq_remove(cpu, j);
			sched_fair_started(&s->fair[Q_CPU], j);
		} else {
			if (rc == 1) /* failed, out of its queue */
				continue;
			jobq_remove(s->hq[hi].q[Q_CPU], j);
			sched_fair_started(&s->hq[hi].fair[Q_CPU], j);
		}
	}
	return false;
}

void
sched_dispatch(struct sched *s)
{
	/* A job the cpu queue gives to the io queue may start there at once. */
	while (dispatch_once(s))
		;
	demand(s);
}
