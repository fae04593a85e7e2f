/* SPDX-License-Identifier: MIT */
/* test_lua_source_names.c - symbolize/lua_source_names.c on hand-written lines: every naming rule of
 * lua_source_names.h, the cases that must give no name, Lua's line counting, and long lines. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize/lua_source_names.h"

struct name_case {
	const char *prev; /* the line before, or NULL */
	const char *line;
	const char *want; /* NULL: no name */
};

static const struct name_case cases[] = {
	/* function statements */
	{NULL, "function M.foo(a, b)", "M.foo"},
	{NULL, "function M.a.b(x)", "M.a.b"},
	{NULL, "function Obj:method(x)", "Obj:method"},
	{NULL, "function M.a.b:c(x)", "M.a.b:c"},
	{NULL, "local function bar(x)", "bar"},
	{NULL, "function bar(x)", "bar"},
	{NULL, "  function   M . spaced ( x )", "M.spaced"},
	{NULL, "function f() return 1 end -- function g()", "f"},
	{NULL, "function f() local s = \"function\" end", "f"},
	{NULL, "function f() local s = [[function]] end", "f"},
	{NULL, "function f() local s = [==[ ]] function ]==] end", "f"},
	{NULL, "--[[ function x() ]] function y()", "y"},
	{NULL, "if a then function late() end end", "late"},
	/* anonymous functions assigned */
	{NULL, "x = function(a)", "x"},
	{NULL, "local x = function(a)", "x"},
	{NULL, "local x <const> = function(a)", "x"},
	{NULL, "local x<const>= function(a)", "x"},
	{NULL, "M.x = function(a)", "M.x"},
	{NULL, "M.a.b = function(a)", "M.a.b"},
	{NULL, "t[\"key\"] = function(a)", "t[\"key\"]"},
	{NULL, "t [ 'key' ] = function(a)", "t['key']"},
	{NULL, "t[1] = function(a)", "t[1]"},
	{NULL, "t.x[\"a\"][\"b\"] = function(a)", "t.x[\"a\"][\"b\"]"},
	{NULL, "  key = function(a)", "key"},
	{NULL, "  key = function (a)", "key"},
	{NULL, "  [\"key\"] = function(a)", "[\"key\"]"},
	{NULL, "local h = { key = function(a)", "key"},
	{NULL, "local h = { a = 1, key = function(a)", "key"},
	{NULL, "local h = { a = 1; key = function(a)", "key"},
	{NULL, "local h = { [\"k\"] = function(a)", "[\"k\"]"},
	{NULL, "local a = 1; b = function(x)", "b"},
	{NULL, "do c = function(x)", "c"},
	{"M.handlers.long =", "  function(a)", "M.handlers.long"},
	{"local long =", "function(a)", "long"},
	/* no name */
	{NULL, "table.sort(t, function(a, b)", NULL},
	{NULL, "return function(a)", NULL},
	{NULL, "pcall(function()", NULL},
	{NULL, "local f = cond and function(a)", NULL},
	{NULL, "local a, b = function(a)", NULL},
	{NULL, "a, b = function(a)", NULL},
	{NULL, "x == function(a)", NULL},
	{NULL, "local t.x = function(a)", NULL},
	{NULL, "local x <const> = function() return function() end end", NULL},
	{NULL, "local two = function() return function() end end", NULL},
	{NULL, "f().x = function(a)", NULL},
	{NULL, "end = function(a)", NULL},
	{NULL, "t[\"a key\"] = function(a)", NULL},
	{NULL, "-- function commented(a)", NULL},
	{NULL, "local s = \"function x()\"", NULL},
	{NULL, "function", NULL},
	{NULL, "function (", NULL},
	{NULL, "", NULL},
	{"", "function(a)", NULL},
	{"foo(", "function(a)", NULL},
	{NULL, "function(a)", NULL},
	{NULL, "function M.", NULL},
	{NULL, "function M.foo", NULL},
	{NULL, "function 1x()", NULL},
	{NULL, "x = \"unterminated function(", NULL},
	{NULL, "x = [[ function(", NULL},
};

