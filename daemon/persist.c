#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "job.h"
#include "leftover.h"
#include "log.h"
#include "monitor.h"
#include "persist.h"
#include "record.h"
#include "store.h"
#include "xmalloc.h"

static const struct timeval retry_delay = { 1, 0 };
/*
 * Changes nobody waits for (a job started, finished, was pruned) are
 * written this long after they happen, or with the next commit somebody
 * waits for if that comes first: a job's submit, start and end then
 * usually share one transaction instead of taking three.
 */
static const struct timeval lazy_delay = { 0, 2000 };

struct waiter {
	void (*cb)(bool ok, const char *cause, void *arg);
	void *arg;
};

struct waiters {
	struct waiter *v;
	size_t n, cap;
};

struct persist {
	struct store *store;
	struct jobs *jobs;
	struct event *commit_ev;
	struct event *retry_ev; /* after a failed commit or fsync */
	struct event *sync_ev;  /* fsync_interval after the first commit not yet synced */
	struct event *lazy_ev;  /* lazy_delay after the first change nobody waits for */
	uint64_t *dirty;        /* ids to write, each once (job->persist_dirty) */
	size_t ndirty, capdirty;
	uint64_t *gone;         /* ids to delete */
	size_t ngone, capgone;
	uint64_t *removed;      /* ids of jobs of arrays removed: their RECORD_REMOVED rows */
	size_t nremoved, capremoved;
	uint64_t *arrays;       /* ids of arrays to write (job_array.persist_dirty) */
	size_t narrays, caparrays;
	struct gone_array {     /* arrays to delete with their jobs' rows */
		uint64_t id, last;
	} *gone_arrays;
	size_t ngone_arrays, capgone_arrays;
	struct meta {           /* store_meta_set/delete in the next commit (persist_meta_set) */
		char *key;
		int64_t value;
		bool del;
	} *meta;
	size_t nmeta, capmeta;
	struct waiters pending; /* after the next commit: their changes are in it */
	struct waiters syncing; /* committed, answered after the next fsync */
	enum store_fsync policy;
	double interval;        /* store.fsync_interval */
	bool unsynced;          /* a commit since the last fsync */
	bool recovering;
	char *lost;             /* the database is gone (store_check): why; nothing is stored */
};

static void
push_id(uint64_t **v, size_t *n, size_t *cap, uint64_t id)
{
	if (*n == *cap) {
		*cap = *cap ? *cap * 2 : 256;
		*v = xreallocarray(*v, *cap, sizeof **v);
	}
	(*v)[(*n)++] = id;
}

static void
push_waiter(struct waiters *ws, const struct waiter *w)
{
	if (ws->n == ws->cap) {
		ws->cap = ws->cap ? ws->cap * 2 : 64;
		ws->v = xreallocarray(ws->v, ws->cap, sizeof *ws->v);
	}
	ws->v[ws->n++] = *w;
}

/* Call and forget every waiter of ws (callbacks may add new waiters: those wait for later). */
static void
fire(struct waiters *ws, bool ok, const char *cause)
{
	struct waiters now = *ws;
	size_t i;

	memset(ws, 0, sizeof *ws);
	for (i = 0; i < now.n; i++)
		now.v[i].cb(ok, cause, now.v[i].arg);
	free(now.v);
}

/* Somebody waits for the next commit: run it once this loop iteration's callbacks are done. */
static void
schedule(struct persist *p)
{
	if (!event_pending(p->commit_ev, EV_TIMEOUT, NULL))
		event_active(p->commit_ev, EV_TIMEOUT, 0);
}

/* Nobody waits: commit within lazy_delay (sooner if a waiter comes). */
static void
schedule_lazy(struct persist *p)
{
	if (p->pending.n > 0)
		schedule(p);
	else if (!evtimer_pending(p->lazy_ev, NULL))
		evtimer_add(p->lazy_ev, &lazy_delay);
}

static void
changed_cb(struct job *j, void *arg)
{
	struct persist *p = arg;

	if (p->recovering || j->persist_dirty)
		return;
	/*
	 * A job of an array, before its submit is stored, is as the array's
	 * record says (no row of its own: job_array): 100,000 jobs, one record.
	 */
	if (j->array != NULL && !j->admitted && j->state == j->array->first_state)
		return;
	j->persist_dirty = true;
	push_id(&p->dirty, &p->ndirty, &p->capdirty, j->id);
	schedule_lazy(p);
}

