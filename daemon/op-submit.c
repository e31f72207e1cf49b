/*
 * submit (doc/protocol.md "submit"): one job, a batch (all or nothing), or
 * an array (one job per index, in one request); and restart, which submits
 * finished jobs again. A submit is answered once its jobs are stored
 * (persist.c's group commit); only then are they queued, and seen by other
 * requests. A unique key (--unique) held by a pending or running job of
 * the same user answers with that job instead of making a new one.
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
#include "output.h"
#include "persist.h"
#include "ppool.h"
#include "quota.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

/* An array's jobs times its dependencies: each job has its own copy of them. */
#define SUBMIT_MAX_ARRAY_DEPS 1000000

static op_fn op_submit;
static op_fn op_restart;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_submit_entry = {
	.name = TASKD_OP_SUBMIT,
	.fn = op_submit,
	.flags = OP_JOB_FIELDS,
	.fields = { "wait", "jobs", "local" },
};

/* Like submit: refused once a shutdown began. */
const struct op op_restart_entry = {
	.name = TASKD_OP_RESTART,
	.fn = op_restart,
	.flags = OP_JOB_OR,
	.select = FILTER_STATE | FILTER_STATES | FILTER_LABELS | FILTER_NAME | FILTER_IDS |
		  FILTER_ARRAY,
};

/*
 * A submit waiting for its jobs to be on disk (persist.c's group commit):
 * answered, and its jobs queued, from submit_committed. Its new jobs are
 * ids[0..n) and an array's first .. first + count - 1.
 */
struct pending_submit {
	struct taskd *td;
	struct client *client;  /* NULL once the client is gone */
	json_t *id;
	json_t *answer;         /* the result, or NULL: {"id": ids[0]} */
	bool wait;              /* "wait": true — answered when the job ends (a wait slot is reserved) */
	uint64_t holder;        /* a unique key's holder it answers with (must be stored), or 0 */
	bool holder_array;
	uint64_t first, count;  /* an array's jobs */
	size_t n;
	TAILQ_ENTRY(pending_submit) entry;
	uint64_t ids[];
};

static struct proto_job_opts
job_opts(struct taskd *td, struct client *c)
{
	/*
	 * cwd is checked at submit only with the submitter's own rights: a root
	 * daemon does not stat paths for other users (it would tell them what
	 * exists where they may not look, and a hung network mount would stall
	 * the loop for them); their runs check cwd as them and fail with the
	 * reason. Root's and the daemon's own user's rights are the daemon's.
	 */
	struct proto_job_opts o = {
		.default_timeout = td->cfg->jobs.default_timeout,
		.check_cwd = privileged_uid(server_client_uid(c)),
		.max_input = td->cfg->limits.max_input,
	};

	return o;
}

static int
check_room(struct taskd *td, struct client *c, struct request *req, uint64_t n)
{
	char msg[160];
	/* Queued jobs include those whose submit is still being committed. */
	size_t pending = jobs_pending(td->jobs);

	if (persist_storage_error(td->persist) != NULL) {
		reply_err(c, req->id, TASKD_ERR_STORAGE, persist_storage_error(td->persist));
		return -1;
	}
	if (pending + n > (size_t)td->cfg->queue.max_pending) {
		snprintf(msg, sizeof msg, "queue full: %zu pending, %llu more asked, "
			 "queue.max_pending is %d", pending, (unsigned long long)n,
			 td->cfg->queue.max_pending);
		reply_err(c, req->id, TASKD_ERR_QUEUE_FULL, msg);
		return -1;
	}
	pending = jobs_queued_by(td->jobs, server_client_uid(c));
	if (pending + n > (size_t)td->cfg->queue.max_pending_per_user) {
		snprintf(msg, sizeof msg,
			 "queue full for uid %u: %zu pending, %llu more asked, "
			 "queue.max_pending_per_user is %d",
			 (unsigned)server_client_uid(c), pending, (unsigned long long)n,
			 td->cfg->queue.max_pending_per_user);
		reply_err(c, req->id, TASKD_ERR_QUEUE_FULL, msg);
		return -1;
	}
	return 0;
}

/* Every dependency must be a job the caller may see (else: as if unknown). */
static int
check_deps(struct taskd *td, uid_t uid, const struct job_spec *spec, struct proto_error *err)
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
		if (dep == NULL || !ops_may_see(uid, dep)) {
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
check_handler(struct taskd *td, uid_t uid, gid_t gid, const struct job_spec *spec,
	      struct proto_error *err)
{
	const struct handler_config *h;
	gid_t groups[256];
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

/* "queue" names one of the configuration, "slots" fit in the process pool. */
static int
check_workflow(struct taskd *td, const struct job_spec *spec, struct proto_error *err)
{
	int pool = td->ppool != NULL ? ppool_max_workers(td->ppool) : 1;
	char names[512];
	size_t i, off = 0;

	/*
	 * Cluster mode: a job may run on any node, and these hold only on one
	 * (a key is checked in this node's table, a queue is this node's
	 * configuration, the input is in this node's input file): refused, not
	 * half kept (doc/cluster.md).
	 */
	if (td->cluster != NULL && (spec->unique != NULL || spec->queue != NULL ||
				    spec->slots > 1 || spec->input_bytes > 0)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"%s\" is not available in cluster mode (doc/cluster.md)",
				spec->unique != NULL ? "unique" : spec->queue != NULL ? "queue"
				: spec->slots > 1 ? "slots" : "input");
		return -1;
	}
	if (spec->queue != NULL && config_queue(td->cfg, spec->queue) == NULL) {
		names[0] = '\0';
		for (i = 0; i < td->cfg->nqueues && off < sizeof names; i++)
			off += (size_t)snprintf(names + off, sizeof names - off, "%s%s",
						i > 0 ? ", " : "", td->cfg->queues[i].name);
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "no queue \"%s\" (%s%s)", spec->queue,
				td->cfg->nqueues > 0 ? "queues: " : "no queues are configured",
				names);
		return -1;
	}
	if (spec->slots > pool) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"slots\": %d cpu slots asked, the process pool has %d "
				"(process_pool.max_workers)", spec->slots, pool);
		return -1;
	}
	return 0;
}

