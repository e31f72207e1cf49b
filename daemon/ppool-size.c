/*
 * Sizing the process pool (ppool.h): the plan (ppool_plan, pure: how many
 * workers to start or retire for the mode, the pending cpu jobs and the
 * workers' states), keeping to it (the 1 s maintenance timer, backoff after
 * failed starts), the state counts and the status JSON, and creating and
 * reconfiguring the pool. The workers themselves: ppool.c; the jobs they
 * run: ppool-run.c. Loop thread only.
 */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <jansson.h>

#include "exec.h"
#include "log.h"
#include "ppool.h"
#include "ppool-private.h"
#include "xmalloc.h"

/* enum wstate, as status shows it. */
static const char *const wstate_names[] = {"starting", "idle", "busy", "exiting"};

/* --- sizing (pure) ---------------------------------------------------- */

static int
clamp_pending(size_t pending)
{
	return pending > (size_t)INT_MAX ? INT_MAX : (int)pending;
}

static int
plan_dynamic(const struct ppool_config *cfg, const struct ppool_state *st, int max)
{
	int pending = clamp_pending(st->pending);
	int min = imin(imax(cfg->min_workers, 0), max);
	int free_ = st->idle + st->starting - pending; /* spare once pending jobs are placed */
	int need = 0, surplus;

	if (st->alive < min)
		need = min - st->alive;
	if (free_ < cfg->min_spare)
		need = imax(need, cfg->min_spare - free_);
	need = imin(need, max - st->alive);
	if (need > 0)
		return need;
	surplus = imin(st->idle - pending - imax(cfg->max_spare, 0), st->alive - min);
	return surplus > 0 ? -imin(surplus, st->idle) : 0;
}

static int
plan_ondemand(const struct ppool_state *st, int max)
{
	int pending = clamp_pending(st->pending);
	int need = imin(pending - st->idle - st->starting, max - st->alive);
	int retire;

	if (need > 0)
		return need;
	retire = imin(st->idle_expired, st->idle - pending);
	return retire > 0 ? -retire : 0;
}

int
ppool_plan(const struct ppool_config *cfg, const struct ppool_state *st)
{
	int max = imax(cfg->max_workers, 1);

	if (st->alive > max)
		return st->idle > 0 ? -imin(st->idle, st->alive - max) : 0;
	switch (cfg->mode) {
	case PPOOL_DYNAMIC:
		return plan_dynamic(cfg, st, max);
	case PPOOL_ONDEMAND:
		return plan_ondemand(st, max);
	case PPOOL_STATIC:
	default:
		return max - st->alive;
	}
}

/* --- maintenance ------------------------------------------------------ */

static void
count_state(const struct ppool *pp, struct ppool_state *st)
{
	const struct pworker *w;
	double now = clock_now(CLOCK_MONOTONIC);

	memset(st, 0, sizeof *st);
	st->pending = pp->pending;
	TAILQ_FOREACH(w, &pp->workers, entry) {
		if (w->state == W_EXITING)
			continue;
		st->alive++;
		if (w->state == W_STARTING)
			st->starting++;
		else if (w->state == W_BUSY)
			st->busy++;
		else {
			st->idle++;
			if (now - w->idle_since > pp->cfg.idle_timeout)
				st->idle_expired++;
		}
	}
}

void
ppool_get_state(const struct ppool *pp, struct ppool_state *st)
{
	count_state(pp, st);
}

/* The idle worker idle longest (retire) or shortest (submit). */
struct pworker *
pick_idle(const struct ppool *pp, bool longest)
{
	struct pworker *w, *best = NULL;

	TAILQ_FOREACH(w, &pp->workers, entry) {
		if (w->state != W_IDLE)
			continue;
		if (best == NULL ||
		    (longest ? w->idle_since < best->idle_since : w->idle_since > best->idle_since))
			best = w;
	}
	return best;
}

static void
grow(struct ppool *pp, int n)
{
	double now = clock_now(CLOCK_MONOTONIC), wait;

	if (pp->failures > 0 && n > 1)
		n = 1; /* probe one at a time while starts fail */
	if (now < pp->next_spawn) {
		wait = pp->next_spawn - now;
		if (!evtimer_pending(pp->ev_backoff, NULL)) {
			struct timeval tv = clock_timeval(wait);

			evtimer_add(pp->ev_backoff, &tv);
		}
		return;
	}
	while (n-- > 0)
		if (spawn_worker(pp) == -1)
			return;
}

