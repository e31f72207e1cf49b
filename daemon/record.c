/*
 * Stored job records: see record.h, and doc/design.md "Stored job
 * records" for the fields of each version.
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

/*
 * The record is written straight into text, without a jansson tree: the
 * same bytes json_dumps(JSON_COMPACT) writes for the tree of the fields
 * (same order, same escapes, reals as "%.17g" and ".0"), at a fraction of
 * the cost; every job's state change is one.
 */
struct out {
	struct jtext t;
	uint64_t id; /* the job's, for messages */
	bool no_env; /* write "env":null */
};

#define PUT(o, lit) JTEXT_PUT(&(o)->t, lit)

/* "key": after "," unless it is the first member (keys need no escapes). */
static void
key(struct out *o, const char *k)
{
	size_t n = strlen(k);
	char *w;

	jtext_grow(&o->t, n + 4);
	w = o->t.p + o->t.n;
	if (w[-1] != '{')
		*w++ = ',';
	*w++ = '"';
	memcpy(w, k, n);
	w += n;
	*w++ = '"';
	*w++ = ':';
	o->t.n = (size_t)(w - o->t.p);
}

/* A string, or null for NULL. One that cannot be JSON (not UTF-8) would lose the job. */
static void
str(struct out *o, const char *s)
{
	size_t n;

	if (s == NULL) {
		PUT(o, "null");
		return;
	}
	n = strlen(s);
	if (!utf8_valid(s, n))
		fatalx("job %llu: cannot encode a string of its record (not UTF-8)",
		       (unsigned long long)o->id);
	jtext_string(&o->t, s, n);
}

static void
strv(struct out *o, char *const *v)
{
	size_t i;

	if (v == NULL) {
		PUT(o, "null");
		return;
	}
	PUT(o, "[");
	for (i = 0; v[i] != NULL; i++) {
		if (i > 0)
			PUT(o, ",");
		str(o, v[i]);
	}
	PUT(o, "]");
}

static void
integer(struct out *o, long long v)
{
	jtext_integer(&o->t, v);
}

/* NaN and infinities, which JSON cannot hold, as 0 (finite_real). */
static void
real(struct out *o, double v)
{
	jtext_real(&o->t, isfinite(v) ? v : 0.0);
}

static void
boolean(struct out *o, bool v)
{
	if (v)
		PUT(o, "true");
	else
		PUT(o, "false");
}

static void
encode_deps(struct out *o, const struct job_dep *deps, size_t ndeps)
{
	size_t i;

	key(o, "deps");
	PUT(o, "[");
	for (i = 0; i < ndeps; i++) {
		if (i > 0)
			PUT(o, ",");
		PUT(o, "{");
		key(o, "id");
		integer(o, (long long)deps[i].id);
		key(o, "any");
		boolean(o, deps[i].any);
		key(o, "state");
		str(o, deps[i].state >= 0 ? job_state_name(deps[i].state) : NULL);
		PUT(o, "}");
	}
	PUT(o, "]");
}

/* The whole spec (deps given apart: an array keeps them apart from its spec). */
static void
encode_spec(struct out *o, const struct job_spec *s, const struct job_dep *deps, size_t ndeps)
{
	size_t i;

	key(o, "spec");
	PUT(o, "{");
	key(o, "type");
	str(o, jobtype_name(s->type, s->handler));
	key(o, "argv");
	strv(o, s->argv);
	key(o, "env");
	strv(o, o->no_env ? NULL : s->env);
	key(o, "cwd");
	str(o, s->cwd);
	key(o, "name");
	str(o, s->name);
	key(o, "labels");
	PUT(o, "{");
	for (i = 0; i < s->labels.n; i++) {
		if (i > 0)
			PUT(o, ",");
		str(o, s->labels.v[i].key);
		PUT(o, ":");
		str(o, s->labels.v[i].value);
	}
	PUT(o, "}");
	key(o, "class");
	str(o, config_class_name(s->class));
	key(o, "priority");
	integer(o, s->priority);
	key(o, "timeout");
	real(o, s->timeout);
	encode_deps(o, deps, ndeps);
	key(o, "run_at");
	real(o, s->run_at);
	key(o, "retries");
	integer(o, s->retries);
	key(o, "retry_delay");
	real(o, s->retry_delay);
	key(o, "notify"); /* version 3 */
	str(o, s->notify);
	key(o, "limits"); /* version 4 */
	PUT(o, "{");
	key(o, "memory");
	integer(o, (long long)s->limits.memory);
	key(o, "cpus");
	real(o, s->limits.cpus);
	key(o, "pids");
	integer(o, (long long)s->limits.pids);
	PUT(o, "}");
	key(o, "unique"); /* version 5 */
	str(o, s->unique);
	key(o, "queue");
	str(o, s->queue);
	key(o, "slots");
	integer(o, s->slots);
	key(o, "input_bytes");
	integer(o, (long long)s->input_bytes);
	PUT(o, "}");
}

