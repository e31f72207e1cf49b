/*
 * taskd: argv, startup and teardown. Everything runs on one libevent loop
 * (sockets, signals, job table, scheduler); io-class jobs run on the thread
 * pool (tpool.c), which hands results back to the loop.
 */
#include <errno.h>
#include <limits.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/close_range.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include <taskd/protocol.h>

#include "cluster.h"
#include "cgroup.h"
#include "config.h"
#include "events.h"
#include "exec.h"
#include "http.h"
#include "hpool.h"
#include "jobtype.h"
#include "job.h"
#include "leftover.h"
#include "life.h"
#include "log.h"
#include "modules.h"
#include "monitor.h"
#include "notify.h"
#include "ops.h"
#include "output.h"
#include "ppool.h"
#include "persist.h"
#include "quota.h"
#include "sched.h"
#include "store.h"
#include "sd.h"
#include "server.h"
#include "stats.h"
#include "taskd.h"
#include "tpool.h"
#include "worker.h"
#include "xmalloc.h"

#ifndef TASKD_SYSCONFDIR
#define TASKD_SYSCONFDIR "/etc"
#endif
#define DEFAULT_CONFIG TASKD_SYSCONFDIR "/taskd/taskd.conf"
/* Seconds startup waits for what a dead taskd left running to die (SIGKILL). */
#define LEFTOVER_WAIT 10.0

struct options {
	const char *config;
	const char *socket;
	int log_level; /* -1: from the config */
	bool check;
};

static struct config cfg;
static struct taskd td;
static struct options opts = { .log_level = -1 };
static char *live_dir;                   /* STATE_DIR/live: leftover.h */
static struct leftover_job *leftovers;   /* what the last taskd left running, killed */
static size_t nleftovers;

static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code == 0 ? stdout : stderr,
		"usage: taskd [-t] [-c FILE] [-s SOCKET] [-l LEVEL] [-V] [-h]\n"
		"  -c FILE    configuration file (default %s if it exists)\n"
		"  -t         check the configuration and exit\n"
		"  -s SOCKET  listen on SOCKET instead of the configured one\n"
		"  -l LEVEL   log level: error, warn, info, debug\n"
		"  -V         print the version and exit\n"
		"  -h         print this help and exit\n",
		DEFAULT_CONFIG);
	exit(code);
}

static void
parse_args(int argc, char **argv)
{
	int ch;

	while ((ch = getopt(argc, argv, "c:ts:l:Vh")) != -1) {
		switch (ch) {
		case 'c':
			opts.config = optarg;
			break;
		case 't':
			opts.check = true;
			break;
		case 's':
			opts.socket = optarg;
			break;
		case 'l':
			opts.log_level = log_level_parse(optarg);
			if (opts.log_level < 0) {
				fprintf(stderr, "taskd: unknown log level '%s' "
						"(error, warn, info, debug)\n", optarg);
				exit(2);
			}
			break;
		case 'V':
			printf("taskd %s\n", TASKD_VERSION);
			exit(0);
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc) {
		fprintf(stderr, "taskd: unexpected argument '%s'\n", argv[optind]);
		usage(2);
	}
	if (opts.config == NULL && access(DEFAULT_CONFIG, F_OK) == 0)
		opts.config = DEFAULT_CONFIG;
}

static void
load_config(void)
{
	char *cause = NULL;

	config_defaults(&cfg);
	if (opts.config != NULL && config_load(opts.config, &cfg, &cause) == 0)
		log_setlevel(opts.log_level >= 0 ? opts.log_level : cfg.log_level);
	/* The modules before anything that may look a type up (the stored jobs, handler names). */
	if (opts.config != NULL &&
	    (cause != NULL || module_load_all(&cfg, &cause) == -1 ||
	     module_check_handlers(&cfg, &cause) == -1)) {
		fprintf(stderr, "%s\n", cause);
		free(cause);
		exit(1);
	}
	if (opts.check) {
		printf("%s: configuration OK\n", opts.config != NULL ? opts.config
								   : "(built-in defaults)");
		exit(0);
	}
}

/*
 * The system socket as root, else the user's runtime dir (doc/design.md
 * "Sockets and state directories").
 */
static char *
default_socket(void)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		return xstrdup(TASKD_SYSTEM_SOCKET);
	if (xdg == NULL || *xdg != '/')
		fatalx("no socket configured: set \"socket\" in the configuration, use -s, or "
		       "set XDG_RUNTIME_DIR");
	return xprintf("%s/%s", xdg, TASKD_SOCKET_NAME);
}

