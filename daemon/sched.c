#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
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
#include "stats.h"
#include "xmalloc.h"

/* One queue per pool: a flood of one class never holds up the other. */
enum { Q_CPU, Q_IO, NQUEUES };

/*
 * The queues of one handler's jobs, by the class they were routed to: a
 * handler whose workers are not up (starting, in backoff) holds up only
 * its own jobs. Kept while the handler is configured; a handler removed
 * by a reload fails its queued jobs ("handler removed").
 */
struct hqueue {
	char *name;
	struct jobq *q[NQUEUES];
	struct sched_fair fair[NQUEUES];
};

struct sched {
	bool root;           /* the daemon runs as root: other users' jobs run as them */
	struct jobs *jobs;
	struct tpool *tpool;
	struct ppool *ppool;
	struct router *router;
	struct resources *res;
	const struct config *cfg;
	char *jobs_dir;
	char *live_dir;      /* commands are recorded there while they run, or NULL */
	struct jobq *queue[NQUEUES];
	uint64_t seq;
	size_t running;
	size_t running_cpu;  /* of running: in the process pool */
	size_t cpu_busy;     /* running commands that count as cpu (hold a cpu slot) */
	int io_in_workers;   /* running in the process pool but counting as io */
	enum wait_reason blocked[NQUEUES]; /* why a queue's head did not start at the last dispatch */
	uint64_t promise[NQUEUES];         /* memory its head waits for (resources_admit) */
	void (*idle_cb)(void *);
	void *idle_arg;
	bool (*retry_cb)(struct job *, enum job_state, void *);
	void (*forget_cb)(struct job *, void *);
	void *retry_arg;
	bool (*cluster_cb)(struct job *, enum job_state, void *);
	void *cluster_arg;
	bool paused[NQUEUES]; /* `pause --class`: nothing new starts from that queue */
	struct sched_fair fair[NQUEUES];
	struct hpool *hpool;     /* handler workers, or NULL */
	int cpu_slots;           /* cpu jobs at once, commands and handlers together */
	struct hqueue *hq;       /* nhq of them */
	size_t nhq;
};

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

/* The queue j is (or would be) in: its handler's, or its pool's. */
static struct jobq *
queue_of(struct sched *s, const struct job *j)
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
	       hq_len(s, Q_IO);
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
	j->finished_at = j->res.finished_at > 0 ? j->res.finished_at : now_unix();
	/*
	 * The environment is not shown anywhere once the job is over: give it
	 * back, unless its notify command still needs it (notify.c gives it
	 * back then).
	 */
	if (j->spec.notify == NULL)
		jobs_drop_env(s->jobs, j);
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

static void
check_idle(struct sched *s)
{
	if (s->running == 0 && sched_pending(s) == 0 && s->idle_cb != NULL)
		s->idle_cb(s->idle_arg);
}

