/* SPDX-License-Identifier: MIT */
/* lua_state_home.c - where PUC Lua's luaV_execute keeps lua_State *L (lua_state_home.h). */
#include "runtime/puc/lua_state_home.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <string.h>

#include "bpf/abi/unwind_abi.h"
#include "lib/log.h"
#include "x86/x86_operands.h"

#define MAX_ENTRY_INSNS 64     /* instructions read at luaV_execute's entry */

/* ---- where luaV_execute keeps lua_State *L at its opcode dispatch
 *
 * The entry path (fall-through of conditional branches, direct jumps inside the function) is
 * followed from the start up to the first call, return, indirect jump (the opcode dispatch) or
 * exit, tracking what holds the entry value of rdi: registers (copies, and loads from a stack slot
 * holding it) and 8-byte slots of the function's own stack frame (stores of a register holding
 * it, push included). A slot is named by its offset from the CFA, from the CFA rule in effect at
 * the instruction that addresses it: CFA = rsp + N gives [rsp + d] = CFA - N + d; CFA = rbp + N
 * (rbp the frame pointer) gives [rbp + d] = CFA - N + d. The name stays valid whatever rsp does
 * later, and it is what the BPF walker reads (lua_interp.l_cfa_off: the CFA of every frame is
 * known exactly there). Any write into the frame that overlaps a slot ends it holding L; a frame
 * write that cannot be placed (an index register, an rsp access under another CFA rule) ends all
 * of them. Writes through other registers are taken not to reach the frame: compiled code
 * addresses its spill slots through rsp or the frame pointer only.
 *
 * Result: a callee-saved register holding L where the path ends (today's rule, and preferred:
 * no memory read in BPF), unless some instruction of the function also writes a computed value
 * into it (not a plain copy: the register is then only a temporary home) and a slot qualifies;
 * otherwise a slot holding L there that
 *   - was stored before the path's first conditional branch: every run of the function executes
 *     that store before anything else (direct jumps are followed, so this is dominance);
 *   - is written by no other instruction of the whole function, nor has its address taken: it
 *     holds L from the store on, at every instruction (a compiler's spill slot of L holds only L;
 *     a slot shared with another variable is written elsewhere, and refused);
 *   - is reloaded (mov reg, [slot]) somewhere: L's home, not a passing copy.
 * gcc 5.4 at -O1: [rsp+8] = CFA-0xb8; at -O3: [rsp] = CFA-0xa0. clang 5.1/5.3/5.4 at -O1..-O3
 * keep L in rdi between opcodes, copy it into scratch callee-saved registers around calls and
 * reload it from one slot: the slot (a register found at the dispatch misses L in some handlers).
 * Every gcc build (Debian's and -O1..-O3) with L in a register has no qualifying slot: the
 * register, as before. */

#define MAX_SLOTS 8         /* frame slots tracked as holding L */
#define MAX_SLOT_STORES 16  /* stores of L into the frame on the entry path */
#define MAX_SAVES 16        /* prologue pushes remembered */
#define SLOT_MIN_CFA_OFF (-32768) /* lua_interp.l_cfa_off is an s16 */
#define SLOT_MAX_CFA_OFF (-16)    /* below the return address (CFA - 8) */

/* x86_64 psABI 3.2.1: rbx, rbp and r12-r15 belong to the caller (preserved across calls). */
static bool callee_saved(int dwarf)
{
	return dwarf == DW_RBX || dwarf == DW_RBP || (dwarf >= DW_R12 && dwarf <= DW_R15);
}

/* What holds the entry value of rdi on the entry path. */
struct holders {
	uint32_t mask;             /* bit per DWARF register */
	uint8_t order[DW_REG_COUNT]; /* registers in the order they received it */
	unsigned order_count;
	int64_t slots[MAX_SLOTS];  /* CFA offsets of the frame slots holding it, in store order */
	unsigned slot_count;
	uint64_t stores[MAX_SLOT_STORES]; /* addresses of the instructions that stored it there */
	unsigned store_count;
	uint64_t saves[MAX_SAVES]; /* the pushes before the first store (the prologue's: with a frame
				    * pointer they run under CFA = rbp + N, where rsp is not placed) */
	unsigned save_count;
	bool spilled;              /* stored to the stack */
	bool branched;             /* a conditional branch was passed: stores from here on may not
				    * run on every call */
};

