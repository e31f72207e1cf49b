/*
 * libFuzzer target: the messages between a worker and the daemon.
 *
 * The daemon must trust nothing a worker sends, and a worker must survive
 * whatever reaches its socket: the bytes are parsed as worker_recv() does
 * (json_loadb, flags 0) and given to both strict decoders. A message that
 * decodes is encoded again, sent through the same text form (json_dumps
 * JSON_COMPACT, as worker_send) and decoded a second time: that must
 * succeed and give the same fields, or encoder and decoder disagree.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "exec.h"
#include "worker.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
str_eq(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* msg → text → msg, as over the socket. Steals msg. */
static json_t *
transport(json_t *msg)
{
	char *text = json_dumps(msg, JSON_COMPACT);
	json_t *back;

	json_decref(msg);
	if (text == NULL) {
		fprintf(stderr, "json_dumps failed on an encoded message\n");
		abort();
	}
	back = json_loadb(text, strlen(text), 0, NULL);
	if (back == NULL) {
		fprintf(stderr, "encoded message does not parse back: %s\n", text);
		abort();
	}
	free(text);
	return back;
}

static void
spec_roundtrip(const struct run_spec *s)
{
	json_t *m = transport(worker_encode_spec(s));
	struct run_spec t;
	char *error = NULL;

	if (worker_decode_spec(m, &t, &error) == -1) {
		fprintf(stderr, "re-encoded spec refused: %s\n", error);
		abort();
	}
	if (t.job_id != s->job_id || t.type != s->type || !strv_equal(t.argv, s->argv) ||
	    !strv_equal(t.env, s->env) || !str_eq(t.cwd, s->cwd) ||
	    !str_eq(t.out_path, s->out_path) || !str_eq(t.err_path, s->err_path) ||
	    t.timeout != s->timeout || t.kill_grace != s->kill_grace ||
	    t.max_output != s->max_output || t.nice != s->nice || t.as_user != s->as_user ||
	    t.uid != s->uid || t.gid != s->gid || !str_eq(t.track_path, s->track_path) ||
	    !str_eq(t.input, s->input) || t.max_result != s->max_result) {
		fprintf(stderr, "spec changed in an encode/decode round trip\n");
		abort();
	}
	run_spec_free(&t);
	json_decref(m);
}

static void
result_roundtrip(uint64_t job, const struct run_result *r, long rss)
{
	json_t *m = transport(worker_encode_result(job, r, rss));
	struct run_result t;
	uint64_t job2;
	long rss2;
	char *error = NULL;

	if (worker_decode_result(m, &t, &job2, &rss2, &error) == -1) {
		fprintf(stderr, "re-encoded result refused: %s\n", error);
		abort();
	}
	if (job2 != job || rss2 != rss || t.status != r->status || t.exit_code != r->exit_code ||
	    t.signal != r->signal || t.cpu_user != r->cpu_user || t.cpu_sys != r->cpu_sys ||
	    t.max_rss_kb != r->max_rss_kb || t.wall != r->wall || t.runq_wait != r->runq_wait ||
	    t.started_at != r->started_at || t.finished_at != r->finished_at ||
	    t.out_bytes != r->out_bytes || t.err_bytes != r->err_bytes ||
	    t.out_truncated != r->out_truncated || t.err_truncated != r->err_truncated ||
	    t.pid != r->pid || !str_eq(t.result, r->result) || !str_eq(t.error, r->error) ||
	    t.result_json != r->result_json) {
		fprintf(stderr, "result changed in an encode/decode round trip\n");
		abort();
	}
	free(t.result);
	free(t.error);
	json_decref(m);
}

static void
progress_roundtrip(uint64_t job, const char *message)
{
	json_t *m = transport(worker_encode_progress(job, message));
	uint64_t job2;
	char *error = NULL, *text = NULL;

	if (worker_decode_progress(m, &job2, &text, &error) == -1) {
		fprintf(stderr, "re-encoded progress refused: %s\n", error);
		abort();
	}
	if (job2 != job || strcmp(text, message) != 0) {
		fprintf(stderr, "progress changed in an encode/decode round trip\n");
		abort();
	}
	free(text);
	json_decref(m);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct run_spec spec;
	struct run_result res;
	uint64_t job;
	long rss;
	char *error = NULL, *text = NULL;
	json_t *msg = json_loadb((const char *)data, size, 0, NULL);
	int rc;

	if (msg == NULL)
		return 0;
	rc = worker_decode_spec(msg, &spec, &error);
	if (rc == 0) {
		spec_roundtrip(&spec);
		run_spec_free(&spec);
	} else {
		if (error == NULL)
			abort();
		free(error);
		error = NULL;
		/* -2: decoded, but a type this process has not loaded (the worker fails the job). */
		if (rc == -2)
			run_spec_free(&spec);
	}
	if (worker_decode_progress(msg, &job, &text, &error) == 0) {
		progress_roundtrip(job, text);
		free(text);
	} else {
		if (error == NULL)
			abort();
		free(error);
		error = NULL;
	}
	if (worker_decode_result(msg, &res, &job, &rss, &error) == 0) {
		result_roundtrip(job, &res, rss);
		free(res.result);
		free(res.error);
	} else {
		if (error == NULL)
			abort();
		free(error);
	}
	json_decref(msg);
	return 0;
}
