/*
 * The op table and its dispatcher, and what the handlers share (ops.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "log.h"
#include "ops.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

/* ---- replies ---- */

void
reply_ok(struct client *c, json_t *id, json_t *result)
{
	size_t len;
	char *line = proto_ok(id, result, &len);

	server_client_send(c, line, len);
	free(line);
}

void
reply_err(struct client *c, json_t *id, const char *code, const char *message)
{
	size_t len;
	char *line = proto_fail(id, code, message, &len);

	STATS_INC(request_errors);
	server_client_send(c, line, len);
	free(line);
}

void
reply_proto_err(struct client *c, json_t *id, struct proto_error *err)
{
	reply_err(c, id, err->code, err->message != NULL ? err->message : "error");
	proto_error_clear(err);
}

/* ---- the caller, the connection, the jobs ---- */

/* Daemon-wide operations: root and the daemon's own user only. */
bool
ops_privileged(struct client *c, struct request *req)
{
	uid_t uid = server_client_uid(c);

	if (uid == 0 || uid == getuid())
		return true;
	reply_err(c, req->id, TASKD_ERR_FORBIDDEN,
		  "only root or the daemon's own user may do this");
	return false;
}

bool
ops_may_see(struct client *c, const struct job *j)
{
	uid_t uid = server_client_uid(c);

	return uid == 0 || uid == getuid() || uid == j->uid;
}

/* The job named by "job", or NULL after replying not_found/forbidden/bad_request. */
struct job *
ops_lookup(struct taskd *td, struct client *c, struct request *req)
{
	struct proto_error err = { 0 };
	char msg[64];
	uint64_t id;
	struct job *j;

	if (proto_job_id(req->root, &id, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return NULL;
	}
	j = jobs_find(td->jobs, id);
	/* Not announced: its submit is not stored yet (and may still fail: then it never was). */
	if (j == NULL || !j->announced) {
		snprintf(msg, sizeof msg, "no such job %llu", (unsigned long long)id);
		reply_err(c, req->id, TASKD_ERR_NOT_FOUND, msg);
		return NULL;
	}
	if (!ops_may_see(c, j)) {
		snprintf(msg, sizeof msg, "job %llu belongs to another user", (unsigned long long)id);
		reply_err(c, req->id, TASKD_ERR_FORBIDDEN, msg);
		return NULL;
	}
	return j;
}

struct conn *
conn_of(struct client *c)
{
	struct conn *cs = server_client_data(c);

	if (cs == NULL) {
		cs = xcalloc(1, sizeof *cs);
		TAILQ_INIT(&cs->waits);
		TAILQ_INIT(&cs->submits);
		TAILQ_INIT(&cs->groups);
		server_client_set_data(c, cs);
	}
	return cs;
}

/*
 * Jobs the client may see that pass f (in id order), non-final ones only if
 * live. Like lookup, not those whose submit is not stored yet.
 */
struct job **
ops_select(struct taskd *td, struct client *c, const struct filter *f, bool live, size_t *n)
{
	double now = now_unix();
	struct job **v = NULL, *j;
	size_t cap = 0;

	*n = 0;
	for (j = jobs_first(td->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		if ((live && job_state_final(j->state)) || !j->announced || !ops_may_see(c, j) ||
		    !filter_match(f, j, now))
			continue;
		if (*n == cap) {
			cap = cap ? cap * 2 : 16;
			v = xreallocarray(v, cap, sizeof *v);
		}
		v[(*n)++] = j;
	}
	return v;
}

bool
ops_has_selector(struct request *req, unsigned allow)
{
	return ((allow & FILTER_LABELS) && json_object_get(req->root, "labels") != NULL) ||
	       ((allow & FILTER_NAME) && json_object_get(req->root, "name") != NULL);
}

/* Decode the selector of a wait/cancel by labels; -1 after replying. */
int
ops_selector(struct client *c, struct request *req, unsigned allow, struct filter *f)
{
	struct proto_error err = { 0 };

	if (json_object_get(req->root, "job") != NULL) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
			  "give either \"job\" or a selector (\"labels\", \"name\"), not both");
		return -1;
	}
	if (filter_decode(req->root, allow | FILTER_STRICT, f, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return -1;
	}
	return 0;
}

/* ---- dispatch ---- */

static const struct {
	const char *name;
	op_fn *fn;
} ops[] = {
	{ TASKD_OP_SUBMIT, op_submit },
	{ TASKD_OP_STATUS, op_status },
	{ TASKD_OP_LIST, op_list },
	{ TASKD_OP_SHOW, op_show },
	{ TASKD_OP_WAIT, op_wait },
	{ TASKD_OP_CANCEL, op_cancel },
	{ TASKD_OP_LOGS, op_logs },
	{ TASKD_OP_SHUTDOWN, op_shutdown },
	{ TASKD_OP_RELOAD, op_reload },
	{ TASKD_OP_METRICS, op_metrics },
	{ TASKD_OP_PAUSE, op_pause },
	{ TASKD_OP_RESUME, op_resume },
	{ TASKD_OP_PRIORITY, op_priority },
	{ TASKD_OP_CLEAN, op_clean },
	{ TASKD_OP_SUBSCRIBE, op_subscribe },
};

void
ops_frame_cb(struct client *c, const char *line, size_t len, void *arg)
{
	struct taskd *td = arg;
	struct proto_error err = { 0 };
	struct request req;
	size_t i;

	STATS_INC(requests);
	conn_of(c);
	if (proto_decode(line, len, &req, &err) == -1) {
		reply_proto_err(c, req.id, &err);
		proto_request_free(&req);
		return;
	}
	for (i = 0; i < sizeof ops / sizeof ops[0]; i++) {
		if (strcmp(req.op, ops[i].name) == 0) {
			ops[i].fn(td, c, &req);
			proto_request_free(&req);
			return;
		}
	}
	proto_error_set(&err, TASKD_ERR_UNKNOWN_OP, "unknown op \"%s\"", req.op);
	reply_proto_err(c, req.id, &err);
	proto_request_free(&req);
}

void
ops_close_cb(struct client *c, void *arg)
{
	struct taskd *td = arg;
	struct conn *cs = server_client_data(c);

	if (cs == NULL)
		return;
	op_wait_closed(td, cs, c);
	op_submit_closed(cs);
	free(cs);
	server_client_set_data(c, NULL);
}
