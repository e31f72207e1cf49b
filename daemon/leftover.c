/*
 * Records of the processes taskd started, and the kill of what a dead taskd
 * left running (see leftover.h for the why and the file format).
 *
 * What runs where. leftover_record and leftover_forget run wherever a
 * process is spawned and reaped: pool threads and workers (commands), the
 * loop thread (workers). leftover_kill and leftover_kill_children run on the
 * loop thread when a worker dies or is killed under a job; leftover_reap
 * once at startup, before any pool exists. Nothing here keeps state but the
 * boot id, read once.
 *
 * Identity. A recorded process is ours only while a process with its pid
 * has its start time: the kernel does not hand a pid out again while any
 * process still has it as its pid, process group or session id, so while the
 * leader checks out, every process in its session or group descends from
 * it. The leader itself is signalled through a pidfd opened before the
 * check, so it cannot be swapped in between; group and session members are
 * killed by pid right after the /proc scan that found them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "leftover.h"
#include "log.h"
#include "xmalloc.h"

#define BOOT_ID_LEN 36
#define RECORD_MAX 160
#define REAP_POLL_US 10000

/* ---- /proc ---- */

/* Every process now (proctree.c); an unreadable /proc is logged and leaves none. */
static void
procs_scan(struct proc_snap *ps)
{
	if (proc_snap_take(ps, "/proc") == -1)
		log_warn("opendir /proc");
}

/* ---- records ---- */

static char boot_id[BOOT_ID_LEN + 1];
static pthread_once_t boot_once = PTHREAD_ONCE_INIT;

static void
read_boot_id(void)
{
	int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd != -1 ? read(fd, boot_id, BOOT_ID_LEN) : -1;

	if (fd != -1)
		close(fd);
	if (n != BOOT_ID_LEN)
		snprintf(boot_id, sizeof boot_id, "unknown");
	else
		boot_id[BOOT_ID_LEN] = '\0';
}

static const char *
this_boot(void)
{
	pthread_once(&boot_once, read_boot_id);
	return boot_id;
}

int
leftover_record(const char *path, pid_t pid, double started_at)
{
	struct proc_info pi;
	char line[RECORD_MAX];
	int fd, n, saved;
	ssize_t w;

	if (proc_info_read(pid, &pi) == -1) {
		errno = ESRCH;
		return -1;
	}
	n = snprintf(line, sizeof line, "%d %llu %s %.6f\n", (int)pid, pi.start, this_boot(),
		     started_at);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd == -1)
		return -1;
	w = write(fd, line, (size_t)n);
	saved = w == -1 ? errno : EIO;
	close(fd);
	if (w != n) {
		unlink(path);
		errno = saved;
		return -1;
	}
	return 0;
}

void
leftover_forget(const char *path)
{
	if (path != NULL && unlink(path) == -1 && errno != ENOENT)
		log_warn("unlink %s", path);
}

struct record {
	pid_t pid;
	unsigned long long start;
	char boot[BOOT_ID_LEN + 1];
	double started_at;
};

/* 0, or -1 with *why if the file cannot be read or is not a record. */
static int
record_read(int dirfd, const char *name, struct record *rec, const char **why)
{
	char buf[RECORD_MAX + 1], boot[RECORD_MAX];
	ssize_t n;
	int fd, pid;

	fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd == -1) {
		*why = strerror(errno);
		return -1;
	}
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0) {
		*why = n == 0 ? "empty" : strerror(errno);
		return -1;
	}
	buf[n] = '\0';
	if (sscanf(buf, "%d %llu %159s %lf", &pid, &rec->start, boot, &rec->started_at) != 4 ||
	    pid <= 1 || strlen(boot) > BOOT_ID_LEN) {
		*why = "not a record";
		return -1;
	}
	rec->pid = pid;
	memcpy(rec->boot, boot, strlen(boot) + 1); /* fits: checked above */
	return 0;
}

/* ---- killing ---- */

/* A recorded process, checked: what of it is left and must go. */
struct target {
	pid_t pid;
	unsigned long long start;
	bool group;   /* a job's command: its session and group go with it */
	bool alive;   /* the leader was running when first checked (not a zombie) */
	bool done;    /* nothing of it is left */
	bool killed;  /* something of it was killed */
	double killed_at; /* when its running leader was killed: the boot clock, as its start */
	size_t rec;   /* index of its record (leftover_reap) */
};

