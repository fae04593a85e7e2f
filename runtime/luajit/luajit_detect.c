/* SPDX-License-Identifier: MIT */
/* luajit_detect.c - LuaJIT 2.1 detection and layout derivation from the binary (luajit_detect.h):
 * the method, the version ident and the entry point. The steps live beside it: luajit_file.c (the
 * file's symbols, code and data), luajit_vm_entries.c (the mode, the VM entries and what they
 * agree on), luajit_entry_path.c (one entry's path), luajit_vm_pass.c (the interpreter pass, the
 * per-mode tables), luajit_ffnames.c and luajit_lib_init.c (fast function names); what they share
 * is in luajit_internal.h.
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
 *      func_pc against the table of 6.
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
#include "runtime/luajit/luajit_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* ---- entry point */

/* The VM's layout: the mode lua_gettop shows, the VM entries, what their paths agree on, the
 * interpreter pass, the per-mode tables. vm gets the interpreter's range; NULL, or why not. */
static const char *derive_layout(const struct file *f, struct x86_disasm *d, struct vm *vm,
				 struct luajit_runtime *out)
{
	struct mode m;
	struct entry e[E_COUNT];
	uint64_t entries[E_COUNT];
	memset(e, 0, sizeof(e));
	const char *why = luajit_find_mode(f, d, &m);
	if (!why)
		why = luajit_locate_vm(f, d, vm, entries);
	for (unsigned i = 0; i < E_COUNT && !why; i++) {
		e[i].addr = entries[i];
		luajit_trace_entry(f, d, vm->end, &e[i]);
		if (e[i].cframe_size == 0)
			why = "a VM entry does not save a C frame";
	}
	if (!why)
		why = luajit_combine_entries(e, &m, vm);
	if (!why)
		why = luajit_read_interpreter(f, d, vm, &m);
	if (!why)
		why = luajit_fill_tables(vm, out);
	return why;
}

static const char *derive(const struct file *f, struct luajit_runtime *out)
{
	struct x86_disasm d;
	struct vm vm;
	if (x86_disasm_open(&d) != 0)
		return "the disassembler failed to start";
	memset(&vm, 0, sizeof(vm));
	const char *why = derive_layout(f, &d, &vm, out);
	if (!why)
		why = luajit_find_ffnames(f, &d, out);
	x86_disasm_close(&d);
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
	if (!lua_detect_start(img, out, sizeof(*out), &reason))
		return LUA_DETECT_NONE;
	struct file *f = calloc(1, sizeof(*f));
	if (!f) {
		*reason = "out of memory";
		return LUA_DETECT_UNSUPPORTED;
	}
	f->img = img;
	f->cfi = cfi;
	luajit_scan_symbols(f);
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
	luajit_ffnames_free(rt->ffnames, rt->ffname_count);
	memset(rt, 0, sizeof(*rt));
}
