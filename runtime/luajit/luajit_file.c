/* SPDX-License-Identifier: MIT */
/* luajit_file.c - the file LuaJIT detection reads (luajit_internal.h struct file): the symbols it
 * looks for (the lua_* API, luaJIT_setmode, the exported luaopen_*), its code and data, and the
 * bounds of its functions. */
#include "runtime/luajit/luajit_internal.h"

#include <string.h>

#include "unwind/elf_symbols.h"

static const char *const api_names[API_COUNT] = {
	[API_SETMODE] = "luaJIT_setmode", [API_GETTOP] = "lua_gettop",
	[API_CALL] = "lua_call",          [API_PCALL] = "lua_pcall",
	[API_RESUME] = "lua_resume",      [API_CPCALL] = "lua_cpcall",
	[API_RESETTHREAD] = "lua_resetthread", [API_SETEXDATA] = "lua_setexdata",
};

static const struct unnamed_libs unnamed_libs[] = {
	{"luaopen_ffi", {"ffi.meta", "ffi.clib", "ffi.callback", "ffi"}},
	{"luaopen_io", {"io.method"}},
	{"luaopen_string_buffer", {"buffer.method", "buffer"}},
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

void luajit_scan_symbols(struct file *f) { elf_symbols_walk(f->img->elf, NULL, note_symbol_of, f); }

/* A library or module name at vaddr: NUL-terminated, 1..MAX_NAME-1 characters of [A-Za-z0-9_.]. */
bool luajit_read_name(const struct file *f, uint64_t vaddr, char out[MAX_NAME])
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

/* ---- function bounds (CFI) */

/* [start, *end) of an exported function: its symbol size, else its FDE; bounded by limit. */
bool luajit_function_range(const struct file *f, const struct fn_sym *sym, uint64_t limit,
			   uint64_t *end)
{
	uint64_t fde_start, fde_end;
	if (sym->addr == 0 || !in_text(f, sym->addr))
		return false;
	if (sym->size > 0 && sym->size <= limit) {
		*end = sym->addr + sym->size;
	} else if (sym->size == 0 && x86_fn_bounds(f->cfi, sym->addr, &fde_start, &fde_end) &&
		   fde_start == sym->addr && fde_end - fde_start <= limit) {
		*end = fde_end;
	} else {
		return false;
	}
	return in_text(f, *end - 1);
}
