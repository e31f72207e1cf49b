/* Gates (gate.h): a named queue's slots, an array's MAX. */
#include <stdlib.h>

#include "gate.h"
#include "sched.h"
#include "xmalloc.h"

struct gate *
gate_new(const char *name, int limit)
{
	struct gate *g = xcalloc(1, sizeof *g);

	g->name = name != NULL ? xstrdup(name) : NULL;
	g->limit = limit;
	g->waiting = jobq_new();
	return g;
}

void
gate_free(struct gate *g)
{
	if (g == NULL)
		return;
	jobq_free(g->waiting);
	free(g->name);
	free(g);
}

bool
gate_open(const struct gate *g)
{
	return !g->paused && !g->removed && g->held < (size_t)(g->limit > 0 ? g->limit : 0);
}

size_t
gate_queued(const struct gate *g)
{
	return jobq_len(g->waiting) + (g->held - g->running);
}

json_t *
gate_to_json(const struct gate *g)
{
	return json_pack("{s:s?,s:i,s:I,s:I,s:b,s:b}", "name", g->name, "slots", g->limit,
			 "running", (json_int_t)g->running, "queued", (json_int_t)gate_queued(g),
			 "paused", g->paused, "removed", g->removed);
}