static void
removed_cb(const struct job *j, void *arg)
{
	struct persist *p = arg;

	/* A job of an array leaves a mark until its array goes (record.h: RECORD_REMOVED). */
	if (j->array != NULL)
		push_id(&p->removed, &p->nremoved, &p->capremoved, j->id);
	else
		push_id(&p->gone, &p->ngone, &p->capgone, j->id);
	schedule_lazy(p);
}

static void
array_removed_cb(const struct job_array *a, void *arg)
{
	struct persist *p = arg;

	if (p->ngone_arrays == p->capgone_arrays) {
		p->capgone_arrays = p->capgone_arrays ? p->capgone_arrays * 2 : 16;
		p->gone_arrays = xreallocarray(p->gone_arrays, p->capgone_arrays,
					       sizeof *p->gone_arrays);
	}
	p->gone_arrays[p->ngone_arrays].id = a->id;
	p->gone_arrays[p->ngone_arrays++].last = a->id + a->count - 1;
	schedule_lazy(p);
}

void
persist_array(struct persist *p, struct job_array *a)
{
	if (a->persist_dirty)
		return;
	a->persist_dirty = true;
	push_id(&p->arrays, &p->narrays, &p->caparrays, a->id);
	schedule(p);
}

static void
meta_clear(struct persist *p)
{
	size_t i;

	for (i = 0; i < p->nmeta; i++)
		free(p->meta[i].key);
	p->nmeta = 0;
}

/* Nothing left to write: the lists are empty, the dirty marks cleared. */
static void
clear_all(struct persist *p)
{
	struct job_array *a;
	struct job *j;
	size_t i;

	for (i = 0; i < p->ndirty; i++)
		if ((j = jobs_find(p->jobs, p->dirty[i])) != NULL)
			j->persist_dirty = false;
	for (i = 0; i < p->narrays; i++)
		if ((a = jobs_array_find(p->jobs, p->arrays[i])) != NULL)
			a->persist_dirty = false;
	p->ndirty = p->ngone = p->nremoved = p->narrays = p->ngone_arrays = 0;
	meta_clear(p);
}

/*
 * Is the database still there? Once it is not (deleted, moved, replaced
 * while we run), the loss is latched and logged: nothing we write can be
 * read by the next start, so nothing is acknowledged any more.
 */
static bool
storage_lost(struct persist *p)
{
	char *cause = NULL;

	if (p->lost != NULL)
		return true;
	if (store_check(p->store, &cause) == 0)
		return false;
	p->lost = xprintf("%s: new jobs could not be stored, so none are accepted; "
			  "restart taskd", cause);
	free(cause);
	log_errorx("storage lost: %s", p->lost);
	return true;
}

/* The database is gone: forget what was to be written, refuse the waiters. */
static void
drop_all(struct persist *p)
{
	clear_all(p);
	p->unsynced = false;
	evtimer_del(p->lazy_ev);
	evtimer_del(p->sync_ev);
	evtimer_del(p->retry_ev);
	fire(&p->syncing, false, p->lost);
	fire(&p->pending, false, p->lost);
}

