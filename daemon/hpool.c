/*
 * Handler workers (hpool.h): the handlers, sizing, backoff and the API.
 * The worker processes themselves are hworker.c (protocol, jobs, timers,
 * death) and hchild.c (spawn, output, measuring); hpool-int.h has the
 * structures they share.
 *
 * What runs where. Everything here runs on the event loop thread. A
 * worker is started with posix_spawn of `taskd --handler-exec ...` (never
 * fork() of the threaded daemon), which becomes the handler's user,
 * enters its cwd, arranges to be SIGKILLed if taskd dies, and execs the
 * handler's command in a process group of its own. The worker gets
 * /dev/null on fd 0, a pipe on fd 1 and another on fd 2 (both read here:
 * see "Output") and its end of a SOCK_STREAM socketpair on fd 3, where it
 * talks the handler protocol (hproto.h). Its death comes through a pidfd.
 *
 * Who owns what. The pool owns its handlers (a copy of their
 * configuration each), their workers and, between hpool_submit and the
 * done callback, each struct run it was given. A handler dropped from the
 * configuration lives on, "removed", until its last worker is gone.
 *
 * States of a worker: starting (spawned, no hello yet: start_timeout
 * runs), ready (took hello; 0..concurrency jobs), retiring (takes no
 * more jobs; once it has none its socket is closed, which tells it to
 * exit, and it is SIGTERMed after kill_grace, SIGKILLed after another),
 * dead (reaped: freed). A worker whose protocol is broken, who dies or
 * overstays a cancel is killed (SIGKILL to its group) and handled as dead
 * when its pidfd says so: its running jobs end RUN_LOST (the one it was
 * asked to stop: RUN_CANCELLED or RUN_TIMEOUT), and the handler counts a
 * failure. Consecutive failures delay the next start exponentially
 * (HPOOL_BACKOFF_MIN doubling to HPOOL_BACKOFF_MAX); a good result ends
 * the run of failures.
 *
 * Output. While a worker runs exactly one job, what it writes on stdout
 * and stderr goes to that job's output files (created when the first byte
 * comes, capped at jobs.max_output); otherwise (idle, starting, several
 * jobs at once) to taskd's log, a line at a time, tagged with the
 * handler's name and the worker's pid. Before a result is taken, the
 * pipes are drained, so what the worker wrote before answering lands in
 * the job's files (a worker must flush its buffers before answering: the
 * libraries do).
 *
 * Measuring. The worker's CPU time (utime + stime of /proc/PID/stat, read
 * with pread on a descriptor kept open) is read whenever one of its jobs
 * starts or ends, and the CPU used between two such moments is shared
 * equally by the jobs that ran in between, as is the wall time for the
 * router: a job's runq_wait is its wall time minus its share, so the
 * router sees the worker's load (a worker saturating its core with ten
 * jobs under a GIL is CPU-bound, not ten tenths of a job waiting).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "hpool-int.h"
#include "log.h"
#include "proc.h"
#include "xmalloc.h"

/* --- sizing (pure) ---------------------------------------------------- */

static int
imin(int a, int b)
{
	return a < b ? a : b;
}

static int
clamp(size_t n)
{
	return n > (size_t)INT_MAX ? INT_MAX : (int)n;
}

int
hpool_plan(const struct hplan *p)
{
	int max = p->max > 0 ? p->max : 1, conc = p->concurrency > 0 ? p->concurrency : 1;
	int spare = p->idle + p->starting, need, io_left, retire;

	if (p->alive > max)
		return p->idle > 0 ? -imin(p->idle, p->alive - max) : 0;
	/* cpu jobs take an idle (or starting) worker each; io jobs fill free slots first. */
	need = clamp(p->pending_cpu) - spare;
	spare = need < 0 ? -need : 0;
	need = need > 0 ? need : 0;
	io_left = clamp(p->pending_io) - p->io_free - spare * conc;
	if (io_left > 0)
		need += (io_left + conc - 1) / conc;
	if (p->alive + need < p->min)
		need = p->min - p->alive;
	need = imin(need, max - p->alive);
	if (need > 0)
		return need;
	if (p->pending_cpu > 0 || p->pending_io > 0)
		return 0;
	retire = imin(p->idle_expired, p->alive - p->min);
	return retire > 0 ? -retire : 0;
}

/* --- handlers --------------------------------------------------------- */

static int
resolve_max(const struct hpool *hp, const struct handler_config *c)
{
	if (c->max_workers > 0)
		return c->max_workers;
	return c->class == CLASS_CPU ? hp->lim.cpu_max : hp->lim.io_max;
}

static void
backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	hp_maintain(arg);
}

