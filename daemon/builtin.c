/*
 * Built-in job types, run in the calling thread (a pool thread).
 *
 * What runs where: builtin_run() executes the job's loop right here and
 * blocks until it is done, cancelled (the run's cancel eventfd became
 * readable) or past spec.timeout. Long loops look at both every so often
 * (sleep: poll() on the eventfd; spin: every ~1 ms of CPU; sumsq/count:
 * every 2^20 iterations). CPU time is the thread's own, from
 * getrusage(RUSAGE_THREAD) before and after.
 *
 * Who owns what: only the struct run being executed; no global state
 * beyond the const table of types.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "builtin.h"
#include "clock.h"
#include "exec.h"
#include "xmalloc.h"

#define BUILTIN_MAX_SECONDS 31536000.0    /* one year */
#define BUILTIN_MAX_N 1000000000000ULL    /* 10^12: sumsq still fits 128 bits */
#define BUILTIN_CHUNK (UINT64_C(1) << 20) /* iterations between checks */
#define BUILTIN_SPIN_BURN (1 << 14)       /* iterations between CPU clock reads */
#define BUILTIN_SPIN_CHECK 0.001          /* CPU seconds between checks */

enum builtin_args {
	ARGS_COMMAND, /* exec: a non-empty argv */
	ARGS_NONE,
	ARGS_SECONDS, /* one number 0..31536000 */
	ARGS_COUNT,   /* one integer 0..10^12 */
};

struct builtin_arg {
	double seconds;
	uint64_t n;
};

/* The state of one built-in run. */
struct bjob {
	struct run *r;
	double start;    /* CLOCK_MONOTONIC */
	double deadline; /* CLOCK_MONOTONIC, 0 = none */
};

typedef enum run_status (*builtin_fn)(struct bjob *, const struct builtin_arg *);

static enum run_status run_noop(struct bjob *, const struct builtin_arg *);
static enum run_status run_sleep(struct bjob *, const struct builtin_arg *);
static enum run_status run_spin(struct bjob *, const struct builtin_arg *);
static enum run_status run_sumsq(struct bjob *, const struct builtin_arg *);
static enum run_status run_count(struct bjob *, const struct builtin_arg *);

static const struct builtin_def {
	const char *name;
	enum builtin_args args;
	builtin_fn run; /* NULL: not run here */
} builtin_defs[] = {
    [BUILTIN_EXEC] = {"exec", ARGS_COMMAND, NULL},
    [BUILTIN_NOOP] = {"noop", ARGS_NONE, run_noop},
    [BUILTIN_SLEEP] = {"sleep", ARGS_SECONDS, run_sleep},
    [BUILTIN_SPIN] = {"spin", ARGS_SECONDS, run_spin},
    [BUILTIN_SUMSQ] = {"sumsq", ARGS_COUNT, run_sumsq},
    [BUILTIN_COUNT] = {"count", ARGS_COUNT, run_count},
};

#define BUILTIN_NDEFS ((int)(sizeof builtin_defs / sizeof builtin_defs[0]))

static const struct builtin_def *
builtin_def(int type)
{
	if (type < 0 || type >= BUILTIN_NDEFS)
		return NULL;
	return &builtin_defs[type];
}

int
builtin_lookup(const char *name)
{
	int i;

	for (i = 0; i < BUILTIN_NDEFS; i++)
		if (strcmp(builtin_defs[i].name, name) == 0)
			return i;
	return -1;
}

const char *
builtin_name(int type)
{
	const struct builtin_def *d = builtin_def(type);

	return d != NULL ? d->name : NULL;
}

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

static int
parse_one(const struct builtin_def *d, char *const *argv, struct builtin_arg *a, char **error)
{
	const char *what = d->args == ARGS_SECONDS ? "SECONDS" : "N";

	if (strv_len(argv) != 1) {
		*error = xprintf("%s: expected one argument %s", d->name, what);
		return -1;
	}
	if (d->args == ARGS_SECONDS && parse_seconds(argv[0], &a->seconds) == -1) {
		*error = xprintf("%s: invalid SECONDS '%s': expected a number from 0 to %.0f",
		                 d->name, argv[0], BUILTIN_MAX_SECONDS);
		return -1;
	}
	if (d->args == ARGS_COUNT && parse_count(argv[0], &a->n) == -1) {
		*error = xprintf("%s: invalid N '%s': expected an integer from 0 to %llu", d->name,
		                 argv[0], BUILTIN_MAX_N);
		return -1;
	}
	return 0;
}

static int
builtin_parse(const struct builtin_def *d, char *const *argv, struct builtin_arg *a, char **error)
{
	memset(a, 0, sizeof *a);
	switch (d->args) {
	case ARGS_COMMAND:
		if (strv_len(argv) > 0)
			return 0;
		*error = xprintf("%s: expected a command", d->name);
		return -1;
	case ARGS_NONE:
		if (strv_len(argv) == 0)
			return 0;
		*error = xprintf("%s: expected no arguments", d->name);
		return -1;
	case ARGS_SECONDS:
	case ARGS_COUNT:
		return parse_one(d, argv, a, error);
	}
	*error = xprintf("%s: bad argument kind", d->name);
	return -1;
}

int
builtin_validate(int type, char *const *argv, char **error)
{
	const struct builtin_def *d = builtin_def(type);
	struct builtin_arg a;

	*error = NULL;
	if (d == NULL) {
		*error = xprintf("unknown job type %d", type);
		return -1;
	}
	return builtin_parse(d, argv, &a, error);
}

/* --- the types -------------------------------------------------------- */

