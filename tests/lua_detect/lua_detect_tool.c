/* SPDX-License-Identifier: MIT */
/* lua_detect_tool - drives lua/lua_runtime.c and lua/lua_layouts.c for tests/lua_detect_test.py.
 *
 *   lua_detect_tool detect FILE...     one line per file: result, version, kind, luaV_execute
 *                                      range, L register or frame slot (l_in_frame, l_cfa_off),
 *                                      whether .symtab named luaV_execute, reason
 *   lua_detect_tool layout VERSION     the layout table entry of VERSION, one "field value" a line
 *   lua_detect_tool table              consistency of the whole layout table (exit 1 on a problem)
 *   lua_detect_tool hostile FILE DIR   detection on truncated and corrupted copies of FILE written
 *                                      to DIR: must never crash (run under ASan), exit 1 on a
 *                                      result that breaks the API contract (an OK without a
 *                                      range, or without a callee-saved register or a frame slot
 *                                      below the return address, an UNSUPPORTED without a
 *                                      reason, a reason string that changes afterwards) */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tests/test_files.h"
#include "lua/lua_layouts.h"
#include "lua/lua_runtime.h"
#include "src/log.h"
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

/* Detection on one file; -1 when the file is not a readable ELF file. */
static int detect_file(const char *path, struct lua_runtime *rt, enum lua_detect_result *result,
		       const char **reason)
{
	struct elf_image img;
	if (elf_image_open(&img, path) != 0)
		return -1;
	struct cfi_table cfi;
	if (cfi_table_build(&img, &cfi) != 0)
		memset(&cfi, 0, sizeof(cfi)); /* detection must cope with no CFI */
	*result = lua_runtime_detect(&img, &cfi, rt, reason);
	cfi_table_free(&cfi);
	elf_image_close(&img);
	return 0;
}

static int cmd_detect(int argc, char **argv)
{
	int status = 0;
	for (int i = 0; i < argc; i++) {
		struct lua_runtime rt;
		enum lua_detect_result r;
		const char *reason = NULL;
		if (detect_file(argv[i], &rt, &r, &reason) != 0) {
			printf("file=%s result=error\n", argv[i]);
			status = 1;
			continue;
		}
		printf("file=%s result=%s version=%s kind=%u exec_start=%#llx exec_end=%#llx l_reg=%u "
		       "l_in_frame=%u l_cfa_off=%d from_symtab=%d reason=%s\n",
		       argv[i], result_name(r), rt.version[0] ? rt.version : "-", rt.interp.kind,
		       (unsigned long long)rt.interp.exec_start, (unsigned long long)rt.interp.exec_end,
		       rt.interp.l_reg, rt.interp.l_in_frame, rt.interp.l_cfa_off,
		       rt.exec_from_symtab ? 1 : 0, reason ? reason : "-");
	}
	return status;
}

/* ---- layout dump: every field of struct lua_puc_layout and struct lua_puc_proto_layout */

