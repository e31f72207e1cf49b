#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "clock.h"
#include "gate.h"
#include "job.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "log.h"
#include "modules.h"
#include "xmalloc.h"

/*
 * A unique key (--unique) and who holds it: the pending, running or
 * suspended jobs of uid with that key (each job of an array counts), and
 * the id to answer with (a job's, or its array's).
 */
struct uniq {
	uid_t uid;
	char *key;
	uint64_t id;
	bool array;
	size_t holders;
	struct uniq *next;
};

struct jobs {
	struct job **buckets;   /* chained hash by id, power-of-two size */
	size_t nbuckets;
	struct uniq **ubuckets; /* unique keys by (uid, key), power-of-two size */
	size_t nubuckets, nuniq;
	struct job_array **abuckets; /* arrays by id, power-of-two size */
	size_t nabuckets, narrays;
	TAILQ_HEAD(job_array_list, job_array) arrays; /* in id order */
	size_t total;
	size_t counts[JOB_NSTATES];
	size_t nfinished;
	uint64_t next_id;
	struct job_list all;
	struct job_list finished;
	struct job_list running;
	struct user_count {
		uid_t uid;
		size_t queued;
		uint64_t job_bytes;    /* job_spec_bytes of its jobs */
		uint64_t output_bytes; /* their output files */
	} *users;               /* few submitting users: a small array */
	size_t nusers;
	struct jobs_hooks hooks;
	TAILQ_HEAD(, job_observer) observers;
};

static const char *const state_names[JOB_NSTATES] = {
	[JOB_QUEUED] = "queued", [JOB_RUNNING] = "running", [JOB_WAITING] = "waiting",
	[JOB_SCHEDULED] = "scheduled", [JOB_PAUSED] = "paused", [JOB_SUSPENDED] = "suspended",
	[JOB_DONE] = "done",
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
	return st != JOB_RUNNING && st != JOB_SUSPENDED && !job_state_pending(st);
}

static const char *const wait_reason_names[] = {
	[WAIT_NONE] = NULL,
	[WAIT_SLOTS] = "slots",
	[WAIT_MEMORY] = "memory",
	[WAIT_DEPENDENCY] = "dependency",
	[WAIT_FAIR_SHARE] = "fair_share",
	[WAIT_PAUSED] = "paused",
	[WAIT_SCHEDULED] = "scheduled",
	[WAIT_PRESSURE] = "pressure",
	[WAIT_QUEUE] = "queue",
	[WAIT_QUEUE_REMOVED] = "queue_removed",
	[WAIT_ARRAY] = "array",
};

const char *
wait_reason_name(enum wait_reason w)
{
	return (size_t)w < sizeof wait_reason_names / sizeof wait_reason_names[0]
		       ? wait_reason_names[w] : NULL;
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
	case POOL_HANDLER:
		return "handler";
	default:
		return NULL;
	}
}

static void count_state(struct jobs *js, struct job *j, enum job_state st, int delta);
static struct user_count *user_count(struct jobs *js, uid_t uid);

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
	js->nubuckets = 64;
	js->ubuckets = xcalloc(js->nubuckets, sizeof *js->ubuckets);
	js->nabuckets = 64;
	js->abuckets = xcalloc(js->nabuckets, sizeof *js->abuckets);
	js->next_id = 1;
	TAILQ_INIT(&js->arrays);
	TAILQ_INIT(&js->all);
	TAILQ_INIT(&js->finished);
	TAILQ_INIT(&js->running);
	TAILQ_INIT(&js->observers);
	return js;
}

void
job_kind_keys(const struct job_spec *spec, struct kind_keys *k)
{
	kind_keys(spec->name, spec->type == JOBTYPE_HANDLER ? NULL : jobtype_name(spec->type, NULL),
		  spec->type == JOBTYPE_HANDLER ? spec->handler : NULL, spec->argv, spec->cwd, k);
}

void
job_spec_free(struct job_spec *spec)
{
	strv_free(spec->argv);
	strv_free(spec->env);
	free(spec->cwd);
	free(spec->name);
	free(spec->notify);
	free(spec->handler);
	free(spec->input);
	labels_free(&spec->labels);
	free(spec->deps);
	free(spec->unique);
	free(spec->queue);
	memset(spec, 0, sizeof *spec);
}

void
job_spec_rerun(struct job_spec *dst, const struct job *j)
{
	const struct job_spec *src = &j->spec;
	size_t n = strv_len(src->env), i = 0;

	memset(dst, 0, sizeof *dst);
	dst->type = src->type;
	dst->handler = src->handler != NULL ? xstrdup(src->handler) : NULL;
	dst->argv = strv_dup(src->argv);
	if (j->array != NULL) {
		dst->env = xcalloc(n + 3, sizeof *dst->env);
		dst->env[i++] = xprintf("TASKD_ARRAY_ID=%llu", (unsigned long long)j->array->id);
		dst->env[i++] = xprintf("TASKD_ARRAY_INDEX=%lld", j->array_index);
		for (n = 0; src->env != NULL && src->env[n] != NULL; n++)
			dst->env[i++] = xstrdup(src->env[n]);
	} else {
		dst->env = strv_dup(src->env);
	}
	dst->cwd = src->cwd != NULL ? xstrdup(src->cwd) : NULL;
	dst->name = src->name != NULL ? xstrdup(src->name) : NULL;
	labels_copy(&dst->labels, &src->labels);
	dst->class = src->class;
	dst->priority = src->priority;
	dst->timeout = src->timeout;
	dst->retries = src->retries;
	dst->retry_delay = src->retry_delay;
	dst->unique = src->unique != NULL ? xstrdup(src->unique) : NULL;
	dst->queue = src->queue != NULL ? xstrdup(src->queue) : NULL;
	dst->notify = src->notify != NULL ? xstrdup(src->notify) : NULL;
	dst->slots = src->slots;
	dst->input_bytes = src->input_bytes;
	dst->limits = src->limits;
}

