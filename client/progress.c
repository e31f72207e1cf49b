/*
 * The live progress line of `taskctl wait` when standard error is a
 * terminal:
 *
 *	wait: 7/20 finished (done 6, failed 1), 4 running, 9 queued, 12.4s elapsed, eta 23s
 *
 * redrawn at most PROGRESS_HZ times a second (cut to the terminal's width)
 * and cleared at the end. The
 * states come from the daemon's event stream (op subscribe) on a second
 * connection: subscribe first, then a `list` of the same jobs on the main
 * connection gives the starting point, then events move jobs forward (an
 * event older than the list can only repeat a state it already shows, as
 * states move forward, queued < running < finished, and back only by an
 * event leaving the state shown, e.g. a retry's running -> scheduled). The
 * wait answers themselves are final. Without the stream (old daemon, cut off)
 * the line still counts finished jobs from the answers. SIGINT/SIGTERM
 * clear the line before taskctl dies of them.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "taskctl.h"

#define PROGRESS_HZ 5

enum { P_QUEUED = 0, P_RUNNING, P_DONE, P_FAILED };

struct progress {
	struct taskd_client *events; /* NULL once the stream is gone */
	json_int_t *ids;             /* sorted, unique */
	unsigned char *state;        /* P_* per id */
	size_t n;
	int known;                   /* the job set is known (ids given, or the list answered) */
	double t0;
	double drawn_at;
	int drawn;                   /* a line is on the screen */
};

/* The one whose line is on the screen, if any (for progress_clear_shown). */
static struct progress *shown;

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp_id(const void *a, const void *b)
{
	json_int_t x = *(const json_int_t *)a, y = *(const json_int_t *)b;

	return x < y ? -1 : x > y;
}

static void
set_ids(struct progress *p, const json_int_t *ids, size_t n)
{
	size_t i, k = 0;

	free(p->ids);
	free(p->state);
	p->ids = calloc(n + 1, sizeof *p->ids);
	p->state = calloc(n + 1, 1);
	if (p->ids == NULL || p->state == NULL)
		taskctl_lost(ENOMEM);
	memcpy(p->ids, ids, n * sizeof *ids);
	qsort(p->ids, n, sizeof *p->ids, cmp_id);
	for (i = 0; i < n; i++)
		if (k == 0 || p->ids[k - 1] != p->ids[i])
			p->ids[k++] = p->ids[i];
	p->n = k;
	p->known = 1;
}

static int
rank_of(const char *state)
{
	if (state == NULL)
		return -1;
	if (strcmp(state, TASKD_STATE_RUNNING) == 0)
		return P_RUNNING;
	if (strcmp(state, TASKD_STATE_DONE) == 0)
		return P_DONE;
	if (strcmp(state, TASKD_STATE_FAILED) == 0 || strcmp(state, TASKD_STATE_TIMEOUT) == 0 ||
	    strcmp(state, TASKD_STATE_CANCELLED) == 0 || strcmp(state, TASKD_STATE_LOST) == 0)
		return P_FAILED;
	return P_QUEUED; /* queued, or any other state a job waits in */
}

/*
 * Job id goes to st: forward always; back only when the change starts from
 * what is shown (prev: the rank it left, e.g. a retry's running ->
 * scheduled), so a stale event never undoes a newer state. final: the wait's
 * answer, which has the last word.
 */
static void
advance(struct progress *p, json_int_t id, int st, int prev, int final)
{
	json_int_t *at;
	unsigned char *cur;

	if (p->ids == NULL || st < 0)
		return;
	at = bsearch(&id, p->ids, p->n, sizeof id, cmp_id);
	if (at == NULL)
		return;
	cur = &p->state[at - p->ids];
	if (final || st > *cur || (prev >= 0 && prev == *cur && *cur < P_DONE))
		*cur = (unsigned char)st;
}

static void
fmt_secs(char *buf, size_t len, double s)
{
	if (s < 60)
		snprintf(buf, len, "%.1fs", s);
	else if (s < 3600)
		snprintf(buf, len, "%dm%02ds", (int)s / 60, (int)s % 60);
	else
		snprintf(buf, len, "%dh%02dm", (int)(s / 3600), (int)s % 3600 / 60);
}

static void
draw(struct progress *p)
{
	size_t i, c[4] = {0, 0, 0, 0}, fin;
	double el = now_mono() - p->t0;
	char elapsed[32], eta[32], line[256];
	struct winsize ws;
	int len;

	for (i = 0; i < p->n; i++)
		c[p->state[i]]++;
	fin = c[P_DONE] + c[P_FAILED];
	fmt_secs(elapsed, sizeof elapsed, el);
	if (fin > 0 && fin < p->n)
		fmt_secs(eta, sizeof eta, el * (double)(p->n - fin) / (double)fin);
	else
		snprintf(eta, sizeof eta, "?");
	if (!p->known)
		len = snprintf(line, sizeof line, "wait: finding the jobs, %s elapsed", elapsed);
	else
		len = snprintf(line, sizeof line,
		               "wait: %zu/%zu finished (done %zu, failed %zu), %zu running, "
		               "%zu queued, %s elapsed, eta %s",
		               fin, p->n, c[P_DONE], c[P_FAILED], c[P_RUNNING], c[P_QUEUED], elapsed,
		               eta);
	if (len < 0)
		len = 0;
	if ((size_t)len >= sizeof line)
		len = sizeof line - 1;
	/*
	 * One row at most: a line that wraps is not taken back by \r and would
	 * leave a row behind at every redraw. The width is read at each draw,
	 * so a resized terminal (SIGWINCH) is followed without a handler.
	 */
	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 1 && len >= ws.ws_col)
		len = ws.ws_col - 1;
	fprintf(stderr, "\r\033[K%.*s", len, line);
	fflush(stderr);
	p->drawn = 1;
	shown = p;
	p->drawn_at = now_mono();
}

