/*
 * taskctl submit [options] [--] CMD [ARGS...]
 *
 * Builds a single-job submit (--label K=V, repeatable, sets its labels) (job fields at the top level of the
 * request, doc/protocol.md). Like running the command in the shell, an
 * exec job gets taskctl's cwd and whole environment unless --no-env; a job
 * of another type gets the cwd too (a module type opens relative paths
 * there), when taskctl has one.
 * Cheap checks happen here; the daemon has the last word.
 * With --wait: one request with "wait": true, answered with the finished
 * job (so a job pruned as it ends, jobs.keep_finished, still gives its
 * code), then copy its stdout/stderr to ours if the daemon still has them,
 * and exit with its code.
 * --array START-END[:STEP][%MAX]: one request, one job per index; prints
 * the array's id (with --wait: then waits for all its jobs, like `wait
 * --array`). --unique KEY: when a job of ours with that key is pending or
 * running, nothing is submitted; its id is printed, with a note on stderr.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "taskctl.h"
#include "when.h"

extern char **environ;

enum {
	OPT_CLASS = 300,
	OPT_PRIORITY,
	OPT_NAME,
	OPT_TIMEOUT,
	OPT_CWD,
	OPT_ENV,
	OPT_NO_ENV,
	OPT_TYPE,
	OPT_WAIT,
	OPT_LABEL,
	OPT_AFTER,
	OPT_AFTER_ANY,
	OPT_IN,
	OPT_AT,
	OPT_RETRIES,
	OPT_RETRY_DELAY,
	OPT_MEMORY,
	OPT_CPUS,
	OPT_PIDS,
	OPT_NOTIFY,
	OPT_INPUT,
	OPT_UNIQUE,
	OPT_QUEUE,
	OPT_SLOTS,
	OPT_ARRAY,
	OPT_LOCAL,
};

struct submit {
	json_t *req;
	json_t *env; /* --env pairs */
	const char *type;
	const char *cwd;
	const char *input; /* --input FILE, or "-" */
	int no_env;
	int wait;
	int array;         /* --array given */
};

static int
opt_class(struct taskctl *ctx, struct submit *s, const char *arg)
{
	if (strcmp(arg, TASKD_CLASS_CPU) != 0 && strcmp(arg, TASKD_CLASS_IO) != 0 &&
	    strcmp(arg, TASKD_CLASS_AUTO) != 0)
		return taskctl_usage_error(ctx, "invalid class '%s' (cpu, io or auto)", arg);
	json_object_set_new(s->req, "class", json_string(arg));
	return -1;
}

static int
opt_priority(struct taskctl *ctx, struct submit *s, const char *arg)
{
	long long v;

	if (taskctl_parse_int(arg, TASKD_PRIORITY_MIN, TASKD_PRIORITY_MAX, &v) == -1)
		return taskctl_usage_error(ctx, "invalid priority '%s' (an integer from %d to %d)",
		                           arg, TASKD_PRIORITY_MIN, TASKD_PRIORITY_MAX);
	json_object_set_new(s->req, "priority", json_integer(v));
	return -1;
}

static int
opt_name(struct taskctl *ctx, struct submit *s, const char *arg)
{
	json_t *name;

	if (strlen(arg) > TASKD_MAX_NAME)
		return taskctl_usage_error(ctx, "name longer than %d bytes", TASKD_MAX_NAME);
	if ((name = json_string(arg)) == NULL)
		return taskctl_usage_error(ctx, "name is not valid UTF-8");
	json_object_set_new(s->req, "name", name);
	return -1;
}

static int
opt_timeout(struct taskctl *ctx, struct submit *s, const char *arg)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (*arg == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < 0)
		return taskctl_usage_error(ctx, "invalid timeout '%s' (seconds, a number >= 0)",
		                           arg);
	if (v == floor(v) && v < 1e15)
		json_object_set_new(s->req, "timeout", json_integer((json_int_t)v));
	else
		json_object_set_new(s->req, "timeout", json_real(v));
	return -1;
}

static int
opt_env(struct taskctl *ctx, struct submit *s, const char *arg)
{
	const char *eq = strchr(arg, '=');
	json_t *val;
	char *key;

	if (eq == NULL || eq == arg)
		return taskctl_usage_error(ctx, "invalid --env '%s' (K=V)", arg);
	key = strndup(arg, (size_t)(eq - arg));
	val = json_string(eq + 1);
	if (key == NULL || val == NULL || json_object_set_new(s->env, key, val) == -1) {
		free(key);
		return taskctl_usage_error(ctx, "--env '%s' is not valid UTF-8", arg);
	}
	free(key);
	return -1;
}

