/*
 * Unit tests for daemon/modules.c and daemon/modrun.c: the `modules`
 * configuration key, loading modules (a good one, and every way the broken
 * ones of tests/modules/badmod.c are wrong), the table, validate(), and
 * running a module job in this thread (results, errors, output files,
 * cancel, deadline, the submitter's ids).
 *
 * The table is process-wide and only grows: the tests run in order, and
 * a failed load must leave it as it was (checked each time).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base64.h"
#include "builtin.h"
#include "config.h"
#include "exec.h"
#include "jobtype.h"
#include "modules.h"
#include "unit.h"
#include "xmalloc.h"

static char tmpdir[64];

static char *
mod_path(const char *name)
{
	const char *dir = getenv("TASKD_TEST_MODULES");

	assert_non_null(dir);
	return xprintf("%s/%s.so", dir, name);
}

/* A configuration listing these paths (NULL-terminated), at lines 10, 11, ... of "t.conf". */
static void
cfg_modules(struct config *cfg, ...)
{
	const char *p;
	va_list ap;
	size_t n = 0;

	config_defaults(cfg);
	cfg->path = xstrdup("t.conf");
	cfg->modules = xcalloc(16, sizeof *cfg->modules);
	va_start(ap, cfg);
	while ((p = va_arg(ap, const char *)) != NULL) {
		cfg->modules[n].path = xstrdup(p);
		cfg->modules[n].file = xstrdup("t.conf");
		cfg->modules[n].line = 10 + (unsigned)n;
		n++;
	}
	va_end(ap);
	cfg->nmodules = n;
}

/* Loading fails with a cause containing want, and the table is as it was. */
static void
assert_load_fails(const char *name, const char *want)
{
	char *path = mod_path(name), *cause = NULL;
	int before = module_ntypes();
	struct config cfg;

	cfg_modules(&cfg, path, NULL);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL)
		fail_msg("cause '%s' lacks '%s'", cause, want);
	assert_non_null(strstr(cause, "t.conf:10: modules[0] ("));
	assert_int_equal(module_ntypes(), before);
	assert_int_equal(module_find("bad-type"), -1);
	free(cause);
	free(path);
	config_free(&cfg);
}

/* --- the configuration key ------------------------------------------------- */

static char *
write_conf(const char *text)
{
	char *path = xprintf("%s/taskd.conf", tmpdir);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return path;
}

static void
test_config_key(void **state)
{
	struct config cfg;
	char *path, *cause = NULL;

	(void)state;
	path = write_conf("# modules\nmodules = ( \"/opt/x.so\",\n  \"hash\", \"y.so\" );\n");
	assert_int_equal(config_load(path, &cfg, &cause), 0);
	assert_int_equal(cfg.nmodules, 3);
	assert_string_equal(cfg.modules[0].path, "/opt/x.so");
	assert_int_equal(cfg.modules[0].line, 2);
	assert_string_equal(cfg.modules[0].file, path);
	assert_string_equal(cfg.modules[1].path, TASKD_MODULEDIR "/hash.so");
	assert_int_equal(cfg.modules[1].line, 3);
	assert_string_equal(cfg.modules[2].path, TASKD_MODULEDIR "/y.so");
	config_free(&cfg);
	free(path);

	/* An array works too; an empty list is no module. */
	path = write_conf("modules = [ \"/opt/x.so\" ];\n");
	assert_int_equal(config_load(path, &cfg, &cause), 0);
	assert_int_equal(cfg.nmodules, 1);
	config_free(&cfg);
	free(path);
	path = write_conf("modules = ( );\n");
	assert_int_equal(config_load(path, &cfg, &cause), 0);
	assert_int_equal(cfg.nmodules, 0);
	config_free(&cfg);
	free(path);
}

