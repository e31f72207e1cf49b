/*
 * The daemon as a whole: shutdown and reload (root and the daemon's own
 * user only), metrics (Prometheus text, monitor.c). doc/protocol.md.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include <taskd/protocol.h>

#include "log.h"
#include "monitor.h"
#include "ops.h"
#include "taskd.h"

static op_fn op_shutdown;
static op_fn op_reload;
static op_fn op_metrics;

/* This file's entries in the op table (ops.h: what the dispatcher checks for them). */

const struct op op_shutdown_entry = {
	.name = TASKD_OP_SHUTDOWN,
	.fn = op_shutdown,
	.flags = OP_PRIVILEGED | OP_WHILE_STOPPING,
	.fields = { "drain" },
};

const struct op op_reload_entry = {
	.name = TASKD_OP_RELOAD,
	.fn = op_reload,
	.flags = OP_PRIVILEGED | OP_WHILE_STOPPING,
};

const struct op op_metrics_entry = {
	.name = TASKD_OP_METRICS,
	.fn = op_metrics,
	.flags = OP_WHILE_STOPPING,
	.fields = { "cursor" },
};

static void
op_shutdown(struct taskd *td, struct client *c, struct request *req)
{
	json_t *d = json_object_get(req->root, "drain");
	bool drain = d != NULL && json_is_true(d);

	if (d != NULL && !json_is_boolean(d)) {
		reply_err(c, req->id, TASKD_ERR_BAD_REQUEST, "\"drain\" must be true or false");
		return;
	}
	reply_ok(c, req->id, json_pack("{s:b,s:b}", "stopping", 1, "drain", drain));
	taskd_shutdown(td, drain);
}

/*
 * Bytes a piece of Prometheus text takes inside a JSON string: its quotes,
 * backslashes and newlines are escaped (the text has no other control
 * characters: metrics.c escapes label values and help).
 */
static size_t
json_text_bytes(const char *p, size_t n)
{
	size_t size = n, i;

	for (i = 0; i < n; i++)
		if (p[i] == '"' || p[i] == '\\' || p[i] == '\n')
			size++;
	return size;
}

/*
 * One page of the metrics text: whole lines, from family `fam` (its line
 * `line`), as many as fit in room bytes of JSON string, cut before a family
 * when the page holds a whole one, else (a family longer than a page)
 * inside it. A family starts at a comment line that follows a sample line
 * (or the top): in Prometheus text its # HELP and # TYPE lines come first.
 * Families are counted, not bytes, so a page from a new render starts where
 * the last one ended even if the values grew. The page is text[*off, *off +
 * *n); *next_fam and *next_line say where the next one starts, unless *done.
 */
static void
metrics_page(const char *text, size_t len, uint64_t fam, uint64_t line, size_t room,
	     size_t *off, size_t *n, uint64_t *next_fam, uint64_t *next_line, bool *done)
{
	size_t pos = 0, start = len, cut = len, used = 0;
	uint64_t f = 0, l = 0, cut_fam = 0;
	bool prev_sample = true;

	*done = true;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl != NULL ? (size_t)(nl - text) + 1 : len;
		bool comment = text[pos] == '#';

		if (comment && prev_sample && pos > 0) {
			f++;
			l = 0;
		}
		prev_sample = !comment;
		if (f > fam || (f == fam && l >= line)) {
			size_t size = json_text_bytes(text + pos, end - pos);

			if (start == len)
				start = pos;
			if (l == 0 && pos > start) {
				cut = pos; /* the last family start after the page's first line */
				cut_fam = f;
			}
			/* Always at least one line, so a page moves on. */
			if (used + size > room && pos > start) {
				*done = false;
				if (cut != len) {
					*next_fam = cut_fam;
					*next_line = 0;
					pos = cut;
				} else {
					*next_fam = f;
					*next_line = l;
				}
				break;
			}
			used += size;
		}
		l++;
		pos = end;
	}
	*off = start;
	*n = start == len ? 0 : (*done ? len : pos) - start;
}

static void
op_metrics(struct taskd *td, struct client *c, struct request *req)
{
	uint64_t v[3] = { 0, 0, 0 }, nf = 0, nl = 0;
	size_t budget = ops_budget(c, req->id), frame, off, n;
	struct evbuffer *out;
	char *cursor = NULL;
	const char *text;
	bool done;

	if (ops_cursor(c, req, 'M', v) == -1)
		return;
	if ((out = evbuffer_new()) == NULL)
		fatalx("out of memory (evbuffer)");
	monitor_render(td, out, METRICS_PROMETHEUS);
	text = (const char *)evbuffer_pullup(out, -1);
	/* {"text":"...","next":CURSOR} around the text */
	frame = sizeof "{\"text\":\"\",\"next\":}" - 1 + CURSOR_MAX;
	metrics_page(text, evbuffer_get_length(out), v[0], v[1], budget > frame ? budget - frame : 0,
		     &off, &n, &nf, &nl, &done);
	if (!done)
		cursor = ops_cursor_text('M', nf, nl, 0);
	reply_ok(c, req->id, json_pack("{s:s%,s:s?}", "text", text + off, n, "next", cursor));
	free(cursor);
	evbuffer_free(out);
}

static void
op_reload(struct taskd *td, struct client *c, struct request *req)
{
	json_t *changed;
	char *cause = NULL;

	if (taskd_reload(td, &changed, &cause) == -1) {
		reply_err(c, req->id, TASKD_ERR_INVALID_CONFIG, cause);
		free(cause);
		return;
	}
	reply_ok(c, req->id, json_pack("{s:s,s:o}", "config", td->config_path, "changed",
				       changed));
}
