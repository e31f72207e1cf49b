/*
 * Configuration: built-in defaults (doc/design.md "Configuration")
 * overlaid with a libconfig file.
 *
 * Every key the daemon knows is one row of keys[] below: its dotted path,
 * its kind (which setter parses it), where it lands in struct config and its
 * range. Loading walks every setting of the file and looks each one up in the
 * table, so an unknown key, a wrong type or an out-of-range value is reported
 * as "FILE:LINE: message" with the line of that setting. Cross-field rules
 * (min <= max) are a second, smaller table checked after the walk.
 *
 * Nothing here prints or exits: errors go back to the caller in *cause.
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
#include "config.h"
#include "hconfig.h"
#include "labels.h"
#include "log.h"
#include "xmalloc.h"

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)
#define NOMAX LLONG_MAX /* no upper bound besides the field's type */
#define SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)
#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#ifndef TASKD_MODULEDIR
#define TASKD_MODULEDIR "/usr/lib/taskd/modules"
#endif
#define MODULES_MAX 64

/* Enum fields are written through an int pointer. */
_Static_assert(sizeof(enum job_class) == sizeof(int), "enum job_class is not int-sized");
_Static_assert(sizeof(enum ppool_mode) == sizeof(int), "enum ppool_mode is not int-sized");
_Static_assert(sizeof(enum cgroups_mode) == sizeof(int), "enum cgroups_mode is not int-sized");
/* The key table spells these ranges as numbers (the man page lint reads them there). */
_Static_assert(TASKD_CPUS_MAX == 1024 && TASKD_PIDS_MAX == 4194304, "jobs.default_* ranges");

enum key_kind {
	K_INT,    /* int, integer only */
	K_FLOAT,  /* double, integer or float */
	K_SIZE,   /* uint64_t bytes, integer or "16M" */
	K_PATH,   /* char *, absolute path */
	K_SOCKET, /* char *, absolute path that fits in sun_path */
	K_MODE,   /* mode_t, "0660" or an integer */
	K_ENUM,   /* int, a name turned into a value by parse() */
	K_BOOL,   /* int 0/1, true or false */
	K_SHARE,  /* struct config_share: "75%", or a size like K_SIZE */
	K_STRV,   /* char ** (NULL-terminated), an array or list of non-empty strings */
	K_LISTEN, /* char *, an address to listen on (addr_parse_listen) */
	K_URL,    /* char *, an http:// URL (addr_parse_url) */
	K_CHECKED, /* char *, a string parse() accepts (0), as choices describes */
};

struct key {
	const char *path;
	enum key_kind kind;
	size_t off;
	long long min, max;
	int (*parse)(const char *); /* K_ENUM */
	const char *choices;        /* K_ENUM, for messages */
};

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

typedef int (*setter_fn)(const struct key *, const config_setting_t *, void *, char **);

static int mode_parse(const char *);
static int router_class_parse(const char *);
static int fsync_parse(const char *);
static int url_check(const char *);
static int name_check(const char *);
static int stream_check(const char *);
static int cgroups_parse(const char *);

#define OFF(f) offsetof(struct config, f)

