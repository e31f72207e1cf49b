/*
 * The handler protocol's codec (daemon/hproto.c): every message shape,
 * strict rejection of everything else, the job and cancel lines, base64
 * checks, and the line framer with over-long lines.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>

#include "hproto.h"
#include "xmalloc.h"

static int
decode(const char *line, struct hmsg *m, char **why)
{
	return hproto_decode(line, strlen(line), m, why);
}

static void
expect_bad(const char *line, const char *fragment)
{
	struct hmsg m;
	char *why = NULL;

	if (decode(line, &m, &why) != -1)
		fail_msg("accepted: %s", line);
	assert_non_null(why);
	if (strstr(why, fragment) == NULL)
		fail_msg("%s: message '%s' lacks '%s'", line, why, fragment);
	free(why);
}

static void
test_hello(void **state)
{
	struct hmsg m;
	char *why = NULL;

	assert_int_equal(decode("{\"t\":\"hello\",\"protocol\":1,\"concurrency\":8}", &m, &why), 0);
	assert_int_equal(m.type, HMSG_HELLO);
	assert_int_equal(m.protocol, 1);
	assert_int_equal(m.concurrency, 8);
	hmsg_free(&m);
	expect_bad("{\"t\":\"hello\",\"protocol\":2,\"concurrency\":1}", "speaks protocol 2");
	expect_bad("{\"t\":\"hello\",\"protocol\":\"1\",\"concurrency\":1}", "\"protocol\"");
	expect_bad("{\"t\":\"hello\",\"protocol\":1}", "\"concurrency\"");
	expect_bad("{\"t\":\"hello\",\"protocol\":1,\"concurrency\":0}", "\"concurrency\"");
	expect_bad("{\"t\":\"hello\",\"protocol\":1,\"concurrency\":1025}", "\"concurrency\"");
	expect_bad("{\"t\":\"hello\",\"protocol\":1,\"concurrency\":1,\"pid\":3}",
		   "unknown field \"pid\"");
}

static void
test_result(void **state)
{
	struct hmsg m;
	char *why = NULL;

	assert_int_equal(
	    decode("{\"t\":\"result\",\"id\":17,\"ok\":true,\"result\":{\"a\": [1, 2]}}", &m, &why), 0);
	assert_int_equal(m.type, HMSG_RESULT);
	assert_int_equal(m.id, 17);
	assert_true(m.ok);
	assert_string_equal(m.result, "{\"a\":[1,2]}");
	hmsg_free(&m);
	assert_int_equal(decode("{\"t\":\"result\",\"id\":1,\"ok\":true,\"result\":null}", &m, &why), 0);
	assert_string_equal(m.result, "null");
	hmsg_free(&m);
	assert_int_equal(decode("{\"t\":\"result\",\"id\":2,\"ok\":false,\"error\":\"no way\"}", &m, &why),
			 0);
	assert_false(m.ok);
	assert_null(m.result);
	assert_string_equal(m.text, "no way");
	hmsg_free(&m);
	expect_bad("{\"t\":\"result\",\"id\":2,\"ok\":true}", "needs \"result\"");
	expect_bad("{\"t\":\"result\",\"id\":2,\"ok\":false}", "\"error\"");
	expect_bad("{\"t\":\"result\",\"id\":2,\"ok\":false,\"error\":\"x\",\"result\":1}",
		   "with a \"result\"");
	expect_bad("{\"t\":\"result\",\"id\":2,\"ok\":true,\"result\":1,\"error\":\"x\"}",
		   "with an \"error\"");
	expect_bad("{\"t\":\"result\",\"id\":0,\"ok\":true,\"result\":1}", "\"id\"");
	expect_bad("{\"t\":\"result\",\"id\":\"3\",\"ok\":true,\"result\":1}", "\"id\"");
	expect_bad("{\"t\":\"result\",\"id\":3,\"ok\":1,\"result\":1}", "\"ok\"");
	expect_bad("{\"t\":\"result\",\"id\":3,\"ok\":false,\"error\":\"a\\u0000b\"}", "NUL");
}

static void
test_progress(void **state)
{
	struct hmsg m;
	char *why = NULL, *line, *big = xmalloc(HPROTO_MESSAGE_MAX * 2 + 64);

	assert_int_equal(decode("{\"t\":\"progress\",\"id\":5,\"message\":\"half\"}", &m, &why), 0);
	assert_int_equal(m.type, HMSG_PROGRESS);
	assert_string_equal(m.text, "half");
	hmsg_free(&m);
	/* A long message is cut, at a character boundary. */
	memset(big, 0, HPROTO_MESSAGE_MAX * 2 + 64);
	for (size_t i = 0; i < HPROTO_MESSAGE_MAX; i++)
		strcat(big, "\xc3\xa9");
	line = xprintf("{\"t\":\"progress\",\"id\":5,\"message\":\"%s\"}", big);
	assert_int_equal(decode(line, &m, &why), 0);
	assert_int_equal(strlen(m.text), HPROTO_MESSAGE_MAX);
	hmsg_free(&m);
	free(line);
	free(big);
	expect_bad("{\"t\":\"progress\",\"id\":5}", "\"message\"");
}

static void
test_garbage(void **state)
{
	expect_bad("hello", "not JSON");
	expect_bad("", "not JSON");
	expect_bad("[1,2]", "JSON object");
	expect_bad("{\"protocol\":1}", "needs \"t\"");
	expect_bad("{\"t\":\"bye\"}", "unknown message \"bye\"");
	expect_bad("{\"t\":\"result\",\"t\":\"result\",\"id\":1,\"ok\":true,\"result\":1}",
		   "not JSON");
	expect_bad("{\"t\":\"result\",\"id\":1,\"ok\":true,\"result\":1} {}", "not JSON");
}

