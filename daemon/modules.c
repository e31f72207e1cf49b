/*
 * The table of module job types, and loading modules into it (modules.h).
 *
 * What runs where. The table is filled at startup, on the main thread,
 * before any pool thread or worker exists: the built-in module by a
 * constructor, the configured ones by module_load_all (the daemon, taskd
 * -t) or module_worker_load (a worker). From then on it is read-only, and
 * read by every thread without a lock.
 *
 * Loading one module: open the file (kept open for the workers; a root
 * taskd refuses a file another user could write), dlopen it through
 * /proc/self/fd/N (the very file opened, not whatever the path names a
 * moment later), find TASKD_MODULE_SYMBOL, check the ABI version and the
 * sizes of struct taskd_module and of each struct taskd_type (no smaller
 * than version 1.0's; fields beyond what this taskd knows are ignored),
 * every type (a valid name, unique in the table; a class; run; no unknown
 * flags), then call its init(). The module's structs are copied into ours
 * field by field, up to the size the module declared.
 *
 * Who owns what. The table owns its copies; the strings they point to are
 * the modules' own (a module is never unloaded, except on a failed load,
 * before anything points into it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin.h"
#include "log.h"
#include "modules.h"
#include "xmalloc.h"

#define NAME_MAX_LEN 64
#define TYPES_MAX 256       /* per module */
#define MODULE_FD_FLOOR 100 /* module files are kept at fds >= this (below: a worker's) */
#define ABI_PROBE_MAX 9     /* taskd_module_v2 .. v9 are looked for, for a better message */

/* The sizes of version 1.0's structs: the least a module may declare. */
#define MODULE_V1_SIZE (offsetof(struct taskd_module, init) + sizeof(void *))
#define TYPE_V1_SIZE (offsetof(struct taskd_type, run) + sizeof(void *))
#define TYPE_FLAGS_KNOWN TASKD_TYPE_PURE

struct module {
	char *path;          /* NULL for the built-in module */
	char *name;          /* copies: shown after a failed load of another module too */
	char *version;       /* or NULL */
	int fd;              /* the file, for workers; -1 for the built-in module */
	void *handle;        /* dlopen's; NULL for the built-in module */
	int first, ntypes;   /* its types are first .. first + ntypes - 1 */
};

static struct module mods[MODULE_MAX + 1];
static int nmods;
/* types[0] stays empty: index 0 is BUILTIN_EXEC, a command. */
static struct modtype types[1 + (MODULE_MAX + 1) * TYPES_MAX];
static int ntypes;

/* The fds and paths of the loaded module files, for worker_spawn. */
static int worker_fds[MODULE_MAX];
static const char *worker_paths[MODULE_MAX];

/* --- checks ------------------------------------------------------------- */

static const char *
name_ok(const char *v)
{
	size_t n, i;

	if (v == NULL)
		return "no name";
	n = strnlen(v, NAME_MAX_LEN + 1);
	if (n == 0 || n > NAME_MAX_LEN)
		return "a name must be 1 to 64 characters";
	for (i = 0; i < n; i++)
		if (!(v[i] >= 'a' && v[i] <= 'z') && !(v[i] >= 'A' && v[i] <= 'Z') &&
		    !(v[i] >= '0' && v[i] <= '9') && v[i] != '_' && v[i] != '-' && v[i] != '.')
			return "a name may hold only letters, digits, '_', '-' and '.'";
	return NULL;
}

static int
type_index(const char *name)
{
	int i;

	for (i = 1; i <= ntypes; i++)
		if (strcmp(types[i].name, name) == 0)
			return i;
	return -1;
}

