/*
 * Unique keys (--unique, job.h jobs_unique): which pending, running or
 * suspended job of a user holds a key, kept up to date as jobs enter the
 * table, change state and leave it (job.c calls jobs_uniq_hold and
 * jobs_uniq_release). Loop thread only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "job-private.h"
#include "xmalloc.h"

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

/* Another job of uid still holding key, besides `but` (a rare case: see jobs_uniq_release). */
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
void
jobs_uniq_hold(struct jobs *js, const struct job *j)
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
void
jobs_uniq_release(struct jobs *js, const struct job *j)
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
