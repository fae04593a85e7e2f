/* SPDX-License-Identifier: GPL-2.0 */
/*
 * native_unwind.bpf.h - the user stack of a thread, unwound frame by frame from the .eh_frame
 * rules userspace compiled into maps (no frame pointers): the interrupted registers, then a
 * bpf_loop over native frames (frame_rules.bpf.h). At an interpreter frame (luaV_execute, lj_vm)
 * and at JIT code, the Lua walkers (walk/lua_walkers.bpf.h) splice in the Lua frames it runs.
 *
 * The unwinder recovers rip, rsp and the callee-saved registers rbp, rbx, r12-r15 frame by frame
 * (struct unwinder_state), so that a walker can read, at the interpreter's own frame, the
 * register in which the VM keeps its state.
 *
 * Needs Linux >= 5.17 (bpf_loop) and BTF (bpf_task_pt_regs, 5.15).
 */
#ifndef LUA_PERF_NATIVE_UNWIND_BPF_H
#define LUA_PERF_NATIVE_UNWIND_BPF_H

#include "lib/frame_rules.bpf.h"
#include "walk/lua_walkers.bpf.h"

static __always_inline void request_refresh(__u32 tgid, __u64 addr)
{
	__u8 one = 1;
	struct profiler_event *event;

	if (bpf_map_update_elem(&refresh_pending, &tgid, &one, BPF_NOEXIST) != 0)
		return; /* already requested */
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event) {
		count(CNT_REFRESH_LOST);
		bpf_map_delete_elem(&refresh_pending, &tgid);
		return;
	}
	event->type = EVENT_UNKNOWN_MAPPING;
	event->tgid = tgid;
	event->addr = addr;
	bpf_ringbuf_submit(event, BPF_RB_FORCE_WAKEUP); /* why: the events map */
	count(CNT_REFRESH_REQUESTS);
}

/* At an interpreter frame (luaV_execute, lj_vm), the Lua frames it runs go first (leaf side) of
 * the native frame; at a PUC lua_resume frame that called into the coroutine (a return address:
 * not st->exact_pc, the sampled pc, where its prologue may not hold L yet), the coroutine's
 * pending frames do. st is read, not passed a flag: one more value live across the calls here
 * grew unwind_native_frame's stack frame from 72 to 96 bytes. */
static __always_inline void walk_interpreter(struct unwinder_state *st, __u32 file_id, __u64 vaddr,
					     __u32 rule_id)
{
	struct lua_interp *interp = bpf_map_lookup_elem(&lua_interps, &file_id);

	if (!interp || interp->kind == LUA_KIND_NONE)
		return;
	if (vaddr >= interp->exec_start && vaddr < interp->exec_end) {
		if (interp->kind == LUA_KIND_LUAJIT)
			luajit_walk_frame(file_id, rule_id);
		else
			lua_puc_walk_frame(file_id, rule_id);
	} else if (vaddr >= interp->resume_start && vaddr < interp->resume_end && !st->exact_pc &&
		   interp->kind != LUA_KIND_LUAJIT) {
		lua_puc_splice_pending(file_id, rule_id);
	}
}

/* pc in anonymous code or no known mapping: a LuaJIT trace is spliced and unwinding goes on
 * (returns 0), anything else ends the stack there (returns 1). */
static __always_inline int unwind_unknown_code(struct unwinder_state *st, __u64 pc, bool retaddr,
					       bool mapped)
{
	switch (luajit_splice_trace()) {
	case LUAJIT_TRACE_CONTINUE:
		return st->trace.len >= MAX_STACK_FRAMES ? (st->end_reason = END_DEPTH, 1) : 0;
	case LUAJIT_TRACE_END:
		return 1;
	default:
		break;
	}
	push_frame(st, anon_frame(pc, retaddr));
	if (!mapped)
		request_refresh(st->tgid, pc);
	st->end_reason = mapped ? END_ANON_CODE : END_NO_MAPPING;
	return 1;
}

/* One native frame of st (this CPU's unwinder_state), in the process whose mappings are pm: record
 * it, then compute its caller. Returns 1 when the stack ends there. A global function, checked
 * once by the verifier: as the body of the bpf_loop callback it would be checked again and again
 * until the callback's states converge (Linux >= 6.8 verifies a callback as a loop body), each
 * time with its bounded searches. Its pointer arguments are map values passed as memory of their
 * type's size (kernel/bpf/btf.c, btf_prepare_func_args: PTR_TO_MEM, maybe NULL), which spares
 * every frame a lookup of the process's mappings. */
