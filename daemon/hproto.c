/*
 * The handler protocol's codec and line framer (hproto.h, doc/handlers.md).
 * Everything a worker sends goes through hproto_decode, which accepts
 * exactly the documented messages and nothing else: a worker written
 * against a looser reading of the protocol fails on its first job, with
 * the reason in taskd's log, instead of working by accident.
 */
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "hproto.h"
#include "log.h"
#include "proto.h"
#include "xmalloc.h"

/* Each message type, with the fields it must have and the ones it may have. */
struct shape {
	const char *t;
	enum hmsg_type type;
	const char *const *fields; /* every allowed key, "t" included */
};

static const char *const hello_fields[] = {"t", "protocol", "concurrency", NULL};
static const char *const progress_fields[] = {"t", "id", "message", NULL};
static const char *const result_fields[] = {"t", "id", "ok", "result", "error", NULL};

static const struct shape shapes[] = {
	{"hello", HMSG_HELLO, hello_fields},
	{"progress", HMSG_PROGRESS, progress_fields},
	{"result", HMSG_RESULT, result_fields},
};

void
hmsg_free(struct hmsg *m)
{
	free(m->result);
	free(m->text);
	memset(m, 0, sizeof *m);
}

static int
bad(char **why, const char *fmt, const char *arg)
{
	*why = xprintf(fmt, arg);
	return -1;
}

static bool
allowed(const char *const *fields, const char *key)
{
	for (; *fields != NULL; fields++)
		if (strcmp(*fields, key) == 0)
			return true;
	return false;
}

static int
get_id(json_t *o, uint64_t *id, char **why)
{
	json_t *v = json_object_get(o, "id");

	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return bad(why, "%s: \"id\" must be a job id (a positive integer)",
			   json_string_value(json_object_get(o, "t")));
	*id = (uint64_t)json_integer_value(v);
	return 0;
}

/* A string without NUL bytes (they would cut the text short everywhere it goes). */
static int
get_text(json_t *o, const char *key, char **out, size_t max, char **why)
{
	json_t *v = json_object_get(o, key);
	size_t n;

	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		*why = xprintf("%s: \"%s\" must be a string without NUL bytes",
			       json_string_value(json_object_get(o, "t")), key);
		return -1;
	}
	n = json_string_length(v);
	if (n > max) {
		/* Cut at a character boundary: the text stays valid UTF-8. */
		n = max;
		while (n > 0 && ((unsigned char)json_string_value(v)[n] & 0xc0) == 0x80)
			n--;
	}
	*out = xstrndup(json_string_value(v), n);
	return 0;
}

static int
decode_hello(json_t *o, struct hmsg *m, char **why)
{
	json_t *p = json_object_get(o, "protocol"), *c = json_object_get(o, "concurrency");

	if (!json_is_integer(p) || json_integer_value(p) < 1)
		return bad(why, "hello: \"protocol\" must be a positive integer%s", "");
	if (json_integer_value(p) != HPROTO_VERSION) {
		*why = xprintf("hello: speaks protocol %" JSON_INTEGER_FORMAT
			       ", taskd speaks protocol %d", json_integer_value(p), HPROTO_VERSION);
		return -1;
	}
	if (!json_is_integer(c) || json_integer_value(c) < 1 ||
	    json_integer_value(c) > HPROTO_CONCURRENCY_MAX) {
		*why = xprintf("hello: \"concurrency\" must be an integer from 1 to %d",
			       HPROTO_CONCURRENCY_MAX);
		return -1;
	}
	m->protocol = (int)json_integer_value(p);
	m->concurrency = (int)json_integer_value(c);
	return 0;
}

