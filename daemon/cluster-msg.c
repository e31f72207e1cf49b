/*
 * A cluster's messages and entries: see cluster-msg.h and doc/cluster.md
 * "Messages and entries".
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-msg.h"
#include "jsonutil.h"
#include "log.h"
#include "record.h"
#include "xmalloc.h"

#define NODE_MAX 64

/* ---- entries ---- */

char *
cluster_entry_encode(const struct job *j, enum job_state st, const char *by, bool cancel,
		     bool with_env, size_t *len)
{
	char *rec = record_encode_env(j, with_env), *head, *text;
	json_t *o;

	/* The envelope, then the record's text as its last member "job". */
	o = json_pack("{s:i,s:s,s:s,s:o,s:o,s:b,s:I,s:b}", "v", CLUSTER_ENTRY_VERSION,
		      "state", job_state_name(st), "by", by, "node", string_or_null(j->cl.node),
		      "from", string_or_null(j->cl.from), "redelivered", j->cl.redelivered,
		      "delivery", (json_int_t)j->cl.delivery, "cancel", cancel);
	if (o == NULL)
		fatalx("job %llu: cannot encode its cluster entry", (unsigned long long)j->id);
	head = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (head == NULL)
		fatalx("out of memory (json_dumps)");
	head[strlen(head) - 1] = '\0'; /* without its closing brace */
	text = xprintf("%s,\"job\":%s}", head, rec);
	free(head);
	free(rec);
	*len = strlen(text);
	return text;
}

