/* SPDX-License-Identifier: MIT */
/* fuzz_lua_image.h - the input format of the Lua symbolization harness (fuzz_lua_symbolize.c) and
 * of its seed generator (lua_image_seeds.c): a header, then a memory image that the harness
 * places at FUZZ_LUA_IMAGE_BASE in its own address space, where the symbolizer reads it as a
 * target's memory (through /proc/self/mem, as it reads any target's). */
#ifndef LUA_PERF_FUZZ_LUA_IMAGE_H
#define LUA_PERF_FUZZ_LUA_IMAGE_H

#include <stdint.h>

/* A user address nothing maps by chance (below the 47-bit limit, far above heap and libraries). */
#define FUZZ_LUA_IMAGE_BASE 0x500000000000ull
#define FUZZ_LUA_IMAGE_MAX (4u << 20)

struct fuzz_lua_image_header {
	uint8_t version;       /* index into lua_puc_versions() (modulo their count) */
	uint8_t reserved[3];
	uint32_t proto_offset; /* the Proto to name: FUZZ_LUA_IMAGE_BASE + proto_offset */
};

#endif
