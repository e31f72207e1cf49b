/*
 * Job selectors in requests (doc/protocol.md "Selecting jobs"): list, wait,
 * cancel, clean and subscribe pick jobs by state(s), labels, name, age and
 * ids. Decoding validates; matching is a pure function of the job (the
 * caller applies the uid rules). Loop thread only, no daemon state.
 */
#ifndef TASKD_FILTER_H
#define TASKD_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "job.h"
#include "labels.h"
#include "proto.h"

/* Which request fields an op takes. */
#define FILTER_STATE 0x01      /* "state": one state */
#define FILTER_STATES 0x02     /* "states": [state, ...] */
#define FILTER_LABELS 0x04     /* "labels": {"K":"V"} (1 or more: all must match) */
#define FILTER_NAME 0x08       /* "name": exact job name */
#define FILTER_OLDER_THAN 0x10 /* "older_than": seconds since the job finished */
#define FILTER_IDS 0x20        /* "ids": [id, ...] */
#define FILTER_ARRAY 0x40      /* "array": an array's id: its jobs */
#define FILTER_LAST FILTER_ARRAY

struct filter {
	unsigned states;       /* bit per enum job_state; 0 = any */
	struct labels labels;  /* empty = any */
	char *name;            /* NULL = any */
	double older_than;     /* < 0 = any */
	uint64_t *ids;         /* sorted; NULL = any */
	size_t nids;
	uint64_t array;        /* 0 = any */
	unsigned given;        /* FILTER_* fields present in the request */
};

/*
 * Decode the fields of req that allow names (other fields are not looked
 * at: the op table says which a request may carry); -1 with *err
 * (bad_request).
 */
int filter_decode(json_t *req, unsigned allow, struct filter *f, struct proto_error *err);
/* The FILTER_* bit of a selector field's name, 0 if key is none; and back. */
unsigned filter_field(const char *key);
const char *filter_field_name(unsigned bit);
/* Does j pass? now: the current unix time (for older_than). */
bool filter_match(const struct filter *f, const struct job *j, double now);
/* Was st named by "state" or "states"? */
bool filter_state_given(const struct filter *f, enum job_state st);
void filter_free(struct filter *f);

#endif
