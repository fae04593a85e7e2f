/* SPDX-License-Identifier: MIT */
/*
 * lua_yield_host.c - an event loop that runs a Lua request handler in a coroutine and keeps
 * itself responsive by interrupting it: the way servers embed Lua. Built by the tests against
 * Debian's liblua5.1, liblua5.3, liblua5.4 and libluajit-5.1 (the same source: the API differs
 * only in lua_resume's arguments and in what 5.1 lacks), for tests/lua_yield_profile_test.py.
 *
 *   lua_yield_host SCRIPT SCENARIO INTERRUPT SECONDS
 *
 * SCRIPT (tests/lua_yield/yield_app.lua) defines the global function <SCENARIO>_handler. The host
 * creates a coroutine (lua_newthread), resumes it with that handler, and resumes it again each
 * time it yields, for SECONDS seconds. INTERRUPT is how the handler is made to yield:
 *   hook  a count hook on the coroutine whose hook calls lua_yield(L, 0) every HOOK_COUNT
 *         instructions (NESTED_HOOK_COUNT for the coroutines given host_interrupt) (not
 *         LuaJIT: its count hook is not called from compiled code);
 *   line  a line hook on the coroutine that calls lua_yield(L, 0) every LINE_YIELD_EVERY line
 *         events (NESTED_LINE_YIELD_EVERY for the coroutines given host_interrupt) (not
 *         LuaJIT, as hook);
 *   call  the Lua code's calls to host_pause() yield (a C function called by Lua that returns
 *         lua_yield(L, 0)); with hook or line, host_pause() returns at once.
 * C functions the script calls (globals):
 *   host_pause()                yields when INTERRUPT is call
 *   host_interrupt(co)          gives the coroutine co the same interruption as the handler's
 *                               (the count hook; nothing with call)
 *   host_pcall(f, ...)          5.2+: f(...) through lua_pcallk with a continuation, so that f
 *                               may yield; returns f's first result, raises f's error
 *   host_yield_then_call(f, ...) 5.2+: yields with lua_yieldk; its continuation calls f(...)
 *                               through lua_callk and returns f's first result
 * Output: "version <Lua release>", "ready" once the handler has yielded READY_YIELDS times, and
 * at the end "yields N resumes M" (N: every yield of any coroutine, the hook's and host_pause's;
 * M: resumes of the handler by this loop). Exit status 0 after SECONDS, 1 when the handler
 * fails or returns, 2 on a usage error.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime */

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

/* The LuaJIT build is compiled with -DLUA_YIELD_HOST_LUAJIT: LuaJIT's lua.h says "Lua 5.1". */
#ifdef LUA_YIELD_HOST_LUAJIT
#include <luajit.h>
#define HOST_LUA_RELEASE LUAJIT_VERSION
#else
#define HOST_LUA_RELEASE LUA_RELEASE
#endif

#ifndef LUA_OK
#define LUA_OK 0 /* 5.1 has no name for it */
#endif

/* Instructions between two yields of the count hook: the handler yields every few microseconds,
 * so that most samples find it resumed after a yield. A coroutine that the handler resumes
 * (host_interrupt) runs nearly all the instructions: it yields less often, so that the work of
 * yielding and resuming twice does not crowd out the samples of its hot function. */
#define HOOK_COUNT 2000
#define NESTED_HOOK_COUNT 20000
#define READY_YIELDS 100
#define LINE_YIELD_EVERY 200
#define NESTED_LINE_YIELD_EVERY 2000

enum interrupt { INTERRUPT_HOOK, INTERRUPT_LINE, INTERRUPT_CALL };

static enum interrupt interrupt_mode;
static unsigned long yields;

static void yield_hook(lua_State *L, lua_Debug *ar)
{
	(void)ar;
	yields++;
	/* A count hook may yield with no values (lua_sethook, 5.1 to 5.4). */
	lua_yield(L, 0);
}

/* A line hook yields like a count hook (lua_sethook: "hooks can yield ... count and line
 * events"): the handler every LINE_YIELD_EVERY of its own line events, a coroutine given
 * host_interrupt every NESTED_LINE_YIELD_EVERY of its own. One shared count would always run out
 * in the nested coroutine, which runs nearly all the lines: the handler would never yield. */
static lua_State *handler_co;

static void line_yield_hook(lua_State *L, lua_Debug *ar)
{
	static unsigned long handler_lines, nested_lines;
	(void)ar;
	if (L == handler_co ? ++handler_lines % LINE_YIELD_EVERY != 0
			    : ++nested_lines % NESTED_LINE_YIELD_EVERY != 0)
		return;
	yields++;
	lua_yield(L, 0);
}

static void interrupt_coroutine(lua_State *co, int count)
{
	if (interrupt_mode == INTERRUPT_HOOK)
		lua_sethook(co, yield_hook, LUA_MASKCOUNT, count);
	else if (interrupt_mode == INTERRUPT_LINE)
		lua_sethook(co, line_yield_hook, LUA_MASKLINE, 0);
}

static int host_pause(lua_State *L)
{
	if (interrupt_mode != INTERRUPT_CALL)
		return 0;
	yields++;
	return lua_yield(L, 0);
}

static int host_interrupt(lua_State *L)
{
	lua_State *co = lua_tothread(L, 1);
	if (co == NULL)
		return luaL_argerror(L, 1, "coroutine expected");
	interrupt_coroutine(co, NESTED_HOOK_COUNT);
	return 0;
}

