/*
 * taskctl cancel ID...
 *
 * The cancels go out pipelined; results are printed in argument order:
 * "17 cancelled" (it was queued) or "17 cancelling" (running: SIGTERM
 * sent, final state comes later). Every id is tried; if any was
 * rejected the exit code is 4.
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

int
cmd_cancel(struct taskctl *ctx, int argc, char **argv)
{
	struct cancel *v, *c;
	json_int_t *ids;
	json_t *req, *resp;
	int i, n, rc;

	v = calloc((size_t)argc, sizeof *v);
	ids = calloc((size_t)argc, sizeof *ids);
	if (v == NULL || ids == NULL)
		taskctl_lost(ENOMEM);
	if ((rc = taskctl_parse_ids(ctx, argc, argv, ids)) != -1) {
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
