/*
 * The job table: every job the daemon knows, by id (O(1) lookup), in id
 * order (for list) and, once finished, in finishing order (for pruning
 * beyond keep_finished). Loop thread only.
 */
#ifndef TASKD_JOB_H
#define TASKD_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <jansson.h>

#include "config.h"
#include "exec.h"
#include "labels.h"
#include "router.h"

enum job_state {
	JOB_QUEUED = 0,
	JOB_RUNNING,
	JOB_WAITING,   /* for its dependencies (spec.deps) */
	JOB_SCHEDULED, /* for its start time (due_at): --in/--at, or a retry's backoff */
	JOB_PAUSED,    /* held by `pause ID` until `resume ID` */
	JOB_DONE,
	JOB_FAILED,
	JOB_TIMEOUT,
	JOB_CANCELLED,
	JOB_LOST,
	/*
	 * Last: taskd 0.1.0's records hold states as these numbers
	 * (record-decode.c, version 1), so the ones before keep theirs.
	 */
	JOB_SUSPENDED, /* started, then stopped by `pause ID` (its process group) until `resume ID` */
	JOB_NSTATES
};

enum job_pool { POOL_NONE = 0, POOL_THREAD, POOL_PROCESS, POOL_HANDLER };

/*
 * Why a job that has not started (or a suspended one asked to resume) does
 * not run now: the job object's "wait_reason" (sched_wait_reason).
 */
enum wait_reason {
	WAIT_NONE = 0,
	WAIT_SLOTS,         /* its class's slots are full (cpu slots, workers, threads) */
	WAIT_MEMORY,        /* its kind's peak does not fit in the memory budget now */
	WAIT_DEPENDENCY,    /* --after: jobs it waits for have not ended */
	WAIT_FAIR_SHARE,    /* another user's turn at its priority */
	WAIT_PAUSED,        /* `pause ID`, or its class or its queue is paused */
	WAIT_SCHEDULED,     /* --in/--at, or a retry's backoff */
	WAIT_PRESSURE,      /* CPU or memory pressure above the brake's threshold */
	WAIT_QUEUE,         /* its queue (--queue) has no free slot */
	WAIT_QUEUE_REMOVED, /* its queue is no longer in the configuration */
	WAIT_ARRAY,         /* its array has --array ...%MAX jobs running */
};
const char *wait_reason_name(enum wait_reason w); /* NULL for WAIT_NONE */

struct job;
struct gate;
struct jobmon;

/* Someone waiting for a job to reach a final state (a `wait` request). */
struct job_waiter {
	void (*cb)(struct job *job, void *arg);
	void *arg;
	TAILQ_ENTRY(job_waiter) entry;
};

/*
 * One dependency of a job: run after job `id` ended done (or in any final
 * state if `any`). state is the dependency's final state once known, else
 * -1; while unknown, waiter sits on the dependency (life.c).
 */
struct job_dep {
	uint64_t id;
	bool any;
	int state;
	bool watching;
	struct job_waiter waiter;
	struct job *owner;
	void *ctx;
};

#define JOB_MAX_DEPS 1024
#define JOB_MAX_RETRIES 1000
#define JOB_RETRY_DELAY_DEFAULT 1.0
#define JOB_RETRY_DELAY_CAP 3600.0
#define JOB_MAX_SLOTS 1024 /* --slots: at most process_pool.max_workers, and this */

/* What a client asked for: decoded and validated by proto_job_decode. */
struct job_spec {
	int type;          /* enum builtin_type, or JOBTYPE_HANDLER (jobtype.h) */
	char *handler;     /* JOBTYPE_HANDLER: the handler's name */
	char **argv;       /* NULL-terminated */
	char **env;        /* NULL-terminated "K=V", or NULL */
	char *cwd;
	char *name;        /* or NULL */
	struct labels labels;
	enum job_class class;
	int priority;
	double timeout;
	struct job_dep *deps; /* --after / --after-any, ndeps of them */
	size_t ndeps;
	double run_at;        /* unix seconds, 0 = as soon as possible */
	int retries;          /* extra attempts after a failed/timeout/lost one */
	double retry_delay;   /* before the first retry, doubled for each next one */
	char *unique;         /* --unique KEY: one pending or running job per user and key, or NULL */
	char *queue;          /* --queue NAME: a named queue of the configuration, or NULL */
	int slots;            /* cpu slots it takes when it runs in the process pool (>= 1) */
	/*
	 * Its input (submit "input": a command's standard input, a handler job's
	 * input), stored beside it in a file (output.h): its size, 0 if none;
	 * the bytes themselves only between decoding and the file (op-submit.c,
	 * and a record before version 5 of a handler's job: main.c), else NULL.
	 */
	uint64_t input_bytes;
	char *input;
	struct cg_limits limits; /* --memory, --cpus, --pids (0: none) */
	char *notify;         /* shell command run when the job ends (notify.c), or NULL */
};

