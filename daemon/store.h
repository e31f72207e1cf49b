/*
 * Durable job records in state_dir/taskd.db (SQLite, WAL, synchronous=NORMAL
 * plus an explicit store_sync).
 * The store keeps opaque text records keyed by job id, and the next job id;
 * it knows nothing about jobs. Only the loop thread uses it.
 *
 * Errors come back as -1 (or NULL) with *cause malloc'd, for instance
 * "insert job 17: database or disk is full"; nothing here exits or aborts
 * except the x-allocators on out-of-memory.
 */
#ifndef TASKD_STORE_H
#define TASKD_STORE_H

#include <stdint.h>

#define STORE_FILE "taskd.db"
#define STORE_SCHEMA_VERSION 2

struct store;

/*
 * Open or create state_dir/taskd.db: WAL mode, synchronous=NORMAL (a commit
 * is written to the log; store_sync makes it survive power loss), busy_timeout, foreign keys off, a schema
 * version in PRAGMA user_version with migrations (version 2 now: table
 * jobs(id INTEGER PRIMARY KEY, state TEXT NOT NULL, record TEXT NOT NULL),
 * table meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) holding next_id,
 * and since version 2 table arrays(id INTEGER PRIMARY KEY, last INTEGER NOT
 * NULL, record TEXT NOT NULL): job arrays, whose jobs have ids id .. last).
 * A newer schema version than this build knows, a corrupt file (run PRAGMA
 * quick_check on open), or a file that is not a database → NULL with *cause
 * "PATH: database is corrupt (...)"/"PATH: written by a newer taskd (schema
 * N > M)"/... — never reset or overwrite it.
 *
 * path is the database file (created with mode 0600; an existing file loses
 * any group and other permission bits); if path is a directory, the file is
 * STORE_FILE inside it. SQLite's -wal and -shm files take the same mode.
 */
struct store *store_open(const char *path, char **cause);
void store_close(struct store *st);
/* The next job id: persisted in meta, never decreases, never reused even after rows are deleted. */
uint64_t store_next_id(const struct store *st);
/*
 * Group commit: everything between begin and commit is one transaction. A
 * committed transaction survives the daemon's death (kill -9); it survives a
 * power loss once store_sync has returned 0.
 * If a put or delete inside the transaction fails, the whole transaction is
 * rolled back at once (nothing of it reaches the disk) and every later put,
 * delete and the commit return -1 with that first cause; store_rollback (or
 * the failing store_commit) ends it.
 */
int store_begin(struct store *st, char **cause);
int store_commit(struct store *st, char **cause); /* on failure the transaction is rolled back */
/*
 * fsync the write-ahead log (and, the first time, the directory): every
 * transaction committed before now survives a power loss. Outside a
 * transaction only. -1 with *cause ("sync: PATH: disk I/O error").
 */
int store_sync(struct store *st, char **cause);
/* Discard the transaction; next_id returns to its committed value. No-op outside one. */
void store_rollback(struct store *st);
/*
 * Inside a transaction: insert or replace a job row; advances next_id past id.
 * Outside a transaction, store_put and store_delete are their own transaction
 * (autocommit): on return 0 the change is in the log (store_sync for the disk).
 * Ids run from 0 to INT64_MAX - 1; state and record must not be NULL.
 */
int store_put(struct store *st, uint64_t id, const char *state, const char *record, char **cause);
/* Deleting an id that is not stored is not an error. next_id is unchanged. */
int store_delete(struct store *st, uint64_t id, char **cause);
/*
 * All rows in id order: cb(id, state, record, arg); a non-zero return from cb stops and is
 * returned. The strings are valid only during the callback; cb must not change the store.
 */
int store_load(struct store *st,
               int (*cb)(uint64_t id, const char *state, const char *record, void *arg), void *arg,
               char **cause);
/*
 * Job arrays (table arrays): put an array's record (like store_put:
 * advances next_id past last, its last job's id); delete it with the rows of
 * all its jobs (ids id .. last); load them all in id order (cb as for
 * store_load; the strings are valid during the callback only).
 */
int store_array_put(struct store *st, uint64_t id, uint64_t last, const char *record,
		    char **cause);
int store_array_delete(struct store *st, uint64_t id, uint64_t last, char **cause);
int store_array_load(struct store *st, int (*cb)(uint64_t id, const char *record, void *arg),
		     void *arg, char **cause);
/*
 * Meta values whose key starts with prefix: cb(key, value, arg) for each, in
 * key order (a non-zero return stops and is returned); -1 with *cause.
 */
int store_meta_each(struct store *st, const char *prefix,
		    int (*cb)(const char *key, int64_t value, void *arg), void *arg, char **cause);
/* Remove a meta value (not next_id); like store_meta_set inside or outside a transaction. */
int store_meta_delete(struct store *st, const char *key, char **cause);

/*
 * Is the database still where it was opened? -1 with *cause ("PATH was
 * deleted while taskd ran", "... replaced by another file", ...) when the
 * file was unlinked (its link count is 0), its path is gone (the state
 * directory deleted or moved) or names another file, or the WAL file, once
 * seen, went the same way: commits would then go to a file nobody will
 * ever open again. A few stat calls; 0 when it cannot tell (EACCES, EIO).
 */
int store_check(struct store *st, char **cause);
/* Statistics for status: rows, file size of db + wal. */
void store_stats(const struct store *st, uint64_t *rows, uint64_t *bytes);

/* Additions. */

/* The database file's path (as opened, STORE_FILE appended for a directory). */
const char *store_path(const struct store *st);
/*
 * Cap the database at about max_bytes (rounded down to whole pages, never
 * below its current size); 0 removes the cap. A put beyond it fails like a
 * full disk ("database or disk is full"). Not persisted: set it after each open.
 */
int store_set_max_size(struct store *st, uint64_t max_bytes, char **cause);

/*
 * Small named integers in table meta (daemon settings such as paused_cpu),
 * besides next_id, which only the store writes. get: 0 and *value, 1 if
 * key is not stored (*value untouched), -1 with *cause. set: inside a
 * transaction like store_put (a failure voids it), else its own
 * transaction (autocommit).
 */
int store_meta_get(struct store *st, const char *key, int64_t *value, char **cause);
int store_meta_set(struct store *st, const char *key, int64_t value, char **cause);

#endif
