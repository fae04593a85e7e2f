/* SPDX-License-Identifier: MIT */
/* luajit_detect.c - LuaJIT 2.1 detection and layout derivation from the binary (luajit_detect.h).
 *
 * Sources of each fact (LuaJIT file/function names are those of the LuaJIT 2.1 tree):
 * 1. Symbols (.dynsym, .symtab): luaJIT_setmode with lua_gettop, lua_call, lua_pcall, lua_resume,
 *    lua_cpcall means LuaJIT (NONE without luaJIT_setmode). The ident "LuaJIT 2.1..." (luajit.h
 *    LUAJIT_VERSION, pushed by luaopen_jit) must be in read-only data: 2.0 and others are refused.
 * 2. GC64 or GC32: lua_gettop is `(L->top - L->base)`: it reads base and top at 32/40 (GC64) or
 *    16/24 (GC32) (lj_obj.h lua_State); the VM entry code must then copy L as 8 or 4 bytes.
 * 3. The VM entries: lua_call, lua_pcall, lua_resume and lua_cpcall (lj_api.c) call or tail-jump
 *    to lj_vm_call/pcall/resume/cpcall. Such a target pushes callee-saved registers and subtracts
 *    from rsp (vm_x64.dasc/vm_x86.dasc `saveregs`), and the CFI in effect there already says
 *    CFA = rsp + CFRAME_SIZE: buildvm emits one FDE for the whole interpreter with that rule from
 *    its first byte (vm_x64.dasc emit_asm_debug), where an ordinary function entry says rsp + 8.
 *    All four must lie in one FDE: that FDE is the interpreter, [exec_start, exec_end).
 *    cframe_size = return address + pushes + the rsp subtraction, equal to the CFA offset.
 * 4. Each entry's straight-line path (following forward jumps, stopping at calls, backward jumps
 *    and the first dispatch) is interpreted over a few abstract values (L, fields of L, rsp,
 *    DISPATCH) to read, as the dasc writes them:
 *      mov SAVE_L, CARG1        -> cframe_l: the stack slot every entry stores L into
 *      mov DISPATCH, L->glref   -> state_glref;  add DISPATCH, GG_G2DISP -> disp2g = -GG_G2DISP
 *      mov L->cframe, rsp       -> state_cframe
 *      mov [DISPATCH+DISPATCH_GL(cur_L)], L        -> g_cur_L
 *      mov dword [DISPATCH+DISPATCH_GL(vmstate)], ~LJ_VMST_INTERP -> g_vmstate
 *      mov BASE, L->base        -> state_base (equal to lua_gettop's)
 *      vm_cpcall: mov r, L->stack; sub r, L->top   -> state_stack
 *      vm_call_dispatch_f: mov PC, LFUNC->pc just before `jmp [DISPATCH+OP*8]` -> a check of
 *      func_pc against the table below.
 *    Every entry that shows a fact must show the same value.
 * 5. One linear pass over the interpreter:
 *      every `mov dword [DISPATCH+d], imm < 0` (set_vmstate) must store to g_vmstate;
 *      `mov [DISPATCH+DISPATCH_GL(jit_base)], 0` (pointer sized; vm_exit_handler/vm_exit_interp)
 *      and `mov [DISPATCH+DISPATCH_GL(jit_base)], BASE` (BC_JLOOP) -> g_jit_base;
 *      `lea CARG1, [DISPATCH+GG_DISP2J]` right before the first of those stores (vm_exit_handler,
 *      the argument of lj_trace_exit) -> g_to_j = GG_DISP2J - GG_DISP2G;
 *      BC_JLOOP's `mov RA, [DISPATCH+DISPATCH_J(trace)]; mov TRACE:RD, [RA+RD*8 (GC32: *4)]`
 *      before its jit_base store -> j_trace.
 *    GG_DISP2J and DISPATCH_J(trace) must also be used elsewhere (vm_hotloop, the trace
 *    stitching, BC_ITERN's unpatching), so that no single corrupted site decides them.
 * 6. Fields no known LuaJIT 2.1 layout changes within a mode (upstream mid-2020..2025, OpenResty
 *    2019..2024: GCfuncC.ffid/pc, GCproto, GCtrace.startpc) come from a table per mode; GCstr
 *    changed once (the string interning rework, which also moved global_State.vmstate): its
 *    layout is the known variant whose g_vmstate matches the one derived, refused otherwise.
 * 7. Fast function names: the exported luaopen_* functions pass each library's init data
 *    (lj_lib_init_*, host/buildvm_lib.c) and name to lj_lib_register (lj_lib.c) in rdx and rsi;
 *    lj_lib_register is the common callee of those calls. The init data gives the first ffid and
 *    one entry per function (lj_lib.c lj_lib_register); names are "name" for the "_G" library,
 *    "lib.name" otherwise; a loader preregistered with lj_lib_prereg(L, "jit.util", loader)
 *    (called, or inlined as lua_pushcfunction + lua_setfield) whose only registration has no
 *    name gets that name ("jit.util.funcinfo"); an LJLIB_NOREG function a loader "table.new"
 *    registers with lj_lib_postreg(L, cf, ffid, "new") gets "table.new" (OpenResty). The
 *    libraries luaopen_ffi, luaopen_io and luaopen_string_buffer register without a name get,
 *    in call order, the prefixes of the table unnamed_libs ("ffi.meta.__call", "io.method.read",
 *    buildvm's vmdef.lua names), only when that luaopen_* has exactly as many such registrations
 *    as the table lists. Functions the binary does not name (other LJLIB_NOREG/NOREGUV ones:
 *    ipairs_aux, coroutine.wrap_aux, string.gmatch_aux) stay NULL.
 * Everything read from the file is bounds-checked and every loop is bounded; nothing is mapped. */
#include "runtime/luajit/luajit_detect.h"

#include <capstone/capstone.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/grow_array.h"
#include "lib/log.h"
#include "lib/u64_array.h"
#include "unwind/elf_symbols.h"
#include "x86/x86_disasm.h"

/* Work bounds for hostile files. lj_vm is 16-17 KiB (x86_64, 2.1); the API functions are short. */
#define MAX_VM_BYTES (1u << 20)
#define MAX_API_BYTES 4096u
#define MAX_ENTRY_INSNS 96u
#define MAX_LUAOPEN 64u
#define MAX_LOADERS 16u
#define MAX_FUNCTION_BYTES 65536u
#define MAX_INIT_BYTES 8192u   /* host/buildvm_lib.c obuf: no init data is longer */
#define MAX_NAME 64u
#define MAX_FFID 255u          /* GCfuncC.ffid is a uint8_t (lj_obj.h) */
#define WINDOW 8u              /* instructions looked back at in the interpreter pass */

/* ---- the file: symbols, code, data */

enum api_fn {
	API_SETMODE,
	API_GETTOP,
	API_CALL,
	API_PCALL,
	API_RESUME,
	API_CPCALL,
	API_RESETTHREAD, /* OpenResty luajit2 only (lj_api.c) */
	API_SETEXDATA,   /* OpenResty luajit2 only */
	API_COUNT,
};

static const char *const api_names[API_COUNT] = {
	[API_SETMODE] = "luaJIT_setmode", [API_GETTOP] = "lua_gettop",
	[API_CALL] = "lua_call",          [API_PCALL] = "lua_pcall",
	[API_RESUME] = "lua_resume",      [API_CPCALL] = "lua_cpcall",
	[API_RESETTHREAD] = "lua_resetthread", [API_SETEXDATA] = "lua_setexdata",
};

struct fn_sym {
	uint64_t addr;
	uint64_t size; /* 0: unknown (the FDE bounds it) */
};

/* The prefixes LuaJIT's buildvm (host/buildvm_lib.c, vmdef.lua ffnames) gives the libraries a
 * luaopen_* registers without a name, in call order: lib_ffi.c luaopen_ffi, lib_io.c luaopen_io,
 * lib_buffer.c luaopen_string_buffer (each LJ_LIB_REG(L, NULL, module)). */
#define MAX_UNNAMED 4u
struct unnamed_libs {
	const char *luaopen;
	const char *prefixes[MAX_UNNAMED]; /* NULL-terminated when shorter */
};

static const struct unnamed_libs unnamed_libs[] = {
	{"luaopen_ffi", {"ffi.meta", "ffi.clib", "ffi.callback", "ffi"}},
	{"luaopen_io", {"io.method"}},
	{"luaopen_string_buffer", {"buffer.method", "buffer"}},
};

struct luaopen_sym {
	struct fn_sym sym;
	const struct unnamed_libs *unnamed; /* its entry of unnamed_libs, or NULL */
};

struct file {
	const struct elf_image *img;
	const struct cfi_table *cfi;
	struct x86_code text;              /* the executable section holding the API */
	struct fn_sym api[API_COUNT];
	struct luaopen_sym luaopen[MAX_LUAOPEN]; /* exported luaopen_* functions */
	size_t luaopen_count;
};

static const struct unnamed_libs *unnamed_libs_of(const char *luaopen)
{
	for (size_t i = 0; i < sizeof(unnamed_libs) / sizeof(unnamed_libs[0]); i++)
		if (strcmp(luaopen, unnamed_libs[i].luaopen) == 0)
			return &unnamed_libs[i];
	return NULL;
}

static void note_symbol(struct file *f, const GElf_Sym *sym, const char *name)
{
	if (GELF_ST_TYPE(sym->st_info) != STT_FUNC || sym->st_value == 0)
		return;
	for (int i = 0; i < API_COUNT; i++) {
		if (f->api[i].addr == 0 && strcmp(name, api_names[i]) == 0) {
			f->api[i] = (struct fn_sym){sym->st_value, sym->st_size};
			return;
		}
	}
	if (strncmp(name, "luaopen_", 8) != 0)
		return;
	const struct unnamed_libs *unnamed = unnamed_libs_of(name);
	for (size_t i = 0; i < f->luaopen_count; i++) {
		struct luaopen_sym *known = &f->luaopen[i];
		if (known->sym.addr == sym->st_value) { /* in both .dynsym and .symtab, or an alias */
			if (known->unnamed != unnamed)
				known->unnamed = NULL; /* two names, two readings: neither */
			return;
		}
	}
	if (f->luaopen_count < MAX_LUAOPEN)
		f->luaopen[f->luaopen_count++] =
			(struct luaopen_sym){{sym->st_value, sym->st_size}, unnamed};
}

static int note_symbol_of(void *f, const struct elf_symbol *symbol)
{
	note_symbol(f, symbol->sym, symbol->name);
	return 0;
}

