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
 *
 * This file: the workers (spawning, killing, retiring, deaths, the cancel
 * and timeout timers that kill), stopping and freeing the pool. Running
 * jobs on them (submit, the messages, suspend, cancel, stopping output):
 * ppool-run.c. Sizing, creating and reconfiguring the pool: ppool-size.c.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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
#include "leftover.h"
#include "log.h"
#include "ppool.h"
#include "stats.h"
#include "ppool-private.h"
#include "worker.h"
#include "xmalloc.h"

#define PPOOL_BACKOFF_MIN 0.1  /* seconds */
#define PPOOL_BACKOFF_MAX 30.0
#define PPOOL_FREE_WAIT 5.0       /* seconds ppool_free waits before SIGKILL */
#define PPOOL_NOPIDFD_POLL 0.1    /* seconds between death checks without a pidfd */

static void ppool_dead_cb(evutil_socket_t, short, void *);
static void ppool_cancel_cb(evutil_socket_t, short, void *);
static void ppool_timeout_cb(evutil_socket_t, short, void *);

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
	pp->next_spawn = clock_now(CLOCK_MONOTONIC) + pp->backoff;
	log_warnx("ppool: worker failed to start (%d in a row, next try in %.1f s): %s",
	          pp->failures, pp->backoff, what);
}

static struct pworker *
worker_new(struct ppool *pp, int fd, int pidfd, pid_t pid, int index)
{
	struct pworker *w = xcalloc(1, sizeof *w);
	struct timeval poll_tv = clock_timeval(PPOOL_NOPIDFD_POLL);

	w->pp = pp;
	w->fd = fd;
	w->pidfd = pidfd;
	w->pid = pid;
	w->index = index;
	w->state = W_STARTING;
	w->rss_kb = -1;
	w->started_at = clock_now(CLOCK_REALTIME);
	w->spawned = clock_now(CLOCK_MONOTONIC);
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

void
close_socket(struct pworker *w)
{
	if (w->fd == -1)
		return;
	event_del(w->ev_read);
	close(w->fd);
	w->fd = -1;
}

/* Stop watching the command's exit (its run is over). */
void
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
void
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

int
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
void
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
	res->wall = clock_now(CLOCK_MONOTONIC) - w->job_start;
	own_wall(w, res);
	unwatch_job(w);
	/* Its command outlived the worker: killed if it still is the one recorded. */
	if (w->run->spec.track_path != NULL)
		leftover_kill(w->run->spec.track_path);
	else if (w->job_pid > 0)
		kill(-w->job_pid, SIGKILL);
}

void
deliver(struct ppool *pp, struct run *r)
{
	if (pp->cb.done != NULL)
		pp->cb.done(r, pp->cb.arg);
}

void
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
	    (w->state != W_EXITING && !w->killed &&
	     clock_now(CLOCK_MONOTONIC) - w->spawned < PPOOL_FAILED_START))
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

/* --- stopping --------------------------------------------------------- */

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
	double deadline = clock_now(CLOCK_MONOTONIC) + PPOOL_FREE_WAIT;
	bool all;

	for (;;) {
		all = true;
		TAILQ_FOREACH(w, &pp->workers, entry) {
			if (!exited(w))
				all = false;
		}
		if (all || clock_now(CLOCK_MONOTONIC) > deadline)
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
