/*
 * The HTTP side (http.h): its listening socket and connections (counted,
 * bounded, checked against http.allow_remote and the token), routing of
 * each request to an asset, the metrics or an op (http-op.c), and setting
 * up and reconfiguring. Structures shared with http-op.c: http-private.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include <taskd/protocol.h>

#include "addr.h"
#include "taskd.h"
#include "http.h"
#include "http-private.h"
#include "listen.h"
#include "log.h"
#include "metrics.h"
#include "monitor.h"
#include "web.h"
#include "webapi.h"
#include "xmalloc.h"

static void http_close_cb(struct evhttp_connection *, void *);

/* ---- connections ---- */

static struct hconn *
conn_of(struct http *h, struct evhttp_connection *evcon)
{
	struct hconn *hc;

	TAILQ_FOREACH(hc, &h->conns, entry)
		if (hc->evcon == evcon)
			return hc;
	return NULL;
}

static void
conn_forget(struct hconn *hc)
{
	struct http *h = hc->h;

	TAILQ_REMOVE(&h->conns, hc, entry);
	h->nconns--;
	if (hc->stream)
		h->nstreams--;
	free(hc);
}

/* Close the connection idle longest (no request in hand), to make room. */
static bool
evict_one(struct http *h)
{
	struct hconn *hc, *victim = NULL;

	TAILQ_FOREACH(hc, &h->conns, entry)
		if (!hc->busy && hc->evcon != NULL && (victim == NULL || hc->since < victim->since))
			victim = hc;
	if (victim == NULL)
		return false;
	h->evicted++;
	evhttp_connection_free(victim->evcon); /* http_close_cb forgets it */
	return true;
}

/* Loopback peers only, unless allowed; on a unix socket, who the peer is. */
static bool
peer_allowed(struct http *h, struct hconn *hc, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	struct ucred cred;
	char host[INET6_ADDRSTRLEN];

	if (h->addr.is_unix) {
		len = sizeof cred;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
			return false;
		hc->uid = cred.uid;
		hc->gid = cred.gid;
		return true;
	}
	hc->uid = getuid();
	hc->gid = getgid();
	/*
	 * An answer bigger than one write of the bufferevent (16 KiB, /metrics
	 * is about that) ends in a small segment that Nagle would hold until the
	 * client's delayed ACK: 40 ms per request.
	 */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){ 1 }, sizeof(int));
	if (getpeername(fd, (struct sockaddr *)&ss, &len) == -1)
		return false;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
	else if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
	else
		return false;
	hc->remote = strncmp(host, "127.", 4) != 0 && strcmp(host, "::1") != 0 &&
		     strncmp(host, "::ffff:127.", 11) != 0;
	return !hc->remote || h->allow_remote;
}

/*
 * evhttp made a connection around the bufferevent we gave it: once the
 * accept callback has returned, the bufferevent's callback argument is
 * that connection. Learn it, watch it close, and bound the count.
 */
static void
http_adopt_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;
	struct hconn *hc, *next;
	bufferevent_event_cb eventcb;
	void *cbarg;

	(void)fd;
	(void)what;
	for (hc = TAILQ_FIRST(&h->conns); hc != NULL; hc = next) {
		next = TAILQ_NEXT(hc, entry);
		if (hc->evcon != NULL)
			continue;
		h->unadopted--;
		bufferevent_getcb(hc->bev, NULL, NULL, &eventcb, &cbarg);
		if (eventcb == NULL || cbarg == NULL) {
			/* evhttp already gave up on it (it freed the connection). */
			bufferevent_decref(hc->bev);
			conn_forget(hc);
			continue;
		}
		hc->evcon = cbarg;
		evhttp_connection_set_closecb(hc->evcon, http_close_cb, hc);
		bufferevent_decref(hc->bev);
		if (!peer_allowed(h, hc, bufferevent_getfd(hc->bev))) {
			log_info("http: refusing a connection from a remote peer "
				 "(http.allow_remote is false)");
			h->refused++;
			evhttp_connection_free(hc->evcon);
		}
	}
	while (h->nconns > h->max_conns && evict_one(h))
		;
	if (h->listener != NULL && !evtimer_pending(h->retry_ev, NULL))
		evconnlistener_enable(h->listener);
}