static void
test_encode(void **state)
{
	char *args[] = {"a b", "\xc3\xa9", NULL}, *line;
	json_t *o;
	size_t len;

	line = hproto_job(42, args, "aGk=", 1700000000.5, &len);
	assert_int_equal(line[len - 1], '\n');
	assert_int_equal(strlen(line), len);
	o = json_loadb(line, len - 1, 0, NULL);
	assert_non_null(o);
	assert_string_equal(json_string_value(json_object_get(o, "t")), "job");
	assert_int_equal(json_integer_value(json_object_get(o, "id")), 42);
	assert_string_equal(json_string_value(json_array_get(json_object_get(o, "args"), 0)), "a b");
	assert_string_equal(json_string_value(json_object_get(o, "input")), "aGk=");
	assert_true(json_real_value(json_object_get(o, "deadline")) == 1700000000.5);
	json_decref(o);
	free(line);
	line = hproto_job(1, NULL, NULL, 0, &len);
	assert_string_equal(line, "{\"t\":\"job\",\"id\":1,\"args\":[],\"input\":\"\",\"deadline\":null}\n");
	free(line);
	line = hproto_cancel(9, &len);
	assert_string_equal(line, "{\"t\":\"cancel\",\"id\":9}\n");
	free(line);
}

static void
test_base64(void **state)
{
	assert_true(hproto_base64_valid("", 0));
	assert_true(hproto_base64_valid("aGk=", 4));
	assert_true(hproto_base64_valid("aGVsbG8=", 8));
	assert_true(hproto_base64_valid("aGVs", 4));
	assert_true(hproto_base64_valid("a+/=", 4));
	assert_true(hproto_base64_valid("aA==", 4));
	assert_false(hproto_base64_valid("aGk", 3));
	assert_false(hproto_base64_valid("aG k", 4));
	assert_false(hproto_base64_valid("a=Gk", 4));
	assert_false(hproto_base64_valid("====", 4));
	assert_false(hproto_base64_valid("aGk=\n", 5));
}

static void
feed(struct hframer *f, const char *s)
{
	size_t n = strlen(s);

	memcpy(hframer_space(f, n), s, n);
	hframer_commit(f, n);
}

static void
test_framer(void **state)
{
	struct hframer f;
	const char *line;
	uint64_t full;
	size_t len;

	hframer_init(&f, 16);
	feed(&f, "abc\nde");
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "abc", 3);
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_NONE);
	assert_int_equal(hframer_partial(&f), 2);
	feed(&f, "f\n\n");
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_OK);
	assert_int_equal(len, 3);
	assert_memory_equal(line, "def", 3);
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_OK);
	assert_int_equal(len, 0);
	assert_int_equal(hframer_partial(&f), 0);
	/* Exactly max is fine; one more is too long, whether it arrives whole or in parts. */
	feed(&f, "0123456789abcdef\n0123456789abcdefg\n");
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_OK);
	assert_int_equal(len, 16);
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_TOO_LONG);
	assert_int_equal(full, 17);
	assert_memory_equal(line, "0123456789abcdefg", 17);
	feed(&f, "{\"t\":\"result\",\"id\":12");
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_NONE);
	feed(&f, "34,\"ok\":true,");
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_NONE);
	feed(&f, "\"result\":\"xxxxxxxx\"}\nok\n");
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_TOO_LONG);
	assert_int_equal(full, strlen("{\"t\":\"result\",\"id\":1234,\"ok\":true,\"result\":\"xxxxxxxx\"}"));
	assert_int_equal(hproto_peek_id(line, len), 1234);
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_OK);
	assert_memory_equal(line, "ok", 2);
	assert_int_equal(hframer_next(&f, &line, &len, &full), HLINE_NONE);
	hframer_free(&f);
}

static void
test_framer_many(void **state)
{
	struct hframer f;
	const char *line;
	uint64_t full;
	size_t len;
	char buf[32];
	int i, got = 0;

	hframer_init(&f, 1 << 20);
	for (i = 0; i < 10000; i++) {
		snprintf(buf, sizeof buf, "line %d\n", i);
		feed(&f, buf);
		if (i % 7 == 0)
			while (hframer_next(&f, &line, &len, &full) == HLINE_OK) {
				snprintf(buf, sizeof buf, "line %d", got++);
				assert_int_equal(len, strlen(buf));
				assert_memory_equal(line, buf, len);
			}
	}
	while (hframer_next(&f, &line, &len, &full) == HLINE_OK)
		got++;
	assert_int_equal(got, 10000);
	hframer_free(&f);
}

static void
test_peek_id(void **state)
{
	assert_int_equal(hproto_peek_id("{\"t\":\"result\",\"id\":77,", 22), 77);
	assert_int_equal(hproto_peek_id("{\"id\" : 5 ,", 11), 5);
	/* Cut inside the number: it may be longer, so it does not count. */
	assert_int_equal(hproto_peek_id("{\"id\":12", 8), 0);
	assert_int_equal(hproto_peek_id("{\"t\":\"result\"", 13), 0);
	assert_int_equal(hproto_peek_id("{\"idx\":3,\"id\":4,", 16), 4);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hello),
		cmocka_unit_test(test_result),
		cmocka_unit_test(test_progress),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_encode),
		cmocka_unit_test(test_base64),
		cmocka_unit_test(test_framer),
		cmocka_unit_test(test_framer_many),
		cmocka_unit_test(test_peek_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
