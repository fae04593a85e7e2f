/* SPDX-License-Identifier: MIT */
#include "tests/fuzz/fuzz_lua_image.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "lib/log.h"
#include "tests/fuzz/fuzz_harness.h"

/* The image's place, mapped once. */
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

bool fuzz_lua_image_place(const uint8_t *data, size_t size, struct fuzz_lua_image_header *hdr)
{
	static size_t used; /* how much of the area the last input wrote */
	uint8_t *area = image_area();
	if (size < sizeof(*hdr) || size - sizeof(*hdr) > FUZZ_LUA_IMAGE_MAX)
		return false;
	memcpy(hdr, data, sizeof(*hdr));
	memset(area, 0, used);
	used = size - sizeof(*hdr);
	memcpy(area, data + sizeof(*hdr), used);
	return true;
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
	FUZZ_ASSERT(!info->tail_calls == !info->tail_call_count, "tail calls %u, array %p",
		    info->tail_call_count, (const void *)info->tail_calls);
	for (uint32_t i = 0; i < info->tail_call_count; i++) {
		uint32_t pc = info->tail_calls[i];
		FUZZ_ASSERT(pc < info->code_size && (i == 0 || pc > info->tail_calls[i - 1]),
			    "tail call %u at %u of %u instructions", i, pc, info->code_size);
		FUZZ_ASSERT(lua_proto_is_tail_call(info, pc), "tail call at %u not found", pc);
	}
	FUZZ_ASSERT(!lua_proto_is_tail_call(info, UINT32_MAX), "a tail call past the code");
}

void fuzz_lua_image_symbolize(fuzz_lua_lookup lookup, const void *vm,
			      const struct fuzz_lua_image_header *hdr)
{
	lp_set_log_level(LOG_QUIET);
	struct lua_symbolizer *ls = lua_symbolizer_new();
	FUZZ_ASSERT(ls != NULL, "lua_symbolizer_new");
	uint64_t proto = FUZZ_LUA_IMAGE_BASE + hdr->proto_offset;
	const struct lua_proto_info *info = lookup(ls, vm, proto);
	if (info) {
		check_info(info);
		FUZZ_ASSERT(lookup(ls, vm, proto) == info, "the second lookup is not the cached one");
	}
	lua_symbolizer_free(ls);
}