static char *
default_state_dir(void)
{
	const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");

	if (geteuid() == 0)
		return xstrdup("/var/lib/taskd");
	if (state != NULL && *state == '/')
		return xprintf("%s/taskd", state);
	if (home == NULL || *home != '/')
		fatalx("no state_dir configured and HOME is not set");
	return xprintf("%s/.local/state/taskd", home);
}

/* mkdir -p with mode for the last component (parents 0755). */
static void
make_dirs(const char *path, mode_t mode)
{
	char *p = xstrdup(path), *s;

	for (s = p + 1; (s = strchr(s, '/')) != NULL; s++) {
		*s = '\0';
		if (mkdir(p, 0755) == -1 && errno != EEXIST)
			fatal("mkdir %s", p);
		*s = '/';
	}
	if (mkdir(p, mode) == -1 && errno != EEXIST)
		fatal("mkdir %s", p);
	free(p);
}

static void
make_parent(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');

	if (slash != NULL && slash != dir) {
		*slash = '\0';
		make_dirs(dir, 0755);
	}
	free(dir);
}

static void
reload(void)
{
	json_t *changed;
	char *cause = NULL;

	/* taskd_reload logs the outcome. */
	if (taskd_reload(&td, &changed, &cause) == -1) {
		free(cause);
		return;
	}
	json_decref(changed);
}

static void
main_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	switch (sig) {
	case SIGHUP:
		reload();
		break;
	case SIGTERM:
	case SIGINT:
		log_info("got %s", strsignal((int)sig));
		taskd_shutdown(&td, false);
		break;
	}
}

static void
requeue_cb(struct job *j, void *arg)
{
	sched_add(td.sched, j);
}

/*
 * Per-job cgroups (cgroups.enable = auto), or one clear line on why not.
 * After the store is ours (a second taskd on the same state_dir stops at
 * its lock) and before the jobs come back: what the previous run of this
 * taskd left in its cgroups is killed first.
 */
static void
open_cgroups(void)
{
	struct cgroups *cg = NULL;
	char *why = NULL, *cause = NULL, names[64];
	int stale;

	if (cfg.cgroups.enable == CGROUPS_OFF)
		why = xstrdup("cgroups.enable is off");
	else if ((cg = cgroups_open(td.state_dir, &why)) == NULL)
		log_warnx("cgroups: not available (%s): commands are measured through /proc, "
			  "and jobs with memory, cpus or pids limits are refused", why);
	if (cg != NULL) {
		if ((stale = cgroups_reap_stale(cg)) > 0)
			log_warnx("cgroups: killed what %d job(s) of taskd's previous run left", stale);
		cg_controller_names(cgroups_controllers(cg), names, sizeof names);
		log_info("cgroups: each command in a cgroup of its own under %s (controllers: %s)",
			 cgroups_dir(cg), names[0] != '\0' ? names : "none");
	} else if (cfg.cgroups.enable == CGROUPS_OFF)
		log_info("cgroups: off (cgroups.enable): commands are measured through /proc");
	sched_set_cgroups(td.sched, cg, why);
	free(why);
	if (sched_check_defaults(td.sched, &cfg, &cause) == -1)
		fatalx("%s", cause);
}

/*
 * Open the store, then kill what a taskd that died before us left running.
 * Before the pools start: no process of ours may exist yet. The store
 * first: its lock proves no other taskd runs on this state directory (its
 * processes would be ours to kill otherwise).
 */
static void
open_store(void)
{
	char *cause = NULL;

	td.store = store_open(td.state_dir, &cause);
	if (td.store == NULL)
		fatalx("%s", cause);
	live_dir = xprintf("%s/%s", td.state_dir, LEFTOVER_DIR);
	make_dirs(live_dir, 0700);
	leftover_reap(live_dir, LEFTOVER_WAIT, &leftovers, &nleftovers);
	open_cgroups();
}

/*
 * A record before version 5 held a handler's or a module type's job's
 * input itself (base64): it goes to the job's input file now, before the
 * first commit writes the record again without it (record.h).
 */
static void
migrate_inputs(void)
{
	struct job *j;
	char *cause = NULL;

	for (j = jobs_first(td.jobs); j != NULL; j = TAILQ_NEXT(j, all)) {
		if (j->spec.input == NULL)
			continue;
		if (output_store_input(td.jobs_dir, j->id, j->spec.input, j->spec.input_bytes, true,
				       &cause) == -1)
			fatalx("job %llu: cannot store its input: %s", (unsigned long long)j->id,
			       cause);
		free(j->spec.input);
		j->spec.input = NULL;
	}
}

