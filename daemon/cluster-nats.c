/*
 * Cluster mode's connection to NATS (cluster-private.h says who does
 * what on which thread): the connection's options (servers, backoff,
 * credentials, TLS), the libevent adapter that reads and writes it from
 * taskd's loop, the admin thread (connect, set up the stream, its
 * consumers, the buckets and the subscriptions, close), the hand-over of
 * what arrives on NATS's threads to the loop, and publishing with an
 * answer expected.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <event2/thread.h>

/*
 * nats.c's libevent adapter is a header of function definitions meant to
 * be included in one file of the program: this one. Its functions have no
 * prototypes of their own.
 */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#include <nats/adapters/libevent.h>
#pragma GCC diagnostic pop

#include "clock.h"
#include "cluster-msg.h"
#include "cluster-private.h"
#include "log.h"
#include "xmalloc.h"

#define NS_PER_S 1000000000.0
#define API_WAIT_MS 5000       /* JetStream API calls of the admin thread */
#define CONNECT_TIMEOUT_MS 2000
#define PING_INTERVAL_MS 5000  /* a silent server is noticed after 2 unanswered pings */
#define BACKOFF_FIRST_MS 100   /* connection attempts: 0.1 s, doubling up to 5 s */
#define BACKOFF_MAX_MS 5000

/* ---- from NATS's threads to the loop ---- */

static void ev_free(struct cl_ev *ev);

void
cluster_post(struct cluster *cl, struct cl_ev *ev)
{
	bool wake;

	pthread_mutex_lock(&cl->mu);
	/* The teardown has begun: freed here, while the library still runs (cluster_nats_free). */
	if (cl->evq_closed) {
		pthread_mutex_unlock(&cl->mu);
		ev_free(ev);
		return;
	}
	/* Not empty: a wake-up is on its way, and it takes the whole queue. */
	wake = STAILQ_EMPTY(&cl->evq);
	STAILQ_INSERT_TAIL(&cl->evq, ev, entry);
	pthread_mutex_unlock(&cl->mu);
	/* libevent is thread-aware (evthread_use_pthreads): this wakes the loop. */
	if (wake)
		event_active(cl->wake, EV_READ, 0);
}

static void
post(struct cluster *cl, enum cl_ev_type type, int kind, natsMsg *msg, int rc, const char *text,
     uint64_t a, uint64_t b)
{
	struct cl_ev *ev = xcalloc(1, sizeof *ev);

	ev->type = type;
	ev->kind = kind;
	ev->msg = msg;
	ev->rc = rc;
	ev->text = text != NULL ? xstrdup(text) : NULL;
	ev->a = a;
	ev->b = b;
	cluster_post(cl, ev);
}

static void
ev_free(struct cl_ev *ev)
{
	if (ev->msg != NULL)
		natsMsg_Destroy(ev->msg);
	free(ev->text);
	free(ev);
}

/* On the loop: everything posted since the last wake-up, in order. */
static void
wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cluster *cl = arg;
	STAILQ_HEAD(, cl_ev) q = STAILQ_HEAD_INITIALIZER(q);
	struct cl_ev *ev;

	pthread_mutex_lock(&cl->mu);
	STAILQ_CONCAT(&q, &cl->evq);
	pthread_mutex_unlock(&cl->mu);
	while ((ev = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, entry);
		cluster_handle(cl, ev);
		ev_free(ev);
	}
}

/* The library's callbacks (its threads). */

static void
msg_cb(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
	struct cl_subarg *sa = closure;

	post(sa->cl, CLEV_MSG, (int)sa->kind, msg, 0, NULL, 0, 0);
}

static void
connected_cb(natsConnection *nc, void *closure)
{
	post(closure, CLEV_CONNECTED, 0, NULL, 0, NULL, 0, 0);
}

static void
disconnected_cb(natsConnection *nc, void *closure)
{
	post(closure, CLEV_DISCONNECTED, 0, NULL, 0, NULL, 0, 0);
}

/*
 * An error of a bucket's watch (an ordered consumer): it missed the
 * server's heartbeats (its consumer was on a server that is gone), the
 * library could not make its consumer again after a reconnection (the
 * stream was between leaders), or it lost messages. Its mirror would go
 * stale: the admin thread makes it again, from each key's last value.
 */
