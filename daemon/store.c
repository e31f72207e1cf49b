/*
 * Durable job records: one SQLite database, state_dir/taskd.db.
 *
 * What is stored. Table jobs holds one row per job the daemon still knows:
 * its id, its state name and its record, JSON text made by job.c; the store
 * never looks inside either. Table meta holds next_id, the lowest id never
 * handed out: it only grows, so ids of deleted (pruned) jobs are never used
 * again. PRAGMA user_version is the schema version; store_open migrates an
 * older file step by step (migrations[] below) and refuses a newer one.
 *
 * Durability. The database runs in WAL mode with synchronous=NORMAL: COMMIT
 * returns once the transaction's pages are written to the write-ahead log
 * (so it survives kill -9 of the daemon: the kernel has the data), and
 * store_sync() fsyncs the log (then it also survives power loss). A
 * transaction that was not committed leaves no trace (SQLite ignores an
 * unfinished WAL tail on recovery). Splitting the two lets the caller decide
 * which commits must reach the platter before it answers (an acknowledged
 * submit) and which may share a later fsync (a job that started or finished).
 *
 * Group commit. store_begin .. store_commit is one transaction: the daemon
 * puts every job changed in one loop iteration and commits once, then one
 * store_sync covers every commit before it. A failed put or delete voids the whole transaction at once, so a
 * batch is on disk entirely or not at all. Outside begin/commit a put or a
 * delete is its own transaction.
 *
 * Refusals. A file that is not an SQLite database, fails PRAGMA quick_check,
 * carries a newer schema version or somebody else's tables is refused with
 * a cause naming it; it is never reset, migrated or written to (validation
 * runs before the first write, which is switching to WAL mode).
 *
 * Errors. SQLITE_FULL, SQLITE_IOERR and the rest come back as -1 with
 * *cause "<operation>: <sqlite message>"; the store stays usable. After a
 * full disk the failed transaction is rolled back and the WAL checkpointed
 * and truncated (reclaim_wal), so the space the WAL held serves the next
 * transaction; once the disk has room again, puts succeed again.
 *
 * Locking. locking_mode=EXCLUSIVE: the daemon holds the database's lock
 * from the first read until it closes it (no lock calls per transaction, no
 * -shm file); another process cannot read the file meanwhile.
 *
 * Threads. None: only the loop thread calls the store (SQLITE_OPEN_NOMUTEX).
 * Statements are prepared once in store_open and reset after each use.
 *
 * Files. The database file (creating, validating, migrating and opening it,
 * its size cap) is store-file.c; this file has the transactions, the rows
 * and the meta values.
 */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "store-private.h"
#include "xmalloc.h"

