/*
 * taskctl reload    re-read taskd's configuration (like SIGHUP)
 * taskctl metrics   print counters and gauges in Prometheus text format
 */
#include <stdio.h>

#include "taskctl.h"

/* Send a request without arguments; the result, or NULL after reporting a rejection. */
static json_t *
simple_call(struct taskctl *ctx, const char *op, int *rc)
{
	json_t *resp = taskctl_call(ctx, taskd_request(op));

	if (!taskd_response_ok(resp)) {
		*rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return NULL;
	}
	return resp;
}

int
cmd_reload(struct taskctl *ctx, int argc, char **argv)
{
	json_t *resp, *result, *changed, *key;
	size_t i;
	int rc;

	if ((rc = taskctl_no_args(ctx, argc, argv)) != -1)
		return rc;
	if ((resp = simple_call(ctx, TASKD_OP_RELOAD, &rc)) == NULL)
		return rc;
	result = taskd_response_result(resp);
	changed = json_object_get(result, "changed");
	if (ctx->json) {
		taskctl_print_json(result);
	} else if (json_array_size(changed) == 0) {
		fmt_line(stdout, "configuration reloaded from %s: nothing changed",
		         json_string_value(json_object_get(result, "config")));
	} else {
		fmt_line(stdout, "configuration reloaded from %s; changed:",
		         json_string_value(json_object_get(result, "config")));
		json_array_foreach(changed, i, key)
			fmt_line(stdout, "  %s", json_string_value(key));
	}
	json_decref(resp);
	return TASKD_EXIT_OK;
}

static const char *const text_path[] = { "text", NULL };

int
cmd_metrics(struct taskctl *ctx, int argc, char **argv)
{
	json_t *resp, *result;
	int rc;

	if ((rc = taskctl_no_args(ctx, argc, argv)) != -1)
		return rc;
	/* The text comes in pages of whole lines when it is longer than a frame. */
	resp = taskctl_call_pages(ctx, taskd_request(TASKD_OP_METRICS), NULL, text_path);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	result = taskd_response_result(resp);
	if (ctx->json)
		taskctl_print_json(result);
	else
		fputs(json_string_value(json_object_get(result, "text")), stdout);
	json_decref(resp);
	return TASKD_EXIT_OK;
}