/* A node name as an entry holds it: a string (of a node name's characters) or null. */
static int
take_node(const json_t *v, char **out)
{
	const char *s;

	*out = NULL;
	if (json_is_null(v))
		return 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	if (*s == '\0' || strlen(s) > NODE_MAX ||
	    s[strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")] != '\0')
		return -1;
	*out = xstrdup(s);
	return 0;
}

struct job *
cluster_entry_decode(uint64_t id, const char *data, size_t len, struct cluster_entry *e,
		     char **cause)
{
	json_t *o, *node, *from, *rec, *by;
	const char *state;
	json_int_t v, delivery;
	json_error_t jerr;
	struct job *j = NULL;
	int redelivered, cancel, version;
	uint64_t array = 0;
	char *why = NULL;

	memset(e, 0, sizeof *e);
	o = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (o == NULL || !json_is_object(o)) {
		xasprintf(cause, "not JSON%s%s", o != NULL ? " object" : ": ",
			  o != NULL ? "" : jerr.text);
		goto out;
	}
	if (json_unpack_ex(o, &jerr, 0, "{s:I}", "v", &v) == -1) {
		xasprintf(cause, "not a taskd job entry (no \"v\")");
		goto out;
	}
	if (v != CLUSTER_ENTRY_VERSION) {
		xasprintf(cause, "entry version %lld (this taskd reads %d)", (long long)v,
			  CLUSTER_ENTRY_VERSION);
		goto out;
	}
	if (json_unpack_ex(o, &jerr, JSON_STRICT, "{s:I,s:s,s:o,s:o,s:o,s:b,s:I,s:b,s:o}", "v",
			   &v, "state", &state, "by", &by, "node", &node, "from", &from,
			   "redelivered", &redelivered, "delivery", &delivery, "cancel", &cancel,
			   "job", &rec) == -1) {
		xasprintf(cause, "bad entry: %s", jerr.text);
		goto out;
	}
	if (delivery < 0) {
		xasprintf(cause, "bad entry: \"delivery\" is negative");
		goto out;
	}
	if (take_node(by, &e->by) == -1 || e->by == NULL) {
		xasprintf(cause, "bad entry: \"by\" is not a node name");
		goto out;
	}
	j = record_decode_json(id, state, rec, &version, &array, &why);
	if (j == NULL) {
		*cause = why;
		goto out;
	}
	/*
	 * A record carries no input (version 5 keeps it in the submitting
	 * node's input file) and no array: a cluster refuses both at submit
	 * (doc/cluster.md), so an entry with either is not one of ours.
	 */
	if (array != 0 || j->spec.input_bytes > 0) {
		xasprintf(cause, "bad entry: %s (not in cluster mode)",
			  array != 0 ? "a job of an array" : "a job with input");
		job_free(j);
		j = NULL;
		goto out;
	}
	if (take_node(node, &j->cl.node) == -1 || take_node(from, &j->cl.from) == -1) {
		xasprintf(cause, "bad entry: \"node\" or \"from\" is not a node name");
		job_free(j);
		j = NULL;
		goto out;
	}
	j->cl.redelivered = redelivered;
	j->cl.delivery = (uint64_t)delivery;
	e->cancel = cancel;
out:
	if (j == NULL)
		cluster_entry_clear(e);
	json_decref(o);
	return j;
}

void
cluster_entry_clear(struct cluster_entry *e)
{
	free(e->by);
	memset(e, 0, sizeof *e);
}

/* ---- ack subjects ---- */

/* A decimal number of the whole token [p, p+n); -1 if it is not one. */
static int
token_u64(const char *p, size_t n, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (n == 0 || n > 20)
		return -1;
	for (i = 0; i < n; i++) {
		if (!isdigit((unsigned char)p[i]) || v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	*out = v;
	return 0;
}

int
cluster_ack_parse(const char *subject, struct cluster_ack *a)
{
	static const char prefix[] = "$JS.ACK.";
	const char *tok[12], *p, *dot;
	size_t len[12], nt = 0, first;
	uint64_t t;

	memset(a, 0, sizeof *a);
	if (strncmp(subject, prefix, sizeof prefix - 1) != 0)
		return -1;
	for (p = subject + sizeof prefix - 1; nt < 12; p = dot + 1) {
		dot = strchr(p, '.');
		tok[nt] = p;
		len[nt++] = dot != NULL ? (size_t)(dot - p) : strlen(p);
		if (dot == NULL)
			break;
	}
	/* 7 tokens (the first form), or 9 and more (domain, account hash first). */
	if (nt == 7)
		first = 2;
	else if (nt >= 9)
		first = 4;
	else
		return -1;
	if (len[first - 2] == 0 || len[first - 1] == 0 ||
	    token_u64(tok[first], len[first], &a->delivered) == -1 ||
	    token_u64(tok[first + 1], len[first + 1], &a->sseq) == -1 ||
	    token_u64(tok[first + 2], len[first + 2], &a->cseq) == -1 ||
	    token_u64(tok[first + 3], len[first + 3], &t) == -1 || t > INT64_MAX ||
	    token_u64(tok[first + 4], len[first + 4], &a->pending) == -1 ||
	    a->delivered == 0 || a->sseq == 0)
		return -1;
	a->time = (int64_t)t;
	snprintf(a->consumer, sizeof a->consumer, "%.*s", (int)len[first - 1], tok[first - 1]);
	return 0;
}

/* ---- answers to a publish ---- */

int
cluster_puback_parse(const char *data, size_t len, struct cluster_puback *pa)
{
	json_t *o, *err, *seq;
	json_error_t jerr;
	const char *desc;

	memset(pa, 0, sizeof *pa);
	o = json_loadb(data, len, 0, &jerr);
	if (o == NULL || !json_is_object(o)) {
		pa->error = xprintf("unreadable answer from JetStream (%s)",
				    o == NULL ? jerr.text : "not an object");
		json_decref(o);
		return -1;
	}
	if ((err = json_object_get(o, "error")) != NULL) {
		desc = json_string_value(json_object_get(err, "description"));
		pa->err_code = (int)json_integer_value(json_object_get(err, "err_code"));
		pa->error = xprintf("JetStream: %s (code %lld, error %d)",
				    desc != NULL ? desc : "error",
				    (long long)json_integer_value(json_object_get(err, "code")),
				    pa->err_code);
		json_decref(o);
		return -1;
	}
	seq = json_object_get(o, "seq");
	if (!json_is_integer(seq) || json_integer_value(seq) <= 0) {
		pa->error = xstrdup("unreadable answer from JetStream (no \"seq\")");
		json_decref(o);
		return -1;
	}
	pa->seq = (uint64_t)json_integer_value(seq);
	pa->duplicate = json_is_true(json_object_get(o, "duplicate"));
	json_decref(o);
	return 0;
}

void
cluster_puback_clear(struct cluster_puback *pa)
{
	free(pa->error);
	memset(pa, 0, sizeof *pa);
}

/* ---- the stream's settings ---- */

int
cluster_stream_check(const jsStreamConfig *c, const char *subject, char **why)
{
	if (c->Retention != js_WorkQueuePolicy) {
		*why = xprintf("its retention is %s, taskd needs a work queue",
			       c->Retention == js_LimitsPolicy ? "limits" : "interest");
		return -1;
	}
	if (c->SubjectsLen != 1 || strcmp(c->Subjects[0], subject) != 0) {
		*why = xprintf("its subjects are not just \"%s\"", subject);
		return -1;
	}
	if (c->MaxAge != 0) {
		*why = xprintf("it drops messages older than %.0f s (max_age): queued jobs would be "
			       "lost", (double)c->MaxAge / 1e9);
		return -1;
	}
	if ((c->MaxMsgs > 0 || c->MaxBytes > 0 || c->MaxMsgsPerSubject > 0) &&
	    c->Discard != js_DiscardNew) {
		*why = xstrdup("it has limits that discard old messages: queued jobs would be lost "
			       "(use discard new)");
		return -1;
	}
	if (c->Duplicates <= 0) {
		*why = xstrdup("it has no duplicate window: a retried publish would be a second job");
		return -1;
	}
	return 0;
}

/* ---- node names ---- */

char *
cluster_node_from_host(const char *host)
{
	char *s = xstrndup(host, strcspn(host, "."));
	size_t i;

	if (strlen(s) > NODE_MAX)
		s[NODE_MAX] = '\0';
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_')
			s[i] = '-';
	if (*s == '\0') {
		free(s);
		s = xstrdup("node");
	}
	return s;
}