static void
assert_conf_error(const char *text, const char *want)
{
	struct config cfg;
	char *path = write_conf(text), *cause = NULL, *full;

	assert_int_equal(config_load(path, &cfg, &cause), -1);
	full = xprintf("%s:%s", path, want);
	if (strcmp(cause, full) != 0)
		fail_msg("cause '%s', want '%s'", cause, full);
	free(full);
	free(cause);
	free(path);
}

static void
test_config_key_errors(void **state)
{
	(void)state;
	assert_conf_error("modules = \"/x.so\";\n",
			  "1: modules: expected a list of paths ( \"/path/x.so\", ... )");
	assert_conf_error("modules = ( 1 );\n", "1: modules[0]: expected a string (a path)");
	assert_conf_error("modules = (\n \"lib/x.so\" );\n",
			  "2: modules[0]: 'lib/x.so': expected an absolute path, or the name of a "
			  "module in " TASKD_MODULEDIR);
	assert_conf_error("modules = ( \"\" );\n",
			  "1: modules[0]: '': expected an absolute path, or the name of a module in "
			  TASKD_MODULEDIR);
	assert_conf_error("modules = ( \"/x.so\",\n \"/x.so\" );\n",
			  "2: modules[1]: /x.so is listed twice");
	assert_conf_error("modules = ( \"hash\", \"hash.so\" );\n",
			  "1: modules[1]: " TASKD_MODULEDIR "/hash.so is listed twice");
}

static void
test_config_diff(void **state)
{
	struct config a, b;
	int n;

	(void)state;
	cfg_modules(&a, "/a.so", "/b.so", NULL);
	cfg_modules(&b, "/a.so", "/b.so", NULL);
	assert_true(config_same_modules(&a, &b));
	assert_int_equal(config_diff(&a, &b, NULL, NULL), 0);
	config_free(&b);
	cfg_modules(&b, "/b.so", "/a.so", NULL);
	assert_false(config_same_modules(&a, &b));
	n = config_diff(&a, &b, NULL, NULL);
	assert_int_equal(n, 1);
	config_free(&a);
	config_free(&b);
}

/* --- loading ------------------------------------------------------------------ */

static void
test_builtin_module(void **state)
{
	json_t *mods;

	(void)state;
	assert_int_equal(module_ntypes(), BUILTIN_COUNT);
	assert_string_equal(module_of(BUILTIN_NOOP), "builtin");
	mods = module_to_json();
	assert_int_equal(json_array_size(mods), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(mods, 0), "module")),
			    "builtin");
	assert_true(json_is_null(json_object_get(json_array_get(mods, 0), "path")));
	assert_int_equal(json_array_size(json_object_get(json_array_get(mods, 0), "types")), 5);
	json_decref(mods);
}

static void
test_bad_files(void **state)
{
	struct config cfg;
	char *cause = NULL, *text = xprintf("%s/not-elf.so", tmpdir);
	FILE *f;

	(void)state;
	cfg_modules(&cfg, "/nonexistent/x.so", NULL);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_string_equal(cause, "t.conf:10: modules[0] (/nonexistent/x.so): cannot open: No "
			    "such file or directory");
	free(cause);
	config_free(&cfg);

	cfg_modules(&cfg, tmpdir, NULL);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_non_null(strstr(cause, "not a regular file"));
	free(cause);
	config_free(&cfg);

	/* dlopen's own message (dlerror) */
	f = fopen(text, "w");
	assert_non_null(f);
	fputs("not a shared object\n", f);
	fclose(f);
	chmod(text, 0644);
	cfg_modules(&cfg, text, NULL);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_non_null(strstr(cause, "cannot load: "));
	assert_non_null(strstr(cause, "not-elf.so") != NULL ? cause : NULL);
	free(cause);
	config_free(&cfg);
	free(text);
	assert_int_equal(module_ntypes(), BUILTIN_COUNT);
}

