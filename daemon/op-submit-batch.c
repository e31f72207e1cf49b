/*
 * submit of a batch ("jobs", doc/protocol.md "submit"): all or nothing,
 * every job decoded and checked before any is made; a unique key held
 * outside the batch, or by an earlier job of it, answers with that job
 * instead of making one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "cluster.h"
#include "op-submit-private.h"
#include "ops.h"
#include "output.h"
#include "persist.h"
#include "quota.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

/*
 * A unique key within a batch: held by a job outside it (its id), or by an
 * earlier job of the batch (that one is made, this one not).
 */
struct batch_key {
	bool existing;        /* not made: answered with holder */
	uint64_t holder;      /* outside the batch: its id; 0: jobs[dup] */
	bool holder_array;
	bool committed;
	size_t dup;
};

static void
batch_free(struct job_spec *specs, struct batch_key *keys, size_t n)
{
	size_t i;

	/* Specs not decoded (or freed on failure) are zeroed: freeing all is safe. */
	for (i = 0; i < n; i++)
		job_spec_free(&specs[i]);
	free(specs);
	free(keys);
}

/* Which jobs of the batch a unique key makes no new job for; how many are new. */
static size_t
batch_keys(struct taskd *td, uid_t uid, struct job_spec *specs, struct batch_key *keys, size_t n)
{
	size_t i, k, made = 0;

	for (i = 0; i < n; i++) {
		if (submit_holder_of(td, uid, specs[i].unique, &keys[i].holder,
				     &keys[i].holder_array, &keys[i].committed)) {
			keys[i].existing = true;
			continue;
		}
		for (k = 0; specs[i].unique != NULL && k < i; k++) {
			if (!keys[k].existing && specs[k].unique != NULL &&
			    strcmp(specs[k].unique, specs[i].unique) == 0) {
				keys[i].existing = true;
				keys[i].dup = k;
				break;
			}
		}
		if (!keys[i].existing)
			made++;
	}
	return made;
}

void
submit_batch(struct taskd *td, struct client *c, struct request *req, json_t *arr)
{
	struct proto_job_opts opts = submit_job_opts(td, c);
	struct proto_error err = { 0 };
	struct pending_submit *ps;
	struct batch_key *keys;
	struct job_spec *specs;
	json_t *ids, *existing;
	size_t i, m, n = json_array_size(arr), made;
	uid_t uid = server_client_uid(c);
	uint64_t next = jobs_next_id(td->jobs), *made_id;
	double now = now_unix();
	char *msg, *cause = NULL;
	uint64_t bytes = 0;

	if (n == 0 || n > TASKD_MAX_BATCH) {
		proto_error_set(&err, TASKD_ERR_BAD_REQUEST,
				"\"jobs\" must hold 1 to %d jobs", TASKD_MAX_BATCH);
		reply_proto_err(c, req->id, &err);
		return;
	}
	/* All or nothing: decode every job before queueing any. */
	specs = xcalloc(n, sizeof *specs);
	keys = xcalloc(n, sizeof *keys);
	for (i = 0; i < n; i++) {
		if (json_object_get(json_array_get(arr, i), "array") != NULL)
			proto_error_set(&err, TASKD_ERR_BAD_REQUEST, "\"array\" is for a single "
					"submit: send each array in a request of its own");
		else if (proto_batch_job_decode(json_array_get(arr, i), &opts, &specs[i], &err) ==
				 0 &&
			 submit_check_job(td, uid, server_client_gid(c), &specs[i], &err) == 0)
			continue;
		msg = err.message;
		err.message = NULL;
		proto_error_set(&err, err.code, "jobs[%zu]: %s", i, msg);
		free(msg);
		reply_proto_err(c, req->id, &err);
		batch_free(specs, keys, n);
		return;
	}
	made = batch_keys(td, uid, specs, keys, n);
	for (i = 0; i < n; i++)
		if (!keys[i].existing)
			bytes += job_spec_bytes(&specs[i]);
	if (quota_check_submit(td->cfg, td->jobs, uid, bytes, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		batch_free(specs, keys, n);
		return;
	}
	if (submit_check_room(td, c, req, made) == -1) {
		batch_free(specs, keys, n);
		return;
	}
	/* No unique keys in cluster mode (check_workflow): every job of the batch is new. */
	if (td->cluster != NULL) {
		free(keys);
		cluster_submit(td->cluster, c, req->id, specs, n, true, false, submit_local(req));
		return;
	}
	/* Inputs at the ids the new jobs will get (in order, from next). */
	for (i = 0, m = 0; i < n; i++) {
		if (keys[i].existing)
			continue;
		if (submit_store_input(td, next + m, &specs[i], &cause) == -1) {
			while (m-- > 0)
				output_remove_input(td->jobs_dir, next + m);
			reply_err(c, req->id, TASKD_ERR_STORAGE, cause);
			free(cause);
			batch_free(specs, keys, n);
			return;
		}
		m++;
	}
	ps = pending_submit_new(td, c, req, made);
	ids = json_array();
	existing = json_array();
	made_id = xcalloc(n, sizeof *made_id);
	for (i = 0, m = 0; i < n; i++) {
		if (!keys[i].existing) {
			made_id[i] = ps->ids[m++] = submit_add_job(td, &specs[i], uid,
								   server_client_gid(c), now)->id;
			json_array_append_new(ids, json_integer((json_int_t)made_id[i]));
			continue;
		}
		json_array_append_new(ids, json_integer((json_int_t)(
			keys[i].holder != 0 ? keys[i].holder : made_id[keys[i].dup])));
		json_array_append_new(existing, json_integer((json_int_t)i));
		STATS_INC(submits_existing);
		/* A holder outside the batch whose submit is not stored yet: it must be, by then. */
		if (keys[i].holder != 0 && !keys[i].committed) {
			ps->holder = keys[i].holder;
			ps->holder_array = keys[i].holder_array;
		}
	}
	free(made_id);
	ps->answer = json_pack("{s:o}", "ids", ids);
	if (json_array_size(existing) > 0)
		json_object_set_new(ps->answer, "existing", existing);
	else
		json_decref(existing);
	batch_free(specs, keys, n);
	persist_after_commit(td->persist, submit_committed, ps);
}

