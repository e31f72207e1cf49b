#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <taskd/protocol.h>

#include "base64.h"
#include "builtin.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "log.h"
#include "modules.h"
#include "proto.h"
#include "xmalloc.h"

void
proto_error_set(struct proto_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;

	free(err->message);
	err->code = code;
	va_start(ap, fmt);
	if (vasprintf(&err->message, fmt, ap) < 0)
		err->message = NULL;
	va_end(ap);
}

void
proto_error_clear(struct proto_error *err)
{
	free(err->message);
	err->message = NULL;
	err->code = NULL;
}

void
proto_request_free(struct request *req)
{
	if (req->root != NULL)
		json_decref(req->root);
	else if (req->id != NULL)
		json_decref(req->id);
	memset(req, 0, sizeof *req);
}

int
proto_decode(const char *line, size_t len, struct request *req, struct proto_error *err)
{
	json_error_t jerr;
	json_t *root, *v, *op;

	memset(req, 0, sizeof *req);
	root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		req->id = json_null();
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "malformed JSON at column %d: %s",
				jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		req->id = json_null();
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "a request must be a JSON object");
		return -1;
	}
	req->root = root;
	req->id = json_object_get(root, "id");
	if (req->id == NULL) {
		req->id = json_null();
	} else if (json_is_object(req->id) || json_is_array(req->id)) {
		req->id = json_null();
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"id\" must be a number or a string");
		return -1;
	} else if (json_text_size(req->id) > TASKD_MAX_ID) {
		/* Echoed in the answer: it would take the room the answer needs. */
		req->id = json_null();
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"id\" takes more than %d bytes",
				TASKD_MAX_ID);
		return -1;
	}
	v = json_object_get(root, "v");
	if (v != NULL && (!json_is_integer(v) || json_integer_value(v) != TASKD_PROTO_VERSION)) {
		proto_error_set(err, TASKD_ERR_UNSUPPORTED_VERSION,
				"protocol version not supported: this taskd speaks \"v\":%d",
				TASKD_PROTO_VERSION);
		return -1;
	}
	op = json_object_get(root, "op");
	if (op == NULL || !json_is_string(op)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "missing \"op\" (a string)");
		return -1;
	}
	req->op = json_string_value(op);
	return 0;
}

/* ---- job descriptions ---- */

static const char *const envelope_fields[] = { "v", "id", "op" };

/* A new job field: doc/design.md "Adding a job field". */
static const char *const job_fields[] = {
	"type", "argv", "cwd", "env", "class", "priority", "name", "timeout", "labels",
	"after", "after_any", "run_at", "retries", "retry_delay", "input", "notify", "unique",
	"queue", "slots", "array", "memory", "cpus", "pids",
};

static bool
in_list(const char *key, const char *const *list, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(key, list[i]) == 0)
			return true;
	return false;
}

bool
proto_envelope_field(const char *key)
{
	return in_list(key, envelope_fields, sizeof envelope_fields / sizeof envelope_fields[0]);
}

bool
proto_job_field(const char *key)
{
	return in_list(key, job_fields, sizeof job_fields / sizeof job_fields[0]);
}

static int
decode_argv(json_t *a, struct job_spec *spec, struct proto_error *err)
{
	size_t i, n;
	json_t *w;

	if (a == NULL) {
		spec->argv = xcalloc(1, sizeof(char *));
		return 0;
	}
	if (!json_is_array(a)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"argv\" must be an array of strings");
		return -1;
	}
	n = json_array_size(a);
	if (n > TASKD_MAX_ARGS) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"argv\" has %zu words (at most %d)",
				n, TASKD_MAX_ARGS);
		return -1;
	}
	spec->argv = xcalloc(n + 1, sizeof(char *));
	json_array_foreach(a, i, w) {
		if (!json_is_string(w) || strlen(json_string_value(w)) != json_string_length(w)) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"argv\"[%zu] must be a string without NUL bytes", i);
			return -1;
		}
		spec->argv[i] = xstrdup(json_string_value(w));
	}
	return 0;
}

