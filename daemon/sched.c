#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "builtin.h"
#include "log.h"
#include "sched.h"
#include "stats.h"
#include "xmalloc.h"

struct jobq {
	struct job **heap;
	size_t len;
	size_t cap;
};

struct sched {
	struct jobs *jobs;
	struct tpool *tpool;
	const struct config *cfg;
	char *jobs_dir;
	struct jobq *queue;
	uint64_t seq;
	size_t running;
	void (*idle_cb)(void *);
	void *idle_arg;
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

/* ---- dispatch ---- */

struct sched *
sched_new(struct jobs *js, struct tpool *tp, const struct config *cfg, const char *jobs_dir)
{
	struct sched *s = xcalloc(1, sizeof *s);

	s->jobs = js;
	s->tpool = tp;
	s->cfg = cfg;
	s->jobs_dir = xstrdup(jobs_dir);
	s->queue = jobq_new();
	return s;
}

void
sched_free(struct sched *s)
{
	if (s == NULL)
		return;
	jobq_free(s->queue);
	free(s->jobs_dir);
	free(s);
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
	return jobq_len(s->queue);
}

size_t
sched_running(const struct sched *s)
{
	return s->running;
}

void
sched_remove_output(struct sched *s, const struct job *j)
{
	char path[4096];

	if (j->spec.type != BUILTIN_EXEC || j->started_at <= 0)
		return;
	snprintf(path, sizeof path, "%s/%llu.out", s->jobs_dir, (unsigned long long)j->id);
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("unlink %s", path);
	snprintf(path, sizeof path, "%s/%llu.err", s->jobs_dir, (unsigned long long)j->id);
	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("unlink %s", path);
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
	case RUN_SIGNALED:
	case RUN_FAILED:
	default:
		return JOB_FAILED;
	}
}

static void
check_idle(struct sched *s)
{
	if (s->running == 0 && jobq_len(s->queue) == 0 && s->idle_cb != NULL)
		s->idle_cb(s->idle_arg);
}

static void
run_done_cb(struct tpool_task *t, void *arg)
{
	struct sched *s = arg;
	struct run *r = (struct run *)t;
	struct job *j = r->owner;

	/* Move the result (and its strings) into the job. */
	j->res = r->res;
	r->res.result = NULL;
	r->res.error = NULL;
	if (j->res.started_at > 0)
		j->started_at = j->res.started_at;
	j->worker = t->thread;
	j->run = NULL;
	run_free(r);
	s->running--;
	finish(s, j, final_state(&j->res));
	sched_dispatch(s);
	check_idle(s);
}

static void
run_task_cb(struct tpool_task *t)
{
	run_execute((struct run *)t);
}

static char *
output_path(struct sched *s, uint64_t id, const char *ext)
{
	return xprintf("%s/%llu.%s", s->jobs_dir, (unsigned long long)id, ext);
}

static void
start(struct sched *s, struct job *j)
{
	struct run *r = run_new();

	r->spec.job_id = j->id;
	r->spec.type = j->spec.type;
	r->spec.argv = strv_dup(j->spec.argv);
	r->spec.env = strv_dup(j->spec.env);
	r->spec.cwd = j->spec.cwd != NULL ? xstrdup(j->spec.cwd) : NULL;
	if (j->spec.type == BUILTIN_EXEC) {
		r->spec.out_path = output_path(s, j->id, "out");
		r->spec.err_path = output_path(s, j->id, "err");
	}
	r->spec.timeout = j->spec.timeout;
	r->spec.kill_grace = s->cfg->jobs.kill_grace;
	r->spec.max_output = s->cfg->jobs.max_output;
	r->owner = j;
	r->task.run = run_task_cb;
	r->task.done = run_done_cb;
	r->task.arg = s;

	j->run = r;
	j->routed = CLASS_IO;
	j->pool = POOL_THREAD;
	j->started_at = now_unix();
	job_set_state(s->jobs, j, JOB_RUNNING);
	s->running++;
	STATS_INC(jobs_started);
	log_debug("job %llu started", (unsigned long long)j->id);
	tpool_submit(s->tpool, &r->task);
	if (j->cancel_requested)
		run_cancel(r);
}

void
sched_dispatch(struct sched *s)
{
	struct job *j;

	while (jobq_len(s->queue) > 0 && tpool_capacity(s->tpool) > 0) {
		j = jobq_pop(s->queue);
		start(s, j);
	}
}

void
sched_enqueue(struct sched *s, struct job *j)
{
	j->seq = s->seq++;
	jobq_push(s->queue, j);
	sched_dispatch(s);
}

int
sched_cancel(struct sched *s, struct job *j, const char *why)
{
	if (j->state == JOB_QUEUED) {
		jobq_remove(s->queue, j);
		free(j->res.error);
		j->res.error = xstrdup(why);
		finish(s, j, JOB_CANCELLED);
		check_idle(s);
		return 0;
	}
	if (j->state == JOB_RUNNING) {
		j->cancel_requested = true;
		if (j->run != NULL)
			run_cancel(j->run);
		return 1;
	}
	return -1;
}

void
sched_cancel_all(struct sched *s, const char *why)
{
	struct job *j, *next;

	while ((j = jobq_peek(s->queue)) != NULL) {
		jobq_remove(s->queue, j);
		free(j->res.error);
		j->res.error = xstrdup(why);
		finish(s, j, JOB_CANCELLED);
	}
	for (j = jobs_first(s->jobs); j != NULL; j = next) {
		next = TAILQ_NEXT(j, all);
		if (j->state == JOB_RUNNING)
			sched_cancel(s, j, why);
	}
	check_idle(s);
}
