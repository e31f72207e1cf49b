#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "exec.h"
#include "proctree.h"
#include "textfile.h"
#include "xmalloc.h"

/* The next space-separated unsigned field; false if there is none. */
static bool
field(const char **p, unsigned long long *v)
{
	char *end;

	while (**p == ' ')
		(*p)++;
	if (**p < '0' || **p > '9') {
		/* Signed fields (priority, nice...) may be negative: skip them as text. */
		if (**p == '-') {
			(*p)++;
			if (**p < '0' || **p > '9')
				return false;
			strtoull(*p, &end, 10);
			*p = end;
			*v = 0;
			return true;
		}
		return false;
	}
	errno = 0;
	*v = strtoull(*p, &end, 10);
	if (errno != 0)
		return false;
	*p = end;
	return **p == ' ' || **p == '\n' || **p == '\0';
}

int
proc_info_parse(const char *text, struct proc_info *pi)
{
	static long ticks, page_kb;
	unsigned long long v[22];
	const char *p, *close;
	char *end;
	long pid;
	int i;

	if (ticks == 0) {
		ticks = sysconf(_SC_CLK_TCK) > 0 ? sysconf(_SC_CLK_TCK) : 100;
		page_kb = sysconf(_SC_PAGESIZE) >= 1024 ? sysconf(_SC_PAGESIZE) / 1024 : 4;
	}
	errno = 0;
	pid = strtol(text, &end, 10);
	if (errno != 0 || end == text || pid <= 0 || pid > INT32_MAX || *end != ' ')
		return -1;
	/* comm may hold anything, ')' and spaces included: the last ')' ends it. */
	close = strrchr(text, ')');
	if (close == NULL || close < end || close[1] != ' ')
		return -1;
	p = close + 2;
	if (*p == '\0' || p[1] != ' ')
		return -1;
	memset(pi, 0, sizeof *pi);
	pi->state = *p;
	p += 2;
	/* ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime
	 * cutime cstime priority nice threads itreal starttime vsize rss */
	for (i = 0; i < 21; i++)
		if (!field(&p, &v[i]))
			return -1;
	if (v[0] > INT32_MAX || v[1] > INT32_MAX || v[2] > INT32_MAX)
		return -1;
	pi->pid = (pid_t)pid;
	pi->ppid = (pid_t)v[0];
	pi->pgrp = (pid_t)v[1];
	pi->session = (pid_t)v[2];
	pi->start = v[18];
	pi->cpu = (double)(v[10] + v[11] + v[12] + v[13]) / (double)ticks;
	pi->rss_kb = v[20] > (unsigned long long)LONG_MAX / (unsigned long long)page_kb
			     ? LONG_MAX
			     : (long)v[20] * page_kb;
	return 0;
}

int
proc_info_read(pid_t pid, struct proc_info *pi)
{
	char path[64], buf[1024];

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (textfile_read(path, buf, sizeof buf) <= 0)
		return -1;
	return proc_info_parse(buf, pi);
}

static int
cmp_ppid(const void *a, const void *b, void *arg)
{
	const struct proc_info *e = arg;
	pid_t x = e[*(const size_t *)a].ppid, y = e[*(const size_t *)b].ppid;

	return x < y ? -1 : x > y;
}

static int
cmp_pgid(const void *a, const void *b, void *arg)
{
	const struct proc_info *e = arg;
	pid_t x = e[*(const size_t *)a].pgrp, y = e[*(const size_t *)b].pgrp;

	return x < y ? -1 : x > y;
}

int
proc_snap_take(struct proc_snap *s, const char *root)
{
	char path[PATH_MAX], buf[1024];
	struct dirent *de;
	struct proc_info e;
	DIR *d;
	size_t i;

	if (s->root == NULL || strcmp(s->root, root) != 0) {
		free(s->root);
		s->root = xstrdup(root);
	}
	s->n = 0;
	if ((d = opendir(root)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "%s/%s/stat", root, de->d_name);
		/* Gone since readdir, or unreadable: skipped. */
		if (textfile_read(path, buf, sizeof buf) <= 0 || proc_info_parse(buf, &e) == -1)
			continue;
		if (s->n == s->cap) {
			s->cap = s->cap ? s->cap * 2 : 256;
			s->e = xreallocarray(s->e, s->cap, sizeof *s->e);
			s->by_ppid = xreallocarray(s->by_ppid, s->cap, sizeof *s->by_ppid);
			s->by_pgid = xreallocarray(s->by_pgid, s->cap, sizeof *s->by_pgid);
			s->mark = xreallocarray(s->mark, s->cap, sizeof *s->mark);
		}
		s->e[s->n++] = e;
	}
	closedir(d);
	for (i = 0; i < s->n; i++) {
		s->by_ppid[i] = s->by_pgid[i] = i;
		s->mark[i] = 0;
	}
	s->gen = 0;
	if (s->n > 0) { /* the arrays are NULL before the first process */
		qsort_r(s->by_ppid, s->n, sizeof *s->by_ppid, cmp_ppid, s->e);
		qsort_r(s->by_pgid, s->n, sizeof *s->by_pgid, cmp_pgid, s->e);
	}
	return 0;
}

