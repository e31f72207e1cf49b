/*
 * Private to the files of the job table: job.c (the table: ids, states,
 * counts, hooks, finishing and pruning, restored jobs), job-unique.c (unique
 * keys) and job-array.c (job arrays). Nothing outside them includes it.
 * Loop thread only.
 */
#ifndef TASKD_JOB_PRIVATE_H
#define TASKD_JOB_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "job.h"

/*
 * A unique key (--unique) and who holds it: the pending, running or
 * suspended jobs of uid with that key (each job of an array counts), and
 * the id to answer with (a job's, or its array's).
 */
struct uniq {
	uid_t uid;
	char *key;
	uint64_t id;
	bool array;
	size_t holders;
	struct uniq *next;
};

struct jobs {
	struct job **buckets;   /* chained hash by id, power-of-two size */
	size_t nbuckets;
	struct uniq **ubuckets; /* unique keys by (uid, key), power-of-two size */
	size_t nubuckets, nuniq;
	struct job_array **abuckets; /* arrays by id, power-of-two size */
	size_t nabuckets, narrays;
	TAILQ_HEAD(job_array_list, job_array) arrays; /* in id order */
	size_t total;
	size_t counts[JOB_NSTATES];
	size_t nfinished;
	uint64_t next_id;
	struct job_list all;
	struct job_list finished;
	struct job_list running;
	struct user_count {
		uid_t uid;
		size_t queued;
		uint64_t job_bytes;    /* job_spec_bytes of its jobs */
		uint64_t output_bytes; /* their output files */
	} *users;               /* few submitting users: a small array */
	size_t nusers;
	struct jobs_hooks hooks;
	TAILQ_HEAD(, job_observer) observers;
};

/* job.c: the counts of uid's jobs (made if needed). */
struct user_count *jobs_user_count(struct jobs *js, uid_t uid);
/* job.c: put j into the hash, the id-ordered list and the counts. */
void jobs_link(struct jobs *js, struct job *j);
/* job-unique.c: j now holds its unique key (if any) / no longer holds it. */
void jobs_uniq_hold(struct jobs *js, const struct job *j);
void jobs_uniq_release(struct jobs *js, const struct job *j);

#endif
