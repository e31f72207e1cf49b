#include <arpa/inet.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr.h"
#include "xmalloc.h"

bool
addr_is_ip_literal(const char *text)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, text, buf) == 1 || inet_pton(AF_INET6, text, buf) == 1;
}

static bool
ip_is_loopback(const char *host)
{
	unsigned char b[16];

	if (inet_pton(AF_INET, host, b) == 1)
		return b[0] == 127;
	if (inet_pton(AF_INET6, host, b) == 1) {
		static const unsigned char one[16] = { [15] = 1 };

		return memcmp(b, one, 16) == 0;
	}
	return false;
}

/* "1234" → 1234 within lo..65535; -1 if not all digits or out of range. */
static int
parse_port(const char *p, size_t n, int lo)
{
	long v = 0;
	size_t i;

	if (n == 0 || n > 5)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]))
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v >= lo && v <= 65535 ? (int)v : -1;
}

/*
 * "HOST:PORT" or "[V6]:PORT" → host (brackets removed) and the port text.
 * -1 with *why when the shape is wrong.
 */
static int
split_host_port(const char *text, char *host, const char **port, size_t *port_len, char **why)
{
	const char *colon, *close;
	size_t n;

	if (text[0] == '[') {
		if ((close = strchr(text, ']')) == NULL) {
			*why = xprintf("'%s': missing ']' after the IPv6 address", text);
			return -1;
		}
		n = (size_t)(close - text - 1);
		colon = close + 1;
		if (*colon != ':' && *colon != '\0') {
			*why = xprintf("'%s': expected ':PORT' after ']'", text);
			return -1;
		}
	} else {
		colon = strrchr(text, ':');
		n = colon != NULL ? (size_t)(colon - text) : strlen(text);
		if (colon != NULL && memchr(text, ':', n) != NULL) {
			*why = xprintf("'%s': write an IPv6 address in brackets: [ADDRESS]:PORT", text);
			return -1;
		}
	}
	if (n == 0 || n > ADDR_HOST_MAX) {
		*why = xprintf("'%s': missing or too long host", text);
		return -1;
	}
	memcpy(host, text + (text[0] == '[' ? 1 : 0), n);
	host[n] = '\0';
	*port = colon != NULL && *colon == ':' ? colon + 1 : NULL;
	*port_len = *port != NULL ? strlen(*port) : 0;
	return 0;
}

int
addr_parse_listen(const char *text, struct listen_addr *out, char **why)
{
	const char *port;
	size_t port_len;

	memset(out, 0, sizeof *out);
	*why = NULL;
	if (text[0] == '/') {
		if (strlen(text) >= sizeof out->path) {
			*why = xprintf("path is too long for a unix socket (%zu bytes, at most %zu)",
				       strlen(text), sizeof out->path - 1);
			return -1;
		}
		out->is_unix = true;
		out->loopback = true;
		strcpy(out->path, text);
		return 0;
	}
	if (split_host_port(text, out->host, &port, &port_len, why) == -1)
		return -1;
	if (port == NULL || (out->port = parse_port(port, port_len, 0)) < 0) {
		*why = xprintf("'%s': expected HOST:PORT (a port from 0 to 65535) or an absolute "
			       "path for a unix socket", text);
		return -1;
	}
	if (strcasecmp(out->host, "localhost") == 0)
		strcpy(out->host, "127.0.0.1");
	if (!addr_is_ip_literal(out->host)) {
		*why = xprintf("'%s': the host must be an IP address (like 127.0.0.1 or [::1]) or "
			       "localhost", text);
		return -1;
	}
	out->loopback = ip_is_loopback(out->host);
	return 0;
}

static bool
host_name_valid(const char *h)
{
	const char *p;

	for (p = h; *p != '\0'; p++)
		if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
			return false;
	return *h != '\0' && *h != '-' && *h != '.';
}

int
addr_parse_url(const char *text, struct http_url *out, char **why)
{
	const char *rest, *slash, *port, *q;
	size_t port_len, n;
	char hostport[ADDR_HOST_MAX + 16];

	memset(out, 0, sizeof *out);
	*why = NULL;
	if (strlen(text) > ADDR_URL_MAX) {
		*why = xprintf("URL longer than %d bytes", ADDR_URL_MAX);
		return -1;
	}
	if (strncasecmp(text, "https://", 8) == 0) {
		*why = xstrdup("https is not supported: taskd posts plain HTTP (point it at a local "
			       "relay for TLS)");
		return -1;
	}
	if (strncasecmp(text, "http://", 7) != 0) {
		*why = xprintf("'%s': expected http://HOST[:PORT]/PATH", text);
		return -1;
	}
	rest = text + 7;
	slash = rest + strcspn(rest, "/?#");
	n = (size_t)(slash - rest);
	if (n == 0 || n >= sizeof hostport) {
		*why = xprintf("'%s': missing or too long host", text);
		return -1;
	}
	memcpy(hostport, rest, n);
	hostport[n] = '\0';
	if (strchr(hostport, '@') != NULL) {
		*why = xstrdup("user information (user@host) is not supported in the URL");
		return -1;
	}
	if (strchr(slash, '#') != NULL) {
		*why = xstrdup("a URL to post to has no #fragment");
		return -1;
	}
	for (q = slash; *q != '\0'; q++) {
		if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f) {
			*why = xstrdup("the path must be printable ASCII without spaces "
				       "(percent-encode the rest)");
			return -1;
		}
	}
	if (split_host_port(hostport, out->host, &port, &port_len, why) == -1)
		return -1;
	out->port = 80;
	if (port != NULL && (out->port = parse_port(port, port_len, 1)) < 0) {
		*why = xprintf("'%s': the port must be from 1 to 65535", text);
		return -1;
	}
	if (hostport[0] == '[' ? !addr_is_ip_literal(out->host)
			       : !addr_is_ip_literal(out->host) && !host_name_valid(out->host)) {
		*why = xprintf("'%s': invalid host '%s'", text, out->host);
		return -1;
	}
	out->target = *slash == '/' ? xstrdup(slash) : xprintf("/%s", slash);
	out->host_header = xstrdup(hostport);
	return 0;
}

void
addr_url_free(struct http_url *u)
{
	free(u->target);
	free(u->host_header);
	memset(u, 0, sizeof *u);
}

bool
addr_host_header_is_loopback(const char *host)
{
	char h[ADDR_HOST_MAX + 1];
	const char *port;
	size_t port_len;
	char *why = NULL;

	if (host == NULL || *host == '\0' || strlen(host) > ADDR_HOST_MAX + 8)
		return false;
	if (split_host_port(host, h, &port, &port_len, &why) == -1) {
		free(why);
		return false;
	}
	if (port != NULL && parse_port(port, port_len, 0) < 0)
		return false;
	return strcasecmp(h, "localhost") == 0 || ip_is_loopback(h);
}
