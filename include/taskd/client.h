/*
 * libtaskd: a small blocking client for the taskd control socket.
 *
 *	char *path = taskd_socket_path(NULL);
 *	struct taskd_client *c = taskd_connect(path);
 *	json_t *req = taskd_request("status");
 *	json_t *resp = taskd_call(c, req);   // {"id":..,"ok":true,"result":{...}}
 *
 * Requests and responses are jansson objects (see <taskd/protocol.h> and
 * doc/protocol.md). Several requests may be in flight (taskd_send many, then
 * taskd_recv); responses are matched by "id".
 */
#ifndef TASKD_CLIENT_H
#define TASKD_CLIENT_H

#include <jansson.h>
#include <stdint.h>

#include <taskd/protocol.h>

#ifdef __cplusplus
extern "C" {
#endif

struct taskd_client;

/*
 * The socket to use: override if non-NULL, else $TASKD_SOCKET, else
 * $XDG_RUNTIME_DIR/taskd.sock if it exists, else /run/taskd/taskd.sock.
 * Returns a malloc'd string.
 */
char *taskd_socket_path(const char *override);

/* Connect; NULL with errno set (ENAMETOOLONG for a path that does not fit). */
struct taskd_client *taskd_connect(const char *path);
void taskd_close(struct taskd_client *c);
int taskd_fd(const struct taskd_client *c);

/* {"v":1,"op":op} — add arguments with json_object_set_new(). */
json_t *taskd_request(const char *op);

/*
 * Send one request (adds "v" and a fresh integer "id" unless present).
 * Steals the reference. Returns the id (> 0), or -1 with errno set.
 */
int64_t taskd_send(struct taskd_client *c, json_t *req);

/*
 * 1 when taskd_recv would return without reading the socket (a line is
 * already buffered), else 0: poll taskd_fd() only when this is 0.
 */
int taskd_pending(const struct taskd_client *c);

/*
 * Next response line, blocking. NULL with errno set (ECONNRESET on EOF, EBADMSG if unparsable).
 * Strings may contain NUL (\u0000 is valid JSON): use json_string_length() where it matters.
 */
json_t *taskd_recv(struct taskd_client *c);

/*
 * Send req and wait for the response with its id (responses to other
 * requests that arrive first are kept and returned by later taskd_recv).
 * An error with a null id answers too: taskd could not read the request
 * (frame_too_large), or closed the connection saying why
 * (too_many_connections, idle_timeout: the request was not read, send it
 * again on a new connection). Steals req. NULL with errno on transport
 * failure.
 */
json_t *taskd_call(struct taskd_client *c, json_t *req);

/* Helpers for a response object. */
int taskd_response_ok(const json_t *resp);               /* 1 if "ok":true */
json_t *taskd_response_result(const json_t *resp);       /* borrowed, or NULL */
const char *taskd_response_error_code(const json_t *resp);    /* or NULL */
const char *taskd_response_error_message(const json_t *resp); /* or NULL */

#ifdef __cplusplus
}
#endif

#endif
