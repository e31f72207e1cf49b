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
#include "exec.h"
#include "job.h"
#include "router.h"

static struct router *
new_router(enum job_class def, double ratio, int min_samples)
{
	struct router_config c = { def, ratio, min_samples };

	return router_new(&c);
}

static void
configure(struct router *rt, enum job_class def, double ratio, int min_samples)
{
	struct router_config c = { def, ratio, min_samples };

	router_configure(rt, &c);
}

/* Keys from a list, finest first. */
static struct kind_keys
keys(const char *a, const char *b, const char *c)
{
	struct kind_keys k = { 0 };
	const char *v[] = { a, b, c };
	size_t i;

	for (i = 0; i < 3 && v[i] != NULL; i++)
		snprintf(k.key[k.n++], sizeof k.key[0], "%s", v[i]);
	return k;
}

static enum job_class
decide1(struct router *rt, const char *key)
{
	struct kind_keys k = keys(key, NULL, NULL);
	struct route r;

	return router_decide(rt, &k, &r);
}

static void
learn1(struct router *rt, const char *key, double cpu, double wall)
{
	struct kind_keys k = keys(key, NULL, NULL);

	router_learn(rt, &k, cpu, wall);
}

static void
test_unknown_uses_default(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	struct kind_keys k = keys("a b", "a", NULL);
	struct route r;

	(void)state;
	assert_int_equal(router_decide(rt, &k, &r), CLASS_IO);
	assert_int_equal(r.by, ROUTE_DEFAULT);
	assert_int_equal(r.level, -1);
	assert_string_equal(r.key, "");
	configure(rt, CLASS_CPU, 0.5, 1);
	assert_int_equal(decide1(rt, "never-seen"), CLASS_CPU);
	/* auto is not a valid default: treated as io */
	configure(rt, CLASS_AUTO, 0.5, 1);
	assert_int_equal(decide1(rt, "never-seen"), CLASS_IO);
	router_free(rt);
}

static void
test_learns(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	int i;

	(void)state;
	for (i = 0; i < 3; i++) {
		learn1(rt, "spin", 0.49, 0.5);
		learn1(rt, "sleep", 0.0, 0.2);
	}
	assert_int_equal(decide1(rt, "spin"), CLASS_CPU);
	assert_int_equal(decide1(rt, "sleep"), CLASS_IO);
	assert_int_equal(router_size(rt), 2);
	router_free(rt);
}

static void
test_ewma(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	json_t *t, *e;

	(void)state;
	learn1(rt, "k", 1.0, 1.0); /* first sample sets the ratio: 1.0 */
	learn1(rt, "k", 0.0, 1.0); /* 0.3*0 + 0.7*1 = 0.7 */
	t = router_to_json(rt);
	e = json_array_get(t, 0);
	assert_string_equal(json_string_value(json_object_get(e, "key")), "k");
	assert_int_equal(json_integer_value(json_object_get(e, "samples")), 2);
	assert_true(fabs(json_real_value(json_object_get(e, "cpu_ratio")) - 0.7) < 1e-9);
	assert_string_equal(json_string_value(json_object_get(e, "class")), "cpu");
	assert_true(json_is_null(json_object_get(e, "peak_kb")));
	json_decref(t);
	learn1(rt, "k", 1.0, 1.0); /* 0.79 */
	learn1(rt, "k", 0.2, 1.0); /* 0.613 */
	learn1(rt, "k", 0.2, 1.0); /* EWMA 0.489, but two runs in a row below: their mean, 0.2 */
	assert_int_equal(decide1(rt, "k"), CLASS_IO);
	t = router_to_json(rt);
	assert_true(fabs(json_real_value(json_object_get(json_array_get(t, 0), "cpu_ratio")) -
			 0.2) < 1e-9);
	json_decref(t);
	/* The threshold is applied live on reconfigure. */
	configure(rt, CLASS_IO, 0.15, 1);
	assert_int_equal(decide1(rt, "k"), CLASS_CPU);
	router_free(rt);
}

/* A kind that turns I/O-bound flips within 3 runs, even after many CPU runs. */
static void
test_flips_within_three(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	int i, runs = 0;

	(void)state;
	for (i = 0; i < 50; i++)
		learn1(rt, "k", 1.0, 1.0);
	while (decide1(rt, "k") == CLASS_CPU && runs < 10) {
		learn1(rt, "k", 0.02, 1.0);
		runs++;
	}
	assert_true(runs <= 3);
	runs = 0;
	while (decide1(rt, "k") == CLASS_IO && runs < 10) {
		learn1(rt, "k", 0.98, 1.0);
		runs++;
	}
	assert_true(runs <= 3);
	/* Runs of the new behaviour are rarely all-or-nothing: 0.15 (startup CPU) too. */
	for (i = 0; i < 50; i++)
		learn1(rt, "k", 1.0, 1.0);
	runs = 0;
	while (decide1(rt, "k") == CLASS_CPU && runs < 10) {
		learn1(rt, "k", 0.15, 1.0);
		runs++;
	}
	assert_int_equal(runs, 2); /* the third run is routed io */
	router_free(rt);
}

