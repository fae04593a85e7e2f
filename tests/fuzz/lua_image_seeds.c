/* SPDX-License-Identifier: MIT */
/* lua_image_seeds - writes the seeds of the Lua symbolization harness (fuzz_lua_symbolize.c):
 * a real Lua heap, made by a lua_State whose allocator serves from the image area at
 * FUZZ_LUA_IMAGE_BASE, so that every pointer in it is right where the harness puts the image.
 * One seed per function of the chunks of lua_image_seed.c.
 *
 * Usage: lua_image_seeds DIR   (scripts/fuzz-seeds.sh: DIR = tests/fuzz/corpus/lua_image) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <lauxlib.h>
#include <lua.h>

#include "runtime/puc/lua_layouts.h"
#include "tests/fuzz/fuzz_lua_image.h"
#include "tests/fuzz/lua_image_seed.h"

static uint8_t *arena;
static size_t arena_used;
static const struct lua_puc_version *layout; /* this Lua's */

/* lua_Alloc over the arena: nothing is freed (the heap stays small), moves copy. */
static void *arena_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	if (nsize == 0)
		return NULL;
	size_t at = (arena_used + 15) & ~(size_t)15;
	if (at + nsize > FUZZ_LUA_IMAGE_MAX)
		return NULL;
	arena_used = at + nsize;
	if (ptr)
		memcpy(arena + at, ptr, osize < nsize ? osize : nsize);
	return arena + at;
}

/* lua_image_proto_of: LClosure.p */
static uint64_t closure_proto(lua_State *L)
{
	uint64_t proto;
	memcpy(&proto, (const char *)lua_topointer(L, -1) + layout->vm.lclosure_p, sizeof(proto));
	return proto;
}

/* The index of this Lua's layout in lua_puc_versions(). */
static int version_index(void)
{
	unsigned count;
	const struct lua_puc_version *all = lua_puc_versions(&count);
	for (unsigned i = 0; i < count; i++)
		if (&all[i] == layout)
			return (int)i;
	return -1;
}

int main(int argc, char **argv)
{
	layout = lua_puc_version_find(LUA_RELEASE + 4); /* "Lua " */
	int version = version_index();
	if (argc != 2 || version < 0) {
		fprintf(stderr, "usage: lua_image_seeds DIR (and a Lua whose layout lua-perf knows)\n");
		return 2;
	}
	arena = mmap((void *)(uintptr_t)FUZZ_LUA_IMAGE_BASE, FUZZ_LUA_IMAGE_MAX, PROT_READ | PROT_WRITE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (arena != (void *)(uintptr_t)FUZZ_LUA_IMAGE_BASE) {
		perror("mmap");
		return 1;
	}
	lua_State *L = lua_newstate(arena_alloc, NULL);
	uint64_t protos[LUA_IMAGE_SEED_PROTOS];
	int count = L ? lua_image_seed_protos(L, closure_proto, protos) : -1;
	if (count < 0)
		return 1;
	return lua_image_seed_write_all(argv[1], "lua54_proto", (uint8_t)version, protos,
					(unsigned)count, arena, arena_used) == 0 ? 0 : 1;
}
