/*
 * The worker process of the process pool, and the messages it exchanges
 * with the daemon.
 *
 * What runs where. worker_main() is the whole life of a `taskd --worker FD
 * INDEX DAEMONPID PADDING` process, started by ppool.c with posix_spawn. It
 * is single-threaded: it says "ready", then reads one message at a time from
 * its SOCK_SEQPACKET socket (FD) and runs each job right here with
 * run_execute(): a built-in loops in this process, a command is spawned by
 * exec_run(), which waits for that one pid with wait4 (never waitpid(-1)).
 * After each job it sends "done" with the result and its own current RSS.
 *
 * Who owns what. The worker owns the struct run it builds from a "run"
 * message, and frees it after "done". The only state shared with the signal
 * handler is the current job id and its cancel eventfd (atomics).
 *
 * How they talk. JSON, one message per datagram; a message larger than
 * WORKER_MSG_MAX goes into a sealed memfd passed with SCM_RIGHTS, announced
 * by {"t":"memfd","len":N}. Cancel of a command is SIGUSR1, queued with the
 * job id as its value (a plain kill means "the current job"); the handler
 * writes the run's cancel eventfd and exec_run stops the job's group as for
 * a timeout. The worker dies with the daemon: PR_SET_PDEATHSIG(SIGKILL),
 * and EOF on the socket while idle.
 *
 * The encoders and strict decoders below are used on both sides; the daemon
 * trusts nothing a worker sends that has not been through them.
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
#include "exec.h"
#include "log.h"
#include "worker.h"
#include "xmalloc.h"

#define WORKER_SPEC_MAX (256u << 20) /* what a worker accepts from the daemon */
#define WORKER_NICE_MIN -20
#define WORKER_NICE_MAX 19
#define WORKER_SIGNAL_MAX 64

/* Shared with the SIGUSR1 handler. */
static _Atomic uint64_t worker_job;    /* job being run, 0 when idle */
static _Atomic uint64_t worker_cancel; /* last job id a cancel was asked for */
static struct run *volatile worker_current; /* the run in progress, for worker_usr1 */

/* --- encoding --------------------------------------------------------- */

static json_t *
str_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

/* json_real() refuses NaN and infinities; neither has a meaning here. */
static json_t *
real(double v)
{
	return json_real(isfinite(v) ? v : 0.0);
}

