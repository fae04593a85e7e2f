/* SPDX-License-Identifier: MIT */
#include "profiler/frame_names.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "bpf/abi/unwind_abi.h"
#include "lib/log.h"
#include "output/folded_text.h"
#include "profiler/syscall_name.h"
#include "runtime/luajit/luajit_detect.h"

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
				const struct lua_runtime *runtime)
{
	for (size_t i = 0; i < namer->lua_proc_count; i++) {
		if (namer->lua_procs[i].pid == pid) {
			namer->lua_procs[i].runtime = runtime;
			return 0;
		}
	}
	struct lua_process *grown =
		realloc(namer->lua_procs, (namer->lua_proc_count + 1) * sizeof(*grown));
	if (!grown)
		return -ENOMEM;
	namer->lua_procs = grown;
	namer->lua_procs[namer->lua_proc_count++] = (struct lua_process){pid, runtime};
	return 0;
}

void frame_namer_forget(struct frame_namer *namer, const pid_t *pids, size_t count)
{
	size_t kept = 0;

	for (size_t i = 0; i < namer->lua_proc_count; i++) {
		bool listed = false;

		for (size_t j = 0; j < count && !listed; j++)
			listed = namer->lua_procs[i].pid == pids[j];
		if (!listed)
			namer->lua_procs[kept++] = namer->lua_procs[i];
	}
	namer->lua_proc_count = kept;
	lua_symbolizer_forget(namer->lua, pids, count);
}

static const struct lua_runtime *lua_runtime_of(const struct frame_namer *namer, pid_t pid)
{
	for (size_t i = 0; i < namer->lua_proc_count; i++)
		if (namer->lua_procs[i].pid == pid)
			return namer->lua_procs[i].runtime;
	return NULL;
}

static const struct lua_proto_info *lua_info(struct frame_namer *namer, pid_t tgid, uint64_t frame)
{
	const struct lua_runtime *rt = lua_runtime_of(namer, tgid);
	uint64_t proto = (frame & LUA_PROTO_MASK) << 3;

	if (!rt)
		return NULL;
	if (rt->jit)
		return lua_symbolizer_luajit_proto(namer->lua, tgid, rt->jit, proto);
	return lua_symbolizer_proto(namer->lua, tgid, rt->puc, proto);
}

static bool is_lua_function_frame(uint64_t frame)
{
	uint64_t kind = frame >> FRAME_KIND_SHIFT;

	return kind == FRAME_LUA || kind == FRAME_LUA_JIT;
}

bool frame_namer_is_replaced_caller(struct frame_namer *namer, pid_t tgid, uint64_t frame,
				    uint64_t newer)
{
	uint32_t pc = (uint32_t)((frame >> LUA_PC_SHIFT) & LUA_PC_UNKNOWN);

	if (frame >> FRAME_KIND_SHIFT != FRAME_LUA || newer >> FRAME_KIND_SHIFT != FRAME_LUA ||
	    pc == LUA_PC_UNKNOWN)
		return false;
	return lua_proto_is_tail_call(lua_info(namer, tgid, frame), pc);
}

void frame_namer_prefetch(struct frame_namer *namer, pid_t tgid, uint64_t frame)
{
	if (is_lua_function_frame(frame))
		lua_info(namer, tgid, frame);
}

/* `L:string.format@builtin`, named by the ffid table of the LuaJIT build in the frame. */
static void name_lua_fast(struct frame_namer *namer, uint64_t frame, struct strbuf *sb)
{
	uint32_t file_id = (uint32_t)((frame >> LUA_FAST_FILE_SHIFT) & LUA_FAST_FILE_MASK);
	uint32_t ffid = (uint32_t)(frame & 0xff);
	const struct mapped_file *file = mapped_files_get(namer->files, file_id);
	const struct luajit_runtime *jit = file && file->lua ? file->lua->jit : NULL;

	strbuf_append(sb, "L:");
	if (jit && ffid < jit->ffname_count && jit->ffnames[ffid])
		folded_frame_append(sb, jit->ffnames[ffid]);
	else
		strbuf_appendf(sb, "builtin#%u", ffid);
	strbuf_append(sb, "@builtin");
}

