/*
 * Unit tests for daemon/proto.c: request decoding (envelope, ids, version,
 * hostile input), job descriptions (defaults, every rule of doc/protocol.md,
 * built-in arguments), job ids, and response lines.
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
#include "config.h"
#include "job.h"
#include "proto.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#define DEEP 10000

/* ---- proto_decode ---- */

static int
decode(const char *line, struct request *req, struct proto_error *err)
{
	return proto_decode(line, strlen(line), req, err);
}

/* line must be refused with code; the request is freed and err cleared. */
static void
assert_decode_fails(const char *line, size_t len, const char *code)
{
	struct proto_error err = {0};
	struct request req;

	if (proto_decode(line, len, &req, &err) != -1)
		fail_msg("accepted: %.*s", (int)(len > 200 ? 200 : len), line);
	assert_non_null(err.code);
	assert_string_equal(err.code, code);
	assert_non_null(err.message);
	assert_true(err.message[0] != '\0');
	assert_non_null(req.id);
	proto_request_free(&req);
	proto_error_clear(&err);
	assert_null(err.message);
	assert_null(err.code);
}

static void
assert_fails_with(const char *line, const char *code)
{
	assert_decode_fails(line, strlen(line), code);
}

static void
assert_bad(const char *line)
{
	assert_fails_with(line, TASKD_ERR_BAD_REQUEST);
}

static void
test_decode_valid(void **state)
{
	struct proto_error err = {0};
	struct request req;

	(void)state;
	assert_int_equal(decode("{\"v\":1,\"id\":5,\"op\":\"status\"}", &req, &err), 0);
	assert_null(err.code);
	assert_string_equal(req.op, TASKD_OP_STATUS);
	assert_true(json_is_integer(req.id));
	assert_int_equal(json_integer_value(req.id), 5);
	assert_true(json_is_object(req.root));
	proto_request_free(&req);

	assert_int_equal(decode("{\"id\":\"abc\",\"op\":\"list\",\"state\":\"done\"}", &req, &err),
	                 0);
	assert_string_equal(req.op, TASKD_OP_LIST);
	assert_true(json_is_string(req.id));
	assert_string_equal(json_string_value(req.id), "abc");
	assert_string_equal(json_string_value(json_object_get(req.root, "state")), "done");
	proto_request_free(&req);

	/* No id: null, so the response still has one. */
	assert_int_equal(decode("{\"op\":\"status\"}", &req, &err), 0);
	assert_non_null(req.id);
	assert_true(json_is_null(req.id));
	proto_request_free(&req);

	/* Any scalar is a fine id. */
	assert_int_equal(decode("{\"op\":\"status\",\"id\":2.5}", &req, &err), 0);
	assert_true(json_is_real(req.id));
	proto_request_free(&req);
	assert_int_equal(decode("{\"op\":\"status\",\"id\":null}", &req, &err), 0);
	assert_true(json_is_null(req.id));
	proto_request_free(&req);

	/* Whitespace around the object is fine. */
	assert_int_equal(decode("  {\"op\" : \"show\", \"job\" : 3}  ", &req, &err), 0);
	assert_string_equal(req.op, TASKD_OP_SHOW);
	proto_request_free(&req);
	assert_null(err.message);
}

/* Only len bytes are read: the frame is what comes before the newline. */
static void
test_decode_len(void **state)
{
	static const char buf[] = "{\"op\":\"status\"}\n{\"op\":\"list\"}";
	struct proto_error err = {0};
	struct request req;

	(void)state;
	assert_int_equal(proto_decode(buf, 15, &req, &err), 0);
	assert_string_equal(req.op, "status");
	proto_request_free(&req);
	/* Cut short: malformed. */
	assert_decode_fails(buf, 10, TASKD_ERR_BAD_REQUEST);
	assert_decode_fails(buf, 0, TASKD_ERR_BAD_REQUEST);
}

static void
test_decode_malformed(void **state)
{
	static const char *const lines[] = {
	    "",
	    "   ",
	    "{",
	    "{\"op\":",
	    "{\"op\":\"status\"",
	    "{\"op\":\"status\",}",
	    "{op:\"status\"}",
	    "{'op':'status'}",
	    "{\"op\":\"status\"} {}",
	    "{\"op\":\"status\"}x",
	    "{\"op\":\"st\\u0000atus\"}",
	    "{\"op\":\"\\ud800\"}",
	    "{\"op\":NaN}",
	    "nul",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(lines); i++)
		assert_bad(lines[i]);
}

static void
test_decode_not_object(void **state)
{
	static const char *const lines[] = {
	    "[]", "[{\"op\":\"status\"}]", "\"status\"", "42", "null", "true",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(lines); i++)
		assert_bad(lines[i]);
}

static void
test_decode_op(void **state)
{
	struct proto_error err = {0};
	struct request req;

	(void)state;
	/* Missing op: the id is still recovered for the error response. */
	assert_int_equal(decode("{\"v\":1,\"id\":3}", &req, &err), -1);
	assert_string_equal(err.code, TASKD_ERR_BAD_REQUEST);
	assert_true(err.message != NULL && err.message[0] != '\0');
	assert_int_equal(json_integer_value(req.id), 3);
	proto_request_free(&req);
	proto_error_clear(&err);

	assert_bad("{}");
	assert_bad("{\"op\":5}");
	assert_bad("{\"op\":null}");
	assert_bad("{\"op\":[\"status\"]}");
	assert_bad("{\"op\":{}}");
	assert_bad("{\"op\":true}");
}

