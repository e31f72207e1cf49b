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
 *
 * This file holds the key table, the names of enum values, the defaults,
 * freeing and comparing two configurations (reload); config-value.c the
 * setters, config-load.c the walk over the file and the checks after it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "config-private.h"
#include "config.h"
#include "hconfig.h"
#include "labels.h"
#include "log.h"
#include "xmalloc.h"

#define KIB (UINT64_C(1) << 10)
#define MIB (UINT64_C(1) << 20)
#define GIB (UINT64_C(1) << 30)

/* Enum fields are written through an int pointer. */
_Static_assert(sizeof(enum job_class) == sizeof(int), "enum job_class is not int-sized");
_Static_assert(sizeof(enum ppool_mode) == sizeof(int), "enum ppool_mode is not int-sized");
_Static_assert(sizeof(enum cgroups_mode) == sizeof(int), "enum cgroups_mode is not int-sized");
/* The key table spells these ranges as numbers (the man page lint reads them there). */
_Static_assert(TASKD_CPUS_MAX == 1024 && TASKD_PIDS_MAX == 4194304, "jobs.default_* ranges");

static int mode_parse(const char *);
static int router_class_parse(const char *);
static int fsync_parse(const char *);
static int url_check(const char *);
static int name_check(const char *);
static int stream_check(const char *);
static int cgroups_parse(const char *);

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

void
config_modules_free(struct config *cfg)
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

void
config_queues_free(struct config *cfg)
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
	config_queues_free(cfg);
	hconfig_free(cfg);
	config_modules_free(cfg);
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

const struct key *
config_key_find(const char *path)
{
	size_t i;

	for (i = 0; i < nitems(keys); i++)
		if (strcmp(keys[i].path, path) == 0)
			return &keys[i];
	return NULL;
}

bool
config_is_group(const char *path)
{
	size_t i, len = strlen(path);

	for (i = 0; i < nitems(keys); i++)
		if (strncmp(keys[i].path, path, len) == 0 && keys[i].path[len] == '.')
			return true;
	return false;
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
