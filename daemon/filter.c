#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "filter.h"
#include "xmalloc.h"

#define FILTER_MAX_IDS 100000

/* "queued, running, ..." for messages. */
static void
state_list(char *buf, size_t len)
{
	size_t off = 0;
	int st;

	buf[0] = '\0';
	for (st = 0; st < JOB_NSTATES && off < len; st++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", st ? ", " : "",
					job_state_name(st));
}

static int
state_bit(json_t *v, const char *what, unsigned *bits, struct proto_error *err)
{
	char names[256];
	int st = json_is_string(v) ? job_state_parse(json_string_value(v)) : -1;

	if (st < 0) {
		state_list(names, sizeof names);
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "\"%s\" must be one of %s", what,
				names);
		return -1;
	}
	*bits |= 1u << st;
	return 0;
}

static int
decode_states(json_t *v, struct filter *f, struct proto_error *err)
{
	json_t *s;
	size_t i;

	if (!json_is_array(v) || json_array_size(v) == 0) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"states\" must be a non-empty array of job states");
		return -1;
	}
	json_array_foreach(v, i, s)
		if (state_bit(s, "states", &f->states, err) == -1)
			return -1;
	return 0;
}

static int
cmp_id(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static int
decode_ids(json_t *v, struct filter *f, struct proto_error *err)
{
	json_t *id;
	size_t i, n = json_array_size(v);

	if (!json_is_array(v) || n == 0 || n > FILTER_MAX_IDS) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"ids\" must be an array of 1 to %d job ids", FILTER_MAX_IDS);
		return -1;
	}
	f->ids = xcalloc(n, sizeof *f->ids);
	json_array_foreach(v, i, id) {
		if (!json_is_integer(id) || json_integer_value(id) <= 0) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"ids\"[%zu] must be a job id (a positive integer)", i);
			return -1;
		}
		f->ids[i] = (uint64_t)json_integer_value(id);
	}
	f->nids = n;
	qsort(f->ids, n, sizeof *f->ids, cmp_id);
	return 0;
}

static int
decode_labels(json_t *v, struct filter *f, struct proto_error *err)
{
	char *cause = NULL;

	if (json_is_object(v) && json_object_size(v) == 0) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST,
				"\"labels\" selects jobs: give at least one \"KEY\":\"value\"");
		return -1;
	}
	if (labels_from_json(v, "labels", &f->labels, &cause) == -1) {
		proto_error_set(err, TASKD_ERR_BAD_REQUEST, "%s", cause);
		free(cause);
		return -1;
	}
	return 0;
}

static int
decode_scalars(json_t *req, unsigned allow, struct filter *f, struct proto_error *err)
{
	json_t *v;

	if ((allow & FILTER_NAME) && (v = json_object_get(req, "name")) != NULL) {
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"name\" must be a string without NUL bytes");
			return -1;
		}
		f->name = xstrdup(json_string_value(v));
		f->given |= FILTER_NAME;
	}
	if ((allow & FILTER_OLDER_THAN) && (v = json_object_get(req, "older_than")) != NULL) {
		if (!json_is_number(v) || !isfinite(json_number_value(v)) ||
		    json_number_value(v) < 0) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"older_than\" must be a number of seconds >= 0");
			return -1;
		}
		f->older_than = json_number_value(v);
		f->given |= FILTER_OLDER_THAN;
	}
	if ((allow & FILTER_ARRAY) && (v = json_object_get(req, "array")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			proto_error_set(err, TASKD_ERR_BAD_REQUEST,
					"\"array\" must be an array's id (a positive integer)");
			return -1;
		}
		f->array = (uint64_t)json_integer_value(v);
		f->given |= FILTER_ARRAY;
	}
	return 0;
}

static const struct {
	const char *name;
	unsigned bit;
} fields[] = {
	{ "state", FILTER_STATE }, { "states", FILTER_STATES }, { "labels", FILTER_LABELS },
	{ "name", FILTER_NAME }, { "older_than", FILTER_OLDER_THAN }, { "ids", FILTER_IDS },
	{ "array", FILTER_ARRAY },
};

unsigned
filter_field(const char *key)
{
	size_t i;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (strcmp(key, fields[i].name) == 0)
			return fields[i].bit;
	return 0;
}

const char *
filter_field_name(unsigned bit)
{
	size_t i;

	for (i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (fields[i].bit == bit)
			return fields[i].name;
	return NULL;
}

int
filter_decode(json_t *req, unsigned allow, struct filter *f, struct proto_error *err)
{
	json_t *v;

	memset(f, 0, sizeof *f);
	f->older_than = -1;
	if ((allow & FILTER_STATE) && (v = json_object_get(req, "state")) != NULL) {
		f->given |= FILTER_STATE;
		if (state_bit(v, "state", &f->states, err) == -1)
			goto fail;
	}
	if ((allow & FILTER_STATES) && (v = json_object_get(req, "states")) != NULL) {
		f->given |= FILTER_STATES;
		if (decode_states(v, f, err) == -1)
			goto fail;
	}
	if ((allow & FILTER_LABELS) && (v = json_object_get(req, "labels")) != NULL) {
		f->given |= FILTER_LABELS;
		if (decode_labels(v, f, err) == -1)
			goto fail;
	}
	if ((allow & FILTER_IDS) && (v = json_object_get(req, "ids")) != NULL) {
		f->given |= FILTER_IDS;
		if (decode_ids(v, f, err) == -1)
			goto fail;
	}
	if (decode_scalars(req, allow, f, err) == -1)
		goto fail;
	return 0;
fail:
	filter_free(f);
	return -1;
}

bool
filter_match(const struct filter *f, const struct job *j, double now)
{
	if (f->states != 0 && !(f->states & (1u << j->state)))
		return false;
	if (f->name != NULL && (j->spec.name == NULL || strcmp(f->name, j->spec.name) != 0))
		return false;
	if (f->older_than >= 0 &&
	    (!job_state_final(j->state) || j->finished_at <= 0 ||
	     now - j->finished_at < f->older_than))
		return false;
	if (f->ids != NULL && bsearch(&j->id, f->ids, f->nids, sizeof *f->ids, cmp_id) == NULL)
		return false;
	if (f->array != 0 && (j->array == NULL || j->array->id != f->array))
		return false;
	return labels_match(&j->spec.labels, &f->labels);
}

bool
filter_state_given(const struct filter *f, enum job_state st)
{
	return (f->states & (1u << st)) != 0;
}

void
filter_free(struct filter *f)
{
	labels_free(&f->labels);
	free(f->name);
	free(f->ids);
	memset(f, 0, sizeof *f);
	f->older_than = -1;
}
