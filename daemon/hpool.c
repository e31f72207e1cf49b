/*
 * Handler workers (hpool.h): spawning, keeping warm, recycling and
 * replacing the processes that run user-written job types.
 *
 * What runs where. Everything here runs on the event loop thread. A
 * worker is started with posix_spawn of `taskd --handler-exec ...` (never
 * fork() of the threaded daemon), which becomes the handler's user,
 * enters its cwd, arranges to be SIGKILLed if taskd dies, and execs the
 * handler's command in a process group of its own. The worker gets
 * /dev/null on fd 0, a pipe on fd 1 and another on fd 2 (both read here:
 * see "Output") and its end of a SOCK_STREAM socketpair on fd 3, where it
 * talks the handler protocol (hproto.h). Its death comes through a pidfd.
 *
 * Who owns what. The pool owns its handlers (a copy of their
 * configuration each), their workers and, between hpool_submit and the
 * done callback, each struct run it was given. A handler dropped from the
 * configuration lives on, "removed", until its last worker is gone.
 *
 * States of a worker: starting (spawned, no hello yet: start_timeout
 * runs), ready (took hello; 0..concurrency jobs), retiring (takes no
 * more jobs; once it has none its socket is closed, which tells it to
 * exit, and it is SIGTERMed after kill_grace, SIGKILLed after another),
 * dead (reaped: freed). A worker whose protocol is broken, who dies or
 * overstays a cancel is killed (SIGKILL to its group) and handled as dead
 * when its pidfd says so: its running jobs end RUN_LOST (the one it was
 * asked to stop: RUN_CANCELLED or RUN_TIMEOUT), and the handler counts a
 * failure. Consecutive failures delay the next start exponentially
 * (HPOOL_BACKOFF_MIN doubling to HPOOL_BACKOFF_MAX); a good result ends
 * the run of failures.
 *
 * Output. While a worker runs exactly one job, what it writes on stdout
 * and stderr goes to that job's output files (created when the first byte
 * comes, capped at jobs.max_output); otherwise (idle, starting, several
 * jobs at once) to taskd's log, a line at a time, tagged with the
 * handler's name and the worker's pid. Before a result is taken, the
 * pipes are drained, so what the worker wrote before answering lands in
 * the job's files (a worker must flush its buffers before answering: the
 * libraries do).
 *
 * Measuring. The worker's CPU time (utime + stime of /proc/PID/stat, read
 * with pread on a descriptor kept open) is read whenever one of its jobs
 * starts or ends, and the CPU used between two such moments is shared
 * equally by the jobs that ran in between, as is the wall time for the
 * router: a job's runq_wait is its wall time minus its share, so the
 * router sees the worker's load (a worker saturating its core with ten
 * jobs under a GIL is CPU-bound, not ten tenths of a job waiting).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "exec.h"
#include "hpool.h"
#include "hproto.h"
#include "log.h"
#include "proc.h"
#include "xmalloc.h"

#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)                                                 \
	for ((var) = TAILQ_FIRST(head); (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);     \
	     (var) = (tvar))
#endif

#define HPOOL_PROTO_FD 3
#define HPOOL_BACKOFF_MIN 0.1 /* seconds */
#define HPOOL_BACKOFF_MAX 30.0
#define HPOOL_READ 65536      /* bytes read from a worker at a time */
#define HPOOL_LOG_LINE 1024   /* bytes of a worker's log line kept */
#define HPOOL_FREE_WAIT 5.0   /* seconds hpool_free waits before SIGKILL */
#define HPOOL_NOPIDFD_POLL 0.1

enum wstate { W_STARTING, W_READY, W_RETIRING };
enum stop { STOP_NONE, STOP_CANCEL, STOP_TIMEOUT };

static const char *const wstate_names[] = {"starting", "ready", "exiting"};

/* A job in a worker. */
struct hjob {
	struct run *r;
	enum job_class cls;
	double start;       /* CLOCK_MONOTONIC */
	double deadline;    /* CLOCK_MONOTONIC, 0 = none */
	enum stop stop;
	double stop_at;     /* when the cancel was sent */
	int stage;          /* 0 cancel sent, 1 SIGTERM sent */
	double cpu_user, cpu_sys, share; /* this job's part of the worker's CPU and wall time */
	int fd[2];          /* its stdout/stderr files, -1 until written to */
	uint64_t bytes[2];
	bool truncated[2];
};

/* Text written by a worker when no single job owns it: to the log, by lines. */
struct logbuf {
	char buf[HPOOL_LOG_LINE];
	size_t len;
	bool cut; /* the current line was longer than buf */
};

struct hworker {
	struct handler *h;
	TAILQ_ENTRY(hworker) entry;
	pid_t pid;
	int gen;            /* the handler's configuration generation it runs */
	int fd;             /* our end of the socketpair, -1 once closed */
	int pidfd;
	int pipe[2];        /* its stdout and stderr, -1 at EOF */
	int statfd;         /* /proc/PID/stat, -1 if unreadable */
	struct event *ev_read, *ev_write, *ev_dead, *ev_timer, *ev_pipe[2];
	struct event *ev_flush;  /* made active to write what this loop iteration queued */
	struct hframer in;
	char *out;          /* bytes not written to the worker yet */
	size_t out_len, out_off, out_cap;
	enum wstate state;
	int concurrency;    /* from its hello */
	enum job_class mode; /* CLASS_CPU or CLASS_IO while it runs jobs, CLASS_AUTO when idle */
	struct hjob *jobs;  /* njobs of them, room for concurrency */
	int njobs;
	bool killed;
	bool quiet;         /* killed without blame (a reload replaced it before its hello) */
	char *why;          /* why we killed it */
	char *last_line;    /* the last line it wrote on stderr (a start that fails says why there) */
	struct logbuf log[2];
	uint64_t jobs_done;
	long rss_kb;
	double started_at;  /* unix time */
	double spawned;     /* CLOCK_MONOTONIC */
	double idle_since;
	double retire_at;   /* when its socket was closed to make it exit */
	int retire_stage;   /* 0: EOF sent, 1: SIGTERM sent */
	double cpu_mark[2]; /* worker's utime/stime at the last job start or end */
	double mark;        /* when */
};
TAILQ_HEAD(hworkers, hworker);

struct handler {
	struct hpool *hp;
	TAILQ_ENTRY(handler) entry;
	struct handler_config cfg;
	int gen;
	int max;            /* max_workers resolved */
	bool removed;
	struct hworkers workers;
	size_t pending_cpu, pending_io;
	int failures;
	double backoff;
	double next_spawn;  /* CLOCK_MONOTONIC; no start before */
	char *last_error;
	struct event *ev_backoff;
	struct {
		uint64_t done, failed, lost, timeout, cancelled;
		uint64_t started, start_failures, crashes, recycled;
	} n;
};
TAILQ_HEAD(handlers, handler);

struct hpool {
	struct event_base *base;
	struct hpool_callbacks cb;
	struct hpool_limits lim;
	char *self;
	struct handlers handlers;
	struct event *ev_tick;
	int cpu_busy;
	bool stopping;
	double clk_tck;
	long page_kb;
};

