/*
 * The prefork process pool (daemon side), PHP-FPM style.
 *
 * What runs where. Everything here runs on the event loop thread. Workers
 * are separate processes (`taskd --worker 3 INDEX DAEMONPID PADDING`, see
 * worker.c) started with posix_spawn, never fork(), since the daemon has
 * threads. Each worker has a SOCK_SEQPACKET socketpair (the daemon keeps
 * one end, non-blocking, watched with EV_READ|EV_PERSIST) and a pidfd
 * (watched for its death). A 1 s maintenance timer and a backoff timer run
 * the sizing plan (ppool_plan, pure) and respawn workers: ppool-size.c.
 *
 * Who owns what. The pool owns its workers (struct pworker) and, between
 * ppool_submit and the done callback, the struct run it was given; the
 * worker process only ever sees a copy of the spec. Nothing is shared with
 * the thread pool; workers are reaped by their own pid (waitpid(pid,
 * WNOHANG) when the pidfd is readable), never with waitpid(-1), so the
 * commands reaped by pool threads are left alone.
 *
 * How they talk. worker.h messages: "ready" once started, "run" → "done"
 * per job, "exit" to retire. Every message from a worker is decoded
 * strictly and must fit the worker's state ("ready" only when starting,
 * "done" only for the job it is running); anything else gets the worker
 * SIGKILLed and treated as dead. A death is handled in one place, the
 * pidfd callback: a busy worker's run becomes RUN_LOST (RUN_CANCELLED when
 * the daemon asked for it), a worker that dies before "ready" or within
 * PPOOL_FAILED_START seconds counts as a failed start, and consecutive
 * failed starts delay the next spawn exponentially.
 *
 * Cancel. SIGUSR1 queued with the job id. A command: the worker stops the
 * job's group as for a timeout and answers "done" (RUN_CANCELLED); a safety
 * timer SIGKILLs a worker that has not answered after kill_grace + 5 s. A
 * module job (the built-in types too): its taskd_stop() says so and it
 * returns; one that has not after kill_grace (+ 0.5 s) gets its worker
 * SIGKILLed and replaced, and ends cancelled all the same.
 * Stopping a running job's output (its owner's output quota is used up,
 * quota.h): SIGUSR2, queued with the job id in the same way; a job that
 * starts with none left is told so in its run message ("quiet").
 *
 * Timeout. The worker enforces a job's timeout itself; should it not (it
 * is stopped with SIGSTOP, or hung), a timer here kills the job's command
 * and the worker PPOOL_TIMEOUT_SLACK seconds after timeout + kill_grace,
 * and the run ends as RUN_TIMEOUT. Killing a busy worker always kills its
 * command first: in a session of its own, it would outlive the worker.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "builtin.h"
#include "exec.h"
#include "clock.h"
#include "jobtype.h"
#include "leftover.h"
#include "log.h"
#include "ppool.h"
#include "stats.h"
#include "ppool-private.h"
#include "worker.h"
#include "xmalloc.h"

#define PPOOL_BACKOFF_MIN 0.1  /* seconds */
#define PPOOL_BACKOFF_MAX 30.0
#define PPOOL_CANCEL_SLACK 5.0    /* seconds past kill_grace before a cancel SIGKILLs */
#define PPOOL_MODULE_CANCEL_SLACK 0.5 /* the same for a module job, which stops by itself */
#define PPOOL_TIMEOUT_SLACK 2.0   /* seconds past timeout + kill_grace before the daemon enforces it */
#define PPOOL_MSG_MAX (16u << 20) /* cap on a message from a worker */
#define PPOOL_FREE_WAIT 5.0       /* seconds ppool_free waits before SIGKILL */
#define PPOOL_NOPIDFD_POLL 0.1    /* seconds between death checks without a pidfd */

static void ppool_read_cb(evutil_socket_t, short, void *);
static void ppool_dead_cb(evutil_socket_t, short, void *);
static void ppool_cancel_cb(evutil_socket_t, short, void *);
static void ppool_timeout_cb(evutil_socket_t, short, void *);
static void ppool_job_exit_cb(evutil_socket_t, short, void *);

/* --- workers ---------------------------------------------------------- */

static int
next_index(const struct ppool *pp)
{
	const struct pworker *w;
	int i;
	bool used;

	for (i = 1;; i++) {
		used = false;
		TAILQ_FOREACH(w, &pp->workers, entry) {
			if (w->index == i)
				used = true;
		}
		if (!used)
			return i;
	}
}

