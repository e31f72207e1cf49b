/*
 * submit (doc/protocol.md "submit") of one job or of an array (one job per
 * index, in one request); a batch is op-submit-batch.c's, the checks of
 * what a submit asks for op-submit-check.c's, and restart, which submits
 * finished jobs again, op-restart.c's. A submit is answered once its jobs
 * are stored (persist.c's group commit); only then are they queued, and
 * seen by other requests: the pending submits, here, serve every kind. A
 * unique key (--unique) held by a pending or running job of the same user
 * answers with that job instead of making a new one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "cluster.h"
#include "life.h"
#include "log.h"
#include "op-submit-private.h"
#include "ops.h"
#include "output.h"
#include "persist.h"
#include "quota.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

/* An array's jobs times its dependencies: each job has its own copy of them. */
#define SUBMIT_MAX_ARRAY_DEPS 1000000

static op_fn op_submit;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_submit_entry = {
	.name = TASKD_OP_SUBMIT,
	.fn = op_submit,
	.flags = OP_JOB_FIELDS,
	.fields = { "wait", "jobs", "local" },
};

/*
 * The job, or array, holding key for uid now: 1 and its id (*array: an
 * array's), 0 if none holds it.
 */
int
submit_holder_of(struct taskd *td, uid_t uid, const char *key, uint64_t *id, bool *array,
		 bool *committed)
{
	if (key == NULL)
		return 0;
	return jobs_unique(td->jobs, uid, key, id, array, committed) == 0;
}

void
submit_holder_answer(json_t *o, uint64_t id, bool array)
{
	json_object_set_new(o, "id", json_integer((json_int_t)id));
	if (array)
		json_object_set_new(o, "array", json_integer((json_int_t)id));
	json_object_set_new(o, "existing", json_true());
}

/* The jobs' inputs, at the ids they will get: stored before their submit is (output.h). */
int
submit_store_input(struct taskd *td, uint64_t id, struct job_spec *spec, char **cause)
{
	int rc;

	if (spec->input == NULL)
		return 0;
	rc = output_store_input(td->jobs_dir, id, spec->input, spec->input_bytes,
				td->cfg->store.fsync == FSYNC_ALWAYS, cause);
	free(spec->input);
	spec->input = NULL;
	return rc;
}

struct job *
submit_add_job(struct taskd *td, struct job_spec *spec, uid_t uid, gid_t gid, double now)
{
	struct job *j = jobs_add(td->jobs, spec, uid, gid, now);

	life_prepare(td->life, j);
	STATS_INC(jobs_submitted);
	log_debug("job %llu submitted by uid %u", (unsigned long long)j->id, (unsigned)j->uid);
	return j;
}

struct pending_submit *
pending_submit_new(struct taskd *td, struct client *c, struct request *req, size_t n)
{
	struct pending_submit *ps = xcalloc(1, sizeof *ps + n * sizeof ps->ids[0]);
	struct conn *cs = conn_of(c);

	ps->td = td;
	ps->client = c;
	ps->id = json_incref(req->id);
	ps->n = n;
	TAILQ_INSERT_TAIL(&cs->submits, ps, entry);
	server_client_hold(c);
	return ps;
}

/* Call f(td, job) for each new job of ps that is still in the table. */
static void
each_new(struct pending_submit *ps, void (*f)(struct taskd *, struct pending_submit *,
					      struct job *, bool), bool ok)
{
	struct job *j;
	uint64_t k;
	size_t i;

	for (i = 0; i < ps->n; i++)
		if ((j = jobs_find(ps->td->jobs, ps->ids[i])) != NULL)
			f(ps->td, ps, j, ok);
	for (k = 0; k < ps->count; k++)
		if ((j = jobs_find(ps->td->jobs, ps->first + k)) != NULL)
			f(ps->td, ps, j, ok);
}