static struct handler *
handler_new(struct hpool *hp, const struct handler_config *c)
{
	struct handler *h = xcalloc(1, sizeof *h);

	h->hp = hp;
	handler_config_copy(&h->cfg, c);
	h->max = resolve_max(hp, c);
	TAILQ_INIT(&h->workers);
	if ((h->ev_backoff = evtimer_new(hp->base, backoff_cb, h)) == NULL)
		fatalx("hpool: cannot create a timer");
	TAILQ_INSERT_TAIL(&hp->handlers, h, entry);
	log_info("handler %s: %s workers (min %d, max %d, concurrency %d)", c->name,
		 config_class_name(c->class), c->min_workers, h->max, c->concurrency);
	return h;
}

static void
set_error(struct handler *h, char *msg)
{
	free(h->last_error);
	h->last_error = msg;
}

void
hp_failure(struct handler *h, const char *what)
{
	h->failures++;
	h->backoff = HPOOL_BACKOFF_MIN * ldexp(1.0, imin(h->failures - 1, 20));
	if (h->backoff > HPOOL_BACKOFF_MAX)
		h->backoff = HPOOL_BACKOFF_MAX;
	h->next_spawn = hp_mono() + h->backoff;
	set_error(h, xstrdup(what));
	log_warnx("handler %s: %s (%d in a row, next start in %.1f s)", h->cfg.name, what,
		  h->failures, h->backoff);
}

/* --- jobs -------------------------------------------------------------- */

void
hp_deliver(struct hpool *hp, struct run *r)
{
	if (hp->cb.done != NULL)
		hp->cb.done(r, hp->cb.arg);
}

void
hp_notify_ready(struct hpool *hp)
{
	if (hp->cb.ready != NULL && !hp->stopping)
		hp->cb.ready(hp->cb.arg);
}

/* --- maintenance ------------------------------------------------------- */

static void
plan_state(const struct handler *h, struct hplan *p)
{
	const struct hworker *w;
	double now = hp_mono();

	memset(p, 0, sizeof *p);
	p->pending_cpu = h->pending_cpu;
	p->pending_io = h->pending_io;
	p->min = h->cfg.min_workers;
	p->max = h->max;
	p->concurrency = h->cfg.concurrency;
	TAILQ_FOREACH(w, &h->workers, entry) {
		if (w->state == W_RETIRING || w->gen != h->gen)
			continue;
		p->alive++;
		if (w->state == W_STARTING) {
			p->starting++;
		} else if (w->njobs == 0) {
			p->idle++;
			if (now - w->idle_since > h->cfg.idle_timeout)
				p->idle_expired++;
		} else if (w->mode == CLASS_IO) {
			p->io_free += w->concurrency - w->njobs;
		}
	}
}

/* The ready worker idle longest (to retire), of the current generation. */
static struct hworker *
oldest_idle(const struct handler *h)
{
	struct hworker *w, *best = NULL;

	TAILQ_FOREACH(w, &h->workers, entry) {
		if (w->state != W_READY || w->njobs > 0 || w->gen != h->gen)
			continue;
		if (best == NULL || w->idle_since < best->idle_since)
			best = w;
	}
	return best;
}

void
hp_maintain(struct handler *h)
{
	struct hplan p;
	struct hworker *w;
	struct timeval tv;
	double now;
	int n;

	if (h->hp->stopping || h->removed)
		return;
	plan_state(h, &p);
	n = hpool_plan(&p);
	while (n < 0 && (w = oldest_idle(h)) != NULL) {
		log_debug("handler %s: worker %d idle for %.0f s: retired", h->cfg.name,
			  (int)w->pid, hp_mono() - w->idle_since);
		hw_retire(w);
		n++;
	}
	if (n <= 0)
		return;
	now = hp_mono();
	if (h->failures > 0)
		n = 1; /* probe one at a time while starts fail */
	if (now < h->next_spawn) {
		if (!evtimer_pending(h->ev_backoff, NULL)) {
			tv = clock_timeval(h->next_spawn - now);
			evtimer_add(h->ev_backoff, &tv);
		}
		return;
	}
	while (n-- > 0)
		if (hc_spawn(h) == -1) {
			hp_maintain(h); /* arms the backoff timer */
			return;
		}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hpool *hp = arg;
	struct handler *h, *next;

	TAILQ_FOREACH_SAFE(h, &hp->handlers, entry, next)
		hp_maintain(h);
}

/* --- handlers: configure, find, free ------------------------------------ */

static void
handler_free(struct handler *h)
{
	TAILQ_REMOVE(&h->hp->handlers, h, entry);
	event_free(h->ev_backoff);
	handler_config_free(&h->cfg);
	free(h->last_error);
	free(h);
}

/* A removed handler goes once its last worker is gone. */
void
hp_handler_gc(struct handler *h)
{
	if (h->removed && TAILQ_EMPTY(&h->workers))
		handler_free(h);
}