__noinline int unwind_native_frame(struct unwinder_state *st, struct proc_mappings *pm)
{
	if (!st || !pm)
		return 1;

	__u64 pc = st->regs[DW_RIP];
	bool retaddr = !st->exact_pc;
	/* A return address may sit just past a noreturn call at the end of a function: look up
	 * the call instruction itself. */
	__u64 lookup_pc = retaddr ? pc - 1 : pc;
	__u32 reason = END_NO_ROW, rule_id = UNWIND_RULE_GAP;
	int index = remembered_lookup(st, pm, lookup_pc, &rule_id);
	bool remembered = index >= 0;
	struct unwind_rule *rule;

	if (!remembered)
		index = find_mapping(pm, lookup_pc);
	if (index < 0)
		return unwind_unknown_code(st, pc, retaddr, false);

	__u32 at = (__u32)index;
	opaque(at);
	if (at >= MAX_PROC_MAPPINGS)
		return 1;
	struct exec_mapping *m = &pm->maps[at];
	if (m->kind == MAPPING_ANON)
		return unwind_unknown_code(st, pc, retaddr, true);
	if (m->kind != MAPPING_FILE) {
		push_frame(st, native_frame(m->file_id, pc - m->bias, retaddr));
		st->end_reason = END_NO_TABLE;
		return 1;
	}
	if (remembered) {
		rule = bpf_map_lookup_elem(&unwind_rules, &rule_id);
	} else {
		rule = find_rule(m->file_id, lookup_pc - m->bias, &reason, &rule_id);
		if (rule)
			remember_lookup(st, lookup_pc, at, m, rule_id);
	}
	/* The kernel makes a signal handler "return" to the first instruction of the trampoline
	 * (__restore_rt): that pc is not after a call, name it as it is. */
	if (rule && rule->cfa_type == CFA_SIGNAL)
		retaddr = false;
	walk_interpreter(st, m->file_id, lookup_pc - m->bias, rule_id);
	push_frame(st, native_frame(m->file_id, pc - m->bias, retaddr));
	if (st->lua_end) {
		st->end_reason = st->lua_end; /* its callers' Lua frames cannot be trusted either */
		return 1;
	}
	if (!rule) {
		st->end_reason = reason;
		return 1;
	}
	reason = unwind_frame(st, rule);
	if (reason != END_REASON_COUNT) {
		st->end_reason = reason;
		return 1;
	}
	if (st->trace.len >= MAX_STACK_FRAMES) {
		st->end_reason = END_DEPTH;
		return 1;
	}
	return 0;
}

struct unwind_loop {
	struct unwinder_state *st;
	struct proc_mappings *pm;
};

/* Two frames per callback: half the loop's iterations and callback calls, for a few per cent of
 * on_sample's time (docs/benchmarks.md "Two frames per loop step"); the verifier still checks
 * unwind_native_frame once. */
static long unwind_step(__u64 index, void *data)
{
	struct unwind_loop *loop = data;

	if (unwind_native_frame(loop->st, loop->pm))
		return 1; /* a callback returns 0 or 1 */
	return unwind_native_frame(loop->st, loop->pm) ? 1 : 0;
}

/* bpf_task_pt_regs() gives a BTF pointer the verifier lets us load from directly. */
#define LOAD_USER_REGS(st, r)                                                                       \
	do {                                                                                       \
		(st)->regs[DW_RAX] = (r).ax;                                                       \
		(st)->regs[DW_RDX] = (r).dx;                                                       \
		(st)->regs[DW_RCX] = (r).cx;                                                       \
		(st)->regs[DW_RBX] = (r).bx;                                                       \
		(st)->regs[DW_RSI] = (r).si;                                                       \
		(st)->regs[DW_RDI] = (r).di;                                                       \
		(st)->regs[DW_RBP] = (r).bp;                                                       \
		(st)->regs[DW_RSP] = (r).sp;                                                       \
		(st)->regs[DW_R8] = (r).r8;                                                        \
		(st)->regs[DW_R9] = (r).r9;                                                        \
		(st)->regs[DW_R10] = (r).r10;                                                      \
		(st)->regs[DW_R11] = (r).r11;                                                      \
		(st)->regs[DW_R12] = (r).r12;                                                      \
		(st)->regs[DW_R13] = (r).r13;                                                      \
		(st)->regs[DW_R14] = (r).r14;                                                      \
		(st)->regs[DW_R15] = (r).r15;                                                      \
		(st)->regs[DW_RIP] = (r).ip;                                                       \
		(st)->valid = (1u << DW_REG_COUNT) - 1;                                            \
		(st)->exact_pc = 1;                                                                \
	} while (0)

/* The user frames of task, from the user registers saved at its last kernel entry; when a tick
 * interrupted user mode these are the interrupted registers themselves (arch/x86/entry: the entry
 * code saves them at the top of the task's kernel stack, task_pt_regs). */
static __always_inline void unwind_user(struct unwinder_state *st, struct task_struct *task)
{
	struct proc_mappings *pm = bpf_map_lookup_elem(&proc_mappings, &st->tgid);

	if (!task->mm) {
		st->end_reason = END_NO_USER_REGS;
	} else if (!pm) {
		st->end_reason = END_PROC_UNKNOWN;
		request_refresh(st->tgid, 0);
	} else {
		struct pt_regs *uregs = (struct pt_regs *)bpf_task_pt_regs(task);

		struct unwind_loop loop = {.st = st, .pm = pm};

		LOAD_USER_REGS(st, *uregs);
		bpf_loop((MAX_NATIVE_FRAMES + 1) / 2, unwind_step, &loop, 0);
	}
}

#endif
