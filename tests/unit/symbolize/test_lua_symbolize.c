/* SPDX-License-Identifier: MIT */
/* test_lua_symbolize.c - symbolize/lua_symbolize.c against a real PUC Lua (built once per version by
 * tests/cmake/lua_symbolize.cmake, linked to Debian's liblua5.x).
 *
 * The program writes Lua files to a temporary directory, loads and runs them (every naming style
 * of lua_source_names.h, a main chunk, a function past line 300, a 150-statement function with a
 * 200-line gap (5.4 abslineinfo), a relative path, a deleted file, string and `=` chunks), then
 * forks: the child is a frozen copy of the Lua state and waits; the parent symbolizes the child's
 * Protos through /proc/CHILD/mem and compares with what the VM itself says:
 *   - chunk, line_defined and lastlinedefined from debug info (lua_getinfo "S");
 *   - names as registered by the script (reg(f, "name", traced));
 *   - lines of every instruction of "traced" functions (straight-line code: no jumps, no skipped
 *     instructions) against lua_getinfo's currentline in a count hook firing before each
 *     instruction (ldebug.c/lvm.c of each version: the hook sees savedpc of the instruction about
 *     to run, so the k-th event is bytecode index k);
 *   - for all functions: the last instruction's line is lastlinedefined (lparser.c close_func
 *     codes the final return with the line of `end`) and every line lies within the function.
 * Mode "hostile": garbage addresses, non-Proto objects, fake Protos with one field corrupted
 * (after a positive control), FIFO and device chunk names, wrong layouts, bad and dead pids.
 * Mode "container": the child chroots into the temporary directory; absolute, symlinked and
 * relative chunk paths must be read inside its root.
 * Mode "budget" (a build with tiny cache budgets): lines dropped, protos refused, texts evicted. */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "runtime/puc/lua_layouts.h"
#include "symbolize/lua_symbolize.h"

#define BIG_STATEMENTS 150
#define BIG_GAP 200
#define LONG_EQ_NAME 5000
/* Never mapped: past the 47-bit user address space (with 5-level paging, above anything mapped
 * without an explicit hint). Not a "likely free" low address: /proc/PID/mem reads with FOLL_FORCE,
 * so PROT_NONE reservations (ASan's shadow gap) read as zeros. */
#define UNMAPPED (1ull << 47)

static int failures;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("FAIL: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	failures++;
}

static void die(const char *what)
{
	perror(what);
	exit(2);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		die("malloc");
	return p;
}

/* dir/name into path (PATH_MAX bytes); a longer path ends the test. */
static void xpath(char *path, const char *dir, const char *name)
{
	int n = snprintf(path, PATH_MAX, "%s/%s", dir, name);
	if (n < 0 || n >= PATH_MAX) {
		fprintf(stderr, "path too long: %s/%s\n", dir, name);
		exit(2);
	}
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);
	if (!p)
		die("strdup");
	return p;
}

/* Pops the top value into the registry: alive until lua_close (the reference is not needed). */
static void keep(lua_State *L) { (void)luaL_ref(L, LUA_REGISTRYINDEX); }

/* ---- Functions the script registers: reg(f, "expected name", traced). */

struct record {
	int ref; /* the function in the registry */
	char *name;
	bool traced;
	bool main;
	int tail_call_line; /* > 0: one tail call (`return f(x)`), this many lines after the first */
	int *trace; /* currentline per executed instruction, first call */
	size_t trace_len;
};

static struct record records[64];
static size_t nrecords;

static void add_record(lua_State *L, int index, const char *name, bool traced, bool main,
		       int tail_call_line)
{
	if (nrecords == sizeof(records) / sizeof(records[0])) {
		fprintf(stderr, "too many records\n");
		exit(2);
	}
	lua_pushvalue(L, index);
	records[nrecords++] = (struct record){luaL_ref(L, LUA_REGISTRYINDEX), xstrdup(name), traced,
					      main, tail_call_line, NULL, 0};
}

static int lua_reg(lua_State *L)
{
	luaL_checktype(L, 1, LUA_TFUNCTION);
	add_record(L, 1, luaL_checkstring(L, 2), lua_tointeger(L, 3) != 0, false,
		   (int)luaL_optinteger(L, 4, 0));
	return 0;
}

static int lua_mk(lua_State *L)
{
	lua_newtable(L);
	return 1;
}

/* ---- The count hook: the current line of every instruction the target runs. */

static struct {
	const void *target;
	int *lines;
	size_t len, cap;
} trace;

static void count_hook(lua_State *L, lua_Debug *ar)
{
	if (!lua_getinfo(L, "fl", ar))
		return;
	const void *fn = lua_topointer(L, -1);
	lua_pop(L, 1);
	if (fn != trace.target)
		return;
	if (trace.len == trace.cap) {
		trace.cap = trace.cap ? trace.cap * 2 : 64;
		int *lines = realloc(trace.lines, trace.cap * sizeof(*lines));
		if (!lines)
			die("realloc");
		trace.lines = lines;
	}
	trace.lines[trace.len++] = ar->currentline;
}

/* Calls the function below its nargs arguments at the top of the stack and records the current
 * line of each instruction the function itself runs into rec. */
static void call_traced(lua_State *L, struct record *rec, int nargs)
{
	trace.target = lua_topointer(L, -1 - nargs);
	trace.len = 0;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
	int rc = lua_pcall(L, nargs, 0, 0);
	lua_sethook(L, NULL, 0, 0);
	if (rc != 0) {
		fprintf(stderr, "lua error: %s\n", lua_tostring(L, -1));
		exit(2);
	}
	rec->trace = xmalloc(trace.len * sizeof(int));
	if (trace.len)
		memcpy(rec->trace, trace.lines, trace.len * sizeof(int));
	rec->trace_len = trace.len;
}