/* Write every dirty job and delete every pruned one, in one transaction. */
static int
commit(struct persist *p, char **cause)
{
	struct job_array *a;
	struct meta *m;
	struct job *j;
	double t0 = clock_now(CLOCK_MONOTONIC);
	char *rec;
	size_t i;
	int rc = 0;

	if (store_begin(p->store, cause) == -1)
		return -1;
	/* Arrays first: their jobs' rows name them. */
	for (i = 0; i < p->narrays && rc == 0; i++) {
		if ((a = jobs_array_find(p->jobs, p->arrays[i])) == NULL)
			continue; /* gone since (its submit failed) */
		rec = record_encode_array(a);
		rc = store_array_put(p->store, a->id, a->id + a->count - 1, rec, cause);
		free(rec);
	}
	for (i = 0; i < p->ndirty && rc == 0; i++) {
		if ((j = jobs_find(p->jobs, p->dirty[i])) == NULL)
			continue; /* pruned since: its delete follows */
		rec = record_encode(j);
		rc = store_put(p->store, j->id, job_state_name(j->state), rec, cause);
		free(rec);
	}
	for (i = 0; i < p->ngone && rc == 0; i++)
		rc = store_delete(p->store, p->gone[i], cause);
	for (i = 0; i < p->nremoved && rc == 0; i++)
		rc = store_put(p->store, p->removed[i], RECORD_REMOVED, record_removed(), cause);
	/* Last: an array gone takes every row of its jobs, marks of removed ones included. */
	for (i = 0; i < p->ngone_arrays && rc == 0; i++)
		rc = store_array_delete(p->store, p->gone_arrays[i].id, p->gone_arrays[i].last,
					cause);
	for (i = 0; i < p->nmeta && rc == 0; i++) {
		m = &p->meta[i];
		rc = m->del ? store_meta_delete(p->store, m->key, cause)
			    : store_meta_set(p->store, m->key, m->value, cause);
	}
	if (rc == -1) {
		store_rollback(p->store);
		return -1;
	}
	if (store_commit(p->store, cause) == -1)
		return -1;
	monitor_store_commit(clock_now(CLOCK_MONOTONIC) - t0);
	for (i = 0; i < p->narrays; i++)
		if ((a = jobs_array_find(p->jobs, p->arrays[i])) != NULL)
			a->stored = true;
	clear_all(p);
	return 0;
}

/* fsync what is committed; answer the waiters that needed it. */
static void
sync_now(struct persist *p)
{
	char *cause = NULL;
	double t0;
	int rc;

	if (!p->unsynced) {
		fire(&p->syncing, true, NULL);
		return;
	}
	t0 = clock_now(CLOCK_MONOTONIC);
	rc = store_sync(p->store, &cause);
	monitor_store_fsync(clock_now(CLOCK_MONOTONIC) - t0);
	if (rc == -1) {
		/* Committed but not yet durable: hold the answers, try again. */
		log_warnx("storage: %s (retrying in 1 s)", cause);
		free(cause);
		evtimer_add(p->retry_ev, &retry_delay);
		return;
	}
	p->unsynced = false;
	evtimer_del(p->sync_ev);
	fire(&p->syncing, true, NULL);
}

/*
 * Commit what is dirty, then either answer the pending waiters at once or,
 * when they need the disk (store.fsync = always, or force), fsync first.
 */
static void
run_commit(struct persist *p, bool force_sync)
{
	struct timeval tv;
	char *cause = NULL;
	size_t i;

	evtimer_del(p->lazy_ev); /* this commit takes every change so far */
	if (p->lost != NULL) {
		drop_all(p);
		return;
	}
	if (p->ndirty > 0 || p->ngone > 0 || p->nmeta > 0 || p->nremoved > 0 || p->narrays > 0 ||
	    p->ngone_arrays > 0) {
		if (commit(p, &cause) == -1) {
			/* Keep the changes (jobs of refused submits are gone by then) and try again. */
			log_warnx("storage: %s (retrying in 1 s)", cause);
			evtimer_add(p->retry_ev, &retry_delay);
			fire(&p->pending, false, cause);
			free(cause);
			return;
		}
		p->unsynced = true;
	}
	/* Committed to a database that is gone: acknowledge none of it. */
	if (storage_lost(p)) {
		drop_all(p);
		return;
	}
	/* The pending waiters' changes are committed (or they had none). */
	if (force_sync || p->interval <= 0 || p->syncing.n > 0 ||
	    (p->policy == FSYNC_ALWAYS && p->pending.n > 0)) {
		for (i = 0; i < p->pending.n; i++)
			push_waiter(&p->syncing, &p->pending.v[i]);
		p->pending.n = 0;
		sync_now(p);
		return;
	}
	fire(&p->pending, true, NULL);
	if (p->unsynced && !evtimer_pending(p->sync_ev, NULL)) {
		tv.tv_sec = (time_t)p->interval;
		tv.tv_usec = (suseconds_t)((p->interval - (double)tv.tv_sec) * 1e6);
		evtimer_add(p->sync_ev, &tv);
	}
}

static void
persist_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_commit(arg, false);
}

