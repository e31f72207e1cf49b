/*
 * Loading the configuration file (config_load): libconfig reads it, the
 * walk visits every setting and hands it to its key's setter
 * (config-value.c), or to the reader of its list (queues, modules here,
 * handlers in hconfig.c); then the cross-field rules are checked. Every
 * error is "FILE:LINE: message" with the line of the setting at fault.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include <taskd/protocol.h>

#include "addr.h"
#include "config-private.h"
#include "config.h"
#include "hconfig.h"
#include "labels.h"
#include "xmalloc.h"

#ifndef TASKD_MODULEDIR
#define TASKD_MODULEDIR "/usr/lib/taskd/modules"
#endif
#define MODULES_MAX 64

/* lo must not be greater than hi (unless hi is 0 and zero_unbounded). */
struct order {
	const char *lo, *hi;
	size_t lo_off, hi_off;
	bool zero_unbounded;
};

struct loader {
	const char *path;
	config_t *lc;
	struct config *cfg;
	char *cause;
};

static const struct order orders[] = {
	{ "process_pool.min_workers", "process_pool.max_workers", OFF(process_pool.min_workers),
	  OFF(process_pool.max_workers), true },
	{ "process_pool.min_spare", "process_pool.max_spare", OFF(process_pool.min_spare),
	  OFF(process_pool.max_spare), false },
	{ "thread_pool.min_threads", "thread_pool.max_threads", OFF(thread_pool.min_threads),
	  OFF(thread_pool.max_threads), false },
};

/* The walk over the file. */

static int __attribute__((format(printf, 4, 5)))
fail(struct loader *ld, const char *file, unsigned int line, const char *fmt, ...)
{
	va_list ap;
	char *msg;

	va_start(ap, fmt);
	msg = xvprintf(fmt, ap);
	va_end(ap);
	free(ld->cause);
	ld->cause = xprintf("%s:%u: %s", file != NULL ? file : ld->path, line, msg);
	free(msg);
	return -1;
}

static int
apply(struct loader *ld, const struct key *k, const config_setting_t *s)
{
	char *why = NULL;
	int rc;

	if (config_setters[k->kind](k, s, (char *)ld->cfg + k->off, &why) == 0)
		return 0;
	rc = fail(ld, config_setting_source_file(s), config_setting_source_line(s), "%s: %s", k->path, why);
	free(why);
	return rc;
}

static int walk(struct loader *, const config_setting_t *, const char *);

/* One { name = "gpu"; slots = 1; } of the queues list. */
static int
load_queue(struct loader *ld, const config_setting_t *g, struct queue_config *q)
{
	const config_setting_t *s;
	const char *key, *file = config_setting_source_file(g);
	unsigned int line = config_setting_source_line(g), i;
	bool named = false, sized = false;
	long long v;

	if (!config_setting_is_group(g))
		return fail(ld, file, line, "queues: each queue is a group { name = \"...\"; "
			    "slots = N; }");
	for (i = 0; i < (unsigned int)config_setting_length(g); i++) {
		s = config_setting_get_elem(g, i);
		key = config_setting_name(s);
		line = config_setting_source_line(s);
		if (strcmp(key, "name") == 0) {
			if (config_setting_type(s) != CONFIG_TYPE_STRING ||
			    /* What a label key may be: safe in messages and meta keys. */
			    !labels_key_valid(config_setting_get_string(s)))
				return fail(ld, file, line, "queues: name must be 1 to 64 characters "
					    "of A-Z a-z 0-9 _ . -");
			q->name = xstrdup(config_setting_get_string(s));
			named = true;
		} else if (strcmp(key, "slots") == 0) {
			if (!config_is_integer(s) || (v = config_setting_get_int64(s)) < 1 ||
			    v > CONFIG_MAX_QUEUE_SLOTS)
				return fail(ld, file, line, "queues: slots must be an integer between "
					    "1 and %d", CONFIG_MAX_QUEUE_SLOTS);
			q->slots = (int)v;
			sized = true;
		} else {
			return fail(ld, file, line, "queues: unknown key '%s' (a queue has name and "
				    "slots)", key);
		}
	}
	if (!named || !sized)
		return fail(ld, file, config_setting_source_line(g), "queues: a queue needs %s",
			    !named ? "a name" : "slots");
	return 0;
}

