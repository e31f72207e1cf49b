/*
 * The worker process of the process pool, and the messages it exchanges
 * with the daemon.
 *
 * What runs where. worker_main() is the whole life of a `taskd --worker FD
 * INDEX DAEMONPID PADDING` process, started by ppool.c with posix_spawn. It
 * is single-threaded: it says "ready", then reads one message at a time from
 * its SOCK_SEQPACKET socket (FD) and runs each job right here with
 * run_execute(): a module type's job (the built-in ones too) runs in this
 * process, a command is spawned by exec_run(), which waits for that one
 * pid with wait4 (never waitpid(-1)). After each job it sends "done" with
 * the result and its own current RSS. It loads the daemon's modules when it
 * starts (from the files the daemon passes it open), so a module job that
 * crashes takes this worker down, never the daemon.
 *
 * Who owns what. The worker owns the struct run it builds from a "run"
 * message, and frees it after "done". The only state shared with the signal
 * handler is the current job id and its cancel eventfd (atomics).
 *
 * How they talk. JSON, one message per datagram; a message larger than
 * WORKER_MSG_MAX goes into a sealed memfd passed with SCM_RIGHTS, announced
 * by {"t":"memfd","len":N}. Cancel is SIGUSR1, queued with the job id as
 * its value (a plain kill means "the current job"); the handler writes the
 * run's cancel eventfd: exec_run stops the job's group as for a timeout, a
 * module job sees taskd_stop() say so. SIGUSR2, queued with the job id in
 * the same way, tells it to keep no more of the job's output
 * (run_stop_output: its owner's output quota is used up). The worker dies
 * with the daemon: PR_SET_PDEATHSIG(SIGKILL),
 * and EOF on the socket while idle.
 *
 * The messages' encoders and strict decoders are in worker-msg.c, used on
 * both sides; the daemon trusts nothing a worker sends that has not been
 * through them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin.h"
#include "clock.h"
#include "exec.h"
#include "log.h"
#include "modules.h"
#include "worker.h"
#include "xmalloc.h"

#define WORKER_SPEC_MAX (256u << 20) /* what a worker accepts from the daemon */
#define WORKER_CHILD_FD 3            /* the socket's fd in the worker */
#define WORKER_TITLE_PAD 64          /* bytes of argv padding for the worker's title */
#define WORKER_PROGRESS_EVERY 0.1    /* seconds between progress messages of a job */

extern char **environ;

/* Shared with the SIGUSR1, SIGUSR2 and WORKER_SIGSUSPEND handlers. */
static _Atomic uint64_t worker_job;    /* job being run, 0 when idle */
static _Atomic uint64_t worker_cancel; /* last job id a cancel was asked for */
static _Atomic uint64_t worker_suspend; /* last suspend/resume asked: (job id << 1) | suspend */
static _Atomic uint64_t worker_quiet;  /* last job id whose output was to be stopped */
static struct run *volatile worker_current; /* the run in progress, for the handlers */

/* --- transport -------------------------------------------------------- */