#if LUA_VERSION_NUM >= 502 && !defined(LUAJIT_VERSION)
/* The continuation of host_pcall and host_yield_then_call (and their direct end): f's first
 * result, or f's error raised again. */
static int first_result(lua_State *L, int status, lua_KContext ctx)
{
	(void)ctx;
	if (status != LUA_OK && status != LUA_YIELD)
		return lua_error(L);
	return 1;
}

static int host_pcall(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	int status = lua_pcallk(L, lua_gettop(L) - 1, 1, 0, 0, first_result);
	return first_result(L, status, 0);
}

/* Runs after the yield of host_yield_then_call, from lua_resume (ldo.c resume()): the stack is
 * f and its arguments again (the yield passed no values, the resume none). */
static int call_after_yield(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	lua_callk(L, lua_gettop(L) - 1, 1, ctx, first_result);
	return first_result(L, LUA_OK, ctx);
}

static int host_yield_then_call(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	yields++;
	return lua_yieldk(L, 0, 0, call_after_yield);
}
#endif

static void register_host_functions(lua_State *L)
{
	lua_register(L, "host_pause", host_pause);
	lua_register(L, "host_interrupt", host_interrupt);
#if LUA_VERSION_NUM >= 502 && !defined(LUAJIT_VERSION)
	lua_register(L, "host_pcall", host_pcall);
	lua_register(L, "host_yield_then_call", host_yield_then_call);
#endif
}

static int resume_handler(lua_State *co, lua_State *from)
{
#if LUA_VERSION_NUM >= 504
	int results = 0;
	int status = lua_resume(co, from, 0, &results);
	if (status == LUA_YIELD)
		lua_pop(co, results);
	return status;
#elif LUA_VERSION_NUM >= 502
	int status = lua_resume(co, from, 0);
	if (status == LUA_YIELD)
		lua_settop(co, 0);
	return status;
#else
	(void)from;
	int status = lua_resume(co, 0);
	if (status == LUA_YIELD)
		lua_settop(co, 0);
	return status;
#endif
}

static double now_seconds(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
		perror("clock_gettime");
		exit(1);
	}
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The event loop: resume the handler each time it yields, until the deadline. */
static int run_loop(lua_State *L, lua_State *co, double seconds)
{
	unsigned long resumes = 0;
	double deadline = now_seconds() + seconds;
	for (;;) {
		int status = resume_handler(co, L);
		resumes++;
		if (status != LUA_YIELD) {
			const char *msg = status == LUA_OK ? "the handler returned" : lua_tostring(co, -1);
			fprintf(stderr, "lua_yield_host: %s\n", msg ? msg : "error without a message");
			return 1;
		}
		if (resumes == READY_YIELDS && printf("ready\n") < 0)
			return 1;
		if (now_seconds() >= deadline)
			break;
	}
	printf("yields %lu resumes %lu\n", yields, resumes);
	return 0;
}

/* "hook", "line" or "call"; LuaJIT: "call" only (its hooks are not called from compiled code: a
 * compiled handler would never yield). */
static bool parse_interrupt(const char *name, enum interrupt *out)
{
#ifndef LUAJIT_VERSION
	if (strcmp(name, "hook") == 0) {
		*out = INTERRUPT_HOOK;
		return true;
	}
	if (strcmp(name, "line") == 0) {
		*out = INTERRUPT_LINE;
		return true;
	}
#endif
	if (strcmp(name, "call") == 0) {
		*out = INTERRUPT_CALL;
		return true;
	}
	return false;
}

static int usage(const char *argv0)
{
#ifndef LUAJIT_VERSION
	fprintf(stderr, "usage: %s SCRIPT SCENARIO hook|line|call SECONDS\n", argv0);
#else
	fprintf(stderr, "usage: %s SCRIPT SCENARIO call SECONDS\n", argv0);
#endif
	return 2;
}

int main(int argc, char **argv)
{
	if (argc != 5)
		return usage(argv[0]);
	char handler[64];
	int n = snprintf(handler, sizeof(handler), "%s_handler", argv[2]);
	double seconds = strtod(argv[4], NULL);
	if (n < 0 || (size_t)n >= sizeof(handler) || !(seconds > 0))
		return usage(argv[0]);
	if (!parse_interrupt(argv[3], &interrupt_mode))
		return usage(argv[0]);
	setvbuf(stdout, NULL, _IOLBF, 0);

	lua_State *L = luaL_newstate();
	if (L == NULL) {
		fprintf(stderr, "lua_yield_host: cannot create a Lua state\n");
		return 1;
	}
	luaL_openlibs(L);
	register_host_functions(L);
	if (luaL_dofile(L, argv[1]) != 0) {
		fprintf(stderr, "lua_yield_host: %s\n", lua_tostring(L, -1));
		lua_close(L);
		return 1;
	}
	lua_State *co = lua_newthread(L); /* stays on L's stack: not collected */
	lua_getglobal(co, handler);
	if (lua_type(co, -1) != LUA_TFUNCTION) {
		fprintf(stderr, "lua_yield_host: %s defines no function %s\n", argv[1], handler);
		lua_close(L);
		return 2;
	}
	handler_co = co;
	interrupt_coroutine(co, HOOK_COUNT);
	int rc = printf("version %s\n", HOST_LUA_RELEASE) < 0 ? 1 : run_loop(L, co, seconds);
	lua_close(L);
	return rc;
}