static void read_cb(evutil_socket_t, short, void *);
static void write_cb(evutil_socket_t, short, void *);
static void dead_cb(evutil_socket_t, short, void *);
static void timer_cb(evutil_socket_t, short, void *);
static void pipe_cb(evutil_socket_t, short, void *);
static void maintain(struct handler *);
static void handler_gc(struct handler *);

static double
mono(void)
{
	return clock_now(CLOCK_MONOTONIC);
}

/* --- sizing (pure) ---------------------------------------------------- */

static int
imin(int a, int b)
{
	return a < b ? a : b;
}

static int
clamp(size_t n)
{
	return n > (size_t)INT_MAX ? INT_MAX : (int)n;
}

int
hpool_plan(const struct hplan *p)
{
	int max = p->max > 0 ? p->max : 1, conc = p->concurrency > 0 ? p->concurrency : 1;
	int spare = p->idle + p->starting, need, io_left, retire;

	if (p->alive > max)
		return p->idle > 0 ? -imin(p->idle, p->alive - max) : 0;
	/* cpu jobs take an idle (or starting) worker each; io jobs fill free slots first. */
	need = clamp(p->pending_cpu) - spare;
	spare = need < 0 ? -need : 0;
	need = need > 0 ? need : 0;
	io_left = clamp(p->pending_io) - p->io_free - spare * conc;
	if (io_left > 0)
		need += (io_left + conc - 1) / conc;
	if (p->alive + need < p->min)
		need = p->min - p->alive;
	need = imin(need, max - p->alive);
	if (need > 0)
		return need;
	if (p->pending_cpu > 0 || p->pending_io > 0)
		return 0;
	retire = imin(p->idle_expired, p->alive - p->min);
	return retire > 0 ? -retire : 0;
}

/* --- handlers --------------------------------------------------------- */

static int
resolve_max(const struct hpool *hp, const struct handler_config *c)
{
	if (c->max_workers > 0)
		return c->max_workers;
	return c->class == CLASS_CPU ? hp->lim.cpu_max : hp->lim.io_max;
}

static void
backoff_cb(evutil_socket_t fd, short what, void *arg)
{
	maintain(arg);
}

static struct handler *
handler_new(struct hpool *hp, const struct handler_config *c)
{
	struct handler *h = xcalloc(1, sizeof *h);

	h->hp = hp;
	handler_config_copy(&h->cfg, c);
	h->max = resolve_max(hp, c);
	TAILQ_INIT(&h->workers);
	if ((h->ev_backoff = evtimer_new(hp->base, backoff_cb, h)) == NULL)
		fatalx("hpool: cannot create a timer");
	TAILQ_INSERT_TAIL(&hp->handlers, h, entry);
	log_info("handler %s: %s workers (min %d, max %d, concurrency %d)", c->name,
		 config_class_name(c->class), c->min_workers, h->max, c->concurrency);
	return h;
}

static void
set_error(struct handler *h, char *msg)
{
	free(h->last_error);
	h->last_error = msg;
}

static void
failure(struct handler *h, const char *what)
{
	h->failures++;
	h->backoff = HPOOL_BACKOFF_MIN * ldexp(1.0, imin(h->failures - 1, 20));
	if (h->backoff > HPOOL_BACKOFF_MAX)
		h->backoff = HPOOL_BACKOFF_MAX;
	h->next_spawn = mono() + h->backoff;
	set_error(h, xstrdup(what));
	log_warnx("handler %s: %s (%d in a row, next start in %.1f s)", h->cfg.name, what,
		  h->failures, h->backoff);
}

/* --- workers ---------------------------------------------------------- */

static void
fd_close(int *fd)
{
	if (*fd != -1) {
		close(*fd);
		*fd = -1;
	}
}

static char **
worker_env(const struct handler *h, int concurrency)
{
	size_t n = strv_len(h->cfg.env), i, k = 0;
	char **env = xcalloc(n + 7, sizeof *env);
	bool path = false;

	for (i = 0; i < n; i++) {
		if (strncmp(h->cfg.env[i], "PATH=", 5) == 0)
			path = true;
		env[k++] = xstrdup(h->cfg.env[i]);
	}
	if (!path)
		env[k++] = xstrdup("PATH=/usr/local/bin:/usr/bin:/bin");
	env[k++] = xprintf("TASKD_WORKER_FD=%d", HPOOL_PROTO_FD);
	env[k++] = xprintf("TASKD_PROTOCOL=%d", HPROTO_VERSION);
	env[k++] = xprintf("TASKD_CONCURRENCY=%d", concurrency);
	env[k++] = xprintf("TASKD_HANDLER=%s", h->cfg.name);
	return env;
}

/* `taskd --handler-exec NAME DAEMONPID UID GID CWD NARGS ARGV...` */
static char **
exec_argv(const struct handler *h)
{
	const struct handler_config *c = &h->cfg;
	bool as_user = c->uid != geteuid() || (geteuid() == 0 && c->user != NULL);
	size_t nargs = strv_len(c->command), i, n = 0;
	char **v = xcalloc(9 + nargs, sizeof *v);

	v[n++] = xstrdup("taskd");
	v[n++] = xstrdup("--handler-exec");
	v[n++] = xstrdup(c->name);
	v[n++] = xprintf("%d", (int)getpid());
	v[n++] = as_user ? xprintf("%u", (unsigned)c->uid) : xstrdup("-");
	v[n++] = as_user ? xprintf("%u", (unsigned)c->gid) : xstrdup("-");
	v[n++] = xstrdup(c->cwd != NULL ? c->cwd : "/");
	v[n++] = xprintf("%zu", nargs);
	for (i = 0; i < nargs; i++)
		v[n++] = xstrdup(c->command[i]);
	return v;
}

static int
spawn(struct handler *h, int sock, int out, int err, pid_t *pid)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char **argv, **env;
	int rc;

	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		return rc;
	if ((rc = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return rc;
	}
	argv = exec_argv(h);
	env = worker_env(h, h->cfg.concurrency);
	rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, out, 1);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, err, 2);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, sock, HPOOL_PROTO_FD);
	if (rc == 0)
		rc = exec_spawn_attrs(&attr, true);
	/*
	 * The trampoline gets the handler's environment and passes it on (not
	 * in its arguments: anyone may read a process's arguments, only its
	 * user and root its environment).
	 */
	if (rc == 0)
		rc = posix_spawn(pid, h->hp->self, &fa, &attr, argv, env);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	strv_free(argv);
	strv_free(env);
	return rc;
}

