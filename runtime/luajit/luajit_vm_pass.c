/* SPDX-License-Identifier: MIT */
/* luajit_vm_pass.c - one linear pass over the interpreter (g->vmstate stores, g->jit_base, the
 * jit_State and J->trace: luajit_detect.c, 5.), and the fields taken from a table per mode
 * (GCfuncC, GCproto, GCtrace, GCstr: luajit_detect.c, 6.). */
#include "runtime/luajit/luajit_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- one pass over the interpreter */

enum summary_kind {
	S_OTHER,
	S_LEA_ARG1,      /* lea CARG1, [DISPATCH + disp] */
	S_LOAD_DISPATCH, /* mov reg, [DISPATCH + disp] */
	S_LOAD_INDEXED,  /* mov r, [base + index * scale] */
};

struct summary {
	uint8_t kind;
	uint8_t reg;   /* S_LOAD_DISPATCH: the register loaded; S_LOAD_INDEXED: the base */
	uint8_t scale;
	int64_t disp;
};

struct window {
	struct summary items[WINDOW];
	unsigned next;  /* ring position of the next item */
	unsigned count;
};

static void window_push(struct window *w, struct summary s)
{
	w->items[w->next] = s;
	w->next = (w->next + 1) % WINDOW;
	if (w->count < WINDOW)
		w->count++;
}

/* The k-th most recent item (k = 0: the last one). */
static const struct summary *window_back(const struct window *w, unsigned k)
{
	if (k >= w->count)
		return NULL;
	return &w->items[(w->next + WINDOW - 1 - k) % WINDOW];
}

#define MAX_BASE_STORES 8u
#define MAX_SEEN 1024u

struct vm_pass {
	unsigned vmstate_stores;
	bool vmstate_bad;
	struct obs zero_store;   /* mov [DISPATCH + DISPATCH_GL(jit_base)], 0 */
	struct obs disp2j;       /* the lea CARG1 right before it */
	unsigned base_store_count;
	int64_t base_store_disp[MAX_BASE_STORES];  /* mov [DISPATCH + d], BASE */
	int64_t base_store_trace[MAX_BASE_STORES]; /* the J->trace load before it, or INT64_MIN */
	/* Every lea CARG1, [DISPATCH + d] and mov r, [DISPATCH + d] (up to MAX_SEEN): the values
	 * derived from one site are checked against the other sites that use them. */
	int64_t lea_arg1[MAX_SEEN], loads[MAX_SEEN];
	unsigned lea_arg1_count, load_count;
};

static unsigned count_of(const int64_t *v, unsigned n, int64_t value)
{
	unsigned count = 0;
	for (unsigned i = 0; i < n; i++)
		count += v[i] == value;
	return count;
}

/* BC_JLOOP: mov RA, [DISPATCH+DISPATCH_J(trace)]; mov TRACE:RD, [RA+RD*scale] a few
 * instructions before. The DISPATCH offset loaded, or INT64_MIN. */
static int64_t trace_load_before(const struct window *w, unsigned scale)
{
	for (unsigned k = 0; k < w->count; k++) {
		const struct summary *s = window_back(w, k);
		if (s->kind != S_LOAD_INDEXED || s->scale != scale)
			continue;
		for (unsigned j = k + 1; j < w->count; j++) {
			const struct summary *l = window_back(w, j);
			if (l->kind == S_LOAD_DISPATCH && l->reg == s->reg)
				return l->disp;
		}
	}
	return INT64_MIN;
}

static void pass_store(struct vm_pass *ps, const struct vm *vm, const struct mode *m,
		       const struct window *w, const cs_x86_op *dst, const cs_x86_op *src,
		       int64_t disp)
{
	uint8_t ws = 0;
	int64_t imm = 0;
	if (x86_imm_operand(src, dst->size, &imm)) {
		if (dst->size == 4 && imm < 0) { /* set_vmstate */
			ps->vmstate_stores++;
			if (disp != vm->vmstate_disp || imm < -16)
				ps->vmstate_bad = true;
		} else if (imm == 0 && dst->size == m->ptr) {
			observe(&ps->zero_store, disp, dst->size);
			const struct summary *prev = window_back(w, 0);
			if (prev && prev->kind == S_LEA_ARG1)
				observe(&ps->disp2j, prev->disp, 8);
		}
		return;
	}
	if (x86_reg_operand(src, &ws) == X86_GPR_DX && ws == m->ptr &&
	    ps->base_store_count < MAX_BASE_STORES) {
		ps->base_store_disp[ps->base_store_count] = disp;
		ps->base_store_trace[ps->base_store_count++] = trace_load_before(w, m->gc64 ? 8 : 4);
	}
}

