/*
 * Unit tests for the stored job records (daemon/record.c, record-fields.c,
 * record-decode.c): rows written by taskd 0.1.0 (version 1, taken verbatim
 * from tests/e2e/fixtures/records-v1.db) and version 2 records are read and
 * written back in the current version with the same meaning; current
 * records round-trip byte for byte; anything damaged, unknown or newer is
 * refused with a reason; jobs_restore puts decoded jobs into a table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include <taskd/protocol.h>

#include "builtin.h"
#include "job.h"
#include "jobtype.h"
#include "jsonutil.h"
#include "modules.h"
#include "record.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Rows of tests/e2e/fixtures/records-v1.db, as taskd 0.1.0 wrote them. */
static const char v1_failed_retried[] =
	"{\"spec\":{\"type\":0,\"argv\":[\"sh\",\"-c\",\"exit 3\"],\"env\":null,\"cwd\":\"/\","
	"\"name\":null,\"class\":2,\"priority\":0,\"timeout\":0.0},\"uid\":0,\"gid\":0,"
	"\"routed\":2,\"pool\":1,\"worker\":0,\"route_key\":\"sh\",\"submitted_at\":"
	"1796312793.0307295,\"started_at\":1796312793.2387972,\"finished_at\":1796312793.2418206,"
	"\"res\":{\"t\":\"done\",\"job\":3,\"status\":0,\"exit_code\":3,\"signal\":0,\"cpu_user\":"
	"0.0,\"cpu_sys\":0.0026459999999999999,\"max_rss_kb\":5148,\"wall\":0.0030236959999001556,"
	"\"runq_wait\":8.8626000000000002e-5,\"started_at\":1796312793.2387972,\"finished_at\":"
	"1796312793.2418206,\"out_bytes\":0,\"err_bytes\":0,\"out_truncated\":false,"
	"\"err_truncated\":false,\"pid\":17562,\"result\":null,\"error\":null,\"rss_kb\":-1},"
	"\"life\":{\"deps\":[],\"run_at\":0.0,\"retries\":1,\"retry_delay\":0.0,\"attempt\":2,"
	"\"attempts\":[{\"attempt\":1,\"state\":\"failed\",\"exit_code\":3,\"signal\":null,"
	"\"error\":null,\"started_at\":1796312793.0340028,\"finished_at\":1796312793.0364556}],"
	"\"due_at\":0.0}}";
static const char v1_done_deps[] =
	"{\"spec\":{\"type\":0,\"argv\":[\"true\"],\"env\":null,\"cwd\":\"/\",\"name\":null,"
	"\"class\":2,\"priority\":0,\"timeout\":0.0},\"uid\":0,\"gid\":0,\"routed\":2,\"pool\":1,"
	"\"worker\":0,\"route_key\":\"true\",\"submitted_at\":1796312793.2429209,\"started_at\":"
	"1796312793.2439303,\"finished_at\":1796312793.2461197,\"res\":{\"t\":\"done\",\"job\":8,"
	"\"status\":0,\"exit_code\":0,\"signal\":0,\"cpu_user\":0.0015610000000000001,"
	"\"cpu_sys\":0.0,\"max_rss_kb\":5148,\"wall\":0.0021893959999488288,\"runq_wait\":"
	"0.0001002,\"started_at\":1796312793.2439303,\"finished_at\":1796312793.2461197,"
	"\"out_bytes\":0,\"err_bytes\":0,\"out_truncated\":false,\"err_truncated\":false,\"pid\":"
	"17563,\"result\":null,\"error\":null,\"rss_kb\":-1},\"life\":{\"deps\":[[2,false,5],"
	"[3,true,6]],\"run_at\":0.0,\"retries\":0,\"retry_delay\":1.0,\"attempt\":1,\"attempts\":"
	"null,\"due_at\":0.0}}";
static const char v1_queued[] =
	"{\"spec\":{\"type\":0,\"argv\":[\"true\"],\"env\":[\"A=1\",\"PATH=/usr/local/bin:/usr/bin:"
	"/bin\"],\"cwd\":\"/\",\"name\":null,\"class\":2,\"priority\":3,\"timeout\":0.0,\"labels\":"
	"{\"k\":\"v\"}},\"uid\":0,\"gid\":0,\"routed\":0,\"pool\":0,\"worker\":-1,\"route_key\":\"\","
	"\"submitted_at\":1796312793.2479222,\"started_at\":0.0,\"finished_at\":0.0,\"res\":{\"t\":"
	"\"done\",\"job\":11,\"status\":0,\"exit_code\":-1,\"signal\":0,\"cpu_user\":0.0,"
	"\"cpu_sys\":0.0,\"max_rss_kb\":-1,\"wall\":0.0,\"runq_wait\":0.0,\"started_at\":0.0,"
	"\"finished_at\":0.0,\"out_bytes\":0,\"err_bytes\":0,\"out_truncated\":false,"
	"\"err_truncated\":false,\"pid\":0,\"result\":null,\"error\":null,\"rss_kb\":-1},\"life\":"
	"{\"deps\":[],\"run_at\":0.0,\"retries\":0,\"retry_delay\":1.0,\"attempt\":1,\"attempts\":"
	"null,\"due_at\":0.0}}";
static const char v1_builtin_process[] =
	"{\"spec\":{\"type\":4,\"argv\":[\"10\"],\"env\":null,\"cwd\":\"/\",\"name\":null,"
	"\"class\":1,\"priority\":0,\"timeout\":0.0},\"uid\":0,\"gid\":0,\"routed\":1,\"pool\":2,"
	"\"worker\":17436,\"route_key\":\"sumsq\",\"submitted_at\":1796312775.9984384,"
	"\"started_at\":1796312776.0011685,\"finished_at\":1796312776.0012407,\"res\":{\"t\":"
	"\"done\",\"job\":5,\"status\":0,\"exit_code\":0,\"signal\":0,\"cpu_user\":0.0,"
	"\"cpu_sys\":0.0,\"max_rss_kb\":-1,\"wall\":7.2787999897627742e-5,\"runq_wait\":0.0,"
	"\"started_at\":1796312776.0011685,\"finished_at\":1796312776.0012407,\"out_bytes\":0,"
	"\"err_bytes\":0,\"out_truncated\":false,\"err_truncated\":false,\"pid\":0,\"result\":"
	"\"285\",\"error\":null,\"rss_kb\":-1},\"life\":{\"deps\":[],\"run_at\":0.0,\"retries\":0,"
	"\"retry_delay\":1.0,\"attempt\":1,\"attempts\":null,\"due_at\":0.0}}";
static const char v1_timeout[] =
	"{\"spec\":{\"type\":0,\"argv\":[\"sleep\",\"5\"],\"env\":null,\"cwd\":\"/\",\"name\":null,"
	"\"class\":2,\"priority\":0,\"timeout\":0.20000000000000001},\"uid\":0,\"gid\":0,"
	"\"routed\":2,\"pool\":1,\"worker\":0,\"route_key\":\"sleep\",\"submitted_at\":"
	"1796312775.995275,\"started_at\":1796312775.9985704,\"finished_at\":1796312776.2001944,"
	"\"res\":{\"t\":\"done\",\"job\":4,\"status\":2,\"exit_code\":-1,\"signal\":15,"
	"\"cpu_user\":0.0,\"cpu_sys\":0.00197,\"max_rss_kb\":5252,\"wall\":0.20162395700003799,"
	"\"runq_wait\":0.00014464499999999999,\"started_at\":1796312775.9985704,\"finished_at\":"
	"1796312776.2001944,\"out_bytes\":0,\"err_bytes\":0,\"out_truncated\":false,"
	"\"err_truncated\":false,\"pid\":17439,\"result\":null,\"error\":null,\"rss_kb\":-1},"
	"\"life\":{\"deps\":[],\"run_at\":0.0,\"retries\":0,\"retry_delay\":1.0,\"attempt\":1,"
	"\"attempts\":null,\"due_at\":0.0}}";

