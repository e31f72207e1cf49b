/*
 * taskctl: command-line client for taskd.
 *
 *	taskctl [-s SOCKET] [--json] [-h|--help] [-V|--version] COMMAND [ARGS]
 *
 * Global options are parsed up to the command word; the command's
 * handler (client/cmd-*.c, found in the table below) parses the rest.
 * This file also holds what all commands share: one lazily opened
 * connection, error reporting and exit codes (include/taskd/protocol.h):
 * 0 ok, 1 taskctl's own failure, 2 usage, 3 daemon unreachable, 4 rejected
 * by the daemon, 5 invalid response from the daemon.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

static const struct taskctl_cmd commands[] = {
    {"submit",
     "[--class cpu|io|auto] [--priority N] [--name S] [--timeout SEC] [--cwd DIR] "
     "[--env K=V]... [--no-env] [--label K=V]... [--type T] [--input FILE|-] [--after ID[,ID...]] "
     "[--after-any ID[,ID...]] [--in DURATION | --at TIME] [--retries N] [--retry-delay SEC] "
     "[--unique KEY] [--queue NAME] [--slots N] [--array START-END[:STEP][%MAX]] "
     "[--memory SIZE] [--cpus N] [--pids N] [--notify CMD] [--local] [--wait] [--] CMD [ARGS...]",
     "queue a job (--wait: run it and exit with its code)", cmd_submit},
    {"status", "", "show the daemon, its pools, queue and router", cmd_status},
    {"list", "[--state S] [--label K=V]... [--name N] [--array A] [--limit N]", "list jobs",
     cmd_list},
    {"show", "ID | --array A", "show every field of a job, or an array's counts", cmd_show},
    {"wait", "ID... | --label K=V... [--name N] [--array A]",
     "wait for jobs to finish, exit with the first failure's code", cmd_wait},
    {"logs", "ID [--stderr] [--follow]", "print a job's output", cmd_logs},
    {"cancel", "ID... | --label K=V... [--name N] [--array A]", "cancel jobs", cmd_cancel},
    {"restart", "ID... | --state S... [--label K=V]... [--name N] [--array A]",
     "run finished jobs again as new jobs", cmd_restart},
    {"clean", "[--state S]... [--label K=V]... [--name N] [--array A] [--before DURATION]",
     "remove finished jobs and their output (--before 1h: finished over an hour ago)",
     cmd_clean},
    {"events", "[--label K=V]... [--name N] [--state S]... [ID...]",
     "print job state changes live, until interrupted (--json: JSON Lines)", cmd_events},
    {"pause", "[--class cpu|io | --queue NAME] [ID...]",
     "stop starting jobs (all, a class, a queue), or hold queued / suspend running jobs",
     cmd_pause},
    {"resume", "[--class cpu|io | --queue NAME] [ID...]",
     "start jobs again, or release held / continue suspended jobs", cmd_resume},
    {"priority", "ID N", "change the priority of a job that has not started", cmd_priority},
    {"shutdown", "[--drain]", "stop the daemon (--drain: let jobs finish first)", cmd_shutdown},
    {"reload", "", "re-read the daemon's configuration file", cmd_reload},
    {"metrics", "", "print counters and gauges (Prometheus text format)", cmd_metrics},
    {"bench", "[-n JOBS] [-c CONNECTIONS] [-P PIPELINE] [--type T] [--class C] [--two-step] [--] [CMD [ARGS...]]",
     "load generator: run JOBS jobs, print jobs/s and latency percentiles", cmd_bench},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

#define GLOBAL_USAGE "[-s SOCKET] [--json] [-h|--help] [-V|--version] COMMAND [ARGS]"
#define WRAP 78

/* "taskctl: message" on stderr; messages carry the daemon's texts, so made safe (fmt_safe). */
void
taskctl_warnx(const char *fmt, ...)
{
	va_list ap;
	char *msg;

	progress_clear_shown(); /* a message never goes onto wait's progress line */
	fflush(stdout);
	va_start(ap, fmt);
	msg = fmt_valloc(fmt, ap);
	va_end(ap);
	fputs("taskctl: ", stderr);
	if (msg == NULL) {
		fputs("out of memory\n", stderr);
		return;
	}
	fmt_put_line(stderr, msg);
	free(msg);
}

