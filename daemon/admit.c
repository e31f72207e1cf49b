#include <math.h>
#include <stdio.h>
#include <string.h>

#include "admit.h"
#include "textfile.h"

enum admit_verdict
admit_check(const struct admit *a, long need_kb)
{
	uint64_t used;

	if (a->budget_kb == 0)
		return ADMIT_OK;
	if (a->running == 0)
		return ADMIT_OK; /* alone: even a job larger than the budget */
	used = a->held_kb + a->promised_kb;
	if (need_kb < 0)
		return used < a->budget_kb ? ADMIT_OK : ADMIT_MEMORY;
	return used <= a->budget_kb && (uint64_t)need_kb <= a->budget_kb - used ? ADMIT_OK
										  : ADMIT_MEMORY;
}

long
admit_need(long learned_kb, long live_kb)
{
	return learned_kb > live_kb ? learned_kb : live_kb;
}

uint64_t
admit_hold(long need_kb, long rss_kb)
{
	long h = need_kb > rss_kb ? need_kb : rss_kb;

	return h > 0 ? (uint64_t)h : 0;
}

uint64_t
admit_budget(uint64_t bytes, double share, long mem_available_kb)
{
	if (bytes > 0)
		return bytes / 1024 > 0 ? bytes / 1024 : 1;
	if (!(share > 0) || mem_available_kb <= 0)
		return 0;
	return (uint64_t)fmax(1, floor(fmin(share, 1.0) * (double)mem_available_kb));
}

long
admit_parse_meminfo(const char *text)
{
	const char *p = strstr(text, "MemAvailable:");
	long long kb;

	if (p == NULL || (p != text && p[-1] != '\n'))
		return -1;
	if (sscanf(p + 13, " %lld kB", &kb) != 1 || kb < 0)
		return -1;
	return (long)kb;
}

long
admit_mem_available(const char *path)
{
	char buf[4096];

	if (textfile_read(path, buf, sizeof buf) <= 0)
		return -1;
	return admit_parse_meminfo(buf);
}

bool
admit_brake(double cpu_some10, double cpu_limit, double mem_some10, double mem_limit,
	    size_t cpu_running)
{
	if (cpu_running == 0)
		return false;
	return (cpu_limit > 0 && cpu_some10 >= cpu_limit) ||
	       (mem_limit > 0 && mem_some10 >= mem_limit);
}
