/*
 * Daemon configuration: defaults (doc/design.md "Configuration") overlaid
 * with a libconfig file.
 * Loading never exits: errors come back as "FILE:LINE: message" in *cause.
 */
#ifndef TASKD_CONFIG_H
#define TASKD_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

enum job_class { CLASS_AUTO = 0, CLASS_CPU, CLASS_IO };

/* jobs.on_finish: at most this many commands, each at most CONFIG_MAX_COMMAND bytes. */
#define CONFIG_MAX_ON_FINISH 16
#define CONFIG_MAX_COMMAND 4096

enum ppool_mode { PPOOL_STATIC = 0, PPOOL_DYNAMIC, PPOOL_ONDEMAND };
/* cgroups.enable: per-job cgroups where taskd can make them, or never. */
enum cgroups_mode { CGROUPS_AUTO = 0, CGROUPS_OFF };

/* A size, or a share of something measured when it is applied ("75%"). */
struct config_share {
	uint64_t bytes; /* 0: the share applies */
	double share;   /* 0..1; both 0: off */
};
/* store.fsync: when an acknowledged submit reaches the disk. */
enum store_fsync { FSYNC_ALWAYS = 0, FSYNC_INTERVAL };

/*
 * One named queue (`queues = ( { name = "gpu"; slots = 1; } )`): jobs
 * submitted with --queue NAME run at most `slots` at once (gate.h).
 */
struct queue_config {
	char *name;     /* 1..64 bytes of [A-Za-z0-9_.-] */
	int slots;      /* 1..CONFIG_MAX_QUEUE_SLOTS */
};
#define CONFIG_MAX_QUEUE_SLOTS 65536
#define CONFIG_MAX_QUEUES 256

/*
 * One handler (`handlers = ( { name = ...; command = [...]; ... } )`): a
 * job type served by a program the user writes, kept warm in worker
 * processes by hpool.c. doc/handlers.md and taskd.conf(5) describe the keys.
 */
struct handler_config {
	char *name;
	char **command;          /* NULL-terminated; command[0] an absolute path */
	enum job_class class;
	int min_workers;
	int max_workers;         /* 0 = the number of CPUs (cpu), thread_pool.max_threads (io, auto) */
	int concurrency;         /* jobs one worker takes at once (io) */
	int max_jobs_per_worker; /* 0 = never recycle for that */
	uint64_t max_worker_rss; /* bytes, 0 = no limit */
	double idle_timeout;     /* seconds an idle worker above min_workers lives */
	double timeout;          /* default for its jobs; 0 = jobs.default_timeout */
	double start_timeout;    /* seconds from spawn to hello */
	char **env;              /* NULL-terminated "K=V" */
	char *cwd;
	char *user;              /* NULL: the daemon's own user */
	uid_t uid;               /* resolved: the user the workers run as */
	gid_t gid;
	uid_t *users;            /* who may submit (with groups); none of both: everyone */
	size_t nusers;
	gid_t *groups;
	size_t ngroups;
	unsigned int line;       /* where it is in the file, for messages */
};

/*
 * One entry of `modules = ( "PATH", ... )`: a C module to load (module.c,
 * doc/modules.md). Loading it is module.c's business; the configuration
 * only knows where it is and where it was written.
 */
struct module_config {
	char *path;        /* absolute: as written, or MODULEDIR/NAME.so for a bare NAME */
	char *file;        /* the configuration file that names it, for messages */
	unsigned int line;
};

struct config {
	char *path;       /* file it was loaded from, or NULL for built-in defaults */
	char *socket;     /* NULL: not set in the file (main picks the default) */
	mode_t socket_mode;
	char *state_dir;  /* NULL: not set in the file (main picks the default) */
	int log_level;    /* enum log_level */

	struct {
		enum ppool_mode mode;
		int min_workers;
		int max_workers; /* 0 = number of CPUs */
		int min_spare;
		int max_spare;
		int max_jobs_per_worker;
		uint64_t max_worker_rss; /* bytes, 0 = no limit */
		double idle_timeout;     /* seconds */
	} process_pool;

	struct {
		int min_threads;
		int max_threads;
		double idle_timeout; /* seconds */
	} thread_pool;

	struct {
		int max_pending;
		int max_pending_per_user;
		int fair_share; /* round robin over users within a priority (sched.c) */
	} queue;

	struct {
		enum job_class default_class; /* CLASS_CPU or CLASS_IO */
		double cpu_ratio;             /* 0..1 */
		int min_samples;              /* a kind key decides once it has this many */
		double sample_interval;       /* seconds between live samples, 0 = none */
		int reclassify_after;         /* periods in a row, 0 = never reclassify */
	} router;

	struct {
		enum cgroups_mode enable;
	} cgroups;