static void
test_bad_modules(void **state)
{
	(void)state;
	assert_load_fails("bad-abi", "module ABI version 99; this taskd loads version 1");
	assert_load_fails("bad-no-symbol", "no symbol taskd_module_v1: not a taskd module");
	assert_load_fails("bad-v2", "a module for ABI version 2 (it has taskd_module_v2, not "
				    "taskd_module_v1); this taskd loads version 1");
	assert_load_fails("bad-dup-builtin", "type sleep: also a type of module builtin (built in)");
	assert_load_fails("bad-init-fail", "init failed: no licence for this host");
	assert_load_fails("bad-class", "type bad-type: class 7 is none of");
	assert_load_fails("bad-no-run", "type bad-type: no run function");
	assert_load_fails("bad-type-size", "types[0]: struct taskd_type of 8 bytes, less than "
					   "version 1's");
	assert_load_fails("bad-name", "types[0]: a name may hold only letters");
	assert_load_fails("bad-exec", "type exec: the name of commands");
	assert_load_fails("bad-twins", "type bad-type: also a type of module badmod");
}

/* A root taskd refuses a module file others could write, or not root's. */
static void
test_file_rights(void **state)
{
	char *src = mod_path("testmod"), *copy = xprintf("%s/copy.so", tmpdir), *cause = NULL;
	struct passwd *nobody = getpwnam("nobody");
	char buf[65536];
	struct config cfg;
	ssize_t n;
	int in, out;

	(void)state;
	if (geteuid() != 0)
		skip();
	in = open(src, O_RDONLY);
	out = open(copy, O_WRONLY | O_CREAT | O_TRUNC, 0755);
	assert_true(in >= 0 && out >= 0);
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	close(in);
	close(out);
	cfg_modules(&cfg, copy, NULL);
	assert_int_equal(chmod(copy, 0775), 0);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_non_null(strstr(cause, "writable by its group or others (mode 0775)"));
	free(cause);
	assert_int_equal(chmod(copy, 0755), 0);
	assert_non_null(nobody);
	assert_int_equal(chown(copy, nobody->pw_uid, 0), 0);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_non_null(strstr(cause, "owned by uid"));
	free(cause);
	assert_int_equal(module_ntypes(), BUILTIN_COUNT);
	config_free(&cfg);
	unlink(copy);
	free(copy);
	free(src);
}

/* All or nothing: a good module before a bad one is not kept. */
static void
test_all_or_nothing(void **state)
{
	char *good = mod_path("testmod"), *bad = mod_path("bad-abi"), *cause = NULL;
	struct config cfg;

	(void)state;
	cfg_modules(&cfg, good, bad, NULL);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_non_null(strstr(cause, "t.conf:11: modules[1] ("));
	assert_int_equal(module_ntypes(), BUILTIN_COUNT);
	assert_int_equal(module_find("tm-io"), -1);
	free(cause);
	config_free(&cfg);
	free(good);
	free(bad);
}

