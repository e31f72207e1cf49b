/*
 * Cluster mode: the ops answered across nodes (cluster.h,
 * cluster-private.h, doc/cluster.md). submit publishes the jobs to the
 * stream and answers once JetStream stored them; cancel of a job held
 * elsewhere is an entry in the bucket, written only over the entry the
 * mirror holds; logs of a job that ran on another node are asked from
 * that node, and this node answers the others' such requests; clean
 * removes a job's entry. What waits for the cluster's answer is a
 * struct cl_wait. Loop thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "cluster-msg.h"
#include "cluster-private.h"
#include "log.h"
#include "ops.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

#define CANCEL_TRIES 50     /* a cancel whose entry keeps changing under it */
#define LOGS_MAX (256u << 10) /* of another node's answer: within NATS's 1 MiB payload */

/* ---- answers to clients ---- */

struct cl_wait *
wait_new(struct cluster *cl, struct client *c, json_t *id, enum cl_wait_kind kind)
{
	struct cl_wait *w = xcalloc(1, sizeof *w);

	w->kind = kind;
	w->client = c;
	w->id = json_incref(id != NULL ? id : json_null());
	if (c != NULL)
		server_client_hold(c);
	TAILQ_INSERT_TAIL(&cl->waits, w, entry);
	return w;
}

void
wait_free(struct cluster *cl, struct cl_wait *w)
{
	TAILQ_REMOVE(&cl->waits, w, entry);
	if (w->client != NULL)
		server_client_release(w->client);
	json_decref(w->id);
	free(w->error);
	free(w->ids);
	free(w->jobs);
	free(w);
}

void
cluster_client_closed(struct cluster *cl, struct client *c)
{
	struct cl_wait *w;

	TAILQ_FOREACH(w, &cl->waits, entry)
		if (w->client == c)
			w->client = NULL;
}

/* ---- submit ---- */

static void
submit_answer(struct cluster *cl, struct cl_wait *w)
{
	struct taskd *td = cl->td;
	struct client *c = w->client;
	json_t *ids;
	struct job *j;
	size_t i;
	char *msg;

	if (c == NULL) {
		wait_free(cl, w);
		return;
	}
	if (w->error != NULL) {
		if (w->batch && w->stored > 0) {
			ids = json_array();
			for (i = 0; i < w->n; i++)
				if (w->ids[i] != 0)
					json_array_append_new(ids, json_integer((json_int_t)w->ids[i]));
			msg = json_dumps(ids, JSON_COMPACT);
			json_decref(ids);
			xasprintf(&msg, "%zu of the %zu jobs were stored and will run (ids %s); the "
				  "others were not: %s", w->stored, w->n, msg != NULL ? msg : "?",
				  w->error);
			reply_err(c, w->id, TASKD_ERR_UNAVAILABLE, msg);
			free(msg);
		} else {
			reply_err(c, w->id, TASKD_ERR_UNAVAILABLE, w->error);
		}
		if (w->wait)
			conn_of(c)->nwaits--;
	} else if (w->batch) {
		ids = json_array();
		for (i = 0; i < w->n; i++)
			json_array_append_new(ids, json_integer((json_int_t)w->ids[i]));
		reply_ok(c, w->id, json_pack("{s:o}", "ids", ids));
	} else if (!w->wait) {
		reply_ok(c, w->id, json_pack("{s:I}", "id", (json_int_t)w->ids[0]));
	} else if ((j = jobs_find(td->jobs, w->ids[0])) != NULL) {
		wait_attach(td, c, w->id, j);
	} else {
		conn_of(c)->nwaits--;
		reply_err(c, w->id, TASKD_ERR_NOT_FOUND, "the job is no longer known");
	}
	wait_free(cl, w);
}

static void
created_done(struct cluster *cl, struct cl_pub *p, natsMsg *answer)
{
	struct cluster_puback pa;

	/* Wrong last sequence: a node took the job and wrote its entry first. */
	if (answer_parse(cl, answer, &pa) == -1 && pa.err_code != CLUSTER_ERR_WRONG_LAST_SEQ)
		log_debug("cluster: job %s: its first entry was not stored: %s",
			  p->subject + strlen(cl->kv_jobs), pa.error);
	cluster_puback_clear(&pa);
}

