/* SPDX-License-Identifier: MIT */
/* fuzz_symbols.c - symbol tables (symbolize/symbolize.c: .symtab, .dynsym, their string tables,
 * versioned names, the entry point) on any ELF input. Debug files are searched under an empty
 * root, so only the input's own tables count. A table that loads is sorted by address, every
 * name lies in its string storage, and every symbol's address finds a symbol at or below it. */
#include <stdlib.h>
#include <string.h>

#include "symbolize/symbolize.h"
#include "tests/fuzz/fuzz_elf_input.h"
#include "tests/fuzz/fuzz_harness.h"

/* One empty directory for the whole run: nothing under it is a debug file. */
static const char *empty_root(void)
{
	static char *root;
	if (!root) {
		static char name[] = "/tmp/lua-perf-fuzz-root-XXXXXX";
		root = mkdtemp(name);
		FUZZ_ASSERT(root != NULL, "mkdtemp %s", name);
	}
	return root;
}

static void check_names(const struct symbol_table *t)
{
	for (size_t i = 0; i < t->count; i++) {
		const char *name = t->syms[i].name;
		FUZZ_ASSERT(name >= t->strings && name < t->strings + t->strings_len,
			    "symbol %zu's name outside the table's strings", i);
		size_t room = (size_t)(t->strings + t->strings_len - name);
		FUZZ_ASSERT(memchr(name, '\0', room) != NULL, "symbol %zu's name not terminated", i);
	}
}

static void check_order_and_lookups(const struct symbol_table *t)
{
	for (size_t i = 0; i < t->count; i++) {
		if (i > 0)
			FUZZ_ASSERT(t->syms[i - 1].addr <= t->syms[i].addr, "symbols %zu and %zu out of order",
				    i - 1, i);
		const struct symbol *found = symbol_table_lookup(t, t->syms[i].addr);
		FUZZ_ASSERT(found && found->addr <= t->syms[i].addr,
			    "no symbol at or below symbol %zu's address %#llx", i,
			    (unsigned long long)t->syms[i].addr);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct elf_image img;
	if (fuzz_elf_open(&img, data, size) != 0)
		return 0;
	struct symbol_table table;
	if (symbol_table_load_elf(&table, &img, "/fuzz-elf", empty_root()) == 0) {
		check_names(&table);
		check_order_and_lookups(&table);
		symbol_table_free(&table);
	}
	elf_image_close(&img);
	return 0;
}
