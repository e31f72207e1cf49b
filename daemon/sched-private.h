/*
 * Private to the files of the scheduler: sched.c (setting up, routing, the
 * handlers' queues, why a job waits), sched-dispatch.c (starting queued
 * jobs in the pools), sched-finish.c (runs that end, cancelling, pruning),
 * sched-gate.c (named queues and array limits: the gates a job passes
 * before its class queue, gate.h) and sched-suspend.c (suspending running
 * jobs, and the cpu slots they give back and take again). Loop thread only.
 */
#ifndef TASKD_SCHED_PRIVATE_H
#define TASKD_SCHED_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sched.h"

/* One queue per pool: a flood of one class never holds up the other. */
enum { Q_CPU, Q_IO, NQUEUES };

/*
 * The queues of one handler's jobs, by the class they were routed to: a
 * handler whose workers are not up (starting, in backoff) holds up only
 * its own jobs. Kept while the handler is configured; a handler removed
 * by a reload fails its queued jobs ("handler removed").
 */
struct hqueue {
	char *name;
	struct jobq *q[NQUEUES];
	struct sched_fair fair[NQUEUES];
};

struct gate;

struct sched {
	bool root;           /* the daemon runs as root: other users' jobs run as them */
	struct jobs *jobs;
	struct tpool *tpool;
	struct ppool *ppool;
	struct router *router;
	struct resources *res;
	const struct config *cfg;
	char *jobs_dir;
	char *live_dir;      /* commands are recorded there while they run, or NULL */
	struct jobq *queue[NQUEUES];
	uint64_t seq;
	size_t running;      /* running or suspended: they hold their run */
	size_t running_cpu;  /* of running: in the process pool */
	enum wait_reason blocked[NQUEUES]; /* why a queue's head did not start at the last dispatch */
	uint64_t promise[NQUEUES];         /* memory its head waits for (resources_admit) */
	void (*idle_cb)(void *);
	void *idle_arg;
	bool (*retry_cb)(struct job *, enum job_state, void *);
	void (*forget_cb)(struct job *, void *);
	void *retry_arg;
	bool (*cluster_cb)(struct job *, enum job_state, void *);
	void *cluster_arg;
	bool paused[NQUEUES]; /* `pause --class`: nothing new starts from that queue */
	struct sched_fair fair[NQUEUES];
	struct hpool *hpool;     /* handler workers, or NULL */
	int cpu_slots;           /* cpu jobs at once without a process pool (handlers only) */
	struct hqueue *hq;       /* nhq of them */
	size_t nhq;

	/*
	 * cpu slots (sched_cpu_slots, sched-suspend.c): one per worker the
	 * pool may have. A running command that counts as cpu holds its
	 * --slots (job.slots_held); one suspended, or counting as io
	 * (reclassified), holds none.
	 */
	size_t cpu_used;     /* held by running commands (job.slots_held) */
	int unslotted;       /* workers held by commands that hold no slot (suspended, io) */
	uint64_t *resuming;  /* suspended jobs asked to resume, waiting for cpu slots, in order */
	size_t nresuming, capresuming;

	/* gates (sched-gate.c) */
	struct gate *queues; /* named queues: configured, or kept for jobs of removed ones */
	size_t gated;        /* jobs waiting at a gate, not yet in a class queue */
};

/* sched.c */
int sched_class_queue(const struct job *j); /* Q_CPU or Q_IO: the class it was routed to */
/* The queue j waits in once past its gates: its class's, or its handler's for that class. */
struct jobq *sched_queue_of(struct sched *s, const struct job *j);
/* The cpu slots: the pool's max_workers (without a pool: the handlers' cpu slots, or 0). */
size_t sched_cpu_slots(const struct sched *s);
/* Those held now: by commands (cpu_used) and cpu-routed handler jobs. */
size_t sched_cpu_used(const struct sched *s);
/* The cpu slots j takes: its --slots, at most all of them (a reload may shrink the pool). */
size_t sched_slots_of(const struct sched *s, const struct job *j);
/* At the head of its queue a class-auto command is routed again; true if it moved queue. */
bool reroute(struct sched *s, struct job *j);

/* sched-finish.c */
/* A run came back from either pool: move its result into the job and finish it. */
void run_finished(struct sched *s, struct run *r, int worker);

/* sched-gate.c */
/* Which gates j has (its array's MAX, its queue), none passed yet. */
void gate_attach(struct sched *s, struct job *j);
/* Into the next gate j has not passed, or its class queue; let through what may pass. */
void gate_enter(struct sched *s, struct job *j);
/* j stops holding its places (ended, or taken back); others may pass. */
void gate_leave(struct sched *s, struct job *j);
/* j is queued: out of the heap it waits in (a gate's, or its class queue), its places given back. */
void gate_unqueue(struct sched *s, struct job *j);
/* j starts: it runs in each gate it passed. */
void gate_started(struct sched *s, struct job *j);
/* The heap a queued job waits in (a gate's, or its class queue). */
struct jobq *gate_heap(struct sched *s, struct job *j);
/* Why a queued job has not started because of its gates (WAIT_NONE: past them all). */
enum wait_reason gate_wait_reason(const struct job *j);
void gates_free(struct sched *s);

/* sched-suspend.c */
/* A run ended (or never held slots): give back what j held of cpu slots and workers. */
void slots_release(struct sched *s, struct job *j);
/* Running j holds n cpu slots from now on (0: it keeps its worker without a slot). */
void slots_set(struct sched *s, struct job *j, size_t n);
/* Suspended jobs asked to resume, in order, while cpu slots are free; true if one is still waiting. */
bool resume_waiting(struct sched *s);
/* j ended while suspended: drop it from the resume list. */
void resume_forget(struct sched *s, struct job *j);

#endif
