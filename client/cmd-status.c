/*
 * taskctl status
 *
 *	taskd 0.1.0, pid 4242, up 1h02m03s
 *	storage:    ERROR: ... (only when the daemon lost its database)
 *	jobs:       queued 0  running 1  done 12 ...
 *	queue:      pending 0
 *	paused:     cpu false  io false
 *	threads:    threads 2  busy 1  idle 1  max 32  queued 0
 *	processes:  mode dynamic  min 1  max 8
 *	cgroups:    /sys/fs/cgroup/taskd.service/taskd-1a2b3c4d (controllers: memory, pids)
 *	memory:     budget 75% (17.3G)  held 1.6M by 1 running
 *	pressure:   cpu 12.5%  memory 0.0%  (brake at cpu off, memory 25%)
 *	sampling:   every 0.5s  reclassify after 3  reclassified 1
 *	quota:      uid 1000  job_bytes 5321  max_job_bytes 67108864 ...
 *
 * then tables of the named queues, the process pool's workers, the
 * handlers and the router, and the counters, each only when the daemon
 * reports any; in cluster mode a "cluster:" line (this node, its
 * connection) and a table of the nodes.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "taskctl.h"

#define LABEL_WIDTH 11

/* "label:  k v  k v" over the scalar members of obj, in the daemon's order. */
static void
print_scalars(const char *label, const json_t *obj)
{
	const char *key, *sep = "";
	struct fmt_linebuf lb;
	json_t *v;
	void *it;
	char *s;

	if (!json_is_object(obj))
		return;
	fmt_line_begin(&lb);
	fprintf(lb.fp, "%s:%*s", label, (int)(LABEL_WIDTH - strlen(label)), "");
	for (it = json_object_iter((json_t *)obj); it != NULL;
	     it = json_object_iter_next((json_t *)obj, it)) {
		key = json_object_iter_key(it);
		v = json_object_iter_value(it);
		if (json_is_object(v) || json_is_array(v))
			continue;
		s = fmt_scalar(v);
		fprintf(lb.fp, "%s%s %s", sep, key, s != NULL ? s : "?");
		free(s);
		sep = "  ";
	}
	fmt_line_end(&lb, stdout);
}

static void
print_header(const json_t *st)
{
	const json_t *version = json_object_get(st, "version");
	const json_t *pid = json_object_get(st, "pid");
	const json_t *uptime = json_object_get(st, "uptime");
	char buf[FMT_BUFSZ];

	fmt_line(stdout, "taskd %s, pid %" JSON_INTEGER_FORMAT ", up %s",
	         json_is_string(version) ? json_string_value(version) : "?",
	         json_integer_value(pid),
	         json_is_number(uptime) ? fmt_age(buf, json_number_value(uptime)) : "?");
}

/* The daemon lost its database (deleted under it): say so first. */
static void
print_storage(const json_t *error)
{
	if (json_is_string(error))
		printf("storage:%*sERROR: %s\n", LABEL_WIDTH - 7, "", json_string_value(error));
}

static void
print_workers(const json_t *workers)
{
	static const char *const headers[] = {
	    "PID", "STATE", "JOB", "JOBS_DONE", "RSS", "AGE", NULL,
	};
	double now = (double)time(NULL);
	const json_t *w, *rss;
	char buf[FMT_BUFSZ];
	struct table *t;
	size_t i;

	if (json_array_size(workers) == 0)
		return;
	t = table_new(headers, "rlrrrr");
	for (i = 0; i < json_array_size(workers); i++) {
		w = json_array_get(workers, i);
		rss = json_object_get(w, "rss_kb");
		table_cell_scalar(t, json_object_get(w, "pid"));
		table_cell_scalar(t, json_object_get(w, "state"));
		table_cell_scalar(t, json_object_get(w, "job"));
		table_cell_scalar(t, json_object_get(w, "jobs_done"));
		table_cell(t, "%s",
		           json_is_number(rss) ? fmt_size(buf, json_number_value(rss) * 1024)
		                               : "-");
		table_cell(t, "%s",
		           fmt_age(buf, now - fmt_unix_time(json_object_get(w, "started_at"))));
	}
	printf("\nworkers:\n");
	table_print(t, stdout);
	table_free(t);
}