/* The module's types, copied into the table after ntypes (not counted yet): 0, or -1 with *why. */
static int
add_types(const struct taskd_module *m, int mi, int *count, char **why)
{
	const struct taskd_type *t;
	struct taskd_type tt;
	struct modtype *mt;
	const char *bad;
	int i, other;

	*count = 0;
	if (m->types == NULL) {
		*why = xstrdup("no types (types is NULL)");
		return -1;
	}
	for (i = 0; (t = m->types[i]) != NULL; i++) {
		if (i >= TYPES_MAX) {
			*why = xprintf("more than %d types", TYPES_MAX);
			return -1;
		}
		if (t->size < TYPE_V1_SIZE) {
			*why = xprintf("types[%d]: struct taskd_type of %u bytes, less than "
				       "version 1's %zu (not built with TASKD_TYPE_INIT?)", i,
				       t->size, TYPE_V1_SIZE);
			return -1;
		}
		memset(&tt, 0, sizeof tt);
		memcpy(&tt, t, t->size < sizeof tt ? t->size : sizeof tt);
		if ((bad = name_ok(tt.name)) != NULL) {
			*why = xprintf("types[%d]: %s", i, bad);
			return -1;
		}
		if (strcmp(tt.name, "exec") == 0) {
			*why = xstrdup("type exec: the name of commands, not a module's");
			return -1;
		}
		if ((other = type_index(tt.name)) > 0) {
			*why = xprintf("type %s: also a type of module %s%s%s%s", tt.name,
				       mods[types[other].module].name,
				       mods[types[other].module].path != NULL ? " (" : " (built in)",
				       mods[types[other].module].path != NULL
				           ? mods[types[other].module].path : "",
				       mods[types[other].module].path != NULL ? ")" : "");
			return -1;
		}
		if (tt.cls != TASKD_TYPE_AUTO && tt.cls != TASKD_TYPE_CPU &&
		    tt.cls != TASKD_TYPE_IO) {
			*why = xprintf("type %s: class %d is none of TASKD_TYPE_AUTO, _CPU, _IO",
				       tt.name, tt.cls);
			return -1;
		}
		if ((tt.flags & ~TYPE_FLAGS_KNOWN) != 0) {
			*why = xprintf("type %s: flags 0x%x unknown to this taskd", tt.name,
				       tt.flags & ~TYPE_FLAGS_KNOWN);
			return -1;
		}
		if (tt.run == NULL) {
			*why = xprintf("type %s: no run function", tt.name);
			return -1;
		}
		mt = &types[ntypes + 1];
		mt->name = tt.name;
		mt->class = tt.cls == TASKD_TYPE_CPU  ? CLASS_CPU
			    : tt.cls == TASKD_TYPE_IO ? CLASS_IO : CLASS_AUTO;
		mt->flags = tt.flags;
		mt->usage = tt.usage;
		mt->validate = tt.validate;
		mt->run = tt.run;
		mt->module = mi;
		/* Unique within the module too: the table so far has its earlier types. */
		ntypes++;
		*count = i + 1;
	}
	if (i == 0) {
		*why = xstrdup("no types");
		return -1;
	}
	return 0;
}

/* Check m and add it at mods[nmods] with its types: 0, or -1 with *why (nothing added). */
static int
add_module(const struct taskd_module *m, const char *path, int fd, void *handle, char **why)
{
	struct taskd_module mm;
	struct module *mod = &mods[nmods];
	const char *bad;
	char err[512];
	int count = 0, first = ntypes + 1;

	if (m->abi != TASKD_MODULE_ABI) {
		*why = xprintf("module ABI version %u; this taskd loads version %d", m->abi,
			       TASKD_MODULE_ABI);
		return -1;
	}
	if (m->size < MODULE_V1_SIZE) {
		*why = xprintf("struct taskd_module of %u bytes, less than version 1's %zu (not "
			       "built with TASKD_MODULE_INIT?)", m->size, MODULE_V1_SIZE);
		return -1;
	}
	memset(&mm, 0, sizeof mm);
	memcpy(&mm, m, m->size < sizeof mm ? m->size : sizeof mm);
	if ((bad = name_ok(mm.name)) != NULL) {
		*why = xprintf("module name: %s", bad);
		return -1;
	}
	if (nmods >= MODULE_MAX + 1) {
		*why = xprintf("more than %d modules", MODULE_MAX);
		return -1;
	}
	mod->name = xstrdup(mm.name);
	mod->version = mm.version != NULL ? xstrndup(mm.version, 64) : NULL;
	mod->path = path != NULL ? xstrdup(path) : NULL;
	if (add_types(&mm, nmods, &count, why) == -1)
		goto fail;
	err[0] = '\0';
	if (mm.init != NULL && mm.init(err, sizeof err) != 0) {
		err[sizeof err - 1] = '\0';
		*why = xprintf("init failed: %s", err[0] != '\0' ? err : "(no message)");
		goto fail;
	}
	mod->fd = fd;
	mod->handle = handle;
	mod->first = first;
	mod->ntypes = count;
	nmods++;
	return 0;
fail:
	/* The types it added so far go again. */
	memset(&types[first], 0, (size_t)(ntypes - first + 1) * sizeof types[0]);
	ntypes = first - 1;
	free(mod->name);
	free(mod->version);
	free(mod->path);
	memset(mod, 0, sizeof *mod);
	return -1;
}

/* The built-in module, before main() runs: it is always there, at its fixed indices. */
static void __attribute__((constructor))
modules_builtin(void)
{
	char *why = NULL;

	if (add_module(&builtin_module, NULL, -1, NULL, &why) == -1 ||
	    module_find("noop") != BUILTIN_NOOP || module_find("count") != BUILTIN_COUNT) {
		fprintf(stderr, "taskd: the built-in module: %s\n", why != NULL ? why : "order");
		abort();
	}
}