/* Run s to completion, then reset it; on error *cause is "what: sqlite message". */
static int
run(struct store *st, sqlite3_stmt *s, const char *what, char **cause)
{
	int rc;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		;
	if (rc != SQLITE_DONE) {
		xasprintf(cause, "%s: %s", what, sqlite3_errmsg(st->db));
		st->last_error = rc;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/*
 * The disk was full. The WAL only restarts from its beginning after a
 * checkpoint, and the automatic one waits for a commit that cannot happen:
 * copy the WAL into the database and truncate it, so that its space serves
 * the next transaction. Tried after the failure and, until it works, before
 * each transaction. Failing is harmless: a checkpoint copies committed pages
 * only and the WAL stays authoritative until it is complete.
 */
static void
reclaim_wal(struct store *st)
{
	int rc;

	rc = sqlite3_wal_checkpoint_v2(st->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_debug("%s: checkpoint: %s", st->path, sqlite3_errmsg(st->db));
		return;
	}
	st->reclaim = false;
}

/* Roll back whatever SQLite still holds open; the store's view follows. */
static void
rollback_db(struct store *st)
{
	char *cause = NULL;
	int error = st->last_error;

	if (!sqlite3_get_autocommit(st->db) &&
	    run(st, st->stmt[ST_ROLLBACK], "rollback", &cause) == -1) {
		log_warnx("%s: %s", st->path, cause);
		free(cause);
	}
	st->next_id = st->next_id_disk;
	st->last_error = SQLITE_OK;
	if ((error & 0xff) == SQLITE_FULL)
		st->reclaim = true;
	if (st->reclaim && sqlite3_get_autocommit(st->db))
		reclaim_wal(st);
}

/* A put or delete failed inside a transaction: void all of it. */
static void
tx_fail(struct store *st, const char *cause)
{
	rollback_db(st);
	st->tx_failed = xstrdup(cause);
}

static void
tx_end(struct store *st)
{
	st->in_tx = false;
	free(st->tx_failed);
	st->tx_failed = NULL;
}

void
store_close(struct store *st)
{
	int i;

	if (st == NULL)
		return;
	if (st->db != NULL && st->in_tx)
		rollback_db(st);
	for (i = 0; i < ST_MAX; i++)
		sqlite3_finalize(st->stmt[i]);
	/* The last connection checkpoints the WAL into the file and removes it. */
	if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK)
		log_warnx("%s: close: %s", st->path, sqlite3_errmsg(st->db));
	if (st->file_fd != -1)
		close(st->file_fd);
	free(st->tx_failed);
	free(st->wal_path);
	free(st->path);
	free(st);
}

/* A path that no longer names what it named: ENOENT or ENOTDIR (its directory went). */
static bool
path_gone(int err)
{
	return err == ENOENT || err == ENOTDIR;
}

int
store_check(struct store *st, char **cause)
{
	struct stat sb;

	if (fstat(st->file_fd, &sb) == 0 && sb.st_nlink == 0) {
		xasprintf(cause, "%s was deleted while taskd ran", st->path);
		return -1;
	}
	if (stat(st->path, &sb) == -1) {
		if (!path_gone(errno))
			return 0; /* cannot tell (EACCES, EIO...): not known to be gone */
		xasprintf(cause, "%s was deleted or moved while taskd ran (%s)", st->path,
			  strerror(errno));
		return -1;
	}
	if (sb.st_dev != st->dev || sb.st_ino != st->ino) {
		xasprintf(cause, "%s was replaced by another file while taskd ran", st->path);
		return -1;
	}
	/* The WAL holds the newest commits: it must stay too, once it exists. */
	if (stat(st->wal_path, &sb) == 0) {
		if (st->wal_ino == 0) {
			st->wal_dev = sb.st_dev;
			st->wal_ino = sb.st_ino;
		} else if (sb.st_dev != st->wal_dev || sb.st_ino != st->wal_ino) {
			xasprintf(cause, "%s was replaced by another file while taskd ran",
				  st->wal_path);
			return -1;
		}
	} else if (st->wal_ino != 0 && path_gone(errno)) {
		xasprintf(cause, "%s was deleted while taskd ran", st->wal_path);
		return -1;
	}
	return 0;
}

const char *
store_path(const struct store *st)
{
	return st->path;
}

uint64_t
store_next_id(const struct store *st)
{
	return st->next_id;
}

/* ---- transactions ---- */

int
store_begin(struct store *st, char **cause)
{
	if (st->in_tx) {
		xasprintf(cause, "begin: a transaction is already open");
		return -1;
	}
	if (st->reclaim)
		reclaim_wal(st);
	if (run(st, st->stmt[ST_BEGIN], "begin", cause) == -1) {
		rollback_db(st);
		return -1;
	}
	st->in_tx = true;
	st->tx_deleted = false;
	st->next_id_disk = st->next_id;
	return 0;
}

int
store_commit(struct store *st, char **cause)
{
	if (!st->in_tx) {
		xasprintf(cause, "commit: no transaction is open");
		return -1;
	}
	if (st->tx_failed != NULL) {
		xasprintf(cause, "%s", st->tx_failed);
		tx_end(st);
		return -1;
	}
	/*
	 * Opening reads next_id as max(meta, highest stored id + 1), so meta
	 * needs writing only when rows go: then the highest id given out may
	 * no longer be stored. Saves a page write per commit otherwise.
	 */
	if (st->tx_deleted && st->next_id != st->next_id_meta) {
		sqlite3_bind_int64(st->stmt[ST_SET_NEXT], 1, (sqlite3_int64)st->next_id);
		if (run(st, st->stmt[ST_SET_NEXT], "commit: update next_id", cause) == -1)
			goto fail;
	}
	if (run(st, st->stmt[ST_COMMIT], "commit", cause) == -1)
		goto fail;
	if (st->tx_deleted)
		st->next_id_meta = st->next_id;
	st->next_id_disk = st->next_id;
	tx_end(st);
	return 0;
fail:
	rollback_db(st);
	tx_end(st);
	return -1;
}

/* fsync the directory holding the database, so new -wal/-shm entries survive power loss. */
static int
sync_dir(struct store *st, char **cause)
{
	char *dir, *slash;
	int fd, rc = 0;

	dir = xstrdup(st->path);
	if ((slash = strrchr(dir, '/')) == NULL)
		strcpy(dir, ".");
	else if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1 || fsync(fd) == -1) {
		xasprintf(cause, "sync: %s: %s", dir, strerror(errno));
		rc = -1;
	}
	if (fd != -1)
		close(fd);
	free(dir);
	return rc;
}