/* ---- Writing the scripts. */

struct text {
	char *s;
	size_t len, cap;
};

static void line(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line(struct text *t, const char *fmt, ...)
{
	for (;;) {
		va_list ap;
		va_start(ap, fmt);
		int n = vsnprintf(t->s ? t->s + t->len : NULL, t->s ? t->cap - t->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			die("vsnprintf");
		if (t->s && t->len + (size_t)n + 2 <= t->cap) {
			t->len += (size_t)n;
			t->s[t->len++] = '\n';
			t->s[t->len] = '\0';
			return;
		}
		t->cap = (t->cap + (size_t)n + 2) * 2;
		char *s = realloc(t->s, t->cap);
		if (!s)
			die("realloc");
		t->s = s;
		t->s[t->len] = '\0';
	}
}

static void write_file(const char *path, const char *content)
{
	FILE *f = fopen(path, "w");
	if (!f || fputs(content, f) < 0 || fclose(f) != 0)
		die(path);
}

/* Every naming style; main chunk straight-line (no table constructors: 5.4 NEWTABLE skips its
 * EXTRAARG, lvm.c 5.4 OP_NEWTABLE) so that its trace covers each instruction. */
static void main_script(struct text *t)
{
	line(t, "-- generated by test_lua_symbolize.c");
	line(t, "local M = mk()");
	line(t, "M.a = mk()");
	line(t, "Obj = mk()");
	line(t, "local t = mk()");
	line(t, "function M.foo(a)");
	line(t, "  local b = a");
	line(t, "  local c = 2");
	line(t, "  b = c");
	line(t, "  return b");
	line(t, "end");
	line(t, "function M.a.b(x) return x end");
	line(t, "function Obj:method(x) return x end");
	line(t, "local function bar(x)");
	line(t, "  return x");
	line(t, "end");
	line(t, "function baz(x) return x end");
	line(t, "x = function(a) return a end");
	line(t, "local y = function(a) return a end");
	line(t, "M.z = function(a) return a end");
	line(t, "t[\"key\"] = function(a) return a end");
	line(t, "local function make_handlers()");
	line(t, "  return {");
	line(t, "    key = function(a) return a end,");
	line(t, "    [ 'k2' ] = function(a) return a end,");
	line(t, "  }");
	line(t, "end");
	line(t, "local handlers = make_handlers()");
	line(t, "M.long_name =");
	line(t, "  function(a)");
	line(t, "    return a");
	line(t, "  end");
	line(t, "local two = function() return function() end end");
	line(t, "local function outer()");
	line(t, "  local function inner(x)");
	line(t, "    return x");
	line(t, "  end");
	line(t, "  return inner");
	line(t, "end");
#if LUA_VERSION_NUM >= 504
	line(t, "local w <const> = function(a) return a end");
#else
	line(t, "local w = function(a) return a end");
#endif
	line(t, "reg(M.foo, 'M.foo', 1)");
	line(t, "reg(M.a.b, 'M.a.b', 0)");
	line(t, "reg(Obj.method, 'Obj:method', 0)");
	line(t, "reg(bar, 'bar', 0)");
	line(t, "reg(baz, 'baz', 0)");
	line(t, "reg(x, 'x', 0)");
	line(t, "reg(y, 'y', 0)");
	line(t, "reg(M.z, 'M.z', 0)");
	line(t, "reg(t.key, 't[\"key\"]', 0)");
	line(t, "reg(handlers.key, 'key', 0)");
	line(t, "reg(handlers.k2, \"['k2']\", 0)");
	line(t, "reg(M.long_name, 'M.long_name', 0)");
	line(t, "reg(two, '?', 0)");
	line(t, "reg(two(), '?', 0)");
	line(t, "reg(outer(), 'inner', 0)");
	line(t, "reg(w, 'w', 0)");
	line(t, "reg(function(a) return a end, '?', 0)");
	/* one tail call; calls that are not tail calls (parenthesized, two results, a local). The
	 * callee is a global: an upvalue would add 5.1 OP_CLOSURE pseudo-instructions to main, which
	 * the VM skips and check_trace would miss. */
	line(t, "local function tail(a)");
	line(t, "  local b = a");
	line(t, "  return baz(b)");
	line(t, "end");
	line(t, "reg(tail, 'tail', 0, 2)");
	line(t, "local function no_tail(a)");
	line(t, "  local b = baz(a)");
	line(t, "  if b then return (baz(b)) end");
	line(t, "  return baz(b), 1");
	line(t, "end");
	line(t, "reg(no_tail, 'no_tail', 0)");
	/* 150 one-instruction statements (LOADI / LOADK) and a 200-line gap: 5.4 writes absolute
	 * line entries every MAXIWTHABS instructions and for deltas >= LIMLINEDIFF (lcode.c 5.4
	 * savelineinfo). */
	line(t, "local function big(a)");
	line(t, "  local v = a");
	for (int i = 0; i < BIG_STATEMENTS; i++)
		line(t, "  v = %d", i);
	for (int i = 0; i < BIG_GAP; i++)
		line(t, "  -- gap");
	line(t, "  v = -1");
	line(t, "  return v");
	line(t, "end");
	line(t, "reg(big, 'big', 1)");
	line(t, "function M.high(a)");
	line(t, "  local b = a");
	line(t, "  b = 3");
	line(t, "  return b");
	line(t, "end");
	line(t, "reg(M.high, 'M.high', 1)");
}

static const char rel_script[] = "local R = mk()\n"
				 "function R.rel_fn(a)\n"
				 "  local b = a\n"
				 "  return b\n"
				 "end\n"
				 "reg(R.rel_fn, 'R.rel_fn', 1)\n";

static const char gone_script[] = "local G = mk()\n"
				  "function G.gone(a) return a end\n"
				  "reg(G.gone, '?', 0)\n";

static const char string_chunk[] = "local S = mk()\n"
				   "function S.from_string(a)\n"
				   "  local b = a\n"
				   "  return b\n"
				   "end\n"
				   "reg(S.from_string, 'S.from_string', 1)\n";

static const char eq_chunk[] = "local E = mk()\n"
			       "function E.eq(a) return a end\n"
			       "reg(E.eq, '?', 0)\n";

/* ---- Loading. */

static void check_load(lua_State *L, int rc, const char *what)
{
	if (rc != 0) {
		fprintf(stderr, "loading %s: %s\n", what, lua_tostring(L, -1));
		exit(2);
	}
}

/* The loaded chunk at the top of the stack: registered as `main`, run traced. */
static void run_main(lua_State *L)
{
	add_record(L, -1, "main", true, true, 0);
	call_traced(L, &records[nrecords - 1], 0);
}

static void load_all(lua_State *L, const char *dir)
{
	char path[PATH_MAX];
	struct text t = {0};
	main_script(&t);
	xpath(path, dir, "a_main_script_with_a_long_name.lua");
	write_file(path, t.s);
	free(t.s);
	check_load(L, luaL_loadfile(L, path), path);
	run_main(L);

	xpath(path, dir, "gone.lua");
	write_file(path, gone_script);
	check_load(L, luaL_loadfile(L, path), path);
	run_main(L);
	if (unlink(path) < 0)
		die("unlink");

	xpath(path, dir, "rel.lua");
	write_file(path, rel_script);
	if (chdir(dir) < 0)
		die("chdir");
	check_load(L, luaL_loadfile(L, "rel.lua"), "rel.lua");
	run_main(L);

	check_load(L, luaL_loadstring(L, string_chunk), "string chunk");
	run_main(L);
	check_load(L, luaL_loadstring(L, "return 1"), "short string chunk");
	run_main(L);
	check_load(L, luaL_loadbuffer(L, eq_chunk, sizeof(eq_chunk) - 1, "=custom"), "=custom");
	run_main(L);

	char *long_name = xmalloc(LONG_EQ_NAME + 2);
	long_name[0] = '=';
	memset(long_name + 1, 'n', LONG_EQ_NAME);
	long_name[LONG_EQ_NAME + 1] = '\0';
	check_load(L, luaL_loadbuffer(L, "return 2", 8, long_name), "long = name");
	free(long_name);
	run_main(L);
}

/* Runs every traced function once, with the count hook. */
static void trace_functions(lua_State *L)
{
	for (size_t i = 0; i < nrecords; i++) {
		if (!records[i].traced || records[i].main)
			continue;
		lua_rawgeti(L, LUA_REGISTRYINDEX, records[i].ref);
		lua_pushinteger(L, 1);
		call_traced(L, &records[i], 1);
	}
}

/* ---- The frozen child. */

struct child {
	pid_t pid;
	int release;
};

/* The child: chroot(root) first when root is given (in a new user namespace when plain chroot
 * is not permitted), then one status byte ('1' in its root, '0' not) and wait for EOF. */
static void child_main(int release, int status, const char *root)
{
	char ok = '1';
	if (root && chroot(root) != 0 && (unshare(CLONE_NEWUSER) != 0 || chroot(root) != 0))
		ok = '0';
	if (root && ok == '1' && chdir("/") != 0)
		ok = '0';
	if (write(status, &ok, 1) != 1)
		_exit(3);
	char c;
	while (read(release, &c, 1) != 0 && errno == EINTR)
		;
	_exit(0);
}

/* A frozen copy of this process; *in_root tells whether it could enter root (NULL: none). */
static struct child spawn_child_in(const char *root, bool *in_root)
{
	int release[2], status[2];
	if (pipe(release) < 0 || pipe(status) < 0)
		die("pipe");
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		(void)close(release[1]);
		(void)close(status[0]);
		child_main(release[0], status[1], root);
	}
	(void)close(release[0]);
	(void)close(status[1]);
	char ok = '0';
	while (read(status[0], &ok, 1) < 0 && errno == EINTR)
		;
	(void)close(status[0]);
	if (in_root)
		*in_root = ok == '1';
	return (struct child){pid, release[1]};
}

static struct child spawn_child(void) { return spawn_child_in(NULL, NULL); }

static void reap_child(struct child *c)
{
	int status;
	(void)close(c->release);
	while (waitpid(c->pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail("child ended with status %d", status);
}

/* ---- Expectations. */

static const struct lua_puc_version *this_version(void)
{
	const char *release = LUA_RELEASE; /* "Lua 5.4.4" */
	const char *v = strchr(release, ' ');
	const struct lua_puc_version *version = v ? lua_puc_version_find(v + 1) : NULL;
	if (!version) {
		fprintf(stderr, "no layout for %s\n", release);
		exit(2);
	}
	return version;
}

static uint64_t proto_of(const void *closure, const struct lua_puc_version *version)
{
	uint64_t proto;
	memcpy(&proto, (const char *)closure + version->vm.lclosure_p, sizeof(proto));
	return proto;
}

/* The chunk name rules of lua_symbolize.c, written again from its documentation. */
static char *expected_chunk(const char *source)
{
	char *out = xmalloc(strlen(source) + 64);
	if (source[0] == '@' || source[0] == '=') {
		size_t n = strlen(source + 1);
		if (n == 0)
			strcpy(out, "?");
		else if (n > 4096)
			sprintf(out, "%.4096s...", source + 1);
		else
			strcpy(out, source + 1);
		return out;
	}
	size_t line = strcspn(source, "\r\n");
	size_t cut = line < 40 ? line : 40;
	bool more = cut < strlen(source);
	sprintf(out, "[string \"%.*s%s\"]", (int)cut, source, more ? "..." : "");
	return out;
}

/* The k-th executed instruction is bytecode index k, except that 5.4 starts hooks after the
 * VARARGPREP of a vararg function (lvm.c 5.4 luaV_execute: "hooks will start after VARARGPREP";
 * main chunks are vararg). */
static uint32_t trace_offset(const struct record *rec)
{
#if LUA_VERSION_NUM >= 504
	return rec->main ? 1 : 0;
#else
	(void)rec;
	return 0;
#endif
}

static void check_trace(const struct record *rec, const struct lua_proto_info *info)
{
	uint32_t off = trace_offset(rec);
	if (rec->trace_len == 0 || off + rec->trace_len > info->code_size ||
	    off + rec->trace_len + 1 < info->code_size) {
		fail("%s: trace of %zu instructions for code size %u", rec->name, rec->trace_len,
		     info->code_size);
		return;
	}
	for (size_t k = 0; k < rec->trace_len; k++) {
		int got = lua_proto_line(info, off + (uint32_t)k);
		if (got != rec->trace[k]) {
			fail("%s @%s: instruction %zu: line %d, the VM says %d", rec->name,
			     info->chunk, off + k, got, rec->trace[k]);
			return;
		}
	}
}

static void check_line_bounds(const struct record *rec, const struct lua_proto_info *info,
			      const lua_Debug *ar)
{
	if (!info->lines || info->code_size == 0) {
		fail("%s: no lines", rec->name);
		return;
	}
	int lo = rec->main ? 1 : ar->linedefined, hi = rec->main ? INT_MAX : ar->lastlinedefined;
	for (uint32_t pc = 0; pc < info->code_size; pc++) {
		if (info->lines[pc] < lo || info->lines[pc] > hi) {
			fail("%s: instruction %u at line %d outside [%d, %d]", rec->name, pc,
			     info->lines[pc], lo, hi);
			return;
		}
	}
	if (!rec->main && info->lines[info->code_size - 1] != ar->lastlinedefined)
		fail("%s: last instruction at line %d, lastlinedefined %d", rec->name,
		     info->lines[info->code_size - 1], ar->lastlinedefined);
	if (lua_proto_line(info, info->code_size) != info->line_defined ||
	    lua_proto_line(info, 0xffff) != info->line_defined ||
	    lua_proto_line(info, 0) != info->lines[0])
		fail("%s: lua_proto_line out of range / at 0", rec->name);
}

/* 5.4: `big` and the long script's main chunk must have absolute line entries (lcode.c 5.4
 * savelineinfo), or the test would not exercise them (read from our own copy of the Proto). */
static void check_abslineinfo_used(const struct record *rec, const struct lua_puc_version *v,
				   uint64_t proto, const char *chunk)
{
	bool v54 = v->kind == LUA_KIND_PUC54 || v->kind == LUA_KIND_PUC540;
	bool wanted = strcmp(rec->name, "big") == 0 ||
		      (rec->main && strstr(chunk, "a_main_script_with_a_long_name") != NULL);
	if (!v54 || !wanted)
		return;
	int32_t n;
	memcpy(&n, (const char *)(uintptr_t)proto + v->proto.proto_sizeabslineinfo, sizeof(n));
	int want = rec->main ? 1 : 2; /* main: the jump past big; big: MAXIWTHABS and the gap */
	if (n < want)
		fail("%s: %d abslineinfo entries, the test wants >= %d", rec->name, n, want);
	if (getenv("LUA_SYMBOLIZE_VERBOSE"))
		printf("%s: %d abslineinfo entries\n", rec->name, n);
}

/* The tail calls found are the one of a record that has one (5.1/5.3; 5.4 reuses the caller's
 * CallInfo and needs none), on its line. */
static void check_tail_calls(const struct record *rec, const struct lua_puc_version *v,
			     const struct lua_proto_info *info)
{
	uint32_t want = rec->tail_call_line > 0 && v->proto.op_tailcall != 0 ? 1 : 0;
	if (info->tail_call_count != want) {
		fail("%s: %u tail calls found, want %u", rec->name, info->tail_call_count, want);
		return;
	}
	if (want && lua_proto_line(info, info->tail_calls[0]) !=
			    info->line_defined + rec->tail_call_line)
		fail("%s: tail call at instruction %u, line %d, want line %d", rec->name,
		     info->tail_calls[0], lua_proto_line(info, info->tail_calls[0]),
		     info->line_defined + rec->tail_call_line);
	for (uint32_t pc = 0; pc < info->code_size; pc++)
		if (lua_proto_is_tail_call(info, pc) != (want && pc == info->tail_calls[0]))
			fail("%s: lua_proto_is_tail_call(%u) wrong", rec->name, pc);
}

static void check_record(lua_State *L, struct lua_symbolizer *ls, pid_t pid,
			 const struct lua_puc_version *version, const struct record *rec)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, rec->ref);
	uint64_t proto = proto_of(lua_topointer(L, -1), version);
	lua_Debug ar;
	if (!lua_getinfo(L, ">S", &ar))
		die("lua_getinfo");
	const struct lua_proto_info *info = lua_symbolizer_proto(ls, pid, version, proto);
	if (!info) {
		fail("%s (%s:%d): no info", rec->name, ar.short_src, ar.linedefined);
		return;
	}
	char *chunk = expected_chunk(ar.source);
	if (strcmp(info->chunk, chunk) != 0)
		fail("%s: chunk '%.80s', want '%.80s'", rec->name, info->chunk, chunk);
	free(chunk);
	if (info->line_defined != ar.linedefined)
		fail("%s: line_defined %d, want %d", rec->name, info->line_defined, ar.linedefined);
	if (strcmp(info->function, rec->name) != 0)
		fail("%s:%d: function '%s', want '%s'", info->chunk, ar.linedefined, info->function,
		     rec->name);
	check_line_bounds(rec, info, &ar);
	check_abslineinfo_used(rec, version, proto, info->chunk);
	check_tail_calls(rec, version, info);
	if (getenv("LUA_SYMBOLIZE_VERBOSE"))
		printf("%-14s %-40.40s line %4d size %4u traced %zu\n", info->function, info->chunk,
		       info->line_defined, info->code_size, rec->trace_len);
	if (rec->traced)
		check_trace(rec, info);
	if (lua_symbolizer_proto(ls, pid, version, proto) != info)
		fail("%s: not cached", rec->name);
}

static void run_real(lua_State *L, const struct lua_puc_version *version, const char *dir)
{
	load_all(L, dir);
	trace_functions(L);
	struct child child = spawn_child();
	struct lua_symbolizer *ls = lua_symbolizer_new();
	if (!ls)
		die("lua_symbolizer_new");
	for (size_t i = 0; i < nrecords; i++)
		check_record(L, ls, child.pid, version, &records[i]);
	lua_symbolizer_free(ls);
	reap_child(&child);
	printf("%s: %zu functions checked\n", LUA_RELEASE, nrecords);
}

/* ---- Budgets (built with LUA_SYMBOLIZE_MAX_CACHE_BYTES=640, LUA_SYMBOLIZE_MAX_TEXT_BYTES=1). */

static const struct record *find_record(const char *name)
{
	for (size_t i = 0; i < nrecords; i++)
		if (strcmp(records[i].name, name) == 0)
			return &records[i];
	return NULL;
}

static const struct lua_proto_info *symbolize_record(lua_State *L, struct lua_symbolizer *ls,
						     pid_t pid, const struct lua_puc_version *v,
						     const struct record *rec)
{
	lua_rawgeti(L, LUA_REGISTRYINDEX, rec->ref);
	uint64_t proto = proto_of(lua_topointer(L, -1), v);
	lua_pop(L, 1);
	return lua_symbolizer_proto(ls, pid, v, proto);
}

/* `big` (154 instructions: 616 bytes of lines) is kept without lines; then protos of three
 * different sources in turn, so that every source text evicts the previous one (1-byte text
 * budget) and the main file is read again; their names must stay right. Later protos fill the
 * 640 bytes (entries of about 80 bytes plus strings and lines) and give NULL. */
static void run_budget(lua_State *L, const struct lua_puc_version *v, const char *dir)
{
	static const char *const first[] = {"R.rel_fn", "S.from_string", "M.foo"};
	load_all(L, dir);
	struct child child = spawn_child();
	struct lua_symbolizer *ls = lua_symbolizer_new();
	if (!ls)
		die("lua_symbolizer_new");
	const struct record *big = find_record("big");
	const struct lua_proto_info *big_info =
		big ? symbolize_record(L, ls, child.pid, v, big) : NULL;
	if (!big_info || strcmp(big_info->function, "big") != 0 || big_info->lines ||
	    lua_proto_line(big_info, 3) != big_info->line_defined)
		fail("big: want an info without lines");
	for (size_t i = 0; i < sizeof(first) / sizeof(first[0]); i++) {
		const struct record *rec = find_record(first[i]);
		const struct lua_proto_info *info =
			rec ? symbolize_record(L, ls, child.pid, v, rec) : NULL;
		if (!info || strcmp(info->function, first[i]) != 0 || !info->lines)
			fail("%s: got %s", first[i], info ? info->function : "NULL");
	}
	size_t refused = 0;
	for (size_t i = 0; i < nrecords; i++) {
		const struct lua_proto_info *info =
			symbolize_record(L, ls, child.pid, v, &records[i]);
		if (!info)
			refused++;
		else if (strcmp(info->function, records[i].name) != 0)
			fail("%s: named %s", records[i].name, info->function);
	}
	if (refused == 0)
		fail("budget: nothing refused");
	if (big && symbolize_record(L, ls, child.pid, v, big) != big_info)
		fail("big: no longer cached");
	lua_symbolizer_free(ls);
	reap_child(&child);
	printf("%s: budget: %zu of %zu refused\n", LUA_RELEASE, refused, nrecords);
}

/* ---- A process in another root (a container): chunk paths are the process's paths. */

static const char inside_script[] = "local C = mk()\n"
				    "function C.inside(a)\n"
				    "  return a\n"
				    "end\n"
				    "reg(C.inside, 'C.inside', 0)\n";

/* Loads inside_script under chunk name `name` (as the chrooted child would see its file). */
static void load_named(lua_State *L, const char *name)
{
	check_load(L, luaL_loadbuffer(L, inside_script, sizeof(inside_script) - 1, name), name);
	run_main(L);
}

/* "@/inside.lua" (absolute, inside the root), "@/link.lua" (an absolute symlink to /inside.lua:
 * resolved inside the root, not on the host), "@inside.lua" (relative to the child's cwd, /),
 * "@top/inside.lua" (relative, through top -> /, an absolute symlink: inside the root too).
 * Exit 77 when the child cannot chroot. */
static int run_container(lua_State *L, const struct lua_puc_version *v, const char *dir)
{
	static const char *const names[] = {"@/inside.lua", "@/link.lua", "@inside.lua",
					    "@top/inside.lua"};
	char path[PATH_MAX];
	xpath(path, dir, "inside.lua");
	write_file(path, inside_script);
	xpath(path, dir, "link.lua");
	if (symlink("/inside.lua", path) < 0)
		die("symlink");
	xpath(path, dir, "top");
	if (symlink("/", path) < 0)
		die("symlink");
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		load_named(L, names[i]);
	bool in_root;
	struct child child = spawn_child_in(dir, &in_root);
	if (!in_root) {
		reap_child(&child);
		printf("skipped: the child cannot chroot\n");
		return 77;
	}
	struct lua_symbolizer *ls = lua_symbolizer_new();
	if (!ls)
		die("lua_symbolizer_new");
	size_t named = 0;
	for (size_t i = 0; i < nrecords; i++) {
		if (records[i].main)
			continue;
		const struct lua_proto_info *info = symbolize_record(L, ls, child.pid, v, &records[i]);
		if (!info || strcmp(info->function, "C.inside") != 0)
			fail("%s: got %s", info ? info->chunk : "?", info ? info->function : "NULL");
		else
			named++;
	}
	if (named != sizeof(names) / sizeof(names[0]))
		fail("container: %zu of %zu named", named, sizeof(names) / sizeof(names[0]));
	lua_symbolizer_free(ls);
	reap_child(&child);
	printf("%s: container paths checked\n", LUA_RELEASE);
	return 0;
}

/* ---- Hostile input. */

static size_t span_of(const struct lua_puc_version *v)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	size_t fields[][2] = {{p->proto_code, 8},        {p->proto_sizecode, 4},
			      {p->proto_lineinfo, 8},    {p->proto_sizelineinfo, 4},
			      {p->proto_linedefined, 4}, {p->proto_source, 8},
			      {p->proto_abslineinfo, 8}, {p->proto_sizeabslineinfo, 4}};
	size_t span = 16;
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i][0] + fields[i][1] > span)
			span = fields[i][0] + fields[i][1];
	return span;
}

