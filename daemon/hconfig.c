/*
 * The `handlers` list of the configuration file (config.h's struct
 * handler_config; taskd.conf(5) and doc/handlers.md describe the keys).
 * config-load.c hands the list here; every error comes back as
 * "FILE:LINE: handlers[N] (NAME).KEY: message" with the line of the
 * setting at fault, so `taskd -t` points at it. Names of users and groups
 * are resolved here, and the command is checked to exist and be
 * executable, so a handler that cannot start is refused before it runs.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libconfig.h>

#include "config.h"
#include "hconfig.h"
#include "log.h"
#include "modules.h"
#include "xmalloc.h"

#define HANDLER_NAME_MAX 64
#define HANDLER_MAX 256
#define HANDLER_LIST_MAX 1024 /* command words, env entries, users, groups */

struct hload {
	const char *path;          /* the configuration file */
	const config_setting_t *s; /* the handler's group */
	size_t index;
	struct handler_config *h;
	char *cause;
};

static int __attribute__((format(printf, 4, 5)))
hfail(struct hload *ld, const config_setting_t *at, const char *key, const char *fmt, ...)
{
	const char *file = at != NULL ? config_setting_source_file(at) : NULL;
	unsigned int line = at != NULL ? config_setting_source_line(at) : 0;
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvprintf(fmt, ap);
	va_end(ap);
	free(ld->cause);
	if (ld->h != NULL && ld->h->name != NULL)
		ld->cause = xprintf("%s:%u: handlers[%zu] (%s)%s%s: %s", file != NULL ? file : ld->path,
				    line, ld->index, ld->h->name, key != NULL ? "." : "",
				    key != NULL ? key : "", msg);
	else
		ld->cause = xprintf("%s:%u: handlers[%zu]%s%s: %s", file != NULL ? file : ld->path,
				    line, ld->index, key != NULL ? "." : "", key != NULL ? key : "",
				    msg);
	free(msg);
	return -1;
}

static bool
integer(const config_setting_t *s)
{
	int t = config_setting_type(s);

	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static int
get_int(struct hload *ld, const config_setting_t *s, const char *key, long long min,
	long long max, int *out)
{
	long long v;

	if (!integer(s))
		return hfail(ld, s, key, "expected an integer");
	v = config_setting_get_int64(s);
	if (v < min || v > max)
		return hfail(ld, s, key, "must be between %lld and %lld", min, max);
	*out = (int)v;
	return 0;
}

static int
get_seconds(struct hload *ld, const config_setting_t *s, const char *key, double min,
	    double *out)
{
	double v;

	if (integer(s))
		v = (double)config_setting_get_int64(s);
	else if (config_setting_type(s) == CONFIG_TYPE_FLOAT)
		v = config_setting_get_float(s);
	else
		return hfail(ld, s, key, "expected a number of seconds");
	if (!isfinite(v) || v < min || v > 1e9)
		return hfail(ld, s, key, "must be a number of seconds from %g to 1e9", min);
	*out = v;
	return 0;
}

static const char *
get_string(struct hload *ld, const config_setting_t *s, const char *key)
{
	if (config_setting_type(s) != CONFIG_TYPE_STRING) {
		hfail(ld, s, key, "expected a string");
		return NULL;
	}
	return config_setting_get_string(s);
}

/* A list (or array) of strings, NULL-terminated, each checked by ok() if given. */
static int
get_strings(struct hload *ld, const config_setting_t *s, const char *key, char ***out,
	    const char *(*ok)(const char *))
{
	int i, n = config_setting_length(s);
	const config_setting_t *e;
	const char *v, *why;
	char **a;

	if (!config_setting_is_aggregate(s) || config_setting_is_group(s))
		return hfail(ld, s, key, "expected a list of strings ([ \"...\", ... ])");
	if (n > HANDLER_LIST_MAX)
		return hfail(ld, s, key, "has %d entries (at most %d)", n, HANDLER_LIST_MAX);
	a = xcalloc((size_t)n + 1, sizeof *a);
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			strv_free(a);
			return hfail(ld, e, key, "entry %d: expected a string", i);
		}
		v = config_setting_get_string(e);
		if (ok != NULL && (why = ok(v)) != NULL) {
			strv_free(a);
			return hfail(ld, e, key, "entry %d ('%s'): %s", i, v, why);
		}
		a[i] = xstrdup(v);
	}
	strv_free(*out);
	*out = a;
	return 0;
}

