#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <taskd/protocol.h>

#include "admission.h"
#include "clock.h"
#include "listen.h"
#include "log.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "xmalloc.h"

/* Stop reading from a client whose unread responses exceed this. */
#define OUTPUT_HIGH (4u << 20)

/* Bytes read from a client per read(2) (what a bufferevent reads at most, too). */
#define READ_CHUNK 16384

struct client {
	struct server *srv;
	int fd;
	struct event *rev;        /* readable (persistent; deleted while paused) */
	struct event *wev;        /* writable (added only while output is blocked) */
	struct evbuffer *in, *out;
	bool reading;             /* rev is added */
	bool queued;              /* on srv->flushq */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	bool privileged;  /* root or taskd's own user: no per-user limit, the reserve */
	bool discarding;  /* inside an oversized frame: drop until newline */
	bool closing;     /* peer finished sending: close once answered and drained */
	double partial_since; /* CLOCK_MONOTONIC when a partial frame started waiting, 0 none */
	int holds;        /* requests still to be answered (server_client_hold) */
	size_t unoffered; /* bytes queued since the last write attempt */
	double stalled_since; /* CLOCK_MONOTONIC since when the socket took none of its output, 0 */
	double active_at; /* CLOCK_MONOTONIC of its last request bytes or answer written */
	void *data;
	TAILQ_ENTRY(client) entry;
	TAILQ_ENTRY(client) fentry; /* srv->flushq */
};

struct server {
	struct event_base *base;
	struct evconnlistener *listener;
	char *path;
	bool owned;       /* we created the socket file (not socket activation) */
	dev_t dev;
	ino_t ino;
	size_t max_frame;
	size_t input_room;     /* lines may be this much longer (server_set_input_room) */
	double stall_timeout;
	double idle_timeout;     /* limits.idle_timeout, 0 = never */
	struct event *tick_ev;   /* 1 s: closes clients stalled inside a frame, or idle */
	int nclients;
	struct admission admission; /* who may connect: limits, the reserve, refusals */
	struct event *retry;     /* re-enable accepting after EMFILE/ENFILE */
	struct event *reaper;    /* finds half-closed clients whose peer has gone entirely */
	server_frame_fn frame;
	server_close_fn close;
	void *arg;
	TAILQ_HEAD(, client) clients;
	TAILQ_HEAD(, client) flushq; /* clients with answers queued this loop iteration */
	struct event *flush_ev;      /* active while flushq is not empty */
};

static void server_accept_cb(struct evconnlistener *, evutil_socket_t, struct sockaddr *, int,
			     void *);
static void server_accept_error_cb(struct evconnlistener *, void *);
static void server_retry_cb(evutil_socket_t, short, void *);
static void server_reaper_cb(evutil_socket_t, short, void *);
static void server_flush_cb(evutil_socket_t, short, void *);
static void server_tick_cb(evutil_socket_t, short, void *);
static const struct timeval one_second = { 1, 0 };

/* Serve on a listening socket; owned: we made the file and remove it at the end. */
static struct server *
serve_fd(struct event_base *base, int fd, const char *path, bool owned, char **cause)
{
	struct server *srv = xcalloc(1, sizeof *srv);
	struct stat st;

	srv->base = base;
	srv->path = xstrdup(path);
	srv->owned = owned;
	if (owned && stat(path, &st) == 0) {
		srv->dev = st.st_dev;
		srv->ino = st.st_ino;
	}
	srv->max_frame = 1 << 20;
	srv->admission.max_clients = 1024;
	srv->admission.max_per_user = 256;
	srv->idle_timeout = 300;
	TAILQ_INIT(&srv->clients);
	TAILQ_INIT(&srv->flushq);
	srv->listener = evconnlistener_new(base, server_accept_cb, srv,
					   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 511, fd);
	if (srv->listener == NULL) {
		xasprintf(cause, "listen %s: %s", path, strerror(errno));
		free(srv->path);
		free(srv);
		return NULL;
	}
	evconnlistener_set_error_cb(srv->listener, server_accept_error_cb);
	srv->retry = evtimer_new(base, server_retry_cb, srv);
	srv->reaper = event_new(base, -1, EV_PERSIST, server_reaper_cb, srv);
	srv->tick_ev = event_new(base, -1, EV_PERSIST, server_tick_cb, srv);
	srv->flush_ev = event_new(base, -1, 0, server_flush_cb, srv);
	if (srv->reaper == NULL || srv->tick_ev == NULL || srv->flush_ev == NULL ||
	    event_add(srv->tick_ev, &one_second))
		fatalx("cannot create the server's timers");
	return srv;
}

