/* SPDX-License-Identifier: MIT */
/* lua_disasm.h - the capstone part of Lua runtime detection (runtime/lua_runtime.c): function bounds
 * in stripped files, the search for luaV_execute among the functions the exported C API reaches
 * through direct calls, and where luaV_execute keeps lua_State *L: the callee-saved register it is
 * copied into at the entry, or the stack slot it is stored to (relative to the CFA).
 * x86_64 only. Input is hostile: every address is checked against the code and data given. */
#ifndef LUA_PERF_LUA_DISASM_H
#define LUA_PERF_LUA_DISASM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <capstone/capstone.h>

#include "unwind/cfi_compile.h"

/* One executable section's bytes (owned by the caller; libelf data). */
struct lua_code {
	uint64_t addr;
	const uint8_t *bytes;
	size_t size;
};

/* The executable section of img holding addr; false when none does. */
struct elf_image;
bool lua_code_section_at(const struct elf_image *img, uint64_t addr, struct lua_code *code);

/* ---- capstone, shared with runtime/luajit/luajit_detect.c */

/* An x86_64 decoder with instruction details on, and one instruction buffer. */
struct lua_disasm {
	csh handle;
	cs_insn *insn;
};

enum lua_step { LUA_STEP_INSN, LUA_STEP_BAD, LUA_STEP_END };

/* Where decoding goes on: the bytes left of a range of code. */
struct lua_cursor {
	const uint8_t *p;
	size_t left;
	uint64_t addr;
};

/* 0, -ENOSYS (capstone failed, with a warning) or -ENOMEM. */
int lua_disasm_open(struct lua_disasm *d);
void lua_disasm_close(struct lua_disasm *d);
/* A cursor over [start, end) of code; false when that range is not inside the code. */
bool lua_cursor_at(const struct lua_code *code, uint64_t start, uint64_t end, struct lua_cursor *c);
/* Decode the next instruction into d->insn; an undecodable byte is skipped (LUA_STEP_BAD), so
 * every loop over a cursor ends. */
enum lua_step lua_next_insn(struct lua_disasm *d, struct lua_cursor *c);

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

/* Where luaV_execute keeps lua_State *L at its opcode dispatch. */
struct lua_state_home {
	bool in_frame;     /* false: in dwarf_reg; true: in memory, at luaV_execute's CFA + cfa_off */
	uint8_t dwarf_reg; /* a callee-saved register (DWARF number: rbx 3, rbp 6, r12-r15) */
	int16_t cfa_off;   /* a slot of luaV_execute's own frame: negative, 8 bytes */
};

/* Where the function at [start, end) keeps its first argument (rdi): the callee-saved register
 * its entry code copies rdi into and still holds at the opcode dispatch, or else (or when that
 * register also takes computed values) the stack slot its entry code stores rdi to and never
 * writes again (named relative to the CFA by cfi's rule at the store; cfi may be NULL: registers
 * only). 0 on success; -ENOENT with *reason set when it is in neither (or the slot is also used
 * for other values); another negative errno on capstone failure. */
int lua_state_home(const struct lua_code *code, const struct cfi_table *cfi, uint64_t start,
		   uint64_t end, struct lua_state_home *home, const char **reason);

#endif