/*
 * A job array (`submit --array 1-100:STEP%MAX`): one job per index, ids
 * first .. first + count - 1 in index order, the array's id being its first
 * job's. Its jobs share the array's spec (they borrow every pointer of it;
 * only their priority and dependencies are their own), so that an array of
 * 100,000 jobs costs one spec and one stored record: a job of an array has a
 * row of its own in the store only once it changed after the submit
 * (record.h). Owned by the job table while any of its jobs is in it.
 */
struct job_array {
	uint64_t id;            /* = its first job's id */
	uint64_t count;         /* its jobs */
	long long start, step;  /* job k runs with TASKD_ARRAY_INDEX = start + k * step */
	int max;                /* at most this many of its jobs running at once, 0 = any */
	struct job_spec spec;   /* what its jobs share (ndeps 0: each job has its own) */
	struct job_dep *deps;   /* the dependencies as submitted, for jobs restored without a row */
	size_t ndeps;
	uid_t uid;
	gid_t gid;
	double submitted_at;
	enum job_state first_state; /* what its jobs were when stored: queued, waiting or scheduled */
	size_t present;         /* its jobs still in the table */
	uint64_t job_bytes;     /* its description, as counted for its owner (job_spec_bytes) */
	size_t counts[JOB_NSTATES];
	bool stored;            /* its record is in the store */
	bool persist_dirty;     /* persist.c */
	struct gate *gate;      /* sched-gate.c: its %MAX, or NULL */
	struct job_array *hnext; /* hash chain */
	TAILQ_ENTRY(job_array) entry;
};

/*
 * Cluster mode (cluster*.c, doc/cluster.md): where a job stands in the
 * cluster. All zero on a single node.
 */
struct cluster_hold;
struct job_cluster {
	bool member;               /* a job of the cluster (jobs_insert): its object shows these */
	char *node;                /* the node that runs or ran it, or NULL */
	char *from;                /* redelivered: the node that had it before, or NULL */
	bool redelivered;          /* this attempt runs again: a node took it and went silent */
	uint64_t delivery;         /* the stream's delivery count when its entry was written (0: none) */
	uint64_t rev;              /* revision of its entry in the jobs bucket the table holds */
	struct cluster_hold *hold; /* the delivery this node holds it by (cluster-hold.c), or NULL */
	uint32_t puts;             /* entries this node wrote for it: a later one outdates a resend */
};

struct job {
	uint64_t id;
	enum job_state state;
	struct job_spec spec;
	uid_t uid;
	gid_t gid;
	enum job_class routed;
	char *kinds;             /* its kind keys, packed (kindkey.h), set when queued */
	struct route route;      /* how it was routed (route.key: the key that decided) */
	enum job_class counts_as; /* the slots it holds while running; reclassification moves it */
	double reclassified_at;  /* unix time it last changed class while running, 0 = never */
	long need_kb;            /* its kind's memory need when it started (admit_need), -1 unknown */
	uint64_t held_kb;        /* its share of the running jobs' memory sum (sched.c) */
	char *cgroup;            /* its cgroup (while running and after), or NULL */
	struct jobmon *mon;      /* sampler.c's samples while it runs */
	TAILQ_ENTRY(job) holding; /* resources.c: running commands that hold memory */
	enum job_pool pool;
	int worker;              /* thread index or worker pid, -1 none */
	double submitted_at;
	double queued_at;        /* when it last entered a run queue (sched_add), 0 = never */
	double started_at;       /* 0 = not yet */
	double finished_at;
	struct run_result res;   /* valid once finished (strings owned by the job) */
	struct run *run;         /* while running */
	bool cancel_requested;
	char *progress;          /* a handler's last progress message while it runs, or NULL */
	bool persist_dirty;      /* persist.c: queued for the next commit */

