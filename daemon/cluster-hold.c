/*
 * Cluster mode: the deliveries this node holds (cluster-private.h,
 * doc/cluster.md). A job taken from the stream is held: each change of its
 * state goes to the jobs bucket as its entry; once its final state is
 * stored, its delivery is acknowledged (+ACK), or for a retry NAK'ed with
 * its delay. The table's observer and sched-finish.c's question when a run
 * ended (a retry, a stopping node handing the job back) live here. Loop
 * thread.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-msg.h"
#include "cluster-private.h"
#include "life.h"
#include "log.h"
#include "taskd.h"
#include "xmalloc.h"

/* ---- the bucket: writing a job's entry ---- */

char *
kv_subject(struct cluster *cl, uint64_t id)
{
	return xprintf("%s%" PRIu64, cl->kv_jobs, id);
}

void
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
void
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

void
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

struct cluster_hold *
hold_new(struct cluster *cl, struct job *j, enum cl_pull kind, const char *ack)
{
	struct cluster_hold *h = xcalloc(1, sizeof *h);

	h->job = j;
	h->id = j->id;
	h->ack = xstrdup(ack);
	h->kind = kind;
	h->cls = -1;
	h->acked_at = clock_now(CLOCK_MONOTONIC);
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

void
hold_free(struct cluster_hold *h)
{
	free(h->ack);
	free(h->text);
	free(h);
}

void
ack_send(struct cluster *cl, const char *ack, const char *what)
{
	if (cluster_send(cl, ack, NULL, what, strlen(what)) == -1)
		log_warnx("cluster: cannot send %s to %s", what, ack);
}

/* NAK: deliver it again after delay seconds (0: at once, to whichever node asks). */
void
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
void
hold_release(struct cluster *cl, struct cluster_hold *h, double delay)
{
	hold_detach(cl, h);
	nak_send(cl, h->ack, delay);
	cl->n.released++;
	hold_free(h);
}

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
		h->put_at = clock_now(CLOCK_MONOTONIC) + 1;
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

void
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
		h->put_at = clock_now(CLOCK_MONOTONIC) + 1;
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
void
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
bool
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