	struct {
		double default_timeout; /* seconds, 0 = none */
		double kill_grace;      /* seconds */
		uint64_t max_output;    /* bytes per stream, 0 = unlimited */
		int keep_finished;
		uint64_t default_memory; /* memory.max of a job that sets none, 0 = none */
		double default_cpus;     /* cpu.max in CPUs, 0 = none */
		int default_pids;        /* pids.max, 0 = none */
		char **on_finish;       /* shell command lines run when a job ends, or NULL */
		char *webhook;          /* http:// URL the job is posted to when it ends, or NULL */
		double slow_log;        /* seconds: log a job running longer, once; 0 = off */
		double notify_timeout;  /* seconds a notification command may run, 0 = no limit */
	} jobs;

	struct {
		enum store_fsync fsync;
		double fsync_interval; /* seconds a commit may wait for its fsync; 0 = at once */
	} store;

	struct {
		uint64_t max_frame; /* bytes */
		int max_clients;
		int max_clients_per_user; /* per uid but root and taskd's own, 0 = no limit */
		double stall_timeout; /* seconds a partial frame may wait for its newline, 0 = forever */
		struct config_share memory_budget; /* of MemAvailable when applied */
		double pressure_cpu;    /* "some" avg10 percent braking cpu starts, 0 = off */
		double pressure_memory;
		double idle_timeout;  /* seconds a connection may idle, 0 = forever (0 or >= 1) */
		uint64_t max_input;   /* bytes of a job's standard input (submit --input), 0 = none */
		/* What one user's jobs may store (quota.h), 0 = no limit; not root's nor taskd's own. */
		uint64_t max_job_bytes_per_user; /* descriptions: argv, environment, ... */
		uint64_t max_output_per_user;    /* output files */
	} limits;

	struct queue_config *queues; /* in the file's order, names unique */
	size_t nqueues;
	/* The HTTP endpoint (http.c): metrics, the read-only API, the dashboard. */
	struct {
		char *listen;         /* "HOST:PORT" or a socket path (addr.h); NULL: no endpoint */
		int allow_remote;     /* a listen address that is not loopback is allowed */
		char *token_file;     /* bearer token for everything but /metrics, or NULL */
		mode_t socket_mode;   /* of a unix socket listen path */
		int max_connections;
		double timeout;       /* seconds for a request to arrive, and for a stalled reader */
	} http;
	struct handler_config *handlers;
	size_t nhandlers;

	struct module_config *modules;
	size_t nmodules;

	/* Cluster mode (doc/cluster.md): url set, else a single node. A restart applies changes. */
	struct {
		char *url;         /* NATS server(s), "nats://h:4222[,nats://h2:4222...]", or NULL */
		char *node;        /* this node's name, NULL: the host name */
		char *stream;      /* the JetStream stream, NULL: "TASKD" */
		int replicas;      /* of the stream, its consumers and buckets, 1..5 */
		double ack_wait;   /* seconds a silent node keeps a job before another gets it */
		char *credentials; /* NATS credentials file, or NULL */
		char *tls_ca;      /* TLS: CA certificates to trust, or NULL */
		char *tls_cert;    /* TLS client certificate and its key, or NULL */
		char *tls_key;
		double keep;       /* seconds a job's state stays in the bucket after its last change */
	} cluster;
};

/* Fill *cfg with the built-in defaults (strings NULL where main decides). */
void config_defaults(struct config *cfg);

/*
 * Load FILE over the defaults into *cfg. On error returns -1, leaves *cfg
 * freed-and-defaulted, and sets *cause (malloc'd) to "FILE:LINE: message".
 */
int config_load(const char *path, struct config *cfg, char **cause);

/* Frees the strings and resets *cfg to the defaults (safe to call twice). */
void config_free(struct config *cfg);

/* Call fn(key) for every key whose value differs between a and b; returns the count. */
int config_diff(const struct config *a, const struct config *b,
		void (*fn)(const char *key, void *arg), void *arg);

/* Does a setting of the cluster group differ (they need a restart)? */
bool config_cluster_changed(const struct config *a, const struct config *b);

/* "16M", "512K", "1G", "1024" (bytes) -> bytes; -1 on a malformed value. */
int config_parse_size(const char *text, uint64_t *out);
/* The other way, for messages: "64M" for round sizes, else plain bytes (malloc'd). */
char *config_size_text(uint64_t v);

const char *config_class_name(enum job_class c);
int config_class_parse(const char *name); /* -1 if unknown */
const char *config_mode_name(enum ppool_mode m);
const char *config_fsync_name(enum store_fsync f);
/* The queue named name, or NULL. */
const struct queue_config *config_queue(const struct config *cfg, const char *name);
/* The stream name of a configuration (cluster.stream or its default). */
const char *config_cluster_stream(const struct config *cfg);
/* "75%" or "512M" for messages and status (malloc'd). */
char *config_share_text(const struct config_share *s);

/* Do a and b list the same modules, in the same order? */
int config_same_modules(const struct config *a, const struct config *b);

/* The handler named name, or NULL. */
const struct handler_config *config_handler(const struct config *cfg, const char *name);
/* Do two handler configurations need different worker processes (command, env, user...)? */
int handler_config_respawn(const struct handler_config *a, const struct handler_config *b);
void handler_config_free(struct handler_config *h);
/* A deep copy (hpool keeps its own while the configuration is reloaded). */
void handler_config_copy(struct handler_config *dst, const struct handler_config *src);

#endif
