/*
 * taskctl show ID | --array A
 *
 * Every field of the job object (or, with --array, of the array: its jobs'
 * counts by state under "states") as an aligned "key: value" line, in the
 * daemon's order: times as local ISO 8601, CPU and wall times in seconds
 * with three decimals, sizes with a human form alongside. Names, labels and
 * argv are shown with their control characters as '?' (fmt_line).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

static int
ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* {"uid":1000,"gid":1000} → "uid=1000 gid=1000"; malloc'd. */
static char *
object_pairs(const json_t *obj)
{
	char *buf = NULL, *v;
	const char *key, *sep = "";
	size_t len = 0;
	json_t *val;
	void *it;
	FILE *fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	for (it = json_object_iter((json_t *)obj); it != NULL;
	     it = json_object_iter_next((json_t *)obj, it)) {
		key = json_object_iter_key(it);
		val = json_object_iter_value(it);
		v = fmt_scalar(val);
		fprintf(fp, "%s%s=%s", sep, key, v != NULL ? v : "?");
		free(v);
		sep = " ";
	}
	fclose(fp);
	return buf;
}

static char *
with_size(const json_t *v, double unit)
{
	json_int_t n = json_integer_value(v);
	char buf[FMT_BUFSZ];

	if (n * unit < 1024)
		return fmt_scalar(v);
	return fmt_alloc("%" JSON_INTEGER_FORMAT " (%s)", n, fmt_size(buf, (double)n * unit));
}

static char *
format_number(const char *key, const json_t *v)
{
	double x = json_number_value(v);
	char buf[FMT_BUFSZ];

	if (strcmp(key, "timeout") == 0)
		return x == 0 ? strdup("none") : fmt_alloc("%gs", x);
	if (strcmp(key, "retry_delay") == 0)
		return fmt_alloc("%gs", x);
	if (strcmp(key, "suspended_for") == 0)
		return fmt_alloc("%.3fs", x);
	if (strcmp(key, "wall") == 0 || strncmp(key, "cpu_", 4) == 0)
		return fmt_alloc("%.3fs", x);
	if (strcmp(key, "signal") == 0 && x > 0)
		return fmt_alloc("%.0f (%s)", x, fmt_signal(buf, (long long)x));
	if (json_is_integer(v) && ends_with(key, "_kb"))
		return with_size(v, 1024);
	if (json_is_integer(v) && ends_with(key, "_bytes"))
		return with_size(v, 1);
	return fmt_scalar(v);
}

/* [3,5] → "3, 5"; [] → "-". Any scalars. */
static char *
list_text(const json_t *arr)
{
	char *buf = NULL, *v;
	size_t len = 0, i;
	FILE *fp;

	if (json_array_size(arr) == 0)
		return strdup("-");
	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	for (i = 0; i < json_array_size(arr); i++) {
		v = fmt_scalar(json_array_get(arr, i));
		fprintf(fp, "%s%s", i > 0 ? ", " : "", v != NULL ? v : "?");
		free(v);
	}
	fclose(fp);
	return buf;
}

/* Earlier attempts: "#1 failed exit=2; #2 timeout"; none: "-". */
static char *
attempts_text(const json_t *arr)
{
	const json_t *a, *code, *sig, *st;
	char *buf = NULL, sbuf[FMT_BUFSZ];
	size_t len = 0, i;
	FILE *fp;

	if (json_array_size(arr) == 0)
		return strdup("-");
	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	for (i = 0; i < json_array_size(arr); i++) {
		a = json_array_get(arr, i);
		st = json_object_get(a, "state");
		code = json_object_get(a, "exit_code");
		sig = json_object_get(a, "signal");
		fprintf(fp, "%s#%" JSON_INTEGER_FORMAT " %s", i > 0 ? "; " : "",
		        json_integer_value(json_object_get(a, "attempt")),
		        json_is_string(st) ? json_string_value(st) : "?");
		if (json_is_integer(code))
			fprintf(fp, " exit=%" JSON_INTEGER_FORMAT, json_integer_value(code));
		if (json_is_integer(sig))
			fprintf(fp, " signal=%s", fmt_signal(sbuf, json_integer_value(sig)));
	}
	fclose(fp);
	return buf;
}

/*
 * "cpu by key "python3 x.py" (finest of 3, 4 samples, cpu ratio 0.97);
 * counts as cpu; reclassified at ..." — or "io by default (no key has a
 * sample)"; then the keys, finest first.
 */
