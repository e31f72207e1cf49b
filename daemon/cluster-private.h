/*
 * Private to the files of cluster mode. On the loop thread: cluster.c
 * (the state, the events from NATS, the timers, stopping, setup and
 * teardown), cluster-pull.c (taking jobs from the stream), cluster-hold.c
 * (the jobs held: their entries, results and acks), cluster-mirror.c
 * (the mirror of the jobs bucket), cluster-nodes.c (the node table,
 * heartbeats, status) and cluster-ops.c (submit, cancel, logs across
 * nodes), cluster-pub.c (publishing, with an answer expected or not).
 * The connection: cluster-nats.c (its options, the libevent adapter, the
 * hand-over of what NATS threads receive to the loop, starting and
 * stopping the admin thread) and cluster-admin.c (the admin thread, which
 * connects and sets up the stream, consumers, buckets and subscriptions).
 * doc/cluster.md describes the design.
 *
 * Threads: cl->nc is used from the loop thread (publishes, which never
 * block: the libevent adapter writes from the loop) and from the admin
 * thread (JetStream API calls, which wait for their answer: never on the
 * loop thread, whose loop reads the answer). NATS's own threads only call
 * cluster_post(). Everything in struct cluster not marked otherwise is the
 * loop thread's.
 */
#ifndef TASKD_CLUSTER_PRIVATE_H
#define TASKD_CLUSTER_PRIVATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/util.h>
#include <nats/nats.h>

#include "clock.h"
#include "cluster.h"
#include "job.h"

#define CL_HEARTBEAT 2.0       /* seconds between two heartbeats of a node */
#define CL_NODE_TTL 10.0       /* a node whose heartbeat is older is gone (the nodes bucket's TTL) */
#define CL_PULL_EXPIRES 5.0    /* seconds a pull request waits for jobs */
#define CL_PUB_TIMEOUT 5.0     /* seconds JetStream has to answer a publish before it is sent again */
#define CL_PUB_TRIES 3         /* sends of one publish before it fails */
/* "No responders" to a JetStream publish: a stream between leaders; sent again this often, so long. */
#define CL_PUB_NORESP_WAIT 0.25
#define CL_PUB_NORESP_FOR 10.0
#define CL_LOCAL_BATCH 64      /* jobs of this node's own queue asked for at once */
#define CL_REQUEST_TIMEOUT 5.0 /* seconds another node has to answer (logs) */
#define CL_CLOSE_WAIT 5.0      /* seconds a stopping node waits for its last results to be stored */
#define CL_DUPLICATE_WINDOW 120.0 /* seconds the stream remembers message ids */
#define CL_MAX_ACK_PENDING 10000000 /* deliveries a consumer lets be held at once */

enum cl_state {
	CL_CONNECTING, /* no connection yet, or lost: the library retries with backoff */
	CL_SETUP,      /* connected, setting up the stream, consumers, buckets, subscriptions */
	CL_SYNCING,    /* reading the jobs bucket into the table */
	CL_READY,      /* taking submits and jobs */
	CL_FAILED,     /* the setup failed (error says why): tried again after a while */
	CL_CLOSING,    /* stopping: the connection is being closed */
	CL_CLOSED,
};

/* What each subscription is for (the closure of its handler). */
enum cl_sub { SUB_INBOX, SUB_JOBS, SUB_NODES, SUB_LOGS, NSUBS };
/* The consumers a node pulls from: the cluster's queues, and its own. */
enum cl_pull { PULL_CPU, PULL_IO, PULL_LOCAL, NPULLS };

/* What NATS threads and the admin thread hand to the loop. */
enum cl_ev_type {
	CLEV_MSG,          /* msg arrived on subscription kind */
	CLEV_CONNECTED,    /* first connection (or a reconnection) made */
	CLEV_DISCONNECTED,
	CLEV_RETRYING,     /* a connection attempt failed: a = attempt, b = delay (ms), text = why */
	CLEV_SETUP,        /* the admin thread set up everything (rc 0) or failed (text) */
	CLEV_WATCH,        /* a bucket watch is up: kind, a = pending, b = delivered */
	CLEV_ASYNC_ERROR,  /* the library's asynchronous error (text) */
	CLEV_CLOSED,       /* the connection is closed (cluster_close) */
};

struct cl_ev {
	enum cl_ev_type type;
	int kind;
	natsMsg *msg;
	int rc;
	char *text;
	uint64_t a, b;
	STAILQ_ENTRY(cl_ev) entry;
};

/* Admin thread tasks (a bit mask). */
#define TASK_CONNECT 0x1
#define TASK_SETUP 0x2
#define TASK_CLOSE 0x4
#define TASK_QUIT 0x8
#define TASK_REWATCH 0x10 /* watch again the buckets in rewatch (their watch went silent) */

