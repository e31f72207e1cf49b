#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base64.h"
#include "job.h"
#include "log.h"
#include "output.h"
#include "xmalloc.h"

static const char *const ext[] = { [OUTPUT_STDOUT] = "out", [OUTPUT_STDERR] = "err",
				    [OUTPUT_STDIN] = "in" };

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

void
output_remove_input(const char *dir, uint64_t id)
{
	char *path = output_path(dir, id, OUTPUT_STDIN);

	if (unlink(path) == -1 && errno != ENOENT)
		log_warn("unlink %s", path);
	free(path);
}

static int
sync_dir(const char *dir, char **cause)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd == -1 || fsync(fd) == -1) {
		xasprintf(cause, "%s: %s", dir, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

int
output_store_input(const char *dir, uint64_t id, const char *data, size_t len, bool sync,
		   char **cause)
{
	char *path = output_path(dir, id, OUTPUT_STDIN);
	ssize_t n;
	size_t off = 0;
	int fd, rc = -1;

	/* O_TRUNC: a file of a submit never stored (a crash before its commit) goes. */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd == -1) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		free(path);
		return -1;
	}
	while (off < len) {
		n = write(fd, data + off, len - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			break;
		off += (size_t)n;
	}
	if (off < len || (sync && fsync(fd) == -1))
		xasprintf(cause, "%s: %s", path, strerror(errno));
	else if (close(fd) == 0 && (fd = -1, !sync || sync_dir(dir, cause) == 0))
		rc = 0;
	else if (fd != -1)
		xasprintf(cause, "%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	if (rc == -1)
		unlink(path);
	free(path);
	return rc;
}

int
output_read_path(const char *path, char **data, size_t *len, char **cause)
{
	struct stat sb;
	size_t off = 0;
	ssize_t n;
	int fd;

	*data = NULL;
	errno = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1 || fstat(fd, &sb) == -1)
		goto fail;
	*data = xmalloc((size_t)sb.st_size + 1);
	while (off < (size_t)sb.st_size) {
		n = read(fd, *data + off, (size_t)sb.st_size - off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			goto fail;
		off += (size_t)n;
	}
	close(fd);
	*len = off;
	return 0;
fail:
	xasprintf(cause, "cannot read its input %s: %s", path,
		  fd == -1 || errno != 0 ? strerror(errno) : "it shrank");
	if (fd != -1)
		close(fd);
	free(*data);
	*data = NULL;
	return -1;
}

char *
output_read_input(const char *dir, uint64_t id, char **cause)
{
	char *path = output_path(dir, id, OUTPUT_STDIN), *data, *b64 = NULL;
	size_t len;

	if (output_read_path(path, &data, &len, cause) == 0 &&
	    (b64 = base64_encode(data, len)) == NULL)
		fatalx("out of memory (base64)");
	free(data);
	free(path);
	return b64;
}

int
output_share_input(const char *dir, uint64_t from, uint64_t to, bool sync, char **cause)
{
	char *src = output_path(dir, from, OUTPUT_STDIN), *dst = output_path(dir, to, OUTPUT_STDIN);
	int rc = 0;

	unlink(dst); /* one of a submit never stored */
	if (link(src, dst) == -1) {
		xasprintf(cause, "%s: %s", src, strerror(errno));
		rc = -1;
	} else if (sync && sync_dir(dir, cause) == -1) {
		unlink(dst);
		rc = -1;
	}
	free(src);
	free(dst);
	return rc;
}

/*
 * Is name one of our files ("17.out", "17.err", "17.in")? *id is its job's
 * id, 0 if the rest is not one; *input whether it is an input.
 */
static bool
output_name(const char *name, uint64_t *id, bool *input)
{
	size_t len = strlen(name), elen;
	unsigned long long v;
	const char *dot = strrchr(name, '.');
	char *end;
	int s;

	if (dot == NULL || dot == name)
		return false;
	for (s = OUTPUT_STDOUT; s <= OUTPUT_STDIN; s++)
		if (strcmp(dot + 1, ext[s]) == 0)
			break;
	if (s > OUTPUT_STDIN)
		return false;
	elen = strlen(ext[s]) + 1;
	v = strtoull(name, &end, 10);
	*id = end == name + len - elen ? v : 0;
	*input = s == OUTPUT_STDIN;
	return true;
}

/* Does a job (or an array, for an input) id still need this file? */
static bool
wanted(struct jobs *js, uint64_t id, bool input)
{
	const struct job *j;

	if (id == 0)
		return false;
	if (!input)
		return jobs_find(js, id) != NULL;
	j = jobs_find(js, id);
	if (j != NULL && j->array == NULL)
		return j->spec.input_bytes > 0;
	return jobs_array_find(js, id) != NULL && jobs_array_find(js, id)->spec.input_bytes > 0;
}

void
output_clean(const char *dir, struct jobs *js)
{
	struct dirent *de;
	uint64_t id;
	size_t n = 0;
	bool input;
	DIR *d = opendir(dir);

	if (d == NULL)
		fatal("opendir %s", dir);
	while ((de = readdir(d)) != NULL) {
		if (!output_name(de->d_name, &id, &input) || wanted(js, id, input))
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
