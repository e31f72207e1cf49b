#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <jansson.h>

#include <taskd/protocol.h>

#include "taskd.h"
#include "events.h"
#include "http.h"
#include "job.h"
#include "monitor.h"
#include "notify.h"
#include "ppool.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "tpool.h"

/* Labels by class: a job's class is where it was routed, else what it asked for. */
enum { MC_AUTO = 0, MC_CPU, MC_IO, MC_N };
static const char *const mc_names[MC_N] = { "auto", "cpu", "io" };

/* Run times: from a no-op to hours. */
static const double duration_bounds[] = { 0.001, 0.005, 0.025, 0.1, 0.5, 1, 5, 30, 60, 300,
					  900, 3600, 14400 };
/* Waits in a run queue: from the next loop iteration to a long backlog. */
static const double wait_bounds[] = { 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5,
				      30, 300, 3600 };
/* Store latency: SQLite in WAL mode, with and without a disk flush. */
static const double store_bounds[] = { 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
				       0.025, 0.05, 0.1, 0.25, 1 };
#define NB(a) (sizeof(a) / sizeof((a)[0]))

static struct {
	bool ready;
	bool watching;
	struct job_observer observer;
	uint64_t started[MC_N];
	uint64_t finished[MC_N][JOB_NSTATES];
	uint64_t routed[MC_N];
	struct histogram duration[MC_N];
	struct histogram wait[MC_N];
	struct histogram commit;
	struct histogram fsync;
} mon;

static void
init_once(void)
{
	int c;

	if (mon.ready)
		return;
	for (c = 0; c < MC_N; c++) {
		histogram_init(&mon.duration[c], duration_bounds, NB(duration_bounds));
		histogram_init(&mon.wait[c], wait_bounds, NB(wait_bounds));
	}
	histogram_init(&mon.commit, store_bounds, NB(store_bounds));
	histogram_init(&mon.fsync, store_bounds, NB(store_bounds));
	mon.ready = true;
}

static int
class_of(const struct job *j)
{
	enum job_class c = j->routed != CLASS_AUTO ? j->routed : j->spec.class;

	return c == CLASS_CPU ? MC_CPU : c == CLASS_IO ? MC_IO : MC_AUTO;
}

static void
monitor_job_cb(struct job *j, int prev, void *arg)
{
	int c = class_of(j);
	double wall;

	(void)arg;
	/* Cluster mode: this node's runs only (job_elsewhere). */
	if (job_elsewhere(j))
		return;
	if (j->state == JOB_RUNNING) {
		mon.started[c]++;
		if (j->queued_at > 0 && j->started_at >= j->queued_at)
			histogram_observe(&mon.wait[c], j->started_at - j->queued_at);
		return;
	}
	/* A run ended (finished, or taken back for a retry). */
	if (prev == JOB_RUNNING) {
		wall = j->res.wall > 0 ? j->res.wall : j->finished_at - j->started_at;
		if (wall >= 0)
			histogram_observe(&mon.duration[c], wall);
	}
	if (job_state_final(j->state))
		mon.finished[c][j->state]++;
}

void
monitor_watch(struct jobs *js)
{
	init_once();
	if (mon.watching)
		return;
	mon.observer.changed = monitor_job_cb;
	mon.observer.arg = NULL;
	jobs_observe(js, &mon.observer);
	mon.watching = true;
}

void
monitor_unwatch(struct jobs *js)
{
	if (!mon.watching)
		return;
	jobs_unobserve(js, &mon.observer);
	mon.watching = false;
}

void
monitor_routed(enum job_class c)
{
	mon.routed[c == CLASS_CPU ? MC_CPU : MC_IO]++;
}

void
monitor_store_commit(double seconds)
{
	init_once();
	histogram_observe(&mon.commit, seconds);
}

void
monitor_store_fsync(double seconds)
{
	init_once();
	histogram_observe(&mon.fsync, seconds);
}

/* ---- rendering ---- */

/* The plain counters of stats.h; jobs started and finished come by class instead. */
static void
render_counters(struct metrics_out *m)
{
	char labels[96];
	int c, st;

#define X(name, help)                                                                              \
	if (strcmp(#name, "jobs_started") != 0 && strcmp(#name, "jobs_finished") != 0)             \
		metrics_counter(m, "taskd_" #name, help, stats.name);
	TASKD_COUNTERS(X)
#undef X
	metrics_family(m, "taskd_jobs_started", METRIC_COUNTER, NULL,
		       "jobs started, by class (where they ran)");
	for (c = 0; c < MC_N; c++)
		metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "class", mc_names[c],
						      NULL), mon.started[c]);
	metrics_family(m, "taskd_jobs_finished", METRIC_COUNTER, NULL,
		       "jobs that reached a final state, by class and state");
	for (c = 0; c < MC_N; c++) {
		for (st = 0; st < JOB_NSTATES; st++) {
			if (!job_state_final(st))
				continue;
			metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "class",
							      mc_names[c], "state",
							      job_state_name(st), NULL),
					    mon.finished[c][st]);
		}
	}
	metrics_family(m, "taskd_router_decisions", METRIC_COUNTER, NULL,
		       "class-auto jobs the router sent to each class");
	for (c = MC_CPU; c < MC_N; c++)
		metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "class", mc_names[c],
						      NULL), mon.routed[c]);
}