static int
decode_env(json_t *e, struct job_spec *spec, struct proto_error *err)
{
	const char *k;
	size_t n, i = 0;
	json_t *v;

	if (e == NULL)
		return 0;
	if (!json_is_object(e)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"env\" must be an object of strings {\"NAME\":\"value\"}");
		return -1;
	}
	n = json_object_size(e);
	if (n > TASKD_MAX_ENV) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"env\" has %zu variables (at most %d)",
				n, TASKD_MAX_ENV);
		return -1;
	}
	spec->env = xcalloc(n + 2, sizeof(char *));
	json_object_foreach(e, k, v) {
		if (*k == '\0' || strchr(k, '=') != NULL) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"env\": bad variable name '%s'",
					k);
			return -1;
		}
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"env\".%s must be a string without NUL bytes", k);
			return -1;
		}
		spec->env[i++] = xprintf("%s=%s", k, json_string_value(v));
	}
	if (json_object_get(e, "PATH") == NULL)
		spec->env[i] = xstrdup("PATH=" TASKD_DEFAULT_PATH);
	return 0;
}

static int
decode_cwd(json_t *c, bool check, struct job_spec *spec, struct proto_error *err)
{
	struct stat st;
	const char *dir;

	if (c == NULL) {
		spec->cwd = xstrdup("/");
		return 0;
	}
	if (!json_is_string(c) || json_string_value(c)[0] != '/') {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"cwd\" must be an absolute path");
		return -1;
	}
	dir = json_string_value(c);
	if (!check) {
		spec->cwd = xstrdup(dir);
		return 0;
	}
	if (stat(dir, &st) == -1) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "cwd %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "cwd %s: Not a directory", dir);
		return -1;
	}
	spec->cwd = xstrdup(dir);
	return 0;
}

static int
decode_scalars(json_t *obj, double default_timeout, struct job_spec *spec,
	       struct proto_error *err)
{
	json_t *v;
	int c;

	spec->class = CLASS_AUTO;
	if ((v = json_object_get(obj, "class")) != NULL) {
		c = json_is_string(v) ? config_class_parse(json_string_value(v)) : -1;
		if (c < 0) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"class\" must be \"cpu\", \"io\" or \"auto\"");
			return -1;
		}
		spec->class = c;
	}
	if ((v = json_object_get(obj, "priority")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < TASKD_PRIORITY_MIN ||
		    json_integer_value(v) > TASKD_PRIORITY_MAX) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"priority\" must be an integer from %d to %d",
					TASKD_PRIORITY_MIN, TASKD_PRIORITY_MAX);
			return -1;
		}
		spec->priority = (int)json_integer_value(v);
	}
	spec->timeout = default_timeout;
	if ((v = json_object_get(obj, "timeout")) != NULL) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    json_number_value(v) < 0 || json_number_value(v) > 1e9) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"timeout\" must be a number of seconds >= 0");
			return -1;
		}
		spec->timeout = json_number_value(v);
	}
	if ((v = json_object_get(obj, "name")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) > TASKD_MAX_NAME ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"name\" must be a string of at most %d bytes",
					TASKD_MAX_NAME);
			return -1;
		}
		spec->name = xstrdup(json_string_value(v));
	}
	if ((v = json_object_get(obj, "notify")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > TASKD_MAX_NOTIFY ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"notify\" must be a shell command line of 1 to %d bytes",
					TASKD_MAX_NOTIFY);
			return -1;
		}
		spec->notify = xstrdup(json_string_value(v));
	}
	return 0;
}

/*
 * "memory" (bytes), "cpus", "pids": a command's limits in its cgroup; 0 or
 * absent means the config's default. Whether taskd can apply them is the
 * daemon's question (they need cgroups and their controllers).
 */
