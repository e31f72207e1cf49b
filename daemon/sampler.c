#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/event.h>

#include "builtin.h"
#include "cgroup.h"
#include "clock.h"
#include "job.h"
#include "log.h"
#include "proctree.h"
#include "sampler.h"
#include "xmalloc.h"

#define SAMPLER_MAX_MEMBERS 1024 /* cgroup members whose RSS is summed (no memory controller) */

enum source { SRC_NONE = 0, SRC_CGROUP, SRC_PROC };

/* A process of a command's tree, and how long it had waited for a CPU when last seen. */
struct member {
	pid_t pid;
	double wait;
};

struct jobmon {
	TAILQ_ENTRY(jobmon) entry;
	struct job *job;
	enum source source;   /* where the last sample came from */
	bool have_prev;
	double prev_t;        /* CLOCK_MONOTONIC of the previous sample */
	double prev_cpu;      /* its cumulative CPU seconds */
	double prev_wait;     /* its cumulative wait for a CPU */
	double cpu;           /* over the sampled periods */
	double wall;          /* their wall time minus the wait for a CPU */
	double last_ratio;    /* of the last period */
	struct reclass rc;
	bool streak_hot;      /* the periods since the last change of side: at or above cpu_ratio */
	double streak_cpu;    /* their CPU and their wall (what a reclassification teaches) */
	double streak_wall;
	long rss_kb;
	long peak_kb;
	int samples;
	bool reclassified;
	bool sampled;         /* in this tick */
	struct member *mem;   /* its processes at the last sample */
	size_t nmem;
	double tree_wait;     /* what they waited for a CPU, summed, since it started */
};

struct sampler {
	struct sampler_config cfg;
	struct sampler_callbacks cb;
	struct event *timer;
	bool armed;
	TAILQ_HEAD(, jobmon) jobs;
	struct proc_snap snap;
	pid_t *members;
	struct member *next_mem; /* scratch for tree_wait */
	struct psi cpu;
	struct psi memory;
};

enum job_class
reclass_step(struct reclass *st, enum job_class now, double ratio, double cpu_ratio, int periods)
{
	if (periods <= 0 || !isfinite(ratio))
		return now;
	if (ratio >= cpu_ratio) {
		st->hot++;
		st->cold = 0;
	} else {
		st->cold++;
		st->hot = 0;
	}
	if (now != CLASS_CPU && st->hot >= periods)
		return CLASS_CPU;
	if (now == CLASS_CPU && st->cold >= periods)
		return CLASS_IO;
	return now;
}

bool
sampler_period(double dt, double dcpu, double dwait, double *wall, double *ratio)
{
	if (!(dt > 0) || !isfinite(dcpu) || !isfinite(dwait))
		return false;
	*wall = fmax(dt - dwait, fmin(dcpu, dt));
	if (*wall < dt * SAMPLER_MIN_RUN_SHARE)
		return false;
	*ratio = dcpu / *wall;
	return true;
}

static void sampler_tick_cb(evutil_socket_t fd, short what, void *arg);

struct sampler *
sampler_new(struct event_base *base, const struct sampler_callbacks *cb)
{
	struct sampler *m = xcalloc(1, sizeof *m);

	m->cb = *cb;
	TAILQ_INIT(&m->jobs);
	m->timer = evtimer_new(base, sampler_tick_cb, m);
	if (m->timer == NULL)
		fatalx("cannot create the sampling timer");
	m->members = xcalloc(SAMPLER_MAX_MEMBERS, sizeof *m->members);
	m->next_mem = xcalloc(SAMPLER_MAX_MEMBERS, sizeof *m->next_mem);
	m->cfg.proc = "/proc";
	return m;
}

void
sampler_free(struct sampler *m)
{
	struct jobmon *jm;

	if (m == NULL)
		return;
	while ((jm = TAILQ_FIRST(&m->jobs)) != NULL) {
		TAILQ_REMOVE(&m->jobs, jm, entry);
		jm->job->mon = NULL;
		free(jm->mem);
		free(jm);
	}
	event_free(m->timer);
	proc_snap_free(&m->snap);
	free(m->members);
	free(m->next_mem);
	free(m);
}

static void
arm(struct sampler *m)
{
	struct timeval tv;

	if (m->armed || !(m->cfg.interval > 0) || TAILQ_EMPTY(&m->jobs))
		return;
	tv.tv_sec = (time_t)m->cfg.interval;
	tv.tv_usec = (suseconds_t)((m->cfg.interval - (double)tv.tv_sec) * 1e6);
	evtimer_add(m->timer, &tv);
	m->armed = true;
}

