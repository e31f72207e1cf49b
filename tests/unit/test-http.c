/*
 * Unit tests for the HTTP endpoint's pure parts: daemon/addr.c (listen
 * addresses, webhook URLs, loopback Host headers) and daemon/webapi.c
 * (routes, the op requests a path and query turn into, error statuses,
 * tokens from headers, cookies and files).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "addr.h"
#include "webapi.h"
#include "xmalloc.h"

static void
test_listen(void **state)
{
	struct listen_addr a;
	char *why;

	(void)state;
	assert_int_equal(addr_parse_listen("127.0.0.1:9181", &a, &why), 0);
	assert_false(a.is_unix);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 9181);
	assert_true(a.loopback);
	assert_int_equal(addr_parse_listen("localhost:0", &a, &why), 0);
	assert_string_equal(a.host, "127.0.0.1");
	assert_int_equal(a.port, 0);
	assert_int_equal(addr_parse_listen("[::1]:80", &a, &why), 0);
	assert_string_equal(a.host, "::1");
	assert_true(a.loopback);
	assert_int_equal(addr_parse_listen("127.3.4.5:1", &a, &why), 0);
	assert_true(a.loopback);
	assert_int_equal(addr_parse_listen("0.0.0.0:9181", &a, &why), 0);
	assert_false(a.loopback);
	assert_int_equal(addr_parse_listen("[::]:9181", &a, &why), 0);
	assert_false(a.loopback);
	assert_int_equal(addr_parse_listen("192.168.1.2:9181", &a, &why), 0);
	assert_false(a.loopback);
	assert_int_equal(addr_parse_listen("/run/taskd/http.sock", &a, &why), 0);
	assert_true(a.is_unix);
	assert_true(a.loopback);
	assert_string_equal(a.path, "/run/taskd/http.sock");

	static const char *const bad[] = {
		"", "9181", "127.0.0.1", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1",
		"127.0.0.1:80x", "host:80", "::1:80", "[::1", "[::1]x", "[]:80", "[1.2.3.4]:80x",
		"relative.sock",
		("/a/very/long/path/that/does/not/fit/in/a/sockaddr_un/because/it/is/longer/than/"
		 "one/hundred/and/seven/bytes/x.sock"),
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		if (addr_parse_listen(bad[i], &a, &why) != -1)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(why);
		free(why);
	}
}

static void
test_url(void **state)
{
	struct http_url u;
	char *why;

	(void)state;
	assert_int_equal(addr_parse_url("http://127.0.0.1:8080/hook?a=1", &u, &why), 0);
	assert_string_equal(u.host, "127.0.0.1");
	assert_int_equal(u.port, 8080);
	assert_string_equal(u.target, "/hook?a=1");
	assert_string_equal(u.host_header, "127.0.0.1:8080");
	addr_url_free(&u);
	assert_int_equal(addr_parse_url("HTTP://Hooks.Example", &u, &why), 0);
	assert_string_equal(u.host, "Hooks.Example");
	assert_int_equal(u.port, 80);
	assert_string_equal(u.target, "/");
	addr_url_free(&u);
	assert_int_equal(addr_parse_url("http://[::1]:9/x", &u, &why), 0);
	assert_string_equal(u.host, "::1");
	assert_string_equal(u.host_header, "[::1]:9");
	addr_url_free(&u);
	assert_int_equal(addr_parse_url("http://h?q", &u, &why), 0);
	assert_string_equal(u.target, "/?q");
	addr_url_free(&u);

	static const char *const bad[] = {
		"https://h/", "ftp://h/", "h/x", "http://", "http:///x", "http://u@h/",
		"http://h:0/", "http://h:99999/", "http://h/#frag", "http://h/a b", "http://-h/",
		"http://h_x/", "http://[zz]/", "http://h:/",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		why = NULL;
		if (addr_parse_url(bad[i], &u, &why) != -1)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(why);
		free(why);
	}
}

static void
test_host_header(void **state)
{
	(void)state;
	assert_true(addr_host_header_is_loopback("127.0.0.1:9181"));
	assert_true(addr_host_header_is_loopback("127.0.0.1"));
	assert_true(addr_host_header_is_loopback("localhost:80"));
	assert_true(addr_host_header_is_loopback("LOCALHOST"));
	assert_true(addr_host_header_is_loopback("[::1]:9181"));
	assert_false(addr_host_header_is_loopback("evil.example:9181"));
	assert_false(addr_host_header_is_loopback("127.0.0.1.evil.example"));
	assert_false(addr_host_header_is_loopback("10.0.0.1:9181"));
	assert_false(addr_host_header_is_loopback("127.0.0.1:x"));
	assert_false(addr_host_header_is_loopback(""));
	assert_false(addr_host_header_is_loopback(NULL));
}

static bool
have_asset(const char *path)
{
	return strcmp(path, "/app.js") == 0;
}

/* The route of path?query, and the op request as compact JSON ("" if none). */
static enum web_route
route(const char *path, const char *query, char **json)
{
	struct web_target t;
	enum web_route r;

	web_route(path, query, have_asset, &t);
	r = t.route;
	*json = t.request != NULL ? json_dumps(t.request, JSON_COMPACT | JSON_SORT_KEYS)
				  : xstrdup(t.route == WEB_BAD ? t.message : "");
	web_target_free(&t);
	return r;
}