enum corruption {
	C_NONE,
	C_TAG,
	C_SIZECODE_HUGE,
	C_SIZECODE_NEG,
	C_SIZECODE_ZERO,
	C_CODE,
	C_LINEINFO,
	C_SIZELINEINFO,
	C_SOURCE_UNMAPPED,
	C_SOURCE_TABLE,
	C_SOURCE_HUGE,
	C_LINEDEFINED,
	C_ABS_SIZE,
	C_ABS_PTR,
	C_ABS_ORDER,
	C_ABS_MARKER,
	C_COUNT,
	/* accepted ones */
	C_SOURCE_NULL = C_COUNT,
	C_NO_LINES,
	C_SOURCE_DEVZERO,
	C_SOURCE_FIFO,
	C_ALL
};

struct fakes {
	uint64_t table;       /* a table: not a string, not a proto */
	uint64_t huge_string; /* a TString claiming 2^40 bytes */
	uint64_t devzero;     /* "@/dev/zero" */
	uint64_t fifo;        /* "@<dir>/fifo" */
	uint64_t bad_abs;     /* two AbsLineInfo with decreasing pcs */
};

static void put_u64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, sizeof(v)); }
static void put_i32(uint8_t *p, size_t off, int32_t v) { memcpy(p + off, &v, sizeof(v)); }

