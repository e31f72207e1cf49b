/*
 * Cluster mode: the mirror of the jobs bucket (cluster-private.h,
 * doc/cluster.md). Every node watches the bucket STREAM-jobs and keeps
 * each job's latest entry in its job table, so that every job of the
 * cluster can be listed, shown, waited for; a job this node holds writes
 * its own entries and takes only another node's cancel from it. The
 * watch of the nodes bucket comes here too, and goes to the node table
 * (cluster-nodes.c). Loop thread.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-msg.h"
#include "cluster-private.h"
#include "log.h"
#include "sched.h"
#include "taskd.h"

/* ---- the mirror of the jobs bucket ---- */

static void
prune_cb(struct job *j, void *arg)
{
	sched_remove_output(arg, j);
}

/* Take the entry's view of j (a job this node does not hold) into the table. */
static void
mirror_update(struct cluster *cl, struct job *j, struct job *n)
{
	struct jobs *js = cl->td->jobs;
	struct run_result res;
	json_t *attempts;
	size_t i;
	char *s;

	j->routed = n->routed;
	j->pool = n->pool;
	j->worker = n->worker;
	j->route = n->route;
	j->counts_as = n->counts_as;
	j->reclassified_at = n->reclassified_at;
	s = j->kinds;
	j->kinds = n->kinds;
	n->kinds = s;
	s = j->cgroup;
	j->cgroup = n->cgroup;
	n->cgroup = s;
	j->started_at = n->started_at;
	j->finished_at = n->finished_at;
	j->attempt = n->attempt;
	attempts = j->attempts;
	j->attempts = n->attempts;
	n->attempts = attempts;
	j->due_at = n->due_at;
	res = j->res;
	j->res = n->res;
	n->res = res;
	j->spec.priority = n->spec.priority;
	for (i = 0; i < j->spec.ndeps && i < n->spec.ndeps; i++)
		j->spec.deps[i].state = n->spec.deps[i].state;
	s = j->cl.node;
	j->cl.node = n->cl.node;
	n->cl.node = s;
	s = j->cl.from;
	j->cl.from = n->cl.from;
	n->cl.from = s;
	j->cl.redelivered = n->cl.redelivered;
	j->cl.delivery = n->cl.delivery;
	if (n->state == j->state)
		return;
	if (job_state_final(n->state) && !job_state_final(j->state))
		jobs_finish(js, j, n->state, cl->td->cfg->jobs.keep_finished, prune_cb,
			    cl->td->sched); /* j may be pruned */
	else if (!job_state_final(n->state) && job_state_final(j->state))
		jobs_reopen(js, j, n->state);
	else
		job_set_state(js, j, n->state);
}

static void
mirror_apply(struct cluster *cl, struct job *n, const struct cluster_entry *e, uint64_t rev)
{
	struct taskd *td = cl->td;
	struct job *j = jobs_find(td->jobs, n->id);

	n->cl.rev = rev;
	if (j == NULL) {
		if (jobs_insert(td->jobs, n) == -1)
			fatalx("job %llu: in the table twice", (unsigned long long)n->id);
		if (job_state_final(n->state))
			sched_prune(td->sched);
		return;
	}
	if (rev <= j->cl.rev) {
		job_free(n);
		return;
	}
	j->cl.rev = rev;
	if (j->cl.hold != NULL) {
		/* Held here: this node writes its entries; only another node's cancel counts. */
		if (e->cancel && strcmp(e->by, cl->node) != 0 && !job_state_final(j->state)) {
			log_info("job %llu: cancel asked by node %s", (unsigned long long)j->id, e->by);
			sched_cancel(td->sched, j, "cancelled by request");
		}
		job_free(n);
		return;
	}
	mirror_update(cl, j, n);
	job_free(n);
}

static void
mirror_forget(struct cluster *cl, uint64_t id)
{
	struct job *j = jobs_find(cl->td->jobs, id);

	if (j != NULL && j->cl.hold == NULL && job_state_final(j->state))
		jobs_delete(cl->td->jobs, j, prune_cb, cl->td->sched);
}

/* A bucket watch's message: $KV.BUCKET.KEY, its revision and what is left in its ack subject. */
void
watched(struct cluster *cl, enum cl_sub kind, natsMsg *msg)
{
	const char *prefix = kind == SUB_JOBS ? cl->kv_jobs : cl->kv_nodes;
	const char *subject = natsMsg_GetSubject(msg), *key, *op = NULL, *reply;
	struct cluster_entry e;
	struct cluster_ack a;
	struct job *n;
	char *cause = NULL, *end;
	uint64_t id;
	bool del;

	reply = natsMsg_GetReply(msg);
	if (reply == NULL || cluster_ack_parse(reply, &a) == -1)
		return;
	if (a.pending == 0 && !cl->synced[kind]) {
		cl->synced[kind] = true;
		maybe_ready(cl);
	}
	if (strncmp(subject, prefix, strlen(prefix)) != 0)
		return;
	key = subject + strlen(prefix);
	del = natsMsgHeader_Get(msg, "KV-Operation", &op) == NATS_OK &&
	      (strcmp(op, "DEL") == 0 || strcmp(op, "PURGE") == 0);
	if (kind == SUB_NODES) {
		node_seen(cl, key, del ? NULL : msg);
		return;
	}
	id = strtoull(key, &end, 10);
	if (*key < '1' || *key > '9' || *end != '\0' || id == ULLONG_MAX)
		return;
	if (del) {
		mirror_forget(cl, id);
		return;
	}
	n = cluster_entry_decode(id, natsMsg_GetData(msg), (size_t)natsMsg_GetDataLength(msg), &e,
				 &cause);
	if (n == NULL) {
		log_warnx("cluster: the bucket's entry of job %" PRIu64 " is unreadable (%s): ignored",
			  id, cause);
		free(cause);
		return;
	}
	mirror_apply(cl, n, &e, a.sseq);
	cluster_entry_clear(&e);
}
