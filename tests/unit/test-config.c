/*
 * Unit tests for daemon/config.c, config-value.c and config-load.c:
 * defaults, the shipped conf/taskd.conf, and every way a file can be wrong
 * (syntax, unknown keys, types, ranges, cross-field rules), each with the
 * FILE:LINE it must point at.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "xmalloc.h"

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/lsan_interface.h>
#endif

#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#define LEAK_ROUNDS 200

/* A case: a file's text, the line the error must name, and a piece of its message. */
struct bad {
	const char *text;
	unsigned int line;
	const char *msg;
};

static char *
write_conf(const char *text)
{
	char *path = xstrdup("/tmp/taskd-test-config-XXXXXX");
	size_t len = strlen(text);
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	return path;
}

static int
load_text(const char *text, struct config *cfg, char **cause, char **pathp)
{
	char *path = write_conf(text);
	int rc;

	*cause = NULL;
	rc = config_load(path, cfg, cause);
	unlink(path);
	if (pathp != NULL)
		*pathp = path;
	else
		free(path);
	return rc;
}

static void
assert_same(const struct config *a, const struct config *b)
{
	assert_true((a->socket == NULL) == (b->socket == NULL));
	if (a->socket != NULL)
		assert_string_equal(a->socket, b->socket);
	assert_true((a->state_dir == NULL) == (b->state_dir == NULL));
	if (a->state_dir != NULL)
		assert_string_equal(a->state_dir, b->state_dir);
	assert_int_equal(a->socket_mode, b->socket_mode);
	assert_int_equal(a->log_level, b->log_level);
	assert_int_equal(a->process_pool.mode, b->process_pool.mode);
	assert_int_equal(a->process_pool.min_workers, b->process_pool.min_workers);
	assert_int_equal(a->process_pool.max_workers, b->process_pool.max_workers);
	assert_int_equal(a->process_pool.min_spare, b->process_pool.min_spare);
	assert_int_equal(a->process_pool.max_spare, b->process_pool.max_spare);
	assert_int_equal(a->process_pool.max_jobs_per_worker, b->process_pool.max_jobs_per_worker);
	assert_int_equal(a->process_pool.max_worker_rss, b->process_pool.max_worker_rss);
	assert_true(a->process_pool.idle_timeout == b->process_pool.idle_timeout);
	assert_int_equal(a->thread_pool.min_threads, b->thread_pool.min_threads);
	assert_int_equal(a->thread_pool.max_threads, b->thread_pool.max_threads);
	assert_true(a->thread_pool.idle_timeout == b->thread_pool.idle_timeout);
	assert_int_equal(a->queue.max_pending, b->queue.max_pending);
	assert_int_equal(a->queue.max_pending_per_user, b->queue.max_pending_per_user);
	assert_int_equal(a->queue.fair_share, b->queue.fair_share);
	assert_int_equal(a->router.default_class, b->router.default_class);
	assert_true(a->router.cpu_ratio == b->router.cpu_ratio);
	assert_true(a->jobs.default_timeout == b->jobs.default_timeout);
	assert_true(a->jobs.kill_grace == b->jobs.kill_grace);
	assert_int_equal(a->jobs.max_output, b->jobs.max_output);
	assert_int_equal(a->jobs.keep_finished, b->jobs.keep_finished);
	assert_int_equal(a->limits.max_frame, b->limits.max_frame);
	assert_int_equal(a->limits.max_clients, b->limits.max_clients);
	assert_int_equal(a->limits.max_clients_per_user, b->limits.max_clients_per_user);
	assert_true(a->limits.stall_timeout == b->limits.stall_timeout);
	assert_true(a->limits.idle_timeout == b->limits.idle_timeout);
	assert_true((a->jobs.on_finish == NULL) == (b->jobs.on_finish == NULL));
	assert_true((a->jobs.webhook == NULL) == (b->jobs.webhook == NULL));
	assert_true(a->jobs.slow_log == b->jobs.slow_log);
	assert_true(a->jobs.notify_timeout == b->jobs.notify_timeout);
	assert_true((a->http.listen == NULL) == (b->http.listen == NULL));
	assert_true((a->http.token_file == NULL) == (b->http.token_file == NULL));
	assert_int_equal(a->http.allow_remote, b->http.allow_remote);
	assert_int_equal(a->http.socket_mode, b->http.socket_mode);
	assert_int_equal(a->http.max_connections, b->http.max_connections);
	assert_true(a->http.timeout == b->http.timeout);
	assert_true((a->cluster.url == NULL) == (b->cluster.url == NULL));
	assert_int_equal(a->cluster.replicas, b->cluster.replicas);
	assert_true(a->cluster.ack_wait == b->cluster.ack_wait);
	assert_true(a->cluster.keep == b->cluster.keep);
}

static void
assert_defaults(const struct config *cfg)
{
	struct config def;

	config_defaults(&def);
	assert_null(cfg->path);
	assert_same(cfg, &def);
}

/* TEXT must fail at LINE with a message containing MSG, leaving defaults. */
static void
expect_error(const char *text, unsigned int line, const char *msg)
{
	struct config cfg;
	char *cause, *path, *prefix;
	int rc;

	rc = load_text(text, &cfg, &cause, &path);
	prefix = xprintf("%s:%u: ", path, line);
	if (rc != -1 || cause == NULL || strncmp(cause, prefix, strlen(prefix)) != 0 ||
	    strstr(cause, msg) == NULL)
		fail_msg("config:\n%s\nexpected \"%s...%s\", got rc %d \"%s\"", text, prefix, msg,
			 rc, cause != NULL ? cause : "(null)");
	assert_defaults(&cfg);
	free(prefix);
	free(path);
	free(cause);
}

static void
expect_errors(const struct bad *cases, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		expect_error(cases[i].text, cases[i].line, cases[i].msg);
}

/* TEXT must load; the caller checks and frees *cfg. */
static void
expect_ok(const char *text, struct config *cfg)
{
	char *cause;

	if (load_text(text, cfg, &cause, NULL) != 0)
		fail_msg("config:\n%s\nunexpected error: %s", text, cause);
	assert_null(cause);
	assert_non_null(cfg->path);
}

