/* SPDX-License-Identifier: GPL-2.0 */
/*
 * frame_rules.bpf.h - one native frame at a time: the executable mapping of a pc, the unwind rule
 * in effect there (bpf/abi/unwind_abi.h: pc -> process mapping (binary search) -> file table -> page
 * index -> binary search among the rows of one page -> rule), and the caller's registers that
 * rule gives. Every loop is bounded. Used by the native loop and by the LuaJIT walker, which
 * resumes native unwinding at a VM entry frame. The native loop first asks a per-CPU cache of
 * the lookups of earlier frames (remembered_lookup), which checks each answer against the
 * process's current mappings before trusting it.
 */
#ifndef LUA_PERF_FRAME_RULES_BPF_H
#define LUA_PERF_FRAME_RULES_BPF_H

#include "lib/stack_window.bpf.h"
#include "lib/unwinder_state.bpf.h"
#include "lib/user_memory.bpf.h"

#define CALLEE_SAVED_MASK                                                                           \
	(REG_BIT(DW_RBX) | REG_BIT(DW_RBP) | REG_BIT(DW_RSP) | REG_BIT(DW_R12) | REG_BIT(DW_R13) |   \
	 REG_BIT(DW_R14) | REG_BIT(DW_R15) | REG_BIT(DW_RIP))

/* DWARF number of each saved_reg slot of struct unwind_rule. */
static const __u8 saved_reg_dwarf[SREG_COUNT - 1] = {
	[SREG_RBP] = DW_RBP, [SREG_RBX] = DW_RBX, [SREG_R12] = DW_R12,
	[SREG_R13] = DW_R13, [SREG_R14] = DW_R14, [SREG_R15] = DW_R15,
};

/* The index in pm->maps of the executable mapping holding pc (the last mapping with
 * start <= pc, if pc < its end), or -1. */
