/*
 * Unit tests for daemon/cluster-nats.c's teardown (cluster_nats_free): a
 * message NATS handed over that the loop never took is freed while the
 * library still runs. libnats frees messages on a thread of its own that
 * nats_CloseAndWait ends: a message freed after it crashes the daemon
 * (the library already freed itself) or is lost (a leak, when the wait
 * timed out because something still held the library). No NATS server is
 * needed: the connection tries an address where none listens.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "cluster-private.h"
#include "xmalloc.h"

/* Port 1 on loopback: refused at once, so the library keeps trying in the background. */
#define NOWHERE "nats://127.0.0.1:1"

static struct cluster *
cluster_start(struct event_base *base)
{
	struct cluster *cl = xcalloc(1, sizeof *cl);
	char *cause = NULL;
	int i;

	cl->base = base;
	cl->url = xstrdup(NOWHERE);
	cl->node = xstrdup("unit");
	pthread_mutex_init(&cl->mu, NULL);
	pthread_cond_init(&cl->cond, NULL);
	STAILQ_INIT(&cl->evq);
	assert_int_equal(cluster_nats_start(cl, &cause), 0);
	/* Connect returned (not yet connected): the library's threads run. */
	for (i = 0; i < 500; i++) {
		natsConnection *nc;

		pthread_mutex_lock(&cl->mu);
		nc = cl->nc;
		pthread_mutex_unlock(&cl->mu);
		if (nc != NULL)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	assert_non_null(cl->nc);
	return cl;
}

/* A message as the delivery thread hands it over (msg_cb), left in the queue. */
static void
post_msg(struct cluster *cl)
{
	struct cl_ev *ev = xcalloc(1, sizeof *ev);
	char data[300];

	memset(data, 'x', sizeof data);
	ev->type = CLEV_MSG;
	ev->kind = SUB_JOBS;
	assert_int_equal(natsMsg_Create(&ev->msg, "$KV.unit-jobs.1", "$JS.ACK.unit", data,
					(int)sizeof data), NATS_OK);
	cluster_post(cl, ev);
}

static void
cluster_end(struct cluster *cl)
{
	cluster_nats_free(cl);
	pthread_mutex_destroy(&cl->mu);
	pthread_cond_destroy(&cl->cond);
	free(cl->url);
	free(cl->node);
	free(cl);
}

/* The library closes at once: the queued message must not be freed after that (it crashed). */
static void
test_free_queued_msg(void **state)
{
	struct event_base *base = event_base_new();
	struct cluster *cl;

	assert_non_null(base);
	cl = cluster_start(base);
	post_msg(cl);
	post_msg(cl);
	cluster_end(cl);
	event_base_free(base);
}

static void
never_connected(natsConnection *nc, void *closure)
{
	fail_msg("connected to %s: something listens there", NOWHERE);
}

/*
 * Something else holds the library (here a second connection), so the
 * close's wait times out: the queued message must not be lost with the
 * library's collector (LeakSanitizer says so in the sanitizer build).
 */
static void
test_free_queued_msg_library_held(void **state)
{
	struct event_base *base = event_base_new();
	natsConnection *other = NULL;
	natsOptions *o = NULL;
	struct cluster *cl;

	assert_non_null(base);
	cl = cluster_start(base);
	assert_int_equal(natsOptions_Create(&o), NATS_OK);
	assert_int_equal(natsOptions_SetURL(o, NOWHERE), NATS_OK);
	assert_int_equal(natsOptions_SetRetryOnFailedConnect(o, true, never_connected, NULL),
			 NATS_OK);
	assert_int_equal(natsConnection_Connect(&other, o), NATS_NOT_YET_CONNECTED);
	post_msg(cl);
	cluster_end(cl);
	/* The last hold of the library: it frees itself now. */
	natsConnection_Destroy(other);
	natsOptions_Destroy(o);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_free_queued_msg),
		cmocka_unit_test(test_free_queued_msg_library_held),
	};

	evthread_use_pthreads();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