static void
test_defaults(void **state)
{
	struct config cfg;

	(void)state;
	config_defaults(&cfg);
	assert_null(cfg.path);
	assert_null(cfg.socket);
	assert_null(cfg.state_dir);
	assert_int_equal(cfg.socket_mode, 0660);
	assert_int_equal(cfg.log_level, LOG_LEVEL_INFO);
	assert_int_equal(cfg.process_pool.mode, PPOOL_DYNAMIC);
	assert_int_equal(cfg.process_pool.min_workers, 1);
	assert_int_equal(cfg.process_pool.max_workers, 0);
	assert_int_equal(cfg.process_pool.min_spare, 1);
	assert_int_equal(cfg.process_pool.max_spare, 2);
	assert_int_equal(cfg.process_pool.max_jobs_per_worker, 1000);
	assert_int_equal(cfg.process_pool.max_worker_rss, 512 << 20);
	assert_true(cfg.process_pool.idle_timeout == 30);
	assert_int_equal(cfg.thread_pool.min_threads, 2);
	assert_int_equal(cfg.thread_pool.max_threads, 32);
	assert_true(cfg.thread_pool.idle_timeout == 30);
	assert_int_equal(cfg.queue.max_pending, 100000);
	assert_int_equal(cfg.queue.max_pending_per_user, 10000);
	assert_int_equal(cfg.queue.fair_share, 1);
	assert_int_equal(cfg.router.default_class, CLASS_IO);
	assert_true(cfg.router.cpu_ratio == 0.5);
	assert_true(cfg.jobs.default_timeout == 0);
	assert_true(cfg.jobs.kill_grace == 5);
	assert_int_equal(cfg.jobs.max_output, 16 << 20);
	assert_int_equal(cfg.jobs.keep_finished, 10000);
	assert_int_equal(cfg.limits.max_frame, 1 << 20);
	assert_int_equal(cfg.limits.max_clients, 1024);
	assert_int_equal(cfg.limits.max_clients_per_user, 256);
	assert_true(cfg.limits.idle_timeout == 300);
	assert_null(cfg.jobs.on_finish);
	assert_null(cfg.jobs.webhook);
	assert_true(cfg.jobs.slow_log == 0);
	assert_true(cfg.jobs.notify_timeout == 60);
	assert_null(cfg.http.listen);
	assert_null(cfg.http.token_file);
	assert_int_equal(cfg.http.allow_remote, 0);
	assert_int_equal(cfg.http.socket_mode, 0660);
	assert_int_equal(cfg.http.max_connections, 64);
	assert_true(cfg.http.timeout == 10);
	assert_null(cfg.cluster.url);
	assert_null(cfg.cluster.node);
	assert_string_equal(config_cluster_stream(&cfg), "TASKD");
	assert_int_equal(cfg.cluster.replicas, 1);
	assert_true(cfg.cluster.ack_wait == 30);
	assert_true(cfg.cluster.keep == 7 * 86400);
	assert_int_equal(cfg.limits.max_job_bytes_per_user, 64 << 20);
	assert_int_equal(cfg.limits.max_output_per_user, 1 << 30);
	config_free(&cfg);
	config_free(&cfg); /* freeing twice is harmless: free resets to defaults */
}

/*
 * conf/taskd.conf: under $TASKD_SOURCE_ROOT, else next to this source file
 * (__FILE__ is relative to the directory the compiler ran in, which is where
 * meson runs tests), else from the source root or a build dir inside it.
 */
static char *
shipped_conf(void)
{
	const char *root = getenv("TASKD_SOURCE_ROOT");
	const char *slash = strrchr(__FILE__, '/');
	char *path;
	int i;

	if (root != NULL && *root != '\0')
		return xprintf("%s/conf/taskd.conf", root);
	for (i = 0; i < 3; i++) {
		if (i == 0 && slash != NULL)
			path = xprintf("%.*s/../../conf/taskd.conf", (int)(slash - __FILE__),
				       __FILE__);
		else
			path = xstrdup(i == 1 ? "conf/taskd.conf" : "../conf/taskd.conf");
		if (access(path, R_OK) == 0)
			return path;
		free(path);
	}
	return xstrdup("conf/taskd.conf"); /* fails below, naming the path */
}

static void
test_shipped_conf(void **state)
{
	struct config cfg, def;
	char *path = shipped_conf(), *cause = NULL;

	(void)state;
	if (config_load(path, &cfg, &cause) != 0)
		fail_msg("%s", cause);
	assert_null(cause);
	assert_string_equal(cfg.path, path);
	config_defaults(&def);
	assert_same(&cfg, &def); /* the documented file holds exactly the defaults */
	config_free(&cfg);
	assert_null(cfg.path);
	free(path);
}

static void
test_syntax_error(void **state)
{
	(void)state;
	expect_error("log_level = \"info\";\nthread_pool = { max_threads = ; };\n", 2, "");
	expect_error("a = 1;\n\n\nb = 1 2;\nc = 3;\n", 4, "");
	expect_error("log_level = \"info\";\nlog_level = \"debug\";\n", 2, "duplicate");
}

static void
test_missing_file(void **state)
{
	struct config cfg;
	char *cause = NULL;

	(void)state;
	assert_int_equal(config_load("/nonexistent/taskd.conf", &cfg, &cause), -1);
	assert_non_null(cause);
	assert_string_equal(cause, "/nonexistent/taskd.conf: cannot read: No such file or directory");
	assert_defaults(&cfg);
	free(cause);
	/* A NULL cause is allowed: the message is dropped. */
	assert_int_equal(config_load("/nonexistent/taskd.conf", &cfg, NULL), -1);
}

static void
test_unknown_keys(void **state)
{
	static const struct bad cases[] = {
		{ "log_level = \"info\";\n\nfoo = 1;\n", 3, "unknown key 'foo'" },
		{ "process_pool = {\n\tmode = \"static\";\n\tfoo = 1;\n};\n", 3,
		  "unknown key 'process_pool.foo'" },
		{ "# comment\nbogus = { a = 1; };\n", 2, "unknown key 'bogus'" },
		{ "thread_pool = {\n\tmin_threads = 1;\n\tx = { y = 1; };\n};\n", 3,
		  "unknown key 'thread_pool.x'" },
		{ "queue = {\n\tmax_pending = 5;\n};\njobs = {\n\tmax_pending = 5;\n};\n", 5,
		  "unknown key 'jobs.max_pending'" },
		{ "mode = \"static\";\n", 1, "unknown key 'mode'" },
	};

	(void)state;
	expect_errors(cases, nitems(cases));
}

