#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <taskd/protocol.h>

#include "clock.h"
#include "events.h"
#include "job.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "xmalloc.h"

struct subscriber {
	struct client *client;
	struct filter filter;
	bool see_all;
	uid_t uid;
	bool active;            /* false once cut off: only the client's close frees it */
	TAILQ_ENTRY(subscriber) entry;
};

struct events {
	struct jobs *jobs;
	struct job_observer observer;
	TAILQ_HEAD(, subscriber) subs;  /* active ones */
	size_t nsubs;
};

/* {"event":"job","id":N,"state":S,"prev":P|null,"at":T,...}: newline-terminated, malloc'd. */
static char *
event_line(const struct job *j, int prev, size_t *len)
{
	json_t *o = json_object();
	double at = now_unix();
	char *line;

	if (job_state_final(j->state) && j->finished_at > 0)
		at = j->finished_at;
	else if (j->state == JOB_RUNNING && j->started_at > 0)
		at = j->started_at;
	else if (prev < 0)
		at = j->submitted_at;
	json_object_set_new(o, "event", json_string("job"));
	json_object_set_new(o, "id", json_integer((json_int_t)j->id));
	json_object_set_new(o, "state", json_string(job_state_name(j->state)));
	json_object_set_new(o, "prev", prev >= 0 ? json_string(job_state_name(prev)) : json_null());
	json_object_set_new(o, "at", json_real(at));
	if (j->spec.name != NULL)
		json_object_set_new(o, "name", json_string(j->spec.name));
	if (job_state_final(j->state)) {
		json_object_set_new(o, "exit_code", j->res.exit_code >= 0
							? json_integer(j->res.exit_code) : json_null());
		json_object_set_new(o, "signal", j->res.signal > 0 ? json_integer(j->res.signal)
								  : json_null());
		/* As the job object shows it: an event line stays within limits.max_frame. */
		json_object_set_new(o, "error", job_error_json(j->res.error));
	}
	line = proto_line(o, len);
	json_decref(o);
	return line;
}

/* Far behind and not reading, or very far behind. */
static bool
too_slow(const struct client *c)
{
	size_t backlog = server_client_backlog(c);

	if (backlog > TASKD_EVENTS_HARD_LIMIT)
		return true;
	return backlog > TASKD_EVENTS_MAX_BUFFER &&
	       server_client_stalled_for(c, clock_now(CLOCK_MONOTONIC)) > TASKD_EVENTS_STALL;
}

/* Too far behind: one last line, then the connection closes once it is written. */
static void
cut_off(struct events *ev, struct subscriber *s)
{
	static const char overflow[] = "{\"event\":\"overflow\",\"message\":\"subscriber too slow: "
				       "events left unread (over 1 MiB for 2 s, or 4 MiB)\"}\n";

	STATS_INC(event_overflows);
	log_info("closing a subscriber that fell behind (uid %u, %zu bytes unread)",
		 (unsigned)s->uid, server_client_backlog(s->client));
	TAILQ_REMOVE(&ev->subs, s, entry);
	ev->nsubs--;
	s->active = false;
	server_client_send(s->client, overflow, sizeof overflow - 1);
	server_client_release(s->client);
	server_client_close(s->client);
}

static void
events_job_cb(struct job *j, int prev, void *arg)
{
	struct events *ev = arg;
	struct subscriber *s, *next;
	double now = 0;
	char *line = NULL;
	size_t len = 0;

	for (s = TAILQ_FIRST(&ev->subs); s != NULL; s = next) {
		next = TAILQ_NEXT(s, entry);
		if (!s->see_all && s->uid != j->uid)
			continue;
		if (now == 0)
			now = now_unix();
		if (!filter_match(&s->filter, j, now))
			continue;
		if (line == NULL)
			line = event_line(j, prev, &len);
		if (too_slow(s->client)) {
			cut_off(ev, s);
			continue;
		}
		server_client_send(s->client, line, len);
		STATS_INC(events_sent);
	}
	free(line);
}

void
events_shutdown(struct events *ev)
{
	static const char line[] = "{\"event\":\"shutdown\",\"message\":\"taskd is stopping\"}\n";
	struct subscriber *s;

	TAILQ_FOREACH(s, &ev->subs, entry)
		server_client_send(s->client, line, sizeof line - 1);
}

struct events *
events_new(struct jobs *js)
{
	struct events *ev = xcalloc(1, sizeof *ev);

	ev->jobs = js;
	TAILQ_INIT(&ev->subs);
	ev->observer.changed = events_job_cb;
	ev->observer.arg = ev;
	jobs_observe(js, &ev->observer);
	return ev;
}

void
events_free(struct events *ev)
{
	struct subscriber *s;

	if (ev == NULL)
		return;
	while ((s = TAILQ_FIRST(&ev->subs)) != NULL)
		events_unsubscribe(ev, s);
	jobs_unobserve(ev->jobs, &ev->observer);
	free(ev);
}

struct subscriber *
events_subscribe(struct events *ev, struct client *c, struct filter *f, bool see_all, uid_t uid)
{
	struct subscriber *s = xcalloc(1, sizeof *s);

	s->client = c;
	s->filter = *f;
	memset(f, 0, sizeof *f);
	s->see_all = see_all;
	s->uid = uid;
	s->active = true;
	TAILQ_INSERT_TAIL(&ev->subs, s, entry);
	ev->nsubs++;
	server_client_hold(c);
	return s;
}

void
events_unsubscribe(struct events *ev, struct subscriber *s)
{
	if (s->active) {
		TAILQ_REMOVE(&ev->subs, s, entry);
		ev->nsubs--;
		server_client_release(s->client);
	}
	filter_free(&s->filter);
	free(s);
}

size_t
events_subscribers(const struct events *ev)
{
	return ev->nsubs;
}
