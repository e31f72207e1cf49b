/*
 * Worker messages: spec and result round trips, strict rejection of every
 * malformed field, and the transport over a real SOCK_SEQPACKET socketpair
 * (one datagram, memfd for large messages, cap, EOF).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "builtin.h"
#include "exec.h"
#include "worker.h"
#include "xmalloc.h"

static char **
big_argv(int n)
{
	char **v = xcalloc((size_t)n + 1, sizeof *v);
	int i;

	for (i = 0; i < n; i++)
		v[i] = xprintf("arg-%d-\xc3\xa9", i);
	return v;
}

static void
full_spec(struct run_spec *s)
{
	char *env[] = {"PATH=/bin", "A=b=c", "EMPTY=", NULL};

	memset(s, 0, sizeof *s);
	s->job_id = 1234567890123ULL;
	s->type = BUILTIN_EXEC;
	s->argv = big_argv(1000);
	s->env = strv_dup(env);
	s->cwd = xstrdup("/tmp");
	s->out_path = xstrdup("/var/lib/taskd/jobs/1.out");
	s->err_path = NULL;
	s->timeout = 1.5;
	s->kill_grace = 5;
	s->max_output = 16u << 20;
	s->max_kept = 5u << 20;
	s->quiet = true;
	s->nice = -5;
	s->as_user = true;
	s->uid = 65534;
	s->gid = 65533;
	s->track_path = xstrdup("/var/lib/taskd/live/job-1234567890123");
	s->input = xstrdup("aGVsbG8=");
	s->max_result = 1u << 20;
}

static void
assert_strv_equal(char **a, char **b)
{
	size_t i;

	if (a == NULL || b == NULL) {
		assert_ptr_equal(a, b);
		return;
	}
	for (i = 0; a[i] != NULL; i++)
		assert_string_equal(a[i], b[i]);
	assert_null(b[i]);
}

static void
assert_str_or_null(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void
test_spec_round_trip(void **state)
{
	struct run_spec s, d;
	char *error = NULL;
	json_t *m;

	full_spec(&s);
	m = worker_encode_spec(&s);
	assert_int_equal(worker_decode_spec(m, &d, &error), 0);
	assert_null(error);
	assert_true(d.job_id == s.job_id);
	assert_int_equal(d.type, s.type);
	assert_strv_equal(s.argv, d.argv);
	assert_strv_equal(s.env, d.env);
	assert_str_or_null(s.cwd, d.cwd);
	assert_str_or_null(s.out_path, d.out_path);
	assert_null(d.err_path);
	assert_true(d.timeout == s.timeout);
	assert_true(d.kill_grace == s.kill_grace);
	assert_true(d.max_output == s.max_output);
	assert_true(d.max_kept == s.max_kept);
	assert_true(d.quiet);
	assert_int_equal(d.nice, s.nice);
	/* Losing these would run another user's command as root. */
	assert_true(d.as_user);
	assert_int_equal(d.uid, 65534);
	assert_int_equal(d.gid, 65533);
	/* Losing this would leave the command unknown to a restart after a crash. */
	assert_str_or_null(s.track_path, d.track_path);
	assert_str_or_null(s.input, d.input);
	assert_true(d.max_result == s.max_result);
	json_decref(m);
	run_spec_free(&d);

	/* NULL argv/env/cwd stay NULL; a built-in type. */
	run_spec_free(&s);
	memset(&s, 0, sizeof s);
	s.type = BUILTIN_SUMSQ;
	m = worker_encode_spec(&s);
	assert_int_equal(worker_decode_spec(m, &d, &error), 0);
	assert_null(d.argv);
	assert_null(d.env);
	assert_null(d.cwd);
	assert_int_equal(d.type, BUILTIN_SUMSQ);
	json_decref(m);
}

