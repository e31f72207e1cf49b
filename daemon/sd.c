/*
 * systemd integration: readiness and status notifications, the watchdog,
 * socket activation and journal detection. The watchdog ping is sent from
 * a libevent timer on the loop thread, so a wedged loop really stops the
 * pings and systemd restarts the service.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "log.h"
#include "sd.h"
#include "xmalloc.h"

static struct event *watchdog_ev;
static char *last_status;

bool
sd_stderr_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(2, &st) == -1)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int
sd_listen_socket(char **cause)
{
	int n = sd_listen_fds(1);

	if (n == 0)
		return 0;
	if (n < 0) {
		xasprintf(cause, "socket activation: %s", strerror(-n));
		return -1;
	}
	if (n > 1) {
		xasprintf(cause, "socket activation: %d sockets passed, taskd uses exactly one", n);
		return -1;
	}
	if (sd_is_socket_unix(SD_LISTEN_FDS_START, SOCK_STREAM, 1, NULL, 0) <= 0) {
		xasprintf(cause, "socket activation: the passed socket is not a listening "
				 "AF_UNIX stream socket");
		return -1;
	}
	return SD_LISTEN_FDS_START;
}

static void
notify(const char *state)
{
	int rc = sd_notify(0, state);

	if (rc < 0)
		log_warnx("sd_notify: %s", strerror(-rc));
}

static void
sd_watchdog_cb(evutil_socket_t fd, short what, void *arg)
{
	notify("WATCHDOG=1");
}

void
sd_ready(struct event_base *base, const char *status)
{
	uint64_t usec = 0;
	struct timeval tv;

	sd_set_status(status);
	notify("READY=1");
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return;
	/* Ping at half the interval, as sd_watchdog_enabled(3) advises. */
	usec /= 2;
	tv.tv_sec = (time_t)(usec / 1000000);
	tv.tv_usec = (suseconds_t)(usec % 1000000);
	watchdog_ev = event_new(base, -1, EV_PERSIST, sd_watchdog_cb, NULL);
	if (watchdog_ev == NULL || event_add(watchdog_ev, &tv) == -1)
		fatalx("cannot start the watchdog timer");
	notify("WATCHDOG=1");
	log_info("systemd watchdog: pinging every %.3f s", (double)usec / 1e6);
}

void
sd_set_status(const char *status)
{
	char *line;

	if (last_status != NULL && strcmp(last_status, status) == 0)
		return;
	free(last_status);
	last_status = xstrdup(status);
	line = xprintf("STATUS=%s", status);
	notify(line);
	free(line);
}

void
sd_reloading(void)
{
	struct timespec ts;
	char *line;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	line = xprintf("RELOADING=1\nMONOTONIC_USEC=%llu",
		       (unsigned long long)ts.tv_sec * 1000000ULL +
			       (unsigned long long)ts.tv_nsec / 1000ULL);
	notify(line);
	free(line);
}

void
sd_reloaded(void)
{
	notify("READY=1");
}

void
sd_stopping(void)
{
	notify("STOPPING=1");
}

void
sd_done(void)
{
	if (watchdog_ev != NULL)
		event_free(watchdog_ev);
	watchdog_ev = NULL;
	free(last_status);
	last_status = NULL;
}