static void
test_decode_version(void **state)
{
	struct proto_error err = {0};
	struct request req;

	(void)state;
	assert_int_equal(decode("{\"v\":1,\"op\":\"status\"}", &req, &err), 0);
	proto_request_free(&req);

	assert_int_equal(decode("{\"v\":2,\"id\":\"t\",\"op\":\"status\"}", &req, &err), -1);
	assert_string_equal(err.code, TASKD_ERR_UNSUPPORTED_VERSION);
	assert_true(err.message != NULL && err.message[0] != '\0');
	assert_string_equal(json_string_value(req.id), "t");
	proto_request_free(&req);
	proto_error_clear(&err);

	/* "anything else → unsupported_version" (doc/protocol.md). */
	assert_fails_with("{\"v\":0,\"op\":\"status\"}", TASKD_ERR_UNSUPPORTED_VERSION);
	assert_fails_with("{\"v\":-1,\"op\":\"status\"}", TASKD_ERR_UNSUPPORTED_VERSION);
	assert_fails_with("{\"v\":\"1\",\"op\":\"status\"}", TASKD_ERR_UNSUPPORTED_VERSION);
	assert_fails_with("{\"v\":null,\"op\":\"status\"}", TASKD_ERR_UNSUPPORTED_VERSION);
}

static void
test_decode_bad_id(void **state)
{
	struct proto_error err = {0};
	struct request req;

	(void)state;
	assert_int_equal(decode("{\"id\":{\"a\":1},\"op\":\"status\"}", &req, &err), -1);
	assert_string_equal(err.code, TASKD_ERR_BAD_REQUEST);
	assert_true(err.message != NULL && err.message[0] != '\0');
	/* An id that cannot be echoed is answered with null. */
	assert_true(json_is_null(req.id));
	proto_request_free(&req);
	proto_error_clear(&err);

	assert_bad("{\"id\":[1],\"op\":\"status\"}");
	assert_bad("{\"id\":{},\"op\":\"status\"}");
}

static void
test_decode_duplicates(void **state)
{
	(void)state;
	assert_bad("{\"op\":\"status\",\"op\":\"list\"}");
	assert_bad("{\"op\":\"status\",\"id\":1,\"id\":2}");
	assert_bad("{\"op\":\"submit\",\"env\":{\"A\":\"1\",\"A\":\"2\"}}");
}

static void
test_decode_bad_utf8(void **state)
{
	static const char *const lines[] = {
	    "{\"op\":\"\xff\"}",
	    "{\"op\":\"status\",\"name\":\"a\xc3\"}",
	    "{\"op\":\"status\",\"name\":\"\xc0\xaf\"}",         /* overlong '/' */
	    "{\"op\":\"status\",\"name\":\"\xed\xa0\x80\"}",     /* a surrogate */
	    "{\"op\":\"status\",\"name\":\"\xf4\x90\x80\x80\"}", /* > U+10FFFF */
	    "{\"op\":\"status\",\"\xfe\":1}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(lines); i++)
		assert_bad(lines[i]);
}

/* Deep nesting is refused, not recursed into until the stack runs out. */
static void
test_decode_deep(void **state)
{
	char *line = xmalloc(DEEP * 6 + 64);
	size_t i, n = 0;

	(void)state;
	memset(line, '[', DEEP);
	assert_decode_fails(line, DEEP, TASKD_ERR_BAD_REQUEST);

	/* Balanced, so only the depth is wrong. */
	n = (size_t)sprintf(line, "{\"op\":\"status\",\"x\":");
	for (i = 0; i < DEEP; i++)
		line[n++] = '[';
	for (i = 0; i < DEEP; i++)
		line[n++] = ']';
	line[n++] = '}';
	assert_decode_fails(line, n, TASKD_ERR_BAD_REQUEST);

	n = (size_t)sprintf(line, "{\"op\":\"status\",\"x\":");
	for (i = 0; i < DEEP; i++)
		n += (size_t)sprintf(line + n, "{\"a\":");
	line[n++] = '1';
	for (i = 0; i <= DEEP; i++)
		line[n++] = '}';
	assert_decode_fails(line, n, TASKD_ERR_BAD_REQUEST);
	free(line);
}

/* A NUL byte inside the frame is not the end of it. */
static void
test_decode_nul_bytes(void **state)
{
	static const char trailing[] = "{\"op\":\"status\"}\0garbage";
	static const char in_string[] = "{\"op\":\"sta\0tus\"}";
	static const char before_brace[] = "{\"op\":\"status\"\0}";

	(void)state;
	assert_decode_fails(trailing, sizeof trailing - 1, TASKD_ERR_BAD_REQUEST);
	assert_decode_fails(in_string, sizeof in_string - 1, TASKD_ERR_BAD_REQUEST);
	assert_decode_fails(before_brace, sizeof before_brace - 1, TASKD_ERR_BAD_REQUEST);
}

static void
test_decode_huge_number(void **state)
{
	(void)state;
	assert_bad("{\"op\":\"status\",\"x\":1e400}");
	assert_bad("{\"op\":\"status\",\"x\":-1e400}");
	assert_bad("{\"op\":\"status\",\"id\":1e400}");
	assert_bad("{\"op\":\"status\",\"x\":99999999999999999999999}");
}

/* ---- proto_job_decode ---- */

/* Decoding options: no default timeout, cwd checked or not, inputs up to 1 MiB. */
#define OPTS(check_cwd) (&(struct proto_job_opts){ 0, check_cwd, 1 << 20 })

static int
job_decode(const char *text, double default_timeout, struct job_spec *spec, struct proto_error *err)
{
	json_error_t jerr;
	json_t *o;
	int rc;

	o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL)
		fail_msg("test input is not JSON: %s: %s", text, jerr.text);
	/* A job of a batch: every field is looked at (test_job_envelope: a request). */
	rc = proto_batch_job_decode(o, &(struct proto_job_opts){ default_timeout, true, 1 << 20 },
				    spec, err);
	json_decref(o);
	return rc;
}

static void
assert_job_ok(const char *text, struct job_spec *spec)
{
	struct proto_error err = {0};

	if (job_decode(text, 0, spec, &err) != 0)
		fail_msg("refused %s: %s", text, err.message != NULL ? err.message : "(null)");
	assert_null(err.code);
	assert_null(err.message);
	assert_non_null(spec->argv);
	assert_non_null(spec->cwd);
}

