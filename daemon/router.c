#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "builtin.h"
#include "exec.h"
#include "job.h"
#include "router.h"
#include "xmalloc.h"

#define ROUTER_BUCKETS 2048 /* power of two, twice ROUTER_MAX_KEYS */

_Static_assert((ROUTER_BUCKETS & (ROUTER_BUCKETS - 1)) == 0, "buckets: a power of two");

struct entry {
	char key[ROUTER_KEY_MAX + 1];
	double ratio;           /* EWMA of cpu / wall */
	uint64_t samples;
	int other_runs;         /* runs in a row on the other side of cpu_ratio than ratio */
	double other_sum;       /* their samples' sum */
	double peak_kb;         /* learned peak memory, valid when peak_samples > 0 */
	uint64_t peak_samples;
	struct entry *hnext;    /* hash chain */
	TAILQ_ENTRY(entry) lru; /* most recently used first */
};

struct router {
	struct router_config cfg;
	size_t n;
	struct entry *bucket[ROUTER_BUCKETS];
	TAILQ_HEAD(entry_list_head, entry) entries;
};

static const char *const by_names[] = {
	[ROUTE_CLASS] = "class", [ROUTE_KEY] = "key", [ROUTE_DEFAULT] = "default",
	[ROUTE_NO_PPOOL] = "no_process_pool", [ROUTE_UNSURE] = "unsure",
	[ROUTE_UNKNOWN] = "unknown",
};

const char *
route_by_name(enum route_by by)
{
	return by <= ROUTE_UNKNOWN ? by_names[by] : "unknown";
}

int
route_by_parse(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof by_names / sizeof by_names[0]; i++)
		if (strcmp(by_names[i], name) == 0)
			return (int)i;
	return -1;
}

json_t *
route_record(const struct route *r)
{
	return json_pack("{s:s,s:s,s:i,s:s,s:I,s:f}", "by", route_by_name(r->by), "class",
			 config_class_name(r->decided), "level", r->level, "key", r->key,
			 "samples", (json_int_t)r->samples, "ratio",
			 isfinite(r->ratio) ? r->ratio : 0.0);
}

int
route_from_record(const json_t *o, struct route *r)
{
	const char *by, *cls, *key;
	json_error_t jerr;
	json_int_t samples;
	int level, b, c;
	double ratio;

	if (json_unpack_ex((json_t *)o, &jerr, JSON_STRICT, "{s:s,s:s,s:i,s:s,s:I,s:F}", "by", &by,
			   "class", &cls, "level", &level, "key", &key, "samples", &samples,
			   "ratio", &ratio) == -1 ||
	    strlen(key) != json_string_length(json_object_get(o, "key")) ||
	    strlen(key) > ROUTER_KEY_MAX || (b = route_by_parse(by)) < 0 || (c = config_class_parse(cls)) < 0 || level < -1 ||
	    level >= KIND_MAX_KEYS || samples < 0 || !isfinite(ratio))
		return -1;
	memset(r, 0, sizeof *r);
	r->by = (enum route_by)b;
	r->decided = (enum job_class)c;
	r->level = level;
	snprintf(r->key, sizeof r->key, "%s", key);
	r->samples = (uint64_t)samples;
	r->ratio = ratio;
	return 0;
}

struct router *
router_new(const struct router_config *cfg)
{
	struct router *rt = xcalloc(1, sizeof *rt);

	TAILQ_INIT(&rt->entries);
	router_configure(rt, cfg);
	return rt;
}

void
router_free(struct router *rt)
{
	struct entry *e;

	if (rt == NULL)
		return;
	while ((e = TAILQ_FIRST(&rt->entries)) != NULL) {
		TAILQ_REMOVE(&rt->entries, e, lru);
		free(e);
	}
	free(rt);
}

void
router_configure(struct router *rt, const struct router_config *cfg)
{
	rt->cfg = *cfg;
	rt->cfg.default_class = cfg->default_class == CLASS_CPU ? CLASS_CPU : CLASS_IO;
	if (rt->cfg.min_samples < 1)
		rt->cfg.min_samples = 1;
}

static uint32_t
hash(const char *key)
{
	uint32_t h = 2166136261u;

	for (; *key != '\0'; key++)
		h = (h ^ (unsigned char)*key) * 16777619u;
	return h & (ROUTER_BUCKETS - 1);
}

static struct entry *
find(const struct router *rt, const char *key)
{
	struct entry *e;

	for (e = rt->bucket[hash(key)]; e != NULL; e = e->hnext)
		if (strcmp(e->key, key) == 0)
			return e;
	return NULL;
}

static void
unhash(struct router *rt, struct entry *e)
{
	struct entry **pp = &rt->bucket[hash(e->key)];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
}