void
sampler_configure(struct sampler *m, const struct sampler_config *cfg)
{
	m->cfg = *cfg;
	if (m->cfg.proc == NULL)
		m->cfg.proc = "/proc";
	if (m->armed && !(m->cfg.interval > 0)) {
		evtimer_del(m->timer);
		m->armed = false;
	}
	arm(m);
}

void
sampler_watch(struct sampler *m, struct job *j)
{
	struct jobmon *jm;

	if (j->mon != NULL || j->spec.type != BUILTIN_EXEC)
		return;
	jm = xcalloc(1, sizeof *jm);
	jm->job = j;
	jm->rss_kb = jm->peak_kb = -1;
	j->mon = jm;
	TAILQ_INSERT_TAIL(&m->jobs, jm, entry);
	arm(m);
}

void
sampler_forget(struct sampler *m, struct job *j, struct sampler_result *out)
{
	struct jobmon *jm = j->mon;

	if (out != NULL) {
		out->peak_kb = jm != NULL ? jm->peak_kb : -1;
		out->reclassified = jm != NULL && jm->reclassified;
		out->tree_wait = jm != NULL ? jm->tree_wait : 0;
		out->samples = jm != NULL ? jm->samples : 0;
	}
	if (jm == NULL)
		return;
	TAILQ_REMOVE(&m->jobs, jm, entry);
	j->mon = NULL;
	free(jm->mem);
	free(jm);
	if (TAILQ_EMPTY(&m->jobs) && m->armed) {
		evtimer_del(m->timer);
		m->armed = false;
	}
}

long
sampler_rss_kb(const struct job *j)
{
	return j->mon != NULL ? j->mon->rss_kb : -1;
}

double
sampler_pressure_cpu(const struct sampler *m)
{
	return m->cpu.some.valid ? m->cpu.some.avg10 : 0;
}

double
sampler_pressure_memory(const struct sampler *m)
{
	return m->memory.some.valid ? m->memory.some.avg10 : 0;
}

void
sampler_read_pressure(struct sampler *m)
{
	psi_read("/proc/pressure/cpu", &m->cpu);
	psi_read("/proc/pressure/memory", &m->memory);
}

/*
 * The time the command's processes waited for a CPU, summed, from each
 * one's schedstat: what a process had waited when first seen counts
 * whole, then only what it adds between samples (one that exits between
 * two samples takes its last part with it). A cgroup's cpu.pressure is
 * not used here: it averages over CPUs and shows less than the processes
 * waited. Returns the new total.
 */
static double
tree_wait(struct sampler *m, struct jobmon *jm, const pid_t *pids, size_t n)
{
	size_t i, k, nnext = 0;
	double w;

	for (i = 0; i < n && nnext < SAMPLER_MAX_MEMBERS; i++) {
		if ((w = proc_wait(m->cfg.proc, pids[i])) < 0)
			continue;
		for (k = 0; k < jm->nmem && jm->mem[k].pid != pids[i]; k++)
			;
		jm->tree_wait += k < jm->nmem ? fmax(0, w - jm->mem[k].wait) : w;
		m->next_mem[nnext].pid = pids[i];
		m->next_mem[nnext++].wait = w;
	}
	if (nnext > jm->nmem)
		jm->mem = xreallocarray(jm->mem, nnext, sizeof *jm->mem);
	if (nnext > 0) /* none seen yet: jm->mem may still be NULL */
		memcpy(jm->mem, m->next_mem, nnext * sizeof *jm->mem);
	jm->nmem = nnext;
	return jm->tree_wait;
}

/* From the job's cgroup; false if it has none or it cannot be read (not made, or gone). */
static bool
sample_cgroup(struct sampler *m, struct jobmon *jm, double *cpu, double *wait, long *rss,
	      long *peak)
{
	const char *path = jm->job->cgroup;
	struct cg_usage u;
	int n, i;
	long r;

	if (path == NULL || cg_read_usage(path, &u) == -1)
		return false;
	*cpu = u.cpu;
	*peak = u.mem_peak_kb;
	n = cg_procs(path, m->members, SAMPLER_MAX_MEMBERS);
	*wait = tree_wait(m, jm, m->members, n > 0 ? (size_t)n : 0);
	if (m->cfg.memory_ctl && u.mem_current_kb >= 0) {
		*rss = u.mem_current_kb;
		return true;
	}
	/* No memory controller: the members' resident memory. */
	*rss = 0;
	for (i = 0; i < n; i++)
		if ((r = proc_rss_kb(m->cfg.proc, m->members[i])) > 0)
			*rss += r;
	return true;
}

/* From the leader's process tree; false if it has not started or is gone. */
static bool
sample_proc(struct sampler *m, struct jobmon *jm, double *cpu, double *wait, long *rss)
{
	struct proc_usage u;
	pid_t leader = jm->job->run != NULL ? (pid_t)atomic_load(&jm->job->run->live_pid) : 0;
	size_t n;

	if (leader <= 0 ||
	    proc_tree_usage(&m->snap, leader, &u, m->members, SAMPLER_MAX_MEMBERS, &n) == -1)
		return false;
	*cpu = u.cpu;
	*wait = tree_wait(m, jm, m->members, n);
	*rss = u.rss_kb;
	return true;
}

