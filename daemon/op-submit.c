/*
 * submit (doc/protocol.md "submit"): one job, or a batch, all or nothing.
 * A submit is answered once its jobs are stored (persist.c's group
 * commit); only then are they queued, and seen by other requests.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include <grp.h>
#include <pwd.h>

#include "admission.h"
#include "cluster.h"
#include "hconfig.h"
#include "jobtype.h"
#include "life.h"
#include "log.h"
#include "ops.h"
#include "persist.h"
#include "quota.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

static op_fn op_submit;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_submit_entry = {
	.name = TASKD_OP_SUBMIT,
	.fn = op_submit,
	.flags = OP_JOB_FIELDS,
	.fields = { "wait", "jobs", "local" },
};

/*
 * A submit waiting for its jobs to be on disk (persist.c's group commit):
 * answered, and its jobs queued, from submit_committed.
 */
struct pending_submit {
	struct taskd *td;
	struct client *client;  /* NULL once the client is gone */
	json_t *id;
	bool batch;
	bool wait;              /* "wait": true — answered when the job ends (a wait slot is reserved) */
	size_t n;
	TAILQ_ENTRY(pending_submit) entry;
	uint64_t ids[];
};

static int
check_room(struct taskd *td, struct client *c, struct request *req, size_t n)
{
	char msg[128];
	/* Queued jobs include those whose submit is still being committed. */
	size_t pending = jobs_pending(td->jobs);

	if (persist_storage_error(td->persist) != NULL) {
		reply_err(c, req->id, TASKD_ERR_STORAGE, persist_storage_error(td->persist));
		return -1;
	}
	if (pending + n > (size_t)td->cfg->queue.max_pending) {
		snprintf(msg, sizeof msg, "queue full: %zu pending, queue.max_pending is %d", pending,
			 td->cfg->queue.max_pending);
		reply_err(c, req->id, TASKD_ERR_QUEUE_FULL, msg);
		return -1;
	}
	pending = jobs_queued_by(td->jobs, server_client_uid(c));
	if (pending + n > (size_t)td->cfg->queue.max_pending_per_user) {
		snprintf(msg, sizeof msg,
			 "queue full for uid %u: %zu pending, queue.max_pending_per_user is %d",
			 (unsigned)server_client_uid(c), pending,
			 td->cfg->queue.max_pending_per_user);
		reply_err(c, req->id, TASKD_ERR_QUEUE_FULL, msg);
		return -1;
	}
	return 0;
}

/* Every dependency must be a job the caller may see (else: as if unknown). */
static int
check_deps(struct taskd *td, struct client *c, const struct job_spec *spec,
	   struct proto_error *err)
{
	const struct job_dep *d;
	struct job *dep;
	size_t i;

	for (i = 0; i < spec->ndeps; i++) {
		d = &spec->deps[i];
		dep = jobs_find(td->jobs, d->id);
		if (d->id >= jobs_next_id(td->jobs)) {
			proto_error_set(err, TASKD_ERR_NOT_FOUND,
					"%s: no such job %llu (a job can only depend on jobs "
					"submitted before it, not on itself or its own batch)",
					d->any ? "after_any" : "after", (unsigned long long)d->id);
			return -1;
		}
		if (dep == NULL || !ops_may_see(server_client_uid(c), dep)) {
			proto_error_set(err, TASKD_ERR_NOT_FOUND,
					"%s: no such job %llu (a dependency must be an existing job "
					"of yours)", d->any ? "after_any" : "after",
					(unsigned long long)d->id);
			return -1;
		}
	}
	return 0;
}

/* A command's limits (with the config's defaults) must be ones taskd can apply here. */
static int
check_limits(struct taskd *td, struct job_spec *spec, struct proto_error *err)
{
	char *why = NULL;

	if (sched_job_limits(td->sched, spec, &why) == 0)
		return 0;
	proto_error_set(err, TASKD_ERR_UNSUPPORTED, "%s", why);
	free(why);
	return -1;
}

/*
 * A handler with users/groups lists serves only those (and root and
 * taskd's own user). The submitter's supplementary groups are looked up
 * only when its uid and primary group are not enough.
 */
static int
check_handler(struct taskd *td, struct client *c, const struct job_spec *spec,
	      struct proto_error *err)
{
	const struct handler_config *h;
	uid_t uid = server_client_uid(c);
	gid_t gid = server_client_gid(c), groups[256];
	int n = (int)(sizeof groups / sizeof groups[0]);
	struct passwd *pw;

