/*
 * taskctl events [--label K=V]... [--name N] [--state S]... [ID...]
 *
 * Subscribes and prints every job state change as it happens, until
 * interrupted or taskd stops (it says so: exit 0; a connection that ends
 * without that, e.g. taskd was killed, is lost: exit 3). Human
 * lines by default:
 *
 *	2026-11-27T09:20:01.123+00:00 17 queued -> running build
 *	2026-11-27T09:20:03.456+00:00 17 running -> failed exit=2 (why)
 *
 * or with --json the daemon's event objects, one per line (JSON Lines).
 * If taskd cuts the stream off because we fell behind, exit 3.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

enum { OPT_LABEL = 300, OPT_NAME, OPT_STATE };

static void
print_event(const json_t *ev)
{
	const char *state = json_string_value(json_object_get(ev, "state"));
	const char *prev = json_string_value(json_object_get(ev, "prev"));
	const char *name = json_string_value(json_object_get(ev, "name"));
	const char *error = json_string_value(json_object_get(ev, "error"));
	const json_t *code = json_object_get(ev, "exit_code");
	const json_t *sig = json_object_get(ev, "signal");
	struct fmt_linebuf lb;
	char buf[FMT_BUFSZ];

	fmt_line_begin(&lb);
	fprintf(lb.fp, "%s %" JSON_INTEGER_FORMAT " %s -> %s",
	        fmt_time(buf, json_object_get(ev, "at")), json_integer_value(json_object_get(ev, "id")), prev != NULL ? prev : "new",
	        state != NULL ? state : "?");
	if (name != NULL)
		fprintf(lb.fp, " %s", name);
	if (json_is_integer(code))
		fprintf(lb.fp, " exit=%" JSON_INTEGER_FORMAT, json_integer_value(code));
	if (json_is_integer(sig) && json_integer_value(sig) > 0)
		fprintf(lb.fp, " signal=%s", fmt_signal(buf, json_integer_value(sig)));
	if (error != NULL)
		fprintf(lb.fp, " (%s)", error);
	fmt_line_end(&lb, stdout); /* anyone's job name: no raw control characters */
}

static int
parse_args(struct taskctl *ctx, int argc, char **argv, json_t *req)
{
	static const struct option opts[] = {
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"state", required_argument, NULL, OPT_STATE},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *v, *ids;
	json_int_t id;
	int c, rc, i;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == OPT_LABEL) {
			if ((rc = taskctl_parse_label(ctx, req, optarg)) != -1)
				return rc;
		} else if (c == OPT_NAME) {
			if ((v = json_string(optarg)) == NULL)
				return taskctl_usage_error(ctx, "name is not valid UTF-8");
			json_object_set_new(req, "name", v);
		} else if (c == OPT_STATE) {
			if (!taskctl_valid_state(optarg))
				return taskctl_usage_error(ctx, "invalid state '%s'", optarg);
			if ((v = json_object_get(req, "states")) == NULL)
				json_object_set_new(req, "states", v = json_array());
			json_array_append_new(v, json_string(optarg));
		} else if ((rc = taskctl_common_option(ctx, argv, c)) != -1) {
			return rc;
		}
	}
	if (optind < argc)
		json_object_set_new(req, "ids", ids = json_array());
	for (i = optind; i < argc; i++) {
		if (taskctl_parse_id(ctx, argv[i], &id) == -1)
			return TASKD_EXIT_USAGE;
		json_array_append_new(json_object_get(req, "ids"), json_integer(id));
	}
	return -1;
}

int
cmd_events(struct taskctl *ctx, int argc, char **argv)
{
	json_t *req = taskd_request(TASKD_OP_SUBSCRIBE), *resp, *ev;
	const char *kind;
	int rc;

	if ((rc = parse_args(ctx, argc, argv, req)) != -1) {
		json_decref(req);
		return rc;
	}
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	json_decref(resp);
	for (;;) {
		if ((ev = taskd_recv(taskctl_client(ctx))) == NULL)
			taskctl_lost(errno); /* ended without a shutdown line: taskd died */
		kind = json_string_value(json_object_get(ev, "event"));
		if (kind != NULL && strcmp(kind, "shutdown") == 0) {
			json_decref(ev);
			return fflush(stdout) == EOF ? 1 : TASKD_EXIT_OK;
		}
		if (kind != NULL && strcmp(kind, "overflow") == 0) {
			json_decref(ev);
			fflush(stdout);
			taskctl_warnx("events: taskd cut the stream off: we fell too far behind");
			return TASKD_EXIT_UNREACHABLE;
		}
		if (kind != NULL && strcmp(kind, "job") == 0) {
			if (ctx->json) {
				json_dumpf(ev, stdout, JSON_COMPACT);
				putchar('\n');
			} else {
				print_event(ev);
			}
			if (fflush(stdout) == EOF) {
				json_decref(ev);
				return 1; /* e.g. the reader of our output went away */
			}
		}
		json_decref(ev);
	}
}