static struct job *
decode(uint64_t id, const char *state, const char *text, int want_version)
{
	char *cause = NULL;
	struct job *j;
	int version;
	uint64_t array;

	j = record_decode(id, state, text, &version, &array, &cause);
	if (j == NULL)
		fail_msg("job %llu refused: %s", (unsigned long long)id, cause);
	assert_null(cause);
	assert_int_equal(version, want_version);
	assert_int_equal(j->id, id);
	return j;
}

/* The record must not decode; its cause names the job and contains want. */
static void
refused(uint64_t id, const char *state, const char *text, const char *want)
{
	char *cause = NULL, prefix[32];
	int version;
	uint64_t array;

	if (record_decode(id, state, text, &version, &array, &cause) != NULL)
		fail_msg("accepted: %s", text);
	assert_non_null(cause);
	snprintf(prefix, sizeof prefix, "job %llu: ", (unsigned long long)id);
	if (strncmp(cause, prefix, strlen(prefix)) != 0 || strstr(cause, want) == NULL)
		fail_msg("cause \"%s\" (wanted \"%s\") for %s", cause, want, text);
	free(cause);
}

/* The job object, as `show` answers it (jobs_restore sets what a stored job has). */
static json_t *
shown(struct job *j)
{
	return job_to_json(j);
}

/* Write j as version 2, read it back: the same job, and the same text again. */
static char *
round_trip(struct job *j)
{
	char *text = record_encode(j), *again;
	struct job *back = decode(j->id, job_state_name(j->state), text, RECORD_VERSION);
	json_t *a = shown(j), *b = shown(back);

	if (!json_equal(a, b)) {
		char *x = json_dumps(a, JSON_SORT_KEYS), *y = json_dumps(b, JSON_SORT_KEYS);

		fail_msg("job %llu changed:\n%s\n%s", (unsigned long long)j->id, x, y);
	}
	assert_int_equal(back->spec.ndeps, j->spec.ndeps);
	assert_int_equal(back->due_at == j->due_at, 1);
	assert_int_equal(back->attempt, j->attempt);
	again = record_encode(back);
	assert_string_equal(again, text);
	free(again);
	json_decref(a);
	json_decref(b);
	job_free(back);
	return text;
}

static char *with(const char *text, const char *obj, const char *key, json_t *v);

static json_t *
parse(const char *text)
{
	json_t *o = json_loads(text, 0, NULL);

	assert_non_null(o);
	return o;
}

/* Version 1 rows: read with their meaning, written back in the current version by name. */
static void
test_v1_rows(void **state)
{
	struct job *j;
	json_t *o, *spec, *res;
	char *text;

	(void)state;
	j = decode(3, "failed", v1_failed_retried, 1);
	assert_int_equal(j->state, JOB_FAILED);
	assert_int_equal(j->spec.type, BUILTIN_EXEC);
	assert_string_equal(j->spec.argv[2], "exit 3");
	assert_null(j->spec.env);
	assert_int_equal(j->spec.class, CLASS_IO);
	assert_int_equal(j->routed, CLASS_IO);
	assert_int_equal(j->pool, POOL_THREAD);
	assert_int_equal(j->res.status, RUN_EXITED);
	assert_int_equal(j->res.exit_code, 3);
	assert_int_equal(j->res.pid, 17562);
	assert_int_equal(j->spec.retries, 1);
	assert_int_equal(j->attempt, 2);
	assert_int_equal(json_array_size(j->attempts), 1);
	/* Only the kind key was kept: an explicit class routed it. */
	assert_string_equal(j->route.key, "sh");
	assert_int_equal(j->route.by, ROUTE_CLASS);
	assert_int_equal(j->route.decided, CLASS_IO);
	assert_int_equal(j->route.level, -1);
	assert_null(j->cgroup);
	assert_int_equal(j->res.mem_peak_kb, -1);
	assert_int_equal(j->spec.limits.memory, 0);
	text = round_trip(j);
	o = parse(text);
	assert_int_equal(json_integer_value(json_object_get(o, "v")), RECORD_VERSION);
	assert_null(json_object_get(o, "route_key"));
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "route"), "key")),
			    "sh");
	spec = json_object_get(o, "spec");
	assert_true(json_is_null(json_object_get(spec, "notify")));
	res = json_object_get(o, "result");
	assert_string_equal(json_string_value(json_object_get(spec, "type")), "exec");
	assert_string_equal(json_string_value(json_object_get(spec, "class")), "io");
	assert_string_equal(json_string_value(json_object_get(o, "routed")), "io");
	assert_string_equal(json_string_value(json_object_get(o, "pool")), "thread");
	assert_string_equal(json_string_value(json_object_get(res, "status")), "exited");
	/* Nothing of the worker's message: no "t", no "job", no "rss_kb", no "res", no "life". */
	assert_null(json_object_get(o, "res"));
	assert_null(json_object_get(o, "life"));
	assert_null(json_object_get(res, "t"));
	assert_null(json_object_get(res, "job"));
	assert_null(json_object_get(res, "rss_kb"));
	json_decref(o);
	free(text);
	job_free(j);

	j = decode(8, "done", v1_done_deps, 1);
	assert_int_equal(j->spec.ndeps, 2);
	assert_int_equal(j->spec.deps[0].id, 2);
	assert_false(j->spec.deps[0].any);
	assert_int_equal(j->spec.deps[0].state, JOB_DONE);
	assert_int_equal(j->spec.deps[1].id, 3);
	assert_true(j->spec.deps[1].any);
	assert_int_equal(j->spec.deps[1].state, JOB_FAILED);
	text = round_trip(j);
	o = parse(text);
	assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(
				    json_object_get(o, "spec"), "deps"), 1), "state")), "failed");
	json_decref(o);
	free(text);
	job_free(j);

	j = decode(11, "queued", v1_queued, 1);
	assert_int_equal(j->state, JOB_QUEUED);
	assert_string_equal(j->spec.env[0], "A=1");
	assert_int_equal(j->spec.priority, 3);
	assert_string_equal(labels_get(&j->spec.labels, "k"), "v");
	assert_int_equal(j->routed, CLASS_AUTO);
	assert_int_equal(j->pool, POOL_NONE);
	assert_int_equal(j->worker, -1);
	assert_int_equal(j->route.by, ROUTE_CLASS); /* --class io, stored before it was routed */
	text = round_trip(j);
	o = parse(text);
	assert_true(json_is_null(json_object_get(o, "pool")));
	assert_string_equal(json_string_value(json_object_get(o, "routed")), "auto");
	json_decref(o);
	free(text);
	job_free(j);

	j = decode(5, "done", v1_builtin_process, 1);
	assert_int_equal(j->spec.type, BUILTIN_SUMSQ);
	assert_int_equal(j->spec.class, CLASS_CPU);
	assert_int_equal(j->pool, POOL_PROCESS);
	assert_int_equal(j->worker, 17436);
	assert_string_equal(j->res.result, "285");
	free(round_trip(j));
	job_free(j);

	j = decode(4, "timeout", v1_timeout, 1);
	assert_int_equal(j->res.status, RUN_TIMEOUT);
	assert_int_equal(j->res.signal, 15);
	assert_true(j->spec.timeout == 0.2);
	text = round_trip(j);
	o = parse(text);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "result"),
							      "status")), "timeout");
	json_decref(o);
	free(text);
	job_free(j);
	/* Class auto: where the router sent it is known, not why. */
	text = with(v1_failed_retried, "spec", "class", json_integer(CLASS_AUTO));
	j = decode(3, "failed", text, 1);
	assert_int_equal(j->route.by, ROUTE_UNKNOWN);
	assert_int_equal(j->route.decided, CLASS_IO);
	assert_string_equal(j->route.key, "sh");
	free(round_trip(j));
	job_free(j);
	free(text);
}

