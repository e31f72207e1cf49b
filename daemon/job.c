#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "clock.h"
#include "job.h"
#include "log.h"
#include "worker.h"
#include "xmalloc.h"

struct jobs {
	struct job **buckets;   /* chained hash by id, power-of-two size */
	size_t nbuckets;
	size_t total;
	size_t counts[JOB_NSTATES];
	size_t nfinished;
	uint64_t next_id;
	struct job_list all;
	struct job_list finished;
	struct user_count {
		uid_t uid;
		size_t queued;
	} *users;               /* few submitting users: a small array */
	size_t nusers;
	void (*changed)(struct job *, void *);
	void (*removed)(uint64_t, void *);
	void *hook_arg;
	TAILQ_HEAD(, job_observer) observers;
};

static const char *const wait_names[] = {
	[WAIT_NONE] = NULL, [WAIT_SLOTS] = "slots", [WAIT_MEMORY] = "memory",
	[WAIT_DEPENDENCY] = "dependency", [WAIT_FAIR_SHARE] = "fair_share",
	[WAIT_PAUSED] = "paused", [WAIT_SCHEDULED] = "scheduled", [WAIT_PRESSURE] = "pressure",
};

static void (*json_hook)(const struct job *, json_t *, void *);
static void *json_hook_arg;

const char *
wait_reason_name(enum wait_reason w)
{
	return w < sizeof wait_names / sizeof wait_names[0] ? wait_names[w] : NULL;
}

void
job_set_json_hook(void (*fn)(const struct job *j, json_t *o, void *arg), void *arg)
{
	json_hook = fn;
	json_hook_arg = arg;
}

static const char *const state_names[JOB_NSTATES] = {
	[JOB_QUEUED] = "queued", [JOB_RUNNING] = "running", [JOB_WAITING] = "waiting",
	[JOB_SCHEDULED] = "scheduled", [JOB_PAUSED] = "paused", [JOB_DONE] = "done",
	[JOB_FAILED] = "failed", [JOB_TIMEOUT] = "timeout", [JOB_CANCELLED] = "cancelled",
	[JOB_LOST] = "lost",
};

double
now_unix(void)
{
	return clock_now(CLOCK_REALTIME);
}

const char *
job_state_name(enum job_state st)
{
	return st < JOB_NSTATES ? state_names[st] : "unknown";
}

int
job_state_parse(const char *name)
{
	int i;

	for (i = 0; i < JOB_NSTATES; i++)
		if (strcmp(name, state_names[i]) == 0)
			return i;
	return -1;
}

bool
job_state_final(enum job_state st)
{
	return st != JOB_RUNNING && !job_state_pending(st);
}

bool
job_state_pending(enum job_state st)
{
	return st == JOB_QUEUED || st == JOB_WAITING || st == JOB_SCHEDULED || st == JOB_PAUSED;
}

const char *
job_pool_name(enum job_pool p)
{
	switch (p) {
	case POOL_THREAD:
		return "thread";
	case POOL_PROCESS:
		return "process";
	default:
		return NULL;
	}
}

static void count_state(struct jobs *js, const struct job *j, enum job_state st, int delta);

static void
notify(struct jobs *js, struct job *j, int prev)
{
	struct job_observer *o;

	/* Until its submit is stored (jobs_announce), a job's changes are nobody's news. */
	if (!j->announced)
		return;
	TAILQ_FOREACH(o, &js->observers, entry)
		o->changed(j, prev, o->arg);
}

void
jobs_observe(struct jobs *js, struct job_observer *o)
{
	TAILQ_INSERT_TAIL(&js->observers, o, entry);
}

void
jobs_unobserve(struct jobs *js, struct job_observer *o)
{
	TAILQ_REMOVE(&js->observers, o, entry);
}

struct jobs *
jobs_new(void)
{
	struct jobs *js = xcalloc(1, sizeof *js);

	js->nbuckets = 1024;
	js->buckets = xcalloc(js->nbuckets, sizeof *js->buckets);
	js->next_id = 1;
	TAILQ_INIT(&js->all);
	TAILQ_INIT(&js->finished);
	TAILQ_INIT(&js->observers);
	return js;
}

void
job_spec_free(struct job_spec *spec)
{
	strv_free(spec->argv);
	strv_free(spec->env);
	free(spec->cwd);
	free(spec->name);
	labels_free(&spec->labels);
	free(spec->deps);
	memset(spec, 0, sizeof *spec);
}

