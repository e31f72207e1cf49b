/*
 * Stored job records: reading the parts of a record, with the checks every
 * version shares (a job's record of any version, an array's record): its
 * strings, its run's result, the job's own fields, its dependencies, its
 * spec (version 2 and later) and its limits. The layouts that put them
 * together are record-decode.c's.
 */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "jobtype.h"
#include "jsonutil.h"
#include "record-private.h"
#include "xmalloc.h"

#define SIGNAL_MAX 64

/* A string without NUL, or null (→ NULL): 0; anything else -1. */
int
record_take_str(const json_t *v, char **out)
{
	*out = NULL;
	if (json_is_null(v))
		return 0;
	if (!string_without_nul(v))
		return -1;
	*out = xstrdup(json_string_value(v));
	return 0;
}

/* An array of strings without NUL, or null (→ NULL): 0; anything else -1. */
static int
take_strv(const json_t *a, char ***out)
{
	const json_t *e;
	size_t i;

	*out = NULL;
	if (json_is_null(a))
		return 0;
	if (!json_is_array(a))
		return -1;
	json_array_foreach(a, i, e)
		if (!string_without_nul(e))
			return -1;
	*out = xcalloc(json_array_size(a) + 1, sizeof **out);
	json_array_foreach(a, i, e)
		(*out)[i] = xstrdup(json_string_value(e));
	return 0;
}

bool
record_time_ok(double t)
{
	return isfinite(t) && t >= 0;
}


int
record_take_result(const struct result_in *in, struct run_result *r)
{
	if (in->status < RUN_EXITED || in->status > RUN_LOST || in->exit_code < -1 ||
	    in->exit_code > 255 || in->signal < 0 || in->signal > SIGNAL_MAX ||
	    in->max_rss_kb < -1 || in->max_rss_kb > LONG_MAX || in->out_bytes < 0 ||
	    in->err_bytes < 0 || in->pid < 0 || in->pid > INT_MAX ||
	    !record_time_ok(in->cpu_user) || !record_time_ok(in->cpu_sys) ||
	    !record_time_ok(in->wall) || !record_time_ok(in->runq_wait) ||
	    !record_time_ok(in->started_at) || !record_time_ok(in->finished_at))
		return -1;
	if (record_take_str(in->result, &r->result) == -1 ||
	    record_take_str(in->error, &r->error) == -1)
		return -1;
	r->status = (enum run_status)in->status;
	r->exit_code = (int)in->exit_code;
	r->signal = (int)in->signal;
	r->cpu_user = in->cpu_user;
	r->cpu_sys = in->cpu_sys;
	r->max_rss_kb = (long)in->max_rss_kb;
	r->wall = in->wall;
	r->runq_wait = in->runq_wait;
	r->started_at = in->started_at;
	r->finished_at = in->finished_at;
	r->out_bytes = (uint64_t)in->out_bytes;
	r->err_bytes = (uint64_t)in->err_bytes;
	r->out_truncated = in->out_truncated;
	r->err_truncated = in->err_truncated;
	r->pid = (pid_t)in->pid;
	return 0;
}


int
record_take_job(const struct job_in *in, struct job *j, const char **why)
{
	struct job_spec *sp = &j->spec;
	char *cause = NULL;

	*why = "bad field values";
	if (in->uid < 0 || in->uid >= UINT32_MAX || in->gid < 0 || in->gid >= UINT32_MAX ||
	    jobtype_name(in->type, "") == NULL ||
	    in->class < CLASS_AUTO || in->class > CLASS_IO ||
	    in->routed < CLASS_AUTO || in->routed > CLASS_IO || in->pool < POOL_NONE ||
	    in->pool > POOL_HANDLER || in->worker < INT_MIN || in->worker > INT_MAX ||
	    in->priority < TASKD_PRIORITY_MIN || in->priority > TASKD_PRIORITY_MAX ||
	    in->retries < 0 || in->retries > INT_MAX || in->attempt < 1 || in->attempt > INT_MAX ||
	    (in->attempts != NULL && !json_is_null(in->attempts) && !json_is_array(in->attempts)))
		return -1;
	*why = "bad spec";
	if (take_strv(in->argv, &sp->argv) == -1 || take_strv(in->env, &sp->env) == -1 ||
	    record_take_str(in->cwd, &sp->cwd) == -1 ||
	    record_take_str(in->name, &sp->name) == -1 ||
	    (in->notify != NULL && record_take_str(in->notify, &sp->notify) == -1))
		return -1;
	if (in->labels != NULL && labels_from_json(in->labels, "labels", &sp->labels, &cause) == -1) {
		free(cause);
		return -1;
	}
	if (sp->argv == NULL)
		sp->argv = xcalloc(1, sizeof(char *));
	sp->type = in->type;
	sp->class = (enum job_class)in->class;
	sp->priority = (int)in->priority;
	sp->timeout = in->timeout;
	sp->run_at = in->run_at;
	sp->retries = (int)in->retries;
	sp->retry_delay = in->retry_delay;
	j->uid = (uid_t)in->uid;
	j->gid = (gid_t)in->gid;
	j->routed = (enum job_class)in->routed;
	j->pool = (enum job_pool)in->pool;
	j->worker = (int)in->worker;
	/* Before version 3 a record kept only the kind key: how it was routed is unknown. */
	if (in->route_key != NULL) {
		memset(&j->route, 0, sizeof j->route);
		j->route.by = in->class != CLASS_AUTO ? ROUTE_CLASS : ROUTE_UNKNOWN;
		j->route.decided = (enum job_class)in->routed;
		j->route.level = -1;
		snprintf(j->route.key, sizeof j->route.key, "%s", in->route_key);
	}
	j->submitted_at = in->submitted_at;
	j->started_at = in->started_at;
	j->finished_at = in->finished_at;
	j->attempt = (int)in->attempt;
	j->due_at = in->due_at;
	if (json_is_array(in->attempts))
		j->attempts = json_incref(in->attempts);
	return 0;
}

