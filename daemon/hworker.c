/*
 * One handler worker (hpool-int.h): what it says on fd 3, decoded
 * strictly (hproto.c) and checked against its state, the jobs it runs,
 * cancels and timeouts (cancel, then SIGTERM and SIGKILL of its group one
 * jobs.kill_grace apart), its retirement and its death. See hpool.c for
 * the whole picture.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include "hpool-int.h"
#include "log.h"
#include "proc.h"
#include "xmalloc.h"

static const char *const wstate_names[] = {"starting", "ready", "exiting"};

static void read_cb(evutil_socket_t, short, void *);
static void write_cb(evutil_socket_t, short, void *);
static void dead_cb(evutil_socket_t, short, void *);
static void timer_cb(evutil_socket_t, short, void *);

void
hw_watch(struct hworker *w)
{
	struct event_base *base = w->h->hp->base;
	struct timeval poll_tv = clock_timeval(HPOOL_NOPIDFD_POLL);
	int i;

	w->ev_read = event_new(base, w->fd, EV_READ | EV_PERSIST, read_cb, w);
	w->ev_write = event_new(base, w->fd, EV_WRITE, write_cb, w);
	w->ev_dead = event_new(base, w->pidfd, (w->pidfd != -1 ? EV_READ : 0) | EV_PERSIST,
			       dead_cb, w);
	w->ev_timer = evtimer_new(base, timer_cb, w);
	w->ev_flush = event_new(base, -1, 0, write_cb, w);
	for (i = 0; i < 2; i++) {
		w->ev_pipe[i] = event_new(base, w->pipe[i], EV_READ | EV_PERSIST, hc_pipe_cb, w);
		if (w->ev_pipe[i] == NULL || event_add(w->ev_pipe[i], NULL) == -1)
			fatalx("hpool: cannot watch a worker");
	}
	if (w->ev_read == NULL || w->ev_write == NULL || w->ev_dead == NULL ||
	    w->ev_timer == NULL || w->ev_flush == NULL || event_add(w->ev_read, NULL) == -1 ||
	    event_add(w->ev_dead, w->pidfd != -1 ? NULL : &poll_tv) == -1)
		fatalx("hpool: cannot watch a worker");
}

void
hw_close_socket(struct hworker *w)
{
	if (w->fd == -1)
		return;
	event_del(w->ev_read);
	event_del(w->ev_write);
	event_del(w->ev_flush);
	close(w->fd);
	w->fd = -1;
}

void
hw_free(struct hworker *w)
{
	int i, k;

	hw_close_socket(w);
	event_free(w->ev_read);
	event_free(w->ev_write);
	event_free(w->ev_dead);
	event_free(w->ev_timer);
	event_free(w->ev_flush);
	for (i = 0; i < 2; i++) {
		event_free(w->ev_pipe[i]);
		hp_fd_close(&w->pipe[i]);
	}
	for (k = 0; k < w->njobs; k++)
		for (i = 0; i < 2; i++)
			hp_fd_close(&w->jobs[k].fd[i]);
	hp_fd_close(&w->pidfd);
	hp_fd_close(&w->statfd);
	hframer_free(&w->in);
	free(w->out);
	free(w->jobs);
	free(w->why);
	free(w->last_line);
	free(w);
}

/* Kill a worker we no longer trust; its death comes through the pidfd. */
void
hw_kill(struct hworker *w, const char *why)
{
	if (why != NULL && w->why == NULL) {
		w->why = xstrdup(why);
		log_warnx("handler %s: killing worker %d: %s", w->h->cfg.name, (int)w->pid, why);
	}
	w->killed = true;
	kill(-w->pid, SIGKILL);
	kill(w->pid, SIGKILL);
	hw_close_socket(w);
}

/* Close its socket (it exits on EOF); SIGTERM/SIGKILL later if it lingers. */
void
hw_retire(struct hworker *w)
{
	if (w->state == W_RETIRING && w->fd == -1)
		return;
	w->state = W_RETIRING;
	if (w->njobs > 0)
		return; /* after its jobs */
	hw_close_socket(w);
	w->retire_at = hp_mono();
	hw_arm(w);
}

/*
 * Queue a line for the worker (takes line). Lines queued in one loop
 * iteration (a burst of pipelined jobs) go out together in one send, when
 * the flush event runs at the end of the iteration.
 */
