/* SPDX-License-Identifier: MIT */
/* luajit_vm_entries.c - the mode (GC64 or GC32, from lua_gettop), the VM entries lua_call,
 * lua_pcall, lua_resume and lua_cpcall enter (lj_vm_call, lj_vm_pcall, lj_vm_resume,
 * lj_vm_cpcall: the interpreter's FDE), and what the paths of those entries
 * (luajit_entry_path.c) agree on. luajit_detect.c's header says how each fact is derived. */
#include "runtime/luajit/luajit_internal.h"

#include <string.h>

/* ---- GC64 or GC32: lua_gettop */


/* lj_api.c lua_gettop: return (int)(L->top - L->base). The offsets it subtracts, traced over
 * its straight-line code: the minuend is top, the subtrahend base. */
static bool gettop_offsets(const struct file *f, struct x86_disasm *d, int64_t *base, int64_t *top)
{
	uint64_t end;
	struct x86_cursor c;
	if (!luajit_function_range(f, &f->api[API_GETTOP], MAX_API_BYTES, &end) ||
	    !x86_cursor_at(&f->text, f->api[API_GETTOP].addr, end, &c))
		return false;
	int64_t loaded[X86_GPR_COUNT];
	bool known[X86_GPR_COUNT] = {false};
	for (unsigned n = 0; n < 16; n++) {
		if (x86_next_insn(d, &c) != X86_DECODED_INSN)
			return false;
		const cs_insn *insn = d->insn;
		const cs_x86_op *dst = x86_operand(insn, 0), *src = x86_operand(insn, 1);
		uint8_t w = 0, ws = 0;
		int64_t disp = 0;
		int r = x86_reg_operand(dst, &w);
		if (insn->id == X86_INS_RET || x86_is_call(d) || cs_insn_group(d->handle, insn, CS_GRP_JUMP))
			return false;
		if (insn->id == X86_INS_MOV && r >= 0 && w == 8 && x86_simple_mem(src, &disp) == X86_GPR_DI) {
			loaded[r] = disp;
			known[r] = true;
			continue;
		}
		if (insn->id == X86_INS_SUB && r >= 0 && w == 8 && known[r]) {
			int s = x86_reg_operand(src, &ws);
			if (x86_simple_mem(src, &disp) == X86_GPR_DI) {
				*top = loaded[r], *base = disp;
				return true;
			}
			if (s >= 0 && ws == 8 && known[s]) {
				*top = loaded[r], *base = loaded[s];
				return true;
			}
			return false;
		}
		uint32_t writes = written_gprs(d);
		for (int i = 0; i < X86_GPR_COUNT; i++)
			if (writes & (1u << i))
				known[i] = false;
	}
	return false;
}

const char *luajit_find_mode(const struct file *f, struct x86_disasm *d, struct mode *m)
{
	int64_t base = 0, top = 0;
	if (!gettop_offsets(f, d, &base, &top))
		return "lua_gettop does not read L->top - L->base";
	/* lj_obj.h lua_State: GC64 base 32, top 40; GC32 base 16, top 24 (every 2.1 release). */
	if (base == 32 && top == 40)
		*m = (struct mode){.gc64 = true, .ptr = 8, .base = base, .top = top};
	else if (base == 16 && top == 24)
		*m = (struct mode){.gc64 = false, .ptr = 4, .base = base, .top = top};
	else
		return "lua_gettop reads an unknown lua_State layout";
	return NULL;
}

/* ---- the VM entries: lj_vm_call, lj_vm_pcall, lj_vm_resume, lj_vm_cpcall */

static const enum api_fn entry_api_fn[E_COUNT] = {API_CALL, API_PCALL, API_RESUME, API_CPCALL};

/* saveregs (vm_x64.dasc / vm_x86.dasc): push rbp; push rbx; push r15; push r14 (+ r13, r12 with
 * LJ_NO_UNWIND); sub rsp, CFRAME_SPACE. The bytes from the return address to the new rsp. */
bool luajit_entry_prologue(struct x86_disasm *d, struct x86_cursor *c, unsigned *frame)
{
	unsigned pushes = 0;
	for (unsigned n = 0; n < 8; n++) {
		if (x86_next_insn(d, c) != X86_DECODED_INSN)
			return false;
		const cs_x86 *x = x86_of(d->insn);
		uint8_t w = 0;
		int64_t imm = 0;
		if (d->insn->id == X86_INS_PUSH && x->op_count == 1 &&
		    x86_reg_operand(&x->operands[0], &w) >= 0 && w == 8) {
			pushes++;
			continue;
		}
		if (d->insn->id == X86_INS_SUB && pushes > 0 &&
		    x86_reg_operand(x86_operand(d->insn, 0), &w) == X86_GPR_SP && w == 8 &&
		    x86_imm_operand(x86_operand(d->insn, 1), 8, &imm) && imm > 0 && imm < 1024) {
			*frame = 8 + 8 * pushes + (unsigned)imm;
			return true;
		}
		return false;
	}
	return false;
}

