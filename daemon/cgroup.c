#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "clock.h"
#include "log.h"
#include "psi.h"
#include "textfile.h"
#include "xmalloc.h"

#define CG_KILL_ROUNDS 20   /* one-by-one SIGKILL passes before Linux 5.14 */
#define CG_PROCS_MAX 4096   /* members looked at per call */

struct cgroups {
	char *own;          /* the cgroup taskd runs in */
	char *dir;          /* own/taskd-HASH: the subtree of job cgroups */
	unsigned controllers; /* CG_* enabled for job cgroups */
};

static const struct {
	unsigned bit;
	const char *name;
} ctrl_names[] = { { CG_MEMORY, "memory" }, { CG_CPU, "cpu" }, { CG_PIDS, "pids" } };

#define NCTRL (sizeof ctrl_names / sizeof ctrl_names[0])

/* ---- files ---- */

static char *
at(const char *dir, const char *file)
{
	return xprintf("%s/%s", dir, file);
}

static ssize_t
read_at(const char *dir, const char *file, char *buf, size_t len)
{
	char *p = at(dir, file);
	ssize_t n = textfile_read(p, buf, len);
	int saved = errno;

	free(p);
	errno = saved;
	return n;
}

static int
write_at(const char *dir, const char *file, const char *text)
{
	char *p = at(dir, file);
	int r = textfile_write(p, text), saved = errno;

	free(p);
	errno = saved;
	return r;
}

/* ---- parsers ---- */

unsigned
cg_parse_controllers(const char *text)
{
	char word[32];
	const char *p = text;
	unsigned mask = 0;
	size_t i, n;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\n' || *p == '\t')
			p++;
		for (n = 0; p[n] != '\0' && p[n] != ' ' && p[n] != '\n' && p[n] != '\t'; n++)
			;
		if (n > 0 && n < sizeof word) {
			memcpy(word, p, n);
			word[n] = '\0';
			for (i = 0; i < NCTRL; i++)
				if (strcmp(word, ctrl_names[i].name) == 0)
					mask |= ctrl_names[i].bit;
		}
		p += n;
	}
	return mask;
}

const char *
cg_controller_names(unsigned mask, char *buf, size_t len)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < NCTRL; i++)
		if ((mask & ctrl_names[i].bit) && o < len)
			o += (size_t)snprintf(buf + o, len - o, "%s%s", o > 0 ? ", " : "",
					      ctrl_names[i].name);
	return buf;
}

int
cg_parse_cpu_stat(const char *text, struct cg_usage *u)
{
	unsigned long long v;
	const char *line = text;
	char name[32];
	int seen = 0;

	u->cpu = u->cpu_user = u->cpu_sys = 0;
	while (line != NULL && *line != '\0') {
		if (sscanf(line, "%31s %llu", name, &v) == 2) {
			if (strcmp(name, "usage_usec") == 0) {
				u->cpu = (double)v / 1e6;
				seen = 1;
			} else if (strcmp(name, "user_usec") == 0)
				u->cpu_user = (double)v / 1e6;
			else if (strcmp(name, "system_usec") == 0)
				u->cpu_sys = (double)v / 1e6;
		}
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return seen ? 0 : -1;
}

void
cg_cpu_max(double cpus, char *buf, size_t len)
{
	if (!(cpus > 0))
		snprintf(buf, len, "max 100000");
	else
		snprintf(buf, len, "%.0f 100000", ceil(cpus * 100000));
}

/* ---- the daemon's subtree ---- */

/* The cgroup2 mount point and its root in the hierarchy, from mountinfo. */
static int
find_mount(char **mnt, char **root)
{
	char *line = NULL, *sep, *f[5], *save, *p;
	size_t cap = 0;
	FILE *fp = fopen("/proc/self/mountinfo", "re");
	int i, found = -1;

	if (fp == NULL)
		return -1;
	while (found == -1 && getline(&line, &cap, fp) != -1) {
		sep = strstr(line, " - cgroup2 ");
		if (sep == NULL)
			continue;
		*sep = '\0';
		save = NULL;
		for (i = 0, p = line; i < 5; i++, p = NULL)
			if ((f[i] = strtok_r(p, " ", &save)) == NULL)
				break;
		if (i < 5)
			continue;
		/* Octal escapes (\040 for a space) in the mount point. */
		for (p = f[4]; *p != '\0'; p++) {
			if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' &&
			    p[2] <= '7' && p[3] >= '0' && p[3] <= '7') {
				*p = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
				memmove(p + 1, p + 4, strlen(p + 4) + 1);
			}
		}
		*mnt = xstrdup(f[4]);
		*root = xstrdup(f[3]);
		found = 0;
	}
	free(line);
	fclose(fp);
	return found;
}

