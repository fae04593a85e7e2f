/* SPDX-License-Identifier: MIT */
#include "unwind/elf_symbols.h"

#include <limits.h>
#include <string.h>

#include "lib/log.h"

/* NUL-terminated string at offset off of a string table, or NULL when it is out of bounds. */
static const char *string_at(const Elf_Data *strtab, uint64_t off, size_t *len)
{
	if (!strtab->d_buf || off >= strtab->d_size)
		return NULL;
	const char *start = (const char *)strtab->d_buf + off;
	const char *nul = memchr(start, '\0', strtab->d_size - off);
	if (!nul)
		return NULL;
	*len = (size_t)(nul - start);
	return start;
}

/* The string table a symbol table links to, or NULL when the link is bad. */
static Elf_Data *linked_strtab(Elf *elf, const GElf_Shdr *symtab_shdr)
{
	size_t shnum;
	if (elf_getshdrnum(elf, &shnum) != 0 || symtab_shdr->sh_link == SHN_UNDEF ||
	    symtab_shdr->sh_link >= shnum)
		return NULL;
	Elf_Scn *scn = elf_getscn(elf, symtab_shdr->sh_link);
	GElf_Shdr shdr;
	if (!scn || !gelf_getshdr(scn, &shdr) || shdr.sh_type != SHT_STRTAB ||
	    (shdr.sh_flags & SHF_COMPRESSED))
		return NULL;
	return elf_getdata(scn, NULL);
}

static int walk_table(Elf *elf, Elf_Scn *scn, const GElf_Shdr *shdr, const char *file,
		      elf_symbol_fn fn, void *ctx)
{
	Elf_Data *strtab = linked_strtab(elf, shdr);
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t entsize = gelf_fsize(elf, ELF_T_SYM, 1, EV_CURRENT);
	if (!strtab || !data || entsize == 0 || (shdr->sh_flags & SHF_COMPRESSED)) {
		if (file)
			lp_debug("%s: skipping unreadable symbol table (section %zu)", file,
				 elf_ndxscn(scn));
		return 0;
	}
	size_t count = data->d_size / entsize;
	if (count > INT_MAX) /* gelf_getsym takes an int index */
		count = INT_MAX;
	for (size_t i = 1; i < count; i++) { /* entry 0 is the reserved null symbol */
		GElf_Sym sym;
		if (!gelf_getsym(data, (int)i, &sym))
			break;
		struct elf_symbol symbol = {.sym = &sym, .from_symtab = shdr->sh_type == SHT_SYMTAB};
		if (sym.st_shndx == SHN_UNDEF ||
		    !(symbol.name = string_at(strtab, sym.st_name, &symbol.name_len)) ||
		    symbol.name_len == 0)
			continue;
		int stop = fn(ctx, &symbol);
		if (stop)
			return stop;
	}
	return 0;
}

int elf_symbols_walk(Elf *elf, const char *file, elf_symbol_fn fn, void *ctx)
{
	for (Elf_Scn *scn = elf_nextscn(elf, NULL); scn; scn = elf_nextscn(elf, scn)) {
		GElf_Shdr shdr;
		if (!gelf_getshdr(scn, &shdr) ||
		    (shdr.sh_type != SHT_SYMTAB && shdr.sh_type != SHT_DYNSYM))
			continue;
		int stop = walk_table(elf, scn, &shdr, file, fn, ctx);
		if (stop)
			return stop;
	}
	return 0;
}