static const struct key keys[] = {
	{ "socket", K_SOCKET, OFF(socket), 0, 0, NULL, NULL },
	{ "socket_mode", K_MODE, OFF(socket_mode), 0, 0777, NULL, NULL },
	{ "state_dir", K_PATH, OFF(state_dir), 0, 0, NULL, NULL },
	{ "log_level", K_ENUM, OFF(log_level), 0, 0, log_level_parse, "error, warn, info or debug" },

	{ "process_pool.mode", K_ENUM, OFF(process_pool.mode), 0, 0, mode_parse,
	  "static, dynamic or ondemand" },
	{ "process_pool.min_workers", K_INT, OFF(process_pool.min_workers), 0, 1024, NULL, NULL },
	{ "process_pool.max_workers", K_INT, OFF(process_pool.max_workers), 0, 1024, NULL, NULL },
	{ "process_pool.min_spare", K_INT, OFF(process_pool.min_spare), 0, 1024, NULL, NULL },
	{ "process_pool.max_spare", K_INT, OFF(process_pool.max_spare), 0, 1024, NULL, NULL },
	{ "process_pool.max_jobs_per_worker", K_INT, OFF(process_pool.max_jobs_per_worker), 0, NOMAX,
	  NULL, NULL },
	{ "process_pool.max_worker_rss", K_SIZE, OFF(process_pool.max_worker_rss), 0, NOMAX, NULL,
	  NULL },
	{ "process_pool.idle_timeout", K_FLOAT, OFF(process_pool.idle_timeout), 0, NOMAX, NULL, NULL },

	{ "thread_pool.min_threads", K_INT, OFF(thread_pool.min_threads), 0, 1024, NULL, NULL },
	{ "thread_pool.max_threads", K_INT, OFF(thread_pool.max_threads), 1, 1024, NULL, NULL },
	{ "thread_pool.idle_timeout", K_FLOAT, OFF(thread_pool.idle_timeout), 0, NOMAX, NULL, NULL },

	{ "queue.max_pending", K_INT, OFF(queue.max_pending), 1, NOMAX, NULL, NULL },
	{ "queue.max_pending_per_user", K_INT, OFF(queue.max_pending_per_user), 1, NOMAX, NULL,
	  NULL },
	{ "queue.fair_share", K_BOOL, OFF(queue.fair_share), 0, 1, NULL, NULL },

	{ "router.default_class", K_ENUM, OFF(router.default_class), 0, 0, router_class_parse,
	  "cpu or io" },
	{ "router.cpu_ratio", K_FLOAT, OFF(router.cpu_ratio), 0, 1, NULL, NULL },
	{ "router.min_samples", K_INT, OFF(router.min_samples), 1, 1000, NULL, NULL },
	{ "router.sample_interval", K_FLOAT, OFF(router.sample_interval), 0, 60, NULL, NULL },
	{ "router.reclassify_after", K_INT, OFF(router.reclassify_after), 0, 1000, NULL, NULL },

	{ "cgroups.enable", K_ENUM, OFF(cgroups.enable), 0, 0, cgroups_parse, "auto or off" },

	{ "jobs.default_timeout", K_FLOAT, OFF(jobs.default_timeout), 0, NOMAX, NULL, NULL },
	{ "jobs.kill_grace", K_FLOAT, OFF(jobs.kill_grace), 0, 3600, NULL, NULL },
	{ "jobs.max_output", K_SIZE, OFF(jobs.max_output), 0, NOMAX, NULL, NULL },
	{ "jobs.keep_finished", K_INT, OFF(jobs.keep_finished), 0, NOMAX, NULL, NULL },
	{ "jobs.default_memory", K_SIZE, OFF(jobs.default_memory), 0, NOMAX, NULL, NULL },
	{ "jobs.default_cpus", K_FLOAT, OFF(jobs.default_cpus), 0, 1024, NULL, NULL },
	{ "jobs.default_pids", K_INT, OFF(jobs.default_pids), 0, 4194304, NULL, NULL },

	{ "store.fsync", K_ENUM, OFF(store.fsync), 0, 0, fsync_parse, "always or interval" },
	{ "store.fsync_interval", K_FLOAT, OFF(store.fsync_interval), 0, 3600, NULL, NULL },

	/* Below 16K the answers of fixed size (status, metrics) and one job object may not fit. */
	{ "limits.max_frame", K_SIZE, OFF(limits.max_frame), 16 * KIB, 64 * MIB, NULL, NULL },
	{ "limits.max_clients", K_INT, OFF(limits.max_clients), 1, 1000000, NULL, NULL },
	{ "limits.max_clients_per_user", K_INT, OFF(limits.max_clients_per_user), 0, 1000000, NULL,
	  NULL },
	{ "limits.stall_timeout", K_FLOAT, OFF(limits.stall_timeout), 0, 3600, NULL, NULL },
	{ "limits.memory_budget", K_SHARE, OFF(limits.memory_budget), 0, NOMAX, NULL, NULL },
	{ "limits.pressure_cpu", K_FLOAT, OFF(limits.pressure_cpu), 0, 100, NULL, NULL },
	{ "limits.pressure_memory", K_FLOAT, OFF(limits.pressure_memory), 0, 100, NULL, NULL },
	{ "limits.idle_timeout", K_FLOAT, OFF(limits.idle_timeout), 0, 604800, NULL, NULL },
	{ "limits.max_input", K_SIZE, OFF(limits.max_input), 0, 256 * MIB, NULL, NULL },

	{ "jobs.on_finish", K_STRV, OFF(jobs.on_finish), 1, CONFIG_MAX_ON_FINISH, NULL, NULL },
	{ "jobs.webhook", K_URL, OFF(jobs.webhook), 0, 0, NULL, NULL },
	{ "jobs.slow_log", K_FLOAT, OFF(jobs.slow_log), 0, NOMAX, NULL, NULL },
	{ "jobs.notify_timeout", K_FLOAT, OFF(jobs.notify_timeout), 0, 86400, NULL, NULL },

	{ "http.listen", K_LISTEN, OFF(http.listen), 0, 0, NULL, NULL },
	{ "http.allow_remote", K_BOOL, OFF(http.allow_remote), 0, 1, NULL, NULL },
	{ "http.token_file", K_PATH, OFF(http.token_file), 0, 0, NULL, NULL },
	{ "http.socket_mode", K_MODE, OFF(http.socket_mode), 0, 0777, NULL, NULL },
	{ "http.max_connections", K_INT, OFF(http.max_connections), 2, 4096, NULL, NULL },
	{ "http.timeout", K_FLOAT, OFF(http.timeout), 1, 3600, NULL, NULL },
	{ "limits.max_job_bytes_per_user", K_SIZE, OFF(limits.max_job_bytes_per_user), 0, NOMAX,
	  NULL, NULL },
	{ "limits.max_output_per_user", K_SIZE, OFF(limits.max_output_per_user), 0, NOMAX, NULL,
	  NULL },

	{ "cluster.url", K_CHECKED, OFF(cluster.url), 0, 0, url_check,
	  "nats://HOST:PORT or tls://HOST:PORT, several separated by commas" },
	{ "cluster.node", K_CHECKED, OFF(cluster.node), 0, 0, name_check,
	  "1 to 64 letters, digits, '-' or '_'" },
	{ "cluster.stream", K_CHECKED, OFF(cluster.stream), 0, 0, stream_check,
	  "1 to 32 letters, digits, '-' or '_'" },
	{ "cluster.replicas", K_INT, OFF(cluster.replicas), 1, 5, NULL, NULL },
	{ "cluster.ack_wait", K_FLOAT, OFF(cluster.ack_wait), 1, 86400, NULL, NULL },
	{ "cluster.credentials", K_PATH, OFF(cluster.credentials), 0, 0, NULL, NULL },
	{ "cluster.tls_ca", K_PATH, OFF(cluster.tls_ca), 0, 0, NULL, NULL },
	{ "cluster.tls_cert", K_PATH, OFF(cluster.tls_cert), 0, 0, NULL, NULL },
	{ "cluster.tls_key", K_PATH, OFF(cluster.tls_key), 0, 0, NULL, NULL },
	{ "cluster.keep", K_FLOAT, OFF(cluster.keep), 60, 31536000, NULL, NULL },
};

