/*
 * The hash module: digests of files (SHA-256 by default, and the other
 * common ones) with libcrypto, as a taskd job type (doc/modules.md).
 *
 *   taskctl submit --wait --type hash -- /srv/a.iso b.tar
 *   {"algorithm":"sha256","files":[{"path":"/srv/a.iso","size":..,"digest":"9f86d0.."},..]}
 *   taskctl submit --wait --type hash --input photo.jpg -- -a sha512
 *   {"algorithm":"sha512","size":48213,"digest":"ee26b0.."}
 *
 * Arguments: [-a ALGORITHM | --algorithm=ALGORITHM] [--] [FILE...]. With
 * no FILE, the job's input is hashed. Relative paths are the job's
 * directory's (taskctl's, or --cwd). Files are opened by the module code,
 * which taskd runs with the submitter's ids: a user can hash only what
 * they can read. Only regular files (a FIFO or a device could block or
 * never end). The first file that cannot be read fails the job with its
 * name and why; the result lists every file, in order.
 *
 * Class auto: the router learns whether hashing runs CPU-bound (files in
 * the page cache) or waits for the disk. taskd_stop() is checked after
 * every 256 KiB read, progress reported every half second.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <taskd/module.h>

#define HASH_VERSION "1.0"
#define CHUNK (256u << 10)
#define MAX_FILES 100000
#define PROGRESS_EVERY 0.5 /* seconds */

/* The algorithms, by the names the job gives (and libcrypto's for them). */
static const struct algorithm {
	const char *name;
	const char *evp;
} algorithms[] = {
	{"sha256", "SHA2-256"},     {"sha512", "SHA2-512"},     {"sha384", "SHA2-384"},
	{"sha224", "SHA2-224"},     {"sha1", "SHA1"},           {"md5", "MD5"},
	{"sha3-256", "SHA3-256"},   {"sha3-384", "SHA3-384"},   {"sha3-512", "SHA3-512"},
	{"blake2b512", "BLAKE2B-512"}, {"blake2s256", "BLAKE2S-256"},
};
#define NALGORITHMS (sizeof algorithms / sizeof algorithms[0])

/* Fetched once per process (init): NULL for one this libcrypto does not offer (FIPS). */
static EVP_MD *digests[NALGORITHMS];

static int
hash_init(char *error, size_t len)
{
	size_t i;
	int any = 0;

	for (i = 0; i < NALGORITHMS; i++)
		if ((digests[i] = EVP_MD_fetch(NULL, algorithms[i].evp, NULL)) != NULL)
			any = 1;
	if (!any) {
		snprintf(error, len, "libcrypto offers none of the digests");
		return -1;
	}
	return 0;
}

/* --- arguments ------------------------------------------------------------- */

struct hash_args {
	size_t algorithm; /* index in algorithms[] */
	int first;        /* index of the first FILE in argv; argc if none */
};

static int
algorithm_index(const char *name, size_t *i, char *err, size_t len)
{
	size_t k;

	for (k = 0; k < NALGORITHMS; k++)
		if (strcmp(algorithms[k].name, name) == 0) {
			if (digests[k] == NULL) {
				snprintf(err, len, "algorithm %s is not available here", name);
				return -1;
			}
			*i = k;
			return 0;
		}
	snprintf(err, len, "unknown algorithm '%.64s' (sha256, sha512, sha384, sha224, sha1, "
		 "md5, sha3-256, sha3-384, sha3-512, blake2b512, blake2s256)", name);
	return -1;
}

static int
parse_args(int argc, char *const *argv, struct hash_args *a, char *err, size_t len)
{
	const char *name = "sha256";
	int i = 0;

	while (i < argc && argv[i][0] == '-' && argv[i][1] != '\0') {
		if (strcmp(argv[i], "--") == 0) {
			i++;
			break;
		}
		if (strcmp(argv[i], "-a") == 0 || strcmp(argv[i], "--algorithm") == 0) {
			if (i + 1 >= argc) {
				snprintf(err, len, "%s needs an ALGORITHM", argv[i]);
				return -1;
			}
			name = argv[i + 1];
			i += 2;
		} else if (strncmp(argv[i], "--algorithm=", 12) == 0) {
			name = argv[i] + 12;
			i++;
		} else {
			snprintf(err, len, "unknown option '%.64s' (usage: [-a ALGORITHM] [--] "
				 "[FILE...])", argv[i]);
			return -1;
		}
	}
	if (argc - i > MAX_FILES) {
		snprintf(err, len, "at most %d files per job", MAX_FILES);
		return -1;
	}
	for (a->first = i; i < argc; i++)
		if (argv[i][0] == '\0') {
			snprintf(err, len, "an empty FILE name");
			return -1;
		}
	return algorithm_index(name, &a->algorithm, err, len);
}

