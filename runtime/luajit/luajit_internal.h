/* SPDX-License-Identifier: MIT */
/* luajit_internal.h - what the files of LuaJIT detection share (luajit_detect.c says the method):
 * work bounds, the file being read, the mode, the VM entries and the facts they show, the VM
 * found, the fast function names being collected. Not for use outside runtime/luajit/. */
#ifndef LUA_PERF_LUAJIT_INTERNAL_H
#define LUA_PERF_LUAJIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runtime/luajit/luajit_detect.h"
#include "x86/x86_disasm.h"
#include "x86/x86_operands.h"

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

/* ---- the file: symbols, code, data (luajit_file.c) */

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

/* Fills f->api and f->luaopen from the file's symbols (.dynsym and .symtab). */
void luajit_scan_symbols(struct file *f);

static inline bool in_text(const struct file *f, uint64_t addr)
{
	return addr >= f->text.addr && addr - f->text.addr < f->text.size;
}

/* Up to len bytes of the file's loaded data at vaddr (PT_LOAD file contents); how many. */
static inline size_t read_vaddr(const struct file *f, uint64_t vaddr, void *buf, size_t len)
{
	return elf_image_read_vaddr(f->img, vaddr, buf, len);
}

/* A library or module name at vaddr: NUL-terminated, 1..MAX_NAME-1 characters of [A-Za-z0-9_.]. */
bool luajit_read_name(const struct file *f, uint64_t vaddr, char out[MAX_NAME]);
/* [start, *end) of an exported function: its symbol size, else its FDE; bounded by limit. */
bool luajit_function_range(const struct file *f, const struct fn_sym *sym, uint64_t limit,
			   uint64_t *end);

/* The general purpose registers the decoded instruction writes, as a mask of enum x86_gpr; all
 * of them when capstone cannot tell. */
static inline uint32_t written_gprs(const struct x86_disasm *d)
{
	uint32_t gprs;
	x86_written_gprs(d, &gprs);
	return gprs;
}

static inline bool in_range(int64_t v, int64_t lo, int64_t hi) { return v >= lo && v < hi; }

/* ---- GC64 or GC32, the VM entries and what they agree on (luajit_vm_entries.c) */

struct mode {
	bool gc64;
	uint8_t ptr;        /* bytes of a GCRef/MRef and of L as the VM handles it: 8 or 4 */
	int64_t base, top;  /* lua_State.base, lua_State.top */
};

enum entry_api { E_CALL, E_PCALL, E_RESUME, E_CPCALL, E_COUNT };

/* A fact an entry path shows, possibly more than once. */
struct obs {
	bool seen;
	bool conflict;
	uint8_t size;
	int64_t value;
};

static inline void observe(struct obs *o, int64_t value, uint8_t size)
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

struct vm {
	uint64_t start, end;       /* the interpreter's FDE */
	int dispatch_reg;          /* DISPATCH (r14) */
	struct luajit_layout jit;
	int64_t vmstate_disp;      /* DISPATCH_GL(vmstate) */
	int64_t func_pc;           /* seen at the first dispatch (checked against the table) */
};

/* The mode lua_gettop shows (GC64: L->base at 32, L->top at 40; GC32: 16, 24); NULL, or why not. */
const char *luajit_find_mode(const struct file *f, struct x86_disasm *d, struct mode *m);
/* The VM entries of lua_call, lua_pcall, lua_resume and lua_cpcall (entries, by enum entry_api)
 * and the interpreter's FDE that holds them all (vm->start, vm->end); NULL, or why not. */
const char *luajit_locate_vm(const struct file *f, struct x86_disasm *d, struct vm *vm,
			     uint64_t entries[E_COUNT]);
/* saveregs (vm_x64.dasc / vm_x86.dasc): push rbp; push rbx; push r15; push r14 (+ r13, r12 with
 * LJ_NO_UNWIND); sub rsp, CFRAME_SPACE. The bytes from the return address to the new rsp. */
bool luajit_entry_prologue(struct x86_disasm *d, struct x86_cursor *c, unsigned *frame);
/* The layout fields the entries' paths agree on, into vm (vm->jit and what the interpreter pass
 * checks against); NULL, or why not. */
const char *luajit_combine_entries(const struct entry *e, const struct mode *m, struct vm *vm);

/* ---- one entry path (luajit_entry_path.c) */

/* The facts the path of the VM entry at e->addr shows (e->facts, e->l_slots), and its C frame
 * (e->cframe_size, 0 when the entry does not save one). */
void luajit_trace_entry(const struct file *f, struct x86_disasm *d, uint64_t vm_end,
			struct entry *e);

/* ---- the interpreter pass and the per-mode tables (luajit_vm_pass.c) */

/* The JIT fields (g->jit_base, the jit_State, J->trace) from one pass over [vm->start,
 * vm->end), checked against what the entries showed; NULL, or why not. */
const char *luajit_read_interpreter(const struct file *f, struct x86_disasm *d, struct vm *vm,
				    const struct mode *m);
/* out's layout: vm->jit and the fields of the mode's table; NULL, or why not. */
const char *luajit_fill_tables(const struct vm *vm, struct luajit_runtime *out);

/* ---- fast function names (luajit_lib_init.c, luajit_ffnames.c) */

struct ffnames {
	char **names;
	bool claimed[MAX_FFID + 1];
	uint32_t count;   /* highest claimed ffid + 1 */
};

/* lj_lib.c lj_lib_register: the first ffid, the first fast function's bcff index, the hash size,
 * then tagged entries up to LIBINIT_END. Each fast function of the init data at addr gets
 * "prefix.name", "name" (prefix "") or no name (prefix NULL); *first_ffid is the first. -EINVAL
 * when the data is not that, -ENOMEM. */
int luajit_parse_init(const struct file *f, uint64_t addr, const char *prefix, struct ffnames *fn,
		      unsigned *first_ffid);
void luajit_ffnames_free(char **names, uint32_t count);
/* out->ffnames and out->ffname_count, from the exported luaopen_* functions; NULL, or why not. */
const char *luajit_find_ffnames(const struct file *f, struct x86_disasm *d,
				struct luajit_runtime *out);

#endif
