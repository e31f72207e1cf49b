/*
 * Running jobs in the process pool (ppool.h; ppool.c has the overview):
 * handing a run to an idle worker (ppool_submit), the messages a busy or
 * starting worker sends ("ready", "started", "progress", "done"), each
 * checked against its state, the pidfd that times a job's command by the
 * daemon's clock, and what the scheduler asks of a running job: suspend,
 * cancel, stop its output. Loop thread only.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <event2/event.h>

#include "builtin.h"
#include "exec.h"
#include "jobtype.h"
#include "log.h"
#include "ppool.h"
#include "ppool-private.h"
#include "worker.h"
#include "xmalloc.h"

#define PPOOL_CANCEL_SLACK 5.0    /* seconds past kill_grace before a cancel SIGKILLs */
#define PPOOL_MODULE_CANCEL_SLACK 0.5 /* the same for a module job, which stops by itself */
#define PPOOL_TIMEOUT_SLACK 2.0   /* seconds past timeout + kill_grace before the daemon enforces it */
#define PPOOL_MSG_MAX (16u << 20) /* cap on a message from a worker */

/* --- messages from a worker ------------------------------------------- */

static void
recycle_check(struct ppool *pp, struct pworker *w)
{
	const struct ppool_config *c = &pp->cfg;

	if (pp->stopping)
		worker_retire(w);
	else if (c->max_jobs_per_worker > 0 && w->jobs_done >= (uint64_t)c->max_jobs_per_worker)
		worker_retire(w);
	else if (c->max_worker_rss > 0 && w->rss_kb > 0 &&
	         (uint64_t)w->rss_kb * 1024 > c->max_worker_rss)
		worker_retire(w);
}

static int
on_done(struct pworker *w, const json_t *msg, char **why)
{
	struct ppool *pp = w->pp;
	struct run *r = w->run;
	struct run_result res;
	uint64_t job;
	long rss;
	char *error = NULL;

	if (w->state != W_BUSY || r == NULL) {
		*why = xstrdup("\"done\" while not busy");
		return -1;
	}
	if (worker_decode_result(msg, &res, &job, &rss, &error) == -1) {
		*why = xprintf("bad \"done\": %s", error);
		free(error);
		return -1;
	}
	if (job != r->spec.job_id) {
		run_result_clear(&res);
		*why = xprintf("\"done\" for job %" PRIu64 " while running job %" PRIu64, job,
		               r->spec.job_id);
		return -1;
	}
	own_wall(w, &res);
	unwatch_job(w);
	run_result_move(&r->res, &res);
	w->run = NULL;
	w->cancel = false;
	w->job_pid = 0;
	w->jobs_done++;
	w->rss_kb = rss;
	w->state = W_IDLE;
	w->idle_since = clock_now(CLOCK_MONOTONIC);
	event_del(w->ev_cancel);
	event_del(w->ev_timeout);
	recycle_check(pp, w);
	deliver(pp, r);
	return 0;
}

static int
on_ready(struct pworker *w, const json_t *msg, char **why)
{
	json_t *pid = json_object_get(msg, "pid");

	if (w->state == W_EXITING)
		return 0; /* told to exit before it got going */
	if (w->state != W_STARTING) {
		*why = xstrdup("\"ready\" when not starting");
		return -1;
	}
	if (!json_is_integer(pid) || json_integer_value(pid) != w->pid) {
		*why = xstrdup("\"ready\" with a wrong pid");
		return -1;
	}
	w->state = W_IDLE;
	w->idle_since = clock_now(CLOCK_MONOTONIC);
	w->pp->next_spawn = 0;
	if (w->pp->stopping)
		worker_retire(w);
	return 0;
}

/* The command exited: note when, by our clock (its worker may be stopped). */
static void
ppool_job_exit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w = arg;

	if (w->job_exited == 0)
		w->job_exited = clock_now(CLOCK_MONOTONIC);
	event_del(w->ev_job);
}

/*
 * Watch the command the worker started, through a pidfd: if the worker is
 * stopped while the command ends, the run still gets its own wall time. (A
 * command so short that its pid was reaped and handed out again before this
 * runs makes us watch another process, which can only exit later: the
 * worker's own measure, the smaller, then stands.)
 */
