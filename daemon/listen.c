#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "listen.h"
#include "log.h"
#include "xmalloc.h"

static int
fill_addr(struct sockaddr_un *sun, const char *path, char **cause)
{
	memset(sun, 0, sizeof *sun);
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof sun->sun_path) {
		xasprintf(cause, "socket path too long (%zu bytes, at most %zu): %s",
			  strlen(path), sizeof sun->sun_path - 1, path);
		return -1;
	}
	strcpy(sun->sun_path, path);
	return 0;
}

/* Is a live server answering on this path? */
static int
socket_alive(const struct sockaddr_un *sun)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), alive;

	if (fd == -1)
		return 0;
	alive = connect(fd, (const struct sockaddr *)sun, sizeof *sun) == 0;
	close(fd);
	return alive;
}

static int
bind_socket(int fd, const struct sockaddr_un *sun, mode_t mode, char **cause)
{
	struct stat st;
	mode_t old;
	int rc;

	old = umask(0177);
	rc = bind(fd, (const struct sockaddr *)sun, sizeof *sun);
	if (rc == -1 && errno == EADDRINUSE) {
		if (socket_alive(sun)) {
			xasprintf(cause, "another taskd is already running on %s", sun->sun_path);
			umask(old);
			return -1;
		}
		if (lstat(sun->sun_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			xasprintf(cause, "%s exists and is not a socket", sun->sun_path);
			umask(old);
			return -1;
		}
		log_info("replacing stale socket %s", sun->sun_path);
		unlink(sun->sun_path);
		rc = bind(fd, (const struct sockaddr *)sun, sizeof *sun);
	}
	umask(old);
	if (rc == -1) {
		xasprintf(cause, "bind %s: %s", sun->sun_path, strerror(errno));
		return -1;
	}
	if (chmod(sun->sun_path, mode) == -1) {
		xasprintf(cause, "chmod %s: %s", sun->sun_path, strerror(errno));
		return -1;
	}
	return 0;
}

int
listen_bind(const char *path, mode_t mode, char **cause)
{
	struct sockaddr_un sun;
	int fd;

	if (fill_addr(&sun, path, cause) == -1)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		xasprintf(cause, "socket: %s", strerror(errno));
		return -1;
	}
	if (bind_socket(fd, &sun, mode, cause) == -1) {
		close(fd);
		return -1;
	}
	return fd;
}

int
listen_adopt(int fd, char **path, char **cause)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof sun;
	int flags;

	memset(&sun, 0, sizeof sun);
	if (getsockname(fd, (struct sockaddr *)&sun, &len) == -1) {
		xasprintf(cause, "getsockname: %s", strerror(errno));
		return -1;
	}
	flags = fcntl(fd, F_GETFL);
	if (flags == -1 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) == -1 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
		xasprintf(cause, "fcntl on the passed socket: %s", strerror(errno));
		return -1;
	}
	*path = xstrdup(sun.sun_path[0] != '\0' ? sun.sun_path : "(abstract)");
	return 0;
}