static int
decode_result(json_t *o, struct hmsg *m, char **why)
{
	json_t *ok = json_object_get(o, "ok"), *res = json_object_get(o, "result");

	if (get_id(o, &m->id, why) == -1)
		return -1;
	if (!json_is_boolean(ok))
		return bad(why, "result: \"ok\" must be true or false%s", "");
	m->ok = json_is_true(ok);
	if (m->ok) {
		if (res == NULL)
			return bad(why, "result: \"ok\":true needs \"result\" (any JSON value)%s",
				   "");
		if (json_object_get(o, "error") != NULL)
			return bad(why, "result: \"ok\":true with an \"error\"%s", "");
		m->result = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY);
		if (m->result == NULL)
			fatalx("out of memory (json_dumps)");
		return 0;
	}
	if (res != NULL)
		return bad(why, "result: \"ok\":false with a \"result\"%s", "");
	return get_text(o, "error", &m->text, SIZE_MAX, why);
}

int
hproto_decode(const char *line, size_t len, struct hmsg *m, char **why)
{
	const struct shape *sh = NULL;
	json_error_t jerr;
	const char *t, *key;
	json_t *o, *v;
	size_t i;
	int rc = -1;

	memset(m, 0, sizeof *m);
	o = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL) {
		*why = xprintf("not JSON (column %d: %s)", jerr.column, jerr.text);
		return -1;
	}
	if (!json_is_object(o)) {
		*why = xstrdup("a message must be a JSON object");
		goto out;
	}
	if ((t = json_string_value(json_object_get(o, "t"))) == NULL) {
		*why = xstrdup("a message needs \"t\" (a string)");
		goto out;
	}
	for (i = 0; i < sizeof shapes / sizeof shapes[0]; i++)
		if (strcmp(shapes[i].t, t) == 0)
			sh = &shapes[i];
	if (sh == NULL) {
		*why = xprintf("unknown message \"%.32s\"", t);
		goto out;
	}
	json_object_foreach(o, key, v) {
		if (!allowed(sh->fields, key)) {
			*why = xprintf("%s: unknown field \"%.32s\"", sh->t, key);
			goto out;
		}
	}
	m->type = sh->type;
	switch (sh->type) {
	case HMSG_HELLO:
		rc = decode_hello(o, m, why);
		break;
	case HMSG_PROGRESS:
		rc = get_id(o, &m->id, why);
		if (rc == 0)
			rc = get_text(o, "message", &m->text, HPROTO_MESSAGE_MAX, why);
		break;
	case HMSG_RESULT:
		rc = decode_result(o, m, why);
		break;
	}
out:
	json_decref(o);
	if (rc == -1)
		hmsg_free(m);
	return rc;
}

/* ---- taskd → worker ---- */

/* o as one line (proto.c's), o freed. */
static char *
line_of(json_t *o, size_t *len)
{
	char *line = proto_line(o, len);

	json_decref(o);
	return line;
}

char *
hproto_job(uint64_t id, char *const *args, const char *input, double deadline, size_t *len)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; args != NULL && args[i] != NULL; i++)
		json_array_append_new(a, json_string(args[i]));
	return line_of(json_pack("{s:s,s:I,s:o,s:s,s:o}", "t", "job", "id", (json_int_t)id,
				 "args", a, "input", input != NULL ? input : "", "deadline",
				 deadline > 0 ? json_real(deadline) : json_null()),
		       len);
}

char *
hproto_cancel(uint64_t id, size_t *len)
{
	return line_of(json_pack("{s:s,s:I}", "t", "cancel", "id", (json_int_t)id), len);
}

static bool
b64_char(int c)
{
	return isalnum(c) || c == '+' || c == '/';
}

bool
hproto_base64_valid(const char *s, size_t len)
{
	size_t i, pad = 0;

	if (len % 4 != 0)
		return false;
	if (len > 0 && s[len - 1] == '=')
		pad = len > 1 && s[len - 2] == '=' ? 2 : 1;
	for (i = 0; i < len - pad; i++)
		if (!b64_char((unsigned char)s[i]))
			return false;
	return true;
}

/* ---- lines ---- */

#define HFRAMER_MIN (16u << 10)

void
hframer_init(struct hframer *f, size_t max)
{
	memset(f, 0, sizeof *f);
	f->max = max;
}

void
hframer_free(struct hframer *f)
{
	free(f->buf);
	memset(f, 0, sizeof *f);
}