static bool is_full_reg_operand(const cs_x86_op *op)
{
	return op->type == X86_OP_REG && op->size == 8 && x86_gpr_dwarf(op->reg) >= 0;
}

static bool holds(const struct holders *h, unsigned reg)
{
	int dwarf = x86_gpr_dwarf(reg);
	return dwarf >= 0 && (h->mask & (1u << dwarf));
}

static void add_holder(struct holders *h, int dwarf)
{
	if (!(h->mask & (1u << dwarf)) && h->order_count < DW_REG_COUNT)
		h->order[h->order_count++] = (uint8_t)dwarf;
	h->mask |= 1u << dwarf;
}

/* mov dst64, src64 with src holding L: dst now holds it too. */
static bool track_copy(struct holders *h, const cs_insn *insn)
{
	const cs_x86 *x = x86_of(insn);
	if (insn->id != X86_INS_MOV || x->op_count != 2 || !is_full_reg_operand(&x->operands[1]))
		return false;
	if (!holds(h, x->operands[1].reg))
		return false;
	if (x->operands[0].type == X86_OP_MEM) {
		if (x->operands[0].mem.base == X86_REG_RSP)
			h->spilled = true;
		return true;
	}
	if (!is_full_reg_operand(&x->operands[0]))
		return false;
	add_holder(h, x86_gpr_dwarf(x->operands[0].reg));
	return true;
}

/* Every register the instruction writes loses L. */
static int track_writes(struct x86_disasm *d, struct holders *h)
{
	uint32_t written;
	cs_err err = x86_written_gprs(d, &written);
	if (err != CS_ERR_OK) {
		lp_debug("capstone: cs_regs_access: %s", cs_strerror(err));
		return -EINVAL;
	}
	h->mask &= ~x86_dwarf_mask(written);
	return 0;
}

/* ---- the function's own stack frame */

enum frame_ref {
	FRAME_NONE,    /* not the function's stack frame */
	FRAME_AT,      /* at CFA + *cfa_off */
	FRAME_UNKNOWN, /* in the frame, or possibly, at a place that cannot be told */
};

static const struct cfi_row *rule_at(const struct cfi_table *cfi, uint64_t pc)
{
	if (!cfi || !cfi->rows || cfi->count == 0)
		return NULL;
	const struct cfi_row *row = cfi_table_lookup(cfi, pc);
	return row && row->rule.cfa_type == CFA_REG_OFF ? row : NULL;
}

/* Where the memory operand op of the instruction at pc is, relative to the CFA: rsp-based under
 * CFA = rsp + N, or rbp-based under CFA = rbp + N. rbp-based under any other rule: rbp is a
 * general register there (gcc -O1+ uses it so), not the frame. */
static enum frame_ref frame_ref(const struct cfi_table *cfi, uint64_t pc, const cs_x86_op *op,
				int64_t *cfa_off)
{
	if (op->type != X86_OP_MEM || op->mem.segment != X86_REG_INVALID)
		return FRAME_NONE;
	unsigned base = op->mem.base;
	if (base == X86_REG_ESP || base == X86_REG_EBP)
		return FRAME_UNKNOWN; /* 32-bit addressing of the stack: nothing compilers emit */
	if (base != X86_REG_RSP && base != X86_REG_RBP)
		return FRAME_NONE;
	const struct cfi_row *row = rule_at(cfi, pc);
	if (base == X86_REG_RBP && !(row && row->rule.cfa_reg == DW_RBP))
		return FRAME_NONE;
	if (!row || (base == X86_REG_RSP && row->rule.cfa_reg != DW_RSP) ||
	    op->mem.index != X86_REG_INVALID)
		return FRAME_UNKNOWN;
	*cfa_off = op->mem.disp - (int64_t)row->rule.cfa_off;
	return FRAME_AT;
}

/* push / pushfq at pc write the 8 bytes below rsp: CFA - N - 8 under CFA = rsp + N. */
static enum frame_ref push_ref(const struct cfi_table *cfi, uint64_t pc, int64_t *cfa_off)
{
	const struct cfi_row *row = rule_at(cfi, pc);
	if (!row || row->rule.cfa_reg != DW_RSP)
		return FRAME_UNKNOWN;
	*cfa_off = -(int64_t)row->rule.cfa_off - 8;
	return FRAME_AT;
}

