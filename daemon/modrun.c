/*
 * Running a module type's job (modules.h module_run): the struct taskd_job
 * a module's run() gets, the functions behind it (struct taskd_host), the
 * submitter's ids for the module code, and the measures builtin types had
 * (the thread's CPU time, wall time, run-queue wait).
 *
 * What runs where. module_run() runs in the calling thread: a pool thread
 * of the daemon (io) or a worker process's only thread (cpu), and blocks
 * until run() returns. The host functions are called by run() in that same
 * thread; only run_cancel() (any thread, or the worker's signal handler)
 * and run_progress() (the loop) touch the run from elsewhere.
 *
 * Whose ids. With spec.as_user (a root taskd, a submitter who is not
 * root) and a type that is not TASKD_TYPE_PURE, the thread takes the
 * submitter's groups, effective gid and effective uid before opening the
 * job's directory and calling run(), with the raw system calls, which
 * change this thread's credentials only (glibc's wrappers would change
 * every thread's): the rest of the daemon keeps its own. The real and saved
 * uid stay root, so the ids come back afterwards (and, for a moment, when
 * an output file is created: the job's output files are taskd's to make);
 * a thread that cannot get them back stops taskd (it would go on with
 * another user's rights). Effective ids other than root clear the
 * effective capabilities, so the kernel checks every file the module opens
 * against the submitter's rights, as it would for their command.
 *
 * Who owns what. The struct mrun is on module_run's stack; the result,
 * the error and the input are malloc'd here and end in r->res (or freed).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <jansson.h>

#include "base64.h"
#include "clock.h"
#include "exec.h"
#include "log.h"
#include "modules.h"
#include "output.h"
#include "xmalloc.h"

#define PROGRESS_MAX 4096 /* bytes of a progress message kept */
#define ERROR_MAX 4096    /* bytes of an error message kept */

/* 32-bit ids on the architectures that also have the old 16-bit calls. */
#ifdef SYS_setresuid32
#define SYS_SETRESUID SYS_setresuid32
#define SYS_SETRESGID SYS_setresgid32
#define SYS_SETGROUPS SYS_setgroups32
#else
#define SYS_SETRESUID SYS_setresuid
#define SYS_SETRESGID SYS_setresgid
#define SYS_SETGROUPS SYS_setgroups
#endif

/* The thread's own ids while it runs as the submitter (to go back to). */
struct ident {
	bool on;
	uid_t euid;
	gid_t egid;
	gid_t *groups;
	int ngroups;
	gid_t *user_groups; /* the submitter's */
	int nuser_groups;
	uid_t uid;
	gid_t gid;
};

/* One output stream of the job, opened at its first write. */
struct mout {
	int fd;
	bool failed;      /* could not be opened: writes fail */
	uint64_t kept;    /* bytes in the file */
};

/* One module run: what the host functions reach through job->priv. */
struct mrun {
	struct taskd_job job;
	struct run *r;
	const struct modtype *t;
	struct ident id;
	struct mout out[2];
	char *result;
	bool result_json;
	char *result_problem; /* a result that could not be taken: the job fails with this */
	char *error;
	bool failed;          /* run() returned TASKD_FAILED */
	unsigned char *input;
};

static struct mrun *
mrun_of(struct taskd_job *job)
{
	return job->priv;
}

/* --- ids --------------------------------------------------------------- */

/*
 * The submitter's groups, as --run-as gives a command: getgrouplist of
 * their name, or just their gid without a passwd entry. 0, or -1.
 */
static int
user_groups(struct ident *id, char **error)
{
	struct passwd pw, *pwp = NULL;
	size_t len = 4096;
	char *buf = NULL;
	int n = 32, rc;

	do {
		buf = xreallocarray(buf, len *= 2, 1);
		rc = getpwuid_r(id->uid, &pw, buf, len, &pwp);
	} while (rc == ERANGE && len < (1u << 20));
	if (rc != 0 || pwp == NULL) {
		free(buf);
		if (rc != 0 && rc != ENOENT && rc != ESRCH) {
			*error = xprintf("cannot look uid %u up: %s", (unsigned)id->uid, strerror(rc));
			return -1;
		}
		id->user_groups = xmalloc(sizeof(gid_t));
		id->user_groups[0] = id->gid;
		id->nuser_groups = 1;
		return 0;
	}
	for (;;) {
		id->user_groups = xreallocarray(id->user_groups, (size_t)n, sizeof(gid_t));
		if (getgrouplist(pw.pw_name, id->gid, id->user_groups, &n) >= 0) {
			id->nuser_groups = n;
			free(buf);
			return 0;
		}
		if (n > NGROUPS_MAX * 2 + 64) {
			*error = xprintf("the groups of uid %u: too many", (unsigned)id->uid);
			free(buf);
			return -1;
		}
	}
}

