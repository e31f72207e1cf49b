/*
 * A job's description (struct job_spec): its kind keys, freeing it, the
 * copy a `restart` runs, and what it takes: bytes in memory and store
 * (job_spec_bytes, counted against its owner's quota) and bytes of the job
 * object that shows it (job_spec_shown_bytes, checked against
 * limits.max_frame).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "xmalloc.h"

void
job_kind_keys(const struct job_spec *spec, struct kind_keys *k)
{
	kind_keys(spec->name, spec->type == JOBTYPE_HANDLER ? NULL : jobtype_name(spec->type, NULL),
		  spec->type == JOBTYPE_HANDLER ? spec->handler : NULL, spec->argv, spec->cwd, k);
}

void
job_spec_free(struct job_spec *spec)
{
	strv_free(spec->argv);
	strv_free(spec->env);
	free(spec->cwd);
	free(spec->name);
	free(spec->notify);
	free(spec->handler);
	free(spec->input);
	labels_free(&spec->labels);
	free(spec->deps);
	free(spec->unique);
	free(spec->queue);
	memset(spec, 0, sizeof *spec);
}

void
job_spec_rerun(struct job_spec *dst, const struct job *j)
{
	const struct job_spec *src = &j->spec;
	size_t n = strv_len(src->env), i = 0;

	memset(dst, 0, sizeof *dst);
	dst->type = src->type;
	dst->handler = src->handler != NULL ? xstrdup(src->handler) : NULL;
	dst->argv = strv_dup(src->argv);
	if (j->array != NULL) {
		dst->env = xcalloc(n + 3, sizeof *dst->env);
		dst->env[i++] = xprintf("TASKD_ARRAY_ID=%llu", (unsigned long long)j->array->id);
		dst->env[i++] = xprintf("TASKD_ARRAY_INDEX=%lld", j->array_index);
		for (n = 0; src->env != NULL && src->env[n] != NULL; n++)
			dst->env[i++] = xstrdup(src->env[n]);
	} else {
		dst->env = strv_dup(src->env);
	}
	dst->cwd = src->cwd != NULL ? xstrdup(src->cwd) : NULL;
	dst->name = src->name != NULL ? xstrdup(src->name) : NULL;
	labels_copy(&dst->labels, &src->labels);
	dst->class = src->class;
	dst->priority = src->priority;
	dst->timeout = src->timeout;
	dst->retries = src->retries;
	dst->retry_delay = src->retry_delay;
	dst->unique = src->unique != NULL ? xstrdup(src->unique) : NULL;
	dst->queue = src->queue != NULL ? xstrdup(src->queue) : NULL;
	dst->notify = src->notify != NULL ? xstrdup(src->notify) : NULL;
	dst->slots = src->slots;
	dst->input_bytes = src->input_bytes;
	dst->limits = src->limits;
}

static uint64_t
strv_bytes(char *const *v)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; v != NULL && v[i] != NULL; i++)
		n += strlen(v[i]) + 1;
	return n;
}

uint64_t
job_spec_bytes(const struct job_spec *spec)
{
	uint64_t n = strv_bytes(spec->argv) + strv_bytes(spec->env);
	size_t i;

	n += spec->cwd != NULL ? strlen(spec->cwd) + 1 : 0;
	n += spec->name != NULL ? strlen(spec->name) + 1 : 0;
	n += spec->handler != NULL ? strlen(spec->handler) + 1 : 0;
	n += spec->unique != NULL ? strlen(spec->unique) + 1 : 0;
	n += spec->queue != NULL ? strlen(spec->queue) + 1 : 0;
	n += spec->input_bytes;
	for (i = 0; i < spec->labels.n; i++)
		n += strlen(spec->labels.v[i].key) + strlen(spec->labels.v[i].value) + 2;
	return n + spec->ndeps * sizeof spec->deps[0];
}

size_t
job_spec_shown_bytes(const struct job_spec *spec)
{
	size_t n = JOB_OBJECT_RESERVE, i;

	for (i = 0; spec->argv != NULL && spec->argv[i] != NULL; i++)
		n += string_text_size(spec->argv[i]) + 1;
	n += spec->cwd != NULL ? string_text_size(spec->cwd) : 0;
	n += spec->name != NULL ? string_text_size(spec->name) : 0;
	n += spec->unique != NULL ? string_text_size(spec->unique) : 0;
	n += spec->queue != NULL ? string_text_size(spec->queue) : 0;
	for (i = 0; i < spec->labels.n; i++)
		n += string_text_size(spec->labels.v[i].key) +
		     string_text_size(spec->labels.v[i].value) + 2;
	/* An id in "after" or "after_any": up to 20 digits and a comma. */
	return n + spec->ndeps * 21;
}
