/* SPDX-License-Identifier: MIT */
/* luajit_detect_tool - drives runtime/luajit/luajit_detect.c for tests/luajit_detect_test.py.
 *
 *   luajit_detect_tool detect FILE...    per file: "file PATH", "result ok|none|unsupported",
 *                                        "reason ...", then on ok the description, the
 *                                        interpreter range, every struct luajit_layout field as
 *                                        "jit.FIELD VALUE", the userspace offsets, and one
 *                                        "ffname ID NAME" line per named fast function; "end"
 *   luajit_detect_tool hostile FILE DIR  detection on truncated and corrupted copies of FILE
 *                                        written to DIR: must never crash (run under ASan); exit
 *                                        1 when a result breaks the API contract (OK without a
 *                                        range, layout or base library names; UNSUPPORTED
 *                                        without a reason; a reason that changes afterwards) or
 *                                        the pristine copy is not detected */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "runtime/luajit/luajit_detect.h"
#include "tests/unit/support/hostile_elf.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

/* -1 when the file is not a readable ELF file. */
static int detect_file(const char *path, struct luajit_runtime *rt, enum lua_detect_result *result,
		       const char **reason)
{
	struct elf_image img;
	if (elf_image_open(&img, path) != 0)
		return -1;
	struct cfi_table cfi;
	if (cfi_table_build(&img, &cfi) != 0)
		memset(&cfi, 0, sizeof(cfi)); /* detection must cope with no CFI */
	*result = luajit_detect(&img, &cfi, rt, reason);
	cfi_table_free(&cfi);
	elf_image_close(&img);
	return 0;
}

#define JIT_FIELD(f) {#f, offsetof(struct luajit_layout, f), sizeof(((struct luajit_layout *)0)->f), \
		      (__typeof__(((struct luajit_layout *)0)->f))-1 < 0}

struct field {
	const char *name;
	size_t offset;
	size_t size;
	bool is_signed;
};

/* Every field of struct luajit_layout but the padding. */
static const struct field jit_fields[] = {
	JIT_FIELD(gc64),          JIT_FIELD(cframe_size),   JIT_FIELD(disp2g),
	JIT_FIELD(g_to_j),        JIT_FIELD(cframe_l),      JIT_FIELD(state_glref),
	JIT_FIELD(state_base),    JIT_FIELD(state_stack),   JIT_FIELD(state_cframe),
	JIT_FIELD(g_vmstate),     JIT_FIELD(g_cur_L),       JIT_FIELD(g_jit_base),
	JIT_FIELD(j_trace),       JIT_FIELD(trace_startpc), JIT_FIELD(func_ffid),
	JIT_FIELD(func_pc),       JIT_FIELD(proto_size),    JIT_FIELD(proto_sizebc),
};

/* The table names every byte of struct luajit_layout but its padding: a field added to the ABI
 * and not here fails every test run. */
static bool fields_cover_layout(void)
{
	size_t covered = sizeof(((struct luajit_layout *)0)->pad0) +
			 sizeof(((struct luajit_layout *)0)->pad1);
	for (size_t i = 0; i < sizeof(jit_fields) / sizeof(jit_fields[0]); i++)
		covered += jit_fields[i].size;
	return covered == sizeof(struct luajit_layout);
}

static long long field_value(const struct luajit_layout *l, const struct field *f)
{
	const uint8_t *p = (const uint8_t *)l + f->offset;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	switch (f->size) {
	case 1: memcpy(&u8, p, 1); return f->is_signed ? (long long)(int8_t)u8 : (long long)u8;
	case 2: memcpy(&u16, p, 2); return f->is_signed ? (long long)(int16_t)u16 : (long long)u16;
	default: memcpy(&u32, p, 4); return f->is_signed ? (long long)(int32_t)u32 : (long long)u32;
	}
}

static void print_runtime(const struct luajit_runtime *rt)
{
	printf("description %s\n", rt->description);
	printf("kind %u\n", rt->interp.kind);
	printf("exec_start %#llx\nexec_end %#llx\n", (unsigned long long)rt->interp.exec_start,
	       (unsigned long long)rt->interp.exec_end);
	for (size_t i = 0; i < sizeof(jit_fields) / sizeof(jit_fields[0]); i++)
		printf("jit.%s %lld\n", jit_fields[i].name, field_value(&rt->interp.jit, &jit_fields[i]));
	printf("proto_chunkname %u\nproto_firstline %u\nproto_numline %u\nproto_lineinfo %u\n",
	       rt->proto_chunkname, rt->proto_firstline, rt->proto_numline, rt->proto_lineinfo);
	printf("str_len %u\nstr_size %u\n", rt->str_len, rt->str_size);
	printf("ffname_count %u\n", rt->ffname_count);
	for (uint32_t i = 0; i < rt->ffname_count; i++)
		if (rt->ffnames[i])
			printf("ffname %u %s\n", i, rt->ffnames[i]);
}

static int cmd_detect(int argc, char **argv)
{
	int status = 0;
	if (!fields_cover_layout()) {
		printf("FAIL the tool's field table does not cover struct luajit_layout\n");
		return 1;
	}
	for (int i = 0; i < argc; i++) {
		struct luajit_runtime rt;
		enum lua_detect_result r;
		const char *reason = NULL;
		printf("file %s\n", argv[i]);
		if (detect_file(argv[i], &rt, &r, &reason) != 0) {
			printf("result error\nend\n");
			status = 1;
			continue;
		}
		printf("result %s\nreason %s\n", lua_detect_result_name(r), reason ? reason : "-");
		if (r == LUA_DETECT_OK)
			print_runtime(&rt);
		printf("end\n");
		luajit_runtime_free(&rt);
	}
	return status;
}