static void scan_symbols(struct file *f) { elf_symbols_walk(f->img->elf, NULL, note_symbol_of, f); }

static bool in_text(const struct file *f, uint64_t addr)
{
	return addr >= f->text.addr && addr - f->text.addr < f->text.size;
}

/* Up to len bytes of the file's loaded data at vaddr (PT_LOAD file contents); how many. */
static size_t read_vaddr(const struct file *f, uint64_t vaddr, void *buf, size_t len)
{
	return elf_image_read_vaddr(f->img, vaddr, buf, len);
}

/* A library or module name at vaddr: NUL-terminated, 1..MAX_NAME-1 characters of [A-Za-z0-9_.]. */
static bool read_name(const struct file *f, uint64_t vaddr, char out[MAX_NAME])
{
	size_t got = read_vaddr(f, vaddr, out, MAX_NAME);
	size_t n = 0;
	while (n < got && out[n] != '\0') {
		char c = out[n];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.'))
			return false;
		n++;
	}
	return n > 0 && n < got;
}

/* ---- the version ident */

enum ident { IDENT_NONE, IDENT_21, IDENT_OTHER };

/* luajit.h LUAJIT_VERSION "LuaJIT 2.1.0-beta3" / "LuaJIT 2.1.ROLLING" / "LuaJIT 2.1.1700000000":
 * a whole NUL-terminated string in read-only data. */
static enum ident find_ident_in(const uint8_t *bytes, size_t size, char version[24])
{
	static const char prefix[] = "LuaJIT ";
	const size_t plen = sizeof(prefix) - 1;
	size_t at = 0;
	while (at < size) {
		const uint8_t *hit = memmem(bytes + at, size - at, prefix, plen);
		if (!hit)
			break;
		size_t start = (size_t)(hit - bytes), i = start + plen, n = 0;
		at = start + 1;
		if (start > 0 && bytes[start - 1] != '\0')
			continue;
		while (i + n < size && n < 23 && bytes[i + n] != '\0' && bytes[i + n] > ' ' &&
		       bytes[i + n] < 0x7f)
			n++;
		if (n == 0 || n >= 23 || i + n >= size || bytes[i + n] != '\0')
			continue;
		memcpy(version, bytes + i, n);
		version[n] = '\0';
		return strncmp(version, "2.1.", 4) == 0 ? IDENT_21 : IDENT_OTHER;
	}
	return IDENT_NONE;
}

static enum ident find_ident(const struct elf_image *img, char version[24])
{
	Elf_Scn *scn = NULL;
	enum ident found = IDENT_NONE;
	while ((scn = elf_nextscn(img->elf, scn)) != NULL && found != IDENT_21) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_PROGBITS ||
		    !(shdr.sh_flags & SHF_ALLOC) || (shdr.sh_flags & (SHF_WRITE | SHF_EXECINSTR)))
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		if (data && data->d_buf && data->d_size > 0) {
			enum ident r = find_ident_in(data->d_buf, data->d_size, version);
			if (r != IDENT_NONE)
				found = r;
		}
	}
	return found;
}

/* ---- x86 operands */

enum gpr {
	R_AX, R_CX, R_DX, R_BX, R_SP, R_BP, R_SI, R_DI,
	R_8, R_9, R_10, R_11, R_12, R_13, R_14, R_15, GPR_COUNT,
};

struct gpr_name {
	x86_reg reg;
	uint8_t index;
	uint8_t width;
};

static const struct gpr_name gpr_names[] = {
	{X86_REG_RAX, R_AX, 8}, {X86_REG_EAX, R_AX, 4}, {X86_REG_AX, R_AX, 2}, {X86_REG_AL, R_AX, 1},
	{X86_REG_AH, R_AX, 1},  {X86_REG_RCX, R_CX, 8}, {X86_REG_ECX, R_CX, 4}, {X86_REG_CX, R_CX, 2},
	{X86_REG_CL, R_CX, 1},  {X86_REG_CH, R_CX, 1},  {X86_REG_RDX, R_DX, 8}, {X86_REG_EDX, R_DX, 4},
	{X86_REG_DX, R_DX, 2},  {X86_REG_DL, R_DX, 1},  {X86_REG_DH, R_DX, 1},  {X86_REG_RBX, R_BX, 8},
	{X86_REG_EBX, R_BX, 4}, {X86_REG_BX, R_BX, 2},  {X86_REG_BL, R_BX, 1},  {X86_REG_BH, R_BX, 1},
	{X86_REG_RSP, R_SP, 8}, {X86_REG_ESP, R_SP, 4}, {X86_REG_SP, R_SP, 2},  {X86_REG_SPL, R_SP, 1},
	{X86_REG_RBP, R_BP, 8}, {X86_REG_EBP, R_BP, 4}, {X86_REG_BP, R_BP, 2},  {X86_REG_BPL, R_BP, 1},
	{X86_REG_RSI, R_SI, 8}, {X86_REG_ESI, R_SI, 4}, {X86_REG_SI, R_SI, 2},  {X86_REG_SIL, R_SI, 1},
	{X86_REG_RDI, R_DI, 8}, {X86_REG_EDI, R_DI, 4}, {X86_REG_DI, R_DI, 2},  {X86_REG_DIL, R_DI, 1},
	{X86_REG_R8, R_8, 8},   {X86_REG_R8D, R_8, 4},  {X86_REG_R8W, R_8, 2},  {X86_REG_R8B, R_8, 1},
	{X86_REG_R9, R_9, 8},   {X86_REG_R9D, R_9, 4},  {X86_REG_R9W, R_9, 2},  {X86_REG_R9B, R_9, 1},
	{X86_REG_R10, R_10, 8}, {X86_REG_R10D, R_10, 4}, {X86_REG_R10W, R_10, 2}, {X86_REG_R10B, R_10, 1},
	{X86_REG_R11, R_11, 8}, {X86_REG_R11D, R_11, 4}, {X86_REG_R11W, R_11, 2}, {X86_REG_R11B, R_11, 1},
	{X86_REG_R12, R_12, 8}, {X86_REG_R12D, R_12, 4}, {X86_REG_R12W, R_12, 2}, {X86_REG_R12B, R_12, 1},
	{X86_REG_R13, R_13, 8}, {X86_REG_R13D, R_13, 4}, {X86_REG_R13W, R_13, 2}, {X86_REG_R13B, R_13, 1},
	{X86_REG_R14, R_14, 8}, {X86_REG_R14D, R_14, 4}, {X86_REG_R14W, R_14, 2}, {X86_REG_R14B, R_14, 1},
	{X86_REG_R15, R_15, 8}, {X86_REG_R15D, R_15, 4}, {X86_REG_R15W, R_15, 2}, {X86_REG_R15B, R_15, 1},
};

/* The general purpose register reg is part of (enum gpr), and its width; -1 for any other. */
static int gpr_of(x86_reg reg, uint8_t *width)
{
	for (size_t i = 0; i < sizeof(gpr_names) / sizeof(gpr_names[0]); i++) {
		if (gpr_names[i].reg == reg) {
			if (width)
				*width = gpr_names[i].width;
			return gpr_names[i].index;
		}
	}
	return -1;
}

/* Operand i of a two-operand instruction, or NULL. */
static const cs_x86_op *operand(const cs_insn *insn, unsigned i)
{
	const cs_x86 *x = x86_of(insn);
	return x->op_count == 2 && i < 2 ? &x->operands[i] : NULL;
}

/* A register operand of 4 or 8 bytes: its enum gpr, or -1. */
static int reg_operand(const cs_x86_op *op, uint8_t *width)
{
	uint8_t w = 0;
	if (!op || op->type != X86_OP_REG)
		return -1;
	int r = gpr_of(op->reg, &w);
	if (r < 0 || (w != 4 && w != 8))
		return -1;
	*width = w;
	return r;
}

/* A memory operand [base + disp] (no index, no segment): the base's enum gpr, or -1 (also for
 * RIP-relative ones). */
static int simple_mem(const cs_x86_op *op, int64_t *disp)
{
	if (!op || op->type != X86_OP_MEM || op->mem.index != X86_REG_INVALID ||
	    op->mem.segment != X86_REG_INVALID)
		return -1;
	int base = gpr_of(op->mem.base, NULL);
	if (base >= 0)
		*disp = op->mem.disp;
	return base;
}

/* An immediate operand as the signed value of its width (capstone gives 32-bit immediates of
 * dword moves zero-extended). */
static bool imm_operand(const cs_x86_op *op, uint8_t width, int64_t *value)
{
	if (!op || op->type != X86_OP_IMM)
		return false;
	*value = width == 4 ? (int64_t)(int32_t)(uint32_t)op->imm : op->imm;
	return true;
}

static bool is_call(struct x86_disasm *d) { return cs_insn_group(d->handle, d->insn, CS_GRP_CALL); }

/* A direct jmp/jcc/call: its target. */
static bool direct_target(const cs_insn *insn, uint64_t *target)
{
	const cs_x86 *x = x86_of(insn);
	if (x->op_count != 1 || x->operands[0].type != X86_OP_IMM)
		return false;
	*target = (uint64_t)x->operands[0].imm;
	return true;
}

/* The registers insn writes, as a mask of enum gpr; all of them when capstone cannot tell. */
static uint32_t written_gprs(struct x86_disasm *d)
{
	cs_regs read, written;
	uint8_t nread = 0, nwritten = 0;
	if (cs_regs_access(d->handle, d->insn, read, &nread, written, &nwritten) != CS_ERR_OK)
		return ~0u;
	uint32_t mask = 0;
	for (uint8_t i = 0; i < nwritten && i < sizeof(written) / sizeof(written[0]); i++) {
		int r = gpr_of(written[i], NULL);
		if (r >= 0)
			mask |= 1u << r;
	}
	return mask;
}

/* ---- function bounds (CFI) */

/* The FDE holding addr: [*start, *end) (x86_fn_end: ends at the next FDE or the gap row). */
static bool fde_of(const struct cfi_table *cfi, uint64_t addr, uint64_t *start, uint64_t *end)
{
	if (!cfi || !cfi->function_starts || cfi->function_count == 0)
		return false;
	size_t lo = u64_upper_bound(cfi->function_starts, cfi->function_count, addr);
	if (lo == 0)
		return false;
	*start = cfi->function_starts[lo - 1];
	return x86_fn_end(cfi, *start, end) && addr < *end;
}

