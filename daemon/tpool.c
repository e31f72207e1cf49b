/*
 * Thread pool for io-class jobs.
 *
 * What runs where. The event loop thread makes every tpool_* call, creates
 * and joins the pool threads, and calls each task's done callback (from
 * tpool_done_cb, or from tpool_free). Pool threads (worker_main) take tasks
 * off the work queue and call task->run; they see nothing but the task they
 * hold and the shared fields below.
 *
 * Who owns what. A task belongs to the pool from tpool_submit until its done
 * callback is called; from then on it is the caller's again (done may free it
 * or submit it again). The work queue, the done queue, the counters, the
 * sizes, the slot table, and each worker's "exited" flag are shared and
 * guarded by tp->lock. The worker list and the libevent state belong to the
 * loop thread alone.
 *
 * How they talk. tpool_submit appends to the work queue and signals tp->cond
 * (a size change or shutdown broadcasts it). A thread that finishes a task
 * appends it to the done queue and writes the eventfd if that queue was
 * empty; the loop's persistent read event on the eventfd swaps out the whole
 * done queue and calls the done callbacks with no lock held.
 *
 * Thread lifetime. At least min_threads live. tpool_submit starts a thread
 * when more tasks are queued than threads are free to take them, up to
 * max_threads. An idle thread exits once it has been idle for idle_timeout
 * while more than min_threads are alive, and as soon as it is free while more
 * than max_threads are alive (after tpool_configure shrank max; a busy thread
 * finishes its task first). An exiting thread frees its slot, marks itself
 * exited and writes the eventfd; the loop joins it in tpool_done_cb, or
 * tpool_free does. No thread is ever detached.
 *
 * Shutdown. tpool_free drains the pool: queued tasks still run, and every
 * done callback is delivered, including those of tasks submitted by done
 * callbacks while it drains (so an endless chain of resubmits never ends).
 * Then the threads are told to stop and joined.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "tpool.h"
#include "xmalloc.h"

#define IDLE_TIMEOUT_MAX 1e9 /* seconds; keeps the timespec arithmetic in range */

TAILQ_HEAD(tpool_tasks, tpool_task);

struct worker {
	struct tpool *tp;
	pthread_t tid;
	int slot;                 /* index into tp->slots, reported as task->thread */
	bool exited;              /* lock */
	LIST_ENTRY(worker) entry; /* loop thread only */
};
LIST_HEAD(workers, worker);

struct tpool {
	struct event *ev; /* persistent read on efd */
	int efd;
	struct workers workers; /* every thread not yet joined; loop thread only */
	/*
	 * Loop thread only: tasks submitted whose done callback is not called
	 * yet (queued, running, or run and waiting for the loop). Until then a
	 * task holds what its owner gave it: the capacity counts it.
	 */
	int held;

	pthread_mutex_t lock;
	pthread_cond_t cond;    /* work queued, sizes changed, stop */
	pthread_cond_t drained; /* a task finished while tpool_free drains */
	/* Everything below is guarded by lock. */
	struct tpool_tasks queue; /* submitted, not yet picked up */
	struct tpool_tasks done;  /* run, done callback not yet called */
	int min;
	int max;
	double idle_timeout;
	int alive;  /* started, not yet exited */
	int busy;   /* running a task */
	int queued; /* length of queue */
	int exited; /* exited, not yet joined */
	uint64_t completed;
	bool *slots; /* slots[i]: an alive thread holds index i */
	int nslots;
	bool draining;
	bool stopping;
};

static void *worker_main(void *);

static void
notify(struct tpool *tp)
{
	uint64_t one = 1;

	if (write(tp->efd, &one, sizeof one) == -1 && errno != EAGAIN)
		log_warn("tpool: eventfd write");
}

static struct timespec
ts_after(const struct timespec *ts, double sec)
{
	struct timespec r = *ts;
	long long ns = (long long)(sec * 1e9);

	r.tv_sec += ns / 1000000000;
	r.tv_nsec += ns % 1000000000;
	if (r.tv_nsec >= 1000000000) {
		r.tv_sec++;
		r.tv_nsec -= 1000000000;
	}
	return r;
}

static bool
ts_passed(const struct timespec *deadline)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (now.tv_sec != deadline->tv_sec)
		return now.tv_sec > deadline->tv_sec;
	return now.tv_nsec >= deadline->tv_nsec;
}

/* Lowest free slot. One exists below max whenever alive < max. */
static int
slot_take(struct tpool *tp)
{
	int i;

	for (i = 0; i < tp->nslots; i++) {
		if (!tp->slots[i]) {
			tp->slots[i] = true;
			return i;
		}
	}
	fatalx("tpool: no free thread slot");
}

static void
slots_grow(struct tpool *tp, int n)
{
	if (n <= tp->nslots)
		return;
	tp->slots = xreallocarray(tp->slots, n, sizeof *tp->slots);
	memset(tp->slots + tp->nslots, 0, (n - tp->nslots) * sizeof *tp->slots);
	tp->nslots = n;
}

