#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "builtin.h"
#include "router.h"

static void
test_key(void **state)
{
	char buf[ROUTER_KEY_MAX + 1], long_name[200];
	char *argv[] = { "/usr/bin/ffmpeg", "-i", "x", NULL };
	char *bare[] = { "curl", NULL };
	char *slash[] = { "dir/", NULL };
	json_t *j;

	(void)state;
	assert_string_equal(router_key("encode", "exec", argv, buf, sizeof buf), "encode");
	assert_string_equal(router_key(NULL, "spin", NULL, buf, sizeof buf), "spin");
	assert_string_equal(router_key(NULL, "exec", argv, buf, sizeof buf), "ffmpeg");
	assert_string_equal(router_key("", "exec", bare, buf, sizeof buf), "curl");
	assert_string_equal(router_key(NULL, "exec", slash, buf, sizeof buf), "dir/");
	assert_string_equal(router_key(NULL, "exec", NULL, buf, sizeof buf), "?");
	memset(long_name, 'a', sizeof long_name - 1);
	long_name[sizeof long_name - 1] = '\0';
	assert_int_equal(strlen(router_key(long_name, "exec", NULL, buf, sizeof buf)),
			 ROUTER_KEY_MAX);
	/* A two-byte character across the cut is dropped whole. */
	memset(long_name, 'a', ROUTER_KEY_MAX - 1);
	strcpy(long_name + ROUTER_KEY_MAX - 1, "\xc3\xa9tail");
	router_key(long_name, "exec", NULL, buf, sizeof buf);
	assert_int_equal(strlen(buf), ROUTER_KEY_MAX - 1);
	j = json_string(buf); /* NULL if buf were not valid UTF-8 */
	assert_non_null(j);
	json_decref(j);
}

static void
test_unknown_uses_default(void **state)
{
	struct router *rt = router_new(CLASS_IO, 0.5);

	(void)state;
	assert_int_equal(router_decide(rt, "never-seen"), CLASS_IO);
	router_configure(rt, CLASS_CPU, 0.5);
	assert_int_equal(router_decide(rt, "never-seen"), CLASS_CPU);
	/* auto is not a valid default: treated as io */
	router_configure(rt, CLASS_AUTO, 0.5);
	assert_int_equal(router_decide(rt, "never-seen"), CLASS_IO);
	router_free(rt);
}

static void
test_learns(void **state)
{
	struct router *rt = router_new(CLASS_IO, 0.5);
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		router_learn(rt, "spin", 0.49, 0.5);
		router_learn(rt, "sleep", 0.0, 0.2);
	}
	assert_int_equal(router_decide(rt, "spin"), CLASS_CPU);
	assert_int_equal(router_decide(rt, "sleep"), CLASS_IO);
	assert_int_equal(router_size(rt), 2);
	router_free(rt);
}

static void
test_ewma(void **state)
{
	struct router *rt = router_new(CLASS_IO, 0.5);
	json_t *t, *e;

	(void)state;
	router_learn(rt, "k", 1.0, 1.0); /* first sample sets the ratio: 1.0 */
	router_learn(rt, "k", 0.0, 1.0); /* 0.3*0 + 0.7*1 = 0.7 */
	t = router_to_json(rt);
	e = json_array_get(t, 0);
	assert_string_equal(json_string_value(json_object_get(e, "key")), "k");
	assert_int_equal(json_integer_value(json_object_get(e, "samples")), 2);
	assert_true(fabs(json_real_value(json_object_get(e, "cpu_ratio")) - 0.7) < 1e-9);
	assert_string_equal(json_string_value(json_object_get(e, "class")), "cpu");
	json_decref(t);
	router_learn(rt, "k", 0.0, 1.0); /* 0.49 */
	assert_int_equal(router_decide(rt, "k"), CLASS_IO);
	/* The threshold is applied live on reconfigure. */
	router_configure(rt, CLASS_IO, 0.4);
	assert_int_equal(router_decide(rt, "k"), CLASS_CPU);
	router_free(rt);
}

static void
test_ignores_useless_samples(void **state)
{
	struct router *rt = router_new(CLASS_IO, 0.5);

	(void)state;
	router_learn(rt, "noop", 0.0, 0.0);       /* no wall time */
	router_learn(rt, "noop", 0.0, 0.0005);    /* below ROUTER_MIN_WALL */
	router_learn(rt, "bad", -1.0, 1.0);
	router_learn(rt, "bad", NAN, 1.0);
	router_learn(rt, "bad", 1.0, NAN);
	assert_int_equal(router_size(rt), 0);
	/* More CPU than wall (several threads) counts as fully CPU-bound. */
	router_learn(rt, "par", 4.0, 1.0);
	assert_int_equal(router_decide(rt, "par"), CLASS_CPU);
	router_free(rt);
}

