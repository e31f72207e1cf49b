/*
 * Parsing one setting of the configuration file into its field of struct
 * config: a setter per kind of key (config-private.h's enum key_kind), and
 * sizes ("16M") both ways. A setter that refuses says why in *why; the walk
 * (config-load.c) adds the file and line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <sys/socket.h>
#include <sys/un.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "addr.h"
#include "config-private.h"
#include "config.h"
#include "labels.h"
#include "xmalloc.h"

#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

/* Sizes: digits, an optional K/M/G/T (binary), an optional B. */

static int
size_shift(int c)
{
	static const char units[] = "kmgt";
	const char *u;

	if (c == '\0' || (u = strchr(units, tolower(c))) == NULL)
		return 0;
	return 10 * (int)(u - units + 1);
}

int
config_parse_size(const char *text, uint64_t *out)
{
	const char *p = text;
	uint64_t v = 0;
	int shift;

	if (!isdigit((unsigned char)*p))
		return -1;
	for (; isdigit((unsigned char)*p); p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if ((shift = size_shift((unsigned char)*p)) != 0)
		p++;
	if (*p == 'b' || *p == 'B')
		p++;
	if (*p != '\0' || (shift != 0 && v > (UINT64_MAX >> shift)))
		return -1;
	*out = v << shift;
	return 0;
}

char *
config_size_text(uint64_t v)
{
	static const char units[] = "TGMK";
	int shift;

	for (shift = 40; shift > 0 && v != 0; shift -= 10)
		if (v % (UINT64_C(1) << shift) == 0)
			return xprintf("%" PRIu64 "%c", v >> shift, units[(40 - shift) / 10]);
	return xprintf("%" PRIu64, v);
}

/* Setters: parse one setting into its field, or say why not in *why. */

static char *
range_text(const struct key *k, long long max)
{
	char *lo, *hi, *s;

	if (k->kind != K_SIZE) {
		if (max == NOMAX)
			return xprintf("must be at least %lld", k->min);
		return xprintf("must be between %lld and %lld", k->min, max);
	}
	lo = config_size_text((uint64_t)k->min);
	if (max == NOMAX)
		s = xprintf("must be at least %s", lo);
	else {
		hi = config_size_text((uint64_t)max);
		s = xprintf("must be between %s and %s", lo, hi);
		free(hi);
	}
	free(lo);
	return s;
}

bool
config_is_integer(const config_setting_t *s)
{
	int t = config_setting_type(s);

	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static int
set_int(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	long long v, shown, max = k->max < INT_MAX ? k->max : INT_MAX;

	if (!config_is_integer(s)) {
		*why = xstrdup("expected an integer");
		return -1;
	}
	v = config_setting_get_int64(s);
	if (v < k->min || v > max) {
		shown = k->max == NOMAX && v > max ? max : k->max;
		*why = range_text(k, shown);
		return -1;
	}
	*(int *)field = (int)v;
	return 0;
}

static int
set_bool(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	if (config_setting_type(s) != CONFIG_TYPE_BOOL) {
		*why = xstrdup("expected true or false");
		return -1;
	}
	*(int *)field = config_setting_get_bool(s) ? 1 : 0;
	return 0;
}

static int
set_float(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	double v;

	if (config_is_integer(s))
		v = (double)config_setting_get_int64(s);
	else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else {
		*why = xstrdup("expected a number");
		return -1;
	}
	if (!isfinite(v)) {
		*why = xstrdup("must be a finite number");
		return -1;
	}
	if (v < (double)k->min || (k->max != NOMAX && v > (double)k->max)) {
		*why = range_text(k, k->max);
		return -1;
	}
	*(double *)field = v;
	return 0;
}

static int
set_size(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	const char *text;
	long long i;
	uint64_t v;

	if (config_is_integer(s)) {
		if ((i = config_setting_get_int64(s)) < 0) {
			*why = range_text(k, k->max);
			return -1;
		}
		v = (uint64_t)i;
	} else if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		text = config_setting_get_string(s);
		if (config_parse_size(text, &v) == -1) {
			*why = xprintf("invalid size '%s' (expected bytes, or a number with K, M, G "
				       "or T, e.g. \"16M\")", text);
			return -1;
		}
	} else {
		*why = xstrdup("expected a size (bytes, or a string like \"16M\")");
		return -1;
	}
	if (v < (uint64_t)k->min || (k->max != NOMAX && v > (uint64_t)k->max)) {
		*why = range_text(k, k->max);
		return -1;
	}
	*(uint64_t *)field = v;
	return 0;
}

char *
config_share_text(const struct config_share *s)
{
	if (s->bytes > 0)
		return config_size_text(s->bytes);
	return xprintf("%g%%", s->share * 100);
}

/* "75%" (of what it is a share of: 1% to 100%), else a size; 0 turns it off. */
static int
set_share(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	struct config_share *out = field, v = { 0, 0 };
	const char *text;
	char *end;
	double pct;

	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    (text = config_setting_get_string(s))[0] != '\0' && text[strlen(text) - 1] == '%') {
		errno = 0;
		pct = strtod(text, &end);
		if (errno != 0 || end != text + strlen(text) - 1 || !isfinite(pct) || pct < 1 ||
		    pct > 100) {
			*why = xprintf("invalid share '%s' (expected 1%% to 100%%, or a size)", text);
			return -1;
		}
		v.share = pct / 100;
	} else if (set_size(k, s, &v.bytes, why) == -1)
		return -1;
	*out = v;
	return 0;
}

