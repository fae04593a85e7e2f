/* SPDX-License-Identifier: MIT */
/* fuzz_luajit_symbolize.c - LuaJIT symbolization from target memory (symbolize/lua_luajit_proto.c
 * and what lua_symbolize.c does with it: the GCproto, its chunkname GCstr, the line info of the
 * width numline asks for, chunk and function names) on a fuzzed memory image (fuzz_lua_image.h),
 * read through /proc/self/mem as a real target's. The layout is the one a profile would use: the
 * LuaJIT detector's result on the system's libluajit (FUZZ_LIBLUAJIT), derived once at start.
 * Properties as for PUC Lua (fuzz_lua_image_symbolize). Seeds: real heaps of that libluajit
 * (luajit_image_seeds.c). */
#include <unistd.h>

#include "lib/log.h"
#include "runtime/luajit/luajit_detect.h"
#include "symbolize/lua_symbolize.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/fuzz/fuzz_lua_image.h"
#include "tests/unit/support/detect_file.h"

/* The build's runtime, detected at the first input and kept for the process's life. The harness
 * is only built where the file exists (tests/cmake/fuzz.cmake): a failed detection is a finding of
 * the detector, not of this harness, but nothing here could run without it. */
static const struct luajit_runtime *runtime(void)
{
	static struct luajit_runtime rt;
	static bool detected;
	if (!detected) {
		enum lua_detect_result result = LUA_DETECT_NONE;
		const char *reason = NULL;
		FUZZ_ASSERT(lua_detect_file(FUZZ_LIBLUAJIT, NULL, &rt, &result, &reason) == 0 &&
				    result == LUA_DETECT_OK,
			    "%s: LuaJIT not detected (%s)", FUZZ_LIBLUAJIT, reason ? reason : "-");
		detected = true;
	}
	return &rt;
}

/* fuzz_lua_lookup */
static const struct lua_proto_info *lookup(struct lua_symbolizer *ls, const void *jit,
					   uint64_t proto)
{
	return lua_symbolizer_luajit_proto(ls, getpid(), jit, proto);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	lp_set_log_level(LOG_QUIET); /* before the detection too: its debug lines are not wanted */
	const struct luajit_runtime *jit = runtime();
	struct fuzz_lua_image_header hdr;
	if (fuzz_lua_image_place(data, size, &hdr))
		fuzz_lua_image_symbolize(lookup, jit, &hdr);
	return 0;
}