static void
error_cb(natsConnection *nc, natsSubscription *sub, natsStatus err, void *closure)
{
	struct cluster *cl = closure;
	int k;

	post(cl, CLEV_ASYNC_ERROR, 0, NULL, (int)err, natsStatus_GetText(err), 0, 0);
	if (sub == NULL)
		return;
	pthread_mutex_lock(&cl->mu);
	for (k = SUB_JOBS; k <= SUB_NODES; k++) {
		if (cl->subs[k] == sub && !(cl->rewatch & (1u << k))) {
			cl->rewatch |= 1u << k;
			cl->tasks |= TASK_REWATCH;
			pthread_cond_signal(&cl->cond);
		}
	}
	pthread_mutex_unlock(&cl->mu);
}

/*
 * Between connection attempts (the first ones, and after a connection is
 * lost): 0.1 s doubling up to 5 s, plus up to a fifth more so that nodes
 * do not all come back at once. The attempt count is per pass over the
 * server list.
 */
static int64_t
backoff_cb(natsConnection *nc, int attempts, void *closure)
{
	struct cluster *cl = closure;
	int64_t ms = BACKOFF_FIRST_MS;
	const char *why = NULL;
	int i;

	for (i = 1; i < attempts && ms < BACKOFF_MAX_MS; i++)
		ms *= 2;
	if (ms > BACKOFF_MAX_MS)
		ms = BACKOFF_MAX_MS;
	ms += (int64_t)(random() % (ms / 5 + 1));
	/* This thread's last error: why the attempt failed (connection refused, ...). */
	why = nats_GetLastError(NULL);
	post(cl, CLEV_RETRYING, 0, NULL, 0, why != NULL && *why != '\0' ? why : "no server answers",
	     (uint64_t)attempts, (uint64_t)ms);
	return ms;
}

/* ---- options ---- */

/* The last error of the library on this thread, as text for a message. */
static const char *
last_error(natsStatus s)
{
	natsStatus last = NATS_OK;
	const char *text = nats_GetLastError(&last);

	/* (The thread's last error may be an older one, of another call.) */
	return text != NULL && *text != '\0' && last == s ? text : natsStatus_GetText(s);
}

static int
build_options(struct cluster *cl, char **cause)
{
	char *urls = xstrdup(cl->url), *tok, *save = NULL, *name;
	const char *servers[64];
	natsOptions *o = NULL;
	natsStatus s;
	int n = 0;

	for (tok = strtok_r(urls, ",", &save); tok != NULL && n < 64; tok = strtok_r(NULL, ",", &save)) {
		servers[n++] = tok;
		if (strncmp(tok, "tls://", 6) == 0)
			cl->tls = true;
	}
	name = xprintf("taskd %s", cl->node);
	s = natsOptions_Create(&o);
	if (s == NATS_OK)
		s = natsOptions_SetServers(o, servers, n);
	if (s == NATS_OK)
		s = natsOptions_SetName(o, name);
	if (s == NATS_OK)
		s = natsOptions_SetTimeout(o, CONNECT_TIMEOUT_MS);
	if (s == NATS_OK)
		s = natsOptions_SetPingInterval(o, PING_INTERVAL_MS);
	if (s == NATS_OK)
		s = natsOptions_SetMaxPingsOut(o, 2);
	if (s == NATS_OK)
		s = natsOptions_SetMaxReconnect(o, -1);
	if (s == NATS_OK)
		s = natsOptions_SetCustomReconnectDelay(o, backoff_cb, cl);
	if (s == NATS_OK)
		s = natsOptions_SetRetryOnFailedConnect(o, true, connected_cb, cl);
	if (s == NATS_OK)
		s = natsOptions_SetReconnectedCB(o, connected_cb, cl);
	if (s == NATS_OK)
		s = natsOptions_SetDisconnectedCB(o, disconnected_cb, cl);
	if (s == NATS_OK)
		s = natsOptions_SetErrorHandler(o, error_cb, cl);
	/* One delivery thread for all subscriptions: each handler only hands over. */
	if (s == NATS_OK)
		s = natsOptions_UseGlobalMessageDelivery(o, true);
	if (s == NATS_OK)
		s = natsOptions_SetEventLoop(o, cl->base, natsLibevent_Attach, natsLibevent_Read,
					     natsLibevent_Write, natsLibevent_Detach);
	if (s == NATS_OK && cl->credentials != NULL)
		s = natsOptions_SetUserCredentialsFromFiles(o, cl->credentials, NULL);
	if (s == NATS_OK && (cl->tls || cl->tls_ca != NULL || cl->tls_cert != NULL))
		s = natsOptions_SetSecure(o, true);
	if (s == NATS_OK && cl->tls_ca != NULL)
		s = natsOptions_LoadCATrustedCertificates(o, cl->tls_ca);
	if (s == NATS_OK && cl->tls_cert != NULL)
		s = natsOptions_LoadCertificatesChain(o, cl->tls_cert, cl->tls_key);
	free(urls);
	free(name);
	if (s != NATS_OK) {
		xasprintf(cause, "cluster: cannot set up the connection to %s: %s", cl->url,
			  last_error(s));
		natsOptions_Destroy(o);
		return -1;
	}
	cl->opts = o;
	return 0;
}

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

