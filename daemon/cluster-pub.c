/*
 * Cluster mode: publishing on the loop thread (cluster-private.h). A
 * publish goes out with the reply subject INBOX.p.REF and waits in
 * cl->pubs for JetStream's answer (or another node's); one not answered
 * in CL_PUB_TIMEOUT is sent again if that is safe, one answered "no
 * responders" (a stream between leaders) again a little later, and one
 * that ran out of tries gets its done called without an answer. Messages
 * that want no answer (acks, heartbeats) go out with cluster_send.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cluster-private.h"
#include "log.h"
#include "xmalloc.h"

/* ---- publishing (loop thread) ---- */

static natsStatus
send_pub(struct cluster *cl, struct cl_pub *p)
{
	char reply[96];
	natsMsg *m = NULL;
	char seq[24];
	natsStatus s;

	snprintf(reply, sizeof reply, "%s.p.%" PRIu64, cl->inbox, p->ref);
	if (p->o.msgid == NULL && !p->o.expect && !p->o.kv_delete)
		return natsConnection_PublishRequest(cl->conn, p->subject, reply, p->data,
						     (int)p->len);
	s = natsMsg_Create(&m, p->subject, reply, p->data, (int)p->len);
	if (s == NATS_OK && p->o.msgid != NULL)
		s = natsMsgHeader_Set(m, "Nats-Msg-Id", p->o.msgid);
	if (s == NATS_OK && p->o.expect) {
		snprintf(seq, sizeof seq, "%" PRIu64, p->o.expect_seq);
		s = natsMsgHeader_Set(m, "Nats-Expected-Last-Subject-Sequence", seq);
	}
	if (s == NATS_OK && p->o.kv_delete)
		s = natsMsgHeader_Set(m, "KV-Operation", "DEL");
	if (s == NATS_OK)
		s = natsConnection_PublishMsg(cl->conn, m);
	natsMsg_Destroy(m);
	return s;
}

struct cl_pub *
cluster_publish(struct cluster *cl, const char *subject, const char *data, size_t len,
		const struct cl_pubopts *o, cl_pub_fn *done, void *ctx)
{
	struct cl_pub *p = xcalloc(1, sizeof *p);
	natsStatus s;

	p->ref = ++cl->next_ref;
	p->subject = xstrdup(subject);
	p->data = xmalloc(len + 1);
	memcpy(p->data, data, len);
	p->data[len] = '\0';
	p->len = len;
	if (o != NULL)
		p->o = *o;
	if (p->o.msgid != NULL) {
		snprintf(p->msgid, sizeof p->msgid, "%s", p->o.msgid);
		p->o.msgid = p->msgid;
	}
	p->done = done;
	p->ctx = ctx;
	p->tries = 1;
	if (cl->conn == NULL || (s = send_pub(cl, p)) != NATS_OK) {
		log_warnx("cluster: cannot publish to %s: %s", subject,
			  cl->conn == NULL ? "not connected" : natsStatus_GetText(s));
		cluster_pub_free(p);
		return NULL;
	}
	p->deadline = clock_now(CLOCK_MONOTONIC) + CL_PUB_TIMEOUT;
	TAILQ_INSERT_TAIL(&cl->pubs, p, entry);
	cl->npubs++;
	return p;
}

struct cl_pub *
cluster_pub_take(struct cluster *cl, uint64_t ref)
{
	struct cl_pub *p;

	/* Answers come mostly in order: the one looked for is near the head. */
	TAILQ_FOREACH(p, &cl->pubs, entry) {
		if (p->ref == ref) {
			TAILQ_REMOVE(&cl->pubs, p, entry);
			cl->npubs--;
			return p;
		}
	}
	return NULL;
}

void
cluster_pub_free(struct cl_pub *p)
{
	if (p == NULL)
		return;
	free(p->subject);
	free(p->data);
	free(p);
}

void
cluster_pubs_expire(struct cluster *cl, double now)
{
	struct cl_pub *p;

	while ((p = TAILQ_FIRST(&cl->pubs)) != NULL && p->deadline <= now) {
		TAILQ_REMOVE(&cl->pubs, p, entry);
		cl->npubs--;
		/* Not again: it would come after the later one and undo it (done has nothing to do). */
		if (cluster_pub_outdated(cl, p)) {
			cluster_pub_free(p);
			continue;
		}
		/* A message id (or an idempotent put) makes a second send harmless. */
		if (p->o.resend && (p->noresp || p->tries < CL_PUB_TRIES) &&
		    send_pub(cl, p) == NATS_OK) {
			/* (A send after "no responders" is not one of the tries: none took it.) */
			if (!p->noresp)
				p->tries++;
			p->noresp = false;
			p->deadline = now + CL_PUB_TIMEOUT;
			TAILQ_INSERT_TAIL(&cl->pubs, p, entry);
			cl->npubs++;
			continue;
		}
		p->done(cl, p, NULL);
		cluster_pub_free(p);
	}
}

bool
cluster_pub_later(struct cluster *cl, struct cl_pub *p)
{
	double now = clock_now(CLOCK_MONOTONIC);

	if (cluster_pub_outdated(cl, p)) {
		cluster_pub_free(p);
		return true;
	}
	if (!p->o.resend)
		return false;
	if (p->noresp_since == 0)
		p->noresp_since = now;
	else if (now - p->noresp_since >= CL_PUB_NORESP_FOR)
		return false;
	p->noresp = true;
	p->deadline = now + CL_PUB_NORESP_WAIT;
	/* At the head: due before the others, or little after (the tick takes it). */
	TAILQ_INSERT_HEAD(&cl->pubs, p, entry);
	cl->npubs++;
	return true;
}

int
cluster_send(struct cluster *cl, const char *subject, const char *reply, const char *data,
	     size_t len)
{
	natsStatus s;

	if (cl->conn == NULL)
		return -1;
	s = reply != NULL ? natsConnection_PublishRequest(cl->conn, subject, reply, data, (int)len)
			  : natsConnection_Publish(cl->conn, subject, data, (int)len);
	return s == NATS_OK ? 0 : -1;
}
