/* Job types: commands, module types and handlers behind one lookup (jobtype.h). */
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "jobtype.h"
#include "modules.h"
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
	int i;

	memset(t, 0, sizeof *t);
	if (strcmp(name, "exec") == 0) {
		t->source = JOBTYPE_EXEC;
		t->name = "exec";
		t->type = BUILTIN_EXEC;
		return 0;
	}
	if ((i = module_find(name)) > 0) {
		t->source = JOBTYPE_MODULE;
		t->module = module_type(i);
		t->name = t->module->name;
		t->type = i;
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
	char *s = xstrdup("exec"), *t;
	size_t i;
	int k;

	for (k = 1; k <= module_ntypes(); k++) {
		t = xprintf("%s, %s", s, module_type(k)->name);
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
	const struct modtype *m;

	if (type == JOBTYPE_HANDLER)
		return handler != NULL ? handler : "?";
	if (type == BUILTIN_EXEC)
		return "exec";
	return (m = module_type(type)) != NULL ? m->name : NULL;
}

bool
jobtype_has_output(int type)
{
	const struct modtype *m;

	if (type == BUILTIN_EXEC || type == JOBTYPE_HANDLER)
		return true;
	return (m = module_type(type)) != NULL && !(m->flags & TASKD_TYPE_PURE);
}