/* A job of an array: what is its own of its spec (the rest is the array's). */
static void
encode_member_spec(struct out *o, const struct job *j)
{
	key(o, "spec");
	PUT(o, "{");
	key(o, "priority");
	integer(o, j->spec.priority);
	encode_deps(o, j->spec.deps, j->spec.ndeps);
	PUT(o, "}");
}

static void
encode_result(struct out *o, const struct job *j)
{
	const struct run_result *r = &j->res;

	key(o, "result");
	PUT(o, "{");
	key(o, "status");
	str(o, status_names[r->status]);
	key(o, "exit_code");
	integer(o, r->exit_code);
	key(o, "signal");
	integer(o, r->signal);
	key(o, "cpu_user");
	real(o, r->cpu_user);
	key(o, "cpu_sys");
	real(o, r->cpu_sys);
	key(o, "max_rss_kb");
	integer(o, r->max_rss_kb);
	key(o, "wall");
	real(o, r->wall);
	key(o, "runq_wait");
	real(o, r->runq_wait);
	key(o, "started_at");
	real(o, r->started_at);
	key(o, "finished_at");
	real(o, r->finished_at);
	key(o, "out_bytes");
	integer(o, (long long)r->out_bytes);
	key(o, "err_bytes");
	integer(o, (long long)r->err_bytes);
	key(o, "out_truncated");
	boolean(o, r->out_truncated);
	key(o, "err_truncated");
	boolean(o, r->err_truncated);
	key(o, "pid");
	integer(o, r->pid);
	key(o, "result");
	str(o, r->result);
	key(o, "error");
	str(o, r->error);
	key(o, "mem_peak_kb");
	integer(o, r->mem_peak_kb);
	key(o, "in_cgroup");
	boolean(o, r->in_cgroup);
	key(o, "cgroup_error");
	str(o, r->cgroup_error);
	PUT(o, "}");
}

/* How the job was routed: route_record's fields (router.c reads them back). */
static void
encode_route(struct out *o, const struct route *r)
{
	key(o, "route");
	PUT(o, "{");
	key(o, "by");
	str(o, route_by_name(r->by));
	key(o, "class");
	str(o, config_class_name(r->decided));
	key(o, "level");
	integer(o, r->level);
	key(o, "key");
	str(o, r->key);
	key(o, "samples");
	integer(o, (long long)r->samples);
	key(o, "ratio");
	real(o, r->ratio);
	PUT(o, "}");
}

/*
 * Whether a job of type has the "handler" part: a handler's, and a module
 * type's other than the built-in ones.
 */
static bool
has_handler_part(int type)
{
	return type == JOBTYPE_HANDLER || (type != BUILTIN_EXEC && !module_builtin(type));
}

char *
record_encode_env(const struct job *j, bool with_env)
{
	struct out o = { .id = j->id, .no_env = !with_env };

	PUT(&o, "{");
	key(&o, "v");
	integer(&o, RECORD_VERSION);
	key(&o, "uid");
	integer(&o, j->uid);
	key(&o, "gid");
	integer(&o, j->gid);
	if (j->array != NULL)
		encode_member_spec(&o, j);
	else
		encode_spec(&o, &j->spec, j->spec.deps, j->spec.ndeps);
	key(&o, "array"); /* version 5 */
	if (j->array != NULL)
		integer(&o, (long long)j->array->id);
	else
		PUT(&o, "null");
	key(&o, "restarted_from");
	integer(&o, (long long)j->restarted_from);
	key(&o, "suspended_for");
	real(&o, j->suspended_for);
	key(&o, "routed");
	str(&o, config_class_name(j->routed));
	key(&o, "pool");
	str(&o, job_pool_name(j->pool));
	key(&o, "worker");
	integer(&o, j->worker);
	encode_route(&o, &j->route);
	key(&o, "cgroup");
	str(&o, j->cgroup);
	key(&o, "reclassified_at");
	real(&o, j->reclassified_at);
	key(&o, "submitted_at");
	real(&o, j->submitted_at);
	key(&o, "started_at");
	real(&o, j->started_at);
	key(&o, "finished_at");
	real(&o, j->finished_at);
	key(&o, "attempt");
	integer(&o, j->attempt);
	key(&o, "attempts");
	if (j->attempts != NULL)
		jtext_value(&o.t, j->attempts);
	else
		PUT(&o, "null");
	key(&o, "due_at");
	real(&o, j->due_at);
	encode_result(&o, j);
	/* Version 5: the input is in the job's input file, not here. */
	if (has_handler_part(j->spec.type)) {
		key(&o, "handler");
		PUT(&o, "{");
		key(&o, "result_json");
		boolean(&o, j->res.result_json);
		PUT(&o, "}");
	}
	PUT(&o, "}");
	return jtext_end(&o.t);
}