static bool is_push(const cs_insn *insn)
{
	return insn->id == X86_INS_PUSH || insn->id == X86_INS_PUSHFQ;
}

/* Whether operand i is written: capstone's access flags; an operand without them counts as
 * written when it is the destination (the first operand in Intel order). */
static bool operand_written(const cs_insn *insn, uint8_t i)
{
	const cs_x86_op *op = &x86_of(insn)->operands[i];
	if (insn->id == X86_INS_LEA || insn->id == X86_INS_NOP || insn->id == X86_INS_PREFETCH ||
	    insn->id == X86_INS_PREFETCHT0 || insn->id == X86_INS_PREFETCHT1 ||
	    insn->id == X86_INS_PREFETCHT2 || insn->id == X86_INS_PREFETCHNTA ||
	    insn->id == X86_INS_PREFETCHW)
		return false;
	return (op->access & CS_AC_WRITE) || (op->access == CS_AC_INVALID && i == 0);
}

/* Bytes a memory write covers; 0 (unknown to capstone) counts as a large area. */
static int64_t write_size(const cs_x86_op *op)
{
	return op->size ? op->size : 512;
}

static bool overlaps_slot(int64_t at, int64_t size, int64_t slot)
{
	return at < slot + 8 && slot < at + size;
}

static void kill_slots(struct holders *h, int64_t at, int64_t size)
{
	unsigned n = 0;
	for (unsigned i = 0; i < h->slot_count; i++)
		if (!overlaps_slot(at, size, h->slots[i]))
			h->slots[n++] = h->slots[i];
	h->slot_count = n;
}

/* The 8 bytes at CFA + at now hold L (stored by the instruction at pc). */
static void add_slot(struct holders *h, int64_t at, uint64_t pc)
{
	h->spilled = true;
	if (h->branched || at < SLOT_MIN_CFA_OFF || at > SLOT_MAX_CFA_OFF ||
	    h->slot_count >= MAX_SLOTS || h->store_count >= MAX_SLOT_STORES)
		return; /* not a slot known to hold L always, or not one BPF can be told about */
	h->stores[h->store_count++] = pc;
	h->slots[h->slot_count++] = at;
}

/* The frame writes of one entry path instruction: the slots they overlap stop holding L; an
 * 8-byte store (mov or push) of a register holding L makes its slot a holder. */
static void track_frame_writes(const struct cfi_table *cfi, const cs_insn *insn, struct holders *h)
{
	const cs_x86 *x = x86_of(insn);
	int64_t at;
	if (is_push(insn)) {
		if (h->store_count == 0 && h->save_count < MAX_SAVES)
			h->saves[h->save_count++] = insn->address;
		if (push_ref(cfi, insn->address, &at) != FRAME_AT) {
			h->slot_count = 0;
			return;
		}
		kill_slots(h, at, 8);
		if (insn->id == X86_INS_PUSH && x->op_count == 1 &&
		    is_full_reg_operand(&x->operands[0]) && holds(h, x->operands[0].reg))
			add_slot(h, at, insn->address);
		return;
	}
	for (uint8_t i = 0; i < x->op_count && i < 8; i++) {
		const cs_x86_op *op = &x->operands[i];
		if (op->type != X86_OP_MEM || !operand_written(insn, i))
			continue;
		enum frame_ref where = frame_ref(cfi, insn->address, op, &at);
		if (where == FRAME_UNKNOWN) {
			h->slot_count = 0;
		} else if (where == FRAME_AT) {
			kill_slots(h, at, write_size(op));
			if (insn->id == X86_INS_MOV && i == 0 && x->op_count == 2 && op->size == 8 &&
			    is_full_reg_operand(&x->operands[1]) && holds(h, x->operands[1].reg))
				add_slot(h, at, insn->address);
		}
	}
}