/* Set o's path (a.b) to v in a copy of text; the new text (malloc'd). */
static char *
with(const char *text, const char *obj, const char *key, json_t *v)
{
	json_t *o = parse(text), *in = obj != NULL ? json_object_get(o, obj) : o;
	char *out;

	assert_non_null(in);
	if (v == NULL)
		json_object_del(in, key);
	else
		json_object_set_new(in, key, v);
	out = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return out;
}

static void
refused_with(uint64_t id, const char *state, const char *text, const char *obj, const char *key,
	     json_t *v, const char *want)
{
	char *t = with(text, obj, key, v);

	refused(id, state, t, want);
	free(t);
}

/* Version 1 records are read as taskd 0.1.0 read them: the same refusals. */
static void
test_v1_refused(void **state)
{
	char *t;
	struct job *j;

	(void)state;
	/* The result names its own job: another row's is refused. */
	refused(4, "failed", v1_failed_retried, "another job's");
	refused_with(3, "failed", v1_failed_retried, "spec", "priority", json_integer(20),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, "spec", "priority", json_integer(-21),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, "spec", "class", json_integer(3),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, "spec", "type", json_integer(99),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, NULL, "pool", json_integer(7),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, NULL, "uid", json_integer(-1),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, "res", "status", json_integer(6),
		     "bad result");
	refused_with(3, "failed", v1_failed_retried, "res", "t", json_string("run"), "bad result");
	refused_with(3, "failed", v1_failed_retried, "res", "exit_code", json_integer(256),
		     "bad result");
	refused_with(3, "failed", v1_failed_retried, "life", "attempt", json_integer(0),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, "life", "deps",
		     json_pack("[[i,b,i]]", 0, 0, -1), "lifecycle");
	refused_with(3, "failed", v1_failed_retried, "life", "deps",
		     json_pack("[[i,b,i]]", 2, 0, JOB_NSTATES), "lifecycle");
	refused_with(3, "failed", v1_failed_retried, "life", "attempts", json_integer(1),
		     "unreadable record");
	refused_with(3, "failed", v1_failed_retried, "spec", "argv",
		     json_pack("[s,i]", "sh", 1), "bad spec");
	refused_with(3, "failed", v1_failed_retried, "spec", "labels", json_pack("{s:i}", "k", 1),
		     "bad spec");
	refused_with(3, "failed", v1_failed_retried, NULL, "res", NULL, "unreadable record");
	refused(3, "finished", v1_failed_retried, "unknown state");
	/* The oldest records have no "life": a first attempt, nothing else. */
	t = with(v1_failed_retried, NULL, "life", NULL);
	j = decode(3, "failed", t, 1);
	assert_int_equal(j->attempt, 1);
	assert_int_equal(j->spec.retries, 0);
	assert_true(j->spec.retry_delay == 0);
	assert_int_equal(j->spec.ndeps, 0);
	assert_null(j->attempts);
	free(round_trip(j));
	job_free(j);
	free(t);
}

static struct job *
full_job(void)
{
	struct job *j = job_new();
	char *cause = NULL;
	json_t *labels;

	j->id = 42;
	j->state = JOB_SCHEDULED;
	j->spec.type = BUILTIN_EXEC;
	j->spec.argv = xcalloc(3, sizeof(char *));
	j->spec.argv[0] = xstrdup("make");
	j->spec.argv[1] = xstrdup("-j\xc3\xa9");
	j->spec.env = xcalloc(2, sizeof(char *));
	j->spec.env[0] = xstrdup("PATH=/bin");
	j->spec.cwd = xstrdup("/srv/build");
	j->spec.name = xstrdup("nightly");
	j->spec.notify = xstrdup("notify-send done");
	labels = json_pack("{s:s,s:s}", "team", "infra", "run", "7");
	assert_int_equal(labels_from_json(labels, "labels", &j->spec.labels, &cause), 0);
	json_decref(labels);
	j->spec.class = CLASS_CPU;
	j->spec.priority = -20;
	j->spec.timeout = 3600.5;
	j->spec.ndeps = 2;
	j->spec.deps = xcalloc(2, sizeof *j->spec.deps);
	j->spec.deps[0].id = 40;
	j->spec.deps[0].state = JOB_DONE;
	j->spec.deps[1].id = 41;
	j->spec.deps[1].any = true;
	j->spec.deps[1].state = -1;
	j->spec.run_at = 1800000000.25;
	j->spec.retries = 3;
	j->spec.retry_delay = 0.5;
	j->uid = 1000;
	j->gid = 100;
	j->routed = CLASS_CPU;
	j->pool = POOL_PROCESS;
	j->worker = 31337;
	j->route.by = ROUTE_KEY;
	j->route.decided = CLASS_CPU;
	j->route.level = 1;
	snprintf(j->route.key, sizeof j->route.key, "make all");
	j->route.samples = 12;
	j->route.ratio = 0.875;
	j->cgroup = xstrdup("/sys/fs/cgroup/taskd-1a2b/job-42");
	j->reclassified_at = 1700000001.75;
	j->spec.limits.memory = 512ull << 20;
	j->spec.limits.cpus = 1.5;
	j->spec.limits.pids = 64;
	j->submitted_at = 1700000000.5;
	j->started_at = 1700000001.5;
	j->finished_at = 1700000002.5;
	j->attempt = 2;
	j->attempts = json_pack("[{s:i,s:s,s:i}]", "attempt", 1, "state", "lost", "exit_code", 9);
	j->due_at = 1800000001.5;
	j->res.status = RUN_LOST;
	j->res.exit_code = -1;
	j->res.signal = 9;
	j->res.cpu_user = 1.25;
	j->res.cpu_sys = 0.125;
	j->res.max_rss_kb = 123456;
	j->res.wall = 2.0;
	j->res.runq_wait = 0.0625;
	j->res.started_at = 1700000001.5;
	j->res.finished_at = 1700000002.5;
	j->res.out_bytes = 1ull << 40;
	j->res.err_bytes = 7;
	j->res.out_truncated = true;
	j->res.pid = 4242;
	j->res.error = xstrdup("worker 31337 died (signal 9)");
	j->res.mem_peak_kb = 65536;
	j->res.in_cgroup = true;
	j->res.cgroup_error = xstrdup("pids.max: Permission denied");
	j->spec.unique = xstrdup("nightly-build");
	j->spec.queue = xstrdup("gpu");
	j->spec.slots = 2;
	j->spec.input_bytes = 5;
	j->restarted_from = 7;
	j->suspended_for = 2.5;
	return j;
}

/* v as jansson writes a real: what the record held when it was a jansson tree. */
static void
real_as_jansson(double v)
{
	json_t *r = json_real(v);
	char *want = json_dumps(r, JSON_COMPACT | JSON_ENCODE_ANY), buf[JSON_REAL_TEXT_MAX];
	size_t n = json_real_text(v, buf);
	double back;

	if (strcmp(buf, want) != 0 || n != strlen(want))
		fail_msg("%a: \"%s\" (%zu), jansson \"%s\"", v, buf, n, want);
	back = strtod(buf, NULL);
	if (memcmp(&back, &v, sizeof v) != 0)
		fail_msg("%a: \"%s\" reads back as %a", v, buf, back);
	free(want);
	json_decref(r);
}

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Reals are written as jansson writes them, byte for byte, and read back exactly. */
static void
test_real_text(void **state)
{
	static const double table[] = {
		0.0, -0.0, 1.0, -1.0, 0.5, 0.1, 0.2, 0.3, 1.0 / 3, 2.0 / 3, 1e-6, 9.999999e-7,
		1.0000000000000001e-6, 1e-5, 9.9999999999999991e-5, 1e-4, 1.0000000000000001e-4,
		0.001, 0.0026459999999999999, 8.8626000000000002e-5, 7.2787999897627742e-5, 123.456,
		1e15, 1e16, 1e17, 1e22, 1e23, 9007199254740991.0, 9007199254740992.0,
		9007199254740993.0, 4503599627370495.5, 4503599627370496.0, 99999999999999984.0,
		0.99999999999999989, 9.9999999999999982, 1796312793.0307295, 1796312793.2387972,
		1700000000.5, 1800000000.25, 3600.5, 0.0625, 1e300, -1e300, DBL_MAX, -DBL_MAX,
		DBL_MIN, -DBL_MIN, 4.9406564584124654e-324, 2.2250738585072009e-308, DBL_EPSILON,
		-1796312793.0307295, -8.8626000000000002e-5, 5e-7, 123456789012345680.0,
	};
	uint64_t seed = 0x9E3779B97F4A7C15ULL, bits;
	double v;
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < nitems(table); i++)
		real_as_jansson(table[i]);
	for (k = 0; k < 100000; k++) {
		/* Any finite double; one in the fast range; a timestamp; microseconds. */
		bits = xorshift(&seed);
		memcpy(&v, &bits, sizeof v);
		if (isfinite(v))
			real_as_jansson(v);
		real_as_jansson(ldexp((double)(xorshift(&seed) >> 11), (int)(xorshift(&seed) % 80) - 105));
		real_as_jansson(1.7e9 + (double)(xorshift(&seed) % 1000000000) / 1e9);
		real_as_jansson((double)(xorshift(&seed) % 100000000) / 1e6);
	}
}

