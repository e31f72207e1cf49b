/* Unit tests for daemon/builtin.c (run through modules.c and modrun.c): names, argument checks, each built-in type. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "builtin.h"
#include "exec.h"
#include "jobtype.h"
#include "modules.h"
#include "xmalloc.h"

static void
sleep_s(double s)
{
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A built-in run of type with the given arguments (NULL-terminated). */
static struct run *
mkrun(int type, ...)
{
	struct run *r = run_new(true);
	const char *argv[8];
	const char *a;
	va_list ap;
	int n = 0;

	va_start(ap, type);
	while (n < 7 && (a = va_arg(ap, const char *)) != NULL)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	r->spec.type = type;
	r->spec.argv = strv_dup((char *const *)argv);
	r->spec.timeout = 15; /* safety net */
	return r;
}

static void
assert_valid(int type, const char *arg)
{
	char *argv[] = {(char *)arg, NULL}, *error = (char *)"unset";

	assert_int_equal(module_validate(type, arg != NULL ? argv : (char *[]){NULL}, NULL, 0, &error), 0);
	assert_null(error);
}

static void
assert_invalid(int type, const char *arg, const char *want)
{
	char *argv[] = {(char *)arg, NULL}, *error = NULL;

	assert_int_equal(module_validate(type, arg != NULL ? argv : (char *[]){NULL}, NULL, 0, &error), -1);
	assert_non_null(error);
	if (want != NULL)
		assert_string_equal(error, want);
	free(error);
}

/* Cancel a run after a delay, from another thread. */
struct canceller {
	pthread_t thread;
	struct run *r;
	double delay;
};

static void *
cancel_main(void *arg)
{
	struct canceller *c = arg;

	sleep_s(c->delay);
	run_cancel(c->r);
	return NULL;
}

static void
cancel_later(struct canceller *c, struct run *r, double delay)
{
	c->r = r;
	c->delay = delay;
	assert_int_equal(pthread_create(&c->thread, NULL, cancel_main, c), 0);
}

/* --- tests ------------------------------------------------------------ */

static void
test_names(void **state)
{
	static const char *const names[] = {"exec", "noop", "sleep", "spin", "sumsq", "count"};
	struct jobtype t;
	size_t i;

	(void)state;
	/* The built-in module is first in the table, at the indices of enum builtin_type. */
	for (i = 0; i < sizeof names / sizeof names[0]; i++) {
		assert_int_equal(jobtype_find(names[i], &t), 0);
		assert_int_equal(t.type, (int)i);
		assert_int_equal(t.source, i == 0 ? JOBTYPE_EXEC : JOBTYPE_MODULE);
		assert_string_equal(jobtype_name(t.type, NULL), names[i]);
		if (i > 0) {
			assert_true(module_builtin(t.type));
			assert_string_equal(module_of(t.type), "builtin");
			assert_true(module_type(t.type)->flags & TASKD_TYPE_PURE);
			assert_false(jobtype_has_output(t.type));
		}
	}
	assert_true(jobtype_has_output(BUILTIN_EXEC));
	assert_int_equal(module_find("exec"), -1);
	assert_int_equal(module_find("EXEC"), -1);
	assert_int_equal(module_find(""), -1);
	assert_int_equal(module_find("nope"), -1);
	assert_int_equal(jobtype_find("nope", &t), -1);
	assert_null(jobtype_name(-1, NULL));
	assert_null(jobtype_name(99, NULL));
	assert_null(module_type(0));
	assert_int_equal(module_find("sleep"), BUILTIN_SLEEP);
	assert_int_equal(module_find("count"), BUILTIN_COUNT);
	assert_int_equal(module_ntypes(), BUILTIN_COUNT);
}

static void
test_validate_exec_noop(void **state)
{
	char *two[] = {"a", "b", NULL}, *error = NULL;

	(void)state;
	/* exec is a command, not a module type: proto.c checks its argv. */
	assert_invalid(BUILTIN_EXEC, "true", "unknown job type 0");
	assert_valid(BUILTIN_NOOP, NULL);
	assert_int_equal(module_validate(BUILTIN_NOOP, NULL, NULL, 0, &error), 0);
	assert_invalid(BUILTIN_NOOP, "1", "noop: expected no arguments");
	assert_int_equal(module_validate(BUILTIN_SLEEP, two, NULL, 0, &error), -1);
	assert_string_equal(error, "sleep: expected one argument SECONDS");
	free(error);
	assert_invalid(42, NULL, "unknown job type 42");
	assert_invalid(-1, NULL, "unknown job type -1");
}