static void
full_result(struct run_result *r)
{
	memset(r, 0, sizeof *r);
	r->status = RUN_TIMEOUT;
	r->exit_code = -1;
	r->signal = 15;
	r->cpu_user = 0.123456789;
	r->cpu_sys = 1e-6;
	r->max_rss_kb = 4096;
	r->wall = 2.5;
	r->runq_wait = 0.25;
	r->started_at = 1700000000.123456;
	r->finished_at = 1700000002.623456;
	r->out_bytes = 1ULL << 40;
	r->err_bytes = 7;
	r->out_truncated = true;
	r->err_truncated = false;
	r->pid = 4242;
	r->result = xstrdup("{\"n\":332833333333500000}");
	r->result_json = true;
	r->error = NULL;
}

static void
test_result_round_trip(void **state)
{
	struct run_result r, d;
	char *error = NULL;
	uint64_t job = 0;
	long rss = 0;
	json_t *m;

	full_result(&r);
	m = worker_encode_result(99, &r, 2048);
	assert_int_equal(worker_decode_result(m, &d, &job, &rss, &error), 0);
	assert_true(job == 99);
	assert_int_equal(rss, 2048);
	assert_int_equal(d.status, r.status);
	assert_int_equal(d.exit_code, r.exit_code);
	assert_int_equal(d.signal, r.signal);
	assert_true(d.cpu_user == r.cpu_user);
	assert_true(d.cpu_sys == r.cpu_sys);
	assert_int_equal(d.max_rss_kb, r.max_rss_kb);
	assert_true(d.wall == r.wall);
	assert_true(d.runq_wait == r.runq_wait);
	assert_true(d.started_at == r.started_at);
	assert_true(d.finished_at == r.finished_at);
	assert_true(d.out_bytes == r.out_bytes);
	assert_true(d.err_bytes == r.err_bytes);
	assert_true(d.out_truncated);
	assert_false(d.err_truncated);
	assert_int_equal(d.pid, r.pid);
	assert_string_equal(d.result, r.result);
	assert_true(d.result_json);
	assert_null(d.error);
	json_decref(m);
	free(d.result);
	free(r.result);

	r.result = NULL;
	r.error = xstrdup("command not found: x");
	r.status = RUN_FAILED;
	r.exit_code = 127;
	m = worker_encode_result(1, &r, -1);
	assert_int_equal(worker_decode_result(m, &d, &job, &rss, &error), 0);
	assert_null(d.result);
	assert_string_equal(d.error, "command not found: x");
	assert_int_equal(rss, -1);
	json_decref(m);
	free(d.error);
	free(r.error);
}

/* Decode base with key replaced by v (NULL: removed); expect a rejection. */
static void
reject_result(const char *key, json_t *v)
{
	struct run_result r, d;
	char *error = NULL;
	uint64_t job;
	long rss;
	json_t *m;

	full_result(&r);
	m = worker_encode_result(5, &r, 100);
	free(r.result);
	if (v == NULL)
		json_object_del(m, key);
	else
		json_object_set_new(m, key, v);
	if (worker_decode_result(m, &d, &job, &rss, &error) == 0)
		fail_msg("result with bad \"%s\" accepted", key);
	assert_non_null(error);
	free(error);
	json_decref(m);
}

static void
reject_spec(const char *key, json_t *v)
{
	struct run_spec s, d;
	char *error = NULL;
	json_t *m;

	full_spec(&s);
	m = worker_encode_spec(&s);
	run_spec_free(&s);
	if (v == NULL)
		json_object_del(m, key);
	else
		json_object_set_new(m, key, v);
	if (worker_decode_spec(m, &d, &error) == 0)
		fail_msg("spec with bad \"%s\" accepted", key);
	assert_non_null(error);
	free(error);
	json_decref(m);
}

