#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <taskd/protocol.h>

#include "webapi.h"
#include "xmalloc.h"

#define QUERY_MAX_PARAMS 64

/* ---- query strings ---- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Percent-decode (and '+' as a space) n bytes into a new string; NULL if malformed or NUL. */
static char *
decode(const char *p, size_t n)
{
	char *out = xmalloc(n + 1), *o = out;
	size_t i;
	int hi, lo;

	for (i = 0; i < n; i++) {
		if (p[i] == '+') {
			*o++ = ' ';
		} else if (p[i] == '%') {
			if (i + 2 >= n || (hi = hexval((unsigned char)p[i + 1])) < 0 ||
			    (lo = hexval((unsigned char)p[i + 2])) < 0 || (hi == 0 && lo == 0))
				goto bad;
			*o++ = (char)(hi << 4 | lo);
			i += 2;
		} else {
			*o++ = p[i];
		}
	}
	*o = '\0';
	return out;
bad:
	free(out);
	return NULL;
}

struct param {
	char *key, *value;
};

struct params {
	struct param v[QUERY_MAX_PARAMS];
	size_t n;
};

static void
params_free(struct params *ps)
{
	size_t i;

	for (i = 0; i < ps->n; i++) {
		free(ps->v[i].key);
		free(ps->v[i].value);
	}
	ps->n = 0;
}

/* -1 with *why on a malformed query. */
static int
params_parse(const char *q, struct params *ps, char **why)
{
	const char *p = q, *amp, *eq;
	size_t n;

	ps->n = 0;
	if (q == NULL)
		return 0;
	while (*p != '\0') {
		amp = p + strcspn(p, "&");
		n = (size_t)(amp - p);
		if (n > 0) {
			if (ps->n == QUERY_MAX_PARAMS) {
				*why = xprintf("more than %d query parameters", QUERY_MAX_PARAMS);
				return -1;
			}
			eq = memchr(p, '=', n);
			ps->v[ps->n].key = decode(p, eq != NULL ? (size_t)(eq - p) : n);
			ps->v[ps->n].value = eq != NULL ? decode(eq + 1, (size_t)(amp - eq - 1))
							: xstrdup("");
			ps->n++;
			if (ps->v[ps->n - 1].key == NULL || ps->v[ps->n - 1].value == NULL) {
				*why = xstrdup("malformed percent-encoding in the query string");
				return -1;
			}
		}
		p = *amp != '\0' ? amp + 1 : amp;
	}
	return 0;
}

/* ---- building op requests ---- */

static int
set_string(json_t *req, const char *key, const char *value, char **why)
{
	json_t *s = json_string(value);

	if (s == NULL) {
		*why = xprintf("\"%s\" is not valid UTF-8", key);
		return -1;
	}
	json_object_set_new(req, key, s);
	return 0;
}

/* A non-negative decimal integer (what the ops take for ids, offsets, limits). */
static int
set_integer(json_t *req, const char *key, const char *value, char **why)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(value, &end, 10);
	if (!isdigit((unsigned char)*value) || *end != '\0' || errno != 0 || v > INT64_MAX) {
		*why = xprintf("%s must be a whole number, not \"%s\"", key, value);
		return -1;
	}
	json_object_set_new(req, key, json_integer((json_int_t)v));
	return 0;
}

/* label=K=V: into "labels": {K: V}. */
static int
add_label(json_t *req, const char *value, char **why)
{
	const char *eq = strchr(value, '=');
	json_t *labels = json_object_get(req, "labels"), *v;
	char *key;

	if (eq == NULL || eq == value) {
		*why = xprintf("label must be KEY=VALUE, not \"%s\"", value);
		return -1;
	}
	key = xstrndup(value, (size_t)(eq - value));
	if ((v = json_string(eq + 1)) == NULL || !json_is_string(v)) {
		free(key);
		*why = xstrdup("label is not valid UTF-8");
		return -1;
	}
	if (labels == NULL) {
		labels = json_object();
		json_object_set_new(req, "labels", labels);
	}
	if (json_object_set_new(labels, key, v) == -1) {
		free(key);
		*why = xstrdup("label key is not valid UTF-8");
		return -1;
	}
	free(key);
	return 0;
}

/* Selectors the routes take (the ops validate the values themselves). */
#define Q_STATE 0x01  /* state=S (list: one; events: several) */
#define Q_LABEL 0x02  /* label=K=V, repeatable */
#define Q_NAME 0x04   /* name=N */
#define Q_ID 0x08     /* id=N, repeatable: "ids" */
#define Q_LIMIT 0x10  /* limit=N */
#define Q_LOGS 0x20   /* stream=, offset=, max= */
#define Q_STATES 0x40 /* state may repeat: "states" */
#define Q_ARRAY 0x80  /* array=ID: an array's jobs */