static const struct order orders[] = {
	{ "process_pool.min_workers", "process_pool.max_workers", OFF(process_pool.min_workers),
	  OFF(process_pool.max_workers), true },
	{ "process_pool.min_spare", "process_pool.max_spare", OFF(process_pool.min_spare),
	  OFF(process_pool.max_spare), false },
	{ "thread_pool.min_threads", "thread_pool.max_threads", OFF(thread_pool.min_threads),
	  OFF(thread_pool.max_threads), false },
};

static const char *const class_names[] = {
	[CLASS_AUTO] = "auto",
	[CLASS_CPU] = "cpu",
	[CLASS_IO] = "io",
};

static const char *const mode_names[] = {
	[PPOOL_STATIC] = "static",
	[PPOOL_DYNAMIC] = "dynamic",
	[PPOOL_ONDEMAND] = "ondemand",
};

void
config_defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->socket_mode = 0660;
	cfg->log_level = LOG_LEVEL_INFO;

	cfg->process_pool.mode = PPOOL_DYNAMIC;
	cfg->process_pool.min_workers = 1;
	cfg->process_pool.max_workers = 0;
	cfg->process_pool.min_spare = 1;
	cfg->process_pool.max_spare = 2;
	cfg->process_pool.max_jobs_per_worker = 1000;
	cfg->process_pool.max_worker_rss = 512 * MIB;
	cfg->process_pool.idle_timeout = 30;

	cfg->thread_pool.min_threads = 2;
	cfg->thread_pool.max_threads = 32;
	cfg->thread_pool.idle_timeout = 30;

	cfg->queue.max_pending = 100000;
	cfg->queue.max_pending_per_user = 10000;
	cfg->queue.fair_share = 1;

	cfg->router.default_class = CLASS_IO;
	cfg->router.cpu_ratio = 0.5;
	cfg->router.min_samples = 1;
	cfg->router.sample_interval = 0.5;
	cfg->router.reclassify_after = 3;

	cfg->cgroups.enable = CGROUPS_AUTO;

	cfg->jobs.default_timeout = 0;
	cfg->jobs.kill_grace = 5;
	cfg->jobs.max_output = 16 * MIB;
	cfg->jobs.keep_finished = 10000;

	cfg->store.fsync = FSYNC_ALWAYS;
	cfg->store.fsync_interval = 0.1;

	cfg->limits.max_frame = 1 * MIB;
	cfg->limits.max_clients = 1024;
	cfg->limits.max_clients_per_user = 256;
	cfg->limits.stall_timeout = 10;
	cfg->limits.memory_budget.share = 0.75;
	cfg->limits.pressure_cpu = 0;
	cfg->limits.pressure_memory = 25;
	cfg->limits.idle_timeout = 300;
	cfg->limits.max_input = 16 * MIB;

	cfg->jobs.notify_timeout = 60;

	cfg->http.socket_mode = 0660;
	cfg->http.max_connections = 64;
	cfg->http.timeout = 10;
	cfg->limits.max_job_bytes_per_user = 64 * MIB;
	cfg->limits.max_output_per_user = 1 * GIB;

	cfg->cluster.replicas = 1;
	cfg->cluster.ack_wait = 30;
	cfg->cluster.keep = 7 * 86400;
}

