#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kindkey.h"

/*
 * Real command lines → keys, finest first. Each row: the command line as
 * argv (NULL-terminated), the cwd, then the expected keys.
 */
struct row {
	const char *argv[16];
	const char *cwd;
	const char *keys[KIND_MAX_KEYS + 1];
};

static const struct row rows[] = {
	/* plain programs */
	{ { "gzip", "-9", "big.log", NULL }, NULL, { "gzip", NULL } },
	{ { "/usr/bin/xz", "-T1", "-9", "data.tar", NULL }, "/tmp", { "xz", NULL } },
	{ { "../tools/xz", "-9", NULL }, "/home/ann/proj", { "tools/xz", "xz", NULL } },
	{ { "sleep", "0.4", NULL }, NULL, { "sleep", NULL } },
	{ { "sort", "-o", "/tmp/out", "/tmp/big.txt", NULL }, NULL, { "sort", NULL } },
	{ { "sha256sum", "/var/tmp/blob", NULL }, NULL, { "sha256sum", NULL } },
	{ { "cc", "-O2", "-c", "x.c", "-o", "x.o", NULL }, NULL, { "cc", NULL } },
	{ { "dd", "if=/dev/zero", "of=f", "bs=4k", "count=100", "oflag=dsync", NULL }, NULL,
	  { "dd", NULL } },
	{ { "curl", "-s", "http://127.0.0.1:8080/slow", NULL }, NULL, { "curl", NULL } },
	{ { "git", "fetch", "--all", NULL }, NULL, { "git fetch", "git", NULL } },
	{ { "git", "gc", "--aggressive", NULL }, NULL, { "git gc", "git", NULL } },
	{ { "make", "-j2", "all", NULL }, NULL, { "make all", "make", NULL } },
	{ { "./run.sh", "--fast", NULL }, "/home/ann/proj", { "proj/run.sh", "run.sh", NULL } },
	/* shells with -c: one simple command is seen through */
	{ { "sh", "-c", "sleep 0.4", NULL }, NULL, { "sleep", "sh", NULL } },
	{ { "sh", "-c", "exec gzip -9 < in > out.gz", NULL }, NULL, { "gzip", "sh", NULL } },
	{ { "bash", "-c", "python3 train.py --epochs 3", NULL }, "/srv/ml",
	  { "python3 ml/train.py", "python3 train.py", "python3", "bash", NULL } },
	{ { "bash", "-lc", "FOO=1 nice -n 5 xz -9 big 2>/dev/null", NULL }, NULL,
	  { "xz", "bash", NULL } },
	{ { "/bin/sh", "-e", "-c", "'sha1sum' \"big file\"", NULL }, NULL,
	  { "sha1sum", "sh", NULL } },
	/* shells with -c: command words of a script */
	{ { "sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i + 1)); done", NULL }, NULL,
	  { "sh -c while [", "sh", NULL } },
	{ { "sh", "-c", "while :; do :; done", NULL }, NULL, { "sh -c while :", "sh", NULL } },
	{ { "sh", "-c", "for f in *.wav; do flac \"$f\"; done", NULL }, NULL,
	  { "sh -c for flac", "sh", NULL } },
	{ { "sh", "-c", "sleep 1; echo done", NULL }, NULL, { "sh -c sleep echo", "sh", NULL } },
	{ { "sh", "-c", "cd /src && make -j2 && ./test.sh", NULL }, NULL,
	  { "sh -c cd make test.sh", "sh", NULL } },
	{ { "sh", "-c", "cat a b | sort | uniq -c > counts", NULL }, NULL,
	  { "sh -c cat sort uniq", "sh", NULL } },
	{ { "sh", "-c", "case $1 in a|b) gzip x;; *) sleep 1;; esac; sync", NULL }, NULL,
	  { "sh -c case gzip sleep sync", "sh", NULL } },
	{ { "bash", "-c", "if [[ -f x ]]; then python3 a.py; else python3 b.py; fi", NULL }, NULL,
	  { "bash -c if [[ python3 a.py python3 b.py", "bash", NULL } },
	{ { "sh", "-c", "sleep 1000 & sleep 1000", NULL }, NULL, { "sh -c sleep", "sh", NULL } },
	{ { "sh", "-c", "x=$(date +%s) # just a comment\n(( n = 1 ))", NULL }, NULL,
	  { "sh -c", "sh", NULL } },
	{ { "sh", "script.sh", "arg", NULL }, "/opt/tools",
	  { "sh tools/script.sh", "sh script.sh", "sh", NULL } },
	{ { "bash", NULL }, NULL, { "bash", NULL } },
	/* interpreters */
	{ { "python3", "-c", "import time; time.sleep(0.4)", NULL }, NULL,
	  { "python3 -c import time; time.sleep(N.N)", "python3", NULL } },
	{ { "python3", "-c", "import time; time.sleep(1.25)", NULL }, NULL,
	  { "python3 -c import time; time.sleep(N.N)", "python3", NULL } },
	{ { "python3", "-c", "sum(i*i for i in range(10**7))", NULL }, NULL,
	  { "python3 -c sum(i*i for i in range(N**N))", "python3", NULL } },
	{ { "/usr/bin/python3.11", "-u", "-W", "ignore", "../bin/job.py", "x", NULL },
	  "/home/ann/proj/src", { "python3.11 bin/job.py", "python3.11 job.py",
				  "python3.11", NULL } },
	{ { "python3", "-m", "http.server", "8000", NULL }, NULL,
	  { "python3 -m http.server", "python3", NULL } },
	{ { "python3", "-um", "pytest", "-x", NULL }, NULL, { "python3 -m pytest", "python3",
							      NULL } },
	{ { "perl", "-e", "$s += $_ for 1..5_000_000", NULL }, NULL,
	  { "perl -e $s += $_ for N..N_N_N", "perl", NULL } },
	{ { "perl", "-lne", "print if /x/", "file", NULL }, NULL,
	  { "perl -e print if /x/", "perl", NULL } },
	{ { "perl", "-I", "lib", "tool.pl", NULL }, "/x", { "perl x/tool.pl", "perl tool.pl",
							    "perl", NULL } },
	{ { "ruby", "-e", "puts 1", NULL }, NULL, { "ruby -e puts N", "ruby", NULL } },
	{ { "node", "server.js", NULL }, "/app", { "node app/server.js", "node server.js",
						     "node", NULL } },
	{ { "node", "-e", "setTimeout(()=>{}, 500)", NULL }, NULL,
	  { "node -e setTimeout(()=>{}, N)", "node", NULL } },
	{ { "php", "-r", "echo 1;", NULL }, NULL, { "php -r echo N;", "php", NULL } },
	{ { "php", "-d", "memory_limit=1G", "artisan", "queue:work", NULL }, "/www",
	  { "php www/artisan", "php artisan", "php", NULL } },
	{ { "Rscript", "--vanilla", "fit.R", NULL }, "/r", { "Rscript r/fit.R", "Rscript fit.R",
							     "Rscript", NULL } },
	{ { "awk", "-F,", "{s+=$2} END {print s}", "data.csv", NULL }, NULL,
	  { "awk {s+=$N} END {print s}", "awk", NULL } },
	{ { "gawk", "-f", "prog.awk", "in", NULL }, "/w", { "gawk -f w/prog.awk",
							    "gawk -f prog.awk", "gawk", NULL } },
	{ { "java", "-Xmx2g", "-jar", "build/app.jar", "--port", "1", NULL }, "/srv",
	  { "java -jar build/app.jar", "java -jar app.jar", "java", NULL } },
	{ { "java", "-cp", "lib/*", "com.example.Main", NULL }, NULL,
	  { "java com.example.Main", "java", NULL } },
	{ { "lua5.4", "-e", "x=1", NULL }, NULL, { "lua5.4 -e x=N", "lua5.4", NULL } },
	/* wrappers */
	{ { "env", "-i", "PATH=/bin", "LC_ALL=C", "sort", "big", NULL }, NULL, { "sort", NULL } },
	{ { "env", "-S", "python3 -u tool.py", NULL }, "/t", { "python3 t/tool.py",
							      "python3 tool.py", "python3", NULL } },
	{ { "nice", "-n", "10", "gzip", "-9", "f", NULL }, NULL, { "gzip", NULL } },
	{ { "nice", "-19", "xz", NULL }, NULL, { "xz", NULL } },
	{ { "ionice", "-c3", "rsync", "-a", "src/", "dst/", NULL }, NULL, { "rsync", NULL } },
	{ { "ionice", "-p", "1234", NULL }, NULL, { "ionice", NULL } },
	{ { "timeout", "-k", "5", "30s", "sha256sum", "blob", NULL }, NULL, { "sha256sum",
									      NULL } },
	{ { "stdbuf", "-oL", "python3", "-c", "print(1)", NULL }, NULL,
	  { "python3 -c print(N)", "python3", NULL } },
	{ { "/usr/bin/time", "-v", "-o", "t.txt", "make", NULL }, NULL, { "make", NULL } },
	{ { "nohup", "setsid", "sleep", "1000", NULL }, NULL, { "sleep", NULL } },
	{ { "chrt", "-b", "0", "bzip2", "x", NULL }, NULL, { "bzip2", NULL } },
	{ { "taskset", "-c", "0,1", "ffmpeg", "-i", "in.mp4", "out.webm", NULL }, NULL,
	  { "ffmpeg", NULL } },
	{ { "flock", "/tmp/lock", "-c", "sleep 2; date", NULL }, NULL,
	  { "sh -c sleep date", "sh", NULL } },
	{ { "flock", "-w", "10", "/tmp/lock", "rsync", "a", "b", NULL }, NULL, { "rsync", NULL } },
	{ { "runuser", "-u", "ann", "--", "python3", "x.py", NULL }, NULL,
	  { "python3 x.py", "python3", NULL } },
	{ { "runuser", "ann", "-c", "gzip f", NULL }, NULL, { "gzip", "sh", NULL } },
	{ { "sudo", "-u", "ann", "-E", "nice", "timeout", "5", "sh", "-c", "sleep 3", NULL },
	  NULL, { "sleep", "sh", NULL } },
	/* odd input */
	{ { "", NULL }, NULL, { "?", NULL } },
	{ { "nice", NULL }, NULL, { "nice", NULL } },
	{ { "sh", "-c", NULL }, NULL, { "sh -c", "sh", NULL } },
	{ { "sh", "-c", "sh -c 'sh -c \"sh -c sleep\"'", NULL }, NULL, { "sleep", "sh", NULL } },
	{ { "python3", "-c", NULL }, NULL, { "python3", NULL } },
	{ { NULL }, NULL, { "?", NULL } },
};

