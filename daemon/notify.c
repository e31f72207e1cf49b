#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include <taskd/protocol.h>

#include "addr.h"
#include "builtin.h"
#include "clock.h"
#include "config.h"
#include "exec.h"
#include "job.h"
#include "jobtype.h"
#include "log.h"
#include "metrics.h"
#include "notify.h"
#include "tpool.h"
#include "xmalloc.h"

#define SLOW_CMD_SHOWN 200   /* bytes of a command line in a log line */
#define DROP_LOG_EVERY 10.0  /* seconds between "dropped" warnings */

/* A command to run for a job that ended. */
struct ncmd {
	struct run *run;          /* its spec filled in; run->task first */
	struct notify *n;
	TAILQ_ENTRY(ncmd) entry;
};
TAILQ_HEAD(ncmds, ncmd);

/* A job to post to the webhook. */
struct delivery {
	struct notify *n;
	uint64_t job;
	char *body;
	size_t len;
	int attempt;                  /* attempts made */
	double due;                   /* CLOCK_MONOTONIC: next attempt */
	struct evhttp_connection *conn; /* while in flight */
	TAILQ_ENTRY(delivery) entry;
};
TAILQ_HEAD(deliveries, delivery);

/* A run being timed for jobs.slow_log. */
struct slow {
	uint64_t id;
	int attempt;
	double started; /* CLOCK_MONOTONIC */
};

struct notify {
	struct event_base *base;
	struct jobs *jobs;
	const struct config *cfg;
	struct job_observer observer;
	bool stopped;

	struct tpool *pool;
	struct ncmds queue, running;
	size_t nqueued, nrunning;

	char *webhook;                 /* as configured */
	struct http_url url;
	struct evdns_base *dns;        /* for a webhook host that is a name */
	struct deliveries waiting;     /* by due time */
	struct deliveries inflight;
	size_t nwaiting, ninflight;
	struct event *hook_ev;         /* the next due delivery */
	struct evhttp_connection **dead; /* done with: freed by the next loop iteration */
	size_t ndead, capdead;
	struct event *reap_ev;

	struct slow *ring;             /* runs by start time (FIFO) */
	size_t head, len, cap;
	struct event *slow_ev;

	uint64_t cmd_ok, cmd_failed, cmd_dropped;
	uint64_t hook_ok, hook_failed, hook_dropped, hook_retries;
	uint64_t slow_jobs;
	uint64_t dropped_unlogged;
	double drop_logged;
};

static void hook_pump(struct notify *n);
static void slow_arm(struct notify *n);

/* A notification could not be queued: count it, warn now and then. */
static void
dropped(struct notify *n, uint64_t *counter, const char *what, uint64_t job)
{
	double now = clock_now(CLOCK_MONOTONIC);

	(*counter)++;
	n->dropped_unlogged++;
	if (now - n->drop_logged < DROP_LOG_EVERY)
		return;
	log_warnx("notify: %s queue full: dropped the notification of job %llu "
		  "(%llu dropped since the last warning)", what, (unsigned long long)job,
		  (unsigned long long)n->dropped_unlogged);
	n->dropped_unlogged = 0;
	n->drop_logged = now;
}

/* "sh -c 'a b c'" for a log line: argv joined, cut at max bytes. */
static void
command_text(char *const *argv, char *buf, size_t max)
{
	size_t n = 0, k;

	buf[0] = '\0';
	for (; argv != NULL && *argv != NULL && n + 1 < max; argv++) {
		k = (size_t)snprintf(buf + n, max - n, "%s%s", n > 0 ? " " : "", *argv);
		n += k < max - n ? k : max - n - 1;
	}
	if (n + 1 >= max && max > 4)
		memcpy(buf + max - 4, "...", 4);
}

/* ---- commands ---- */

static void
cmd_task_cb(struct tpool_task *t)
{
	run_execute((struct run *)t);
}

static void
cmd_free(struct ncmd *c)
{
	run_free(c->run);
	free(c);
}

static void cmd_done_cb(struct tpool_task *t, void *arg);

static void
cmd_pump(struct notify *n)
{
	struct ncmd *c;

	while (n->nrunning < NOTIFY_THREADS && (c = TAILQ_FIRST(&n->queue)) != NULL) {
		TAILQ_REMOVE(&n->queue, c, entry);
		n->nqueued--;
		TAILQ_INSERT_TAIL(&n->running, c, entry);
		n->nrunning++;
		c->run->task.run = cmd_task_cb;
		c->run->task.done = cmd_done_cb;
		c->run->task.arg = c;
		tpool_submit(n->pool, &c->run->task);
	}
}

