/* SPDX-License-Identifier: MIT */
/* elf_symbols.h - the one walk over an ELF file's symbol tables (.symtab and .dynsym), for
 * runtime detection (runtime/) and native symbolization (symbolize/). Input is hostile: a table
 * whose string table link, entry size or data is bad is skipped, and every name is bounds-checked
 * against its string table. */
#ifndef LUA_PERF_ELF_SYMBOLS_H
#define LUA_PERF_ELF_SYMBOLS_H

#include <gelf.h>
#include <stdbool.h>
#include <stddef.h>

/* One defined, named symbol: name is NUL-terminated, name_len bytes long (not 0), and points into
 * libelf's data (valid while elf is open); from_symtab tells .symtab from .dynsym. */
struct elf_symbol {
	const GElf_Sym *sym;
	const char *name;
	size_t name_len;
	bool from_symtab;
};

/* Called for each symbol; nonzero stops the walk, which returns it. */
typedef int (*elf_symbol_fn)(void *ctx, const struct elf_symbol *symbol);

/* Calls fn for every defined (st_shndx not SHN_UNDEF) named symbol of every .symtab and .dynsym
 * section, in section order. file names the file in debug messages about skipped tables (NULL:
 * none). Returns 0, or the first nonzero value fn returned. */
int elf_symbols_walk(Elf *elf, const char *file, elf_symbol_fn fn, void *ctx);

#endif
