/* SPDX-License-Identifier: MIT */
/* lua_disasm.c - finding luaV_execute and its lua_State register in stripped x86_64 code.
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
#include "x86/lua_disasm.h"

#include "unwind/elf_image.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/abi/unwind_abi.h"
#include "lib/grow_array.h"
#include "lib/log.h"

#define MAX_DEPTH 4            /* 5.4 at -O1: lua_callk -> luaD_callnoyield -> ccall -> luaV_execute */
#define MAX_FUNCTIONS 1024     /* functions analysed per file */
#define MAX_TABLE_ENTRIES 256  /* table entries counted (5.4 has 83 opcodes) */
#define MAX_ENTRY_INSNS 64     /* instructions read at luaV_execute's entry */
#define MIN_SIZE_RATIO 2       /* luaV_execute vs the next largest candidate with a table */
/* Work bounds for hostile files: luaV_execute is 5-25 KiB (5.1-5.4, gcc -O1..-O3); a reached
 * function larger than MAX_FUNCTION_BYTES is not a candidate, at most MAX_TABLE_REFS distinct
 * data addresses of one function are tried as tables, and exploring more than MAX_TOTAL_BYTES of
 * code refuses the file. Debian's liblua5.4.so: 111 functions, 0.1 MiB. */
#define MAX_FUNCTION_BYTES (1u << 20)
#define MAX_TABLE_REFS 4096u
#define MAX_TOTAL_BYTES (16u << 20)
#define MAX_COLD_PARTS 8u

/* ---- function bounds */

static bool is_function_start(const struct cfi_table *cfi, uint64_t addr, size_t *index)
{
	size_t lo = 0, hi = cfi->function_count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (cfi->function_starts[mid] < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < cfi->function_count && cfi->function_starts[lo] == addr) {
		*index = lo;
		return true;
	}
	return false;
}

bool lua_fn_end(const struct cfi_table *cfi, uint64_t start, uint64_t *end)
{
	size_t i;
	if (!cfi || !cfi->function_starts || !is_function_start(cfi, start, &i))
		return false;
	uint64_t limit = i + 1 < cfi->function_count ? cfi->function_starts[i + 1] : UINT64_MAX;
	const struct cfi_row *row = cfi_table_lookup(cfi, start);
	if (!row || row->rule.cfa_type == CFA_GAP)
		return false;
	for (size_t r = (size_t)(row - cfi->rows) + 1; r < cfi->count; r++) {
		const struct cfi_row *next = &cfi->rows[r];
		if (next->pc >= limit)
			break;
		if (next->rule.cfa_type == CFA_GAP) {
			limit = next->pc;
			break;
		}
	}
	if (limit == UINT64_MAX || limit <= start)
		return false;
	*end = limit;
	return true;
}

/* ---- capstone */

int lua_disasm_open(struct lua_disasm *d)
{
	memset(d, 0, sizeof(*d));
	cs_err err = cs_open(CS_ARCH_X86, CS_MODE_64, &d->handle);
	if (err != CS_ERR_OK) {
		lp_warn("capstone: cs_open: %s", cs_strerror(err));
		return -ENOSYS;
	}
	err = cs_option(d->handle, CS_OPT_DETAIL, CS_OPT_ON);
	if (err == CS_ERR_OK) {
		d->insn = cs_malloc(d->handle);
		if (!d->insn)
			err = CS_ERR_MEM;
	}
	if (err != CS_ERR_OK) {
		lp_warn("capstone: %s", cs_strerror(err));
		cs_close(&d->handle);
		return err == CS_ERR_MEM ? -ENOMEM : -ENOSYS;
	}
	return 0;
}

void lua_disasm_close(struct lua_disasm *d)
{
	if (d->insn)
		cs_free(d->insn, 1);
	if (d->handle)
		cs_close(&d->handle);
	memset(d, 0, sizeof(*d));
}

bool lua_cursor_at(const struct lua_code *code, uint64_t start, uint64_t end, struct lua_cursor *c)
{
	if (start < code->addr || end <= start || start - code->addr > code->size ||
	    end - code->addr > code->size)
		return false;
	c->p = code->bytes + (start - code->addr);
	c->left = (size_t)(end - start);
	c->addr = start;
	return true;
}

enum lua_step lua_next_insn(struct lua_disasm *d, struct lua_cursor *c)
{
	if (c->left == 0)
		return LUA_STEP_END;
	if (cs_disasm_iter(d->handle, &c->p, &c->left, &c->addr, d->insn))
		return LUA_STEP_INSN;
	c->p++;
	c->left--;
	c->addr++;
	return LUA_STEP_BAD;
}