static void
test_type_errors(void **state)
{
	static const struct bad cases[] = {
		{ "thread_pool = {\n\tmax_threads = \"8\";\n};\n", 2,
		  "thread_pool.max_threads: expected an integer" },
		{ "thread_pool = {\n\tmax_threads = 2.5;\n};\n", 2,
		  "thread_pool.max_threads: expected an integer" },
		{ "thread_pool = { max_threads = true; };\n", 1,
		  "thread_pool.max_threads: expected an integer" },
		{ "\nlog_level = 3;\n", 2, "log_level: expected a string" },
		{ "socket = 5;\n", 1, "socket: expected a string" },
		{ "state_dir = [\"/a\"];\n", 1, "state_dir: expected a string" },
		{ "router = {\n\tcpu_ratio = \"half\";\n};\n", 2,
		  "router.cpu_ratio: expected a number" },
		{ "jobs = {\n\n\tkill_grace = (1);\n};\n", 3, "jobs.kill_grace: expected a number" },
		{ "jobs = { max_output = 1.5; };\n", 1, "jobs.max_output: expected a size" },
		{ "socket_mode = true;\n", 1, "socket_mode: expected a file mode" },
		{ "process_pool = 5;\n", 1, "process_pool: expected a group" },
		{ "limits = {\n\tmax_clients = { a = 1; };\n};\n", 2,
		  "limits.max_clients: expected an integer" },
		{ "process_pool = { mode = 1; };\n", 1, "process_pool.mode: expected a string" },
		{ "queue = {\n\tfair_share = 1;\n};\n", 2, "queue.fair_share: expected true or false" },
		{ "queue = { fair_share = \"yes\"; };\n", 1,
		  "queue.fair_share: expected true or false" },
	};

	(void)state;
	expect_errors(cases, nitems(cases));
}

static void
test_ranges(void **state)
{
	static const struct bad cases[] = {
		{ "thread_pool = {\n\tmin_threads = -1;\n};\n", 2,
		  "thread_pool.min_threads: must be between 0 and 1024" },
		{ "thread_pool = {\n\tmin_threads = 1025;\n};\n", 2,
		  "thread_pool.min_threads: must be between 0 and 1024" },
		{ "thread_pool = {\n\tmax_threads = 0;\n};\n", 2,
		  "thread_pool.max_threads: must be between 1 and 1024" },
		{ "thread_pool = {\n\tmax_threads = 1025;\n};\n", 2,
		  "thread_pool.max_threads: must be between 1 and 1024" },
		{ "thread_pool = { idle_timeout = -0.5; };\n", 1,
		  "thread_pool.idle_timeout: must be at least 0" },
		{ "process_pool = {\n\tmin_workers = -1;\n};\n", 2,
		  "process_pool.min_workers: must be between 0 and 1024" },
		{ "process_pool = {\n\tmax_workers = 1025;\n};\n", 2,
		  "process_pool.max_workers: must be between 0 and 1024" },
		{ "process_pool = { min_spare = -1; };\n", 1,
		  "process_pool.min_spare: must be between 0 and 1024" },
		{ "process_pool = { max_spare = 2000; };\n", 1,
		  "process_pool.max_spare: must be between 0 and 1024" },
		{ "process_pool = { max_jobs_per_worker = -1; };\n", 1,
		  "process_pool.max_jobs_per_worker: must be at least 0" },
		{ "process_pool = { max_worker_rss = -1; };\n", 1,
		  "process_pool.max_worker_rss: must be at least 0" },
		{ "process_pool = { idle_timeout = -1; };\n", 1,
		  "process_pool.idle_timeout: must be at least 0" },
		{ "queue = {\n\tmax_pending = 0;\n};\n", 2, "queue.max_pending: must be at least 1" },
		{ "queue = {\n\tmax_pending = 3000000000L;\n};\n", 2,
		  "queue.max_pending: must be between 1 and 2147483647" },
		{ "queue = {\n\tmax_pending_per_user = 0;\n};\n", 2,
		  "queue.max_pending_per_user: must be at least 1" },
		{ "router = { cpu_ratio = 1.5; };\n", 1, "router.cpu_ratio: must be between 0 and 1" },
		{ "router = { cpu_ratio = -0.1; };\n", 1,
		  "router.cpu_ratio: must be between 0 and 1" },
		{ "router = { cpu_ratio = 2; };\n", 1, "router.cpu_ratio: must be between 0 and 1" },
		{ "jobs = { default_timeout = -1; };\n", 1,
		  "jobs.default_timeout: must be at least 0" },
		{ "jobs = { default_timeout = 1e999; };\n", 1,
		  "jobs.default_timeout: must be a finite number" },
		{ "jobs = { kill_grace = 3601; };\n", 1, "jobs.kill_grace: must be between 0 and 3600" },
		{ "jobs = { kill_grace = -1; };\n", 1, "jobs.kill_grace: must be between 0 and 3600" },
		{ "jobs = { keep_finished = -1; };\n", 1, "jobs.keep_finished: must be at least 0" },
		{ "jobs = { max_output = -5; };\n", 1, "jobs.max_output: must be at least 0" },
		{ "limits = {\n\tmax_frame = \"512\";\n};\n", 2,
		  "limits.max_frame: must be between 16K and 64M" },
		{ "limits = { max_frame = 16383; };\n", 1,
		  "limits.max_frame: must be between 16K and 64M" },
		{ "limits = { max_frame = \"65M\"; };\n", 1,
		  "limits.max_frame: must be between 16K and 64M" },
		{ "limits = { max_clients = 0; };\n", 1,
		  "limits.max_clients: must be between 1 and 1000000" },
		{ "limits = { max_clients = 1000001; };\n", 1,
		  "limits.max_clients: must be between 1 and 1000000" },
		{ "limits = { max_clients_per_user = -1; };\n", 1,
		  "limits.max_clients_per_user: must be between 0 and 1000000" },
		{ "limits = { max_clients_per_user = 1000001; };\n", 1,
		  "limits.max_clients_per_user: must be between 0 and 1000000" },
		{ "limits = { max_clients_per_user = \"many\"; };\n", 1,
		  "limits.max_clients_per_user: expected an integer" },
		{ "limits = { idle_timeout = -1; };\n", 1,
		  "limits.idle_timeout: must be between 0 and 604800" },
		{ "limits = { idle_timeout = 604801; };\n", 1,
		  "limits.idle_timeout: must be between 0 and 604800" },
		{ "limits = {\n\tmax_clients = 5;\n\tidle_timeout = 0.5;\n};\n", 3,
		  "limits.idle_timeout: must be 0 (never) or at least 1 second, not 0.5" },
	};

	(void)state;
	expect_errors(cases, nitems(cases));
}