/* What jansson takes as UTF-8, and nothing else. */
static void
test_utf8(void **state)
{
	static const char *const table[] = {
		"", "abc", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "\xef\xbf\xbf",
		"\xf4\x8f\xbf\xbf", "\x7f", "\xc0\x80", "\xc1\xbf", "\xe0\x80\x80", "\xe0\x9f\xbf",
		"\xed\xa0\x80", "\xed\xbf\xbf", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
		"\xe2\x82", "\x80", "\xbf", "\xff", "\xfe", "a\xc3", "\xc3\xa9\xc3", "\xe2\x28\xa1",
	};
	json_t *v;
	size_t i;

	(void)state;
	for (i = 0; i < nitems(table); i++) {
		v = json_string(table[i]);
		if (utf8_valid(table[i], strlen(table[i])) != (v != NULL))
			fail_msg("entry %zu: utf8_valid %d, jansson %d", i,
				 utf8_valid(table[i], strlen(table[i])), v != NULL);
		json_decref(v);
	}
}

/* The record is the text jansson wrote for the tree of its fields, with its reals as reals. */
static void
as_jansson(struct job *j)
{
	char *text = round_trip(j), *again;
	json_t *o = parse(text), *res = json_object_get(o, "result");

	again = json_dumps(o, JSON_COMPACT);
	assert_string_equal(text, again);
	assert_true(json_is_real(json_object_get(o, "submitted_at")));
	assert_true(json_is_real(json_object_get(o, "due_at")));
	assert_true(json_is_real(json_object_get(json_object_get(o, "spec"), "timeout")));
	assert_true(json_is_real(json_object_get(res, "cpu_user")));
	assert_true(json_is_real(json_object_get(res, "wall")));
	assert_true(json_is_real(json_object_get(o, "reclassified_at")));
	assert_true(json_is_real(json_object_get(json_object_get(o, "route"), "ratio")));
	assert_true(json_is_real(json_object_get(json_object_get(json_object_get(o, "spec"),
								 "limits"), "cpus")));
	free(again);
	json_decref(o);
	free(text);
}

static void
test_as_jansson(void **state)
{
	static const double times[] = {
		0.0, 1.0, 1e-7, 4.9406564584124654e-324, 0.0026459999999999999, 1796312793.0307295,
		1e300, DBL_MAX, 9007199254740993.0,
	};
	static const double any[] = { -0.0, -1.5, -1e300, -4.9406564584124654e-324 };
	struct job *j = full_job();
	char *text;
	json_t *o;
	size_t i;

	(void)state;
	/* Every escape jansson writes, UTF-8 as is. */
	free(j->spec.name);
	j->spec.name = xstrdup("\x01\x02\x1f\"\\/\b\f\n\r\t\x7f \xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e");
	free(j->res.error);
	j->res.error = xstrdup("q\"uote\\");
	free(j->spec.argv[0]);
	j->spec.argv[0] = xstrdup("\ttab");
	json_decref(j->attempts);
	j->attempts = json_pack("[{s:i,s:f,s:n},{s:s}]", "attempt", 1, "started_at",
				1796312793.0340028, "signal", "error", "a\nb");
	as_jansson(j);
	for (i = 0; i < nitems(times); i++) {
		j->res.cpu_user = j->res.wall = j->res.started_at = times[i];
		j->submitted_at = j->due_at = j->spec.timeout = times[i];
		as_jansson(j);
	}
	for (i = 0; i < nitems(any); i++) {
		j->submitted_at = j->due_at = j->spec.timeout = j->spec.retry_delay = any[i];
		as_jansson(j);
	}
	/* NaN and infinities, which JSON cannot hold: 0.0, as the tree had them. */
	j->due_at = NAN;
	j->spec.timeout = INFINITY;
	j->res.wall = -INFINITY;
	text = record_encode(j);
	o = parse(text);
	assert_true(json_is_real(json_object_get(o, "due_at")));
	assert_true(json_real_value(json_object_get(o, "due_at")) == 0.0);
	assert_true(json_real_value(json_object_get(json_object_get(o, "spec"), "timeout")) == 0.0);
	assert_true(json_real_value(json_object_get(json_object_get(o, "result"), "wall")) == 0.0);
	json_decref(o);
	free(text);
	job_free(j);
}

/* jtext_value writes what json_dumps writes. */
static void
text_as_jansson(const json_t *v)
{
	char *want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	struct jtext t = { 0 };
	char *got;

	jtext_value(&t, v);
	got = jtext_end(&t);
	assert_non_null(want);
	if (strcmp(got, want) != 0 || t.n != strlen(want))
		fail_msg("jtext \"%s\" (%zu), jansson \"%s\"", got, t.n, want);
	free(got);
	free(want);
}

/* A random tree of every kind of value, depth at most d. */
static json_t *
random_tree(uint64_t *seed, int d)
{
	static const char *const strs[] = { "", "a", "\"q\"", "back\\slash", "\x01\x1f\x7f",
					    "\b\f\n\r\t/", "\xc3\xa9\xe2\x82\xac\xf0\x9d\x84\x9e" };
	json_t *v;
	uint64_t r = xorshift(seed), bits;
	double x;
	char key[16];
	int i, n;

	switch (r % (d > 0 ? 9 : 7)) {
	case 0:
		return json_null();
	case 1:
		return json_boolean(r & 16);
	case 2:
		return json_integer((json_int_t)xorshift(seed) >> (r % 64));
	case 3:
		bits = xorshift(seed);
		memcpy(&x, &bits, sizeof x);
		return json_real(isfinite(x) ? x : (double)(r % 1000) / 7);
	case 4:
		return json_real((double)(xorshift(seed) % 10000000) / 1e6);
	case 5:
		return json_string(strs[r % nitems(strs)]);
	case 6:
		return json_stringn("nul\0inside", 10);
	case 7:
		v = json_array();
		for (i = 0, n = (int)(r >> 8) % 5; i < n; i++)
			json_array_append_new(v, random_tree(seed, d - 1));
		return v;
	default:
		v = json_object();
		for (i = 0, n = (int)(r >> 8) % 5; i < n; i++) {
			snprintf(key, sizeof key, "%s%d", i % 2 ? "k\n" : "key", (int)(r >> 16) % 97);
			json_object_set_new(v, key, random_tree(seed, d - 1));
		}
		return v;
	}
}

