#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "metrics.h"

#define CT_PROMETHEUS "text/plain; version=0.0.4; charset=utf-8"
#define CT_OPENMETRICS "application/openmetrics-text; version=1.0.0; charset=utf-8"

const char *
metrics_content_type(enum metrics_format f)
{
	return f == METRICS_OPENMETRICS ? CT_OPENMETRICS : CT_PROMETHEUS;
}

/* ---- Accept ---- */

static const char *
skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static size_t
trimmed_len(const char *p, const char *end)
{
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	return (size_t)(end - p);
}

static bool
token_is(const char *p, size_t n, const char *word)
{
	return n == strlen(word) && strncasecmp(p, word, n) == 0;
}

/*
 * One media range "type/sub; k=v; ...": which of our two formats it names
 * (-1: neither) and its q (1 unless given; a malformed q drops the range).
 */
static int
media_range(const char *p, const char *end, double *q)
{
	const char *semi = memchr(p, ';', (size_t)(end - p)), *type_end, *k, *eq, *v;
	size_t tn, kn, vn;
	char num[16], *num_end;
	const char *version = NULL;
	size_t version_len = 0;
	int which;

	type_end = semi != NULL ? semi : end;
	p = skip_space(p, type_end);
	tn = trimmed_len(p, type_end);
	if (token_is(p, tn, "application/openmetrics-text"))
		which = METRICS_OPENMETRICS;
	else if (token_is(p, tn, "text/plain") || token_is(p, tn, "text/*") ||
		 token_is(p, tn, "*/*"))
		which = METRICS_PROMETHEUS;
	else
		return -1;
	*q = 1.0;
	while (semi != NULL) {
		k = skip_space(semi + 1, end);
		semi = memchr(k, ';', (size_t)(end - k));
		v = semi != NULL ? semi : end;
		if ((eq = memchr(k, '=', (size_t)(v - k))) == NULL)
			continue;
		kn = trimmed_len(k, eq);
		eq = skip_space(eq + 1, v);
		vn = trimmed_len(eq, v);
		if (vn >= 2 && eq[0] == '"' && eq[vn - 1] == '"') {
			eq++;
			vn -= 2;
		}
		if (token_is(k, kn, "q")) {
			if (vn == 0 || vn >= sizeof num)
				return -1;
			memcpy(num, eq, vn);
			num[vn] = '\0';
			*q = strtod(num, &num_end);
			if (*num_end != '\0' || !(*q >= 0 && *q <= 1))
				return -1;
		} else if (token_is(k, kn, "version")) {
			version = eq;
			version_len = vn;
		}
	}
	if (version == NULL)
		return which;
	if (which == METRICS_OPENMETRICS && (token_is(version, version_len, "1.0.0") ||
					     token_is(version, version_len, "0.0.1")))
		return which;
	if (which == METRICS_PROMETHEUS && token_is(version, version_len, "0.0.4"))
		return which;
	return -1; /* a version we do not write */
}

enum metrics_format
metrics_negotiate(const char *accept)
{
	double best[2] = { 0, 0 }, q;
	const char *p, *end, *comma;
	int which;

	if (accept == NULL)
		return METRICS_PROMETHEUS;
	end = accept + strlen(accept);
	for (p = accept; p < end; p = comma + 1) {
		comma = memchr(p, ',', (size_t)(end - p));
		if (comma == NULL)
			comma = end;
		which = media_range(p, comma, &q);
		if (which >= 0 && q > best[which])
			best[which] = q;
	}
	return best[METRICS_OPENMETRICS] > 0 && best[METRICS_OPENMETRICS] >= best[METRICS_PROMETHEUS]
		       ? METRICS_OPENMETRICS
		       : METRICS_PROMETHEUS;
}

/* ---- histograms ---- */

void
histogram_init(struct histogram *h, const double *bounds, size_t nbounds)
{
	memset(h, 0, sizeof *h);
	h->bounds = bounds;
	h->nbounds = nbounds < METRICS_MAX_BUCKETS ? nbounds : METRICS_MAX_BUCKETS;
}

void
histogram_observe(struct histogram *h, double v)
{
	size_t lo = 0, hi = h->nbounds, mid;

	if (isnan(v))
		return;
	/* The first bound >= v (le is inclusive). */
	while (lo < hi) {
		mid = (lo + hi) / 2;
		if (v <= h->bounds[mid])
			hi = mid;
		else
			lo = mid + 1;
	}
	h->counts[lo]++;
	h->count++;
	h->sum += v;
}

/* ---- numbers and text ---- */

void
metrics_format_number(char *buf, size_t len, double v)
{
	int prec;

	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	for (prec = 6; prec < 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			return;
	}
	snprintf(buf, len, "%.17g", v);
}

/* A bound as an le value: a float, never a bare integer ("1.0", like the clients write). */
static void
format_le(char *buf, size_t len, double v)
{
	metrics_format_number(buf, len, v);
	if (strpbrk(buf, ".eEnN") == NULL && strlen(buf) + 2 < len)
		strcat(buf, ".0");
}

/* Escape for a label value (\\, \", \n) or, with quotes false, for HELP text (\\, \n). */
static void
add_escaped(struct evbuffer *b, const char *s, bool quotes)
{
	const char *p;

	for (p = s; *p != '\0'; p++) {
		if (*p == '\\')
			evbuffer_add(b, "\\\\", 2);
		else if (*p == '\n')
			evbuffer_add(b, "\\n", 2);
		else if (*p == '"' && quotes)
			evbuffer_add(b, "\\\"", 2);
		else
			evbuffer_add(b, p, 1);
	}
}

