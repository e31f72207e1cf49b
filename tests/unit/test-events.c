/*
 * Unit tests for daemon/events.c, the live job events of `subscribe`, on a
 * real server (server.c) on a temporary socket with real client sockets:
 * the event lines (new job, state changes, final fields), what each
 * subscriber may see (its uid unless it sees all, its filter), nothing
 * before a job is announced, unsubscribing, the shutdown line, and a
 * subscriber that does not read being cut off with one overflow line while
 * one that reads keeps everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <jansson.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "clock.h"
#include "events.h"
#include "filter.h"
#include "job.h"
#include "server.h"
#include "stats.h"
#include "xmalloc.h"

#define MAX_CLIENTS 4

struct fx {
	struct event_base *base;
	struct server *srv;
	char dir[64];
	char path[96];
	struct jobs *js;
	struct events *ev;
	struct client *client[MAX_CLIENTS];   /* the server's side, by order of connection */
	struct subscriber *sub[MAX_CLIENTS];
	int fd[MAX_CLIENTS];                  /* our side */
	int n;
	int closed[MAX_CLIENTS];
	struct inbuf {                        /* bytes read, not yet taken as lines */
		char *buf;
		size_t len, off;
		size_t taken;                 /* bytes of the lines taken so far */
	} in[MAX_CLIENTS];
};

static int
slot(struct fx *f, struct client *c)
{
	int i;

	for (i = 0; i < f->n; i++)
		if (f->client[i] == c)
			return i;
	return -1;
}

static void
frame_cb(struct client *c, const char *line, size_t len, void *arg)
{
	struct fx *f = arg;

	if (slot(f, c) == -1 && f->n < MAX_CLIENTS)
		f->client[f->n++] = c;
}

/* As ops.c does: the subscription goes with its connection. */
static void
close_cb(struct client *c, void *arg)
{
	struct fx *f = arg;
	int i = slot(f, c);

	if (i == -1)
		return;
	if (f->sub[i] != NULL)
		events_unsubscribe(f->ev, f->sub[i]);
	f->sub[i] = NULL;
	f->client[i] = NULL;
	f->closed[i] = 1;
}

/* Run the loop for what is ready now (flushes what was sent). */
static void
pump(struct fx *f)
{
	int i;

	for (i = 0; i < 4; i++)
		event_base_loop(f->base, EVLOOP_NONBLOCK);
}

static int
setup(void **state)
{
	struct fx *f = xcalloc(1, sizeof *f);
	char *cause = NULL;

	snprintf(f->dir, sizeof f->dir, "/tmp/test-events.XXXXXX");
	if (mkdtemp(f->dir) == NULL)
		return -1;
	snprintf(f->path, sizeof f->path, "%s/s.sock", f->dir);
	f->base = event_base_new();
	f->srv = server_new(f->base, f->path, 0600, &cause);
	if (f->srv == NULL)
		fail_msg("server_new: %s", cause);
	server_set_limits(f->srv, 1 << 20, 16, 0);
	server_set_handlers(f->srv, frame_cb, close_cb, f);
	f->js = jobs_new();
	f->ev = events_new(f->js);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fx *f = *state;
	int i;

	events_shutdown(f->ev);
	server_free(f->srv);
	events_free(f->ev);
	jobs_free(f->js);
	for (i = 0; i < f->n; i++) {
		close(f->fd[i]);
		free(f->in[i].buf);
	}
	event_base_free(f->base);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

/* A new connection, known to the server (it sent one line): its index. */
static int
connect_client(struct fx *f)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), want = f->n + 1;
	double deadline = clock_now(CLOCK_MONOTONIC) + 5;

	assert_true(fd >= 0);
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", f->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sun, sizeof sun), 0);
	assert_int_equal(write(fd, "hello\n", 6), 6);
	while (f->n < want && clock_now(CLOCK_MONOTONIC) < deadline)
		event_base_loop(f->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	assert_int_equal(f->n, want);
	f->fd[want - 1] = fd;
	return want - 1;
}

static void
subscribe(struct fx *f, int i, const char *filter, unsigned allow, bool see_all, uid_t uid)
{
	struct proto_error err = { 0 };
	struct filter flt;
	json_t *o = json_loads(filter, 0, NULL);

	assert_non_null(o);
	assert_int_equal(filter_decode(o, allow, &flt, &err), 0);
	json_decref(o);
	f->sub[i] = events_subscribe(f->ev, f->client[i], &flt, see_all, uid);
	assert_non_null(f->sub[i]);
}

