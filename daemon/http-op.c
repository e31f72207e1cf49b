/*
 * The HTTP side's answers, and the requests it answers through the ops:
 * each such request opens a local client of the server (as the HTTP
 * peer's user), sends one op and relays its answer, or for an event stream
 * every event line; once a second a tick enforces op deadlines, sends
 * heartbeats and status on streams and closes connections idle too long.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include <taskd/protocol.h>

#include "taskd.h"
#include "http.h"
#include "http-private.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "webapi.h"
#include "xmalloc.h"

/* ---- answers ---- */

static void
count_answer(struct http *h, int code)
{
	if (code >= 100 && code < 600)
		h->codes[code / 100]++;
}

void
common_headers(struct evhttp_request *req)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	evhttp_add_header(out, "X-Content-Type-Options", "nosniff");
	evhttp_add_header(out, "Referrer-Policy", "no-referrer");
	evhttp_add_header(out, "Cache-Control", "no-cache");
	evhttp_add_header(out, "Server", "taskd/" TASKD_VERSION);
}

/*
 * The answer is written (evhttp calls this before it reads the next request
 * or closes): the connection waits for its next request from now on.
 */
void
http_complete_cb(struct evhttp_request *req, void *arg)
{
	struct hconn *hc = arg;

	(void)req;
	hc->busy = false;
	hc->since = clock_now(CLOCK_MONOTONIC);
	if (hc->stream) {
		hc->stream = false;
		hc->h->nstreams--;
	}
}

void
reply(struct http *h, struct hconn *hc, struct evhttp_request *req, int code,
      const char *type, struct evbuffer *body)
{
	if (type != NULL)
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", type);
	count_answer(h, code);
	evhttp_send_reply(req, code, NULL, body);
}

/* {"error":{"code":C,"message":M}} */
void
reply_error(struct http *h, struct hconn *hc, struct evhttp_request *req, int code,
	    const char *err, const char *message)
{
	struct evbuffer *b = evbuffer_new();
	json_t *o = json_pack("{s:{s:s,s:s?}}", "error", "code", err, "message", message);
	char *text = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;

	if (b == NULL)
		fatalx("http: out of memory");
	if (text != NULL)
		evbuffer_add_printf(b, "%s\n", text);
	free(text);
	json_decref(o);
	reply(h, hc, req, code, "application/json", b);
	evbuffer_free(b);
}

static void
reply_json(struct http *h, struct hconn *hc, struct evhttp_request *req, int code, json_t *o)
{
	struct evbuffer *b = evbuffer_new();
	char *text = json_dumps(o, JSON_COMPACT);

	if (b == NULL || text == NULL)
		fatalx("http: out of memory");
	evbuffer_add(b, text, strlen(text));
	evbuffer_add(b, "\n", 1);
	free(text);
	reply(h, hc, req, code, "application/json", b);
	evbuffer_free(b);
}

/* ---- requests answered by ops ---- */

static struct evbuffer *
conn_output(struct hreq *r)
{
	struct evhttp_connection *evcon = r->req != NULL ? evhttp_request_get_connection(r->req)
							  : NULL;

	return evcon != NULL ? bufferevent_get_output(evhttp_connection_get_bufferevent(evcon))
			     : NULL;
}

/* Drop the op side of r and r itself; the HTTP side was answered or is gone. */
void
request_end(struct hreq *r)
{
	struct http *h = r->h;

	TAILQ_REMOVE(&h->reqs, r, entry);
	if (r->op != NULL)
		bufferevent_free(r->op); /* the server sees the local client close */
	if (r->hc != NULL)
		r->hc->req = NULL;
	free(r);
}

/* Finish an answered request: the connection is free, r goes. */
static void
request_done(struct hreq *r)
{
	struct hconn *hc = r->hc;

	r->hc = NULL;
	if (hc != NULL)
		hc->req = NULL;
	request_end(r);
}

static void
op_send(struct hreq *r, json_t *request)
{
	size_t len;
	char *line = proto_line(request, &len);

	bufferevent_write(r->op, line, len);
	free(line);
}

