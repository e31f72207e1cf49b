/*
 * Stored job records: see record.h, and doc/design.md "Stored job
 * records" for the fields of each version.
 *
 * Decoding is strict: a record is read whole or refused with the reason
 * (persist.c then refuses to start rather than drop a job). A version 2
 * or 3 record must have exactly its fields; a version 1 record is read the way
 * taskd 0.1.0 read it, with the same checks plus those a version 2 record
 * needs to be written back (a known job type, valid enums).
 *
 * A handler's job (doc/handlers.md) has the handler's name as its "type"
 * and one more field, "handler": {"input": base64 text or "", "result_json":
 * whether "result" is JSON text}; the name is checked against the
 * configuration only when the job is queued (a handler gone by then fails
 * it: "handler removed"). A job of a module type (doc/modules.md) other
 * than the built-in ones has the same field (named for handlers, which
 * came first): its type's name is looked up in the loaded modules, and a
 * name no module has any more is taken for a handler's (so its job fails
 * like one whose handler is gone).
 */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "log.h"
#include "modules.h"
#include "record.h"
#include "xmalloc.h"

#define SIGNAL_MAX 64

/* How a run ended (enum run_status), as stored. */
static const char *const status_names[] = {
	[RUN_EXITED] = "exited",       [RUN_SIGNALED] = "signaled", [RUN_TIMEOUT] = "timeout",
	[RUN_CANCELLED] = "cancelled", [RUN_FAILED] = "failed",     [RUN_LOST] = "lost",
};
_Static_assert(sizeof status_names / sizeof status_names[0] == RUN_LOST + 1,
	       "a stored name for every run status");

static int
status_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof status_names / sizeof status_names[0]; i++)
		if (strcmp(name, status_names[i]) == 0)
			return (int)i;
	return -1;
}

/* ---- encoding (the current version) ---- */

/* o.key = v (taken); a value that cannot be JSON (not UTF-8) would lose the job. */
static void
set(json_t *o, const char *key, json_t *v, uint64_t id)
{
	if (v == NULL || json_object_set_new(o, key, v) == -1)
		fatalx("job %llu: cannot encode \"%s\" in its record", (unsigned long long)id, key);
}

static json_t *
encode_spec(const struct job *j)
{
	const struct job_spec *s = &j->spec;
	json_t *o = json_object(), *deps = json_array(), *d;
	size_t i;

	set(o, "type", string_or_null(jobtype_name(s->type, s->handler)), j->id);
	set(o, "argv", strv_or_null(s->argv), j->id);
	set(o, "env", strv_or_null(s->env), j->id);
	set(o, "cwd", string_or_null(s->cwd), j->id);
	set(o, "name", string_or_null(s->name), j->id);
	set(o, "labels", labels_to_json(&s->labels), j->id);
	set(o, "class", json_string(config_class_name(s->class)), j->id);
	set(o, "priority", json_integer(s->priority), j->id);
	set(o, "timeout", finite_real(s->timeout), j->id);
	for (i = 0; i < s->ndeps; i++) {
		d = json_object();
		set(d, "id", json_integer((json_int_t)s->deps[i].id), j->id);
		set(d, "any", json_boolean(s->deps[i].any), j->id);
		set(d, "state", s->deps[i].state >= 0 ? json_string(job_state_name(s->deps[i].state))
						      : json_null(), j->id);
		json_array_append_new(deps, d);
	}
	set(o, "deps", deps, j->id);
	set(o, "run_at", finite_real(s->run_at), j->id);
	set(o, "retries", json_integer(s->retries), j->id);
	set(o, "retry_delay", finite_real(s->retry_delay), j->id);
	set(o, "notify", string_or_null(s->notify), j->id); /* version 3 */
	set(o, "limits", json_pack("{s:I,s:f,s:I}", "memory", (json_int_t)s->limits.memory, "cpus",
				   isfinite(s->limits.cpus) ? s->limits.cpus : 0.0, "pids",
				   (json_int_t)s->limits.pids), j->id); /* version 4 */
	return o;
}

