/*
 * Unit tests for the op dispatcher's checks (daemon/ops.c): for every op
 * of the table, which fields it takes (anything else is bad_request
 * "unknown field"), whether it needs privilege (always, or when it names
 * no job), whether it is allowed once a shutdown began, how it takes
 * "job", and the order of the checks. The expectations below are the
 * protocol's contract (doc/protocol.md): an op added to the table without
 * a line here fails test_every_op_listed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <taskd/protocol.h>

#include "admission.h"
#include "builtin.h"
#include "job.h"
#include "ops.h"
#include "proto.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Neither root nor the daemon's own user (the tests run as either). */
#define OTHER_UID (getuid() == 4242 ? 4243u : 4242u)

enum job_arg { NO_JOB, JOB_REQUIRED, JOB_OR_OTHERS };

/* Job description fields, which submit takes on top of its own. */
#define JOB_FIELDS "type argv cwd env class priority name timeout labels after after_any " \
		   "run_at retries retry_delay unique queue slots input array"

static const struct expect {
	const char *op;
	bool privileged;      /* forbidden to others, always */
	bool privileged_wide; /* forbidden to others when it names no job */
	bool while_stopping;  /* allowed once a shutdown began */
	enum job_arg job;
	const char *fields;   /* what it takes besides the envelope and "job" */
} expect[] = {
	{ "submit", false, false, false, NO_JOB, "wait jobs local " JOB_FIELDS },
	{ "restart", false, false, false, JOB_OR_OTHERS, "state states labels name ids array" },
	{ "status", false, false, true, NO_JOB, "cursor" },
	{ "list", false, false, true, NO_JOB, "limit cursor state labels name ids array" },
	{ "show", false, false, true, JOB_OR_OTHERS, "array" },
	{ "wait", false, false, true, JOB_OR_OTHERS, "labels name array" },
	{ "subscribe", false, false, true, NO_JOB, "ids labels states name" },
	{ "cancel", false, false, true, JOB_OR_OTHERS, "cursor labels name array" },
	{ "pause", false, true, false, JOB_OR_OTHERS, "class queue" },
	{ "resume", false, true, false, JOB_OR_OTHERS, "class queue" },
	{ "priority", false, false, true, JOB_REQUIRED, "priority" },
	{ "clean", false, false, true, NO_JOB, "state states labels name older_than array" },
	{ "logs", false, false, true, JOB_REQUIRED, "stream offset max" },
	{ "shutdown", true, false, true, NO_JOB, "drain" },
	{ "reload", true, false, true, NO_JOB, "" },
	{ "metrics", false, false, true, NO_JOB, "cursor" },
};

/* Every field any op takes: each is unknown to the ops that do not list it. */
static const char *const all_fields[] = {
	"wait", "jobs", "type", "argv", "cwd", "env", "class", "priority", "name", "timeout",
	"labels", "after", "after_any", "run_at", "retries", "retry_delay", "limit", "state",
	"states", "ids", "older_than", "stream", "offset", "max", "drain", "job", "cursor", "unique",
	"queue", "slots", "input", "array",
};