/* A TString of this version in a fresh userdata (kept alive by the registry). */
static uint64_t fake_string(lua_State *L, const struct lua_puc_version *v, const char *text,
			    uint64_t len)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	size_t n = strlen(text);
	uint8_t *s = lua_newuserdata(L, p->tstring_contents + n + 1);
	memset(s, 0, p->tstring_contents);
	memcpy(s + p->tstring_contents, text, n + 1);
	bool is_short = v->kind != LUA_KIND_PUC51 && len <= 40;
	if (v->kind == LUA_KIND_PUC51)
		s[8] = LUA_TSTRING; /* lobject.h 5.1 CommonHeader tt */
	else
		s[p->tstring_tt] = (uint8_t)(p->tag_short_string | (is_short ? 0 : 0x10));
	if (is_short)
		s[p->tstring_shrlen] = (uint8_t)len;
	else
		put_u64(s, p->tstring_len, len);
	keep(L);
	return (uint64_t)(uintptr_t)s;
}

static void corrupt(uint8_t *fake, const struct lua_puc_version *v, enum corruption c,
		    const struct fakes *f)
{
	const struct lua_puc_proto_layout *p = &v->proto;
	int32_t sizecode;
	memcpy(&sizecode, fake + p->proto_sizecode, sizeof(sizecode));
	bool v54 = v->kind == LUA_KIND_PUC54 || v->kind == LUA_KIND_PUC540;
	switch (c) {
	case C_TAG: fake[8] ^= 0x40; break;
	case C_SIZECODE_HUGE: put_i32(fake, p->proto_sizecode, 1 << 30); break;
	case C_SIZECODE_NEG: put_i32(fake, p->proto_sizecode, -1); break;
	case C_SIZECODE_ZERO: put_i32(fake, p->proto_sizecode, 0); break;
	case C_CODE: put_u64(fake, p->proto_code, 0x10); break;
	case C_LINEINFO: put_u64(fake, p->proto_lineinfo, UNMAPPED); break;
	case C_SIZELINEINFO: put_i32(fake, p->proto_sizelineinfo, sizecode + 1); break;
	case C_SOURCE_UNMAPPED: put_u64(fake, p->proto_source, UNMAPPED); break;
	case C_SOURCE_TABLE: put_u64(fake, p->proto_source, f->table); break;
	case C_SOURCE_HUGE: put_u64(fake, p->proto_source, f->huge_string); break;
	case C_LINEDEFINED: put_i32(fake, p->proto_linedefined, -5); break;
	case C_ABS_SIZE:
		if (v54)
			put_i32(fake, p->proto_sizeabslineinfo, sizecode + 1);
		else
			fake[8] = 0; /* nothing 5.4-specific to break: break the tag instead */
		break;
	case C_ABS_PTR:
		if (v54) {
			put_i32(fake, p->proto_sizeabslineinfo, 1);
			put_u64(fake, p->proto_abslineinfo, UNMAPPED);
		} else {
			fake[8] = 0;
		}
		break;
	case C_ABS_ORDER:
		if (v54) {
			put_i32(fake, p->proto_sizeabslineinfo, 2);
			put_u64(fake, p->proto_abslineinfo, f->bad_abs);
		} else {
			fake[8] = 0;
		}
		break;
	case C_ABS_MARKER: /* one sane entry {pc 1, line 10}, but lineinfo[1] is no ABSLINEINFO */
		if (v54) {
			put_i32(fake, p->proto_sizeabslineinfo, 1);
			put_u64(fake, p->proto_abslineinfo, f->bad_abs);
		} else {
			fake[8] = 0;
		}
		break;
	case C_SOURCE_NULL: put_u64(fake, p->proto_source, 0); break;
	case C_NO_LINES: put_i32(fake, p->proto_sizelineinfo, 0); break;
	case C_SOURCE_DEVZERO: put_u64(fake, p->proto_source, f->devzero); break;
	case C_SOURCE_FIFO: put_u64(fake, p->proto_source, f->fifo); break;
	default: break;
	}
}