/* Print " word word..." from column col, wrapping at WRAP to column indent. */
static void
print_wrapped(FILE *fp, size_t col, size_t indent, const char *text)
{
	const char *p = text;
	size_t len;

	for (;;) {
		while (*p == ' ')
			p++;
		if (*p == '\0')
			break;
		len = strcspn(p, " ");
		if (col > indent && col + 1 + len > WRAP) {
			fprintf(fp, "\n%*s", (int)indent, "");
			col = indent;
		} else {
			fputc(' ', fp);
			col++;
		}
		fwrite(p, 1, len, fp);
		col += len;
		p += len;
	}
	fputc('\n', fp);
}

static void
print_cmd_usage(FILE *fp, const struct taskctl_cmd *cmd)
{
	size_t col;

	col = (size_t)fprintf(fp, "usage: taskctl %s", cmd->name);
	print_wrapped(fp, col, col + 1, cmd->usage);
}

static void
print_usage(FILE *fp)
{
	size_t i, col;

	fprintf(fp, "usage: taskctl %s\n\ncommands:\n", GLOBAL_USAGE);
	for (i = 0; i < NCOMMANDS; i++) {
		col = (size_t)fprintf(fp, "  %s", commands[i].name);
		print_wrapped(fp, col, col + 1, commands[i].usage);
		fprintf(fp, "      %s\n", commands[i].help);
	}
	fprintf(fp,
	        "\noptions:\n"
	        "  -s, --socket PATH  control socket (default: $TASKD_SOCKET, else\n"
	        "                     $XDG_RUNTIME_DIR/%s if it exists,\n"
	        "                     else %s)\n"
	        "  --json             machine-readable output (also accepted after COMMAND)\n"
	        "  -h, --help         this help; `taskctl COMMAND --help` for one command\n"
	        "  -V, --version      print the version\n"
	        "\nexit status: 0 ok, 1 failure in taskctl (e.g. out of memory), 2 usage error,\n"
	        "3 taskd unreachable, 4 rejected by taskd, 5 invalid response from taskd;\n"
	        "wait and submit --wait exit with the job's own code.\n",
	        TASKD_SOCKET_NAME, TASKD_SYSTEM_SOCKET);
}

int
taskctl_usage_error(struct taskctl *ctx, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "taskctl: %s: ", ctx->cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	print_cmd_usage(stderr, ctx->cmd);
	return TASKD_EXIT_USAGE;
}

/*
 * The options every command takes, and getopt's complaints (opterr is 0,
 * optstrings start with ':'). Returns -1 when the option was handled and
 * parsing goes on, else the exit code to return.
 */
int
taskctl_common_option(struct taskctl *ctx, char **argv, int c)
{
	int known_short = optopt > 0 && optopt < 128;

	switch (c) {
	case TASKCTL_OPT_JSON:
		ctx->json = 1;
		return -1;
	case 'h':
		print_cmd_usage(stdout, ctx->cmd);
		printf("%s\n", ctx->cmd->help);
		return TASKD_EXIT_OK;
	case ':':
		if (known_short)
			return taskctl_usage_error(ctx, "option '-%c' needs an argument", optopt);
		return taskctl_usage_error(ctx, "option '%s' needs an argument", argv[optind - 1]);
	default:
		if (known_short)
			return taskctl_usage_error(ctx, "unknown option '-%c'", optopt);
		return taskctl_usage_error(ctx, "unknown option '%s'", argv[optind - 1]);
	}
}

