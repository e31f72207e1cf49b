/*
 * Cluster mode on the loop thread (doc/cluster.md; cluster-private.h says
 * which thread does what).
 *
 * The stream STREAM (a JetStream work queue on STREAM.jobs.>) holds the
 * jobs not finished yet: STREAM.jobs.cpu and STREAM.jobs.io for any node
 * (durable pull consumers "cpu" and "io"), STREAM.jobs.local.NODE for one
 * node (consumer "local-NODE"). A job's id is the stream sequence of its
 * message. The bucket STREAM-jobs holds each job's latest state (an entry:
 * cluster-msg.h) under its id; every node reads it into its job table, the
 * mirror, so that every job of the cluster can be listed, shown, waited
 * for. The bucket STREAM-nodes holds the nodes' heartbeats.
 *
 * A node asks each consumer of the cluster for as many jobs as it has free
 * slots of that class (pull requests to INBOX.f.KIND.NO), takes each job
 * it gets into its scheduler, the job's `hold`: the delivery it answers.
 * While it holds a job it sends +WPI before the ack wait runs out. Each
 * change of a held job's state goes to the bucket; once its final state is
 * stored, the delivery is acknowledged (+ACK): at least once. A run that
 * failed with retries left goes back to the cluster with a delayed NAK.
 * A job not due yet (--in/--at, a retry's delay) is NAK'ed with the time
 * left; dependencies are watched by the node that took the job, in its
 * mirror. Cancel of a job held elsewhere is an entry in the bucket, written
 * only if the entry did not change since the mirror read it; the node that
 * holds the job sees it in its mirror and cancels the job.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/event.h>

#include <taskd/protocol.h>

#include "clock.h"
#include "hpool.h"
#include "jobtype.h"
#include "cluster-msg.h"
#include "cluster-private.h"
#include "life.h"
#include "log.h"
#include "ops.h"
#include "output.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

#define TICK 0.2            /* seconds between two looks at timers (acks, pulls, heartbeats) */
#define SETUP_RETRY_MAX 30.0
#define CANCEL_TRIES 50     /* a cancel whose entry keeps changing under it */
#define LOGS_MAX (256u << 10) /* of another node's answer: within NATS's 1 MiB payload */

static double
mono(void)
{
	return clock_now(CLOCK_MONOTONIC);
}

static const char *const state_names[] = {
	[CL_CONNECTING] = "connecting", [CL_SETUP] = "setting up", [CL_SYNCING] = "reading jobs",
	[CL_READY] = "ready",           [CL_FAILED] = "failed",    [CL_CLOSING] = "closing",
	[CL_CLOSED] = "closed",
};

const char *
cluster_state_name(const struct cluster *cl)
{
	return state_names[cl->state];
}

static void
set_error(struct cluster *cl, const char *error)
{
	free(cl->error);
	cl->error = error != NULL ? xstrdup(error) : NULL;
}

static void maybe_pull(struct cluster *cl);

static void
schedule_pull(struct cluster *cl)
{
	event_active(cl->pull_ev, EV_TIMEOUT, 0);
}

/* ---- answers from JetStream ---- */

/* The answer to a publish: 0 with *pa, or -1 with pa->error (no answer: answer NULL). */
static int
answer_parse(struct cluster *cl, natsMsg *answer, struct cluster_puback *pa)
{
	memset(pa, 0, sizeof *pa);
	if (answer == NULL) {
		pa->error = xprintf("no answer from NATS within %.0f s%s", CL_PUB_TIMEOUT,
				    cl->connected ? "" : " (not connected)");
		return -1;
	}
	if (natsMsg_IsNoResponders(answer)) {
		pa->error = xstrdup("nobody answers on that subject (no JetStream stream, or the "
				    "node is gone)");
		return -1;
	}
	return cluster_puback_parse(natsMsg_GetData(answer), (size_t)natsMsg_GetDataLength(answer),
				    pa);
}

/* ---- answers to clients ---- */

static struct cl_wait *
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

static void
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

/* ---- the bucket: writing a job's entry ---- */

static char *
kv_subject(struct cluster *cl, uint64_t id)
{
	return xprintf("%s%" PRIu64, cl->kv_jobs, id);
}

static void
put_done(struct cluster *cl, struct cl_pub *p, natsMsg *answer)
{
	struct cluster_puback pa;

	if (answer_parse(cl, answer, &pa) == -1) {
		cl->n.failed_puts++;
		log_warnx("cluster: job %s: its state was not stored in the bucket: %s",
			  p->subject + strlen(cl->kv_jobs), pa.error);
	}
	cluster_puback_clear(&pa);
}

bool
cluster_pub_outdated(struct cluster *cl, const struct cl_pub *p)
{
	struct job *j;

	return p->job != 0 && ((j = jobs_find(cl->td->jobs, p->job)) == NULL ||
			       j->cl.puts != p->put);
}

/*
 * The state of held job j, for every node to see (fire and forget: the
 * next change comes). Sent again only while it is j's latest entry: a
 * "running" sent again after the final entry would undo it.
 */
static void
put_state(struct cluster *cl, struct job *j)
{
	struct cl_pubopts o = { .resend = true };
	char *subject = kv_subject(cl, j->id), *e;
	struct cl_pub *p;
	size_t len;

	e = cluster_entry_encode(j, j->state, cl->node, false, false, &len);
	if ((p = cluster_publish(cl, subject, e, len, &o, put_done, NULL)) != NULL) {
		p->job = j->id;
		p->put = ++j->cl.puts;
	}
	free(subject);
	free(e);
}

/* ---- holds: the deliveries this node answers ---- */

static void
hold_count(struct cluster *cl, struct cluster_hold *h)
{
	struct job *j = h->job;
	int cls = -1;

	if (j != NULL && (j->state == JOB_QUEUED || j->state == JOB_RUNNING))
		cls = j->routed == CLASS_CPU ? CLASS_CPU : CLASS_IO;
	if (cls == h->cls)
		return;
	if (h->cls >= 0)
		cl->active[h->cls]--;
	if (cls >= 0)
		cl->active[cls]++;
	h->cls = cls;
}