/* mov reg64, [frame + at]: the CFA offset loaded, or false when the instruction is not that. */
static bool frame_load(const struct cfi_table *cfi, const cs_insn *insn, int64_t *at)
{
	const cs_x86 *x = x86_of(insn);
	return insn->id == X86_INS_MOV && x->op_count == 2 && is_full_reg_operand(&x->operands[0]) &&
	       x->operands[1].type == X86_OP_MEM && x->operands[1].size == 8 &&
	       frame_ref(cfi, insn->address, &x->operands[1], at) == FRAME_AT;
}

/* mov reg64, [a slot holding L]: the register that now holds L, or -1. */
static int reloaded_register(const struct cfi_table *cfi, const cs_insn *insn,
			     const struct holders *h)
{
	int64_t at;
	if (!frame_load(cfi, insn, &at))
		return -1;
	for (unsigned i = 0; i < h->slot_count; i++)
		if (h->slots[i] == at)
			return x86_gpr_dwarf(x86_of(insn)->operands[0].reg);
	return -1;
}

/* ---- the entry path */

static bool ends_entry_block(struct x86_disasm *d)
{
	const cs_insn *insn = d->insn;
	return cs_insn_group(d->handle, insn, CS_GRP_CALL) || cs_insn_group(d->handle, insn, CS_GRP_RET) ||
	       cs_insn_group(d->handle, insn, CS_GRP_INT) || insn->id == X86_INS_JMP ||
	       insn->id == X86_INS_UD2 || insn->id == X86_INS_HLT;
}

/* jmp to a constant address inside [start, end): the entry block continues there. */
static bool entry_jump_target(const cs_insn *insn, uint64_t start, uint64_t end, uint64_t *target)
{
	return insn->id == X86_INS_JMP && x86_direct_target(insn, target) && *target >= start &&
	       *target < end;
}

/* Follow the entry path (fall-through of conditional branches, direct jumps inside the
 * function) up to the first call, return, indirect jump (the opcode dispatch) or exit, while
 * anything holds L. */
static int scan_entry(struct x86_disasm *d, const struct x86_code *code, const struct cfi_table *cfi,
		      uint64_t start, uint64_t end, struct holders *h)
{
	struct x86_cursor c;
	if (!x86_cursor_at(code, start, end, &c))
		return -EINVAL;
	for (unsigned n = 0; n < MAX_ENTRY_INSNS && (h->mask != 0 || h->slot_count != 0); n++) {
		if (x86_next_insn(d, &c) != X86_DECODED_INSN)
			break;
		uint64_t target;
		if (entry_jump_target(d->insn, start, end, &target)) {
			if (!x86_cursor_at(code, target, end, &c))
				break;
			continue;
		}
		if (ends_entry_block(d))
			break;
		if (cs_insn_group(d->handle, d->insn, CS_GRP_JUMP))
			h->branched = true; /* a conditional one: the path goes on with its fall-through */
		track_frame_writes(cfi, d->insn, h);
		if (track_copy(h, d->insn))
			continue;
		int reload = reloaded_register(cfi, d->insn, h);
		int err = track_writes(d, h);
		if (err)
			return err;
		if (reload >= 0)
			add_holder(h, reload);
	}
	return 0;
}

/* How often each register is passed as the first argument (mov rdi, reg) in [start, end):
 * luaV_execute passes L to most of what it calls. */
static int count_first_args(struct x86_disasm *d, const struct x86_code *code, uint64_t start,
			    uint64_t end, unsigned uses[DW_REG_COUNT])
{
	struct x86_cursor c;
	memset(uses, 0, DW_REG_COUNT * sizeof(*uses));
	if (!x86_cursor_at(code, start, end, &c))
		return -EINVAL;
	enum x86_decoded st;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		const cs_x86 *x = st == X86_DECODED_INSN ? x86_of(d->insn) : NULL;
		if (!x || d->insn->id != X86_INS_MOV || x->op_count != 2 ||
		    !is_full_reg_operand(&x->operands[0]) || !is_full_reg_operand(&x->operands[1]) ||
		    x86_gpr_dwarf(x->operands[0].reg) != DW_RDI)
			continue;
		uses[x86_gpr_dwarf(x->operands[1].reg)]++;
	}
	return 0;
}

/* Among the callee-saved registers holding L when the entry path ends, the one luaV_execute
 * passes most often as the first argument; ties go to the earliest copy. -1 when none. */