static void
cmd_done_cb(struct tpool_task *t, void *arg)
{
	struct ncmd *c = arg;
	struct notify *n = c->n;
	const struct run_result *res = &c->run->res;

	(void)t;
	TAILQ_REMOVE(&n->running, c, entry);
	n->nrunning--;
	if (res->status == RUN_EXITED && res->exit_code == 0) {
		n->cmd_ok++;
	} else {
		n->cmd_failed++;
		if (res->status == RUN_EXITED)
			log_warnx("notify: command for job %llu exited %d: %s",
				  (unsigned long long)c->run->spec.job_id, res->exit_code,
				  c->run->spec.argv[2]);
		else if (res->status == RUN_TIMEOUT)
			log_warnx("notify: command for job %llu killed after jobs.notify_timeout "
				  "(%g s): %s", (unsigned long long)c->run->spec.job_id,
				  n->cfg->jobs.notify_timeout, c->run->spec.argv[2]);
		else if (res->status != RUN_CANCELLED)
			log_warnx("notify: command for job %llu failed: %s",
				  (unsigned long long)c->run->spec.job_id,
				  res->error != NULL ? res->error : "killed by a signal");
	}
	cmd_free(c);
	if (!n->stopped)
		cmd_pump(n);
}

/* "K=V" into a NULL-terminated vector (grown by one). */
static void
env_put(char ***env, size_t *len, const char *key, const char *value)
{
	*env = xreallocarray(*env, *len + 2, sizeof **env);
	(*env)[(*len)++] = xprintf("%s=%s", key, value);
	(*env)[*len] = NULL;
}

/*
 * The environment of a notification: base (the job's own, or NULL for a
 * default PATH) without any TASKD_JOB_* of its own, then the job's figures.
 */
static char **
job_env(const struct job *j, char *const *base)
{
	static const char *const path = "PATH=/usr/local/bin:/usr/bin:/bin";
	char **env = NULL, num[64];
	size_t len = 0;

	if (base == NULL) {
		env = xcalloc(2, sizeof *env);
		env[len++] = xstrdup(path);
	}
	for (; base != NULL && *base != NULL; base++) {
		if (strncmp(*base, "TASKD_JOB_", 10) == 0)
			continue;
		env = xreallocarray(env, len + 2, sizeof *env);
		env[len++] = xstrdup(*base);
		env[len] = NULL;
	}
	snprintf(num, sizeof num, "%llu", (unsigned long long)j->id);
	env_put(&env, &len, "TASKD_JOB_ID", num);
	env_put(&env, &len, "TASKD_JOB_STATE", job_state_name(j->state));
	num[0] = '\0';
	if (j->res.exit_code >= 0)
		snprintf(num, sizeof num, "%d", j->res.exit_code);
	env_put(&env, &len, "TASKD_JOB_EXIT_CODE", num);
	num[0] = '\0';
	if (j->res.signal > 0)
		snprintf(num, sizeof num, "%d", j->res.signal);
	env_put(&env, &len, "TASKD_JOB_SIGNAL", num);
	snprintf(num, sizeof num, "%.3f", j->started_at > 0 && j->res.wall > 0 ? j->res.wall : 0.0);
	env_put(&env, &len, "TASKD_JOB_WALL", num);
	env_put(&env, &len, "TASKD_JOB_NAME", j->spec.name != NULL ? j->spec.name : "");
	return env;
}

/* Queue `/bin/sh -c cmd` for j; env is taken. */
static void
cmd_queue(struct notify *n, const struct job *j, const char *cmd, char **env, const char *cwd)
{
	struct ncmd *c;
	struct run *r;

	if (n->nqueued >= NOTIFY_QUEUE_MAX) {
		strv_free(env);
		dropped(n, &n->cmd_dropped, "command", j->id);
		return;
	}
	c = xcalloc(1, sizeof *c);
	c->n = n;
	c->run = r = run_new(true);
	r->spec.job_id = j->id;
	r->spec.type = BUILTIN_EXEC;
	r->spec.argv = xcalloc(4, sizeof *r->spec.argv);
	r->spec.argv[0] = xstrdup("/bin/sh");
	r->spec.argv[1] = xstrdup("-c");
	r->spec.argv[2] = xstrdup(cmd);
	r->spec.env = env;
	r->spec.cwd = xstrdup(cwd != NULL ? cwd : "/");
	r->spec.timeout = n->cfg->jobs.notify_timeout;
	r->spec.kill_grace = n->cfg->jobs.kill_grace;
	/* Never root for another user's job: a root taskd runs it as the submitter. */
	r->spec.as_user = geteuid() == 0 && j->uid != 0;
	r->spec.uid = j->uid;
	r->spec.gid = j->gid;
	TAILQ_INSERT_TAIL(&n->queue, c, entry);
	n->nqueued++;
	cmd_pump(n);
}