static void
stream_write(struct hreq *r, const char *event, const char *data, size_t len)
{
	struct evbuffer *b = evbuffer_new(), *out;

	if (b == NULL)
		fatalx("http: out of memory");
	if (event != NULL)
		evbuffer_add_printf(b, "event: %s\ndata: ", event);
	evbuffer_add(b, data, len);
	evbuffer_add(b, "\n\n", event != NULL ? 2 : 0);
	evhttp_send_reply_chunk(r->req, b);
	evbuffer_free(b);
	r->last_write = clock_now(CLOCK_MONOTONIC);
	/* A slow reader: stop taking events; the tick resumes once it drained. */
	if ((out = conn_output(r)) != NULL && evbuffer_get_length(out) > HTTP_STREAM_HIGH) {
		bufferevent_disable(r->op, EV_READ);
		r->paused = true;
	}
}

/* End a stream (its last event was written); r is gone. */
static void
stream_end(struct hreq *r)
{
	struct evhttp_request *req = r->req;

	request_done(r);
	if (req != NULL)
		evhttp_send_reply_end(req); /* may free the connection */
}

static void
stream_start(struct hreq *r)
{
	static const char hello[] = "retry: 3000\n\n";
	struct evkeyvalq *out = evhttp_request_get_output_headers(r->req);
	json_t *st;

	evhttp_add_header(out, "Content-Type", "text/event-stream");
	evhttp_add_header(out, "X-Accel-Buffering", "no");
	count_answer(r->h, 200);
	r->started = true;
	evhttp_send_reply_start(r->req, 200, "OK");
	stream_write(r, NULL, hello, sizeof hello - 1);
	st = json_pack("{s:i,s:s,s:s}", "v", TASKD_PROTO_VERSION, "id", "status", "op",
		       TASKD_OP_STATUS);
	op_send(r, st);
	json_decref(st);
	r->status_out = true;
}

/* One line from the op side; false once r is gone (answered, or its stream ended). */
static bool
op_line(struct hreq *r, const char *line, size_t len)
{
	json_t *o = json_loadb(line, len, 0, NULL), *err, *id, *ev;
	const char *code, *evname;
	struct hconn *hc = r->hc;
	struct http *h = r->h;
	struct evhttp_request *req;
	char *text;

	if (o == NULL) {
		log_warnx("http: unreadable answer from the op layer");
		return true;
	}
	ev = json_object_get(o, "event");
	id = json_object_get(o, "id");
	if (r->started) {
		if (json_is_string(ev)) {
			evname = json_string_value(ev);
			stream_write(r, evname, line, len);
			if (strcmp(evname, "job") != 0) { /* overflow, shutdown: the end */
				json_decref(o);
				stream_end(r);
				return false;
			}
		} else if (json_is_string(id) && strcmp(json_string_value(id), "status") == 0) {
			r->status_out = false;
			if (json_is_true(json_object_get(o, "ok"))) {
				text = json_dumps(json_object_get(o, "result"), JSON_COMPACT);
				if (text != NULL)
					stream_write(r, "status", text, strlen(text));
				free(text);
			}
		}
		json_decref(o);
		return true;
	}
	if (json_is_true(json_object_get(o, "ok")) && r->stream) {
		stream_start(r);
		json_decref(o);
		return true;
	}
	req = r->req;
	request_done(r);
	if (json_is_true(json_object_get(o, "ok"))) {
		reply_json(h, hc, req, 200, json_object_get(o, "result"));
	} else {
		err = json_object_get(o, "error");
		code = json_string_value(json_object_get(err, "code"));
		reply_error(h, hc, req, web_status_of(code), code != NULL ? code : "internal",
			    json_string_value(json_object_get(err, "message")));
	}
	json_decref(o);
	return false;
}

static void
op_read_cb(struct bufferevent *bev, void *arg)
{
	struct hreq *r = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr eol;
	size_t eol_len, n;
	char *line;

	while (!r->paused) {
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos == -1)
			return;
		n = (size_t)eol.pos;
		line = (char *)evbuffer_pullup(in, (ssize_t)n + 1);
		if (!op_line(r, line, n))
			return; /* r and its bufferevent are gone */
		evbuffer_drain(in, n + 1);
	}
}

