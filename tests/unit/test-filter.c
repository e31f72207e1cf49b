/*
 * Unit tests for daemon/filter.c, the job selectors of list, wait, cancel,
 * clean and subscribe: decoding each field (and only the allowed ones),
 * refusing bad values with bad_request, matching jobs by state(s), labels,
 * name, ids and age, and the field names the op table checks requests
 * against.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "filter.h"
#include "job.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#define ALL (FILTER_STATE | FILTER_STATES | FILTER_LABELS | FILTER_NAME | FILTER_OLDER_THAN | \
	     FILTER_IDS | FILTER_ARRAY)
#define NOW 1700001000.0

static void
decode_ok(const char *text, unsigned allow, struct filter *f)
{
	struct proto_error err = { 0 };
	json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);

	assert_non_null(o);
	if (filter_decode(o, allow, f, &err) != 0)
		fail_msg("refused %s: %s", text, err.message);
	assert_null(err.code);
	json_decref(o);
}

static void
decode_bad(const char *text, unsigned allow, const char *want)
{
	struct proto_error err = { 0 };
	struct filter f;
	json_t *o = json_loads(text, JSON_ALLOW_NUL, NULL);

	assert_non_null(o);
	memset(&f, 0xa5, sizeof f);
	if (filter_decode(o, allow, &f, &err) != -1)
		fail_msg("accepted %s", text);
	assert_string_equal(err.code, TASKD_ERR_BAD_REQUEST);
	if (err.message == NULL || strstr(err.message, want) == NULL)
		fail_msg("%s: message %s (wanted %s)", text, err.message, want);
	/* Nothing left to free on failure. */
	assert_null(f.name);
	assert_null(f.ids);
	assert_int_equal(f.labels.n, 0);
	proto_error_clear(&err);
	json_decref(o);
}

static struct job *
mkjob(uint64_t id, enum job_state st, const char *name, const char *labels, double finished)
{
	struct job *j = job_new();
	char *cause = NULL;
	json_t *l;

	j->id = id;
	j->state = st;
	j->spec.type = BUILTIN_NOOP;
	j->spec.name = name != NULL ? xstrdup(name) : NULL;
	if (labels != NULL) {
		l = json_loads(labels, 0, NULL);
		assert_int_equal(labels_from_json(l, "labels", &j->spec.labels, &cause), 0);
		json_decref(l);
	}
	j->finished_at = finished;
	return j;
}

static void
test_empty_matches_all(void **state)
{
	struct filter f;
	struct job *j = mkjob(1, JOB_RUNNING, NULL, NULL, 0);

	(void)state;
	decode_ok("{\"op\":\"list\"}", ALL, &f);
	assert_int_equal(f.given, 0);
	assert_true(filter_match(&f, j, NOW));
	filter_free(&f);
	/* Freeing twice is harmless (filter_free leaves an empty filter). */
	filter_free(&f);
	job_free(j);
}

static void
test_states(void **state)
{
	struct job *done = mkjob(1, JOB_DONE, NULL, NULL, NOW - 5), *q = mkjob(2, JOB_QUEUED, NULL,
									       NULL, 0);
	struct filter f;
	int st;

	(void)state;
	decode_ok("{\"state\":\"done\"}", ALL, &f);
	assert_int_equal(f.given, FILTER_STATE);
	assert_true(filter_match(&f, done, NOW));
	assert_false(filter_match(&f, q, NOW));
	assert_true(filter_state_given(&f, JOB_DONE));
	assert_false(filter_state_given(&f, JOB_QUEUED));
	filter_free(&f);
	decode_ok("{\"states\":[\"queued\",\"failed\"]}", ALL, &f);
	assert_false(filter_match(&f, done, NOW));
	assert_true(filter_match(&f, q, NOW));
	filter_free(&f);
	/* Every state name is known. */
	for (st = 0; st < JOB_NSTATES; st++) {
		char text[64];

		snprintf(text, sizeof text, "{\"state\":\"%s\"}", job_state_name(st));
		decode_ok(text, ALL, &f);
		assert_true(filter_state_given(&f, st));
		filter_free(&f);
	}
	decode_bad("{\"state\":\"finished\"}", ALL, "\"state\" must be one of queued, running");
	decode_bad("{\"state\":1}", ALL, "\"state\" must be one of");
	decode_bad("{\"states\":[]}", ALL, "non-empty array");
	decode_bad("{\"states\":\"done\"}", ALL, "non-empty array");
	decode_bad("{\"states\":[\"done\",\"nope\"]}", ALL, "\"states\" must be one of");
	job_free(done);
	job_free(q);
}