/* j no longer runs: its slot (and a worker it held beyond the cpu slots) is free. */
static void
release(struct sched *s, struct job *j)
{
	s->running--;
	if (j->pool == POOL_PROCESS)
		s->running_cpu--;
	if (j->pool == POOL_HANDLER)
		return; /* the handler pool counts its own (hpool_cpu_busy) */
	if (j->counts_as == CLASS_CPU)
		s->cpu_busy--;
	else if (j->pool == POOL_PROCESS) {
		s->io_in_workers--;
		ppool_set_extra(s->ppool, s->io_in_workers);
	}
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
	release(s, j);
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

static struct run *
make_run(struct sched *s, struct job *j, bool cancellable)
{
	struct run *r = run_new(cancellable);

	r->spec.job_id = j->id;
	r->spec.type = j->spec.type;
	r->spec.argv = strv_dup(j->spec.argv);
	r->spec.env = strv_dup(j->spec.env);
	r->spec.cwd = j->spec.cwd != NULL ? xstrdup(j->spec.cwd) : NULL;
	r->spec.input = j->spec.input != NULL ? xstrdup(j->spec.input) : NULL;
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
	job_set_state(s->jobs, j, JOB_RUNNING);
	s->running++;
	if (pool == POOL_PROCESS)
		s->running_cpu++;
	/*
	 * A worker is a cpu slot; reclassification may move it later
	 * (sched_reclassified_cb). A handler job holds what it was routed to,
	 * counted by the handler pool.
	 */
	j->counts_as = pool == POOL_PROCESS   ? CLASS_CPU
		       : pool == POOL_HANDLER ? j->routed
					      : CLASS_IO;
	if (j->counts_as == CLASS_CPU && pool != POOL_HANDLER)
		s->cpu_busy++;
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
start_process(struct sched *s, struct job *j)
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
	mark_started(s, j, r, POOL_PROCESS);
	j->worker = (int)r->worker_pid;
	return 0;
}

static int
start_handler(struct sched *s, struct job *j, struct handler *h, enum job_class cls)
{
	struct run *r = make_run(s, j, false); /* hpool_cancel */

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

/*
 * One CPU budget, the cpu slots: one per worker the process pool may have
 * (process_pool.max_workers, by default the number of CPUs). Commands that
 * count as cpu (in the process pool, or on a thread once reclassified) and
 * cpu-routed handler jobs (each alone in its worker) together never hold
 * more.
 */
static size_t
cpu_slots(const struct sched *s)
{
	if (s->ppool != NULL)
		return (size_t)ppool_max_workers(s->ppool);
	return s->hpool != NULL ? (size_t)s->cpu_slots : 0;
}

static size_t
cpu_used(const struct sched *s)
{
	return s->cpu_busy + (size_t)hpool_cpu_busy(s->hpool);
}

/* Every cpu slot taken: a guess of the router's runs on a thread (router_route). */
static bool
cpu_full(const struct sched *s)
{
	return s->ppool != NULL && cpu_used(s) >= cpu_slots(s);
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

	for (i = 0; i < s->nhq; i++) {
		if ((h = hpool_find(s->hpool, s->hq[i].name)) == NULL) {
			fail_removed(s, i);
			continue;
		}
		while (!s->paused[Q_IO] && (j = jobq_peek(s->hq[i].q[Q_IO])) != NULL &&
		       hpool_room(h, CLASS_IO)) {
			if (start_handler(s, j, h, CLASS_IO) == -1)
				break;
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
	size_t free_slots = cpu_used(s) < cpu_slots(s) ? cpu_slots(s) - cpu_used(s) : 0;
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
	size_t hi = 0;

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
	while (!s->paused[Q_CPU]) {
		if (s->ppool != NULL && (j = jobq_peek(cpu)) != NULL && reroute(s, j))
			return true;
		if ((j = next_cpu(s, ppool_held, &h, &hi)) == NULL)
			break;
		if (cpu_used(s) >= cpu_slots(s))
			why = WAIT_SLOTS;
		else if (resources_brake(s->res, cpu_used(s)))
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
		if (why == WAIT_NONE &&
		    (h == NULL ? start_process(s, j) : start_handler(s, j, h, CLASS_CPU)) == -1)
			why = WAIT_SLOTS;
		if (why != WAIT_NONE) {
			s->blocked[Q_CPU] = why;
			break;
		}
		if (h == NULL) {
			jobq_remove(cpu, j);
			sched_fair_started(&s->fair[Q_CPU], j);
		} else {
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

/* The sampler: running j counts as c from now on. Its slot moves; the command does not. */
static void
sched_reclassified_cb(struct job *j, enum job_class c, void *arg)
{
	struct sched *s = arg;

	if (j->counts_as == c || j->state != JOB_RUNNING)
		return;
	if (c == CLASS_CPU)
		s->cpu_busy++;
	else
		s->cpu_busy--;
	j->counts_as = c;
	/* In a worker but not a cpu slot: the pool may start one more worker for the slot. */
	if (j->pool == POOL_PROCESS) {
		s->io_in_workers += c == CLASS_IO ? 1 : -1;
		ppool_set_extra(s->ppool, s->io_in_workers);
	}
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
	struct jobq *q;
	int qi;

	switch (j->state) {
	case JOB_WAITING:
		return WAIT_DEPENDENCY;
	case JOB_SCHEDULED:
		return WAIT_SCHEDULED;
	case JOB_PAUSED:
		return WAIT_PAUSED;
	case JOB_QUEUED:
		break;
	default:
		return WAIT_NONE;
	}
	qi = qindex(j);
	if (s->paused[qi])
		return WAIT_PAUSED;
	/* Ahead of it: another user's job of its priority that came later (fair share's turn). */
	q = queue_of((struct sched *)s, j);
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
	jobq_push(queue_of(s, j), j);
}

void
sched_prune(struct sched *s)
{
	jobs_prune(s->jobs, s->cfg->jobs.keep_finished, prune_cb, s);
}

static void
unqueue(struct sched *s, struct job *j)
{
	struct jobq *q = queue_of(s, j);

	if (q != NULL)
		jobq_remove(q, j);
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
}

void
sched_set_priority(struct sched *s, struct job *j, int priority)
{
	struct jobq *q = queue_of(s, j);
	bool queued = j->state == JOB_QUEUED && q != NULL && j->qidx < jobq_len(q);

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
		check_idle(s);
		return 0;
	}
	if (j->state == JOB_RUNNING) {
		cancel_running(s, j);
		return 1;
	}
	return -1;
}

void
sched_cancel_all(struct sched *s, const char *why)
{
	struct job *j, *next;
	int q;

	for (q = 0; q < NQUEUES; q++)
		while ((j = jobq_peek(s->queue[q])) != NULL)
			cancel_queued(s, j, why);
	for (size_t i = 0; i < s->nhq; i++)
		for (q = 0; q < NQUEUES; q++)
			while ((j = jobq_peek(s->hq[i].q[q])) != NULL)
				cancel_queued(s, j, why);
	for (j = jobs_first(s->jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, all);
		if (j->state == JOB_RUNNING)
			cancel_running(s, j);
	}
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