static void
modules_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nmodules; i++) {
		free(cfg->modules[i].path);
		free(cfg->modules[i].file);
	}
	free(cfg->modules);
	cfg->modules = NULL;
	cfg->nmodules = 0;
}

static void
queues_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nqueues; i++)
		free(cfg->queues[i].name);
	free(cfg->queues);
	cfg->queues = NULL;
	cfg->nqueues = 0;
}

void
config_free(struct config *cfg)
{
	queues_free(cfg);
	hconfig_free(cfg);
	modules_free(cfg);
	free(cfg->path);
	free(cfg->socket);
	free(cfg->state_dir);
	strv_free(cfg->jobs.on_finish);
	free(cfg->jobs.webhook);
	free(cfg->http.listen);
	free(cfg->http.token_file);
	free(cfg->cluster.url);
	free(cfg->cluster.node);
	free(cfg->cluster.stream);
	free(cfg->cluster.credentials);
	free(cfg->cluster.tls_ca);
	free(cfg->cluster.tls_cert);
	free(cfg->cluster.tls_key);
	config_defaults(cfg);
}

/* Names <-> enum values. */

static int
name_index(const char *const *names, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (names[i] != NULL && strcmp(names[i], name) == 0)
			return (int)i;
	return -1;
}

const char *
config_class_name(enum job_class c)
{
	if ((size_t)c >= nitems(class_names))
		return "unknown";
	return class_names[c];
}

