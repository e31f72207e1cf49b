/*
 * Unit tests for daemon/cluster-msg.c, what a cluster's messages hold: a
 * job's entry round-trips (with and without its environment), anything
 * that is not an entry this taskd reads is refused with a reason (never a
 * guess), ack subjects of both forms give their metadata, JetStream's
 * answers give a sequence or an error, a stream's settings are checked,
 * host names become node names.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "builtin.h"
#include "cluster-msg.h"
#include "job.h"
#include "xmalloc.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

static struct job *
sample_job(void)
{
	struct job *j = job_new();

	j->id = 42;
	j->state = JOB_RUNNING;
	j->uid = 1000;
	j->gid = 100;
	j->spec.type = BUILTIN_EXEC;
	j->spec.argv = xcalloc(3, sizeof(char *));
	j->spec.argv[0] = xstrdup("echo");
	j->spec.argv[1] = xstrdup("hi");
	j->spec.env = xcalloc(2, sizeof(char *));
	j->spec.env[0] = xstrdup("A=1");
	j->spec.cwd = xstrdup("/tmp");
	j->spec.class = CLASS_IO;
	j->spec.priority = -3;
	j->spec.retries = 2;
	j->spec.retry_delay = 1;
	j->submitted_at = 1796312793.5;
	j->started_at = 1796312794.25;
	j->attempt = 2;
	j->cl.node = xstrdup("web-2");
	j->cl.from = xstrdup("web-1");
	j->cl.redelivered = true;
	j->cl.delivery = 3;
	return j;
}

static void
test_entry_roundtrip(void **state)
{
	struct job *j = sample_job(), *k;
	struct cluster_entry e;
	char *text, *cause = NULL, *again;
	size_t len, len2;

	(void)state;
	text = cluster_entry_encode(j, JOB_RUNNING, "web-2", false, true, &len);
	assert_int_equal(len, strlen(text));
	k = cluster_entry_decode(42, text, len, &e, &cause);
	if (k == NULL)
		fail_msg("%s", cause);
	assert_int_equal(k->id, 42);
	assert_int_equal(k->state, JOB_RUNNING);
	assert_int_equal(k->uid, 1000);
	assert_int_equal(k->gid, 100);
	assert_string_equal(k->spec.argv[1], "hi");
	assert_string_equal(k->spec.env[0], "A=1");
	assert_int_equal(k->spec.priority, -3);
	assert_int_equal(k->attempt, 2);
	assert_string_equal(k->cl.node, "web-2");
	assert_string_equal(k->cl.from, "web-1");
	assert_true(k->cl.redelivered);
	assert_int_equal(k->cl.delivery, 3);
	assert_string_equal(e.by, "web-2");
	assert_false(e.cancel);
	/* The same job encodes to the same text: nothing lost on the way. */
	again = cluster_entry_encode(k, k->state, e.by, false, true, &len2);
	assert_string_equal(again, text);
	free(again);
	free(text);
	cluster_entry_clear(&e);
	job_free(k);

	/* The bucket's entry: no environment; a cancel request says so, and who asked. */
	text = cluster_entry_encode(j, JOB_CANCELLED, "web-3", true, false, &len);
	k = cluster_entry_decode(42, text, len, &e, &cause);
	assert_non_null(k);
	assert_null(k->spec.env);
	assert_int_equal(k->state, JOB_CANCELLED);
	assert_true(e.cancel);
	assert_string_equal(e.by, "web-3");
	cluster_entry_clear(&e);
	job_free(k);
	free(text);
	job_free(j);
}

/* j's entry is refused, the cause saying want. */
static void
entry_refused(const struct job *j, const char *want)
{
	struct cluster_entry e;
	char *text, *cause = NULL;
	size_t len;

	text = cluster_entry_encode(j, JOB_QUEUED, "a", false, false, &len);
	assert_null(cluster_entry_decode(7, text, len, &e, &cause));
	if (cause == NULL || strstr(cause, want) == NULL)
		fail_msg("\"%s\" does not say \"%s\"", cause != NULL ? cause : "", want);
	free(cause);
	free(text);
}