/* --- loading a file --------------------------------------------------------- */

/*
 * A root taskd runs module code as root: a file some other user could
 * write is refused (as sudo refuses its plugins). Not checked when taskd
 * is not root, where a module can do nothing its user cannot.
 */
static int
file_ok(int fd, char **why)
{
	struct stat st;
	uid_t me = geteuid();

	if (fstat(fd, &st) == -1) {
		*why = xprintf("cannot stat: %s", strerror(errno));
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		*why = xstrdup("not a regular file");
		return -1;
	}
	if (me == 0 && st.st_uid != 0) {
		*why = xprintf("owned by uid %u: a module taskd runs as root must be root's",
			       (unsigned)st.st_uid);
		return -1;
	}
	if (me == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		*why = xprintf("writable by its group or others (mode %04o): a module taskd runs "
			       "as root must be writable by root only", st.st_mode & 07777);
		return -1;
	}
	return 0;
}

/* "taskd_module_v2" in the file instead: a module for another ABI version. */
static char *
missing_symbol(void *h)
{
	char sym[32];
	int v;

	for (v = 2; v <= ABI_PROBE_MAX; v++) {
		snprintf(sym, sizeof sym, "taskd_module_v%d", v);
		if (dlsym(h, sym) != NULL)
			return xprintf("a module for ABI version %d (it has %s, not %s); this taskd "
				       "loads version %d", v, sym, TASKD_MODULE_SYMBOL,
				       TASKD_MODULE_ABI);
	}
	return xprintf("no symbol %s: not a taskd module (or not exported: build it with "
		       "default visibility for that symbol)", TASKD_MODULE_SYMBOL);
}

/* dlopen the open file fd and add its module: 0, or -1 with *why (fd not closed). */
static int
load_fd(int fd, const char *path, char **why)
{
	const struct taskd_module *m;
	char self[64];
	void *h;

	snprintf(self, sizeof self, "/proc/self/fd/%d", fd);
	dlerror();
	h = dlopen(self, RTLD_NOW | RTLD_LOCAL);
	if (h == NULL) {
		*why = xprintf("cannot load: %s", dlerror());
		return -1;
	}
	dlerror();
	m = dlsym(h, TASKD_MODULE_SYMBOL);
	if (m == NULL) {
		*why = missing_symbol(h);
		dlclose(h);
		return -1;
	}
	if (add_module(m, path, fd, h, why) == -1) {
		dlclose(h);
		return -1;
	}
	return 0;
}

/* Open path at an fd >= MODULE_FD_FLOOR (a worker's own fds 3, 4, ... never collide). */
static int
open_module(const char *path, char **why)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY), high;

	if (fd == -1) {
		*why = xprintf("cannot open: %s", strerror(errno));
		return -1;
	}
	high = fcntl(fd, F_DUPFD_CLOEXEC, MODULE_FD_FLOOR);
	close(fd);
	if (high == -1)
		*why = xprintf("cannot keep it open: %s", strerror(errno));
	return high;
}

/* Unload the modules from index from on (a failed module_load_all). */
static void
unload_from(int from)
{
	int i;

	for (i = nmods - 1; i >= from; i--) {
		memset(&types[mods[i].first], 0, (size_t)mods[i].ntypes * sizeof types[0]);
		ntypes -= mods[i].ntypes;
		if (mods[i].handle != NULL)
			dlclose(mods[i].handle);
		if (mods[i].fd != -1)
			close(mods[i].fd);
		free(mods[i].path);
		free(mods[i].name);
		free(mods[i].version);
		memset(&mods[i], 0, sizeof mods[i]);
	}
	nmods = from;
}

int
module_load_all(const struct config *cfg, char **cause)
{
	const struct module_config *mc;
	char *why = NULL;
	int from = nmods, fd;
	size_t i;

	for (i = 0; i < cfg->nmodules; i++) {
		mc = &cfg->modules[i];
		fd = open_module(mc->path, &why);
		if (fd != -1 && file_ok(fd, &why) == 0 && load_fd(fd, mc->path, &why) == 0) {
			worker_fds[nmods - 2] = fd;
			worker_paths[nmods - 2] = mods[nmods - 1].path;
			log_info("module %s%s%s loaded from %s: %d job type%s", mods[nmods - 1].name,
				 mods[nmods - 1].version != NULL ? " " : "",
				 mods[nmods - 1].version != NULL ? mods[nmods - 1].version : "",
				 mc->path, mods[nmods - 1].ntypes,
				 mods[nmods - 1].ntypes == 1 ? "" : "s");
			continue;
		}
		if (fd != -1)
			close(fd);
		xasprintf(cause, "%s:%u: modules[%zu] (%s): %s", mc->file, mc->line, i, mc->path,
			  why);
		free(why);
		unload_from(from);
		return -1;
	}
	return 0;
}