/* queues = ( { name = "gpu"; slots = 1; }, ... ): a list, names unique. */
static int
load_queues(struct loader *ld, const config_setting_t *list)
{
	const char *file = config_setting_source_file(list);
	unsigned int n = (unsigned int)config_setting_length(list), i, k;
	struct config *cfg = ld->cfg;

	/* (An empty [] is an array to libconfig: no queues all the same.) */
	if (!config_setting_is_list(list) && !(config_setting_is_array(list) && n == 0))
		return fail(ld, file, config_setting_source_line(list),
			    "queues: expected a list ( { name = \"...\"; slots = N; }, ... )");
	if (n > CONFIG_MAX_QUEUES)
		return fail(ld, file, config_setting_source_line(list),
			    "queues: at most %d queues", CONFIG_MAX_QUEUES);
	config_queues_free(cfg);
	cfg->queues = xcalloc(n > 0 ? n : 1, sizeof *cfg->queues);
	for (i = 0; i < n; i++) {
		cfg->nqueues = i + 1;
		if (load_queue(ld, config_setting_get_elem(list, i), &cfg->queues[i]) == -1)
			return -1;
		for (k = 0; k < i; k++)
			if (strcmp(cfg->queues[k].name, cfg->queues[i].name) == 0)
				return fail(ld, file, config_setting_source_line(
						      config_setting_get_elem(list, i)),
					    "queues: '%s' is named twice", cfg->queues[i].name);
	}
	return 0;
}

/* An absolute path, or a bare name: MODULEDIR/NAME, with ".so" added when it has none. */
static char *
module_path(const char *v)
{
	size_t n = strlen(v);

	if (v[0] == '/')
		return xstrdup(v);
	if (n > 3 && strcmp(v + n - 3, ".so") == 0)
		return xprintf("%s/%s", TASKD_MODULEDIR, v);
	return xprintf("%s/%s.so", TASKD_MODULEDIR, v);
}

/*
 * The line of a string element of a list. libconfig gives the line its
 * parser was on when it took the element, which for the last one is the
 * line of the closing parenthesis: the last line up to that one that holds
 * the string quoted is where it is written.
 */
static unsigned int
element_line(const char *file, unsigned int line, const char *v)
{
	char *quoted = xprintf("\"%s\"", v), *buf = NULL;
	unsigned int n = 0, found = line;
	size_t cap = 0;
	FILE *f = fopen(file, "re");

	while (f != NULL && n < line && getline(&buf, &cap, f) != -1) {
		n++;
		if (strstr(buf, quoted) != NULL)
			found = n;
	}
	if (f != NULL)
		fclose(f);
	free(buf);
	free(quoted);
	return found;
}

/* `modules = ( "PATH", ... )` (a list or an array of strings); modules.c loads them. */
static int
load_modules(struct loader *ld, const config_setting_t *s)
{
	const config_setting_t *e;
	const char *v, *file;
	unsigned int line;
	size_t i, j, n;

	config_modules_free(ld->cfg);
	if (!config_setting_is_list(s) && !config_setting_is_array(s))
		return fail(ld, config_setting_source_file(s), config_setting_source_line(s),
			    "modules: expected a list of paths ( \"/path/x.so\", ... )");
	n = (size_t)config_setting_length(s);
	if (n > MODULES_MAX)
		return fail(ld, config_setting_source_file(s), config_setting_source_line(s),
			    "modules: at most %d modules", MODULES_MAX);
	ld->cfg->modules = n > 0 ? xcalloc(n, sizeof *ld->cfg->modules) : NULL;
	for (i = 0; i < n; i++) {
		e = config_setting_get_elem(s, (unsigned int)i);
		file = config_setting_source_file(e) != NULL ? config_setting_source_file(e)
							      : ld->path;
		line = config_setting_source_line(e) > 0 ? config_setting_source_line(e)
							 : config_setting_source_line(s);
		if (config_setting_type(e) != CONFIG_TYPE_STRING)
			return fail(ld, file, line, "modules[%zu]: expected a string (a path)", i);
		v = config_setting_get_string(e);
		line = element_line(file, line, v);
		if (*v == '\0' || (v[0] != '/' && strchr(v, '/') != NULL))
			return fail(ld, file, line, "modules[%zu]: '%s': expected an absolute path, "
				    "or the name of a module in %s", i, v, TASKD_MODULEDIR);
		ld->cfg->modules[i].path = module_path(v);
		ld->cfg->modules[i].file = xstrdup(file);
		ld->cfg->modules[i].line = line;
		ld->cfg->nmodules = i + 1;
		for (j = 0; j < i; j++)
			if (strcmp(ld->cfg->modules[j].path, ld->cfg->modules[i].path) == 0)
				return fail(ld, file, line, "modules[%zu]: %s is listed twice", i,
					    ld->cfg->modules[i].path);
	}
	return 0;
}

