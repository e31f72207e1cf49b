/*
 * Reading jobs and the daemon, now or when they change: status, list,
 * show (doc/protocol.md), wait (answered when its jobs are final) and
 * subscribe (a stream of job events, events.c).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "admission.h"
#include "cluster.h"
#include "events.h"
#include "http.h"
#include "jsonutil.h"
#include "log.h"
#include "modules.h"
#include "ops.h"
#include "persist.h"
#include "ppool.h"
#include "quota.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "tpool.h"
#include "xmalloc.h"

#define LIST_LIMIT_DEFAULT 100

static op_fn op_status;
static op_fn op_list;
static op_fn op_show;
static op_fn op_wait;
static op_fn op_subscribe;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_status_entry = {
	.name = TASKD_OP_STATUS,
	.fn = op_status,
	.flags = OP_WHILE_STOPPING,
	.fields = { "cursor" },
};

const struct op op_list_entry = {
	.name = TASKD_OP_LIST,
	.fn = op_list,
	.flags = OP_WHILE_STOPPING,
	.select = FILTER_STATE | FILTER_LABELS | FILTER_NAME | FILTER_IDS | FILTER_ARRAY,
	.fields = { "limit", "cursor" },
};

/* A job ("job"), or an array ("array": its counts by state). */
const struct op op_show_entry = {
	.name = TASKD_OP_SHOW,
	.fn = op_show,
	.flags = OP_JOB_OR | OP_WHILE_STOPPING,
	.fields = { "array" },
};

const struct op op_wait_entry = {
	.name = TASKD_OP_WAIT,
	.fn = op_wait,
	.flags = OP_JOB_OR | OP_WHILE_STOPPING,
	.select = FILTER_LABELS | FILTER_NAME | FILTER_ARRAY,
};

const struct op op_subscribe_entry = {
	.name = TASKD_OP_SUBSCRIBE,
	.fn = op_subscribe,
	.flags = OP_WHILE_STOPPING,
	.select = FILTER_IDS | FILTER_LABELS | FILTER_STATES | FILTER_NAME,
};

/* A `wait` request parked on a job until it finishes. */
struct pending_wait {
	struct job_waiter waiter;
	struct taskd *td;
	struct client *client;
	struct job *job;
	json_t *id;
	TAILQ_ENTRY(pending_wait) entry;
};

/* A `wait` by selector (labels, name): answered once all its jobs are final. */
struct pending_group {
	struct client *client;
	json_t *id;
	uint64_t upto;      /* jobs_next_id when it came: its jobs are older */
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
	pc = taskd_ppool_config(td->cfg);
	return json_pack("{s:s,s:i,s:i,s:[]}", "mode", config_mode_name(pc.mode), "min",
			 pc.min_workers, "max", pc.max_workers, "workers");
}

/*
 * The router table's kind keys are job names and command names of every
 * user: root and the daemon's own user see them, others get null.
 */
static json_t *
status_router(struct taskd *td, struct client *c)
{
	if (!privileged_uid(server_client_uid(c)))
		return json_null();
	return sched_router_json(td->sched);
}

/*
 * The lists in a status answer r grow with the pools and the kinds of
 * jobs: r holds what fits of the process pool's workers, of the router
 * table and of the handlers' workers, from where the cursor said (worker
 * w, key k, handler worker hw), and "next" for the rest.
 */
