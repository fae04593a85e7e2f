/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lua_puc_walk.bpf.h - the PUC Lua (5.1, 5.3, 5.4) frame walker, called by the native unwinder
 * (lib/native_unwind.bpf.h) at every native frame whose pc lies in luaV_execute, through the
 * global BPF function lua_puc_walk_frame: the verifier checks it once, on its own, so that its
 * cost adds to the native loop's instead of multiplying with it.
 *
 * The splice: each luaV_execute C frame runs one "activation" of the VM, a contiguous run of Lua
 * CallInfos of one lua_State. The unwinder meets activations innermost first, so the walker keeps
 * a cursor (the next CallInfo to look at) per lua_State and, at each luaV_execute frame:
 *   1. reads L from the register the VM keeps it in (lua_interp.l_reg), as recovered *for that
 *      frame* by the unwinder, and validates it (L->l_G->mainthread->l_G == L->l_G);
 *   2. when L is the one of the previous activation, continues at the cursor, else starts at
 *      L->ci (a new coroutine, or the first activation);
 *   3. skips C CallInfos (C functions appear as native frames, already recorded), then pushes the
 *      activation's Lua frames innermost first, and stops after the CallInfo that started it:
 *      5.3/5.4.2+ CIST_FRESH; 5.4.0-5.4.1 every Lua call (each has its own luaV_execute);
 *      5.1 the next C CallInfo, the base of the array, or a Lua caller that is not executing
 *      OP_CALL/OP_TAILCALL (then the callee was entered through luaD_call: a metamethod, a
 *      generic-for iterator; lvm.c 5.1.5 only re-enters its own loop, "goto reentry", for those
 *      two opcodes).
 * The caller then pushes the luaV_execute frame itself, so that read root-first the Lua frames
 * follow the native frame that runs them, exactly, with no heuristic.
 *
 * Pending frames (5.3, 5.4): after a yield, lua_resume finishes the coroutine's interrupted
 * frames from its own C frame: ldo.c resume() continues the top one, then unroll() takes the
 * rest one at a time, "luaV_finishOp(L); luaV_execute(L)" for a Lua frame and finishCcall() (the
 * C function's continuation k) for a C one. While it runs one of them, the callers below it are
 * on the CallInfo chain but no luaV_execute runs them yet, and a C function below them (the one
 * that called lua_callk/lua_pcallk, or yielded with lua_yieldk) has no C frame left either (the
 * yield longjmp'ed over it). So at a lua_resume frame (resume_start..resume_end), the walker
 * reads the coroutine it resumes from the register or slot lua_resume keeps it in, and pushes
 * every Lua frame of that coroutine the activations above did not take: from the cursor (or
 * L->ci when none of its activations was met) down to &L->base_ci, skipping C CallInfos. They
 * are the oldest part of the chain, pushed before the lua_resume frame itself: read root-first,
 * they come right after lua_resume and before the coroutine's first luaV_execute. Each frame is
 * taken once: activations consume the chain from the top, the splice takes what is left.
 *
 * Sources: lstate.h / ldo.c / lvm.c of Lua 5.1.5, 5.3.6 and 5.4.4 (CallInfo, luaD_call, ccall,
 * luaV_execute's "startfunc"/"returning" paths, CIST_* bits).
 */
#ifndef LUA_PERF_LUA_PUC_WALK_BPF_H
#define LUA_PERF_LUA_PUC_WALK_BPF_H

#include "lib/frame_rules.bpf.h"
#include "walk/lua_walkers.bpf.h"

struct lua_walk_ctx {
	struct unwinder_state *st;
	struct lua_interp *interp;
	__u64 base_ci;  /* 5.3/5.4: &L->base_ci, the end of the chain; 5.1: the array start */
	__u64 ci;       /* the CallInfo under examination */
	__u64 newer_ci; /* 5.3/5.4: the CallInfo whose previous it is (0: not walked here) */
	__u32 pending;  /* 1: the splice at lua_resume: every Lua frame down to base_ci, no bound */
	/* Whether a Lua frame was pushed in this activation: a flag, not a count, so that the
	 * verifier's states for the callback converge (it iterates bpf_loop callbacks to a fixed
	 * point since Linux 6.8, and a precisely tracked counter never repeats). Each more flag
	 * doubles the states it explores (two cost 24,000 instructions on Linux 6.18). */
	__u32 pushed_any;
};

/* L->l_G->mainthread->l_G == L->l_G: cheap evidence that the register really holds a lua_State
 * (the reference notes L may briefly move out of it in some tight loops). */
static __always_inline bool lua_state_valid(__u64 L, struct lua_puc_layout *lay)
{
	__u64 g, main, main_g;

	if (L == 0 || read_u64(L + lay->state_l_G, &g) || g == 0 ||
	    read_u64(g + lay->global_mainthread, &main) || main == 0 ||
	    read_u64(main + lay->state_l_G, &main_g))
		return false;
	return main_g == g;
}

/* The Proto of the Lua function in stack slot `func`, or 0 when it holds no Lua closure. The
 * slot's value and tag are read at once (the tag follows the value: tvalue_tt is 8 in 5.1-5.4),
 * and a closure seen last in this sample is not read again. A global function, checked once by
 * the verifier: inlined, the memo's branches in both walkers' loop bodies cost 8,000 more
 * instructions on Linux 6.18. */
__noinline __u64 lua_proto_of(struct unwinder_state *st, __u64 func, struct lua_interp *interp)
{
	if (!st || !interp)
		return 0;

	struct lua_puc_layout *lay = &interp->puc;
	__u16 tag_at = lay->tvalue_tt;
	__u64 closure, proto;
	__u8 is_c = 0;

	if (tag_at >= sizeof(st->tvalue) || read_user(st->tvalue, sizeof(st->tvalue), (void *)func))
		return 0;
	closure = st->tvalue[0];
	if (((__u8 *)st->tvalue)[tag_at] != lay->tag_lua_closure || closure == 0)
		return 0;
	if (closure == st->memo_closure)
		return st->memo_proto;
	/* 5.1 has one function tag: the closure's isC byte tells Lua from C (lobject.h) */
	if (interp->kind == LUA_KIND_PUC51 &&
	    (read_user(&is_c, sizeof(is_c), (void *)(closure + lay->closure_isc)) || is_c))
		return 0;
	if (read_u64(closure + lay->lclosure_p, &proto))
		return 0;
	st->memo_closure = closure;
	st->memo_proto = proto;
	return proto;
}

/* Bytecode index of the instruction being executed: savedpc points past it (lvm.c: vmfetch
 * increments pc before executing), so index = (savedpc - code) / sizeof(Instruction) - 1. The
 * code of the Proto seen last in this sample is not read again. */
static __always_inline __u64 lua_pc_index(struct unwinder_state *st, __u64 proto, __u64 savedpc,
					  struct lua_puc_layout *lay)
{
	if (savedpc == 0)
		return LUA_PC_UNKNOWN;
	if (proto != st->memo_code_proto) {
		if (read_u64(proto + lay->proto_code, &st->memo_code))
			return LUA_PC_UNKNOWN;
		st->memo_code_proto = proto;
	}
	if (savedpc <= st->memo_code)
		return LUA_PC_UNKNOWN;
	return (savedpc - st->memo_code) / 4 - 1;
}

/* CallInfo fields in one read: the largest CallInfo is 5.3's 72 bytes. */
#define CI_READ_SIZE 72

static __always_inline __u64 ci_field_u64(const __u8 *ci, __u16 off)
{
	__u64 v = 0;

	if (off <= CI_READ_SIZE - 8)
		__builtin_memcpy(&v, ci + (off & 0x7f), 8);
	return v;
}

static __always_inline __u16 ci_field_u16(const __u8 *ci, __u16 off)
{
	__u16 v = 0;

	if (off <= CI_READ_SIZE - 2)
		__builtin_memcpy(&v, ci + (off & 0x7f), 2);
	return v;
}

enum lua_step { LUA_STEP_NEXT = 0, LUA_STEP_STOP = 1 };

/* 5.3/5.4 lstate.h: "struct CallInfo *previous, *next;" - next is the field after previous, and
 * luaE_extendCI links both ways: every ci on the chain below L->ci is its previous' next. */
#define CI_NEXT_AFTER_PREVIOUS 8

/* w->ci when the chain led to what cannot be a CallInfo of this lua_State (CallInfos are
 * 8-byte aligned) */
#define CI_BROKEN 1

/* The chain of this lua_State ends here: at its base (0), or CI_BROKEN. */
static __always_inline long lua_chain_end(struct lua_walk_ctx *w, __u64 end)
{
	w->ci = end;
	return LUA_STEP_STOP;
}

static __always_inline void lua_chain_advance(struct lua_walk_ctx *w, const __u8 *ci)
{
	w->newer_ci = w->ci;
	w->ci = ci_field_u64(ci, w->interp->puc.ci_previous);
}

/* 5.3/5.4: one CallInfo of the ci->previous chain. */
static long lua_step_chain(__u64 index, void *data)
{
	struct lua_walk_ctx *w = data;
	struct lua_interp *interp = w->interp;
	struct lua_puc_layout *lay = &interp->puc;
	__u8 ci[CI_READ_SIZE];

	if (w->ci == w->base_ci)
		return lua_chain_end(w, 0);
	if (w->ci == 0 || read_user(ci, sizeof(ci), (void *)w->ci) ||
	    (w->newer_ci &&
	     ci_field_u64(ci, lay->ci_previous + CI_NEXT_AFTER_PREVIOUS) != w->newer_ci))
		return lua_chain_end(w, CI_BROKEN);
	__u16 status = ci_field_u16(ci, lay->ci_callstatus);
	/* 5.3 marks Lua calls with CIST_LUA, 5.4 marks C calls with CIST_C (lstate.h) */
	bool is_lua = interp->kind == LUA_KIND_PUC53 ? (status & lay->cist_lua) != 0
						     : (status & lay->cist_lua) == 0;
	__u64 proto = is_lua ? lua_proto_of(w->st, ci_field_u64(ci, lay->ci_func), interp) : 0;

	if (!proto) {
		if (w->pushed_any && !w->pending)
			return LUA_STEP_STOP; /* a C call below Lua frames: the next activation's */
		lua_chain_advance(w, ci);
		return LUA_STEP_NEXT;
	}
	__u64 pc_index = lua_pc_index(w->st, proto, ci_field_u64(ci, lay->ci_savedpc), lay);

	push_lua_frame(w->st, lua_frame(proto, pc_index));
	w->pushed_any = 1;
	lua_chain_advance(w, ci);
	/* the CallInfo that entered this luaV_execute ends the activation (lvm.c: "if (ci->callstatus
	 * & CIST_FRESH) return;"); in 5.4.0-5.4.1 each Lua call entered its own. Pending frames have
	 * no activation: their CIST_FRESH bits are those of activations a yield ended. */
	if (!w->pending && (lay->cist_fresh == 0 || (status & lay->cist_fresh)))
		return LUA_STEP_STOP;
	return w->st->trace.len >= MAX_STACK_FRAMES ? LUA_STEP_STOP : LUA_STEP_NEXT;
}

/* 5.1 lopcodes.h: the opcode is the low 6 bits of an instruction; OP_CALL 28, OP_TAILCALL 29. */
#define LUA51_OPCODE_MASK 0x3f
#define LUA51_OP_CALL 28
#define LUA51_OP_TAILCALL 29

/* Whether a 5.1 Lua function is calling its callee through the VM's own loop (same activation). */
static __always_inline bool lua51_calls_in_loop(__u64 savedpc)
{
	__u32 instruction;

	if (savedpc < 4 || read_user(&instruction, sizeof(instruction), (void *)(savedpc - 4)))
		return false;
	__u32 op = instruction & LUA51_OPCODE_MASK;
	return op == LUA51_OP_CALL || op == LUA51_OP_TAILCALL;
}

/* 5.1: one CallInfo of the array, walking down from L->ci to L->base_ci. The running function's
 * pc is L->savedpc (lstate.h: "savedpc of current function"), the others' ci->savedpc (luaD_precall
 * stores it when they call). */
static long lua_step_array(__u64 index, void *data)
{
	struct lua_walk_ctx *w = data;
	struct lua_puc_layout *lay = &w->interp->puc;
	__u8 ci[CI_READ_SIZE];

	if (w->ci <= w->base_ci)
		return lua_chain_end(w, 0);
	if (read_user(ci, sizeof(ci), (void *)w->ci))
		return lua_chain_end(w, CI_BROKEN);
	__u64 proto = lua_proto_of(w->st, ci_field_u64(ci, lay->ci_func), w->interp);

	if (!proto) {
		if (w->pushed_any)
			return LUA_STEP_STOP; /* C CallInfo: the activation below starts after it */
		w->ci -= lay->ci_size;
		return LUA_STEP_NEXT;
	}
	__u64 savedpc = ci_field_u64(ci, lay->ci_savedpc);
	if (w->ci == w->st->lua_top_ci)
		read_u64(w->st->lua_L + lay->state_savedpc, &savedpc);
	else if (w->pushed_any && !lua51_calls_in_loop(savedpc))
		return LUA_STEP_STOP; /* its callee started the activation: this one is below it */
	push_lua_frame(w->st, lua_frame(proto, lua_pc_index(w->st, proto, savedpc, lay)));
	w->pushed_any = 1;
	w->ci -= lay->ci_size;
	return w->st->trace.len >= MAX_STACK_FRAMES ? LUA_STEP_STOP : LUA_STEP_NEXT;
}

/* lua_State *L as luaV_execute (pending: lua_resume) holds it in the frame being unwound: in a
 * callee-saved register (recovered for this frame by the unwinder), or in a stack slot at a fixed
 * distance from the frame's CFA. Returns 0 when unknown. */
static __always_inline __u64 lua_state_of_frame(struct unwinder_state *st, struct lua_interp *interp,
						struct unwind_rule *rule, __u32 pending)
{
	__u64 cfa, L;
	__u32 l_reg = pending ? interp->resume_l_reg : interp->l_reg;
	bool in_frame = pending ? interp->resume_l_in_frame : interp->l_in_frame;
	__s64 cfa_off = pending ? interp->resume_l_cfa_off : interp->l_cfa_off;

	if (in_frame) {
		if (!rule || compute_cfa(st, rule, &cfa) != END_REASON_COUNT ||
		    read_u64(cfa + cfa_off, &L))
			return 0;
		return L;
	}
	if (l_reg >= DW_REG_COUNT || !(st->valid & REG_BIT(l_reg)))
		return 0;
	return st->regs[l_reg];
}

/* Push the Lua frames of the activation run by the luaV_execute frame being unwound (rule: that
 * frame's unwind rule), or with pending, those a lua_resume frame splices. */
static __always_inline void lua_puc_walk_activation(struct unwinder_state *st,
						    struct lua_interp *interp,
						    struct unwind_rule *rule, __u32 pending)
{
	struct lua_puc_layout *lay = &interp->puc;
	__u64 L = lua_state_of_frame(st, interp, rule, pending);

	if (L == 0) {
		count(CNT_LUA_NO_STATE);
		return;
	}
	struct lua_walk_ctx w = {.st = st, .interp = interp, .pending = pending};
	long steps = 0;

	if (L != st->lua_L) {
		if (!lua_state_valid(L, lay) || read_u64(L + lay->state_ci, &w.ci)) {
			count(CNT_LUA_NO_STATE);
			return;
		}
		st->lua_L = L;
		st->lua_top_ci = w.ci;
	} else {
		w.ci = st->lua_ci; /* 0: this lua_State has no frames left */
	}
	if (w.ci == 0) {
		if (!pending)
			count(CNT_LUA_EMPTY_ACTIVATION);
		return;
	}
	if (interp->kind == LUA_KIND_PUC51) {
		if (read_u64(L + lay->state_base_ci, &w.base_ci))
			return;
		/* lstate.h 5.1: base_ci is an array of CallInfo, ci points into it */
		if (w.ci < w.base_ci || (w.ci - w.base_ci) % lay->ci_size)
			w.ci = CI_BROKEN;
		else
			steps = bpf_loop(MAX_LUA_FRAMES_PER_ACTIVATION, lua_step_array, &w, 0);
	} else {
		w.base_ci = L + lay->state_base_ci;
		steps = bpf_loop(MAX_LUA_FRAMES_PER_ACTIVATION, lua_step_chain, &w, 0);
	}
	if (w.ci == CI_BROKEN) {
		st->lua_end = END_LUA_BROKEN;
		w.ci = 0;
	} else if (steps >= MAX_LUA_FRAMES_PER_ACTIVATION) {
		/* the bound stopped the walk inside an activation (or a chain that loops with
		 * consistent links; or it ended at the very last step, rare: reported alike): what
		 * is below is not this frame's caller */
		st->lua_end = END_DEPTH;
	}
	st->lua_ci = w.ci;
	st->lua_frames |= w.pushed_any;
	if (!w.pushed_any && !pending)
		count(CNT_LUA_EMPTY_ACTIVATION);
}

static __always_inline void lua_puc_walk_at(__u32 file_id, __u32 rule_id, __u32 pending)
{
	struct unwinder_state *st = unwinder_state();
	struct lua_interp *interp = bpf_map_lookup_elem(&lua_interps, &file_id);

	if (st && interp)
		lua_puc_walk_activation(st, interp, bpf_map_lookup_elem(&unwind_rules, &rule_id),
					pending);
}

/* The Lua frames of the luaV_execute frame being unwound in this CPU's unwinder_state; rule_id:
 * that frame's unwind rule. A global function: scalar arguments, the state is looked up again. */
__noinline int lua_puc_walk_frame(__u32 file_id, __u32 rule_id)
{
	lua_puc_walk_at(file_id, rule_id, 0);
	return 0;
}

/* The same at a lua_resume frame: the resumed coroutine's pending frames. A global function of
 * its own, with the mode a constant in each: one function taking it as an argument kept more
 * values alive across its calls and needed 96 bytes of stack instead of 72, and the frames of
 * the calls from on_sample down to a walker's callback must fit in 512 bytes together
 * (kernel/bpf/verifier.c, check_max_stack_depth: "combined stack size"). */
__noinline int lua_puc_splice_pending(__u32 file_id, __u32 rule_id)
{
	lua_puc_walk_at(file_id, rule_id, 1);
	return 0;
}

#endif
