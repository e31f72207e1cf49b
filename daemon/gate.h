/*
 * Gates: what a queued job passes before it enters its class's queue
 * (sched.c). Two kinds, one mechanism:
 *
 *   a named queue   the configuration's `queues = ( { name; slots; } )`: at
 *                   most `slots` of its jobs past it at once (submit --queue)
 *   an array's MAX  `submit --array 1-100%4`: at most 4 of its jobs past it
 *
 * A gate keeps the jobs waiting at it in a heap of its own (ordered as the
 * class queues are: priority, fair-share turn, submission), so a full gate
 * holds up only its own jobs, never the class queue behind them. A job
 * holds its place in a gate from passing it until it stops running (it
 * ended, or was taken back before it started: cancel, `pause ID`, a pause
 * or a smaller limit of its queue). A suspended job keeps its places: it
 * still holds what the queue stands for (a GPU's memory, a licence).
 *
 * This file is the data structure and its counts; which gates a job has,
 * passing and leaving them: sched-gate.c. Loop thread only.
 */
#ifndef TASKD_GATE_H
#define TASKD_GATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct job;
struct jobq;

struct gate {
	char *name;          /* a queue's name; NULL: an array's MAX */
	int limit;           /* slots, or MAX */
	bool paused;         /* `pause --queue NAME` */
	bool removed;        /* a queue the configuration no longer has: nothing passes */
	size_t held;         /* jobs past it: queued further on, running or suspended */
	size_t running;      /* of held: running or suspended */
	struct jobq *waiting; /* its jobs that have not passed it */
	struct gate *next;   /* sched.c's list of named queues */
};

struct gate *gate_new(const char *name, int limit);
/* A gate nobody waits at or holds a place in any more (its waiting heap is empty). */
void gate_free(struct gate *g);
/* May a job pass now (not paused, not removed, a place free)? */
bool gate_open(const struct gate *g);
/* Jobs waiting at it, and jobs past it that have not started: its queued jobs. */
size_t gate_queued(const struct gate *g);
/* {"name","slots","running","queued","paused","removed"}: a queue in status. */
json_t *gate_to_json(const struct gate *g);

#endif