struct server *
server_new(struct event_base *base, const char *path, mode_t mode, char **cause)
{
	struct server *srv;
	int fd;

	if ((fd = listen_bind(path, mode, cause)) == -1)
		return NULL;
	srv = serve_fd(base, fd, path, true, cause);
	if (srv == NULL) {
		close(fd);
		unlink(path);
	}
	return srv;
}

struct server *
server_adopt(struct event_base *base, int fd, char **cause)
{
	struct server *srv;
	char *path;

	if (listen_adopt(fd, &path, cause) == -1)
		return NULL;
	srv = serve_fd(base, fd, path, false, cause);
	free(path);
	return srv;
}

const char *
server_path(const struct server *srv)
{
	return srv->path;
}

void
server_set_handlers(struct server *srv, server_frame_fn frame, server_close_fn close_fn,
		    void *arg)
{
	srv->frame = frame;
	srv->close = close_fn;
	srv->arg = arg;
}

void
server_set_limits(struct server *srv, size_t max_frame, int max_clients, double stall_timeout)
{
	srv->max_frame = max_frame;
	srv->admission.max_clients = max_clients;
	srv->stall_timeout = stall_timeout;
}

void
server_set_input_room(struct server *srv, size_t room)
{
	srv->input_room = room;
}

/* The longest line read whole. */
static size_t
max_line(const struct server *srv)
{
	return srv->max_frame + srv->input_room;
}

void
server_set_client_limits(struct server *srv, int max_per_user, double idle_timeout)
{
	srv->admission.max_per_user = max_per_user;
	srv->idle_timeout = idle_timeout;
}

int
server_nclients(const struct server *srv)
{
	return srv->nclients;
}

static void
unlink_socket(struct server *srv)
{
	struct stat st;

	/* Only our own socket: another taskd may have replaced it; systemd owns its own. */
	if (srv->owned && stat(srv->path, &st) == 0 && st.st_dev == srv->dev && st.st_ino == srv->ino)
		unlink(srv->path);
}

void
server_stop_listening(struct server *srv)
{
	if (srv->listener == NULL)
		return;
	evconnlistener_free(srv->listener);
	srv->listener = NULL;
	unlink_socket(srv);
}

static void
client_free(struct client *c)
{
	struct server *srv = c->srv;

	if (srv->close != NULL)
		srv->close(c, srv->arg);
	TAILQ_REMOVE(&srv->clients, c, entry);
	if (c->queued)
		TAILQ_REMOVE(&srv->flushq, c, fentry);
	event_free(c->rev);
	event_free(c->wev);
	evbuffer_free(c->in);
	evbuffer_free(c->out);
	close(c->fd);
	if (!c->privileged)
		admission_gone(&srv->admission, c->uid);
	free(c);
	srv->nclients--;
}

static void
set_reading(struct client *c, bool on)
{
	if (on == c->reading)
		return;
	c->reading = on;
	if (on)
		event_add(c->rev, NULL);
	else
		event_del(c->rev);
}

/* Send what is queued, waiting at most FLUSH_MS for a slow reader (at shutdown). */
#define FLUSH_MS 200

static void
flush_now(struct client *c)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };
	int waited = 0;

	while (evbuffer_get_length(c->out) > 0 && waited < FLUSH_MS) {
		if (evbuffer_write(c->out, c->fd) > 0)
			continue;
		if (errno != EAGAIN && errno != EINTR)
			break;
		poll(&pfd, 1, 10);
		waited += 10;
	}
	if (evbuffer_get_length(c->out) > 0)
		log_debug("client did not take its last %zu bytes of answers",
			  evbuffer_get_length(c->out));
}

void
server_free(struct server *srv)
{
	struct client *c;

	if (srv == NULL)
		return;
	server_stop_listening(srv);
	event_free(srv->retry);
	event_free(srv->reaper);
	event_free(srv->tick_ev);
	event_free(srv->flush_ev);
	while ((c = TAILQ_FIRST(&srv->clients)) != NULL) {
		/* Last answers (e.g. to shutdown) go out if the socket takes them. */
		flush_now(c);
		client_free(c);
	}
	admission_free(&srv->admission);
	free(srv->path);
	free(srv);
}

