/* Child processes of the daemon's pools (ppool.c, hpool.c): small shared helpers. */
#ifndef TASKD_PROC_H
#define TASKD_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Has pid exited (a zombie, or gone)? Does not reap it. */
bool proc_exited(pid_t pid);
/* "exited with status N", "killed by signal N" or "exit status unknown" (not reaped) into buf. */
void proc_status_text(int status, bool reaped, char *buf, size_t len);
/*
 * fd, moved off target if it sits there (a dup2 of an fd onto itself in a
 * child keeps its close-on-exec flag): the fd to dup2 onto target, -1 on error.
 */
int proc_fd_off(int fd, int target);

#endif