static int
set_path(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	const char *v;
	char **dst = field;

	(void)k;
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		*why = xstrdup("expected a string");
		return -1;
	}
	v = config_setting_get_string(s);
	if (*v == '\0') {
		*why = xstrdup("must not be empty");
		return -1;
	}
	if (*v != '/') {
		*why = xprintf("must be an absolute path, not '%s'", v);
		return -1;
	}
	free(*dst);
	*dst = xstrdup(v);
	return 0;
}

static int
set_socket(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	const char *v;
	size_t len;

	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		v = config_setting_get_string(s);
		if ((len = strlen(v)) > SUN_PATH_MAX) {
			*why = xprintf("path is too long for a unix socket (%zu bytes, at most %zu)",
				       len, SUN_PATH_MAX);
			return -1;
		}
	}
	return set_path(k, s, field, why);
}

/*
 * libconfig 1.5 has no octal literals: "socket_mode = 0660;" reads as decimal
 * 660. A decimal integer is therefore taken digit by digit as octal (0660 and
 * 660 both mean 0660); hex (0x1b0) and any other base are taken as they are.
 */
static int
octal_digits(long long dec, long long *out)
{
	long long v = 0, scale = 1;

	for (; dec > 0; dec /= 10, scale *= 8) {
		if (dec % 10 > 7 || scale > 07777)
			return -1;
		v += (dec % 10) * scale;
	}
	*out = v;
	return 0;
}

static int
mode_value(const config_setting_t *s, long long *v)
{
	const char *text, *p;

	if (config_is_integer(s)) {
		*v = config_setting_get_int64(s);
		if (config_setting_get_format(s) != CONFIG_FORMAT_DEFAULT)
			return 0;
		return *v < 0 ? -1 : octal_digits(*v, v);
	}
	text = config_setting_get_string(s);
	if (*text == '\0' || strlen(text) > 5)
		return -1;
	for (p = text; *p != '\0'; p++)
		if (*p < '0' || *p > '7')
			return -1;
	*v = strtoll(text, NULL, 8);
	return 0;
}

static int
set_mode(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	long long v;

	if (!config_is_integer(s) && config_setting_type(s) != CONFIG_TYPE_STRING) {
		*why = xstrdup("expected a file mode (a string of octal digits like \"0660\")");
		return -1;
	}
	if (mode_value(s, &v) == -1 || v < k->min || v > k->max) {
		*why = xprintf("must be octal digits between 0 and %04llo, like \"0660\"",
			       (unsigned long long)k->max);
		return -1;
	}
	*(mode_t *)field = (mode_t)v;
	return 0;
}

static int
set_enum(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	const char *text;
	int v;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		*why = xprintf("expected a string (%s)", k->choices);
		return -1;
	}
	text = config_setting_get_string(s);
	if ((v = k->parse(text)) == -1) {
		*why = xprintf("invalid value '%s' (expected %s)", text, k->choices);
		return -1;
	}
	*(int *)field = v;
	return 0;
}

/* An array or list of 1..max non-empty strings, each at most CONFIG_MAX_COMMAND bytes. */
static int
set_strv(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	char ***dst = field, **v;
	const char *e;
	int i, n;

	if (!config_setting_is_array(s) && !config_setting_is_list(s)) {
		*why = xstrdup("expected a list of strings ([ \"...\", ... ])");
		return -1;
	}
	n = config_setting_length(s);
	if (n < k->min || n > k->max) {
		*why = xprintf("must hold %lld to %lld strings", k->min, k->max);
		return -1;
	}
	for (i = 0; i < n; i++) {
		e = config_setting_get_string_elem(s, i);
		if (e == NULL || *e == '\0' || strlen(e) > CONFIG_MAX_COMMAND) {
			*why = xprintf("element %d must be a non-empty string of at most %d bytes", i,
				       CONFIG_MAX_COMMAND);
			return -1;
		}
	}
	v = xcalloc((size_t)n + 1, sizeof *v);
	for (i = 0; i < n; i++)
		v[i] = xstrdup(config_setting_get_string_elem(s, i));
	strv_free(*dst);
	*dst = v;
	return 0;
}

static int
set_string(const config_setting_t *s, void *field, char **why)
{
	char **dst = field;

	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		*why = xstrdup("expected a string");
		return -1;
	}
	free(*dst);
	*dst = xstrdup(config_setting_get_string(s));
	return 0;
}

static int
set_listen(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	struct listen_addr a;

	(void)k;
	if (config_setting_type(s) == CONFIG_TYPE_STRING &&
	    addr_parse_listen(config_setting_get_string(s), &a, why) == -1)
		return -1;
	return set_string(s, field, why);
}

static int
set_url(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	struct http_url u;

	(void)k;
	if (config_setting_type(s) == CONFIG_TYPE_STRING) {
		if (addr_parse_url(config_setting_get_string(s), &u, why) == -1)
			return -1;
		addr_url_free(&u);
	}
	return set_string(s, field, why);
}

/* A string parse() accepts: a name, a URL of a given form. */
static int
set_checked(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		*why = xprintf("expected a string (%s)", k->choices);
		return -1;
	}
	if (k->parse(config_setting_get_string(s)) == -1) {
		*why = xprintf("invalid value '%s' (expected %s)", config_setting_get_string(s),
			       k->choices);
		return -1;
	}
	return set_string(s, field, why);
}

const setter_fn config_setters[] = {
	[K_INT] = set_int,
	[K_FLOAT] = set_float,
	[K_SIZE] = set_size,
	[K_PATH] = set_path,
	[K_SOCKET] = set_socket,
	[K_MODE] = set_mode,
	[K_ENUM] = set_enum,
	[K_BOOL] = set_bool,
	[K_SHARE] = set_share,
	[K_STRV] = set_strv,
	[K_LISTEN] = set_listen,
	[K_URL] = set_url,
	[K_CHECKED] = set_checked,
};
