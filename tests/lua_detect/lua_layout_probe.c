/* SPDX-License-Identifier: MIT */
/* lua_layout_probe.c - compiled by tests/lua_detect_test.py against one Lua release's own source
 * tree (-I<tree>/src) and run: prints, in the format of `lua_detect_tool layout`, every field of
 * struct lua_puc_layout and struct lua_puc_proto_layout (runtime/puc/lua_layouts.h) as that release's
 * headers define it: offsetof() on the real structs, the real CIST_* bits and type tags. Fields
 * a release does not have print 0, the convention of runtime/puc/lua_layouts.c. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "lua.h"

#include "lfunc.h"
#include "lobject.h"
#include "lopcodes.h"
#include "lstate.h"
#include "lstring.h"

#if LUA_VERSION_NUM == 501
#define KIND 1 /* LUA_KIND_PUC51 */
#elif LUA_VERSION_NUM == 503
#define KIND 2 /* LUA_KIND_PUC53 */
#elif LUA_VERSION_NUM == 504 && defined(CIST_FRESH)
#define KIND 3 /* LUA_KIND_PUC54 */
#elif LUA_VERSION_NUM == 504
#define KIND 4 /* LUA_KIND_PUC540: no CIST_FRESH */
#else
#error "a Lua release lua-perf has no layout for"
#endif

static void field(const char *name, size_t value) { printf("%s %zu\n", name, value); }

/* Offset of the characters from the TString, through the release's own getstr(). */
static size_t tstring_contents(void)
{
	static union {
		TString ts;
		char bytes[256];
	} probe;
	return (size_t)((const char *)getstr(&probe.ts) - (const char *)&probe.ts);
}

static void vm_fields(void)
{
	field("vm.state_l_G", offsetof(lua_State, l_G));
	field("vm.state_ci", offsetof(lua_State, ci));
	field("vm.state_base_ci", offsetof(lua_State, base_ci));
	field("vm.global_mainthread", offsetof(global_State, mainthread));
	field("vm.ci_func", offsetof(CallInfo, func));
	field("vm.ci_size", sizeof(CallInfo));
	field("vm.lclosure_p", offsetof(LClosure, p));
	field("vm.proto_code", offsetof(Proto, code));
#if LUA_VERSION_NUM == 501
	field("vm.state_savedpc", offsetof(lua_State, savedpc));
	field("vm.ci_previous", 0);
	field("vm.ci_savedpc", offsetof(CallInfo, savedpc));
	field("vm.ci_callstatus", 0);
	field("vm.tvalue_tt", offsetof(TValue, tt));
	field("vm.closure_isc", offsetof(CClosure, isC));
	field("vm.cist_lua", 0);
	field("vm.cist_fresh", 0);
	field("vm.tag_lua_closure", LUA_TFUNCTION);
#else
	field("vm.state_savedpc", 0);
	field("vm.ci_previous", offsetof(CallInfo, previous));
	field("vm.ci_savedpc", offsetof(CallInfo, u.l.savedpc));
	field("vm.ci_callstatus", offsetof(CallInfo, callstatus));
	field("vm.tvalue_tt", offsetof(TValue, tt_));
	field("vm.closure_isc", 0);
#if LUA_VERSION_NUM == 503
	field("vm.cist_lua", CIST_LUA);
	field("vm.tag_lua_closure", ctb(LUA_TLCL));
#else
	field("vm.cist_lua", CIST_C);
	field("vm.tag_lua_closure", ctb(LUA_VLCL));
#endif
#ifdef CIST_FRESH
	field("vm.cist_fresh", CIST_FRESH);
#else
	field("vm.cist_fresh", 0);
#endif
#endif
}

static void proto_fields(void)
{
	field("proto.proto_code", offsetof(Proto, code));
	field("proto.proto_sizecode", offsetof(Proto, sizecode));
	field("proto.proto_lineinfo", offsetof(Proto, lineinfo));
	field("proto.proto_sizelineinfo", offsetof(Proto, sizelineinfo));
	field("proto.proto_linedefined", offsetof(Proto, linedefined));
	field("proto.proto_source", offsetof(Proto, source));
	field("proto.tstring_contents", tstring_contents());
	field("proto.instruction_size", sizeof(Instruction));
#if LUA_VERSION_NUM == 504
	field("proto.proto_abslineinfo", offsetof(Proto, abslineinfo));
	field("proto.proto_sizeabslineinfo", offsetof(Proto, sizeabslineinfo));
#else
	field("proto.proto_abslineinfo", 0);
	field("proto.proto_sizeabslineinfo", 0);
#endif
#if LUA_VERSION_NUM == 501
	field("proto.tstring_len", offsetof(TString, tsv.len));
	field("proto.tstring_shrlen", 0);
	field("proto.tstring_tt", 0);
	field("proto.tag_short_string", 0);
#else
	field("proto.tstring_len", offsetof(TString, u.lnglen));
	field("proto.tstring_shrlen", offsetof(TString, shrlen));
	field("proto.tstring_tt", offsetof(TString, tt));
#if LUA_VERSION_NUM == 503
	field("proto.tag_short_string", LUA_TSHRSTR);
#else
	field("proto.tag_short_string", LUA_VSHRSTR);
#endif
#endif
}

int main(void)
{
	const char *release = LUA_RELEASE;
	printf("release %s\n", strncmp(release, "Lua ", 4) == 0 ? release + 4 : release);
	printf("kind %d\n", KIND);
	vm_fields();
	proto_fields();
	return 0;
}