/* Prints every difference (all rows are checked before the test fails). */
static bool
expect_keys(const struct row *r, const struct kind_keys *k)
{
	size_t i, n = 0;
	char line[2048];
	int o = 0;

	while (r->keys[n] != NULL)
		n++;
	for (i = 0; r->argv[i] != NULL; i++)
		o += snprintf(line + o, sizeof line - (size_t)o, "%s[%s]", i ? " " : "",
			      r->argv[i]);
	o += snprintf(line + o, sizeof line - (size_t)o, " ->");
	for (i = 0; i < k->n; i++)
		o += snprintf(line + o, sizeof line - (size_t)o, " {%s}", k->key[i]);
	if (k->n != n) {
		print_error("%s: %zu keys, expected %zu\n", line, k->n, n);
		return false;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(k->key[i], r->keys[i]) != 0) {
			print_error("%s: key %zu expected {%s}\n", line, i, r->keys[i]);
			return false;
		}
	}
	return true;
}

static void
test_table(void **state)
{
	struct kind_keys k;
	size_t i, bad = 0;

	(void)state;
	assert_true(sizeof rows / sizeof rows[0] >= 40);
	for (i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		kind_keys(NULL, "exec", NULL, (char *const *)rows[i].argv, rows[i].cwd, &k);
		bad += !expect_keys(&rows[i], &k);
	}
	assert_int_equal(bad, 0);
}

