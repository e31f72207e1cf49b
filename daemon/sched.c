#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "leftover.h"
#include "log.h"
#include "output.h"
#include "ppool.h"
#include "router.h"
#include "sched.h"
#include "stats.h"
#include "xmalloc.h"

struct jobq {
	struct job **heap;
	size_t len;
	size_t cap;
};

_Static_assert(sizeof(((struct job *)0)->route_key) == ROUTER_KEY_MAX + 1,
	       "job.route_key must hold a router key");

/* One queue per pool: a flood of one class never holds up the other. */
enum { Q_CPU, Q_IO, NQUEUES };

struct sched {
	bool root;           /* the daemon runs as root: other users' jobs run as them */
	struct jobs *jobs;
	struct tpool *tpool;
	struct ppool *ppool;
	struct router *router;
	const struct config *cfg;
	char *jobs_dir;
	char *live_dir;      /* commands are recorded there while they run, or NULL */
	struct jobq *queue[NQUEUES];
	uint64_t seq;
	size_t running;
	size_t running_cpu;  /* of running: in the process pool */
	void (*idle_cb)(void *);
	void *idle_arg;
	bool (*retry_cb)(struct job *, enum job_state, void *);
	void (*forget_cb)(struct job *, void *);
	void *retry_arg;
	bool (*cluster_cb)(struct job *, enum job_state, void *);
	void *cluster_arg;
	bool paused[NQUEUES]; /* `pause --class`: nothing new starts from that queue */
	struct sched_fair fair[NQUEUES];
};

/* ---- the heap ---- */

struct jobq *
jobq_new(void)
{
	return xcalloc(1, sizeof(struct jobq));
}

void
jobq_free(struct jobq *q)
{
	if (q == NULL)
		return;
	free(q->heap);
	free(q);
}

static int
before(const struct job *a, const struct job *b)
{
	if (a->spec.priority != b->spec.priority)
		return a->spec.priority < b->spec.priority;
	if (a->vt != b->vt)
		return a->vt < b->vt;
	return a->seq < b->seq;
}

static void
place(struct jobq *q, size_t i, struct job *j)
{
	q->heap[i] = j;
	j->qidx = i;
}

static void
sift_up(struct jobq *q, size_t i)
{
	struct job *j = q->heap[i];

	while (i > 0 && before(j, q->heap[(i - 1) / 2])) {
		place(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	place(q, i, j);
}

static void
sift_down(struct jobq *q, size_t i)
{
	struct job *j = q->heap[i];
	size_t c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= q->len)
			break;
		if (c + 1 < q->len && before(q->heap[c + 1], q->heap[c]))
			c++;
		if (!before(q->heap[c], j))
			break;
		place(q, i, q->heap[c]);
		i = c;
	}
	place(q, i, j);
}

void
jobq_push(struct jobq *q, struct job *j)
{
	if (q->len == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->heap = xreallocarray(q->heap, q->cap, sizeof *q->heap);
	}
	q->heap[q->len++] = j;
	sift_up(q, q->len - 1);
}

struct job *
jobq_peek(const struct jobq *q)
{
	return q->len > 0 ? q->heap[0] : NULL;
}

void
jobq_remove(struct jobq *q, struct job *j)
{
	size_t i = j->qidx;
	struct job *last;

	if (i >= q->len || q->heap[i] != j)
		return;
	j->qidx = SIZE_MAX;
	last = q->heap[--q->len];
	if (i == q->len)
		return;
	place(q, i, last);
	if (i > 0 && before(last, q->heap[(i - 1) / 2]))
		sift_up(q, i);
	else
		sift_down(q, i);
}

struct job *
jobq_pop(struct jobq *q)
{
	struct job *j = jobq_peek(q);

	if (j != NULL)
		jobq_remove(q, j);
	return j;
}

size_t
jobq_len(const struct jobq *q)
{
	return q->len;
}

/* ---- fair share ---- */

static size_t
level(int priority)
{
	return (size_t)(priority - TASKD_PRIORITY_MIN);
}

