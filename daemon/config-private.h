/*
 * Private to the files of the configuration: config.c (the key table, the
 * names of enum values, defaults, freeing, comparing two configurations),
 * config-value.c (sizes, and the setters that parse one setting into its
 * field) and config-load.c (the walk over the file, the lists of groups,
 * the cross-field checks, config_load).
 */
#ifndef TASKD_CONFIG_PRIVATE_H
#define TASKD_CONFIG_PRIVATE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include <libconfig.h>

#include "config.h"

#define NOMAX LLONG_MAX /* no upper bound besides the field's type */
#define nitems(a) (sizeof(a) / sizeof((a)[0]))
#define OFF(f) offsetof(struct config, f)

enum key_kind {
	K_INT,    /* int, integer only */
	K_FLOAT,  /* double, integer or float */
	K_SIZE,   /* uint64_t bytes, integer or "16M" */
	K_PATH,   /* char *, absolute path */
	K_SOCKET, /* char *, absolute path that fits in sun_path */
	K_MODE,   /* mode_t, "0660" or an integer */
	K_ENUM,   /* int, a name turned into a value by parse() */
	K_BOOL,   /* int 0/1, true or false */
	K_SHARE,  /* struct config_share: "75%", or a size like K_SIZE */
	K_STRV,   /* char ** (NULL-terminated), an array or list of non-empty strings */
	K_LISTEN, /* char *, an address to listen on (addr_parse_listen) */
	K_URL,    /* char *, an http:// URL (addr_parse_url) */
	K_CHECKED, /* char *, a string parse() accepts (0), as choices describes */
};

struct key {
	const char *path;
	enum key_kind kind;
	size_t off;
	long long min, max;
	int (*parse)(const char *); /* K_ENUM */
	const char *choices;        /* K_ENUM, for messages */
};

typedef int (*setter_fn)(const struct key *, const config_setting_t *, void *, char **);

/* config.c */
/* The row of keys[] for a dotted path ("http.listen"), or NULL. */
const struct key *config_key_find(const char *path);
/* Does some key of keys[] lie in the group path ("http")? */
bool config_is_group(const char *path);
void config_modules_free(struct config *cfg);
void config_queues_free(struct config *cfg);

/* config-value.c */
/* By enum key_kind: parse one setting into its field, or say why not in *why. */
extern const setter_fn config_setters[];
bool config_is_integer(const config_setting_t *s);

#endif