/* One sample of jm taken at now: a period's ratio, memory, and maybe a reclassification. */
static void
account(struct sampler *m, struct jobmon *jm, double now, double cpu, double wait, long rss,
	long peak, enum source src)
{
	struct job *j = jm->job;
	double dt, dcpu, dwait, wall, ratio;
	enum job_class c;

	jm->samples++;
	jm->rss_kb = rss;
	if (rss > jm->peak_kb)
		jm->peak_kb = rss;
	if (peak > jm->peak_kb)
		jm->peak_kb = peak;
	/*
	 * A suspended job is stopped (SIGSTOP): its periods tell nothing of
	 * its kind, and it holds no cpu slot to move. None counts, its streak
	 * starts again, and the baseline is taken afresh once it runs again.
	 */
	if (j->state == JOB_SUSPENDED) {
		memset(&jm->rc, 0, sizeof jm->rc);
		jm->streak_cpu = jm->streak_wall = 0;
		jm->have_prev = false;
		return;
	}
	/* A source change (its cgroup vanished) restarts the baseline. */
	if (jm->have_prev && jm->source == src) {
		dt = now - jm->prev_t;
		dcpu = fmax(0, cpu - jm->prev_cpu); /* an exited, unreaped child takes its CPU away */
		dwait = fmax(0, wait - jm->prev_wait);
		if (sampler_period(dt, dcpu, dwait, &wall, &ratio)) {
			jm->last_ratio = ratio;
			jm->cpu += dcpu;
			jm->wall += wall;
			if ((ratio >= m->cfg.cpu_ratio) != jm->streak_hot || jm->streak_wall == 0) {
				jm->streak_hot = ratio >= m->cfg.cpu_ratio;
				jm->streak_cpu = jm->streak_wall = 0;
			}
			jm->streak_cpu += dcpu;
			jm->streak_wall += wall;
			c = reclass_step(&jm->rc, j->counts_as, ratio, m->cfg.cpu_ratio,
					 m->cfg.periods);
			if (c != j->counts_as) {
				jm->reclassified = true;
				m->cb.reclassified(j, c, jm->streak_cpu, jm->streak_wall,
						   m->cb.arg);
			}
		}
	}
	jm->source = src;
	jm->have_prev = true;
	jm->prev_t = now;
	jm->prev_cpu = cpu;
	jm->prev_wait = wait;
}

static void
sampler_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct sampler *m = arg;
	struct jobmon *jm;
	bool need_proc = false;
	double now = clock_now(CLOCK_MONOTONIC), cpu, wait;
	long rss, peak;

	m->armed = false;
	sampler_read_pressure(m);
	/* The reclassified callback only changes accounting: the list stays as it is. */
	TAILQ_FOREACH(jm, &m->jobs, entry) {
		jm->sampled = sample_cgroup(m, jm, &cpu, &wait, &rss, &peak);
		if (jm->sampled)
			account(m, jm, now, cpu, wait, rss, peak, SRC_CGROUP);
		else
			need_proc = true;
	}
	/* One /proc snapshot for all the commands without a (readable) cgroup. */
	if (need_proc && proc_snap_take(&m->snap, m->cfg.proc) == 0) {
		TAILQ_FOREACH(jm, &m->jobs, entry)
			if (!jm->sampled && sample_proc(m, jm, &cpu, &wait, &rss))
				account(m, jm, now, cpu, wait, rss, -1, SRC_PROC);
	}
	if (m->cb.ticked != NULL)
		m->cb.ticked(m->cb.arg);
	arm(m);
}

json_t *
sampler_job_json(const struct job *j)
{
	const struct jobmon *jm = j->mon;
	json_t *o;

	if (jm == NULL)
		return NULL;
	o = json_object();
	json_object_set_new(o, "source", jm->source == SRC_CGROUP ? json_string("cgroup")
					 : jm->source == SRC_PROC ? json_string("proc")
								  : json_null());
	json_object_set_new(o, "samples", json_integer(jm->samples));
	json_object_set_new(o, "cpu_ratio", jm->wall > 0
				? json_real(round(fmin(jm->cpu / jm->wall, 1.0) * 1000) / 1000)
				: json_null());
	json_object_set_new(o, "rss_kb", jm->rss_kb >= 0 ? json_integer(jm->rss_kb) : json_null());
	json_object_set_new(o, "peak_kb", jm->peak_kb >= 0 ? json_integer(jm->peak_kb)
							   : json_null());
	return o;
}
