/*
 * The protocol's operations (doc/protocol.md). Every op has an entry, a
 * struct op: its name, handler, flags, the selector fields and its own
 * fields. The entries sit next to their handlers, one file per theme; ops.c
 * lists them (the op table) and holds the dispatcher: server.c hands it
 * every request line; it decodes the envelope (proto.c), finds the op, does
 * the checks its entry asks for (below), and calls its handler:
 *
 *   op-submit.c   submit (a batch: op-submit-batch.c; checks: op-submit-check.c)
 *   op-restart.c  restart
 *   op-query.c    status, list, show, wait, subscribe
 *   op-control.c  cancel, pause, resume, priority, clean
 *   op-logs.c     logs
 *   op-admin.c    shutdown, reload, metrics
 *
 * and share what is declared below: replies, the per-connection state,
 * the rule of who may see what, job selection. A handler answers exactly
 * once, at once or (wait, submit) later. Loop thread only.
 */
#ifndef TASKD_OPS_H
#define TASKD_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <jansson.h>

#include "filter.h"
#include "job.h"
#include "proto.h"

struct client;
struct taskd;

/* The server's handlers (server_set_handlers), with the struct taskd as arg. */
void ops_frame_cb(struct client *c, const char *line, size_t len, void *arg);
void ops_close_cb(struct client *c, void *arg);

/* A handler: answers req on c, now or later. */
typedef void op_fn(struct taskd *td, struct client *c, struct request *req);

/*
 * What the dispatcher checks before it calls an op's handler, the same way
 * for every op, in this order (the first that fails is the answer):
 *
 *  1. every field of the request is the envelope's ("v", "id", "op"), one
 *     of the op's fields, "job" (OP_JOB, OP_JOB_OR), one of its selector
 *     fields (select), or a job field (OP_JOB_FIELDS): else bad_request
 *     "unknown field";
 *  2. OP_JOB_OR: "job" together with another of its fields: bad_request;
 *  3. a shutdown has begun and the op has no OP_WHILE_STOPPING:
 *     shutting_down;
 *  4. OP_PRIVILEGED, or OP_PRIVILEGED_WIDE without "job", and the caller is
 *     not root or the daemon's own user (privileged_uid): forbidden;
 *  5. "job" (required with OP_JOB; when given, with OP_JOB_OR) names a job
 *     the caller may see (ops_may_see) whose submit is stored: else
 *     bad_request, not_found or forbidden. The handler gets it as req->job.
 *
 * The values of the op's own fields are the handler's to check.
 */
#define OP_JOB 0x01             /* takes "job" (required): acts on that job */
#define OP_JOB_OR 0x02          /* "job" (one job), or its other fields say what to act on */
#define OP_PRIVILEGED 0x04      /* root and the daemon's own user only */
#define OP_PRIVILEGED_WIDE 0x08 /* privileged when it names no "job" (acts daemon-wide) */
#define OP_WHILE_STOPPING 0x10  /* still allowed once a shutdown has begun */
#define OP_JOB_FIELDS 0x20      /* takes the job description's fields (proto_job_field) */

#define OP_MAX_FIELDS 7         /* own fields of one op; raise it if an op needs more */

struct op {
	const char *name;                      /* TASKD_OP_* */
	op_fn *fn;
	unsigned flags;                        /* OP_* */
	unsigned select;                       /* the selector fields it takes (FILTER_*) */
	const char *fields[OP_MAX_FIELDS + 1]; /* its own fields, NULL-terminated */
};

/* The op named name, or NULL (unknown_op). */
const struct op *ops_find(const char *name);
/* The whole table (*n entries), for tests and tools. */
const struct op *const *ops_table(size_t *n);
/* Checks 1 to 4 for a request (root) of op by uid; -1 with *err. No daemon state. */
int ops_check(const struct op *op, json_t *root, uid_t uid, bool stopping,
	      struct proto_error *err);
/* Check 5: *job is the job named by "job", or NULL when the op takes none or none is named. */
int ops_resolve_job(const struct op *op, json_t *root, struct jobs *js, uid_t uid,
		    struct job **job, struct proto_error *err);


/* ---- replies (exactly one per request) ---- */

void reply_ok(struct client *c, json_t *id, json_t *result); /* steals result */
/* j's job object (job_to_json), cut to fit limits.max_frame only if it must (job_json_fit). */
void reply_job(struct client *c, json_t *id, const struct job *j);
void reply_err(struct client *c, json_t *id, const char *code, const char *message);
void reply_proto_err(struct client *c, json_t *id, struct proto_error *err); /* clears err */

/* ---- answers within limits.max_frame (doc/protocol.md "Pages") ---- */

/* The bytes a result may take in an answer to id on c: limits.max_frame less the envelope. */
size_t ops_budget(struct client *c, json_t *id);

