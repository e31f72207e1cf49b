/*
 * taskctl shutdown [--drain]
 */
#include <stdio.h>

#include "taskctl.h"

enum { OPT_DRAIN = 300 };

int
cmd_shutdown(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"drain", no_argument, NULL, OPT_DRAIN},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *req, *resp;
	int c, rc, drain = 0;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == OPT_DRAIN)
			drain = 1;
		else if ((rc = taskctl_common_option(ctx, argv, c)) != -1)
			return rc;
	}
	if (optind < argc)
		return taskctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	req = taskd_request(TASKD_OP_SHUTDOWN);
	json_object_set_new(req, "drain", json_boolean(drain));
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	if (ctx->json)
		taskctl_print_json(taskd_response_result(resp));
	else if (drain)
		printf("taskd is draining: queued and running jobs finish, then it exits\n");
	else
		printf("taskd is shutting down\n");
	json_decref(resp);
	return TASKD_EXIT_OK;
}
