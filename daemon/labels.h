/*
 * Job labels: small sets of KEY=VALUE pairs a client attaches to a job
 * (submit "labels") and selects jobs by (list/wait/cancel/clean/subscribe
 * "labels"). Keys are 1..TASKD_MAX_LABEL_KEY bytes of [A-Za-z0-9_.-],
 * values at most TASKD_MAX_LABEL_VALUE bytes of UTF-8 (no NUL), at most
 * TASKD_MAX_LABELS pairs. Kept sorted by key. Pure functions, no daemon state.
 */
#ifndef TASKD_LABELS_H
#define TASKD_LABELS_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

struct label {
	char *key;
	char *value;
};

struct labels {
	struct label *v; /* sorted by key, keys unique */
	size_t n;
};

/* Is key a valid label key? */
bool labels_key_valid(const char *key);
/*
 * {"K":"V",...} → *ls (replacing nothing: ls must be empty). what names the
 * field in messages ("labels"). -1 with *cause (malloc'd) on invalid input,
 * and *ls stays empty.
 */
int labels_from_json(const json_t *o, const char *what, struct labels *ls, char **cause);
/* {"K":"V",...} (a new object; {} when there are none). */
json_t *labels_to_json(const struct labels *ls);
/* Does have carry every pair of want (an empty want matches everything)? */
bool labels_match(const struct labels *have, const struct labels *want);
/* The value of key, or NULL. */
const char *labels_get(const struct labels *ls, const char *key);
void labels_copy(struct labels *dst, const struct labels *src);
void labels_free(struct labels *ls);

#endif
