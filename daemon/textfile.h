/*
 * Small text files of the kernel (/proc, /sys/fs/cgroup): read whole into
 * a buffer, or write in one go. They appear and vanish with processes and
 * cgroups, so failing is ordinary: -1 with errno, nothing logged.
 */
#ifndef TASKD_TEXTFILE_H
#define TASKD_TEXTFILE_H

#include <stddef.h>
#include <sys/types.h>

/* At most len - 1 bytes of path into buf, NUL-terminated; their count, or -1. */
ssize_t textfile_read(const char *path, char *buf, size_t len);
/* Write text to path (no O_CREAT: kernel files exist or not); 0 or -1. */
int textfile_write(const char *path, const char *text);

#endif
