/*
 * The queues' data structures (sched.h): a binary heap of jobs by
 * priority, fair-share turn and submission order (O(log n) push, pop and
 * remove), and the fair-share turns themselves. Pure: the scheduler
 * (sched.c) owns the queues and decides what goes where.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sched.h"
#include "xmalloc.h"

struct jobq {
	struct job **heap;
	size_t len;
	size_t cap;
};

/* ---- the heap ---- */

struct jobq *
jobq_new(void)
{
	return xcalloc(1, sizeof(struct jobq));
}

void
jobq_free(struct jobq *q)
{
	if (q == NULL)
		return;
	free(q->heap);
	free(q);
}

static int
before(const struct job *a, const struct job *b)
{
	if (a->spec.priority != b->spec.priority)
		return a->spec.priority < b->spec.priority;
	if (a->vt != b->vt)
		return a->vt < b->vt;
	return a->seq < b->seq;
}

static void
place(struct jobq *q, size_t i, struct job *j)
{
	q->heap[i] = j;
	j->qidx = i;
}

static void
sift_up(struct jobq *q, size_t i)
{
	struct job *j = q->heap[i];

	while (i > 0 && before(j, q->heap[(i - 1) / 2])) {
		place(q, i, q->heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	place(q, i, j);
}

static void
sift_down(struct jobq *q, size_t i)
{
	struct job *j = q->heap[i];
	size_t c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= q->len)
			break;
		if (c + 1 < q->len && before(q->heap[c + 1], q->heap[c]))
			c++;
		if (!before(q->heap[c], j))
			break;
		place(q, i, q->heap[c]);
		i = c;
	}
	place(q, i, j);
}

void
jobq_push(struct jobq *q, struct job *j)
{
	if (q->len == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 64;
		q->heap = xreallocarray(q->heap, q->cap, sizeof *q->heap);
	}
	q->heap[q->len++] = j;
	sift_up(q, q->len - 1);
}

struct job *
jobq_peek(const struct jobq *q)
{
	return q->len > 0 ? q->heap[0] : NULL;
}

void
jobq_remove(struct jobq *q, struct job *j)
{
	size_t i = j->qidx;
	struct job *last;

	if (i >= q->len || q->heap[i] != j)
		return;
	j->qidx = SIZE_MAX;
	last = q->heap[--q->len];
	if (i == q->len)
		return;
	place(q, i, last);
	if (i > 0 && before(last, q->heap[(i - 1) / 2]))
		sift_up(q, i);
	else
		sift_down(q, i);
}

struct job *
jobq_pop(struct jobq *q)
{
	struct job *j = jobq_peek(q);

	if (j != NULL)
		jobq_remove(q, j);
	return j;
}

struct job *
jobq_at(const struct jobq *q, size_t i)
{
	return i < q->len ? q->heap[i] : NULL;
}

size_t
jobq_len(const struct jobq *q)
{
	return q->len;
}

/* ---- fair share ---- */

static size_t
level(int priority)
{
	return (size_t)(priority - TASKD_PRIORITY_MIN);
}

uint64_t
sched_fair_stamp(struct sched_fair *f, uid_t uid, int priority)
{
	struct sched_fair_user *u = NULL;
	size_t i, lv = level(priority);
	uint64_t vt;

	for (i = 0; i < f->nusers && u == NULL; i++)
		if (f->users[i].uid == uid)
			u = &f->users[i];
	if (u == NULL) {
		f->users = xreallocarray(f->users, f->nusers + 1, sizeof *f->users);
		u = &f->users[f->nusers++];
		memset(u, 0, sizeof *u);
		u->uid = uid;
	}
	vt = (u->last[lv] > f->clock[lv] ? u->last[lv] : f->clock[lv]) + 1;
	u->last[lv] = vt;
	if (vt > f->top[lv])
		f->top[lv] = vt;
	return vt;
}

uint64_t
sched_fair_fifo(const struct sched_fair *f, int priority)
{
	return f->top[level(priority)];
}

void
sched_fair_started(struct sched_fair *f, const struct job *j)
{
	size_t lv = level(j->spec.priority);

	if (j->vt > f->clock[lv])
		f->clock[lv] = j->vt;
}

void
sched_fair_free(struct sched_fair *f)
{
	free(f->users);
	memset(f, 0, sizeof *f);
}