/* One odd run does not flip a kind, even one near the threshold; live samples count no run. */
static void
test_one_odd_run(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	struct kind_keys k = keys("k", NULL, NULL);
	int i;

	(void)state;
	for (i = 0; i < 5; i++)
		learn1(rt, "k", 1.0, 1.0);
	learn1(rt, "k", 0.0, 1.0);     /* 0.7 */
	assert_int_equal(decide1(rt, "k"), CLASS_CPU);
	learn1(rt, "k", 1.0, 1.0);     /* 0.79, back: the count starts over */
	learn1(rt, "k", 0.0, 1.0);     /* 0.553 */
	assert_int_equal(decide1(rt, "k"), CLASS_CPU);
	/* A reclassification's live sample and its run's end are one run. */
	router_learn_live(rt, &k, 0.0, 1.0);
	learn1(rt, "k", 0.0, 1.0);
	assert_int_equal(decide1(rt, "k"), CLASS_IO); /* the EWMA itself got there */
	router_free(rt);
}

static void
test_ignores_useless_samples(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);

	(void)state;
	learn1(rt, "noop", 0.0, 0.0);       /* no wall time */
	learn1(rt, "noop", 0.0, 0.0005);    /* below ROUTER_MIN_WALL */
	learn1(rt, "bad", -1.0, 1.0);
	learn1(rt, "bad", NAN, 1.0);
	learn1(rt, "bad", 1.0, NAN);
	learn1(rt, "bad", 1.0, INFINITY);
	assert_int_equal(router_size(rt), 0);
	/* More CPU than wall (several threads) counts as fully CPU-bound. */
	learn1(rt, "par", 4.0, 1.0);
	assert_int_equal(decide1(rt, "par"), CLASS_CPU);
	router_free(rt);
}

/* Which finished runs teach, and the run-queue wait is not counted as waiting for I/O. */
static void
test_sample(void **state)
{
	struct run_result r = { 0 };
	double cpu, wall;

	(void)state;
	r.status = RUN_EXITED;
	r.cpu_user = 0.3;
	r.cpu_sys = 0.1;
	r.wall = 1.0;
	r.runq_wait = 0.5;
	assert_true(router_sample(&r, &cpu, &wall));
	assert_true(fabs(cpu - 0.4) < 1e-9);
	assert_true(fabs(wall - 0.5) < 1e-9);
	/* Waits of several processes add up past the wall: none blocked, all CPU. */
	r.runq_wait = 2.0;
	assert_true(router_sample(&r, &cpu, &wall));
	assert_true(fabs(wall - 0.4) < 1e-9);
	/* The command's own lifetime, not the runner's work around it. */
	r.runq_wait = 0.1;
	r.cmd_wall = 0.6;
	assert_true(router_sample(&r, &cpu, &wall));
	assert_true(fabs(wall - 0.5) < 1e-9);
	r.cmd_wall = 0;
	r.status = RUN_SIGNALED;
	assert_true(router_sample(&r, &cpu, &wall));
	r.status = RUN_TIMEOUT;
	assert_true(router_sample(&r, &cpu, &wall));
	r.status = RUN_CANCELLED;
	assert_false(router_sample(&r, &cpu, &wall));
	r.status = RUN_LOST;
	assert_false(router_sample(&r, &cpu, &wall));
	r.status = RUN_FAILED;
	assert_false(router_sample(&r, &cpu, &wall));
	r.status = RUN_EXITED;
	r.wall = 0.0002;
	r.runq_wait = 0;
	assert_false(router_sample(&r, &cpu, &wall));
}