/* ---- the webhook ---- */

static void
delivery_free(struct delivery *d)
{
	free(d->body);
	free(d);
}

/* Into the waiting list, in due order (retries come after fresh ones due sooner). */
static void
hook_wait(struct notify *n, struct delivery *d)
{
	struct delivery *x;

	TAILQ_FOREACH_REVERSE(x, &n->waiting, deliveries, entry)
		if (x->due <= d->due)
			break;
	if (x == NULL)
		TAILQ_INSERT_HEAD(&n->waiting, d, entry);
	else
		TAILQ_INSERT_AFTER(&n->waiting, x, d, entry);
	n->nwaiting++;
}

static bool
retryable(int code)
{
	return code == 0 || code == 408 || code == 429 || code >= 500;
}

/*
 * evhttp may still use a connection when a request's callback returns, and
 * frees it itself only on some paths (not after a failed connect): free
 * each one ourselves, once its callback has returned.
 */
static void
conn_bury(struct notify *n, struct evhttp_connection *c)
{
	if (n->ndead == n->capdead) {
		n->capdead = n->capdead ? n->capdead * 2 : 8;
		n->dead = xreallocarray(n->dead, n->capdead, sizeof *n->dead);
	}
	n->dead[n->ndead++] = c;
	event_active(n->reap_ev, EV_TIMEOUT, 0);
}

static void
notify_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;

	(void)fd;
	(void)what;
	while (n->ndead > 0)
		evhttp_connection_free(n->dead[--n->ndead]);
}

static void
hook_done_cb(struct evhttp_request *req, void *arg)
{
	struct delivery *d = arg;
	struct notify *n = d->n;
	int code = req != NULL ? evhttp_request_get_response_code(req) : 0;

	TAILQ_REMOVE(&n->inflight, d, entry);
	n->ninflight--;
	conn_bury(n, d->conn);
	d->conn = NULL;
	if (code >= 200 && code < 300) {
		n->hook_ok++;
		delivery_free(d);
	} else if (retryable(code) && d->attempt < WEBHOOK_ATTEMPTS && !n->stopped) {
		n->hook_retries++;
		log_debug("notify: webhook for job %llu: %s; retrying", (unsigned long long)d->job,
			  code == 0 ? "no answer" : "server error");
		d->due = clock_now(CLOCK_MONOTONIC) + (double)(1 << (d->attempt - 1));
		hook_wait(n, d);
	} else {
		n->hook_failed++;
		if (code == 0)
			log_warnx("notify: webhook for job %llu: no answer after %d attempts: "
				  "given up", (unsigned long long)d->job, d->attempt);
		else
			log_warnx("notify: webhook for job %llu answered %d: given up",
				  (unsigned long long)d->job, code);
		delivery_free(d);
	}
	if (!n->stopped)
		hook_pump(n);
}

static int
hook_send(struct notify *n, struct delivery *d)
{
	struct evhttp_request *req;
	struct evkeyvalq *h;

	d->conn = evhttp_connection_base_new(n->base, n->dns, n->url.host,
					     (unsigned short)n->url.port);
	if (d->conn == NULL)
		return -1;
	evhttp_connection_set_timeout(d->conn, WEBHOOK_TIMEOUT);
	req = evhttp_request_new(hook_done_cb, d);
	if (req == NULL) {
		evhttp_connection_free(d->conn);
		d->conn = NULL;
		return -1;
	}
	h = evhttp_request_get_output_headers(req);
	evhttp_add_header(h, "Host", n->url.host_header);
	evhttp_add_header(h, "Content-Type", "application/json");
	evhttp_add_header(h, "User-Agent", "taskd/" TASKD_VERSION);
	evhttp_add_header(h, "Connection", "close");
	evbuffer_add(evhttp_request_get_output_buffer(req), d->body, d->len);
	d->attempt++;
	TAILQ_INSERT_TAIL(&n->inflight, d, entry);
	n->ninflight++;
	if (evhttp_make_request(d->conn, req, EVHTTP_REQ_POST, n->url.target) == -1) {
		/* The request is freed by evhttp; hook_done_cb was not called. */
		TAILQ_REMOVE(&n->inflight, d, entry);
		n->ninflight--;
		evhttp_connection_free(d->conn);
		d->conn = NULL;
		return -1;
	}
	return 0;
}