static void
test_good_module(void **state)
{
	char *good = mod_path("testmod"), *dup = mod_path("bad-dup-testmod"), *cause = NULL;
	const struct modtype *t;
	struct config cfg, other;
	struct jobtype jt;
	json_t *mods, *m;
	char *known;
	const int *fds;
	const char *const *paths;

	(void)state;
	cfg_modules(&cfg, good, NULL);
	assert_int_equal(module_load_all(&cfg, &cause), 0);
	assert_int_equal(module_ntypes(), BUILTIN_COUNT + 3);
	assert_int_equal(module_find("tm-io"), BUILTIN_COUNT + 1);
	t = module_type(module_find("tm-cpu"));
	assert_non_null(t);
	assert_int_equal(t->class, CLASS_CPU);
	assert_int_equal(module_type(module_find("tm-io"))->class, CLASS_IO);
	assert_true(module_type(module_find("tm-pure"))->flags & TASKD_TYPE_PURE);
	assert_string_equal(module_of(module_find("tm-io")), "testmod");
	assert_false(module_builtin(module_find("tm-io")));
	assert_true(jobtype_has_output(module_find("tm-io")));
	assert_false(jobtype_has_output(module_find("tm-pure")));
	assert_int_equal(jobtype_find("tm-cpu", &jt), 0);
	assert_int_equal(jt.source, JOBTYPE_MODULE);
	known = jobtype_known();
	assert_string_equal(known, "exec, noop, sleep, spin, sumsq, count, tm-io, tm-cpu, tm-pure");
	free(known);
	assert_true(module_same(&cfg));
	cfg_modules(&other, NULL);
	assert_false(module_same(&other));
	config_free(&other);
	/* The file stays open for workers, at a high fd. */
	assert_int_equal(module_worker_fds(&fds, &paths), 1);
	assert_true(fds[0] >= 100);
	assert_string_equal(paths[0], good);
	assert_true(fcntl(fds[0], F_GETFD) & FD_CLOEXEC);

	mods = module_to_json();
	assert_int_equal(json_array_size(mods), 2);
	m = json_array_get(mods, 1);
	assert_string_equal(json_string_value(json_object_get(m, "module")), "testmod");
	assert_string_equal(json_string_value(json_object_get(m, "version")), "0.1");
	assert_string_equal(json_string_value(json_object_get(m, "path")), good);
	assert_string_equal(json_string_value(json_object_get(
				json_array_get(json_object_get(m, "types"), 1), "class")), "cpu");
	json_decref(mods);

	/* A second module with a type of the same name */
	config_free(&cfg);
	cfg_modules(&cfg, dup, NULL);
	assert_int_equal(module_load_all(&cfg, &cause), -1);
	assert_non_null(strstr(cause, "type tm-io: also a type of module testmod ("));
	assert_non_null(strstr(cause, good));
	assert_int_equal(module_ntypes(), BUILTIN_COUNT + 3);
	free(cause);
	config_free(&cfg);
	free(good);
	free(dup);
}

static void
test_handler_names(void **state)
{
	struct handler_config h[2];
	struct config cfg;
	char *cause = NULL;

	(void)state;
	config_defaults(&cfg);
	cfg.path = "t.conf";
	memset(h, 0, sizeof h);
	h[0].name = "thumb";
	h[0].line = 3;
	h[1].name = "tm-cpu";
	h[1].line = 7;
	cfg.handlers = h;
	cfg.nhandlers = 2;
	assert_int_equal(module_check_handlers(&cfg, &cause), -1);
	assert_non_null(strstr(cause, "t.conf:7: handlers[1] (tm-cpu).name: is a job type of "
				      "module testmod ("));
	free(cause);
	h[1].name = "sumsq";
	assert_int_equal(module_check_handlers(&cfg, &cause), -1);
	assert_string_equal(cause, "t.conf:7: handlers[1] (sumsq).name: is a built-in job type");
	free(cause);
	cfg.nhandlers = 1;
	assert_int_equal(module_check_handlers(&cfg, &cause), 0);
}

static void
test_validate(void **state)
{
	char *argv[] = {"nope", NULL}, *good[] = {"echo", "hi", NULL}, *error = NULL;
	int io = module_find("tm-io");

	(void)state;
	assert_int_equal(module_validate(io, good, NULL, 0, &error), 0);
	assert_null(error);
	assert_int_equal(module_validate(io, argv, NULL, 0, &error), -1);
	assert_string_equal(error, "tm-io: no such command 'nope'");
	free(error);
	assert_int_equal(module_validate(io, good, (const unsigned char *)"please refuse", 13,
					 &error), -1);
	assert_string_equal(error, "tm-io: refused by its input");
	free(error);
	assert_int_equal(module_validate(io, (char *[]){NULL}, NULL, 0, &error), -1);
	assert_string_equal(error, "tm-io: expected a command");
	free(error);
}

/* --- running ----------------------------------------------------------------- */

