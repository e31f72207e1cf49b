#include <jansson.h>

#include "stats.h"

struct stats stats;

json_t *
stats_to_json(void)
{
	json_t *o = json_object();

#define X(name, help) json_object_set_new(o, #name, json_integer((json_int_t)stats.name));
	TASKD_COUNTERS(X)
#undef X
	return o;
}