/* The next line client i received (waiting up to a second), parsed; NULL at EOF or none. */
static json_t *
next_line(struct fx *f, int i)
{
	double deadline = clock_now(CLOCK_MONOTONIC) + 1;
	struct pollfd pfd = { .fd = f->fd[i], .events = POLLIN };
	struct inbuf *in = &f->in[i];
	char *line, *nl;
	json_t *o;
	ssize_t n;

	for (;;) {
		line = in->buf + in->off;
		if (in->len > in->off && (nl = memchr(line, '\n', in->len - in->off)) != NULL) {
			*nl = '\0';
			in->taken += (size_t)(nl - line) + 1;
			in->off = (size_t)(nl - in->buf) + 1;
			if ((o = json_loads(line, 0, NULL)) == NULL)
				fail_msg("not a JSON line: %s", line);
			return o;
		}
		pump(f);
		if (poll(&pfd, 1, 10) == 1) {
			/* Keep only what is not taken yet, with room for 64 KiB more. */
			if (in->buf != NULL)
				memmove(in->buf, in->buf + in->off, in->len - in->off);
			in->len -= in->off;
			in->off = 0;
			in->buf = xreallocarray(in->buf, in->len + 65536, 1);
			n = read(f->fd[i], in->buf + in->len, 65536);
			if (n <= 0)
				return NULL;
			in->len += (size_t)n;
			continue;
		}
		if (clock_now(CLOCK_MONOTONIC) > deadline)
			return NULL;
	}
}

/* Nothing more arrives for client i (within 50 ms). */
static void
assert_quiet(struct fx *f, int i)
{
	struct pollfd pfd = { .fd = f->fd[i], .events = POLLIN };

	pump(f);
	if (f->in[i].len > f->in[i].off)
		fail_msg("client %d has %zu bytes more", i, f->in[i].len - f->in[i].off);
	assert_int_equal(poll(&pfd, 1, 50), 0);
}

static struct job *
add(struct fx *f, uid_t uid, const char *name)
{
	struct job_spec spec;

	memset(&spec, 0, sizeof spec);
	spec.type = BUILTIN_NOOP;
	spec.argv = xcalloc(1, sizeof(char *));
	spec.cwd = xstrdup("/");
	spec.name = name != NULL ? xstrdup(name) : NULL;
	return jobs_add(f->js, &spec, uid, uid, 1700000000.25);
}

static void
expect_event(json_t *o, uint64_t id, const char *st, const char *prev)
{
	if (o == NULL)
		fail_msg("no event for job %llu (%s)", (unsigned long long)id, st);
	assert_string_equal(json_string_value(json_object_get(o, "event")), "job");
	assert_int_equal(json_integer_value(json_object_get(o, "id")), id);
	assert_string_equal(json_string_value(json_object_get(o, "state")), st);
	if (prev == NULL)
		assert_true(json_is_null(json_object_get(o, "prev")));
	else
		assert_string_equal(json_string_value(json_object_get(o, "prev")), prev);
	assert_true(json_is_real(json_object_get(o, "at")));
	/* Events are not answers. */
	assert_null(json_object_get(o, "ok"));
}

static void
test_lines(void **state)
{
	struct fx *f = *state;
	uint64_t sent = stats.events_sent;
	int c = connect_client(f);
	struct job *j;
	json_t *o;

	subscribe(f, c, "{}", 0, true, 0);
	assert_int_equal(events_subscribers(f->ev), 1);
	j = add(f, 1000, "build");
	/* Not stored yet: its changes are nobody's news. */
	job_set_state(f->js, j, JOB_PAUSED);
	job_set_state(f->js, j, JOB_QUEUED);
	assert_quiet(f, c);
	jobs_announce(f->js, j);
	o = next_line(f, c);
	expect_event(o, j->id, "queued", NULL);
	assert_true(json_real_value(json_object_get(o, "at")) == 1700000000.25); /* submitted_at */
	assert_string_equal(json_string_value(json_object_get(o, "name")), "build");
	assert_null(json_object_get(o, "exit_code")); /* final states only */
	json_decref(o);
	j->started_at = 1700000001.5;
	job_set_state(f->js, j, JOB_RUNNING);
	o = next_line(f, c);
	expect_event(o, j->id, "running", "queued");
	assert_true(json_real_value(json_object_get(o, "at")) == 1700000001.5);
	json_decref(o);
	j->finished_at = 1700000002.5;
	j->res.exit_code = 3;
	j->res.error = xstrdup("it failed");
	jobs_finish(f->js, j, JOB_FAILED, 100, NULL, NULL);
	o = next_line(f, c);
	expect_event(o, j->id, "failed", "running");
	assert_true(json_real_value(json_object_get(o, "at")) == 1700000002.5);
	assert_int_equal(json_integer_value(json_object_get(o, "exit_code")), 3);
	assert_true(json_is_null(json_object_get(o, "signal")));
	assert_string_equal(json_string_value(json_object_get(o, "error")), "it failed");
	json_decref(o);
	assert_quiet(f, c);
	assert_int_equal(stats.events_sent, sent + 3);
}

