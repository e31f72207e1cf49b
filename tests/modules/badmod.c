/*
 * Broken modules for tests/unit/test-modules.c and tests/e2e/test_modules.py:
 * one source, one way of being wrong per -D define (tests/meson.build builds
 * each as its own .so). BAD_INIT_WORKER and BAD_INIT_CRASH_WORKER load in
 * the daemon but not in a worker process (`taskd --worker`): init() fails
 * there, or crashes; their type is class cpu, to be run in one.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <taskd/module.h>

static int
bad_run(struct taskd_job *job)
{
	(void)job;
	return TASKD_OK;
}

#if defined(BAD_INIT_WORKER) || defined(BAD_INIT_CRASH_WORKER)
/* Is this process a worker: is its first argument --worker? */
static int
in_worker(void)
{
	char buf[256];
	ssize_t n;
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return (size_t)n > strlen(buf) + 1 && strcmp(buf + strlen(buf) + 1, "--worker") == 0;
}
#endif

static int
bad_init(char *error, size_t len)
{
#if defined(BAD_INIT_FAIL)
	snprintf(error, len, "no licence for this host");
	return -1;
#elif defined(BAD_INIT_WORKER)
	if (in_worker()) {
		snprintf(error, len, "no licence in a worker");
		return -1;
	}
	return 0;
#elif defined(BAD_INIT_CRASH_WORKER)
	if (in_worker()) {
		signal(SIGSEGV, SIG_DFL); /* the default action, not a sanitizer's report */
		raise(SIGSEGV);
	}
	return 0;
#else
	(void)error;
	(void)len;
	return 0;
#endif
}

#if defined(BAD_DUP_BUILTIN)
#define TYPE_NAME "sleep"
#elif defined(BAD_DUP_TESTMOD)
#define TYPE_NAME "tm-io"
#elif defined(BAD_NAME)
#define TYPE_NAME "a b"
#elif defined(BAD_EXEC)
#define TYPE_NAME "exec"
#else
#define TYPE_NAME "bad-type"
#endif

static const struct taskd_type bad_type = {
#ifdef BAD_TYPE_SIZE
	.size = 8,
#else
	TASKD_TYPE_INIT,
#endif
	.name = TYPE_NAME,
#if defined(BAD_CLASS)
	.cls = 7,
#elif defined(BAD_INIT_WORKER) || defined(BAD_INIT_CRASH_WORKER)
	.cls = TASKD_TYPE_CPU,
#else
	.cls = TASKD_TYPE_IO,
#endif
#ifndef BAD_NO_RUN
	.run = bad_run,
#endif
};

/* Two types of one name in one module. */
static const struct taskd_type twin_type = {
	TASKD_TYPE_INIT, .name = "bad-type", .cls = TASKD_TYPE_IO, .run = bad_run,
};

static const struct taskd_type *const bad_types[] = {
	&bad_type,
#ifdef BAD_TWINS
	&twin_type,
#endif
	NULL,
};

#if defined(BAD_V2)
#define SYMBOL taskd_module_v2
#elif defined(BAD_NO_SYMBOL)
#define SYMBOL taskd_module_v1_not
#else
#define SYMBOL taskd_module_v1
#endif

__attribute__((visibility("default"))) const struct taskd_module SYMBOL = {
#ifdef BAD_ABI
	.abi = 99,
	.size = sizeof(struct taskd_module),
#else
	TASKD_MODULE_INIT,
#endif
	.name = "badmod",
	.types = bad_types,
	.init = bad_init,
};

/* Keep twin_type used in every variant. */
const struct taskd_type *badmod_twin(void);
const struct taskd_type *
badmod_twin(void)
{
	return &twin_type;
}
