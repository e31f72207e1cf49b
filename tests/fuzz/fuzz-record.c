/*
 * libFuzzer target: stored job records (record_decode, jobs_restore).
 *
 * At start-up the daemon re-creates every job from its row in taskd.db: a
 * state name and a record, JSON text made by record_encode() (or, for rows
 * of taskd 0.1.0, the version 1 format). A damaged or hand-edited database
 * must be refused cleanly (NULL and a cause), never crash or leak. Input:
 * "STATE ID", a newline, the record text (ID, the row's id, 7 when missing).
 *
 * A record that loads is put in a table (jobs_restore), written again
 * (record_encode, always the current version) and the job shown
 * (job_to_json); that record must load in a fresh table too and then write
 * itself out byte for byte the same: what the daemon stores, it reads back
 * unchanged, and a migrated record stays as migrated.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "job.h"
#include "record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Load rec as job id of a fresh table, then write it out; NULL if refused (then cause is set). */
static char *
restore_and_record(const char *state, uint64_t id, const char *rec, bool *loaded)
{
	struct jobs *js = jobs_new();
	struct job *j;
	char *cause = NULL, *out = NULL, *text;
	uint64_t array;
	int version;
	json_t *o;

	j = record_decode(id, state, rec, &version, &array, &cause);
	if (j != NULL && (version < 1 || version > RECORD_VERSION ||
			  jobs_restore(js, j, &cause) == -1))
		abort(); /* a fresh table holds no job with that id */
	*loaded = j != NULL;
	if (j == NULL) {
		if (cause == NULL || cause[0] == '\0')
			abort(); /* a refusal must say why */
	} else {
		if (cause != NULL)
			abort();
		out = record_encode(j);
		if (out == NULL)
			abort();
		o = job_to_json(j);
		if (o == NULL || (text = json_dumps(o, JSON_COMPACT)) == NULL)
			abort();
		free(text);
		json_decref(o);
	}
	free(cause);
	jobs_free(js);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	char *state, *rec, *again, *third, *sp, *end;
	uint64_t id = 7;
	bool loaded;

	if (nl == NULL || size > 1 << 20)
		return 0;
	state = strndup((const char *)data, (size_t)(nl - data));
	rec = strndup((const char *)nl + 1, size - (size_t)(nl - data) - 1);
	if (state == NULL || rec == NULL)
		abort();
	if ((sp = strchr(state, ' ')) != NULL) {
		*sp = '\0';
		id = strtoull(sp + 1, &end, 10);
		if (*end != '\0' || id >= INT64_MAX)
			id = 7;
	}
	if (strlen(rec) == size - (size_t)(nl - data) - 1) { /* no NUL inside: like a TEXT column */
		again = restore_and_record(state, id, rec, &loaded);
		if (again != NULL) {
			third = restore_and_record(state, id, again, &loaded);
			if (!loaded || third == NULL || strcmp(again, third) != 0)
				abort(); /* what was written does not read back the same */
			free(third);
		}
		free(again);
	}
	free(state);
	free(rec);
	return 0;
}