/* Its record in live_dir (leftover.h), or NULL without a live_dir. */
static char *
record_path(const struct ppool *pp, pid_t pid)
{
	return pp->live_dir != NULL ? leftover_worker_path(pp->live_dir, pid) : NULL;
}

/* A worker was spawned: record it, so that a restart kills it if it outlives us. */
static void
record_worker(const struct ppool *pp, pid_t pid)
{
	char *path = record_path(pp, pid);

	if (path != NULL && leftover_record(path, pid, clock_now(CLOCK_REALTIME)) == -1)
		log_warn("ppool: cannot record worker %d in %s", (int)pid, path);
	free(path);
}

/* A worker was reaped: nothing of it for a restart to kill. */
static void
forget_worker(const struct ppool *pp, pid_t pid)
{
	char *path = record_path(pp, pid);

	leftover_forget(path);
	free(path);
}

static void
failed_start(struct ppool *pp, const char *what)
{
	pp->failures++;
	pp->backoff = PPOOL_BACKOFF_MIN * ldexp(1.0, imin(pp->failures - 1, 20));
	if (pp->backoff > PPOOL_BACKOFF_MAX)
		pp->backoff = PPOOL_BACKOFF_MAX;
	pp->next_spawn = mono() + pp->backoff;
	log_warnx("ppool: worker failed to start (%d in a row, next try in %.1f s): %s",
	          pp->failures, pp->backoff, what);
}

static struct pworker *
worker_new(struct ppool *pp, int fd, int pidfd, pid_t pid, int index)
{
	struct pworker *w = xcalloc(1, sizeof *w);
	struct timeval poll_tv = tv_of(PPOOL_NOPIDFD_POLL);

	w->pp = pp;
	w->fd = fd;
	w->pidfd = pidfd;
	w->pid = pid;
	w->index = index;
	w->state = W_STARTING;
	w->rss_kb = -1;
	w->started_at = clock_now(CLOCK_REALTIME);
	w->spawned = mono();
	w->ev_read = event_new(pp->base, fd, EV_READ | EV_PERSIST, ppool_read_cb, w);
	w->ev_dead =
	    event_new(pp->base, pidfd, (pidfd != -1 ? EV_READ : 0) | EV_PERSIST, ppool_dead_cb, w);
	w->ev_cancel = evtimer_new(pp->base, ppool_cancel_cb, w);
	w->ev_timeout = evtimer_new(pp->base, ppool_timeout_cb, w);
	if (w->ev_read == NULL || w->ev_dead == NULL || w->ev_cancel == NULL ||
	    w->ev_timeout == NULL ||
	    event_add(w->ev_read, NULL) == -1 ||
	    event_add(w->ev_dead, pidfd != -1 ? NULL : &poll_tv) == -1)
		fatalx("ppool: cannot watch worker %d", index);
	TAILQ_INSERT_TAIL(&pp->workers, w, entry);
	return w;
}

/* Start one worker; -1 (and a failed start) if it cannot be spawned. */
int
spawn_worker(struct ppool *pp)
{
	int sv[2], index = next_index(pp), pidfd, err;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == -1) {
		failed_start(pp, strerror(errno));
		return -1;
	}
	if ((err = worker_spawn(pp->self, sv[1], index, &pid)) != 0) {
		close(sv[0]);
		failed_start(pp, strerror(err));
		return -1;
	}
	record_worker(pp, pid);
	pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (pidfd == -1)
		log_debug("ppool: pidfd_open %d: %s (polling instead)", (int)pid, strerror(errno));
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1) {
		err = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
		forget_worker(pp, pid);
		close(sv[0]);
		if (pidfd != -1)
			close(pidfd);
		failed_start(pp, strerror(err));
		return -1;
	}
	worker_new(pp, sv[0], pidfd, pid, index);
	STATS_INC(workers_spawned);
	log_debug("ppool: worker %d started (pid %d)", index, (int)pid);
	return 0;
}

static void
close_socket(struct pworker *w)
{
	if (w->fd == -1)
		return;
	event_del(w->ev_read);
	close(w->fd);
	w->fd = -1;
}

/* Stop watching the command's exit (its run is over). */
static void
unwatch_job(struct pworker *w)
{
	if (w->ev_job == NULL)
		return;
	close(event_get_fd(w->ev_job));
	event_free(w->ev_job);
	w->ev_job = NULL;
}

