/*
 * The struct run object (exec.h): creating one with its cancel eventfd
 * (reused from runs freed earlier: two system calls less per job),
 * cancelling it from any thread, its progress message, freeing it;
 * clearing and moving a run result (the strings it owns). Running it:
 * exec.c (run_execute, exec_run) and modrun.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "exec.h"
#include "log.h"
#include "xmalloc.h"

/* Cancel eventfds of freed runs, drained, for the next runs (two system calls less per job). */
#define SPARE_EVENTFDS 64
static int spare_fds[SPARE_EVENTFDS];
static int nspare_fds;
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;

static int
cancel_fd_get(void)
{
	int fd = -1;

	pthread_mutex_lock(&spare_lock);
	if (nspare_fds > 0)
		fd = spare_fds[--nspare_fds];
	pthread_mutex_unlock(&spare_lock);
	if (fd == -1 && (fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) == -1)
		log_warn("eventfd (the run cannot be cancelled)");
	return fd;
}

static void
cancel_fd_put(int fd, bool written)
{
	uint64_t v;

	if (fd == -1)
		return;
	/* Reused only when surely empty: never written, or drained now. */
	if (written && read(fd, &v, sizeof v) != sizeof v) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&spare_lock);
	if (nspare_fds < SPARE_EVENTFDS) {
		spare_fds[nspare_fds++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&spare_lock);
	if (fd != -1)
		close(fd);
}

struct run *
run_new(bool cancellable)
{
	struct run *r = xcalloc(1, sizeof *r);

	r->cancel_fd = cancellable ? cancel_fd_get() : -1;
	pthread_mutex_init(&r->progress_lock, NULL);
	run_result_clear(&r->res);
	return r;
}

void
run_spec_free(struct run_spec *s)
{
	strv_free(s->argv);
	strv_free(s->env);
	free(s->cwd);
	free(s->in_path);
	free(s->out_path);
	free(s->err_path);
	free(s->cgroup);
	free(s->track_path);
	free(s->input);
	memset(s, 0, sizeof *s);
}

void
run_result_clear(struct run_result *res)
{
	free(res->result);
	free(res->error);
	free(res->cgroup_error);
	memset(res, 0, sizeof *res);
	res->exit_code = -1;
	res->max_rss_kb = -1;
	res->mem_peak_kb = -1;
}

void
run_result_move(struct run_result *dst, struct run_result *src)
{
	run_result_clear(dst);
	*dst = *src;
	src->result = NULL;
	src->error = NULL;
	src->cgroup_error = NULL;
}

void
run_free(struct run *r)
{
	if (r == NULL)
		return;
	run_spec_free(&r->spec);
	run_result_clear(&r->res);
	free(r->progress);
	pthread_mutex_destroy(&r->progress_lock);
	cancel_fd_put(r->cancel_fd, atomic_load(&r->cancelled) || atomic_load(&r->controlled));
	free(r);
}

void
run_cancel(struct run *r)
{
	uint64_t one = 1;
	int saved = errno;

	atomic_store(&r->cancelled, true);
	if (r->cancel_fd != -1 && write(r->cancel_fd, &one, sizeof one) == -1) {
		/* EAGAIN: the counter is full, so it is readable already. */
	}
	errno = saved;
}

void
run_stop_output(struct run *r)
{
	atomic_store(&r->quiet, true);
}

bool
run_cancelled(struct run *r)
{
	return atomic_load(&r->cancelled);
}

void
run_suspend(struct run *r, bool suspend)
{
	uint64_t one = 1;
	int saved = errno;

	atomic_store(&r->suspend, suspend);
	atomic_store(&r->controlled, true);
	if (r->cancel_fd != -1 && write(r->cancel_fd, &one, sizeof one) == -1) {
		/* EAGAIN: the counter is full, so it is readable already. */
	}
	errno = saved;
}

void
run_set_progress(struct run *r, const char *message)
{
	char *copy = xstrdup(message), *old;

	pthread_mutex_lock(&r->progress_lock);
	old = r->progress;
	r->progress = copy;
	pthread_mutex_unlock(&r->progress_lock);
	free(old);
	if (r->progress_cb != NULL)
		r->progress_cb(r, message, r->progress_arg);
}

char *
run_progress(struct run *r)
{
	char *copy;

	pthread_mutex_lock(&r->progress_lock);
	copy = r->progress != NULL ? xstrdup(r->progress) : NULL;
	pthread_mutex_unlock(&r->progress_lock);
	return copy;
}
