/* SPDX-License-Identifier: MIT */
/* x86_disasm.h - capstone disassembly of x86_64 code, shared by both runtimes' detection
 * (runtime/puc/, runtime/luajit/): the executable section holding an address, function bounds in
 * stripped files, a decoder and a cursor over a range of code, memory operand addresses
 * (x86_operands.h says what other operands are).
 * Input is hostile: every address is checked against the code given. */
#ifndef LUA_PERF_X86_DISASM_H
#define LUA_PERF_X86_DISASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <capstone/capstone.h>

#include "unwind/cfi_compile.h"

/* One executable section's bytes (owned by the caller; libelf data). */
struct x86_code {
	uint64_t addr;
	const uint8_t *bytes;
	size_t size;
};

/* The executable section of img holding addr; false when none does. */
struct elf_image;
bool x86_code_section_at(const struct elf_image *img, uint64_t addr, struct x86_code *code);

/* An x86_64 decoder with instruction details on, and one instruction buffer. */
struct x86_disasm {
	csh handle;
	cs_insn *insn;
};

/* What decoding the next instruction gave: one in d->insn, an undecodable byte, or the end. */
enum x86_decoded { X86_DECODED_INSN, X86_DECODED_BAD, X86_DECODED_END };

/* Where decoding goes on: the bytes left of a range of code. */
struct x86_cursor {
	const uint8_t *p;
	size_t left;
	uint64_t addr;
};

/* 0, -ENOSYS (capstone failed, with a warning) or -ENOMEM. */
int x86_disasm_open(struct x86_disasm *d);
void x86_disasm_close(struct x86_disasm *d);
/* A cursor over [start, end) of code; false when that range is not inside the code. */
bool x86_cursor_at(const struct x86_code *code, uint64_t start, uint64_t end, struct x86_cursor *c);
/* Decode the next instruction into d->insn; an undecodable byte is skipped (X86_DECODED_BAD), so
 * every loop over a cursor ends. */
enum x86_decoded x86_next_insn(struct x86_disasm *d, struct x86_cursor *c);

/* The x86 details of a decoded instruction (the decoder has details on). */
static inline const cs_x86 *x86_of(const cs_insn *insn) { return &insn->detail->x86; }

/* The absolute address a memory operand names: RIP-relative, or a bare displacement indexed by a
 * register (non-PIC tables: jmp [rax*8 + table]). 0 when neither. */
uint64_t x86_mem_address(const cs_insn *insn, const cs_x86_op *op);

/* [start, *end) of the function starting at start, without symbols: start must be an FDE start
 * (cfi->function_starts) covered by rows; end is the next FDE start or the CFA_GAP row ending the
 * FDE before alignment padding, whichever comes first. */
bool x86_fn_end(const struct cfi_table *cfi, uint64_t start, uint64_t *end);
/* The function (FDE) holding addr: [*start, *end), its end as x86_fn_end says. */
bool x86_fn_bounds(const struct cfi_table *cfi, uint64_t addr, uint64_t *start, uint64_t *end);

#endif