static void
test_range_bounds_ok(void **state)
{
	struct config cfg;

	(void)state;
	expect_ok("thread_pool = { min_threads = 0; max_threads = 1024; idle_timeout = 0; };\n"
		  "process_pool = { min_workers = 0; max_workers = 1024; min_spare = 0;\n"
		  "\tmax_spare = 1024; max_jobs_per_worker = 0; max_worker_rss = 0; };\n"
		  "queue = { max_pending = 1; max_pending_per_user = 1; };\n"
		  "router = { cpu_ratio = 0.0; };\n"
		  "jobs = { kill_grace = 3600; max_output = 0; keep_finished = 0; };\n"
		  "limits = { max_frame = \"64M\"; max_clients = 1000000;\n"
		  "\tmax_clients_per_user = 0; idle_timeout = 0;\n"
		  "\tmax_job_bytes_per_user = 0; max_output_per_user = \"5G\"; };\n",
		  &cfg);
	assert_int_equal(cfg.thread_pool.min_threads, 0);
	assert_int_equal(cfg.thread_pool.max_threads, 1024);
	assert_int_equal(cfg.process_pool.max_workers, 1024);
	assert_int_equal(cfg.process_pool.max_worker_rss, 0);
	assert_int_equal(cfg.queue.max_pending, 1);
	assert_true(cfg.router.cpu_ratio == 0);
	assert_true(cfg.jobs.kill_grace == 3600);
	assert_int_equal(cfg.limits.max_frame, 64 << 20);
	assert_int_equal(cfg.limits.max_clients, 1000000);
	assert_int_equal(cfg.limits.max_clients_per_user, 0);
	assert_true(cfg.limits.idle_timeout == 0);
	assert_int_equal(cfg.limits.max_job_bytes_per_user, 0);
	assert_true(cfg.limits.max_output_per_user == UINT64_C(5) << 30);
	config_free(&cfg);

	expect_ok("limits = { max_clients_per_user = 1000000; idle_timeout = 1; };\n", &cfg);
	assert_int_equal(cfg.limits.max_clients_per_user, 1000000);
	assert_true(cfg.limits.idle_timeout == 1);
	config_free(&cfg);
	expect_ok("limits = { idle_timeout = 604800; };\n", &cfg);
	assert_true(cfg.limits.idle_timeout == 604800);
	config_free(&cfg);

	expect_ok("limits = { max_frame = 16384; };\nrouter = { cpu_ratio = 1; };\n", &cfg);
	assert_int_equal(cfg.limits.max_frame, 16384);
	assert_true(cfg.router.cpu_ratio == 1);
	config_free(&cfg);
}

static void
test_parse_size(void **state)
{
	static const struct {
		const char *text;
		uint64_t value;
	} good[] = {
		{ "16M", UINT64_C(16) << 20 },	{ "1g", UINT64_C(1) << 30 },
		{ "100", 100 },			{ "0", 0 },
		{ "512K", 512 << 10 },		{ "512kb", 512 << 10 },
		{ "2MB", UINT64_C(2) << 20 },	{ "1T", UINT64_C(1) << 40 },
		{ "7B", 7 },			{ "18446744073709551615", UINT64_MAX },
		{ "16777215T", UINT64_C(16777215) << 40 },
	};
	static const char *const bad[] = {
		"12X", "-1", "", "M", "16 M", " 16M", "16M ", "16MM", "16BB", "+5", "1.5G",
		"0x10", "18446744073709551616", "16777216T",
	};
	uint64_t v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(good); i++) {
		v = 12345;
		if (config_parse_size(good[i].text, &v) != 0)
			fail_msg("\"%s\" rejected", good[i].text);
		assert_int_equal(v, good[i].value);
	}
	for (i = 0; i < nitems(bad); i++)
		if (config_parse_size(bad[i], &v) != -1)
			fail_msg("\"%s\" accepted", bad[i]);
}

static void
test_sizes_in_file(void **state)
{
	static const struct bad cases[] = {
		{ "jobs = {\n\tmax_output = \"12X\";\n};\n", 2,
		  "jobs.max_output: invalid size '12X'" },
		{ "jobs = { max_output = \"-1\"; };\n", 1, "jobs.max_output: invalid size '-1'" },
		{ "process_pool = { max_worker_rss = \"\"; };\n", 1,
		  "process_pool.max_worker_rss: invalid size ''" },
	};
	struct config cfg;

	(void)state;
	expect_ok("jobs = { max_output = \"1g\"; };\n"
		  "process_pool = { max_worker_rss = 1048576; };\n"
		  "limits = { max_frame = \"512KB\"; };\n",
		  &cfg);
	assert_int_equal(cfg.jobs.max_output, UINT64_C(1) << 30);
	assert_int_equal(cfg.process_pool.max_worker_rss, 1 << 20);
	assert_int_equal(cfg.limits.max_frame, 512 << 10);
	config_free(&cfg);

	expect_ok("jobs = { max_output = 5368709120L; };\n", &cfg);
	assert_int_equal(cfg.jobs.max_output, UINT64_C(5) << 30);
	config_free(&cfg);

	expect_errors(cases, nitems(cases));
}

static void
test_int_for_float(void **state)
{
	struct config cfg;

	(void)state;
	expect_ok("router = { cpu_ratio = 1; };\n"
		  "jobs = { kill_grace = 2; default_timeout = 60; };\n"
		  "thread_pool = { idle_timeout = 0.25; };\n"
		  "process_pool = { idle_timeout = 10; };\n",
		  &cfg);
	assert_true(cfg.router.cpu_ratio == 1.0);
	assert_true(cfg.jobs.kill_grace == 2.0);
	assert_true(cfg.jobs.default_timeout == 60.0);
	assert_true(cfg.thread_pool.idle_timeout == 0.25);
	assert_true(cfg.process_pool.idle_timeout == 10.0);
	config_free(&cfg);
}

static void
test_cross_field(void **state)
{
	static const struct bad cases[] = {
		{ "thread_pool = {\n\tmin_threads = 8;\n\tmax_threads = 4;\n};\n", 3,
		  "thread_pool.min_threads (8) must not be greater than thread_pool.max_threads (4)" },
		{ "thread_pool = {\n\tmax_threads = 4;\n\tmin_threads = 8;\n};\n", 3,
		  "thread_pool.min_threads (8) must not be greater than thread_pool.max_threads (4)" },
		{ "\nthread_pool = {\n\tmin_threads = 40;\n};\n", 3,
		  "thread_pool.min_threads (40) must not be greater than thread_pool.max_threads (32)" },
		{ "thread_pool = { max_threads = 1; };\n", 1,
		  "thread_pool.min_threads (2) must not be greater than thread_pool.max_threads (1)" },
		{ "process_pool = {\n\tmin_workers = 4;\n\tmax_workers = 2;\n};\n", 3,
		  "process_pool.min_workers (4) must not be greater than process_pool.max_workers (2)" },
		{ "process_pool = {\n\tmin_spare = 3;\n\n\tmax_spare = 2;\n};\n", 4,
		  "process_pool.min_spare (3) must not be greater than process_pool.max_spare (2)" },
	};
	struct config cfg;

	(void)state;
	expect_errors(cases, nitems(cases));

	/* max_workers = 0 means "number of CPUs": any min_workers goes. */
	expect_ok("process_pool = { min_workers = 64; max_workers = 0; };\n", &cfg);
	assert_int_equal(cfg.process_pool.min_workers, 64);
	config_free(&cfg);
	expect_ok("thread_pool = { min_threads = 4; max_threads = 4; };\n", &cfg);
	config_free(&cfg);
}