struct cl_subarg {
	struct cluster *cl;
	enum cl_sub kind;
};

/* How to publish (cluster_publish). */
struct cl_pubopts {
	const char *msgid;      /* Nats-Msg-Id (the stream drops a second message with it), or NULL */
	bool expect;            /* Nats-Expected-Last-Subject-Sequence: expect_seq (0: no such key yet) */
	uint64_t expect_seq;
	bool kv_delete;         /* KV-Operation: DEL (a bucket's delete marker) */
	bool resend;            /* safe to send again after a timeout */
};

/* A publish waiting for JetStream's answer (or a request waiting for another node's). */
struct cl_pub;
typedef void cl_pub_fn(struct cluster *cl, struct cl_pub *p, natsMsg *answer);
struct cl_pub {
	uint64_t ref;           /* its reply subject: INBOX.p.REF */
	double deadline;        /* monotonic */
	int tries;
	double noresp_since;    /* monotonic: the first "no responders" (0: none) */
	bool noresp;            /* the last answer was "no responders": due again at deadline */
	char *subject;
	char *data;
	size_t len;
	char msgid[64];
	struct cl_pubopts o;    /* o.msgid points to msgid */
	cl_pub_fn *done;        /* answer NULL: no answer in time (every try) */
	void *ctx;
	size_t idx;
	uint64_t job;           /* an entry of job (0: none): not sent again once another is written */
	uint32_t put;           /* its job_cluster.puts */
	TAILQ_ENTRY(cl_pub) entry;
};

/* An answer to a client that comes from the cluster (submit, cancel, logs). */
enum cl_wait_kind { W_SUBMIT, W_CANCEL, W_LOGS };
struct cl_wait {
	enum cl_wait_kind kind;
	struct client *client;  /* NULL: gone (or nobody to answer) */
	json_t *id;
	/* submit */
	bool batch, wait;
	size_t n, left, stored;
	char *error;
	uint64_t *ids;
	struct job **jobs;      /* until JetStream stored each */
	/* cancel, logs */
	uint64_t job;
	int tries;
	double retry_at;        /* monotonic, cancel: look at the job again then (0: not waiting) */
	TAILQ_ENTRY(cl_wait) entry;
};

/* A pull request in flight: n more jobs may come to INBOX.f.KIND.NO until deadline. */
struct cl_pullreq {
	uint64_t no;
	int n;
	double deadline; /* monotonic: after it, the request is taken as ended */
	TAILQ_ENTRY(cl_pullreq) entry;
};

struct cl_puller {
	char *consumer;
	char *api;       /* $JS.API.CONSUMER.MSG.NEXT.STREAM.CONSUMER */
	int outstanding; /* jobs asked for and not come yet */
	TAILQ_HEAD(, cl_pullreq) reqs;
};

/*
 * A delivery this node holds: the job is queued, waiting or running here
 * (job->cl.hold points back), or (job NULL) it ended and its result is
 * being stored in the bucket before the delivery is acknowledged.
 */
struct cluster_hold {
	struct job *job;
	uint64_t id;
	char *ack;           /* the delivery's ack subject */
	enum cl_pull kind;
	bool release;        /* stopping: hand it back once its run is stopped */
	bool retry;          /* its run failed and it is tried again: through the cluster */
	int cls;             /* counted in cl->active[cls] (CLASS_CPU, CLASS_IO) or -1 */
	double acked_at;     /* monotonic: delivered, or the last +WPI */
	char *text;          /* ended: its entry for the bucket, until stored */
	size_t text_len;
	bool nak;            /* ended for a retry: a delayed NAK (not an ack) once stored */
	double nak_delay;
	double put_at;       /* monotonic: store the entry (again) then, 0: being stored */
	TAILQ_ENTRY(cluster_hold) entry;
};

/* Another node, from its heartbeat. */
struct cl_node {
	char *name;
	json_t *info;        /* its heartbeat */
	double seen;         /* monotonic */
};

struct cluster {
	struct taskd *td;
	struct event_base *base;

	/* Names (cluster_new). */
	char *node;
	char *host;
	char *instance;      /* random, this run of this node */
	char *url;
	char *stream;
	char *stream_subjects;   /* STREAM.jobs.> */
	char *subject[NPULLS];   /* STREAM.jobs.cpu, .io, .local.NODE */
	char *bucket_jobs, *bucket_nodes;
	char *kv_jobs, *kv_nodes; /* $KV.BUCKET. */
	char *ctl_logs;          /* STREAM.ctl.NODE.logs */
	char *ctl_prefix;        /* STREAM.ctl. */
	char inbox[64];          /* _INBOX.RANDOM */
	int replicas;
	double ack_wait;
	double keep;
	char *credentials, *tls_ca, *tls_cert, *tls_key;
	bool tls;