static struct run *
mkrun(const char *type, ...)
{
	struct run *r = run_new(true);
	const char *argv[16], *a;
	va_list ap;
	int n = 0;

	va_start(ap, type);
	while (n < 15 && (a = va_arg(ap, const char *)) != NULL)
		argv[n++] = a;
	va_end(ap);
	argv[n] = NULL;
	r->spec.type = module_find(type);
	assert_true(r->spec.type > 0);
	r->spec.argv = strv_dup((char *const *)argv);
	r->spec.timeout = 15; /* safety net */
	r->spec.cwd = xstrdup(tmpdir);
	r->spec.out_path = xprintf("%s/out", tmpdir);
	r->spec.err_path = xprintf("%s/err", tmpdir);
	return r;
}

static void
test_run_results(void **state)
{
	struct run *r;

	(void)state;
	r = mkrun("tm-io", "echo", "hello", "world", NULL);
	module_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 0);
	assert_string_equal(r->res.result, "hello world");
	assert_false(r->res.result_json);
	assert_null(r->res.error);
	assert_true(r->res.wall >= 0 && r->res.started_at > 0);
	run_free(r);

	/* JSON is checked and made compact */
	r = mkrun("tm-io", "json", "{ \"a\" : [1, 2] }", NULL);
	module_run(r);
	assert_int_equal(r->res.exit_code, 0);
	assert_string_equal(r->res.result, "{\"a\":[1,2]}");
	assert_true(r->res.result_json);
	run_free(r);

	r = mkrun("tm-io", "badjson", NULL);
	module_run(r);
	assert_int_equal(r->res.status, RUN_EXITED);
	assert_int_equal(r->res.exit_code, 1);
	assert_null(r->res.result);
	assert_non_null(strstr(r->res.error, "the result is not JSON"));
	run_free(r);

	r = mkrun("tm-io", "fail", "no such image", NULL);
	module_run(r);
	assert_int_equal(r->res.exit_code, 1);
	assert_string_equal(r->res.error, "no such image");
	run_free(r);

	r = mkrun("tm-io", "badstatus", NULL);
	module_run(r);
	assert_int_equal(r->res.status, RUN_FAILED);
	assert_string_equal(r->res.error, "tm-io: run() returned 7, not a taskd_status");
	run_free(r);

	/* limits.max_frame: a larger result fails the job */
	r = mkrun("tm-io", "big", "2000", NULL);
	r->spec.max_result = 1000;
	module_run(r);
	assert_int_equal(r->res.exit_code, 1);
	assert_string_equal(r->res.error, "result too large: 2000 bytes, limits.max_frame is 1000");
	assert_null(r->res.result);
	run_free(r);

	/* the input, from base64 */
	r = mkrun("tm-io", "input", NULL);
	r->spec.input = base64_encode("some bytes", 10);
	module_run(r);
	assert_string_equal(r->res.result, "{\"len\":10,\"text\":\"some bytes\"}");
	run_free(r);

	/* a type this process has not loaded */
	r = mkrun("tm-io", "echo", NULL);
	r->spec.type = 999;
	module_run(r);
	assert_int_equal(r->res.status, RUN_FAILED);
	assert_string_equal(r->res.error, "job type 999 is not loaded here");
	run_free(r);
}

static char *
slurp(const char *path)
{
	char buf[4096];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return NULL;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	return xstrdup(buf);
}