static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int
send_datagram(int fd, const char *buf, size_t len, int passfd)
{
	char cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
	struct cmsghdr *cm;
	ssize_t n;

	if (passfd != -1) {
		memset(cbuf, 0, sizeof cbuf);
		mh.msg_control = cbuf;
		mh.msg_controllen = sizeof cbuf;
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(cm), &passfd, sizeof(int));
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if ((size_t)n != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/* A large message: a sealed memfd holding it, announced by a small datagram. */
static int
send_memfd(int fd, const char *buf, size_t len)
{
	int mfd, saved, rc = -1;
	char head[64];

	mfd = memfd_create("taskd-msg", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (mfd == -1)
		return -1;
	if (write_all(mfd, buf, len) == 0 &&
	    fcntl(mfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) ==
	        0) {
		snprintf(head, sizeof head, "{\"t\":\"memfd\",\"len\":%zu}", len);
		rc = send_datagram(fd, head, strlen(head), mfd);
	}
	saved = errno;
	close(mfd);
	errno = saved;
	return rc;
}

int
worker_send(int fd, const json_t *msg)
{
	char *buf;
	size_t len;
	int rc, saved;

	buf = json_dumps(msg, JSON_COMPACT);
	if (buf == NULL) {
		errno = EINVAL;
		return -1;
	}
	len = strlen(buf);
	if (len <= WORKER_MSG_MAX)
		rc = send_datagram(fd, buf, len, -1);
	else
		rc = send_memfd(fd, buf, len);
	saved = errno;
	free(buf);
	errno = saved;
	return rc;
}

/* The fd passed with a datagram, or -1. Sets *bad if the control data is not one fd. */
static int
received_fd(struct msghdr *mh, bool *bad)
{
	struct cmsghdr *cm;
	int fd = -1, n, i, fds[8];

	for (cm = CMSG_FIRSTHDR(mh); cm != NULL; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) {
			*bad = true;
			continue;
		}
		n = (int)((cm->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		if (n > 8)
			n = 8;
		memcpy(fds, CMSG_DATA(cm), (size_t)n * sizeof(int));
		for (i = 0; i < n; i++) {
			if (fd == -1) {
				fd = fds[i];
				continue;
			}
			close(fds[i]);
			*bad = true;
		}
	}
	if (mh->msg_flags & MSG_CTRUNC)
		*bad = true;
	return fd;
}

static json_t *
parse(const char *buf, size_t len, char **error)
{
	json_error_t je;
	json_t *msg;

	msg = json_loadb(buf, len, 0, &je);
	if (msg == NULL)
		*error = xprintf("malformed message: %s", je.text);
	return msg;
}

/* Read a sealed memfd of exactly len bytes (len <= max checked by the caller). */
static json_t *
read_memfd(int mfd, size_t len, char **error)
{
	struct stat st;
	char *buf;
	ssize_t n;
	size_t got = 0;
	json_t *msg;
	int seals = fcntl(mfd, F_GET_SEALS);

	if (seals == -1 ||
	    (seals & (F_SEAL_WRITE | F_SEAL_SHRINK)) != (F_SEAL_WRITE | F_SEAL_SHRINK) ||
	    fstat(mfd, &st) == -1 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != len) {
		*error = xstrdup("bad memfd message");
		return NULL;
	}
	buf = xmalloc(len + 1);
	while (got < len) {
		n = pread(mfd, buf + got, len - got, (off_t)got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			*error = xprintf("read memfd: %s", n == 0 ? "short" : strerror(errno));
			free(buf);
			return NULL;
		}
		got += (size_t)n;
	}
	msg = parse(buf, len, error);
	free(buf);
	return msg;
}

/* A {"t":"memfd","len":N} announcement: its len, or -1 if the message is not one. */
static long long
memfd_len(const char *buf, size_t len)
{
	json_t *m = json_loadb(buf, len, 0, NULL);
	const json_t *t, *l;
	long long n = -1;

	if (m == NULL)
		return -1;
	t = json_object_get(m, "t");
	l = json_object_get(m, "len");
	if (json_is_string(t) && strcmp(json_string_value(t), "memfd") == 0 && json_is_integer(l) &&
	    json_integer_value(l) >= 0)
		n = json_integer_value(l);
	json_decref(m);
	return n;
}

static json_t *
recv_fail(char *buf, int fd, char **error, char *msg)
{
	free(buf);
	if (fd != -1)
		close(fd);
	*error = msg;
	return NULL;
}

json_t *
worker_recv(int fd, size_t max, char **error)
{
	char cbuf[CMSG_SPACE(sizeof(int) * 4)];
	char *buf = xmalloc(WORKER_MSG_MAX + 1);
	struct iovec iov = {.iov_base = buf, .iov_len = WORKER_MSG_MAX + 1};
	struct msghdr mh = {
	    .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
	bool bad = false;
	long long len;
	ssize_t n;
	int mfd;
	json_t *msg;

	*error = NULL;
	memset(cbuf, 0, sizeof cbuf);
	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
	while (n == -1 && errno == EINTR);
	if (n == -1 && errno == ECONNRESET)
		return recv_fail(buf, -1, error, xstrdup("eof")); /* the peer is gone */
	if (n == -1)
		return recv_fail(buf, -1, error,
		                 xstrdup(errno == EAGAIN ? "again" : strerror(errno)));
	mfd = received_fd(&mh, &bad);
	if (n == 0)
		return recv_fail(buf, mfd, error, xstrdup("eof"));
	if (bad)
		return recv_fail(buf, mfd, error, xstrdup("unexpected control data"));
	if ((mh.msg_flags & MSG_TRUNC) || (size_t)n > WORKER_MSG_MAX || (size_t)n > max)
		return recv_fail(buf, mfd, error, xprintf("message too large (max %zu)", max));
	if (mfd == -1) {
		msg = parse(buf, (size_t)n, error);
		free(buf);
		return msg;
	}
	len = memfd_len(buf, (size_t)n);
	free(buf);
	if (len < 0)
		return recv_fail(NULL, mfd, error,
		                 xstrdup("fd passed with a message that is not memfd"));
	if ((unsigned long long)len > max)
		return recv_fail(NULL, mfd, error,
		                 xprintf("message too large (%lld bytes, max %zu)", len, max));
	msg = read_memfd(mfd, (size_t)len, error);
	close(mfd);
	return msg;
}

/* --- the worker process ------------------------------------------------ */

/*
 * SIGUSR1 (cancel) and SIGUSR2 (keep no more output) of the job named by
 * the queued value (the current job for a plain kill).
 */
static void
worker_signal(int sig, siginfo_t *si, void *ctx)
{
	uint64_t job = atomic_load(&worker_job);
	struct run *r = worker_current;

	(void)ctx;
	if (si->si_code == SI_QUEUE)
		job = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
	atomic_store(sig == SIGUSR1 ? &worker_cancel : &worker_quiet, job);
	if (job == 0 || job != atomic_load(&worker_job) || r == NULL)
		return;
	/* run_cancel: an atomic store and a write(2), both async-signal-safe; keeps errno. */
	if (sig == SIGUSR1)
		run_cancel(r);
	else
		run_stop_output(r);
}

/* WORKER_SIGSUSPEND: stop or continue the command of the job named by the queued value. */
static void
worker_sigsuspend(int sig, siginfo_t *si, void *ctx)
{
	struct run *r = worker_current;
	uint64_t v;

	(void)sig;
	(void)ctx;
	if (si->si_code != SI_QUEUE)
		return;
	v = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
	atomic_store(&worker_suspend, v);
	/* run_suspend: atomic stores and a write(2), async-signal-safe; keeps errno. */
	if ((v >> 1) != 0 && (v >> 1) == atomic_load(&worker_job) && r != NULL)
		run_suspend(r, (v & 1) != 0);
}

/* The process title area: argv[0] up to the end of the last argument. */
struct title {
	char *start;
	size_t len;
};

static void title_set(struct title *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
title_set(struct title *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->len < 2)
		return;
	memset(t->start, 0, t->len);
	va_start(ap, fmt);
	n = vsnprintf(t->start, t->len - 1, fmt, ap);
	va_end(ap);
	(void)n;
}

static void
setup_signals(void)
{
	struct sigaction sa;
	sigset_t none;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = worker_signal;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_sigaction = worker_sigsuspend;
	sigaction(WORKER_SIGSUSPEND, &sa, NULL);
	/* Terminal and reload signals are the daemon's business; SIGTERM still kills. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Only 0, 1, 2, the socket and the nmods module files (MODULE_WORKER_FD
 * on, right after the socket at 3; loaded, then closed, next) stay open;
 * stdin and stdout read/write /dev/null. The socket came through
 * posix_spawn's dup2, which clears close-on-exec: set it again, or every
 * command this worker runs would inherit it (and could forge messages to
 * the daemon with it).
 */
static int
setup_fds(int sock, int nmods)
{
	unsigned int last = nmods > 0 ? (unsigned)(MODULE_WORKER_FD + nmods - 1) : (unsigned)sock;
	int null;

	if (fcntl(sock, F_SETFD, FD_CLOEXEC) == -1)
		return -1;
	if (nmods > 0 && sock != WORKER_CHILD_FD)
		return -1; /* the modules are right after fd 3 */
	if (sock > 3)
		close_range(3, (unsigned)sock - 1, 0);
	close_range(last + 1, ~0U, 0);
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null == -1)
		return -1;
	dup2(null, 0);
	dup2(null, 1);
	if (null > 2)
		close(null);
	return 0;
}

static long
current_rss_kb(void)
{
	unsigned long size, resident;
	FILE *f = fopen("/proc/self/statm", "re");
	long kb = -1;

	if (f == NULL)
		return -1;
	if (fscanf(f, "%lu %lu", &size, &resident) == 2)
		kb = (long)(resident * (unsigned long)sysconf(_SC_PAGESIZE) / 1024);
	fclose(f);
	return kb;
}

static int
send_msg(int sock, json_t *msg)
{
	int rc = worker_send(sock, msg);

	json_decref(msg);
	return rc;
}

/* Tell the daemon the command's pid: if this worker dies, it kills the job's group. */
static void
worker_spawned(struct run *r, void *arg)
{
	int sock = *(int *)arg;

	json_t *m = json_pack("{s:s,s:I,s:i}", "t", "started", "job", (json_int_t)r->spec.job_id,
			      "pid", (int)r->res.pid);

	/* It runs without the cgroup it was given: show says so while it runs. */
	if (r->res.cgroup_error != NULL)
		json_object_set_new(m, "cgroup_error", json_string(r->res.cgroup_error));
	if (send_msg(sock, m) == -1)
		log_warnx("worker: cannot report the pid of job %" PRIu64, r->spec.job_id);
}

/* A module job's progress, to the daemon: at most one message per WORKER_PROGRESS_EVERY. */
struct progress_out {
	int sock;
	double last; /* CLOCK_MONOTONIC of the last one sent, 0 = none yet */
};

static void
worker_progress(struct run *r, const char *message, void *arg)
{
	struct progress_out *p = arg;
	double now = clock_now(CLOCK_MONOTONIC);

	if (p->last > 0 && now - p->last < WORKER_PROGRESS_EVERY)
		return;
	p->last = now;
	if (send_msg(p->sock, worker_encode_progress(r->spec.job_id, message)) == -1)
		log_warnx("worker: cannot report the progress of job %" PRIu64, r->spec.job_id);
}

/* One "run" message: execute it, answer "done". -1 if the daemon is gone. */
static int
worker_run(int sock, int index, struct title *t, const json_t *msg)
{
	struct progress_out po = {.sock = sock};
	struct run *r;
	char *error = NULL;
	int rc;

	r = run_new(true);
	rc = worker_decode_spec(msg, &r->spec, &error);
	if (rc == -2) {
		/* A type this worker has not loaded: the job fails, the worker goes on. */
		r->res.status = RUN_FAILED;
		r->res.exit_code = 1;
		r->res.error = error;
		rc = send_msg(sock, worker_encode_result(r->spec.job_id, &r->res, current_rss_kb()));
		run_free(r);
		return rc;
	}
	if (rc == -1) {
		log_warnx("worker %d: bad run message: %s", index, error);
		free(error);
		run_free(r);
		return -2;
	}
	title_set(t, "taskd: worker %d busy job %" PRIu64, index, r->spec.job_id);
	atomic_store(&worker_job, r->spec.job_id);
	worker_current = r;
	/* A cancel, a suspend or a stop of its output that came before the run was published. */
	if (atomic_load(&worker_cancel) == r->spec.job_id)
		run_cancel(r);
	if ((atomic_load(&worker_suspend) >> 1) == r->spec.job_id)
		run_suspend(r, (atomic_load(&worker_suspend) & 1) != 0);
	if (r->spec.quiet || atomic_load(&worker_quiet) == r->spec.job_id)
		run_stop_output(r);
	r->spawned = worker_spawned;
	r->spawned_arg = &sock;
	r->progress_cb = worker_progress;
	r->progress_arg = &po;
	run_execute(r);
	worker_current = NULL;
	atomic_store(&worker_job, 0);
	rc = send_msg(sock, worker_encode_result(r->spec.job_id, &r->res, current_rss_kb()));
	run_free(r);
	title_set(t, "taskd: worker %d idle", index);
	return rc;
}

/* Dispatch one message: 0 go on, 1 exit 0, -1 exit 1. */
static int
worker_handle(int sock, int index, struct title *t, const json_t *msg)
{
	const char *type = json_string_value(json_object_get(msg, "t"));

	if (type != NULL && strcmp(type, "exit") == 0)
		return 1;
	if (type != NULL && strcmp(type, "run") == 0) {
		switch (worker_run(sock, index, t, msg)) {
		case 0:
			return 0;
		case -1:
			return 1; /* cannot answer: the daemon is gone */
		default:
			return -1;
		}
	}
	log_warnx("worker %d: unexpected message \"%s\"", index, type != NULL ? type : "?");
	return -1;
}

/* Wait until the socket is readable (worker_recv does not block). */
static int
wait_readable(int sock)
{
	struct pollfd pfd = {.fd = sock, .events = POLLIN};
	int n;

	do
		n = poll(&pfd, 1, -1);
	while (n == -1 && errno == EINTR);
	return n;
}

static int
worker_loop(int sock, int index, struct title *t)
{
	char *error = NULL;
	json_t *msg;
	int rc;

	if (send_msg(sock, json_pack("{s:s,s:i}", "t", "ready", "pid", (int)getpid())) == -1)
		return 0;
	for (;;) {
		if (wait_readable(sock) == -1)
			return 1;
		msg = worker_recv(sock, WORKER_SPEC_MAX, &error);
		if (msg == NULL && strcmp(error, "again") == 0) {
			free(error);
			error = NULL;
			continue;
		}
		if (msg == NULL) {
			rc = strcmp(error, "eof") == 0 ? 0 : 1;
			if (rc != 0)
				log_warnx("worker %d: %s", index, error);
			free(error);
			return rc;
		}
		rc = worker_handle(sock, index, t, msg);
		json_decref(msg);
		if (rc != 0)
			return rc > 0 ? 0 : 1;
	}
}

static long
parse_num(const char *s)
{
	char *end;
	long v;

	if (s == NULL)
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		return -1;
	return v;
}

/*
 * posix_spawn `self --worker 3 INDEX DAEMONPID PADDING MODULE...` with the
 * child end on fd 3 and the module files on MODULE_WORKER_FD on (they are
 * kept at fds >= 100 in the daemon, and child above them: no dup2 here
 * overwrites a source of a later one).
 */
static int
spawn_process(const char *self, int child, int index, pid_t *pid)
{
	char idx[16], ppid[16], fdstr[16], pad[WORKER_TITLE_PAD + 1];
	char *argv[7 + MODULE_MAX] = {"taskd", "--worker", fdstr, idx, ppid, pad, NULL};
	const char *const *paths;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	const int *fds;
	size_t i, n = module_worker_fds(&fds, &paths);
	int err;

	snprintf(fdstr, sizeof fdstr, "%d", WORKER_CHILD_FD);
	snprintf(idx, sizeof idx, "%d", index);
	snprintf(ppid, sizeof ppid, "%d", (int)getpid());
	memset(pad, ' ', WORKER_TITLE_PAD);
	pad[WORKER_TITLE_PAD] = '\0';
	if ((err = posix_spawn_file_actions_init(&fa)) != 0)
		return err;
	if ((err = posix_spawnattr_init(&attr)) != 0) {
		posix_spawn_file_actions_destroy(&fa);
		return err;
	}
	err = posix_spawn_file_actions_adddup2(&fa, child, WORKER_CHILD_FD);
	for (i = 0; i < n && err == 0; i++) {
		err = posix_spawn_file_actions_adddup2(&fa, fds[i], MODULE_WORKER_FD + (int)i);
		argv[6 + i] = (char *)paths[i];
	}
	argv[6 + n] = NULL;
	if (err == 0)
		err = exec_spawn_attrs(&attr, false);
	if (err == 0)
		err = posix_spawn(pid, self, &fa, &attr, argv, environ);
	posix_spawnattr_destroy(&attr);
	posix_spawn_file_actions_destroy(&fa);
	return err;
}

/*
 * The child end must not already be WORKER_CHILD_FD (dup2 onto itself
 * keeps CLOEXEC), nor one of the fds the module files go to.
 */
static int
child_end(int fd)
{
	const char *const *paths;
	const int *fds;
	int nfd, top = MODULE_WORKER_FD + (int)module_worker_fds(&fds, &paths);

	if (fd < WORKER_CHILD_FD || fd >= top)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, top);
	close(fd);
	return nfd;
}

int
worker_spawn(const char *self, int sock, int index, pid_t *pid)
{
	int err;

	sock = child_end(sock);
	err = sock == -1 ? errno : spawn_process(self, sock, index, pid);
	if (sock != -1)
		close(sock);
	return err;
}

int
worker_main(int argc, char **argv)
{
	struct title t;
	long sock, index, parent;
	int nmods;

	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sock = parse_num(argc > 2 ? argv[2] : NULL);
	index = argc > 3 ? parse_num(argv[3]) : 0;
	parent = argc > 4 ? parse_num(argv[4]) : -1;
	/* The daemon died before PR_SET_PDEATHSIG took effect. */
	if (parent > 0 && getppid() != (pid_t)parent)
		return 1;
	if (sock < 0 || sock > INT_MAX || index < 0 || index > INT_MAX) {
		fprintf(stderr, "usage: taskd --worker FD [INDEX [DAEMONPID]]\n");
		return 2;
	}
	nmods = argc > 6 ? argc - 6 : 0;
	if (nmods > MODULE_MAX || setup_fds((int)sock, nmods) == -1)
		return 1;
	setup_signals();
	/* Before the title overwrites argv: the module paths are there. */
	module_worker_load(argv + 6, (size_t)nmods);
	t.start = argv[0];
	t.len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
	prctl(PR_SET_NAME, "taskd-worker");
	title_set(&t, "taskd: worker %ld idle", index);
	return worker_loop((int)sock, (int)index, &t);
}
