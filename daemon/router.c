#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "builtin.h"
#include "jobtype.h"
#include "router.h"
#include "xmalloc.h"

struct entry {
	char key[ROUTER_KEY_MAX + 1];
	double ratio;
	uint64_t samples;
	TAILQ_ENTRY(entry) lru; /* most recently used first */
};

struct router {
	enum job_class default_class;
	double cpu_ratio;
	size_t n;
	TAILQ_HEAD(entry_list_head, entry) entries;
};

struct router *
router_new(enum job_class default_class, double cpu_ratio)
{
	struct router *rt = xcalloc(1, sizeof *rt);

	TAILQ_INIT(&rt->entries);
	router_configure(rt, default_class, cpu_ratio);
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
router_configure(struct router *rt, enum job_class default_class, double cpu_ratio)
{
	rt->default_class = default_class == CLASS_CPU ? CLASS_CPU : CLASS_IO;
	rt->cpu_ratio = cpu_ratio;
}

const char *
router_key(const char *name, const char *type, char *const *argv, char *buf, size_t len)
{
	const char *k = name, *slash;
	size_t n;

	if (k == NULL || *k == '\0')
		k = type != NULL && strcmp(type, "exec") != 0 ? type : NULL;
	if (k == NULL && argv != NULL && argv[0] != NULL) {
		slash = strrchr(argv[0], '/');
		k = slash != NULL && slash[1] != '\0' ? slash + 1 : argv[0];
	}
	if (k == NULL || *k == '\0')
		k = "?";
	n = strnlen(k, ROUTER_KEY_MAX + 1);
	if (n > ROUTER_KEY_MAX)
		n = ROUTER_KEY_MAX;
	if (n > len - 1)
		n = len - 1;
	/* Cut on a character boundary: keys are shown as UTF-8 text. */
	while (n > 0 && k[n] != '\0' && ((unsigned char)k[n] & 0xC0) == 0x80)
		n--;
	memcpy(buf, k, n);
	buf[n] = '\0';
	return buf;
}

static struct entry *
find(struct router *rt, const char *key)
{
	struct entry *e;

	TAILQ_FOREACH(e, &rt->entries, lru) {
		if (strncmp(e->key, key, ROUTER_KEY_MAX) == 0)
			return e;
	}
	return NULL;
}

static enum job_class
class_of(const struct router *rt, const struct entry *e)
{
	return e->ratio >= rt->cpu_ratio ? CLASS_CPU : CLASS_IO;
}

enum job_class
router_decide(struct router *rt, const char *key)
{
	struct entry *e = find(rt, key);

	if (e == NULL)
		return rt->default_class;
	TAILQ_REMOVE(&rt->entries, e, lru);
	TAILQ_INSERT_HEAD(&rt->entries, e, lru);
	return class_of(rt, e);
}

void
router_learn(struct router *rt, const char *key, double cpu, double wall)
{
	struct entry *e;
	double ratio;

	if (!(wall >= ROUTER_MIN_WALL) || !isfinite(cpu) || cpu < 0)
		return;
	/* Several threads of one job can use more CPU than wall time; 1 is "all CPU". */
	ratio = fmin(cpu / wall, 1.0);
	e = find(rt, key);
	if (e == NULL) {
		if (rt->n >= ROUTER_MAX_KEYS) {
			e = TAILQ_LAST(&rt->entries, entry_list_head);
			TAILQ_REMOVE(&rt->entries, e, lru);
		} else {
			e = xmalloc(sizeof *e);
			rt->n++;
		}
		snprintf(e->key, sizeof e->key, "%s", key);
		e->ratio = ratio;
		e->samples = 0;
	} else {
		TAILQ_REMOVE(&rt->entries, e, lru);
		e->ratio = ROUTER_ALPHA * ratio + (1 - ROUTER_ALPHA) * e->ratio;
	}
	e->samples++;
	TAILQ_INSERT_HEAD(&rt->entries, e, lru);
}

enum job_class
router_route(struct router *rt, const struct job_spec *spec, char *key, size_t len)
{
	router_key(spec->name, jobtype_name(spec->type, spec->handler), spec->argv, key, len);
	return spec->class != CLASS_AUTO ? spec->class : router_decide(rt, key);
}

void
router_learn_run(struct router *rt, const char *key, const struct run_result *r)
{
	/*
	 * cpu / (wall - time spent waiting for a CPU): a CPU-bound job on a
	 * busy machine is still CPU-bound, it just queued for the cores.
	 */
	if (r->status == RUN_EXITED || r->status == RUN_SIGNALED || r->status == RUN_TIMEOUT)
		router_learn(rt, key, r->cpu_user + r->cpu_sys,
			     r->wall - (r->runq_wait < r->wall ? r->runq_wait : 0));
}

size_t
router_size(const struct router *rt)
{
	return rt->n;
}

json_t *
router_to_json(const struct router *rt)
{
	json_t *a = json_array();
	struct entry *e;

	TAILQ_FOREACH(e, &rt->entries, lru) {
		json_array_append_new(a, json_pack("{s:s,s:I,s:f,s:s}", "key", e->key, "samples",
						   (json_int_t)e->samples, "cpu_ratio",
						   round(e->ratio * 1000) / 1000, "class",
						   config_class_name(class_of(rt, e))));
	}
	return a;
}