static void name_lua(struct frame_namer *namer, pid_t tgid, uint64_t frame, struct strbuf *sb,
		     struct frame_origin *origin)
{
	const struct lua_proto_info *info = lua_info(namer, tgid, frame);
	uint32_t pc = (uint32_t)((frame >> LUA_PC_SHIFT) & LUA_PC_UNKNOWN);

	if (!info) {
		strbuf_append(sb, frame >> FRAME_KIND_SHIFT == FRAME_LUA_JIT ? "L:?@?:0_[j]" : "L:?@?:0");
		namer->lua_unnamed++;
		return;
	}
	int line = namer->lua_lines && pc != LUA_PC_UNKNOWN ? lua_proto_line(info, pc)
							    : info->line_defined;
	origin->start_line = info->line_defined > 0 ? (uint32_t)info->line_defined : 0;
	strbuf_append(sb, "L:");
	folded_frame_append(sb, info->function);
	strbuf_append(sb, "@");
	folded_frame_append(sb, info->chunk);
	strbuf_appendf(sb, ":%d", line);
	if (frame >> FRAME_KIND_SHIFT == FRAME_LUA_JIT)
		strbuf_append(sb, "_[j]");
}

/* "file+0xOFFSET", the file's name made a frame (a target names its files: any bytes). */
static void append_file_offset(struct strbuf *sb, const struct mapped_file *file, uint64_t offset)
{
	folded_frame_append(sb, file->basename);
	strbuf_appendf(sb, "+0x%" PRIx64, offset);
}

static void name_native(struct frame_namer *namer, uint64_t frame, struct strbuf *sb,
			struct frame_origin *origin)
{
	uint32_t file_id = (uint32_t)((frame >> FRAME_FILE_SHIFT) & FRAME_FILE_MASK);
	uint64_t vaddr = frame & FRAME_ADDR_MASK;
	/* a return address points after the call: the caller is the instruction before it */
	uint64_t lookup = (frame & FRAME_RETADDR) && vaddr > 0 ? vaddr - 1 : vaddr;
	const struct mapped_file *file = mapped_files_get(namer->files, file_id);
	const struct symbol *sym = file ? symbol_table_lookup(&file->symbols, lookup) : NULL;

	bool in_vm = file && file->lua && lookup >= file->lua->interp.exec_start &&
		     lookup < file->lua->interp.exec_end;

	if (file)
		origin->file = file_id;

	/* LuaJIT's interpreter is one name whatever its labels (lj_BC_*, lj_ff_*, lj_vm_*) */
	if (in_vm && file->lua->jit)
		strbuf_append(sb, "lj_vm");
	else if (sym)
		folded_frame_append(sb, sym->name);
	else if (in_vm) /* found by runtime/lua_runtime.c, also in stripped files */
		strbuf_append(sb, "luaV_execute");
	else if (file) /* one frame per function in a flame graph: its start, from the CFI */
		append_file_offset(sb, file, mapped_file_function_start(file, lookup));
	else
		strbuf_append(sb, "[unknown]");
}

/* [preempted], [blocked: read], [blocked uninterruptible], ... (bpf/lib/off_cpu.bpf.h) */
static void name_off_cpu_reason(uint64_t frame, struct strbuf *sb)
{
	uint64_t reason = (frame >> OFF_CPU_REASON_SHIFT) & 3;
	int syscall = (int)(frame & OFF_CPU_SYSCALL_MASK) - 1;
	const char *name = syscall_name(syscall);

	if (reason == OFF_CPU_PREEMPTED) {
		strbuf_append(sb, "[preempted]");
		return;
	}
	strbuf_append(sb, reason == OFF_CPU_UNINTERRUPTIBLE ? "[blocked uninterruptible" : "[blocked");
	if (name)
		strbuf_appendf(sb, ": %s", name);
	else if (syscall >= 0)
		strbuf_appendf(sb, ": system call %d", syscall);
	strbuf_append(sb, "]");
}

