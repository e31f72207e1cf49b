/*
 * The messages between a worker process and the daemon (worker.h): their
 * encoders, and strict decoders that are used on both sides. The daemon
 * trusts nothing a worker sends that has not been through them: a message
 * decodes whole, every field present, typed and in range, or not at all
 * (the first error wins and names the field).
 */
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "exec.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "modules.h"
#include "worker.h"
#include "xmalloc.h"

#define WORKER_NICE_MIN -20
#define WORKER_NICE_MAX 19
#define WORKER_SIGNAL_MAX 64

/* --- encoding --------------------------------------------------------- */

json_t *
worker_encode_spec(const struct run_spec *s)
{
	json_t *m = json_object();

	json_object_set_new(m, "t", json_string("run"));
	json_object_set_new(m, "job", json_integer((json_int_t)s->job_id));
	/* By name: a worker's table of module types may lack a module that failed to load there. */
	json_object_set_new(m, "type", string_or_null(jobtype_name(s->type, NULL)));
	json_object_set_new(m, "argv", strv_or_null(s->argv));
	json_object_set_new(m, "env", strv_or_null(s->env));
	json_object_set_new(m, "cwd", string_or_null(s->cwd));
	json_object_set_new(m, "in_path", string_or_null(s->in_path));
	json_object_set_new(m, "out_path", string_or_null(s->out_path));
	json_object_set_new(m, "err_path", string_or_null(s->err_path));
	json_object_set_new(m, "timeout", finite_real(s->timeout));
	json_object_set_new(m, "kill_grace", finite_real(s->kill_grace));
	json_object_set_new(m, "max_output", json_integer((json_int_t)s->max_output));
	json_object_set_new(m, "max_kept", json_integer((json_int_t)s->max_kept));
	json_object_set_new(m, "quiet", json_boolean(s->quiet));
	json_object_set_new(m, "nice", json_integer(s->nice));
	json_object_set_new(m, "as_user", json_boolean(s->as_user));
	json_object_set_new(m, "uid", json_integer((json_int_t)s->uid));
	json_object_set_new(m, "gid", json_integer((json_int_t)s->gid));
	json_object_set_new(m, "cgroup", string_or_null(s->cgroup));
	json_object_set_new(m, "memory", json_integer((json_int_t)s->limits.memory));
	json_object_set_new(m, "cpus", finite_real(s->limits.cpus));
	json_object_set_new(m, "pids", json_integer((json_int_t)s->limits.pids));
	json_object_set_new(m, "track", string_or_null(s->track_path));
	json_object_set_new(m, "input", string_or_null(s->input));
	json_object_set_new(m, "max_result", json_integer((json_int_t)s->max_result));
	return m;
}

json_t *
worker_encode_result(uint64_t job, const struct run_result *res, long rss_kb)
{
	json_t *m = json_object();

	json_object_set_new(m, "t", json_string("done"));
	json_object_set_new(m, "job", json_integer((json_int_t)job));
	json_object_set_new(m, "status", json_integer(res->status));
	json_object_set_new(m, "exit_code", json_integer(res->exit_code));
	json_object_set_new(m, "signal", json_integer(res->signal));
	json_object_set_new(m, "cpu_user", finite_real(res->cpu_user));
	json_object_set_new(m, "cpu_sys", finite_real(res->cpu_sys));
	json_object_set_new(m, "max_rss_kb", json_integer(res->max_rss_kb));
	json_object_set_new(m, "wall", finite_real(res->wall));
	json_object_set_new(m, "runq_wait", finite_real(res->runq_wait));
	json_object_set_new(m, "runq_wait", finite_real(res->runq_wait));
	json_object_set_new(m, "started_at", finite_real(res->started_at));
	json_object_set_new(m, "finished_at", finite_real(res->finished_at));
	json_object_set_new(m, "out_bytes", json_integer((json_int_t)res->out_bytes));
	json_object_set_new(m, "err_bytes", json_integer((json_int_t)res->err_bytes));
	json_object_set_new(m, "out_truncated", json_boolean(res->out_truncated));
	json_object_set_new(m, "err_truncated", json_boolean(res->err_truncated));
	json_object_set_new(m, "pid", json_integer(res->pid));
	json_object_set_new(m, "mem_peak_kb", json_integer(res->mem_peak_kb));
	json_object_set_new(m, "cmd_wall", finite_real(res->cmd_wall));
	json_object_set_new(m, "in_cgroup", json_boolean(res->in_cgroup));
	json_object_set_new(m, "result", string_or_null(res->result));
	json_object_set_new(m, "result_json", json_boolean(res->result_json));
	json_object_set_new(m, "error", string_or_null(res->error));
	json_object_set_new(m, "cgroup_error", string_or_null(res->cgroup_error));
	json_object_set_new(m, "rss_kb", json_integer(rss_kb));
	return m;
}