/* --after / --after-any ID[,ID...] (repeatable): appended to "after" / "after_any". */
static int
opt_after(struct taskctl *ctx, struct submit *s, const char *key, const char *arg)
{
	json_t *arr = json_object_get(s->req, key);
	char *copy = strdup(arg), *tok, *save = NULL;
	json_int_t id;

	if (copy == NULL)
		taskctl_lost(ENOMEM);
	if (arr == NULL) {
		arr = json_array();
		json_object_set_new(s->req, key, arr);
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
		if (taskctl_parse_id(ctx, tok, &id) == -1) {
			free(copy);
			return TASKD_EXIT_USAGE;
		}
		json_array_append_new(arr, json_integer(id));
	}
	free(copy);
	if (json_array_size(arr) == 0)
		return taskctl_usage_error(ctx, "--%s needs job ids (ID[,ID...])",
		                           strcmp(key, "after") == 0 ? "after" : "after-any");
	return -1;
}

static void
set_number(json_t *req, const char *key, double v)
{
	json_object_set_new(req, key, json_real(v));
}

static int
opt_when(struct taskctl *ctx, struct submit *s, int c, const char *arg)
{
	struct timespec ts;
	double v;
	int rc;

	if (json_object_get(s->req, "run_at") != NULL)
		return taskctl_usage_error(ctx, "give --in or --at once");
	if (c == OPT_IN) {
		if (when_parse_duration(arg, &v) == -1)
			return taskctl_usage_error(ctx, "invalid --in '%s' (a duration > 0 such as "
			                           "30s, 10m, 1.5h, 2d)", arg);
		clock_gettime(CLOCK_REALTIME, &ts);
		v += (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	} else if ((rc = when_parse_time(arg, &v)) == WHEN_NO_SUCH_LOCAL_TIME) {
		return taskctl_usage_error(ctx, "invalid --at '%s' (that local time does not exist: "
		                           "the clocks skip it for daylight saving time)", arg);
	} else if (rc == -1) {
		return taskctl_usage_error(ctx, "invalid --at '%s' (YYYY-MM-DDTHH:MM[:SS] local "
		                           "time, or RFC 3339 with Z or +HH:MM)", arg);
	}
	set_number(s->req, "run_at", v);
	return -1;
}

static int
opt_retries(struct taskctl *ctx, struct submit *s, int c, const char *arg)
{
	long long n;
	char *end;
	double v;

	if (c == OPT_RETRIES) {
		if (taskctl_parse_int(arg, 0, 1000, &n) == -1)
			return taskctl_usage_error(ctx, "invalid --retries '%s' (an integer from 0 "
			                           "to 1000)", arg);
		json_object_set_new(s->req, "retries", json_integer(n));
		return -1;
	}
	errno = 0;
	v = strtod(arg, &end);
	if (*arg == '\0' || *end != '\0' || errno != 0 || !isfinite(v) || v < 0 || v > 3600)
		return taskctl_usage_error(ctx, "invalid --retry-delay '%s' (seconds, 0 to 3600)",
		                           arg);
	set_number(s->req, "retry_delay", v);
	return -1;
}

/* A number for --array: 0 .. TASKD_MAX_ARRAY_INDEX, digits up to end (or the string's end). */
static int
array_number(const char *p, const char **end, long long *v)
{
	char *e;

	if (*p < '0' || *p > '9')
		return -1;
	errno = 0;
	*v = strtoll(p, &e, 10);
	if (errno != 0 || *v < 0 || *v > TASKD_MAX_ARRAY_INDEX)
		return -1;
	*end = e;
	return 0;
}

/* --array START-END[:STEP][%MAX] → "array": {"start","end","step","max"}. */
static int
opt_array(struct taskctl *ctx, struct submit *s, const char *arg)
{
	long long start, end, step = 1, max = 0;
	const char *p = arg;

	if (array_number(p, &p, &start) == -1 || *p++ != '-' ||
	    array_number(p, &p, &end) == -1 ||
	    (*p == ':' && array_number(p + 1, &p, &step) == -1) ||
	    (*p == '%' && array_number(p + 1, &p, &max) == -1) || *p != '\0' || end < start ||
	    step < 1)
		return taskctl_usage_error(ctx, "invalid --array '%s' (START-END[:STEP][%%MAX], "
		                           "0 <= START <= END <= %d, STEP >= 1)", arg,
		                           TASKD_MAX_ARRAY_INDEX);
	if ((end - start) / step + 1 > TASKD_MAX_ARRAY)
		return taskctl_usage_error(ctx, "--array '%s': more than %d jobs", arg,
		                           TASKD_MAX_ARRAY);
	json_object_set_new(s->req, "array", json_pack("{s:I,s:I,s:I,s:I}", "start", start, "end",
	                                               end, "step", step, "max", max));
	s->array = 1;
	return -1;
}

/* --unique KEY, --queue NAME, --slots N. */
static int
opt_workflow(struct taskctl *ctx, struct submit *s, int c, const char *arg)
{
	long long n;
	json_t *v;

	if (c == OPT_SLOTS) {
		if (taskctl_parse_int(arg, 1, 1024, &n) == -1)
			return taskctl_usage_error(ctx, "invalid --slots '%s' (an integer from 1 to "
			                           "1024, at most the process pool's size)", arg);
		json_object_set_new(s->req, "slots", json_integer(n));
		return -1;
	}
	if (c == OPT_UNIQUE && (*arg == '\0' || strlen(arg) > TASKD_MAX_UNIQUE))
		return taskctl_usage_error(ctx, "invalid --unique key (1 to %d bytes)",
		                           TASKD_MAX_UNIQUE);
	if ((v = json_string(arg)) == NULL)
		return taskctl_usage_error(ctx, "--%s '%s' is not valid UTF-8",
		                           c == OPT_UNIQUE ? "unique" : "queue", arg);
	json_object_set_new(s->req, c == OPT_UNIQUE ? "unique" : "queue", v);
	return -1;
}

/* --memory SIZE, --cpus N, --pids N: the command's limits in its cgroup. */
static int
opt_limit(struct taskctl *ctx, struct submit *s, int c, const char *arg)
{
	long long n;
	char *end;
	double v;

	if (c == OPT_MEMORY) {
		if (taskctl_parse_size(arg, &n) == -1 || n < TASKD_MEMORY_MIN ||
		    n > TASKD_MEMORY_MAX)
			return taskctl_usage_error(ctx, "invalid --memory '%s' (a size from 1M to "
			                           "16T, such as 512M or 2G)", arg);
		json_object_set_new(s->req, "memory", json_integer(n));
	} else if (c == OPT_PIDS) {
		if (taskctl_parse_int(arg, 1, TASKD_PIDS_MAX, &n) == -1)
			return taskctl_usage_error(ctx, "invalid --pids '%s' (an integer from 1 to "
			                           "%d)", arg, TASKD_PIDS_MAX);
		json_object_set_new(s->req, "pids", json_integer(n));
	} else {
		errno = 0;
		v = strtod(arg, &end);
		if (*arg == '\0' || *end != '\0' || errno != 0 || !isfinite(v) ||
		    v < TASKD_CPUS_MIN || v > TASKD_CPUS_MAX)
			return taskctl_usage_error(ctx, "invalid --cpus '%s' (a number of CPUs from "
			                           "%g to %d, such as 1.5)", arg, TASKD_CPUS_MIN,
			                           TASKD_CPUS_MAX);
		set_number(s->req, "cpus", v);
	}
	return -1;
}

/* --notify CMD: a shell command line taskd runs when the job ends. */
static int
opt_notify(struct taskctl *ctx, struct submit *s, const char *arg)
{
	json_t *v;

	if (*arg == '\0' || strlen(arg) > TASKD_MAX_NOTIFY)
		return taskctl_usage_error(ctx, "--notify needs a command line of 1 to %d bytes",
		                           TASKD_MAX_NOTIFY);
	if ((v = json_string(arg)) == NULL)
		return taskctl_usage_error(ctx, "--notify command is not valid UTF-8");
	json_object_set_new(s->req, "notify", v);
	return -1;
}

static int
parse_option(struct taskctl *ctx, struct submit *s, char **argv, int c)
{
	switch (c) {
	case OPT_ARRAY:
		return opt_array(ctx, s, optarg);
	case OPT_UNIQUE:
	case OPT_QUEUE:
	case OPT_SLOTS:
		return opt_workflow(ctx, s, c, optarg);
	case OPT_MEMORY:
	case OPT_CPUS:
	case OPT_PIDS:
		return opt_limit(ctx, s, c, optarg);
	case OPT_NOTIFY:
		return opt_notify(ctx, s, optarg);
	case OPT_AFTER:
		return opt_after(ctx, s, "after", optarg);
	case OPT_AFTER_ANY:
		return opt_after(ctx, s, "after_any", optarg);
	case OPT_IN:
	case OPT_AT:
		return opt_when(ctx, s, c, optarg);
	case OPT_RETRIES:
	case OPT_RETRY_DELAY:
		return opt_retries(ctx, s, c, optarg);
	case OPT_CLASS:
		return opt_class(ctx, s, optarg);
	case OPT_PRIORITY:
		return opt_priority(ctx, s, optarg);
	case OPT_NAME:
		return opt_name(ctx, s, optarg);
	case OPT_TIMEOUT:
		return opt_timeout(ctx, s, optarg);
	case OPT_ENV:
		return opt_env(ctx, s, optarg);
	case OPT_CWD:
		s->cwd = optarg;
		return -1;
	case OPT_NO_ENV:
		s->no_env = 1;
		return -1;
	case OPT_INPUT:
		s->input = optarg;
		return -1;
	case OPT_TYPE:
		s->type = optarg;
		return -1;
	case OPT_WAIT:
		s->wait = 1;
		return -1;
	case OPT_LABEL:
		return taskctl_parse_label(ctx, s->req, optarg);
	case OPT_LOCAL:
		/* Cluster mode: run on this node, not on whichever takes it (a single node: all are). */
		json_object_set_new(s->req, "local", json_true());
		return -1;
	default:
		return taskctl_common_option(ctx, argv, c);
	}
}

static int
parse_options(struct taskctl *ctx, struct submit *s, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"class", required_argument, NULL, OPT_CLASS},
	    {"priority", required_argument, NULL, OPT_PRIORITY},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"cwd", required_argument, NULL, OPT_CWD},
	    {"env", required_argument, NULL, OPT_ENV},
	    {"no-env", no_argument, NULL, OPT_NO_ENV},
	    {"type", required_argument, NULL, OPT_TYPE},
	    {"wait", no_argument, NULL, OPT_WAIT},
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"after", required_argument, NULL, OPT_AFTER},
	    {"after-any", required_argument, NULL, OPT_AFTER_ANY},
	    {"in", required_argument, NULL, OPT_IN},
	    {"at", required_argument, NULL, OPT_AT},
	    {"retries", required_argument, NULL, OPT_RETRIES},
	    {"retry-delay", required_argument, NULL, OPT_RETRY_DELAY},
	    {"memory", required_argument, NULL, OPT_MEMORY},
	    {"cpus", required_argument, NULL, OPT_CPUS},
	    {"pids", required_argument, NULL, OPT_PIDS},
	    {"notify", required_argument, NULL, OPT_NOTIFY},
	    {"input", required_argument, NULL, OPT_INPUT},
	    {"unique", required_argument, NULL, OPT_UNIQUE},
	    {"queue", required_argument, NULL, OPT_QUEUE},
	    {"slots", required_argument, NULL, OPT_SLOTS},
	    {"array", required_argument, NULL, OPT_ARRAY},
	    {"local", no_argument, NULL, OPT_LOCAL},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	int c, rc;

	/* '+': the first non-option word starts the job's command. */
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1)
		if ((rc = parse_option(ctx, s, argv, c)) != -1)
			return rc;
	return -1;
}