void
hw_send(struct hworker *w, char *line, size_t len)
{
	if (w->fd == -1) {
		free(line);
		return;
	}
	if (w->out_off > 0 && w->out_off == w->out_len)
		w->out_off = w->out_len = 0;
	if (w->out_len + len > w->out_cap) {
		w->out_cap = w->out_len + len > 2 * w->out_cap ? w->out_len + len : 2 * w->out_cap;
		w->out = xreallocarray(w->out, w->out_cap, 1);
	}
	memcpy(w->out + w->out_len, line, len);
	w->out_len += len;
	free(line);
	if (!event_pending(w->ev_write, EV_WRITE, NULL))
		event_active(w->ev_flush, EV_WRITE, 0);
}

/* Write what is queued; the rest waits for the socket to drain. */
static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	ssize_t n;

	if (w->fd == -1 || w->out_off == w->out_len)
		return;
	do
		n = send(w->fd, w->out + w->out_off, w->out_len - w->out_off, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EAGAIN) {
		hw_kill(w, "cannot write to it");
		return;
	}
	if (n > 0)
		w->out_off += (size_t)n;
	if (w->out_off < w->out_len)
		event_add(w->ev_write, NULL);
	else
		w->out_off = w->out_len = 0;
}

struct hjob *
hw_job(struct hworker *w, uint64_t id)
{
	int k;

	for (k = 0; k < w->njobs; k++)
		if (w->jobs[k].r->spec.job_id == id)
			return &w->jobs[k];
	return NULL;
}

/* Fill in the run's result fields every ending shares, and take j out of w. */
struct run *
hw_job_end(struct hworker *w, struct hjob *j, enum run_status st)
{
	struct run *r = j->r;
	struct run_result *res = &r->res;
	double now = hp_mono();
	int i;

	hc_account(w);
	res->status = st;
	res->pid = w->pid;
	res->wall = now - j->start;
	res->finished_at = clock_now(CLOCK_REALTIME);
	res->started_at = res->finished_at - res->wall;
	res->cpu_user = j->cpu_user;
	res->cpu_sys = j->cpu_sys;
	res->runq_wait = res->wall > j->share ? res->wall - j->share : 0;
	res->max_rss_kb = w->rss_kb;
	for (i = 0; i < 2; i++) {
		hp_fd_close(&j->fd[i]);
		*(i == 0 ? &res->out_bytes : &res->err_bytes) = j->bytes[i];
		*(i == 0 ? &res->out_truncated : &res->err_truncated) = j->truncated[i];
	}
	if (j->cls == CLASS_CPU)
		w->h->hp->cpu_busy--;
	*j = w->jobs[--w->njobs];
	if (w->njobs == 0) {
		w->mode = CLASS_AUTO;
		w->idle_since = now;
	}
	return r;
}

void
hw_set_text(char **dst, char *text)
{
	free(*dst);
	*dst = text;
}

static void
count_end(struct handler *h, const struct run *r)
{
	switch (r->res.status) {
	case RUN_TIMEOUT:
		h->n.timeout++;
		break;
	case RUN_CANCELLED:
		h->n.cancelled++;
		break;
	case RUN_LOST:
		h->n.lost++;
		break;
	default:
		if (r->res.exit_code == 0)
			h->n.done++;
		else
			h->n.failed++;
	}
}

/* The worker answered job j. Takes m's strings. */
static void
on_result(struct hworker *w, struct hjob *j, struct hmsg *m)
{
	struct handler *h = w->h;
	enum stop stop = j->stop;
	struct run *r;

	/*
	 * What it wrote before answering belongs to the job (when it runs
	 * several at once, its output goes to the log anyway).
	 */
	if (w->njobs == 1) {
		hc_drain(w, 0);
		hc_drain(w, 1);
	}
	r = hw_job_end(w, j, RUN_EXITED);
	r->res.exit_code = m->ok ? 0 : 1;
	if (m->ok) {
		hw_set_text(&r->res.result, m->result);
		r->res.result_json = true;
		m->result = NULL;
	} else {
		hw_set_text(&r->res.error, m->text);
		m->text = NULL;
		/* Asked to stop, it stopped: the job ended as asked. */
		if (stop != STOP_NONE)
			r->res.status = stop == STOP_TIMEOUT ? RUN_TIMEOUT : RUN_CANCELLED;
	}
	w->jobs_done++;
	h->failures = 0;
	count_end(h, r);
	if (w->state == W_READY && w->gen != h->gen)
		hw_retire(w);
	else if (w->state == W_READY && h->cfg.max_jobs_per_worker > 0 &&
		 w->jobs_done >= (uint64_t)h->cfg.max_jobs_per_worker) {
		h->n.recycled++;
		log_debug("handler %s: worker %d recycled after %" PRIu64 " jobs", h->cfg.name,
			  (int)w->pid, w->jobs_done);
		hw_retire(w);
	} else if (w->state == W_READY && h->cfg.max_worker_rss > 0 && w->rss_kb > 0 &&
		   (uint64_t)w->rss_kb * 1024 > h->cfg.max_worker_rss) {
		h->n.recycled++;
		log_info("handler %s: worker %d recycled at %ld KiB RSS (max_worker_rss)",
			 h->cfg.name, (int)w->pid, w->rss_kb);
		hw_retire(w);
	} else if (w->state == W_RETIRING) {
		hw_retire(w);
	}
	hw_arm(w);
	hp_deliver(h->hp, r);
}

