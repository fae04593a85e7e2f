/* SPDX-License-Identifier: MIT */
#include "output/pprof_frame.h"

#include <stdbool.h>
#include <string.h>

#define KERNEL_SUFFIX "_[k]"
#define JIT_SUFFIX "_[j]"
#define LUA_PREFIX "L:"
#define BUILTIN_CHUNK "builtin"

static bool ends_with(const char *text, size_t len, const char *suffix)
{
	size_t n = strlen(suffix);

	return len >= n && memcmp(text + len - n, suffix, n) == 0;
}

/* text[0..len) as a number in base (10 or 16) without overflow: true, or false. */
static bool parse_number(const char *text, size_t len, unsigned base, uint64_t *out)
{
	uint64_t v = 0;

	if (len == 0 || len > (base == 16 ? 16u : 19u)) /* 19 decimal digits always fit */
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = text[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return false;
		v = v * base + d;
	}
	*out = v;
	return true;
}

/* <file>+0x<hex>: the last "+0x" followed by hex digits to the end, after a non-empty name. */
static bool parse_address(const char *text, size_t len, struct pprof_frame *f)
{
	for (size_t i = len; i-- > 1;) {
		if (text[i] != '+')
			continue;
		if (len - i < 3 || text[i + 1] != '0' || text[i + 2] != 'x' ||
		    !parse_number(text + i + 3, len - i - 3, 16, &f->number))
			return false;
		f->kind = PPROF_FRAME_NATIVE_ADDRESS;
		f->file = text;
		f->file_len = i;
		return true;
	}
	return false;
}

/* After "L:": <function>@builtin or <function>@<chunk>:<line>. */
static bool parse_lua(const char *text, size_t len, bool jit, struct pprof_frame *f)
{
	const char *at = memchr(text, '@', len);

	if (!at)
		return false;
	f->name = text;
	f->name_len = (size_t)(at - text);
	const char *chunk = at + 1;
	size_t rest = len - f->name_len - 1;
	if (!jit && rest == strlen(BUILTIN_CHUNK) && memcmp(chunk, BUILTIN_CHUNK, rest) == 0) {
		f->kind = PPROF_FRAME_LUA_BUILTIN;
		f->file = chunk;
		f->file_len = rest;
		return true;
	}
	for (size_t i = rest; i-- > 0;) {
		if (chunk[i] != ':')
			continue;
		if (!parse_number(chunk + i + 1, rest - i - 1, 10, &f->number))
			return false;
		f->kind = jit ? PPROF_FRAME_LUA_JIT : PPROF_FRAME_LUA;
		f->file = chunk;
		f->file_len = i;
		return true;
	}
	return false;
}

void pprof_frame_parse(const char *text, size_t len, struct pprof_frame *f)
{
	size_t prefix = strlen(LUA_PREFIX);

	*f = (struct pprof_frame){.kind = PPROF_FRAME_NATIVE, .name = text, .name_len = len,
				  .file = ""};
	if (len > prefix && memcmp(text, LUA_PREFIX, prefix) == 0) {
		bool jit = ends_with(text, len, JIT_SUFFIX);
		size_t body = len - prefix - (jit ? strlen(JIT_SUFFIX) : 0);
		struct pprof_frame lua = *f;

		if (parse_lua(text + prefix, body, jit, &lua))
			*f = lua;
	} else if (ends_with(text, len, KERNEL_SUFFIX)) {
		f->kind = PPROF_FRAME_KERNEL;
		f->name_len = len - strlen(KERNEL_SUFFIX);
	} else {
		parse_address(text, len, f);
	}
}