uint64_t
sched_fair_stamp(struct sched_fair *f, uid_t uid, int priority)
{
	struct sched_fair_user *u = NULL;
	size_t i, lv = level(priority);
	uint64_t vt;

	for (i = 0; i < f->nusers && u == NULL; i++)
		if (f->users[i].uid == uid)
			u = &f->users[i];
	if (u == NULL) {
		f->users = xreallocarray(f->users, f->nusers + 1, sizeof *f->users);
		u = &f->users[f->nusers++];
		memset(u, 0, sizeof *u);
		u->uid = uid;
	}
	vt = (u->last[lv] > f->clock[lv] ? u->last[lv] : f->clock[lv]) + 1;
	u->last[lv] = vt;
	if (vt > f->top[lv])
		f->top[lv] = vt;
	return vt;
}

uint64_t
sched_fair_fifo(const struct sched_fair *f, int priority)
{
	return f->top[level(priority)];
}

void
sched_fair_started(struct sched_fair *f, const struct job *j)
{
	size_t lv = level(j->spec.priority);

	if (j->vt > f->clock[lv])
		f->clock[lv] = j->vt;
}

void
sched_fair_free(struct sched_fair *f)
{
	free(f->users);
	memset(f, 0, sizeof *f);
}

static void
stamp(struct sched *s, struct job *j, int q)
{
	j->vt = s->cfg->queue.fair_share ? sched_fair_stamp(&s->fair[q], j->uid, j->spec.priority)
					 : sched_fair_fifo(&s->fair[q], j->spec.priority);
}

/* ---- dispatch ---- */

static void sched_ppool_done_cb(struct run *r, void *arg);
static void sched_ppool_ready_cb(void *arg);