/* Our cgroup in the unified hierarchy ("0::/path"), malloc'd. */
static char *
own_path(void)
{
	char buf[4096], *line, *nl;

	if (textfile_read("/proc/self/cgroup", buf, sizeof buf) <= 0)
		return NULL;
	for (line = buf; line != NULL && *line != '\0'; line = nl) {
		nl = strchr(line, '\n');
		if (nl != NULL)
			*nl++ = '\0';
		if (strncmp(line, "0::", 3) == 0)
			return xstrdup(line + 3);
	}
	return NULL;
}

/* systemd marks a cgroup it delegated (Delegate=yes) with this xattr; or it is ours. */
static bool
delegated(const char *dir)
{
	char v[8];
	struct stat st;
	ssize_t n;

	n = getxattr(dir, "trusted.delegate", v, sizeof v - 1);
	if (n <= 0)
		n = getxattr(dir, "user.delegate", v, sizeof v - 1);
	if (n > 0 && v[0] == '1')
		return true;
	return geteuid() != 0 && stat(dir, &st) == 0 && st.st_uid == geteuid();
}

/* Only the hierarchy's root cgroup has no cgroup.type. */
static bool
hierarchy_root(const char *dir)
{
	char *t = at(dir, "cgroup.type");
	bool root = access(dir, F_OK) == 0 && access(t, F_OK) == -1 && errno == ENOENT;

	free(t);
	return root;
}

struct cgroups *
cgroups_open(const char *state_dir, char **why)
{
	char *mnt = NULL, *root = NULL, *path = own_path(), *own;
	const char *rel;
	struct cgroups *cg;
	size_t rlen;

	*why = NULL;
	if (path == NULL || find_mount(&mnt, &root) == -1) {
		*why = xstrdup(path == NULL ? "taskd is in no cgroup v2 (no 0:: line in "
					      "/proc/self/cgroup)"
					    : "no cgroup2 file system is mounted");
		free(path);
		return NULL;
	}
	/* The mount shows the hierarchy from root (a cgroup namespace, a bind mount). */
	rlen = strcmp(root, "/") == 0 ? 0 : strlen(root);
	if (rlen > 0 && (strncmp(path, root, rlen) != 0 || (path[rlen] != '/' && path[rlen])))
		rel = NULL;
	else
		rel = path + rlen;
	if (rel == NULL) {
		xasprintf(why, "taskd's cgroup %s is outside the cgroup2 mount %s", path, mnt);
		cg = NULL;
	} else {
		own = xprintf("%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
		cg = cgroups_open_at(own, hierarchy_root(own), state_dir, why);
		free(own);
	}
	free(mnt);
	free(root);
	free(path);
	return cg;
}

/*
 * Controllers for the job cgroups. In the hierarchy's root, or in a
 * non-root cgroup delegated to us, the parent's subtree_control may need
 * them first; a non-root cgroup with processes in it cannot enable any
 * (cgroup v2's no-internal-processes rule), so taskd then moves itself
 * into a leaf of its own (the pattern systemd documents for Delegate=yes).
 */
static unsigned
enable_controllers(struct cgroups *cg, bool own_is_root)
{
	char buf[256], cmd[16], *leaf, pid[32];
	unsigned avail, on, want, got = 0;
	size_t i;

	if (read_at(cg->own, "cgroup.controllers", buf, sizeof buf) < 0)
		return 0;
	avail = cg_parse_controllers(buf);
	on = read_at(cg->own, "cgroup.subtree_control", buf, sizeof buf) >= 0
		     ? cg_parse_controllers(buf)
		     : 0;
	want = avail & ~on;
	if (want != 0 && !own_is_root && delegated(cg->own)) {
		leaf = at(cg->own, "taskd-main");
		snprintf(pid, sizeof pid, "%d", (int)getpid());
		if ((mkdir(leaf, 0755) == 0 || errno == EEXIST) &&
		    write_at(leaf, "cgroup.procs", pid) == 0)
			log_info("cgroups: moved taskd into %s to enable controllers for jobs",
				 leaf);
		free(leaf);
	}
	for (i = 0; i < NCTRL && want != 0 && (own_is_root || delegated(cg->own)); i++) {
		if (!(want & ctrl_names[i].bit))
			continue;
		snprintf(cmd, sizeof cmd, "+%s", ctrl_names[i].name);
		if (write_at(cg->own, "cgroup.subtree_control", cmd) == 0)
			on |= ctrl_names[i].bit;
	}
	/* Now our subtree: it holds no process, so this cannot hit that rule. */
	if (read_at(cg->dir, "cgroup.controllers", buf, sizeof buf) < 0)
		return 0;
	avail = cg_parse_controllers(buf);
	for (i = 0; i < NCTRL; i++) {
		if (!(avail & ctrl_names[i].bit))
			continue;
		snprintf(cmd, sizeof cmd, "+%s", ctrl_names[i].name);
		if (write_at(cg->dir, "cgroup.subtree_control", cmd) == 0)
			got |= ctrl_names[i].bit;
		else
			log_warn("cgroups: cannot enable the %s controller in %s",
				 ctrl_names[i].name, cg->dir);
	}
	return got;
}

/* FNV-1a of the state directory: one subtree per daemon instance, the same after a restart. */
static uint32_t
instance_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s != '\0'; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

struct cgroups *
cgroups_open_at(const char *own, bool own_is_root, const char *state_dir, char **why)
{
	struct cgroups *cg = xcalloc(1, sizeof *cg);

	*why = NULL;
	cg->own = xstrdup(own);
	cg->dir = xprintf("%s/taskd-%08" PRIx32, own, instance_hash(state_dir));
	if (mkdir(cg->dir, 0755) == -1 && errno != EEXIST) {
		xasprintf(why, "cannot create %s: %s%s", cg->dir, strerror(errno),
			  errno == EACCES || errno == EPERM
			      ? " (the cgroup is not delegated to taskd: Delegate=yes under systemd)"
			      : "");
		free(cg->own);
		free(cg->dir);
		free(cg);
		return NULL;
	}
	cg->controllers = enable_controllers(cg, own_is_root);
	return cg;
}

const char *
cgroups_dir(const struct cgroups *cg)
{
	return cg->dir;
}

unsigned
cgroups_controllers(const struct cgroups *cg)
{
	return cg != NULL ? cg->controllers : 0;
}

unsigned
cgroups_missing(const struct cgroups *cg, const struct cg_limits *lim)
{
	unsigned need = (lim->memory > 0 ? CG_MEMORY : 0) | (lim->cpus > 0 ? CG_CPU : 0) |
			(lim->pids > 0 ? CG_PIDS : 0);

	return need & ~cgroups_controllers(cg);
}

char *
cgroups_job_path(const struct cgroups *cg, uint64_t id)
{
	return xprintf("%s/job-%" PRIu64, cg->dir, id);
}

int
cgroups_reap_stale(struct cgroups *cg)
{
	DIR *d = opendir(cg->dir);
	struct dirent *de;
	char *path;
	int n = 0;

	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, "job-", 4) != 0)
			continue;
		path = at(cg->dir, de->d_name);
		if (cg_populated(path)) {
			n++;
			log_warnx("cgroups: killing what is left of %s from taskd's previous run",
				  de->d_name);
		}
		if (cg_remove(path, 2.0) == -1)
			log_warn("cgroups: cannot remove %s", path);
		free(path);
	}
	closedir(d);
	return n;
}

