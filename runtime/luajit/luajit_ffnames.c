/* SPDX-License-Identifier: MIT */
/* luajit_ffnames.c - the names of the build's fast functions: the lj_lib_register calls of the
 * exported luaopen_* functions and of the loaders they preregister, and the prefix each
 * registration gives its library's init data (luajit_lib_init.c; luajit_detect.c, 7.). */
#include "runtime/luajit/luajit_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "lib/grow_array.h"

/* ---- fast function names: lj_lib_register calls and the init data they pass */

enum arg_kind { A_UNKNOWN, A_ZERO, A_IMM, A_ADDR };

struct arg {
	uint8_t kind;
	uint64_t value;
};

struct lib_call {
	uint64_t site;   /* the call instruction: the same call is found once */
	uint64_t target;
	struct arg name; /* rsi: the library name (lj_lib_register, lj_lib_prereg) */
	struct arg init; /* rdx: the init data (lj_lib_register), the loader (lj_lib_prereg), the
			  * ffid (lj_lib_postreg) */
	struct arg cf;   /* rcx: the lua_CFunction table (lj_lib_register) or lj_lib_postreg's name */
	size_t fn;       /* the function it is in (struct lib_scan.fns) */
};

struct lib_fn {
	uint64_t start, end;
	char prereg[MAX_NAME]; /* the name lj_lib_prereg gives this loader, or "" */
	const struct unnamed_libs *unnamed; /* an exported luaopen_* of unnamed_libs, or NULL */
	unsigned registrations, unnamed_registrations;
};

struct lib_scan {
	struct lib_fn fns[MAX_LUAOPEN + MAX_LOADERS];
	size_t fn_count;
	struct lib_call *calls;
	size_t call_count, call_capacity;
	uint64_t register_fn; /* lj_lib_register */
};

#define MAX_LIB_CALLS 4096 /* calls of the luaopen_* functions and their loaders followed */

static int push_call(struct lib_scan *ls, const struct lib_call *call)
{
	for (size_t i = 0; i < ls->call_count; i++)
		if (ls->calls[i].site == call->site)
			return 0;
	if (ls->call_count >= MAX_LIB_CALLS)
		return -E2BIG;
	struct lib_call *calls = grow_array(ls->calls, &ls->call_capacity, ls->call_count + 1,
					    sizeof(*calls), 64);
	if (!calls)
		return -ENOMEM;
	ls->calls = calls;
	ls->calls[ls->call_count++] = *call;
	return 0;
}

/* The value an instruction gives its destination register: a RIP-relative address (lea), zero
 * (xor r, r / mov r, 0), another immediate or a copy; unknown otherwise. */
static struct arg arg_written(const cs_insn *insn, const struct arg regs[X86_GPR_COUNT])
{
	const cs_x86_op *dst = x86_operand(insn, 0), *src = x86_operand(insn, 1);
	struct arg none = {A_UNKNOWN, 0};
	uint8_t wd = 0, ws = 0;
	int64_t imm = 0;
	int rd = x86_reg_operand(dst, &wd), rs = x86_reg_operand(src, &ws);
	if (rd < 0)
		return none;
	if (insn->id == X86_INS_LEA && src->mem.base == X86_REG_RIP && src->mem.index == X86_REG_INVALID)
		return (struct arg){A_ADDR, insn->address + insn->size + (uint64_t)src->mem.disp};
	if (insn->id == X86_INS_XOR && rs == rd)
		return (struct arg){A_ZERO, 0};
	if (insn->id == X86_INS_MOV && x86_imm_operand(src, wd, &imm))
		return (struct arg){imm == 0 ? A_ZERO : A_IMM, (uint64_t)imm};
	if (insn->id == X86_INS_MOV && rs >= 0 && wd == 8 && ws == 8)
		return regs[rs];
	return none;
}

/* Every direct call (and tail jump out) of function fn with what rsi, rdx and rcx hold, over a
 * linear sweep (luaopen_* are straight-line code). */