static void
test_enums(void **state)
{
	static const struct bad cases[] = {
		{ "router = {\n\tdefault_class = \"auto\";\n};\n", 2,
		  "router.default_class: invalid value 'auto' (expected cpu or io)" },
		{ "router = { default_class = \"gpu\"; };\n", 1,
		  "router.default_class: invalid value 'gpu'" },
		{ "process_pool = {\n\tmode = \"lazy\";\n};\n", 2,
		  "process_pool.mode: invalid value 'lazy' (expected static, dynamic or ondemand)" },
		{ "log_level = \"verbose\";\n", 1,
		  "log_level: invalid value 'verbose' (expected error, warn, info or debug)" },
		{ "log_level = \"\";\n", 1, "log_level: invalid value ''" },
		{ "store = {\n\tfsync = \"sometimes\";\n};\n", 2,
		  "store.fsync: invalid value 'sometimes' (expected always or interval)" },
		{ "store = { fsync_interval = -1; };\n", 1, "store.fsync_interval" },
	};
	struct config cfg;

	(void)state;
	expect_errors(cases, nitems(cases));

	expect_ok("router = { default_class = \"cpu\"; };\n"
		  "process_pool = { mode = \"ondemand\"; };\n"
		  "log_level = \"debug\";\n"
		  "store = { fsync = \"interval\"; fsync_interval = 0; };\n",
		  &cfg);
	assert_int_equal(cfg.router.default_class, CLASS_CPU);
	assert_int_equal(cfg.process_pool.mode, PPOOL_ONDEMAND);
	assert_int_equal(cfg.log_level, LOG_LEVEL_DEBUG);
	assert_int_equal(cfg.store.fsync, FSYNC_INTERVAL);
	assert_true(cfg.store.fsync_interval == 0);
	config_free(&cfg);

	expect_ok("process_pool = { mode = \"static\"; };\nlog_level = \"error\";\n", &cfg);
	assert_int_equal(cfg.process_pool.mode, PPOOL_STATIC);
	assert_int_equal(cfg.log_level, LOG_LEVEL_ERROR);
	config_free(&cfg);

	expect_ok("queue = { fair_share = false; };\n", &cfg);
	assert_int_equal(cfg.queue.fair_share, 0);
	config_free(&cfg);
	expect_ok("queue = { fair_share = true; };\n", &cfg);
	assert_int_equal(cfg.queue.fair_share, 1);
	config_free(&cfg);
}

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(config_class_name(CLASS_AUTO), "auto");
	assert_string_equal(config_class_name(CLASS_CPU), "cpu");
	assert_string_equal(config_class_name(CLASS_IO), "io");
	assert_int_equal(config_class_parse("auto"), CLASS_AUTO);
	assert_int_equal(config_class_parse("cpu"), CLASS_CPU);
	assert_int_equal(config_class_parse("io"), CLASS_IO);
	assert_int_equal(config_class_parse("gpu"), -1);
	assert_int_equal(config_class_parse(""), -1);
	assert_string_equal(config_mode_name(PPOOL_STATIC), "static");
	assert_string_equal(config_mode_name(PPOOL_DYNAMIC), "dynamic");
	assert_string_equal(config_mode_name(PPOOL_ONDEMAND), "ondemand");
}

/* The cluster group (doc/cluster.md): its keys, and the rules between them. */
static void
test_cluster(void **state)
{
	static const struct bad cases[] = {
		{ "cluster = {\n node = \"a\";\n};\n", 1, "cluster: url is required" },
		{ "cluster = { url = \"http://x:4222\"; };\n", 1, "cluster.url: invalid value" },
		{ "cluster = { url = \"nats://a:1, nats://b:2\"; };\n", 1,
		  "cluster.url: invalid value" },
		{ "cluster = { url = \"nats://a:1,\"; };\n", 1, "cluster.url: invalid value" },
		{ "cluster = { url = 4222; };\n", 1, "cluster.url: expected a string" },
		{ "cluster = { url = \"nats://a:1\";\n node = \"web.1\"; };\n", 2,
		  "cluster.node: invalid value 'web.1' (expected 1 to 64 letters" },
		{ "cluster = { url = \"nats://a:1\"; node = \"\"; };\n", 1,
		  "cluster.node: invalid value" },
		{ "cluster = { url = \"nats://a:1\"; stream = \"T*\"; };\n", 1,
		  "cluster.stream: invalid value" },
		{ "cluster = { url = \"nats://a:1\"; replicas = 6; };\n", 1,
		  "cluster.replicas: must be between 1 and 5" },
		{ "cluster = { url = \"nats://a:1\"; ack_wait = 0.5; };\n", 1,
		  "cluster.ack_wait: must be between 1 and 86400" },
		{ "cluster = { url = \"nats://a:1\"; keep = 10; };\n", 1,
		  "cluster.keep: must be between 60" },
		{ "cluster = { url = \"nats://a:1\"; credentials = \"x.creds\"; };\n", 1,
		  "cluster.credentials: must be an absolute path" },
		{ "cluster = { url = \"nats://a:1\";\n tls_cert = \"/c.pem\"; };\n", 2,
		  "cluster: tls_cert and tls_key go together" },
		{ "cluster = { url = \"nats://a:1\"; port = 4222; };\n", 1,
		  "unknown key 'cluster.port'" },
	};
	struct config cfg, next;

	(void)state;
	expect_errors(cases, nitems(cases));
	expect_ok("cluster = { url = \"nats://10.0.0.1:4222,tls://u:p@n2.example:4443\";\n"
		  "  node = \"web-1_a\"; stream = \"JOBS\"; replicas = 3; ack_wait = 2.5;\n"
		  "  credentials = \"/etc/taskd/nats.creds\"; tls_ca = \"/etc/ca.pem\";\n"
		  "  tls_cert = \"/etc/c.pem\"; tls_key = \"/etc/k.pem\"; keep = 3600; };\n", &cfg);
	assert_string_equal(cfg.cluster.url, "nats://10.0.0.1:4222,tls://u:p@n2.example:4443");
	assert_string_equal(cfg.cluster.node, "web-1_a");
	assert_string_equal(config_cluster_stream(&cfg), "JOBS");
	assert_int_equal(cfg.cluster.replicas, 3);
	assert_true(cfg.cluster.ack_wait == 2.5);
	assert_string_equal(cfg.cluster.credentials, "/etc/taskd/nats.creds");
	assert_string_equal(cfg.cluster.tls_key, "/etc/k.pem");
	assert_true(cfg.cluster.keep == 3600);
	/* A reload cannot change them: taskd says they need a restart. */
	expect_ok("cluster = { url = \"nats://10.0.0.1:4222\"; };\n", &next);
	assert_true(config_cluster_changed(&cfg, &next));
	assert_false(config_cluster_changed(&next, &next));
	config_free(&next);
	config_free(&cfg);
	assert_null(cfg.cluster.url);
}

