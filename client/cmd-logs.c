/*
 * taskctl logs ID [--stderr] [--follow]
 *
 * Reads one output stream of a job in chunks (offset → next_offset) and
 * writes the raw bytes to stdout, exactly as the job wrote them (NUL bytes,
 * invalid UTF-8 and terminal escapes included: that is what logs is for):
 * until eof, or until the current end of a running job; with --follow,
 * polls every 200 ms until eof.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "taskctl.h"

enum { OPT_STDERR = 300, OPT_FOLLOW };

struct chunk {
	const char *data;
	size_t len;
	char *decoded; /* owned when the chunk was base64 */
	long long next;
	long long size;
	int eof;
	int truncated;
};

static void
collect(struct logs_out *out, const char *data, size_t len)
{
	char *p;

	if (out->len + len + 1 > out->cap) {
		out->cap = (out->len + len + 1) * 2;
		p = realloc(out->data, out->cap);
		if (p == NULL)
			taskctl_lost(ENOMEM);
		out->data = p;
	}
	memcpy(out->data + out->len, data, len);
	out->len += len;
	out->data[out->len] = '\0';
}

static void
parse_chunk(const json_t *r, long long offset, struct chunk *c)
{
	const json_t *data = json_object_get(r, "data");
	const json_t *next = json_object_get(r, "next_offset");
	const json_t *size = json_object_get(r, "size");
	const char *enc = json_string_value(json_object_get(r, "encoding"));

	memset(c, 0, sizeof *c);
	if (!json_is_string(data) || !json_is_integer(next) || json_integer_value(next) < offset)
		taskctl_bad_response("logs chunk without data or next_offset");
	c->data = json_string_value(data);
	c->len = json_string_length(data);
	if (enc != NULL && strcmp(enc, "base64") == 0) {
		if (base64_decode(c->data, c->len, &c->decoded, &c->len) == -1)
			taskctl_bad_response("logs chunk with invalid base64");
		c->data = c->decoded;
	}
	c->next = json_integer_value(next);
	c->size = json_is_integer(size) ? json_integer_value(size) : -1;
	c->eof = json_is_true(json_object_get(r, "eof"));
	c->truncated = json_is_true(json_object_get(r, "truncated"));
}

static void
take_chunk(struct logs_out *out, struct chunk *c)
{
	if (out->fp != NULL)
		fwrite(c->data, 1, c->len, out->fp);
	else
		collect(out, c->data, c->len);
	out->size = c->size >= 0 ? c->size : c->next;
	out->truncated = c->truncated;
	free(c->decoded);
	c->decoded = NULL;
}

static json_t *
logs_request(json_int_t job, const char *stream, long long offset)
{
	json_t *req = taskd_request(TASKD_OP_LOGS);

	json_object_set_new(req, "job", json_integer(job));
	json_object_set_new(req, "stream", json_string(stream));
	json_object_set_new(req, "offset", json_integer(offset));
	return req;
}

/*
 * Returns 0, or 4 when the daemon rejected a request (reported); with
 * out->gone_ok a job removed meanwhile sets out->gone and returns 0.
 */
int
cmd_logs_fetch(struct taskctl *ctx, const char *arg, json_int_t job, const char *stream, int follow,
               struct logs_out *out)
{
	long long offset = 0;
	struct chunk c;
	json_t *resp;
	int rc;

	for (;;) {
		resp = taskctl_call(ctx, logs_request(job, stream, offset));
		if (!taskd_response_ok(resp) && out->gone_ok &&
		    strcmp(taskd_response_error_code(resp), TASKD_ERR_NOT_FOUND) == 0) {
			out->gone = 1;
			json_decref(resp);
			return 0;
		}
		if (!taskd_response_ok(resp)) {
			rc = taskctl_rejected(ctx, arg, resp);
			json_decref(resp);
			return rc;
		}
		parse_chunk(taskd_response_result(resp), offset, &c);
		take_chunk(out, &c);
		json_decref(resp);
		if (c.eof)
			return 0;
		if (!follow && (c.next == offset || (c.size >= 0 && c.next >= c.size)))
			return 0;
		if (c.next == offset) {
			if (out->fp != NULL)
				fflush(out->fp);
			usleep(TASKCTL_POLL_USEC);
		}
		offset = c.next;
	}
}

void
cmd_logs_warn_truncated(json_int_t job, const char *stream, const struct logs_out *out)
{
	if (!out->truncated)
		return;
	taskctl_warnx("warning: %s of job %lld was truncated at %lld bytes",
	              strcmp(stream, "stderr") == 0 ? "error output" : "output", (long long)job,
	              out->size);
}

/*
 * --json: all data in one document, by the daemon's rule: UTF-8 text when it
 * is UTF-8 without NUL, else base64.
 */
static void
print_json(json_int_t job, const char *stream, const struct logs_out *out)
{
	const char *text = out->data != NULL ? out->data : "";
	json_t *data = memchr(text, '\0', out->len) == NULL ? json_stringn(text, out->len) : NULL;
	const char *enc = "utf-8";
	json_t *doc;
	char *b64;

	if (data == NULL) {
		if ((b64 = base64_encode(out->data, out->len)) == NULL)
			taskctl_lost(ENOMEM);
		data = json_string(b64);
		free(b64);
		enc = "base64";
	}
	doc = json_pack("{s:I, s:s, s:o, s:s, s:I, s:b}", "job", (json_int_t)job, "stream", stream,
	                "data", data, "encoding", enc, "size", (json_int_t)out->size, "truncated",
	                out->truncated);
	taskctl_print_json(doc);
	json_decref(doc);
}

int
cmd_logs(struct taskctl *ctx, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"stderr", no_argument, NULL, OPT_STDERR},
	    {"follow", no_argument, NULL, OPT_FOLLOW},
	    TASKCTL_COMMON_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct logs_out out = {0};
	const char *stream = "stdout";
	int c, rc, follow = 0;
	json_int_t id;

	while ((c = getopt_long(argc, argv, ":hf", opts, NULL)) != -1) {
		if (c == OPT_STDERR)
			stream = "stderr";
		else if (c == OPT_FOLLOW || c == 'f')
			follow = 1;
		else if ((rc = taskctl_common_option(ctx, argv, c)) != -1)
			return rc;
	}
	if (optind >= argc)
		return taskctl_usage_error(ctx, "missing job id");
	if (optind + 1 < argc)
		return taskctl_usage_error(ctx, "unexpected argument '%s'", argv[optind + 1]);
	if (taskctl_parse_id(ctx, argv[optind], &id) == -1)
		return TASKD_EXIT_USAGE;
	out.fp = ctx->json ? NULL : stdout;
	rc = cmd_logs_fetch(ctx, argv[optind], id, stream, follow, &out);
	if (rc == 0 && ctx->json)
		print_json(id, stream, &out);
	if (rc == 0)
		cmd_logs_warn_truncated(id, stream, &out);
	free(out.data);
	return rc;
}