static void
test_validate_seconds(void **state)
{
	static const char *const good[] = {"0", "0.5", "1", "10", ".25", "1e3", "31536000"};
	static const char *const bad[] = {"",   "-1",  "+1",  " 1",         "1 ",   "abc",
	                                  "1x", "nan", "inf", "31536000.5", "1e10", "-0"};
	int types[] = {BUILTIN_SLEEP, BUILTIN_SPIN};
	size_t i, k;

	(void)state;
	for (k = 0; k < 2; k++) {
		for (i = 0; i < sizeof good / sizeof good[0]; i++)
			assert_valid(types[k], good[i]);
		for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
			assert_invalid(types[k], bad[i], NULL);
	}
	assert_invalid(BUILTIN_SLEEP, NULL, "sleep: expected one argument SECONDS");
	assert_invalid(BUILTIN_SPIN, NULL, "spin: expected one argument SECONDS");
	assert_invalid(BUILTIN_SLEEP, "x",
	               "sleep: invalid SECONDS 'x': expected a number from 0 to 31536000");
}

static void
test_validate_count(void **state)
{
	static const char *const good[] = {"0", "1", "10", "1000000000000", "007"};
	static const char *const bad[] = {"",
	                                  "-1",
	                                  "+1",
	                                  " 1",
	                                  "1 ",
	                                  "1.0",
	                                  "1e3",
	                                  "0x10",
	                                  "abc",
	                                  "1000000000001",
	                                  "18446744073709551616"};
	int types[] = {BUILTIN_SUMSQ, BUILTIN_COUNT};
	size_t i, k;

	(void)state;
	for (k = 0; k < 2; k++) {
		for (i = 0; i < sizeof good / sizeof good[0]; i++)
			assert_valid(types[k], good[i]);
		for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
			assert_invalid(types[k], bad[i], NULL);
	}
	assert_invalid(BUILTIN_SUMSQ, NULL, "sumsq: expected one argument N");
	assert_invalid(BUILTIN_COUNT, "-5",
	               "count: invalid N '-5': expected an integer from 0 to 1000000000000");
}