/* The finest key with enough samples decides, else the coarsest with any, else the default. */
static void
test_hierarchy(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 2);
	struct kind_keys cpu = keys("sh -c while [", "sh", NULL);
	struct kind_keys io = keys("sleep", "sh", NULL);
	struct kind_keys fresh = keys("sh -c for gzip", "sh", NULL);
	struct kind_keys other = keys("python3 x.py", "python3", NULL);
	struct route r;
	json_t *j;

	(void)state;
	router_learn(rt, &cpu, 1.0, 1.0);
	/* One sample, min_samples 2: no key has enough; the coarsest with any decides. */
	assert_int_equal(router_decide(rt, &cpu, &r), CLASS_CPU);
	assert_int_equal(r.level, 1);
	assert_string_equal(r.key, "sh");
	router_learn(rt, &cpu, 1.0, 1.0);
	router_learn(rt, &io, 0.0, 1.0);
	router_learn(rt, &io, 0.0, 1.0);
	router_learn(rt, &io, 0.0, 1.0);
	/* Each script decides on its own key although they share "sh". */
	assert_int_equal(router_decide(rt, &cpu, &r), CLASS_CPU);
	assert_int_equal(r.by, ROUTE_KEY);
	assert_int_equal(r.level, 0);
	assert_string_equal(r.key, "sh -c while [");
	assert_int_equal(r.samples, 2);
	assert_int_equal(router_decide(rt, &io, &r), CLASS_IO);
	assert_string_equal(r.key, "sleep");
	/* A new script falls back to what "sh" learned from all of them (5 samples). */
	router_decide(rt, &fresh, &r);
	assert_int_equal(r.level, 1);
	assert_string_equal(r.key, "sh");
	assert_int_equal(r.samples, 5);
	j = route_to_json(&r, &fresh);
	assert_string_equal(json_string_value(json_object_get(j, "by")), "key");
	assert_string_equal(json_string_value(json_object_get(j, "key")), "sh");
	assert_int_equal(json_integer_value(json_object_get(j, "level")), 1);
	assert_int_equal(json_array_size(json_object_get(j, "keys")), 2);
	json_decref(j);
	/* Nothing known: the default, and the JSON says so. */
	router_decide(rt, &other, &r);
	j = route_to_json(&r, &other);
	assert_string_equal(json_string_value(json_object_get(j, "by")), "default");
	assert_true(json_is_null(json_object_get(j, "key")));
	assert_string_equal(json_string_value(json_object_get(j, "class")), "io");
	json_decref(j);
	router_free(rt);
}

static void
test_peak(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	struct kind_keys k = keys("python3 big.py", "python3", NULL);
	struct kind_keys k2 = keys("python3 small.py", "python3", NULL);
	struct kind_keys fresh = keys("python3 new.py", "python3", NULL);
	json_t *t;

	(void)state;
	assert_int_equal(router_peak_kb(rt, &k), -1);
	router_learn_peak(rt, &k, 100000);
	router_learn_peak(rt, &k2, 1000);
	assert_int_equal(router_peak_kb(rt, &k), 100000);
	assert_int_equal(router_peak_kb(rt, &k2), 1000);
	/* Unknown script: the interpreter's (100000, then down 30 % towards 1000). */
	assert_int_equal(router_peak_kb(rt, &fresh), 70300);
	/* Down slowly: one lean run takes 30 % of the difference. */
	router_learn_peak(rt, &k, 0);
	assert_int_equal(router_peak_kb(rt, &k), 70000);
	router_learn_peak(rt, &k, 200000);
	assert_int_equal(router_peak_kb(rt, &k), 200000);
	router_learn_peak(rt, &k, -1); /* unknown: ignored */
	assert_int_equal(router_peak_kb(rt, &k), 200000);
	/* A key with a peak but no cpu sample decides nothing and shows no class. */
	assert_int_equal(decide1(rt, "python3 big.py"), CLASS_IO);
	t = router_to_json(rt);
	assert_true(json_is_null(json_object_get(json_array_get(t, 0), "class")));
	assert_int_equal(json_integer_value(json_object_get(json_array_get(t, 0), "peak_kb")),
			 200000);
	json_decref(t);
	router_free(rt);
}

/* router_route: an explicit class wins; auto is the decision; a guess does not wait for a slot. */
static void
test_route(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	char *argv[] = { "python3", "new.py", NULL };
	struct job_spec spec = { .type = BUILTIN_EXEC, .argv = argv, .class = CLASS_AUTO };
	struct kind_keys k = keys("python3 new.py", "python3", NULL);
	struct kind_keys known = keys("python3 old.py", "python3", NULL);
	struct route r;

	(void)state;
	assert_int_equal(router_route(rt, &spec, &k, false, &r), CLASS_IO);
	assert_int_equal(r.by, ROUTE_DEFAULT);
	router_learn(rt, &known, 1.0, 1.0);
	/* The interpreter's key guesses cpu for a script never seen: a free slot takes it. */
	assert_int_equal(router_route(rt, &spec, &k, false, &r), CLASS_CPU);
	assert_int_equal(r.by, ROUTE_KEY);
	assert_int_equal(r.level, 1);
	/* Every cpu slot taken: the guess runs on a thread, to be measured. */
	assert_int_equal(router_route(rt, &spec, &k, true, &r), CLASS_IO);
	assert_int_equal(r.by, ROUTE_UNSURE);
	assert_string_equal(r.key, "python3");
	/* Its own key known: it waits for a slot like any cpu job. */
	assert_int_equal(router_route(rt, &spec, &known, true, &r), CLASS_CPU);
	assert_int_equal(r.by, ROUTE_KEY);
	assert_int_equal(r.level, 0);
	/* --class io / cpu: the submitter decided, whatever the router knows. */
	spec.class = CLASS_IO;
	assert_int_equal(router_route(rt, &spec, &known, false, &r), CLASS_IO);
	assert_int_equal(r.by, ROUTE_CLASS);
	assert_int_equal(r.level, -1);
	spec.class = CLASS_CPU;
	assert_int_equal(router_route(rt, &spec, &k, true, &r), CLASS_CPU);
	assert_int_equal(r.by, ROUTE_CLASS);
	router_free(rt);
}

