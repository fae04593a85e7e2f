/* SPDX-License-Identifier: MIT */
/* x86_operands.c - the operands of decoded x86_64 instructions (x86_operands.h). */
#include "x86/x86_operands.h"

#include "bpf/abi/unwind_abi.h"

struct gpr_name {
	x86_reg reg;
	uint8_t index;
	uint8_t width;
};

static const struct gpr_name gpr_names[] = {
	{X86_REG_RAX, X86_GPR_AX, 8},   {X86_REG_EAX, X86_GPR_AX, 4},   {X86_REG_AX, X86_GPR_AX, 2},
	{X86_REG_AL, X86_GPR_AX, 1},    {X86_REG_AH, X86_GPR_AX, 1},    {X86_REG_RCX, X86_GPR_CX, 8},
	{X86_REG_ECX, X86_GPR_CX, 4},   {X86_REG_CX, X86_GPR_CX, 2},    {X86_REG_CL, X86_GPR_CX, 1},
	{X86_REG_CH, X86_GPR_CX, 1},    {X86_REG_RDX, X86_GPR_DX, 8},   {X86_REG_EDX, X86_GPR_DX, 4},
	{X86_REG_DX, X86_GPR_DX, 2},    {X86_REG_DL, X86_GPR_DX, 1},    {X86_REG_DH, X86_GPR_DX, 1},
	{X86_REG_RBX, X86_GPR_BX, 8},   {X86_REG_EBX, X86_GPR_BX, 4},   {X86_REG_BX, X86_GPR_BX, 2},
	{X86_REG_BL, X86_GPR_BX, 1},    {X86_REG_BH, X86_GPR_BX, 1},    {X86_REG_RSP, X86_GPR_SP, 8},
	{X86_REG_ESP, X86_GPR_SP, 4},   {X86_REG_SP, X86_GPR_SP, 2},    {X86_REG_SPL, X86_GPR_SP, 1},
	{X86_REG_RBP, X86_GPR_BP, 8},   {X86_REG_EBP, X86_GPR_BP, 4},   {X86_REG_BP, X86_GPR_BP, 2},
	{X86_REG_BPL, X86_GPR_BP, 1},   {X86_REG_RSI, X86_GPR_SI, 8},   {X86_REG_ESI, X86_GPR_SI, 4},
	{X86_REG_SI, X86_GPR_SI, 2},    {X86_REG_SIL, X86_GPR_SI, 1},   {X86_REG_RDI, X86_GPR_DI, 8},
	{X86_REG_EDI, X86_GPR_DI, 4},   {X86_REG_DI, X86_GPR_DI, 2},    {X86_REG_DIL, X86_GPR_DI, 1},
	{X86_REG_R8, X86_GPR_8, 8},     {X86_REG_R8D, X86_GPR_8, 4},    {X86_REG_R8W, X86_GPR_8, 2},
	{X86_REG_R8B, X86_GPR_8, 1},    {X86_REG_R9, X86_GPR_9, 8},     {X86_REG_R9D, X86_GPR_9, 4},
	{X86_REG_R9W, X86_GPR_9, 2},    {X86_REG_R9B, X86_GPR_9, 1},    {X86_REG_R10, X86_GPR_10, 8},
	{X86_REG_R10D, X86_GPR_10, 4},  {X86_REG_R10W, X86_GPR_10, 2},  {X86_REG_R10B, X86_GPR_10, 1},
	{X86_REG_R11, X86_GPR_11, 8},   {X86_REG_R11D, X86_GPR_11, 4},  {X86_REG_R11W, X86_GPR_11, 2},
	{X86_REG_R11B, X86_GPR_11, 1},  {X86_REG_R12, X86_GPR_12, 8},   {X86_REG_R12D, X86_GPR_12, 4},
	{X86_REG_R12W, X86_GPR_12, 2},  {X86_REG_R12B, X86_GPR_12, 1},  {X86_REG_R13, X86_GPR_13, 8},
	{X86_REG_R13D, X86_GPR_13, 4},  {X86_REG_R13W, X86_GPR_13, 2},  {X86_REG_R13B, X86_GPR_13, 1},
	{X86_REG_R14, X86_GPR_14, 8},   {X86_REG_R14D, X86_GPR_14, 4},  {X86_REG_R14W, X86_GPR_14, 2},
	{X86_REG_R14B, X86_GPR_14, 1},  {X86_REG_R15, X86_GPR_15, 8},   {X86_REG_R15D, X86_GPR_15, 4},
	{X86_REG_R15W, X86_GPR_15, 2},  {X86_REG_R15B, X86_GPR_15, 1},
};