static const char *
env_ok(const char *v)
{
	const char *eq = strchr(v, '=');

	return eq == NULL || eq == v ? "expected NAME=VALUE" : NULL;
}

static const char *
name_ok(const char *v)
{
	size_t n = strlen(v), i;

	if (n == 0 || n > HANDLER_NAME_MAX)
		return "must be 1 to 64 characters";
	for (i = 0; i < n; i++)
		if (!(v[i] >= 'a' && v[i] <= 'z') && !(v[i] >= 'A' && v[i] <= 'Z') &&
		    !(v[i] >= '0' && v[i] <= '9') && v[i] != '_' && v[i] != '-' && v[i] != '.')
			return "may hold only letters, digits, '_', '-' and '.'";
	/* The modules loaded (at a reload: all of them; module_check_handlers does it at a start). */
	if (strcmp(v, "exec") == 0 || module_builtin(module_find(v)))
		return "is a built-in job type";
	if (module_find(v) > 0)
		return "is a job type of a module";
	return NULL;
}

static int
set_name(struct hload *ld, const config_setting_t *s)
{
	const char *v = get_string(ld, s, "name"), *why;

	if (v == NULL)
		return -1;
	if ((why = name_ok(v)) != NULL)
		return hfail(ld, s, "name", "'%s' %s", v, why);
	free(ld->h->name);
	ld->h->name = xstrdup(v);
	return 0;
}

