/*
 * Unit tests for daemon/store.c: file creation (mode, schema version, WAL),
 * round trips in id order, next_id across restarts and deletes, rollback,
 * autocommit, group commit speed, refusal of corrupt / foreign / newer files
 * without touching them, a full database and a full disk (tmpfs, when the
 * test may mount one), and kill -9 in the middle of committing batches.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "clock.h"
#include "store.h"
#include "xmalloc.h"
#include "unit.h"

#define MANY 10000
#define SINGLE 200
#define BATCH 100
#define BATCHES 10
#define CRASH_ROUNDS 6
#define nitems_ids(r) (sizeof(r)->ids / sizeof(r)->ids[0])

static char tmpdir[64];
static char dbpath[PATH_MAX];
static char mountpoint[PATH_MAX];

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test-store.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return -1;
	snprintf(dbpath, sizeof dbpath, "%s/%s", tmpdir, STORE_FILE);
	mountpoint[0] = '\0';
	return 0;
}

static int
teardown(void **state)
{
	if (mountpoint[0] != '\0')
		umount2(mountpoint, MNT_DETACH);
	unit_rmtree(tmpdir);
	return 0;
}

static struct store *
open_ok(const char *path)
{
	char *cause = NULL;
	struct store *st = store_open(path, &cause);

	if (st == NULL)
		fail_msg("store_open: %s", cause);
	return st;
}

static void
put_ok(struct store *st, uint64_t id, const char *state, const char *record)
{
	char *cause = NULL;

	if (store_put(st, id, state, record, &cause) != 0)
		fail_msg("store_put: %s", cause);
}

static void
commit_ok(struct store *st)
{
	char *cause = NULL;

	if (store_commit(st, &cause) != 0)
		fail_msg("store_commit: %s", cause);
}

static void
begin_ok(struct store *st)
{
	char *cause = NULL;

	if (store_begin(st, &cause) != 0)
		fail_msg("store_begin: %s", cause);
}

static char *
record_for(uint64_t id, size_t pad)
{
	char *p = xmalloc(pad + 1), *r;

	memset(p, 'x', pad);
	p[pad] = '\0';
	r = xprintf("{\"id\":%llu,\"pad\":\"%s\"}", (unsigned long long)id, p);
	free(p);
	return r;
}

/* Rows seen by store_load. */
struct rows {
	size_t n;
	uint64_t ids[MANY + SINGLE + 64];
	char states[64][16];
	char records[64][64];
	size_t stop_after; /* 0: never */
};

static int
collect(uint64_t id, const char *state, const char *record, void *arg)
{
	struct rows *r = arg;

	if (r->n < nitems_ids(r))
		r->ids[r->n] = id;
	if (r->n < 64) {
		snprintf(r->states[r->n], sizeof r->states[r->n], "%s", state);
		snprintf(r->records[r->n], sizeof r->records[r->n], "%s", record);
	}
	r->n++;
	if (r->stop_after != 0 && r->n == r->stop_after)
		return 7;
	return 0;
}

static size_t
load_ok(struct store *st, struct rows *r)
{
	char *cause = NULL;

	memset(r, 0, sizeof *r);
	if (store_load(st, collect, r, &cause) != 0)
		fail_msg("store_load: %s", cause);
	return r->n;
}