/* Written once this loop iteration's callbacks are done: answers share a write. */
static void
queue_flush(struct client *c)
{
	struct server *srv = c->srv;

	if (c->queued)
		return;
	c->queued = true;
	TAILQ_INSERT_TAIL(&srv->flushq, c, fentry);
	if (!event_pending(srv->flush_ev, EV_TIMEOUT, NULL))
		event_active(srv->flush_ev, EV_TIMEOUT, 0);
}

void
server_client_send(struct client *c, const char *data, size_t len)
{
	evbuffer_add(c->out, data, len);
	c->unoffered += len;
	if (evbuffer_get_length(c->out) > OUTPUT_HIGH)
		set_reading(c, false); /* back-pressure: resumes once the output drains */
	queue_flush(c);
}

size_t
server_client_backlog(const struct client *c)
{
	size_t len = evbuffer_get_length(c->out);

	return len > c->unoffered ? len - c->unoffered : 0;
}

double
server_client_stalled_for(const struct client *c, double now)
{
	return c->stalled_since > 0 ? now - c->stalled_since : 0;
}

void
server_client_close(struct client *c)
{
	const struct timeval tick = { 1, 0 };

	c->closing = true;
	set_reading(c, false);
	/* The flush frees it once its output is written (now, if there is none)... */
	queue_flush(c);
	/* ...or the reaper, if the peer has gone. */
	if (!evtimer_pending(c->srv->reaper, NULL))
		evtimer_add(c->srv->reaper, &tick);
}

void
server_client_hold(struct client *c)
{
	c->holds++;
}

void
server_client_release(struct client *c)
{
	c->holds--;
	/* Idle from the answer on, not from the request. */
	c->active_at = clock_now(CLOCK_MONOTONIC);
	/* The answer just queued goes out, then client_written closes. */
}

void
server_client_set_data(struct client *c, void *data)
{
	c->data = data;
}

void *
server_client_data(const struct client *c)
{
	return c->data;
}

uid_t
server_client_uid(const struct client *c)
{
	return c->uid;
}

size_t
server_client_max_frame(const struct client *c)
{
	return c->srv->max_frame;
}

gid_t
server_client_gid(const struct client *c)
{
	return c->gid;
}

static void
frame_too_large(struct client *c)
{
	char msg[128], *line;
	size_t len;

	STATS_INC(frames_too_large);
	snprintf(msg, sizeof msg, "frame exceeds limits.max_frame (%zu bytes)", c->srv->max_frame);
	line = proto_fail(NULL, TASKD_ERR_FRAME_TOO_LARGE, msg, &len);
	server_client_send(c, line, len);
	free(line);
}

/* Handle every complete line in the input buffer. */
static void
read_frames(struct client *c)
{
	struct evbuffer *in = c->in;
	struct evbuffer_ptr eol;
	size_t eol_len, n;
	char *line;

	for (;;) {
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_LF);
		if (eol.pos == -1) {
			n = evbuffer_get_length(in);
			if (c->discarding) {
				evbuffer_drain(in, n);
			} else if (n >= max_line(c->srv)) {
				frame_too_large(c);
				evbuffer_drain(in, n);
				c->discarding = true;
			}
			/* Bytes without a newline yet: the stall clock runs. */
			if (n > 0 && c->partial_since == 0)
				c->partial_since = clock_now(CLOCK_MONOTONIC);
			return;
		}
		n = (size_t)eol.pos;
		c->partial_since = 0;
		if (c->discarding || n + 1 > max_line(c->srv)) {
			if (!c->discarding)
				frame_too_large(c);
			c->discarding = false;
			evbuffer_drain(in, n + 1);
			continue;
		}
		line = (char *)evbuffer_pullup(in, (ssize_t)n + 1);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		if (n > 0)
			c->srv->frame(c, line, n, c->srv->arg);
		evbuffer_drain(in, (size_t)eol.pos + 1);
		if (!c->reading)
			return; /* back-pressure: finish the rest once output drains */
	}
}

