/* Allocators that abort on out-of-memory: callers never check for NULL. */
#ifndef TASKD_XMALLOC_H
#define TASKD_XMALLOC_H

#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>

void *xmalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xreallocarray(void *ptr, size_t nmemb, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
int xasprintf(char **ret, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *xprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
char *xvprintf(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* NULL-terminated string vectors (argv, envp). */
char **strv_dup(char *const *v);
size_t strv_len(char *const *v);
void strv_free(char **v);
/* Same strings in the same order (NULL equals only NULL). */
bool strv_equal(char *const *a, char *const *b);

#endif