/* [start, *end) of an exported function: its symbol size, else its FDE; bounded by limit. */
static bool function_range(const struct file *f, const struct fn_sym *sym, uint64_t limit,
			   uint64_t *end)
{
	uint64_t fde_start, fde_end;
	if (sym->addr == 0 || !in_text(f, sym->addr))
		return false;
	if (sym->size > 0 && sym->size <= limit) {
		*end = sym->addr + sym->size;
	} else if (sym->size == 0 && fde_of(f->cfi, sym->addr, &fde_start, &fde_end) &&
		   fde_start == sym->addr && fde_end - fde_start <= limit) {
		*end = fde_end;
	} else {
		return false;
	}
	return in_text(f, *end - 1);
}

/* ---- GC64 or GC32: lua_gettop */

struct mode {
	bool gc64;
	uint8_t ptr;        /* bytes of a GCRef/MRef and of L as the VM handles it: 8 or 4 */
	int64_t base, top;  /* lua_State.base, lua_State.top */
};

/* lj_api.c lua_gettop: return (int)(L->top - L->base). The offsets it subtracts, traced over
 * its straight-line code: the minuend is top, the subtrahend base. */
static bool gettop_offsets(const struct file *f, struct x86_disasm *d, int64_t *base, int64_t *top)
{
	uint64_t end;
	struct x86_cursor c;
	if (!function_range(f, &f->api[API_GETTOP], MAX_API_BYTES, &end) ||
	    !x86_cursor_at(&f->text, f->api[API_GETTOP].addr, end, &c))
		return false;
	int64_t loaded[GPR_COUNT];
	bool known[GPR_COUNT] = {false};
	for (unsigned n = 0; n < 16; n++) {
		if (x86_next_insn(d, &c) != X86_DECODED_INSN)
			return false;
		const cs_insn *insn = d->insn;
		const cs_x86_op *dst = operand(insn, 0), *src = operand(insn, 1);
		uint8_t w = 0, ws = 0;
		int64_t disp = 0;
		int r = reg_operand(dst, &w);
		if (insn->id == X86_INS_RET || is_call(d) || cs_insn_group(d->handle, insn, CS_GRP_JUMP))
			return false;
		if (insn->id == X86_INS_MOV && r >= 0 && w == 8 && simple_mem(src, &disp) == R_DI) {
			loaded[r] = disp;
			known[r] = true;
			continue;
		}
		if (insn->id == X86_INS_SUB && r >= 0 && w == 8 && known[r]) {
			int s = reg_operand(src, &ws);
			if (simple_mem(src, &disp) == R_DI) {
				*top = loaded[r], *base = disp;
				return true;
			}
			if (s >= 0 && ws == 8 && known[s]) {
				*top = loaded[r], *base = loaded[s];
				return true;
			}
			return false;
		}
		uint32_t writes = written_gprs(d);
		for (int i = 0; i < GPR_COUNT; i++)
			if (writes & (1u << i))
				known[i] = false;
	}
	return false;
}

static const char *find_mode(const struct file *f, struct x86_disasm *d, struct mode *m)
{
	int64_t base = 0, top = 0;
	if (!gettop_offsets(f, d, &base, &top))
		return "lua_gettop does not read L->top - L->base";
	/* lj_obj.h lua_State: GC64 base 32, top 40; GC32 base 16, top 24 (every 2.1 release). */
	if (base == 32 && top == 40)
		*m = (struct mode){.gc64 = true, .ptr = 8, .base = base, .top = top};
	else if (base == 16 && top == 24)
		*m = (struct mode){.gc64 = false, .ptr = 4, .base = base, .top = top};
	else
		return "lua_gettop reads an unknown lua_State layout";
	return NULL;
}

/* ---- the VM entries: lj_vm_call, lj_vm_pcall, lj_vm_resume, lj_vm_cpcall */

enum entry_api { E_CALL, E_PCALL, E_RESUME, E_CPCALL, E_COUNT };

static const enum api_fn entry_api_fn[E_COUNT] = {API_CALL, API_PCALL, API_RESUME, API_CPCALL};

/* A fact an entry path shows, possibly more than once. */
struct obs {
	bool seen;
	bool conflict;
	uint8_t size;
	int64_t value;
};

static void observe(struct obs *o, int64_t value, uint8_t size)
{
	if (!o->seen) {
		*o = (struct obs){.seen = true, .size = size, .value = value};
	} else if (o->value != value || o->size != size) {
		o->conflict = true;
	}
}

enum fact {
	F_L_COPY,    /* mov L:RB, CARG1: the width L is copied with */
	F_GLREF,     /* mov DISPATCH, L:RB->glref */
	F_G2DISP,    /* add DISPATCH, GG_G2DISP */
	F_DISPATCH,  /* which register DISPATCH is (r14) */
	F_CFRAME,    /* mov L:RB->cframe, rsp (vm_resume: rsp + CFRAME_RESUME) */
	F_CUR_L,     /* mov [DISPATCH+DISPATCH_GL(cur_L)], L:RB */
	F_VMSTATE,   /* set_vmstate INTERP: mov dword [DISPATCH+DISPATCH_GL(vmstate)], ~LJ_VMST_INTERP */
	F_VMST_IMM,  /* the value stored there */
	F_BASE,      /* mov BASE, L:RB->base */
	F_STACK,     /* vm_cpcall: mov KBASE, L:RB->stack; sub KBASE, L:RB->top */
	F_STACK_TOP,
	F_FUNC_PC,   /* vm_call_dispatch_f: mov PC, LFUNC:RB->pc before the first dispatch */
	F_COUNT,
};

#define MAX_SLOTS 4u

struct entry {
	uint64_t addr;
	unsigned cframe_size;    /* 8 + 8 * pushes + the rsp subtraction */
	int64_t l_slots[MAX_SLOTS];
	uint8_t l_slot_size[MAX_SLOTS];
	unsigned l_slot_count;
	struct obs facts[F_COUNT];
};

/* saveregs (vm_x64.dasc / vm_x86.dasc): push rbp; push rbx; push r15; push r14 (+ r13, r12 with
 * LJ_NO_UNWIND); sub rsp, CFRAME_SPACE. The bytes from the return address to the new rsp. */
static bool entry_prologue(struct x86_disasm *d, struct x86_cursor *c, unsigned *frame)
{
	unsigned pushes = 0;
	for (unsigned n = 0; n < 8; n++) {
		if (x86_next_insn(d, c) != X86_DECODED_INSN)
			return false;
		const cs_x86 *x = x86_of(d->insn);
		uint8_t w = 0;
		int64_t imm = 0;
		if (d->insn->id == X86_INS_PUSH && x->op_count == 1 &&
		    reg_operand(&x->operands[0], &w) >= 0 && w == 8) {
			pushes++;
			continue;
		}
		if (d->insn->id == X86_INS_SUB && pushes > 0 &&
		    reg_operand(operand(d->insn, 0), &w) == R_SP && w == 8 &&
		    imm_operand(operand(d->insn, 1), 8, &imm) && imm > 0 && imm < 1024) {
			*frame = 8 + 8 * pushes + (unsigned)imm;
			return true;
		}
		return false;
	}
	return false;
}

static bool cfa_is_rsp_plus(const struct cfi_table *cfi, uint64_t pc, unsigned off)
{
	const struct cfi_row *row = cfi_table_lookup(cfi, pc);
	return row && row->rule.cfa_type == CFA_REG_OFF && row->rule.cfa_reg == DW_RSP &&
	       row->rule.cfa_off == (int32_t)off;
}

/* A call or jump target of the API function that is a VM entry: it pushes and subtracts from rsp
 * where the CFI already says CFA = rsp + that frame (see the top of the file). */
static bool is_vm_entry(const struct file *f, struct x86_disasm *d, uint64_t target, unsigned *frame)
{
	struct x86_cursor c;
	uint64_t end = target + 64 < target ? UINT64_MAX : target + 64;
	if (!in_text(f, target))
		return false;
	if (!in_text(f, end - 1))
		end = f->text.addr + f->text.size;
	return x86_cursor_at(&f->text, target, end, &c) && entry_prologue(d, &c, frame) &&
	       cfa_is_rsp_plus(f->cfi, target, *frame);
}

/* The one VM entry an API function calls or tail-jumps to; 0 when none or several. */
static uint64_t entry_of(const struct file *f, struct x86_disasm *d, enum api_fn api)
{
	uint64_t end, found = 0;
	struct x86_cursor c;
	if (!function_range(f, &f->api[api], MAX_API_BYTES, &end) ||
	    !x86_cursor_at(&f->text, f->api[api].addr, end, &c))
		return 0;
	enum x86_decoded st;
	/* Candidates are checked with the same decoder: remember them first. */
	uint64_t targets[32];
	unsigned n = 0;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		uint64_t target;
		if (st == X86_DECODED_INSN && (is_call(d) || cs_insn_group(d->handle, d->insn, CS_GRP_JUMP)) &&
		    direct_target(d->insn, &target) && (target < f->api[api].addr || target >= end) &&
		    n < sizeof(targets) / sizeof(targets[0]))
			targets[n++] = target;
	}
	for (unsigned i = 0; i < n; i++) {
		unsigned frame;
		if (targets[i] == found || !is_vm_entry(f, d, targets[i], &frame))
			continue;
		if (found)
			return 0;
		found = targets[i];
	}
	return found;
}

/* ---- an entry path over abstract values */

enum vkind { V_UNKNOWN, V_L, V_LFIELD, V_DISPATCH, V_RSP };

struct val {
	uint8_t kind;
	uint8_t size;
	int64_t off; /* V_LFIELD: the field's offset in L; V_RSP: added to rsp */
};

struct path {
	struct val reg[GPR_COUNT];
	bool pc_pending;      /* a load into PC (rbx) from [reg + pc_disp] was seen */
	int64_t pc_disp;
	uint8_t pc_size;
};

static void slot_store(struct entry *e, int64_t disp, uint8_t size, bool holds_l)
{
	unsigned n = 0;
	for (unsigned i = 0; i < e->l_slot_count; i++) {
		if (e->l_slots[i] + (int64_t)e->l_slot_size[i] <= disp || disp + size <= e->l_slots[i]) {
			e->l_slots[n] = e->l_slots[i];
			e->l_slot_size[n++] = e->l_slot_size[i];
		}
	}
	e->l_slot_count = n;
	if (holds_l && n < MAX_SLOTS) {
		e->l_slots[n] = disp;
		e->l_slot_size[n] = size;
		e->l_slot_count = n + 1;
	}
}