/* One fake proto per corruption, each a copy of a real one (8-aligned userdata). */
static uint64_t make_fake(lua_State *L, const struct lua_puc_version *v, uint64_t real,
			  enum corruption c, const struct fakes *f)
{
	size_t span = span_of(v);
	uint8_t *fake = lua_newuserdata(L, span);
	memcpy(fake, (const void *)(uintptr_t)real, span);
	corrupt(fake, v, c, f);
	keep(L);
	return (uint64_t)(uintptr_t)fake;
}

static uint64_t ref_pointer(lua_State *L)
{
	uint64_t p = (uint64_t)(uintptr_t)lua_topointer(L, -1);
	keep(L);
	return p;
}

static void expect_null(struct lua_symbolizer *ls, pid_t pid, const struct lua_puc_version *v,
			uint64_t proto, const char *what)
{
	for (int round = 0; round < 2; round++) /* the second answer comes from the cache */
		if (lua_symbolizer_proto(ls, pid, v, proto) != NULL)
			fail("%s (0x%llx): got an info, want NULL", what,
			     (unsigned long long)proto);
}

static void check_accepted(struct lua_symbolizer *ls, pid_t pid, const struct lua_puc_version *v,
			   uint64_t fake, enum corruption c, const struct lua_proto_info *real)
{
	const struct lua_proto_info *info = lua_symbolizer_proto(ls, pid, v, fake);
	if (!info) {
		fail("fake proto %d: NULL, want an info", (int)c);
		return;
	}
	const char *want_chunk = c == C_SOURCE_NULL      ? "?"
				 : c == C_SOURCE_DEVZERO ? "/dev/zero"
				 : c == C_SOURCE_FIFO    ? NULL
							 : real->chunk;
	if (want_chunk && strcmp(info->chunk, want_chunk) != 0)
		fail("fake proto %d: chunk %s, want %s", (int)c, info->chunk, want_chunk);
	const char *want_function = c == C_NONE || c == C_NO_LINES ? real->function : "?";
	if (strcmp(info->function, want_function) != 0)
		fail("fake proto %d: function %s, want %s", (int)c, info->function, want_function);
	if (info->line_defined != real->line_defined || info->code_size != real->code_size)
		fail("fake proto %d: line_defined/code_size differ", (int)c);
	if (c == C_NO_LINES) {
		if (info->lines || lua_proto_line(info, 1) != info->line_defined)
			fail("fake proto without lineinfo: lines");
	} else if (!info->lines ||
		   memcmp(info->lines, real->lines, real->code_size * sizeof(int)) != 0) {
		fail("fake proto %d: lines differ", (int)c);
	}
}

