/*
 * Keeping the job table durable (doc/design.md "Stored job records"), on
 * the loop thread: every
 * change of the table (job added, state changed, job pruned) marks the job
 * dirty; once per loop iteration all dirty jobs are written in ONE store
 * transaction (group commit), each job once whatever happened to it since.
 * A submit is answered only from the after-commit callback. With
 * store.fsync = always (the default) that callback runs after the commit is
 * fsync'ed, so an acknowledged job survives a power loss; changes nobody
 * waits for (a job started, finished, was pruned) are written within 2 ms
 * or with the next submit's commit — then they survive kill -9 — and share
 * an fsync within store.fsync_interval.
 * With store.fsync = interval, answers go out after the write and every
 * commit is fsync'ed within store.fsync_interval (a power loss may lose
 * that long of acknowledged submits; a daemon crash loses nothing). At startup, persist_recover() loads the
 * table back: queued jobs are queued again in their order, jobs that were
 * running are marked lost (once what was left of them is killed: leftover.h).
 */
#ifndef TASKD_PERSIST_H
#define TASKD_PERSIST_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct jobs;
struct store;
struct persist;

struct persist *persist_new(struct event_base *base, struct store *st, struct jobs *js);
void persist_free(struct persist *p);

#include "config.h"

/* store.fsync and store.fsync_interval (0: fsync every commit at once); at start and on reload. */
void persist_configure(struct persist *p, enum store_fsync policy, double interval);
/*
 * Call cb(ok, cause, arg) after the next commit (ok false: it failed, and
 * cause says why; the jobs added since the last commit were not stored).
 */
void persist_after_commit(struct persist *p, void (*cb)(bool ok, const char *cause, void *arg),
			  void *arg);
/*
 * Store a meta value (store_meta_set), or remove one, with the next commit,
 * like a job's change (retried if the commit fails). key is copied.
 */
void persist_meta_set(struct persist *p, const char *key, int64_t value);
void persist_meta_delete(struct persist *p, const char *key);
/*
 * A new array (jobs_array_new): its record is written with the next commit
 * (its jobs have no rows of their own until they change: job_array).
 */
struct job_array;
void persist_array(struct persist *p, struct job_array *a);
/*
 * The class pauses of `pause --class`, kept in the store's meta table (keys
 * paused_cpu and paused_io, 0 or 1): set stores them with the next commit
 * (persist_meta_set); get reads what is stored (false when never stored),
 * -1 with *cause.
 */
void persist_set_paused(struct persist *p, bool cpu, bool io);
int persist_get_paused(struct persist *p, bool *cpu, bool *io, char **cause);
/*
 * The pauses of named queues (`pause --queue`), kept in meta as
 * queue_paused.NAME = 1 (removed when resumed): set stores it with the next
 * commit; get calls cb(name, arg) for each queue stored as paused.
 */
void persist_set_queue_paused(struct persist *p, const char *name, bool paused);
int persist_get_paused_queues(struct persist *p, void (*cb)(const char *name, void *arg),
			      void *arg, char **cause);
/*
 * Deleting the database (or its directory) under a running taskd: each
 * commit, and persist_check (called every second), look whether the
 * database is still where it was opened (store_check). Once it is not,
 * that is latched and logged as an error, and from then on nothing is
 * written and every waiter of a commit fails with the cause: submits are
 * refused (storage_error), while what is in memory goes on and reads work.
 * persist_check: 0, or -1 once lost. persist_storage_error: why, or NULL.
 */
int persist_check(struct persist *p);
const char *persist_storage_error(const struct persist *p);
/* Commit what is dirty now (shutdown). */
void persist_flush(struct persist *p);

struct leftover_job;
/*
 * Load every stored array and job into the (empty) table: the jobs of an
 * array without a row of their own as the array's record has them, those
 * with a RECORD_REMOVED row not at all. Jobs that were running or
 * suspended are marked lost, and so are the jobs of leftovers[] (nleftovers of them: what
 * leftover_reap found of the runs of a dead taskd), whatever their stored
 * state: a record of a command means it was started, even if that start
 * was not committed (then the store still has the job pending). The
 * leftovers say how long the killed runs ran (their wall time) and whether
 * they could be killed at all (if not, the job is not retried). For each
 * job still queued, requeue(job, arg) is called in id order. Job records of
 * an older version are written again in the current one at the first
 * commit (record.h). -1 with *cause if the store cannot be read, or holds
 * a job record this taskd cannot read whole ("PATH: job 17: unreadable
 * record (...)").
 */
int persist_recover(struct persist *p, const struct leftover_job *leftovers, size_t nleftovers,
		    void (*requeue)(struct job *, void *), void *arg, char **cause);

#endif