static struct cluster_hold *
hold_new(struct cluster *cl, struct job *j, enum cl_pull kind, const char *ack)
{
	struct cluster_hold *h = xcalloc(1, sizeof *h);

	h->job = j;
	h->id = j->id;
	h->ack = xstrdup(ack);
	h->kind = kind;
	h->cls = -1;
	h->acked_at = mono();
	j->cl.hold = h;
	TAILQ_INSERT_TAIL(&cl->holds, h, entry);
	cl->nholds++;
	return h;
}

/* The job no longer counts as held (it ended, or goes back to the cluster). */
static void
hold_detach(struct cluster *cl, struct cluster_hold *h)
{
	h->job->cl.hold = NULL;
	h->job = NULL;
	hold_count(cl, h);
	TAILQ_REMOVE(&cl->holds, h, entry);
	cl->nholds--;
	schedule_pull(cl);
}

static void
hold_free(struct cluster_hold *h)
{
	free(h->ack);
	free(h->text);
	free(h);
}

static void
ack_send(struct cluster *cl, const char *ack, const char *what)
{
	if (cluster_send(cl, ack, NULL, what, strlen(what)) == -1)
		log_warnx("cluster: cannot send %s to %s", what, ack);
}

/* NAK: deliver it again after delay seconds (0: at once, to whichever node asks). */
static void
nak_send(struct cluster *cl, const char *ack, double delay)
{
	char body[64];

	if (delay <= 0) {
		ack_send(cl, ack, "-NAK");
		return;
	}
	snprintf(body, sizeof body, "-NAK {\"delay\":%.0f}", delay * 1e9);
	ack_send(cl, ack, body);
}

/* Hand a held job back to the cluster now (stopping, or not due yet). */
static void
hold_release(struct cluster *cl, struct cluster_hold *h, double delay)
{
	hold_detach(cl, h);
	nak_send(cl, h->ack, delay);
	cl->n.released++;
	hold_free(h);
}

static void store_entry(struct cluster *cl, struct cluster_hold *h);

static void
stored_done(struct cluster *cl, struct cl_pub *p, natsMsg *answer)
{
	struct cluster_hold *h = p->ctx;
	struct cluster_puback pa;

	if (answer_parse(cl, answer, &pa) == -1) {
		cl->n.failed_puts++;
		log_warnx("cluster: job %" PRIu64 ": its result is not stored yet (%s): trying "
			  "again in 1 s (the node keeps the job meanwhile)", h->id, pa.error);
		cluster_puback_clear(&pa);
		h->put_at = mono() + 1;
		return;
	}
	cluster_puback_clear(&pa);
	/* Stored: the delivery is answered (a retry's NAK brings it back after its delay). */
	if (h->nak)
		nak_send(cl, h->ack, h->nak_delay);
	else
		ack_send(cl, h->ack, "+ACK");
	TAILQ_REMOVE(&cl->storing, h, entry);
	hold_free(h);
	taskd_exit_if_idle(cl->td);
}

static void
store_entry(struct cluster *cl, struct cluster_hold *h)
{
	struct cl_pubopts o = { .resend = true };
	char *subject = kv_subject(cl, h->id);
	struct job *j;

	h->put_at = 0;
	/* The entries put_state sent before are outdated by this one. */
	if ((j = jobs_find(cl->td->jobs, h->id)) != NULL)
		j->cl.puts++;
	if (cluster_publish(cl, subject, h->text, h->text_len, &o, stored_done, h) == NULL)
		h->put_at = mono() + 1;
	free(subject);
}

/*
 * A held job ended (final state), or goes back for a retry (scheduled):
 * its entry is stored, then its delivery answered. The job may be pruned
 * meanwhile: the hold keeps what it needs.
 */
static void
hold_end(struct cluster *cl, struct cluster_hold *h, struct job *j)
{
	h->text = cluster_entry_encode(j, j->state, cl->node, false, false, &h->text_len);
	if (h->retry) {
		h->nak = true;
		h->nak_delay = j->due_at - now_unix();
	}
	hold_detach(cl, h);
	TAILQ_INSERT_TAIL(&cl->storing, h, entry);
	store_entry(cl, h);
}

/* The table's observer: held jobs' changes go to the bucket. */
static void
job_changed(struct job *j, int prev, void *arg)
{
	struct cluster *cl = arg;
	struct cluster_hold *h = j->cl.hold;

	if (h == NULL || prev < 0)
		return;
	hold_count(cl, h);
	if (job_state_final(j->state) || (j->state == JOB_SCHEDULED && h->retry)) {
		hold_end(cl, h, j);
		return;
	}
	put_state(cl, j);
	if (prev == JOB_RUNNING || prev == JOB_QUEUED)
		schedule_pull(cl);
}

/*
 * sched-finish.c asks first when a run of a held job ended: a retry goes
 * through the cluster (its next attempt may run on any node), and a
 * stopping node hands the job back. Else the job finishes here
 * (job_changed stores it).
 */
static bool
run_ended(struct job *j, enum job_state st, void *arg)
{
	struct cluster *cl = arg;
	struct cluster_hold *h = j->cl.hold;

	if (h == NULL)
		return false;
	if (h->release) {
		log_info("job %llu: stopped, handed back to the cluster", (unsigned long long)j->id);
		hold_release(cl, h, 0);
		job_set_state(cl->td->jobs, j, JOB_QUEUED);
		return true;
	}
	if (!life_retryable(j, st) || j->cancel_requested)
		return false;
	j->due_at = now_unix() + life_next_attempt(j, st);
	/* The next attempt is a new run: not a redelivery (yet). */
	j->cl.redelivered = false;
	free(j->cl.from);
	j->cl.from = NULL;
	h->retry = true;
	cl->n.retried++;
	log_debug("job %llu %s: attempt %d through the cluster in %.3f s",
		  (unsigned long long)j->id, job_state_name(st), j->attempt, j->due_at - now_unix());
	job_set_state(cl->td->jobs, j, JOB_SCHEDULED);
	return true;
}