#define VM_FIELD(f) {#f, offsetof(struct lua_puc_layout, f), sizeof(((struct lua_puc_layout *)0)->f)}
#define PROTO_FIELD(f)                                                                           \
	{#f, offsetof(struct lua_puc_proto_layout, f), sizeof(((struct lua_puc_proto_layout *)0)->f)}

struct field {
	const char *name;
	size_t offset;
	size_t size;
};

static const struct field vm_fields[] = {
	VM_FIELD(state_l_G),     VM_FIELD(state_ci),          VM_FIELD(state_base_ci),
	VM_FIELD(state_savedpc), VM_FIELD(global_mainthread), VM_FIELD(ci_func),
	VM_FIELD(ci_previous),   VM_FIELD(ci_savedpc),        VM_FIELD(ci_callstatus),
	VM_FIELD(ci_size),       VM_FIELD(tvalue_tt),         VM_FIELD(lclosure_p),
	VM_FIELD(closure_isc),   VM_FIELD(proto_code),        VM_FIELD(cist_lua),
	VM_FIELD(cist_fresh),    VM_FIELD(tag_lua_closure),
};

static const struct field proto_fields[] = {
	PROTO_FIELD(proto_code),         PROTO_FIELD(proto_sizecode),
	PROTO_FIELD(proto_lineinfo),     PROTO_FIELD(proto_sizelineinfo),
	PROTO_FIELD(proto_abslineinfo),  PROTO_FIELD(proto_sizeabslineinfo),
	PROTO_FIELD(proto_linedefined),  PROTO_FIELD(proto_source),
	PROTO_FIELD(tstring_contents),   PROTO_FIELD(tstring_len),
	PROTO_FIELD(tstring_shrlen),     PROTO_FIELD(tstring_tt),
	PROTO_FIELD(tag_short_string),   PROTO_FIELD(instruction_size),
};

static unsigned long field_value(const void *base, const struct field *f)
{
	const uint8_t *p = (const uint8_t *)base + f->offset;
	if (f->size == 1)
		return *p;
	uint16_t v;
	memcpy(&v, p, sizeof(v));
	return v;
}

static void print_fields(const char *prefix, const void *base, const struct field *fields, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf("%s.%s %lu\n", prefix, fields[i].name, field_value(base, &fields[i]));
}

static int cmd_layout(const char *version)
{
	const struct lua_puc_version *v = lua_puc_version_find(version);
	if (!v) {
		fprintf(stderr, "no layout table entry for %s\n", version);
		return 1;
	}
	printf("kind %u\n", v->kind);
	print_fields("vm", &v->vm, vm_fields, sizeof(vm_fields) / sizeof(vm_fields[0]));
	print_fields("proto", &v->proto, proto_fields, sizeof(proto_fields) / sizeof(proto_fields[0]));
	return 0;
}

/* ---- whole-table consistency */

static enum lua_kind kind_for(const char *version)
{
	if (strncmp(version, "5.1.", 4) == 0)
		return LUA_KIND_PUC51;
	if (strncmp(version, "5.3.", 4) == 0)
		return LUA_KIND_PUC53;
	if (strcmp(version, "5.4.0") == 0 || strcmp(version, "5.4.1") == 0)
		return LUA_KIND_PUC540;
	if (strncmp(version, "5.4.", 4) == 0)
		return LUA_KIND_PUC54;
	return LUA_KIND_NONE;
}

static int cmd_table(void)
{
	unsigned count = 0;
	const struct lua_puc_version *all = lua_puc_versions(&count);
	int failures = 0;
	for (unsigned i = 0; i < count; i++) {
		const struct lua_puc_version *v = &all[i];
		if (lua_puc_version_find(v->version) != v) {
			printf("FAIL %s: duplicate entry\n", v->version);
			failures++;
		}
		if (v->kind != kind_for(v->version)) {
			printf("FAIL %s: kind %u, expected %u\n", v->version, v->kind, kind_for(v->version));
			failures++;
		}
		if (v->proto.instruction_size != 4 || v->vm.ci_size == 0 || v->vm.proto_code != v->proto.proto_code) {
			printf("FAIL %s: instruction size, CallInfo size or Proto.code inconsistent\n",
			       v->version);
			failures++;
		}
	}
	for (const char *const *missing = (const char *const[]){"5.2.4", "5.4.9", "5.0.3", NULL};
	     *missing; missing++) {
		if (lua_puc_version_find(*missing)) {
			printf("FAIL %s has an entry\n", *missing);
			failures++;
		}
	}
	printf("%u entries, %d problems\n", count, failures);
	return failures ? 1 : 0;
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

#define KEPT_REASONS 32

struct hostile_stats {
	unsigned runs, ok, none, unsupported, unopenable, broken;
	/* Reasons are static strings callers keep (src/mapped_files.c): none may change later. */
	const char *kept[KEPT_REASONS];
	char kept_text[KEPT_REASONS][160];
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

static void check_kept_reasons(struct hostile_stats *st)
{
	for (unsigned i = 0; i < st->kept_count; i++) {
		if (strcmp(st->kept[i], st->kept_text[i]) != 0) {
			printf("FAIL reason \"%s\" changed into \"%s\"\n", st->kept_text[i], st->kept[i]);
			st->broken++;
		}
	}
}

/* Where L is, as an OK result must say: a callee-saved register, or a slot of the frame below
 * the return address (CFA - 8) with no register named. */
static bool l_home_valid(const struct lua_interp *in)
{
	if (in->l_in_frame)
		return in->l_in_frame == 1 && in->l_cfa_off <= -16 && in->l_reg >= 17;
	return in->l_cfa_off == 0 &&
	       (in->l_reg == 3 || in->l_reg == 6 || (in->l_reg >= 12 && in->l_reg <= 15));
}

/* The API contract on any input: a known result; OK fills a range and where L is (l_home_valid);
 * UNSUPPORTED gives a reason; the version string is terminated. */
static void check_contract(const char *what, const struct lua_runtime *rt, enum lua_detect_result r,
			   const char *reason, struct hostile_stats *st)
{
	bool good = memchr(rt->version, '\0', sizeof(rt->version)) != NULL;
	if (r == LUA_DETECT_OK) {
		st->ok++;
		good = good && rt->puc && rt->interp.kind == rt->puc->kind &&
		       rt->interp.exec_start < rt->interp.exec_end && l_home_valid(&rt->interp);
	} else if (r == LUA_DETECT_UNSUPPORTED) {
		st->unsupported++;
		good = good && reason && reason[0];
		if (good)
			keep_reason(st, reason);
	} else if (r == LUA_DETECT_NONE) {
		st->none++;
	} else {
		good = false;
	}
	if (!good) {
		printf("FAIL %s: result %d breaks the contract\n", what, (int)r);
		st->broken++;
	}
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
	struct lua_runtime rt;
	enum lua_detect_result r;
	const char *reason = NULL;
	if (detect_file(path, &rt, &r, &reason) != 0) {
		st->unopenable++;
		return;
	}
	check_contract(what, &rt, r, reason, st);
}

/* Copies with bytes overwritten at random in one region (the whole file, or its first 64 KiB
 * where the headers, .dynsym and .rodata ident of a small library are). */
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

/* Every byte of the code at the start of a window set to random values: the disassembler must
 * cope with garbage inside functions it follows. */
static void scramble_runs(const struct blob *orig, uint8_t *work, const char *path,
			  struct hostile_stats *st)
{
	for (unsigned i = 0; i < 24; i++) {
		memcpy(work, orig->data, orig->size);
		size_t at = (size_t)(rng_next() % orig->size);
		size_t len = 4096 + (size_t)(rng_next() % 65536);
		for (size_t k = at; k < orig->size && k < at + len; k++)
			work[k] = (uint8_t)rng_next();
		char what[64];
		snprintf(what, sizeof(what), "scramble %zu+%zu", at, len);
		try_blob(what, path, work, orig->size, st);
	}
}

/* [offset, offset + size) of a named section in the pristine file (trusted input); false when
 * absent. */
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

/* Random bytes inside the sections detection reads: symbols, the ident, FDE starts, the code it
 * disassembles and the jump tables it follows. */
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
		for (unsigned copy = 0; copy < 16; copy++) {
			memcpy(work, orig->data, orig->size);
			unsigned bytes = copy < 8 ? 4 : 64;
			for (unsigned j = 0; j < bytes; j++)
				work[off + (size_t)(rng_next() % size)] = (uint8_t)rng_next();
			char what[64];
			snprintf(what, sizeof(what), "%s corrupt %u", sections[i], copy);
			try_blob(what, path, work, orig->size, st);
		}
	}
}

/* The release string rewritten: too long, dots misplaced, cut at the end of the data. */
static void ident_runs(const struct blob *orig, uint8_t *work, const char *path,
		       struct hostile_stats *st)
{
	static const char *const variants[] = {"5.4.44444444444444444", "5..4", ".5.4", "5.4.",
					       "5.2.4", "5.4.9", "6.0.0", "5", "5.4.4.4"};
	static const char *const prefixes[] = {"$LuaVersion: Lua ", "$Lua: Lua "};
	for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
		const uint8_t *hit = memmem(orig->data, orig->size, prefixes[p], strlen(prefixes[p]));
		if (!hit)
			continue;
		size_t at = (size_t)(hit - orig->data) + strlen(prefixes[p]);
		for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
			size_t len = strlen(variants[v]);
			if (at + len + 1 > orig->size)
				continue;
			memcpy(work, orig->data, orig->size);
			memcpy(work + at, variants[v], len);
			work[at + len] = ' ';
			char what[64];
			snprintf(what, sizeof(what), "ident %s", variants[v]);
			try_blob(what, path, work, orig->size, st);
		}
		/* The file ends right after the prefix. */
		try_blob("ident at end of file", path, orig->data, at, st);
	}
}

