/* SPDX-License-Identifier: MIT */
#include "src/frame_names.h"

#include <inttypes.h>
#include <string.h>

#include "bpf/unwind_abi.h"
#include "src/log.h"

void frame_namer_init(struct frame_namer *namer, const struct mapped_files *files)
{
	memset(namer, 0, sizeof(*namer));
	namer->files = files;
}

void frame_namer_free(struct frame_namer *namer)
{
	symbol_table_free(&namer->kernel);
}

/* Folded stacks separate frames with ';' and end with " count": keep names on one line and
 * free of separators. */
static void append_symbol(struct strbuf *sb, const char *name)
{
	size_t start = sb->len;

	strbuf_append(sb, name);
	for (size_t i = start; !sb->failed && i < sb->len; i++)
		if (sb->data[i] == ';' || sb->data[i] == '\n' || sb->data[i] == '\r')
			sb->data[i] = ':';
}

static void name_native(struct frame_namer *namer, uint64_t frame, struct strbuf *sb)
{
	uint32_t file_id = (uint32_t)((frame >> FRAME_FILE_SHIFT) & FRAME_FILE_MASK);
	uint64_t vaddr = frame & FRAME_ADDR_MASK;
	/* a return address points after the call: the caller is the instruction before it */
	uint64_t lookup = (frame & FRAME_RETADDR) && vaddr > 0 ? vaddr - 1 : vaddr;
	const struct mapped_file *file = mapped_files_get(namer->files, file_id);
	const struct symbol *sym = file ? symbol_table_lookup(&file->symbols, lookup) : NULL;

	if (sym)
		append_symbol(sb, sym->name);
	else if (file)
		strbuf_appendf(sb, "%s+0x%" PRIx64, file->basename, lookup);
	else
		strbuf_append(sb, "[unknown]");
}

void frame_name_user(struct frame_namer *namer, uint64_t frame, struct strbuf *sb)
{
	switch (frame >> FRAME_KIND_SHIFT) {
	case FRAME_NATIVE:
		name_native(namer, frame, sb);
		break;
	case FRAME_ANON:
		strbuf_append(sb, "[anon]");
		break;
	default:
		strbuf_append(sb, "[unknown]");
		break;
	}
}

void frame_name_kernel(struct frame_namer *namer, uint64_t addr, struct strbuf *sb)
{
	if (namer->kernel_state == 0) {
		namer->kernel_state = symbol_table_load_kallsyms(&namer->kernel) == 0 ? 1 : -1;
		if (namer->kernel_state < 0)
			lp_warn("kernel symbols unavailable (/proc/kallsyms): kernel frames unnamed");
	}
	const struct symbol *sym = namer->kernel_state > 0 ? symbol_table_lookup(&namer->kernel, addr) : NULL;

	if (sym)
		append_symbol(sb, sym->name);
	else
		strbuf_appendf(sb, "0x%" PRIx64, addr);
	strbuf_append(sb, "_[k]");
}