/* The configuration's queues (and removed ones that still have jobs). */
static void
print_queues(const json_t *queues)
{
	static const char *const headers[] = {"QUEUE", "SLOTS", "RUNNING", "QUEUED", "STATE", NULL};
	const json_t *q;
	struct table *t;
	size_t i;

	if (json_array_size(queues) == 0)
		return;
	t = table_new(headers, "lrrrl");
	for (i = 0; i < json_array_size(queues); i++) {
		q = json_array_get(queues, i);
		table_cell_scalar(t, json_object_get(q, "name"));
		table_cell_scalar(t, json_object_get(q, "slots"));
		table_cell_scalar(t, json_object_get(q, "running"));
		table_cell_scalar(t, json_object_get(q, "queued"));
		table_cell(t, "%s", json_is_true(json_object_get(q, "removed"))
		                        ? "removed (its jobs wait)"
		                        : json_is_true(json_object_get(q, "paused")) ? "paused"
		                                                                    : "open");
	}
	printf("\nqueues:\n");
	table_print(t, stdout);
	table_free(t);
}

/* A percent threshold, "off" at 0. */
static const char *
threshold(char *buf, const json_t *v)
{
	if (!json_is_number(v) || json_number_value(v) <= 0)
		return "off";
	snprintf(buf, FMT_BUFSZ, "%g%%", json_number_value(v));
	return buf;
}

/* cgroups, memory admission, pressure and live sampling (status "resources"). */
static void
print_resources(const json_t *res)
{
	const json_t *cg = json_object_get(res, "cgroups"), *mem = json_object_get(res, "memory");
	const json_t *pr = json_object_get(res, "pressure"), *sa = json_object_get(res, "sampling");
	const json_t *ctl = json_object_get(cg, "controllers");
	char a[FMT_BUFSZ], b[FMT_BUFSZ];
	size_t i;

	if (!json_is_object(res))
		return;
	printf("%-*s", LABEL_WIDTH + 1, "cgroups:");
	if (json_is_true(json_object_get(cg, "enabled"))) {
		printf("%s (controllers: ", json_string_value(json_object_get(cg, "path")));
		for (i = 0; i < json_array_size(ctl); i++)
			printf("%s%s", i > 0 ? ", " : "", json_string_value(json_array_get(ctl, i)));
		printf("%s)\n", json_array_size(ctl) == 0 ? "none" : "");
	} else {
		printf("off (%s): commands are measured through /proc\n",
		       json_is_string(json_object_get(cg, "reason"))
			       ? json_string_value(json_object_get(cg, "reason")) : "?");
	}
	if (json_integer_value(json_object_get(mem, "budget_kb")) > 0)
		printf("%-*sbudget %s (%s)  held %s by %" JSON_INTEGER_FORMAT " running\n",
		       LABEL_WIDTH + 1, "memory:", json_string_value(json_object_get(mem, "budget")),
		       fmt_size(a, (double)json_integer_value(json_object_get(mem, "budget_kb")) * 1024),
		       fmt_size(b, (double)json_integer_value(json_object_get(mem, "held_kb")) * 1024),
		       json_integer_value(json_object_get(mem, "running")));
	else
		printf("%-*sno budget (limits.memory_budget is 0)\n", LABEL_WIDTH + 1, "memory:");
	printf("%-*scpu %.1f%%  memory %.1f%%  (brake at cpu %s, memory %s)\n", LABEL_WIDTH + 1,
	       "pressure:", json_number_value(json_object_get(pr, "cpu")),
	       json_number_value(json_object_get(pr, "memory")),
	       threshold(a, json_object_get(pr, "cpu_limit")),
	       threshold(b, json_object_get(pr, "memory_limit")));
	if (json_number_value(json_object_get(sa, "interval")) > 0)
		printf("%-*severy %gs  reclassify after %" JSON_INTEGER_FORMAT "  reclassified %"
		       JSON_INTEGER_FORMAT "\n", LABEL_WIDTH + 1, "sampling:",
		       json_number_value(json_object_get(sa, "interval")),
		       json_integer_value(json_object_get(sa, "reclassify_after")),
		       json_integer_value(json_object_get(sa, "reclassified")));
	else
		printf("%-*soff (router.sample_interval is 0)\n", LABEL_WIDTH + 1, "sampling:");
}

