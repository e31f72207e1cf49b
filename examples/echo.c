/*
 * A C handler: answers each job with its arguments, or its input when it
 * has one (as a string). Build it against libtaskd-worker:
 *
 *	cc -o taskd-echo echo.c $(pkg-config --cflags --libs taskd-worker)
 *
 *	handlers = ( { name = "echo"; command = [ "/usr/local/bin/taskd-echo" ]; } );
 *
 *	taskctl submit --wait --type echo -- hello world      # prints: hello world
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/worker.h>

static int
handle(const struct taskd_job *job, struct taskd_result *res, void *arg)
{
	size_t len = 0;
	char *s;
	int i, rc;

	(void)arg;
	if (job->input_len > 0) {
		if ((s = strndup((const char *)job->input, job->input_len)) == NULL)
			return taskd_result_error(res, "out of memory");
		rc = taskd_result_string(res, s);
		free(s);
		return rc;
	}
	for (i = 0; i < job->argc; i++)
		len += strlen(job->args[i]) + 1;
	if ((s = calloc(1, len + 1)) == NULL)
		return taskd_result_error(res, "out of memory");
	for (i = 0; i < job->argc; i++) {
		if (i > 0)
			strcat(s, " ");
		strcat(s, job->args[i]);
	}
	rc = taskd_result_string(res, s);
	free(s);
	return rc;
}

int
main(void)
{
	return taskd_worker_serve(handle, NULL) == 0 ? 0 : 1;
}