/* A result line longer than limits.max_frame: that job fails, the worker goes on. */
static int
on_too_long(struct hworker *w, const char *prefix, size_t len, uint64_t full, char **why)
{
	uint64_t id = w->njobs == 1 ? w->jobs[0].r->spec.job_id : hproto_peek_id(prefix, len);
	struct hjob *j = id > 0 ? hw_job(w, id) : NULL;
	struct hmsg m = {.type = HMSG_RESULT, .id = id};

	if (j == NULL || w->state == W_STARTING) {
		*why = xprintf("sent a line of %" PRIu64 " bytes (limits.max_frame is %" PRIu64 ")",
			       full, w->h->hp->lim.max_frame);
		return -1;
	}
	m.text = xprintf("result too large: %" PRIu64 " bytes, limits.max_frame is %" PRIu64,
			 full, w->h->hp->lim.max_frame);
	log_warnx("handler %s: job %" PRIu64 ": %s", w->h->cfg.name, id, m.text);
	on_result(w, j, &m);
	hmsg_free(&m);
	return 0;
}

static int
on_hello(struct hworker *w, const struct hmsg *m, char **why)
{
	struct handler *h = w->h;

	if (w->state != W_STARTING) {
		*why = xstrdup("hello twice");
		return -1;
	}
	if (m->concurrency > h->cfg.concurrency) {
		*why = xprintf("hello: concurrency %d, more than the handler's %d", m->concurrency,
			       h->cfg.concurrency);
		return -1;
	}
	w->concurrency = m->concurrency;
	w->jobs = xcalloc((size_t)w->concurrency, sizeof *w->jobs);
	w->state = W_READY;
	w->idle_since = hp_mono();
	free(w->last_line);
	w->last_line = NULL;
	h->next_spawn = 0;
	hw_arm(w);
	if (h->hp->stopping || h->removed || w->gen != h->gen)
		hw_retire(w);
	log_debug("handler %s: worker %d ready (concurrency %d)", h->cfg.name, (int)w->pid,
		  w->concurrency);
	return 0;
}

static int
on_message(struct hworker *w, const char *line, size_t len, char **why)
{
	struct hpool *hp = w->h->hp;
	struct hmsg m;
	struct hjob *j;
	char *err = NULL;

	if (hproto_decode(line, len, &m, &err) == -1) {
		*why = xprintf("protocol error: %s", err);
		free(err);
		return -1;
	}
	if (m.type == HMSG_HELLO) {
		int rc = on_hello(w, &m, why);

		hmsg_free(&m);
		return rc;
	}
	if (w->state == W_STARTING) {
		*why = xprintf("protocol error: %s before hello",
			       m.type == HMSG_RESULT ? "result" : "progress");
		hmsg_free(&m);
		return -1;
	}
	if ((j = hw_job(w, m.id)) == NULL) {
		*why = xprintf("protocol error: %s for job %" PRIu64 ", which it is not running",
			       m.type == HMSG_RESULT ? "result" : "progress", m.id);
		hmsg_free(&m);
		return -1;
	}
	if (m.type == HMSG_PROGRESS) {
		if (hp->cb.progress != NULL)
			hp->cb.progress(j->r, m.text, hp->cb.arg);
	} else {
		on_result(w, j, &m);
	}
	hmsg_free(&m);
	return 0;
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	struct handler *h = w->h;
	enum hline_kind kind;
	const char *line;
	char *why = NULL;
	uint64_t full;
	size_t len;
	ssize_t n;
	int ready = 0;

	n = read(fd, hframer_space(&w->in, HPOOL_READ), HPOOL_READ);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* It is going (or must): the pidfd says how. */
		hw_kill(w, n == 0 ? NULL : "cannot read from it");
		return;
	}
	hframer_commit(&w->in, (size_t)n);
	while (w->fd != -1 && (kind = hframer_next(&w->in, &line, &len, &full)) != HLINE_NONE) {
		if (kind == HLINE_OK && on_message(w, line, len, &why) == -1)
			break;
		if (kind == HLINE_TOO_LONG && on_too_long(w, line, len, full, &why) == -1)
			break;
		ready = 1;
	}
	if (why != NULL) {
		hw_kill(w, why);
		free(why);
	}
	if (ready) {
		hp_maintain(h);
		hp_notify_ready(h->hp);
	}
}

