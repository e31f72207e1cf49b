/*
 * Per-user bounds on stored bytes (quota.h): the decisions. The counting
 * is job.c's (jobs_user_bytes); output files are measured with
 * output_size.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "admission.h"
#include "config.h"
#include "job.h"
#include "jobtype.h"
#include "log.h"
#include "output.h"
#include "proto.h"
#include "quota.h"
#include "sched.h"
#include "xmalloc.h"

/*
 * What j's output takes: its output files (unless files is false: they
 * hold nothing), and the result a run left (a handler's JSON result is
 * stored with the job, up to limits.max_frame).
 */
static void
measure(struct jobs *js, const char *jobs_dir, struct job *j, bool files)
{
	uint64_t n = j->res.result != NULL ? strlen(j->res.result) : 0;

	if (files && job_has_output(j))
		n += output_size(jobs_dir, j->id);
	jobs_set_output_bytes(js, j, n);
}

/* A bound of uid's: limit, or 0 (none) for root and the daemon's own user. */
static uint64_t
bound(uid_t uid, uint64_t limit)
{
	return privileged_uid(uid) ? 0 : limit;
}

int
quota_check_submit(const struct config *cfg, struct jobs *js, uid_t uid, uint64_t bytes,
		   struct proto_error *err)
{
	uint64_t max_jb = bound(uid, cfg->limits.max_job_bytes_per_user);
	uint64_t max_out = bound(uid, cfg->limits.max_output_per_user);
	uint64_t jb, out;
	char *limit;

	jobs_user_bytes(js, uid, &jb, &out);
	if (max_out > 0 && out >= max_out) {
		limit = config_size_text(max_out);
		proto_error_set(err, TASKD_ERR_QUOTA, "uid %u's jobs hold %" PRIu64 " bytes of "
				"output, limits.max_output_per_user is %s (%" PRIu64 " bytes): "
				"clean finished jobs first", (unsigned)uid, out, limit, max_out);
		free(limit);
		return -1;
	}
	if (max_jb > 0 && (bytes > max_jb || jb > max_jb - bytes)) {
		limit = config_size_text(max_jb);
		proto_error_set(err, TASKD_ERR_QUOTA, "uid %u's jobs take %" PRIu64 " bytes for "
				"their descriptions (argv, environment, ...) and this submit %"
				PRIu64 " more, past limits.max_job_bytes_per_user, %s (%" PRIu64
				" bytes): clean finished jobs, or wait for some to end", (unsigned)uid,
				jb, bytes, limit, max_jb);
		free(limit);
		return -1;
	}
	return 0;
}

uint64_t
quota_run_kept(const struct config *cfg, struct jobs *js, struct job *j)
{
	uint64_t limit = bound(j->uid, cfg->limits.max_output_per_user), jb, out;

	j->output_capped = j->output_stopped = false;
	if (!jobtype_has_output(j->spec.type))
		return 0;
	/* A retry's output files start empty again. */
	jobs_set_output_bytes(js, j, 0);
	if (limit == 0)
		return 0;
	jobs_user_bytes(js, j->uid, &jb, &out);
	if (out >= limit) {
		j->output_stopped = true;
		return 0;
	}
	j->output_capped = true;
	return limit - out;
}

void
quota_run_ended(const struct config *cfg, struct jobs *js, const char *jobs_dir, struct job *j)
{
	uint64_t jb, out;
	char *limit;

	/*
	 * A handler's output files are written by taskd itself (hchild.c), every
	 * byte counted in the run's out_bytes and err_bytes, and its retries
	 * append to them: until a run writes a byte they are empty or absent,
	 * and stat()ing them for each job cost more than the rest of its end. A
	 * command writes its own files (a worker process that crashed may not
	 * have counted them): measured always.
	 */
	if (j->spec.type != JOBTYPE_HANDLER || j->res.out_bytes > 0 || j->res.err_bytes > 0)
		j->output_written = true;
	measure(js, jobs_dir, j, j->output_written);
	if (!(j->output_capped || j->output_stopped) || j->res.error != NULL ||
	    !(j->res.out_truncated || j->res.err_truncated))
		return;
	jobs_user_bytes(js, j->uid, &jb, &out);
	limit = config_size_text(cfg->limits.max_output_per_user);
	j->res.error = xprintf("output cut at %" PRIu64 " bytes: uid %u's jobs hold %" PRIu64
			       " bytes of output, limits.max_output_per_user is %s",
			       j->output_bytes, (unsigned)j->uid, out, limit);
	free(limit);
}

void
quota_tick(const struct config *cfg, struct jobs *js, struct sched *s, const char *jobs_dir)
{
	uint64_t limit, jb, out;
	struct job *j;

	for (j = jobs_first_running(js); j != NULL; j = TAILQ_NEXT(j, running))
		measure(js, jobs_dir, j, true); /* written to right now, maybe */
	for (j = jobs_first_running(js); j != NULL; j = TAILQ_NEXT(j, running)) {
		limit = bound(j->uid, cfg->limits.max_output_per_user);
		if (limit == 0 || j->output_stopped || !job_has_output(j))
			continue;
		jobs_user_bytes(js, j->uid, &jb, &out);
		if (out < limit)
			continue;
		j->output_stopped = true;
		sched_stop_output(s, j);
		log_info("job %" PRIu64 ": keeping no more of its output: uid %u's jobs hold %" PRIu64
			 " bytes of output (limits.max_output_per_user)", j->id, (unsigned)j->uid,
			 out);
	}
}

void
quota_recount(struct jobs *js, const char *jobs_dir)
{
	struct job *j;

	for (j = jobs_first(js); j != NULL; j = TAILQ_NEXT(j, all))
		measure(js, jobs_dir, j, true);
}

static json_t *
bound_json(uint64_t limit)
{
	return limit > 0 ? json_integer((json_int_t)limit) : json_null();
}

json_t *
quota_json(const struct config *cfg, struct jobs *js, uid_t uid)
{
	uint64_t jb, out;

	jobs_user_bytes(js, uid, &jb, &out);
	return json_pack("{s:I,s:I,s:o,s:I,s:o}", "uid", (json_int_t)uid,
			 "job_bytes", (json_int_t)jb,
			 "max_job_bytes", bound_json(bound(uid, cfg->limits.max_job_bytes_per_user)),
			 "output_bytes", (json_int_t)out,
			 "max_output", bound_json(bound(uid, cfg->limits.max_output_per_user)));
}
