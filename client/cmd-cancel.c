/*
 * taskctl cancel ID... | --label K=V... [--name N] [--array A]
 *
 * The cancels go out pipelined; results are printed in argument order:
 * "17 cancelled" (it was queued) or "17 cancelling" (running: SIGTERM
 * sent, final state comes later). Every id is tried; if any was
 * rejected the exit code is 4. With --label/--name/--array the daemon
 * cancels every matching unfinished job the caller may see, in one request
 * (a suspended one is continued, then stopped like a running one).
 */
#include <stdio.h>

#include "taskctl.h"

static void
print_one(const struct taskctl_per_job *c)
{
	const json_t *r = taskd_response_result(c->resp);
	const char *state = json_string_value(json_object_get(r, "state"));

	if (json_is_true(json_object_get(r, "cancelling")))
		printf("%lld cancelling\n", (long long)c->id);
	else
		fmt_line(stdout, "%lld %s", (long long)c->id, state != NULL ? state : "cancelled");
}

/* cancel --label/--name: "17 cancelled" / "18 cancelling" per job the daemon cancelled. */
static int
cancel_selected(struct taskctl *ctx, json_t *sel)
{
	static const char *const pages[] = {"ids", "cancelling", NULL};
	json_t *req = taskd_request(TASKD_OP_CANCEL), *resp, *ids, *running, *id, *r;
	size_t i, k;
	int rc, busy;

	json_object_update(req, sel);
	/* Everything is cancelled by the first request; later pages only tell the rest. */
	resp = taskctl_call_pages(ctx, req, NULL, pages);
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
	static const struct option opts[] = {
	    {"label", required_argument, NULL, TASKCTL_OPT_LABEL},
	    {"name", required_argument, NULL, TASKCTL_OPT_NAME},
	    {"array", required_argument, NULL, TASKCTL_OPT_ARRAY},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};

	return taskctl_select_or_each(ctx, opts, argc, argv, TASKD_OP_CANCEL, cancel_selected,
	                              print_one);
}