static __always_inline int find_mapping(struct proc_mappings *pm, __u64 pc)
{
	__u32 lo = 0, hi = pm->count;

	if (hi > MAX_PROC_MAPPINGS)
		return -1;
	/* invariant: answer in [lo, hi), i.e. maps[lo - 1].start <= pc < maps[hi].start */
	for (int i = 0; i < MAPPING_SEARCH_STEPS && lo < hi; i++) {
		__u32 mid = (lo + hi) / 2;

		opaque(mid);
		if (mid >= MAX_PROC_MAPPINGS)
			return -1;
		if (pm->maps[mid].start <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	lo -= 1;
	opaque(lo);
	if (lo >= MAX_PROC_MAPPINGS || pc >= pm->maps[lo].end)
		return -1;
	return (int)lo;
}

/* The lookup cache (struct lookup_memo): the slot of a pc. */
static __always_inline __u32 lookup_slot(__u64 pc)
{
	return (__u32)((pc * 0x9e3779b97f4a7c15ull) >> (64 - LOOKUP_MEMO_BITS));
}

/* The file mapping of pc and the id of the rule in effect there, as an earlier frame on this CPU
 * found them, or -1. A slot is trusted only if pm's mapping at the remembered index still holds
 * pc, is the same file at the same bias, and lies within pm->count: then the rule cannot have
 * changed, because a file's table is never rewritten once published and file ids are not reused
 * within a run (unwind/unwind_table_store.c). So any process, and any refresh of its mappings,
 * can share the slots. */
static __always_inline int remembered_lookup(struct unwinder_state *st, struct proc_mappings *pm,
					     __u64 pc, __u32 *rule_id)
{
	struct lookup_memo *memo = &st->lookups[lookup_slot(pc)];
	__u32 index = memo->map_index;

	if (memo->pc != pc || index >= pm->count)
		return -1;
	opaque(index);
	if (index >= MAX_PROC_MAPPINGS)
		return -1;
	struct exec_mapping *m = &pm->maps[index];
	if (pc < m->start || pc >= m->end || m->kind != MAPPING_FILE ||
	    m->file_id != memo->file_id || m->bias != memo->bias)
		return -1;
	*rule_id = memo->rule_id;
	return (int)index;
}

static __always_inline void remember_lookup(struct unwinder_state *st, __u64 pc, __u32 index,
					    struct exec_mapping *m, __u32 rule_id)
{
	struct lookup_memo *memo = &st->lookups[lookup_slot(pc)];

	memo->pc = pc;
	memo->bias = m->bias;
	memo->file_id = m->file_id;
	memo->map_index = index;
	memo->rule_id = rule_id;
}

/* The id of the rule in effect at vaddr in a file (a key of unwind_rules), or UNWIND_RULE_GAP
 * with *reason set. */
static __always_inline __u32 search_rule_id(__u32 file_id, __u64 vaddr, __u32 *reason)
{
	struct unwind_file *file = bpf_map_lookup_elem(&unwind_files, &file_id);

	*reason = END_NO_TABLE;
	if (!file || !(file->flags & FILE_LOADED))
		return UNWIND_RULE_GAP;
	*reason = END_NO_ROW;
	if (vaddr < file->text_start || vaddr >= file->text_end)
		return UNWIND_RULE_GAP;

	__u64 off = vaddr - file->text_start;
	__u64 page = off >> UNWIND_PAGE_SHIFT;
	if (page >= file->page_count)
		return UNWIND_RULE_GAP;
	__u32 page_key = file->page_start + (__u32)page;
	struct unwind_page *range = bpf_map_lookup_elem(&unwind_pages, &page_key);
	if (!range)
		return UNWIND_RULE_GAP;

	/* last row of [first, last] with pc_off <= off; rows[first].pc_off <= off by construction */
	__u32 lo = range->first, hi = range->last;
	for (int i = 0; i < UNWIND_SEARCH_STEPS && lo < hi; i++) {
		__u32 mid = lo + (hi - lo + 1) / 2;
		__u32 key = file->row_start + mid;
		struct unwind_row *row = bpf_map_lookup_elem(&unwind_rows, &key);

		if (!row)
			return UNWIND_RULE_GAP;
		if (row->pc_off <= off)
			lo = mid;
		else
			hi = mid - 1;
	}
	if (lo != hi || lo >= file->row_count)
		return UNWIND_RULE_GAP;
	__u32 key = file->row_start + lo;
	struct unwind_row *row = bpf_map_lookup_elem(&unwind_rows, &key);
	return row ? row->rule_id : UNWIND_RULE_GAP;
}

/* The same as a global function, which the verifier checks once for both callers (the native
 * loop, the LuaJIT trace splice) and without their state, instead of within each: the rule id
 * (> 0, MAX_RULES fits), or minus the enum unwind_end reason there is none. */
__noinline int find_rule_id(__u32 file_id, __u64 vaddr)
{
	__u32 reason;
	__u32 rule_id = search_rule_id(file_id, vaddr, &reason);

	if (rule_id == UNWIND_RULE_GAP || rule_id >= MAX_RULES)
		return -(int)reason;
	return (int)rule_id;
}

/* The rule itself and its id, or NULL with *reason set (and *rule_id UNWIND_RULE_GAP). */
static __always_inline struct unwind_rule *find_rule(__u32 file_id, __u64 vaddr, __u32 *reason,
						     __u32 *rule_id)
{
	int found = find_rule_id(file_id, vaddr);

	*rule_id = found > 0 ? (__u32)found : UNWIND_RULE_GAP;
	*reason = found > 0 ? END_REASON_COUNT : (__u32)-found;
	return found > 0 ? bpf_map_lookup_elem(&unwind_rules, rule_id) : NULL;
}

static __always_inline int reg_value(struct unwinder_state *st, __u32 reg, __u64 *value)
{
	if (reg >= DW_REG_COUNT || !(st->valid & REG_BIT(reg)))
		return -1;
	*value = st->regs[reg];
	return 0;
}

/* Signal trampoline (__restore_rt): rsp points at the kernel's struct ucontext, whose
 * uc_mcontext (struct sigcontext_64, arch/x86/include/uapi/asm/sigcontext.h) starts 40 bytes in:
 * r8 r9 r10 r11 r12 r13 r14 r15 di si bp bx dx ax cx sp ip. */
#define UCONTEXT_MCONTEXT_OFFSET 40
enum { SC_R8, SC_R9, SC_R10, SC_R11, SC_R12, SC_R13, SC_R14, SC_R15, SC_RDI, SC_RSI, SC_RBP,
       SC_RBX, SC_RDX, SC_RAX, SC_RCX, SC_RSP, SC_RIP, SC_COUNT };

static __always_inline __u32 unwind_signal_frame(struct unwinder_state *st)
{
	__u64 *sc = st->sigcontext;
	__u64 addr = st->regs[DW_RSP] + UCONTEXT_MCONTEXT_OFFSET;

	_Static_assert(SC_COUNT == SIGCONTEXT_REGS, "struct sigcontext_64 registers");
	if (read_user(sc, sizeof(st->sigcontext), (void *)addr))
		return END_READ_FAILED;
	st->regs[DW_R8] = sc[SC_R8];
	st->regs[DW_R9] = sc[SC_R9];
	st->regs[DW_R10] = sc[SC_R10];
	st->regs[DW_R11] = sc[SC_R11];
	st->regs[DW_R12] = sc[SC_R12];
	st->regs[DW_R13] = sc[SC_R13];
	st->regs[DW_R14] = sc[SC_R14];
	st->regs[DW_R15] = sc[SC_R15];
	st->regs[DW_RDI] = sc[SC_RDI];
	st->regs[DW_RSI] = sc[SC_RSI];
	st->regs[DW_RBP] = sc[SC_RBP];
	st->regs[DW_RBX] = sc[SC_RBX];
	st->regs[DW_RDX] = sc[SC_RDX];
	st->regs[DW_RAX] = sc[SC_RAX];
	st->regs[DW_RCX] = sc[SC_RCX];
	st->regs[DW_RSP] = sc[SC_RSP];
	st->regs[DW_RIP] = sc[SC_RIP];
	st->valid = (1u << DW_REG_COUNT) - 1;
	st->exact_pc = 1; /* the interrupted instruction itself, not a return address */
	return st->regs[DW_RIP] ? END_REASON_COUNT : END_BAD_FRAME;
}

static __always_inline __u32 compute_cfa(struct unwinder_state *st, struct unwind_rule *rule,
					 __u64 *cfa)
{
	__u64 base;

	switch (rule->cfa_type) {
	case CFA_REG_OFF:
		if (reg_value(st, rule->cfa_reg, &base))
			return END_REG_UNKNOWN;
		*cfa = base + (__s64)rule->cfa_off;
		return END_REASON_COUNT;
	case CFA_DEREF_REG_OFF:
		if (reg_value(st, rule->cfa_reg, &base))
			return END_REG_UNKNOWN;
		if (read_user(cfa, sizeof(*cfa), (void *)(base + (__s64)rule->cfa_off)))
			return END_READ_FAILED;
		return END_REASON_COUNT;
	case CFA_PLT:
		if (reg_value(st, DW_RSP, &base))
			return END_REG_UNKNOWN;
		*cfa = base + (__s64)rule->cfa_off + ((st->regs[DW_RIP] & 15) >= rule->cfa_reg ? 8 : 0);
		return END_REASON_COUNT;
	case CFA_GAP:
		return END_NO_ROW;
	default:
		return END_UNSUPPORTED;
	}
}

/* Apply one rule: compute the caller's registers. Returns END_REASON_COUNT to continue. */
static __always_inline __u32 unwind_frame(struct unwinder_state *st, struct unwind_rule *rule)
{
	__u64 cfa, ra, saved;
	__u32 reason;
	__s16 ra_off = rule->reg_off[SREG_RA];

	if (rule->cfa_type == CFA_SIGNAL)
		return unwind_signal_frame(st);
	reason = compute_cfa(st, rule, &cfa);
	if (reason != END_REASON_COUNT)
		return reason;
	if (ra_off == REG_UNDEFINED)
		return END_COMPLETE;
	if (ra_off == REG_SAME)
		return END_UNSUPPORTED;
	if (stack_word(st, cfa + ra_off, &ra))
		return END_READ_FAILED;

	/* Caller-saved registers are unknown in the caller; callee-saved ones follow their rule,
	 * with slots relative to the CFA or (rbp_based) to this frame's rbp, read before the loop
	 * replaces it with the caller's. */
	__u32 valid = st->valid & CALLEE_SAVED_MASK;
	__u64 frame_rbp = st->regs[DW_RBP];
	bool frame_rbp_known = st->valid & REG_BIT(DW_RBP);
	__u8 saved_regs = rule->saved_regs;
	for (int i = 0; i < SREG_COUNT - 1; i++) {
		if (!(saved_regs & (1u << i)))
			continue; /* the same value in the caller: most slots of most rules */
		__s16 off = rule->reg_off[i];
		__u32 reg = saved_reg_dwarf[i];
		bool rbp_based = rule->rbp_based & (1u << i);
		__u64 base = rbp_based ? frame_rbp : cfa;

		if ((off == REG_UNDEFINED && !rbp_based) || (rbp_based && !frame_rbp_known) ||
		    stack_word(st, base + off, &saved)) {
			valid &= ~REG_BIT(reg);
			continue;
		}
		if (reg < DW_REG_COUNT) {
			st->regs[reg] = saved;
			valid |= REG_BIT(reg);
		}
	}
	if (ra == 0 || cfa <= st->regs[DW_RSP])
		return END_BAD_FRAME;
	st->regs[DW_RSP] = cfa;
	st->regs[DW_RIP] = ra;
	st->valid = valid | REG_BIT(DW_RSP) | REG_BIT(DW_RIP);
	st->exact_pc = 0;
	return END_REASON_COUNT;
}

#endif