static int cmd_hostile(const char *file, const char *dir)
{
	struct blob orig;
	if (blob_read_file(file, &orig) != 0) {
		printf("FAIL cannot read %s\n", file);
		return 1;
	}
	uint8_t *work = malloc(orig.size);
	size_t path_len = strlen(dir) + 32;
	char *path = malloc(path_len);
	if (!work || !path) {
		free(work);
		free(path);
		free(orig.data);
		return 1;
	}
	snprintf(path, path_len, "%s/lua_hostile.%ld", dir, (long)getpid());
	struct hostile_stats st = {0};
	try_blob("pristine", path, orig.data, orig.size, &st);
	bool pristine_ok = st.ok == 1;
	/* Truncations: at many points, dense near the start where the headers are. */
	for (size_t len = 0; len < orig.size; len = len < 4096 ? len + 61 : len * 9 / 8 + 1) {
		char what[64];
		snprintf(what, sizeof(what), "truncated to %zu", len);
		try_blob(what, path, orig.data, len, &st);
	}
	corrupt_runs(&orig, work, path, orig.size, 48, 64, &st);
	corrupt_runs(&orig, work, path, 65536, 48, 16, &st);
	scramble_runs(&orig, work, path, &st);
	section_runs(file, &orig, work, path, &st);
	ident_runs(&orig, work, path, &st);
	check_kept_reasons(&st);
	printf("%u runs: %u ok, %u none, %u unsupported, %u not ELF, %u contract failures\n", st.runs,
	       st.ok, st.none, st.unsupported, st.unopenable, st.broken);
	if (!pristine_ok)
		printf("FAIL the pristine copy was not detected\n");
	unlink(path);
	free(path);
	free(work);
	free(orig.data);
	return st.broken == 0 && pristine_ok ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (getenv("LUA_DETECT_VERBOSE"))
		lp_set_log_level(LOG_DEBUG);
	if (argc >= 3 && strcmp(argv[1], "detect") == 0)
		return cmd_detect(argc - 2, argv + 2);
	if (argc == 3 && strcmp(argv[1], "layout") == 0)
		return cmd_layout(argv[2]);
	if (argc == 2 && strcmp(argv[1], "table") == 0)
		return cmd_table();
	if (argc == 4 && strcmp(argv[1], "hostile") == 0)
		return cmd_hostile(argv[2], argv[3]); /* expect many warnings about broken files */
	fprintf(stderr, "usage: %s detect FILE... | layout VERSION | table | hostile FILE DIR\n", argv[0]);
	return 2;
}