int
store_sync(struct store *st, char **cause)
{
	sqlite3_file *wal = NULL;
	int rc;

	if (st->in_tx) {
		xasprintf(cause, "sync: a transaction is open");
		return -1;
	}
	rc = sqlite3_file_control(st->db, "main", SQLITE_FCNTL_JOURNAL_POINTER, &wal);
	if (rc == SQLITE_OK && wal != NULL && wal->pMethods != NULL) {
		rc = wal->pMethods->xSync(wal, SQLITE_SYNC_NORMAL);
		if (rc != SQLITE_OK) {
			xasprintf(cause, "sync: %s: %s", st->wal_path, sqlite3_errstr(rc));
			st->last_error = rc;
			return -1;
		}
	} else if (rc != SQLITE_OK) {
		/* Not expected in WAL mode; a full checkpoint syncs the log and the file. */
		rc = sqlite3_wal_checkpoint_v2(st->db, "main", SQLITE_CHECKPOINT_FULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			xasprintf(cause, "sync: checkpoint: %s", sqlite3_errmsg(st->db));
			st->last_error = rc;
			return -1;
		}
	}
	if (!st->dir_synced) {
		if (sync_dir(st, cause) == -1)
			return -1;
		st->dir_synced = true;
	}
	return 0;
}

void
store_rollback(struct store *st)
{
	if (!st->in_tx)
		return;
	rollback_db(st);
	tx_end(st);
}

/* ---- rows ---- */

static int
put_row(struct store *st, uint64_t id, const char *state, const char *record, char **cause)
{
	sqlite3_stmt *s = st->stmt[ST_PUT];
	char what[64];

	snprintf(what, sizeof what, "insert job %llu", (unsigned long long)id);
	if (st->tx_failed != NULL) {
		xasprintf(cause, "%s: transaction already failed (%s)", what, st->tx_failed);
		return -1;
	}
	if (sqlite3_bind_int64(s, 1, (sqlite3_int64)id) != SQLITE_OK ||
	    sqlite3_bind_text(s, 2, state, -1, SQLITE_STATIC) != SQLITE_OK ||
	    sqlite3_bind_text(s, 3, record, -1, SQLITE_STATIC) != SQLITE_OK) {
		xasprintf(cause, "%s: %s", what, sqlite3_errmsg(st->db));
		sqlite3_clear_bindings(s);
		tx_fail(st, *cause);
		return -1;
	}
	if (run(st, s, what, cause) == -1) {
		tx_fail(st, *cause);
		return -1;
	}
	if (id >= st->next_id)
		st->next_id = id + 1;
	return 0;
}

int
store_put(struct store *st, uint64_t id, const char *state, const char *record, char **cause)
{
	if (id >= INT64_MAX) {
		xasprintf(cause, "insert job %llu: id out of range", (unsigned long long)id);
		return -1;
	}
	if (state == NULL || record == NULL) {
		xasprintf(cause, "insert job %llu: no %s", (unsigned long long)id,
		          state == NULL ? "state" : "record");
		return -1;
	}
	if (st->in_tx)
		return put_row(st, id, state, record, cause);
	if (store_begin(st, cause) == -1)
		return -1;
	if (put_row(st, id, state, record, cause) == -1) {
		store_rollback(st);
		return -1;
	}
	return store_commit(st, cause);
}

