/*
 * The worker-process side of the process pool, and the messages between a
 * worker and the daemon (JSON, one per SOCK_SEQPACKET datagram; a message
 * too big for one datagram travels in a memfd passed with SCM_RIGHTS).
 *
 * daemon → worker: {"t":"run", spec...}        run one job
 *                  {"t":"exit"}                finish and exit (recycle, shrink, stop)
 * worker → daemon: {"t":"ready","pid":N}       started, idle
 *                  {"t":"started","job":ID,"pid":P}  a command was spawned (pid P, its group)
 *                  {"t":"progress","job":ID,"message":M}  a module job's progress
 *                  {"t":"done","job":ID, result..., "rss_kb":N}  the job is over; idle again
 * Cancel of a command: SIGUSR1 to the worker, queued with sigqueue() and the
 * job id as sival_ptr (a plain kill means the current job); it then kills
 * the job's group as a timeout does. Suspend and resume of a command:
 * WORKER_SIGSUSPEND, a real-time signal (queued, so they arrive in the
 * order sent), with (job id << 1) | 1 to stop it, | 0 to continue it, as
 * sival_ptr; exec_run stops or continues the job's group and holds its
 * timeout meanwhile. Every message is validated; a worker that sends
 * anything malformed, unexpected or oversized is killed and replaced.
 */
#ifndef TASKD_WORKER_H
#define TASKD_WORKER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "exec.h"

#define WORKER_MSG_MAX (64u << 10) /* larger messages go through a memfd */
#define WORKER_SIGSUSPEND (SIGRTMIN) /* suspend / resume the job's command */
#define WORKER_PROGRESS_MAX 4096   /* bytes of a progress message */

/*
 * `taskd --worker FD [INDEX [DAEMONPID [PADDING [MODULE...]]]]`: the
 * worker's main loop; returns the exit code. Module i (its path) is open
 * on fd MODULE_WORKER_FD + i (modules.h).
 */
int worker_main(int argc, char **argv);
/*
 * Start a worker: self (the taskd binary) as `taskd --worker 3 INDEX
 * DAEMONPID PADDING MODULE...`, what worker_main reads, with sock as its
 * fd 3 and the loaded module files after it; sock is closed here (the
 * worker has its copy). 0 with *pid, or an errno.
 */
int worker_spawn(const char *self, int sock, int index, pid_t *pid);

/*
 * Encoding (both sides). decode returns 0, or -1 with *error (malloc'd).
 * A job type travels by name; worker_decode_spec returns -2 with *spec
 * decoded and *error set when this process has no type of that name.
 */
json_t *worker_encode_spec(const struct run_spec *spec);
int worker_decode_spec(const json_t *msg, struct run_spec *spec, char **error);
json_t *worker_encode_progress(uint64_t job, const char *message);
int worker_decode_progress(const json_t *msg, uint64_t *job, char **message, char **error);
json_t *worker_encode_result(uint64_t job, const struct run_result *res, long rss_kb);
int worker_decode_result(const json_t *msg, struct run_result *res, uint64_t *job, long *rss_kb,
			 char **error);

/*
 * One message on a SOCK_SEQPACKET socket: send (memfd when large) / receive.
 * worker_recv never blocks (MSG_DONTWAIT) and returns NULL with *error
 * (malloc'd): "eof" (EOF or ECONNRESET: the peer is gone), "again" (nothing
 * to read), or a message (too large for max, malformed, bad fd passing).
 */
int worker_send(int fd, const json_t *msg);
json_t *worker_recv(int fd, size_t max, char **error);

#endif
