/* SPDX-License-Identifier: MIT */
/* fde_cost.h - how much work libdwarf does to compile one FDE's rows, and the limits on it.
 *
 * libdwarf (20210528) has no way to walk the rows of an FDE: each row is computed by
 * dwarf_get_fde_info_for_all_regs3, which interprets the CIE's initial instructions and the FDE's
 * program from their start up to the row (_dwarf_exec_frame_instr stops at the first advance
 * past the pc asked for). Compiling an FDE therefore costs about its row count times its program
 * length: quadratic in the program, and a DW_CFA_advance_loc is one byte and one row. Measured
 * here before any limit: 32 KiB of DW_CFA_advance_loc1 (16,384 rows) took 1.2 s, 64 KiB 4.8 s, so
 * 1 MiB would take about 20 minutes; 4,096 rows of DW_CFA_remember_state, DW_CFA_restore_state,
 * DW_CFA_advance_loc (12 KiB) took 4.0 s, each remembered state being a malloc'ed copy of
 * libdwarf's 4 KiB register table.
 *
 * The work is counted in steps: one per program byte, REMEMBER_STEPS per DW_CFA_remember_state
 * (470 ns measured against about 4 ns per byte of advance instructions), charged once to decode
 * the program and once per row compiled. Real files need far less than the limits below, but not
 * nothing: among Debian 12's x86-64 files and CUDA 13's libraries, the most were
 * - program bytes (CIE initial instructions + FDE program): 60,762 (libcufft.so.12), 20,058
 *   (gcc's cc1plus and lto-dump-12), 9,798 (valgrind's tools), 666 (libluajit), 306 (nginx);
 * - steps of one FDE: 9.8e8 (libnvrtc.so.13), 3.0e8 (valgrind's memcheck-amd64-linux);
 * - steps of one file: 4.4e9 (libnvrtc.so.13, 8.2 s of CPU), 6.9e8 (lto-dump-12, 2.1 s),
 *   2.2e6 (libc.so.6, 26 ms).
 * The per-file limit is what bounds a file made of many FDEs each just under the per-FDE ones:
 * measured at 9.8 s of CPU when its 2^33 steps are spent on DW_CFA_advance_loc, 11.9 s on
 * remember/restore pairs, 17.5 s on DW_CFA_advance_loc1 (1.2 to 2 ns a step; libnvrtc's real
 * program, 1.8). Only computing the rows in one pass over each program (interpreting it here
 * instead of in libdwarf) would make that proportional to the file's size. */
#ifndef LUA_PERF_FDE_COST_H
#define LUA_PERF_FDE_COST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "unwind/cfa_scan.h"

#define REMEMBER_STEPS 128u
/* Longer programs are not given to libdwarf (4.3 times the longest real one). */
#define FDE_PROGRAM_MAX (256u * 1024u)
/* An FDE whose rows would take more steps is left out (4.4 times the most a real FDE took),
 * judged from its bytes before libdwarf decodes it: at most one row per advance instruction. */
#define FDE_STEPS_MAX (UINT64_C(1) << 32)
/* Steps of one file (twice the most a real file took: 8.6e9, about 10 to 20 s of CPU). */
#define FILE_STEPS_MAX (UINT64_C(1) << 33)

/* The steps of one interpretation of a program of `bytes` bytes holding what scan found. */
uint64_t cfa_program_steps(size_t bytes, const struct cfa_scan *scan);

/* The steps of computing `rows` rows of a program of `steps` steps; UINT64_MAX when the product
 * overflows. */
uint64_t fde_steps(uint64_t steps, size_t rows);

struct fde_budget {
	uint64_t left;
};

void fde_budget_init(struct fde_budget *b, uint64_t steps);
/* Take `steps` from the budget; false (nothing taken) when fewer are left. */
bool fde_budget_take(struct fde_budget *b, uint64_t steps);

#endif
