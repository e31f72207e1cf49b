/* Standard base64 (RFC 4648, with padding): see base64.h. */
#include <stdlib.h>
#include <string.h>

#include "base64.h"

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int
value(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
base64_decode(const char *s, size_t len, char **out, size_t *outlen)
{
	unsigned long acc = 0;
	size_t i, n = 0, bits = 0;
	char *buf;
	int v;

	while (len > 0 && s[len - 1] == '=')
		len--;
	buf = malloc(len * 3 / 4 + 1);
	if (buf == NULL)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] == '\n' || s[i] == '\r')
			continue;
		if ((v = value(s[i])) == -1) {
			free(buf);
			return -1;
		}
		acc = (acc << 6 | (unsigned long)v) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[n++] = (char)(acc >> bits & 0xff);
		}
	}
	*out = buf;
	*outlen = n;
	return 0;
}

char *
base64_encode(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long acc;
	size_t i, n = 0;
	char *buf;

	buf = malloc((len + 2) / 3 * 4 + 1);
	if (buf == NULL)
		return NULL;
	for (i = 0; i + 2 < len; i += 3) {
		acc = (unsigned long)p[i] << 16 | (unsigned long)p[i + 1] << 8 | p[i + 2];
		buf[n++] = alphabet[acc >> 18 & 63];
		buf[n++] = alphabet[acc >> 12 & 63];
		buf[n++] = alphabet[acc >> 6 & 63];
		buf[n++] = alphabet[acc & 63];
	}
	if (i < len) {
		acc = (unsigned long)p[i] << 16 | (i + 1 < len ? (unsigned long)p[i + 1] << 8 : 0);
		buf[n++] = alphabet[acc >> 18 & 63];
		buf[n++] = alphabet[acc >> 12 & 63];
		buf[n++] = i + 1 < len ? alphabet[acc >> 6 & 63] : '=';
		buf[n++] = '=';
	}
	buf[n] = '\0';
	return buf;
}
