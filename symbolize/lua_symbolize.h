/* SPDX-License-Identifier: MIT */
/* lua_symbolize.h - names for Lua frames: a Proto pointer (+ bytecode index) in a live process
 * becomes `<function>@<chunk>:<line>` (docs/output-format.md), reading the process's memory with
 * the version's layout. Names come from the source file when it can be read (through
 * /proc/PID/root and /proc/PID/cwd), `main` for a main chunk, `?` otherwise. Results are cached per
 * (process, proto); resolve protos while the process runs, they may be freed later. */
#ifndef LUA_PERF_LUA_SYMBOLIZE_H
#define LUA_PERF_LUA_SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "runtime/puc/lua_layouts.h"

struct lua_proto_info {
	char *function;        /* "handle", "M.foo", "Obj:method", "main", "?" */
	char *chunk;           /* chunkname without its leading '@' or '=' ("app.lua") */
	int line_defined;      /* 0 for a main chunk */
	/* current line for a bytecode index: see lua_proto_line() */
	int *lines;            /* absolute line per instruction (size code_size), or NULL */
	uint32_t code_size;
	/* PUC 5.1/5.3: the ascending bytecode indexes of its OP_TAILCALL instructions
	 * (tail_call_count of them), NULL when none (or not kept: see lua_proto_is_tail_call) */
	uint32_t *tail_calls;
	uint32_t tail_call_count;
};

struct lua_symbolizer;

struct lua_symbolizer *lua_symbolizer_new(void);
void lua_symbolizer_free(struct lua_symbolizer *ls);
/* The info of proto in process pid of a runtime with the given version layout; cached. NULL when
 * the proto cannot be read (process gone, bad pointer): callers print `L:?@?:0`. */
const struct lua_proto_info *lua_symbolizer_proto(struct lua_symbolizer *ls, pid_t pid,
						  const struct lua_puc_version *version,
						  uint64_t proto);
/* Drop the cached protos of these processes (exited, or exec'd): they are freed, and their
 * pointers no longer valid. */
void lua_symbolizer_forget(struct lua_symbolizer *ls, const pid_t *pids, size_t count);
/* The same for a LuaJIT GCproto (lj_obj.h) of the build jit describes (runtime/luajit/luajit_detect.h); line
 * index pc is the bytecode position (0: the function header, which reports line_defined). */
struct luajit_runtime;
const struct lua_proto_info *lua_symbolizer_luajit_proto(struct lua_symbolizer *ls, pid_t pid,
							 const struct luajit_runtime *jit,
							 uint64_t proto);
/* The source line of bytecode index pc in info, or line_defined when unknown. */
int lua_proto_line(const struct lua_proto_info *info, uint32_t pc);
/* Whether bytecode index pc of info is an OP_TAILCALL of a version whose Lua tail calls run the
 * callee in a CallInfo of its own before removing the caller's (5.1, 5.3); false when unknown. */
bool lua_proto_is_tail_call(const struct lua_proto_info *info, uint32_t pc);

#endif