static void
watch(struct hworker *w)
{
	struct event_base *base = w->h->hp->base;
	struct timeval poll_tv = clock_timeval(HPOOL_NOPIDFD_POLL);
	int i;

	w->ev_read = event_new(base, w->fd, EV_READ | EV_PERSIST, read_cb, w);
	w->ev_write = event_new(base, w->fd, EV_WRITE, write_cb, w);
	w->ev_dead = event_new(base, w->pidfd, (w->pidfd != -1 ? EV_READ : 0) | EV_PERSIST,
			       dead_cb, w);
	w->ev_timer = evtimer_new(base, timer_cb, w);
	w->ev_flush = event_new(base, -1, 0, write_cb, w);
	for (i = 0; i < 2; i++) {
		w->ev_pipe[i] = event_new(base, w->pipe[i], EV_READ | EV_PERSIST, pipe_cb, w);
		if (w->ev_pipe[i] == NULL || event_add(w->ev_pipe[i], NULL) == -1)
			fatalx("hpool: cannot watch a worker");
	}
	if (w->ev_read == NULL || w->ev_write == NULL || w->ev_dead == NULL ||
	    w->ev_timer == NULL || w->ev_flush == NULL || event_add(w->ev_read, NULL) == -1 ||
	    event_add(w->ev_dead, w->pidfd != -1 ? NULL : &poll_tv) == -1)
		fatalx("hpool: cannot watch a worker");
}

static void arm(struct hworker *w);

static int
open_stat(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Start one worker of h; -1 (and a failure) if it cannot be spawned. */
static int
spawn_worker(struct handler *h)
{
	int sv[2] = {-1, -1}, p[2][2] = {{-1, -1}, {-1, -1}}, i, err = 0;
	struct hworker *w;
	pid_t pid;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == -1 ||
	    pipe2(p[0], O_CLOEXEC) == -1 || pipe2(p[1], O_CLOEXEC) == -1)
		err = errno;
	/* The child's ends must not sit on the fds they are moved to. */
	if (err == 0 && ((sv[1] = proc_fd_off(sv[1], HPOOL_PROTO_FD)) == -1 ||
			 (p[0][1] = proc_fd_off(p[0][1], 1)) == -1 || (p[1][1] = proc_fd_off(p[1][1], 2)) == -1))
		err = errno;
	if (err == 0)
		err = spawn(h, sv[1], p[0][1], p[1][1], &pid);
	fd_close(&sv[1]);
	fd_close(&p[0][1]);
	fd_close(&p[1][1]);
	if (err == 0 && (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
			 fcntl(p[0][0], F_SETFL, O_NONBLOCK) == -1 ||
			 fcntl(p[1][0], F_SETFL, O_NONBLOCK) == -1)) {
		err = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (err != 0) {
		fd_close(&sv[0]);
		fd_close(&p[0][0]);
		fd_close(&p[1][0]);
		char *msg = xprintf("cannot start a worker: %s", strerror(err));

		h->n.start_failures++;
		failure(h, msg);
		free(msg);
		return -1;
	}
	w = xcalloc(1, sizeof *w);
	w->h = h;
	w->pid = pid;
	w->gen = h->gen;
	w->fd = sv[0];
	for (i = 0; i < 2; i++)
		w->pipe[i] = p[i][0];
	w->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	w->statfd = open_stat(pid);
	w->state = W_STARTING;
	w->mode = CLASS_AUTO;
	w->concurrency = h->cfg.concurrency;
	w->rss_kb = -1;
	w->started_at = clock_now(CLOCK_REALTIME);
	w->spawned = w->idle_since = mono();
	hframer_init(&w->in, (size_t)h->hp->lim.max_frame);
	watch(w);
	TAILQ_INSERT_TAIL(&h->workers, w, entry);
	h->n.started++;
	arm(w);
	log_debug("handler %s: worker %d started", h->cfg.name, (int)pid);
	return 0;
}

static void
close_socket(struct hworker *w)
{
	if (w->fd == -1)
		return;
	event_del(w->ev_read);
	event_del(w->ev_write);
	event_del(w->ev_flush);
	close(w->fd);
	w->fd = -1;
}

static void
worker_free(struct hworker *w)
{
	int i, k;

	close_socket(w);
	event_free(w->ev_read);
	event_free(w->ev_write);
	event_free(w->ev_dead);
	event_free(w->ev_timer);
	event_free(w->ev_flush);
	for (i = 0; i < 2; i++) {
		event_free(w->ev_pipe[i]);
		fd_close(&w->pipe[i]);
	}
	for (k = 0; k < w->njobs; k++)
		for (i = 0; i < 2; i++)
			fd_close(&w->jobs[k].fd[i]);
	fd_close(&w->pidfd);
	fd_close(&w->statfd);
	hframer_free(&w->in);
	free(w->out);
	free(w->jobs);
	free(w->why);
	free(w->last_line);
	free(w);
}

/* Kill a worker we no longer trust; its death comes through the pidfd. */
static void
worker_kill(struct hworker *w, const char *why)
{
	if (why != NULL && w->why == NULL) {
		w->why = xstrdup(why);
		log_warnx("handler %s: killing worker %d: %s", w->h->cfg.name, (int)w->pid, why);
	}
	w->killed = true;
	kill(-w->pid, SIGKILL);
	kill(w->pid, SIGKILL);
	close_socket(w);
}

/* Close its socket (it exits on EOF); SIGTERM/SIGKILL later if it lingers. */
static void
worker_retire(struct hworker *w)
{
	if (w->state == W_RETIRING && w->fd == -1)
		return;
	w->state = W_RETIRING;
	if (w->njobs > 0)
		return; /* after its jobs */
	close_socket(w);
	w->retire_at = mono();
	arm(w);
}

/*
 * Queue a line for the worker (takes line). Lines queued in one loop
 * iteration (a burst of pipelined jobs) go out together in one send, when
 * the flush event runs at the end of the iteration.
 */
static void
send_line(struct hworker *w, char *line, size_t len)
{
	if (w->fd == -1) {
		free(line);
		return;
	}
	if (w->out_off > 0 && w->out_off == w->out_len)
		w->out_off = w->out_len = 0;
	if (w->out_len + len > w->out_cap) {
		w->out_cap = w->out_len + len > 2 * w->out_cap ? w->out_len + len : 2 * w->out_cap;
		w->out = xreallocarray(w->out, w->out_cap, 1);
	}
	memcpy(w->out + w->out_len, line, len);
	w->out_len += len;
	free(line);
	if (!event_pending(w->ev_write, EV_WRITE, NULL))
		event_active(w->ev_flush, EV_WRITE, 0);
}

/* Write what is queued; the rest waits for the socket to drain. */
static void
write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	ssize_t n;

	if (w->fd == -1 || w->out_off == w->out_len)
		return;
	do
		n = send(w->fd, w->out + w->out_off, w->out_len - w->out_off, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno != EAGAIN) {
		worker_kill(w, "cannot write to it");
		return;
	}
	if (n > 0)
		w->out_off += (size_t)n;
	if (w->out_off < w->out_len)
		event_add(w->ev_write, NULL);
	else
		w->out_off = w->out_len = 0;
}

/* --- measuring --------------------------------------------------------- */

