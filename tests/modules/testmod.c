/*
 * A module for the tests (tests/unit/test-modules.c, tests/e2e/test_modules.py):
 * types tm-io (class io), tm-cpu (class cpu) and tm-pure (io, TASKD_TYPE_PURE)
 * running one command each, its first argument:
 *
 *   echo TEXT...      result: the words joined by spaces (text)
 *   json JSON         result: that JSON (taskd checks it)
 *   input             result: {"len": N, "text": the input if it is text}
 *   fail MESSAGE      fails with MESSAGE
 *   write OUT ERR     writes OUT to stdout, ERR to stderr; result "wrote"
 *   read PATH         opens PATH (relative to the job's directory) and reads
 *                     it: result {"bytes": N}; fails with why it could not
 *   ids               result {"euid","egid","uid","gid","groups":[...]}
 *   wait SECONDS      taskd_wait(): result "waited", or stopped
 *   hang SECONDS      sleeps that long without looking at taskd_stop()
 *   progress TEXT     reports TEXT as progress, then waits for a cancel (60 s)
 *   big N             a text result of N bytes
 *   segv              crashes (SIGSEGV, its default action)
 *   badjson           taskd_result_json("{") and returns TASKD_OK
 *   badstatus         returns 7 (not a taskd_status)
 *
 * validate() refuses an unknown command ("no such command 'x'") and a job
 * with "refuse" anywhere in its input.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <taskd/module.h>

static const char *const commands[] = {
	"echo", "json", "input", "fail", "write", "read", "ids", "wait", "hang", "progress", "big",
	"segv", "badjson", "badstatus", NULL,
};

static int
tm_validate(const struct taskd_args *a, char *err, size_t len)
{
	int i;

	if (a->argc < 1) {
		snprintf(err, len, "expected a command");
		return -1;
	}
	for (i = 0; commands[i] != NULL; i++)
		if (strcmp(commands[i], a->argv[0]) == 0)
			break;
	if (commands[i] == NULL) {
		snprintf(err, len, "no such command '%s'", a->argv[0]);
		return -1;
	}
	if (a->input != NULL && memmem(a->input, a->input_len, "refuse", 6) != NULL) {
		snprintf(err, len, "refused by its input");
		return -1;
	}
	return 0;
}

static const char *
arg(struct taskd_job *job, int i)
{
	return i < job->argc ? job->argv[i] : "";
}

static int
cmd_echo(struct taskd_job *job)
{
	char buf[4096] = "";
	int i;

	for (i = 1; i < job->argc; i++) {
		if (i > 1)
			strncat(buf, " ", sizeof buf - strlen(buf) - 1);
		strncat(buf, job->argv[i], sizeof buf - strlen(buf) - 1);
	}
	taskd_result(job, buf, strlen(buf));
	return TASKD_OK;
}

static int
cmd_input(struct taskd_job *job)
{
	char buf[8192];
	size_t i, n = job->input_len < 4096 ? job->input_len : 4096;
	int text = 1;

	for (i = 0; i < n; i++)
		if (job->input[i] < 0x20 || job->input[i] >= 0x7f || job->input[i] == '"' ||
		    job->input[i] == '\\')
			text = 0;
	if (text)
		snprintf(buf, sizeof buf, "{\"len\":%zu,\"text\":\"%.*s\"}", job->input_len, (int)n,
			 job->input != NULL ? (const char *)job->input : "");
	else
		snprintf(buf, sizeof buf, "{\"len\":%zu,\"text\":null}", job->input_len);
	return taskd_result_json(job, buf) == 0 ? TASKD_OK : TASKD_FAILED;
}

static int
cmd_read(struct taskd_job *job)
{
	char buf[4096], res[64];
	long long total = 0;
	ssize_t n;
	int fd = openat(job->dir_fd, arg(job, 1), O_RDONLY | O_CLOEXEC);

	if (fd == -1) {
		taskd_errorf(job, "%s: %s", arg(job, 1), strerror(errno));
		return TASKD_FAILED;
	}
	while ((n = read(fd, buf, sizeof buf)) > 0)
		total += n;
	close(fd);
	snprintf(res, sizeof res, "{\"bytes\":%lld}", total);
	taskd_result_json(job, res);
	return TASKD_OK;
}

static int
cmd_ids(struct taskd_job *job)
{
	char buf[2048];
	gid_t groups[64];
	int n = getgroups(64, groups), i;
	size_t len;

	len = (size_t)snprintf(buf, sizeof buf,
			       "{\"euid\":%u,\"egid\":%u,\"uid\":%u,\"gid\":%u,\"groups\":[",
			       (unsigned)geteuid(), (unsigned)getegid(), (unsigned)job->uid,
			       (unsigned)job->gid);
	for (i = 0; i < n && len < sizeof buf - 32; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%u", i ? "," : "",
					(unsigned)groups[i]);
	snprintf(buf + len, sizeof buf - len, "]}");
	taskd_result_json(job, buf);
	return TASKD_OK;
}

static int
cmd_hang(struct taskd_job *job)
{
	double s = atof(arg(job, 1));
	struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (time_t)s) * 1e9)};

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
	taskd_result(job, "hung", 4);
	return TASKD_OK;
}

static int
cmd_big(struct taskd_job *job)
{
	size_t n = (size_t)atoll(arg(job, 1));
	char *s = malloc(n + 1);

	if (s == NULL)
		return TASKD_FAILED;
	memset(s, 'x', n);
	s[n] = '\0';
	/* A result taskd refuses (too large) fails the job by itself: OK all the same. */
	taskd_result(job, s, n);
	free(s);
	return TASKD_OK;
}

