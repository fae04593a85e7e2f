/* SPDX-License-Identifier: MIT */
/*
 * lua_embed.c - a program that embeds Lua 5.4 through Debian's shared liblua5.4.so.0, so that the
 * Lua VM (luaV_execute, the libraries) lives in a shared library rather than in the executable.
 * The lua-perf tests (tests/lua_profile_test.py, interpreter "embed54") run the workloads of
 * tests/lua/ with it.
 *
 *   lua_embed SCRIPT [ARGS...]
 *
 * Like the standalone interpreter it sets the global `arg` (arg[0] = SCRIPT, arg[1..] = ARGS) and
 * passes ARGS to the chunk as `...`; the chunk is loaded with luaL_loadfile, so its chunk name is
 * "@SCRIPT", and run with lua_pcall. Native stack below the chunk, root first:
 *   _start;__libc_start_main;__libc_start_call_main;main;run_script;lua_pcallk;<liblua5.4 ...>
 * Exit status: 0 when the script returns, 1 on a load or run error (message and traceback on
 * stderr), 2 on a usage error.
 */
#include <stdio.h>
#include <stdlib.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* Message handler for lua_pcall: the error message with a traceback. */
static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (msg == NULL)
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

/* Loads and runs the script; noinline keeps a frame of this program between main and liblua. */
static __attribute__((noinline)) int run_script(lua_State *L, const char *path, int nargs,
						char **args)
{
	lua_pushcfunction(L, traceback);
	int handler = lua_gettop(L);
	if (luaL_loadfile(L, path) != LUA_OK) {
		fprintf(stderr, "lua_embed: %s\n", lua_tostring(L, -1));
		return 1;
	}
	luaL_checkstack(L, nargs, "too many arguments");
	for (int i = 0; i < nargs; i++)
		lua_pushstring(L, args[i]);
	if (lua_pcall(L, nargs, 0, handler) != LUA_OK) {
		fprintf(stderr, "lua_embed: %s\n", lua_tostring(L, -1));
		return 1;
	}
	lua_settop(L, handler - 1);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: %s SCRIPT [ARGS...]\n", argv[0]);
		return 2;
	}
	lua_State *L = luaL_newstate();
	if (L == NULL) {
		fprintf(stderr, "lua_embed: cannot create a Lua state (out of memory)\n");
		return 1;
	}
	luaL_openlibs(L);

	lua_createtable(L, argc - 2, 1);
	for (int i = 1; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - 1);
	}
	lua_setglobal(L, "arg");

	int rc = run_script(L, argv[1], argc - 2, argv + 2);
	lua_close(L);
	return rc;
}
