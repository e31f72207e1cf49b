/*
 * taskctl wait ID... | --label K=V... [--name N] [--array A]
 *
 * All waits go out pipelined on one connection; each answers when its
 * job finishes, so lines are printed in completion order. The exit code
 * is the shell's view of the jobs (doc/design.md "taskctl"): 0 when all succeeded, else
 * the code of the first failed one in argument order (4 for an id the
 * daemon rejected). With --label/--name/--array the daemon waits for every
 * matching job that exists now and answers once; lines come in id order.
 * When standard error is a terminal (and not --json), a progress line is
 * kept up to date there (progress.c); otherwise the output is only the
 * lines above.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

static int
clamp_code(long long code)
{
	if (code < 0 || code > 255)
		return 1;
	return (int)code;
}

int
cmd_wait_exit_code(const json_t *job)
{
	const char *state = json_string_value(json_object_get(job, "state"));
	const json_t *code = json_object_get(job, "exit_code");
	const json_t *sig = json_object_get(job, "signal");

	if (state == NULL)
		return TASKD_EXIT_JOB_ABORTED;
	if (strcmp(state, TASKD_STATE_DONE) == 0)
		return TASKD_EXIT_OK;
	if (strcmp(state, TASKD_STATE_TIMEOUT) == 0)
		return TASKD_EXIT_JOB_TIMEOUT;
	if (strcmp(state, TASKD_STATE_FAILED) != 0)
		return TASKD_EXIT_JOB_ABORTED; /* cancelled, lost */
	if (json_is_integer(sig) && json_integer_value(sig) > 0)
		return clamp_code(128 + json_integer_value(sig));
	if (json_is_integer(code) && json_integer_value(code) != 0)
		return clamp_code(json_integer_value(code));
	return 1;
}

int
cmd_wait_print_result(const json_t *job)
{
	const json_t *result = json_object_get(job, "result");
	char *text;

	if (result == NULL || json_is_null(result))
		return 0;
	/* Control characters escaped like all human output (JSON has them escaped already). */
	if (json_is_string(result)) {
		fmt_line(stdout, "%s", json_string_value(result));
		return 1;
	}
	if ((text = json_dumps(result, JSON_COMPACT | JSON_ENCODE_ANY)) == NULL)
		taskctl_bad_response("result cannot be printed");
	fmt_line(stdout, "%s", text);
	free(text);
	return 1;
}

/* A handler's job: its result on stdout, or why it failed on stderr. */
static void
print_handler_job(const json_t *job)
{
	const char *error = json_string_value(json_object_get(job, "error"));
	const char *state = json_string_value(json_object_get(job, "state"));

	if (cmd_wait_print_result(job))
		return;
	fflush(stdout);
	taskctl_warnx("job %" JSON_INTEGER_FORMAT " %s%s%s",
		      json_integer_value(json_object_get(job, "id")), state != NULL ? state : "?",
		      error != NULL ? ": " : "", error != NULL ? error : "");
}

/*
 * "17 done exit=0 wall=0.123s", "18 failed signal=SIGKILL wall=2.000s (why)",
 * "19 done exit=0 wall=0.001s result={"n":1}" (a result as text or compact JSON);
 * a handler's job: its result, or its error on stderr.
 */
