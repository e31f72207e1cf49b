/*
 * A job's files: stdout and stderr of a command, captured by the run
 * (exec.c) into STATE_DIR/jobs/ID.out and ID.err, read by `logs`; and its
 * standard input (submit --input), stored at submit in ID.in (an array's
 * jobs share their array's: ARRAY.in) and read by the run. Removed with
 * the job (clean, pruning; an array's input with its last job) and, at
 * startup, when the store no longer knows the job. This is the one place
 * that knows their names. Loop thread (and the startup code) only.
 */
#ifndef TASKD_OUTPUT_H
#define TASKD_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct jobs;

enum output_stream { OUTPUT_STDOUT, OUTPUT_STDERR, OUTPUT_STDIN };

/* The directory of the output files under state_dir (malloc'd). */
char *output_dir(const char *state_dir);
/*
 * The same in cluster mode (doc/cluster.md): STATE_DIR/cluster/jobs, apart
 * from a single node's, since the ids are the cluster's (malloc'd).
 */
char *output_cluster_dir(const char *state_dir);
/* dir/ID.out, dir/ID.err or dir/ID.in (malloc'd). */
char *output_path(const char *dir, uint64_t id, enum output_stream stream);
/* The bytes both output files of job id take (a missing one: 0). */
uint64_t output_size(const char *dir, uint64_t id);
/* Remove both output files of job id (a missing one is fine; other errors are logged). */
void output_remove(const char *dir, uint64_t id);
/* Remove the input file of id (a job's, or an array's). */
void output_remove_input(const char *dir, uint64_t id);
/*
 * Store len bytes as the input of id (mode 0600; written whole and, with
 * sync, fsync'ed with its directory before this returns: the submit is
 * acknowledged after). -1 with *cause, and nothing is left behind.
 */
int output_store_input(const char *dir, uint64_t id, const char *data, size_t len, bool sync,
		       char **cause);
/*
 * The input of id as base64 text (malloc'd: what a handler's job message
 * carries), or NULL with *cause (its file is gone or unreadable).
 */
char *output_read_input(const char *dir, uint64_t id, char **cause);
/* The bytes of the input file at path (*data malloc'd); -1 with *cause. */
int output_read_path(const char *path, char **data, size_t *len, char **cause);
/* The input of `from` becomes also to's (a hard link: it never changes); -1 with *cause. */
int output_share_input(const char *dir, uint64_t from, uint64_t to, bool sync, char **cause);
/*
 * At startup: remove the files in dir of jobs js does not hold (pruned
 * while taskd was down, or a lost database; an input of an array it does
 * not hold, or of a submit that was never stored), and any other *.out,
 * *.err, *.in file there. Exits if dir cannot be read.
 */
void output_clean(const char *dir, struct jobs *js);

#endif
