#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "job.h"
#include "log.h"
#include "persist.h"
#include "store.h"
#include "xmalloc.h"

static const struct timeval retry_delay = { 1, 0 };

struct waiter {
	void (*cb)(bool ok, const char *cause, void *arg);
	void *arg;
};

struct persist {
	struct store *store;
	struct jobs *jobs;
	struct event *commit_ev;
	struct event *retry_ev;  /* after a failed commit */
	uint64_t *dirty;        /* ids to write (duplicates are harmless) */
	size_t ndirty, capdirty;
	uint64_t *gone;         /* ids to delete */
	size_t ngone, capgone;
	struct waiter *waiters; /* after-commit callbacks */
	size_t nwaiters, capwaiters;
	bool recovering;
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
schedule(struct persist *p)
{
	/* Active now, run once this loop iteration's callbacks are done. */
	if (!event_pending(p->commit_ev, EV_TIMEOUT, NULL))
		event_active(p->commit_ev, EV_TIMEOUT, 0);
}

static void
changed_cb(struct job *j, void *arg)
{
	struct persist *p = arg;

	if (p->recovering)
		return;
	push_id(&p->dirty, &p->ndirty, &p->capdirty, j->id);
	schedule(p);
}

static void
removed_cb(uint64_t id, void *arg)
{
	struct persist *p = arg;

	push_id(&p->gone, &p->ngone, &p->capgone, id);
	schedule(p);
}

/* Write every dirty job and delete every pruned one, in one transaction. */
static int
commit(struct persist *p, char **cause)
{
	struct job *j;
	char *rec;
	size_t i;
	int rc = 0;

	if (store_begin(p->store, cause) == -1)
		return -1;
	for (i = 0; i < p->ndirty && rc == 0; i++) {
		if ((j = jobs_find(p->jobs, p->dirty[i])) == NULL)
			continue; /* pruned since: its delete follows */
		rec = job_record(j);
		rc = store_put(p->store, j->id, job_state_name(j->state), rec, cause);
		free(rec);
	}
	for (i = 0; i < p->ngone && rc == 0; i++)
		rc = store_delete(p->store, p->gone[i], cause);
	if (rc == -1) {
		store_rollback(p->store);
		return -1;
	}
	return store_commit(p->store, cause);
}

static void
persist_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct persist *p = arg;
	struct waiter *w;
	char *cause = NULL;
	size_t i, n;
	bool ok;

	if (p->ndirty == 0 && p->ngone == 0 && p->nwaiters == 0)
		return;
	ok = commit(p, &cause) == 0;
	if (ok) {
		p->ndirty = p->ngone = 0;
	} else {
		/* Keep the changes (jobs of refused submits are gone by then) and try again. */
		log_warnx("storage: %s (retrying in 1 s)", cause);
		evtimer_add(p->retry_ev, &retry_delay);
	}
	/* Callbacks may dirty jobs (e.g. a job queued and started): that is the next commit. */
	w = p->waiters;
	n = p->nwaiters;
	p->waiters = NULL;
	p->nwaiters = p->capwaiters = 0;
	for (i = 0; i < n; i++)
		w[i].cb(ok, cause, w[i].arg);
	free(w);
	free(cause);
}

struct persist *
persist_new(struct event_base *base, struct store *st, struct jobs *js)
{
	struct persist *p = xcalloc(1, sizeof *p);

	p->store = st;
	p->jobs = js;
	p->commit_ev = event_new(base, -1, 0, persist_commit_cb, p);
	p->retry_ev = evtimer_new(base, persist_commit_cb, p);
	if (p->commit_ev == NULL || p->retry_ev == NULL)
		fatalx("cannot create the commit event");
	jobs_set_hooks(js, changed_cb, removed_cb, p);
	return p;
}

void
persist_after_commit(struct persist *p, void (*cb)(bool, const char *, void *), void *arg)
{
	if (p->nwaiters == p->capwaiters) {
		p->capwaiters = p->capwaiters ? p->capwaiters * 2 : 64;
		p->waiters = xreallocarray(p->waiters, p->capwaiters, sizeof *p->waiters);
	}
	p->waiters[p->nwaiters].cb = cb;
	p->waiters[p->nwaiters].arg = arg;
	p->nwaiters++;
	schedule(p);
}

void
persist_flush(struct persist *p)
{
	persist_commit_cb(-1, 0, p);
}

void
persist_free(struct persist *p)
{
	if (p == NULL)
		return;
	persist_flush(p);
	jobs_set_hooks(p->jobs, NULL, NULL, NULL);
	event_free(p->commit_ev);
	event_free(p->retry_ev);
	free(p->dirty);
	free(p->gone);
	free(p->waiters);
	free(p);
}

struct recovery {
	struct persist *p;
	size_t loaded, lost, bad;
	char *cause;
};

static int
load_cb(uint64_t id, const char *state, const char *record, void *arg)
{
	struct recovery *rc = arg;
	struct job *j;
	char *cause = NULL;

	j = jobs_restore(rc->p->jobs, id, state, record, &cause);
	if (j == NULL) {
		/* Refuse to start rather than silently drop a job. */
		rc->cause = cause;
		return 1;
	}
	rc->loaded++;
	return 0;
}

int
persist_recover(struct persist *p, void (*requeue)(struct job *, void *), void *arg,
		char **cause)
{
	struct recovery rc = { .p = p };
	struct job *j;

	p->recovering = true;
	if (store_load(p->store, load_cb, &rc, cause) != 0) {
		p->recovering = false;
		if (rc.cause != NULL) {
			free(*cause);
			*cause = rc.cause;
		}
		return -1;
	}
	p->recovering = false;
	jobs_set_next_id(p->jobs, store_next_id(p->store));
	for (j = jobs_first(p->jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		if (j->state == JOB_RUNNING) {
			free(j->res.error);
			j->res.error = xstrdup("taskd stopped while the job was running");
			j->finished_at = now_unix();
			/* Dirty (written at the first commit); pruning comes after recovery. */
			jobs_finish(p->jobs, j, JOB_LOST, INT_MAX, NULL, NULL);
			rc.lost++;
		} else if (j->state == JOB_QUEUED) {
			requeue(j, arg);
		}
	}
	if (rc.loaded > 0)
		log_info("recovered %zu jobs from the store (%zu were running: now lost)", rc.loaded,
			 rc.lost);
	return 0;
}
