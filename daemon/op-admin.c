/*
 * The daemon as a whole: shutdown and reload (root and the daemon's own
 * user only), metrics (Prometheus text). doc/protocol.md.
 */
#include <stdlib.h>

#include <event2/buffer.h>

#include <taskd/protocol.h>

#include "events.h"
#include "log.h"
#include "ops.h"
#include "sched.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "tpool.h"

static op_fn op_shutdown;
static op_fn op_reload;
static op_fn op_metrics;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_shutdown_entry = {
	.name = TASKD_OP_SHUTDOWN,
	.fn = op_shutdown,
	.flags = OP_PRIVILEGED | OP_WHILE_STOPPING,
	.fields = { "drain" },
};

const struct op op_reload_entry = {
	.name = TASKD_OP_RELOAD,
	.fn = op_reload,
	.flags = OP_PRIVILEGED | OP_WHILE_STOPPING,
};

const struct op op_metrics_entry = {
	.name = TASKD_OP_METRICS,
	.fn = op_metrics,
	.flags = OP_WHILE_STOPPING,
};

static void
op_shutdown(struct taskd *td, struct client *c, struct request *req)
{
	json_t *d = json_object_get(req->root, "drain");
	bool drain = d != NULL && json_is_true(d);

	if (d != NULL && !json_is_boolean(d)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"drain\" must be true or false");
		return;
	}
	reply_ok(c, req->id, json_pack("{s:b,s:b}", "stopping", 1, "drain", drain));
	taskd_shutdown(td, drain);
}

static void
op_metrics(struct taskd *td, struct client *c, struct request *req)
{
	struct evbuffer *out = evbuffer_new();
	struct tpool_stats ts;
	char labels[64];
	json_t *text;
	int st;

	if (out == NULL)
		fatalx("out of memory (evbuffer)");
	stats_to_prometheus(out);
	for (st = 0; st < JOB_NSTATES; st++) {
		snprintf(labels, sizeof labels, "{state=\"%s\"}", job_state_name(st));
		stats_gauge(out, "jobs", labels, (double)jobs_count(td->jobs, st),
			    st == 0 ? "jobs in the table by state" : NULL);
	}
	stats_gauge(out, "queue_pending", NULL, (double)sched_pending(td->sched),
		    "jobs waiting to run");
	tpool_stats(td->tpool, &ts);
	stats_gauge(out, "thread_pool_threads", NULL, ts.threads, "pool threads alive");
	stats_gauge(out, "thread_pool_busy", NULL, ts.busy, "pool threads running a job");
	stats_gauge(out, "thread_pool_max", NULL, ts.max, "thread_pool.max_threads");
	stats_gauge(out, "clients", NULL, server_nclients(td->server), "connected clients");
	stats_gauge(out, "subscribers", NULL, (double)events_subscribers(td->events),
		    "connections subscribed to job events");
	stats_gauge(out, "uptime_seconds", NULL, now_unix() - td->started_at,
		    "seconds since taskd started");
	text = json_stringn((const char *)evbuffer_pullup(out, -1), evbuffer_get_length(out));
	evbuffer_free(out);
	reply_ok(c, req->id, json_pack("{s:o}", "text", text));
}

static void
op_reload(struct taskd *td, struct client *c, struct request *req)
{
	json_t *changed;
	char *cause = NULL;

	if (taskd_reload(td, &changed, &cause) == -1) {
		reply_err(c, req->id, TASKD_ERR_INVALID_CONFIG, cause);
		free(cause);
		return;
	}
	reply_ok(c, req->id, json_pack("{s:s,s:o}", "config", td->config_path, "changed",
				       changed));
}