/* For commands without arguments: parse the common options only. */
int
taskctl_no_args(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {TASKCTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
		if ((rc = taskctl_common_option(ctx, argv, c)) != -1)
			return rc;
	if (optind < argc)
		return taskctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	return -1;
}

/* Common options, then one or more job ids into ids[] (argc entries fit); -1 or an exit code. */
int
taskctl_parse_ids(struct taskctl *ctx, int argc, char **argv, json_int_t *ids)
{
	static const struct option opts[] = {TASKCTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	int c, rc, i;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1)
		if ((rc = taskctl_common_option(ctx, argv, c)) != -1)
			return rc;
	if (optind >= argc)
		return taskctl_usage_error(ctx, "missing job id");
	for (i = optind; i < argc; i++)
		if (taskctl_parse_id(ctx, argv[i], &ids[i - optind]) == -1)
			return TASKD_EXIT_USAGE;
	return -1;
}

/* Parse a decimal integer in [min, max]; 0 or -1. */
int
taskctl_parse_int(const char *s, long long min, long long max, long long *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "512M", "1G", "1048576": bytes with an optional binary K, M, G or T (and B). */
int
taskctl_parse_size(const char *s, long long *out)
{
	static const char units[] = "KMGT";
	const char *u;
	char *end;
	long long v;
	int shift = 0;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (end == s || *s == '-' || *s == '+' || errno != 0 || v < 0)
		return -1;
	if (*end != '\0' && (u = strchr(units, toupper((unsigned char)*end))) != NULL) {
		shift = 10 * (int)(u - units + 1);
		end++;
	}
	if (*end == 'B' || *end == 'b')
		end++;
	if (*end != '\0' || v > (LLONG_MAX >> shift))
		return -1;
	*out = v << shift;
	return 0;
}

int
taskctl_parse_id(struct taskctl *ctx, const char *s, json_int_t *id)
{
	long long v;

	if (taskctl_parse_int(s, 1, INT64_MAX, &v) == -1) {
		taskctl_usage_error(ctx, "invalid job id '%s'", s);
		return -1;
	}
	*id = v;
	return 0;
}

/*
 * --label K=V into req's "labels" object (created on first use): the
 * daemon's rules (protocol.h), checked here for a clear usage error.
 * -1 or an exit code.
 */
int
taskctl_parse_label(struct taskctl *ctx, json_t *req, const char *arg)
{
	json_t *labels = json_object_get(req, "labels");
	const char *eq = strchr(arg, '=');
	size_t klen = eq != NULL ? (size_t)(eq - arg) : 0, i;
	json_t *val;
	char *key;

	if (eq == NULL || klen == 0)
		return taskctl_usage_error(ctx, "invalid label '%s' (KEY=VALUE)", arg);
	if (klen > TASKD_MAX_LABEL_KEY)
		return taskctl_usage_error(ctx, "label key longer than %d characters: '%.*s'",
		                           TASKD_MAX_LABEL_KEY, (int)klen, arg);
	for (i = 0; i < klen; i++)
		if (!isalnum((unsigned char)arg[i]) && arg[i] != '_' && arg[i] != '.' &&
		    arg[i] != '-')
			return taskctl_usage_error(ctx,
			                           "invalid label key '%.*s' (letters, digits, _ . -)",
			                           (int)klen, arg);
	if (strlen(eq + 1) > TASKD_MAX_LABEL_VALUE)
		return taskctl_usage_error(ctx, "label value longer than %d bytes: '%.*s'",
		                           TASKD_MAX_LABEL_VALUE, (int)klen, arg);
	if ((val = json_string(eq + 1)) == NULL)
		return taskctl_usage_error(ctx, "label '%.*s' is not valid UTF-8", (int)klen, arg);
	if (labels == NULL) {
		if ((labels = json_object()) == NULL || json_object_set_new(req, "labels", labels))
			taskctl_lost(ENOMEM);
	}
	if ((key = strndup(arg, klen)) == NULL)
		taskctl_lost(ENOMEM);
	/* K=A and K=B: no job has both, and keeping one would widen a cancel or clean. */
	if (json_object_get(labels, key) != NULL && !json_equal(json_object_get(labels, key), val)) {
		json_decref(val);
		free(key);
		return taskctl_usage_error(ctx, "label '%.*s' given twice with different values",
		                           (int)klen, arg);
	}
	json_object_set_new(labels, key, val);
	free(key);
	if (json_object_size(labels) > TASKD_MAX_LABELS)
		return taskctl_usage_error(ctx, "more than %d labels", TASKD_MAX_LABELS);
	return -1;
}

/* Every job state name the daemon knows (protocol.h). */
static const char *const job_states[] = {
    TASKD_STATE_QUEUED,  TASKD_STATE_RUNNING,   TASKD_STATE_WAITING, TASKD_STATE_SCHEDULED,
    TASKD_STATE_PAUSED,  TASKD_STATE_DONE,      TASKD_STATE_FAILED,  TASKD_STATE_TIMEOUT,
    TASKD_STATE_CANCELLED, TASKD_STATE_LOST, TASKD_STATE_SUSPENDED,
};

int
taskctl_valid_state(const char *s)
{
	size_t i;

	for (i = 0; i < sizeof job_states / sizeof job_states[0]; i++)
		if (strcmp(job_states[i], s) == 0)
			return 1;
	return 0;
}

/* --array ID: "array" in req (a selector, or show's array). -1 or an exit code. */
int
taskctl_parse_array(struct taskctl *ctx, json_t *req, const char *arg)
{
	json_int_t id;

	if (taskctl_parse_id(ctx, arg, &id) == -1)
		return TASKD_EXIT_USAGE;
	json_object_set_new(req, "array", json_integer(id));
	return -1;
}

/*
 * The arguments of a command that takes job ids or a selection (wait,
 * cancel, restart; opts is its option table, with TASKCTL_OPT_LABEL, NAME,
 * ARRAY, STATE): --label/--name/--array/--state into sel ("labels", "name",
 * "array", "states"), else the ids into ids (room for argc). -1 or an exit
 * code.
 */
int
taskctl_parse_selection(struct taskctl *ctx, const struct option *opts, int argc, char **argv,
                        json_t *sel, json_int_t *ids)
{
	json_t *name, *states;
	int c, rc, i;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == TASKCTL_OPT_LABEL) {
			if ((rc = taskctl_parse_label(ctx, sel, optarg)) != -1)
				return rc;
		} else if (c == TASKCTL_OPT_NAME) {
			if ((name = json_string(optarg)) == NULL)
				return taskctl_usage_error(ctx, "name is not valid UTF-8");
			json_object_set_new(sel, "name", name);
		} else if (c == TASKCTL_OPT_ARRAY) {
			if ((rc = taskctl_parse_array(ctx, sel, optarg)) != -1)
				return rc;
		} else if (c == TASKCTL_OPT_STATE) {
			if (!taskctl_valid_state(optarg))
				return taskctl_usage_error(ctx, "invalid state '%s'", optarg);
			if ((states = json_object_get(sel, "states")) == NULL)
				json_object_set_new(sel, "states", states = json_array());
			json_array_append_new(states, json_string(optarg));
		} else if ((rc = taskctl_common_option(ctx, argv, c)) != -1) {
			return rc;
		}
	}
	if (json_object_size(sel) > 0 && optind < argc)
		return taskctl_usage_error(ctx, "give job ids or a selection (--label, --name, "
		                           "--array, --state), not both");
	if (json_object_size(sel) == 0 && optind >= argc)
		return taskctl_usage_error(ctx, "missing job id");
	for (i = optind; i < argc; i++)
		if (taskctl_parse_id(ctx, argv[i], &ids[i - optind]) == -1)
			return TASKD_EXIT_USAGE;
	return -1;
}