/* Take the submitter's ids in this thread: 0, or -1 with *error (and the ids unchanged). */
static int
ident_become(struct ident *id, char **error)
{
	int n;

	id->euid = geteuid();
	id->egid = getegid();
	n = getgroups(0, NULL);
	if (n < 0) {
		*error = xprintf("getgroups: %s", strerror(errno));
		return -1;
	}
	free(id->groups);
	id->groups = xreallocarray(NULL, (size_t)n + 1, sizeof(gid_t));
	if ((id->ngroups = getgroups(n, id->groups)) < 0) {
		*error = xprintf("getgroups: %s", strerror(errno));
		return -1;
	}
	if (id->user_groups == NULL && user_groups(id, error) == -1)
		return -1;
	if (syscall(SYS_SETGROUPS, (size_t)id->nuser_groups, id->user_groups) == -1) {
		*error = xprintf("cannot take the groups of uid %u: %s", (unsigned)id->uid,
				 strerror(errno));
		return -1;
	}
	if (syscall(SYS_SETRESGID, (gid_t)-1, id->gid, (gid_t)-1) == -1 ||
	    syscall(SYS_SETRESUID, (uid_t)-1, id->uid, (uid_t)-1) == -1) {
		*error = xprintf("cannot become uid %u gid %u: %s", (unsigned)id->uid,
				 (unsigned)id->gid, strerror(errno));
		syscall(SYS_SETRESGID, (gid_t)-1, id->egid, (gid_t)-1);
		syscall(SYS_SETGROUPS, (size_t)id->ngroups, id->groups);
		return -1;
	}
	id->on = true;
	return 0;
}

/* Back to the thread's own ids; not possible: stop (never go on with someone else's). */
static void
ident_restore(struct ident *id)
{
	if (!id->on)
		return;
	if (syscall(SYS_SETRESUID, (uid_t)-1, id->euid, (uid_t)-1) == -1 ||
	    syscall(SYS_SETGROUPS, (size_t)id->ngroups, id->groups) == -1 ||
	    syscall(SYS_SETRESGID, (gid_t)-1, id->egid, (gid_t)-1) == -1 ||
	    geteuid() != id->euid || getegid() != id->egid)
		fatal("cannot get taskd's own ids back after a module job as uid %u",
		      (unsigned)id->uid);
	id->on = false;
}

static void
ident_free(struct ident *id)
{
	free(id->groups);
	free(id->user_groups);
	id->groups = id->user_groups = NULL;
}

/* --- text -------------------------------------------------------------- */

/* Is s[0..len) UTF-8 without NUL (what a JSON string, and a C string, hold)? */
static bool
utf8_text(const char *s, size_t len)
{
	json_t *v;

	if (memchr(s, '\0', len) != NULL)
		return false;
	v = json_stringn(s, len);
	json_decref(v);
	return v != NULL;
}

/* A copy of at most max bytes of s, cut on a character boundary, other bytes than UTF-8 as '?'. */
static char *
text_copy(const char *s, size_t max)
{
	size_t n = strnlen(s, max + 1), i;
	char *c;

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
			n--;
	}
	c = xstrndup(s, n);
	if (!utf8_text(c, n))
		for (i = 0; i < n; i++)
			if ((unsigned char)c[i] >= 0x80)
				c[i] = '?';
	return c;
}

/* --- the host functions -------------------------------------------------- */

static int
host_stop(struct taskd_job *job)
{
	struct mrun *m = mrun_of(job);

	if (run_cancelled(m->r))
		return 1;
	if (job->deadline > 0 && clock_now(CLOCK_MONOTONIC) >= job->deadline)
		return 2;
	return 0;
}