int
config_class_parse(const char *name)
{
	return name_index(class_names, nitems(class_names), name);
}

const char *
config_mode_name(enum ppool_mode m)
{
	if ((size_t)m >= nitems(mode_names))
		return "unknown";
	return mode_names[m];
}

static int
mode_parse(const char *name)
{
	return name_index(mode_names, nitems(mode_names), name);
}

static const char *const fsync_names[] = {
	[FSYNC_ALWAYS] = "always",
	[FSYNC_INTERVAL] = "interval",
};

static int
fsync_parse(const char *name)
{
	return name_index(fsync_names, nitems(fsync_names), name);
}

const char *
config_fsync_name(enum store_fsync f)
{
	return (size_t)f < nitems(fsync_names) ? fsync_names[f] : "?";
}

static const char *const cgroups_names[] = {
	[CGROUPS_AUTO] = "auto",
	[CGROUPS_OFF] = "off",
};

static int
cgroups_parse(const char *name)
{
	return name_index(cgroups_names, nitems(cgroups_names), name);
}

/* router.default_class decides for unknown kinds: it cannot be "auto". */
static int
router_class_parse(const char *name)
{
	int c = config_class_parse(name);

	return c == CLASS_AUTO ? -1 : c;
}

/* A name that is one NATS subject token and a JetStream name: [A-Za-z0-9_-]{1,max}. */
static int
token_check(const char *s, size_t max)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_");

	return n > 0 && n <= max && s[n] == '\0' ? 0 : -1;
}

static int
name_check(const char *s)
{
	return token_check(s, 64);
}

static int
stream_check(const char *s)
{
	return token_check(s, 32);
}

/* nats://HOST[:PORT] or tls://..., user:password@ allowed, comma-separated, no spaces. */
static int
url_check(const char *s)
{
	const char *p = s, *end;
	size_t len;

	if (*s == '\0')
		return -1;
	for (;;) {
		end = strchr(p, ',');
		len = end != NULL ? (size_t)(end - p) : strlen(p);
		if (!((len > 7 && strncmp(p, "nats://", 7) == 0) ||
		      (len > 6 && strncmp(p, "tls://", 6) == 0)))
			return -1;
		for (; len > 0; p++, len--)
			if ((unsigned char)*p <= ' ' || *p == 0x7f)
				return -1;
		if (end == NULL)
			return 0;
		p = end + 1;
	}
}

const char *
config_cluster_stream(const struct config *cfg)
{
	return cfg->cluster.stream != NULL ? cfg->cluster.stream : "TASKD";
}

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

static bool
is_integer(const config_setting_t *s)
{
	int t = config_setting_type(s);

	return t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64;
}