static void
assert_job_bad(const char *text)
{
	struct proto_error err = {0};
	struct job_spec spec;

	memset(&spec, 0xa5, sizeof spec);
	if (job_decode(text, 0, &spec, &err) != -1)
		fail_msg("accepted %s", text);
	if (err.code == NULL || strcmp(err.code, TASKD_ERR_BAD_REQUEST) != 0)
		fail_msg("%s: code %s", text, err.code != NULL ? err.code : "(null)");
	if (err.message == NULL || err.message[0] == '\0')
		fail_msg("%s: no message", text);
	/* Nothing left behind for the caller to free. */
	assert_null(spec.argv);
	assert_null(spec.env);
	assert_null(spec.cwd);
	assert_null(spec.name);
	assert_null(spec.deps);
	assert_null(spec.unique);
	assert_null(spec.queue);
	assert_null(spec.input);
	proto_error_clear(&err);
}

/* Issue 16's job fields: unique, queue, slots, input; what each accepts and refuses. */
static void
test_job_workflow_fields(void **state)
{
	static const char *const bad[] = {
	    "{\"argv\":[\"true\"],\"unique\":\"\"}",
	    "{\"argv\":[\"true\"],\"unique\":5}",
	    "{\"argv\":[\"true\"],\"queue\":\"\"}",
	    "{\"argv\":[\"true\"],\"queue\":\"no space\"}",
	    "{\"argv\":[\"true\"],\"queue\":[\"gpu\"]}",
	    "{\"argv\":[\"true\"],\"slots\":0}",
	    "{\"argv\":[\"true\"],\"slots\":1.5}",
	    "{\"argv\":[\"true\"],\"slots\":\"2\"}",
	    "{\"argv\":[\"true\"],\"slots\":100000000}",
	    "{\"argv\":[\"true\"],\"slots\":2,\"class\":\"io\"}",
	    "{\"argv\":[\"true\"],\"input\":\"not base64!\"}",
	    "{\"argv\":[\"true\"],\"input\":\"YQ-_\"}",
	    "{\"argv\":[\"true\"],\"input\":7}",
	    "{\"type\":\"noop\",\"input\":\"YQ==\"}",
	};
	char key[TASKD_MAX_UNIQUE + 40];
	struct proto_error err = {0};
	struct job_spec spec;
	json_t *o;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++)
		assert_job_bad(bad[i]);
	/* A key with a NUL in it (a request may carry one: JSON_ALLOW_NUL). */
	o = json_pack("{s:[s],s:o}", "argv", "true", "unique", json_stringn("a\0b", 3));
	assert_int_equal(proto_batch_job_decode(o, OPTS(true), &spec, &err), -1);
	assert_string_equal(err.code, TASKD_ERR_BAD_REQUEST);
	assert_null(spec.unique);
	proto_error_clear(&err);
	json_decref(o);
	/* The longest key, and one byte more. */
	snprintf(key, sizeof key, "{\"argv\":[\"true\"],\"unique\":\"%0*d\"}", TASKD_MAX_UNIQUE, 0);
	assert_job_ok(key, &spec);
	assert_int_equal(strlen(spec.unique), TASKD_MAX_UNIQUE);
	job_spec_free(&spec);
	snprintf(key, sizeof key, "{\"argv\":[\"true\"],\"unique\":\"%0*d\"}", TASKD_MAX_UNIQUE + 1,
		 0);
	assert_job_bad(key);

	assert_job_ok("{\"argv\":[\"true\"]}", &spec);
	assert_null(spec.unique);
	assert_null(spec.queue);
	assert_int_equal(spec.slots, 1);
	assert_int_equal(spec.input_bytes, 0);
	job_spec_free(&spec);
	/* Several slots make a cpu job; the input is decoded, its size kept. */
	assert_job_ok("{\"argv\":[\"make\"],\"unique\":\"nightly build\",\"queue\":\"gpu-0.a\","
		      "\"slots\":4,\"input\":\"aGVsbG8K\"}", &spec);
	assert_string_equal(spec.unique, "nightly build");
	assert_string_equal(spec.queue, "gpu-0.a");
	assert_int_equal(spec.slots, 4);
	assert_int_equal(spec.class, CLASS_CPU);
	assert_int_equal(spec.input_bytes, 6);
	assert_memory_equal(spec.input, "hello\n", 6);
	job_spec_free(&spec);
	/* The padding may be left out. */
	assert_job_ok("{\"argv\":[\"cat\"],\"input\":\"YQ\"}", &spec);
	assert_int_equal(spec.input_bytes, 1);
	job_spec_free(&spec);
	/* An empty input is none. */
	assert_job_ok("{\"argv\":[\"cat\"],\"input\":\"\"}", &spec);
	assert_null(spec.input);
	assert_int_equal(spec.input_bytes, 0);
	job_spec_free(&spec);
}

/* Beyond limits.max_input: refused with the figures. */
static void
test_job_input_limit(void **state)
{
	struct proto_error err = {0};
	struct job_spec spec;
	json_t *o = json_pack("{s:[s],s:s}", "argv", "cat", "input", "aGVsbG8K");

	(void)state;
	assert_int_equal(proto_job_decode(o, &(struct proto_job_opts){ 0, true, 5 }, &spec, &err),
			 -1);
	assert_string_equal(err.code, TASKD_ERR_BAD_REQUEST);
	assert_non_null(strstr(err.message, "limits.max_input is 5"));
	proto_error_clear(&err);
	assert_int_equal(proto_job_decode(o, &(struct proto_job_opts){ 0, true, 6 }, &spec, &err),
			 0);
	assert_int_equal(spec.input_bytes, 6);
	job_spec_free(&spec);
	json_decref(o);
}

static int
array_decode(const char *text, struct proto_array *a)
{
	struct proto_error err = {0};
	json_t *o = json_loads(text, 0, NULL);
	int rc;

	if (o == NULL)
		fail_msg("test input is not JSON: %s", text);
	rc = proto_array_decode(o, a, &err);
	json_decref(o);
	if (rc == -1) {
		if (err.code == NULL || strcmp(err.code, TASKD_ERR_BAD_REQUEST) != 0 ||
		    err.message == NULL)
			fail_msg("%s: refused without bad_request and a message", text);
		proto_error_clear(&err);
	}
	return rc;
}

