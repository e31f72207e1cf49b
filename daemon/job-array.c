/*
 * Job arrays (`submit --array`, job.h): the arrays of the table by id (a
 * hash) and in id order, making one and its jobs, the jobs of a restored
 * array (with or without a row of their own), dropping and freeing one.
 * Loop thread only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "job.h"
#include "job-private.h"
#include "log.h"
#include "xmalloc.h"

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
	jobs_user_count(js, a->uid)->job_bytes += a->job_bytes;
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
	jobs_user_count(js, a->uid)->job_bytes -= a->job_bytes;
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
	jobs_link(js, j);
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
