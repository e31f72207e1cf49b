/*
 * The handler protocol (doc/handlers.md): what taskd and a handler's worker
 * process say to each other. JSON Lines on the worker's fd 3 (a
 * SOCK_STREAM socketpair): one JSON object per line, UTF-8, at most
 * limits.max_frame bytes per line.
 *
 * worker → taskd  {"t":"hello","protocol":1,"concurrency":N}       once, first
 *                 {"t":"progress","id":ID,"message":"..."}          optional
 *                 {"t":"result","id":ID,"ok":true,"result":<JSON>}
 *                 {"t":"result","id":ID,"ok":false,"error":"..."}
 * taskd → worker  {"t":"job","id":ID,"args":[...],"input":"<base64>","deadline":T|null}
 *                 {"t":"cancel","id":ID}
 *                 EOF on fd 3: finish the jobs you have, then exit.
 *
 * Decoding is strict: an unknown "t", a missing, extra or mistyped field,
 * duplicate keys or a line that is not one JSON object is a protocol error.
 * Pure functions, no daemon state (unit-tested in tests/unit/test-hproto.c).
 */
#ifndef TASKD_HPROTO_H
#define TASKD_HPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HPROTO_VERSION 1
#define HPROTO_CONCURRENCY_MAX 1024
#define HPROTO_MESSAGE_MAX 4096 /* bytes of a progress message kept */
#define HPROTO_PREFIX 256      /* bytes kept of an over-long line, to find its job */

enum hmsg_type { HMSG_HELLO, HMSG_PROGRESS, HMSG_RESULT };

/* One decoded message from a worker; strings malloc'd (hmsg_free). */
struct hmsg {
	enum hmsg_type type;
	int protocol;       /* hello */
	int concurrency;    /* hello */
	uint64_t id;        /* progress, result */
	bool ok;            /* result */
	char *result;       /* result ok: the JSON value, compact text */
	char *text;         /* result not ok: the error; progress: the message */
};

/* Decode one line (without its newline); 0, or -1 with *why (malloc'd). */
int hproto_decode(const char *line, size_t len, struct hmsg *m, char **why);
void hmsg_free(struct hmsg *m);

/*
 * The job message, newline-terminated (malloc'd, *len set). input is
 * base64 text (NULL or "" for none); deadline is unix seconds, 0 for none.
 */
char *hproto_job(uint64_t id, char *const *args, const char *input, double deadline,
		 size_t *len);
char *hproto_cancel(uint64_t id, size_t *len);

/* Is s (len bytes) canonical base64 (RFC 4648, padded)? */
bool hproto_base64_valid(const char *s, size_t len);

/*
 * Splitting a byte stream into lines of at most max bytes (newline not
 * counted). A longer line is not kept: its first HPROTO_PREFIX bytes are,
 * and it comes out as HLINE_TOO_LONG with its full length once its
 * newline arrives, so the caller can fail just the job it was for.
 */
struct hframer {
	char *buf;
	size_t len, cap;
	size_t head;        /* start of the bytes not handed out yet */
	size_t scanned;     /* bytes of buf already searched for a newline */
	size_t max;
	bool skipping;      /* inside an over-long line */
	uint64_t skipped;   /* its length so far */
	char prefix[HPROTO_PREFIX];
	size_t prefix_len;
};

enum hline_kind { HLINE_NONE, HLINE_OK, HLINE_TOO_LONG };

void hframer_init(struct hframer *f, size_t max);
void hframer_free(struct hframer *f);
/* Room to read into: want bytes at the pointer returned (lines handed out are dropped). */
char *hframer_space(struct hframer *f, size_t want);
/* n bytes were written at hframer_space()'s pointer. */
void hframer_commit(struct hframer *f, size_t n);
/*
 * The next line: HLINE_OK with the line in line and len (valid until the
 * next hframer_space), HLINE_TOO_LONG with the kept prefix there and the
 * whole line's length in full, or HLINE_NONE when no complete line is
 * buffered.
 */
enum hline_kind hframer_next(struct hframer *f, const char **line, size_t *len, uint64_t *full);
/* Bytes buffered of a line not complete yet (0 when between lines). */
size_t hframer_partial(const struct hframer *f);

/* The job id of a result line from its first bytes (an over-long line), 0 if none found. */
uint64_t hproto_peek_id(const char *prefix, size_t len);

#endif