static struct summary summarize(const struct vm *vm, const cs_insn *insn)
{
	struct summary s = {S_OTHER, 0, 0, 0};
	const cs_x86_op *dst = x86_operand(insn, 0), *src = x86_operand(insn, 1);
	uint8_t wd = 0;
	int64_t disp = 0;
	int rd = x86_reg_operand(dst, &wd);
	if (rd < 0 || !src || src->type != X86_OP_MEM)
		return s;
	if (x86_simple_mem(src, &disp) == vm->dispatch_reg) {
		if (insn->id == X86_INS_LEA && rd == X86_GPR_DI)
			s = (struct summary){S_LEA_ARG1, (uint8_t)rd, 0, disp};
		else if (insn->id == X86_INS_MOV)
			s = (struct summary){S_LOAD_DISPATCH, (uint8_t)rd, 0, disp};
	} else if (insn->id == X86_INS_MOV && src->mem.index != X86_REG_INVALID && src->mem.disp == 0 &&
		   src->mem.segment == X86_REG_INVALID && x86_gpr_of(src->mem.base, NULL) >= 0) {
		s = (struct summary){S_LOAD_INDEXED, (uint8_t)x86_gpr_of(src->mem.base, NULL),
				     (uint8_t)src->mem.scale, 0};
	}
	return s;
}

static int scan_vm(const struct file *f, struct x86_disasm *d, const struct vm *vm,
		   const struct mode *m, struct vm_pass *ps)
{
	struct x86_cursor c;
	struct window w;
	memset(&w, 0, sizeof(w));
	memset(ps, 0, sizeof(*ps));
	if (!x86_cursor_at(&f->text, vm->start, vm->end, &c))
		return -EINVAL;
	enum x86_decoded st;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		struct summary s = {S_OTHER, 0, 0, 0};
		if (st == X86_DECODED_INSN) {
			const cs_x86_op *dst = x86_operand(d->insn, 0);
			int64_t disp = 0;
			if (d->insn->id == X86_INS_MOV && x86_simple_mem(dst, &disp) == vm->dispatch_reg)
				pass_store(ps, vm, m, &w, dst, x86_operand(d->insn, 1), disp);
			s = summarize(vm, d->insn);
			if (s.kind == S_LEA_ARG1 && ps->lea_arg1_count < MAX_SEEN)
				ps->lea_arg1[ps->lea_arg1_count++] = s.disp;
			if (s.kind == S_LOAD_DISPATCH && ps->load_count < MAX_SEEN)
				ps->loads[ps->load_count++] = s.disp;
		}
		window_push(&w, s);
	}
	return 0;
}

static const char *combine_pass(const struct vm_pass *ps, struct vm *vm)
{
	if (ps->vmstate_bad || ps->vmstate_stores == 0)
		return "the interpreter stores VM states elsewhere than to g->vmstate";
	if (!ps->zero_store.seen || ps->zero_store.conflict)
		return "the interpreter does not clear one g->jit_base (a build without the JIT?)";
	if (!ps->disp2j.seen || ps->disp2j.conflict)
		return "the trace exit handler does not pass one jit_State to lj_trace_exit";
	int64_t trace = INT64_MIN;
	unsigned stores = 0;
	for (unsigned i = 0; i < ps->base_store_count; i++) {
		if (ps->base_store_disp[i] != ps->zero_store.value)
			continue;
		if (ps->base_store_trace[i] == INT64_MIN || (stores > 0 && trace != ps->base_store_trace[i]))
			return "BC_JLOOP does not read J->trace before setting g->jit_base";
		trace = ps->base_store_trace[i];
		stores++;
	}
	if (stores == 0)
		return "BC_JLOOP does not set g->jit_base";
	/* vm_hotloop and the trace stitching also pass J to C (lj_trace_hot, lj_dispatch_stitch);
	 * BC_ITERN's JLOOP unpatching also reads J->trace. */
	if (count_of(ps->lea_arg1, ps->lea_arg1_count, ps->disp2j.value) < 2 ||
	    count_of(ps->loads, ps->load_count, trace) < 2)
		return "the jit_State or J->trace is used at one place only";
	int64_t disp2g = vm->jit.disp2g;
	int64_t jit_base = ps->zero_store.value - disp2g;
	int64_t g_to_j = ps->disp2j.value - disp2g;
	int64_t j_trace = trace - ps->disp2j.value;
	/* lj_dispatch.h GG_State: g, then J, then the dispatch table. */
	if (!in_range(jit_base, 0, 4096) || !in_range(g_to_j, jit_base + 1, -disp2g) ||
	    !in_range(j_trace, 0, 4096))
		return "g->jit_base, the jit_State or J->trace lies outside GG_State";
	vm->jit.g_jit_base = (uint16_t)jit_base;
	vm->jit.g_to_j = (int32_t)g_to_j;
	vm->jit.j_trace = (uint16_t)j_trace;
	return NULL;
}

