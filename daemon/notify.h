/*
 * Telling people when jobs end, and logging slow and failing ones.
 *
 * When a job reaches a final state (not when a run is retried):
 *   - its own `notify` command (submit --notify) and then each of
 *     jobs.on_finish run as `/bin/sh -c CMD` with TASKD_JOB_ID,
 *     TASKD_JOB_STATE, TASKD_JOB_EXIT_CODE (empty if it did not exit by
 *     itself), TASKD_JOB_SIGNAL, TASKD_JOB_WALL (seconds of its last run, 0
 *     if it never ran) and TASKD_JOB_NAME in the environment. They run as
 *     the job's submitter (a root taskd uses `taskd --run-as`, as for jobs;
 *     never root for another user's job), on a pool of their own
 *     (NOTIFY_THREADS threads), with stdin and output on /dev/null and
 *     jobs.notify_timeout to finish. The job's own command gets the job's
 *     environment and directory; jobs.on_finish a default PATH and "/".
 *   - jobs.webhook gets the job's JSON object (as `show` prints it) in an
 *     HTTP POST, retried on connection errors, timeouts, 408, 429 and 5xx
 *     (WEBHOOK_ATTEMPTS attempts, 1 s, 2 s, 4 s... apart), at most
 *     WEBHOOK_INFLIGHT at once, each within WEBHOOK_TIMEOUT.
 *
 * Both queues are bounded (NOTIFY_QUEUE_MAX commands, WEBHOOK_QUEUE_MAX
 * deliveries): beyond that, notifications are dropped and counted, never
 * waited for, so a dead webhook or a hanging command never holds up jobs
 * or the loop. What is queued when taskd stops is dropped (logged): at
 * most once, never twice.
 *
 * jobs.slow_log = N logs a job still running N seconds after it started,
 * once per run, with its pid and command; a job that ends failed, timed
 * out or lost is logged with its exit status. Loop thread only.
 */
#ifndef TASKD_NOTIFY_H
#define TASKD_NOTIFY_H

#define NOTIFY_THREADS 2
#define NOTIFY_QUEUE_MAX 256
#define WEBHOOK_QUEUE_MAX 1024
#define WEBHOOK_INFLIGHT 4
#define WEBHOOK_ATTEMPTS 5
#define WEBHOOK_TIMEOUT 10 /* seconds */

struct event_base;
struct jobs;
struct config;
struct metrics_out;
struct notify;

/* Watch js for jobs ending and starting; settings from *cfg (read again by notify_configure). */
struct notify *notify_new(struct event_base *base, struct jobs *js, const struct config *cfg);
/* After a reload changed *cfg: webhook URL, slow log threshold. */
void notify_configure(struct notify *n);
/* taskd is stopping: running commands are cancelled, queued notifications dropped. */
void notify_stop(struct notify *n);
void notify_free(struct notify *n);

void notify_metrics(struct notify *n, struct metrics_out *m);

#endif
