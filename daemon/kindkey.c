/*
 * Kind keys (kindkey.h): wrappers are skipped, shells and interpreters
 * are looked into, and each key is built in a struct kb that keeps the
 * head of the text and a hash of all of it.
 *
 * Nothing here touches the file system: script paths are normalised as
 * text (against cwd when relative), so a key never depends on what exists.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kindkey.h"
#include "kindkey-impl.h"
#include "xmalloc.h"

#define KB_CAP 256          /* bytes of a key's text kept before the cut */
#define KIND_HASH_AT 55     /* a cut key: 55 bytes, "~", 8 hex digits = 64 */
#define MAX_HOPS 16         /* wrappers around wrappers */
#define MAX_DEPTH 4         /* sh -c 'sh -c ...' */
#define SUBCMD_MAX 24       /* "git fetch": the longest subcommand word */

_Static_assert(KIND_HASH_AT + 1 + 8 == KIND_KEY_MAX, "a cut key fills KIND_KEY_MAX");

/* ---- building one key ---- */

struct kb {
	char buf[KB_CAP];
	size_t len;   /* kept */
	size_t total; /* appended */
	uint32_t h;   /* FNV-1a of everything appended */
};

static void
kb_init(struct kb *b)
{
	b->len = 0;
	b->total = 0;
	b->h = 2166136261u;
}

static void
kb_putc(struct kb *b, char ch)
{
	b->h = (b->h ^ (unsigned char)ch) * 16777619u;
	b->total++;
	if (b->len < sizeof b->buf - 1)
		b->buf[b->len++] = ch;
}

static void
kb_putn(struct kb *b, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		kb_putc(b, s[i]);
}

static void
kb_puts(struct kb *b, const char *s)
{
	kb_putn(b, s, strlen(s));
}

/* Length of the well-formed UTF-8 sequence at s (at most n bytes), 0 if none. */
static size_t
utf8_seq(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		len = 2, cp = s[0] & 0x1F;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF)
		len = 3, cp = s[0] & 0x0F;
	else if (s[0] >= 0xF0 && s[0] <= 0xF4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3F);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
	    (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return len;
}

/*
 * Copy at most max bytes of src into dst as valid UTF-8 without control
 * characters ('?' stands for a bad byte); never cuts a character. Returns
 * the bytes written (dst is NUL-terminated, dst has room for max + 1).
 */
static size_t
clean_copy(char *dst, const char *src, size_t n, size_t max)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t i = 0, o = 0, k;

	while (i < n && o < max) {
		k = utf8_seq(s + i, n - i);
		if (k == 0 || (k == 1 && (s[i] < 0x20 || s[i] == 0x7F))) {
			dst[o++] = '?';
			i++;
			continue;
		}
		if (o + k > max)
			break;
		memcpy(dst + o, s + i, k);
		o += k;
		i += k;
	}
	dst[o] = '\0';
	return o;
}

/* Append the key in b to out, unless it is there already or out is full. */
static void
kb_emit(struct kind_keys *out, const struct kb *b)
{
	char key[KIND_KEY_MAX + 1];
	size_t i, o;

	if (b->total == 0 || out->n >= KIND_MAX_KEYS)
		return;
	if (b->total <= KIND_KEY_MAX)
		clean_copy(key, b->buf, b->len, KIND_KEY_MAX);
	else {
		o = clean_copy(key, b->buf, b->len, KIND_HASH_AT);
		snprintf(key + o, sizeof key - o, "~%08x", (unsigned)b->h);
	}
	for (i = 0; i < out->n; i++)
		if (strcmp(out->key[i], key) == 0)
			return;
	memcpy(out->key[out->n++], key, sizeof key);
}

static void
emit1(struct kind_keys *out, const char *a)
{
	struct kb b;

	kb_init(&b);
	kb_puts(&b, a);
	kb_emit(out, &b);
}

static void
emit2(struct kind_keys *out, const char *a, const char *b2)
{
	struct kb b;

	kb_init(&b);
	kb_puts(&b, a);
	kb_puts(&b, b2);
	kb_emit(out, &b);
}

