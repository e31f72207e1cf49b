/*
 * taskctl pause [--class cpu|io] [ID...]
 *
 * Without ids: stop starting jobs (all, or one class; running jobs go
 * on) and print which classes are paused. With ids: hold those queued
 * jobs (state paused). The requests go out pipelined; results come in
 * argument order; if any was rejected the exit code is 4. `resume`
 * (cmd-resume.c) is the same with the other op.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

enum { OPT_CLASS = 300 };

struct one {
	const char *arg;
	json_int_t id;
	int64_t req;
	json_t *resp;
};

static struct one *
find(struct one *v, int n, const json_t *resp)
{
	const json_t *id = json_object_get(resp, "id");
	int i;

	for (i = 0; json_is_integer(id) && i < n; i++)
		if (v[i].req == json_integer_value(id) && v[i].resp == NULL)
			return &v[i];
	return NULL;
}

static int
report(struct taskctl *ctx, struct one *v, int n)
{
	json_t *arr = json_array(), *e, *r;
	const char *state;
	int i, rc = TASKD_EXIT_OK;

	for (i = 0; i < n; i++) {
		if (!taskd_response_ok(v[i].resp)) {
			rc = taskctl_rejected(ctx, v[i].arg, v[i].resp);
			e = json_pack("{s:I, s:O*}", "job", v[i].id, "error",
			              json_object_get(v[i].resp, "error"));
		} else {
			r = taskd_response_result(v[i].resp);
			e = json_incref(r);
			state = json_string_value(json_object_get(r, "state"));
			if (!ctx->json)
				printf("%lld %s\n", (long long)v[i].id, state != NULL ? state : "?");
		}
		json_array_append_new(arr, e);
	}
	if (ctx->json)
		taskctl_print_json(arr);
	json_decref(arr);
	return rc;
}

/* Each id in its own request, pipelined. */
static int
jobs_op(struct taskctl *ctx, const char *op, int n, char **args)
{
	struct one *v = calloc((size_t)n, sizeof *v), *o;
	json_t *req, *resp;
	int i, rc;

	if (v == NULL)
		taskctl_lost(ENOMEM);
	for (i = 0; i < n; i++) {
		v[i].arg = args[i];
		if (taskctl_parse_id(ctx, args[i], &v[i].id) == -1) {
			free(v);
			return TASKD_EXIT_USAGE;
		}
	}
	for (i = 0; i < n; i++) {
		req = taskd_request(op);
		json_object_set_new(req, "job", json_integer(v[i].id));
		v[i].req = taskctl_send(ctx, req);
	}
	for (i = 0; i < n; i++) {
		resp = taskctl_recv(ctx);
		if ((o = find(v, n, resp)) == NULL)
			taskctl_bad_response("answer to no pending request");
		o->resp = resp;
	}
	rc = report(ctx, v, n);
	for (i = 0; i < n; i++)
		json_decref(v[i].resp);
	free(v);
	return rc;
}

static int
queue_op(struct taskctl *ctx, const char *op, const char *cls)
{
	json_t *req = taskd_request(op), *resp, *paused;
	int rc;

	if (cls != NULL)
		json_object_set_new(req, "class", json_string(cls));
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	paused = json_object_get(taskd_response_result(resp), "paused");
	if (ctx->json)
		taskctl_print_json(taskd_response_result(resp));
	else
		printf("paused: cpu %s, io %s\n",
		       json_is_true(json_object_get(paused, "cpu")) ? "yes" : "no",
		       json_is_true(json_object_get(paused, "io")) ? "yes" : "no");
	json_decref(resp);
	return TASKD_EXIT_OK;
}

int
cmd_pause_resume(struct taskctl *ctx, const char *op, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"class", required_argument, NULL, OPT_CLASS},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	const char *cls = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == OPT_CLASS) {
			if (strcmp(optarg, TASKD_CLASS_CPU) != 0 && strcmp(optarg, TASKD_CLASS_IO) != 0)
				return taskctl_usage_error(ctx, "invalid class '%s' (cpu or io)",
				                           optarg);
			cls = optarg;
		} else if ((rc = taskctl_common_option(ctx, argv, c)) != -1) {
			return rc;
		}
	}
	if (optind < argc && cls != NULL)
		return taskctl_usage_error(ctx, "give --class or job ids, not both");
	if (optind < argc)
		return jobs_op(ctx, op, argc - optind, argv + optind);
	return queue_op(ctx, op, cls);
}

int
cmd_pause(struct taskctl *ctx, int argc, char **argv)
{
	return cmd_pause_resume(ctx, TASKD_OP_PAUSE, argc, argv);
}