static void
test_who_sees_what(void **state)
{
	struct fx *f = *state;
	int all = connect_client(f), mine = connect_client(f), done = connect_client(f);
	int labelled = connect_client(f);
	struct job *a, *b;
	json_t *o;

	subscribe(f, all, "{}", 0, true, 0);
	subscribe(f, mine, "{}", 0, false, 2000);
	subscribe(f, done, "{\"states\":[\"done\"]}", FILTER_STATES, true, 0);
	subscribe(f, labelled, "{\"name\":\"b\"}", FILTER_NAME, true, 0);
	assert_int_equal(events_subscribers(f->ev), 4);
	a = add(f, 1000, "a");
	b = add(f, 2000, "b");
	jobs_announce(f->js, a);
	jobs_announce(f->js, b);
	jobs_finish(f->js, a, JOB_DONE, 100, NULL, NULL);
	jobs_finish(f->js, b, JOB_CANCELLED, 100, NULL, NULL);
	/* Everything, in order. */
	expect_event(o = next_line(f, all), a->id, "queued", NULL), json_decref(o);
	expect_event(o = next_line(f, all), b->id, "queued", NULL), json_decref(o);
	expect_event(o = next_line(f, all), a->id, "done", "queued"), json_decref(o);
	expect_event(o = next_line(f, all), b->id, "cancelled", "queued"), json_decref(o);
	assert_quiet(f, all);
	/* Only uid 2000's jobs. */
	expect_event(o = next_line(f, mine), b->id, "queued", NULL), json_decref(o);
	expect_event(o = next_line(f, mine), b->id, "cancelled", "queued"), json_decref(o);
	assert_quiet(f, mine);
	/* Only events into "done". */
	expect_event(o = next_line(f, done), a->id, "done", "queued"), json_decref(o);
	assert_quiet(f, done);
	/* Only job "b". */
	expect_event(o = next_line(f, labelled), b->id, "queued", NULL), json_decref(o);
	expect_event(o = next_line(f, labelled), b->id, "cancelled", "queued"), json_decref(o);
	assert_quiet(f, labelled);
}

static void
test_unsubscribe_and_shutdown(void **state)
{
	struct fx *f = *state;
	int gone = connect_client(f), stays = connect_client(f);
	struct job *j;
	json_t *o;

	subscribe(f, gone, "{}", 0, true, 0);
	subscribe(f, stays, "{}", 0, true, 0);
	events_unsubscribe(f->ev, f->sub[gone]);
	f->sub[gone] = NULL;
	assert_int_equal(events_subscribers(f->ev), 1);
	j = add(f, 0, NULL);
	jobs_announce(f->js, j);
	o = next_line(f, stays);
	expect_event(o, j->id, "queued", NULL);
	assert_null(json_object_get(o, "name")); /* only when the job has one */
	json_decref(o);
	assert_quiet(f, gone);
	/* taskd stopping: a last line, so the subscriber can tell it from a crash. */
	events_shutdown(f->ev);
	o = next_line(f, stays);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "event")), "shutdown");
	json_decref(o);
	assert_quiet(f, gone);
}

/* A subscriber that reads nothing is cut off past the hard limit; one that reads is not. */
static void
test_overflow(void **state)
{
	struct fx *f = *state;
	int slow = connect_client(f), fast = connect_client(f);
	uint64_t overflows = stats.event_overflows;
	size_t events = 0, got = 0, round;
	json_t *o, *last = NULL;
	struct job *j;
	int k;

	subscribe(f, slow, "{}", 0, true, 0);
	subscribe(f, fast, "{}", 0, true, 0);
	j = add(f, 0, "a-name-that-makes-every-event-line-a-little-longer-than-it-would-be");
	jobs_announce(f->js, j);
	events++;
	for (round = 0; round < 200 && events_subscribers(f->ev) == 2; round++) {
		for (k = 0; k < 500; k++, events += 2) {
			job_set_state(f->js, j, JOB_PAUSED);
			job_set_state(f->js, j, JOB_QUEUED);
		}
		pump(f);
		while ((o = next_line(f, fast)) != NULL) {
			got++;
			json_decref(o);
			if (got == events)
				break;
		}
	}
	assert_int_equal(events_subscribers(f->ev), 1);
	assert_int_equal(stats.event_overflows, overflows + 1);
	/*
	 * The reader kept every event. The slow one was cut off past the hard
	 * limit, or (on a slow machine) past the soft one after 2 s without
	 * reading: either way more than TASKD_EVENTS_MAX_BUFFER was produced.
	 */
	assert_int_equal(got, events);
	assert_true(f->in[fast].taken > TASKD_EVENTS_MAX_BUFFER);
	/* The slow one: its backlog, then one overflow line, then the end. */
	while ((o = next_line(f, slow)) != NULL) {
		json_decref(last);
		last = o;
	}
	assert_non_null(last);
	assert_string_equal(json_string_value(json_object_get(last, "event")), "overflow");
	json_decref(last);
	pump(f);
	assert_int_equal(f->closed[slow], 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_lines, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_who_sees_what, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_unsubscribe_and_shutdown, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_overflow, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
