/* SPDX-License-Identifier: GPL-2.0 */
/*
 * luajit_walk.bpf.h - the LuaJIT 2.1 frame walker (GC64 and GC32), called by the native unwinder
 * (lib/native_unwind.bpf.h) at every native frame whose pc lies in the lj_vm interpreter code
 * (luajit_walk_frame), and when the unwinder meets anonymous code while the VM runs a JIT trace
 * (luajit_splice_trace). Both are global BPF functions, which the verifier checks once each, on
 * their own.
 *
 * The splice. Every VM entry (lj_vm_pcall, lj_vm_call, lj_vm_cpcall, lj_vm_resume) pushes one
 * "cframe" on the C stack, and the lj_vm code has a single unwind rule CFA = rsp + CFRAME_SIZE:
 * so each native frame in lj_vm is one VM activation, its cframe is at CFA - CFRAME_SIZE and
 * holds the lua_State it runs (CFRAME_OFS_L, lj_frame.h). On the Lua stack, the function an
 * activation was entered with has a C or CP frame link (lj_vm_call/lj_vm_pcall store FRAME_C /
 * FRAME_CP, vm_x64.dasc); frames above it up to the top are the activation's. The walker keeps a
 * cursor per lua_State (like the PUC walker) and, at each lj_vm frame, pushes that activation's
 * Lua frames innermost first, stopping after the C/CP-linked one; the caller then pushes the lj_vm
 * native frame itself.
 *
 * Frames (lj_frame.h): a frame pointer f is the address of the link slot; GC64 keeps the function
 * in the slot below (f - 8, a 47-bit pointer), GC32 in the low half of the same slot (link in the
 * high half). Link type = link & 3: FRAME_LUA (the link is the caller's return PC; caller frame =
 * f - (1 + LJ_FR2 + A of the CALL before the return PC) slots), otherwise a delta (link & ~7) to the
 * previous frame and typep = link & 7: C 1, CONT 2, VARG 3, CP 5, PCALL 6, PCALLH 7.
 * Function (lj_obj.h GCfunc): gct == ~LJ_TFUNC (8) at ffid - 1; ffid 0 Lua (proto = pc -
 * sizeof(GCproto)), 1 C function (a native frame already), > 1 fast function (builtin).
 *
 * Where the top of the stack is: L->base when the VM has called out to C (it stores it before);
 * rdx (BASE) when the sample interrupted the interpreter itself (L->base is stale there); the
 * current instruction of the top Lua frame is in rbx (PC, the next instruction). In a trace
 * (g->vmstate >= 0) frames start at g->jit_base and the native stack resumes at L->cframe.
 */
#ifndef LUA_PERF_LUAJIT_WALK_BPF_H
#define LUA_PERF_LUAJIT_WALK_BPF_H

#include "lib/frame_rules.bpf.h"
#include "walk/lua_walkers.bpf.h"

/* lj_obj.h: GC64 function slots hold a tagged value, the pointer is the low 47 bits. */
#define LJ_GCVMASK ((1ull << 47) - 1)
/* lj_obj.h: gct of a function object, ~LJ_TFUNC. */
#define LJ_GCT_FUNC 8
/* lj_frame.h frame link types */
#define LJ_FRAME_TYPE 3
#define LJ_FRAME_TYPEP 7
#define LJ_FRAME_LUA 0
#define LJ_FRAME_C 1
#define LJ_FRAME_CONT 2
#define LJ_FRAME_VARG 3
#define LJ_FRAME_CP 5
/* lj_frame.h CFRAME_RAWMASK: L->cframe's low two bits are flags */
#define LJ_CFRAME_FLAGS 3ull
/* A Lua stack larger than this is not believed (LJ_STACK_MAXEX is ~65500 slots; generous). */
#define LJ_STACK_SPAN (64ull << 20)

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_TARGET_PROCS);
	__type(key, __u32);   /* tgid */
	__type(value, __u64); /* its LuaJIT global_State, as last validated at an lj_vm frame */
} luajit_globals SEC(".maps");

