/* SPDX-License-Identifier: MIT */
/* pprof_frame.h - a folded frame name (docs/output-format.md, "Frames" and "Lua frames") taken
 * apart into what a pprof Function and Location hold. The names are parsed back rather than
 * carried alongside because their format is fixed and unambiguous from the ends: a suffix
 * (`_[k]`, `_[j]`, `+0x<hex>`, `:<digits>`) and the `L:` prefix; a Lua function name (a source
 * identifier path, `main`, `?`, `builtin#N`) never holds `@`. */
#ifndef LUA_PERF_PPROF_FRAME_H
#define LUA_PERF_PPROF_FRAME_H

#include <stddef.h>
#include <stdint.h>

enum pprof_frame_kind {
	PPROF_FRAME_NATIVE,         /* a symbol, or a marker such as [unknown] */
	PPROF_FRAME_NATIVE_ADDRESS, /* <file>+0x<address>: no symbol */
	PPROF_FRAME_KERNEL,         /* <symbol>_[k] */
	PPROF_FRAME_LUA,            /* L:<function>@<chunk>:<line> */
	PPROF_FRAME_LUA_JIT,        /* L:<function>@<chunk>:<line>_[j] */
	PPROF_FRAME_LUA_BUILTIN,    /* L:<name>@builtin: a LuaJIT fast function */
};

/* Spans of the frame text (not NUL-terminated). */
struct pprof_frame {
	enum pprof_frame_kind kind;
	const char *name;  /* symbol, Lua function; the whole text for NATIVE_ADDRESS */
	size_t name_len;
	const char *file;  /* NATIVE_ADDRESS: the file's name; Lua: the chunk; else empty */
	size_t file_len;
	uint64_t number;   /* NATIVE_ADDRESS: the address; LUA, LUA_JIT: the line */
};

/* Take text[0..len) apart; a text that fits no other kind is PPROF_FRAME_NATIVE, whole. */
void pprof_frame_parse(const char *text, size_t len, struct pprof_frame *f);

#endif
