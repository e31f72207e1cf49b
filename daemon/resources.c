#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "admit.h"
#include "builtin.h"
#include "cgroup.h"
#include "clock.h"
#include "kindkey.h"
#include "log.h"
#include "sampler.h"
#include "resources.h"
#include "router.h"
#include "stats.h"
#include "xmalloc.h"

struct resources {
	struct router *router;
	const struct config *cfg;
	struct resources_callbacks cb;
	struct cgroups *cg;
	char *cg_why;           /* why there are none */
	struct sampler *mon;
	uint64_t budget_kb;     /* 0: no memory admission */
	uint64_t held_kb;       /* sum of holding jobs' held_kb */
	size_t holders;
	TAILQ_HEAD(, job) holding; /* running commands */
	uint64_t reclassified;  /* running jobs that changed class, since start */
};

static void resources_reclassified_cb(struct job *j, enum job_class c, double cpu, double wall,
				      void *arg);
static void resources_ticked_cb(void *arg);

static void
configure_sampler(struct resources *R)
{
	struct sampler_config mc = {
		.interval = R->cfg->router.sample_interval,
		.periods = R->cfg->router.reclassify_after,
		.cpu_ratio = R->cfg->router.cpu_ratio,
		.memory_ctl = (cgroups_controllers(R->cg) & CG_MEMORY) != 0,
		.proc = "/proc",
	};

	sampler_configure(R->mon, &mc);
}

struct resources *
resources_new(struct event_base *base, struct router *rt, const struct config *cfg,
	      const struct resources_callbacks *cb)
{
	struct resources *R = xcalloc(1, sizeof *R);
	struct sampler_callbacks mcb = { resources_reclassified_cb, resources_ticked_cb, R };

	R->router = rt;
	R->cfg = cfg;
	R->cb = *cb;
	TAILQ_INIT(&R->holding);
	R->mon = sampler_new(base, &mcb);
	resources_configure(R);
	return R;
}

void
resources_free(struct resources *R)
{
	if (R == NULL)
		return;
	sampler_free(R->mon);
	cgroups_close(R->cg);
	free(R->cg_why);
	free(R);
}

void
resources_configure(struct resources *R)
{
	const struct config_share *b = &R->cfg->limits.memory_budget;
	long avail = b->bytes == 0 && b->share > 0 ? admit_mem_available("/proc/meminfo") : -1;

	R->budget_kb = admit_budget(b->bytes, b->share, avail);
	if (b->bytes == 0 && b->share > 0 && avail < 0)
		log_warnx("limits.memory_budget: MemAvailable unknown (/proc/meminfo), no "
			  "memory admission");
	configure_sampler(R);
}

void
resources_set_cgroups(struct resources *R, struct cgroups *cg, const char *why)
{
	R->cg = cg;
	free(R->cg_why);
	R->cg_why = why != NULL ? xstrdup(why) : NULL;
	configure_sampler(R);
}

/* -1 and why if lim asks for what taskd's cgroups cannot do; what: "limits", "jobs.default_*". */
static int
limits_possible(struct resources *R, const struct cg_limits *lim, const char *what, char **why)
{
	char names[64], have[64], asked[64];
	unsigned missing, need = (lim->memory > 0 ? CG_MEMORY : 0) | (lim->cpus > 0 ? CG_CPU : 0) |
				 (lim->pids > 0 ? CG_PIDS : 0);

	if (need == 0)
		return 0;
	cg_controller_names(need, asked, sizeof asked);
	if (R->cg == NULL) {
		xasprintf(why, "%s (%s) need per-job cgroups, which taskd does not have here: %s",
			  what, asked, R->cg_why != NULL ? R->cg_why : "cgroups.enable is off");
		return -1;
	}
	if ((missing = cgroups_missing(R->cg, lim)) == 0)
		return 0;
	cg_controller_names(missing, names, sizeof names);
	cg_controller_names(cgroups_controllers(R->cg), have, sizeof have);
	xasprintf(why, "%s (%s) need the cgroup v2 controller(s) %s, not enabled for taskd's "
		  "cgroups in %s (enabled: %s; a host that mounts cgroups in hybrid mode keeps "
		  "them in cgroup v1)",
		  what, asked, names, cgroups_dir(R->cg), have[0] != '\0' ? have : "none");
	return -1;
}

int
resources_limits(struct resources *R, int type, struct cg_limits *lim, char **why)
{
	const struct config *cfg = R->cfg;
	struct cg_limits asked = *lim;

	if (type != BUILTIN_EXEC)
		return 0;
	if (lim->memory == 0)
		lim->memory = cfg->jobs.default_memory;
	if (lim->cpus == 0)
		lim->cpus = cfg->jobs.default_cpus;
	if (lim->pids == 0)
		lim->pids = (uint64_t)cfg->jobs.default_pids;
	if (limits_possible(R, &asked, "limits", why) == -1 ||
	    limits_possible(R, lim, "the default limits (jobs.default_*)", why) == -1)
		return -1;
	return 0;
}

