/*
 * Kind keys: what an interpreter's command line runs (its script, module,
 * class or inline code), from its options as the interpreter reads them.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kindkey-impl.h"
#include "xmalloc.h"

enum ikind
interp_of(const char *prog)
{
	static const char *const shells[] = { "sh", "bash", "dash", "zsh", "ksh", "mksh",
					      "ash", "yash", "posh", "ksh93", NULL };
	static const char *const awks[] = { "awk", "gawk", "mawk", "nawk", "original-awk",
					    NULL };

	if (one_of(prog, shells) || versioned(prog, "bash"))
		return I_SHELL;
	if (versioned(prog, "python") || versioned(prog, "pypy"))
		return I_PYTHON;
	if (versioned(prog, "perl"))
		return I_PERL;
	if (versioned(prog, "ruby"))
		return I_RUBY;
	if (strcmp(prog, "node") == 0 || strcmp(prog, "nodejs") == 0)
		return I_NODE;
	if (versioned(prog, "php"))
		return I_PHP;
	if (strcmp(prog, "Rscript") == 0)
		return I_R;
	if (versioned(prog, "lua") || strcmp(prog, "luajit") == 0)
		return I_LUA;
	if (versioned(prog, "tclsh") || versioned(prog, "wish"))
		return I_TCL;
	if (one_of(prog, awks))
		return I_AWK;
	if (strcmp(prog, "java") == 0)
		return I_JAVA;
	return I_NONE;
}

/* Several -e pieces (perl, ruby, Rscript) are one program: joined with newlines. */
static void
code_add(struct target *t, const char *flag, const char *code)
{
	char *joined;

	if (t->what == T_CODE && t->arg != NULL) {
		joined = xprintf("%s\n%s", t->arg, code);
		free(t->owned);
		t->owned = joined;
		t->arg = joined;
		return;
	}
	t->what = T_CODE;
	t->flag = flag;
	t->arg = code;
}

/* "-e" for 'e': the option as it is shown in a key. */
static const char *
flag_name(char letter)
{
	static const char letters[] = "eErRFBE";
	static const char *const names[] = { "-e", "-E", "-r", "-R", "-F", "-B", "-E" };
	const char *p = strchr(letters, letter);

	return p != NULL && letter != '\0' ? names[p - letters] : "-e";
}

static void
target_script(struct target *t, const char *flag, const char *path)
{
	if (path == NULL)
		return;
	t->what = T_SCRIPT;
	t->flag = flag;
	t->arg = path;
}

/*
 * Where an interpreter's options end at av[i]: "--" (its script is next),
 * an operand (its script) or "-" (standard input: none). True when they
 * end there; the script goes into t unless code was given (perl -e).
 */
static bool
script_at(char *const *av, size_t n, size_t i, struct target *t)
{
	const char *a = av[i];

	if (strcmp(a, "--") == 0) {
		if (t->what != T_CODE)
			target_script(t, "", i + 1 < n ? av[i + 1] : NULL);
		return true;
	}
	if (a[0] != '-' || a[1] == '\0') {
		if (t->what != T_CODE && a[0] != '-')
			target_script(t, "", a);
		return true;
	}
	return false;
}

/* sh, bash...: [-abc...] [-o opt] [-c SCRIPT | FILE]. */
static void
parse_shell(char *const *av, size_t n, struct target *t)
{
	static const char *const long_arg[] = { "--rcfile", "--init-file", NULL };
	bool cmd = false, stdin_mode = false;
	const char *a, *p;
	size_t i;

	for (i = 1; i < n; i++) {
		a = av[i];
		if (strcmp(a, "--") == 0 || strcmp(a, "-") == 0) {
			i++;
			break;
		}
		if (a[0] != '-' && a[0] != '+')
			break;
		if (a[1] == '-') {
			if (one_of(a, long_arg))
				i++;
			continue;
		}
		for (p = a + 1; *p != '\0'; p++) {
			if (*p == 'c')
				cmd = true;
			else if (*p == 's')
				stdin_mode = true;
			else if ((*p == 'o' || *p == 'O') && i + 1 < n)
				i++;
		}
	}
	if (cmd)
		code_add(t, "-c", i < n ? av[i] : "");
	else if (i < n && !stdin_mode)
		target_script(t, "", av[i]);
}

