/* SPDX-License-Identifier: MIT */
/* cfi_table_shape.h - the properties every compiled unwind table has, whatever the input (the
 * hostile-input unit test and the CFI fuzz harness check them): rows sorted by pc, no two
 * adjacent rows with one rule, a gap row at the end and not at the start, lookups finding each
 * row, and each rule within the ranges of the BPF ABI (bpf/abi/unwind_abi.h). */
#ifndef LUA_PERF_CFI_TABLE_SHAPE_H
#define LUA_PERF_CFI_TABLE_SHAPE_H

#include <stddef.h>

#include "unwind/cfi_compile.h"

/* NULL when table has the shape, else why not (a message in why, why_size bytes). */
const char *cfi_table_shape_error(const struct cfi_table *table, char *why, size_t why_size);

#endif
