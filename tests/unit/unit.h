/*
 * Helpers several unit tests share. Header only, all static inline: each
 * test is a program of its own, linked with the daemon's library.
 */
#ifndef TASKD_TESTS_UNIT_H
#define TASKD_TESTS_UNIT_H

#include <ftw.h>
#include <stdio.h>
#include <sys/stat.h>

static inline int
unit_rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Remove dir and everything below it (a test's temporary directory). */
static inline void
unit_rmtree(const char *dir)
{
	nftw(dir, unit_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
