/*
 * Kind keys: what the router learns per (doc/routing.md, "Kind keys").
 * A pure function of a job's description (name, built-in type, argv,
 * cwd), no I/O: the keys of one job from the finest (the script a shell
 * or an interpreter runs) to the coarsest (the program), so that the
 * router can decide on the finest key it has seen enough of.
 *
 *   sh -c 'python3 train.py'    python3 proj/train.py, python3 train.py, python3, sh
 *   nice -n 5 gzip -9 big.log   gzip
 *   sh -c 'for f in *; do flac "$f"; done'   sh -c for flac, sh
 *
 * Wrappers (env, nice, timeout, ...) are skipped to the command they run;
 * shells with -c key on the script's command words (one simple command is
 * seen through: its own keys); interpreters key on their script, module or
 * inline code (digits folded to N). A key is at most KIND_KEY_MAX bytes of
 * valid UTF-8 without control characters; a longer one keeps its head and
 * ends in "~" and a hash of the whole.
 */
#ifndef TASKD_KINDKEY_H
#define TASKD_KINDKEY_H

#include <stddef.h>

#define KIND_KEY_MAX 64
#define KIND_MAX_KEYS 5

struct kind_keys {
	size_t n; /* at least 1 */
	char key[KIND_MAX_KEYS][KIND_KEY_MAX + 1];
};

/*
 * The keys of a job: "name:NAME" first when it has a name, then
 * "handler:HANDLER" for a job a handler runs (handler not NULL),
 * "builtin:TYPE" for a built-in (type not NULL and not "exec"), else the
 * keys of argv (relative script paths are taken relative to cwd, which
 * may be NULL). Never empty: "?" when nothing else applies.
 */
void kind_keys(const char *name, const char *type, const char *handler, char *const *argv,
	       const char *cwd, struct kind_keys *out);

/* The keys as one malloc'd block "k1\0k2\0...\0\0" (kind_keys_next walks it). */
char *kind_keys_pack(const struct kind_keys *k);
void kind_keys_unpack(const char *packed, struct kind_keys *k);
/* The first key of a packed block, or "?" for NULL. */
const char *kind_keys_first(const char *packed);

#endif
