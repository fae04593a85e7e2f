/* SPDX-License-Identifier: MIT */
/* detect_file.h - a Lua runtime detector (runtime/lua_runtime.h for PUC Lua,
 * runtime/luajit/luajit_detect.h for LuaJIT) on a file given by path, as the profiler runs it on a
 * mapped file: the ELF image, its call frame table, then the detector. */
#ifndef LUA_PERF_TEST_DETECT_FILE_H
#define LUA_PERF_TEST_DETECT_FILE_H

#include "runtime/lua_runtime.h"
#include "runtime/luajit/luajit_detect.h"

/* PUC detection (lua_runtime_detect into *puc) when puc is set, LuaJIT's (luajit_detect into *jit)
 * otherwise. 0 with *result, the runtime and *reason as the detector leaves them (a file whose
 * call frame table cannot be built is detected without one); -1 when path is not a readable ELF
 * file. */
int lua_detect_file(const char *path, struct lua_runtime *puc, struct luajit_runtime *jit,
		    enum lua_detect_result *result, const char **reason);

#endif