/* "array": {"start","end"[,"step"][,"max"]}, its count; absent is no array (1). */
static void
test_array_decode(void **state)
{
	static const char *const bad[] = {
	    "{\"array\":5}",
	    "{\"array\":\"1-10\"}",
	    "{\"array\":{\"start\":1}}",
	    "{\"array\":{\"end\":10}}",
	    "{\"array\":{\"start\":1,\"end\":10,\"extra\":1}}",
	    "{\"array\":{\"start\":1.5,\"end\":10}}",
	    "{\"array\":{\"start\":-1,\"end\":10}}",
	    "{\"array\":{\"start\":10,\"end\":9}}",
	    "{\"array\":{\"start\":1,\"end\":10,\"step\":0}}",
	    "{\"array\":{\"start\":1,\"end\":10,\"max\":-1}}",
	    "{\"array\":{\"start\":0,\"end\":1000000000000}}",
	    "{\"array\":{\"start\":0,\"end\":1000000}}", /* 1,000,001 jobs */
	};
	struct proto_array a;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++)
		if (array_decode(bad[i], &a) != -1)
			fail_msg("accepted %s", bad[i]);
	assert_int_equal(array_decode("{\"argv\":[\"true\"]}", &a), 1);
	assert_int_equal(array_decode("{\"array\":{\"start\":1,\"end\":100}}", &a), 0);
	assert_int_equal(a.count, 100);
	assert_int_equal(a.step, 1);
	assert_int_equal(a.max, 0);
	/* 1-100:7%4 → 1, 8, ..., 99: 15 jobs, 4 at once. */
	assert_int_equal(array_decode("{\"array\":{\"start\":1,\"end\":100,\"step\":7,\"max\":4}}",
				      &a), 0);
	assert_int_equal(a.count, 15);
	assert_int_equal(a.start, 1);
	assert_int_equal(a.step, 7);
	assert_int_equal(a.max, 4);
	assert_int_equal(array_decode("{\"array\":{\"start\":5,\"end\":5}}", &a), 0);
	assert_int_equal(a.count, 1);
	assert_int_equal(array_decode("{\"array\":{\"start\":1,\"end\":1000000}}", &a), 0);
	assert_int_equal(a.count, TASKD_MAX_ARRAY);
}

static void
test_job_minimal(void **state)
{
	struct job_spec spec;

	(void)state;
	assert_job_ok("{\"argv\":[\"true\"]}", &spec);
	assert_int_equal(spec.type, BUILTIN_EXEC);
	assert_string_equal(spec.argv[0], "true");
	assert_null(spec.argv[1]);
	assert_null(spec.env);
	assert_string_equal(spec.cwd, "/");
	assert_null(spec.name);
	assert_int_equal(spec.class, CLASS_AUTO);
	assert_int_equal(spec.priority, 0);
	assert_true(spec.timeout == 0);
	job_spec_free(&spec);
	assert_null(spec.argv);
}

static void
test_job_default_timeout(void **state)
{
	struct proto_error err = {0};
	struct job_spec spec;

	(void)state;
	assert_int_equal(job_decode("{\"argv\":[\"true\"]}", 30.5, &spec, &err), 0);
	assert_true(spec.timeout == 30.5);
	job_spec_free(&spec);
	/* An explicit 0 (no timeout) wins over the default. */
	assert_int_equal(job_decode("{\"argv\":[\"true\"],\"timeout\":0}", 30.5, &spec, &err), 0);
	assert_true(spec.timeout == 0);
	job_spec_free(&spec);
	assert_int_equal(job_decode("{\"argv\":[\"true\"],\"timeout\":2.5}", 30.5, &spec, &err), 0);
	assert_true(spec.timeout == 2.5);
	job_spec_free(&spec);
	assert_int_equal(job_decode("{\"argv\":[\"true\"],\"timeout\":7}", 30.5, &spec, &err), 0);
	assert_true(spec.timeout == 7);
	job_spec_free(&spec);
	assert_null(err.message);
}

static void
test_job_full(void **state)
{
	struct job_spec spec;

	(void)state;
	assert_job_ok("{\"type\":\"exec\",\"argv\":[\"sh\",\"-c\",\"echo hi\"],\"cwd\":\"/tmp\","
	              "\"env\":{\"PATH\":\"/bin\"},\"class\":\"cpu\",\"priority\":-20,"
	              "\"name\":\"greet\",\"timeout\":10}",
	              &spec);
	assert_int_equal(spec.type, BUILTIN_EXEC);
	assert_string_equal(spec.argv[0], "sh");
	assert_string_equal(spec.argv[1], "-c");
	assert_string_equal(spec.argv[2], "echo hi");
	assert_null(spec.argv[3]);
	assert_string_equal(spec.cwd, "/tmp");
	assert_non_null(spec.env);
	assert_string_equal(spec.env[0], "PATH=/bin");
	assert_null(spec.env[1]);
	assert_int_equal(spec.class, CLASS_CPU);
	assert_int_equal(spec.priority, -20);
	assert_string_equal(spec.name, "greet");
	assert_true(spec.timeout == 10);
	job_spec_free(&spec);

	assert_job_ok("{\"argv\":[\"x\"],\"class\":\"io\",\"priority\":19}", &spec);
	assert_int_equal(spec.class, CLASS_IO);
	assert_int_equal(spec.priority, 19);
	job_spec_free(&spec);
	assert_job_ok("{\"argv\":[\"x\"],\"class\":\"auto\",\"env\":{}}", &spec);
	assert_int_equal(spec.class, CLASS_AUTO);
	assert_non_null(spec.env);
	/* An environment without PATH gets the default one. */
	assert_string_equal(spec.env[0], "PATH=" TASKD_DEFAULT_PATH);
	assert_null(spec.env[1]);
	job_spec_free(&spec);
}

