/* SPDX-License-Identifier: MIT */
/* lua_detect_tool - drives runtime/lua_runtime.c and runtime/puc/lua_layouts.c for tests/lua_detect_test.py.
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
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/log.h"
#include "runtime/lua_runtime.h"
#include "runtime/puc/lua_layouts.h"
#include "tests/unit/support/hostile_elf.h"
#include "unwind/cfi_compile.h"
#include "unwind/elf_image.h"

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
		       "l_in_frame=%u l_cfa_off=%d resume_start=%#llx resume_end=%#llx "
		       "resume_l_reg=%u resume_l_in_frame=%u resume_l_cfa_off=%d from_symtab=%d "
		       "reason=%s\n",
		       argv[i], lua_detect_result_name(r), rt.version[0] ? rt.version : "-",
		       rt.interp.kind,
		       (unsigned long long)rt.interp.exec_start, (unsigned long long)rt.interp.exec_end,
		       rt.interp.l_reg, rt.interp.l_in_frame, rt.interp.l_cfa_off,
		       (unsigned long long)rt.interp.resume_start,
		       (unsigned long long)rt.interp.resume_end, rt.interp.resume_l_reg,
		       rt.interp.resume_l_in_frame, rt.interp.resume_l_cfa_off,
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

/* ---- hostile inputs (tests/unit/support/hostile_elf.h) */

/* Where L is, as an OK result must say: a callee-saved register, or a slot of the frame below
 * the return address (CFA - 8) with no register named. */
static bool l_home_valid(const struct lua_interp *in)
{
	if (in->l_in_frame)
		return in->l_in_frame == 1 && in->l_cfa_off <= -16 && in->l_reg >= 17;
	return in->l_cfa_off == 0 &&
	       (in->l_reg == 3 || in->l_reg == 6 || (in->l_reg >= 12 && in->l_reg <= 15));
}

/* hostile_detect_fn. This detector's part of the contract: the version string is terminated;
 * OK fills a layout of its kind, a range and where L is (l_home_valid). */
static int detect_hostile(const char *path, enum lua_detect_result *result,
			  const char **reason, bool *valid)
{
	struct lua_runtime rt;
	if (detect_file(path, &rt, result, reason) != 0)
		return -1;
	*valid = memchr(rt.version, '\0', sizeof(rt.version)) != NULL;
	if (*result == LUA_DETECT_OK)
		*valid = *valid && rt.puc && rt.interp.kind == rt.puc->kind &&
			 rt.interp.exec_start < rt.interp.exec_end && l_home_valid(&rt.interp);
	return 0;
}

/* Every byte of the code at the start of a window set to random values: the disassembler must
 * cope with garbage inside functions it follows. */
static void scramble_runs(struct hostile_run *h)
{
	for (unsigned i = 0; i < 24; i++) {
		memcpy(h->work, h->orig.data, h->orig.size);
		size_t at = (size_t)(xorshift64s_next(&h->rng) % h->orig.size);
		size_t len = 4096 + (size_t)(xorshift64s_next(&h->rng) % 65536);
		for (size_t k = at; k < h->orig.size && k < at + len; k++)
			h->work[k] = (uint8_t)xorshift64s_next(&h->rng);
		char what[64];
		snprintf(what, sizeof(what), "scramble %zu+%zu", at, len);
		hostile_try(h, what, h->work, h->orig.size);
	}
}

/* The release string rewritten: too long, dots misplaced, cut at the end of the data. */
static void ident_runs(struct hostile_run *h)
{
	static const char *const variants[] = {"5.4.44444444444444444", "5..4", ".5.4", "5.4.",
					       "5.2.4", "5.4.9", "6.0.0", "5", "5.4.4.4"};
	static const char *const prefixes[] = {"$LuaVersion: Lua ", "$Lua: Lua "};
	const struct blob *orig = &h->orig;
	for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
		const uint8_t *hit = memmem(orig->data, orig->size, prefixes[p], strlen(prefixes[p]));
		if (!hit)
			continue;
		size_t at = (size_t)(hit - orig->data) + strlen(prefixes[p]);
		for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
			size_t len = strlen(variants[v]);
			if (at + len + 1 > orig->size)
				continue;
			memcpy(h->work, orig->data, orig->size);
			memcpy(h->work + at, variants[v], len);
			h->work[at + len] = ' ';
			char what[64];
			snprintf(what, sizeof(what), "ident %s", variants[v]);
			hostile_try(h, what, h->work, orig->size);
		}
		/* The file ends right after the prefix. */
		hostile_try(h, "ident at end of file", orig->data, at);
	}
}

static int cmd_hostile(const char *file, const char *dir)
{
	struct hostile_run h;
	if (hostile_run_open(&h, file, dir, "lua_hostile", detect_hostile) != 0) {
		hostile_run_close(&h);
		return 1;
	}
	hostile_try(&h, "pristine", h.orig.data, h.orig.size);
	bool pristine_ok = h.st.ok == 1;
	hostile_truncations(&h);
	hostile_corruptions(&h, h.orig.size, 48, 64);
	hostile_corruptions(&h, 65536, 48, 16);
	scramble_runs(&h);
	hostile_section_corruptions(&h, 16);
	ident_runs(&h);
	bool contract_kept = hostile_report(&h);
	if (!pristine_ok)
		printf("FAIL the pristine copy was not detected\n");
	hostile_run_close(&h);
	return contract_kept && pristine_ok ? 0 : 1;
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