void
cgroups_close(struct cgroups *cg)
{
	if (cg == NULL)
		return;
	cgroups_reap_stale(cg);
	if (rmdir(cg->dir) == -1 && errno != ENOENT)
		log_warn("cgroups: cannot remove %s", cg->dir);
	free(cg->own);
	free(cg->dir);
	free(cg);
}

json_t *
cgroups_to_json(const struct cgroups *cg)
{
	json_t *c = json_array();
	size_t i;

	if (cg == NULL)
		return json_pack("{s:b,s:n,s:o}", "enabled", 0, "path", "controllers", c);
	for (i = 0; i < NCTRL; i++)
		if (cg->controllers & ctrl_names[i].bit)
			json_array_append_new(c, json_string(ctrl_names[i].name));
	return json_pack("{s:b,s:s,s:o}", "enabled", 1, "path", cg->dir, "controllers", c);
}

/* ---- one job's cgroup ---- */

int
cg_create(const char *path, const struct cg_limits *lim, char **err)
{
	char v[64];

	*err = NULL;
	if (mkdir(path, 0755) == -1) {
		/* A retry of the same job whose first cgroup could not be removed. */
		if (errno != EEXIST || cg_remove(path, 1.0) == -1 || mkdir(path, 0755) == -1) {
			xasprintf(err, "cannot create cgroup %s: %s", path, strerror(errno));
			return -1;
		}
	}
	if (lim->memory > 0) {
		snprintf(v, sizeof v, "%" PRIu64, lim->memory);
		if (write_at(path, "memory.max", v) == -1) {
			xasprintf(err, "cannot set memory.max of %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (lim->cpus > 0) {
		cg_cpu_max(lim->cpus, v, sizeof v);
		if (write_at(path, "cpu.max", v) == -1) {
			xasprintf(err, "cannot set cpu.max of %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	if (lim->pids > 0) {
		snprintf(v, sizeof v, "%" PRIu64, lim->pids);
		if (write_at(path, "pids.max", v) == -1) {
			xasprintf(err, "cannot set pids.max of %s: %s", path, strerror(errno));
			goto fail;
		}
	}
	return 0;
fail:
	rmdir(path);
	return -1;
}

int
cg_procs_open(const char *path)
{
	char *p = at(path, "cgroup.procs");
	int fd = open(p, O_WRONLY | O_CLOEXEC), saved = errno;

	free(p);
	errno = saved;
	return fd;
}

int
cg_procs(const char *path, pid_t *out, size_t max)
{
	char *p = at(path, "cgroup.procs"), buf[8192], *s, *end;
	FILE *fp = fopen(p, "re");
	size_t n = 0;
	long v;

	free(p);
	if (fp == NULL)
		return -1;
	while (n < max && fgets(buf, sizeof buf, fp) != NULL) {
		errno = 0;
		v = strtol(buf, &end, 10);
		for (s = end; *s == '\n' || *s == ' '; s++)
			;
		if (errno == 0 && end != buf && *s == '\0' && v > 0 && v <= INT32_MAX)
			out[n++] = (pid_t)v;
	}
	fclose(fp);
	return (int)n;
}

int
cg_signal(const char *path, int sig)
{
	pid_t *pids = xcalloc(CG_PROCS_MAX, sizeof *pids);
	int n = cg_procs(path, pids, CG_PROCS_MAX), i, done = 0;

	for (i = 0; i < n; i++)
		if (kill(pids[i], sig) == 0)
			done++;
	free(pids);
	return n < 0 ? -1 : done;
}

int
cg_freeze(const char *path, bool on)
{
	return write_at(path, "cgroup.freeze", on ? "1" : "0");
}

int
cg_kill(const char *path)
{
	int i, n;

	if (write_at(path, "cgroup.kill", "1") == 0)
		return 0;
	if (errno != ENOENT && errno != EINVAL)
		return -1;
	/* Before Linux 5.14: one by one until nothing is left (it may be forking). */
	for (i = 0; i < CG_KILL_ROUNDS; i++) {
		if ((n = cg_signal(path, SIGKILL)) <= 0)
			return n < 0 ? -1 : 0;
		usleep(1000);
	}
	return 0;
}

bool
cg_populated(const char *path)
{
	char buf[256], *p;
	pid_t one;

	if (read_at(path, "cgroup.events", buf, sizeof buf) >= 0) {
		p = strstr(buf, "populated ");
		return p != NULL && p[10] == '1';
	}
	return cg_procs(path, &one, 1) > 0;
}

int
cg_remove(const char *path, double wait)
{
	double deadline = clock_now(CLOCK_MONOTONIC) + wait;
	useconds_t pause = 500;
	bool killed = false;

	for (;;) {
		if (rmdir(path) == 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY)
			return -1;
		if (!killed) {
			cg_kill(path);
			killed = true;
		}
		if (clock_now(CLOCK_MONOTONIC) >= deadline) {
			errno = EBUSY;
			return -1;
		}
		/* SIGKILLed processes leave within microseconds unless stuck in the kernel. */
		usleep(pause);
		if (pause < 20000)
			pause *= 2;
	}
}

static long
read_kb(const char *path, const char *file)
{
	char buf[64], *end;
	unsigned long long v;

	if (read_at(path, file, buf, sizeof buf) <= 0)
		return -1;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf)
		return -1;
	return (long)(v / 1024);
}

int
cg_read_final(const char *path, struct cg_usage *u)
{
	char buf[1024];

	u->stall = -1;
	u->mem_current_kb = -1;
	if (read_at(path, "cpu.stat", buf, sizeof buf) < 0 || cg_parse_cpu_stat(buf, u) == -1)
		return -1;
	u->mem_peak_kb = read_kb(path, "memory.peak");
	return 0;
}

int
cg_read_usage(const char *path, struct cg_usage *u)
{
	char buf[1024];
	struct psi p;
	char *f;

	u->stall = -1;
	u->mem_current_kb = u->mem_peak_kb = -1;
	if (read_at(path, "cpu.stat", buf, sizeof buf) < 0 || cg_parse_cpu_stat(buf, u) == -1)
		return -1;
	f = at(path, "cpu.pressure");
	if (psi_read(f, &p) == 0)
		u->stall = p.some.total;
	free(f);
	u->mem_current_kb = read_kb(path, "memory.current");
	u->mem_peak_kb = read_kb(path, "memory.peak");
	return 0;
}