static void
test_paths(void **state)
{
	static const struct bad cases[] = {
		{ "socket = \"taskd.sock\";\n", 1, "socket: must be an absolute path" },
		{ "socket = \"\";\n", 1, "socket: must not be empty" },
		{ "\nstate_dir = \"var/lib/taskd\";\n", 2, "state_dir: must be an absolute path" },
		{ "state_dir = \"\";\n", 1, "state_dir: must not be empty" },
	};
	char long_path[120], *text;
	struct config cfg;

	(void)state;
	expect_errors(cases, nitems(cases));

	/* sun_path holds 107 bytes and the NUL. */
	memset(long_path, 'a', sizeof long_path);
	long_path[0] = '/';
	long_path[108] = '\0';
	text = xprintf("log_level = \"info\";\nsocket = \"%s\";\n", long_path);
	expect_error(text, 2, "socket: path is too long for a unix socket (108 bytes, at most 107)");
	free(text);

	long_path[107] = '\0';
	text = xprintf("socket = \"%s\";\nstate_dir = \"/var/tmp/x\";\n", long_path);
	expect_ok(text, &cfg);
	assert_string_equal(cfg.socket, long_path);
	assert_string_equal(cfg.state_dir, "/var/tmp/x");
	config_free(&cfg);
	assert_null(cfg.socket);
	assert_null(cfg.state_dir);
	free(text);
}

static void
test_socket_mode(void **state)
{
	static const struct {
		const char *text;
		mode_t mode;
	} good[] = {
		{ "socket_mode = \"0600\";", 0600 }, { "socket_mode = \"660\";", 0660 },
		{ "socket_mode = \"0\";", 0 },	     { "socket_mode = 0640;", 0640 },
		{ "socket_mode = 660;", 0660 },	     { "socket_mode = 0x1a4;", 0644 },
		{ "socket_mode = 0;", 0 },
	};
	static const struct bad bad[] = {
		{ "socket_mode = \"0999\";\n", 1, "socket_mode: must be octal digits" },
		{ "socket_mode = \"1777\";\n", 1, "socket_mode: must be octal digits" },
		{ "socket_mode = \"rw\";\n", 1, "socket_mode: must be octal digits" },
		{ "socket_mode = \"\";\n", 1, "socket_mode: must be octal digits" },
		{ "socket_mode = 0988;\n", 1, "socket_mode: must be octal digits" },
		{ "socket_mode = -1;\n", 1, "socket_mode: must be octal digits" },
		{ "socket_mode = 0x1000;\n", 1, "socket_mode: must be octal digits" },
	};
	struct config cfg;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(good); i++) {
		expect_ok(good[i].text, &cfg);
		assert_int_equal(cfg.socket_mode, good[i].mode);
		config_free(&cfg);
	}
	expect_errors(bad, nitems(bad));
}

static void
test_full_file(void **state)
{
	struct config cfg;
	char *cause, *path;

	(void)state;
	assert_int_equal(load_text("socket = \"/tmp/t.sock\"; socket_mode = \"0600\";\n"
				   "state_dir = \"/tmp/state\"; log_level = \"warn\";\n"
				   "process_pool = { mode = \"static\"; min_workers = 2;\n"
				   "\tmax_workers = 8; min_spare = 0; max_spare = 4;\n"
				   "\tmax_jobs_per_worker = 50; max_worker_rss = \"1G\";\n"
				   "\tidle_timeout = 1.5; };\n"
				   "thread_pool = { min_threads = 1; max_threads = 4;\n"
				   "\tidle_timeout = 2; };\n"
				   "queue = { max_pending = 10; max_pending_per_user = 5; };\n"
				   "router = { default_class = \"cpu\"; cpu_ratio = 0.75; };\n"
				   "jobs = { default_timeout = 3.5; kill_grace = 1;\n"
				   "\tmax_output = \"4K\"; keep_finished = 7; };\n"
				   "limits = { max_frame = \"2M\"; max_clients = 9;\n"
				   "\tmax_clients_per_user = 3; idle_timeout = 45.5; };\n",
				   &cfg, &cause, &path),
			 0);
	assert_null(cause);
	assert_string_equal(cfg.path, path);
	assert_string_equal(cfg.socket, "/tmp/t.sock");
	assert_int_equal(cfg.socket_mode, 0600);
	assert_string_equal(cfg.state_dir, "/tmp/state");
	assert_int_equal(cfg.log_level, LOG_LEVEL_WARN);
	assert_int_equal(cfg.process_pool.mode, PPOOL_STATIC);
	assert_int_equal(cfg.process_pool.min_workers, 2);
	assert_int_equal(cfg.process_pool.max_workers, 8);
	assert_int_equal(cfg.process_pool.min_spare, 0);
	assert_int_equal(cfg.process_pool.max_spare, 4);
	assert_int_equal(cfg.process_pool.max_jobs_per_worker, 50);
	assert_int_equal(cfg.process_pool.max_worker_rss, UINT64_C(1) << 30);
	assert_true(cfg.process_pool.idle_timeout == 1.5);
	assert_int_equal(cfg.thread_pool.min_threads, 1);
	assert_int_equal(cfg.thread_pool.max_threads, 4);
	assert_true(cfg.thread_pool.idle_timeout == 2);
	assert_int_equal(cfg.queue.max_pending, 10);
	assert_int_equal(cfg.queue.max_pending_per_user, 5);
	assert_int_equal(cfg.router.default_class, CLASS_CPU);
	assert_true(cfg.router.cpu_ratio == 0.75);
	assert_true(cfg.jobs.default_timeout == 3.5);
	assert_true(cfg.jobs.kill_grace == 1);
	assert_int_equal(cfg.jobs.max_output, 4096);
	assert_int_equal(cfg.jobs.keep_finished, 7);
	assert_int_equal(cfg.limits.max_frame, 2 << 20);
	assert_int_equal(cfg.limits.max_clients, 9);
	assert_int_equal(cfg.limits.max_clients_per_user, 3);
	assert_true(cfg.limits.idle_timeout == 45.5);
	config_free(&cfg);
	assert_defaults(&cfg);
	free(path);
}