static void
test_run_output(void **state)
{
	char *out = xprintf("%s/out", tmpdir), *err = xprintf("%s/err", tmpdir), *s;
	struct run *r;

	(void)state;
	unlink(out);
	unlink(err);
	/* No write: no files */
	r = mkrun("tm-io", "echo", NULL);
	module_run(r);
	assert_int_equal(access(out, F_OK), -1);
	assert_int_equal(r->res.out_bytes, 0);
	run_free(r);

	r = mkrun("tm-io", "write", "to stdout\n", "to stderr, longer\n", NULL);
	r->spec.max_output = 12;
	module_run(r);
	assert_int_equal(r->res.exit_code, 0);
	assert_int_equal(r->res.out_bytes, 10);
	assert_false(r->res.out_truncated);
	assert_int_equal(r->res.err_bytes, 18);
	assert_true(r->res.err_truncated);
	s = slurp(out);
	assert_string_equal(s, "to stdout\n");
	free(s);
	s = slurp(err);
	assert_string_equal(s, "to stderr, l");
	free(s);
	run_free(r);

	/* A pure type has no output files: taskd_write fails */
	unlink(out);
	r = mkrun("tm-pure", "write", "x", "y", NULL);
	module_run(r);
	assert_int_equal(r->res.exit_code, 1);
	assert_non_null(strstr(r->res.error, "write: "));
	assert_int_equal(access(out, F_OK), -1);
	run_free(r);
	free(out);
	free(err);
}

struct canceller {
	pthread_t thread;
	struct run *r;
};

static void *
cancel_main(void *arg)
{
	struct timespec ts = {0, 200 * 1000 * 1000};

	nanosleep(&ts, NULL);
	run_cancel(((struct canceller *)arg)->r);
	return NULL;
}

static void
test_run_stop(void **state)
{
	struct canceller c;
	struct run *r;

	(void)state;
	r = mkrun("tm-io", "wait", "0.05", NULL);
	module_run(r);
	assert_string_equal(r->res.result, "waited");
	run_free(r);

	r = mkrun("tm-io", "wait", "30", NULL);
	r->spec.timeout = 0.2;
	module_run(r);
	assert_int_equal(r->res.status, RUN_TIMEOUT);
	assert_true(r->res.wall >= 0.2 && r->res.wall < 5);
	run_free(r);

	r = mkrun("tm-io", "progress", "half way", NULL);
	c.r = r;
	assert_int_equal(pthread_create(&c.thread, NULL, cancel_main, &c), 0);
	module_run(r);
	pthread_join(c.thread, NULL);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_true(r->res.wall < 5);
	{
		char *p = run_progress(r);

		assert_string_equal(p, "half way");
		free(p);
	}
	run_free(r);

	/* cancelled before it started: run() is not called */
	r = mkrun("tm-io", "echo", "x", NULL);
	run_cancel(r);
	module_run(r);
	assert_int_equal(r->res.status, RUN_CANCELLED);
	assert_null(r->res.result);
	run_free(r);
}

