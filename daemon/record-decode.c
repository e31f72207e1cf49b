/*
 * Stored job records: decoding (record.h), a job's record of every version
 * and an array's; see doc/design.md "Stored job records" for the fields of
 * each version. The readers of a record's parts and their checks are in
 * record-fields.c.
 *
 * Decoding is strict: a record is read whole or refused with the reason
 * (persist.c then refuses to start rather than drop a job). A record of
 * version 2 to 5 must have exactly its fields; a version 1 record is read the way
 * taskd 0.1.0 read it, with the same checks plus those a version 2 record
 * needs to be written back (a known job type, valid enums).
 *
 * A handler's job (doc/handlers.md) has the handler's name as its "type"
 * and one more field, "handler": {"result_json": whether "result" is JSON
 * text} (versions 2 to 4 also had "input": base64 text or "", which version
 * 5 keeps in the job's input file, as a command's: see record.h); the name is checked against the
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

#include "base64.h"
#include "builtin.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "log.h"
#include "modules.h"
#include "record.h"
#include "record-private.h"
#include "xmalloc.h"

/*
 * A handler's job's own part, "handler": {"result_json"} (versions 2 to 4:
 * and "input", base64: decoded into spec.input, for the caller to store in
 * the job's input file). 0 if there is none, 1 if there is, -1 if it is bad.
 */
static int
decode_handler_part(json_t *o, int version, struct job *j)
{
	json_t *h = json_object_get(o, "handler");
	const char *input = "";
	json_error_t jerr;
	int result_json = 0;
	size_t len;

	if (h == NULL)
		return 0;
	if ((version >= 5 ? json_unpack_ex(h, &jerr, JSON_STRICT, "{s:b}", "result_json",
					   &result_json)
			  : json_unpack_ex(h, &jerr, JSON_STRICT, "{s:s,s:b}", "input", &input,
					   "result_json", &result_json)) == -1)
		return -1;
	j->res.result_json = result_json;
	if (*input == '\0')
		return 1;
	if (base64_decode(input, strlen(input), &j->spec.input, &len) == -1 || len == 0)
		return -1;
	j->spec.input_bytes = len;
	return 1;
}

/*
 * Versions 2 to 5: exactly the fields record_encode wrote (in that
 * version), once decode_v4 took out those version 4 added.
 */
static int
decode_v23(json_t *o, int version, struct job *j, uint64_t *array, const char **why)
{
	const char *type = "exec", *cls = "auto", *routed, *status;
	struct result_in r = { 0 };
	struct job_in in = { 0 };
	struct spec3_in in3 = { 0 };
	json_t *spec, *pool, *res, *deps = NULL, *arr = NULL;
	json_int_t version_, restarted = 0;
	double suspended = 0;
	json_error_t jerr;
	int handler;

	*why = "bad fields";
	*array = 0;
	if (json_unpack_ex(o, &jerr, 0,
			   "{s:I,s:I,s:I,s:o,s:s,s:o,s:I,s?s,s:F,s:F,s:F,s:I,s:o,s:F,s:o}",
			   "v", &version_, "uid", &in.uid, "gid", &in.gid, "spec", &spec, "routed",
			   &routed, "pool", &pool, "worker", &in.worker, "route_key", &in.route_key,
			   "submitted_at", &in.submitted_at, "started_at", &in.started_at,
			   "finished_at", &in.finished_at, "attempt", &in.attempt, "attempts",
			   &in.attempts, "due_at", &in.due_at, "result", &res) == -1 ||
	    (in.route_key == NULL) != (version >= 4))
		return -1;
	if (version >= 5 &&
	    json_unpack_ex(o, &jerr, 0, "{s:o,s:I,s:F}", "array", &arr, "restarted_from",
			   &restarted, "suspended_for", &suspended) == -1)
		return -1;
	*why = "bad handler fields";
	if ((handler = decode_handler_part(o, version, j)) == -1)
		return -1;
	*why = "bad fields";
	/* 15 fields up to version 3; version 4 has no "route_key" (decode_v4 took its own out). */
	if (json_object_size(o) != (version >= 5 ? 17u : version == 4 ? 14u : 15u) + (size_t)handler ||
	    restarted < 0 ||
	    !record_time_ok(suspended) || (arr != NULL && !json_is_null(arr) &&
				    (!json_is_integer(arr) || json_integer_value(arr) <= 0)))
		return -1;
	*why = "bad spec";
	if (json_is_integer(arr)) {
		/* A job of an array: its own priority and dependencies; the rest is the array's. */
		*array = (uint64_t)json_integer_value(arr);
		if (json_unpack_ex(spec, &jerr, JSON_STRICT, "{s:I,s:o}", "priority", &in.priority,
				   "deps", &deps) == -1)
			return -1;
		in.argv = in.env = in.cwd = in.name = json_null();
	} else if (record_unpack_spec(spec, version, &in, &in3, &type, &cls, &deps) == -1) {
		return -1;
	}
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
	    (r.status = record_status_parse(status)) < 0 || record_take_result(&r, &j->res) == -1)
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
	if (record_take_job(&in, j, why) == -1)
		return -1;
	if (in.type == JOBTYPE_HANDLER)
		j->spec.handler = xstrdup(type);
	/*
	 * A handler's name as type needs the handler part; exec and the
	 * built-in types have none (a module type's other job has it).
	 */
	*why = in.type == JOBTYPE_HANDLER ? "bad names" : "a handler's record with a built-in type";
	if (*array == 0 && ((in.type == JOBTYPE_HANDLER && handler != 1) ||
			    (handler == 1 && !record_has_handler_part(in.type))))
		return -1;
	*why = "bad spec";
	if (*array == 0 && version >= 5 && record_take_spec3(&in3, &j->spec) == -1)
		return -1;
	j->restarted_from = (uint64_t)restarted;
	j->suspended_for = suspended;
	*why = "bad dependencies";
	return record_take_deps(deps, &j->spec.deps, &j->spec.ndeps);
}