/* Inline code as a key: whitespace runs become one space, digit runs "N". */
static void
kb_code(struct kb *b, const char *code)
{
	const char *p = code;
	bool space = false;

	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	for (; *p != '\0'; p++) {
		if (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
			space = true;
			continue;
		}
		if (space)
			kb_putc(b, ' ');
		space = false;
		if (*p >= '0' && *p <= '9') {
			while (p[1] >= '0' && p[1] <= '9')
				p++;
			kb_putc(b, 'N');
		} else
			kb_putc(b, *p);
	}
}

/* ---- names and paths ---- */

static const char *
base(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL && slash[1] != '\0' ? slash + 1 : path;
}

/* name is stem, or stem followed by a version ("python3.11", "perl5.36"). */
bool
versioned(const char *name, const char *stem)
{
	size_t n = strlen(stem);
	const char *p;

	if (strncmp(name, stem, n) != 0)
		return false;
	for (p = name + n; *p != '\0'; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return false;
	return true;
}

bool
one_of(const char *s, const char *const *list)
{
	for (; *list != NULL; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

/*
 * The last two components of path ("dir/file", malloc'd, NULL when the
 * file has no parent left) and the last one ("file", malloc'd, NULL for
 * "/"), normalised as text: relative to cwd when relative and cwd is
 * absolute, "." and ".." folded.
 */
static void
path_tails(const char *path, const char *cwd, char **dirfile, char **file)
{
	size_t cap = strlen(path) + (cwd != NULL ? strlen(cwd) : 0) + 2, ncomp = 0;
	char *full = xmalloc(cap), *p, *tok, *save = NULL;
	const char **comp = xcalloc(cap, sizeof *comp);

	if (path[0] != '/' && cwd != NULL && cwd[0] == '/')
		snprintf(full, cap, "%s/%s", cwd, path);
	else
		snprintf(full, cap, "%s", path);
	for (p = full; (tok = strtok_r(p, "/", &save)) != NULL; p = NULL) {
		if (strcmp(tok, ".") == 0)
			continue;
		if (strcmp(tok, "..") == 0 && ncomp > 0 && strcmp(comp[ncomp - 1], "..") != 0) {
			ncomp--;
			continue;
		}
		comp[ncomp++] = tok;
	}
	*dirfile = ncomp >= 2 && strcmp(comp[ncomp - 2], "..") != 0
		       ? xprintf("%s/%s", comp[ncomp - 2], comp[ncomp - 1])
		       : NULL;
	*file = ncomp >= 1 ? xstrdup(comp[ncomp - 1]) : NULL;
	free(comp);
	free(full);
}

/* The argument of a short option: the rest of its cluster, or the next word. */
bool
options_end(char *const *av, size_t *i)
{
	if (strcmp(av[*i], "--") == 0) {
		(*i)++;
		return true;
	}
	return av[*i][0] != '-' || av[*i][1] == '\0';
}

const char *
opt_arg(const char *rest, char *const *av, size_t n, size_t *i)
{
	if (rest[0] != '\0')
		return rest;
	if (*i + 1 < n)
		return av[++*i];
	return NULL;
}

/* ---- wrappers ---- */

struct wrapper {
	const char *name;
	const char *short_arg;            /* short options with an argument */
	const char *const *long_arg;      /* long options with an argument (without '=') */
	const char *no_cmd;               /* short options after which no command follows */
	int positional;                   /* operands before the command */
	bool assignments;                 /* NAME=VALUE words before the command (env) */
	bool numeric;                     /* nice -10 */
};

static const char *const env_long[] = { "--unset", "--chdir", "--split-string", NULL };
static const char *const nice_long[] = { "--adjustment", NULL };
static const char *const timeout_long[] = { "--signal", "--kill-after", NULL };
static const char *const stdbuf_long[] = { "--input", "--output", "--error", NULL };
static const char *const time_long[] = { "--format", "--output", NULL };
static const char *const flock_long[] = { "--wait", "--timeout", "--conflict-exit-code", NULL };
static const char *const runuser_long[] = { "--user", "--group", "--supp-group",
					    "--command", "--shell", NULL };
static const char *const sudo_long[] = { "--user", "--group", "--close-from", "--chdir",
					 "--host", "--prompt", "--role", "--type",
					 "--command-timeout", "--other-user", NULL };
static const char *const numactl_long[] = { "--interleave", "--preferred", "--membind",
					    "--cpunodebind", "--physcpubind", NULL };

static const struct wrapper wrappers[] = {
	{ "env", "uCS", env_long, "", 0, true, false },
	{ "nice", "n", nice_long, "", 0, false, true },
	{ "ionice", "cnpPu", NULL, "pPu", 0, false, false },
	{ "timeout", "sk", timeout_long, "", 1, false, false },
	{ "stdbuf", "ioe", stdbuf_long, "", 0, false, false },
	{ "time", "fo", time_long, "", 0, false, false },
	{ "nohup", "", NULL, "", 0, false, false },
	{ "setsid", "", NULL, "", 0, false, false },
	{ "chrt", "TPD", NULL, "pm", 1, false, false },
	{ "taskset", "", NULL, "p", 1, false, false },
	{ "flock", "wE", flock_long, "", 1, false, false },
	{ "runuser", "ugGcsw", runuser_long, "", 0, false, false },
	{ "sudo", "CDghprRtTUu", sudo_long, "elvVK", 0, false, false },
	{ "doas", "Cu", NULL, "", 0, false, false },
	{ "numactl", "imNpCP", numactl_long, "Hs", 0, false, false },
	{ "eatmydata", "", NULL, "", 0, false, false },
	{ "nocache", "", NULL, "", 0, false, false },
	{ "unbuffer", "", NULL, "", 0, false, false },
	{ "busybox", "", NULL, "", 0, false, false },
	{ "command", "", NULL, "vV", 0, false, false }, /* shell built-ins, in scripts */
	{ "exec", "a", NULL, "", 0, false, false },
	{ "builtin", "", NULL, "", 0, false, false },
};

static const struct wrapper *
wrapper_of(const char *prog)
{
	size_t i;

	for (i = 0; i < sizeof wrappers / sizeof wrappers[0]; i++)
		if (strcmp(prog, wrappers[i].name) == 0)
			return &wrappers[i];
	return NULL;
}

/* NAME=VALUE with a shell-valid NAME. */
bool
assignment(const char *w)
{
	const char *p = w;

	if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_'))
		return false;
	for (p++; *p != '\0' && *p != '='; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
		      (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return *p == '=';
}

enum unwrap { UW_CMD, UW_NOCMD, UW_SCRIPT, UW_SPLIT };

/*
 * Skip wrapper w at av[0]: UW_CMD with *start at the wrapped command (none
 * left: UW_NOCMD), UW_SCRIPT with *arg a shell script (flock FILE -c,
 * runuser -c), UW_SPLIT with *arg env -S's command line.
 */
static enum unwrap
unwrap(const struct wrapper *w, char *const *av, size_t n, size_t *start, const char **arg)
{
	const char *a, *p, *v;
	const char *script = NULL, *split = NULL;
	bool user_cmd = false;
	size_t i;
	int pos;

	for (i = 1; i < n; i++) {
		a = av[i];
		if (options_end(av, &i))
			break;
		if (w->numeric && ((a[1] >= '0' && a[1] <= '9') || a[1] == '+'))
			continue;
		if (a[1] == '-') {
			v = strchr(a, '=');
			if (strncmp(a, "--split-string", 14) == 0 && strcmp(w->name, "env") == 0)
				split = v != NULL ? v + 1 : i + 1 < n ? av[++i] : NULL;
			else if (strncmp(a, "--command", 9) == 0 && strcmp(w->name, "runuser") == 0)
				script = v != NULL ? v + 1 : i + 1 < n ? av[++i] : NULL;
			else if (v == NULL && w->long_arg != NULL && one_of(a, w->long_arg))
				i++;
			continue;
		}
		for (p = a + 1; *p != '\0'; p++) {
			if (strchr(w->no_cmd, *p) != NULL)
				return UW_NOCMD;
			if (strchr(w->short_arg, *p) != NULL) {
				v = opt_arg(p + 1, av, n, &i);
				if (*p == 'S' && strcmp(w->name, "env") == 0)
					split = v;
				else if (*p == 'c' && strcmp(w->name, "runuser") == 0)
					script = v;
				else if (*p == 'u' && strcmp(w->name, "runuser") == 0)
					user_cmd = true;
				break;
			}
		}
	}
	if (split != NULL) {
		*arg = split;
		*start = i;
		return UW_SPLIT;
	}
	if (script != NULL) {
		*arg = script;
		return UW_SCRIPT;
	}
	/* runuser without -u is su-like: a user, then shell arguments (-c SCRIPT). */
	if (strcmp(w->name, "runuser") == 0 && !user_cmd) {
		for (; i + 1 < n; i++)
			if (strcmp(av[i], "-c") == 0 || strcmp(av[i], "--command") == 0) {
				*arg = av[i + 1];
				return UW_SCRIPT;
			}
		return UW_NOCMD;
	}
	for (pos = 0; pos < w->positional && i < n; pos++)
		i++;
	if (strcmp(w->name, "flock") == 0 && i + 1 < n &&
	    (strcmp(av[i], "-c") == 0 || strcmp(av[i], "--command") == 0)) {
		*arg = av[i + 1];
		return UW_SCRIPT;
	}
	while (w->assignments && i < n && assignment(av[i]))
		i++;
	if (i >= n)
		return UW_NOCMD;
	*start = i;
	return UW_CMD;
}

/* ---- shell scripts and commands ---- */

struct kctx {
	struct kind_keys *out;
	const char *cwd;
	int depth;
};

static void argv_keys(struct kctx *c, char *const *av, size_t n);

/* A command's short form inside a script key: "gzip", "python3 x.py", "sh -c". */
static void
short_form(struct kb *b, char *const *av, size_t n)
{
	const struct wrapper *w;
	struct target t;
	char *dirfile, *file;
	size_t start, hops;
	const char *arg;

	for (hops = 0; n > 0 && hops < MAX_HOPS && (w = wrapper_of(base(av[0]))) != NULL; hops++) {
		if (unwrap(w, av, n, &start, &arg) != UW_CMD)
			break;
		av += start;
		n -= start;
	}
	if (n == 0)
		return;
	kb_puts(b, base(av[0]));
	interp_target(interp_of(base(av[0])), av, n, &t);
	if (t.what == T_SCRIPT) {
		path_tails(t.arg, NULL, &dirfile, &file);
		if (file != NULL) {
			kb_putc(b, ' ');
			kb_puts(b, file);
		}
		free(dirfile);
		free(file);
	} else if (t.what == T_CODE && t.flag[0] != '\0') {
		kb_putc(b, ' ');
		kb_puts(b, t.flag);
	} else if (t.what == T_MODULE || t.what == T_CLASS) {
		kb_putc(b, ' ');
		kb_puts(b, t.arg);
	}
	free(t.owned);
}

/* Keys of `shell -c script`. */
static void
script_keys(struct kctx *c, const char *shell, const char *script)
{
	char *forms[SH_MAX_ITEMS];
	struct sh_script s;
	struct kb b, f;
	size_t i, j, cmds = 0, kws = 0, one = 0;

	sh_parse(script, &s);
	for (i = 0; i < s.n; i++) {
		if (s.item[i].keyword != NULL)
			kws++;
		else {
			cmds++;
			one = i;
		}
	}
	if (kws == 0 && cmds == 1 && c->depth < MAX_DEPTH) {
		/* One simple command: it is the kind; the shell is only the coarsest key. */
		c->depth++;
		argv_keys(c, s.item[one].w, s.item[one].n);
		c->depth--;
	} else {
		/* "sh -c" and each command's short form or keyword once, in order. */
		kb_init(&b);
		kb_puts(&b, shell);
		kb_puts(&b, " -c");
		for (i = 0; i < s.n; i++) {
			kb_init(&f);
			if (s.item[i].keyword != NULL)
				kb_puts(&f, s.item[i].keyword);
			else
				short_form(&f, s.item[i].w, s.item[i].n);
			f.buf[f.len] = '\0';
			forms[i] = xstrdup(f.buf);
			for (j = 0; j < i && strcmp(forms[j], forms[i]) != 0; j++)
				;
			if (j < i || forms[i][0] == '\0')
				continue;
			kb_putc(&b, ' ');
			kb_puts(&b, forms[i]);
		}
		for (i = 0; i < s.n; i++)
			free(forms[i]);
		kb_emit(c->out, &b);
	}
	sh_free(&s);
	emit1(c->out, shell);
}

/* ---- commands ---- */

/*
 * "git fetch": programs whose first operand names what they do (a
 * subcommand or a build target), so that `git gc` and `git fetch` are
 * different kinds. Only these: for other programs the first operand is
 * usually data (a file name), which would make a new key per file.
 */
static const char *
subcommand(const char *prog, char *const *av, size_t n)
{
	static const char *const progs[] = {
		"git", "hg", "svn", "go", "cargo", "rustup", "npm", "pnpm", "yarn", "docker",
		"podman", "kubectl", "helm", "apt", "apt-get", "dnf", "yum", "pip", "pip3",
		"conda", "openssl", "systemctl", "make", "ninja", "gradle", "mvn", "dotnet",
		"terraform", "gh", "bundle", "rake", "composer", NULL,
	};
	const char *a, *p;
	size_t i;

	if (!one_of(prog, progs))
		return NULL;
	for (i = 1; i < n; i++) {
		a = av[i];
		if (a[0] == '-')
			continue;
		if (!(a[0] >= 'a' && a[0] <= 'z') || strlen(a) > SUBCMD_MAX)
			return NULL;
		for (p = a; *p != '\0'; p++)
			if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
			      *p == '_'))
				return NULL;
		return a;
	}
	return NULL;
}

/* "prog what" or "prog flag what" ("java -jar app.jar"); nothing for a NULL what. */
static void
emit_with(struct kctx *c, const char *prog, const char *flag, const char *what)
{
	struct kb b;

	if (what == NULL)
		return;
	kb_init(&b);
	kb_puts(&b, prog);
	kb_putc(&b, ' ');
	if (flag[0] != '\0') {
		kb_puts(&b, flag);
		kb_putc(&b, ' ');
	}
	kb_puts(&b, what);
	kb_emit(c->out, &b);
}

/* "prog dir/file", then "prog file". */
static void
emit_script(struct kctx *c, const char *prog, const char *flag, const char *path)
{
	char *dirfile, *file;

	path_tails(path, c->cwd, &dirfile, &file);
	emit_with(c, prog, flag, dirfile);
	emit_with(c, prog, flag, file);
	free(dirfile);
	free(file);
}

/* The keys of a command that is not a wrapper. */
static void
program_keys(struct kctx *c, char *const *av, size_t n)
{
	const char *prog = base(av[0]), *sub;
	enum ikind k = interp_of(prog);
	struct target t;
	struct kb b;

	interp_target(k, av, n, &t);
	switch (t.what) {
	case T_CODE:
		if (k == I_SHELL) {
			script_keys(c, prog, t.arg);
			free(t.owned);
			return;
		}
		kb_init(&b);
		kb_puts(&b, prog);
		kb_putc(&b, ' ');
		if (t.flag[0] != '\0') {
			kb_puts(&b, t.flag);
			kb_putc(&b, ' ');
		}
		kb_code(&b, t.arg);
		kb_emit(c->out, &b);
		break;
	case T_SCRIPT:
		emit_script(c, prog, t.flag, t.arg);
		break;
	case T_MODULE:
		emit_with(c, prog, "-m", t.arg);
		break;
	case T_CLASS:
		emit_with(c, prog, "", t.arg);
		break;
	case T_NONE:
		if (k != I_NONE)
			break;
		if (strchr(av[0], '/') != NULL) {
			/*
			 * A path: its directory tells scripts of the same name
			 * apart (not a bin directory: /usr/bin/xz is xz).
			 */
			char *dirfile, *file;

			path_tails(av[0], c->cwd, &dirfile, &file);
			if (dirfile != NULL && strncmp(dirfile, "bin/", 4) != 0 &&
			    strncmp(dirfile, "sbin/", 5) != 0)
				emit1(c->out, dirfile);
			free(dirfile);
			free(file);
		} else if ((sub = subcommand(prog, av, n)) != NULL) {
			emit_with(c, prog, "", sub);
		}
		break;
	}
	free(t.owned);
	emit1(c->out, prog);
}

/* Split env -S's string on blanks (no quoting: enough for a key). */
static char **
split_words(const char *s, size_t *n)
{
	char **v = xcalloc(strlen(s) / 2 + 2, sizeof *v);
	const char *p = s, *start;

	*n = 0;
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		start = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
		v[(*n)++] = xstrndup(start, (size_t)(p - start));
	}
	return v;
}

static void
argv_keys(struct kctx *c, char *const *av, size_t n)
{
	const struct wrapper *w;
	const char *arg = NULL;
	char **split, **joined;
	size_t hops, start = 0, ns, i;

	for (hops = 0; n > 0 && hops < MAX_HOPS; hops++) {
		if (av[0][0] == '\0' || (w = wrapper_of(base(av[0]))) == NULL)
			break;
		switch (unwrap(w, av, n, &start, &arg)) {
		case UW_CMD:
			av += start;
			n -= start;
			continue;
		case UW_NOCMD:
			emit1(c->out, base(av[0]));
			return;
		case UW_SCRIPT:
			script_keys(c, "sh", arg);
			return;
		case UW_SPLIT:
			if (c->depth >= MAX_DEPTH)
				return;
			split = split_words(arg, &ns);
			joined = xcalloc(ns + (n - start) + 1, sizeof *joined);
			for (i = 0; i < ns; i++)
				joined[i] = split[i];
			for (i = start; i < n; i++)
				joined[ns + i - start] = av[i];
			c->depth++;
			if (ns + n - start > 0)
				argv_keys(c, joined, ns + n - start);
			c->depth--;
			for (i = 0; i < ns; i++)
				free(split[i]);
			free(split);
			free(joined);
			return;
		}
	}
	if (n > 0 && av[0][0] != '\0')
		program_keys(c, av, n);
}

void
kind_keys(const char *name, const char *type, const char *handler, char *const *argv,
	  const char *cwd, struct kind_keys *out)
{
	struct kctx c = { out, cwd, 0 };
	size_t n = 0;

	memset(out, 0, sizeof *out);
	if (name != NULL && name[0] != '\0')
		emit2(out, "name:", name);
	if (handler != NULL)
		emit2(out, "handler:", handler);
	else if (type != NULL && strcmp(type, "exec") != 0)
		emit2(out, "builtin:", type);
	else if (argv != NULL) {
		while (argv[n] != NULL)
			n++;
		argv_keys(&c, argv, n);
	}
	if (out->n == 0)
		emit1(out, "?");
}

char *
kind_keys_pack(const struct kind_keys *k)
{
	size_t i, len = 1, o = 0;
	char *p;

	for (i = 0; i < k->n; i++)
		len += strlen(k->key[i]) + 1;
	p = xmalloc(len);
	for (i = 0; i < k->n; i++) {
		len = strlen(k->key[i]) + 1;
		memcpy(p + o, k->key[i], len);
		o += len;
	}
	p[o] = '\0';
	return p;
}

void
kind_keys_unpack(const char *packed, struct kind_keys *k)
{
	const char *p = packed;

	memset(k, 0, sizeof *k);
	while (p != NULL && *p != '\0' && k->n < KIND_MAX_KEYS) {
		snprintf(k->key[k->n++], sizeof k->key[0], "%s", p);
		p += strlen(p) + 1;
	}
	if (k->n == 0)
		snprintf(k->key[k->n++], sizeof k->key[0], "?");
}

const char *
kind_keys_first(const char *packed)
{
	return packed != NULL && packed[0] != '\0' ? packed : "?";
}
