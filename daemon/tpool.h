/*
 * Thread pool for io-class jobs. The event loop submits tasks; pool
 * threads run them and push them onto a done queue, then poke an eventfd
 * the loop watches; the loop calls each task's done callback. Threads never
 * touch the job table; they only see the task they were given.
 */
#ifndef TASKD_TPOOL_H
#define TASKD_TPOOL_H

#include <stdint.h>
#include <sys/queue.h>

struct event_base;
struct tpool;

struct tpool_task {
	void (*run)(struct tpool_task *t);   /* on a pool thread */
	void (*done)(struct tpool_task *t, void *arg); /* on the loop thread, after run */
	void *arg;                           /* passed to done */
	int thread;                          /* index of the thread that ran it (set by the pool) */
	TAILQ_ENTRY(tpool_task) entry;       /* pool-private */
};

struct tpool_config {
	int min_threads;
	int max_threads;
	double idle_timeout; /* seconds an idle thread above min_threads lingers */
};

struct tpool_stats {
	int threads;   /* alive */
	int busy;      /* running a task */
	int idle;
	int max;
	int queued;    /* submitted, not yet picked up */
	uint64_t completed;
};

struct tpool *tpool_new(struct event_base *base, const struct tpool_config *cfg);
/* Queue a task; starts a thread if none is idle and fewer than max are alive. */
void tpool_submit(struct tpool *tp, struct tpool_task *t);
/*
 * Free slots: max - the tasks submitted whose done callback is not called
 * yet (the scheduler submits only when > 0).
 */
int tpool_capacity(struct tpool *tp);
/* Apply new sizes live: surplus idle threads exit, busy ones finish first. */
void tpool_configure(struct tpool *tp, const struct tpool_config *cfg);
void tpool_stats(struct tpool *tp, struct tpool_stats *st);
/* Stop all threads (waits for running tasks); undelivered done callbacks are run. */
void tpool_free(struct tpool *tp);

#endif
