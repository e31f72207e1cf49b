/* Built-in job types: run inside the runner (a pool thread for now). */
#ifndef TASKD_BUILTIN_H
#define TASKD_BUILTIN_H

struct run;

enum builtin_type {
	BUILTIN_EXEC = 0, /* not a built-in: run argv as a command */
	BUILTIN_NOOP,
	BUILTIN_SLEEP,    /* sleep SECONDS: blocks, io-like, cancellable */
	BUILTIN_SPIN,     /* spin SECONDS: burns that much CPU time */
	BUILTIN_SUMSQ,    /* sumsq N: sum of i*i for i < N, exact, as decimal text */
	BUILTIN_COUNT,    /* count N: increment a counter N times (the seeds' loop) */
};

/* "exec", "noop", ...; -1 if unknown. */
int builtin_lookup(const char *name);
const char *builtin_name(int type);

/* Check a built-in's arguments at submit time; 0, or -1 with *error (malloc'd). */
int builtin_validate(int type, char *const *argv, char **error);

/* Run a built-in; fills r->res (status, cpu times of the thread, result, timestamps). */
void builtin_run(struct run *r);

#endif