	int attempt;             /* 1-based */
	json_t *attempts;        /* earlier attempts' outcomes, or NULL */
	double due_at;           /* while scheduled: when it becomes queued */
	size_t tidx;             /* position in life.c's timer heap, SIZE_MAX if none */
	bool admitted;           /* its submit is on disk: life.c may move it on */
	bool unkillable;         /* lost by a restart that could not kill what was left: no retry */
	bool announced;          /* jobs_announce'd (or restored): observers hear of it */

	uint64_t restarted_from; /* `restart`: the job it re-runs, 0 none */
	struct job_array *array; /* its array, or NULL */
	long long array_index;   /* its index in it */
	double suspended_at;     /* while suspended: since when (unix seconds) */
	double suspended_for;    /* seconds suspended in all, this attempt */
	bool resume_wanted;      /* suspended, `resume` asked: waits for its cpu slots */
	int slots_held;          /* cpu slots it holds now (sched-dispatch.c, sched-suspend.c) */
	struct gate *gates[2];   /* sched-gate.c: its array's %MAX, its queue; what it must pass */
	int ngates;
	int gates_passed;        /* gates it passed (it holds a place in each) */
	struct job_cluster cl;   /* cluster mode only */
	uint64_t job_bytes;      /* its description, as counted for its owner (job_spec_bytes) */
	uint64_t output_bytes;   /* its output files, when last measured (quota.c) */
	bool output_capped;      /* this run may keep only what was left of its owner's quota */
	bool output_stopped;     /* this run keeps no more output: its owner's quota is used up */
	bool output_written;     /* a run may have left bytes in its output files (quota.c) */
	bool cancel_running;     /* it was running when cancel_tag was set */
	uint64_t cancel_tag;     /* the cancel by selector that cancelled it (op-control.c) */

	uint64_t seq;            /* queue order within a priority */
	uint64_t vt;             /* fair-share turn within a priority (sched.c), 0 = off */
	size_t qidx;             /* position in the queue heap, SIZE_MAX if not queued */

	struct job *hnext;       /* hash chain */
	TAILQ_ENTRY(job) all;
	TAILQ_ENTRY(job) finished;
	TAILQ_ENTRY(job) running; /* while JOB_RUNNING (jobs_first_running) */
	TAILQ_HEAD(, job_waiter) waiters;
};

TAILQ_HEAD(job_list, job);

struct jobs;

struct jobs *jobs_new(void);
void jobs_free(struct jobs *js);

/* Create a queued job owning spec's contents (spec is zeroed); assigns the next id. */
struct job *jobs_add(struct jobs *js, struct job_spec *spec, uid_t uid, gid_t gid, double now);
struct job *jobs_find(struct jobs *js, uint64_t id);
/* First job in id order (TAILQ_NEXT(j, all) for the next) / last. */
struct job *jobs_first(struct jobs *js);
struct job *jobs_last(struct jobs *js);
/* The first job whose id is id or more (a page's cursor), or NULL. */
struct job *jobs_seek(struct jobs *js, uint64_t id);
size_t jobs_count(struct jobs *js, enum job_state st);
size_t jobs_total(struct jobs *js);
/* Jobs of this user still pending (job_state_pending: for queue.max_pending_per_user). */
size_t jobs_queued_by(struct jobs *js, uid_t uid);
/*
 * Unique keys (--unique): the job holding key for uid now (pending, running
 * or suspended), or none. *id is that job's id, or its array's; *array
 * says which; *committed whether its submit is stored (else the caller
 * answers after the next commit). 0 if found, -1 if not.
 */
int jobs_unique(struct jobs *js, uid_t uid, const char *key, uint64_t *id, bool *array,
		bool *committed);
/*
 * Arrays: create one for a spec (taken, like jobs_add: zeroed after), then
 * add its jobs with jobs_add_member; find one by id; the first in id order
 * (TAILQ_NEXT(a, entry) for the next).
 */
struct job_array *jobs_array_new(struct jobs *js, struct job_spec *spec, uid_t uid, gid_t gid,
				 double now, uint64_t count, long long start, long long step,
				 int max);
struct job *jobs_add_member(struct jobs *js, struct job_array *a, uint64_t k);
struct job_array *jobs_array_find(struct jobs *js, uint64_t id);
struct job_array *jobs_arrays_first(struct jobs *js);
/* {"id","count","start","step","max","owner","states":{...},"removed",...}: show of an array. */
json_t *job_array_to_json(const struct job_array *a);
/* The id whose input file a job reads (its array's for a job of an array). */
uint64_t job_input_owner(const struct job *j);
/* The running jobs: the first, then TAILQ_NEXT(j, running). */
struct job *jobs_first_running(struct jobs *js);