/* Run the plan: start workers or retire idle ones. */
void
maintain(struct ppool *pp)
{
	struct ppool_config cfg;
	struct ppool_state st;
	struct pworker *w;
	int n;

	if (pp->stopping)
		return;
	count_state(pp, &st);
	/* Workers held by commands without a cpu slot (suspended, or counting as io) are extra. */
	cfg = pp->cfg;
	cfg.max_workers += pp->extra;
	n = ppool_plan(&cfg, &st);
	if (n > 0) {
		grow(pp, n);
		return;
	}
	while (n++ < 0 && (w = pick_idle(pp, true)) != NULL)
		worker_retire(w);
}

static void
ppool_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ppool *pp = arg;
	struct pworker *w;
	double now = clock_now(CLOCK_MONOTONIC);

	/* A worker up for a while ends a run of failed starts. */
	TAILQ_FOREACH(w, &pp->workers, entry) {
		if (w->state != W_STARTING && now - w->spawned >= PPOOL_FAILED_START)
			pp->failures = 0;
	}
	maintain(pp);
}

static void
ppool_backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ppool *pp = arg;

	maintain(pp);
}

static void
apply_config(struct ppool *pp, const struct ppool_config *cfg)
{
	pp->cfg = *cfg;
	if (pp->cfg.max_workers < 1)
		pp->cfg.max_workers = 1;
	if (pp->cfg.min_workers < 0)
		pp->cfg.min_workers = 0;
	if (pp->cfg.min_workers > pp->cfg.max_workers)
		pp->cfg.min_workers = pp->cfg.max_workers;
	if (!(pp->cfg.idle_timeout >= 0))
		pp->cfg.idle_timeout = 0;
}

struct ppool *
ppool_new(struct event_base *base, const struct ppool_config *cfg, const char *self,
          const char *live_dir, const struct ppool_callbacks *cb)
{
	struct ppool *pp = xcalloc(1, sizeof *pp);
	struct timeval sec = {1, 0};

	pp->base = base;
	pp->self = xstrdup(self);
	pp->live_dir = live_dir != NULL ? xstrdup(live_dir) : NULL;
	if (cb != NULL)
		pp->cb = *cb;
	TAILQ_INIT(&pp->workers);
	apply_config(pp, cfg);
	pp->ev_tick = event_new(base, -1, EV_PERSIST, ppool_tick_cb, pp);
	pp->ev_backoff = evtimer_new(base, ppool_backoff_cb, pp);
	if (pp->ev_tick == NULL || pp->ev_backoff == NULL || event_add(pp->ev_tick, &sec) == -1)
		fatalx("ppool: cannot create timers");
	maintain(pp);
	return pp;
}

void
ppool_configure(struct ppool *pp, const struct ppool_config *cfg)
{
	apply_config(pp, cfg);
	maintain(pp);
}

json_t *
ppool_to_json(const struct ppool *pp)
{
	const struct pworker *w;
	json_t *a = json_array(), *o;

	TAILQ_FOREACH(w, &pp->workers, entry) {
		o = json_pack("{s:i,s:i,s:s,s:o,s:I,s:o,s:f}", "index", w->index, "pid",
		              (int)w->pid, "state", wstate_names[w->state], "job",
		              w->run != NULL ? json_integer((json_int_t)w->run->spec.job_id)
		                             : json_null(),
		              "jobs_done", (json_int_t)w->jobs_done, "rss_kb",
		              w->rss_kb >= 0 ? json_integer(w->rss_kb) : json_null(),
		              "started_at", w->started_at);
		json_array_append_new(a, o);
	}
	return json_pack("{s:s,s:i,s:i,s:i,s:i,s:i,s:f,s:o}", "mode",
	                 config_mode_name(pp->cfg.mode), "min", pp->cfg.min_workers, "max",
	                 pp->cfg.max_workers, "min_spare", pp->cfg.min_spare, "max_spare",
	                 pp->cfg.max_spare, "spawn_failures", pp->failures, "backoff",
	                 pp->next_spawn > clock_now(CLOCK_MONOTONIC) ? pp->backoff : 0.0, "workers",
	                 a);
}