/* Pipelined: send every request, then match each answer to its request by id. */
void
taskctl_per_job_call(struct taskctl *ctx, const char *op, struct taskctl_per_job *v, int n)
{
	const json_t *rid;
	json_t *req, *resp;
	int i, k;

	for (i = 0; i < n; i++) {
		req = taskd_request(op);
		json_object_set_new(req, "job", json_integer(v[i].id));
		v[i].req = taskctl_send(ctx, req);
	}
	for (i = 0; i < n; i++) {
		resp = taskctl_recv(ctx);
		rid = json_object_get(resp, "id");
		for (k = 0; json_is_integer(rid) && k < n; k++)
			if (v[k].req == json_integer_value(rid) && v[k].resp == NULL)
				break;
		if (!json_is_integer(rid) || k == n)
			taskctl_bad_response("answer to no pending request");
		v[k].resp = resp;
	}
}

/*
 * Report per-job answers in argument order: print_one(job) for each success
 * (not with --json), taskctl_rejected for each refusal; with --json one
 * array of results and {"job","error"} objects. Returns the exit code.
 */
int
taskctl_per_job_report(struct taskctl *ctx, const struct taskctl_per_job *v, int n,
                       void (*print_one)(const struct taskctl_per_job *))
{
	json_t *arr = json_array(), *e;
	int i, rc = TASKD_EXIT_OK;

	for (i = 0; i < n; i++) {
		if (!taskd_response_ok(v[i].resp)) {
			rc = taskctl_rejected(ctx, v[i].arg, v[i].resp);
			e = json_pack("{s:I, s:O*}", "job", v[i].id, "error",
			              json_object_get(v[i].resp, "error"));
		} else {
			e = json_incref(taskd_response_result(v[i].resp));
			if (!ctx->json)
				print_one(&v[i]);
		}
		json_array_append_new(arr, e);
	}
	if (ctx->json)
		taskctl_print_json(arr);
	json_decref(arr);
	return rc;
}

