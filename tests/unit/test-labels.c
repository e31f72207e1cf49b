/*
 * Unit tests for daemon/labels.c and daemon/filter.c: label validation
 * (keys, values, counts), sorting and matching; selector decoding errors
 * and matching by state, labels, name, ids and age.
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
#include "labels.h"
#include "xmalloc.h"

static int
decode(const char *text, struct labels *ls, char **cause)
{
	json_t *o = json_loads(text, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	int rc;

	assert_non_null(o);
	*cause = NULL;
	rc = labels_from_json(o, "labels", ls, cause);
	json_decref(o);
	return rc;
}

static void
expect_bad(const char *text, const char *fragment)
{
	struct labels ls;
	char *cause;

	assert_int_equal(decode(text, &ls, &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, fragment) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", cause, fragment);
	assert_int_equal(ls.n, 0);
	assert_null(ls.v);
	free(cause);
}

static void
test_keys(void **state)
{
	char key[TASKD_MAX_LABEL_KEY + 2];

	(void)state;
	assert_true(labels_key_valid("a"));
	assert_true(labels_key_valid("app.kubernetes.io-name_2"));
	assert_false(labels_key_valid(""));
	assert_false(labels_key_valid("a b"));
	assert_false(labels_key_valid("a=b"));
	assert_false(labels_key_valid("ä"));
	assert_false(labels_key_valid("a/b"));
	memset(key, 'k', sizeof key);
	key[TASKD_MAX_LABEL_KEY] = '\0';
	assert_true(labels_key_valid(key));
	key[TASKD_MAX_LABEL_KEY] = 'k';
	key[TASKD_MAX_LABEL_KEY + 1] = '\0';
	assert_false(labels_key_valid(key));
}

static void
test_decode_valid(void **state)
{
	struct labels ls;
	char *cause;
	json_t *o;

	(void)state;
	assert_int_equal(decode("{\"z\":\"1\",\"a\":\"\",\"m\":\"héllo\"}", &ls, &cause), 0);
	assert_int_equal(ls.n, 3);
	/* Sorted by key. */
	assert_string_equal(ls.v[0].key, "a");
	assert_string_equal(ls.v[1].key, "m");
	assert_string_equal(ls.v[2].key, "z");
	assert_string_equal(labels_get(&ls, "m"), "héllo");
	assert_string_equal(labels_get(&ls, "a"), "");
	assert_null(labels_get(&ls, "b"));
	o = labels_to_json(&ls);
	assert_int_equal(json_object_size(o), 3);
	assert_string_equal(json_string_value(json_object_get(o, "z")), "1");
	json_decref(o);
	labels_free(&ls);
	assert_int_equal(ls.n, 0);
	assert_int_equal(decode("{}", &ls, &cause), 0);
	assert_int_equal(ls.n, 0);
	o = labels_to_json(&ls);
	assert_int_equal(json_object_size(o), 0);
	json_decref(o);
}

static void
test_decode_invalid(void **state)
{
	char buf[4096];
	size_t off;
	int i;

	(void)state;
	expect_bad("[]", "must be an object");
	expect_bad("\"a=b\"", "must be an object");
	expect_bad("{\"\":\"v\"}", "bad key");
	expect_bad("{\"a b\":\"v\"}", "bad key");
	expect_bad("{\"k\":1}", "must be a string");
	expect_bad("{\"k\":null}", "must be a string");
	expect_bad("{\"k\":\"a\\u0000b\"}", "NUL");
	/* Key of 65 characters, value of 257 bytes. */
	snprintf(buf, sizeof buf, "{\"%0*d\":\"v\"}", TASKD_MAX_LABEL_KEY + 1, 0);
	expect_bad(buf, "bad key");
	snprintf(buf, sizeof buf, "{\"k\":\"%0*d\"}", TASKD_MAX_LABEL_VALUE + 1, 0);
	expect_bad(buf, "at most 256 bytes");
	snprintf(buf, sizeof buf, "{\"k\":\"%0*d\"}", TASKD_MAX_LABEL_VALUE, 0);
	{
		struct labels ls;
		char *cause;

		assert_int_equal(decode(buf, &ls, &cause), 0);
		labels_free(&ls);
	}
	/* 33 labels. */
	off = (size_t)snprintf(buf, sizeof buf, "{");
	for (i = 0; i <= TASKD_MAX_LABELS; i++)
		off += (size_t)snprintf(buf + off, sizeof buf - off, "%s\"k%d\":\"v\"",
					i ? "," : "", i);
	snprintf(buf + off, sizeof buf - off, "}");
	expect_bad(buf, "33 labels (at most 32)");
}

static void
mk(struct labels *ls, const char *text)
{
	char *cause;

	assert_int_equal(decode(text, ls, &cause), 0);
}

static void
test_match(void **state)
{
	struct labels have, want, none = { 0 };

	(void)state;
	mk(&have, "{\"app\":\"web\",\"env\":\"prod\",\"tier\":\"1\"}");
	assert_true(labels_match(&have, &none));
	assert_false(labels_match(&none, &have));
	mk(&want, "{\"env\":\"prod\"}");
	assert_true(labels_match(&have, &want));
	labels_free(&want);
	mk(&want, "{\"tier\":\"1\",\"app\":\"web\"}");
	assert_true(labels_match(&have, &want));
	labels_free(&want);
	mk(&want, "{\"env\":\"dev\"}");
	assert_false(labels_match(&have, &want));
	labels_free(&want);
	mk(&want, "{\"app\":\"web\",\"zone\":\"a\"}");
	assert_false(labels_match(&have, &want));
	labels_free(&want);
	mk(&want, "{\"aaa\":\"x\"}");
	assert_false(labels_match(&have, &want));
	labels_free(&want);
	/* Values compare exactly (no prefix). */
	mk(&want, "{\"env\":\"pro\"}");
	assert_false(labels_match(&have, &want));
	labels_free(&want);
	labels_copy(&want, &have);
	assert_true(labels_match(&have, &want));
	assert_true(labels_match(&want, &have));
	labels_free(&want);
	labels_free(&have);
}

