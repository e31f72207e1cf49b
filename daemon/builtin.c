/*
 * The built-in job types (noop, sleep, spin, sumsq, count): a module like
 * any other (include/taskd/module.h), compiled into taskd. modules.c puts
 * it first in the table of types; modrun.c runs its types as it runs any
 * module's, on a pool thread or in a worker.
 *
 * They are TASKD_TYPE_PURE (no files, no processes: no change of ids, no
 * output files) and check taskd_stop() often enough to end within about a
 * millisecond of a cancel or their deadline: sleep waits with
 * taskd_wait(); spin checks every ~1 ms of CPU, sumsq and count every 2^20
 * iterations.
 *
 * No state: the arguments are parsed again by run() (validate() checked
 * them at submit; a stored job is not checked again).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskd/module.h>

#include "builtin.h"

#define BUILTIN_MAX_SECONDS 31536000.0    /* one year */
#define BUILTIN_MAX_N 1000000000000ULL    /* 10^12: sumsq still fits 128 bits */
#define BUILTIN_CHUNK (UINT64_C(1) << 20) /* iterations between checks */
#define BUILTIN_SPIN_BURN (1 << 14)       /* iterations between CPU clock reads */
#define BUILTIN_SPIN_CHECK 0.001          /* CPU seconds between checks */

/* --- arguments -------------------------------------------------------- */

/* A plain finite decimal number (no sign, no spaces), 0 <= x <= max. */
static int
parse_seconds(const char *s, double *out)
{
	char *end;
	double v;

	if (!(s[0] >= '0' && s[0] <= '9') && s[0] != '.')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !isfinite(v) || v < 0 || v > BUILTIN_MAX_SECONDS)
		return -1;
	*out = v;
	return 0;
}

/* Digits only, 0 <= n <= 10^12. */
static int
parse_count(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!(s[0] >= '0' && s[0] <= '9'))
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v > BUILTIN_MAX_N)
		return -1;
	*out = v;
	return 0;
}

/* SECONDS: 0, or -1 with the message in err. */
static int
arg_seconds(int argc, char *const *argv, double *v, char *err, size_t len)
{
	if (argc != 1) {
		snprintf(err, len, "expected one argument SECONDS");
		return -1;
	}
	if (parse_seconds(argv[0], v) == -1) {
		snprintf(err, len, "invalid SECONDS '%s': expected a number from 0 to %.0f", argv[0],
			 BUILTIN_MAX_SECONDS);
		return -1;
	}
	return 0;
}

/* N: 0, or -1 with the message in err. */
static int
arg_count(int argc, char *const *argv, uint64_t *n, char *err, size_t len)
{
	if (argc != 1) {
		snprintf(err, len, "expected one argument N");
		return -1;
	}
	if (parse_count(argv[0], n) == -1) {
		snprintf(err, len, "invalid N '%s': expected an integer from 0 to %llu", argv[0],
			 BUILTIN_MAX_N);
		return -1;
	}
	return 0;
}

/* None of them reads an input. */
static int
no_input(const struct taskd_args *a, char *err, size_t len)
{
	if (a->input_len == 0)
		return 0;
	snprintf(err, len, "takes no input");
	return -1;
}

static int
validate_none(const struct taskd_args *a, char *err, size_t len)
{
	if (a->argc != 0) {
		snprintf(err, len, "expected no arguments");
		return -1;
	}
	return no_input(a, err, len);
}

static int
validate_seconds(const struct taskd_args *a, char *err, size_t len)
{
	double v;

	if (arg_seconds(a->argc, a->argv, &v, err, len) == -1)
		return -1;
	return no_input(a, err, len);
}

static int
validate_count(const struct taskd_args *a, char *err, size_t len)
{
	uint64_t n;

	if (arg_count(a->argc, a->argv, &n, err, len) == -1)
		return -1;
	return no_input(a, err, len);
}

/* The arguments again at run time: a bad one fails the job with validate()'s message. */
static int
run_arg_seconds(struct taskd_job *job, double *v)
{
	char err[160];

	if (arg_seconds(job->argc, job->argv, v, err, sizeof err) == 0)
		return 0;
	taskd_error(job, err);
	return -1;
}

static int
run_arg_count(struct taskd_job *job, uint64_t *n)
{
	char err[160];

	if (arg_count(job->argc, job->argv, n, err, sizeof err) == 0)
		return 0;
	taskd_error(job, err);
	return -1;
}

/* --- the types -------------------------------------------------------- */

static int
run_noop(struct taskd_job *job)
{
	(void)job;
	return TASKD_OK;
}

