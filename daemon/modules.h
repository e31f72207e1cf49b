/*
 * C modules (include/taskd/module.h, doc/modules.md): the table of module
 * job types, and loading modules into it.
 *
 * The table holds the built-in module (builtin.c: noop, sleep, spin,
 * sumsq, count, always there, at the indices of enum builtin_type) and then
 * the types of each module of the configuration, in its order. A job's
 * spec.type is its type's index here (BUILTIN_EXEC, 0, is a command, not a
 * module type). The table is filled once, at startup (the daemon, taskd -t,
 * each worker), and never changes afterwards: modules are never unloaded,
 * so pool threads read it without a lock. A reload that changes `modules`
 * takes effect at the next start (taskd.c).
 *
 * Every module file is kept open: a worker loads the very file the daemon
 * loaded (inherited as fd 4, 5, ...), even if the path was replaced since
 * (a package upgrade): the new file is used from the next start.
 */
#ifndef TASKD_MODULES_H
#define TASKD_MODULES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>
#include <taskd/module.h>

#include "config.h"

struct run;

/* The most modules a configuration may list (config-load.c enforces it too). */
#define MODULE_MAX 64
/* The first fd a worker finds its modules on. */
#define MODULE_WORKER_FD 4

/* One job type of a module, as taskd keeps it (copied from the module's struct taskd_type). */
struct modtype {
	const char *name;     /* the module's memory: never unloaded */
	enum job_class class;
	unsigned int flags;   /* TASKD_TYPE_* */
	const char *usage;    /* or NULL */
	int (*validate)(const struct taskd_args *, char *, size_t);
	int (*run)(struct taskd_job *);
	int module;           /* index of its module (module_path, module_name) */
};

/*
 * Load the configuration's modules into the table (once: at startup), with
 * every check of doc/modules.md (the file, dlopen, the symbol, the ABI
 * version and sizes, names unique across modules and the built-in types,
 * init()). 0, or -1 with *cause "FILE:LINE: modules[N] (PATH): message";
 * then nothing of this call stays in the table.
 */
int module_load_all(const struct config *cfg, char **cause);
/*
 * Handler names against the module types (a handler may not be named like
 * one): 0, or -1 with *cause "FILE:LINE: handlers[N] (NAME).name: ...".
 */
int module_check_handlers(const struct config *cfg, char **cause);

/* The index of the type named name, or -1. */
int module_find(const char *name);
/* Type index (1 .. module_ntypes()), or NULL if there is none. */
const struct modtype *module_type(int index);
/* Types in the table (the built-in ones included); valid indices are 1..this. */
int module_ntypes(void);
/* Is index one of the built-in module's types? */
bool module_builtin(int index);
/* The name of the module the type of this index comes from ("builtin" for the built-in one). */
const char *module_of(int index);
/* Does the configuration list the modules that are loaded (the same paths, in order)? */
bool module_same(const struct config *cfg);
/*
 * Status: [{"module","version","path","types":[{"name","class","usage","pure"}]}], the
 * built-in one first ("module", not "name": a "name" in status is a job type's or a handler's).
 */
json_t *module_to_json(void);

/*
 * Workers. module_worker_fds: the loaded modules' files (n of them, in
 * order) for a worker to inherit as MODULE_WORKER_FD + i, with their paths.
 * module_worker_load (in the worker): load each of them from its fd, and
 * close it; a module that fails is logged and left out (its jobs fail
 * there with a message).
 */
size_t module_worker_fds(const int **fds, const char *const **paths);
void module_worker_load(char *const *paths, size_t n);

/*
 * Check a job's arguments and input with its type's validate(): 0, or -1
 * with *error (malloc'd) "TYPE: message".
 */
int module_validate(int type, char *const *argv, const unsigned char *input, size_t input_len,
		    char **error);

/*
 * Run a module type's job in this thread (modrun.c): r->res gets the
 * status, the result or error, the thread's CPU times and the wall time.
 * With spec.as_user and a type that is not TASKD_TYPE_PURE, the module
 * code runs with the submitter's ids, in this thread only.
 */
void module_run(struct run *r);

#endif
