/*
 * Per-user bounds on what a user's jobs store (doc/protocol.md "Quotas",
 * taskd.conf(5) limits.max_job_bytes_per_user and
 * limits.max_output_per_user): the bytes of their descriptions
 * (job_spec_bytes: what the daemon keeps in memory and in its database) and
 * of their output files. job.c counts both per user; this module decides.
 *
 * A submit that would pass a bound is refused (quota_exceeded, nothing is
 * queued). Output is measured when a run ends, once a second while jobs
 * run, and at startup (the counts are made again from what is stored). A
 * run may keep only what is left of its owner's output quota; once the
 * owner's jobs hold it all, the output of the owner's running jobs is
 * stopped. Either way the output is cut as jobs.max_output cuts it, and the
 * job's error says why (its state is what its command made it). Root and
 * the daemon's own user are counted, never bounded. Loop thread only.
 */
#ifndef TASKD_QUOTA_H
#define TASKD_QUOTA_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct config;
struct job;
struct jobs;
struct proto_error;
struct sched;

/* May uid add jobs whose descriptions take bytes? 0, or -1 with *err (quota_exceeded). */
int quota_check_submit(const struct config *cfg, struct jobs *js, uid_t uid, uint64_t bytes,
		       struct proto_error *err);
/*
 * A run of j starts: the most output it may keep over both streams (the
 * run's max_kept), 0 for no more than jobs.max_output per stream. It is
 * what is left of its owner's output quota (j->output_capped); when
 * nothing is left, j->output_stopped is set and the caller stops the run's
 * output at once.
 */
uint64_t quota_run_kept(const struct config *cfg, struct jobs *js, struct job *j);
/* j's run came back (its result is in j->res): count its output; say so if the quota cut it. */
void quota_run_ended(const struct config *cfg, struct jobs *js, const char *jobs_dir,
		     struct job *j);
/* Once a second: count the running jobs' output, stop it for owners past their quota. */
void quota_tick(const struct config *cfg, struct jobs *js, struct sched *s,
		const char *jobs_dir);
/* At startup, once the stored jobs are loaded: count every job's output files. */
void quota_recount(struct jobs *js, const char *jobs_dir);
/*
 * For status: what uid's jobs store and its bounds,
 * {"uid","job_bytes","max_job_bytes","output_bytes","max_output"} (a bound
 * is null when uid has none).
 */
json_t *quota_json(const struct config *cfg, struct jobs *js, uid_t uid);

#endif
