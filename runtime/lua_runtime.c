/* SPDX-License-Identifier: MIT */
/* lua_runtime.c - PUC Lua VM detection in one ELF file (runtime/lua_runtime.h).
 *
 * 1. Symbols (.dynsym, then .symtab): the exported C API (lua_newstate and a call entry point)
 *    must be defined; any luaJIT_* symbol means LuaJIT, which also exports the lua_* API and says
 *    "Lua 5.1" but is not PUC Lua: NONE here.
 * 2. The ident string lua_ident in read-only data: "$LuaVersion: Lua 5.x.y  Copyright ..." (5.2+,
 *    lapi.c) or "$Lua: Lua 5.1.x Copyright ..." (5.0/5.1 lapi.c). Its release picks the layout.
 * 3. luaV_execute: .symtab when present; otherwise derived (x86/interpreter_search.c) from the API entry
 *    points, with function bounds from the CFI table (FDE starts, gap rows).
 *    The range is always the function's hot part: gcc moves unlikely blocks to a separate
 *    luaV_execute.cold FDE/symbol, which is neither the symbol's nor the FDE's range.
 * 4. Where luaV_execute keeps L (runtime/puc/lua_state_home.c): the callee-saved register its entry path
 *    copies L (rdi) into and still holds at the first opcode dispatch (l_reg); otherwise (or when
 *    that register also takes computed values: clang) the slot of its own stack frame the entry
 *    code stores L to, never writes again and reloads it from (gcc -O1/-O3 and clang on 5.4):
 *    l_in_frame = 1, l_cfa_off = the slot's address - luaV_execute's CFA (from the CFI rule at
 *    the store), l_reg = LUA_L_REG_NONE. L only in caller-saved registers, or in a slot also
 *    used for other values, is UNSUPPORTED.
 * Not detected (NONE): files that export no lua_newstate/lua_*call* (a stripped executable with
 * Lua linked in and no -Wl,-E); the ident is only searched for when the API is there.
 * Everything read from the file is bounds-checked; nothing is mapped. */
#include "runtime/lua_runtime.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "runtime/puc/lua_state_home.h"
#include "unwind/elf_symbols.h"
#include "x86/interpreter_search.h"
#include "x86/x86_disasm.h"

/* *reason has static storage (lua_runtime.h; callers keep it): a literal, or for reasons naming a
 * release an interned copy that never changes once handed out. Distinct releases beyond
 * REASON_SLOTS (only hostile files get there) share a generic literal. */
#define REASON_SLOTS 16
#define REASON_LEN 96
static char reason_slots[REASON_SLOTS][REASON_LEN];
static unsigned reason_count;
static pthread_mutex_t reason_lock = PTHREAD_MUTEX_INITIALIZER;

enum api_fn {
	API_NEWSTATE,
	API_CALLK,   /* 5.2+ */
	API_PCALLK,  /* 5.2+ */
	API_CALL,    /* 5.1 (a macro over lua_callk from 5.2 on) */
	API_PCALL,   /* 5.1 */
	API_CPCALL,  /* 5.1 */
	API_RESUME,
	API_COUNT,
};

static const char *const api_names[API_COUNT] = {
	[API_NEWSTATE] = "lua_newstate", [API_CALLK] = "lua_callk", [API_PCALLK] = "lua_pcallk",
	[API_CALL] = "lua_call",         [API_PCALL] = "lua_pcall", [API_CPCALL] = "lua_cpcall",
	[API_RESUME] = "lua_resume",
};

struct lua_syms {
	uint64_t api[API_COUNT];  /* defined function addresses, 0 when absent */
	bool luajit;              /* a luaJIT_* symbol is defined */
	bool exec_found;          /* .symtab names luaV_execute */
	uint64_t exec_addr;
	uint64_t exec_size;
};

/* ---- symbols */

static void note_symbol(struct lua_syms *syms, const GElf_Sym *sym, const char *name, bool symtab)
{
	if (strncmp(name, "luaJIT_", 7) == 0) {
		syms->luajit = true;
		return;
	}
	if (GELF_ST_TYPE(sym->st_info) != STT_FUNC || sym->st_value == 0)
		return;
	for (int i = 0; i < API_COUNT; i++)
		if (syms->api[i] == 0 && strcmp(name, api_names[i]) == 0)
			syms->api[i] = sym->st_value;
	/* lvm.c: luaV_execute is a hidden (LUAI_FUNC) function: only .symtab names it. */
	if (symtab && !syms->exec_found && strcmp(name, "luaV_execute") == 0) {
		syms->exec_found = true;
		syms->exec_addr = sym->st_value;
		syms->exec_size = sym->st_size;
	}
}

static int note_symbol_of(void *syms, const struct elf_symbol *symbol)
{
	note_symbol(syms, symbol->sym, symbol->name, symbol->from_symtab);
	return 0;
}