static void
test_result_rejects(void **state)
{
	static const char *keys[] = {"t",         "job",           "status",        "exit_code",
	                             "signal",    "cpu_user",      "cpu_sys",       "max_rss_kb",
	                             "wall",      "started_at",    "finished_at",   "out_bytes",
	                             "err_bytes", "out_truncated", "err_truncated", "pid",
	                             "result",    "error",         "rss_kb",        "runq_wait",
	                             "result_json"};
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		reject_result(keys[i], NULL);                /* missing */
		reject_result(keys[i], json_pack("[i]", 1)); /* wrong type */
	}
	reject_result("t", json_string("ready"));
	reject_result("t", json_string("bogus"));
	reject_result("status", json_integer(RUN_LOST + 1));
	reject_result("status", json_integer(-1));
	reject_result("exit_code", json_integer(256));
	reject_result("exit_code", json_integer(-2));
	reject_result("signal", json_integer(65));
	reject_result("signal", json_integer(-1));
	reject_result("cpu_user", json_real(-0.5));
	reject_result("wall", json_string("1"));
	reject_result("out_bytes", json_integer(-1));
	reject_result("err_bytes", json_real(1.5));
	reject_result("pid", json_integer(-3));
	reject_result("job", json_integer(-1));
	reject_result("out_truncated", json_integer(1));
	reject_result("result", json_stringn("a\0b", 3));
	reject_result("error", json_integer(0));
	reject_result("max_rss_kb", json_integer(-2));
	reject_result("runq_wait", json_real(-1));
}

static void
test_spec_rejects(void **state)
{
	static const char *keys[] = {"t",       "job",        "type",       "argv",
	                             "env",     "cwd",        "out_path",   "err_path",
	                             "timeout", "kill_grace", "max_output", "max_kept",
	                             "nice",    "uid",        "gid",        "track",
	                             "input",   "max_result"};
	size_t i;

	for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
		reject_spec(keys[i], NULL);
		reject_spec(keys[i], json_true());
	}
	reject_spec("t", json_string("done"));
	reject_spec("type", json_integer(-1));
	reject_spec("type", json_integer(BUILTIN_COUNT + 1));
	reject_spec("nice", json_integer(20));
	reject_spec("nice", json_integer(-21));
	reject_spec("as_user", NULL);
	reject_spec("as_user", json_integer(1));
	reject_spec("uid", json_integer(-1));
	reject_spec("gid", json_string("0"));
	reject_spec("timeout", json_real(-1));
	reject_spec("kill_grace", json_string("5"));
	reject_spec("max_output", json_integer(-1));
	reject_spec("max_kept", json_integer(-1));
	reject_spec("quiet", json_string("yes"));
	reject_spec("argv", json_pack("[s,i]", "a", 1));
	reject_spec("argv", json_pack("[o]", json_stringn("a\0b", 3)));
	reject_spec("env", json_pack("[s]", "NOEQUALS"));
	reject_spec("cwd", json_stringn("/t\0mp", 5));
	reject_spec("track", json_integer(1));
	reject_spec("job", json_string("1"));
	reject_spec("type", json_integer(BUILTIN_SUMSQ)); /* by name only */
	reject_spec("type", json_stringn("no\0op", 5));
	reject_spec("max_result", json_integer(-1));
}

/* A type this process has not loaded: decoded (-2), for the worker to fail that job. */
static void
test_spec_unknown_type(void **state)
{
	struct run_spec s, d;
	char *error = NULL;
	json_t *m;

	full_spec(&s);
	m = worker_encode_spec(&s);
	run_spec_free(&s);
	json_object_set_new(m, "type", json_string("hash"));
	assert_int_equal(worker_decode_spec(m, &d, &error), -2);
	assert_string_equal(error, "job type hash is not loaded in this worker (its module failed "
			    "to load here: see taskd's log)");
	assert_true(d.job_id == 1234567890123ULL);
	free(error);
	run_spec_free(&d);
	json_decref(m);
}