static void
job_free(struct job *j)
{
	job_spec_free(&j->spec);
	free(j->kinds);
	free(j->cgroup);
	run_result_clear(&j->res);
	if (j->attempts != NULL)
		json_decref(j->attempts);
	free(j);
}

void
jobs_free(struct jobs *js)
{
	struct job *j;

	if (js == NULL)
		return;
	while ((j = TAILQ_FIRST(&js->all)) != NULL) {
		TAILQ_REMOVE(&js->all, j, all);
		if (j->run != NULL)
			run_free(j->run);
		job_free(j);
	}
	free(js->buckets);
	free(js->users);
	free(js);
}

static size_t
bucket_of(const struct jobs *js, uint64_t id)
{
	/* Fibonacci hashing: ids are sequential, so spread them. */
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 20) & (js->nbuckets - 1);
}

static void
grow(struct jobs *js)
{
	struct job **old = js->buckets, *j, *next;
	size_t i, oldn = js->nbuckets;

	js->nbuckets *= 2;
	js->buckets = xcalloc(js->nbuckets, sizeof *js->buckets);
	for (i = 0; i < oldn; i++) {
		for (j = old[i]; j != NULL; j = next) {
			next = j->hnext;
			j->hnext = js->buckets[bucket_of(js, j->id)];
			js->buckets[bucket_of(js, j->id)] = j;
		}
	}
	free(old);
}

/* Into the hash, the id-ordered list (ids only grow: the tail) and the counts. */
static void
insert(struct jobs *js, struct job *j)
{
	size_t b;

	j->qidx = SIZE_MAX;
	j->tidx = SIZE_MAX;
	TAILQ_INIT(&j->waiters);
	if (js->total + 1 > js->nbuckets)
		grow(js);
	b = bucket_of(js, j->id);
	j->hnext = js->buckets[b];
	js->buckets[b] = j;
	TAILQ_INSERT_TAIL(&js->all, j, all);
	js->total++;
	count_state(js, j, j->state, 1);
}

struct job *
jobs_add(struct jobs *js, struct job_spec *spec, uid_t uid, gid_t gid, double now)
{
	struct job *j = xcalloc(1, sizeof *j);

	j->id = js->next_id++;
	j->state = JOB_QUEUED;
	j->spec = *spec;
	memset(spec, 0, sizeof *spec);
	j->uid = uid;
	j->gid = gid;
	j->worker = -1;
	j->submitted_at = now;
	run_result_clear(&j->res);
	j->attempt = 1;
	insert(js, j);
	if (js->changed != NULL)
		js->changed(j, js->hook_arg);
	return j;
}

void
jobs_announce(struct jobs *js, struct job *j)
{
	j->announced = true;
	notify(js, j, -1);
}

struct job *
jobs_find(struct jobs *js, uint64_t id)
{
	struct job *j;

	for (j = js->buckets[bucket_of(js, id)]; j != NULL; j = j->hnext)
		if (j->id == id)
			return j;
	return NULL;
}

struct job *
jobs_first(struct jobs *js)
{
	return TAILQ_FIRST(&js->all);
}

struct job *
jobs_last(struct jobs *js)
{
	return TAILQ_LAST(&js->all, job_list);
}

size_t
jobs_count(struct jobs *js, enum job_state st)
{
	return st < JOB_NSTATES ? js->counts[st] : 0;
}

size_t
jobs_total(struct jobs *js)
{
	return js->total;
}

uint64_t
jobs_next_id(struct jobs *js)
{
	return js->next_id;
}

static struct user_count *
user_count(struct jobs *js, uid_t uid)
{
	size_t i;

	for (i = 0; i < js->nusers; i++)
		if (js->users[i].uid == uid)
			return &js->users[i];
	js->users = xreallocarray(js->users, js->nusers + 1, sizeof *js->users);
	js->users[js->nusers].uid = uid;
	js->users[js->nusers].queued = 0;
	return &js->users[js->nusers++];
}

size_t
jobs_queued_by(struct jobs *js, uid_t uid)
{
	size_t i;

	for (i = 0; i < js->nusers; i++)
		if (js->users[i].uid == uid)
			return js->users[i].queued;
	return 0;
}