/* A walk's two map values, also the context of its bpf_loop. The walk's state lives in the
 * per-CPU unwinder_state (st->luajit), so that one global function (luajit_step_frame) takes a
 * step: pointers cannot be kept in a map value, and stack memory passed to a global function
 * loses the pointers spilled in it. */
struct luajit_walk_ctx {
	struct unwinder_state *st;
	struct luajit_layout *lay;
};

/* A GCRef/MRef: 8 bytes in GC64, 4 in GC32. */
static __always_inline int luajit_read_ref(struct luajit_layout *lay, __u64 addr, __u64 *out)
{
	__u32 v32;

	if (lay->gc64)
		return read_u64(addr, out);
	if (read_user(&v32, sizeof(v32), (void *)addr))
		return -1;
	*out = v32;
	return 0;
}

/* Evidence that L is a lua_State of the VM whose global_State is g: L->glref == g. */
static __always_inline bool luajit_state_of(struct luajit_layout *lay, __u64 L, __u64 g)
{
	__u64 glref;

	return L && g && !luajit_read_ref(lay, L + lay->state_glref, &glref) && glref == g;
}

/* g from DISPATCH (r14), valid when g->cur_L->glref == g. */
static __always_inline __u64 luajit_g_from_r14(struct unwinder_state *st, struct luajit_layout *lay)
{
	__u64 g, cur_L;

	if (!(st->valid & REG_BIT(DW_R14)))
		return 0;
	g = st->regs[DW_R14] + (__s64)lay->disp2g;
	if (luajit_read_ref(lay, g + lay->g_cur_L, &cur_L) || !luajit_state_of(lay, cur_L, g))
		return 0;
	return g;
}

static __always_inline void luajit_remember_global(__u32 tgid, __u64 g)
{
	__u64 *cached = bpf_map_lookup_elem(&luajit_globals, &tgid);

	if (!cached || *cached != g)
		bpf_map_update_elem(&luajit_globals, &tgid, &g, BPF_ANY);
}

/* Slots above a trace's stack pointer searched for its cframe (a trace lowers rsp below the
 * cframe by its spill area, lj_asm.c: at most a few hundred bytes in practice). */
#define LUAJIT_CFRAME_SCAN_SLOTS 256

struct luajit_scan_ctx {
	struct luajit_layout *lay;
	__u64 rsp;
	__u64 g;   /* found: the global_State */
};

/* One slot: is rsp + 8 * index a cframe, i.e. does it hold an L with g->cur_L == L? */
static long luajit_scan_step(__u64 index, void *data)
{
	struct luajit_scan_ctx *c = data;
	__u64 L, g, cur_L;

	if (luajit_read_ref(c->lay, c->rsp + 8 * index + c->lay->cframe_l, &L) || L < 4096 ||
	    luajit_read_ref(c->lay, L + c->lay->state_glref, &g) || g < 4096 ||
	    luajit_read_ref(c->lay, g + c->lay->g_cur_L, &cur_L) || cur_L != L)
		return 0;
	c->g = g;
	return 1;
}

/* g of the LuaJIT in file_id, for this CPU's unwinder_state: from DISPATCH (r14) when it holds
 * it, else the per-process cache, else (GC32 traces use r14 for their own values, and a process
 * may run compiled code only) from the cframe found on the stack above rsp; 0 when none. A global
 * function: its scan's stack frame is not on the walkers' call chains (512 bytes for all). */
__noinline __u64 luajit_global(__u32 file_id)
{
	struct unwinder_state *st = unwinder_state();
	struct lua_interp *interp = bpf_map_lookup_elem(&lua_interps, &file_id);

	if (!st || !interp)
		return 0;
	struct luajit_layout *lay = &interp->jit;
	__u64 g = luajit_g_from_r14(st, lay);
	__u32 tgid = st->tgid;

	if (g) {
		luajit_remember_global(tgid, g);
		return g;
	}
	__u64 *cached = bpf_map_lookup_elem(&luajit_globals, &tgid);
	if (cached)
		return *cached;
	struct luajit_scan_ctx scan = {.lay = lay, .rsp = st->regs[DW_RSP]};
	if (!(st->valid & REG_BIT(DW_RSP)))
		return 0;
	bpf_loop(LUAJIT_CFRAME_SCAN_SLOTS, luajit_scan_step, &scan, 0);
	if (scan.g)
		luajit_remember_global(tgid, scan.g);
	return scan.g;
}