static int
set_argv(struct taskctl *ctx, struct submit *s, int argc, char **argv)
{
	json_t *arr = json_array(), *w;
	int i;

	for (i = 0; i < argc; i++) {
		if ((w = json_string(argv[i])) == NULL) {
			json_decref(arr);
			return taskctl_usage_error(ctx, "argument '%s' is not valid UTF-8",
			                           argv[i]);
		}
		json_array_append_new(arr, w);
	}
	json_object_set_new(s->req, "argv", arr);
	return -1;
}

/* Our environment (unless no_env), then the --env pairs over it. */
static void
set_env(struct submit *s, int no_env)
{
	json_t *env = json_object(), *val;
	char **e, *key;
	const char *eq;

	for (e = environ; !no_env && *e != NULL; e++) {
		if ((eq = strchr(*e, '=')) == NULL || eq == *e)
			continue;
		if ((val = json_string(eq + 1)) == NULL) {
			taskctl_warnx("warning: not passing %.*s: value is not valid UTF-8",
			              (int)(eq - *e), *e);
			continue;
		}
		if ((key = strndup(*e, (size_t)(eq - *e))) != NULL)
			json_object_set_new(env, key, val);
		else
			json_decref(val);
		free(key);
	}
	json_object_update(env, s->env);
	json_object_set_new(s->req, "env", env);
}