static void
count_state(struct jobs *js, const struct job *j, enum job_state st, int delta)
{
	js->counts[st] += (size_t)delta;
	if (job_state_pending(st))
		user_count(js, j->uid)->queued += (size_t)delta;
}

void
job_set_state(struct jobs *js, struct job *j, enum job_state st)
{
	enum job_state prev = j->state;

	count_state(js, j, j->state, -1);
	count_state(js, j, st, 1);
	j->state = st;
	if (js->changed != NULL)
		js->changed(j, js->hook_arg);
	notify(js, j, (int)prev);
}

void
jobs_touch(struct jobs *js, struct job *j)
{
	if (js->changed != NULL)
		js->changed(j, js->hook_arg);
}

void
jobs_reopen(struct jobs *js, struct job *j, enum job_state st)
{
	if (!job_state_final(j->state) || job_state_final(st))
		return;
	TAILQ_REMOVE(&js->finished, j, finished);
	js->nfinished--;
	job_set_state(js, j, st);
}

size_t
jobs_pending(struct jobs *js)
{
	return js->counts[JOB_QUEUED] + js->counts[JOB_WAITING] + js->counts[JOB_SCHEDULED] +
	       js->counts[JOB_PAUSED];
}

void
jobs_set_hooks(struct jobs *js, void (*changed)(struct job *, void *),
	       void (*removed)(uint64_t, void *), void *arg)
{
	js->changed = changed;
	js->removed = removed;
	js->hook_arg = arg;
}

static void
jobs_remove(struct jobs *js, struct job *j)
{
	struct job **pp = &js->buckets[bucket_of(js, j->id)];

	while (*pp != j)
		pp = &(*pp)->hnext;
	*pp = j->hnext;
	TAILQ_REMOVE(&js->all, j, all);
	count_state(js, j, j->state, -1);
	js->total--;
}

void
jobs_finish(struct jobs *js, struct job *j, enum job_state st, int keep,
	    void (*prune)(struct job *, void *), void *arg)
{
	struct job_waiter *w;

	job_set_state(js, j, st);
	TAILQ_INSERT_TAIL(&js->finished, j, finished);
	js->nfinished++;
	/* A waiter's callback may free its waiter: unlink before calling. */
	while ((w = TAILQ_FIRST(&j->waiters)) != NULL) {
		TAILQ_REMOVE(&j->waiters, w, entry);
		w->cb(j, w->arg);
	}
	jobs_prune(js, keep, prune, arg);
}

void
jobs_prune(struct jobs *js, int keep, void (*prune)(struct job *, void *), void *arg)
{
	struct job *old, *next;

	/*
	 * Oldest first. A job that ended before its submit was stored (cancelled
	 * at once) stays until it is announced: its submit still answers with it.
	 */
	for (old = TAILQ_FIRST(&js->finished);
	     old != NULL && js->nfinished > (size_t)(keep < 0 ? 0 : keep); old = next) {
		next = TAILQ_NEXT(old, finished);
		if (!old->announced)
			continue;
		TAILQ_REMOVE(&js->finished, old, finished);
		js->nfinished--;
		if (prune != NULL)
			prune(old, arg);
		if (js->removed != NULL)
			js->removed(old->id, js->hook_arg);
		jobs_remove(js, old);
		job_free(old);
	}
}

void
jobs_delete(struct jobs *js, struct job *j, void (*prune)(struct job *, void *), void *arg)
{
	if (!job_state_final(j->state))
		fatalx("job %llu: deleted while %s", (unsigned long long)j->id,
		       job_state_name(j->state));
	TAILQ_REMOVE(&js->finished, j, finished);
	js->nfinished--;
	if (prune != NULL)
		prune(j, arg);
	if (js->removed != NULL)
		js->removed(j->id, js->hook_arg);
	jobs_remove(js, j);
	job_free(j);
}

void
job_wait(struct job *j, struct job_waiter *w)
{
	TAILQ_INSERT_TAIL(&j->waiters, w, entry);
}

void
job_unwait(struct job *j, struct job_waiter *w)
{
	TAILQ_REMOVE(&j->waiters, w, entry);
}

