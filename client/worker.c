/*
 * libtaskd-worker (include/taskd/worker.h): the worker side of the handler
 * protocol for C programs, without dependencies.
 *
 * It reads what taskd sends on fd 3 (TASKD_WORKER_FD) into a buffer, takes
 * every complete line in it in order (a job: run the handler; a cancel:
 * nothing to do, jobs run one at a time and to their end), appends each
 * answer to an output buffer and writes that buffer out once no complete
 * line is left, so a burst of pipelined jobs is answered with one write.
 * Job messages are parsed in place (strings: JSON escapes decode into the
 * bytes they came in); the input is decoded with common/base64.c. Only the
 * functions of <taskd/worker.h> are exported (TASKD_API).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <taskd/worker.h>

#define READ_CHUNK 65536
#define TASKD_API __attribute__((visibility("default")))

struct buf {
	char *p;
	size_t len, cap;
};

struct taskd_result {
	struct buf text; /* the JSON value, or the error message */
	bool set;
	bool error;
};

static int
buf_reserve(struct buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (b->len + n <= b->cap)
		return 0;
	cap = b->cap > 0 ? b->cap : 4096;
	while (cap < b->len + n)
		cap *= 2;
	if ((p = realloc(b->p, cap)) == NULL)
		return -1;
	b->p = p;
	b->cap = cap;
	return 0;
}

static int
buf_add(struct buf *b, const void *p, size_t n)
{
	if (buf_reserve(b, n) == -1)
		return -1;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

static int
buf_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at p (n bytes left), 0 if invalid. */
static size_t
utf8_len(const unsigned char *p, size_t n)
{
	size_t len, i;
	uint32_t c;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, c = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, c = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, c = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		c = c << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (len == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return len;
}

/* s as a JSON string, quotes included; invalid UTF-8 becomes U+FFFD (taskd would refuse it). */
static int
buf_json_string(struct buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	char esc[8];
	size_t k;
	int rc = buf_add(b, "\"", 1);

	while (rc == 0 && p < end) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p++;
			rc = buf_add(b, esc, 2);
		} else if (*p < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", *p++);
			rc = buf_add(b, esc, 6);
		} else if ((k = utf8_len(p, (size_t)(end - p))) == 0) {
			rc = buf_str(b, "\\ufffd");
			p++;
		} else {
			rc = buf_add(b, p, k);
			p += k;
		}
	}
	return rc == 0 ? buf_add(b, "\"", 1) : -1;
}

/* ---- results ---- */

static int
result_set(struct taskd_result *res, bool error)
{
	res->text.len = 0;
	res->set = true;
	res->error = error;
	return 0;
}

TASKD_API int
taskd_result_json(struct taskd_result *res, const char *json)
{
	result_set(res, false);
	return buf_str(&res->text, json);
}

TASKD_API int
taskd_result_string(struct taskd_result *res, const char *s)
{
	result_set(res, false);
	return buf_json_string(&res->text, s, strlen(s));
}

TASKD_API int
taskd_result_error(struct taskd_result *res, const char *fmt, ...)
{
	va_list ap;
	char *msg;
	int n;

	result_set(res, true);
	va_start(ap, fmt);
	n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -1;
	buf_json_string(&res->text, msg, (size_t)n);
	free(msg);
	return -1;
}

/* ---- reading job messages, in place ---- */

struct parse {
	char *p;
	char *end;
};

static void
skip_ws(struct parse *ps)
{
	while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\r'))
		ps->p++;
}

static int
hex4(const char *p, uint32_t *v)
{
	int i;

	*v = 0;
	for (i = 0; i < 4; i++) {
		*v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			*v |= (uint32_t)(p[i] - '0');
		else if (p[i] >= 'a' && p[i] <= 'f')
			*v |= (uint32_t)(p[i] - 'a' + 10);
		else if (p[i] >= 'A' && p[i] <= 'F')
			*v |= (uint32_t)(p[i] - 'A' + 10);
		else
			return -1;
	}
	return 0;
}

static char *
put_utf8(char *w, uint32_t c)
{
	if (c < 0x80) {
		*w++ = (char)c;
	} else if (c < 0x800) {
		*w++ = (char)(0xc0 | c >> 6);
		*w++ = (char)(0x80 | (c & 0x3f));
	} else if (c < 0x10000) {
		*w++ = (char)(0xe0 | c >> 12);
		*w++ = (char)(0x80 | (c >> 6 & 0x3f));
		*w++ = (char)(0x80 | (c & 0x3f));
	} else {
		*w++ = (char)(0xf0 | c >> 18);
		*w++ = (char)(0x80 | (c >> 12 & 0x3f));
		*w++ = (char)(0x80 | (c >> 6 & 0x3f));
		*w++ = (char)(0x80 | (c & 0x3f));
	}
	return w;
}