static char *
route_text(const json_t *r)
{
	const char *by = json_string_value(json_object_get(r, "by"));
	const json_t *keys = json_object_get(r, "keys"), *level = json_object_get(r, "level");
	const json_t *ratio = json_object_get(r, "cpu_ratio"), *counts = json_object_get(r, "counts_as");
	const json_t *re = json_object_get(r, "reclassified_at");
	char *buf = NULL, tbuf[FMT_BUFSZ];
	size_t len = 0, i;
	FILE *fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	fprintf(fp, "%s", json_string_value(json_object_get(r, "class")) != NULL
				  ? json_string_value(json_object_get(r, "class")) : "?");
	if (by != NULL && strcmp(by, "key") == 0 && json_is_integer(level))
		fprintf(fp, " by key \"%s\" (level %" JSON_INTEGER_FORMAT " of %zu, %"
			    JSON_INTEGER_FORMAT " sample%s, cpu ratio %.2f)",
			json_string_value(json_object_get(r, "key")), json_integer_value(level) + 1,
			json_array_size(keys), json_integer_value(json_object_get(r, "samples")),
			json_integer_value(json_object_get(r, "samples")) == 1 ? "" : "s",
			json_number_value(ratio));
	else if (by != NULL && strcmp(by, "default") == 0)
		fprintf(fp, " by default (no key has a sample yet)");
	else if (by != NULL && strcmp(by, "class") == 0)
		fprintf(fp, " as asked (--class)");
	else if (by != NULL)
		fprintf(fp, " (%s)", by);
	if (json_is_string(counts))
		fprintf(fp, "; counts as %s", json_string_value(counts));
	if (!json_is_null(re) && re != NULL)
		fprintf(fp, "; reclassified at %s", fmt_time(tbuf, re));
	fprintf(fp, "; keys:");
	for (i = 0; i < json_array_size(keys); i++)
		fprintf(fp, "%s \"%s\"", i > 0 ? "," : "",
			json_string_value(json_array_get(keys, i)));
	fclose(fp);
	return buf;
}

/* "cgroup, 10 samples, cpu ratio 1.00, rss 1.6M, peak 1.6M". */
static char *
live_text(const json_t *l)
{
	const json_t *src = json_object_get(l, "source"), *ratio = json_object_get(l, "cpu_ratio");
	const json_t *rss = json_object_get(l, "rss_kb"), *peak = json_object_get(l, "peak_kb");
	char *buf = NULL, a[FMT_BUFSZ];
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	fprintf(fp, "%s, %" JSON_INTEGER_FORMAT " samples",
		json_is_string(src) ? json_string_value(src) : "not sampled yet",
		json_integer_value(json_object_get(l, "samples")));
	if (json_is_number(ratio))
		fprintf(fp, ", cpu ratio %.2f", json_number_value(ratio));
	if (json_is_integer(rss))
		fprintf(fp, ", rss %s", fmt_size(a, (double)json_integer_value(rss) * 1024));
	if (json_is_integer(peak))
		fprintf(fp, ", peak %s", fmt_size(a, (double)json_integer_value(peak) * 1024));
	fclose(fp);
	return buf;
}

static char *
format_value(const char *key, const json_t *v)
{
	char buf[FMT_BUFSZ];

	if (json_is_null(v))
		return strdup("-");
	if (json_is_object(v) && strcmp(key, "route") == 0)
		return route_text(v);
	if (json_is_object(v) && strcmp(key, "live") == 0)
		return live_text(v);
	if (json_is_integer(v) && strcmp(key, "memory") == 0)
		return with_size(v, 1);
	if (ends_with(key, "_at"))
		return strdup(fmt_time(buf, v));
	if (json_is_number(v))
		return format_number(key, v);
	if (json_is_array(v) && strcmp(key, "argv") == 0)
		return fmt_argv(v);
	if (json_is_array(v) && strcmp(key, "attempts") == 0)
		return attempts_text(v);
	if (json_is_array(v))
		return list_text(v);
	if (json_is_object(v) && strcmp(key, "env") == 0)
		return fmt_alloc("%zu variables", json_object_size(v));
	if (json_is_object(v))
		return object_pairs(v);
	return fmt_scalar(v);
}

static void
print_job(const json_t *job)
{
	const char *key;
	size_t width;
	json_t *v;
	void *it;
	char *s;

	width = fmt_key_width(job);
	for (it = json_object_iter((json_t *)job); it != NULL;
	     it = json_object_iter_next((json_t *)job, it)) {
		key = json_object_iter_key(it);
		v = json_object_iter_value(it);
		s = format_value(key, v);
		fmt_line(stdout, "%s:%*s %s", key, (int)(width - strlen(key)), "",
		         s != NULL ? s : "?");
		free(s);
	}
}

enum { OPT_ARRAY = 300 };

int
cmd_show(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"array", required_argument, NULL, OPT_ARRAY},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	json_t *req = taskd_request(TASKD_OP_SHOW), *resp, *job;
	json_int_t id;
	int c, rc;

	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		rc = c == OPT_ARRAY ? taskctl_parse_array(ctx, req, optarg)
				    : taskctl_common_option(ctx, argv, c);
		if (rc != -1) {
			json_decref(req);
			return rc;
		}
	}
	rc = -1;
	if (json_object_get(req, "array") != NULL && optind < argc)
		rc = taskctl_usage_error(ctx, "give a job id or --array, not both");
	else if (json_object_get(req, "array") == NULL && optind >= argc)
		rc = taskctl_usage_error(ctx, "missing job id");
	else if (optind + 1 < argc)
		rc = taskctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	else if (optind < argc && taskctl_parse_id(ctx, argv[optind], &id) == -1)
		rc = TASKD_EXIT_USAGE;
	if (rc != -1) {
		json_decref(req);
		return rc;
	}
	if (optind < argc)
		json_object_set_new(req, "job", json_integer(id));
	resp = taskctl_call(ctx, req);
	if (!taskd_response_ok(resp)) {
		rc = taskctl_rejected(ctx, optind < argc ? argv[optind] : NULL, resp);
		json_decref(resp);
		return rc;
	}
	job = taskd_response_result(resp);
	if (!json_is_object(job))
		taskctl_bad_response("show result is not a job");
	if (ctx->json)
		taskctl_print_json(job);
	else
		print_job(job);
	json_decref(resp);
	return TASKD_EXIT_OK;
}
