/* SPDX-License-Identifier: MIT */
/* lua_runtime.h - find a Lua VM in an ELF file: which Lua (by the "$LuaVersion: Lua 5.x.y" ident
 * string and the exported C API, never by file name), where luaV_execute is (from .symtab when
 * present, otherwise derived from the exported API with capstone and confirmed by its shape), and
 * which callee-saved register holds lua_State *L inside it (from its entry code). */
#ifndef LUA_PERF_LUA_RUNTIME_H
#define LUA_PERF_LUA_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>

#include "bpf/abi/lua_abi.h"
#include "runtime/puc/lua_layouts.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

struct luajit_runtime;

struct lua_runtime {
	struct lua_interp interp;  /* kind, l_reg, luaV_execute range, layout: what BPF needs */
	const struct lua_puc_version *puc; /* PUC Lua: the layout table entry (runtime/puc/lua_layouts.h) */
	struct luajit_runtime *jit; /* LuaJIT (runtime/luajit/luajit_detect.h, owned by the holder), else NULL */
	char version[16];          /* "5.4.4" (from the ident string; always NUL-terminated) */
	bool exec_from_symtab;     /* luaV_execute came from .symtab rather than derived */
	const char *resume_problem; /* why lua_resume's range or L is unknown (static), else NULL */
};

enum lua_detect_result {
	LUA_DETECT_NONE = 0,        /* no Lua VM in this file */
	LUA_DETECT_OK = 1,          /* *out is filled */
	LUA_DETECT_UNSUPPORTED = 2, /* a Lua VM that cannot be handled: *reason says why */
};

/* cfi is the file's compiled call frame table (function bounds for stripped files). reason
 * receives a static string on LUA_DETECT_UNSUPPORTED. */
enum lua_detect_result lua_runtime_detect(const struct elf_image *img, const struct cfi_table *cfi,
					  struct lua_runtime *out, const char **reason);

/* The start of both runtimes' detection (PUC here, LuaJIT in luajit/), given the address of the
 * detector's reason parameter: a NULL reason (the caller asks for none) is pointed at a sink of
 * this thread's, so the detector can always write **reason; **reason cleared, out (out_size
 * bytes) zeroed; false when there is nothing to detect in (no out, or no ELF). */
bool lua_detect_start(const struct elf_image *img, void *out, size_t out_size, const char ***reason);

#endif