/* --cwd made absolute (resolved when it exists here), or our own directory; malloc'd. */
static char *
job_dir(const char *cwd)
{
	char *path, *here;

	if (cwd != NULL && (path = realpath(cwd, NULL)) != NULL)
		return path;
	if (cwd != NULL && cwd[0] == '/')
		return strdup(cwd);
	if ((here = getcwd(NULL, 0)) == NULL) {
		taskctl_warnx("submit: cannot get the current directory: %s", strerror(errno));
		return NULL;
	}
	if (cwd == NULL)
		return here;
	path = fmt_alloc("%s/%s", here, cwd);
	free(here);
	return path;
}

static int
set_cwd(struct submit *s)
{
	char *path = job_dir(s->cwd);
	json_t *v;

	if (path == NULL)
		return -1;
	v = json_string(path);
	free(path);
	if (v == NULL) {
		taskctl_warnx("submit: the directory's name is not valid UTF-8");
		return -1;
	}
	return json_object_set_new(s->req, "cwd", v);
}

/* Our own directory as the job's, when there is one that JSON can hold. */
static void
set_here(struct submit *s)
{
	char *here = getcwd(NULL, 0);
	json_t *v = here != NULL ? json_string(here) : NULL;

	free(here);
	if (v != NULL)
		json_object_set_new(s->req, "cwd", v);
}