static void note_store(struct entry *e, const struct path *p, int base, int64_t disp,
		       const cs_x86_op *dst, const cs_x86_op *src)
{
	uint8_t ws = 0;
	int64_t imm = 0;
	int rs = reg_operand(src, &ws);
	const struct val *b = &p->reg[base];
	if (base == R_SP && b->kind == V_RSP && b->off == 0)
		slot_store(e, disp, dst->size, rs >= 0 && p->reg[rs].kind == V_L);
	if (rs >= 0 && b->kind == V_L && p->reg[rs].kind == V_RSP)
		observe(&e->facts[F_CFRAME], disp, ws);
	if (rs >= 0 && b->kind == V_DISPATCH && p->reg[rs].kind == V_L)
		observe(&e->facts[F_CUR_L], disp, ws);
	if (rs < 0 && b->kind == V_DISPATCH && dst->size == 4 && imm_operand(src, 4, &imm) && imm < 0) {
		observe(&e->facts[F_VMSTATE], disp, 4);
		observe(&e->facts[F_VMST_IMM], imm, 4);
	}
}

/* The value an instruction writes to its destination register dst (V_UNKNOWN when none of the
 * tracked kinds), noting the facts it shows. */
static struct val apply(struct entry *e, struct path *p, const cs_insn *insn, int dst_reg,
			uint8_t wd)
{
	const cs_x86_op *dst = operand(insn, 0), *src = operand(insn, 1);
	struct val none = {V_UNKNOWN, 0, 0};
	uint8_t ws = 0;
	int64_t disp = 0, imm = 0;
	int rs = reg_operand(src, &ws);
	int src_base = simple_mem(src, &disp);
	switch (insn->id) {
	case X86_INS_MOV:
		if (dst_reg < 0) {
			int64_t store_disp = 0;
			int base = simple_mem(dst, &store_disp);
			if (base >= 0)
				note_store(e, p, base, store_disp, dst, src);
			return none;
		}
		if (rs >= 0 && ws == wd) {
			struct val v = p->reg[rs];
			v.size = wd;
			if (v.kind == V_L)
				observe(&e->facts[F_L_COPY], 0, wd);
			return v;
		}
		if (src_base < 0)
			return none;
		if (dst_reg == R_BX && src_base != R_SP) {
			p->pc_pending = true;
			p->pc_disp = disp;
			p->pc_size = wd;
		}
		if (p->reg[src_base].kind != V_L)
			return none;
		if (dst_reg == R_DX)
			observe(&e->facts[F_BASE], disp, wd);
		return (struct val){V_LFIELD, wd, disp};
	case X86_INS_LEA:
		if (dst_reg >= 0 && src_base == R_SP && p->reg[R_SP].kind == V_RSP)
			return (struct val){V_RSP, wd, p->reg[R_SP].off + disp};
		return none;
	case X86_INS_ADD:
		if (dst_reg >= 0 && p->reg[dst_reg].kind == V_LFIELD && imm_operand(src, wd, &imm)) {
			observe(&e->facts[F_GLREF], p->reg[dst_reg].off, p->reg[dst_reg].size);
			observe(&e->facts[F_G2DISP], imm, wd);
			observe(&e->facts[F_DISPATCH], dst_reg, wd);
			return (struct val){V_DISPATCH, wd, 0};
		}
		return none;
	case X86_INS_SUB:
		if (dst_reg >= 0 && p->reg[dst_reg].kind == V_LFIELD && src_base >= 0 &&
		    p->reg[src_base].kind == V_L) {
			observe(&e->facts[F_STACK], p->reg[dst_reg].off, p->reg[dst_reg].size);
			observe(&e->facts[F_STACK_TOP], disp, wd);
		}
		return none;
	default:
		return none;
	}
}

/* Where the path goes after a control transfer: on (fall-through of conditional jumps, forward
 * direct jumps inside the interpreter) or not. The first dispatch commits the pending PC load. */
static bool follow(struct x86_disasm *d, const struct x86_code *text, struct x86_cursor *c,
		   uint64_t vm_end, struct entry *e, struct path *p)
{
	const cs_insn *insn = d->insn;
	uint64_t target;
	if (insn->id == X86_INS_JMP) {
		const cs_x86 *x = x86_of(insn);
		if (direct_target(insn, &target))
			return target > insn->address && target < vm_end &&
			       x86_cursor_at(text, target, vm_end, c);
		if (x->op_count == 1 && x->operands[0].type == X86_OP_MEM) {
			int base = gpr_of(x->operands[0].mem.base, NULL);
			if (base >= 0 && p->reg[base].kind == V_DISPATCH &&
			    x->operands[0].mem.index != X86_REG_INVALID && p->pc_pending)
				observe(&e->facts[F_FUNC_PC], p->pc_disp, p->pc_size);
		}
		return false;
	}
	return cs_insn_group(d->handle, insn, CS_GRP_JUMP) != 0; /* jcc: the fall-through */
}

static bool ends_path(struct x86_disasm *d)
{
	const cs_insn *insn = d->insn;
	return is_call(d) || cs_insn_group(d->handle, insn, CS_GRP_RET) ||
	       cs_insn_group(d->handle, insn, CS_GRP_INT) || cs_insn_group(d->handle, insn, CS_GRP_IRET) ||
	       insn->id == X86_INS_UD2 || insn->id == X86_INS_HLT;
}

static void trace_entry(const struct file *f, struct x86_disasm *d, uint64_t vm_end, struct entry *e)
{
	struct x86_cursor c;
	struct path p;
	memset(&p, 0, sizeof(p));
	if (!x86_cursor_at(&f->text, e->addr, vm_end, &c) || !entry_prologue(d, &c, &e->cframe_size))
		return;
	p.reg[R_DI] = (struct val){V_L, 8, 0};
	p.reg[R_SP] = (struct val){V_RSP, 8, 0};
	for (unsigned n = 0; n < MAX_ENTRY_INSNS; n++) {
		enum x86_decoded st = x86_next_insn(d, &c);
		if (st != X86_DECODED_INSN || ends_path(d))
			return;
		if (cs_insn_group(d->handle, d->insn, CS_GRP_JUMP)) {
			if (!follow(d, &f->text, &c, vm_end, e, &p))
				return;
			continue;
		}
		uint32_t writes = written_gprs(d);
		if (writes & (1u << R_SP))
			return; /* rsp moves: the slots would no longer be named right */
		uint8_t wd = 0;
		int rd = reg_operand(operand(d->insn, 0), &wd);
		struct val v = apply(e, &p, d->insn, rd, wd);
		for (int r = 0; r < GPR_COUNT; r++)
			if (writes & (1u << r))
				p.reg[r] = r == rd ? v : (struct val){V_UNKNOWN, 0, 0};
	}
}

/* ---- what the entries agree on */

struct vm {
	uint64_t start, end;       /* the interpreter's FDE */
	int dispatch_reg;          /* DISPATCH (r14) */
	struct luajit_layout jit;
	int64_t vmstate_disp;      /* DISPATCH_GL(vmstate) */
	int64_t func_pc;           /* seen at the first dispatch (checked against the table) */
};

/* A fact every entry in mask shows, with one value; *o gets it. */
static bool agreed(const struct entry *e, unsigned mask, enum fact fact, bool required,
		   struct obs *o)
{
	memset(o, 0, sizeof(*o));
	for (unsigned i = 0; i < E_COUNT; i++) {
		if (!(mask & (1u << i)))
			continue;
		const struct obs *x = &e[i].facts[fact];
		if (x->conflict || (required && !x->seen))
			return false;
		if (!x->seen)
			continue;
		if (o->seen && (o->value != x->value || o->size != x->size))
			return false;
		*o = *x;
	}
	return o->seen;
}

/* The stack slot every entry stores L into (SAVE_L = CFRAME_OFS_L). */
static bool common_l_slot(const struct entry *e, int64_t *slot, uint8_t *size)
{
	unsigned matches = 0;
	for (unsigned s = 0; s < e[0].l_slot_count; s++) {
		bool everywhere = true;
		for (unsigned i = 1; i < E_COUNT && everywhere; i++) {
			bool here = false;
			for (unsigned t = 0; t < e[i].l_slot_count; t++)
				here |= e[i].l_slots[t] == e[0].l_slots[s] &&
					e[i].l_slot_size[t] == e[0].l_slot_size[s];
			everywhere = here;
		}
		if (everywhere) {
			*slot = e[0].l_slots[s];
			*size = e[0].l_slot_size[s];
			matches++;
		}
	}
	return matches == 1;
}

static bool in_range(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v < hi; }

#define ALL_ENTRIES ((1u << E_COUNT) - 1)