void
job_free(struct job *j)
{
	if (j->cl.hold != NULL)
		fatalx("job %llu: freed while the cluster holds it", (unsigned long long)j->id);
	free(j->cl.node);
	free(j->cl.from);
	/* A job of an array borrows the array's spec: only its dependencies are its own. */
	if (j->array != NULL)
		free(j->spec.deps);
	else
		job_spec_free(&j->spec);
	free(j->kinds);
	free(j->cgroup);
	free(j->progress);
	run_result_clear(&j->res);
	if (j->attempts != NULL)
		json_decref(j->attempts);
	free(j);
}

void
job_array_free(struct job_array *a)
{
	if (a == NULL)
		return;
	job_spec_free(&a->spec);
	free(a->deps);
	gate_free(a->gate);
	free(a);
}

void
jobs_free(struct jobs *js)
{
	struct job_array *a;
	struct uniq *u, *next;
	struct job *j;
	size_t i;

	if (js == NULL)
		return;
	while ((j = TAILQ_FIRST(&js->all)) != NULL) {
		TAILQ_REMOVE(&js->all, j, all);
		if (j->run != NULL)
			run_free(j->run);
		job_free(j);
	}
	while ((a = TAILQ_FIRST(&js->arrays)) != NULL) {
		TAILQ_REMOVE(&js->arrays, a, entry);
		job_array_free(a);
	}
	for (i = 0; i < js->nubuckets; i++) {
		for (u = js->ubuckets[i]; u != NULL; u = next) {
			next = u->next;
			free(u->key);
			free(u);
		}
	}
	free(js->ubuckets);
	free(js->abuckets);
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

/* ---- unique keys ---- */

static size_t
uniq_bucket(const struct jobs *js, uid_t uid, const char *key)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)uid;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 0x100000001b3ULL;
	return (size_t)(h ^ (h >> 29)) & (js->nubuckets - 1);
}

static struct uniq **
uniq_slot(struct jobs *js, uid_t uid, const char *key)
{
	struct uniq **pp = &js->ubuckets[uniq_bucket(js, uid, key)];

	while (*pp != NULL && ((*pp)->uid != uid || strcmp((*pp)->key, key) != 0))
		pp = &(*pp)->next;
	return pp;
}

static void
uniq_grow(struct jobs *js)
{
	struct uniq **old = js->ubuckets, *u, *next;
	size_t i, oldn = js->nubuckets, b;

	js->nubuckets *= 2;
	js->ubuckets = xcalloc(js->nubuckets, sizeof *js->ubuckets);
	for (i = 0; i < oldn; i++) {
		for (u = old[i]; u != NULL; u = next) {
			next = u->next;
			b = uniq_bucket(js, u->uid, u->key);
			u->next = js->ubuckets[b];
			js->ubuckets[b] = u;
		}
	}
	free(old);
}

/* The id a holder of a key answers with: its array's, or its own. */
static uint64_t
holder_id(const struct job *j)
{
	return j->array != NULL ? j->array->id : j->id;
}

/* Another job of uid still holding key, besides `but` (a rare case: see uniq_release). */
static const struct job *
other_holder(struct jobs *js, const struct job *but)
{
	const struct job *j;

	TAILQ_FOREACH(j, &js->all, all)
		if (j != but && j->uid == but->uid && !job_state_final(j->state) &&
		    j->spec.unique != NULL && strcmp(j->spec.unique, but->spec.unique) == 0)
			return j;
	return NULL;
}

/* j (with a unique key) is now pending, running or suspended: it holds its key. */
static void
uniq_hold(struct jobs *js, const struct job *j)
{
	struct uniq **pp, *u;

	if (j->spec.unique == NULL)
		return;
	pp = uniq_slot(js, j->uid, j->spec.unique);
	if ((u = *pp) == NULL) {
		if (js->nuniq + 1 > js->nubuckets) {
			uniq_grow(js);
			pp = uniq_slot(js, j->uid, j->spec.unique);
		}
		u = xcalloc(1, sizeof *u);
		u->uid = j->uid;
		u->key = xstrdup(j->spec.unique);
		u->id = holder_id(j);
		u->array = j->array != NULL;
		*pp = u;
		js->nuniq++;
	}
	u->holders++;
}