static int
delete_row(struct store *st, uint64_t id, char **cause)
{
	sqlite3_stmt *s = st->stmt[ST_DELETE];
	char what[64];

	snprintf(what, sizeof what, "delete job %llu", (unsigned long long)id);
	if (st->tx_failed != NULL) {
		xasprintf(cause, "%s: transaction already failed (%s)", what, st->tx_failed);
		return -1;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	if (run(st, s, what, cause) == -1) {
		tx_fail(st, *cause);
		return -1;
	}
	st->tx_deleted = true;
	return 0;
}

int
store_delete(struct store *st, uint64_t id, char **cause)
{
	if (id >= INT64_MAX)
		return 0; /* never stored */
	if (st->in_tx)
		return delete_row(st, id, cause);
	if (store_begin(st, cause) == -1)
		return -1;
	if (delete_row(st, id, cause) == -1) {
		store_rollback(st);
		return -1;
	}
	return store_commit(st, cause);
}

int
store_load(struct store *st,
           int (*cb)(uint64_t id, const char *state, const char *record, void *arg), void *arg,
           char **cause)
{
	sqlite3_stmt *s = st->stmt[ST_LOAD];
	const char *state, *record;
	int rc, ret = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		state = (const char *)sqlite3_column_text(s, 1);
		record = (const char *)sqlite3_column_text(s, 2);
		if (state == NULL || record == NULL) {
			xasprintf(cause, "load jobs: %s",
			          sqlite3_errcode(st->db) == SQLITE_NOMEM
			              ? "out of memory"
			              : "a row without state or record");
			ret = -1;
			break;
		}
		ret = cb((uint64_t)sqlite3_column_int64(s, 0), state, record, arg);
		if (ret != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		xasprintf(cause, "load jobs: %s", sqlite3_errmsg(st->db));
		ret = -1;
	}
	sqlite3_reset(s);
	return ret;
}

static uint64_t
file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (uint64_t)sb.st_size : 0;
}

void
store_stats(const struct store *st, uint64_t *rows, uint64_t *bytes)
{
	sqlite3_stmt *s = st->stmt[ST_ROWS];

	*rows = 0;
	if (sqlite3_step(s) == SQLITE_ROW)
		*rows = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	*bytes = file_size(st->path) + file_size(st->wal_path);
}

/* ---- meta values (besides next_id, which is the store's own) ---- */

int
store_meta_get(struct store *st, const char *key, int64_t *value, char **cause)
{
	sqlite3_stmt *s = NULL;
	int rc, ret = -1;

	rc = sqlite3_prepare_v2(st->db, "SELECT value FROM meta WHERE key = ?1", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*value = sqlite3_column_int64(s, 0);
			ret = 0;
		} else if (rc == SQLITE_DONE) {
			ret = 1;
		}
	}
	if (ret == -1) {
		xasprintf(cause, "read meta %s: %s", key, sqlite3_errmsg(st->db));
		st->last_error = rc;
	}
	sqlite3_finalize(s);
	return ret;
}

static int
meta_row(struct store *st, const char *key, int64_t value, char **cause)
{
	sqlite3_stmt *s = NULL;
	char what[96];
	int rc;

	snprintf(what, sizeof what, "write meta %s", key);
	if (st->tx_failed != NULL) {
		xasprintf(cause, "%s: transaction already failed (%s)", what, st->tx_failed);
		return -1;
	}
	rc = sqlite3_prepare_v2(st->db, "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
	                        -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, value);
	if (rc != SQLITE_OK) {
		xasprintf(cause, "%s: %s", what, sqlite3_errmsg(st->db));
		st->last_error = rc;
		sqlite3_finalize(s);
		tx_fail(st, *cause);
		return -1;
	}
	rc = run(st, s, what, cause);
	sqlite3_finalize(s);
	if (rc == -1)
		tx_fail(st, *cause);
	return rc;
}

int
store_meta_set(struct store *st, const char *key, int64_t value, char **cause)
{
	if (strcmp(key, "next_id") == 0) {
		xasprintf(cause, "write meta %s: kept by the store itself", key);
		return -1;
	}
	if (st->in_tx)
		return meta_row(st, key, value, cause);
	if (store_begin(st, cause) == -1)
		return -1;
	if (meta_row(st, key, value, cause) == -1) {
		store_rollback(st);
		return -1;
	}
	return store_commit(st, cause);
}

/* ---- arrays ---- */

/* One write statement, s bound by the caller, inside a transaction or as its own. */
static int
write_stmt(struct store *st, sqlite3_stmt *s, const char *what, bool deletes, char **cause)
{
	bool own = !st->in_tx;

	if (st->tx_failed != NULL) {
		xasprintf(cause, "%s: transaction already failed (%s)", what, st->tx_failed);
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return -1;
	}
	if (own && store_begin(st, cause) == -1) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
		return -1;
	}
	if (run(st, s, what, cause) == -1) {
		if (own)
			store_rollback(st);
		else
			tx_fail(st, *cause);
		return -1;
	}
	if (deletes)
		st->tx_deleted = true;
	return own ? store_commit(st, cause) : 0;
}