/* ---- hostile inputs (tests/unit/support/hostile_elf.h) */

/* An OK result: the interpreter range, a layout a walker can use, "assert" at ffid 2. */
static bool ok_valid(const struct luajit_runtime *rt)
{
	const struct luajit_layout *j = &rt->interp.jit;
	return rt->interp.kind == LUA_KIND_LUAJIT && rt->interp.exec_start < rt->interp.exec_end &&
	       j->gc64 <= 1 && j->cframe_size > 0 && j->disp2g < 0 && j->g_to_j > 0 &&
	       rt->ffname_count > 2 && rt->ffname_count <= 256 && rt->ffnames &&
	       !rt->ffnames[0] && !rt->ffnames[1] && rt->description[0] &&
	       memchr(rt->description, '\0', sizeof(rt->description));
}

/* hostile_detect_fn. This detector's part of the contract: OK as ok_valid says; no fast
 * function names otherwise. */
static int detect_hostile(const char *path, enum lua_detect_result *result,
			  const char **reason, bool *valid)
{
	struct luajit_runtime rt;
	if (detect_file(path, &rt, result, reason) != 0)
		return -1;
	*valid = *result == LUA_DETECT_OK ? ok_valid(&rt) : !rt.ffnames;
	luajit_runtime_free(&rt);
	return 0;
}

/* Byte flips at an address range of the pristine file given as a file offset range: aimed at the
 * interpreter and the init data, where a flip most likely changes what is derived. */
static void aimed_runs(struct hostile_run *h, size_t off, size_t size, const char *label)
{
	if (off >= h->orig.size || size == 0 || size > h->orig.size - off)
		return;
	for (unsigned copy = 0; copy < 64; copy++) {
		memcpy(h->work, h->orig.data, h->orig.size);
		unsigned bytes = 1 + copy % 8;
		for (unsigned j = 0; j < bytes; j++) {
			uint8_t bit = (uint8_t)(1u << (xorshift64s_next(&h->rng) % 8));
			h->work[off + (size_t)(xorshift64s_next(&h->rng) % size)] ^= bit;
		}
		char what[64];
		snprintf(what, sizeof(what), "%s flip %u", label, copy);
		hostile_try(h, what, h->work, h->orig.size);
	}
}

/* The file offset of ELF vaddr (trusted: the pristine file). */
static bool file_offset(const char *file, uint64_t vaddr, size_t *offset)
{
	struct elf_image img;
	if (elf_image_open(&img, file) != 0)
		return false;
	bool found = false;
	for (size_t i = 0; i < img.load_count && !found; i++) {
		const struct elf_segment *s = &img.loads[i];
		if (vaddr >= s->vaddr && vaddr - s->vaddr < s->filesz) {
			*offset = (size_t)(s->offset + (vaddr - s->vaddr));
			found = true;
		}
	}
	elf_image_close(&img);
	return found;
}

/* Whether the pristine file is detected as LuaJIT, and the file range of its interpreter then
 * ({0, 0} when that is not in the file). */
static bool interpreter_extent(const char *file, size_t *off, size_t *size)
{
	*off = *size = 0;
	struct luajit_runtime rt;
	enum lua_detect_result r = LUA_DETECT_NONE;
	const char *reason = NULL;
	if (detect_file(file, &rt, &r, &reason) != 0)
		return false;
	if (r == LUA_DETECT_OK && file_offset(file, rt.interp.exec_start, off))
		*size = (size_t)(rt.interp.exec_end - rt.interp.exec_start);
	luajit_runtime_free(&rt);
	return r == LUA_DETECT_OK;
}

static int cmd_hostile(const char *file, const char *dir)
{
	struct hostile_run h;
	if (hostile_run_open(&h, file, dir, "luajit_hostile", detect_hostile) != 0) {
		hostile_run_close(&h);
		return 1;
	}
	size_t vm_off, vm_size;
	bool pristine_ok = interpreter_extent(file, &vm_off, &vm_size);
	hostile_try(&h, "pristine copy", h.orig.data, h.orig.size);
	pristine_ok = pristine_ok && h.st.ok == 1;
	hostile_truncations(&h);
	hostile_corruptions(&h, h.orig.size, 48, 64);
	hostile_corruptions(&h, 65536, 48, 16);
	/* The interpreter is 16 KiB of a 400 KiB .text: the 1024-byte copies of .text aim at it too. */
	hostile_section_corruptions(&h, 24);
	aimed_runs(&h, vm_off, vm_size, "interpreter");
	size_t rodata_off, rodata_size;
	if (hostile_section_extent(file, ".rodata", &rodata_off, &rodata_size))
		aimed_runs(&h, rodata_off, rodata_size, ".rodata");
	bool contract_kept = hostile_report(&h);
	for (unsigned i = 0; i < h.st.kept_count; i++)
		printf("  reason seen: %s\n", h.st.kept_text[i]);
	if (!pristine_ok)
		printf("FAIL the pristine file was not detected\n");
	hostile_run_close(&h);
	return contract_kept && pristine_ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (getenv("LUAJIT_DETECT_VERBOSE"))
		lp_set_log_level(LOG_DEBUG);
	if (argc >= 3 && strcmp(argv[1], "detect") == 0)
		return cmd_detect(argc - 2, argv + 2);
	if (argc == 4 && strcmp(argv[1], "hostile") == 0)
		return cmd_hostile(argv[2], argv[3]); /* expect warnings about broken files */
	fprintf(stderr, "usage: %s detect FILE... | hostile FILE DIR\n", argv[0]);
	return 2;
}
