/*
 * Unit tests for daemon/metrics.c: Accept negotiation, histograms, number
 * and label formatting, and the two text formats written line by line
 * (Prometheus 0.0.4 and OpenMetrics 1.0.0: family names, suffixes, # UNIT,
 * # EOF, escaping, cumulative buckets).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "metrics.h"
#include "xmalloc.h"

static void
test_negotiate(void **state)
{
	(void)state;
	assert_int_equal(metrics_negotiate(NULL), METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate(""), METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate("*/*"), METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate("text/plain"), METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate("text/plain;version=0.0.4"), METRICS_PROMETHEUS);
	/* What Prometheus 2.x sends. */
	assert_int_equal(metrics_negotiate("application/openmetrics-text;version=1.0.0,"
					   "application/openmetrics-text;version=0.0.1;q=0.75,"
					   "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
			 METRICS_OPENMETRICS);
	assert_int_equal(metrics_negotiate("application/openmetrics-text"), METRICS_OPENMETRICS);
	assert_int_equal(metrics_negotiate("Application/OpenMetrics-Text; Version=\"1.0.0\""),
			 METRICS_OPENMETRICS);
	/* Preference by q; a tie goes to OpenMetrics. */
	assert_int_equal(metrics_negotiate("application/openmetrics-text;q=0.3, text/plain;q=0.9"),
			 METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate("text/plain;q=0.5, application/openmetrics-text;q=0.5"),
			 METRICS_OPENMETRICS);
	/* Versions we do not write, q=0, malformed q: not chosen. */
	assert_int_equal(metrics_negotiate("application/openmetrics-text;version=2.0.0"),
			 METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate("application/openmetrics-text;q=0"), METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate("application/openmetrics-text;q=abc"),
			 METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate("application/openmetrics-text;q=2"), METRICS_PROMETHEUS);
	assert_int_equal(metrics_negotiate(",,;;,=,application/json"), METRICS_PROMETHEUS);
	assert_string_equal(metrics_content_type(METRICS_PROMETHEUS),
			    "text/plain; version=0.0.4; charset=utf-8");
	assert_string_equal(metrics_content_type(METRICS_OPENMETRICS),
			    "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

static void
test_histogram(void **state)
{
	static const double b[] = { 0.1, 1, 10 };
	struct histogram h;

	(void)state;
	histogram_init(&h, b, 3);
	histogram_observe(&h, 0.05);
	histogram_observe(&h, 0.1); /* le is inclusive */
	histogram_observe(&h, 0.5);
	histogram_observe(&h, 10);
	histogram_observe(&h, 11);
	histogram_observe(&h, NAN);
	assert_int_equal(h.counts[0], 2);
	assert_int_equal(h.counts[1], 1);
	assert_int_equal(h.counts[2], 1);
	assert_int_equal(h.counts[3], 1);
	assert_int_equal(h.count, 5);
	assert_true(fabs(h.sum - 21.65) < 1e-9);
}

static void
test_numbers(void **state)
{
	char buf[40];

	(void)state;
	metrics_format_number(buf, sizeof buf, 0);
	assert_string_equal(buf, "0");
	metrics_format_number(buf, sizeof buf, 0.1);
	assert_string_equal(buf, "0.1");
	metrics_format_number(buf, sizeof buf, 1234567.5);
	assert_string_equal(buf, "1234567.5");
	metrics_format_number(buf, sizeof buf, 1.0 / 3);
	assert_true(strtod(buf, NULL) == 1.0 / 3);
	metrics_format_number(buf, sizeof buf, INFINITY);
	assert_string_equal(buf, "+Inf");
	metrics_format_number(buf, sizeof buf, -INFINITY);
	assert_string_equal(buf, "-Inf");
	metrics_format_number(buf, sizeof buf, NAN);
	assert_string_equal(buf, "NaN");
}

static void
test_labels(void **state)
{
	char buf[64], small[12];

	(void)state;
	assert_string_equal(metrics_labels(buf, sizeof buf, "a", "1", "b", "x\"y\\z\nw", NULL),
			    "a=\"1\",b=\"x\\\"y\\\\z\\nw\"");
	assert_string_equal(metrics_labels(buf, sizeof buf, NULL), "");
	/* A pair that does not fit is left out whole: the text stays well-formed. */
	assert_string_equal(metrics_labels(small, sizeof small, "a", "1", "bb", "22222", NULL),
			    "a=\"1\"");
}

static char *
render(enum metrics_format f)
{
	static const double b[] = { 0.5, 2 };
	struct evbuffer *out = evbuffer_new();
	struct metrics_out m;
	struct histogram h;
	char labels[64], *text;
	size_t n;

	histogram_init(&h, b, 2);
	histogram_observe(&h, 0.25);
	histogram_observe(&h, 1);
	histogram_observe(&h, 3);
	metrics_open(&m, out, f);
	metrics_family(&m, "t_requests", METRIC_COUNTER, NULL, "requests \"handled\"\\ok");
	metrics_sample_uint(&m, NULL, 7);
	metrics_family(&m, "t_jobs", METRIC_GAUGE, NULL, "jobs by state");
	metrics_sample(&m, metrics_labels(labels, sizeof labels, "state", "done", NULL), 2.5);
	metrics_family(&m, "t_wait_seconds", METRIC_HISTOGRAM, "seconds", "wait");
	metrics_sample_histogram(&m, metrics_labels(labels, sizeof labels, "class", "io", NULL),
				 &h);
	metrics_family(&m, "t_build", METRIC_INFO, NULL, "version");
	metrics_sample(&m, metrics_labels(labels, sizeof labels, "version", "1.2", NULL), 1);
	metrics_close(&m);
	n = evbuffer_get_length(out);
	text = xmalloc(n + 1);
	evbuffer_remove(out, text, n);
	text[n] = '\0';
	evbuffer_free(out);
	return text;
}

static void
test_prometheus_text(void **state)
{
	char *text = render(METRICS_PROMETHEUS);

	(void)state;
	assert_string_equal(text,
			    "# HELP t_requests_total requests \"handled\"\\\\ok\n"
			    "# TYPE t_requests_total counter\n"
			    "t_requests_total 7\n"
			    "# HELP t_jobs jobs by state\n"
			    "# TYPE t_jobs gauge\n"
			    "t_jobs{state=\"done\"} 2.5\n"
			    "# HELP t_wait_seconds wait\n"
			    "# TYPE t_wait_seconds histogram\n"
			    "t_wait_seconds_bucket{class=\"io\",le=\"0.5\"} 1\n"
			    "t_wait_seconds_bucket{class=\"io\",le=\"2.0\"} 2\n"
			    "t_wait_seconds_bucket{class=\"io\",le=\"+Inf\"} 3\n"
			    "t_wait_seconds_sum{class=\"io\"} 4.25\n"
			    "t_wait_seconds_count{class=\"io\"} 3\n"
			    "# HELP t_build_info version\n"
			    "# TYPE t_build_info gauge\n"
			    "t_build_info{version=\"1.2\"} 1\n");
	free(text);
}

static void
test_openmetrics_text(void **state)
{
	char *text = render(METRICS_OPENMETRICS);

	(void)state;
	assert_string_equal(text,
			    "# TYPE t_requests counter\n"
			    "# HELP t_requests requests \\\"handled\\\"\\\\ok\n"
			    "t_requests_total 7\n"
			    "# TYPE t_jobs gauge\n"
			    "# HELP t_jobs jobs by state\n"
			    "t_jobs{state=\"done\"} 2.5\n"
			    "# TYPE t_wait_seconds histogram\n"
			    "# UNIT t_wait_seconds seconds\n"
			    "# HELP t_wait_seconds wait\n"
			    "t_wait_seconds_bucket{class=\"io\",le=\"0.5\"} 1\n"
			    "t_wait_seconds_bucket{class=\"io\",le=\"2.0\"} 2\n"
			    "t_wait_seconds_bucket{class=\"io\",le=\"+Inf\"} 3\n"
			    "t_wait_seconds_sum{class=\"io\"} 4.25\n"
			    "t_wait_seconds_count{class=\"io\"} 3\n"
			    "# TYPE t_build info\n"
			    "# HELP t_build version\n"
			    "t_build_info{version=\"1.2\"} 1\n"
			    "# EOF\n");
	free(text);
}

/* A histogram without labels: only le in the braces. */
static void
test_histogram_no_labels(void **state)
{
	static const double b[] = { 1 };
	struct evbuffer *out = evbuffer_new();
	struct metrics_out m;
	struct histogram h;
	char *text;
	size_t n;

	(void)state;
	histogram_init(&h, b, 1);
	metrics_open(&m, out, METRICS_PROMETHEUS);
	metrics_family(&m, "t_x_seconds", METRIC_HISTOGRAM, "seconds", NULL);
	metrics_sample_histogram(&m, NULL, &h);
	n = evbuffer_get_length(out);
	text = xmalloc(n + 1);
	evbuffer_remove(out, text, n);
	text[n] = '\0';
	assert_string_equal(text, "# TYPE t_x_seconds histogram\n"
				  "t_x_seconds_bucket{le=\"1.0\"} 0\n"
				  "t_x_seconds_bucket{le=\"+Inf\"} 0\n"
				  "t_x_seconds_sum 0\n"
				  "t_x_seconds_count 0\n");
	free(text);
	evbuffer_free(out);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_negotiate),
		cmocka_unit_test(test_histogram),
		cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_labels),
		cmocka_unit_test(test_prometheus_text),
		cmocka_unit_test(test_openmetrics_text),
		cmocka_unit_test(test_histogram_no_labels),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