/* evhttp's hook for a new connection's bufferevent: the moment we learn of it. */
static struct bufferevent *
http_bev_cb(struct event_base *base, void *arg)
{
	struct http *h = arg;
	struct hconn *hc = xcalloc(1, sizeof *hc);

	hc->h = h;
	hc->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (hc->bev == NULL)
		fatalx("http: cannot create a bufferevent: out of memory");
	bufferevent_incref(hc->bev); /* until adopted: evhttp may free it before */
	hc->since = clock_now(CLOCK_MONOTONIC);
	TAILQ_INSERT_TAIL(&h->conns, hc, entry);
	h->nconns++;
	h->unadopted++;
	event_active(h->adopt_ev, EV_TIMEOUT, 0);
	/* A flood of connections is taken in batches, making room as it goes. */
	if (h->unadopted >= HTTP_ADOPT_BATCH && h->listener != NULL)
		evconnlistener_disable(h->listener);
	return hc->bev;
}

static void
http_close_cb(struct evhttp_connection *evcon, void *arg)
{
	struct hconn *hc = arg;
	struct hreq *r = hc->req;

	(void)evcon;
	if (r != NULL) {
		/*
		 * evhttp detached the request it handed us (a failed connection)
		 * and leaves it to us; at evhttp_free it still owns it.
		 */
		if (evhttp_request_get_connection(r->req) == NULL)
			evhttp_request_free(r->req);
		r->req = NULL;
		r->hc = NULL;
		hc->req = NULL;
		request_end(r);
	}
	conn_forget(hc);
}

static void
http_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct http *h = arg;
	const struct timeval tv = { 0, 200000 };

	log_warn("http: accept");
	evconnlistener_disable(l);
	evtimer_add(h->retry_ev, &tv);
}

static void
http_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct http *h = arg;

	(void)fd;
	(void)what;
	if (h->listener != NULL)
		evconnlistener_enable(h->listener);
}

/* ---- routing ---- */

