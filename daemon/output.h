/*
 * A job's output files: stdout and stderr of a command, captured by the
 * run (exec.c) into STATE_DIR/jobs/ID.out and ID.err, read by `logs`,
 * removed with the job (clean, pruning) and, at startup, when the store no
 * longer knows the job. This is the one place that knows their names.
 * Loop thread (and the startup code) only.
 */
#ifndef TASKD_OUTPUT_H
#define TASKD_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>

struct jobs;

enum output_stream { OUTPUT_STDOUT, OUTPUT_STDERR };

/* The directory of the output files under state_dir (malloc'd). */
char *output_dir(const char *state_dir);
/*
 * The same in cluster mode (doc/cluster.md): STATE_DIR/cluster/jobs, apart
 * from a single node's, since the ids are the cluster's (malloc'd).
 */
char *output_cluster_dir(const char *state_dir);
/* dir/ID.out or dir/ID.err (malloc'd). */
char *output_path(const char *dir, uint64_t id, enum output_stream stream);
/* The bytes both files of job id take (a missing one: 0). */
uint64_t output_size(const char *dir, uint64_t id);
/* Remove both files of job id (a missing one is fine; other errors are logged). */
void output_remove(const char *dir, uint64_t id);
/*
 * At startup: remove the output files in dir of jobs js does not hold
 * (pruned while taskd was down, or a lost database), and any other
 * *.out / *.err file there. Exits if dir cannot be read.
 */
void output_clean(const char *dir, struct jobs *js);

#endif
