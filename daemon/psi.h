/*
 * Pressure stall information (/proc/pressure/{cpu,memory,io} and a
 * cgroup's *.pressure files, Linux 4.20+): the share of time tasks waited
 * for a resource. "some": at least one task waited; "full": all did.
 */
#ifndef TASKD_PSI_H
#define TASKD_PSI_H

#include <stdbool.h>

struct psi_line {
	bool valid;
	double avg10;  /* percent, 0..100 */
	double avg60;
	double avg300;
	double total;  /* seconds of stall since boot (or the cgroup's birth) */
};

struct psi {
	struct psi_line some;
	struct psi_line full;
};

/* Parse a pressure file's text; -1 if it has no valid "some" line. */
int psi_parse(const char *text, struct psi *p);
/* Read and parse path; -1 (p zeroed) if unreadable or invalid. */
int psi_read(const char *path, struct psi *p);

#endif