/* After a failed commit or fsync, and when fsync_interval is up: commit and fsync. */
static void
persist_sync_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	run_commit(arg, true);
}

struct persist *
persist_new(struct event_base *base, struct store *st, struct jobs *js)
{
	struct persist *p = xcalloc(1, sizeof *p);

	p->store = st;
	p->jobs = js;
	p->policy = FSYNC_ALWAYS;
	p->interval = 0;
	p->commit_ev = event_new(base, -1, 0, persist_commit_cb, p);
	p->retry_ev = evtimer_new(base, persist_sync_cb, p);
	p->sync_ev = evtimer_new(base, persist_sync_cb, p);
	p->lazy_ev = evtimer_new(base, persist_commit_cb, p);
	if (p->commit_ev == NULL || p->retry_ev == NULL || p->sync_ev == NULL ||
	    p->lazy_ev == NULL)
		fatalx("cannot create the commit events");
	jobs_set_hooks(js, &(struct jobs_hooks){ changed_cb, removed_cb, array_removed_cb, p });
	return p;
}

void
persist_configure(struct persist *p, enum store_fsync policy, double interval)
{
	p->policy = policy;
	p->interval = interval;
	if (p->unsynced) { /* re-arm with the new interval (0: sync now) */
		evtimer_del(p->sync_ev);
		run_commit(p, interval <= 0);
	}
}

void
persist_after_commit(struct persist *p, void (*cb)(bool, const char *, void *), void *arg)
{
	struct waiter w = { cb, arg };

	push_waiter(&p->pending, &w);
	schedule(p);
}

static void
meta_put(struct persist *p, const char *key, int64_t value, bool del)
{
	size_t i;

	for (i = 0; i < p->nmeta && strcmp(p->meta[i].key, key) != 0; i++)
		;
	if (i == p->nmeta) {
		if (p->nmeta == p->capmeta) {
			p->capmeta = p->capmeta ? p->capmeta * 2 : 8;
			p->meta = xreallocarray(p->meta, p->capmeta, sizeof *p->meta);
		}
		p->meta[p->nmeta++].key = xstrdup(key);
	}
	p->meta[i].value = value;
	p->meta[i].del = del;
	schedule(p);
}

void
persist_meta_set(struct persist *p, const char *key, int64_t value)
{
	meta_put(p, key, value, false);
}

void
persist_meta_delete(struct persist *p, const char *key)
{
	meta_put(p, key, 0, true);
}

#define META_PAUSED_CPU "paused_cpu"
#define META_PAUSED_IO "paused_io"

void
persist_set_paused(struct persist *p, bool cpu, bool io)
{
	persist_meta_set(p, META_PAUSED_CPU, cpu);
	persist_meta_set(p, META_PAUSED_IO, io);
}

int
persist_get_paused(struct persist *p, bool *cpu, bool *io, char **cause)
{
	int64_t v;
	int rc;

	*cpu = *io = false;
	if ((rc = store_meta_get(p->store, META_PAUSED_CPU, &v, cause)) == -1)
		return -1;
	*cpu = rc == 0 && v != 0;
	if ((rc = store_meta_get(p->store, META_PAUSED_IO, &v, cause)) == -1)
		return -1;
	*io = rc == 0 && v != 0;
	return 0;
}

#define META_QUEUE_PAUSED "queue_paused."

void
persist_set_queue_paused(struct persist *p, const char *name, bool paused)
{
	char *key = xprintf(META_QUEUE_PAUSED "%s", name);

	if (paused)
		persist_meta_set(p, key, 1);
	else
		persist_meta_delete(p, key);
	free(key);
}

struct paused_queues {
	void (*cb)(const char *, void *);
	void *arg;
};

static int
paused_queue_cb(const char *key, int64_t value, void *arg)
{
	struct paused_queues *pq = arg;

	if (value != 0)
		pq->cb(key + strlen(META_QUEUE_PAUSED), pq->arg);
	return 0;
}

int
persist_get_paused_queues(struct persist *p, void (*cb)(const char *name, void *arg), void *arg,
			  char **cause)
{
	struct paused_queues pq = { cb, arg };

	return store_meta_each(p->store, META_QUEUE_PAUSED, paused_queue_cb, &pq, cause) == -1
		       ? -1 : 0;
}

