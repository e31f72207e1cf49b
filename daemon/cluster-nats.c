/*
 * Cluster mode's connection to NATS (cluster-private.h says who does
 * what on which thread): the connection's options (servers, backoff,
 * credentials, TLS), the libevent adapter that reads and writes it from
 * taskd's loop, the hand-over of what arrives on NATS's threads to the
 * loop, and starting, asking and stopping the admin thread. The admin
 * thread itself (connect, set up the stream, its consumers, the buckets
 * and the subscriptions, close): cluster-admin.c. Publishing:
 * cluster-pub.c.
 */
#include <errno.h>
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

#include "cluster-private.h"
#include "log.h"
#include "xmalloc.h"

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

void
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

void
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
const char *
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

/* ---- the admin thread: started, asked, stopped (the loop) ---- */

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