/* utime, stime (seconds) and rss (KiB) of the worker; -1 if unknown. */
static int
read_stat(struct hworker *w, double *user, double *sys, long *rss)
{
	char buf[1024], *p;
	unsigned long ut, st;
	long pages;
	ssize_t n;

	if (w->statfd == -1)
		return -1;
	n = pread(w->statfd, buf, sizeof buf - 1, 0);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	/* After the command name, which may hold spaces and parentheses. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d "
			  "%*d %*d %*u %*u %ld", &ut, &st, &pages) != 3)
		return -1;
	*user = (double)ut / w->h->hp->clk_tck;
	*sys = (double)st / w->h->hp->clk_tck;
	*rss = pages * w->h->hp->page_kb;
	return 0;
}

/* Share the CPU and wall time since the last mark among the jobs running now. */
static void
account(struct hworker *w)
{
	double u, s, now = mono();
	long rss;
	int k;

	/*
	 * Within a millisecond of the last reading (a burst of pipelined
	 * results) the next one would add nothing worth a system call: what
	 * was used meanwhile goes to the jobs of the next interval.
	 */
	if (now - w->mark < 0.001 && w->rss_kb >= 0)
		return;
	if (read_stat(w, &u, &s, &rss) == -1)
		return;
	w->rss_kb = rss;
	if (w->njobs > 0) {
		for (k = 0; k < w->njobs; k++) {
			w->jobs[k].cpu_user += (u - w->cpu_mark[0]) / w->njobs;
			w->jobs[k].cpu_sys += (s - w->cpu_mark[1]) / w->njobs;
			w->jobs[k].share += (now - w->mark) / w->njobs;
		}
	}
	w->cpu_mark[0] = u;
	w->cpu_mark[1] = s;
	w->mark = now;
}

/* --- output ------------------------------------------------------------ */

static void
log_flush(struct hworker *w, int stream)
{
	struct logbuf *lb = &w->log[stream];

	if (lb->len == 0 && !lb->cut)
		return;
	log_info("handler %s[%d] %s: %.*s%s", w->h->cfg.name, (int)w->pid,
		 stream == 0 ? "stdout" : "stderr", (int)lb->len, lb->buf, lb->cut ? "..." : "");
	if (stream == 1 && w->state == W_STARTING) {
		free(w->last_line);
		w->last_line = xstrndup(lb->buf, lb->len);
	}
	lb->len = 0;
	lb->cut = false;
}

static void
to_log(struct hworker *w, int stream, const char *p, size_t n)
{
	struct logbuf *lb = &w->log[stream];
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] == '\n') {
			log_flush(w, stream);
			continue;
		}
		if (lb->len < sizeof lb->buf)
			lb->buf[lb->len++] = p[i];
		else
			lb->cut = true;
	}
}

static void
to_job(struct hworker *w, struct hjob *j, int stream, const char *p, size_t n)
{
	uint64_t max = w->h->hp->lim.max_output, keep = n;
	const char *path = stream == 0 ? j->r->spec.out_path : j->r->spec.err_path;
	ssize_t k;

	if (max > 0 && j->bytes[stream] + n > max) {
		keep = j->bytes[stream] < max ? max - j->bytes[stream] : 0;
		j->truncated[stream] = true;
	}
	j->bytes[stream] += n;
	if (keep == 0 || path == NULL)
		return;
	if (j->fd[stream] == -1 &&
	    (j->fd[stream] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) == -1) {
		log_warn("handler %s: %s", w->h->cfg.name, path);
		return;
	}
	while (keep > 0) {
		k = write(j->fd[stream], p, keep);
		if (k == -1 && errno == EINTR)
			continue;
		if (k <= 0) {
			log_warn("handler %s: write %s", w->h->cfg.name, path);
			return;
		}
		p += k;
		keep -= (uint64_t)k;
	}
}

/* Read what the worker wrote on stream (0 stdout, 1 stderr) until EAGAIN or EOF. */
static void
drain_pipe(struct hworker *w, int stream)
{
	char buf[16384];
	ssize_t n;

	while (w->pipe[stream] != -1) {
		n = read(w->pipe[stream], buf, sizeof buf);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			event_del(w->ev_pipe[stream]);
			fd_close(&w->pipe[stream]);
			log_flush(w, stream);
			return;
		}
		if (w->njobs == 1)
			to_job(w, &w->jobs[0], stream, buf, (size_t)n);
		else
			to_log(w, stream, buf, (size_t)n);
	}
}

static void
pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;

	drain_pipe(w, fd == w->pipe[0] ? 0 : 1);
}

/* --- jobs -------------------------------------------------------------- */

static void
deliver(struct hpool *hp, struct run *r)
{
	if (hp->cb.done != NULL)
		hp->cb.done(r, hp->cb.arg);
}

static void
notify_ready(struct hpool *hp)
{
	if (hp->cb.ready != NULL && !hp->stopping)
		hp->cb.ready(hp->cb.arg);
}

static struct hjob *
job_of(struct hworker *w, uint64_t id)
{
	int k;

	for (k = 0; k < w->njobs; k++)
		if (w->jobs[k].r->spec.job_id == id)
			return &w->jobs[k];
	return NULL;
}

/* Fill in the run's result fields every ending shares, and take j out of w. */
static struct run *
job_end(struct hworker *w, struct hjob *j, enum run_status st)
{
	struct run *r = j->r;
	struct run_result *res = &r->res;
	double now = mono();
	int i;

	account(w);
	res->status = st;
	res->pid = w->pid;
	res->wall = now - j->start;
	res->finished_at = clock_now(CLOCK_REALTIME);
	res->started_at = res->finished_at - res->wall;
	res->cpu_user = j->cpu_user;
	res->cpu_sys = j->cpu_sys;
	res->runq_wait = res->wall > j->share ? res->wall - j->share : 0;
	res->max_rss_kb = w->rss_kb;
	for (i = 0; i < 2; i++) {
		fd_close(&j->fd[i]);
		*(i == 0 ? &res->out_bytes : &res->err_bytes) = j->bytes[i];
		*(i == 0 ? &res->out_truncated : &res->err_truncated) = j->truncated[i];
	}
	if (j->cls == CLASS_CPU)
		w->h->hp->cpu_busy--;
	*j = w->jobs[--w->njobs];
	if (w->njobs == 0) {
		w->mode = CLASS_AUTO;
		w->idle_since = now;
	}
	return r;
}

static void
set_text(char **dst, char *text)
{
	free(*dst);
	*dst = text;
}

static void
count_end(struct handler *h, const struct run *r)
{
	switch (r->res.status) {
	case RUN_TIMEOUT:
		h->n.timeout++;
		break;
	case RUN_CANCELLED:
		h->n.cancelled++;
		break;
	case RUN_LOST:
		h->n.lost++;
		break;
	default:
		if (r->res.exit_code == 0)
			h->n.done++;
		else
			h->n.failed++;
	}
}