void
proc_snap_free(struct proc_snap *s)
{
	free(s->e);
	free(s->by_ppid);
	free(s->by_pgid);
	free(s->mark);
	free(s->root);
	memset(s, 0, sizeof *s);
}

/* First position in idx (sorted by key) whose key is >= v. */
static size_t
lower(const struct proc_snap *s, const size_t *idx, bool by_pgid, pid_t v)
{
	size_t lo = 0, hi = s->n, mid;
	pid_t k;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		k = by_pgid ? s->e[idx[mid]].pgrp : s->e[idx[mid]].ppid;
		if (k < v)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static size_t
find_pid(const struct proc_snap *s, pid_t pid)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->e[i].pid == pid)
			return i;
	return SIZE_MAX;
}

int
proc_tree_usage(struct proc_snap *s, pid_t leader, struct proc_usage *u, pid_t *pids,
		size_t max, size_t *npids)
{
	size_t *queue, head = 0, tail = 0, i, k;
	pid_t p;

	memset(u, 0, sizeof *u);
	if (npids != NULL)
		*npids = 0;
	if ((i = find_pid(s, leader)) == SIZE_MAX)
		return -1;
	if (++s->gen == 0) {
		memset(s->mark, 0, s->n * sizeof *s->mark);
		s->gen = 1;
	}
	queue = xcalloc(s->n + 1, sizeof *queue);
	s->mark[i] = s->gen;
	queue[tail++] = i;
	/* The group's members whose parent is gone (init or a subreaper adopted them). */
	for (k = lower(s, s->by_pgid, true, leader); k < s->n && s->e[s->by_pgid[k]].pgrp == leader;
	     k++)
		if (s->mark[s->by_pgid[k]] != s->gen) {
			s->mark[s->by_pgid[k]] = s->gen;
			queue[tail++] = s->by_pgid[k];
		}
	while (head < tail) {
		i = queue[head++];
		p = s->e[i].pid;
		for (k = lower(s, s->by_ppid, false, p); k < s->n && s->e[s->by_ppid[k]].ppid == p;
		     k++)
			if (s->mark[s->by_ppid[k]] != s->gen) {
				s->mark[s->by_ppid[k]] = s->gen;
				queue[tail++] = s->by_ppid[k];
			}
	}
	for (k = 0; k < tail; k++) {
		i = queue[k];
		u->cpu += s->e[i].cpu;
		if (s->e[i].rss_kb < LONG_MAX - u->rss_kb)
			u->rss_kb += s->e[i].rss_kb;
		u->nprocs++;
		if (pids != NULL && npids != NULL && *npids < max)
			pids[(*npids)++] = s->e[i].pid;
	}
	free(queue);
	return 0;
}

long
proc_rss_kb(const char *root, pid_t pid)
{
	char path[PATH_MAX], buf[256];
	unsigned long long size, resident;
	long page_kb = sysconf(_SC_PAGESIZE) / 1024;

	snprintf(path, sizeof path, "%s/%d/statm", root, (int)pid);
	if (textfile_read(path, buf, sizeof buf) <= 0 || sscanf(buf, "%llu %llu", &size, &resident) != 2)
		return -1;
	if (page_kb <= 0)
		page_kb = 4;
	return resident > (unsigned long long)LONG_MAX / (unsigned long long)page_kb
		       ? LONG_MAX
		       : (long)resident * page_kb;
}

double
proc_wait(const char *root, pid_t pid)
{
	char path[PATH_MAX];

	snprintf(path, sizeof path, "%s/%d/schedstat", root, (int)pid);
	return run_schedstat_wait(path);
}
