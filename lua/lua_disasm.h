/* SPDX-License-Identifier: MIT */
/* lua_disasm.h - the capstone part of Lua runtime detection (lua/lua_runtime.c): function bounds
 * in stripped files, the search for luaV_execute among the functions the exported C API reaches
 * through direct calls, and the register lua_State *L is copied into at luaV_execute's entry.
 * x86_64 only. Input is hostile: every address is checked against the code and data given. */
#ifndef LUA_PERF_LUA_DISASM_H
#define LUA_PERF_LUA_DISASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "unwind/cfi_compile.h"

/* One executable section's bytes (owned by the caller; libelf data). */
struct lua_code {
	uint64_t addr;
	const uint8_t *bytes;
	size_t size;
};

/* Reads up to len bytes of the file's loaded data at ELF vaddr; returns how many were read (0
 * when vaddr is not file-backed). */
typedef size_t (*lua_read_fn)(const void *ctx, uint64_t vaddr, void *buf, size_t len);

struct lua_exec_search {
	const struct lua_code *code;
	const struct cfi_table *cfi; /* function bounds: FDE starts and CFA_GAP rows */
	lua_read_fn read;
	const void *read_ctx;
	const uint64_t *roots;       /* exported API functions to start from */
	size_t root_count;
	unsigned min_table_entries;  /* the dispatch table has at least this many entries */
};

/* [start, *end) of the function starting at start, without symbols: start must be an FDE start
 * (cfi->function_starts) covered by rows; end is the next FDE start or the CFA_GAP row ending the
 * FDE before alignment padding, whichever comes first. */
bool lua_fn_end(const struct cfi_table *cfi, uint64_t start, uint64_t *end);

/* Finds luaV_execute's hot part among the functions the roots reach. 0 on success; otherwise a
 * negative errno with *reason set (a static string): -ENOENT no single candidate fits, -E2BIG
 * the work bound was reached, -ENOMEM, -ENOSYS capstone failed. */
int lua_find_execute(const struct lua_exec_search *s, uint64_t *start, uint64_t *end,
		     const char **reason);

/* The callee-saved register (DWARF number: rbx 3, rbp 6, r12-r15) that the entry code of the
 * function at [start, end) copies its first argument (rdi) into. 0 on success; -ENOENT with
 * *reason set when rdi is not kept in a callee-saved register; another negative errno on
 * capstone failure. */
int lua_entry_state_register(const struct lua_code *code, uint64_t start, uint64_t end,
			     uint8_t *dwarf_reg, const char **reason);

#endif