int
store_array_put(struct store *st, uint64_t id, uint64_t last, const char *record, char **cause)
{
	sqlite3_stmt *s = st->stmt[ST_ARRAY_PUT];
	char what[64];

	snprintf(what, sizeof what, "insert array %llu", (unsigned long long)id);
	if (last >= INT64_MAX || last < id || record == NULL) {
		xasprintf(cause, "%s: bad ids or no record", what);
		return -1;
	}
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)last);
	sqlite3_bind_text(s, 3, record, -1, SQLITE_STATIC);
	if (write_stmt(st, s, what, false, cause) == -1)
		return -1;
	if (last >= st->next_id)
		st->next_id = last + 1;
	return 0;
}

int
store_array_delete(struct store *st, uint64_t id, uint64_t last, char **cause)
{
	sqlite3_stmt *s = st->stmt[ST_DELETE_RANGE];
	char what[64];
	bool own = !st->in_tx;

	if (last >= INT64_MAX || last < id)
		return 0; /* never stored */
	snprintf(what, sizeof what, "delete array %llu", (unsigned long long)id);
	if (own && store_begin(st, cause) == -1)
		return -1;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)last);
	if (write_stmt(st, s, what, true, cause) == -1)
		goto fail;
	s = st->stmt[ST_ARRAY_DELETE];
	sqlite3_bind_int64(s, 1, (sqlite3_int64)id);
	if (write_stmt(st, s, what, true, cause) == -1)
		goto fail;
	return own ? store_commit(st, cause) : 0;
fail:
	if (own)
		store_rollback(st);
	return -1;
}

int
store_array_load(struct store *st, int (*cb)(uint64_t id, const char *record, void *arg),
		 void *arg, char **cause)
{
	sqlite3_stmt *s = st->stmt[ST_ARRAY_LOAD];
	const char *record;
	int rc, ret = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if ((record = (const char *)sqlite3_column_text(s, 1)) == NULL) {
			xasprintf(cause, "load arrays: %s",
			          sqlite3_errcode(st->db) == SQLITE_NOMEM ? "out of memory"
			                                                  : "a row without record");
			ret = -1;
			break;
		}
		if ((ret = cb((uint64_t)sqlite3_column_int64(s, 0), record, arg)) != 0)
			break;
	}
	if (ret == 0 && rc != SQLITE_DONE) {
		xasprintf(cause, "load arrays: %s", sqlite3_errmsg(st->db));
		ret = -1;
	}
	sqlite3_reset(s);
	return ret;
}

int
store_meta_each(struct store *st, const char *prefix,
                int (*cb)(const char *key, int64_t value, void *arg), void *arg, char **cause)
{
	sqlite3_stmt *s = NULL;
	const char *key;
	size_t len = strlen(prefix);
	int rc, ret = 0;

	rc = sqlite3_prepare_v2(st->db,
	                        "SELECT key, value FROM meta WHERE substr(key, 1, ?2) = ?1 "
	                        "ORDER BY key",
	                        -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 1, prefix, -1, SQLITE_STATIC);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_int64(s, 2, (sqlite3_int64)len);
	while (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		key = (const char *)sqlite3_column_text(s, 0);
		if (key != NULL && (ret = cb(key, sqlite3_column_int64(s, 1), arg)) != 0)
			break;
		rc = SQLITE_OK;
	}
	if (ret == 0 && rc != SQLITE_DONE && rc != SQLITE_OK) {
		xasprintf(cause, "read meta %s*: %s", prefix, sqlite3_errmsg(st->db));
		st->last_error = rc;
		ret = -1;
	}
	sqlite3_finalize(s);
	return ret;
}

int
store_meta_delete(struct store *st, const char *key, char **cause)
{
	sqlite3_stmt *s = NULL;
	char what[96];
	int rc;

	snprintf(what, sizeof what, "delete meta %s", key);
	if (strcmp(key, "next_id") == 0) {
		xasprintf(cause, "%s: kept by the store itself", what);
		return -1;
	}
	rc = sqlite3_prepare_v2(st->db, "DELETE FROM meta WHERE key = ?1", -1, &s, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_bind_text(s, 1, key, -1, SQLITE_STATIC);
	if (rc != SQLITE_OK) {
		xasprintf(cause, "%s: %s", what, sqlite3_errmsg(st->db));
		sqlite3_finalize(s);
		if (st->in_tx)
			tx_fail(st, *cause);
		return -1;
	}
	rc = write_stmt(st, s, what, false, cause);
	sqlite3_finalize(s);
	return rc;
}