/* j no longer holds its key (it ended, or left the table unfinished). */
static void
uniq_release(struct jobs *js, const struct job *j)
{
	struct uniq **pp, *u;
	const struct job *o;

	if (j->spec.unique == NULL)
		return;
	pp = uniq_slot(js, j->uid, j->spec.unique);
	if ((u = *pp) == NULL)
		return;
	if (--u->holders == 0) {
		*pp = u->next;
		free(u->key);
		free(u);
		js->nuniq--;
		return;
	}
	/*
	 * Two holders of one key: a job retried after a restart while another
	 * took the key meanwhile. The key now answers with one still holding it.
	 */
	if (u->id == holder_id(j) && (o = other_holder(js, j)) != NULL &&
	    holder_id(o) != holder_id(j)) {
		u->id = holder_id(o);
		u->array = o->array != NULL;
	}
}

int
jobs_unique(struct jobs *js, uid_t uid, const char *key, uint64_t *id, bool *array,
	    bool *committed)
{
	struct uniq *u = *uniq_slot(js, uid, key);
	struct job_array *a;
	struct job *j;

	if (u == NULL)
		return -1;
	*id = u->id;
	*array = u->array;
	if (u->array)
		*committed = (a = jobs_array_find(js, u->id)) != NULL && a->stored;
	else
		*committed = (j = jobs_find(js, u->id)) != NULL && j->announced;
	return 0;
}

/*
 * Into the hash, the id-ordered list and the counts. Ids mostly grow (the
 * tail); a cluster's jobs may come in a little out of order: walk back.
 */
static void
insert(struct jobs *js, struct job *j)
{
	struct job *after;
	size_t b;

	j->qidx = SIZE_MAX;
	j->tidx = SIZE_MAX;
	TAILQ_INIT(&j->waiters);
	if (js->total + 1 > js->nbuckets)
		grow(js);
	b = bucket_of(js, j->id);
	j->hnext = js->buckets[b];
	js->buckets[b] = j;
	for (after = TAILQ_LAST(&js->all, job_list); after != NULL && after->id > j->id;
	     after = TAILQ_PREV(after, job_list, all))
		;
	if (after == NULL)
		TAILQ_INSERT_HEAD(&js->all, j, all);
	else
		TAILQ_INSERT_AFTER(&js->all, after, j, all);
	js->total++;
	count_state(js, j, j->state, 1);
	if (!job_state_final(j->state))
		uniq_hold(js, j);
	if (j->array != NULL)
		j->array->present++;
	/* A job of an array: only its dependencies are its own (its array counts the rest once). */
	j->job_bytes = j->array == NULL ? job_spec_bytes(&j->spec)
					: j->spec.ndeps * sizeof j->spec.deps[0];
	user_count(js, j->uid)->job_bytes += j->job_bytes;
}

