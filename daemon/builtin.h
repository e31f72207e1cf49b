/*
 * The built-in job types: the module compiled into taskd (builtin.c),
 * first in the table of module types (modules.h), so its types have these
 * indices as a job's spec.type. BUILTIN_EXEC is not one of them: it is a
 * command (exec.c).
 */
#ifndef TASKD_BUILTIN_H
#define TASKD_BUILTIN_H

#include <taskd/module.h>

enum builtin_type {
	BUILTIN_EXEC = 0, /* not a module type: run argv as a command */
	BUILTIN_NOOP,
	BUILTIN_SLEEP,    /* sleep SECONDS: blocks, io-like, cancellable */
	BUILTIN_SPIN,     /* spin SECONDS: burns that much CPU time */
	BUILTIN_SUMSQ,    /* sumsq N: sum of i*i for i < N, exact, as decimal text */
	BUILTIN_COUNT,    /* count N: increment a counter N times (the seeds' loop) */
};

extern const struct taskd_module builtin_module;

#endif