/* Bytecode index of the instruction before `pc` (a return PC or the interpreter's next PC):
 * LUA_PC_UNKNOWN unless it lies in the proto's bytecode (lj_obj.h: it follows the GCproto). */
static __always_inline __u64 luajit_pc_index(struct luajit_layout *lay, __u64 proto, __u64 pc)
{
	__u64 bc = proto + lay->proto_size;
	__u32 sizebc;

	if (pc <= bc || read_user(&sizebc, sizeof(sizebc), (void *)(proto + lay->proto_sizebc)))
		return LUA_PC_UNKNOWN;
	__u64 index = (pc - bc) / 4 - 1;
	return index < sizebc ? index : LUA_PC_UNKNOWN;
}

/* The function and the link of the frame whose link slot is at `frame`. */
static __always_inline int luajit_read_frame(struct luajit_layout *lay, __u64 frame, __u64 *func,
					     __s64 *link)
{
	__u64 slots[2];

	if (lay->gc64) {
		if (read_user(slots, sizeof(slots), (void *)(frame - 8)))
			return -1;
		*func = slots[0] & LJ_GCVMASK;
		*link = (__s64)slots[1];
		return 0;
	}
	if (read_u64(frame, &slots[0]))
		return -1;
	*func = slots[0] & 0xffffffffull;
	*link = (__s32)(slots[0] >> 32);
	return 0;
}

/* The distance to the previous frame of a non-Lua link; 0 when it is not believable. */
static __always_inline __u64 luajit_link_delta(__s64 link)
{
	__u64 delta = (__u64)link & ~(__u64)LJ_FRAME_TYPEP;

	return delta <= LJ_STACK_SPAN ? delta : 0;
}

/* Push the frame of function `func` (header already checked). */
static __always_inline void luajit_push_function(struct luajit_walk_ctx *w, __u64 func, __u8 ffid)
{
	struct luajit_layout *lay = w->lay;
	struct luajit_walk_state *s = &w->st->luajit;
	__u64 bc, proto, index;

	if (ffid == 1)
		return; /* a C function: its native frame is in the stack already */
	if (ffid > 1) {
		__u64 file = (__u64)s->file_id & LUA_FAST_FILE_MASK;

		push_frame(w->st, (FRAME_LUA_FAST << FRAME_KIND_SHIFT) |
					  (file << LUA_FAST_FILE_SHIFT) | ffid);
		s->pushed_any = 1;
		return;
	}
	if (luajit_read_ref(lay, func + lay->func_pc, &bc) || bc <= lay->proto_size)
		return;
	proto = bc - lay->proto_size;
	if (s->jit_top) {
		/* the trace's start pc names the line when the trace began in this function */
		index = s->trace_pc ? luajit_pc_index(lay, proto, s->trace_pc + 4) : LUA_PC_UNKNOWN;
		push_lua_frame(w->st, lua_frame_of_kind(FRAME_LUA_JIT, proto, index));
		s->jit_top = 0;
	} else {
		index = s->pending_pc ? luajit_pc_index(lay, proto, s->pending_pc) : LUA_PC_UNKNOWN;
		push_lua_frame(w->st, lua_frame(proto, index));
	}
	s->pushed_any = 1;
}

enum { LUAJIT_STEP_NEXT = 0, LUAJIT_STEP_STOP = 1 };

/* The caller of a frame whose link is a return PC: f - (1 + LJ_FR2 + A) slots, A of the CALL
 * instruction before the return PC (lj_frame.h frame_prevl; lj_bc.h: A is bits 8..15). */