static int
strv_has(char **v, const char *s)
{
	size_t i;

	for (i = 0; v[i] != NULL; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static void
test_job_env(void **state)
{
	struct job_spec spec;

	(void)state;
	assert_job_ok("{\"argv\":[\"env\"],\"env\":{\"HOME\":\"/root\",\"EMPTY\":\"\","
	              "\"EQ\":\"a=b=c\",\"U\":\"h\\u00e9\"}}",
	              &spec);
	assert_int_equal(strv_len(spec.env), 5);
	assert_true(strv_has(spec.env, "PATH=" TASKD_DEFAULT_PATH));
	assert_true(strv_has(spec.env, "HOME=/root"));
	assert_true(strv_has(spec.env, "EMPTY="));
	assert_true(strv_has(spec.env, "EQ=a=b=c"));
	assert_true(strv_has(spec.env, "U=h\xc3\xa9"));
	job_spec_free(&spec);
}

static void
test_job_invalid(void **state)
{
	static const char *const bad[] = {
	    /* argv */
	    "{\"argv\":[]}",
	    "{}",
	    "{\"type\":\"exec\"}",
	    "{\"argv\":[\"\"]}",
	    "{\"argv\":[\"echo\",1]}",
	    "{\"argv\":[1]}",
	    "{\"argv\":[\"echo\",null]}",
	    "{\"argv\":[\"echo\",[\"x\"]]}",
	    "{\"argv\":\"true\"}",
	    "{\"argv\":{\"0\":\"true\"}}",
	    "{\"argv\":null}",
	    /* type */
	    "{\"type\":\"shell\",\"argv\":[\"true\"]}",
	    "{\"type\":\"\",\"argv\":[\"true\"]}",
	    "{\"type\":\"EXEC\",\"argv\":[\"true\"]}",
	    "{\"type\":1,\"argv\":[\"true\"]}",
	    /* class */
	    "{\"argv\":[\"true\"],\"class\":\"gpu\"}",
	    "{\"argv\":[\"true\"],\"class\":\"CPU\"}",
	    "{\"argv\":[\"true\"],\"class\":1}",
	    /* priority */
	    "{\"argv\":[\"true\"],\"priority\":20}",
	    "{\"argv\":[\"true\"],\"priority\":-21}",
	    "{\"argv\":[\"true\"],\"priority\":\"1\"}",
	    "{\"argv\":[\"true\"],\"priority\":1.5}",
	    "{\"argv\":[\"true\"],\"priority\":null}",
	    "{\"argv\":[\"true\"],\"priority\":9223372036854775807}",
	    /* timeout */
	    "{\"argv\":[\"true\"],\"timeout\":-1}",
	    "{\"argv\":[\"true\"],\"timeout\":-0.001}",
	    "{\"argv\":[\"true\"],\"timeout\":\"x\"}",
	    "{\"argv\":[\"true\"],\"timeout\":\"10\"}",
	    "{\"argv\":[\"true\"],\"timeout\":null}",
	    "{\"argv\":[\"true\"],\"timeout\":1e300}",
	    /* name */
	    "{\"argv\":[\"true\"],\"name\":5}",
	    "{\"argv\":[\"true\"],\"name\":null}",
	    /* unknown fields */
	    "{\"argv\":[\"true\"],\"foo\":1}",
	    "{\"argv\":[\"true\"],\"Argv\":[\"x\"]}",
	    "{\"argv\":[\"true\"],\"jobs\":[]}",
	    "{\"argv\":[\"true\"],\"job\":1}",
	    /* env */
	    "{\"argv\":[\"true\"],\"env\":[\"A=1\"]}",
	    "{\"argv\":[\"true\"],\"env\":\"A=1\"}",
	    "{\"argv\":[\"true\"],\"env\":{\"A\":1}}",
	    "{\"argv\":[\"true\"],\"env\":{\"A\":\"1\",\"B\":null}}",
	    "{\"argv\":[\"true\"],\"env\":{\"A=B\":\"1\"}}",
	    "{\"argv\":[\"true\"],\"env\":{\"\":\"1\"}}",
	    /* cwd */
	    "{\"argv\":[\"true\"],\"cwd\":\"tmp\"}",
	    "{\"argv\":[\"true\"],\"cwd\":\"./\"}",
	    "{\"argv\":[\"true\"],\"cwd\":\"\"}",
	    "{\"argv\":[\"true\"],\"cwd\":1}",
	    "{\"argv\":[\"true\"],\"cwd\":null}",
	    "{\"argv\":[\"true\"],\"cwd\":\"/nonexistent/taskd-test-dir\"}",
	    "{\"argv\":[\"true\"],\"cwd\":\"/etc/passwd\"}",
	    "{\"argv\":[\"true\"],\"cwd\":\"/etc/passwd/\"}",
	    /* dependencies, start time, retries */
	    "{\"argv\":[\"true\"],\"after\":1}",
	    "{\"argv\":[\"true\"],\"after\":[0]}",
	    "{\"argv\":[\"true\"],\"after\":[-3]}",
	    "{\"argv\":[\"true\"],\"after\":[\"1\"]}",
	    "{\"argv\":[\"true\"],\"after\":[1.5]}",
	    "{\"argv\":[\"true\"],\"after\":[1,2,1]}",
	    "{\"argv\":[\"true\"],\"after\":[1],\"after_any\":[1]}",
	    "{\"argv\":[\"true\"],\"after_any\":null}",
	    "{\"argv\":[\"true\"],\"run_at\":1}",
	    "{\"argv\":[\"true\"],\"run_at\":0}",
	    "{\"argv\":[\"true\"],\"run_at\":-1}",
	    "{\"argv\":[\"true\"],\"run_at\":\"2030-01-01\"}",
	    "{\"argv\":[\"true\"],\"run_at\":1e300}",
	    "{\"argv\":[\"true\"],\"retries\":-1}",
	    "{\"argv\":[\"true\"],\"retries\":1001}",
	    "{\"argv\":[\"true\"],\"retries\":1.5}",
	    "{\"argv\":[\"true\"],\"retry_delay\":-0.5}",
	    "{\"argv\":[\"true\"],\"retry_delay\":3601}",
	    "{\"argv\":[\"true\"],\"retry_delay\":\"1\"}",
	    "{\"argv\":[\"true\"],\"after\":[1,2],\"retries\":-1}",
	    /* errors after other fields were decoded: nothing may leak */
	    "{\"argv\":[\"true\"],\"env\":{\"A\":\"1\"},\"name\":\"n\",\"cwd\":\"rel\"}",
	    "{\"argv\":[\"a\",\"b\"],\"env\":{\"A\":\"1\",\"B\":2}}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++)
		assert_job_bad(bad[i]);
}

static void
test_job_lifecycle(void **state)
{
	char text[256];
	struct job_spec spec;

	(void)state;
	assert_job_ok("{\"argv\":[\"true\"]}", &spec);
	assert_int_equal(spec.ndeps, 0);
	assert_null(spec.deps);
	assert_true(spec.run_at == 0);
	assert_int_equal(spec.retries, 0);
	assert_true(spec.retry_delay == JOB_RETRY_DELAY_DEFAULT);
	job_spec_free(&spec);
	snprintf(text, sizeof text,
		 "{\"argv\":[\"true\"],\"after\":[3,1],\"after_any\":[7],\"run_at\":%.3f,"
		 "\"retries\":4,\"retry_delay\":0.5}",
		 now_unix() + 60);
	assert_job_ok(text, &spec);
	assert_int_equal(spec.ndeps, 3);
	assert_int_equal(spec.deps[0].id, 3);
	assert_false(spec.deps[0].any);
	assert_int_equal(spec.deps[1].id, 1);
	assert_int_equal(spec.deps[2].id, 7);
	assert_true(spec.deps[2].any);
	assert_int_equal(spec.deps[0].state, -1);
	assert_true(spec.run_at > now_unix() + 59);
	assert_int_equal(spec.retries, 4);
	assert_true(spec.retry_delay == 0.5);
	job_spec_free(&spec);
	assert_null(spec.deps);
}

static void
test_job_not_object(void **state)
{
	struct proto_error err = {0};
	struct job_spec spec;
	json_t *a = json_pack("[s]", "true");

	(void)state;
	assert_int_equal(proto_job_decode(a, OPTS(true), &spec, &err), -1);
	assert_string_equal(err.code, TASKD_ERR_BAD_REQUEST);
	assert_null(spec.argv);
	proto_error_clear(&err);
	json_decref(a);
}

/* Without check_cwd (another user's submit to a root daemon) cwd is only checked to be absolute. */
static void
test_job_cwd_unchecked(void **state)
{
	struct proto_error err = {0};
	struct job_spec spec;
	json_t *o = json_pack("{s:[s],s:s}", "argv", "true", "cwd", "/nonexistent/taskd-test-dir");

	(void)state;
	assert_int_equal(proto_job_decode(o, OPTS(true), &spec, &err), -1);
	assert_non_null(strstr(err.message, "No such file"));
	proto_error_clear(&err);
	assert_int_equal(proto_job_decode(o, OPTS(false), &spec, &err), 0);
	assert_string_equal(spec.cwd, "/nonexistent/taskd-test-dir");
	job_spec_free(&spec);
	json_object_set_new(o, "cwd", json_string("relative"));
	assert_int_equal(proto_batch_job_decode(o, OPTS(false), &spec, &err), -1);
	assert_non_null(strstr(err.message, "absolute"));
	proto_error_clear(&err);
	json_decref(o);
}

static void
test_job_name_length(void **state)
{
	char name[300], text[400];
	struct job_spec spec;
	size_t i;

	(void)state;
	memset(name, 'n', 256);
	name[256] = '\0';
	snprintf(text, sizeof text, "{\"argv\":[\"true\"],\"name\":\"%s\"}", name);
	assert_job_ok(text, &spec);
	assert_int_equal(strlen(spec.name), 256);
	job_spec_free(&spec);

	name[256] = 'n';
	name[257] = '\0';
	snprintf(text, sizeof text, "{\"argv\":[\"true\"],\"name\":\"%s\"}", name);
	assert_job_bad(text);

	/* Bytes, not characters: 128 two-byte é are 256 bytes... */
	memset(name, 0, sizeof name);
	for (i = 0; i < 128; i++)
		memcpy(name + 2 * i, "\xc3\xa9", 2);
	snprintf(text, sizeof text, "{\"argv\":[\"true\"],\"name\":\"%s\"}", name);
	assert_job_ok(text, &spec);
	job_spec_free(&spec);
	/* ...and one more is 258. */
	memcpy(name + 256, "\xc3\xa9", 3);
	snprintf(text, sizeof text, "{\"argv\":[\"true\"],\"name\":\"%s\"}", name);
	assert_job_bad(text);

	assert_job_ok("{\"argv\":[\"true\"],\"name\":\"\"}", &spec);
	assert_string_equal(spec.name, "");
	job_spec_free(&spec);
}

static void
test_job_builtins(void **state)
{
	struct job_spec spec;

	(void)state;
	assert_job_ok("{\"type\":\"sumsq\",\"argv\":[\"10\"]}", &spec);
	assert_int_equal(spec.type, BUILTIN_SUMSQ);
	assert_string_equal(spec.argv[0], "10");
	assert_null(spec.argv[1]);
	job_spec_free(&spec);

	assert_job_ok("{\"type\":\"sleep\",\"argv\":[\"0.5\"]}", &spec);
	assert_int_equal(spec.type, BUILTIN_SLEEP);
	job_spec_free(&spec);

	assert_job_ok("{\"type\":\"noop\"}", &spec);
	assert_int_equal(spec.type, BUILTIN_NOOP);
	assert_null(spec.argv[0]);
	assert_string_equal(spec.cwd, "/");
	job_spec_free(&spec);

	assert_job_ok("{\"type\":\"noop\",\"argv\":[]}", &spec);
	job_spec_free(&spec);
	assert_job_ok("{\"type\":\"spin\",\"argv\":[\"0\"]}", &spec);
	assert_int_equal(spec.type, BUILTIN_SPIN);
	job_spec_free(&spec);
	assert_job_ok("{\"type\":\"count\",\"argv\":[\"1000\"],\"class\":\"cpu\"}", &spec);
	assert_int_equal(spec.type, BUILTIN_COUNT);
	job_spec_free(&spec);
}

static void
test_job_builtin_args(void **state)
{
	static const char *const bad[] = {
	    "{\"type\":\"sleep\",\"argv\":[]}",
	    "{\"type\":\"sleep\"}",
	    "{\"type\":\"sleep\",\"argv\":[\"-1\"]}",
	    "{\"type\":\"sleep\",\"argv\":[\"abc\"]}",
	    "{\"type\":\"sleep\",\"argv\":[\"1\",\"2\"]}",
	    "{\"type\":\"sleep\",\"argv\":[\"nan\"]}",
	    "{\"type\":\"sleep\",\"argv\":[\"inf\"]}",
	    "{\"type\":\"sumsq\",\"argv\":[\"-1\"]}",
	    "{\"type\":\"sumsq\",\"argv\":[\"1.5\"]}",
	    "{\"type\":\"sumsq\",\"argv\":[\"\"]}",
	    "{\"type\":\"sumsq\",\"argv\":[\"99999999999999999999999\"]}",
	    "{\"type\":\"count\"}",
	    "{\"type\":\"noop\",\"argv\":[\"x\"]}",
	};
	size_t i;

	(void)state;
	for (i = 0; i < nitems(bad); i++)
		assert_job_bad(bad[i]);
}

/* v, id and op belong to a request; a bare job description has none. */
static void
test_job_envelope(void **state)
{
	static const char *const request[] = {
	    "{\"v\":1,\"id\":7,\"op\":\"submit\",\"argv\":[\"true\"]}",
	    "{\"op\":\"submit\",\"wait\":true,\"argv\":[\"true\"]}",
	    "{\"op\":\"submit\",\"type\":\"noop\",\"argv\":[]}",
	};
	struct proto_error err = {0};
	struct job_spec spec;
	json_t *o;
	size_t i;

	(void)state;
	/*
	 * The job in a submit request: fields other than job fields are not
	 * looked at (the op table says which a submit may carry: test-ops).
	 */
	for (i = 0; i < nitems(request); i++) {
		o = json_loads(request[i], 0, NULL);
		assert_non_null(o);
		if (proto_job_decode(o, OPTS(true), &spec, &err) != 0)
			fail_msg("refused %s: %s", request[i], err.message);
		assert_non_null(spec.argv);
		job_spec_free(&spec);
		json_decref(o);
	}
	assert_true(proto_envelope_field("v") && proto_envelope_field("id") &&
		    proto_envelope_field("op"));
	assert_false(proto_envelope_field("wait") || proto_envelope_field("job") ||
		     proto_envelope_field("argv"));
	assert_true(proto_job_field("argv") && proto_job_field("retry_delay"));
	assert_false(proto_job_field("op") || proto_job_field("jobs") || proto_job_field("Argv"));

	/* In a batch's "jobs", only job fields. */
	assert_job_bad("{\"id\":7,\"argv\":[\"true\"]}");
	assert_job_bad("{\"v\":1,\"argv\":[\"true\"]}");
	assert_job_bad("{\"v\":1,\"id\":\"x\",\"argv\":[\"true\"]}");
	assert_job_bad("{\"op\":\"submit\",\"argv\":[\"true\"]}");
	assert_job_bad("{\"wait\":true,\"argv\":[\"true\"]}");
	assert_job_bad("{\"op\":\"submit\",\"job\":1,\"argv\":[\"true\"]}");
	assert_job_bad("{\"op\":\"submit\",\"jobs\":[],\"argv\":[\"true\"]}");
}

/* ---- proto_job_id ---- */

static void
test_job_id(void **state)
{
	static const char *const bad[] = {
	    "{}",
	    "{\"job\":0}",
	    "{\"job\":-1}",
	    "{\"job\":\"17\"}",
	    "{\"job\":1.0}",
	    "{\"job\":null}",
	    "{\"job\":[17]}",
	    "{\"job\":true}",
	    "{\"jobs\":17}",
	};
	struct proto_error err = {0};
	uint64_t id = 12345;
	json_t *o;
	size_t i;

	(void)state;
	o = json_pack("{s:i}", "job", 17);
	assert_int_equal(proto_job_id(o, &id, &err), 0);
	assert_int_equal(id, 17);
	json_decref(o);
	o = json_pack("{s:I}", "job", (json_int_t)1 << 40);
	assert_int_equal(proto_job_id(o, &id, &err), 0);
	assert_int_equal(id, 1ULL << 40);
	json_decref(o);
	assert_null(err.message);

	for (i = 0; i < nitems(bad); i++) {
		o = json_loads(bad[i], 0, NULL);
		assert_non_null(o);
		id = 12345;
		if (proto_job_id(o, &id, &err) != -1)
			fail_msg("accepted %s", bad[i]);
		assert_string_equal(err.code, TASKD_ERR_BAD_REQUEST);
		assert_true(err.message != NULL && err.message[0] != '\0');
		assert_int_equal(id, 12345);
		proto_error_clear(&err);
		json_decref(o);
	}
}

/* ---- responses ---- */

/*
 * One line: ends in its only "\n", *lenp right, parses back to an object.
 * The length comes by pointer: it is read after proto_ok/proto_fail set it.
 */
static json_t *
parse_line(char *line, const size_t *lenp)
{
	json_error_t jerr;
	size_t len = *lenp;
	json_t *o;

	assert_non_null(line);
	assert_int_equal(len, strlen(line));
	assert_true(len >= 2);
	assert_true(line[len - 1] == '\n');
	assert_ptr_equal(strchr(line, '\n'), line + len - 1);
	o = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL)
		fail_msg("response is not JSON (%s): %s", jerr.text, line);
	assert_true(json_is_object(o));
	free(line);
	return o;
}

static void
test_ok(void **state)
{
	json_t *id, *o, *want;
	size_t len = 0;

	(void)state;
	id = json_integer(7);
	o = parse_line(proto_ok(id, json_pack("{s:i,s:s}", "x", 1, "s", "a\nb"), &len), &len);
	want = json_pack("{s:i,s:b,s:{s:i,s:s}}", "id", 7, "ok", 1, "result", "x", 1, "s", "a\nb");
	assert_true(json_equal(o, want));
	json_decref(o);
	json_decref(want);
	/* id is borrowed, not stolen. */
	assert_int_equal(id->refcount, 1);
	json_decref(id);

	/* A string id, an empty result. */
	id = json_string("tag");
	o = parse_line(proto_ok(id, NULL, &len), &len);
	want = json_pack("{s:s,s:b,s:{}}", "id", "tag", "ok", 1, "result");
	assert_true(json_equal(o, want));
	json_decref(o);
	json_decref(want);
	json_decref(id);

	/* No id at all: null. */
	o = parse_line(proto_ok(NULL, json_object(), &len), &len);
	assert_true(json_is_null(json_object_get(o, "id")));
	assert_true(json_is_true(json_object_get(o, "ok")));
	json_decref(o);
	o = parse_line(proto_ok(json_null(), json_object(), &len), &len);
	assert_true(json_is_null(json_object_get(o, "id")));
	json_decref(o);
}

static void
test_fail(void **state)
{
	json_t *id, *o, *want;
	size_t len = 0;

	(void)state;
	id = json_integer(9);
	o = parse_line(proto_fail(id, TASKD_ERR_NOT_FOUND, "no job 17", &len), &len);
	want = json_pack("{s:i,s:b,s:{s:s,s:s}}", "id", 9, "ok", 0, "error", "code",
	                 TASKD_ERR_NOT_FOUND, "message", "no job 17");
	assert_true(json_equal(o, want));
	json_decref(o);
	json_decref(want);
	json_decref(id);

	o = parse_line(proto_fail(NULL, TASKD_ERR_BAD_REQUEST, "quote \" and\nnewline", &len),
	               &len);
	assert_true(json_is_null(json_object_get(o, "id")));
	assert_true(json_is_false(json_object_get(o, "ok")));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(o, "error"), "message")),
	    "quote \" and\nnewline");
	json_decref(o);
}