int
module_check_handlers(const struct config *cfg, char **cause)
{
	const struct handler_config *h;
	int t;
	size_t i;

	for (i = 0; i < cfg->nhandlers; i++) {
		h = &cfg->handlers[i];
		if ((t = module_find(h->name)) < 0)
			continue;
		if (module_builtin(t))
			xasprintf(cause, "%s:%u: handlers[%zu] (%s).name: is a built-in job type",
				  cfg->path != NULL ? cfg->path : "(config)", h->line, i, h->name);
		else
			xasprintf(cause, "%s:%u: handlers[%zu] (%s).name: is a job type of module "
				  "%s (%s)", cfg->path != NULL ? cfg->path : "(config)", h->line, i,
				  h->name, module_of(t), mods[types[t].module].path);
		return -1;
	}
	return 0;
}

/* --- the table ------------------------------------------------------------- */

int
module_find(const char *name)
{
	return type_index(name);
}

const struct modtype *
module_type(int index)
{
	return index >= 1 && index <= ntypes ? &types[index] : NULL;
}

int
module_ntypes(void)
{
	return ntypes;
}

bool
module_builtin(int index)
{
	return index >= 1 && index <= ntypes && types[index].module == 0;
}

const char *
module_of(int index)
{
	return index >= 1 && index <= ntypes ? mods[types[index].module].name : NULL;
}

bool
module_same(const struct config *cfg)
{
	size_t i;

	if (cfg->nmodules != (size_t)(nmods - 1))
		return false;
	for (i = 0; i < cfg->nmodules; i++)
		if (strcmp(cfg->modules[i].path, mods[i + 1].path) != 0)
			return false;
	return true;
}

json_t *
module_to_json(void)
{
	json_t *a = json_array(), *m, *ts;
	const struct modtype *t;
	int i, k;

	for (i = 0; i < nmods; i++) {
		ts = json_array();
		for (k = 0; k < mods[i].ntypes; k++) {
			t = &types[mods[i].first + k];
			json_array_append_new(ts, json_pack("{s:s,s:s,s:s?,s:b}", "name", t->name,
							    "class", config_class_name(t->class),
							    "usage", t->usage, "pure",
							    (t->flags & TASKD_TYPE_PURE) != 0));
		}
		m = json_pack("{s:s,s:s?,s:s?,s:o}", "module", mods[i].name, "version",
			      mods[i].version, "path", mods[i].path, "types", ts);
		json_array_append_new(a, m);
	}
	return a;
}

/* --- workers ----------------------------------------------------------------- */

size_t
module_worker_fds(const int **fds, const char *const **paths)
{
	*fds = worker_fds;
	*paths = worker_paths;
	return (size_t)(nmods - 1);
}

void
module_worker_load(char *const *paths, size_t n)
{
	char *why = NULL;
	int fd;
	size_t i;

	for (i = 0; i < n && i < MODULE_MAX; i++) {
		fd = MODULE_WORKER_FD + (int)i;
		if (fcntl(fd, F_SETFD, FD_CLOEXEC) == -1 || load_fd(fd, paths[i], &why) == -1) {
			log_warnx("worker: module %s: %s (its job types fail in this worker)",
				  paths[i], why != NULL ? why : strerror(errno));
			free(why);
			why = NULL;
		}
		/* Loaded: mapped, the fd is no longer needed (workers start no workers). */
		close(fd);
		if (nmods > 0 && mods[nmods - 1].fd == fd)
			mods[nmods - 1].fd = -1;
	}
}

/* --- validate ------------------------------------------------------------------ */

int
module_validate(int type, char *const *argv, const unsigned char *input, size_t input_len,
		char **error)
{
	const struct modtype *t = module_type(type);
	struct taskd_args a;
	char err[1024];
	int argc = 0;

	*error = NULL;
	if (t == NULL) {
		*error = xprintf("unknown job type %d", type);
		return -1;
	}
	if (t->validate == NULL)
		return 0;
	while (argv != NULL && argv[argc] != NULL)
		argc++;
	memset(&a, 0, sizeof a);
	a.size = sizeof a;
	a.argc = argc;
	a.argv = argv != NULL ? argv : (char *const[]){NULL};
	a.input = input;
	a.input_len = input_len;
	err[0] = '\0';
	if (t->validate(&a, err, sizeof err) == 0)
		return 0;
	err[sizeof err - 1] = '\0';
	*error = xprintf("%s: %s", t->name, err[0] != '\0' ? err : "invalid arguments");
	return -1;
}