static int
add_param(json_t *req, const struct param *p, unsigned allow, char **why)
{
	json_t *a;

	if ((allow & Q_STATE) && strcmp(p->key, "state") == 0) {
		if (allow & Q_STATES) {
			if ((a = json_object_get(req, "states")) == NULL) {
				a = json_array();
				json_object_set_new(req, "states", a);
			}
			if (json_array_append_new(a, json_string(p->value)) == -1) {
				*why = xstrdup("state is not valid UTF-8");
				return -1;
			}
			return 0;
		}
		if (json_object_get(req, "state") != NULL) {
			*why = xstrdup("state may be given once here");
			return -1;
		}
		return set_string(req, "state", p->value, why);
	}
	if ((allow & Q_LABEL) && strcmp(p->key, "label") == 0)
		return add_label(req, p->value, why);
	if ((allow & Q_NAME) && strcmp(p->key, "name") == 0)
		return set_string(req, "name", p->value, why);
	if ((allow & Q_ID) && strcmp(p->key, "id") == 0) {
		if ((a = json_object_get(req, "ids")) == NULL) {
			a = json_array();
			json_object_set_new(req, "ids", a);
		}
		if (set_integer(req, "id", p->value, why) == -1)
			return -1;
		json_array_append(a, json_object_get(req, "id"));
		json_object_del(req, "id");
		return 0;
	}
	if ((allow & Q_LIMIT) && strcmp(p->key, "limit") == 0)
		return set_integer(req, "limit", p->value, why);
	if ((allow & Q_ARRAY) && strcmp(p->key, "array") == 0)
		return set_integer(req, "array", p->value, why);
	if ((allow & Q_LOGS) && strcmp(p->key, "stream") == 0)
		return set_string(req, "stream", p->value, why);
	if ((allow & Q_LOGS) && (strcmp(p->key, "offset") == 0 || strcmp(p->key, "max") == 0))
		return set_integer(req, p->key, p->value, why);
	*why = xprintf("unknown query parameter \"%s\"", p->key);
	return -1;
}

static bool
is_id(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 19 || s[0] == '0')
		return false;
	for (i = 0; i < n; i++)
		if (!isdigit((unsigned char)s[i]))
			return false;
	return true;
}

/* /api/...: the op and which query parameters it takes; false if no such route. */
static bool
api_route(const char *rest, json_t *req, unsigned *allow, enum web_route *route)
{
	const char *slash;
	size_t n;

	*route = WEB_API;
	if (strcmp(rest, "status") == 0) {
		json_object_set_new(req, "op", json_string(TASKD_OP_STATUS));
		*allow = 0;
		return true;
	}
	if (strcmp(rest, "events") == 0) {
		json_object_set_new(req, "op", json_string(TASKD_OP_SUBSCRIBE));
		*allow = Q_STATE | Q_STATES | Q_LABEL | Q_NAME | Q_ID;
		*route = WEB_EVENTS;
		return true;
	}
	if (strcmp(rest, "jobs") == 0) {
		json_object_set_new(req, "op", json_string(TASKD_OP_LIST));
		*allow = Q_STATE | Q_LABEL | Q_NAME | Q_ID | Q_LIMIT | Q_ARRAY;
		return true;
	}
	if (strncmp(rest, "arrays/", 7) == 0 && is_id(rest + 7, strlen(rest + 7))) {
		json_object_set_new(req, "op", json_string(TASKD_OP_SHOW));
		json_object_set_new(req, "array",
				    json_integer((json_int_t)strtoull(rest + 7, NULL, 10)));
		*allow = 0;
		return true;
	}
	if (strncmp(rest, "jobs/", 5) != 0)
		return false;
	rest += 5;
	slash = strchr(rest, '/');
	n = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
	if (!is_id(rest, n))
		return false;
	json_object_set_new(req, "job", json_integer((json_int_t)strtoull(rest, NULL, 10)));
	if (slash == NULL) {
		json_object_set_new(req, "op", json_string(TASKD_OP_SHOW));
		*allow = 0;
		return true;
	}
	if (strcmp(slash, "/logs") == 0) {
		json_object_set_new(req, "op", json_string(TASKD_OP_LOGS));
		*allow = Q_LOGS;
		return true;
	}
	return false;
}

static void
bad(struct web_target *t, int status, char *message)
{
	json_decref(t->request);
	t->request = NULL;
	t->route = WEB_BAD;
	t->status = status;
	t->message = message;
}

void
web_route(const char *path, const char *query, bool (*asset_exists)(const char *),
	  struct web_target *t)
{
	struct params ps;
	unsigned allow = 0;
	char *why = NULL;
	size_t i;
	bool token_only;

