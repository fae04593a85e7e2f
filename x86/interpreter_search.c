/* SPDX-License-Identifier: MIT */
/* interpreter_search.c - finding luaV_execute in stripped x86_64 code.
 *
 * Call graph: breadth-first from the exported API functions (lua_callk, lua_pcallk, lua_resume,
 * 5.1's lua_call/lua_pcall/lua_cpcall) along direct calls, tail jumps and RIP-relative function
 * addresses (5.1 lua_resume passes `resume` to luaD_rawrunprotected), MAX_DEPTH levels deep.
 * Every reached function is disassembled linearly over its FDE range (gcc and clang put no data
 * in .text); undecodable bytes are skipped one at a time, so every loop ends.
 *
 * Shape of luaV_execute: its opcode dispatch jumps through a table with one entry per opcode, all
 * pointing into the function: a switch table of 32-bit offsets relative to the table (gcc, PIC),
 * or a table of 8-byte label addresses (5.4's computed goto, ljumptab.h, or non-PIC switches).
 * Tables are found from the data addresses the function references; gcc loads 5.4's table base
 * once at entry (`lea r14, disptab`), so the indirect jump itself does not name it. A table entry
 * may also point into a .cold part of the function (a separate FDE the function jumps to). The
 * function must have an indirect jump, such a table with (nearly) one entry per opcode, and be
 * at least twice as large as any other function that passes. */
#include "x86/interpreter_search.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/u64_array.h"
#include "x86/x86_operands.h"

#define MAX_DEPTH 4            /* 5.4 at -O1: lua_callk -> luaD_callnoyield -> ccall -> luaV_execute */
#define MAX_FUNCTIONS 1024     /* functions analysed per file */
#define MAX_TABLE_ENTRIES 256  /* table entries counted (5.4 has 83 opcodes) */
#define MIN_SIZE_RATIO 2       /* luaV_execute vs the next largest candidate with a table */
/* Work bounds for hostile files: luaV_execute is 5-25 KiB (5.1-5.4, gcc -O1..-O3); a reached
 * function larger than MAX_FUNCTION_BYTES is not a candidate, at most MAX_TABLE_REFS distinct
 * data addresses of one function are tried as tables, and exploring more than MAX_TOTAL_BYTES of
 * code refuses the file. Debian's liblua5.4.so: 111 functions, 0.1 MiB. */
#define MAX_FUNCTION_BYTES (1u << 20)
#define MAX_TABLE_REFS 4096u
#define MAX_TOTAL_BYTES (16u << 20)
#define MAX_COLD_PARTS 8u

/* ---- growable u64 vectors */

struct u64_vec {
	uint64_t *items;
	size_t count;
	size_t capacity;
};

static int vec_push(struct u64_vec *v, uint64_t value)
{
	uint64_t *items = grow_array(v->items, &v->capacity, v->count + 1, sizeof(*items), 64);
	if (!items)
		return -ENOMEM;
	v->items = items;
	v->items[v->count++] = value;
	return 0;
}

static void vec_sort_unique(struct u64_vec *v) { v->count = u64_sort_unique(v->items, v->count); }

/* ---- one function's facts */

struct fn {
	uint64_t start;
	uint64_t end;
	unsigned depth;
	unsigned indirect_jumps;
	unsigned table_entries; /* largest jump table into the function */
};

/* What the linear sweep of one function collects (reused from one function to the next). */
struct sweep {
	struct u64_vec callees;   /* direct call / tail jump / lea targets outside the function */
	struct u64_vec jumps_out; /* jmp/jcc targets outside: .cold parts, tail calls */
	struct u64_vec refs;      /* data addresses referenced */
	unsigned indirect_jumps;
};

static void sweep_reset(struct sweep *s)
{
	s->callees.count = s->jumps_out.count = s->refs.count = 0;
	s->indirect_jumps = 0;
}

static void sweep_free(struct sweep *s)
{
	free(s->callees.items);
	free(s->jumps_out.items);
	free(s->refs.items);
}

static bool in_code(const struct x86_code *code, uint64_t addr)
{
	return addr >= code->addr && addr - code->addr < code->size;
}

/* jmp reg / jmp [reg...]: an indirect jump (not the PLT's jmp [rip + GOT]). */
static bool is_indirect_jump(const cs_insn *insn)
{
	if (insn->id != X86_INS_JMP || x86_of(insn)->op_count != 1)
		return false;
	const cs_x86_op *op = &x86_of(insn)->operands[0];
	return op->type == X86_OP_REG || (op->type == X86_OP_MEM && op->mem.base != X86_REG_RIP);
}