/* --- timers ------------------------------------------------------------ */

/* The next moment something must happen to w (CLOCK_MONOTONIC), 0 if none. */
static double
next_deadline(const struct hworker *w)
{
	const struct handler *h = w->h;
	double grace = h->hp->lim.kill_grace, t = 0, d;
	int k;

#define SOONER(x) do { d = (x); if (t == 0 || d < t) t = d; } while (0)
	if (w->killed)
		return 0;
	if (w->state == W_STARTING)
		SOONER(w->spawned + h->cfg.start_timeout);
	if (w->state == W_RETIRING && w->fd == -1)
		SOONER(w->retire_at + grace * (w->retire_stage + 1));
	for (k = 0; k < w->njobs; k++) {
		const struct hjob *j = &w->jobs[k];

		if (j->stop != STOP_NONE)
			SOONER(j->stop_at + grace * (j->stage + 1));
		else if (j->deadline > 0)
			SOONER(j->deadline);
	}
#undef SOONER
	return t;
}

void
hw_arm(struct hworker *w)
{
	double t = next_deadline(w);
	struct timeval tv;

	if (t == 0) {
		event_del(w->ev_timer);
		return;
	}
	tv = clock_timeval(t - hp_mono() + 0.001);
	evtimer_add(w->ev_timer, &tv);
}

void
hw_stop_job(struct hworker *w, struct hjob *j, enum stop why)
{
	size_t len;
	char *line;

	if (j->stop != STOP_NONE)
		return;
	j->stop = why;
	j->stop_at = hp_mono();
	j->stage = 0;
	line = hproto_cancel(j->r->spec.job_id, &len);
	hw_send(w, line, len);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	struct handler *h = w->h;
	double now = hp_mono(), grace = h->hp->lim.kill_grace;
	char *why;
	int k;

	if (w->killed)
		return;
	if (w->state == W_STARTING && now >= w->spawned + h->cfg.start_timeout) {
		why = xprintf("no hello within start_timeout (%g s)", h->cfg.start_timeout);
		hw_kill(w, why);
		free(why);
		return;
	}
	if (w->state == W_RETIRING && w->fd == -1 &&
	    now >= w->retire_at + grace * (w->retire_stage + 1)) {
		/* Told to exit (EOF) and still there: SIGTERM, then SIGKILL one grace later. */
		if (w->retire_stage > 0) {
			hw_kill(w, "did not exit after EOF and SIGTERM");
			return;
		}
		log_warnx("handler %s: worker %d did not exit after EOF: SIGTERM", h->cfg.name,
			  (int)w->pid);
		kill(-w->pid, SIGTERM);
		w->retire_stage = 1;
	}
	for (k = 0; k < w->njobs; k++) {
		struct hjob *j = &w->jobs[k];

		if (j->stop == STOP_NONE && j->deadline > 0 && now >= j->deadline) {
			hw_stop_job(w, j, STOP_TIMEOUT);
		} else if (j->stop != STOP_NONE && now >= j->stop_at + grace * (j->stage + 1)) {
			if (j->stage == 0) {
				log_warnx("handler %s: worker %d did not stop job %" PRIu64
					  " within jobs.kill_grace: SIGTERM", h->cfg.name,
					  (int)w->pid, j->r->spec.job_id);
				kill(-w->pid, SIGTERM);
				j->stage = 1;
			} else {
				why = xprintf("did not stop job %" PRIu64 " after SIGTERM",
					      j->r->spec.job_id);
				hw_kill(w, why);
				free(why);
				return;
			}
		}
	}
	hw_arm(w);
}

/* --- death ------------------------------------------------------------- */