static void
status_reply(struct client *c, json_t *id, json_t *r, uint64_t w, uint64_t k, uint64_t hw)
{
	json_t *pp = json_object_get(r, "process_pool");
	json_t *workers = json_incref(json_object_get(pp, "workers"));
	json_t *router = json_incref(json_object_get(r, "router"));
	json_t *ws = json_array(), *ks = json_is_array(router) ? json_array() : json_null();
	json_t *handlers = json_object_get(r, "handlers"), *hws = json_array();
	size_t room, fixed, wi, ki, hi, nh;
	char *next = NULL;

	json_object_set(pp, "workers", ws);
	json_object_set(r, "router", ks);
	nh = ops_split_lists(handlers, "workers", hws);
	json_object_set_new(r, "next", json_null());
	fixed = json_text_size(r) + CURSOR_MAX;
	room = ops_budget(c, id) > fixed ? ops_budget(c, id) - fixed : 0;
	wi = ops_take_items(ws, workers, w, &room);
	ki = json_is_array(router) ? ops_take_items(ks, router, k, &room) : 0;
	hi = ops_take_split(handlers, "workers", hws, hw, &room);
	/* (A page that took nothing would be asked for again and again.) */
	if ((wi < json_array_size(workers) || ki < json_array_size(router) || hi < nh) &&
	    (wi > w || ki > k || hi > hw)) {
		next = ops_cursor_text('S', wi, ki, hi);
		json_object_set_new(r, "next", json_string(next));
		free(next);
	}
	json_decref(ws);
	json_decref(ks);
	json_decref(hws);
	json_decref(workers);
	json_decref(router);
	reply_ok(c, id, r);
}

static void
op_status(struct taskd *td, struct client *c, struct request *req)
{
	struct tpool_stats ts;
	uint64_t cur[3] = { 0, 0, 0 };
	json_t *r;

	if (ops_cursor(c, req, 'S', cur) == -1)
		return;

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
		      "router", status_router(td, c),
		      "counters", stats_to_json(),
		      "socket", td->socket_path, "state_dir", td->state_dir,
		      "stopping", td->stopping);
	json_object_set_new(r, "paused", sched_paused_json(td->sched));
	json_object_set_new(r, "queues", sched_queues_json(td->sched));
	json_object_set_new(r, "resources", sched_resources_json(td->sched));
	json_object_set_new(r, "subscribers",
			    json_integer((json_int_t)events_subscribers(td->events)));
	json_object_set_new(r, "storage_error", persist_storage_error(td->persist) != NULL
			    ? json_string(persist_storage_error(td->persist)) : json_null());
	json_object_set_new(r, "http", http_address(td->http) != NULL
				       ? json_string(http_address(td->http)) : json_null());
	json_object_set_new(r, "handlers", sched_handlers_json(td->sched));
	json_object_set_new(r, "modules", module_to_json());
	json_object_set_new(r, "cluster", td->cluster != NULL ? cluster_status(td->cluster)
							      : json_null());
	json_object_set_new(r, "quota", quota_json(td->cfg, td->jobs, server_client_uid(c)));
	status_reply(c, req->id, r, cur[0], cur[1], cur[2]);
}

/* Is j one a list (or a wait by selector) of uid shows, passing f? */
static bool
listed(const struct job *j, uid_t uid, const struct filter *f, double now)
{
	return j->announced && filter_match(f, j, now) && ops_may_see(uid, j);
}

/*
 * One page of the jobs passing f with ids from `from` up to `upto`
 * (excluded; 0: no bound), `left` of them at most (0: no limit), in id
 * order: as many as fit, and a cursor for the rest.
 */
static void
list_page(struct taskd *td, struct client *c, json_t *id, const struct filter *f,
	  uint64_t from, uint64_t upto, uint64_t left)
{
	uid_t uid = server_client_uid(c);
	bool limited = left > 0;
	double now = now_unix();
	char *next = NULL;
	struct page p;
	struct job *j;
	json_t *o;

	page_init(&p, c, id, "jobs", 0);
	for (j = jobs_seek(td->jobs, from); j != NULL && (upto == 0 || j->id < upto);
	     j = TAILQ_NEXT(j, all)) {
		if (!listed(j, uid, f, now))
			continue;
		if (limited && left == 0) {
			j = NULL;
			break;
		}
		/* The first of a page always goes in, made to fit if need be. */
		o = p.n == 0 ? job_to_json_fit(j, page_room(&p)) : job_to_json(j);
		if (!page_add(&p, o, 0)) {
			json_decref(o);
			break;
		}
		json_decref(o);
		left -= limited;
	}
	if (j != NULL && (upto == 0 || j->id < upto))
		next = ops_cursor_text('L', j->id, upto, left);
	page_send(&p, NULL, next);
	free(next);
}