static __always_inline int luajit_prev_lua(struct luajit_walk_ctx *w, __u64 retpc)
{
	__u32 ins;

	if (read_user(&ins, sizeof(ins), (void *)(retpc - 4)))
		return -1;
	struct luajit_walk_state *s = &w->st->luajit;

	s->frame -= 8 * (1 + w->lay->gc64 + ((ins >> 8) & 0xff));
	s->pending_pc = retpc;
	return 0;
}

/* A continuation frame keeps its caller's PC in the slot below the function (lj_frame.h
 * frame_contpc: GC64 two slots down, GC32 the high half of the slot below). */
static __always_inline __u64 luajit_cont_pc(struct luajit_walk_ctx *w)
{
	__u64 v;

	if (w->lay->gc64)
		return read_u64(w->st->luajit.frame - 16, &v) ? 0 : v;
	return read_u64(w->st->luajit.frame - 8, &v) ? 0 : v >> 32;
}

/* L's stack ends here: at its bottom, or at what cannot be a frame (then the walk stops above
 * the bottom: broken). */
static __always_inline long luajit_stop(struct luajit_walk_ctx *w)
{
	w->st->luajit.done = 1;
	return LUAJIT_STEP_STOP;
}

/* One frame of the walk in st->luajit. A global function, checked once: as the bpf_loop
 * callback's body it would be checked again and again until the callback's states converge
 * (Linux >= 6.8), which cost 50,000 of on_sample's 90,000 instructions on 6.18. */
__noinline int luajit_step_frame(struct unwinder_state *st, struct luajit_layout *lay)
{
	if (!st || !lay)
		return LUAJIT_STEP_STOP;

	struct luajit_walk_ctx ctx = {.st = st, .lay = lay};
	struct luajit_walk_ctx *w = &ctx;
	struct luajit_walk_state *s = &st->luajit;
	__u64 func;
	__s64 link;
	__u8 head[2]; /* gct, ffid */

	if (s->frame <= s->bot || luajit_read_frame(lay, s->frame, &func, &link))
		return luajit_stop(w);
	__u32 typep = link & LJ_FRAME_TYPEP;

	/* Dummy frames whose "function" is L itself (lj_err_optype_call) are skipped; so is the
	 * pseudo-frame a vararg function runs in, above its fixed arguments: the frame below holds
	 * the same function (lj_debug_frame skips both the same way). */
	if (func != s->L && typep != LJ_FRAME_VARG) {
		if (read_user(head, sizeof(head), (void *)(func + lay->func_ffid - 1)) ||
		    head[0] != LJ_GCT_FUNC)
			return luajit_stop(w);
		luajit_push_function(w, func, head[1]);
	}
	if ((link & LJ_FRAME_TYPE) == LJ_FRAME_LUA) {
		if (luajit_prev_lua(w, (__u64)link))
			return luajit_stop(w);
	} else {
		__u64 delta = luajit_link_delta(link);

		if (delta == 0)
			return luajit_stop(w);
		if (typep != LJ_FRAME_VARG)
			s->pending_pc = typep == LJ_FRAME_CONT ? luajit_cont_pc(w) : 0;
		s->frame -= delta;
		/* entered from C (lua_call/lua_pcall/lua_resume...): the activation ends here */
		if (typep == LJ_FRAME_C || typep == LJ_FRAME_CP)
			return LUAJIT_STEP_STOP;
	}
	return w->st->trace.len >= MAX_STACK_FRAMES ? LUAJIT_STEP_STOP : LUAJIT_STEP_NEXT;
}

static long luajit_step(__u64 index, void *data)
{
	struct luajit_walk_ctx *loop = data;

	return luajit_step_frame(loop->st, loop->lay) ? 1 : 0; /* a callback returns 0 or 1 */
}

