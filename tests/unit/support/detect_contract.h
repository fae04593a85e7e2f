/* SPDX-License-Identifier: MIT */
/* detect_contract.h - what a result of each Lua runtime detector must hold, whatever the file it
 * was given: checked on hostile copies of real files (tests/unit/support/hostile_elf.h) and on
 * every fuzzed input (tests/fuzz/). */
#ifndef LUA_PERF_TEST_DETECT_CONTRACT_H
#define LUA_PERF_TEST_DETECT_CONTRACT_H

#include <stdbool.h>

#include "runtime/lua_runtime.h"
#include "runtime/luajit/luajit_detect.h"

/* PUC Lua (lua_runtime_detect): the version string is terminated; OK fills a layout of its
 * kind, a non-empty range and where L is (a callee-saved register, or a frame slot below the
 * return address). */
bool puc_detect_contract_kept(enum lua_detect_result result, const struct lua_runtime *rt);

/* LuaJIT (luajit_detect): OK gives the interpreter range, a layout a walker can use and the
 * fast function names ("assert" at ffid 2, nothing at 0 and 1); otherwise no names to free. */
bool luajit_detect_contract_kept(enum lua_detect_result result, const struct luajit_runtime *rt);

#endif