static void
test_entry_refused(void **state)
{
	static const struct {
		const char *text;
		const char *why;
	} cases[] = {
		{ "hello", "not JSON" },
		{ "[1,2]", "not JSON object" },
		{ "{}", "not a taskd job entry" },
		{ "{\"v\":2,\"state\":\"queued\"}", "entry version 2" },
		{ "{\"v\":1,\"state\":\"queued\"}", "bad entry" },
		{ "{\"v\":1,\"state\":\"queued\",\"by\":\"a\",\"node\":null,\"from\":null,"
		  "\"redelivered\":false,\"delivery\":0,\"cancel\":false,\"job\":{},\"more\":1}",
		  "bad entry" },
		{ "{\"v\":1,\"state\":\"queued\",\"by\":\"a.b\",\"node\":null,\"from\":null,"
		  "\"redelivered\":false,\"delivery\":0,\"cancel\":false,\"job\":{}}",
		  "\"by\" is not a node name" },
		{ "{\"v\":1,\"state\":\"queued\",\"by\":\"a\",\"node\":null,\"from\":null,"
		  "\"redelivered\":false,\"delivery\":-1,\"cancel\":false,\"job\":{}}",
		  "\"delivery\" is negative" },
		{ "{\"v\":1,\"state\":\"nope\",\"by\":\"a\",\"node\":null,\"from\":null,"
		  "\"redelivered\":false,\"delivery\":0,\"cancel\":false,\"job\":{\"v\":2}}",
		  "unknown state" },
		{ "{\"v\":1,\"state\":\"queued\",\"by\":\"a\",\"node\":null,\"from\":null,"
		  "\"redelivered\":false,\"delivery\":0,\"cancel\":false,\"job\":{\"v\":2}}",
		  "unreadable record" },
	};
	struct cluster_entry e;
	struct job_array *a;
	struct job *j, *k;
	char *cause, *text, *bad;
	size_t i, len;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		cause = NULL;
		k = cluster_entry_decode(7, cases[i].text, strlen(cases[i].text), &e, &cause);
		if (k != NULL)
			fail_msg("case %zu decoded", i);
		assert_non_null(cause);
		if (strstr(cause, cases[i].why) == NULL)
			fail_msg("case %zu: \"%s\" does not say \"%s\"", i, cause, cases[i].why);
		assert_null(e.by);
		free(cause);
	}
	/* A node name that is not one, inside an otherwise good entry. */
	j = sample_job();
	text = cluster_entry_encode(j, JOB_QUEUED, "a", false, false, &len);
	bad = strstr(text, "\"node\":\"web-2\"");
	assert_non_null(bad);
	memcpy(bad, "\"node\":\"web 2\"", 14);
	cause = NULL;
	assert_null(cluster_entry_decode(7, text, len, &e, &cause));
	assert_non_null(strstr(cause, "\"node\" or \"from\""));
	free(cause);
	free(text);

	/* A job with input: its bytes are in one node's file, which no entry carries. */
	j->spec.input_bytes = 3;
	entry_refused(j, "a job with input");
	job_free(j);

	/* A job of an array: its record names the array, whose own record no entry carries. */
	a = xcalloc(1, sizeof *a);
	a->id = 40;
	a->count = 3;
	j = job_new();
	j->id = 42;
	j->state = JOB_QUEUED;
	j->array = a;
	j->spec.priority = 2;
	j->attempt = 1;
	entry_refused(j, "a job of an array");
	job_free(j);
	job_array_free(a);
}

static void
test_ack_parse(void **state)
{
	struct cluster_ack a;

	(void)state;
	assert_int_equal(cluster_ack_parse("$JS.ACK.TASKD.cpu.3.17.29.1796312793000000000.5", &a), 0);
	assert_string_equal(a.consumer, "cpu");
	assert_int_equal(a.delivered, 3);
	assert_int_equal(a.sseq, 17);
	assert_int_equal(a.cseq, 29);
	assert_int_equal(a.time, 1796312793000000000LL);
	assert_int_equal(a.pending, 5);
	/* With a domain and an account hash first, and a random token after. */
	assert_int_equal(cluster_ack_parse("$JS.ACK.dom.ACCHASH.TASKD.local-web-1.1.9.9.1.0.xyz",
					   &a), 0);
	assert_string_equal(a.consumer, "local-web-1");
	assert_int_equal(a.sseq, 9);
	assert_int_equal(a.pending, 0);
	assert_int_equal(cluster_ack_parse("$JS.ACK.TASKD.cpu.3.17.29.1", &a), -1);
	assert_int_equal(cluster_ack_parse("$JS.ACK.TASKD.cpu.x.17.29.1.5", &a), -1);
	assert_int_equal(cluster_ack_parse("$JS.ACK.TASKD.cpu.0.17.29.1.5", &a), -1);
	assert_int_equal(cluster_ack_parse("$JS.ACK.TASKD.cpu.1.0.29.1.5", &a), -1);
	assert_int_equal(cluster_ack_parse("_INBOX.abc.p.1", &a), -1);
	assert_int_equal(cluster_ack_parse("$JS.ACK.TASKD.cpu.1.99999999999999999999999.1.1.1",
					   &a), -1);
}