static void *
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

void
cluster_nats_task(struct cluster *cl, unsigned tasks)
{
	pthread_mutex_lock(&cl->mu);
	cl->tasks |= tasks;
	pthread_cond_signal(&cl->cond);
	pthread_mutex_unlock(&cl->mu);
}

int
cluster_nats_start(struct cluster *cl, char **cause)
{
	char *inbox = NULL;
	natsStatus s;
	int k;

	for (k = 0; k < NSUBS; k++) {
		cl->subarg[k].cl = cl;
		cl->subarg[k].kind = (enum cl_sub)k;
	}
	if (build_options(cl, cause) == -1)
		return -1;
	if ((s = natsInbox_Create(&inbox)) != NATS_OK) {
		xasprintf(cause, "cluster: %s", last_error(s));
		return -1;
	}
	snprintf(cl->inbox, sizeof cl->inbox, "%s", inbox);
	natsInbox_Destroy(inbox);
	cl->wake = event_new(cl->base, -1, 0, wake_cb, cl);
	if (cl->wake == NULL)
		fatalx("cluster: cannot create an event");
	if (pthread_create(&cl->admin, NULL, admin_main, cl) != 0)
		fatalx("cluster: cannot start a thread");
	cl->admin_started = true;
	cluster_nats_task(cl, TASK_CONNECT);
	return 0;
}

void
cluster_nats_free(struct cluster *cl)
{
	STAILQ_HEAD(, cl_ev) q = STAILQ_HEAD_INITIALIZER(q);
	struct cl_ev *ev;
	int k;

	if (cl->admin_started) {
		cluster_nats_task(cl, TASK_QUIT);
		pthread_join(cl->admin, NULL);
	}
	/*
	 * What was handed over and not taken (a message delivered while the
	 * connection closed), freed now, and from now on at once by
	 * cluster_post: libnats (3.4) frees a message on its garbage
	 * collector's thread, which nats_CloseAndWait ends. A message freed
	 * after it is lost when the library frees itself (a leak, when the
	 * wait timed out), or the call crashes (the library freed already).
	 * The threads that post are joined before the collector's.
	 */
	pthread_mutex_lock(&cl->mu);
	cl->evq_closed = true;
	STAILQ_CONCAT(&q, &cl->evq);
	pthread_mutex_unlock(&cl->mu);
	while ((ev = STAILQ_FIRST(&q)) != NULL) {
		STAILQ_REMOVE_HEAD(&q, entry);
		ev_free(ev);
	}
	for (k = 0; k < NSUBS; k++)
		if (cl->subs[k] != NULL)
			natsSubscription_Destroy(cl->subs[k]);
	if (cl->js != NULL)
		jsCtx_Destroy(cl->js);
	if (cl->nc != NULL)
		natsConnection_Destroy(cl->nc);
	natsOptions_Destroy(cl->opts);
	nats_CloseAndWait(2000);
	if (cl->wake != NULL)
		event_free(cl->wake);
}

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
