/*
 * Control operations: one handler per protocol op, dispatched through a
 * table. Requests arrive as frames from server.c; answers go back on the
 * same client, immediately or (for `wait`) when the job finishes.
 * Loop thread only.
 */
#ifndef TASKD_CTL_H
#define TASKD_CTL_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "config.h"
#include "ppool.h"
#include "tpool.h"

struct event_base;
struct jobs;
struct sched;
struct life;
struct tpool;
struct ppool;
struct server;
struct client;
struct events;
struct http;
struct notify;

/* The running daemon's parts, wired by main.c. */
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
	struct server *server;
	struct persist *persist;
	struct store *store;
	struct events *events;    /* subscribers to job events */
	struct notify *notify;    /* commands and webhook posts when jobs end; the slow log */
	struct http *http;        /* the HTTP endpoint, NULL without http.listen */
	double started_at;
	bool stopping;
	bool draining;
};

void ctl_frame_cb(struct client *c, const char *line, size_t len, void *arg);
void ctl_close_cb(struct client *c, void *arg);

/*
 * Re-read the configuration file and apply what can change live (log level,
 * thread-pool sizes, limits, queue and job settings). On success *changed
 * lists the keys that changed; on error nothing changes and *cause says why.
 */
int ctl_reload(struct taskd *td, json_t **changed, char **cause);
/* The thread-pool part of a configuration. */
struct tpool_config ctl_tpool_config(const struct config *cfg);
/* limits.max_clients, lowered so clients cannot take the descriptors jobs need. */
int ctl_max_clients(const struct config *cfg);
/* The process-pool part (max_workers 0 resolved to the number of CPUs). */
struct ppool_config ctl_ppool_config(const struct config *cfg);

/* "3 running (1 cpu, 2 io), 12 queued, 1/2 workers busy" */
void ctl_status_line(struct taskd *td, char *buf, size_t len);

/* The stored class pauses (`pause --class`), table meta of the store: 0 or 1. */
#define CTL_META_PAUSED_CPU "paused_cpu"
#define CTL_META_PAUSED_IO "paused_io"
/* At startup: pause the classes the store says were paused. -1 with *cause. */
int ctl_restore_paused(struct taskd *td, char **cause);

/* Stop: no new connections or submits; cancel (or drain) jobs; exit the loop when idle. */
void ctl_shutdown(struct taskd *td, bool drain);

#endif
