/* SPDX-License-Identifier: MIT */
/* x86_operands.h - what the operands of a decoded x86_64 instruction (capstone, details on) are:
 * general purpose registers by number and width, register, [base + disp] memory and immediate
 * operands, direct branch targets, the registers an instruction writes. Nothing Lua-specific. */
#ifndef LUA_PERF_X86_OPERANDS_H
#define LUA_PERF_X86_OPERANDS_H

#include <stdbool.h>
#include <stdint.h>

#include <capstone/capstone.h>

#include "x86/x86_disasm.h"

/* The 16 general purpose registers in their encoding order (ModRM/REX numbers). */
enum x86_gpr {
	X86_GPR_AX, X86_GPR_CX, X86_GPR_DX, X86_GPR_BX, X86_GPR_SP, X86_GPR_BP, X86_GPR_SI,
	X86_GPR_DI, X86_GPR_8, X86_GPR_9, X86_GPR_10, X86_GPR_11, X86_GPR_12, X86_GPR_13,
	X86_GPR_14, X86_GPR_15, X86_GPR_COUNT,
};

/* The general purpose register reg is part of (enum x86_gpr), and its width in bytes (width may
 * be NULL); -1 for any other register. */
int x86_gpr_of(x86_reg reg, uint8_t *width);
/* The DWARF number (enum dwarf_reg, bpf/abi/unwind_abi.h) of the general purpose register reg
 * is part of, any width; -1 for any other register. */
int x86_gpr_dwarf(x86_reg reg);
/* A mask of enum x86_gpr as a mask of DWARF numbers. */
uint32_t x86_dwarf_mask(uint32_t gprs);

/* Operand i of a two-operand instruction, or NULL. */
const cs_x86_op *x86_operand(const cs_insn *insn, unsigned i);
/* A register operand of 4 or 8 bytes: its enum x86_gpr, or -1. */
int x86_reg_operand(const cs_x86_op *op, uint8_t *width);
/* A memory operand [base + disp] (no index, no segment): the base's enum x86_gpr, or -1 (also
 * for RIP-relative ones). */
int x86_simple_mem(const cs_x86_op *op, int64_t *disp);
/* An immediate operand as the signed value of its width (capstone gives 32-bit immediates of
 * dword moves zero-extended). */
bool x86_imm_operand(const cs_x86_op *op, uint8_t width, int64_t *value);

/* Whether the decoded instruction is a call. */
bool x86_is_call(const struct x86_disasm *d);
/* A direct jmp/jcc/call: its target. */
bool x86_direct_target(const cs_insn *insn, uint64_t *target);
/* The general purpose registers the decoded instruction writes, as a mask of enum x86_gpr in
 * *gprs; when capstone cannot tell, its error, and *gprs has all of them. */
cs_err x86_written_gprs(const struct x86_disasm *d, uint32_t *gprs);

#endif