/* Stored: it may be seen now. Not stored: it never was (and neither is its input). */
static void
announce_or_drop(struct taskd *td, struct pending_submit *ps, struct job *j, bool ok)
{
	(void)ps;
	if (ok) {
		jobs_announce(td->jobs, j);
		return;
	}
	if (j->spec.input_bytes > 0 && (j->array == NULL || j->array->present == 1))
		output_remove_input(td->jobs_dir, job_input_owner(j));
	life_forget(td->life, j);
	jobs_discard(td->jobs, j);
}

/* Queued, or waiting for its dependencies or its time (life.c). */
static void
admit(struct taskd *td, struct pending_submit *ps, struct job *j, bool ok)
{
	(void)ps;
	(void)ok;
	if (j->admitted)
		return;
	life_admit(td->life, j);
	/* Acknowledged just as a shutdown began: stopped with the rest. */
	if (td->stopping && !td->draining && j->state == JOB_QUEUED)
		sched_cancel(td->sched, j, "taskd shut down");
}

/* The holder of a unique key it answers with was stored (not dropped by a failed commit). */
static bool
holder_stored(struct taskd *td, const struct pending_submit *ps)
{
	const struct job *j;

	if (ps->holder == 0)
		return true;
	if (ps->holder_array)
		return jobs_array_find(td->jobs, ps->holder) != NULL;
	return (j = jobs_find(td->jobs, ps->holder)) != NULL && j->announced;
}

/* The jobs of a submit are on disk (ok) or could not be stored (then they are dropped). */
void
submit_committed(bool ok, const char *cause, void *arg)
{
	struct pending_submit *ps = arg;
	struct taskd *td = ps->td;
	struct client *c = ps->client;
	struct conn *cs = c != NULL ? server_client_data(c) : NULL;
	uint64_t wait_on = ps->holder != 0 ? ps->holder : ps->n > 0 ? ps->ids[0] : 0;
	struct job *j;

	each_new(ps, announce_or_drop, ok);
	if (ok && !holder_stored(td, ps)) {
		ok = false;
		cause = "the job holding that unique key could not be stored";
	}
	if (c != NULL) {
		TAILQ_REMOVE(&cs->submits, ps, entry);
		/* With "wait", answered when the job ends (below). */
		if (!ok)
			reply_err(c, ps->id, TASKD_ERR_STORAGE, cause);
		else if (!ps->wait && ps->answer != NULL)
			reply_ok(c, ps->id, json_incref(ps->answer));
		else if (!ps->wait)
			reply_ok(c, ps->id, json_pack("{s:I}", "id", (json_int_t)ps->ids[0]));
		if (ps->wait && !ok)
			cs->nwaits--; /* the reserved slot */
	}
	/*
	 * "wait": parked on the job before it is admitted, so that a job which
	 * ends at once (a failed dependency, a shutdown) answers it before it
	 * can be pruned.
	 */
	if (c != NULL && ok && ps->wait) {
		if ((j = jobs_find(td->jobs, wait_on)) != NULL)
			wait_attach(td, c, ps->id, j);
		else {
			cs->nwaits--;
			reply_err(c, ps->id, TASKD_ERR_NOT_FOUND, "no such job (it ended and was "
				  "removed: jobs.keep_finished)");
		}
	}
	/* Answered first: a job may finish (and be pruned) as soon as it is queued. */
	/* All of a batch (or an array) is queued before any starts: priorities hold within it. */
	if (ok)
		each_new(ps, admit, ok);
	if (c != NULL)
		server_client_release(c);
	if (ok)
		sched_dispatch(td->sched);
	json_decref(ps->answer);
	json_decref(ps->id);
	free(ps);
}

/*
 * The answer names a job that holds the key: at once if that job's submit
 * is stored (and nothing is waited for), else after the next commit (which
 * stores it, or drops it: then this submit fails too).
 */