static void scan_symbols(const struct elf_image *img, struct lua_syms *syms)
{
	memset(syms, 0, sizeof(*syms));
	elf_symbols_walk(img->elf, NULL, note_symbol_of, syms);
}

static bool has_lua_api(const struct lua_syms *syms)
{
	return syms->api[API_NEWSTATE] != 0 &&
	       (syms->api[API_CALLK] || syms->api[API_PCALLK] || syms->api[API_CALL] ||
		syms->api[API_PCALL]);
}

/* ---- the ident string */

/* lapi.c lua_ident: 5.2-5.4 "$LuaVersion: " LUA_COPYRIGHT, 5.0/5.1 "$Lua: " LUA_RELEASE; both
 * continue with LUA_RELEASE, "Lua 5.x.y" (lua.h). */
static const char *const ident_prefixes[] = {"$LuaVersion: Lua ", "$Lua: Lua "};

enum ident_result { IDENT_NONE, IDENT_OK, IDENT_MALFORMED };

/* "5.x.y" (digit groups separated by two dots, at most 15 characters) at p, into version. */
static enum ident_result parse_release(const char *p, size_t avail, char version[16])
{
	size_t n = 0, dots = 0;
	bool digit_before = false;
	for (; n < avail && n < 16 && ((p[n] >= '0' && p[n] <= '9') || p[n] == '.'); n++) {
		if (p[n] == '.') {
			if (!digit_before)
				return IDENT_MALFORMED;
			dots++;
		}
		digit_before = p[n] != '.';
	}
	if (n >= 16 || dots != 2 || !digit_before)
		return IDENT_MALFORMED;
	memcpy(version, p, n);
	version[n] = '\0';
	return IDENT_OK;
}

static enum ident_result find_ident_in(const uint8_t *bytes, size_t size, char version[16])
{
	for (size_t i = 0; i < sizeof(ident_prefixes) / sizeof(ident_prefixes[0]); i++) {
		size_t plen = strlen(ident_prefixes[i]);
		const uint8_t *hit = memmem(bytes, size, ident_prefixes[i], plen);
		if (!hit)
			continue;
		size_t at = (size_t)(hit - bytes) + plen;
		return parse_release((const char *)bytes + at, size - at, version);
	}
	return IDENT_NONE;
}

/* lua_ident is a const char array: read-only, allocated, non-executable data (.rodata). */
static enum ident_result find_ident(const struct elf_image *img, char version[16])
{
	Elf_Scn *scn = NULL;
	while ((scn = elf_nextscn(img->elf, scn)) != NULL) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_PROGBITS ||
		    !(shdr.sh_flags & SHF_ALLOC) || (shdr.sh_flags & (SHF_WRITE | SHF_EXECINSTR)))
			continue;
		Elf_Data *data = elf_getdata(scn, NULL);
		if (!data || !data->d_buf || data->d_size == 0)
			continue;
		enum ident_result r = find_ident_in(data->d_buf, data->d_size, version);
		if (r != IDENT_NONE)
			return r;
	}
	return IDENT_NONE;
}

/* ---- reading loaded data (jump tables) */

static size_t read_vaddr(const void *ctx, uint64_t vaddr, void *buf, size_t len)
{
	return elf_image_read_vaddr(ctx, vaddr, buf, len);
}

/* ---- the code section holding the API */


/* ---- version facts */

/* lopcodes.h NUM_OPCODES: 5.1 OP_VARARG + 1 = 38; 5.3 OP_EXTRAARG + 1 = 47; 5.4 83. The last
 * opcode of 5.3/5.4, OP_EXTRAARG, has an empty case in lvm.c (lua_assert(0); vmbreak): gcc folds
 * it into the switch's default and the table ends one entry early (Debian's liblua5.3.so: 46). */
static unsigned dispatch_entries(enum lua_kind kind)
{
	switch (kind) {
	case LUA_KIND_PUC51: return 38 - 1;
	case LUA_KIND_PUC53: return 47 - 1;
	case LUA_KIND_PUC54: case LUA_KIND_PUC540: return 83 - 1;
	default: return 0;
	}
}

static const char *intern_reason(const char *text, const char *fallback)
{
	const char *out = fallback;
	if (pthread_mutex_lock(&reason_lock) != 0)
		return fallback;
	bool found = false;
	for (unsigned i = 0; i < reason_count && !found; i++) {
		if (strcmp(reason_slots[i], text) == 0) {
			out = reason_slots[i];
			found = true;
		}
	}
	if (!found && reason_count < REASON_SLOTS) {
		memcpy(reason_slots[reason_count], text, strlen(text) + 1);
		out = reason_slots[reason_count++];
	}
	pthread_mutex_unlock(&reason_lock);
	return out;
}

