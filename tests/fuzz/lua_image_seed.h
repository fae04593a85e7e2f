/* SPDX-License-Identifier: MIT */
/* lua_image_seed.h - what the seed generators of the Lua image harnesses share (lua_image_seeds.c
 * for PUC Lua 5.4, luajit_image_seeds.c for LuaJIT; each compiles lua_image_seed.c against its own
 * lua.h): the chunks whose functions become seeds, and the writing of the seeds
 * (fuzz_lua_image.h format). */
#ifndef LUA_PERF_LUA_IMAGE_SEED_H
#define LUA_PERF_LUA_IMAGE_SEED_H

#include <stddef.h>
#include <stdint.h>

#include <lua.h>

/* Room for the protos of lua_image_seed_protos: two per chunk. */
#define LUA_IMAGE_SEED_PROTOS 6

/* The address of the proto of the Lua function at the top of L's stack. */
typedef uint64_t (*lua_image_proto_of)(lua_State *L);

/* Loads and runs each chunk in L (main chunks and nested functions; file, "=" and string chunk
 * names; long functions and line gaps for the line info; Lua 5.1 syntax, for LuaJIT too): the
 * protos of its main function and of the function it returns go to protos. How many, or -1 when a
 * chunk fails to load or run. */
int lua_image_seed_protos(lua_State *L, lua_image_proto_of proto_of,
			  uint64_t protos[LUA_IMAGE_SEED_PROTOS]);

/* Writes DIR/<name>_<i> for each of the count protos: the header (version, the proto's offset),
 * then the image (size bytes, what lies at FUZZ_LUA_IMAGE_BASE). 0, or -1 with a message. */
int lua_image_seed_write_all(const char *dir, const char *name, uint8_t version,
			     const uint64_t *protos, unsigned count, const void *image, size_t size);

#endif
