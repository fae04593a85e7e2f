/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lua_walkers.bpf.h - the Lua walkers as the native unwinder calls them: global BPF functions
 * (defined in lua_puc_walk.bpf.h and luajit_walk.bpf.h). The verifier checks a global function
 * once, on its own, with only its argument types known, where a static one is checked again at
 * every call with everything the caller knows: the walkers' costs then add to the native loop's
 * instead of multiplying with it (each walker runs its own bpf_loop, inside the native loop's).
 * Their arguments are scalars and the state they work on is this CPU's unwinder_state: before
 * Linux 6.8 a global function takes no other pointer than to its program's context or to memory
 * of a size known from BTF (kernel/bpf/btf.c, btf_prepare_func_args).
 */
#ifndef LUA_PERF_LUA_WALKERS_BPF_H
#define LUA_PERF_LUA_WALKERS_BPF_H

#include "lib/kernel_types.h"

enum luajit_trace_result {
	LUAJIT_NOT_IN_TRACE = 0, /* not LuaJIT trace code: the caller ends the stack as before */
	LUAJIT_TRACE_CONTINUE,   /* spliced: go on unwinding at the registers now in the state */
	LUAJIT_TRACE_END,        /* spliced, but the native stack ends here (its end_reason) */
};

/* At a native frame in luaV_execute / lj_vm (file_id's interpreter) whose unwind rule is rule_id:
 * push the Lua frames of the activation it runs. */
int lua_puc_walk_frame(__u32 file_id, __u32 rule_id);
/* At a PUC lua_resume frame: the resumed coroutine's frames that no luaV_execute runs
 * (lua_puc_walk.bpf.h, "Pending frames"). */
int lua_puc_splice_pending(__u32 file_id, __u32 rule_id);
int luajit_walk_frame(__u32 file_id, __u32 rule_id);
/* At anonymous or unmapped code: an enum luajit_trace_result. */
int luajit_splice_trace(void);

#endif