static int scan_calls(const struct file *f, struct x86_disasm *d, struct lib_scan *ls, size_t fn)
{
	struct x86_cursor c;
	struct arg regs[X86_GPR_COUNT];
	memset(regs, 0, sizeof(regs));
	if (!x86_cursor_at(&f->text, ls->fns[fn].start, ls->fns[fn].end, &c))
		return 0;
	enum x86_decoded st;
	while ((st = x86_next_insn(d, &c)) != X86_DECODED_END) {
		if (st != X86_DECODED_INSN)
			continue;
		uint64_t target;
		bool out = x86_direct_target(d->insn, &target) &&
			   (target < ls->fns[fn].start || target >= ls->fns[fn].end);
		if (x86_is_call(d) || (d->insn->id == X86_INS_JMP && out)) {
			if (out) {
				struct lib_call call = {d->insn->address, target, regs[X86_GPR_SI], regs[X86_GPR_DX],
							regs[X86_GPR_CX], fn};
				int err = push_call(ls, &call);
				if (err)
					return err;
			}
			/* The SysV ABI's caller-saved registers. */
			static const int clobbered[] = {X86_GPR_AX, X86_GPR_CX, X86_GPR_DX,
							X86_GPR_SI, X86_GPR_DI, X86_GPR_8,
							X86_GPR_9,  X86_GPR_10, X86_GPR_11};
			for (size_t i = 0; i < sizeof(clobbered) / sizeof(clobbered[0]); i++)
				regs[clobbered[i]] = (struct arg){A_UNKNOWN, 0};
			continue;
		}
		uint8_t wd = 0;
		int rd = x86_reg_operand(x86_operand(d->insn, 0), &wd);
		struct arg v = arg_written(d->insn, regs);
		uint32_t writes = written_gprs(d);
		for (int r = 0; r < X86_GPR_COUNT; r++)
			if (writes & (1u << r))
				regs[r] = r == rd ? v : (struct arg){A_UNKNOWN, 0};
	}
	return 0;
}

static bool is_register_call(const struct file *f, const struct lib_call *c)
{
	return c->init.kind == A_ADDR && !in_text(f, c->init.value) && c->cf.kind == A_ADDR &&
	       !in_text(f, c->cf.value) && (c->name.kind == A_ZERO || c->name.kind == A_ADDR);
}

/* lj_lib_register: the callee most of the calls passing (name, data, data) go to. */
static bool find_register_fn(const struct file *f, struct lib_scan *ls)
{
	unsigned best = 0, second = 0;
	for (size_t i = 0; i < ls->call_count; i++) {
		if (!is_register_call(f, &ls->calls[i]))
			continue;
		unsigned count = 0;
		bool counted_before = false;
		for (size_t j = 0; j < ls->call_count; j++) {
			if (ls->calls[j].target == ls->calls[i].target && is_register_call(f, &ls->calls[j])) {
				count++;
				counted_before |= j < i;
			}
		}
		if (counted_before)
			continue;
		if (count > best) {
			second = best;
			best = count;
			ls->register_fn = ls->calls[i].target;
		} else if (count > second) {
			second = count;
		}
	}
	return best >= 2 && best > second;
}

static size_t add_fn(struct lib_scan *ls, uint64_t start, uint64_t end)
{
	for (size_t i = 0; i < ls->fn_count; i++)
		if (ls->fns[i].start == start)
			return i;
	if (ls->fn_count >= sizeof(ls->fns) / sizeof(ls->fns[0]))
		return SIZE_MAX;
	ls->fns[ls->fn_count] = (struct lib_fn){.start = start, .end = end};
	return ls->fn_count++;
}

/* A function start (FDE) in the code: a loader. */
static bool loader_at(const struct file *f, const struct arg *a, uint64_t *end)
{
	uint64_t start;
	return a->kind == A_ADDR && in_text(f, a->value) && x86_fn_bounds(f->cfi, a->value, &start, end) &&
	       start == a->value && *end - start <= MAX_FUNCTION_BYTES;
}

/* lj_lib.c lj_lib_prereg(L, name, loader, env) at call i of a luaopen_*: called (name in rsi,
 * the loader in rdx), or inlined as lua_pushcfunction(L, loader) (loader in rsi, 0 upvalues in
 * rdx) and then lua_setfield(L, -2, name) (name in rdx). The loader's index in ls->fns, or
 * SIZE_MAX. */
