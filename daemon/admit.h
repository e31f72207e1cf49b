/*
 * Admission: whether a queued job may start now, by memory and by
 * pressure (doc/routing.md "Memory" and "Pressure"). Pure functions; the
 * scheduler keeps the sums.
 *
 * Memory. Each running command holds max(its kind's learned peak, what it
 * uses now); a job may start when its kind's peak fits in the budget
 * minus what running jobs hold and minus what a job already waiting for
 * memory has been promised (so smaller jobs do not starve a bigger one).
 * A job larger than the whole budget starts when nothing else runs: alone
 * rather than never. A kind's need is its learned peak, or more when one
 * of its jobs running now uses more; a kind nothing is known of yet (no
 * finished run, no sample) starts while the budget is not full, and is
 * then counted by what its samples show. Built-ins hold nothing.
 *
 * Pressure. Above a threshold of "some" stall (avg10, percent) of CPU or
 * memory, no new cpu-class job starts while one of ours still runs, so
 * the brake slows taskd down but never stops it.
 */
#ifndef TASKD_ADMIT_H
#define TASKD_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct admit {
	uint64_t budget_kb;   /* 0: no memory admission */
	uint64_t held_kb;     /* by the running jobs (admit_hold each) */
	uint64_t promised_kb; /* to a job waiting for memory ahead of this one */
	size_t running;       /* running jobs that hold memory */
};

enum admit_verdict {
	ADMIT_OK = 0,
	ADMIT_MEMORY,  /* its peak does not fit now */
};

/* need_kb: what the job needs (admit_need), -1 if nothing is known. */
enum admit_verdict admit_check(const struct admit *a, long need_kb);
/* A kind's need: its learned peak, or what a running job of it uses now if more (-1: none). */
long admit_need(long learned_kb, long live_kb);
/* What a running job holds: its kind's peak, or more if it uses more now. */
uint64_t admit_hold(long need_kb, long rss_kb);
/*
 * The budget in KiB: bytes if set, else share (0..1] of MemAvailable;
 * 0 (off) when both are 0.
 */
uint64_t admit_budget(uint64_t bytes, double share, long mem_available_kb);
/* MemAvailable from /proc/meminfo text, KiB; -1 if absent. */
long admit_parse_meminfo(const char *text);
/* Read it from path ("/proc/meminfo"); -1 if unreadable. */
long admit_mem_available(const char *path);
/* The pressure brake for a cpu-class start (thresholds 0: off). */
bool admit_brake(double cpu_some10, double cpu_limit, double mem_some10, double mem_limit,
		 size_t cpu_running);

#endif
