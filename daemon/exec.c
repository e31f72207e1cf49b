/*
 * Running one job (struct run) in the calling thread, normally a pool thread.
 *
 * What runs where: run_execute() is called on a pool thread and blocks until
 * the job is over. For a command (exec_run) that thread posix_spawns the
 * child in its own session (and so its own process group), records it on
 * disk (leftover.h: a taskd killed meanwhile leaves it to the next one to
 * kill), then sits in a poll() loop over the
 * child's pidfd, its stdout/stderr pipes and the run's cancel eventfd,
 * copying output into the files and enforcing the timeout; when the pidfd
 * says the child exited it reaps exactly that pid with wait4() (so the
 * rusage comes with it) and never calls waitpid(-1).
 *
 * Who owns what: the struct run belongs to the runner while it runs; the
 * only things other threads touch are cancelled and cancel_fd (run_cancel
 * sets the one and writes the other, async-signal-safe). Global state: a
 * small mutex-guarded stack of drained cancel eventfds for reuse (run.c,
 * which creates, cancels and frees runs) and, in schedstat.c, each
 * thread's open schedstat file. Finding the command in PATH: exec-path.c.
 *
 * File descriptors: every fd opened here is O_CLOEXEC from birth (pipe2,
 * open, eventfd, pidfd), so a job spawned concurrently by another pool
 * thread never inherits this job's pipes or files. The child gets its
 * stdin/stdout/stderr only through posix_spawn file actions.
 *
 * Killing: the group is signalled with kill(-pid, ...) only while the leader
 * is unreaped (running or a zombie), so its pid, which is the group id,
 * cannot have been reused. When the leader exits after a timeout or cancel,
 * the rest of the group gets SIGKILL before the leader is reaped.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "exec.h"
#include "clock.h"
#include "leftover.h"
#include "log.h"
#include "modules.h"
#include "spawncg.h"
#include "xmalloc.h"

#define EXEC_DEFAULT_PATH TASKD_DEFAULT_PATH
#define EXEC_BUFSZ 65536
#define EXEC_DRAIN_MAX 64  /* reads per stream once the leader exited */
#define EXEC_NOPIDFD_MS 10 /* poll period when pidfd_open failed */

static char *const exec_default_env[] = {"PATH=" EXEC_DEFAULT_PATH, NULL};

/* One output stream: pipe from the child, file on disk, counters. */
struct stream {
	int rfd;          /* pipe read end (non-blocking), -1 at EOF */
	int wfd;          /* pipe write end, closed once the child has it */
	int file;         /* output file, -1 when closed */
	const char *path; /* for messages */
	uint64_t kept;    /* bytes written to the file */
	uint64_t *bytes;  /* -> res.out_bytes / res.err_bytes */
	bool *truncated;  /* -> res.out_truncated / res.err_truncated */
};

/* The state of one spawned command, on the runner's stack. */
struct child {
	struct run *r;
	char *path; /* resolved argv[0] */
	pid_t pid;
	int pidfd; /* -1: fall back to waitid(WNOWAIT) polling */
	struct stream out;
	struct stream err;
	char *buf;
	double deadline;     /* CLOCK_MONOTONIC timeout, 0 = none */
	double kill_at;      /* CLOCK_MONOTONIC SIGKILL time once stopping */
	bool stopping;       /* SIGTERM sent (timeout or cancel) */
	bool suspended;      /* stopped (run_suspend), not continued since */
	bool frozen;         /* stopped by freezing its cgroup, not by SIGSTOP */
	double suspended_since; /* CLOCK_MONOTONIC */
	int in;              /* its input file (spec.in_path), -1: /dev/null */
	int report;          /* --run-as: read end of the failure report pipe, -1 otherwise */
	const char *cgroup;  /* its cgroup once made (spec.cgroup), else NULL */
	int cg_procs;        /* that cgroup's cgroup.procs, for the spawn; -1 */
	bool tracked;        /* recorded at spec.track_path: removed once reaped */
	bool killed;         /* SIGKILL sent */
	enum run_status why; /* RUN_TIMEOUT or RUN_CANCELLED once stopping */
};