/* The worker answered job j. Takes m's strings. */
static void
on_result(struct hworker *w, struct hjob *j, struct hmsg *m)
{
	struct handler *h = w->h;
	enum stop stop = j->stop;
	struct run *r;

	/*
	 * What it wrote before answering belongs to the job (when it runs
	 * several at once, its output goes to the log anyway).
	 */
	if (w->njobs == 1) {
		drain_pipe(w, 0);
		drain_pipe(w, 1);
	}
	r = job_end(w, j, RUN_EXITED);
	r->res.exit_code = m->ok ? 0 : 1;
	if (m->ok) {
		set_text(&r->res.result, m->result);
		r->res.result_json = true;
		m->result = NULL;
	} else {
		set_text(&r->res.error, m->text);
		m->text = NULL;
		/* Asked to stop, it stopped: the job ended as asked. */
		if (stop != STOP_NONE)
			r->res.status = stop == STOP_TIMEOUT ? RUN_TIMEOUT : RUN_CANCELLED;
	}
	w->jobs_done++;
	h->failures = 0;
	count_end(h, r);
	if (w->state == W_READY && w->gen != h->gen)
		worker_retire(w);
	else if (w->state == W_READY && h->cfg.max_jobs_per_worker > 0 &&
		 w->jobs_done >= (uint64_t)h->cfg.max_jobs_per_worker) {
		h->n.recycled++;
		log_debug("handler %s: worker %d recycled after %" PRIu64 " jobs", h->cfg.name,
			  (int)w->pid, w->jobs_done);
		worker_retire(w);
	} else if (w->state == W_READY && h->cfg.max_worker_rss > 0 && w->rss_kb > 0 &&
		   (uint64_t)w->rss_kb * 1024 > h->cfg.max_worker_rss) {
		h->n.recycled++;
		log_info("handler %s: worker %d recycled at %ld KiB RSS (max_worker_rss)",
			 h->cfg.name, (int)w->pid, w->rss_kb);
		worker_retire(w);
	} else if (w->state == W_RETIRING) {
		worker_retire(w);
	}
	arm(w);
	deliver(h->hp, r);
}

/* A result line longer than limits.max_frame: that job fails, the worker goes on. */
static int
on_too_long(struct hworker *w, const char *prefix, size_t len, uint64_t full, char **why)
{
	uint64_t id = w->njobs == 1 ? w->jobs[0].r->spec.job_id : hproto_peek_id(prefix, len);
	struct hjob *j = id > 0 ? job_of(w, id) : NULL;
	struct hmsg m = {.type = HMSG_RESULT, .id = id};

	if (j == NULL || w->state == W_STARTING) {
		*why = xprintf("sent a line of %" PRIu64 " bytes (limits.max_frame is %" PRIu64 ")",
			       full, w->h->hp->lim.max_frame);
		return -1;
	}
	m.text = xprintf("result too large: %" PRIu64 " bytes, limits.max_frame is %" PRIu64,
			 full, w->h->hp->lim.max_frame);
	log_warnx("handler %s: job %" PRIu64 ": %s", w->h->cfg.name, id, m.text);
	on_result(w, j, &m);
	hmsg_free(&m);
	return 0;
}

static int
on_hello(struct hworker *w, const struct hmsg *m, char **why)
{
	struct handler *h = w->h;

	if (w->state != W_STARTING) {
		*why = xstrdup("hello twice");
		return -1;
	}
	if (m->concurrency > h->cfg.concurrency) {
		*why = xprintf("hello: concurrency %d, more than the handler's %d", m->concurrency,
			       h->cfg.concurrency);
		return -1;
	}
	w->concurrency = m->concurrency;
	w->jobs = xcalloc((size_t)w->concurrency, sizeof *w->jobs);
	w->state = W_READY;
	w->idle_since = mono();
	free(w->last_line);
	w->last_line = NULL;
	h->next_spawn = 0;
	arm(w);
	if (h->hp->stopping || h->removed || w->gen != h->gen)
		worker_retire(w);
	log_debug("handler %s: worker %d ready (concurrency %d)", h->cfg.name, (int)w->pid,
		  w->concurrency);
	return 0;
}

static int
on_message(struct hworker *w, const char *line, size_t len, char **why)
{
	struct hpool *hp = w->h->hp;
	struct hmsg m;
	struct hjob *j;
	char *err = NULL;

	if (hproto_decode(line, len, &m, &err) == -1) {
		*why = xprintf("protocol error: %s", err);
		free(err);
		return -1;
	}
	if (m.type == HMSG_HELLO) {
		int rc = on_hello(w, &m, why);

		hmsg_free(&m);
		return rc;
	}
	if (w->state == W_STARTING) {
		*why = xprintf("protocol error: %s before hello",
			       m.type == HMSG_RESULT ? "result" : "progress");
		hmsg_free(&m);
		return -1;
	}
	if ((j = job_of(w, m.id)) == NULL) {
		*why = xprintf("protocol error: %s for job %" PRIu64 ", which it is not running",
			       m.type == HMSG_RESULT ? "result" : "progress", m.id);
		hmsg_free(&m);
		return -1;
	}
	if (m.type == HMSG_PROGRESS) {
		if (hp->cb.progress != NULL)
			hp->cb.progress(j->r, m.text, hp->cb.arg);
	} else {
		on_result(w, j, &m);
	}
	hmsg_free(&m);
	return 0;
}

static void
read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	struct handler *h = w->h;
	enum hline_kind kind;
	const char *line;
	char *why = NULL;
	uint64_t full;
	size_t len;
	ssize_t n;
	int ready = 0;

	n = read(fd, hframer_space(&w->in, HPOOL_READ), HPOOL_READ);
	if (n == -1 && (errno == EINTR || errno == EAGAIN))
		return;
	if (n <= 0) {
		/* It is going (or must): the pidfd says how. */
		worker_kill(w, n == 0 ? NULL : "cannot read from it");
		return;
	}
	hframer_commit(&w->in, (size_t)n);
	while (w->fd != -1 && (kind = hframer_next(&w->in, &line, &len, &full)) != HLINE_NONE) {
		if (kind == HLINE_OK && on_message(w, line, len, &why) == -1)
			break;
		if (kind == HLINE_TOO_LONG && on_too_long(w, line, len, full, &why) == -1)
			break;
		ready = 1;
	}
	if (why != NULL) {
		worker_kill(w, why);
		free(why);
	}
	if (ready) {
		maintain(h);
		notify_ready(h->hp);
	}
}

/* --- timers ------------------------------------------------------------ */

/* The next moment something must happen to w (CLOCK_MONOTONIC), 0 if none. */
static double
next_deadline(const struct hworker *w)
{
	const struct handler *h = w->h;
	double grace = h->hp->lim.kill_grace, t = 0, d;
	int k;

#define SOONER(x) do { d = (x); if (t == 0 || d < t) t = d; } while (0)
	if (w->killed)
		return 0;
	if (w->state == W_STARTING)
		SOONER(w->spawned + h->cfg.start_timeout);
	if (w->state == W_RETIRING && w->fd == -1)
		SOONER(w->retire_at + grace * (w->retire_stage + 1));
	for (k = 0; k < w->njobs; k++) {
		const struct hjob *j = &w->jobs[k];

		if (j->stop != STOP_NONE)
			SOONER(j->stop_at + grace * (j->stage + 1));
		else if (j->deadline > 0)
			SOONER(j->deadline);
	}
#undef SOONER
	return t;
}

static void
arm(struct hworker *w)
{
	double t = next_deadline(w);
	struct timeval tv;

	if (t == 0) {
		event_del(w->ev_timer);
		return;
	}
	tv = clock_timeval(t - mono() + 0.001);
	evtimer_add(w->ev_timer, &tv);
}

static void
stop_job(struct hworker *w, struct hjob *j, enum stop why)
{
	size_t len;
	char *line;

	if (j->stop != STOP_NONE)
		return;
	j->stop = why;
	j->stop_at = mono();
	j->stage = 0;
	line = hproto_cancel(j->r->spec.job_id, &len);
	send_line(w, line, len);
}