int
persist_check(struct persist *p)
{
	return storage_lost(p) ? -1 : 0;
}

const char *
persist_storage_error(const struct persist *p)
{
	return p->lost;
}

void
persist_flush(struct persist *p)
{
	run_commit(p, true);
}

void
persist_free(struct persist *p)
{
	if (p == NULL)
		return;
	persist_flush(p);
	jobs_set_hooks(p->jobs, NULL);
	meta_clear(p);
	free(p->meta);
	free(p->removed);
	free(p->arrays);
	free(p->gone_arrays);
	event_free(p->commit_ev);
	event_free(p->retry_ev);
	event_free(p->sync_ev);
	event_free(p->lazy_ev);
	free(p->dirty);
	free(p->gone);
	free(p->pending.v);
	free(p->syncing.v);
	free(p->lost);
	free(p);
}

struct recovery {
	struct persist *p;
	size_t loaded, lost;
	uint64_t *old;          /* ids of records of an older version, to write again */
	size_t nold, capold;
	int oldest;             /* the oldest record version seen */
	char *cause;
	struct job_array *cur;  /* the array whose jobs the rows are at, or the next one */
	uint64_t next_k;        /* its first job not restored yet */
};

static int
load_array_cb(uint64_t id, const char *record, void *arg)
{
	struct recovery *rc = arg;
	struct job_array *a;
	char *cause = NULL;

	if ((a = record_decode_array(id, record, &cause)) == NULL ||
	    jobs_restore_array(rc->p->jobs, a, &cause) == -1) {
		job_array_free(a);
		rc->cause = cause;
		return 1;
	}
	return 0;
}

/*
 * The jobs of arrays before id that have no row: restore them as their
 * array's record has them (rows come in id order, so none is left for them).
 */
static void
fill_until(struct recovery *rc, uint64_t id)
{
	struct job_array *a;

	while ((a = rc->cur) != NULL && a->id < id) {
		for (; rc->next_k < a->count && a->id + rc->next_k < id; rc->next_k++) {
			jobs_restore_member(rc->p->jobs, a, rc->next_k);
			rc->loaded++;
		}
		if (rc->next_k < a->count)
			return;
		rc->cur = TAILQ_NEXT(a, entry);
		rc->next_k = 0;
	}
}

/* Row id belongs to the array being restored (rc->cur): it is not to be filled in. */
static struct job_array *
row_of_array(struct recovery *rc, uint64_t id)
{
	struct job_array *a = rc->cur;

	if (a == NULL || id < a->id || id >= a->id + a->count)
		return NULL;
	rc->next_k = id - a->id + 1;
	return a;
}

static int
load_cb(uint64_t id, const char *state, const char *record, void *arg)
{
	struct recovery *rc = arg;
	struct job_array *a;
	struct job *j;
	char *cause = NULL;
	uint64_t array;
	int version;

	fill_until(rc, id);
	a = row_of_array(rc, id);
	if (strcmp(state, RECORD_REMOVED) == 0) {
		/* Removed from its array; outside any (its array went in the same commit): drop it. */
		if (a == NULL)
			push_id(&rc->p->gone, &rc->p->ngone, &rc->p->capgone, id);
		return 0;
	}
	/* Refuse to start rather than silently drop a job. */
	j = record_decode(id, state, record, &version, &array, &cause);
	if (j != NULL && array != (a != NULL ? a->id : 0)) {
		xasprintf(&cause, "job %llu: unreadable record (of array %llu, which %s)",
			  (unsigned long long)id, (unsigned long long)array,
			  array == 0 ? "it is not in" : "is not stored, or not its array");
		job_free(j);
		j = NULL;
	}
	if (j != NULL && a != NULL)
		job_array_join(j, a);
	if (j == NULL || jobs_restore(rc->p->jobs, j, &cause) == -1) {
		if (j != NULL)
			job_free(j);
		rc->cause = cause;
		return 1;
	}
	if (version < RECORD_VERSION) {
		push_id(&rc->old, &rc->nold, &rc->capold, id);
		if (version < rc->oldest)
			rc->oldest = version;
	}
	rc->loaded++;
	return 0;
}