static void
test_jtext_as_jansson(void **state)
{
	struct job *j = full_job();
	uint64_t seed = 42;
	json_t *v;
	int k;

	(void)state;
	v = job_to_json(j);
	text_as_jansson(v);
	json_decref(v);
	v = json_pack("[I,I,I,I,{},[],{s:[]}]", (json_int_t)LLONG_MIN, (json_int_t)LLONG_MAX,
		      (json_int_t)0, (json_int_t)-1, "");
	text_as_jansson(v);
	json_decref(v);
	for (k = 0; k < 20000; k++) {
		v = random_tree(&seed, 4);
		text_as_jansson(v);
		json_decref(v);
	}
	job_free(j);
}

/*
 * A current record made one of an older version (2 to 4): without what came
 * later (version 5's workflow fields; version 4's route and cgroup fields,
 * with the old "route_key" back; version 3's notify), and a handler's part
 * with the "input" those versions had ("": none).
 */
static json_t *
older(const char *text, int version)
{
	json_t *o = json_loads(text, 0, NULL), *spec = json_object_get(o, "spec");
	json_t *res = json_object_get(o, "result"), *h = json_object_get(o, "handler");
	static const char *const top[] = { "array", "restarted_from", "suspended_for" };
	static const char *const sp[] = { "unique", "queue", "slots", "input_bytes" };
	static const char *const top4[] = { "route", "cgroup", "reclassified_at" };
	static const char *const res4[] = { "mem_peak_kb", "in_cgroup", "cgroup_error" };
	size_t i;

	json_object_set_new(o, "v", json_integer(version));
	for (i = 0; i < nitems(top); i++)
		json_object_del(o, top[i]);
	for (i = 0; i < nitems(sp); i++)
		json_object_del(spec, sp[i]);
	if (h != NULL)
		json_object_set_new(h, "input", json_string(""));
	if (version < 4) {
		for (i = 0; i < nitems(top4); i++)
			json_object_del(o, top4[i]);
		for (i = 0; i < nitems(res4); i++)
			json_object_del(res, res4[i]);
		json_object_del(spec, "limits");
		json_object_set_new(o, "route_key", json_string("nightly"));
	}
	if (version < 3)
		json_object_del(spec, "notify");
	return o;
}

/* older() as text. */
static char *
as_old(const char *cur, int v)
{
	json_t *o = older(cur, v);
	char *out = json_dumps(o, JSON_COMPACT);

	json_decref(o);
	return out;
}

/*
 * A handler's job: its type by name, a JSON result, pool "handler"; its
 * input in its file (input_bytes), as a command's. A version 2 record held
 * the input itself (base64): it comes back decoded, for the caller to store.
 */