static json_t *
encode_result(const struct job *j)
{
	const struct run_result *r = &j->res;
	json_t *o = json_object();

	set(o, "status", json_string(status_names[r->status]), j->id);
	set(o, "exit_code", json_integer(r->exit_code), j->id);
	set(o, "signal", json_integer(r->signal), j->id);
	set(o, "cpu_user", finite_real(r->cpu_user), j->id);
	set(o, "cpu_sys", finite_real(r->cpu_sys), j->id);
	set(o, "max_rss_kb", json_integer(r->max_rss_kb), j->id);
	set(o, "wall", finite_real(r->wall), j->id);
	set(o, "runq_wait", finite_real(r->runq_wait), j->id);
	set(o, "started_at", finite_real(r->started_at), j->id);
	set(o, "finished_at", finite_real(r->finished_at), j->id);
	set(o, "out_bytes", json_integer((json_int_t)r->out_bytes), j->id);
	set(o, "err_bytes", json_integer((json_int_t)r->err_bytes), j->id);
	set(o, "out_truncated", json_boolean(r->out_truncated), j->id);
	set(o, "err_truncated", json_boolean(r->err_truncated), j->id);
	set(o, "pid", json_integer(r->pid), j->id);
	set(o, "result", string_or_null(r->result), j->id);
	set(o, "error", string_or_null(r->error), j->id);
	set(o, "mem_peak_kb", json_integer(r->mem_peak_kb), j->id);
	set(o, "in_cgroup", json_boolean(r->in_cgroup), j->id);
	set(o, "cgroup_error", string_or_null(r->cgroup_error), j->id);
	return o;
}

char *
record_encode(const struct job *j)
{
	json_t *o = json_object();
	char *text;

	set(o, "v", json_integer(RECORD_VERSION), j->id);
	set(o, "uid", json_integer((json_int_t)j->uid), j->id);
	set(o, "gid", json_integer((json_int_t)j->gid), j->id);
	set(o, "spec", encode_spec(j), j->id);
	set(o, "routed", json_string(config_class_name(j->routed)), j->id);
	set(o, "pool", string_or_null(job_pool_name(j->pool)), j->id);
	set(o, "worker", json_integer(j->worker), j->id);
	set(o, "route", route_record(&j->route), j->id);
	set(o, "cgroup", string_or_null(j->cgroup), j->id);
	set(o, "reclassified_at", finite_real(j->reclassified_at), j->id);
	set(o, "submitted_at", finite_real(j->submitted_at), j->id);
	set(o, "started_at", finite_real(j->started_at), j->id);
	set(o, "finished_at", finite_real(j->finished_at), j->id);
	set(o, "attempt", json_integer(j->attempt), j->id);
	set(o, "attempts", j->attempts != NULL ? json_incref(j->attempts) : json_null(), j->id);
	set(o, "due_at", finite_real(j->due_at), j->id);
	set(o, "result", encode_result(j), j->id);
	if (j->spec.type == JOBTYPE_HANDLER ||
	    (j->spec.type != BUILTIN_EXEC && !module_builtin(j->spec.type)))
		set(o, "handler", json_pack("{s:s,s:b}", "input",
					    j->spec.input != NULL ? j->spec.input : "",
					    "result_json", j->res.result_json), j->id);
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		fatalx("out of memory (json_dumps)");
	return text;
}

/* ---- decoding (every version) ---- */

/* A string without NUL, or null (→ NULL): 0; anything else -1. */
static int
take_str(const json_t *v, char **out)
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

static bool
time_ok(double t)
{
	return isfinite(t) && t >= 0;
}

/* What both versions hold of a run's result, read; -1 if a value is out of range. */
struct result_in {
	json_int_t status, exit_code, signal, max_rss_kb, out_bytes, err_bytes, pid;
	double cpu_user, cpu_sys, wall, runq_wait, started_at, finished_at;
	int out_truncated, err_truncated;
	json_t *result, *error;
};