static void
test_labels_and_name(void **state)
{
	struct job *a = mkjob(1, JOB_DONE, "build", "{\"grp\":\"nightly\",\"os\":\"linux\"}", 0);
	struct job *b = mkjob(2, JOB_DONE, NULL, "{\"grp\":\"nightly\"}", 0);
	struct filter f;

	(void)state;
	decode_ok("{\"labels\":{\"grp\":\"nightly\"}}", ALL, &f);
	assert_true(filter_match(&f, a, NOW));
	assert_true(filter_match(&f, b, NOW));
	filter_free(&f);
	decode_ok("{\"labels\":{\"grp\":\"nightly\",\"os\":\"linux\"}}", ALL, &f);
	assert_true(filter_match(&f, a, NOW));
	assert_false(filter_match(&f, b, NOW));
	filter_free(&f);
	decode_ok("{\"name\":\"build\"}", ALL, &f);
	assert_true(filter_match(&f, a, NOW));
	assert_false(filter_match(&f, b, NOW)); /* no name never matches a name */
	filter_free(&f);
	decode_ok("{\"name\":\"Build\"}", ALL, &f);
	assert_false(filter_match(&f, a, NOW));
	filter_free(&f);
	decode_bad("{\"labels\":{}}", ALL, "give at least one");
	decode_bad("{\"labels\":[\"grp\"]}", ALL, "labels");
	decode_bad("{\"labels\":{\"grp\":1}}", ALL, "labels");
	decode_bad("{\"labels\":{\"bad key\":\"x\"}}", ALL, "labels");
	decode_bad("{\"name\":5}", ALL, "\"name\" must be a string");
	decode_bad("{\"name\":\"a\\u0000b\"}", ALL, "without NUL");
	job_free(a);
	job_free(b);
}

static void
test_older_than(void **state)
{
	struct job *old = mkjob(1, JOB_DONE, NULL, NULL, NOW - 3600);
	struct job *recent = mkjob(2, JOB_FAILED, NULL, NULL, NOW - 10);
	struct job *running = mkjob(3, JOB_RUNNING, NULL, NULL, 0);
	struct filter f;

	(void)state;
	decode_ok("{\"older_than\":60}", ALL, &f);
	assert_true(filter_match(&f, old, NOW));
	assert_false(filter_match(&f, recent, NOW));
	assert_false(filter_match(&f, running, NOW)); /* only finished jobs have an age */
	filter_free(&f);
	decode_ok("{\"older_than\":0}", ALL, &f);
	assert_true(filter_match(&f, recent, NOW));
	assert_false(filter_match(&f, running, NOW));
	filter_free(&f);
	decode_ok("{\"older_than\":10.5}", ALL, &f);
	assert_false(filter_match(&f, recent, NOW));
	filter_free(&f);
	decode_bad("{\"older_than\":-1}", ALL, "\"older_than\" must be a number of seconds >= 0");
	decode_bad("{\"older_than\":\"1h\"}", ALL, "older_than");
	job_free(old);
	job_free(recent);
	job_free(running);
}

