/* Child processes of the daemon's pools: small shared helpers (proc.h). */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "proc.h"

bool
proc_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof si);
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == -1)
		return errno != EINTR;
	return si.si_pid != 0;
}

void
proc_status_text(int status, bool reaped, char *buf, size_t len)
{
	if (!reaped)
		snprintf(buf, len, "exit status unknown");
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
}

int
proc_fd_off(int fd, int target)
{
	int nfd;

	if (fd != target)
		return fd;
	nfd = fcntl(fd, F_DUPFD_CLOEXEC, target + 1);
	close(fd);
	return nfd;
}
