/*
 * Standard base64 (RFC 4648, with padding): the "base64" encoding of logs
 * chunks (doc/protocol.md "logs"). Built into the daemon, which encodes,
 * and taskctl, which decodes (and encodes for `logs --json`).
 */
#ifndef TASKD_BASE64_H
#define TASKD_BASE64_H

#include <stddef.h>

/* Decode len bytes of s into a malloc'd *out; -1 on bad input or no memory. */
int base64_decode(const char *s, size_t len, char **out, size_t *outlen);
/* Encode len bytes; malloc'd NUL-terminated string, NULL when out of memory. */
char *base64_encode(const char *s, size_t len);

#endif