void
taskctl_per_job_free(struct taskctl_per_job *v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		json_decref(v[i].resp);
	free(v);
}

/*
 * `cancel`, `restart`: by selector (opts: --label, --name, --array, ...),
 * one request that selected(ctx, sel) sends and reports; or per job, op
 * for each ID argument, each answer reported by print_one.
 */
int
taskctl_select_or_each(struct taskctl *ctx, const struct option *opts, int argc, char **argv,
                       const char *op, int (*selected)(struct taskctl *, json_t *),
                       void (*print_one)(const struct taskctl_per_job *))
{
	struct taskctl_per_job *v;
	json_int_t *ids;
	json_t *sel = json_object();
	int i, n, rc;

	v = calloc((size_t)argc, sizeof *v);
	ids = calloc((size_t)argc, sizeof *ids);
	if (v == NULL || ids == NULL || sel == NULL)
		taskctl_lost(ENOMEM);
	rc = taskctl_parse_selection(ctx, opts, argc, argv, sel, ids);
	if (rc == -1 && json_object_size(sel) > 0)
		rc = selected(ctx, sel);
	json_decref(sel);
	if (rc != -1) {
		free(v);
		free(ids);
		return rc;
	}
	n = argc - optind;
	for (i = 0; i < n; i++) {
		v[i].arg = argv[optind + i];
		v[i].id = ids[i];
	}
	free(ids);
	taskctl_per_job_call(ctx, op, v, n);
	rc = taskctl_per_job_report(ctx, v, n, print_one);
	taskctl_per_job_free(v, n);
	return rc;
}

/* Connect once; on failure report, drop what the caller handed over (may be NULL), exit 3. */
static struct taskd_client *
connect_or_exit(struct taskctl *ctx, json_t *req)
{
	int error;

	if (ctx->client != NULL)
		return ctx->client;
	ctx->client = taskd_connect(ctx->socket);
	if (ctx->client != NULL)
		return ctx->client;
	error = errno;
	json_decref(req);
	if (error == ENOENT || error == ECONNREFUSED)
		taskctl_warnx("cannot connect to %s: %s (is taskd running?)", ctx->socket,
		              strerror(error));
	else
		taskctl_warnx("cannot connect to %s: %s", ctx->socket, strerror(error));
	free(ctx->socket_path);
	exit(TASKD_EXIT_UNREACHABLE);
}

struct taskd_client *
taskctl_client(struct taskctl *ctx)
{
	return connect_or_exit(ctx, NULL);
}

