/*
 * The daemon as a whole: shutdown and reload (root and the daemon's own
 * user only), metrics (Prometheus text, monitor.c). doc/protocol.md.
 */
#include <stdlib.h>

#include <event2/buffer.h>

#include <taskd/protocol.h>

#include "log.h"
#include "monitor.h"
#include "ops.h"
#include "taskd.h"

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
	json_t *text;

	if (out == NULL)
		fatalx("out of memory (evbuffer)");
	monitor_render(td, out, METRICS_PROMETHEUS);
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