static int run_fail(struct run *r, int code, char *msg);

void
run_execute(struct run *r)
{
	/* A run nobody could cancel is not started (out of descriptors). */
	if (r->cancel_fd == -1) {
		r->res.started_at = r->res.finished_at = clock_now(CLOCK_REALTIME);
		run_fail(r, 1, xstrdup("cannot create the cancel eventfd (out of file descriptors?)"));
		return;
	}
	if (r->spec.type == BUILTIN_EXEC)
		exec_run(r);
	else
		module_run(r);
}

/* --- setup ------------------------------------------------------------ */

/* Record a start failure; takes ownership of msg. Returns -1. */
static int
run_fail(struct run *r, int code, char *msg)
{
	r->res.status = RUN_FAILED;
	r->res.exit_code = code;
	r->res.signal = 0;
	free(r->res.error);
	r->res.error = msg;
	return -1;
}

static int
check_cwd(struct run *r, const char *cwd)
{
	struct stat st;

	if (stat(cwd, &st) == -1)
		return run_fail(r, 1, xprintf("cwd %s: %s", cwd, strerror(errno)));
	if (!S_ISDIR(st.st_mode))
		return run_fail(r, 1, xprintf("cwd %s: %s", cwd, strerror(ENOTDIR)));
	if (access(cwd, X_OK) == -1)
		return run_fail(r, 1, xprintf("cwd %s: %s", cwd, strerror(errno)));
	return 0;
}

/* Keep fd off 0..2 so the spawn file actions cannot clobber it. */
static int
fd_above_stdio(int fd)
{
	int nfd;

	if (fd > 2)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	close(fd);
	return nfd;
}