static const uint8_t dwarf_of_gpr[X86_GPR_COUNT] = {
	[X86_GPR_AX] = DW_RAX, [X86_GPR_CX] = DW_RCX, [X86_GPR_DX] = DW_RDX, [X86_GPR_BX] = DW_RBX,
	[X86_GPR_SP] = DW_RSP, [X86_GPR_BP] = DW_RBP, [X86_GPR_SI] = DW_RSI, [X86_GPR_DI] = DW_RDI,
	[X86_GPR_8] = DW_R8,   [X86_GPR_9] = DW_R9,   [X86_GPR_10] = DW_R10, [X86_GPR_11] = DW_R11,
	[X86_GPR_12] = DW_R12, [X86_GPR_13] = DW_R13, [X86_GPR_14] = DW_R14, [X86_GPR_15] = DW_R15,
};

int x86_gpr_of(x86_reg reg, uint8_t *width)
{
	for (size_t i = 0; i < sizeof(gpr_names) / sizeof(gpr_names[0]); i++) {
		if (gpr_names[i].reg == reg) {
			if (width)
				*width = gpr_names[i].width;
			return gpr_names[i].index;
		}
	}
	return -1;
}

int x86_gpr_dwarf(x86_reg reg)
{
	int gpr = x86_gpr_of(reg, NULL);
	return gpr < 0 ? -1 : dwarf_of_gpr[gpr];
}

uint32_t x86_dwarf_mask(uint32_t gprs)
{
	uint32_t mask = 0;
	for (int r = 0; r < X86_GPR_COUNT; r++)
		if (gprs & (1u << r))
			mask |= 1u << dwarf_of_gpr[r];
	return mask;
}

const cs_x86_op *x86_operand(const cs_insn *insn, unsigned i)
{
	const cs_x86 *x = x86_of(insn);
	return x->op_count == 2 && i < 2 ? &x->operands[i] : NULL;
}

int x86_reg_operand(const cs_x86_op *op, uint8_t *width)
{
	uint8_t w = 0;
	if (!op || op->type != X86_OP_REG)
		return -1;
	int r = x86_gpr_of(op->reg, &w);
	if (r < 0 || (w != 4 && w != 8))
		return -1;
	*width = w;
	return r;
}

int x86_simple_mem(const cs_x86_op *op, int64_t *disp)
{
	if (!op || op->type != X86_OP_MEM || op->mem.index != X86_REG_INVALID ||
	    op->mem.segment != X86_REG_INVALID)
		return -1;
	int base = x86_gpr_of(op->mem.base, NULL);
	if (base >= 0)
		*disp = op->mem.disp;
	return base;
}

bool x86_imm_operand(const cs_x86_op *op, uint8_t width, int64_t *value)
{
	if (!op || op->type != X86_OP_IMM)
		return false;
	*value = width == 4 ? (int64_t)(int32_t)(uint32_t)op->imm : op->imm;
	return true;
}

bool x86_is_call(const struct x86_disasm *d)
{
	return cs_insn_group(d->handle, d->insn, CS_GRP_CALL);
}

bool x86_direct_target(const cs_insn *insn, uint64_t *target)
{
	const cs_x86 *x = x86_of(insn);
	if (x->op_count != 1 || x->operands[0].type != X86_OP_IMM)
		return false;
	*target = (uint64_t)x->operands[0].imm;
	return true;
}

cs_err x86_written_gprs(const struct x86_disasm *d, uint32_t *gprs)
{
	cs_regs read, written;
	uint8_t nread = 0, nwritten = 0;
	cs_err err = cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten);
	if (err != CS_ERR_OK) {
		*gprs = ~0u;
		return err;
	}
	uint32_t mask = 0;
	for (uint8_t i = 0; i < nwritten && i < sizeof(written) / sizeof(written[0]); i++) {
		int r = x86_gpr_of(written[i], NULL);
		if (r >= 0)
			mask |= 1u << r;
	}
	*gprs = mask;
	return CS_ERR_OK;
}