static void
expect_route(const char *path, const char *query, enum web_route want, const char *json)
{
	char *got;
	enum web_route r = route(path, query, &got);

	if (r != want || strcmp(got, json) != 0)
		fail_msg("%s?%s: route %d \"%s\", expected %d \"%s\"", path, query ? query : "", r,
			 got, want, json);
	free(got);
}

static void
test_routes(void **state)
{
	(void)state;
	expect_route("/metrics", NULL, WEB_METRICS, "");
	expect_route("/", NULL, WEB_ASSET, "");
	expect_route("/index.html", NULL, WEB_ASSET, "");
	expect_route("/app.js", NULL, WEB_ASSET, "");
	expect_route("/nope.js", NULL, WEB_NOT_FOUND, "");
	expect_route("/api", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/status", NULL, WEB_API, "{\"op\":\"status\"}");
	expect_route("/api/status/", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/jobs", NULL, WEB_API, "{\"op\":\"list\"}");
	expect_route("/api/jobs", "state=running&label=grp%3Dx=a+b&name=n%C3%A9&limit=5&id=3&id=4",
		     WEB_API,
		     "{\"ids\":[3,4],\"labels\":{\"grp\":\"x=a b\"},\"limit\":5,\"name\":\"n\xc3\xa9\","
		     "\"op\":\"list\",\"state\":\"running\"}");
	expect_route("/api/jobs/17", NULL, WEB_API, "{\"job\":17,\"op\":\"show\"}");
	expect_route("/api/jobs", "array=7", WEB_API, "{\"array\":7,\"op\":\"list\"}");
	expect_route("/api/arrays/7", NULL, WEB_API, "{\"array\":7,\"op\":\"show\"}");
	expect_route("/api/arrays/x", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/arrays/7/more", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/jobs/17/logs", "stream=stderr&offset=10&max=100", WEB_API,
		     "{\"job\":17,\"max\":100,\"offset\":10,\"op\":\"logs\",\"stream\":\"stderr\"}");
	expect_route("/api/jobs/017", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/jobs/0", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/jobs/x", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/jobs/17/nope", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/jobs/99999999999999999999", NULL, WEB_NOT_FOUND, "");
	expect_route("/api/events", "state=done&state=failed&label=a=1", WEB_EVENTS,
		     "{\"labels\":{\"a\":\"1\"},\"op\":\"subscribe\",\"states\":[\"done\",\"failed\"]}");
	/* The token rides along with any route and is not an op field. */
	expect_route("/api/status", "access_token=abc", WEB_API, "{\"op\":\"status\"}");
	/* Bad queries: a 400 with the reason. */
	expect_route("/api/status", "state=done", WEB_BAD, "unknown query parameter \"state\"");
	expect_route("/api/jobs", "state=a&state=b", WEB_BAD, "state may be given once here");
	expect_route("/api/jobs", "limit=-1", WEB_BAD, "limit must be a whole number, not \"-1\"");
	expect_route("/api/jobs", "limit=1e3", WEB_BAD, "limit must be a whole number, not \"1e3\"");
	expect_route("/api/jobs", "label=novalue", WEB_BAD,
		     "label must be KEY=VALUE, not \"novalue\"");
	expect_route("/api/jobs", "name=%ff", WEB_BAD, "\"name\" is not valid UTF-8");
	expect_route("/api/jobs", "name=%4", WEB_BAD, "malformed percent-encoding in the query string");
	expect_route("/api/jobs", "name=%00", WEB_BAD,
		     "malformed percent-encoding in the query string");
	expect_route("/api/jobs/1/logs", "offset=x", WEB_BAD, "offset must be a whole number, not \"x\"");
}

static void
test_many_params(void **state)
{
	char q[2048] = "";
	char *got;
	int i;

	(void)state;
	for (i = 0; i < 65; i++)
		strcat(q, "id=1&");
	assert_int_equal(route("/api/jobs", q, &got), WEB_BAD);
	assert_string_equal(got, "more than 64 query parameters");
	free(got);
}

static void
test_status_of(void **state)
{
	(void)state;
	assert_int_equal(web_status_of("bad_request"), 400);
	assert_int_equal(web_status_of("not_found"), 404);
	assert_int_equal(web_status_of("forbidden"), 403);
	assert_int_equal(web_status_of("shutting_down"), 503);
	assert_int_equal(web_status_of("too_many_requests"), 429);
	assert_int_equal(web_status_of("internal"), 500);
	assert_int_equal(web_status_of("something_new"), 500);
	assert_int_equal(web_status_of(NULL), 500);
}

static void
test_tokens(void **state)
{
	char buf[64], *tok, *why;

	(void)state;
	assert_true(web_token_equal("secret-token-123", "secret-token-123"));
	assert_false(web_token_equal("secret-token-123", "secret-token-124"));
	assert_false(web_token_equal("secret-token-123", "secret-token-12"));
	assert_false(web_token_equal("secret-token-123", "secret-token-1234"));
	assert_false(web_token_equal("secret-token-123", ""));
	assert_false(web_token_equal("secret-token-123", NULL));
	assert_string_equal(web_bearer("Bearer abc"), "abc");
	assert_string_equal(web_bearer("bearer   abc"), "abc");
	assert_null(web_bearer("Basic abc"));
	assert_null(web_bearer("Bearer "));
	assert_null(web_bearer(NULL));
	assert_string_equal(web_cookie("a=1; taskd_token=xyz; b=2", "taskd_token", buf, sizeof buf),
			    "xyz");
	assert_string_equal(web_cookie("taskd_token=xyz", "taskd_token", buf, sizeof buf), "xyz");
	assert_null(web_cookie("taskd_tokenx=1; xtaskd_token=2", "taskd_token", buf, sizeof buf));
	assert_null(web_cookie(NULL, "taskd_token", buf, sizeof buf));
	assert_null(web_cookie("taskd_token=0123456789", "taskd_token", buf, 8));

	assert_int_equal(web_token_parse("  0123456789abcdef\n", 19, &tok, &why), 0);
	assert_string_equal(tok, "0123456789abcdef");
	free(tok);
	assert_int_equal(web_token_parse("short\n", 6, &tok, &why), -1);
	assert_non_null(strstr(why, "16 to 1024 characters"));
	free(why);
	assert_int_equal(web_token_parse("0123456789 abcdef", 17, &tok, &why), -1);
	assert_non_null(strstr(why, "printable ASCII"));
	free(why);
	assert_int_equal(web_token_parse("0123456789;abcdef", 17, &tok, &why), -1);
	free(why);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_listen),
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_host_header),
		cmocka_unit_test(test_routes),
		cmocka_unit_test(test_many_params),
		cmocka_unit_test(test_status_of),
		cmocka_unit_test(test_tokens),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
