/* SPDX-License-Identifier: MIT */
/* luajit_detect.h - find a LuaJIT 2.1 VM in an ELF file (a libluajit-5.1.so or an executable that
 * links the VM and exports its API) and derive, from the file's own code and data, what the BPF
 * walker needs (struct luajit_layout in bpf/abi/lua_abi.h), the range of the interpreter, and the
 * names of the build's fast functions. Never by file name; no debug symbols needed. x86_64 only.
 * runtime/luajit/luajit_detect.c says how each field is derived. */
#ifndef LUA_PERF_LUAJIT_DETECT_H
#define LUA_PERF_LUAJIT_DETECT_H

#include <stdint.h>

#include "bpf/abi/lua_abi.h"
#include "runtime/lua_runtime.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

struct luajit_runtime {
	struct lua_interp interp;  /* kind LUA_KIND_LUAJIT; exec_start/exec_end: ELF vaddr range of
				    * the interpreter (the lj_vm code covered by the FDE that holds
				    * lj_vm_pcall, lj_vm_call, lj_vm_resume, lj_vm_cpcall); interp.jit
				    * fully filled; l_reg, l_in_frame, l_cfa_off are 0 (unused) */
	char description[80];      /* e.g. "LuaJIT 2.1.0-beta3 GC64, OpenResty luajit2 API" */
	char **ffnames;            /* by ffid: "assert", "pcall", "string.format", ...; NULL where the
				    * build names none (ffid 0 Lua and 1 C, unregistered functions,
				    * method tables registered without a library name) */
	uint32_t ffname_count;
	/* userspace proto/string reading (lj_obj.h GCproto/GCstr of the mode): */
	uint16_t proto_chunkname, proto_firstline, proto_numline, proto_lineinfo;
	uint16_t str_len, str_size; /* GCstr.len (u32) and sizeof(GCstr): characters follow the header */
};

/* LUA_DETECT_NONE: not LuaJIT (no luaJIT_setmode with the lua_* API); LUA_DETECT_OK: *out is
 * filled (free it with luajit_runtime_free); LUA_DETECT_UNSUPPORTED: LuaJIT, but something could
 * not be determined with certainty, *reason (a static string) says what. On NONE and UNSUPPORTED
 * *out holds nothing to free. cfi is the file's compiled call frame table (function bounds, the
 * interpreter's FDE); img and cfi are only read. */
enum lua_detect_result luajit_detect(const struct elf_image *img, const struct cfi_table *cfi,
				     struct luajit_runtime *out, const char **reason);
/* Frees the ffnames of an OK result and zeroes *rt; harmless on a zeroed one. */
void luajit_runtime_free(struct luajit_runtime *rt);

#endif