const char *luajit_read_interpreter(const struct file *f, struct x86_disasm *d, struct vm *vm,
				    const struct mode *m)
{
	struct vm_pass *pass = calloc(1, sizeof(*pass));
	if (!pass)
		return "out of memory";
	const char *why = "the interpreter lies outside the code section";
	if (scan_vm(f, d, vm, m, pass) == 0)
		why = combine_pass(pass, vm);
	free(pass);
	return why;
}

/* ---- fields from tables */

/* lj_obj.h offsets that no known LuaJIT 2.1 layout changes within a mode (upstream 2.1 from
 * mid-2020 on and OpenResty luajit2 2019-2024, GCfuncC, GCproto, GCtrace). The luajit_layout_*
 * tests (tests/cmake/luajit_detect.cmake) check them against offsetof() on each tested tree. */
struct mode_fields {
	uint16_t func_ffid, func_pc, proto_size, proto_sizebc, trace_startpc;
	uint16_t proto_chunkname, proto_firstline, proto_numline, proto_lineinfo;
};

static const struct mode_fields gc64_fields = {10, 32, 104, 12, 72, 64, 72, 76, 80};
static const struct mode_fields gc32_fields = {6, 16, 64, 8, 52, 40, 44, 48, 52};

/* GCstr changed once: the string interning rework (upstream 2.1, 2020) put StrID sid in front of
 * len and grew global_State before vmstate. The variant is the one whose g->vmstate offset
 * matches the binary's. */
struct str_variant {
	bool gc64;
	uint16_t g_vmstate;
	uint16_t str_len;
	uint16_t str_size;
};

static const struct str_variant str_variants[] = {
	{true, 184, 20, 24},  /* sid, hash, len */
	{true, 128, 16, 24},  /* hash, len (OpenResty 2019) */
	{false, 136, 16, 20},
	{false, 88, 12, 16},
};

const char *luajit_fill_tables(const struct vm *vm, struct luajit_runtime *out)
{
	const struct mode_fields *mf = vm->jit.gc64 ? &gc64_fields : &gc32_fields;
	if (vm->func_pc != mf->func_pc)
		return "the interpreter reads GCfunc.pc elsewhere than every known layout";
	const struct str_variant *str = NULL;
	for (size_t i = 0; i < sizeof(str_variants) / sizeof(str_variants[0]); i++)
		if (str_variants[i].gc64 == (vm->jit.gc64 != 0) &&
		    str_variants[i].g_vmstate == vm->jit.g_vmstate)
			str = &str_variants[i];
	if (!str)
		return "global_State.vmstate is at no known offset: unknown GCstr layout";
	out->interp.jit = vm->jit;
	out->interp.jit.func_ffid = mf->func_ffid;
	out->interp.jit.func_pc = mf->func_pc;
	out->interp.jit.proto_size = mf->proto_size;
	out->interp.jit.proto_sizebc = mf->proto_sizebc;
	out->interp.jit.trace_startpc = mf->trace_startpc;
	out->proto_chunkname = mf->proto_chunkname;
	out->proto_firstline = mf->proto_firstline;
	out->proto_numline = mf->proto_numline;
	out->proto_lineinfo = mf->proto_lineinfo;
	out->str_len = str->str_len;
	out->str_size = str->str_size;
	return NULL;
}

