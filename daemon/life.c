#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "life.h"
#include "log.h"
#include "sched.h"
#include "stats.h"
#include "xmalloc.h"

struct life {
	struct jobs *jobs;
	struct sched *sched;
	struct event *timer;   /* fires at the earliest due_at */
	struct event *eval_ev; /* dependents to look at again */
	struct life_heap heap;
	uint64_t *ready;       /* ids of jobs whose dependencies moved */
	size_t nready, capready;
	bool stopped;
};

/* ---- the timer heap ---- */

static bool
due_before(const struct job *a, const struct job *b)
{
	if (a->due_at != b->due_at)
		return a->due_at < b->due_at;
	return a->id < b->id;
}

static void
hplace(struct life_heap *h, size_t i, struct job *j)
{
	h->v[i] = j;
	j->tidx = i;
}

static void
hup(struct life_heap *h, size_t i)
{
	struct job *j = h->v[i];

	while (i > 0 && due_before(j, h->v[(i - 1) / 2])) {
		hplace(h, i, h->v[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	hplace(h, i, j);
}

static void
hdown(struct life_heap *h, size_t i)
{
	struct job *j = h->v[i];
	size_t c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= h->len)
			break;
		if (c + 1 < h->len && due_before(h->v[c + 1], h->v[c]))
			c++;
		if (!due_before(h->v[c], j))
			break;
		hplace(h, i, h->v[c]);
		i = c;
	}
	hplace(h, i, j);
}

void
life_heap_push(struct life_heap *h, struct job *j)
{
	if (h->len == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 64;
		h->v = xreallocarray(h->v, h->cap, sizeof *h->v);
	}
	h->v[h->len++] = j;
	hup(h, h->len - 1);
}

struct job *
life_heap_peek(const struct life_heap *h)
{
	return h->len > 0 ? h->v[0] : NULL;
}

void
life_heap_remove(struct life_heap *h, struct job *j)
{
	size_t i = j->tidx;
	struct job *last;

	if (i >= h->len || h->v[i] != j)
		return;
	j->tidx = SIZE_MAX;
	last = h->v[--h->len];
	if (i == h->len)
		return;
	hplace(h, i, last);
	if (i > 0 && due_before(last, h->v[(i - 1) / 2]))
		hup(h, i);
	else
		hdown(h, i);
}

void
life_heap_free(struct life_heap *h)
{
	free(h->v);
	memset(h, 0, sizeof *h);
}

/* ---- timing ---- */

static void
arm(struct life *l)
{
	struct job *j = life_heap_peek(&l->heap);
	struct timeval tv;
	double d;

	if (j == NULL || l->stopped) {
		evtimer_del(l->timer);
		return;
	}
	d = j->due_at - now_unix();
	if (d < 0)
		d = 0;
	tv.tv_sec = (time_t)d;
	tv.tv_usec = (suseconds_t)((d - (double)tv.tv_sec) * 1e6);
	evtimer_add(l->timer, &tv);
}

static void
schedule_at(struct life *l, struct job *j, double due)
{
	j->due_at = due;
	if (j->state != JOB_SCHEDULED)
		job_set_state(l->jobs, j, JOB_SCHEDULED);
	else
		jobs_touch(l->jobs, j);
	life_heap_remove(&l->heap, j);
	life_heap_push(&l->heap, j);
	arm(l);
}

/* Ready to run (dependencies met, start time reached): into the run queue. */
static void
enqueue(struct life *l, struct job *j)
{
	life_heap_remove(&l->heap, j);
	j->due_at = 0;
	job_set_state(l->jobs, j, JOB_QUEUED);
	sched_add(l->sched, j);
}

static void
life_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct life *l = arg;
	struct job *j;
	double now = now_unix();
	size_t n = 0;

	if (l->stopped)
		return;
	/* Half a millisecond early is on time: the timer's clock is not the wall clock. */
	while ((j = life_heap_peek(&l->heap)) != NULL && j->due_at <= now + 0.0005) {
		enqueue(l, j);
		n++;
	}
	if (n > 0) {
		log_debug("%zu scheduled jobs due", n);
		sched_dispatch(l->sched);
	}
	arm(l);
}

double
life_retry_delay(double base, int attempt)
{
	double d = base * pow(2, attempt > 1 ? attempt - 1 : 0);

	return d < JOB_RETRY_DELAY_CAP ? d : JOB_RETRY_DELAY_CAP;
}

/* ---- dependencies ---- */

static void
unwatch(struct life *l, struct job *j)
{
	struct job_dep *d;
	struct job *dep;
	size_t i;

	for (i = 0; i < j->spec.ndeps; i++) {
		d = &j->spec.deps[i];
		if (!d->watching)
			continue;
		if ((dep = jobs_find(l->jobs, d->id)) != NULL)
			job_unwait(dep, &d->waiter);
		d->watching = false;
	}
}

static void
push_ready(struct life *l, uint64_t id)
{
	if (l->nready == l->capready) {
		l->capready = l->capready ? l->capready * 2 : 64;
		l->ready = xreallocarray(l->ready, l->capready, sizeof *l->ready);
	}
	l->ready[l->nready++] = id;
	event_active(l->eval_ev, EV_TIMEOUT, 0);
}