const char *
metrics_labels(char *buf, size_t len, ...)
{
	const char *k, *v, *p;
	size_t n = 0, need;
	va_list ap;
	char esc[3];

	if (len == 0)
		return buf;
	buf[0] = '\0';
	va_start(ap, len);
	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		/* k="" plus a comma; values are added escaped, a pair only if it fits whole. */
		need = strlen(k) + 4;
		for (p = v; *p != '\0'; p++)
			need += (*p == '\\' || *p == '"' || *p == '\n') ? 2 : 1;
		if (n + need >= len)
			break;
		n += (size_t)snprintf(buf + n, len - n, "%s%s=\"", n > 0 ? "," : "", k);
		for (p = v; *p != '\0'; p++) {
			if (*p == '\\' || *p == '"' || *p == '\n') {
				esc[0] = '\\';
				esc[1] = *p == '\n' ? 'n' : *p;
				esc[2] = '\0';
				n += (size_t)snprintf(buf + n, len - n, "%s", esc);
			} else {
				buf[n++] = *p;
				buf[n] = '\0';
			}
		}
		n += (size_t)snprintf(buf + n, len - n, "\"");
	}
	va_end(ap);
	return buf;
}

/* ---- the writer ---- */

void
metrics_open(struct metrics_out *m, struct evbuffer *buf, enum metrics_format fmt)
{
	memset(m, 0, sizeof *m);
	m->buf = buf;
	m->fmt = fmt;
}

static const char *
type_name(enum metric_type t, enum metrics_format fmt)
{
	switch (t) {
	case METRIC_COUNTER:
		return "counter";
	case METRIC_HISTOGRAM:
		return "histogram";
	case METRIC_INFO:
		return fmt == METRICS_OPENMETRICS ? "info" : "gauge";
	case METRIC_GAUGE:
	default:
		return "gauge";
	}
}

/* The sample name's suffix for a family of this type (counters and infos). */
static const char *
value_suffix(const struct metrics_out *m)
{
	if (m->type == METRIC_COUNTER)
		return "_total";
	if (m->type == METRIC_INFO)
		return "_info";
	return "";
}

void
metrics_family(struct metrics_out *m, const char *name, enum metric_type type, const char *unit,
	       const char *help)
{
	struct evbuffer *b = m->buf;
	const char *suffix;

	snprintf(m->family, sizeof m->family, "%s", name);
	m->type = type;
	/* Prometheus text names the family like its samples; OpenMetrics without the suffix. */
	suffix = m->fmt == METRICS_PROMETHEUS ? value_suffix(m) : "";
	if (m->fmt == METRICS_OPENMETRICS) {
		evbuffer_add_printf(b, "# TYPE %s %s\n", name, type_name(type, m->fmt));
		if (unit != NULL)
			evbuffer_add_printf(b, "# UNIT %s %s\n", name, unit);
	}
	if (help != NULL) {
		evbuffer_add_printf(b, "# HELP %s%s ", name, suffix);
		add_escaped(b, help, m->fmt == METRICS_OPENMETRICS);
		evbuffer_add(b, "\n", 1);
	}
	if (m->fmt == METRICS_PROMETHEUS)
		evbuffer_add_printf(b, "# TYPE %s%s %s\n", name, suffix, type_name(type, m->fmt));
}

static void
sample_line(struct metrics_out *m, const char *suffix, const char *labels, const char *extra,
	    const char *value)
{
	bool any = (labels != NULL && *labels != '\0') || extra != NULL;

	evbuffer_add_printf(m->buf, "%s%s%s%s%s%s%s %s\n", m->family, suffix, any ? "{" : "",
			    labels != NULL ? labels : "",
			    labels != NULL && *labels != '\0' && extra != NULL ? "," : "",
			    extra != NULL ? extra : "", any ? "}" : "", value);
}

void
metrics_sample(struct metrics_out *m, const char *labels, double value)
{
	char num[40];

	metrics_format_number(num, sizeof num, value);
	sample_line(m, value_suffix(m), labels, NULL, num);
}

void
metrics_sample_uint(struct metrics_out *m, const char *labels, uint64_t value)
{
	char num[24];

	snprintf(num, sizeof num, "%llu", (unsigned long long)value);
	sample_line(m, value_suffix(m), labels, NULL, num);
}

void
metrics_sample_histogram(struct metrics_out *m, const char *labels, const struct histogram *h)
{
	char le[48], bound[40], num[40];
	uint64_t cum = 0;
	size_t i;

	for (i = 0; i <= h->nbounds; i++) {
		cum += h->counts[i];
		if (i < h->nbounds)
			format_le(bound, sizeof bound, h->bounds[i]);
		else
			snprintf(bound, sizeof bound, "+Inf");
		snprintf(le, sizeof le, "le=\"%s\"", bound);
		snprintf(num, sizeof num, "%llu", (unsigned long long)cum);
		sample_line(m, "_bucket", labels, le, num);
	}
	metrics_format_number(num, sizeof num, h->sum);
	sample_line(m, "_sum", labels, NULL, num);
	snprintf(num, sizeof num, "%llu", (unsigned long long)h->count);
	sample_line(m, "_count", labels, NULL, num);
}

void
metrics_gauge(struct metrics_out *m, const char *name, const char *help, double value)
{
	metrics_family(m, name, METRIC_GAUGE, NULL, help);
	metrics_sample(m, NULL, value);
}

void
metrics_counter(struct metrics_out *m, const char *name, const char *help, uint64_t value)
{
	metrics_family(m, name, METRIC_COUNTER, NULL, help);
	metrics_sample_uint(m, NULL, value);
}

void
metrics_close(struct metrics_out *m)
{
	if (m->fmt == METRICS_OPENMETRICS)
		evbuffer_add(m->buf, "# EOF\n", 6);
}
