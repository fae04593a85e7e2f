/* SPDX-License-Identifier: MIT */
/* luajit_layout_probe.c - compiled by tests/luajit_detect_test.py against one LuaJIT 2.1 source
 * tree (-I TREE/src, plus -DLUAJIT_DISABLE_GC64 for GC32): prints what runtime/luajit/luajit_detect.c must
 * derive from a binary built from that tree, with the names luajit_detect_tool prints, computed
 * by the tree's own headers (lj_obj.h, lj_frame.h, lj_dispatch.h, lj_jit.h). */
#include <stddef.h>
#include <stdio.h>

#include "lj_dispatch.h"
#include "lj_frame.h"
#include "lj_jit.h"
#include "lj_obj.h"

#define SHOW(name, value) printf("%s %lld\n", name, (long long)(value))

int main(void)
{
	SHOW("jit.gc64", LJ_GC64);
	SHOW("jit.cframe_size", CFRAME_SIZE);
	SHOW("jit.disp2g", GG_DISP2G);
	SHOW("jit.g_to_j", GG_OFS(J) - GG_OFS(g));
	SHOW("jit.cframe_l", CFRAME_OFS_L);
	SHOW("jit.state_glref", offsetof(lua_State, glref));
	SHOW("jit.state_base", offsetof(lua_State, base));
	SHOW("jit.state_stack", offsetof(lua_State, stack));
	SHOW("jit.state_cframe", offsetof(lua_State, cframe));
	SHOW("jit.g_vmstate", offsetof(global_State, vmstate));
	SHOW("jit.g_cur_L", offsetof(global_State, cur_L));
	SHOW("jit.g_jit_base", offsetof(global_State, jit_base));
	SHOW("jit.j_trace", offsetof(jit_State, trace));
	SHOW("jit.trace_startpc", offsetof(GCtrace, startpc));
	SHOW("jit.func_ffid", offsetof(GCfuncC, ffid));
	SHOW("jit.func_pc", offsetof(GCfuncL, pc));
	SHOW("jit.proto_size", sizeof(GCproto));
	SHOW("jit.proto_sizebc", offsetof(GCproto, sizebc));
	SHOW("proto_chunkname", offsetof(GCproto, chunkname));
	SHOW("proto_firstline", offsetof(GCproto, firstline));
	SHOW("proto_numline", offsetof(GCproto, numline));
	SHOW("proto_lineinfo", offsetof(GCproto, lineinfo));
	SHOW("str_len", offsetof(GCstr, len));
	SHOW("str_size", sizeof(GCstr));
	return 0;
}
