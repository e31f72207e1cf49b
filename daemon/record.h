/*
 * Stored job records (doc/design.md "Stored job records"): the JSON text in
 * the `record` column of table jobs (store.c keeps it, never looks inside).
 * This module alone knows the format. It encodes a job in the current
 * version and decodes a stored row of any version up to it; a record of an
 * older version is migrated in memory as it is read, and written back in
 * the current version by persist.c after startup.
 *
 * Version 5 (RECORD_VERSION): version 4 with "array", "restarted_from",
 * "suspended_for" and, in the spec, "unique", "queue", "slots",
 * "input_bytes"; a handler's or a module type's job's input is no longer in
 * its "handler" part but in its input file, as a command's; a job of an array has only
 * "priority" and "deps" in its spec (its limits are its array's). Arrays
 * have records of their own (record_encode_array).
 * Version 4: version 3 without "route_key", with how the job was routed
 * ("route"), its cgroup, "reclassified_at", its limits (spec.limits) and
 * what its run measured of its cgroup (result: "mem_peak_kb", "in_cgroup",
 * "cgroup_error").
 * Version 3: version 2 and the spec's "notify" (the command run when the
 * job ends, or null).
 * Version 2: {"v":2,...}; states, classes, job types, pools and run
 * outcomes by name; nothing but the job's own fields.
 * Version 1 (taskd 0.1.0): no "v"; those as integers, the result stored as
 * the worker's "done" message ("t", "job", "rss_kb" included), the
 * lifecycle fields under "life" (absent in the oldest records).
 *
 * A new stored field means a new version: RECORD_VERSION + 1, written by
 * record_encode, and a decoder that still reads every older version
 * (doc/design.md "Adding a job field").
 */
#ifndef TASKD_RECORD_H
#define TASKD_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "job.h"

#define RECORD_VERSION 5
#define RECORD_VERSION_TEXT "5"

/*
 * The record of j in the current version (JSON text, malloc'd). A job of an
 * array holds "array" and only its own part of the spec (priority,
 * dependencies): the rest is in its array's record.
 */
char *record_encode(const struct job *j);
/*
 * The same, with the environment written as null unless with_env (a
 * cluster's entries carry records: cluster-msg.c).
 */
char *record_encode_env(const struct job *j, bool with_env);
/* An array's record, in table arrays (JSON text, malloc'd). */
char *record_encode_array(const struct job_array *a);
/*
 * The row that stands for a job of an array that was removed (pruned,
 * cleaned) while other jobs of its array remain: state RECORD_REMOVED, this
 * record. Without it, the next start would take the job for one that never
 * changed since its submit (it has no row of its own: see job_array).
 */
#define RECORD_REMOVED "removed"
const char *record_removed(void);

/*
 * A job from its stored row (id, state name, record text), in no table yet
 * (jobs_restore puts it in one); its state is the row's. *version is the
 * record's version (RECORD_VERSION: nothing to migrate). *array is its
 * array's id (join it: job_array_join), 0 if none. NULL with *cause ("job
 * 17: unreadable record (...)", "job 17: record version 6 written by a
 * newer taskd ...") for anything it cannot read whole: never a guess.
 */
struct job *record_decode(uint64_t id, const char *state, const char *text, int *version,
			  uint64_t *array, char **cause);
/* The same from a parsed record (o is not taken). */
struct job *record_decode_json(uint64_t id, const char *state, json_t *o, int *version,
			       uint64_t *array, char **cause);
/* An array from its row in table arrays; NULL with *cause as record_decode. */
struct job_array *record_decode_array(uint64_t id, const char *text, char **cause);

#endif