/*
 * Versions 4 and 5. Version 4: version 3 without "route_key", and how the
 * job was routed ("route"), its cgroup, when it last changed class while
 * running, its limits (spec.limits) and what its run measured of its cgroup
 * (result.mem_peak_kb, in_cgroup, cgroup_error). Those are taken out of o,
 * and the rest must read as version 3 without "route_key" (decode_v23;
 * version 5: with what it added there). A job of an array (version 5) has
 * no limits of its own: they are its array's.
 */
static int
decode_v4(json_t *o, int version, struct job *j, uint64_t *array, const char **why)
{
	json_t *arr = version >= 5 ? json_object_get(o, "array") : NULL;
	bool member = json_is_integer(arr);
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
	if ((!member &&
	     record_take_limits(json_object_get(spec, "limits"), &j->spec.limits) == -1) ||
	    record_take_str(cg, &j->cgroup) == -1 || !json_is_number(re) ||
	    !record_time_ok(json_number_value(re)) || !json_is_integer(peak) ||
	    json_integer_value(peak) < -1 || json_integer_value(peak) > LONG_MAX ||
	    !json_is_boolean(inc) || cge == NULL ||
	    record_take_str(cge, &j->res.cgroup_error) == -1)
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
	return decode_v23(o, version, j, array, why);
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
	    strcmp(t, "done") != 0 || rss < -1 || record_take_result(&r, &j->res) == -1)
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
	if (record_take_job(&in, j, why) == -1)
		return -1;
	*why = "bad lifecycle fields";
	if (deps == NULL)
		return 0;
	if (record_deps_alloc(&j->spec, deps) == -1)
		return -1;
	json_array_foreach(deps, i, dv) {
		if (json_unpack(dv, "[I,b,I]", &id, &any, &state) == -1 ||
		    state < -1 || state >= JOB_SUSPENDED || /* 0.1.0 had no more */
		    record_dep_set(&j->spec.deps[i], id, any, (int)state) == -1)
			return -1;
	}
	return 0;
}

struct job *
record_decode_json(uint64_t id, const char *state, json_t *o, int *version, uint64_t *array,
		   char **cause)
{
	int st = job_state_parse(state);
	const char *why = NULL;
	struct job *j;
	json_t *v;
	int rc;

	*version = 0;
	*array = 0;
	if (!json_is_object(o) || st < 0) {
		xasprintf(cause, "job %llu: unreadable record (%s)", (unsigned long long)id,
			  st < 0 ? "unknown state" : "not a JSON object");
		return NULL;
	}
	v = json_object_get(o, "v");
	if (v == NULL) {
		*version = 1;
	} else if (!json_is_integer(v) || json_integer_value(v) < 2) {
		xasprintf(cause, "job %llu: unreadable record (bad version)", (unsigned long long)id);
		return NULL;
	} else if (json_integer_value(v) > RECORD_VERSION) {
		xasprintf(cause, "job %llu: record version %lld written by a newer taskd (this one "
			  "reads up to %d)", (unsigned long long)id, (long long)json_integer_value(v),
			  RECORD_VERSION);
		return NULL;
	} else {
		*version = (int)json_integer_value(v);
	}
	j = job_new();
	j->id = id;
	j->state = (enum job_state)st;
	rc = *version == 1  ? decode_v1(o, id, j, &why)
	     : *version < 4 ? decode_v23(o, *version, j, array, &why)
			    : decode_v4(o, *version, j, array, &why);
	if (rc == -1) {
		xasprintf(cause, "job %llu: unreadable record (%s)", (unsigned long long)id, why);
		job_free(j);
		return NULL;
	}
	return j;
}