static void hostile_fakes(lua_State *L, const struct lua_puc_version *v, uint64_t real_proto,
			  const char *dir, uint64_t fakes_out[C_ALL])
{
	struct fakes f;
	lua_newtable(L);
	f.table = ref_pointer(L);
	f.huge_string = fake_string(L, v, "@x", 1ull << 40);
	f.devzero = fake_string(L, v, "@/dev/zero", 10);
	char fifo[PATH_MAX + 1];
	fifo[0] = '@';
	xpath(fifo + 1, dir, "fifo");
	if (mkfifo(fifo + 1, 0600) < 0)
		die("mkfifo");
	f.fifo = fake_string(L, v, fifo, strlen(fifo));
	int32_t *abs = lua_newuserdata(L, 4 * sizeof(int32_t));
	abs[0] = 1; /* {pc 1, line 10} then {pc 0, line 11}: pcs must increase */
	abs[1] = 10;
	abs[2] = 0;
	abs[3] = 11;
	f.bad_abs = ref_pointer(L);
	for (int c = 0; c < C_ALL; c++)
		fakes_out[c] = make_fake(L, v, real_proto, (enum corruption)c, &f);
}

static void check_wrong_layouts(pid_t pid, const struct lua_puc_version *v, uint64_t proto)
{
	unsigned count;
	const struct lua_puc_version *all = lua_puc_versions(&count);
	for (unsigned i = 0; i < count; i++) {
		if (all[i].kind == v->kind)
			continue;
		struct lua_symbolizer *fresh = lua_symbolizer_new();
		if (!fresh)
			die("lua_symbolizer_new");
		const struct lua_proto_info *info =
			lua_symbolizer_proto(fresh, pid, &all[i], proto);
		bool tags_differ = (all[i].kind == LUA_KIND_PUC53) != (v->kind == LUA_KIND_PUC53) &&
				   all[i].kind != LUA_KIND_PUC51 && v->kind != LUA_KIND_PUC51;
		if (info && tags_differ)
			fail("a %s proto read with the %s layout gave an info", LUA_RELEASE,
			     all[i].version);
		lua_symbolizer_free(fresh);
	}
}