static int
ms_until(double due, double now)
{
	double ms = ceil((due - now) * 1000);

	if (ms < 0)
		return 0;
	return ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Wait on the cancel eventfd until the end, the deadline or a cancel. */
static int
host_wait(struct taskd_job *job, double seconds)
{
	struct mrun *m = mrun_of(job);
	struct pollfd pfd = {.fd = m->r->cancel_fd, .events = POLLIN};
	double now = clock_now(CLOCK_MONOTONIC), end, due;
	int st;

	end = isfinite(seconds) && seconds > 0 ? now + seconds : now;
	for (;;) {
		if ((st = host_stop(job)) != 0)
			return st;
		now = clock_now(CLOCK_MONOTONIC);
		if (now >= end)
			return 0;
		due = job->deadline > 0 && job->deadline < end ? job->deadline : end;
		if (poll(&pfd, pfd.fd != -1 ? 1 : 0, ms_until(due, now)) == -1 && errno != EINTR)
			usleep(1000); /* ENOMEM: do not spin */
	}
}

static void
set_problem(struct mrun *m, char *why)
{
	free(m->result_problem);
	m->result_problem = why;
}

/* Take text (len bytes) as the result: 0, or -1 (too large; the job will fail). */
static int
take_result(struct mrun *m, const char *text, size_t len, bool json)
{
	uint64_t max = m->r->spec.max_result;

	if (max > 0 && len > max) {
		set_problem(m, xprintf("result too large: %zu bytes, limits.max_frame is %llu", len,
				       (unsigned long long)max));
		return -1;
	}
	free(m->result);
	m->result = xstrndup(text, len);
	m->result_json = json;
	set_problem(m, NULL);
	return 0;
}

static int
host_result(struct taskd_job *job, const char *text, size_t len)
{
	struct mrun *m = mrun_of(job);

	if (text == NULL || !utf8_text(text, len)) {
		set_problem(m, xstrdup("the result is not UTF-8 text (use a JSON result for "
				       "binary data, e.g. base64 in a string)"));
		return -1;
	}
	return take_result(m, text, len, false);
}

static int
host_result_json(struct taskd_job *job, const char *text)
{
	struct mrun *m = mrun_of(job);
	json_error_t je;
	json_t *v;
	char *compact;
	int rc;

	v = text != NULL ? json_loads(text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je) : NULL;
	if (v == NULL) {
		set_problem(m, xprintf("the result is not JSON: %s",
				       text != NULL ? je.text : "(NULL)"));
		return -1;
	}
	compact = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_decref(v);
	if (compact == NULL)
		fatalx("out of memory (json_dumps)");
	rc = take_result(m, compact, strlen(compact), true);
	free(compact);
	return rc;
}

static void
host_error(struct taskd_job *job, const char *message)
{
	struct mrun *m = mrun_of(job);

	free(m->error);
	m->error = text_copy(message != NULL && *message != '\0' ? message : "failed", ERROR_MAX);
}

static void
host_progress(struct taskd_job *job, const char *message)
{
	struct mrun *m = mrun_of(job);
	char *text;

	if (message == NULL)
		return;
	text = text_copy(message, PROGRESS_MAX);
	run_set_progress(m->r, text);
	free(text);
}

/*
 * The output file of a stream, made at the first write with taskd's own
 * ids (its directory is taskd's alone) and given to the submitter.
 */
static int
out_open(struct mrun *m, int i)
{
	struct run *r = m->r;
	const char *path = i == 0 ? r->spec.out_path : r->spec.err_path;
	bool was = m->id.on;
	char *error = NULL;
	int fd, saved = 0;

	if (path == NULL)
		return -1;
	ident_restore(&m->id);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd == -1)
		saved = errno;
	else if (r->spec.as_user && fchown(fd, r->spec.uid, r->spec.gid) == -1) {
		saved = errno;
		close(fd);
		fd = -1;
	}
	if (was && ident_become(&m->id, &error) == -1)
		fatalx("module job %llu: cannot take uid %u again: %s",
		       (unsigned long long)r->spec.job_id, (unsigned)r->spec.uid, error);
	if (fd == -1)
		log_warnx("job %llu: cannot make %s: %s", (unsigned long long)r->spec.job_id, path,
			  strerror(saved));
	return fd;
}

