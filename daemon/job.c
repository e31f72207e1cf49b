/*
 * The job table (job.h): every job by id (a hash) and in id order, the
 * counts by state and by user, state changes with their hooks and
 * observers, finishing, pruning and deleting jobs, waiters, and the jobs
 * restored at startup or put in by the cluster. State names and the job's
 * small predicates live here too. Unique keys are in job-unique.c, arrays
 * in job-array.c, a job's description in job-spec.c, its JSON object in
 * job-json.c. Loop thread only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "job.h"
#include "job-private.h"
#include "jobtype.h"
#include "log.h"
#include "xmalloc.h"

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

bool
job_has_output(const struct job *j)
{
	return jobtype_has_output(j->spec.type) && j->started_at > 0;
}

bool
job_elsewhere(const struct job *j)
{
	return j->cl.member && j->cl.hold == NULL;
}

static void count_state(struct jobs *js, struct job *j, enum job_state st, int delta);

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

/*
 * Into the hash, the id-ordered list and the counts. Ids mostly grow (the
 * tail); a cluster's jobs may come in a little out of order: walk back.
 */
void
jobs_link(struct jobs *js, struct job *j)
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
		jobs_uniq_hold(js, j);
	if (j->array != NULL)
		j->array->present++;
	/* A job of an array: only its dependencies are its own (its array counts the rest once). */
	j->job_bytes = j->array == NULL ? job_spec_bytes(&j->spec)
					: j->spec.ndeps * sizeof j->spec.deps[0];
	jobs_user_count(js, j->uid)->job_bytes += j->job_bytes;
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
	jobs_link(js, j);
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

struct user_count *
jobs_user_count(struct jobs *js, uid_t uid)
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
		jobs_user_count(js, j->uid)->queued += (size_t)delta;
	if (st == JOB_RUNNING && delta > 0)
		TAILQ_INSERT_TAIL(&js->running, j, running);
	else if (st == JOB_RUNNING)
		TAILQ_REMOVE(&js->running, j, running);
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
	struct user_count *u = jobs_user_count(js, j->uid);

	u->output_bytes = u->output_bytes - j->output_bytes + n;
	j->output_bytes = n;
}

void
jobs_set_env(struct jobs *js, struct job *j, char **env)
{
	struct user_count *u = jobs_user_count(js, j->uid);

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
		jobs_uniq_hold(js, j);
	else if (!job_state_final(prev) && job_state_final(st))
		jobs_uniq_release(js, j);
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
		jobs_uniq_release(js, j);
	js->total--;
	/* Its record and its output files go with it (output_remove, the store's delete). */
	jobs_set_output_bytes(js, j, 0);
	jobs_user_count(js, j->uid)->job_bytes -= j->job_bytes;
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

/* ---- restored jobs (record-decode.c decodes them) ---- */

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
	jobs_link(js, j);
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
	jobs_link(js, j);
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
