/*
 * Cluster mode's admin thread (cluster-private.h says who does what on
 * which thread): what waits for JetStream's answers, never on the loop.
 * It connects, sets up (idempotently, again after each reconnection) the
 * stream, its consumers, the buckets, the subscriptions and the buckets'
 * watches, makes again a watch that failed, and closes the connection.
 * What it did goes to the loop as events (post). The connection's options
 * and callbacks: cluster-nats.c.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-msg.h"
#include "cluster-private.h"
#include "log.h"
#include "xmalloc.h"

#define NS_PER_S 1000000000.0
#define API_WAIT_MS 5000       /* JetStream API calls of the admin thread */

/* ---- the admin thread: what waits for JetStream's answers ---- */

static int __attribute__((format(printf, 3, 4)))
setup_fail(char **why, natsStatus s, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) == -1)
		fatalx("out of memory (asprintf)");
	va_end(ap);
	free(*why);
	*why = xprintf("%s: %s", msg, last_error(s));
	free(msg);
	return -1;
}

static int
ensure_stream(struct cluster *cl, char **why)
{
	const char *subjects[1] = { cl->stream_subjects };
	jsStreamInfo *si = NULL;
	jsStreamConfig sc;
	jsErrCode jerr = 0;
	natsStatus s;
	char *bad = NULL;
	int tries;

	for (tries = 0; tries < 2; tries++) {
		s = js_GetStreamInfo(&si, cl->js, cl->stream, NULL, &jerr);
		if (s == NATS_OK)
			break;
		if (s != NATS_NOT_FOUND)
			return setup_fail(why, s, "cannot read stream %s", cl->stream);
		jsStreamConfig_Init(&sc);
		sc.Name = cl->stream;
		sc.Description = "taskd: the cluster's jobs (doc/cluster.md)";
		sc.Subjects = subjects;
		sc.SubjectsLen = 1;
		sc.Retention = js_WorkQueuePolicy;
		sc.Storage = js_FileStorage;
		sc.Discard = js_DiscardNew;
		sc.Replicas = cl->replicas;
		sc.Duplicates = (int64_t)(CL_DUPLICATE_WINDOW * NS_PER_S);
		s = js_AddStream(&si, cl->js, &sc, NULL, &jerr);
		if (s == NATS_OK) {
			log_info("cluster: created stream %s (work queue on %s, %d replicas)",
				 cl->stream, cl->stream_subjects, cl->replicas);
			break;
		}
		/* Another node may have made it meanwhile: read it again, once. */
	}
	if (s != NATS_OK)
		return setup_fail(why, s, "cannot create stream %s", cl->stream);
	if (cluster_stream_check(si->Config, cl->stream_subjects, &bad) == -1) {
		free(*why);
		*why = xprintf("stream %s exists with settings taskd cannot use: %s (delete it, or "
			       "set cluster.stream to another name)", cl->stream, bad);
		free(bad);
		jsStreamInfo_Destroy(si);
		return -1;
	}
	if (si->Config->Replicas != cl->replicas)
		log_warnx("cluster: stream %s has %d replicas, cluster.replicas says %d (the "
			  "stream's stand)", cl->stream, (int)si->Config->Replicas, cl->replicas);
	jsStreamInfo_Destroy(si);
	return 0;
}

static int
ensure_consumer(struct cluster *cl, enum cl_pull k, char **why)
{
	int64_t ack_wait = (int64_t)(cl->ack_wait * NS_PER_S);
	jsConsumerInfo *ci = NULL;
	jsConsumerConfig cc;
	jsErrCode jerr = 0;
	natsStatus s;

	jsConsumerConfig_Init(&cc);
	cc.Durable = cl->pull[k].consumer;
	cc.Description = "taskd: a node takes jobs from here";
	cc.DeliverPolicy = js_DeliverAll;
	cc.AckPolicy = js_AckExplicit;
	cc.AckWait = ack_wait;
	/* Redelivered for ever: taskd counts attempts itself (retries, doc/cluster.md). */
	cc.MaxDeliver = -1;
	/* Held jobs (waiting, delayed) stay unacknowledged: a limit far away. */
	cc.MaxAckPending = CL_MAX_ACK_PENDING;
	cc.FilterSubject = cl->subject[k];
	s = js_GetConsumerInfo(&ci, cl->js, cl->stream, cc.Durable, NULL, &jerr);
	if (s == NATS_NOT_FOUND) {
		s = js_AddConsumer(&ci, cl->js, cl->stream, &cc, NULL, &jerr);
		if (s != NATS_OK)
			s = js_GetConsumerInfo(&ci, cl->js, cl->stream, cc.Durable, NULL, &jerr);
	}
	if (s != NATS_OK)
		return setup_fail(why, s, "cannot set up consumer %s of stream %s", cc.Durable,
				  cl->stream);
	if (ci->Config->FilterSubject == NULL || strcmp(ci->Config->FilterSubject, cc.FilterSubject) != 0 ||
	    ci->Config->AckPolicy != js_AckExplicit) {
		free(*why);
		*why = xprintf("consumer %s of stream %s exists with settings taskd cannot use (it "
			       "must take %s with explicit acks): delete it", cc.Durable, cl->stream,
			       cc.FilterSubject);
		jsConsumerInfo_Destroy(ci);
		return -1;
	}
	if (ci->Config->AckWait != ack_wait || ci->Config->MaxAckPending != CL_MAX_ACK_PENDING ||
	    ci->Config->MaxDeliver != -1) {
		jsConsumerInfo_Destroy(ci);
		ci = NULL;
		s = js_UpdateConsumer(&ci, cl->js, cl->stream, &cc, NULL, &jerr);
		if (s != NATS_OK)
			return setup_fail(why, s, "cannot update consumer %s of stream %s",
					  cc.Durable, cl->stream);
		log_info("cluster: consumer %s now waits %.0f s for acks", cc.Durable, cl->ack_wait);
	}
	jsConsumerInfo_Destroy(ci);
	return 0;
}

