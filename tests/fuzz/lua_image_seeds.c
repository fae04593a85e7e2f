/* SPDX-License-Identifier: MIT */
/* lua_image_seeds - writes the seeds of the Lua symbolization harness (fuzz_lua_symbolize.c):
 * a real Lua heap, made by a lua_State whose allocator serves from the image area at
 * FUZZ_LUA_IMAGE_BASE, so that every pointer in it is right where the harness puts the image.
 * One seed per function of the chunks below (main chunks and nested functions; file, "=" and
 * string chunk names; long functions and line gaps for the line info).
 *
 * Usage: lua_image_seeds DIR   (scripts/fuzz-seeds.sh: DIR = tests/fuzz/corpus/lua_image) */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <lauxlib.h>
#include <lua.h>

#include "runtime/puc/lua_layouts.h"
#include "tests/fuzz/fuzz_lua_image.h"

static uint8_t *arena;
static size_t arena_used;

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

static const struct {
	const char *name, *code;
} chunks[] = {
	{"@app.lua", "local M = {}\nfunction M.handle(req)\n  local s = 0\n  for i = 1, #req do\n"
		     "    s = s + i\n  end\n\n\n\n  return s\nend\nreturn M.handle"},
	{"=stdin", "local function leaf(x) return x * 2 end\nreturn leaf"},
	{"return function(a, b)\n  if a then\n    return b\n  end\n  return a\nend",
	 "return function(a, b)\n  if a then\n    return b\n  end\n  return a\nend"},
};

static int write_seed(const char *dir, unsigned index, uint8_t version, uint64_t proto)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/lua54_proto_%u", dir, index);
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	struct fuzz_lua_image_header hdr = {.version = version,
					    .proto_offset = (uint32_t)(proto - FUZZ_LUA_IMAGE_BASE)};
	int ok = fwrite(&hdr, sizeof(hdr), 1, f) == 1 && fwrite(arena, arena_used, 1, f) == 1;
	return fclose(f) == 0 && ok ? 0 : -1;
}

/* The index of this Lua's layout in lua_puc_versions(). */
static int version_index(void)
{
	unsigned count;
	const struct lua_puc_version *all = lua_puc_versions(&count);
	const struct lua_puc_version *mine = lua_puc_version_find(LUA_RELEASE + 4); /* "Lua " */
	for (unsigned i = 0; i < count; i++)
		if (&all[i] == mine)
			return (int)i;
	return -1;
}

int main(int argc, char **argv)
{
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
	const struct lua_puc_version *v = lua_puc_version_find(LUA_RELEASE + 4);
	uint64_t protos[2 * sizeof(chunks) / sizeof(chunks[0])];
	unsigned count = 0;
	for (size_t i = 0; L && i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		if (luaL_loadbuffer(L, chunks[i].code, strlen(chunks[i].code), chunks[i].name) != 0)
			return 1;
		for (int nested = 0; nested < 2; nested++) { /* the main chunk, then what it returns */
			uint64_t proto;
			memcpy(&proto, (const char *)lua_topointer(L, -1) + v->vm.lclosure_p, sizeof(proto));
			protos[count++] = proto;
			if (!nested && lua_pcall(L, 0, 1, 0) != 0)
				return 1;
		}
	}
	for (unsigned i = 0; i < count; i++)
		if (write_seed(argv[1], i, (uint8_t)version, protos[i]) != 0) {
			fprintf(stderr, "%s: cannot write: %s\n", argv[1], strerror(errno));
			return 1;
		}
	printf("%u seeds of %zu bytes in %s\n", count, arena_used + sizeof(struct fuzz_lua_image_header),
	       argv[1]);
	return 0;
}