static void
test_name_and_builtin(void **state)
{
	char *argv[] = { "sh", "-c", "sleep 1", NULL };
	char *none[] = { NULL };
	struct kind_keys k;

	(void)state;
	kind_keys("nightly", "exec", NULL, argv, NULL, &k);
	assert_int_equal(k.n, 3);
	assert_string_equal(k.key[0], "name:nightly");
	assert_string_equal(k.key[1], "sleep");
	assert_string_equal(k.key[2], "sh");
	kind_keys(NULL, "spin", NULL, none, NULL, &k);
	assert_int_equal(k.n, 1);
	assert_string_equal(k.key[0], "builtin:spin");
	kind_keys("", "sleep", NULL, none, NULL, &k);
	assert_string_equal(k.key[0], "builtin:sleep");
	kind_keys(NULL, NULL, NULL, NULL, NULL, &k);
	assert_int_equal(k.n, 1);
	assert_string_equal(k.key[0], "?");
	/* A job a handler runs: its handler, whatever its argv. */
	kind_keys(NULL, NULL, "thumb", argv, NULL, &k);
	assert_int_equal(k.n, 1);
	assert_string_equal(k.key[0], "handler:thumb");
	kind_keys("big", NULL, "thumb", none, NULL, &k);
	assert_int_equal(k.n, 2);
	assert_string_equal(k.key[1], "handler:thumb");
}