struct job *
jobs_add(struct jobs *js, struct job_spec *spec, uid_t uid, gid_t gid, double now)
{
	struct job *j = job_new();

	j->id = js->next_id++;
	j->state = JOB_QUEUED;
	j->spec = *spec;
	memset(spec, 0, sizeof *spec);
	j->uid = uid;
	j->gid = gid;
	j->submitted_at = now;
	if (j->spec.slots < 1)
		j->spec.slots = 1;
	insert(js, j);
	if (js->hooks.changed != NULL)
		js->hooks.changed(j, js->hooks.arg);
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

struct job *
jobs_seek(struct jobs *js, uint64_t id)
{
	struct job *j = jobs_find(js, id), *last = jobs_last(js);

	/* Usually the job a page stopped at is still there. */
	if (j != NULL)
		return j;
	if (last == NULL || id > last->id)
		return NULL;
	/* Gone (pruned, cleaned): walk back from the newest, where pages mostly are. */
	for (j = last; TAILQ_PREV(j, job_list, all) != NULL &&
		       TAILQ_PREV(j, job_list, all)->id >= id;
	     j = TAILQ_PREV(j, job_list, all))
		;
	return j;
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
	memset(&js->users[js->nusers], 0, sizeof js->users[0]);
	js->users[js->nusers].uid = uid;
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

struct job *
jobs_first_running(struct jobs *js)
{
	return TAILQ_FIRST(&js->running);
}

static void
count_state(struct jobs *js, struct job *j, enum job_state st, int delta)
{
	js->counts[st] += (size_t)delta;
	if (j->array != NULL)
		j->array->counts[st] += (size_t)delta;
	if (job_state_pending(st))
		user_count(js, j->uid)->queued += (size_t)delta;
	if (st == JOB_RUNNING && delta > 0)
		TAILQ_INSERT_TAIL(&js->running, j, running);
	else if (st == JOB_RUNNING)
		TAILQ_REMOVE(&js->running, j, running);
}

static uint64_t
strv_bytes(char *const *v)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		n += strlen(v[i]) + 1;
	return n;
}

uint64_t
job_spec_bytes(const struct job_spec *spec)
{
	uint64_t n = strv_bytes(spec->argv) + strv_bytes(spec->env);
	size_t i;

	n += spec->cwd != NULL ? strlen(spec->cwd) + 1 : 0;
	n += spec->name != NULL ? strlen(spec->name) + 1 : 0;
	n += spec->handler != NULL ? strlen(spec->handler) + 1 : 0;
	n += spec->unique != NULL ? strlen(spec->unique) + 1 : 0;
	n += spec->queue != NULL ? strlen(spec->queue) + 1 : 0;
	n += spec->input_bytes;
	for (i = 0; i < spec->labels.n; i++)
		n += strlen(spec->labels.v[i].key) + strlen(spec->labels.v[i].value) + 2;
	return n + spec->ndeps * sizeof spec->deps[0];
}

void
jobs_user_bytes(struct jobs *js, uid_t uid, uint64_t *job_bytes, uint64_t *output_bytes)
{
	size_t i;

	*job_bytes = *output_bytes = 0;
	for (i = 0; i < js->nusers; i++) {
		if (js->users[i].uid == uid) {
			*job_bytes = js->users[i].job_bytes;
			*output_bytes = js->users[i].output_bytes;
			return;
		}
	}
}

void
jobs_set_output_bytes(struct jobs *js, struct job *j, uint64_t n)
{
	struct user_count *u = user_count(js, j->uid);

	u->output_bytes = u->output_bytes - j->output_bytes + n;
	j->output_bytes = n;
}

void
jobs_set_env(struct jobs *js, struct job *j, char **env)
{
	struct user_count *u = user_count(js, j->uid);

	strv_free(j->spec.env);
	j->spec.env = env;
	u->job_bytes -= j->job_bytes;
	j->job_bytes = job_spec_bytes(&j->spec);
	u->job_bytes += j->job_bytes;
}

void
jobs_drop_env(struct jobs *js, struct job *j)
{
	jobs_set_env(js, j, NULL);
}

void
job_set_state(struct jobs *js, struct job *j, enum job_state st)
{
	enum job_state prev = j->state;

	count_state(js, j, j->state, -1);
	count_state(js, j, st, 1);
	j->state = st;
	if (job_state_final(prev) && !job_state_final(st))
		uniq_hold(js, j);
	else if (!job_state_final(prev) && job_state_final(st))
		uniq_release(js, j);
	if (js->hooks.changed != NULL)
		js->hooks.changed(j, js->hooks.arg);
	notify(js, j, (int)prev);
}

void
jobs_touch(struct jobs *js, struct job *j)
{
	if (js->hooks.changed != NULL)
		js->hooks.changed(j, js->hooks.arg);
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
jobs_set_hooks(struct jobs *js, const struct jobs_hooks *h)
{
	if (h != NULL)
		js->hooks = *h;
	else
		memset(&js->hooks, 0, sizeof js->hooks);
}

/*
 * Out of the hash, the list and the counts; the last job of an array takes
 * the array with it (after the hook, when told: hooks).
 */
static void
jobs_remove(struct jobs *js, struct job *j, bool hooks)
{
	struct job **pp = &js->buckets[bucket_of(js, j->id)];
	struct job_array *a = j->array;

	while (*pp != j)
		pp = &(*pp)->hnext;
	*pp = j->hnext;
	TAILQ_REMOVE(&js->all, j, all);
	count_state(js, j, j->state, -1);
	if (!job_state_final(j->state))
		uniq_release(js, j);
	js->total--;
	/* Its record and its output files go with it (output_remove, the store's delete). */
	jobs_set_output_bytes(js, j, 0);
	user_count(js, j->uid)->job_bytes -= j->job_bytes;
	j->job_bytes = 0;
	if (a != NULL && --a->present == 0) {
		if (hooks && js->hooks.array_removed != NULL)
			js->hooks.array_removed(a, js->hooks.arg);
		jobs_array_drop(js, a);
	}
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
		if (js->hooks.removed != NULL)
			js->hooks.removed(old, js->hooks.arg);
		jobs_remove(js, old, true);
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
	if (js->hooks.removed != NULL)
		js->hooks.removed(j, js->hooks.arg);
	jobs_remove(js, j, true);
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

/* A handler's result is JSON; a built-in's is text. */
static json_t *
result_json(const struct run_result *r)
{
	json_t *v;

	if (r->result == NULL)
		return json_null();
	if (r->result_json &&
	    (v = json_loads(r->result, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)) != NULL)
		return v;
	return json_string(r->result);
}

/* The last progress message while it runs: a handler's (kept in the job), a module job's (in its run). */
static json_t *
progress_json(const struct job *j)
{
	json_t *v;
	char *p;

	if (j->progress != NULL)
		return json_string(j->progress);
	if (j->state != JOB_RUNNING || j->run == NULL || (p = run_progress(j->run)) == NULL)
		return json_null();
	v = json_string(p); /* UTF-8: modrun.c made it so */
	free(p);
	return v != NULL ? v : json_null();
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
	json_object_set_new(o, "result", result_json(r));
	json_object_set_new(o, "error", job_error_json(r->error));
	json_object_set_new(o, "stdout_bytes", ran ? json_integer((json_int_t)r->out_bytes)
						   : json_null());
	json_object_set_new(o, "stderr_bytes", ran ? json_integer((json_int_t)r->err_bytes)
						   : json_null());
	json_object_set_new(o, "stdout_truncated", json_boolean(r->out_truncated));
	json_object_set_new(o, "stderr_truncated", json_boolean(r->err_truncated));
}

bool
job_has_output(const struct job *j)
{
	return jobtype_has_output(j->spec.type) && j->started_at > 0;
}

json_t *
job_error_json(const char *error)
{
	return error != NULL ? string_cut(error, JOB_ERROR_SHOWN) : json_null();
}

/* Earlier attempts' outcomes (life.c), their errors as shown. */
static json_t *
attempts_json(const json_t *attempts)
{
	json_t *a = attempts != NULL ? json_deep_copy(attempts) : json_array(), *o, *e;
	size_t i;

	json_array_foreach(a, i, o) {
		e = json_object_get(o, "error");
		if (json_is_string(e) && json_string_length(e) > JOB_ERROR_SHOWN)
			json_object_set_new(o, "error", job_error_json(json_string_value(e)));
	}
	return a;
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
	json_object_set_new(o, "attempts", attempts_json(j->attempts));
}

/* What issue 16 added: unique key, re-runs, queue, slots, input, arrays, suspension. */
static void
add_workflow(json_t *o, const struct job *j)
{
	const struct job_spec *s = &j->spec;
	double susp = j->suspended_for;

	if (j->state == JOB_SUSPENDED && j->suspended_at > 0)
		susp += now_unix() - j->suspended_at;
	json_object_set_new(o, "unique", string_or_null(s->unique));
	json_object_set_new(o, "queue", string_or_null(s->queue));
	json_object_set_new(o, "slots", json_integer(s->slots));
	json_object_set_new(o, "input_bytes", s->input_bytes > 0
						      ? json_integer((json_int_t)s->input_bytes)
						      : json_null());
	json_object_set_new(o, "restarted_from", j->restarted_from > 0
							 ? json_integer((json_int_t)j->restarted_from)
							 : json_null());
	json_object_set_new(o, "array", j->array != NULL ? json_integer((json_int_t)j->array->id)
							 : json_null());
	json_object_set_new(o, "array_index", j->array != NULL ? json_integer(j->array_index)
							       : json_null());
	json_object_set_new(o, "suspended_at", j->state == JOB_SUSPENDED
						       ? time_or_null(j->suspended_at) : json_null());
	json_object_set_new(o, "suspended_for", json_real(susp > 0 ? susp : 0));
}

static void (*json_hook)(const struct job *, json_t *, void *);
static void *json_hook_arg;

void
job_set_json_hook(void (*fn)(const struct job *j, json_t *o, void *arg), void *arg)
{
	json_hook = fn;
	json_hook_arg = arg;
}

bool
job_elsewhere(const struct job *j)
{
	return j->cl.member && j->cl.hold == NULL;
}

json_t *
job_to_json(const struct job *j)
{
	json_t *o = json_object();
	const char *pool = job_pool_name(j->pool);
	int pid;

	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "state", json_string(job_state_name(j->state)));
	json_object_set_new(o, "type", json_string(jobtype_name(j->spec.type, j->spec.handler)));
	json_object_set_new(o, "class", json_string(config_class_name(j->spec.class)));
	json_object_set_new(o, "routed", pool != NULL ? json_string(config_class_name(j->routed))
						      : json_null());
	json_object_set_new(o, "pool", string_or_null(pool));
	json_object_set_new(o, "worker", j->worker >= 0 ? json_integer(j->worker) : json_null());
	json_object_set_new(o, "name", string_or_null(j->spec.name));
	json_object_set_new(o, "labels", labels_to_json(&j->spec.labels));
	json_object_set_new(o, "argv", strv_to_json(j->spec.argv));
	json_object_set_new(o, "cwd", string_or_null(j->spec.cwd));
	json_object_set_new(o, "notify", string_or_null(j->spec.notify));
	json_object_set_new(o, "priority", json_integer(j->spec.priority));
	json_object_set_new(o, "timeout", json_real(j->spec.timeout));
	json_object_set_new(o, "owner", json_pack("{s:I,s:I}", "uid", (json_int_t)j->uid,
						  "gid", (json_int_t)j->gid));
	pid = j->run != NULL ? atomic_load(&j->run->live_pid) : (int)j->res.pid;
	json_object_set_new(o, "pid", pid > 0 ? json_integer(pid) : json_null());
	add_result(o, j);
	/* Types that may report progress: handlers and modules (the built-in types do not). */
	if (j->spec.type == JOBTYPE_HANDLER ||
	    (j->spec.type != BUILTIN_EXEC && !module_builtin(j->spec.type)))
		json_object_set_new(o, "progress", progress_json(j));
	add_lifecycle(o, j);
	json_object_set_new(o, "submitted_at", time_or_null(j->submitted_at));
	json_object_set_new(o, "started_at", time_or_null(j->started_at));
	json_object_set_new(o, "finished_at", time_or_null(j->finished_at));
	add_workflow(o, j);
	/* Cluster mode: where it ran, and whether this attempt is a redelivery (doc/cluster.md). */
	if (j->cl.member) {
		json_object_set_new(o, "node", string_or_null(j->cl.node));
		json_object_set_new(o, "redelivered", json_boolean(j->cl.redelivered));
		json_object_set_new(o, "redelivered_from", string_or_null(j->cl.from));
	}
	json_object_set_new(o, "memory", j->spec.limits.memory > 0
				 ? json_integer((json_int_t)j->spec.limits.memory) : json_null());
	json_object_set_new(o, "cpus", j->spec.limits.cpus > 0 ? json_real(j->spec.limits.cpus)
								: json_null());
	json_object_set_new(o, "pids", j->spec.limits.pids > 0
				 ? json_integer((json_int_t)j->spec.limits.pids) : json_null());
	if (json_hook != NULL)
		json_hook(j, o, json_hook_arg);
	else
		json_object_set_new(o, "wait_reason", json_null());
	return o;
}

/* ---- the job object within a budget ---- */

/* Leave out the oldest attempts until o fits; size is its size now. */
static size_t
fit_attempts(json_t *o, size_t size, size_t budget)
{
	json_t *a = json_object_get(o, "attempts");
	size_t n = 0;

	while (size > budget && json_array_size(a) > 0) {
		/* The element and its comma (or, for the last one, nothing more to save). */
		size -= json_text_size(json_array_get(a, 0)) + (json_array_size(a) > 1);
		json_array_remove(a, 0);
		n++;
	}
	if (n > 0)
		json_object_set_new(o, "attempts_omitted", json_integer((json_int_t)n));
	return json_text_size(o);
}

/* Strings longer than max bytes cut, arrays longer than keep elements shortened. */
static void
cut_value(json_t *v, size_t max, size_t keep)
{
	json_t *e;
	const char *key;
	void *tmp;
	size_t i;

	if (json_is_array(v)) {
		while (json_array_size(v) > keep)
			json_array_remove(v, json_array_size(v) - 1);
		json_array_foreach(v, i, e) {
			if (json_is_string(e) && json_string_length(e) > max)
				json_array_set_new(v, i, string_cut(json_string_value(e), max));
			else
				cut_value(e, max, keep);
		}
	} else if (json_is_object(v)) {
		json_object_foreach_safe(v, tmp, key, e) {
			if (json_is_string(e) && json_string_length(e) > max)
				json_object_set_new(v, key, string_cut(json_string_value(e), max));
			else
				cut_value(e, max, keep);
		}
	}
}

void
job_json_fit(json_t *o, size_t budget)
{
	static const char *const cuttable[] = {"argv", "cwd", "name", "labels", "after",
					       "after_any", "result", "error"};
	size_t size = json_text_size(o), max, keep, i;
	json_t *v;

	if (size <= budget)
		return;
	size = fit_attempts(o, size, budget);
	/* Still too big: its description is (limits.max_frame was lowered since its submit). */
	for (max = 4096, keep = 1024; size > budget && max >= 16; max /= 2, keep /= 2) {
		for (i = 0; i < sizeof cuttable / sizeof cuttable[0]; i++) {
			v = json_object_get(o, cuttable[i]);
			if (json_is_string(v) && json_string_length(v) > max)
				json_object_set_new(o, cuttable[i],
						    string_cut(json_string_value(v), max));
			else
				cut_value(v, max, keep);
		}
		json_object_set_new(o, "cut", json_true());
		size = json_text_size(o);
	}
}

json_t *
job_to_json_fit(const struct job *j, size_t budget)
{
	json_t *o = job_to_json(j);

	job_json_fit(o, budget);
	return o;
}

size_t
job_spec_shown_bytes(const struct job_spec *spec)
{
	size_t n = JOB_OBJECT_RESERVE, i;

	for (i = 0; spec->argv != NULL && spec->argv[i] != NULL; i++)
		n += string_text_size(spec->argv[i]) + 1;
	n += spec->cwd != NULL ? string_text_size(spec->cwd) : 0;
	n += spec->name != NULL ? string_text_size(spec->name) : 0;
	n += spec->unique != NULL ? string_text_size(spec->unique) : 0;
	n += spec->queue != NULL ? string_text_size(spec->queue) : 0;
	for (i = 0; i < spec->labels.n; i++)
		n += string_text_size(spec->labels.v[i].key) +
		     string_text_size(spec->labels.v[i].value) + 2;
	/* An id in "after" or "after_any": up to 20 digits and a comma. */
	return n + spec->ndeps * 21;
}

/* ---- restored jobs (record.c decodes them) ---- */

struct job *
job_new(void)
{
	struct job *j = xcalloc(1, sizeof *j);

	j->worker = -1;
	run_result_clear(&j->res);
	j->attempt = 1;
	j->spec.slots = 1;
	return j;
}

int
jobs_restore(struct jobs *js, struct job *j, char **cause)
{
	enum job_state st = j->state;
	struct kind_keys k;

	if (jobs_find(js, j->id) != NULL) {
		xasprintf(cause, "job %llu: stored twice", (unsigned long long)j->id);
		return -1;
	}
	/* Its kind keys are not stored: they are a function of its description. */
	job_kind_keys(&j->spec, &k);
	free(j->kinds);
	j->kinds = kind_keys_pack(&k);
	j->state = JOB_QUEUED;
	j->admitted = true; /* stored: life.c may move it on */
	insert(js, j);
	if (j->id >= js->next_id)
		js->next_id = j->id + 1;
	if (st != JOB_QUEUED)
		job_set_state(js, j, st);
	j->announced = true; /* stored long ago */
	j->output_written = true; /* by a run of an earlier taskd, maybe */
	if (job_state_final(st)) {
		/* Restored in id order: the oldest finished are pruned first. */
		TAILQ_INSERT_TAIL(&js->finished, j, finished);
		js->nfinished++;
	}
	return 0;
}

int
jobs_insert(struct jobs *js, struct job *j)
{
	enum job_state st = j->state;

	if (jobs_find(js, j->id) != NULL)
		return -1;
	j->cl.member = true;
	j->state = JOB_QUEUED;
	insert(js, j);
	if (j->id >= js->next_id)
		js->next_id = j->id + 1;
	if (st != JOB_QUEUED)
		job_set_state(js, j, st);
	if (job_state_final(st)) {
		TAILQ_INSERT_TAIL(&js->finished, j, finished);
		js->nfinished++;
	}
	jobs_announce(js, j);
	return 0;
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
	/* Never stored: an array that goes with it was not either (no hook). */
	jobs_remove(js, j, false);
	job_free(j);
}

void
jobs_set_next_id(struct jobs *js, uint64_t next)
{
	if (next > js->next_id)
		js->next_id = next;
}

/* ---- arrays ---- */

static size_t
array_bucket(const struct jobs *js, uint64_t id)
{
	return (size_t)((id * 0x9E3779B97F4A7C15ULL) >> 20) & (js->nabuckets - 1);
}

static void
array_grow(struct jobs *js)
{
	struct job_array *a;
	size_t b;

	free(js->abuckets);
	js->nabuckets *= 2;
	js->abuckets = xcalloc(js->nabuckets, sizeof *js->abuckets);
	TAILQ_FOREACH(a, &js->arrays, entry) {
		b = array_bucket(js, a->id);
		a->hnext = js->abuckets[b];
		js->abuckets[b] = a;
	}
}

/* Into the hash and the id-ordered list (arrays come in id order). */
static void
array_insert(struct jobs *js, struct job_array *a)
{
	size_t b;

	TAILQ_INSERT_TAIL(&js->arrays, a, entry);
	js->narrays++;
	/* Its description, shared by its jobs, is counted for its owner once. */
	a->job_bytes = job_spec_bytes(&a->spec);
	user_count(js, a->uid)->job_bytes += a->job_bytes;
	if (js->narrays > js->nabuckets) {
		array_grow(js);
		return;
	}
	b = array_bucket(js, a->id);
	a->hnext = js->abuckets[b];
	js->abuckets[b] = a;
}

struct job_array *
jobs_array_find(struct jobs *js, uint64_t id)
{
	struct job_array *a;

	for (a = js->abuckets[array_bucket(js, id)]; a != NULL; a = a->hnext)
		if (a->id == id)
			return a;
	return NULL;
}

struct job_array *
jobs_arrays_first(struct jobs *js)
{
	return TAILQ_FIRST(&js->arrays);
}

void
jobs_array_drop(struct jobs *js, struct job_array *a)
{
	struct job_array **pp = &js->abuckets[array_bucket(js, a->id)];

	while (*pp != NULL && *pp != a)
		pp = &(*pp)->hnext;
	if (*pp == a)
		*pp = a->hnext;
	TAILQ_REMOVE(&js->arrays, a, entry);
	js->narrays--;
	user_count(js, a->uid)->job_bytes -= a->job_bytes;
	job_array_free(a);
}

struct job_array *
jobs_array_new(struct jobs *js, struct job_spec *spec, uid_t uid, gid_t gid, double now,
	       uint64_t count, long long start, long long step, int max)
{
	struct job_array *a = xcalloc(1, sizeof *a);

	a->id = js->next_id;
	a->count = count;
	a->start = start;
	a->step = step;
	a->max = max;
	a->spec = *spec;
	memset(spec, 0, sizeof *spec);
	/* Each job gets a copy of the dependencies (they hold its waiters). */
	a->deps = a->spec.deps;
	a->ndeps = a->spec.ndeps;
	a->spec.deps = NULL;
	a->spec.ndeps = 0;
	if (a->spec.slots < 1)
		a->spec.slots = 1;
	a->uid = uid;
	a->gid = gid;
	a->submitted_at = now;
	a->first_state = JOB_QUEUED;
	array_insert(js, a);
	return a;
}

void
job_array_join(struct job *j, struct job_array *a)
{
	struct job_dep *deps = j->spec.deps;
	size_t ndeps = j->spec.ndeps;
	int priority = j->spec.priority;

	/* What a stored row of a job of an array holds of its spec: priority, dependencies. */
	j->spec.deps = NULL;
	j->spec.ndeps = 0;
	job_spec_free(&j->spec);
	j->spec = a->spec;
	j->spec.deps = deps;
	j->spec.ndeps = ndeps;
	j->spec.priority = priority;
	j->array = a;
	j->array_index = a->start + (long long)(j->id - a->id) * a->step;
	j->uid = a->uid;
	j->gid = a->gid;
}

/* Job k of a as submitted: its spec borrowed, its own copy of the dependencies. */
static struct job *
member_new(struct job_array *a, uint64_t k)
{
	struct job *j = job_new();
	size_t i;

	j->id = a->id + k;
	j->array = a;
	j->array_index = a->start + (long long)k * a->step;
	j->spec = a->spec;
	if (a->ndeps > 0) {
		j->spec.deps = xcalloc(a->ndeps, sizeof *j->spec.deps);
		for (i = 0; i < a->ndeps; i++) {
			j->spec.deps[i].id = a->deps[i].id;
			j->spec.deps[i].any = a->deps[i].any;
			j->spec.deps[i].state = a->deps[i].state;
		}
		j->spec.ndeps = a->ndeps;
	}
	j->uid = a->uid;
	j->gid = a->gid;
	j->submitted_at = a->submitted_at;
	return j;
}

struct job *
jobs_add_member(struct jobs *js, struct job_array *a, uint64_t k)
{
	struct job *j = member_new(a, k);

	j->state = JOB_QUEUED;
	js->next_id = j->id + 1;
	insert(js, j);
	if (js->hooks.changed != NULL)
		js->hooks.changed(j, js->hooks.arg);
	return j;
}

int
jobs_restore_array(struct jobs *js, struct job_array *a, char **cause)
{
	struct job_array *last = TAILQ_LAST(&js->arrays, job_array_list);

	if (jobs_array_find(js, a->id) != NULL ||
	    (last != NULL && last->id + last->count > a->id)) {
		xasprintf(cause, "array %llu: stored twice, or over another array's jobs",
			  (unsigned long long)a->id);
		return -1;
	}
	a->stored = true;
	array_insert(js, a);
	if (a->id + a->count > js->next_id)
		js->next_id = a->id + a->count;
	return 0;
}

struct job *
jobs_restore_member(struct jobs *js, struct job_array *a, uint64_t k)
{
	struct job *j = member_new(a, k);
	char *cause = NULL;

	j->state = a->first_state;
	if (j->state == JOB_SCHEDULED)
		j->due_at = a->spec.run_at;
	if (jobs_restore(js, j, &cause) == -1)
		fatalx("%s", cause); /* the caller restores in id order: never twice */
	return j;
}

uint64_t
job_input_owner(const struct job *j)
{
	return j->array != NULL ? j->array->id : j->id;
}

json_t *
job_array_to_json(const struct job_array *a)
{
	const struct job_spec *s = &a->spec;
	json_t *o = json_object(), *states = json_object(), *after = json_array(),
	       *any = json_array();
	size_t i;
	int st;

	for (st = 0; st < JOB_NSTATES; st++)
		json_object_set_new(states, job_state_name(st), json_integer((json_int_t)a->counts[st]));
	for (i = 0; i < a->ndeps; i++)
		json_array_append_new(a->deps[i].any ? any : after,
				      json_integer((json_int_t)a->deps[i].id));
	json_object_set_new(o, "array", json_integer((json_int_t)a->id));
	json_object_set_new(o, "first", json_integer((json_int_t)a->id));
	json_object_set_new(o, "last", json_integer((json_int_t)(a->id + a->count - 1)));
	json_object_set_new(o, "count", json_integer((json_int_t)a->count));
	json_object_set_new(o, "start", json_integer(a->start));
	json_object_set_new(o, "end", json_integer(a->start + (long long)(a->count - 1) * a->step));
	json_object_set_new(o, "step", json_integer(a->step));
	json_object_set_new(o, "max", a->max > 0 ? json_integer(a->max) : json_null());
	json_object_set_new(o, "states", states);
	json_object_set_new(o, "removed", json_integer((json_int_t)(a->count - a->present)));
	json_object_set_new(o, "type", json_string(jobtype_name(s->type, s->handler)));
	json_object_set_new(o, "class", json_string(config_class_name(s->class)));
	json_object_set_new(o, "name", string_or_null(s->name));
	json_object_set_new(o, "labels", labels_to_json(&s->labels));
	json_object_set_new(o, "argv", strv_to_json(s->argv));
	json_object_set_new(o, "cwd", string_or_null(s->cwd));
	json_object_set_new(o, "priority", json_integer(s->priority));
	json_object_set_new(o, "timeout", json_real(s->timeout));
	json_object_set_new(o, "queue", string_or_null(s->queue));
	json_object_set_new(o, "unique", string_or_null(s->unique));
	json_object_set_new(o, "slots", json_integer(s->slots));
	json_object_set_new(o, "input_bytes", s->input_bytes > 0
						      ? json_integer((json_int_t)s->input_bytes)
						      : json_null());
	json_object_set_new(o, "retries", json_integer(s->retries));
	json_object_set_new(o, "after", after);
	json_object_set_new(o, "after_any", any);
	json_object_set_new(o, "run_at", time_or_null(s->run_at));
	json_object_set_new(o, "owner", json_pack("{s:I,s:I}", "uid", (json_int_t)a->uid, "gid",
						  (json_int_t)a->gid));
	json_object_set_new(o, "submitted_at", time_or_null(a->submitted_at));
	return o;
}