/* A gauge with one sample per class, cpu and io. */
static void
by_class(struct metrics_out *m, const char *name, const char *help, const double v[2])
{
	char labels[32];

	metrics_family(m, name, METRIC_GAUGE, NULL, help);
	metrics_sample(m, metrics_labels(labels, sizeof labels, "class", "cpu", NULL), v[0]);
	metrics_sample(m, metrics_labels(labels, sizeof labels, "class", "io", NULL), v[1]);
}

static void
render_jobs(struct taskd *td, struct metrics_out *m)
{
	static const enum job_class classes[2] = { CLASS_CPU, CLASS_IO };
	double queued[2], paused[2], running[2];
	char labels[96];
	size_t i;
	int st;

	metrics_family(m, "taskd_jobs", METRIC_GAUGE, NULL, "jobs in the table by state");
	for (st = 0; st < JOB_NSTATES; st++)
		metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "state",
						      job_state_name(st), NULL),
				    jobs_count(td->jobs, st));
	metrics_gauge(m, "taskd_queue_pending", "jobs waiting to run",
		      (double)sched_pending(td->sched));
	for (i = 0; i < 2; i++) {
		queued[i] = (double)sched_pending_class(td->sched, classes[i]);
		paused[i] = sched_paused(td->sched, classes[i]) ? 1 : 0;
		running[i] = (double)sched_running_class(td->sched, classes[i]);
	}
	by_class(m, "taskd_queue_jobs", "jobs in the run queue of each class", queued);
	by_class(m, "taskd_queue_paused", "1 while starting jobs of the class is paused", paused);
	by_class(m, "taskd_running_jobs",
		 "jobs running in the process pool (cpu) and the thread pool (io)", running);
}

static void
render_histograms(struct metrics_out *m)
{
	char labels[64];
	int c;

	metrics_family(m, "taskd_job_duration_seconds", METRIC_HISTOGRAM, "seconds",
		       "wall time of each run, by class");
	for (c = 0; c < MC_N; c++)
		metrics_sample_histogram(m, metrics_labels(labels, sizeof labels, "class",
							   mc_names[c], NULL), &mon.duration[c]);
	metrics_family(m, "taskd_job_queue_wait_seconds", METRIC_HISTOGRAM, "seconds",
		       "time from entering a run queue to starting, by class");
	for (c = 0; c < MC_N; c++)
		metrics_sample_histogram(m, metrics_labels(labels, sizeof labels, "class",
							   mc_names[c], NULL), &mon.wait[c]);
	metrics_family(m, "taskd_store_commit_seconds", METRIC_HISTOGRAM, "seconds",
		       "time to write one group commit of job changes");
	metrics_sample_histogram(m, NULL, &mon.commit);
	metrics_family(m, "taskd_store_fsync_seconds", METRIC_HISTOGRAM, "seconds",
		       "time to flush the store to the disk");
	metrics_sample_histogram(m, NULL, &mon.fsync);
}

static void
render_pools(struct taskd *td, struct metrics_out *m)
{
	static const char *const wstates[] = { "starting", "idle", "busy" };
	struct ppool_config pc = taskd_ppool_config(td->cfg);
	struct ppool_state ps = { 0 };
	struct tpool_stats ts;
	json_t *pj = NULL;
	char labels[64];
	int counts[3];
	size_t i;

	if (td->ppool != NULL) {
		ppool_get_state(td->ppool, &ps);
		pj = ppool_to_json(td->ppool);
	}
	counts[0] = ps.starting;
	counts[1] = ps.idle;
	counts[2] = ps.busy;
	metrics_family(m, "taskd_process_pool_workers", METRIC_GAUGE, NULL,
		       "worker processes by state");
	for (i = 0; i < 3; i++)
		metrics_sample(m, metrics_labels(labels, sizeof labels, "state", wstates[i], NULL),
			       counts[i]);
	metrics_gauge(m, "taskd_process_pool_max_workers", "process_pool.max_workers (resolved)",
	      td->ppool != NULL ? pc.max_workers : 0);
	metrics_gauge(m, "taskd_process_pool_spawn_failures",
	      "worker starts that failed in a row (0 once one starts)",
	      pj != NULL ? (double)json_integer_value(json_object_get(pj, "spawn_failures")) : 0);
	metrics_gauge(m, "taskd_process_pool_backoff_seconds",
	      "delay before the next worker start after failures (0: none)",
	      pj != NULL ? json_number_value(json_object_get(pj, "backoff")) : 0);
	json_decref(pj);

	tpool_stats(td->tpool, &ts);
	metrics_gauge(m, "taskd_thread_pool_threads", "pool threads alive", ts.threads);
	metrics_gauge(m, "taskd_thread_pool_busy", "pool threads running a job", ts.busy);
	metrics_gauge(m, "taskd_thread_pool_idle", "pool threads waiting for a job", ts.idle);
	metrics_gauge(m, "taskd_thread_pool_max", "thread_pool.max_threads", ts.max);
	metrics_gauge(m, "taskd_thread_pool_queued", "tasks handed to the pool, not yet picked up",
	      ts.queued);
	metrics_counter(m, "taskd_thread_pool_completed", "tasks the pool threads completed",
		ts.completed);
}

