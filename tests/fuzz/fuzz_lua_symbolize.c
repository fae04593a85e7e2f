/* SPDX-License-Identifier: MIT */
/* fuzz_lua_symbolize.c - PUC Lua symbolization from target memory (symbolize/lua_*.c: the Proto,
 * its source TString, line info, chunk and function names) on a fuzzed memory image
 * (fuzz_lua_image.h), read through the same /proc/PID/mem path as a real target's. A name that
 * is given is a pair of terminated strings; its lines cover the code it claims; every pc's line
 * can be asked for (fuzz_lua_image_symbolize). Seeds: real Lua 5.4 heaps (lua_image_seeds.c). */
#include <unistd.h>

#include "runtime/puc/lua_layouts.h"
#include "symbolize/lua_symbolize.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/fuzz/fuzz_lua_image.h"

/* fuzz_lua_lookup */
static const struct lua_proto_info *lookup(struct lua_symbolizer *ls, const void *version,
					   uint64_t proto)
{
	return lua_symbolizer_proto(ls, getpid(), version, proto);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_lua_image_header hdr;
	if (!fuzz_lua_image_place(data, size, &hdr))
		return 0;
	unsigned count;
	const struct lua_puc_version *versions = lua_puc_versions(&count);
	fuzz_lua_image_symbolize(lookup, &versions[hdr.version % count], &hdr);
	return 0;
}