static void
submitted(struct cluster *cl, struct cl_pub *p, natsMsg *answer)
{
	struct cl_pubopts o = { .expect = true, .expect_seq = 0, .resend = true };
	struct cl_wait *w = p->ctx;
	struct job *j = w->jobs[p->idx];
	struct cluster_puback pa;
	char *subject, *e;
	size_t len;

	w->jobs[p->idx] = NULL;
	if (answer_parse(cl, answer, &pa) == -1) {
		if (w->error == NULL)
			w->error = xstrdup(pa.error);
		job_free(j);
	} else {
		j->id = pa.seq;
		w->ids[p->idx] = pa.seq;
		w->stored++;
		/* Its first entry, unless a node that took it already wrote one. */
		if (jobs_find(cl->td->jobs, j->id) == NULL) {
			subject = kv_subject(cl, j->id);
			e = cluster_entry_encode(j, j->state, cl->node, false, false, &len);
			cluster_publish(cl, subject, e, len, &o, created_done, NULL);
			free(subject);
			free(e);
			strv_free(j->spec.env);
			j->spec.env = NULL;
			if (jobs_insert(cl->td->jobs, j) == -1)
				fatalx("job %llu: in the table twice", (unsigned long long)j->id);
		} else {
			job_free(j);
		}
	}
	cluster_puback_clear(&pa);
	if (--w->left == 0)
		submit_answer(cl, w);
}

void
cluster_submit(struct cluster *cl, struct client *c, json_t *id, struct job_spec *specs,
	       size_t n, bool batch, bool wait, bool local)
{
	struct cl_pubopts o = { .resend = true };
	struct taskd *td = cl->td;
	double now = now_unix();
	struct cl_wait *w;
	struct cl_pub *p;
	const char *subject;
	char msgid[64], *e;
	struct job *j;
	size_t i, len;

	if (cl->state != CL_READY || cl->stopping) {
		e = xprintf("the cluster is not ready (%s%s%s): nothing was submitted",
			    cluster_state_name(cl), cl->error != NULL ? ": " : "",
			    cl->error != NULL ? cl->error : "");
		reply_err(c, id, TASKD_ERR_UNAVAILABLE, e);
		free(e);
		for (i = 0; i < n; i++)
			job_spec_free(&specs[i]);
		free(specs);
		return;
	}
	for (i = 0; i < n; i++) {
		/* Its state would be forgotten first (the bucket's TTL): refused, not lost. */
		if (specs[i].run_at <= now + cl->keep)
			continue;
		if (batch)
			e = xprintf("jobs[%zu]: a start time more than cluster.keep (%.0f s) away "
				    "cannot be kept in cluster mode", i, cl->keep);
		else
			e = xprintf("a start time more than cluster.keep (%.0f s) away cannot be "
				    "kept in cluster mode", cl->keep);
		reply_err(c, id, TASKD_ERR_BAD_REQUEST, e);
		free(e);
		for (i = 0; i < n; i++)
			job_spec_free(&specs[i]);
		free(specs);
		return;
	}
	w = wait_new(cl, c, id, W_SUBMIT);
	w->batch = batch;
	w->wait = wait;
	w->n = n;
	w->ids = xcalloc(n, sizeof *w->ids);
	w->jobs = xcalloc(n, sizeof *w->jobs);
	if (wait)
		conn_of(c)->nwaits++;
	for (i = 0; i < n; i++) {
		j = job_new();
		j->spec = specs[i];
		memset(&specs[i], 0, sizeof specs[i]);
		j->uid = server_client_uid(c);
		j->gid = server_client_gid(c);
		j->submitted_at = now;
		if (j->spec.ndeps > 0) {
			j->state = JOB_WAITING;
		} else if (j->spec.run_at > now) {
			j->state = JOB_SCHEDULED;
			j->due_at = j->spec.run_at;
		}
		/* Class auto: this node's router decides which queue of the cluster. */
		if (local)
			subject = cl->subject[PULL_LOCAL];
		else
			subject = cl->subject[sched_route(td->sched, j) == CLASS_CPU ? PULL_CPU
										 : PULL_IO];
		e = cluster_entry_encode(j, j->state, cl->node, false, true, &len);
		snprintf(msgid, sizeof msgid, "%s-%" PRIu64, cl->instance, ++cl->msgseq);
		o.msgid = msgid;
		p = cluster_publish(cl, subject, e, len, &o, submitted, w);
		free(e);
		if (p == NULL) {
			w->error = xprintf("NATS refused the job (too large for its max_payload, or "
					   "the connection is gone)");
			job_free(j);
			break;
		}
		p->idx = i;
		w->jobs[i] = j;
		w->left++;
		cl->n.submitted++;
		STATS_INC(jobs_submitted);
	}
	for (i++; i < n; i++)
		job_spec_free(&specs[i]);
	free(specs);
	if (w->left == 0)
		submit_answer(cl, w);
}

/* ---- cancel ---- */

static void cancel_send(struct cluster *cl, struct cl_wait *w, struct job *j);

static void
cancel_answer(struct cluster *cl, struct cl_wait *w, const char *code, const char *msg,
	      json_t *result)
{
	if (w->client != NULL) {
		if (code != NULL)
			reply_err(w->client, w->id, code, msg);
		else
			reply_ok(w->client, w->id, json_incref(result));
	}
	json_decref(result);
	wait_free(cl, w);
}