static int choose_holder(struct x86_disasm *d, const struct x86_code *code, uint64_t start,
			 uint64_t end, const struct holders *h)
{
	int candidates = 0, first = -1;
	for (unsigned i = 0; i < h->order_count; i++) {
		if (callee_saved(h->order[i]) && (h->mask & (1u << h->order[i]))) {
			candidates++;
			if (first < 0)
				first = h->order[i];
		}
	}
	unsigned uses[DW_REG_COUNT];
	if (candidates < 2 || count_first_args(d, code, start, end, uses) != 0)
		return first;
	int best = first;
	for (unsigned i = 0; i < h->order_count; i++) {
		int reg = h->order[i];
		if (callee_saved(reg) && (h->mask & (1u << reg)) && uses[reg] > uses[best])
			best = reg;
	}
	return best;
}

/* ---- the slots over the whole function */

struct slot_use {
	unsigned loads;  /* mov reg64, [slot] */
	bool clobbered;  /* written by another instruction than the entry path's stores of L, or
			  * its address taken (lea) */
};

static bool is_entry_store(const struct holders *h, uint64_t pc)
{
	for (unsigned i = 0; i < h->store_count; i++)
		if (h->stores[i] == pc)
			return true;
	return false;
}

/* A push of the prologue: it runs before L is stored (a push is never run again by a jump
 * back: the stack would grow at each pass). */
static bool is_prologue_push(const struct holders *h, uint64_t pc)
{
	for (unsigned i = 0; i < h->save_count; i++)
		if (h->saves[i] == pc)
			return true;
	return false;
}

static void note_frame_operand(const struct cfi_table *cfi, const cs_insn *insn, uint8_t i,
			       const struct holders *h, struct slot_use *use)
{
	const cs_x86_op *op = &x86_of(insn)->operands[i];
	int64_t at = 0;
	enum frame_ref where = frame_ref(cfi, insn->address, op, &at);
	if (where == FRAME_NONE)
		return;
	if (insn->id == X86_INS_LEA) {
		for (unsigned s = 0; s < h->slot_count && where == FRAME_AT; s++)
			if (at == h->slots[s])
				use[s].clobbered = true; /* its address escapes */
		return;
	}
	if (!operand_written(insn, i) || is_entry_store(h, insn->address))
		return;
	for (unsigned s = 0; s < h->slot_count; s++)
		if (where == FRAME_UNKNOWN || overlaps_slot(at, write_size(op), h->slots[s]))
			use[s].clobbered = true;
}

static int scan_slot_uses(struct x86_disasm *d, const struct x86_code *code,
			  const struct cfi_table *cfi, uint64_t start, uint64_t end,
			  const struct holders *h, struct slot_use use[MAX_SLOTS])
{
	struct x86_cursor c;
	memset(use, 0, MAX_SLOTS * sizeof(*use));
	if (!x86_cursor_at(code, start, end, &c))
		return -EINVAL;
	enum x86_decoded st;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		if (st != X86_DECODED_INSN)
			continue;
		const cs_insn *insn = d->insn;
		int64_t at = 0;
		if (is_push(insn)) {
			bool placed = push_ref(cfi, insn->address, &at) == FRAME_AT;
			for (unsigned s = 0; s < h->slot_count; s++)
				if (!is_entry_store(h, insn->address) &&
				    !is_prologue_push(h, insn->address) &&
				    (!placed || overlaps_slot(at, 8, h->slots[s])))
					use[s].clobbered = true;
			continue;
		}
		if (frame_load(cfi, insn, &at))
			for (unsigned s = 0; s < h->slot_count; s++)
				if (at == h->slots[s])
					use[s].loads++;
		const cs_x86 *x = x86_of(insn);
		for (uint8_t i = 0; i < x->op_count && i < 8; i++)
			note_frame_operand(cfi, insn, i, h, use);
	}
	return 0;
}

/* The slot holding L at the end of the entry path that the function reloads most and never
 * overwrites; -1 with *reason set when none. */