static int
stream_open(struct run *r, struct stream *s, const char *path)
{
	int p[2];

	s->path = path != NULL ? path : "/dev/null";
	s->file = open(s->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (s->file == -1)
		return run_fail(r, 1, xprintf("cannot open %s: %s", s->path, strerror(errno)));
	/* A job's output belongs to its submitter. */
	if (path != NULL && r->spec.as_user && fchown(s->file, r->spec.uid, r->spec.gid) == -1)
		return run_fail(r, 1, xprintf("cannot chown %s: %s", s->path, strerror(errno)));
	if (pipe2(p, O_CLOEXEC) == -1)
		return run_fail(r, 1, xprintf("pipe: %s", strerror(errno)));
	s->rfd = p[0];
	s->wfd = fd_above_stdio(p[1]);
	if (s->wfd == -1)
		return run_fail(r, 1, xprintf("fcntl: %s", strerror(errno)));
	if (fcntl(s->rfd, F_SETFL, O_NONBLOCK) == -1)
		return run_fail(r, 1, xprintf("fcntl: %s", strerror(errno)));
	return 0;
}

static void
child_init(struct child *c, struct run *r)
{
	memset(c, 0, sizeof *c);
	c->r = r;
	c->pidfd = -1;
	c->report = -1;
	c->in = -1;
	c->cg_procs = -1;
	c->out.rfd = c->out.wfd = c->out.file = -1;
	c->err.rfd = c->err.wfd = c->err.file = -1;
	c->out.bytes = &r->res.out_bytes;
	c->out.truncated = &r->res.out_truncated;
	c->err.bytes = &r->res.err_bytes;
	c->err.truncated = &r->res.err_truncated;
}

static void
fd_close(int *fd)
{
	if (*fd != -1)
		close(*fd);
	*fd = -1;
}

static void
child_close(struct child *c)
{
	fd_close(&c->pidfd);
	fd_close(&c->report);
	fd_close(&c->in);
	fd_close(&c->cg_procs);
	fd_close(&c->out.rfd);
	fd_close(&c->out.wfd);
	fd_close(&c->out.file);
	fd_close(&c->err.rfd);
	fd_close(&c->err.wfd);
	fd_close(&c->err.file);
	/* Reaped (or never started): nothing of it for a restart to kill. */
	if (c->tracked)
		leftover_forget(c->r->spec.track_path);
	free(c->path);
	free(c->buf);
}

static bool
has_limits(const struct cg_limits *l)
{
	return l->memory > 0 || l->cpus > 0 || l->pids > 0;
}

/*
 * Its own cgroup, when it was given one. Without it the command still
 * runs (measured through /proc, and the result says why), unless it has
 * limits: those it was promised, so it fails instead.
 */
static int
child_cgroup(struct child *c)
{
	struct run *r = c->r;
	char *err = NULL;

	if (r->spec.cgroup == NULL)
		return 0;
	if (cg_create(r->spec.cgroup, &r->spec.limits, &err) == 0) {
		if ((c->cg_procs = cg_procs_open(r->spec.cgroup)) != -1) {
			c->cgroup = r->spec.cgroup;
			r->res.in_cgroup = true;
			return 0;
		}
		err = xprintf("cannot open %s/cgroup.procs: %s", r->spec.cgroup, strerror(errno));
		cg_remove(r->spec.cgroup, 0);
	}
	if (has_limits(&r->spec.limits))
		return run_fail(r, 126, xprintf("cannot apply the job's limits: %s", err));
	log_warnx("job %llu runs without its cgroup: %s", (unsigned long long)r->spec.job_id,
		  err);
	free(r->res.cgroup_error);
	r->res.cgroup_error = err;
	return 0;
}

static int
child_prepare(struct child *c, const char *cwd)
{
	struct run *r = c->r;
	char *error;
	int code;

	if (run_cancelled(r)) {
		r->res.status = RUN_CANCELLED;
		return -1;
	}
	if (r->spec.argv == NULL || r->spec.argv[0] == NULL)
		return run_fail(r, 127, xstrdup("command not found: (empty argv)"));
	/* As another user, the cwd is checked by --run-as with that user's rights. */
	if (!r->spec.as_user && check_cwd(r, cwd) == -1)
		return -1;
	code = exec_resolve(r->spec.argv[0], r->spec.env, cwd, &c->path, &error);
	if (code != 0)
		return run_fail(r, code, error);
	/* Its stored input: opened here, as taskd, so the command gets it whoever it runs as. */
	if (r->spec.in_path != NULL &&
	    ((c->in = open(r->spec.in_path, O_RDONLY | O_CLOEXEC)) == -1 ||
	     (c->in = fd_above_stdio(c->in)) == -1))
		return run_fail(r, 1, xprintf("cannot open its input %s: %s", r->spec.in_path,
					      strerror(errno)));
	if (stream_open(r, &c->out, r->spec.out_path) == -1)
		return -1;
	if (stream_open(r, &c->err, r->spec.err_path) == -1)
		return -1;
	c->buf = xmalloc(EXEC_BUFSZ);
	return child_cgroup(c);
}

/* --- spawn ------------------------------------------------------------ */

static int
spawn_actions(posix_spawn_file_actions_t *fa, const struct child *c, const char *cwd)
{
	int err;

	if (c->in != -1)
		err = posix_spawn_file_actions_adddup2(fa, c->in, 0);
	else
		err = posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0);
	if (err != 0)
		return err;
	if ((err = posix_spawn_file_actions_adddup2(fa, c->out.wfd, 1)) != 0)
		return err;
	if ((err = posix_spawn_file_actions_adddup2(fa, c->err.wfd, 2)) != 0)
		return err;
	if (c->report != -1)
		return 0; /* --run-as: fd 3 is set up by runas_spawn; it enters cwd itself */
	return posix_spawn_file_actions_addchdir_np(fa, cwd);
}

int
exec_spawn_attrs(posix_spawnattr_t *attr, bool own_session)
{
	sigset_t mask, def;
	short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
	int err;

	sigemptyset(&mask);
	sigfillset(&def);
	sigdelset(&def, SIGKILL);
	sigdelset(&def, SIGSTOP);
	/*
	 * A session rather than just a group: its members stay in it even when
	 * they move to other groups (a shell with job control), which lets a
	 * restart find all of them (leftover.c); and no controlling terminal.
	 */
	if (own_session)
		flags |= POSIX_SPAWN_SETSID;
	if ((err = posix_spawnattr_setflags(attr, flags)) != 0)
		return err;
	if ((err = posix_spawnattr_setsigmask(attr, &mask)) != 0)
		return err;
	return posix_spawnattr_setsigdefault(attr, &def);
}