static void
touch(struct router *rt, struct entry *e)
{
	TAILQ_REMOVE(&rt->entries, e, lru);
	TAILQ_INSERT_HEAD(&rt->entries, e, lru);
}

/* The entry for key, created (the least recently used one recycled when full). */
static struct entry *
get(struct router *rt, const char *key)
{
	struct entry *e = find(rt, key);
	uint32_t h;

	if (e != NULL) {
		touch(rt, e);
		return e;
	}
	if (rt->n >= ROUTER_MAX_KEYS) {
		e = TAILQ_LAST(&rt->entries, entry_list_head);
		TAILQ_REMOVE(&rt->entries, e, lru);
		unhash(rt, e);
	} else {
		e = xmalloc(sizeof *e);
		rt->n++;
	}
	memset(e, 0, sizeof *e);
	snprintf(e->key, sizeof e->key, "%s", key);
	h = hash(e->key);
	e->hnext = rt->bucket[h];
	rt->bucket[h] = e;
	TAILQ_INSERT_HEAD(&rt->entries, e, lru);
	return e;
}

static enum job_class
class_of(const struct router *rt, const struct entry *e)
{
	return e->ratio >= rt->cfg.cpu_ratio ? CLASS_CPU : CLASS_IO;
}

enum job_class
router_decide(struct router *rt, const struct kind_keys *k, struct route *out)
{
	struct entry *e, *pick = NULL;
	size_t i;
	int level = -1;

	for (i = 0; i < k->n && pick == NULL; i++) {
		e = find(rt, k->key[i]);
		if (e != NULL && e->samples >= (uint64_t)rt->cfg.min_samples) {
			pick = e;
			level = (int)i;
		}
	}
	/* None has enough: the coarsest key that has any (it has seen the most runs). */
	for (i = k->n; i > 0 && pick == NULL; i--) {
		e = find(rt, k->key[i - 1]);
		if (e != NULL && e->samples > 0) {
			pick = e;
			level = (int)i - 1;
		}
	}
	memset(out, 0, sizeof *out);
	out->level = level;
	if (pick == NULL) {
		out->by = ROUTE_DEFAULT;
		out->decided = rt->cfg.default_class;
		return out->decided;
	}
	touch(rt, pick);
	out->by = ROUTE_KEY;
	out->decided = class_of(rt, pick);
	snprintf(out->key, sizeof out->key, "%s", pick->key);
	out->samples = pick->samples;
	out->ratio = pick->ratio;
	return out->decided;
}

long
router_peak_kb(struct router *rt, const struct kind_keys *k)
{
	struct entry *e;
	size_t i;

	for (i = 0; i < k->n; i++) {
		e = find(rt, k->key[i]);
		if (e != NULL && e->peak_samples > 0)
			return (long)ceil(e->peak_kb);
	}
	return -1;
}

enum job_class
router_route(struct router *rt, const struct job_spec *spec, const struct kind_keys *k,
	     bool cpu_full, struct route *out)
{
	if (spec->class != CLASS_AUTO) {
		memset(out, 0, sizeof *out);
		out->by = ROUTE_CLASS;
		out->level = -1;
		out->decided = spec->class;
		return out->decided;
	}
	router_decide(rt, k, out);
	if (out->by == ROUTE_KEY && out->level > 0 && out->decided == CLASS_CPU && cpu_full) {
		out->decided = CLASS_IO;
		out->by = ROUTE_UNSURE;
	}
	return out->decided;
}

bool
router_sample(const struct run_result *r, double *cpu, double *wall)
{
	if (r->status != RUN_EXITED && r->status != RUN_SIGNALED && r->status != RUN_TIMEOUT)
		return false;
	double w = r->cmd_wall > 0 ? r->cmd_wall : r->wall;

	*cpu = r->cpu_user + r->cpu_sys;
	*wall = w - (r->runq_wait > 0 ? r->runq_wait : 0);
	/* Several processes' waits add up: beyond room for the CPU they used, none blocked. */
	if (*wall < *cpu)
		*wall = *cpu < w ? *cpu : w;
	return *wall >= ROUTER_MIN_WALL && isfinite(*cpu) && *cpu >= 0;
}

/*
 * One sample into a key: the EWMA, except that a second run in a row on
 * the other side of cpu_ratio is a change of behaviour, not an odd run:
 * the key then takes the mean of those runs. A reclassification's sample
 * (live) moves the EWMA only: its run's final sample counts the run.
 */
