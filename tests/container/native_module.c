/* SPDX-License-Identifier: MIT */
/* native_module.c - a Lua 5.4 C module for tests/container_profile_test.py, compiled by the test
 * itself in variants that differ only in the names of their two functions:
 *   -DMODULE=ctnative|ctlink       the module name (luaopen_<MODULE>, the only exported symbol)
 *   -DNAME_PREFIX=<prefix>         the functions are <prefix>entry (registered as `spin`) and
 *                                  <prefix>spin (its callee, the leaf that burns the CPU)
 * The test strips the container's copy: its two static functions can then be named only by the
 * separate debug file that the container holds, and a different variant at the same path on the
 * host (or its debug file at the host path a symlink inside the container names) would show
 * other names. */
#include <lauxlib.h>
#include <lua.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define FN(name) CAT(NAME_PREFIX, name)

static volatile lua_Integer sink;

/* The leaf: integer work in its own frame (noipa: neither inlined nor cloned under another
 * name such as .isra.0). */
__attribute__((noipa)) static lua_Integer FN(spin)(lua_Integer n)
{
	lua_Integer acc = 0;

	for (lua_Integer i = 0; i < n; i++) {
		acc = (acc * 31 + i) % 1000003;
		sink = acc;
	}
	return acc;
}

/* Called by the VM: spin(n) -> the checksum. Not a tail call (the push comes after). */
__attribute__((noipa)) static int FN(entry)(lua_State *L)
{
	lua_Integer result = FN(spin)(luaL_checkinteger(L, 1));

	lua_pushinteger(L, result);
	return 1;
}

int CAT(luaopen_, MODULE)(lua_State *L)
{
	static const luaL_Reg functions[] = {{"spin", FN(entry)}, {NULL, NULL}};

	luaL_newlib(L, functions);
	return 1;
}