static void
timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	struct handler *h = w->h;
	double now = mono(), grace = h->hp->lim.kill_grace;
	char *why;
	int k;

	if (w->killed)
		return;
	if (w->state == W_STARTING && now >= w->spawned + h->cfg.start_timeout) {
		why = xprintf("no hello within start_timeout (%g s)", h->cfg.start_timeout);
		worker_kill(w, why);
		free(why);
		return;
	}
	if (w->state == W_RETIRING && w->fd == -1 &&
	    now >= w->retire_at + grace * (w->retire_stage + 1)) {
		/* Told to exit (EOF) and still there: SIGTERM, then SIGKILL one grace later. */
		if (w->retire_stage > 0) {
			worker_kill(w, "did not exit after EOF and SIGTERM");
			return;
		}
		log_warnx("handler %s: worker %d did not exit after EOF: SIGTERM", h->cfg.name,
			  (int)w->pid);
		kill(-w->pid, SIGTERM);
		w->retire_stage = 1;
	}
	for (k = 0; k < w->njobs; k++) {
		struct hjob *j = &w->jobs[k];

		if (j->stop == STOP_NONE && j->deadline > 0 && now >= j->deadline) {
			stop_job(w, j, STOP_TIMEOUT);
		} else if (j->stop != STOP_NONE && now >= j->stop_at + grace * (j->stage + 1)) {
			if (j->stage == 0) {
				log_warnx("handler %s: worker %d did not stop job %" PRIu64
					  " within jobs.kill_grace: SIGTERM", h->cfg.name,
					  (int)w->pid, j->r->spec.job_id);
				kill(-w->pid, SIGTERM);
				j->stage = 1;
			} else {
				why = xprintf("did not stop job %" PRIu64 " after SIGTERM",
					      j->r->spec.job_id);
				worker_kill(w, why);
				free(why);
				return;
			}
		}
	}
	arm(w);
}

/* --- death ------------------------------------------------------------- */

static char *
death_reason(const struct hworker *w, int status, bool reaped)
{
	char how[64];

	proc_status_text(status, reaped, how, sizeof how);
	if (w->why != NULL)
		return xprintf("worker %d %s (%s)", (int)w->pid, how, w->why);
	if (w->state == W_STARTING && w->last_line != NULL)
		return xprintf("worker %d %s before hello: %s", (int)w->pid, how, w->last_line);
	if (w->state == W_STARTING)
		return xprintf("worker %d %s before hello", (int)w->pid, how);
	return xprintf("worker %d %s", (int)w->pid, how);
}

static void
dead_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;
	struct handler *h = w->h;
	struct hpool *hp = h->hp;
	struct run **lost;
	int status = 0, k, n;
	char *msg;
	pid_t p;

	do
		p = waitpid(w->pid, &status, WNOHANG);
	while (p == -1 && errno == EINTR);
	if (p == 0)
		return; /* still running (polling without a pidfd) */
	/* Its last words go where they belong before its jobs end. */
	drain_pipe(w, 0);
	drain_pipe(w, 1);
	log_flush(w, 0);
	log_flush(w, 1);
	msg = death_reason(w, status, p == w->pid);
	if (w->quiet || h->removed || (w->state == W_RETIRING && !w->killed)) {
		log_debug("handler %s: %s", h->cfg.name, msg);
	} else if (w->state == W_STARTING) {
		h->n.start_failures++;
		failure(h, msg);
	} else {
		h->n.crashes++;
		failure(h, msg);
	}
	TAILQ_REMOVE(&h->workers, w, entry);
	n = w->njobs;
	lost = xcalloc((size_t)n + 1, sizeof *lost);
	for (k = 0; w->njobs > 0; k++) {
		struct hjob *j = &w->jobs[w->njobs - 1];
		enum stop stop = j->stop;
		struct run *r = job_end(w, j, stop == STOP_TIMEOUT ? RUN_TIMEOUT
					      : stop == STOP_CANCEL ? RUN_CANCELLED : RUN_LOST);

		r->res.exit_code = -1;
		if (r->res.status == RUN_LOST)
			set_text(&r->res.error, xprintf("handler %s: %s", h->cfg.name, msg));
		count_end(h, r);
		lost[k] = r;
	}
	free(msg);
	worker_free(w);
	for (k = 0; k < n; k++)
		deliver(hp, lost[k]);
	free(lost);
	if (h->removed && TAILQ_EMPTY(&h->workers)) {
		handler_gc(h);
		return;
	}
	maintain(h);
	notify_ready(hp);
}

/* --- maintenance ------------------------------------------------------- */

static void
plan_state(const struct handler *h, struct hplan *p)
{
	const struct hworker *w;
	double now = mono();

	memset(p, 0, sizeof *p);
	p->pending_cpu = h->pending_cpu;
	p->pending_io = h->pending_io;
	p->min = h->cfg.min_workers;
	p->max = h->max;
	p->concurrency = h->cfg.concurrency;
	TAILQ_FOREACH(w, &h->workers, entry) {
		if (w->state == W_RETIRING || w->gen != h->gen)
			continue;
		p->alive++;
		if (w->state == W_STARTING) {
			p->starting++;
		} else if (w->njobs == 0) {
			p->idle++;
			if (now - w->idle_since > h->cfg.idle_timeout)
				p->idle_expired++;
		} else if (w->mode == CLASS_IO) {
			p->io_free += w->concurrency - w->njobs;
		}
	}
}

/* The ready worker idle longest (to retire), of the current generation. */
static struct hworker *
oldest_idle(const struct handler *h)
{
	struct hworker *w, *best = NULL;

	TAILQ_FOREACH(w, &h->workers, entry) {
		if (w->state != W_READY || w->njobs > 0 || w->gen != h->gen)
			continue;
		if (best == NULL || w->idle_since < best->idle_since)
			best = w;
	}
	return best;
}

static void
maintain(struct handler *h)
{
	struct hplan p;
	struct hworker *w;
	struct timeval tv;
	double now;
	int n;

	if (h->hp->stopping || h->removed)
		return;
	plan_state(h, &p);
	n = hpool_plan(&p);
	while (n < 0 && (w = oldest_idle(h)) != NULL) {
		log_debug("handler %s: worker %d idle for %.0f s: retired", h->cfg.name,
			  (int)w->pid, mono() - w->idle_since);
		worker_retire(w);
		n++;
	}
	if (n <= 0)
		return;
	now = mono();
	if (h->failures > 0)
		n = 1; /* probe one at a time while starts fail */
	if (now < h->next_spawn) {
		if (!evtimer_pending(h->ev_backoff, NULL)) {
			tv = clock_timeval(h->next_spawn - now);
			evtimer_add(h->ev_backoff, &tv);
		}
		return;
	}
	while (n-- > 0)
		if (spawn_worker(h) == -1) {
			maintain(h); /* arms the backoff timer */
			return;
		}
}

static void
tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hpool *hp = arg;
	struct handler *h, *next;

	TAILQ_FOREACH_SAFE(h, &hp->handlers, entry, next)
		maintain(h);
}

