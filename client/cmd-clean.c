/*
 * taskctl clean [--state S] [--label K=V]... [--name N] [--array A] [--before DURATION]
 *
 * Removes finished jobs (their records and output files) from the daemon:
 * all the caller may see, or those passing the filters. --before 1h keeps
 * the jobs that finished within the last hour. Prints "removed N jobs".
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

enum { OPT_STATE = 300, OPT_LABEL, OPT_NAME, OPT_BEFORE, OPT_ARRAY };

static const char *const final_states[] = {
    TASKD_STATE_DONE,      TASKD_STATE_FAILED, TASKD_STATE_TIMEOUT,
    TASKD_STATE_CANCELLED, TASKD_STATE_LOST,   NULL,
};

/* "90", "1.5s", "10m", "2h", "7d" → seconds; -1 if invalid. */
static double
parse_duration(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (end == s || errno != 0 || !isfinite(v) || v < 0 || *s == '-' || *s == '+')
		return -1;
	if (*end != '\0' && end[1] != '\0')
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		return v;
	case 'm':
		return v * 60;
	case 'h':
		return v * 3600;
	case 'd':
		return v * 86400;
	default:
		return -1;
	}
}

static int
valid_final_state(const char *s)
{
	const char *const *p;

	for (p = final_states; *p != NULL; p++)
		if (strcmp(*p, s) == 0)
			return 1;
	return 0;
}

static int
parse_option(struct taskctl *ctx, char **argv, int c, json_t *req)
{
	json_t *name, *states;
	double secs;

	switch (c) {
	case OPT_STATE: /* repeated: jobs in any of them */
		if (!valid_final_state(optarg))
			return taskctl_usage_error(ctx, "invalid state '%s' (done, failed, timeout, "
			                           "cancelled or lost)", optarg);
		if ((states = json_object_get(req, "states")) == NULL)
			json_object_set_new(req, "states", states = json_array());
		json_array_append_new(states, json_string(optarg));
		return -1;
	case OPT_LABEL:
		return taskctl_parse_label(ctx, req, optarg);
	case OPT_ARRAY:
		return taskctl_parse_array(ctx, req, optarg);
	case OPT_NAME:
		if ((name = json_string(optarg)) == NULL)
			return taskctl_usage_error(ctx, "name is not valid UTF-8");
		json_object_set_new(req, "name", name);
		return -1;
	case OPT_BEFORE:
		if ((secs = parse_duration(optarg)) < 0)
			return taskctl_usage_error(ctx, "invalid duration '%s' (e.g. 90, 30s, 10m, "
			                           "2h, 7d)", optarg);
		json_object_set_new(req, "older_than", json_real(secs));
		return -1;
	default:
		return taskctl_common_option(ctx, argv, c);
	}
}

int
cmd_clean(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, OPT_STATE},
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"before", required_argument, NULL, OPT_BEFORE},
	    {"array", required_argument, NULL, OPT_ARRAY},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *req = taskd_request(TASKD_OP_CLEAN), *resp, *removed;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if ((rc = parse_option(ctx, argv, c, req)) != -1) {
			json_decref(req);
			return rc;
		}
	}
	if (optind < argc) {
		json_decref(req);
		return taskctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	}
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	removed = json_object_get(taskd_response_result(resp), "removed");
	if (!json_is_integer(removed))
		taskctl_bad_response("clean result without a count");
	if (ctx->json)
		taskctl_print_json(taskd_response_result(resp));
	else
		printf("removed %" JSON_INTEGER_FORMAT " job%s\n", json_integer_value(removed),
		       json_integer_value(removed) == 1 ? "" : "s");
	json_decref(resp);
	return TASKD_EXIT_OK;
}