/* Walk one activation of L in this CPU's unwinder_state: from the cursor when L is the lua_State
 * of the previous activation, else from `top` (the base of its top frame). pc: in the
 * interpreter (in_trace 0), its PC register for L's top frame; in a trace (in_trace 1), the
 * trace's first instruction; 0 when unknown. A global function: the interpreter's and the
 * trace's walks share its one verification. */
__noinline int luajit_walk_lua_stack(__u32 file_id, __u64 L, __u64 top, __u64 pc, __u32 in_trace)
{
	struct unwinder_state *st = unwinder_state();
	struct lua_interp *interp = bpf_map_lookup_elem(&lua_interps, &file_id);
	__u64 stack;

	if (!st || !interp)
		return 0;
	struct luajit_layout *lay = &interp->jit;
	struct luajit_walk_state *s = &st->luajit;
	struct luajit_walk_ctx loop = {.st = st, .lay = lay};

	if (luajit_read_ref(lay, L + lay->state_stack, &stack)) {
		count(CNT_LUA_NO_STATE);
		return 0;
	}
	*s = (struct luajit_walk_state){.L = L, .file_id = file_id, .bot = stack + 8 * lay->gc64};
	if (L == st->lua_L) {
		s->frame = st->lua_ci;
	} else {
		s->frame = top - 8;
		s->jit_top = in_trace != 0;
		if (in_trace)
			s->trace_pc = pc;
		else
			s->pending_pc = pc;
	}
	if (s->frame <= s->bot || s->frame - stack > LJ_STACK_SPAN) {
		st->lua_L = L;
		st->lua_ci = 0;
		count(CNT_LUA_EMPTY_ACTIVATION);
		return 0;
	}
	long steps = bpf_loop(MAX_LUA_FRAMES_PER_ACTIVATION, luajit_step, &loop, 0);
	/* done above the bottom: a frame that cannot be one. All steps taken: the bound stopped the
	 * walk inside the activation (or it ended at the very last step, rare: reported alike), and
	 * what is below is not its caller. */
	if (s->done && s->frame > s->bot)
		st->lua_end = END_LUA_BROKEN;
	else if (steps >= MAX_LUA_FRAMES_PER_ACTIVATION)
		st->lua_end = END_DEPTH;
	st->lua_L = L;
	st->lua_ci = s->done ? 0 : s->frame;
	st->lua_frames |= s->pushed_any;
	if (!s->pushed_any)
		count(CNT_LUA_EMPTY_ACTIVATION);
	return 0;
}

/* lj_obj.h: vmstate holds ~LJ_VMST_C (-2) while C code runs; the interpreter's entry and exit
 * paths (vm_x64.dasc vm_call & co. before dispatching, vm_return "Return to C") run with it. */
#define LJ_VMSTATE_C (-2)

static __always_inline bool luajit_in_glue(struct luajit_layout *lay, __u64 g)
{
	__s32 vmstate;

	return !read_user(&vmstate, sizeof(vmstate), (void *)(g + lay->g_vmstate)) &&
	       vmstate == LJ_VMSTATE_C;
}

/* rdx when it holds a plausible BASE of L's stack (8-byte aligned, inside it), else 0. */
static __always_inline __u64 luajit_rdx_base(struct unwinder_state *st, struct luajit_layout *lay,
					     __u64 L)
{
	__u64 stack = 0, rdx = st->regs[DW_RDX];

	if (!(st->valid & REG_BIT(DW_RDX)) || luajit_read_ref(lay, L + lay->state_stack, &stack) ||
	    (rdx & 7) != 0 || rdx <= stack || rdx - stack >= LJ_STACK_SPAN)
		return 0;
	return rdx;
}

/* The interpreter interrupted in the glue of a VM entry (lj_vm_call & co. before the callee
 * runs: rdx holds an argument, or the old base) or exit (vm_return "Return to C": vmstate is C
 * again, BASE still the returning callee's): this activation runs no Lua code of its own now.
 * The outer activation starts at the C function that called in (L->base at entry), below the
 * C/CP-linked callee being left. */
