/* SPDX-License-Identifier: MIT */
/* lua_state_home.h - where PUC Lua's luaV_execute keeps lua_State *L at its opcode dispatch: the
 * callee-saved register it is copied into at the entry, or the stack slot it is stored to
 * (relative to the CFA). x86_64 only; input is hostile. */
#ifndef LUA_PERF_LUA_STATE_HOME_H
#define LUA_PERF_LUA_STATE_HOME_H

#include <stdbool.h>
#include <stdint.h>

#include "unwind/cfi_compile.h"
#include "x86/x86_disasm.h"

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
int lua_state_home(const struct x86_code *code, const struct cfi_table *cfi, uint64_t start,
		   uint64_t end, struct lua_state_home *home, const char **reason);

#endif
