/*
 * taskd wire constants, shared by the daemon, libtaskd and taskctl.
 *
 * Framing: one JSON object per line (JSON Lines), UTF-8, at most
 * limits.max_frame bytes including the newline.
 *
 * Request:  {"v":1, "id":<client tag>, "op":"<op>", ...op arguments...}
 * Response: {"id":<tag>, "ok":true, "result":{...}}
 *           {"id":<tag>, "ok":false, "error":{"code":"<code>", "message":"..."}}
 */
#ifndef TASKD_PROTOCOL_H
#define TASKD_PROTOCOL_H

#define TASKD_PROTO_VERSION 1
#define TASKD_VERSION "0.1.0"

/* Operations. */
#define TASKD_OP_SUBMIT "submit"
#define TASKD_OP_STATUS "status"
#define TASKD_OP_LIST "list"
#define TASKD_OP_SHOW "show"
#define TASKD_OP_WAIT "wait"
#define TASKD_OP_CANCEL "cancel"
#define TASKD_OP_LOGS "logs"
#define TASKD_OP_SHUTDOWN "shutdown"
#define TASKD_OP_RELOAD "reload"
#define TASKD_OP_METRICS "metrics"
#define TASKD_OP_CLEAN "clean"
#define TASKD_OP_SUBSCRIBE "subscribe"
#define TASKD_OP_PAUSE "pause"
#define TASKD_OP_RESUME "resume"
#define TASKD_OP_PRIORITY "priority"
#define TASKD_OP_RESTART "restart"

/* Error codes (error.code in a failed response). */
#define TASKD_ERR_BAD_REQUEST "bad_request"
#define TASKD_ERR_UNKNOWN_OP "unknown_op"
#define TASKD_ERR_UNSUPPORTED_VERSION "unsupported_version"
#define TASKD_ERR_FRAME_TOO_LARGE "frame_too_large"
#define TASKD_ERR_FRAME_TIMEOUT "frame_timeout"
#define TASKD_ERR_NOT_FOUND "not_found"
#define TASKD_ERR_INVALID_STATE "invalid_state"
#define TASKD_ERR_QUEUE_FULL "queue_full"
#define TASKD_ERR_FORBIDDEN "forbidden"
#define TASKD_ERR_SHUTTING_DOWN "shutting_down"
#define TASKD_ERR_TOO_MANY "too_many_requests"
#define TASKD_ERR_TOO_MANY_CONNECTIONS "too_many_connections"
#define TASKD_ERR_IDLE_TIMEOUT "idle_timeout"
#define TASKD_ERR_INVALID_CONFIG "invalid_config"
#define TASKD_ERR_INTERNAL "internal"
#define TASKD_ERR_STORAGE "storage_error"
/* Cluster mode: the cluster (NATS), or the node that holds what was asked, cannot be reached. */
#define TASKD_ERR_UNAVAILABLE "unavailable"
#define TASKD_ERR_UNSUPPORTED "unsupported"
#define TASKD_ERR_QUOTA "quota_exceeded"

/* Job classes and states, as spelled on the wire. */
#define TASKD_CLASS_CPU "cpu"
#define TASKD_CLASS_IO "io"
#define TASKD_CLASS_AUTO "auto"

#define TASKD_STATE_QUEUED "queued"
#define TASKD_STATE_RUNNING "running"
#define TASKD_STATE_WAITING "waiting"
#define TASKD_STATE_SCHEDULED "scheduled"
#define TASKD_STATE_PAUSED "paused"
#define TASKD_STATE_SUSPENDED "suspended"
#define TASKD_STATE_DONE "done"
#define TASKD_STATE_FAILED "failed"
#define TASKD_STATE_TIMEOUT "timeout"
#define TASKD_STATE_CANCELLED "cancelled"
#define TASKD_STATE_LOST "lost"

/* The longest "id" of a request, in bytes of JSON text (it is echoed in the answer). */
#define TASKD_MAX_ID 256

/* Limits on a job description. */
#define TASKD_PRIORITY_MIN (-20)
#define TASKD_PRIORITY_MAX 19
/* Longest "notify" command line (a shell command run when the job ends). */
#define TASKD_MAX_NOTIFY 4096
#define TASKD_MAX_NAME 256
/* Labels: "labels":{"KEY":"value"}, keys of [A-Za-z0-9_.-]. */
#define TASKD_MAX_LABELS 32
#define TASKD_MAX_LABEL_KEY 64
#define TASKD_MAX_LABEL_VALUE 256
#define TASKD_MAX_ARGS 4096
#define TASKD_MAX_ENV 4096
#define TASKD_MAX_BATCH 10000
/* --array START-END[:STEP][%MAX]: indices 0..TASKD_MAX_ARRAY_INDEX, at most TASKD_MAX_ARRAY jobs. */
#define TASKD_MAX_ARRAY 1000000
#define TASKD_MAX_ARRAY_INDEX 1000000000
/* --unique KEY: 1..TASKD_MAX_UNIQUE bytes; --queue NAME: like a label key. */
#define TASKD_MAX_UNIQUE 256
#define TASKD_MAX_QUEUE_NAME 64
/* Per-job limits ("memory" bytes, "cpus", "pids"): absent or 0 = none. */
#define TASKD_MEMORY_MIN (1LL << 20) /* 1 MiB */
#define TASKD_MEMORY_MAX (1LL << 44) /* 16 TiB */
#define TASKD_CPUS_MIN 0.01
#define TASKD_CPUS_MAX 1024
#define TASKD_PIDS_MAX 4194304
/*
 * A subscriber is cut off when more than TASKD_EVENTS_MAX_BUFFER event bytes
 * offered to it stay unread while it reads nothing for TASKD_EVENTS_STALL
 * seconds, or at once beyond TASKD_EVENTS_HARD_LIMIT unread bytes.
 */
#define TASKD_EVENTS_MAX_BUFFER (1u << 20)
#define TASKD_EVENTS_STALL 2.0
#define TASKD_EVENTS_HARD_LIMIT (4u << 20)
/* PATH of a job whose environment has none. */
#define TASKD_DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

/* Default socket locations (doc/design.md "Sockets and state directories"). */
#define TASKD_SYSTEM_SOCKET "/run/taskd/taskd.sock"
#define TASKD_SOCKET_NAME "taskd.sock"

/*
 * Exit codes of taskctl itself (jobs' own codes pass through `wait`):
 * 3 only when taskd cannot be reached or the connection is lost; a taskd
 * that answers with something that is not a valid answer is 5.
 */
#define TASKD_EXIT_OK 0
#define TASKD_EXIT_FAILURE 1 /* taskctl's own failure: out of memory, cannot write its output */
#define TASKD_EXIT_USAGE 2
#define TASKD_EXIT_UNREACHABLE 3
#define TASKD_EXIT_REJECTED 4
#define TASKD_EXIT_PROTOCOL 5 /* invalid response from taskd */
/* `wait` codes for jobs that did not exit by themselves, like the shell. */
#define TASKD_EXIT_JOB_TIMEOUT 124
#define TASKD_EXIT_JOB_NOEXEC 126
#define TASKD_EXIT_JOB_NOTFOUND 127
#define TASKD_EXIT_JOB_ABORTED 1 /* cancelled or lost */

#endif