static void
answer_holder(struct taskd *td, struct client *c, struct request *req, uint64_t id, bool array,
	      bool committed, bool wait)
{
	struct pending_submit *ps;
	struct conn *cs = conn_of(c);
	json_t *answer = json_object();

	submit_holder_answer(answer, id, array);
	STATS_INC(submits_existing);
	log_debug("submit by uid %u: unique key held by %s %llu", (unsigned)server_client_uid(c),
		  array ? "array" : "job", (unsigned long long)id);
	if (committed && !wait) {
		reply_ok(c, req->id, answer);
		return;
	}
	ps = pending_submit_new(td, c, req, 0);
	ps->answer = answer;
	ps->holder = id;
	ps->holder_array = array;
	if (wait) {
		ps->wait = true;
		cs->nwaits++;
	}
	persist_after_commit(td->persist, submit_committed, ps);
}

/* ---- an array ---- */

static void
submit_array(struct taskd *td, struct client *c, struct request *req, struct job_spec *spec,
	     const struct proto_array *pa)
{
	struct proto_error err = { 0 };
	struct pending_submit *ps;
	struct job_array *a;
	struct job *j;
	char *cause = NULL;
	double now = now_unix();
	uint64_t k;

	if (spec->ndeps > 0 && pa->count * spec->ndeps > SUBMIT_MAX_ARRAY_DEPS) {
		proto_error_set(&err, TASKD_ERR_BAD_REQUEST,
				"an array of %llu jobs with %zu dependencies each: at most %d "
				"dependencies in all", (unsigned long long)pa->count, spec->ndeps,
				SUBMIT_MAX_ARRAY_DEPS);
		reply_proto_err(c, req->id, &err);
		job_spec_free(spec);
		return;
	}
	if (submit_check_room(td, c, req, pa->count) == -1) {
		job_spec_free(spec);
		return;
	}
	/* All its jobs read the array's one copy of the input. */
	if (submit_store_input(td, jobs_next_id(td->jobs), spec, &cause) == -1) {
		reply_err(c, req->id, TASKD_ERR_STORAGE, cause);
		free(cause);
		job_spec_free(spec);
		return;
	}
	a = jobs_array_new(td->jobs, spec, server_client_uid(c), server_client_gid(c), now,
			   pa->count, pa->start, pa->step, pa->max);
	ps = pending_submit_new(td, c, req, 0);
	ps->first = a->id;
	ps->count = a->count;
	for (k = 0; k < a->count; k++) {
		j = jobs_add_member(td->jobs, a, k);
		life_prepare(td->life, j);
		/* All alike (one spec, one time): the state its record gives jobs without a row. */
		if (k == 0)
			a->first_state = j->state;
	}
	STATS_ADD(jobs_submitted, a->count);
	persist_array(td->persist, a);
	ps->answer = json_pack("{s:I,s:I,s:I,s:I,s:I}", "id", (json_int_t)a->id, "array",
			       (json_int_t)a->id, "first", (json_int_t)a->id, "last",
			       (json_int_t)(a->id + a->count - 1), "count", (json_int_t)a->count);
	log_debug("array %llu of %llu jobs submitted by uid %u", (unsigned long long)a->id,
		  (unsigned long long)a->count, (unsigned)a->uid);
	persist_after_commit(td->persist, submit_committed, ps);
}

/*
 * "local": true keeps the jobs on this node (cluster mode, doc/cluster.md);
 * a single node keeps every job, so it takes it and changes nothing.
 */
bool
submit_local(struct request *req)
{
	return json_is_true(json_object_get(req->root, "local"));
}

static bool
batch_has_job_fields(json_t *req)
{
	const char *key;
	json_t *v;

	json_object_foreach(req, key, v) {
		if (proto_job_field(key))
			return true;
	}
	return false;
}

