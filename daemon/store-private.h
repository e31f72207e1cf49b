/*
 * Private to the two files of the store: store-file.c (the database file:
 * creating, validating and migrating it, pragmas, prepared statements, the
 * size cap) and store.c (transactions, rows, meta values). See store.c for
 * what is stored and how durable it is.
 */
#ifndef TASKD_STORE_PRIVATE_H
#define TASKD_STORE_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

/* The prepared statements (their SQL: store-file.c). */
enum stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_PUT,
	ST_DELETE,
	ST_DELETE_RANGE,
	ST_LOAD,
	ST_ARRAY_PUT,
	ST_ARRAY_DELETE,
	ST_ARRAY_LOAD,
	ST_ROWS,
	ST_SET_NEXT,
	ST_MAX,
};

struct store {
	sqlite3 *db;
	char *path;
	char *wal_path;
	sqlite3_stmt *stmt[ST_MAX];
	uint64_t next_id;      /* including the open transaction's puts */
	uint64_t next_id_disk; /* as last committed (in meta, or implied by the stored rows) */
	uint64_t next_id_meta; /* the value in table meta */
	bool tx_deleted;       /* the open transaction deletes rows */
	int last_error;        /* SQLite result code of the last failed statement */
	bool reclaim; /* the disk was full: checkpoint the WAL before the next transaction */
	bool in_tx;
	bool dir_synced; /* the state directory was fsync'ed once (new WAL/db entries) */
	char *tx_failed; /* first cause of a failed put/delete: the transaction is void */
	int file_fd;     /* O_PATH to the database file SQLite opened (store_check) */
	dev_t dev;       /* the database file's identity at open */
	ino_t ino;
	dev_t wal_dev;   /* the WAL file's, once it is seen (ino 0 until then) */
	ino_t wal_ino;
};

#endif
