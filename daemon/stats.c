#include <jansson.h>

#include <event2/buffer.h>

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

void
stats_to_prometheus(struct evbuffer *out)
{
#define X(name, help)                                                                              \
	evbuffer_add_printf(out, "# HELP taskd_" #name "_total " help "\n"                         \
				 "# TYPE taskd_" #name "_total counter\n"                           \
				 "taskd_" #name "_total %llu\n",                                    \
			    (unsigned long long)stats.name);
	TASKD_COUNTERS(X)
#undef X
}

void
stats_gauge(struct evbuffer *out, const char *name, const char *labels, double value,
	    const char *help)
{
	if (help != NULL)
		evbuffer_add_printf(out, "# HELP taskd_%s %s\n# TYPE taskd_%s gauge\n", name, help,
				    name);
	evbuffer_add_printf(out, "taskd_%s%s %.17g\n", name, labels != NULL ? labels : "", value);
}
