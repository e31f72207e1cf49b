/*
 * taskctl pause [--class cpu|io | --queue NAME] [ID...]
 *
 * Without ids: stop starting jobs (all, one class, or one named queue;
 * running jobs go on) and print what is paused. With ids: hold those
 * queued jobs (state paused), suspend those running (state suspended: their
 * process groups stop). The requests go out pipelined; results come in
 * argument order ("17 paused", "18 suspended"); if any was rejected the
 * exit code is 4. `resume` (cmd-resume.c) is the same with the other op:
 * "17 queued", "18 running", or "18 suspended, resuming when a cpu slot is
 * free".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

enum { OPT_CLASS = 300, OPT_QUEUE };

/* "17 paused" / "17 queued" / "18 suspended" / "18 running" */
static void
print_one(const struct taskctl_per_job *p)
{
	const json_t *r = taskd_response_result(p->resp);
	const char *state = json_string_value(json_object_get(r, "state"));

	fmt_line(stdout, "%lld %s%s", (long long)p->id, state != NULL ? state : "?",
	         json_is_true(json_object_get(r, "resuming"))
	             ? ", resuming when its cpu slots are free" : "");
}

/* Each id in its own request, pipelined. */
static int
jobs_op(struct taskctl *ctx, const char *op, int n, char **args)
{
	struct taskctl_per_job *v = calloc((size_t)n, sizeof *v);
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
	taskctl_per_job_call(ctx, op, v, n);
	rc = taskctl_per_job_report(ctx, v, n, print_one);
	taskctl_per_job_free(v, n);
	return rc;
}

/* Of dispatching (all, a class) or of a named queue: "paused: cpu yes, io no" / "queue gpu: paused". */
static int
queue_op(struct taskctl *ctx, const char *op, const char *cls, const char *queue)
{
	json_t *req = taskd_request(op), *resp, *paused, *r, *name;
	int rc;

	if (cls != NULL)
		json_object_set_new(req, "class", json_string(cls));
	if (queue != NULL) {
		if ((name = json_string(queue)) == NULL) {
			json_decref(req);
			return taskctl_usage_error(ctx, "queue name is not valid UTF-8");
		}
		json_object_set_new(req, "queue", name);
	}
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	r = taskd_response_result(resp);
	paused = json_object_get(r, "paused");
	if (ctx->json)
		taskctl_print_json(r);
	else if (queue != NULL)
		fmt_line(stdout, "queue %s: %s", queue, json_is_true(paused) ? "paused" : "running");
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
	    {"queue", required_argument, NULL, OPT_QUEUE},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	const char *cls = NULL, *queue = NULL;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == OPT_CLASS) {
			if (strcmp(optarg, TASKD_CLASS_CPU) != 0 && strcmp(optarg, TASKD_CLASS_IO) != 0)
				return taskctl_usage_error(ctx, "invalid class '%s' (cpu or io)",
				                           optarg);
			cls = optarg;
		} else if (c == OPT_QUEUE) {
			queue = optarg;
		} else if ((rc = taskctl_common_option(ctx, argv, c)) != -1) {
			return rc;
		}
	}
	if (cls != NULL && queue != NULL)
		return taskctl_usage_error(ctx, "give --class or --queue, not both");
	if (optind < argc && (cls != NULL || queue != NULL))
		return taskctl_usage_error(ctx, "give --class, --queue or job ids, not more");
	if (optind < argc)
		return jobs_op(ctx, op, argc - optind, argv + optind);
	return queue_op(ctx, op, cls, queue);
}

int
cmd_pause(struct taskctl *ctx, int argc, char **argv)
{
	return cmd_pause_resume(ctx, TASKD_OP_PAUSE, argc, argv);
}