/* The peer will send no more (EOF) or the connection failed (error). */
static void
client_eof(struct client *c, bool error)
{
	const struct timeval tick = { 1, 0 };
	size_t n;

	/* A last request without its newline is still a request. */
	n = evbuffer_get_length(c->in);
	if (!error && n > 0 && !c->discarding && n < max_line(c->srv)) {
		c->srv->frame(c, (const char *)evbuffer_pullup(c->in, -1), n, c->srv->arg);
		evbuffer_drain(c->in, n);
	}
	/* Half-closed (the peer is done sending): answer what is in flight first. */
	if (!error && (c->holds > 0 || evbuffer_get_length(c->out) > 0)) {
		c->closing = true;
		set_reading(c, false);
		if (!evtimer_pending(c->srv->reaper, NULL))
			evtimer_add(c->srv->reaper, &tick);
		return;
	}
	client_free(c);
}

static void
server_client_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct client *c = arg;
	struct evbuffer_iovec v;
	ssize_t n;

	(void)what;
	if (evbuffer_reserve_space(c->in, READ_CHUNK, &v, 1) < 1)
		fatalx("out of memory");
	n = read(fd, v.iov_base, v.iov_len < READ_CHUNK ? v.iov_len : READ_CHUNK);
	if (n > 0) {
		v.iov_len = (size_t)n;
		evbuffer_commit_space(c->in, &v, 1);
		c->active_at = clock_now(CLOCK_MONOTONIC);
		read_frames(c);
	} else if (n == 0) {
		client_eof(c, false);
	} else if (errno != EAGAIN && errno != EINTR) {
		client_eof(c, true);
	}
}

/* Output fully written: close a half-closed client once answered, or resume reading. */
static void
client_written(struct client *c)
{
	c->active_at = clock_now(CLOCK_MONOTONIC);
	if (c->closing) {
		if (c->holds == 0)
			client_free(c);
		return;
	}
	if (!c->reading) {
		set_reading(c, true);
		read_frames(c);
	}
}

/* Write what the socket takes; false if the client was freed. */
static bool
client_write(struct client *c)
{
	bool wrote = false;
	int n;

	c->unoffered = 0;
	while (evbuffer_get_length(c->out) > 0) {
		n = evbuffer_write(c->out, c->fd);
		if (n > 0) {
			wrote = true;
			continue;
		}
		if (n == -1 && (errno == EAGAIN || errno == EINTR)) {
			if (wrote || c->stalled_since == 0)
				c->stalled_since = clock_now(CLOCK_MONOTONIC);
			if (!event_pending(c->wev, EV_WRITE, NULL))
				event_add(c->wev, NULL);
			return true;
		}
		/* The peer is gone (EPIPE, ECONNRESET): nobody reads the answers. */
		client_free(c);
		return false;
	}
	c->stalled_since = 0;
	if (event_pending(c->wev, EV_WRITE, NULL))
		event_del(c->wev);
	client_written(c);
	return true;
}

static void
server_client_write_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	client_write(arg);
}

/* Once per loop iteration: write every client's queued answers in one go each. */
static void
server_flush_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct client *c;

	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&srv->flushq)) != NULL) {
		TAILQ_REMOVE(&srv->flushq, c, fentry);
		c->queued = false;
		client_write(c);
	}
}

/*
 * A client on fd acting as uid/gid, or NULL when admission refuses it (it
 * was told why, and fd closed).
 */
static struct client *
add_client(struct server *srv, int fd, uid_t uid, gid_t gid, pid_t pid)
{
	bool privileged = privileged_uid(uid);
	struct client *c;
	const char *why;
	char msg[256];

	if ((why = admission_refusal(&srv->admission, srv->nclients, uid, privileged, msg,
				     sizeof msg)) != NULL) {
		admission_refuse(&srv->admission, fd, uid, why);
		return NULL;
	}
	c = xcalloc(1, sizeof *c);
	c->srv = srv;
	c->uid = uid;
	c->gid = gid;
	c->pid = pid;
	c->privileged = privileged;
	if (!privileged)
		admission_taken(&srv->admission, uid);
	c->active_at = clock_now(CLOCK_MONOTONIC);
	c->fd = fd;
	c->in = evbuffer_new();
	c->out = evbuffer_new();
	c->rev = event_new(srv->base, fd, EV_READ | EV_PERSIST, server_client_read_cb, c);
	c->wev = event_new(srv->base, fd, EV_WRITE | EV_PERSIST, server_client_write_cb, c);
	if (c->in == NULL || c->out == NULL || c->rev == NULL || c->wev == NULL)
		fatalx("cannot set up a client connection: out of memory");
	set_reading(c, true);
	TAILQ_INSERT_TAIL(&srv->clients, c, entry);
	srv->nclients++;
	STATS_INC(connections);
	return c;
}