static void
watch_job(struct pworker *w)
{
	int fd;

	unwatch_job(w);
	w->job_exited = 0;
	if ((fd = (int)syscall(SYS_pidfd_open, w->job_pid, 0)) == -1)
		return;
	w->ev_job = event_new(w->pp->base, fd, EV_READ, ppool_job_exit_cb, w);
	if (w->ev_job == NULL || event_add(w->ev_job, NULL) == -1) {
		if (w->ev_job != NULL)
			event_free(w->ev_job);
		w->ev_job = NULL;
		close(fd);
	}
}

static int
on_started(struct pworker *w, const json_t *msg, char **why)
{
	json_t *job = json_object_get(msg, "job"), *pid = json_object_get(msg, "pid");
	json_t *cg = json_object_get(msg, "cgroup_error");

	if (w->state != W_BUSY || w->run == NULL || !json_is_integer(job) ||
	    (uint64_t)json_integer_value(job) != w->run->spec.job_id || !json_is_integer(pid) ||
	    json_integer_value(pid) <= 1 || json_integer_value(pid) > INT_MAX ||
	    (cg != NULL && (!json_is_string(cg) ||
			    strlen(json_string_value(cg)) != json_string_length(cg)))) {
		*why = xstrdup("unexpected \"started\"");
		return -1;
	}
	w->job_pid = (pid_t)json_integer_value(pid);
	/* Set before live_pid is published: whoever sees the pid sees this too. */
	if (cg != NULL && w->run->res.cgroup_error == NULL)
		w->run->res.cgroup_error = xstrdup(json_string_value(cg));
	atomic_store(&w->run->live_pid, (int)w->job_pid);
	watch_job(w);
	return 0;
}

/* A module job's progress: kept in its run, for `taskctl show`. */
static int
on_progress(struct pworker *w, const json_t *msg, char **why)
{
	char *message = NULL, *error = NULL;
	uint64_t job;

	if (worker_decode_progress(msg, &job, &message, &error) == -1) {
		*why = xprintf("bad \"progress\": %s", error);
		free(error);
		return -1;
	}
	if (w->state != W_BUSY || w->run == NULL || job != w->run->spec.job_id ||
	    w->run->spec.type == BUILTIN_EXEC) {
		free(message);
		*why = xstrdup("unexpected \"progress\"");
		return -1;
	}
	run_set_progress(w->run, message);
	free(message);
	return 0;
}

static int
dispatch(struct pworker *w, const json_t *msg, char **why)
{
	const char *t = json_string_value(json_object_get(msg, "t"));

	if (t == NULL) {
		*why = xstrdup("message without \"t\"");
		return -1;
	}
	if (strcmp(t, "ready") == 0)
		return on_ready(w, msg, why);
	if (strcmp(t, "done") == 0)
		return on_done(w, msg, why);
	if (strcmp(t, "started") == 0)
		return on_started(w, msg, why);
	if (strcmp(t, "progress") == 0)
		return on_progress(w, msg, why);
	*why = xprintf("unknown message \"%.32s\"", t);
	return -1;
}

void
ppool_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w = arg;
	struct ppool *pp = w->pp;
	char *error = NULL, *why = NULL;
	json_t *msg;

	msg = worker_recv(fd, PPOOL_MSG_MAX, &error);
	if (msg == NULL) {
		if (strcmp(error, "again") == 0) {
			free(error);
			return;
		}
		if (strcmp(error, "eof") == 0 && w->state == W_EXITING)
			close_socket(w); /* exiting as asked; the pidfd reports it */
		else if (strcmp(error, "eof") == 0)
			worker_kill(w, NULL); /* dying, or must: the pidfd reports how */
		else
			worker_kill(w, error);
		free(error);
		return;
	}
	if (dispatch(w, msg, &why) == -1) {
		worker_kill(w, why);
		free(why);
		json_decref(msg);
		return;
	}
	json_decref(msg);
	maintain(pp);
	notify_ready(pp);
}

/* --- API -------------------------------------------------------------- */

int
ppool_idle(const struct ppool *pp)
{
	const struct pworker *w;
	int n = 0;

	TAILQ_FOREACH(w, &pp->workers, entry) {
		if (w->state == W_IDLE)
			n++;
	}
	return n;
}