json_t *
worker_encode_progress(uint64_t job, const char *message)
{
	return json_pack("{s:s,s:I,s:s}", "t", "progress", "job", (json_int_t)job, "message",
			 message);
}

/* --- decoding --------------------------------------------------------- */

/* A decoder: the first error wins, later field reads are no-ops. */
struct dec {
	const json_t *msg;
	char *error;
};

static void
dec_fail(struct dec *d, const char *key, const char *what)
{
	if (d->error == NULL)
		d->error = xprintf("\"%s\": %s", key, what);
}

static const json_t *
dec_get(struct dec *d, const char *key)
{
	const json_t *v;

	if (d->error != NULL)
		return NULL;
	v = json_object_get(d->msg, key);
	if (v == NULL)
		dec_fail(d, key, "missing");
	return v;
}

static json_int_t
dec_int(struct dec *d, const char *key, json_int_t min, json_int_t max)
{
	const json_t *v = dec_get(d, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v)) {
		dec_fail(d, key, "not an integer");
		return 0;
	}
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		dec_fail(d, key, "out of range");
		return 0;
	}
	return json_integer_value(v);
}

/* A finite number >= 0 (integer or real). */
static double
dec_time(struct dec *d, const char *key)
{
	const json_t *v = dec_get(d, key);
	double x;

	if (v == NULL)
		return 0;
	if (!json_is_number(v)) {
		dec_fail(d, key, "not a number");
		return 0;
	}
	x = json_number_value(v);
	if (!isfinite(x) || x < 0) {
		dec_fail(d, key, "out of range");
		return 0;
	}
	return x;
}

static bool
dec_bool(struct dec *d, const char *key)
{
	const json_t *v = dec_get(d, key);

	if (v == NULL)
		return false;
	if (!json_is_boolean(v)) {
		dec_fail(d, key, "not a boolean");
		return false;
	}
	return json_is_true(v);
}

/* A string without NUL, or null (-> NULL). Returns a malloc'd copy. */
static char *
dec_str(struct dec *d, const char *key)
{
	const json_t *v = dec_get(d, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!string_without_nul(v)) {
		dec_fail(d, key, "not a string");
		return NULL;
	}
	return xstrdup(json_string_value(v));
}

/* An array of strings (with '=' when env), or null (-> NULL). */
static char **
dec_strv(struct dec *d, const char *key, bool env)
{
	const json_t *v = dec_get(d, key), *e;
	char **out;
	size_t i;

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_array(v)) {
		dec_fail(d, key, "not an array");
		return NULL;
	}
	json_array_foreach(v, i, e) {
		if (!string_without_nul(e) || (env && strchr(json_string_value(e), '=') == NULL)) {
			dec_fail(d, key,
			         env ? "not an array of K=V strings" : "not an array of strings");
			return NULL;
		}
	}
	out = xreallocarray(NULL, json_array_size(v) + 1, sizeof *out);
	json_array_foreach(v, i, e) {
		out[i] = xstrdup(json_string_value(e));
	}
	out[json_array_size(v)] = NULL;
	return out;
}

/* The message is an object whose "t" is want. */
static int
dec_type(struct dec *d, const char *want)
{
	const json_t *t;

	if (!json_is_object(d->msg)) {
		d->error = xstrdup("message is not an object");
		return -1;
	}
	t = json_object_get(d->msg, "t");
	if (!json_is_string(t)) {
		d->error = xstrdup("message without \"t\"");
		return -1;
	}
	if (strcmp(json_string_value(t), want) != 0) {
		d->error =
		    xprintf("unexpected message \"%s\" (want \"%s\")", json_string_value(t), want);
		return -1;
	}
	return 0;
}

/* A job type's name: exec, or a module type of this process's table; -1 if not one of them. */
static int
dec_jobtype(struct dec *d, const char *key, char **name)
{
	const json_t *v = dec_get(d, key);

	if (v == NULL)
		return -1;
	if (!string_without_nul(v)) {
		dec_fail(d, key, "not a string");
		return -1;
	}
	*name = xstrdup(json_string_value(v));
	if (strcmp(*name, "exec") == 0)
		return BUILTIN_EXEC;
	return module_find(*name);
}

