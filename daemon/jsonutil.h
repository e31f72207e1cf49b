/*
 * Small jansson helpers shared by the encoders and decoders (stored
 * records, worker messages, the job object): what JSON holds of C strings,
 * string vectors and doubles.
 */
#ifndef TASKD_JSONUTIL_H
#define TASKD_JSONUTIL_H

#include <stdbool.h>
#include <string.h>

#include <jansson.h>

/* A string, or null for NULL. */
json_t *string_or_null(const char *s);
/* An array of the strings of a NULL-terminated vector, or null for NULL. */
json_t *strv_or_null(char *const *v);
/* A number; NaN and infinities, which JSON cannot hold, as 0. */
json_t *finite_real(double v);
/* Room for any text json_real_text writes, its NUL included. */
#define JSON_REAL_TEXT_MAX 32
/*
 * v (finite) as jansson writes a real into JSON text: "%.17g", ".0" added
 * to an integral value, the exponent without "+" or leading zeros. The
 * text reads back as exactly v. Writes it and its NUL to buf, returns its
 * length. Without printf for 1e-6 <= |v| < 2^53 (the times and durations a
 * job holds), where glibc's exact formatting is slow.
 */
size_t json_real_text(double v, char *buf);
/*
 * JSON text built in a growing buffer, written as json_dumps(JSON_COMPACT)
 * writes it, byte for byte, but faster (reals: json_real_text). Start from
 * { 0 }; p is malloc'd (free it), NUL-terminated after jtext_end.
 */
struct jtext {
	char *p;
	size_t n, cap;
};

/* Room for n more bytes. */
void jtext_grow(struct jtext *t, size_t n);

static inline void
jtext_put(struct jtext *t, const char *s, size_t n)
{
	if (t->n + n > t->cap)
		jtext_grow(t, n);
	memcpy(t->p + t->n, s, n);
	t->n += n;
}

#define JTEXT_PUT(t, lit) jtext_put((t), (lit), sizeof(lit) - 1)
/* The n bytes of s as a JSON string (quotes, escapes); not checked to be UTF-8. */
void jtext_string(struct jtext *t, const char *s, size_t n);
void jtext_integer(struct jtext *t, long long v);
void jtext_real(struct jtext *t, double v); /* finite */
/* Any value, as json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) writes it. */
void jtext_value(struct jtext *t, const json_t *v);
/* The text, NUL-terminated (t->n does not count the NUL). */
char *jtext_end(struct jtext *t);
/* Are the n bytes of s UTF-8 as jansson takes it (no overlong forms, surrogates, > U+10FFFF)? */
bool utf8_valid(const char *s, size_t n);
/* Is v a string without NUL bytes (one a C string holds whole)? */
bool string_without_nul(const json_t *v);
/* The bytes of v as compact JSON, as the answers are written (proto_line). */
size_t json_text_size(const json_t *v);
/* The bytes of s as a JSON string in compact JSON, quotes included. */
size_t string_text_size(const char *s);
/*
 * A string of at most max bytes of s (max >= 8): s itself when it fits,
 * else cut at a character boundary with "..." at the end.
 */
json_t *string_cut(const char *s, size_t max);

#endif
