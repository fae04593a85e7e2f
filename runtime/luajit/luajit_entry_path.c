/* SPDX-License-Identifier: MIT */
/* luajit_entry_path.c - one VM entry's straight-line path (forward jumps followed, up to a call,
 * a backward jump or the first dispatch), interpreted over a few abstract values (L, fields of L,
 * rsp, DISPATCH) to read the facts of enum fact as the dasc writes them (luajit_detect.c, 4.). */
#include "runtime/luajit/luajit_internal.h"

#include <string.h>

/* ---- an entry path over abstract values */

enum vkind { V_UNKNOWN, V_L, V_LFIELD, V_DISPATCH, V_RSP };

struct val {
	uint8_t kind;
	uint8_t size;
	int64_t off; /* V_LFIELD: the field's offset in L; V_RSP: added to rsp */
};

struct path {
	struct val reg[X86_GPR_COUNT];
	bool pc_pending;      /* a load into PC (rbx) from [reg + pc_disp] was seen */
	int64_t pc_disp;
	uint8_t pc_size;
};

static void slot_store(struct entry *e, int64_t disp, uint8_t size, bool holds_l)
{
	unsigned n = 0;
	for (unsigned i = 0; i < e->l_slot_count; i++) {
		if (e->l_slots[i] + (int64_t)e->l_slot_size[i] <= disp || disp + size <= e->l_slots[i]) {
			e->l_slots[n] = e->l_slots[i];
			e->l_slot_size[n++] = e->l_slot_size[i];
		}
	}
	e->l_slot_count = n;
	if (holds_l && n < MAX_SLOTS) {
		e->l_slots[n] = disp;
		e->l_slot_size[n] = size;
		e->l_slot_count = n + 1;
	}
}

static void note_store(struct entry *e, const struct path *p, int base, int64_t disp,
		       const cs_x86_op *dst, const cs_x86_op *src)
{
	uint8_t ws = 0;
	int64_t imm = 0;
	int rs = x86_reg_operand(src, &ws);
	const struct val *b = &p->reg[base];
	if (base == X86_GPR_SP && b->kind == V_RSP && b->off == 0)
		slot_store(e, disp, dst->size, rs >= 0 && p->reg[rs].kind == V_L);
	if (rs >= 0 && b->kind == V_L && p->reg[rs].kind == V_RSP)
		observe(&e->facts[F_CFRAME], disp, ws);
	if (rs >= 0 && b->kind == V_DISPATCH && p->reg[rs].kind == V_L)
		observe(&e->facts[F_CUR_L], disp, ws);
	if (rs < 0 && b->kind == V_DISPATCH && dst->size == 4 && x86_imm_operand(src, 4, &imm) &&
	    imm < 0) {
		observe(&e->facts[F_VMSTATE], disp, 4);
		observe(&e->facts[F_VMST_IMM], imm, 4);
	}
}

/* The value an instruction writes to its destination register dst (V_UNKNOWN when none of the
 * tracked kinds), noting the facts it shows. */
static struct val apply(struct entry *e, struct path *p, const cs_insn *insn, int dst_reg,
			uint8_t wd)
{
	const cs_x86_op *dst = x86_operand(insn, 0), *src = x86_operand(insn, 1);
	struct val none = {V_UNKNOWN, 0, 0};
	uint8_t ws = 0;
	int64_t disp = 0, imm = 0;
	int rs = x86_reg_operand(src, &ws);
	int src_base = x86_simple_mem(src, &disp);
	switch (insn->id) {
	case X86_INS_MOV:
		if (dst_reg < 0) {
			int64_t store_disp = 0;
			int base = x86_simple_mem(dst, &store_disp);
			if (base >= 0)
				note_store(e, p, base, store_disp, dst, src);
			return none;
		}
		if (rs >= 0 && ws == wd) {
			struct val v = p->reg[rs];
			v.size = wd;
			if (v.kind == V_L)
				observe(&e->facts[F_L_COPY], 0, wd);
			return v;
		}
		if (src_base < 0)
			return none;
		if (dst_reg == X86_GPR_BX && src_base != X86_GPR_SP) {
			p->pc_pending = true;
			p->pc_disp = disp;
			p->pc_size = wd;
		}
		if (p->reg[src_base].kind != V_L)
			return none;
		if (dst_reg == X86_GPR_DX)
			observe(&e->facts[F_BASE], disp, wd);
		return (struct val){V_LFIELD, wd, disp};
	case X86_INS_LEA:
		if (dst_reg >= 0 && src_base == X86_GPR_SP && p->reg[X86_GPR_SP].kind == V_RSP)
			return (struct val){V_RSP, wd, p->reg[X86_GPR_SP].off + disp};
		return none;
	case X86_INS_ADD:
		if (dst_reg >= 0 && p->reg[dst_reg].kind == V_LFIELD && x86_imm_operand(src, wd, &imm)) {
			observe(&e->facts[F_GLREF], p->reg[dst_reg].off, p->reg[dst_reg].size);
			observe(&e->facts[F_G2DISP], imm, wd);
			observe(&e->facts[F_DISPATCH], dst_reg, wd);
			return (struct val){V_DISPATCH, wd, 0};
		}
		return none;
	case X86_INS_SUB:
		if (dst_reg >= 0 && p->reg[dst_reg].kind == V_LFIELD && src_base >= 0 &&
		    p->reg[src_base].kind == V_L) {
			observe(&e->facts[F_STACK], p->reg[dst_reg].off, p->reg[dst_reg].size);
			observe(&e->facts[F_STACK_TOP], disp, wd);
		}
		return none;
	default:
		return none;
	}
}