	memset(t, 0, sizeof *t);
	if (params_parse(query, &ps, &why) == -1) {
		params_free(&ps);
		bad(t, 400, why);
		return;
	}
	/* access_token may come with any route (the browser's first visit, EventSource). */
	for (i = 0; i < ps.n; i++) {
		if (strcmp(ps.v[i].key, "access_token") == 0 && t->token == NULL)
			t->token = xstrdup(ps.v[i].value);
	}
	if (strcmp(path, "/metrics") == 0) {
		t->route = WEB_METRICS;
	} else if (strcmp(path, "/") == 0 || strcmp(path, "/index.html") == 0) {
		t->route = WEB_ASSET;
		t->asset = "/index.html";
	} else if (strncmp(path, "/api/", 5) == 0) {
		t->request = json_object();
		if (!api_route(path + 5, t->request, &allow, &t->route)) {
			json_decref(t->request);
			t->request = NULL;
			t->route = WEB_NOT_FOUND;
		}
	} else if (asset_exists != NULL && asset_exists(path)) {
		t->route = WEB_ASSET;
		t->asset = path;
	}
	for (i = 0; i < ps.n && (t->route == WEB_API || t->route == WEB_EVENTS); i++) {
		token_only = strcmp(ps.v[i].key, "access_token") == 0;
		if (!token_only && add_param(t->request, &ps.v[i], allow, &why) == -1) {
			bad(t, 400, why);
			break;
		}
	}
	params_free(&ps);
}

void
web_target_free(struct web_target *t)
{
	json_decref(t->request);
	free(t->message);
	free(t->token);
	memset(t, 0, sizeof *t);
}

int
web_status_of(const char *code)
{
	static const struct {
		const char *code;
		int status;
	} map[] = {
		{ TASKD_ERR_BAD_REQUEST, 400 },     { TASKD_ERR_NOT_FOUND, 404 },
		{ TASKD_ERR_FORBIDDEN, 403 },       { TASKD_ERR_UNKNOWN_OP, 404 },
		{ TASKD_ERR_INVALID_STATE, 409 },   { TASKD_ERR_SHUTTING_DOWN, 503 },
		{ TASKD_ERR_TOO_MANY, 429 },        { TASKD_ERR_FRAME_TOO_LARGE, 413 },
		{ TASKD_ERR_UNSUPPORTED_VERSION, 400 },
	};
	size_t i;

	for (i = 0; code != NULL && i < sizeof map / sizeof map[0]; i++)
		if (strcmp(code, map[i].code) == 0)
			return map[i].status;
	return 500;
}

/* ---- tokens ---- */

bool
web_token_equal(const char *want, const char *given)
{
	size_t n = strlen(want), m = given != NULL ? strlen(given) : 0, i;
	unsigned char diff = (unsigned char)(n != m);

	if (given == NULL)
		return false;
	/* Every byte of want is looked at, whatever given is: no early exit to time. */
	for (i = 0; i < n; i++)
		diff |= (unsigned char)want[i] ^ (unsigned char)(i < m ? given[i] : 0);
	return diff == 0;
}

const char *
web_bearer(const char *authorization)
{
	const char *p;

	if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0)
		return NULL;
	for (p = authorization + 7; *p == ' '; p++)
		;
	return *p != '\0' ? p : NULL;
}

const char *
web_cookie(const char *header, const char *name, char *buf, size_t len)
{
	const char *p = header, *end;
	size_t nlen = strlen(name), vlen;

	while (p != NULL && *p != '\0') {
		while (*p == ' ' || *p == ';')
			p++;
		end = p + strcspn(p, ";");
		if ((size_t)(end - p) > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
			vlen = (size_t)(end - p) - nlen - 1;
			if (vlen >= len)
				return NULL;
			memcpy(buf, p + nlen + 1, vlen);
			buf[vlen] = '\0';
			return buf;
		}
		p = end;
	}
	return NULL;
}

int
web_token_parse(const char *text, size_t len, char **token, char **why)
{
	const char *p = text, *end = text + len, *q;

	while (p < end && isspace((unsigned char)*p))
		p++;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	len = (size_t)(end - p);
	if (len < WEB_TOKEN_MIN || len > WEB_TOKEN_MAX) {
		*why = xprintf("the token must be %d to %d characters (it has %zu)", WEB_TOKEN_MIN,
			       WEB_TOKEN_MAX, len);
		return -1;
	}
	for (q = p; q < end; q++) {
		if (*q <= ' ' || *q >= 0x7f || *q == ';' || *q == ',' || *q == '"' || *q == '\\') {
			*why = xstrdup("the token must be printable ASCII without spaces, quotes, "
				       "commas, semicolons or backslashes");
			return -1;
		}
	}
	*token = xstrndup(p, len);
	return 0;
}