/* router_route: an explicit class wins; auto is the decision for the job's kind. */
static void
test_route(void **state)
{
	struct router *rt = router_new(CLASS_IO, 0.5);
	char *argv[] = { "/usr/bin/ffmpeg", "-i", "x", NULL };
	struct job_spec spec = { .type = BUILTIN_EXEC, .argv = argv, .class = CLASS_AUTO };
	char key[ROUTER_KEY_MAX + 1];

	(void)state;
	assert_int_equal(router_route(rt, &spec, key, sizeof key), CLASS_IO);
	assert_string_equal(key, "ffmpeg");
	router_learn(rt, "ffmpeg", 1.0, 1.0);
	assert_int_equal(router_route(rt, &spec, key, sizeof key), CLASS_CPU);
	spec.class = CLASS_IO;
	assert_int_equal(router_route(rt, &spec, key, sizeof key), CLASS_IO);
	assert_string_equal(key, "ffmpeg"); /* the key is set whatever the class */
	spec.class = CLASS_CPU;
	spec.name = "encode";
	assert_int_equal(router_route(rt, &spec, key, sizeof key), CLASS_CPU);
	assert_string_equal(key, "encode");
	spec.class = CLASS_AUTO;
	assert_int_equal(router_route(rt, &spec, key, sizeof key), CLASS_IO); /* never seen */
	spec.name = NULL;
	spec.type = BUILTIN_SLEEP;
	router_route(rt, &spec, key, sizeof key);
	assert_string_equal(key, "sleep");
	router_free(rt);
}

/* router_learn_run: which outcomes teach, and the run-queue wait is not I/O. */
static void
test_learn_run(void **state)
{
	static const enum run_status silent[] = { RUN_CANCELLED, RUN_FAILED, RUN_LOST };
	static const enum run_status counted[] = { RUN_EXITED, RUN_SIGNALED, RUN_TIMEOUT };
	struct run_result r = { .cpu_user = 0.4, .cpu_sys = 0.1, .wall = 1.0 };
	struct router *rt = router_new(CLASS_IO, 0.5);
	json_t *t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof silent / sizeof silent[0]; i++) {
		r.status = silent[i];
		router_learn_run(rt, "k", &r);
	}
	assert_int_equal(router_size(rt), 0);
	for (i = 0; i < sizeof counted / sizeof counted[0]; i++) {
		r.status = counted[i];
		router_learn_run(rt, "k", &r);
	}
	t = router_to_json(rt);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(t, 0), "samples")), 3);
	assert_true(fabs(json_real_value(json_object_get(json_array_get(t, 0), "cpu_ratio")) -
			 0.5) < 1e-9);
	json_decref(t);
	/* 0.5 s of CPU in 1 s, 0.5 s of it waiting for a core: all CPU. */
	r.status = RUN_EXITED;
	r.runq_wait = 0.5;
	router_learn_run(rt, "busy", &r);
	t = router_to_json(rt);
	assert_true(fabs(json_real_value(json_object_get(json_array_get(t, 0), "cpu_ratio")) -
			 1.0) < 1e-9);
	json_decref(t);
	/* A wait as long as the run itself is not believed: the plain ratio. */
	r.runq_wait = 1.0;
	router_learn_run(rt, "odd", &r);
	t = router_to_json(rt);
	assert_true(fabs(json_real_value(json_object_get(json_array_get(t, 0), "cpu_ratio")) -
			 0.5) < 1e-9);
	json_decref(t);
	router_free(rt);
}

static void
test_bounded_lru(void **state)
{
	struct router *rt = router_new(CLASS_IO, 0.5);
	char key[32];
	int i;

	(void)state;
	router_learn(rt, "keep", 1.0, 1.0);
	for (i = 0; i < ROUTER_MAX_KEYS + 100; i++) {
		snprintf(key, sizeof key, "k%d", i);
		router_learn(rt, key, 1.0, 1.0);
		if (i % 100 == 0)
			router_decide(rt, "keep"); /* recently used: survives */
	}
	assert_int_equal(router_size(rt), ROUTER_MAX_KEYS);
	assert_int_equal(router_decide(rt, "keep"), CLASS_CPU);
	assert_int_equal(router_decide(rt, "k0"), CLASS_IO); /* evicted → default */
	router_free(rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key),
		cmocka_unit_test(test_unknown_uses_default),
		cmocka_unit_test(test_learns),
		cmocka_unit_test(test_ewma),
		cmocka_unit_test(test_ignores_useless_samples),
		cmocka_unit_test(test_bounded_lru),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_learn_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
