#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "ctl.h"
#include "events.h"
#include "filter.h"
#include "job.h"
#include "life.h"
#include "log.h"
#include "persist.h"
#include "proto.h"
#include "sched.h"
#include "sd.h"
#include "server.h"
#include "stats.h"
#include "store.h"
#include "tpool.h"
#include "xmalloc.h"

#define LOGS_CHUNK_DEFAULT (256u << 10)
#define LOGS_CHUNK_MAX (1u << 20)
#define LIST_LIMIT_DEFAULT 100
#define CTL_MAX_WAITS 1024 /* per connection: each parked wait costs memory, answers come in bursts */

/* A `wait` request parked on a job until it finishes. */
struct pending {
	struct job_waiter waiter;
	struct taskd *td;
	struct client *client;
	struct job *job;
	json_t *id;
	TAILQ_ENTRY(pending) entry;
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

/* A `wait` by selector (labels, name): answered once all its jobs are final. */
struct pending_group {
	struct client *client;
	json_t *id;
	json_t *jobs;       /* job objects in id order; null until that job is final */
	size_t left;        /* jobs not final yet */
	size_t n;
	TAILQ_ENTRY(pending_group) entry;
	struct group_waiter {
		struct job_waiter waiter;
		struct pending_group *group;
		struct job *job; /* NULL once final */
		size_t slot;
	} w[];
};

struct cstate {
	TAILQ_HEAD(, pending) waits;
	TAILQ_HEAD(, pending_submit) submits;
	TAILQ_HEAD(, pending_group) groups;
	int nwaits;
	struct subscriber *sub;  /* after subscribe */
};

typedef void op_fn(struct taskd *, struct client *, struct request *);

/* ---- replies ---- */

static void
reply_ok(struct client *c, json_t *id, json_t *result)
{
	size_t len;
	char *line = proto_ok(id, result, &len);

	server_client_send(c, line, len);
	free(line);
}

static void
reply_err(struct client *c, json_t *id, const char *code, const char *message)
{
	size_t len;
	char *line = proto_fail(id, code, message, &len);

	STATS_INC(request_errors);
	server_client_send(c, line, len);
	free(line);
}

static void
reply_proto_err(struct client *c, json_t *id, struct proto_error *err)
{
	reply_err(c, id, err->code, err->message != NULL ? err->message : "error");
	proto_error_clear(err);
}

static bool
may_access(struct client *c, const struct job *j)
{
	uid_t uid = server_client_uid(c);

	return uid == 0 || uid == getuid() || uid == j->uid;
}

/* The job named by "job", or NULL after replying not_found/forbidden/bad_request. */
static struct job *
lookup(struct taskd *td, struct client *c, struct request *req)
{
	struct proto_error err = { 0 };
	char msg[64];
	uint64_t id;
	struct job *j;

	if (proto_job_id(req->root, &id, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return NULL;
	}
	j = jobs_find(td->jobs, id);
	/* Not announced: its submit is not stored yet (and may still fail: then it never was). */
	if (j == NULL || !j->announced) {
		snprintf(msg, sizeof msg, "no such job %llu", (unsigned long long)id);
		reply_err(c, req->id, TASKD_ERR_NOT_FOUND, msg);
		return NULL;
	}
	if (!may_access(c, j)) {
		snprintf(msg, sizeof msg, "job %llu belongs to another user", (unsigned long long)id);
		reply_err(c, req->id, TASKD_ERR_FORBIDDEN, msg);
		return NULL;
	}
	return j;
}

/* ---- submit ---- */

static int
check_room(struct taskd *td, struct client *c, struct request *req, size_t n)
{
	char msg[128];
	/* Queued jobs include those whose submit is still being committed. */
	size_t pending = jobs_pending(td->jobs);

	if (td->stopping) {
		reply_err(c, req->id, TASKD_ERR_SHUTTING_DOWN, "taskd is shutting down");
		return -1;
	}
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
		if (dep == NULL || !may_access(c, dep)) {
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
 * Look at a job's cwd at submit only with the submitter's own rights: a
 * root daemon does not stat paths for other users (it would tell them what
 * exists where they may not look, and a hung network mount would stall the
 * loop for them); their runs check cwd as them and fail with the reason.
 */
static bool
check_cwd(struct client *c)
{
	uid_t uid = server_client_uid(c);

	return uid == 0 || uid == geteuid();
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

static struct cstate *client_state(struct client *c);
static void wait_attach(struct taskd *td, struct client *c, json_t *id, struct job *j);
static void reply_too_many_waits(struct client *c, struct request *req);

static struct pending_submit *
pending_submit_new(struct taskd *td, struct client *c, struct request *req, size_t n, bool batch)
{
	struct pending_submit *ps = xcalloc(1, sizeof *ps + n * sizeof ps->ids[0]);
	struct cstate *cs = client_state(c);

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
		TAILQ_REMOVE(&((struct cstate *)server_client_data(c))->submits, ps, entry);
		if (!ok)
			reply_err(c, ps->id, TASKD_ERR_STORAGE, cause);
		else if (ps->batch)
			reply_ok(c, ps->id, json_pack("{s:O}", "ids", ids));
		else if (!ps->wait)
			reply_ok(c, ps->id, json_pack("{s:O}", "id", json_array_get(ids, 0)));
		if (ps->wait && !ok)
			((struct cstate *)server_client_data(c))->nwaits--; /* the reserved slot */
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

static void
submit_batch(struct taskd *td, struct client *c, struct request *req, json_t *arr)
{
	struct proto_error err = { 0 };
	struct job_spec *specs;
	size_t i, n = json_array_size(arr);
	struct pending_submit *ps;
	double now = now_unix();
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
		    check_deps(td, c, &specs[i], &err) == 0 &&
		    check_limits(td, &specs[i], &err) == 0)
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
		if (strcmp(key, "v") != 0 && strcmp(key, "id") != 0 && strcmp(key, "op") != 0 &&
		    strcmp(key, "jobs") != 0)
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
	struct pending_submit *ps;
	struct cstate *cs;

	if (wait != NULL && !json_is_boolean(wait)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"wait\" must be true or false");
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
	cs = client_state(c);
	if (json_is_true(wait) && cs->nwaits >= CTL_MAX_WAITS) {
		reply_too_many_waits(c, req);
		return;
	}
	if (proto_job_decode(req->root, td->cfg->jobs.default_timeout, check_cwd(c), &spec,
			     &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (check_deps(td, c, &spec, &err) == -1 || check_limits(td, &spec, &err) == -1) {
		job_spec_free(&spec);
		reply_proto_err(c, req->id, &err);
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

/* ---- status, list, show ---- */

static json_t *
status_jobs(struct taskd *td)
{
	json_t *o = json_object();
	int st;

	for (st = 0; st < JOB_NSTATES; st++)
		json_object_set_new(o, job_state_name(st),
				    json_integer((json_int_t)jobs_count(td->jobs, st)));
	return o;
}

static json_t *
process_pool_json(struct taskd *td)
{
	struct ppool_config pc;

	if (td->ppool != NULL)
		return ppool_to_json(td->ppool);
	pc = ctl_ppool_config(td->cfg);
	return json_pack("{s:s,s:i,s:i,s:[]}", "mode", config_mode_name(pc.mode), "min",
			 pc.min_workers, "max", pc.max_workers, "workers");
}

static json_t *paused_json(struct taskd *td);

static void
op_status(struct taskd *td, struct client *c, struct request *req)
{
	struct tpool_stats ts;
	json_t *r;

	tpool_stats(td->tpool, &ts);
	r = json_pack("{s:s,s:i,s:f,s:o,s:{s:I,s:I,s:I},s:o,"
		      "s:{s:i,s:i,s:i,s:i,s:i,s:I},s:o,s:o,s:s,s:s,s:b}",
		      "version", TASKD_VERSION, "pid", (int)getpid(),
		      "uptime", now_unix() - td->started_at,
		      "jobs", status_jobs(td),
		      "queue", "pending", (json_int_t)sched_pending(td->sched),
		      "cpu", (json_int_t)sched_pending_class(td->sched, CLASS_CPU),
		      "io", (json_int_t)sched_pending_class(td->sched, CLASS_IO),
		      "process_pool", process_pool_json(td),
		      "thread_pool", "threads", ts.threads, "busy", ts.busy, "idle", ts.idle,
		      "max", ts.max, "queued", ts.queued, "completed", (json_int_t)ts.completed,
		      "router", sched_router_json(td->sched),
		      "counters", stats_to_json(),
		      "socket", td->socket_path, "state_dir", td->state_dir,
		      "stopping", td->stopping);
	json_object_set_new(r, "paused", paused_json(td));
	json_object_set_new(r, "resources", sched_resources_json(td->sched));
	json_object_set_new(r, "subscribers",
			    json_integer((json_int_t)events_subscribers(td->events)));
	json_object_set_new(r, "storage_error", persist_storage_error(td->persist) != NULL
			    ? json_string(persist_storage_error(td->persist)) : json_null());
	reply_ok(c, req->id, r);
}

static void
op_list(struct taskd *td, struct client *c, struct request *req)
{
	json_t *limit = json_object_get(req->root, "limit");
	json_int_t max = LIST_LIMIT_DEFAULT, n = 0;
	struct proto_error err = { 0 };
	double now = now_unix();
	struct filter f;
	json_t *arr;
	struct job *j, *first;

	if (limit != NULL && (!json_is_integer(limit) || json_integer_value(limit) < 0)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "\"limit\" must be an integer >= 0 (0 = all)");
		return;
	}
	if (limit != NULL)
		max = json_integer_value(limit);
	if (filter_decode(req->root, FILTER_STATE | FILTER_LABELS | FILTER_NAME | FILTER_IDS, &f,
			  &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	/* Most recent `max` matching jobs, in id order: find the first, then walk forward. */
	first = NULL;
	for (j = jobs_last(td->jobs); j != NULL && (max == 0 || n < max);
	     j = TAILQ_PREV(j, job_list, all)) {
		if (!j->announced || !filter_match(&f, j, now) || !may_access(c, j))
			continue;
		first = j;
		n++;
	}
	arr = json_array();
	for (j = first; j != NULL; j = TAILQ_NEXT(j, all)) {
		if (!j->announced || !filter_match(&f, j, now) || !may_access(c, j))
			continue;
		json_array_append_new(arr, job_to_json(j));
	}
	filter_free(&f);
	reply_ok(c, req->id, json_pack("{s:o}", "jobs", arr));
}

static void
op_show(struct taskd *td, struct client *c, struct request *req)
{
	struct job *j = lookup(td, c, req);

	if (j != NULL)
		reply_ok(c, req->id, job_to_json(j));
}

/* ---- wait ---- */

static void
pending_free(struct client *c, struct pending *p)
{
	struct cstate *cs = server_client_data(c);

	TAILQ_REMOVE(&cs->waits, p, entry);
	cs->nwaits--;
	json_decref(p->id);
	free(p);
}

static void
wait_done(struct job *j, void *arg)
{
	struct pending *p = arg;

	struct client *c = p->client;
	char msg[96];

	if (job_state_final(j->state)) {
		reply_ok(c, p->id, job_to_json(j));
	} else {
		/* Discarded: its submit could not be stored. */
		snprintf(msg, sizeof msg, "no such job %llu (its submit could not be stored)",
			 (unsigned long long)j->id);
		reply_err(c, p->id, TASKD_ERR_NOT_FOUND, msg);
	}
	pending_free(c, p);
	server_client_release(c);
}

static struct cstate *
client_state(struct client *c)
{
	struct cstate *cs = server_client_data(c);

	if (cs == NULL) {
		cs = xcalloc(1, sizeof *cs);
		TAILQ_INIT(&cs->waits);
		TAILQ_INIT(&cs->submits);
		TAILQ_INIT(&cs->groups);
		server_client_set_data(c, cs);
	}
	return cs;
}

static void
reply_too_many_waits(struct client *c, struct request *req)
{
	struct proto_error err = { 0 };

	proto_error_set(&err, TASKD_ERR_TOO_MANY, "%d waits already in flight on this "
			"connection: wait for some answers first", CTL_MAX_WAITS);
	reply_proto_err(c, req->id, &err);
}

/* Park a wait (its slot in nwaits already counted) on j, or answer now if j has ended. */
static void
wait_attach(struct taskd *td, struct client *c, json_t *id, struct job *j)
{
	struct cstate *cs = client_state(c);
	struct pending *p;

	if (job_state_final(j->state)) {
		cs->nwaits--;
		reply_ok(c, id, job_to_json(j));
		return;
	}
	p = xcalloc(1, sizeof *p);
	p->td = td;
	p->client = c;
	p->job = j;
	p->id = json_incref(id);
	p->waiter.cb = wait_done;
	p->waiter.arg = p;
	TAILQ_INSERT_TAIL(&cs->waits, p, entry);
	job_wait(j, &p->waiter);
	server_client_hold(c);
}

static void
group_free(struct client *c, struct pending_group *g)
{
	struct cstate *cs = server_client_data(c);
	size_t i;

	for (i = 0; i < g->n; i++)
		if (g->w[i].job != NULL)
			job_unwait(g->w[i].job, &g->w[i].waiter);
	TAILQ_REMOVE(&cs->groups, g, entry);
	cs->nwaits--;
	json_decref(g->jobs);
	json_decref(g->id);
	free(g);
}

static void
group_job_done(struct job *j, void *arg)
{
	struct group_waiter *w = arg;
	struct pending_group *g = w->group;
	struct client *c = g->client;

	json_array_set_new(g->jobs, w->slot, job_to_json(j));
	w->job = NULL;
	if (--g->left > 0)
		return;
	reply_ok(c, g->id, json_pack("{s:O}", "jobs", g->jobs));
	group_free(c, g);
	server_client_release(c);
}

/* Selectors `wait` takes instead of "job". */
#define WAIT_SELECT (FILTER_LABELS | FILTER_NAME)
#define CANCEL_SELECT (FILTER_LABELS | FILTER_NAME)

/*
 * Jobs the client may see that pass f (in id order), non-final ones only if
 * live. Like lookup, not those whose submit is not stored yet.
 */
static struct job **
select_jobs(struct taskd *td, struct client *c, const struct filter *f, bool live, size_t *n)
{
	double now = now_unix();
	struct job **v = NULL, *j;
	size_t cap = 0;

	*n = 0;
	for (j = jobs_first(td->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		if ((live && job_state_final(j->state)) || !j->announced || !may_access(c, j) ||
		    !filter_match(f, j, now))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[(*n)++] = j;
	}
	return v;
}

/* Decode the selector of a wait/cancel by labels; -1 after replying. */
static int
selector(struct client *c, struct request *req, unsigned allow, struct filter *f)
{
	struct proto_error err = { 0 };

	if (json_object_get(req->root, "job") != NULL) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "give either \"job\" or a selector (\"labels\", \"name\"), not both");
		return -1;
	}
	if (filter_decode(req->root, allow | FILTER_STRICT, f, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return -1;
	}
	return 0;
}

static void
wait_group(struct taskd *td, struct client *c, struct request *req)
{
	struct pending_group *g;
	struct cstate *cs = client_state(c);
	struct job **v;
	struct filter f;
	size_t i, n;

	if (selector(c, req, WAIT_SELECT, &f) == -1)
		return;
	if (cs->nwaits >= CTL_MAX_WAITS) {
		filter_free(&f);
		reply_too_many_waits(c, req);
		return;
	}
	v = select_jobs(td, c, &f, false, &n);
	filter_free(&f);
	g = xcalloc(1, sizeof *g + n * sizeof g->w[0]);
	g->client = c;
	g->id = json_incref(req->id);
	g->jobs = json_array();
	g->n = n;
	for (i = 0; i < n; i++) {
		g->w[i].group = g;
		g->w[i].slot = i;
		if (job_state_final(v[i]->state)) {
			json_array_append_new(g->jobs, job_to_json(v[i]));
			continue;
		}
		json_array_append_new(g->jobs, json_null());
		g->w[i].job = v[i];
		g->w[i].waiter.cb = group_job_done;
		g->w[i].waiter.arg = &g->w[i];
		job_wait(v[i], &g->w[i].waiter);
		g->left++;
	}
	free(v);
	cs->nwaits++;
	TAILQ_INSERT_TAIL(&cs->groups, g, entry);
	if (g->left == 0) {
		reply_ok(c, g->id, json_pack("{s:O}", "jobs", g->jobs));
		group_free(c, g);
		return;
	}
	server_client_hold(c);
}

static bool
has_selector(struct request *req, unsigned allow)
{
	return ((allow & FILTER_LABELS) && json_object_get(req->root, "labels") != NULL) ||
	       ((allow & FILTER_NAME) && json_object_get(req->root, "name") != NULL);
}

static void
op_wait(struct taskd *td, struct client *c, struct request *req)
{
	struct cstate *cs;
	struct job *j;

	if (has_selector(req, WAIT_SELECT)) {
		wait_group(td, c, req);
		return;
	}
	if ((j = lookup(td, c, req)) == NULL)
		return;
	if (job_state_final(j->state)) {
		reply_ok(c, req->id, job_to_json(j));
		return;
	}
	cs = client_state(c);
	if (cs->nwaits >= CTL_MAX_WAITS) {
		reply_too_many_waits(c, req);
		return;
	}
	cs->nwaits++;
	wait_attach(td, c, req->id, j);
}

void
ctl_close_cb(struct client *c, void *arg)
{
	struct taskd *td = arg;
	struct cstate *cs = server_client_data(c);
	struct pending_submit *ps;
	struct pending_group *g;
	struct pending *p;

	if (cs == NULL)
		return;
	while ((p = TAILQ_FIRST(&cs->waits)) != NULL) {
		job_unwait(p->job, &p->waiter);
		pending_free(c, p);
	}
	while ((g = TAILQ_FIRST(&cs->groups)) != NULL)
		group_free(c, g);
	if (cs->sub != NULL)
		events_unsubscribe(td->events, cs->sub);
	/* Its jobs are still stored and run; only the answer has nowhere to go. */
	while ((ps = TAILQ_FIRST(&cs->submits)) != NULL) {
		TAILQ_REMOVE(&cs->submits, ps, entry);
		ps->client = NULL;
	}
	free(cs);
	server_client_set_data(c, NULL);
}

/* ---- cancel ---- */

/* Cancel every matching job not finished yet: {"ids":[...],"cancelling":[running ones]}. */
static void
cancel_selected(struct taskd *td, struct client *c, struct request *req)
{
	json_t *ids = json_array(), *running = json_array();
	struct job **v, *j;
	struct filter f;
	uint64_t *want;
	size_t i, n;

	if (selector(c, req, CANCEL_SELECT, &f) == -1) {
		json_decref(ids);
		json_decref(running);
		return;
	}
	v = select_jobs(td, c, &f, true, &n);
	filter_free(&f);
	/* By id: cancelling a queued job finishes it, and pruning may free others. */
	want = xcalloc(n + 1, sizeof *want);
	for (i = 0; i < n; i++)
		want[i] = v[i]->id;
	free(v);
	for (i = 0; i < n; i++) {
		if ((j = jobs_find(td->jobs, want[i])) == NULL || job_state_final(j->state))
			continue;
		json_array_append_new(ids, json_integer((json_int_t)want[i]));
		if (j->state == JOB_RUNNING)
			json_array_append_new(running, json_integer((json_int_t)want[i]));
		sched_cancel(td->sched, j, "cancelled by request");
	}
	free(want);
	log_debug("cancel by selector: %zu jobs", json_array_size(ids));
	reply_ok(c, req->id, json_pack("{s:o,s:o}", "ids", ids, "cancelling", running));
}

static void
op_cancel(struct taskd *td, struct client *c, struct request *req)
{
	struct job *j;
	json_int_t id;
	char msg[128];
	int rc;

	if (has_selector(req, CANCEL_SELECT)) {
		cancel_selected(td, c, req);
		return;
	}
	if ((j = lookup(td, c, req)) == NULL)
		return;
	id = (json_int_t)j->id;
	if (job_state_final(j->state)) {
		snprintf(msg, sizeof msg, "job %llu already finished: %s",
			 (unsigned long long)j->id, job_state_name(j->state));
		reply_err(c, req->id, TASKD_ERR_INVALID_STATE, msg);
		return;
	}
	/* Answer first: a job not running is finished (and maybe pruned) by the cancel. */
	if (j->state != JOB_RUNNING)
		reply_ok(c, req->id, json_pack("{s:I,s:s}", "id", id, "state", "cancelled"));
	else
		reply_ok(c, req->id, json_pack("{s:I,s:s,s:b}", "id", id, "state", "running",
					       "cancelling", 1));
	rc = sched_cancel(td->sched, j, "cancelled by request");
	log_debug("job %lld cancel requested (%s)", (long long)id, rc == 0 ? "not running" : "running");
}

/* ---- pause, resume, priority ---- */

static bool privileged(struct client *c, struct request *req);

static json_t *
paused_json(struct taskd *td)
{
	return json_pack("{s:b,s:b}", "cpu", sched_paused(td->sched, CLASS_CPU), "io",
			 sched_paused(td->sched, CLASS_IO));
}

/* "class": "cpu"|"io" or absent (CLASS_AUTO: both); -1 after replying. */
static int
pause_class(struct client *c, struct request *req, enum job_class *cls)
{
	json_t *v = json_object_get(req->root, "class");
	int k;

	*cls = CLASS_AUTO;
	if (v == NULL)
		return 0;
	k = json_is_string(v) ? config_class_parse(json_string_value(v)) : -1;
	if (k != CLASS_CPU && k != CLASS_IO) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"class\" must be \"cpu\" or \"io\"");
		return -1;
	}
	*cls = (enum job_class)k;
	return 0;
}

/* pause/resume: of one job ("job") or of dispatching (all, or "class"). */
static void
pause_resume(struct taskd *td, struct client *c, struct request *req, bool pause)
{
	enum job_class cls;
	struct job *j;
	char msg[160];

	/*
	 * A class paused during a drain would hold it forever; a job resumed
	 * during a shutdown without drain would start after the cancels.
	 */
	if (td->stopping) {
		reply_err(c, req->id, TASKD_ERR_SHUTTING_DOWN, "taskd is shutting down");
		return;
	}
	if (json_object_get(req->root, "job") == NULL) {
		if (pause_class(c, req, &cls) == -1 || !privileged(c, req))
			return;
		sched_pause(td->sched, cls, pause);
		/* Stored with the next commit: a restart keeps it. */
		persist_meta_set(td->persist, CTL_META_PAUSED_CPU, sched_paused(td->sched, CLASS_CPU));
		persist_meta_set(td->persist, CTL_META_PAUSED_IO, sched_paused(td->sched, CLASS_IO));
		log_info("%s %s jobs", pause ? "paused starting" : "resumed starting",
			 cls == CLASS_AUTO ? "all" : config_class_name(cls));
		reply_ok(c, req->id, json_pack("{s:o}", "paused", paused_json(td)));
		return;
	}
	if (json_object_get(req->root, "class") != NULL) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "give either \"job\" (one job) or \"class\" (a queue), not both");
		return;
	}
	if ((j = lookup(td, c, req)) == NULL)
		return;
	if (j->state != (pause ? JOB_QUEUED : JOB_PAUSED)) {
		snprintf(msg, sizeof msg, "job %llu is %s: only a %s job can be %s",
			 (unsigned long long)j->id, job_state_name(j->state),
			 pause ? "queued" : "paused", pause ? "paused" : "resumed");
		reply_err(c, req->id, TASKD_ERR_INVALID_STATE, msg);
		return;
	}
	if (pause)
		life_hold(td->life, j);
	else
		life_release(td->life, j);
	reply_ok(c, req->id, json_pack("{s:I,s:s}", "id", (json_int_t)j->id, "state",
				       job_state_name(j->state)));
}

int
ctl_restore_paused(struct taskd *td, char **cause)
{
	static const struct {
		const char *key;
		enum job_class cls;
	} keys[] = { { CTL_META_PAUSED_CPU, CLASS_CPU }, { CTL_META_PAUSED_IO, CLASS_IO } };
	int64_t v;
	size_t i;
	int rc;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		if ((rc = store_meta_get(td->store, keys[i].key, &v, cause)) == -1)
			return -1;
		if (rc == 0 && v != 0) {
			sched_pause(td->sched, keys[i].cls, true);
			log_info("starting %s jobs is paused (taskctl resume --class %s)",
				 config_class_name(keys[i].cls), config_class_name(keys[i].cls));
		}
	}
	return 0;
}

static void
op_pause(struct taskd *td, struct client *c, struct request *req)
{
	pause_resume(td, c, req, true);
}

static void
op_resume(struct taskd *td, struct client *c, struct request *req)
{
	pause_resume(td, c, req, false);
}

static void
op_priority(struct taskd *td, struct client *c, struct request *req)
{
	json_t *v = json_object_get(req->root, "priority");
	struct proto_error err = { 0 };
	struct job *j;
	char msg[160];

	if (v == NULL || !json_is_integer(v) || json_integer_value(v) < TASKD_PRIORITY_MIN ||
	    json_integer_value(v) > TASKD_PRIORITY_MAX) {
		proto_error_set(&err, TASKD_ERR_BAD_REQUEST,
				"\"priority\" must be an integer from %d to %d", TASKD_PRIORITY_MIN,
				TASKD_PRIORITY_MAX);
		reply_proto_err(c, req->id, &err);
		return;
	}
	if ((j = lookup(td, c, req)) == NULL)
		return;
	if (!job_state_pending(j->state)) {
		snprintf(msg, sizeof msg, "job %llu is %s: only a job that has not started can "
			 "change priority", (unsigned long long)j->id, job_state_name(j->state));
		reply_err(c, req->id, TASKD_ERR_INVALID_STATE, msg);
		return;
	}
	sched_set_priority(td->sched, j, (int)json_integer_value(v));
	jobs_touch(td->jobs, j);
	reply_ok(c, req->id, json_pack("{s:I,s:i,s:s}", "id", (json_int_t)j->id, "priority",
				       j->spec.priority, "state", job_state_name(j->state)));
}

/* ---- clean ---- */

#define CLEAN_SELECT (FILTER_STATE | FILTER_STATES | FILTER_LABELS | FILTER_NAME | \
		      FILTER_OLDER_THAN)

static void
clean_prune(struct job *j, void *arg)
{
	sched_remove_output(arg, j);
}

/* Remove finished jobs (rows and output files): {"removed":N}. */
static void
op_clean(struct taskd *td, struct client *c, struct request *req)
{
	struct proto_error err = { 0 };
	struct job **v;
	struct filter f;
	size_t i, n, removed = 0;
	int st;

	if (filter_decode(req->root, CLEAN_SELECT | FILTER_STRICT, &f, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	for (st = 0; st < JOB_NSTATES; st++) {
		if (!job_state_final(st) && filter_state_given(&f, st)) {
			filter_free(&f);
			proto_error_set(&err, TASKD_ERR_BAD_REQUEST,
					"clean removes finished jobs only: state \"%s\" is not "
					"final", job_state_name(st));
			reply_proto_err(c, req->id, &err);
			return;
		}
	}
	v = select_jobs(td, c, &f, false, &n);
	filter_free(&f);
	for (i = 0; i < n; i++) {
		if (!job_state_final(v[i]->state))
			continue;
		jobs_delete(td->jobs, v[i], clean_prune, td->sched);
		STATS_INC(jobs_cleaned);
		removed++;
	}
	free(v);
	log_debug("clean: %zu jobs removed", removed);
	reply_ok(c, req->id, json_pack("{s:I}", "removed", (json_int_t)removed));
}

/* ---- subscribe ---- */

#define SUBSCRIBE_SELECT (FILTER_IDS | FILTER_LABELS | FILTER_STATES | FILTER_NAME)

/* From the answer on, this connection gets a line per job event (events.c). */
static void
op_subscribe(struct taskd *td, struct client *c, struct request *req)
{
	struct proto_error err = { 0 };
	struct cstate *cs = client_state(c);
	uid_t uid = server_client_uid(c);
	struct filter f;

	if (cs->sub != NULL) {
		reply_err(c, req->id, TASKD_ERR_INVALID_STATE,
			  "this connection is already subscribed");
		return;
	}
	if (filter_decode(req->root, SUBSCRIBE_SELECT | FILTER_STRICT, &f, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	reply_ok(c, req->id, json_pack("{s:b}", "subscribed", 1));
	cs->sub = events_subscribe(td->events, c, &f, uid == 0 || uid == getuid(), uid);
	log_debug("uid %u subscribed to job events", (unsigned)uid);
}

/* ---- logs ---- */

static char *
base64(const unsigned char *p, size_t n)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = xmalloc((n + 2) / 3 * 4 + 1), *o = out;
	size_t i;
	uint32_t v;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*o++ = tbl[v >> 18 & 63];
		*o++ = tbl[v >> 12 & 63];
		*o++ = tbl[v >> 6 & 63];
		*o++ = tbl[v & 63];
	}
	if (i < n) {
		v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
		*o++ = tbl[v >> 18 & 63];
		*o++ = tbl[v >> 12 & 63];
		*o++ = i + 1 < n ? tbl[v >> 6 & 63] : '=';
		*o++ = '=';
	}
	*o = '\0';
	return out;
}

/*
 * Text when the chunk is UTF-8 without NUL (a multi-byte character cut by the
 * chunk end is left for the next chunk), else base64. *used = bytes consumed.
 */
static void
encode_chunk(json_t *r, const char *buf, size_t n, bool at_end, size_t *used)
{
	bool nul = memchr(buf, '\0', n) != NULL; /* "\u0000" breaks C-string readers */
	json_t *s = nul ? NULL : json_stringn(buf, n);
	size_t cut;
	char *b64;

	for (cut = 1; s == NULL && !nul && !at_end && cut <= 3 && cut < n; cut++) {
		s = json_stringn(buf, n - cut);
		if (s != NULL)
			n -= cut;
	}
	*used = n;
	if (s != NULL) {
		json_object_set_new(r, "data", s);
		json_object_set_new(r, "encoding", json_string("utf-8"));
		return;
	}
	b64 = base64((const unsigned char *)buf, n);
	json_object_set_new(r, "data", json_string(b64));
	json_object_set_new(r, "encoding", json_string("base64"));
	free(b64);
}

static int
logs_args(struct client *c, struct request *req, bool *err_stream, json_int_t *off,
	  json_int_t *max)
{
	json_t *v;

	*err_stream = false;
	*off = 0;
	*max = LOGS_CHUNK_DEFAULT;
	if ((v = json_object_get(req->root, "stream")) != NULL) {
		if (json_is_string(v) && strcmp(json_string_value(v), "stderr") == 0)
			*err_stream = true;
		else if (!json_is_string(v) || strcmp(json_string_value(v), "stdout") != 0)
			goto bad;
	}
	if ((v = json_object_get(req->root, "offset")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			goto bad;
		*off = json_integer_value(v);
	}
	if ((v = json_object_get(req->root, "max")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0)
			goto bad;
		*max = json_integer_value(v) > LOGS_CHUNK_MAX ? LOGS_CHUNK_MAX
							      : json_integer_value(v);
	}
	return 0;
bad:
	reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
		  "logs takes \"stream\" (\"stdout\"|\"stderr\"), \"offset\" >= 0, \"max\" > 0");
	return -1;
}

static void
op_logs(struct taskd *td, struct client *c, struct request *req)
{
	struct job *j = lookup(td, c, req);
	json_int_t off, max;
	char path[4096], *buf;
	struct stat st = { 0 };
	bool errs, done;
	ssize_t n = 0;
	size_t used;
	json_t *r;
	int fd;

	if (j == NULL || logs_args(c, req, &errs, &off, &max) == -1)
		return;
	/* Answers stay within limits.max_frame: a raw byte may become "\\u0001" (6 bytes). */
	if (max > (json_int_t)(td->cfg->limits.max_frame - 512) / 6)
		max = (json_int_t)(td->cfg->limits.max_frame - 512) / 6;
	snprintf(path, sizeof path, "%s/%llu.%s", td->jobs_dir, (unsigned long long)j->id,
		 errs ? "err" : "out");
	buf = xmalloc((size_t)max);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (fstat(fd, &st) == 0 && off < st.st_size)
			n = pread(fd, buf, (size_t)max, off);
		close(fd);
	} else if (errno != ENOENT) {
		log_warn("open %s", path);
	}
	if (n < 0) {
		log_warn("read %s", path);
		n = 0;
	}
	done = job_state_final(j->state);
	r = json_object();
	encode_chunk(r, buf, (size_t)n, off + n >= st.st_size, &used);
	free(buf);
	json_object_set_new(r, "offset", json_integer(off));
	json_object_set_new(r, "next_offset", json_integer(off + (json_int_t)used));
	json_object_set_new(r, "size", json_integer((json_int_t)st.st_size));
	json_object_set_new(r, "eof", json_boolean(done && off + (json_int_t)used >= st.st_size));
	json_object_set_new(r, "truncated", json_boolean(errs ? j->res.err_truncated
							      : j->res.out_truncated));
	reply_ok(c, req->id, r);
}

/* ---- shutdown ---- */

static void
sched_idle_cb(void *arg)
{
	struct taskd *td = arg;

	if (td->stopping)
		event_base_loopexit(td->base, NULL);
}

void
ctl_shutdown(struct taskd *td, bool drain)
{
	if (td->stopping && (drain || !td->draining))
		return;
	log_info("shutting down%s: %zu running, %zu queued", drain ? " (draining)" : "",
		 sched_running(td->sched), sched_pending(td->sched));
	td->stopping = true;
	td->draining = drain;
	sd_stopping();
	server_stop_listening(td->server);
	sched_set_idle_cb(td->sched, sched_idle_cb, td);
	/*
	 * Waiting, scheduled and paused jobs stay as stored, for the next start,
	 * with a drain too (one that became ready during it would be started
	 * just as the loop exits: a cpu job lost with its worker). A drain runs
	 * what is queued, paused classes included (in memory: a stored class
	 * pause holds again at the next start).
	 */
	life_stop(td->life);
	if (!drain) {
		sched_cancel_all(td->sched, "taskd shut down");
	} else {
		sched_pause(td->sched, CLASS_AUTO, false);
	}
	if (sched_running(td->sched) == 0 && sched_pending(td->sched) == 0)
		event_base_loopexit(td->base, NULL);
}

/* Daemon-wide operations: root and the daemon's own user only. */
static bool
privileged(struct client *c, struct request *req)
{
	uid_t uid = server_client_uid(c);

	if (uid == 0 || uid == getuid())
		return true;
	reply_err(c, req->id, TASKD_ERR_FORBIDDEN,
		  "only root or the daemon's own user may do this");
	return false;
}

static void
op_shutdown(struct taskd *td, struct client *c, struct request *req)
{
	json_t *d = json_object_get(req->root, "drain");
	bool drain = d != NULL && json_is_true(d);

	if (!privileged(c, req))
		return;
	if (d != NULL && !json_is_boolean(d)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"drain\" must be true or false");
		return;
	}
	reply_ok(c, req->id, json_pack("{s:b,s:b}", "stopping", 1, "drain", drain));
	ctl_shutdown(td, drain);
}

/* ---- metrics ---- */

static void
op_metrics(struct taskd *td, struct client *c, struct request *req)
{
	struct evbuffer *out = evbuffer_new();
	struct tpool_stats ts;
	char labels[64];
	json_t *text;
	int st;

	if (out == NULL)
		fatalx("out of memory (evbuffer)");
	stats_to_prometheus(out);
	for (st = 0; st < JOB_NSTATES; st++) {
		snprintf(labels, sizeof labels, "{state=\"%s\"}", job_state_name(st));
		stats_gauge(out, "jobs", labels, (double)jobs_count(td->jobs, st),
			    st == 0 ? "jobs in the table by state" : NULL);
	}
	stats_gauge(out, "queue_pending", NULL, (double)sched_pending(td->sched),
		    "jobs waiting to run");
	tpool_stats(td->tpool, &ts);
	stats_gauge(out, "thread_pool_threads", NULL, ts.threads, "pool threads alive");
	stats_gauge(out, "thread_pool_busy", NULL, ts.busy, "pool threads running a job");
	stats_gauge(out, "thread_pool_max", NULL, ts.max, "thread_pool.max_threads");
	stats_gauge(out, "clients", NULL, server_nclients(td->server), "connected clients");
	stats_gauge(out, "subscribers", NULL, (double)events_subscribers(td->events),
		    "connections subscribed to job events");
	stats_gauge(out, "uptime_seconds", NULL, now_unix() - td->started_at,
		    "seconds since taskd started");
	text = json_stringn((const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out));
	evbuffer_free(out);
	reply_ok(c, req->id, json_pack("{s:o}", "text", text));
}

/* ---- one-line status (systemd's STATUS=) ---- */

void
ctl_status_line(struct taskd *td, char *buf, size_t len)
{
	struct ppool_state ps = { 0 };

	if (td->ppool != NULL)
		ppool_get_state(td->ppool, &ps);
	snprintf(buf, len, "%s%zu running (%zu cpu, %zu io), %zu queued, %d/%d workers busy",
		 td->stopping ? "stopping: " : "", sched_running(td->sched),
		 sched_running_class(td->sched, CLASS_CPU), sched_running_class(td->sched, CLASS_IO),
		 sched_pending(td->sched), ps.busy, ps.alive);
}

/* ---- reload ---- */

int
ctl_max_clients(const struct config *cfg)
{
	struct rlimit rl;
	long reserve, room;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return cfg->limits.max_clients;
	/* Each running job holds a few descriptors (pipes, files, pidfd, eventfd, schedstat). */
	reserve = 9L * cfg->thread_pool.max_threads + 4L * ctl_ppool_config(cfg).max_workers + 64;
	room = (long)rl.rlim_cur - reserve;
	if (room < 16)
		room = 16;
	return cfg->limits.max_clients < room ? cfg->limits.max_clients : (int)room;
}

struct ppool_config
ctl_ppool_config(const struct config *cfg)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	struct ppool_config pc = {
		.mode = cfg->process_pool.mode,
		.min_workers = cfg->process_pool.min_workers,
		.max_workers = cfg->process_pool.max_workers,
		.min_spare = cfg->process_pool.min_spare,
		.max_spare = cfg->process_pool.max_spare,
		.max_jobs_per_worker = cfg->process_pool.max_jobs_per_worker,
		.max_worker_rss = cfg->process_pool.max_worker_rss,
		.idle_timeout = cfg->process_pool.idle_timeout,
	};

	if (pc.max_workers == 0)
		pc.max_workers = ncpu > 0 ? (int)ncpu : 1;
	if (pc.min_workers > pc.max_workers)
		pc.min_workers = pc.max_workers;
	return pc;
}

struct tpool_config
ctl_tpool_config(const struct config *cfg)
{
	struct tpool_config tc = {
		.min_threads = cfg->thread_pool.min_threads,
		.max_threads = cfg->thread_pool.max_threads,
		.idle_timeout = cfg->thread_pool.idle_timeout,
	};

	return tc;
}

static void
note_change(const char *key, void *arg)
{
	json_array_append_new(arg, json_string(key));
}

static int apply_reload(struct taskd *td, json_t **changed, char **cause);

int
ctl_reload(struct taskd *td, json_t **changed, char **cause)
{
	int rc;

	*changed = NULL;
	sd_reloading();
	rc = apply_reload(td, changed, cause);
	sd_reloaded();
	return rc;
}

static int
apply_reload(struct taskd *td, json_t **changed, char **cause)
{
	struct config next;
	struct tpool_config tc;
	struct ppool_config pc;

	if (td->config_path == NULL) {
		*cause = xstrdup("taskd runs on built-in defaults (no -c FILE): nothing to reload");
		STATS_INC(reload_errors);
		return -1;
	}
	if (config_load(td->config_path, &next, cause) == -1) {
		STATS_INC(reload_errors);
		return -1;
	}
	if (sched_check_defaults(td->sched, &next, cause) == -1) {
		config_free(&next);
		STATS_INC(reload_errors);
		return -1;
	}
	*changed = json_array();
	config_diff(td->cfg, &next, note_change, *changed);
	if ((next.socket != NULL && strcmp(next.socket, td->socket_path) != 0) ||
	    (next.state_dir != NULL && strcmp(next.state_dir, td->state_dir) != 0))
		log_warnx("reload: socket and state_dir changes take effect after a restart");
	if (next.cgroups.enable != td->cfg->cgroups.enable)
		log_warnx("reload: a cgroups.enable change takes effect after a restart");
	config_free(td->cfg);
	*td->cfg = next;
	log_setlevel(td->log_level_override >= 0 ? td->log_level_override : td->cfg->log_level);
	tc = ctl_tpool_config(td->cfg);
	tpool_configure(td->tpool, &tc);
	pc = ctl_ppool_config(td->cfg);
	if (td->ppool != NULL)
		ppool_configure(td->ppool, &pc);
	server_set_limits(td->server, td->cfg->limits.max_frame, ctl_max_clients(td->cfg),
			  td->cfg->limits.stall_timeout);
	server_set_client_limits(td->server, td->cfg->limits.max_clients_per_user,
				 td->cfg->limits.idle_timeout);
	sched_configure(td->sched);
	persist_configure(td->persist, td->cfg->store.fsync, td->cfg->store.fsync_interval);
	STATS_INC(reloads);
	return 0;
}

static void
op_reload(struct taskd *td, struct client *c, struct request *req)
{
	json_t *changed;
	char *cause = NULL;

	if (!privileged(c, req))
		return;
	if (ctl_reload(td, &changed, &cause) == -1) {
		log_warnx("reload refused, keeping the old configuration: %s", cause);
		reply_err(c, req->id, TASKD_ERR_INVALID_CONFIG, cause);
		free(cause);
		return;
	}
	log_info("configuration reloaded from %s (%zu changes)", td->config_path,
		 json_array_size(changed));
	reply_ok(c, req->id, json_pack("{s:s,s:o}", "config", td->config_path, "changed",
				       changed));
}

/* ---- dispatch ---- */

static const struct {
	const char *name;
	op_fn *fn;
} ops[] = {
	{ TASKD_OP_SUBMIT, op_submit },
	{ TASKD_OP_STATUS, op_status },
	{ TASKD_OP_LIST, op_list },
	{ TASKD_OP_SHOW, op_show },
	{ TASKD_OP_WAIT, op_wait },
	{ TASKD_OP_CANCEL, op_cancel },
	{ TASKD_OP_LOGS, op_logs },
	{ TASKD_OP_SHUTDOWN, op_shutdown },
	{ TASKD_OP_RELOAD, op_reload },
	{ TASKD_OP_METRICS, op_metrics },
	{ TASKD_OP_PAUSE, op_pause },
	{ TASKD_OP_RESUME, op_resume },
	{ TASKD_OP_PRIORITY, op_priority },
	{ TASKD_OP_CLEAN, op_clean },
	{ TASKD_OP_SUBSCRIBE, op_subscribe },
};

void
ctl_frame_cb(struct client *c, const char *line, size_t len, void *arg)
{
	struct taskd *td = arg;
	struct proto_error err = { 0 };
	struct request req;
	size_t i;

	STATS_INC(requests);
	client_state(c);
	if (proto_decode(line, len, &req, &err) == -1) {
		reply_proto_err(c, req.id, &err);
		proto_request_free(&req);
		return;
	}
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		if (strcmp(req.op, ops[i].name) == 0) {
			ops[i].fn(td, c, &req);
			proto_request_free(&req);
			return;
		}
	}
	proto_error_set(&err, TASKD_ERR_UNKNOWN_OP, "unknown op \"%s\"", req.op);
	reply_proto_err(c, req.id, &err);
	proto_request_free(&req);
}
