/*
 * libtaskd: blocking client for the taskd control socket (see client.h).
 *
 * One connection is one AF_UNIX stream socket carrying JSON Lines both
 * ways. Requests get a per-client integer "id" (1, 2, ...) unless the
 * caller set one. Responses are read through a buffer and split on '\n'.
 * taskd_call() waits for the response carrying its own id; responses to
 * other requests that arrive in the meantime are parked in a FIFO that
 * taskd_recv() drains first, so pipelined callers lose nothing. Event
 * lines of a subscribed connection ({"event":...}, no "ok") are never taken
 * as answers: taskd_recv returns them in order with the rest.
 *
 * taskd may close a connection with a last line saying why (an error with a
 * null id: too_many_connections when it takes no more, idle_timeout after a
 * long silence); taskd_call returns that line as the answer, even when the
 * request could not be sent any more.
 *
 * Library code never prints and never exits: every failure is reported
 * with a NULL or -1 return and errno.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <taskd/client.h>

#define READ_CHUNK 65536
/* A line longer than this is not a response but a broken peer. */
#define MAX_LINE (256u * 1024 * 1024)

struct taskd_client {
	int fd;
	int64_t next_id;
	char *buf; /* received bytes not consumed yet: buf[start..len) */
	size_t start;
	size_t len;
	size_t cap;
	json_t *parked; /* array: responses read by taskd_call for others */
};

char *
taskd_socket_path(const char *override)
{
	const char *env, *dir;
	struct stat st;
	char *path;

	if (override != NULL)
		return strdup(override);
	env = getenv("TASKD_SOCKET");
	if (env != NULL && *env != '\0')
		return strdup(env);
	dir = getenv("XDG_RUNTIME_DIR");
	if (dir != NULL && *dir != '\0') {
		if (asprintf(&path, "%s/%s", dir, TASKD_SOCKET_NAME) == -1)
			return NULL;
		if (stat(path, &st) == 0)
			return path;
		free(path);
	}
	return strdup(TASKD_SYSTEM_SOCKET);
}

static int
connect_retry(int fd, const struct sockaddr_un *sun)
{
	while (connect(fd, (const struct sockaddr *)sun, sizeof *sun) == -1) {
		if (errno == EISCONN)
			return 0;
		if (errno != EINTR)
			return -1;
	}
	return 0;
}

struct taskd_client *
taskd_connect(const char *path)
{
	struct sockaddr_un sun;
	struct taskd_client *c;
	int fd, saved;

	memset(&sun, 0, sizeof sun);
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun.sun_path) {
		errno = ENAMETOOLONG;
		return NULL;
	}
	strcpy(sun.sun_path, path);

	c = calloc(1, sizeof *c);
	if (c == NULL)
		return NULL;
	c->next_id = 1;
	c->parked = json_array();
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->parked == NULL || fd == -1 || connect_retry(fd, &sun) == -1) {
		saved = c->parked == NULL ? ENOMEM : errno;
		if (fd != -1)
			close(fd);
		json_decref(c->parked);
		free(c);
		errno = saved;
		return NULL;
	}
	c->fd = fd;
	return c;
}

void
taskd_close(struct taskd_client *c)
{
	int saved = errno;

	if (c == NULL)
		return;
	close(c->fd);
	json_decref(c->parked);
	free(c->buf);
	free(c);
	errno = saved;
}

int
taskd_fd(const struct taskd_client *c)
{
	return c->fd;
}

json_t *
taskd_request(const char *op)
{
	return json_pack("{s:i, s:s}", "v", TASKD_PROTO_VERSION, "op", op);
}

