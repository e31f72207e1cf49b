/*
 * The HTTP endpoint's requests, as pure functions (http.c does the I/O):
 * which route a path names, the op request a /api path and its query
 * string turn into (the API runs the socket's own read-only ops, so it
 * answers with exactly their results and errors), which HTTP status an op
 * error becomes, and the bearer token a request carries. Unit-tested in
 * tests/unit/test-http.c.
 *
 *   GET /metrics                          exposition (monitor.c)
 *   GET /api/status                       {"op":"status"}
 *   GET /api/jobs?state=&label=K=V&name=&id=&limit=&array=
 *                                         {"op":"list", ...}
 *   GET /api/jobs/ID                      {"op":"show","job":ID}
 *   GET /api/arrays/ID                    {"op":"show","array":ID}
 *   GET /api/jobs/ID/logs?stream=&offset=&max=
 *                                         {"op":"logs","job":ID, ...}
 *   GET /api/events?state=&label=&name=&id=
 *                                         {"op":"subscribe", ...} as Server-Sent Events
 *   GET /, /app.js, /style.css            the dashboard (web/)
 */
#ifndef TASKD_WEBAPI_H
#define TASKD_WEBAPI_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

enum web_route {
	WEB_NOT_FOUND = 0,
	WEB_METRICS,
	WEB_ASSET,  /* target->asset: the path of an embedded file */
	WEB_API,    /* target->request: one op, answered once */
	WEB_EVENTS, /* target->request: a subscribe, then a stream */
	WEB_BAD,    /* a route, with a query it cannot take: target->status, ->message */
};

struct web_target {
	enum web_route route;
	const char *asset;   /* WEB_ASSET */
	json_t *request;     /* WEB_API, WEB_EVENTS: the op request (no "v"/"id" yet), owned */
	int status;          /* WEB_BAD */
	char *message;       /* WEB_BAD, malloc'd */
	char *token;         /* an access_token query parameter, malloc'd, or NULL */
};

/*
 * What path (percent-encoded, without the query) and query (or NULL) ask
 * for. asset_exists says whether an embedded file has that path.
 */
void web_route(const char *path, const char *query, bool (*asset_exists)(const char *),
	       struct web_target *t);
void web_target_free(struct web_target *t);

/* The HTTP status for an op error code (bad_request 400, not_found 404, ...). */
int web_status_of(const char *code);

/* Constant-time comparison of a token given with the one expected. */
bool web_token_equal(const char *want, const char *given);
/*
 * The bearer token of an Authorization header ("Bearer X"), or NULL; the
 * value of cookie name in a Cookie header into buf, or NULL.
 */
const char *web_bearer(const char *authorization);
const char *web_cookie(const char *cookie_header, const char *name, char *buf, size_t len);

/* A token as read from a file: trimmed of surrounding whitespace; -1 with *why if unusable. */
#define WEB_TOKEN_MIN 16
#define WEB_TOKEN_MAX 1024
int web_token_parse(const char *text, size_t len, char **token, char **why);

#endif
