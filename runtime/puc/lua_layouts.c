/* SPDX-License-Identifier: MIT */
/* Offsets from offsetof() against each release's headers (../shared/reference/puc-lua-offsets.txt
 * and the lua_layouts_5.x tests of tests/cmake/lua_detect.cmake, which recompute them from the
 * Debian source packages). Bit and tag values from lstate.h / lobject.h of each version. */
#include "runtime/puc/lua_layouts.h"

#include <string.h>

/* lopcodes.h: opcodes are 6 bits in 5.1/5.3 (OP_TAILCALL 29 and 37), 7 in 5.4.
 * lstate.h: 5.3 CIST_LUA (1<<1), CIST_FRESH (1<<3); 5.4 CIST_C (1<<1), 5.4.2+ CIST_FRESH (1<<2).
 * lobject.h: Lua closure tag 0x46 (LUA_TLCL | collectable) in 5.3 and 5.4; 5.1 LUA_TFUNCTION 6. */

#define PUC51_VM                                                                                    \
	{                                                                                           \
		.state_l_G = 32, .state_ci = 40, .state_base_ci = 80, .state_savedpc = 48,          \
		.global_mainthread = 176, .ci_func = 8, .ci_savedpc = 24, .ci_size = 40,            \
		.tvalue_tt = 8, .lclosure_p = 32, .closure_isc = 10, .proto_code = 24,              \
		.tag_lua_closure = 6,                                                               \
	}
#define PUC51_PROTO                                                                                 \
	{                                                                                           \
		.proto_code = 24, .proto_sizecode = 80, .proto_lineinfo = 40,                       \
		.proto_sizelineinfo = 84, .proto_linedefined = 96, .proto_source = 64,              \
		.tstring_contents = 24, .tstring_len = 16, .instruction_size = 4,                   \
		.opcode_mask = 0x3f, .op_tailcall = 29,                                             \
	}

#define PUC53_VM                                                                                    \
	{                                                                                           \
		.state_l_G = 24, .state_ci = 32, .state_base_ci = 96, .global_mainthread = 200,     \
		.ci_func = 0, .ci_previous = 16, .ci_savedpc = 40, .ci_callstatus = 66,             \
		.ci_size = 72, .tvalue_tt = 8, .lclosure_p = 24, .proto_code = 56,                  \
		.cist_lua = 1 << 1, .cist_fresh = 1 << 3, .tag_lua_closure = 0x46,                  \
	}
#define PUC53_PROTO                                                                                 \
	{                                                                                           \
		.proto_code = 56, .proto_sizecode = 24, .proto_lineinfo = 72,                       \
		.proto_sizelineinfo = 28, .proto_linedefined = 40, .proto_source = 104,             \
		.tstring_contents = 24, .tstring_len = 16, .tstring_shrlen = 11, .tstring_tt = 8,   \
		.tag_short_string = 0x04, .instruction_size = 4, .opcode_mask = 0x3f,               \
		.op_tailcall = 37,                                                                  \
	}

#define PUC54_VM(mainthread, fresh)                                                                 \
	{                                                                                           \
		.state_l_G = 24, .state_ci = 32, .state_base_ci = 96,                               \
		.global_mainthread = (mainthread), .ci_func = 0, .ci_previous = 16,                 \
		.ci_savedpc = 32, .ci_callstatus = 62, .ci_size = 64, .tvalue_tt = 8,               \
		.lclosure_p = 24, .proto_code = 64, .cist_lua = 1 << 1, .cist_fresh = (fresh),      \
		.tag_lua_closure = 0x46,                                                            \
	}
#define PUC54_PROTO                                                                                 \
	{                                                                                           \
		.proto_code = 64, .proto_sizecode = 24, .proto_lineinfo = 88,                       \
		.proto_sizelineinfo = 28, .proto_abslineinfo = 96, .proto_sizeabslineinfo = 40,     \
		.proto_linedefined = 44, .proto_source = 112, .tstring_contents = 24,               \
		.tstring_len = 16, .tstring_shrlen = 11, .tstring_tt = 8, .tag_short_string = 0x04, \
		.instruction_size = 4, .opcode_mask = 0x7f,                                         \
	}

#define V51(v) {v, LUA_KIND_PUC51, PUC51_VM, PUC51_PROTO}
#define V53(v) {v, LUA_KIND_PUC53, PUC53_VM, PUC53_PROTO}
/* 5.4.0-5.4.1: no CIST_FRESH (every Lua call re-enters luaV_execute), mainthread at 256. */
#define V540(v) {v, LUA_KIND_PUC540, PUC54_VM(256, 0), PUC54_PROTO}
#define V54(v) {v, LUA_KIND_PUC54, PUC54_VM(264, 1 << 2), PUC54_PROTO}

static const struct lua_puc_version versions[] = {
	V51("5.1.1"), V51("5.1.2"), V51("5.1.3"), V51("5.1.4"), V51("5.1.5"),
	V53("5.3.0"), V53("5.3.1"), V53("5.3.2"), V53("5.3.3"), V53("5.3.4"), V53("5.3.5"),
	V53("5.3.6"),
	V540("5.4.0"), V540("5.4.1"),
	V54("5.4.2"), V54("5.4.3"), V54("5.4.4"), V54("5.4.5"), V54("5.4.6"), V54("5.4.7"),
	V54("5.4.8"),
};

const struct lua_puc_version *lua_puc_version_find(const char *version)
{
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		if (strcmp(versions[i].version, version) == 0)
			return &versions[i];
	return NULL;
}

const struct lua_puc_version *lua_puc_versions(unsigned *count)
{
	*count = (unsigned)(sizeof(versions) / sizeof(versions[0]));
	return versions;
}