static int
set_int(const struct key *k, const config_setting_t *s, void *field, char **why)
{
	long long v, shown, max = k->max < INT_MAX ? k->max : INT_MAX;

	if (!is_integer(s)) {
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

	if (is_integer(s))
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

	if (is_integer(s)) {
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

	if (is_integer(s)) {
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

	if (!is_integer(s) && config_setting_type(s) != CONFIG_TYPE_STRING) {
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

static const setter_fn setters[] = {
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

static const struct key *
key_find(const char *path)
{
	size_t i;

	for (i = 0; i < nitems(keys); i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

static bool
is_group(const char *path)
{
	size_t i, len = strlen(path);

	for (i = 0; i < nitems(keys); i++)
		if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.')
			return true;
	return false;
}

static int
apply(struct loader *ld, const struct key *k, const config_setting_t *s)
{
	char *why = NULL;
	int rc;

	if (setters[k->kind](k, s, (char *)ld->cfg + k->off, &why) == 0)
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
			if (!is_integer(s) || (v = config_setting_get_int64(s)) < 1 ||
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
	queues_free(cfg);
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

	modules_free(ld->cfg);
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

const struct queue_config *
config_queue(const struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < cfg->nqueues; i++)
		if (strcmp(cfg->queues[i].name, name) == 0)
			return &cfg->queues[i];
	return NULL;
}

static int
visit(struct loader *ld, const config_setting_t *s, const char *path)
{
	const struct key *k;
	const char *file = config_setting_source_file(s);
	unsigned int line = config_setting_source_line(s);

	if ((k = key_find(path)) != NULL)
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
	if (!is_group(path))
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

static bool
key_equal(const struct key *k, const struct config *a, const struct config *b)
{
	const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
	const char *sa, *sb;

	switch (k->kind) {
	case K_INT:
	case K_ENUM:
	case K_BOOL:
		return *(const int *)(const void *)pa == *(const int *)(const void *)pb;
	case K_FLOAT:
		return *(const double *)(const void *)pa == *(const double *)(const void *)pb;
	case K_SIZE:
		return *(const uint64_t *)(const void *)pa == *(const uint64_t *)(const void *)pb;
	case K_SHARE:
		return ((const struct config_share *)(const void *)pa)->bytes ==
			       ((const struct config_share *)(const void *)pb)->bytes &&
		       ((const struct config_share *)(const void *)pa)->share ==
			       ((const struct config_share *)(const void *)pb)->share;
	case K_MODE:
		return *(const mode_t *)(const void *)pa == *(const mode_t *)(const void *)pb;
	case K_STRV:
		return strv_equal(*(char **const *)(const void *)pa, *(char **const *)(const void *)pb);
	case K_PATH:
	case K_SOCKET:
	case K_LISTEN:
	case K_URL:
	case K_CHECKED:
		sa = *(char *const *)(const void *)pa;
		sb = *(char *const *)(const void *)pb;
		return (sa == NULL && sb == NULL) || (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
	}
	return true;
}

static bool
queues_equal(const struct config *a, const struct config *b)
{
	size_t i;

	if (a->nqueues != b->nqueues)
		return false;
	for (i = 0; i < a->nqueues; i++)
		if (strcmp(a->queues[i].name, b->queues[i].name) != 0 ||
		    a->queues[i].slots != b->queues[i].slots)
			return false;
	return true;
}

int
config_diff(const struct config *a, const struct config *b,
	    void (*fn)(const char *key, void *arg), void *arg)
{
	size_t i;
	int n = 0;

	for (i = 0; i < nitems(keys); i++) {
		if (key_equal(&keys[i], a, b))
			continue;
		n++;
		if (fn != NULL)
			fn(keys[i].path, arg);
	}
	if (!queues_equal(a, b)) {
		n++;
		if (fn != NULL)
			fn("queues", arg);
	}
	if (!config_same_modules(a, b)) {
		n++;
		if (fn != NULL)
			fn("modules", arg);
	}
	return n + hconfig_diff(a, b, fn, arg);
}

int
config_same_modules(const struct config *a, const struct config *b)
{
	size_t i;

	if (a->nmodules != b->nmodules)
		return 0;
	for (i = 0; i < a->nmodules; i++)
		if (strcmp(a->modules[i].path, b->modules[i].path) != 0)
			return 0;
	return 1;
}

bool
config_cluster_changed(const struct config *a, const struct config *b)
{
	size_t i;

	for (i = 0; i < nitems(keys); i++)
		if (strncmp(keys[i].path, "cluster.", 8) == 0 && !key_equal(&keys[i], a, b))
			return true;
	return false;
}
