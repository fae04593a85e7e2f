/* SPDX-License-Identifier: MIT */
/* luajit_run.c - runs SCRIPT [ARG...] under Debian's libluajit-5.1.so.2 (libluajit2-5.1-2,
 * OpenResty luajit2, GC64) with the standard libraries and `arg` set to the arguments, like
 * tests/luajit/luajit_embed.c but with no LuaJIT headers: the kernel matrix
 * (tests/kernel_matrix_test.py) runs it inside a VM and must not depend on the LuaJIT source
 * trees of the luajit_targets fixture. The few functions used are declared here with the
 * stable Lua 5.1 C API signatures that LuaJIT exports. */
#include <stddef.h>
#include <stdio.h>

typedef struct lua_State lua_State;

lua_State *luaL_newstate(void);
void luaL_openlibs(lua_State *L);
int luaL_loadfile(lua_State *L, const char *filename);
int lua_pcall(lua_State *L, int nargs, int nresults, int errfunc);
const char *lua_tolstring(lua_State *L, int idx, size_t *len);
void lua_createtable(lua_State *L, int narr, int nrec);
void lua_pushstring(lua_State *L, const char *s);
void lua_rawseti(lua_State *L, int idx, int n);
void lua_setfield(lua_State *L, int idx, const char *k);
void lua_close(lua_State *L);

#define LUA_GLOBALSINDEX (-10002) /* Lua 5.1's pseudo-index of the globals table */

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SCRIPT [ARG...]\n", argv[0]);
		return 2;
	}
	lua_State *L = luaL_newstate();
	if (!L) {
		fprintf(stderr, "luaL_newstate failed\n");
		return 1;
	}
	luaL_openlibs(L);
	lua_createtable(L, argc - 2, 0);
	for (int i = 2; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setfield(L, LUA_GLOBALSINDEX, "arg");
	int rc = luaL_loadfile(L, argv[1]);
	if (rc == 0)
		rc = lua_pcall(L, 0, 0, 0);
	if (rc != 0) {
		const char *msg = lua_tolstring(L, -1, NULL);
		fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
	}
	lua_close(L);
	return rc == 0 ? 0 : 1;
}