/* Send what is due while there is room in flight; time the rest. */
static void
hook_pump(struct notify *n)
{
	struct delivery *d;
	struct timeval tv;
	double now = clock_now(CLOCK_MONOTONIC);

	while (n->ninflight < WEBHOOK_INFLIGHT && (d = TAILQ_FIRST(&n->waiting)) != NULL &&
	       d->due <= now) {
		TAILQ_REMOVE(&n->waiting, d, entry);
		n->nwaiting--;
		if (n->webhook == NULL || hook_send(n, d) == -1) {
			n->hook_failed++;
			log_warnx("notify: webhook for job %llu: cannot send the request",
				  (unsigned long long)d->job);
			delivery_free(d);
		}
	}
	evtimer_del(n->hook_ev);
	if (n->ninflight < WEBHOOK_INFLIGHT && (d = TAILQ_FIRST(&n->waiting)) != NULL) {
		tv = clock_timeval(d->due - now);
		evtimer_add(n->hook_ev, &tv);
	}
}

static void
notify_hook_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	hook_pump(arg);
}

static void
hook_queue(struct notify *n, const struct job *j)
{
	struct delivery *d;
	json_t *o;

	if (n->nwaiting + n->ninflight >= WEBHOOK_QUEUE_MAX) {
		dropped(n, &n->hook_dropped, "webhook", j->id);
		return;
	}
	d = xcalloc(1, sizeof *d);
	d->n = n;
	d->job = j->id;
	o = job_to_json(j);
	d->body = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (d->body == NULL)
		fatalx("out of memory (json_dumps)");
	d->len = strlen(d->body);
	d->due = clock_now(CLOCK_MONOTONIC);
	hook_wait(n, d);
	hook_pump(n);
}

/* Drop what is in flight (connections freed without their callbacks) and waiting. */
static void
hook_clear(struct notify *n, bool count)
{
	struct delivery *d;

	while ((d = TAILQ_FIRST(&n->inflight)) != NULL) {
		TAILQ_REMOVE(&n->inflight, d, entry);
		n->ninflight--;
		if (d->conn != NULL)
			evhttp_connection_free(d->conn);
		if (count)
			n->hook_dropped++;
		delivery_free(d);
	}
	while ((d = TAILQ_FIRST(&n->waiting)) != NULL) {
		TAILQ_REMOVE(&n->waiting, d, entry);
		n->nwaiting--;
		if (count)
			n->hook_dropped++;
		delivery_free(d);
	}
}

