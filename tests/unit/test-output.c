/*
 * Unit tests for daemon/output.c: the names of a job's output files, their
 * removal, and the startup sweep of files of jobs the store no longer
 * knows (in a temporary directory).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtin.h"
#include "job.h"
#include "output.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

static char *
tmpdir(void)
{
	char *d = xstrdup("/tmp/taskd-test-output-XXXXXX");

	if (mkdtemp(d) == NULL)
		fail_msg("mkdtemp: %m");
	return d;
}

static void
touch(const char *dir, const char *name)
{
	char *p = xprintf("%s/%s", dir, name);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd == -1)
		fail_msg("create %s: %m", p);
	close(fd);
	free(p);
}

static bool
exists(const char *dir, const char *name)
{
	char *p = xprintf("%s/%s", dir, name);
	bool there = access(p, F_OK) == 0;

	free(p);
	return there;
}

static void
rmdir_all(char *dir, const char *const *names, size_t n)
{
	char *p;
	size_t i;

	for (i = 0; i < n; i++) {
		p = xprintf("%s/%s", dir, names[i]);
		unlink(p);
		free(p);
	}
	assert_int_equal(rmdir(dir), 0);
	free(dir);
}

static void
test_names(void **state)
{
	char *p;

	(void)state;
	p = output_dir("/var/lib/taskd");
	assert_string_equal(p, "/var/lib/taskd/jobs");
	free(p);
	p = output_path("/s/jobs", 17, OUTPUT_STDOUT);
	assert_string_equal(p, "/s/jobs/17.out");
	free(p);
	p = output_path("/s/jobs", 18446744073709551615ull, OUTPUT_STDERR);
	assert_string_equal(p, "/s/jobs/18446744073709551615.err");
	free(p);
}

static void
test_remove(void **state)
{
	static const char *const names[] = { "7.out", "7.err", "8.out" };
	char *dir = tmpdir();

	(void)state;
	touch(dir, "7.out");
	touch(dir, "7.err");
	touch(dir, "8.out");
	output_remove(dir, 7);
	assert_false(exists(dir, "7.out"));
	assert_false(exists(dir, "7.err"));
	assert_true(exists(dir, "8.out"));
	/* Files that are not there: nothing to do, nothing said. */
	output_remove(dir, 7);
	output_remove(dir, 9);
	rmdir_all(dir, names, nitems(names));
}

static struct job *
add(struct jobs *js)
{
	struct job_spec spec;

	memset(&spec, 0, sizeof spec);
	spec.type = BUILTIN_EXEC;
	spec.argv = xcalloc(2, sizeof(char *));
	spec.argv[0] = xstrdup("true");
	spec.cwd = xstrdup("/");
	return jobs_add(js, &spec, 1000, 1000, 1700000000.0);
}

static void
test_clean(void **state)
{
	static const char *const names[] = {
		"1.out", "1.err", "2.err", "3.out", "abc.err", "12x.out", ".out",
		"x.txt", "1.outx", "1.log", "out", "1.Out",
	};
	static const char *const kept[] = {
		"1.out", "1.err", "2.err", ".out", "x.txt", "1.outx", "1.log", "out", "1.Out",
	};
	struct jobs *js = jobs_new();
	char *dir = tmpdir();
	size_t i;

	(void)state;
	add(js); /* 1 */
	add(js); /* 2 */
	for (i = 0; i < nitems(names); i++)
		touch(dir, names[i]);
	output_clean(dir, js);
	for (i = 0; i < nitems(kept); i++)
		if (!exists(dir, kept[i]))
			fail_msg("%s was removed", kept[i]);
	/* A job the table does not hold, and output-like names of no job. */
	assert_false(exists(dir, "3.out"));
	assert_false(exists(dir, "abc.err"));
	assert_false(exists(dir, "12x.out"));
	rmdir_all(dir, names, nitems(names));
	jobs_free(js);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_remove),
	    cmocka_unit_test(test_clean),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