static size_t prereg_at(const struct file *f, struct lib_scan *ls, size_t i, char name[MAX_NAME])
{
	const struct lib_call *c = &ls->calls[i];
	const struct lib_call *next = i + 1 < ls->call_count ? &ls->calls[i + 1] : NULL;
	uint64_t end;
	if (c->target == ls->register_fn)
		return SIZE_MAX;
	if (loader_at(f, &c->init, &end) && c->name.kind == A_ADDR &&
	    luajit_read_name(f, c->name.value, name))
		return add_fn(ls, c->init.value, end);
	if (loader_at(f, &c->name, &end) && c->init.kind == A_ZERO && next && next->fn == c->fn &&
	    next->name.kind == A_IMM && (int32_t)next->name.value == -2 && next->init.kind == A_ADDR &&
	    luajit_read_name(f, next->init.value, name))
		return add_fn(ls, c->name.value, end);
	return SIZE_MAX;
}

/* The loaders the exported luaopen_* preregister ("jit.util", "table.new"), named and scanned. */
static int scan_loaders(const struct file *f, struct x86_disasm *d, struct lib_scan *ls)
{
	size_t roots = ls->call_count;
	for (size_t i = 0; i < roots; i++) {
		char name[MAX_NAME];
		size_t fn = prereg_at(f, ls, i, name);
		if (fn == SIZE_MAX)
			continue;
		if (ls->fns[fn].prereg[0])
			continue; /* preregistered twice: the first name stays */
		memcpy(ls->fns[fn].prereg, name, sizeof(name));
		int err = scan_calls(f, d, ls, fn);
		if (err)
			return err;
	}
	return ls->fn_count >= sizeof(ls->fns) / sizeof(ls->fns[0]) ? -E2BIG : 0;
}

static bool is_unnamed_registration(const struct file *f, const struct lib_scan *ls,
				    const struct lib_call *c)
{
	return c->target == ls->register_fn && is_register_call(f, c) && c->name.kind == A_ZERO;
}

/* The prefix of the registration without a name c (of ls->calls) of an unnamed_libs luaopen_*:
 * the table's entry for its place among that function's ones, when their number is the table's
 * (linear sweep order is call order: luaopen_* are straight-line code); NULL otherwise. */
static const char *unnamed_prefix(const struct file *f, const struct lib_scan *ls,
				  const struct lib_call *c)
{
	const struct lib_fn *fn = &ls->fns[c->fn];
	if (!fn->unnamed)
		return NULL;
	size_t expected = 0, place = 0;
	while (expected < MAX_UNNAMED && fn->unnamed->prefixes[expected])
		expected++;
	if (fn->unnamed_registrations != expected)
		return NULL;
	for (const struct lib_call *other = ls->calls; other < c; other++)
		if (other->fn == c->fn && is_unnamed_registration(f, ls, other))
			place++;
	return place < expected ? fn->unnamed->prefixes[place] : NULL;
}

/* The prefix of a registration: "" for "_G", the library name, the loader's lj_lib_prereg name
 * for a loader's only registration without a name, unnamed_prefix; NULL: unnamed. */
static bool registration_prefix(const struct file *f, const struct lib_scan *ls,
				const struct lib_call *c, char out[MAX_NAME], const char **prefix)
{
	if (c->name.kind == A_ADDR) {
		if (!luajit_read_name(f, c->name.value, out))
			return false;
		*prefix = strcmp(out, "_G") == 0 ? "" : out;
		return true;
	}
	const struct lib_fn *fn = &ls->fns[c->fn];
	*prefix = fn->prereg[0] && fn->registrations == 1 ? fn->prereg : unnamed_prefix(f, ls, c);
	return true;
}

/* lj_lib.c lj_lib_postreg(L, cf, FF_table_new, "new") in a loader preregistered as "table.new":
 * the LJLIB_NOREG fast function ffid (claimed without a name by its library's init data) is
 * "table.new". */
static const char *name_postregistered(const struct file *f, const struct lib_scan *ls,
				       struct ffnames *fn)
{
	for (size_t i = 0; i < ls->call_count; i++) {
		const struct lib_call *c = &ls->calls[i];
		const char *prereg = ls->fns[c->fn].prereg;
		char name[MAX_NAME];
		if (!prereg[0] || c->init.kind != A_IMM || c->init.value < 2 || c->init.value > MAX_FFID ||
		    c->cf.kind != A_ADDR || !luajit_read_name(f, c->cf.value, name))
			continue;
		size_t plen = strlen(prereg), nlen = strlen(name);
		unsigned ffid = (unsigned)c->init.value;
		if (nlen + 1 >= plen || prereg[plen - nlen - 1] != '.' ||
		    strcmp(prereg + plen - nlen, name) != 0 || !fn->claimed[ffid] || fn->names[ffid])
			continue;
		fn->names[ffid] = strdup(prereg);
		if (!fn->names[ffid])
			return "out of memory";
	}
	return NULL;
}