/* ---- filter ---- */

static int
fdecode(const char *text, unsigned allow, struct filter *f, char **msg)
{
	struct proto_error err = { 0 };
	json_t *o = json_loads(text, 0, NULL);
	int rc;

	assert_non_null(o);
	rc = filter_decode(o, allow, f, &err);
	json_decref(o);
	*msg = err.message;
	return rc;
}

static void
ffail(const char *text, unsigned allow, const char *fragment)
{
	struct filter f;
	char *msg;

	assert_int_equal(fdecode(text, allow, &f, &msg), -1);
	assert_non_null(msg);
	if (strstr(msg, fragment) == NULL)
		fail_msg("message \"%s\" lacks \"%s\"", msg, fragment);
	free(msg);
}

static struct job *
add_job(struct jobs *js, const char *name, const char *labels)
{
	struct job_spec spec = { 0 };
	char *cause;

	spec.type = BUILTIN_NOOP;
	spec.argv = xcalloc(1, sizeof(char *));
	spec.class = CLASS_AUTO;
	if (name != NULL)
		spec.name = xstrdup(name);
	if (labels != NULL)
		assert_int_equal(decode(labels, &spec.labels, &cause), 0);
	return jobs_add(js, &spec, 1000, 1000, 1000.0);
}

static void
test_filter_decode(void **state)
{
	unsigned all = FILTER_STATE | FILTER_STATES | FILTER_LABELS | FILTER_NAME |
		       FILTER_OLDER_THAN | FILTER_IDS;

	(void)state;
	ffail("{\"state\":\"bogus\"}", all, "\"state\" must be one of queued, running");
	ffail("{\"state\":1}", all, "\"state\" must be one of");
	ffail("{\"states\":[]}", all, "non-empty array");
	ffail("{\"states\":[\"done\",\"x\"]}", all, "\"states\" must be one of");
	ffail("{\"labels\":{}}", all, "at least one");
	ffail("{\"labels\":[\"a=b\"]}", all, "must be an object");
	ffail("{\"labels\":{\"a b\":\"c\"}}", all, "bad key");
	ffail("{\"name\":5}", all, "\"name\" must be a string");
	ffail("{\"older_than\":-1}", all, "\"older_than\" must be");
	ffail("{\"older_than\":\"1h\"}", all, "\"older_than\" must be");
	ffail("{\"ids\":[]}", all, "\"ids\" must be");
	ffail("{\"ids\":[1,0]}", all, "\"ids\"[1]");
}

static void
test_filter_match(void **state)
{
	struct jobs *js = jobs_new();
	struct job *a, *b, *c;
	struct filter f;
	char *msg;

	(void)state;
	a = add_job(js, "build", "{\"app\":\"web\",\"env\":\"prod\"}");
	b = add_job(js, NULL, "{\"app\":\"web\"}");
	c = add_job(js, "build", NULL);
	/* Fields not allowed are ignored. */
	assert_int_equal(fdecode("{\"state\":\"done\"}", FILTER_LABELS, &f, &msg), 0);
	assert_true(filter_match(&f, a, 0));
	filter_free(&f);
	assert_int_equal(fdecode("{\"labels\":{\"app\":\"web\"}}", FILTER_LABELS, &f, &msg), 0);
	assert_true(filter_match(&f, a, 0));
	assert_true(filter_match(&f, b, 0));
	assert_false(filter_match(&f, c, 0));
	filter_free(&f);
	assert_int_equal(fdecode("{\"labels\":{\"app\":\"web\"},\"name\":\"build\"}",
				 FILTER_LABELS | FILTER_NAME, &f, &msg), 0);
	assert_true(filter_match(&f, a, 0));
	assert_false(filter_match(&f, b, 0));
	assert_false(filter_match(&f, c, 0));
	filter_free(&f);
	assert_int_equal(fdecode("{\"ids\":[3,1]}", FILTER_IDS, &f, &msg), 0);
	assert_true(filter_match(&f, a, 0));
	assert_false(filter_match(&f, b, 0));
	assert_true(filter_match(&f, c, 0));
	filter_free(&f);
	job_set_state(js, b, JOB_RUNNING);
	assert_int_equal(fdecode("{\"states\":[\"running\",\"done\"]}", FILTER_STATES, &f, &msg),
			 0);
	assert_false(filter_match(&f, a, 0));
	assert_true(filter_match(&f, b, 0));
	assert_true(filter_state_given(&f, JOB_DONE));
	assert_false(filter_state_given(&f, JOB_QUEUED));
	filter_free(&f);
	/* older_than: finished jobs only, by finished_at. */
	c->finished_at = 2000.0;
	jobs_finish(js, c, JOB_DONE, 100, NULL, NULL);
	assert_int_equal(fdecode("{\"older_than\":60}", FILTER_OLDER_THAN, &f, &msg), 0);
	assert_false(filter_match(&f, a, 5000.0)); /* not finished */
	assert_true(filter_match(&f, c, 2060.0));
	assert_false(filter_match(&f, c, 2059.0));
	filter_free(&f);
	jobs_free(js);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_decode_valid),
	    cmocka_unit_test(test_decode_invalid),
	    cmocka_unit_test(test_match),
	    cmocka_unit_test(test_filter_decode),
	    cmocka_unit_test(test_filter_match),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
