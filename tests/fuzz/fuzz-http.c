/*
 * libFuzzer target: what the HTTP endpoint makes of a client's request and
 * of the configuration's addresses, before evhttp's own parsing is trusted
 * with the rest.
 *
 * The input is lines: 1 the path with its query ("/api/jobs?state=x"), 2 an
 * Accept header, 3 a Host header, 4 a Cookie header, 5 an Authorization
 * header, 6 an http.listen value, 7 a jobs.webhook URL; the whole input is
 * also read as a token file. Each goes to its parser (web_route,
 * metrics_negotiate, addr_host_header_is_loopback, web_cookie, web_bearer,
 * addr_parse_listen, addr_parse_url, web_token_parse), whose answers must
 * hold together: a route with an op has an op request naming the op, a bad
 * query has a 400 and a message, a parsed address or URL is sane.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "addr.h"
#include "metrics.h"
#include "webapi.h"
#include "xmalloc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NLINES 7

static bool
asset(const char *path)
{
	return strcmp(path, "/app.js") == 0 || strcmp(path, "/style.css") == 0;
}

static void
check_route(const char *target)
{
	char *path = xstrdup(target), *q = strchr(path, '?');
	struct web_target t;
	const char *op;

	if (q != NULL)
		*q++ = '\0';
	web_route(path, q, asset, &t);
	switch (t.route) {
	case WEB_API:
	case WEB_EVENTS:
		if (t.request == NULL || !json_is_object(t.request))
			abort();
		op = json_string_value(json_object_get(t.request, "op"));
		if (op == NULL || (t.route == WEB_EVENTS && strcmp(op, "subscribe") != 0))
			abort();
		break;
	case WEB_BAD:
		if (t.status != 400 || t.message == NULL || t.request != NULL)
			abort();
		break;
	case WEB_ASSET:
		if (t.asset == NULL)
			abort();
		break;
	default:
		if (t.request != NULL)
			abort();
	}
	web_target_free(&t);
	free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = xmalloc(size + 1), *line[NLINES] = { 0 }, *p, *nl, buf[64], *why = NULL;
	struct listen_addr la;
	struct http_url url;
	char *token = NULL;
	size_t i;

	memcpy(text, data, size);
	text[size] = '\0';
	if (web_token_parse(text, size, &token, &why) == 0) {
		if (strlen(token) < WEB_TOKEN_MIN || !web_token_equal(token, token))
			abort();
		free(token);
	} else {
		free(why);
	}
	if (strlen(text) != size) { /* a NUL byte: no HTTP line carries one */
		free(text);
		return 0;
	}
	for (i = 0, p = text; i < NLINES && p != NULL; i++) {
		line[i] = p;
		if ((nl = strchr(p, '\n')) != NULL)
			*nl++ = '\0';
		p = nl;
	}
	for (i = 0; i < NLINES; i++)
		if (line[i] == NULL)
			line[i] = "";
	check_route(line[0]);
	(void)metrics_negotiate(line[1]);
	(void)addr_host_header_is_loopback(line[2]);
	(void)web_cookie(line[3], "taskd_token", buf, sizeof buf);
	(void)web_bearer(line[4]);
	if (addr_parse_listen(line[5], &la, &why) == 0) {
		if (la.port < 0 || la.port > 65535 || (la.is_unix && la.path[0] != '/'))
			abort();
	} else {
		free(why);
	}
	if (addr_parse_url(line[6], &url, &why) == 0) {
		if (url.port < 1 || url.port > 65535 || url.target[0] != '/' || url.host[0] == '\0')
			abort();
		addr_url_free(&url);
	} else {
		free(why);
	}
	free(text);
	return 0;
}