	/* The connection (cluster-nats.c). */
	natsOptions *opts;
	natsConnection *nc;            /* admin thread: set (under mu) once Connect returned */
	natsConnection *conn;          /* the loop's: nc, taken on the first CLEV_CONNECTED */
	jsCtx *js;                     /* admin thread only */
	natsSubscription *subs[NSUBS]; /* admin thread creates (under mu), teardown destroys */
	unsigned rewatch;              /* under mu: 1 << kind of the watches to make again */
	struct cl_subarg subarg[NSUBS];
	pthread_t admin;
	bool admin_started;
	pthread_mutex_t mu;            /* guards tasks, evq, nc, rewatch, setting subs */
	pthread_cond_t cond;
	unsigned tasks;
	STAILQ_HEAD(, cl_ev) evq;
	bool evq_closed;               /* under mu: teardown began, cluster_post frees what comes */
	struct event *wake;

	/* State. */
	enum cl_state state;
	char *error;            /* why it is not ready, or NULL */
	bool connected;
	bool ever_ready;
	int setup_fails;
	double setup_at;        /* monotonic: when to try the setup again (CL_FAILED) */
	uint64_t retries;       /* connection attempts that failed */
	bool synced[NSUBS];     /* the bucket watch caught up (SUB_JOBS, SUB_NODES) */
	bool swept;             /* output files of jobs no longer known removed */

	struct cl_puller pull[NPULLS];
	uint64_t next_pull;

	TAILQ_HEAD(, cl_pub) pubs;
	uint64_t next_ref;
	size_t npubs;
	uint64_t msgseq;

	TAILQ_HEAD(, cluster_hold) holds;   /* with their job */
	TAILQ_HEAD(, cluster_hold) storing; /* ended, result being stored */
	size_t nholds;
	size_t active[3];                   /* held jobs queued or running, by class (CLASS_CPU, _IO) */

	TAILQ_HEAD(, cl_wait) waits;        /* answers that come from the cluster */

	struct cl_node *nodes;
	size_t nnodes;
	double heartbeat_at;

	struct event *tick;
	struct event *pull_ev;
	struct job_observer observer;
	bool stopping;
	bool draining;
	double close_deadline;

	struct {
		uint64_t submitted, taken, redelivered, late, dropped, retried, released, failed_puts;
	} n;
};

/* ---- cluster.c ---- */

/* The answer to a publish: 0 with *pa, or -1 with pa->error (no answer: answer NULL). */
struct cluster_puback;
int answer_parse(struct cluster *cl, natsMsg *answer, struct cluster_puback *pa);
/* The jobs bucket caught up (CL_SYNCING): ready, and the first pull requests. */
void maybe_ready(struct cluster *cl);

/* ---- cluster-pull.c ---- */

/* Look at the free slots again soon (on the loop, once however often asked). */
void schedule_pull(struct cluster *cl);
/* Pull requests for the free slots of each class, and for this node's own queue. */
void maybe_pull(struct cluster *cl);
void pull_cb(evutil_socket_t fd, short what, void *arg);
/* The pull requests in flight are dropped (the connection is new, or gone). */
void pulls_forget(struct cluster *cl);
/* A job a pull request brought (msg, a delivery of a consumer: its ack subject says which). */
void pulled(struct cluster *cl, natsMsg *msg);
/* Request no of the consumer of kind ended (msg's Status). */
void pull_ended(struct cluster *cl, enum cl_pull kind, uint64_t no, natsMsg *msg);

/* ---- cluster-hold.c ---- */

/* $KV.BUCKET.ID: job id's key in the jobs bucket. */
char *kv_subject(struct cluster *cl, uint64_t id);
/* Done of a bucket write nobody waits for: a failure is counted and logged. */
void put_done(struct cluster *cl, struct cl_pub *p, natsMsg *answer);
/* The state of held job j to the bucket (sent again only while it is j's latest entry). */
void put_state(struct cluster *cl, struct job *j);
/* h counted again in cl->active by its job's state. */
void hold_count(struct cluster *cl, struct cluster_hold *h);
/* This node holds j now: its delivery's ack subject is ack. */
struct cluster_hold *hold_new(struct cluster *cl, struct job *j, enum cl_pull kind,
			      const char *ack);
