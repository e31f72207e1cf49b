/*
 * The gates a queued job passes before its class queue (gate.h): its
 * array's MAX, then its named queue. Passing, leaving, taking jobs back
 * when a queue is paused, shrunk or removed by a reload; the named queues
 * as the configuration has them, their pauses, their status. Loop thread
 * only.
 *
 * The invariant the rest relies on: a gate that is open has no job waiting
 * at it (pump lets them through as soon as it opens). So when nothing runs
 * and the class queues are empty, every job still queued waits at a gate
 * that cannot open by itself: a paused queue, or one the configuration no
 * longer has.
 */
#include <stdlib.h>
#include <string.h>

#include "gate.h"
#include "job.h"
#include "log.h"
#include "sched-private.h"
#include "xmalloc.h"

/* The named queue's gate, made if needed (a queue the configuration lacks is removed). */
static struct gate *
queue_gate(struct sched *s, const char *name)
{
	const struct queue_config *qc;
	struct gate *g, **tail = &s->queues;

	for (g = s->queues; g != NULL; g = g->next) {
		if (strcmp(g->name, name) == 0)
			return g;
		tail = &g->next;
	}
	qc = config_queue(s->cfg, name);
	g = gate_new(name, qc != NULL ? qc->slots : 0);
	g->removed = qc == NULL;
	*tail = g;
	return g;
}

void
gate_attach(struct sched *s, struct job *j)
{
	struct job_array *a = j->array;

	j->ngates = 0;
	j->gates_passed = 0;
	if (a != NULL && a->max > 0) {
		if (a->gate == NULL)
			a->gate = gate_new(NULL, a->max);
		j->gates[j->ngates++] = a->gate;
	}
	if (j->spec.queue != NULL)
		j->gates[j->ngates++] = queue_gate(s, j->spec.queue);
}

struct jobq *
gate_heap(struct sched *s, struct job *j)
{
	if (j->gates_passed < j->ngates)
		return j->gates[j->gates_passed]->waiting;
	return sched_queue_of(s, j);
}

static void pump(struct sched *s, struct gate *g);

void
gate_enter(struct sched *s, struct job *j)
{
	struct gate *g;

	while (j->gates_passed < j->ngates) {
		g = j->gates[j->gates_passed];
		if (!gate_open(g)) {
			jobq_push(g->waiting, j);
			s->gated++;
			return;
		}
		g->held++;
		j->gates_passed++;
	}
	jobq_push(sched_queue_of(s, j), j);
}

/* Let jobs through g while it is open. */
static void
pump(struct sched *s, struct gate *g)
{
	struct job *j;

	while (gate_open(g) && (j = jobq_pop(g->waiting)) != NULL) {
		s->gated--;
		g->held++;
		j->gates_passed++;
		gate_enter(s, j);
	}
}

/* j gives back its places (from gate `from` on); ran: it was running in them. */
static void
leave(struct sched *s, struct job *j, int from, bool ran)
{
	int i, n = j->gates_passed;

	for (i = from; i < n; i++) {
		j->gates[i]->held--;
		if (ran)
			j->gates[i]->running--;
	}
	j->gates_passed = from;
	for (i = from; i < n; i++)
		pump(s, j->gates[i]);
}

void
gate_started(struct sched *s, struct job *j)
{
	int i;

	(void)s;
	for (i = 0; i < j->gates_passed; i++)
		j->gates[i]->running++;
}

void
gate_leave(struct sched *s, struct job *j)
{
	leave(s, j, 0, true);
	j->ngates = 0;
}

void
gate_unqueue(struct sched *s, struct job *j)
{
	struct jobq *q = gate_heap(s, j);
	bool at_gate = j->gates_passed < j->ngates;

	if (q != NULL && j->qidx < jobq_len(q)) {
		jobq_remove(q, j);
		if (at_gate)
			s->gated--;
	}
	leave(s, j, 0, false);
	j->ngates = 0;
}

enum wait_reason
gate_wait_reason(const struct job *j)
{
	const struct gate *g;

	if (j->gates_passed >= j->ngates)
		return WAIT_NONE;
	g = j->gates[j->gates_passed];
	if (g->name == NULL)
		return WAIT_ARRAY;
	if (g->removed)
		return WAIT_QUEUE_REMOVED;
	return g->paused ? WAIT_PAUSED : WAIT_QUEUE;
}