int
resources_check_defaults(struct resources *R, const struct config *cfg, char **why)
{
	struct cg_limits d = { cfg->jobs.default_memory, cfg->jobs.default_cpus,
			       (uint64_t)cfg->jobs.default_pids };

	return limits_possible(R, &d, "jobs.default_memory, default_cpus, default_pids", why);
}

struct cgroups *
resources_cgroups(const struct resources *R)
{
	return R->cg;
}

/* The most a running job of this (finest) kind uses now, -1 if none was sampled. */
static long
live_kb(const struct resources *R, const char *kind)
{
	const struct job *j;
	long most = -1, r;

	TAILQ_FOREACH(j, &R->holding, holding)
		if ((r = sampler_rss_kb(j)) > most && strcmp(kind_keys_first(j->kinds), kind) == 0)
			most = r;
	return most;
}

enum wait_reason
resources_admit(struct resources *R, const struct job *j, uint64_t promised, uint64_t *promise)
{
	struct admit a = { R->budget_kb, R->held_kb, promised, R->holders };
	struct kind_keys k;
	long need;

	*promise = 0;
	/* Built-ins run inside taskd or a worker: they hold no memory of their own. */
	if (j->spec.type != BUILTIN_EXEC || R->budget_kb == 0)
		return WAIT_NONE;
	kind_keys_unpack(j->kinds, &k);
	need = admit_need(router_peak_kb(R->router, &k), live_kb(R, k.key[0]));
	if (admit_check(&a, need) == ADMIT_OK)
		return WAIT_NONE;
	*promise = need > 0 ? (uint64_t)need : 0;
	return WAIT_MEMORY;
}

bool
resources_brake(struct resources *R, size_t cpu_running)
{
	if (R->cfg->limits.pressure_cpu <= 0 && R->cfg->limits.pressure_memory <= 0)
		return false;
	return admit_brake(sampler_pressure_cpu(R->mon), R->cfg->limits.pressure_cpu,
			   sampler_pressure_memory(R->mon), R->cfg->limits.pressure_memory,
			   cpu_running);
}

void
resources_start(struct resources *R, struct job *j, struct run *r)
{
	struct kind_keys k;

	j->reclassified_at = 0;
	j->held_kb = 0;
	if (j->spec.type != BUILTIN_EXEC)
		return;
	kind_keys_unpack(j->kinds, &k);
	j->need_kb = admit_need(router_peak_kb(R->router, &k), live_kb(R, k.key[0]));
	j->held_kb = admit_hold(j->need_kb, -1);
	R->held_kb += j->held_kb;
	R->holders++;
	TAILQ_INSERT_TAIL(&R->holding, j, holding);
	free(j->cgroup);
	j->cgroup = NULL;
	if (R->cg != NULL) {
		j->cgroup = cgroups_job_path(R->cg, j->id);
		r->spec.cgroup = xstrdup(j->cgroup);
	}
	r->spec.limits = j->spec.limits;
	sampler_watch(R->mon, j);
}

void
resources_end(struct resources *R, struct job *j)
{
	struct sampler_result mr;

	if (j->spec.type != BUILTIN_EXEC)
		return;
	sampler_forget(R->mon, j, &mr);
	if (mr.peak_kb > j->res.mem_peak_kb)
		j->res.mem_peak_kb = mr.peak_kb;
	/* The leader's and the cgroup's own figures miss children's waits: the samples' sum. */
	if (mr.tree_wait > j->res.runq_wait)
		j->res.runq_wait = mr.tree_wait;
	R->held_kb -= j->held_kb;
	j->held_kb = 0;
	R->holders--;
	TAILQ_REMOVE(&R->holding, j, holding);
	if (j->res.cgroup_error != NULL)
		STATS_INC(cgroup_failures);
	/* Its worker died under it: what it started may still run in its cgroup. */
	if (j->res.status == RUN_LOST && j->cgroup != NULL && cg_remove(j->cgroup, 2.0) == -1)
		log_warn("cannot remove cgroup %s of lost job %llu", j->cgroup,
			 (unsigned long long)j->id);
}