static int
decode_limits(json_t *obj, struct job_spec *spec, struct proto_error *err)
{
	json_t *m = json_object_get(obj, "memory"), *c = json_object_get(obj, "cpus");
	json_t *p = json_object_get(obj, "pids");

	if (m != NULL && (!json_is_integer(m) ||
			  (json_integer_value(m) != 0 &&
			   (json_integer_value(m) < TASKD_MEMORY_MIN ||
			    json_integer_value(m) > TASKD_MEMORY_MAX)))) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"memory\" must be bytes from %lld (1M) to %lld (16T), or 0",
				TASKD_MEMORY_MIN, TASKD_MEMORY_MAX);
		return -1;
	}
	if (c != NULL && (!json_is_number(c) || !isfinite(json_number_value(c)) ||
			  (json_number_value(c) != 0 &&
			   (json_number_value(c) < TASKD_CPUS_MIN ||
			    json_number_value(c) > TASKD_CPUS_MAX)))) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"cpus\" must be a number of CPUs from %g to %d, or 0",
				TASKD_CPUS_MIN, TASKD_CPUS_MAX);
		return -1;
	}
	if (p != NULL && (!json_is_integer(p) || json_integer_value(p) < 0 ||
			  json_integer_value(p) > TASKD_PIDS_MAX)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"pids\" must be an integer from 1 to %d, or 0", TASKD_PIDS_MAX);
		return -1;
	}
	spec->limits.memory = m != NULL ? (uint64_t)json_integer_value(m) : 0;
	spec->limits.cpus = c != NULL ? json_number_value(c) : 0;
	spec->limits.pids = p != NULL ? (uint64_t)json_integer_value(p) : 0;
	if (spec->type != BUILTIN_EXEC &&
	    (spec->limits.memory > 0 || spec->limits.cpus > 0 || spec->limits.pids > 0)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"memory\", \"cpus\" and \"pids\" limit commands: a built-in "
				"runs inside taskd");
		return -1;
	}
	return 0;
}

/* "after" / "after_any": arrays of job ids (existence is checked by the daemon). */
static int
decode_deps(json_t *obj, struct job_spec *spec, struct proto_error *err)
{
	static const char *const keys[2] = { "after", "after_any" };
	json_t *a[2], *v;
	size_t n = 0, i, k, m;

	for (k = 0; k < 2; k++) {
		a[k] = json_object_get(obj, keys[k]);
		if (a[k] == NULL)
			continue;
		if (!json_is_array(a[k])) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"%s\" must be an array of job ids", keys[k]);
			return -1;
		}
		n += json_array_size(a[k]);
	}
	if (n > JOB_MAX_DEPS) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"%zu dependencies (at most %d)", n, JOB_MAX_DEPS);
		return -1;
	}
	if (n == 0)
		return 0;
	spec->deps = xcalloc(n, sizeof *spec->deps);
	for (k = 0; k < 2; k++) {
		json_array_foreach(a[k] != NULL ? a[k] : NULL, i, v) {
			if (!json_is_integer(v) || json_integer_value(v) <= 0) {
				proto_error_set(err, TASKD_ERR_BAD_REQUEST,
						"\"%s\"[%zu] must be a job id (a positive integer)",
						keys[k], i);
				return -1;
			}
			for (m = 0; m < spec->ndeps; m++) {
				if (spec->deps[m].id == (uint64_t)json_integer_value(v)) {
					proto_error_set(err, TASKD_ERR_BAD_REQUEST,
							"dependency %lld named twice",
							(long long)json_integer_value(v));
					return -1;
				}
			}
			spec->deps[spec->ndeps].id = (uint64_t)json_integer_value(v);
			spec->deps[spec->ndeps].any = k == 1;
			spec->deps[spec->ndeps].state = -1;
			spec->ndeps++;
		}
	}
	return 0;
}

/* "run_at" (unix seconds, in the future), "retries", "retry_delay". */
static int
decode_life(json_t *obj, struct job_spec *spec, struct proto_error *err)
{
	json_t *v;
	double now;

	if ((v = json_object_get(obj, "run_at")) != NULL) {
		now = now_unix();
		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    json_number_value(v) <= 0 || json_number_value(v) > 1e11) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"run_at\" must be a time in unix seconds, at most 1e11 "
					"(the year 5138)");
			return -1;
		}
		if (json_number_value(v) <= now) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"run_at\" is in the past (%.3f s ago)",
					now - json_number_value(v));
			return -1;
		}
		spec->run_at = json_number_value(v);
	}
	if ((v = json_object_get(obj, "retries")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > JOB_MAX_RETRIES) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"retries\" must be an integer from 0 to %d",
					JOB_MAX_RETRIES);
			return -1;
		}
		spec->retries = (int)json_integer_value(v);
	}
	spec->retry_delay = JOB_RETRY_DELAY_DEFAULT;
	if ((v = json_object_get(obj, "retry_delay")) != NULL) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    json_number_value(v) < 0 || json_number_value(v) > JOB_RETRY_DELAY_CAP) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"retry_delay\" must be a number of seconds from 0 to %g",
					JOB_RETRY_DELAY_CAP);
			return -1;
		}
		spec->retry_delay = json_number_value(v);
	}
	return 0;
}

