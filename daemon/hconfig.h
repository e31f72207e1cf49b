/* The `handlers` list of the configuration (config.h's struct handler_config). */
#ifndef TASKD_HCONFIG_H
#define TASKD_HCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <libconfig.h>

#include "config.h"

/* Load the list; -1 with *cause "FILE:LINE: handlers[N] (NAME).KEY: message". */
int hconfig_load(const config_setting_t *list, const char *path, struct handler_config **out,
		 size_t *n, char **cause);
/* fn("handlers.NAME") for each handler added, removed or changed; returns the count. */
int hconfig_diff(const struct config *a, const struct config *b,
		 void (*fn)(const char *key, void *arg), void *arg);
void hconfig_free(struct config *cfg);
/*
 * May this submitter (uid, primary gid, supplementary groups) use h? Yes
 * when h has no users/groups lists, for root and taskd's own user, and for
 * those the lists name.
 */
bool handler_allows(const struct handler_config *h, uid_t uid, gid_t gid, const gid_t *groups,
		    size_t ngroups);

#endif
