/* SPDX-License-Identifier: MIT */
/* luajit_detect_tool - drives lua/luajit_detect.c for tests/luajit_detect_test.py.
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
#include <unistd.h>

#include "lua/luajit_detect.h"
#include "src/log.h"
#include "tests/test_files.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

static const char *result_name(enum lua_detect_result r)
{
	switch (r) {
	case LUA_DETECT_NONE: return "none";
	case LUA_DETECT_OK: return "ok";
	case LUA_DETECT_UNSUPPORTED: return "unsupported";
	}
	return "?";
}

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
		printf("result %s\nreason %s\n", result_name(r), reason ? reason : "-");
		if (r == LUA_DETECT_OK)
			print_runtime(&rt);
		printf("end\n");
		luajit_runtime_free(&rt);
	}
	return status;
}

/* ---- hostile inputs */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64* (Vigna 2014): deterministic, so failures reproduce. */
static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

#define KEPT_REASONS 48

struct hostile_stats {
	unsigned runs, ok, none, unsupported, unopenable, broken;
	const char *kept[KEPT_REASONS]; /* reasons are static strings callers keep */
	char kept_text[KEPT_REASONS][128];
	unsigned kept_count;
};

static void keep_reason(struct hostile_stats *st, const char *reason)
{
	for (unsigned i = 0; i < st->kept_count; i++)
		if (st->kept[i] == reason)
			return;
	if (st->kept_count < KEPT_REASONS && strlen(reason) < sizeof(st->kept_text[0])) {
		st->kept[st->kept_count] = reason;
		strcpy(st->kept_text[st->kept_count++], reason);
	}
}

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

static void try_blob(const char *what, const char *path, const uint8_t *data, size_t size,
		     struct hostile_stats *st)
{
	st->runs++;
	if (blob_write_file(path, data, size) != 0) {
		printf("FAIL %s: cannot write %s\n", what, path);
		st->broken++;
		return;
	}
	struct luajit_runtime rt;
	enum lua_detect_result r;
	const char *reason = NULL;
	if (detect_file(path, &rt, &r, &reason) != 0) {
		st->unopenable++;
		return;
	}
	bool good = true;
	if (r == LUA_DETECT_OK) {
		st->ok++;
		good = ok_valid(&rt);
	} else if (r == LUA_DETECT_UNSUPPORTED) {
		st->unsupported++;
		good = reason && reason[0] && !rt.ffnames;
		if (good)
			keep_reason(st, reason);
	} else if (r == LUA_DETECT_NONE) {
		st->none++;
		good = !rt.ffnames;
	} else {
		good = false;
	}
	if (!good) {
		printf("FAIL %s: result %s breaks the contract\n", what, result_name(r));
		st->broken++;
	}
	luajit_runtime_free(&rt);
}

static void corrupt_runs(const struct blob *orig, uint8_t *work, const char *path, size_t region,
			 unsigned copies, unsigned bytes, struct hostile_stats *st)
{
	if (region > orig->size)
		region = orig->size;
	for (unsigned i = 0; i < copies; i++) {
		memcpy(work, orig->data, orig->size);
		for (unsigned j = 0; j < bytes; j++)
			work[rng_next() % region] = (uint8_t)rng_next();
		char what[64];
		snprintf(what, sizeof(what), "corrupt %u (%zu bytes region)", i, region);
		try_blob(what, path, work, orig->size, st);
	}
}

/* [offset, offset + size) of a named section of the pristine file; false when absent. */
static bool section_extent(const char *file, const char *name, size_t *offset, size_t *size)
{
	struct elf_image img;
	if (elf_image_open(&img, file) != 0)
		return false;
	GElf_Shdr shdr;
	bool found = elf_image_section(&img, name, &shdr) && shdr.sh_type != SHT_NOBITS &&
		     shdr.sh_size > 0;
	if (found) {
		*offset = (size_t)shdr.sh_offset;
		*size = (size_t)shdr.sh_size;
	}
	elf_image_close(&img);
	return found;
}

/* Random bytes inside what detection reads: symbols, the version string and init data, the
 * FDEs, the API and interpreter code, the cf tables. A window of .text is also scrambled whole
 * at random places (the interpreter is 16 KiB of a 400 KiB .text: the copies aim at it too). */