/* --- running as the submitter ------------------------------------------ */

#define RUNAS_SELF "/proc/self/exe"
#define RUNAS_REPORT_FD 3

static char *const exec_empty_env[] = {NULL};

/* The report pipe and the trampoline's argv (see exec_runas_main). */
static int
runas_prepare(struct child *c, const char *cwd, int *report_w, char ***tramp)
{
	struct run *r = c->r;
	char *const *env = r->spec.env != NULL ? r->spec.env : exec_default_env;
	size_t i, n = 0, nargs = strv_len(r->spec.argv), nenv = strv_len(env);
	char **v;
	int p[2];

	if (pipe2(p, O_CLOEXEC) == -1)
		return run_fail(r, 1, xprintf("pipe: %s", strerror(errno)));
	c->report = p[0];
	*report_w = fd_above_stdio(p[1]);
	if (*report_w == -1)
		return run_fail(r, 1, xprintf("fcntl: %s", strerror(errno)));
	v = xcalloc(7 + nargs + nenv + 1, sizeof *v);
	v[n++] = xstrdup("taskd");
	v[n++] = xstrdup("--run-as");
	v[n++] = xprintf("%u", (unsigned)r->spec.uid);
	v[n++] = xprintf("%u", (unsigned)r->spec.gid);
	v[n++] = xstrdup(cwd);
	v[n++] = xstrdup(c->path);
	v[n++] = xprintf("%zu", nargs);
	for (i = 0; i < nargs; i++)
		v[n++] = xstrdup(r->spec.argv[i]);
	for (i = 0; i < nenv; i++)
		v[n++] = xstrdup(env[i]);
	*tramp = v;
	return 0;
}

/* EOF on the report pipe: the command was exec'd. Else reap the trampoline and fail. */
static int
runas_check(struct child *c)
{
	char buf[1024], *msg;
	ssize_t n;
	int code;

	do
		n = read(c->report, buf, sizeof buf - 1);
	while (n == -1 && errno == EINTR);
	fd_close(&c->report);
	if (n == 0)
		return 0;
	buf[n > 0 ? n : 0] = '\0';
	while (waitpid(c->pid, NULL, 0) == -1 && errno == EINTR)
		;
	c->pid = 0;
	code = (int)strtol(buf, &msg, 10);
	if (n < 0 || code <= 0 || code > 255 || *msg != ' ')
		return run_fail(c->r, 126, xstrdup("cannot start the command as its user"));
	return run_fail(c->r, code, xstrdup(msg + 1));
}

static void __attribute__((noreturn))
runas_fail(int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dprintf(RUNAS_REPORT_FD, "%d %s", code, msg);
	_exit(code);
}

int
exec_runas_main(int argc, char **argv)
{
	const char *cwd, *path;
	struct passwd *pw;
	char **jargv, **jenv;
	unsigned long uid, gid, nargs;
	int i;

	if (argc < 7)
		runas_fail(126, "--run-as: missing arguments");
	uid = strtoul(argv[2], NULL, 10);
	gid = strtoul(argv[3], NULL, 10);
	cwd = argv[4];
	path = argv[5];
	nargs = strtoul(argv[6], NULL, 10);
	if (nargs == 0 || nargs > (unsigned long)(argc - 7) || uid == 0)
		runas_fail(126, "--run-as: bad arguments");
	jargv = xcalloc(nargs + 1, sizeof *jargv);
	jenv = xcalloc((size_t)argc - 7 - nargs + 1, sizeof *jenv);
	for (i = 0; i < (int)nargs; i++)
		jargv[i] = argv[7 + i];
	for (i = 7 + (int)nargs; i < argc; i++)
		jenv[i - 7 - (int)nargs] = argv[i];
	/* Supplementary groups first (needs root), then gid, then uid. */
	pw = getpwuid((uid_t)uid);
	if ((pw != NULL ? initgroups(pw->pw_name, (gid_t)gid) : setgroups(0, NULL)) == -1)
		runas_fail(126, "cannot set the groups of uid %lu: %s", uid, strerror(errno));
	if (setgid((gid_t)gid) == -1 || setuid((uid_t)uid) == -1)
		runas_fail(126, "cannot become uid %lu gid %lu: %s", uid, gid, strerror(errno));
	if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid ||
	    setuid(0) == 0)
		runas_fail(126, "could not drop privileges to uid %lu", uid);
	if (chdir(cwd) == -1)
		runas_fail(1, "cwd %s: %s", cwd, strerror(errno));
	if (fcntl(RUNAS_REPORT_FD, F_SETFD, FD_CLOEXEC) == -1)
		runas_fail(126, "fcntl: %s", strerror(errno));
	execve(path, jargv, jenv);
	runas_fail(errno == ENOENT ? 127 : 126, "cannot execute %s: %s", path, strerror(errno));
}