/* "Lua 5.2.4 is not supported" + detail. */
static enum lua_detect_result unsupported_release(const char **reason, const char *version,
						  const char *detail)
{
	static const char fallback[] = "this Lua release is not supported";
	char text[REASON_LEN];
	int n = snprintf(text, sizeof(text), "Lua %s is not supported%s", version, detail);
	*reason = n > 0 && (size_t)n < sizeof(text) ? intern_reason(text, fallback) : fallback;
	return LUA_DETECT_UNSUPPORTED;
}

/* ---- luaV_execute */

/* lua_interp.l_reg when L is in the frame (l_in_frame): no register, so that a reader that
 * ignored l_in_frame would find nothing rather than read an unrelated register. */
#define LUA_L_REG_NONE 0xff

struct exec_ctx {
	const struct elf_image *img;
	const struct cfi_table *cfi;
	const struct lua_syms *syms;
	struct x86_code code;
};

static bool has_function_bounds(const struct cfi_table *cfi)
{
	return cfi && cfi->count > 0 && cfi->function_count > 0;
}

static int derive_exec(const struct exec_ctx *x, enum lua_kind kind, uint64_t *start, uint64_t *end,
		       const char **reason)
{
	static const enum api_fn roots_order[] = {API_CALLK, API_CALL, API_PCALLK, API_PCALL,
						   API_CPCALL, API_RESUME};
	uint64_t roots[sizeof(roots_order) / sizeof(roots_order[0])];
	size_t n = 0;
	for (size_t i = 0; i < sizeof(roots_order) / sizeof(roots_order[0]); i++)
		if (x->syms->api[roots_order[i]] != 0)
			roots[n++] = x->syms->api[roots_order[i]];
	if (!has_function_bounds(x->cfi)) {
		*reason = "no call frame information to find luaV_execute's bounds";
		return -ENOENT;
	}
	struct lua_exec_search search = {
		.code = &x->code, .cfi = x->cfi, .read = read_vaddr, .read_ctx = x->img,
		.roots = roots, .root_count = n, .min_table_entries = dispatch_entries(kind),
	};
	return lua_find_execute(&search, start, end, reason);
}

/* luaV_execute from .symtab; an unsized symbol takes its end from the CFI. */
static int symtab_exec(const struct exec_ctx *x, uint64_t *start, uint64_t *end, const char **reason)
{
	*start = x->syms->exec_addr;
	if (x->syms->exec_size > 0 && x->syms->exec_size <= UINT64_MAX - *start) {
		*end = *start + x->syms->exec_size;
		return 0;
	}
	if (has_function_bounds(x->cfi) && x86_fn_end(x->cfi, *start, end))
		return 0;
	*reason = "luaV_execute in .symtab has no size and no FDE";
	return -ENOENT;
}

/* Where the function at [start, end) keeps the lua_State it was passed (runtime/puc/lua_state_home.c), as
 * struct lua_interp's reg / in_frame / cfa_off triple. */
static int state_home(const struct exec_ctx *x, uint64_t start, uint64_t end, uint8_t *reg,
		      uint8_t *in_frame, int16_t *cfa_off, const char **reason)
{
	struct lua_state_home home;
	if (lua_state_home(&x->code, x->cfi, start, end, &home, reason) != 0)
		return -ENOENT;
	*in_frame = home.in_frame;
	*reg = home.in_frame ? LUA_L_REG_NONE : home.dwarf_reg;
	*cfa_off = home.in_frame ? home.cfa_off : 0;
	return 0;
}

/* lua_resume's bounds and where it keeps the coroutine it resumes: ldo.c's unroll() and
 * finishCcall() run a resumed coroutine's interrupted frames from inside lua_resume, with no
 * luaV_execute of theirs on the C stack, and the BPF walker splices them at lua_resume's frame.
 * Without them (resume_start 0, *resume_problem says why) the VM is still walked, those frames
 * missing. */
static void locate_resume(const struct exec_ctx *x, struct lua_runtime *out)
{
	uint64_t start = x->syms->api[API_RESUME], end = 0;
	struct lua_interp *in = &out->interp;
	const char *reason = NULL;

	/* 5.1 ldo.c resume(): "luaV_execute(L, cast_int(L->ci - L->base_ci))" runs every Lua frame
	 * of a resumed coroutine in one activation (5.1 yields neither across C calls nor with a
	 * continuation): nothing is ever pending there. */
	if (out->interp.kind == LUA_KIND_PUC51)
		return;
	if (start == 0) {
		out->resume_problem = "lua_resume is not exported";
		return;
	}
	if (!has_function_bounds(x->cfi) || !x86_fn_end(x->cfi, start, &end)) {
		out->resume_problem = "lua_resume has no FDE";
		return;
	}
	if (state_home(x, start, end, &in->resume_l_reg, &in->resume_l_in_frame,
		       &in->resume_l_cfa_off, &reason) != 0) {
		out->resume_problem = "lua_resume keeps lua_State *L neither in a callee-saved register "
				      "nor in a slot of its frame";
		return;
	}
	in->resume_start = start;
	in->resume_end = end;
}

