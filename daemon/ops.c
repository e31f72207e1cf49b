/*
 * The op table and its dispatcher (ops.h says what the dispatcher checks,
 * and in which order), and what the handlers share.
 *
 * Adding an op: doc/design.md "Adding an op".
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "admission.h"
#include "cluster.h"
#include "log.h"
#include "ops.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "xmalloc.h"

/*
 * The op table. Each op's entry (struct op: its name, handler, flags, the
 * selector fields and its own fields) sits in its theme's file next to its
 * handler; this list is every op the dispatcher knows.
 */
extern const struct op op_submit_entry;                                /* op-submit.c */
extern const struct op op_status_entry, op_list_entry, op_show_entry,  /* op-query.c */
	op_wait_entry, op_subscribe_entry;
extern const struct op op_cancel_entry, op_pause_entry, op_resume_entry, /* op-control.c */
	op_priority_entry, op_clean_entry;
extern const struct op op_logs_entry;                                  /* op-logs.c */
extern const struct op op_shutdown_entry, op_reload_entry,             /* op-admin.c */
	op_metrics_entry;

static const struct op *const ops[] = {
	&op_submit_entry,
	&op_status_entry,
	&op_list_entry,
	&op_show_entry,
	&op_wait_entry,
	&op_subscribe_entry,
	&op_cancel_entry,
	&op_pause_entry,
	&op_resume_entry,
	&op_priority_entry,
	&op_clean_entry,
	&op_logs_entry,
	&op_shutdown_entry,
	&op_reload_entry,
	&op_metrics_entry,
};

const struct op *
ops_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof ops / sizeof ops[0]; i++)
		if (strcmp(name, ops[i]->name) == 0)
			return ops[i];
	return NULL;
}

const struct op *const *
ops_table(size_t *n)
{
	*n = sizeof ops / sizeof ops[0];
	return ops;
}

/* ---- the checks ---- */

bool
ops_may_see(uid_t uid, const struct job *j)
{
	return privileged_uid(uid) || uid == j->uid;
}

static bool
own_field(const struct op *op, const char *key)
{
	size_t i;

	for (i = 0; op->fields[i] != NULL; i++)
		if (strcmp(key, op->fields[i]) == 0)
			return true;
	return false;
}

static bool
takes_field(const struct op *op, const char *key)
{
	return proto_envelope_field(key) || own_field(op, key) ||
	       (filter_field(key) & op->select) != 0 ||
	       ((op->flags & (OP_JOB | OP_JOB_OR)) && strcmp(key, "job") == 0) ||
	       ((op->flags & OP_JOB_FIELDS) && proto_job_field(key));
}

/* Append "name" to a ", "-separated list in buf. */
static void
add_name(char *buf, size_t len, const char *name)
{
	size_t off = strlen(buf);

	if (off < len)
		snprintf(buf + off, len - off, "%s\"%s\"", off > 0 ? ", " : "", name);
}

/* The fields op takes (besides the envelope), for messages; job: with "job". */
static void
describe(const struct op *op, bool job, char *buf, size_t len)
{
	unsigned bit;
	size_t i;

	buf[0] = '\0';
	if (op->flags & OP_JOB_FIELDS)
		snprintf(buf, len, "the job fields");
	if (job && (op->flags & (OP_JOB | OP_JOB_OR)))
		add_name(buf, len, "job");
	for (i = 0; op->fields[i] != NULL; i++)
		add_name(buf, len, op->fields[i]);
	for (bit = 1; bit <= FILTER_LAST; bit <<= 1)
		if (op->select & bit)
			add_name(buf, len, filter_field_name(bit));
	if (buf[0] == '\0')
		snprintf(buf, len, "no fields");
}

