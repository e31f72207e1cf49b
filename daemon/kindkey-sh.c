/*
 * Kind keys: a light reader of shell scripts (sh -c SCRIPT). Not a shell
 * parser: enough to find the commands a script runs and the compound
 * commands around them, and never to read past the text whatever it holds
 * (unterminated quotes and substitutions end at the end of the text).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "kindkey-impl.h"
#include "xmalloc.h"

static bool
sh_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

static bool
sh_sep(char ch)
{
	return ch == ';' || ch == '&' || ch == '|' || ch == '(' || ch == ')' || ch == '\n' ||
	       ch == '<' || ch == '>';
}

struct wbuf {
	char b[SH_WORD_MAX + 1];
	size_t n;
};

static void
wb_put(struct wbuf *w, char ch)
{
	if (w->n < SH_WORD_MAX)
		w->b[w->n++] = ch;
}

/* Copy a $(...), $((...)) or ${...} from p (at the '$') as it is; returns the end. */
static const char *
sh_subst(const char *p, struct wbuf *w)
{
	char open = p[1], close = open == '(' ? ')' : '}';
	int depth = 0;

	wb_put(w, *p++);
	for (; *p != '\0'; p++) {
		wb_put(w, *p);
		if (*p == '\\' && p[1] != '\0') {
			wb_put(w, *++p);
			continue;
		}
		if (*p == '\'') {
			while (p[1] != '\0' && p[1] != '\'')
				wb_put(w, *++p);
			if (p[1] != '\0')
				wb_put(w, *++p);
			continue;
		}
		if (*p == open)
			depth++;
		else if (*p == close && --depth == 0)
			return p + 1;
	}
	return p;
}

/* One word from *pp with quotes removed; false at a separator or the end. */
static bool
sh_word(const char **pp, struct wbuf *w)
{
	const char *p = *pp;

	w->n = 0;
	if (*p == '\0' || sh_blank(*p) || sh_sep(*p))
		return false;
	while (*p != '\0' && !sh_blank(*p) && !sh_sep(*p)) {
		if (*p == '\\') {
			if (p[1] == '\n') {
				p += 2;
				continue;
			}
			if (p[1] != '\0')
				wb_put(w, p[1]);
			p += p[1] != '\0' ? 2 : 1;
		} else if (*p == '\'') {
			for (p++; *p != '\0' && *p != '\''; p++)
				wb_put(w, *p);
			if (*p != '\0')
				p++;
		} else if (*p == '"') {
			for (p++; *p != '\0' && *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0' && strchr("\"\\$`\n", p[1]) != NULL)
					p++;
				if (*p == '$' && (p[1] == '(' || p[1] == '{')) {
					p = sh_subst(p, w) - 1;
					continue;
				}
				wb_put(w, *p);
			}
			if (*p != '\0')
				p++;
		} else if (*p == '$' && (p[1] == '(' || p[1] == '{')) {
			p = sh_subst(p, w);
		} else if (*p == '`') {
			wb_put(w, *p++);
			while (*p != '\0' && *p != '`') {
				if (*p == '\\' && p[1] != '\0')
					wb_put(w, *p++);
				wb_put(w, *p++);
			}
			if (*p != '\0')
				wb_put(w, *p++);
		} else
			wb_put(w, *p++);
	}
	w->b[w->n] = '\0';
	*pp = p;
	return true;
}

static void
sh_flush(struct sh_script *s, struct sh_item *cur)
{
	if (cur->n > 0 && s->n < SH_MAX_ITEMS)
		s->item[s->n++] = *cur;
	else {
		while (cur->n > 0)
			free(cur->w[--cur->n]);
	}
	memset(cur, 0, sizeof *cur);
}

static void
sh_keyword(struct sh_script *s, const char *kw)
{
	if (s->n < SH_MAX_ITEMS) {
		memset(&s->item[s->n], 0, sizeof s->item[0]);
		s->item[s->n++].keyword = kw;
	}
}

void
sh_free(struct sh_script *s)
{
	size_t i, j;

	for (i = 0; i < s->n; i++)
		for (j = 0; j < s->item[i].n; j++)
			free(s->item[i].w[j]);
	s->n = 0;
}

