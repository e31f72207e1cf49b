/*
 * Acting on jobs and on dispatching: cancel (one job, or every job a
 * selector picks), pause and resume (one job: a queued one is held, a
 * running one suspended; a class, a named queue, or all), priority, and
 * clean (finished jobs and their output). doc/protocol.md.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "cluster.h"
#include "jsonutil.h"
#include "labels.h"
#include "life.h"
#include "log.h"
#include "ops.h"
#include "persist.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

static op_fn op_cancel;
static op_fn op_pause;
static op_fn op_resume;
static op_fn op_priority;
static op_fn op_clean;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_cancel_entry = {
	.name = TASKD_OP_CANCEL,
	.fn = op_cancel,
	.flags = OP_JOB_OR | OP_WHILE_STOPPING,
	.select = FILTER_LABELS | FILTER_NAME | FILTER_ARRAY,
	.fields = { "cursor" },
};

/*
 * Refused once a shutdown began: a class paused during a drain would hold
 * it forever; a job resumed during a shutdown without drain would start
 * after the cancels.
 */
const struct op op_pause_entry = {
	.name = TASKD_OP_PAUSE,
	.fn = op_pause,
	.flags = OP_JOB_OR | OP_PRIVILEGED_WIDE,
	.fields = { "class", "queue" },
};

const struct op op_resume_entry = {
	.name = TASKD_OP_RESUME,
	.fn = op_resume,
	.flags = OP_JOB_OR | OP_PRIVILEGED_WIDE,
	.fields = { "class", "queue" },
};

const struct op op_priority_entry = {
	.name = TASKD_OP_PRIORITY,
	.fn = op_priority,
	.flags = OP_JOB | OP_WHILE_STOPPING,
	.fields = { "priority" },
};

const struct op op_clean_entry = {
	.name = TASKD_OP_CLEAN,
	.fn = op_clean,
	.flags = OP_WHILE_STOPPING,
	.select = FILTER_STATE | FILTER_STATES | FILTER_LABELS | FILTER_NAME |
		  FILTER_OLDER_THAN | FILTER_ARRAY,
};

/* ---- cancel ---- */

/* Cluster mode: a job this node does not hold (the cluster's queue has it, or another node). */
static bool
held_elsewhere(struct taskd *td, const struct job *j)
{
	return job_elsewhere(j) && !job_state_final(j->state);
}

/* pause, resume and priority act on the jobs a node holds: -1 after replying. */
static int
check_held(struct taskd *td, struct client *c, struct request *req, const struct job *j)
{
	char msg[256];

	if (!held_elsewhere(td, j))
		return 0;
	snprintf(msg, sizeof msg, "job %llu is %s in the cluster, not held by this node: pause, "
		 "resume and priority act on the jobs a node holds (doc/cluster.md); cancel works "
		 "from any node", (unsigned long long)j->id, job_state_name(j->state));
	reply_err(c, req->id, TASKD_ERR_INVALID_STATE, msg);
	return -1;
}

/*
 * A cancel by selector tags the jobs it cancels, so that the pages of its
 * answer can be read later: tags differ from one cancel to the next, and
 * from one run of taskd to the next (they start at the time it started).
 */
static uint64_t
cancel_tag(void)
{
	static uint64_t last;

	if (last == 0)
		last = (uint64_t)(now_unix() * 1e6);
	return ++last;
}

static void
cancel_add(struct page *p, json_t *running, uint64_t id, bool busy, bool *full)
{
	json_t *v = json_integer((json_int_t)id);
	/* A running one is in "cancelling" too: its room is taken now. */
	size_t extra = busy ? json_text_size(v) + 1 : 0;

	if (!*full && page_add(p, v, extra)) {
		if (busy)
			json_array_append(running, v);
	} else {
		*full = true;
	}
	json_decref(v);
}

/*
 * A page of what the cancel tagged `tag` cancelled, from id `from` on
 * (ids below `upto`): {"ids":[...],"cancelling":[running ones],"next"}.
 */
static void
cancel_page(struct taskd *td, struct client *c, json_t *id, uint64_t tag, uint64_t from,
	    uint64_t upto)
{
	json_t *running = json_array();
	uid_t uid = server_client_uid(c);
	bool full = false;
	char *next = NULL;
	struct page p;
	struct job *j;

	page_init(&p, c, id, "ids", sizeof ",\"cancelling\":[]" - 1);
	for (j = jobs_seek(td->jobs, from); j != NULL && j->id < upto; j = TAILQ_NEXT(j, all)) {
		if (j->cancel_tag != tag || !ops_may_see(uid, j))
			continue;
		cancel_add(&p, running, j->id, j->cancel_running, &full);
		if (full) {
			next = ops_cursor_text('C', tag, j->id, upto);
			break;
		}
	}
	page_send(&p, json_pack("{s:o}", "cancelling", running), next);
	free(next);
}