/* ---- taking jobs ---- */

static void
take_job(struct cluster *cl, enum cl_pull kind, const struct cluster_ack *a, const char *ack,
	 struct job *n)
{
	struct taskd *td = cl->td;
	struct job *j = jobs_find(td->jobs, a->sseq);
	struct cluster_hold *h;
	double due, now = now_unix();
	bool redelivered;

	cl->n.taken++;
	if (j != NULL && j->cl.hold != NULL) {
		/* Delivered again while held here (this node stalled past the ack wait). */
		h = j->cl.hold;
		free(h->ack);
		h->ack = xstrdup(ack);
		h->acked_at = mono();
		job_free(n);
		return;
	}
	if (j != NULL && job_state_final(j->state)) {
		/* It ended (cancelled while queued, or its result stored and the ack lost). */
		log_debug("job %llu: delivered after it ended (%s): acknowledged",
			  (unsigned long long)j->id, job_state_name(j->state));
		cl->n.late++;
		ack_send(cl, ack, "+ACK");
		job_free(n);
		return;
	}
	if (j == NULL) {
		/* Not in the mirror yet: the message says what the submit said. */
		j = n;
		n = NULL;
		if (jobs_insert(td->jobs, j) == -1)
			fatalx("job %llu: in the table twice", (unsigned long long)j->id);
	} else {
		/* The bucket's entry is newer; only the message has the environment. */
		jobs_set_env(td->jobs, j, n->spec.env);
		n->spec.env = NULL;
		job_free(n);
	}
	/*
	 * An earlier delivery may have run it: its node said it was running,
	 * or left no entry for its delivery (killed before it wrote one).
	 * Every delivery this node answers gets an entry with its number.
	 */
	redelivered = j->state == JOB_RUNNING || a->delivered > j->cl.delivery + 1;
	j->cl.delivery = a->delivered;
	due = j->state == JOB_SCHEDULED ? j->due_at : j->spec.run_at;
	if (j->spec.type == JOBTYPE_HANDLER && hpool_find(td->hpool, j->spec.handler) == NULL) {
		/* Handlers are configured per node: leave it to a node that has this one. */
		log_warnx("job %llu: handler %s is not configured on this node: left to the other "
			  "nodes", (unsigned long long)j->id, j->spec.handler);
		nak_send(cl, ack, cl->ack_wait);
		return;
	}
	if (cl->stopping || due > now + 0.05) {
		/* Not due yet (or stopping): back to the stream until it is, a NAK with the delay. */
		if (!redelivered)
			put_state(cl, j);
		nak_send(cl, ack, cl->stopping ? 0 : due - now);
		return;
	}
	h = hold_new(cl, j, kind, ack);
	if (redelivered) {
		cl->n.redelivered++;
		j->cl.redelivered = true;
		free(j->cl.from);
		j->cl.from = j->cl.node != NULL ? xstrdup(j->cl.node) : NULL;
		log_info("job %llu: redelivered (node %s had it and went silent)",
			 (unsigned long long)j->id, j->cl.from != NULL ? j->cl.from : "?");
	}
	free(j->cl.node);
	j->cl.node = xstrdup(cl->node);
	life_adopt(td->life, j);
	if (j->cl.hold != NULL)
		hold_count(cl, j->cl.hold);
}

/* A pull request ended (its status: no more jobs, expired, ...): its slots are free again. */
static void
pull_ended(struct cluster *cl, enum cl_pull kind, uint64_t no, natsMsg *msg)
{
	struct cl_puller *pl = &cl->pull[kind];
	const char *status = NULL;
	struct cl_pullreq *r;

	/* 100 is a heartbeat; 404, 408, 409 end the request. */
	if (natsMsgHeader_Get(msg, "Status", &status) == NATS_OK && strcmp(status, "100") == 0)
		return;
	if (status != NULL && strcmp(status, "404") != 0 && strcmp(status, "408") != 0)
		log_debug("cluster: pull request on %s ended with status %s", pl->consumer, status);
	TAILQ_FOREACH(r, &pl->reqs, entry) {
		if (r->no == no) {
			pl->outstanding -= r->n;
			TAILQ_REMOVE(&pl->reqs, r, entry);
			free(r);
			break;
		}
	}
	maybe_pull(cl);
}

/*
 * A job a pull request brought. It comes with its own subject (the
 * stream's), not the request's: the consumer in its ack subject says
 * which, and the oldest request of that consumer is the one it fills
 * (the server serves them in order).
 */
static void
pulled(struct cluster *cl, natsMsg *msg)
{
	const char *ack = natsMsg_GetReply(msg);
	struct cl_pullreq *r;
	struct cluster_entry e;
	struct cluster_ack a;
	struct job *n;
	char *cause = NULL;
	int kind;

	if (ack == NULL || cluster_ack_parse(ack, &a) == -1) {
		log_warnx("cluster: a message on %s that is not a JetStream delivery: ignored",
			  natsMsg_GetSubject(msg));
		return;
	}
	for (kind = 0; kind < NPULLS && strcmp(a.consumer, cl->pull[kind].consumer) != 0; kind++)
		;
	if (kind == NPULLS) {
		log_warnx("cluster: a delivery of consumer %s, not this node's: ignored", a.consumer);
		return;
	}
	if ((r = TAILQ_FIRST(&cl->pull[kind].reqs)) != NULL) {
		cl->pull[kind].outstanding--;
		if (--r->n <= 0) {
			TAILQ_REMOVE(&cl->pull[kind].reqs, r, entry);
			free(r);
		}
	}
	n = cluster_entry_decode(a.sseq, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg),
				 &e, &cause);
	if (n == NULL) {
		/* Never a crash, never a redelivery loop: said, and acknowledged (gone). */
		cl->n.dropped++;
		log_warnx("cluster: dropped message %" PRIu64 " of stream %s: not a taskd job (%s)",
			  a.sseq, cl->stream, cause);
		free(cause);
		ack_send(cl, ack, "+ACK");
		return;
	}
	cluster_entry_clear(&e);
	take_job(cl, (enum cl_pull)kind, &a, ack, n);
}

