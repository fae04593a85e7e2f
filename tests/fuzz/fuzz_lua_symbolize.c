/* SPDX-License-Identifier: MIT */
/* fuzz_lua_symbolize.c - PUC Lua symbolization from target memory (symbolize/lua_*.c: the Proto,
 * its source TString, line info, chunk and function names) on a fuzzed memory image
 * (fuzz_lua_image.h), read through the same /proc/PID/mem path as a real target's. A name that
 * is given is a pair of terminated strings; its lines cover the code it claims; every pc's line
 * can be asked for. Seeds: real Lua 5.4 heaps (lua_image_seeds.c). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lib/log.h"
#include "runtime/puc/lua_layouts.h"
#include "symbolize/lua_symbolize.h"
#include "tests/fuzz/fuzz_harness.h"
#include "tests/fuzz/fuzz_lua_image.h"

/* The image's place, mapped once; *used: how much of it the last input wrote. */
static uint8_t *image_area(void)
{
	static uint8_t *area;
	if (!area) {
		void *at = mmap((void *)(uintptr_t)FUZZ_LUA_IMAGE_BASE, FUZZ_LUA_IMAGE_MAX,
				PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
				-1, 0);
		FUZZ_ASSERT(at == (void *)(uintptr_t)FUZZ_LUA_IMAGE_BASE, "mmap at %#llx: errno %d",
			    FUZZ_LUA_IMAGE_BASE, errno);
		area = at;
	}
	return area;
}

static void check_info(const struct lua_proto_info *info)
{
	FUZZ_ASSERT(info->function && info->chunk, "a name without its parts");
	FUZZ_ASSERT(strlen(info->function) < (1u << 20) && strlen(info->chunk) < (1u << 20),
		    "names of %zu and %zu bytes", strlen(info->function), strlen(info->chunk));
	FUZZ_ASSERT(!info->lines || info->code_size > 0, "lines for no code");
	for (uint32_t pc = 0; pc <= info->code_size && pc < 70000; pc++)
		(void)lua_proto_line(info, pc);
	(void)lua_proto_line(info, UINT32_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static size_t used;
	uint8_t *area = image_area();
	struct fuzz_lua_image_header hdr;
	if (size < sizeof(hdr) || size - sizeof(hdr) > FUZZ_LUA_IMAGE_MAX)
		return 0;
	memcpy(&hdr, data, sizeof(hdr));
	memset(area, 0, used);
	used = size - sizeof(hdr);
	memcpy(area, data + sizeof(hdr), used);

	lp_set_log_level(LOG_QUIET);
	unsigned count;
	const struct lua_puc_version *versions = lua_puc_versions(&count);
	const struct lua_puc_version *version = &versions[hdr.version % count];
	struct lua_symbolizer *ls = lua_symbolizer_new();
	FUZZ_ASSERT(ls != NULL, "lua_symbolizer_new");
	uint64_t proto = FUZZ_LUA_IMAGE_BASE + hdr.proto_offset;
	const struct lua_proto_info *info = lua_symbolizer_proto(ls, getpid(), version, proto);
	if (info) {
		check_info(info);
		FUZZ_ASSERT(lua_symbolizer_proto(ls, getpid(), version, proto) == info,
			    "the second lookup is not the cached one");
	}
	lua_symbolizer_free(ls);
	return 0;
}