int
ppool_submit(struct ppool *pp, struct run *r)
{
	struct pworker *w = pick_idle(pp, false);

	if (w == NULL || pp->stopping)
		return -1;
	if (worker_msg(w, worker_encode_spec(&r->spec)) == -1) {
		worker_kill(w, "cannot send the job");
		return -1;
	}
	w->state = W_BUSY;
	w->run = r;
	w->cancel = false;
	w->timed_out = false;
	w->job_pid = 0;
	w->job_exited = 0;
	w->timeout_left = -1;
	w->timeout_at = 0;
	if (r->spec.timeout > 0) {
		double after = r->spec.timeout + r->spec.kill_grace + PPOOL_TIMEOUT_SLACK;
		struct timeval tv = clock_timeval(after);

		w->timeout_at = clock_now(CLOCK_MONOTONIC) + after;
		evtimer_add(w->ev_timeout, &tv);
	}
	w->job_start = clock_now(CLOCK_MONOTONIC);
	w->job_started_at = clock_now(CLOCK_REALTIME);
	r->worker_pid = w->pid;
	if (pp->pending > 0)
		pp->pending--;
	maintain(pp);
	return 0;
}

void
ppool_demand(struct ppool *pp, size_t pending)
{
	pp->pending = pending;
	maintain(pp);
}

int
ppool_max_workers(const struct ppool *pp)
{
	return pp->cfg.max_workers;
}

void
ppool_set_extra(struct ppool *pp, int n)
{
	if (pp == NULL)
		return;
	pp->extra = n > 0 ? n : 0;
	maintain(pp);
}

static struct pworker *
find_run(const struct ppool *pp, const struct run *r)
{
	struct pworker *w;

	TAILQ_FOREACH(w, &pp->workers, entry) {
		if (w->run == r)
			return w;
	}
	return NULL;
}

void
ppool_suspend(struct ppool *pp, struct run *r, bool suspend)
{
	struct pworker *w = find_run(pp, r);
	union sigval v;
	struct timeval tv;
	double now = clock_now(CLOCK_MONOTONIC);

	if (w == NULL || r->spec.type != BUILTIN_EXEC)
		return;
	/* The job id and what to do, one queued real-time signal each: they arrive in order. */
	v.sival_ptr = (void *)(uintptr_t)((r->spec.job_id << 1) | (suspend ? 1 : 0));
	if (sigqueue(w->pid, WORKER_SIGSUSPEND, v) == -1)
		log_warn("ppool: %s job %" PRIu64 " in worker %d", suspend ? "suspend" : "resume",
		         r->spec.job_id, w->index);
	/* Its timeout, enforced from here too, does not run while it is stopped. */
	if (suspend && w->timeout_at > 0) {
		w->timeout_left = w->timeout_at > now ? w->timeout_at - now : 0;
		w->timeout_at = 0;
		event_del(w->ev_timeout);
	} else if (!suspend && w->timeout_left >= 0) {
		w->timeout_at = now + w->timeout_left;
		tv = clock_timeval(w->timeout_left);
		evtimer_add(w->ev_timeout, &tv);
		w->timeout_left = -1;
	}
}

void
ppool_cancel(struct ppool *pp, struct run *r)
{
	struct pworker *w = find_run(pp, r);
	union sigval v = {.sival_ptr = (void *)(uintptr_t)r->spec.job_id};
	struct timeval tv;

	if (w == NULL || w->cancel)
		return;
	w->cancel = true;
	if (sigqueue(w->pid, SIGUSR1, v) == -1)
		log_warn("ppool: cancel job %" PRIu64 " in worker %d", r->spec.job_id, w->index);
	tv = clock_timeval(r->spec.kill_grace + (r->spec.type == BUILTIN_EXEC ? PPOOL_CANCEL_SLACK
								      : PPOOL_MODULE_CANCEL_SLACK));
	evtimer_add(w->ev_cancel, &tv);
}

void
ppool_stop_output(struct ppool *pp, struct run *r)
{
	struct pworker *w = find_run(pp, r);
	union sigval v = {.sival_ptr = (void *)(uintptr_t)r->spec.job_id};

	/* A command's or a module job's that writes output (jobtype_has_output). */
	if (w == NULL || !jobtype_has_output(r->spec.type))
		return;
	if (sigqueue(w->pid, SIGUSR2, v) == -1)
		log_warn("ppool: stop the output of job %" PRIu64 " in worker %d", r->spec.job_id,
			 w->index);
}
