/* SPDX-License-Identifier: MIT */
/* luajit_embed.c - a minimal program embedding LuaJIT (linked against whichever libluajit-5.1 the
 * test chooses): runs SCRIPT with the standard libraries, `arg` set to the remaining arguments, and
 * one C function of its own, `embed_call(f, ...)`, which calls f through lua_call so that Lua runs
 * inside a C function called from Lua (a second VM activation).
 *
 * It needs no LuaJIT headers: the kernel matrix (tests/kernel_matrix_test.py, as luajit_run) runs
 * it inside a VM against Debian's libluajit-5.1.so.2 and must not depend on the LuaJIT source trees
 * of the luajit_targets fixture. The few functions used are declared here with the stable Lua 5.1
 * C API signatures that every LuaJIT exports. */
#include <stddef.h>
#include <stdio.h>

typedef struct lua_State lua_State;
typedef int (*lua_CFunction)(lua_State *L);

lua_State *luaL_newstate(void);
void luaL_openlibs(lua_State *L);
int luaL_loadfile(lua_State *L, const char *filename);
void luaL_checktype(lua_State *L, int narg, int t);
int lua_gettop(lua_State *L);
void lua_call(lua_State *L, int nargs, int nresults);
int lua_pcall(lua_State *L, int nargs, int nresults, int errfunc);
const char *lua_tolstring(lua_State *L, int idx, size_t *len);
void lua_createtable(lua_State *L, int narr, int nrec);
void lua_pushstring(lua_State *L, const char *s);
void lua_pushcclosure(lua_State *L, lua_CFunction fn, int n);
void lua_rawseti(lua_State *L, int idx, int n);
void lua_setfield(lua_State *L, int idx, const char *k);
void lua_close(lua_State *L);

/* Lua 5.1's constants, as in its lua.h */
#define LUA_GLOBALSINDEX (-10002) /* the pseudo-index of the globals table */
#define LUA_MULTRET (-1)
#define LUA_TFUNCTION 6

static int embed_call(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
	return lua_gettop(L);
}

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
	lua_pushcclosure(L, embed_call, 0);
	lua_setfield(L, LUA_GLOBALSINDEX, "embed_call");
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
