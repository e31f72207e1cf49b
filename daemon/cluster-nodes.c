/*
 * Cluster mode: the nodes (cluster-private.h, doc/cluster.md). Each node
 * puts its heartbeat in the bucket STREAM-nodes every CL_HEARTBEAT
 * seconds; the heartbeats every node reads from its watch of that bucket
 * make its node table, which status lists. A node not heard of for
 * CL_NODE_TTL seconds is gone. Loop thread.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "cluster-private.h"
#include "job.h"
#include "sched.h"
#include "taskd.h"
#include "xmalloc.h"

/* ---- the node table ---- */

void
node_drop(struct cluster *cl, size_t i)
{
	free(cl->nodes[i].name);
	json_decref(cl->nodes[i].info);
	cl->nodes[i] = cl->nodes[--cl->nnodes];
}

/* A node's heartbeat (msg), or its delete marker (msg NULL: it stopped). */
void
node_seen(struct cluster *cl, const char *name, natsMsg *msg)
{
	json_t *info = NULL;
	size_t i;

	for (i = 0; i < cl->nnodes && strcmp(cl->nodes[i].name, name) != 0; i++)
		;
	if (msg != NULL)
		info = json_loadb(natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), 0, NULL);
	if (!json_is_object(info)) {
		json_decref(info);
		if (i < cl->nnodes)
			node_drop(cl, i);
		return;
	}
	if (i == cl->nnodes) {
		cl->nodes = xreallocarray(cl->nodes, cl->nnodes + 1, sizeof *cl->nodes);
		cl->nodes[i].name = xstrdup(name);
		cl->nodes[i].info = NULL;
		cl->nnodes++;
	}
	json_decref(cl->nodes[i].info);
	cl->nodes[i].info = info;
	cl->nodes[i].seen = clock_now(CLOCK_MONOTONIC);
}

/* ---- heartbeats ---- */

void
heartbeat(struct cluster *cl)
{
	struct taskd *td = cl->td;
	double load[3] = { 0, 0, 0 };
	char *subject, *text;
	json_t *o;

	if (getloadavg(load, 3) == -1)
		load[0] = load[1] = load[2] = 0;
	o = json_pack("{s:s,s:s,s:i,s:s,s:s,s:f,s:f,s:{s:i,s:I,s:I},s:{s:i,s:I,s:I},s:I,s:[f,f,f]}",
		      "node", cl->node, "host", cl->host, "pid", (int)getpid(), "version",
		      TASKD_VERSION, "state", cl->stopping ? "stopping" : "ready", "started_at",
		      td->started_at, "at", now_unix(),
		      "cpu", "slots", td->ppool != NULL ? taskd_ppool_config(td->cfg).max_workers : 0,
		      "running", (json_int_t)sched_running_class(td->sched, CLASS_CPU),
		      "queued", (json_int_t)sched_pending_class(td->sched, CLASS_CPU),
		      "io", "slots", td->cfg->thread_pool.max_threads,
		      "running", (json_int_t)sched_running_class(td->sched, CLASS_IO),
		      "queued", (json_int_t)sched_pending_class(td->sched, CLASS_IO),
		      "held", (json_int_t)cl->nholds, "load", load[0], load[1], load[2]);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	subject = xprintf("%s%s", cl->kv_nodes, cl->node);
	if (text != NULL)
		cluster_send(cl, subject, NULL, text, strlen(text));
	free(subject);
	free(text);
}

/* ---- status ---- */

static int
node_cmp(const void *a, const void *b)
{
	return strcmp(((const struct cl_node *)a)->name, ((const struct cl_node *)b)->name);
}

json_t *
cluster_status(struct cluster *cl)
{
	double now = clock_now(CLOCK_MONOTONIC);
	json_t *nodes = json_array(), *o;
	size_t i;

	if (cl->nnodes > 1)
		qsort(cl->nodes, cl->nnodes, sizeof *cl->nodes, node_cmp);
	for (i = 0; i < cl->nnodes; i++) {
		o = json_deep_copy(cl->nodes[i].info);
		json_object_set_new(o, "seen", json_real(now - cl->nodes[i].seen));
		json_array_append_new(nodes, o);
	}
	return json_pack("{s:s,s:s,s:s,s:b,s:s,s:o,s:s,s:i,s:f,s:I,s:I,s:{s:i,s:i,s:i},"
			 "s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I},s:o}",
			 "node", cl->node, "host", cl->host, "state", cluster_state_name(cl),
			 "connected", cl->connected, "url", cl->url,
			 "error", cl->error != NULL ? json_string(cl->error) : json_null(),
			 "stream", cl->stream, "replicas", cl->replicas, "ack_wait", cl->ack_wait,
			 "held", (json_int_t)cl->nholds, "in_flight", (json_int_t)cl->npubs,
			 "asked", "cpu", cl->pull[PULL_CPU].outstanding, "io",
			 cl->pull[PULL_IO].outstanding, "local", cl->pull[PULL_LOCAL].outstanding,
			 "counters", "submitted", (json_int_t)cl->n.submitted, "taken",
			 (json_int_t)cl->n.taken, "redelivered", (json_int_t)cl->n.redelivered,
			 "late", (json_int_t)cl->n.late, "dropped", (json_int_t)cl->n.dropped,
			 "retried", (json_int_t)cl->n.retried, "released",
			 (json_int_t)cl->n.released, "failed_puts", (json_int_t)cl->n.failed_puts,
			 "nodes", nodes);
}