/* A JSON string at ps->p, decoded in place and NUL-terminated; NULL if malformed. */
static char *
parse_string(struct parse *ps)
{
	char *r = ps->p, *w, *start;
	uint32_t c, lo;

	if (r >= ps->end || *r != '"')
		return NULL;
	start = w = ++r;
	while (r < ps->end && *r != '"') {
		if (*r != '\\') {
			*w++ = *r++;
			continue;
		}
		if (++r >= ps->end)
			return NULL;
		switch (*r) {
		case 'b': *w++ = '\b'; r++; break;
		case 'f': *w++ = '\f'; r++; break;
		case 'n': *w++ = '\n'; r++; break;
		case 'r': *w++ = '\r'; r++; break;
		case 't': *w++ = '\t'; r++; break;
		case 'u':
			if (ps->end - r < 5 || hex4(r + 1, &c) == -1)
				return NULL;
			r += 5;
			if (c >= 0xd800 && c <= 0xdbff && ps->end - r >= 6 && r[0] == '\\' &&
			    r[1] == 'u' && hex4(r + 2, &lo) == 0 && lo >= 0xdc00 && lo <= 0xdfff) {
				c = 0x10000 + ((c - 0xd800) << 10) + (lo - 0xdc00);
				r += 6;
			}
			w = put_utf8(w, c);
			break;
		default:
			*w++ = *r++; /* \" \\ \/ */
		}
	}
	if (r >= ps->end)
		return NULL;
	*w = '\0';
	ps->p = r + 1;
	return start;
}

static int
parse_number(struct parse *ps, double *v)
{
	char *end;

	if (ps->end - ps->p >= 4 && memcmp(ps->p, "null", 4) == 0) {
		ps->p += 4;
		*v = 0;
		return 0;
	}
	*v = strtod(ps->p, &end);
	if (end == ps->p || end > ps->end)
		return -1;
	ps->p = end;
	return 0;
}

struct message {
	char *t;
	uint64_t id;
	char **args;
	int argc, args_cap;
	char *input;
	double deadline;
};

static int
parse_args(struct parse *ps, struct message *m)
{
	char *s, **a;

	if (*ps->p++ != '[')
		return -1;
	skip_ws(ps);
	if (ps->p < ps->end && *ps->p == ']') {
		ps->p++;
		return 0;
	}
	for (;;) {
		skip_ws(ps);
		if ((s = parse_string(ps)) == NULL)
			return -1;
		if (m->argc + 2 > m->args_cap) {
			m->args_cap = m->args_cap > 0 ? m->args_cap * 2 : 8;
			if ((a = realloc(m->args, (size_t)m->args_cap * sizeof *a)) == NULL)
				return -1;
			m->args = a;
		}
		m->args[m->argc++] = s;
		skip_ws(ps);
		if (ps->p < ps->end && *ps->p == ',') {
			ps->p++;
			continue;
		}
		if (ps->p < ps->end && *ps->p == ']') {
			ps->p++;
			return 0;
		}
		return -1;
	}
}

/* One line from taskd: {"t":..,"id":..,"args":[..],"input":"..","deadline":..}. */
static int
parse_message(char *line, size_t len, struct message *m)
{
	struct parse ps = {line, line + len};
	double num;
	char *key;

	m->t = m->input = NULL;
	m->id = 0;
	m->argc = 0;
	m->deadline = 0;
	skip_ws(&ps);
	if (ps.p >= ps.end || *ps.p++ != '{')
		return -1;
	for (;;) {
		skip_ws(&ps);
		if ((key = parse_string(&ps)) == NULL)
			return -1;
		skip_ws(&ps);
		if (ps.p >= ps.end || *ps.p++ != ':')
			return -1;
		skip_ws(&ps);
		if (strcmp(key, "t") == 0) {
			if ((m->t = parse_string(&ps)) == NULL)
				return -1;
		} else if (strcmp(key, "args") == 0) {
			if (parse_args(&ps, m) == -1)
				return -1;
		} else if (strcmp(key, "input") == 0) {
			if ((m->input = parse_string(&ps)) == NULL)
				return -1;
		} else if (strcmp(key, "id") == 0 || strcmp(key, "deadline") == 0) {
			if (parse_number(&ps, &num) == -1)
				return -1;
			if (key[0] == 'i')
				m->id = (uint64_t)num;
			else
				m->deadline = num;
		} else {
			return -1; /* a field this version does not know */
		}
		skip_ws(&ps);
		if (ps.p < ps.end && *ps.p == ',') {
			ps.p++;
			continue;
		}
		if (ps.p < ps.end && *ps.p == '}')
			break;
		return -1;
	}
	if (m->args != NULL)
		m->args[m->argc] = NULL;
	return m->t != NULL && m->id > 0 ? 0 : -1;
}

/* ---- the loop ---- */

struct worker {
	int fd;
	struct buf in, out;
	size_t head; /* first byte of in not taken yet */
	struct message msg;
	struct taskd_result res;
	char *input;  /* the current job's input, decoded */
	char *empty_args[1];
};

