/*
 * taskctl list [--state S] [--label K=V]... [--name N] [--array A] [--limit N]
 *
 * One aligned row per job: ID STATE TYPE CLASS POOL [NODE] PRI EXIT WALL
 * [LABELS] COMMAND, the command being the job's name if set, else its argv
 * shell-quoted; NODE (the node that runs or ran it) in cluster mode, when
 * the jobs have one; LABELS ("k=v,k=v") only when a listed job has labels.
 * A queued job's STATE says why it waits: "queued (memory)".
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

enum { OPT_STATE = 300, OPT_LIMIT, OPT_LABEL, OPT_NAME, OPT_ARRAY };

#define COMMAND_WIDTH 60
#define LABELS_WIDTH 40

static void
cell_exit(struct table *t, const json_t *job)
{
	const json_t *sig = json_object_get(job, "signal");
	char buf[FMT_BUFSZ];

	if (json_is_integer(sig) && json_integer_value(sig) > 0)
		table_cell(t, "%s", fmt_signal(buf, json_integer_value(sig)));
	else
		table_cell_scalar(t, json_object_get(job, "exit_code"));
}

static void
cell_command(struct table *t, const json_t *job)
{
	const char *name = json_string_value(json_object_get(job, "name"));
	const char *type = json_string_value(json_object_get(job, "type"));
	char *cmd, *args;

	if (name != NULL) {
		cmd = strdup(name);
	} else if (type == NULL || strcmp(type, "exec") == 0) {
		cmd = fmt_argv(json_object_get(job, "argv"));
	} else {
		/* A built-in: its type, then its arguments. */
		args = fmt_argv(json_object_get(job, "argv"));
		cmd = fmt_alloc("%s%s%s", type, args && *args ? " " : "", args ? args : "");
		free(args);
	}
	if (cmd == NULL)
		cmd = strdup("?");
	fmt_truncate(cmd, COMMAND_WIDTH);
	table_cell(t, "%s", cmd);
	free(cmd);
}

/* "k=v,k=v" (the daemon sends them sorted by key). */
static void
cell_labels(struct table *t, const json_t *job)
{
	const json_t *labels = json_object_get(job, "labels");
	char *buf = NULL, *cell;
	const char *key, *sep = "";
	size_t len = 0;
	json_t *v;
	FILE *fp;

	if (json_object_size(labels) == 0 || (fp = open_memstream(&buf, &len)) == NULL) {
		table_cell(t, "-");
		return;
	}
	json_object_foreach((json_t *)labels, key, v) {
		fprintf(fp, "%s%s=%s", sep, key, json_is_string(v) ? json_string_value(v) : "?");
		sep = ",";
	}
	fclose(fp);
	cell = buf;
	fmt_truncate(cell, LABELS_WIDTH);
	table_cell(t, "%s", cell);
	free(buf);
}

/* "queued (slots)": a state that does not say why by itself gets its wait reason. */
static void
cell_state(struct table *t, const json_t *job)
{
	const char *st = json_string_value(json_object_get(job, "state"));
	const char *why = json_string_value(json_object_get(job, "wait_reason"));

	if (st != NULL && why != NULL && strcmp(st, TASKD_STATE_QUEUED) == 0)
		table_cell(t, "%s (%s)", st, why);
	else
		table_cell_scalar(t, json_object_get(job, "state"));
}

static void
add_row(struct table *t, const json_t *job, int node, int labels)
{
	const json_t *type = json_object_get(job, "type");
	const json_t *wall = json_object_get(job, "wall");
	char buf[FMT_BUFSZ];

	table_cell_scalar(t, json_object_get(job, "id"));
	cell_state(t, job);
	table_cell(t, "%s", json_is_string(type) ? json_string_value(type) : "exec");
	table_cell_scalar(t, json_object_get(job, "class"));
	table_cell_scalar(t, json_object_get(job, "pool"));
	if (node)
		table_cell_scalar(t, json_object_get(job, "node"));
	table_cell_scalar(t, json_object_get(job, "priority"));
	cell_exit(t, job);
	table_cell(t, "%s",
	           json_is_number(wall) ? fmt_duration(buf, json_number_value(wall)) : "-");
	if (labels)
		cell_labels(t, job);
	cell_command(t, job);
}