static int
pidfd_open_(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

/*
 * Check t's leader against the record and SIGKILL it if it runs: through a
 * pidfd opened before the check, so that the process checked is the one
 * signalled. 1 if it (running or a zombie) is ours, 0 if its pid is free or
 * someone else's; *running says which.
 */
static int
check_leader(const struct target *t, bool *running)
{
	struct proc_info pi;
	int pidfd = pidfd_open_(t->pid), rc = 0;

	*running = false;
	if (proc_info_read(t->pid, &pi) == 0 && pi.start == t->start) {
		rc = 1;
		*running = pi.state != 'Z' && pi.state != 'X';
		/* Without pidfds (an old kernel), right after the check. */
		if (*running && pidfd != -1)
			syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
		else if (*running)
			kill(t->pid, SIGKILL);
	}
	if (pidfd != -1)
		close(pidfd);
	return rc;
}

/* q is t's leader, or in t's session or group (for a job). */
static bool
belongs(const struct target *t, const struct proc_info *q)
{
	if (q->pid == t->pid)
		return q->start == t->start;
	return t->group && (q->session == t->pid || q->pgrp == t->pid);
}

/* The snapshot shows t's pid on another process: all of t is gone (see the top). */
static bool
pid_reused(const struct target *t, const struct proc_snap *ps)
{
	size_t k;

	for (k = 0; k < ps->n; k++)
		if (ps->e[k].pid == t->pid)
			return ps->e[k].start != t->start;
	return false;
}

/*
 * One round over a /proc snapshot: SIGKILL every live process that belongs
 * to a target not done yet. A target whose pid now names another process is
 * done, and its "session" is someone else's: its pid could only be handed
 * out again once nothing of it was left. Returns how many targets still
 * have live processes.
 */
static size_t
kill_round(struct target *t, size_t nt, struct proc_snap *ps)
{
	const struct proc_info *q;
	size_t i, k, busy = 0;
	bool any, running;

	procs_scan(ps);
	for (i = 0; i < nt; i++) {
		if (t[i].done)
			continue;
		if (pid_reused(&t[i], ps)) {
			t[i].done = true;
			continue;
		}
		any = false;
		for (k = 0; k < ps->n; k++) {
			q = &ps->e[k];
			if (q->state == 'Z' || q->state == 'X' || !belongs(&t[i], q))
				continue;
			any = true;
			if (q->pid == t[i].pid)
				continue; /* the leader: only ever through its pidfd (check_leader) */
			if (kill(q->pid, SIGKILL) == 0)
				t[i].killed = true;
		}
		if (!any) {
			t[i].done = true;
			continue;
		}
		/* The leader still runs, or its group: again through the checked pid. */
		if (check_leader(&t[i], &running) == 1 && t[i].group)
			kill(-t[i].pid, SIGKILL);
		busy++;
	}
	return busy;
}

/* Start killing t: its leader (checked) and its group; 0 if it is not ours any more. */
static int
target_start(struct target *t)
{
	if (check_leader(t, &t->alive) == 0)
		return 0;
	if (t->alive) {
		t->killed = true;
		t->killed_at = clock_now(CLOCK_BOOTTIME);
	}
	/* The group while its leader (alive or a zombie) still holds the pid. */
	if (t->group && kill(-t->pid, SIGKILL) == 0)
		t->killed = true;
	return 1;
}

int
leftover_kill(const char *path)
{
	struct proc_snap ps = { 0 };
	struct target t = { .group = true };
	struct record rec;
	const char *why;
	int rc = 0;

	if (record_read(AT_FDCWD, path, &rec, &why) == -1)
		return -1;
	unlink(path);
	if (strcmp(rec.boot, this_boot()) != 0)
		return 0;
	t.pid = rec.pid;
	t.start = rec.start;
	if (target_start(&t) == 1) {
		kill_round(&t, 1, &ps);
		rc = t.killed ? 1 : 0;
	}
	proc_snap_free(&ps);
	return rc;
}

void
leftover_kill_children(pid_t parent)
{
	struct proc_snap ps = { 0 };
	struct target *t = NULL;
	size_t i, n = 0;

	procs_scan(&ps);
	for (i = 0; i < ps.n; i++) {
		if (ps.e[i].ppid != parent)
			continue;
		t = xreallocarray(t, n + 1, sizeof *t);
		memset(&t[n], 0, sizeof *t);
		t[n].pid = ps.e[i].pid;
		t[n].start = ps.e[i].start;
		/* Its session and group if it leads them (a command does). */
		t[n].group = ps.e[i].session == ps.e[i].pid || ps.e[i].pgrp == ps.e[i].pid;
		n++;
	}
	for (i = 0; i < n; i++)
		target_start(&t[i]);
	if (n > 0)
		kill_round(t, n, &ps);
	free(t);
	proc_snap_free(&ps);
}

/* ---- startup ---- */

struct found {
	char *name;
	uint64_t job;     /* job-ID */
	bool is_job;
	struct record rec;
	bool checked;     /* a process to look for (readable, this boot) */
};

char *
leftover_job_path(const char *dir, uint64_t id)
{
	return xprintf("%s/job-%llu", dir, (unsigned long long)id);
}

char *
leftover_worker_path(const char *dir, pid_t pid)
{
	return xprintf("%s/worker-%d", dir, (int)pid);
}

/* "job-ID" or "worker-PID" (leftover_job_path, leftover_worker_path): 0, or -1 if neither. */
static int
parse_name(const char *name, struct found *f)
{
	unsigned long long v;
	char *end;

	const char *digits;

	if (strncmp(name, "job-", 4) == 0) {
		digits = name + 4;
		f->is_job = true;
	} else if (strncmp(name, "worker-", 7) == 0) {
		digits = name + 7;
	} else {
		return -1;
	}
	if (*digits < '0' || *digits > '9')
		return -1;
	errno = 0;
	v = strtoull(digits, &end, 10);
	if (*end != '\0' || errno != 0 || v == 0)
		return -1;
	f->job = f->is_job ? v : 0;
	return 0;
}

/* Every entry of dir, read: what to look for, or why not (logged). */
static struct found *
read_records(const char *dir, DIR *d, size_t *nf)
{
	struct found *f = NULL;
	struct dirent *de;
	const char *why;
	size_t n = 0;

	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		f = xreallocarray(f, n + 1, sizeof *f);
		memset(&f[n], 0, sizeof *f);
		f[n].name = xstrdup(de->d_name);
		if (parse_name(de->d_name, &f[n]) == -1)
			log_warnx("%s/%s: not a taskd record, removed", dir, de->d_name);
		else if (record_read(dirfd(d), de->d_name, &f[n].rec, &why) == -1)
			log_warnx("%s/%s: unreadable record (%s), removed: what it names is not "
				  "looked for", dir, de->d_name, why);
		else if (strcmp(f[n].rec.boot, this_boot()) != 0)
			log_debug("%s/%s: recorded before a reboot, removed", dir, de->d_name);
		else
			f[n].checked = true;
		n++;
	}
	*nf = n;
	return f;
}