int
worker_decode_spec(const json_t *msg, struct run_spec *spec, char **error)
{
	struct dec d = {.msg = msg};
	struct run_spec s;
	char *type = NULL;

	memset(&s, 0, sizeof s);
	if (dec_type(&d, "run") == 0) {
		s.job_id = (uint64_t)dec_int(&d, "job", 0, INT64_MAX);
		s.type = dec_jobtype(&d, "type", &type);
		s.argv = dec_strv(&d, "argv", false);
		s.env = dec_strv(&d, "env", true);
		s.cwd = dec_str(&d, "cwd");
		s.in_path = dec_str(&d, "in_path");
		s.out_path = dec_str(&d, "out_path");
		s.err_path = dec_str(&d, "err_path");
		s.timeout = dec_time(&d, "timeout");
		s.kill_grace = dec_time(&d, "kill_grace");
		s.max_output = (uint64_t)dec_int(&d, "max_output", 0, INT64_MAX);
		s.max_kept = (uint64_t)dec_int(&d, "max_kept", 0, INT64_MAX);
		s.quiet = dec_bool(&d, "quiet");
		s.nice = (int)dec_int(&d, "nice", WORKER_NICE_MIN, WORKER_NICE_MAX);
		s.as_user = dec_bool(&d, "as_user");
		s.uid = (uid_t)dec_int(&d, "uid", 0, UINT32_MAX - 1);
		s.gid = (gid_t)dec_int(&d, "gid", 0, UINT32_MAX - 1);
		s.cgroup = dec_str(&d, "cgroup");
		s.limits.memory = (uint64_t)dec_int(&d, "memory", 0, INT64_MAX);
		s.limits.cpus = dec_time(&d, "cpus");
		s.limits.pids = (uint64_t)dec_int(&d, "pids", 0, INT64_MAX);
		s.track_path = dec_str(&d, "track");
		s.input = dec_str(&d, "input");
		s.max_result = (uint64_t)dec_int(&d, "max_result", 0, INT64_MAX);
	}
	if (d.error != NULL) {
		run_spec_free(&s);
		free(type);
		*error = d.error;
		return -1;
	}
	*spec = s;
	if (s.type < 0) {
		*error = xprintf("job type %s is not loaded in this worker (its module failed to "
				 "load here: see taskd's log)", type);
		free(type);
		return -2;
	}
	free(type);
	return 0;
}

int
worker_decode_result(const json_t *msg, struct run_result *res, uint64_t *job, long *rss_kb,
                     char **error)
{
	struct dec d = {.msg = msg};
	struct run_result r;
	uint64_t id = 0;
	long rss = 0;

	memset(&r, 0, sizeof r);
	r.mem_peak_kb = -1;
	if (dec_type(&d, "done") == 0) {
		id = (uint64_t)dec_int(&d, "job", 0, INT64_MAX);
		r.status = (enum run_status)dec_int(&d, "status", RUN_EXITED, RUN_LOST);
		r.exit_code = (int)dec_int(&d, "exit_code", -1, 255);
		r.signal = (int)dec_int(&d, "signal", 0, WORKER_SIGNAL_MAX);
		r.cpu_user = dec_time(&d, "cpu_user");
		r.cpu_sys = dec_time(&d, "cpu_sys");
		r.max_rss_kb = (long)dec_int(&d, "max_rss_kb", -1, LONG_MAX);
		r.wall = dec_time(&d, "wall");
		r.runq_wait = dec_time(&d, "runq_wait");
		r.runq_wait = dec_time(&d, "runq_wait");
		r.started_at = dec_time(&d, "started_at");
		r.finished_at = dec_time(&d, "finished_at");
		r.out_bytes = (uint64_t)dec_int(&d, "out_bytes", 0, INT64_MAX);
		r.err_bytes = (uint64_t)dec_int(&d, "err_bytes", 0, INT64_MAX);
		r.out_truncated = dec_bool(&d, "out_truncated");
		r.err_truncated = dec_bool(&d, "err_truncated");
		r.pid = (pid_t)dec_int(&d, "pid", 0, INT_MAX);
		r.result = dec_str(&d, "result");
		r.result_json = dec_bool(&d, "result_json");
		r.error = dec_str(&d, "error");
		rss = (long)dec_int(&d, "rss_kb", -1, LONG_MAX);
		r.mem_peak_kb = (long)dec_int(&d, "mem_peak_kb", -1, LONG_MAX);
		r.cmd_wall = dec_time(&d, "cmd_wall");
		r.in_cgroup = dec_bool(&d, "in_cgroup");
		r.cgroup_error = dec_str(&d, "cgroup_error");
	}
	if (d.error != NULL) {
		run_result_clear(&r);
		*error = d.error;
		return -1;
	}
	*res = r;
	*job = id;
	*rss_kb = rss;
	return 0;
}

int
worker_decode_progress(const json_t *msg, uint64_t *job, char **message, char **error)
{
	struct dec d = {.msg = msg};
	uint64_t id = 0;
	char *text = NULL;

	if (dec_type(&d, "progress") == 0) {
		id = (uint64_t)dec_int(&d, "job", 0, INT64_MAX);
		text = dec_str(&d, "message");
		if (d.error == NULL && text == NULL)
			dec_fail(&d, "message", "not a string");
		if (d.error == NULL && strlen(text) > WORKER_PROGRESS_MAX)
			dec_fail(&d, "message", "too long");
	}
	if (d.error != NULL) {
		free(text);
		*error = d.error;
		return -1;
	}
	*job = id;
	*message = text;
	return 0;
}