static int
set_command(struct hload *ld, const config_setting_t *s)
{
	struct stat st;
	const char *p;

	if (get_strings(ld, s, "command", &ld->h->command, NULL) == -1)
		return -1;
	if (ld->h->command[0] == NULL)
		return hfail(ld, s, "command", "must not be empty");
	p = ld->h->command[0];
	if (p[0] != '/')
		return hfail(ld, s, "command", "'%s' must be an absolute path", p);
	if (stat(p, &st) == -1)
		return hfail(ld, s, "command", "%s: %s", p, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return hfail(ld, s, "command", "%s: not a regular file", p);
	if (access(p, X_OK) == -1)
		return hfail(ld, s, "command", "%s: not executable (%s)", p, strerror(errno));
	return 0;
}

static int
set_class(struct hload *ld, const config_setting_t *s)
{
	const char *v = get_string(ld, s, "class");
	int c;

	if (v == NULL)
		return -1;
	if ((c = config_class_parse(v)) < 0)
		return hfail(ld, s, "class", "invalid value '%s' (expected cpu, io or auto)", v);
	ld->h->class = c;
	return 0;
}

static int
set_size(struct hload *ld, const config_setting_t *s, const char *key, uint64_t *out)
{
	long long i;

	if (integer(s)) {
		if ((i = config_setting_get_int64(s)) < 0)
			return hfail(ld, s, key, "must be at least 0");
		*out = (uint64_t)i;
		return 0;
	}
	if (config_setting_type(s) != CONFIG_TYPE_STRING ||
	    config_parse_size(config_setting_get_string(s), out) == -1)
		return hfail(ld, s, key, "expected a size (bytes, or a string like \"512M\")");
	return 0;
}

static int
set_cwd(struct hload *ld, const config_setting_t *s)
{
	const char *v = get_string(ld, s, "cwd");

	if (v == NULL)
		return -1;
	if (v[0] != '/')
		return hfail(ld, s, "cwd", "'%s' must be an absolute path", v);
	free(ld->h->cwd);
	ld->h->cwd = xstrdup(v);
	return 0;
}

static int
set_user(struct hload *ld, const config_setting_t *s)
{
	const char *v = get_string(ld, s, "user");
	struct passwd *pw;

	if (v == NULL)
		return -1;
	errno = 0;
	if ((pw = getpwnam(v)) == NULL)
		return hfail(ld, s, "user", "no such user '%s'", v);
	if (geteuid() != 0 && pw->pw_uid != geteuid())
		return hfail(ld, s, "user", "taskd runs as uid %u: it cannot run workers as '%s'",
			     (unsigned)geteuid(), v);
	free(ld->h->user);
	ld->h->user = xstrdup(v);
	ld->h->uid = pw->pw_uid;
	ld->h->gid = pw->pw_gid;
	return 0;
}

static int
set_users(struct hload *ld, const config_setting_t *s)
{
	char **names = NULL;
	struct passwd *pw;
	size_t i, n;

	if (get_strings(ld, s, "users", &names, NULL) == -1)
		return -1;
	n = strv_len(names);
	free(ld->h->users);
	ld->h->users = xcalloc(n + 1, sizeof *ld->h->users);
	ld->h->nusers = n;
	for (i = 0; i < n; i++) {
		if ((pw = getpwnam(names[i])) == NULL) {
			hfail(ld, config_setting_get_elem(s, (unsigned int)i), "users",
			      "no such user '%s'", names[i]);
			strv_free(names);
			return -1;
		}
		ld->h->users[i] = pw->pw_uid;
	}
	strv_free(names);
	return 0;
}

static int
set_groups(struct hload *ld, const config_setting_t *s)
{
	char **names = NULL;
	struct group *gr;
	size_t i, n;

	if (get_strings(ld, s, "groups", &names, NULL) == -1)
		return -1;
	n = strv_len(names);
	free(ld->h->groups);
	ld->h->groups = xcalloc(n + 1, sizeof *ld->h->groups);
	ld->h->ngroups = n;
	for (i = 0; i < n; i++) {
		if ((gr = getgrnam(names[i])) == NULL) {
			hfail(ld, config_setting_get_elem(s, (unsigned int)i), "groups",
			      "no such group '%s'", names[i]);
			strv_free(names);
			return -1;
		}
		ld->h->groups[i] = gr->gr_gid;
	}
	strv_free(names);
	return 0;
}

static int
set_key(struct hload *ld, const char *key, const config_setting_t *s)
{
	struct handler_config *h = ld->h;

	if (strcmp(key, "name") == 0)
		return set_name(ld, s);
	if (strcmp(key, "command") == 0)
		return set_command(ld, s);
	if (strcmp(key, "class") == 0)
		return set_class(ld, s);
	if (strcmp(key, "min_workers") == 0)
		return get_int(ld, s, key, 0, 1024, &h->min_workers);
	if (strcmp(key, "max_workers") == 0)
		return get_int(ld, s, key, 0, 1024, &h->max_workers);
	if (strcmp(key, "concurrency") == 0)
		return get_int(ld, s, key, 1, 1024, &h->concurrency);
	if (strcmp(key, "max_jobs_per_worker") == 0)
		return get_int(ld, s, key, 0, INT_MAX, &h->max_jobs_per_worker);
	if (strcmp(key, "max_worker_rss") == 0)
		return set_size(ld, s, key, &h->max_worker_rss);
	if (strcmp(key, "idle_timeout") == 0)
		return get_seconds(ld, s, key, 0, &h->idle_timeout);
	if (strcmp(key, "timeout") == 0)
		return get_seconds(ld, s, key, 0, &h->timeout);
	if (strcmp(key, "start_timeout") == 0) {
		if (get_seconds(ld, s, key, 0.001, &h->start_timeout) == -1)
			return -1;
		return 0;
	}
	if (strcmp(key, "env") == 0)
		return get_strings(ld, s, key, &h->env, env_ok);
	if (strcmp(key, "cwd") == 0)
		return set_cwd(ld, s);
	if (strcmp(key, "user") == 0)
		return set_user(ld, s);
	if (strcmp(key, "users") == 0)
		return set_users(ld, s);
	if (strcmp(key, "groups") == 0)
		return set_groups(ld, s);
	return hfail(ld, s, NULL, "unknown key '%s'", key);
}

static void
defaults(struct handler_config *h)
{
	memset(h, 0, sizeof *h);
	h->class = CLASS_AUTO;
	h->min_workers = 1;
	h->concurrency = 1;
	h->max_jobs_per_worker = 10000;
	h->max_worker_rss = 512u << 20;
	h->idle_timeout = 30;
	h->start_timeout = 60;
	h->uid = geteuid();
	h->gid = getegid();
}

static int
load_one(struct hload *ld)
{
	const config_setting_t *s = ld->s, *e;
	int i, n = config_setting_length(s);

	defaults(ld->h);
	ld->h->line = config_setting_source_line(s);
	/* The name first: every later message names the handler. */
	if ((e = config_setting_get_member(s, "name")) == NULL)
		return hfail(ld, s, NULL, "needs a name (name = \"...\";)");
	if (set_name(ld, e) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		if (strcmp(config_setting_name(e), "name") == 0)
			continue;
		if (set_key(ld, config_setting_name(e), e) == -1)
			return -1;
	}
	if (ld->h->command == NULL)
		return hfail(ld, s, NULL, "needs a command (command = [ \"/path\", ... ];)");
	if (ld->h->max_workers > 0 && ld->h->min_workers > ld->h->max_workers)
		return hfail(ld, config_setting_get_member(s, "min_workers"), "min_workers",
			     "%d is more than max_workers (%d)", ld->h->min_workers,
			     ld->h->max_workers);
	if (geteuid() == 0 && ld->h->user == NULL)
		return hfail(ld, s, "user",
			     "taskd runs as root: set the user the workers run as "
			     "(user = \"root\" to run them as root)");
	if (ld->h->cwd == NULL)
		ld->h->cwd = xstrdup("/");
	return 0;
}

int
hconfig_load(const config_setting_t *list, const char *path, struct handler_config **out,
	     size_t *nout, char **cause)
{
	struct hload ld = {.path = path};
	struct handler_config *hs;
	int n = config_setting_length(list), i, k;

	if (!config_setting_is_list(list) && !(config_setting_is_array(list) && n == 0)) {
		ld.cause = xprintf("%s:%u: handlers: expected a list of groups ( { ... }, ... )",
				   config_setting_source_file(list) != NULL
					   ? config_setting_source_file(list) : path,
				   config_setting_source_line(list));
		*cause = ld.cause;
		return -1;
	}
	if (n > HANDLER_MAX) {
		*cause = xprintf("%s:%u: handlers: %d handlers (at most %d)", path,
				 config_setting_source_line(list), n, HANDLER_MAX);
		return -1;
	}
	hs = xcalloc((size_t)n + 1, sizeof *hs);
	for (i = 0; i < n; i++) {
		ld.s = config_setting_get_elem(list, (unsigned int)i);
		ld.index = (size_t)i;
		ld.h = &hs[i];
		if (!config_setting_is_group(ld.s)) {
			hfail(&ld, ld.s, NULL, "expected a group ({ name = ...; command = [...]; })");
			goto fail;
		}
		if (load_one(&ld) == -1)
			goto fail;
		for (k = 0; k < i; k++)
			if (strcmp(hs[k].name, hs[i].name) == 0) {
				hfail(&ld, config_setting_get_member(ld.s, "name"), "name",
				      "a second handler named '%s'", hs[i].name);
				goto fail;
			}
	}
	*out = hs;
	*nout = (size_t)n;
	return 0;
fail:
	for (k = 0; k <= i && k < n; k++)
		handler_config_free(&hs[k]);
	free(hs);
	*cause = ld.cause;
	return -1;
}

/* ---- copies, comparisons ---- */

void
handler_config_free(struct handler_config *h)
{
	free(h->name);
	strv_free(h->command);
	strv_free(h->env);
	free(h->cwd);
	free(h->user);
	free(h->users);
	free(h->groups);
	memset(h, 0, sizeof *h);
}

static void *
dup_array(const void *p, size_t n, size_t size)
{
	void *q = xcalloc(n + 1, size);

	if (n > 0)
		memcpy(q, p, n * size);
	return q;
}

void
handler_config_copy(struct handler_config *dst, const struct handler_config *src)
{
	*dst = *src;
	dst->name = xstrdup(src->name);
	dst->command = strv_dup(src->command);
	dst->env = src->env != NULL ? strv_dup(src->env) : NULL;
	dst->cwd = src->cwd != NULL ? xstrdup(src->cwd) : NULL;
	dst->user = src->user != NULL ? xstrdup(src->user) : NULL;
	dst->users = dup_array(src->users, src->nusers, sizeof *src->users);
	dst->groups = dup_array(src->groups, src->ngroups, sizeof *src->groups);
}

/* As strv_equal, but NULL is the same as an empty vector (no env, env = []). */
static bool
strv_same(char *const *a, char *const *b)
{
	size_t i;

	if (a == NULL || b == NULL)
		return strv_len(a) == 0 && strv_len(b) == 0;
	for (i = 0; a[i] != NULL && b[i] != NULL; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return a[i] == NULL && b[i] == NULL;
}

static bool
str_equal(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

int
handler_config_respawn(const struct handler_config *a, const struct handler_config *b)
{
	return !strv_same(a->command, b->command) || !strv_same(a->env, b->env) ||
	       !str_equal(a->cwd, b->cwd) || !str_equal(a->user, b->user) || a->uid != b->uid ||
	       a->gid != b->gid || a->concurrency != b->concurrency;
}

/* Everything else (sizes, limits, who may submit). */
static bool
handler_config_equal(const struct handler_config *a, const struct handler_config *b)
{
	return !handler_config_respawn(a, b) && a->class == b->class &&
	       a->min_workers == b->min_workers && a->max_workers == b->max_workers &&
	       a->max_jobs_per_worker == b->max_jobs_per_worker &&
	       a->max_worker_rss == b->max_worker_rss && a->idle_timeout == b->idle_timeout &&
	       a->timeout == b->timeout && a->start_timeout == b->start_timeout &&
	       a->nusers == b->nusers && a->ngroups == b->ngroups &&
	       (a->nusers == 0 || memcmp(a->users, b->users, a->nusers * sizeof *a->users) == 0) &&
	       (a->ngroups == 0 ||
		memcmp(a->groups, b->groups, a->ngroups * sizeof *a->groups) == 0);
}

const struct handler_config *
config_handler(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nhandlers; i++)
		if (strcmp(cfg->handlers[i].name, name) == 0)
			return &cfg->handlers[i];
	return NULL;
}

int
hconfig_diff(const struct config *a, const struct config *b,
	     void (*fn)(const char *key, void *arg), void *arg)
{
	const struct handler_config *o;
	char key[HANDLER_NAME_MAX + 16];
	size_t i;
	int n = 0;

	for (i = 0; i < a->nhandlers; i++) {
		o = config_handler(b, a->handlers[i].name);
		if (o != NULL && handler_config_equal(&a->handlers[i], o))
			continue;
		n++;
		snprintf(key, sizeof key, "handlers.%s", a->handlers[i].name);
		if (fn != NULL)
			fn(key, arg);
	}
	for (i = 0; i < b->nhandlers; i++) {
		if (config_handler(a, b->handlers[i].name) != NULL)
			continue;
		n++;
		snprintf(key, sizeof key, "handlers.%s", b->handlers[i].name);
		if (fn != NULL)
			fn(key, arg);
	}
	return n;
}

void
hconfig_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nhandlers; i++)
		handler_config_free(&cfg->handlers[i]);
	free(cfg->handlers);
	cfg->handlers = NULL;
	cfg->nhandlers = 0;
}

bool
handler_allows(const struct handler_config *h, uid_t uid, gid_t gid, const gid_t *groups,
	       size_t ngroups)
{
	size_t i, k;

	if (h->nusers == 0 && h->ngroups == 0)
		return true;
	if (uid == 0 || uid == geteuid())
		return true;
	for (i = 0; i < h->nusers; i++)
		if (h->users[i] == uid)
			return true;
	for (i = 0; i < h->ngroups; i++) {
		if (h->groups[i] == gid)
			return true;
		for (k = 0; k < ngroups; k++)
			if (h->groups[i] == groups[k])
				return true;
	}
	return false;
}