/* One more column: its header and its alignment ('l' or 'r'). */
static void
column(const char **headers, char *align, size_t *n, const char *header, char a)
{
	headers[*n] = header;
	align[(*n)++] = a;
}

static void
print_table(const json_t *jobs)
{
	const char *headers[12];
	char align[12];
	const json_t *job;
	struct table *t;
	size_t i, n = 0;
	int labels = 0, node = 0;

	for (i = 0; i < json_array_size(jobs); i++) {
		job = json_array_get(jobs, i);
		if (json_object_size(json_object_get(job, "labels")) > 0)
			labels = 1;
		if (json_object_get(job, "node") != NULL)
			node = 1;
	}
	column(headers, align, &n, "ID", 'r');
	column(headers, align, &n, "STATE", 'l');
	column(headers, align, &n, "TYPE", 'l');
	column(headers, align, &n, "CLASS", 'l');
	column(headers, align, &n, "POOL", 'l');
	if (node)
		column(headers, align, &n, "NODE", 'l');
	column(headers, align, &n, "PRI", 'r');
	column(headers, align, &n, "EXIT", 'r');
	column(headers, align, &n, "WALL", 'r');
	if (labels)
		column(headers, align, &n, "LABELS", 'l');
	column(headers, align, &n, "COMMAND", 'l');
	headers[n] = NULL;
	align[n] = '\0';
	t = table_new(headers, align);
	for (i = 0; i < json_array_size(jobs); i++)
		add_row(t, json_array_get(jobs, i), node, labels);
	table_print(t, stdout);
	table_free(t);
}

static int
parse_args(struct taskctl *ctx, int argc, char **argv, json_t *req)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, OPT_STATE},
	    {"limit", required_argument, NULL, OPT_LIMIT},
	    {"label", required_argument, NULL, OPT_LABEL},
	    {"name", required_argument, NULL, OPT_NAME},
	    {"array", required_argument, NULL, OPT_ARRAY},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *name;
	long long limit;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (c == OPT_LABEL) {
			if ((rc = taskctl_parse_label(ctx, req, optarg)) != -1)
				return rc;
			continue;
		}
		if (c == OPT_NAME) {
			if ((name = json_string(optarg)) == NULL)
				return taskctl_usage_error(ctx, "name is not valid UTF-8");
			json_object_set_new(req, "name", name);
			continue;
		}
		if (c == OPT_ARRAY) {
			if ((rc = taskctl_parse_array(ctx, req, optarg)) != -1)
				return rc;
			continue;
		}
		if (c == OPT_STATE && !taskctl_valid_state(optarg))
			return taskctl_usage_error(ctx, "invalid state '%s'", optarg);
		if (c == OPT_STATE) {
			json_object_set_new(req, "state", json_string(optarg));
			continue;
		}
		if (c == OPT_LIMIT && taskctl_parse_int(optarg, 0, INT_MAX, &limit) == -1)
			return taskctl_usage_error(ctx, "invalid limit '%s' (an integer >= 0)",
			                           optarg);
		if (c == OPT_LIMIT) {
			json_object_set_new(req, "limit", json_integer(limit));
			continue;
		}
		if ((rc = taskctl_common_option(ctx, argv, c)) != -1)
			return rc;
	}
	if (optind < argc)
		return taskctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
	return -1;
}

int
cmd_list(struct taskctl *ctx, int argc, char **argv)
{
	static const char *const pages[] = {"jobs", NULL};
	json_t *req = taskd_request(TASKD_OP_LIST), *resp, *jobs;
	int rc;

	if ((rc = parse_args(ctx, argc, argv, req)) != -1) {
		json_decref(req);
		return rc;
	}
	resp = taskctl_call_pages(ctx, req, NULL, pages);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	jobs = json_object_get(taskd_response_result(resp), "jobs");
	if (!json_is_array(jobs))
		taskctl_bad_response("list result without jobs");
	if (ctx->json)
		taskctl_print_json(taskd_response_result(resp));
	else
		print_table(jobs);
	json_decref(resp);
	return TASKD_EXIT_OK;
}