static void run_hostile(lua_State *L, const struct lua_puc_version *v, const char *dir)
{
	check_load(L, luaL_loadstring(L, "local f = function(a)\n  return a\nend\nreturn f"),
		   "chunk");
	if (lua_pcall(L, 0, 1, 0) != 0)
		die("pcall");
	uint64_t closure = (uint64_t)(uintptr_t)lua_topointer(L, -1);
	uint64_t real = proto_of((const void *)(uintptr_t)closure, v);
	keep(L);
	lua_newtable(L);
	uint64_t table = ref_pointer(L);
	lua_newthread(L);
	uint64_t thread = ref_pointer(L);
	uint8_t *junk = lua_newuserdata(L, 256);
	memset(junk, 0xff, 256);
	uint64_t junk_addr = ref_pointer(L);
	uint64_t fakes[C_ALL];
	hostile_fakes(L, v, real, dir, fakes);

	struct child child = spawn_child();
	struct lua_symbolizer *ls = lua_symbolizer_new();
	if (!ls)
		die("lua_symbolizer_new");
	const struct lua_proto_info *info = lua_symbolizer_proto(ls, child.pid, v, real);
	if (!info || strcmp(info->function, "f") != 0 || info->line_defined != 1)
		fail("the real proto: %s", info ? info->function : "NULL");
	const uint64_t garbage[] = {
		0,          8,          0x1234,         0xdeadbeef000ull, 0x7ffffffff000ull,
		1ull << 47, 1ull << 63, UINT64_MAX - 7, real + 1,         real + 8,
		real - 8};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++)
		expect_null(ls, child.pid, v, garbage[i], "garbage address");
	expect_null(ls, child.pid, v, closure, "a closure");
	expect_null(ls, child.pid, v, table, "a table");
	expect_null(ls, child.pid, v, thread, "a thread");
	expect_null(ls, child.pid, v, junk_addr, "0xff bytes");
	for (int c = C_TAG; c < C_COUNT; c++) {
		char what[32];
		snprintf(what, sizeof(what), "fake proto %d", c);
		expect_null(ls, child.pid, v, fakes[c], what);
	}
	if (info) {
		check_accepted(ls, child.pid, v, fakes[C_NONE], C_NONE, info);
		for (int c = C_SOURCE_NULL; c < C_ALL; c++)
			check_accepted(ls, child.pid, v, fakes[c], (enum corruption)c, info);
	}
	check_wrong_layouts(child.pid, v, real);
	if (lua_symbolizer_proto(ls, 0, v, real) || lua_symbolizer_proto(ls, -1, v, real) ||
	    lua_symbolizer_proto(ls, INT_MAX, v, real) ||
	    lua_symbolizer_proto(ls, child.pid, NULL, real) ||
	    lua_symbolizer_proto(NULL, child.pid, v, real) || lua_proto_line(NULL, 0) != 0)
		fail("bad pid / version / symbolizer accepted");
	lua_symbolizer_free(ls);

	pid_t dead = child.pid;
	reap_child(&child);
	struct lua_symbolizer *late = lua_symbolizer_new();
	if (!late)
		die("lua_symbolizer_new");
	if (lua_symbolizer_proto(late, dead, v, real))
		fail("a dead process gave an info");
	lua_symbolizer_free(late);
	printf("%s: hostile inputs checked\n", LUA_RELEASE);
}

