/* SPDX-License-Identifier: MIT */
#include "tests/fuzz/lua_image_seed.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>

#include "tests/fuzz/fuzz_lua_image.h"

static const struct {
	const char *name, *code;
} chunks[] = {
	{"@app.lua", "local M = {}\nfunction M.handle(req)\n  local s = 0\n  for i = 1, #req do\n"
		     "    s = s + i\n  end\n\n\n\n  return s\nend\nreturn M.handle"},
	{"=stdin", "local function leaf(x) return x * 2 end\nreturn leaf"},
	{"return function(a, b)\n  if a then\n    return b\n  end\n  return a\nend",
	 "return function(a, b)\n  if a then\n    return b\n  end\n  return a\nend"},
};
_Static_assert(2 * sizeof(chunks) / sizeof(chunks[0]) == LUA_IMAGE_SEED_PROTOS, "room per chunk");

int lua_image_seed_protos(lua_State *L, lua_image_proto_of proto_of,
			  uint64_t protos[LUA_IMAGE_SEED_PROTOS])
{
	int count = 0;
	for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
		if (luaL_loadbuffer(L, chunks[i].code, strlen(chunks[i].code), chunks[i].name) != 0)
			return -1;
		protos[count++] = proto_of(L); /* the main chunk */
		if (lua_pcall(L, 0, 1, 0) != 0)
			return -1;
		protos[count++] = proto_of(L); /* what it returns, kept on the stack (alive) */
	}
	return count;
}

static int write_seed(const char *path, uint8_t version, uint64_t proto, const void *image,
		      size_t size)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	struct fuzz_lua_image_header hdr = {.version = version,
					    .proto_offset = (uint32_t)(proto - FUZZ_LUA_IMAGE_BASE)};
	int ok = fwrite(&hdr, sizeof(hdr), 1, f) == 1 && fwrite(image, size, 1, f) == 1;
	return fclose(f) == 0 && ok ? 0 : -1;
}

int lua_image_seed_write_all(const char *dir, const char *name, uint8_t version,
			     const uint64_t *protos, unsigned count, const void *image, size_t size)
{
	for (unsigned i = 0; i < count; i++) {
		char path[4096];
		if (protos[i] < FUZZ_LUA_IMAGE_BASE || protos[i] - FUZZ_LUA_IMAGE_BASE >= size) {
			fprintf(stderr, "proto %u at %#llx: not in the image\n", i,
				(unsigned long long)protos[i]);
			return -1;
		}
		snprintf(path, sizeof(path), "%s/%s_%u", dir, name, i);
		if (write_seed(path, version, protos[i], image, size) != 0) {
			fprintf(stderr, "%s: cannot write: %s\n", path, strerror(errno));
			return -1;
		}
	}
	printf("%u seeds of %zu bytes in %s\n", count, size + sizeof(struct fuzz_lua_image_header),
	       dir);
	return 0;
}