static void
test_progress(void **state)
{
	char *error = NULL, *text = NULL, *big;
	uint64_t job;
	json_t *m;

	m = worker_encode_progress(17, "3/10 files");
	assert_int_equal(worker_decode_progress(m, &job, &text, &error), 0);
	assert_true(job == 17);
	assert_string_equal(text, "3/10 files");
	free(text);
	json_decref(m);
	big = xcalloc(WORKER_PROGRESS_MAX + 2, 1);
	memset(big, 'x', WORKER_PROGRESS_MAX + 1);
	m = worker_encode_progress(17, big);
	assert_int_equal(worker_decode_progress(m, &job, &text, &error), -1);
	assert_string_equal(error, "\"message\": too long");
	free(error);
	json_decref(m);
	free(big);
	m = json_pack("{s:s,s:i}", "t", "progress", "job", 3);
	assert_int_equal(worker_decode_progress(m, &job, &text, &error), -1);
	free(error);
	json_decref(m);
	m = json_pack("{s:s,s:i,s:n}", "t", "progress", "job", 3, "message");
	assert_int_equal(worker_decode_progress(m, &job, &text, &error), -1);
	free(error);
	json_decref(m);
	m = json_pack("{s:s,s:i,s:s}", "t", "done", "job", 3, "message", "x");
	assert_int_equal(worker_decode_progress(m, &job, &text, &error), -1);
	free(error);
	json_decref(m);
}

static void
test_not_object(void **state)
{
	struct run_spec s;
	char *error = NULL;
	json_t *m = json_pack("[i]", 1);

	assert_int_equal(worker_decode_spec(m, &s, &error), -1);
	assert_non_null(error);
	free(error);
	json_decref(m);
}

/* --- transport --------------------------------------------------------- */

static void
pair(int sv[2])
{
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
}

static void
test_send_small(void **state)
{
	json_t *m = json_pack("{s:s,s:i}", "t", "ready", "pid", 42), *got;
	char *error = NULL;
	int sv[2];

	pair(sv);
	assert_int_equal(worker_send(sv[0], m), 0);
	got = worker_recv(sv[1], 1 << 20, &error);
	assert_non_null(got);
	assert_true(json_equal(m, got));
	json_decref(got);
	json_decref(m);
	close(sv[0]);
	close(sv[1]);
}

static json_t *
big_message(size_t size)
{
	char *s = xmalloc(size + 1);
	json_t *m;

	memset(s, 'x', size);
	s[size] = '\0';
	m = json_pack("{s:s,s:s}", "t", "done", "result", s);
	free(s);
	return m;
}

static void
test_send_memfd(void **state)
{
	json_t *m = big_message(1 << 20), *got;
	char *error = NULL;
	int sv[2];

	pair(sv);
	assert_int_equal(worker_send(sv[0], m), 0);
	got = worker_recv(sv[1], 2 << 20, &error);
	assert_null(error);
	assert_non_null(got);
	assert_true(json_equal(m, got));
	json_decref(got);
	json_decref(m);
	close(sv[0]);
	close(sv[1]);
}

static void
test_cap(void **state)
{
	json_t *big = big_message(1 << 20), *small = big_message(1000);
	char *error = NULL;
	int sv[2];

	pair(sv);
	/* memfd over the cap */
	assert_int_equal(worker_send(sv[0], big), 0);
	assert_null(worker_recv(sv[1], 64 << 10, &error));
	assert_non_null(error);
	free(error);
	error = NULL;
	/* one datagram over the cap */
	assert_int_equal(worker_send(sv[0], small), 0);
	assert_null(worker_recv(sv[1], 100, &error));
	assert_non_null(error);
	free(error);
	error = NULL;
	/* garbage */
	assert_int_equal(send(sv[0], "{nope", 5, 0), 5);
	assert_null(worker_recv(sv[1], 100, &error));
	assert_non_null(error);
	free(error);
	json_decref(big);
	json_decref(small);
	close(sv[0]);
	close(sv[1]);
}

static void
test_eof(void **state)
{
	char *error = NULL;
	int sv[2];

	pair(sv);
	close(sv[0]);
	assert_null(worker_recv(sv[1], 100, &error));
	assert_string_equal(error, "eof");
	free(error);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_spec_round_trip),
	    cmocka_unit_test(test_result_round_trip),
	    cmocka_unit_test(test_result_rejects),
	    cmocka_unit_test(test_spec_rejects),
	    cmocka_unit_test(test_spec_unknown_type),
	    cmocka_unit_test(test_progress),
	    cmocka_unit_test(test_not_object),
	    cmocka_unit_test(test_send_small),
	    cmocka_unit_test(test_send_memfd),
	    cmocka_unit_test(test_cap),
	    cmocka_unit_test(test_eof),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