/* ---- main */

static void remove_dir(const char *dir)
{
	static const char *const names[] = {"a_main_script_with_a_long_name.lua", "rel.lua", "fifo",
					    "inside.lua", "link.lua", "top"};
	char path[PATH_MAX];
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		xpath(path, dir, names[i]);
		if (unlink(path) < 0 && errno != ENOENT)
			perror(path);
	}
	if (rmdir(dir) < 0)
		perror(dir);
}

static bool mode_known(const char *mode)
{
	if (strcmp(mode, "real") == 0 || strcmp(mode, "hostile") == 0 ||
	    strcmp(mode, "container") == 0)
		return true;
#ifdef LUA_SYMBOLIZE_BUDGET_TEST
	return strcmp(mode, "budget") == 0;
#else
	return false;
#endif
}

int main(int argc, char **argv)
{
	if (argc != 2 || !mode_known(argv[1])) {
		fprintf(stderr, "usage: %s real|hostile|container|budget (budget: its own build)\n",
			argv[0]);
		return 2;
	}
	const struct lua_puc_version *version = this_version();
	char dir[] = "/tmp/lua_symbolize_XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp");
	lua_State *L = luaL_newstate();
	if (!L)
		die("luaL_newstate");
	luaL_openlibs(L);
	lua_pushcfunction(L, lua_reg);
	lua_setglobal(L, "reg");
	lua_pushcfunction(L, lua_mk);
	lua_setglobal(L, "mk");
	int rc = 0;
	if (strcmp(argv[1], "real") == 0)
		run_real(L, version, dir);
	else if (strcmp(argv[1], "hostile") == 0)
		run_hostile(L, version, dir);
	else if (strcmp(argv[1], "container") == 0)
		rc = run_container(L, version, dir);
	else
		run_budget(L, version, dir);
	lua_close(L);
	for (size_t i = 0; i < nrecords; i++) {
		free(records[i].name);
		free(records[i].trace);
	}
	free(trace.lines);
	remove_dir(dir);
	if (failures) {
		fprintf(stderr, "%d failure(s)\n", failures);
		return 1;
	}
	return rc;
}