static int
hash_validate(const struct taskd_args *a, char *err, size_t len)
{
	struct hash_args h;

	if (parse_args(a->argc, a->argv, &h, err, len) == -1)
		return -1;
	if (h.first < a->argc && a->input_len > 0) {
		snprintf(err, len, "give FILEs or an input, not both");
		return -1;
	}
	return 0;
}

/* --- the result ------------------------------------------------------------- */

/* A growing string; out of memory sets failed. */
struct buf {
	char *s;
	size_t len, cap;
	bool failed;
};

static void
put(struct buf *b, const char *s, size_t n)
{
	char *p;
	size_t cap;

	if (b->failed)
		return;
	if (b->len + n + 1 > b->cap) {
		cap = b->cap == 0 ? 256 : b->cap;
		while (cap < b->len + n + 1)
			cap *= 2;
		if ((p = realloc(b->s, cap)) == NULL) {
			b->failed = true;
			return;
		}
		b->s = p;
		b->cap = cap;
	}
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

static void
puts_b(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
putf(struct buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

/* s as a JSON string (the arguments are UTF-8: taskd's protocol is JSON). */
static void
put_json_string(struct buf *b, const char *s)
{
	const unsigned char *p;

	put(b, "\"", 1);
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\') {
			put(b, "\\", 1);
			put(b, (const char *)p, 1);
		} else if (*p < 0x20) {
			putf(b, "\\u%04x", *p);
		} else {
			put(b, (const char *)p, 1);
		}
	}
	put(b, "\"", 1);
}

static void
put_digest(struct buf *b, const unsigned char *md, unsigned int n)
{
	static const char hex[] = "0123456789abcdef";
	char out[2 * EVP_MAX_MD_SIZE];
	unsigned int i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	put(b, "\"", 1);
	put(b, out, 2 * n);
	put(b, "\"", 1);
}

/* --- hashing ---------------------------------------------------------------- */

struct run_state {
	struct taskd_job *job;
	EVP_MD_CTX *ctx;
	unsigned char *chunk;
	int nfiles, done;
	uint64_t bytes;     /* hashed so far, all files */
	double next_report; /* CLOCK_MONOTONIC */
};

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
report(struct run_state *st)
{
	char msg[128];
	double now = mono();

	if (now < st->next_report)
		return;
	st->next_report = now + PROGRESS_EVERY;
	snprintf(msg, sizeof msg, "%d/%d files, %.1f MiB", st->done, st->nfiles,
		 (double)st->bytes / (1 << 20));
	taskd_progress(st->job, msg);
}

/* Hash one open file into md: TASKD_OK, _FAILED (error set) or _STOPPED. */
static int
hash_fd(struct run_state *st, int fd, const char *path, unsigned char *md, unsigned int *mdlen,
	uint64_t *size)
{
	ssize_t n;

	*size = 0;
	for (;;) {
		n = read(fd, st->chunk, CHUNK);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			taskd_errorf(st->job, "%s: %s", path, strerror(errno));
			return TASKD_FAILED;
		}
		if (n == 0)
			break;
		if (!EVP_DigestUpdate(st->ctx, st->chunk, (size_t)n)) {
			taskd_errorf(st->job, "%s: the digest failed", path);
			return TASKD_FAILED;
		}
		*size += (uint64_t)n;
		st->bytes += (uint64_t)n;
		if (taskd_stop(st->job))
			return TASKD_STOPPED;
		report(st);
	}
	if (!EVP_DigestFinal_ex(st->ctx, md, mdlen)) {
		taskd_errorf(st->job, "%s: the digest failed", path);
		return TASKD_FAILED;
	}
	return TASKD_OK;
}

