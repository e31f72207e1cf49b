#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "gate.h"
#include "hpool.h"
#include "jobtype.h"
#include "leftover.h"
#include "log.h"
#include "output.h"
#include "ppool.h"
#include "monitor.h"
#include "quota.h"
#include "resources.h"
#include "router.h"
#include "sched.h"
#include "sched-private.h"
#include "stats.h"
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

/* ---- dispatch ---- */

static void sched_ppool_done_cb(struct run *r, void *arg);
static void sched_ppool_ready_cb(void *arg);
static void sched_hpool_progress_cb(struct run *r, const char *message, void *arg);
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
sched_ppool_callbacks(struct sched *s, struct ppool_callbacks *cb)
{
	cb->done = sched_ppool_done_cb;
	cb->ready = sched_ppool_ready_cb;
	cb->arg = s;
}

void
sched_set_hpool(struct sched *s, struct hpool *hp, int cpu_slots)
{
	s->hpool = hp;
	s->cpu_slots = cpu_slots > 0 ? cpu_slots : 1;
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
static void
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
run_done_cb(struct tpool_task *t, void *arg)
{
	run_finished(arg, (struct run *)t, t->thread);
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
	/* A root daemon runs other users' commands as them (exec.c: --run-as). */
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

size_t
sched_slots_of(const struct sched *s, const struct job *j)
{
	size_t want = j->spec.slots > 1 ? (size_t)j->spec.slots : 1, all = sched_cpu_slots(s);

	return want < all ? want : all;
}

/* Before b in a merged queue: by priority, then submission. */
static bool
earlier(const struct job *a, const struct job *b)
{
	if (a->spec.priority != b->spec.priority)
		return a->spec.priority < b->spec.priority;
	return a->seq < b->seq;
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
 * A class-auto command was decided when it was queued; the router may have
 * learned since (a job of its kind was reclassified while it ran, or
 * ended), and slots may have freed. At the head of its queue it is decided
 * again, and moves to the other queue when it belongs there now. True if
 * it moved. (A handler job keeps its queue: the handler packs its workers
 * by it.)
 */
static bool
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
