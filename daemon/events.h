/*
 * Live job events (op subscribe, doc/protocol.md "subscribe"): after its
 * subscribe is answered, a connection gets one JSON line per state change
 * of every job that passes its filter and that its user may see. A
 * subscriber that does not read is cut off, not waited for: once more than
 * TASKD_EVENTS_MAX_BUFFER bytes are queued for it, it gets one
 * {"event":"overflow"} line and the connection is closed. Loop thread only.
 */
#ifndef TASKD_EVENTS_H
#define TASKD_EVENTS_H

#include <stdbool.h>
#include <sys/types.h>

#include "filter.h"

struct jobs;
struct client;
struct events;
struct subscriber;

struct events *events_new(struct jobs *js);
/*
 * taskd is stopping: every subscriber gets {"event":"shutdown"} (written
 * when server_free flushes the clients), so it can tell a stop from a crash.
 */
void events_shutdown(struct events *ev);
/* After every subscriber is gone (server_free closed the clients). */
void events_free(struct events *ev);

/*
 * Stream job events to c from now on, those passing *f (taken) and, unless
 * see_all, only jobs of uid. The subscription holds the client (answers
 * keep flowing after the peer half-closes) until events_unsubscribe.
 */
struct subscriber *events_subscribe(struct events *ev, struct client *c, struct filter *f,
				    bool see_all, uid_t uid);
/* The client is closing (or was cut off): free the subscription. */
void events_unsubscribe(struct events *ev, struct subscriber *s);
size_t events_subscribers(const struct events *ev);

#endif
