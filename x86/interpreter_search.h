/* SPDX-License-Identifier: MIT */
/* interpreter_search.h - the search for PUC Lua's luaV_execute in stripped x86_64 code among the
 * functions the exported C API reaches through direct calls: the function dispatching through a
 * jump table with one entry per opcode (runtime/lua_runtime.c). */
#ifndef LUA_PERF_INTERPRETER_SEARCH_H
#define LUA_PERF_INTERPRETER_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "unwind/cfi_compile.h"
#include "x86/x86_disasm.h"

/* Reads up to len bytes of the file's loaded data at ELF vaddr; returns how many were read (0
 * when vaddr is not file-backed). */
typedef size_t (*lua_read_fn)(const void *ctx, uint64_t vaddr, void *buf, size_t len);

struct lua_exec_search {
	const struct x86_code *code;
	const struct cfi_table *cfi; /* function bounds: FDE starts and CFA_GAP rows */
	lua_read_fn read;
	const void *read_ctx;
	const uint64_t *roots;       /* exported API functions to start from */
	size_t root_count;
	unsigned min_table_entries;  /* the dispatch table has at least this many entries */
};

/* Finds luaV_execute's hot part among the functions the roots reach. 0 on success; otherwise a
 * negative errno with *reason set (a static string): -ENOENT no single candidate fits, -E2BIG
 * the work bound was reached, -ENOMEM, -ENOSYS capstone failed. */
int lua_find_execute(const struct lua_exec_search *s, uint64_t *start, uint64_t *end,
		     const char **reason);

#endif