static void
print_router(const json_t *router)
{
	static const char *const headers[] = {"KEY", "SAMPLES", "RATIO", "PEAK", "CLASS", NULL};
	const json_t *r, *ratio, *peak;
	char buf[FMT_BUFSZ];
	struct table *t;
	size_t i;

	if (json_array_size(router) == 0)
		return;
	t = table_new(headers, "lrrrl");
	for (i = 0; i < json_array_size(router); i++) {
		r = json_array_get(router, i);
		ratio = json_object_get(r, "cpu_ratio");
		table_cell_scalar(t, json_object_get(r, "key"));
		table_cell_scalar(t, json_object_get(r, "samples"));
		if (json_is_number(ratio))
			table_cell(t, "%.2f", json_number_value(ratio));
		else
			table_cell_scalar(t, ratio);
		peak = json_object_get(r, "peak_kb");
		table_cell(t, "%s", json_is_integer(peak)
		                    ? fmt_size(buf, (double)json_integer_value(peak) * 1024) : "-");
		table_cell_scalar(t, json_object_get(r, "class"));
	}
	printf("\nrouter:\n");
	table_print(t, stdout);
	table_free(t);
}

/* "1/2 +3": running of slots, and queued when any. */
static void
slots_cell(struct table *t, const json_t *pool)
{
	json_int_t queued = json_integer_value(json_object_get(pool, "queued"));

	if (!json_is_object(pool)) {
		table_cell(t, "-");
		return;
	}
	if (queued > 0)
		table_cell(t, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " +%" JSON_INTEGER_FORMAT,
		           json_integer_value(json_object_get(pool, "running")),
		           json_integer_value(json_object_get(pool, "slots")), queued);
	else
		table_cell(t, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT,
		           json_integer_value(json_object_get(pool, "running")),
		           json_integer_value(json_object_get(pool, "slots")));
}

/* Cluster mode: this node and its connection, then every node's last heartbeat. */
static void
print_cluster(const json_t *cluster)
{
	static const char *const headers[] = {
	    "NODE", "HOST", "STATE", "CPU", "IO", "HELD", "LOAD", "SEEN", NULL,
	};
	const json_t *nodes = json_object_get(cluster, "nodes"), *n, *load;
	char buf[FMT_BUFSZ];
	struct table *t;
	size_t i;

	if (!json_is_object(cluster))
		return;
	print_scalars("cluster", cluster);
	if (json_array_size(nodes) == 0)
		return;
	t = table_new(headers, "lllrrrrr");
	for (i = 0; i < json_array_size(nodes); i++) {
		n = json_array_get(nodes, i);
		load = json_array_get(json_object_get(n, "load"), 0);
		table_cell_scalar(t, json_object_get(n, "node"));
		table_cell_scalar(t, json_object_get(n, "host"));
		table_cell_scalar(t, json_object_get(n, "state"));
		slots_cell(t, json_object_get(n, "cpu"));
		slots_cell(t, json_object_get(n, "io"));
		table_cell_scalar(t, json_object_get(n, "held"));
		if (json_is_number(load))
			table_cell(t, "%.2f", json_number_value(load));
		else
			table_cell(t, "-");
		table_cell(t, "%s", fmt_age(buf, json_number_value(json_object_get(n, "seen"))));
	}
	printf("\nnodes:\n");
	table_print(t, stdout);
	table_free(t);
}