/* Open path (relative to the job's directory) as a regular file: fd, or -1 with the error set. */
static int
open_file(struct taskd_job *job, const char *path)
{
	struct stat sb;
	int fd = openat(job->dir_fd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd == -1) {
		taskd_errorf(job, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &sb) == -1) {
		taskd_errorf(job, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(sb.st_mode)) {
		taskd_errorf(job, "%s: %s", path,
			     S_ISDIR(sb.st_mode) ? "Is a directory" : "not a regular file");
		close(fd);
		return -1;
	}
	return fd;
}

static int
hash_files(struct run_state *st, const struct hash_args *a, struct buf *out)
{
	struct taskd_job *job = st->job;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t size;
	int i, fd, rc;

	puts_b(out, ",\"files\":[");
	for (i = a->first; i < job->argc; i++) {
		if ((fd = open_file(job, job->argv[i])) == -1)
			return TASKD_FAILED;
		if (!EVP_DigestInit_ex(st->ctx, digests[a->algorithm], NULL)) {
			close(fd);
			taskd_error(job, "cannot start the digest");
			return TASKD_FAILED;
		}
		rc = hash_fd(st, fd, job->argv[i], md, &mdlen, &size);
		close(fd);
		if (rc != TASKD_OK)
			return rc;
		st->done++;
		puts_b(out, i > a->first ? ",{\"path\":" : "{\"path\":");
		put_json_string(out, job->argv[i]);
		putf(out, ",\"size\":%llu,\"digest\":", (unsigned long long)size);
		put_digest(out, md, mdlen);
		puts_b(out, "}");
	}
	puts_b(out, "]");
	return TASKD_OK;
}

static int
hash_input(struct run_state *st, const struct hash_args *a, struct buf *out)
{
	struct taskd_job *job = st->job;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_DigestInit_ex(st->ctx, digests[a->algorithm], NULL) ||
	    !EVP_DigestUpdate(st->ctx, job->input != NULL ? job->input : (const unsigned char *)"",
			      job->input_len) ||
	    !EVP_DigestFinal_ex(st->ctx, md, &mdlen)) {
		taskd_error(job, "the digest failed");
		return TASKD_FAILED;
	}
	putf(out, ",\"size\":%zu,\"digest\":", job->input_len);
	put_digest(out, md, mdlen);
	return TASKD_OK;
}

static int
hash_run(struct taskd_job *job)
{
	struct run_state st = {.job = job};
	struct buf out = {0};
	struct hash_args a;
	char err[256];
	int rc;

	if (parse_args(job->argc, job->argv, &a, err, sizeof err) == -1) {
		taskd_error(job, err);
		return TASKD_FAILED;
	}
	st.nfiles = job->argc - a.first;
	st.next_report = mono() + PROGRESS_EVERY;
	st.ctx = EVP_MD_CTX_new();
	st.chunk = malloc(CHUNK);
	if (st.ctx == NULL || st.chunk == NULL) {
		taskd_error(job, "out of memory");
		rc = TASKD_FAILED;
		goto out;
	}
	puts_b(&out, "{\"algorithm\":");
	put_json_string(&out, algorithms[a.algorithm].name);
	rc = st.nfiles > 0 ? hash_files(&st, &a, &out) : hash_input(&st, &a, &out);
	puts_b(&out, "}");
	if (rc == TASKD_OK && out.failed) {
		taskd_error(job, "out of memory");
		rc = TASKD_FAILED;
	}
	if (rc == TASKD_OK)
		taskd_result_json(job, out.s);
out:
	EVP_MD_CTX_free(st.ctx);
	free(st.chunk);
	free(out.s);
	return rc;
}

/* --- the module ------------------------------------------------------------ */

static const struct taskd_type hash_type = {
	TASKD_TYPE_INIT,
	.name = "hash",
	.cls = TASKD_TYPE_AUTO,
	.usage = "[-a ALGORITHM] [--] [FILE...]",
	.validate = hash_validate,
	.run = hash_run,
};

static const struct taskd_type *const hash_types[] = {&hash_type, NULL};

__attribute__((visibility("default"))) const struct taskd_module taskd_module_v1 = {
	TASKD_MODULE_INIT,
	.name = "hash",
	.version = HASH_VERSION,
	.types = hash_types,
	.init = hash_init,
};