static void
test_puback(void **state)
{
	struct cluster_puback pa;
	const char *ok = "{\"stream\":\"TASKD\",\"seq\":12}";
	const char *dup = "{\"stream\":\"TASKD\",\"seq\":12,\"duplicate\":true}";
	const char *err = "{\"error\":{\"code\":400,\"err_code\":10071,\"description\":\"wrong last "
			  "sequence: 4\"}}";

	(void)state;
	assert_int_equal(cluster_puback_parse(ok, strlen(ok), &pa), 0);
	assert_int_equal(pa.seq, 12);
	assert_false(pa.duplicate);
	cluster_puback_clear(&pa);
	assert_int_equal(cluster_puback_parse(dup, strlen(dup), &pa), 0);
	assert_true(pa.duplicate);
	cluster_puback_clear(&pa);
	assert_int_equal(cluster_puback_parse(err, strlen(err), &pa), -1);
	assert_int_equal(pa.err_code, CLUSTER_ERR_WRONG_LAST_SEQ);
	assert_non_null(strstr(pa.error, "wrong last sequence"));
	cluster_puback_clear(&pa);
	assert_int_equal(cluster_puback_parse("{}", 2, &pa), -1);
	assert_non_null(strstr(pa.error, "no \"seq\""));
	cluster_puback_clear(&pa);
	assert_int_equal(cluster_puback_parse("\x01", 1, &pa), -1);
	assert_int_equal(pa.err_code, 0);
	cluster_puback_clear(&pa);
}

static void
test_stream_check(void **state)
{
	const char *subjects[1] = { "TASKD.jobs.>" }, *other[1] = { "TASKD.>" };
	jsStreamConfig c;
	char *why = NULL;

	(void)state;
	jsStreamConfig_Init(&c);
	c.Subjects = subjects;
	c.SubjectsLen = 1;
	c.Retention = js_WorkQueuePolicy;
	c.Duplicates = 120000000000LL;
	assert_int_equal(cluster_stream_check(&c, "TASKD.jobs.>", &why), 0);
	c.Retention = js_LimitsPolicy;
	assert_int_equal(cluster_stream_check(&c, "TASKD.jobs.>", &why), -1);
	assert_non_null(strstr(why, "retention is limits"));
	free(why);
	c.Retention = js_WorkQueuePolicy;
	c.Subjects = other;
	assert_int_equal(cluster_stream_check(&c, "TASKD.jobs.>", &why), -1);
	assert_non_null(strstr(why, "subjects"));
	free(why);
	c.Subjects = subjects;
	c.MaxAge = 3600000000000LL;
	assert_int_equal(cluster_stream_check(&c, "TASKD.jobs.>", &why), -1);
	assert_non_null(strstr(why, "max_age"));
	free(why);
	c.MaxAge = 0;
	c.MaxMsgs = 1000;
	c.Discard = js_DiscardOld;
	assert_int_equal(cluster_stream_check(&c, "TASKD.jobs.>", &why), -1);
	assert_non_null(strstr(why, "discard old"));
	free(why);
	c.Discard = js_DiscardNew;
	assert_int_equal(cluster_stream_check(&c, "TASKD.jobs.>", &why), 0);
	c.Duplicates = 0;
	assert_int_equal(cluster_stream_check(&c, "TASKD.jobs.>", &why), -1);
	assert_non_null(strstr(why, "duplicate window"));
	free(why);
}

static void
test_node_from_host(void **state)
{
	static const struct {
		const char *host, *node;
	} cases[] = {
		{ "web-1", "web-1" },
		{ "web-1.example.org", "web-1" },
		{ "db_2", "db_2" },
		{ "we b", "we-b" },
		{ ".example", "node" },
		{ "", "node" },
	};
	char *n, longhost[100];
	size_t i;

	(void)state;
	for (i = 0; i < nitems(cases); i++) {
		n = cluster_node_from_host(cases[i].host);
		assert_string_equal(n, cases[i].node);
		free(n);
	}
	memset(longhost, 'h', sizeof longhost - 1);
	longhost[sizeof longhost - 1] = '\0';
	n = cluster_node_from_host(longhost);
	assert_int_equal(strlen(n), 64);
	free(n);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_entry_roundtrip),
		cmocka_unit_test(test_entry_refused),
		cmocka_unit_test(test_ack_parse),
		cmocka_unit_test(test_puback),
		cmocka_unit_test(test_stream_check),
		cmocka_unit_test(test_node_from_host),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
