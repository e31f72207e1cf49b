/*
 * Control operations: one handler per protocol op, dispatched through a
 * table. Requests arrive as frames from server.c; answers go back on the
 * same client, immediately or (for `wait`) when the job finishes.
 * Loop thread only.
 */
#ifndef TASKD_CTL_H
#define TASKD_CTL_H

#include <stddef.h>

struct client;

/* The server's handlers (server_set_handlers), with the struct taskd as arg. */
void ctl_frame_cb(struct client *c, const char *line, size_t len, void *arg);
void ctl_close_cb(struct client *c, void *arg);

#endif