/* --input FILE|-: a command's standard input, or a handler or module job's input; sent as base64. */
static int
set_input(struct taskctl *ctx, struct submit *s)
{
	FILE *fp = strcmp(s->input, "-") == 0 ? stdin : fopen(s->input, "rb");
	char *data = NULL, *b64;
	size_t len = 0, cap = 0, n;

	if (fp == NULL) {
		taskctl_warnx("--input %s: %s", s->input, strerror(errno));
		return -1;
	}
	do {
		if (len == cap && (data = realloc(data, cap = cap ? cap * 2 : 65536)) == NULL) {
			taskctl_warnx("--input %s: out of memory", s->input);
			exit(1);
		}
		n = fread(data + len, 1, cap - len, fp);
		len += n;
	} while (n > 0);
	if (ferror(fp)) {
		taskctl_warnx("--input %s: %s", s->input, strerror(errno));
		free(data);
		if (fp != stdin)
			fclose(fp);
		return -1;
	}
	if (fp != stdin)
		fclose(fp);
	b64 = base64_encode(data != NULL ? data : "", len);
	json_object_set_new(s->req, "input", json_string(b64));
	free(b64);
	free(data);
	(void)ctx;
	return 0;
}

/* Fill the request from the words after the options; -1 or an exit code. */
static int
build_job(struct taskctl *ctx, struct submit *s, int argc, char **argv)
{
	int is_exec = s->type == NULL || strcmp(s->type, "exec") == 0;
	int rc;

	if (is_exec && argc == 0)
		return taskctl_usage_error(ctx, "missing command");
	if (s->type != NULL)
		json_object_set_new(s->req, "type", json_string(s->type));
	if ((rc = set_argv(ctx, s, argc, argv)) != -1)
		return rc;
	if (s->input != NULL && set_input(ctx, s) == -1)
		return 1;
	if ((is_exec || s->cwd != NULL) && set_cwd(s) == -1)
		return 1;
	/* Not exec: our directory, if we have one (a removed one is not an error then). */
	if (!is_exec && s->cwd == NULL)
		set_here(s);
	/* A built-in gets no environment but the --env pairs. */
	if (is_exec || json_object_size(s->env) > 0)
		set_env(s, s->no_env || !is_exec);
	return -1;
}

/* Copy one stream of the finished job to fp; *gone: the daemon no longer has the job. */
static int
copy_stream(struct taskctl *ctx, const char *arg, json_int_t id, const char *stream, FILE *fp,
            int *gone)
{
	struct logs_out out = {.fp = fp, .gone_ok = 1};
	int rc;

	rc = cmd_logs_fetch(ctx, arg, id, stream, 0, &out);
	fflush(fp);
	if (rc == 0 && !out.gone)
		cmd_logs_warn_truncated(id, stream, &out);
	*gone = out.gone;
	return rc;
}

/* Did the job write anything (or may it have: a count the daemon does not know)? */
static int
had_output(const json_t *job)
{
	const json_t *out = json_object_get(job, "stdout_bytes");
	const json_t *err = json_object_get(job, "stderr_bytes");

	return !json_is_integer(out) || !json_is_integer(err) || json_integer_value(out) > 0 ||
	       json_integer_value(err) > 0;
}