static int
tm_run(struct taskd_job *job)
{
	const char *c = arg(job, 0);

	if (strcmp(c, "echo") == 0)
		return cmd_echo(job);
	if (strcmp(c, "json") == 0)
		return taskd_result_json(job, arg(job, 1)) == 0 ? TASKD_OK : TASKD_FAILED;
	if (strcmp(c, "input") == 0)
		return cmd_input(job);
	if (strcmp(c, "fail") == 0) {
		taskd_error(job, arg(job, 1));
		return TASKD_FAILED;
	}
	if (strcmp(c, "write") == 0) {
		if (taskd_printf(job, 1, "%s", arg(job, 1)) < 0 ||
		    taskd_printf(job, 2, "%s", arg(job, 2)) < 0) {
			taskd_errorf(job, "write: %s", strerror(errno));
			return TASKD_FAILED;
		}
		taskd_result(job, "wrote", 5);
		return TASKD_OK;
	}
	if (strcmp(c, "read") == 0)
		return cmd_read(job);
	if (strcmp(c, "ids") == 0)
		return cmd_ids(job);
	if (strcmp(c, "wait") == 0) {
		if (taskd_wait(job, atof(arg(job, 1))) != 0)
			return TASKD_STOPPED;
		taskd_result(job, "waited", 6);
		return TASKD_OK;
	}
	if (strcmp(c, "hang") == 0)
		return cmd_hang(job);
	if (strcmp(c, "progress") == 0) {
		taskd_progress(job, arg(job, 1));
		return taskd_wait(job, 60) != 0 ? TASKD_STOPPED : TASKD_OK;
	}
	if (strcmp(c, "big") == 0)
		return cmd_big(job);
	if (strcmp(c, "segv") == 0) {
		/* The default action, not a sanitizer's handler: killed by SIGSEGV in every build. */
		signal(SIGSEGV, SIG_DFL);
		raise(SIGSEGV);
		return TASKD_FAILED;
	}
	if (strcmp(c, "badjson") == 0) {
		taskd_result_json(job, "{");
		return TASKD_OK;
	}
	if (strcmp(c, "badstatus") == 0)
		return 7;
	taskd_errorf(job, "no such command '%s'", c);
	return TASKD_FAILED;
}

static const struct taskd_type tm_io = {
	TASKD_TYPE_INIT, .name = "tm-io", .cls = TASKD_TYPE_IO, .usage = "COMMAND [ARG...]",
	.validate = tm_validate, .run = tm_run,
};
static const struct taskd_type tm_cpu = {
	TASKD_TYPE_INIT, .name = "tm-cpu", .cls = TASKD_TYPE_CPU, .usage = "COMMAND [ARG...]",
	.validate = tm_validate, .run = tm_run,
};
static const struct taskd_type tm_pure = {
	TASKD_TYPE_INIT, .name = "tm-pure", .cls = TASKD_TYPE_IO, .flags = TASKD_TYPE_PURE,
	.validate = tm_validate, .run = tm_run,
};
static const struct taskd_type *const tm_types[] = {&tm_io, &tm_cpu, &tm_pure, NULL};

__attribute__((visibility("default"))) const struct taskd_module taskd_module_v1 = {
	TASKD_MODULE_INIT,
	.name = "testmod",
	.version = "0.1",
	.types = tm_types,
};