/* A gauge with one sample per handler: its status field key. */
static void
per_handler(struct metrics_out *m, json_t *hs, const char *name, const char *help,
	    const char *key)
{
	char labels[160];
	json_t *h;
	size_t i;

	metrics_family(m, name, METRIC_GAUGE, NULL, help);
	json_array_foreach(hs, i, h)
		metrics_sample(m, metrics_labels(labels, sizeof labels, "handler",
						 json_string_value(json_object_get(h, "name")), NULL),
			       json_number_value(json_object_get(h, key)));
}

/*
 * Per handler (doc/handlers.md), from the status JSON sched.c makes for
 * them: its workers by state, its queue, its jobs' ends, its workers'
 * starts, crashes and recycling, its start backoff.
 */
static void
render_handlers(struct taskd *td, struct metrics_out *m)
{
	static const char *const wstates[] = { "starting", "idle", "busy", "exiting" };
	static const char *const ends[] = { "done", "failed", "timeout", "cancelled", "lost" };
	static const struct {
		const char *name, *key, *help;
	} counts[] = {
		{ "taskd_handler_worker_starts", "workers_started", "worker processes started" },
		{ "taskd_handler_worker_start_failures", "start_failures",
		  "worker processes that failed to start" },
		{ "taskd_handler_worker_crashes", "crashes", "worker processes that died or broke "
							       "the protocol" },
		{ "taskd_handler_worker_recycled", "recycled",
		  "worker processes replaced after max_jobs_per_worker or max_worker_rss" },
	};
	json_t *hs = sched_handlers_json(td->sched), *h, *w, *c;
	const char *name, *st;
	char labels[192];
	size_t i, k, n, x;

	metrics_family(m, "taskd_handler_workers", METRIC_GAUGE, NULL,
		       "a handler's worker processes by state");
	json_array_foreach(hs, i, h) {
		name = json_string_value(json_object_get(h, "name"));
		for (k = 0; k < 4; k++) {
			n = 0;
			json_array_foreach(json_object_get(h, "workers"), x, w) {
				st = json_string_value(json_object_get(w, "state"));
				n += st != NULL && strcmp(st, wstates[k]) == 0;
			}
			metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "handler", name,
							      "state", wstates[k], NULL), n);
		}
	}
	per_handler(m, hs, "taskd_handler_queued", "a handler's jobs waiting for a worker",
		    "queued");
	metrics_family(m, "taskd_handler_jobs", METRIC_COUNTER, NULL,
		       "a handler's jobs that ended, by how");
	json_array_foreach(hs, i, h) {
		c = json_object_get(h, "counters");
		for (k = 0; k < 5; k++)
			metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "handler",
							      json_string_value(json_object_get(h, "name")),
							      "state", ends[k], NULL),
					    (uint64_t)json_integer_value(json_object_get(c, ends[k])));
	}
	for (k = 0; k < sizeof counts / sizeof counts[0]; k++) {
		metrics_family(m, counts[k].name, METRIC_COUNTER, NULL, counts[k].help);
		json_array_foreach(hs, i, h)
			metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "handler",
							      json_string_value(json_object_get(h, "name")),
							      NULL),
					    (uint64_t)json_integer_value(json_object_get(
						    json_object_get(h, "counters"), counts[k].key)));
	}
	per_handler(m, hs, "taskd_handler_backoff_seconds",
		    "delay before a handler's next worker start after failures (0: none)", "backoff");
	json_decref(hs);
}

void
monitor_render(struct taskd *td, struct evbuffer *out, enum metrics_format f)
{
	struct metrics_out m;
	char labels[64];

	init_once();
	metrics_open(&m, out, f);
	metrics_family(&m, "taskd_build", METRIC_INFO, NULL, "the version of taskd running");
	metrics_sample(&m, metrics_labels(labels, sizeof labels, "version", TASKD_VERSION, NULL),
		       1);
	metrics_gauge(&m, "taskd_uptime_seconds", "seconds since taskd started",
	      now_unix() - td->started_at);
	render_counters(&m);
	render_jobs(td, &m);
	render_histograms(&m);
	render_pools(td, &m);
	metrics_gauge(&m, "taskd_clients", "connected clients", server_nclients(td->server));
	metrics_gauge(&m, "taskd_subscribers", "connections subscribed to job events",
	      (double)events_subscribers(td->events));
	render_handlers(td, &m);
	notify_metrics(td->notify, &m);
	http_metrics(td->http, &m);
	metrics_close(&m);
}
