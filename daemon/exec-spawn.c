/*
 * Preparing and spawning a command (exec_run, exec.c): checking its cwd and
 * finding its program, its input file and output pipes (every fd
 * O_CLOEXEC, kept off 0..2), its cgroup, the spawn itself (posix_spawn in
 * its own session, or spawn_into for a cgroup), recording it for a restart
 * (leftover.h), and running it as its submitter: the --run-as trampoline
 * (exec_runas_main) that drops to the user's ids and reports a failure to
 * exec back on a pipe.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "exec.h"
#include "exec-private.h"
#include "leftover.h"
#include "log.h"
#include "spawncg.h"
#include "xmalloc.h"

#define EXEC_DEFAULT_PATH TASKD_DEFAULT_PATH

static char *const exec_default_env[] = {"PATH=" EXEC_DEFAULT_PATH, NULL};

/* --- setup ------------------------------------------------------------ */

/* Record a start failure; takes ownership of msg. Returns -1. */
int
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

void
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

void
fd_close(int *fd)
{
	if (*fd != -1)
		close(*fd);
	*fd = -1;
}

void
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

int
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

int
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
