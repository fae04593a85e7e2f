/* SPDX-License-Identifier: MIT */
#include "src/frame_names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/unwind_abi.h"
#include "src/log.h"

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

int frame_namer_init(struct frame_namer *namer, const struct mapped_files *files, bool lua_lines)
{
	memset(namer, 0, sizeof(*namer));
	namer->files = files;
	namer->lua_lines = lua_lines;
	namer->lua = lua_symbolizer_new();
	return namer->lua ? 0 : -ENOMEM;
}

void frame_namer_free(struct frame_namer *namer)
{
	symbol_table_free(&namer->kernel);
	lua_symbolizer_free(namer->lua);
	free(namer->lua_procs);
	memset(namer, 0, sizeof(*namer));
}

int frame_namer_add_lua_process(struct frame_namer *namer, pid_t pid,
				const struct lua_puc_version *version)
{
	for (size_t i = 0; i < namer->lua_proc_count; i++) {
		if (namer->lua_procs[i].pid == pid) {
			namer->lua_procs[i].version = version;
			return 0;
		}
	}
	struct lua_process *grown =
		realloc(namer->lua_procs, (namer->lua_proc_count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	namer->lua_procs = grown;
	namer->lua_procs[namer->lua_proc_count++] = (struct lua_process){pid, version};
	return 0;
}

static const struct lua_puc_version *lua_version_of(const struct frame_namer *namer, pid_t pid)
{
	for (size_t i = 0; i < namer->lua_proc_count; i++)
		if (namer->lua_procs[i].pid == pid)
			return namer->lua_procs[i].version;
	return NULL;
}

static const struct lua_proto_info *lua_info(struct frame_namer *namer, pid_t tgid, uint64_t frame)
{
	const struct lua_puc_version *version = lua_version_of(namer, tgid);
	uint64_t proto = (frame & LUA_PROTO_MASK) << 3;

	return version ? lua_symbolizer_proto(namer->lua, tgid, version, proto) : NULL;
}

void frame_namer_prefetch(struct frame_namer *namer, pid_t tgid, uint64_t frame)
{
	if (frame >> FRAME_KIND_SHIFT == FRAME_LUA)
		lua_info(namer, tgid, frame);
}

static void name_lua(struct frame_namer *namer, pid_t tgid, uint64_t frame, struct strbuf *sb)
{
	const struct lua_proto_info *info = lua_info(namer, tgid, frame);
	uint32_t pc = (uint32_t)((frame >> LUA_PC_SHIFT) & LUA_PC_UNKNOWN);

	if (!info) {
		strbuf_append(sb, "L:?@?:0");
		return;
	}
	int line = namer->lua_lines && pc != LUA_PC_UNKNOWN ? lua_proto_line(info, pc)
							    : info->line_defined;
	strbuf_append(sb, "L:");
	append_symbol(sb, info->function);
	strbuf_append(sb, "@");
	append_symbol(sb, info->chunk);
	strbuf_appendf(sb, ":%d", line);
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
	else if (file && file->lua && lookup >= file->lua->interp.exec_start &&
		 lookup < file->lua->interp.exec_end)
		strbuf_append(sb, "luaV_execute"); /* found by lua/lua_runtime.c in a stripped VM */
	else if (file) /* one frame per function in a flame graph: its start, from the CFI */
		strbuf_appendf(sb, "%s+0x%" PRIx64, file->basename,
			       mapped_file_function_start(file, lookup));
	else
		strbuf_append(sb, "[unknown]");
}

void frame_name_user(struct frame_namer *namer, pid_t tgid, uint64_t frame, struct strbuf *sb)
{
	switch (frame >> FRAME_KIND_SHIFT) {
	case FRAME_NATIVE:
		name_native(namer, frame, sb);
		break;
	case FRAME_LUA:
		name_lua(namer, tgid, frame, sb);
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