static int check_names(void)
{
	int failures = 0;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct name_case *c = &cases[i];
		char *name = NULL;
		int rc = lua_source_name(c->line, strlen(c->line), c->prev,
					 c->prev ? strlen(c->prev) : 0, &name);
		bool ok = rc == 0 &&
			  ((!c->want && !name) || (c->want && name && strcmp(name, c->want) == 0));
		if (!ok) {
			fprintf(stderr, "FAIL: '%s' (prev '%s'): got %s (rc %d), want %s\n",
				c->line, c->prev ? c->prev : "", name ? name : "(none)", rc,
				c->want ? c->want : "(none)");
			failures++;
		}
		free(name);
	}
	return failures;
}

/* Lua counts "\n", "\r", "\r\n" and "\n\r" as one line end each (llex.c inclinenumber). */
static int check_lines(void)
{
	static const char text[] = "one\ntwo\r\nthree\n\rfour\rfive\n\nseven";
	static const char *const want[] = {"one", "two", "three", "four", "five", "", "seven"};
	struct lua_source_lines lines;
	if (lua_source_lines_init(&lines, text, sizeof(text) - 1) < 0) {
		fprintf(stderr, "FAIL: lines_init\n");
		return 1;
	}
	int failures = 0;
	if (lines.count != 7) {
		fprintf(stderr, "FAIL: %u lines, want 7\n", lines.count);
		failures++;
	}
	for (int n = 1; n <= 7; n++) {
		const char *s;
		size_t len;
		if (!lua_source_line(&lines, n, &s, &len) || len != strlen(want[n - 1]) ||
		    memcmp(s, want[n - 1], len) != 0) {
			fprintf(stderr, "FAIL: line %d\n", n);
			failures++;
		}
	}
	const char *s;
	size_t len;
	if (lua_source_line(&lines, 0, &s, &len) || lua_source_line(&lines, 8, &s, &len) ||
	    lua_source_line(&lines, -5, &s, &len)) {
		fprintf(stderr, "FAIL: out-of-range lines must not exist\n");
		failures++;
	}
	lua_source_lines_free(&lines);
	struct lua_source_lines empty;
	if (lua_source_lines_init(&empty, "", 0) < 0 || empty.count != 1 ||
	    !lua_source_line(&empty, 1, &s, &len) || len != 0) {
		fprintf(stderr, "FAIL: the empty text has one empty line\n");
		failures++;
	}
	lua_source_lines_free(&empty);
	return failures;
}

/* Lines longer than LUA_SOURCE_MAX_LINE are not examined, as line or as previous line. */
static int check_long_lines(void)
{
	size_t n = LUA_SOURCE_MAX_LINE + 100;
	char *line = malloc(n + 1);
	if (!line)
		return 1;
	memset(line, ' ', n);
	memcpy(line + n - 17, "function f.g(a)", 15);
	line[n] = '\0';
	int failures = 0;
	char *name = NULL;
	if (lua_source_name(line, n, NULL, 0, &name) != 0 || name) {
		fprintf(stderr, "FAIL: a long line gave a name\n");
		failures++;
	}
	free(name);
	memcpy(line + n - 17, "   x =         ", 15);
	name = NULL;
	if (lua_source_name("function(a)", 11, line, n, &name) != 0 || name) {
		fprintf(stderr, "FAIL: a long previous line gave a name\n");
		failures++;
	}
	free(name);
	name = NULL;
	if (lua_source_name("function(a)", 11, line + n - 200, 200, &name) != 0 || !name ||
	    strcmp(name, "x") != 0) {
		fprintf(stderr, "FAIL: the previous line's tail: got %s\n", name ? name : "(none)");
		failures++;
	}
	free(name);
	free(line);
	return failures;
}

int main(void)
{
	int failures = check_names() + check_lines() + check_long_lines();
	if (failures) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	printf("ok: %zu name cases, line splitting, long lines\n",
	       sizeof(cases) / sizeof(cases[0]));
	return 0;
}