static void
print_counters(const json_t *counters)
{
	const char *key;
	size_t width;
	json_t *v;
	void *it;
	char *s;

	if (json_object_size(counters) == 0)
		return;
	width = fmt_key_width(counters);
	printf("\ncounters:\n");
	for (it = json_object_iter((json_t *)counters); it != NULL;
	     it = json_object_iter_next((json_t *)counters, it)) {
		key = json_object_iter_key(it);
		v = json_object_iter_value(it);
		s = fmt_scalar(v);
		fmt_line(stdout, "  %-*s  %s", (int)width, key, s != NULL ? s : "?");
		free(s);
	}
}

static void
print_handler_workers(const json_t *h)
{
	static const char *const headers[] = {
	    "PID", "STATE", "MODE", "JOBS", "JOBS_DONE", "RSS", "AGE", NULL,
	};
	const json_t *workers = json_object_get(h, "workers"), *w, *rss, *jobs;
	char buf[FMT_BUFSZ];
	struct table *t;
	size_t i;

	if (json_array_size(workers) == 0)
		return;
	t = table_new(headers, "rllrrrr");
	for (i = 0; i < json_array_size(workers); i++) {
		w = json_array_get(workers, i);
		rss = json_object_get(w, "rss_kb");
		jobs = json_object_get(w, "jobs");
		table_cell_scalar(t, json_object_get(w, "pid"));
		table_cell_scalar(t, json_object_get(w, "state"));
		table_cell_scalar(t, json_object_get(w, "mode"));
		if (json_array_size(jobs) == 1)
			table_cell_scalar(t, json_array_get(jobs, 0));
		else if (json_array_size(jobs) == 0)
			table_cell(t, "-");
		else
			table_cell(t, "%zu jobs", json_array_size(jobs));
		table_cell_scalar(t, json_object_get(w, "jobs_done"));
		table_cell(t, "%s",
		           json_is_number(rss) ? fmt_size(buf, json_number_value(rss) * 1024)
		                               : "-");
		table_cell(t, "%s", fmt_age(buf, json_number_value(json_object_get(w, "age"))));
	}
	printf("\nhandler %s workers:\n", json_string_value(json_object_get(h, "name")));
	table_print(t, stdout);
	table_free(t);
}

/* Each handler: sizes, counters, why it is in backoff; then its workers. */
static void
print_handlers(const json_t *handlers)
{
	static const char *const headers[] = {
	    "NAME", "CLASS", "WORKERS", "QUEUED", "DONE", "FAILED", "LOST", "TIMEOUT",
	    "CANCELLED", "CRASHES", "BACKOFF", "LAST_ERROR", NULL,
	};
	const json_t *h, *n, *err;
	char buf[FMT_BUFSZ];
	struct table *t;
	size_t i;

	if (json_array_size(handlers) == 0)
		return;
	t = table_new(headers, "llrrrrrrrrrl");
	for (i = 0; i < json_array_size(handlers); i++) {
		h = json_array_get(handlers, i);
		n = json_object_get(h, "counters");
		err = json_object_get(h, "last_error");
		table_cell_scalar(t, json_object_get(h, "name"));
		table_cell_scalar(t, json_object_get(h, "class"));
		table_cell(t, "%zu/%" JSON_INTEGER_FORMAT,
		           json_array_size(json_object_get(h, "workers")),
		           json_integer_value(json_object_get(h, "max")));
		table_cell_scalar(t, json_object_get(h, "queued"));
		table_cell_scalar(t, json_object_get(n, "done"));
		table_cell_scalar(t, json_object_get(n, "failed"));
		table_cell_scalar(t, json_object_get(n, "lost"));
		table_cell_scalar(t, json_object_get(n, "timeout"));
		table_cell_scalar(t, json_object_get(n, "cancelled"));
		table_cell_scalar(t, json_object_get(n, "crashes"));
		table_cell(t, "%s", json_number_value(json_object_get(h, "backoff")) > 0
		                        ? fmt_duration(buf, json_number_value(json_object_get(h, "backoff")))
		                        : "-");
		table_cell(t, "%s", json_is_string(err) ? json_string_value(err) : "-");
	}
	printf("\nhandlers:\n");
	table_print(t, stdout);
	table_free(t);
	for (i = 0; i < json_array_size(handlers); i++)
		print_handler_workers(json_array_get(handlers, i));
}

