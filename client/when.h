/* Parsing `submit --in` / `--at` times (client/when.c). */
#ifndef TASKCTL_WHEN_H
#define TASKCTL_WHEN_H

/* "10m", "1.5h", "90s", "2d", "30" (decimal): seconds (> 0); -1 if malformed. */
int when_parse_duration(const char *s, double *secs);
/*
 * "2026-12-01T03:00" (local), "…:SS.frac", "…Z", "…+02:00": unix seconds; -1 if
 * malformed, WHEN_NO_SUCH_LOCAL_TIME for a local time skipped by a daylight
 * saving change.
 */
#define WHEN_NO_SUCH_LOCAL_TIME (-2)
int when_parse_time(const char *s, double *when);

#endif