static void
hook_configure(struct notify *n)
{
	const char *url = n->cfg->jobs.webhook;
	char *why = NULL;

	if ((url == NULL && n->webhook == NULL) ||
	    (url != NULL && n->webhook != NULL && strcmp(url, n->webhook) == 0))
		return;
	free(n->webhook);
	n->webhook = NULL;
	addr_url_free(&n->url);
	if (url == NULL)
		return;
	if (addr_parse_url(url, &n->url, &why) == -1) {
		/* Checked when the configuration was loaded. */
		log_warnx("jobs.webhook: %s", why);
		free(why);
		return;
	}
	if (!addr_is_ip_literal(n->url.host) && n->dns == NULL) {
		n->dns = evdns_base_new(n->base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
		if (n->dns == NULL)
			log_warnx("jobs.webhook: cannot set up name resolution for %s",
				  n->url.host);
	}
	n->webhook = xstrdup(url);
}

/* ---- the slow log ---- */

static void
slow_push(struct notify *n, const struct job *j)
{
	struct slow *s;

	if (n->len == n->cap) {
		/* Unroll into a bigger ring. */
		s = xcalloc(n->cap ? n->cap * 2 : 64, sizeof *s);
		for (size_t i = 0; i < n->len; i++)
			s[i] = n->ring[(n->head + i) % n->cap];
		free(n->ring);
		n->ring = s;
		n->head = 0;
		n->cap = n->cap ? n->cap * 2 : 64;
	}
	s = &n->ring[(n->head + n->len) % n->cap];
	s->id = j->id;
	s->attempt = j->attempt;
	s->started = clock_now(CLOCK_MONOTONIC);
	n->len++;
	if (n->len == 1)
		slow_arm(n);
}

static void
slow_arm(struct notify *n)
{
	struct timeval tv;

	evtimer_del(n->slow_ev);
	if (n->len == 0 || n->cfg->jobs.slow_log <= 0)
		return;
	tv = clock_timeval(n->ring[n->head].started + n->cfg->jobs.slow_log -
			   clock_now(CLOCK_MONOTONIC));
	evtimer_add(n->slow_ev, &tv);
}

static void
notify_slow_cb(evutil_socket_t fd, short what, void *arg)
{
	struct notify *n = arg;
	double limit = n->cfg->jobs.slow_log, now = clock_now(CLOCK_MONOTONIC);
	char cmd[SLOW_CMD_SHOWN + 4];
	struct slow *s;
	struct job *j;
	int pid;

	(void)fd;
	(void)what;
	while (n->len > 0 && limit > 0) {
		s = &n->ring[n->head];
		if (s->started + limit > now)
			break;
		j = jobs_find(n->jobs, s->id);
		if (j != NULL && j->state == JOB_RUNNING && j->attempt == s->attempt) {
			n->slow_jobs++;
			pid = j->run != NULL ? atomic_load(&j->run->live_pid) : 0;
			command_text(j->spec.argv, cmd, sizeof cmd);
			log_warnx("slow: job %llu (uid %u%s%s) running for %.0f s (jobs.slow_log %g), "
				  "pid %d: %s%s", (unsigned long long)j->id, (unsigned)j->uid,
				  j->spec.name != NULL ? ", name " : "",
				  j->spec.name != NULL ? j->spec.name : "", now - s->started, limit,
				  pid, j->spec.type == BUILTIN_EXEC ? "" : "type ",
				  j->spec.type == BUILTIN_EXEC ? cmd
				  : jobtype_name(j->spec.type, j->spec.handler));
		}
		n->head = (n->head + 1) % n->cap;
		n->len--;
	}
	slow_arm(n);
}

/* ---- the job observer ---- */

static void
log_failure(const struct job *j)
{
	char cmd[SLOW_CMD_SHOWN + 4], how[64];

	if (j->res.exit_code >= 0)
		snprintf(how, sizeof how, "exit code %d", j->res.exit_code);
	else if (j->res.signal > 0)
		snprintf(how, sizeof how, "signal %d", j->res.signal);
	else
		snprintf(how, sizeof how, "%s", j->res.error != NULL ? j->res.error : "no result");
	command_text(j->spec.argv, cmd, sizeof cmd);
	log_info("job %llu %s (%s, uid %u): %s", (unsigned long long)j->id,
		 job_state_name(j->state), how, (unsigned)j->uid,
		 j->spec.type == BUILTIN_EXEC ? cmd : jobtype_name(j->spec.type, j->spec.handler));
}

static void
notify_job_cb(struct job *j, int prev, void *arg)
{
	struct notify *n = arg;
	char **on;

	/* Cluster mode: the node that runs a job tells of it, once (job_elsewhere). */
	if (job_elsewhere(j))
		return;
	if (j->state == JOB_RUNNING) {
		if (n->cfg->jobs.slow_log > 0)
			slow_push(n, j);
		return;
	}
	if (!job_state_final(j->state) || n->stopped)
		return;
	if (j->state == JOB_FAILED || j->state == JOB_TIMEOUT || j->state == JOB_LOST)
		log_failure(j);
	/*
	 * The job's environment is its own notify command's. It stays the
	 * job's (restart runs the job with it again; a job of an array borrows
	 * its array's).
	 */
	if (j->spec.notify != NULL)
		cmd_queue(n, j, j->spec.notify, job_env(j, j->spec.env), j->spec.cwd);
	for (on = n->cfg->jobs.on_finish; on != NULL && *on != NULL; on++)
		cmd_queue(n, j, *on, job_env(j, NULL), NULL);
	if (n->webhook != NULL)
		hook_queue(n, j);
	(void)prev;
}

/* ---- life ---- */

struct notify *
notify_new(struct event_base *base, struct jobs *js, const struct config *cfg)
{
	struct notify *n = xcalloc(1, sizeof *n);
	struct tpool_config tc = { .min_threads = 0, .max_threads = NOTIFY_THREADS,
				   .idle_timeout = 30 };

	n->base = base;
	n->jobs = js;
	n->cfg = cfg;
	TAILQ_INIT(&n->queue);
	TAILQ_INIT(&n->running);
	TAILQ_INIT(&n->waiting);
	TAILQ_INIT(&n->inflight);
	n->pool = tpool_new(base, &tc);
	n->hook_ev = evtimer_new(base, notify_hook_cb, n);
	n->slow_ev = evtimer_new(base, notify_slow_cb, n);
	n->reap_ev = event_new(base, -1, 0, notify_reap_cb, n);
	if (n->hook_ev == NULL || n->slow_ev == NULL || n->reap_ev == NULL)
		fatalx("notify: cannot create timers");
	hook_configure(n);
	n->observer.changed = notify_job_cb;
	n->observer.arg = n;
	jobs_observe(js, &n->observer);
	return n;
}

void
notify_configure(struct notify *n)
{
	hook_configure(n);
	if (n->cfg->jobs.slow_log <= 0)
		n->len = 0;
	slow_arm(n);
}

void
notify_stop(struct notify *n)
{
	struct ncmd *c;
	size_t dropped_cmds = n->nqueued, dropped_hooks = n->nwaiting + n->ninflight;

	if (n->stopped)
		return;
	n->stopped = true;
	while ((c = TAILQ_FIRST(&n->queue)) != NULL) {
		TAILQ_REMOVE(&n->queue, c, entry);
		n->nqueued--;
		n->cmd_dropped++;
		cmd_free(c);
	}
	TAILQ_FOREACH(c, &n->running, entry)
		run_cancel(c->run);
	hook_clear(n, true);
	if (dropped_cmds + dropped_hooks > 0)
		log_warnx("notify: taskd is stopping: %zu commands and %zu webhook posts not sent",
			  dropped_cmds, dropped_hooks);
}

void
notify_free(struct notify *n)
{
	if (n == NULL)
		return;
	notify_stop(n);
	jobs_unobserve(n->jobs, &n->observer);
	/* Waits for the cancelled commands; their done callbacks free them. */
	tpool_free(n->pool);
	notify_reap_cb(-1, 0, n);
	free(n->dead);
	event_free(n->reap_ev);
	event_free(n->hook_ev);
	event_free(n->slow_ev);
	if (n->dns != NULL)
		evdns_base_free(n->dns, 0);
	addr_url_free(&n->url);
	free(n->webhook);
	free(n->ring);
	free(n);
}

void
notify_metrics(struct notify *n, struct metrics_out *m)
{
	const struct {
		const char *kind, *outcome;
		const uint64_t *n;
	} outcomes[] = {
		{ "command", "ok", &n->cmd_ok },
		{ "command", "failed", &n->cmd_failed },
		{ "command", "dropped", &n->cmd_dropped },
		{ "webhook", "ok", &n->hook_ok },
		{ "webhook", "failed", &n->hook_failed },
		{ "webhook", "dropped", &n->hook_dropped },
	};
	char labels[64];
	size_t i;

	metrics_family(m, "taskd_notifications", METRIC_COUNTER, NULL,
		       "notifications of ended jobs, by kind and outcome");
	for (i = 0; i < sizeof outcomes / sizeof outcomes[0]; i++)
		metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "kind",
						      outcomes[i].kind, "outcome",
						      outcomes[i].outcome, NULL),
				    *outcomes[i].n);
	metrics_family(m, "taskd_notifications_queued", METRIC_GAUGE, NULL,
		       "notifications waiting or in progress, by kind");
	metrics_sample(m, metrics_labels(labels, sizeof labels, "kind", "command", NULL),
		       (double)(n->nqueued + n->nrunning));
	metrics_sample(m, metrics_labels(labels, sizeof labels, "kind", "webhook", NULL),
		       (double)(n->nwaiting + n->ninflight));
	metrics_counter(m, "taskd_webhook_retries", "webhook posts attempted again after a failure",
			n->hook_retries);
	metrics_counter(m, "taskd_jobs_slow", "runs logged for lasting longer than jobs.slow_log",
			n->slow_jobs);
}
