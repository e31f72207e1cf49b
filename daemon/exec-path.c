/*
 * Finding the command of a job as the shell does (exec_resolve, exec.h):
 * a name with a slash is taken as a path (relative to the job's cwd), any
 * other is looked up in the job's PATH (the default PATH without one);
 * 127 "command not found" or 126 "not executable" with the reason, like
 * the shell. Pure file system look-ups, from any thread.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "exec.h"
#include "xmalloc.h"

#define EXEC_DEFAULT_PATH TASKD_DEFAULT_PATH

/* dir/name, or name itself when it is absolute. */
static char *
path_join(const char *dir, const char *name)
{
	size_t len = strlen(dir);

	if (name[0] == '/')
		return xstrdup(name);
	while (len > 0 && dir[len - 1] == '/')
		len--;
	if (len == 0 && dir[0] == '/')
		return xprintf("/%s", name);
	return xprintf("%.*s/%s", (int)len, dir, name);
}

static const char *
env_path(char *const *env)
{
	size_t i;

	if (env == NULL)
		return EXEC_DEFAULT_PATH;
	for (i = 0; env[i] != NULL; i++)
		if (strncmp(env[i], "PATH=", 5) == 0)
			return env[i] + 5;
	return EXEC_DEFAULT_PATH;
}

/* An explicit path (contains '/'): use it, relative to cwd. */
static int
resolve_file(const char *file, const char *cwd, char **path, char **error)
{
	char *p = path_join(cwd, file);
	struct stat st;

	if (stat(p, &st) == -1) {
		if (errno == EACCES) {
			*error = xprintf("permission denied: %s", p);
			free(p);
			return 126;
		}
		*error = xprintf("command not found: %s", file);
		free(p);
		return 127;
	}
	if (S_ISDIR(st.st_mode)) {
		*error = xprintf("is a directory: %s", p);
		free(p);
		return 126;
	}
	if (!S_ISREG(st.st_mode) || access(p, X_OK) == -1) {
		*error = xprintf("permission denied: %s", p);
		free(p);
		return 126;
	}
	*path = p;
	return 0;
}

/* 1: executable regular file, 0: regular file we may not run, -1: neither. */
static int
classify(const char *p)
{
	struct stat st;

	if (stat(p, &st) == -1 || !S_ISREG(st.st_mode))
		return -1;
	return access(p, X_OK) == 0 ? 1 : 0;
}

/* The candidate for one PATH entry; relative entries are relative to cwd. */
static char *
candidate(const char *entry, size_t len, const char *cwd, const char *file)
{
	char *dir, *abs, *p;

	if (len == 0)
		return path_join(cwd, file);
	dir = xstrndup(entry, len);
	abs = path_join(cwd, dir);
	p = path_join(abs, file);
	free(abs);
	free(dir);
	return p;
}

/*
 * PATH search as bash does it: the first executable regular file wins;
 * directories are skipped; a non-executable file found on the way gives
 * 126 when nothing executable follows.
 */
static int
resolve_search(const char *file, const char *pathvar, const char *cwd, char **path, char **error)
{
	const char *entry = pathvar, *end;
	char *denied = NULL, *p;
	int kind;

	for (;;) {
		end = strchrnul(entry, ':');
		p = candidate(entry, (size_t)(end - entry), cwd, file);
		kind = classify(p);
		if (kind == 1) {
			free(denied);
			*path = p;
			return 0;
		}
		if (kind == 0 && denied == NULL)
			denied = p;
		else
			free(p);
		if (*end == '\0')
			break;
		entry = end + 1;
	}
	if (denied != NULL) {
		*error = xprintf("permission denied: %s", denied);
		free(denied);
		return 126;
	}
	*error = xprintf("command not found: %s", file);
	return 127;
}

int
exec_resolve(const char *file, char *const *env, const char *cwd, char **path, char **error)
{
	*path = NULL;
	*error = NULL;
	if (cwd == NULL)
		cwd = "/";
	if (file == NULL || file[0] == '\0') {
		*error = xstrdup("command not found: ");
		return 127;
	}
	if (strchr(file, '/') != NULL)
		return resolve_file(file, cwd, path, error);
	return resolve_search(file, env_path(env), cwd, path, error);
}
