/* SPDX-License-Identifier: MIT */
/* frame_names.h - the text of one frame in the folded output (docs/output-format.md):
 * native `symbol`, unresolved `libname+0xVADDR`, kernel `symbol_[k]`,
 * Lua `L:<function>@<chunk>:<line>` (`..._[j]` when running JIT-compiled code), LuaJIT fast
 * functions `L:<name>@builtin`. */
#ifndef LUA_PERF_FRAME_NAMES_H
#define LUA_PERF_FRAME_NAMES_H

#include <stdint.h>

#include "bpf/abi/unwind_abi.h"
#include "lib/strbuf.h"
#include "output/frame_origins.h"
#include "profiler/mapped_files.h"
#include "symbolize/lua_symbolize.h"
#include "symbolize/symbolize.h"

/* The Lua VM a target process runs, for naming its Lua frames. */
struct lua_process {
	pid_t pid;
	const struct lua_runtime *runtime;
};

struct frame_namer {
	const struct mapped_files *files;
	struct symbol_table kernel;
	int kernel_state;                  /* 0 not loaded, 1 loaded, -1 unavailable */
	struct lua_symbolizer *lua;        /* owned */
	struct lua_process *lua_procs;     /* owned */
	size_t lua_proc_count;
	bool lua_lines;                    /* current line instead of the line defined */
	struct frame_origins *origins;     /* noted for each frame named (the pprof output);
					    * NULL: not noted */
	uint64_t lua_unnamed;              /* Lua frames named "?" for want of their Proto */
};

int frame_namer_init(struct frame_namer *namer, const struct mapped_files *files, bool lua_lines);
void frame_namer_free(struct frame_namer *namer);
/* Remember that pid runs the Lua VM `runtime` (replaces an earlier entry for pid). */
int frame_namer_add_lua_process(struct frame_namer *namer, pid_t pid,
				const struct lua_runtime *runtime);
/* Forget what was learnt about these processes (exited, or exec'd), once their samples are
 * named: memory stays bounded by the processes alive. */
void frame_namer_forget(struct frame_namer *namer, const pid_t *pids, size_t count);
/* The kernel's symbols, read elsewhere (rc: what symbol_table_load_kallsyms returned): kernel
 * becomes the namer's (or is freed if it has its own already) and is left empty. */
void frame_namer_take_kernel(struct frame_namer *namer, struct symbol_table *kernel, int rc);
/* Resolve (and cache) a Lua frame of process tgid while the process is alive; no-op for others. */
void frame_namer_prefetch(struct frame_namer *namer, pid_t tgid, uint64_t frame);
/* Is frame a Lua function caught in the middle of a tail call, its callee (the newer frame of
 * the same trace) already running in a CallInfo of its own while the caller's, about to be
 * replaced, is still below it? PUC 5.1/5.3 lvm.c OP_TAILCALL: luaD_precall pushes the callee's
 * CallInfo, then the callee's frame is moved down over the caller's. The caller is then left
 * out of the stack, as a tail call leaves it out once done: ldo.c 5.3 callhook makes the same
 * test (a Lua caller whose instruction is OP_TAILCALL) to report the call as a tail call. */
bool frame_namer_is_replaced_caller(struct frame_namer *namer, pid_t tgid, uint64_t frame,
				    uint64_t newer);
/* Append the name of a recorded frame (bpf/abi/unwind_abi.h encoding: kernel addresses with the
 * _[k] suffix, user frames of process tgid) to sb. */
void frame_name(struct frame_namer *namer, pid_t tgid, uint64_t frame, struct strbuf *sb);
/* The frames of trace root first, `;` between them (the folded format), replaced callers left out;
 * appended to sb after a `;` when sb holds text already. */
void frame_names_of_trace(struct frame_namer *namer, pid_t tgid, const struct stack_trace *trace,
			  struct strbuf *sb);
/* Is frame a kernel frame of the tracing machinery that runs a BPF program (the program itself,
 * bpf_trace_run*, __bpf_trace_*, __traceiter_*)? */
bool frame_namer_is_tracing(struct frame_namer *namer, uint64_t frame);
/* The frames of trace that hold a frame (its length, at most MAX_STACK_FRAMES), leaf first. */
uint32_t recorded_frame_count(const struct stack_trace *trace);

#endif