static const char *combine_entries(const struct entry *e, const struct mode *m, struct vm *vm)
{
	struct obs glref, g2disp, dispatch, cframe, cur_l, vmstate, imm, base, stack, top, pc, copy;
	for (unsigned i = 1; i < E_COUNT; i++)
		if (e[i].cframe_size != e[0].cframe_size)
			return "the VM entries save different C frames";
	if (!agreed(e, ALL_ENTRIES, F_L_COPY, true, &copy) || copy.size != m->ptr)
		return "the VM entries do not copy lua_State *L as the mode's pointer size";
	if (!agreed(e, ALL_ENTRIES, F_GLREF, true, &glref) || glref.size != m->ptr ||
	    !agreed(e, ALL_ENTRIES, F_G2DISP, true, &g2disp) ||
	    !agreed(e, ALL_ENTRIES, F_DISPATCH, true, &dispatch) ||
	    !in_range(g2disp.value, 1, 65536) || !in_range(glref.value, 0, 256))
		return "the VM entries do not load DISPATCH from L->glref + GG_G2DISP alike";
	if (!agreed(e, ALL_ENTRIES, F_CFRAME, true, &cframe) || cframe.size != 8 ||
	    !in_range(cframe.value, 0, 256))
		return "the VM entries do not set L->cframe alike";
	if (!agreed(e, ALL_ENTRIES, F_CUR_L, true, &cur_l) || cur_l.size != m->ptr)
		return "the VM entries do not set g->cur_L alike";
	if (!agreed(e, ALL_ENTRIES, F_VMSTATE, false, &vmstate) ||
	    !agreed(e, ALL_ENTRIES, F_VMST_IMM, false, &imm) || imm.value != -1)
		return "the VM entries do not set g->vmstate to ~LJ_VMST_INTERP alike";
	if (!agreed(e, ALL_ENTRIES, F_BASE, false, &base) || base.value != m->base)
		return "the VM entries load BASE from another field than lua_gettop's L->base";
	if (!agreed(e, ALL_ENTRIES, F_STACK, false, &stack) ||
	    !agreed(e, ALL_ENTRIES, F_STACK_TOP, false, &top) || top.value != m->top ||
	    !in_range(stack.value, 0, 256))
		return "vm_cpcall does not compute L->stack - L->top";
	if (!agreed(e, ALL_ENTRIES, F_FUNC_PC, false, &pc))
		return "the VM entries do not dispatch a function's first instruction";
	int64_t l_slot = 0;
	uint8_t l_size = 0;
	if (!common_l_slot(e, &l_slot, &l_size) || l_size != m->ptr ||
	    !in_range(l_slot, 0, e[0].cframe_size))
		return "the VM entries do not save L in one C frame slot";
	int64_t disp2g = -g2disp.value;
	int64_t g_cur_l = cur_l.value - disp2g, g_vmstate = vmstate.value - disp2g;
	if (!in_range(g_cur_l, 0, 4096) || !in_range(g_vmstate, 0, 4096))
		return "g->cur_L or g->vmstate lies outside global_State";
	vm->dispatch_reg = (int)dispatch.value;
	vm->jit.gc64 = m->gc64;
	vm->jit.cframe_size = (uint16_t)e[0].cframe_size;
	vm->jit.disp2g = (int32_t)disp2g;
	vm->jit.cframe_l = (uint16_t)l_slot;
	vm->jit.state_glref = (uint16_t)glref.value;
	vm->jit.state_base = (uint16_t)base.value;
	vm->jit.state_stack = (uint16_t)stack.value;
	vm->jit.state_cframe = (uint16_t)cframe.value;
	vm->jit.g_vmstate = (uint16_t)g_vmstate;
	vm->jit.g_cur_L = (uint16_t)g_cur_l;
	vm->vmstate_disp = vmstate.value;
	vm->func_pc = pc.value;
	return NULL;
}

/* ---- one pass over the interpreter */

enum summary_kind {
	S_OTHER,
	S_LEA_ARG1,      /* lea CARG1, [DISPATCH + disp] */
	S_LOAD_DISPATCH, /* mov reg, [DISPATCH + disp] */
	S_LOAD_INDEXED,  /* mov r, [base + index * scale] */
};

struct summary {
	uint8_t kind;
	uint8_t reg;   /* S_LOAD_DISPATCH: the register loaded; S_LOAD_INDEXED: the base */
	uint8_t scale;
	int64_t disp;
};

struct window {
	struct summary items[WINDOW];
	unsigned next;  /* ring position of the next item */
	unsigned count;
};

static void window_push(struct window *w, struct summary s)
{
	w->items[w->next] = s;
	w->next = (w->next + 1) % WINDOW;
	if (w->count < WINDOW)
		w->count++;
}

/* The k-th most recent item (k = 0: the last one). */
static const struct summary *window_back(const struct window *w, unsigned k)
{
	if (k >= w->count)
		return NULL;
	return &w->items[(w->next + WINDOW - 1 - k) % WINDOW];
}

#define MAX_BASE_STORES 8u
#define MAX_SEEN 1024u

struct vm_pass {
	unsigned vmstate_stores;
	bool vmstate_bad;
	struct obs zero_store;   /* mov [DISPATCH + DISPATCH_GL(jit_base)], 0 */
	struct obs disp2j;       /* the lea CARG1 right before it */
	unsigned base_store_count;
	int64_t base_store_disp[MAX_BASE_STORES];  /* mov [DISPATCH + d], BASE */
	int64_t base_store_trace[MAX_BASE_STORES]; /* the J->trace load before it, or INT64_MIN */
	/* Every lea CARG1, [DISPATCH + d] and mov r, [DISPATCH + d] (up to MAX_SEEN): the values
	 * derived from one site are checked against the other sites that use them. */
	int64_t lea_arg1[MAX_SEEN], loads[MAX_SEEN];
	unsigned lea_arg1_count, load_count;
};

static unsigned count_of(const int64_t *v, unsigned n, int64_t value)
{
	unsigned count = 0;
	for (unsigned i = 0; i < n; i++)
		count += v[i] == value;
	return count;
}

/* BC_JLOOP: mov RA, [DISPATCH+DISPATCH_J(trace)]; mov TRACE:RD, [RA+RD*scale] a few
 * instructions before. The DISPATCH offset loaded, or INT64_MIN. */
static int64_t trace_load_before(const struct window *w, unsigned scale)
{
	for (unsigned k = 0; k < w->count; k++) {
		const struct summary *s = window_back(w, k);
		if (s->kind != S_LOAD_INDEXED || s->scale != scale)
			continue;
		for (unsigned j = k + 1; j < w->count; j++) {
			const struct summary *l = window_back(w, j);
			if (l->kind == S_LOAD_DISPATCH && l->reg == s->reg)
				return l->disp;
		}
	}
	return INT64_MIN;
}

static void pass_store(struct vm_pass *ps, const struct vm *vm, const struct mode *m,
		       const struct window *w, const cs_x86_op *dst, const cs_x86_op *src,
		       int64_t disp)
{
	uint8_t ws = 0;
	int64_t imm = 0;
	if (imm_operand(src, dst->size, &imm)) {
		if (dst->size == 4 && imm < 0) { /* set_vmstate */
			ps->vmstate_stores++;
			if (disp != vm->vmstate_disp || imm < -16)
				ps->vmstate_bad = true;
		} else if (imm == 0 && dst->size == m->ptr) {
			observe(&ps->zero_store, disp, dst->size);
			const struct summary *prev = window_back(w, 0);
			if (prev && prev->kind == S_LEA_ARG1)
				observe(&ps->disp2j, prev->disp, 8);
		}
		return;
	}
	if (reg_operand(src, &ws) == R_DX && ws == m->ptr && ps->base_store_count < MAX_BASE_STORES) {
		ps->base_store_disp[ps->base_store_count] = disp;
		ps->base_store_trace[ps->base_store_count++] = trace_load_before(w, m->gc64 ? 8 : 4);
	}
}

static struct summary summarize(const struct vm *vm, const cs_insn *insn)
{
	struct summary s = {S_OTHER, 0, 0, 0};
	const cs_x86_op *dst = operand(insn, 0), *src = operand(insn, 1);
	uint8_t wd = 0;
	int64_t disp = 0;
	int rd = reg_operand(dst, &wd);
	if (rd < 0 || !src || src->type != X86_OP_MEM)
		return s;
	if (simple_mem(src, &disp) == vm->dispatch_reg) {
		if (insn->id == X86_INS_LEA && rd == R_DI)
			s = (struct summary){S_LEA_ARG1, (uint8_t)rd, 0, disp};
		else if (insn->id == X86_INS_MOV)
			s = (struct summary){S_LOAD_DISPATCH, (uint8_t)rd, 0, disp};
	} else if (insn->id == X86_INS_MOV && src->mem.index != X86_REG_INVALID && src->mem.disp == 0 &&
		   src->mem.segment == X86_REG_INVALID && gpr_of(src->mem.base, NULL) >= 0) {
		s = (struct summary){S_LOAD_INDEXED, (uint8_t)gpr_of(src->mem.base, NULL),
				     (uint8_t)src->mem.scale, 0};
	}
	return s;
}

static int scan_vm(const struct file *f, struct x86_disasm *d, const struct vm *vm,
		   const struct mode *m, struct vm_pass *ps)
{
	struct x86_cursor c;
	struct window w;
	memset(&w, 0, sizeof(w));
	memset(ps, 0, sizeof(*ps));
	if (!x86_cursor_at(&f->text, vm->start, vm->end, &c))
		return -EINVAL;
	enum x86_decoded st;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		struct summary s = {S_OTHER, 0, 0, 0};
		if (st == X86_DECODED_INSN) {
			const cs_x86_op *dst = operand(d->insn, 0);
			int64_t disp = 0;
			if (d->insn->id == X86_INS_MOV && simple_mem(dst, &disp) == vm->dispatch_reg)
				pass_store(ps, vm, m, &w, dst, operand(d->insn, 1), disp);
			s = summarize(vm, d->insn);
			if (s.kind == S_LEA_ARG1 && ps->lea_arg1_count < MAX_SEEN)
				ps->lea_arg1[ps->lea_arg1_count++] = s.disp;
			if (s.kind == S_LOAD_DISPATCH && ps->load_count < MAX_SEEN)
				ps->loads[ps->load_count++] = s.disp;
		}
		window_push(&w, s);
	}
	return 0;
}

static const char *combine_pass(const struct vm_pass *ps, struct vm *vm)
{
	if (ps->vmstate_bad || ps->vmstate_stores == 0)
		return "the interpreter stores VM states elsewhere than to g->vmstate";
	if (!ps->zero_store.seen || ps->zero_store.conflict)
		return "the interpreter does not clear one g->jit_base (a build without the JIT?)";
	if (!ps->disp2j.seen || ps->disp2j.conflict)
		return "the trace exit handler does not pass one jit_State to lj_trace_exit";
	int64_t trace = INT64_MIN;
	unsigned stores = 0;
	for (unsigned i = 0; i < ps->base_store_count; i++) {
		if (ps->base_store_disp[i] != ps->zero_store.value)
			continue;
		if (ps->base_store_trace[i] == INT64_MIN || (stores > 0 && trace != ps->base_store_trace[i]))
			return "BC_JLOOP does not read J->trace before setting g->jit_base";
		trace = ps->base_store_trace[i];
		stores++;
	}
	if (stores == 0)
		return "BC_JLOOP does not set g->jit_base";
	/* vm_hotloop and the trace stitching also pass J to C (lj_trace_hot, lj_dispatch_stitch);
	 * BC_ITERN's JLOOP unpatching also reads J->trace. */
	if (count_of(ps->lea_arg1, ps->lea_arg1_count, ps->disp2j.value) < 2 ||
	    count_of(ps->loads, ps->load_count, trace) < 2)
		return "the jit_State or J->trace is used at one place only";
	int64_t disp2g = vm->jit.disp2g;
	int64_t jit_base = ps->zero_store.value - disp2g;
	int64_t g_to_j = ps->disp2j.value - disp2g;
	int64_t j_trace = trace - ps->disp2j.value;
	/* lj_dispatch.h GG_State: g, then J, then the dispatch table. */
	if (!in_range(jit_base, 0, 4096) || !in_range(g_to_j, jit_base + 1, -disp2g) ||
	    !in_range(j_trace, 0, 4096))
		return "g->jit_base, the jit_State or J->trace lies outside GG_State";
	vm->jit.g_jit_base = (uint16_t)jit_base;
	vm->jit.g_to_j = (int32_t)g_to_j;
	vm->jit.j_trace = (uint16_t)j_trace;
	return NULL;
}

