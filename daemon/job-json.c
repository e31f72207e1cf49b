/*
 * The JSON views of the job table (doc/protocol.md "Job object"): a job's
 * object with the fields other modules add through the hook, the same
 * within a byte budget (oldest attempts left out, then long values cut),
 * and an array's object. Loop thread only.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "job.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "modules.h"

static json_t *
strv_to_json(char *const *v)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
time_or_null(double t)
{
	return t > 0 ? json_real(t) : json_null();
}

/* A handler's result is JSON; a built-in's is text. */
static json_t *
result_json(const struct run_result *r)
{
	json_t *v;

	if (r->result == NULL)
		return json_null();
	if (r->result_json &&
	    (v = json_loads(r->result, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL)) != NULL)
		return v;
	return json_string(r->result);
}

/* The last progress message while it runs: a handler's (kept in the job), a module job's (in its run). */
static json_t *
progress_json(const struct job *j)
{
	json_t *v;
	char *p;

	if (j->progress != NULL)
		return json_string(j->progress);
	if (j->state != JOB_RUNNING || j->run == NULL || (p = run_progress(j->run)) == NULL)
		return json_null();
	v = json_string(p); /* UTF-8: modrun.c made it so */
	free(p);
	return v != NULL ? v : json_null();
}

static void
add_result(json_t *o, const struct job *j)
{
	const struct run_result *r = &j->res;
	bool fin = job_state_final(j->state);
	bool ran = fin && j->started_at > 0;

	json_object_set_new(o, "exit_code", r->exit_code >= 0 ? json_integer(r->exit_code)
							      : json_null());
	json_object_set_new(o, "signal", r->signal > 0 ? json_integer(r->signal) : json_null());
	json_object_set_new(o, "cpu_user", ran ? json_real(r->cpu_user) : json_null());
	json_object_set_new(o, "cpu_sys", ran ? json_real(r->cpu_sys) : json_null());
	json_object_set_new(o, "max_rss_kb", ran && r->max_rss_kb >= 0
						     ? json_integer(r->max_rss_kb) : json_null());
	json_object_set_new(o, "mem_peak_kb", ran && r->mem_peak_kb >= 0
						      ? json_integer(r->mem_peak_kb) : json_null());
	/* 0: never measured (a run lost while taskd was down that had ended by its restart). */
	json_object_set_new(o, "wall", ran && r->wall > 0 ? json_real(r->wall) : json_null());
	json_object_set_new(o, "result", result_json(r));
	json_object_set_new(o, "error", job_error_json(r->error));
	json_object_set_new(o, "stdout_bytes", ran ? json_integer((json_int_t)r->out_bytes)
						   : json_null());
	json_object_set_new(o, "stderr_bytes", ran ? json_integer((json_int_t)r->err_bytes)
						   : json_null());
	json_object_set_new(o, "stdout_truncated", json_boolean(r->out_truncated));
	json_object_set_new(o, "stderr_truncated", json_boolean(r->err_truncated));
}

json_t *
job_error_json(const char *error)
{
	return error != NULL ? string_cut(error, JOB_ERROR_SHOWN) : json_null();
}

/* Earlier attempts' outcomes (life.c), their errors as shown. */
static json_t *
attempts_json(const json_t *attempts)
{
	json_t *a = attempts != NULL ? json_deep_copy(attempts) : json_array(), *o, *e;
	size_t i;

	json_array_foreach(a, i, o) {
		e = json_object_get(o, "error");
		if (json_is_string(e) && json_string_length(e) > JOB_ERROR_SHOWN)
			json_object_set_new(o, "error", job_error_json(json_string_value(e)));
	}
	return a;
}

/* Dependencies, start time and retries (life.c). */
static void
add_lifecycle(json_t *o, const struct job *j)
{
	const struct job_spec *s = &j->spec;
	json_t *after = json_array(), *any = json_array();
	size_t i;

	for (i = 0; i < s->ndeps; i++)
		json_array_append_new(s->deps[i].any ? any : after,
				      json_integer((json_int_t)s->deps[i].id));
	json_object_set_new(o, "after", after);
	json_object_set_new(o, "after_any", any);
	json_object_set_new(o, "run_at", time_or_null(s->run_at));
	json_object_set_new(o, "due_at", j->state == JOB_SCHEDULED ? time_or_null(j->due_at)
								  : json_null());
	json_object_set_new(o, "retries", json_integer(s->retries));
	json_object_set_new(o, "retry_delay", json_real(s->retry_delay));
	json_object_set_new(o, "attempt", json_integer(j->attempt));
	json_object_set_new(o, "attempts", attempts_json(j->attempts));
}