static void
parse_python(char *const *av, size_t n, struct target *t)
{
	const char *a, *p, *v;
	size_t i;

	for (i = 1; i < n; i++) {
		a = av[i];
		if (script_at(av, n, i, t))
			return;
		if (a[1] == '-') {
			if (strcmp(a, "--check-hash-based-pycs") == 0)
				i++;
			continue;
		}
		for (p = a + 1; *p != '\0'; p++) {
			if (*p == 'c' || *p == 'm') {
				if ((v = opt_arg(p + 1, av, n, &i)) == NULL)
					return;
				if (*p == 'c')
					code_add(t, "-c", v);
				else {
					t->what = T_MODULE;
					t->flag = "-m";
					t->arg = v;
				}
				return;
			}
			if (*p == 'W' || *p == 'X') {
				opt_arg(p + 1, av, n, &i);
				break;
			}
		}
	}
}

/*
 * Interpreters whose -e (or similar) pieces make one program and whose
 * first operand is otherwise the script: perl, ruby, Rscript, lua, php, tcl.
 * code: option letters giving code; argful: letters taking an argument
 * (attached, or the next word when alone); rest: letters that take the
 * rest of their cluster only; digits: letters followed by optional digits
 * (perl -l, -0777); file: a letter naming the script (php -f).
 */
struct iopts {
	const char *code;
	const char *argful;
	const char *rest;
	const char *digits;
	char file;
	const char *const *long_arg; /* long options taking the next word */
};

static void
parse_generic(char *const *av, size_t n, const struct iopts *o, struct target *t)
{
	const char *a, *p, *v;
	size_t i;

	for (i = 1; i < n; i++) {
		a = av[i];
		if (script_at(av, n, i, t))
			return;
		if (a[1] == '-') {
			if (o->long_arg != NULL && strchr(a, '=') == NULL && one_of(a, o->long_arg))
				i++;
			continue;
		}
		for (p = a + 1; *p != '\0'; p++) {
			if (strchr(o->code, *p) != NULL) {
				if ((v = opt_arg(p + 1, av, n, &i)) == NULL)
					return;
				code_add(t, flag_name(*p), v);
				break;
			}
			if (o->file != '\0' && *p == o->file) {
				target_script(t, "-f", opt_arg(p + 1, av, n, &i));
				return;
			}
			if (strchr(o->argful, *p) != NULL) {
				opt_arg(p + 1, av, n, &i);
				break;
			}
			if (strchr(o->rest, *p) != NULL)
				break;
			if (strchr(o->digits, *p) != NULL)
				while ((p[1] >= '0' && p[1] <= '9') || p[1] == 'x' ||
				       (p[1] >= 'a' && p[1] <= 'f' && *p == '0'))
					p++;
		}
	}
}

static void
parse_node(char *const *av, size_t n, struct target *t)
{
	static const char *const arg_long[] = { "--require", "--import", "--loader",
						"--experimental-loader", "--conditions",
						"--title", "--input-type", NULL };
	const char *a, *eq;
	size_t i, len;

	for (i = 1; i < n; i++) {
		a = av[i];
		if (script_at(av, n, i, t))
			return;
		eq = strchr(a, '=');
		len = eq != NULL ? (size_t)(eq - a) : strlen(a);
		if (a[1] == '-') {
			if ((len == 6 && strncmp(a, "--eval", 6) == 0) ||
			    (len == 7 && strncmp(a, "--print", 7) == 0)) {
				if (eq != NULL)
					code_add(t, "-e", eq + 1);
				else if (i + 1 < n)
					code_add(t, "-e", av[++i]);
				return;
			}
			if (eq == NULL && one_of(a, arg_long))
				i++;
			continue;
		}
		/* -e, -p, -pe: code follows; -r, -C: an argument. */
		if (strchr(a + 1, 'e') != NULL || strchr(a + 1, 'p') != NULL) {
			if (i + 1 < n)
				code_add(t, "-e", av[++i]);
			return;
		}
		if ((strcmp(a, "-r") == 0 || strcmp(a, "-C") == 0) && i + 1 < n)
			i++;
	}
}

