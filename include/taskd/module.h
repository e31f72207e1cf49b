/*
 * taskd modules: job types written in C, loaded into taskd (doc/modules.md).
 *
 * A module is a shared library listed in taskd.conf's `modules`. It exports
 * one symbol, `taskd_module_v1` (TASKD_MODULE_SYMBOL), a struct
 * taskd_module: the module's name and a NULL-terminated table of job types.
 * Each type has a name (`taskctl submit --type NAME`), a class, an optional
 * validate() that checks a job's arguments when it is submitted, and run(),
 * which does the job.
 *
 * Where the code runs. validate() runs in the daemon, on its event loop,
 * for every submit: it must be quick and must not block, allocate
 * long-lived state or touch files. run() of an `io` type runs on one of the
 * daemon's pool threads (many jobs at once, in the daemon); of a `cpu`
 * type in a prefork worker process (`taskd --worker`), one job per process;
 * of an `auto` type in either, as the router decides. Every worker loads
 * every module when it starts. A crash in run() of a job in a worker kills
 * that worker only (the job ends `lost`); a crash anywhere in the daemon
 * (validate(), an io job, init()) takes taskd down. Modules are code the
 * administrator installed, trusted like taskd itself.
 *
 * Whose rights. When taskd runs as root and the job's submitter is not
 * root, run() runs with the submitter's user and group ids (and groups) as
 * its effective ids, unless the type says TASKD_TYPE_PURE: open the files
 * a job names yourself (openat(job->dir_fd, ...)), and the kernel checks
 * them against the submitter's rights. The saved user id stays root, so do
 * not change ids yourself.
 *
 * Compatibility. The symbol's name carries the ABI version; struct
 * taskd_module, struct taskd_type, struct taskd_job, struct taskd_args and
 * struct taskd_host start with their size as the other side built them.
 * Within version 1, new fields are only ever added at the end: taskd reads
 * a field of a module's struct only when its size covers it, and the
 * inline helpers below check the host's size before calling a function
 * newer than version 1.0. Initialise the module's structs with
 * TASKD_MODULE_INIT and TASKD_TYPE_INIT and designated initialisers.
 */
#ifndef TASKD_MODULE_H
#define TASKD_MODULE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TASKD_MODULE_ABI 1
#define TASKD_MODULE_SYMBOL "taskd_module_v1"

/* Where a type's jobs run: TASKD_TYPE_IO on threads, _CPU in workers, _AUTO learned. */
enum taskd_type_class {
	TASKD_TYPE_AUTO = 0,
	TASKD_TYPE_CPU = 1,
	TASKD_TYPE_IO = 2,
};

/* What run() returns. */
enum taskd_status {
	TASKD_OK = 0,      /* done; the result, if one was set, is the job's */
	TASKD_FAILED = 1,  /* failed (exit code 1); the message set with taskd_error(), else "failed" */
	TASKD_STOPPED = 2, /* stopped because taskd_stop() said so: the job ends cancelled or timeout */
};

/*
 * Type flags. TASKD_TYPE_PURE: run() touches no files and starts no
 * processes (it computes on its arguments and input): taskd runs it
 * without switching to the submitter's ids, opens no directory for it
 * (dir_fd is -1) and makes no output files (taskd_write() fails).
 */
#define TASKD_TYPE_PURE 0x1u

/* A job's arguments and input, as validate() sees them. */
struct taskd_args {
	uint32_t size;              /* sizeof(struct taskd_args) in the running taskd */
	int argc;                   /* argv[0..argc-1]: the words after `--`; argv[argc] is NULL */
	char *const *argv;
	const unsigned char *input; /* the job's input (`--input`), input_len bytes; NULL if none */
	size_t input_len;
};

struct taskd_job;

/* taskd's functions for run(); call them through the taskd_* helpers below. */
struct taskd_host {
	uint32_t size; /* sizeof(struct taskd_host) in the running taskd */
	int (*stop)(struct taskd_job *job);
	int (*wait)(struct taskd_job *job, double seconds);
	int (*result)(struct taskd_job *job, const char *text, size_t len);
	int (*result_json)(struct taskd_job *job, const char *json);
	void (*error)(struct taskd_job *job, const char *message);
	ssize_t (*write)(struct taskd_job *job, int stream, const void *buf, size_t len);
	void (*progress)(struct taskd_job *job, const char *message);
};

/* One job, as run() gets it. Everything here is taskd's and lives until run() returns. */
struct taskd_job {
	uint32_t size;              /* sizeof(struct taskd_job) in the running taskd */
	uint32_t abi;               /* TASKD_MODULE_ABI of the running taskd */
	uint64_t id;                /* the job's id */
	int argc;                   /* its arguments, as for validate() */
	char *const *argv;
	const unsigned char *input; /* its input, input_len bytes; NULL if none */
	size_t input_len;
	double deadline;            /* CLOCK_MONOTONIC seconds when its timeout passes; 0: none */
	int cancel_fd;              /* becomes readable (POLLIN) when the job is cancelled; -1: none */
	int dir_fd;                 /* the job's directory (--cwd, taskctl's own): for openat(); -1 if PURE */
	uid_t uid;                  /* the submitter */
	gid_t gid;
	const struct taskd_host *host;
	void *priv;                 /* taskd's */
};

