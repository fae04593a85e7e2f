/* SPDX-License-Identifier: MIT */
/* lua_source_names.h - the name of a Lua function as its source spells it, from the line where
 * Lua says it was defined (Proto.linedefined: the line of the `function` keyword, or of the `(`
 * after it for an anonymous function; lparser.c body() callers, 5.1-5.4).
 *
 * Rules (lua_source_name), on Lua tokens of the line, strings and comments skipped:
 *   - the line must hold exactly one `function` keyword, and be at most LUA_SOURCE_MAX_LINE bytes;
 *   - `function Name{.Name}[:Name] (`, with or without `local` before: that name ("M.a.b",
 *     "Obj:method", "bar");
 *   - `function (` (anonymous) right after `Target [<attrib>] =`, where Target is Name followed by
 *     `.Name`, `[String]` or `[Number]` parts, or a lone `[String]`/`[Number]` (a table
 *     constructor key); before Target: nothing, `local` (then Target is one Name), `{`, `;`, `,`
 *     (only with an unclosed `{` before it on the line: a constructor field, not a multiple
 *     assignment), or `do`/`then`/`else`/`repeat`. The name is Target's tokens without whitespace
 *     ("x", "M.x", "t[\"key\"]", "['k']"). When nothing precedes `function` on its line, the whole
 *     previous line is taken as what precedes it (`M.x =` NEWLINE `function(`);
 *   - anything else (inline arguments, `return function`, multiple assignment): no name. */
#ifndef LUA_PERF_LUA_SOURCE_NAMES_H
#define LUA_PERF_LUA_SOURCE_NAMES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Lines longer than this are not examined (minified code: many functions per line anyway). */
#define LUA_SOURCE_MAX_LINE 4096

/* A text split into lines the way Lua's lexer counts them: "\n", "\r", "\r\n" and "\n\r" each
 * end one line (llex.c inclinenumber, 5.1-5.4). The text is borrowed, not copied. */
struct lua_source_lines {
	const char *text;
	size_t len;
	uint32_t *starts; /* offset of each line's first byte; line n (1-based) is starts[n - 1] */
	uint32_t count;
};

/* 0, or -ENOMEM; -EFBIG when len does not fit the 32-bit offsets. */
int lua_source_lines_init(struct lua_source_lines *lines, const char *text, size_t len);
void lua_source_lines_free(struct lua_source_lines *lines);
/* Line `line` (1-based) without its line terminator; false when there is no such line. */
bool lua_source_line(const struct lua_source_lines *lines, int line, const char **start,
		     size_t *len);

/* The function name for a definition on `line` (prev: the line before it, or NULL/0). 0 with
 * *name a malloc()ed string, or 0 with *name NULL when the rules above give no name; -ENOMEM. */
int lua_source_name(const char *line, size_t len, const char *prev, size_t prev_len, char **name);

#endif
