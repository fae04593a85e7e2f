/* SPDX-License-Identifier: MIT */
/* luajit_embed.c - a minimal program embedding LuaJIT (linked against whichever libluajit-5.1 the
 * test chooses): runs SCRIPT with the standard libraries, `arg` set to the remaining arguments, and
 * one C function of its own, `embed_call(f, ...)`, which calls f through lua_call so that Lua runs
 * inside a C function called from Lua (a second VM activation). */
#include <stdio.h>
#include <stdlib.h>

#include "lauxlib.h"
#include "lua.h"
#include "lualib.h"

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
	lua_register(L, "embed_call", embed_call);
	lua_createtable(L, argc - 2, 0);
	for (int i = 2; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setglobal(L, "arg");
	int rc = luaL_dofile(L, argv[1]);
	if (rc != 0)
		fprintf(stderr, "%s\n", lua_tostring(L, -1));
	lua_close(L);
	return rc == 0 ? 0 : 1;
}