static bool cfa_is_rsp_plus(const struct cfi_table *cfi, uint64_t pc, unsigned off)
{
	const struct cfi_row *row = cfi_table_lookup(cfi, pc);
	return row && row->rule.cfa_type == CFA_REG_OFF && row->rule.cfa_reg == DW_RSP &&
	       row->rule.cfa_off == (int32_t)off;
}

/* A call or jump target of the API function that is a VM entry: it pushes and subtracts from rsp
 * where the CFI already says CFA = rsp + that frame (luajit_detect.c, 3.). */
static bool is_vm_entry(const struct file *f, struct x86_disasm *d, uint64_t target,
			unsigned *frame)
{
	struct x86_cursor c;
	uint64_t end = target + 64 < target ? UINT64_MAX : target + 64;
	if (!in_text(f, target))
		return false;
	if (!in_text(f, end - 1))
		end = f->text.addr + f->text.size;
	return x86_cursor_at(&f->text, target, end, &c) && luajit_entry_prologue(d, &c, frame) &&
	       cfa_is_rsp_plus(f->cfi, target, *frame);
}

/* The one VM entry an API function calls or tail-jumps to; 0 when none or several. */
static uint64_t entry_of(const struct file *f, struct x86_disasm *d, enum api_fn api)
{
	uint64_t end, found = 0;
	struct x86_cursor c;
	if (!luajit_function_range(f, &f->api[api], MAX_API_BYTES, &end) ||
	    !x86_cursor_at(&f->text, f->api[api].addr, end, &c))
		return 0;
	enum x86_decoded st;
	/* Candidates are checked with the same decoder: remember them first. */
	uint64_t targets[32];
	unsigned n = 0;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		uint64_t target;
		if (st == X86_DECODED_INSN &&
		    (x86_is_call(d) || cs_insn_group(d->handle, d->insn, CS_GRP_JUMP)) &&
		    x86_direct_target(d->insn, &target) && (target < f->api[api].addr || target >= end) &&
		    n < sizeof(targets) / sizeof(targets[0]))
			targets[n++] = target;
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned frame;
		if (targets[i] == found || !is_vm_entry(f, d, targets[i], &frame))
			continue;
		if (found)
			return 0;
		found = targets[i];
	}
	return found;
}

/* ---- what the entries agree on */

/* A fact every entry in mask shows, with one value; *o gets it. */
static bool agreed(const struct entry *e, unsigned mask, enum fact fact, bool required,
		   struct obs *o)
{
	memset(o, 0, sizeof(*o));
	for (unsigned i = 0; i < E_COUNT; i++) {
		if (!(mask & (1u << i)))
			continue;
		const struct obs *x = &e[i].facts[fact];
		if (x->conflict || (required && !x->seen))
			return false;
		if (!x->seen)
			continue;
		if (o->seen && (o->value != x->value || o->size != x->size))
			return false;
		*o = *x;
	}
	return o->seen;
}

/* The stack slot every entry stores L into (SAVE_L = CFRAME_OFS_L). */
static bool common_l_slot(const struct entry *e, int64_t *slot, uint8_t *size)
{
	unsigned matches = 0;
	for (unsigned s = 0; s < e[0].l_slot_count; s++) {
		bool everywhere = true;
		for (unsigned i = 1; i < E_COUNT && everywhere; i++) {
			bool here = false;
			for (unsigned t = 0; t < e[i].l_slot_count; t++)
				here |= e[i].l_slots[t] == e[0].l_slots[s] &&
					e[i].l_slot_size[t] == e[0].l_slot_size[s];
			everywhere = here;
		}
		if (everywhere) {
			*slot = e[0].l_slots[s];
			*size = e[0].l_slot_size[s];
			matches++;
		}
	}
	return matches == 1;
}

#define ALL_ENTRIES ((1u << E_COUNT) - 1)