static int
visit(struct loader *ld, const config_setting_t *s, const char *path)
{
	const struct key *k;
	const char *file = config_setting_source_file(s);
	unsigned int line = config_setting_source_line(s);

	if ((k = config_key_find(path)) != NULL)
		return apply(ld, k, s);
	if (strcmp(path, "modules") == 0)
		return load_modules(ld, s);
	/* Lists of groups, with rules of their own (here, and hconfig.c). */
	if (strcmp(path, "queues") == 0)
		return load_queues(ld, s);
	if (strcmp(path, "handlers") == 0) {
		hconfig_free(ld->cfg);
		free(ld->cause);
		ld->cause = NULL;
		return hconfig_load(s, ld->path, &ld->cfg->handlers, &ld->cfg->nhandlers,
				    &ld->cause);
	}
	if (!config_is_group(path))
		return fail(ld, file, line, "unknown key '%s'", path);
	if (!config_setting_is_group(s))
		return fail(ld, file, line, "%s: expected a group ({ ... })", path);
	return walk(ld, s, path);
}

static int
walk(struct loader *ld, const config_setting_t *group, const char *prefix)
{
	const config_setting_t *s;
	char *path;
	int i, n = config_setting_length(group), rc = 0;

	for (i = 0; i < n && rc == 0; i++) {
		s = config_setting_get_elem(group, (unsigned int)i);
		if (prefix == NULL)
			path = xstrdup(config_setting_name(s));
		else
			path = xprintf("%s.%s", prefix, config_setting_name(s));
		rc = visit(ld, s, path);
		free(path);
	}
	return rc;
}

/* Cross-field rules, reported at whichever of the two settings comes later. */
static int
check_order(struct loader *ld, const struct order *o)
{
	const config_setting_t *s, *lo, *hi;
	int lo_v = *(int *)((char *)ld->cfg + o->lo_off);
	int hi_v = *(int *)((char *)ld->cfg + o->hi_off);

	if (lo_v <= hi_v || (o->zero_unbounded && hi_v == 0))
		return 0;
	lo = config_lookup(ld->lc, o->lo);
	hi = config_lookup(ld->lc, o->hi);
	s = hi;
	if (s == NULL || (lo != NULL && config_setting_source_line(lo) > config_setting_source_line(hi)))
		s = lo;
	return fail(ld, s != NULL ? config_setting_source_file(s) : NULL,
		    s != NULL ? config_setting_source_line(s) : 0,
		    "%s (%d) must not be greater than %s (%d)", o->lo, lo_v, o->hi, hi_v);
}

static int
check_orders(struct loader *ld)
{
	size_t i;

	for (i = 0; i < nitems(orders); i++)
		if (check_order(ld, &orders[i]) == -1)
			return -1;
	return 0;
}

/* Per-job limit defaults: 0 (none), or what a job may ask for (TASKD_* in protocol.h). */
static int
check_limits(struct loader *ld)
{
	const config_setting_t *s;
	const char *key = NULL;
	char *what = NULL;
	int rc;

	if (ld->cfg->jobs.default_memory > 0 &&
	    (ld->cfg->jobs.default_memory < (uint64_t)TASKD_MEMORY_MIN ||
	     ld->cfg->jobs.default_memory > (uint64_t)TASKD_MEMORY_MAX)) {
		key = "jobs.default_memory";
		what = xstrdup("must be 0 (none) or 1M to 16T");
	} else if (ld->cfg->jobs.default_cpus > 0 && ld->cfg->jobs.default_cpus < TASKD_CPUS_MIN) {
		key = "jobs.default_cpus";
		what = xprintf("must be 0 (none) or at least %g", TASKD_CPUS_MIN);
	}
	if (key == NULL)
		return 0;
	s = config_lookup(ld->lc, key);
	rc = fail(ld, s != NULL ? config_setting_source_file(s) : NULL,
		  s != NULL ? config_setting_source_line(s) : 0, "%s: %s", key, what);
	free(what);
	return rc;
}

