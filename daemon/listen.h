/*
 * The control socket's file, for server.c: binding a path (a stale socket
 * file nobody answers on is replaced; a live one, or a file that is not a
 * socket, is refused) and taking over a socket systemd passed. Startup
 * only.
 */
#ifndef TASKD_LISTEN_H
#define TASKD_LISTEN_H

#include <sys/types.h>

/*
 * A new non-blocking, close-on-exec AF_UNIX stream socket bound to path,
 * the file given mode (created under umask 0177 first, so it is never
 * more open than that). -1 with *cause.
 */
int listen_bind(const char *path, mode_t mode, char **cause);
/*
 * A listening socket passed by systemd, made non-blocking and
 * close-on-exec; *path (malloc'd) is its path, "(abstract)" for an
 * abstract socket. -1 with *cause.
 */
int listen_adopt(int fd, char **path, char **cause);

#endif