int
ops_check(const struct op *op, json_t *root, uid_t uid, bool stopping, struct proto_error *err)
{
	bool job = json_object_get(root, "job") != NULL;
	const char *key, *other = NULL;
	char names[256];
	json_t *v;

	json_object_foreach(root, key, v) {
		if (!takes_field(op, key)) {
			describe(op, true, names, sizeof names);
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"unknown field \"%.64s\" (%s takes %s)", key, op->name, names);
			return -1;
		}
		if (!proto_envelope_field(key) && strcmp(key, "job") != 0)
			other = key;
	}
	if ((op->flags & OP_JOB_OR) && job && other != NULL) {
		describe(op, false, names, sizeof names);
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "give either \"job\" or %s%s%s, not both",
				op->select != 0 ? "a selector (" : "", names,
				op->select != 0 ? ")" : "");
		return -1;
	}
	if (stopping && !(op->flags & OP_WHILE_STOPPING)) {
		proto_error_set(err, TASKD_ERR_SHUTTING_DOWN, "taskd is shutting down");
		return -1;
	}
	if (((op->flags & OP_PRIVILEGED) || ((op->flags & OP_PRIVILEGED_WIDE) && !job)) &&
	    !privileged_uid(uid)) {
		proto_error_set(err, TASKD_ERR_FORBIDDEN,
				"only root or the daemon's own user may do this");
		return -1;
	}
	return 0;
}

int
ops_resolve_job(const struct op *op, json_t *root, struct jobs *js, uid_t uid, struct job **job,
		struct proto_error *err)
{
	struct job *j;
	uint64_t id;

	*job = NULL;
	if (!(op->flags & OP_JOB) &&
	    !((op->flags & OP_JOB_OR) && json_object_get(root, "job") != NULL))
		return 0;
	if (proto_job_id(root, &id, err) == -1)
		return -1;
	j = jobs_find(js, id);
	/* Not announced: its submit is not stored yet (and may still fail: then it never was). */
	if (j == NULL || !j->announced) {
		proto_error_set(err, TASKD_ERR_NOT_FOUND, "no such job %llu", (unsigned long long)id);
		return -1;
	}
	if (!ops_may_see(uid, j)) {
		proto_error_set(err, TASKD_ERR_FORBIDDEN, "job %llu belongs to another user",
				(unsigned long long)id);
		return -1;
	}
	*job = j;
	return 0;
}

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
	uid_t uid = server_client_uid(c);
	double now = now_unix();
	struct job **v = NULL, *j;
	size_t cap = 0;

	*n = 0;
	for (j = jobs_first(td->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		if ((live && job_state_final(j->state)) || !j->announced || !ops_may_see(uid, j) ||
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
ops_has_selector(struct request *req)
{
	const char *key;
	json_t *v;

	json_object_foreach(req->root, key, v) {
		if (filter_field(key) & req->entry->select)
			return true;
	}
	return false;
}

int
ops_selector(struct client *c, struct request *req, struct filter *f)
{
	struct proto_error err = { 0 };

	if (filter_decode(req->root, req->entry->select, f, &err) == -1) {
		reply_proto_err(c, req->id, &err);
		return -1;
	}
	return 0;
}

/* ---- dispatch ---- */

void
ops_frame_cb(struct client *c, const char *line, size_t len, void *arg)
{
	struct taskd *td = arg;
	struct proto_error err = { 0 };
	uid_t uid = server_client_uid(c);
	const struct op *op;
	struct request req;

	STATS_INC(requests);
	conn_of(c);
	if (proto_decode(line, len, &req, &err) == -1)
		goto fail;
	if ((op = ops_find(req.op)) == NULL) {
		proto_error_set(&err, TASKD_ERR_UNKNOWN_OP, "unknown op \"%s\"", req.op);
		goto fail;
	}
	if (ops_check(op, req.root, uid, td->stopping, &err) == -1 ||
	    ops_resolve_job(op, req.root, td->jobs, uid, &req.job, &err) == -1)
		goto fail;
	req.entry = op;
	op->fn(td, c, &req);
	proto_request_free(&req);
	return;
fail:
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
	if (td->cluster != NULL)
		cluster_client_closed(td->cluster, c);
	free(cs);
	server_client_set_data(c, NULL);
}
