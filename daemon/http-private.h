/*
 * What http.c (connections, routing, setting up) and http-op.c (answers,
 * requests relayed to the ops, event streams) share: the structures of the
 * HTTP side. Nothing outside these two files includes it.
 */
#ifndef TASKD_HTTP_PRIVATE_H
#define TASKD_HTTP_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include <jansson.h>

#include "addr.h"
#include "clock.h"

struct taskd;

#define HTTP_MAX_HEADERS 8192       /* bytes of request line and headers */
#define HTTP_MAX_BODY 4096          /* a GET has none; anything bigger is refused (413) */
#define HTTP_OP_TIMEOUT 10.0        /* seconds an op may take to answer (they answer at once) */
#define HTTP_STREAM_HIGH (1u << 20) /* stop taking events for a stream whose output holds this */
#define HTTP_HEARTBEAT 15.0         /* seconds between comment lines on a quiet stream */
#define HTTP_ADOPT_BATCH 32         /* connections accepted per loop iteration */
#define HTTP_TOKEN_COOKIE "taskd_token"

/* Headers of every answer. */
#define CSP "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " \
	    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct http;
struct hreq;

/* A connection evhttp accepted: ours to count, bound and close. */
struct hconn {
	struct http *h;
	struct bufferevent *bev;          /* evhttp's; one reference ours until adopted */
	struct evhttp_connection *evcon;  /* NULL until adopted */
	double since;                     /* CLOCK_MONOTONIC: accepted, or last answer sent */
	bool busy;                        /* a request of its is being answered */
	bool stream;                      /* ...as an event stream */
	bool remote;                      /* the peer is not on this machine's loopback */
	uid_t uid;
	gid_t gid;
	struct hreq *req;
	TAILQ_ENTRY(hconn) entry;
};

/* A request answered by an op through a local client. */
struct hreq {
	struct http *h;
	struct hconn *hc;              /* NULL once the connection is gone */
	struct evhttp_request *req;
	struct bufferevent *op;        /* our end of the local client */
	bool stream;
	bool started;                  /* stream: headers sent */
	bool status_out;               /* stream: a status request not answered yet */
	bool paused;                   /* stream: not taking events until its output drains */
	double deadline;               /* CLOCK_MONOTONIC: the op's answer is due */
	double last_write;             /* stream: for heartbeats */
	TAILQ_ENTRY(hreq) entry;
};

struct http {
	struct taskd *td;
	struct evhttp *eh;
	struct evconnlistener *listener; /* owned by eh */
	struct listen_addr addr;
	char *address;
	char *listen;                    /* as configured (a change needs a restart) */
	mode_t socket_mode;
	dev_t dev;                       /* of the socket file we made */
	ino_t ino;
	char *token;                     /* NULL: no token */
	bool allow_remote;
	bool anonymous_ok;               /* over TCP without a token: not for a root taskd */
	int max_conns;
	double timeout;
	TAILQ_HEAD(, hconn) conns;
	int nconns, nstreams, unadopted;
	TAILQ_HEAD(, hreq) reqs;
	struct event *adopt_ev;
	struct event *tick_ev;
	struct event *retry_ev;          /* accepting again after EMFILE */
	uint64_t codes[6];               /* answers by class: 1xx..5xx */
	uint64_t evicted, refused;
};

/* http-op.c */
void common_headers(struct evhttp_request *req);
void http_complete_cb(struct evhttp_request *req, void *arg);
void reply(struct http *h, struct hconn *hc, struct evhttp_request *req, int code,
	   const char *type, struct evbuffer *body);
void reply_error(struct http *h, struct hconn *hc, struct evhttp_request *req, int code,
		 const char *err, const char *message);
void request_end(struct hreq *r);
void op_start(struct http *h, struct hconn *hc, struct evhttp_request *req, json_t *request,
	      bool stream);
void http_tick_cb(evutil_socket_t fd, short what, void *arg);

#endif