static int choose_slot(struct x86_disasm *d, const struct x86_code *code, const struct cfi_table *cfi,
		       uint64_t start, uint64_t end, const struct holders *h, const char **reason)
{
	struct slot_use use[MAX_SLOTS];
	if (scan_slot_uses(d, code, cfi, start, end, h, use) != 0) {
		*reason = "the disassembler failed on luaV_execute";
		return -1;
	}
	int best = -1;
	bool clobbered = false;
	for (unsigned s = 0; s < h->slot_count; s++) {
		lp_debug("lua: L in the frame at CFA%+lld: %u loads%s",
			 (long long)h->slots[s], use[s].loads, use[s].clobbered ? ", also written" : "");
		clobbered |= use[s].clobbered;
		if (!use[s].clobbered && use[s].loads > 0 && (best < 0 || use[s].loads > use[best].loads))
			best = (int)s;
	}
	if (best < 0)
		*reason = clobbered ? "luaV_execute's stack slot for lua_State *L also holds other values"
				    : "luaV_execute stores lua_State *L on its stack but never reloads it";
	return best;
}

/* Whether every write to the callee-saved register reg in [start, end) is a plain 8-byte copy
 * (mov reg, reg64 / mov reg, [frame slot]) or a pop: a register that also takes computed values
 * (gcc -O3 and clang use some as scratch registers in the opcode handlers) holds L at the
 * dispatch only, not at every instruction. */
static int register_stable(struct x86_disasm *d, const struct x86_code *code,
			   const struct cfi_table *cfi, uint64_t start, uint64_t end, int reg,
			   bool *stable)
{
	struct x86_cursor c;
	*stable = true;
	if (!x86_cursor_at(code, start, end, &c))
		return -EINVAL;
	enum x86_decoded st;
	while (*stable && (st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		if (st != X86_DECODED_INSN)
			continue;
		const cs_insn *insn = d->insn;
		const cs_x86 *x = x86_of(insn);
		uint32_t written;
		if (x86_written_gprs(d, &written) != CS_ERR_OK)
			return -EINVAL;
		bool writes = (x86_dwarf_mask(written) >> reg) & 1u;
		if (!writes || insn->id == X86_INS_POP)
			continue;
		int64_t at;
		bool copy = insn->id == X86_INS_MOV && x->op_count == 2 &&
			    is_full_reg_operand(&x->operands[0]) &&
			    (is_full_reg_operand(&x->operands[1]) || frame_load(cfi, insn, &at));
		if (!copy) {
			lp_debug("lua: L's register %d also takes other values: %#llx %s %s", reg,
				 (unsigned long long)insn->address, insn->mnemonic, insn->op_str);
			*stable = false;
		}
	}
	return 0;
}

int lua_state_home(const struct x86_code *code, const struct cfi_table *cfi, uint64_t start,
		   uint64_t end, struct lua_state_home *home, const char **reason)
{
	struct x86_cursor c;
	if (!x86_cursor_at(code, start, end, &c)) {
		*reason = "luaV_execute lies outside the code section";
		return -ENOENT;
	}
	struct x86_disasm d;
	int err = x86_disasm_open(&d);
	if (err) {
		*reason = "the disassembler failed to start";
		return err;
	}
	struct holders h = {.mask = 1u << DW_RDI};
	err = scan_entry(&d, code, cfi, start, end, &h);
	if (err) {
		x86_disasm_close(&d);
		*reason = "the disassembler failed on luaV_execute's entry";
		return err;
	}
	memset(home, 0, sizeof(*home));
	int reg = choose_holder(&d, code, start, end, &h);
	bool stable = false;
	if (reg >= 0 && register_stable(&d, code, cfi, start, end, reg, &stable) != 0)
		stable = true; /* not decidable: the register, as without a slot */
	const char *why = h.spilled ? "luaV_execute keeps lua_State *L on its stack, not in a "
				      "callee-saved register nor in a slot stored at its entry"
				    : "luaV_execute does not keep lua_State *L in a callee-saved register";
	int slot = !stable && h.slot_count > 0 ? choose_slot(&d, code, cfi, start, end, &h, &why) : -1;
	x86_disasm_close(&d);
	if (slot >= 0) {
		home->in_frame = true;
		home->cfa_off = (int16_t)h.slots[slot];
		return 0;
	}
	if (reg >= 0) {
		home->dwarf_reg = (uint8_t)reg;
		return 0;
	}
	*reason = why;
	return -ENOENT;
}