static int
child_spawn(struct child *c, const char *cwd)
{
	struct run *r = c->r;
	char *const *env = r->spec.env != NULL ? r->spec.env : exec_default_env;
	char *const *argv = r->spec.argv, **tramp = NULL;
	const char *path = c->path;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int err, report_w = -1;

	if (r->spec.as_user) {
		if (runas_prepare(c, cwd, &report_w, &tramp) == -1)
			return -1;
		/* The privileged trampoline gets no environment: nothing of the user's. */
		path = RUNAS_SELF;
		argv = tramp;
		env = exec_empty_env;
	}
	if (c->cg_procs != -1) {
		/* What posix_spawn does below, and into the cgroup before the exec. */
		struct spawn_req q = { path, argv, env, c->in, c->out.wfd, c->err.wfd, report_w,
				       c->report != -1 ? NULL : cwd, c->cg_procs, true };

		err = spawn_into(&q, &c->pid);
		fd_close(&c->cg_procs);
	} else if ((err = posix_spawn_file_actions_init(&fa)) == 0) {
		if ((err = posix_spawnattr_init(&attr)) != 0) {
			posix_spawn_file_actions_destroy(&fa);
			return run_fail(r, 126, xprintf("posix_spawn: %s", strerror(err)));
		}
		err = spawn_actions(&fa, c, cwd);
		if (err == 0 && report_w != -1)
			err = posix_spawn_file_actions_adddup2(&fa, report_w, RUNAS_REPORT_FD);
		if (err == 0)
			err = exec_spawn_attrs(&attr, true);
		if (err == 0)
			err = posix_spawn(&c->pid, path, &fa, &attr, argv, env);
		posix_spawnattr_destroy(&attr);
		posix_spawn_file_actions_destroy(&fa);
	}
	fd_close(&c->out.wfd);
	fd_close(&c->err.wfd);
	fd_close(&report_w);
	strv_free(tramp);
	if (err != 0)
		return run_fail(r, err == ENOENT ? 127 : 126,
		                xprintf("cannot execute %s: %s", c->path, strerror(err)));
	/* At once: a taskd killed from now on leaves the next one a record of it. */
	if (r->spec.track_path != NULL) {
		if (leftover_record(r->spec.track_path, c->pid, r->res.started_at) == 0)
			c->tracked = true;
		else
			log_warn("job %llu: cannot record its process in %s",
				 (unsigned long long)r->spec.job_id, r->spec.track_path);
	}
	if (c->report != -1 && runas_check(c) == -1)
		return -1;
	r->res.pid = c->pid;
	/* Priority as nice: lowering it needs privilege, so EPERM/EACCES is not an error. */
	if (r->spec.nice != 0 && setpriority(PRIO_PROCESS, (id_t)c->pid, r->spec.nice) == -1 &&
	    errno != EPERM && errno != EACCES)
		log_warn("setpriority %d for job %llu", r->spec.nice,
			 (unsigned long long)r->spec.job_id);
	atomic_store(&r->live_pid, (int)c->pid);
	if (r->spawned != NULL)
		r->spawned(r, r->spawned_arg);
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	/* pidfd_open sets close-on-exec itself. */
	if (c->pidfd == -1)
		log_warn("pidfd_open %d (polling instead)", (int)c->pid);
	return 0;
}