/* Start one thread with every signal blocked; the loop handles signals. */
static bool
spawn(struct tpool *tp)
{
	struct worker *w;
	sigset_t all, old;
	int error;

	w = xcalloc(1, sizeof *w);
	w->tp = tp;
	w->slot = slot_take(tp);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	error = pthread_create(&w->tid, NULL, worker_main, w);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (error != 0) {
		tp->slots[w->slot] = false;
		free(w);
		errno = error;
		if (tp->alive == 0 && tp->queued > 0)
			fatal("tpool: cannot start any thread");
		log_warn("tpool: cannot start a thread");
		return false;
	}
	tp->alive++;
	LIST_INSERT_HEAD(&tp->workers, w, entry);
	/* Threads waiting without a deadline (alive was <= min) recheck it. */
	if (tp->alive > tp->min)
		pthread_cond_broadcast(&tp->cond);
	return true;
}

/* Start threads up to min, and for queued tasks no free thread will take. */
static void
grow(struct tpool *tp)
{
	while (tp->alive < tp->max && (tp->alive < tp->min || tp->queued > tp->alive - tp->busy)) {
		if (!spawn(tp))
			return;
	}
}

/*
 * With the lock held: wait for the next task. NULL means this thread must
 * exit: more than max alive, stopping with nothing queued, or idle for
 * idle_timeout with more than min alive.
 */
static struct tpool_task *
worker_next(struct tpool *tp)
{
	struct timespec since, deadline;
	struct tpool_task *t;

	clock_gettime(CLOCK_MONOTONIC, &since);
	for (;;) {
		if (tp->alive > tp->max)
			return NULL;
		if ((t = TAILQ_FIRST(&tp->queue)) != NULL) {
			TAILQ_REMOVE(&tp->queue, t, entry);
			tp->queued--;
			return t;
		}
		if (tp->stopping)
			return NULL;
		if (tp->alive <= tp->min) {
			pthread_cond_wait(&tp->cond, &tp->lock);
			continue;
		}
		deadline = ts_after(&since, tp->idle_timeout);
		if (ts_passed(&deadline))
			return NULL;
		pthread_cond_timedwait(&tp->cond, &tp->lock, &deadline);
	}
}

/*
 * With the lock held: hand a run task to the loop. True if the loop must be
 * woken (the done queue was empty): the caller writes the eventfd once it
 * has let go of the lock, so the loop does not wake up into a held lock.
 */
static bool
worker_finish(struct tpool *tp, struct tpool_task *t)
{
	bool wake = TAILQ_EMPTY(&tp->done);

	tp->busy--;
	tp->completed++;
	TAILQ_INSERT_TAIL(&tp->done, t, entry);
	if (tp->draining)
		pthread_cond_signal(&tp->drained);
	return wake;
}

/* With the lock held, which it releases: leave the pool, to be joined. */
static void
worker_exit(struct worker *w)
{
	struct tpool *tp = w->tp;

	tp->alive--;
	tp->slots[w->slot] = false;
	w->exited = true;
	tp->exited++;
	/* A wakeup meant for a task must not die with this thread. */
	if (!TAILQ_EMPTY(&tp->queue))
		pthread_cond_signal(&tp->cond);
	notify(tp);
	pthread_mutex_unlock(&tp->lock);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct tpool *tp = w->tp;
	struct tpool_task *t;

	pthread_mutex_lock(&tp->lock);
	while ((t = worker_next(tp)) != NULL) {
		tp->busy++;
		pthread_mutex_unlock(&tp->lock);
		t->thread = w->slot;
		t->run(t);
		pthread_mutex_lock(&tp->lock);
		if (worker_finish(tp, t)) {
			pthread_mutex_unlock(&tp->lock);
			notify(tp);
			pthread_mutex_lock(&tp->lock);
		}
	}
	worker_exit(w);
	return NULL;
}

/* Loop thread, no lock held: call the done callbacks, emptying the list. */
static void
deliver(struct tpool *tp, struct tpool_tasks *list)
{
	struct tpool_task *t;

	while ((t = TAILQ_FIRST(list)) != NULL) {
		TAILQ_REMOVE(list, t, entry);
		tp->held--;
		if (t->done != NULL)
			t->done(t, t->arg);
	}
}

static void
join_all(struct workers *list)
{
	struct worker *w;
	int error;

	while ((w = LIST_FIRST(list)) != NULL) {
		LIST_REMOVE(w, entry);
		if ((error = pthread_join(w->tid, NULL)) != 0) {
			errno = error;
			log_warn("tpool: pthread_join");
		}
		free(w);
	}
}

/* Join the threads that have exited. */
static void
reap(struct tpool *tp)
{
	struct workers gone = LIST_HEAD_INITIALIZER(gone);
	struct worker *w, *next;

	pthread_mutex_lock(&tp->lock);
	for (w = LIST_FIRST(&tp->workers); w != NULL && tp->exited > 0; w = next) {
		next = LIST_NEXT(w, entry);
		if (!w->exited)
			continue;
		LIST_REMOVE(w, entry);
		LIST_INSERT_HEAD(&gone, w, entry);
		tp->exited--;
	}
	pthread_mutex_unlock(&tp->lock);
	join_all(&gone);
}

