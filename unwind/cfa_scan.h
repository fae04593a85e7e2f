/* SPDX-License-Identifier: MIT */
/* cfa_scan.h - how deep DW_CFA_remember_state nests in a CFA program (DWARF 5, 6.4.2), and how
 * often it occurs, read from its bytes before libdwarf sees it. libdwarf copies its whole
 * register table (about 4 KiB) for each state remembered and not yet restored, already when it
 * decodes a program (dwarf_expand_frame_instructions) and again for every row it computes: left
 * to it, a few bytes of nesting cost megabytes (10,000 bytes of DW_CFA_remember_state took
 * 43 MiB, 20,000 took 94 MiB). Each of these copies is also slow (unwind/fde_cost.h counts it). */
#ifndef LUA_PERF_CFA_SCAN_H
#define LUA_PERF_CFA_SCAN_H

#include <stddef.h>
#include <stdint.h>

struct cfa_scan {
	size_t remember_depth; /* the deepest nesting of DW_CFA_remember_state */
	size_t remember_count; /* how many DW_CFA_remember_state the program holds */
	size_t advance_count;  /* how many instructions start a row (advances and DW_CFA_set_loc) */
};

/* Scan the len bytes at program. The figures are exact or upper bounds: from an instruction
 * whose size it cannot know (DW_CFA_set_loc, whose address size depends on the CIE's
 * augmentation, or an opcode DWARF 5 and GNU do not define), every 0x0a byte of the rest counts
 * as one more DW_CFA_remember_state and one more level, and every byte as one more advance. A truncated instruction ends the
 * program, as it ends libdwarf's decoding. */
void cfa_scan_program(const uint8_t *program, size_t len, struct cfa_scan *out);

#endif
