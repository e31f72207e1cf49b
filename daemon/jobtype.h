/*
 * Job types: the one lookup from a type name (`submit --type NAME`) to
 * what runs it: `exec` (a command, exec.c), a module type (modules.h: the
 * built-in module's first, then the configured modules'), or a handler
 * of the configuration (hpool.c). Names are unique across them: the
 * configuration refuses a handler or a module type named like a type
 * that exists. Loop thread only.
 */
#ifndef TASKD_JOBTYPE_H
#define TASKD_JOBTYPE_H

#include <stdbool.h>

#include "config.h"

struct modtype;

/* spec.type of a job run by a handler (spec.handler names the handler). */
#define JOBTYPE_HANDLER (-2)

enum jobtype_source { JOBTYPE_EXEC, JOBTYPE_MODULE, JOBTYPE_FROM_HANDLER };

struct jobtype {
	enum jobtype_source source;
	const char *name;
	int type;                             /* spec.type: BUILTIN_EXEC, a module type's index, or JOBTYPE_HANDLER */
	const struct modtype *module;         /* JOBTYPE_MODULE */
	const struct handler_config *handler; /* JOBTYPE_FROM_HANDLER */
};

/* The configuration whose handlers are types (at start; it is reloaded in place). */
void jobtype_use(const struct config *cfg);
/* 0 with *t filled in, or -1 if no type has that name. */
int jobtype_find(const char *name, struct jobtype *t);
/* "exec, noop, sleep, spin, sumsq, count, hash, thumb" (malloc'd), for messages. */
char *jobtype_known(void);
/* The name of a job's type: exec, a module type's, or its handler's. */
const char *jobtype_name(int type, const char *handler);
/* May a job of this type have output files (a command, a handler, a module type not TASKD_TYPE_PURE)? */
bool jobtype_has_output(int type);

#endif