/* Where the path goes after a control transfer: on (fall-through of conditional jumps, forward
 * direct jumps inside the interpreter) or not. The first dispatch commits the pending PC load. */
static bool follow(struct x86_disasm *d, const struct x86_code *text, struct x86_cursor *c,
		   uint64_t vm_end, struct entry *e, struct path *p)
{
	const cs_insn *insn = d->insn;
	uint64_t target;
	if (insn->id == X86_INS_JMP) {
		const cs_x86 *x = x86_of(insn);
		if (x86_direct_target(insn, &target))
			return target > insn->address && target < vm_end &&
			       x86_cursor_at(text, target, vm_end, c);
		if (x->op_count == 1 && x->operands[0].type == X86_OP_MEM) {
			int base = x86_gpr_of(x->operands[0].mem.base, NULL);
			if (base >= 0 && p->reg[base].kind == V_DISPATCH &&
			    x->operands[0].mem.index != X86_REG_INVALID && p->pc_pending)
				observe(&e->facts[F_FUNC_PC], p->pc_disp, p->pc_size);
		}
		return false;
	}
	return cs_insn_group(d->handle, insn, CS_GRP_JUMP) != 0; /* jcc: the fall-through */
}

static bool ends_path(struct x86_disasm *d)
{
	const cs_insn *insn = d->insn;
	return x86_is_call(d) || cs_insn_group(d->handle, insn, CS_GRP_RET) ||
	       cs_insn_group(d->handle, insn, CS_GRP_INT) || cs_insn_group(d->handle, insn, CS_GRP_IRET) ||
	       insn->id == X86_INS_UD2 || insn->id == X86_INS_HLT;
}

void luajit_trace_entry(const struct file *f, struct x86_disasm *d, uint64_t vm_end,
			struct entry *e)
{
	struct x86_cursor c;
	struct path p;
	memset(&p, 0, sizeof(p));
	if (!x86_cursor_at(&f->text, e->addr, vm_end, &c) ||
	    !luajit_entry_prologue(d, &c, &e->cframe_size))
		return;
	p.reg[X86_GPR_DI] = (struct val){V_L, 8, 0};
	p.reg[X86_GPR_SP] = (struct val){V_RSP, 8, 0};
	for (unsigned n = 0; n < MAX_ENTRY_INSNS; n++) {
		enum x86_decoded st = x86_next_insn(d, &c);
		if (st != X86_DECODED_INSN || ends_path(d))
			return;
		if (cs_insn_group(d->handle, d->insn, CS_GRP_JUMP)) {
			if (!follow(d, &f->text, &c, vm_end, e, &p))
				return;
			continue;
		}
		uint32_t writes = written_gprs(d);
		if (writes & (1u << X86_GPR_SP))
			return; /* rsp moves: the slots would no longer be named right */
		uint8_t wd = 0;
		int rd = x86_reg_operand(x86_operand(d->insn, 0), &wd);
		struct val v = apply(e, &p, d->insn, rd, wd);
		for (int r = 0; r < X86_GPR_COUNT; r++)
			if (writes & (1u << r))
				p.reg[r] = r == rd ? v : (struct val){V_UNKNOWN, 0, 0};
	}
}