/* A dependency ended: note how, look at the dependent soon (not from inside jobs_finish). */
static void
dep_done_cb(struct job *dep, void *arg)
{
	struct job_dep *d = arg;
	struct life *l = d->ctx;

	d->watching = false;
	/* Not final: discarded (its submit failed), as if pruned. */
	d->state = job_state_final(dep->state) ? (int)dep->state : JOB_NSTATES;
	jobs_touch(l->jobs, d->owner);
	push_ready(l, d->owner->id);
}

/* Met (1), failed (0: *bad is the dependency that failed it) or not yet known (-1). */
static int
deps_met(struct job *j, struct job_dep **bad)
{
	struct job_dep *d;
	size_t i;
	int rc = 1;

	for (i = 0; i < j->spec.ndeps; i++) {
		d = &j->spec.deps[i];
		if (d->state < 0) {
			rc = -1;
			continue;
		}
		if (!d->any && d->state != JOB_DONE) {
			*bad = d;
			return 0;
		}
	}
	return rc;
}

/*
 * A waiting job: fail it, time it, queue it, or leave it waiting. A queued
 * job starts at once if dispatch, else the caller dispatches (a batch is
 * queued whole first, so that its priorities hold).
 */
static void
evaluate(struct life *l, struct job *j, bool dispatch)
{
	struct job_dep *bad = NULL;
	char why[128];
	int rc;

	if (!j->admitted || j->state != JOB_WAITING || l->stopped)
		return;
	rc = deps_met(j, &bad);
	if (rc < 0)
		return;
	if (rc == 0) {
		unwatch(l, j);
		if (bad->state == JOB_NSTATES)
			snprintf(why, sizeof why, "dependency %llu is no longer known",
				 (unsigned long long)bad->id);
		else
			snprintf(why, sizeof why, "dependency %llu failed (%s)",
				 (unsigned long long)bad->id, job_state_name(bad->state));
		log_debug("job %llu: %s", (unsigned long long)j->id, why);
		/* Its own dependents hear of it through its waiters: transitively. */
		sched_finish(l->sched, j, JOB_FAILED, why);
		return;
	}
	if (j->spec.run_at > now_unix()) {
		schedule_at(l, j, j->spec.run_at);
		return;
	}
	enqueue(l, j);
	if (dispatch)
		sched_dispatch(l->sched);
}

static void
life_eval_cb(evutil_socket_t fd, short what, void *arg)
{
	struct life *l = arg;
	struct job *j;
	size_t i;

	/* Evaluating may finish jobs and so add to the list: walk it as it grows. */
	for (i = 0; i < l->nready; i++)
		if ((j = jobs_find(l->jobs, l->ready[i])) != NULL)
			evaluate(l, j, true);
	l->nready = 0;
	sched_check_idle(l->sched);
}

/* Watch every dependency not yet known to have ended. */
static void
watch(struct life *l, struct job *j)
{
	struct job_dep *d;
	struct job *dep;
	size_t i;

	for (i = 0; i < j->spec.ndeps; i++) {
		d = &j->spec.deps[i];
		d->owner = j;
		d->ctx = l;
		if (d->watching)
			continue;
		dep = jobs_find(l->jobs, d->id);
		if (dep == NULL) {
			/* Pruned: its outcome is the one stored, else unknown (fails the job). */
			if (d->state < 0)
				d->state = JOB_NSTATES;
			continue;
		}
		if (job_state_final(dep->state)) {
			d->state = (int)dep->state;
			continue;
		}
		d->state = -1;
		d->watching = true;
		d->waiter.cb = dep_done_cb;
		d->waiter.arg = d;
		job_wait(dep, &d->waiter);
	}
}

/* ---- the module ---- */

static bool life_retry_cb(struct job *j, enum job_state st, void *arg);
static void life_forget_cb(struct job *j, void *arg);

struct life *
life_new(struct event_base *base, struct jobs *js, struct sched *s)
{
	struct life *l = xcalloc(1, sizeof *l);

	l->jobs = js;
	l->sched = s;
	l->timer = evtimer_new(base, life_timer_cb, l);
	l->eval_ev = event_new(base, -1, 0, life_eval_cb, l);
	if (l->timer == NULL || l->eval_ev == NULL)
		fatalx("cannot create the scheduling timers");
	sched_set_life_cbs(s, life_retry_cb, life_forget_cb, l);
	return l;
}

void
life_free(struct life *l)
{
	if (l == NULL)
		return;
	sched_set_life_cbs(l->sched, NULL, NULL, NULL);
	event_free(l->timer);
	event_free(l->eval_ev);
	life_heap_free(&l->heap);
	free(l->ready);
	free(l);
}

void
life_prepare(struct life *l, struct job *j)
{
	if (j->spec.ndeps > 0) {
		watch(l, j);
		job_set_state(l->jobs, j, JOB_WAITING);
	} else if (j->spec.run_at > 0) {
		j->due_at = j->spec.run_at;
		job_set_state(l->jobs, j, JOB_SCHEDULED);
	}
}