static int
take_result(const struct result_in *in, struct run_result *r)
{
	if (in->status < RUN_EXITED || in->status > RUN_LOST || in->exit_code < -1 ||
	    in->exit_code > 255 || in->signal < 0 || in->signal > SIGNAL_MAX ||
	    in->max_rss_kb < -1 || in->max_rss_kb > LONG_MAX || in->out_bytes < 0 ||
	    in->err_bytes < 0 || in->pid < 0 || in->pid > INT_MAX || !time_ok(in->cpu_user) ||
	    !time_ok(in->cpu_sys) || !time_ok(in->wall) || !time_ok(in->runq_wait) ||
	    !time_ok(in->started_at) || !time_ok(in->finished_at))
		return -1;
	if (take_str(in->result, &r->result) == -1 || take_str(in->error, &r->error) == -1)
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

/* The job's own fields, read by either version: the checks they share. */
struct job_in {
	json_int_t uid, gid, worker, priority, retries, attempt;
	int type, class, routed, pool;
	const char *route_key;
	json_t *argv, *env, *cwd, *name, *labels, *attempts, *notify;
	double timeout, run_at, retry_delay, submitted_at, started_at, finished_at, due_at;
};

static int
take_job(const struct job_in *in, struct job *j, const char **why)
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
	    take_str(in->cwd, &sp->cwd) == -1 || take_str(in->name, &sp->name) == -1 ||
	    (in->notify != NULL && take_str(in->notify, &sp->notify) == -1))
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

static int
deps_alloc(struct job_spec *sp, const json_t *deps)
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

static int
dep_set(struct job_dep *d, json_int_t id, int any, int state)
{
	if (id <= 0 || state < -1 || state >= JOB_NSTATES)
		return -1;
	d->id = (uint64_t)id;
	d->any = any;
	d->state = state;
	return 0;
}

static int decode_v2_job(json_t *o, int v, struct job *j, const char **why);

/*
 * Versions 2 and 3: exactly the fields record_encode writes (version 3
 * adds spec.notify; a version 2 record has none), a handler's job with its
 * "handler" part. Also the part of a version 4 record left once decode_v4
 * took its own fields out (v 4: no "route_key" then).
 */
static int
decode_v2(json_t *o, int v, struct job *j, const char **why)
{
	json_t *handler;
	json_error_t jerr;
	const char *input = NULL;
	int result_json = 0, rc;

	/* A handler's job: its own part first (the rest is read strictly as for any job). */
	*why = "bad handler fields";
	if ((handler = json_object_get(o, "handler")) != NULL) {
		if (json_unpack_ex(handler, &jerr, JSON_STRICT, "{s:s,s:b}", "input", &input,
				   "result_json", &result_json) == -1)
			return -1;
		json_incref(handler);
		json_object_del(o, "handler");
	}
	rc = decode_v2_job(o, v, j, why);
	if (rc == 0 && handler != NULL) {
		/* The type was a handler's or a module's name: not exec, not a built-in type. */
		if (j->spec.type == BUILTIN_EXEC || module_builtin(j->spec.type)) {
			*why = "a handler's record with a built-in type";
			rc = -1;
		} else {
			j->spec.input = *input != '\0' ? xstrdup(input) : NULL;
			j->res.result_json = result_json;
		}
	} else if (rc == 0 && j->spec.type == JOBTYPE_HANDLER) {
		*why = "bad names"; /* not a built-in's, and not a handler's record */
		rc = -1;
	}
	if (handler != NULL)
		json_decref(handler);
	return rc;
}

