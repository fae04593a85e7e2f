/* SPDX-License-Identifier: MIT */
/* cfi_compile.h - turns a file's call frame information (.eh_frame, and .debug_frame when
 * present) into the compact rows the BPF unwinder uses (bpf/abi/unwind_abi.h, struct unwind_rule).
 * The CFA programs are interpreted by libdwarf; this module maps each row's CFA rule and the
 * rules of rbp, rbx, r12-r15 and the return address onto struct unwind_rule. libdwarf's time is
 * bounded per FDE and per file (unwind/fde_cost.h): what would exceed it is left out. */
#ifndef LUA_PERF_CFI_COMPILE_H
#define LUA_PERF_CFI_COMPILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bpf/abi/unwind_abi.h"
#include "unwind/elf_image.h"

struct cfi_row {
	uint64_t pc;              /* ELF vaddr where this rule starts to apply */
	struct unwind_rule rule;  /* rule.cfa_type == CFA_GAP: no information from pc on */
};

struct cfi_stats {
	size_t fdes;              /* FDEs read */
	size_t unsupported_rows;  /* rows compiled to CFA_UNSUPPORTED */
	size_t debug_frame_fdes;  /* FDEs taken from .debug_frame for ranges .eh_frame misses */
	bool partial;             /* built from the rest of damaged CFI (warned): not cached */
};

struct cfi_table {
	struct cfi_row *rows;     /* sorted by pc, no two adjacent rows with equal rules */
	size_t count;
	size_t capacity;
	uint64_t *function_starts;/* sorted start addresses of the FDEs (function bounds in stripped
				   * files: a function ends where the next starts or a gap row is) */
	size_t function_count;
	struct cfi_stats stats;
};

/* Compile every FDE of img. Rows are sorted by pc; where one FDE ends and the next does not start
 * at the same address, a CFA_GAP row marks the gap; the table ends with a CFA_GAP row at the end
 * of the last FDE. A file with no CFI at all yields 0 rows and returns 0.
 * Damaged call frame information gets exactly one warning naming the file (img->name): what is
 * wrong and what follows. When nothing usable is left (no row), that warning says the file has
 * no unwind table and a negative errno is returned; when a part is left (a malformed
 * .debug_frame beside a good .eh_frame), the part is used and 0 returned. */
int cfi_table_build(const struct elf_image *img, struct cfi_table *out);
/* cfi_table_build with a budget of file_steps steps of CFA interpretation instead of
 * FILE_STEPS_MAX (unwind/fde_cost.h): FDEs that would exceed it are left out (gaps). */
int cfi_table_build_within(const struct elf_image *img, uint64_t file_steps, struct cfi_table *out);
void cfi_table_free(struct cfi_table *table);
/* The row in effect at pc, or NULL (before the first row). */
const struct cfi_row *cfi_table_lookup(const struct cfi_table *table, uint64_t pc);

#endif
