/*
 * How long a task waited for a CPU (run_schedstat_wait, run_schedstat_self:
 * exec.h), from the second field of /proc/.../schedstat. The router
 * discounts that wait from a run's wall time (doc/routing.md). Any thread.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "exec.h"

/* The second field of a schedstat line (run-queue wait, ns) in seconds; -1 if unreadable. */
static double
schedstat_parse(int fd, bool reread)
{
	unsigned long long cpu_ns, wait_ns;
	char buf[128];
	ssize_t n;

	n = reread ? pread(fd, buf, sizeof buf - 1, 0) : read(fd, buf, sizeof buf - 1);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	if (sscanf(buf, "%llu %llu", &cpu_ns, &wait_ns) != 2)
		return -1;
	return (double)wait_ns / 1e9;
}

double
run_schedstat_wait(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	double w;

	if (fd == -1)
		return -1;
	w = schedstat_parse(fd, false);
	close(fd);
	return w;
}

/* Each thread keeps its /proc/thread-self/schedstat open (fd + 1 as the key's value). */
static pthread_key_t schedstat_key;
static bool schedstat_key_ok;
static pthread_once_t schedstat_once = PTHREAD_ONCE_INIT;

static void
schedstat_close(void *v)
{
	close((int)((intptr_t)v - 1));
}

static void
schedstat_init(void)
{
	schedstat_key_ok = pthread_key_create(&schedstat_key, schedstat_close) == 0;
}

double
run_schedstat_self(void)
{
	intptr_t v;
	int fd;

	pthread_once(&schedstat_once, schedstat_init);
	if (!schedstat_key_ok)
		return run_schedstat_wait("/proc/thread-self/schedstat");
	if ((v = (intptr_t)pthread_getspecific(schedstat_key)) == 0) {
		if ((fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC)) == -1)
			return -1;
		if (pthread_setspecific(schedstat_key, (void *)(intptr_t)(fd + 1)) != 0) {
			close(fd);
			return run_schedstat_wait("/proc/thread-self/schedstat");
		}
		v = fd + 1;
	}
	return schedstat_parse((int)(v - 1), true);
}
