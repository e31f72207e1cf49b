#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "cluster.h"
#include "http.h"
#include "life.h"
#include "log.h"
#include "modules.h"
#include "notify.h"
#include "persist.h"
#include "sched.h"
#include "sd.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

/* ---- pool settings from a configuration ---- */

struct hpool_limits
taskd_hpool_limits(const struct config *cfg)
{
	struct hpool_limits l = {
		.cpu_max = taskd_ppool_config(cfg).max_workers,
		.io_max = cfg->thread_pool.max_threads,
		.kill_grace = cfg->jobs.kill_grace,
		.max_frame = cfg->limits.max_frame,
		.max_output = cfg->jobs.max_output,
	};

	return l;
}

struct tpool_config
taskd_tpool_config(const struct config *cfg)
{
	struct tpool_config tc = {
		.min_threads = cfg->thread_pool.min_threads,
		.max_threads = cfg->thread_pool.max_threads,
		.idle_timeout = cfg->thread_pool.idle_timeout,
	};

	return tc;
}

struct ppool_config
taskd_ppool_config(const struct config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct ppool_config pc = {
		.mode = cfg->process_pool.mode,
		.min_workers = cfg->process_pool.min_workers,
		.max_workers = cfg->process_pool.max_workers,
		.min_spare = cfg->process_pool.min_spare,
		.max_spare = cfg->process_pool.max_spare,
		.max_jobs_per_worker = cfg->process_pool.max_jobs_per_worker,
		.max_worker_rss = cfg->process_pool.max_worker_rss,
		.idle_timeout = cfg->process_pool.idle_timeout,
	};

	if (pc.max_workers == 0)
		pc.max_workers = ncpu > 0 ? (int)ncpu : 1;
	if (pc.min_workers > pc.max_workers)
		pc.min_workers = pc.max_workers;
	return pc;
}

size_t
taskd_input_room(const struct config *cfg)
{
	return (size_t)(4 * ((cfg->limits.max_input + 2) / 3));
}

int
taskd_max_clients(const struct config *cfg)
{
	struct rlimit rl;
	long reserve, room;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return cfg->limits.max_clients;
	/* Each running job holds a few descriptors (pipes, files, pidfd, eventfd, schedstat). */
	reserve = 9L * cfg->thread_pool.max_threads + 4L * taskd_ppool_config(cfg).max_workers + 64;
	/* Notification commands run like jobs; an HTTP request holds up to 3 (http.c). */
	reserve += 9L * NOTIFY_THREADS + WEBHOOK_INFLIGHT;
	if (cfg->http.listen != NULL)
		reserve += 3L * cfg->http.max_connections;
	room = (long)rl.rlim_cur - reserve;
	if (room < 16)
		room = 16;
	return cfg->limits.max_clients < room ? cfg->limits.max_clients : (int)room;
}

/* ---- reload ---- */

static void
note_change(const char *key, void *arg)
{
	json_array_append_new(arg, json_string(key));
}

static int
apply_reload(struct taskd *td, json_t **changed, char **cause)
{
	struct config next;
	struct tpool_config tc;
	struct ppool_config pc;
	char *cause_http = NULL;
	struct hpool_limits hl;

	if (td->config_path == NULL) {
		*cause = xstrdup("taskd runs on built-in defaults (no -c FILE): nothing to reload");
		STATS_INC(reload_errors);
		return -1;
	}
	if (config_load(td->config_path, &next, cause) == -1) {
		STATS_INC(reload_errors);
		return -1;
	}
	if (sched_check_defaults(td->sched, &next, cause) == -1) {
		config_free(&next);
		STATS_INC(reload_errors);
		return -1;
	}
	*changed = json_array();
	config_diff(td->cfg, &next, note_change, *changed);
	if ((next.socket != NULL && strcmp(next.socket, td->socket_path) != 0) ||
	    (next.state_dir != NULL && strcmp(next.state_dir, td->state_dir) != 0))
		log_warnx("reload: socket and state_dir changes take effect after a restart");
	/* Module code cannot be unloaded while threads may run it (doc/modules.md). */
	if (!module_same(&next))
		log_warnx("reload: modules changes take effect after a restart (the loaded ones "
			  "stay: taskctl status lists them)");
	if (config_cluster_changed(td->cfg, &next))
		log_warnx("reload: cluster changes take effect after a restart");
	if (next.cgroups.enable != td->cfg->cgroups.enable)
		log_warnx("reload: a cgroups.enable change takes effect after a restart");
	config_free(td->cfg);
	*td->cfg = next;
	log_setlevel(td->log_level_override >= 0 ? td->log_level_override : td->cfg->log_level);
	tc = taskd_tpool_config(td->cfg);
	tpool_configure(td->tpool, &tc);
	pc = taskd_ppool_config(td->cfg);
	if (td->ppool != NULL)
		ppool_configure(td->ppool, &pc);
	server_set_limits(td->server, td->cfg->limits.max_frame, taskd_max_clients(td->cfg),
			  td->cfg->limits.stall_timeout);
	server_set_input_room(td->server, taskd_input_room(td->cfg));
	server_set_client_limits(td->server, td->cfg->limits.max_clients_per_user,
				 td->cfg->limits.idle_timeout);
	/* Handlers added, changed, removed; the scheduler fails a removed one's queued jobs. */
	hl = taskd_hpool_limits(td->cfg);
	hpool_configure(td->hpool, td->cfg->handlers, td->cfg->nhandlers, &hl);
	sched_set_hpool(td->sched, td->hpool, hl.cpu_max);
	sched_configure(td->sched);
	persist_configure(td->persist, td->cfg->store.fsync, td->cfg->store.fsync_interval);
	notify_configure(td->notify);
	if (http_reconfigure(td->http, &cause_http) == -1) {
		log_warnx("reload: %s (the old token stays)", cause_http);
		free(cause_http);
	}
	STATS_INC(reloads);
	return 0;
}