/* RUN_CANCELLED, RUN_TIMEOUT, or RUN_EXITED to carry on. */
static enum run_status
bjob_check(const struct bjob *b)
{
	if (run_cancelled(b->r))
		return RUN_CANCELLED;
	if (b->deadline > 0 && clock_now(CLOCK_MONOTONIC) >= b->deadline)
		return RUN_TIMEOUT;
	return RUN_EXITED;
}

static int
ms_until(double due, double now)
{
	double ms = ceil((due - now) * 1000);

	if (ms < 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

static enum run_status
run_noop(struct bjob *b, const struct builtin_arg *a)
{
	(void)b;
	(void)a;
	return RUN_EXITED;
}

/* Wait on the cancel eventfd until the end, the deadline or a cancel. */
static enum run_status
run_sleep(struct bjob *b, const struct builtin_arg *a)
{
	double end = b->start + a->seconds, due, now;
	struct pollfd pfd = {.fd = b->r->cancel_fd, .events = POLLIN};

	for (;;) {
		if (run_cancelled(b->r))
			return RUN_CANCELLED;
		now = clock_now(CLOCK_MONOTONIC);
		if (now >= end)
			return RUN_EXITED;
		if (b->deadline > 0 && now >= b->deadline)
			return RUN_TIMEOUT;
		due = b->deadline > 0 && b->deadline < end ? b->deadline : end;
		if (poll(&pfd, 1, ms_until(due, now)) == -1 && errno != EINTR)
			usleep(1000); /* ENOMEM: do not spin */
	}
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

/* Burn CPU until this thread used a->seconds of it. */
static enum run_status
run_spin(struct bjob *b, const struct builtin_arg *a)
{
	double target = clock_now(CLOCK_THREAD_CPUTIME_ID) + a->seconds;
	double next_check = 0, cpu;
	enum run_status st;

	for (;;) {
		burn();
		cpu = clock_now(CLOCK_THREAD_CPUTIME_ID);
		if (cpu >= target)
			return RUN_EXITED;
		if (cpu < next_check)
			continue;
		if ((st = bjob_check(b)) != RUN_EXITED)
			return st;
		next_check = cpu + BUILTIN_SPIN_CHECK;
	}
}

static char *
u128_text(unsigned __int128 v)
{
	char buf[40], *p = buf + sizeof buf; /* 2^128 has 39 digits */

	*--p = '\0';
	do {
		*--p = (char)('0' + (int)(v % 10));
		v /= 10;
	} while (v != 0);
	return xstrdup(p);
}

static uint64_t
chunk_end(uint64_t i, uint64_t n)
{
	return n - i > BUILTIN_CHUNK ? i + BUILTIN_CHUNK : n;
}

/* Sum of i*i for i < n, exact (fits 128 bits for n <= 10^12). */
static enum run_status
run_sumsq(struct bjob *b, const struct builtin_arg *a)
{
	unsigned __int128 sum = 0;
	uint64_t i = 0, end;
	enum run_status st;

	while (i < a->n) {
		for (end = chunk_end(i, a->n); i < end; i++)
			sum += (unsigned __int128)i * i;
		if ((st = bjob_check(b)) != RUN_EXITED)
			return st;
	}
	b->r->res.result = u128_text(sum);
	return RUN_EXITED;
}

/* The seeds' loop: a volatile counter incremented n times. */
static enum run_status
run_count(struct bjob *b, const struct builtin_arg *a)
{
	volatile uint64_t counter = 0;
	uint64_t i = 0, end;
	enum run_status st;

	while (i < a->n) {
		for (end = chunk_end(i, a->n); i < end; i++)
			counter++;
		if ((st = bjob_check(b)) != RUN_EXITED)
			return st;
	}
	b->r->res.result = xprintf("%" PRIu64, (uint64_t)counter);
	return RUN_EXITED;
}

/* --- running ---------------------------------------------------------- */

static enum run_status
builtin_start(struct bjob *b)
{
	const struct builtin_def *d = builtin_def(b->r->spec.type);
	struct run_result *res = &b->r->res;
	struct builtin_arg a;
	char *error = NULL;

	if (d == NULL || d->run == NULL) {
		res->error = xprintf("not a built-in type: %d", b->r->spec.type);
		return RUN_FAILED;
	}
	if (builtin_parse(d, b->r->spec.argv, &a, &error) == -1) {
		res->error = error;
		return RUN_FAILED;
	}
	if (run_cancelled(b->r))
		return RUN_CANCELLED;
	return d->run(b, &a);
}

void
builtin_run(struct run *r)
{
	struct run_result *res = &r->res;
	struct rusage ru0, ru1;
	struct bjob b = {.r = r};
	double w0, w1;

	b.start = clock_now(CLOCK_MONOTONIC);
	if (r->spec.timeout > 0)
		b.deadline = b.start + r->spec.timeout;
	res->started_at = clock_now(CLOCK_REALTIME);
	res->pid = 0;
	res->signal = 0;
	res->max_rss_kb = -1;
	getrusage(RUSAGE_THREAD, &ru0);
	w0 = run_schedstat_self();

	res->status = builtin_start(&b);
	if (res->status == RUN_EXITED)
		res->exit_code = 0;
	else if (res->status == RUN_FAILED)
		res->exit_code = 1;
	else
		res->exit_code = -1;

	getrusage(RUSAGE_THREAD, &ru1);
	w1 = run_schedstat_self();
	res->runq_wait = w0 >= 0 && w1 >= w0 ? w1 - w0 : 0;
	res->cpu_user = clock_tv_seconds(&ru1.ru_utime) - clock_tv_seconds(&ru0.ru_utime);
	res->cpu_sys = clock_tv_seconds(&ru1.ru_stime) - clock_tv_seconds(&ru0.ru_stime);
	res->finished_at = clock_now(CLOCK_REALTIME);
	res->wall = clock_now(CLOCK_MONOTONIC) - b.start;
}
