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
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
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
	taskctl_per_job_call(ctx, TASKD_OP_CANCEL, v, n);
	rc = taskctl_per_job_report(ctx, v, n, print_one);
	taskctl_per_job_free(v, n);
	return rc;
}