static void
op_list(struct taskd *td, struct client *c, struct request *req)
{
	json_t *limit = json_object_get(req->root, "limit");
	json_int_t max = LIST_LIMIT_DEFAULT, n = 0;
	uid_t uid = server_client_uid(c);
	double now = now_unix();
	uint64_t cur[3];
	struct filter f;
	struct job *j, *first;
	int rc;

	if (limit != NULL && (!json_is_integer(limit) || json_integer_value(limit) < 0)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "\"limit\" must be an integer >= 0 (0 = all)");
		return;
	}
	if (limit != NULL)
		max = json_integer_value(limit);
	if ((rc = ops_cursor(c, req, 'L', cur)) == -1 || ops_selector(c, req, &f) == -1)
		return;
	if (rc == 1) {
		/* A later page: where the last one stopped, among the jobs it was part of. */
		list_page(td, c, req->id, &f, cur[0], cur[1], cur[2]);
		filter_free(&f);
		return;
	}
	/*
	 * The most recent `max` matching jobs, in id order: find the first, then
	 * page forward, over the jobs there are now.
	 */
	first = NULL;
	for (j = jobs_last(td->jobs); j != NULL && (max == 0 || n < max);
	     j = TAILQ_PREV(j, job_list, all)) {
		if (!listed(j, uid, &f, now))
			continue;
		first = j;
		n++;
	}
	list_page(td, c, req->id, &f, first != NULL ? first->id : jobs_next_id(td->jobs),
		  jobs_next_id(td->jobs), (uint64_t)n);
	filter_free(&f);
}

static void
op_show(struct taskd *td, struct client *c, struct request *req)
{
	json_t *v = json_object_get(req->root, "array");
	struct job_array *a;
	char msg[96];

	if (req->job != NULL) {
		reply_job(c, req->id, req->job);
		return;
	}
	if (v == NULL || !json_is_integer(v) || json_integer_value(v) <= 0) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "give \"job\" (a job id) or \"array\" (an array's id)");
		return;
	}
	/* Like a job: not before its submit is stored, not another user's. */
	a = jobs_array_find(td->jobs, (uint64_t)json_integer_value(v));
	if (a == NULL || !a->stored) {
		snprintf(msg, sizeof msg, "no such array %lld", (long long)json_integer_value(v));
		reply_err(c, req->id, TASKD_ERR_NOT_FOUND, msg);
		return;
	}
	if (!privileged_uid(server_client_uid(c)) && server_client_uid(c) != a->uid) {
		snprintf(msg, sizeof msg, "array %llu belongs to another user",
			 (unsigned long long)a->id);
		reply_err(c, req->id, TASKD_ERR_FORBIDDEN, msg);
		return;
	}
	reply_ok(c, req->id, job_array_to_json(a));
}

/* ---- wait ---- */

static void
pending_free(struct client *c, struct pending_wait *p)
{
	struct conn *cs = server_client_data(c);

	TAILQ_REMOVE(&cs->waits, p, entry);
	cs->nwaits--;
	json_decref(p->id);
	free(p);
}

static void
wait_done(struct job *j, void *arg)
{
	struct pending_wait *p = arg;

	struct client *c = p->client;
	char msg[96];

	if (job_state_final(j->state)) {
		reply_job(c, p->id, j);
	} else {
		/* Discarded: its submit could not be stored. */
		snprintf(msg, sizeof msg, "no such job %llu (its submit could not be stored)",
			 (unsigned long long)j->id);
		reply_err(c, p->id, TASKD_ERR_NOT_FOUND, msg);
	}
	pending_free(c, p);
	server_client_release(c);
}

void
reply_too_many_waits(struct client *c, struct request *req)
{
	struct proto_error err = { 0 };

	proto_error_set(&err, TASKD_ERR_TOO_MANY, "%d waits already in flight on this "
			"connection: wait for some answers first", OPS_MAX_WAITS);
	reply_proto_err(c, req->id, &err);
}