/* Skip a redirection operator at p ("<", ">>", "2>&", "&>", "<<<"...) and its target word. */
static const char *
sh_redirect(const char *p)
{
	struct wbuf w;

	while (*p != '\0' && strchr("<>&|-", *p) != NULL)
		p++;
	while (sh_blank(*p))
		p++;
	sh_word(&p, &w);
	return p;
}

/* Skip "((...))" (arithmetic) from p at its first '('. */
static const char *
sh_arith(const char *p)
{
	int depth = 0;

	for (; *p != '\0'; p++) {
		if (*p == '(')
			depth++;
		else if (*p == ')' && --depth == 0)
			return p + 1;
	}
	return p;
}

/* kindkey-impl.h; a for/select/case header and case patterns are skipped. */
void
sh_parse(const char *p, struct sh_script *s)
{
	static const char *const skip_kw[] = { "then", "else", "elif", "do", "done", "fi",
					       "!", "{", "}", "time", "in", "esac", NULL };
	static const char *const kws[] = { "if", "while", "until", "for", "select", "case",
					   NULL };
	struct sh_item cur;
	struct wbuf w;
	bool header = false;  /* for/select/case header: skip words */
	bool pattern = false; /* case pattern: skip to ')' */
	int cases = 0;
	size_t k;

	memset(&cur, 0, sizeof cur);
	s->n = 0;
	while (*p != '\0') {
		while (sh_blank(*p))
			p++;
		if (*p == '\0')
			break;
		if (*p == '\\' && p[1] == '\n') {
			p += 2;
			continue;
		}
		if (*p == '#') {
			while (*p != '\0' && *p != '\n')
				p++;
			continue;
		}
		if (*p == '<' || *p == '>' || (*p == '&' && p[1] == '>')) {
			p = sh_redirect(p);
			continue;
		}
		if (sh_sep(*p)) {
			sh_flush(s, &cur);
			if (*p == ')' && pattern) {
				pattern = false;
				p++;
				continue;
			}
			if (*p == '(' && p[1] == '(') {
				p = sh_arith(p);
				continue;
			}
			if (*p == ';' && (p[1] == ';' || p[1] == '&') && cases > 0)
				pattern = true;
			if (*p == ';' || *p == '\n')
				header = false;
			while (*p != '\0' && (*p == ';' || *p == '&' || *p == '|') && p[1] == *p)
				p++;
			p++;
			continue;
		}
		/* "2>file", "2>&1": a redirection with its descriptor. */
		for (k = 0; p[k] >= '0' && p[k] <= '9'; k++)
			;
		if (k > 0 && (p[k] == '<' || p[k] == '>')) {
			p = sh_redirect(p + k);
			continue;
		}
		if (!sh_word(&p, &w))
			continue;
		if (pattern) {
			if (strcmp(w.b, "esac") == 0 && cases > 0) {
				cases--;
				pattern = false;
			}
			continue;
		}
		if (header) {
			if (strcmp(w.b, "do") == 0)
				header = false;
			else if (strcmp(w.b, "in") == 0 && s->n > 0 && s->item[s->n - 1].keyword &&
				 strcmp(s->item[s->n - 1].keyword, "case") == 0) {
				header = false;
				pattern = true;
			}
			continue;
		}
		if (cur.n == 0) {
			for (k = 0; kws[k] != NULL; k++)
				if (strcmp(w.b, kws[k]) == 0)
					break;
			if (kws[k] != NULL) {
				sh_keyword(s, kws[k]);
				if (strcmp(kws[k], "for") == 0 || strcmp(kws[k], "select") == 0 ||
				    strcmp(kws[k], "case") == 0)
					header = true;
				if (strcmp(kws[k], "case") == 0)
					cases++;
				continue;
			}
			if (strcmp(w.b, "esac") == 0 && cases > 0)
				cases--;
			if (one_of(w.b, skip_kw) || assignment(w.b))
				continue;
		}
		if (cur.n < SH_MAX_WORDS)
			cur.w[cur.n++] = xstrndup(w.b, w.n);
	}
	sh_flush(s, &cur);
}
