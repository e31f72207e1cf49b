#include <math.h>
#include <stdio.h>
#include <string.h>

#include "psi.h"
#include "textfile.h"

/* "some avg10=1.23 avg60=0.50 avg300=0.10 total=123456" (total in microseconds). */
static int
parse_line(const char *s, struct psi_line *l)
{
	unsigned long long total;
	double a10, a60, a300;

	if (sscanf(s, " avg10=%lf avg60=%lf avg300=%lf total=%llu", &a10, &a60, &a300, &total) !=
	    4)
		return -1;
	if (!isfinite(a10) || !isfinite(a60) || !isfinite(a300) || a10 < 0 || a60 < 0 ||
	    a300 < 0)
		return -1;
	l->valid = true;
	l->avg10 = fmin(a10, 100);
	l->avg60 = fmin(a60, 100);
	l->avg300 = fmin(a300, 100);
	l->total = (double)total / 1e6;
	return 0;
}

int
psi_parse(const char *text, struct psi *p)
{
	const char *line = text;

	memset(p, 0, sizeof *p);
	while (line != NULL && *line != '\0') {
		if (strncmp(line, "some ", 5) == 0 && parse_line(line + 4, &p->some) == -1)
			p->some.valid = false;
		else if (strncmp(line, "full ", 5) == 0 && parse_line(line + 4, &p->full) == -1)
			p->full.valid = false;
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
	return p->some.valid ? 0 : -1;
}

int
psi_read(const char *path, struct psi *p)
{
	char buf[512];

	memset(p, 0, sizeof *p);
	if (textfile_read(path, buf, sizeof buf) <= 0)
		return -1;
	return psi_parse(buf, p);
}
