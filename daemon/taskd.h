/*
 * The running daemon: struct taskd holds its parts (wired by main.c, see
 * doc/design.md "Processes, threads and who owns what"), and the functions
 * here act on all of them at once: the pool settings a configuration
 * gives, reload, shutdown, the one-line status. Loop thread only.
 */
#ifndef TASKD_TASKD_H
#define TASKD_TASKD_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "hpool.h"
#include "ppool.h"
#include "tpool.h"

struct event_base;
struct jobs;
struct sched;
struct life;
struct server;
struct persist;
struct store;
struct events;
struct http;
struct notify;
struct cluster;

struct taskd {
	struct event_base *base;
	struct config *cfg;
	const char *config_path;  /* NULL: built-in defaults */
	int log_level_override;   /* -l, or -1 */
	char *socket_path;
	char *state_dir;
	char *jobs_dir;
	struct jobs *jobs;
	struct sched *sched;
	struct life *life;
	struct tpool *tpool;
	struct ppool *ppool;      /* NULL if process_pool.max_workers resolves to 0 */
	struct hpool *hpool;      /* handler workers (config `handlers`) */
	struct server *server;
	struct persist *persist;
	struct store *store;
	struct events *events;    /* subscribers to job events */
	struct notify *notify;    /* commands and webhook posts when jobs end; the slow log */
	struct http *http;        /* the HTTP endpoint, NULL without http.listen */
	struct cluster *cluster;  /* cluster mode (cluster.h), or NULL: a single node */
	double started_at;
	bool stopping;
	bool draining;
};

/* The thread-pool part of a configuration. */
struct tpool_config taskd_tpool_config(const struct config *cfg);
/* The process-pool part (max_workers 0 resolved to the number of CPUs). */
struct ppool_config taskd_ppool_config(const struct config *cfg);
/* Room a line may take beyond limits.max_frame: the base64 of limits.max_input. */
size_t taskd_input_room(const struct config *cfg);
/* What the handler pool takes from a configuration (sizes resolved). */
struct hpool_limits taskd_hpool_limits(const struct config *cfg);
/* limits.max_clients, lowered so clients cannot take the descriptors jobs need. */
int taskd_max_clients(const struct config *cfg);

/*
 * Re-read the configuration file and apply what can change live (log level,
 * pool sizes, limits, queue and job settings), for SIGHUP and the reload
 * op alike, and log the outcome. On success *changed lists the keys that
 * changed; on error nothing changes and *cause says why.
 */
int taskd_reload(struct taskd *td, json_t **changed, char **cause);

/* Stop: no new connections or submits; cancel (or drain) jobs; exit the loop when idle. */
void taskd_shutdown(struct taskd *td, bool drain);

/*
 * Stopping, and nothing runs or is queued any more: end the loop (in
 * cluster mode once the connection is closed: cluster_close calls this
 * again then).
 */
void taskd_exit_if_idle(struct taskd *td);

/* "3 running (1 cpu, 2 io), 12 queued, 1/2 workers busy" (systemd's STATUS=). */
void taskd_status_line(struct taskd *td, char *buf, size_t len);

/* At startup: pause the classes the store says were paused (`pause --class`). -1 with *cause. */
int taskd_restore_paused(struct taskd *td, char **cause);

#endif