/* The HTTP endpoint and the notifications: addresses, URLs, command lists, the remote rule. */
static void
test_http_and_notify(void **state)
{
	static const struct bad cases[] = {
		{ "http = {\n\tlisten = \"9181\";\n};\n", 2, "http.listen: '9181': expected HOST:PORT" },
		{ "http = { listen = \"127.0.0.1:99999\"; };\n", 1, "a port from 0 to 65535" },
		{ "http = { listen = \"example.com:80\"; };\n", 1,
		  "the host must be an IP address (like 127.0.0.1 or [::1]) or localhost" },
		{ "http = { listen = \"::1:80\"; };\n", 1, "write an IPv6 address in brackets" },
		{ "http = { listen = \"relative/path\"; };\n", 1, "expected HOST:PORT" },
		{ "http = { listen = 9181; };\n", 1, "http.listen: expected a string" },
		{ "\nhttp = {\n\tlisten = \"0.0.0.0:9181\";\n};\n", 3,
		  "http.listen: 0.0.0.0 is not a loopback address: set http.allow_remote = true" },
		{ "http = { listen = \"[::]:9181\"; allow_remote = false; };\n", 1,
		  "is not a loopback address" },
		{ "http = { token_file = \"token\"; };\n", 1, "http.token_file: must be an absolute path" },
		{ "http = { max_connections = 1; };\n", 1, "http.max_connections: must be between 2" },
		{ "http = { timeout = 0; };\n", 1, "http.timeout: must be between 1 and 3600" },
		{ "http = { socket_mode = \"0999\"; };\n", 1, "http.socket_mode: must be octal digits" },
		{ "http = { port = 1; };\n", 1, "unknown key 'http.port'" },
		{ "jobs = { webhook = \"https://example.com/x\"; };\n", 1, "https is not supported" },
		{ "jobs = { webhook = \"ftp://example.com/x\"; };\n", 1, "expected http://HOST[:PORT]/PATH" },
		{ "jobs = { webhook = \"http://user@host/x\"; };\n", 1, "user information" },
		{ "jobs = { webhook = \"http://host:0/x\"; };\n", 1, "the port must be from 1 to 65535" },
		{ "jobs = { webhook = \"http://bad_host/x\"; };\n", 1, "invalid host 'bad_host'" },
		{ "jobs = { webhook = \"http://host/a b\"; };\n", 1, "printable ASCII without spaces" },
		{ "jobs = { on_finish = \"echo\"; };\n", 1, "jobs.on_finish: expected a list of strings" },
		{ "jobs = { on_finish = [ ]; };\n", 1, "must hold 1 to 16 strings" },
		{ "jobs = {\n\ton_finish = ( \"a\", 1 );\n};\n", 2,
		  "element 1 must be a non-empty string" },
		{ "jobs = { on_finish = [ \"\" ]; };\n", 1, "element 0 must be a non-empty string" },
		{ "jobs = { slow_log = -1; };\n", 1, "jobs.slow_log: must be at least 0" },
		{ "jobs = { notify_timeout = 100000; };\n", 1, "jobs.notify_timeout: must be between" },
	};
	struct config cfg, other;

	(void)state;
	expect_errors(cases, nitems(cases));

	expect_ok("http = { listen = \"localhost:0\"; token_file = \"/etc/taskd/token\";\n"
		  "\tmax_connections = 8; timeout = 2.5; socket_mode = \"0600\"; };\n"
		  "jobs = { on_finish = [ \"logger done\", \"true\" ]; slow_log = 60;\n"
		  "\twebhook = \"http://[::1]:8080/hook?x=1\"; notify_timeout = 5; };\n", &cfg);
	assert_string_equal(cfg.http.listen, "localhost:0");
	assert_string_equal(cfg.http.token_file, "/etc/taskd/token");
	assert_int_equal(cfg.http.max_connections, 8);
	assert_true(cfg.http.timeout == 2.5);
	assert_int_equal(cfg.http.socket_mode, 0600);
	assert_string_equal(cfg.jobs.on_finish[0], "logger done");
	assert_string_equal(cfg.jobs.on_finish[1], "true");
	assert_null(cfg.jobs.on_finish[2]);
	assert_true(cfg.jobs.slow_log == 60);
	assert_true(cfg.jobs.notify_timeout == 5);
	assert_string_equal(cfg.jobs.webhook, "http://[::1]:8080/hook?x=1");

	/* A reload sees which of them changed. */
	expect_ok("http = { listen = \"localhost:0\"; token_file = \"/etc/taskd/token\";\n"
		  "\tmax_connections = 8; timeout = 2.5; socket_mode = \"0600\"; };\n"
		  "jobs = { on_finish = [ \"logger done\" ]; slow_log = 60;\n"
		  "\twebhook = \"http://[::1]:8080/hook?x=1\"; notify_timeout = 5; };\n", &other);
	assert_int_equal(config_diff(&cfg, &other, NULL, NULL), 1);
	config_free(&other);
	config_free(&cfg);

	/* Remote addresses with allow_remote; a unix socket path; IPv6 loopback. */
	expect_ok("http = { listen = \"0.0.0.0:9181\"; allow_remote = true; };\n", &cfg);
	config_free(&cfg);
	expect_ok("http = { listen = \"/run/taskd/http.sock\"; };\n", &cfg);
	config_free(&cfg);
	expect_ok("http = { listen = \"[::1]:9181\"; };\n", &cfg);
	config_free(&cfg);
	expect_ok("jobs = { on_finish = ( \"a\" ); webhook = \"http://hooks.example:80\"; };\n",
		  &cfg);
	config_free(&cfg);
}

static void
test_empty_file(void **state)
{
	struct config cfg;

	(void)state;
	expect_ok("# nothing but a comment\n", &cfg);
	free(cfg.path);
	cfg.path = NULL;
	assert_defaults(&cfg);
}

static void
fail_loads(const char *const *texts, size_t n, const char *path)
{
	struct config cfg;
	char *cause;
	size_t i;

	for (i = 0; i < n; i++) {
		assert_int_equal(load_text(texts[i], &cfg, &cause, NULL), -1);
		assert_non_null(cause);
		assert_defaults(&cfg);
		free(cause);
	}
	assert_int_equal(config_load(path, &cfg, &cause), -1);
	free(cause);
}

/*
 * A load that fails after strings were set must free them and leave the
 * defaults. Under AddressSanitizer, LeakSanitizer checks for leaks right
 * here. Without it, heap use must not grow over many failed loads: one
 * leaked string per load would add at least 32 bytes each time, far above
 * the little that malloc's thread cache makes mallinfo2 wobble.
 */
static void
test_failed_load_no_leak(void **state)
{
	static const char *const texts[] = {
		"socket = \"/tmp/a.sock\";\nstate_dir = \"/tmp/s\";\nbogus = 1;\n",
		"socket = \"/tmp/a.sock\";\nstate_dir = \"/tmp/s\";\nthread_pool = { max_threads = 0; };\n",
		"state_dir = \"/tmp/s\";\nsocket = \"/tmp/a.sock\";\nthread_pool = { min_threads = 99; };\n",
		"socket = \"/tmp/a.sock\";\nstate_dir = ;\n",
		("jobs = { on_finish = [ \"a\", \"b\" ]; webhook = \"http://h/x\"; };\n"
		 "http = { listen = \"127.0.0.1:1\"; token_file = \"/t\"; timeout = 0; };\n"),
	};
	char *path;
	size_t before, after, round;

	(void)state;
	path = write_conf(texts[0]);
	fail_loads(texts, nitems(texts), path);
	fail_loads(texts, nitems(texts), path);
	before = mallinfo2().uordblks;
	for (round = 0; round < LEAK_ROUNDS; round++)
		fail_loads(texts, nitems(texts), path);
	after = mallinfo2().uordblks;
	if (after > before + LEAK_ROUNDS * 8)
		fail_msg("heap grew by %zu bytes over %d failed loads", after - before,
			 LEAK_ROUNDS);
#ifdef __SANITIZE_ADDRESS__
	assert_int_equal(__lsan_do_recoverable_leak_check(), 0);
#endif
	unlink(path);
	free(path);
}