/* router_learn_run: which outcomes teach the ratio, and a command's peak memory. */
static void
test_learn_run(void **state)
{
	static const enum run_status silent[] = { RUN_CANCELLED, RUN_FAILED, RUN_LOST };
	static const enum run_status counted[] = { RUN_EXITED, RUN_SIGNALED, RUN_TIMEOUT };
	struct run_result r = { .cpu_user = 0.4, .cpu_sys = 0.1, .wall = 1.0, .mem_peak_kb = 5000 };
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	struct kind_keys k = keys("gzip", NULL, NULL), b = keys("builtin:spin", NULL, NULL);
	double cpu, wall;
	json_t *t;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof silent / sizeof silent[0]; i++) {
		r.status = silent[i];
		assert_false(router_learn_run(rt, &k, BUILTIN_EXEC, &r, &cpu, &wall));
	}
	assert_int_equal(router_size(rt), 0);
	assert_int_equal(router_peak_kb(rt, &k), -1);
	for (i = 0; i < sizeof counted / sizeof counted[0]; i++) {
		r.status = counted[i];
		assert_true(router_learn_run(rt, &k, BUILTIN_EXEC, &r, &cpu, &wall));
		assert_true(fabs(cpu - 0.5) < 1e-9 && fabs(wall - 1.0) < 1e-9);
	}
	t = router_to_json(rt);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(t, 0), "samples")), 3);
	assert_true(fabs(json_real_value(json_object_get(json_array_get(t, 0), "cpu_ratio")) -
			 0.5) < 1e-9);
	json_decref(t);
	assert_int_equal(router_peak_kb(rt, &k), 5000);
	/* A command too short to be sampled: small as far as admission goes. */
	r.mem_peak_kb = -1;
	router_learn_run(rt, &k, BUILTIN_EXEC, &r, &cpu, &wall);
	assert_int_equal(router_peak_kb(rt, &k), 3500);
	/* A built-in teaches its ratio, not a peak (it runs inside taskd or a worker). */
	r.mem_peak_kb = 100;
	assert_true(router_learn_run(rt, &b, BUILTIN_SPIN, &r, &cpu, &wall));
	assert_int_equal(router_peak_kb(rt, &b), -1);
	router_free(rt);
}

static void
test_bounded_lru(void **state)
{
	struct router *rt = new_router(CLASS_IO, 0.5, 1);
	char key[32];
	int i;

	(void)state;
	learn1(rt, "keep", 1.0, 1.0);
	for (i = 0; i < ROUTER_MAX_KEYS + 100; i++) {
		snprintf(key, sizeof key, "k%d", i);
		learn1(rt, key, 1.0, 1.0);
		if (i % 100 == 0)
			decide1(rt, "keep"); /* recently used: survives */
	}
	assert_int_equal(router_size(rt), ROUTER_MAX_KEYS);
	assert_int_equal(decide1(rt, "keep"), CLASS_CPU);
	assert_int_equal(decide1(rt, "k0"), CLASS_IO); /* evicted → default */
	/* Evicted keys left their hash chains: every key still there is found. */
	for (i = 200; i < ROUTER_MAX_KEYS + 100; i++) {
		snprintf(key, sizeof key, "k%d", i);
		assert_int_equal(decide1(rt, key), CLASS_CPU);
	}
	learn1(rt, "k0", 0.0, 1.0);
	assert_int_equal(decide1(rt, "k0"), CLASS_IO);
	assert_int_equal(router_size(rt), ROUTER_MAX_KEYS);
	router_free(rt);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unknown_uses_default),
		cmocka_unit_test(test_learns),
		cmocka_unit_test(test_ewma),
		cmocka_unit_test(test_flips_within_three),
		cmocka_unit_test(test_one_odd_run),
		cmocka_unit_test(test_ignores_useless_samples),
		cmocka_unit_test(test_sample),
		cmocka_unit_test(test_hierarchy),
		cmocka_unit_test(test_peak),
		cmocka_unit_test(test_bounded_lru),
		cmocka_unit_test(test_route),
		cmocka_unit_test(test_learn_run),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
