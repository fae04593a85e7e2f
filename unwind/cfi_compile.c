/* SPDX-License-Identifier: MIT */
/* cfi_compile.c - compile .eh_frame / .debug_frame into struct cfi_row tables.
 *
 * libdwarf interprets the CFA programs. It does not parse the ELF file itself: the two frame
 * sections are read through libelf (elf_image, bounds-checked) and handed to libdwarf through its
 * object access interface (unwind/frame_sections.c), so libdwarf only ever sees section contents.
 *
 * Rows are produced per FDE: libdwarf decodes the FDE program once
 * (dwarf_expand_frame_instructions) to find where each row starts, and computes the CFA rule and
 * the register rules of each row with one dwarf_get_fde_info_for_all_regs3 call. (Walking the
 * rows with has_more_rows/subsequent_pc from dwarf_get_fde_info_for_cfa_reg3_b needs a second
 * interpretation of the FDE program per row, and each interpretation copies libdwarf's
 * 191-column register table several times: that was 1.7x slower in total.)
 * Each of those calls interprets the program from its start again, so an FDE costs its row count
 * times its program length: FDEs over the limits of unwind/fde_cost.h (per FDE and per file)
 * become gaps, noted for the file's one warning.
 *
 * Coverage: .eh_frame FDEs first (sorted by start address; where two overlap, the one that starts
 * first keeps the overlap), then .debug_frame FDEs fill only the ranges .eh_frame leaves
 * uncovered. The resulting disjoint pieces are emitted in address order, with CFA_GAP rows where
 * one piece ends and the next does not start, and a final CFA_GAP row. */
#include "unwind/cfi_compile.h"

#include <errno.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <libdwarf/dwarf.h>
#include <libdwarf/libdwarf.h>

#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/u64_array.h"
#include "unwind/cfa_scan.h"
#include "unwind/fde_cost.h"
#include "unwind/frame_sections.h"

/* ---- FDE references and coverage pieces */

struct fde_ref {
	Dwarf_Fde fde;
	uint64_t lo;
	uint64_t hi;            /* exclusive */
	size_t order;           /* position in libdwarf's list: ties resolve by it */
	enum frame_source source;
};

struct piece {
	const struct fde_ref *ref;
	uint64_t start;
	uint64_t end;
};

struct build_ctx {
	const struct elf_image *img;
	const struct frame_object *fo;
	Dwarf_Debug dbg;
	struct fde_ref *refs[SRC_COUNT];
	size_t ref_count[SRC_COUNT];
	struct piece *pieces;
	size_t piece_count;
	size_t piece_capacity;
	struct cfi_table *out;
	struct cfi_problem *problem;
	struct fde_budget budget; /* steps left for the file (unwind/fde_cost.h) */
};

static void log_dwarf_error(Dwarf_Debug dbg, Dwarf_Error err, const char *what)
{
	lp_debug("libdwarf: %s: %s", what, err ? dwarf_errmsg(err) : "unknown error");
	if (err)
		dwarf_dealloc(dbg, err, DW_DLA_ERROR);
}

static bool range_in_exec_segment(const struct elf_image *img, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < img->load_count; i++) {
		const struct elf_segment *seg = &img->loads[i];
		if ((seg->flags & PF_X) && lo >= seg->vaddr && hi - seg->vaddr <= seg->memsz)
			return true;
	}
	return false;
}

