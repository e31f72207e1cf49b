/*
 * Daemon-wide counters, declared once: the same X-macro list drives the
 * struct, `status`, the metrics (monitor.c) and the tests. Loop thread only.
 */
#ifndef TASKD_STATS_H
#define TASKD_STATS_H

#include <stdint.h>

#define TASKD_COUNTERS(X)                                                                         \
	X(connections, "client connections accepted")                                              \
	X(connections_refused, "connections refused: limits.max_clients(_per_user) reached")       \
	X(idle_connections_closed, "connections closed after limits.idle_timeout")                 \
	X(requests, "requests handled")                                                            \
	X(request_errors, "requests answered with an error")                                       \
	X(frames_too_large, "frames rejected for exceeding limits.max_frame")                      \
	X(jobs_submitted, "jobs accepted")                                                         \
	X(jobs_started, "jobs started")                                                            \
	X(jobs_finished, "jobs that reached a final state")                                        \
	X(jobs_pruned, "finished jobs dropped beyond jobs.keep_finished")                          \
	X(jobs_cleaned, "finished jobs removed by clean requests")                                 \
	X(events_sent, "job event lines sent to subscribers")                                      \
	X(event_overflows, "subscribers cut off for falling behind")                               \
	X(jobs_retried, "failed, timed-out or lost attempts scheduled again (retries)")            \
	X(jobs_restarted, "finished jobs submitted again (restart)")                               \
	X(jobs_suspended, "running jobs suspended (pause of a running job)")                       \
	X(submits_existing, "submits answered with the job holding their unique key")              \
	X(jobs_reclassified, "running jobs that changed class (live sampling)")                    \
	X(cgroup_failures, "commands that ran without the cgroup they were given")                 \
	X(workers_spawned, "worker processes started (the first ones and every replacement)")    \
	X(worker_deaths, "worker processes that died without being asked to exit")                \
	X(reloads, "successful configuration reloads")                                             \
	X(reload_errors, "refused configuration reloads")

struct stats {
#define X(name, help) uint64_t name;
	TASKD_COUNTERS(X)
#undef X
};

extern struct stats stats;

#define STATS_INC(name) (stats.name++)
#define STATS_ADD(name, n) (stats.name += (n))

struct json_t;
/* {"connections":N, ...} */
struct json_t *stats_to_json(void);


#endif