static void
test_handler_job(void **state)
{
	struct job *j = full_job(), *back;
	char *text, *cause = NULL, *t;
	json_t *o = NULL;
	int version, v;
	uint64_t array;

	(void)state;
	j->spec.type = JOBTYPE_HANDLER;
	j->spec.handler = xstrdup("thumb");
	j->spec.input_bytes = 2;
	j->pool = POOL_HANDLER;
	j->res.result = xstrdup("{\"w\":320}");
	j->res.result_json = true;
	text = round_trip(j);
	back = record_decode(j->id, "scheduled", text, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(back->spec.type, JOBTYPE_HANDLER);
	assert_string_equal(back->spec.handler, "thumb");
	assert_int_equal(back->spec.input_bytes, 2);
	assert_null(back->spec.input);
	assert_int_equal(back->pool, POOL_HANDLER);
	assert_true(back->res.result_json);
	assert_string_equal(back->res.result, "{\"w\":320}");
	job_free(back);
	/* Versions 2 to 4: the input in the record, base64. */
	for (v = 4; v >= 3; v--) {
		if (v < 4)
			json_decref(o); /* version 4's; version 3's is kept for what follows */
		o = older(text, v);
		json_object_set_new(o, "handler",
				    json_pack("{s:s,s:b}", "input", "aGk=", "result_json", 1));
		t = json_dumps(o, JSON_COMPACT);
		back = record_decode(j->id, "queued", t, &version, &array, &cause);
		assert_non_null(back);
		assert_int_equal(version, v);
		assert_int_equal(back->spec.input_bytes, 2);
		assert_memory_equal(back->spec.input, "hi", 2);
		assert_true(back->res.result_json);
		job_free(back);
		free(t);
	}
	/* ... and its input must be base64. */
	json_object_set_new(o, "handler", json_pack("{s:s,s:b}", "input", "a!", "result_json", 1));
	t = json_dumps(o, JSON_COMPACT);
	assert_null(record_decode(42, "done", t, &version, &array, &cause));
	free(cause);
	cause = NULL;
	free(t);
	json_decref(o);
	/* A type no built-in has, without the handler part: refused. */
	o = json_loads(text, 0, NULL);
	json_object_del(o, "handler");
	t = json_dumps(o, JSON_COMPACT);
	assert_null(record_decode(42, "done", t, &version, &array, &cause));
	free(cause);
	cause = NULL;
	free(t);
	/* The handler part on a built-in's record: refused. */
	json_object_set_new(json_object_get(o, "spec"), "type", json_string("exec"));
	json_object_set_new(o, "handler", json_pack("{s:b}", "result_json", 0));
	t = json_dumps(o, JSON_COMPACT);
	assert_null(record_decode(42, "done", t, &version, &array, &cause));
	free(cause);
	free(t);
	json_decref(o);
	free(text);
	job_free(j);
}

/*
 * Version 5's fields are written as the jansson tree wrote them (reals as
 * reals): a job's workflow fields, an array's record, and a job of an array
 * with only its own part of the spec; each read back.
 */
static void
test_workflow_as_jansson(void **state)
{
	struct job *j = full_job(), *m, *back;
	struct job_array *a, *ab;
	char *text, *again, *cause = NULL;
	uint64_t array;
	json_t *o;
	int version;

	(void)state;
	/* full_job has every workflow field set; a key that needs escapes, a whole real. */
	free(j->spec.unique);
	j->spec.unique = xstrdup("nightly-\"build\"");
	j->spec.slots = 3;
	j->suspended_for = 12.0;
	as_jansson(j);
	text = record_encode(j);
	o = parse(text);
	assert_true(json_is_real(json_object_get(o, "suspended_for")));
	assert_true(json_is_null(json_object_get(o, "array")));
	json_decref(o);
	free(text);

	/* An array of 4 with j's spec (its dependencies kept apart, as submitted). */
	a = xcalloc(1, sizeof *a);
	a->id = 42;
	a->count = 4;
	a->start = 10;
	a->step = 5;
	a->max = 2;
	a->uid = 1000;
	a->gid = 100;
	a->submitted_at = 1700000000.0;
	a->first_state = JOB_WAITING;
	a->spec = j->spec;
	a->deps = a->spec.deps;
	a->ndeps = a->spec.ndeps;
	a->spec.deps = NULL;
	a->spec.ndeps = 0;
	memset(&j->spec, 0, sizeof j->spec);
	text = record_encode_array(a);
	o = parse(text);
	again = json_dumps(o, JSON_COMPACT);
	assert_string_equal(text, again);
	assert_true(json_is_real(json_object_get(o, "submitted_at")));
	assert_true(json_is_real(json_object_get(json_object_get(json_object_get(o, "spec"),
								 "limits"), "cpus")));
	ab = record_decode_array(42, text, &cause);
	if (ab == NULL)
		fail_msg("array refused: %s", cause);
	assert_int_equal(ab->count, 4);
	assert_int_equal(ab->start, 10);
	assert_int_equal(ab->step, 5);
	assert_int_equal(ab->max, 2);
	assert_int_equal(ab->first_state, JOB_WAITING);
	assert_int_equal(ab->ndeps, 2);
	assert_string_equal(ab->spec.unique, "nightly-\"build\"");
	assert_int_equal(ab->spec.slots, 3);
	assert_int_equal(ab->spec.input_bytes, 5);
	assert_true(ab->spec.limits.cpus == 1.5);
	job_array_free(ab);
	json_decref(o);
	free(again);
	free(text);

	/* Its third job: its own priority and dependencies, the rest its array's. */
	m = job_new();
	m->id = 44;
	m->state = JOB_QUEUED;
	m->array = a;
	m->array_index = 20;
	m->spec = a->spec;
	m->spec.priority = 5;
	m->spec.deps = xcalloc(1, sizeof *m->spec.deps);
	m->spec.ndeps = 1;
	m->spec.deps[0].id = 43;
	m->spec.deps[0].state = -1;
	m->uid = a->uid;
	m->gid = a->gid;
	m->attempt = 1;
	m->submitted_at = a->submitted_at;
	m->suspended_for = 0.5;
	text = record_encode(m);
	o = parse(text);
	again = json_dumps(o, JSON_COMPACT);
	assert_string_equal(text, again);
	assert_int_equal(json_object_size(json_object_get(o, "spec")), 2);
	assert_int_equal(json_integer_value(json_object_get(o, "array")), 42);
	back = record_decode(44, "queued", text, &version, &array, &cause);
	if (back == NULL)
		fail_msg("member refused: %s", cause);
	assert_int_equal(version, RECORD_VERSION);
	assert_int_equal(array, 42);
	assert_int_equal(back->spec.priority, 5);
	assert_int_equal(back->spec.ndeps, 1);
	assert_int_equal(back->spec.deps[0].id, 43);
	assert_true(back->suspended_for == 0.5);
	job_free(back);
	json_decref(o);
	free(again);
	free(text);
	job_free(m);
	job_array_free(a);
	job_free(j);
}

/*
 * A module type's job (doc/modules.md): its type by name, with the same
 * extra part as a handler's; a built-in type's has none; a name no loaded
 * module has is a handler's (its job then fails like one whose handler is
 * gone).
 */
static void
test_module_job(void **state)
{
	struct job *j = full_job(), *back;
	char *text, *cause = NULL, *path;
	struct config cfg;
	json_t *o, *v4;
	uint64_t array;
	int version;

	(void)state;
	config_defaults(&cfg);
	cfg.modules = xcalloc(1, sizeof *cfg.modules);
	path = xprintf("%s/testmod.so", getenv("TASKD_TEST_MODULES"));
	cfg.modules[0].path = path;
	cfg.modules[0].file = xstrdup("t.conf");
	cfg.nmodules = 1;
	assert_int_equal(module_load_all(&cfg, &cause), 0);
	config_free(&cfg);

	j->spec.type = module_find("tm-cpu");
	j->spec.input_bytes = 2; /* version 5: in its input file */
	j->res.result = xstrdup("[1,2]");
	j->res.result_json = true;
	as_jansson(j); /* written as the jansson tree was */
	text = round_trip(j);
	o = json_loads(text, 0, NULL);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "spec"), "type")),
			    "tm-cpu");
	assert_non_null(json_object_get(o, "handler"));
	assert_null(json_object_get(json_object_get(o, "handler"), "input"));
	back = record_decode(j->id, "done", text, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(back->spec.type, module_find("tm-cpu"));
	assert_null(back->spec.handler);
	assert_null(back->spec.input);
	assert_int_equal(back->spec.input_bytes, 2);
	assert_true(back->res.result_json);
	job_free(back);
	free(text);

	/* Version 4 held the input (base64) there: it comes back decoded, for its file. */
	text = json_dumps(o, JSON_COMPACT);
	v4 = older(text, 4);
	free(text);
	json_object_set_new(json_object_get(v4, "handler"), "input", json_string("aGk="));
	text = json_dumps(v4, JSON_COMPACT);
	back = record_decode(j->id, "done", text, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(version, 4);
	assert_int_equal(back->spec.type, module_find("tm-cpu"));
	assert_int_equal(back->spec.input_bytes, 2);
	assert_memory_equal(back->spec.input, "hi", 2);
	job_free(back);
	free(text);
	json_decref(v4);

	/* Its module gone: the name is taken for a handler's. */
	json_object_set_new(json_object_get(o, "spec"), "type", json_string("gone-type"));
	text = json_dumps(o, JSON_COMPACT);
	back = record_decode(j->id, "queued", text, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(back->spec.type, JOBTYPE_HANDLER);
	assert_string_equal(back->spec.handler, "gone-type");
	job_free(back);
	free(text);
	json_decref(o);

	/* A built-in type: no extra part. */
	j->spec.type = BUILTIN_SUMSQ;
	j->res.result_json = false;
	text = round_trip(j);
	o = json_loads(text, 0, NULL);
	assert_null(json_object_get(o, "handler"));
	json_decref(o);
	free(text);
	job_free(j);
}

/* Every field of a current record comes back as it was. */
static void
test_round_trip(void **state)
{
	struct job *j = full_job(), *back;
	char *text, *cause = NULL;
	int version, st;
	uint64_t array;

	(void)state;
	text = round_trip(j);
	back = record_decode(j->id, "scheduled", text, &version, &array, &cause);
	assert_non_null(back);
	assert_string_equal(back->spec.env[0], "PATH=/bin");
	assert_string_equal(back->spec.cwd, "/srv/build");
	assert_true(back->spec.run_at == 1800000000.25);
	assert_true(back->spec.retry_delay == 0.5);
	assert_int_equal(back->spec.deps[1].state, -1);
	assert_true(back->spec.deps[1].any);
	assert_int_equal(back->res.status, RUN_LOST);
	assert_int_equal(back->res.max_rss_kb, 123456);
	assert_true(back->res.runq_wait == 0.0625);
	assert_int_equal(back->res.out_bytes, 1ull << 40);
	assert_true(back->res.out_truncated);
	assert_false(back->res.err_truncated);
	assert_true(json_equal(back->attempts, j->attempts));
	assert_int_equal(version, RECORD_VERSION);
	assert_int_equal(back->route.by, ROUTE_KEY);
	assert_int_equal(back->route.level, 1);
	assert_string_equal(back->route.key, "make all");
	assert_int_equal(back->route.samples, 12);
	assert_true(back->route.ratio == 0.875);
	assert_string_equal(back->cgroup, "/sys/fs/cgroup/taskd-1a2b/job-42");
	assert_true(back->reclassified_at == 1700000001.75);
	assert_int_equal(back->spec.limits.memory, 512ull << 20);
	assert_true(back->spec.limits.cpus == 1.5);
	assert_int_equal(back->spec.limits.pids, 64);
	assert_int_equal(back->res.mem_peak_kb, 65536);
	assert_true(back->res.in_cgroup);
	assert_string_equal(back->res.cgroup_error, "pids.max: Permission denied");
	assert_string_equal(back->spec.notify, "notify-send done");
	assert_string_equal(back->spec.unique, "nightly-build");
	assert_string_equal(back->spec.queue, "gpu");
	assert_int_equal(back->spec.slots, 2);
	assert_int_equal(back->spec.input_bytes, 5);
	assert_int_equal(back->restarted_from, 7);
	assert_true(back->suspended_for == 2.5);
	job_free(back);
	free(text);
	/* Every run outcome and state has its name. */
	for (st = RUN_EXITED; st <= RUN_LOST; st++) {
		j->res.status = (enum run_status)st;
		free(round_trip(j));
	}
	for (st = 0; st < JOB_NSTATES; st++) {
		j->spec.deps[0].state = st;
		j->state = (enum job_state)st;
		free(round_trip(j));
	}
	/* A built-in with no argv, no env, no cwd, no name. */
	strv_free(j->spec.env);
	j->spec.env = NULL;
	free(j->spec.cwd);
	j->spec.cwd = NULL;
	free(j->spec.name);
	j->spec.name = NULL;
	strv_free(j->spec.argv);
	j->spec.argv = xcalloc(1, sizeof(char *));
	j->spec.type = BUILTIN_NOOP;
	j->pool = POOL_NONE;
	json_decref(j->attempts);
	j->attempts = NULL;
	free(j->cgroup);
	j->cgroup = NULL;
	free(j->res.cgroup_error);
	j->res.cgroup_error = NULL;
	memset(&j->spec.limits, 0, sizeof j->spec.limits);
	j->route.by = ROUTE_DEFAULT;
	j->route.level = -1;
	j->route.key[0] = '\0';
	free(round_trip(j));
	job_free(j);
}

/* Version 2 and 3 records (before the route and cgroup fields): read, written back as current. */
static void
test_v2_v3_rows(void **state)
{
	struct job *j = full_job(), *back;
	char *v4 = record_encode(j), *v2, *again;
	json_t *o;
	int v;

	(void)state;
	for (v = 2; v <= 3; v++) {
		v2 = as_old(v4, v);
		back = decode(42, "scheduled", v2, v);
		if (v == 3)
			assert_string_equal(back->spec.notify, "notify-send done");
		else
			assert_null(back->spec.notify);
		assert_int_equal(back->route.by, ROUTE_CLASS); /* --class cpu */
		assert_int_equal(back->route.decided, CLASS_CPU);
		assert_int_equal(back->route.level, -1);
		assert_string_equal(back->route.key, "nightly");
		assert_null(back->cgroup);
		assert_true(back->reclassified_at == 0);
		assert_int_equal(back->spec.limits.memory, 0);
		assert_int_equal(back->res.mem_peak_kb, -1);
		assert_false(back->res.in_cgroup);
		assert_null(back->res.cgroup_error);
		assert_int_equal(back->res.max_rss_kb, 123456);
		again = round_trip(back);
		o = parse(again);
		assert_int_equal(json_integer_value(json_object_get(o, "v")), RECORD_VERSION);
		assert_string_equal(json_string_value(json_object_get(json_object_get(o, "route"), "by")),
				    "class");
		json_decref(o);
		free(again);
		job_free(back);
		/* Exactly the version's fields: one of version 4 in an older record is refused. */
		refused_with(42, "done", v2, NULL, "cgroup", json_null(), "unreadable record");
		refused_with(42, "done", v2, "result", "in_cgroup", json_false(), "bad result");
		refused_with(42, "done", v2, NULL, "route_key", NULL, "bad fields");
		free(v2);
	}
	free(v4);
	/* A handler's job of version 2: its handler part still read, its input decoded. */
	j->spec.type = JOBTYPE_HANDLER;
	j->spec.handler = xstrdup("thumb");
	j->spec.input_bytes = 2;
	j->pool = POOL_HANDLER;
	v4 = record_encode(j);
	o = older(v4, 2);
	json_object_set_new(json_object_get(o, "handler"), "input", json_string("aGk="));
	v2 = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	back = decode(42, "scheduled", v2, 2);
	assert_int_equal(back->spec.type, JOBTYPE_HANDLER);
	assert_string_equal(back->spec.handler, "thumb");
	assert_int_equal(back->spec.input_bytes, 2);
	assert_memory_equal(back->spec.input, "hi", 2);
	assert_int_equal(back->route.by, ROUTE_CLASS);
	job_free(back);
	free(v2);
	free(v4);
	job_free(j);
}

static void
test_refused(void **state)
{
	struct job *j = full_job();
	char *text = record_encode(j), *cause = NULL, *t;
	int version;
	uint64_t array;

	(void)state;
	/* A newer version is not guessed at: it says so. */
	refused_with(42, "done", text, NULL, "v", json_integer(RECORD_VERSION + 1),
		     "written by a newer taskd");
	refused_with(42, "done", text, NULL, "v", json_integer(1), "bad version");
	refused_with(42, "done", text, NULL, "v", json_string("2"), "bad version");
	/* Exactly the fields of the version. */
	refused_with(42, "done", text, NULL, "extra", json_true(), "unreadable record");
	refused_with(42, "done", text, NULL, "route_key", json_string("make"), "bad fields");
	refused_with(42, "done", text, NULL, "route", NULL, "bad fields");
	refused_with(42, "done", text, NULL, "cgroup", NULL, "bad fields");
	refused_with(42, "done", text, NULL, "reclassified_at", NULL, "bad fields");
	refused_with(42, "done", text, "spec", "limits", NULL, "bad cgroup fields");
	refused_with(42, "done", text, "result", "in_cgroup", NULL, "bad cgroup fields");
	refused_with(42, "done", text, "result", "cgroup_error", NULL, "bad cgroup fields");
	refused_with(42, "done", text, "result", "mem_peak_kb", NULL, "bad cgroup fields");
	/* What version 3 added, in range. */
	refused_with(42, "done", text, NULL, "route",
		     json_pack("{s:s,s:s,s:i,s:s,s:i,s:f}", "by", "magic", "class", "cpu", "level", 0,
			       "key", "k", "samples", 1, "ratio", 0.5), "bad route");
	refused_with(42, "done", text, NULL, "route",
		     json_pack("{s:s,s:s,s:i,s:s,s:i,s:f,s:b}", "by", "key", "class", "cpu",
			       "level", 0, "key", "k", "samples", 1, "ratio", 0.5, "x", 1),
		     "bad route");
	refused_with(42, "done", text, NULL, "route",
		     json_pack("{s:s,s:s,s:i,s:s#,s:i,s:f}", "by", "key", "class", "cpu", "level", 0,
			       "key", "a\0b", (size_t)3, "samples", 1, "ratio", 0.5),
		     "unreadable record");
	refused_with(42, "done", text, NULL, "route",
		     json_pack("{s:s,s:s,s:i,s:s,s:i,s:f}", "by", "key", "class", "cpu", "level", 9,
			       "key", "k", "samples", 1, "ratio", 0.5), "bad route");
	refused_with(42, "done", text, "spec", "limits",
		     json_pack("{s:i,s:f,s:i}", "memory", -1, "cpus", 0.0, "pids", 0),
		     "bad cgroup fields");
	refused_with(42, "done", text, "spec", "limits",
		     json_pack("{s:i,s:f}", "memory", 1, "cpus", 0.0), "bad cgroup fields");
	refused_with(42, "done", text, NULL, "cgroup", json_integer(3), "bad cgroup fields");
	refused_with(42, "done", text, NULL, "reclassified_at", json_real(-1), "bad cgroup fields");
	refused_with(42, "done", text, "result", "mem_peak_kb", json_integer(-2),
		     "bad cgroup fields");
	refused_with(42, "done", text, "result", "in_cgroup", json_integer(1), "bad cgroup fields");
	refused_with(42, "done", text, "result", "cgroup_error", json_integer(1),
		     "bad cgroup fields");
	refused_with(42, "done", text, NULL, "due_at", NULL, "unreadable record");
	refused_with(42, "done", text, "spec", "lables", json_object(), "bad spec");
	refused_with(42, "done", text, "spec", "labels", NULL, "bad spec");
	refused_with(42, "done", text, "result", "rss_kb", json_integer(-1), "bad result");
	refused_with(42, "done", text, "result", "t", json_string("done"), "bad result");
	/* Names, not numbers, and only known ones. */
	refused_with(42, "done", text, "spec", "type", json_integer(0), "bad spec");
	refused_with(42, "done", text, "spec", "type", json_string("fork"), "bad names");
	refused_with(42, "done", text, "spec", "class", json_string("gpu"), "bad names");
	refused_with(42, "done", text, NULL, "routed", json_string("CPU"), "bad names");
	refused_with(42, "done", text, NULL, "pool", json_string("fiber"), "bad names");
	refused_with(42, "done", text, NULL, "pool", json_integer(1), "bad names");
	refused_with(42, "done", text, "result", "status", json_string("crashed"), "bad result");
	refused_with(42, "done", text, "result", "status", json_integer(0), "bad result");
	refused_with(42, "done", text, "spec", "deps",
		     json_pack("[{s:i,s:b,s:s}]", "id", 3, "any", 0, "state", "finished"),
		     "bad dependencies");
	refused_with(42, "done", text, "spec", "deps",
		     json_pack("[{s:i,s:b,s:n}]", "id", 0, "any", 0, "state"), "bad dependencies");
	refused_with(42, "done", text, "spec", "deps",
		     json_pack("[{s:i,s:b,s:n,s:i}]", "id", 3, "any", 0, "state", "x", 1),
		     "bad dependencies");
	/* Values in range. */
	refused_with(42, "done", text, "spec", "priority", json_integer(TASKD_PRIORITY_MAX + 1),
		     "bad field values");
	refused_with(42, "done", text, NULL, "attempt", json_integer(0), "bad field values");
	refused_with(42, "done", text, NULL, "gid", json_integer(-5), "bad field values");
	refused_with(42, "done", text, NULL, "attempts", json_string("x"), "bad field values");
	refused_with(42, "done", text, "result", "exit_code", json_integer(-2), "bad result");
	refused_with(42, "done", text, "result", "cpu_user", json_real(-0.5), "bad result");
	refused_with(42, "done", text, "result", "pid", json_integer(1LL << 40), "bad result");
	refused_with(42, "done", text, "spec", "argv", json_pack("[s#]", "a\0b", 3),
		     "unreadable record");
	refused_with(42, "done", text, "spec", "cwd", json_integer(1), "bad spec");
	/* Not JSON, not an object, a duplicate key. */
	refused(42, "done", "", "unreadable record");
	refused(42, "done", "[1]", "unreadable record");
	refused(42, "done", "{\"v\":2,\"v\":2}", "unreadable record");
	t = with(text, NULL, "uid", NULL);
	assert_null(record_decode(42, "done", t, &version, &array, &cause));
	free(cause);
	free(t);
	free(text);
	job_free(j);
}

/*
 * Version 2 records (taskd before "notify") are read as they were, with no
 * notify command; version 3 has exactly one more spec field, notify.
 */

/* Records of versions 2 (no notify) and 3 (notify, none of version 4's fields) are read. */
static void
test_older_records(void **state)
{
	struct job *j = full_job(), *back;
	char *text = record_encode(j), *v2, *v3, *v4, *cause = NULL;
	int version;
	uint64_t array;

	(void)state;
	v2 = as_old(text, 2);
	back = record_decode(j->id, "scheduled", v2, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(version, 2);
	assert_null(back->spec.notify);
	assert_int_equal(back->spec.slots, 1);
	assert_string_equal(back->spec.cwd, "/srv/build");
	job_free(back);
	v3 = as_old(text, 3);
	back = record_decode(j->id, "scheduled", v3, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(version, 3);
	assert_int_equal(back->spec.input_bytes, 0);
	assert_null(back->spec.queue);
	job_free(back);
	/* Version 4 (route and cgroup fields, none of version 5's): those kept, defaults for these. */
	v4 = as_old(text, 4);
	back = record_decode(j->id, "scheduled", v4, &version, &array, &cause);
	assert_non_null(back);
	assert_int_equal(version, 4);
	assert_int_equal(array, 0);
	assert_string_equal(back->spec.notify, "notify-send done");
	assert_int_equal(back->route.by, ROUTE_KEY);
	assert_string_equal(back->route.key, "make all");
	assert_string_equal(back->cgroup, "/sys/fs/cgroup/taskd-1a2b/job-42");
	assert_int_equal(back->spec.limits.memory, 512ull << 20);
	assert_int_equal(back->spec.limits.pids, 64);
	assert_int_equal(back->res.mem_peak_kb, 65536);
	assert_string_equal(back->res.cgroup_error, "pids.max: Permission denied");
	assert_int_equal(back->spec.slots, 1);
	assert_null(back->spec.unique);
	assert_null(back->spec.queue);
	assert_int_equal(back->spec.input_bytes, 0);
	assert_int_equal(back->restarted_from, 0);
	assert_true(back->suspended_for == 0);
	free(round_trip(back));
	job_free(back);
	/* Version 2 has no notify; versions 3 to 5 must have it (null or a string, no NUL). */
	refused_with(42, "done", v2, "spec", "notify", json_null(), "bad spec");
	refused_with(42, "done", v3, "spec", "notify", NULL, "bad spec");
	refused_with(42, "done", v4, "spec", "notify", NULL, "bad spec");
	refused_with(42, "done", v3, "spec", "notify", json_integer(1), "bad spec");
	refused_with(42, "done", v3, "spec", "notify", json_stringn("a\0b", 3),
		     "unreadable record");
	/* Versions 3 and 4 have none of version 5's fields, version 5 all of them. */
	refused_with(42, "done", v3, "spec", "slots", json_integer(1), "bad spec");
	refused_with(42, "done", v3, NULL, "array", json_null(), "bad fields");
	refused_with(42, "done", v4, "spec", "slots", json_integer(1), "bad spec");
	refused_with(42, "done", v4, "spec", "unique", json_null(), "bad spec");
	refused_with(42, "done", v4, NULL, "array", json_null(), "bad fields");
	refused_with(42, "done", v4, NULL, "restarted_from", json_integer(0), "bad fields");
	/* ... and version 4 has its own: its limits, its route. */
	refused_with(42, "done", v4, "spec", "limits", NULL, "bad cgroup fields");
	refused_with(42, "done", v4, NULL, "route", NULL, "bad fields");
	refused_with(42, "done", text, "spec", "queue", NULL, "bad spec");
	refused_with(42, "done", text, NULL, "suspended_for", NULL, "bad fields");
	refused_with(42, "done", text, "spec", "slots", json_integer(0), "bad spec");
	refused_with(42, "done", text, "spec", "input_bytes", json_integer(-1), "bad spec");
	refused_with(42, "done", text, NULL, "array", json_integer(0), "bad fields");
	free(v2);
	free(v3);
	free(v4);
	free(text);
	job_free(j);
}

/* Decoded jobs go into a table with their own ids and states. */
static void
test_restore(void **state)
{
	struct jobs *js = jobs_new();
	struct job *a, *b, *c, *dup;
	char *cause = NULL;
	int version;
	uint64_t array;

	(void)state;
	a = record_decode(3, "failed", v1_failed_retried, &version, &array, &cause);
	b = record_decode(8, "done", v1_done_deps, &version, &array, &cause);
	c = record_decode(11, "queued", v1_queued, &version, &array, &cause);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(jobs_restore(js, a, &cause), 0);
	assert_int_equal(jobs_restore(js, b, &cause), 0);
	assert_int_equal(jobs_restore(js, c, &cause), 0);
	assert_ptr_equal(jobs_find(js, 8), b);
	assert_int_equal(jobs_count(js, JOB_FAILED), 1);
	assert_int_equal(jobs_count(js, JOB_DONE), 1);
	assert_int_equal(jobs_count(js, JOB_QUEUED), 1);
	assert_int_equal(jobs_pending(js), 1);
	assert_int_equal(jobs_queued_by(js, 0), 1);
	assert_int_equal(jobs_next_id(js), 12);
	assert_true(c->announced && c->admitted);
	/* The same id twice: refused, and the job stays the caller's. */
	dup = record_decode(11, "queued", v1_queued, &version, &array, &cause);
	assert_non_null(dup);
	assert_int_equal(jobs_restore(js, dup, &cause), -1);
	assert_non_null(strstr(cause, "job 11"));
	free(cause);
	job_free(dup);
	assert_int_equal(jobs_total(js), 3);
	jobs_free(js);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_v1_rows),
	    cmocka_unit_test(test_v1_refused),
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_v2_v3_rows),
	    cmocka_unit_test(test_older_records),
	    cmocka_unit_test(test_real_text),
	    cmocka_unit_test(test_utf8),
	    cmocka_unit_test(test_as_jansson),
	    cmocka_unit_test(test_jtext_as_jansson),
	    cmocka_unit_test(test_workflow_as_jansson),
	    cmocka_unit_test(test_handler_job),
	    cmocka_unit_test(test_module_job),
	    cmocka_unit_test(test_refused),
	    cmocka_unit_test(test_restore),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