/*
 * What a user's jobs store (quota.h decides what that may be): the bytes
 * of their descriptions (job_spec_bytes, counted from jobs_add or
 * jobs_restore until the job is gone) and of their output files (as last
 * set by jobs_set_output_bytes).
 */
void jobs_user_bytes(struct jobs *js, uid_t uid, uint64_t *job_bytes, uint64_t *output_bytes);
/* j's output files take n bytes now. */
void jobs_set_output_bytes(struct jobs *js, struct job *j, uint64_t n);
/* Free j's environment (nothing shows it once j is over) and count what is left of it. */
void jobs_drop_env(struct jobs *js, struct job *j);
/* j has env (taken) as its environment now, counted for its owner (cluster mode). */
void jobs_set_env(struct jobs *js, struct job *j, char **env);
/*
 * The bytes a job's description takes, in memory, in its stored record and
 * in its input file: its argv, environment, cwd, name, labels,
 * dependencies, unique key, queue, a handler job's handler, and its input
 * (a command's or a handler job's). The one place that says what a job
 * brings: whatever else a job comes to carry is counted here.
 */
uint64_t job_spec_bytes(const struct job_spec *spec);
uint64_t jobs_next_id(struct jobs *js);

void job_set_state(struct jobs *js, struct job *j, enum job_state st);
/* j changed without changing state: call the changed hook (so it is stored again). */
void jobs_touch(struct jobs *js, struct job *j);
/* Take a final job back out of the finished list (a retry after a restart lost it). */
void jobs_reopen(struct jobs *js, struct job *j, enum job_state st);
/* All pending jobs (job_state_pending). */
size_t jobs_pending(struct jobs *js);
/*
 * More watchers of the table (events.c), besides the store's hooks:
 * changed(job, prev, arg) when a new job is announced (prev -1: its submit
 * is stored) or a job changes state (prev: the state it left). Observers
 * must not change the table.
 */
struct job_observer {
	void (*changed)(struct job *j, int prev, void *arg);
	void *arg;
	TAILQ_ENTRY(job_observer) entry;
};
void jobs_observe(struct jobs *js, struct job_observer *o);
void jobs_unobserve(struct jobs *js, struct job_observer *o);
/*
 * Tell the observers about a new job (once its submit is acknowledged):
 * state changes before that (life_prepare, a cancel) are not passed on.
 */
void jobs_announce(struct jobs *js, struct job *j);
/*
 * Watch the table: changed(job) after a job is added or changes state,
 * removed(job) when a finished job is pruned or cleaned (before it is
 * freed), array_removed(array) when the last job of an array left the
 * table (before it is freed): persist.c keeps the store in step.
 */
struct jobs_hooks {
	void (*changed)(struct job *, void *);
	void (*removed)(const struct job *, void *);
	void (*array_removed)(const struct job_array *, void *);
	void *arg;
};
void jobs_set_hooks(struct jobs *js, const struct jobs_hooks *h);
/*
 * Move j to final state st, fire its waiters, then drop the oldest finished
 * jobs beyond keep (calling prune(job, arg) for each before it is freed).
 * j itself may be pruned: do not use it afterwards. Waiter callbacks must
 * not finish jobs themselves.
 */
void jobs_finish(struct jobs *js, struct job *j, enum job_state st, int keep,
		 void (*prune)(struct job *, void *), void *arg);
/* Drop the oldest finished jobs beyond keep (prune(job, arg) first for each). */
void jobs_prune(struct jobs *js, int keep, void (*prune)(struct job *, void *), void *arg);
/*
 * Remove the finished job j now (clean): prune(j, arg) first, then the
 * removed hook (the store follows), then j is freed.
 */
void jobs_delete(struct jobs *js, struct job *j, void (*prune)(struct job *, void *), void *arg);
void job_wait(struct job *j, struct job_waiter *w);
void job_unwait(struct job *j, struct job_waiter *w);

bool job_state_final(enum job_state st);
/* Not running and not final: queued, waiting, scheduled or paused (counts as pending). */
bool job_state_pending(enum job_state st);
const char *job_state_name(enum job_state st);
int job_state_parse(const char *name); /* -1 if unknown */
const char *job_pool_name(enum job_pool p);