static json_t *
strv_to_json(char *const *v)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
time_or_null(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

static void
add_result(json_t *o, const struct job *j)
{
	const struct run_result *r = &j->res;
	bool fin = job_state_final(j->state);
	bool ran = fin && j->started_at > 0;

	json_object_set_new(o, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code)
							      : json_null());
	json_object_set_new(o, "signal", r->signal > 0 ? json_integer(r->signal) : json_null());
	json_object_set_new(o, "cpu_user", ran ? json_real(r->cpu_user) : json_null());
	json_object_set_new(o, "cpu_sys", ran ? json_real(r->cpu_sys) : json_null());
	json_object_set_new(o, "max_rss_kb", ran && r->max_rss_kb >= 0
						     ? json_integer(r->max_rss_kb) : json_null());
	json_object_set_new(o, "mem_peak_kb", ran && r->mem_peak_kb >= 0
						      ? json_integer(r->mem_peak_kb) : json_null());
	/* 0: never measured (a run lost while taskd was down that had ended by its restart). */
	json_object_set_new(o, "wall", ran && r->wall > 0 ? json_real(r->wall) : json_null());
	json_object_set_new(o, "result", str_or_null(r->result));
	json_object_set_new(o, "error", str_or_null(r->error));
	json_object_set_new(o, "stdout_bytes", ran ? json_integer((json_int_t)r->out_bytes)
						   : json_null());
	json_object_set_new(o, "stderr_bytes", ran ? json_integer((json_int_t)r->err_bytes)
						   : json_null());
	json_object_set_new(o, "stdout_truncated", json_boolean(r->out_truncated));
	json_object_set_new(o, "stderr_truncated", json_boolean(r->err_truncated));
}

/* Dependencies, start time and retries (life.c). */
static void
add_lifecycle(json_t *o, const struct job *j)
{
	const struct job_spec *s = &j->spec;
	json_t *after = json_array(), *any = json_array();
	size_t i;

	for (i = 0; i < s->ndeps; i++)
		json_array_append_new(s->deps[i].any ? any : after,
				      json_integer((json_int_t)s->deps[i].id));
	json_object_set_new(o, "after", after);
	json_object_set_new(o, "after_any", any);
	json_object_set_new(o, "run_at", time_or_null(s->run_at));
	json_object_set_new(o, "due_at", j->state == JOB_SCHEDULED ? time_or_null(j->due_at)
								  : json_null());
	json_object_set_new(o, "retries", json_integer(s->retries));
	json_object_set_new(o, "retry_delay", json_real(s->retry_delay));
	json_object_set_new(o, "attempt", json_integer(j->attempt));
	json_object_set_new(o, "attempts", j->attempts != NULL ? json_deep_copy(j->attempts)
							       : json_array());
}

json_t *
job_to_json(const struct job *j)
{
	json_t *o = json_object();
	const char *pool = job_pool_name(j->pool);
	int pid;

	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "state", json_string(job_state_name(j->state)));
	json_object_set_new(o, "type", json_string(builtin_name(j->spec.type)));
	json_object_set_new(o, "class", json_string(config_class_name(j->spec.class)));
	json_object_set_new(o, "routed", pool != NULL ? json_string(config_class_name(j->routed))
						      : json_null());
	json_object_set_new(o, "pool", str_or_null(pool));
	json_object_set_new(o, "worker", j->worker >= 0 ? json_integer(j->worker) : json_null());
	json_object_set_new(o, "name", str_or_null(j->spec.name));
	json_object_set_new(o, "labels", labels_to_json(&j->spec.labels));
	json_object_set_new(o, "argv", strv_to_json(j->spec.argv));
	json_object_set_new(o, "cwd", str_or_null(j->spec.cwd));
	json_object_set_new(o, "priority", json_integer(j->spec.priority));
	json_object_set_new(o, "timeout", json_real(j->spec.timeout));
	json_object_set_new(o, "owner", json_pack("{s:I,s:I}", "uid", (json_int_t)j->uid,
						  "gid", (json_int_t)j->gid));
	pid = j->run != NULL ? atomic_load(&j->run->live_pid) : (int)j->res.pid;
	json_object_set_new(o, "pid", pid > 0 ? json_integer(pid) : json_null());
	add_result(o, j);
	add_lifecycle(o, j);
	json_object_set_new(o, "submitted_at", time_or_null(j->submitted_at));
	json_object_set_new(o, "started_at", time_or_null(j->started_at));
	json_object_set_new(o, "finished_at", time_or_null(j->finished_at));
	json_object_set_new(o, "memory", j->spec.limits.memory > 0
				 ? json_integer((json_int_t)j->spec.limits.memory) : json_null());
	json_object_set_new(o, "cpus", j->spec.limits.cpus > 0 ? json_real(j->spec.limits.cpus)
								: json_null());
	json_object_set_new(o, "pids", j->spec.limits.pids > 0
				 ? json_integer((json_int_t)j->spec.limits.pids) : json_null());
	if (json_hook != NULL)
		json_hook(j, o, json_hook_arg);
	return o;
}