static bool
listed(const char *fields, const char *name)
{
	size_t n = strlen(name);
	const char *p = fields;

	while ((p = strstr(p, name)) != NULL) {
		if ((p == fields || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0'))
			return true;
		p += n;
	}
	return false;
}

static json_t *
request(const char *op)
{
	return json_pack("{s:i,s:s,s:s}", "v", 1, "id", "t", "op", op);
}

/* ops_check's verdict: NULL for ok, else the error code (the message is kept in *msg). */
static const char *
check(const struct op *op, json_t *req, uid_t uid, bool stopping, char **msg)
{
	struct proto_error err = { 0 };
	const char *code;

	if (ops_check(op, req, uid, stopping, &err) == 0) {
		assert_null(err.code);
		return NULL;
	}
	assert_non_null(err.code);
	assert_non_null(err.message);
	assert_true(err.message[0] != '\0');
	code = err.code;
	if (msg != NULL)
		*msg = err.message;
	else
		free(err.message);
	return code;
}

static const struct op *
find(const char *name)
{
	const struct op *op = ops_find(name);

	if (op == NULL)
		fail_msg("op %s is not in the table", name);
	assert_string_equal(op->name, name);
	return op;
}

static void
test_every_op_listed(void **state)
{
	const struct op *const *table;
	size_t n, i, k;

	(void)state;
	table = ops_table(&n);
	assert_int_equal(n, nitems(expect));
	for (i = 0; i < n; i++) {
		for (k = 0; k < nitems(expect) && strcmp(expect[k].op, table[i]->name) != 0; k++)
			;
		if (k == nitems(expect))
			fail_msg("op %s has no expectations in test-ops.c", table[i]->name);
		assert_non_null(table[i]->fn);
		assert_ptr_equal(ops_find(table[i]->name), table[i]);
	}
	assert_null(ops_find("nosuchop"));
	assert_null(ops_find(""));
	assert_null(ops_find("Status"));
}

/* Each field an op takes passes; every other one is an unknown field. */
static void
test_fields(void **state)
{
	const struct op *op;
	char *msg, want[64];
	const char *code;
	json_t *req;
	size_t i, f;

	(void)state;
	for (i = 0; i < nitems(expect); i++) {
		op = find(expect[i].op);
		/* The envelope alone (the values of its own fields are the handler's). */
		req = request(op->name);
		assert_null(check(op, req, 0, false, NULL));
		json_decref(req);
		for (f = 0; f < nitems(all_fields); f++) {
			bool takes = strcmp(all_fields[f], "job") == 0
					     ? expect[i].job != NO_JOB
					     : listed(expect[i].fields, all_fields[f]);

			req = request(op->name);
			json_object_set_new(req, all_fields[f], json_integer(1));
			msg = NULL;
			code = check(op, req, 0, false, &msg);
			if (takes && code != NULL)
				fail_msg("%s refused \"%s\": %s", op->name, all_fields[f], msg);
			if (!takes) {
				if (code == NULL)
					fail_msg("%s took \"%s\"", op->name, all_fields[f]);
				assert_string_equal(code, TASKD_ERR_BAD_REQUEST);
				snprintf(want, sizeof want, "unknown field \"%s\"", all_fields[f]);
				if (strstr(msg, want) == NULL)
					fail_msg("%s: %s", op->name, msg);
			}
			free(msg);
			json_decref(req);
		}
		/* A misspelling, and a field only another protocol version might know. */
		req = request(op->name);
		json_object_set_new(req, "lables", json_object());
		msg = NULL;
		assert_string_equal(check(op, req, 0, false, &msg), TASKD_ERR_BAD_REQUEST);
		assert_non_null(strstr(msg, "unknown field \"lables\""));
		/* The message says what the op takes. */
		assert_non_null(strstr(msg, op->name));
		free(msg);
		json_decref(req);
	}
}

static void
test_privilege(void **state)
{
	const struct op *op;
	const char *code;
	json_t *req;
	size_t i;

	(void)state;
	/* The one rule (admission.c): server.c's connection limits follow it too. */
	assert_true(privileged_uid(0));
	assert_true(privileged_uid(getuid()));
	assert_false(privileged_uid(OTHER_UID));
	for (i = 0; i < nitems(expect); i++) {
		op = find(expect[i].op);
		req = request(op->name);
		assert_null(check(op, req, 0, false, NULL));
		assert_null(check(op, req, getuid(), false, NULL));
		code = check(op, req, OTHER_UID, false, NULL);
		if (expect[i].privileged || expect[i].privileged_wide) {
			if (code == NULL)
				fail_msg("%s allowed to uid %d", op->name, OTHER_UID);
			assert_string_equal(code, TASKD_ERR_FORBIDDEN);
		} else if (code != NULL) {
			fail_msg("%s refused to uid %d: %s", op->name, OTHER_UID, code);
		}
		/* Naming one job: only the job's owner matters (ops_resolve_job). */
		if (expect[i].job != NO_JOB) {
			json_object_set_new(req, "job", json_integer(1));
			code = check(op, req, OTHER_UID, false, NULL);
			if (expect[i].privileged ? code == NULL : code != NULL)
				fail_msg("%s with a job, uid %d: %s", op->name, OTHER_UID,
					 code != NULL ? code : "allowed");
		}
		json_decref(req);
	}
}

static void
test_stopping(void **state)
{
	const struct op *op;
	const char *code;
	json_t *req;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(expect); i++) {
		op = find(expect[i].op);
		req = request(op->name);
		code = check(op, req, 0, true, NULL);
		if (expect[i].while_stopping) {
			if (code != NULL)
				fail_msg("%s refused while stopping: %s", op->name, code);
		} else {
			if (code == NULL)
				fail_msg("%s allowed while stopping", op->name);
			assert_string_equal(code, TASKD_ERR_SHUTTING_DOWN);
		}
		json_decref(req);
	}
}

/* "job" and what an OP_JOB_OR op takes instead of it: one or the other. */
static void
test_job_or_others(void **state)
{
	const struct op *op;
	char *msg, *fields, *name, *save;
	json_t *req;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(expect); i++) {
		if (expect[i].job != JOB_OR_OTHERS)
			continue;
		op = find(expect[i].op);
		fields = xstrdup(expect[i].fields);
		for (name = strtok_r(fields, " ", &save); name != NULL;
		     name = strtok_r(NULL, " ", &save)) {
			req = request(op->name);
			json_object_set_new(req, name, json_string("x"));
			assert_null(check(op, req, 0, false, NULL));
			json_object_set_new(req, "job", json_integer(3));
			msg = NULL;
			assert_string_equal(check(op, req, 0, false, &msg), TASKD_ERR_BAD_REQUEST);
			if (strstr(msg, "not both") == NULL || strstr(msg, name) == NULL)
				fail_msg("%s, job and %s: %s", op->name, name, msg);
			free(msg);
			json_decref(req);
		}
		free(fields);
	}
}

