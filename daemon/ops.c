/*
 * The op table and its dispatcher (ops.h says what the dispatcher checks,
 * and in which order), and what the handlers share.
 *
 * Adding an op: doc/design.md "Adding an op".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "admission.h"
#include "cluster.h"
#include "jsonutil.h"
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
extern const struct op op_restart_entry;                               /* op-restart.c */
extern const struct op op_status_entry, op_list_entry, op_show_entry,  /* op-query.c */
	op_wait_entry, op_subscribe_entry;
extern const struct op op_cancel_entry, op_pause_entry, op_resume_entry, /* op-control.c */
	op_priority_entry, op_clean_entry;
extern const struct op op_logs_entry;                                  /* op-logs.c */
extern const struct op op_shutdown_entry, op_reload_entry,             /* op-admin.c */
	op_metrics_entry;

static const struct op *const ops[] = {
	&op_submit_entry,
	&op_restart_entry,
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

int
ops_check_priority(uid_t uid, int priority, struct proto_error *err)
{
	if (priority >= 0 || privileged_uid(uid))
		return 0;
	proto_error_set(err, TASKD_ERR_FORBIDDEN, "priority %d: only root or taskd's own user may "
			"ask for a priority below 0 (0 to %d are anyone's)", priority,
			TASKD_PRIORITY_MAX);
	return -1;
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

	/* Every answer is made to fit (pages, job objects cut): this would be a bug. */
	if (len > server_client_max_frame(c))
		log_warnx("an answer of %zu bytes exceeds limits.max_frame (%zu)", len,
			  server_client_max_frame(c));
	server_client_send(c, line, len);
	free(line);
}

void
reply_job(struct client *c, json_t *id, const struct job *j)
{
	size_t len;
	char *line = proto_ok(id, job_to_json(j), &len);

	/*
	 * The answer is written once: measuring the object first (job_to_json_fit)
	 * would write it twice. It fits exactly when the object fits ops_budget.
	 */
	if (len > server_client_max_frame(c)) {
		free(line);
		reply_ok(c, id, job_to_json_fit(j, ops_budget(c, id)));
		return;
	}
	server_client_send(c, line, len);
	free(line);
}

void
reply_err(struct client *c, json_t *id, const char *code, const char *message)
{
	size_t len, max;
	char *line = proto_fail(id, code, message, &len);
	json_t *cut;

	/* A message quoting a long input (a path) is cut to fit limits.max_frame. */
	if (len > server_client_max_frame(c)) {
		free(line);
		max = ops_budget(c, id) / 6;
		cut = string_cut(message, max > 64 ? max : 64);
		line = proto_fail(id, code, json_string_value(cut), &len);
		json_decref(cut);
	}
	STATS_INC(request_errors);
	server_client_send(c, line, len);
	free(line);
}

/* ---- answers within limits.max_frame ---- */

/* {"id":ID,"ok":true,"result":RESULT}\n around a result of size 0: what an answer adds. */
#define ENVELOPE_BYTES (sizeof "{\"id\":,\"ok\":true,\"result\":}\n" - 1)

size_t
ops_budget(struct client *c, json_t *id)
{
	size_t max = server_client_max_frame(c);
	size_t used = ENVELOPE_BYTES + json_text_size(id != NULL ? id : json_null());

	return used < max ? max - used : 0;
}

char *
ops_cursor_text(char kind, uint64_t a, uint64_t b, uint64_t c)
{
	return xprintf("%c%" PRIu64 ".%" PRIu64 ".%" PRIu64, kind, a, b, c);
}

int
ops_cursor_parse(const char *s, char kind, uint64_t v[3])
{
	unsigned long long n;
	char *end;
	int i;

	if (*s++ != kind)
		return -1;
	for (i = 0; i < 3; i++) {
		if (*s < '0' || *s > '9')
			return -1;
		errno = 0;
		n = strtoull(s, &end, 10);
		if (errno != 0 || *end != (i < 2 ? '.' : '\0'))
			return -1;
		v[i] = n;
		s = end + 1;
	}
	return 0;
}

int
ops_cursor(struct client *c, struct request *req, char kind, uint64_t v[3])
{
	json_t *cur = json_object_get(req->root, "cursor");

	if (cur == NULL)
		return 0;
	if (!json_is_string(cur) || ops_cursor_parse(json_string_value(cur), kind, v) == -1) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"cursor\" must be the \"next\" "
			  "of an earlier answer to the same request");
		return -1;
	}
	return 1;
}

