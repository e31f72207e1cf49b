/*
 * logs (doc/protocol.md "logs"): a chunk of a job's stdout or stderr file,
 * as UTF-8 text when it is, else base64.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "base64.h"
#include "cluster.h"
#include "log.h"
#include "ops.h"
#include "output.h"
#include "taskd.h"
#include "xmalloc.h"

#define LOGS_CHUNK_DEFAULT (256u << 10)
#define LOGS_CHUNK_MAX (1u << 20)

static op_fn op_logs;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_logs_entry = {
	.name = TASKD_OP_LOGS,
	.fn = op_logs,
	.flags = OP_JOB | OP_WHILE_STOPPING,
	.fields = { "stream", "offset", "max" },
};

/*
 * Text when the chunk is UTF-8 without NUL (a multi-byte character cut by the
 * chunk end is left for the next chunk), else base64. *used = bytes consumed.
 */
static void
encode_chunk(json_t *r, const char *buf, size_t n, bool at_end, size_t *used)
{
	bool nul = memchr(buf, '\0', n) != NULL; /* "\u0000" breaks C-string readers */
	json_t *s = nul ? NULL : json_stringn(buf, n);
	size_t cut;
	char *b64;

	for (cut = 1; s == NULL && !nul && !at_end && cut <= 3 && cut < n; cut++) {
		s = json_stringn(buf, n - cut);
		if (s != NULL)
			n -= cut;
	}
	*used = n;
	if (s != NULL) {
		json_object_set_new(r, "data", s);
		json_object_set_new(r, "encoding", json_string("utf-8"));
		return;
	}
	if ((b64 = base64_encode(buf, n)) == NULL)
		fatalx("out of memory (base64)");
	json_object_set_new(r, "data", json_string(b64));
	json_object_set_new(r, "encoding", json_string("base64"));
	free(b64);
}

static int
logs_args(struct client *c, struct request *req, bool *err_stream, json_int_t *off,
	  json_int_t *max)
{
	json_t *v;

	*err_stream = false;
	*off = 0;
	*max = LOGS_CHUNK_DEFAULT;
	if ((v = json_object_get(req->root, "stream")) != NULL) {
		if (json_is_string(v) && strcmp(json_string_value(v), "stderr") == 0)
			*err_stream = true;
		else if (!json_is_string(v) || strcmp(json_string_value(v), "stdout") != 0)
			goto bad;
	}
	if ((v = json_object_get(req->root, "offset")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			goto bad;
		*off = json_integer_value(v);
	}
	if ((v = json_object_get(req->root, "max")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0)
			goto bad;
		*max = json_integer_value(v) > LOGS_CHUNK_MAX ? LOGS_CHUNK_MAX
							      : json_integer_value(v);
	}
	return 0;
bad:
	reply_err(c, req->id, TASKD_ERR_BAD_REQUEST,
		  "logs takes \"stream\" (\"stdout\"|\"stderr\"), \"offset\" >= 0, \"max\" > 0");
	return -1;
}

json_t *
logs_answer(struct taskd *td, const struct job *j, bool errs, json_int_t off, json_int_t max)
{
	char *path, *buf;
	struct stat st = { 0 };
	ssize_t n = 0;
	size_t used;
	bool done;
	json_t *r;
	int fd;

	/* Within this node's limits.max_frame (another node's asking gives its own bound). */
	if (max > (json_int_t)(td->cfg->limits.max_frame - 512) / 6)
		max = (json_int_t)(td->cfg->limits.max_frame - 512) / 6;
	path = output_path(td->jobs_dir, j->id, errs ? OUTPUT_STDERR : OUTPUT_STDOUT);
	buf = xmalloc((size_t)max);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (fstat(fd, &st) == 0 && off < st.st_size)
			n = pread(fd, buf, (size_t)max, off);
		close(fd);
	} else if (errno != ENOENT) {
		log_warn("open %s", path);
	}
	if (n < 0) {
		log_warn("read %s", path);
		n = 0;
	}
	free(path);
	done = job_state_final(j->state);
	r = json_object();
	encode_chunk(r, buf, (size_t)n, off + n >= st.st_size, &used);
	free(buf);
	json_object_set_new(r, "offset", json_integer(off));
	json_object_set_new(r, "next_offset", json_integer(off + (json_int_t)used));
	json_object_set_new(r, "size", json_integer((json_int_t)st.st_size));
	json_object_set_new(r, "eof", json_boolean(done && off + (json_int_t)used >= st.st_size));
	json_object_set_new(r, "truncated", json_boolean(errs ? j->res.err_truncated
							      : j->res.out_truncated));
	return r;
}

static void
op_logs(struct taskd *td, struct client *c, struct request *req)
{
	json_int_t off, max;
	bool errs;

	if (logs_args(c, req, &errs, &off, &max) == -1)
		return;
	/* Answers stay within the frame: a raw byte may become "\\u0001" (6 bytes). */
	if (max > (json_int_t)(ops_budget(c, req->id) - 512) / 6)
		max = (json_int_t)(ops_budget(c, req->id) - 512) / 6;
	/* Cluster mode: the output is on the node that ran the job. */
	if (td->cluster != NULL && cluster_output_elsewhere(td->cluster, req->job)) {
		cluster_logs(td->cluster, c, req->id, req->job, errs, off, max);
		return;
	}
	reply_ok(c, req->id, logs_answer(td, req->job, errs, off, max));
}
