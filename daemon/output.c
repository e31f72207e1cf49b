#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "job.h"
#include "log.h"
#include "output.h"
#include "xmalloc.h"

static const char *const ext[] = { [OUTPUT_STDOUT] = "out", [OUTPUT_STDERR] = "err" };

char *
output_dir(const char *state_dir)
{
	return xprintf("%s/jobs", state_dir);
}

char *
output_cluster_dir(const char *state_dir)
{
	return xprintf("%s/cluster/jobs", state_dir);
}

char *
output_path(const char *dir, uint64_t id, enum output_stream stream)
{
	return xprintf("%s/%llu.%s", dir, (unsigned long long)id, ext[stream]);
}

uint64_t
output_size(const char *dir, uint64_t id)
{
	uint64_t n = 0;
	struct stat st;
	char *path;
	int s;

	for (s = OUTPUT_STDOUT; s <= OUTPUT_STDERR; s++) {
		path = output_path(dir, id, (enum output_stream)s);
		if (stat(path, &st) == 0)
			n += (uint64_t)st.st_size;
		else if (errno != ENOENT)
			log_warn("stat %s", path);
		free(path);
	}
	return n;
}

void
output_remove(const char *dir, uint64_t id)
{
	char *path;
	int s;

	for (s = OUTPUT_STDOUT; s <= OUTPUT_STDERR; s++) {
		path = output_path(dir, id, (enum output_stream)s);
		if (unlink(path) == -1 && errno != ENOENT)
			log_warn("unlink %s", path);
		free(path);
	}
}

/* Is name an output file's ("17.out")? *id is its job's id, 0 if the rest is not one. */
static bool
output_name(const char *name, uint64_t *id)
{
	size_t len = strlen(name);
	unsigned long long v;
	char *end;

	if (len < 5 || name[len - 4] != '.' ||
	    (strcmp(name + len - 3, ext[OUTPUT_STDOUT]) != 0 &&
	     strcmp(name + len - 3, ext[OUTPUT_STDERR]) != 0))
		return false;
	v = strtoull(name, &end, 10);
	*id = end == name + len - 4 ? v : 0;
	return true;
}

void
output_clean(const char *dir, struct jobs *js)
{
	struct dirent *de;
	uint64_t id;
	size_t n = 0;
	DIR *d = opendir(dir);

	if (d == NULL)
		fatal("opendir %s", dir);
	while ((de = readdir(d)) != NULL) {
		if (!output_name(de->d_name, &id) || (id != 0 && jobs_find(js, id) != NULL))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == -1)
			log_warn("unlink %s/%s", dir, de->d_name);
		else
			n++;
	}
	closedir(d);
	if (n > 0)
		log_info("removed %zu output files of unknown jobs from %s", n, dir);
}
