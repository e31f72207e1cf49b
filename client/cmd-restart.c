/*
 * taskctl restart ID... | --state S... [--label K=V]... [--name N] [--array A]
 *
 * Runs finished jobs again: each becomes a new job with the same command,
 * environment, directory, class, priority, labels, retries, queue, slots
 * and input, and restarted_from set to the old one. Prints one line per
 * job: "21 (restart of 17)". A job whose --unique key a pending or running
 * job holds is not run again: that job's id is printed with a note on
 * stderr. With ids, one request per id (pipelined; exit code 4 if any was
 * refused, e.g. a job that has not finished); with a selection, one
 * request for every finished job it picks (all or nothing).
 */
#include <stdio.h>

#include "taskctl.h"

/* One entry of the answer's "jobs": "21 (restart of 17)", or the job holding its key. */
static void
print_entry(const json_t *e)
{
	json_int_t id = json_integer_value(json_object_get(e, "id"));
	json_int_t from = json_integer_value(json_object_get(e, "restarted_from"));

	if (json_is_true(json_object_get(e, "existing"))) {
		taskctl_warnx("restart %" JSON_INTEGER_FORMAT ": %s %" JSON_INTEGER_FORMAT
		              " has its --unique key and is not finished: not run again", from,
		              json_object_get(e, "array") != NULL ? "array" : "job", id);
		printf("%" JSON_INTEGER_FORMAT " (holds the unique key of %" JSON_INTEGER_FORMAT ")\n",
		       id, from);
		return;
	}
	printf("%" JSON_INTEGER_FORMAT " (restart of %" JSON_INTEGER_FORMAT ")\n", id, from);
}

static const json_t *
entries(const json_t *result)
{
	const json_t *jobs = json_object_get(result, "jobs");

	if (!json_is_array(jobs))
		taskctl_bad_response("restart result without jobs");
	return jobs;
}

static void
print_one(const struct taskctl_per_job *p)
{
	const json_t *jobs = entries(taskd_response_result(p->resp));
	size_t i;

	for (i = 0; i < json_array_size(jobs); i++)
		print_entry(json_array_get(jobs, i));
}

static int
restart_selected(struct taskctl *ctx, json_t *sel)
{
	json_t *req = taskd_request(TASKD_OP_RESTART), *resp;
	const json_t *jobs;
	size_t i;
	int rc;

	json_object_update(req, sel);
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	jobs = entries(taskd_response_result(resp));
	if (ctx->json)
		taskctl_print_json(taskd_response_result(resp));
	else if (json_array_size(jobs) == 0)
		taskctl_warnx("restart: no finished job matches");
	for (i = 0; !ctx->json && i < json_array_size(jobs); i++)
		print_entry(json_array_get(jobs, i));
	json_decref(resp);
	return TASKD_EXIT_OK;
}

int
cmd_restart(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, TASKCTL_OPT_STATE},
	    {"label", required_argument, NULL, TASKCTL_OPT_LABEL},
	    {"name", required_argument, NULL, TASKCTL_OPT_NAME},
	    {"array", required_argument, NULL, TASKCTL_OPT_ARRAY},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};

	return taskctl_select_or_each(ctx, opts, argc, argv, TASKD_OP_RESTART, restart_selected,
	                              print_one);
}