/* Load the jobs the store holds, and keep it in step from now on. */
static void
recover(void)
{
	char *cause = NULL;

	td.persist = persist_new(td.base, td.store, td.jobs);
	persist_configure(td.persist, td.cfg->store.fsync, td.cfg->store.fsync_interval);
	if (cfg.cluster.url != NULL) {
		/*
		 * Cluster mode: the jobs live in JetStream and the table mirrors
		 * them (cluster.h); taskd.db keeps the class pauses, and the jobs
		 * of single-node mode, untouched, for when the node leaves the
		 * cluster. What a killed taskd left running is killed already.
		 */
		jobs_set_hooks(td.jobs, NULL);
		free(leftovers);
		leftovers = NULL;
		nleftovers = 0;
		if (taskd_restore_paused(&td, &cause) == -1)
			fatalx("cannot load the stored class pauses: %s", cause);
		return;
	}
	if (persist_recover(td.persist, leftovers, nleftovers, requeue_cb, NULL, &cause) == -1)
		fatalx("cannot load the stored jobs: %s", cause);
	free(leftovers);
	leftovers = NULL;
	nleftovers = 0;
	migrate_inputs();
	if (taskd_restore_paused(&td, &cause) == -1)
		fatalx("cannot load the stored class pauses: %s", cause);
	/* Before pruning: a job lost by the restart may still have retries. */
	life_recover(td.life);
	sched_prune(td.sched);
	output_clean(td.jobs_dir, td.jobs);
	/* What each user's jobs store is counted again from the store and the output files. */
	quota_recount(td.jobs, td.jobs_dir);
	/* Everything is queued again: now start in priority order. */
	sched_dispatch(td.sched);
}

static struct event *sigs[3];
static const int signums[3] = { SIGTERM, SIGINT, SIGHUP };

/* Before the socket exists, so a signal sent once it answers is always handled. */
static void
watch_signals(void)
{
	size_t i;

	for (i = 0; i < 3; i++) {
		sigs[i] = evsignal_new(td.base, signums[i], main_signal_cb, NULL);
		if (sigs[i] == NULL || evsignal_add(sigs[i], NULL) == -1)
			fatalx("cannot watch signal %d", signums[i]);
	}
}

/* Handler workers start through this binary too (`taskd --handler-exec`). */
static void
start_hpool(const char *self)
{
	struct hpool_limits hl = taskd_hpool_limits(&cfg);
	struct hpool_callbacks cb;

	jobtype_use(&cfg);
	sched_hpool_callbacks(td.sched, &cb);
	td.hpool = hpool_new(td.base, self, &cb);
	hpool_configure(td.hpool, cfg.handlers, cfg.nhandlers, &hl);
	sched_set_hpool(td.sched, td.hpool, hl.cpu_max);
}

/* Workers are this very binary, started in worker mode. */
static void
start_ppool(void)
{
	struct ppool_config pc = taskd_ppool_config(&cfg);
	struct ppool_callbacks cb;
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n <= 0)
		fatal("readlink /proc/self/exe");
	self[n] = '\0';
	sched_ppool_callbacks(td.sched, &cb);
	td.ppool = ppool_new(td.base, &pc, self, live_dir, &cb);
	sched_set_ppool(td.sched, td.ppool);
	start_hpool(self);
}

/* The socket systemd passed, else our own. */
static void
listen_socket(void)
{
	char *cause = NULL;
	int fd = sd_listen_socket(&cause);

	if (fd < 0)
		fatalx("%s", cause);
	if (fd > 0) {
		td.server = server_adopt(td.base, fd, &cause);
		if (td.server == NULL)
			fatalx("%s", cause);
		free(td.socket_path);
		td.socket_path = xstrdup(server_path(td.server));
		log_info("serving on the socket passed by systemd: %s", td.socket_path);
		return;
	}
	make_parent(td.socket_path);
	td.server = server_new(td.base, td.socket_path, cfg.socket_mode, &cause);
	if (td.server == NULL)
		fatalx("%s", cause);
}

/*
 * Every second: the running jobs' output against their owners' quotas
 * (quota.h), is the database still there (deleted under us: taskd stops
 * accepting jobs, persist.h), and STATUS= for systemd (sent only when it
 * changed).
 */
static void
main_status_cb(evutil_socket_t fd, short what, void *arg)
{
	char line[160], *lost;

	quota_tick(td.cfg, td.jobs, td.sched, td.jobs_dir);
	taskd_status_line(&td, line, sizeof line);
	if (persist_check(td.persist) == -1) {
		lost = xprintf("STORAGE LOST, not accepting jobs: %s", line);
		sd_set_status(lost);
		free(lost);
		return;
	}
	sd_set_status(line);
}

