#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "spawncg.h"

/*
 * The child's side, between vfork and exec: it shares the parent's memory
 * (the parent thread waits), so it only writes *err and calls system call
 * wrappers. Returns only on failure, with the errno value.
 */
static int
child(const struct spawn_req *q)
{
	struct sigaction dfl;
	sigset_t none;
	int sig, fd;

	/* The parent's handlers must not run here: defaults, then unblock (as POSIX_SPAWN_SETSIGDEF). */
	memset(&dfl, 0, sizeof dfl);
	dfl.sa_handler = SIG_DFL;
	for (sig = 1; sig < NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			sigaction(sig, &dfl, NULL); /* EINVAL for the C library's own: harmless */
	if (q->own_session && setsid() == -1)
		return errno;
	if (q->cgroup_procs != -1 && write(q->cgroup_procs, "0", 1) != 1)
		return errno;
	if (q->in_fd != -1) {
		if (dup2(q->in_fd, 0) == -1)
			return errno;
	} else {
		if ((fd = open("/dev/null", O_RDONLY)) == -1)
			return errno;
		if (fd != 0 && (dup2(fd, 0) == -1 || close(fd) == -1))
			return errno;
	}
	if (dup2(q->out_fd, 1) == -1 || dup2(q->err_fd, 2) == -1)
		return errno;
	if (q->fd3 != -1 && dup2(q->fd3, 3) == -1)
		return errno;
	if (q->cwd != NULL && chdir(q->cwd) == -1)
		return errno;
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) == -1)
		return errno;
	execve(q->path, q->argv, q->env);
	return errno;
}

int
spawn_into(const struct spawn_req *q, pid_t *pid)
{
	volatile int err = 0;
	sigset_t all, old;
	pid_t p;
	int status;

	/* Nothing may be delivered in the child before it reset the dispositions. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	p = vfork();
	if (p == 0) {
		err = child(q);
		_exit(127);
	}
	if (p == -1)
		err = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (p == -1)
		return err;
	if (err != 0) {
		while (waitpid(p, &status, 0) == -1 && errno == EINTR)
			;
		return err;
	}
	*pid = p;
	return 0;
}
