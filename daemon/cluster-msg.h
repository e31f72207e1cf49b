/*
 * What a cluster's messages hold (doc/cluster.md "Messages and entries"),
 * as pure functions: the entry of a job (in the stream's messages and in
 * the jobs bucket: the stored job record of record.c in an envelope), the
 * metadata in a JetStream delivery's ack subject, JetStream's answers to a
 * publish, the check of a stream's settings, node names. No NATS I/O here.
 */
#ifndef TASKD_CLUSTER_MSG_H
#define TASKD_CLUSTER_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>

#include "job.h"

/* The envelope's version ("v"): a node refuses entries of a newer one. */
#define CLUSTER_ENTRY_VERSION 1

/*
 * {"v":1,"state":S,"by":NODE,"node":NODE|null,"from":NODE|null,
 *  "redelivered":bool,"delivery":N,"cancel":bool,"job":RECORD}
 * state: the job's state; by: the node that wrote the entry; node, from,
 * redelivered, delivery: j->cl; cancel: a cancel request by `by`; job: the
 * stored record (record.c) of the job, without its environment in the
 * bucket.
 */
struct cluster_entry {
	char *by;
	bool cancel;
};

/*
 * The entry of j in state st, written by node `by`; with_env: with the
 * job's environment (a message of the stream: the run needs it), else
 * without (the bucket: nothing shows it). malloc'd text, *len its length.
 */
char *cluster_entry_encode(const struct job *j, enum job_state st, const char *by, bool cancel,
			   bool with_env, size_t *len);
/*
 * A job (in no table, id `id`) from an entry: its state, its record, its
 * cl.node, cl.from, cl.redelivered, cl.delivery; *e the rest. NULL with *cause (what is
 * wrong, for a log line) if data is not an entry this taskd can read.
 */
struct job *cluster_entry_decode(uint64_t id, const char *data, size_t len,
				 struct cluster_entry *e, char **cause);
void cluster_entry_clear(struct cluster_entry *e);

/*
 * The metadata of a JetStream delivery, from its ack subject:
 * $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>
 * or the form with a domain and an account hash first (and tokens after).
 */
struct cluster_ack {
	char consumer[64];  /* the consumer that delivered it (cut if longer) */
	uint64_t delivered; /* how many times it was delivered, this one included */
	uint64_t sseq;      /* its sequence in the stream */
	uint64_t cseq;      /* the consumer's delivery sequence */
	int64_t time;       /* when it was stored, unix nanoseconds */
	uint64_t pending;   /* messages the consumer has left after this one */
};
int cluster_ack_parse(const char *subject, struct cluster_ack *a);

/*
 * JetStream's answer to a publish (or an API request):
 * {"stream":S,"seq":N[,"duplicate":true]}, or {"error":{"code":C,
 * "err_code":E,"description":D}}. 0 with seq/duplicate; -1 with error
 * (malloc'd text) and err_code (0 if none, e.g. unreadable).
 */
struct cluster_puback {
	uint64_t seq;
	bool duplicate;
	int err_code;
	char *error;
};
int cluster_puback_parse(const char *data, size_t len, struct cluster_puback *pa);
void cluster_puback_clear(struct cluster_puback *pa);
/* JetStream's error code for a publish whose expected last sequence did not hold. */
#define CLUSTER_ERR_WRONG_LAST_SEQ 10071

/*
 * Can taskd use a stream with these settings for its work queue? It must
 * be a work queue on exactly `subject` that never drops a stored job on
 * its own (no age limit; limits only with discard new) and deduplicates
 * (a duplicate window). -1 with *why (malloc'd) saying what is wrong.
 */
int cluster_stream_check(const jsStreamConfig *c, const char *subject, char **why);

/*
 * A node name from a host name: the part before the first dot, every
 * character that is not a letter, a digit, '-' or '_' made '-', at most
 * 64 (malloc'd; "node" if nothing is left).
 */
char *cluster_node_from_host(const char *host);

#endif