/* What was found of each job record: the caller's *jobs. */
static struct leftover_job *
job_results(const struct found *f, size_t nf, const struct target *t, size_t nt, size_t *njobs)
{
	double hz = (double)sysconf(_SC_CLK_TCK), began;
	struct leftover_job *jobs, *lj;
	size_t i, n = 0;

	for (i = 0; i < nf; i++)
		n += f[i].is_job;
	*njobs = n;
	if (n == 0)
		return NULL;
	jobs = xcalloc(n, sizeof *jobs);
	for (lj = jobs, i = 0; i < nf; i++) {
		if (!f[i].is_job)
			continue;
		lj->id = f[i].job;
		lj->started_at = f[i].checked ? f[i].rec.started_at : 0;
		lj++;
	}
	for (i = 0; i < nt; i++) {
		if (!f[t[i].rec].is_job)
			continue;
		for (lj = jobs; lj->id != f[t[i].rec].job; lj++)
			;
		lj->killed = t[i].killed;
		lj->survived = !t[i].done;
		/* Its own running time until killed, on the kernel's boot clock: no wall clock. */
		began = (double)t[i].start / hz;
		if (t[i].alive && t[i].killed_at > began)
			lj->ran = t[i].killed_at - began;
	}
	return jobs;
}

void
leftover_reap(const char *dir, double max_wait, struct leftover_job **jobs, size_t *njobs)
{
	struct proc_snap ps = { 0 };
	struct target *t = NULL;
	struct found *f, *fi;
	size_t nf, nt = 0, i, k;
	double deadline;
	bool keep;
	DIR *d;

	*jobs = NULL;
	*njobs = 0;
	if ((d = opendir(dir)) == NULL) {
		if (errno != ENOENT)
			log_warn("opendir %s", dir);
		return;
	}
	f = read_records(dir, d, &nf);
	/* What is still ours is killed now (leaders through a checked pidfd, groups). */
	for (i = 0; i < nf; i++) {
		if (!f[i].checked)
			continue;
		t = xreallocarray(t, nt + 1, sizeof *t);
		memset(&t[nt], 0, sizeof *t);
		t[nt].pid = f[i].rec.pid;
		t[nt].start = f[i].rec.start;
		t[nt].group = f[i].is_job;
		t[nt].rec = i;
		if (target_start(&t[nt]) == 1)
			nt++;
	}
	/* Then until all of it is gone (zombies count as gone: they run nothing). */
	deadline = clock_now(CLOCK_MONOTONIC) + max_wait;
	while (nt > 0 && kill_round(t, nt, &ps) > 0 && clock_now(CLOCK_MONOTONIC) < deadline)
		usleep(REAP_POLL_US);
	for (i = 0; i < nt; i++) {
		fi = &f[t[i].rec];
		if (!t[i].done)
			log_errorx("%s/%s: pid %d of the previous taskd would not die within %.0f s: "
				   "left running", dir, fi->name, (int)t[i].pid, max_wait);
		else if (t[i].killed && fi->is_job)
			log_info("job %" PRIu64 ": killed what the previous taskd left running of "
				 "it (pid %d)", fi->job, (int)t[i].pid);
		else if (t[i].killed)
			log_info("killed worker %d, left running by the previous taskd",
				 (int)t[i].pid);
	}
	*jobs = job_results(f, nf, t, nt, njobs);
	/* A record stays only while what it names runs: the next start tries again. */
	for (i = 0; i < nf; i++) {
		for (keep = false, k = 0; k < nt; k++)
			keep |= t[k].rec == i && !t[k].done;
		if (!keep && unlinkat(dirfd(d), f[i].name, 0) == -1 && errno != ENOENT)
			log_warn("unlink %s/%s", dir, f[i].name);
		free(f[i].name);
	}
	closedir(d);
	free(f);
	free(t);
	proc_snap_free(&ps);
}