static void
copy_file(const char *from, const char *to)
{
	char buf[65536];
	ssize_t n;
	int in, out;

	unlink(to);
	if ((in = open(from, O_RDONLY)) == -1) {
		assert_int_equal(errno, ENOENT); /* no -wal file: nothing to copy */
		return;
	}
	assert_true((out = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0600)) != -1);
	while ((n = read(in, buf, sizeof buf)) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

/*
 * A value from the database files as they are on disk now, read through a
 * copy (the store holds an exclusive lock on the original): what a daemon
 * restarted after kill -9 would find. Uncommitted work is not in it.
 */
static int64_t
peek(const char *path, const char *sql)
{
	char copy[4200], from[4300], to[4300];
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v = -1;

	snprintf(copy, sizeof copy, "%s.peek", path);
	copy_file(path, copy);
	snprintf(from, sizeof from, "%s-wal", path);
	snprintf(to, sizeof to, "%s-wal", copy);
	copy_file(from, to);
	assert_int_equal(sqlite3_open_v2(copy, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	unlink(copy);
	unlink(to);
	snprintf(to, sizeof to, "%s-shm", copy);
	unlink(to);
	return v;
}

static void
exec_direct(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(
	    sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static char *
slurp(const char *path, size_t *len)
{
	struct stat sb;
	char *buf;
	int fd = open(path, O_RDONLY);

	assert_true(fd != -1);
	assert_int_equal(fstat(fd, &sb), 0);
	buf = xmalloc((size_t)sb.st_size + 1);
	assert_int_equal(read(fd, buf, (size_t)sb.st_size), sb.st_size);
	close(fd);
	*len = (size_t)sb.st_size;
	return buf;
}

static bool
exists(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0;
}

/* Every descriptor this process holds on a file under tmpdir is close-on-exec. */
static void
assert_cloexec(void)
{
	char link[PATH_MAX], target[PATH_MAX];
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	ssize_t n;
	int seen = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(link, sizeof link, "/proc/self/fd/%s", de->d_name);
		n = readlink(link, target, sizeof target - 1);
		if (n <= 0)
			continue;
		target[n] = '\0';
		if (strncmp(target, tmpdir, strlen(tmpdir)) != 0)
			continue;
		seen++;
		assert_true(fcntl(atoi(de->d_name), F_GETFD) & FD_CLOEXEC);
	}
	closedir(d);
	assert_true(seen >= 2); /* the database and its WAL at least */
}

static void
test_open_creates(void **state)
{
	char path[PATH_MAX + 8];
	struct store *st;
	struct stat sb;
	mode_t old = umask(0);
	uint64_t rows, bytes;

	st = open_ok(dbpath);
	umask(old);
	assert_int_equal(stat(dbpath, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(store_next_id(st), 1);
	assert_string_equal(store_path(st), dbpath);
	assert_int_equal(peek(dbpath, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
	assert_int_equal(peek(dbpath, "SELECT value FROM meta WHERE key = 'next_id'"), 1);
	put_ok(st, 1, "queued", "{}");
	/* WAL mode, and SQLite's log takes the database's mode. */
	snprintf(path, sizeof path, "%s-wal", dbpath);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	/* Exclusive locking: the WAL index is in memory, there is no -shm file. */
	snprintf(path, sizeof path, "%s-shm", dbpath);
	assert_int_equal(stat(path, &sb), -1);
	assert_cloexec();
	store_stats(st, &rows, &bytes);
	assert_int_equal(rows, 1);
	assert_true(bytes >= 4096);
	store_close(st);

	/* A directory names the file inside it; a too-open file is tightened. */
	assert_int_equal(chmod(dbpath, 0644), 0);
	st = open_ok(tmpdir);
	assert_string_equal(store_path(st), dbpath);
	assert_int_equal(store_next_id(st), 2);
	assert_int_equal(stat(dbpath, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	store_close(st);
}

static void
test_round_trip(void **state)
{
	struct store *st = open_ok(dbpath);
	static const uint64_t ids[] = {5, 2, 9, 1};
	static struct rows r;
	char *cause = NULL, rec[32];
	uint64_t rows, bytes;
	size_t i;

	begin_ok(st);
	for (i = 0; i < sizeof ids / sizeof ids[0]; i++) {
		snprintf(rec, sizeof rec, "{\"n\":%llu}", (unsigned long long)ids[i]);
		put_ok(st, ids[i], "queued", rec);
	}
	assert_int_equal(store_next_id(st), 10);
	commit_ok(st);
	assert_int_equal(load_ok(st, &r), 4);
	assert_int_equal(r.ids[0], 1);
	assert_int_equal(r.ids[1], 2);
	assert_int_equal(r.ids[2], 5);
	assert_int_equal(r.ids[3], 9);
	assert_string_equal(r.records[2], "{\"n\":5}");
	assert_string_equal(r.states[0], "queued");

	/* Replace: same id, new state and record. */
	put_ok(st, 2, "running", "{\"n\":2,\"pid\":42}");
	assert_int_equal(load_ok(st, &r), 4);
	assert_string_equal(r.states[1], "running");
	assert_string_equal(r.records[1], "{\"n\":2,\"pid\":42}");

	/* The callback's non-zero return stops the walk and comes back. */
	memset(&r, 0, sizeof r);
	r.stop_after = 2;
	assert_int_equal(store_load(st, collect, &r, &cause), 7);
	assert_int_equal(r.n, 2);
	assert_int_equal(load_ok(st, &r), 4); /* and the statement was reset */

	store_stats(st, &rows, &bytes);
	assert_int_equal(rows, 4);

	/* Bad arguments are refused with a cause, nothing stored. */
	assert_int_equal(store_put(st, INT64_MAX, "queued", "{}", &cause), -1);
	assert_non_null(strstr(cause, "out of range"));
	free(cause);
	assert_int_equal(store_put(st, 3, NULL, "{}", &cause), -1);
	free(cause);
	assert_int_equal(load_ok(st, &r), 4);
	store_close(st);
}

static void
test_next_id(void **state)
{
	struct store *st = open_ok(dbpath);
	static struct rows r;
	char *cause = NULL;
	uint64_t id;

	begin_ok(st);
	for (id = 1; id <= 10; id++)
		put_ok(st, id, "queued", "{}");
	commit_ok(st);
	assert_int_equal(store_next_id(st), 11);
	/* Deleting the highest id does not give it back. */
	assert_int_equal(store_delete(st, 10, &cause), 0);
	assert_int_equal(store_delete(st, 12345, &cause), 0); /* not stored: fine */
	assert_int_equal(store_next_id(st), 11);
	store_close(st);

	st = open_ok(dbpath);
	assert_int_equal(store_next_id(st), 11);
	assert_int_equal(load_ok(st, &r), 9);
	put_ok(st, 3, "finished", "{}"); /* a lower id never lowers it */
	assert_int_equal(store_next_id(st), 11);
	put_ok(st, 100, "queued", "{}");
	assert_int_equal(store_next_id(st), 101);
	store_close(st);

	/* Everything deleted after a restart: the sequence still continues (meta catches up). */
	st = open_ok(dbpath);
	assert_int_equal(store_next_id(st), 101);
	begin_ok(st);
	for (id = 1; id <= 100; id++)
		assert_int_equal(store_delete(st, id, &cause), 0);
	commit_ok(st);
	assert_int_equal(load_ok(st, &r), 0);
	store_close(st);
	st = open_ok(dbpath);
	assert_int_equal(store_next_id(st), 101);
	assert_int_equal(peek(dbpath, "SELECT value FROM meta WHERE key = 'next_id'"), 101);
	store_close(st);
}

static void
test_rollback(void **state)
{
	struct store *st = open_ok(dbpath);
	static struct rows r;
	char *cause = NULL;

	put_ok(st, 1, "queued", "{}");
	begin_ok(st);
	put_ok(st, 2, "queued", "{}");
	put_ok(st, 3, "queued", "{}");
	assert_int_equal(store_delete(st, 1, &cause), 0);
	assert_int_equal(store_next_id(st), 4);
	store_rollback(st);
	assert_int_equal(store_next_id(st), 2);
	assert_int_equal(load_ok(st, &r), 1);
	assert_int_equal(r.ids[0], 1);
	store_rollback(st); /* no transaction: nothing happens */

	/* Misuse is an error, not a crash. */
	assert_int_equal(store_commit(st, &cause), -1);
	assert_non_null(strstr(cause, "no transaction"));
	free(cause);
	begin_ok(st);
	assert_int_equal(store_begin(st, &cause), -1);
	assert_non_null(strstr(cause, "already open"));
	free(cause);
	put_ok(st, 7, "queued", "{}");
	commit_ok(st); /* the first transaction is still fine */
	assert_int_equal(load_ok(st, &r), 2);

	/* Closing with an open transaction discards it. */
	begin_ok(st);
	put_ok(st, 8, "queued", "{}");
	store_close(st);
	st = open_ok(dbpath);
	assert_int_equal(load_ok(st, &r), 2);
	assert_int_equal(store_next_id(st), 8);
	store_close(st);
}

static void
test_autocommit(void **state)
{
	struct store *st = open_ok(dbpath);
	char *cause = NULL;

	/* Outside begin/commit each put and delete is committed on return. */
	put_ok(st, 4, "queued", "{\"a\":1}");
	assert_int_equal(peek(dbpath, "SELECT count(*) FROM jobs WHERE id = 4"), 1);
	/* next_id is implied by the rows; meta is written when rows go. */
	assert_int_equal(peek(dbpath, "SELECT value FROM meta WHERE key = 'next_id'"), 1);
	assert_int_equal(store_delete(st, 4, &cause), 0);
	assert_int_equal(peek(dbpath, "SELECT count(*) FROM jobs"), 0);
	assert_int_equal(peek(dbpath, "SELECT value FROM meta WHERE key = 'next_id'"), 5);

	/* Inside, nothing is visible to others before the commit. */
	begin_ok(st);
	put_ok(st, 5, "queued", "{}");
	assert_int_equal(peek(dbpath, "SELECT count(*) FROM jobs"), 0);
	/* No fsync in the middle of a transaction. */
	assert_int_equal(store_sync(st, &cause), -1);
	assert_non_null(strstr(cause, "transaction is open"));
	free(cause);
	cause = NULL;
	commit_ok(st);
	assert_int_equal(peek(dbpath, "SELECT count(*) FROM jobs"), 1);
	assert_int_equal(store_sync(st, &cause), 0);
	assert_int_equal(store_sync(st, &cause), 0); /* nothing new: still fine */
	store_close(st);
}

/* Named values in meta: autocommit, inside a transaction (with its rollback), across reopening. */
static void
test_meta(void **state)
{
	struct store *st = open_ok(dbpath);
	char *cause = NULL;
	int64_t v = 42;

	assert_int_equal(store_meta_get(st, "paused_io", &v, &cause), 1);
	assert_int_equal(v, 42);
	assert_int_equal(store_meta_set(st, "paused_io", 1, &cause), 0);
	assert_int_equal(store_meta_get(st, "paused_io", &v, &cause), 0);
	assert_int_equal(v, 1);
	begin_ok(st);
	assert_int_equal(store_meta_set(st, "paused_cpu", 1, &cause), 0);
	assert_int_equal(store_meta_set(st, "paused_io", 0, &cause), 0);
	store_rollback(st);
	assert_int_equal(store_meta_get(st, "paused_cpu", &v, &cause), 1);
	assert_int_equal(store_meta_get(st, "paused_io", &v, &cause), 0);
	assert_int_equal(v, 1);
	begin_ok(st);
	put_ok(st, 3, "queued", "{}");
	assert_int_equal(store_meta_set(st, "paused_cpu", 1, &cause), 0);
	commit_ok(st);
	/* next_id belongs to the store */
	assert_int_equal(store_meta_set(st, "next_id", 1, &cause), -1);
	assert_non_null(strstr(cause, "next_id"));
	free(cause);
	cause = NULL;
	store_close(st);
	st = open_ok(dbpath);
	assert_int_equal(store_meta_get(st, "paused_cpu", &v, &cause), 0);
	assert_int_equal(v, 1);
	assert_int_equal(store_meta_get(st, "paused_io", &v, &cause), 0);
	assert_int_equal(v, 1);
	assert_int_equal(store_next_id(st), 4);
	store_close(st);
}

static void
test_many(void **state)
{
	struct store *st = open_ok(dbpath);
	static struct rows r;
	char *rec;
	double t0, t;
	uint64_t id;
	size_t i;

	t0 = clock_now(CLOCK_MONOTONIC);
	begin_ok(st);
	for (id = 1; id <= MANY; id++) {
		rec = record_for(id, 200);
		put_ok(st, id, "queued", rec);
		free(rec);
	}
	commit_ok(st);
	t = clock_now(CLOCK_MONOTONIC) - t0;
	print_message("%d puts in one transaction: %.3f s\n", MANY, t);
	assert_true(t < 2.0);

	t0 = clock_now(CLOCK_MONOTONIC);
	for (id = MANY + 1; id <= MANY + SINGLE; id++) {
		rec = record_for(id, 200);
		begin_ok(st);
		put_ok(st, id, "queued", rec);
		commit_ok(st);
		free(rec);
	}
	print_message("%d transactions of one put: %.3f s\n", SINGLE,
		      clock_now(CLOCK_MONOTONIC) - t0);
	store_close(st);

	st = open_ok(dbpath);
	assert_int_equal(load_ok(st, &r), MANY + SINGLE);
	for (i = 0; i < r.n; i++)
		assert_int_equal(r.ids[i], i + 1);
	assert_int_equal(store_next_id(st), MANY + SINGLE + 1);
	store_close(st);
}

/* store_open refuses the file with a cause containing want, and leaves it byte for byte. */
static void
assert_refused(const char *want)
{
	char *before, *after, *cause = NULL;
	size_t blen, alen;
	struct store *st;

	before = slurp(dbpath, &blen);
	st = store_open(dbpath, &cause);
	assert_null(st);
	assert_non_null(cause);
	print_message("refused: %s\n", cause);
	assert_non_null(strstr(cause, dbpath));
	assert_non_null(strstr(cause, want));
	free(cause);
	after = slurp(dbpath, &alen);
	assert_int_equal(alen, blen);
	assert_memory_equal(before, after, blen);
	free(before);
	free(after);
}

static void
test_garbage(void **state)
{
	char buf[4096], wal[PATH_MAX + 8];
	size_t i;
	int fd;

	srand(42);
	for (i = 0; i < sizeof buf; i++)
		buf[i] = (char)rand();
	fd = open(dbpath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, buf, sizeof buf), sizeof buf);
	close(fd);
	assert_refused("database is corrupt");
	snprintf(wal, sizeof wal, "%s-wal", dbpath);
	assert_false(exists(wal));
}

static void
test_corrupt_page(void **state)
{
	struct store *st = open_ok(dbpath);
	char garbage[512], *rec;
	uint64_t id;
	int fd;

	begin_ok(st);
	for (id = 1; id <= 50; id++) {
		rec = record_for(id, 300);
		put_ok(st, id, "queued", rec);
		free(rec);
	}
	commit_ok(st);
	store_close(st); /* checkpoints everything into the file */

	/* A valid header, a broken b-tree page: quick_check finds it. */
	memset(garbage, 0xa5, sizeof garbage);
	fd = open(dbpath, O_WRONLY);
	assert_int_equal(pwrite(fd, garbage, sizeof garbage, 4096), sizeof garbage);
	close(fd);
	assert_refused("database is corrupt");
}

static void
test_foreign(void **state)
{
	exec_direct(dbpath, "CREATE TABLE t (x); INSERT INTO t VALUES (1);");
	assert_refused("not a taskd database");
	/* Our schema version but not our tables. */
	exec_direct(dbpath, "PRAGMA user_version = 1;");
	assert_refused("not a taskd database");
}

#define STR_(x) #x
#define XSTR(x) STR_(x)

static void
test_newer(void **state)
{
	struct store *st = open_ok(dbpath);

	put_ok(st, 1, "queued", "{}");
	store_close(st);
	exec_direct(dbpath, "PRAGMA user_version = 99;");
	assert_refused("written by a newer taskd (schema 99 > " XSTR(STORE_SCHEMA_VERSION) ")");
}

/* Puts of one row per transaction until one fails; returns how many succeeded. */
static uint64_t
fill(struct store *st, uint64_t first, size_t pad, char **cause)
{
	uint64_t id;
	char *rec;
	int rc;

	for (id = first; id < first + 100000; id++) {
		rec = record_for(id, pad);
		rc = store_put(st, id, "queued", rec, cause);
		free(rec);
		if (rc == -1)
			return id - first;
	}
	fail_msg("never full");
	return 0;
}

static void
test_full_db(void **state)
{
	struct store *st = open_ok(dbpath);
	static struct rows r;
	char *cause = NULL, *rec;
	uint64_t n, id, next;
	int rc = 0;

	assert_int_equal(store_set_max_size(st, 64 * 1024, &cause), 0);
	n = fill(st, 1, 1000, &cause);
	print_message("full after %llu rows: %s\n", (unsigned long long)n, cause);
	assert_true(n > 10);
	assert_non_null(strstr(cause, "full"));
	assert_non_null(strstr(cause, "insert job"));
	free(cause);
	cause = NULL;
	assert_int_equal(load_ok(st, &r), n);
	assert_int_equal(store_next_id(st), n + 1); /* the failed put did not count */

	/* Group commit: the failing put voids the whole batch. */
	begin_ok(st);
	for (id = n + 1; rc == 0 && id < n + 1000; id++) {
		rec = record_for(id, 1000);
		rc = store_put(st, id, "queued", rec, &cause);
		free(rec);
	}
	assert_int_equal(rc, -1);
	assert_non_null(strstr(cause, "full"));
	free(cause);
	assert_int_equal(store_put(st, id, "queued", "{}", &cause), -1);
	assert_non_null(strstr(cause, "already failed"));
	free(cause);
	assert_int_equal(store_commit(st, &cause), -1);
	assert_non_null(strstr(cause, "full"));
	free(cause);
	assert_int_equal(load_ok(st, &r), n);
	assert_int_equal(store_next_id(st), n + 1);

	/* Room again after deleting rows. */
	begin_ok(st);
	for (id = 1; id <= 10; id++)
		assert_int_equal(store_delete(st, id, &cause), 0);
	commit_ok(st);
	next = store_next_id(st);
	begin_ok(st);
	for (id = next; id < next + 5; id++) {
		rec = record_for(id, 1000);
		put_ok(st, id, "queued", rec);
		free(rec);
	}
	commit_ok(st);
	assert_int_equal(load_ok(st, &r), n - 10 + 5);
	store_close(st);

	st = open_ok(dbpath);
	assert_int_equal(load_ok(st, &r), n - 10 + 5);
	assert_int_equal(store_next_id(st), next + 5);
	store_close(st);
}

static void
write_file(const char *path, size_t max)
{
	char buf[4096];
	size_t done = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd != -1);
	memset(buf, 'f', sizeof buf);
	while (done < max && write(fd, buf, sizeof buf) == sizeof buf)
		done += sizeof buf;
	close(fd);
}

/* A real full disk: a 256 KiB tmpfs in a private mount namespace (needs root). */
static void
test_full_disk(void **state)
{
	char filler[PATH_MAX + 16], reserve[PATH_MAX + 16], *cause = NULL, *rec;
	static struct rows r;
	struct store *st;
	uint64_t n, m, id;

	snprintf(mountpoint, sizeof mountpoint, "%s/fs", tmpdir);
	assert_int_equal(mkdir(mountpoint, 0700), 0);
	if (unshare(CLONE_NEWNS) == -1 ||
	    mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) == -1 ||
	    mount("tmpfs", mountpoint, "tmpfs", 0, "size=256k,mode=0700") == -1) {
		print_message("cannot mount a tmpfs (%s): skipped\n", strerror(errno));
		mountpoint[0] = '\0';
		skip();
	}
	snprintf(filler, sizeof filler, "%s/filler", mountpoint);
	snprintf(reserve, sizeof reserve, "%s/reserve", mountpoint);
	write_file(reserve, 64 * 1024);
	st = open_ok(mountpoint);
	for (id = 1; id <= 5; id++)
		put_ok(st, id, "queued", "{}");

	/* Something else takes all the room: a group commit fails whole. */
	write_file(filler, SIZE_MAX);
	begin_ok(st);
	for (id = 6; id < 6 + 50; id++) {
		rec = record_for(id, 500);
		if (store_put(st, id, "queued", rec, &cause) == -1)
			fail_msg("a put should fail at commit only: %s", cause);
		free(rec);
	}
	assert_int_equal(store_commit(st, &cause), -1);
	print_message("group commit on a full disk: %s\n", cause);
	assert_non_null(strstr(cause, "full"));
	free(cause);
	cause = NULL;
	assert_int_equal(load_ok(st, &r), 5);
	assert_int_equal(store_next_id(st), 6);

	/* The admin frees space: the same store works again. */
	assert_int_equal(unlink(filler), 0);
	begin_ok(st);
	for (id = 6; id < 6 + 20; id++) {
		rec = record_for(id, 500);
		put_ok(st, id, "queued", rec);
		free(rec);
	}
	commit_ok(st);
	n = 25;

	/* One transaction per put: the WAL itself fills the disk. */
	m = fill(st, n + 1, 500, &cause);
	print_message("disk full (WAL) after %llu more rows: %s\n", (unsigned long long)m, cause);
	assert_non_null(strstr(cause, "full"));
	free(cause);
	cause = NULL;
	n += m;
	assert_int_equal(load_ok(st, &r), n);
	assert_int_equal(store_next_id(st), n + 1);
	/*
	 * Another file gives back 64 KiB: enough for the checkpoint the store
	 * tries before the next transaction, after which the WAL's space
	 * serves new rows (without it only about seven more would fit).
	 */
	assert_int_equal(unlink(reserve), 0);
	m = fill(st, n + 1, 500, &cause);
	print_message("then %llu more rows: %s\n", (unsigned long long)m, cause);
	assert_true(m > 10);
	free(cause);
	n += m;
	store_close(st);

	st = open_ok(mountpoint);
	assert_int_equal(load_ok(st, &r), n);
	assert_int_equal(store_next_id(st), n + 1);
	store_close(st);
}

/* The child of test_crash: BATCHES batches of BATCH rows, reporting each commit. */
static void __attribute__((noreturn)) crash_child(int fd)
{
	char *cause = NULL, *rec;
	struct store *st;
	uint64_t id, last;
	int b, i;

	st = store_open(dbpath, &cause);
	if (st == NULL)
		_exit(2);
	for (b = 0; b < BATCHES; b++) {
		if (store_begin(st, &cause) == -1)
			_exit(3);
		for (i = 0; i < BATCH; i++) {
			id = store_next_id(st);
			rec = record_for(id, 100);
			if (store_put(st, id, "queued", rec, &cause) == -1)
				_exit(4);
			free(rec);
		}
		if (store_commit(st, &cause) == -1)
			_exit(5);
		last = store_next_id(st) - 1;
		if (write(fd, &last, sizeof last) != sizeof last)
			_exit(6);
	}
	for (;;)
		pause();
}

static void
test_crash(void **state)
{
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)getpid();
	uint64_t acked = 0, have = 0, got;
	static struct rows r;
	struct store *st;
	int round, fds[2], status, reports, wanted;
	size_t i;
	pid_t pid;

	print_message("crash seed %u\n", seed);
	srand(seed);
	for (round = 0; round < CRASH_ROUNDS; round++) {
		assert_int_equal(pipe(fds), 0);
		pid = fork();
		assert_true(pid != -1);
		if (pid == 0) {
			close(fds[0]);
			crash_child(fds[1]);
		}
		close(fds[1]);
		wanted = rand() % (BATCHES + 1);
		for (reports = 0; reports < wanted; reports++) {
			assert_int_equal(read(fds[0], &got, sizeof got), sizeof got);
			acked = got;
		}
		usleep((useconds_t)(rand() % 3000));
		kill(pid, SIGKILL);
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		while (read(fds[0], &got, sizeof got) == sizeof got)
			acked = got;
		close(fds[0]);

		st = open_ok(dbpath);
		load_ok(st, &r);
		print_message("round %d: acknowledged up to %llu, recovered %zu rows\n", round,
		              (unsigned long long)acked, r.n);
		/* Every acknowledged row, whole batches only, ids 1..n without a gap. */
		assert_true(r.n >= acked);
		assert_true(r.n >= have);
		assert_true(r.n <= acked + BATCH);
		assert_int_equal(r.n % BATCH, 0);
		for (i = 0; i < r.n; i++)
			assert_int_equal(r.ids[i], i + 1);
		assert_int_equal(store_next_id(st), r.n + 1);
		have = r.n;
		acked = have; /* the next child continues from here */
		store_close(st);
	}
}

/* store_check: -1 with a cause naming the file, once it is not where it was opened. */
static void
expect_lost(struct store *st, const char *want)
{
	char *cause = NULL;

	assert_int_equal(store_check(st, &cause), -1);
	assert_non_null(cause);
	if (strstr(cause, want) == NULL)
		fail_msg("cause \"%s\" does not say \"%s\"", cause, want);
	free(cause);
}

static void
test_check(void **state)
{
	char *cause = NULL, moved[PATH_MAX + 8], wal[PATH_MAX + 8];
	struct store *st;
	int fd;

	/* there and still there after commits (the WAL appears) */
	st = open_ok(tmpdir);
	assert_int_equal(store_check(st, &cause), 0);
	put_ok(st, 1, "queued", "{}");
	assert_int_equal(store_check(st, &cause), 0);
	assert_null(cause);
	/* deleted: its link count drops to 0 */
	assert_int_equal(unlink(dbpath), 0);
	expect_lost(st, "taskd.db was deleted");
	store_close(st);

	/* moved away (the directory renamed): the path names nothing */
	st = open_ok(dbpath);
	snprintf(moved, sizeof moved, "%s.moved", dbpath);
	assert_int_equal(rename(dbpath, moved), 0);
	expect_lost(st, "was deleted or moved");
	/* another file at the path */
	fd = open(dbpath, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	close(fd);
	expect_lost(st, "replaced by another file");
	store_close(st);
	unlink(dbpath);
	unlink(moved);

	/* the WAL alone deleted, once it exists */
	st = open_ok(dbpath);
	put_ok(st, 2, "queued", "{}");
	assert_int_equal(store_check(st, &cause), 0);
	snprintf(wal, sizeof wal, "%s-wal", dbpath);
	assert_int_equal(unlink(wal), 0);
	expect_lost(st, "taskd.db-wal was deleted");
	store_close(st);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_creates, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_next_id, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rollback, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_autocommit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_meta, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_many, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_garbage, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_corrupt_page, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_foreign, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_newer, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_db, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_full_disk, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
