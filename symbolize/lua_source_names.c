/* SPDX-License-Identifier: MIT */
/* lua_source_names.c - function names from Lua source lines (rules in lua_source_names.h).
 * A small tokenizer for one line (llex.c of 5.4 for the token shapes: names, numerals, short and
 * long strings, comments), then two patterns around the single `function` keyword. */
#include "symbolize/lua_source_names.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- Lines. */

static bool is_newline(char c) { return c == '\n' || c == '\r'; }

/* The offset after the line terminator that starts at i (llex.c inclinenumber: "\n", "\r", and
 * the two-byte pairs "\r\n" / "\n\r", 5.1-5.4). */
static size_t skip_newline(const char *text, size_t len, size_t i)
{
	char first = text[i++];
	if (i < len && is_newline(text[i]) && text[i] != first)
		i++;
	return i;
}

int lua_source_lines_init(struct lua_source_lines *lines, const char *text, size_t len)
{
	memset(lines, 0, sizeof(*lines));
	if (len >= UINT32_MAX)
		return -EFBIG;
	size_t count = 1;
	for (size_t i = 0; i < len;) {
		if (is_newline(text[i])) {
			i = skip_newline(text, len, i);
			count++;
		} else {
			i++;
		}
	}
	uint32_t *starts = calloc(count, sizeof(*starts));
	if (!starts)
		return -ENOMEM;
	size_t n = 1; /* starts[0] = 0 */
	for (size_t i = 0; i < len;) {
		if (is_newline(text[i])) {
			i = skip_newline(text, len, i);
			starts[n++] = (uint32_t)i;
		} else {
			i++;
		}
	}
	lines->text = text;
	lines->len = len;
	lines->starts = starts;
	lines->count = (uint32_t)count;
	return 0;
}

void lua_source_lines_free(struct lua_source_lines *lines)
{
	free(lines->starts);
	memset(lines, 0, sizeof(*lines));
}

bool lua_source_line(const struct lua_source_lines *lines, int line, const char **start,
		     size_t *len)
{
	if (line < 1 || (uint32_t)line > lines->count)
		return false;
	size_t begin = lines->starts[line - 1];
	size_t end = begin;
	while (end < lines->len && !is_newline(lines->text[end]))
		end++;
	*start = lines->text + begin;
	*len = end - begin;
	return true;
}

/* ---- Tokens of one line. */

enum tok_kind { TOK_NAME, TOK_STRING, TOK_NUMBER, TOK_SYMBOL };

struct token {
	enum tok_kind kind;
	const char *s;
	size_t len;
};

struct tokens {
	struct token *items;
	size_t count;
};

static bool is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c) { return c >= '0' && c <= '9'; }
static bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || is_newline(c);
}

/* At s[i] == '[': the length of a long-bracket opener "[=*[" there, or 0 (llex.c skip_sep). */
static size_t long_open_len(const char *s, size_t n, size_t i)
{
	size_t j = i + 1;
	while (j < n && s[j] == '=')
		j++;
	return (j < n && s[j] == '[') ? j + 1 - i : 0;
}

/* The offset after the "]=*]" closer with `level` '='s searching from i, or n when the line does
 * not close it (llex.c read_long_string). */
static size_t long_close(const char *s, size_t n, size_t i, size_t level)
{
	for (; i < n; i++) {
		if (s[i] != ']')
			continue;
		size_t j = i + 1;
		while (j < n && s[j] == '=')
			j++;
		if (j - i - 1 == level && j < n && s[j] == ']')
			return j + 1;
	}
	return n;
}

/* A quoted string from s[i] (the quote) to after its closing quote, or n (llex.c read_string). */
static size_t quoted_end(const char *s, size_t n, size_t i)
{
	char quote = s[i];
	for (size_t j = i + 1; j < n; j++) {
		if (s[j] == '\\')
			j++; /* the escaped byte; the loop's j++ passes it */
		else if (s[j] == quote)
			return j + 1;
	}
	return n;
}

/* A numeral from s[i] (llex.c read_numeral: exponent signs after e/E, or p/P for hex). */
static size_t number_end(const char *s, size_t n, size_t i)
{
	bool hex = s[i] == '0' && i + 1 < n && (s[i + 1] == 'x' || s[i + 1] == 'X');
	const char *expo = hex ? "Pp" : "Ee";
	size_t j = i + (hex ? 2 : 0);
	while (j < n) {
		if ((s[j] == expo[0] || s[j] == expo[1]) && j + 1 < n &&
		    (s[j + 1] == '+' || s[j + 1] == '-'))
			j += 2;
		else if (is_alnum(s[j]) || s[j] == '.')
			j++;
		else
			break;
	}
	return j;
}

static size_t symbol_len(const char *s, size_t n, size_t i)
{
	static const char *const two[] = {"==", "~=", "<=", ">=", "//", "::", "<<", ">>", ".."};
	if (i + 2 < n && memcmp(s + i, "...", 3) == 0)
		return 3;
	for (size_t k = 0; k < sizeof(two) / sizeof(two[0]); k++)
		if (i + 1 < n && memcmp(s + i, two[k], 2) == 0)
			return 2;
	return 1;
}