static int
write_all(int fd, const char *p, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Fill in "v" and "id"; returns the id (0 when the caller chose one that is not a positive
 * integer). */
static int64_t
stamp_request(struct taskd_client *c, json_t *req)
{
	json_t *id;

	if (json_object_get(req, "v") == NULL &&
	    json_object_set_new(req, "v", json_integer(TASKD_PROTO_VERSION)) == -1)
		return -1;
	id = json_object_get(req, "id");
	if (id != NULL)
		return json_is_integer(id) && json_integer_value(id) > 0 ? json_integer_value(id)
		                                                         : 0;
	if (json_object_set_new(req, "id", json_integer(c->next_id)) == -1)
		return -1;
	return c->next_id++;
}

int64_t
taskd_send(struct taskd_client *c, json_t *req)
{
	int64_t id;
	char *line, *tmp;
	size_t len;
	int rc, saved;

	if (!json_is_object(req)) {
		json_decref(req);
		errno = EINVAL;
		return -1;
	}
	id = stamp_request(c, req);
	line = id == -1 ? NULL : json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (line == NULL) {
		errno = id == -1 ? ENOMEM : EINVAL;
		return -1;
	}
	len = strlen(line);
	tmp = realloc(line, len + 2);
	if (tmp == NULL) {
		free(line);
		errno = ENOMEM;
		return -1;
	}
	line = tmp;
	line[len] = '\n';
	rc = write_all(c->fd, line, len + 1);
	saved = errno;
	free(line);
	errno = saved;
	return rc == -1 ? -1 : id;
}

/* Make room for at least READ_CHUNK more bytes at the end of the buffer. */
static int
buf_reserve(struct taskd_client *c)
{
	size_t cap;
	char *p;

	if (c->start > 0) {
		memmove(c->buf, c->buf + c->start, c->len - c->start);
		c->len -= c->start;
		c->start = 0;
	}
	if (c->cap - c->len >= READ_CHUNK)
		return 0;
	if (c->len >= MAX_LINE) {
		errno = EMSGSIZE;
		return -1;
	}
	cap = c->cap == 0 ? READ_CHUNK : c->cap * 2;
	while (cap - c->len < READ_CHUNK)
		cap *= 2;
	p = realloc(c->buf, cap);
	if (p == NULL) {
		errno = ENOMEM;
		return -1;
	}
	c->buf = p;
	c->cap = cap;
	return 0;
}

static int
buf_fill(struct taskd_client *c)
{
	ssize_t n;

	if (buf_reserve(c) == -1)
		return -1;
	do
		n = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
	while (n == -1 && errno == EINTR);
	if (n == -1)
		return -1;
	if (n == 0) {
		errno = ECONNRESET;
		return -1;
	}
	c->len += (size_t)n;
	return 0;
}

/* Next non-empty line from the socket, parsed; NULL with errno. */
static json_t *
read_response(struct taskd_client *c)
{
	char *nl, *line;
	size_t linelen, searched = 0;
	json_t *resp;

	for (;;) {
		line = c->buf + c->start;
		nl = c->len > c->start + searched
		         ? memchr(line + searched, '\n', c->len - c->start - searched)
		         : NULL;
		if (nl == NULL) {
			searched = c->len - c->start;
			if (buf_fill(c) == -1)
				return NULL;
			continue;
		}
		linelen = (size_t)(nl - line);
		c->start += linelen + 1;
		searched = 0;
		if (linelen == 0 || (linelen == 1 && line[0] == '\r'))
			continue;
		/* A string may hold NUL (U+0000): json_string_length() tells its real length. */
		resp = json_loadb(line, linelen, JSON_ALLOW_NUL, NULL);
		if (!json_is_object(resp)) {
			json_decref(resp);
			errno = EBADMSG;
			return NULL;
		}
		return resp;
	}
}

int
taskd_pending(const struct taskd_client *c)
{
	return json_array_size(c->parked) > 0 ||
	       (c->len > c->start && memchr(c->buf + c->start, '\n', c->len - c->start) != NULL);
}

json_t *
taskd_recv(struct taskd_client *c)
{
	json_t *resp;

	if (json_array_size(c->parked) > 0) {
		resp = json_incref(json_array_get(c->parked, 0));
		json_array_remove(c->parked, 0);
		return resp;
	}
	return read_response(c);
}

/*
 * A response is ours when it carries our id. A response with a null id
 * (the daemon could not read the request, e.g. frame_too_large) is taken
 * as ours too: otherwise a call whose request was rejected unread would
 * wait forever.
 */
static int
is_answer(const json_t *resp, const json_t *id)
{
	const json_t *rid = json_object_get(resp, "id");

	/* An event line of a subscribed connection answers nothing. */
	if (json_object_get(resp, "event") != NULL && json_object_get(resp, "ok") == NULL)
		return 0;
	return rid == NULL || json_is_null(rid) || json_equal(rid, id);
}

json_t *
taskd_call(struct taskd_client *c, json_t *req)
{
	json_t *id, *resp;
	int64_t n;
	int closed;

	n = taskd_send(c, json_incref(req));
	/*
	 * taskd closed the connection (EPIPE): it may have said why first
	 * (too_many_connections, idle_timeout, with a null id); that line,
	 * still to be read, is the answer.
	 */
	closed = n == -1 && (errno == EPIPE || errno == ECONNRESET);
	id = n == -1 && !closed ? NULL : json_incref(json_object_get(req, "id"));
	json_decref(req);
	if (id == NULL)
		return NULL;
	for (;;) {
		resp = read_response(c);
		if (resp == NULL || is_answer(resp, id))
			break;
		if (json_array_append_new(c->parked, resp) == -1) {
			errno = ENOMEM;
			resp = NULL;
			break;
		}
	}
	json_decref(id);
	return resp;
}

int
taskd_response_ok(const json_t *resp)
{
	return json_is_true(json_object_get(resp, "ok"));
}

json_t *
taskd_response_result(const json_t *resp)
{
	return json_object_get(resp, "result");
}

const char *
taskd_response_error_code(const json_t *resp)
{
	return json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
}

const char *
taskd_response_error_message(const json_t *resp)
{
	return json_string_value(json_object_get(json_object_get(resp, "error"), "message"));
}