static struct handler *
find_any(const struct hpool *hp, const char *name)
{
	struct handler *h;

	TAILQ_FOREACH(h, &hp->handlers, entry)
		if (!h->removed && strcmp(h->cfg.name, name) == 0)
			return h;
	return NULL;
}

static void
retire_all(struct handler *h, bool other_gen_only)
{
	struct hworker *w, *next;

	TAILQ_FOREACH_SAFE(w, &h->workers, entry, next) {
		if (other_gen_only && w->gen == h->gen)
			continue;
		if (w->state == W_STARTING) {
			w->quiet = true;
			hw_kill(w, NULL);
		} else {
			hw_retire(w);
		}
	}
}

void
hpool_configure(struct hpool *hp, const struct handler_config *hs, size_t n,
		const struct hpool_limits *lim)
{
	struct handler *h, *next;
	size_t i;

	hp->lim = *lim;
	TAILQ_FOREACH_SAFE(h, &hp->handlers, entry, next) {
		const struct handler_config *c = NULL;

		if (h->removed)
			continue;
		for (i = 0; i < n && c == NULL; i++)
			if (strcmp(hs[i].name, h->cfg.name) == 0)
				c = &hs[i];
		if (c == NULL) {
			log_info("handler %s removed", h->cfg.name);
			h->removed = true;
			retire_all(h, false);
			hp_handler_gc(h);
			continue;
		}
		if (handler_config_respawn(&h->cfg, c)) {
			log_info("handler %s changed: its workers are replaced", h->cfg.name);
			h->gen++;
			h->failures = 0;
			h->next_spawn = 0;
		}
		handler_config_free(&h->cfg);
		handler_config_copy(&h->cfg, c);
		h->max = resolve_max(hp, c);
		retire_all(h, true);
	}
	for (i = 0; i < n; i++)
		if (find_any(hp, hs[i].name) == NULL)
			handler_new(hp, &hs[i]);
	TAILQ_FOREACH_SAFE(h, &hp->handlers, entry, next) {
		struct hworker *w;

		/* New limits reach the framers of running workers too. */
		TAILQ_FOREACH(w, &h->workers, entry)
			w->in.max = (size_t)lim->max_frame;
		hp_maintain(h);
	}
}

struct hpool *
hpool_new(struct event_base *base, const char *self, const struct hpool_callbacks *cb)
{
	struct hpool *hp = xcalloc(1, sizeof *hp);
	struct timeval sec = {1, 0};

	hp->base = base;
	hp->self = xstrdup(self);
	if (cb != NULL)
		hp->cb = *cb;
	TAILQ_INIT(&hp->handlers);
	hp->clk_tck = (double)sysconf(_SC_CLK_TCK);
	if (hp->clk_tck <= 0)
		hp->clk_tck = 100;
	hp->page_kb = sysconf(_SC_PAGESIZE) / 1024;
	if (hp->page_kb <= 0)
		hp->page_kb = 4;
	hp->ev_tick = event_new(base, -1, EV_PERSIST, tick_cb, hp);
	if (hp->ev_tick == NULL || event_add(hp->ev_tick, &sec) == -1)
		fatalx("hpool: cannot create a timer");
	return hp;
}

struct handler *
hpool_find(const struct hpool *hp, const char *name)
{
	return hp != NULL ? find_any(hp, name) : NULL;
}

/* The worker to give a job routed cls: io jobs pack into the fullest worker with room. */
static struct hworker *
pick(const struct handler *h, enum job_class cls)
{
	struct hworker *w, *best = NULL;

	if (h->removed || h->hp->stopping)
		return NULL;
	TAILQ_FOREACH(w, &h->workers, entry) {
		if (w->state != W_READY || w->gen != h->gen || w->fd == -1)
			continue;
		if (cls == CLASS_CPU) {
			if (w->njobs == 0 && (best == NULL || w->idle_since > best->idle_since))
				best = w;
		} else if ((w->njobs == 0 || w->mode == CLASS_IO) && w->njobs < w->concurrency) {
			if (best == NULL || w->njobs > best->njobs ||
			    (w->njobs == best->njobs && w->idle_since > best->idle_since))
				best = w;
		}
	}
	return best;
}

bool
hpool_room(const struct handler *h, enum job_class cls)
{
	return pick(h, cls) != NULL;
}

int
hpool_submit(struct handler *h, struct run *r, enum job_class cls)
{
	struct hworker *w = pick(h, cls);

	if (w == NULL)
		return -1;
	hw_start_job(w, r, cls);
	return 0;
}

void
hpool_demand(struct handler *h, size_t cpu, size_t io)
{
	h->pending_cpu = cpu;
	h->pending_io = io;
	hp_maintain(h);
}