/* Free slots of a class: what may run at once, less what is held queued or running, or asked for. */
static int
free_slots(struct cluster *cl, enum cl_pull kind)
{
	struct taskd *td = cl->td;
	int cap;

	if (kind == PULL_CPU)
		cap = td->ppool != NULL ? taskd_ppool_config(td->cfg).max_workers : 0;
	else
		cap = td->cfg->thread_pool.max_threads;
	return cap - (int)cl->active[kind == PULL_CPU ? CLASS_CPU : CLASS_IO] -
	       cl->pull[kind].outstanding;
}

static void
pull_request(struct cluster *cl, enum cl_pull kind, int n)
{
	struct cl_puller *pl = &cl->pull[kind];
	struct cl_pullreq *r;
	char body[96], reply[128];

	r = xcalloc(1, sizeof *r);
	r->no = ++cl->next_pull;
	r->n = n;
	/* Ended by its 408 at the latest, or taken as ended a little after (a lost server). */
	r->deadline = mono() + CL_PULL_EXPIRES + 2;
	snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%.0f}", n, CL_PULL_EXPIRES * 1e9);
	snprintf(reply, sizeof reply, "%s.f.%d.%" PRIu64, cl->inbox, (int)kind, r->no);
	if (cluster_send(cl, pl->api, reply, body, strlen(body)) == -1) {
		free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&pl->reqs, r, entry);
	pl->outstanding += n;
}

static void
maybe_pull(struct cluster *cl)
{
	struct taskd *td = cl->td;
	int n;

	if (cl->state != CL_READY || cl->stopping || !cl->connected)
		return;
	if (!sched_paused(td->sched, CLASS_CPU) && (n = free_slots(cl, PULL_CPU)) > 0)
		pull_request(cl, PULL_CPU, n);
	if (!sched_paused(td->sched, CLASS_IO) && (n = free_slots(cl, PULL_IO)) > 0)
		pull_request(cl, PULL_IO, n);
	/* This node's own queue: all of it, queued here (held) like a single node's. */
	if (cl->pull[PULL_LOCAL].outstanding == 0)
		pull_request(cl, PULL_LOCAL, CL_LOCAL_BATCH);
}

static void
pull_cb(evutil_socket_t fd, short what, void *arg)
{
	maybe_pull(arg);
}

static void
pulls_forget(struct cluster *cl)
{
	struct cl_pullreq *r;
	int k;

	for (k = 0; k < NPULLS; k++) {
		while ((r = TAILQ_FIRST(&cl->pull[k].reqs)) != NULL) {
			TAILQ_REMOVE(&cl->pull[k].reqs, r, entry);
			free(r);
		}
		cl->pull[k].outstanding = 0;
	}
}

/* ---- the mirror of the jobs bucket ---- */

static void
prune_cb(struct job *j, void *arg)
{
	sched_remove_output(arg, j);
}

/* Take the entry's view of j (a job this node does not hold) into the table. */
static void
mirror_update(struct cluster *cl, struct job *j, struct job *n)
{
	struct jobs *js = cl->td->jobs;
	struct run_result res;
	json_t *attempts;
	size_t i;
	char *s;

	j->routed = n->routed;
	j->pool = n->pool;
	j->worker = n->worker;
	j->route = n->route;
	j->counts_as = n->counts_as;
	j->reclassified_at = n->reclassified_at;
	s = j->kinds;
	j->kinds = n->kinds;
	n->kinds = s;
	s = j->cgroup;
	j->cgroup = n->cgroup;
	n->cgroup = s;
	j->started_at = n->started_at;
	j->finished_at = n->finished_at;
	j->attempt = n->attempt;
	attempts = j->attempts;
	j->attempts = n->attempts;
	n->attempts = attempts;
	j->due_at = n->due_at;
	res = j->res;
	j->res = n->res;
	n->res = res;
	j->spec.priority = n->spec.priority;
	for (i = 0; i < j->spec.ndeps && i < n->spec.ndeps; i++)
		j->spec.deps[i].state = n->spec.deps[i].state;
	s = j->cl.node;
	j->cl.node = n->cl.node;
	n->cl.node = s;
	s = j->cl.from;
	j->cl.from = n->cl.from;
	n->cl.from = s;
	j->cl.redelivered = n->cl.redelivered;
	j->cl.delivery = n->cl.delivery;
	if (n->state == j->state)
		return;
	if (job_state_final(n->state) && !job_state_final(j->state))
		jobs_finish(js, j, n->state, cl->td->cfg->jobs.keep_finished, prune_cb,
			    cl->td->sched); /* j may be pruned */
	else if (!job_state_final(n->state) && job_state_final(j->state))
		jobs_reopen(js, j, n->state);
	else
		job_set_state(js, j, n->state);
}

static void
mirror_apply(struct cluster *cl, struct job *n, const struct cluster_entry *e, uint64_t rev)
{
	struct taskd *td = cl->td;
	struct job *j = jobs_find(td->jobs, n->id);

	n->cl.rev = rev;
	if (j == NULL) {
		if (jobs_insert(td->jobs, n) == -1)
			fatalx("job %llu: in the table twice", (unsigned long long)n->id);
		if (job_state_final(n->state))
			sched_prune(td->sched);
		return;
	}
	if (rev <= j->cl.rev) {
		job_free(n);
		return;
	}
	j->cl.rev = rev;
	if (j->cl.hold != NULL) {
		/* Held here: this node writes its entries; only another node's cancel counts. */
		if (e->cancel && strcmp(e->by, cl->node) != 0 && !job_state_final(j->state)) {
			log_info("job %llu: cancel asked by node %s", (unsigned long long)j->id, e->by);
			sched_cancel(td->sched, j, "cancelled by request");
		}
		job_free(n);
		return;
	}
	mirror_update(cl, j, n);
	job_free(n);
}