	if (spec->type != JOBTYPE_HANDLER || (h = config_handler(td->cfg, spec->handler)) == NULL)
		return 0;
	if (handler_allows(h, uid, gid, NULL, 0))
		return 0;
	if (h->ngroups > 0 && (pw = getpwuid(uid)) != NULL &&
	    getgrouplist(pw->pw_name, gid, groups, &n) != -1 &&
	    handler_allows(h, uid, gid, groups, (size_t)n))
		return 0;
	proto_error_set(err, TASKD_ERR_FORBIDDEN, "handler %s does not serve uid %u "
			"(its users and groups lists)", h->name, (unsigned)uid);
	return -1;
}

/*
 * What a decoded job may ask for, as this caller: its priority, its
 * dependencies, its handler, its limits (the config's defaults filled in);
 * and its job object must fit in an answer (limits.max_frame, with the
 * longest id a request may have).
 */
static int
check_job(struct taskd *td, struct client *c, struct job_spec *spec, struct proto_error *err)
{
	size_t shown = job_spec_shown_bytes(spec);
	size_t room = td->cfg->limits.max_frame - TASKD_MAX_ID - 64;

	if (shown > room) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "job too large: its job object would "
				"take %zu bytes, more than limits.max_frame (%zu) leaves for one: "
				"shorten its argv, cwd, name or labels", shown,
				(size_t)td->cfg->limits.max_frame);
		return -1;
	}
	if (ops_check_priority(server_client_uid(c), spec->priority, err) == -1)
		return -1;
	if (check_deps(td, c, spec, err) == -1 || check_handler(td, c, spec, err) == -1)
		return -1;
	return check_limits(td, spec, err);
}

/*
 * Look at a job's cwd at submit only with the submitter's own rights: a
 * root daemon does not stat paths for other users (it would tell them what
 * exists where they may not look, and a hung network mount would stall the
 * loop for them); their runs check cwd as them and fail with the reason.
 * Root's and the daemon's own user's rights are the daemon's.
 */
static bool
check_cwd(struct client *c)
{
	return privileged_uid(server_client_uid(c));
}

static struct job *
add_job(struct taskd *td, struct client *c, struct job_spec *spec, double now)
{
	struct job *j = jobs_add(td->jobs, spec, server_client_uid(c), server_client_gid(c), now);

	life_prepare(td->life, j);
	STATS_INC(jobs_submitted);
	log_debug("job %llu submitted by uid %u", (unsigned long long)j->id, (unsigned)j->uid);
	return j;
}

static struct pending_submit *
pending_submit_new(struct taskd *td, struct client *c, struct request *req, size_t n, bool batch)
{
	struct pending_submit *ps = xcalloc(1, sizeof *ps + n * sizeof ps->ids[0]);
	struct conn *cs = conn_of(c);

	ps->td = td;
	ps->client = c;
	ps->id = json_incref(req->id);
	ps->batch = batch;
	ps->n = n;
	TAILQ_INSERT_TAIL(&cs->submits, ps, entry);
	server_client_hold(c);
	return ps;
}

/* The jobs of a submit are on disk (ok) or could not be stored (then they are dropped). */
static void
submit_committed(bool ok, const char *cause, void *arg)
{
	struct pending_submit *ps = arg;
	struct taskd *td = ps->td;
	struct client *c = ps->client;
	json_t *ids = json_array();
	struct job *j;
	size_t i;

	for (i = 0; i < ps->n; i++) {
		if ((j = jobs_find(td->jobs, ps->ids[i])) == NULL)
			continue;
		if (ok) {
			json_array_append_new(ids, json_integer((json_int_t)ps->ids[i]));
			jobs_announce(td->jobs, j);
		} else {
			life_forget(td->life, j);
			jobs_discard(td->jobs, j);
		}
	}
	if (c != NULL) {
		TAILQ_REMOVE(&((struct conn *)server_client_data(c))->submits, ps, entry);
		if (!ok)
			reply_err(c, ps->id, TASKD_ERR_STORAGE, cause);
		else if (ps->batch)
			reply_ok(c, ps->id, json_pack("{s:O}", "ids", ids));
		else if (!ps->wait)
			reply_ok(c, ps->id, json_pack("{s:O}", "id", json_array_get(ids, 0)));
		if (ps->wait && !ok)
			((struct conn *)server_client_data(c))->nwaits--; /* the reserved slot */
	}
	/*
	 * "wait": parked on the job before it is admitted, so that a job which
	 * ends at once (a failed dependency, a shutdown) answers it before it
	 * can be pruned.
	 */
	if (c != NULL && ok && ps->wait && (j = jobs_find(td->jobs, ps->ids[0])) != NULL)
		wait_attach(td, c, ps->id, j);
	/* Answered first: a job may finish (and be pruned) as soon as it is queued. */
	/* All of a batch is queued before any starts: priorities hold within it. */
	for (i = 0; ok && i < ps->n; i++) {
		if ((j = jobs_find(td->jobs, ps->ids[i])) == NULL || j->admitted)
			continue;
		/* Queued, or waiting for its dependencies or its time (life.c). */
		life_admit(td->life, j);
		/* Acknowledged just as a shutdown began: stopped with the rest. */
		if (td->stopping && !td->draining && j->state == JOB_QUEUED)
			sched_cancel(td->sched, j, "taskd shut down");
	}
	if (c != NULL)
		server_client_release(c);
	if (ok)
		sched_dispatch(td->sched);
	json_decref(ids);
	json_decref(ps->id);
	free(ps);
}

