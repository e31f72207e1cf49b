/*
 * taskctl internals: the command table, the helpers every command uses
 * (connection, errors, option parsing) and the formatting modules.
 *
 * Each command lives in client/cmd-<name>.c and is a handler
 * int cmd_<name>(struct taskctl *, int argc, char **argv) that gets
 * argv[0] = the command's name and returns taskctl's exit code. Transport
 * failures (daemon unreachable, connection lost) exit(3) from the helpers,
 * invalid answers exit(5).
 */
#ifndef TASKCTL_H
#define TASKCTL_H

#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <taskd/client.h>

#include "base64.h" /* common/: logs chunks */

struct taskctl;

struct taskctl_cmd {
	const char *name;
	const char *usage; /* arguments after the name */
	const char *help;  /* one line */
	int (*handler)(struct taskctl *, int, char **);
};

struct taskctl {
	const char *socket;
	char *socket_path; /* owned: socket resolved by taskd_socket_path() */
	int json;
	const struct taskctl_cmd *cmd;
	struct taskd_client *client;
};

/* Long-only options shared by all commands; commands number theirs from 300. */
#define TASKCTL_OPT_JSON 256
/* clang-format off */
#define TASKCTL_COMMON_OPTIONS \
	{ "json", no_argument, NULL, TASKCTL_OPT_JSON }, { "help", no_argument, NULL, 'h' }
/* clang-format on */

/* Wait between polls of a growing log (logs --follow). */
#define TASKCTL_POLL_USEC 200000

/* taskctl.c */
void taskctl_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
int taskctl_usage_error(struct taskctl *, const char *, ...) __attribute__((format(printf, 2, 3)));
int taskctl_common_option(struct taskctl *, char **, int);
int taskctl_no_args(struct taskctl *, int, char **);
int taskctl_parse_ids(struct taskctl *, int, char **, json_int_t *);
int taskctl_parse_id(struct taskctl *, const char *, json_int_t *);
int taskctl_parse_int(const char *, long long, long long, long long *);
int taskctl_parse_size(const char *, long long *);
int taskctl_parse_label(struct taskctl *, json_t *, const char *);
int taskctl_parse_array(struct taskctl *, json_t *, const char *);
/* Option codes of --label, --name, --array, --state for taskctl_parse_selection. */
enum { TASKCTL_OPT_LABEL = 280, TASKCTL_OPT_NAME, TASKCTL_OPT_ARRAY, TASKCTL_OPT_STATE };
int taskctl_parse_selection(struct taskctl *, const struct option *, int, char **, json_t *,
                            json_int_t *);
int taskctl_valid_state(const char *);
/* One request {"op": op, "job": id} per job, all sent before any answer is read. */
struct taskctl_per_job {
	const char *arg; /* the id as given, for messages */
	json_int_t id;
	int64_t req;     /* request id */
	json_t *resp;    /* its answer */
};
void taskctl_per_job_call(struct taskctl *, const char *, struct taskctl_per_job *, int);
int taskctl_per_job_report(struct taskctl *, const struct taskctl_per_job *, int,
                           void (*)(const struct taskctl_per_job *));
void taskctl_per_job_free(struct taskctl_per_job *, int);
int taskctl_select_or_each(struct taskctl *, const struct option *, int, char **, const char *,
                           int (*)(struct taskctl *, json_t *),
                           void (*)(const struct taskctl_per_job *));
struct taskd_client *taskctl_client(struct taskctl *);
json_t *taskctl_call(struct taskctl *, json_t *);
json_t *taskctl_call_pages(struct taskctl *, json_t *, const char *, const char *const *);
json_t *taskctl_more_pages(struct taskctl *, json_t *, json_t *, const char *,
                           const char *const *);
int64_t taskctl_send(struct taskctl *, json_t *);
json_t *taskctl_recv(struct taskctl *);
void taskctl_lost(int) __attribute__((noreturn));
void taskctl_bad_response(const char *) __attribute__((noreturn));
int taskctl_rejected(struct taskctl *, const char *, const json_t *);
int taskctl_print_json(json_t *);