static void
stop_run(struct hpool *hp, struct run *r, enum stop why)
{
	struct handler *h;
	struct hworker *w;
	struct hjob *j;

	TAILQ_FOREACH(h, &hp->handlers, entry)
		TAILQ_FOREACH(w, &h->workers, entry)
			if ((j = hw_job(w, r->spec.job_id)) != NULL && j->r == r) {
				hw_stop_job(w, j, why);
				hw_arm(w);
				return;
			}
}

void
hpool_cancel(struct hpool *hp, struct run *r)
{
	stop_run(hp, r, STOP_CANCEL);
}

int
hpool_cpu_busy(const struct hpool *hp)
{
	return hp != NULL ? hp->cpu_busy : 0;
}

json_t *
hpool_handler_json(const struct handler *h)
{
	const struct hworker *w;
	json_t *ws = json_array(), *cmd = json_array();
	double now = hp_mono();
	size_t i;

	TAILQ_FOREACH(w, &h->workers, entry)
		json_array_append_new(ws, hw_json(w));
	for (i = 0; h->cfg.command[i] != NULL; i++)
		json_array_append_new(cmd, json_string(h->cfg.command[i]));
	return json_pack("{s:s,s:o,s:s,s:s?,s:i,s:i,s:i,s:b,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:I,s:I},s:i,s:f,s:s?}",
			 "name", h->cfg.name, "command", cmd, "class",
			 config_class_name(h->cfg.class), "user", h->cfg.user, "min",
			 h->cfg.min_workers, "max", h->max, "concurrency", h->cfg.concurrency,
			 "removed", h->removed, "workers", ws, "counters", "done",
			 (json_int_t)h->n.done, "failed", (json_int_t)h->n.failed, "lost",
			 (json_int_t)h->n.lost, "timeout", (json_int_t)h->n.timeout, "cancelled",
			 (json_int_t)h->n.cancelled, "workers_started", (json_int_t)h->n.started,
			 "start_failures", (json_int_t)h->n.start_failures, "crashes",
			 (json_int_t)h->n.crashes, "recycled", (json_int_t)h->n.recycled,
			 "failures", h->failures, "backoff",
			 h->next_spawn > now ? h->next_spawn - now : 0.0, "last_error",
			 h->last_error);
}

json_t *
hpool_to_json(const struct hpool *hp)
{
	const struct handler *h;
	json_t *a = json_array();

	if (hp == NULL)
		return a;
	TAILQ_FOREACH(h, &hp->handlers, entry)
		json_array_append_new(a, hpool_handler_json(h));
	return a;
}

void
hpool_stop(struct hpool *hp)
{
	struct handler *h;

	hp->stopping = true;
	TAILQ_FOREACH(h, &hp->handlers, entry) {
		event_del(h->ev_backoff);
		retire_all(h, false);
	}
}

void
hpool_free(struct hpool *hp)
{
	struct handler *h;
	struct hworker *w;
	double deadline;
	bool all;

	if (hp == NULL)
		return;
	hpool_stop(hp);
	deadline = hp_mono() + (hp->lim.kill_grace < HPOOL_FREE_WAIT ? hp->lim.kill_grace
								  : HPOOL_FREE_WAIT);
	/* EOF tells every worker to go; busy ones were cancelled by the caller. */
	TAILQ_FOREACH(h, &hp->handlers, entry)
		TAILQ_FOREACH(w, &h->workers, entry)
			hw_close_socket(w);
	for (;;) {
		all = true;
		TAILQ_FOREACH(h, &hp->handlers, entry)
			TAILQ_FOREACH(w, &h->workers, entry)
				if (!proc_exited(w->pid))
					all = false;
		if (all || hp_mono() > deadline)
			break;
		usleep(10000);
	}
	while ((h = TAILQ_FIRST(&hp->handlers)) != NULL) {
		while ((w = TAILQ_FIRST(&h->workers)) != NULL) {
			if (!proc_exited(w->pid)) {
				log_warnx("handler %s: worker %d did not exit, killing it",
					  h->cfg.name, (int)w->pid);
				kill(-w->pid, SIGKILL);
				kill(w->pid, SIGKILL);
			}
			while (waitpid(w->pid, NULL, 0) == -1 && errno == EINTR)
				;
			/* Jobs still in it are lost with the daemon's stop. */
			w->state = W_RETIRING;
			w->killed = true;
			TAILQ_REMOVE(&h->workers, w, entry);
			while (w->njobs > 0) {
				struct run *r = hw_job_end(w, &w->jobs[w->njobs - 1], RUN_LOST);

				r->res.exit_code = -1;
				hw_set_text(&r->res.error, xprintf("handler %s: taskd stopped",
								h->cfg.name));
				hp_deliver(hp, r);
			}
			hw_free(w);
		}
		handler_free(h);
	}
	event_free(hp->ev_tick);
	free(hp->self);
	free(hp);
}