static void
mirror_forget(struct cluster *cl, uint64_t id)
{
	struct job *j = jobs_find(cl->td->jobs, id);

	if (j != NULL && j->cl.hold == NULL && job_state_final(j->state))
		jobs_delete(cl->td->jobs, j, prune_cb, cl->td->sched);
}

static void
node_drop(struct cluster *cl, size_t i)
{
	free(cl->nodes[i].name);
	json_decref(cl->nodes[i].info);
	cl->nodes[i] = cl->nodes[--cl->nnodes];
}

/* A node's heartbeat (msg), or its delete marker (msg NULL: it stopped). */
static void
node_seen(struct cluster *cl, const char *name, natsMsg *msg)
{
	json_t *info = NULL;
	size_t i;

	for (i = 0; i < cl->nnodes && strcmp(cl->nodes[i].name, name) != 0; i++)
		;
	if (msg != NULL)
		info = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
	if (!json_is_object(info)) {
		json_decref(info);
		if (i < cl->nnodes)
			node_drop(cl, i);
		return;
	}
	if (i == cl->nnodes) {
		cl->nodes = xreallocarray(cl->nodes, cl->nnodes + 1, sizeof *cl->nodes);
		cl->nodes[i].name = xstrdup(name);
		cl->nodes[i].info = NULL;
		cl->nnodes++;
	}
	json_decref(cl->nodes[i].info);
	cl->nodes[i].info = info;
	cl->nodes[i].seen = mono();
}

static void maybe_ready(struct cluster *cl);

