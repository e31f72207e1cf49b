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
 *
 * This file: the cluster's state, the events NATS's threads hand to the
 * loop (cluster_handle), the timers (+WPI, results to store again, pull
 * requests that ended unheard, heartbeats, the setup tried again),
 * stopping, and setting up and tearing down. Taking jobs: cluster-pull.c;
 * the jobs held: cluster-hold.c; the mirror: cluster-mirror.c; the node
 * table and heartbeats: cluster-nodes.c; submit, cancel and logs across
 * nodes: cluster-ops.c; the connection: cluster-nats.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/event.h>

#include "cluster-msg.h"
#include "cluster-private.h"
#include "life.h"
#include "log.h"
#include "output.h"
#include "sched.h"
#include "taskd.h"
#include "xmalloc.h"

#define TICK 0.2            /* seconds between two looks at timers (acks, pulls, heartbeats) */
#define SETUP_RETRY_MAX 30.0

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

/* ---- answers from JetStream ---- */

/* The answer to a publish: 0 with *pa, or -1 with pa->error (no answer: answer NULL). */
int
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

/* ---- events from NATS ---- */

void
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
		cl->setup_at = clock_now(CLOCK_MONOTONIC) + setup_backoff(cl->setup_fails);
		set_error(cl, ev->text);
		log_errorx("cluster: %s: trying again in %.1f s", ev->text,
			   cl->setup_at - clock_now(CLOCK_MONOTONIC));
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
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;
	double now = clock_now(CLOCK_MONOTONIC), wpi = cl->ack_wait / 3;
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

/* ---- stopping ---- */

void
cluster_stop(struct cluster *cl, bool drain)
{
	struct taskd *td = cl->td;
	struct cluster_hold *h, *next;
	struct job *j;

	cl->stopping = true;
	cl->draining = drain;
	cl->close_deadline = clock_now(CLOCK_MONOTONIC) + CL_CLOSE_WAIT;
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
	    clock_now(CLOCK_MONOTONIC) < cl->close_deadline)
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
