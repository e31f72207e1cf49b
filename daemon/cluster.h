/*
 * Cluster mode (doc/cluster.md): taskd nodes share one durable work queue,
 * a JetStream stream on NATS, and see every job's state in a JetStream
 * key-value bucket. Each node keeps a mirror of the bucket in its job
 * table, so list, show, wait, events and the queue limits work on every
 * job of the cluster; the jobs a node takes from the stream run through
 * its own scheduler and pools like its own.
 *
 * The rest of the daemon calls these on the loop thread; the NATS
 * library's threads hand everything they get to the loop (cluster.c).
 * Without cluster support (meson -Dcluster=disabled) cluster_new is never
 * called: the configuration refuses a cluster group.
 */
#ifndef TASKD_CLUSTER_H
#define TASKD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "job.h"

struct client;
struct taskd;
struct cluster;

/*
 * Start cluster mode for td (td->cfg->cluster.url is set): the connection,
 * the stream, its consumers and buckets are set up in the background and
 * retried with backoff until they work (status says how it goes).
 */
struct cluster *cluster_new(struct taskd *td);
/* After the loop ended (cluster_close first). */
void cluster_free(struct cluster *cl);

/*
 * submit: publish the jobs of specs (n of them, taken) to the work queue
 * (local: to this node's own queue) and answer c once JetStream stored
 * them: {"id"} (single), {"ids"} (batch), or the job once it ended (wait,
 * its slot in conn's nwaits already counted).
 */
void cluster_submit(struct cluster *cl, struct client *c, json_t *id, struct job_spec *specs,
		    size_t n, bool batch, bool wait, bool local);
/*
 * cancel of j, which this node does not hold (j->cl.hold NULL): asked
 * through the bucket, answered once the cluster took the request (c NULL:
 * nobody to answer, for a cancel by selector).
 */
void cluster_cancel(struct cluster *cl, struct client *c, json_t *id, struct job *j);
/* Is j's output on another node (it ran there)? */
bool cluster_output_elsewhere(struct cluster *cl, const struct job *j);
/* logs of such a job: asked from its node (the request's stream, offset and max). */
void cluster_logs(struct cluster *cl, struct client *c, json_t *id, const struct job *j, bool errs,
		  json_int_t off, json_int_t max);
/* clean: remove the finished job j from the bucket too (every node forgets it). */
void cluster_forget(struct cluster *cl, const struct job *j);
/* The "cluster" object of status: this node, the connection, every node's heartbeat. */
json_t *cluster_status(struct cluster *cl);
/* ", cluster ready" for the status line ("" when fine is not worth saying). */
const char *cluster_state_name(const struct cluster *cl);
/* The connection c is closing: forget the answers pending for it. */
void cluster_client_closed(struct cluster *cl, struct client *c);

/*
 * Shutdown: stop taking jobs; without drain, give back what this node
 * holds (its queued and waiting jobs at once, its running ones once their
 * run is stopped) so that other nodes run them.
 */
void cluster_stop(struct cluster *cl, bool drain);
/*
 * Once nothing runs: send what is left (results, acks), then close the
 * connection and call taskd_exit_if_idle again. true once closed.
 */
bool cluster_close(struct cluster *cl);

#endif
