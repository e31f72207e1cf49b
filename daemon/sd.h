/*
 * Everything systemd (doc/design.md "Running under systemd"), through
 * libsystemd's sd-daemon API. Each
 * call is a no-op when taskd was not started by systemd (no NOTIFY_SOCKET,
 * no LISTEN_FDS, no JOURNAL_STREAM), so taskd works the same without it.
 * Loop thread only. Names avoid libsystemd's own sd_* symbols.
 */
#ifndef TASKD_SD_H
#define TASKD_SD_H

#include <stdbool.h>

struct event_base;

/* stderr is connected to the journal (JOURNAL_STREAM matches its dev:ino). */
bool sd_stderr_journal(void);

/*
 * The listening socket systemd passed (socket activation): its fd, 0 when
 * none was passed, -1 with *cause when what was passed is unusable.
 */
int sd_listen_socket(char **cause);

/* READY=1 with a first STATUS=; starts the watchdog pings when WATCHDOG_USEC is set. */
void sd_ready(struct event_base *base, const char *status);
/* STATUS= (only sent when it changed). */
void sd_set_status(const char *status);
/* RELOADING=1 + MONOTONIC_USEC=; then sd_reloaded() sends READY=1 again. */
void sd_reloading(void);
void sd_reloaded(void);
void sd_stopping(void);
/* Stop the watchdog timer (teardown). */
void sd_done(void);

#endif