void
life_admit(struct life *l, struct job *j)
{
	j->admitted = true;
	switch (j->state) {
	case JOB_QUEUED:
		sched_add(l->sched, j);
		break;
	case JOB_WAITING:
		evaluate(l, j, false);
		break;
	case JOB_SCHEDULED:
		schedule_at(l, j, j->due_at);
		break;
	default:
		break;
	}
}

void
life_adopt(struct life *l, struct job *j)
{
	j->admitted = true;
	if (j->spec.ndeps > 0) {
		watch(l, j);
		if (j->state != JOB_WAITING)
			job_set_state(l->jobs, j, JOB_WAITING);
		evaluate(l, j, true);
		return;
	}
	if (j->state != JOB_QUEUED)
		job_set_state(l->jobs, j, JOB_QUEUED);
	sched_add(l->sched, j);
	sched_dispatch(l->sched);
}

void
life_forget(struct life *l, struct job *j)
{
	unwatch(l, j);
	life_heap_remove(&l->heap, j);
	arm(l);
}

static void
life_forget_cb(struct job *j, void *arg)
{
	life_forget(arg, j);
}

void
life_hold(struct life *l, struct job *j)
{
	sched_unqueue(l->sched, j);
	job_set_state(l->jobs, j, JOB_PAUSED);
	sched_check_idle(l->sched);
}

void
life_release(struct life *l, struct job *j)
{
	job_set_state(l->jobs, j, JOB_QUEUED);
	/* Its submit is not stored yet: life_admit queues it then (once). */
	if (!j->admitted)
		return;
	sched_add(l->sched, j);
	sched_dispatch(l->sched);
}

void
life_stop(struct life *l)
{
	l->stopped = true;
	evtimer_del(l->timer);
}

/* ---- retries ---- */

static json_t *
outcome(const struct job *j, enum job_state st)
{
	const struct run_result *r = &j->res;

	return json_pack("{s:i,s:s,s:o,s:o,s:o,s:o,s:f}", "attempt", j->attempt, "state",
			 job_state_name(st),
			 "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code) : json_null(),
			 "signal", r->signal > 0 ? json_integer(r->signal) : json_null(),
			 "error", r->error != NULL ? json_string(r->error) : json_null(),
			 "started_at", j->started_at > 0 ? json_real(j->started_at) : json_null(),
			 "finished_at", r->finished_at > 0 ? r->finished_at : now_unix());
}

/* Note this attempt's outcome and clear the result for the next one. */
double
life_next_attempt(struct job *j, enum job_state st)
{
	json_t *o = outcome(j, st);

	if (o == NULL)
		fatalx("job %llu: cannot record its attempt", (unsigned long long)j->id);
	if (j->attempts == NULL)
		j->attempts = json_array();
	json_array_append_new(j->attempts, o);
	run_result_clear(&j->res);
	j->pool = POOL_NONE;
	j->worker = -1;
	j->started_at = 0;
	j->finished_at = 0;
	j->cancel_requested = false;
	return life_retry_delay(j->spec.retry_delay, j->attempt++);
}

bool
life_retryable(const struct job *j, enum job_state st)
{
	return (st == JOB_FAILED || st == JOB_TIMEOUT || st == JOB_LOST) &&
	       j->attempt <= j->spec.retries;
}

static bool
life_retry_cb(struct job *j, enum job_state st, void *arg)
{
	struct life *l = arg;
	double delay;

	if (!life_retryable(j, st) || j->cancel_requested)
		return false;
	delay = life_next_attempt(j, st);
	STATS_INC(jobs_retried);
	log_debug("job %llu %s: attempt %d in %.3f s", (unsigned long long)j->id,
		  job_state_name(st), j->attempt, delay);
	schedule_at(l, j, now_unix() + delay);
	return true;
}

void
life_recover(struct life *l)
{
	struct job *j;
	double delay;
	size_t retried = 0;

	for (j = jobs_first(l->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		/*
		 * Lost by the restart (persist_recover) with retries left: try again,
		 * unless its old run could not be killed (it would run twice).
		 */
		if (j->state == JOB_LOST && life_retryable(j, JOB_LOST) && j->started_at > 0 &&
		    !j->unkillable) {
			delay = life_next_attempt(j, JOB_LOST);
			STATS_INC(jobs_retried);
			j->due_at = now_unix() + delay;
			jobs_reopen(l->jobs, j, JOB_SCHEDULED);
			retried++;
		}
	}
	for (j = jobs_first(l->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		switch (j->state) {
		case JOB_WAITING:
			watch(l, j);
			push_ready(l, j->id);
			j->admitted = true;
			break;
		case JOB_SCHEDULED:
			j->admitted = true;
			life_heap_push(&l->heap, j);
			break;
		case JOB_PAUSED:
			j->admitted = true;
			break;
		default:
			break;
		}
	}
	arm(l);
	if (retried > 0)
		log_info("%zu jobs lost by the restart will be retried", retried);
}
