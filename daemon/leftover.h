/*
 * What a dead taskd leaves running, and how the next one finds it.
 *
 * taskd dies without stopping its jobs only when it is killed outright (kill
 * -9, the OOM killer, a crash). Its workers die with it (PR_SET_PDEATHSIG),
 * but a job's command runs in a session of its own and goes on, re-parented
 * to init. So every process taskd starts is recorded on disk while it lives,
 * one small file per process in STATE_DIR/live (LEFTOVER_DIR):
 *
 *	job-ID       a job's command: written by whoever spawned it (a pool
 *	             thread or a worker) as soon as posix_spawn has returned,
 *	             removed once the command is reaped
 *	worker-PID   a worker process: written by the daemon after spawning
 *	             it, removed once it is reaped
 *
 * each holding one line "PID START BOOT_ID STARTED_AT": START is field 22 of
 * /proc/PID/stat (clock ticks since boot), BOOT_ID the kernel's
 * /proc/sys/kernel/random/boot_id, STARTED_AT unix seconds. A write is a
 * plain write(2), no fsync: it must survive the death of taskd, which it
 * does once write returns; a power loss leaves no process to find anyway
 * (and the boot id tells the records of an earlier boot).
 *
 * At startup (leftover_reap), before anything else starts a process, each
 * record is checked and what it names is killed: only if a process with
 * that pid exists AND has that start time (so a pid the kernel handed out
 * again is never touched) and the boot id matches. For a job the whole
 * session and process group of its command go (SIGKILL), for a worker the
 * worker alone (it shares the daemon's group). taskd waits until they are
 * gone (zombies count as gone: they run nothing), removes the records, and
 * only then do the jobs become lost or get retried.
 *
 * Windows. Between posix_spawn's clone and the write of the record (a few
 * microseconds: posix_spawn returns once the child has exec'd, then one
 * read of /proc/PID/stat and one small write) a crash leaves the command
 * unrecorded. A job whose command's leader had already exited when taskd
 * started again is not looked for further: what it left in its group is
 * left alone, as after a normal exit (with the leader gone its pid no longer
 * proves whose the group is).
 */
#ifndef TASKD_LEFTOVER_H
#define TASKD_LEFTOVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proctree.h"

#define LEFTOVER_DIR "live"


/*
 * Record the running process pid (our own child, not reaped yet), started at
 * unix time started_at, in the file path. 0, or -1 with errno.
 */
int leftover_record(const char *path, pid_t pid, double started_at);
/* Remove the record at path (its process was reaped). No-op for NULL. */
void leftover_forget(const char *path);
/* The record of job id's command / of worker pid in dir (malloc'd). */
char *leftover_job_path(const char *dir, uint64_t id);
char *leftover_worker_path(const char *dir, pid_t pid);

/*
 * A worker died under a job: kill what path records of the job's command,
 * if it is still that process (its session and group too), and remove the
 * record. Does not wait. 1 if something was killed, 0 if nothing was left,
 * -1 if there is no readable record.
 */
int leftover_kill(const char *path);
/*
 * Kill the children of parent, a live process of ours (a worker about to be
 * killed: its command, in its own session, would outlive it), with their
 * sessions and groups. Does not wait.
 */
void leftover_kill_children(pid_t parent);

/* What startup found of a job's last run. */
struct leftover_job {
	uint64_t id;
	double started_at; /* unix seconds, from the record */
	double ran;        /* seconds its command ran until killed now; 0 if it was gone */
	bool killed;       /* something of it was still running and was killed */
	bool survived;     /* it did not die within the wait: still running */
};

/*
 * Startup: kill what every record in dir names (checked as above), wait up
 * to max_wait seconds for all of it to be gone, remove the records. *jobs
 * (malloc'd, *njobs of them) says what was found for each job record. A
 * record that cannot be read is logged and removed.
 */
void leftover_reap(const char *dir, double max_wait, struct leftover_job **jobs, size_t *njobs);

#endif
