/*
 * Aligned text tables: cells are collected row by row, column widths are
 * computed over all rows, then printed. Control characters in cells are
 * shown as '?' (fmt_safe) so a job's argv can neither break the layout nor
 * drive the terminal. Out of memory aborts: taskctl is a short-lived command.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "taskctl.h"

struct table {
	size_t ncols;
	const char *align; /* 'l' or 'r' per column */
	char **cells;      /* row-major, headers first */
	size_t ncells;
	size_t cap;
};

static void *
xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (p == NULL) {
		taskctl_warnx("out of memory");
		abort();
	}
	return p;
}

static void
add(struct table *t, char *s)
{
	if (s == NULL) {
		taskctl_warnx("out of memory");
		abort();
	}
	fmt_safe(s);
	if (t->ncells == t->cap) {
		t->cap = t->cap == 0 ? 64 : t->cap * 2;
		t->cells = xrealloc(t->cells, t->cap * sizeof *t->cells);
	}
	t->cells[t->ncells++] = s;
}

/* headers: NULL-terminated; align: one 'l' or 'r' per column. */
struct table *
table_new(const char *const *headers, const char *align)
{
	struct table *t = xrealloc(NULL, sizeof *t);

	memset(t, 0, sizeof *t);
	t->align = align;
	for (; *headers != NULL; headers++) {
		add(t, strdup(*headers));
		t->ncols++;
	}
	return t;
}

/* The next cell, filling rows left to right. */
void
table_cell(struct table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	va_start(ap, fmt);
	s = fmt_valloc(fmt, ap);
	va_end(ap);
	add(t, s);
}

/* A JSON scalar as text ("-" for null, "?" if it is not a scalar). */
void
table_cell_scalar(struct table *t, const json_t *v)
{
	char *s = fmt_scalar(v);

	table_cell(t, "%s", s != NULL ? s : "?");
	free(s);
}

size_t
table_rows(const struct table *t)
{
	return t->ncells / t->ncols - 1;
}

/* Padding is held back until a non-empty cell follows: no trailing blanks. */
void
table_print(const struct table *t, FILE *fp)
{
	size_t *width, i, col, w, pending = 0;

	width = xrealloc(NULL, t->ncols * sizeof *width);
	memset(width, 0, t->ncols * sizeof *width);
	for (i = 0; i < t->ncells; i++) {
		w = fmt_width(t->cells[i]);
		if (w > width[i % t->ncols])
			width[i % t->ncols] = w;
	}
	for (i = 0; i < t->ncells; i++) {
		col = i % t->ncols;
		w = fmt_width(t->cells[i]);
		if (t->align[col] == 'r')
			pending += width[col] - w;
		if (w > 0)
			fprintf(fp, "%*s%s", (int)pending, "", t->cells[i]);
		if (w > 0)
			pending = 0;
		if (col == t->ncols - 1 || i == t->ncells - 1) {
			fputc('\n', fp);
			pending = 0;
			continue;
		}
		pending += (t->align[col] == 'r' ? 0 : width[col] - w) + 2;
	}
	free(width);
}

void
table_free(struct table *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}
