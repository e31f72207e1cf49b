/*
 * Small jansson helpers shared by the encoders and decoders (stored
 * records, worker messages, the job object): what JSON holds of C strings,
 * string vectors and doubles.
 */
#ifndef TASKD_JSONUTIL_H
#define TASKD_JSONUTIL_H

#include <stdbool.h>

#include <jansson.h>

/* A string, or null for NULL. */
json_t *string_or_null(const char *s);
/* An array of the strings of a NULL-terminated vector, or null for NULL. */
json_t *strv_or_null(char *const *v);
/* A number; NaN and infinities, which JSON cannot hold, as 0. */
json_t *finite_real(double v);
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
