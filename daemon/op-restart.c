/*
 * restart (doc/protocol.md "restart"): finished jobs submitted again as
 * new jobs, through the submit's checks and its commit (op-submit.c).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "log.h"
#include "op-submit-private.h"
#include "ops.h"
#include "output.h"
#include "persist.h"
#include "quota.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

static op_fn op_restart;

/* Like submit: refused once a shutdown began. */
const struct op op_restart_entry = {
	.name = TASKD_OP_RESTART,
	.fn = op_restart,
	.flags = OP_JOB_OR,
	.select = FILTER_STATE | FILTER_STATES | FILTER_LABELS | FILTER_NAME | FILTER_IDS |
		  FILTER_ARRAY,
};

/* A job restart takes: finished (a pending or running one is there already). */
static int
restartable(const struct job *j, struct proto_error *err)
{
	if (job_state_final(j->state))
		return 0;
	proto_error_set(err, TASKD_ERR_INVALID_STATE, "job %llu is %s: only a finished job can "
			"be restarted", (unsigned long long)j->id, job_state_name(j->state));
	return -1;
}

/*
 * The new jobs of a restart within their owners' quotas (quota.h): the
 * bytes of each owner's new jobs together (a restart by root may take
 * jobs of several users; there are few of them).
 */
static int
restart_quota(struct taskd *td, struct job **v, const struct job_spec *specs,
	      const bool *existing, size_t n, struct proto_error *err)
{
	struct { uid_t uid; uint64_t bytes; } *own = xcalloc(n > 0 ? n : 1, sizeof *own);
	size_t i, k, nown = 0;
	int rc = 0;

	for (i = 0; i < n; i++) {
		if (existing[i])
			continue;
		for (k = 0; k < nown && own[k].uid != v[i]->uid; k++)
			;
		if (k == nown)
			own[nown++].uid = v[i]->uid;
		own[k].bytes += job_spec_bytes(&specs[i]);
	}
	for (k = 0; k < nown && rc == 0; k++)
		rc = quota_check_submit(td->cfg, td->jobs, own[k].uid, own[k].bytes, err);
	free(own);
	return rc;
}

/*
 * `restart`: a finished job (or every finished job a selector picks) is
 * submitted again as a new job with the same spec, its owner's, with
 * restarted_from; all or nothing, like a batch. A unique key held by a
 * pending or running job answers with that job instead.
 */
static void
op_restart(struct taskd *td, struct client *c, struct request *req)
{
	struct proto_error err = { 0 };
	struct pending_submit *ps;
	struct job **v, *old, *j;
	struct job_spec *specs;
	struct filter f;
	json_t *jobs, *o;
	uint64_t next = jobs_next_id(td->jobs), holder, *from;
	bool harray, committed, *existing;
	size_t i, n, m, made = 0;
	double now = now_unix();
	char *cause = NULL, *msg;

	/* Its new jobs would be this node's, with ids the cluster does not give (doc/cluster.md). */
	if (td->cluster != NULL) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "restart is not available in cluster mode (doc/cluster.md): submit the "
			  "job again");
		return;
	}
	if (req->job != NULL) {
		if (restartable(req->job, &err) == -1) {
			reply_proto_err(c, req->id, &err);
			return;
		}
		v = xcalloc(1, sizeof *v);
		v[0] = req->job;
		n = 1;
	} else if (!ops_has_selector(req)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "give \"job\" (a job id) or a "
			  "selector (\"state\", \"states\", \"labels\", \"name\", \"ids\", \"array\")");
		return;
	} else {
		if (ops_selector(c, req, &f) == -1)
			return;
		v = ops_select(td, c, &f, false, &n);
		filter_free(&f);
		/* Pending and running jobs are not taken: they are there already. */
		for (i = 0, m = 0; i < n; i++)
			if (job_state_final(v[i]->state))
				v[m++] = v[i];
		n = m;
	}
	specs = xcalloc(n > 0 ? n : 1, sizeof *specs);
	existing = xcalloc(n > 0 ? n : 1, sizeof *existing);
	from = xcalloc(n > 0 ? n : 1, sizeof *from);
	jobs = json_array();
	for (i = 0; i < n; i++) {
		old = v[i];
		from[i] = old->id;
		job_spec_rerun(&specs[i], old);
		if (submit_check_job(td, old->uid, old->gid, &specs[i], &err) == 0)
			continue;
		msg = err.message;
		err.message = NULL;
		proto_error_set(&err, err.code, "job %llu: %s", (unsigned long long)old->id, msg);
		free(msg);
		goto fail;
	}
	/* Unique keys: held now, or by an earlier job of this restart. */
	for (i = 0; i < n; i++) {
		o = json_pack("{s:I}", "restarted_from", (json_int_t)from[i]);
		if (submit_holder_of(td, v[i]->uid, specs[i].unique, &holder, &harray,
				     &committed)) {
			existing[i] = true;
			submit_holder_answer(o, holder, harray);
		} else {
			for (m = 0; specs[i].unique != NULL && m < i; m++)
				if (!existing[m] && v[m]->uid == v[i]->uid && specs[m].unique != NULL &&
				    strcmp(specs[m].unique, specs[i].unique) == 0)
					break;
			existing[i] = specs[i].unique != NULL && m < i;
			if (existing[i])
				submit_holder_answer(o, json_integer_value(json_object_get(
							     json_array_get(jobs, m), "id")), false);
			else
				json_object_set_new(o, "id", json_integer((json_int_t)(next + made++)));
		}
		json_array_append_new(jobs, o);
	}
	if (restart_quota(td, v, specs, existing, n, &err) == -1)
		goto fail;
	if (submit_check_room(td, c, req, made) == -1)
		goto out;
	/* Their inputs: the same files (hard links: an input never changes). */
	for (i = 0, m = 0; i < n; i++) {
		if (existing[i])
			continue;
		if (specs[i].input_bytes > 0 &&
		    output_share_input(td->jobs_dir, job_input_owner(v[i]), next + m,
				       td->cfg->store.fsync == FSYNC_ALWAYS, &cause) == -1) {
			reply_err(c, req->id, TASKD_ERR_STORAGE, cause);
			free(cause);
			while (m-- > 0)
				output_remove_input(td->jobs_dir, next + m);
			goto out;
		}
		m++;
	}
	ps = pending_submit_new(td, c, req, made);
	ps->answer = json_pack("{s:O}", "jobs", jobs);
	for (i = 0, m = 0; i < n; i++) {
		if (existing[i])
			continue;
		j = submit_add_job(td, &specs[i], v[i]->uid, v[i]->gid, now);
		j->restarted_from = from[i];
		ps->ids[m++] = j->id;
		STATS_INC(jobs_restarted);
	}
	log_debug("restart by uid %u: %zu jobs, %zu new", (unsigned)server_client_uid(c), n, made);
	persist_after_commit(td->persist, submit_committed, ps);
	goto out;
fail:
	reply_proto_err(c, req->id, &err);
out:
	for (i = 0; i < n; i++)
		job_spec_free(&specs[i]);
	json_decref(jobs);
	free(specs);
	free(existing);
	free(from);
	free(v);
}