static void
tpool_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tpool *tp = arg;
	struct tpool_tasks done = TAILQ_HEAD_INITIALIZER(done);
	uint64_t n;

	(void)what;
	/* Read first: a task finished after the swap below writes again. */
	if (read(fd, &n, sizeof n) == -1 && errno != EAGAIN)
		log_warn("tpool: eventfd read");
	pthread_mutex_lock(&tp->lock);
	TAILQ_CONCAT(&done, &tp->done, entry);
	pthread_mutex_unlock(&tp->lock);
	reap(tp);
	deliver(tp, &done);
}

/* With the lock held: take new sizes, clamped to sane values. */
static void
apply_config(struct tpool *tp, const struct tpool_config *cfg)
{
	tp->max = cfg->max_threads < 1 ? 1 : cfg->max_threads;
	tp->min = cfg->min_threads < 0 ? 0 : cfg->min_threads;
	if (tp->min > tp->max)
		tp->min = tp->max;
	tp->idle_timeout = cfg->idle_timeout;
	if (!(tp->idle_timeout >= 0)) /* also catches NaN */
		tp->idle_timeout = 0;
	if (tp->idle_timeout > IDLE_TIMEOUT_MAX)
		tp->idle_timeout = IDLE_TIMEOUT_MAX;
	slots_grow(tp, tp->max);
	/* Idle threads recheck: surplus ones exit, the rest take new deadlines. */
	pthread_cond_broadcast(&tp->cond);
	grow(tp);
}

struct tpool *
tpool_new(struct event_base *base, const struct tpool_config *cfg)
{
	struct tpool *tp;
	pthread_condattr_t attr;

	tp = xcalloc(1, sizeof *tp);
	LIST_INIT(&tp->workers);
	TAILQ_INIT(&tp->queue);
	TAILQ_INIT(&tp->done);
	pthread_mutex_init(&tp->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&tp->cond, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&tp->drained, NULL);

	tp->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (tp->efd == -1)
		fatal("tpool: eventfd");
	tp->ev = event_new(base, tp->efd, EV_READ | EV_PERSIST, tpool_done_cb, tp);
	if (tp->ev == NULL || event_add(tp->ev, NULL) == -1)
		fatalx("tpool: cannot watch the eventfd");

	pthread_mutex_lock(&tp->lock);
	apply_config(tp, cfg);
	pthread_mutex_unlock(&tp->lock);
	return tp;
}

void
tpool_submit(struct tpool *tp, struct tpool_task *t)
{
	tp->held++;
	pthread_mutex_lock(&tp->lock);
	TAILQ_INSERT_TAIL(&tp->queue, t, entry);
	tp->queued++;
	grow(tp);
	pthread_mutex_unlock(&tp->lock);
	/* After the unlock: the woken thread does not block on the lock at once. */
	pthread_cond_signal(&tp->cond);
}

int
tpool_capacity(struct tpool *tp)
{
	int n;

	pthread_mutex_lock(&tp->lock);
	n = tp->max - tp->held;
	pthread_mutex_unlock(&tp->lock);
	return n > 0 ? n : 0;
}

void
tpool_configure(struct tpool *tp, const struct tpool_config *cfg)
{
	pthread_mutex_lock(&tp->lock);
	apply_config(tp, cfg);
	pthread_mutex_unlock(&tp->lock);
}

void
tpool_stats(struct tpool *tp, struct tpool_stats *st)
{
	pthread_mutex_lock(&tp->lock);
	st->threads = tp->alive;
	st->busy = tp->busy;
	st->idle = tp->alive - tp->busy;
	st->max = tp->max;
	st->queued = tp->queued;
	st->completed = tp->completed;
	pthread_mutex_unlock(&tp->lock);
}

/* Run everything queued and deliver every done callback, new ones included. */
static void
drain(struct tpool *tp)
{
	struct tpool_tasks done = TAILQ_HEAD_INITIALIZER(done);

	pthread_mutex_lock(&tp->lock);
	tp->draining = true;
	for (;;) {
		TAILQ_CONCAT(&done, &tp->done, entry);
		if (!TAILQ_EMPTY(&done)) {
			pthread_mutex_unlock(&tp->lock);
			deliver(tp, &done);
			pthread_mutex_lock(&tp->lock);
			continue;
		}
		if (tp->queued == 0 && tp->busy == 0)
			break;
		pthread_cond_wait(&tp->drained, &tp->lock);
	}
	pthread_mutex_unlock(&tp->lock);
}

void
tpool_free(struct tpool *tp)
{
	if (tp == NULL)
		return;
	drain(tp);

	pthread_mutex_lock(&tp->lock);
	tp->stopping = true;
	pthread_cond_broadcast(&tp->cond);
	pthread_mutex_unlock(&tp->lock);
	join_all(&tp->workers);

	event_free(tp->ev);
	close(tp->efd);
	pthread_cond_destroy(&tp->drained);
	pthread_cond_destroy(&tp->cond);
	pthread_mutex_destroy(&tp->lock);
	free(tp->slots);
	free(tp);
}