static const cs_x86 *x86_of(const cs_insn *insn) { return &insn->detail->x86; }

/* The absolute address a memory operand names: RIP-relative, or a bare displacement indexed by a
 * register (non-PIC tables: jmp [rax*8 + table]). 0 when neither. */
static uint64_t mem_address(const cs_insn *insn, const cs_x86_op *op)
{
	if (op->type != X86_OP_MEM)
		return 0;
	if (op->mem.base == X86_REG_RIP)
		return insn->address + insn->size + (uint64_t)op->mem.disp;
	if (op->mem.base == X86_REG_INVALID && op->mem.index != X86_REG_INVALID && op->mem.disp > 0)
		return (uint64_t)op->mem.disp;
	return 0;
}

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

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static void vec_sort_unique(struct u64_vec *v)
{
	if (v->count < 2)
		return;
	qsort(v->items, v->count, sizeof(*v->items), compare_u64);
	size_t n = 1;
	for (size_t i = 1; i < v->count; i++)
		if (v->items[i] != v->items[n - 1])
			v->items[n++] = v->items[i];
	v->count = n;
}

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

static bool in_code(const struct lua_code *code, uint64_t addr)
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
	const cs_x86 *x = x86_of(insn);
	if (x->op_count != 1 || x->operands[0].type != X86_OP_IMM)
		return 0;
	uint64_t target = (uint64_t)x->operands[0].imm;
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
		uint64_t addr = mem_address(insn, &x->operands[i]);
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