static int write_result(struct worker *w, const struct message *m);

/* common/base64.c, built into this library (not exported). */
#include "base64.h"

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t k;

	while (n > 0) {
		k = write(fd, p, n);
		if (k == -1 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int
run_job(struct worker *w, taskd_handler_fn fn, void *arg)
{
	struct taskd_job job = {0};
	struct message *m = &w->msg;
	size_t n = 0;
	int rc;

	job.id = m->id;
	job.argc = m->argc;
	job.args = m->args != NULL ? m->args : w->empty_args;
	job.deadline = m->deadline;
	free(w->input);
	w->input = NULL;
	if (m->input != NULL && *m->input != '\0' &&
	    base64_decode(m->input, strlen(m->input), &w->input, &n) == -1) {
		taskd_result_error(&w->res, "cannot decode the input");
		return write_result(w, m);
	}
	job.input = (const unsigned char *)(w->input != NULL ? w->input : "");
	job.input_len = n;
	w->res.set = w->res.error = false;
	w->res.text.len = 0;
	rc = fn(&job, &w->res, arg);
	if (rc != 0 && !w->res.error)
		taskd_result_error(&w->res, "handler failed");
	else if (!w->res.set)
		taskd_result_json(&w->res, "null");
	return write_result(w, m);
}

/* The answer to m (w->res) into the output buffer. */
static int
write_result(struct worker *w, const struct message *m)
{
	char head[64];

	/* What the job printed belongs to it: out of our buffers before its result. */
	fflush(stdout);
	fflush(stderr);
	snprintf(head, sizeof head, "{\"t\":\"result\",\"id\":%llu,\"ok\":%s,",
		 (unsigned long long)m->id, w->res.error ? "false" : "true");
	if (buf_str(&w->out, head) == -1 ||
	    buf_str(&w->out, w->res.error ? "\"error\":" : "\"result\":") == -1 ||
	    buf_add(&w->out, w->res.text.p, w->res.text.len) == -1 || buf_add(&w->out, "}\n", 2) == -1)
		return -1;
	return 0;
}

/* Every complete line in the input, in order. */
static int
take_lines(struct worker *w, taskd_handler_fn fn, void *arg)
{
	char *line, *nl;
	size_t len;

	while ((nl = memchr(w->in.p + w->head, '\n', w->in.len - w->head)) != NULL) {
		line = w->in.p + w->head;
		len = (size_t)(nl - line);
		w->head += len + 1;
		if (parse_message(line, len, &w->msg) == -1) {
			fprintf(stderr, "taskd-worker: cannot read a message from taskd\n");
			return -1;
		}
		if (strcmp(w->msg.t, "job") == 0 && run_job(w, fn, arg) == -1) {
			fprintf(stderr, "taskd-worker: out of memory\n");
			return -1;
		}
		/* "cancel": jobs run to their end one at a time; nothing to stop here. */
	}
	return 0;
}

TASKD_API int
taskd_worker_serve(taskd_handler_fn fn, void *arg)
{
	struct worker w = {0};
	const char *env = getenv("TASKD_WORKER_FD"), *conc = getenv("TASKD_CONCURRENCY");
	int n_at_once = conc != NULL && atoi(conc) > 0 ? atoi(conc) : 1;
	char hello[96];
	ssize_t n;
	int rc = -1;

	w.fd = env != NULL ? atoi(env) : 3;
	/*
	 * As many jobs at once as the handler's concurrency: they run one
	 * after the other here, but taskd may send them all (pipelining).
	 */
	snprintf(hello, sizeof hello, "{\"t\":\"hello\",\"protocol\":%d,\"concurrency\":%d}\n",
		 TASKD_WORKER_PROTOCOL, n_at_once > 1024 ? 1024 : n_at_once);
	if (write_all(w.fd, hello, strlen(hello)) == -1) {
		perror("taskd-worker: hello");
		return -1;
	}
	for (;;) {
		/* Drop what was taken, then read more. */
		if (w.head > 0) {
			memmove(w.in.p, w.in.p + w.head, w.in.len - w.head);
			w.in.len -= w.head;
			w.head = 0;
		}
		if (buf_reserve(&w.in, READ_CHUNK) == -1)
			break;
		n = read(w.fd, w.in.p + w.in.len, w.in.cap - w.in.len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0) {
			rc = 0; /* taskd closed: we are done */
			break;
		}
		if (n < 0) {
			perror("taskd-worker: read");
			break;
		}
		w.in.len += (size_t)n;
		if (take_lines(&w, fn, arg) == -1)
			break;
		if (w.out.len > 0 && write_all(w.fd, w.out.p, w.out.len) == -1) {
			perror("taskd-worker: write");
			break;
		}
		w.out.len = 0;
	}
	free(w.in.p);
	free(w.out.p);
	free(w.res.text.p);
	free(w.msg.args);
	free(w.input);
	return rc;
}