/* Where a "--" comment at i ends: after a long comment closed on this line, otherwise n. */
static size_t comment_end(const char *s, size_t n, size_t i)
{
	i += 2;
	if (i < n && s[i] == '[') {
		size_t open = long_open_len(s, n, i);
		if (open)
			return long_close(s, n, i + open, open - 2);
	}
	return n;
}

/* The kind and end offset of the token starting at s[i] (not a space, not a comment). */
static size_t token_end(const char *s, size_t n, size_t i, enum tok_kind *kind)
{
	if (is_alpha(s[i])) {
		size_t j = i + 1;
		while (j < n && is_alnum(s[j]))
			j++;
		*kind = TOK_NAME;
		return j;
	}
	if (is_digit(s[i]) || (s[i] == '.' && i + 1 < n && is_digit(s[i + 1]))) {
		*kind = TOK_NUMBER;
		return number_end(s, n, i);
	}
	if (s[i] == '"' || s[i] == '\'') {
		*kind = TOK_STRING;
		return quoted_end(s, n, i);
	}
	size_t open = s[i] == '[' ? long_open_len(s, n, i) : 0;
	if (open) {
		*kind = TOK_STRING;
		return long_close(s, n, i + open, open - 2);
	}
	*kind = TOK_SYMBOL;
	return i + symbol_len(s, n, i);
}

/* 0 or -ENOMEM. Every token is at least one byte: len + 1 slots always suffice. */
static int tokenize(const char *s, size_t n, struct tokens *out)
{
	out->count = 0;
	out->items = malloc((n + 1) * sizeof(*out->items));
	if (!out->items)
		return -ENOMEM;
	size_t i = 0;
	while (i < n) {
		if (is_space(s[i])) {
			i++;
			continue;
		}
		if (s[i] == '-' && i + 1 < n && s[i + 1] == '-') {
			i = comment_end(s, n, i);
			continue;
		}
		enum tok_kind kind;
		size_t end = token_end(s, n, i, &kind);
		out->items[out->count++] = (struct token){kind, s + i, end - i};
		i = end;
	}
	return 0;
}

/* ---- Patterns. */

static bool tok_is(const struct token *t, enum tok_kind kind, const char *text)
{
	return t->kind == kind && t->len == strlen(text) && memcmp(t->s, text, t->len) == 0;
}

static bool is_sym(const struct token *t, const char *text) { return tok_is(t, TOK_SYMBOL, text); }
static bool is_word(const struct token *t, const char *text) { return tok_is(t, TOK_NAME, text); }

/* A Name that is not a reserved word (llex.c luaX_tokens, 5.4; 5.1 lacks goto, harmless). */
static bool is_plain_name(const struct token *t)
{
	static const char *const reserved[] = {
		"and",      "break",  "do",   "else", "elseif", "end",   "false", "for",
		"function", "goto",   "if",   "in",   "local",  "nil",   "not",   "or",
		"repeat",   "return", "then", "true", "until",  "while",
	};
	if (t->kind != TOK_NAME)
		return false;
	for (size_t k = 0; k < sizeof(reserved) / sizeof(reserved[0]); k++)
		if (is_word(t, reserved[k]))
			return false;
	return true;
}

/* tokens[first..last] joined without spaces; NULL with *err -ENOMEM, or NULL when a token holds
 * a byte outside printable ASCII (or a space): such keys are not worth a frame name. */
static char *join(const struct token *tokens, size_t first, size_t last, int *err)
{
	size_t len = 0;
	for (size_t k = first; k <= last; k++) {
		for (size_t b = 0; b < tokens[k].len; b++)
			if (tokens[k].s[b] <= ' ' || tokens[k].s[b] > '~')
				return NULL;
		len += tokens[k].len;
	}
	char *name = malloc(len + 1);
	if (!name) {
		*err = -ENOMEM;
		return NULL;
	}
	size_t at = 0;
	for (size_t k = first; k <= last; k++) {
		memcpy(name + at, tokens[k].s, tokens[k].len);
		at += tokens[k].len;
	}
	name[at] = '\0';
	return name;
}

/* `function Name{.Name}[:Name] (` starting at tokens[k] (the keyword). */
static char *statement_name(const struct tokens *t, size_t k, int *err)
{
	size_t first = k + 1, j = k + 1;
	if (j >= t->count || !is_plain_name(&t->items[j]))
		return NULL;
	j++;
	while (j + 1 < t->count && is_sym(&t->items[j], ".") && is_plain_name(&t->items[j + 1]))
		j += 2;
	if (j + 1 < t->count && is_sym(&t->items[j], ":") && is_plain_name(&t->items[j + 1]))
		j += 2;
	if (j >= t->count || !is_sym(&t->items[j], "("))
		return NULL;
	return join(t->items, first, j - 1, err);
}