static int
run_sleep(struct taskd_job *job)
{
	double seconds;

	if (run_arg_seconds(job, &seconds) == -1)
		return TASKD_FAILED;
	return taskd_wait(job, seconds) == 0 ? TASKD_OK : TASKD_STOPPED;
}

static double
thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
burn(void)
{
	volatile uint64_t sink = 0;
	int i;

	for (i = 0; i < BUILTIN_SPIN_BURN; i++)
		sink += (uint64_t)i;
	(void)sink;
}

/* Burn CPU until this thread used that many seconds of it. */
static int
run_spin(struct taskd_job *job)
{
	double seconds, target, next_check = 0, cpu;

	if (run_arg_seconds(job, &seconds) == -1)
		return TASKD_FAILED;
	target = thread_cpu() + seconds;
	for (;;) {
		burn();
		cpu = thread_cpu();
		if (cpu >= target)
			return TASKD_OK;
		if (cpu < next_check)
			continue;
		if (taskd_stop(job))
			return TASKD_STOPPED;
		next_check = cpu + BUILTIN_SPIN_CHECK;
	}
}

static int
result_u128(struct taskd_job *job, unsigned __int128 v)
{
	char buf[40], *p = buf + sizeof buf; /* 2^128 has 39 digits */

	*--p = '\0';
	do {
		*--p = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v != 0);
	return taskd_result(job, p, strlen(p));
}

static uint64_t
chunk_end(uint64_t i, uint64_t n)
{
	return n - i > BUILTIN_CHUNK ? i + BUILTIN_CHUNK : n;
}

/* Sum of i*i for i < n, exact (fits 128 bits for n <= 10^12). */
static int
run_sumsq(struct taskd_job *job)
{
	unsigned __int128 sum = 0;
	uint64_t i = 0, n, end;

	if (run_arg_count(job, &n) == -1)
		return TASKD_FAILED;
	while (i < n) {
		for (end = chunk_end(i, n); i < end; i++)
			sum += (unsigned __int128)i * i;
		if (taskd_stop(job))
			return TASKD_STOPPED;
	}
	result_u128(job, sum);
	return TASKD_OK;
}

/* The seeds' loop: a volatile counter incremented n times. */
static int
run_count(struct taskd_job *job)
{
	volatile uint64_t counter = 0;
	uint64_t i = 0, n, end;
	char text[24];

	if (run_arg_count(job, &n) == -1)
		return TASKD_FAILED;
	while (i < n) {
		for (end = chunk_end(i, n); i < end; i++)
			counter++;
		if (taskd_stop(job))
			return TASKD_STOPPED;
	}
	snprintf(text, sizeof text, "%" PRIu64, (uint64_t)counter);
	taskd_result(job, text, strlen(text));
	return TASKD_OK;
}

/* --- the module --------------------------------------------------------- */

static const struct taskd_type type_noop = {
	TASKD_TYPE_INIT, .name = "noop", .cls = TASKD_TYPE_AUTO, .flags = TASKD_TYPE_PURE,
	.usage = "", .validate = validate_none, .run = run_noop,
};
static const struct taskd_type type_sleep = {
	TASKD_TYPE_INIT, .name = "sleep", .cls = TASKD_TYPE_AUTO, .flags = TASKD_TYPE_PURE,
	.usage = "SECONDS", .validate = validate_seconds, .run = run_sleep,
};
static const struct taskd_type type_spin = {
	TASKD_TYPE_INIT, .name = "spin", .cls = TASKD_TYPE_AUTO, .flags = TASKD_TYPE_PURE,
	.usage = "SECONDS", .validate = validate_seconds, .run = run_spin,
};
static const struct taskd_type type_sumsq = {
	TASKD_TYPE_INIT, .name = "sumsq", .cls = TASKD_TYPE_AUTO, .flags = TASKD_TYPE_PURE,
	.usage = "N", .validate = validate_count, .run = run_sumsq,
};
static const struct taskd_type type_count = {
	TASKD_TYPE_INIT, .name = "count", .cls = TASKD_TYPE_AUTO, .flags = TASKD_TYPE_PURE,
	.usage = "N", .validate = validate_count, .run = run_count,
};

/* In the order of enum builtin_type (modules.c checks it). */
static const struct taskd_type *const builtin_types[] = {
	[BUILTIN_NOOP - 1] = &type_noop,   [BUILTIN_SLEEP - 1] = &type_sleep,
	[BUILTIN_SPIN - 1] = &type_spin,   [BUILTIN_SUMSQ - 1] = &type_sumsq,
	[BUILTIN_COUNT - 1] = &type_count, [BUILTIN_COUNT] = NULL,
};

const struct taskd_module builtin_module = {
	TASKD_MODULE_INIT,
	.name = "builtin",
	.version = NULL,
	.types = builtin_types,
};
