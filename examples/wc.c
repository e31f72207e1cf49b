/*
 * wc: a taskd module with one job type, "wc", that counts the lines,
 * words and bytes of files, like wc(1) (doc/modules.md).
 *
 *   cc -O2 -Wall -fPIC -shared -o wc.so wc.c
 *   taskd.conf:  modules = ( "/usr/local/lib/taskd/wc.so" );
 *   taskctl submit --wait --type wc -- notes.txt /var/log/syslog
 *   {"files":[{"path":"notes.txt","lines":3,"words":12,"bytes":61},...]}
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <taskd/module.h>

/* At submit, in the daemon: cheap checks of the arguments only. */
static int
wc_validate(const struct taskd_args *args, char *error, size_t len)
{
	int i;

	if (args->argc == 0) {
		snprintf(error, len, "expected FILE...");
		return -1;
	}
	for (i = 0; i < args->argc; i++)
		if (args->argv[i][0] == '\0') {
			snprintf(error, len, "an empty FILE name");
			return -1;
		}
	return 0;
}

/* Count one file (opened with the submitter's rights): TASKD_OK, _FAILED or _STOPPED. */
static int
count(struct taskd_job *job, const char *path, long long n[3])
{
	char buf[65536];
	int fd, in_word = 0;
	struct stat st;
	ssize_t got, i;

	fd = openat(job->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1 || fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		taskd_errorf(job, "%s: %s", path, fd == -1 ? strerror(errno) : "not a regular file");
		if (fd != -1)
			close(fd);
		return TASKD_FAILED;
	}
	while ((got = read(fd, buf, sizeof buf)) > 0) {
		for (i = 0; i < got; i++) {
			n[0] += buf[i] == '\n';
			if (isspace((unsigned char)buf[i]))
				in_word = 0;
			else if (!in_word && ++n[1])
				in_word = 1;
		}
		n[2] += got;
		if (taskd_stop(job)) { /* cancelled, or past its deadline */
			close(fd);
			return TASKD_STOPPED;
		}
	}
	close(fd);
	if (got == -1) {
		taskd_errorf(job, "%s: %s", path, strerror(errno));
		return TASKD_FAILED;
	}
	return TASKD_OK;
}

static int
wc_run(struct taskd_job *job)
{
	size_t cap = 64, len;
	char *out = malloc(cap), *more, progress[64];
	int i, rc = TASKD_OK;

	if (out == NULL)
		return TASKD_FAILED;
	len = (size_t)snprintf(out, cap, "{\"files\":[");
	for (i = 0; i < job->argc && rc == TASKD_OK; i++) {
		long long n[3] = {0, 0, 0};

		snprintf(progress, sizeof progress, "%d of %d files", i, job->argc);
		taskd_progress(job, progress);
		if ((rc = count(job, job->argv[i], n)) != TASKD_OK)
			break;
		/* Room for the entry: the path (escaped, at most 6 bytes a byte) and the numbers. */
		if ((more = realloc(out, cap += 6 * strlen(job->argv[i]) + 128)) == NULL) {
			rc = TASKD_FAILED;
			break;
		}
		out = more;
		len += (size_t)snprintf(out + len, cap - len, "%s{\"path\":\"", i > 0 ? "," : "");
		for (const char *p = job->argv[i]; *p != '\0'; p++)
			len += (size_t)snprintf(out + len, cap - len,
						*p == '"' || *p == '\\' ? "\\%c"
						: (unsigned char)*p < 0x20 ? "\\u%04x" : "%c", *p);
		len += (size_t)snprintf(out + len, cap - len,
					"\",\"lines\":%lld,\"words\":%lld,\"bytes\":%lld}", n[0],
					n[1], n[2]);
	}
	if (rc == TASKD_OK && (more = realloc(out, len + 3)) == NULL)
		rc = TASKD_FAILED;
	if (rc == TASKD_OK) {
		out = more;
		strcpy(out + len, "]}");
		taskd_result_json(job, out);
	}
	free(out);
	return rc;
}

static const struct taskd_type wc_type = {
	TASKD_TYPE_INIT,
	.name = "wc",
	.cls = TASKD_TYPE_IO, /* mostly waiting for the disk: on the daemon's threads */
	.usage = "FILE...",
	.validate = wc_validate,
	.run = wc_run,
};

static const struct taskd_type *const wc_types[] = {&wc_type, NULL};

/* The one symbol taskd looks for. */
const struct taskd_module taskd_module_v1 = {
	TASKD_MODULE_INIT,
	.name = "wc",
	.version = "1.0",
	.types = wc_types,
};