/* Whether call i registers init data an earlier register call registers too: 1 with the same
 * prefix, -1 with another, 0 when it is new. */
static int registered_before(const struct file *f, const struct lib_scan *ls, size_t i,
			     const char *prefix)
{
	for (size_t j = 0; j < i; j++) {
		const struct lib_call *c = &ls->calls[j];
		char name[MAX_NAME];
		const char *other = NULL;
		if (c->target != ls->register_fn || !is_register_call(f, c) ||
		    c->init.value != ls->calls[i].init.value)
			continue;
		if (!registration_prefix(f, ls, c, name, &other))
			return -1;
		return (!prefix && !other) || (prefix && other && strcmp(prefix, other) == 0) ? 1 : -1;
	}
	return 0;
}

static const char *collect_names(const struct file *f, struct lib_scan *ls, struct ffnames *fn)
{
	bool base_found = false;
	for (size_t i = 0; i < ls->call_count; i++) {
		if (ls->calls[i].target == ls->register_fn && is_register_call(f, &ls->calls[i]))
			ls->fns[ls->calls[i].fn].registrations++;
		if (is_unnamed_registration(f, ls, &ls->calls[i]))
			ls->fns[ls->calls[i].fn].unnamed_registrations++;
	}
	for (size_t i = 0; i < ls->call_count; i++) {
		const struct lib_call *c = &ls->calls[i];
		char name[MAX_NAME];
		const char *prefix = NULL;
		unsigned first = 0;
		if (c->target != ls->register_fn || !is_register_call(f, c))
			continue;
		if (!registration_prefix(f, ls, c, name, &prefix))
			return "a library registered by lj_lib_register has no readable name";
		switch (registered_before(f, ls, i, prefix)) {
		case 1: continue; /* the same library again (e.g. a loader that is also exported) */
		case -1: return "one library is registered under two names";
		default: break;
		}
		int err = luajit_parse_init(f, c->init.value, prefix, fn, &first);
		if (err == -ENOMEM)
			return "out of memory";
		if (err)
			return "a library's init data (lj_lib_init_*) does not parse";
		/* lib_base.c: the base library ("_G") has the first fast functions, FF_C + 1. */
		base_found |= prefix && prefix[0] == '\0' && first == 2;
	}
	if (!base_found)
		return "no luaopen_* registers the base library's fast functions";
	return name_postregistered(f, ls, fn);
}

const char *luajit_find_ffnames(const struct file *f, struct x86_disasm *d,
				struct luajit_runtime *out)
{
	struct lib_scan *ls = calloc(1, sizeof(*ls));
	struct ffnames fn = {0};
	const char *why = NULL;
	fn.names = calloc(MAX_FFID + 1, sizeof(*fn.names));
	if (!ls || !fn.names) {
		why = "out of memory";
		goto done;
	}
	for (size_t i = 0; i < f->luaopen_count && !why; i++) {
		uint64_t end;
		size_t index;
		if (!luajit_function_range(f, &f->luaopen[i].sym, MAX_FUNCTION_BYTES, &end))
			continue;
		index = add_fn(ls, f->luaopen[i].sym.addr, end);
		if (index == SIZE_MAX || scan_calls(f, d, ls, index) != 0) {
			why = "too many luaopen_* calls to follow";
			break;
		}
		ls->fns[index].unnamed = f->luaopen[i].unnamed;
	}
	if (!why && !find_register_fn(f, ls))
		why = "the exported luaopen_* functions call no common lj_lib_register";
	if (!why && scan_loaders(f, d, ls) != 0)
		why = "too many library loaders to follow";
	if (!why)
		why = collect_names(f, ls, &fn);
done:
	if (!why) {
		out->ffnames = fn.names;
		out->ffname_count = fn.count;
	} else {
		luajit_ffnames_free(fn.names, MAX_FFID + 1);
	}
	if (ls)
		free(ls->calls);
	free(ls);
	return why;
}