/* ---- durable records (store.c keeps them as text) ---- */

static json_t *
strv_or_null(char *const *v)
{
	return v != NULL ? strv_to_json(v) : json_null();
}

/* The lifecycle part of a record (absent in records of older versions). */
static json_t *
life_record(const struct job *j)
{
	const struct job_spec *s = &j->spec;
	json_t *deps = json_array();
	size_t i;

	for (i = 0; i < s->ndeps; i++)
		json_array_append_new(deps, json_pack("[I,b,i]", (json_int_t)s->deps[i].id,
						      s->deps[i].any, s->deps[i].state));
	return json_pack("{s:o,s:f,s:i,s:f,s:i,s:O,s:f}", "deps", deps, "run_at", s->run_at,
			 "retries", s->retries, "retry_delay", s->retry_delay, "attempt",
			 j->attempt, "attempts", j->attempts != NULL ? j->attempts : json_null(),
			 "due_at", j->due_at);
}

static int
life_restore(json_t *l, struct job_spec *sp, struct job *j)
{
	json_t *deps, *attempts, *d;
	json_int_t id;
	size_t i;
	int any, st;

	if (l == NULL)
		return 0;
	if (json_unpack(l, "{s:o,s:F,s:i,s:F,s:i,s:o,s:F}", "deps", &deps, "run_at",
			&sp->run_at, "retries", &sp->retries, "retry_delay", &sp->retry_delay,
			"attempt", &j->attempt, "attempts", &attempts, "due_at", &j->due_at) == -1 ||
	    !json_is_array(deps) || json_array_size(deps) > JOB_MAX_DEPS ||
	    (!json_is_null(attempts) && !json_is_array(attempts)) || j->attempt < 1 ||
	    sp->retries < 0)
		return -1;
	sp->ndeps = json_array_size(deps);
	sp->deps = sp->ndeps > 0 ? xcalloc(sp->ndeps, sizeof *sp->deps) : NULL;
	json_array_foreach(deps, i, d) {
		if (json_unpack(d, "[I,b,i]", &id, &any, &st) == -1 || id <= 0 ||
		    st < -1 || st >= JOB_NSTATES)
			return -1;
		sp->deps[i].id = (uint64_t)id;
		sp->deps[i].any = any;
		sp->deps[i].state = st;
	}
	if (json_is_array(attempts))
		j->attempts = json_incref(attempts);
	return 0;
}

char *
job_record(const struct job *j)
{
	const struct job_spec *s = &j->spec;
	json_t *res = worker_encode_result(j->id, &j->res, -1), *o;
	char *text;

	o = json_pack("{s:{s:i,s:o,s:o,s:o,s:o,s:i,s:i,s:f},s:I,s:I,s:i,s:i,s:i,s:s,"
		      "s:f,s:f,s:f,s:o}",
		      "spec", "type", s->type, "argv", strv_or_null(s->argv), "env",
		      strv_or_null(s->env), "cwd", str_or_null(s->cwd), "name", str_or_null(s->name),
		      "class", (int)s->class, "priority", s->priority, "timeout", s->timeout,
		      "uid", (json_int_t)j->uid, "gid", (json_int_t)j->gid, "routed", (int)j->routed,
		      "pool", (int)j->pool, "worker", j->worker, "route_key", j->route.key,
		      "submitted_at", j->submitted_at, "started_at", j->started_at, "finished_at",
		      j->finished_at, "res", res);
	if (o == NULL)
		fatalx("job %llu: cannot encode its record", (unsigned long long)j->id);
	/* Optional in records (older ones have none). */
	if (s->labels.n > 0)
		json_object_set_new(json_object_get(o, "spec"), "labels",
				    labels_to_json(&s->labels));
	if (s->limits.memory > 0 || s->limits.cpus > 0 || s->limits.pids > 0)
		json_object_set_new(json_object_get(o, "spec"), "limits",
				    json_pack("{s:I,s:f,s:I}", "memory",
					      (json_int_t)s->limits.memory, "cpus", s->limits.cpus,
					      "pids", (json_int_t)s->limits.pids));
	json_object_set_new(o, "life", life_record(j));
	json_object_set_new(o, "route", route_record(&j->route));
	if (j->cgroup != NULL)
		json_object_set_new(o, "cgroup", json_string(j->cgroup));
	if (j->reclassified_at > 0)
		json_object_set_new(o, "reclassified_at", json_real(j->reclassified_at));
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		fatalx("out of memory (json_dumps)");
	return text;
}