/* ---- fields from tables */

/* lj_obj.h offsets that no known LuaJIT 2.1 layout changes within a mode (upstream 2.1 from
 * mid-2020 on and OpenResty luajit2 2019-2024, GCfuncC, GCproto, GCtrace). tests/luajit_detect
 * checks them against offsetof() on each tested tree. */
struct mode_fields {
	uint16_t func_ffid, func_pc, proto_size, proto_sizebc, trace_startpc;
	uint16_t proto_chunkname, proto_firstline, proto_numline, proto_lineinfo;
};

static const struct mode_fields gc64_fields = {10, 32, 104, 12, 72, 64, 72, 76, 80};
static const struct mode_fields gc32_fields = {6, 16, 64, 8, 52, 40, 44, 48, 52};

/* GCstr changed once: the string interning rework (upstream 2.1, 2020) put StrID sid in front of
 * len and grew global_State before vmstate. The variant is the one whose g->vmstate offset
 * matches the binary's. */
struct str_variant {
	bool gc64;
	uint16_t g_vmstate;
	uint16_t str_len;
	uint16_t str_size;
};

static const struct str_variant str_variants[] = {
	{true, 184, 20, 24},  /* sid, hash, len */
	{true, 128, 16, 24},  /* hash, len (OpenResty 2019) */
	{false, 136, 16, 20},
	{false, 88, 12, 16},
};

static const char *fill_tables(const struct vm *vm, struct luajit_runtime *out)
{
	const struct mode_fields *mf = vm->jit.gc64 ? &gc64_fields : &gc32_fields;
	if (vm->func_pc != mf->func_pc)
		return "the interpreter reads GCfunc.pc elsewhere than every known layout";
	const struct str_variant *str = NULL;
	for (size_t i = 0; i < sizeof(str_variants) / sizeof(str_variants[0]); i++)
		if (str_variants[i].gc64 == (vm->jit.gc64 != 0) &&
		    str_variants[i].g_vmstate == vm->jit.g_vmstate)
			str = &str_variants[i];
	if (!str)
		return "global_State.vmstate is at no known offset: unknown GCstr layout";
	out->interp.jit = vm->jit;
	out->interp.jit.func_ffid = mf->func_ffid;
	out->interp.jit.func_pc = mf->func_pc;
	out->interp.jit.proto_size = mf->proto_size;
	out->interp.jit.proto_sizebc = mf->proto_sizebc;
	out->interp.jit.trace_startpc = mf->trace_startpc;
	out->proto_chunkname = mf->proto_chunkname;
	out->proto_firstline = mf->proto_firstline;
	out->proto_numline = mf->proto_numline;
	out->proto_lineinfo = mf->proto_lineinfo;
	out->str_len = str->str_len;
	out->str_size = str->str_size;
	return NULL;
}

/* ---- fast function names: lj_lib_register calls and the init data they pass */

enum arg_kind { A_UNKNOWN, A_ZERO, A_IMM, A_ADDR };

struct arg {
	uint8_t kind;
	uint64_t value;
};

struct lib_call {
	uint64_t site;   /* the call instruction: the same call is found once */
	uint64_t target;
	struct arg name; /* rsi: the library name (lj_lib_register, lj_lib_prereg) */
	struct arg init; /* rdx: the init data (lj_lib_register), the loader (lj_lib_prereg), the
			  * ffid (lj_lib_postreg) */
	struct arg cf;   /* rcx: the lua_CFunction table (lj_lib_register) or lj_lib_postreg's name */
	size_t fn;       /* the function it is in (struct lib_scan.fns) */
};

struct lib_fn {
	uint64_t start, end;
	char prereg[MAX_NAME]; /* the name lj_lib_prereg gives this loader, or "" */
	const struct unnamed_libs *unnamed; /* an exported luaopen_* of unnamed_libs, or NULL */
	unsigned registrations, unnamed_registrations;
};

struct lib_scan {
	struct lib_fn fns[MAX_LUAOPEN + MAX_LOADERS];
	size_t fn_count;
	struct lib_call *calls;
	size_t call_count, call_capacity;
	uint64_t register_fn; /* lj_lib_register */
};

#define MAX_LIB_CALLS 4096 /* calls of the luaopen_* functions and their loaders followed */

static int push_call(struct lib_scan *ls, const struct lib_call *call)
{
	for (size_t i = 0; i < ls->call_count; i++)
		if (ls->calls[i].site == call->site)
			return 0;
	if (ls->call_count >= MAX_LIB_CALLS)
		return -E2BIG;
	struct lib_call *calls = grow_array(ls->calls, &ls->call_capacity, ls->call_count + 1,
					    sizeof(*calls), 64);
	if (!calls)
		return -ENOMEM;
	ls->calls = calls;
	ls->calls[ls->call_count++] = *call;
	return 0;
}

/* The value an instruction gives its destination register: a RIP-relative address (lea), zero
 * (xor r, r / mov r, 0), another immediate or a copy; unknown otherwise. */
static struct arg arg_written(const cs_insn *insn, const struct arg regs[GPR_COUNT])
{
	const cs_x86_op *dst = operand(insn, 0), *src = operand(insn, 1);
	struct arg none = {A_UNKNOWN, 0};
	uint8_t wd = 0, ws = 0;
	int64_t imm = 0;
	int rd = reg_operand(dst, &wd), rs = reg_operand(src, &ws);
	if (rd < 0)
		return none;
	if (insn->id == X86_INS_LEA && src->mem.base == X86_REG_RIP && src->mem.index == X86_REG_INVALID)
		return (struct arg){A_ADDR, insn->address + insn->size + (uint64_t)src->mem.disp};
	if (insn->id == X86_INS_XOR && rs == rd)
		return (struct arg){A_ZERO, 0};
	if (insn->id == X86_INS_MOV && imm_operand(src, wd, &imm))
		return (struct arg){imm == 0 ? A_ZERO : A_IMM, (uint64_t)imm};
	if (insn->id == X86_INS_MOV && rs >= 0 && wd == 8 && ws == 8)
		return regs[rs];
	return none;
}

/* Every direct call (and tail jump out) of function fn with what rsi, rdx and rcx hold, over a
 * linear sweep (luaopen_* are straight-line code). */
static int scan_calls(const struct file *f, struct x86_disasm *d, struct lib_scan *ls, size_t fn)
{
	struct x86_cursor c;
	struct arg regs[GPR_COUNT];
	memset(regs, 0, sizeof(regs));
	if (!x86_cursor_at(&f->text, ls->fns[fn].start, ls->fns[fn].end, &c))
		return 0;
	enum x86_decoded st;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		if (st != X86_DECODED_INSN)
			continue;
		uint64_t target;
		bool out = direct_target(d->insn, &target) &&
			   (target < ls->fns[fn].start || target >= ls->fns[fn].end);
		if (is_call(d) || (d->insn->id == X86_INS_JMP && out)) {
			if (out) {
				struct lib_call call = {d->insn->address, target, regs[R_SI], regs[R_DX],
							regs[R_CX], fn};
				int err = push_call(ls, &call);
				if (err)
					return err;
			}
			/* The SysV ABI's caller-saved registers. */
			static const int clobbered[] = {R_AX, R_CX, R_DX, R_SI, R_DI, R_8, R_9, R_10, R_11};
			for (size_t i = 0; i < sizeof(clobbered) / sizeof(clobbered[0]); i++)
				regs[clobbered[i]] = (struct arg){A_UNKNOWN, 0};
			continue;
		}
		uint8_t wd = 0;
		int rd = reg_operand(operand(d->insn, 0), &wd);
		struct arg v = arg_written(d->insn, regs);
		uint32_t writes = written_gprs(d);
		for (int r = 0; r < GPR_COUNT; r++)
			if (writes & (1u << r))
				regs[r] = r == rd ? v : (struct arg){A_UNKNOWN, 0};
	}
	return 0;
}

static bool is_register_call(const struct file *f, const struct lib_call *c)
{
	return c->init.kind == A_ADDR && !in_text(f, c->init.value) && c->cf.kind == A_ADDR &&
	       !in_text(f, c->cf.value) && (c->name.kind == A_ZERO || c->name.kind == A_ADDR);
}

/* lj_lib_register: the callee most of the calls passing (name, data, data) go to. */
static bool find_register_fn(const struct file *f, struct lib_scan *ls)
{
	unsigned best = 0, second = 0;
	for (size_t i = 0; i < ls->call_count; i++) {
		if (!is_register_call(f, &ls->calls[i]))
			continue;
		unsigned count = 0;
		bool counted_before = false;
		for (size_t j = 0; j < ls->call_count; j++) {
			if (ls->calls[j].target == ls->calls[i].target && is_register_call(f, &ls->calls[j])) {
				count++;
				counted_before |= j < i;
			}
		}
		if (counted_before)
			continue;
		if (count > best) {
			second = best;
			best = count;
			ls->register_fn = ls->calls[i].target;
		} else if (count > second) {
			second = count;
		}
	}
	return best >= 2 && best > second;
}

static size_t add_fn(struct lib_scan *ls, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < ls->fn_count; i++)
		if (ls->fns[i].start == start)
			return i;
	if (ls->fn_count >= sizeof(ls->fns) / sizeof(ls->fns[0]))
		return SIZE_MAX;
	ls->fns[ls->fn_count] = (struct lib_fn){.start = start, .end = end};
	return ls->fn_count++;
}

/* A function start (FDE) in the code: a loader. */
static bool loader_at(const struct file *f, const struct arg *a, uint64_t *end)
{
	uint64_t start;
	return a->kind == A_ADDR && in_text(f, a->value) && fde_of(f->cfi, a->value, &start, end) &&
	       start == a->value && *end - start <= MAX_FUNCTION_BYTES;
}

/* lj_lib.c lj_lib_prereg(L, name, loader, env) at call i of a luaopen_*: called (name in rsi,
 * the loader in rdx), or inlined as lua_pushcfunction(L, loader) (loader in rsi, 0 upvalues in
 * rdx) and then lua_setfield(L, -2, name) (name in rdx). The loader's index in ls->fns, or
 * SIZE_MAX. */