static json_t *
strv_json(char *const *v)
{
	json_t *a;
	size_t i;

	if (v == NULL)
		return json_null();
	a = json_array();
	for (i = 0; v[i] != NULL; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

json_t *
worker_encode_spec(const struct run_spec *s)
{
	json_t *m = json_object();

	json_object_set_new(m, "t", json_string("run"));
	json_object_set_new(m, "job", json_integer((json_int_t)s->job_id));
	json_object_set_new(m, "type", json_integer(s->type));
	json_object_set_new(m, "argv", strv_json(s->argv));
	json_object_set_new(m, "env", strv_json(s->env));
	json_object_set_new(m, "cwd", str_or_null(s->cwd));
	json_object_set_new(m, "out_path", str_or_null(s->out_path));
	json_object_set_new(m, "err_path", str_or_null(s->err_path));
	json_object_set_new(m, "timeout", real(s->timeout));
	json_object_set_new(m, "kill_grace", real(s->kill_grace));
	json_object_set_new(m, "max_output", json_integer((json_int_t)s->max_output));
	json_object_set_new(m, "nice", json_integer(s->nice));
	json_object_set_new(m, "as_user", json_boolean(s->as_user));
	json_object_set_new(m, "uid", json_integer((json_int_t)s->uid));
	json_object_set_new(m, "gid", json_integer((json_int_t)s->gid));
	json_object_set_new(m, "cgroup", str_or_null(s->cgroup));
	json_object_set_new(m, "memory", json_integer((json_int_t)s->limits.memory));
	json_object_set_new(m, "cpus", real(s->limits.cpus));
	json_object_set_new(m, "pids", json_integer((json_int_t)s->limits.pids));
	json_object_set_new(m, "track", str_or_null(s->track_path));
	return m;
}

json_t *
worker_encode_result(uint64_t job, const struct run_result *res, long rss_kb)
{
	json_t *m = json_object();

	json_object_set_new(m, "t", json_string("done"));
	json_object_set_new(m, "job", json_integer((json_int_t)job));
	json_object_set_new(m, "status", json_integer(res->status));
	json_object_set_new(m, "exit_code", json_integer(res->exit_code));
	json_object_set_new(m, "signal", json_integer(res->signal));
	json_object_set_new(m, "cpu_user", real(res->cpu_user));
	json_object_set_new(m, "cpu_sys", real(res->cpu_sys));
	json_object_set_new(m, "max_rss_kb", json_integer(res->max_rss_kb));
	json_object_set_new(m, "wall", real(res->wall));
	json_object_set_new(m, "runq_wait", real(res->runq_wait));
	json_object_set_new(m, "runq_wait", real(res->runq_wait));
	json_object_set_new(m, "started_at", real(res->started_at));
	json_object_set_new(m, "finished_at", real(res->finished_at));
	json_object_set_new(m, "out_bytes", json_integer((json_int_t)res->out_bytes));
	json_object_set_new(m, "err_bytes", json_integer((json_int_t)res->err_bytes));
	json_object_set_new(m, "out_truncated", json_boolean(res->out_truncated));
	json_object_set_new(m, "err_truncated", json_boolean(res->err_truncated));
	json_object_set_new(m, "pid", json_integer(res->pid));
	json_object_set_new(m, "mem_peak_kb", json_integer(res->mem_peak_kb));
	json_object_set_new(m, "cmd_wall", real(res->cmd_wall));
	json_object_set_new(m, "in_cgroup", json_boolean(res->in_cgroup));
	json_object_set_new(m, "result", str_or_null(res->result));
	json_object_set_new(m, "error", str_or_null(res->error));
	json_object_set_new(m, "cgroup_error", str_or_null(res->cgroup_error));
	json_object_set_new(m, "rss_kb", json_integer(rss_kb));
	return m;
}

/* --- decoding --------------------------------------------------------- */

/* A decoder: the first error wins, later field reads are no-ops. */
struct dec {
	const json_t *msg;
	char *error;
};

static void
dec_fail(struct dec *d, const char *key, const char *what)
{
	if (d->error == NULL)
		d->error = xprintf("\"%s\": %s", key, what);
}

static const json_t *
dec_get(struct dec *d, const char *key)
{
	const json_t *v;

	if (d->error != NULL)
		return NULL;
	v = json_object_get(d->msg, key);
	if (v == NULL)
		dec_fail(d, key, "missing");
	return v;
}

static json_int_t
dec_int(struct dec *d, const char *key, json_int_t min, json_int_t max)
{
	const json_t *v = dec_get(d, key);

	if (v == NULL)
		return 0;
	if (!json_is_integer(v)) {
		dec_fail(d, key, "not an integer");
		return 0;
	}
	if (json_integer_value(v) < min || json_integer_value(v) > max) {
		dec_fail(d, key, "out of range");
		return 0;
	}
	return json_integer_value(v);
}

/* A finite number >= 0 (integer or real). */
static double
dec_time(struct dec *d, const char *key)
{
	const json_t *v = dec_get(d, key);
	double x;

	if (v == NULL)
		return 0;
	if (!json_is_number(v)) {
		dec_fail(d, key, "not a number");
		return 0;
	}
	x = json_number_value(v);
	if (!isfinite(x) || x < 0) {
		dec_fail(d, key, "out of range");
		return 0;
	}
	return x;
}

static bool
dec_bool(struct dec *d, const char *key)
{
	const json_t *v = dec_get(d, key);

	if (v == NULL)
		return false;
	if (!json_is_boolean(v)) {
		dec_fail(d, key, "not a boolean");
		return false;
	}
	return json_is_true(v);
}

static bool
clean_string(const json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

/* A string without NUL, or null (-> NULL). Returns a malloc'd copy. */
static char *
dec_str(struct dec *d, const char *key)
{
	const json_t *v = dec_get(d, key);

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!clean_string(v)) {
		dec_fail(d, key, "not a string");
		return NULL;
	}
	return xstrdup(json_string_value(v));
}

/* An array of strings (with '=' when env), or null (-> NULL). */
static char **
dec_strv(struct dec *d, const char *key, bool env)
{
	const json_t *v = dec_get(d, key), *e;
	char **out;
	size_t i;

	if (v == NULL || json_is_null(v))
		return NULL;
	if (!json_is_array(v)) {
		dec_fail(d, key, "not an array");
		return NULL;
	}
	json_array_foreach(v, i, e) {
		if (!clean_string(e) || (env && strchr(json_string_value(e), '=') == NULL)) {
			dec_fail(d, key,
			         env ? "not an array of K=V strings" : "not an array of strings");
			return NULL;
		}
	}
	out = xreallocarray(NULL, json_array_size(v) + 1, sizeof *out);
	json_array_foreach(v, i, e) {
		out[i] = xstrdup(json_string_value(e));
	}
	out[json_array_size(v)] = NULL;
	return out;
}

/* Fields added later are optional (stored records of older versions lack them). */
static bool
dec_has(struct dec *d, const char *key)
{
	return d->error == NULL && json_object_get(d->msg, key) != NULL;
}

/* The message is an object whose "t" is want. */
static int
dec_type(struct dec *d, const char *want)
{
	const json_t *t;

	if (!json_is_object(d->msg)) {
		d->error = xstrdup("message is not an object");
		return -1;
	}
	t = json_object_get(d->msg, "t");
	if (!json_is_string(t)) {
		d->error = xstrdup("message without \"t\"");
		return -1;
	}
	if (strcmp(json_string_value(t), want) != 0) {
		d->error =
		    xprintf("unexpected message \"%s\" (want \"%s\")", json_string_value(t), want);
		return -1;
	}
	return 0;
}

int
worker_decode_spec(const json_t *msg, struct run_spec *spec, char **error)
{
	struct dec d = {.msg = msg};
	struct run_spec s;

	memset(&s, 0, sizeof s);
	if (dec_type(&d, "run") == 0) {
		s.job_id = (uint64_t)dec_int(&d, "job", 0, INT64_MAX);
		s.type = (int)dec_int(&d, "type", BUILTIN_EXEC, BUILTIN_COUNT);
		s.argv = dec_strv(&d, "argv", false);
		s.env = dec_strv(&d, "env", true);
		s.cwd = dec_str(&d, "cwd");
		s.out_path = dec_str(&d, "out_path");
		s.err_path = dec_str(&d, "err_path");
		s.timeout = dec_time(&d, "timeout");
		s.kill_grace = dec_time(&d, "kill_grace");
		s.max_output = (uint64_t)dec_int(&d, "max_output", 0, INT64_MAX);
		s.nice = (int)dec_int(&d, "nice", WORKER_NICE_MIN, WORKER_NICE_MAX);
		s.as_user = dec_bool(&d, "as_user");
		s.uid = (uid_t)dec_int(&d, "uid", 0, UINT32_MAX - 1);
		s.gid = (gid_t)dec_int(&d, "gid", 0, UINT32_MAX - 1);
		if (dec_has(&d, "cgroup"))
			s.cgroup = dec_str(&d, "cgroup");
		if (dec_has(&d, "memory"))
			s.limits.memory = (uint64_t)dec_int(&d, "memory", 0, INT64_MAX);
		if (dec_has(&d, "cpus"))
			s.limits.cpus = dec_time(&d, "cpus");
		if (dec_has(&d, "pids"))
			s.limits.pids = (uint64_t)dec_int(&d, "pids", 0, INT64_MAX);
		s.track_path = dec_str(&d, "track");
	}
	if (d.error != NULL) {
		run_spec_free(&s);
		*error = d.error;
		return -1;
	}
	*spec = s;
	return 0;
}

int
worker_decode_result(const json_t *msg, struct run_result *res, uint64_t *job, long *rss_kb,
                     char **error)
{
	struct dec d = {.msg = msg};
	struct run_result r;
	uint64_t id = 0;
	long rss = 0;

	memset(&r, 0, sizeof r);
	r.mem_peak_kb = -1;
	if (dec_type(&d, "done") == 0) {
		id = (uint64_t)dec_int(&d, "job", 0, INT64_MAX);
		r.status = (enum run_status)dec_int(&d, "status", RUN_EXITED, RUN_LOST);
		r.exit_code = (int)dec_int(&d, "exit_code", -1, 255);
		r.signal = (int)dec_int(&d, "signal", 0, WORKER_SIGNAL_MAX);
		r.cpu_user = dec_time(&d, "cpu_user");
		r.cpu_sys = dec_time(&d, "cpu_sys");
		r.max_rss_kb = (long)dec_int(&d, "max_rss_kb", -1, LONG_MAX);
		r.wall = dec_time(&d, "wall");
		r.runq_wait = dec_time(&d, "runq_wait");
		r.runq_wait = dec_time(&d, "runq_wait");
		r.started_at = dec_time(&d, "started_at");
		r.finished_at = dec_time(&d, "finished_at");
		r.out_bytes = (uint64_t)dec_int(&d, "out_bytes", 0, INT64_MAX);
		r.err_bytes = (uint64_t)dec_int(&d, "err_bytes", 0, INT64_MAX);
		r.out_truncated = dec_bool(&d, "out_truncated");
		r.err_truncated = dec_bool(&d, "err_truncated");
		r.pid = (pid_t)dec_int(&d, "pid", 0, INT_MAX);
		r.result = dec_str(&d, "result");
		r.error = dec_str(&d, "error");
		rss = (long)dec_int(&d, "rss_kb", -1, LONG_MAX);
		if (dec_has(&d, "mem_peak_kb"))
			r.mem_peak_kb = (long)dec_int(&d, "mem_peak_kb", -1, LONG_MAX);
		if (dec_has(&d, "cmd_wall"))
			r.cmd_wall = dec_time(&d, "cmd_wall");
		if (dec_has(&d, "in_cgroup"))
			r.in_cgroup = dec_bool(&d, "in_cgroup");
		if (dec_has(&d, "cgroup_error"))
			r.cgroup_error = dec_str(&d, "cgroup_error");
	}
	if (d.error != NULL) {
		run_result_clear(&r);
		*error = d.error;
		return -1;
	}
	*res = r;
	*job = id;
	*rss_kb = rss;
	return 0;
}

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

/* SIGUSR1: cancel the job named by the queued value (any job for a plain kill). */
static void
worker_usr1(int sig, siginfo_t *si, void *ctx)
{
	uint64_t job = atomic_load(&worker_job);
	struct run *r = worker_current;

	(void)sig;
	(void)ctx;
	if (si->si_code == SI_QUEUE)
		job = (uint64_t)(uintptr_t)si->si_value.sival_ptr;
	atomic_store(&worker_cancel, job);
	/* run_cancel: an atomic store and a write(2), both async-signal-safe; keeps errno. */
	if (job != 0 && job == atomic_load(&worker_job) && r != NULL)
		run_cancel(r);
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
	sa.sa_sigaction = worker_usr1;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* Terminal and reload signals are the daemon's business; SIGTERM still kills. */
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/*
 * Only 0, 1, 2 and the socket stay open; stdin and stdout read/write
 * /dev/null. The socket came through posix_spawn's dup2, which clears
 * close-on-exec: set it again, or every command this worker runs would
 * inherit it (and could forge messages to the daemon with it).
 */
static int
setup_fds(int sock)
{
	int null;

	if (fcntl(sock, F_SETFD, FD_CLOEXEC) == -1)
		return -1;
	if (sock > 3)
		close_range(3, (unsigned)sock - 1, 0);
	close_range((unsigned)sock + 1, ~0U, 0);
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

/* One "run" message: execute it, answer "done". -1 if the daemon is gone. */
static int
worker_run(int sock, int index, struct title *t, const json_t *msg)
{
	struct run *r;
	char *error = NULL;
	int rc;

	r = run_new();
	if (worker_decode_spec(msg, &r->spec, &error) == -1) {
		log_warnx("worker %d: bad run message: %s", index, error);
		free(error);
		run_free(r);
		return -2;
	}
	title_set(t, "taskd: worker %d busy job %" PRIu64, index, r->spec.job_id);
	atomic_store(&worker_job, r->spec.job_id);
	worker_current = r;
	/* A cancel that came before the run was published. */
	if (atomic_load(&worker_cancel) == r->spec.job_id)
		run_cancel(r);
	r->spawned = worker_spawned;
	r->spawned_arg = &sock;
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

int
worker_main(int argc, char **argv)
{
	struct title t;
	long sock, index, parent;

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
	if (setup_fds((int)sock) == -1)
		return 1;
	setup_signals();
	t.start = argv[0];
	t.len = (size_t)(argv[argc - 1] + strlen(argv[argc - 1]) + 1 - argv[0]);
	prctl(PR_SET_NAME, "taskd-worker");
	title_set(&t, "taskd: worker %ld idle", index);
	return worker_loop((int)sock, (int)index, &t);
}
