/*
 * taskctl bench [-n JOBS] [-c CONNECTIONS] [-P PIPELINE] [--type T] [--class C]
 *               [--] [CMD [ARGS...]]
 *
 * A load generator, like redis-benchmark: JOBS single-job submits spread
 * over CONNECTIONS connections, each keeping up to PIPELINE jobs in flight.
 * Each submit carries "wait": true, so the daemon answers it when the job
 * has ended: one request and one answer per job. With --two-step the
 * submit is answered once the job is stored and a `wait` for it goes out
 * then (two round trips, the way `taskctl submit` + `taskctl wait` work).
 * A job is in flight from its submit until its result arrives, and the
 * slot then takes the next job. A job's latency is the monotonic time from
 * sending its submit to receiving its result; the run lasts from the first
 * submit sent to the last result.
 *
 * The connections are driven by one poll() loop over non-blocking sockets
 * (libtaskd connects them; its blocking taskd_recv is not used here):
 * every readable socket is read in large chunks, every complete line is
 * handled, and the requests it triggers are written in one send() per
 * connection per round. Requests are rendered with snprintf from a
 * pre-rendered job description, so the client stays cheap next to the
 * daemon it measures.
 *
 * Without CMD the jobs are built-in `noop`s; with CMD they are exec jobs
 * running CMD with the daemon's default environment (PATH only) in "/".
 * Exit: 0 all jobs done, 1 some ended in another state, 2 usage, 3 taskd
 * unreachable or lost, 4 a request was rejected (the run stops there).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "taskctl.h"

#define BENCH_MAX_JOBS 10000000LL
#define BENCH_MAX_CONNS 1000
#define BENCH_MAX_PIPELINE 10000
#define BENCH_READ_CHUNK 65536
#define BENCH_MAX_LINE (64u * 1024 * 1024)
#define BENCH_PROGRESS_NS 200000000LL /* progress line ~5 times a second */

enum {
	OPT_TYPE = 300,
	OPT_CLASS,
	OPT_TWO_STEP,
};

enum slot_state { SLOT_FREE, SLOT_SUBMIT, SLOT_WAIT };

/* One job in flight. Its requests carry ids 2*index+1 (submit) and 2*index+2 (wait). */
struct slot {
	enum slot_state state;
	json_int_t job;
	int64_t t0; /* ns, submit sent */
};

struct buf {
	char *data;
	size_t start; /* consumed up to here */
	size_t len;
	size_t cap;
};

struct conn {
	struct taskd_client *client;
	int fd;
	int owned; /* not ctx->client: close it ourselves */
	struct buf in, out;
	struct slot *slots;
	int *free; /* stack of free slot indexes */
	int nfree;
	int *deferred; /* slots whose request was refused as too_many_requests: re-sent later */
	int ndeferred;
	int inflight;
	int want_write;
};

