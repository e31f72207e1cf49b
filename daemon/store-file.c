/*
 * The database file of the store (store.h): created 0600, validated before
 * anything is written (not a database, corrupt, newer, somebody else's:
 * refused with the reason, never reset), migrated step by step to
 * STORE_SCHEMA_VERSION, opened in WAL mode with exclusive locking, its
 * statements prepared once; and its size cap. What is stored and how
 * durable it is: store.c. Loop thread only.
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

#define BUSY_TIMEOUT_MS 5000
#define JOURNAL_SIZE_LIMIT (4 * 1024 * 1024) /* bytes the WAL keeps after a checkpoint */
#define MAX_PAGES_DEFAULT 1073741823         /* SQLite's own default max_page_count */
#define OPEN_FLAGS (SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)

/* Schema steps: migrations[i] takes user_version i to i + 1. */
static const char *const migrations[] = {
    /* 0 → 1 */
    "CREATE TABLE jobs (id INTEGER PRIMARY KEY, state TEXT NOT NULL, record TEXT NOT NULL);"
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta (key, value) VALUES ('next_id', 1);",
    /* 1 → 2: job arrays (their jobs' ids are id .. last) */
    "CREATE TABLE arrays (id INTEGER PRIMARY KEY, last INTEGER NOT NULL, record TEXT NOT NULL);",
};

_Static_assert(sizeof migrations / sizeof migrations[0] == STORE_SCHEMA_VERSION,
               "one migration per schema version");

static const char *const stmt_sql[ST_MAX] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    /* An upsert updates the row in place (INSERT OR REPLACE deletes and re-inserts it). */
    [ST_PUT] = ("INSERT INTO jobs (id, state, record) VALUES (?1, ?2, ?3) "
                "ON CONFLICT (id) DO UPDATE SET state = excluded.state, record = excluded.record"),
    [ST_DELETE] = "DELETE FROM jobs WHERE id = ?1",
    [ST_DELETE_RANGE] = "DELETE FROM jobs WHERE id BETWEEN ?1 AND ?2",
    [ST_LOAD] = "SELECT id, state, record FROM jobs ORDER BY id",
    [ST_ARRAY_PUT] = ("INSERT INTO arrays (id, last, record) VALUES (?1, ?2, ?3) "
                      "ON CONFLICT (id) DO UPDATE SET last = excluded.last, "
                      "record = excluded.record"),
    [ST_ARRAY_DELETE] = "DELETE FROM arrays WHERE id = ?1",
    [ST_ARRAY_LOAD] = "SELECT id, record FROM arrays ORDER BY id",
    [ST_ROWS] = "SELECT count(*) FROM jobs",
    [ST_SET_NEXT] = "UPDATE meta SET value = ?1 WHERE key = 'next_id'",
};

/* ---- open ---- */

/* Create the file 0600 (and make its directory entry durable), or tighten an existing one. */
static int
create_file(const char *path, char **cause)
{
	struct stat sb;
	char *dir;
	int fd, dfd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd != -1) {
		fsync(fd);
		close(fd);
		dir = xstrdup(path);
		dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		free(dir);
		if (dfd != -1) {
			fsync(dfd);
			close(dfd);
		}
		return 0;
	}
	if (errno != EEXIST)
		goto fail;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd == -1)
		goto fail;
	if (fstat(fd, &sb) == -1) {
		close(fd);
		goto fail;
	}
	if (!S_ISREG(sb.st_mode)) {
		close(fd);
		xasprintf(cause, "%s: not a regular file", path);
		return -1;
	}
	if ((sb.st_mode & 077) != 0 && fchmod(fd, sb.st_mode & 0700) == -1) {
		close(fd);
		goto fail;
	}
	close(fd);
	return 0;
fail:
	xasprintf(cause, "%s: %s", path, strerror(errno));
	return -1;
}

static bool
is_corrupt(int rc)
{
	return (rc & 0xff) == SQLITE_CORRUPT || (rc & 0xff) == SQLITE_NOTADB;
}

/* "PATH: database is corrupt (msg)" or "PATH: what (msg)" by the kind of error. */
static void
open_error(struct store *st, int rc, const char *what, const char *msg, char **cause)
{
	if (is_corrupt(rc))
		xasprintf(cause, "%s: database is corrupt (%s)", st->path, msg);
	else
		xasprintf(cause, "%s: %s (%s)", st->path, what, msg);
}

/* A one-value query (a pragma, a count); -1 with *cause on error. */
static int
query_int(struct store *st, const char *sql, int64_t *value, char **cause)
{
	sqlite3_stmt *s;
	int rc;

	rc = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);
	if (rc == SQLITE_OK) {
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			*value = sqlite3_column_int64(s, 0);
			rc = SQLITE_OK;
		} else if (rc == SQLITE_DONE) {
			*value = -1;
			rc = SQLITE_OK;
		}
	}
	if (rc != SQLITE_OK)
		open_error(st, rc, "cannot read database", sqlite3_errmsg(st->db), cause);
	sqlite3_finalize(s);
	return rc == SQLITE_OK ? 0 : -1;
}