/* Cancel every matching job not finished yet: {"ids":[...],"cancelling":[running ones]}. */
static void
cancel_selected(struct taskd *td, struct client *c, struct request *req)
{
	uint64_t *want, tag, upto = jobs_next_id(td->jobs), cur[3];
	json_t *running = json_array();
	bool *busy, full = false;
	char *next = NULL;
	struct job **v, *j;
	struct page p;
	struct filter f;
	size_t i, n, sent = 0;
	int rc;

	if ((rc = ops_cursor(c, req, 'C', cur)) != 0) {
		/* A later page of the answer to an earlier cancel: nothing more is cancelled. */
		if (rc == 1)
			cancel_page(td, c, req->id, cur[0], cur[1], cur[2]);
		json_decref(running);
		return;
	}
	if (ops_selector(c, req, &f) == -1) {
		json_decref(running);
		return;
	}
	v = ops_select(td, c, &f, true, &n);
	filter_free(&f);
	/* By id: cancelling a queued job finishes it, and pruning may free others. */
	tag = cancel_tag();
	want = xcalloc(n + 1, sizeof *want);
	busy = xcalloc(n + 1, sizeof *busy);
	for (i = 0; i < n; i++) {
		want[i] = v[i]->id;
		v[i]->cancel_tag = tag;
		v[i]->cancel_running = busy[i] = v[i]->state == JOB_RUNNING ||
						   v[i]->state == JOB_SUSPENDED;
	}
	free(v);
	/* The first page from what was picked: a job cancelled now may be pruned at once. */
	page_init(&p, c, req->id, "ids", sizeof ",\"cancelling\":[]" - 1);
	for (i = 0; i < n; i++) {
		if (!full) {
			cancel_add(&p, running, want[i], busy[i], &full);
			if (full)
				next = ops_cursor_text('C', tag, want[i], upto);
		}
		if ((j = jobs_find(td->jobs, want[i])) != NULL && !job_state_final(j->state)) {
			if (held_elsewhere(td, j))
				cluster_cancel(td->cluster, NULL, NULL, j);
			else
				sched_cancel(td->sched, j, "cancelled by request");
			sent++;
		}
	}
	free(want);
	free(busy);
	log_debug("cancel by selector: %zu jobs", sent);
	page_send(&p, json_pack("{s:o}", "cancelling", running), next);
	free(next);
}

/* One job ("job"), or every job a selector picks. */
static void
op_cancel(struct taskd *td, struct client *c, struct request *req)
{
	struct job *j = req->job;
	json_int_t id;
	char msg[128];
	int rc;

	if (j == NULL) {
		if (ops_has_selector(req) || json_object_get(req->root, "cursor") != NULL)
			cancel_selected(td, c, req);
		else
			reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
				  "give \"job\" (a job id) or a selector (\"labels\", \"name\", "
				  "\"array\")");
		return;
	}
	id = (json_int_t)j->id;
	if (job_state_final(j->state)) {
		snprintf(msg, sizeof msg, "job %llu already finished: %s",
			 (unsigned long long)j->id, job_state_name(j->state));
		reply_err(c, req->id, TASKD_ERR_INVALID_STATE, msg);
		return;
	}
	if (held_elsewhere(td, j)) {
		cluster_cancel(td->cluster, c, req->id, j);
		return;
	}
	/* Answer first: a job not running is finished (and maybe pruned) by the cancel. */
	if (j->state != JOB_RUNNING && j->state != JOB_SUSPENDED)
		reply_ok(c, req->id, json_pack("{s:I,s:s}", "id", id, "state", "cancelled"));
	else
		reply_ok(c, req->id, json_pack("{s:I,s:s,s:b}", "id", id, "state",
					       job_state_name(j->state), "cancelling", 1));
	rc = sched_cancel(td->sched, j, "cancelled by request");
	log_debug("job %lld cancel requested (%s)", (long long)id, rc == 0 ? "not running" : "running");
}

/* ---- pause, resume, priority ---- */

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

/* pause/resume of a named queue ("queue"): {"queue":NAME,"paused":bool}. */
static void
pause_queue(struct taskd *td, struct client *c, struct request *req, json_t *v, bool pause)
{
	struct proto_error err = { 0 };
	const char *name = json_is_string(v) ? json_string_value(v) : NULL;

	if (name == NULL || !labels_key_valid(name) ||
	    sched_pause_queue(td->sched, name, pause, true) == -1) {
		proto_error_set(&err, TASKD_ERR_BAD_REQUEST, "no queue \"%.64s\" in the configuration",
				name != NULL ? name : "(not a string)");
		reply_proto_err(c, req->id, &err);
		return;
	}
	sched_dispatch(td->sched);
	/* Stored with the next commit: a restart keeps it. */
	persist_set_queue_paused(td->persist, name, pause);
	log_info("%s queue %s", pause ? "paused" : "resumed", name);
	reply_ok(c, req->id, json_pack("{s:s,s:b}", "queue", name, "paused", pause));
}