/* What issue 16 added: unique key, re-runs, queue, slots, input, arrays, suspension. */
static void
add_workflow(json_t *o, const struct job *j)
{
	const struct job_spec *s = &j->spec;
	double susp = j->suspended_for;

	if (j->state == JOB_SUSPENDED && j->suspended_at > 0)
		susp += now_unix() - j->suspended_at;
	json_object_set_new(o, "unique", string_or_null(s->unique));
	json_object_set_new(o, "queue", string_or_null(s->queue));
	json_object_set_new(o, "slots", json_integer(s->slots));
	json_object_set_new(o, "input_bytes", s->input_bytes > 0
						      ? json_integer((json_int_t)s->input_bytes)
						      : json_null());
	json_object_set_new(o, "restarted_from", j->restarted_from > 0
							 ? json_integer((json_int_t)j->restarted_from)
							 : json_null());
	json_object_set_new(o, "array", j->array != NULL ? json_integer((json_int_t)j->array->id)
							 : json_null());
	json_object_set_new(o, "array_index", j->array != NULL ? json_integer(j->array_index)
							       : json_null());
	json_object_set_new(o, "suspended_at", j->state == JOB_SUSPENDED
						       ? time_or_null(j->suspended_at) : json_null());
	json_object_set_new(o, "suspended_for", json_real(susp > 0 ? susp : 0));
}

static void (*json_hook)(const struct job *, json_t *, void *);
static void *json_hook_arg;

void
job_set_json_hook(void (*fn)(const struct job *j, json_t *o, void *arg), void *arg)
{
	json_hook = fn;
	json_hook_arg = arg;
}

json_t *
job_to_json(const struct job *j)
{
	json_t *o = json_object();
	const char *pool = job_pool_name(j->pool);
	int pid;

	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "state", json_string(job_state_name(j->state)));
	json_object_set_new(o, "type", json_string(jobtype_name(j->spec.type, j->spec.handler)));
	json_object_set_new(o, "class", json_string(config_class_name(j->spec.class)));
	json_object_set_new(o, "routed", pool != NULL ? json_string(config_class_name(j->routed))
						      : json_null());
	json_object_set_new(o, "pool", string_or_null(pool));
	json_object_set_new(o, "worker", j->worker >= 0 ? json_integer(j->worker) : json_null());
	json_object_set_new(o, "name", string_or_null(j->spec.name));
	json_object_set_new(o, "labels", labels_to_json(&j->spec.labels));
	json_object_set_new(o, "argv", strv_to_json(j->spec.argv));
	json_object_set_new(o, "cwd", string_or_null(j->spec.cwd));
	json_object_set_new(o, "notify", string_or_null(j->spec.notify));
	json_object_set_new(o, "priority", json_integer(j->spec.priority));
	json_object_set_new(o, "timeout", json_real(j->spec.timeout));
	json_object_set_new(o, "owner", json_pack("{s:I,s:I}", "uid", (json_int_t)j->uid,
						  "gid", (json_int_t)j->gid));
	pid = j->run != NULL ? atomic_load(&j->run->live_pid) : (int)j->res.pid;
	json_object_set_new(o, "pid", pid > 0 ? json_integer(pid) : json_null());
	add_result(o, j);
	/* Types that may report progress: handlers and modules (the built-in types do not). */
	if (j->spec.type == JOBTYPE_HANDLER ||
	    (j->spec.type != BUILTIN_EXEC && !module_builtin(j->spec.type)))
		json_object_set_new(o, "progress", progress_json(j));
	add_lifecycle(o, j);
	json_object_set_new(o, "submitted_at", time_or_null(j->submitted_at));
	json_object_set_new(o, "started_at", time_or_null(j->started_at));
	json_object_set_new(o, "finished_at", time_or_null(j->finished_at));
	add_workflow(o, j);
	/* Cluster mode: where it ran, and whether this attempt is a redelivery (doc/cluster.md). */
	if (j->cl.member) {
		json_object_set_new(o, "node", string_or_null(j->cl.node));
		json_object_set_new(o, "redelivered", json_boolean(j->cl.redelivered));
		json_object_set_new(o, "redelivered_from", string_or_null(j->cl.from));
	}
	json_object_set_new(o, "memory", j->spec.limits.memory > 0
				 ? json_integer((json_int_t)j->spec.limits.memory) : json_null());
	json_object_set_new(o, "cpus", j->spec.limits.cpus > 0 ? json_real(j->spec.limits.cpus)
								: json_null());
	json_object_set_new(o, "pids", j->spec.limits.pids > 0
				 ? json_integer((json_int_t)j->spec.limits.pids) : json_null());
	if (json_hook != NULL)
		json_hook(j, o, json_hook_arg);
	else
		json_object_set_new(o, "wait_reason", json_null());
	return o;
}

/* ---- the job object within a budget ---- */

/* Leave out the oldest attempts until o fits; size is its size now. */
static size_t
fit_attempts(json_t *o, size_t size, size_t budget)
{
	json_t *a = json_object_get(o, "attempts");
	size_t n = 0;

	while (size > budget && json_array_size(a) > 0) {
		/* The element and its comma (or, for the last one, nothing more to save). */
		size -= json_text_size(json_array_get(a, 0)) + (json_array_size(a) > 1);
		json_array_remove(a, 0);
		n++;
	}
	if (n > 0)
		json_object_set_new(o, "attempts_omitted", json_integer((json_int_t)n));
	return json_text_size(o);
}

