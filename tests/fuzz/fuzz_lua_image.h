/* SPDX-License-Identifier: MIT */
/* fuzz_lua_image.h - the input format of the Lua symbolization harnesses (fuzz_lua_symbolize.c for
 * PUC Lua, fuzz_luajit_symbolize.c for LuaJIT) and of their seed generators (lua_image_seeds.c,
 * luajit_image_seeds.c): a header, then a memory image that the harness places at
 * FUZZ_LUA_IMAGE_BASE in its own address space, where the symbolizer reads it as a target's
 * memory (through /proc/self/mem, as it reads any target's); and what both harnesses check. */
#ifndef LUA_PERF_FUZZ_LUA_IMAGE_H
#define LUA_PERF_FUZZ_LUA_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "symbolize/lua_symbolize.h"

/* A user address nothing maps by chance (below the 47-bit limit, far above heap and libraries). */
#define FUZZ_LUA_IMAGE_BASE 0x500000000000ull
#define FUZZ_LUA_IMAGE_MAX (4u << 20)

struct fuzz_lua_image_header {
	uint8_t version;       /* lua_symbolize: index into lua_puc_versions() (modulo their count);
				* luajit_symbolize: unused (one build, the system's libluajit) */
	uint8_t reserved[3];
	uint32_t proto_offset; /* the Proto to name: FUZZ_LUA_IMAGE_BASE + proto_offset */
};

/* Splits an input into *hdr and the image, placed at FUZZ_LUA_IMAGE_BASE (mapped at the first
 * call; what the previous input left there is cleared). false when the input has no header or
 * its image is larger than FUZZ_LUA_IMAGE_MAX. */
bool fuzz_lua_image_place(const uint8_t *data, size_t size, struct fuzz_lua_image_header *hdr);

/* A lookup of the symbolizer (lua_symbolizer_proto or lua_symbolizer_luajit_proto) with the VM's
 * layout vm, in this process. */
typedef const struct lua_proto_info *(*fuzz_lua_lookup)(struct lua_symbolizer *ls, const void *vm,
							 uint64_t proto);

/* Looks the image's proto up with a new symbolizer and checks the result: none (the proto was
 * refused), or a function and a chunk name (terminated, bounded), lines only for code, every pc's
 * line can be asked for; the same lookup again is the cached info. */
void fuzz_lua_image_symbolize(fuzz_lua_lookup lookup, const void *vm,
			      const struct fuzz_lua_image_header *hdr);

#endif