static int
decode_labels(json_t *v, struct job_spec *spec, struct proto_error *err)
{
	char *cause = NULL;

	if (v == NULL)
		return 0;
	if (labels_from_json(v, "labels", &spec->labels, &cause) == -1) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "%s", cause);
		free(cause);
		return -1;
	}
	return 0;
}

/* "unique" (a key), "queue" (a name, checked against the configuration by the caller), "slots". */
static int
decode_workflow(json_t *obj, struct job_spec *spec, struct proto_error *err)
{
	json_t *v;

	if ((v = json_object_get(obj, "unique")) != NULL) {
		if (!json_is_string(v) || json_string_length(v) == 0 ||
		    json_string_length(v) > TASKD_MAX_UNIQUE ||
		    strlen(json_string_value(v)) != json_string_length(v)) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"unique\" must be a key of 1 to %d bytes without NUL",
					TASKD_MAX_UNIQUE);
			return -1;
		}
		spec->unique = xstrdup(json_string_value(v));
	}
	if ((v = json_object_get(obj, "queue")) != NULL) {
		if (!json_is_string(v) || !labels_key_valid(json_string_value(v))) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"queue\" must be a queue's name (1 to %d characters of "
					"A-Z a-z 0-9 _ . -)", TASKD_MAX_QUEUE_NAME);
			return -1;
		}
		spec->queue = xstrdup(json_string_value(v));
	}
	spec->slots = 1;
	if ((v = json_object_get(obj, "slots")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 1 ||
		    json_integer_value(v) > JOB_MAX_SLOTS) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"slots\" must be an integer from 1 to %d", JOB_MAX_SLOTS);
			return -1;
		}
		spec->slots = (int)json_integer_value(v);
	}
	/* Slots are cpu slots: a job that takes several is a cpu job; an io one cannot. */
	if (spec->slots > 1 && spec->type == JOBTYPE_HANDLER) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"slots\" are for commands: a handler's job takes one worker");
		return -1;
	}
	if (spec->slots > 1 && spec->class == CLASS_IO) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"slots\" are cpu slots: a job of class io takes none");
		return -1;
	}
	if (spec->slots > 1)
		spec->class = CLASS_CPU;
	return 0;
}

/*
 * "input": base64 of a command's standard input, or of a handler's or a
 * module type's job's input (doc/handlers.md, doc/modules.md), at most
 * max_input bytes decoded (spec.input, input_bytes: stored in the job's
 * input file at submit).
 */
static int
decode_input(json_t *obj, uint64_t max_input, struct job_spec *spec, struct proto_error *err)
{
	json_t *v = json_object_get(obj, "input");
	size_t len;

	if (v == NULL)
		return 0;
	if (!json_is_string(v) ||
	    base64_decode(json_string_value(v), json_string_length(v), &spec->input, &len) == -1) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"input\" must be base64 text (RFC 4648)");
		return -1;
	}
	if (len > max_input) {
		free(spec->input);
		spec->input = NULL;
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"input\" is %zu bytes: limits.max_input is %llu", len,
				(unsigned long long)max_input);
		return -1;
	}
	/* Empty input is no input: /dev/null reads the same. */
	if (len == 0) {
		free(spec->input);
		spec->input = NULL;
	}
	spec->input_bytes = len;
	return 0;
}