static void
op_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct hreq *r = arg;
	struct hconn *hc = r->hc;
	struct evhttp_request *req = r->req;

	(void)bev;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)))
		return;
	/* The server closed the local client (taskd stopping, or the stream was cut off). */
	if (r->started) {
		stream_end(r);
		return;
	}
	request_done(r);
	if (req != NULL)
		reply_error(r->h, hc, req, 503, TASKD_ERR_SHUTTING_DOWN, "taskd is not answering");
}

void
op_start(struct http *h, struct hconn *hc, struct evhttp_request *req, json_t *request,
	 bool stream)
{
	struct hreq *r;
	int fd;

	if (stream && h->nstreams >= h->max_conns / 2) {
		reply_error(h, hc, req, 503, TASKD_ERR_TOO_MANY,
			    "too many event streams (half of http.max_connections)");
		return;
	}
	fd = server_add_local(h->td->server, hc->uid, hc->gid);
	if (fd == -1) {
		reply_error(h, hc, req, 503, TASKD_ERR_TOO_MANY,
			    errno == EMFILE ? "taskd has too many connections (limits.max_clients, "
					      "limits.max_clients_per_user): try again later"
					    : "cannot open a connection to taskd's ops");
		return;
	}
	r = xcalloc(1, sizeof *r);
	r->h = h;
	r->hc = hc;
	r->req = req;
	r->stream = stream;
	r->deadline = clock_now(CLOCK_MONOTONIC) + HTTP_OP_TIMEOUT;
	r->op = bufferevent_socket_new(h->td->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (r->op == NULL)
		fatalx("http: cannot create a bufferevent: out of memory");
	bufferevent_setcb(r->op, op_read_cb, NULL, op_event_cb, r);
	bufferevent_enable(r->op, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&h->reqs, r, entry);
	hc->req = r;
	if (stream) {
		hc->stream = true;
		h->nstreams++;
	}
	json_object_set_new(request, "v", json_integer(TASKD_PROTO_VERSION));
	json_object_set_new(request, "id", json_string("api"));
	op_send(r, request);
}

/* Once a second: op deadlines, stream status and heartbeats, stalled requests. */
void
http_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	struct hreq *r, *rnext;
	struct hconn *hc, *cnext;
	struct evbuffer *out;
	struct evhttp_request *req;
	double now = clock_now(CLOCK_MONOTONIC);
	json_t *st;

	(void)fd;
	(void)what;
	for (r = TAILQ_FIRST(&h->reqs); r != NULL; r = rnext) {
		rnext = TAILQ_NEXT(r, entry);
		if (!r->started) {
			if (now < r->deadline || r->req == NULL)
				continue;
			hc = r->hc;
			req = r->req;
			request_done(r);
			reply_error(h, hc, req, 504, TASKD_ERR_INTERNAL, "no answer from taskd");
			continue;
		}
		out = conn_output(r);
		if (r->paused && out != NULL && evbuffer_get_length(out) < HTTP_STREAM_HIGH / 2) {
			r->paused = false;
			bufferevent_enable(r->op, EV_READ);
			op_read_cb(r->op, r);
			continue;
		}
		if (!r->status_out && !r->paused) {
			st = json_pack("{s:i,s:s,s:s}", "v", TASKD_PROTO_VERSION, "id", "status",
				       "op", TASKD_OP_STATUS);
			op_send(r, st);
			json_decref(st);
			r->status_out = true;
		}
		if (now - r->last_write >= HTTP_HEARTBEAT)
			stream_write(r, NULL, ": keep-alive\n\n", 14);
	}
	/* A request must arrive within http.timeout of the connection or its last answer. */
	for (hc = TAILQ_FIRST(&h->conns); hc != NULL; hc = cnext) {
		cnext = TAILQ_NEXT(hc, entry);
		if (!hc->busy && hc->evcon != NULL && now - hc->since > h->timeout)
			evhttp_connection_free(hc->evcon);
	}
}