static int compare_refs(const void *a, const void *b)
{
	const struct fde_ref *x = a, *y = b;
	if (x->lo != y->lo)
		return x->lo < y->lo ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/* Record the usable FDEs of one list: non-empty, no wrap-around, inside executable code. */
static int collect_refs(struct build_ctx *ctx, enum frame_source source, Dwarf_Fde *fdes,
			Dwarf_Signed count)
{
	if (count <= 0)
		return 0;
	struct fde_ref *refs = calloc((size_t)count, sizeof(*refs));
	if (!refs)
		return -ENOMEM;
	size_t n = 0;
	for (Dwarf_Signed i = 0; i < count; i++) {
		Dwarf_Addr lo = 0;
		Dwarf_Unsigned len = 0, fde_len = 0;
		Dwarf_Ptr fde_bytes = NULL;
		Dwarf_Off cie_off = 0, fde_off = 0;
		Dwarf_Signed cie_index = 0;
		Dwarf_Error err = NULL;
		ctx->out->stats.fdes++;
		int res = dwarf_get_fde_range(fdes[i], &lo, &len, &fde_bytes, &fde_len, &cie_off, &cie_index,
					      &fde_off, &err);
		if (res != DW_DLV_OK) {
			log_dwarf_error(ctx->dbg, err, "dwarf_get_fde_range");
			continue;
		}
		if (len == 0 || lo > UINT64_MAX - len || !range_in_exec_segment(ctx->img, lo, lo + len))
			continue;
		refs[n++] = (struct fde_ref){.fde = fdes[i], .lo = lo, .hi = lo + len, .order = (size_t)i,
					     .source = source};
	}
	qsort(refs, n, sizeof(*refs), compare_refs);
	ctx->refs[source] = refs;
	ctx->ref_count[source] = n;
	return 0;
}

static int add_piece(struct build_ctx *ctx, const struct fde_ref *ref, uint64_t start, uint64_t end)
{
	if (start >= end)
		return 0;
	struct piece *pieces = grow_array(ctx->pieces, &ctx->piece_capacity, ctx->piece_count + 1,
					  sizeof(*pieces), 64);
	if (!pieces)
		return -ENOMEM;
	ctx->pieces = pieces;
	ctx->pieces[ctx->piece_count++] = (struct piece){.ref = ref, .start = start, .end = end};
	return 0;
}

/* .eh_frame: FDEs sorted by start; an FDE overlapping an earlier one loses the overlap. */
static int cover_eh_frame(struct build_ctx *ctx)
{
	uint64_t covered_end = 0;
	for (size_t i = 0; i < ctx->ref_count[SRC_EH_FRAME]; i++) {
		const struct fde_ref *ref = &ctx->refs[SRC_EH_FRAME][i];
		uint64_t start = ref->lo > covered_end ? ref->lo : covered_end;
		int err = add_piece(ctx, ref, start, ref->hi);
		if (err)
			return err;
		if (ref->hi > covered_end)
			covered_end = ref->hi;
	}
	return 0;
}

/* .debug_frame: only what neither .eh_frame (pieces[0, eh_count), sorted and disjoint) nor an
 * earlier .debug_frame FDE covers. Both walks advance monotonically: linear time. */
static int cover_debug_frame(struct build_ctx *ctx, size_t eh_count)
{
	size_t next_eh = 0;
	uint64_t debug_end = 0;
	for (size_t i = 0; i < ctx->ref_count[SRC_DEBUG_FRAME]; i++) {
		const struct fde_ref *ref = &ctx->refs[SRC_DEBUG_FRAME][i];
		uint64_t cur = ref->lo > debug_end ? ref->lo : debug_end;
		while (next_eh < eh_count && ctx->pieces[next_eh].end <= cur)
			next_eh++;
		size_t before = ctx->piece_count;
		for (size_t k = next_eh; k < eh_count && ctx->pieces[k].start < ref->hi && cur < ref->hi; k++) {
			uint64_t eh_start = ctx->pieces[k].start, eh_end = ctx->pieces[k].end;
			int err = add_piece(ctx, ref, cur, eh_start < ref->hi ? eh_start : ref->hi);
			if (err)
				return err;
			if (eh_end > cur)
				cur = eh_end;
		}
		int err = add_piece(ctx, ref, cur, ref->hi);
		if (err)
			return err;
		if (ctx->piece_count > before)
			ctx->out->stats.debug_frame_fdes++;
		if (ref->hi > debug_end)
			debug_end = ref->hi;
	}
	return 0;
}

static int compare_pieces(const void *a, const void *b)
{
	const struct piece *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return 0;
}

/* ---- DWARF expressions of DW_CFA_def_cfa_expression (DWARF 5, section 2.5) */

struct expr_reader {
	const uint8_t *p;
	const uint8_t *end;
};

static bool expr_u8(struct expr_reader *r, uint8_t *out)
{
	if (r->p >= r->end)
		return false;
	*out = *r->p++;
	return true;
}

/* Signed LEB128 (DWARF 5, section 7.6), at most 10 bytes for 64 bits. */
static bool expr_sleb(struct expr_reader *r, int64_t *out)
{
	uint64_t value = 0;
	unsigned shift = 0;
	uint8_t byte;
	do {
		if (shift >= 64 || !expr_u8(r, &byte))
			return false;
		value |= (uint64_t)(byte & 0x7f) << shift;
		shift += 7;
	} while (byte & 0x80);
	if (shift < 64 && (byte & 0x40))
		value |= ~0ull << shift;
	*out = (int64_t)value;
	return true;
}

static bool expr_expect(struct expr_reader *r, uint8_t op)
{
	uint8_t got;
	return expr_u8(r, &got) && got == op;
}

static bool expr_done(const struct expr_reader *r) { return r->p == r->end; }

/* DW_OP_bregN with N <= 16 (rip) and its SLEB128 offset. */
static bool expr_breg(struct expr_reader *r, uint8_t *reg, int64_t *off)
{
	uint8_t op;
	if (!expr_u8(r, &op) || op < DW_OP_breg0 || op > DW_OP_breg0 + DW_RIP)
		return false;
	*reg = (uint8_t)(op - DW_OP_breg0);
	return expr_sleb(r, off);
}

/* binutils elf_x86_64_eh_frame_plt / _non_lazy_plt: cfa = rsp + N + ((rip & 15) >= K) << 3. */
static bool match_plt_expression(const uint8_t *expr, size_t len, struct unwind_rule *rule)
{
	struct expr_reader r = {expr, expr + len};
	uint8_t reg, lit;
	int64_t rsp_off, rip_off;
	if (!expr_breg(&r, &reg, &rsp_off) || reg != DW_RSP || rsp_off < INT32_MIN || rsp_off > INT32_MAX)
		return false;
	if (!expr_breg(&r, &reg, &rip_off) || reg != DW_RIP || rip_off != 0)
		return false;
	if (!expr_expect(&r, DW_OP_lit15) || !expr_expect(&r, DW_OP_and))
		return false;
	if (!expr_u8(&r, &lit) || lit < DW_OP_lit0 || lit > DW_OP_lit31)
		return false;
	if (!expr_expect(&r, DW_OP_ge) || !expr_expect(&r, DW_OP_lit3) || !expr_expect(&r, DW_OP_shl) ||
	    !expr_expect(&r, DW_OP_plus) || !expr_done(&r))
		return false;
	rule->cfa_type = CFA_PLT;
	rule->cfa_reg = (uint8_t)(lit - DW_OP_lit0);
	rule->cfa_off = (int32_t)rsp_off;
	return true;
}

/* gcc's stack realignment (ix86_expand_prologue, DRAP): cfa = *(reg + off), e.g. breg6 -8. */
static bool match_deref_expression(const uint8_t *expr, size_t len, struct unwind_rule *rule)
{
	struct expr_reader r = {expr, expr + len};
	uint8_t reg;
	int64_t off;
	if (!expr_breg(&r, &reg, &off) || reg == DW_RIP || off < INT32_MIN || off > INT32_MAX)
		return false;
	if (!expr_expect(&r, DW_OP_deref) || !expr_done(&r))
		return false;
	rule->cfa_type = CFA_DEREF_REG_OFF;
	rule->cfa_reg = reg;
	rule->cfa_off = (int32_t)off;
	return true;
}

/* ---- one row */

static const Dwarf_Half saved_reg_column[SREG_COUNT] = {
	[SREG_RBP] = DW_RBP, [SREG_RBX] = DW_RBX, [SREG_R12] = DW_R12, [SREG_R13] = DW_R13,
	[SREG_R14] = DW_R14, [SREG_R15] = DW_R15, [SREG_RA] = DW_RIP,
};

struct fde_info {
	const struct fde_ref *ref;
	Dwarf_Cie cie;
	Dwarf_Unsigned code_align;
	const struct frame_section *section; /* where expression blocks must lie */
	bool signal_frame;
	bool ra_column_ok;
	struct cfa_scan cie_scan;  /* of the CIE's initial instructions */
	size_t cie_bytes;          /* their length */
};

static bool block_in_section(const struct frame_section *s, const void *block, Dwarf_Signed len)
{
	uintptr_t b = (uintptr_t)block, start = (uintptr_t)s->data;
	return block && len > 0 && b >= start && (uint64_t)(b - start) <= s->size &&
	       (uint64_t)len <= s->size - (uint64_t)(b - start);
}

static void set_unsupported(struct unwind_rule *rule)
{
	memset(rule, 0, sizeof(*rule));
	rule->cfa_type = CFA_UNSUPPORTED;
}

static void cfa_from_dwarf(const struct fde_info *fi, Dwarf_Small value_type,
			   Dwarf_Signed offset_relevant, Dwarf_Signed reg, Dwarf_Signed off_or_len,
			   Dwarf_Ptr block, struct unwind_rule *rule)
{
	if (value_type == DW_EXPR_OFFSET && offset_relevant && reg >= 0 && reg < DW_RIP &&
	    off_or_len >= INT32_MIN && off_or_len <= INT32_MAX) {
		rule->cfa_type = CFA_REG_OFF;
		rule->cfa_reg = (uint8_t)reg;
		rule->cfa_off = (int32_t)off_or_len;
		return;
	}
	if (value_type == DW_EXPR_EXPRESSION && block_in_section(fi->section, block, off_or_len) &&
	    (match_plt_expression(block, (size_t)off_or_len, rule) ||
	     match_deref_expression(block, (size_t)off_or_len, rule)))
		return;
	rule->cfa_type = CFA_UNSUPPORTED;
}

/* DW_CFA_expression `DW_OP_breg6 N` alone: the register is saved at rbp + N (gcc's
 * stack-realigning prologues). */
static bool match_rbp_slot_expression(const struct fde_info *fi, Dwarf_Ptr block, Dwarf_Signed len,
				      int16_t *off_out)
{
	if (!block_in_section(fi->section, block, len))
		return false;
	struct expr_reader r = {.p = block, .end = (const uint8_t *)block + len};
	uint8_t reg;
	int64_t off;

	if (!expr_breg(&r, &reg, &off) || !expr_done(&r) || reg != DW_RBP || off < INT16_MIN ||
	    off > INT16_MAX)
		return false;
	*off_out = (int16_t)off;
	return true;
}

/* Map one register column onto reg_off. Returns false when the row cannot be represented. */
static bool reg_from_dwarf(const struct fde_info *fi, Dwarf_Half column,
			   const Dwarf_Regtable_Entry3 *e, int16_t *reg_off, bool *rbp_based)
{
	Dwarf_Small value_type = e->dw_value_type;
	Dwarf_Signed offset_relevant = e->dw_offset_relevant;
	Dwarf_Signed regnum = e->dw_regnum;
	Dwarf_Signed offset = (Dwarf_Signed)e->dw_offset_or_block_len;
	bool is_ra = column == DW_RIP;

	*rbp_based = false;
	if (value_type == DW_EXPR_EXPRESSION && !is_ra &&
	    match_rbp_slot_expression(fi, e->dw_block_ptr, offset, reg_off)) {
		*rbp_based = true;
		return true;
	}
	if (value_type == DW_EXPR_OFFSET && offset_relevant) {
		/* "saved at CFA+N": 0 and INT16_MIN are taken by REG_SAME / REG_UNDEFINED. */
		if (offset <= INT16_MIN || offset > INT16_MAX || offset == 0)
			return false;
		*reg_off = (int16_t)offset;
		return true;
	}
	if (value_type == DW_EXPR_OFFSET) {
		if (regnum == DW_FRAME_SAME_VAL || regnum == column) {
			*reg_off = REG_SAME;
			return true;
		}
		if (regnum == DW_FRAME_UNDEFINED_VAL) {
			*reg_off = REG_UNDEFINED;
			return true;
		}
	}
	/* register(R), val_offset, expression, val_expression: not evaluated. A callee-saved
	 * register becomes unknown; without the return address the row is unusable. */
	if (is_ra)
		return false;
	*reg_off = REG_UNDEFINED;
	return true;
}

/* The rule of the row of fi's FDE in effect at pc, from one interpretation of the FDE program
 * (dwarf_get_fde_info_for_all_regs3 returns the CFA rule and every column we ask for). */
static int compile_row(struct build_ctx *ctx, const struct fde_info *fi, uint64_t pc,
		       struct unwind_rule *rule)
{
	Dwarf_Regtable_Entry3 entries[DW_REG_COUNT];
	Dwarf_Regtable3 regs = {.rt3_reg_table_size = DW_REG_COUNT, .rt3_rules = entries};
	Dwarf_Addr row_pc = 0;
	Dwarf_Error err = NULL;
	if (dwarf_get_fde_info_for_all_regs3(fi->ref->fde, pc, &regs, &row_pc, &err) != DW_DLV_OK) {
		log_dwarf_error(ctx->dbg, err, "dwarf_get_fde_info_for_all_regs3");
		return -EINVAL;
	}
	memset(rule, 0, sizeof(*rule));
	const Dwarf_Regtable_Entry3 *cfa = &regs.rt3_cfa_rule;
	cfa_from_dwarf(fi, cfa->dw_value_type, cfa->dw_offset_relevant, cfa->dw_regnum,
		       (Dwarf_Signed)cfa->dw_offset_or_block_len, cfa->dw_block_ptr, rule);
	bool representable = rule->cfa_type != CFA_UNSUPPORTED && fi->ra_column_ok;
	for (int i = 0; i < SREG_COUNT && representable; i++) {
		bool rbp_based;

		representable = reg_from_dwarf(fi, saved_reg_column[i], &entries[saved_reg_column[i]],
					       &rule->reg_off[i], &rbp_based);
		if (rbp_based)
			rule->rbp_based |= (uint8_t)(1u << i);
	}
	if (!representable)
		set_unsupported(rule);
	return 0;
}

/* ---- output table */

static bool rules_equal(const struct unwind_rule *a, const struct unwind_rule *b)
{
	if (a->cfa_type != b->cfa_type || a->cfa_reg != b->cfa_reg || a->cfa_off != b->cfa_off ||
	    a->rbp_based != b->rbp_based)
		return false;
	for (int i = 0; i < SREG_COUNT; i++)
		if (a->reg_off[i] != b->reg_off[i])
			return false;
	return true;
}

/* Append a row, keeping pcs strictly increasing and adjacent rules distinct. */
static int push_row(struct cfi_table *t, uint64_t pc, const struct unwind_rule *rule)
{
	if (t->count == 0 && rule->cfa_type == CFA_GAP)
		return 0;
	if (t->count > 0) {
		struct cfi_row *last = &t->rows[t->count - 1];
		if (pc < last->pc)
			return -EINVAL; /* callers emit in address order; never reached */
		if (pc == last->pc) {
			last->rule = *rule;
			if (t->count > 1 && rules_equal(&t->rows[t->count - 2].rule, rule))
				t->count--;
			return 0;
		}
		if (rules_equal(&last->rule, rule))
			return 0;
	}
	struct cfi_row *rows = grow_array(t->rows, &t->capacity, t->count + 1, sizeof(*rows), 64);
	if (!rows)
		return -ENOMEM;
	t->rows = rows;
	t->rows[t->count++] = (struct cfi_row){.pc = pc, .rule = *rule};
	return 0;
}

static int push_gap(struct cfi_table *t, uint64_t pc)
{
	struct unwind_rule gap;
	memset(&gap, 0, sizeof(gap));
	gap.cfa_type = CFA_GAP;
	return push_row(t, pc, &gap);
}

/* An FDE whose CIE and own program nest DW_CFA_remember_state deeper than this is not given to
 * libdwarf (its range becomes a gap): see unwind/cfa_scan.h for why. Compilers nest it once or
 * twice. */
#define MAX_REMEMBER_DEPTH 16

/* Whether the len bytes at p lie in the section libdwarf read them from. libdwarf derives a CIE's
 * or FDE's instruction length from the entry's own length field, which a damaged file can make
 * run past the section, or wrap (fuzz_luajit_detect found a CIE whose length came out as
 * -8). */
static bool within_section(const struct frame_section *section, const void *p, uint64_t len)
{
	uintptr_t start = (uintptr_t)section->data, at = (uintptr_t)p;

	return section->data && at >= start && at - start <= section->size &&
	       len <= section->size - (at - start);
}

/* CIE properties: 'S' in a "z" augmentation marks a signal frame (LSB Core 5.0, "Exception
 * Frames"; GCC's unwind-dw2.c), and the return address column must be rip (16). */
static int describe_fde(struct build_ctx *ctx, const struct fde_ref *ref, struct fde_info *fi)
{
	Dwarf_Cie cie = NULL;
	Dwarf_Error err = NULL;
	if (dwarf_get_cie_of_fde(ref->fde, &cie, &err) != DW_DLV_OK) {
		log_dwarf_error(ctx->dbg, err, "dwarf_get_cie_of_fde");
		return -EINVAL;
	}
	Dwarf_Unsigned cie_bytes = 0, code_align = 0, initial_len = 0;
	Dwarf_Small version = 0;
	char *augmentation = NULL;
	Dwarf_Signed data_align = 0;
	Dwarf_Half ra_reg = 0, offset_size = 0;
	Dwarf_Ptr initial = NULL;
	if (dwarf_get_cie_info_b(cie, &cie_bytes, &version, &augmentation, &code_align, &data_align,
				 &ra_reg, &initial, &initial_len, &offset_size, &err) != DW_DLV_OK) {
		log_dwarf_error(ctx->dbg, err, "dwarf_get_cie_info_b");
		return -EINVAL;
	}
	fi->ref = ref;
	fi->cie = cie;
	fi->code_align = code_align;
	fi->section = &ctx->fo->sections[ctx->fo->index_of[ref->source]];
	fi->signal_frame = augmentation && augmentation[0] == 'z' && strchr(augmentation, 'S');
	fi->ra_column_ok = ra_reg == DW_RIP;
	if (!within_section(fi->section, initial, initial_len)) {
		cfi_problem_note(ctx->problem, "%s: the CIE of the FDE at 0x%llx has instructions past "
				 "the section's end", fi->section->name, (unsigned long long)ref->lo);
		return -EINVAL;
	}
	fi->cie_bytes = (size_t)initial_len;
	cfa_scan_program(initial, fi->cie_bytes, &fi->cie_scan);
	return 0;
}

/* Take steps from the file's budget; when too few are left, the FDE is left out. */
static bool take_steps(struct build_ctx *ctx, const struct fde_info *fi, uint64_t steps)
{
	if (fde_budget_take(&ctx->budget, steps))
		return true;
	cfi_problem_note(ctx->problem, "%s: compiling the FDE at 0x%llx would exceed the steps accepted "
			 "for one file", fi->section->name, (unsigned long long)fi->ref->lo);
	return false;
}

/* Whether libdwarf may be given the FDE's program of len bytes at instrs: not too deep in
 * DW_CFA_remember_state, not too long, its rows (at most one per advance, and the first) not too
 * costly, and its decoding within the file's budget; all read from the bytes, before libdwarf
 * decodes them (dwarf_expand_frame_instructions mallocs each instruction it decodes). *steps:
 * the steps of one interpretation of the CIE's and the FDE's instructions. */
static bool program_accepted(struct build_ctx *ctx, const struct fde_info *fi, const uint8_t *instrs,
			     size_t len, uint64_t *steps)
{
	struct cfa_scan scan;
	cfa_scan_program(instrs, len, &scan);
	size_t depth = scan.remember_depth, cie_depth = fi->cie_scan.remember_depth;
	if (depth > MAX_REMEMBER_DEPTH || cie_depth > MAX_REMEMBER_DEPTH - depth) {
		cfi_problem_note(ctx->problem, "%s: the FDE at 0x%llx nests DW_CFA_remember_state more than "
				 "%d deep", fi->section->name, (unsigned long long)fi->ref->lo,
				 MAX_REMEMBER_DEPTH);
		return false;
	}
	if (len > FDE_PROGRAM_MAX || fi->cie_bytes > FDE_PROGRAM_MAX - len) {
		cfi_problem_note(ctx->problem, "%s: the FDE at 0x%llx has %llu bytes of CFA instructions, "
				 "more than the %u accepted", fi->section->name,
				 (unsigned long long)fi->ref->lo, (unsigned long long)len + fi->cie_bytes,
				 FDE_PROGRAM_MAX);
		return false;
	}
	*steps = cfa_program_steps(len, &scan) + cfa_program_steps(fi->cie_bytes, &fi->cie_scan);
	uint64_t most = fde_steps(*steps, scan.advance_count + 1);
	if (most > FDE_STEPS_MAX) {
		cfi_problem_note(ctx->problem, "%s: the FDE at 0x%llx would take up to %llu steps to compile, "
				 "more than the %llu accepted", fi->section->name, (unsigned long long)fi->ref->lo,
				 (unsigned long long)most, (unsigned long long)FDE_STEPS_MAX);
		return false;
	}
	return take_steps(ctx, fi, *steps);
}

/* Row start addresses of an FDE: where its advance instructions lead (DWARF 5, 6.4.2.1), from
 * libdwarf's decoding of the FDE program. *starts is malloc'ed; the first entry is ref->lo.
 * *steps: the steps of computing one row (unwind/fde_cost.h). */
static int row_starts(struct build_ctx *ctx, const struct fde_info *fi, uint64_t **starts, size_t *count,
		      uint64_t *steps)
{
	Dwarf_Ptr instrs = NULL;
	Dwarf_Unsigned len = 0;
	Dwarf_Frame_Op *ops = NULL;
	Dwarf_Signed op_count = 0;
	Dwarf_Error err = NULL;
	*starts = NULL;
	*count = 0;
	if (dwarf_get_fde_instr_bytes(fi->ref->fde, &instrs, &len, &err) != DW_DLV_OK) {
		log_dwarf_error(ctx->dbg, err, "dwarf_get_fde_instr_bytes");
		return -EINVAL;
	}
	if (!within_section(fi->section, instrs, len)) {
		cfi_problem_note(ctx->problem, "%s: the FDE at 0x%llx has instructions past the "
				 "section's end", fi->section->name, (unsigned long long)fi->ref->lo);
		return -EINVAL;
	}
	if (!program_accepted(ctx, fi, instrs, (size_t)len, steps))
		return -E2BIG;
	if (len > 0 &&
	    dwarf_expand_frame_instructions(fi->cie, instrs, len, &ops, &op_count, &err) != DW_DLV_OK) {
		log_dwarf_error(ctx->dbg, err, "dwarf_expand_frame_instructions");
		return -EINVAL;
	}
	uint64_t *out = malloc(((size_t)(op_count > 0 ? op_count : 0) + 1) * sizeof(*out));
	if (!out) {
		dwarf_dealloc(ctx->dbg, ops, DW_DLA_FRAME_BLOCK);
		return -ENOMEM;
	}
	size_t n = 0;
	uint64_t loc = fi->ref->lo;
	out[n++] = loc;
	for (Dwarf_Signed i = 0; i < op_count; i++) {
		const Dwarf_Frame_Op *op = &ops[i];
		bool advance = op->fp_base_op == (DW_CFA_advance_loc >> 6) ||
			       (op->fp_base_op == 0 && (op->fp_extended_op == DW_CFA_advance_loc1 ||
							op->fp_extended_op == DW_CFA_advance_loc2 ||
							op->fp_extended_op == DW_CFA_advance_loc4 ||
							op->fp_extended_op == DW_CFA_MIPS_advance_loc8));
		if (advance)
			loc += op->fp_offset * fi->code_align;
		else if (op->fp_base_op == 0 && op->fp_extended_op == DW_CFA_set_loc)
			loc = op->fp_offset;
		else
			continue;
		out[n++] = loc;
	}
	dwarf_dealloc(ctx->dbg, ops, DW_DLA_FRAME_BLOCK);
	*starts = out;
	*count = n;
	return 0;
}

/* How many rows emit_piece computes for piece: the one in effect at its start, then one per
 * distinct later start inside it. */
static size_t rows_in_piece(const uint64_t *starts, size_t count, const struct piece *piece)
{
	size_t rows = 1;
	uint64_t pc = piece->start;
	for (size_t i = 1; i < count && starts[i] < piece->end; i++) {
		if (starts[i] > pc) {
			pc = starts[i];
			rows++;
		}
	}
	return rows;
}

static int emit_piece(struct build_ctx *ctx, const struct piece *piece)
{
	struct cfi_table *t = ctx->out;
	struct fde_info fi;
	if (describe_fde(ctx, piece->ref, &fi) != 0)
		return push_gap(t, piece->start);
	struct unwind_rule rule;
	if (fi.signal_frame) {
		memset(&rule, 0, sizeof(rule));
		rule.cfa_type = CFA_SIGNAL;
		return push_row(t, piece->start, &rule);
	}
	uint64_t *starts, steps;
	size_t count;
	int err = row_starts(ctx, &fi, &starts, &count, &steps);
	if (err)
		return err == -ENOMEM ? err : push_gap(t, piece->start);
	if (!take_steps(ctx, &fi, fde_steps(steps, rows_in_piece(starts, count, piece)))) {
		free(starts);
		return push_gap(t, piece->start);
	}
	/* The piece's first row is the one in effect at its start; then every row starting inside. */
	uint64_t pc = piece->start;
	for (size_t i = 0; i < count && !err; i++) {
		if (i > 0) {
			if (starts[i] <= pc)
				continue;
			if (starts[i] >= piece->end)
				break;
			pc = starts[i];
		}
		if (compile_row(ctx, &fi, pc, &rule) != 0) {
			err = push_gap(t, pc);
			break;
		}
		err = push_row(t, pc, &rule);
	}
	free(starts);
	return err;
}

/* Pieces come sorted by start: an FDE's first piece starts at its own start. */
static int push_function_start(struct cfi_table *t, const struct piece *piece, size_t *capacity)
{
	if (piece->start != piece->ref->lo)
		return 0;
	uint64_t *starts = grow_array(t->function_starts, capacity, t->function_count + 1,
				      sizeof(*starts), 64);
	if (!starts)
		return -ENOMEM;
	t->function_starts = starts;
	t->function_starts[t->function_count++] = piece->start;
	return 0;
}

static int emit_table(struct build_ctx *ctx)
{
	size_t starts_capacity = 0;

	if (ctx->piece_count == 0)
		return 0;
	qsort(ctx->pieces, ctx->piece_count, sizeof(*ctx->pieces), compare_pieces);
	uint64_t last_end = 0;
	for (size_t i = 0; i < ctx->piece_count; i++) {
		const struct piece *piece = &ctx->pieces[i];
		int err = 0;
		if (i > 0 && piece->start > last_end)
			err = push_gap(ctx->out, last_end);
		if (!err)
			err = push_function_start(ctx->out, piece, &starts_capacity);
		if (!err)
			err = emit_piece(ctx, piece);
		if (err)
			return err;
		last_end = piece->end;
	}
	return push_gap(ctx->out, last_end);
}

static void count_unsupported(struct cfi_table *t)
{
	t->stats.unsupported_rows = 0;
	for (size_t i = 0; i < t->count; i++)
		if (t->rows[i].rule.cfa_type == CFA_UNSUPPORTED)
			t->stats.unsupported_rows++;
}

/* ---- libdwarf session */

static void configure_frame_rules(Dwarf_Debug dbg)
{
	/* Columns without a rule read as "same value", the x86_64 convention for callee-saved
	 * registers (psABI 3.6.2 / gcc); libdwarf's compiled-in default may differ per build. */
	dwarf_set_frame_rule_initial_value(dbg, DW_FRAME_SAME_VAL);
	dwarf_set_frame_same_value(dbg, DW_FRAME_SAME_VAL);
	dwarf_set_frame_undefined_value(dbg, DW_FRAME_UNDEFINED_VAL);
	dwarf_set_frame_cfa_value(dbg, DW_FRAME_CFA_COL3);
}

struct fde_list {
	Dwarf_Cie *cies;
	Dwarf_Signed cie_count;
	Dwarf_Fde *fdes;
	Dwarf_Signed fde_count;
};

/* Returns 0 (possibly empty list) or -EINVAL when libdwarf rejects the section. */
static int load_fde_list(Dwarf_Debug dbg, enum frame_source source, struct fde_list *list)
{
	Dwarf_Error err = NULL;
	int res = source == SRC_EH_FRAME
		? dwarf_get_fde_list_eh(dbg, &list->cies, &list->cie_count, &list->fdes, &list->fde_count, &err)
		: dwarf_get_fde_list(dbg, &list->cies, &list->cie_count, &list->fdes, &list->fde_count, &err);
	if (res == DW_DLV_OK)
		return 0;
	memset(list, 0, sizeof(*list));
	if (res == DW_DLV_NO_ENTRY)
		return 0;
	log_dwarf_error(dbg, err, source == SRC_EH_FRAME ? ".eh_frame" : ".debug_frame");
	return -EINVAL;
}

static void free_fde_list(Dwarf_Debug dbg, struct fde_list *list)
{
	if (list->cies || list->fdes)
		dwarf_fde_cie_list_dealloc(dbg, list->cies, list->cie_count, list->fdes, list->fde_count);
	memset(list, 0, sizeof(*list));
}

static bool image_is_x86_64(const struct elf_image *img)
{
	GElf_Ehdr ehdr;
	return img->elf && gelf_getehdr(img->elf, &ehdr) && ehdr.e_ident[EI_CLASS] == ELFCLASS64 &&
	       ehdr.e_ident[EI_DATA] == ELFDATA2LSB && ehdr.e_machine == EM_X86_64;
}

static int compile_with_dwarf(struct build_ctx *ctx)
{
	struct fde_list lists[SRC_COUNT];
	memset(lists, 0, sizeof(lists));
	int failures = 0, err = 0;
	for (int s = 0; s < SRC_COUNT; s++) {
		if (ctx->fo->index_of[s] == 0)
			continue;
		if (load_fde_list(ctx->dbg, (enum frame_source)s, &lists[s]) != 0) {
			cfi_problem_note(ctx->problem, "%s is malformed",
					 ctx->fo->sections[ctx->fo->index_of[s]].name);
			failures++;
			continue;
		}
		err = collect_refs(ctx, (enum frame_source)s, lists[s].fdes, lists[s].fde_count);
		if (err)
			break;
	}
	if (!err)
		err = cover_eh_frame(ctx);
	if (!err)
		err = cover_debug_frame(ctx, ctx->piece_count);
	if (!err)
		err = emit_table(ctx);
	if (!err && failures > 0 && ctx->out->count == 0)
		err = -EINVAL;
	for (int s = 0; s < SRC_COUNT; s++)
		free_fde_list(ctx->dbg, &lists[s]);
	return err;
}

/* The table of the frame sections in fo. */
static int compile_frame_object(struct frame_object *fo, const struct elf_image *img, uint64_t file_steps,
				struct cfi_problem *problem, struct cfi_table *out)
{
	Dwarf_Obj_Access_Interface iface = {.object = fo, .methods = &frame_object_methods};
	Dwarf_Debug dbg = NULL;
	Dwarf_Error derr = NULL;
	int res = dwarf_object_init_b(&iface, NULL, NULL, DW_GROUPNUMBER_ANY, &dbg, &derr);
	if (res == DW_DLV_NO_ENTRY)
		return 0;
	if (res != DW_DLV_OK) {
		log_dwarf_error(NULL, derr, "dwarf_object_init_b");
		cfi_problem_note(problem, "its frame sections are unreadable");
		return -EINVAL;
	}
	configure_frame_rules(dbg);

	struct build_ctx ctx = {.img = img, .fo = fo, .dbg = dbg, .out = out, .problem = problem};
	fde_budget_init(&ctx.budget, file_steps);
	int err = compile_with_dwarf(&ctx);
	for (int s = 0; s < SRC_COUNT; s++)
		free(ctx.refs[s]);
	free(ctx.pieces);
	if (dwarf_object_finish(dbg, &derr) != DW_DLV_OK)
		log_dwarf_error(NULL, derr, "dwarf_object_finish");
	if (err) {
		cfi_table_free(out);
		return err;
	}
	count_unsupported(out);
	return 0;
}

/* The one warning of a file whose table could not be compiled, or was compiled without a part of
 * its call frame information; err and the table as cfi_table_build returns them. */
static int warn_once(const struct elf_image *img, const struct cfi_problem *problem, int err,
		     struct cfi_table *out)
{
	if (!err && out->count > 0) {
		if (cfi_problem_found(problem)) {
			lp_warn("%s: %s: ignored, its unwind table is built from the rest", img->name, problem->text);
			out->stats.partial = true;
		}
		return 0;
	}
	if (!err && !cfi_problem_found(problem))
		return 0; /* no call frame information at all: nothing is damaged */
	if (cfi_problem_found(problem))
		lp_warn("%s: %s: no unwind table, its frames end there", img->name, problem->text);
	else
		lp_warn("%s: cannot compile its unwind table (%s): its frames end there", img->name,
			strerror(-err));
	cfi_table_free(out);
	return err ? err : -EINVAL;
}

int cfi_table_build(const struct elf_image *img, struct cfi_table *out)
{
	return cfi_table_build_within(img, FILE_STEPS_MAX, out);
}

int cfi_table_build_within(const struct elf_image *img, uint64_t file_steps, struct cfi_table *out)
{
	struct cfi_problem problem;
	int err = 0;

	memset(out, 0, sizeof(*out));
	cfi_problem_init(&problem, img->name);
	if (!image_is_x86_64(img)) {
		cfi_problem_note(&problem, "not an x86-64 file");
		return warn_once(img, &problem, -ENOTSUP, out);
	}
	struct frame_object fo;
	frame_object_collect(&fo, img, &problem);
	if (fo.count > 1)
		err = compile_frame_object(&fo, img, file_steps, &problem, out);
	frame_object_free(&fo);
	return warn_once(img, &problem, err, out);
}

void cfi_table_free(struct cfi_table *table)
{
	free(table->rows);
	free(table->function_starts);
	memset(table, 0, sizeof(*table));
}

const struct cfi_row *cfi_table_lookup(const struct cfi_table *table, uint64_t pc)
{
	size_t above = u64_field_upper_bound(table->rows, table->count, sizeof(*table->rows),
					     offsetof(struct cfi_row, pc), pc);
	return above == 0 ? NULL : &table->rows[above - 1];
}
