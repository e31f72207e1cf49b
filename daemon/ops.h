/*
 * The protocol's operations (doc/protocol.md). ops.c holds the op table
 * and the dispatcher: server.c hands it every request line, it finds the
 * op and calls its handler. The handlers live in one file per theme:
 *
 *   op-submit.c   submit
 *   op-query.c    status, list, show, wait, subscribe
 *   op-control.c  cancel, pause, resume, priority, clean
 *   op-logs.c     logs
 *   op-admin.c    shutdown, reload, metrics
 *
 * and share what is declared below: replies, the per-connection state,
 * the rule of who may see what, job lookup and selection. A handler
 * answers at once or (wait, submit) later; either way exactly once.
 * Loop thread only.
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

op_fn op_submit;                                                   /* op-submit.c */
op_fn op_status, op_list, op_show, op_wait, op_subscribe;          /* op-query.c */
op_fn op_cancel, op_pause, op_resume, op_priority, op_clean;       /* op-control.c */
op_fn op_logs;                                                     /* op-logs.c */
op_fn op_shutdown, op_reload, op_metrics;                          /* op-admin.c */

/* ---- replies (exactly one per request) ---- */

void reply_ok(struct client *c, json_t *id, json_t *result); /* steals result */
void reply_err(struct client *c, json_t *id, const char *code, const char *message);
void reply_proto_err(struct client *c, json_t *id, struct proto_error *err); /* clears err */

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

/* ---- who may see what, which jobs ---- */

/* Daemon-wide ops: root and the daemon's own user only; else replies forbidden. */
bool ops_privileged(struct client *c, struct request *req);
/* May the client see and act on j? */
bool ops_may_see(struct client *c, const struct job *j);
/* The job named by "job", or NULL after replying not_found/forbidden/bad_request. */
struct job *ops_lookup(struct taskd *td, struct client *c, struct request *req);
/*
 * Jobs the client may see that pass f (in id order; malloc'd, *n of them),
 * non-final ones only if live. Like a lookup, not those whose submit is not
 * stored yet.
 */
struct job **ops_select(struct taskd *td, struct client *c, const struct filter *f, bool live,
			size_t *n);
/* wait and cancel by selector instead of "job": is one given / decode it (-1 after replying). */
bool ops_has_selector(struct request *req, unsigned allow);
int ops_selector(struct client *c, struct request *req, unsigned allow, struct filter *f);

#endif