static void
parse_awk(char *const *av, size_t n, struct target *t)
{
	static const char *const arg_long[] = { "--field-separator", "--assign", "--include",
						"--load", NULL };
	const char *a, *v;
	size_t i;

	for (i = 1; i < n; i++) {
		a = av[i];
		if (options_end(av, &i))
			break;
		if (a[1] == '-') {
			if (strcmp(a, "--file") == 0 || strncmp(a, "--file=", 7) == 0) {
				v = a[6] == '=' ? a + 7 : i + 1 < n ? av[++i] : NULL;
				target_script(t, "-f", v);
				return;
			}
			if (strcmp(a, "--source") == 0 && i + 1 < n) {
				code_add(t, "", av[++i]);
				return;
			}
			if (strchr(a, '=') == NULL && one_of(a, arg_long))
				i++;
			continue;
		}
		if (a[1] == 'f') {
			target_script(t, "-f", opt_arg(a + 2, av, n, &i));
			return;
		}
		if (a[1] == 'e') {
			if ((v = opt_arg(a + 2, av, n, &i)) != NULL)
				code_add(t, "", v);
			return;
		}
		if (a[1] == 'F' || a[1] == 'v' || a[1] == 'i' || a[1] == 'l')
			opt_arg(a + 2, av, n, &i);
	}
	if (i < n)
		code_add(t, "", av[i]);
}

static void
parse_java(char *const *av, size_t n, struct target *t)
{
	static const char *const arg_opts[] = {
		"-cp", "-classpath", "--class-path", "-p", "--module-path",
		"--upgrade-module-path", "--add-modules", "--add-reads", "--add-exports",
		"--add-opens", "--limit-modules", "--patch-module", "--source", NULL,
	};
	const char *a;
	size_t i;

	for (i = 1; i < n; i++) {
		a = av[i];
		if (a[0] != '-') {
			t->what = T_CLASS;
			t->flag = "";
			t->arg = a;
			return;
		}
		if (strcmp(a, "-jar") == 0) {
			target_script(t, "-jar", i + 1 < n ? av[i + 1] : NULL);
			return;
		}
		if ((strcmp(a, "-m") == 0 || strcmp(a, "--module") == 0) && i + 1 < n) {
			t->what = T_MODULE;
			t->flag = "-m";
			t->arg = av[i + 1];
			return;
		}
		if (one_of(a, arg_opts))
			i++;
	}
}

void
interp_target(enum ikind k, char *const *av, size_t n, struct target *t)
{
	/* Interpreters with the common -e/script layout, by their options. */
	static const struct iopts perl = { "eE", "I", "MmxiCdDVF", "0l", '\0', NULL };
	static const struct iopts ruby = { "e", "IrCEK", "xF", "0TW", '\0', NULL };
	static const struct iopts php = { "rRFBE", "dcz", "", "", 'f', NULL };
	static const struct iopts rscript = { "e", "", "", "", '\0', NULL };
	static const struct iopts lua = { "e", "l", "", "", '\0', NULL };
	static const struct iopts *const generic[] = {
		[I_PERL] = &perl, [I_RUBY] = &ruby, [I_PHP] = &php, [I_R] = &rscript, [I_LUA] = &lua,
	};
	static const char *const tcl_long[] = { "-encoding", NULL };

	memset(t, 0, sizeof *t);
	if ((size_t)k < sizeof generic / sizeof generic[0] && generic[k] != NULL) {
		parse_generic(av, n, generic[k], t);
		return;
	}
	switch (k) {
	case I_SHELL:
		parse_shell(av, n, t);
		break;
	case I_PYTHON:
		parse_python(av, n, t);
		break;
	case I_TCL:
		if (n > 1 && one_of(av[1], tcl_long))
			target_script(t, "", n > 3 ? av[3] : NULL);
		else
			target_script(t, "", n > 1 && av[1][0] != '-' ? av[1] : NULL);
		break;
	case I_NODE:
		parse_node(av, n, t);
		break;
	case I_AWK:
		parse_awk(av, n, t);
		break;
	case I_JAVA:
		parse_java(av, n, t);
		break;
	default:
		break;
	}
}