/* A bucket watch's message: $KV.BUCKET.KEY, its revision and what is left in its ack subject. */
static void
watched(struct cluster *cl, enum cl_sub kind, natsMsg *msg)
{
	const char *prefix = kind == SUB_JOBS ? cl->kv_jobs : cl->kv_nodes;
	const char *subject = natsMsg_GetSubject(msg), *key, *op = NULL, *reply;
	struct cluster_entry e;
	struct cluster_ack a;
	struct job *n;
	char *cause = NULL, *end;
	uint64_t id;
	bool del;

	reply = natsMsg_GetReply(msg);
	if (reply == NULL || cluster_ack_parse(reply, &a) == -1)
		return;
	if (a.pending == 0 && !cl->synced[kind]) {
		cl->synced[kind] = true;
		maybe_ready(cl);
	}
	if (strncmp(subject, prefix, strlen(prefix)) != 0)
		return;
	key = subject + strlen(prefix);
	del = natsMsgHeader_Get(msg, "KV-Operation", &op) == NATS_OK &&
	      (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
	if (kind == SUB_NODES) {
		node_seen(cl, key, del ? NULL : msg);
		return;
	}
	id = strtoull(key, &end, 10);
	if (*key < '1' || *key > '9' || *end != '\0' || id == ULLONG_MAX)
		return;
	if (del) {
		mirror_forget(cl, id);
		return;
	}
	n = cluster_entry_decode(id, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &e,
				 &cause);
	if (n == NULL) {
		log_warnx("cluster: the bucket's entry of job %" PRIu64 " is unreadable (%s): ignored",
			  id, cause);
		free(cause);
		return;
	}
	mirror_apply(cl, n, &e, a.sseq);
	cluster_entry_clear(&e);
}

/* ---- another node asks for a job's output ---- */

static void
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

/* ---- events from NATS ---- */

static void
maybe_ready(struct cluster *cl)
{
	struct taskd *td = cl->td;

	if (cl->state != CL_SYNCING || !cl->synced[SUB_JOBS])
		return;
	cl->state = CL_READY;
	set_error(cl, NULL);
	if (!cl->swept) {
		/* Output files of jobs the cluster no longer knows (pruned while this node was down). */
		cl->swept = true;
		sched_prune(td->sched);
		output_clean(td->jobs_dir, td->jobs);
	}
	log_info("cluster: node %s ready on stream %s (%zu jobs known)", cl->node, cl->stream,
		 jobs_total(td->jobs));
	cl->ever_ready = true;
	maybe_pull(cl);
}

static double
setup_backoff(int fails)
{
	double d = 0.5;

	while (--fails > 0 && d < SETUP_RETRY_MAX)
		d *= 2;
	return d < SETUP_RETRY_MAX ? d : SETUP_RETRY_MAX;
}

static void
inbox_msg(struct cluster *cl, natsMsg *msg)
{
	const char *subject = natsMsg_GetSubject(msg), *rest = subject + strlen(cl->inbox);
	struct cl_pub *p;
	uint64_t ref, no;
	int kind;
	char *end;

	if (strncmp(subject, cl->inbox, strlen(cl->inbox)) != 0) {
		pulled(cl, msg);
	} else if (strncmp(rest, ".p.", 3) == 0) {
		ref = strtoull(rest + 3, &end, 10);
		/* None: answered already (a publish sent twice is answered twice). */
		if (*end == '\0' && (p = cluster_pub_take(cl, ref)) != NULL) {
			/* A stream between leaders (a server of the cluster lost): later. */
			if (natsMsg_IsNoResponders(msg) && cluster_pub_later(cl, p))
				return;
			p->done(cl, p, msg);
			cluster_pub_free(p);
		}
	} else if (sscanf(rest, ".f.%d.%" SCNu64, &kind, &no) == 2 && kind >= 0 && kind < NPULLS) {
		pull_ended(cl, (enum cl_pull)kind, no, msg);
	}
}

void
cluster_handle(struct cluster *cl, struct cl_ev *ev)
{
	switch (ev->type) {
	case CLEV_MSG:
		if (ev->kind == SUB_INBOX)
			inbox_msg(cl, ev->msg);
		else if (ev->kind == SUB_JOBS || ev->kind == SUB_NODES)
			watched(cl, (enum cl_sub)ev->kind, ev->msg);
		else if (ev->kind == SUB_LOGS)
			logs_asked(cl, ev->msg);
		break;
	case CLEV_CONNECTED:
		pthread_mutex_lock(&cl->mu);
		cl->conn = cl->nc;
		pthread_mutex_unlock(&cl->mu);
		if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
			break;
		log_info("cluster: %sconnected to NATS (%s)", cl->ever_ready ? "re" : "", cl->url);
		cl->connected = true;
		pulls_forget(cl);
		/* The server may have lost what it had (a new store): check it all again. */
		cluster_nats_task(cl, TASK_SETUP);
		if (cl->ever_ready) {
			cl->state = CL_READY;
			set_error(cl, NULL);
			maybe_pull(cl);
		} else {
			cl->state = CL_SETUP;
		}
		break;
	case CLEV_DISCONNECTED:
		if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
			break;
		log_warnx("cluster: disconnected from NATS: reconnecting (jobs held here go on)");
		cl->connected = false;
		cl->state = CL_CONNECTING;
		set_error(cl, "disconnected from NATS");
		pulls_forget(cl);
		break;
	case CLEV_RETRYING:
		cl->retries++;
		if (cl->state == CL_CONNECTING) {
			set_error(cl, ev->text);
			/* Said at once, then at doubling intervals: not a line per attempt. */
			if ((cl->retries & (cl->retries - 1)) == 0)
				log_warnx("cluster: cannot reach NATS at %s (%s): trying again in "
					  "%.1f s (attempt %" PRIu64 ")", cl->url, ev->text,
					  (double)ev->b / 1000, cl->retries);
		}
		break;
	case CLEV_SETUP:
		if (cl->state == CL_CLOSING || cl->state == CL_CLOSED)
			break;
		if (ev->rc == 0) {
			cl->setup_fails = 0;
			if (cl->state == CL_SETUP || cl->state == CL_FAILED) {
				cl->state = CL_SYNCING;
				maybe_ready(cl);
			}
			break;
		}
		cl->setup_fails++;
		cl->setup_at = mono() + setup_backoff(cl->setup_fails);
		set_error(cl, ev->text);
		log_errorx("cluster: %s: trying again in %.1f s", ev->text, cl->setup_at - mono());
		cl->state = CL_FAILED;
		break;
	case CLEV_WATCH:
		if (ev->a == 0 && ev->b == 0 && !cl->synced[ev->kind]) {
			cl->synced[ev->kind] = true;
			maybe_ready(cl);
		}
		break;
	case CLEV_ASYNC_ERROR:
		log_warnx("cluster: NATS: %s", ev->text);
		break;
	case CLEV_CLOSED:
		cl->state = CL_CLOSED;
		cl->connected = false;
		taskd_exit_if_idle(cl->td);
		break;
	}
}

/* ---- timers ---- */

static void
heartbeat(struct cluster *cl)
{
	struct taskd *td = cl->td;
	double load[3] = { 0, 0, 0 };
	char *subject, *text;
	json_t *o;

	if (getloadavg(load, 3) == -1)
		load[0] = load[1] = load[2] = 0;
	o = json_pack("{s:s,s:s,s:i,s:s,s:s,s:f,s:f,s:{s:i,s:I,s:I},s:{s:i,s:I,s:I},s:I,s:[f,f,f]}",
		      "node", cl->node, "host", cl->host, "pid", (int)getpid(), "version",
		      TASKD_VERSION, "state", cl->stopping ? "stopping" : "ready", "started_at",
		      td->started_at, "at", now_unix(),
		      "cpu", "slots", td->ppool != NULL ? taskd_ppool_config(td->cfg).max_workers : 0,
		      "running", (json_int_t)sched_running_class(td->sched, CLASS_CPU),
		      "queued", (json_int_t)sched_pending_class(td->sched, CLASS_CPU),
		      "io", "slots", td->cfg->thread_pool.max_threads,
		      "running", (json_int_t)sched_running_class(td->sched, CLASS_IO),
		      "queued", (json_int_t)sched_pending_class(td->sched, CLASS_IO),
		      "held", (json_int_t)cl->nholds, "load", load[0], load[1], load[2]);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	subject = xprintf("%s%s", cl->kv_nodes, cl->node);
	if (text != NULL)
		cluster_send(cl, subject, NULL, text, strlen(text));
	free(subject);
	free(text);
}

static void
cancel_retry(struct cluster *cl, struct cl_wait *w);

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;
	double now = mono(), wpi = cl->ack_wait / 3;
	struct cluster_hold *h, *next;
	struct cl_pullreq *r;
	struct cl_wait *w, *wn;
	size_t i;
	int k;

	cluster_pubs_expire(cl, now);
	/* In progress: oldest first; a hold that gets its +WPI goes to the back. */
	while ((h = TAILQ_FIRST(&cl->holds)) != NULL && now - h->acked_at >= wpi) {
		ack_send(cl, h->ack, "+WPI");
		h->acked_at = now;
		TAILQ_REMOVE(&cl->holds, h, entry);
		TAILQ_INSERT_TAIL(&cl->holds, h, entry);
	}
	for (h = TAILQ_FIRST(&cl->storing); h != NULL; h = next) {
		next = TAILQ_NEXT(h, entry);
		if (now - h->acked_at >= wpi) {
			ack_send(cl, h->ack, "+WPI");
			h->acked_at = now;
		}
		if (h->put_at > 0 && now >= h->put_at)
			store_entry(cl, h);
	}
	for (k = 0; k < NPULLS; k++) {
		while ((r = TAILQ_FIRST(&cl->pull[k].reqs)) != NULL && r->deadline <= now) {
			cl->pull[k].outstanding -= r->n;
			TAILQ_REMOVE(&cl->pull[k].reqs, r, entry);
			free(r);
		}
	}
	for (i = 0; i < cl->nnodes;) {
		if (now - cl->nodes[i].seen > CL_NODE_TTL)
			node_drop(cl, i);
		else
			i++;
	}
	for (w = TAILQ_FIRST(&cl->waits); w != NULL; w = wn) {
		wn = TAILQ_NEXT(w, entry);
		if (w->kind == W_CANCEL && w->retry_at > 0 && now >= w->retry_at)
			cancel_retry(cl, w);
	}
	if (cl->connected && cl->state != CL_CLOSING && now >= cl->heartbeat_at) {
		cl->heartbeat_at = now + CL_HEARTBEAT;
		heartbeat(cl);
	}
	if (cl->state == CL_FAILED && now >= cl->setup_at) {
		cl->state = cl->connected ? CL_SETUP : CL_CONNECTING;
		cluster_nats_task(cl, cl->conn != NULL ? TASK_SETUP : TASK_CONNECT | TASK_SETUP);
	}
	maybe_pull(cl);
	if (cl->stopping)
		taskd_exit_if_idle(cl->td);
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
static void
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
		w->retry_at = mono() + 0.05;
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

/* ---- status ---- */

static int
node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cl_node *)a)->name, ((const struct cl_node *)b)->name);
}

