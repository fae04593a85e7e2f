/* SPDX-License-Identifier: MIT */
/* lua_proto_names.c - the two names of a proto: its chunk, from the source string (`@path`,
 * `=name`, or a string chunk's first line), and its function, from line line_defined of its
 * source text (symbolize/lua_source_names.h). The rules: lua_symbolize.c. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/lua_symbolize_internal.h"

#define PREVIEW_BYTES 40

/* ---- Chunk names. */

static void sanitize(char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = '?';
}

/* prefix + bytes[0..len) (sanitized) + "..." when more + suffix, malloc()ed. */
static char *compose(const char *prefix, const char *bytes, size_t len, bool more,
		     const char *suffix)
{
	size_t plen = strlen(prefix), slen = strlen(suffix);
	char *out = malloc(plen + len + (more ? 3 : 0) + slen + 1);
	if (!out)
		return NULL;
	memcpy(out, prefix, plen);
	memcpy(out + plen, bytes, len);
	sanitize(out + plen, len);
	size_t at = plen + len;
	if (more) {
		memcpy(out + at, "...", 3);
		at += 3;
	}
	memcpy(out + at, suffix, slen + 1);
	return out;
}

/* `[string "first line..."]` (the shape of lobject.c luaO_chunkid, 5.4, with our own length). */
static char *string_chunk_name(const struct source_str *src)
{
	size_t line = 0;
	while (line < src->head_len && src->head[line] != '\n' && src->head[line] != '\r')
		line++;
	size_t cut = line < PREVIEW_BYTES ? line : PREVIEW_BYTES;
	while (cut > 0 && cut < line && ((unsigned char)src->head[cut] & 0xc0) == 0x80)
		cut--; /* do not split a UTF-8 sequence */
	bool more = cut < line || (uint64_t)line < src->len;
	return compose("[string \"", src->head, cut, more, "\"]");
}

char *chunk_name(const struct source_str *src)
{
	if (!src->head || src->len == 0)
		return strdup("?");
	if (src->head[0] != '@' && src->head[0] != '=')
		return string_chunk_name(src);
	bool more = src->len > src->head_len;
	if (src->head_len == 1 && !more)
		return strdup("?");
	return compose("", src->head + 1, src->head_len - 1, more, "");
}

/* ---- Function names. */

static int name_from_lines(const struct lua_source_lines *lines, int line, char **name)
{
	const char *text, *prev = NULL;
	size_t len, prev_len = 0;
	if (!lua_source_line(lines, line, &text, &len))
		return 0;
	if (line > 1 && !lua_source_line(lines, line - 1, &prev, &prev_len))
		prev = NULL;
	return lua_source_name(text, len, prev, prev_len, name);
}

int function_name(struct lua_symbolizer *ls, int fd, pid_t pid, const struct source_str *src,
		  int linedefined, char **out)
{
	*out = NULL;
	int err = 0;
	if (linedefined == 0) {
		*out = strdup("main"); /* lparser.c mainfunc: the main chunk keeps linedefined 0 */
		return *out ? 0 : -ENOMEM;
	}
	const struct lua_source_lines *lines = source_lines_of(ls, fd, pid, src, &err);
	if (lines)
		err = name_from_lines(lines, linedefined, out);
	if (err < 0)
		return err;
	if (!*out)
		*out = strdup("?");
	return *out ? 0 : -ENOMEM;
}