/* An array's record (version 5 and later): exactly its fields, its spec's limits too. */
static int
decode_array(json_t *o, struct job_array *a, const char **why)
{
	const char *type, *cls, *state;
	struct job_in in = { 0 };
	struct spec3_in in3 = { 0 };
	json_int_t version, count, start, step, max;
	json_t *spec, *deps;
	json_error_t jerr;
	struct job *j;
	int st;

	*why = "bad fields";
	if (json_unpack_ex(o, &jerr, JSON_STRICT, "{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:s,s:F,s:o}", "v",
			   &version, "uid", &in.uid, "gid", &in.gid, "count", &count, "start",
			   &start, "step", &step, "max", &max, "state", &state, "submitted_at",
			   &in.submitted_at, "spec", &spec) == -1)
		return -1;
	st = job_state_parse(state);
	if (count < 1 || count > TASKD_MAX_ARRAY || start < 0 || step < 1 ||
	    start > TASKD_MAX_ARRAY_INDEX || step > TASKD_MAX_ARRAY_INDEX ||
	    start + (count - 1) * step > TASKD_MAX_ARRAY_INDEX || max < 0 || max > INT_MAX ||
	    (st != JOB_QUEUED && st != JOB_WAITING && st != JOB_SCHEDULED))
		return -1;
	*why = "bad spec";
	if (!json_is_object(spec) ||
	    record_take_limits(json_object_get(spec, "limits"), &a->spec.limits) == -1)
		return -1;
	json_object_del(spec, "limits");
	if (record_unpack_spec(spec, (int)version, &in, &in3, &type, &cls, &deps) == -1)
		return -1;
	/* Not exec nor a module type's name: a handler's (checked when its jobs are queued). */
	in.type = strcmp(type, "exec") == 0 ? BUILTIN_EXEC
		  : module_find(type) > 0   ? module_find(type) : JOBTYPE_HANDLER;
	in.class = config_class_parse(cls);
	in.attempt = 1;
	in.route_key = "";
	if (in.class < 0)
		return -1;
	/* The spec through a job, with the checks a job's record gets. */
	j = job_new();
	if (record_take_job(&in, j, why) == -1 || record_take_spec3(&in3, &j->spec) == -1 ||
	    record_take_deps(deps, &a->deps, &a->ndeps) == -1) {
		*why = "bad spec";
		job_free(j);
		return -1;
	}
	if (in.type == JOBTYPE_HANDLER)
		j->spec.handler = xstrdup(type);
	j->spec.limits = a->spec.limits;
	a->spec = j->spec;
	memset(&j->spec, 0, sizeof j->spec);
	job_free(j);
	a->uid = (uid_t)in.uid;
	a->gid = (gid_t)in.gid;
	a->count = (uint64_t)count;
	a->start = start;
	a->step = step;
	a->max = (int)max;
	a->first_state = (enum job_state)st;
	a->submitted_at = in.submitted_at;
	return 0;
}

struct job_array *
record_decode_array(uint64_t id, const char *text, char **cause)
{
	struct job_array *a;
	const char *why = "not a JSON object";
	json_error_t jerr;
	json_t *o, *v;

	o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	v = json_object_get(o, "v");
	if (o != NULL && json_is_object(o) && json_is_integer(v) &&
	    json_integer_value(v) > RECORD_VERSION) {
		xasprintf(cause, "array %llu: record version %lld written by a newer taskd (this "
			  "one reads up to %d)", (unsigned long long)id,
			  (long long)json_integer_value(v), RECORD_VERSION);
		json_decref(o);
		return NULL;
	}
	a = xcalloc(1, sizeof *a);
	a->id = id;
	if (o == NULL || !json_is_object(o) || !json_is_integer(v) ||
	    json_integer_value(v) < 5 || decode_array(o, a, &why) == -1) {
		xasprintf(cause, "array %llu: unreadable record (%s)", (unsigned long long)id,
			  o == NULL || !json_is_object(o) ? "not a JSON object"
			  : !json_is_integer(v) || json_integer_value(v) < 5 ? "bad version" : why);
		json_decref(o);
		job_array_free(a);
		return NULL;
	}
	json_decref(o);
	return a;
}

struct job *
record_decode(uint64_t id, const char *state, const char *text, int *version, uint64_t *array,
	      char **cause)
{
	json_error_t jerr;
	struct job *j;
	json_t *o;

	*version = 0;
	*array = 0;
	o = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		xasprintf(cause, "job %llu: unreadable record (%s)", (unsigned long long)id,
			  job_state_parse(state) < 0 ? "unknown state" : "not a JSON object");
		return NULL;
	}
	j = record_decode_json(id, state, o, version, array, cause);
	json_decref(o);
	return j;
}