static char **
strv_from_json(json_t *a, bool *ok)
{
	size_t i, n;
	char **v;

	if (json_is_null(a))
		return NULL;
	if (!json_is_array(a)) {
		*ok = false;
		return NULL;
	}
	n = json_array_size(a);
	v = xcalloc(n + 1, sizeof *v);
	for (i = 0; i < n; i++) {
		if (!json_is_string(json_array_get(a, i))) {
			*ok = false;
			strv_free(v);
			return NULL;
		}
		v[i] = xstrdup(json_string_value(json_array_get(a, i)));
	}
	return v;
}

static char *
str_from_json(json_t *s)
{
	return json_is_string(s) ? xstrdup(json_string_value(s)) : NULL;
}

/* spec.limits (absent in older records and in jobs without limits). */
static int
limits_restore(json_t *l, struct cg_limits *lim)
{
	json_int_t mem, pids;
	double cpus;

	if (l == NULL)
		return 0;
	if (json_unpack(l, "{s:I,s:F,s:I}", "memory", &mem, "cpus", &cpus, "pids", &pids) == -1 ||
	    mem < 0 || pids < 0 || !isfinite(cpus) || cpus < 0)
		return -1;
	lim->memory = (uint64_t)mem;
	lim->cpus = cpus;
	lim->pids = (uint64_t)pids;
	return 0;
}

/*
 * How it was routed, its cgroup, and its kind keys (computed again: they
 * are a function of its description). A record without "route" is from a
 * taskd that kept only the kind key.
 */
static int
route_restore(json_t *o, struct job *j, enum job_class cls, enum job_class routed,
	      const char *key)
{
	json_t *r = json_object_get(o, "route"), *cg = json_object_get(o, "cgroup");
	json_t *re = json_object_get(o, "reclassified_at");
	struct kind_keys k;

	if (r != NULL) {
		if (route_from_record(r, &j->route) == -1)
			return -1;
	} else {
		memset(&j->route, 0, sizeof j->route);
		j->route.by = cls != CLASS_AUTO ? ROUTE_CLASS : ROUTE_UNKNOWN;
		j->route.decided = routed;
		j->route.level = -1;
		snprintf(j->route.key, sizeof j->route.key, "%s", key);
	}
	if ((cg != NULL && !json_is_string(cg)) || (re != NULL && !json_is_number(re)))
		return -1;
	j->cgroup = cg != NULL ? xstrdup(json_string_value(cg)) : NULL;
	j->reclassified_at = re != NULL ? json_number_value(re) : 0;
	kind_keys(j->spec.name, builtin_name(j->spec.type), j->spec.argv, j->spec.cwd, &k);
	j->kinds = kind_keys_pack(&k);
	return 0;
}