struct sched *
sched_new(struct jobs *js, struct tpool *tp, const struct config *cfg, const char *jobs_dir)
{
	struct sched *s = xcalloc(1, sizeof *s);
	int q;

	s->jobs = js;
	s->tpool = tp;
	s->cfg = cfg;
	s->jobs_dir = xstrdup(jobs_dir);
	s->root = geteuid() == 0;
	for (q = 0; q < NQUEUES; q++)
		s->queue[q] = jobq_new();
	s->router = router_new(cfg->router.default_class, cfg->router.cpu_ratio);
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
sched_free(struct sched *s)
{
	int q;

	if (s == NULL)
		return;
	for (q = 0; q < NQUEUES; q++) {
		jobq_free(s->queue[q]);
		sched_fair_free(&s->fair[q]);
	}
	router_free(s->router);
	free(s->jobs_dir);
	free(s->live_dir);
	free(s);
}

void
sched_configure(struct sched *s)
{
	router_configure(s->router, s->cfg->router.default_class, s->cfg->router.cpu_ratio);
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
	return jobq_len(s->queue[Q_CPU]) + jobq_len(s->queue[Q_IO]);
}

size_t
sched_pending_class(const struct sched *s, enum job_class c)
{
	return jobq_len(s->queue[c == CLASS_CPU ? Q_CPU : Q_IO]);
}

size_t
sched_running(const struct sched *s)
{
	return s->running;
}

size_t
sched_running_class(const struct sched *s, enum job_class c)
{
	return c == CLASS_CPU ? s->running_cpu : s->running - s->running_cpu;
}

json_t *
sched_router_json(const struct sched *s)
{
	return router_to_json(s->router);
}

void
sched_remove_output(struct sched *s, const struct job *j)
{
	/* Only a command that started has output files. */
	if (j->spec.type == BUILTIN_EXEC && j->started_at > 0)
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
	/* The environment is not shown anywhere once the job is over: give it back. */
	strv_free(j->spec.env);
	j->spec.env = NULL;
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

/* A run came back from either pool: move its result into the job and finish it. */
static void
run_finished(struct sched *s, struct run *r, int worker)
{
	struct job *j = r->owner;
	enum job_state st;

	j->res = r->res;
	r->res.result = NULL;
	r->res.error = NULL;
	if (j->res.started_at > 0)
		j->started_at = j->res.started_at;
	j->worker = worker;
	j->run = NULL;
	run_free(r);
	s->running--;
	if (j->pool == POOL_PROCESS)
		s->running_cpu--;
	router_learn_run(s->router, j->route_key, &j->res);
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
run_task_cb(struct tpool_task *t)
{
	run_execute((struct run *)t);
}

static struct run *
make_run(struct sched *s, struct job *j)
{
	struct run *r = run_new();

	r->spec.job_id = j->id;
	r->spec.type = j->spec.type;
	r->spec.argv = strv_dup(j->spec.argv);
	r->spec.env = strv_dup(j->spec.env);
	r->spec.cwd = j->spec.cwd != NULL ? xstrdup(j->spec.cwd) : NULL;
	if (j->spec.type == BUILTIN_EXEC) {
		r->spec.out_path = output_path(s->jobs_dir, j->id, OUTPUT_STDOUT);
		r->spec.err_path = output_path(s->jobs_dir, j->id, OUTPUT_STDERR);
		if (s->live_dir != NULL)
			r->spec.track_path = leftover_job_path(s->live_dir, j->id);
	}
	r->spec.timeout = j->spec.timeout;
	r->spec.kill_grace = s->cfg->jobs.kill_grace;
	r->spec.max_output = s->cfg->jobs.max_output;
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
	STATS_INC(jobs_started);
	log_debug("job %llu started in the %s pool", (unsigned long long)j->id,
		  job_pool_name(pool));
}

static void
start_thread(struct sched *s, struct job *j)
{
	struct run *r = make_run(s, j);

	r->task.run = run_task_cb;
	r->task.done = run_done_cb;
	r->task.arg = s;
	mark_started(s, j, r, POOL_THREAD);
	tpool_submit(s->tpool, &r->task);
	if (j->cancel_requested)
		run_cancel(r);
}

static int
start_process(struct sched *s, struct job *j)
{
	struct run *r = make_run(s, j);

	if (ppool_submit(s->ppool, r) == -1) {
		run_free(r);
		return -1;
	}
	mark_started(s, j, r, POOL_PROCESS);
	j->worker = (int)r->worker_pid;
	return 0;
}

void
sched_dispatch(struct sched *s)
{
	struct jobq *cpu = s->queue[Q_CPU], *io = s->queue[Q_IO];
	struct job *j;

	while (!s->paused[Q_IO] && jobq_len(io) > 0 && tpool_capacity(s->tpool) > 0) {
		j = jobq_pop(io);
		sched_fair_started(&s->fair[Q_IO], j);
		start_thread(s, j);
	}
	if (s->ppool == NULL)
		return;
	while (!s->paused[Q_CPU] && (j = jobq_peek(cpu)) != NULL && ppool_idle(s->ppool) > 0) {
		if (start_process(s, j) == -1)
			break;
		jobq_remove(cpu, j);
		sched_fair_started(&s->fair[Q_CPU], j);
	}
	/* A paused queue asks for no workers. */
	ppool_demand(s->ppool, s->paused[Q_CPU] ? 0 : jobq_len(cpu));
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
	j->routed = router_route(s->router, &j->spec, j->route_key, sizeof j->route_key);
	return j->routed;
}

void
sched_add(struct sched *s, struct job *j)
{
	int q;

	sched_route(s, j);
	/* Without a process pool everything runs on threads. */
	if (s->ppool == NULL)
		j->routed = CLASS_IO;
	j->seq = s->seq++;
	q = j->routed == CLASS_CPU ? Q_CPU : Q_IO;
	stamp(s, j, q);
	jobq_push(s->queue[q], j);
}

void
sched_prune(struct sched *s)
{
	jobs_prune(s->jobs, s->cfg->jobs.keep_finished, prune_cb, s);
}

static void
unqueue(struct sched *s, struct job *j)
{
	jobq_remove(s->queue[j->routed == CLASS_CPU ? Q_CPU : Q_IO], j);
}

static void
cancel_running(struct sched *s, struct job *j)
{
	j->cancel_requested = true;
	if (j->run == NULL)
		return;
	if (j->pool == POOL_PROCESS)
		ppool_cancel(s->ppool, j->run);
	else
		run_cancel(j->run);
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
	int qi = j->routed == CLASS_CPU ? Q_CPU : Q_IO;
	struct jobq *q = s->queue[qi];
	bool queued = j->state == JOB_QUEUED && j->qidx < jobq_len(q);

	/* Out and back in with a turn at its new level, keeping its seq: O(log n). */
	if (queued)
		jobq_remove(q, j);
	j->spec.priority = priority;
	if (queued) {
		stamp(s, j, qi);
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
	for (j = jobs_first(s->jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, all);
		if (j->state == JOB_RUNNING)
			cancel_running(s, j);
	}
	check_idle(s);
}
