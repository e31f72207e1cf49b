/*
 * Who may connect (doc/protocol.md "Connections"), for server.c: the
 * trusted users, limits.max_clients with a reserve for them, and
 * limits.max_clients_per_user for everyone else; a refused connection is
 * told why in one line and closed at once, and refusals are logged at
 * most every REFUSED_LOG_INTERVAL seconds. Loop thread only.
 */
#ifndef TASKD_ADMISSION_H
#define TASKD_ADMISSION_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct admission {
	int max_clients;         /* limits.max_clients */
	int max_per_user;        /* limits.max_clients_per_user, 0 = none */
	struct user_count {
		uid_t uid;
		int n;
	} *users;                /* connections per unprivileged user (those with n > 0) */
	size_t nusers, users_cap;
	double refused_logged_at;
	unsigned long refused_unlogged;
};

/*
 * The one rule of who the daemon trusts: root and taskd's own user may see
 * and act on every job and on the daemon (shutdown, reload, class pauses),
 * and have no per-user connection limit. Everyone else: their own jobs.
 */
bool privileged_uid(uid_t uid);

/* Why a connection of uid cannot be taken with nclients open (into msg), or NULL. */
const char *admission_refusal(struct admission *a, int nclients, uid_t uid, bool privileged,
			      char *msg, size_t len);
/* Tell the peer on fd why (an error line with a null id), close fd, log (rate-limited). */
void admission_refuse(struct admission *a, int fd, uid_t uid, const char *why);
/* An unprivileged user's connection was taken / is gone. */
void admission_taken(struct admission *a, uid_t uid);
void admission_gone(struct admission *a, uid_t uid);
void admission_free(struct admission *a);

#endif