static size_t prereg_at(const struct file *f, struct lib_scan *ls, size_t i, char name[MAX_NAME])
{
	const struct lib_call *c = &ls->calls[i];
	const struct lib_call *next = i + 1 < ls->call_count ? &ls->calls[i + 1] : NULL;
	uint64_t end;
	if (c->target == ls->register_fn)
		return SIZE_MAX;
	if (loader_at(f, &c->init, &end) && c->name.kind == A_ADDR && read_name(f, c->name.value, name))
		return add_fn(ls, c->init.value, end);
	if (loader_at(f, &c->name, &end) && c->init.kind == A_ZERO && next && next->fn == c->fn &&
	    next->name.kind == A_IMM && (int32_t)next->name.value == -2 && next->init.kind == A_ADDR &&
	    read_name(f, next->init.value, name))
		return add_fn(ls, c->name.value, end);
	return SIZE_MAX;
}

/* The loaders the exported luaopen_* preregister ("jit.util", "table.new"), named and scanned. */
static int scan_loaders(const struct file *f, struct x86_disasm *d, struct lib_scan *ls)
{
	size_t roots = ls->call_count;
	for (size_t i = 0; i < roots; i++) {
		char name[MAX_NAME];
		size_t fn = prereg_at(f, ls, i, name);
		if (fn == SIZE_MAX)
			continue;
		if (ls->fns[fn].prereg[0])
			continue; /* preregistered twice: the first name stays */
		memcpy(ls->fns[fn].prereg, name, sizeof(name));
		int err = scan_calls(f, d, ls, fn);
		if (err)
			return err;
	}
	return ls->fn_count >= sizeof(ls->fns) / sizeof(ls->fns[0]) ? -E2BIG : 0;
}

/* ---- the init data (host/buildvm_lib.c writes it, lj_lib.c lj_lib_register reads it) */

#define LIBINIT_LENMASK 0x3f
#define LIBINIT_TAGMASK 0xc0
#define LIBINIT_STRING 0xc0
#define LIBINIT_LUA 0xf9
#define LIBINIT_SET 0xfa
#define LIBINIT_NUMBER 0xfb
#define LIBINIT_COPY 0xfc
#define LIBINIT_LASTCL 0xfd
#define LIBINIT_FFID 0xfe
#define LIBINIT_END 0xff

struct bytes {
	const uint8_t *p;
	size_t left;
};

static bool take(struct bytes *b, size_t n)
{
	if (n > b->left)
		return false;
	b->p += n;
	b->left -= n;
	return true;
}

static bool take_byte(struct bytes *b, uint8_t *v)
{
	if (b->left == 0)
		return false;
	*v = *b->p;
	return take(b, 1);
}

/* lj_bcread.c bcread_uleb128 (and the _33 variant: the same bytes). */
static bool take_uleb(struct bytes *b, uint64_t *v)
{
	uint64_t value = 0;
	for (unsigned shift = 0; shift < 35; shift += 7) {
		uint8_t byte;
		if (!take_byte(b, &byte))
			return false;
		value |= (uint64_t)(byte & 0x7f) << shift;
		if (!(byte & 0x80)) {
			*v = value;
			return true;
		}
	}
	return false;
}

/* lj_bcread.c bcread_ktabk. */
static bool skip_ktabk(struct bytes *b)
{
	uint64_t tp, ignored;
	if (!take_uleb(b, &tp))
		return false;
	if (tp >= 5) /* BCDUMP_KTAB_STR + len */
		return take(b, tp - 5);
	if (tp == 3) /* BCDUMP_KTAB_INT */
		return take_uleb(b, &ignored);
	if (tp == 4) /* BCDUMP_KTAB_NUM */
		return take_uleb(b, &ignored) && take_uleb(b, &ignored);
	return true; /* nil, false, true */
}

/* lj_bcread.c bcread_kgc; BCDUMP_KGC_CHILD cannot occur in a library function (no parent). */
static bool skip_kgc(struct bytes *b)
{
	uint64_t tp, narray, nhash, ignored;
	if (!take_uleb(b, &tp) || tp == 0)
		return false;
	if (tp >= 5) /* BCDUMP_KGC_STR + len */
		return take(b, tp - 5);
	if (tp == 1) { /* BCDUMP_KGC_TAB */
		if (!take_uleb(b, &narray) || !take_uleb(b, &nhash) || narray > b->left ||
		    nhash > b->left)
			return false;
		for (uint64_t i = 0; i < narray + 2 * nhash; i++)
			if (!skip_ktabk(b))
				return false;
		return true;
	}
	for (unsigned i = 0; i < (tp == 4 ? 4u : 2u); i++) /* I64, U64: 2 words; COMPLEX: 4 */
		if (!take_uleb(b, &ignored))
			return false;
	return true;
}

/* One stripped prototype as lj_bcread_proto reads it (lj_lib.c lib_read_lfunc). */
static bool skip_proto(struct bytes *b)
{
	uint8_t head[4];
	uint64_t sizekgc, sizekn, sizebc, ignored;
	for (unsigned i = 0; i < 4; i++) /* flags, numparams, framesize, sizeuv */
		if (!take_byte(b, &head[i]))
			return false;
	if (!take_uleb(b, &sizekgc) || !take_uleb(b, &sizekn) || !take_uleb(b, &sizebc) ||
	    sizebc > b->left / 4 || !take(b, sizebc * 4) || !take(b, (size_t)head[3] * 2) ||
	    sizekgc > b->left || sizekn > b->left)
		return false;
	for (uint64_t i = 0; i < sizekgc; i++)
		if (!skip_kgc(b))
			return false;
	for (uint64_t i = 0; i < sizekn; i++) {
		bool isnum = b->left > 0 && (b->p[0] & 1);
		if (!take_uleb(b, &ignored) || (isnum && !take_uleb(b, &ignored)))
			return false;
	}
	return true;
}

struct ffnames {
	char **names;
	bool claimed[MAX_FFID + 1];
	uint32_t count;   /* highest claimed ffid + 1 */
};