json_t *
cluster_status(struct cluster *cl)
{
	double now = mono();
	json_t *nodes = json_array(), *o;
	size_t i;

	if (cl->nnodes > 1)
		qsort(cl->nodes, cl->nnodes, sizeof *cl->nodes, node_cmp);
	for (i = 0; i < cl->nnodes; i++) {
		o = json_deep_copy(cl->nodes[i].info);
		json_object_set_new(o, "seen", json_real(now - cl->nodes[i].seen));
		json_array_append_new(nodes, o);
	}
	return json_pack("{s:s,s:s,s:s,s:b,s:s,s:o,s:s,s:i,s:f,s:I,s:I,s:{s:i,s:i,s:i},"
			 "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:o}",
			 "node", cl->node, "host", cl->host, "state", cluster_state_name(cl),
			 "connected", cl->connected, "url", cl->url,
			 "error", cl->error != NULL ? json_string(cl->error) : json_null(),
			 "stream", cl->stream, "replicas", cl->replicas, "ack_wait", cl->ack_wait,
			 "held", (json_int_t)cl->nholds, "in_flight", (json_int_t)cl->npubs,
			 "asked", "cpu", cl->pull[PULL_CPU].outstanding, "io",
			 cl->pull[PULL_IO].outstanding, "local", cl->pull[PULL_LOCAL].outstanding,
			 "counters", "submitted", (json_int_t)cl->n.submitted, "taken",
			 (json_int_t)cl->n.taken, "redelivered", (json_int_t)cl->n.redelivered,
			 "late", (json_int_t)cl->n.late, "dropped", (json_int_t)cl->n.dropped,
			 "retried", (json_int_t)cl->n.retried, "released",
			 (json_int_t)cl->n.released, "failed_puts", (json_int_t)cl->n.failed_puts,
			 "nodes", nodes);
}

/* ---- stopping ---- */

void
cluster_stop(struct cluster *cl, bool drain)
{
	struct taskd *td = cl->td;
	struct cluster_hold *h, *next;
	struct job *j;

	cl->stopping = true;
	cl->draining = drain;
	cl->close_deadline = mono() + CL_CLOSE_WAIT;
	for (h = TAILQ_FIRST(&cl->holds); h != NULL; h = next) {
		next = TAILQ_NEXT(h, entry);
		j = h->job;
		if (j->state == JOB_RUNNING) {
			/* Without drain its run is stopped: then it goes back (run_ended). */
			h->release = !drain;
			continue;
		}
		/* A drain runs what is queued; what waits goes to other nodes now. */
		if (drain && j->state == JOB_QUEUED)
			continue;
		if (j->state == JOB_QUEUED)
			sched_unqueue(td->sched, j);
		else
			life_forget(td->life, j);
		/* It did not run here: its entry says so (the next delivery is no redelivery). */
		put_state(cl, j);
		hold_release(cl, h, 0);
	}
	if (cl->nholds > 0 || !TAILQ_EMPTY(&cl->storing))
		log_info("cluster: stopping: %zu jobs held, %s", cl->nholds,
			 drain ? "draining" : "their runs are stopped and handed back");
}

bool
cluster_close(struct cluster *cl)
{
	struct cl_pubopts o = { .kv_delete = true };
	char *subject;

	if (cl->state == CL_CLOSED)
		return true;
	if (cl->state == CL_CLOSING)
		return false;
	/* Results and acks first (bounded: a cluster that does not answer is not waited for). */
	if ((!TAILQ_EMPTY(&cl->storing) || cl->npubs > 0) && cl->connected &&
	    mono() < cl->close_deadline)
		return false;
	if (!TAILQ_EMPTY(&cl->storing))
		log_warnx("cluster: results of jobs could not be stored before the stop: those "
			  "jobs will run again on another node");
	cl->state = CL_CLOSING;
	/* Gone from the other nodes' status at once, not after the heartbeat's TTL. */
	subject = xprintf("%s%s", cl->kv_nodes, cl->node);
	if (cl->connected)
		cluster_publish(cl, subject, "", 0, &o, put_done, NULL);
	free(subject);
	cluster_nats_task(cl, TASK_CLOSE);
	return false;
}

/* ---- lifecycle ---- */

static char *
random_hex(size_t bytes)
{
	unsigned char b[16];
	char *s = xcalloc(2 * bytes + 1, 1);
	size_t i;

	if (bytes > sizeof b || getrandom(b, bytes, 0) != (ssize_t)bytes)
		fatal("getrandom");
	for (i = 0; i < bytes; i++)
		snprintf(s + 2 * i, 3, "%02x", b[i]);
	return s;
}