static void
setup(void)
{
	struct tpool_config tc = taskd_tpool_config(&cfg);
	char *cause = NULL;

	td.cfg = &cfg;
	td.config_path = opts.config;
	td.log_level_override = opts.log_level;
	td.socket_path = opts.socket != NULL ? xstrdup(opts.socket)
			 : cfg.socket != NULL ? xstrdup(cfg.socket) : default_socket();
	td.state_dir = cfg.state_dir != NULL ? xstrdup(cfg.state_dir) : default_state_dir();
	/* Cluster mode keeps its jobs' output apart: their ids are the cluster's. */
	td.jobs_dir = cfg.cluster.url != NULL ? output_cluster_dir(td.state_dir)
					      : output_dir(td.state_dir);
	make_dirs(td.state_dir, 0700);
	make_dirs(td.jobs_dir, 0700);

	if (evthread_use_pthreads() == -1)
		fatalx("libevent: no pthreads support");
	td.base = event_base_new();
	if (td.base == NULL)
		fatalx("libevent: cannot create the event loop");
	watch_signals();
	listen_socket();
	server_set_limits(td.server, cfg.limits.max_frame, taskd_max_clients(&cfg),
			  cfg.limits.stall_timeout);
	server_set_input_room(td.server, taskd_input_room(&cfg));
	server_set_client_limits(td.server, cfg.limits.max_clients_per_user,
				 cfg.limits.idle_timeout);
	if (taskd_max_clients(&cfg) < cfg.limits.max_clients)
		log_warnx("limits.max_clients lowered to %d to fit the open-files limit",
			  taskd_max_clients(&cfg));
	td.tpool = tpool_new(td.base, &tc);
	td.jobs = jobs_new();
	td.sched = sched_new(td.base, td.jobs, td.tpool, &cfg, td.jobs_dir);
	td.life = life_new(td.base, td.jobs, td.sched);
	open_store();
	sched_set_live_dir(td.sched, live_dir);
	start_ppool();
	/* Before recovery: jobs a restart lost count, and are notified of. */
	monitor_watch(td.jobs);
	td.notify = notify_new(td.base, td.jobs, &cfg);
	recover();
	td.events = events_new(td.jobs);
	td.started_at = now_unix();
	if (cfg.cluster.url != NULL)
		td.cluster = cluster_new(&td);
	server_set_handlers(td.server, ops_frame_cb, ops_close_cb, &td);
	td.http = http_new(&td, &cause);
	if (td.http == NULL && cause != NULL)
		fatalx("%s", cause);
}

int
main(int argc, char **argv)
{
	const struct timeval second = { 1, 0 };
	struct event *status_ev;
	char line[160];
	size_t i;

	if (argc >= 2 && strcmp(argv[1], "--worker") == 0)
		return worker_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--run-as") == 0)
		return exec_runas_main(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "--handler-exec") == 0)
		return hpool_exec_main(argc, argv);
	parse_args(argc, argv);
	load_config();
	log_init(opts.log_level >= 0 ? opts.log_level : cfg.log_level, sd_stderr_journal());
	signal(SIGPIPE, SIG_IGN);
	/* Descriptors inherited from whoever started us must not reach jobs. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == -1)
		log_warn("close_range");
	setup();
	log_info("taskd %s ready on %s (pid %d, state in %s)", TASKD_VERSION, td.socket_path,
		 (int)getpid(), td.state_dir);
	taskd_status_line(&td, line, sizeof line);
	sd_ready(td.base, line);
	status_ev = event_new(td.base, -1, EV_PERSIST, main_status_cb, NULL);
	if (status_ev == NULL || event_add(status_ev, &second) == -1)
		fatalx("cannot start the status timer");

	if (event_base_dispatch(td.base) == -1)
		fatalx("event loop failed");

	log_info("taskd stopped");
	event_free(status_ev);
	sd_done();
	http_free(td.http);
	events_shutdown(td.events);
	server_free(td.server);
	events_free(td.events);
	cluster_free(td.cluster);
	notify_free(td.notify);
	hpool_free(td.hpool);
	ppool_free(td.ppool);
	tpool_free(td.tpool);
	persist_free(td.persist);
	store_close(td.store);
	life_free(td.life);
	sched_free(td.sched);
	monitor_unwatch(td.jobs);
	jobs_free(td.jobs);
	for (i = 0; i < 3; i++)
		event_free(sigs[i]);
	event_base_free(td.base);
	free(td.socket_path);
	free(td.state_dir);
	free(td.jobs_dir);
	free(live_dir);
	config_free(&cfg);
	return 0;
}
