/*
 * Private to the files of the stored job records: record.c (encoding, the
 * stored names of run outcomes), record-fields.c (reading a record's parts
 * with their checks) and record-decode.c (the layouts of each version, and
 * of arrays). Nothing outside them includes it.
 */
#ifndef TASKD_RECORD_PRIVATE_H
#define TASKD_RECORD_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "job.h"

/* What both versions hold of a run's result, read; -1 if a value is out of range. */
struct result_in {
	json_int_t status, exit_code, signal, max_rss_kb, out_bytes, err_bytes, pid;
	double cpu_user, cpu_sys, wall, runq_wait, started_at, finished_at;
	int out_truncated, err_truncated;
	json_t *result, *error;
};

/* The job's own fields, read by either version: the checks they share. */
struct job_in {
	json_int_t uid, gid, worker, priority, retries, attempt;
	int type, class, routed, pool;
	const char *route_key;
	json_t *argv, *env, *cwd, *name, *labels, *attempts, *notify;
	double timeout, run_at, retry_delay, submitted_at, started_at, finished_at, due_at;
};

/* What version 5 added to the spec, read: -1 if a value is out of range. */
struct spec3_in {
	json_t *unique, *queue;
	json_int_t slots, input_bytes;
};

/* record.c: a run status by its stored name, -1 if unknown. */
int record_status_parse(const char *name);
/* record.c: whether a job of type has the "handler" part. */
bool record_has_handler_part(int type);

/* record-fields.c: the readers of a record's parts (0, or -1 if bad). */
int record_take_str(const json_t *v, char **out);
bool record_time_ok(double t);
int record_take_result(const struct result_in *in, struct run_result *r);
int record_take_job(const struct job_in *in, struct job *j, const char **why);
int record_deps_alloc(struct job_spec *sp, const json_t *deps);
int record_dep_set(struct job_dep *d, json_int_t id, int any, int state);
int record_take_deps(json_t *deps, struct job_dep **out, size_t *nout);
int record_take_spec3(const struct spec3_in *in, struct job_spec *sp);
int record_unpack_spec(json_t *spec, int version, struct job_in *in, struct spec3_in *in3,
		       const char **type, const char **cls, json_t **deps);
int record_take_limits(json_t *l, struct cg_limits *lim);

#endif