/* Interrupted with the line on the screen: take it off, then die of the signal. */
static void
progress_signal(int sig)
{
	static const char clear[] = "\r\033[K";
	ssize_t rc = write(STDERR_FILENO, clear, sizeof clear - 1);

	(void)rc;
	signal(sig, SIG_DFL);
	raise(sig);
}

struct progress *
progress_start(struct taskctl *ctx, const json_t *sel, const json_int_t *ids, size_t n)
{
	struct progress *p;
	json_t *req, *resp;

	if (ctx->json || !isatty(STDERR_FILENO))
		return NULL;
	if ((p = calloc(1, sizeof *p)) == NULL)
		taskctl_lost(ENOMEM);
	p->t0 = now_mono();
	signal(SIGINT, progress_signal);
	signal(SIGTERM, progress_signal);
	if (ids != NULL)
		set_ids(p, ids, n);
	p->events = taskd_connect(ctx->socket);
	req = taskd_request(TASKD_OP_SUBSCRIBE);
	if (req != NULL)
		json_object_update(req, (json_t *)sel);
	resp = p->events != NULL ? taskd_call(p->events, req) : (json_decref(req), NULL);
	if (resp == NULL || !taskd_response_ok(resp)) {
		/* No stream: counts come from the answers only. */
		taskd_close(p->events);
		p->events = NULL;
	}
	json_decref(resp);
	draw(p);
	return p;
}

/* The list answer (result of a `list` sent after progress_start): the starting states. */
void
progress_snapshot(struct progress *p, const json_t *jobs)
{
	json_int_t *ids;
	const json_t *j;
	size_t i, n = json_array_size(jobs);

	if (!p->known) {
		if ((ids = calloc(n + 1, sizeof *ids)) == NULL)
			taskctl_lost(ENOMEM);
		json_array_foreach(jobs, i, j)
			ids[i] = json_integer_value(json_object_get(j, "id"));
		set_ids(p, ids, n);
		free(ids);
	}
	json_array_foreach(jobs, i, j)
		advance(p, json_integer_value(json_object_get(j, "id")),
		        rank_of(json_string_value(json_object_get(j, "state"))), -1, 0);
	draw(p);
}

/* A wait answered: the job is finished (job NULL: the daemon rejected the wait for id). */
void
progress_finished(struct progress *p, json_int_t id, const json_t *job)
{
	int st = job != NULL ? rank_of(json_string_value(json_object_get(job, "state"))) : P_FAILED;

	advance(p, id, st < P_DONE ? P_FAILED : st, -1, 1);
}

static void
handle_event(struct progress *p)
{
	json_t *ev = taskd_recv(p->events);
	const char *kind;

	if (ev == NULL) {
		taskd_close(p->events);
		p->events = NULL;
		return;
	}
	kind = json_string_value(json_object_get(ev, "event"));
	if (kind != NULL && strcmp(kind, "job") == 0)
		advance(p, json_integer_value(json_object_get(ev, "id")),
		        rank_of(json_string_value(json_object_get(ev, "state"))),
		        rank_of(json_string_value(json_object_get(ev, "prev"))), 0);
	else if (kind != NULL && strcmp(kind, "overflow") == 0) {
		taskd_close(p->events);
		p->events = NULL;
	}
	json_decref(ev);
}

/* Until c has an answer to read: follow the events and redraw PROGRESS_HZ times a second. */
void
progress_wait(struct progress *p, struct taskd_client *c)
{
	struct pollfd pfd[2];
	double due;
	int timeout, rc;

	for (;;) {
		if (taskd_pending(c))
			return;
		if (p->events != NULL && taskd_pending(p->events)) {
			handle_event(p);
			continue;
		}
		due = p->drawn_at + 1.0 / PROGRESS_HZ - now_mono();
		if (due <= 0) {
			draw(p);
			continue;
		}
		timeout = (int)ceil(due * 1000);
		pfd[0].fd = taskd_fd(c);
		pfd[0].events = POLLIN;
		pfd[1].fd = p->events != NULL ? taskd_fd(p->events) : -1;
		pfd[1].events = POLLIN;
		rc = poll(pfd, 2, timeout);
		if (rc == -1 && errno != EINTR)
			taskctl_lost(errno);
		if (rc > 0 && pfd[1].fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)))
			handle_event(p);
		if (rc > 0 && (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)))
			return;
	}
}

/* Take the line off the screen (before printing something, and at the end). */
void
progress_clear(struct progress *p)
{
	if (p == NULL || !p->drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->drawn = 0;
	shown = NULL;
	p->drawn_at = 0; /* redraw at the next chance */
}

void
progress_clear_shown(void)
{
	progress_clear(shown);
}

void
progress_end(struct progress *p)
{
	if (p == NULL)
		return;
	progress_clear(p);
	if (shown == p)
		shown = NULL;
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	taskd_close(p->events);
	free(p->ids);
	free(p->state);
	free(p);
}