static int
decode_v2_job(json_t *o, int v, struct job *j, const char **why)
{
	const char *type, *cls, *routed, *status;
	struct result_in r = { 0 };
	struct job_in in = { 0 };
	json_t *spec, *pool, *res, *deps, *dv, *dstate;
	json_int_t version, id;
	json_error_t jerr;
	size_t i;
	int any;

	*why = "bad fields";
	if (json_unpack_ex(o, &jerr, JSON_STRICT,
			   "{s:I,s:I,s:I,s:o,s:s,s:o,s:I,s?s,s:F,s:F,s:F,s:I,s:o,s:F,s:o}",
			   "v", &version, "uid", &in.uid, "gid", &in.gid, "spec", &spec, "routed",
			   &routed, "pool", &pool, "worker", &in.worker, "route_key", &in.route_key,
			   "submitted_at", &in.submitted_at, "started_at", &in.started_at,
			   "finished_at", &in.finished_at, "attempt", &in.attempt, "attempts",
			   &in.attempts, "due_at", &in.due_at, "result", &res) == -1 ||
	    (in.route_key == NULL) != (v >= 4))
		return -1;
	*why = "bad spec";
	if (json_unpack_ex(spec, &jerr, JSON_STRICT,
			   v >= 3 ? "{s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:I,s:F,s:o,s:F,s:I,s:F,s:o}"
			   : "{s:s,s:o,s:o,s:o,s:o,s:o,s:s,s:I,s:F,s:o,s:F,s:I,s:F}",
			   "type", &type, "argv", &in.argv, "env", &in.env, "cwd", &in.cwd, "name",
			   &in.name, "labels", &in.labels, "class", &cls, "priority", &in.priority,
			   "timeout", &in.timeout, "deps", &deps, "run_at", &in.run_at, "retries",
			   &in.retries, "retry_delay", &in.retry_delay, "notify", &in.notify) == -1)
		return -1;
	*why = "bad result";
	if (json_unpack_ex(res, &jerr, JSON_STRICT,
			   "{s:s,s:I,s:I,s:F,s:F,s:I,s:F,s:F,s:F,s:F,s:I,s:I,s:b,s:b,s:I,s:o,s:o}",
			   "status", &status, "exit_code", &r.exit_code, "signal", &r.signal,
			   "cpu_user", &r.cpu_user, "cpu_sys", &r.cpu_sys, "max_rss_kb",
			   &r.max_rss_kb, "wall", &r.wall, "runq_wait", &r.runq_wait, "started_at",
			   &r.started_at, "finished_at", &r.finished_at, "out_bytes", &r.out_bytes,
			   "err_bytes", &r.err_bytes, "out_truncated", &r.out_truncated,
			   "err_truncated", &r.err_truncated, "pid", &r.pid, "result", &r.result,
			   "error", &r.error) == -1 ||
	    (r.status = status_parse(status)) < 0 || take_result(&r, &j->res) == -1)
		return -1;
	*why = "bad names";
	/* Not exec nor a module type's name: a handler's (the caller checks the record says so). */
	in.type = strcmp(type, "exec") == 0 ? BUILTIN_EXEC
		  : module_find(type) > 0   ? module_find(type) : JOBTYPE_HANDLER;
	in.class = config_class_parse(cls);
	in.routed = config_class_parse(routed);
	in.pool = json_is_null(pool) ? POOL_NONE
		  : !json_is_string(pool) ? -1
		  : strcmp(json_string_value(pool), "thread") == 0 ? POOL_THREAD
		  : strcmp(json_string_value(pool), "process") == 0 ? POOL_PROCESS
		  : strcmp(json_string_value(pool), "handler") == 0 ? POOL_HANDLER : -1;
	if (in.class < 0 || in.routed < 0 || in.pool < 0)
		return -1;
	if (take_job(&in, j, why) == -1)
		return -1;
	if (in.type == JOBTYPE_HANDLER)
		j->spec.handler = xstrdup(type);
	*why = "bad dependencies";
	if (deps_alloc(&j->spec, deps) == -1)
		return -1;
	json_array_foreach(deps, i, dv) {
		if (json_unpack_ex(dv, &jerr, JSON_STRICT, "{s:I,s:b,s:o}", "id", &id, "any", &any,
				   "state", &dstate) == -1 ||
		    dep_set(&j->spec.deps[i], id, any, dep_state(dstate)) == -1)
			return -1;
	}
	return 0;
}