size_t
proto_input_length(json_t *req)
{
	json_t *v = json_object_get(req, "input"), *jobs = json_object_get(req, "jobs"), *j;
	size_t n = json_is_string(v) ? json_string_length(v) : 0, i;

	json_array_foreach(json_is_array(jobs) ? jobs : NULL, i, j) {
		v = json_object_get(j, "input");
		n += json_is_string(v) ? json_string_length(v) : 0;
	}
	return n;
}

int
proto_array_decode(json_t *obj, struct proto_array *a, struct proto_error *err)
{
	json_t *v = json_object_get(obj, "array");
	json_int_t start, end, step = 1, max = 0;
	json_error_t jerr;

	memset(a, 0, sizeof *a);
	if (v == NULL)
		return 1;
	if (!json_is_object(v) ||
	    json_unpack_ex(v, &jerr, JSON_STRICT, "{s:I,s:I,s?I,s?I}", "start", &start, "end", &end,
			   "step", &step, "max", &max) == -1) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"array\" must be {\"start\":N,\"end\":M} with optional "
				"\"step\" and \"max\" (integers)");
		return -1;
	}
	if (start < 0 || end < start || end > TASKD_MAX_ARRAY_INDEX || step < 1 ||
	    step > TASKD_MAX_ARRAY_INDEX || max < 0 || max > INT32_MAX) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"array\": indices from 0 to %d, start <= end, step >= 1, max >= 0 "
				"(0: no limit)", TASKD_MAX_ARRAY_INDEX);
		return -1;
	}
	a->count = (uint64_t)((end - start) / step) + 1;
	if (a->count > TASKD_MAX_ARRAY) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"array\" of %llu jobs: at most %d", (unsigned long long)a->count,
				TASKD_MAX_ARRAY);
		return -1;
	}
	a->start = start;
	a->end = end;
	a->step = step;
	a->max = (int)max;
	return 0;
}

/* A type of class cpu or io takes jobs of its class (or auto, which becomes it); 0 or -1. */
static int
decode_class(const char *what, const char *name, enum job_class class, struct job_spec *spec,
	     struct proto_error *err)
{
	if (class != CLASS_AUTO && spec->class != CLASS_AUTO && spec->class != class) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"%s %s is class %s: a job of it cannot be class %s", what, name,
				config_class_name(class), config_class_name(spec->class));
		return -1;
	}
	if (class != CLASS_AUTO)
		spec->class = class;
	return 0;
}

/*
 * A handler's job: its class against the handler's, its default timeout;
 * the environment and directory are the handler's, not the job's. Its
 * input: decode_input, as a command's.
 */
static int
decode_handler(json_t *obj, const struct handler_config *h, struct job_spec *spec,
	       struct proto_error *err)
{
	spec->handler = xstrdup(h->name);
	if (decode_class("handler", h->name, h->class, spec, err) == -1)
		return -1;
	if (h->timeout > 0 && json_object_get(obj, "timeout") == NULL)
		spec->timeout = h->timeout;
	strv_free(spec->env);
	spec->env = NULL;
	return 0;
}

/* A module type's job: its class, and the type's validate() on its arguments and input. */
static int
decode_module(const struct jobtype *t, struct job_spec *spec, struct proto_error *err)
{
	char *msg = NULL;
	int rc;

	if (decode_class("job type", t->name, t->module->class, spec, err) == -1)
		return -1;
	if (t->module->validate == NULL)
		return 0;
	rc = module_validate(t->type, spec->argv, (const unsigned char *)spec->input,
			     (size_t)spec->input_bytes, &msg);
	if (rc == -1) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "%s", msg);
		free(msg);
	}
	return rc;
}