/* A message quoting raw client bytes still makes a valid UTF-8 JSON line. */
static void
test_fail_bad_utf8(void **state)
{
	static const char *const msgs[] = {
	    "cwd /tmp/\xff\xfe: No such file or directory",
	    "\xc3",
	    "\xed\xa0\x80",
	};
	json_t *id, *o, *e, *m;
	size_t i, len = 0;

	(void)state;
	id = json_string("q");
	for (i = 0; i < nitems(msgs); i++) {
		o = parse_line(proto_fail(id, TASKD_ERR_BAD_REQUEST, msgs[i], &len), &len);
		assert_string_equal(json_string_value(json_object_get(o, "id")), "q");
		assert_true(json_is_false(json_object_get(o, "ok")));
		e = json_object_get(o, "error");
		assert_true(json_is_object(e));
		assert_string_equal(json_string_value(json_object_get(e, "code")),
		                    TASKD_ERR_BAD_REQUEST);
		m = json_object_get(e, "message");
		assert_true(json_is_string(m));
		assert_true(json_string_length(m) > 0);
		json_decref(o);
	}
	json_decref(id);
}

/* The decoder's errors, answered: the pair a server uses for bad input. */
static void
test_decode_then_fail(void **state)
{
	struct proto_error err = {0};
	struct request req;
	size_t len = 0;
	json_t *o;

	(void)state;
	assert_int_equal(decode("{\"id\":\"a\",\"v\":3,\"op\":\"x\"}", &req, &err), -1);
	o = parse_line(proto_fail(req.id, err.code, err.message, &len), &len);
	assert_string_equal(json_string_value(json_object_get(o, "id")), "a");
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "error"), "code")),
	                    TASKD_ERR_UNSUPPORTED_VERSION);
	json_decref(o);
	proto_request_free(&req);
	proto_error_clear(&err);

	/* proto_error_set replaces an earlier message without leaking it. */
	proto_error_set(&err, TASKD_ERR_INTERNAL, "first %d", 1);
	proto_error_set(&err, TASKD_ERR_NOT_FOUND, "second %s", "x");
	assert_string_equal(err.code, TASKD_ERR_NOT_FOUND);
	assert_string_equal(err.message, "second x");
	proto_error_clear(&err);
	proto_error_clear(&err);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_decode_valid),
	    cmocka_unit_test(test_decode_len),
	    cmocka_unit_test(test_decode_malformed),
	    cmocka_unit_test(test_decode_not_object),
	    cmocka_unit_test(test_decode_op),
	    cmocka_unit_test(test_decode_version),
	    cmocka_unit_test(test_decode_bad_id),
	    cmocka_unit_test(test_decode_duplicates),
	    cmocka_unit_test(test_decode_bad_utf8),
	    cmocka_unit_test(test_decode_deep),
	    cmocka_unit_test(test_decode_nul_bytes),
	    cmocka_unit_test(test_decode_huge_number),
	    cmocka_unit_test(test_job_minimal),
	    cmocka_unit_test(test_job_default_timeout),
	    cmocka_unit_test(test_job_full),
	    cmocka_unit_test(test_job_env),
	    cmocka_unit_test(test_job_invalid),
	    cmocka_unit_test(test_job_lifecycle),
	    cmocka_unit_test(test_job_not_object),
	    cmocka_unit_test(test_job_workflow_fields),
	    cmocka_unit_test(test_job_input_limit),
	    cmocka_unit_test(test_array_decode),
	    cmocka_unit_test(test_job_cwd_unchecked),
	    cmocka_unit_test(test_job_name_length),
	    cmocka_unit_test(test_job_builtins),
	    cmocka_unit_test(test_job_builtin_args),
	    cmocka_unit_test(test_job_envelope),
	    cmocka_unit_test(test_job_id),
	    cmocka_unit_test(test_ok),
	    cmocka_unit_test(test_fail),
	    cmocka_unit_test(test_fail_bad_utf8),
	    cmocka_unit_test(test_decode_then_fail),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