static int note_branch(const struct lua_exec_search *s, const struct fn *f, struct sweep *sw,
		       const cs_insn *insn)
{
	uint64_t target;
	if (!x86_direct_target(insn, &target))
		return 0;
	if ((target >= f->start && target < f->end) || !in_code(s->code, target))
		return 0;
	int err = vec_push(&sw->callees, target);
	if (!err && insn->id != X86_INS_CALL)
		err = vec_push(&sw->jumps_out, target);
	return err;
}

static int note_operands(const struct lua_exec_search *s, const struct fn *f, struct sweep *sw,
			 const cs_insn *insn)
{
	const cs_x86 *x = x86_of(insn);
	for (uint8_t i = 0; i < x->op_count && i < 8; i++) {
		uint64_t addr = x86_mem_address(insn, &x->operands[i]);
		if (addr == 0)
			continue;
		int err = 0;
		if (!in_code(s->code, addr))
			err = vec_push(&sw->refs, addr);
		else if (insn->id == X86_INS_LEA && (addr < f->start || addr >= f->end))
			err = vec_push(&sw->callees, addr); /* a function pointer argument */
		if (err)
			return err;
	}
	return 0;
}

static int sweep_function(const struct lua_exec_search *s, struct x86_disasm *d, const struct fn *f,
			  struct sweep *sw)
{
	struct x86_cursor c;
	sweep_reset(sw);
	if (!x86_cursor_at(s->code, f->start, f->end, &c))
		return 0;
	enum x86_decoded st;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		if (st == X86_DECODED_BAD)
			continue;
		const cs_insn *insn = d->insn;
		int err = 0;
		if (is_indirect_jump(insn))
			sw->indirect_jumps++;
		else if (cs_insn_group(d->handle, insn, CS_GRP_CALL) ||
			 cs_insn_group(d->handle, insn, CS_GRP_JUMP))
			err = note_branch(s, f, sw, insn);
		if (!err)
			err = note_operands(s, f, sw, insn);
		if (err)
			return err;
	}
	vec_sort_unique(&sw->callees);
	vec_sort_unique(&sw->jumps_out);
	vec_sort_unique(&sw->refs);
	return 0;
}

/* ---- jump tables */

struct range {
	uint64_t lo;
	uint64_t hi;
};

static bool in_ranges(const struct range *r, size_t n, uint64_t addr)
{
	for (size_t i = 0; i < n; i++)
		if (addr >= r[i].lo && addr < r[i].hi)
			return true;
	return false;
}

static uint64_t load_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8u * i);
	return v;
}

/* Consecutive entries at table that point into the ranges, read as 32-bit offsets from the
 * table and as 8-byte addresses; the larger count. */
static unsigned table_entries_at(const struct lua_exec_search *s, uint64_t table,
				 const struct range *r, size_t n)
{
	uint8_t buf[MAX_TABLE_ENTRIES * 8];
	size_t got = s->read(s->read_ctx, table, buf, sizeof(buf));
	if (got > sizeof(buf))
		got = 0;
	unsigned rel = 0, abs = 0;
	while ((size_t)rel * 4 + 4 <= got && rel < MAX_TABLE_ENTRIES) {
		int32_t off = (int32_t)(uint32_t)load_le(buf + (size_t)rel * 4, 4);
		if (!in_ranges(r, n, table + (uint64_t)(int64_t)off))
			break;
		rel++;
	}
	while ((size_t)abs * 8 + 8 <= got) {
		if (!in_ranges(r, n, load_le(buf + (size_t)abs * 8, 8)))
			break;
		abs++;
	}
	return rel > abs ? rel : abs;
}

/* The function's range plus the .cold parts it jumps to (gcc makes one per function; the first
 * MAX_COLD_PARTS functions jumped to are taken). */
