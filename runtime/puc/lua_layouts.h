/* SPDX-License-Identifier: MIT */
/* lua_layouts.h - struct layouts of the PUC Lua versions lua-perf reads, x86_64. The VM part goes
 * to the BPF walkers (bpf/abi/lua_abi.h); the Proto/TString part is for userspace symbolization.
 * The lua_layouts_5.x tests (tests/cmake/lua_detect.cmake) check every number against offsetof()
 * on the version's own headers. */
#ifndef LUA_PERF_LUA_LAYOUTS_H
#define LUA_PERF_LUA_LAYOUTS_H

#include <stdint.h>

#include "bpf/abi/lua_abi.h"

struct lua_puc_proto_layout {
	uint16_t proto_code;             /* Instruction *code */
	uint16_t proto_sizecode;         /* int */
	uint16_t proto_lineinfo;         /* 5.1/5.3: int *lineinfo (absolute); 5.4: ls_byte * (deltas) */
	uint16_t proto_sizelineinfo;     /* int */
	uint16_t proto_abslineinfo;      /* 5.4: AbsLineInfo * {int pc; int line;} */
	uint16_t proto_sizeabslineinfo;  /* 5.4: int */
	uint16_t proto_linedefined;      /* int */
	uint16_t proto_source;           /* TString * */
	uint16_t tstring_contents;       /* offset of the characters from the TString */
	uint16_t tstring_len;            /* 5.1: size_t tsv.len; 5.3/5.4: long strings' size_t lnglen */
	uint16_t tstring_shrlen;         /* 5.3/5.4: lu_byte shrlen of short strings; 0 in 5.1 */
	uint16_t tstring_tt;             /* 5.3/5.4: type tag byte (short/long string) */
	uint8_t tag_short_string;        /* 5.3/5.4: LUA_TSHRSTR variant tag (0x04) */
	uint8_t instruction_size;        /* sizeof(Instruction): 4 */
	uint8_t opcode_mask;             /* lopcodes.h GET_OPCODE: the low SIZE_OP bits (POS_OP 0) */
	/* OP_TAILCALL where a Lua tail call first runs its callee in a CallInfo of its own, the
	 * caller's below it, and only then moves it down (lvm.c 5.1/5.3 OP_TAILCALL); 0 in 5.4,
	 * whose luaD_pretailcall reuses the caller's CallInfo. */
	uint8_t op_tailcall;
};

struct lua_puc_version {
	const char *version;             /* "5.4.4" */
	enum lua_kind kind;
	struct lua_puc_layout vm;
	struct lua_puc_proto_layout proto;
};

/* The entry for an exact version string ("5.4.4"); NULL when unknown. */
const struct lua_puc_version *lua_puc_version_find(const char *version);
/* All entries, for tests. */
const struct lua_puc_version *lua_puc_versions(unsigned *count);

#endif
