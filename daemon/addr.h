/*
 * The network addresses of the configuration, parsed and checked without
 * any lookup (so `taskd -t` and a reload never wait for DNS):
 *
 *   http.listen   "127.0.0.1:9181", "[::1]:9181", "localhost:9181" (127.0.0.1),
 *                 "0.0.0.0:9181" (any IPv4 address; needs http.allow_remote),
 *                 or an absolute path: a Unix socket;
 *   jobs.webhook  "http://HOST[:PORT]/PATH[?QUERY]" (plain HTTP: a name, an
 *                 IPv4 or a [IPv6] literal).
 *
 * Pure functions, unit-tested in tests/unit/test-http.c.
 */
#ifndef TASKD_ADDR_H
#define TASKD_ADDR_H

#include <stdbool.h>
#include <stdint.h>

#define ADDR_HOST_MAX 255
#define ADDR_URL_MAX 2048

struct listen_addr {
	bool is_unix;
	char path[108];             /* is_unix */
	char host[ADDR_HOST_MAX + 1]; /* an IP literal (no brackets); "localhost" becomes 127.0.0.1 */
	int port;                   /* 0: any free port */
	bool loopback;              /* 127.0.0.0/8 or ::1 (a Unix socket counts as local too) */
};

/* 0, or -1 with *why (malloc'd). */
int addr_parse_listen(const char *text, struct listen_addr *out, char **why);

struct http_url {
	char host[ADDR_HOST_MAX + 1]; /* without brackets */
	int port;
	char *target;                 /* path and query, malloc'd ("/" when none was given) */
	char *host_header;            /* what goes in Host: (with [] and :port as given), malloc'd */
};

int addr_parse_url(const char *text, struct http_url *out, char **why);
void addr_url_free(struct http_url *u);

/* Is text an IPv4 or IPv6 literal (no brackets)? */
bool addr_is_ip_literal(const char *text);

/*
 * A Host header a loopback-only endpoint answers: a loopback IP literal
 * or "localhost", with an optional port. Others (a DNS name pointing at
 * 127.0.0.1 from a web page: DNS rebinding) are refused.
 */
bool addr_host_header_is_loopback(const char *host);

#endif