/* --- handlers: configure, find, free ------------------------------------ */

static void
handler_free(struct handler *h)
{
	TAILQ_REMOVE(&h->hp->handlers, h, entry);
	event_free(h->ev_backoff);
	handler_config_free(&h->cfg);
	free(h->last_error);
	free(h);
}

/* A removed handler goes once its last worker is gone. */
static void
handler_gc(struct handler *h)
{
	if (h->removed && TAILQ_EMPTY(&h->workers))
		handler_free(h);
}

static struct handler *
find_any(const struct hpool *hp, const char *name)
{
	struct handler *h;

	TAILQ_FOREACH(h, &hp->handlers, entry)
		if (!h->removed && strcmp(h->cfg.name, name) == 0)
			return h;
	return NULL;
}

static void
retire_all(struct handler *h, bool other_gen_only)
{
	struct hworker *w, *next;

	TAILQ_FOREACH_SAFE(w, &h->workers, entry, next) {
		if (other_gen_only && w->gen == h->gen)
			continue;
		if (w->state == W_STARTING) {
			w->quiet = true;
			worker_kill(w, NULL);
		} else {
			worker_retire(w);
		}
	}
}

void
hpool_configure(struct hpool *hp, const struct handler_config *hs, size_t n,
		const struct hpool_limits *lim)
{
	struct handler *h, *next;
	size_t i;

	hp->lim = *lim;
	TAILQ_FOREACH_SAFE(h, &hp->handlers, entry, next) {
		const struct handler_config *c = NULL;

		if (h->removed)
			continue;
		for (i = 0; i < n && c == NULL; i++)
			if (strcmp(hs[i].name, h->cfg.name) == 0)
				c = &hs[i];
		if (c == NULL) {
			log_info("handler %s removed", h->cfg.name);
			h->removed = true;
			retire_all(h, false);
			handler_gc(h);
			continue;
		}
		if (handler_config_respawn(&h->cfg, c)) {
			log_info("handler %s changed: its workers are replaced", h->cfg.name);
			h->gen++;
			h->failures = 0;
			h->next_spawn = 0;
		}
		handler_config_free(&h->cfg);
		handler_config_copy(&h->cfg, c);
		h->max = resolve_max(hp, c);
		retire_all(h, true);
	}
	for (i = 0; i < n; i++)
		if (find_any(hp, hs[i].name) == NULL)
			handler_new(hp, &hs[i]);
	TAILQ_FOREACH_SAFE(h, &hp->handlers, entry, next) {
		struct hworker *w;

		/* New limits reach the framers of running workers too. */
		TAILQ_FOREACH(w, &h->workers, entry)
			w->in.max = (size_t)lim->max_frame;
		maintain(h);
	}
}

struct hpool *
hpool_new(struct event_base *base, const char *self, const struct hpool_callbacks *cb)
{
	struct hpool *hp = xcalloc(1, sizeof *hp);
	struct timeval sec = {1, 0};

	hp->base = base;
	hp->self = xstrdup(self);
	if (cb != NULL)
		hp->cb = *cb;
	TAILQ_INIT(&hp->handlers);
	hp->clk_tck = (double)sysconf(_SC_CLK_TCK);
	if (hp->clk_tck <= 0)
		hp->clk_tck = 100;
	hp->page_kb = sysconf(_SC_PAGESIZE) / 1024;
	if (hp->page_kb <= 0)
		hp->page_kb = 4;
	hp->ev_tick = event_new(base, -1, EV_PERSIST, tick_cb, hp);
	if (hp->ev_tick == NULL || event_add(hp->ev_tick, &sec) == -1)
		fatalx("hpool: cannot create a timer");
	return hp;
}

struct handler *
hpool_find(const struct hpool *hp, const char *name)
{
	return hp != NULL ? find_any(hp, name) : NULL;
}

const struct handler_config *
hpool_handler_config(const struct handler *h)
{
	return &h->cfg;
}

/* The worker to give a job routed cls: io jobs pack into the fullest worker with room. */
static struct hworker *
pick(const struct handler *h, enum job_class cls)
{
	struct hworker *w, *best = NULL;

	if (h->removed || h->hp->stopping)
		return NULL;
	TAILQ_FOREACH(w, &h->workers, entry) {
		if (w->state != W_READY || w->gen != h->gen || w->fd == -1)
			continue;
		if (cls == CLASS_CPU) {
			if (w->njobs == 0 && (best == NULL || w->idle_since > best->idle_since))
				best = w;
		} else if ((w->njobs == 0 || w->mode == CLASS_IO) && w->njobs < w->concurrency) {
			if (best == NULL || w->njobs > best->njobs ||
			    (w->njobs == best->njobs && w->idle_since > best->idle_since))
				best = w;
		}
	}
	return best;
}

bool
hpool_room(const struct handler *h, enum job_class cls)
{
	return pick(h, cls) != NULL;
}

int
hpool_submit(struct handler *h, struct run *r, enum job_class cls)
{
	struct hworker *w = pick(h, cls);
	struct hjob *j;
	size_t len;
	char *line;

	if (w == NULL)
		return -1;
	account(w);
	j = &w->jobs[w->njobs++];
	memset(j, 0, sizeof *j);
	j->r = r;
	j->cls = cls == CLASS_CPU ? CLASS_CPU : CLASS_IO;
	j->start = mono();
	j->deadline = r->spec.timeout > 0 ? j->start + r->spec.timeout : 0;
	j->fd[0] = j->fd[1] = -1;
	w->mode = j->cls;
	if (j->cls == CLASS_CPU)
		h->hp->cpu_busy++;
	r->worker_pid = w->pid;
	line = hproto_job(r->spec.job_id, r->spec.argv, r->spec.input,
			  r->spec.timeout > 0 ? clock_now(CLOCK_REALTIME) + r->spec.timeout : 0,
			  &len);
	send_line(w, line, len);
	if (j->deadline > 0)
		arm(w);
	return 0;
}

void
hpool_demand(struct handler *h, size_t cpu, size_t io)
{
	h->pending_cpu = cpu;
	h->pending_io = io;
	maintain(h);
}

static void
stop_run(struct hpool *hp, struct run *r, enum stop why)
{
	struct handler *h;
	struct hworker *w;
	struct hjob *j;

	TAILQ_FOREACH(h, &hp->handlers, entry)
		TAILQ_FOREACH(w, &h->workers, entry)
			if ((j = job_of(w, r->spec.job_id)) != NULL && j->r == r) {
				stop_job(w, j, why);
				arm(w);
				return;
			}
}

void
hpool_cancel(struct hpool *hp, struct run *r)
{
	stop_run(hp, r, STOP_CANCEL);
}

void
hpool_timeout(struct hpool *hp, struct run *r)
{
	stop_run(hp, r, STOP_TIMEOUT);
}

int
hpool_cpu_busy(const struct hpool *hp)
{
	return hp != NULL ? hp->cpu_busy : 0;
}