/* The type, and the input (which a module type's validate() reads). */
static int
decode_type(json_t *obj, uint64_t max_input, struct job_spec *spec, struct proto_error *err)
{
	json_t *v = json_object_get(obj, "type");
	struct jobtype t;
	char *known;

	spec->type = BUILTIN_EXEC;
	if (v != NULL) {
		if (!json_is_string(v) || jobtype_find(json_string_value(v), &t) == -1) {
			known = jobtype_known();
			proto_error_set(err, TASKD_ERR_BAD_REQUEST, "unknown job type%s%s%s (known: %s)",
					json_is_string(v) ? " '" : "",
					json_is_string(v) ? json_string_value(v) : "",
					json_is_string(v) ? "'" : "", known);
			free(known);
			return -1;
		}
		spec->type = t.type;
		if (decode_input(obj, max_input, spec, err) == -1)
			return -1;
		if (t.source == JOBTYPE_FROM_HANDLER)
			return decode_handler(obj, t.handler, spec, err);
		if (t.source == JOBTYPE_MODULE)
			return decode_module(&t, spec, err);
	} else if (decode_input(obj, max_input, spec, err) == -1) {
		return -1;
	}
	if (spec->argv[0] == NULL || spec->argv[0][0] == '\0') {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"argv\" must name a command for an exec job");
		return -1;
	}
	return 0;
}

static int
decode_job(json_t *obj, bool strict, const struct proto_job_opts *o, struct job_spec *spec,
	   struct proto_error *err)
{
	const char *key;
	json_t *v;

	memset(spec, 0, sizeof *spec);
	if (!json_is_object(obj)) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "a job must be a JSON object");
		return -1;
	}
	json_object_foreach(obj, key, v) {
		if (strict && !proto_job_field(key)) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST, "unknown field \"%.64s\"", key);
			return -1;
		}
	}
	/* The type last of these: a handler's defaults and rules override. */
	if (decode_argv(json_object_get(obj, "argv"), spec, err) == -1 ||
	    decode_env(json_object_get(obj, "env"), spec, err) == -1 ||
	    decode_scalars(obj, o->default_timeout, spec, err) == -1 ||
	    decode_type(obj, o->max_input, spec, err) == -1 ||
	    decode_labels(json_object_get(obj, "labels"), spec, err) == -1 ||
	    decode_deps(obj, spec, err) == -1 || decode_life(obj, spec, err) == -1 ||
	    decode_workflow(obj, spec, err) == -1 ||
	    decode_limits(obj, spec, err) == -1 ||
	    decode_cwd(json_object_get(obj, "cwd"), o->check_cwd, spec, err) == -1) {
		job_spec_free(spec);
		return -1;
	}
	return 0;
}

int
proto_job_decode(json_t *obj, const struct proto_job_opts *o, struct job_spec *spec,
		 struct proto_error *err)
{
	return decode_job(obj, false, o, spec, err);
}

int
proto_batch_job_decode(json_t *obj, const struct proto_job_opts *o, struct job_spec *spec,
		       struct proto_error *err)
{
	return decode_job(obj, true, o, spec, err);
}

int
proto_job_id(json_t *req, uint64_t *id, struct proto_error *err)
{
	json_t *v = json_object_get(req, "job");

	if (v == NULL || !json_is_integer(v) || json_integer_value(v) <= 0) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"job\" must be a job id (a positive integer)");
		return -1;
	}
	*id = (uint64_t)json_integer_value(v);
	return 0;
}

/* ---- responses ---- */

char *
proto_line(json_t *o, size_t *len)
{
	struct jtext t = { 0 };

	/* json_dumps' text (jtext_value), faster: every answer is one. */
	jtext_value(&t, o);
	JTEXT_PUT(&t, "\n");
	*len = t.n;
	return jtext_end(&t);
}

char *
proto_ok(json_t *id, json_t *result, size_t *len)
{
	json_t *o = json_object();
	char *line;

	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_true());
	json_object_set_new(o, "result", result != NULL ? result : json_object());
	line = proto_line(o, len);
	json_decref(o);
	return line;
}

char *
proto_fail(json_t *id, const char *code, const char *message, size_t *len)
{
	json_t *o = json_object(), *e = json_object(), *m;
	char *line;

	json_object_set_new(e, "code", json_string(code));
	/* Messages may quote client input: never let invalid UTF-8 through. */
	if ((m = json_string(message)) == NULL)
		m = json_string("(message not valid UTF-8)");
	json_object_set_new(e, "message", m);
	json_object_set(o, "id", id != NULL ? id : json_null());
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", e);
	line = proto_line(o, len);
	json_decref(o);
	return line;
}