void
resources_learn(struct resources *R, const struct job *j)
{
	struct run_result r = j->res; /* read only: its strings stay the job's */
	struct kind_keys k;
	double cpu, wall;

	kind_keys_unpack(j->kinds, &k);
	/* The time it was suspended (stopped) is not part of its run. */
	if (j->suspended_for > 0)
		r.wall = r.wall > j->suspended_for ? r.wall - j->suspended_for : 0;
	/*
	 * Also a run the router learned from at its reclassification: that
	 * sample was its streak of periods, this is the whole run.
	 */
	if (router_learn_run(R->router, &k, j->spec.type, &r, &cpu, &wall))
		log_debug("job %llu teaches %s: %.3f s of CPU in %.3f s (wall %.3f, waited for a "
			  "CPU %.3f)", (unsigned long long)j->id, k.key[0], cpu, wall, j->res.wall,
			  j->res.runq_wait);
}

/* The sampler: a running command changed class. Learn from it now, and move its slot. */
static void
resources_reclassified_cb(struct job *j, enum job_class c, double cpu, double wall, void *arg)
{
	struct resources *R = arg;
	struct kind_keys k;

	kind_keys_unpack(j->kinds, &k);
	router_learn_live(R->router, &k, cpu, wall);
	j->reclassified_at = clock_now(CLOCK_REALTIME);
	R->reclassified++;
	STATS_INC(jobs_reclassified);
	log_debug("job %llu now counts as %s (%.2f of a core over %.1f s)",
		  (unsigned long long)j->id, config_class_name(c), wall > 0 ? cpu / wall : 0, wall);
	R->cb.reclassified(j, c, R->cb.arg);
}

/* Fresh samples: what each running command holds now. */
static void
resources_ticked_cb(void *arg)
{
	struct resources *R = arg;
	struct job *j;
	uint64_t h;

	TAILQ_FOREACH(j, &R->holding, holding) {
		h = admit_hold(j->need_kb, sampler_rss_kb(j));
		R->held_kb = R->held_kb - j->held_kb + h;
		j->held_kb = h;
	}
	R->cb.ticked(R->cb.arg);
}

void
resources_job_json(const struct job *j, json_t *o)
{
	const char *cg_error = j->res.cgroup_error;
	bool in_cgroup = j->res.in_cgroup;
	struct kind_keys k;
	json_t *route, *live;

	/*
	 * While it runs: the runner (a pool thread) or the worker's "started"
	 * set cgroup_error before the command's pid was published; nothing
	 * changes it afterwards until the run is over.
	 */
	if ((j->state == JOB_RUNNING || j->state == JOB_SUSPENDED) && j->run != NULL &&
	    atomic_load(&j->run->live_pid) > 0)
		cg_error = j->run->res.cgroup_error;

	kind_keys_unpack(j->kinds, &k);
	route = route_to_json(&j->route, j->kinds != NULL ? &k : NULL);
	json_object_set_new(route, "counts_as",
			    j->state == JOB_RUNNING
				    ? json_string(config_class_name(j->counts_as))
				    : json_null());
	json_object_set_new(route, "reclassified_at", j->reclassified_at > 0
							  ? json_real(j->reclassified_at)
							  : json_null());
	json_object_set_new(route, "peak_kb", j->state == JOB_RUNNING && j->need_kb >= 0
						      ? json_integer(j->need_kb)
						      : json_null());
	json_object_set_new(o, "route", route);
	json_object_set_new(o, "cgroup", j->cgroup != NULL && (in_cgroup || cg_error == NULL) &&
						 (in_cgroup || j->state == JOB_RUNNING ||
						  j->state == JOB_SUSPENDED)
						 ? json_string(j->cgroup)
						 : json_null());
	json_object_set_new(o, "cgroup_error", cg_error != NULL ? json_string(cg_error)
								 : json_null());
	live = sampler_job_json(j);
	json_object_set_new(o, "live", live != NULL ? live : json_null());
}

json_t *
resources_status_json(struct resources *R)
{
	char *budget = config_share_text(&R->cfg->limits.memory_budget);
	json_t *o;

	json_t *cg = cgroups_to_json(R->cg);

	if (R->cg == NULL)
		json_object_set_new(cg, "reason", json_string(R->cg_why != NULL ? R->cg_why : "?"));
	o = json_pack("{s:o,s:{s:s,s:I,s:I,s:I},s:{s:f,s:f,s:f,s:f},s:{s:f,s:i,s:I}}",
		      "cgroups", cg,
		      "memory", "budget", budget, "budget_kb", (json_int_t)R->budget_kb,
		      "held_kb", (json_int_t)R->held_kb, "running", (json_int_t)R->holders,
		      "pressure", "cpu", sampler_pressure_cpu(R->mon),
		      "memory", sampler_pressure_memory(R->mon),
		      "cpu_limit", R->cfg->limits.pressure_cpu,
		      "memory_limit", R->cfg->limits.pressure_memory,
		      "sampling", "interval", R->cfg->router.sample_interval,
		      "reclassify_after", R->cfg->router.reclassify_after,
		      "reclassified", (json_int_t)R->reclassified);
	free(budget);
	return o;
}