static void
test_noop(void **state)
{
	struct run *r = mkrun(BUILTIN_NOOP, NULL);

	(void)state;
	run_execute(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_int_equal(r->res.pid, 0);
	assert_int_equal(r->res.max_rss_kb, -1);
	assert_null(r->res.result);
	assert_null(r->res.error);
	assert_true(r->res.started_at > 1e9);
	assert_true(r->res.finished_at >= r->res.started_at);
	assert_true(r->res.wall >= 0 && r->res.wall < 1);
	run_free(r);
}

static void
test_sleep(void **state)
{
	struct run *r = mkrun(BUILTIN_SLEEP, "0.2", NULL);

	(void)state;
	run_execute(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_true(r->res.wall >= 0.2);
	assert_true(r->res.wall < 1.5);
	assert_true(r->res.cpu_user + r->res.cpu_sys < 0.05);
	run_free(r);
}

static void
test_sleep_cancel(void **state)
{
	struct run *r = mkrun(BUILTIN_SLEEP, "10", NULL);
	struct canceller c;

	(void)state;
	cancel_later(&c, r, 0.1);
	module_run(r);
	pthread_join(c.thread, NULL);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_int_equal(r->res.exit_code, -1);
	assert_true(r->res.wall < 3);
	run_free(r);
}

static void
test_sleep_timeout(void **state)
{
	struct run *r = mkrun(BUILTIN_SLEEP, "10", NULL);

	(void)state;
	r->spec.timeout = 0.2;
	module_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_int_equal(r->res.exit_code, -1);
	assert_true(r->res.wall >= 0.2);
	assert_true(r->res.wall < 3);
	run_free(r);
}

static void
test_cancel_before_start(void **state)
{
	struct run *r = mkrun(BUILTIN_SUMSQ, "1000000000000", NULL);

	(void)state;
	run_cancel(r);
	module_run(r);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_null(r->res.result);
	assert_true(r->res.wall < 1);
	run_free(r);
}

static void
test_spin(void **state)
{
	struct run *r = mkrun(BUILTIN_SPIN, "0.3", NULL);

	(void)state;
	module_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_true(r->res.cpu_user + r->res.cpu_sys >= 0.28);
	assert_true(r->res.wall >= 0.28);
	assert_true(r->res.wall < 10);
	run_free(r);
}

static void
test_spin_cancel_timeout(void **state)
{
	struct run *r = mkrun(BUILTIN_SPIN, "100", NULL);
	struct canceller c;

	(void)state;
	cancel_later(&c, r, 0.1);
	module_run(r);
	pthread_join(c.thread, NULL);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_true(r->res.wall < 3);
	run_free(r);

	r = mkrun(BUILTIN_SPIN, "100", NULL);
	r->spec.timeout = 0.1;
	module_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_true(r->res.wall >= 0.1 && r->res.wall < 3);
	run_free(r);
}

static void
check_sumsq(const char *n, const char *want)
{
	struct run *r = mkrun(BUILTIN_SUMSQ, n, NULL);

	r->spec.timeout = 60;
	module_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_non_null(r->res.result);
	assert_string_equal(r->res.result, want);
	run_free(r);
}

static void
test_sumsq(void **state)
{
	(void)state;
	check_sumsq("0", "0");
	check_sumsq("1", "0");
	check_sumsq("2", "1");
	check_sumsq("10", "285");
	check_sumsq("3810778", "18446735571075162805"); /* last one under 2^64 */
	check_sumsq("3810779", "18446750093104128089"); /* first one over 2^64 */
	check_sumsq("100000000", "333333328333333350000000");
}

static void
test_sumsq_cancel(void **state)
{
	struct run *r = mkrun(BUILTIN_SUMSQ, "1000000000000", NULL);
	struct canceller c;

	(void)state;
	cancel_later(&c, r, 0.1);
	module_run(r);
	pthread_join(c.thread, NULL);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_int_equal(r->res.exit_code, -1);
	assert_null(r->res.result);
	assert_true(r->res.wall < 3);
	run_free(r);
}

static void
test_count(void **state)
{
	struct run *r = mkrun(BUILTIN_COUNT, "1000000", NULL);

	(void)state;
	run_execute(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_string_equal(r->res.result, "1000000");
	run_free(r);

	r = mkrun(BUILTIN_COUNT, "0", NULL);
	module_run(r);
	assert_string_equal(r->res.result, "0");
	run_free(r);

	r = mkrun(BUILTIN_COUNT, "1000000000000", NULL);
	r->spec.timeout = 0.1;
	module_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_null(r->res.result);
	assert_true(r->res.wall < 3);
	run_free(r);
}

static void
test_bad_args_at_run(void **state)
{
	struct run *r = mkrun(BUILTIN_SLEEP, "soon", NULL);

	(void)state;
	module_run(r);
	/* run() said TASKD_FAILED: exited 1 (the job fails) with its message. */
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 1);
	assert_string_equal(r->res.error,
			    "invalid SECONDS 'soon': expected a number from 0 to 31536000");
	assert_null(r->res.result);
	run_free(r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_validate_exec_noop),
	    cmocka_unit_test(test_validate_seconds),
	    cmocka_unit_test(test_validate_count),
	    cmocka_unit_test(test_noop),
	    cmocka_unit_test(test_sleep),
	    cmocka_unit_test(test_sleep_cancel),
	    cmocka_unit_test(test_sleep_timeout),
	    cmocka_unit_test(test_cancel_before_start),
	    cmocka_unit_test(test_spin),
	    cmocka_unit_test(test_spin_cancel_timeout),
	    cmocka_unit_test(test_sumsq),
	    cmocka_unit_test(test_sumsq_cancel),
	    cmocka_unit_test(test_count),
	    cmocka_unit_test(test_bad_args_at_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