/* Park a wait (its slot in nwaits already counted) on j, or answer now if j has ended. */
void
wait_attach(struct taskd *td, struct client *c, json_t *id, struct job *j)
{
	struct conn *cs = conn_of(c);
	struct pending_wait *p;

	if (job_state_final(j->state)) {
		cs->nwaits--;
		reply_job(c, id, j);
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
	struct conn *cs = server_client_data(c);
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

/*
 * Its answer: a page of the job objects, the rest from `list` with the same
 * selector and the cursor (its jobs are final, so list shows them as they
 * ended; the cursor's upto keeps later jobs out).
 */
static void
group_reply(struct client *c, struct pending_group *g)
{
	char *next = NULL;
	struct page p;
	json_t *o;
	size_t i;

	page_init(&p, c, g->id, "jobs", 0);
	json_array_foreach(g->jobs, i, o) {
		if (p.n == 0)
			job_json_fit(o, page_room(&p));
		if (!page_add(&p, o, 0)) {
			next = ops_cursor_text('L', (uint64_t)json_integer_value(
							 json_object_get(o, "id")), g->upto, 0);
			break;
		}
	}
	page_send(&p, NULL, next);
	free(next);
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
	group_reply(c, g);
	group_free(c, g);
	server_client_release(c);
}

static void
wait_group(struct taskd *td, struct client *c, struct request *req)
{
	struct pending_group *g;
	struct conn *cs = conn_of(c);
	struct job **v;
	struct filter f;
	size_t i, n;

	if (ops_selector(c, req, &f) == -1)
		return;
	if (cs->nwaits >= OPS_MAX_WAITS) {
		filter_free(&f);
		reply_too_many_waits(c, req);
		return;
	}
	v = ops_select(td, c, &f, false, &n);
	filter_free(&f);
	g = xcalloc(1, sizeof *g + n * sizeof g->w[0]);
	g->client = c;
	g->id = json_incref(req->id);
	g->upto = jobs_next_id(td->jobs);
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
		group_reply(c, g);
		group_free(c, g);
		return;
	}
	server_client_hold(c);
}

/* One job ("job"), or every job a selector picks that exists now. */
static void
op_wait(struct taskd *td, struct client *c, struct request *req)
{
	struct job *j = req->job;
	struct conn *cs;

	if (j == NULL) {
		if (ops_has_selector(req))
			wait_group(td, c, req);
		else
			reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
				  "give \"job\" (a job id) or a selector (\"labels\", \"name\", "
				  "\"array\")");
		return;
	}
	if (job_state_final(j->state)) {
		reply_job(c, req->id, j);
		return;
	}
	cs = conn_of(c);
	if (cs->nwaits >= OPS_MAX_WAITS) {
		reply_too_many_waits(c, req);
		return;
	}
	cs->nwaits++;
	wait_attach(td, c, req->id, j);
}

void
op_wait_closed(struct taskd *td, struct conn *cs, struct client *c)
{
	struct pending_group *g;
	struct pending_wait *p;

	while ((p = TAILQ_FIRST(&cs->waits)) != NULL) {
		job_unwait(p->job, &p->waiter);
		pending_free(c, p);
	}
	while ((g = TAILQ_FIRST(&cs->groups)) != NULL)
		group_free(c, g);
	if (cs->sub != NULL)
		events_unsubscribe(td->events, cs->sub);
}

/* ---- subscribe ---- */

/* From the answer on, this connection gets a line per job event (events.c). */
static void
op_subscribe(struct taskd *td, struct client *c, struct request *req)
{
	struct conn *cs = conn_of(c);
	uid_t uid = server_client_uid(c);
	struct filter f;

	if (cs->sub != NULL) {
		reply_err(c, req->id, TASKD_ERR_INVALID_STATE,
			  "this connection is already subscribed");
		return;
	}
	if (ops_selector(c, req, &f) == -1)
		return;
	reply_ok(c, req->id, json_pack("{s:b}", "subscribed", 1));
	cs->sub = events_subscribe(td->events, c, &f, privileged_uid(uid), uid);
	log_debug("uid %u subscribed to job events", (unsigned)uid);
}