void
page_init(struct page *p, struct client *c, json_t *id, const char *key, size_t reserve)
{
	/* {"KEY":[...],"next":CURSOR} around the items */
	size_t frame = strlen(key) + sizeof "{\"\":[],\"next\":}" - 1 + CURSOR_MAX + reserve;
	size_t budget = ops_budget(c, id);

	memset(p, 0, sizeof *p);
	p->c = c;
	p->id = id;
	p->key = key;
	p->room = budget > frame ? budget - frame : 0;
}

size_t
page_room(const struct page *p)
{
	return p->room > (p->n > 0) ? p->room - (p->n > 0) : 0;
}

bool
page_add(struct page *p, json_t *item, size_t extra)
{
	size_t size = json_text_size(item), need = size + (p->n > 0) + extra;

	if (need > p->room)
		return false;
	if (p->len + need + 1 > p->cap) {
		p->cap = (p->len + need + 1) * 2;
		p->buf = xreallocarray(p->buf, p->cap, 1);
	}
	if (p->n > 0)
		p->buf[p->len++] = ',';
	if (json_dumpb(item, p->buf + p->len, size, JSON_COMPACT | JSON_ENCODE_ANY) != size)
		fatalx("json_dumpb: the item changed size");
	p->len += size;
	p->room -= need;
	p->n++;
	return true;
}

void
page_send(struct page *p, json_t *more, const char *next)
{
	json_t *rest = more != NULL ? more : json_object();
	char *id, *fields, *line;
	size_t len;

	json_object_set_new(rest, "next", next != NULL ? json_string(next) : json_null());
	id = json_dumps(p->id != NULL ? p->id : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	fields = json_dumps(rest, JSON_COMPACT);
	if (id == NULL || fields == NULL)
		fatalx("out of memory (json_dumps)");
	/* fields is {...}: the items go first, then its members. */
	line = xprintf("{\"id\":%s,\"ok\":true,\"result\":{\"%s\":[%.*s],%s}\n", id, p->key,
		       (int)p->len, p->len > 0 ? p->buf : "", fields + 1);
	len = strlen(line);
	if (len > server_client_max_frame(p->c))
		log_warnx("a page of %zu bytes exceeds limits.max_frame (%zu)", len,
			  server_client_max_frame(p->c));
	server_client_send(p->c, line, len);
	free(line);
	free(fields);
	free(id);
	json_decref(rest);
	free(p->buf);
	p->buf = NULL;
}

void
reply_proto_err(struct client *c, json_t *id, struct proto_error *err)
{
	reply_err(c, id, err->code, err->message != NULL ? err->message : "error");
	proto_error_clear(err);
}

size_t
ops_take_items(json_t *page, json_t *list, size_t from, size_t *room)
{
	size_t i, size;

	for (i = from; i < json_array_size(list); i++) {
		size = json_text_size(json_array_get(list, i)) + (json_array_size(page) > 0);
		if (size > *room)
			break;
		json_array_append(page, json_array_get(list, i));
		*room -= size;
	}
	return i;
}

size_t
ops_split_lists(json_t *objects, const char *key, json_t *all)
{
	size_t i, n = 0;
	json_t *o;

	json_array_foreach(objects, i, o) {
		json_array_append(all, json_object_get(o, key));
		n += json_array_size(json_object_get(o, key));
		json_object_set_new(o, key, json_array());
	}
	return n;
}

size_t
ops_take_split(json_t *objects, const char *key, json_t *all, size_t from, size_t *room)
{
	size_t i, n = 0, took;
	json_t *o, *list;

	json_array_foreach(objects, i, o) {
		list = json_array_get(all, i);
		if (from < n + json_array_size(list)) {
			took = ops_take_items(json_object_get(o, key), list, from > n ? from - n : 0,
					      room);
			if (took < json_array_size(list))
				return n + took;
		}
		n += json_array_size(list);
	}
	return n;
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
	int rc;

	STATS_INC(requests);
	conn_of(c);
	rc = proto_decode(line, len, &req, &err);
	/* Only a submit's input may take a line beyond max_frame (server_set_input_room). */
	if (len > td->cfg->limits.max_frame &&
	    (req.root == NULL || len - proto_input_length(req.root) > td->cfg->limits.max_frame)) {
		STATS_INC(frames_too_large);
		proto_error_set(&err, TASKD_ERR_FRAME_TOO_LARGE,
				"frame exceeds limits.max_frame (%zu bytes; only a submit's "
				"\"input\" may make a line longer, up to limits.max_input)",
				(size_t)td->cfg->limits.max_frame);
		goto fail;
	}
	if (rc == -1)
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
