/*
 * taskctl cancel ID... | --label K=V... [--name N]
 *
 * The cancels go out pipelined; results are printed in argument order:
 * "17 cancelled" (it was queued) or "17 cancelling" (running: SIGTERM
 * sent, final state comes later). Every id is tried; if any was
 * rejected the exit code is 4. With --label/--name the daemon cancels
 * every matching unfinished job the caller may see, in one request.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "taskctl.h"

struct cancel {
	const char *arg;
	json_int_t id;
	int64_t req;
	json_t *resp;
};

static struct cancel *
find(struct cancel *v, int n, const json_t *resp)
{
	const json_t *id = json_object_get(resp, "id");
	int i;

	for (i = 0; json_is_integer(id) && i < n; i++)
		if (v[i].req == json_integer_value(id) && v[i].resp == NULL)
			return &v[i];
	return NULL;
}

static void
print_one(const struct cancel *c)
{
	const json_t *r = taskd_response_result(c->resp);
	const char *state = json_string_value(json_object_get(r, "state"));

	if (json_is_true(json_object_get(r, "cancelling")))
		printf("%lld cancelling\n", (long long)c->id);
	else
		printf("%lld %s\n", (long long)c->id, state != NULL ? state : "cancelled");
}

/* Report in argument order; returns the exit code. */
static int
report(struct taskctl *ctx, struct cancel *v, int n)
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

enum { OPT_LABEL = 300, OPT_NAME };

/* Options into sel ("labels", "name"), then ids (none when selecting); -1 or an exit code. */
static int
parse_args(struct taskctl *ctx, int argc, char **argv, json_t *sel, json_int_t *ids)
{
	static const struct option opts[] = {
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"name", required_argument, NULL, OPT_NAME},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *name;
	int c, rc, i;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == OPT_LABEL) {
			if ((rc = taskctl_parse_label(ctx, sel, optarg)) != -1)
				return rc;
		} else if (c == OPT_NAME) {
			if ((name = json_string(optarg)) == NULL)
				return taskctl_usage_error(ctx, "name is not valid UTF-8");
			json_object_set_new(sel, "name", name);
		} else if ((rc = taskctl_common_option(ctx, argv, c)) != -1) {
			return rc;
		}
	}
	if (json_object_size(sel) > 0 && optind < argc)
		return taskctl_usage_error(ctx, "give job ids or --label/--name, not both");
	if (json_object_size(sel) == 0 && optind >= argc)
		return taskctl_usage_error(ctx, "missing job id");
	for (i = optind; i < argc; i++)
		if (taskctl_parse_id(ctx, argv[i], &ids[i - optind]) == -1)
			return TASKD_EXIT_USAGE;
	return -1;
}

/* cancel --label/--name: "17 cancelled" / "18 cancelling" per job the daemon cancelled. */
static int
cancel_selected(struct taskctl *ctx, json_t *sel)
{
	json_t *req = taskd_request(TASKD_OP_CANCEL), *resp, *ids, *running, *id, *r;
	size_t i, k;
	int rc, busy;

	json_object_update(req, sel);
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	ids = json_object_get(taskd_response_result(resp), "ids");
	running = json_object_get(taskd_response_result(resp), "cancelling");
	if (!json_is_array(ids) || !json_is_array(running))
		taskctl_bad_response("cancel result without ids");
	if (ctx->json) {
		taskctl_print_json(taskd_response_result(resp));
	} else if (json_array_size(ids) == 0) {
		taskctl_warnx("cancel: no unfinished job matches");
	}
	json_array_foreach(ids, i, id) {
		if (ctx->json)
			break;
		busy = 0;
		json_array_foreach(running, k, r)
			busy |= json_equal(r, id);
		printf("%" JSON_INTEGER_FORMAT " %s\n", json_integer_value(id),
		       busy ? "cancelling" : "cancelled");
	}
	json_decref(resp);
	return TASKD_EXIT_OK;
}

int
cmd_cancel(struct taskctl *ctx, int argc, char **argv)
{
	struct cancel *v, *c;
	json_int_t *ids;
	json_t *req, *resp, *sel = json_object();
	int i, n, rc;

	v = calloc((size_t)argc, sizeof *v);
	ids = calloc((size_t)argc, sizeof *ids);
	if (v == NULL || ids == NULL || sel == NULL)
		taskctl_lost(ENOMEM);
	rc = parse_args(ctx, argc, argv, sel, ids);
	if (rc == -1 && json_object_size(sel) > 0)
		rc = cancel_selected(ctx, sel);
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
	for (i = 0; i < n; i++) {
		req = taskd_request(TASKD_OP_CANCEL);
		json_object_set_new(req, "job", json_integer(v[i].id));
		v[i].req = taskctl_send(ctx, req);
	}
	for (i = 0; i < n; i++) {
		resp = taskctl_recv(ctx);
		if ((c = find(v, n, resp)) == NULL)
			taskctl_bad_response("answer to no pending cancel");
		c->resp = resp;
	}
	rc = report(ctx, v, n);
	for (i = 0; i < n; i++)
		json_decref(v[i].resp);
	free(v);
	return rc;
}