/* One job type. */
struct taskd_type {
	uint32_t size;     /* sizeof(struct taskd_type): set by TASKD_TYPE_INIT */
	const char *name;  /* the type's name: 1 to 64 of letters, digits, '_', '-', '.' */
	int cls;           /* enum taskd_type_class (a field named class would not compile as C++) */
	unsigned int flags; /* TASKD_TYPE_* */
	const char *usage; /* its arguments, one line ("[-a ALGORITHM] FILE..."), or NULL */
	/*
	 * At submit, in the daemon: 0 to accept the job, or -1 with a message
	 * in error (errlen bytes, NUL-terminated) to refuse it (bad_request).
	 * NULL: every job is accepted. Quick, no side effects (see above).
	 */
	int (*validate)(const struct taskd_args *args, char *error, size_t errlen);
	/* Run one job: an enum taskd_status. Required. */
	int (*run)(struct taskd_job *job);
};

/* The module: what TASKD_MODULE_SYMBOL points to. */
struct taskd_module {
	uint32_t abi;                          /* TASKD_MODULE_ABI: set by TASKD_MODULE_INIT */
	uint32_t size;                         /* sizeof(struct taskd_module): likewise */
	const char *name;                      /* the module's name (for status and messages) */
	const char *version;                   /* its version, or NULL */
	const struct taskd_type *const *types; /* NULL-terminated */
	/*
	 * Called once per process that loads the module (the daemon, taskd -t,
	 * each worker), before any other function: 0, or -1 with a message in
	 * error to refuse to load. NULL: nothing to do.
	 */
	int (*init)(char *error, size_t errlen);
};

#define TASKD_MODULE_INIT .abi = TASKD_MODULE_ABI, .size = sizeof(struct taskd_module)
#define TASKD_TYPE_INIT .size = sizeof(struct taskd_type)

/*
 * Should run() stop now? 0: go on; 1: the job was cancelled; 2: its
 * deadline passed. Cheap (no system call unless the job has a deadline):
 * call it every few milliseconds of work, and return TASKD_STOPPED when it
 * is not 0.
 */
static inline int
taskd_stop(struct taskd_job *job)
{
	return job->host->stop(job);
}

/*
 * Sleep up to seconds, waking early when the job is cancelled or its
 * deadline passes: 0 when the time passed, else what taskd_stop() says.
 */
static inline int
taskd_wait(struct taskd_job *job, double seconds)
{
	return job->host->wait(job, seconds);
}

/* The job's result as text (len bytes, UTF-8; taskctl prints it as a line). 0, or -1 (too large). */
static inline int
taskd_result(struct taskd_job *job, const char *text, size_t len)
{
	return job->host->result(job, text, len);
}

/* The job's result as one JSON value (text). 0, or -1: not JSON, or too large. */
static inline int
taskd_result_json(struct taskd_job *job, const char *json)
{
	return job->host->result_json(job, json);
}

/* Why the job failed (return TASKD_FAILED): a message for `taskctl show` and `wait`. */
static inline void
taskd_error(struct taskd_job *job, const char *message)
{
	job->host->error(job, message);
}

static inline void taskd_errorf(struct taskd_job *job, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline void
taskd_errorf(struct taskd_job *job, const char *fmt, ...)
{
	char buf[4096]; /* taskd keeps 4 KiB of an error message */
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	job->host->error(job, buf);
}

/*
 * Write to the job's stdout (stream 1) or stderr (2): `taskctl logs`.
 * len bytes are taken (beyond jobs.max_output they are counted, not kept);
 * -1 if the output file cannot be made, or for a TASKD_TYPE_PURE type.
 */
static inline ssize_t
taskd_write(struct taskd_job *job, int stream, const void *buf, size_t len)
{
	return job->host->write(job, stream, buf, len);
}

/* taskd_write() of printf-formatted text (all of it, however long): its length, or -1. */
static inline int taskd_printf(struct taskd_job *job, int stream, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline int
taskd_printf(struct taskd_job *job, int stream, const char *fmt, ...)
{
	char buf[4096], *p = buf;
	va_list ap, again;
	ssize_t w;
	int n;

	va_start(ap, fmt);
	va_copy(again, ap);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	/* Longer than the buffer: all of it, formatted again in one as long. */
	if (n >= 0 && (size_t)n >= sizeof buf) {
		if ((p = (char *)malloc((size_t)n + 1)) == NULL)
			n = -1;
		else
			vsnprintf(p, (size_t)n + 1, fmt, again);
	}
	va_end(again);
	if (n < 0) {
		if (p != buf)
			free(p);
		return -1;
	}
	w = job->host->write(job, stream, p, (size_t)n);
	if (p != buf)
		free(p);
	return w < 0 ? -1 : n;
}

/* The job's progress, shown by `taskctl show` while it runs (at most 4 KiB of text). */
static inline void
taskd_progress(struct taskd_job *job, const char *message)
{
	job->host->progress(job, message);
}

#ifdef __cplusplus
}
#endif

#endif
