/*
 * libtaskd-worker: write a taskd handler worker in C (doc/handlers.md).
 *
 * A handler is a job type served by a program you write, which taskd
 * starts and keeps warm (`handlers = ( ... )` in taskd.conf). With this
 * library the program is a function:
 *
 *	#include <taskd/worker.h>
 *
 *	static int
 *	handle(const struct taskd_job *job, struct taskd_result *res, void *arg)
 *	{
 *		if (job->argc < 1)
 *			return taskd_result_error(res, "usage: greet NAME");
 *		return taskd_result_string(res, job->args[0]);
 *	}
 *
 *	int main(void) { return taskd_worker_serve(handle, NULL) == 0 ? 0 : 1; }
 *
 * Build with `pkg-config --cflags --libs taskd-worker`. The library has no
 * dependencies: it reads the job messages itself and writes the results
 * as given (taskd checks them). Jobs run one at a time, in the order they
 * come; the hello offers the handler's `concurrency` (TASKD_CONCURRENCY),
 * so taskd may send that many at once (pipelining: an io handler of quick
 * jobs), and answers to jobs that came together are written together. A
 * cancel does not interrupt a running job: taskd SIGTERMs the worker
 * after jobs.kill_grace if the job does not end by itself.
 */
#ifndef TASKD_WORKER_H
#define TASKD_WORKER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TASKD_WORKER_PROTOCOL 1

struct taskd_job {
	uint64_t id;
	int argc;
	char **args;                 /* argc strings, then NULL */
	const unsigned char *input;  /* the job's input (decoded), input_len bytes */
	size_t input_len;
	double deadline;             /* unix seconds, 0 = none */
};

/* Where a handler puts its answer; filled by one of the taskd_result_* calls. */
struct taskd_result;

/*
 * A handler: set the result with one taskd_result_* call and return 0, or
 * return -1 (the job fails with "handler failed" unless an error was set).
 */
typedef int (*taskd_handler_fn)(const struct taskd_job *job, struct taskd_result *res,
				void *arg);

/* The result is this JSON value, given as text (taskd rejects invalid JSON). */
int taskd_result_json(struct taskd_result *res, const char *json);
/* The result is this string (printed as plain text by `taskctl wait`). */
int taskd_result_string(struct taskd_result *res, const char *s);
/* The job fails with this message; returns -1 so that `return taskd_result_error(...)` works. */
int taskd_result_error(struct taskd_result *res, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Say hello on the descriptor taskd gave (TASKD_WORKER_FD, 3), then run
 * jobs until taskd closes it: 0 then. -1 (with a message on stderr) when
 * the connection fails or a message cannot be read.
 */
int taskd_worker_serve(taskd_handler_fn fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