static void
worker_free(struct pworker *w)
{
	unwatch_job(w);
	close_socket(w);
	event_free(w->ev_read);
	event_free(w->ev_dead);
	event_free(w->ev_cancel);
	event_free(w->ev_timeout);
	if (w->pidfd != -1)
		close(w->pidfd);
	free(w->why);
	free(w);
}

/*
 * Kill a worker we no longer trust (or a cancelled built-in's); its death
 * comes via the pidfd. A command it runs goes first: in a session of its own
 * it would outlive the worker, and while the worker lives (even stopped) its
 * children are surely its own.
 */
static void
worker_kill(struct pworker *w, const char *why)
{
	if (why != NULL && w->why == NULL) {
		w->why = xstrdup(why);
		log_warnx("ppool: killing worker %d (pid %d): %s", w->index, (int)w->pid, why);
	}
	if (!w->killed && w->run != NULL && w->run->spec.type == BUILTIN_EXEC)
		leftover_kill_children(w->pid);
	w->killed = true;
	kill(w->pid, SIGKILL);
	close_socket(w);
}

static int
worker_msg(struct pworker *w, json_t *msg)
{
	int rc = w->fd == -1 ? -1 : worker_send(w->fd, msg);

	json_decref(msg);
	return rc;
}

void
worker_retire(struct pworker *w)
{
	w->state = W_EXITING;
	if (worker_msg(w, json_pack("{s:s}", "t", "exit")) == -1)
		worker_kill(w, "cannot send exit");
}

/* --- results ---------------------------------------------------------- */

static char *
death_reason(const struct pworker *w, int status, bool reaped)
{
	char how[64];

	if (!reaped)
		snprintf(how, sizeof how, "exit status unknown");
	else if (WIFSIGNALED(status))
		snprintf(how, sizeof how, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(how, sizeof how, "exited with status %d", WEXITSTATUS(status));
	if (w->why != NULL)
		return xprintf("worker %d (pid %d) died: %s (%s)", w->index, (int)w->pid, how,
		               w->why);
	return xprintf("worker %d (pid %d) died: %s", w->index, (int)w->pid, how);
}

/*
 * The run's wall time is the worker's measure, unless the daemon saw its
 * command exit sooner (the worker was stopped meanwhile): then its own time,
 * by the daemon's clock, from the hand-over (a little before the worker's
 * start) to the exit.
 */
static void
own_wall(const struct pworker *w, struct run_result *res)
{
	double seen = w->job_exited - w->job_start;

	if (w->job_exited > 0 && seen < res->wall) {
		res->wall = seen;
		res->finished_at = res->started_at + seen;
	}
}

/* The busy worker died under its run: fill the result in. Takes msg. */
static void
run_lost(struct pworker *w, char *msg)
{
	struct run_result *res = &w->run->res;

	free(res->error);
	free(res->result);
	res->result = NULL;
	res->status = w->cancel ? RUN_CANCELLED : w->timed_out ? RUN_TIMEOUT : RUN_LOST;
	res->error = w->cancel ? NULL : msg;
	if (w->cancel)
		free(msg);
	res->exit_code = -1;
	res->signal = 0;
	res->pid = w->job_pid;
	res->started_at = w->job_started_at;
	res->finished_at = clock_now(CLOCK_REALTIME);
	res->wall = mono() - w->job_start;
	own_wall(w, res);
	unwatch_job(w);
	/* Its command outlived the worker: killed if it still is the one recorded. */
	if (w->run->spec.track_path != NULL)
		leftover_kill(w->run->spec.track_path);
	else if (w->job_pid > 0)
		kill(-w->job_pid, SIGKILL);
}

static void
deliver(struct ppool *pp, struct run *r)
{
	if (pp->cb.done != NULL)
		pp->cb.done(r, pp->cb.arg);
}

static void
notify_ready(struct ppool *pp)
{
	if (pp->cb.ready != NULL && ppool_idle(pp) > 0)
		pp->cb.ready(pp->cb.arg);
}

static void
ppool_dead_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w = arg;
	struct ppool *pp = w->pp;
	struct run *r = w->run;
	int status = 0;
	pid_t p;
	char *msg;

	do
		p = waitpid(w->pid, &status, WNOHANG);
	while (p == -1 && errno == EINTR);
	if (p == 0)
		return; /* still running (polling without a pidfd) */
	forget_worker(pp, w->pid);
	msg = death_reason(w, status, p == w->pid);
	if (w->state != W_EXITING && !w->killed)
		STATS_INC(worker_deaths);
	if (w->state == W_STARTING ||
	    (w->state != W_EXITING && !w->killed && mono() - w->spawned < PPOOL_FAILED_START))
		failed_start(pp, msg);
	else if (w->state != W_EXITING && !w->cancel)
		log_warnx("ppool: %s", msg);
	else
		log_debug("ppool: %s", msg);
	TAILQ_REMOVE(&pp->workers, w, entry);
	if (r != NULL)
		run_lost(w, msg);
	else
		free(msg);
	worker_free(w);
	if (r != NULL)
		deliver(pp, r);
	maintain(pp);
	notify_ready(pp);
}