/*
 * Exit 3 only when taskd is gone; an answer that makes no sense (EBADMSG:
 * not a JSON object, EMSGSIZE: a line without end) comes from a taskd that
 * is there: 5.
 */
void
taskctl_lost(int error)
{
	if (error == EBADMSG || error == EMSGSIZE) {
		taskctl_warnx("invalid response from taskd%s",
		              error == EMSGSIZE ? ": an answer line too long" : "");
		exit(TASKD_EXIT_PROTOCOL);
	}
	if (error == ENOMEM) {
		taskctl_warnx("out of memory");
		exit(TASKD_EXIT_FAILURE);
	}
	taskctl_warnx("connection to taskd lost");
	exit(TASKD_EXIT_UNREACHABLE);
}

void
taskctl_bad_response(const char *what)
{
	taskctl_warnx("invalid response from taskd: %s", what);
	exit(TASKD_EXIT_PROTOCOL);
}

/*
 * An error with a null id is about the connection, not one request: taskd
 * closes it, or could not read a request.
 */
static int
connection_error(const json_t *resp)
{
	return !taskd_response_ok(resp) && json_is_null(json_object_get(resp, "id")) &&
	       taskd_response_error_code(resp) != NULL;
}

/*
 * A send failed. If taskd closed the connection saying why (e.g.
 * too_many_connections), report that and exit 4; else it is lost: exit 3.
 */
static void __attribute__((noreturn))
send_failed(struct taskctl *ctx, int error)
{
	json_t *resp;

	if (error == EPIPE || error == ECONNRESET) {
		resp = taskd_recv(ctx->client);
		if (resp != NULL && connection_error(resp))
			exit(taskctl_rejected(ctx, NULL, resp));
		json_decref(resp);
	}
	taskctl_lost(error);
}

int64_t
taskctl_send(struct taskctl *ctx, json_t *req)
{
	struct taskd_client *c;
	int64_t id;

	if (req == NULL)
		taskctl_lost(ENOMEM);
	c = connect_or_exit(ctx, req);
	id = taskd_send(c, req);
	if (id == -1)
		send_failed(ctx, errno);
	return id;
}

/* The next line; a connection-wide error (taskd refused or closed us) is reported: exit 4. */
json_t *
taskctl_recv(struct taskctl *ctx)
{
	json_t *resp = taskd_recv(taskctl_client(ctx));

	if (resp == NULL)
		taskctl_lost(errno);
	if (connection_error(resp))
		exit(taskctl_rejected(ctx, NULL, resp));
	return resp;
}

/* At most this many new connections for one call closed as idle (see below). */
#define IDLE_RETRIES 3

json_t *
taskctl_call(struct taskctl *ctx, json_t *req)
{
	struct taskd_client *c;
	const char *code;
	json_t *resp;
	int tries;

	if (req == NULL)
		taskctl_lost(ENOMEM);
	for (tries = 0;; tries++) {
		c = connect_or_exit(ctx, req);
		resp = taskd_call(c, json_incref(req));
		if (resp == NULL) {
			json_decref(req);
			taskctl_lost(errno);
		}
		/*
		 * taskd closed the connection after limits.idle_timeout of silence
		 * (e.g. logs blocked on a paused pager): it had read nothing of
		 * this request. Ask again on a new connection.
		 */
		code = taskd_response_error_code(resp);
		if (tries == IDLE_RETRIES || !connection_error(resp) ||
		    strcmp(code, TASKD_ERR_IDLE_TIMEOUT) != 0)
			break;
		json_decref(resp);
		taskd_close(ctx->client);
		ctx->client = NULL;
	}
	json_decref(req);
	if (!taskd_response_ok(resp) && taskd_response_error_code(resp) == NULL)
		taskctl_bad_response("neither a result nor an error");
	return resp;
}

