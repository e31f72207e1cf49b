/*
 * Inside kind keys (kindkey.h): the parts kindkey.c shares with the
 * interpreter command lines (kindkey-interp.c) and the shell script reader
 * (kindkey-sh.c). Pure text functions, no I/O.
 */
#ifndef TASKD_KINDKEY_IMPL_H
#define TASKD_KINDKEY_IMPL_H

#include <stdbool.h>
#include <stddef.h>

#define SH_MAX_ITEMS 32     /* commands and keywords of a shell script looked at */
#define SH_MAX_WORDS 16     /* words of one command kept */
#define SH_WORD_MAX 512     /* bytes of one word kept */

/* s is one of the NULL-terminated list. */
bool one_of(const char *s, const char *const *list);
/* name is stem, or stem followed by a version ("python3.11", "perl5.36"). */
bool versioned(const char *name, const char *stem);
/* NAME=VALUE with a shell-valid NAME. */
bool assignment(const char *w);
/* An option loop stops at av[*i]: an operand or "-" (*i stays), or "--" (*i moves past it). */
bool options_end(char *const *av, size_t *i);
/* The argument of a short option: the rest of its cluster, or the next word (*i moves on). */
const char *opt_arg(const char *rest, char *const *av, size_t n, size_t *i);

/* ---- interpreters (kindkey-interp.c) ---- */

enum ikind { I_NONE, I_SHELL, I_PYTHON, I_PERL, I_RUBY, I_NODE, I_PHP, I_R, I_LUA, I_TCL,
	     I_AWK, I_JAVA };

/* What an interpreter was asked to run. */
struct target {
	enum { T_NONE, T_SCRIPT, T_CODE, T_MODULE, T_CLASS } what;
	const char *flag; /* how it was given: "-c", "-e", "-m", "-jar", "-f", "" */
	const char *arg;  /* script path, code, module or class */
	char *owned;      /* arg when it had to be built (several -e joined) */
};

enum ikind interp_of(const char *prog);
/* What interpreter k with arguments av[0..n) runs (t->owned: free it). */
void interp_target(enum ikind k, char *const *av, size_t n, struct target *t);

/* ---- shell scripts (kindkey-sh.c) ---- */

struct sh_item {
	const char *keyword; /* a compound command's keyword, or NULL for a command */
	char *w[SH_MAX_WORDS + 1];
	size_t n;
};

struct sh_script {
	struct sh_item item[SH_MAX_ITEMS];
	size_t n;
};

/*
 * A light reading of a shell script: its simple commands (words, quotes
 * removed, assignments and redirections dropped) and the keywords of its
 * compound commands (if, while, until, for, select, case), in order; at
 * most SH_MAX_ITEMS of them. sh_free gives the words back.
 */
void sh_parse(const char *script, struct sh_script *s);
void sh_free(struct sh_script *s);

#endif
