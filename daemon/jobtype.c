/* Job types: built-ins and handlers behind one lookup (jobtype.h). */
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "jobtype.h"
#include "xmalloc.h"

static const struct config *types_cfg;

void
jobtype_use(const struct config *cfg)
{
	types_cfg = cfg;
}

int
jobtype_find(const char *name, struct jobtype *t)
{
	const struct handler_config *h;
	int b;

	memset(t, 0, sizeof *t);
	if ((b = builtin_lookup(name)) >= 0) {
		t->source = JOBTYPE_BUILTIN;
		t->name = builtin_name(b);
		t->type = b;
		return 0;
	}
	if (types_cfg != NULL && (h = config_handler(types_cfg, name)) != NULL) {
		t->source = JOBTYPE_FROM_HANDLER;
		t->name = h->name;
		t->type = JOBTYPE_HANDLER;
		t->handler = h;
		return 0;
	}
	return -1;
}

char *
jobtype_known(void)
{
	char *s = NULL, *t;
	const char *name;
	size_t i;
	int b;

	for (b = 0; (name = builtin_name(b)) != NULL; b++) {
		t = s == NULL ? xstrdup(name) : xprintf("%s, %s", s, name);
		free(s);
		s = t;
	}
	for (i = 0; types_cfg != NULL && i < types_cfg->nhandlers; i++) {
		t = xprintf("%s, %s", s, types_cfg->handlers[i].name);
		free(s);
		s = t;
	}
	return s;
}

const char *
jobtype_name(int type, const char *handler)
{
	if (type == JOBTYPE_HANDLER)
		return handler != NULL ? handler : "?";
	return builtin_name(type);
}