static void name_user(struct frame_namer *namer, pid_t tgid, uint64_t frame, struct strbuf *sb,
		      struct frame_origin *origin)
{
	switch (frame >> FRAME_KIND_SHIFT) {
	case FRAME_NATIVE:
		name_native(namer, frame, sb, origin);
		break;
	case FRAME_LUA:
	case FRAME_LUA_JIT:
		name_lua(namer, tgid, frame, sb, origin);
		break;
	case FRAME_LUA_FAST:
		name_lua_fast(namer, frame, sb);
		break;
	case FRAME_ANON:
		strbuf_append(sb, "[anon]");
		break;
	case FRAME_OFF_CPU:
		name_off_cpu_reason(frame, sb);
		break;
	default:
		strbuf_append(sb, "[unknown]");
		break;
	}
}

void frame_namer_take_kernel(struct frame_namer *namer, struct symbol_table *kernel, int rc)
{
	if (namer->kernel_state != 0) { /* read already */
		symbol_table_free(kernel);
		return;
	}
	namer->kernel = *kernel;
	memset(kernel, 0, sizeof(*kernel));
	namer->kernel_state = rc == 0 ? 1 : -1;
	if (namer->kernel_state < 0)
		lp_warn("kernel symbols unavailable (/proc/kallsyms): kernel frames unnamed");
}

/* Read the kernel's symbols now, if no loading thread did. */
static void load_kernel_symbols(struct frame_namer *namer)
{
	struct symbol_table kernel = {0};

	if (namer->kernel_state == 0)
		frame_namer_take_kernel(namer, &kernel, symbol_table_load_kallsyms(&kernel));
}

/* The kernel symbol holding addr (a full kernel address), or NULL. */
static const struct symbol *kernel_symbol(struct frame_namer *namer, uint64_t addr)
{
	load_kernel_symbols(namer);
	return namer->kernel_state > 0 ? symbol_table_lookup(&namer->kernel, addr) : NULL;
}

static void name_kernel(struct frame_namer *namer, uint64_t addr, struct strbuf *sb)
{
	const struct symbol *sym = kernel_symbol(namer, addr);

	if (sym)
		folded_frame_append(sb, sym->name);
	else
		strbuf_appendf(sb, "0x%" PRIx64, addr);
	strbuf_append(sb, "_[k]");
}

bool frame_namer_is_tracing(struct frame_namer *namer, uint64_t frame)
{
	static const char *const prefixes[] = {"bpf_prog_", "bpf_trace_run", "__bpf_trace_",
					       "__traceiter_", "bpf_trampoline_"};

	if (frame >> FRAME_KIND_SHIFT != FRAME_KERNEL)
		return false;
	const struct symbol *sym = kernel_symbol(namer, frame | ~FRAME_KERNEL_MASK);
	for (size_t i = 0; sym && i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(sym->name, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

void frame_name(struct frame_namer *namer, pid_t tgid, uint64_t frame, struct strbuf *sb)
{
	struct frame_origin origin = {.file = FRAME_ORIGIN_NO_FILE};
	size_t start = sb->len;

	if (frame >> FRAME_KIND_SHIFT == FRAME_KERNEL)
		name_kernel(namer, frame | ~FRAME_KERNEL_MASK, sb);
	else
		name_user(namer, tgid, frame, sb, &origin);
	if (namer->origins && !sb->failed && sb->len > start)
		frame_origins_note(namer->origins, sb->data + start, sb->len - start, origin);
}

uint32_t recorded_frame_count(const struct stack_trace *trace)
{
	return trace->len < MAX_STACK_FRAMES ? trace->len : MAX_STACK_FRAMES;
}

void frame_names_of_trace(struct frame_namer *namer, pid_t tgid, const struct stack_trace *trace,
			  struct strbuf *sb)
{
	uint32_t count = recorded_frame_count(trace);

	for (uint32_t i = count; i-- > 0;) {
		if (i > 0 && frame_namer_is_replaced_caller(namer, tgid, trace->frames[i],
							    trace->frames[i - 1]))
			continue;
		if (sb->len)
			strbuf_append(sb, ";");
		frame_name(namer, tgid, trace->frames[i], sb);
	}
}