static char *
death_reason(const struct hworker *w, int status, bool reaped)
{
	char how[64];

	proc_status_text(status, reaped, how, sizeof how);
	if (w->why != NULL)
		return xprintf("worker %d %s (%s)", (int)w->pid, how, w->why);
	if (w->state == W_STARTING && w->last_line != NULL)
		return xprintf("worker %d %s before hello: %s", (int)w->pid, how, w->last_line);
	if (w->state == W_STARTING)
		return xprintf("worker %d %s before hello", (int)w->pid, how);
	return xprintf("worker %d %s", (int)w->pid, how);
}

static void
dead_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	struct handler *h = w->h;
	struct hpool *hp = h->hp;
	struct run **lost;
	int status = 0, k, n;
	char *msg;
	pid_t p;

	do
		p = waitpid(w->pid, &status, WNOHANG);
	while (p == -1 && errno == EINTR);
	if (p == 0)
		return; /* still running (polling without a pidfd) */
	/* Its last words go where they belong before its jobs end. */
	hc_drain(w, 0);
	hc_drain(w, 1);
	hc_log_flush(w, 0);
	hc_log_flush(w, 1);
	msg = death_reason(w, status, p == w->pid);
	if (w->quiet || h->removed || (w->state == W_RETIRING && !w->killed)) {
		log_debug("handler %s: %s", h->cfg.name, msg);
	} else if (w->state == W_STARTING) {
		h->n.start_failures++;
		hp_failure(h, msg);
	} else {
		h->n.crashes++;
		hp_failure(h, msg);
	}
	TAILQ_REMOVE(&h->workers, w, entry);
	n = w->njobs;
	lost = xcalloc((size_t)n + 1, sizeof *lost);
	for (k = 0; w->njobs > 0; k++) {
		struct hjob *j = &w->jobs[w->njobs - 1];
		enum stop stop = j->stop;
		struct run *r = hw_job_end(w, j, stop == STOP_TIMEOUT ? RUN_TIMEOUT
					      : stop == STOP_CANCEL ? RUN_CANCELLED : RUN_LOST);

		r->res.exit_code = -1;
		if (r->res.status == RUN_LOST)
			hw_set_text(&r->res.error, xprintf("handler %s: %s", h->cfg.name, msg));
		count_end(h, r);
		lost[k] = r;
	}
	free(msg);
	hw_free(w);
	for (k = 0; k < n; k++)
		hp_deliver(hp, lost[k]);
	free(lost);
	if (h->removed && TAILQ_EMPTY(&h->workers)) {
		hp_handler_gc(h);
		return;
	}
	hp_maintain(h);
	hp_notify_ready(hp);
}

json_t *
hw_json(const struct hworker *w)
{
	json_t *ids = json_array();
	const char *state = wstate_names[w->state];
	int k;

	for (k = 0; k < w->njobs; k++)
		json_array_append_new(ids, json_integer((json_int_t)w->jobs[k].r->spec.job_id));
	if (w->state == W_READY)
		state = w->njobs == 0 ? "idle" : "busy";
	return json_pack("{s:i,s:s,s:s?,s:o,s:I,s:o,s:f,s:f}", "pid", (int)w->pid, "state", state,
			 "mode", w->njobs > 0 ? config_class_name(w->mode) : NULL, "jobs", ids,
			 "jobs_done", (json_int_t)w->jobs_done, "rss_kb",
			 w->rss_kb >= 0 ? json_integer(w->rss_kb) : json_null(), "started_at",
			 w->started_at, "age", hp_mono() - w->spawned);
}
/* Give w the job r (routed cls): it runs from now on. */
void
hw_start_job(struct hworker *w, struct run *r, enum job_class cls)
{
	struct hjob *j;
	size_t len;
	char *line;

	hc_account(w);
	j = &w->jobs[w->njobs++];
	memset(j, 0, sizeof *j);
	j->r = r;
	j->cls = cls == CLASS_CPU ? CLASS_CPU : CLASS_IO;
	j->start = hp_mono();
	j->deadline = r->spec.timeout > 0 ? j->start + r->spec.timeout : 0;
	j->fd[0] = j->fd[1] = -1;
	w->mode = j->cls;
	if (j->cls == CLASS_CPU)
		w->h->hp->cpu_busy++;
	r->worker_pid = w->pid;
	line = hproto_job(r->spec.job_id, r->spec.argv, r->spec.input,
			  r->spec.timeout > 0 ? clock_now(CLOCK_REALTIME) + r->spec.timeout : 0,
			  &len);
	hw_send(w, line, len);
	if (j->deadline > 0)
		hw_arm(w);
}