/* The array at a dotted path ("process_pool.workers") of a result, or NULL. */
static json_t *
array_at(json_t *result, const char *path)
{
	char key[64];
	const char *dot;
	size_t n;

	while ((dot = strchr(path, '.')) != NULL) {
		n = (size_t)(dot - path) < sizeof key - 1 ? (size_t)(dot - path) : sizeof key - 1;
		memcpy(key, path, n);
		key[n] = '\0';
		result = json_object_get(result, key);
		path = dot + 1;
	}
	result = json_object_get(result, path);
	return json_is_array(result) ? result : NULL;
}

/* Append the page's text at key to the first page's (metrics: whole lines a page). */
static void
merge_text(json_t *all, json_t *page, const char *key)
{
	json_t *more = json_object_get(page, key);
	size_t n = json_string_length(all), m;
	char *both;

	if (!json_is_string(more))
		taskctl_bad_response("a page without the text of the first");
	m = json_string_length(more);
	if ((both = malloc(n + m + 1)) == NULL)
		taskctl_lost(ENOMEM);
	memcpy(both, json_string_value(all), n);
	memcpy(both + n, json_string_value(more), m);
	both[n + m] = '\0';
	if (json_string_setn_nocheck(all, both, n + m) == -1)
		taskctl_lost(ENOMEM);
	free(both);
}

/*
 * Append a page's list at path to the first page's: "a.b" names an array
 * by its keys; "a[].b" the arrays b of the objects in array a, matched by
 * their "name" (status: each handler's workers). A string at a top-level
 * key is a text cut in pages: the page's goes after the first's.
 */
static void
merge_page(json_t *first, json_t *page, const char *path)
{
	const char *sub = strstr(path, "[].");
	json_t *all, *more, *o = NULL, *p;
	char key[64];
	size_t i, k;

	if (sub == NULL && json_is_string(json_object_get(first, path))) {
		merge_text(json_object_get(first, path), page, path);
		return;
	}
	if (sub == NULL) {
		all = array_at(first, path);
		more = array_at(page, path);
		if ((all == NULL) != (more == NULL))
			taskctl_bad_response("a page without the list of the first");
		if (all != NULL)
			json_array_extend(all, more);
		return;
	}
	snprintf(key, sizeof key, "%.*s", (int)(sub - path), path);
	all = array_at(first, key);
	more = array_at(page, key);
	json_array_foreach(more, i, p) {
		json_array_foreach(all, k, o) {
			if (json_equal(json_object_get(o, "name"), json_object_get(p, "name")))
				break;
		}
		if (k == json_array_size(all))
			taskctl_bad_response("a page with an item the first did not have");
		merge_page(o, p, sub + 3);
	}
}

/*
 * An answer that comes in pages (doc/protocol.md "Pages"), first: while
 * its result has a "next" cursor, ask again with req, its op replaced by
 * next_op (if not NULL) and "cursor": next, and append the arrays at paths
 * of each page to first's. Returns first with every page in it and
 * "next": null, or the first refusal (first is freed then). Steals both.
 */
json_t *
taskctl_more_pages(struct taskctl *ctx, json_t *first, json_t *req, const char *next_op,
                   const char *const *paths)
{
	json_t *resp, *next;
	char *cursor = NULL;
	size_t i;

	if (next_op != NULL)
		json_object_set_new(req, "op", json_string(next_op));
	for (resp = first; taskd_response_ok(resp);) {
		next = json_object_get(taskd_response_result(resp), "next");
		if (next == NULL || json_is_null(next))
			break;
		if (!json_is_string(next) ||
		    (cursor != NULL && strcmp(cursor, json_string_value(next)) == 0))
			taskctl_bad_response("a page whose \"next\" is no new cursor");
		free(cursor);
		cursor = strdup(json_string_value(next));
		if (cursor == NULL)
			taskctl_lost(ENOMEM);
		if (resp != first)
			json_decref(resp);
		json_object_del(req, "id");
		json_object_set_new(req, "cursor", json_string(cursor));
		resp = taskctl_call(ctx, json_incref(req));
		if (!taskd_response_ok(resp))
			break;
		for (i = 0; paths[i] != NULL; i++)
			merge_page(taskd_response_result(first), taskd_response_result(resp),
				   paths[i]);
	}
	free(cursor);
	json_decref(req);
	if (resp != first && !taskd_response_ok(resp)) {
		json_decref(first);
		return resp;
	}
	if (resp != first)
		json_decref(resp);
	if (taskd_response_ok(first))
		json_object_set_new(taskd_response_result(first), "next", json_null());
	return first;
}

