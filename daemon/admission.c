#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <taskd/protocol.h>

#include "admission.h"
#include "clock.h"
#include "log.h"
#include "proto.h"
#include "stats.h"
#include "xmalloc.h"

/*
 * Of limits.max_clients, the last RESERVE_MAX (a quarter when the limit is
 * small) are for root and taskd's own user only: whoever else fills the
 * socket, they can still get in to see and act.
 */
#define RESERVE_MAX 16

/* Refused connections are logged at most once per this many seconds. */
#define REFUSED_LOG_INTERVAL 10.0

bool
privileged_uid(uid_t uid)
{
	static uid_t self = (uid_t)-1;

	if (self == (uid_t)-1)
		self = getuid(); /* never changes: asked once */
	return uid == 0 || uid == self;
}

/*
 * The connections of an unprivileged user: its slot in a->users (made on
 * first use when add), or NULL. The table holds the users connected now:
 * a few, so a scan is cheap.
 */
static struct user_count *
user_slot(struct admission *a, uid_t uid, bool add)
{
	size_t i;

	for (i = 0; i < a->nusers; i++)
		if (a->users[i].uid == uid)
			return &a->users[i];
	if (!add)
		return NULL;
	if (a->nusers == a->users_cap) {
		a->users_cap = a->users_cap == 0 ? 8 : a->users_cap * 2;
		a->users = xreallocarray(a->users, a->users_cap, sizeof *a->users);
	}
	a->users[a->nusers].uid = uid;
	a->users[a->nusers].n = 0;
	return &a->users[a->nusers++];
}

void
admission_taken(struct admission *a, uid_t uid)
{
	user_slot(a, uid, true)->n++;
}

void
admission_gone(struct admission *a, uid_t uid)
{
	struct user_count *u = user_slot(a, uid, false);

	/* Its last connection: the slot goes (the last one takes its place). */
	if (u != NULL && --u->n == 0)
		*u = a->users[--a->nusers];
}

const char *
admission_refusal(struct admission *a, int nclients, uid_t uid, bool privileged, char *msg,
		  size_t len)
{
	int reserve = a->max_clients / 4 < RESERVE_MAX ? a->max_clients / 4 : RESERVE_MAX;
	struct user_count *mine;

	if (nclients >= a->max_clients) {
		snprintf(msg, len, "taskd has %d connections, its limit (limits.max_clients): "
			 "try again later", nclients);
		return msg;
	}
	if (privileged)
		return NULL;
	if (nclients >= a->max_clients - reserve) {
		snprintf(msg, len, "taskd has %d connections: the other %d of limits.max_clients "
			 "are kept for root and taskd's own user; try again later", nclients,
			 reserve);
		return msg;
	}
	mine = user_slot(a, uid, false);
	if (a->max_per_user > 0 && mine != NULL && mine->n >= a->max_per_user) {
		snprintf(msg, len, "uid %u has %d connections open, its limit "
			 "(limits.max_clients_per_user): close some first", (unsigned)uid, mine->n);
		return msg;
	}
	return NULL;
}

/*
 * Say why and close at once: a refused client is told, never left hanging
 * in the listen backlog, and holds no descriptor. The line fits in the
 * empty socket buffer of a new connection, so the write does not block.
 */
void
admission_refuse(struct admission *a, int fd, uid_t uid, const char *why)
{
	double now = clock_now(CLOCK_MONOTONIC);
	char *line;
	size_t len;

	STATS_INC(connections_refused);
	line = proto_fail(NULL, TASKD_ERR_TOO_MANY_CONNECTIONS, why, &len);
	if (send(fd, line, len, MSG_NOSIGNAL | MSG_DONTWAIT) == -1)
		log_debug("refused connection (uid %u): %s", (unsigned)uid, strerror(errno));
	free(line);
	close(fd);
	if (now - a->refused_logged_at < REFUSED_LOG_INTERVAL) {
		a->refused_unlogged++;
		return;
	}
	if (a->refused_unlogged > 0)
		log_warnx("refused a connection from uid %u: %s (and %lu more refused since the "
			  "last such message)", (unsigned)uid, why, a->refused_unlogged);
	else
		log_warnx("refused a connection from uid %u: %s", (unsigned)uid, why);
	a->refused_logged_at = now;
	a->refused_unlogged = 0;
}

void
admission_free(struct admission *a)
{
	free(a->users);
	a->users = NULL;
	a->nusers = a->users_cap = 0;
}