/*
 * "local": true keeps the jobs on this node (cluster mode, doc/cluster.md);
 * a single node keeps every job, so it takes it and changes nothing.
 */
static bool
submit_local(struct request *req)
{
	return json_is_true(json_object_get(req->root, "local"));
}

static void
submit_batch(struct taskd *td, struct client *c, struct request *req, json_t *arr)
{
	struct proto_error err = { 0 };
	struct job_spec *specs;
	size_t i, n = json_array_size(arr);
	struct pending_submit *ps;
	double now = now_unix();
	uint64_t bytes = 0;
	char *msg;

	if (n == 0 || n > TASKD_MAX_BATCH) {
		proto_error_set(&err, TASKD_ERR_BAD_REQUEST,
				"\"jobs\" must hold 1 to %d jobs", TASKD_MAX_BATCH);
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (check_room(td, c, req, n) == -1)
		return;
	/* All or nothing: decode every job before queueing any. */
	specs = xcalloc(n, sizeof *specs);
	for (i = 0; i < n; i++) {
		if (proto_batch_job_decode(json_array_get(arr, i), td->cfg->jobs.default_timeout,
					   check_cwd(c), &specs[i], &err) == 0 &&
		    check_job(td, c, &specs[i], &err) == 0)
			continue;
		msg = err.message;
		err.message = NULL;
		proto_error_set(&err, err.code, "jobs[%zu]: %s", i, msg);
		free(msg);
		reply_proto_err(c, req->id, &err);
		/* Specs not decoded (or freed on failure) are zeroed: freeing all is safe. */
		for (i = 0; i < n; i++)
			job_spec_free(&specs[i]);
		free(specs);
		return;
	}
	for (i = 0; i < n; i++)
		bytes += job_spec_bytes(&specs[i]);
	if (quota_check_submit(td->cfg, td->jobs, server_client_uid(c), bytes, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		for (i = 0; i < n; i++)
			job_spec_free(&specs[i]);
		free(specs);
		return;
	}
	if (td->cluster != NULL) {
		cluster_submit(td->cluster, c, req->id, specs, n, true, false, submit_local(req));
		return;
	}
	ps = pending_submit_new(td, c, req, n, true);
	for (i = 0; i < n; i++)
		ps->ids[i] = add_job(td, c, &specs[i], now)->id;
	free(specs);
	persist_after_commit(td->persist, submit_committed, ps);
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
	struct proto_error err = { 0 };
	struct job_spec spec;
	json_t *batch = json_object_get(req->root, "jobs");
	json_t *wait = json_object_get(req->root, "wait");
	json_t *local = json_object_get(req->root, "local");
	struct pending_submit *ps;
	struct job_spec *one;
	struct conn *cs;

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
	if (check_room(td, c, req, 1) == -1)
		return;
	cs = conn_of(c);
	if (json_is_true(wait) && cs->nwaits >= OPS_MAX_WAITS) {
		reply_too_many_waits(c, req);
		return;
	}
	if (proto_job_decode(req->root, td->cfg->jobs.default_timeout, check_cwd(c), &spec,
			     &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (check_job(td, c, &spec, &err) == -1 ||
	    quota_check_submit(td->cfg, td->jobs, server_client_uid(c), job_spec_bytes(&spec),
			       &err) == -1) {
		job_spec_free(&spec);
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (td->cluster != NULL) {
		one = xcalloc(1, sizeof *one);
		*one = spec;
		cluster_submit(td->cluster, c, req->id, one, 1, false, json_is_true(wait),
			       submit_local(req));
		return;
	}
	ps = pending_submit_new(td, c, req, 1, false);
	if (json_is_true(wait)) {
		ps->wait = true;
		cs->nwaits++; /* reserved now: the answer will wait like a `wait` request */
	}
	ps->ids[0] = add_job(td, c, &spec, now_unix())->id;
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