static void section_runs(const char *file, const struct blob *orig, uint8_t *work, const char *path,
			 struct hostile_stats *st)
{
	static const char *const sections[] = {".dynsym", ".dynstr", ".symtab", ".strtab", ".rodata",
					       ".eh_frame_hdr", ".eh_frame", ".text", ".data.rel.ro"};
	for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++) {
		size_t off, size;
		if (!section_extent(file, sections[i], &off, &size) || off >= orig->size ||
		    size > orig->size - off)
			continue;
		for (unsigned copy = 0; copy < 24; copy++) {
			memcpy(work, orig->data, orig->size);
			unsigned bytes = copy < 8 ? 4 : copy < 16 ? 64 : 1024;
			for (unsigned j = 0; j < bytes; j++)
				work[off + (size_t)(rng_next() % size)] = (uint8_t)rng_next();
			char what[64];
			snprintf(what, sizeof(what), "%s corrupt %u", sections[i], copy);
			try_blob(what, path, work, orig->size, st);
		}
	}
}

/* Byte flips at an address range of the pristine file given as a file offset range: aimed at the
 * interpreter and the init data, where a flip most likely changes what is derived. */
static void aimed_runs(const struct blob *orig, uint8_t *work, const char *path, size_t off,
		       size_t size, const char *label, struct hostile_stats *st)
{
	if (off >= orig->size || size == 0 || size > orig->size - off)
		return;
	for (unsigned copy = 0; copy < 64; copy++) {
		memcpy(work, orig->data, orig->size);
		unsigned bytes = 1 + copy % 8;
		for (unsigned j = 0; j < bytes; j++)
			work[off + (size_t)(rng_next() % size)] ^= (uint8_t)(1u << (rng_next() % 8));
		char what[64];
		snprintf(what, sizeof(what), "%s flip %u", label, copy);
		try_blob(what, path, work, orig->size, st);
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

static int cmd_hostile(const char *file, const char *dir)
{
	struct blob orig;
	if (blob_read_file(file, &orig) != 0) {
		printf("FAIL cannot read %s\n", file);
		return 1;
	}
	uint8_t *work = malloc(orig.size);
	size_t path_len = strlen(dir) + 40;
	char *path = malloc(path_len);
	if (!work || !path) {
		free(work);
		free(path);
		free(orig.data);
		return 1;
	}
	snprintf(path, path_len, "%s/luajit_hostile.%ld", dir, (long)getpid());
	struct hostile_stats st = {0};
	struct luajit_runtime rt;
	enum lua_detect_result r = LUA_DETECT_NONE;
	const char *reason = NULL;
	bool pristine_ok = detect_file(file, &rt, &r, &reason) == 0 && r == LUA_DETECT_OK;
	size_t vm_off = 0, vm_size = 0;
	if (pristine_ok && file_offset(file, rt.interp.exec_start, &vm_off))
		vm_size = (size_t)(rt.interp.exec_end - rt.interp.exec_start);
	luajit_runtime_free(&rt);
	try_blob("pristine copy", path, orig.data, orig.size, &st);
	pristine_ok = pristine_ok && st.ok == 1;
	/* Truncations: at many points, dense near the start where the headers are. */
	for (size_t len = 0; len < orig.size; len = len < 4096 ? len + 61 : len * 9 / 8 + 1) {
		char what[64];
		snprintf(what, sizeof(what), "truncated to %zu", len);
		try_blob(what, path, orig.data, len, &st);
	}
	corrupt_runs(&orig, work, path, orig.size, 48, 64, &st);
	corrupt_runs(&orig, work, path, 65536, 48, 16, &st);
	section_runs(file, &orig, work, path, &st);
	aimed_runs(&orig, work, path, vm_off, vm_size, "interpreter", &st);
	size_t rodata_off, rodata_size;
	if (section_extent(file, ".rodata", &rodata_off, &rodata_size))
		aimed_runs(&orig, work, path, rodata_off, rodata_size, ".rodata", &st);
	for (unsigned i = 0; i < st.kept_count; i++) {
		if (strcmp(st.kept[i], st.kept_text[i]) != 0) {
			printf("FAIL reason \"%s\" changed into \"%s\"\n", st.kept_text[i], st.kept[i]);
			st.broken++;
		}
	}
	printf("%u runs: %u ok, %u none, %u unsupported, %u not ELF, %u contract failures\n", st.runs,
	       st.ok, st.none, st.unsupported, st.unopenable, st.broken);
	for (unsigned i = 0; i < st.kept_count; i++)
		printf("  reason seen: %s\n", st.kept_text[i]);
	if (!pristine_ok)
		printf("FAIL the pristine file was not detected\n");
	unlink(path);
	free(path);
	free(work);
	free(orig.data);
	return st.broken == 0 && pristine_ok ? 0 : 1;
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