char *
record_encode(const struct job *j)
{
	return record_encode_env(j, true);
}

char *
record_encode_array(const struct job_array *a)
{
	struct out o = { .id = a->id };

	PUT(&o, "{");
	key(&o, "v");
	integer(&o, RECORD_VERSION);
	key(&o, "uid");
	integer(&o, a->uid);
	key(&o, "gid");
	integer(&o, a->gid);
	key(&o, "count");
	integer(&o, (long long)a->count);
	key(&o, "start");
	integer(&o, a->start);
	key(&o, "step");
	integer(&o, a->step);
	key(&o, "max");
	integer(&o, a->max);
	key(&o, "state");
	str(&o, job_state_name(a->first_state));
	key(&o, "submitted_at");
	real(&o, a->submitted_at);
	encode_spec(&o, &a->spec, a->deps, a->ndeps);
	PUT(&o, "}");
	return jtext_end(&o.t);
}

const char *
record_removed(void)
{
	return "{\"v\":" RECORD_VERSION_TEXT ",\"removed\":true}";
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

/* The dependencies of a version 2 or later record: [{"id","any","state"}]. */
static int
take_deps(json_t *deps, struct job_dep **out, size_t *nout)
{
	struct job_spec sp = { 0 };
	json_t *dv, *dstate;
	json_error_t jerr;
	json_int_t id;
	size_t i;
	int any;

	if (deps_alloc(&sp, deps) == -1)
		return -1;
	json_array_foreach(deps, i, dv) {
		if (json_unpack_ex(dv, &jerr, JSON_STRICT, "{s:I,s:b,s:o}", "id", &id, "any", &any,
				   "state", &dstate) == -1 ||
		    dep_set(&sp.deps[i], id, any, dep_state(dstate)) == -1) {
			free(sp.deps);
			return -1;
		}
	}
	*out = sp.deps;
	*nout = sp.ndeps;
	return 0;
}

/* What version 5 added to the spec, read: -1 if a value is out of range. */
struct spec3_in {
	json_t *unique, *queue;
	json_int_t slots, input_bytes;
};

static int
take_spec3(const struct spec3_in *in, struct job_spec *sp)
{
	if (in->slots < 1 || in->slots > JOB_MAX_SLOTS || in->input_bytes < 0 ||
	    take_str(in->unique, &sp->unique) == -1 || take_str(in->queue, &sp->queue) == -1)
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
static int
unpack_spec(json_t *spec, int version, struct job_in *in, struct spec3_in *in3,
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
	    !time_ok(suspended) || (arr != NULL && !json_is_null(arr) &&
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
	} else if (unpack_spec(spec, version, &in, &in3, &type, &cls, &deps) == -1) {
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
	/*
	 * A handler's name as type needs the handler part; exec and the
	 * built-in types have none (a module type's other job has it).
	 */
	*why = in.type == JOBTYPE_HANDLER ? "bad names" : "a handler's record with a built-in type";
	if (*array == 0 && ((in.type == JOBTYPE_HANDLER && handler != 1) ||
			    (handler == 1 && !has_handler_part(in.type))))
		return -1;
	*why = "bad spec";
	if (*array == 0 && version >= 5 && take_spec3(&in3, &j->spec) == -1)
		return -1;
	j->restarted_from = (uint64_t)restarted;
	j->suspended_for = suspended;
	*why = "bad dependencies";
	return take_deps(deps, &j->spec.deps, &j->spec.ndeps);
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
	if ((!member && take_limits(json_object_get(spec, "limits"), &j->spec.limits) == -1) ||
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
		    state < -1 || state >= JOB_SUSPENDED || /* 0.1.0 had no more */
		    dep_set(&j->spec.deps[i], id, any, (int)state) == -1)
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
	    take_limits(json_object_get(spec, "limits"), &a->spec.limits) == -1)
		return -1;
	json_object_del(spec, "limits");
	if (unpack_spec(spec, (int)version, &in, &in3, &type, &cls, &deps) == -1)
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
	if (take_job(&in, j, why) == -1 || take_spec3(&in3, &j->spec) == -1 ||
	    take_deps(deps, &a->deps, &a->ndeps) == -1) {
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