/* Unknown fields first, then "job" with its alternatives, stopping, privilege. */
static void
test_check_order(void **state)
{
	const struct op *shutdown = find("shutdown"), *pause = find("pause"), *submit = find("submit");
	json_t *req;

	(void)state;
	req = request("shutdown");
	json_object_set_new(req, "drian", json_true());
	assert_string_equal(check(shutdown, req, OTHER_UID, true, NULL), TASKD_ERR_BAD_REQUEST);
	json_decref(req);
	req = request("pause");
	assert_string_equal(check(pause, req, OTHER_UID, true, NULL), TASKD_ERR_SHUTTING_DOWN);
	json_object_set_new(req, "job", json_integer(1));
	json_object_set_new(req, "class", json_string("io"));
	assert_string_equal(check(pause, req, OTHER_UID, true, NULL), TASKD_ERR_BAD_REQUEST);
	json_decref(req);
	req = request("submit");
	json_object_set_new(req, "argv", json_pack("[s]", "true"));
	json_object_set_new(req, "labl", json_object());
	assert_string_equal(check(submit, req, 0, true, NULL), TASKD_ERR_BAD_REQUEST);
	json_object_del(req, "labl");
	assert_string_equal(check(submit, req, 0, true, NULL), TASKD_ERR_SHUTTING_DOWN);
	assert_null(check(submit, req, OTHER_UID, false, NULL));
	json_decref(req);
}

/* ---- "job" ---- */

static struct job *
add_job(struct jobs *js, uid_t uid, bool announced)
{
	struct job_spec spec;
	struct job *j;

	memset(&spec, 0, sizeof spec);
	spec.type = BUILTIN_NOOP;
	spec.argv = xcalloc(1, sizeof(char *));
	spec.cwd = xstrdup("/");
	j = jobs_add(js, &spec, uid, uid, 1700000000.0);
	if (announced)
		jobs_announce(js, j);
	return j;
}

static const char *
resolve(const char *opname, json_t *job, uid_t uid, struct jobs *js, struct job **j)
{
	struct proto_error err = { 0 };
	const char *code = NULL;
	json_t *req = request(opname);

	if (job != NULL)
		json_object_set_new(req, "job", job);
	*j = (struct job *)&err; /* must be overwritten */
	if (ops_resolve_job(find(opname), req, js, uid, j, &err) == -1) {
		code = err.code;
		assert_non_null(err.message);
		assert_null(*j);
	}
	proto_error_clear(&err);
	json_decref(req);
	return code;
}