void
cmd_wait_print_line(const json_t *job)
{
	const json_t *code = json_object_get(job, "exit_code");
	const json_t *sig = json_object_get(job, "signal");
	const json_t *wall = json_object_get(job, "wall");
	const json_t *rv = json_object_get(job, "result");
	const char *result = json_string_value(rv);
	char *rjson = NULL;
	const char *error = json_string_value(json_object_get(job, "error"));
	const char *state = json_string_value(json_object_get(job, "state"));
	const char *pool = json_string_value(json_object_get(job, "pool"));
	struct fmt_linebuf lb;
	char buf[FMT_BUFSZ];

	if (pool != NULL && strcmp(pool, "handler") == 0) {
		print_handler_job(job);
		return;
	}
	fmt_line_begin(&lb);
	fprintf(lb.fp, "%" JSON_INTEGER_FORMAT " %s",
	        json_integer_value(json_object_get(job, "id")), state != NULL ? state : "?");
	if (json_is_integer(code))
		fprintf(lb.fp, " exit=%" JSON_INTEGER_FORMAT, json_integer_value(code));
	if (json_is_integer(sig) && json_integer_value(sig) > 0)
		fprintf(lb.fp, " signal=%s", fmt_signal(buf, json_integer_value(sig)));
	if (json_is_number(wall))
		fprintf(lb.fp, " wall=%s", fmt_duration(buf, json_number_value(wall)));
	/* A module type's JSON result on the line too, compact. */
	if (result == NULL && rv != NULL && !json_is_null(rv) &&
	    (rjson = json_dumps(rv, JSON_COMPACT | JSON_ENCODE_ANY)) != NULL)
		result = rjson;
	if (result != NULL)
		fprintf(lb.fp, " result=%s", result);
	free(rjson);
	if (error != NULL)
		fprintf(lb.fp, " (%s)", error); /* may quote the job's argv */
	fmt_line_end(&lb, stdout);
}

struct waiter {
	const char *arg;
	json_int_t id;
	int64_t req;   /* request id */
	json_t *job;   /* result; NULL while pending or when rejected */
	json_t *error; /* the daemon's error object when rejected */
	int code;      /* -1 while pending */
};

static struct waiter *
find_waiter(struct waiter *w, int n, const json_t *resp)
{
	const json_t *id = json_object_get(resp, "id");
	int64_t req;
	int i;

	if (!json_is_integer(id))
		return NULL;
	req = json_integer_value(id);
	/* Request ids are consecutive: try the obvious slot first. */
	i = (int)(req - w[0].req);
	if (req >= w[0].req && i < n && w[i].req == req && w[i].code == -1)
		return &w[i];
	for (i = 0; i < n; i++)
		if (w[i].req == req && w[i].code == -1)
			return &w[i];
	return NULL;
}

static void
receive_one(struct taskctl *ctx, struct waiter *w, int n, json_t *resp, struct progress *prog)
{
	struct waiter *t = find_waiter(w, n, resp);

	if (t == NULL)
		taskctl_bad_response("answer to no pending wait");
	progress_clear(prog);
	if (!taskd_response_ok(resp)) {
		t->code = taskctl_rejected(ctx, t->arg, resp);
		t->error = json_incref(json_object_get(resp, "error"));
	} else {
		t->job = json_incref(taskd_response_result(resp));
		t->code = cmd_wait_exit_code(t->job);
		if (!ctx->json)
			cmd_wait_print_line(t->job);
		fflush(stdout);
	}
	if (prog != NULL)
		progress_finished(prog, t->id, t->job);
	json_decref(resp);
}

static const char *const list_pages[] = {"jobs", NULL};

/*
 * On a terminal: the progress line (progress.c) of the jobs sel selects
 * (ids, or the selector), whose starting states come from a `list` (all
 * its pages) asked before the waits go out.
 */
static struct progress *
start_progress(struct taskctl *ctx, json_t *sel, const json_int_t *ids, size_t n)
{
	struct progress *p = progress_start(ctx, sel, ids, n);
	json_t *req, *resp;

	if (p == NULL)
		return NULL;
	req = taskd_request(TASKD_OP_LIST);
	json_object_update(req, sel);
	json_object_set_new(req, "limit", json_integer(0));
	resp = taskctl_call_pages(ctx, req, NULL, list_pages);
	/* A refused list (e.g. too many ids) leaves the line counting answers only. */
	if (taskd_response_ok(resp))
		progress_snapshot(p, json_object_get(taskd_response_result(resp), "jobs"));
	json_decref(resp);
	return p;
}

/* The next answer on the main connection, keeping the progress line going meanwhile. */
static json_t *
next_answer(struct taskctl *ctx, struct progress *p)
{
	if (p != NULL)
		progress_wait(p, taskctl_client(ctx));
	return taskctl_recv(ctx);
}

static void
print_json(struct waiter *w, int n)
{
	json_t *arr = json_array();
	int i;

	for (i = 0; i < n; i++) {
		if (w[i].job != NULL)
			json_array_append(arr, w[i].job);
		else
			json_array_append_new(arr,
			                      json_pack("{s:I, s:O*}", "job", (json_int_t)w[i].id,
			                                "error", w[i].error));
	}
	taskctl_print_json(arr);
	json_decref(arr);
}