static void
test_ids(void **state)
{
	struct job *j7 = mkjob(7, JOB_DONE, NULL, NULL, 0), *j8 = mkjob(8, JOB_DONE, NULL, NULL, 0);
	struct filter f;
	json_t *o, *a;
	size_t i;

	(void)state;
	decode_ok("{\"ids\":[9,7,3]}", ALL, &f);
	assert_int_equal(f.nids, 3);
	assert_int_equal(f.ids[0], 3); /* sorted: matched by binary search */
	assert_int_equal(f.ids[2], 9);
	assert_true(filter_match(&f, j7, NOW));
	assert_false(filter_match(&f, j8, NOW));
	filter_free(&f);
	decode_bad("{\"ids\":[]}", ALL, "\"ids\" must be an array of 1 to 100000");
	decode_bad("{\"ids\":7}", ALL, "\"ids\" must be an array");
	decode_bad("{\"ids\":[1,0]}", ALL, "\"ids\"[1] must be a job id");
	decode_bad("{\"ids\":[\"7\"]}", ALL, "\"ids\"[0]");
	/* At most 100000. */
	a = json_array();
	for (i = 0; i <= 100000; i++)
		json_array_append_new(a, json_integer((json_int_t)i + 1));
	o = json_pack("{s:o}", "ids", a);
	{
		struct proto_error err = { 0 };

		assert_int_equal(filter_decode(o, ALL, &f, &err), -1);
		proto_error_clear(&err);
	}
	json_decref(o);
	job_free(j7);
	job_free(j8);
}

/* Only the allowed fields are read: the others are the op table's business. */
static void
test_allow(void **state)
{
	struct filter f;
	struct job *j = mkjob(1, JOB_DONE, "x", NULL, NOW - 100);

	(void)state;
	decode_ok("{\"state\":\"nope\",\"name\":\"y\",\"ids\":\"bad\",\"labels\":{\"a\":\"b\"}}",
		  FILTER_LABELS, &f);
	assert_int_equal(f.given, FILTER_LABELS);
	assert_null(f.name);
	assert_null(f.ids);
	assert_int_equal(f.states, 0);
	filter_free(&f);
	decode_ok("{\"state\":\"done\",\"states\":[\"failed\"]}", FILTER_STATES, &f);
	assert_false(filter_match(&f, j, NOW));
	filter_free(&f);
	decode_ok("{\"name\":\"x\",\"older_than\":1000}", FILTER_NAME, &f);
	assert_true(filter_match(&f, j, NOW));
	filter_free(&f);
	job_free(j);
}

static void
test_field_names(void **state)
{
	static const struct {
		const char *name;
		unsigned bit;
	} fields[] = {
		{ "state", FILTER_STATE }, { "states", FILTER_STATES }, { "labels", FILTER_LABELS },
		{ "name", FILTER_NAME }, { "older_than", FILTER_OLDER_THAN }, { "ids", FILTER_IDS },
		{ "array", FILTER_ARRAY },
	};
	unsigned bit, all = 0;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(fields); i++) {
		assert_int_equal(filter_field(fields[i].name), fields[i].bit);
		assert_string_equal(filter_field_name(fields[i].bit), fields[i].name);
		all |= fields[i].bit;
	}
	/* FILTER_LAST is the last bit: the op table iterates up to it. */
	for (bit = 1; bit <= FILTER_LAST; bit <<= 1)
		assert_true(all & bit);
	assert_int_equal(all, ALL);
	assert_int_equal(filter_field("label"), 0);
	assert_int_equal(filter_field("job"), 0);
	assert_int_equal(filter_field(""), 0);
	assert_null(filter_field_name(0));
	assert_null(filter_field_name(FILTER_LAST << 1));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_empty_matches_all),
	    cmocka_unit_test(test_states),
	    cmocka_unit_test(test_labels_and_name),
	    cmocka_unit_test(test_older_than),
	    cmocka_unit_test(test_ids),
	    cmocka_unit_test(test_allow),
	    cmocka_unit_test(test_field_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
