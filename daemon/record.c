/*
 * Stored job records (record.h, and doc/design.md "Stored job records" for
 * the fields of each version): encoding, always in the current version, a
 * job's record, an array's and a removed job's; the stored names of run
 * outcomes. Decoding is in record-decode.c, with the readers of a record's
 * parts in record-fields.c.
 */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "log.h"
#include "modules.h"
#include "record.h"
#include "record-private.h"

/* How a run ended (enum run_status), as stored. */
static const char *const status_names[] = {
	[RUN_EXITED] = "exited",       [RUN_SIGNALED] = "signaled", [RUN_TIMEOUT] = "timeout",
	[RUN_CANCELLED] = "cancelled", [RUN_FAILED] = "failed",     [RUN_LOST] = "lost",
};
_Static_assert(sizeof status_names / sizeof status_names[0] == RUN_LOST + 1,
	       "a stored name for every run status");

int
record_status_parse(const char *name)
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
bool
record_has_handler_part(int type)
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
	if (record_has_handler_part(j->spec.type)) {
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