static __always_inline void luajit_skip_glue(struct unwinder_state *st, struct luajit_layout *lay,
					     __u64 L, __u64 top)
{
	__s64 link = 0;
	__u64 frame, func;

	if (!top)
		luajit_read_ref(lay, L + lay->state_base, &top);
	frame = top ? top - 8 : 0;
	if (frame && !luajit_read_frame(lay, frame, &func, &link)) {
		__u32 typep = link & LJ_FRAME_TYPEP;
		if (typep == LJ_FRAME_C || typep == LJ_FRAME_CP)
			frame -= luajit_link_delta(link);
	}
	st->lua_L = L;
	st->lua_ci = frame;
	count(CNT_LUA_EMPTY_ACTIVATION);
}

/* The lua_State saved in the cframe at cframe, if valid for g; else 0. */
static __always_inline __u64 luajit_cframe_state(struct luajit_layout *lay, __u64 cframe, __u64 g)
{
	__u64 L;

	if (luajit_read_ref(lay, cframe + lay->cframe_l, &L) || !luajit_state_of(lay, L, g))
		return 0;
	return L;
}

/* At an lj_vm frame (rule: its unwind rule). */
static __always_inline void luajit_walk_activation(struct unwinder_state *st,
						   struct lua_interp *interp, __u32 file_id,
						   struct unwind_rule *rule)
{
	struct luajit_layout *lay = &interp->jit;
	__u64 g = luajit_global(file_id), cfa, L = 0;

	if (!g || !rule || compute_cfa(st, rule, &cfa) != END_REASON_COUNT) {
		count(CNT_LUA_NO_STATE);
		return;
	}
	L = luajit_cframe_state(lay, cfa - lay->cframe_size, g);
	/* The interpreter calls a few leaf subroutines of its own with `call` (vm_mod, vm_floor,
	 * ... in vm_x64.dasc), covered by the same rule CFA = rsp + CFRAME_SIZE, 8 bytes short
	 * there: a sample in one finds the cframe 8 bytes up. Unwind as if it had returned. */
	if (!L && st->exact_pc && rule->cfa_type == CFA_REG_OFF && rule->cfa_reg == DW_RSP) {
		L = luajit_cframe_state(lay, cfa + 8 - lay->cframe_size, g);
		if (L)
			st->regs[DW_RSP] += 8;
	}
	if (!L) {
		count(CNT_LUA_NO_STATE);
		return;
	}
	/* rbx is PC (the next instruction) in the interpreter, callee-saved across its calls */
	__u64 pc = (st->valid & REG_BIT(DW_RBX)) ? st->regs[DW_RBX] : 0, top = 0;

	if (!lay->gc64)
		pc &= 0xffffffffull;
	if (L != st->lua_L) {
		/* The top of L: BASE (rdx) when the sample interrupted the interpreter (L->base is
		 * stale there, vm_x64.dasc stores it only when calling out); L->base when the VM
		 * called out. */
		if (st->exact_pc) {
			top = luajit_rdx_base(st, lay, L);
			if (luajit_in_glue(lay, g) || !top) {
				luajit_skip_glue(st, lay, L, top);
				return;
			}
		} else if (luajit_read_ref(lay, L + lay->state_base, &top)) {
			count(CNT_LUA_NO_STATE);
			return;
		}
	}
	luajit_walk_lua_stack(file_id, L, top, pc, 0);
}

/* The first instruction of the running trace (lj_jit.h: J->trace[traceno]->startpc); 0 unknown. */
static __always_inline __u64 luajit_trace_start(struct luajit_layout *lay, __u64 g, __s32 traceno)
{
	__u64 traces, trace, startpc;

	if (traceno <= 0 || read_u64(g + lay->g_to_j + lay->j_trace, &traces) ||
	    luajit_read_ref(lay, traces + (__u64)traceno * (lay->gc64 ? 8 : 4), &trace) || !trace ||
	    luajit_read_ref(lay, trace + lay->trace_startpc, &startpc))
		return 0;
	return startpc;
}

