/*
 * libFuzzer target: the configuration loader.
 *
 * config_load() takes a path, so each input is written to one memfd made at
 * the first run and loaded through /proc/self/fd/N. A file that loads is
 * compared with the defaults (config_diff) and freed; a refused one must
 * come back with a "FILE:LINE: message" cause.
 *
 * libconfig 1.5 (Debian 12) leaks the text of a string token its parser
 * drops on a syntax error ('""' or '"a"' alone, 'x = {"a" }': 1 or 64 bytes,
 * reproduced with config_read_string/config_destroy and no taskd code).
 * Left alone, that leak makes libFuzzer turn its leak check off after 1000
 * inputs and grows the heap until the RSS limit. So allocations are
 * tracked (sanitizer malloc/free hooks) around config_load(), and when
 * libconfig on its own rejects the input, whatever config_load() left
 * allocated is freed here: only then, so a leak of taskd's on any file that
 * parses (unknown keys, bad values, a valid file) is still reported.
 *
 * libconfig's "@include" would let an input open any file on the machine
 * (/dev/stdin, a FIFO: a hang that is not taskd's); inputs containing it are
 * skipped. The configuration file is the administrator's, not a client's.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libconfig.h>
#include <sanitizer/allocator_interface.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* ---- live allocations between track_begin() and track_end() ---- */

#define TRACK_BITS 17
#define TRACK_SLOTS (1u << TRACK_BITS) /* a 4 KiB file makes far fewer than half */
#define TOMB ((void *)1)
/* Not instrumented: allocation counts must not look like new coverage. */
#define UNCOVERED __attribute__((no_sanitize("coverage")))

static void *slots[TRACK_SLOTS];
static uint32_t used[TRACK_SLOTS]; /* slots filled since track_begin() */
static size_t nused;
static bool tracking, overflow;

UNCOVERED static size_t
slot_of(const volatile void *p)
{
	/* Fibonacci hashing of the address without its alignment bits. */
	return (size_t)((((uint64_t)(uintptr_t)p >> 4) * UINT64_C(0x9e3779b97f4a7c15)) >>
			(64 - TRACK_BITS));
}

UNCOVERED static void
on_malloc(const volatile void *p, size_t size)
{
	size_t i, tomb = SIZE_MAX;

	(void)size;
	if (!tracking || p == NULL)
		return;
	if (nused >= TRACK_SLOTS / 2) { /* keep probes short and finite */
		overflow = true;
		return;
	}
	for (i = slot_of(p); slots[i] != NULL; i = (i + 1) & (TRACK_SLOTS - 1))
		if (slots[i] == TOMB && tomb == SIZE_MAX)
			tomb = i;
	if (tomb != SIZE_MAX)
		i = tomb;
	else
		used[nused++] = (uint32_t)i;
	slots[i] = (void *)p;
}

UNCOVERED static void
on_free(const volatile void *p)
{
	size_t i;

	if (!tracking || p == NULL)
		return;
	for (i = slot_of(p); slots[i] != NULL; i = (i + 1) & (TRACK_SLOTS - 1)) {
		if (slots[i] == p) {
			slots[i] = TOMB;
			return;
		}
	}
}

UNCOVERED static void
track_begin(void)
{
	size_t i;

	for (i = 0; i < nused; i++)
		slots[used[i]] = NULL;
	nused = 0;
	overflow = false;
	tracking = true;
}

/* Stop tracking; with release, free what is still allocated. */
UNCOVERED static void
track_end(bool release)
{
	size_t i;
	void *p;

	tracking = false;
	if (overflow && release) /* cannot tell what is left: LSan may report it */
		fprintf(stderr, "fuzz-config: over %u allocations, not freeing libconfig's leak\n",
			TRACK_SLOTS / 2);
	for (i = 0; !overflow && release && i < nused; i++) {
		if ((p = slots[used[i]]) != TOMB) {
			slots[used[i]] = TOMB;
			free(p);
		}
	}
}

/* Does libconfig alone accept the file? Its own leak is freed here. */
UNCOVERED static bool
libconfig_parses(const uint8_t *data, size_t size)
{
	config_t lc;
	FILE *f;
	bool ok;

	if (size == 0)
		return true;
	track_begin();
	if ((f = fmemopen((void *)data, size, "r")) == NULL) {
		perror("fmemopen");
		abort();
	}
	config_init(&lc);
	ok = config_read(&lc, f) == CONFIG_TRUE;
	config_destroy(&lc);
	fclose(f);
	track_end(true);
	return ok;
}

/* ---- the target ---- */

static int memfd = -1;
static char path[64];

static void
count_key(const char *key, void *arg)
{
	(void)key;
	(*(int *)arg)++;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct config cfg, def;
	char *cause = NULL;
	bool parses;
	int n = 0;

	if (memmem(data, size, "@include", 8) != NULL)
		return 0;
	if (memfd == -1) {
		if (__sanitizer_install_malloc_and_free_hooks(on_malloc, on_free) == 0) {
			fprintf(stderr, "fuzz-config: cannot install malloc hooks\n");
			abort();
		}
		if ((memfd = memfd_create("fuzz-config", MFD_CLOEXEC)) == -1) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof path, "/proc/self/fd/%d", memfd);
	}
	if (ftruncate(memfd, 0) == -1 ||
	    (size > 0 && pwrite(memfd, data, size, 0) != (ssize_t)size)) {
		perror("memfd write");
		abort();
	}
	parses = libconfig_parses(data, size);

	track_begin();
	if (config_load(path, &cfg, &cause) == 0) {
		if (!parses || cause != NULL)
			abort();
		config_defaults(&def);
		if (config_diff(&cfg, &def, count_key, &n) != n)
			abort();
		config_free(&cfg);
		config_free(&cfg); /* documented as safe twice */
	} else {
		if (cause == NULL || strchr(cause, ':') == NULL)
			abort();
		free(cause);
		config_free(&cfg);
	}
	track_end(!parses);
	return 0;
}
