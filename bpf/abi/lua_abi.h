/* SPDX-License-Identifier: MIT */
/*
 * lua_abi.h - what the BPF Lua walkers need to know about a Lua runtime, shared by userspace
 * (runtime/: detection, layouts) and bpf/ (the walkers). One `struct lua_interp` per file that
 * holds a Lua VM (liblua5.4.so, /usr/bin/lua5.1, ...), in the BPF array `lua_interps` indexed by file id.
 *
 * Offsets are in bytes and come from the layout tables in runtime/puc/lua_layouts.c, each verified by
 * tests against the real headers of that Lua version (the lua_layouts_5.x tests,
 * tests/cmake/lua_detect.cmake).
 */
#ifndef LUA_PERF_LUA_ABI_H
#define LUA_PERF_LUA_ABI_H

#ifdef __bpf__
#include "lib/kernel_types.h"
#else
#include <linux/types.h>
#endif

/* Lua frames pushed for one activation by the BPF walkers: a 5.3/5.4 recursion keeps every Lua
 * level in a single activation, so this bounds the Lua depth seen (with MAX_STACK_FRAMES). */
#define MAX_LUA_FRAMES_PER_ACTIVATION 200

enum lua_kind {
	LUA_KIND_NONE = 0,
	LUA_KIND_PUC51 = 1,   /* 5.1.x: CallInfo array base_ci..ci; a C CallInfo separates activations */
	LUA_KIND_PUC53 = 2,   /* 5.3.x: ci->previous chain; CIST_LUA marks Lua; CIST_FRESH activations */
	LUA_KIND_PUC54 = 3,   /* 5.4.2+: CIST_C marks C; CIST_FRESH starts an activation */
	LUA_KIND_PUC540 = 4,  /* 5.4.0-5.4.1: every Lua call has its own luaV_execute activation */
	LUA_KIND_LUAJIT = 5,  /* LuaJIT 2.1 (upstream or OpenResty luajit2), GC64 or GC32: luajit */
};

/* Byte offsets into the PUC Lua structures (lstate.h, lobject.h of the version). */
struct lua_puc_layout {
	__u16 state_l_G;         /* lua_State.l_G */
	__u16 state_ci;          /* lua_State.ci */
	__u16 state_base_ci;     /* lua_State.base_ci (5.1: the CallInfo array pointer; 5.3+: the
				  * embedded first CallInfo, whose address ends the walk) */
	__u16 state_savedpc;     /* 5.1: lua_State.savedpc (the running Lua function's pc) */
	__u16 global_mainthread; /* global_State.mainthread (validation of L) */
	__u16 ci_func;           /* CallInfo.func (a pointer to the function's stack slot) */
	__u16 ci_previous;       /* 5.3+: CallInfo.previous */
	__u16 ci_savedpc;        /* CallInfo.u.l.savedpc (5.1: CallInfo.savedpc) */
	__u16 ci_callstatus;     /* 5.3+: CallInfo.callstatus (unsigned short in 5.3 and 5.4) */
	__u16 ci_size;           /* sizeof(CallInfo) (5.1: stride of the array) */
	__u16 tvalue_tt;         /* TValue tag byte */
	__u16 lclosure_p;        /* LClosure.p */
	__u16 closure_isc;       /* 5.1: Closure.c.isC byte */
	__u16 proto_code;        /* Proto.code */
	__u16 cist_lua;          /* 5.3: the CIST_LUA bit; 5.4: the CIST_C bit (inverted meaning) */
	__u16 cist_fresh;        /* 5.3/5.4.2+: the CIST_FRESH bit; 0 when every Lua call is fresh */
	__u8 tag_lua_closure;    /* ci->func tag of a Lua closure (5.1: LUA_TFUNCTION, then !isC) */
	__u8 pad[7];
};

/* LuaJIT 2.1 on x86_64 (lj_obj.h, lj_frame.h, lj_dispatch.h, vm_x64.dasc / vm_x86.dasc of the
 * build), derived from the binary by runtime/luajit/luajit_detect.c. Offsets in bytes. In the interpreter
 * DISPATCH lives in r14 (both modes), so at any lj_vm frame the global_State is
 * g = r14 + disp2g, and each lj_vm frame owns a "cframe" at CFA - cframe_size. */