static const char *
header(struct evhttp_request *req, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* The token a request carries: Authorization: Bearer, ?access_token=, or the cookie. */
static bool
authorized(struct http *h, struct evhttp_request *req, const struct web_target *t,
	   bool *from_query)
{
	char buf[WEB_TOKEN_MAX + 1];
	const char *given;

	*from_query = false;
	if (h->token == NULL)
		return true;
	if ((given = web_bearer(header(req, "Authorization"))) != NULL)
		return web_token_equal(h->token, given);
	if (t->token != NULL) {
		*from_query = true;
		return web_token_equal(h->token, t->token);
	}
	given = web_cookie(header(req, "Cookie"), HTTP_TOKEN_COOKIE, buf, sizeof buf);
	return web_token_equal(h->token, given);
}

static void
serve_metrics(struct http *h, struct hconn *hc, struct evhttp_request *req)
{
	enum metrics_format f = metrics_negotiate(header(req, "Accept"));
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		fatalx("http: out of memory");
	monitor_render(h->td, b, f);
	reply(h, hc, req, 200, metrics_content_type(f), b);
	evbuffer_free(b);
}

static void
serve_asset(struct http *h, struct hconn *hc, struct evhttp_request *req, const char *path,
	    bool set_cookie)
{
	const struct web_asset *a = web_asset_find(path);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *inm = header(req, "If-None-Match");
	struct evbuffer *b;
	char cookie[WEB_TOKEN_MAX + 96];

	if (a == NULL) {
		reply_error(h, hc, req, 404, TASKD_ERR_NOT_FOUND, "no such page");
		return;
	}
	evhttp_add_header(out, "ETag", a->etag);
	evhttp_add_header(out, "Content-Security-Policy", CSP);
	evhttp_add_header(out, "X-Frame-Options", "DENY");
	if (set_cookie) {
		/* The browser's later requests (fetch, EventSource) carry it. */
		snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict",
			 HTTP_TOKEN_COOKIE, h->token);
		evhttp_add_header(out, "Set-Cookie", cookie);
	}
	if (inm != NULL && strcmp(inm, a->etag) == 0 && !set_cookie) {
		reply(h, hc, req, 304, NULL, NULL);
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		fatalx("http: out of memory");
	evbuffer_add_reference(b, a->data, a->len, NULL, NULL);
	reply(h, hc, req, 200, a->type, b);
	evbuffer_free(b);
}

static void
http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http *h = arg;
	struct hconn *hc = conn_of(h, evhttp_request_get_connection(req));
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const char *host = header(req, "Host");
	struct web_target t;
	bool from_query;

	if (hc == NULL) {
		/* Not adopted (cannot happen: adoption runs before any read). */
		reply_error(h, NULL, req, 503, TASKD_ERR_INTERNAL, "connection not ready");
		return;
	}
	hc->busy = true;
	evhttp_request_set_on_complete_cb(req, http_complete_cb, hc);
	common_headers(req);
	if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply_error(h, hc, req, 405, "method_not_allowed",
			    "this endpoint is read-only: GET and HEAD only");
		return;
	}
	if (!h->allow_remote && !h->addr.is_unix && host != NULL &&
	    !addr_host_header_is_loopback(host)) {
		reply_error(h, hc, req, 403, TASKD_ERR_FORBIDDEN,
			    "this endpoint answers to loopback host names only "
			    "(http.allow_remote is false)");
		return;
	}
	if (path == NULL || *path == '\0')
		path = "/";
	web_route(path, evhttp_uri_get_query(uri), web_asset_exists, &t);
	if (t.route != WEB_METRICS && !authorized(h, req, &t, &from_query)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer realm=\"taskd\"");
		reply_error(h, hc, req, 401, "unauthorized",
			    "a valid token is required (http.token_file)");
		web_target_free(&t);
		return;
	}
	/* Jobs go to other hosts only to token holders. */
	if (t.route != WEB_METRICS && t.route != WEB_NOT_FOUND && hc->remote && h->token == NULL) {
		reply_error(h, hc, req, 403, TASKD_ERR_FORBIDDEN,
			    "the API and the dashboard are served to other hosts only with "
			    "http.token_file set");
		web_target_free(&t);
		return;
	}
	if (t.route != WEB_METRICS && t.route != WEB_NOT_FOUND && !h->addr.is_unix &&
	    !h->anonymous_ok) {
		reply_error(h, hc, req, 403, TASKD_ERR_FORBIDDEN,
			    "taskd runs as root and shows every user's jobs: over TCP it serves "
			    "them only with http.token_file set (or listen on a socket path)");
		web_target_free(&t);
		return;
	}
	switch (t.route) {
	case WEB_METRICS:
		serve_metrics(h, hc, req);
		break;
	case WEB_ASSET:
		serve_asset(h, hc, req, t.asset, from_query && t.token != NULL);
		break;
	case WEB_API:
	case WEB_EVENTS:
		if (cmd == EVHTTP_REQ_HEAD && t.route == WEB_EVENTS) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
					  "text/event-stream");
			reply(h, hc, req, 200, NULL, NULL);
			break;
		}
		op_start(h, hc, req, t.request, t.route == WEB_EVENTS);
		break;
	case WEB_BAD:
		reply_error(h, hc, req, t.status, TASKD_ERR_BAD_REQUEST, t.message);
		break;
	case WEB_NOT_FOUND:
	default:
		reply_error(h, hc, req, 404, TASKD_ERR_NOT_FOUND, "no such page");
		break;
	}
	web_target_free(&t);
}

/* ---- setting up ---- */

static int
read_token(const char *path, char **token, char **cause)
{
	char buf[WEB_TOKEN_MAX + 64], *why = NULL;
	struct stat st;
	ssize_t n;
	int fd;

	*token = NULL;
	if (path == NULL)
		return 0;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) == -1) {
		*cause = xprintf("http.token_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode) || (st.st_mode & 0007) != 0) {
		close(fd);
		*cause = xprintf("http.token_file %s: must be a regular file not readable by "
				 "others (chmod o-rwx)", path);
		return -1;
	}
	n = read(fd, buf, sizeof buf);
	close(fd);
	if (n < 0) {
		*cause = xprintf("http.token_file %s: %s", path, strerror(errno));
		return -1;
	}
	if (web_token_parse(buf, (size_t)n, token, &why) == -1) {
		*cause = xprintf("http.token_file %s: %s", path, why);
		free(why);
		return -1;
	}
	return 0;
}