static int
ensure_bucket(struct cluster *cl, const char *bucket, double ttl, char **why)
{
	kvStore *kv = NULL;
	kvConfig kc;
	natsStatus s;

	s = js_KeyValue(&kv, cl->js, bucket);
	if (s == NATS_NOT_FOUND) {
		kvConfig_Init(&kc);
		kc.Bucket = bucket;
		kc.Description = "taskd (doc/cluster.md)";
		kc.History = 1;
		kc.TTL = (int64_t)(ttl * NS_PER_S);
		kc.StorageType = js_FileStorage;
		kc.Replicas = cl->replicas;
		s = js_CreateKeyValue(&kv, cl->js, &kc);
		if (s != NATS_OK)
			s = js_KeyValue(&kv, cl->js, bucket);
	}
	if (s != NATS_OK)
		return setup_fail(why, s, "cannot set up bucket %s", bucket);
	kvStore_Destroy(kv);
	return 0;
}

/* Everything of a bucket from now on, each key's last value first (an ordered consumer). */
static int
watch_bucket(struct cluster *cl, enum cl_sub kind, const char *bucket, char **why)
{
	natsSubscription *sub = NULL;
	char *subject, *stream;
	jsConsumerInfo *ci = NULL;
	jsSubOptions so;
	jsErrCode jerr = 0;
	natsStatus s;

	if (cl->subs[kind] != NULL)
		return 0;
	subject = xprintf("$KV.%s.>", bucket);
	stream = xprintf("KV_%s", bucket);
	jsSubOptions_Init(&so);
	so.Stream = stream;
	so.Ordered = true;
	so.Config.DeliverPolicy = js_DeliverLastPerSubject;
	s = js_Subscribe(&sub, cl->js, subject, msg_cb, &cl->subarg[kind], NULL, &so, &jerr);
	free(subject);
	free(stream);
	if (s != NATS_OK)
		return setup_fail(why, s, "cannot watch bucket %s", bucket);
	/* (error_cb looks for it there.) */
	pthread_mutex_lock(&cl->mu);
	cl->subs[kind] = sub;
	pthread_mutex_unlock(&cl->mu);
	/* How much there is to read: the loop knows it caught up when that much came. */
	s = natsSubscription_GetConsumerInfo(&ci, cl->subs[kind], NULL, &jerr);
	if (s != NATS_OK)
		return setup_fail(why, s, "cannot read the watch of bucket %s", bucket);
	post(cl, CLEV_WATCH, (int)kind, NULL, 0, NULL, ci->NumPending, ci->Delivered.Consumer);
	jsConsumerInfo_Destroy(ci);
	return 0;
}

static int
subscribe(struct cluster *cl, enum cl_sub kind, const char *subject, char **why)
{
	natsStatus s;

	if (cl->subs[kind] != NULL)
		return 0;
	s = natsConnection_Subscribe(&cl->subs[kind], cl->nc, subject, msg_cb, &cl->subarg[kind]);
	if (s == NATS_OK)
		s = natsSubscription_SetPendingLimits(cl->subs[kind], -1, -1);
	if (s != NATS_OK) {
		if (cl->subs[kind] != NULL)
			natsSubscription_Destroy(cl->subs[kind]);
		cl->subs[kind] = NULL;
		return setup_fail(why, s, "cannot subscribe to %s", subject);
	}
	return 0;
}

