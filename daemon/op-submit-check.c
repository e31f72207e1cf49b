/*
 * What a submit (or a restart) may ask for: the options its jobs are
 * decoded with, room for them in the queue (queue.max_pending, per user
 * too; and a store that works), and the checks of a decoded job as its
 * owner's: the size of its job object, its priority, dependencies,
 * handler, queue, slots and limits.
 */
#include <stdint.h>
#include <stdlib.h>

#include <taskd/protocol.h>

#include <grp.h>
#include <pwd.h>

#include "admission.h"
#include "config.h"
#include "hconfig.h"
#include "jobtype.h"
#include "op-submit-private.h"
#include "ops.h"
#include "persist.h"
#include "ppool.h"
#include "sched.h"
#include "server.h"
#include "taskd.h"

struct proto_job_opts
submit_job_opts(struct taskd *td, struct client *c)
{
	/*
	 * cwd is checked at submit only with the submitter's own rights: a root
	 * daemon does not stat paths for other users (it would tell them what
	 * exists where they may not look, and a hung network mount would stall
	 * the loop for them); their runs check cwd as them and fail with the
	 * reason. Root's and the daemon's own user's rights are the daemon's.
	 */
	struct proto_job_opts o = {
		.default_timeout = td->cfg->jobs.default_timeout,
		.check_cwd = privileged_uid(server_client_uid(c)),
		.max_input = td->cfg->limits.max_input,
	};

	return o;
}

int
submit_check_room(struct taskd *td, struct client *c, struct request *req, uint64_t n)
{
	char msg[160];
	/* Queued jobs include those whose submit is still being committed. */
	size_t pending = jobs_pending(td->jobs);

	if (persist_storage_error(td->persist) != NULL) {
		reply_err(c, req->id, TASKD_ERR_STORAGE, persist_storage_error(td->persist));
		return -1;
	}
	if (pending + n > (size_t)td->cfg->queue.max_pending) {
		snprintf(msg, sizeof msg, "queue full: %zu pending, %llu more asked, "
			 "queue.max_pending is %d", pending, (unsigned long long)n,
			 td->cfg->queue.max_pending);
		reply_err(c, req->id, TASKD_ERR_QUEUE_FULL, msg);
		return -1;
	}
	pending = jobs_queued_by(td->jobs, server_client_uid(c));
	if (pending + n > (size_t)td->cfg->queue.max_pending_per_user) {
		snprintf(msg, sizeof msg,
			 "queue full for uid %u: %zu pending, %llu more asked, "
			 "queue.max_pending_per_user is %d",
			 (unsigned)server_client_uid(c), pending, (unsigned long long)n,
			 td->cfg->queue.max_pending_per_user);
		reply_err(c, req->id, TASKD_ERR_QUEUE_FULL, msg);
		return -1;
	}
	return 0;
}

/* Every dependency must be a job the caller may see (else: as if unknown). */
static int
check_deps(struct taskd *td, uid_t uid, const struct job_spec *spec, struct proto_error *err)
{
	const struct job_dep *d;
	struct job *dep;
	size_t i;

	for (i = 0; i < spec->ndeps; i++) {
		d = &spec->deps[i];
		dep = jobs_find(td->jobs, d->id);
		if (d->id >= jobs_next_id(td->jobs)) {
			proto_error_set(err, TASKD_ERR_NOT_FOUND,
					"%s: no such job %llu (a job can only depend on jobs "
					"submitted before it, not on itself or its own batch)",
					d->any ? "after_any" : "after", (unsigned long long)d->id);
			return -1;
		}
		if (dep == NULL || !ops_may_see(uid, dep)) {
			proto_error_set(err, TASKD_ERR_NOT_FOUND,
					"%s: no such job %llu (a dependency must be an existing job "
					"of yours)", d->any ? "after_any" : "after",
					(unsigned long long)d->id);
			return -1;
		}
	}
	return 0;
}

/* A command's limits (with the config's defaults) must be ones taskd can apply here. */
static int
check_limits(struct taskd *td, struct job_spec *spec, struct proto_error *err)
{
	char *why = NULL;

	if (sched_job_limits(td->sched, spec, &why) == 0)
		return 0;
	proto_error_set(err, TASKD_ERR_UNSUPPORTED, "%s", why);
	free(why);
	return -1;
}

