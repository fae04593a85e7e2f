/* SPDX-License-Identifier: MIT */
/* luajit_image_seeds - writes the seeds of the LuaJIT symbolization harness
 * (fuzz_luajit_symbolize.c): a real heap of the system's libluajit (FUZZ_LIBLUAJIT, which this
 * program links), placed at FUZZ_LUA_IMAGE_BASE so that every pointer in it is right where the
 * harness puts the image. One seed per function of the chunks of lua_image_seed.c.
 *
 * LuaJIT's GC64 builds refuse lua_newstate with an allocator of the caller's (it returns NULL):
 * the state has its own allocator, lj_alloc.c, which takes its memory from mmap (mmap_probe, an
 * anonymous mapping anywhere below 2^47). This program defines mmap: while it captures, an
 * anonymous mapping with no fixed address is put at the next free address of the image area.
 * libluajit's calls to mmap go through its PLT to the executable's definition (glibc's own calls
 * do not). munmap in the area keeps the pages (cleared), so that the image stays readable whole.
 *
 * Usage: luajit_image_seeds DIR   (scripts/fuzz-seeds.sh: DIR = tests/fuzz/corpus/luajit_image) */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <luajit.h>

#include "runtime/luajit/luajit_detect.h"
#include "tests/fuzz/fuzz_lua_image.h"
#include "tests/fuzz/lua_image_seed.h"
#include "tests/unit/support/detect_file.h"

#define AREA_END (FUZZ_LUA_IMAGE_BASE + FUZZ_LUA_IMAGE_MAX)

static bool capturing;
static uint64_t area_next = FUZZ_LUA_IMAGE_BASE; /* the image area's first unused page */
static struct luajit_runtime jit;                /* the layout of FUZZ_LIBLUAJIT */

static bool in_area(const void *addr, size_t len)
{
	uint64_t at = (uintptr_t)addr;
	return at >= FUZZ_LUA_IMAGE_BASE && at < AREA_END && len <= AREA_END - at;
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	if (capturing && (flags & MAP_ANONYMOUS) && !(flags & (MAP_FIXED | MAP_FIXED_NOREPLACE))) {
		size_t size = (len + 4095) & ~(size_t)4095;
		if (size == 0 || size > AREA_END - area_next) {
			errno = ENOMEM;
			return MAP_FAILED;
		}
		void *at = (void *)syscall(SYS_mmap, (void *)(uintptr_t)area_next, len, prot,
					   flags | MAP_FIXED_NOREPLACE, fd, offset);
		if (at != MAP_FAILED)
			area_next += size;
		return at;
	}
	return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, offset);
}

/* What libluajit calls (it is built with 64-bit file offsets); the same on x86_64. */
void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
	return mmap(addr, len, prot, flags, fd, offset);
}

int munmap(void *addr, size_t len)
{
	if (in_area(addr, len)) {
		memset(addr, 0, len);
		return 0;
	}
	return (int)syscall(SYS_munmap, addr, len);
}

/* lua_image_proto_of: lj_obj.h funcproto(), the GCproto right before the bytecode that the
 * GCfuncL's pc points to. */
static uint64_t closure_proto(lua_State *L)
{
	uint64_t pc;
	memcpy(&pc, (const char *)lua_topointer(L, -1) + jit.interp.jit.func_pc, sizeof(pc));
	return pc - jit.interp.jit.proto_size;
}

/* The image up to the free top chunk of the arena: up to the last page-long run of zero bytes,
 * after which lie only the top chunk's size and the fake trailing chunk that init_top (lj_alloc.c)
 * writes at the segment's end (TOP_FOOT_SIZE), no Lua object. Keeps each seed at the size of
 * what the state holds (tens of KiB) rather than of the 128 KiB segment. */
static size_t image_size(void)
{
	const uint8_t *image = (const uint8_t *)(uintptr_t)FUZZ_LUA_IMAGE_BASE;
	size_t size = (size_t)(area_next - FUZZ_LUA_IMAGE_BASE);
	size_t zeros = 0; /* how many zero bytes follow at */
	for (size_t at = size; at > 0; at--) {
		if (image[at - 1] == 0)
			zeros++;
		else if (zeros >= 4096)
			return at;
		else
			zeros = 0;
	}
	return size;
}

static bool detect_layout(void)
{
	enum lua_detect_result result = LUA_DETECT_NONE;
	const char *reason = NULL;
	if (lua_detect_file(FUZZ_LIBLUAJIT, NULL, &jit, &result, &reason) != 0 ||
	    result != LUA_DETECT_OK) {
		fprintf(stderr, "%s: LuaJIT not detected (%s)\n", FUZZ_LIBLUAJIT, reason ? reason : "-");
		return false;
	}
	if (!jit.interp.jit.gc64) { /* pc is a 4-byte MRef in GC32 builds */
		fprintf(stderr, "%s: not a GC64 build\n", FUZZ_LIBLUAJIT);
		return false;
	}
	return true;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: luajit_image_seeds DIR\n");
		return 2;
	}
	if (!detect_layout())
		return 1;
	capturing = true;
	lua_State *L = luaL_newstate();
	/* No traces: the JIT's machine code areas are mmap()ed near the VM, not here. */
	if (!L || !luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF)) {
		fprintf(stderr, "luaL_newstate or luaJIT_setmode failed\n");
		return 1;
	}
	uint64_t protos[LUA_IMAGE_SEED_PROTOS];
	int count = lua_image_seed_protos(L, closure_proto, protos);
	capturing = false;
	if (count < 0) {
		fprintf(stderr, "a chunk failed: %s\n", lua_tostring(L, -1));
		return 1;
	}
	int status = lua_image_seed_write_all(argv[1], "luajit_proto", 0, protos, (unsigned)count,
					      (const void *)(uintptr_t)FUZZ_LUA_IMAGE_BASE,
					      image_size());
	lua_close(L);
	luajit_runtime_free(&jit);
	return status == 0 ? 0 : 1;
}