static void
learn_one(struct router *rt, struct entry *e, double ratio, bool live)
{
	bool other = e->samples > 0 && (ratio >= rt->cfg.cpu_ratio) != (e->ratio >= rt->cfg.cpu_ratio);

	e->samples++;
	if (e->samples == 1) {
		e->ratio = ratio;
		return;
	}
	if (!live && other && ++e->other_runs >= ROUTER_CHANGE_RUNS) {
		e->ratio = (e->other_sum + ratio) / e->other_runs;
		e->other_runs = 0;
		e->other_sum = 0;
		return;
	}
	if (!live && other)
		e->other_sum += ratio;
	else if (!live) {
		e->other_runs = 0;
		e->other_sum = 0;
	}
	e->ratio = ROUTER_ALPHA * ratio + (1 - ROUTER_ALPHA) * e->ratio;
}

static void
learn(struct router *rt, const struct kind_keys *k, double cpu, double wall, bool live)
{
	double ratio;
	size_t i;

	if (!(wall >= ROUTER_MIN_WALL) || !isfinite(wall) || !isfinite(cpu) || cpu < 0)
		return;
	/* Several threads of one job can use more CPU than wall time; 1 is "all CPU". */
	ratio = fmin(cpu / wall, 1.0);
	for (i = 0; i < k->n; i++)
		learn_one(rt, get(rt, k->key[i]), ratio, live);
}

void
router_learn(struct router *rt, const struct kind_keys *k, double cpu, double wall)
{
	learn(rt, k, cpu, wall, false);
}

void
router_learn_live(struct router *rt, const struct kind_keys *k, double cpu, double wall)
{
	learn(rt, k, cpu, wall, true);
}

void
router_learn_peak(struct router *rt, const struct kind_keys *k, long peak_kb)
{
	struct entry *e;
	size_t i;

	if (peak_kb < 0)
		return;
	for (i = 0; i < k->n; i++) {
		e = get(rt, k->key[i]);
		/* Up at once, down slowly: admission must not under-reserve after one lean run. */
		if (e->peak_samples == 0 || peak_kb > e->peak_kb)
			e->peak_kb = (double)peak_kb;
		else
			e->peak_kb -= ROUTER_ALPHA * (e->peak_kb - (double)peak_kb);
		e->peak_samples++;
	}
}

bool
router_learn_run(struct router *rt, const struct kind_keys *k, int type,
		 const struct run_result *r, double *cpu, double *wall)
{
	bool measured = router_sample(r, cpu, wall);

	if (measured)
		router_learn(rt, k, *cpu, *wall);
	if (type == BUILTIN_EXEC &&
	    (r->status == RUN_EXITED || r->status == RUN_SIGNALED || r->status == RUN_TIMEOUT))
		router_learn_peak(rt, k, r->mem_peak_kb > 0 ? r->mem_peak_kb : 0);
	return measured;
}

size_t
router_size(const struct router *rt)
{
	return rt->n;
}

json_t *
router_to_json(const struct router *rt)
{
	json_t *a = json_array(), *o;
	struct entry *e;

	TAILQ_FOREACH(e, &rt->entries, lru) {
		o = json_pack("{s:s,s:I,s:f,s:s}", "key", e->key, "samples",
			      (json_int_t)e->samples, "cpu_ratio", round(e->ratio * 1000) / 1000,
			      "class", config_class_name(class_of(rt, e)));
		json_object_set_new(o, "peak_kb", e->peak_samples > 0
					  ? json_integer((json_int_t)ceil(e->peak_kb))
					  : json_null());
		if (e->samples == 0) {
			/* Only a peak learned yet (a run too short for a cpu sample). */
			json_object_set_new(o, "cpu_ratio", json_null());
			json_object_set_new(o, "class", json_null());
		}
		json_array_append_new(a, o);
	}
	return a;
}

json_t *
route_to_json(const struct route *r, const struct kind_keys *k)
{
	json_t *o = json_object(), *keys = json_array();
	size_t i;

	for (i = 0; k != NULL && i < k->n; i++)
		json_array_append_new(keys, json_string(k->key[i]));
	/* Not routed yet (waiting, scheduled, paused before it was queued): nothing decided. */
	json_object_set_new(o, "by", r->decided != CLASS_AUTO ? json_string(route_by_name(r->by))
							     : json_null());
	json_object_set_new(o, "class", r->decided != CLASS_AUTO
						? json_string(config_class_name(r->decided))
						: json_null());
	json_object_set_new(o, "keys", keys);
	if (r->level >= 0) {
		json_object_set_new(o, "key", json_string(r->key));
		json_object_set_new(o, "level", json_integer(r->level));
		json_object_set_new(o, "samples", json_integer((json_int_t)r->samples));
		json_object_set_new(o, "cpu_ratio", json_real(round(r->ratio * 1000) / 1000));
	} else {
		json_object_set_new(o, "key", json_null());
		json_object_set_new(o, "level", json_null());
		json_object_set_new(o, "samples", json_integer(0));
		json_object_set_new(o, "cpu_ratio", json_null());
	}
	return o;
}