/* Is g one of the gates j passed? Its index, or -1. */
static int
passed_index(const struct job *j, const struct gate *g)
{
	int i;

	for (i = 0; i < j->gates_passed; i++)
		if (j->gates[i] == g)
			return i;
	return -1;
}

/* The jobs of q that passed g: appended to *back. */
static void
passed_in(struct jobq *q, const struct gate *g, struct job ***back, size_t *n, size_t *cap)
{
	struct job *j;
	size_t i;

	for (i = 0; i < jobq_len(q); i++) {
		j = jobq_at(q, i);
		if (passed_index(j, g) < 0)
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 16;
			*back = xreallocarray(*back, *cap, sizeof **back);
		}
		(*back)[(*n)++] = j;
	}
}

/*
 * g closed (paused, removed) or shrank: the jobs past it that have not
 * started go back to wait at it, and pump lets through again what fits.
 * They are in the class or handler queues (a named queue is a job's last
 * gate).
 */
static void
settle(struct sched *s, struct gate *g)
{
	struct job **back = NULL, *j;
	size_t n = 0, cap = 0, i;
	int q, k;

	if (g->held == g->running)
		return;
	for (q = 0; q < NQUEUES; q++) {
		passed_in(s->queue[q], g, &back, &n, &cap);
		for (i = 0; i < s->nhq; i++)
			passed_in(s->hq[i].q[q], g, &back, &n, &cap);
	}
	for (i = 0; i < n; i++) {
		j = back[i];
		jobq_remove(sched_queue_of(s, j), j);
		k = passed_index(j, g);
		leave(s, j, k, false);
		jobq_push(g->waiting, j);
		s->gated++;
	}
	free(back);
	pump(s, g);
}

void
sched_configure_queues(struct sched *s)
{
	const struct queue_config *qc;
	struct gate *g, **pp;
	size_t i;

	for (i = 0; i < s->cfg->nqueues; i++) {
		g = queue_gate(s, s->cfg->queues[i].name);
		g->limit = s->cfg->queues[i].slots;
		g->removed = false;
	}
	for (g = s->queues; g != NULL; g = g->next) {
		qc = config_queue(s->cfg, g->name);
		if (qc == NULL && !g->removed) {
			g->removed = true;
			if (gate_queued(g) > 0)
				log_warnx("queue %s is no longer configured: its %zu queued jobs stay "
					  "queued until it is again (or they are cancelled)",
					  g->name, gate_queued(g));
		}
		settle(s, g);
		pump(s, g);
	}
	/* A removed queue nobody uses any more, and not paused, is forgotten. */
	for (pp = &s->queues; (g = *pp) != NULL;) {
		if (g->removed && !g->paused && g->held == 0 && jobq_len(g->waiting) == 0) {
			*pp = g->next;
			gate_free(g);
		} else {
			pp = &g->next;
		}
	}
}

int
sched_pause_queue(struct sched *s, const char *name, bool pause, bool known_only)
{
	struct gate *g;

	for (g = s->queues; g != NULL && strcmp(g->name, name) != 0; g = g->next)
		;
	if (g == NULL && known_only && config_queue(s->cfg, name) == NULL)
		return -1;
	if (g == NULL)
		g = queue_gate(s, name);
	g->paused = pause;
	if (pause)
		settle(s, g);
	else
		pump(s, g);
	return 0;
}

bool
sched_queue_paused(const struct sched *s, const char *name)
{
	const struct gate *g;

	for (g = s->queues; g != NULL; g = g->next)
		if (strcmp(g->name, name) == 0)
			return g->paused;
	return false;
}

void
sched_unpause_queues(struct sched *s)
{
	struct gate *g;

	for (g = s->queues; g != NULL; g = g->next) {
		g->paused = false;
		pump(s, g);
	}
	sched_dispatch(s);
}

json_t *
sched_queues_json(const struct sched *s)
{
	json_t *a = json_array();
	const struct gate *g;
	size_t i;

	/* The configuration's order, then queues kept for the jobs of removed ones. */
	for (i = 0; i < s->cfg->nqueues; i++)
		for (g = s->queues; g != NULL; g = g->next)
			if (strcmp(g->name, s->cfg->queues[i].name) == 0)
				json_array_append_new(a, gate_to_json(g));
	for (g = s->queues; g != NULL; g = g->next)
		if (g->removed)
			json_array_append_new(a, gate_to_json(g));
	return a;
}

void
gates_free(struct sched *s)
{
	struct gate *g;

	while ((g = s->queues) != NULL) {
		s->queues = g->next;
		gate_free(g);
	}
}
