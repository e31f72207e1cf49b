/*
 * Private to the files of the submit and restart ops: op-submit.c (submit
 * of one job or an array; submits waiting for their commit), op-submit-
 * check.c (what a submit may ask for), op-submit-batch.c (a batch) and
 * op-restart.c (restart). Nothing outside them includes it. Loop thread
 * only.
 */
#ifndef TASKD_OP_SUBMIT_PRIVATE_H
#define TASKD_OP_SUBMIT_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <jansson.h>

#include "job.h"
#include "ops.h"
#include "proto.h"

struct client;
struct taskd;

/*
 * A submit waiting for its jobs to be on disk (persist.c's group commit):
 * answered, and its jobs queued, from submit_committed. Its new jobs are
 * ids[0..n) and an array's first .. first + count - 1.
 */
struct pending_submit {
	struct taskd *td;
	struct client *client;  /* NULL once the client is gone */
	json_t *id;
	json_t *answer;         /* the result, or NULL: {"id": ids[0]} */
	bool wait;              /* "wait": true — answered when the job ends (a wait slot is reserved) */
	uint64_t holder;        /* a unique key's holder it answers with (must be stored), or 0 */
	bool holder_array;
	uint64_t first, count;  /* an array's jobs */
	size_t n;
	TAILQ_ENTRY(pending_submit) entry;
	uint64_t ids[];
};

/*
 * op-submit-check.c: the decoding options for c's jobs; room for n more
 * jobs (else answered); the checks of a decoded job as uid's (gid's).
 */
struct proto_job_opts submit_job_opts(struct taskd *td, struct client *c);
int submit_check_room(struct taskd *td, struct client *c, struct request *req, uint64_t n);
int submit_check_job(struct taskd *td, uid_t uid, gid_t gid, struct job_spec *spec,
		     struct proto_error *err);

/* op-submit.c: what the submits of each kind share. */
int submit_holder_of(struct taskd *td, uid_t uid, const char *key, uint64_t *id, bool *array,
		     bool *committed);
void submit_holder_answer(json_t *o, uint64_t id, bool array);
int submit_store_input(struct taskd *td, uint64_t id, struct job_spec *spec, char **cause);
struct job *submit_add_job(struct taskd *td, struct job_spec *spec, uid_t uid, gid_t gid,
			   double now);
struct pending_submit *pending_submit_new(struct taskd *td, struct client *c, struct request *req,
					  size_t n);
void submit_committed(bool ok, const char *cause, void *arg);
bool submit_local(struct request *req);

/* op-submit-batch.c: a batch ("jobs": arr, an array). */
void submit_batch(struct taskd *td, struct client *c, struct request *req, json_t *arr);

#endif