struct cluster *
cluster_new(struct taskd *td)
{
	const struct config *cfg = td->cfg;
	struct cluster *cl = xcalloc(1, sizeof *cl);
	char host[256], *cause = NULL;
	int k;

	cl->td = td;
	cl->base = td->base;
	if (gethostname(host, sizeof host) == -1)
		snprintf(host, sizeof host, "localhost");
	host[sizeof host - 1] = '\0';
	cl->host = xstrdup(host);
	cl->node = cfg->cluster.node != NULL ? xstrdup(cfg->cluster.node)
					     : cluster_node_from_host(host);
	cl->instance = random_hex(8);
	cl->url = xstrdup(cfg->cluster.url);
	cl->stream = xstrdup(config_cluster_stream(cfg));
	cl->replicas = cfg->cluster.replicas;
	cl->ack_wait = cfg->cluster.ack_wait;
	cl->keep = cfg->cluster.keep;
	cl->credentials = cfg->cluster.credentials != NULL ? xstrdup(cfg->cluster.credentials) : NULL;
	cl->tls_ca = cfg->cluster.tls_ca != NULL ? xstrdup(cfg->cluster.tls_ca) : NULL;
	cl->tls_cert = cfg->cluster.tls_cert != NULL ? xstrdup(cfg->cluster.tls_cert) : NULL;
	cl->tls_key = cfg->cluster.tls_key != NULL ? xstrdup(cfg->cluster.tls_key) : NULL;
	cl->stream_subjects = xprintf("%s.jobs.>", cl->stream);
	cl->subject[PULL_CPU] = xprintf("%s.jobs.cpu", cl->stream);
	cl->subject[PULL_IO] = xprintf("%s.jobs.io", cl->stream);
	cl->subject[PULL_LOCAL] = xprintf("%s.jobs.local.%s", cl->stream, cl->node);
	cl->pull[PULL_CPU].consumer = xstrdup("cpu");
	cl->pull[PULL_IO].consumer = xstrdup("io");
	cl->pull[PULL_LOCAL].consumer = xprintf("local-%s", cl->node);
	for (k = 0; k < NPULLS; k++) {
		cl->pull[k].api = xprintf("$JS.API.CONSUMER.MSG.NEXT.%s.%s", cl->stream,
					  cl->pull[k].consumer);
		TAILQ_INIT(&cl->pull[k].reqs);
	}
	cl->bucket_jobs = xprintf("%s-jobs", cl->stream);
	cl->bucket_nodes = xprintf("%s-nodes", cl->stream);
	cl->kv_jobs = xprintf("$KV.%s.", cl->bucket_jobs);
	cl->kv_nodes = xprintf("$KV.%s.", cl->bucket_nodes);
	cl->ctl_prefix = xprintf("%s.ctl.", cl->stream);
	cl->ctl_logs = xprintf("%s%s.logs", cl->ctl_prefix, cl->node);
	pthread_mutex_init(&cl->mu, NULL);
	pthread_cond_init(&cl->cond, NULL);
	STAILQ_INIT(&cl->evq);
	TAILQ_INIT(&cl->pubs);
	TAILQ_INIT(&cl->holds);
	TAILQ_INIT(&cl->storing);
	TAILQ_INIT(&cl->waits);
	cl->state = CL_CONNECTING;
	cl->observer.changed = job_changed;
	cl->observer.arg = cl;
	jobs_observe(td->jobs, &cl->observer);
	sched_set_cluster_cb(td->sched, run_ended, cl);
	cl->tick = event_new(td->base, -1, EV_PERSIST, tick_cb, cl);
	cl->pull_ev = event_new(td->base, -1, 0, pull_cb, cl);
	if (cl->tick == NULL || cl->pull_ev == NULL)
		fatalx("cluster: cannot create its events");
	{
		struct timeval tv = { 0, (suseconds_t)(TICK * 1e6) };

		event_add(cl->tick, &tv);
	}
	if (cluster_nats_start(cl, &cause) == -1)
		fatalx("%s", cause);
	log_info("cluster: node %s on %s, stream %s: connecting", cl->node, cl->url, cl->stream);
	return cl;
}

void
cluster_free(struct cluster *cl)
{
	struct cluster_hold *h;
	struct cl_wait *w;
	struct cl_pub *p;
	int k;

	if (cl == NULL)
		return;
	event_free(cl->tick);
	event_free(cl->pull_ev);
	/* The connection first: no more events come. */
	cluster_nats_free(cl);
	while ((h = TAILQ_FIRST(&cl->holds)) != NULL) {
		h->job->cl.hold = NULL;
		TAILQ_REMOVE(&cl->holds, h, entry);
		hold_free(h);
	}
	while ((h = TAILQ_FIRST(&cl->storing)) != NULL) {
		TAILQ_REMOVE(&cl->storing, h, entry);
		hold_free(h);
	}
	while ((p = TAILQ_FIRST(&cl->pubs)) != NULL) {
		TAILQ_REMOVE(&cl->pubs, p, entry);
		cluster_pub_free(p);
	}
	while ((w = TAILQ_FIRST(&cl->waits)) != NULL) {
		for (size_t i = 0; w->jobs != NULL && i < w->n; i++)
			if (w->jobs[i] != NULL)
				job_free(w->jobs[i]);
		w->client = NULL;
		wait_free(cl, w);
	}
	pulls_forget(cl);
	for (k = 0; k < NPULLS; k++) {
		free(cl->pull[k].consumer);
		free(cl->pull[k].api);
		free(cl->subject[k]);
	}
	for (size_t i = 0; i < cl->nnodes; i++) {
		free(cl->nodes[i].name);
		json_decref(cl->nodes[i].info);
	}
	sched_set_cluster_cb(cl->td->sched, NULL, NULL);
	jobs_unobserve(cl->td->jobs, &cl->observer);
	pthread_mutex_destroy(&cl->mu);
	pthread_cond_destroy(&cl->cond);
	free(cl->nodes);
	free(cl->error);
	free(cl->node);
	free(cl->host);
	free(cl->instance);
	free(cl->url);
	free(cl->stream);
	free(cl->stream_subjects);
	free(cl->bucket_jobs);
	free(cl->bucket_nodes);
	free(cl->kv_jobs);
	free(cl->kv_nodes);
	free(cl->ctl_prefix);
	free(cl->ctl_logs);
	free(cl->credentials);
	free(cl->tls_ca);
	free(cl->tls_cert);
	free(cl->tls_key);
	free(cl);
}