/* pc is in anonymous code (or unmapped): if the process's LuaJIT is running a trace, push the
 * Lua frames from g->jit_base (the top one marked JIT), an lj_vm frame for the activation the
 * trace runs in, and resume native unwinding at the caller of that activation's cframe
 * (L->cframe), with the lj_vm unwind rule. A trace runs while g->jit_base is set (trace entry
 * sets it, vm_exit_interp clears it: vm_x64.dasc); g->vmstate is then its number, except in the
 * first instructions of a trace, during a garbage collection step it calls (LJ_VMST_GC) and
 * while an exit is handled, when there is no start line to give. */
static __always_inline enum luajit_trace_result luajit_walk_trace(struct unwinder_state *st,
								  struct proc_mappings *pm)
{
	__u32 file_id = pm->luajit_file - 1;
	struct lua_interp *interp;
	__u64 g, L, base, cframe;
	__s32 vmstate;
	__u32 reason;

	if (pm->luajit_file == 0)
		return LUAJIT_NOT_IN_TRACE;
	interp = bpf_map_lookup_elem(&lua_interps, &file_id);
	if (!interp || interp->kind != LUA_KIND_LUAJIT)
		return LUAJIT_NOT_IN_TRACE;
	struct luajit_layout *lay = &interp->jit;

	g = luajit_global(file_id);
	if (!g || read_user(&vmstate, sizeof(vmstate), (void *)(g + lay->g_vmstate)) ||
	    luajit_read_ref(lay, g + lay->g_jit_base, &base) || base == 0 ||
	    luajit_read_ref(lay, g + lay->g_cur_L, &L) || !luajit_state_of(lay, L, g) ||
	    read_u64(L + lay->state_cframe, &cframe) || (cframe & ~LJ_CFRAME_FLAGS) == 0)
		return LUAJIT_NOT_IN_TRACE;
	cframe &= ~LJ_CFRAME_FLAGS;

	__u32 rule_id;
	struct unwind_rule *rule = find_rule(file_id, interp->exec_start, &reason, &rule_id);
	if (!rule)
		return LUAJIT_NOT_IN_TRACE;
	luajit_walk_lua_stack(file_id, L, base, luajit_trace_start(lay, g, vmstate), 1);
	push_frame(st, native_frame(file_id, interp->exec_start, false));
	if (st->lua_end) {
		st->end_reason = st->lua_end;
		return LUAJIT_TRACE_END;
	}
	st->regs[DW_RSP] = cframe;
	st->valid |= REG_BIT(DW_RSP);
	reason = unwind_frame(st, rule);
	if (reason != END_REASON_COUNT) {
		st->end_reason = reason;
		return LUAJIT_TRACE_END;
	}
	return LUAJIT_TRACE_CONTINUE;
}

/* The Lua frames of the lj_vm frame being unwound in this CPU's unwinder_state; rule_id: that
 * frame's unwind rule. A global function: scalar arguments, the state is looked up again. */
__noinline int luajit_walk_frame(__u32 file_id, __u32 rule_id)
{
	struct unwinder_state *st = unwinder_state();
	struct lua_interp *interp = bpf_map_lookup_elem(&lua_interps, &file_id);

	if (!st || !interp || interp->kind != LUA_KIND_LUAJIT)
		return 0;
	luajit_walk_activation(st, interp, file_id, bpf_map_lookup_elem(&unwind_rules, &rule_id));
	return 0;
}

/* The unwinder met anonymous (or unmapped) code: splice the JIT trace running there, if any. */
__noinline int luajit_splice_trace(void)
{
	struct unwinder_state *st = unwinder_state();
	struct proc_mappings *pm;
	__u32 tgid;

	if (!st)
		return LUAJIT_NOT_IN_TRACE;
	tgid = st->tgid;
	pm = bpf_map_lookup_elem(&proc_mappings, &tgid);
	if (!pm)
		return LUAJIT_NOT_IN_TRACE;
	return luajit_walk_trace(st, pm);
}

#endif
