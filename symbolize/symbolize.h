/* SPDX-License-Identifier: MIT */
/* symbolize.h - names for addresses in ELF files (.symtab, .dynsym, separate debug files found by
 * build-id under /usr/lib/debug/.build-id or by .gnu_debuglink) and in the kernel (/proc/kallsyms). */
#ifndef LUA_PERF_SYMBOLIZE_H
#define LUA_PERF_SYMBOLIZE_H

#include <stddef.h>
#include <stdint.h>

#include "unwind/elf_image.h"

struct symbol {
	uint64_t addr;
	uint64_t size;
	const char *name;  /* points into the table's string storage */
};

/* Names longer than this are cut: a file's symbols may all name one long string, and each
 * symbol gets its own copy, so without a cap a file of n symbols and an L-byte string table would
 * take n * L bytes; with it, at most SYMBOL_NAME_MAX + 1 bytes a symbol (and a symbol is 24 bytes
 * of the file). Long C++ names still fit whole. */
#define SYMBOL_NAME_MAX 4096

struct symbol_table {
	struct symbol *syms;  /* sorted by addr */
	size_t count;
	char *strings;        /* owned storage for the names */
	size_t strings_len;
};

/* Load function symbols of the ELF at `path` (already opened as img) plus its separate debug file
 * if one is installed. root is the filesystem root to search debug files under ("" or "/" for the
 * host; /proc/PID/root for a container), every path resolved inside it (symlinks included);
 * `path` is the file's path inside root, or a host path that starts with root. Returns 0
 * (possibly with 0 symbols) or a negative errno. */
int symbol_table_load_elf(struct symbol_table *table, const struct elf_image *img, const char *path,
			  const char *root);
/* Kernel symbols from /proc/kallsyms (needs root to see real addresses). */
int symbol_table_load_kallsyms(struct symbol_table *table);
void symbol_table_free(struct symbol_table *table);
/* The symbol containing addr: within [addr, addr+size) when size is known, otherwise the nearest
 * symbol at or below addr provided addr is not past the next symbol. NULL when none. */
const struct symbol *symbol_table_lookup(const struct symbol_table *table, uint64_t addr);

#endif