static int sweep_function(const struct lua_exec_search *s, struct lua_disasm *d, const struct fn *f,
			  struct sweep *sw)
{
	struct lua_cursor c;
	sweep_reset(sw);
	if (!lua_cursor_at(s->code, f->start, f->end, &c))
		return 0;
	enum lua_step st;
	while ((st = lua_next_insn(d, &c)) != LUA_STEP_END) {
		if (st == LUA_STEP_BAD)
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
		if (lua_fn_end(s->cfi, sw->jumps_out.items[i], &end))
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
	if (graph_has(g, start) || !in_code(s->code, start) || !lua_fn_end(s->cfi, start, &end) ||
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
static int explore(const struct lua_exec_search *s, struct lua_disasm *d, struct graph *g)
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
	struct lua_disasm d;
	int err = lua_disasm_open(&d);
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
	lua_disasm_close(&d);
	return err;
}

/* ---- where luaV_execute keeps lua_State *L at its opcode dispatch
 *
 * The entry path (fall-through of conditional branches, direct jumps inside the function) is
 * followed from the start up to the first call, return, indirect jump (the opcode dispatch) or
 * exit, tracking what holds the entry value of rdi: registers (copies, and loads from a stack slot
 * holding it) and 8-byte slots of the function's own stack frame (stores of a register holding
 * it, push included). A slot is named by its offset from the CFA, from the CFA rule in effect at
 * the instruction that addresses it: CFA = rsp + N gives [rsp + d] = CFA - N + d; CFA = rbp + N
 * (rbp the frame pointer) gives [rbp + d] = CFA - N + d. The name stays valid whatever rsp does
 * later, and it is what the BPF walker reads (lua_interp.l_cfa_off: the CFA of every frame is
 * known exactly there). Any write into the frame that overlaps a slot ends it holding L; a frame
 * write that cannot be placed (an index register, an rsp access under another CFA rule) ends all
 * of them. Writes through other registers are taken not to reach the frame: compiled code
 * addresses its spill slots through rsp or the frame pointer only.
 *
 * Result: a callee-saved register holding L where the path ends (today's rule, and preferred:
 * no memory read in BPF), unless some instruction of the function also writes a computed value
 * into it (not a plain copy: the register is then only a temporary home) and a slot qualifies;
 * otherwise a slot holding L there that
 *   - was stored before the path's first conditional branch: every run of the function executes
 *     that store before anything else (direct jumps are followed, so this is dominance);
 *   - is written by no other instruction of the whole function, nor has its address taken: it
 *     holds L from the store on, at every instruction (a compiler's spill slot of L holds only L;
 *     a slot shared with another variable is written elsewhere, and refused);
 *   - is reloaded (mov reg, [slot]) somewhere: L's home, not a passing copy.
 * gcc 5.4 at -O1: [rsp+8] = CFA-0xb8; at -O3: [rsp] = CFA-0xa0. clang 5.1/5.3/5.4 at -O1..-O3
 * keep L in rdi between opcodes, copy it into scratch callee-saved registers around calls and
 * reload it from one slot: the slot (a register found at the dispatch misses L in some handlers).
 * Every gcc build (Debian's and -O1..-O3) with L in a register has no qualifying slot: the
 * register, as before. */

#define MAX_SLOTS 8         /* frame slots tracked as holding L */
#define MAX_SLOT_STORES 16  /* stores of L into the frame on the entry path */
#define MAX_SAVES 16        /* prologue pushes remembered */
#define SLOT_MIN_CFA_OFF (-32768) /* lua_interp.l_cfa_off is an s16 */
#define SLOT_MAX_CFA_OFF (-16)    /* below the return address (CFA - 8) */

/* General purpose registers by their DWARF number (enum dwarf_reg), any width. */
struct gpr_name {
	x86_reg reg;
	uint8_t dwarf;
};

static const struct gpr_name gpr_names[] = {
	{X86_REG_RAX, DW_RAX}, {X86_REG_EAX, DW_RAX}, {X86_REG_AX, DW_RAX}, {X86_REG_AL, DW_RAX},
	{X86_REG_AH, DW_RAX},  {X86_REG_RDX, DW_RDX}, {X86_REG_EDX, DW_RDX}, {X86_REG_DX, DW_RDX},
	{X86_REG_DL, DW_RDX},  {X86_REG_DH, DW_RDX},  {X86_REG_RCX, DW_RCX}, {X86_REG_ECX, DW_RCX},
	{X86_REG_CX, DW_RCX},  {X86_REG_CL, DW_RCX},  {X86_REG_CH, DW_RCX},  {X86_REG_RBX, DW_RBX},
	{X86_REG_EBX, DW_RBX}, {X86_REG_BX, DW_RBX},  {X86_REG_BL, DW_RBX},  {X86_REG_BH, DW_RBX},
	{X86_REG_RSI, DW_RSI}, {X86_REG_ESI, DW_RSI}, {X86_REG_SI, DW_RSI},  {X86_REG_SIL, DW_RSI},
	{X86_REG_RDI, DW_RDI}, {X86_REG_EDI, DW_RDI}, {X86_REG_DI, DW_RDI},  {X86_REG_DIL, DW_RDI},
	{X86_REG_RBP, DW_RBP}, {X86_REG_EBP, DW_RBP}, {X86_REG_BP, DW_RBP},  {X86_REG_BPL, DW_RBP},
	{X86_REG_RSP, DW_RSP}, {X86_REG_ESP, DW_RSP}, {X86_REG_SP, DW_RSP},  {X86_REG_SPL, DW_RSP},
	{X86_REG_R8, DW_R8},   {X86_REG_R8D, DW_R8},  {X86_REG_R8W, DW_R8},  {X86_REG_R8B, DW_R8},
	{X86_REG_R9, DW_R9},   {X86_REG_R9D, DW_R9},  {X86_REG_R9W, DW_R9},  {X86_REG_R9B, DW_R9},
	{X86_REG_R10, DW_R10}, {X86_REG_R10D, DW_R10}, {X86_REG_R10W, DW_R10}, {X86_REG_R10B, DW_R10},
	{X86_REG_R11, DW_R11}, {X86_REG_R11D, DW_R11}, {X86_REG_R11W, DW_R11}, {X86_REG_R11B, DW_R11},
	{X86_REG_R12, DW_R12}, {X86_REG_R12D, DW_R12}, {X86_REG_R12W, DW_R12}, {X86_REG_R12B, DW_R12},
	{X86_REG_R13, DW_R13}, {X86_REG_R13D, DW_R13}, {X86_REG_R13W, DW_R13}, {X86_REG_R13B, DW_R13},
	{X86_REG_R14, DW_R14}, {X86_REG_R14D, DW_R14}, {X86_REG_R14W, DW_R14}, {X86_REG_R14B, DW_R14},
	{X86_REG_R15, DW_R15}, {X86_REG_R15D, DW_R15}, {X86_REG_R15W, DW_R15}, {X86_REG_R15B, DW_R15},
};

/* DWARF number of a general purpose register of any width; -1 for anything else. */
static int gpr_dwarf(unsigned reg)
{
	for (size_t i = 0; i < sizeof(gpr_names) / sizeof(gpr_names[0]); i++)
		if ((unsigned)gpr_names[i].reg == reg)
			return gpr_names[i].dwarf;
	return -1;
}

/* x86_64 psABI 3.2.1: rbx, rbp and r12-r15 belong to the caller (preserved across calls). */
static bool callee_saved(int dwarf)
{
	return dwarf == DW_RBX || dwarf == DW_RBP || (dwarf >= DW_R12 && dwarf <= DW_R15);
}

/* What holds the entry value of rdi on the entry path. */
struct holders {
	uint32_t mask;             /* bit per DWARF register */
	uint8_t order[DW_REG_COUNT]; /* registers in the order they received it */
	unsigned order_count;
	int64_t slots[MAX_SLOTS];  /* CFA offsets of the frame slots holding it, in store order */
	unsigned slot_count;
	uint64_t stores[MAX_SLOT_STORES]; /* addresses of the instructions that stored it there */
	unsigned store_count;
	uint64_t saves[MAX_SAVES]; /* the pushes before the first store (the prologue's: with a frame
				    * pointer they run under CFA = rbp + N, where rsp is not placed) */
	unsigned save_count;
	bool spilled;              /* stored to the stack */
	bool branched;             /* a conditional branch was passed: stores from here on may not
				    * run on every call */
};

static bool is_full_reg_operand(const cs_x86_op *op)
{
	return op->type == X86_OP_REG && op->size == 8 && gpr_dwarf(op->reg) >= 0;
}

static bool holds(const struct holders *h, unsigned reg)
{
	int dwarf = gpr_dwarf(reg);
	return dwarf >= 0 && (h->mask & (1u << dwarf));
}

static void add_holder(struct holders *h, int dwarf)
{
	if (!(h->mask & (1u << dwarf)) && h->order_count < DW_REG_COUNT)
		h->order[h->order_count++] = (uint8_t)dwarf;
	h->mask |= 1u << dwarf;
}

/* mov dst64, src64 with src holding L: dst now holds it too. */
static bool track_copy(struct holders *h, const cs_insn *insn)
{
	const cs_x86 *x = x86_of(insn);
	if (insn->id != X86_INS_MOV || x->op_count != 2 || !is_full_reg_operand(&x->operands[1]))
		return false;
	if (!holds(h, x->operands[1].reg))
		return false;
	if (x->operands[0].type == X86_OP_MEM) {
		if (x->operands[0].mem.base == X86_REG_RSP)
			h->spilled = true;
		return true;
	}
	if (!is_full_reg_operand(&x->operands[0]))
		return false;
	add_holder(h, gpr_dwarf(x->operands[0].reg));
	return true;
}

/* Every register the instruction writes loses L. */
static int track_writes(struct lua_disasm *d, struct holders *h)
{
	cs_regs read, written;
	uint8_t nread = 0, nwritten = 0;
	cs_err err = cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten);
	if (err != CS_ERR_OK) {
		lp_debug("capstone: cs_regs_access: %s", cs_strerror(err));
		return -EINVAL;
	}
	for (uint8_t i = 0; i < nwritten && i < sizeof(written) / sizeof(written[0]); i++) {
		int dwarf = gpr_dwarf(written[i]);
		if (dwarf >= 0)
			h->mask &= ~(1u << dwarf);
	}
	return 0;
}

/* ---- the function's own stack frame */

enum frame_ref {
	FRAME_NONE,    /* not the function's stack frame */
	FRAME_AT,      /* at CFA + *cfa_off */
	FRAME_UNKNOWN, /* in the frame, or possibly, at a place that cannot be told */
};

static const struct cfi_row *rule_at(const struct cfi_table *cfi, uint64_t pc)
{
	if (!cfi || !cfi->rows || cfi->count == 0)
		return NULL;
	const struct cfi_row *row = cfi_table_lookup(cfi, pc);
	return row && row->rule.cfa_type == CFA_REG_OFF ? row : NULL;
}

/* Where the memory operand op of the instruction at pc is, relative to the CFA: rsp-based under
 * CFA = rsp + N, or rbp-based under CFA = rbp + N. rbp-based under any other rule: rbp is a
 * general register there (gcc -O1+ uses it so), not the frame. */
static enum frame_ref frame_ref(const struct cfi_table *cfi, uint64_t pc, const cs_x86_op *op,
				int64_t *cfa_off)
{
	if (op->type != X86_OP_MEM || op->mem.segment != X86_REG_INVALID)
		return FRAME_NONE;
	unsigned base = op->mem.base;
	if (base == X86_REG_ESP || base == X86_REG_EBP)
		return FRAME_UNKNOWN; /* 32-bit addressing of the stack: nothing compilers emit */
	if (base != X86_REG_RSP && base != X86_REG_RBP)
		return FRAME_NONE;
	const struct cfi_row *row = rule_at(cfi, pc);
	if (base == X86_REG_RBP && !(row && row->rule.cfa_reg == DW_RBP))
		return FRAME_NONE;
	if (!row || (base == X86_REG_RSP && row->rule.cfa_reg != DW_RSP) ||
	    op->mem.index != X86_REG_INVALID)
		return FRAME_UNKNOWN;
	*cfa_off = op->mem.disp - (int64_t)row->rule.cfa_off;
	return FRAME_AT;
}

/* push / pushfq at pc write the 8 bytes below rsp: CFA - N - 8 under CFA = rsp + N. */
static enum frame_ref push_ref(const struct cfi_table *cfi, uint64_t pc, int64_t *cfa_off)
{
	const struct cfi_row *row = rule_at(cfi, pc);
	if (!row || row->rule.cfa_reg != DW_RSP)
		return FRAME_UNKNOWN;
	*cfa_off = -(int64_t)row->rule.cfa_off - 8;
	return FRAME_AT;
}

static bool is_push(const cs_insn *insn)
{
	return insn->id == X86_INS_PUSH || insn->id == X86_INS_PUSHFQ;
}

/* Whether operand i is written: capstone's access flags; an operand without them counts as
 * written when it is the destination (the first operand in Intel order). */
static bool operand_written(const cs_insn *insn, uint8_t i)
{
	const cs_x86_op *op = &x86_of(insn)->operands[i];
	if (insn->id == X86_INS_LEA || insn->id == X86_INS_NOP || insn->id == X86_INS_PREFETCH ||
	    insn->id == X86_INS_PREFETCHT0 || insn->id == X86_INS_PREFETCHT1 ||
	    insn->id == X86_INS_PREFETCHT2 || insn->id == X86_INS_PREFETCHNTA ||
	    insn->id == X86_INS_PREFETCHW)
		return false;
	return (op->access & CS_AC_WRITE) || (op->access == CS_AC_INVALID && i == 0);
}

/* Bytes a memory write covers; 0 (unknown to capstone) counts as a large area. */
static int64_t write_size(const cs_x86_op *op)
{
	return op->size ? op->size : 512;
}

static bool overlaps_slot(int64_t at, int64_t size, int64_t slot)
{
	return at < slot + 8 && slot < at + size;
}

static void kill_slots(struct holders *h, int64_t at, int64_t size)
{
	unsigned n = 0;
	for (unsigned i = 0; i < h->slot_count; i++)
		if (!overlaps_slot(at, size, h->slots[i]))
			h->slots[n++] = h->slots[i];
	h->slot_count = n;
}

/* The 8 bytes at CFA + at now hold L (stored by the instruction at pc). */
static void add_slot(struct holders *h, int64_t at, uint64_t pc)
{
	h->spilled = true;
	if (h->branched || at < SLOT_MIN_CFA_OFF || at > SLOT_MAX_CFA_OFF ||
	    h->slot_count >= MAX_SLOTS || h->store_count >= MAX_SLOT_STORES)
		return; /* not a slot known to hold L always, or not one BPF can be told about */
	h->stores[h->store_count++] = pc;
	h->slots[h->slot_count++] = at;
}

/* The frame writes of one entry path instruction: the slots they overlap stop holding L; an
 * 8-byte store (mov or push) of a register holding L makes its slot a holder. */
static void track_frame_writes(const struct cfi_table *cfi, const cs_insn *insn, struct holders *h)
{
	const cs_x86 *x = x86_of(insn);
	int64_t at;
	if (is_push(insn)) {
		if (h->store_count == 0 && h->save_count < MAX_SAVES)
			h->saves[h->save_count++] = insn->address;
		if (push_ref(cfi, insn->address, &at) != FRAME_AT) {
			h->slot_count = 0;
			return;
		}
		kill_slots(h, at, 8);
		if (insn->id == X86_INS_PUSH && x->op_count == 1 &&
		    is_full_reg_operand(&x->operands[0]) && holds(h, x->operands[0].reg))
			add_slot(h, at, insn->address);
		return;
	}
	for (uint8_t i = 0; i < x->op_count && i < 8; i++) {
		const cs_x86_op *op = &x->operands[i];
		if (op->type != X86_OP_MEM || !operand_written(insn, i))
			continue;
		enum frame_ref where = frame_ref(cfi, insn->address, op, &at);
		if (where == FRAME_UNKNOWN) {
			h->slot_count = 0;
		} else if (where == FRAME_AT) {
			kill_slots(h, at, write_size(op));
			if (insn->id == X86_INS_MOV && i == 0 && x->op_count == 2 && op->size == 8 &&
			    is_full_reg_operand(&x->operands[1]) && holds(h, x->operands[1].reg))
				add_slot(h, at, insn->address);
		}
	}
}

/* mov reg64, [frame + at]: the CFA offset loaded, or false when the instruction is not that. */
static bool frame_load(const struct cfi_table *cfi, const cs_insn *insn, int64_t *at)
{
	const cs_x86 *x = x86_of(insn);
	return insn->id == X86_INS_MOV && x->op_count == 2 && is_full_reg_operand(&x->operands[0]) &&
	       x->operands[1].type == X86_OP_MEM && x->operands[1].size == 8 &&
	       frame_ref(cfi, insn->address, &x->operands[1], at) == FRAME_AT;
}

/* mov reg64, [a slot holding L]: the register that now holds L, or -1. */
static int reloaded_register(const struct cfi_table *cfi, const cs_insn *insn,
			     const struct holders *h)
{
	int64_t at;
	if (!frame_load(cfi, insn, &at))
		return -1;
	for (unsigned i = 0; i < h->slot_count; i++)
		if (h->slots[i] == at)
			return gpr_dwarf(x86_of(insn)->operands[0].reg);
	return -1;
}

/* ---- the entry path */

static bool ends_entry_block(struct lua_disasm *d)
{
	const cs_insn *insn = d->insn;
	return cs_insn_group(d->handle, insn, CS_GRP_CALL) || cs_insn_group(d->handle, insn, CS_GRP_RET) ||
	       cs_insn_group(d->handle, insn, CS_GRP_INT) || insn->id == X86_INS_JMP ||
	       insn->id == X86_INS_UD2 || insn->id == X86_INS_HLT;
}

/* jmp to a constant address inside [start, end): the entry block continues there. */
static bool entry_jump_target(const cs_insn *insn, uint64_t start, uint64_t end, uint64_t *target)
{
	const cs_x86 *x = x86_of(insn);
	if (insn->id != X86_INS_JMP || x->op_count != 1 || x->operands[0].type != X86_OP_IMM)
		return false;
	*target = (uint64_t)x->operands[0].imm;
	return *target >= start && *target < end;
}

/* Follow the entry path (fall-through of conditional branches, direct jumps inside the
 * function) up to the first call, return, indirect jump (the opcode dispatch) or exit, while
 * anything holds L. */
static int scan_entry(struct lua_disasm *d, const struct lua_code *code, const struct cfi_table *cfi,
		      uint64_t start, uint64_t end, struct holders *h)
{
	struct lua_cursor c;
	if (!lua_cursor_at(code, start, end, &c))
		return -EINVAL;
	for (unsigned n = 0; n < MAX_ENTRY_INSNS && (h->mask != 0 || h->slot_count != 0); n++) {
		if (lua_next_insn(d, &c) != LUA_STEP_INSN)
			break;
		uint64_t target;
		if (entry_jump_target(d->insn, start, end, &target)) {
			if (!lua_cursor_at(code, target, end, &c))
				break;
			continue;
		}
		if (ends_entry_block(d))
			break;
		if (cs_insn_group(d->handle, d->insn, CS_GRP_JUMP))
			h->branched = true; /* a conditional one: the path goes on with its fall-through */
		track_frame_writes(cfi, d->insn, h);
		if (track_copy(h, d->insn))
			continue;
		int reload = reloaded_register(cfi, d->insn, h);
		int err = track_writes(d, h);
		if (err)
			return err;
		if (reload >= 0)
			add_holder(h, reload);
	}
	return 0;
}

/* How often each register is passed as the first argument (mov rdi, reg) in [start, end):
 * luaV_execute passes L to most of what it calls. */
static int count_first_args(struct lua_disasm *d, const struct lua_code *code, uint64_t start,
			    uint64_t end, unsigned uses[DW_REG_COUNT])
{
	struct lua_cursor c;
	memset(uses, 0, DW_REG_COUNT * sizeof(*uses));
	if (!lua_cursor_at(code, start, end, &c))
		return -EINVAL;
	enum lua_step st;
	while ((st = lua_next_insn(d, &c)) != LUA_STEP_END) {
		const cs_x86 *x = st == LUA_STEP_INSN ? x86_of(d->insn) : NULL;
		if (!x || d->insn->id != X86_INS_MOV || x->op_count != 2 ||
		    !is_full_reg_operand(&x->operands[0]) || !is_full_reg_operand(&x->operands[1]) ||
		    gpr_dwarf(x->operands[0].reg) != DW_RDI)
			continue;
		uses[gpr_dwarf(x->operands[1].reg)]++;
	}
	return 0;
}

/* Among the callee-saved registers holding L when the entry path ends, the one luaV_execute
 * passes most often as the first argument; ties go to the earliest copy. -1 when none. */
static int choose_holder(struct lua_disasm *d, const struct lua_code *code, uint64_t start,
			 uint64_t end, const struct holders *h)
{
	int candidates = 0, first = -1;
	for (unsigned i = 0; i < h->order_count; i++) {
		if (callee_saved(h->order[i]) && (h->mask & (1u << h->order[i]))) {
			candidates++;
			if (first < 0)
				first = h->order[i];
		}
	}
	unsigned uses[DW_REG_COUNT];
	if (candidates < 2 || count_first_args(d, code, start, end, uses) != 0)
		return first;
	int best = first;
	for (unsigned i = 0; i < h->order_count; i++) {
		int reg = h->order[i];
		if (callee_saved(reg) && (h->mask & (1u << reg)) && uses[reg] > uses[best])
			best = reg;
	}
	return best;
}

/* ---- the slots over the whole function */

struct slot_use {
	unsigned loads;  /* mov reg64, [slot] */
	bool clobbered;  /* written by another instruction than the entry path's stores of L, or
			  * its address taken (lea) */
};

static bool is_entry_store(const struct holders *h, uint64_t pc)
{
	for (unsigned i = 0; i < h->store_count; i++)
		if (h->stores[i] == pc)
			return true;
	return false;
}

/* A push of the prologue: it runs before L is stored (a push is never run again by a jump
 * back: the stack would grow at each pass). */
static bool is_prologue_push(const struct holders *h, uint64_t pc)
{
	for (unsigned i = 0; i < h->save_count; i++)
		if (h->saves[i] == pc)
			return true;
	return false;
}

static void note_frame_operand(const struct cfi_table *cfi, const cs_insn *insn, uint8_t i,
			       const struct holders *h, struct slot_use *use)
{
	const cs_x86_op *op = &x86_of(insn)->operands[i];
	int64_t at = 0;
	enum frame_ref where = frame_ref(cfi, insn->address, op, &at);
	if (where == FRAME_NONE)
		return;
	if (insn->id == X86_INS_LEA) {
		for (unsigned s = 0; s < h->slot_count && where == FRAME_AT; s++)
			if (at == h->slots[s])
				use[s].clobbered = true; /* its address escapes */
		return;
	}
	if (!operand_written(insn, i) || is_entry_store(h, insn->address))
		return;
	for (unsigned s = 0; s < h->slot_count; s++)
		if (where == FRAME_UNKNOWN || overlaps_slot(at, write_size(op), h->slots[s]))
			use[s].clobbered = true;
}

static int scan_slot_uses(struct lua_disasm *d, const struct lua_code *code,
			  const struct cfi_table *cfi, uint64_t start, uint64_t end,
			  const struct holders *h, struct slot_use use[MAX_SLOTS])
{
	struct lua_cursor c;
	memset(use, 0, MAX_SLOTS * sizeof(*use));
	if (!lua_cursor_at(code, start, end, &c))
		return -EINVAL;
	enum lua_step st;
	while ((st = lua_next_insn(d, &c)) != LUA_STEP_END) {
		if (st != LUA_STEP_INSN)
			continue;
		const cs_insn *insn = d->insn;
		int64_t at = 0;
		if (is_push(insn)) {
			bool placed = push_ref(cfi, insn->address, &at) == FRAME_AT;
			for (unsigned s = 0; s < h->slot_count; s++)
				if (!is_entry_store(h, insn->address) &&
				    !is_prologue_push(h, insn->address) &&
				    (!placed || overlaps_slot(at, 8, h->slots[s])))
					use[s].clobbered = true;
			continue;
		}
		if (frame_load(cfi, insn, &at))
			for (unsigned s = 0; s < h->slot_count; s++)
				if (at == h->slots[s])
					use[s].loads++;
		const cs_x86 *x = x86_of(insn);
		for (uint8_t i = 0; i < x->op_count && i < 8; i++)
			note_frame_operand(cfi, insn, i, h, use);
	}
	return 0;
}

/* The slot holding L at the end of the entry path that the function reloads most and never
 * overwrites; -1 with *reason set when none. */
static int choose_slot(struct lua_disasm *d, const struct lua_code *code, const struct cfi_table *cfi,
		       uint64_t start, uint64_t end, const struct holders *h, const char **reason)
{
	struct slot_use use[MAX_SLOTS];
	if (scan_slot_uses(d, code, cfi, start, end, h, use) != 0) {
		*reason = "the disassembler failed on luaV_execute";
		return -1;
	}
	int best = -1;
	bool clobbered = false;
	for (unsigned s = 0; s < h->slot_count; s++) {
		lp_debug("lua: L in the frame at CFA%+lld: %u loads%s",
			 (long long)h->slots[s], use[s].loads, use[s].clobbered ? ", also written" : "");
		clobbered |= use[s].clobbered;
		if (!use[s].clobbered && use[s].loads > 0 && (best < 0 || use[s].loads > use[best].loads))
			best = (int)s;
	}
	if (best < 0)
		*reason = clobbered ? "luaV_execute's stack slot for lua_State *L also holds other values"
				    : "luaV_execute stores lua_State *L on its stack but never reloads it";
	return best;
}

/* Whether every write to the callee-saved register reg in [start, end) is a plain 8-byte copy
 * (mov reg, reg64 / mov reg, [frame slot]) or a pop: a register that also takes computed values
 * (gcc -O3 and clang use some as scratch registers in the opcode handlers) holds L at the
 * dispatch only, not at every instruction. */
static int register_stable(struct lua_disasm *d, const struct lua_code *code,
			   const struct cfi_table *cfi, uint64_t start, uint64_t end, int reg,
			   bool *stable)
{
	struct lua_cursor c;
	*stable = true;
	if (!lua_cursor_at(code, start, end, &c))
		return -EINVAL;
	enum lua_step st;
	while (*stable && (st = lua_next_insn(d, &c)) != LUA_STEP_END) {
		if (st != LUA_STEP_INSN)
			continue;
		const cs_insn *insn = d->insn;
		const cs_x86 *x = x86_of(insn);
		cs_regs read, written;
		uint8_t nread = 0, nwritten = 0;
		if (cs_regs_access(d->handle, insn, read, &nread, written, &nwritten) != CS_ERR_OK)
			return -EINVAL;
		bool writes = false;
		for (uint8_t i = 0; i < nwritten && i < sizeof(written) / sizeof(written[0]); i++)
			writes |= gpr_dwarf(written[i]) == reg;
		if (!writes || insn->id == X86_INS_POP)
			continue;
		int64_t at;
		bool copy = insn->id == X86_INS_MOV && x->op_count == 2 &&
			    is_full_reg_operand(&x->operands[0]) &&
			    (is_full_reg_operand(&x->operands[1]) || frame_load(cfi, insn, &at));
		if (!copy) {
			lp_debug("lua: L's register %d also takes other values: %#llx %s %s", reg,
				 (unsigned long long)insn->address, insn->mnemonic, insn->op_str);
			*stable = false;
		}
	}
	return 0;
}

int lua_state_home(const struct lua_code *code, const struct cfi_table *cfi, uint64_t start,
		   uint64_t end, struct lua_state_home *home, const char **reason)
{
	struct lua_cursor c;
	if (!lua_cursor_at(code, start, end, &c)) {
		*reason = "luaV_execute lies outside the code section";
		return -ENOENT;
	}
	struct lua_disasm d;
	int err = lua_disasm_open(&d);
	if (err) {
		*reason = "the disassembler failed to start";
		return err;
	}
	struct holders h = {.mask = 1u << DW_RDI};
	err = scan_entry(&d, code, cfi, start, end, &h);
	if (err) {
		lua_disasm_close(&d);
		*reason = "the disassembler failed on luaV_execute's entry";
		return err;
	}
	memset(home, 0, sizeof(*home));
	int reg = choose_holder(&d, code, start, end, &h);
	bool stable = false;
	if (reg >= 0 && register_stable(&d, code, cfi, start, end, reg, &stable) != 0)
		stable = true; /* not decidable: the register, as without a slot */
	const char *why = h.spilled ? "luaV_execute keeps lua_State *L on its stack, not in a "
				      "callee-saved register nor in a slot stored at its entry"
				    : "luaV_execute does not keep lua_State *L in a callee-saved register";
	int slot = !stable && h.slot_count > 0 ? choose_slot(&d, code, cfi, start, end, &h, &why) : -1;
	lua_disasm_close(&d);
	if (slot >= 0) {
		home->in_frame = true;
		home->cfa_off = (int16_t)h.slots[slot];
		return 0;
	}
	if (reg >= 0) {
		home->dwarf_reg = (uint8_t)reg;
		return 0;
	}
	*reason = why;
	return -ENOENT;
}

bool lua_code_section_at(const struct elf_image *img, uint64_t addr, struct lua_code *code)
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(img->elf, scn)) != NULL) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_PROGBITS ||
		    !(shdr.sh_flags & SHF_EXECINSTR) || addr < shdr.sh_addr ||
		    addr - shdr.sh_addr >= shdr.sh_size)
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf || data->d_size == 0)
			return false;
		*code = (struct lua_code){.addr = shdr.sh_addr, .bytes = data->d_buf, .size = data->d_size};
		return true;
	}
	return false;
}