/* Idempotent: after a reconnection it checks what the server has (it may have lost it). */
static int
setup(struct cluster *cl, char **why)
{
	char *inbox_all = xprintf("%s.>", cl->inbox);
	jsOptions jo;
	natsStatus s;
	int rc = -1, k;

	if (cl->js == NULL) {
		jsOptions_Init(&jo);
		jo.Wait = API_WAIT_MS;
		if ((s = natsConnection_JetStream(&cl->js, cl->nc, &jo)) != NATS_OK) {
			setup_fail(why, s, "cannot use JetStream");
			goto out;
		}
	}
	if (subscribe(cl, SUB_INBOX, inbox_all, why) == -1 || ensure_stream(cl, why) == -1)
		goto out;
	for (k = 0; k < NPULLS; k++)
		if (ensure_consumer(cl, (enum cl_pull)k, why) == -1)
			goto out;
	if (ensure_bucket(cl, cl->bucket_jobs, cl->keep, why) == -1 ||
	    ensure_bucket(cl, cl->bucket_nodes, CL_NODE_TTL, why) == -1 ||
	    subscribe(cl, SUB_LOGS, cl->ctl_logs, why) == -1 ||
	    watch_bucket(cl, SUB_NODES, cl->bucket_nodes, why) == -1 ||
	    watch_bucket(cl, SUB_JOBS, cl->bucket_jobs, why) == -1)
		goto out;
	rc = 0;
out:
	free(inbox_all);
	return rc;
}

/*
 * Take the watches error_cb found dead out of subs, into old: the setup
 * that follows makes them again, then drop_watches ends the old ones (that
 * may wait for a server that is gone).
 */
static void
unwatch(struct cluster *cl, natsSubscription *old[NSUBS])
{
	unsigned which;
	int k;

	pthread_mutex_lock(&cl->mu);
	which = cl->rewatch;
	cl->rewatch = 0;
	for (k = SUB_JOBS; k <= SUB_NODES; k++) {
		if ((which & (1u << k)) && cl->subs[k] != NULL) {
			old[k] = cl->subs[k];
			cl->subs[k] = NULL;
		}
	}
	pthread_mutex_unlock(&cl->mu);
	for (k = SUB_JOBS; k <= SUB_NODES; k++)
		if (old[k] != NULL)
			log_warnx("cluster: the watch of bucket %s failed: watching it again",
				  k == SUB_JOBS ? cl->bucket_jobs : cl->bucket_nodes);
}

static void
drop_watches(natsSubscription *old[NSUBS])
{
	int k;

	for (k = 0; k < NSUBS; k++) {
		if (old[k] != NULL) {
			natsSubscription_Unsubscribe(old[k]);
			natsSubscription_Destroy(old[k]);
			old[k] = NULL;
		}
	}
}

static void
do_connect(struct cluster *cl)
{
	natsConnection *nc = NULL;
	natsStatus s;

	if (cl->nc != NULL)
		return;
	s = natsConnection_Connect(&nc, cl->opts);
	if (s == NATS_OK || s == NATS_NOT_YET_CONNECTED) {
		pthread_mutex_lock(&cl->mu);
		cl->nc = nc;
		pthread_mutex_unlock(&cl->mu);
		/* Not yet: the library goes on trying (backoff_cb), connected_cb says when. */
		if (s == NATS_OK)
			post(cl, CLEV_CONNECTED, 0, NULL, 0, NULL, 0, 0);
		return;
	}
	post(cl, CLEV_SETUP, 0, NULL, -1, last_error(s), 0, 0);
}

void *
admin_main(void *arg)
{
	natsSubscription *old[NSUBS] = { NULL };
	struct cluster *cl = arg;
	char *why = NULL;
	unsigned tasks;
	sigset_t all;

	/* Signals are the loop's (libevent's signal events). */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		pthread_mutex_lock(&cl->mu);
		while (cl->tasks == 0)
			pthread_cond_wait(&cl->cond, &cl->mu);
		tasks = cl->tasks;
		cl->tasks = 0;
		pthread_mutex_unlock(&cl->mu);
		if (tasks & TASK_QUIT)
			break;
		if (tasks & TASK_CONNECT)
			do_connect(cl);
		if (tasks & TASK_REWATCH)
			unwatch(cl, old);
		if ((tasks & (TASK_SETUP | TASK_REWATCH)) && cl->nc != NULL) {
			if (setup(cl, &why) == 0)
				post(cl, CLEV_SETUP, 0, NULL, 0, NULL, 0, 0);
			else
				post(cl, CLEV_SETUP, 0, NULL, -1, why, 0, 0);
			free(why);
			why = NULL;
		}
		drop_watches(old);
		if (tasks & TASK_CLOSE) {
			/* From here, while the loop still runs: the close flushes and waits for its PONG. */
			if (cl->nc != NULL)
				natsConnection_Close(cl->nc);
			post(cl, CLEV_CLOSED, 0, NULL, 0, NULL, 0, 0);
		}
	}
	nats_ReleaseThreadMemory();
	return NULL;
}