const char *luajit_combine_entries(const struct entry *e, const struct mode *m, struct vm *vm)
{
	struct obs glref, g2disp, dispatch, cframe, cur_l, vmstate, imm, base, stack, top, pc, copy;
	for (unsigned i = 1; i < E_COUNT; i++)
		if (e[i].cframe_size != e[0].cframe_size)
			return "the VM entries save different C frames";
	if (!agreed(e, ALL_ENTRIES, F_L_COPY, true, &copy) || copy.size != m->ptr)
		return "the VM entries do not copy lua_State *L as the mode's pointer size";
	if (!agreed(e, ALL_ENTRIES, F_GLREF, true, &glref) || glref.size != m->ptr ||
	    !agreed(e, ALL_ENTRIES, F_G2DISP, true, &g2disp) ||
	    !agreed(e, ALL_ENTRIES, F_DISPATCH, true, &dispatch) ||
	    !in_range(g2disp.value, 1, 65536) || !in_range(glref.value, 0, 256))
		return "the VM entries do not load DISPATCH from L->glref + GG_G2DISP alike";
	if (!agreed(e, ALL_ENTRIES, F_CFRAME, true, &cframe) || cframe.size != 8 ||
	    !in_range(cframe.value, 0, 256))
		return "the VM entries do not set L->cframe alike";
	if (!agreed(e, ALL_ENTRIES, F_CUR_L, true, &cur_l) || cur_l.size != m->ptr)
		return "the VM entries do not set g->cur_L alike";
	if (!agreed(e, ALL_ENTRIES, F_VMSTATE, false, &vmstate) ||
	    !agreed(e, ALL_ENTRIES, F_VMST_IMM, false, &imm) || imm.value != -1)
		return "the VM entries do not set g->vmstate to ~LJ_VMST_INTERP alike";
	if (!agreed(e, ALL_ENTRIES, F_BASE, false, &base) || base.value != m->base)
		return "the VM entries load BASE from another field than lua_gettop's L->base";
	if (!agreed(e, ALL_ENTRIES, F_STACK, false, &stack) ||
	    !agreed(e, ALL_ENTRIES, F_STACK_TOP, false, &top) || top.value != m->top ||
	    !in_range(stack.value, 0, 256))
		return "vm_cpcall does not compute L->stack - L->top";
	if (!agreed(e, ALL_ENTRIES, F_FUNC_PC, false, &pc))
		return "the VM entries do not dispatch a function's first instruction";
	int64_t l_slot = 0;
	uint8_t l_size = 0;
	if (!common_l_slot(e, &l_slot, &l_size) || l_size != m->ptr ||
	    !in_range(l_slot, 0, e[0].cframe_size))
		return "the VM entries do not save L in one C frame slot";
	int64_t disp2g = -g2disp.value;
	int64_t g_cur_l = cur_l.value - disp2g, g_vmstate = vmstate.value - disp2g;
	if (!in_range(g_cur_l, 0, 4096) || !in_range(g_vmstate, 0, 4096))
		return "g->cur_L or g->vmstate lies outside global_State";
	vm->dispatch_reg = (int)dispatch.value;
	vm->jit.gc64 = m->gc64;
	vm->jit.cframe_size = (uint16_t)e[0].cframe_size;
	vm->jit.disp2g = (int32_t)disp2g;
	vm->jit.cframe_l = (uint16_t)l_slot;
	vm->jit.state_glref = (uint16_t)glref.value;
	vm->jit.state_base = (uint16_t)base.value;
	vm->jit.state_stack = (uint16_t)stack.value;
	vm->jit.state_cframe = (uint16_t)cframe.value;
	vm->jit.g_vmstate = (uint16_t)g_vmstate;
	vm->jit.g_cur_L = (uint16_t)g_cur_l;
	vm->vmstate_disp = vmstate.value;
	vm->func_pc = pc.value;
	return NULL;
}

const char *luajit_locate_vm(const struct file *f, struct x86_disasm *d, struct vm *vm,
			     uint64_t entries[E_COUNT])
{
	for (unsigned i = 0; i < E_COUNT; i++) {
		entries[i] = entry_of(f, d, entry_api_fn[i]);
		if (entries[i] == 0)
			return "lua_call, lua_pcall, lua_resume or lua_cpcall enters no interpreter";
		uint64_t start, end;
		if (!x86_fn_bounds(f->cfi, entries[i], &start, &end))
			return "the interpreter has no FDE";
		if (i > 0 && (start != vm->start || end != vm->end))
			return "the VM entries lie in different FDEs";
		vm->start = start;
		vm->end = end;
	}
	if (vm->end - vm->start > MAX_VM_BYTES || !in_text(f, vm->end - 1))
		return "the interpreter's FDE is implausibly large";
	return NULL;
}