static void
op_submit(struct taskd *td, struct client *c, struct request *req)
{
	struct proto_job_opts opts = submit_job_opts(td, c);
	struct proto_error err = { 0 };
	struct proto_array pa;
	struct job_spec spec;
	json_t *batch = json_object_get(req->root, "jobs");
	json_t *wait = json_object_get(req->root, "wait");
	json_t *local = json_object_get(req->root, "local");
	struct pending_submit *ps;
	struct job_spec *one;
	struct conn *cs;
	uint64_t holder;
	bool harray, committed;
	char *cause = NULL;
	int array;

	if (wait != NULL && !json_is_boolean(wait)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"wait\" must be true or false");
		return;
	}
	if (local != NULL && !json_is_boolean(local)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"local\" must be true or false");
		return;
	}
	if (batch != NULL && wait != NULL) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "\"wait\" is for a single-job submit: send `wait` requests for the "
			  "ids of a batch");
		return;
	}
	if (batch != NULL) {
		if (batch_has_job_fields(req->root)) {
			reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
				  "a batch submit takes only \"jobs\": put job fields inside "
				  "each job");
			return;
		}
		if (!json_is_array(batch)) {
			reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"jobs\" must be an array");
			return;
		}
		submit_batch(td, c, req, batch);
		return;
	}
	if ((array = proto_array_decode(req->root, &pa, &err)) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (array == 0 && td->cluster != NULL) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "\"array\" is not available in cluster mode (doc/cluster.md)");
		return;
	}
	if (array == 0 && wait != NULL) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "\"wait\" is for a single job: wait for an array with `wait` and "
			  "\"array\"");
		return;
	}
	cs = conn_of(c);
	if (json_is_true(wait) && cs->nwaits >= OPS_MAX_WAITS) {
		reply_too_many_waits(c, req);
		return;
	}
	if (proto_job_decode(req->root, &opts, &spec, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (submit_check_job(td, server_client_uid(c), server_client_gid(c), &spec, &err) == -1) {
		job_spec_free(&spec);
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (submit_holder_of(td, server_client_uid(c), spec.unique, &holder, &harray, &committed)) {
		job_spec_free(&spec);
		if (persist_storage_error(td->persist) != NULL)
			reply_err(c, req->id, TASKD_ERR_STORAGE, persist_storage_error(td->persist));
		else
			answer_holder(td, c, req, holder, harray, committed,
				      json_is_true(wait) && !harray);
		return;
	}
	/* An array's jobs share its one description: it is counted once. */
	if (quota_check_submit(td->cfg, td->jobs, server_client_uid(c), job_spec_bytes(&spec),
			       &err) == -1) {
		job_spec_free(&spec);
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (array == 0) {
		submit_array(td, c, req, &spec, &pa);
		return;
	}
	if (submit_check_room(td, c, req, 1) == -1) {
		job_spec_free(&spec);
		return;
	}
	if (td->cluster != NULL) {
		one = xcalloc(1, sizeof *one);
		*one = spec;
		cluster_submit(td->cluster, c, req->id, one, 1, false, json_is_true(wait),
			       submit_local(req));
		return;
	}
	if (submit_store_input(td, jobs_next_id(td->jobs), &spec, &cause) == -1) {
		reply_err(c, req->id, TASKD_ERR_STORAGE, cause);
		free(cause);
		job_spec_free(&spec);
		return;
	}
	ps = pending_submit_new(td, c, req, 1);
	if (json_is_true(wait)) {
		ps->wait = true;
		cs->nwaits++; /* reserved now: the answer will wait like a `wait` request */
	}
	ps->ids[0] = submit_add_job(td, &spec, server_client_uid(c), server_client_gid(c),
				    now_unix())->id;
	persist_after_commit(td->persist, submit_committed, ps);
}

void
op_submit_closed(struct conn *cs)
{
	struct pending_submit *ps;

	/* Its jobs are still stored and run; only the answer has nowhere to go. */
	while ((ps = TAILQ_FIRST(&cs->submits)) != NULL) {
		TAILQ_REMOVE(&cs->submits, ps, entry);
		ps->client = NULL;
	}
}