char *
hframer_space(struct hframer *f, size_t want)
{
	size_t cap;

	/* Lines handed out before are gone now: move what is left to the front. */
	if (f->head > 0) {
		memmove(f->buf, f->buf + f->head, f->len - f->head);
		f->len -= f->head;
		f->scanned = f->scanned > f->head ? f->scanned - f->head : 0;
		f->head = 0;
	}
	if (f->len + want > f->cap) {
		cap = f->cap > 0 ? f->cap : HFRAMER_MIN;
		while (cap < f->len + want)
			cap *= 2;
		f->buf = xreallocarray(f->buf, cap, 1);
		f->cap = cap;
	}
	return f->buf + f->len;
}

void
hframer_commit(struct hframer *f, size_t n)
{
	f->len += n;
}

static void
keep_prefix(struct hframer *f, const char *p, size_t n)
{
	f->prefix_len = n < HPROTO_PREFIX ? n : HPROTO_PREFIX;
	memcpy(f->prefix, p, f->prefix_len);
}

/* While skipping: the prefix takes what it still has room for. */
static void
top_up(struct hframer *f, size_t n)
{
	size_t room = HPROTO_PREFIX - f->prefix_len;

	if (n > room)
		n = room;
	memcpy(f->prefix + f->prefix_len, f->buf + f->head, n);
	f->prefix_len += n;
}

enum hline_kind
hframer_next(struct hframer *f, const char **line, size_t *len, uint64_t *full)
{
	size_t from;
	char *nl;

	if (f->skipping) {
		nl = f->len > f->head ? memchr(f->buf + f->head, '\n', f->len - f->head) : NULL;
		top_up(f, (nl != NULL ? (size_t)(nl - f->buf) : f->len) - f->head);
		if (nl == NULL) {
			f->skipped += f->len - f->head;
			f->head = f->scanned = f->len;
			return HLINE_NONE;
		}
		f->skipped += (uint64_t)(nl - (f->buf + f->head));
		f->head = f->scanned = (size_t)(nl - f->buf) + 1;
		f->skipping = false;
		*line = f->prefix;
		*len = f->prefix_len;
		*full = f->skipped;
		return HLINE_TOO_LONG;
	}
	from = f->scanned > f->head ? f->scanned : f->head;
	nl = f->len > from ? memchr(f->buf + from, '\n', f->len - from) : NULL;
	if (nl == NULL) {
		f->scanned = f->len;
		if (f->len - f->head > f->max) {
			/* Too long already: keep its start, drop the rest as it comes. */
			keep_prefix(f, f->buf + f->head, f->len - f->head);
			f->skipping = true;
			f->skipped = f->len - f->head;
			f->head = f->len;
		}
		return HLINE_NONE;
	}
	*line = f->buf + f->head;
	*len = (size_t)(nl - *line);
	f->head = f->scanned = (size_t)(nl - f->buf) + 1;
	if (*len > f->max) {
		keep_prefix(f, *line, *len);
		*full = *len;
		*line = f->prefix;
		*len = f->prefix_len;
		return HLINE_TOO_LONG;
	}
	return HLINE_OK;
}

size_t
hframer_partial(const struct hframer *f)
{
	return f->skipping ? 1 : f->len - f->head;
}

/* Leniently: `"id"`, blanks, `:`, blanks, digits — where our libraries put it, near the start. */
uint64_t
hproto_peek_id(const char *prefix, size_t len)
{
	const char *p = prefix, *end = prefix + len, *k;
	uint64_t id = 0;

	while ((k = memmem(p, (size_t)(end - p), "\"id\"", 4)) != NULL) {
		p = k + 4;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p >= end || *p != ':')
			continue;
		p++;
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		id = 0;
		while (p < end && isdigit((unsigned char)*p) && id < UINT64_MAX / 10)
			id = id * 10 + (uint64_t)(*p++ - '0');
		/* Cut by the prefix's end: the number may be longer than what we saw. */
		if (id > 0 && p < end)
			return id;
	}
	return 0;
}