static json_t *
worker_json(const struct hworker *w)
{
	json_t *ids = json_array();
	const char *state = wstate_names[w->state];
	int k;

	for (k = 0; k < w->njobs; k++)
		json_array_append_new(ids, json_integer((json_int_t)w->jobs[k].r->spec.job_id));
	if (w->state == W_READY)
		state = w->njobs == 0 ? "idle" : "busy";
	return json_pack("{s:i,s:s,s:s?,s:o,s:I,s:o,s:f,s:f}", "pid", (int)w->pid, "state", state,
			 "mode", w->njobs > 0 ? config_class_name(w->mode) : NULL, "jobs", ids,
			 "jobs_done", (json_int_t)w->jobs_done, "rss_kb",
			 w->rss_kb >= 0 ? json_integer(w->rss_kb) : json_null(), "started_at",
			 w->started_at, "age", mono() - w->spawned);
}

json_t *
hpool_handler_json(const struct handler *h)
{
	const struct hworker *w;
	json_t *ws = json_array(), *cmd = json_array();
	double now = mono();
	size_t i;

	TAILQ_FOREACH(w, &h->workers, entry)
		json_array_append_new(ws, worker_json(w));
	for (i = 0; h->cfg.command[i] != NULL; i++)
		json_array_append_new(cmd, json_string(h->cfg.command[i]));
	return json_pack("{s:s,s:o,s:s,s:s?,s:i,s:i,s:i,s:b,s:o,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
			 "s:I,s:I},s:i,s:f,s:s?}",
			 "name", h->cfg.name, "command", cmd, "class",
			 config_class_name(h->cfg.class), "user", h->cfg.user, "min",
			 h->cfg.min_workers, "max", h->max, "concurrency", h->cfg.concurrency,
			 "removed", h->removed, "workers", ws, "counters", "done",
			 (json_int_t)h->n.done, "failed", (json_int_t)h->n.failed, "lost",
			 (json_int_t)h->n.lost, "timeout", (json_int_t)h->n.timeout, "cancelled",
			 (json_int_t)h->n.cancelled, "workers_started", (json_int_t)h->n.started,
			 "start_failures", (json_int_t)h->n.start_failures, "crashes",
			 (json_int_t)h->n.crashes, "recycled", (json_int_t)h->n.recycled,
			 "failures", h->failures, "backoff",
			 h->next_spawn > now ? h->next_spawn - now : 0.0, "last_error",
			 h->last_error);
}

json_t *
hpool_to_json(const struct hpool *hp)
{
	const struct handler *h;
	json_t *a = json_array();

	if (hp == NULL)
		return a;
	TAILQ_FOREACH(h, &hp->handlers, entry)
		json_array_append_new(a, hpool_handler_json(h));
	return a;
}

void
hpool_stop(struct hpool *hp)
{
	struct handler *h;

	hp->stopping = true;
	TAILQ_FOREACH(h, &hp->handlers, entry) {
		event_del(h->ev_backoff);
		retire_all(h, false);
	}
}

void
hpool_free(struct hpool *hp)
{
	struct handler *h;
	struct hworker *w;
	double deadline;
	bool all;

	if (hp == NULL)
		return;
	hpool_stop(hp);
	deadline = mono() + (hp->lim.kill_grace < HPOOL_FREE_WAIT ? hp->lim.kill_grace
								  : HPOOL_FREE_WAIT);
	/* EOF tells every worker to go; busy ones were cancelled by the caller. */
	TAILQ_FOREACH(h, &hp->handlers, entry)
		TAILQ_FOREACH(w, &h->workers, entry)
			close_socket(w);
	for (;;) {
		all = true;
		TAILQ_FOREACH(h, &hp->handlers, entry)
			TAILQ_FOREACH(w, &h->workers, entry)
				if (!proc_exited(w->pid))
					all = false;
		if (all || mono() > deadline)
			break;
		usleep(10000);
	}
	while ((h = TAILQ_FIRST(&hp->handlers)) != NULL) {
		while ((w = TAILQ_FIRST(&h->workers)) != NULL) {
			if (!proc_exited(w->pid)) {
				log_warnx("handler %s: worker %d did not exit, killing it",
					  h->cfg.name, (int)w->pid);
				kill(-w->pid, SIGKILL);
				kill(w->pid, SIGKILL);
			}
			while (waitpid(w->pid, NULL, 0) == -1 && errno == EINTR)
				;
			/* Jobs still in it are lost with the daemon's stop. */
			w->state = W_RETIRING;
			w->killed = true;
			TAILQ_REMOVE(&h->workers, w, entry);
			while (w->njobs > 0) {
				struct run *r = job_end(w, &w->jobs[w->njobs - 1], RUN_LOST);

				r->res.exit_code = -1;
				set_text(&r->res.error, xprintf("handler %s: taskd stopped",
								h->cfg.name));
				deliver(hp, r);
			}
			worker_free(w);
		}
		handler_free(h);
	}
	event_free(hp->ev_tick);
	free(hp->self);
	free(hp);
}

/* --- the child side: taskd --handler-exec ----------------------------- */

static void __attribute__((noreturn, format(printf, 3, 4)))
exec_fail(const char *name, int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "taskd: handler %s: ", name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	_exit(code);
}

int
hpool_exec_main(int argc, char **argv)
{
	const char *name, *cwd;
	unsigned long uid, gid, nargs;
	struct passwd *pw;
	char **jargv;
	pid_t daemon;
	int i;

	if (argc < 9)
		exec_fail("?", 126, "--handler-exec: missing arguments");
	name = argv[2];
	daemon = (pid_t)strtol(argv[3], NULL, 10);
	cwd = argv[6];
	nargs = strtoul(argv[7], NULL, 10);
	if (nargs == 0 || nargs != (unsigned long)(argc - 8))
		exec_fail(name, 126, "--handler-exec: bad arguments");
	jargv = xcalloc(nargs + 1, sizeof *jargv);
	for (i = 0; i < (int)nargs; i++)
		jargv[i] = argv[8 + i];
	if (strcmp(argv[4], "-") != 0) {
		uid = strtoul(argv[4], NULL, 10);
		gid = strtoul(argv[5], NULL, 10);
		/* Supplementary groups first (needs root), then gid, then uid. */
		pw = getpwuid((uid_t)uid);
		if ((pw != NULL ? initgroups(pw->pw_name, (gid_t)gid) : setgroups(0, NULL)) == -1)
			exec_fail(name, 126, "cannot set the groups of uid %lu: %s", uid,
				  strerror(errno));
		if (setgid((gid_t)gid) == -1 || setuid((uid_t)uid) == -1)
			exec_fail(name, 126, "cannot become uid %lu gid %lu: %s", uid, gid,
				  strerror(errno));
		if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
		    (uid != 0 && setuid(0) == 0))
			exec_fail(name, 126, "could not drop privileges to uid %lu", uid);
	}
	if (chdir(cwd) == -1)
		exec_fail(name, 126, "cwd %s: %s", cwd, strerror(errno));
	/* After the ids changed (that clears it): the worker dies with taskd. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != daemon)
		exec_fail(name, 126, "taskd is gone");
	execve(jargv[0], jargv, environ);
	exec_fail(name, errno == ENOENT ? 127 : 126, "cannot execute %s: %s", jargv[0],
		  strerror(errno));
}
