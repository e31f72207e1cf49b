/*
 * taskctl priority ID N
 *
 * Give a job that has not started (queued, waiting, scheduled, paused) a
 * new priority N (-20..19, lower runs first). Prints "ID priority N".
 */
#include <stdio.h>

#include "taskctl.h"

int
cmd_priority(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {TASKCTL_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
	json_t *req, *resp;
	json_int_t id;
	long long prio;
	int c, rc;

	/* '+': stop at the first word, so that a negative priority is not an option. */
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1)
		if ((rc = taskctl_common_option(ctx, argv, c)) != -1)
			return rc;
	if (argc - optind != 2)
		return taskctl_usage_error(ctx, "want a job id and a priority");
	if (taskctl_parse_id(ctx, argv[optind], &id) == -1)
		return TASKD_EXIT_USAGE;
	if (taskctl_parse_int(argv[optind + 1], TASKD_PRIORITY_MIN, TASKD_PRIORITY_MAX, &prio) == -1)
		return taskctl_usage_error(ctx, "invalid priority '%s' (an integer from %d to %d)",
		                           argv[optind + 1], TASKD_PRIORITY_MIN, TASKD_PRIORITY_MAX);
	req = taskd_request(TASKD_OP_PRIORITY);
	json_object_set_new(req, "job", json_integer(id));
	json_object_set_new(req, "priority", json_integer(prio));
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, argv[optind], resp);
		json_decref(resp);
		return rc;
	}
	if (ctx->json)
		taskctl_print_json(taskd_response_result(resp));
	else
		printf("%lld priority %lld\n", (long long)id, prio);
	json_decref(resp);
	return TASKD_EXIT_OK;
}