static void
ppool_cancel_cb(evutil_socket_t fd, short what, void *arg)
{
	worker_kill(arg, "did not stop its cancelled job in time");
}

/*
 * The job's timeout passed (plus kill_grace and some slack) and its worker
 * did not end it: stopped (SIGSTOP), or hung. Enforce it from here: the
 * job's command and the worker are killed, the run ends as a timeout, and a
 * new worker takes its place.
 */
static void
ppool_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pworker *w = arg;
	char why[160];

	if (w->run == NULL || w->cancel)
		return;
	w->timed_out = true;
	snprintf(why, sizeof why, "job %" PRIu64 " passed its timeout of %g s and the worker did "
		 "not end it", w->run->spec.job_id, w->run->spec.timeout);
	worker_kill(w, why);
}

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
	w->idle_since = mono();
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
	w->idle_since = mono();
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
		w->job_exited = mono();
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

static void
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
		struct timeval tv = tv_of(after);

		w->timeout_at = mono() + after;
		evtimer_add(w->ev_timeout, &tv);
	}
	w->job_start = mono();
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
	double now = mono();

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
		tv = tv_of(w->timeout_left);
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
	tv = tv_of(r->spec.kill_grace + (r->spec.type == BUILTIN_EXEC ? PPOOL_CANCEL_SLACK
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

void
ppool_stop(struct ppool *pp)
{
	struct pworker *w;

	pp->stopping = true;
	event_del(pp->ev_backoff);
	TAILQ_FOREACH(w, &pp->workers, entry) {
		if (w->state == W_IDLE || w->state == W_STARTING)
			worker_retire(w);
	}
	/* Busy ones are retired by recycle_check after their "done". */
}

static bool
exited(const struct pworker *w)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)w->pid, &si, WEXITED | WNOHANG | WNOWAIT) == -1)
		return errno != EINTR;
	return si.si_pid != 0;
}

/* Wait (polling, teardown only) until every worker has exited; SIGKILL the rest after the deadline.
 */
static void
wait_all(struct ppool *pp)
{
	struct pworker *w;
	double deadline = mono() + PPOOL_FREE_WAIT;
	bool all;

	for (;;) {
		all = true;
		TAILQ_FOREACH(w, &pp->workers, entry) {
			if (!exited(w))
				all = false;
		}
		if (all || mono() > deadline)
			break;
		usleep(10000);
	}
	TAILQ_FOREACH(w, &pp->workers, entry) {
		if (exited(w))
			continue;
		log_warnx("ppool: worker %d (pid %d) did not exit, killing it", w->index,
		          (int)w->pid);
		kill(w->pid, SIGKILL);
	}
}

void
ppool_free(struct ppool *pp)
{
	struct pworker *w;
	struct run *r;
	char *msg;

	if (pp == NULL)
		return;
	ppool_stop(pp);
	/* EOF tells idle workers to go now and busy ones after their job. */
	TAILQ_FOREACH(w, &pp->workers, entry)
		close_socket(w);
	wait_all(pp);
	while ((w = TAILQ_FIRST(&pp->workers)) != NULL) {
		TAILQ_REMOVE(&pp->workers, w, entry);
		while (waitpid(w->pid, NULL, 0) == -1 && errno == EINTR)
			;
		forget_worker(pp, w->pid);
		r = w->run;
		if (r != NULL) {
			msg = xprintf("worker %d (pid %d) stopped with the pool", w->index,
			              (int)w->pid);
			run_lost(w, msg);
		}
		worker_free(w);
		if (r != NULL)
			deliver(pp, r);
	}
	event_free(pp->ev_tick);
	event_free(pp->ev_backoff);
	free(pp->self);
	free(pp->live_dir);
	free(pp);
}