/*
 * limits.idle_timeout is checked once a second and logs --follow asks every
 * 0.2 s: below 1 s it would cut clients that are busy. 0 turns it off.
 */
static int
check_idle_timeout(struct loader *ld)
{
	const config_setting_t *s = config_lookup(ld->lc, "limits.idle_timeout");
	double v = ld->cfg->limits.idle_timeout;

	if (v == 0 || v >= 1 || s == NULL)
		return 0;
	return fail(ld, config_setting_source_file(s), config_setting_source_line(s),
		    "limits.idle_timeout: must be 0 (never) or at least 1 second, not %g", v);
}

/* A listen address that is not loopback only with http.allow_remote. */
static int
check_http(struct loader *ld)
{
	const config_setting_t *s;
	struct listen_addr a;
	char *why = NULL;

	if (ld->cfg->http.listen == NULL || ld->cfg->http.allow_remote)
		return 0;
	if (addr_parse_listen(ld->cfg->http.listen, &a, &why) == -1) {
		free(why); /* checked when it was set */
		return 0;
	}
	if (a.loopback)
		return 0;
	s = config_lookup(ld->lc, "http.listen");
	return fail(ld, s != NULL ? config_setting_source_file(s) : NULL,
		    s != NULL ? config_setting_source_line(s) : 0,
		    "http.listen: %s is not a loopback address: set http.allow_remote = true to "
		    "serve other hosts (and set http.token_file)", a.host);
}

/*
 * The cluster group (doc/cluster.md): its url is what turns cluster mode
 * on, so a group without one is a mistake; a client certificate needs its
 * key; and a taskd built without libnats cannot do it at all.
 */
static int
check_cluster(struct loader *ld)
{
	const config_setting_t *g = config_lookup(ld->lc, "cluster"), *s;
	const struct config *c = ld->cfg;

	if (g == NULL)
		return 0;
	if (c->cluster.url == NULL)
		return fail(ld, config_setting_source_file(g), config_setting_source_line(g),
			    "cluster: url is required (the NATS server, e.g. "
			    "\"nats://127.0.0.1:4222\"); remove the group for a single node");
	if ((c->cluster.tls_cert == NULL) != (c->cluster.tls_key == NULL)) {
		s = config_lookup(ld->lc, c->cluster.tls_cert != NULL ? "cluster.tls_cert"
									 : "cluster.tls_key");
		return fail(ld, config_setting_source_file(s), config_setting_source_line(s),
			    "cluster: tls_cert and tls_key go together");
	}
#ifndef TASKD_CLUSTER
	s = config_lookup(ld->lc, "cluster.url");
	return fail(ld, config_setting_source_file(s), config_setting_source_line(s),
		    "cluster: this taskd was built without cluster support (libnats, meson "
		    "option -Dcluster)");
#else
	return 0;
#endif
}

static int
read_file(struct loader *ld)
{
	const char *file;
	int saved;

	errno = 0;
	if (config_read_file(ld->lc, ld->path))
		return 0;
	saved = errno;
	if (config_error_type(ld->lc) == CONFIG_ERR_FILE_IO) {
		ld->cause = xprintf("%s: cannot read: %s", ld->path,
				    saved != 0 ? strerror(saved) : config_error_text(ld->lc));
		return -1;
	}
	file = config_error_file(ld->lc);
	return fail(ld, file, (unsigned int)config_error_line(ld->lc), "%s",
		    config_error_text(ld->lc));
}

int
config_load(const char *path, struct config *cfg, char **cause)
{
	struct loader ld = { .path = path, .cfg = cfg };
	config_t lc;
	int rc;

	config_defaults(cfg);
	ld.lc = &lc;
	config_init(&lc);
	rc = read_file(&ld);
	if (rc == 0)
		rc = walk(&ld, config_root_setting(&lc), NULL);
	if (rc == 0)
		rc = check_orders(&ld);
	if (rc == 0)
		rc = check_limits(&ld);
	if (rc == 0)
		rc = check_idle_timeout(&ld);
	if (rc == 0)
		rc = check_http(&ld);
	if (rc == 0)
		rc = check_cluster(&ld);
	config_destroy(&lc);
	if (rc == -1) {
		config_free(cfg);
		if (cause != NULL)
			*cause = ld.cause;
		else
			free(ld.cause);
		return -1;
	}
	cfg->path = xstrdup(path);
	return 0;
}