static int target_ranges(const struct lua_exec_search *s, const struct fn *f,
			 const struct sweep *sw, struct range **out, size_t *count)
{
	struct range *r = calloc(MAX_COLD_PARTS + 1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	size_t n = 0;
	r[n++] = (struct range){f->start, f->end};
	for (size_t i = 0; i < sw->jumps_out.count && n < MAX_COLD_PARTS + 1; i++) {
		uint64_t end;
		if (x86_fn_end(s->cfi, sw->jumps_out.items[i], &end))
			r[n++] = (struct range){sw->jumps_out.items[i], end};
	}
	*out = r;
	*count = n;
	return 0;
}

static int measure_tables(const struct lua_exec_search *s, struct fn *f, const struct sweep *sw)
{
	f->indirect_jumps = sw->indirect_jumps;
	f->table_entries = 0;
	if (sw->indirect_jumps == 0 || sw->refs.count == 0)
		return 0;
	struct range *r;
	size_t n;
	int err = target_ranges(s, f, sw, &r, &n);
	if (err)
		return err;
	for (size_t i = 0; i < sw->refs.count && i < MAX_TABLE_REFS; i++) {
		unsigned entries = table_entries_at(s, sw->refs.items[i], r, n);
		if (entries > f->table_entries)
			f->table_entries = entries;
	}
	free(r);
	return 0;
}

/* ---- call graph */

static uint64_t fn_size(const struct fn *f) { return f->end - f->start; }

struct graph {
	struct fn *fns;
	size_t count;
	size_t capacity;
};

static bool graph_has(const struct graph *g, uint64_t start)
{
	for (size_t i = 0; i < g->count; i++)
		if (g->fns[i].start == start)
			return true;
	return false;
}

/* Add the function starting at start unless known, not a function, or over the limit. */
static int graph_add(struct graph *g, const struct lua_exec_search *s, uint64_t start,
		     unsigned depth)
{
	uint64_t end;
	if (graph_has(g, start) || !in_code(s->code, start) || !x86_fn_end(s->cfi, start, &end) ||
	    end - start > MAX_FUNCTION_BYTES)
		return 0;
	if (g->count >= MAX_FUNCTIONS) {
		lp_debug("lua: call graph limit (%u functions) reached", MAX_FUNCTIONS);
		return 0;
	}
	struct fn *fns = grow_array(g->fns, &g->capacity, g->count + 1, sizeof(*fns), 64);
	if (!fns)
		return -ENOMEM;
	g->fns = fns;
	g->fns[g->count++] = (struct fn){.start = start, .end = end, .depth = depth};
	return 0;
}

/* 0, -ENOMEM, or -E2BIG when the work bound is reached. */
static int explore(const struct lua_exec_search *s, struct x86_disasm *d, struct graph *g)
{
	struct sweep sw;
	memset(&sw, 0, sizeof(sw));
	int err = 0;
	uint64_t total = 0;
	for (size_t i = 0; i < s->root_count && !err; i++)
		err = graph_add(g, s, s->roots[i], 0);
	/* g->fns grows while it is walked: index, never hold a pointer across graph_add. */
	for (size_t i = 0; i < g->count && !err; i++) {
		total += fn_size(&g->fns[i]);
		if (total > MAX_TOTAL_BYTES) {
			err = -E2BIG;
			break;
		}
		err = sweep_function(s, d, &g->fns[i], &sw);
		if (!err)
			err = measure_tables(s, &g->fns[i], &sw);
		unsigned depth = g->fns[i].depth;
		for (size_t j = 0; j < sw.callees.count && !err && depth < MAX_DEPTH; j++)
			err = graph_add(g, s, sw.callees.items[j], depth + 1);
	}
	sweep_free(&sw);
	return err;
}

/* The largest function with the dispatch shape, if it is clearly the largest such. */
static int choose_execute(const struct lua_exec_search *s, const struct graph *g,
			  const struct fn **out, const char **reason)
{
	const struct fn *best = NULL, *second = NULL;
	for (size_t i = 0; i < g->count; i++) {
		const struct fn *f = &g->fns[i];
		if (f->indirect_jumps == 0 || f->table_entries < s->min_table_entries)
			continue;
		if (!best || fn_size(f) > fn_size(best)) {
			second = best;
			best = f;
		} else if (!second || fn_size(f) > fn_size(second)) {
			second = f;
		}
	}
	if (!best) {
		*reason = "no function reached from the Lua C API dispatches through an opcode table";
		return -ENOENT;
	}
	if (second && fn_size(best) < MIN_SIZE_RATIO * fn_size(second)) {
		*reason = "several functions reached from the Lua C API look like luaV_execute";
		return -ENOENT;
	}
	lp_debug("lua: luaV_execute at %#llx..%#llx (depth %u, %u table entries, %u indirect jumps; "
		 "%zu functions examined, next candidate %llu bytes)",
		 (unsigned long long)best->start, (unsigned long long)best->end, best->depth,
		 best->table_entries, best->indirect_jumps, g->count,
		 (unsigned long long)(second ? fn_size(second) : 0));
	*out = best;
	return 0;
}

int lua_find_execute(const struct lua_exec_search *s, uint64_t *start, uint64_t *end,
		     const char **reason)
{
	struct x86_disasm d;
	int err = x86_disasm_open(&d);
	if (err) {
		*reason = "the disassembler failed to start";
		return err;
	}
	struct graph g = {0};
	err = explore(s, &d, &g);
	const struct fn *exec = NULL;
	if (!err)
		err = choose_execute(s, &g, &exec, reason);
	else if (err == -E2BIG)
		*reason = "too much code reached from the Lua C API to analyse";
	else
		*reason = "out of memory while analysing the Lua VM code";
	if (!err) {
		*start = exec->start;
		*end = exec->end;
	}
	free(g.fns);
	x86_disasm_close(&d);
	return err;
}