/* taskctl_call, then taskctl_more_pages with the same request. */
json_t *
taskctl_call_pages(struct taskctl *ctx, json_t *req, const char *next_op,
                   const char *const *paths)
{
	return taskctl_more_pages(ctx, taskctl_call(ctx, json_incref(req)), req, next_op, paths);
}

/* "taskctl: show 99: no such job 99 (not_found)"; returns 4. */
int
taskctl_rejected(struct taskctl *ctx, const char *arg, const json_t *resp)
{
	const char *msg = taskd_response_error_message(resp);
	const char *code = taskd_response_error_code(resp);

	if (msg == NULL)
		msg = "request rejected";
	if (code == NULL)
		code = "unknown";
	if (arg != NULL)
		taskctl_warnx("%s %s: %s (%s)", ctx->cmd->name, arg, msg, code);
	else
		taskctl_warnx("%s: %s (%s)", ctx->cmd->name, msg, code);
	return TASKD_EXIT_REJECTED;
}

/* One JSON document on stdout; returns 0. */
int
taskctl_print_json(json_t *json)
{
	json_dumpf(json, stdout, JSON_INDENT(2) | JSON_ENCODE_ANY);
	putchar('\n');
	return TASKD_EXIT_OK;
}

static const struct taskctl_cmd *
find_command(const char *name)
{
	size_t i;

	for (i = 0; i < NCOMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int
global_usage_error(const char *fmt, const char *arg)
{
	fflush(stdout);
	fputs("taskctl: ", stderr);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nusage: taskctl %s\n(taskctl --help lists the commands)\n", GLOBAL_USAGE);
	return TASKD_EXIT_USAGE;
}

/* Parse the global options; returns -1 to go on to the command, else an exit code. */
static int
parse_global(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"socket", required_argument, NULL, 's'},
	    {"json", no_argument, NULL, TASKCTL_OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:s:hV", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			ctx->socket = optarg;
			break;
		case TASKCTL_OPT_JSON:
			ctx->json = 1;
			break;
		case 'h':
			print_usage(stdout);
			return TASKD_EXIT_OK;
		case 'V':
			printf("taskctl %s\n", TASKD_VERSION);
			return TASKD_EXIT_OK;
		case ':':
			return global_usage_error("option '%s' needs an argument",
			                          argv[optind - 1]);
		default:
			if (optopt > 0 && optopt < 128) {
				char opt[3] = {'-', (char)optopt, '\0'};

				return global_usage_error("unknown option '%s'", opt);
			}
			return global_usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return global_usage_error("%s", "missing command");
	ctx->cmd = find_command(argv[optind]);
	if (ctx->cmd == NULL)
		return global_usage_error("unknown command '%s'", argv[optind]);
	return -1;
}

static int
finish(int rc)
{
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "taskctl: write error: %s\n", strerror(errno));
		return rc == TASKD_EXIT_OK ? 1 : rc;
	}
	return rc;
}

int
main(int argc, char **argv)
{
	struct taskctl ctx = {0};
	int rc;

	rc = parse_global(&ctx, argc, argv);
	if (rc != -1)
		return finish(rc);
	ctx.socket_path = taskd_socket_path(ctx.socket);
	if (ctx.socket_path == NULL) {
		taskctl_warnx("out of memory");
		return 1;
	}
	ctx.socket = ctx.socket_path;
	argc -= optind;
	argv += optind;
	optind = 0; /* glibc: full reset, argv[0] is now the command's name */
	rc = ctx.cmd->handler(&ctx, argc, argv);
	taskd_close(ctx.client);
	free(ctx.socket_path);
	return finish(rc);
}