/* Limits as stored: {"memory","cpus","pids"}, 0 for none. */
static int
take_limits(json_t *l, struct cg_limits *lim)
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

/*
 * Version 4: version 3 without "route_key", and how the job was routed
 * ("route"), its cgroup, when it last changed class while running, its
 * limits (spec.limits) and what its run measured of its cgroup
 * (result.mem_peak_kb, in_cgroup, cgroup_error). Those are taken out of
 * o, and the rest must read as version 3.
 */
static int
decode_v4(json_t *o, struct job *j, const char **why)
{
	json_t *spec = json_object_get(o, "spec"), *res = json_object_get(o, "result");
	json_t *route = json_object_get(o, "route"), *cg = json_object_get(o, "cgroup");
	json_t *re = json_object_get(o, "reclassified_at"), *peak, *inc, *cge;

	*why = "bad fields";
	if (!json_is_object(spec) || !json_is_object(res) || route == NULL || cg == NULL ||
	    re == NULL)
		return -1;
	peak = json_object_get(res, "mem_peak_kb");
	inc = json_object_get(res, "in_cgroup");
	cge = json_object_get(res, "cgroup_error");
	*why = "bad route";
	if (route_from_record(route, &j->route) == -1)
		return -1;
	*why = "bad cgroup fields";
	if (take_limits(json_object_get(spec, "limits"), &j->spec.limits) == -1 ||
	    take_str(cg, &j->cgroup) == -1 || !json_is_number(re) ||
	    !time_ok(json_number_value(re)) || !json_is_integer(peak) ||
	    json_integer_value(peak) < -1 || json_integer_value(peak) > LONG_MAX ||
	    !json_is_boolean(inc) || cge == NULL || take_str(cge, &j->res.cgroup_error) == -1)
		return -1;
	j->reclassified_at = json_number_value(re);
	j->res.mem_peak_kb = (long)json_integer_value(peak);
	j->res.in_cgroup = json_is_true(inc);
	json_object_del(spec, "limits");
	json_object_del(res, "mem_peak_kb");
	json_object_del(res, "in_cgroup");
	json_object_del(res, "cgroup_error");
	json_object_del(o, "route");
	json_object_del(o, "cgroup");
	json_object_del(o, "reclassified_at");
	return decode_v2(o, 4, j, why);
}