static void
server_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		 void *arg)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1) {
		log_warn("SO_PEERCRED");
		close(fd);
		return;
	}
	if (add_client(arg, fd, cred.uid, cred.gid, cred.pid) != NULL)
		log_debug("client connected (uid %u pid %d)", (unsigned)cred.uid, (int)cred.pid);
}

int
server_add_local(struct server *srv, uid_t uid, gid_t gid)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
		return -1;
	if (add_client(srv, sv[0], uid, gid, getpid()) == NULL) {
		close(sv[1]);
		errno = EMFILE; /* a connection limit: like running out of descriptors */
		return -1;
	}
	return sv[1];
}

/*
 * A half-closed client waiting for answers holds a slot; once its peer has
 * closed entirely (POLLHUP on a unix socket), nobody will read them.
 */
static void
server_reaper_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct client *c, *next;
	struct pollfd pfd;
	bool any = false;

	for (c = TAILQ_FIRST(&srv->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (!c->closing)
			continue;
		pfd.fd = c->fd;
		pfd.events = 0;
		if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLHUP | POLLERR))) {
			client_free(c);
			continue;
		}
		any = true;
	}
	if (!any)
		evtimer_del(srv->reaper);
}

/* Tell c why (an error line with a null id), then close it now. */
static void
close_with(struct client *c, const char *code, const char *msg)
{
	size_t len;
	char *line = proto_fail(NULL, code, msg, &len);

	server_client_send(c, line, len);
	free(line);
	flush_now(c);
	client_free(c);
}

/*
 * Idle: nothing asked and nothing owed (no request in flight, no wait, no
 * subscription: those hold the client), no partial request, and for
 * idle_timeout either no traffic at all or an answer the peer does not read.
 */
static bool
is_idle(const struct client *c, double now, double timeout)
{
	if (c->closing || c->holds > 0 || c->partial_since != 0)
		return false;
	if (evbuffer_get_length(c->out) > 0)
		return server_client_stalled_for(c, now) >= timeout;
	return now - c->active_at >= timeout;
}

/*
 * Once a second. A client that sent part of a request and then nothing for
 * stall_timeout holds a slot and a buffer for nothing: answer frame_timeout
 * and close. One idle for idle_timeout holds a slot of its user's
 * (limits.max_clients_per_user): idle_timeout, and close; nothing it asked
 * is lost, as it has nothing in flight.
 */
static void
server_tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct client *c, *next;
	double now = clock_now(CLOCK_MONOTONIC);
	char msg[128];

	for (c = TAILQ_FIRST(&srv->clients); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (srv->stall_timeout > 0 && !c->closing && c->partial_since != 0 &&
		    now - c->partial_since >= srv->stall_timeout) {
			snprintf(msg, sizeof msg, "no end of request within limits.stall_timeout "
				 "(%g s)", srv->stall_timeout);
			log_info("closing a client stalled inside a request (uid %u)",
				 (unsigned)c->uid);
			close_with(c, TASKD_ERR_FRAME_TIMEOUT, msg);
		} else if (srv->idle_timeout > 0 && is_idle(c, now, srv->idle_timeout)) {
			STATS_INC(idle_connections_closed);
			if (evbuffer_get_length(c->out) > 0) {
				/* It reads nothing: no last word, and no waiting for it to. */
				log_info("closing a client that read none of its answers for "
					 "limits.idle_timeout (uid %u pid %d)", (unsigned)c->uid,
					 (int)c->pid);
				client_free(c);
				continue;
			}
			snprintf(msg, sizeof msg, "connection idle for limits.idle_timeout (%g s): "
				 "closed", srv->idle_timeout);
			log_debug("closing an idle client (uid %u pid %d)", (unsigned)c->uid,
				  (int)c->pid);
			close_with(c, TASKD_ERR_IDLE_TIMEOUT, msg);
		}
	}
}

/* Out of descriptors: stop accepting for a moment instead of spinning. */
static void
server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct server *srv = arg;
	const struct timeval tv = { 0, 200000 };

	log_warn("accept");
	evconnlistener_disable(l);
	evtimer_add(srv->retry, &tv);
}

static void
server_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	if (srv->listener != NULL)
		evconnlistener_enable(srv->listener);
}