struct job *
jobs_restore(struct jobs *js, uint64_t id, const char *state, const char *record, char **cause)
{
	json_t *o, *argv, *env, *cwd, *name, *res, *labels;
	struct job_spec sp = { 0 };
	json_int_t uid, gid;
	int st = job_state_parse(state), routed, pool, worker, cls;
	double sub, start, fin;
	const char *key;
	uint64_t rid;
	long rss;
	bool ok = true;
	struct job *j;
	char *err = NULL;

	o = json_loads(record, 0, NULL);
	if (o == NULL || st < 0 || jobs_find(js, id) != NULL ||
	    json_unpack(o, "{s:{s:i,s:o,s:o,s:o,s:o,s:i,s:i,s:F},s:I,s:I,s:i,s:i,s:i,s:s,"
			   "s:F,s:F,s:F,s:o}",
			"spec", "type", &sp.type, "argv", &argv, "env", &env, "cwd", &cwd, "name",
			&name, "class", &cls, "priority", &sp.priority, "timeout", &sp.timeout,
			"uid", &uid, "gid", &gid, "routed", &routed, "pool", &pool, "worker",
			&worker, "route_key", &key, "submitted_at", &sub, "started_at", &start,
			"finished_at", &fin, "res", &res) == -1 ||
	    cls < CLASS_AUTO || cls > CLASS_IO || routed < CLASS_AUTO || routed > CLASS_IO ||
	    pool < POOL_NONE || pool > POOL_PROCESS || uid < 0 || gid < 0 ||
	    sp.priority < TASKD_PRIORITY_MIN || sp.priority > TASKD_PRIORITY_MAX) {
		xasprintf(cause, "job %llu: unreadable record", (unsigned long long)id);
		json_decref(o);
		return NULL;
	}
	sp.class = (enum job_class)cls;
	sp.argv = strv_from_json(argv, &ok);
	sp.env = strv_from_json(env, &ok);
	sp.cwd = str_from_json(cwd);
	sp.name = str_from_json(name);
	labels = json_object_get(json_object_get(o, "spec"), "labels");
	if (labels != NULL && labels_from_json(labels, "labels", &sp.labels, &err) == -1)
		ok = false;
	if (limits_restore(json_object_get(json_object_get(o, "spec"), "limits"), &sp.limits) ==
	    -1)
		ok = false;
	if (sp.argv == NULL)
		sp.argv = xcalloc(1, sizeof(char *));
	j = xcalloc(1, sizeof *j);
	j->attempt = 1;
	if (!ok || worker_decode_result(res, &j->res, &rid, &rss, &err) == -1 || rid != id) {
		xasprintf(cause, "job %llu: unreadable record (%s)", (unsigned long long)id,
			  err != NULL ? err : rid != id ? "the result is another job's" : "bad spec");
		free(err);
		run_result_clear(&j->res); /* decoded, but of another job */
		free(j);
		job_spec_free(&sp);
		json_decref(o);
		return NULL;
	}
	if (life_restore(json_object_get(o, "life"), &sp, j) == -1) {
		xasprintf(cause, "job %llu: unreadable record (bad lifecycle fields)",
			  (unsigned long long)id);
		j->spec = sp;
		job_free(j);
		json_decref(o);
		return NULL;
	}
	j->id = id;
	j->spec = sp;
	if (route_restore(o, j, (enum job_class)cls, (enum job_class)routed, key) == -1) {
		xasprintf(cause, "job %llu: unreadable record (bad route)", (unsigned long long)id);
		job_free(j);
		json_decref(o);
		return NULL;
	}
	j->uid = (uid_t)uid;
	j->gid = (gid_t)gid;
	j->routed = (enum job_class)routed;
	j->pool = (enum job_pool)pool;
	j->worker = worker;
	j->submitted_at = sub;
	j->started_at = start;
	j->finished_at = fin;
	j->state = JOB_QUEUED;
	j->admitted = true; /* stored: life.c may move it on */
	json_decref(o);
	insert(js, j);
	if (id >= js->next_id)
		js->next_id = id + 1;
	if (st != JOB_QUEUED)
		job_set_state(js, j, st);
	j->announced = true; /* stored long ago */
	if (job_state_final(st)) {
		/* Restored in id order: the oldest finished are pruned first. */
		TAILQ_INSERT_TAIL(&js->finished, j, finished);
		js->nfinished++;
	}
	return j;
}

void
jobs_discard(struct jobs *js, struct job *j)
{
	struct job_waiter *w;

	/* Cancelled before its submit failed: it is on the finished list. */
	if (job_state_final(j->state)) {
		TAILQ_REMOVE(&js->finished, j, finished);
		js->nfinished--;
	}
	/* Still waited for (it never ended; a dependent may watch it): tell them, it is going. */
	while ((w = TAILQ_FIRST(&j->waiters)) != NULL) {
		TAILQ_REMOVE(&j->waiters, w, entry);
		w->cb(j, w->arg);
	}
	jobs_remove(js, j);
	job_free(j);
}

void
jobs_set_next_id(struct jobs *js, uint64_t next)
{
	if (next > js->next_id)
		js->next_id = next;
}