/* The submitter's ids for the module code, in this thread only, and ours again afterwards. */
static void
test_run_as_user(void **state)
{
	struct passwd *nobody = getpwnam("nobody");
	char *secret = xprintf("%s/secret", tmpdir), *want;
	struct run *r;
	FILE *f;

	(void)state;
	if (geteuid() != 0)
		skip();
	assert_non_null(nobody);
	f = fopen(secret, "w");
	assert_non_null(f);
	fputs("root only\n", f);
	fclose(f);
	assert_int_equal(chmod(secret, 0600), 0);
	assert_int_equal(chmod(tmpdir, 0755), 0);

	r = mkrun("tm-io", "ids", NULL);
	r->spec.as_user = true;
	r->spec.uid = nobody->pw_uid;
	r->spec.gid = nobody->pw_gid;
	module_run(r);
	assert_int_equal(r->res.exit_code, 0);
	want = xprintf("{\"euid\":%u,\"egid\":%u,\"uid\":%u,\"gid\":%u,", (unsigned)nobody->pw_uid,
		       (unsigned)nobody->pw_gid, (unsigned)nobody->pw_uid,
		       (unsigned)nobody->pw_gid);
	assert_non_null(r->res.result);
	if (strncmp(r->res.result, want, strlen(want)) != 0)
		fail_msg("ids %s, want %s...", r->res.result, want);
	free(want);
	run_free(r);
	assert_int_equal(geteuid(), 0);
	assert_int_equal(getegid(), 0);

	/* nobody cannot read root's file through the module; root can */
	r = mkrun("tm-io", "read", "secret", NULL);
	r->spec.as_user = true;
	r->spec.uid = nobody->pw_uid;
	r->spec.gid = nobody->pw_gid;
	module_run(r);
	assert_int_equal(r->res.exit_code, 1);
	assert_string_equal(r->res.error, "secret: Permission denied");
	run_free(r);
	r = mkrun("tm-io", "read", "secret", NULL);
	module_run(r);
	assert_string_equal(r->res.result, "{\"bytes\":10}");
	run_free(r);

	/* output files are made by taskd and given to the submitter */
	r = mkrun("tm-io", "write", "mine", "", NULL);
	r->spec.as_user = true;
	r->spec.uid = nobody->pw_uid;
	r->spec.gid = nobody->pw_gid;
	module_run(r);
	assert_int_equal(r->res.exit_code, 0);
	{
		struct stat st;
		char *out = xprintf("%s/out", tmpdir);

		assert_int_equal(stat(out, &st), 0);
		assert_int_equal(st.st_uid, nobody->pw_uid);
		assert_int_equal(st.st_mode & 0777, 0600);
		free(out);
	}
	run_free(r);
	assert_int_equal(geteuid(), 0);

	/* a pure type keeps taskd's ids */
	r = mkrun("tm-pure", "ids", NULL);
	r->spec.as_user = true;
	r->spec.uid = nobody->pw_uid;
	r->spec.gid = nobody->pw_gid;
	module_run(r);
	assert_non_null(strstr(r->res.result, "\"euid\":0,"));
	run_free(r);
	free(secret);
}

/* The shipped hash module, loaded like any module. */
static void
test_hash_module(void **state)
{
	const char *path = getenv("TASKD_HASH_MODULE");
	char *cause = NULL, *file = xprintf("%s/abc", tmpdir);
	struct config cfg;
	struct run *r;
	FILE *f;

	(void)state;
	assert_non_null(path);
	cfg_modules(&cfg, path, NULL);
	assert_int_equal(module_load_all(&cfg, &cause), 0);
	config_free(&cfg);
	f = fopen(file, "w");
	assert_non_null(f);
	fputs("abc", f);
	fclose(f);
	r = mkrun("hash", "abc", NULL);
	module_run(r);
	assert_int_equal(r->res.exit_code, 0);
	assert_string_equal(r->res.result,
			    "{\"algorithm\":\"sha256\",\"files\":[{\"path\":\"abc\",\"size\":3,"
			    "\"digest\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\"}]}");
	run_free(r);
	r = mkrun("hash", "-a", "md5", NULL);
	r->spec.input = base64_encode("abc", 3);
	module_run(r);
	assert_string_equal(r->res.result, "{\"algorithm\":\"md5\",\"size\":3,\"digest\":"
					   "\"900150983cd24fb0d6963f7d28e17f72\"}");
	run_free(r);
	free(file);
}

static int
setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof tmpdir, "/tmp/taskd-test-modules-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	unit_rmtree(tmpdir);
	return 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_key),
	    cmocka_unit_test(test_config_key_errors),
	    cmocka_unit_test(test_config_diff),
	    cmocka_unit_test(test_builtin_module),
	    cmocka_unit_test(test_bad_files),
	    cmocka_unit_test(test_bad_modules),
	    cmocka_unit_test(test_file_rights),
	    cmocka_unit_test(test_all_or_nothing),
	    cmocka_unit_test(test_good_module),
	    cmocka_unit_test(test_handler_names),
	    cmocka_unit_test(test_validate),
	    cmocka_unit_test(test_run_results),
	    cmocka_unit_test(test_run_output),
	    cmocka_unit_test(test_run_stop),
	    cmocka_unit_test(test_run_as_user),
	    cmocka_unit_test(test_hash_module),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