static bool identifier(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
		      (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
			return false;
	return n > 0;
}

/* ffid gets "prefix.name", "name" (prefix ""), or nothing (prefix NULL or no name). */
static int claim(struct ffnames *fn, unsigned ffid, const char *prefix, const uint8_t *name,
		 size_t len)
{
	if (ffid > MAX_FFID || fn->claimed[ffid])
		return -EINVAL;
	fn->claimed[ffid] = true;
	if (ffid + 1 > fn->count)
		fn->count = ffid + 1;
	if (!prefix || len == 0)
		return 0;
	if (!identifier(name, len))
		return -EINVAL;
	size_t plen = strlen(prefix);
	char *s = malloc(plen + 1 + len + 1);
	if (!s)
		return -ENOMEM;
	if (plen > 0) {
		memcpy(s, prefix, plen);
		s[plen++] = '.';
	}
	memcpy(s + plen, name, len);
	s[plen + len] = '\0';
	fn->names[ffid] = s;
	return 0;
}

/* lj_lib.c lj_lib_register: the first ffid, the first fast function's bcff index, the hash size,
 * then tagged entries up to LIBINIT_END. -EINVAL when the data is not that. */
static int parse_init(const struct file *f, uint64_t addr, const char *prefix, struct ffnames *fn,
		      unsigned *first_ffid)
{
	uint8_t buf[MAX_INIT_BYTES];
	struct bytes b = {buf, read_vaddr(f, addr, buf, sizeof(buf))};
	uint8_t ffid, ignored;
	if (!take_byte(&b, &ffid) || !take_byte(&b, &ignored) || !take_byte(&b, &ignored) || ffid < 2)
		return -EINVAL; /* ffids 0 and 1 are Lua and C functions (lj_obj.h FF_LUA, FF_C) */
	*first_ffid = ffid;
	unsigned next = ffid;
	for (;;) {
		uint8_t tag;
		if (!take_byte(&b, &tag))
			return -EINVAL;
		size_t len = tag & LIBINIT_LENMASK;
		if ((tag & LIBINIT_TAGMASK) != LIBINIT_STRING) { /* LIBINIT_CF, _ASM, _ASM_ */
			const uint8_t *name = b.p;
			if (!take(&b, len))
				return -EINVAL;
			int err = claim(fn, next++, prefix, name, len);
			if (err)
				return err;
			continue;
		}
		uint8_t n = 0;
		switch (tag) {
		case LIBINIT_END:
			return 0;
		case LIBINIT_LUA:
			if (!take_byte(&b, &n) || !take(&b, n) || !skip_proto(&b))
				return -EINVAL;
			break;
		case LIBINIT_SET:
		case LIBINIT_LASTCL:
			break;
		case LIBINIT_NUMBER:
			if (!take(&b, 8))
				return -EINVAL;
			break;
		case LIBINIT_COPY:
			if (!take(&b, 1))
				return -EINVAL;
			break;
		case LIBINIT_FFID: { /* LJLIB_NOREG: a fast function without a name */
			int err = claim(fn, next++, NULL, NULL, 0);
			if (err)
				return err;
			break;
		}
		default: /* a string pushed */
			if (!take(&b, len))
				return -EINVAL;
			break;
		}
	}
}

static void ffnames_free(char **names, uint32_t count)
{
	if (!names)
		return;
	for (uint32_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

static bool is_unnamed_registration(const struct file *f, const struct lib_scan *ls,
				    const struct lib_call *c)
{
	return c->target == ls->register_fn && is_register_call(f, c) && c->name.kind == A_ZERO;
}

/* The prefix of the registration without a name c (of ls->calls) of an unnamed_libs luaopen_*:
 * the table's entry for its place among that function's ones, when their number is the table's
 * (linear sweep order is call order: luaopen_* are straight-line code); NULL otherwise. */
static const char *unnamed_prefix(const struct file *f, const struct lib_scan *ls,
				  const struct lib_call *c)
{
	const struct lib_fn *fn = &ls->fns[c->fn];
	if (!fn->unnamed)
		return NULL;
	size_t expected = 0, place = 0;
	while (expected < MAX_UNNAMED && fn->unnamed->prefixes[expected])
		expected++;
	if (fn->unnamed_registrations != expected)
		return NULL;
	for (const struct lib_call *other = ls->calls; other < c; other++)
		if (other->fn == c->fn && is_unnamed_registration(f, ls, other))
			place++;
	return place < expected ? fn->unnamed->prefixes[place] : NULL;
}

/* The prefix of a registration: "" for "_G", the library name, the loader's lj_lib_prereg name
 * for a loader's only registration without a name, unnamed_prefix; NULL: unnamed. */
static bool registration_prefix(const struct file *f, const struct lib_scan *ls,
				const struct lib_call *c, char out[MAX_NAME], const char **prefix)
{
	if (c->name.kind == A_ADDR) {
		if (!read_name(f, c->name.value, out))
			return false;
		*prefix = strcmp(out, "_G") == 0 ? "" : out;
		return true;
	}
	const struct lib_fn *fn = &ls->fns[c->fn];
	*prefix = fn->prereg[0] && fn->registrations == 1 ? fn->prereg : unnamed_prefix(f, ls, c);
	return true;
}

/* lj_lib.c lj_lib_postreg(L, cf, FF_table_new, "new") in a loader preregistered as "table.new":
 * the LJLIB_NOREG fast function ffid (claimed without a name by its library's init data) is
 * "table.new". */
static const char *name_postregistered(const struct file *f, const struct lib_scan *ls,
				       struct ffnames *fn)
{
	for (size_t i = 0; i < ls->call_count; i++) {
		const struct lib_call *c = &ls->calls[i];
		const char *prereg = ls->fns[c->fn].prereg;
		char name[MAX_NAME];
		if (!prereg[0] || c->init.kind != A_IMM || c->init.value < 2 || c->init.value > MAX_FFID ||
		    c->cf.kind != A_ADDR || !read_name(f, c->cf.value, name))
			continue;
		size_t plen = strlen(prereg), nlen = strlen(name);
		unsigned ffid = (unsigned)c->init.value;
		if (nlen + 1 >= plen || prereg[plen - nlen - 1] != '.' ||
		    strcmp(prereg + plen - nlen, name) != 0 || !fn->claimed[ffid] || fn->names[ffid])
			continue;
		fn->names[ffid] = strdup(prereg);
		if (!fn->names[ffid])
			return "out of memory";
	}
	return NULL;
}

/* Whether call i registers init data an earlier register call registers too: 1 with the same
 * prefix, -1 with another, 0 when it is new. */
static int registered_before(const struct file *f, const struct lib_scan *ls, size_t i,
			     const char *prefix)
{
	for (size_t j = 0; j < i; j++) {
		const struct lib_call *c = &ls->calls[j];
		char name[MAX_NAME];
		const char *other = NULL;
		if (c->target != ls->register_fn || !is_register_call(f, c) ||
		    c->init.value != ls->calls[i].init.value)
			continue;
		if (!registration_prefix(f, ls, c, name, &other))
			return -1;
		return (!prefix && !other) || (prefix && other && strcmp(prefix, other) == 0) ? 1 : -1;
	}
	return 0;
}

static const char *collect_names(const struct file *f, struct lib_scan *ls, struct ffnames *fn)
{
	bool base_found = false;
	for (size_t i = 0; i < ls->call_count; i++) {
		if (ls->calls[i].target == ls->register_fn && is_register_call(f, &ls->calls[i]))
			ls->fns[ls->calls[i].fn].registrations++;
		if (is_unnamed_registration(f, ls, &ls->calls[i]))
			ls->fns[ls->calls[i].fn].unnamed_registrations++;
	}
	for (size_t i = 0; i < ls->call_count; i++) {
		const struct lib_call *c = &ls->calls[i];
		char name[MAX_NAME];
		const char *prefix = NULL;
		unsigned first = 0;
		if (c->target != ls->register_fn || !is_register_call(f, c))
			continue;
		if (!registration_prefix(f, ls, c, name, &prefix))
			return "a library registered by lj_lib_register has no readable name";
		switch (registered_before(f, ls, i, prefix)) {
		case 1: continue; /* the same library again (e.g. a loader that is also exported) */
		case -1: return "one library is registered under two names";
		default: break;
		}
		int err = parse_init(f, c->init.value, prefix, fn, &first);
		if (err == -ENOMEM)
			return "out of memory";
		if (err)
			return "a library's init data (lj_lib_init_*) does not parse";
		/* lib_base.c: the base library ("_G") has the first fast functions, FF_C + 1. */
		base_found |= prefix && prefix[0] == '\0' && first == 2;
	}
	if (!base_found)
		return "no luaopen_* registers the base library's fast functions";
	return name_postregistered(f, ls, fn);
}

static const char *find_ffnames(const struct file *f, struct x86_disasm *d, struct luajit_runtime *out)
{
	struct lib_scan *ls = calloc(1, sizeof(*ls));
	struct ffnames fn = {0};
	const char *why = NULL;
	fn.names = calloc(MAX_FFID + 1, sizeof(*fn.names));
	if (!ls || !fn.names) {
		why = "out of memory";
		goto done;
	}
	for (size_t i = 0; i < f->luaopen_count && !why; i++) {
		uint64_t end;
		size_t index;
		if (!function_range(f, &f->luaopen[i].sym, MAX_FUNCTION_BYTES, &end))
			continue;
		index = add_fn(ls, f->luaopen[i].sym.addr, end);
		if (index == SIZE_MAX || scan_calls(f, d, ls, index) != 0) {
			why = "too many luaopen_* calls to follow";
			break;
		}
		ls->fns[index].unnamed = f->luaopen[i].unnamed;
	}
	if (!why && !find_register_fn(f, ls))
		why = "the exported luaopen_* functions call no common lj_lib_register";
	if (!why && scan_loaders(f, d, ls) != 0)
		why = "too many library loaders to follow";
	if (!why)
		why = collect_names(f, ls, &fn);
done:
	if (!why) {
		out->ffnames = fn.names;
		out->ffname_count = fn.count;
	} else {
		ffnames_free(fn.names, MAX_FFID + 1);
	}
	if (ls)
		free(ls->calls);
	free(ls);
	return why;
}

/* ---- entry point */

static const char *locate_vm(const struct file *f, struct x86_disasm *d, struct vm *vm,
			     uint64_t entries[E_COUNT])
{
	for (unsigned i = 0; i < E_COUNT; i++) {
		entries[i] = entry_of(f, d, entry_api_fn[i]);
		if (entries[i] == 0)
			return "lua_call, lua_pcall, lua_resume or lua_cpcall enters no interpreter";
		uint64_t start, end;
		if (!fde_of(f->cfi, entries[i], &start, &end))
			return "the interpreter has no FDE";
		if (i > 0 && (start != vm->start || end != vm->end))
			return "the VM entries lie in different FDEs";
		vm->start = start;
		vm->end = end;
	}
	if (vm->end - vm->start > MAX_VM_BYTES || !in_text(f, vm->end - 1))
		return "the interpreter's FDE is implausibly large";
	return NULL;
}

static const char *derive(const struct file *f, struct luajit_runtime *out)
{
	struct x86_disasm d;
	struct mode m;
	struct vm vm;
	struct entry e[E_COUNT];
	uint64_t entries[E_COUNT];
	struct vm_pass *pass = calloc(1, sizeof(*pass));
	if (!pass)
		return "out of memory";
	if (x86_disasm_open(&d) != 0) {
		free(pass);
		return "the disassembler failed to start";
	}
	memset(&vm, 0, sizeof(vm));
	memset(e, 0, sizeof(e));
	const char *why = find_mode(f, &d, &m);
	if (!why)
		why = locate_vm(f, &d, &vm, entries);
	for (unsigned i = 0; i < E_COUNT && !why; i++) {
		e[i].addr = entries[i];
		trace_entry(f, &d, vm.end, &e[i]);
		if (e[i].cframe_size == 0)
			why = "a VM entry does not save a C frame";
	}
	if (!why)
		why = combine_entries(e, &m, &vm);
	if (!why && scan_vm(f, &d, &vm, &m, pass) != 0)
		why = "the interpreter lies outside the code section";
	if (!why)
		why = combine_pass(pass, &vm);
	if (!why)
		why = fill_tables(&vm, out);
	if (!why)
		why = find_ffnames(f, &d, out);
	x86_disasm_close(&d);
	free(pass);
	if (!why) {
		out->interp.kind = LUA_KIND_LUAJIT;
		out->interp.exec_start = vm.start;
		out->interp.exec_end = vm.end;
	}
	return why;
}

static bool has_api(const struct file *f)
{
	for (int i = API_GETTOP; i <= API_CPCALL; i++)
		if (f->api[i].addr == 0)
			return false;
	return true;
}

enum lua_detect_result luajit_detect(const struct elf_image *img, const struct cfi_table *cfi,
				     struct luajit_runtime *out, const char **reason)
{
	const char *ignored_reason;
	if (!reason)
		reason = &ignored_reason;
	if (!lua_detect_start(img, out, sizeof(*out), reason))
		return LUA_DETECT_NONE;
	struct file *f = calloc(1, sizeof(*f));
	if (!f) {
		*reason = "out of memory";
		return LUA_DETECT_UNSUPPORTED;
	}
	f->img = img;
	f->cfi = cfi;
	scan_symbols(f);
	enum lua_detect_result r = LUA_DETECT_UNSUPPORTED;
	char version[24] = "";
	enum ident ident = IDENT_NONE;
	if (f->api[API_SETMODE].addr == 0) {
		r = LUA_DETECT_NONE;
	} else if (!has_api(f)) {
		*reason = "luaJIT_setmode without the lua_* API it belongs to";
	} else if ((ident = find_ident(img, version)) != IDENT_21) {
		*reason = ident == IDENT_NONE ? "no \"LuaJIT 2.1\" version string"
					      : "only LuaJIT 2.1 is supported";
	} else if (!cfi || cfi->function_count == 0) {
		*reason = "no call frame information to find the interpreter";
	} else if (!x86_code_section_at(img, f->api[API_PCALL].addr, &f->text)) {
		*reason = "lua_pcall is not in an executable section";
	} else {
		*reason = derive(f, out);
		r = *reason ? LUA_DETECT_UNSUPPORTED : LUA_DETECT_OK;
	}
	if (r == LUA_DETECT_OK) {
		bool openresty = f->api[API_RESETTHREAD].addr != 0 || f->api[API_SETEXDATA].addr != 0;
		snprintf(out->description, sizeof(out->description), "LuaJIT %s %s%s", version,
			 out->interp.jit.gc64 ? "GC64" : "GC32", openresty ? ", OpenResty luajit2" : "");
	} else {
		luajit_runtime_free(out);
	}
	free(f);
	return r;
}

void luajit_runtime_free(struct luajit_runtime *rt)
{
	if (!rt)
		return;
	ffnames_free(rt->ffnames, rt->ffname_count);
	memset(rt, 0, sizeof(*rt));
}