int
taskd_reload(struct taskd *td, json_t **changed, char **cause)
{
	int rc;

	*changed = NULL;
	sd_reloading();
	rc = apply_reload(td, changed, cause);
	sd_reloaded();
	if (rc == -1)
		log_warnx("reload refused, keeping the old configuration: %s", *cause);
	else
		log_info("configuration reloaded from %s (%zu changes)", td->config_path,
			 json_array_size(*changed));
	return rc;
}

/* ---- shutdown ---- */

void
taskd_exit_if_idle(struct taskd *td)
{
	if (!td->stopping || sched_running(td->sched) > 0 || sched_pending(td->sched) > 0)
		return;
	if (td->cluster != NULL && !cluster_close(td->cluster))
		return;
	event_base_loopexit(td->base, NULL);
}

static void
sched_idle_cb(void *arg)
{
	taskd_exit_if_idle(arg);
}

void
taskd_shutdown(struct taskd *td, bool drain)
{
	if (td->stopping && (drain || !td->draining))
		return;
	log_info("shutting down%s: %zu running, %zu queued", drain ? " (draining)" : "",
		 sched_running(td->sched), sched_pending(td->sched));
	td->stopping = true;
	td->draining = drain;
	sd_stopping();
	server_stop_listening(td->server);
	sched_set_idle_cb(td->sched, sched_idle_cb, td);
	/*
	 * Waiting, scheduled and paused jobs stay as stored, for the next start,
	 * with a drain too (one that became ready during it would be started
	 * just as the loop exits: a cpu job lost with its worker). A drain runs
	 * what is queued, paused classes included (in memory: a stored class
	 * pause holds again at the next start).
	 */
	life_stop(td->life);
	/* Cluster mode: what this node holds goes back to the cluster, not to "cancelled". */
	if (td->cluster != NULL)
		cluster_stop(td->cluster, drain);
	if (!drain) {
		sched_cancel_all(td->sched, "taskd shut down");
	} else {
		/*
		 * Paused queues run too (in memory, like classes); suspended jobs
		 * continue, or the drain would never end (they cannot be stored
		 * suspended: a restart finds them lost).
		 */
		sched_pause(td->sched, CLASS_AUTO, false);
		sched_unpause_queues(td->sched);
		sched_resume_all(td->sched);
	}
	taskd_exit_if_idle(td);
}

/* ---- status line, class pauses ---- */

void
taskd_status_line(struct taskd *td, char *buf, size_t len)
{
	struct ppool_state ps = { 0 };

	if (td->ppool != NULL)
		ppool_get_state(td->ppool, &ps);
	snprintf(buf, len, "%s%zu running (%zu cpu, %zu io), %zu queued, %d/%d workers busy%s%s",
		 td->stopping ? "stopping: " : "", sched_running(td->sched),
		 sched_running_class(td->sched, CLASS_CPU), sched_running_class(td->sched, CLASS_IO),
		 sched_pending(td->sched), ps.busy, ps.alive, td->cluster != NULL ? ", cluster " : "",
		 td->cluster != NULL ? cluster_state_name(td->cluster) : "");
}

/* A queue stored as paused: paused again (kept even if the configuration no longer has it). */
static void
restore_queue_pause(const char *name, void *arg)
{
	struct taskd *td = arg;

	sched_pause_queue(td->sched, name, true, false);
	log_info("starting jobs of queue %s is paused (taskctl resume --queue %s)", name, name);
}

int
taskd_restore_paused(struct taskd *td, char **cause)
{
	enum job_class cls[2] = { CLASS_CPU, CLASS_IO };
	bool paused[2];
	size_t i;

	if (persist_get_paused_queues(td->persist, restore_queue_pause, td, cause) == -1 ||
	    persist_get_paused(td->persist, &paused[0], &paused[1], cause) == -1)
		return -1;
	for (i = 0; i < 2; i++) {
		if (!paused[i])
			continue;
		sched_pause(td->sched, cls[i], true);
		log_info("starting %s jobs is paused (taskctl resume --class %s)",
			 config_class_name(cls[i]), config_class_name(cls[i]));
	}
	return 0;
}
