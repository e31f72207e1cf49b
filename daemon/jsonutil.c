#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "xmalloc.h"

json_t *
string_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

json_t *
strv_or_null(char *const *v)
{
	json_t *a;
	size_t i;

	if (v == NULL)
		return json_null();
	a = json_array();
	for (i = 0; v[i] != NULL; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

json_t *
finite_real(double v)
{
	return json_real(isfinite(v) ? v : 0.0);
}

bool
string_without_nul(const json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

size_t
json_text_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

size_t
string_text_size(const char *s)
{
	const unsigned char *p;
	size_t n = 2;

	/* As jansson writes it: short escapes, \u00XX for other controls, UTF-8 as is. */
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' ||
		    *p == '\r' || *p == '\t')
			n += 2;
		else if (*p < 0x20)
			n += 6;
		else
			n++;
	}
	return n;
}

json_t *
string_cut(const char *s, size_t max)
{
	size_t n = strlen(s);
	json_t *v;
	char *buf;

	if (n <= max)
		return json_string(s);
	n = max - 3;
	/* Back to the start of a character: a cut one would not be UTF-8. */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	buf = xmalloc(n + 4);
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	v = json_string(buf);
	free(buf);
	return v;
}