/* Version 1 (taskd 0.1.0), read as that release read it. */
static int
decode_v1(json_t *o, uint64_t rid, struct job *j, const char **why)
{
	struct result_in r = { 0 };
	struct job_in in = { 0 };
	json_t *res, *life, *deps, *dv;
	json_int_t type, cls, routed, pool, job, rss, id, state;
	const char *t;
	size_t i;
	int any;

	*why = "bad fields";
	if (json_unpack(o, "{s:{s:I,s:o,s:o,s:o,s:o,s:I,s:I,s:F},s:I,s:I,s:I,s:I,s:I,s:s,"
			   "s:F,s:F,s:F,s:o}",
			"spec", "type", &type, "argv", &in.argv, "env", &in.env, "cwd", &in.cwd,
			"name", &in.name, "class", &cls, "priority", &in.priority, "timeout",
			&in.timeout, "uid", &in.uid, "gid", &in.gid, "routed", &routed, "pool", &pool,
			"worker", &in.worker, "route_key", &in.route_key, "submitted_at",
			&in.submitted_at, "started_at", &in.started_at, "finished_at",
			&in.finished_at, "res", &res) == -1)
		return -1;
	/* The result: the worker's "done" message of that release, with the job's id. */
	*why = "bad result";
	if (json_unpack(res, "{s:s,s:I,s:I,s:I,s:I,s:F,s:F,s:I,s:F,s:F,s:F,s:F,s:I,s:I,s:b,s:b,"
			     "s:I,s:o,s:o,s:I}",
			"t", &t, "job", &job, "status", &r.status, "exit_code", &r.exit_code,
			"signal", &r.signal, "cpu_user", &r.cpu_user, "cpu_sys", &r.cpu_sys,
			"max_rss_kb", &r.max_rss_kb, "wall", &r.wall, "runq_wait", &r.runq_wait,
			"started_at", &r.started_at, "finished_at", &r.finished_at, "out_bytes",
			&r.out_bytes, "err_bytes", &r.err_bytes, "out_truncated", &r.out_truncated,
			"err_truncated", &r.err_truncated, "pid", &r.pid, "result", &r.result,
			"error", &r.error, "rss_kb", &rss) == -1 ||
	    strcmp(t, "done") != 0 || rss < -1 || take_result(&r, &j->res) == -1)
		return -1;
	if (job < 0 || (uint64_t)job != rid) {
		*why = "the result is another job's";
		return -1;
	}
	/* taskd 0.1.0 had exec and the built-in types, as integers. */
	in.type = type < BUILTIN_EXEC || type > BUILTIN_COUNT ? -1 : (int)type;
	in.class = cls < 0 || cls > INT_MAX ? -1 : (int)cls;
	in.routed = routed < 0 || routed > INT_MAX ? -1 : (int)routed;
	in.pool = pool < 0 || pool > INT_MAX ? -1 : (int)pool;
	in.labels = json_object_get(json_object_get(o, "spec"), "labels"); /* absent if none */
	in.attempt = 1;
	/* The lifecycle part (absent in the oldest records: zeros, and a first attempt). */
	life = json_object_get(o, "life");
	deps = NULL;
	*why = "bad lifecycle fields";
	if (life != NULL &&
	    json_unpack(life, "{s:o,s:F,s:I,s:F,s:I,s:o,s:F}", "deps", &deps, "run_at",
			&in.run_at, "retries", &in.retries, "retry_delay", &in.retry_delay,
			"attempt", &in.attempt, "attempts", &in.attempts, "due_at", &in.due_at) == -1)
		return -1;
	if (take_job(&in, j, why) == -1)
		return -1;
	*why = "bad lifecycle fields";
	if (deps == NULL)
		return 0;
	if (deps_alloc(&j->spec, deps) == -1)
		return -1;
	json_array_foreach(deps, i, dv) {
		if (json_unpack(dv, "[I,b,I]", &id, &any, &state) == -1 ||
		    state < -1 || state >= JOB_NSTATES ||
		    dep_set(&j->spec.deps[i], id, any, (int)state) == -1)
			return -1;
	}
	return 0;
}

struct job *
record_decode(uint64_t id, const char *state, const char *text, int *version, char **cause)
{
	int st = job_state_parse(state);
	const char *why = NULL;
	json_error_t jerr;
	json_t *o, *v;
	struct job *j;
	int rc;

	*version = 0;
	o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o) || st < 0) {
		xasprintf(cause, "job %llu: unreadable record (%s)", (unsigned long long)id,
			  st < 0 ? "unknown state" : "not a JSON object");
		json_decref(o);
		return NULL;
	}
	v = json_object_get(o, "v");
	if (v == NULL) {
		*version = 1;
	} else if (!json_is_integer(v) || json_integer_value(v) < 2) {
		xasprintf(cause, "job %llu: unreadable record (bad version)", (unsigned long long)id);
		json_decref(o);
		return NULL;
	} else if (json_integer_value(v) > RECORD_VERSION) {
		xasprintf(cause, "job %llu: record version %lld written by a newer taskd (this one "
			  "reads up to %d)", (unsigned long long)id, (long long)json_integer_value(v),
			  RECORD_VERSION);
		json_decref(o);
		return NULL;
	} else {
		*version = (int)json_integer_value(v);
	}
	j = job_new();
	j->id = id;
	j->state = (enum job_state)st;
	rc = *version == 1  ? decode_v1(o, id, j, &why)
	     : *version < 4 ? decode_v2(o, *version, j, &why)
			    : decode_v4(o, j, &why);
	json_decref(o);
	if (rc == -1) {
		xasprintf(cause, "job %llu: unreadable record (%s)", (unsigned long long)id, why);
		job_free(j);
		return NULL;
	}
	return j;
}