/* quick_check's report for a log line: newlines become "; ", a long one is cut. */
static const char *
one_line(const char *in, char *out, size_t size)
{
	size_t i = 0;

	for (; *in != '\0' && i + 5 < size; in++) {
		if (*in == '\n') {
			out[i++] = ';';
			out[i++] = ' ';
		} else
			out[i++] = *in;
	}
	if (*in != '\0') {
		memcpy(out + i, "...", 3);
		i += 3;
	}
	out[i] = '\0';
	return out;
}

static int
quick_check(struct store *st, char **cause)
{
	sqlite3_stmt *s;
	const char *res;
	char msg[256];
	int rc;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA quick_check", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		res = (const char *)sqlite3_column_text(s, 0);
		if (res == NULL || strcmp(res, "ok") != 0) {
			xasprintf(cause, "%s: database is corrupt (%s)", st->path,
			          res != NULL ? one_line(res, msg, sizeof msg)
			                      : "quick_check failed");
			sqlite3_finalize(s);
			return -1;
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		open_error(st, rc, "cannot check database", sqlite3_errmsg(st->db), cause);
	sqlite3_finalize(s);
	return rc == SQLITE_OK ? 0 : -1;
}

static int
exec(struct store *st, const char *sql, const char *what, char **cause)
{
	char *msg = NULL;
	int rc;

	rc = sqlite3_exec(st->db, sql, NULL, NULL, &msg);
	if (rc != SQLITE_OK)
		open_error(st, rc, what, msg != NULL ? msg : sqlite3_errstr(rc), cause);
	sqlite3_free(msg);
	return rc == SQLITE_OK ? 0 : -1;
}

/* Take the schema from version `from` to STORE_SCHEMA_VERSION in one transaction. */
static int
migrate(struct store *st, int64_t from, char **cause)
{
	char sql[64];
	int64_t v;

	if (exec(st, "BEGIN IMMEDIATE", "cannot migrate the schema", cause) == -1)
		return -1;
	for (v = from; v < STORE_SCHEMA_VERSION; v++) {
		if (exec(st, migrations[v], "cannot migrate the schema", cause) == -1)
			goto fail;
	}
	snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
	if (exec(st, sql, "cannot migrate the schema", cause) == -1 ||
	    exec(st, "COMMIT", "cannot migrate the schema", cause) == -1)
		goto fail;
	if (from != 0)
		log_info("%s: schema migrated from version %lld to %d", st->path, (long long)from,
		         STORE_SCHEMA_VERSION);
	return 0;
fail:
	if (!sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* Refuse what is not ours, before anything is written. */
static int
validate(struct store *st, int64_t *version, char **cause)
{
	int64_t tables;

	if (query_int(st, "PRAGMA user_version", version, cause) == -1)
		return -1;
	if (*version > STORE_SCHEMA_VERSION) {
		xasprintf(cause, "%s: written by a newer taskd (schema %lld > %d)", st->path,
		          (long long)*version, STORE_SCHEMA_VERSION);
		return -1;
	}
	if (*version < 0) {
		xasprintf(cause, "%s: not a taskd database (schema version %lld)", st->path,
		          (long long)*version);
		return -1;
	}
	if (quick_check(st, cause) == -1)
		return -1;
	if (*version == 0) {
		if (query_int(st, "SELECT count(*) FROM sqlite_master", &tables, cause) == -1)
			return -1;
		if (tables != 0) {
			xasprintf(cause, "%s: not a taskd database (tables but no schema version)",
			          st->path);
			return -1;
		}
		return 0;
	}
	if (query_int(st,
	              "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
	              "name IN ('jobs', 'meta', 'arrays')",
	              &tables, cause) == -1)
		return -1;
	/* Each version's tables: jobs and meta since 1, arrays since 2. */
	if (tables != (*version >= 2 ? 3 : 2)) {
		xasprintf(cause, "%s: not a taskd database (no jobs, meta or arrays table)",
		          st->path);
		return -1;
	}
	return 0;
}

static int
set_pragmas(struct store *st, char **cause)
{
	sqlite3_stmt *s;
	const char *mode;
	char sql[128];
	int rc;

	rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		mode = (const char *)sqlite3_column_text(s, 0);
		if (mode == NULL || strcmp(mode, "wal") != 0) {
			xasprintf(cause, "%s: cannot use WAL mode (journal mode stays %s)",
			          st->path, mode != NULL ? mode : "unknown");
			sqlite3_finalize(s);
			return -1;
		}
		rc = SQLITE_OK;
	}
	if (rc != SQLITE_OK)
		open_error(st, rc, "cannot set WAL mode", sqlite3_errmsg(st->db), cause);
	sqlite3_finalize(s);
	if (rc != SQLITE_OK)
		return -1;
	snprintf(sql, sizeof sql,
	         "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; "
	         "PRAGMA journal_size_limit = %d",
	         JOURNAL_SIZE_LIMIT);
	return exec(st, sql, "cannot set pragmas", cause);
}

static int
prepare(struct store *st, char **cause)
{
	int i, rc;

	for (i = 0; i < ST_MAX; i++) {
		rc = sqlite3_prepare_v3(st->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
		                        &st->stmt[i], NULL);
		if (rc != SQLITE_OK) {
			if ((rc & 0xff) == SQLITE_ERROR)
				xasprintf(cause, "%s: not a taskd database (%s)", st->path,
				          sqlite3_errmsg(st->db));
			else
				open_error(st, rc, "cannot prepare statements",
				           sqlite3_errmsg(st->db), cause);
			return -1;
		}
	}
	return 0;
}

/* next_id from meta, and at least one past the highest stored id (an array's last job's). */
static int
read_next_id(struct store *st, char **cause)
{
	int64_t meta, max, last;

	if (query_int(st, "SELECT value FROM meta WHERE key = 'next_id'", &meta, cause) == -1 ||
	    query_int(st, "SELECT coalesce(max(id), 0) FROM jobs", &max, cause) == -1 ||
	    query_int(st, "SELECT coalesce(max(last), 0) FROM arrays", &last, cause) == -1)
		return -1;
	if (last > max)
		max = last;
	if (meta < 1 || max < 0 || max == INT64_MAX) {
		xasprintf(cause, "%s: database is corrupt (next_id %lld, highest id %lld)",
		          st->path, (long long)meta, (long long)max);
		return -1;
	}
	st->next_id = (uint64_t)meta;
	if ((uint64_t)max + 1 > st->next_id)
		st->next_id = (uint64_t)max + 1;
	st->next_id_disk = st->next_id;
	st->next_id_meta = (uint64_t)meta;
	return 0;
}

/*
 * Keep an O_PATH descriptor to the file SQLite opened, for store_check: once
 * it is open, nobody else may use it (the exclusive lock), so the file at
 * the path now is the one SQLite has.
 */
static int
hold_file(struct store *st, char **cause)
{
	struct stat sb;

	st->file_fd = open(st->path, O_PATH | O_CLOEXEC);
	if (st->file_fd == -1 || fstat(st->file_fd, &sb) == -1) {
		xasprintf(cause, "%s: %s", st->path, strerror(errno));
		return -1;
	}
	st->dev = sb.st_dev;
	st->ino = sb.st_ino;
	return 0;
}

struct store *
store_open(const char *path, char **cause)
{
	struct store *st;
	struct stat sb;
	int64_t version;
	int rc;

	st = xcalloc(1, sizeof *st);
	st->file_fd = -1;
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode))
		st->path = xprintf("%s/%s", path, STORE_FILE);
	else
		st->path = xstrdup(path);
	st->wal_path = xprintf("%s-wal", st->path);
	if (create_file(st->path, cause) == -1)
		goto fail;
	rc = sqlite3_open_v2(st->path, &st->db, OPEN_FLAGS, NULL);
	if (rc != SQLITE_OK) {
		open_error(st, rc, "cannot open database",
		           st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc), cause);
		goto fail;
	}
	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
	/*
	 * Exclusive locking, before the first access: the daemon is the only
	 * user of its database, so a transaction takes no file locks and the
	 * WAL index lives in memory (no -shm file, no shared-memory updates);
	 * a second taskd on the same state_dir gets "database is locked".
	 */
	if (exec(st, "PRAGMA locking_mode = EXCLUSIVE", "cannot set the locking mode", cause) == -1 ||
	    validate(st, &version, cause) == -1 || set_pragmas(st, cause) == -1)
		goto fail;
	if (version < STORE_SCHEMA_VERSION && migrate(st, version, cause) == -1)
		goto fail;
	if (prepare(st, cause) == -1 || read_next_id(st, cause) == -1 ||
	    hold_file(st, cause) == -1)
		goto fail;
	return st;
fail:
	store_close(st);
	return NULL;
}

int
store_set_max_size(struct store *st, uint64_t max_bytes, char **cause)
{
	char sql[64];
	int64_t page_size, pages, set;

	if (query_int(st, "PRAGMA page_size", &page_size, cause) == -1)
		return -1;
	pages = max_bytes == 0 ? MAX_PAGES_DEFAULT : (int64_t)(max_bytes / (uint64_t)page_size);
	if (pages > MAX_PAGES_DEFAULT)
		pages = MAX_PAGES_DEFAULT;
	snprintf(sql, sizeof sql, "PRAGMA max_page_count = %lld", (long long)pages);
	return query_int(st, sql, &set, cause);
}