int
record_deps_alloc(struct job_spec *sp, const json_t *deps)
{
	if (!json_is_array(deps) || json_array_size(deps) > JOB_MAX_DEPS)
		return -1;
	sp->ndeps = json_array_size(deps);
	sp->deps = sp->ndeps > 0 ? xcalloc(sp->ndeps, sizeof *sp->deps) : NULL;
	return 0;
}

/* A dependency's state by name (null: not ended yet, -1); JOB_NSTATES if unknown. */
static int
dep_state(const json_t *v)
{
	int st;

	if (json_is_null(v))
		return -1;
	st = json_is_string(v) ? job_state_parse(json_string_value(v)) : -1;
	return st >= 0 ? st : JOB_NSTATES;
}

int
record_dep_set(struct job_dep *d, json_int_t id, int any, int state)
{
	if (id <= 0 || state < -1 || state >= JOB_NSTATES)
		return -1;
	d->id = (uint64_t)id;
	d->any = any;
	d->state = state;
	return 0;
}

/* The dependencies of a version 2 or later record: [{"id","any","state"}]. */
int
record_take_deps(json_t *deps, struct job_dep **out, size_t *nout)
{
	struct job_spec sp = { 0 };
	json_t *dv, *dstate;
	json_error_t jerr;
	json_int_t id;
	size_t i;
	int any;

	if (record_deps_alloc(&sp, deps) == -1)
		return -1;
	json_array_foreach(deps, i, dv) {
		if (json_unpack_ex(dv, &jerr, JSON_STRICT, "{s:I,s:b,s:o}", "id", &id, "any", &any,
				   "state", &dstate) == -1 ||
		    record_dep_set(&sp.deps[i], id, any, dep_state(dstate)) == -1) {
			free(sp.deps);
			return -1;
		}
	}
	*out = sp.deps;
	*nout = sp.ndeps;
	return 0;
}


int
record_take_spec3(const struct spec3_in *in, struct job_spec *sp)
{
	if (in->slots < 1 || in->slots > JOB_MAX_SLOTS || in->input_bytes < 0 ||
	    record_take_str(in->unique, &sp->unique) == -1 ||
	    record_take_str(in->queue, &sp->queue) == -1)
		return -1;
	sp->slots = (int)in->slots;
	sp->input_bytes = (uint64_t)in->input_bytes;
	return 0;
}

/*
 * A whole spec of version 2, 3 or 4 (and notify; version 4's limits taken
 * out) or 5 (and unique, queue, slots, input_bytes): exactly its fields. The names are checked by the
 * caller.
 */
int
record_unpack_spec(json_t *spec, int version, struct job_in *in, struct spec3_in *in3,
		   const char **type, const char **cls, json_t **deps)
{
	json_error_t jerr;

	if (json_unpack_ex(spec, &jerr, 0, "{s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:I,s:F,s:o,s:F,s:I,s:F}",
			   "type", type, "argv", &in->argv, "env", &in->env, "cwd", &in->cwd,
			   "name", &in->name, "labels", &in->labels, "class", cls, "priority",
			   &in->priority, "timeout", &in->timeout, "deps", deps, "run_at",
			   &in->run_at, "retries", &in->retries, "retry_delay",
			   &in->retry_delay) == -1)
		return -1;
	in3->slots = 1;
	if (version >= 3 && json_unpack_ex(spec, &jerr, 0, "{s:o}", "notify", &in->notify) == -1)
		return -1;
	if (version >= 5 &&
	    json_unpack_ex(spec, &jerr, 0, "{s:o,s:o,s:I,s:I}", "unique", &in3->unique, "queue",
			   &in3->queue, "slots", &in3->slots, "input_bytes", &in3->input_bytes) == -1)
		return -1;
	/* Every field it must have is there: so exactly those if it has no more. */
	return json_object_size(spec) == (version >= 5 ? 18u : version >= 3 ? 14u : 13u) ? 0 : -1;
}

/* Limits as stored: {"memory","cpus","pids"}, 0 for none. */
int
record_take_limits(json_t *l, struct cg_limits *lim)
{
	json_int_t mem, pids;
	json_error_t jerr;
	double cpus;

	if (l == NULL ||
	    json_unpack_ex(l, &jerr, JSON_STRICT, "{s:I,s:F,s:I}", "memory", &mem, "cpus", &cpus,
			   "pids", &pids) == -1 ||
	    mem < 0 || pids < 0 || !isfinite(cpus) || cpus < 0)
		return -1;
	lim->memory = (uint64_t)mem;
	lim->cpus = cpus;
	lim->pids = (uint64_t)pids;
	return 0;
}
