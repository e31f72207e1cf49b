/*
 * A handler worker's process (hpool-int.h): its start through `taskd
 * --handler-exec` (as the handler's user, in its cwd, with its
 * environment), what it writes on stdout and stderr (to the job it runs,
 * else to taskd's log), and its CPU time and RSS from /proc. See hpool.c
 * for the whole picture.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "hpool-int.h"
#include "log.h"
#include "proc.h"
#include "xmalloc.h"

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


static int
open_stat(pid_t pid)
{
	char path[64];

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	return open(path, O_RDONLY | O_CLOEXEC);
}

/* Start one worker of h; -1 (and a failure) if it cannot be spawned. */
int
hc_spawn(struct handler *h)
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
	hp_fd_close(&sv[1]);
	hp_fd_close(&p[0][1]);
	hp_fd_close(&p[1][1]);
	if (err == 0 && (fcntl(sv[0], F_SETFL, O_NONBLOCK) == -1 ||
			 fcntl(p[0][0], F_SETFL, O_NONBLOCK) == -1 ||
			 fcntl(p[1][0], F_SETFL, O_NONBLOCK) == -1)) {
		err = errno;
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
	if (err != 0) {
		hp_fd_close(&sv[0]);
		hp_fd_close(&p[0][0]);
		hp_fd_close(&p[1][0]);
		char *msg = xprintf("cannot start a worker: %s", strerror(err));

		h->n.start_failures++;
		hp_failure(h, msg);
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
	w->spawned = w->idle_since = hp_mono();
	hframer_init(&w->in, (size_t)h->hp->lim.max_frame);
	hw_watch(w);
	TAILQ_INSERT_TAIL(&h->workers, w, entry);
	h->n.started++;
	hw_arm(w);
	log_debug("handler %s: worker %d started", h->cfg.name, (int)pid);
	return 0;
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
void
hc_account(struct hworker *w)
{
	double u, s, now = hp_mono();
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

void
hc_log_flush(struct hworker *w, int stream)
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
			hc_log_flush(w, stream);
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

	if (max > 0 && j->bytes[stream] + n > max)
		keep = j->bytes[stream] < max ? max - j->bytes[stream] : 0;
	/* Its owner's output quota (quota.h): what is left of it, or nothing at all. */
	if (j->r->spec.max_kept > 0 && keep > j->r->spec.max_kept - j->kept)
		keep = j->r->spec.max_kept - j->kept;
	if (atomic_load(&j->r->quiet))
		keep = 0;
	if (keep < n)
		j->truncated[stream] = true;
	j->bytes[stream] += n;
	j->kept += keep;
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
void
hc_drain(struct hworker *w, int stream)
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
			hp_fd_close(&w->pipe[stream]);
			hc_log_flush(w, stream);
			return;
		}
		if (w->njobs == 1)
			to_job(w, &w->jobs[0], stream, buf, (size_t)n);
		else
			to_log(w, stream, buf, (size_t)n);
	}
}

void
hc_pipe_cb(evutil_socket_t fd, short what, void *arg)
{
	struct hworker *w = arg;

	hc_drain(w, fd == w->pipe[0] ? 0 : 1);
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