struct bench {
	struct taskctl *ctx;
	long long n;
	int nconn;
	int pipeline;
	const char *type;
	const char *cls;
	int two_step; /* submit, then wait (else one submit with "wait": true) */
	json_t *argv;
	char *submit_tail; /* the submit request after its id: ,"op":"submit",...}\n */
	size_t submit_tail_len;
	struct conn *conns;
	long long started, finished, failed;
	float *lat_us; /* per finished job, in completion order */
	int64_t t_start, t_end;
	int progress;
	int64_t next_progress;
	int rc; /* -1 while running, else the exit code to return */
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Room for at least want more bytes at the end of b; 0 or -1 (ENOMEM / EMSGSIZE). */
static int
buf_reserve(struct buf *b, size_t want)
{
	size_t cap;
	char *p;

	if (b->start > 0 && b->start == b->len) {
		b->start = b->len = 0;
	} else if (b->start > 0 && b->cap - b->len < want) {
		memmove(b->data, b->data + b->start, b->len - b->start);
		b->len -= b->start;
		b->start = 0;
	}
	if (b->cap - b->len >= want)
		return 0;
	if (b->len + want > BENCH_MAX_LINE + (size_t)BENCH_READ_CHUNK) {
		errno = EMSGSIZE;
		return -1;
	}
	cap = b->cap == 0 ? BENCH_READ_CHUNK : b->cap;
	while (cap - b->len < want)
		cap *= 2;
	if ((p = realloc(b->data, cap)) == NULL) {
		errno = ENOMEM;
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

/* --- requests ---------------------------------------------------------------- */

static void
render_submit(struct bench *b, struct conn *c, int idx)
{
	int n;

	if (buf_reserve(&c->out, 48 + b->submit_tail_len) == -1)
		taskctl_lost(errno);
	n = snprintf(c->out.data + c->out.len, 48, "{\"v\":1,\"id\":%d", 2 * idx + 1);
	memcpy(c->out.data + c->out.len + n, b->submit_tail, b->submit_tail_len);
	c->out.len += (size_t)n + b->submit_tail_len;
}

static void
send_submit(struct bench *b, struct conn *c)
{
	struct slot *s;
	int idx;

	idx = c->free[--c->nfree];
	s = &c->slots[idx];
	render_submit(b, c, idx);
	s->state = SLOT_SUBMIT;
	s->job = 0;
	s->t0 = now_ns();
	c->inflight++;
	b->started++;
}

static void
send_wait(struct conn *c, int idx)
{
	int n;

	if (buf_reserve(&c->out, 96) == -1)
		taskctl_lost(errno);
	n = snprintf(c->out.data + c->out.len, 96,
	             "{\"v\":1,\"id\":%d,\"op\":\"wait\",\"job\":%" JSON_INTEGER_FORMAT "}\n",
	             2 * idx + 2, c->slots[idx].job);
	c->out.len += (size_t)n;
	c->slots[idx].state = SLOT_WAIT;
}

/* Start jobs on c until its pipeline is full or all jobs have started. */
static void
fill(struct bench *b, struct conn *c)
{
	while (c->inflight < b->pipeline && b->started < b->n)
		send_submit(b, c);
}

/* Write what c has queued; -1 when the connection is gone. */
static int
flush_out(struct conn *c)
{
	ssize_t n;

	while (c->out.len > c->out.start) {
		n = send(c->fd, c->out.data + c->out.start, c->out.len - c->out.start,
		         MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			c->want_write = 1;
			return 0;
		}
		if (n == -1)
			return -1;
		c->out.start += (size_t)n;
	}
	c->out.start = c->out.len = 0;
	c->want_write = 0;
	return 0;
}

/* --- responses --------------------------------------------------------------- */

static void
finish_job(struct bench *b, struct conn *c, int idx, const json_t *job)
{
	const char *state = json_string_value(json_object_get(job, "state"));
	int64_t t = now_ns();

	if (state == NULL)
		taskctl_bad_response("job result without a state");
	if (strcmp(state, TASKD_STATE_DONE) != 0)
		b->failed++;
	b->lat_us[b->finished++] = (float)((double)(t - c->slots[idx].t0) / 1000.0);
	b->t_end = t;
	c->slots[idx].state = SLOT_FREE;
	c->free[c->nfree++] = idx;
	c->inflight--;
	/* One parked wait less in the daemon: room for one it refused (its t0 stays). */
	if (c->ndeferred > 0) {
		idx = c->deferred[--c->ndeferred];
		if (c->slots[idx].state == SLOT_WAIT)
			send_wait(c, idx);
		else
			render_submit(b, c, idx);
	}
}

static void
handle_line(struct bench *b, struct conn *c, const char *line, size_t len)
{
	json_t *resp, *result, *id;
	json_int_t rid;
	struct slot *s;
	int idx;

	resp = json_loadb(line, len, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(resp))
		taskctl_bad_response("a line that is not a JSON object");
	id = json_object_get(resp, "id");
	rid = json_is_integer(id) ? json_integer_value(id) : 0;
	idx = rid >= 1 && rid <= 2 * (json_int_t)b->pipeline ? (int)((rid - 1) / 2) : -1;
	s = idx >= 0 ? &c->slots[idx] : NULL;
	if (!taskd_response_ok(resp)) {
		const char *code = taskd_response_error_code(resp);

		if (code == NULL)
			taskctl_bad_response("neither a result nor an error");
		/*
		 * The daemon parks a bounded number of waits per connection (1024);
		 * with a deeper pipeline, a refused wait goes out again as soon as
		 * another is answered. The same connection has answers coming, since
		 * the refusal means the daemon holds that many.
		 */
		if (s != NULL && s->state == (rid % 2 == 0 ? SLOT_WAIT : SLOT_SUBMIT) &&
		    strcmp(code, TASKD_ERR_TOO_MANY) == 0 && c->inflight - c->ndeferred > 1) {
			c->deferred[c->ndeferred++] = idx;
			json_decref(resp);
			return;
		}
		if (b->rc == -1)
			b->rc = taskctl_rejected(b->ctx, s != NULL && rid % 2 == 0 ? "wait" : "submit",
			                         resp);
		json_decref(resp);
		return;
	}
	if (s == NULL || s->state != (rid % 2 == 1 ? SLOT_SUBMIT : SLOT_WAIT))
		taskctl_bad_response("answer to no pending request");
	result = taskd_response_result(resp);
	if (s->state == SLOT_SUBMIT && b->two_step) {
		id = json_object_get(result, "id");
		if (!json_is_integer(id))
			taskctl_bad_response("submit result without an id");
		s->job = json_integer_value(id);
		send_wait(c, idx);
	} else {
		finish_job(b, c, idx, result);
		fill(b, c);
	}
	json_decref(resp);
}

/* Read what is there and handle every complete line; -1 when the connection is gone. */
static int
read_in(struct bench *b, struct conn *c)
{
	struct buf *in = &c->in;
	size_t searched;
	char *nl, *line;
	ssize_t n;

	if (buf_reserve(in, BENCH_READ_CHUNK) == -1)
		taskctl_lost(errno);
	searched = in->len;
	do
		n = recv(c->fd, in->data + in->len, in->cap - in->len, MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n <= 0) {
		if (n == 0)
			errno = ECONNRESET;
		return -1;
	}
	in->len += (size_t)n;
	while ((nl = memchr(in->data + searched, '\n', in->len - searched)) != NULL) {
		line = in->data + in->start;
		in->start = (size_t)(nl - in->data) + 1;
		searched = in->start;
		if (nl > line && !(nl == line + 1 && line[0] == '\r'))
			handle_line(b, c, line, (size_t)(nl - line));
		if (b->rc != -1)
			return 0;
	}
	if (in->len - in->start > BENCH_MAX_LINE)
		taskctl_bad_response("a line longer than 64 MiB");
	return 0;
}

/* --- progress and results ------------------------------------------------------ */

static void
progress(struct bench *b, int64_t t, int last)
{
	double secs = (double)(t - b->t_start) / 1e9;

	if (last) {
		fputs("\r\033[K", stderr);
	} else {
		fprintf(stderr, "\r\033[Kbench: %lld/%lld jobs done, %.0f jobs/s, %.1fs", b->finished,
		        b->n, secs > 0 ? (double)b->finished / secs : 0.0, secs);
	}
	fflush(stderr);
	b->next_progress = t + BENCH_PROGRESS_NS;
}

static int
cmp_float(const void *a, const void *b)
{
	float x = *(const float *)a, y = *(const float *)b;

	return (x > y) - (x < y);
}

/* Nearest rank on the sorted array. */
static double
pct(const float *v, long long n, double p)
{
	long long k = (long long)ceil(p / 100.0 * (double)n) - 1;

	if (n == 0)
		return NAN;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

/* "87us", "1.23ms", "2.345s". */
static const char *
fmt_us(char *buf, double us)
{
	if (!isfinite(us))
		snprintf(buf, FMT_BUFSZ, "-");
	else if (us < 1000)
		snprintf(buf, FMT_BUFSZ, "%.0fus", us);
	else if (us < 1000000)
		snprintf(buf, FMT_BUFSZ, "%.2fms", us / 1000);
	else
		snprintf(buf, FMT_BUFSZ, "%.3fs", us / 1000000);
	return buf;
}

static int
report(struct bench *b)
{
	double secs = (double)(b->t_end - b->t_start) / 1e9;
	double rate = secs > 0 ? (double)b->finished / secs : 0;
	double p50, p90, p99, max;
	char a[FMT_BUFSZ], c[FMT_BUFSZ], d[FMT_BUFSZ], e[FMT_BUFSZ];

	qsort(b->lat_us, (size_t)b->finished, sizeof *b->lat_us, cmp_float);
	p50 = pct(b->lat_us, b->finished, 50);
	p90 = pct(b->lat_us, b->finished, 90);
	p99 = pct(b->lat_us, b->finished, 99);
	max = pct(b->lat_us, b->finished, 100);
	if (b->ctx->json) {
		json_t *o = json_pack("{s:I, s:f, s:f, s:{s:I, s:I, s:I, s:I}, s:I}", "jobs",
		                      (json_int_t)b->finished, "seconds", round(secs * 1e6) / 1e6,
		                      "jobs_per_sec", round(rate * 10) / 10, "latency_us", "p50",
		                      (json_int_t)llround(p50), "p90", (json_int_t)llround(p90),
		                      "p99", (json_int_t)llround(p99), "max",
		                      (json_int_t)llround(max), "failed", (json_int_t)b->failed);

		if (o == NULL)
			taskctl_lost(ENOMEM);
		/* As taskctl_print_json, with reals cut to their meaningful digits. */
		json_dumpf(o, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(12));
		putchar('\n');
		json_decref(o);
	} else {
		printf("jobs:      %lld %s (%d connection%s, pipeline %d)\n", b->finished, b->type,
		       b->nconn, b->nconn == 1 ? "" : "s", b->pipeline);
		printf("failed:    %lld\n", b->failed);
		printf("seconds:   %.3f\n", secs);
		printf("jobs/s:    %.1f\n", rate);
		printf("latency:   p50 %s  p90 %s  p99 %s  max %s\n", fmt_us(a, p50), fmt_us(c, p90),
		       fmt_us(d, p99), fmt_us(e, max));
	}
	return b->failed > 0 ? 1 : TASKD_EXIT_OK;
}

/* --- setup ------------------------------------------------------------------- */

static int
parse_count(struct taskctl *ctx, const char *arg, const char *what, long long max,
            long long *out)
{
	if (taskctl_parse_int(arg, 1, max, out) == -1)
		return taskctl_usage_error(ctx, "invalid %s '%s' (an integer from 1 to %lld)", what,
		                           arg, max);
	return -1;
}

static int
parse_options(struct bench *b, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"jobs", required_argument, NULL, 'n'},
	    {"connections", required_argument, NULL, 'c'},
	    {"pipeline", required_argument, NULL, 'P'},
	    {"type", required_argument, NULL, OPT_TYPE},
	    {"class", required_argument, NULL, OPT_CLASS},
	    {"two-step", no_argument, NULL, OPT_TWO_STEP},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct taskctl *ctx = b->ctx;
	long long v;
	int c, rc;

	/* '+': the first non-option word starts the job's command. */
	while ((c = getopt_long(argc, argv, "+:hn:c:P:", opts, NULL)) != -1) {
		rc = -1;
		switch (c) {
		case 'n':
			if ((rc = parse_count(ctx, optarg, "job count", BENCH_MAX_JOBS, &v)) == -1)
				b->n = v;
			break;
		case 'c':
			if ((rc = parse_count(ctx, optarg, "connection count", BENCH_MAX_CONNS,
			                      &v)) == -1)
				b->nconn = (int)v;
			break;
		case 'P':
			if ((rc = parse_count(ctx, optarg, "pipeline depth", BENCH_MAX_PIPELINE,
			                      &v)) == -1)
				b->pipeline = (int)v;
			break;
		case OPT_TYPE:
			b->type = optarg;
			break;
		case OPT_TWO_STEP:
			b->two_step = 1;
			break;
		case OPT_CLASS:
			if (strcmp(optarg, TASKD_CLASS_CPU) != 0 && strcmp(optarg, TASKD_CLASS_IO) != 0 &&
			    strcmp(optarg, TASKD_CLASS_AUTO) != 0)
				rc = taskctl_usage_error(ctx, "invalid class '%s' (cpu, io or auto)",
				                         optarg);
			b->cls = optarg;
			break;
		default:
			rc = taskctl_common_option(ctx, argv, c);
		}
		if (rc != -1)
			return rc;
	}
	return -1;
}

/* The job every submit carries, rendered once; -1 or an exit code. */
static int
build_job(struct bench *b, int argc, char **argv)
{
	json_t *req, *arr, *w;
	char *text;
	size_t len;
	int i;

	if (b->type == NULL)
		b->type = argc > 0 ? "exec" : "noop";
	if (strcmp(b->type, "exec") == 0 && argc == 0)
		return taskctl_usage_error(b->ctx, "missing command (--type exec)");
	arr = json_array();
	for (i = 0; i < argc; i++) {
		if ((w = json_string(argv[i])) == NULL) {
			json_decref(arr);
			return taskctl_usage_error(b->ctx, "argument '%s' is not valid UTF-8",
			                           argv[i]);
		}
		json_array_append_new(arr, w);
	}
	if ((w = json_string(b->type)) == NULL) {
		json_decref(arr);
		return taskctl_usage_error(b->ctx, "type is not valid UTF-8");
	}
	req = json_pack("{s:s, s:o, s:o}", "op", TASKD_OP_SUBMIT, "type", w, "argv", arr);
	if (req != NULL && strcmp(b->type, "exec") == 0)
		json_object_set_new(req, "cwd", json_string("/"));
	if (req != NULL && b->cls != NULL)
		json_object_set_new(req, "class", json_string(b->cls));
	if (req != NULL && !b->two_step)
		json_object_set_new(req, "wait", json_true());
	text = req != NULL ? json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
	json_decref(req);
	if (text == NULL || text[0] != '{')
		taskctl_lost(ENOMEM);
	/* "{...}" → ",...}\n" */
	len = strlen(text);
	text[0] = ',';
	b->submit_tail = malloc(len + 2);
	if (b->submit_tail == NULL)
		taskctl_lost(ENOMEM);
	memcpy(b->submit_tail, text, len);
	b->submit_tail[len] = '\n';
	b->submit_tail[len + 1] = '\0';
	b->submit_tail_len = len + 1;
	free(text);
	return -1;
}

static void
open_conns(struct bench *b)
{
	struct conn *c;
	int i, j, fl;

	b->conns = calloc((size_t)b->nconn, sizeof *b->conns);
	if (b->conns == NULL)
		taskctl_lost(ENOMEM);
	for (i = 0; i < b->nconn; i++) {
		c = &b->conns[i];
		if (i == 0) {
			c->client = taskctl_client(b->ctx); /* reports and exits 3 on failure */
		} else if ((c->client = taskd_connect(b->ctx->socket)) == NULL) {
			taskctl_warnx("cannot connect to %s: %s (connection %d of %d)", b->ctx->socket,
			              strerror(errno), i + 1, b->nconn);
			exit(TASKD_EXIT_UNREACHABLE);
		} else {
			c->owned = 1;
		}
		c->fd = taskd_fd(c->client);
		fl = fcntl(c->fd, F_GETFL);
		if (fl == -1 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) == -1)
			taskctl_lost(errno);
		c->slots = calloc((size_t)b->pipeline, sizeof *c->slots);
		c->free = malloc((size_t)b->pipeline * sizeof *c->free);
		c->deferred = malloc((size_t)b->pipeline * sizeof *c->deferred);
		if (c->slots == NULL || c->free == NULL || c->deferred == NULL)
			taskctl_lost(ENOMEM);
		for (j = 0; j < b->pipeline; j++)
			c->free[j] = b->pipeline - 1 - j; /* slot 0 first */
		c->nfree = b->pipeline;
	}
}

static void
close_conns(struct bench *b)
{
	int i;

	for (i = 0; b->conns != NULL && i < b->nconn; i++) {
		if (b->conns[i].owned)
			taskd_close(b->conns[i].client);
		free(b->conns[i].in.data);
		free(b->conns[i].out.data);
		free(b->conns[i].slots);
		free(b->conns[i].free);
		free(b->conns[i].deferred);
	}
	free(b->conns);
}

/* --- the loop ---------------------------------------------------------------- */

static void
run(struct bench *b)
{
	struct pollfd *pfd;
	int64_t t;
	int i, timeout;

	pfd = calloc((size_t)b->nconn, sizeof *pfd);
	if (pfd == NULL)
		taskctl_lost(ENOMEM);
	b->t_start = b->t_end = now_ns();
	b->next_progress = b->t_start + BENCH_PROGRESS_NS;
	for (i = 0; i < b->nconn; i++) {
		fill(b, &b->conns[i]);
		if (flush_out(&b->conns[i]) == -1)
			taskctl_lost(errno);
	}
	while (b->finished < b->n && b->rc == -1) {
		for (i = 0; i < b->nconn; i++) {
			pfd[i].fd = b->conns[i].fd;
			pfd[i].events = POLLIN | (b->conns[i].want_write ? POLLOUT : 0);
			pfd[i].revents = 0;
		}
		timeout = -1;
		if (b->progress) {
			t = now_ns();
			timeout = t >= b->next_progress
			              ? 0
			              : (int)((b->next_progress - t) / 1000000) + 1;
		}
		if (poll(pfd, (nfds_t)b->nconn, timeout) == -1) {
			if (errno == EINTR)
				continue;
			taskctl_lost(errno);
		}
		for (i = 0; i < b->nconn && b->rc == -1; i++) {
			if (pfd[i].revents & (POLLIN | POLLHUP | POLLERR))
				if (read_in(b, &b->conns[i]) == -1)
					taskctl_lost(errno);
			if (b->conns[i].out.len > b->conns[i].out.start &&
			    flush_out(&b->conns[i]) == -1)
				taskctl_lost(errno);
		}
		if (b->progress && (t = now_ns()) >= b->next_progress)
			progress(b, t, 0);
	}
	if (b->progress)
		progress(b, now_ns(), 1);
	free(pfd);
}

int
cmd_bench(struct taskctl *ctx, int argc, char **argv)
{
	struct bench b = {
	    .ctx = ctx,
	    .n = 10000,
	    .nconn = 1,
	    .pipeline = 1,
	    .rc = -1,
	};
	int rc;

	rc = parse_options(&b, argc, argv);
	if (rc == -1)
		rc = build_job(&b, argc - optind, argv + optind);
	if (rc != -1)
		goto out;
	if (b.nconn > b.n)
		b.nconn = (int)b.n;
	b.lat_us = malloc((size_t)b.n * sizeof *b.lat_us);
	if (b.lat_us == NULL)
		taskctl_lost(ENOMEM);
	b.progress = isatty(STDERR_FILENO);
	open_conns(&b);
	run(&b);
	rc = b.rc != -1 ? b.rc : report(&b);
	close_conns(&b);
out:
	free(b.lat_us);
	free(b.submit_tail);
	return rc;
}