/* Arrays none of whose jobs is left (all removed, and a crash before the delete). */
static void
drop_empty_arrays(struct persist *p)
{
	struct job_array *a, *next;

	for (a = jobs_arrays_first(p->jobs); a != NULL; a = next) {
		next = TAILQ_NEXT(a, entry);
		if (a->present > 0)
			continue;
		array_removed_cb(a, p);
		jobs_array_drop(p->jobs, a);
	}
}

/*
 * A job that was running when taskd died: lost, once what was left of it
 * is gone (lo: what leftover_reap found of it, or NULL if it had no record).
 */
static void
lose(struct persist *p, struct job *j, const struct leftover_job *lo)
{
	const char *why = "taskd stopped while the job was running";

	/* Started, but the start was not committed before taskd died. */
	if (j->state != JOB_RUNNING && lo != NULL) {
		j->started_at = lo->started_at > 0 ? lo->started_at : now_unix();
		j->res.started_at = j->started_at;
	}
	if (lo != NULL && lo->survived) {
		why = "taskd stopped while the job was running; what was left of it could not be "
		      "killed when taskd started again (not retried)";
		j->unkillable = true;
	} else if (lo != NULL && lo->killed) {
		why = "taskd stopped while the job was running; what was left of it was killed "
		      "when taskd started again";
	}
	free(j->res.error);
	j->res.error = xstrdup(why);
	/* The run's own time, from the kernel's start of its process to its kill. */
	j->res.wall = lo != NULL ? lo->ran : 0;
	j->finished_at = now_unix();
	/* Dirty (written at the first commit); pruning comes after recovery. */
	jobs_finish(p->jobs, j, JOB_LOST, INT_MAX, NULL, NULL);
}

int
persist_recover(struct persist *p, const struct leftover_job *leftovers, size_t nleftovers,
		void (*requeue)(struct job *, void *), void *arg, char **cause)
{
	struct recovery rc = { .p = p, .oldest = RECORD_VERSION };
	struct job *j;
	size_t i;
	int r;

	p->recovering = true;
	r = store_array_load(p->store, load_array_cb, &rc, cause);
	if (r == 0) {
		rc.cur = jobs_arrays_first(p->jobs);
		if ((r = store_load(p->store, load_cb, &rc, cause)) == 0)
			fill_until(&rc, UINT64_MAX);
	}
	if (r != 0) {
		p->recovering = false;
		if (rc.cause != NULL) {
			/* A job the store holds but this taskd cannot read: name the file. */
			free(*cause);
			xasprintf(cause, "%s: %s", store_path(p->store), rc.cause);
			free(rc.cause);
		}
		free(rc.old);
		return -1;
	}
	p->recovering = false;
	drop_empty_arrays(p);
	/* Migration: records of an older version are written again in the current one. */
	for (i = 0; i < rc.nold; i++)
		if ((j = jobs_find(p->jobs, rc.old[i])) != NULL)
			jobs_touch(p->jobs, j);
	if (rc.nold > 0)
		log_info("migrating %zu stored job records (oldest version %d) to record "
			 "version %d", rc.nold, rc.oldest, RECORD_VERSION);
	free(rc.old);
	jobs_set_next_id(p->jobs, store_next_id(p->store));
	for (i = 0; i < nleftovers; i++) {
		if ((j = jobs_find(p->jobs, leftovers[i].id)) == NULL)
			continue;
		if (!job_state_final(j->state)) {
			lose(p, j, &leftovers[i]);
			rc.lost++;
		} else if (leftovers[i].survived) {
			/* Lost at an earlier start, whose kill failed too: still no retry. */
			j->unkillable = true;
		}
	}
	for (j = jobs_first(p->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		/* A suspended job's processes were killed like a running one's (leftover.h). */
		if (j->state == JOB_RUNNING || j->state == JOB_SUSPENDED) {
			lose(p, j, NULL);
			rc.lost++;
		} else if (j->state == JOB_QUEUED) {
			requeue(j, arg);
		}
	}
	if (rc.loaded > 0)
		log_info("recovered %zu jobs from the store (%zu were running or suspended: now "
			 "lost)", rc.loaded, rc.lost);
	return 0;
}