/* --- supervise -------------------------------------------------------- */

static void
write_all(struct stream *s, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(s->file, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1) {
			log_warn("write %s", s->path);
			fd_close(&s->file);
			*s->truncated = true;
			return;
		}
		p += w;
		n -= (size_t)w;
	}
}

/*
 * Count n bytes, write what fits under max_output and (both streams
 * together) max_kept, none once quiet; drop the rest.
 */
static void
stream_keep(struct child *c, struct stream *s, size_t n)
{
	uint64_t max = c->r->spec.max_output, total = c->r->spec.max_kept;
	uint64_t kept = c->out.kept + c->err.kept;
	size_t keep = n;

	*s->bytes += n;
	if (max > 0 && keep > max - s->kept)
		keep = (size_t)(max - s->kept);
	if (total > 0 && keep > total - kept)
		keep = (size_t)(total - kept);
	if (atomic_load(&c->r->quiet))
		keep = 0;
	if (keep < n)
		*s->truncated = true;
	if (keep > 0 && s->file != -1)
		write_all(s, c->buf, keep);
	s->kept += keep;
}

/* One read; 1 if data came, 0 if nothing (EAGAIN), -1 at EOF or error. */
static int
stream_read(struct child *c, struct stream *s)
{
	ssize_t n;

	if (s->rfd == -1)
		return -1;
	n = read(s->rfd, c->buf, EXEC_BUFSZ);
	if (n > 0) {
		stream_keep(c, s, (size_t)n);
		return 1;
	}
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n == -1)
		log_warn("read output of job %llu", (unsigned long long)c->r->spec.job_id);
	fd_close(&s->rfd);
	return -1;
}

/*
 * After the leader exited: take what is in the pipe now and stop, even if
 * a grandchild still holds the write end (bounded, never blocks).
 */
static void
stream_drain(struct child *c, struct stream *s)
{
	int i;

	for (i = 0; i < EXEC_DRAIN_MAX; i++)
		if (stream_read(c, s) != 1)
			break;
	fd_close(&s->rfd);
}

/*
 * The group, and the leader by pid in case it moved to another group.
 * Both are safe while the leader is unreaped. In a cgroup, every process
 * in it too: those that left the group (setsid) and their children.
 */
static void
child_signal(struct child *c, int sig)
{
	if (kill(-c->pid, sig) == -1 && errno != ESRCH)
		log_warn("kill -%d -%d", sig, (int)c->pid);
	kill(c->pid, sig);
	if (c->cgroup != NULL && sig != SIGKILL)
		cg_signal(c->cgroup, sig);
}

static void
child_kill(struct child *c)
{
	c->killed = true;
	child_signal(c, SIGKILL);
	if (c->cgroup != NULL && cg_kill(c->cgroup) == -1)
		log_warn("kill the cgroup of job %llu", (unsigned long long)c->r->spec.job_id);
}

/* A frozen cgroup thawed (its processes see the signals sent meanwhile). */
static void
child_thaw(struct child *c)
{
	if (!c->frozen)
		return;
	c->frozen = false;
	if (cg_freeze(c->cgroup, false) == -1) {
		log_warn("thaw the cgroup of job %llu", (unsigned long long)c->r->spec.job_id);
		child_signal(c, SIGKILL); /* never leave it frozen for good */
	}
}

/* Timeout or cancel: SIGTERM (and SIGCONT) to the group; the first reason wins. */
static void
child_stop(struct child *c, enum run_status why, double now)
{
	double grace = c->r->spec.kill_grace;

	if (c->stopping)
		return;
	c->stopping = true;
	c->why = why;
	child_signal(c, SIGTERM);
	child_signal(c, SIGCONT); /* a stopped job must see its SIGTERM */
	child_thaw(c);
	c->suspended = false;
	if (!(grace > 0)) {
		child_kill(c);
		return;
	}
	c->kill_at = now + grace;
}