static enum lua_detect_result locate_vm(const struct elf_image *img, const struct cfi_table *cfi,
					const struct lua_syms *syms, struct lua_runtime *out,
					const char **reason)
{
	struct exec_ctx x = {.img = img, .cfi = cfi, .syms = syms};
	uint64_t entry = syms->exec_found ? syms->exec_addr
					  : (syms->api[API_CALLK] ? syms->api[API_CALLK]
								  : syms->api[API_CALL]);
	if (entry == 0)
		entry = syms->api[API_PCALLK] ? syms->api[API_PCALLK] : syms->api[API_PCALL];
	if (!x86_code_section_at(img, entry, &x.code)) {
		*reason = "the Lua C API is not in an executable section";
		return LUA_DETECT_UNSUPPORTED;
	}
	uint64_t start = 0, end = 0;
	int err = syms->exec_found ? symtab_exec(&x, &start, &end, reason)
				   : derive_exec(&x, out->interp.kind, &start, &end, reason);
	if (err)
		return LUA_DETECT_UNSUPPORTED;
	out->interp.exec_start = start;
	out->interp.exec_end = end;
	out->exec_from_symtab = syms->exec_found;
	if (state_home(&x, start, end, &out->interp.l_reg, &out->interp.l_in_frame,
		       &out->interp.l_cfa_off, reason) != 0)
		return LUA_DETECT_UNSUPPORTED;
	locate_resume(&x, out);
	return LUA_DETECT_OK;
}

/* ---- entry point */

static enum lua_detect_result identify(const struct elf_image *img, struct lua_runtime *out,
				       const char **reason)
{
	enum ident_result ident = find_ident(img, out->version);
	if (ident == IDENT_NONE) {
		/* Debian's liblua5.1-c++.so: C++ gives the unused const lua_ident internal linkage. */
		*reason = "the Lua C API is exported but no Lua ident string names the release";
		return LUA_DETECT_UNSUPPORTED;
	}
	if (ident == IDENT_MALFORMED) {
		*reason = "the Lua ident string names no release (\"$LuaVersion: Lua 5.x.y\")";
		return LUA_DETECT_UNSUPPORTED;
	}
	/* Walkers exist for 5.1, 5.3 and 5.4 only (enum lua_kind, bpf/abi/lua_abi.h). */
	if (strncmp(out->version, "5.1.", 4) != 0 && strncmp(out->version, "5.3.", 4) != 0 &&
	    strncmp(out->version, "5.4.", 4) != 0)
		return unsupported_release(reason, out->version, "");
	out->puc = lua_puc_version_find(out->version);
	if (!out->puc)
		return unsupported_release(reason, out->version, " (no layout table for this release)");
	out->interp.kind = out->puc->kind;
	out->interp.puc = out->puc->vm;
	return LUA_DETECT_OK;
}

/* A result other than OK leaves out with kind NONE and no layout, so nothing can load it by
 * mistake; the version and the luaV_execute range found so far stay for messages and tests. */
static void keep_diagnostics(struct lua_runtime *out)
{
	struct lua_runtime kept = {0};
	memcpy(kept.version, out->version, sizeof(kept.version));
	kept.interp.exec_start = out->interp.exec_start;
	kept.interp.exec_end = out->interp.exec_end;
	kept.exec_from_symtab = out->exec_from_symtab;
	*out = kept;
}

/* Where a detector's reason goes when its caller asks for none. */
static _Thread_local const char *unasked_reason;

bool lua_detect_start(const struct elf_image *img, void *out, size_t out_size, const char ***reason)
{
	if (!*reason)
		*reason = &unasked_reason;
	**reason = NULL;
	if (!out)
		return false;
	memset(out, 0, out_size);
	return img && img->elf;
}

enum lua_detect_result lua_runtime_detect(const struct elf_image *img, const struct cfi_table *cfi,
					  struct lua_runtime *out, const char **reason)
{
	if (!lua_detect_start(img, out, sizeof(*out), &reason))
		return LUA_DETECT_NONE;
	struct lua_syms syms;
	scan_symbols(img, &syms);
	if (syms.luajit || !has_lua_api(&syms))
		return LUA_DETECT_NONE;
	enum lua_detect_result r = identify(img, out, reason);
	if (r == LUA_DETECT_OK)
		r = locate_vm(img, cfi, &syms, out, reason);
	if (r != LUA_DETECT_OK)
		keep_diagnostics(out);
	return r;
}