/*
 * wait --label/--name: one request, answered when all its jobs are final;
 * the rest of a long answer comes from `list` pages (doc/protocol.md "Pages").
 */
static int
wait_selected(struct taskctl *ctx, json_t *sel)
{
	json_t *req = taskd_request(TASKD_OP_WAIT), *resp, *jobs;
	int rc = TASKD_EXIT_OK, code;
	struct progress *prog;
	int64_t wait_req;
	size_t i;

	prog = start_progress(ctx, sel, NULL, 0);
	json_object_update(req, sel);
	wait_req = taskctl_send(ctx, json_incref(req));
	resp = next_answer(ctx, prog);
	progress_end(prog);
	if (json_integer_value(json_object_get(resp, "id")) != wait_req &&
	    !json_is_null(json_object_get(resp, "id")))
		taskctl_bad_response("answer to no pending wait");
	resp = taskctl_more_pages(ctx, resp, req, TASKD_OP_LIST, list_pages);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	jobs = json_object_get(taskd_response_result(resp), "jobs");
	if (!json_is_array(jobs))
		taskctl_bad_response("wait result without jobs");
	if (json_array_size(jobs) == 0 && !ctx->json)
		taskctl_warnx("wait: no job matches");
	for (i = 0; i < json_array_size(jobs); i++) {
		code = cmd_wait_exit_code(json_array_get(jobs, i));
		if (rc == TASKD_EXIT_OK)
			rc = code;
		if (!ctx->json)
			cmd_wait_print_line(json_array_get(jobs, i));
	}
	if (ctx->json)
		taskctl_print_json(jobs);
	json_decref(resp);
	return rc;
}

int
cmd_wait_array(struct taskctl *ctx, json_int_t array)
{
	json_t *sel = json_pack("{s:I}", "array", (json_int_t)array);
	int rc = wait_selected(ctx, sel);

	json_decref(sel);
	return rc;
}

int
cmd_wait(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"label", required_argument, NULL, TASKCTL_OPT_LABEL},
	    {"name", required_argument, NULL, TASKCTL_OPT_NAME},
	    {"array", required_argument, NULL, TASKCTL_OPT_ARRAY},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct progress *prog;
	struct waiter *w;
	json_int_t *ids;
	json_t *req, *sel = json_object(), *idarr = json_array();
	int i, n, rc;

	ids = calloc((size_t)argc, sizeof *ids);
	w = calloc((size_t)argc, sizeof *w);
	if (ids == NULL || w == NULL || sel == NULL || idarr == NULL)
		taskctl_lost(ENOMEM);
	if ((rc = taskctl_parse_selection(ctx, opts, argc, argv, sel, ids)) != -1) {
		json_decref(idarr);
		goto out;
	}
	if (json_object_size(sel) > 0) {
		json_decref(idarr);
		rc = wait_selected(ctx, sel);
		goto out;
	}
	n = argc - optind;
	for (i = 0; i < n; i++)
		json_array_append_new(idarr, json_integer(ids[i]));
	json_object_set_new(sel, "ids", idarr);
	prog = start_progress(ctx, sel, ids, (size_t)n);
	for (i = 0; i < n; i++) {
		req = taskd_request(TASKD_OP_WAIT);
		json_object_set_new(req, "job", json_integer(ids[i]));
		w[i].arg = argv[optind + i];
		w[i].id = ids[i];
		w[i].code = -1;
		w[i].req = taskctl_send(ctx, req);
	}
	for (i = 0; i < n; i++)
		receive_one(ctx, w, n, next_answer(ctx, prog), prog);
	progress_end(prog);
	if (ctx->json)
		print_json(w, n);
	rc = TASKD_EXIT_OK;
	for (i = 0; i < n && rc == TASKD_EXIT_OK; i++)
		rc = w[i].code;
	for (i = 0; i < n; i++) {
		json_decref(w[i].job);
		json_decref(w[i].error);
	}
out:
	json_decref(sel);
	free(ids);
	free(w);
	return rc;
}