/*
 * A handler with users/groups lists serves only those (and root and
 * taskd's own user). The submitter's supplementary groups are looked up
 * only when its uid and primary group are not enough.
 */
static int
check_handler(struct taskd *td, uid_t uid, gid_t gid, const struct job_spec *spec,
	      struct proto_error *err)
{
	const struct handler_config *h;
	gid_t groups[256];
	int n = (int)(sizeof groups / sizeof groups[0]);
	struct passwd *pw;

	if (spec->type != JOBTYPE_HANDLER || (h = config_handler(td->cfg, spec->handler)) == NULL)
		return 0;
	if (handler_allows(h, uid, gid, NULL, 0))
		return 0;
	if (h->ngroups > 0 && (pw = getpwuid(uid)) != NULL &&
	    getgrouplist(pw->pw_name, gid, groups, &n) != -1 &&
	    handler_allows(h, uid, gid, groups, (size_t)n))
		return 0;
	proto_error_set(err, TASKD_ERR_FORBIDDEN, "handler %s does not serve uid %u "
			"(its users and groups lists)", h->name, (unsigned)uid);
	return -1;
}

/* "queue" names one of the configuration, "slots" fit in the process pool. */
static int
check_workflow(struct taskd *td, const struct job_spec *spec, struct proto_error *err)
{
	int pool = td->ppool != NULL ? ppool_max_workers(td->ppool) : 1;
	char names[512];
	size_t i, off = 0;

	/*
	 * Cluster mode: a job may run on any node, and these hold only on one
	 * (a key is checked in this node's table, a queue is this node's
	 * configuration, the input is in this node's input file): refused, not
	 * half kept (doc/cluster.md).
	 */
	if (td->cluster != NULL && (spec->unique != NULL || spec->queue != NULL ||
				    spec->slots > 1 || spec->input_bytes > 0)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"%s\" is not available in cluster mode (doc/cluster.md)",
				spec->unique != NULL ? "unique" : spec->queue != NULL ? "queue"
				: spec->slots > 1 ? "slots" : "input");
		return -1;
	}
	if (spec->queue != NULL && config_queue(td->cfg, spec->queue) == NULL) {
		names[0] = '\0';
		for (i = 0; i < td->cfg->nqueues && off < sizeof names; i++)
			off += (size_t)snprintf(names + off, sizeof names - off, "%s%s",
						i > 0 ? ", " : "", td->cfg->queues[i].name);
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "no queue \"%s\" (%s%s)", spec->queue,
				td->cfg->nqueues > 0 ? "queues: " : "no queues are configured",
				names);
		return -1;
	}
	if (spec->slots > pool) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"slots\": %d cpu slots asked, the process pool has %d "
				"(process_pool.max_workers)", spec->slots, pool);
		return -1;
	}
	return 0;
}

/*
 * What a decoded job may ask for, as uid (gid) who will own it: its
 * priority, its dependencies, its handler, its queue and slots, its limits
 * (the config's defaults filled in); and its job object must fit in an
 * answer (limits.max_frame, with the longest id a request may have).
 */
int
submit_check_job(struct taskd *td, uid_t uid, gid_t gid, struct job_spec *spec,
		 struct proto_error *err)
{
	size_t shown = job_spec_shown_bytes(spec);
	size_t room = td->cfg->limits.max_frame - TASKD_MAX_ID - 64;

	if (shown > room) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "job too large: its job object would "
				"take %zu bytes, more than limits.max_frame (%zu) leaves for one: "
				"shorten its argv, cwd, name or labels", shown,
				(size_t)td->cfg->limits.max_frame);
		return -1;
	}
	if (ops_check_priority(uid, spec->priority, err) == -1)
		return -1;
	if (check_deps(td, uid, spec, err) == -1)
		return -1;
	if (check_handler(td, uid, gid, spec, err) == -1 || check_workflow(td, spec, err) == -1)
		return -1;
	return check_limits(td, spec, err);
}