/* Look at the job again: it changed under the cancel. */
void
cancel_retry(struct cluster *cl, struct cl_wait *w)
{
	struct job *j = jobs_find(cl->td->jobs, w->job);
	char msg[128];
	int rc;

	w->retry_at = 0;
	if (j == NULL) {
		snprintf(msg, sizeof msg, "no such job %" PRIu64, w->job);
		cancel_answer(cl, w, TASKD_ERR_NOT_FOUND, msg, NULL);
	} else if (job_state_final(j->state)) {
		snprintf(msg, sizeof msg, "job %" PRIu64 " already finished: %s", w->job,
			 job_state_name(j->state));
		cancel_answer(cl, w, TASKD_ERR_INVALID_STATE, msg, NULL);
	} else if (j->cl.hold != NULL) {
		/* This node took it meanwhile: cancel it here. */
		rc = sched_cancel(cl->td->sched, j, "cancelled by request");
		cancel_answer(cl, w, NULL, NULL,
			      rc == 1 ? json_pack("{s:I,s:s,s:b}", "id", (json_int_t)w->job, "state",
						  "running", "cancelling", 1)
				      : json_pack("{s:I,s:s}", "id", (json_int_t)w->job, "state",
						  "cancelled"));
	} else {
		cancel_send(cl, w, j);
	}
}

static void
cancel_done(struct cluster *cl, struct cl_pub *p, natsMsg *answer)
{
	struct cl_wait *w = p->ctx;
	struct cluster_puback pa;
	bool running = p->idx != 0;

	if (answer_parse(cl, answer, &pa) == 0) {
		log_debug("job %" PRIu64 ": cancel stored in the bucket", w->job);
		cancel_answer(cl, w, NULL, NULL,
			      running ? json_pack("{s:I,s:s,s:b}", "id", (json_int_t)w->job, "state",
						  "running", "cancelling", 1)
				      : json_pack("{s:I,s:s}", "id", (json_int_t)w->job, "state",
						  "cancelled"));
	} else if (pa.err_code == CLUSTER_ERR_WRONG_LAST_SEQ && ++w->tries < CANCEL_TRIES) {
		/* The entry changed since the mirror read it: look again once it caught up. */
		w->retry_at = clock_now(CLOCK_MONOTONIC) + 0.05;
	} else {
		cancel_answer(cl, w, TASKD_ERR_UNAVAILABLE, pa.error, NULL);
	}
	cluster_puback_clear(&pa);
}

/*
 * The cancel entry, written only over the entry the mirror holds: a job
 * not running anywhere ends cancelled at once (a node that gets it later
 * drops it); a running one stays running for its node to stop.
 */
static void
cancel_send(struct cluster *cl, struct cl_wait *w, struct job *j)
{
	struct cl_pubopts o = { .expect = true, .expect_seq = j->cl.rev };
	bool running = j->state == JOB_RUNNING;
	char *subject = kv_subject(cl, j->id), *e, *error = j->res.error;
	double finished_at = j->finished_at;
	struct cl_pub *p;
	size_t len;

	if (!running) {
		j->res.error = "cancelled by request";
		j->finished_at = now_unix();
	}
	e = cluster_entry_encode(j, running ? JOB_RUNNING : JOB_CANCELLED, cl->node, true, false,
				 &len);
	j->res.error = error;
	j->finished_at = finished_at;
	p = cluster_publish(cl, subject, e, len, &o, cancel_done, w);
	free(subject);
	free(e);
	if (p == NULL)
		cancel_answer(cl, w, TASKD_ERR_UNAVAILABLE, "cannot reach the cluster", NULL);
	else
		p->idx = running;
}

void
cluster_cancel(struct cluster *cl, struct client *c, json_t *id, struct job *j)
{
	struct cl_wait *w;

	if (!cl->connected || cl->state != CL_READY) {
		if (c != NULL)
			reply_err(c, id, TASKD_ERR_UNAVAILABLE,
				  "the cluster is not reachable: cannot cancel a job this node "
				  "does not hold");
		return;
	}
	w = wait_new(cl, c, id, W_CANCEL);
	w->job = j->id;
	cancel_send(cl, w, j);
}

/* ---- logs of a job that ran elsewhere, clean ---- */

bool
cluster_output_elsewhere(struct cluster *cl, const struct job *j)
{
	return j->cl.node != NULL && strcmp(j->cl.node, cl->node) != 0;
}