/* pause: a queued job is held (paused), a running one suspended. */
static int
pause_job(struct taskd *td, struct job *j, char **why)
{
	if (j->state == JOB_QUEUED) {
		life_hold(td->life, j);
		return 0;
	}
	if (j->state == JOB_RUNNING)
		return sched_suspend(td->sched, j, why);
	xasprintf(why, "job %llu is %s: only a queued job can be paused, or a running one "
		  "suspended", (unsigned long long)j->id, job_state_name(j->state));
	return -1;
}

/* resume: a paused job is queued again, a suspended one continues (or waits for its slots). */
static int
resume_job(struct taskd *td, struct job *j, char **why)
{
	if (j->state == JOB_PAUSED) {
		life_release(td->life, j);
		return 0;
	}
	if (j->state == JOB_SUSPENDED) {
		sched_resume(td->sched, j);
		return 0;
	}
	xasprintf(why, "job %llu is %s: only a paused or a suspended job can be resumed",
		  (unsigned long long)j->id, job_state_name(j->state));
	return -1;
}

/* pause/resume: of one job ("job"), of a named queue ("queue"), or of dispatching (all, "class"). */
static void
pause_resume(struct taskd *td, struct client *c, struct request *req, bool pause)
{
	json_t *queue = json_object_get(req->root, "queue");
	struct job *j = req->job;
	enum job_class cls;
	char *why = NULL;
	json_t *r;

	if (j == NULL && queue != NULL) {
		if (json_object_get(req->root, "class") != NULL) {
			reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
				  "give either \"class\" or \"queue\", not both");
			return;
		}
		pause_queue(td, c, req, queue, pause);
		return;
	}
	if (j == NULL) {
		if (pause_class(c, req, &cls) == -1)
			return;
		sched_pause(td->sched, cls, pause);
		/* Stored with the next commit: a restart keeps it. */
		persist_set_paused(td->persist, sched_paused(td->sched, CLASS_CPU),
				   sched_paused(td->sched, CLASS_IO));
		log_info("%s %s jobs", pause ? "paused starting" : "resumed starting",
			 cls == CLASS_AUTO ? "all" : config_class_name(cls));
		reply_ok(c, req->id, json_pack("{s:o}", "paused", sched_paused_json(td->sched)));
		return;
	}
	if (check_held(td, c, req, j) == -1)
		return;
	if ((pause ? pause_job(td, j, &why) : resume_job(td, j, &why)) == -1) {
		reply_err(c, req->id, TASKD_ERR_INVALID_STATE, why);
		free(why);
		return;
	}
	r = json_pack("{s:I,s:s}", "id", (json_int_t)j->id, "state", job_state_name(j->state));
	/* Suspended, asked to resume: it continues once its cpu slots are free. */
	if (!pause && j->state == JOB_SUSPENDED)
		json_object_set_new(r, "resuming", json_true());
	reply_ok(c, req->id, r);
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
	struct job *j = req->job;
	char msg[160];

	if (v == NULL || !json_is_integer(v) || json_integer_value(v) < TASKD_PRIORITY_MIN ||
	    json_integer_value(v) > TASKD_PRIORITY_MAX) {
		proto_error_set(&err, TASKD_ERR_BAD_REQUEST,
				"\"priority\" must be an integer from %d to %d", TASKD_PRIORITY_MIN,
				TASKD_PRIORITY_MAX);
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (ops_check_priority(server_client_uid(c), (int)json_integer_value(v), &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return;
	}
	if (check_held(td, c, req, j) == -1)
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

	if (ops_selector(c, req, &f) == -1)
		return;
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
	v = ops_select(td, c, &f, false, &n);
	filter_free(&f);
	for (i = 0; i < n; i++) {
		if (!job_state_final(v[i]->state))
			continue;
		/* Cluster mode: every node forgets it (the bucket's delete marker). */
		if (td->cluster != NULL)
			cluster_forget(td->cluster, v[i]);
		jobs_delete(td->jobs, v[i], clean_prune, td->sched);
		STATS_INC(jobs_cleaned);
		removed++;
	}
	free(v);
	log_debug("clean: %zu jobs removed", removed);
	reply_ok(c, req->id, json_pack("{s:I}", "removed", (json_int_t)removed));
}