/* Long, binary or hostile text: a key is at most KIND_KEY_MAX bytes of valid UTF-8. */
static void
test_long_and_binary(void **state)
{
	char big[4000], bin[64], script[200], a[200], b[200];
	char *argv[] = { "python3", "-c", big, NULL };
	char *argv2[] = { bin, NULL };
	struct kind_keys k, k2;
	json_t *j;
	size_t i;

	(void)state;
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	kind_keys(NULL, "exec", NULL, argv, NULL, &k);
	assert_int_equal(strlen(k.key[0]), KIND_KEY_MAX);
	assert_non_null(strchr(k.key[0], '~'));
	big[100] = 'y'; /* differs after the cut: the hash tells them apart */
	kind_keys(NULL, "exec", NULL, argv, NULL, &k2);
	assert_string_not_equal(k.key[0], k2.key[0]);
	assert_memory_equal(k.key[0], k2.key[0], 55);
	for (i = 0; i < sizeof bin - 1; i++)
		bin[i] = (char)(i * 37 + 1);
	bin[sizeof bin - 1] = '\0';
	kind_keys(NULL, "exec", NULL, argv2, NULL, &k);
	for (i = 0; i < k.n; i++) {
		j = json_string(k.key[i]); /* NULL if not valid UTF-8 */
		assert_non_null(j);
		json_decref(j);
		assert_null(strpbrk(k.key[i], "\n\t\r\x1b"));
	}
	/* A character is never cut in two. */
	memset(script, 0, sizeof script);
	for (i = 0; i + 2 < 150; i += 2)
		memcpy(script + i, "\xc3\xa9", 2);
	argv[2] = script;
	kind_keys(NULL, "exec", NULL, argv, NULL, &k);
	j = json_string(k.key[0]);
	assert_non_null(j);
	json_decref(j);
	/* The same script with different numbers is the same kind. */
	snprintf(a, sizeof a, "for i in $(seq 1 10); do gzip -%d f$i; done", 1);
	snprintf(b, sizeof b, "for i in $(seq 1 99); do gzip -%d f$i; done", 9);
	argv[0] = "sh";
	argv[2] = a;
	kind_keys(NULL, "exec", NULL, argv, NULL, &k);
	argv[2] = b;
	kind_keys(NULL, "exec", NULL, argv, NULL, &k2);
	assert_string_equal(k.key[0], "sh -c for gzip");
	assert_string_equal(k.key[0], k2.key[0]);
}

/* Unterminated quotes, substitutions and deep nesting end without reading past the text. */
static void
test_hostile_scripts(void **state)
{
	static const char *const scripts[] = {
		"'", "\"", "$(", "$((", "${", "`", "\\", "a \\", "case", "case x in",
		"for", "for ((", "((", "))", ")", "(", ";;", "|||", "<", ">&", "2>",
		"<<EOF", "echo $(echo $(echo $(echo", "\"$(\"", "a='b", "if then fi",
		"x=1 y=2", "! ! !", "{ }", "while", "esac esac", "# only a comment",
	};
	char *argv[] = { "sh", "-c", NULL, NULL };
	struct kind_keys k;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof scripts / sizeof scripts[0]; i++) {
		argv[2] = (char *)scripts[i];
		kind_keys(NULL, "exec", NULL, argv, NULL, &k);
		assert_true(k.n >= 1 && k.n <= KIND_MAX_KEYS);
		assert_string_equal(k.key[k.n - 1], "sh");
	}
}

static void
test_pack(void **state)
{
	char *argv[] = { "sh", "-c", "python3 x.py", NULL };
	struct kind_keys k, back;
	char *p;
	size_t i;

	(void)state;
	kind_keys("n", "exec", NULL, argv, "/d", &k);
	p = kind_keys_pack(&k);
	assert_string_equal(kind_keys_first(p), "name:n");
	kind_keys_unpack(p, &back);
	assert_int_equal(back.n, k.n);
	for (i = 0; i < k.n; i++)
		assert_string_equal(back.key[i], k.key[i]);
	free(p);
	assert_string_equal(kind_keys_first(NULL), "?");
	kind_keys_unpack(NULL, &back);
	assert_int_equal(back.n, 1);
	assert_string_equal(back.key[0], "?");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_name_and_builtin),
		cmocka_unit_test(test_long_and_binary),
		cmocka_unit_test(test_hostile_scripts),
		cmocka_unit_test(test_pack),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
