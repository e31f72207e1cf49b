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
 * Preparing and spawning the command (its files, its cgroup, posix_spawn,
 * running as its submitter): exec-spawn.c; this file supervises it to its
 * end and reaps it.
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
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builtin.h"
#include "exec.h"
#include "exec-private.h"
#include "clock.h"
#include "log.h"
#include "modules.h"
#include "spawncg.h"
#include "xmalloc.h"

#define EXEC_DRAIN_MAX 64  /* reads per stream once the leader exited */
#define EXEC_NOPIDFD_MS 10 /* poll period when pidfd_open failed */

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
		child_kill(c); /* never leave it frozen for good: cgroup.kill ends frozen ones too */
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
