#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonutil.h"
#include "xmalloc.h"

json_t *
string_or_null(const char *s)
{
	return s != NULL ? json_string(s) : json_null();
}

json_t *
strv_or_null(char *const *v)
{
	json_t *a;
	size_t i;

	if (v == NULL)
		return json_null();
	a = json_array();
	for (i = 0; v[i] != NULL; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

json_t *
finite_real(double v)
{
	return json_real(isfinite(v) ? v : 0.0);
}

bool
string_without_nul(const json_t *v)
{
	return json_is_string(v) && strlen(json_string_value(v)) == json_string_length(v);
}

size_t
json_text_size(const json_t *v)
{
	return json_dumpb(v, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
}

size_t
string_text_size(const char *s)
{
	const unsigned char *p;
	size_t n = 2;

	/* As jansson writes it: short escapes, \u00XX for other controls, UTF-8 as is. */
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\' || *p == '\b' || *p == '\f' || *p == '\n' ||
		    *p == '\r' || *p == '\t')
			n += 2;
		else if (*p < 0x20)
			n += 6;
		else
			n++;
	}
	return n;
}

json_t *
string_cut(const char *s, size_t max)
{
	size_t n = strlen(s);
	json_t *v;
	char *buf;

	if (n <= max)
		return json_string(s);
	n = max - 3;
	/* Back to the start of a character: a cut one would not be UTF-8. */
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	buf = xmalloc(n + 4);
	memcpy(buf, s, n);
	memcpy(buf + n, "...", 4);
	v = json_string(buf);
	free(buf);
	return v;
}

/* jansson's cleanup of a "%.17g" text (jsonp_dtostr): ".0" on an integer, a short exponent. */
static size_t
real_tidy(char *buf, size_t n)
{
	char *e = strchr(buf, 'e'), *start, *end;

	if (e != NULL) {
		start = e + 1;
		if (*start == '+') {
			memmove(start, start + 1, n - (size_t)(start + 1 - buf) + 1);
			n--;
		}
		if (*start == '-')
			start++;
		for (end = start; *end == '0' && end[1] != '\0'; end++)
			;
		memmove(start, end, n - (size_t)(end - buf) + 1);
		n -= (size_t)(end - start);
	} else if (strchr(buf, '.') == NULL) {
		memcpy(buf + n, ".0", 3);
		n += 2;
	}
	return n;
}

#ifdef __SIZEOF_INT128__
typedef unsigned __int128 u128;

/* 10^p for 0 <= p <= 38. */
static u128
pow10_u128(int p)
{
	static const uint64_t small[20] = {
		1ULL, 10ULL, 100ULL, 1000ULL, 10000ULL, 100000ULL, 1000000ULL, 10000000ULL,
		100000000ULL, 1000000000ULL, 10000000000ULL, 100000000000ULL, 1000000000000ULL,
		10000000000000ULL, 100000000000000ULL, 1000000000000000ULL,
		10000000000000000ULL, 100000000000000000ULL, 1000000000000000000ULL,
		10000000000000000000ULL,
	};

	return p < 20 ? small[p] : (u128)small[19] * small[p - 19];
}

/*
 * The 17 significant digits of a (1e-6 <= a < 2^53) rounded as printf
 * rounds (to nearest, ties to even: the value is exact, a * 10^P an exact
 * 128-bit fraction), with its decimal exponent X (10^X <= rounded a <
 * 10^(X+1)): 0, or -1 if a is out of that range.
 */
static int
digits17(double a, uint64_t *digits, int *exp10)
{
	static const uint64_t lo = 10000000000000000ULL, hi = 100000000000000000ULL;
	uint64_t bits, m;
	u128 num, q, rem, half;
	int e, x, p, s, tries;

	memcpy(&bits, &a, sizeof bits);
	if ((bits >> 52) == 0)
		return -1; /* subnormal */
	m = (bits & ((1ULL << 52) - 1)) | (1ULL << 52);
	e = (int)(bits >> 52) - 1075; /* a = m * 2^e */
	s = -e;
	if (s < 0 || s > 100)
		return -1;
	/* log10(2) ~ 0.30103: an estimate of X, corrected below. */
	x = (e + 52) * 30103 / 100000;
	for (tries = 0; tries < 4; tries++) {
		p = 16 - x; /* digits = a * 10^p, rounded */
		if (p < 0 || p > 22)
			return -1; /* m * 10^p might not fit 128 bits */
		num = (u128)m * pow10_u128(p);
		q = s > 0 ? num >> s : num;
		if (q >= hi) {
			x++;
		} else if (q < lo) {
			x--;
		} else {
			if (s > 0) {
				rem = num & (((u128)1 << s) - 1);
				half = (u128)1 << (s - 1);
				if (rem > half || (rem == half && (q & 1)))
					q++;
			}
			if (q == hi) {
				q = lo;
				x++;
			}
			*digits = (uint64_t)q;
			*exp10 = x;
			return 0;
		}
	}
	return -1;
}

/* "%.17g" of 17 digits d (no sign) with exponent x, then real_tidy: written to buf. */
static size_t
real_from_digits(uint64_t d, int x, char *buf)
{
	char dig[17];
	size_t n = 0, nd = 17;
	int i;

	for (i = 16; i >= 0; i--) {
		dig[i] = (char)('0' + d % 10);
		d /= 10;
	}
	while (nd > 1 && dig[nd - 1] == '0')
		nd--; /* %g drops trailing zeros */
	if (x < -4) {
		buf[n++] = dig[0];
		if (nd > 1) {
			buf[n++] = '.';
			memcpy(buf + n, dig + 1, nd - 1);
			n += nd - 1;
		}
		n += (size_t)sprintf(buf + n, "e-%d", -x);
		return n;
	}
	if (x < 0) {
		memcpy(buf, "0.", 2);
		n = 2;
		for (i = -1; i > x; i--)
			buf[n++] = '0';
		memcpy(buf + n, dig, nd);
		n += nd;
	} else {
		memcpy(buf, dig, (size_t)x + 1);
		n = (size_t)x + 1;
		buf[n++] = '.';
		if (nd > (size_t)x + 1) {
			memcpy(buf + n, dig + x + 1, nd - (size_t)x - 1);
			n += nd - (size_t)x - 1;
		} else {
			buf[n++] = '0';
		}
	}
	buf[n] = '\0';
	return n;
}
#endif

size_t
json_real_text(double v, char *buf)
{
	size_t n = 0;
	int len;
#ifdef __SIZEOF_INT128__
	uint64_t digits;
	int x;

	if (signbit(v)) {
		buf[n++] = '-';
		v = -v;
	}
	if (v == 0) {
		memcpy(buf + n, "0.0", 4);
		return n + 3;
	}
	if (v >= 1e-6 && digits17(v, &digits, &x) == 0)
		return n + real_from_digits(digits, x, buf + n);
#endif
	len = snprintf(buf + n, JSON_REAL_TEXT_MAX - n - 2, "%.17g", v);
	return real_tidy(buf, n + (size_t)len);
}

bool
utf8_valid(const char *s, size_t n)
{
	static const uint32_t least[] = { 0, 0x80, 0x800, 0x10000 };
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	uint32_t c;
	int more, k;

	while (p < end) {
		c = *p++;
		if (c < 0x80)
			continue;
		if (c >= 0xC0 && c <= 0xDF)
			more = 1, c &= 0x1F;
		else if (c >= 0xE0 && c <= 0xEF)
			more = 2, c &= 0x0F;
		else if (c >= 0xF0 && c <= 0xF4)
			more = 3, c &= 0x07;
		else
			return false;
		if (end - p < more)
			return false;
		for (k = 0; k < more; k++) {
			if ((*p & 0xC0) != 0x80)
				return false;
			c = (c << 6) | (*p++ & 0x3F);
		}
		/* Overlong forms, surrogates, beyond U+10FFFF. */
		if (c < least[more] || (c >= 0xD800 && c <= 0xDFFF) || c > 0x10FFFF)
			return false;
	}
	return true;
}

void
jtext_grow(struct jtext *t, size_t n)
{
	if (t->n + n <= t->cap)
		return;
	/* First 1000 bytes: most records and answers, and below glibc's tcache limit (1032). */
	while (t->n + n > t->cap)
		t->cap = t->cap != 0 ? t->cap * 2 : 1000;
	t->p = xreallocarray(t->p, t->cap, 1);
}

void
jtext_string(struct jtext *t, const char *s, size_t n)
{
	static const char hex[] = "0123456789ABCDEF", shorts[] = "\"\\\b\f\n\r\t",
			  letters[] = "\"\\bfnrt";
	const unsigned char *c = (const unsigned char *)s, *end = c + n, *run;
	const char *e;
	char esc[6] = { '\\', 'u', '0', '0' };

	JTEXT_PUT(t, "\"");
	/* As jansson writes it: short escapes, \u00XX for other controls, UTF-8 as is. */
	while (c < end) {
		for (run = c; c < end && *c >= 0x20 && *c != '"' && *c != '\\'; c++)
			;
		jtext_put(t, (const char *)run, (size_t)(c - run));
		if (c == end)
			break;
		if (*c != '\0' && (e = memchr(shorts, *c, sizeof shorts - 1)) != NULL) {
			esc[1] = letters[e - shorts];
			jtext_put(t, esc, 2);
		} else {
			esc[1] = 'u';
			esc[4] = hex[*c >> 4];
			esc[5] = hex[*c & 0xF];
			jtext_put(t, esc, 6);
		}
		c++;
	}
	JTEXT_PUT(t, "\"");
}

void
jtext_integer(struct jtext *t, long long v)
{
	char buf[24], *w = buf + sizeof buf;
	unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;

	do {
		*--w = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--w = '-';
	jtext_put(t, w, (size_t)(buf + sizeof buf - w));
}

void
jtext_real(struct jtext *t, double v)
{
	char buf[JSON_REAL_TEXT_MAX];

	jtext_put(t, buf, json_real_text(v, buf));
}

void
jtext_value(struct jtext *t, const json_t *v)
{
	const char *key;
	const json_t *e;
	size_t i;
	bool first = true;

	switch (json_typeof(v)) {
	case JSON_OBJECT:
		JTEXT_PUT(t, "{");
		/* Insertion order, as json_dumps without JSON_SORT_KEYS. */
		json_object_foreach((json_t *)v, key, e) {
			if (!first)
				JTEXT_PUT(t, ",");
			first = false;
			jtext_string(t, key, strlen(key));
			JTEXT_PUT(t, ":");
			jtext_value(t, e);
		}
		JTEXT_PUT(t, "}");
		break;
	case JSON_ARRAY:
		JTEXT_PUT(t, "[");
		json_array_foreach(v, i, e) {
			if (i > 0)
				JTEXT_PUT(t, ",");
			jtext_value(t, e);
		}
		JTEXT_PUT(t, "]");
		break;
	case JSON_STRING:
		jtext_string(t, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		jtext_integer(t, json_integer_value(v));
		break;
	case JSON_REAL:
		jtext_real(t, json_real_value(v));
		break;
	case JSON_TRUE:
		JTEXT_PUT(t, "true");
		break;
	case JSON_FALSE:
		JTEXT_PUT(t, "false");
		break;
	case JSON_NULL:
		JTEXT_PUT(t, "null");
		break;
	}
}

char *
jtext_end(struct jtext *t)
{
	jtext_put(t, "", 1);
	t->n--;
	return t->p;
}
