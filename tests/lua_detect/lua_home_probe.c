/* SPDX-License-Identifier: MIT */
/* lua_home_probe.c - a C module for a Lua build under test (tests/lua_detect_test.py, mode
 * builds): the run-time truth of where luaV_execute keeps lua_State *L, independent of lua-perf.
 *
 * Compiled against the build's own headers and loaded into its interpreter (`require`; the
 * interpreter exports the C API, -Wl,-E). Lua code calls the module's functions from many places
 * of luaV_execute (a call, a tail call, metamethods __index, __newindex, __add, __lt, __le, __eq,
 * __concat, __len, __unm, __call, a generic for, inside a coroutine: tests/lua_detect/
 * lua_home_calls.lua). Each call unwinds its own stack with libgcc's unwinder (_Unwind_Backtrace
 * over .eh_frame, not lua-perf's CFI compiler) up to the innermost luaV_execute frame (its ELF
 * range is given to setup) and records every place of that frame that holds the calling
 * lua_State at that moment: the callee-saved registers as recovered for the frame
 * (_Unwind_GetGR) and the 8-byte slots of the frame itself, [its rsp at the call, CFA - 8),
 * named by their offset from the frame's CFA (_Unwind_GetCFA). report() returns one line per
 * call:
 *   <call site ELF vaddr hex> <place> <place> ...     place = rbx|rbp|r12..r15|cfa-<decimal>
 * The register or slot lua-perf reports must be among the places of every line.
 *
 * Lua 5.1, 5.3 and 5.4: only API functions all three have. */
#define _GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unwind.h>

#include "lauxlib.h"
#include "lua.h"

#define MAX_EVENTS 256
#define EVENT_LEN 512

static uintptr_t exec_lo, exec_hi; /* run-time range of luaV_execute */
static uintptr_t bias;             /* load bias of the file holding the API */
static char events[MAX_EVENTS][EVENT_LEN];
static int event_count;

struct frame_find {
	uintptr_t sp;  /* luaV_execute's rsp at its call */
	uintptr_t cfa; /* luaV_execute's CFA */
	uintptr_t ip;
	uintptr_t regs[16];
	int state;     /* 0 looking, 1 luaV_execute seen, 2 its caller seen */
};

static const int callee_saved[] = {3, 6, 12, 13, 14, 15};
static const char *const reg_names[16] = {[3] = "rbx", [6] = "rbp", [12] = "r12", [13] = "r13",
					  [14] = "r14", [15] = "r15"};

/* libgcc calls this for each frame, innermost first. During the call for a frame,
 * _Unwind_GetCFA gives the CFA of the frame below it (this frame's rsp at its call), so the
 * frame's own CFA comes with the call for its caller. */
static _Unwind_Reason_Code step(struct _Unwind_Context *ctx, void *arg)
{
	struct frame_find *f = arg;
	if (f->state == 1) {
		f->cfa = _Unwind_GetCFA(ctx);
		f->state = 2;
		return _URC_END_OF_STACK;
	}
	uintptr_t ip = _Unwind_GetIP(ctx);
	/* ip is a return address: the call is just before it. */
	if (ip > exec_lo && ip - 1 < exec_hi) {
		f->sp = _Unwind_GetCFA(ctx);
		f->ip = ip;
		for (size_t i = 0; i < sizeof(callee_saved) / sizeof(callee_saved[0]); i++)
			f->regs[callee_saved[i]] = _Unwind_GetGR(ctx, callee_saved[i]);
		f->state = 1;
	}
	return _URC_NO_REASON;
}

static void record(lua_State *L)
{
	struct frame_find f;
	memset(&f, 0, sizeof(f));
	_Unwind_Backtrace(step, &f);
	if (event_count >= MAX_EVENTS)
		return;
	char *line = events[event_count++];
	size_t len = 0;
	if (f.state != 2 || f.sp == 0 || f.sp >= f.cfa) {
		snprintf(line, EVENT_LEN, "none");
		return;
	}
	len += (size_t)snprintf(line, EVENT_LEN, "%lx", (unsigned long)(f.ip - bias));
	for (size_t i = 0; i < sizeof(callee_saved) / sizeof(callee_saved[0]); i++)
		if (f.regs[callee_saved[i]] == (uintptr_t)L && len < EVENT_LEN)
			len += (size_t)snprintf(line + len, EVENT_LEN - len, " %s",
						reg_names[callee_saved[i]]);
	for (uintptr_t at = f.sp; at + 8 <= f.cfa - 8; at += 8) {
		uintptr_t value;
		memcpy(&value, (const void *)at, sizeof(value));
		if (value == (uintptr_t)L && len < EVENT_LEN)
			len += (size_t)snprintf(line + len, EVENT_LEN - len, " cfa-%lu",
						(unsigned long)(f.cfa - at));
	}
}

/* probe(...): records, returns its first argument (or nothing). */
static int l_probe(lua_State *L)
{
	record(L);
	return lua_gettop(L) > 0 ? 1 : 0;
}

static int l_probe_true(lua_State *L)
{
	record(L);
	lua_pushboolean(L, 1);
	return 1;
}

static int l_probe_string(lua_State *L)
{
	record(L);
	lua_pushstring(L, "probed");
	return 1;
}

static int l_probe_number(lua_State *L)
{
	record(L);
	lua_pushnumber(L, 7);
	return 1;
}

/* A generic-for iterator: records, ends the loop. */
static int l_probe_nil(lua_State *L)
{
	record(L);
	lua_pushnil(L);
	return 1;
}

struct find_bias {
	uintptr_t addr;
	uintptr_t bias;
	int found;
};

static int phdr_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct find_bias *fb = arg;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
		if (ph->p_type == PT_LOAD && fb->addr >= lo && fb->addr - lo < ph->p_memsz) {
			fb->bias = info->dlpi_addr;
			fb->found = 1;
			return 1;
		}
	}
	return 0;
}

/* setup("start", "end"): luaV_execute's ELF vaddr range (hex) in the file that holds the API. */
static int l_setup(lua_State *L)
{
	struct find_bias fb = {.addr = (uintptr_t)&lua_gettop};
	dl_iterate_phdr(phdr_cb, &fb);
	if (!fb.found)
		return luaL_error(L, "lua_home_probe: no loaded file holds lua_gettop");
	bias = fb.bias;
	exec_lo = bias + (uintptr_t)strtoull(luaL_checkstring(L, 1), NULL, 16);
	exec_hi = bias + (uintptr_t)strtoull(luaL_checkstring(L, 2), NULL, 16);
	return 0;
}

static int l_report(lua_State *L)
{
	lua_newtable(L);
	for (int i = 0; i < event_count; i++) {
		lua_pushnumber(L, i + 1);
		lua_pushstring(L, events[i]);
		lua_settable(L, -3);
	}
	return 1;
}

int luaopen_lua_home_probe(lua_State *L)
{
	static const struct {
		const char *name;
		lua_CFunction fn;
	} fns[] = {
		{"setup", l_setup},		{"report", l_report},	  {"probe", l_probe},
		{"probe_true", l_probe_true},	{"probe_string", l_probe_string},
		{"probe_number", l_probe_number}, {"probe_nil", l_probe_nil},
	};
	lua_newtable(L);
	for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
		lua_pushcfunction(L, fns[i].fn);
		lua_setfield(L, -2, fns[i].name);
	}
	return 1;
}