static void
explain_end(const json_t *job, json_int_t id)
{
	const char *state = json_string_value(json_object_get(job, "state"));
	const char *error = json_string_value(json_object_get(job, "error"));

	if (error != NULL)
		taskctl_warnx("job %lld: %s", (long long)id, error);
	else if (state == NULL)
		return;
	else if (strcmp(state, TASKD_STATE_TIMEOUT) == 0)
		taskctl_warnx("job %lld timed out", (long long)id);
	else if (strcmp(state, TASKD_STATE_CANCELLED) == 0)
		taskctl_warnx("job %lld was cancelled", (long long)id);
	else if (strcmp(state, TASKD_STATE_LOST) == 0)
		taskctl_warnx("job %lld was lost", (long long)id);
}

/* The job's stdout and stderr to ours, a built-in's result, why it ended. */
static int
print_outputs(struct taskctl *ctx, const char *arg, json_int_t id, const json_t *job)
{
	int rc, gone;

	if ((rc = copy_stream(ctx, arg, id, "stdout", stdout, &gone)) != 0)
		return rc;
	if (!gone && (rc = copy_stream(ctx, arg, id, "stderr", stderr, &gone)) != 0)
		return rc;
	/* Pruned as it ended (or cleaned right away): its output went with it. */
	if (gone && had_output(job))
		taskctl_warnx("job %lld: its output is gone: taskd removed the job when it ended "
		              "(jobs.keep_finished)", (long long)id);
	cmd_wait_print_result(job);
	explain_end(job, id);
	return 0;
}

/* The answer to a submit with "wait": the finished job: its output, or --json it; its code. */
static int
job_ended(struct taskctl *ctx, json_t *job, json_int_t id)
{
	char arg[32];
	int rc;

	snprintf(arg, sizeof arg, "%lld", (long long)id);
	if (ctx->json)
		rc = taskctl_print_json(job);
	else
		rc = print_outputs(ctx, arg, id, job);
	return rc == 0 ? cmd_wait_exit_code(job) : rc;
}

static int
send_job(struct taskctl *ctx, struct submit *s)
{
	json_t *resp, *result, *id;
	json_int_t n;
	int rc;

	/* An array is waited for with `wait --array` once submitted. */
	if (s->wait && !s->array)
		json_object_set_new(s->req, "wait", json_true());
	resp = taskctl_call(ctx, s->req);
	s->req = NULL;
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	result = taskd_response_result(resp);
	id = json_object_get(result, "id");
	if (!json_is_integer(id))
		taskctl_bad_response("submit result without an id");
	n = json_integer_value(id);
	/* Nothing submitted: a job (or an array) of ours holds that unique key. */
	if (json_is_true(json_object_get(result, "existing")) && !ctx->json)
		taskctl_warnx("submit: %s %" JSON_INTEGER_FORMAT " has that --unique key and is not "
		              "finished: nothing submitted",
		              json_object_get(result, "array") != NULL ? "array" : "job", n);
	if (s->wait && s->array) {
		if (ctx->json)
			taskctl_print_json(result);
		else
			printf("%" JSON_INTEGER_FORMAT "\n", n);
		fflush(stdout);
		rc = cmd_wait_array(ctx, n);
	} else if (s->wait && json_is_true(json_object_get(result, "existing")) &&
	           json_object_get(result, "state") == NULL) {
		/* The key is an array's: no job object to wait for in the answer. */
		rc = cmd_wait_array(ctx, n);
	} else if (s->wait) {
		rc = job_ended(ctx, result, n);
	} else {
		if (ctx->json)
			taskctl_print_json(result);
		else
			printf("%" JSON_INTEGER_FORMAT "\n", n);
		rc = TASKD_EXIT_OK;
	}
	json_decref(resp);
	return rc;
}

int
cmd_submit(struct taskctl *ctx, int argc, char **argv)
{
	struct submit s = {0};
	int rc;

	s.req = taskd_request(TASKD_OP_SUBMIT);
	s.env = json_object();
	rc = parse_options(ctx, &s, argc, argv);
	if (rc == -1)
		rc = build_job(ctx, &s, argc - optind, argv + optind);
	json_decref(s.env);
	s.env = NULL;
	if (rc == -1)
		rc = send_job(ctx, &s); /* takes s.req */
	json_decref(s.req);
	return rc;
}