static void
test_resolve_job(void **state)
{
	struct jobs *js = jobs_new();
	struct job *mine = add_job(js, 1000, true), *unstored = add_job(js, 1000, false), *j;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(expect); i++) {
		if (expect[i].job == NO_JOB) {
			assert_null(resolve(expect[i].op, NULL, 1000, js, &j));
			assert_null(j);
			continue;
		}
		/* The owner, root and the daemon's user get the job; others are forbidden. */
		assert_null(resolve(expect[i].op, json_integer((json_int_t)mine->id), 1000, js, &j));
		assert_ptr_equal(j, mine);
		assert_null(resolve(expect[i].op, json_integer((json_int_t)mine->id), 0, js, &j));
		assert_ptr_equal(j, mine);
		assert_null(resolve(expect[i].op, json_integer((json_int_t)mine->id), getuid(), js,
				    &j));
		assert_ptr_equal(j, mine);
		assert_string_equal(resolve(expect[i].op, json_integer((json_int_t)mine->id), 2000,
					    js, &j),
				    TASKD_ERR_FORBIDDEN);
		/* Not stored yet: as if it did not exist. */
		assert_string_equal(resolve(expect[i].op, json_integer((json_int_t)unstored->id),
					    1000, js, &j),
				    TASKD_ERR_NOT_FOUND);
		assert_string_equal(resolve(expect[i].op, json_integer(99), 1000, js, &j),
				    TASKD_ERR_NOT_FOUND);
		assert_string_equal(resolve(expect[i].op, json_string("1"), 1000, js, &j),
				    TASKD_ERR_BAD_REQUEST);
		assert_string_equal(resolve(expect[i].op, json_integer(0), 1000, js, &j),
				    TASKD_ERR_BAD_REQUEST);
		/* Without "job": required, or the op acts on its other fields. */
		if (expect[i].job == JOB_REQUIRED) {
			assert_string_equal(resolve(expect[i].op, NULL, 1000, js, &j),
					    TASKD_ERR_BAD_REQUEST);
		} else {
			assert_null(resolve(expect[i].op, NULL, 1000, js, &j));
			assert_null(j);
		}
	}
	jobs_free(js);
}

/* Cursors (doc/protocol.md "Pages"): what ops_cursor_text makes, ops_cursor_parse reads back. */
static void
test_cursor(void **state)
{
	static const char *const bad[] = {
		"", "L", "L1", "L1.2", "L1.2.", "L1.2.3.", "L1.2.3.4", "l1.2.3", "C1.2.3",
		"L1..3", "L-1.2.3", "L+1.2.3", "L 1.2.3", "L1.2.3 ", "L18446744073709551616.0.0",
		"Lx.2.3", "L0x1.2.3",
	};
	uint64_t v[3];
	char *t;
	size_t i;

	(void)state;
	t = ops_cursor_text('L', 17, UINT64_MAX, 0);
	assert_string_equal(t, "L17.18446744073709551615.0");
	assert_int_equal(ops_cursor_parse(t, 'L', v), 0);
	assert_true(v[0] == 17 && v[1] == UINT64_MAX && v[2] == 0);
	assert_int_equal(ops_cursor_parse(t, 'S', v), -1);
	free(t);
	for (i = 0; i < nitems(bad); i++)
		if (ops_cursor_parse(bad[i], 'L', v) != -1)
			fail_msg("cursor \"%s\" was taken", bad[i]);
}

/* Status's lists, the handlers' workers taken as one: every item once, in order, none cut. */
static void
test_take_split(void **state)
{
	json_t *objects = json_pack("[{s:s,s:[i,i,i]},{s:s,s:[]},{s:s,s:[i,i,i,i,i]}]", "name",
				    "a", "w", 1, 2, 3, "name", "b", "w", "name", "c", "w", 4, 5, 6,
				    7, 8);
	json_t *all = json_array(), *o, *got = json_array();
	size_t n, from = 0, to, room, i, k;

	(void)state;
	n = ops_split_lists(objects, "w", all);
	assert_int_equal(n, 8);
	assert_int_equal(json_array_size(all), 3);
	/* room for two items ("1,2" is three bytes) a page */
	for (k = 0; from < n; k++) {
		room = 3;
		to = ops_take_split(objects, "w", all, from, &room);
		assert_true(to > from && to - from <= 2);
		json_array_foreach(objects, i, o) {
			json_array_extend(got, json_object_get(o, "w"));
			json_array_clear(json_object_get(o, "w"));
		}
		from = to;
	}
	assert_int_equal(k, 4);
	assert_int_equal(json_array_size(got), 8);
	for (i = 0; i < 8; i++)
		assert_int_equal(json_integer_value(json_array_get(got, i)), (json_int_t)i + 1);
	/* past the end: nothing */
	room = 100;
	assert_int_equal(ops_take_split(objects, "w", all, n, &room), n);
	assert_int_equal(room, 100);
	json_decref(objects);
	json_decref(all);
	json_decref(got);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_op_listed),
	    cmocka_unit_test(test_fields),
	    cmocka_unit_test(test_privilege),
	    cmocka_unit_test(test_stopping),
	    cmocka_unit_test(test_job_or_others),
	    cmocka_unit_test(test_check_order),
	    cmocka_unit_test(test_resolve_job),
	    cmocka_unit_test(test_cursor),
	    cmocka_unit_test(test_take_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