void job_spec_free(struct job_spec *spec);
/*
 * What `restart` runs again of j: a copy of its spec without its
 * dependencies and start time (they are past), its input by size only (the
 * caller shares the file); a job of an array gets its array's spec and, in
 * its environment, its TASKD_ARRAY_ID and TASKD_ARRAY_INDEX.
 */
void job_spec_rerun(struct job_spec *dst, const struct job *j);
/* The kind keys of a job as submitted (kindkey.h): its name, type or handler, command. */
void job_kind_keys(const struct job_spec *spec, struct kind_keys *k);

/*
 * A job in no table, with the defaults of a new one (record-decode.c
 * builds the jobs it restores with it), and freeing one that is in no
 * table.
 */
struct job *job_new(void);
void job_free(struct job *j);
/*
 * Put a job restored from its stored row (record_decode: its own id and
 * state) into the table, at startup, in id order (the id-ordered list
 * relies on it). -1 with *cause if that id is already there (j is not taken).
 */
int jobs_restore(struct jobs *js, struct job *j, char **cause);
/*
 * At startup, before the jobs: an array restored from its stored record
 * (taken). A job of it restored from a row is joined to it with
 * job_array_join (its spec borrowed, its own priority and dependencies
 * kept); jobs_restore_member makes job k of it as it was stored with the
 * array (a job without a row of its own). -1 with *cause (a second array
 * of that id, one whose jobs would overlap another's).
 */
int jobs_restore_array(struct jobs *js, struct job_array *a, char **cause);
void job_array_join(struct job *j, struct job_array *a);
struct job *jobs_restore_member(struct jobs *js, struct job_array *a, uint64_t k);
/* Forget an array none of whose jobs is in the table (array_removed hook; freed). */
void jobs_array_drop(struct jobs *js, struct job_array *a);
void job_array_free(struct job_array *a);
/*
 * Put a job of the cluster (cluster*.c: its own id and state, read from the
 * cluster) into the table wherever its id falls, and announce it. -1 if
 * that id is there already (j is not taken).
 */
int jobs_insert(struct jobs *js, struct job *j);
/*
 * Drop a job that was never acknowledged (its submit could not be stored):
 * no hooks; its waiters are called with the job not in a final state.
 */
void jobs_discard(struct jobs *js, struct job *j);
/* Never hand out ids below next (the store remembers ids of deleted jobs). */
void jobs_set_next_id(struct jobs *js, uint64_t next);

/*
 * Cluster mode: is j a job of the cluster this node does not hold? Its
 * changes are other nodes' runs, seen in the mirror (cluster.h): counted,
 * notified and logged by the node that holds it, not here.
 */
bool job_elsewhere(const struct job *j);

/* Does j have output files: a job of a type that may write some (jobtype.h), once started? */
bool job_has_output(const struct job *j);

/* The job object (doc/protocol.md "Job object"). */
json_t *job_to_json(const struct job *j);
/*
 * Fields other modules own, added to every job object, called last by
 * job_to_json: the scheduler's wait reason and the resources' route, cgroup
 * and live samples (NULL: "wait_reason" is null).
 */
void job_set_json_hook(void (*fn)(const struct job *j, json_t *o, void *arg), void *arg);
/*
 * The job object within budget bytes of compact JSON (an answer must fit
 * limits.max_frame): when it does not fit, the oldest attempts are left out
 * ("attempts_omitted": how many), then, if still needed, long strings and
 * lists are cut ("cut": true). job_json_fit does it to a job object made
 * before (a wait by selector keeps them until all its jobs are final).
 */
json_t *job_to_json_fit(const struct job *j, size_t budget);
void job_json_fit(json_t *o, size_t budget);
/* A job's error as shown (job object, events): at most JOB_ERROR_SHOWN bytes, or null. */
json_t *job_error_json(const char *error);
#define JOB_ERROR_SHOWN 1024
/*
 * The bytes the job object of a new job with this description takes: what
 * it shows of the description (argv, cwd, name, unique key, queue, labels,
 * dependencies) and JOB_OBJECT_RESERVE for its other fields with their
 * values. A submit is refused when that would not fit limits.max_frame. (A
 * long error, or many attempts, may still make it too big later: then
 * job_json_fit cuts.)
 */
size_t job_spec_shown_bytes(const struct job_spec *spec);
#define JOB_OBJECT_RESERVE (2u << 10)

/* Current time as unix seconds with a fraction. */
double now_unix(void);

#endif