static ssize_t
host_write(struct taskd_job *job, int stream, const void *buf, size_t len)
{
	struct mrun *m = mrun_of(job);
	struct run *r = m->r;
	struct mout *o;
	uint64_t room, take, kept, max = r->spec.max_output, total = r->spec.max_kept;
	const char *p = buf;
	ssize_t w;

	if ((stream != 1 && stream != 2) || (m->t->flags & TASKD_TYPE_PURE) || (len > 0 && !buf)) {
		errno = EINVAL;
		return -1;
	}
	o = &m->out[stream - 1];
	if (o->fd == -1 && !o->failed && (o->fd = out_open(m, stream - 1)) == -1)
		o->failed = true;
	if (o->failed) {
		errno = EIO;
		return -1;
	}
	/* As a command's output (exec.c): max_output a stream, max_kept both, none once quiet. */
	room = max == 0 ? len : o->kept < max ? max - o->kept : 0;
	kept = m->out[0].kept + m->out[1].kept;
	if (total > 0 && room > (kept < total ? total - kept : 0))
		room = kept < total ? total - kept : 0;
	if (atomic_load(&r->quiet))
		room = 0;
	take = len < room ? len : room;
	if (stream == 1)
		r->res.out_bytes += len;
	else
		r->res.err_bytes += len;
	if (take < len) {
		if (stream == 1)
			r->res.out_truncated = true;
		else
			r->res.err_truncated = true;
	}
	while (take > 0) {
		w = write(o->fd, p, take);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		take -= (uint64_t)w;
		o->kept += (uint64_t)w;
	}
	return (ssize_t)len;
}

static const struct taskd_host host = {
	.size = sizeof(struct taskd_host),
	.stop = host_stop,
	.wait = host_wait,
	.result = host_result,
	.result_json = host_result_json,
	.error = host_error,
	.write = host_write,
	.progress = host_progress,
};

/* --- running ------------------------------------------------------------- */

/* A failure before run() was called: res gets it. */
static enum run_status
start_fail(struct mrun *m, char *msg)
{
	free(m->error);
	m->error = msg;
	return RUN_FAILED;
}

/*
 * The input as bytes: base64 in the spec, or the job's input file
 * (spec.in_path, read before the run takes its submitter's ids).
 */
static int
take_input(struct mrun *m, char **cause)
{
	const char *b64 = m->r->spec.input;
	size_t n = 0;
	char *bytes = NULL;

	if ((b64 == NULL || *b64 == '\0') && m->r->spec.in_path != NULL) {
		if (output_read_path(m->r->spec.in_path, &bytes, &n, cause) == -1)
			return -1;
	} else if (b64 == NULL || *b64 == '\0') {
		return 0;
	} else if (base64_decode(b64, strlen(b64), &bytes, &n) == -1) {
		*cause = xstrdup("the job's input is not base64");
		return -1;
	}
	m->input = (unsigned char *)bytes;
	m->job.input = m->input;
	m->job.input_len = n;
	return 0;
}