/* Strings longer than max bytes cut, arrays longer than keep elements shortened. */
static void
cut_value(json_t *v, size_t max, size_t keep)
{
	json_t *e;
	const char *key;
	void *tmp;
	size_t i;

	if (json_is_array(v)) {
		while (json_array_size(v) > keep)
			json_array_remove(v, json_array_size(v) - 1);
		json_array_foreach(v, i, e) {
			if (json_is_string(e) && json_string_length(e) > max)
				json_array_set_new(v, i, string_cut(json_string_value(e), max));
			else
				cut_value(e, max, keep);
		}
	} else if (json_is_object(v)) {
		json_object_foreach_safe(v, tmp, key, e) {
			if (json_is_string(e) && json_string_length(e) > max)
				json_object_set_new(v, key, string_cut(json_string_value(e), max));
			else
				cut_value(e, max, keep);
		}
	}
}

void
job_json_fit(json_t *o, size_t budget)
{
	static const char *const cuttable[] = {"argv", "cwd", "name", "labels", "after",
					       "after_any", "result", "error"};
	size_t size = json_text_size(o), max, keep, i;
	json_t *v;

	if (size <= budget)
		return;
	size = fit_attempts(o, size, budget);
	/* Still too big: its description is (limits.max_frame was lowered since its submit). */
	for (max = 4096, keep = 1024; size > budget && max >= 16; max /= 2, keep /= 2) {
		for (i = 0; i < sizeof cuttable / sizeof cuttable[0]; i++) {
			v = json_object_get(o, cuttable[i]);
			if (json_is_string(v) && json_string_length(v) > max)
				json_object_set_new(o, cuttable[i],
						    string_cut(json_string_value(v), max));
			else
				cut_value(v, max, keep);
		}
		json_object_set_new(o, "cut", json_true());
		size = json_text_size(o);
	}
}

json_t *
job_to_json_fit(const struct job *j, size_t budget)
{
	json_t *o = job_to_json(j);

	job_json_fit(o, budget);
	return o;
}

json_t *
job_array_to_json(const struct job_array *a)
{
	const struct job_spec *s = &a->spec;
	json_t *o = json_object(), *states = json_object(), *after = json_array(),
	       *any = json_array();
	size_t i;
	int st;

	for (st = 0; st < JOB_NSTATES; st++)
		json_object_set_new(states, job_state_name(st), json_integer((json_int_t)a->counts[st]));
	for (i = 0; i < a->ndeps; i++)
		json_array_append_new(a->deps[i].any ? any : after,
				      json_integer((json_int_t)a->deps[i].id));
	json_object_set_new(o, "array", json_integer((json_int_t)a->id));
	json_object_set_new(o, "first", json_integer((json_int_t)a->id));
	json_object_set_new(o, "last", json_integer((json_int_t)(a->id + a->count - 1)));
	json_object_set_new(o, "count", json_integer((json_int_t)a->count));
	json_object_set_new(o, "start", json_integer(a->start));
	json_object_set_new(o, "end", json_integer(a->start + (long long)(a->count - 1) * a->step));
	json_object_set_new(o, "step", json_integer(a->step));
	json_object_set_new(o, "max", a->max > 0 ? json_integer(a->max) : json_null());
	json_object_set_new(o, "states", states);
	json_object_set_new(o, "removed", json_integer((json_int_t)(a->count - a->present)));
	json_object_set_new(o, "type", json_string(jobtype_name(s->type, s->handler)));
	json_object_set_new(o, "class", json_string(config_class_name(s->class)));
	json_object_set_new(o, "name", string_or_null(s->name));
	json_object_set_new(o, "labels", labels_to_json(&s->labels));
	json_object_set_new(o, "argv", strv_to_json(s->argv));
	json_object_set_new(o, "cwd", string_or_null(s->cwd));
	json_object_set_new(o, "priority", json_integer(s->priority));
	json_object_set_new(o, "timeout", json_real(s->timeout));
	json_object_set_new(o, "queue", string_or_null(s->queue));
	json_object_set_new(o, "unique", string_or_null(s->unique));
	json_object_set_new(o, "slots", json_integer(s->slots));
	json_object_set_new(o, "input_bytes", s->input_bytes > 0
						      ? json_integer((json_int_t)s->input_bytes)
						      : json_null());
	json_object_set_new(o, "retries", json_integer(s->retries));
	json_object_set_new(o, "after", after);
	json_object_set_new(o, "after_any", any);
	json_object_set_new(o, "run_at", time_or_null(s->run_at));
	json_object_set_new(o, "owner", json_pack("{s:I,s:I}", "uid", (json_int_t)a->uid, "gid",
						  (json_int_t)a->gid));
	json_object_set_new(o, "submitted_at", time_or_null(a->submitted_at));
	return o;
}