/* Is there a '{' not closed before tokens[end]? */
static bool unclosed_brace(const struct token *p, size_t end)
{
	long depth = 0;
	for (size_t k = 0; k < end; k++) {
		if (is_sym(&p[k], "{"))
			depth++;
		else if (is_sym(&p[k], "}") && depth > 0)
			depth--;
	}
	return depth > 0;
}

/* p[*j] is `]` of `[String]` or `[Number]`: step *j before its `[`. */
static bool back_over_index(const struct token *p, long *j)
{
	if (*j < 2 || !is_sym(&p[*j - 2], "[") ||
	    (p[*j - 1].kind != TOK_STRING && p[*j - 1].kind != TOK_NUMBER))
		return false;
	*j -= 3;
	return true;
}

/* Walks an assignment target backwards from p[j] (its last token); returns the index of the
 * token before it (-1 at the start) or -2 when p[j] ends no target. */
static long back_over_target(const struct token *p, long j)
{
	for (;;) {
		bool index = is_sym(&p[j], "]");
		if (index) {
			if (!back_over_index(p, &j))
				return -2;
		} else if (is_plain_name(&p[j])) {
			j--;
		} else {
			return -2;
		}
		if (j < 0)
			return j;
		if (!index && is_sym(&p[j], ".") && j > 0)
			j--; /* `a.b`: continue with what precedes the dot */
		else if (!(index && (is_sym(&p[j], "]") || is_plain_name(&p[j]))))
			return j; /* `t["k"]`, `t.x["k"]`, `t["a"]["b"]` continue; others end */
	}
}

/* May a target that starts after p[before] (-1: line start) be named? */
static bool target_context_ok(const struct token *p, long before, long start, long end, bool attrib)
{
	bool single = start == end && is_plain_name(&p[start]);
	if (before < 0)
		return !attrib;
	const struct token *b = &p[before];
	if (is_word(b, "local"))
		return single;
	if (attrib)
		return false;
	if (is_sym(b, "{") || is_sym(b, ";"))
		return true;
	if (is_sym(b, ","))
		return unclosed_brace(p, (size_t)before);
	bool name_first = is_plain_name(&p[start]);
	return name_first && (is_word(b, "do") || is_word(b, "then") || is_word(b, "else") ||
			      is_word(b, "repeat"));
}

/* `Target [<attrib>] =` ending the prefix p[0..n) of an anonymous `function (`. */
static char *assigned_name(const struct token *p, size_t n, int *err)
{
	if (n == 0)
		return NULL;
	long j = (long)n - 1;
	bool attrib = false;
	if (is_sym(&p[j], "=")) {
		j--;
		if (j >= 2 && is_sym(&p[j], ">") && p[j - 1].kind == TOK_NAME &&
		    is_sym(&p[j - 2], "<")) {
			j -= 3; /* `local x <const> =` (lparser.c getlocalattribute, 5.4) */
			attrib = true;
		}
	} else if (is_sym(&p[j], ">=") && j >= 2 && p[j - 1].kind == TOK_NAME &&
		   is_sym(&p[j - 2], "<")) {
		j -= 3; /* `local x <const>=`: the lexer makes one `>=` token */
		attrib = true;
	} else {
		return NULL;
	}
	if (j < 0)
		return NULL;
	long end = j;
	long before = back_over_target(p, end);
	if (before < -1 || !target_context_ok(p, before, before + 1, end, attrib))
		return NULL;
	return join(p, (size_t)(before + 1), (size_t)end, err);
}

static size_t count_function_keywords(const struct tokens *t, size_t *where)
{
	size_t count = 0;
	for (size_t k = 0; k < t->count; k++) {
		if (is_word(&t->items[k], "function")) {
			*where = k;
			count++;
		}
	}
	return count;
}

/* The anonymous form: the prefix is what precedes `function` on the line, or the previous line. */
static int anonymous_name(const struct tokens *t, size_t k, const char *prev, size_t prev_len,
			  char **name)
{
	int err = 0;
	if (k > 0) {
		*name = assigned_name(t->items, k, &err);
		return err;
	}
	if (!prev || prev_len > LUA_SOURCE_MAX_LINE)
		return 0;
	struct tokens pt;
	if (tokenize(prev, prev_len, &pt) < 0)
		return -ENOMEM;
	*name = assigned_name(pt.items, pt.count, &err);
	free(pt.items);
	return err;
}

int lua_source_name(const char *line, size_t len, const char *prev, size_t prev_len, char **name)
{
	*name = NULL;
	if (len > LUA_SOURCE_MAX_LINE)
		return 0;
	struct tokens t;
	if (tokenize(line, len, &t) < 0)
		return -ENOMEM;
	int err = 0;
	size_t k = 0;
	if (count_function_keywords(&t, &k) == 1 && k + 1 < t.count) {
		if (is_sym(&t.items[k + 1], "("))
			err = anonymous_name(&t, k, prev, prev_len, name);
		else
			*name = statement_name(&t, k, &err);
	}
	free(t.items);
	return err;
}
