/*
 * Metrics exposition: the text formats Prometheus scrapes, written from
 * values the caller gathers, and histograms to gather them in. Two
 * formats, one writer:
 *
 *   Prometheus text 0.0.4   (text/plain; version=0.0.4): counters are
 *                           families named name_total, histograms name_bucket
 *                           {le}, name_sum, name_count;
 *   OpenMetrics 1.0.0       (application/openmetrics-text; version=1.0.0):
 *                           counter families named without _total (their
 *                           samples keep it), # UNIT lines, and # EOF at the end.
 *
 * metrics_negotiate picks one from an HTTP Accept header. Everything here is
 * pure (no daemon state): tests/unit/test-metrics.c checks the output line
 * by line, and the e2e tests feed it to promtool and a real Prometheus.
 */
#ifndef TASKD_METRICS_H
#define TASKD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

enum metrics_format {
	METRICS_PROMETHEUS = 0, /* text 0.0.4 */
	METRICS_OPENMETRICS,    /* 1.0.0 */
};

enum metric_type {
	METRIC_COUNTER = 0,
	METRIC_GAUGE,
	METRIC_HISTOGRAM,
	METRIC_INFO, /* a gauge of 1 whose labels carry the information: name_info */
};

/*
 * The format an Accept header asks for: OpenMetrics when it accepts
 * application/openmetrics-text (version 1.0.0, 0.0.1 or none) at least as
 * much as text/plain, else Prometheus text (also for NULL, an empty or a
 * malformed header: what every scraper reads).
 */
enum metrics_format metrics_negotiate(const char *accept);
const char *metrics_content_type(enum metrics_format f);

/* Bucket upper bounds (ascending; +Inf is implied) and what fell in each. */
#define METRICS_MAX_BUCKETS 16
struct histogram {
	const double *bounds;
	size_t nbounds;
	uint64_t counts[METRICS_MAX_BUCKETS + 1]; /* per bucket, not cumulative; last: +Inf */
	uint64_t count;
	double sum;
};

/* bounds must outlive h; nbounds <= METRICS_MAX_BUCKETS. */
void histogram_init(struct histogram *h, const double *bounds, size_t nbounds);
void histogram_observe(struct histogram *h, double v); /* NaN is ignored */

/* A writer: families in order, each followed by its samples. */
struct metrics_out {
	struct evbuffer *buf;
	enum metrics_format fmt;
	enum metric_type type;  /* of the current family */
	char family[128];       /* its name as given (without _total / _info) */
};

void metrics_open(struct metrics_out *m, struct evbuffer *buf, enum metrics_format fmt);
/*
 * Start a family: name without the _total (counters) or _info (info)
 * suffix; unit (e.g. "seconds"; the name must end in _unit) or NULL; help
 * is one line of text.
 */
void metrics_family(struct metrics_out *m, const char *name, enum metric_type type,
		    const char *unit, const char *help);
/*
 * One sample of the current family (counter, gauge or info); labels is
 * NULL or what goes between the braces, as made by metrics_labels.
 */
void metrics_sample(struct metrics_out *m, const char *labels, double value);
void metrics_sample_uint(struct metrics_out *m, const char *labels, uint64_t value);
/* The buckets, sum and count of one histogram of the current family. */
void metrics_sample_histogram(struct metrics_out *m, const char *labels,
			      const struct histogram *h);
/* A family of one unlabelled sample: a gauge, a counter. */
void metrics_gauge(struct metrics_out *m, const char *name, const char *help, double value);
void metrics_counter(struct metrics_out *m, const char *name, const char *help, uint64_t value);
/* Ends the exposition (# EOF for OpenMetrics). */
void metrics_close(struct metrics_out *m);

/*
 * key="value" pairs (NULL-terminated list of key, value), values escaped,
 * into buf; returns buf. Cut short (still well-formed) if buf is too small.
 */
const char *metrics_labels(char *buf, size_t len, ...) __attribute__((sentinel));

/* A float as the formats want it: shortest round trip, +Inf, -Inf, NaN. */
void metrics_format_number(char *buf, size_t len, double v);

#endif
