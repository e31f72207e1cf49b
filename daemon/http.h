/*
 * The HTTP endpoint (http.listen): /metrics for Prometheus, the read-only
 * JSON API, the live dashboard and its event stream; routes in webapi.h.
 *
 * libevent's evhttp parses and answers; this file adds what a daemon's
 * endpoint needs around it:
 *   - who may ask: loopback peers and loopback Host headers only unless
 *     http.allow_remote; a bearer token (http.token_file) for everything
 *     but /metrics; GET and HEAD only (405 otherwise); nothing here can
 *     change a job.
 *   - bounds: http.max_connections connections at once (when full, the
 *     connection idle longest is closed to make room; at most half of them
 *     may be event streams), 8 KiB of headers, 4 KiB of body, a request must
 *     arrive within http.timeout of the connection (or of its previous
 *     answer), and a reader that stalls that long is cut off.
 *   - the API runs the socket's own ops through a local client
 *     (server_add_local): the same results, errors and rules of who sees
 *     what. Over TCP the reader acts as the daemon's own user (sees every
 *     job); on a unix socket path, as the peer's user (SO_PEERCRED). A
 *     taskd running as root therefore serves the API and dashboard over TCP
 *     only with a token (else 403; /metrics still answers).
 *
 * Loop thread only.
 */
#ifndef TASKD_HTTP_H
#define TASKD_HTTP_H

struct http;
struct metrics_out;
struct taskd;

/* Start serving td->cfg->http (NULL, and no error, when http.listen is not set). */
struct http *http_new(struct taskd *td, char **cause);
/*
 * After a reload: the token file is read again and limits apply; a new
 * listen address or socket mode needs a restart (logged). -1 with *cause
 * if the token file cannot be used (the old token stays).
 */
int http_reconfigure(struct http *h, char **cause);
/* Stop listening, end streams and connections, free (NULL is fine). */
void http_free(struct http *h);
/* "127.0.0.1:9181" or the socket path (the port a :0 got), or NULL. */
const char *http_address(const struct http *h);

/* The endpoint's own metrics (nothing when h is NULL). */
void http_metrics(struct http *h, struct metrics_out *m);

#endif