/*
 * run_suspend asked to stop or continue the command. In its own cgroup it
 * is frozen and thawed (cgroup.freeze): every process of it, whatever its
 * group, and none of them is told (a shell's job control or a SIGCONT
 * handler sees nothing). Without one, or without the freezer, its group
 * gets SIGSTOP and SIGCONT. The time it was stopped moves its deadline on.
 * Once it is being stopped for good (timeout, cancel), nothing more.
 */
static void
child_control(struct child *c, double now)
{
	bool want = atomic_load(&c->r->suspend);

	if (c->stopping || want == c->suspended)
		return;
	c->suspended = want;
	if (want) {
		if (c->cgroup != NULL && cg_freeze(c->cgroup, true) == 0)
			c->frozen = true;
		else
			child_signal(c, SIGSTOP);
		c->suspended_since = now;
		return;
	}
	if (c->frozen)
		child_thaw(c);
	else
		child_signal(c, SIGCONT);
	if (c->deadline > 0)
		c->deadline += now - c->suspended_since;
}

/* A wake-up on the run's eventfd: a cancel, or a suspend or resume. */
static void
child_wakeup(struct child *c, double now)
{
	uint64_t v;

	if (run_cancelled(c->r)) {
		child_stop(c, RUN_CANCELLED, now);
		return;
	}
	/* Drained: read again at the next run_suspend (the atomic says what it wants). */
	if (read(c->r->cancel_fd, &v, sizeof v) == -1 && errno != EAGAIN)
		log_warn("read the control eventfd of job %llu", (unsigned long long)c->r->spec.job_id);
	child_control(c, now);
}

static void
child_deadlines(struct child *c, double now)
{
	if (!c->stopping && !c->suspended && c->deadline > 0 && now >= c->deadline)
		child_stop(c, RUN_TIMEOUT, now);
	if (c->stopping && !c->killed && now >= c->kill_at)
		child_kill(c);
}

static int
poll_timeout(const struct child *c, double now)
{
	double due = 0, ms;

	if (!c->stopping && !c->suspended && c->deadline > 0)
		due = c->deadline;
	else if (c->stopping && !c->killed)
		due = c->kill_at;
	ms = due > 0 ? ceil((due - now) * 1000) : -1;
	if (ms > INT_MAX)
		ms = INT_MAX;
	if (c->pidfd == -1 && (ms < 0 || ms > EXEC_NOPIDFD_MS))
		ms = EXEC_NOPIDFD_MS;
	return ms < 0 ? -1 : (int)ms;
}

/* Has the leader exited (it is a zombie now, not reaped)? */
static bool
child_exited(const struct child *c, const struct pollfd *pidpfd)
{
	siginfo_t si;

	if (c->pidfd != -1)
		return pidpfd->revents != 0;
	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) == -1)
		return errno != EINTR;
	return si.si_pid != 0;
}

static void
child_supervise(struct child *c)
{
	struct pollfd pfd[4];
	double now;

	/* Suspended before it was spawned: at once. */
	child_control(c, clock_now(CLOCK_MONOTONIC));
	for (;;) {
		now = clock_now(CLOCK_MONOTONIC);
		child_deadlines(c, now);
		pfd[0] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
		pfd[1] = (struct pollfd){.fd = c->out.rfd, .events = POLLIN};
		pfd[2] = (struct pollfd){.fd = c->err.rfd, .events = POLLIN};
		pfd[3] =
		    (struct pollfd){.fd = c->stopping ? -1 : c->r->cancel_fd, .events = POLLIN};
		if (poll(pfd, 4, poll_timeout(c, now)) == -1) {
			if (errno != EINTR) {
				log_warn("poll");
				usleep(EXEC_NOPIDFD_MS * 1000);
			}
			continue;
		}
		if (pfd[1].revents != 0)
			stream_read(c, &c->out);
		if (pfd[2].revents != 0)
			stream_read(c, &c->err);
		if (pfd[3].revents != 0)
			child_wakeup(c, clock_now(CLOCK_MONOTONIC));
		if (child_exited(c, &pfd[0]))
			return;
	}
}

