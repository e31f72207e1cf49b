#include <stdlib.h>
#include <string.h>

#include <taskd/protocol.h>

#include "labels.h"
#include "xmalloc.h"

bool
labels_key_valid(const char *key)
{
	size_t i, n = strlen(key);

	if (n == 0 || n > TASKD_MAX_LABEL_KEY)
		return false;
	for (i = 0; i < n; i++) {
		char c = key[i];

		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

static int
cmp_label(const void *a, const void *b)
{
	return strcmp(((const struct label *)a)->key, ((const struct label *)b)->key);
}

int
labels_from_json(const json_t *o, const char *what, struct labels *ls, char **cause)
{
	const char *key;
	json_t *v;
	size_t n;

	memset(ls, 0, sizeof *ls);
	if (!json_is_object(o)) {
		xasprintf(cause, "\"%s\" must be an object of strings {\"KEY\":\"value\"}", what);
		return -1;
	}
	n = json_object_size(o);
	if (n > TASKD_MAX_LABELS) {
		xasprintf(cause, "\"%s\" has %zu labels (at most %d)", what, n, TASKD_MAX_LABELS);
		return -1;
	}
	json_object_foreach((json_t *)o, key, v) {
		if (!labels_key_valid(key)) {
			xasprintf(cause, "\"%s\": bad key \"%.80s\" (1 to %d characters of "
				  "A-Z a-z 0-9 _ . -)", what, key, TASKD_MAX_LABEL_KEY);
			return -1;
		}
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		    json_string_length(v) > TASKD_MAX_LABEL_VALUE) {
			xasprintf(cause, "\"%s\".%s must be a string of at most %d bytes without "
				  "NUL bytes", what, key, TASKD_MAX_LABEL_VALUE);
			return -1;
		}
	}
	if (n == 0)
		return 0;
	ls->v = xcalloc(n, sizeof *ls->v);
	json_object_foreach((json_t *)o, key, v) {
		ls->v[ls->n].key = xstrdup(key);
		ls->v[ls->n].value = xstrdup(json_string_value(v));
		ls->n++;
	}
	qsort(ls->v, ls->n, sizeof *ls->v, cmp_label);
	return 0;
}

json_t *
labels_to_json(const struct labels *ls)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < ls->n; i++)
		json_object_set_new(o, ls->v[i].key, json_string(ls->v[i].value));
	return o;
}

const char *
labels_get(const struct labels *ls, const char *key)
{
	struct label k = { .key = (char *)key }, *l;

	if (ls->n == 0)
		return NULL;
	l = bsearch(&k, ls->v, ls->n, sizeof *ls->v, cmp_label);
	return l != NULL ? l->value : NULL;
}

bool
labels_match(const struct labels *have, const struct labels *want)
{
	size_t i, h = 0;

	/* Both sorted by key: one merge pass. */
	for (i = 0; i < want->n; i++) {
		while (h < have->n && strcmp(have->v[h].key, want->v[i].key) < 0)
			h++;
		if (h == have->n || strcmp(have->v[h].key, want->v[i].key) != 0 ||
		    strcmp(have->v[h].value, want->v[i].value) != 0)
			return false;
	}
	return true;
}

void
labels_copy(struct labels *dst, const struct labels *src)
{
	size_t i;

	memset(dst, 0, sizeof *dst);
	if (src->n == 0)
		return;
	dst->v = xcalloc(src->n, sizeof *dst->v);
	for (i = 0; i < src->n; i++) {
		dst->v[i].key = xstrdup(src->v[i].key);
		dst->v[i].value = xstrdup(src->v[i].value);
	}
	dst->n = src->n;
}

void
labels_free(struct labels *ls)
{
	size_t i;

	for (i = 0; i < ls->n; i++) {
		free(ls->v[i].key);
		free(ls->v[i].value);
	}
	free(ls->v);
	memset(ls, 0, sizeof *ls);
}
