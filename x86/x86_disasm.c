/* SPDX-License-Identifier: MIT */
/* x86_disasm.c - capstone over x86_64 code: function bounds from the CFI, the decoder and its
 * cursor, operand helpers, and the executable section holding an address. */
#include "x86/x86_disasm.h"

#include "unwind/elf_image.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/abi/unwind_abi.h"
#include "lib/log.h"
#include "lib/u64_array.h"

/* ---- function bounds */

static bool is_function_start(const struct cfi_table *cfi, uint64_t addr, size_t *index)
{
	size_t lo = u64_lower_bound(cfi->function_starts, cfi->function_count, addr);
	if (lo < cfi->function_count && cfi->function_starts[lo] == addr) {
		*index = lo;
		return true;
	}
	return false;
}

bool x86_fn_end(const struct cfi_table *cfi, uint64_t start, uint64_t *end)
{
	size_t i;
	if (!cfi || !cfi->function_starts || !is_function_start(cfi, start, &i))
		return false;
	uint64_t limit = i + 1 < cfi->function_count ? cfi->function_starts[i + 1] : UINT64_MAX;
	const struct cfi_row *row = cfi_table_lookup(cfi, start);
	if (!row || row->rule.cfa_type == CFA_GAP)
		return false;
	for (size_t r = (size_t)(row - cfi->rows) + 1; r < cfi->count; r++) {
		const struct cfi_row *next = &cfi->rows[r];
		if (next->pc >= limit)
			break;
		if (next->rule.cfa_type == CFA_GAP) {
			limit = next->pc;
			break;
		}
	}
	if (limit == UINT64_MAX || limit <= start)
		return false;
	*end = limit;
	return true;
}

bool x86_fn_bounds(const struct cfi_table *cfi, uint64_t addr, uint64_t *start, uint64_t *end)
{
	if (!cfi || !cfi->function_starts || cfi->function_count == 0)
		return false;
	size_t lo = u64_upper_bound(cfi->function_starts, cfi->function_count, addr);
	if (lo == 0)
		return false;
	*start = cfi->function_starts[lo - 1];
	return x86_fn_end(cfi, *start, end) && addr < *end;
}

/* ---- capstone */

int x86_disasm_open(struct x86_disasm *d)
{
	memset(d, 0, sizeof(*d));
	cs_err err = cs_open(CS_ARCH_X86, CS_MODE_64, &d->handle);
	if (err != CS_ERR_OK) {
		lp_warn("capstone: cs_open: %s", cs_strerror(err));
		return -ENOSYS;
	}
	err = cs_option(d->handle, CS_OPT_DETAIL, CS_OPT_ON);
	if (err == CS_ERR_OK) {
		d->insn = cs_malloc(d->handle);
		if (!d->insn)
			err = CS_ERR_MEM;
	}
	if (err != CS_ERR_OK) {
		lp_warn("capstone: %s", cs_strerror(err));
		cs_close(&d->handle);
		return err == CS_ERR_MEM ? -ENOMEM : -ENOSYS;
	}
	return 0;
}

void x86_disasm_close(struct x86_disasm *d)
{
	if (d->insn)
		cs_free(d->insn, 1);
	if (d->handle)
		cs_close(&d->handle);
	memset(d, 0, sizeof(*d));
}

bool x86_cursor_at(const struct x86_code *code, uint64_t start, uint64_t end, struct x86_cursor *c)
{
	if (start < code->addr || end <= start || start - code->addr > code->size ||
	    end - code->addr > code->size)
		return false;
	c->p = code->bytes + (start - code->addr);
	c->left = (size_t)(end - start);
	c->addr = start;
	return true;
}

enum x86_decoded x86_next_insn(struct x86_disasm *d, struct x86_cursor *c)
{
	if (c->left == 0)
		return X86_DECODED_END;
	if (cs_disasm_iter(d->handle, &c->p, &c->left, &c->addr, d->insn))
		return X86_DECODED_INSN;
	c->p++;
	c->left--;
	c->addr++;
	return X86_DECODED_BAD;
}

uint64_t x86_mem_address(const cs_insn *insn, const cs_x86_op *op)
{
	if (op->type != X86_OP_MEM)
		return 0;
	if (op->mem.base == X86_REG_RIP)
		return insn->address + insn->size + (uint64_t)op->mem.disp;
	if (op->mem.base == X86_REG_INVALID && op->mem.index != X86_REG_INVALID && op->mem.disp > 0)
		return (uint64_t)op->mem.disp;
	return 0;
}

bool x86_code_section_at(const struct elf_image *img, uint64_t addr, struct x86_code *code)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(img->elf, scn)) != NULL) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_PROGBITS ||
		    !(shdr.sh_flags & SHF_EXECINSTR) || addr < shdr.sh_addr ||
		    addr - shdr.sh_addr >= shdr.sh_size)
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf || data->d_size == 0)
			return false;
		*code = (struct x86_code){.addr = shdr.sh_addr, .bytes = data->d_buf, .size = data->d_size};
		return true;
	}
	return false;
}