/*
 * A page's cursor: a letter for what it continues (L a list of jobs, C a
 * cancel by selector, S status), then up to three numbers. Its text is
 * opaque to clients, who send it back as "cursor".
 */
#define CURSOR_MAX 80 /* bytes of a cursor as JSON text, at most */
/* "cursor" of req, if given, of kind: 1 with v[3], 0 when absent, -1 after replying. */
int ops_cursor(struct client *c, struct request *req, char kind, uint64_t v[3]);
/* The text of a cursor (malloc'd), and back: 0 with v[3], or -1 (not one of kind). */
char *ops_cursor_text(char kind, uint64_t a, uint64_t b, uint64_t c);
int ops_cursor_parse(const char *s, char kind, uint64_t v[3]);

/*
 * An answer holding a list cut to fit: {"KEY":[items...], more..., "next":cursor}.
 * page_init, then page_add for each item until it is full, then page_send.
 */
struct page {
	struct client *c;
	json_t *id;
	const char *key;
	char *buf;          /* the items as JSON text, comma-separated */
	size_t len, cap;
	size_t room;        /* bytes left for items */
	size_t n;           /* items taken */
};
/* reserve: bytes the answer's other fields (more) take, at most. */
void page_init(struct page *p, struct client *c, json_t *id, const char *key, size_t reserve);
/* The bytes one more item may take. */
size_t page_room(const struct page *p);
/* Add item (written out now; the caller keeps it) if it fits with extra bytes more elsewhere. */
bool page_add(struct page *p, json_t *item, size_t extra);
/* Answer with the page; more: the other fields (stolen, may be NULL); next: NULL for the last. */
void page_send(struct page *p, json_t *more, const char *next);

/*
 * For an answer with several lists (status): take into page (an array) what
 * fits in *room of list from its from-th item on; the index it stopped at.
 */
size_t ops_take_items(json_t *page, json_t *list, size_t from, size_t *room);
/*
 * Lists in the objects of an array (the workers of each handler), taken as
 * one list, one object after the other: ops_split_lists moves each
 * object's list named key into all (in the same order), leaves it empty,
 * and returns how many items there are; ops_take_split puts back what fits
 * from the from-th item on, and returns the index it stopped at.
 */
size_t ops_split_lists(json_t *objects, const char *key, json_t *all);
size_t ops_take_split(json_t *objects, const char *key, json_t *all, size_t from,
		      size_t *room);

/* ---- per connection ---- */

/* Waits (by id, by selector, submit "wait") in flight on one connection at most. */
#define OPS_MAX_WAITS 1024 /* each parked wait costs memory, answers come in bursts */

/*
 * What a connection has in flight (its server_client_data): answers that
 * come later, each holding the client (server_client_hold) until sent.
 */
struct conn {
	TAILQ_HEAD(, pending_wait) waits;     /* op-query.c: wait for one job */
	TAILQ_HEAD(, pending_group) groups;   /* op-query.c: wait by selector */
	TAILQ_HEAD(, pending_submit) submits; /* op-submit.c: not stored yet */
	int nwaits;                           /* waits, groups and submits with "wait" */
	struct subscriber *sub;               /* op-query.c: after subscribe */
};

struct conn *conn_of(struct client *c);
/* The connection is closing: drop what op-query.c / op-submit.c hold for it. */
void op_wait_closed(struct taskd *td, struct conn *cs, struct client *c);
void op_submit_closed(struct conn *cs);

/* op-query.c, for submit "wait": park a wait (its slot counted) on j, or answer now. */
void wait_attach(struct taskd *td, struct client *c, json_t *id, struct job *j);
void reply_too_many_waits(struct client *c, struct request *req);

/*
 * op-logs.c: the answer of a logs request for j from this node's output
 * files (cluster-ops.c serves other nodes' requests with it).
 */
json_t *logs_answer(struct taskd *td, const struct job *j, bool errs, json_int_t off,
		    json_int_t max);

/* ---- who may see what, which jobs ---- */

/* May uid see and act on j? privileged_uid (admission.h, the one rule), or its owner. */
bool ops_may_see(uid_t uid, const struct job *j);
/*
 * May uid ask for this priority (submit, the priority op)? Below 0 is for
 * root and the daemon's own user only, as with nice(1): a lower priority
 * runs first, past fair share. -1 with *err (forbidden) if not.
 */
int ops_check_priority(uid_t uid, int priority, struct proto_error *err);
/*
 * Jobs the client may see that pass f (in id order; malloc'd, *n of them),
 * non-final ones only if live. Like "job", not those whose submit is not
 * stored yet.
 */
struct job **ops_select(struct taskd *td, struct client *c, const struct filter *f, bool live,
			size_t *n);
/* Is one of the op's selector fields given? */
bool ops_has_selector(struct request *req);
/* Decode the op's selector fields (its table entry's select); -1 after replying. */
int ops_selector(struct client *c, struct request *req, struct filter *f);

#endif
