#include <math.h>
#include <string.h>

#include "jsonutil.h"

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
