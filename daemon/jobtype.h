/*
 * Job types: the one lookup from a type name (`submit --type NAME`) to
 * what runs it. A type comes from the built-in table (builtin.c: exec and
 * the demo types) or from the configuration's handlers (hpool.c); a
 * third source (C modules) slots in here the same way. Names are unique
 * across sources: the configuration refuses a handler named like a
 * built-in. Loop thread only.
 */
#ifndef TASKD_JOBTYPE_H
#define TASKD_JOBTYPE_H

#include "config.h"

/* spec.type of a job run by a handler (spec.handler names the handler). */
#define JOBTYPE_HANDLER (-2)

enum jobtype_source { JOBTYPE_BUILTIN, JOBTYPE_FROM_HANDLER };

struct jobtype {
	enum jobtype_source source;
	const char *name;
	int type;                             /* spec.type: enum builtin_type, or JOBTYPE_HANDLER */
	const struct handler_config *handler; /* JOBTYPE_FROM_HANDLER */
};

/* The configuration whose handlers are types (at start; it is reloaded in place). */
void jobtype_use(const struct config *cfg);
/* 0 with *t filled in, or -1 if no type has that name. */
int jobtype_find(const char *name, struct jobtype *t);
/* "exec, noop, sleep, spin, sumsq, count, thumb" (malloc'd), for messages. */
char *jobtype_known(void);
/* The name of a job's type: a built-in's, or its handler's. */
const char *jobtype_name(int type, const char *handler);

#endif