/* Everything up to run(): the type, the input, the ids, the directory; then run(). */
static enum run_status
module_start(struct mrun *m, double start)
{
	struct run *r = m->r;
	struct taskd_job *job = &m->job;
	const char *cwd = r->spec.cwd != NULL ? r->spec.cwd : "/";
	char *error = NULL;
	int rc;

	if (m->t == NULL)
		return start_fail(m, xprintf("job type %d is not loaded here", r->spec.type));
	if (take_input(m, &error) == -1)
		return start_fail(m, error);
	if (run_cancelled(r))
		return RUN_CANCELLED;
	if (!(m->t->flags & TASKD_TYPE_PURE)) {
		if (r->spec.as_user && ident_become(&m->id, &error) == -1)
			return start_fail(m, error);
		job->dir_fd = open(cwd, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (job->dir_fd == -1)
			return start_fail(m, xprintf("cwd %s: %s", cwd, strerror(errno)));
	}
	if (r->spec.timeout > 0)
		job->deadline = start + r->spec.timeout;
	rc = m->t->run(job);
	ident_restore(&m->id);
	if (rc == TASKD_OK)
		return RUN_EXITED;
	if (rc == TASKD_FAILED) {
		m->failed = true; /* exit code 1 */
		return RUN_EXITED;
	}
	/* TASKD_STOPPED, or anything else: why it had to stop, else a failure. */
	if (run_cancelled(r))
		return RUN_CANCELLED;
	if (job->deadline > 0 && clock_now(CLOCK_MONOTONIC) >= job->deadline)
		return RUN_TIMEOUT;
	if (rc != TASKD_STOPPED && m->error == NULL)
		m->error = xprintf("%s: run() returned %d, not a taskd_status", m->t->name, rc);
	return rc == TASKD_STOPPED ? RUN_CANCELLED : RUN_FAILED;
}

/* What run() said, into r->res: status, exit code, result, error. */
static void
module_finish(struct mrun *m, enum run_status st)
{
	struct run_result *res = &m->r->res;

	res->status = st;
	res->exit_code = st == RUN_EXITED ? (m->failed ? 1 : 0) : st == RUN_FAILED ? 1 : -1;
	if (st == RUN_EXITED && !m->failed && m->result_problem != NULL) {
		/* Done, but its result cannot be kept: a failure, saying why. */
		res->exit_code = 1;
		free(m->error);
		m->error = m->result_problem;
		m->result_problem = NULL;
	}
	if (res->exit_code != 0 && st == RUN_EXITED && m->error == NULL)
		m->error = xstrdup("failed");
	if (res->exit_code == 0 && st == RUN_EXITED) {
		res->result = m->result;
		res->result_json = m->result_json;
		m->result = NULL;
	}
	free(res->error);
	res->error = st == RUN_EXITED && res->exit_code == 0 ? NULL : m->error;
	if (res->error == m->error)
		m->error = NULL;
}

void
module_run(struct run *r)
{
	struct run_result *res = &r->res;
	struct rusage ru0, ru1;
	struct mrun m;
	enum run_status st;
	double start, w0, w1;
	int i;

	memset(&m, 0, sizeof m);
	m.r = r;
	m.t = module_type(r->spec.type);
	m.out[0].fd = m.out[1].fd = -1;
	m.id.uid = r->spec.uid;
	m.id.gid = r->spec.gid;
	m.job.size = sizeof m.job;
	m.job.abi = TASKD_MODULE_ABI;
	m.job.id = r->spec.job_id;
	m.job.argv = r->spec.argv != NULL ? r->spec.argv : (char *const[]){NULL};
	m.job.argc = (int)strv_len(r->spec.argv);
	m.job.cancel_fd = r->cancel_fd;
	m.job.dir_fd = -1;
	m.job.uid = r->spec.uid;
	m.job.gid = r->spec.gid;
	m.job.host = &host;
	m.job.priv = &m;

	start = clock_now(CLOCK_MONOTONIC);
	res->started_at = clock_now(CLOCK_REALTIME);
	res->pid = 0;
	res->signal = 0;
	res->max_rss_kb = -1;
	getrusage(RUSAGE_THREAD, &ru0);
	w0 = run_schedstat_self();

	st = module_start(&m, start);
	ident_restore(&m.id);
	module_finish(&m, st);

	getrusage(RUSAGE_THREAD, &ru1);
	w1 = run_schedstat_self();
	res->runq_wait = w0 >= 0 && w1 >= w0 ? w1 - w0 : 0;
	res->cpu_user = clock_tv_seconds(&ru1.ru_utime) - clock_tv_seconds(&ru0.ru_utime);
	res->cpu_sys = clock_tv_seconds(&ru1.ru_stime) - clock_tv_seconds(&ru0.ru_stime);
	res->finished_at = clock_now(CLOCK_REALTIME);
	res->wall = clock_now(CLOCK_MONOTONIC) - start;

	if (m.job.dir_fd != -1)
		close(m.job.dir_fd);
	for (i = 0; i < 2; i++)
		if (m.out[i].fd != -1)
			close(m.out[i].fd);
	ident_free(&m.id);
	free(m.result);
	free(m.result_problem);
	free(m.error);
	free(m.input);
}