static void
child_result(struct child *c, int status, const struct rusage *ru)
{
	struct run_result *res = &c->r->res;

	if (WIFEXITED(status)) {
		res->exit_code = WEXITSTATUS(status);
		res->signal = 0;
		res->status = RUN_EXITED;
	} else {
		res->exit_code = -1;
		res->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		res->status = RUN_SIGNALED;
	}
	if (c->stopping)
		res->status = c->why;
	/*
	 * Caveat: ru_maxrss has the spawning process's RSS as a floor. The
	 * posix_spawn child shares our mm until exec, and the kernel charges
	 * that mm's high-water mark to the child at exec.
	 */
	res->cpu_user = clock_tv_seconds(&ru->ru_utime);
	res->cpu_sys = clock_tv_seconds(&ru->ru_stime);
	res->max_rss_kb = ru->ru_maxrss;
}

static void
child_reap(struct child *c)
{
	struct rusage ru;
	char path[64];
	double wait;
	int status = 0;
	pid_t p;

	/*
	 * Stragglers of a stopped job go now, while the group id is still
	 * ours. (In a cgroup, what a job that ended by itself left behind goes
	 * when its cgroup is removed: the job is over when its command is.)
	 */
	if (c->stopping)
		child_kill(c);
	/* The zombie still has its scheduler statistics: time it waited for a CPU. */
	snprintf(path, sizeof path, "/proc/%d/schedstat", (int)c->pid);
	wait = run_schedstat_wait(path);
	do
		p = wait4(c->pid, &status, 0, &ru);
	while (p == -1 && errno == EINTR);
	stream_drain(c, &c->out);
	stream_drain(c, &c->err);
	if (p == -1) {
		log_warn("wait4 %d", (int)c->pid);
		run_fail(c->r, 1, xprintf("wait4: %s", strerror(errno)));
		return;
	}
	child_result(c, status, &ru);
	c->r->res.runq_wait = wait > 0 ? wait : 0;
}

/*
 * The whole tree's CPU and peak memory from its cgroup, which then goes
 * with anything the command left in it (killed by cg_remove; a spawn that
 * failed left it empty). Only what the result needs is read: a few file
 * reads per job are the cost of a cgroup.
 */
static void
child_cgroup_done(struct child *c)
{
	struct run_result *res = &c->r->res;
	struct cg_usage u;

	if (cg_read_final(c->cgroup, &u) == 0 && res->status != RUN_FAILED) {
		if (u.cpu_user + u.cpu_sys > res->cpu_user + res->cpu_sys) {
			res->cpu_user = u.cpu_user;
			res->cpu_sys = u.cpu_sys;
		}
		res->mem_peak_kb = u.mem_peak_kb;
	}
	if (cg_remove(c->cgroup, 2.0) == -1)
		log_warn("cannot remove cgroup %s of job %llu", c->cgroup,
			 (unsigned long long)c->r->spec.job_id);
}

void
exec_run(struct run *r)
{
	const char *cwd = r->spec.cwd != NULL ? r->spec.cwd : "/";
	struct child c;
	double t0 = clock_now(CLOCK_MONOTONIC), t_spawned;

	r->res.started_at = clock_now(CLOCK_REALTIME);
	child_init(&c, r);
	if (r->spec.timeout > 0)
		c.deadline = t0 + r->spec.timeout;
	if (child_prepare(&c, cwd) == 0 && child_spawn(&c, cwd) == 0) {
		t_spawned = clock_now(CLOCK_MONOTONIC);
		child_supervise(&c);
		/* Its own lifetime, without the runner's work before and after (router.h). */
		r->res.cmd_wall = clock_now(CLOCK_MONOTONIC) - t_spawned;
		child_reap(&c);
	}
	child_close(&c);
	if (c.cgroup != NULL)
		child_cgroup_done(&c);
	r->res.finished_at = clock_now(CLOCK_REALTIME);
	r->res.wall = clock_now(CLOCK_MONOTONIC) - t0;
}
