/*
 * The wire format (doc/protocol.md): decoding request lines and job
 * descriptions, encoding responses. Pure functions, no daemon state.
 */
#ifndef TASKD_PROTO_H
#define TASKD_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "job.h"

struct op;

struct request {
	json_t *root;    /* the whole object (owned) */
	json_t *id;      /* borrowed from root; json_null() if absent */
	const char *op;
	/* Set by the dispatcher (ops.h): */
	const struct op *entry; /* the op's entry in the op table */
	struct job *job;        /* the job named by "job", or NULL */
};

/* An error to send back: code is one of TASKD_ERR_*, message malloc'd. */
struct proto_error {
	const char *code;
	char *message;
};

/*
 * Parse one frame (without its newline). On failure fills *err, returns -1,
 * and req->id is the id when it could be recovered (else json_null(), owned).
 */
int proto_decode(const char *line, size_t len, struct request *req, struct proto_error *err);
void proto_request_free(struct request *req);

/* Is key a field of every request ("v", "id", "op")? */
bool proto_envelope_field(const char *key);
/* Is key a field of a job description ("argv", "cwd", ...: doc/protocol.md)? */
bool proto_job_field(const char *key);

/*
 * What decoding a job description depends on. With check_cwd, cwd must be
 * an existing directory as the daemon sees it; without, only an absolute
 * path (a root daemon does not look at paths for other users: it would
 * tell them what exists where they cannot look; the run checks cwd as the
 * user). max_input: the most bytes "input" may decode to (limits.max_input).
 */
struct proto_job_opts {
	double default_timeout;
	bool check_cwd;
	uint64_t max_input;
};

/*
 * The job description in a submit request → spec (validated; "input"
 * decoded into spec->input, spec->input_bytes long). Fields that are not
 * job fields are not looked at: the op table (ops.c) says which a submit
 * may carry. "array" is not part of the spec: proto_array_decode.
 */
int proto_job_decode(json_t *obj, const struct proto_job_opts *o, struct job_spec *spec,
		     struct proto_error *err);

/* A job inside a batch's "jobs" array: any other field than a job field is unknown there. */
int proto_batch_job_decode(json_t *obj, const struct proto_job_opts *o, struct job_spec *spec,
			   struct proto_error *err);

/*
 * "array": {"start","end","step","max"} of a submit (step default 1, max
 * default 0 = no limit): 0 and the job count *count, 1 if there is no
 * "array", -1 with *err.
 */
struct proto_array {
	long long start, end, step;
	int max;
	uint64_t count;
};
int proto_array_decode(json_t *obj, struct proto_array *a, struct proto_error *err);

/*
 * The bytes of the "input" strings of a request (a submit's, or its batch's
 * jobs'): a line may be longer than limits.max_frame by that much.
 */
size_t proto_input_length(json_t *req);

/* "job": <positive integer> */
int proto_job_id(json_t *req, uint64_t *id, struct proto_error *err);

/* Response lines, newline-terminated, malloc'd; *len set. */
/* o as one compact JSON line with its newline (malloc'd; o is not freed). */
char *proto_line(json_t *o, size_t *len);
char *proto_ok(json_t *id, json_t *result, size_t *len);   /* steals result */
char *proto_fail(json_t *id, const char *code, const char *message, size_t *len);

void proto_error_set(struct proto_error *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void proto_error_clear(struct proto_error *err);

#endif
