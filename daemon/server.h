/*
 * The control socket: listening (with stale-socket detection), client
 * connections (limited in number overall and per user, closed when idle),
 * and JSON Lines framing with limits.max_frame. Each complete line goes to
 * the frame handler; responses are queued with server_client_send. Loop
 * thread only.
 */
#ifndef TASKD_SERVER_H
#define TASKD_SERVER_H

#include <stddef.h>
#include <sys/types.h>

struct event_base;
struct server;
struct client;

typedef void (*server_frame_fn)(struct client *c, const char *line, size_t len, void *arg);
typedef void (*server_close_fn)(struct client *c, void *arg);

/*
 * Bind and listen on path with mode. An existing socket file is replaced
 * only if nothing answers on it. On error returns NULL and sets *cause.
 */
struct server *server_new(struct event_base *base, const char *path, mode_t mode, char **cause);
/* Serve on an already listening socket (socket activation); its file is never removed. */
struct server *server_adopt(struct event_base *base, int fd, char **cause);
const char *server_path(const struct server *srv);
void server_set_handlers(struct server *srv, server_frame_fn frame, server_close_fn close,
			 void *arg);
void server_set_limits(struct server *srv, size_t max_frame, int max_clients,
		       double stall_timeout);
/*
 * Room beyond max_frame a line may have (the base64 of limits.max_input:
 * a submit's "input"); the frame callback checks that the rest of such a
 * line fits in max_frame.
 */
void server_set_input_room(struct server *srv, size_t room);
/*
 * Connections per user (0: no limit) and the idle time after which a
 * connection with nothing in flight is closed (0: never). Root and taskd's
 * own user have no per-user limit, and the last few of max_clients are kept
 * for them. A connection over a limit is told too_many_connections and
 * closed at once; a new value applies to new connections (and idle ones).
 */
void server_set_client_limits(struct server *srv, int max_per_user, double idle_timeout);
/* Stop accepting connections and remove the socket file; clients stay. */
void server_stop_listening(struct server *srv);
/* Flush what can be flushed, close every client, free. */
void server_free(struct server *srv);
int server_nclients(const struct server *srv);

/*
 * A client from inside the daemon, acting as uid/gid (the HTTP endpoint
 * runs the read-only ops through it, so they answer exactly as on the
 * socket): one end of a socketpair is served like an accepted connection,
 * under the same limits, the other is returned (non-blocking,
 * close-on-exec); -1 with errno (EMFILE: a connection limit refused it).
 */
int server_add_local(struct server *srv, uid_t uid, gid_t gid);

void server_client_send(struct client *c, const char *data, size_t len);
/*
 * Bytes queued for c that the socket did not take when offered (what a slow
 * reader leaves behind; what was queued since the last write is not counted).
 */
size_t server_client_backlog(const struct client *c);
/*
 * Seconds (up to now, CLOCK_MONOTONIC) for which the socket has taken none
 * of c's output while some was waiting; 0 when it keeps up.
 */
double server_client_stalled_for(const struct client *c, double now);
/*
 * Close c once what is queued for it is written (never at once, so it is
 * safe inside any callback): no more requests are read from it.
 */
void server_client_close(struct client *c);
/*
 * A request that will be answered later (e.g. wait) holds the client: if
 * the peer half-closes, the connection stays until every hold is released
 * (right after the answer is sent) and the answers are written.
 */
void server_client_hold(struct client *c);
void server_client_release(struct client *c);
void server_client_set_data(struct client *c, void *data);
void *server_client_data(const struct client *c);
uid_t server_client_uid(const struct client *c);
/* limits.max_frame: the longest line c may send, and be sent. */
size_t server_client_max_frame(const struct client *c);
gid_t server_client_gid(const struct client *c);

#endif