void hold_free(struct cluster_hold *h);
/* An ack of a delivery (+ACK, +WPI, -NAK ...). */
void ack_send(struct cluster *cl, const char *ack, const char *what);
/* NAK: deliver it again after delay seconds (0: at once, to whichever node asks). */
void nak_send(struct cluster *cl, const char *ack, double delay);
/* Hand a held job back to the cluster now (stopping, or not due yet). */
void hold_release(struct cluster *cl, struct cluster_hold *h, double delay);
/* Store the entry of an ended hold (again). */
void store_entry(struct cluster *cl, struct cluster_hold *h);
/* The table's observer (cl): held jobs' changes go to the bucket. */
void job_changed(struct job *j, int prev, void *arg);
/* sched-finish.c's question when a run of a job ended (sched_set_cluster_cb). */
bool run_ended(struct job *j, enum job_state st, void *arg);

/* ---- cluster-mirror.c ---- */

/* A message of the watch of the jobs bucket or the nodes bucket (kind). */
void watched(struct cluster *cl, enum cl_sub kind, natsMsg *msg);

/* ---- cluster-nodes.c ---- */

/* Node i is gone from the table. */
void node_drop(struct cluster *cl, size_t i);
/* A node's heartbeat (msg), or its delete marker (msg NULL: it stopped). */
void node_seen(struct cluster *cl, const char *name, natsMsg *msg);
/* This node's heartbeat to the nodes bucket. */
void heartbeat(struct cluster *cl);

/* ---- cluster-ops.c ---- */

/* An answer to client c (NULL: nobody to answer) waits for the cluster. */
struct cl_wait *wait_new(struct cluster *cl, struct client *c, json_t *id,
			 enum cl_wait_kind kind);
void wait_free(struct cluster *cl, struct cl_wait *w);
/* A cancel whose entry changed under it: look at the job again (its retry_at came). */
void cancel_retry(struct cluster *cl, struct cl_wait *w);
/* Another node asks for the output of a job that ran here. */
void logs_asked(struct cluster *cl, natsMsg *msg);

/* ---- cluster-nats.c ---- */

/* Options, the admin thread, the first connect (in the background). -1 with *cause. */
int cluster_nats_start(struct cluster *cl, char **cause);
/* Ask the admin thread for tasks (TASK_*). */
void cluster_nats_task(struct cluster *cl, unsigned tasks);
/* Stop the admin thread, destroy subscriptions, connection, options (after the loop). */
void cluster_nats_free(struct cluster *cl);
/* From any thread: hand an event to the loop. */
void cluster_post(struct cluster *cl, struct cl_ev *ev);
/* The loop's handler of posted events (cluster.c). */
void cluster_handle(struct cluster *cl, struct cl_ev *ev);
/* From any thread: an event of type with its fields (text copied) to the loop. */
void post(struct cluster *cl, enum cl_ev_type type, int kind, natsMsg *msg, int rc,
	  const char *text, uint64_t a, uint64_t b);
/* The library's message handler of every subscription (closure: its struct cl_subarg). */
void msg_cb(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure);
/* The last error of the library on this thread, as text for a message. */
const char *last_error(natsStatus s);

/* ---- cluster-admin.c ---- */

/* The admin thread (arg: the cluster): does the tasks it is asked for until TASK_QUIT. */
void *admin_main(void *arg);

/* ---- cluster-pub.c ---- */

/*
 * Publish data to subject with reply INBOX.p.REF; done is called with the
 * answer (or NULL). The pub owns copies of subject and data. NULL if the
 * connection refused it (done is not called).
 */
struct cl_pub *cluster_publish(struct cluster *cl, const char *subject, const char *data,
			       size_t len, const struct cl_pubopts *o, cl_pub_fn *done, void *ctx);
/* The reply to INBOX.p.REF has come: the pub it answers (taken off the list), or NULL. */
struct cl_pub *cluster_pub_take(struct cluster *cl, uint64_t ref);
void cluster_pub_free(struct cl_pub *p);
/* Send again what timed out; fail what ran out of tries (answer NULL). */
void cluster_pubs_expire(struct cluster *cl, double now);
/*
 * p (taken) was answered "no responders": true if it was taken care of
 * (it will be sent again in CL_PUB_NORESP_WAIT: o.resend, and
 * CL_PUB_NORESP_FOR has not passed since the first such answer; or it was
 * freed, outdated), false if done must be called.
 */
bool cluster_pub_later(struct cluster *cl, struct cl_pub *p);
/* Is p an entry of a job that has a later one (cluster-hold.c)? Then it is not sent again. */
bool cluster_pub_outdated(struct cluster *cl, const struct cl_pub *p);
/* A message without a reply wanted (acks, heartbeats); -1 if the connection refused it. */
int cluster_send(struct cluster *cl, const char *subject, const char *reply, const char *data,
		 size_t len);

#endif