static void
logs_done(struct cluster *cl, struct cl_pub *p, natsMsg *answer)
{
	struct cl_wait *w = p->ctx;
	json_t *r = NULL, *err;
	char msg[256];
	const char *node = p->subject + strlen(cl->ctl_prefix);
	int nlen = (int)strcspn(node, ".");

	if (w->client == NULL) {
		wait_free(cl, w);
		return;
	}
	if (answer == NULL) {
		snprintf(msg, sizeof msg, "node %.*s, which ran job %" PRIu64 ", did not answer "
			 "within %.0f s", nlen, node, w->job, CL_REQUEST_TIMEOUT);
		reply_err(w->client, w->id, TASKD_ERR_UNAVAILABLE, msg);
	} else if (natsMsg_IsNoResponders(answer)) {
		snprintf(msg, sizeof msg, "node %.*s, which ran job %" PRIu64 " and has its output, "
			 "is not connected to the cluster", nlen, node, w->job);
		reply_err(w->client, w->id, TASKD_ERR_UNAVAILABLE, msg);
	} else if ((r = json_loadb(natsMsg_GetData(answer), (size_t)natsMsg_GetDataLength(answer),
				   0, NULL)) != NULL && json_is_true(json_object_get(r, "ok")) &&
		   json_is_object(json_object_get(r, "result"))) {
		reply_ok(w->client, w->id, json_incref(json_object_get(r, "result")));
	} else if ((err = json_object_get(r, "error")) != NULL &&
		   json_is_string(json_object_get(err, "code")) &&
		   json_is_string(json_object_get(err, "message"))) {
		reply_err(w->client, w->id, json_string_value(json_object_get(err, "code")),
			  json_string_value(json_object_get(err, "message")));
	} else {
		snprintf(msg, sizeof msg, "node %.*s sent an unreadable answer", nlen, node);
		reply_err(w->client, w->id, TASKD_ERR_INTERNAL, msg);
	}
	json_decref(r);
	wait_free(cl, w);
}

void
cluster_logs(struct cluster *cl, struct client *c, json_t *id, const struct job *j, bool errs,
	     json_int_t off, json_int_t max)
{
	struct cl_wait *w;
	char *subject, *text;
	json_t *req;

	if (!cl->connected) {
		reply_err(c, id, TASKD_ERR_UNAVAILABLE, "the cluster is not reachable: the output "
			  "of this job is on another node");
		return;
	}
	w = wait_new(cl, c, id, W_LOGS);
	w->job = j->id;
	req = json_pack("{s:I,s:s,s:I,s:I}", "id", (json_int_t)j->id, "stream",
			errs ? "stderr" : "stdout", "offset", off, "max",
			max > LOGS_MAX ? (json_int_t)LOGS_MAX : max);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	subject = xprintf("%s%s.logs", cl->ctl_prefix, j->cl.node);
	if (text == NULL || cluster_publish(cl, subject, text, strlen(text), NULL, logs_done, w) == NULL) {
		reply_err(c, id, TASKD_ERR_UNAVAILABLE, "cannot reach the cluster");
		wait_free(cl, w);
	}
	free(subject);
	free(text);
}

void
cluster_forget(struct cluster *cl, const struct job *j)
{
	struct cl_pubopts o = { .kv_delete = true, .resend = true };
	char *subject = kv_subject(cl, j->id);

	cluster_publish(cl, subject, "", 0, &o, put_done, NULL);
	free(subject);
}

/* ---- another node asks for a job's output ---- */

void
logs_asked(struct cluster *cl, natsMsg *msg)
{
	const char *reply = natsMsg_GetReply(msg), *stream = "stdout";
	json_int_t id = 0, off = 0, max = 0;
	json_t *req, *r;
	struct job *j;
	char *text;

	if (reply == NULL)
		return;
	req = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
	if (req == NULL || json_unpack(req, "{s:I,s:s,s:I,s:I}", "id", &id, "stream", &stream,
				       "offset", &off, "max", &max) == -1 ||
	    id <= 0 || off < 0 || max <= 0) {
		r = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", TASKD_ERR_BAD_REQUEST,
			      "message", "bad logs request from another node");
	} else if ((j = jobs_find(cl->td->jobs, (uint64_t)id)) == NULL) {
		text = xprintf("node %s no longer knows job %lld", cl->node, (long long)id);
		r = json_pack("{s:b,s:{s:s,s:s}}", "ok", 0, "error", "code", TASKD_ERR_NOT_FOUND,
			      "message", text);
		free(text);
	} else {
		r = json_pack("{s:b,s:o}", "ok", 1, "result",
			      logs_answer(cl->td, j, strcmp(stream, "stderr") == 0, off,
					  max > LOGS_MAX ? LOGS_MAX : max));
	}
	json_decref(req);
	text = json_dumps(r, JSON_COMPACT);
	json_decref(r);
	if (text != NULL && cluster_send(cl, reply, NULL, text, strlen(text)) == -1)
		log_warnx("cluster: cannot answer a logs request");
	free(text);
}