struct luajit_layout {
	__u8 gc64;               /* 1: LJ_GC64 (two 8-byte slots per frame, 8-byte GCRef/MRef);
				  * 0: GC32 (one slot: low 32 bits func, high 32 bits PC/ftsz) */
	__u8 pad0;
	__u16 cframe_size;       /* CFRAME_SIZE (80, or 96 with LJ_NO_UNWIND) */
	__s32 disp2g;            /* GG_DISP2G = offset of g - offset of dispatch in GG_State (< 0) */
	__s32 g_to_j;            /* GG_State.J - GG_State.g: the jit_State is at g + g_to_j */
	__u16 cframe_l;          /* CFRAME_OFS_L: the lua_State * this VM entry runs (GC32: 32-bit) */
	__u16 state_glref;       /* lua_State.glref */
	__u16 state_base;        /* lua_State.base */
	__u16 state_stack;       /* lua_State.stack */
	__u16 state_cframe;      /* lua_State.cframe (low 2 bits are flags: CFRAME_RAWMASK) */
	__u16 g_vmstate;         /* global_State.vmstate (int32: >= 0 trace number, < 0 ~LJ_VMST_*) */
	__u16 g_cur_L;           /* global_State.cur_L */
	__u16 g_jit_base;        /* global_State.jit_base */
	__u16 j_trace;           /* jit_State.trace (GCRef *trace: the trace array) */
	__u16 trace_startpc;     /* GCtrace.startpc (MRef: the first bytecode of the trace) */
	__u16 func_ffid;         /* GCfunc.ffid (u8: 0 Lua, 1 C, > 1 fast function) */
	__u16 func_pc;           /* GCfuncL.pc (MRef: the proto's bytecode, right after the GCproto) */
	__u16 proto_size;        /* sizeof(GCproto): proto = bytecode - proto_size */
	__u16 proto_sizebc;      /* GCproto.sizebc (u32) */
	__u16 pad1[2];
};

struct lua_interp {
	__u32 kind;              /* enum lua_kind; LUA_KIND_NONE: no Lua VM in this file */
	__u8 l_reg;              /* DWARF register holding lua_State *L inside luaV_execute */
	__u8 l_in_frame;         /* 1: L is not in a register but in luaV_execute's stack frame, at
				  * CFA + l_cfa_off (e.g. Lua 5.4 built -O1/-O3 by gcc) */
	__s16 l_cfa_off;
	__u64 exec_start;        /* luaV_execute's ELF vaddr range [exec_start, exec_end) */
	__u64 exec_end;
	/* PUC Lua: lua_resume's ELF vaddr range (0, 0 when unknown) and where it keeps the lua_State
	 * it resumes (as l_reg / l_in_frame / l_cfa_off for luaV_execute). At a lua_resume frame the
	 * walker splices the coroutine's frames that no luaV_execute runs
	 * (bpf/walk/lua_puc_walk.bpf.h). */
	__u64 resume_start;
	__u64 resume_end;
	__u8 resume_l_reg;
	__u8 resume_l_in_frame;
	__s16 resume_l_cfa_off;
	__u32 pad_resume;
	union {
		struct lua_puc_layout puc;   /* kind PUC* */
		struct luajit_layout jit;    /* kind LUAJIT: exec range = the lj_vm interpreter code */
	};
};

/* A Lua frame in a recorded stack (bpf/abi/unwind_abi.h frame encoding, kind FRAME_LUA):
 *   bits 63..60 FRAME_LUA, bits 59..44 the bytecode index of the frame's current instruction
 *   (LUA_PC_UNKNOWN when unknown or >= 0xffff), bits 43..0 the Proto address >> 3 (Protos are
 *   8-byte aligned user addresses below 2^47). Resolved to names by userspace per process. */
#define FRAME_LUA 4ull
#define LUA_PC_SHIFT 44
#define LUA_PC_UNKNOWN 0xffffull
#define LUA_PROTO_MASK ((1ull << 44) - 1)

/* LuaJIT frames that are not plain interpreted Lua functions:
 *   FRAME_LUA_JIT: the same encoding as FRAME_LUA, for a function running JIT-compiled code (its
 *     bytecode index is the trace's start); shown with the `_[j]` suffix;
 *   FRAME_LUA_FAST: a LuaJIT fast function ("builtin"): bits 7..0 its ffid, bits 43..32 the file
 *     id of the LuaJIT build whose ffid table names it. */
#define FRAME_LUA_JIT 5ull
#define FRAME_LUA_FAST 6ull
#define LUA_FAST_FILE_SHIFT 32
#define LUA_FAST_FILE_MASK 0xfffull

#endif
