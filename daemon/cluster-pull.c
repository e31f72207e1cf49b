/*
 * Cluster mode: taking jobs from the stream (cluster-private.h,
 * doc/cluster.md). A node asks each consumer of the cluster for as many
 * jobs as it has free slots of that class (pull requests to
 * INBOX.f.KIND.NO), and its own queue for a batch; each job a request
 * brings is taken into its scheduler and held (cluster-hold.c), or NAK'ed
 * back to the stream while it is not due. Loop thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "cluster-msg.h"
#include "cluster-private.h"
#include "hpool.h"
#include "jobtype.h"
#include "life.h"
#include "log.h"
#include "sched.h"
#include "taskd.h"
#include "xmalloc.h"

void
schedule_pull(struct cluster *cl)
{
	event_active(cl->pull_ev, EV_TIMEOUT, 0);
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
		h->acked_at = clock_now(CLOCK_MONOTONIC);
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
void
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
void
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
	r->deadline = clock_now(CLOCK_MONOTONIC) + CL_PULL_EXPIRES + 2;
	snprintf(body, sizeof body, "{\"batch\":%d,\"expires\":%.0f}", n, CL_PULL_EXPIRES * 1e9);
	snprintf(reply, sizeof reply, "%s.f.%d.%" PRIu64, cl->inbox, (int)kind, r->no);
	if (cluster_send(cl, pl->api, reply, body, strlen(body)) == -1) {
		free(r);
		return;
	}
	TAILQ_INSERT_TAIL(&pl->reqs, r, entry);
	pl->outstanding += n;
}

void
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

void
pull_cb(evutil_socket_t fd, short what, void *arg)
{
	maybe_pull(arg);
}

void
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
