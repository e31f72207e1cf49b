/*
 * libFuzzer target: one request frame, as ops_frame_cb() sees it.
 *
 * proto_decode() on the raw bytes; the dispatcher's checks of the op table
 * (ops_check(), as root, then as another user while stopping: unknown
 * fields, "job" with its alternatives, privilege, shutdown); for "submit",
 * the job decoding op-submit.c and op-submit-batch.c do (the request
 * itself is the job, or each element of its "jobs" array); a "cursor" as
 * each kind of page reads it (ops_cursor_parse); proto_job_id() and the job
 * selector (filter_decode(), as list/wait/cancel/clean/subscribe use it)
 * for every op; then the response encoders on the request's id and the
 * error message, which may quote client input. A job that decodes gets its
 * kind keys (kindkey.c reads its argv as a shell or interpreter would):
 * each must be valid UTF-8 JSON text of at most KIND_KEY_MAX bytes, and
 * survive pack/unpack. Everything is freed: LeakSanitizer reports a leak
 * as a crash.
 *
 * decode_cwd() stat()s "cwd" on the real filesystem: harmless.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <taskd/protocol.h>

#include "builtin.h"
#include "filter.h"
#include "job.h"
#include "kindkey.h"
#include "ops.h"
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
respond_err(json_t *id, struct proto_error *err)
{
	size_t len;

	free(proto_fail(id, err->code != NULL ? err->code : TASKD_ERR_INTERNAL,
			err->message != NULL ? err->message : "", &len));
	proto_error_clear(err);
}

/* Decoding options as the daemon's defaults give them (cwd checked, inputs up to 16 MiB). */
static const struct proto_job_opts opts = { 30, true, 16u << 20 };

static void
keys_of(const struct job_spec *spec)
{
	struct kind_keys k, back;
	json_t *s;
	char *p;
	size_t i;

	job_kind_keys(spec, &k);
	if (k.n < 1 || k.n > KIND_MAX_KEYS)
		abort();
	for (i = 0; i < k.n; i++) {
		if (strlen(k.key[i]) > KIND_KEY_MAX || (s = json_string(k.key[i])) == NULL)
			abort();
		json_decref(s);
	}
	p = kind_keys_pack(&k);
	kind_keys_unpack(p, &back);
	if (back.n != k.n)
		abort();
	for (i = 0; i < k.n; i++)
		if (strcmp(back.key[i], k.key[i]) != 0)
			abort();
	free(p);
}

static void
submit(struct request *req)
{
	struct proto_error err = { 0 };
	struct job_spec spec;
	json_t *batch = json_object_get(req->root, "jobs"), *result;
	size_t i, n, len;

	if (batch == NULL) {
		if (proto_job_decode(req->root, &opts, &spec, &err) == -1) {
			respond_err(req->id, &err);
			return;
		}
		keys_of(&spec);
		job_spec_free(&spec);
		free(proto_ok(req->id, json_pack("{s:i}", "id", 1), &len));
		return;
	}
	if (!json_is_array(batch))
		return;
	n = json_array_size(batch);
	if (n == 0 || n > TASKD_MAX_BATCH)
		return;
	result = json_array();
	for (i = 0; i < n; i++) {
		if (proto_batch_job_decode(json_array_get(batch, i), &opts, &spec, &err) == -1) {
			respond_err(req->id, &err);
			json_decref(result);
			return;
		}
		keys_of(&spec);
		job_spec_free(&spec);
		json_array_append_new(result, json_integer((json_int_t)i + 1));
	}
	free(proto_ok(req->id, json_pack("{s:o}", "ids", result), &len));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_error err = { 0 };
	const struct op *op;
	struct request req;
	struct filter f;
	uint64_t id, v[3];
	size_t len;

	if (proto_decode((const char *)data, size, &req, &err) == -1) {
		respond_err(req.id, &err);
		proto_request_free(&req);
		return 0;
	}
	if ((op = ops_find(req.op)) != NULL) {
		if (ops_check(op, req.root, 0, false, &err) == -1)
			respond_err(req.id, &err);
		if (ops_check(op, req.root, 4242, true, &err) == -1)
			respond_err(req.id, &err);
	}
	if (strcmp(req.op, TASKD_OP_SUBMIT) == 0)
		submit(&req);
	if (json_is_string(json_object_get(req.root, "cursor"))) {
		ops_cursor_parse(json_string_value(json_object_get(req.root, "cursor")), 'L', v);
		ops_cursor_parse(json_string_value(json_object_get(req.root, "cursor")), 'C', v);
	}
	if (filter_decode(req.root, FILTER_STATE | FILTER_STATES | FILTER_LABELS | FILTER_NAME |
				      FILTER_OLDER_THAN | FILTER_IDS, &f, &err) == -1)
		respond_err(req.id, &err);
	else
		filter_free(&f);
	if (proto_job_id(req.root, &id, &err) == -1)
		respond_err(req.id, &err);
	else
		free(proto_ok(req.id, json_pack("{s:I}", "id", (json_int_t)id), &len));
	proto_request_free(&req);
	return 0;
}