/* "hash (auto), ..." : a module's types with their classes. */
static char *
module_types(const json_t *types)
{
	const json_t *t;
	char *s = NULL, *n;
	size_t i;

	json_array_foreach(types, i, t) {
		n = fmt_alloc("%s%s%s (%s)", s != NULL ? s : "", s != NULL ? ", " : "",
			      json_string_value(json_object_get(t, "name")),
			      json_string_value(json_object_get(t, "class")));
		if (n == NULL)
			taskctl_lost(ENOMEM);
		free(s);
		s = n;
	}
	return s;
}

/* Each module (the built-in one first): its version, its types, its file. */
static void
print_modules(const json_t *modules)
{
	static const char *const headers[] = {"MODULE", "VERSION", "PATH", "TYPES", NULL};
	const json_t *m, *path, *version;
	struct table *t;
	char *types;
	size_t i;

	if (json_array_size(modules) == 0)
		return;
	t = table_new(headers, "llll");
	json_array_foreach(modules, i, m) {
		path = json_object_get(m, "path");
		version = json_object_get(m, "version");
		table_cell_scalar(t, json_object_get(m, "module"));
		table_cell(t, "%s", json_is_string(version) ? json_string_value(version) : "-");
		table_cell(t, "%s", json_is_string(path) ? json_string_value(path) : "(built in)");
		types = module_types(json_object_get(m, "types"));
		table_cell(t, "%s", types != NULL ? types : "-");
		free(types);
	}
	printf("\nmodules:\n");
	table_print(t, stdout);
	table_free(t);
}

static void
print_status(const json_t *st)
{
	const json_t *pp = json_object_get(st, "process_pool");

	print_header(st);
	print_storage(json_object_get(st, "storage_error"));
	print_scalars("jobs", json_object_get(st, "jobs"));
	print_scalars("queue", json_object_get(st, "queue"));
	print_scalars("paused", json_object_get(st, "paused"));
	print_scalars("threads", json_object_get(st, "thread_pool"));
	print_scalars("processes", pp);
	print_queues(json_object_get(st, "queues"));
	print_cluster(json_object_get(st, "cluster"));
	print_resources(json_object_get(st, "resources"));
	print_scalars("quota", json_object_get(st, "quota"));
	print_workers(json_object_get(pp, "workers"));
	print_handlers(json_object_get(st, "handlers"));
	print_modules(json_object_get(st, "modules"));
	print_router(json_object_get(st, "router"));
	print_counters(json_object_get(st, "counters"));
}

int
cmd_status(struct taskctl *ctx, int argc, char **argv)
{
	static const char *const pages[] = {"process_pool.workers", "router", "handlers[].workers",
	                                    NULL};
	json_t *resp;
	int rc;

	if ((rc = taskctl_no_args(ctx, argc, argv)) != -1)
		return rc;
	resp = taskctl_call_pages(ctx, taskd_request(TASKD_OP_STATUS), NULL, pages);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, NULL, resp);
		json_decref(resp);
		return rc;
	}
	if (!json_is_object(taskd_response_result(resp)))
		taskctl_bad_response("status result is not an object");
	if (ctx->json)
		taskctl_print_json(taskd_response_result(resp));
	else
		print_status(taskd_response_result(resp));
	json_decref(resp);
	return TASKD_EXIT_OK;
}