/*
 * What a decoded job may ask for, as uid (gid) who will own it: its
 * priority, its dependencies, its handler, its queue and slots, its limits
 * (the config's defaults filled in); and its job object must fit in an
 * answer (limits.max_frame, with the longest id a request may have).
 */
static int
check_job(struct taskd *td, uid_t uid, gid_t gid, struct job_spec *spec,
	  struct proto_error *err)
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
	if (ops_check_priority(uid, spec->priority, err) == -1)
		return -1;
	if (check_deps(td, uid, spec, err) == -1)
		return -1;
	if (check_handler(td, uid, gid, spec, err) == -1 || check_workflow(td, spec, err) == -1)
		return -1;
	return check_limits(td, spec, err);
}

/*
 * The job, or array, holding key for uid now: 1 and its id (*array: an
 * array's), 0 if none holds it.
 */
static int
holder_of(struct taskd *td, uid_t uid, const char *key, uint64_t *id, bool *array,
	  bool *committed)
{
	if (key == NULL)
		return 0;
	return jobs_unique(td->jobs, uid, key, id, array, committed) == 0;
}

static void
holder_answer(json_t *o, uint64_t id, bool array)
{
	json_object_set_new(o, "id", json_integer((json_int_t)id));
	if (array)
		json_object_set_new(o, "array", json_integer((json_int_t)id));
	json_object_set_new(o, "existing", json_true());
}

/* The jobs' inputs, at the ids they will get: stored before their submit is (output.h). */
static int
store_input(struct taskd *td, uint64_t id, struct job_spec *spec, char **cause)
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

static struct job *
add_job(struct taskd *td, struct job_spec *spec, uid_t uid, gid_t gid, double now)
{
	struct job *j = jobs_add(td->jobs, spec, uid, gid, now);

	life_prepare(td->life, j);
	STATS_INC(jobs_submitted);
	log_debug("job %llu submitted by uid %u", (unsigned long long)j->id, (unsigned)j->uid);
	return j;
}

static struct pending_submit *
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
static void
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

	holder_answer(answer, id, array);
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
	if (check_room(td, c, req, pa->count) == -1) {
		job_spec_free(spec);
		return;
	}
	/* All its jobs read the array's one copy of the input. */
	if (store_input(td, jobs_next_id(td->jobs), spec, &cause) == -1) {
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

/* ---- a batch ---- */

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
		if (holder_of(td, uid, specs[i].unique, &keys[i].holder, &keys[i].holder_array,
			      &keys[i].committed)) {
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
	struct proto_job_opts opts = job_opts(td, c);
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
			 check_job(td, uid, server_client_gid(c), &specs[i], &err) == 0)
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
	if (check_room(td, c, req, made) == -1) {
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
		if (store_input(td, next + m, &specs[i], &cause) == -1) {
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
			made_id[i] = ps->ids[m++] = add_job(td, &specs[i], uid, server_client_gid(c),
							    now)->id;
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
	struct proto_job_opts opts = job_opts(td, c);
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
	if (check_job(td, server_client_uid(c), server_client_gid(c), &spec, &err) == -1) {
		job_spec_free(&spec);
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (holder_of(td, server_client_uid(c), spec.unique, &holder, &harray, &committed)) {
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
	if (check_room(td, c, req, 1) == -1) {
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
	if (store_input(td, jobs_next_id(td->jobs), &spec, &cause) == -1) {
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
	ps->ids[0] = add_job(td, &spec, server_client_uid(c), server_client_gid(c),
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

/* ---- restart ---- */

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
		if (check_job(td, old->uid, old->gid, &specs[i], &err) == 0)
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
		if (holder_of(td, v[i]->uid, specs[i].unique, &holder, &harray, &committed)) {
			existing[i] = true;
			holder_answer(o, holder, harray);
		} else {
			for (m = 0; specs[i].unique != NULL && m < i; m++)
				if (!existing[m] && v[m]->uid == v[i]->uid && specs[m].unique != NULL &&
				    strcmp(specs[m].unique, specs[i].unique) == 0)
					break;
			existing[i] = specs[i].unique != NULL && m < i;
			if (existing[i])
				holder_answer(o, json_integer_value(json_object_get(
						      json_array_get(jobs, m), "id")), false);
			else
				json_object_set_new(o, "id", json_integer((json_int_t)(next + made++)));
		}
		json_array_append_new(jobs, o);
	}
	if (restart_quota(td, v, specs, existing, n, &err) == -1)
		goto fail;
	if (check_room(td, c, req, made) == -1)
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
		j = add_job(td, &specs[i], v[i]->uid, v[i]->gid, now);
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