static void
apply_limits(struct http *h, const struct config *cfg)
{
	struct timeval tv;

	h->max_conns = cfg->http.max_connections;
	h->timeout = cfg->http.timeout;
	h->allow_remote = cfg->http.allow_remote;
	h->anonymous_ok = h->token != NULL || geteuid() != 0;
	tv = clock_timeval(h->timeout);
	evhttp_set_timeout_tv(h->eh, &tv);
}

/* A listening TCP socket on the literal address (port 0: any free port). */
static int
bind_tcp(const struct listen_addr *a, char **cause)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, on = 1;

	memset(&ss, 0, sizeof ss);
	if (inet_pton(AF_INET, a->host, &((struct sockaddr_in *)&ss)->sin_addr) == 1) {
		ss.ss_family = AF_INET;
		((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)a->port);
		len = sizeof(struct sockaddr_in);
	} else {
		inet_pton(AF_INET6, a->host, &((struct sockaddr_in6 *)&ss)->sin6_addr);
		ss.ss_family = AF_INET6;
		((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)a->port);
		len = sizeof(struct sockaddr_in6);
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		*cause = xprintf("http: socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
	if (ss.ss_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
	if (bind(fd, (struct sockaddr *)&ss, len) == -1) {
		*cause = xprintf("http.listen %s: %s", a->host, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static char *
bound_address(int fd, const struct listen_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;
	int port = a->port;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
		port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						     : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return strchr(a->host, ':') != NULL ? xprintf("[%s]:%d", a->host, port)
					    : xprintf("%s:%d", a->host, port);
}

struct http *
http_new(struct taskd *td, char **cause)
{
	const struct config *cfg = td->cfg;
	struct http *h;
	struct stat st;
	char *why = NULL;
	int fd;

	if (cfg->http.listen == NULL)
		return NULL;
	h = xcalloc(1, sizeof *h);
	h->td = td;
	TAILQ_INIT(&h->conns);
	TAILQ_INIT(&h->reqs);
	if (addr_parse_listen(cfg->http.listen, &h->addr, &why) == -1) {
		*cause = xprintf("http.listen: %s", why);
		free(why);
		free(h);
		return NULL;
	}
	if (read_token(cfg->http.token_file, &h->token, cause) == -1) {
		free(h);
		return NULL;
	}
	fd = h->addr.is_unix ? listen_bind(h->addr.path, cfg->http.socket_mode, cause)
			     : bind_tcp(&h->addr, cause);
	if (fd == -1) {
		free(h->token);
		free(h);
		return NULL;
	}
	if (h->addr.is_unix && stat(h->addr.path, &st) == 0) {
		h->dev = st.st_dev;
		h->ino = st.st_ino;
	}
	h->address = h->addr.is_unix ? xstrdup(h->addr.path) : bound_address(fd, &h->addr);
	h->listen = xstrdup(cfg->http.listen);
	h->socket_mode = cfg->http.socket_mode;
	h->eh = evhttp_new(td->base);
	h->listener = evconnlistener_new(td->base, NULL, NULL,
					 LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 128, fd);
	h->adopt_ev = event_new(td->base, -1, 0, http_adopt_cb, h);
	h->tick_ev = event_new(td->base, -1, EV_PERSIST, http_tick_cb, h);
	h->retry_ev = evtimer_new(td->base, http_retry_cb, h);
	if (h->eh == NULL || h->listener == NULL || h->adopt_ev == NULL || h->tick_ev == NULL ||
	    h->retry_ev == NULL)
		fatalx("http: cannot set up the endpoint: out of memory or descriptors");
	if (evhttp_bind_listener(h->eh, h->listener) == NULL)
		fatalx("http: cannot serve on the listening socket");
	evconnlistener_set_error_cb(h->listener, http_accept_error_cb);
	evhttp_set_bevcb(h->eh, http_bev_cb, h);
	evhttp_set_gencb(h->eh, http_request_cb, h);
	/* Every method reaches http_request_cb, which answers 405 to all but GET and HEAD. */
	evhttp_set_allowed_methods(h->eh, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						  EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						  EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
						  EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
	evhttp_set_max_headers_size(h->eh, HTTP_MAX_HEADERS);
	evhttp_set_max_body_size(h->eh, HTTP_MAX_BODY);
	evhttp_set_default_content_type(h->eh, "text/plain; charset=utf-8");
	apply_limits(h, cfg);
	event_add(h->tick_ev, &(const struct timeval){ 1, 0 });
	if (!h->anonymous_ok)
		log_warnx("http: taskd runs as root and http.token_file is not set: the API and "
			  "dashboard answer 403 over TCP (every user's jobs would be shown); "
			  "/metrics is served");
	log_info("http: serving on %s%s", h->address,
		 h->token != NULL ? " (token required but for /metrics)" : "");
	return h;
}

int
http_reconfigure(struct http *h, char **cause)
{
	const struct config *cfg;
	char *token;

	if (h == NULL)
		return 0;
	cfg = h->td->cfg;
	if (cfg->http.listen == NULL || strcmp(cfg->http.listen, h->listen) != 0 ||
	    cfg->http.socket_mode != h->socket_mode)
		log_warnx("reload: http.listen and http.socket_mode changes take effect after a "
			  "restart");
	if (read_token(cfg->http.token_file, &token, cause) == -1) {
		apply_limits(h, cfg);
		return -1;
	}
	free(h->token);
	h->token = token;
	apply_limits(h, cfg);
	return 0;
}

const char *
http_address(const struct http *h)
{
	return h != NULL ? h->address : NULL;
}

void
http_free(struct http *h)
{
	struct hreq *r;
	struct hconn *hc;
	struct stat st;

	if (h == NULL)
		return;
	/* Streams end and API calls are dropped: evhttp_free frees their requests. */
	while ((r = TAILQ_FIRST(&h->reqs)) != NULL) {
		if (r->hc != NULL)
			r->hc->req = NULL;
		r->hc = NULL;
		request_end(r);
	}
	evhttp_free(h->eh); /* closes the listener and every connection (http_close_cb) */
	while ((hc = TAILQ_FIRST(&h->conns)) != NULL) {
		/* Accepted in the loop's last iteration, not adopted yet. */
		if (hc->evcon == NULL)
			bufferevent_decref(hc->bev);
		conn_forget(hc);
	}
	event_free(h->adopt_ev);
	event_free(h->tick_ev);
	event_free(h->retry_ev);
	if (h->addr.is_unix && stat(h->addr.path, &st) == 0 && st.st_dev == h->dev &&
	    st.st_ino == h->ino)
		unlink(h->addr.path);
	free(h->address);
	free(h->listen);
	free(h->token);
	free(h);
}

void
http_metrics(struct http *h, struct metrics_out *m)
{
	static const char *const classes[] = { NULL, "1xx", "2xx", "3xx", "4xx", "5xx" };
	char labels[32];
	int i;

	if (h == NULL)
		return;
	metrics_gauge(m, "taskd_http_connections", "open connections to the HTTP endpoint",
		      h->nconns);
	metrics_gauge(m, "taskd_http_streams", "open event streams (dashboards)", h->nstreams);
	metrics_family(m, "taskd_http_responses", METRIC_COUNTER, NULL,
		       "HTTP answers by status class");
	for (i = 1; i < 6; i++)
		metrics_sample_uint(m, metrics_labels(labels, sizeof labels, "code", classes[i],
						      NULL), h->codes[i]);
	metrics_counter(m, "taskd_http_evicted",
			"idle connections closed to make room (http.max_connections)", h->evicted);
	metrics_counter(m, "taskd_http_refused",
			"connections refused from remote peers (http.allow_remote false)", h->refused);
}