/* fmt.c: human formatting; buffers are the caller's. */
#define FMT_BUFSZ 64
const char *fmt_duration(char *, double);
const char *fmt_age(char *, double);
const char *fmt_size(char *, double);
const char *fmt_time(char *, const json_t *);
const char *fmt_signal(char *, long long);
double fmt_unix_time(const json_t *);
char *fmt_argv(const json_t *);
char *fmt_scalar(const json_t *);
char *fmt_alloc(const char *, ...) __attribute__((format(printf, 1, 2)));
char *fmt_valloc(const char *, va_list) __attribute__((format(printf, 1, 0)));
/* Terminal-safe text: control characters (C0, DEL, C1) shown as '?'. */
char *fmt_safe(char *);
void fmt_put_line(FILE *, char *);
void fmt_line(FILE *, const char *, ...) __attribute__((format(printf, 2, 3)));
struct fmt_linebuf {
	FILE *fp; /* fprintf the pieces here */
	char *buf;
	size_t len;
};
void fmt_line_begin(struct fmt_linebuf *);
void fmt_line_end(struct fmt_linebuf *, FILE *);
void fmt_truncate(char *, size_t);
size_t fmt_width(const char *);
size_t fmt_key_width(const json_t *);

/* table.c: columns aligned over all rows; cells are copied. */
struct table;
struct table *table_new(const char *const *, const char *);
void table_cell(struct table *, const char *, ...) __attribute__((format(printf, 2, 3)));
void table_cell_scalar(struct table *, const json_t *);
void table_print(const struct table *, FILE *);
size_t table_rows(const struct table *);
void table_free(struct table *);

/* progress.c: wait's live progress line on a terminal (NULL: none). */
struct progress;
struct progress *progress_start(struct taskctl *, const json_t *, const json_int_t *, size_t);
void progress_snapshot(struct progress *, const json_t *);
void progress_finished(struct progress *, json_int_t, const json_t *);
void progress_wait(struct progress *, struct taskd_client *);
void progress_clear(struct progress *);
void progress_end(struct progress *);
/* Take whatever progress line is shown off the screen (taskctl_warnx does). */
void progress_clear_shown(void);


/* Commands. */
int cmd_submit(struct taskctl *, int, char **);
int cmd_status(struct taskctl *, int, char **);
int cmd_list(struct taskctl *, int, char **);
int cmd_show(struct taskctl *, int, char **);
int cmd_wait(struct taskctl *, int, char **);
int cmd_logs(struct taskctl *, int, char **);
int cmd_cancel(struct taskctl *, int, char **);
int cmd_clean(struct taskctl *, int, char **);
int cmd_events(struct taskctl *, int, char **);
int cmd_shutdown(struct taskctl *, int, char **);
int cmd_reload(struct taskctl *, int, char **);
int cmd_metrics(struct taskctl *, int, char **);
int cmd_bench(struct taskctl *, int, char **);
int cmd_pause(struct taskctl *, int, char **);
int cmd_resume(struct taskctl *, int, char **);
int cmd_priority(struct taskctl *, int, char **);
int cmd_restart(struct taskctl *, int, char **);

/* cmd-pause.c: pause and resume share their parsing (op is TASKD_OP_PAUSE or _RESUME). */
int cmd_pause_resume(struct taskctl *, const char *, int, char **);

/* cmd-wait.c: the shell-like exit code of a finished job, and its one-line summary. */
int cmd_wait_exit_code(const json_t *);
/* `wait --array A`: every job of the array, printed as they end; wait's exit code. */
int cmd_wait_array(struct taskctl *, json_int_t);
void cmd_wait_print_line(const json_t *);
/* The job's result on stdout (a string as it is, else JSON on one line); 0 if it has none. */
int cmd_wait_print_result(const json_t *);

/* cmd-logs.c: fetch one stream of a job, write it to fp or collect it. */
struct logs_out {
	FILE *fp; /* write each chunk here; NULL: collect in data */
	char *data;
	size_t len;
	size_t cap;
	long long size;
	int truncated;
	int gone_ok; /* a job that no longer exists (not_found) is not an error: */
	int gone;    /* ...set instead, nothing reported */
};
int cmd_logs_fetch(struct taskctl *, const char *, json_int_t, const char *, int,
                   struct logs_out *);
void cmd_logs_warn_truncated(json_int_t, const char *, const struct logs_out *);

#endif