/* ---- handlers (hconfig.c) ---- */

#define USER_KEY (geteuid() == 0 ? "user = \"root\"; " : "")

static void
test_handlers_load(void **state)
{
	struct config cfg, other;
	const struct handler_config *h;
	char *cause = NULL, *text;
	int changed = 0;

	text = xprintf("handlers = (\n"
		       "  { name = \"thumb\"; command = [ \"/bin/sh\", \"-c\", \"x\" ]; %s\n"
		       "    class = \"cpu\"; min_workers = 0; max_workers = 3; concurrency = 4;\n"
		       "    max_jobs_per_worker = 7; max_worker_rss = \"64M\"; idle_timeout = 1.5;\n"
		       "    timeout = 2; start_timeout = 3; env = [ \"A=1\", \"B=x=y\" ]; cwd = \"/tmp\"; },\n"
		       "  { name = \"b.2-x_y\"; command = [ \"/bin/true\" ]; %s}\n"
		       ");\n", USER_KEY, USER_KEY);
	assert_int_equal(load_text(text, &cfg, &cause, NULL), 0);
	assert_int_equal(cfg.nhandlers, 2);
	h = config_handler(&cfg, "thumb");
	assert_non_null(h);
	assert_string_equal(h->command[2], "x");
	assert_null(h->command[3]);
	assert_int_equal(h->class, CLASS_CPU);
	assert_int_equal(h->min_workers, 0);
	assert_int_equal(h->max_workers, 3);
	assert_int_equal(h->concurrency, 4);
	assert_int_equal(h->max_jobs_per_worker, 7);
	assert_int_equal(h->max_worker_rss, 64u << 20);
	assert_true(h->idle_timeout == 1.5 && h->timeout == 2 && h->start_timeout == 3);
	assert_string_equal(h->env[1], "B=x=y");
	assert_string_equal(h->cwd, "/tmp");
	assert_int_equal(h->line, 2);
	/* Defaults. */
	h = config_handler(&cfg, "b.2-x_y");
	assert_non_null(h);
	assert_int_equal(h->class, CLASS_AUTO);
	assert_int_equal(h->min_workers, 1);
	assert_int_equal(h->concurrency, 1);
	assert_int_equal(h->max_jobs_per_worker, 10000);
	assert_string_equal(h->cwd, "/");
	assert_null(config_handler(&cfg, "nope"));
	/* A changed handler, a removed one: handlers.NAME each. */
	free(text);
	text = xprintf("handlers = ( { name = \"thumb\"; command = [ \"/bin/sh\" ]; %s} );\n",
		       USER_KEY);
	assert_int_equal(load_text(text, &other, &cause, NULL), 0);
	changed = config_diff(&cfg, &other, NULL, NULL);
	assert_int_equal(changed, 2);
	assert_true(handler_config_respawn(config_handler(&cfg, "thumb"),
					   config_handler(&other, "thumb")));
	assert_int_equal(config_diff(&other, &other, NULL, NULL), 0);
	config_free(&other);
	config_free(&cfg);
	free(text);
}

static void
test_handlers_errors(void **state)
{
	char *u = xstrdup(USER_KEY);
	char *t[12];
	const struct bad *cases;
	size_t i, n = 0;
	struct bad b[12];

	t[n] = xprintf("\nhandlers = ( { name = \"x\"; command = [ \"/no/such\" ]; %s} );", u);
	b[n] = (struct bad){t[n], 2, "handlers[0] (x).command: /no/such: No such file"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"x\"; %s\n command = [ \"sh\" ]; } );", u);
	b[n] = (struct bad){t[n], 2, "(x).command: 'sh' must be an absolute path"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"x\"; command = [ \"/etc\" ]; %s} );", u);
	b[n] = (struct bad){t[n], 1, "/etc: not a regular file"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"sleep\"; command = [ \"/bin/true\" ]; %s} );", u);
	b[n] = (struct bad){t[n], 1, "handlers[0].name: 'sleep' is a built-in job type"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"a b\"; command = [ \"/bin/true\" ]; %s} );", u);
	b[n] = (struct bad){t[n], 1, "may hold only letters"};
	n++;
	t[n] = xprintf("handlers = ( { command = [ \"/bin/true\" ]; %s} );", u);
	b[n] = (struct bad){t[n], 1, "handlers[0]: needs a name"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"x\"; %s} );", u);
	b[n] = (struct bad){t[n], 1, "(x): needs a command"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"x\"; command = [ \"/bin/true\" ]; %s},\n"
		       "  { name = \"x\"; command = [ \"/bin/true\" ]; %s} );", u, u);
	b[n] = (struct bad){t[n], 2, "handlers[1] (x).name: a second handler named 'x'"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"x\"; command = [ \"/bin/true\" ]; %s\n"
		       " concurrency = 0; } );", u);
	b[n] = (struct bad){t[n], 2, "(x).concurrency: must be between 1 and 1024"};
	n++;
	t[n] = xprintf("handlers = ( { name = \"x\"; command = [ \"/bin/true\" ]; %s\n"
		       " env = [ \"NOEQUALS\" ]; } );", u);
	b[n] = (struct bad){t[n], 2, "(x).env: entry 0 ('NOEQUALS'): expected NAME=VALUE"};
	n++;
	t[n] = xstrdup("handlers = { name = \"x\"; };");
	b[n] = (struct bad){t[n], 1, "handlers: expected a list of groups"};
	n++;
	cases = b;
	expect_errors(cases, n);
	for (i = 0; i < n; i++)
		free(t[i]);
	free(u);
}

int
main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_shipped_conf),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_type_errors),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_range_bounds_ok),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_sizes_in_file),
		cmocka_unit_test(test_int_for_float),
		cmocka_unit_test(test_cross_field),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_cluster),
		cmocka_unit_test(test_socket_mode),
		cmocka_unit_test(test_full_file),
		cmocka_unit_test(test_http_and_notify),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_failed_load_no_leak),
		cmocka_unit_test(test_handlers_load),
		cmocka_unit_test(test_handlers_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
